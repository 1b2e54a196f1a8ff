/*
 * rollout.h — deferred replies: a change that must be served by every
 * live node parks its request here; the request is answered when the
 * nodes' reports (under the store's node keys) show it served, or when
 * its timeout fires.  Nothing waits: the control thread goes on serving.
 */
#ifndef MOATD_ROLLOUT_H
#define MOATD_ROLLOUT_H

#include <stdint.h>

#include <jansson.h>

#include "node.h"
#include "schema.h"

#define ROLLOUT_TIMEOUT_MS	10000

/* What every live node must report to count as updated. */
struct rollout_want {
	int64_t	 rev;			/* store revision applied */
	int	 versions[CERT__COUNT];	/* certificate versions (0: any) */
	int	 only_uid;		/* wait for this node only (0: all);
					   a node that joins waits for itself */
};

/* all_ok: every node (live or not) serves it; nodes: per node, borrowed. */
typedef void	(*rollout_done_fn)(void *arg, int all_ok, json_t *nodes);

struct rollout;
struct rollout_wait;

struct rollout	*rollout_new(struct node *n);
/* Parked requests are dropped without their callback. */
void		 rollout_free(struct rollout *ro);
/*
 * Call done once every live node reports want, or after timeout_ms
 * with what they report then; done always runs from the event loop,
 * never inside this call.  Returns the wait (for rollout_cancel), or
 * NULL when out of memory (done is then never called).
 */
struct rollout_wait *rollout_park(struct rollout *ro,
		    const struct rollout_want *want, int timeout_ms,
		    rollout_done_fn done, void *arg);
/* Forget a wait without calling back (its client went away). */
void		 rollout_cancel(struct rollout_wait *w);
/* The nodes' reports changed: answer the waits that are complete. */
void		 rollout_check(struct rollout *ro);
/* Per node {uid, addr, status, applied_rev, certificates}; *all_ok when
 * every node serves want; *pending when a live node does not yet. */
json_t		*rollout_status(struct node *n, const struct rollout_want *w,
		    int *all_ok, int *pending);
/* Waits answered since start: every node served the change (complete),
 * or the timeout came first or a node was down (partial). */
void		 rollout_counts(struct rollout *ro, uint64_t *complete,
		    uint64_t *partial);

#endif
