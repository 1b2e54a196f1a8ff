/*
 * test_store.c — the cluster store, through store.h only.
 *
 * Every test runs once per driver in `drivers` below, so the etcd driver
 * gets the same tests by adding a row.  Tests do not assume an empty
 * store: every key lives under a namespace unique to this run, and
 * revisions are compared with the revision read before the change.
 * MOAT_TEST_STORE_URL adds one more driver (e.g. an etcd to test against).
 */
#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "store.h"
#include "t.h"

struct driver {
	const char	*name;
	char		 url[PATH_MAX + 16];
	char		 file[PATH_MAX];	/* where the data is; "" none */
};

/* url_fmt and file_fmt get the test's temporary directory. */
static const struct {
	const char	*name;
	const char	*url_fmt;
	const char	*file_fmt;
} driver_defs[] = {
	{ "sqlite:<path>", "sqlite:%s/t.db", "%s/t.db" },
	{ "sqlite (data dir)", "sqlite", "%s/cluster.db" },
};

static char	 tmpdir[] = "/tmp/moat-test-store-XXXXXX";
static char	 ns[64];	/* per-run key namespace */

/* ns + path, in one of a ring of 64 buffers: that many can be live at
 * once (t_list holds the most, 20). */
static const char *
K(const char *path)
{
	static char	 buf[64][256];
	static int	 i;
	char		*b = buf[i++ % 64];

	snprintf(b, sizeof(buf[0]), "%s%s", ns, path);
	return b;
}

static struct store *
open_store(const struct driver *d)
{
	struct err	 e = { E_OK, NULL };
	struct store	*s = store_open(d->url, tmpdir, &e);

	CHECKF(s != NULL, "store_open(%s): %s", d->url, err_msg(&e));
	err_clear(&e);
	return s;
}

/* Commit one txn of puts: keys[i] = vals[i]. */
static int
put_n(struct store *s, const char *const *keys, const char *const *vals,
    int n)
{
	struct store_txn	*t = store_txn_new();
	struct err		 e = { E_OK, NULL };
	int			 i, rc;

	for (i = 0; i < n; i++)
		CHECK_INT(store_txn_put(t, keys[i], vals[i]), 0);
	rc = store_txn_commit(s, t, &e);
	CHECKF(rc == 0, "commit: %s", err_msg(&e));
	err_clear(&e);
	store_txn_free(t);
	return rc;
}

static int
put(struct store *s, const char *key, const char *val)
{
	return put_n(s, &key, &val, 1);
}

static int
del(struct store *s, const char *key)
{
	struct store_txn	*t = store_txn_new();
	struct err		 e = { E_OK, NULL };
	int			 rc;

	CHECK_INT(store_txn_del(t, key), 0);
	rc = store_txn_commit(s, t, &e);
	CHECKF(rc == 0, "commit: %s", err_msg(&e));
	err_clear(&e);
	store_txn_free(t);
	return rc;
}

/* The value of key (caller frees; NULL when absent) and its mod_rev. */
static char *
get(struct store *s, const char *key, int64_t *rev)
{
	struct err	 e = { E_OK, NULL };
	char		*v = NULL;
	int64_t		 r = -1;
	int		 rc = store_get(s, key, &v, &r, &e);

	CHECKF(rc == 0 || rc == 1, "store_get(%s): %s", key, err_msg(&e));
	err_clear(&e);
	if (rc != 0) {
		free(v);
		v = NULL;
		r = 0;
	}
	if (rev != NULL)
		*rev = r;
	return v;
}

/* The value of key equals want (NULL: absent). */
static void
check_value(struct store *s, const char *key, const char *want, int line)
{
	char *v = get(s, key, NULL);

	t_checks++;
	if ((want == NULL) != (v == NULL) || (v != NULL &&
	    strcmp(v, want) != 0))
		T_FAIL_AT(__FILE__, line, "value of %s is %s%s%s, want "
		    "%s%s%s", key, v ? "\"" : "", v ? v : "absent",
		    v ? "\"" : "", want ? "\"" : "", want ? want : "absent",
		    want ? "\"" : "");
	free(v);
}
#define CHECK_VALUE(s, key, want) check_value((s), (key), (want), __LINE__)

static int64_t
rev_of(struct store *s, const char *key)
{
	int64_t	 r;

	free(get(s, key, &r));
	return r;
}

/* ---- the tests ---- */

static void
t_get_absent(const struct driver *d, struct store *s)
{
	struct err	 e = { E_OK, NULL };
	struct store_kv	*kvs = NULL;
	char		*v = NULL;
	size_t		 n = 99;

	CHECK_INT(store_get(s, K("/absent/x"), &v, NULL, &e), 1);
	CHECK(v == NULL);
	free(v);
	CHECK_INT(store_list(s, K("/absent/"), &kvs, &n, &e), 0);
	CHECK_INT(n, 0);
	store_kvs_free(kvs, n);
	err_clear(&e);
}

static void
t_put_get(const struct driver *d, struct store *s)
{
	/* JSON as the API stores it, with what needs escaping in SQL or
	 * JSON, and non-ASCII. */
	const char	*doc = "{\"name\": \"O'Brien; DROP TABLE kv; --\", "
	    "\"pem\": \"-----BEGIN\\nAB==\\n\", \"é\": \"ü\"}";
	int64_t		 r0 = store_revision(s), rev;
	char		*v;

	CHECK(r0 >= 0);
	CHECK_INT(put(s, K("/pg/a"), "value-a"), 0);
	v = get(s, K("/pg/a"), &rev);
	CHECK_STR(v, "value-a");
	free(v);
	CHECK(rev > 0);
	CHECK_INT(rev, store_revision(s));
	CHECK_INT(rev, r0 + 1);

	CHECK_INT(put(s, K("/pg/a"), doc), 0);
	CHECK_VALUE(s, K("/pg/a"), doc);
	CHECK_INT(rev_of(s, K("/pg/a")), r0 + 2);

	CHECK_INT(put(s, K("/pg/empty"), ""), 0);
	CHECK_VALUE(s, K("/pg/empty"), "");
}

static void
t_revision(const struct driver *d, struct store *s)
{
	const char	*keys[] = { K("/rev/a"), K("/rev/b"), K("/rev/c") };
	const char	*vals[] = { "1", "2", "3" };
	int64_t		 r0 = store_revision(s);
	int		 i;

	CHECK_INT(put(s, K("/rev/x"), "x"), 0);
	CHECK_INT(store_revision(s), r0 + 1);
	/* One commit of three puts is one revision, shared by all three. */
	CHECK_INT(put_n(s, keys, vals, 3), 0);
	CHECK_INT(store_revision(s), r0 + 2);
	for (i = 0; i < 3; i++)
		CHECK_INT(rev_of(s, keys[i]), r0 + 2);
	CHECK_INT(del(s, K("/rev/x")), 0);
	CHECK_INT(store_revision(s), r0 + 3);
}

static void
t_untouched(const struct driver *d, struct store *s)
{
	int64_t ra;

	CHECK_INT(put(s, K("/ut/a"), "a"), 0);
	ra = rev_of(s, K("/ut/a"));
	CHECK_INT(put(s, K("/ut/b"), "b"), 0);
	CHECK_INT(put(s, K("/ut/b"), "b2"), 0);
	CHECK_INT(del(s, K("/ut/b")), 0);
	CHECK_INT(rev_of(s, K("/ut/a")), ra);
	CHECK_VALUE(s, K("/ut/a"), "a");
	CHECK(store_revision(s) == ra + 3);
}

/* list(prefix) returns exactly want[] (sorted), with their values. */
static void
check_list(struct store *s, const char *prefix, const char *const *want,
    size_t nwant, int line)
{
	struct err	 e = { E_OK, NULL };
	struct store_kv	*kvs = NULL;
	size_t		 n = 0, i;
	int		 ok;

	t_checks++;
	if (store_list(s, prefix, &kvs, &n, &e) == -1) {
		T_FAIL_AT(__FILE__, line, "store_list(%s): %s", prefix,
		    err_msg(&e));
		err_clear(&e);
		return;
	}
	ok = n == nwant;
	for (i = 0; ok && i < n; i++) {
		char *v = get(s, kvs[i].key, NULL);
		ok = strcmp(kvs[i].key, want[i]) == 0 && v != NULL &&
		    strcmp(kvs[i].value, v) == 0 &&
		    kvs[i].mod_rev == rev_of(s, kvs[i].key);
		free(v);
	}
	if (!ok) {
		T_FAIL_AT(__FILE__, line, "store_list(\"%s\") gave %zu keys, "
		    "want %zu:", prefix, n, nwant);
		for (i = 0; i < n; i++)
			fprintf(stderr, "\tgot  %s = %s (rev %" PRId64 ")\n",
			    kvs[i].key, kvs[i].value, kvs[i].mod_rev);
		for (i = 0; i < nwant; i++)
			fprintf(stderr, "\twant %s\n", want[i]);
	}
	store_kvs_free(kvs, n);
}
#define CHECK_LIST(s, prefix, ...) do {					\
	const char *const w_[] = { __VA_ARGS__ };			\
	check_list((s), (prefix), w_, NELEMS(w_), __LINE__);		\
} while (0)
#define CHECK_LIST_EMPTY(s, prefix) check_list((s), (prefix), NULL, 0, \
	__LINE__)

static void
t_list(const struct driver *d, struct store *s)
{
	/* Written out of order, with neighbours that must not match. */
	const char *keys[] = {
		K("/ls/b"), K("/ls/a"), K("/ls/c/d"), K("/ls/_"), K("/ls/B"),
		K("/ls"), K("/lsx/a"), K("/lt/a"), K("/LS/a"), K("/ls0"),
		/* LIKE wildcards in the prefix */
		K("/l%_/1"), K("/l%_/2"), K("/lab/1"), K("/l%_x/1"),
		K("/l_/1"), K("/la/1"), K("/l%/1"), K("/lxyz/1"),
		/* a backslash, LIKE's usual escape character */
		K("/l\\/1"), K("/l\\\\/1"),
	};
	const char *vals[NELEMS(keys)];
	size_t i;

	for (i = 0; i < NELEMS(keys); i++)
		vals[i] = keys[i];	/* value = key: easy to eyeball */
	CHECK_INT(put_n(s, keys, vals, (int)NELEMS(keys)), 0);

	/* Sorted by bytes, as etcd does: 'B' < '_' < 'a'. */
	CHECK_LIST(s, K("/ls/"), K("/ls/B"), K("/ls/_"), K("/ls/a"),
	    K("/ls/b"), K("/ls/c/d"));
	CHECK_LIST(s, K("/ls/c"), K("/ls/c/d"));
	CHECK_LIST(s, K("/l%_/"), K("/l%_/1"), K("/l%_/2"));
	CHECK_LIST(s, K("/l_/"), K("/l_/1"));
	CHECK_LIST(s, K("/l%/"), K("/l%/1"));
	CHECK_LIST(s, K("/l\\/"), K("/l\\/1"));
	CHECK_LIST(s, K("/LS/"), K("/LS/a"));
	CHECK_LIST_EMPTY(s, K("/ls/zz"));
	CHECK_LIST_EMPTY(s, K("/l%_/3"));
}

/*
 * BUG (store_sqlite.c, store_list): `substr(key, 1, ?) = ?` binds the
 * prefix length in bytes, but SQLite's substr() counts characters for
 * TEXT, so a prefix with a multi-byte UTF-8 character matches nothing.
 */
static void
t_list_utf8(const struct driver *d, struct store *s)
{
	const char	*keys[] = { K("/ü/1"), K("/ü/2"), K("/üx/1") };
	const char	*vals[] = { "1", "2", "3" };
	struct err	 e = { E_OK, NULL };
	struct store_kv	*kvs = NULL;
	size_t		 n = 0;

	CHECK_INT(put_n(s, keys, vals, 3), 0);
	CHECK_INT(store_list(s, K("/ü/"), &kvs, &n, &e), 0);
	CHECK(n == 2 && strcmp(kvs[0].key, keys[0]) == 0 &&
	    strcmp(kvs[1].key, keys[1]) == 0);
	store_kvs_free(kvs, n);
	err_clear(&e);
}

static void
t_cmp_ok(const struct driver *d, struct store *s)
{
	struct store_txn	*t;
	struct err		 e = { E_OK, NULL };
	int64_t			 rev;

	CHECK_INT(put(s, K("/cmp/a"), "old"), 0);
	rev = rev_of(s, K("/cmp/a"));

	t = store_txn_new();
	CHECK_INT(store_txn_cmp(t, K("/cmp/a"), rev), 0);
	CHECK_INT(store_txn_put(t, K("/cmp/a"), "new"), 0);
	CHECKF(store_txn_commit(s, t, &e) == 0, "commit: %s", err_msg(&e));
	store_txn_free(t);
	CHECK_VALUE(s, K("/cmp/a"), "new");
	CHECK_INT(rev_of(s, K("/cmp/a")), rev + 1);

	/* 0: create only if absent. */
	t = store_txn_new();
	CHECK_INT(store_txn_cmp(t, K("/cmp/fresh"), 0), 0);
	CHECK_INT(store_txn_put(t, K("/cmp/fresh"), "created"), 0);
	CHECKF(store_txn_commit(s, t, &e) == 0, "commit: %s", err_msg(&e));
	store_txn_free(t);
	CHECK_VALUE(s, K("/cmp/fresh"), "created");

	/* A compare that holds on a key the txn does not write. */
	t = store_txn_new();
	CHECK_INT(store_txn_cmp(t, K("/cmp/fresh"), rev_of(s,
	    K("/cmp/fresh"))), 0);
	CHECK_INT(store_txn_put(t, K("/cmp/other"), "o"), 0);
	CHECKF(store_txn_commit(s, t, &e) == 0, "commit: %s", err_msg(&e));
	store_txn_free(t);
	CHECK_VALUE(s, K("/cmp/other"), "o");
	err_clear(&e);
}

static void
watch_count(const char *key, void *arg)
{
	(*(int *)arg)++;
}

/*
 * A txn whose compares do not all hold: -1, E_CONFLICT, and nothing of it
 * applied — no put, no delete, no new revision, no watcher called.
 */
static void
t_cmp_conflict(const struct driver *d, struct store *s)
{
	static const struct {
		const char	*name;
		int		 stale_a;	/* cmp a at its previous rev */
		int		 zero_a;	/* cmp a at 0 (must not exist) */
		int		 absent_rev;	/* cmp an absent key at a rev */
		int		 a_ok_b_stale;	/* first cmp holds, second not */
	} rows[] = {
		{ "stale mod_rev", 1, 0, 0, 0 },
		{ "0 (must not exist) on an existing key", 0, 1, 0, 0 },
		{ "a mod_rev on an absent key", 0, 0, 1, 0 },
		{ "second of two compares fails", 0, 0, 0, 1 },
	};
	size_t	 i;
	int	 fired = 0;

	CHECK_INT(store_watch(s, K("/cf/"), watch_count, &fired), 0);
	for (i = 0; i < NELEMS(rows); i++) {
		struct store_txn	*t;
		struct err		 e = { E_OK, NULL };
		int64_t			 ra_old, ra, rb, rc_, r0;
		char			 name[128];

		snprintf(name, sizeof(name), "%s: %s", d->name, rows[i].name);
		T_CASE(name);
		CHECK_INT(put(s, K("/cf/a"), "a1"), 0);
		ra_old = rev_of(s, K("/cf/a"));
		CHECK_INT(put(s, K("/cf/a"), "a2"), 0);
		CHECK_INT(put(s, K("/cf/c"), "c"), 0);
		ra = rev_of(s, K("/cf/a"));
		rb = rev_of(s, K("/cf/c"));
		rc_ = rb;
		r0 = store_revision(s);
		fired = 0;

		t = store_txn_new();
		if (rows[i].stale_a)
			store_txn_cmp(t, K("/cf/a"), ra_old);
		if (rows[i].zero_a)
			store_txn_cmp(t, K("/cf/a"), 0);
		if (rows[i].absent_rev)
			store_txn_cmp(t, K("/cf/absent"), ra);
		if (rows[i].a_ok_b_stale) {
			store_txn_cmp(t, K("/cf/a"), ra);
			store_txn_cmp(t, K("/cf/c"), rb - 1);
		}
		store_txn_put(t, K("/cf/new"), "must not appear");
		store_txn_put(t, K("/cf/a"), "must not replace a2");
		store_txn_del(t, K("/cf/c"));
		CHECK_INT(store_txn_commit(s, t, &e), -1);
		CHECK_INT(e.code, E_CONFLICT);
		CHECK(e.msg != NULL);
		store_txn_free(t);
		err_clear(&e);

		CHECK_VALUE(s, K("/cf/new"), NULL);
		CHECK_VALUE(s, K("/cf/a"), "a2");
		CHECK_INT(rev_of(s, K("/cf/a")), ra);
		CHECK_VALUE(s, K("/cf/c"), "c");
		CHECK_INT(rev_of(s, K("/cf/c")), rc_);
		CHECK_INT(store_revision(s), r0);
		CHECK_INT(fired, 0);
	}
	T_CASE(d->name);
}

static void
t_delete(const struct driver *d, struct store *s)
{
	struct store_txn	*t;
	struct err		 e = { E_OK, NULL };
	int64_t			 r0, rb;

	CHECK_INT(put(s, K("/del/a"), "a"), 0);
	CHECK_INT(put(s, K("/del/b"), "b"), 0);
	rb = rev_of(s, K("/del/b"));
	r0 = store_revision(s);
	CHECK_INT(del(s, K("/del/a")), 0);
	CHECK_VALUE(s, K("/del/a"), NULL);
	CHECK_INT(store_revision(s), r0 + 1);
	CHECK_INT(rev_of(s, K("/del/b")), rb);
	CHECK_LIST(s, K("/del/"), K("/del/b"));

	/* Delete and put in one txn; a re-created key gets a new rev. */
	t = store_txn_new();
	store_txn_del(t, K("/del/b"));
	store_txn_put(t, K("/del/a"), "again");
	CHECKF(store_txn_commit(s, t, &e) == 0, "commit: %s", err_msg(&e));
	store_txn_free(t);
	CHECK_VALUE(s, K("/del/b"), NULL);
	CHECK_VALUE(s, K("/del/a"), "again");
	CHECK_INT(rev_of(s, K("/del/a")), r0 + 2);
	CHECK_LIST(s, K("/del/"), K("/del/a"));
	err_clear(&e);
}

struct watch_rec {
	struct store	*s;
	int		 n;
	char		 key[256];
	char		 value[64];	/* of key, read inside the callback */
};

static void
watch_record(const char *key, void *arg)
{
	struct watch_rec	*w = arg;
	char			*v = NULL;
	struct err		 e = { E_OK, NULL };

	w->n++;
	snprintf(w->key, sizeof(w->key), "%s", key);
	/* "after a commit": what the commit wrote is readable here. */
	if (store_get(w->s, key, &v, NULL, &e) == 0)
		snprintf(w->value, sizeof(w->value), "%s", v);
	else
		snprintf(w->value, sizeof(w->value), "(absent)");
	free(v);
	err_clear(&e);
}

static void
t_watch(const struct driver *d, struct store *s)
{
	struct watch_rec	 wa = { s, 0, "", "" }, wb = { s, 0, "", "" };
	struct store_txn	*t;
	struct err		 e = { E_OK, NULL };
	const char		*two_a[] = { K("/w/a/1"), K("/w/a/2") };
	const char		*a_and_b[] = { K("/w/a/1"), K("/w/b/2") };
	const char		*vals[] = { "v1", "v2" };

	CHECK_INT(store_watch(s, K("/w/a/"), watch_record, &wa), 0);
	CHECK_INT(store_watch(s, K("/w/b/"), watch_record, &wb), 0);

	/* Two keys under a/ in one commit: a call for each (a watcher may
	 * act on the kind of key; the first one need not be it). */
	CHECK_INT(put_n(s, two_a, vals, 2), 0);
	CHECK_INT(wa.n, 2);
	CHECK_INT(wb.n, 0);
	CHECK(strncmp(wa.key, K("/w/a/"), strlen(K("/w/a/"))) == 0);
	CHECKF(strcmp(wa.value, "v1") == 0 || strcmp(wa.value, "v2") == 0,
	    "callback read \"%s\"", wa.value);

	CHECK_INT(put(s, K("/w/b/1"), "b"), 0);
	CHECK_INT(wa.n, 2);
	CHECK_INT(wb.n, 1);
	CHECK_STR(wb.key, K("/w/b/1"));
	CHECK_STR(wb.value, "b");

	/* Neighbours of the prefixes. */
	CHECK_INT(put(s, K("/w/c"), "c"), 0);
	CHECK_INT(put(s, K("/w/ab"), "ab"), 0);
	CHECK_INT(put(s, K("/w/a"), "a"), 0);
	CHECK_INT(wa.n, 2);
	CHECK_INT(wb.n, 1);

	/* One commit under both prefixes: each hears of its own key. */
	CHECK_INT(put_n(s, a_and_b, vals, 2), 0);
	CHECK_INT(wa.n, 3);
	CHECK_INT(wb.n, 2);
	CHECK_STR(wb.key, K("/w/b/2"));

	/* A delete is a change too. */
	CHECK_INT(del(s, K("/w/a/2")), 0);
	CHECK_INT(wa.n, 4);
	CHECK_STR(wa.key, K("/w/a/2"));
	CHECK_STR(wa.value, "(absent)");

	/* A commit that failed changed nothing: nobody hears of it. */
	t = store_txn_new();
	store_txn_cmp(t, K("/w/a/1"), 0);
	store_txn_put(t, K("/w/a/1"), "x");
	store_txn_put(t, K("/w/b/1"), "x");
	CHECK_INT(store_txn_commit(s, t, &e), -1);
	store_txn_free(t);
	CHECK_INT(wa.n, 4);
	CHECK_INT(wb.n, 2);
	err_clear(&e);
}

static void
t_persist(const struct driver *d, struct store *s)
{
	int64_t	 rev, ra;

	CHECK_INT(put(s, K("/p/a"), "persisted"), 0);
	CHECK_INT(del(s, K("/p/a-gone")), 0);
	rev = store_revision(s);
	ra = rev_of(s, K("/p/a"));
	store_close(s);

	if ((s = open_store(d)) == NULL)
		return;
	CHECK_VALUE(s, K("/p/a"), "persisted");
	CHECK_INT(rev_of(s, K("/p/a")), ra);
	CHECK_INT(store_revision(s), rev);
	/* The revision carries on, it does not restart. */
	CHECK_INT(put(s, K("/p/b"), "b"), 0);
	CHECK_INT(store_revision(s), rev + 1);
	CHECK_INT(rev_of(s, K("/p/b")), rev + 1);
	store_close(s);
}

static void
check_mode(const char *path, int must_exist, int line)
{
	struct stat st;

	t_checks++;
	if (stat(path, &st) == -1) {
		if (must_exist)
			T_FAIL_AT(__FILE__, line, "%s does not exist", path);
		return;
	}
	if ((st.st_mode & 07777) != 0600)
		T_FAIL_AT(__FILE__, line, "%s has mode %04o, want 0600", path,
		    (unsigned)(st.st_mode & 07777));
}

/* The store holds private keys: its files are for the owner only,
 * whatever the umask (main sets 0) and whatever the file had before. */
static void
t_file_mode(const struct driver *d, struct store *s)
{
	char	 side[PATH_MAX + 8];

	if (d->file[0] == '\0') {	/* no file: etcd keeps its own */
		store_close(s);
		return;
	}
	CHECK_INT(put(s, K("/mode/k"), "secret"), 0);
	check_mode(d->file, 1, __LINE__);
	/* While open in WAL mode, recent writes sit in these. */
	snprintf(side, sizeof(side), "%s-wal", d->file);
	check_mode(side, 0, __LINE__);
	snprintf(side, sizeof(side), "%s-shm", d->file);
	check_mode(side, 0, __LINE__);
	store_close(s);

	CHECK_INT(chmod(d->file, 0644), 0);
	if ((s = open_store(d)) == NULL)
		return;
	check_mode(d->file, 1, __LINE__);
	store_close(s);
}

static void t_remote_watch(const struct driver *, struct store *);

/* A commit says its revision; a list read at one revision says it too,
 * and holds exactly what that revision held. */
static void
t_revisions_out(const struct driver *d, struct store *s)
{
	struct store_txn	*t = store_txn_new();
	struct store_kv		*kvs = NULL;
	struct err		 e = { E_OK, NULL };
	size_t			 n = 0;
	int64_t			 crev = 0, lrev = 0;

	store_txn_put(t, K("/ro/a"), "1");
	store_txn_put(t, K("/ro/b"), "2");
	CHECKF(store_txn_commit_rev(s, t, &crev, &e) == 0, "commit: %s",
	    err_msg(&e));
	store_txn_free(t);
	CHECK(crev > 0);
	CHECK(crev == store_revision(s));
	CHECK_INT(store_list_at(s, K("/ro/"), &kvs, &n, &lrev, &e), 0);
	CHECK_INT((int)n, 2);
	CHECK(lrev == crev);
	store_kvs_free(kvs, n);
	err_clear(&e);
}

/* A transaction over the store's limit of operations fails whole and
 * says so; one within it commits. */
static void
t_txn_limit(const struct driver *d, struct store *s)
{
	struct store_txn	*t = store_txn_new();
	struct err		 e = { E_OK, NULL };
	char			 key[128];
	int			 i, max = store_max_txn_ops(s);
	int			 n = max > 0 ? max + 1 : 300;
	char			*v = NULL;

	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%s%d", K("/lim/"), i);
		store_txn_put(t, key, "x");
	}
	if (max > 0) {
		CHECK_INT(store_txn_commit(s, t, &e), -1);
		CHECK_INT(e.code, E_STORE);
		CHECK_HAS(err_msg(&e), "limit");
		snprintf(key, sizeof(key), "%s0", K("/lim/"));
		CHECK_INT(store_get(s, key, &v, NULL, NULL), 1);
		free(v);
	} else {
		CHECKF(store_txn_commit(s, t, &e) == 0, "commit: %s",
		    err_msg(&e));
	}
	store_txn_free(t);
	err_clear(&e);
	/* The shared store (etcd) is the one with a limit. */
	CHECK_INT(max > 0, store_is_shared(s));
}

/* A transaction one of whose operations could not be added never
 * commits the rest (a NULL transaction stands for one that could not be
 * made at all). */
static void
t_txn_sticky(const struct driver *d, struct store *s)
{
	struct err e = { E_OK, NULL };

	CHECK_INT(store_txn_put(NULL, K("/st/a"), "1"), -1);
	CHECK_INT(store_txn_commit(s, NULL, &e), -1);
	CHECK_INT(e.code, E_INTERNAL);
	err_clear(&e);
}

static const struct {
	const char	*name;
	void		(*fn)(const struct driver *, struct store *);
	int		 closes;	/* fn closes the store itself */
} tests[] = {
	{ "get absent", t_get_absent, 0 },
	{ "put then get", t_put_get, 0 },
	{ "revision per commit", t_revision, 0 },
	{ "untouched keys keep mod_rev", t_untouched, 0 },
	{ "list by prefix", t_list, 0 },
	{ "list by a UTF-8 prefix", t_list_utf8, 0 },
	{ "compare holds", t_cmp_ok, 0 },
	{ "compare fails", t_cmp_conflict, 0 },
	{ "delete", t_delete, 0 },
	{ "watch", t_watch, 0 },
	{ "watch another writer", t_remote_watch, 0 },
	{ "revisions of commits and lists", t_revisions_out, 0 },
	{ "transaction limit", t_txn_limit, 0 },
	{ "incomplete transaction", t_txn_sticky, 0 },
	{ "persistence", t_persist, 1 },
	{ "file mode", t_file_mode, 1 },
};

/*
 * Another writer (another node on the same store) commits: this handle's
 * watchers hear it through store_event_fd + store_dispatch.  Drivers with
 * a single writer (sqlite) have no event fd.
 */
static void
t_remote_watch(const struct driver *d, struct store *s)
{
	struct watch_rec	 wa = { s, 0, "", "" };
	struct store		*other;
	struct pollfd		 pfd;
	int			 i;

	CHECK_INT(store_watch(s, K("/rw/"), watch_record, &wa), 0);
	if (store_event_fd(s) == -1) {
		CHECK_STR(store_driver_name(s), "sqlite");
		return;
	}
	if ((other = open_store(d)) == NULL)
		return;
	CHECK_INT(put(other, K("/rw/x"), "from elsewhere"), 0);
	pfd.fd = store_event_fd(s);
	pfd.events = POLLIN;
	for (i = 0; i < 50 && wa.n == 0; i++) {
		if (poll(&pfd, 1, 100) == 1)
			store_dispatch(s);
	}
	CHECK_INT(wa.n, 1);
	CHECK_STR(wa.key, K("/rw/x"));
	CHECK_STR(wa.value, "from elsewhere");
	store_close(other);
}

static void
rm_tmpdir(void)
{
	DIR		*dir = opendir(tmpdir);
	struct dirent	*de;
	char		 p[PATH_MAX + 300];

	while (dir != NULL && (de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, de->d_name);
		unlink(p);
	}
	if (dir != NULL)
		closedir(dir);
	rmdir(tmpdir);
}

int
main(void)
{
	struct driver	 drivers[NELEMS(driver_defs) + 1];
	struct err	 e = { E_OK, NULL };
	size_t		 nd = 0, i, j;
	const char	*env;
	char		 name[200];

	umask(0);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(ns, sizeof(ns), "/moat-test-%ld-%ld", (long)getpid(),
	    (long)time(NULL));
	for (i = 0; i < NELEMS(driver_defs); i++, nd++) {
		drivers[nd].name = driver_defs[i].name;
		snprintf(drivers[nd].url, sizeof(drivers[nd].url),
		    driver_defs[i].url_fmt, tmpdir);
		snprintf(drivers[nd].file, sizeof(drivers[nd].file),
		    driver_defs[i].file_fmt, tmpdir);
	}
	if ((env = getenv("MOAT_TEST_STORE_URL")) != NULL && *env != '\0') {
		drivers[nd].name = env;
		snprintf(drivers[nd].url, sizeof(drivers[nd].url), "%s", env);
		drivers[nd].file[0] = '\0';
		nd++;
	}

	for (i = 0; i < nd; i++) {
		for (j = 0; j < NELEMS(tests); j++) {
			struct store *s;

			snprintf(name, sizeof(name), "%s: %s", drivers[i].name,
			    tests[j].name);
			T_CASE(name);
			if ((s = open_store(&drivers[i])) == NULL)
				continue;
			tests[j].fn(&drivers[i], s);
			if (!tests[j].closes)
				store_close(s);
		}
	}

	T_CASE("unknown store url");
	CHECK(store_open("nosuch:thing", tmpdir, &e) == NULL);
	CHECK_INT(e.code, E_STORE);
	CHECK_HAS(err_msg(&e), "nosuch");
	err_clear(&e);

	rm_tmpdir();
	return T_DONE();
}
