/*
 * https.c — evhttp over OpenSSL bufferevents, with session tracking.
 *
 * Each accepted connection gets an SSL object made from the context that
 * is current at that instant.  OpenSSL keeps that context alive for as
 * long as the SSL object lives, so swapping h->ctx never touches a live
 * connection.  Sessions are tracked through SSL ex_data so that raising
 * the minimum TLS version can find and close the ones below it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "https.h"
#include "log.h"
#include "tlsctx_impl.h"

#define HTTP_MAX_BODY		(2 * 1024 * 1024)
#define HTTP_MAX_HEADERS	(32 * 1024)
#define HTTP_TIMEOUT		60

/*
 * Slow and flooding clients.  A connection has FIRST_REQUEST_S from its
 * accept to deliver its first whole request (TLS handshake, headers and
 * body: a client that trickles one byte at a time cannot keep it longer),
 * and NEXT_REQUEST_S after each answer for the next one; one address
 * holds at most PER_ADDR connections on a port, and a port at most
 * MAX_SESSIONS.  Together with the body limit, that bounds what all
 * connections can make moatd buffer, and a flood from one address leaves
 * room for everyone else.
 */
#define FIRST_REQUEST_S		10
#define NEXT_REQUEST_S		60
#define PER_ADDR		32
#define MAX_SESSIONS		2048

struct https_sess {
	SSL			*ssl;
	struct bufferevent	*bev;
	struct https		*h;
	struct event		*deadline;	/* the request must be in */
	struct event		*admit;		/* the address check */
	char			 addr[64];
	int			 full;		/* over MAX_SESSIONS: dropped */
	int			 held;		/* a request awaits its answer */
	int			 hs;		/* -1: handshaking, else result */
	time_t			 born;
	int			 close_pending;	/* close after that answer */
	struct https_sess	*prev, *next;
};

/*
 * Out of file descriptors, accept() fails at once for as long as the
 * connections stay: libevent would retry in a tight loop and log every
 * failure.  The guard stops accepting, resumes after a pause, and logs
 * once per episode.
 */
struct accept_guard {
	struct evconnlistener	*lev;
	struct event		*resume;
	const char		*what;
	time_t			 last_error;
	char			 name[64];
};

#define ACCEPT_PAUSE_MS		250
#define ACCEPT_EPISODE_S	10	/* quiet this long: a new episode */

static void
guard_resume(evutil_socket_t fd, short what, void *arg)
{
	struct accept_guard *g = arg;

	evconnlistener_enable(g->lev);
}

/* libevent hands the error callback the listener's own argument (evhttp
 * owns it): the guard is found by its listener.  Control thread only. */
#define MAX_GUARDS	8
static struct accept_guard	*guards[MAX_GUARDS];

static void
guard_error(struct evconnlistener *lev, void *arg)
{
	struct accept_guard	*g = NULL;
	struct timeval		 tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	int			 err = EVUTIL_SOCKET_ERROR(), i;
	time_t			 now = time(NULL);

	for (i = 0; i < MAX_GUARDS && g == NULL; i++)
		if (guards[i] != NULL && guards[i]->lev == lev)
			g = guards[i];
	if (g == NULL)
		return;

	if (now - g->last_error > ACCEPT_EPISODE_S)
		log_warn("%s: cannot accept connections: %s; pausing %d ms at "
		    "a time until it can", g->name, strerror(err),
		    ACCEPT_PAUSE_MS);
	g->last_error = now;
	evconnlistener_disable(lev);
	evtimer_add(g->resume, &tv);
}

static struct accept_guard *
guard_new(struct event_base *base, struct evconnlistener *lev,
    const char *name)
{
	struct accept_guard *g;

	int i;

	for (i = 0; i < MAX_GUARDS && guards[i] != NULL; i++)
		;
	if (lev == NULL || i == MAX_GUARDS ||
	    (g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	if ((g->resume = evtimer_new(base, guard_resume, g)) == NULL) {
		free(g);
		return NULL;
	}
	g->lev = lev;
	snprintf(g->name, sizeof(g->name), "%s", name);
	guards[i] = g;
	evconnlistener_set_error_cb(lev, guard_error);
	return g;
}

static void
guard_free(struct accept_guard *g)
{
	int i;

	if (g == NULL)
		return;
	for (i = 0; i < MAX_GUARDS; i++)
		if (guards[i] == g)
			guards[i] = NULL;
	event_free(g->resume);
	free(g);
}

struct https {
	struct event_base	*base;
	struct evhttp		*http;
	struct accept_guard	*guard;
	https_cb		 cb;		/* the caller's dispatch */
	void			*cb_arg;
	int			 nsessions;
	uint64_t		 refused;	/* closed as too slow or too many */
	struct tlsctx		*ctx;	/* owned reference: next handshakes */
	struct https_sess	*sessions;
	uint64_t		 hs[TLS_HS__COUNT];	/* for the metrics */
};

static int sess_idx = -1;

/* OpenSSL calls this when the SSL object is freed, i.e. when evhttp has
 * closed the connection: the session leaves the list. */
static void
https_sess_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	struct https_sess *s = ptr;

	if (s == NULL)
		return;
	if (s->deadline != NULL)
		event_free(s->deadline);
	if (s->admit != NULL)
		event_free(s->admit);
	if (s->h != NULL)
		s->h->nsessions--;
	if (s->h != NULL && s->hs == -1)
		s->h->hs[time(NULL) - s->born >= HTTP_TIMEOUT ?
		    TLS_HS_TIMEOUT : TLS_HS_ABANDONED]++;
	if (s->h != NULL) {
		if (s->prev != NULL)
			s->prev->next = s->next;
		else
			s->h->sessions = s->next;
		if (s->next != NULL)
			s->next->prev = s->prev;
	}
	free(s);
}

/* Count how each handshake ends: done, or refused with a fatal alert
 * (the error that made OpenSSL send it is on the queue then). */
static void
https_info(const SSL *ssl, int where, int ret)
{
	struct https_sess *s = SSL_get_ex_data(ssl, sess_idx);

	if (s == NULL || s->h == NULL || s->hs != -1)
		return;
	if (where & SSL_CB_HANDSHAKE_DONE)
		s->hs = TLS_HS_OK;
	else if ((where & SSL_CB_WRITE_ALERT) == SSL_CB_WRITE_ALERT &&
	    strcmp(SSL_alert_type_string(ret), "F") == 0)
		s->hs = tlsctx_handshake_why(ERR_peek_last_error());
	else
		return;
	s->h->hs[s->hs]++;
}

/* evhttp owns the connection: shut the socket and let it see the end. */
static void
sess_drop(struct https_sess *s)
{
	if (s->h != NULL)
		s->h->refused++;
	shutdown(bufferevent_getfd(s->bev), SHUT_RDWR);
}

static void
sess_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct https_sess *s = arg;

	/* A request being answered (or parked) is not slow. */
	if (!s->held)
		sess_drop(s);
}

static void
sess_arm(struct https_sess *s, int secs)
{
	struct timeval tv = { secs, 0 };

	if (s->deadline != NULL)
		evtimer_add(s->deadline, &tv);
}

/* Right after evhttp set the connection up (its socket is known now):
 * one address may not hold more than PER_ADDR connections. */
static void
sess_admit(evutil_socket_t fd, short what, void *arg)
{
	struct https_sess	*s = arg, *o;
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof(ss);
	int			 same = 0, sock = bufferevent_getfd(s->bev);

	if (s->h == NULL || sock == -1)
		return;
	if (s->full) {
		sess_drop(s);
		return;
	}
	if (getpeername(sock, (struct sockaddr *)&ss, &sl) == -1)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
		    s->addr, sizeof(s->addr));
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
		    s->addr, sizeof(s->addr));
	for (o = s->h->sessions; o != NULL; o = o->next)
		if (o != s && strcmp(o->addr, s->addr) == 0)
			same++;
	if (same >= PER_ADDR)
		sess_drop(s);
}

static struct bufferevent *
https_bevcb(struct event_base *base, void *arg)
{
	struct https		*h = arg;
	struct https_sess	*s;
	struct bufferevent	*bev;
	SSL			*ssl;

	/* (Never NULL: evhttp would then serve the connection without
	 * TLS.  Full, it gets its TLS bufferevent and is shut at once by
	 * the admit event; https_gencb refuses anything without one.) */
	if ((ssl = SSL_new(tlsctx_ssl_ctx(h->ctx))) == NULL)
		return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	if ((s->deadline = evtimer_new(base, sess_deadline, s)) == NULL ||
	    (s->admit = event_new(base, -1, 0, sess_admit, s)) == NULL) {
		if (s->deadline != NULL)
			event_free(s->deadline);
		free(s);
		SSL_free(ssl);
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		event_free(s->deadline);
		event_free(s->admit);
		free(s);
		SSL_free(ssl);
		return NULL;
	}
	/* Clients that close without close_notify are normal for HTTP. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	s->ssl = ssl;
	s->bev = bev;
	s->h = h;
	s->hs = -1;
	s->born = time(NULL);
	SSL_set_info_callback(ssl, https_info);
	s->next = h->sessions;
	if (h->sessions != NULL)
		h->sessions->prev = s;
	h->sessions = s;
	s->full = ++h->nsessions > MAX_SESSIONS;
	SSL_set_ex_data(ssl, sess_idx, s);
	sess_arm(s, FIRST_REQUEST_S);
	event_active(s->admit, EV_TIMEOUT, 0);
	return bev;
}

static struct https_sess *https_find(struct https *, const void *);

/* A request is answered: the next one has NEXT_REQUEST_S to come in. */
static void
https_request_done(struct evhttp_request *req, void *arg)
{
	struct https		*h = arg;
	struct https_sess	*s = https_find(h, http_conn_of(req));

	if (s != NULL)
		sess_arm(s, NEXT_REQUEST_S);
}

/* Every request: whole, so its connection is not slow; then the
 * caller's dispatch. */
static void
https_gencb(struct evhttp_request *req, void *arg)
{
	struct https		*h = arg;
	struct https_sess	*s = https_find(h, http_conn_of(req));

	/* A connection without a TLS session of ours (libevent made a plain
	 * one when ours could not be made) is never served. */
	if (s == NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Connection", "close");
		evhttp_send_error(req, 400, "this port speaks HTTPS only");
		return;
	}
	if (s->deadline != NULL)
		evtimer_del(s->deadline);
	evhttp_request_set_on_complete_cb(req, https_request_done, h);
	h->cb(req, h->cb_arg);
}

void
http_common_setup(struct evhttp *http)
{
	evhttp_set_max_body_size(http, HTTP_MAX_BODY);
	evhttp_set_max_headers_size(http, HTTP_MAX_HEADERS);
	evhttp_set_timeout(http, HTTP_TIMEOUT);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
}

struct https *
https_new(struct event_base *base, const char *addr, int port,
    struct tlsctx *ctx, https_cb cb, void *arg, struct err *e)
{
	struct evhttp_bound_socket	*bound;
	struct https			*h;
	char				 name[96];

	if (sess_idx == -1)
		sess_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL,
		    https_sess_free);
	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->http = evhttp_new(base)) == NULL) {
		free(h);
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	h->base = base;
	h->ctx = tlsctx_ref(ctx);
	http_common_setup(h->http);
	evhttp_set_bevcb(h->http, https_bevcb, h);
	h->cb = cb;
	h->cb_arg = arg;
	evhttp_set_gencb(h->http, https_gencb, h);
	if ((bound = evhttp_bind_socket_with_handle(h->http, addr,
	    (ev_uint16_t)port)) == NULL) {
		err_set(e, E_INTERNAL, "cannot listen on %s:%d: %s", addr,
		    port, strerror(errno));
		https_free(h);
		return NULL;
	}
	snprintf(name, sizeof(name), "%s:%d", addr, port);
	h->guard = guard_new(base, evhttp_bound_socket_get_listener(bound),
	    name);
	return h;
}

void
https_free(struct https *h)
{
	struct https_sess *s;

	if (h == NULL)
		return;
	/* evhttp_free closes the connections; detach the list first so the
	 * ex_data callback does not touch h. */
	for (s = h->sessions; s != NULL; s = s->next)
		s->h = NULL;
	guard_free(h->guard);
	evhttp_free(h->http);
	tlsctx_unref(h->ctx);
	free(h);
}

void
https_set_ctx(struct https *h, struct tlsctx *ctx)
{
	struct tlsctx *old = h->ctx;

	h->ctx = tlsctx_ref(ctx);
	tlsctx_unref(old);
}

int
https_close_below(struct https *h, int min_version)
{
	struct https_sess	*s;
	int			 n = 0;

	for (s = h->sessions; s != NULL; s = s->next) {
		if (!SSL_is_init_finished(s->ssl)) {
			/* Not negotiated yet: make it negotiate under the
			 * new minimum if the ClientHello is still to come. */
			SSL_set_min_proto_version(s->ssl, min_version);
			continue;
		}
		if (SSL_version(s->ssl) >= min_version)
			continue;
		n++;
		if (s->held) {
			s->close_pending = 1;
			continue;
		}
		/* evhttp owns the connection: shut the socket down and let
		 * it see the end of the stream and free it in its own time. */
		shutdown(bufferevent_getfd(s->bev), SHUT_RDWR);
	}
	return n;
}

static struct https_sess *
https_find(struct https *h, const void *conn)
{
	struct https_sess *s;

	for (s = h->sessions; s != NULL && conn != NULL; s = s->next)
		if (s->bev == conn)
			return s;
	return NULL;
}

void
https_hold(struct https *h, const void *conn, int hold)
{
	struct https_sess *s = https_find(h, conn);

	if (s != NULL)
		s->held = hold;
}

int
https_close_pending(struct https *h, const void *conn)
{
	struct https_sess *s = https_find(h, conn);

	return s != NULL && s->close_pending;
}

int
https_peer_verify(struct https *h, struct evhttp_request *req,
    const struct tls_peer_rules *r, char *subject, size_t len, struct err *e)
{
	struct https_sess *s = https_find(h, http_conn_of(req));

	if (s == NULL || s->ssl == NULL)
		return 0;
	return tls_peer_verify(s->ssl, r, subject, len, e);
}

void
https_count_versions(struct https *h, int *tls12, int *tls13)
{
	struct https_sess *s;

	*tls12 = *tls13 = 0;
	for (s = h->sessions; s != NULL; s = s->next) {
		if (!SSL_is_init_finished(s->ssl))
			continue;
		if (SSL_version(s->ssl) == TLS1_2_VERSION)
			(*tls12)++;
		else if (SSL_version(s->ssl) == TLS1_3_VERSION)
			(*tls13)++;
	}
}

void
https_handshakes(struct https *h, uint64_t out[TLS_HS__COUNT])
{
	memcpy(out, h->hs, sizeof(h->hs));
}

uint64_t
https_refused(struct https *h)
{
	return h->refused;
}

struct evhttp *
http_local_new(struct event_base *base, const char *path, https_cb cb,
    void *arg, struct err *e)
{
	struct sockaddr_un	 sun;
	struct evconnlistener	*l;
	struct evhttp		*http;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		err_set(e, E_INTERNAL, "control socket path too long: %s", path);
		return NULL;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		err_set(e, E_INTERNAL, "socket: %s", strerror(errno));
		return NULL;
	}
	/* A socket file that answers belongs to a running moatd. */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(fd);
		err_set(e, E_INTERNAL, "another moatd is running on %s", path);
		return NULL;
	}
	close(fd);
	unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1) {
		err_set(e, E_INTERNAL, "socket: %s", strerror(errno));
		return NULL;
	}
	/*
	 * Bind to a temporary name and rename it into place once listening:
	 * whoever sees DIR/moatd.sock can connect to it.  umask first, so
	 * the socket is never connectable by others.
	 */
	char tmp[sizeof(sun.sun_path)];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid()) >=
	    sizeof(tmp)) {
		close(fd);
		err_set(e, E_INTERNAL, "control socket path too long: %s", path);
		return NULL;
	}
	unlink(tmp);
	strcpy(sun.sun_path, tmp);
	mode_t old = umask(0177);
	int rb = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rb == -1 || chmod(tmp, 0600) == -1 || listen(fd, 64) == -1 ||
	    rename(tmp, path) == -1) {
		err_set(e, E_INTERNAL, "cannot listen on %s: %s", path,
		    strerror(errno));
		unlink(tmp);
		close(fd);
		return NULL;
	}
	if ((http = evhttp_new(base)) == NULL) {
		close(fd);
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	http_common_setup(http);
	evhttp_set_gencb(http, cb, arg);
	l = evconnlistener_new(base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (l != NULL)
		/* Lives as long as the process's one control socket. */
		(void)guard_new(base, l, path);
	if (l == NULL || evhttp_bind_listener(http, l) == NULL) {
		if (l != NULL)
			evconnlistener_free(l);
		else
			close(fd);
		evhttp_free(http);
		err_set(e, E_INTERNAL, "cannot serve %s", path);
		return NULL;
	}
	return http;
}

const char *
http_peer(struct evhttp_request *req, char *buf, size_t len, int *is_loopback)
{
	struct evhttp_connection	*c = evhttp_request_get_connection(req);
	struct bufferevent		*bev;
	struct sockaddr_storage		 ss;
	socklen_t			 sl = sizeof(ss);
	int				 fd;

	*is_loopback = 0;
	snprintf(buf, len, "unknown");
	if (c == NULL || (bev = evhttp_connection_get_bufferevent(c)) == NULL)
		return buf;
	fd = bufferevent_getfd(bev);
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == -1)
		return buf;
	if (ss.ss_family == AF_UNIX) {
		struct ucred	 cr;
		socklen_t	 cl = sizeof(cr);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
			snprintf(buf, len, "local uid=%u", (unsigned)cr.uid);
		else
			snprintf(buf, len, "local");
		*is_loopback = 1;
	} else if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &sin->sin_addr, buf, (socklen_t)len);
		*is_loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
		*is_loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
	}
	return buf;
}

const void *
http_conn_of(struct evhttp_request *req)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);

	return c != NULL ? (const void *)evhttp_connection_get_bufferevent(c) :
	    NULL;
}
