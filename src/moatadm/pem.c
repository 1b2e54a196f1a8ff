/*
 * Certificate files as operators have them: a certificate file may also
 * hold its key (the RS habit of one combined PEM), so the blocks are told
 * apart by their labels.  No parsing beyond the armor: moatd validates.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moatadm.h"

#define PEM_BEGIN	"-----BEGIN "
#define PEM_END		"-----END "
#define PEM_DASHES	"-----"
#define PEM_LABEL_MAX	64

struct pem_block {
	const char	*start;
	size_t		 len;		/* through the END line's newline */
	char		 label[PEM_LABEL_MAX];
};

int
pem_file_read(const char *path, char **bufp, size_t *lenp, char **errp)
{
	size_t len = 0;
	ssize_t n;
	char *buf;
	int fd;

	*bufp = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		*errp = str_printf("cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	/* one byte more than allowed tells "too large" from "exactly 1 MiB" */
	if ((buf = malloc(PEM_FILE_MAX + 2)) == NULL) {
		close(fd);
		*errp = str_printf("cannot read %s: out of memory", path);
		return -1;
	}
	while (len <= PEM_FILE_MAX &&
	    (n = read(fd, buf + len, PEM_FILE_MAX + 1 - len)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			*errp = str_printf("cannot read %s: %s", path,
			    strerror(errno));
			goto fail;
		}
		len += (size_t)n;
	}
	if (len > PEM_FILE_MAX) {
		*errp = str_printf("%s is larger than 1 MiB", path);
		goto fail;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL) {
		*errp = str_printf("%s is not a PEM file", path);
		goto fail;
	}
	close(fd);
	*bufp = buf;
	*lenp = len;
	return 0;
 fail:
	close(fd);
	mem_wipe_free(buf);
	return -1;
}

static const char *
line_end(const char *p)
{
	const char *nl = strchr(p, '\n');

	return nl != NULL ? nl : p + strlen(p);
}

/* The label of a "-----BEGIN <label>-----" line; -1 if p is not one. */
static int
pem_begin_label(const char *p, const char *eol, char *label)
{
	const char *l = p + strlen(PEM_BEGIN), *e = eol;

	if (strncmp(p, PEM_BEGIN, strlen(PEM_BEGIN)) != 0)
		return -1;
	while (e > l && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (e - l <= (ptrdiff_t)strlen(PEM_DASHES) ||
	    strncmp(e - strlen(PEM_DASHES), PEM_DASHES,
	    strlen(PEM_DASHES)) != 0)
		return -1;
	e -= strlen(PEM_DASHES);
	if (e - l >= PEM_LABEL_MAX)
		return -1;
	memcpy(label, l, (size_t)(e - l));
	label[e - l] = '\0';
	return 0;
}

/* Finds the matching END line after a BEGIN; 0 and b->len set, or -1. */
static int
pem_block_close(struct pem_block *b, const char *from)
{
	char end[PEM_LABEL_MAX + 32];
	const char *p, *eol;

	snprintf(end, sizeof(end), PEM_END "%s" PEM_DASHES, b->label);
	for (p = from; *p != '\0'; p = *eol ? eol + 1 : eol) {
		eol = line_end(p);
		if (strncmp(p, end, strlen(end)) == 0) {
			b->len = (size_t)((*eol ? eol + 1 : eol) - b->start);
			return 0;
		}
	}
	return -1;
}

/*
 * Next armored block at or after *pos: 1 found (and *pos moved past it),
 * 0 none left, -1 unterminated (with *errp).
 */
static int
pem_block_next(const char **pos, struct pem_block *b, const char *path,
    char **errp)
{
	const char *p, *eol;

	for (p = *pos; *p != '\0'; p = *eol ? eol + 1 : eol) {
		eol = line_end(p);
		if (pem_begin_label(p, eol, b->label) == -1)
			continue;
		b->start = p;
		if (pem_block_close(b, *eol ? eol + 1 : eol) == -1) {
			*errp = str_printf("unterminated PEM block '%s' in %s",
			    b->label, path);
			return -1;
		}
		*pos = b->start + b->len;
		return 1;
	}
	*pos = p;
	return 0;
}

static int
pem_label_is_key(const char *label)
{
	size_t n = strlen(label), k = strlen("PRIVATE KEY");

	return n >= k && strcmp(label + n - k, "PRIVATE KEY") == 0;
}

/* Copy of a block, always ending in a newline so blocks concatenate. */
static char *
pem_block_dup(const struct pem_block *b)
{
	int nl = b->start[b->len - 1] != '\n';
	char *s;

	if ((s = malloc(b->len + nl + 1)) == NULL)
		return NULL;
	memcpy(s, b->start, b->len);
	if (nl)
		s[b->len] = '\n';
	s[b->len + nl] = '\0';
	return s;
}

/* Appends a certificate block to *certp (which may be NULL). */
static int
pem_cert_append(char **certp, const struct pem_block *b)
{
	char *block, *grown;
	size_t have = *certp != NULL ? strlen(*certp) : 0;

	if ((block = pem_block_dup(b)) == NULL)
		return -1;
	if ((grown = realloc(*certp, have + strlen(block) + 1)) == NULL) {
		free(block);
		return -1;
	}
	memcpy(grown + have, block, strlen(block) + 1);
	free(block);
	*certp = grown;
	return 0;
}

static int
pem_block_take(const struct pem_block *b, const char *path, char **certp,
    char **keyp, char **errp)
{
	if (strcmp(b->label, "CERTIFICATE") == 0) {
		if (certp != NULL && pem_cert_append(certp, b) == -1)
			goto oom;
		return 0;
	}
	if (!pem_label_is_key(b->label) || keyp == NULL)
		return 0;	/* e.g. EC PARAMETERS: nothing moatd needs */
	if (*keyp != NULL) {
		*errp = str_printf("%s contains more than one private key",
		    path);
		return -1;
	}
	if ((*keyp = pem_block_dup(b)) == NULL)
		goto oom;
	return 0;
 oom:
	*errp = str_printf("out of memory reading %s", path);
	return -1;
}

int
pem_blocks_split(const char *text, const char *path, char **certp,
    char **keyp, char **errp)
{
	struct pem_block b;
	const char *pos = text;
	int rc;

	if (certp != NULL)
		*certp = NULL;
	if (keyp != NULL)
		*keyp = NULL;
	while ((rc = pem_block_next(&pos, &b, path, errp)) == 1)
		if (pem_block_take(&b, path, certp, keyp, errp) == -1)
			break;
	if (rc == 0)
		return 0;
	if (certp != NULL) {
		free(*certp);
		*certp = NULL;
	}
	if (keyp != NULL) {
		mem_wipe_free(*keyp);
		*keyp = NULL;
	}
	return -1;
}
