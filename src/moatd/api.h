/*
 * api.h — the REST API: one routing table, one dispatcher, shared by the
 * HTTPS port and the local control socket.
 */
#ifndef MOATD_API_H
#define MOATD_API_H

#include <event2/http.h>
#include <jansson.h>

#include "node.h"
#include "users.h"

/* Where a request came in; the dispatcher's callback argument. */
struct api_listener {
	struct node	*node;
	int		 local;		/* the control socket */
};

/* One request while it is handled. */
struct api_req {
	struct node		*n;
	struct evhttp_request	*req;
	int			 local;
	int			 loopback;
	char			 peer[64];
	struct auth_user	 user;
	char			 who[400];	/* audit identity */
	char			 param[128];	/* the ":x" path segment */
	json_t			*resp;		/* owned */
	int			 close_after;
};

typedef int (*api_fn)(struct api_req *r, struct err *e);

/* evhttp callback; arg is a struct api_listener. */
void	 api_dispatch(struct evhttp_request *req, void *arg);

/* Helpers for handlers. */
/* Parse the body: NULL with E_INVALID_JSON / E_TOO_LARGE; empty body
 * gives an empty object when allow_empty. Caller owns the result. */
json_t	*api_body(struct api_req *r, int allow_empty, struct err *e);
int	 api_param_uid(struct api_req *r);

/* Handlers (api_handlers.c) */
int	 api_bootstrap_create(struct api_req *, struct err *);
int	 api_bootstrap_join(struct api_req *, struct err *);
int	 api_cluster_store(struct api_req *, struct err *);
int	 api_cluster_store_move(struct api_req *, struct err *);
int	 api_cluster_get(struct api_req *, struct err *);
int	 api_cluster_put(struct api_req *, struct err *);
int	 api_update_cert(struct api_req *, struct err *);
int	 api_certs_get(struct api_req *, struct err *);
int	 api_certs_put(struct api_req *, struct err *);
int	 api_cert_get(struct api_req *, struct err *);
int	 api_cert_delete(struct api_req *, struct err *);
int	 api_certs_rotate(struct api_req *, struct err *);
int	 api_nodes_get(struct api_req *, struct err *);
int	 api_node_get(struct api_req *, struct err *);
int	 api_node_delete(struct api_req *, struct err *);
int	 api_bdbs_get(struct api_req *, struct err *);
int	 api_bdbs_post(struct api_req *, struct err *);
int	 api_bdb_get(struct api_req *, struct err *);
int	 api_bdb_put(struct api_req *, struct err *);
int	 api_bdb_delete(struct api_req *, struct err *);
int	 api_users_get(struct api_req *, struct err *);
int	 api_user_get(struct api_req *, struct err *);
int	 api_users_post(struct api_req *, struct err *);
int	 api_user_put(struct api_req *, struct err *);
int	 api_user_delete(struct api_req *, struct err *);

#endif
