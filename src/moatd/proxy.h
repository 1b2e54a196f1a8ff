/*
 * proxy.h — the data path: worker threads that terminate TLS in front of
 * every database and pipe bytes to the shard's unix socket.
 *
 * The control thread publishes endpoints (port, TLS context, backend);
 * workers pick the endpoint current at accept time and keep it for the
 * life of the connection, so replacing a context never touches an open
 * connection.
 */
#ifndef MOATD_PROXY_H
#define MOATD_PROXY_H

#include "err.h"
#include "tlsctx.h"

struct proxy;

/* Start nworkers threads (0: one per core). */
struct proxy	*proxy_new(int nworkers, struct err *e);
/* Stops the workers and closes every connection. */
void		 proxy_free(struct proxy *p);
/*
 * Serve port on addr: TLS with ctx (referenced; NULL for plaintext) in
 * front of the unix socket at backend.  A second call for the same port
 * replaces the context and backend for new connections only.
 */
int		 proxy_endpoint_set(struct proxy *p, const char *addr, int port,
		    struct tlsctx *ctx, const char *backend, const char *label,
		    struct err *e);
/* Stop listening on port and close its connections. */
void		 proxy_endpoint_del(struct proxy *p, int port);
/* Close TLS connections that negotiated below min_version; how many. */
int		 proxy_close_below(struct proxy *p, int min_version);
/* Close open connections on port (the shard went away). */
int		 proxy_close_port(struct proxy *p, int port);

#endif
