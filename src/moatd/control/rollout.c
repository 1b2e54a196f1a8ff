/*
 * rollout.c — see rollout.h.
 *
 * Waits are checked when the store says a node's report or presence
 * changed (node.c's watch calls rollout_check), and each has a libevent
 * timer for its timeout.  A node that is down cannot confirm: it counts
 * as not updated (it applies the change when it returns) but is not
 * waited for.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "log.h"
#include "nodes.h"
#include "rollout.h"

struct rollout_wait {
	struct rollout			*ro;
	struct rollout_want		 want;
	rollout_done_fn			 done;
	void				*arg;
	struct event			*timer;	/* the timeout */
	struct event			*first;	/* the first check */
	TAILQ_ENTRY(rollout_wait)	 entry;
};

struct rollout {
	struct node			*n;
	uint64_t			 answered[2];	/* partial, complete */
	TAILQ_HEAD(, rollout_wait)	 waits;
};

struct rollout *
rollout_new(struct node *n)
{
	struct rollout *ro;

	if ((ro = calloc(1, sizeof(*ro))) == NULL)
		return NULL;
	ro->n = n;
	TAILQ_INIT(&ro->waits);
	return ro;
}

static void
rollout_wait_free(struct rollout_wait *w)
{
	TAILQ_REMOVE(&w->ro->waits, w, entry);
	if (w->timer != NULL)
		event_free(w->timer);
	if (w->first != NULL)
		event_free(w->first);
	free(w);
}

void
rollout_free(struct rollout *ro)
{
	if (ro == NULL)
		return;
	while (!TAILQ_EMPTY(&ro->waits))
		rollout_wait_free(TAILQ_FIRST(&ro->waits));
	free(ro);
}

void
rollout_cancel(struct rollout_wait *w)
{
	if (w != NULL)
		rollout_wait_free(w);
}

json_t *
rollout_status(struct node *n, const struct rollout_want *w, int *all_ok,
    int *pending)
{
	json_t	*nodes = nodes_list_json(n, 0, NULL), *out = json_array(), *nd;
	size_t	 k;
	int	 i;

	*all_ok = nodes != NULL;
	*pending = 0;
	json_array_foreach(nodes, k, nd) {
		json_t *certs = json_object_get(nd, "certificates");
		const char *status = json_string_value(json_object_get(nd,
		    "status"));
		int live = status != NULL && strcmp(status, "active") == 0;
		int ok = json_integer_value(json_object_get(nd,
		    "applied_rev")) >= w->rev;
		if (w->only_uid > 0 && json_integer_value(json_object_get(nd,
		    "uid")) != w->only_uid)
			continue;
		for (i = 0; i < CERT__COUNT; i++) {
			json_t *c = json_object_get(certs, cert_services[i].name);
			if (w->versions[i] > 0 && json_integer_value(
			    json_object_get(c, "version")) < w->versions[i])
				ok = 0;
		}
		if (!ok)
			*all_ok = 0;
		if (!ok && live)
			*pending = 1;
		json_array_append_new(out, json_pack("{s:O, s:O?, s:s, s:O?, "
		    "s:O?}", "uid", json_object_get(nd, "uid"), "addr",
		    json_object_get(nd, "addr"), "status", ok ? "updated" :
		    live ? "not_updated" : "down", "applied_rev",
		    json_object_get(nd, "applied_rev"), "certificates", certs));
	}
	json_decref(nodes);
	return out;
}

/* Answer w if it is complete (or forced by its timer); 1 when answered. */
static int
rollout_try(struct rollout_wait *w, int force)
{
	json_t	*nodes;
	int	 all_ok, pending;

	nodes = rollout_status(w->ro->n, &w->want, &all_ok, &pending);
	if (pending && !force) {
		json_decref(nodes);
		return 0;
	}
	/* Unlink before calling back: done may park or cancel others. */
	{
		rollout_done_fn	 done = w->done;
		void		*arg = w->arg;

		w->ro->answered[all_ok != 0]++;
		rollout_wait_free(w);
		done(arg, all_ok, nodes);
	}
	json_decref(nodes);
	return 1;
}

static void
rollout_timeout(evutil_socket_t fd, short what, void *arg)
{
	rollout_try(arg, 1);
}

static void
rollout_first(evutil_socket_t fd, short what, void *arg)
{
	rollout_try(arg, 0);
}

struct rollout_wait *
rollout_park(struct rollout *ro, const struct rollout_want *want,
    int timeout_ms, rollout_done_fn done, void *arg)
{
	struct rollout_wait	*w;
	struct timeval		 tv;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->ro = ro;
	w->want = *want;
	w->done = done;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&ro->waits, w, entry);
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	/* The first check runs from the loop too: done is never called
	 * inside this call, whose caller still holds what arg points to. */
	if ((w->timer = evtimer_new(ro->n->base, rollout_timeout, w)) ==
	    NULL || evtimer_add(w->timer, &tv) == -1 ||
	    (w->first = event_new(ro->n->base, -1, 0, rollout_first, w)) ==
	    NULL) {
		if (w->timer != NULL)
			event_free(w->timer);
		w->timer = NULL;
		/* Out of memory: answer at once from the loop, or give up. */
		if (w->first == NULL) {
			rollout_wait_free(w);
			return NULL;
		}
	}
	event_active(w->first, EV_TIMEOUT, 0);
	return w;
}

void
rollout_check(struct rollout *ro)
{
	struct rollout_wait *w, *next;

	if (ro == NULL)
		return;
	for (w = TAILQ_FIRST(&ro->waits); w != NULL; w = next) {
		next = TAILQ_NEXT(w, entry);
		rollout_try(w, 0);
	}
}

void
rollout_counts(struct rollout *ro, uint64_t *complete, uint64_t *partial)
{
	*complete = ro != NULL ? ro->answered[1] : 0;
	*partial = ro != NULL ? ro->answered[0] : 0;
}
