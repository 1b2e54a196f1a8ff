/*
 * sessions.c — see sessions.h.
 *
 * The cookie carries 32 random bytes; the table keeps only their hash,
 * so a memory dump of moatd yields no usable session.  The CSRF token is
 * separate (also random) and given to the page in the sign-in answer: a
 * page of another origin cannot read it, so it cannot forge a change even
 * though the browser would send the cookie (which SameSite=Strict already
 * withholds from cross-site requests).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/keyvalq_struct.h>
#include <sodium.h>

#include "log.h"
#include "mtls.h"
#include "node.h"
#include "sessions.h"

#define SESSIONS_MAX	512
#define TOKEN_BYTES	32
#define COOKIE		"moat_session"

struct session {
	unsigned char	 hash[crypto_generichash_BYTES];	/* of the token */
	int		 uid;
	char		 csrf[64];
	time_t		 last;
	int		 used;
	int		 by_cert;	/* opened by a client certificate */
};

struct sessions {
	int		 idle;
	struct session	 s[SESSIONS_MAX];
};

struct sessions *
sessions_new(int idle_timeout)
{
	struct sessions *ss = calloc(1, sizeof(*ss));

	if (ss != NULL)
		ss->idle = idle_timeout > 0 ? idle_timeout : 900;
	return ss;
}

void
sessions_free(struct sessions *ss)
{
	if (ss != NULL)
		sodium_memzero(ss, sizeof(*ss));
	free(ss);
}

static void
token_hash(const char *token, unsigned char *out)
{
	crypto_generichash(out, crypto_generichash_BYTES,
	    (const unsigned char *)token, strlen(token), NULL, 0);
}

static void
random_token(char *out, size_t len)
{
	unsigned char raw[TOKEN_BYTES];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(out, len, raw, sizeof(raw),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
}

/* The session cookie's value in req, copied into buf; 0 or -1. */
int
sessions_cookie_token(struct evhttp_request *req, char *buf, size_t len)
{
	const char	*h = evhttp_find_header(evhttp_request_get_input_headers(
			    req), "Cookie");
	const char	*p, *end;
	size_t		 n;

	for (p = h; p != NULL && *p != '\0'; p = end) {
		while (*p == ' ' || *p == ';')
			p++;
		end = strchr(p, ';');
		if (end == NULL)
			end = p + strlen(p);
		if (strncmp(p, COOKIE "=", sizeof(COOKIE)) != 0)
			continue;
		p += sizeof(COOKIE);
		n = (size_t)(end - p);
		if (n == 0 || n >= len)
			return -1;
		memcpy(buf, p, n);
		buf[n] = '\0';
		return 0;
	}
	return -1;
}

static struct session *
sessions_find(struct sessions *ss, struct evhttp_request *req)
{
	unsigned char	 hash[crypto_generichash_BYTES];
	char		 token[128];
	time_t		 now = time(NULL);
	int		 i;

	if (sessions_cookie_token(req, token, sizeof(token)) == -1)
		return NULL;
	token_hash(token, hash);
	sodium_memzero(token, sizeof(token));
	for (i = 0; i < SESSIONS_MAX; i++) {
		struct session *s = &ss->s[i];
		if (!s->used || sodium_memcmp(s->hash, hash, sizeof(hash)) != 0)
			continue;
		if (now - s->last > ss->idle) {
			sodium_memzero(s, sizeof(*s));
			return NULL;
		}
		return s;
	}
	return NULL;
}

int
sessions_check(struct node *n, struct evhttp_request *req, int change,
    struct auth_user *u, struct err *e)
{
	struct session	*s = sessions_find(n->ss, req);
	const char	*csrf;

	if (s == NULL)
		return err_set(e, E_UNAUTHORIZED, "not signed in, or the session "
		    "ended (%d s without a request): sign in again",
		    n->ss->idle);
	if (change) {
		csrf = evhttp_find_header(evhttp_request_get_input_headers(req),
		    "X-CSRF-Token");
		if (csrf == NULL || strlen(csrf) != strlen(s->csrf) ||
		    sodium_memcmp(csrf, s->csrf, strlen(s->csrf)) != 0)
			return err_set(e, E_CSRF, "this change needs the "
			    "session's X-CSRF-Token header");
	}
	/* A session lasts only as long as what opened it would still
	 * sign in: the certificate (it may be revoked meanwhile), or
	 * passwords (they may be turned off). */
	if (s->by_cert) {
		struct auth_user cu;
		int rc = mtls_authenticate(n, n->cm, req, &cu, e);
		if (rc != 1 || cu.uid != s->uid) {
			if (rc != -1 || e == NULL || e->code != E_STORE)
				sodium_memzero(s, sizeof(*s));
			if (rc == 1 || rc == 0)
				err_set(e, E_UNAUTHORIZED, "this session was "
				    "opened with another client certificate "
				    "than this connection shows: sign in "
				    "again");
			return -1;
		}
	} else {
		int ok = mtls_basic_allowed(n, e);
		if (ok == -1)
			return -1;
		if (ok == 0) {
			sodium_memzero(s, sizeof(*s));
			return err_set(e, E_UNAUTHORIZED, "password sign-in is "
			    "off (control_plane_basic_authentication): sign "
			    "in with a client certificate");
		}
	}
	if (users_lookup(n, s->uid, u, e) == -1) {
		/* The user is gone: so is the session.  A store that does not
		 * answer ends nothing: the next request may find it back. */
		if (e != NULL && e->code == E_UNAUTHORIZED)
			sodium_memzero(s, sizeof(*s));
		return -1;
	}
	s->last = time(NULL);
	return 0;
}

static json_t *
session_json(struct node *n, const struct auth_user *u, const char *csrf)
{
	return json_pack("{s:s, s:s, s:i, s:s, s:i}", "email", u->email, "role",
	    u->role, "uid", u->uid, "csrf_token", csrf, "idle_timeout",
	    n->ss->idle);
}

/* The password was right: open a session (the oldest is dropped when
 * the table is full). */
static int
session_open(struct api_req *r, struct err *e)
{
	struct sessions	*ss = r->n->ss;
	struct session	*s = NULL;
	char		 token[64], cookie[256];
	time_t		 now = time(NULL);
	int		 i;

	for (i = 0; i < SESSIONS_MAX; i++) {
		struct session *c = &ss->s[i];
		if (c->used && now - c->last > ss->idle)
			sodium_memzero(c, sizeof(*c));
		if (!c->used && s == NULL)
			s = c;
	}
	if (s == NULL) {
		s = &ss->s[0];
		for (i = 1; i < SESSIONS_MAX; i++)
			if (ss->s[i].last < s->last)
				s = &ss->s[i];
	}
	random_token(token, sizeof(token));
	memset(s, 0, sizeof(*s));
	token_hash(token, s->hash);
	random_token(s->csrf, sizeof(s->csrf));
	s->uid = r->user.uid;
	s->last = now;
	s->used = 1;
	s->by_cert = r->by_cert;
	snprintf(cookie, sizeof(cookie), COOKIE "=%s; Path=/; HttpOnly; "
	    "Secure; SameSite=Strict", token);
	sodium_memzero(token, sizeof(token));
	if (r->req != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(r->req),
		    "Set-Cookie", cookie);
	sodium_memzero(cookie, sizeof(cookie));
	log_audit("%s signed in to the UI (role %s)", r->who, r->user.role);
	if ((r->resp = session_json(r->n, &r->user, s->csrf)) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	return 0;
}

static void
session_signed_in(void *arg, int rc, int retry, struct err *e)
{
	struct api_req *r = arg;

	r->in_job = 0;
	if (rc == 0) {
		snprintf(r->who, sizeof(r->who), "%s from %s", r->user.email,
		    r->peer);
		rc = session_open(r, e);
	} else if (retry > 0 && r->req != NULL) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%d", retry);
		evhttp_add_header(evhttp_request_get_output_headers(r->req),
		    "Retry-After", ra);
	}
	api_finish(r, rc, e);
}

int
api_session_post(struct api_req *r, struct err *e)
{
	json_t		*b;
	json_error_t	 je;
	const char	*email, *password;
	int		 retry = 0, rc;

	if ((b = api_body(r, 0, e)) == NULL)
		return -1;
	if (json_is_true(json_object_get(b, "certificate")) &&
	    json_object_size(b) == 1) {
		/* The browser's client certificate, as the API takes it. */
		if ((rc = mtls_authenticate(r->n, r->n->cm, r->req, &r->user,
		    e)) == 0)
			return err_set(e, E_UNAUTHORIZED, "no client "
			    "certificate came with this connection (or the "
			    "cluster does not sign in with certificates: "
			    "mtls_certificate_authentication)");
		if (rc == -1)
			return -1;
		r->by_cert = 1;
		snprintf(r->who, sizeof(r->who), "%s from %s (certificate)",
		    r->user.email, r->peer);
		return session_open(r, e);
	}
	if (json_unpack_ex(b, &je, JSON_STRICT, "{s:s, s:s}", "email", &email,
	    "password", &password) != 0)
		return err_set(e, E_INVALID_SCHEMA, "%s; expected {\"email\", "
		    "\"password\"} or {\"certificate\": true}", je.text);
	if ((rc = mtls_basic_allowed(r->n, e)) != 1)
		return rc == 0 ? err_set(e, E_UNAUTHORIZED, "password sign-in "
		    "is off (control_plane_basic_authentication): sign in "
		    "with a client certificate") : -1;
	r->in_job = 1;
	rc = users_sign_in(r->n, email, password, r->peer, &r->user, &retry,
	    session_signed_in, r, e);
	if (rc == API_ASYNC) {
		api_hold(r);
		return API_ASYNC;
	}
	r->in_job = 0;
	if (rc == 0)
		return session_open(r, e);
	if (retry > 0 && r->req != NULL) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%d", retry);
		evhttp_add_header(evhttp_request_get_output_headers(r->req),
		    "Retry-After", ra);
	}
	return -1;
}

int
api_session_get(struct api_req *r, struct err *e)
{
	struct session *s = sessions_find(r->n->ss, r->req);

	if (s == NULL)
		return err_set(e, E_UNAUTHORIZED, "not signed in");
	r->resp = session_json(r->n, &r->user, s->csrf);
	return r->resp != NULL ? 0 : err_set(e, E_INTERNAL, "out of memory");
}

int
api_session_delete(struct api_req *r, struct err *e)
{
	struct session *s = sessions_find(r->n->ss, r->req);

	if (s != NULL)
		sodium_memzero(s, sizeof(*s));
	if (r->req != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(r->req),
		    "Set-Cookie", COOKIE "=; Path=/; HttpOnly; Secure; "
		    "SameSite=Strict; Max-Age=0");
	log_audit("%s signed out of the UI", r->who);
	r->resp = json_pack("{s:b}", "signed_out", 1);
	return 0;
}
