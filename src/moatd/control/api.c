/*
 * api.c — routing, authentication, permissions and JSON responses.
 *
 * Handlers see a parsed request and return 0 with r->resp set, -1 with an
 * error, or API_ASYNC; this file turns each into the response, so every
 * error has the same shape: {"error_code": ..., "description": ...}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "api.h"
#include "api_handlers.h"
#include "apply.h"
#include "https.h"
#include "log.h"
#include "mtls.h"
#include "certacme.h"
#include "ocsp.h"
#include "sessions.h"
#include "ui.h"

#define API_MAX_BODY	(1024 * 1024)

struct api_route {
	enum evhttp_cmd_type	 method;
	const char		*path;	/* ":x" matches one segment */
	enum perm		 perm;
	int			 need_cluster;
	api_fn			 fn;
	int			 ui_only;	/* the cm port's own routes */
};

/* Permissions are RS's (docs/api.md lists which role holds which). */
static const struct api_route api_routes[] = {
	{ EVHTTP_REQ_POST, "/v1/bootstrap/create_cluster", PERM_NONE, 0, api_bootstrap_create, 0 },
	{ EVHTTP_REQ_POST, "/v1/bootstrap/join_cluster", PERM_NONE, 0, api_bootstrap_join, 0 },
	{ EVHTTP_REQ_GET, "/v1/cluster", PERM_VIEW_CLUSTER, 1, api_cluster_get, 0 },
	{ EVHTTP_REQ_PUT, "/v1/cluster", PERM_UPDATE_CLUSTER, 1, api_cluster_put, 0 },
	{ EVHTTP_REQ_GET, "/v1/cluster/store", PERM_UPDATE_CLUSTER, 1, api_cluster_store, 0 },
	{ EVHTTP_REQ_PUT, "/v1/cluster/store", PERM_UPDATE_CLUSTER, 1, api_cluster_store_move, 0 },
	{ EVHTTP_REQ_PUT, "/v1/cluster/update_cert", PERM_UPDATE_CLUSTER, 1, api_update_cert, 0 },
	{ EVHTTP_REQ_GET, "/v1/cluster/certificates", PERM_VIEW_CLUSTER, 1, api_certs_get, 0 },
	{ EVHTTP_REQ_PUT, "/v1/cluster/certificates", PERM_UPDATE_CLUSTER, 1, api_certs_put, 0 },
	{ EVHTTP_REQ_POST, "/v1/cluster/certificates/rotate", PERM_UPDATE_CLUSTER, 1, api_certs_rotate, 0 },
	{ EVHTTP_REQ_POST, "/v1/cluster/certificates/ca/rotate", PERM_UPDATE_CLUSTER, 1, api_ca_rotate, 0 },
	{ EVHTTP_REQ_POST, "/v1/cluster/certificates/import", PERM_UPDATE_CLUSTER, 1, api_certs_import, 0 },
	{ EVHTTP_REQ_GET, "/v1/cluster/certificates/:name", PERM_VIEW_CLUSTER, 1, api_cert_get, 0 },
	{ EVHTTP_REQ_GET, "/v1/cluster/certificates/:name/history", PERM_VIEW_CLUSTER, 1, api_cert_history, 0 },
	{ EVHTTP_REQ_POST, "/v1/cluster/certificates/:name/rollback", PERM_UPDATE_CLUSTER, 1, api_cert_rollback, 0 },
	{ EVHTTP_REQ_DELETE, "/v1/cluster/certificates/:name", PERM_UPDATE_CLUSTER, 1, api_cert_delete, 0 },
	{ EVHTTP_REQ_GET, "/v1/cluster/certificates/:name/acme", PERM_VIEW_CLUSTER, 1, api_acme_get, 0 },
	{ EVHTTP_REQ_PUT, "/v1/cluster/certificates/:name/acme", PERM_UPDATE_CLUSTER, 1, api_acme_put, 0 },
	{ EVHTTP_REQ_DELETE, "/v1/cluster/certificates/:name/acme", PERM_UPDATE_CLUSTER, 1, api_acme_delete, 0 },
	{ EVHTTP_REQ_POST, "/v1/cluster/certificates/:name/acme/renew", PERM_UPDATE_CLUSTER, 1, api_acme_renew, 0 },
	{ EVHTTP_REQ_GET, "/v1/cluster/alerts", PERM_VIEW_CLUSTER, 1, api_alerts_get, 0 },
	{ EVHTTP_REQ_GET, "/v1/cluster/alerts/:name", PERM_VIEW_CLUSTER, 1, api_alert_get, 0 },
	{ EVHTTP_REQ_GET, "/v1/logs", PERM_VIEW_CLUSTER, 1, api_logs_get, 0 },
	{ EVHTTP_REQ_GET, "/v1/job_scheduler", PERM_VIEW_CLUSTER, 1, api_jobs_get, 0 },
	{ EVHTTP_REQ_PUT, "/v1/job_scheduler", PERM_UPDATE_CLUSTER, 1, api_jobs_put, 0 },
	{ EVHTTP_REQ_GET, "/v1/ocsp", PERM_UPDATE_CLUSTER, 1, api_ocsp_get, 0 },
	{ EVHTTP_REQ_PUT, "/v1/ocsp", PERM_UPDATE_CLUSTER, 1, api_ocsp_put, 0 },
	{ EVHTTP_REQ_GET, "/v1/ocsp/status", PERM_UPDATE_CLUSTER, 1, api_ocsp_status, 0 },
	{ EVHTTP_REQ_POST, "/v1/ocsp/test", PERM_UPDATE_CLUSTER, 1, api_ocsp_test, 0 },
	{ EVHTTP_REQ_GET, "/v1/nodes", PERM_VIEW_CLUSTER, 1, api_nodes_get, 0 },
	{ EVHTTP_REQ_GET, "/v1/nodes/:uid", PERM_VIEW_CLUSTER, 1, api_node_get, 0 },
	{ EVHTTP_REQ_DELETE, "/v1/nodes/:uid", PERM_UPDATE_CLUSTER, 1, api_node_delete, 0 },
	{ EVHTTP_REQ_GET, "/v1/bdbs", PERM_VIEW_BDB, 1, api_bdbs_get, 0 },
	{ EVHTTP_REQ_POST, "/v1/bdbs", PERM_EDIT_BDB, 1, api_bdbs_post, 0 },
	{ EVHTTP_REQ_GET, "/v1/bdbs/:uid", PERM_VIEW_BDB, 1, api_bdb_get, 0 },
	{ EVHTTP_REQ_PUT, "/v1/bdbs/:uid", PERM_EDIT_BDB, 1, api_bdb_put, 0 },
	{ EVHTTP_REQ_DELETE, "/v1/bdbs/:uid", PERM_EDIT_BDB, 1, api_bdb_delete, 0 },
	{ EVHTTP_REQ_GET, "/v1/users", PERM_VIEW_USERS, 1, api_users_get, 0 },
	{ EVHTTP_REQ_POST, "/v1/users", PERM_EDIT_USERS, 1, api_users_post, 0 },
	{ EVHTTP_REQ_GET, "/v1/users/:uid", PERM_VIEW_USERS, 1, api_user_get, 0 },
	{ EVHTTP_REQ_PUT, "/v1/users/:uid", PERM_EDIT_USERS, 1, api_user_put, 0 },
	{ EVHTTP_REQ_DELETE, "/v1/users/:uid", PERM_EDIT_USERS, 1, api_user_delete, 0 },
	{ EVHTTP_REQ_POST, "/ui/session", PERM_NONE, 1, api_session_post, 1 },
	{ EVHTTP_REQ_GET, "/ui/session", PERM_SESSION, 1, api_session_get, 1 },
	{ EVHTTP_REQ_DELETE, "/ui/session", PERM_SESSION, 1, api_session_delete, 1 },
};
#define NROUTES (sizeof(api_routes) / sizeof(api_routes[0]))

/* 1 when path matches pattern; the ":x" segment is copied to param. */
static int
api_match(const char *pattern, const char *path, char *param, size_t plen)
{
	while (*pattern != '\0' && *path != '\0') {
		if (*pattern == ':') {
			const char *end = strchr(path, '/');
			size_t len = end ? (size_t)(end - path) : strlen(path);
			if (len == 0 || len >= plen)
				return 0;
			memcpy(param, path, len);
			param[len] = '\0';
			path += len;
			while (*pattern != '\0' && *pattern != '/')
				pattern++;
			continue;
		}
		if (*pattern++ != *path++)
			return 0;
	}
	return *pattern == '\0' && *path == '\0';
}

/* The HTTPS listener r came through (NULL: the control socket). */
static struct https *
api_listener_of(struct api_req *r)
{
	if (r->local)
		return NULL;
	return r->ui ? r->n->cm : r->n->api;
}

static void
api_req_free(struct api_req *r)
{
	if (r->state_free != NULL)
		r->state_free(r->state);
	json_decref(r->resp);
	json_decref(r->body);
	free(r);
}

static void
api_send(struct api_req *r, int status, json_t *body)
{
	struct evbuffer		*buf;
	struct evkeyvalq	*h;
	char			*s;
	const void		*conn;

	if (r->req == NULL)
		return;
	conn = http_conn_of(r->req);
	/* This very connection may be below a minimum that its request
	 * raised: answer it, then close it. */
	if (api_listener_of(r) != NULL) {
		if (https_close_pending(api_listener_of(r), conn))
			r->close_after = 1;
		https_hold(api_listener_of(r), conn, 0);
	}
	buf = evbuffer_new();
	h = evhttp_request_get_output_headers(r->req);
	s = json_dumps(body, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (r->close_after)
		evhttp_add_header(h, "Connection", "close");
	if (s != NULL && buf != NULL) {
		evbuffer_add(buf, s, strlen(s));
		evbuffer_add(buf, "\n", 1);
	}
	evhttp_send_reply(r->req, status, NULL, buf);
	if (buf != NULL)
		evbuffer_free(buf);
	free(s);
}

static void
api_send_error(struct api_req *r, struct err *e, json_t *extra)
{
	json_t	*body;
	int	 status;

	/* An error path that set no error is a bug; it must never look like
	 * success. */
	if (e->code == E_OK)
		err_set(e, E_INTERNAL, "internal error (no error recorded)");
	status = err_http_status(e->code);
	body = json_pack("{s:s, s:s}", "error_code", err_name(e->code),
	    "description", err_msg(e));
	if (body == NULL) {
		/* A description cut inside a UTF-8 character (a %.64s of
		 * what a client sent) is no JSON string: say it in ASCII
		 * rather than send nothing. */
		char *m = strdup(err_msg(e)), *p;
		for (p = m; p != NULL && *p != '\0'; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		body = json_pack("{s:s, s:s}", "error_code", err_name(e->code),
		    "description", m != NULL ? m : "(out of memory)");
		free(m);
	}
	if (extra != NULL && body != NULL)
		json_object_update_missing(body, extra);
	/* Not on the UI's port: a browser would pop up its own password
	 * prompt over the page's sign-in form. */
	if (status == 401 && r->req != NULL && !r->ui)
		evhttp_add_header(evhttp_request_get_output_headers(r->req),
		    "WWW-Authenticate", "Basic realm=\"moat\"");
	if (status == 500 || e->code == E_STORE)
		log_warn("%s %s: %s", r->who, r->rt != NULL ? r->rt->path : "?",
		    err_msg(e));
	api_send(r, status, body);
	json_decref(body);
}

static void
api_conn_closed(struct evhttp_connection *c, void *arg)
{
	struct api_req *r = arg;

	/* evhttp frees the request after this: never touch it again. */
	r->req = NULL;
	if (r->wait != NULL) {
		rollout_cancel(r->wait);
		r->wait = NULL;
		api_req_free(r);
	}
	/* A work-pool job still holds r: api_finish frees it. */
}

void
api_hold(struct api_req *r)
{
	struct evhttp_connection *c;

	if (r->req == NULL || (c = evhttp_request_get_connection(r->req)) ==
	    NULL)
		return;
	evhttp_connection_set_closecb(c, api_conn_closed, r);
	if (api_listener_of(r) != NULL)
		https_hold(api_listener_of(r), http_conn_of(r->req), 1);
}

static void
api_release(struct api_req *r)
{
	struct evhttp_connection *c;

	if (r->req != NULL && (c = evhttp_request_get_connection(r->req)) !=
	    NULL)
		evhttp_connection_set_closecb(c, NULL, NULL);
}

void
api_finish(struct api_req *r, int rc, struct err *e)
{
	api_release(r);
	if (rc == 0 && r->resp == NULL)
		r->resp = json_object();	/* freed with r */
	if (rc == 0)
		api_send(r, 200, r->resp);
	else
		api_send_error(r, e, r->resp);
	err_clear(e);
	api_req_free(r);
}

/* ---- rollouts ---- */

static void
api_park_done(void *arg, int all_ok, json_t *nodes)
{
	struct api_req	*r = arg;
	struct err	 e = { 0 };
	int		 rc;

	r->wait = NULL;
	rc = r->rollout_fn(r, all_ok, nodes, &e);
	api_finish(r, rc, &e);
}

int
api_park(struct api_req *r, const struct rollout_want *want,
    api_rollout_fn fn)
{
	struct err e = { 0 };

	r->rollout_fn = fn;
	api_hold(r);
	r->wait = rollout_park(r->n->ro, want, r->timeout_ms > 0 ?
	    r->timeout_ms : ROLLOUT_TIMEOUT_MS, api_park_done, r);
	if (r->wait == NULL) {
		err_set(&e, E_INTERNAL, "out of memory; the change is stored "
		    "and the nodes will apply it");
		api_finish(r, -1, &e);
	}
	return API_ASYNC;
}

/* ---- parsing ---- */

json_t *
api_body(struct api_req *r, int allow_empty, struct err *e)
{
	struct evbuffer	*in;
	size_t		 len;
	char		*data;
	json_t		*j;
	json_error_t	 je;

	if (r->body != NULL)
		return r->body;
	in = evhttp_request_get_input_buffer(r->req);
	len = evbuffer_get_length(in);
	if (len > API_MAX_BODY) {
		err_set(e, E_TOO_LARGE, "request body of %zu bytes is over the "
		    "limit of %d bytes", len, API_MAX_BODY);
		return NULL;
	}
	if (len == 0) {
		if (allow_empty)
			return r->body = json_object();
		err_set(e, E_INVALID_JSON, "a JSON body is required");
		return NULL;
	}
	if ((data = malloc(len)) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	evbuffer_remove(in, data, len);
	j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	/* The body may hold private keys. */
	explicit_bzero(data, len);
	free(data);
	if (j == NULL) {
		err_set(e, E_INVALID_JSON, "the body is not valid JSON: %s at "
		    "line %d column %d", je.text, je.line, je.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		err_set(e, E_INVALID_SCHEMA, "the body must be a JSON object");
		return NULL;
	}
	return r->body = j;
}

int
api_param_uid(struct api_req *r)
{
	char	*end;
	long	 v = strtol(r->param, &end, 10);

	if (*end != '\0' || end == r->param || v <= 0 || v > 1000000000)
		return -1;
	return (int)v;
}

/*
 * ?timeout=<seconds>: how long a change waits for every live node to
 * confirm it (0 to 900; default ROLLOUT_TIMEOUT_MS).  ?dry_run=true:
 * validate and say what would happen, change nothing.
 */
static int
api_query(struct api_req *r, const struct evhttp_uri *uri, struct err *e)
{
	struct evkeyvalq	 q;
	const char		*v, *qs = uri ? evhttp_uri_get_query(uri) : NULL;
	char			*end;
	long			 secs;
	int			 rc = 0;

	if (qs == NULL)
		return 0;
	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(qs, &q) != 0)
		return err_set(e, E_INVALID_SCHEMA, "malformed query string");
	if ((v = evhttp_find_header(&q, "timeout")) != NULL) {
		secs = strtol(v, &end, 10);
		if (*v == '\0' || *end != '\0' || secs < 0 || secs > 900)
			rc = err_set(e, E_INVALID_SCHEMA, "timeout must be a "
			    "number of seconds from 0 to 900");
		else
			r->timeout_ms = secs == 0 ? 1 : (int)secs * 1000;
	}
	if ((v = evhttp_find_header(&q, "dry_run")) != NULL) {
		if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
		    *v == '\0')
			r->dry_run = 1;
		else if (strcmp(v, "false") != 0 && strcmp(v, "0") != 0)
			rc = err_set(e, E_INVALID_SCHEMA, "dry_run must be true "
			    "or false");
	}
	evhttp_clear_headers(&q);
	return rc;
}

const char *
api_query_arg(struct api_req *r, const char *name, char *buf, size_t len)
{
	const struct evhttp_uri	*uri;
	struct evkeyvalq	 q;
	const char		*qs, *v;
	const char		*out = NULL;

	if (r->req == NULL ||
	    (uri = evhttp_request_get_evhttp_uri(r->req)) == NULL ||
	    (qs = evhttp_uri_get_query(uri)) == NULL)
		return NULL;
	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(qs, &q) == 0 &&
	    (v = evhttp_find_header(&q, name)) != NULL) {
		snprintf(buf, len, "%s", v);
		out = buf;
	}
	evhttp_clear_headers(&q);
	return out;
}

/* ---- dispatch ---- */

static void
api_run(struct api_req *r)
{
	struct err	e = { 0 };
	int		rc;

	if (r->rt->perm != PERM_NONE && !users_role_allows(r->user.role,
	    r->rt->perm)) {
		err_set(&e, E_FORBIDDEN, "role %s may not do this",
		    r->user.role);
		api_finish(r, -1, &e);
		return;
	}
	if (r->rt->need_cluster && r->n->store == NULL) {
		err_set(&e, E_STORE, "this node does not reach the cluster "
		    "store yet (it serves what it last applied and keeps "
		    "trying); retry shortly");
		api_finish(r, -1, &e);
		return;
	}
	rc = r->rt->fn(r, &e);
	if (rc == API_ASYNC)
		return;
	api_finish(r, rc, &e);
}

static void
api_auth_done(void *arg, int rc, int retry, struct err *e)
{
	struct api_req *r = arg;

	r->in_job = 0;
	if (rc == -1) {
		if (retry > 0 && r->req != NULL) {
			char ra[16];
			snprintf(ra, sizeof(ra), "%d", retry);
			evhttp_add_header(evhttp_request_get_output_headers(
			    r->req), "Retry-After", ra);
		}
		api_finish(r, -1, e);
		return;
	}
	snprintf(r->who, sizeof(r->who), "%s from %s", r->user.email,
	    r->peer);
	if (r->req == NULL) {
		/* The client left meanwhile: nobody to answer. */
		err_set(e, E_UNAUTHORIZED, "the client went away");
		api_finish(r, -1, e);
		return;
	}
	api_release(r);
	api_run(r);
}

int
api_parse(struct api_req *r, struct evhttp_request *req, struct err *e)
{
	const struct evhttp_uri		*uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type		 m = evhttp_request_get_command(req);
	char				 path[512];
	const char			*p;
	size_t				 i, len;
	int				 path_hit = 0;

	p = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	if (p == NULL || (len = strlen(p)) == 0 || len >= sizeof(path))
		return err_set(e, E_NOT_FOUND, "no such path");
	memcpy(path, p, len + 1);
	while (len > 1 && path[len - 1] == '/')
		path[--len] = '\0';
	for (i = 0; i < NROUTES; i++) {
		if (api_routes[i].ui_only && !r->ui)
			continue;
		if (!api_match(api_routes[i].path, path, r->param,
		    sizeof(r->param)))
			continue;
		path_hit = 1;
		if (api_routes[i].method == m) {
			r->rt = &api_routes[i];
			break;
		}
	}
	if (r->rt == NULL) {
		if (path_hit)
			return err_set(e, E_METHOD, "method not allowed on %s",
			    path);
		return err_set(e, E_NOT_FOUND, "no such endpoint %s", path);
	}
	if (api_query(r, uri, e) == -1)
		return -1;
	/*
	 * The API port serves no page, so a change that a browser sends
	 * there (it says where from, in Origin) comes from some other site's
	 * page riding on credentials the browser cached: a forged request.
	 * Scripts and CLIs send no Origin.  The UI's port checks its own
	 * CSRF token instead.
	 */
	if (!r->ui && !r->local && m != EVHTTP_REQ_GET &&
	    evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Origin") != NULL)
		return err_set(e, E_FORBIDDEN, "the REST API port takes no "
		    "changes from web pages (the request has an Origin); use "
		    "the management UI's port");
	return 0;
}

void
api_dispatch(struct evhttp_request *req, void *arg)
{
	struct api_listener		*l = arg;
	struct api_req			*r;
	struct err			 e = { 0 };
	const struct evhttp_uri		*uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type		 m = evhttp_request_get_command(req);
	int				 rc;

	/* The CA bundle, public like on the cm port. */
	if (!l->local && m == EVHTTP_REQ_GET && uri != NULL &&
	    evhttp_uri_get_path(uri) != NULL &&
	    strcmp(evhttp_uri_get_path(uri), "/ca.pem") == 0) {
		ui_ca(req, l->node);
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	r->n = l->node;
	r->req = req;
	r->local = l->local;
	r->ui = l->ui;
	http_peer(req, r->peer, sizeof(r->peer), &r->loopback);
	snprintf(r->who, sizeof(r->who), "%s", r->peer);
	if (api_parse(r, req, &e) == -1)
		goto fail;
	if (r->rt->need_cluster && !node_is_member(r->n)) {
		err_set(&e, E_NOT_BOOTSTRAPPED, "this node is not part of a "
		    "cluster yet: POST /v1/bootstrap/create_cluster first");
		goto fail;
	}
	if (r->local) {
		/* The control socket is mode 0600: whoever reaches it is a
		 * local administrator of this node. */
		snprintf(r->user.role, sizeof(r->user.role), "admin");
		snprintf(r->user.email, sizeof(r->user.email), "%s", r->peer);
	} else if (r->ui && r->rt->perm != PERM_NONE) {
		/* The UI signs in once and then shows its cookie; a change
		 * also shows the session's CSRF token. */
		if (r->n->store == NULL) {
			err_set(&e, E_STORE, "this node does not reach the "
			    "cluster store yet; retry shortly");
			goto fail;
		}
		if (sessions_check(r->n, req, m != EVHTTP_REQ_GET, &r->user,
		    &e) == -1)
			goto fail;
		snprintf(r->who, sizeof(r->who), "%s from %s (UI)",
		    r->user.email, r->peer);
	} else if (r->rt->perm != PERM_NONE) {
		const char *authz = evhttp_find_header(
		    evhttp_request_get_input_headers(req), "Authorization");
		int retry = 0;
		if (r->n->store == NULL) {
			err_set(&e, E_STORE, "this node does not reach the "
			    "cluster store yet, so it cannot check passwords; "
			    "retry shortly");
			goto fail;
		}
		/* Credentials sent win over a certificate the client also
		 * shows; without any, the certificate signs in (RS: it is
		 * additive until passwords are turned off). */
		if (authz == NULL) {
			rc = mtls_authenticate(r->n, api_listener_of(r), req,
			    &r->user, &e);
			if (rc == -1)
				goto fail;
			if (rc == 1) {
				r->by_cert = 1;
				snprintf(r->who, sizeof(r->who), "%s from %s "
				    "(certificate)", r->user.email, r->peer);
				api_run(r);
				return;
			}
		}
		if ((rc = mtls_basic_allowed(r->n, &e)) != 1) {
			if (rc == 0)
				err_set(&e, E_UNAUTHORIZED, "password sign-in "
				    "is off (control_plane_basic_"
				    "authentication false): sign in with a "
				    "client certificate signed by "
				    "mtls_trusted_ca");
			goto fail;
		}
		r->in_job = 1;
		rc = users_authenticate(r->n, authz, r->peer, &r->user, &retry,
		    api_auth_done, r, &e);
		if (rc == API_ASYNC) {
			api_hold(r);
			return;
		}
		api_auth_done(r, rc, retry, &e);
		return;
	}
	api_run(r);
	return;
fail:
	api_finish(r, -1, &e);
}
