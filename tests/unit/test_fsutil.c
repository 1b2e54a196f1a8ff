/*
 * test_fsutil.c — atomic file replacement and mkdir -p.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"
#include "t.h"

static char	 tmpdir[] = "/tmp/moat-test-fsutil-XXXXXX";
static char	 big[1 << 20];

/* The whole file into a malloc'd buffer; *len its size.  NULL if absent. */
static char *
slurp(const char *path, size_t *len)
{
	struct stat	 st;
	char		*buf;
	int		 fd = open(path, O_RDONLY);
	ssize_t		 n;

	*len = 0;
	if (fd == -1 || fstat(fd, &st) == -1) {
		if (fd != -1)
			close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	n = buf != NULL ? read(fd, buf, (size_t)st.st_size) : -1;
	close(fd);
	if (n != st.st_size) {
		free(buf);
		return NULL;
	}
	*len = (size_t)n;
	return buf;
}

static void
spit(const char *path, const char *data, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd == -1 || write(fd, data, strlen(data)) != (ssize_t)strlen(data))
		perror(path);
	if (fd != -1) {
		fchmod(fd, mode);
		close(fd);
	}
}

/* Names in dir other than those in keep[] (NULL-terminated). */
static int
stray_files(const char *dir, const char *const *keep)
{
	DIR		*d = opendir(dir);
	struct dirent	*de;
	int		 n = 0, i, kept;

	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		for (kept = 0, i = 0; keep[i] != NULL; i++)
			if (strcmp(de->d_name, keep[i]) == 0)
				kept = 1;
		if (!kept) {
			fprintf(stderr, "\tstray file %s/%s\n", dir,
			    de->d_name);
			n++;
		}
	}
	if (d != NULL)
		closedir(d);
	return n;
}

enum setup {
	S_NONE,
	S_OLD_FILE,	/* "f" exists with longer content, mode 0644 */
	S_OLD_LINKED,	/* as S_OLD_FILE, plus a hard link "link" to it */
	S_DIR_IN_WAY,	/* "f" is a directory */
};

static void
test_write_atomic(void)
{
	static const struct {
		const char	*name;
		enum setup	 setup;
		const char	*path;		/* relative to the row's dir */
		const char	*data;		/* NULL: big[] */
		size_t		 len;		/* 0: strlen(data) */
		mode_t		 mode;
		int		 want_rc;
		const char	*want_msg;	/* when want_rc is -1 */
	} rows[] = {
		{ "new file, 0600", S_NONE, "f", "-----BEGIN KEY-----\n", 0,
		    0600, 0, NULL },
		{ "new file, 0644 despite umask 077", S_NONE, "f", "cert", 0,
		    0644, 0, NULL },
		{ "empty content", S_NONE, "f", "", 0, 0600, 0, NULL },
		{ "binary content with NULs", S_NONE, "f", "a\0b\0c", 5,
		    0600, 0, NULL },
		{ "1 MiB", S_NONE, "f", NULL, sizeof(big), 0600, 0, NULL },
		{ "replaces a longer 0644 file, mode becomes 0600",
		    S_OLD_FILE, "f", "new", 0, 0600, 0, NULL },
		/* rename, not truncate-and-write: a reader holding the
		 * old inode (here, a hard link) keeps the old content. */
		{ "replaces the name, not the old inode", S_OLD_LINKED, "f",
		    "new", 0, 0600, 0, NULL },
		{ "missing directory", S_NONE, "nodir/f", "x", 0, 0600, -1,
		    "nodir/f" },
		{ "a directory in the way", S_DIR_IN_WAY, "f", "x", 0, 0600,
		    -1, "/f" },
	};
	static const char *const keep_f[] = { "f", NULL };
	static const char *const keep_link[] = { "f", "link", NULL };
	static const char *const keep_none[] = { NULL };
	size_t	 i;

	for (i = 0; i < NELEMS(rows); i++) {
		struct err	 e = { E_OK, NULL };
		char		 dir[PATH_MAX], path[PATH_MAX + 32];
		char		 other[PATH_MAX + 32], *got;
		const char	*data = rows[i].data != NULL ? rows[i].data :
		    big;
		size_t		 len = rows[i].len != 0 ? rows[i].len :
		    strlen(data), glen;
		struct stat	 st;
		int		 rc;

		T_CASE(rows[i].name);
		snprintf(dir, sizeof(dir), "%s/row%zu", tmpdir, i);
		if (mkdir(dir, 0700) == -1) {
			CHECKF(0, "mkdir %s: %s", dir, strerror(errno));
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, rows[i].path);
		snprintf(other, sizeof(other), "%s/link", dir);
		if (rows[i].setup == S_OLD_FILE || rows[i].setup == S_OLD_LINKED)
			spit(path, "old content, longer than the new", 0644);
		if (rows[i].setup == S_OLD_LINKED)
			CHECK_INT(link(path, other), 0);
		if (rows[i].setup == S_DIR_IN_WAY)
			CHECK_INT(mkdir(path, 0700), 0);

		rc = fs_write_atomic(path, data, len, rows[i].mode, &e);
		CHECKF(rc == rows[i].want_rc, "returned %d, want %d (%s)", rc,
		    rows[i].want_rc, err_msg(&e));
		if (rows[i].want_rc == -1) {
			CHECK(e.code != E_OK);
			CHECK_HAS(err_msg(&e), rows[i].want_msg);
			/* The reason, not just "failed". */
			if (rows[i].setup == S_NONE)
				CHECK_HAS(err_msg(&e), strerror(ENOENT));
			CHECK_INT(stray_files(dir, rows[i].setup ==
			    S_DIR_IN_WAY ? keep_f : keep_none), 0);
			if (rows[i].setup == S_DIR_IN_WAY)
				CHECK(stat(path, &st) == 0 &&
				    S_ISDIR(st.st_mode));
			err_clear(&e);
			continue;
		}
		CHECK_INT(e.code, E_OK);
		got = slurp(path, &glen);
		CHECKF(got != NULL && glen == len && memcmp(got, data, len) == 0,
		    "content of %s: %zu bytes, want %zu", path, glen, len);
		free(got);
		CHECK_INT(stat(path, &st), 0);
		CHECKF((st.st_mode & 07777) == rows[i].mode, "mode %04o, want "
		    "%04o", (unsigned)(st.st_mode & 07777),
		    (unsigned)rows[i].mode);
		CHECK_INT(stray_files(dir, rows[i].setup == S_OLD_LINKED ?
		    keep_link : keep_f), 0);
		if (rows[i].setup == S_OLD_LINKED) {
			got = slurp(other, &glen);
			CHECK(got != NULL && glen > 3 &&
			    strncmp(got, "old content", 11) == 0);
			free(got);
		}
		err_clear(&e);
	}
}

static void
test_mkdir(void)
{
	static const struct {
		const char	*name;
		const char	*path;	/* relative to tmpdir; "" absolute "" */
		mode_t		 mode;
		int		 want_rc;
	} rows[] = {
		{ "nested, 0700", "mk/a/b/c", 0700, 0 },
		{ "again: already there", "mk/a/b/c", 0700, 0 },
		{ "existing dir gets the mode", "mk/a/b/c", 0750, 0 },
		{ "trailing slash", "mk/d/", 0700, 0 },
		{ "under a regular file", "mk/file/x", 0700, -1 },
		{ "empty path", "", 0700, -1 },
	};
	char	 p[PATH_MAX + 64];
	size_t	 i;

	snprintf(p, sizeof(p), "%s/mk", tmpdir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/mk/file", tmpdir);
	spit(p, "x", 0600);
	for (i = 0; i < NELEMS(rows); i++) {
		struct err	 e = { E_OK, NULL };
		struct stat	 st;

		T_CASE(rows[i].name);
		if (*rows[i].path == '\0')
			p[0] = '\0';
		else
			snprintf(p, sizeof(p), "%s/%s", tmpdir, rows[i].path);
		CHECK_INT(fs_mkdir(p, rows[i].mode, &e), rows[i].want_rc);
		if (rows[i].want_rc == 0) {
			CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
			CHECKF((st.st_mode & 07777) == rows[i].mode, "mode "
			    "%04o, want %04o", (unsigned)(st.st_mode & 07777),
			    (unsigned)rows[i].mode);
		} else {
			CHECK(e.code != E_OK && e.msg != NULL);
		}
		err_clear(&e);
	}
}

/* Through a staging directory: the file lands whole in its directory,
 * which never holds the temporary; fs_empty_dir clears the staging. */
static void
test_write_via(void)
{
	char		 dir[PATH_MAX], stage[PATH_MAX];
	char		 path[PATH_MAX + 32], left[PATH_MAX + 32];
	struct err	 e = { E_OK, NULL };
	struct stat	 st;
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	T_CASE("write via a staging directory");
	snprintf(dir, sizeof(dir), "%s/via", tmpdir);
	snprintf(stage, sizeof(stage), "%s/stage", tmpdir);
	CHECK_INT(mkdir(dir, 0755), 0);
	CHECK_INT(mkdir(stage, 0700), 0);
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	CHECK_INT(fs_write_atomic_via(path, stage, "secret", 6, 0600, &e), 0);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT((int)st.st_size, 6);
	CHECK_INT((int)(st.st_mode & 0777), 0600);
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				n++;
		closedir(d);
	}
	CHECK_INT(n, 1);
	/* What a killed writer leaves in the staging dir is removed. */
	snprintf(left, sizeof(left), "%s/key.pem.tmp.1.2", stage);
	CHECK_INT(close(open(left, O_CREAT | O_WRONLY, 0600)), 0);
	fs_empty_dir(stage);
	CHECK(access(left, F_OK) == -1);
	err_clear(&e);
}

int
main(void)
{
	size_t	 i;
	int	 rc;
	char	 cmd[PATH_MAX + 16];

	/* A umask that would spoil any mode fs_* did not set itself. */
	umask(077);
	for (i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + 1);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_write_atomic();
	test_mkdir();
	test_write_via();
	rc = T_DONE();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	return rc;
}
