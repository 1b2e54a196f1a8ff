/*
 * apply_bdbs.h — the databases this node runs: for each database document
 * of a snapshot that names this node, a shard (redis-server) and an
 * endpoint (TLS in front of it).  Part of apply; only apply.c calls it.
 */
#ifndef MOATD_APPLY_BDBS_H
#define MOATD_APPLY_BDBS_H

#include "node.h"
#include "schema.h"
#include "store.h"
#include "x509.h"

struct apply_bdbs;

struct apply_bdbs *apply_bdbs_new(struct node *n, struct err *e);
void	 apply_bdbs_free(struct apply_bdbs *b);
/*
 * Make shards and endpoints match the database documents among kv[0..n).
 * proxy: the material of the proxy certificate (borrowed).  data_changed:
 * the proxy certificate or the data policy changed, so every endpoint
 * gets a new TLS context.
 */
void	 apply_bdbs_run(struct apply_bdbs *b, struct node *n,
	    const struct store_kv *kv, size_t nkv,
	    const struct x509_material *proxy,
	    const struct cluster_policy *policy, int data_changed);
/* Close database connections that negotiated below min_version; cb
 * gets how many (on the control thread, later). */
void	 apply_bdbs_close_below(struct apply_bdbs *b, int min_version,
	    void (*cb)(int closed, void *arg), void *arg);
int	 apply_bdbs_up(struct apply_bdbs *b, int uid);
/* Live TLS connections to databases by version; cb runs later. */
typedef void (*apply_count_cb)(int tls12, int tls13, void *arg);
int	 apply_bdbs_count_versions(struct apply_bdbs *b, apply_count_cb cb,
	    void *arg);

#endif
