/*
 * apply_bdbs.h — the databases this node runs: for each database document
 * of a snapshot that names this node, a shard (redis-server) and an
 * endpoint (TLS in front of it).  Part of apply; only apply.c calls it.
 */
#ifndef MOATD_APPLY_BDBS_H
#define MOATD_APPLY_BDBS_H

#include "apply.h"
#include "node.h"
#include "schema.h"
#include "store.h"
#include "x509.h"

struct apply_bdbs;

struct apply_bdbs *apply_bdbs_new(struct node *n, struct err *e);
void	 apply_bdbs_free(struct apply_bdbs *b);
/*
 * Make shards and endpoints match the database documents among kv[0..n).
 * proxy, syncer: the material of those certificates (borrowed).
 * data_changed: one of them or the data policy changed, so every
 * endpoint and replica link gets a new TLS context (for its next
 * connections: open ones keep theirs).
 */
void	 apply_bdbs_run(struct apply_bdbs *b, struct node *n,
	    const struct store_kv *kv, size_t nkv,
	    const struct x509_material *proxy,
	    const struct x509_material *syncer,
	    const struct cluster_policy *policy, int data_changed);
/* The OCSP response (DER, copied; NULL: none) that endpoints staple
 * until until; applies to contexts built from now on (apply_bdbs_run
 * with data_changed set rebuilds them all). */
int	 apply_bdbs_set_staple(struct apply_bdbs *b, const unsigned char *der,
	    size_t len, time_t until);
/* Replica Of state of database uid ({status, lag, last_error}), or of
 * every replicating database by uid when uid is 0; NULL when uid does
 * not replicate here.  New reference. */
json_t	*apply_bdbs_replication(struct apply_bdbs *b, int uid);
/* Close database connections that negotiated below min_version; cb
 * gets how many (on the control thread, later). */
void	 apply_bdbs_close_below(struct apply_bdbs *b, int min_version,
	    void (*cb)(int closed, void *arg), void *arg);
int	 apply_bdbs_up(struct apply_bdbs *b, int uid);
/* Live TLS connections to databases by version; cb runs later. */
typedef void (*apply_count_cb)(int tls12, int tls13, void *arg);
/* arg_free (may be NULL) frees arg when the count never comes back
 * (the node stops first). */
int	 apply_bdbs_count_versions(struct apply_bdbs *b, apply_count_cb cb,
	    void *arg, void (*arg_free)(void *));
/* See apply_bdb_stats (apply.h). */
void	 apply_bdbs_stats(struct apply_bdbs *b, apply_bdb_stats_cb cb,
	    void *arg);

#endif
