/*
 * apply.h — the store watch's only consumer: turns one consistent read of
 * the store into what this node serves (TLS contexts, database endpoints,
 * shard configurations, files under certs/), then reports what it serves
 * in its node document.  Nothing else changes what the node serves, and
 * apply never writes configuration: writers never call it.
 */
#ifndef MOATD_APPLY_H
#define MOATD_APPLY_H

#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "node.h"
#include "proxy.h"
#include "schema.h"

/* Start the data plane (proxy workers, shard supervisor). */
int		 apply_init(struct node *n, struct err *e);
void		 apply_shutdown(struct node *n);
/* Something under the store's root changed: apply on the next turn of
 * the loop (changes arriving meanwhile are coalesced into one read). */
void		 apply_schedule(struct node *n);
/* Apply at once: at start, before the listeners take their first
 * connection (the loop does not run yet, so nothing waits for it). */
void		 apply_now(struct node *n);
/* Serve what this node last applied, from DIR/applied.json, while its
 * store does not answer yet.  0 when there was something to serve. */
int		 apply_from_cache(struct node *n, struct err *e);
/* Report this node as stopped (clean shutdown). */
void		 apply_report_down(struct node *n);

/* ---- what this node serves, for readers (owned by apply) ---- */

/* 1 once a cluster document was applied. */
int		 apply_has_cluster(struct node *n);
/* The cluster as last applied (borrowed). */
const struct cluster_doc *apply_cluster(struct node *n);
/* The context served for certificate id (borrowed), or NULL. */
struct tlsctx	*apply_ctx(struct node *n, int id);
int		 apply_version(struct node *n, int id);
const char	*apply_fingerprint(struct node *n, int id);
/* The store revision last applied. */
int64_t		 apply_revision(struct node *n);
/* 1 when this node's shard of database uid is up. */
int		 apply_bdb_up(struct node *n, int uid);
/* Replica Of state of database uid on this node, now: {status, lag,
 * last_error}; NULL when it does not replicate here.  New reference. */
json_t		*apply_bdb_replication(struct node *n, int uid);

/* What the metrics exporter shows of apply. */
struct apply_stats {
	uint64_t	 runs_ok, runs_failed;	/* applies since start */
	int		 store_up;	/* the last read of the store worked */
	int64_t		 rev;		/* store revision last applied */
	time_t		 last_ok;	/* when the last good apply ran */
	time_t		 ca_not_after;	/* the cluster CA's; 0: none */
};
void		 apply_stats(struct node *n, struct apply_stats *out);
/* notAfter of the certificate id this node serves; 0: none. */
time_t		 apply_not_after(struct node *n, int id);
/* Each database endpoint this node serves: its counters, and its live
 * connections by enum proxy_proto as last counted (every few seconds). */
typedef void	(*apply_bdb_stats_cb)(int uid,
		    const struct proxy_port_stats *io, const int *live,
		    void *arg);
void		 apply_bdb_stats(struct node *n, apply_bdb_stats_cb cb,
		    void *arg);

/* Live sessions by port kind and TLS version, this node, now:
 * {"api": {"TLSv1.2": n, ...}, "proxy": {...}} (borrowed by cb), counted
 * by the data workers: cb runs later, on the control thread. */
typedef void	(*apply_sessions_cb)(json_t *sessions, void *arg);
int		 apply_sessions_async(struct node *n, apply_sessions_cb cb,
		    void *arg);

#endif
