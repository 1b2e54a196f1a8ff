#include <errno.h>
#include <stdatomic.h>
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

int
fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
    struct err *e)
{
	return fs_write_atomic_via(path, NULL, data, len, mode, e);
}

int
fs_write_atomic_via(const char *path, const char *tmpdir, const void *data,
    size_t len, mode_t mode, struct err *e)
{
	char		*tmp = NULL, *dcopy = NULL, *bcopy;
	const char	*p = data;
	int		 fd = -1, dfd, r;
	size_t		 off = 0;

	static _Atomic unsigned seq;

	if (tmpdir != NULL) {
		if ((bcopy = strdup(path)) == NULL)
			return err_set(e, E_INTERNAL, "out of memory");
		r = asprintf(&tmp, "%s/%s.tmp.%d.%u", tmpdir, basename(bcopy),
		    (int)getpid(), seq++);
		free(bcopy);
	} else
		r = asprintf(&tmp, "%s.tmp.%d.%u", path, (int)getpid(), seq++);
	if (r == -1)
		return err_set(e, E_INTERNAL, "out of memory");
	/* O_EXCL|mode at creation: the key is never readable by others,
	 * not even for the instant between open and chmod. */
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd == -1)
		goto fail;
	if (fchmod(fd, mode) == -1)
		goto fail;
	while (off < len) {
		ssize_t n = write(fd, p + off, len - off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto fail;
	dcopy = strdup(path);
	if (dcopy != NULL && (dfd = open(dirname(dcopy), O_RDONLY |
	    O_DIRECTORY | O_CLOEXEC)) != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	free(dcopy);
	free(tmp);
	return 0;
fail:
	err_set(e, E_INTERNAL, "cannot write %s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

int
fs_mkdir(const char *path, mode_t mode, struct err *e)
{
	char	 buf[4096];
	char	*s;
	size_t	 n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return err_set(e, E_INTERNAL, "bad directory path");
	memcpy(buf, path, n + 1);
	for (s = buf + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(buf, 0755) == -1 && errno != EEXIST)
			return err_set(e, E_INTERNAL, "mkdir %s: %s", buf,
			    strerror(errno));
		*s = '/';
	}
	if (mkdir(buf, mode) == -1 && errno != EEXIST)
		return err_set(e, E_INTERNAL, "mkdir %s: %s", buf,
		    strerror(errno));
	(void)chmod(buf, mode);
	return 0;
}

void
fs_empty_dir(const char *dir)
{
	DIR		*d = opendir(dir);
	struct dirent	*de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (de->d_type == DT_REG)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

int
fs_read(const char *path, size_t max, char **out, struct err *e)
{
	char	*buf;
	size_t	 len = 0;
	ssize_t	 n;
	int	 fd;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return 1;
		return err_set(e, E_INVALID_CONFIG, "cannot read %s: %s", path,
		    strerror(errno));
	}
	/* One byte more than allowed tells "too large" from "exactly max". */
	if ((buf = malloc(max + 2)) == NULL) {
		close(fd);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	while (len <= max && (n = read(fd, buf + len, max + 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (n == -1 || len > max) {
		free(buf);
		return err_set(e, E_INVALID_CONFIG, n == -1 ? "cannot read %s" :
		    "%s is larger than %zu bytes", path, max);
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}
