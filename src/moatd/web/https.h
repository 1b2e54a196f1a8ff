/*
 * https.h — the HTTP listeners of the API: HTTPS on a TCP port with a
 * hot-swappable TLS context, and plain HTTP on the local control socket.
 */
#ifndef MOATD_HTTPS_H
#define MOATD_HTTPS_H

#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>

#include "err.h"
#include "tlsctx.h"

struct https;

typedef void (*https_cb)(struct evhttp_request *req, void *arg);

/* Listen on addr:port; ctx is referenced, not taken. */
struct https	*https_new(struct event_base *base, const char *addr, int port,
		    struct tlsctx *ctx, https_cb cb, void *arg, struct err *e);
void		 https_free(struct https *h);
/* The next handshake uses ctx; open connections keep the context they
 * were accepted with.  Takes its own reference. */
void		 https_set_ctx(struct https *h, struct tlsctx *ctx);
/*
 * Close every established session whose protocol version is below
 * min_version; returns how many.  A held connection (one whose request
 * waits for its answer) is counted, and closed after its response.
 */
int		 https_close_below(struct https *h, int min_version);
/* conn (http_conn_of) has a request waiting for its answer (hold=1), or
 * no more (0). */
void		 https_hold(struct https *h, const void *conn, int hold);
/* 1 when conn must close once its response is sent. */
int		 https_close_pending(struct https *h, const void *conn);
/* Established sessions by TLS version. */
void		 https_count_versions(struct https *h, int *tls12, int *tls13);
/* Connections closed as too slow (no whole request in time), or over a
 * limit (per address, per port), since start. */
uint64_t	 https_refused(struct https *h);
/* Handshakes since start, by how they ended. */
void		 https_handshakes(struct https *h, uint64_t out[TLS_HS__COUNT]);

/* The client certificate of req's connection against r, now (see
 * tls_peer_verify): 1 with subject, 0 none presented, -1 refused. */
int		 https_peer_verify(struct https *h, struct evhttp_request *req,
		    const struct tls_peer_rules *r, char *subject, size_t len,
		    struct err *e);

/* The limits every listener's evhttp has (body, headers, time, methods). */
void		 http_common_setup(struct evhttp *http);

/* Plain HTTP on a unix socket at path, mode 0600. */
struct evhttp	*http_local_new(struct event_base *base, const char *path,
		    https_cb cb, void *arg, struct err *e);

/* The identity of the connection behind req: "127.0.0.1" or "local uid=0";
 * writes into buf. */
const char	*http_peer(struct evhttp_request *req, char *buf, size_t len,
		    int *is_loopback);
/* An opaque handle of req's connection, for https_close_below. */
const void	*http_conn_of(struct evhttp_request *req);

#endif
