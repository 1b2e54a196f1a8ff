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

#include "store.h"

#define STORE_MAX_WATCH	16

enum txn_op_kind { OP_CMP, OP_PUT, OP_DEL };

struct txn_op {
	enum txn_op_kind kind;
	char		*key;
	char		*value;
	int64_t		 mod_rev;
};

struct store_txn {
	struct txn_op	*ops;
	size_t		 n, cap;
};

struct store {
	sqlite3		*db;
	struct {
		char		*prefix;
		store_watch_cb	 cb;
		void		*arg;
	} watch[STORE_MAX_WATCH];
	int		 nwatch;
};

static int
store_exec(struct store *s, const char *sql, struct err *e)
{
	char *msg = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		err_set(e, E_STORE, "store: %s", msg ? msg : "error");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

struct store *
store_open(const char *url, const char *data_dir, struct err *e)
{
	struct store	*s;
	char		*path = NULL;
	int		 fd;

	if (strcmp(url, "sqlite") == 0) {
		if (asprintf(&path, "%s/cluster.db", data_dir) == -1)
			path = NULL;
	} else if (strncmp(url, "sqlite:", 7) == 0) {
		path = strdup(url + 7);
	} else {
		err_set(e, E_STORE, "unsupported store \"%s\": this build "
		    "knows \"sqlite\"", url);
		return NULL;
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

void
store_close(struct store *s)
{
	int i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nwatch; i++)
		free(s->watch[i].prefix);
	sqlite3_close(s->db);
	free(s);
}

int
store_get(struct store *s, const char *key, char **val, int64_t *mod_rev,
    struct err *e)
{
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

int
store_list(struct store *s, const char *prefix, struct store_kv **kvs,
    size_t *n, struct err *e)
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

void
store_kvs_free(struct store_kv *kvs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(kvs[i].key);
		if (kvs[i].value != NULL) {
			explicit_bzero(kvs[i].value, strlen(kvs[i].value));
			free(kvs[i].value);
		}
	}
	free(kvs);
}

int64_t
store_revision(struct store *s)
{
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

struct store_txn *
store_txn_new(void)
{
	return calloc(1, sizeof(struct store_txn));
}

static int
store_txn_add(struct store_txn *t, enum txn_op_kind k, const char *key,
    const char *value, int64_t rev)
{
	struct txn_op *nops;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		if ((nops = realloc(t->ops, cap * sizeof(*nops))) == NULL)
			return -1;
		t->ops = nops;
		t->cap = cap;
	}
	t->ops[t->n].kind = k;
	t->ops[t->n].key = strdup(key);
	t->ops[t->n].value = value ? strdup(value) : NULL;
	t->ops[t->n].mod_rev = rev;
	if (t->ops[t->n].key == NULL || (value && !t->ops[t->n].value))
		return -1;
	t->n++;
	return 0;
}

int
store_txn_cmp(struct store_txn *t, const char *key, int64_t mod_rev)
{
	return store_txn_add(t, OP_CMP, key, NULL, mod_rev);
}

int
store_txn_put(struct store_txn *t, const char *key, const char *value)
{
	return store_txn_add(t, OP_PUT, key, value, 0);
}

int
store_txn_del(struct store_txn *t, const char *key)
{
	return store_txn_add(t, OP_DEL, key, NULL, 0);
}

void
store_txn_free(struct store_txn *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++) {
		free(t->ops[i].key);
		if (t->ops[i].value != NULL) {
			explicit_bzero(t->ops[i].value,
			    strlen(t->ops[i].value));
			free(t->ops[i].value);
		}
	}
	free(t->ops);
	free(t);
}

static int
store_txn_apply(struct store *s, struct store_txn *t, int writes,
    struct err *e)
{
	sqlite3_stmt	*st = NULL;
	int64_t		 rev = store_revision(s) + 1, have;
	size_t		 i;
	char		*v;

	for (i = 0; i < t->n; i++) {
		struct txn_op *op = &t->ops[i];
		if (op->kind != OP_CMP)
			continue;
		if (store_get(s, op->key, &v, &have, e) == -1)
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

int
store_txn_commit(struct store *s, struct store_txn *t, struct err *e)
{
	size_t	 i, writes = 0;
	int	 w;

	for (i = 0; i < t->n; i++)
		if (t->ops[i].kind != OP_CMP)
			writes++;
	if (store_exec(s, "BEGIN IMMEDIATE", e) == -1)
		return -1;
	if (store_txn_apply(s, t, writes > 0, e) == -1) {
		store_exec(s, "ROLLBACK", NULL);
		return -1;
	}
	if (store_exec(s, "COMMIT", e) == -1) {
		store_exec(s, "ROLLBACK", NULL);
		return -1;
	}
	/* Tell each watcher once per transaction about the first key under
	 * its prefix: it re-reads what it cares about anyway. */
	for (w = 0; w < s->nwatch; w++) {
		size_t plen = strlen(s->watch[w].prefix);
		for (i = 0; i < t->n; i++) {
			if (t->ops[i].kind == OP_CMP ||
			    strncmp(t->ops[i].key, s->watch[w].prefix, plen))
				continue;
			s->watch[w].cb(t->ops[i].key, s->watch[w].arg);
			break;
		}
	}
	return 0;
}

int
store_watch(struct store *s, const char *prefix, store_watch_cb cb,
    void *arg)
{
	if (s->nwatch == STORE_MAX_WATCH)
		return -1;
	if ((s->watch[s->nwatch].prefix = strdup(prefix)) == NULL)
		return -1;
	s->watch[s->nwatch].cb = cb;
	s->watch[s->nwatch].arg = arg;
	s->nwatch++;
	return 0;
}
