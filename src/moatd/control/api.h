/*
 * api.h — the REST API: one routing table, one dispatcher, shared by the
 * HTTPS port and the local control socket.
 *
 * A request lives on the heap from dispatch to answer.  A handler either
 * answers at once (0 with r->resp, or -1 with an error), or returns
 * API_ASYNC after handing the request to something that answers it later
 * through api_finish(): a rollout wait (the change must be served by
 * every live node first) or a work-pool job (password hashing).  The
 * control thread never waits for either.
 */
#ifndef MOATD_API_H
#define MOATD_API_H

#include <event2/http.h>
#include <jansson.h>

#include "node.h"
#include "rollout.h"
#include "users.h"

#define API_ASYNC	1

/* Where a request came in; the dispatcher's callback argument. */
struct api_listener {
	struct node	*node;
	int		 local;		/* the control socket */
	int		 ui;		/* the cm port: session cookies */
};

struct api_route;
struct api_req;
typedef int (*api_rollout_fn)(struct api_req *r, int all_ok, json_t *nodes,
		    struct err *e);

/* One request while it is handled. */
struct api_req {
	struct node		*n;
	struct evhttp_request	*req;		/* NULL once the client left */
	const struct api_route	*rt;
	int			 local;
	int			 ui;		/* came through the cm port */
	int			 loopback;
	char			 peer[64];
	struct auth_user	 user;
	char			 who[400];	/* audit identity */
	char			 param[128];	/* the ":x" path segment */
	int			 timeout_ms;	/* ?timeout=, for rollouts */
	int			 dry_run;	/* ?dry_run=true */
	json_t			*resp;		/* owned */
	json_t			*body;		/* parsed body, owned */
	struct rollout_wait	*wait;		/* while parked */
	api_rollout_fn		 rollout_fn;
	int			 in_job;	/* a work-pool job holds it */
	int			 close_after;	/* answer with Connection: close */
	int			 by_cert;	/* signed in by a certificate */
	/* A handler's state between its steps, freed with the request. */
	void			*state;
	void			(*state_free)(void *);
};

struct api_req;
typedef int (*api_fn)(struct api_req *r, struct err *e);
/* An api_rollout_fn shapes the answer of a parked change once the
 * rollout is over: 0 with r->resp (200), or -1 with an error (r->resp
 * as extra fields). */

/* evhttp callback; arg is a struct api_listener. */
void	 api_dispatch(struct evhttp_request *req, void *arg);

/* r stays alive past its handler (a job or a wait holds it): hear if
 * its client leaves. */
void	 api_hold(struct api_req *r);
/* Answer a request whose handler returned API_ASYNC, and free it. */
void	 api_finish(struct api_req *r, int rc, struct err *e);
/* Park r until every live node serves want (or r->timeout_ms); fn then
 * shapes the answer.  Returns API_ASYNC. */
int	 api_park(struct api_req *r, const struct rollout_want *want,
	    api_rollout_fn fn);

/*
 * What every request goes through before anyone is signed in: the route
 * and its :param, the query options, the Origin rule.  r->local and r->ui
 * say which listener; the rest of r is filled.  Needs no node (the
 * fuzz_http harness runs it alone).
 */
int	 api_parse(struct api_req *r, struct evhttp_request *req,
	    struct err *e);

/* Helpers for handlers. */
/* The parsed body (owned by r): NULL with E_INVALID_JSON / E_TOO_LARGE;
 * an empty body gives an empty object when allow_empty. */
json_t	*api_body(struct api_req *r, int allow_empty, struct err *e);
int	 api_param_uid(struct api_req *r);
/* The query parameter name, decoded into buf; NULL when absent. */
const char *api_query_arg(struct api_req *r, const char *name, char *buf,
	    size_t len);

#endif
