/*
 * store_sqlite.c — the embedded single-node store driver.
 *
 * One table of (key, value, mod_rev) plus the store revision, in WAL mode
 * with synchronous=FULL: a transaction that returned is on disk.
 * Watchers are in-process: there is only one node on this store.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store_impl.h"

struct sqlite_store {
	sqlite3		*db;
};

static int
store_exec(struct sqlite_store *s, const char *sql, struct err *e)
{
	char *msg = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		err_set(e, E_STORE, "store: %s", msg ? msg : "error");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int
sqlite_match(const char *url)
{
	return strcmp(url, "sqlite") == 0 || strncmp(url, "sqlite:", 7) == 0;
}

static void *
sqlite_open(struct store *parent, const char *url, const char *data_dir,
    struct err *e)
{
	struct sqlite_store	*s;
	char		*path = NULL;
	int		 fd;

	if (strcmp(url, "sqlite") == 0) {
		if (asprintf(&path, "%s/cluster.db", data_dir) == -1)
			path = NULL;
	} else if (strncmp(url, "sqlite:", 7) == 0) {
		path = strdup(url + 7);
	}
	if (path == NULL || (s = calloc(1, sizeof(*s))) == NULL) {
		free(path);
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	/* Create the file 0600 ourselves: it holds private keys. */
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) != -1) {
		fchmod(fd, 0600);
		close(fd);
	}
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		err_set(e, E_STORE, "cannot open store %s: %s", path,
		    s->db ? sqlite3_errmsg(s->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 5000);
	if (store_exec(s, "PRAGMA journal_mode=WAL;"
	    "PRAGMA synchronous=FULL;"
	    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, "
	    "  value TEXT NOT NULL, mod_rev INTEGER NOT NULL);"
	    "CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY "
	    "  CHECK (id = 1), revision INTEGER NOT NULL);"
	    "INSERT OR IGNORE INTO meta VALUES (1, 0);", e) == -1)
		goto fail;
	free(path);
	return s;
fail:
	free(path);
	sqlite3_close(s->db);
	free(s);
	return NULL;
}

static void
sqlite_close(void *impl)
{
	struct sqlite_store *s = impl;

	sqlite3_close(s->db);
	free(s);
}

static int
sqlite_get(void *impl, const char *key, char **val, int64_t *mod_rev,
    struct err *e)
{
	struct sqlite_store *s = impl;
	sqlite3_stmt	*st;
	int		 rc;

	*val = NULL;
	if (sqlite3_prepare_v2(s->db, "SELECT value, mod_rev FROM kv WHERE "
	    "key = ?", -1, &st, NULL) != SQLITE_OK)
		return err_set(e, E_STORE, "store: %s", sqlite3_errmsg(s->db));
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*val = strdup((const char *)sqlite3_column_text(st, 0));
		if (mod_rev != NULL)
			*mod_rev = sqlite3_column_int64(st, 1);
		rc = *val != NULL ? 0 : err_set(e, E_INTERNAL, "out of memory");
	} else if (rc == SQLITE_DONE) {
		if (mod_rev != NULL)
			*mod_rev = 0;
		rc = 1;
	} else {
		rc = err_set(e, E_STORE, "store: %s", sqlite3_errmsg(s->db));
	}
	sqlite3_finalize(st);
	return rc;
}

static int64_t sqlite_revision(void *impl);
static int sqlite_list_rows(struct sqlite_store *, const char *,
    struct store_kv **, size_t *, struct err *);

/* One reader transaction for the rows and the revision: a snapshot. */
static int
sqlite_list(void *impl, const char *prefix, struct store_kv **kvs,
    size_t *n, int64_t *rev, struct err *e)
{
	struct sqlite_store *s = impl;
	int rc;

	if (rev == NULL)
		return sqlite_list_rows(s, prefix, kvs, n, e);
	if (store_exec(s, "BEGIN", e) == -1)
		return -1;
	if ((rc = sqlite_list_rows(s, prefix, kvs, n, e)) == 0)
		*rev = sqlite_revision(s);
	store_exec(s, "COMMIT", NULL);
	return rc;
}

static int
sqlite_list_rows(struct sqlite_store *s, const char *prefix,
    struct store_kv **kvs, size_t *n, struct err *e)
{
	sqlite3_stmt	*st;
	struct store_kv	*v = NULL, *nv;
	size_t		 cnt = 0, plen = strlen(prefix);
	int		 rc;

	*kvs = NULL;
	*n = 0;
	/* substr() on bytes instead of LIKE: keys may contain '%', '_' or
	 * multi-byte characters. */
	if (sqlite3_prepare_v2(s->db, "SELECT key, value, mod_rev FROM kv "
	    "WHERE substr(CAST(key AS BLOB), 1, ?) = CAST(? AS BLOB) "
	    "ORDER BY key", -1, &st, NULL) !=
	    SQLITE_OK)
		return err_set(e, E_STORE, "store: %s", sqlite3_errmsg(s->db));
	sqlite3_bind_int64(st, 1, (sqlite3_int64)plen);
	sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = realloc(v, (cnt + 1) * sizeof(*v))) == NULL)
			break;
		v = nv;
		v[cnt].key = strdup((const char *)sqlite3_column_text(st, 0));
		v[cnt].value = strdup((const char *)sqlite3_column_text(st, 1));
		v[cnt].mod_rev = sqlite3_column_int64(st, 2);
		cnt++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		store_kvs_free(v, cnt);
		return err_set(e, E_STORE, "store: list %s failed", prefix);
	}
	*kvs = v;
	*n = cnt;
	return 0;
}

static int64_t
sqlite_revision(void *impl)
{
	struct sqlite_store *s = impl;
	sqlite3_stmt	*st;
	int64_t		 rev = -1;

	if (sqlite3_prepare_v2(s->db, "SELECT revision FROM meta", -1, &st,
	    NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		rev = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rev;
}

static int
store_txn_apply(struct sqlite_store *s, const struct store_txn *t, int writes,
    int64_t *out_rev, struct err *e)
{
	sqlite3_stmt	*st = NULL;
	int64_t		 rev = sqlite_revision(s) + 1, have;
	size_t		 i;
	char		*v;

	for (i = 0; i < t->n; i++) {
		struct txn_op *op = &t->ops[i];
		if (op->kind != OP_CMP)
			continue;
		if (sqlite_get(s, op->key, &v, &have, e) == -1)
			return -1;
		if (v != NULL) {
			explicit_bzero(v, strlen(v));
			free(v);
		}
		if (have != op->mod_rev)
			return err_set(e, E_CONFLICT, "%s was changed by "
			    "someone else; read it again and retry", op->key);
	}
	for (i = 0; i < t->n; i++) {
		struct txn_op *op = &t->ops[i];
		if (op->kind == OP_CMP)
			continue;
		if (sqlite3_prepare_v2(s->db, op->kind == OP_PUT ?
		    "INSERT OR REPLACE INTO kv VALUES (?, ?, ?)" :
		    "DELETE FROM kv WHERE key = ?", -1, &st, NULL) != SQLITE_OK)
			goto fail;
		sqlite3_bind_text(st, 1, op->key, -1, SQLITE_STATIC);
		if (op->kind == OP_PUT) {
			sqlite3_bind_text(st, 2, op->value, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, rev);
		}
		if (sqlite3_step(st) != SQLITE_DONE)
			goto fail;
		sqlite3_finalize(st);
		st = NULL;
	}
	/* Like etcd: a transaction that only compares is not a revision. */
	if (out_rev != NULL)
		*out_rev = writes ? rev : rev - 1;
	if (!writes)
		return 0;
	if (sqlite3_prepare_v2(s->db, "UPDATE meta SET revision = ?", -1, &st,
	    NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, rev);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	return 0;
fail:
	err_set(e, E_STORE, "store: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return -1;
}

static int
sqlite_commit(void *impl, const struct store_txn *t, int64_t *rev,
    struct err *e)
{
	struct sqlite_store	*s = impl;
	size_t			 i, writes = 0;

	for (i = 0; i < t->n; i++)
		if (t->ops[i].kind != OP_CMP)
			writes++;
	if (store_exec(s, "BEGIN IMMEDIATE", e) == -1)
		return -1;
	if (store_txn_apply(s, t, writes > 0, rev, e) == -1) {
		store_exec(s, "ROLLBACK", NULL);
		return -1;
	}
	if (store_exec(s, "COMMIT", e) == -1) {
		store_exec(s, "ROLLBACK", NULL);
		return -1;
	}
	return 0;
}

/* One writer: this process.  No watch stream is needed. */
const struct store_driver store_sqlite_driver = {
	.name = "sqlite",
	.match = sqlite_match,
	.open = sqlite_open,
	.close = sqlite_close,
	.get = sqlite_get,
	.list = sqlite_list,
	.revision = sqlite_revision,
	.commit = sqlite_commit,
	.watch = NULL,
	.max_txn_ops = 0,
	.shared = 0,
};
