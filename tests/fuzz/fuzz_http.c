/*
 * fuzz_http.c — the HTTP request path up to signing in, driven as a
 * client on the network drives it: raw bytes into evhttp (with the
 * listeners' limits), then moat's routing and :params, query options,
 * the Origin rule, the Basic credentials, the session cookie, the peer
 * and the JSON body.  The first byte picks the listener (API, UI port,
 * control socket); the rest is the request as sent.
 *
 * The handlers behind sign-in are not run here (they need a cluster);
 * what they decode from bodies is fuzz_schema's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>

#include "api.h"
#include "https.h"
#include "sessions.h"
#include "users.h"

/* More than a socket pair buffers without a reader between writes. */
#define INPUT_MAX	(128 * 1024)

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base	*base;
static struct evhttp		*http;
static struct sockaddr_un	 addr;	/* where evhttp listens */
static int			 listener;	/* 0 API, 1 UI, 2 local */

static void
gencb(struct evhttp_request *req, void *arg)
{
	struct api_req	 r;
	struct err	 e = { 0 };
	const char	*authz, *password;
	char		 raw[1024], token[128], peer[64];
	int		 loopback;

	(void)arg;
	memset(&r, 0, sizeof(r));
	r.req = req;
	r.ui = listener == 1;
	r.local = listener == 2;
	http_peer(req, peer, sizeof(peer), &loopback);
	if (api_parse(&r, req, &e) == 0)
		(void)api_param_uid(&r);
	/* MOAT_FUZZ_VERBOSE: what each request came to (to check a seed). */
	if (getenv("MOAT_FUZZ_VERBOSE") != NULL)
		fprintf(stderr, "fuzz_http: %s -> %s\n",
		    evhttp_request_get_uri(req), r.rt != NULL ? "a route" :
		    err_msg(&e));
	err_clear(&e);
	authz = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (users_basic_decode(authz, raw, sizeof(raw), &password, &e) == 0)
		(void)strlen(password);
	err_clear(&e);
	(void)sessions_cookie_token(req, token, sizeof(token));
	(void)api_body(&r, 1, &e);
	err_clear(&e);
	json_decref(r.body);
	evhttp_send_reply(req, 200, "OK", NULL);
}

static void
unlink_addr(void)
{
	unlink(addr.sun_path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char			 buf[4096];
	int			 sv[2], i;
	size_t			 off = 0;
	ssize_t			 n;

	if (size < 1 || size > INPUT_MAX)
		return 0;
	if (base == NULL) {
		int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
		base = event_base_new();
		http = evhttp_new(base);
		http_common_setup(http);
		evhttp_set_gencb(http, gencb, NULL);
		/* A listening socket of its own, as moatd's control socket. */
		addr.sun_family = AF_UNIX;
		snprintf(addr.sun_path, sizeof(addr.sun_path),
		    "/tmp/moat-fuzz-http.%d", (int)getpid());
		unlink(addr.sun_path);
		if (lfd == -1 || bind(lfd, (struct sockaddr *)&addr,
		    sizeof(addr)) == -1 || listen(lfd, 16) == -1 ||
		    evutil_make_socket_nonblocking(lfd) == -1 ||
		    evhttp_accept_socket(http, lfd) == -1)
			abort();
		atexit(unlink_addr);
	}
	listener = data[0] % 3;
	if ((sv[1] = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		return 0;
	if (connect(sv[1], (struct sockaddr *)&addr, sizeof(addr)) == -1) {
		close(sv[1]);
		return 0;
	}
	evutil_make_socket_nonblocking(sv[1]);
	/* Write what fits, let evhttp read, repeat; then the end of input. */
	data++;
	size--;
	for (i = 0; i < 1000 && off < size; i++) {
		n = write(sv[1], data + off, size - off);
		if (n > 0)
			off += (size_t)n;
		event_base_loop(base, EVLOOP_NONBLOCK);
		while (read(sv[1], buf, sizeof(buf)) > 0)
			;
	}
	/* Until evhttp has answered (or given up on the request); the end
	 * of input comes after, as from a client that waits for answers. */
	for (i = 0; i < 50; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if ((n = read(sv[1], buf, sizeof(buf))) == 0)
			break;
		if (n > 0 && i > 40)
			i = 40;		/* more may follow */
	}
	shutdown(sv[1], SHUT_WR);
	for (i = 0; i < 10; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (read(sv[1], buf, sizeof(buf)) == 0)
			break;
	}
	close(sv[1]);
	/* evhttp sees the close and frees the connection. */
	for (i = 0; i < 5; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	return 0;
}
