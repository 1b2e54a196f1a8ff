/* fsutil.h — files that other processes may read while we replace them. */
#ifndef MOAT_FSUTIL_H
#define MOAT_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

/* Replace path with data atomically: temp file in the same directory,
 * fchmod(mode), write, fsync, rename, fsync of the directory.  A reader
 * sees the old file or the new one, never a half-written one. */
int	fs_write_atomic(const char *path, const void *data, size_t len,
	    mode_t mode, struct err *e);
/* The same, with the temporary file in tmpdir (same file system) so that
 * the target directory never holds a partial file, even when the process
 * is killed mid-write.  The caller empties tmpdir at start. */
int	fs_write_atomic_via(const char *path, const char *tmpdir,
	    const void *data, size_t len, mode_t mode, struct err *e);
/* The whole of a small file, NUL-terminated, into *out (caller frees):
 * 0 read, 1 absent, -1 unreadable or larger than max (e). */
int	fs_read(const char *path, size_t max, char **out, struct err *e);
/* Remove the regular files directly in dir (not recursive). */
void	fs_empty_dir(const char *dir);
/* mkdir -p with mode for the last component. */
int	fs_mkdir(const char *path, mode_t mode, struct err *e);

#endif
