/*
 * proxy.h — the data path: worker threads that terminate TLS in front of
 * every database and pipe bytes to the shard's unix socket.
 *
 * The control thread publishes endpoints (port, TLS context, backend);
 * workers pick the endpoint current at accept time and keep it for the
 * life of the connection, so replacing a context never touches an open
 * connection.
 *
 * The control thread never waits for a worker: what needs the workers
 * (start or stop accepting on a port, close connections, count them) is
 * queued to every worker and returns at once.  Each worker runs its queue
 * in order, so two calls are applied in the order they were made (a
 * delete after a set of the same port is never applied before it).  When
 * the caller wants a result, the last worker to run the command posts it
 * to the control thread's event base, and the callback runs there, from
 * the loop, never from inside the call that queued it.
 */
#ifndef MOATD_PROXY_H
#define MOATD_PROXY_H

#include <stdint.h>

#include <event2/event.h>

#include "err.h"
#include "tlsctx.h"

struct proxy;

/*
 * What a live connection speaks.  The TLS values are indexes, not the
 * wire numbers: proxy_proto_version() maps them to 0x0301..0x0304, the
 * numbers tlsctx.h (TLS_V12, TLS_V13) and OpenSSL use.
 */
enum proxy_proto {
	PROXY_PLAINTEXT,	/* an endpoint without TLS */
	PROXY_HANDSHAKE,	/* TLS handshake not finished: no version yet */
	PROXY_TLS1_0,
	PROXY_TLS1_1,
	PROXY_TLS1_2,
	PROXY_TLS1_3,
	PROXY_PROTO_MAX
};

/* Live connections on one port, by protocol. */
struct proxy_port_sessions {
	int	 port;
	int	 n[PROXY_PROTO_MAX];
};

/* Live connections summed over every worker, all ports and per port. */
struct proxy_sessions {
	int					 n[PROXY_PROTO_MAX];
	int					 nports;
	const struct proxy_port_sessions	*ports;	/* sorted by port */
};

/* Counters of one port since the proxy started (handshakes by
 * enum tls_hs_result, plaintext bytes from and to the clients). */
struct proxy_port_stats {
	int		 port;
	uint64_t	 handshakes[TLS_HS__COUNT];
	uint64_t	 bytes_in, bytes_out;
};

/*
 * How the workers wait for and move bytes: readiness (epoll, then read
 * and send) or completions (io_uring: receives into buffers the kernel
 * picks from a ring, sends queued and submitted in one system call per
 * batch).  Same behaviour either way; docs/performance.md compares them.
 */
enum proxy_data_path {
	PROXY_EPOLL,
	PROXY_IO_URING,
};

/* Result of a command: connections closed, summed over workers. */
typedef void (*proxy_done_cb)(int result, void *arg);
/* s is the proxy's, valid during the call only: copy what you keep. */
typedef void (*proxy_sessions_cb)(const struct proxy_sessions *s,
		    void *arg);

/*
 * Start nworkers threads (0: one per core).  base (not NULL) is the
 * control thread's event base: callbacks run on it.  It must be the base
 * of the thread that calls every other function here, and libevent must
 * have been made thread-aware (evthread_use_pthreads) before it was
 * created.
 */
struct proxy	*proxy_new_base(struct event_base *base, int nworkers,
		    enum proxy_data_path path, struct err *e);
/* The path the workers run: PROXY_IO_URING falls back to PROXY_EPOLL
 * (and logs why) where the kernel or a sandbox refuses io_uring. */
enum proxy_data_path proxy_data_path(const struct proxy *p);
const char	*proxy_data_path_name(enum proxy_data_path path);
/* "epoll" or "io_uring" to its path; -1 for anything else. */
int		 proxy_data_path_parse(const char *s,
		    enum proxy_data_path *path);
/*
 * Stops the workers and closes every connection.  Blocks until the
 * workers exited (shutdown only).  Commands in flight are completed or
 * dropped; no callback runs during or after this call.  Must not be
 * called from a proxy callback.
 */
void		 proxy_free(struct proxy *p);

/*
 * Serve port on addr: TLS with ctx (referenced; NULL for plaintext) in
 * front of the unix socket at backend.  A second call for the same port
 * replaces the context and backend for new connections only.  The socket
 * is bound and listening when this returns 0 (a bind error comes back
 * here, E_CONFLICT); handing it to the workers is queued, and the kernel
 * keeps early connections in the backlog until they take it.
 */
int		 proxy_endpoint_set_async(struct proxy *p, const char *addr,
		    int port, struct tlsctx *ctx, const char *backend,
		    const char *label, struct err *e);
/*
 * Stop listening on port and close its connections.  The port stops
 * accepting and is free for a new proxy_endpoint_set_async at once; the
 * workers close its connections in order with the other commands.  cb
 * (may be NULL) gets how many they closed.  0: queued; -1: no endpoint
 * on port, or out of memory (then nothing changed): cb is not called.
 */
int		 proxy_endpoint_del_async(struct proxy *p, int port,
		    proxy_done_cb cb, void *arg);
/*
 * Close TLS connections that negotiated a version below min_version
 * (0x0303, 0x0304: TLS_V12, TLS_V13); connections still in their
 * handshake are held to min_version instead.  cb gets how many were
 * closed.  0: queued; -1: out of memory, cb is not called.
 */
int		 proxy_close_below_async(struct proxy *p, int min_version,
		    proxy_done_cb cb, void *arg);
/* Close open connections on port (its shard went away); as above. */
int		 proxy_close_port_async(struct proxy *p, int port,
		    proxy_done_cb cb, void *arg);
/*
 * Count the live connections by port and protocol (a dry run of a
 * policy change: see proxy_sessions_below).  0: queued; -1: out of
 * memory, cb is not called.
 */
int		 proxy_sessions_async(struct proxy *p, proxy_sessions_cb cb,
		    void *arg);
/*
 * Forget every callback queued with arg: none of them is called after
 * this returns.  For an owner that frees arg while a command is in
 * flight.  The commands themselves still run.
 */
void		 proxy_cancel(struct proxy *p, void *arg);

/* The counters of port (control thread; they are read without waiting
 * for the workers).  -1 when port was never served. */
int		 proxy_port_stats(struct proxy *p, int port,
		    struct proxy_port_stats *out);

/* 0x0301..0x0304 for the TLS values, 0 for the others. */
int		 proxy_proto_version(enum proxy_proto proto);
/* "TLSv1.2" etc. as OpenSSL names them; "plaintext", "handshake". */
const char	*proxy_proto_name(enum proxy_proto proto);
/*
 * How many of s proxy_close_below_async(min_version) would close:
 * established TLS connections below min_version, on port (0: every
 * port).
 */
int		 proxy_sessions_below(const struct proxy_sessions *s, int port,
		    int min_version);

#endif
