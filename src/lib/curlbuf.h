/* curlbuf.h — a libcurl response collected in memory, with a size cap. */
#ifndef MOAT_CURLBUF_H
#define MOAT_CURLBUF_H

#include <stddef.h>

struct curlbuf {
	char	*data;		/* NUL-terminated; owned, NULL until data */
	size_t	 len;
	size_t	 max;		/* a longer response aborts the transfer */
};

/* CURLOPT_WRITEFUNCTION with CURLOPT_WRITEDATA = struct curlbuf *. */
size_t	curlbuf_write(char *p, size_t sz, size_t n, void *arg);
/* Wipe (responses may carry key material) and free; ready for reuse. */
void	curlbuf_clear(struct curlbuf *b);

#endif
