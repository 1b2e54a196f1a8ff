/*
 * store.h — the cluster store: the one source of truth for certificates,
 * policy, nodes and users.
 *
 * A small key/value interface with etcd v3's semantics, so that the
 * embedded SQLite driver and the etcd driver are interchangeable:
 * every key carries the revision of its last change (mod_rev), a
 * transaction applies its puts and deletes only if every compare holds,
 * and watchers hear about committed changes under a prefix.
 * Values are NUL-terminated strings (JSON documents).
 */
#ifndef MOAT_STORE_H
#define MOAT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"

struct store;
struct store_txn;

struct store_kv {
	char	*key;
	char	*value;
	int64_t	 mod_rev;
};

/* Called for each key under the watched prefix that a commit touched. */
typedef void (*store_watch_cb)(const char *key, void *arg);

/*
 * url: "sqlite" (the file <data_dir>/cluster.db, mode 0600),
 * "sqlite:<path>", or "etcd://host:port[,host:port...]" (etcd v3 through
 * its JSON gateway).  Returns NULL with e set on failure.
 */
struct store	*store_open(const char *url, const char *data_dir,
		    struct err *e);
void		 store_close(struct store *s);

/* 0 found (*val owned by the caller), 1 absent, -1 error. */
int		 store_get(struct store *s, const char *key, char **val,
		    int64_t *mod_rev, struct err *e);
/* All keys under prefix, sorted; *kvs owned by caller (store_kvs_free). */
int		 store_list(struct store *s, const char *prefix,
		    struct store_kv **kvs, size_t *n, struct err *e);
/* The same, read at one revision of the whole store, returned in *rev:
 * a consistent snapshot. */
int		 store_list_at(struct store *s, const char *prefix,
		    struct store_kv **kvs, size_t *n, int64_t *rev,
		    struct err *e);
void		 store_kvs_free(struct store_kv *kvs, size_t n);
/* Current revision of the whole store. */
int64_t		 store_revision(struct store *s);

struct store_txn *store_txn_new(void);
/* The key must have this mod_rev when the transaction commits; 0 means
 * it must not exist. */
int		 store_txn_cmp(struct store_txn *t, const char *key,
		    int64_t mod_rev);
int		 store_txn_put(struct store_txn *t, const char *key,
		    const char *value);
int		 store_txn_del(struct store_txn *t, const char *key);
/* Put the compact JSON of doc (borrowed); the serialised copy is wiped. */
int		 store_txn_put_json(struct store_txn *t, const char *key,
		    const json_t *doc);
/* All or nothing.  A failed compare is E_CONFLICT; a transaction one of
 * whose operations could not be added (out of memory) fails whole
 * (E_INTERNAL) instead of committing the rest.  Watchers run after the
 * commit, before this returns.  t stays owned by the caller. */
int		 store_txn_commit(struct store *s, struct store_txn *t,
		    struct err *e);
/* The same; *rev is the store revision the commit created. */
int		 store_txn_commit_rev(struct store *s, struct store_txn *t,
		    int64_t *rev, struct err *e);
/* Operations in t so far. */
size_t		 store_txn_len(const struct store_txn *t);
/* Wipes the values (they may hold keys) and frees. */
void		 store_txn_free(struct store_txn *t);

/*
 * Watchers hear about this process's own commits before store_txn_commit
 * returns, and about other nodes' commits when the control thread calls
 * store_dispatch() after store_event_fd() became readable.
 */
int		 store_watch(struct store *s, const char *prefix,
		    store_watch_cb cb, void *arg);
/* Readable when changes from elsewhere wait; -1 for a driver with none. */
int		 store_event_fd(struct store *s);
void		 store_dispatch(struct store *s);
/* "sqlite" or "etcd", for messages only: ask for capabilities below. */
const char	*store_driver_name(struct store *s);
/* 1 when other nodes can share this store (join a cluster on it). */
int		 store_is_shared(struct store *s);
/* Most operations one transaction may hold; 0 when unlimited. */
int		 store_max_txn_ops(struct store *s);
/* The URL the store was opened with (for other nodes to join it). */
const char	*store_url(struct store *s);
/*
 * Announce this process: key = value exists while it lives.  With etcd
 * the key is bound to a lease of ttl seconds that a thread keeps alive,
 * so a node that dies or loses the store disappears within ttl.  With a
 * single-writer driver it is a plain put (the caller deletes it on a
 * clean stop).
 */
int		 store_presence(struct store *s, const char *key,
		    const char *value, int ttl, struct err *e);

#endif
