/*
 * sessions.h — the management UI's sign-in sessions (cm port): a random
 * token in an HttpOnly, Secure, SameSite=Strict cookie, a CSRF token that
 * every change must echo in X-CSRF-Token, and an idle timeout.  Sessions
 * live in this node's memory: a browser talks to one node.
 */
#ifndef MOATD_SESSIONS_H
#define MOATD_SESSIONS_H

#include <event2/http.h>

#include "api.h"

struct sessions;

/* idle_timeout: seconds without a request before a session ends. */
struct sessions	*sessions_new(int idle_timeout);
void		 sessions_free(struct sessions *ss);
/*
 * The user behind req's session cookie, as stored now (its role may have
 * changed).  change: the request changes something, so its CSRF header
 * must match.  E_UNAUTHORIZED (no or expired session), E_CSRF.
 */
int		 sessions_check(struct node *n, struct evhttp_request *req,
		    int change, struct auth_user *u, struct err *e);

/* The session token in req's Cookie header into buf: 0, or -1 when
 * there is none (or it does not fit). */
int		 sessions_cookie_token(struct evhttp_request *req, char *buf,
		    size_t len);

/* The /ui/session routes. */
int		 api_session_post(struct api_req *r, struct err *e);
int		 api_session_get(struct api_req *r, struct err *e);
int		 api_session_delete(struct api_req *r, struct err *e);

#endif
