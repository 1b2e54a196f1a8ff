#include <stdlib.h>
#include <string.h>

#include "curlbuf.h"

size_t
curlbuf_write(char *p, size_t sz, size_t n, void *arg)
{
	struct curlbuf	*b = arg;
	char		*nd;

	if (b->len + sz * n > b->max ||
	    (nd = realloc(b->data, b->len + sz * n + 1)) == NULL)
		return 0;
	b->data = nd;
	memcpy(b->data + b->len, p, sz * n);
	b->len += sz * n;
	b->data[b->len] = '\0';
	return sz * n;
}

void
curlbuf_clear(struct curlbuf *b)
{
	if (b->data != NULL) {
		explicit_bzero(b->data, b->len);
		free(b->data);
	}
	b->data = NULL;
	b->len = 0;
}
