/*
 * proxy_impl.h — what the two data paths of the workers share: proxy.c
 * (listeners, commands, the epoll path) and proxy_uring.c (the io_uring
 * path).  Not for other modules: proxy.h is the interface.
 */
#ifndef PROXY_IMPL_H
#define PROXY_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>

#include "proxy.h"
#include "tlsctx_impl.h"

#define SCRATCH		(64 * 1024)
#define MAX_LISTENERS	1024
#define HANDSHAKE_SECS	10
#define MAX_EVENTS	128

enum tag_kind { TAG_LISTEN, TAG_CLIENT, TAG_BACKEND, TAG_WAKE };

struct tag {
	enum tag_kind	 kind;
	void		*ptr;
};

/*
 * Counters of one port, for the metrics exporter: part of its listener,
 * so they live exactly as long as the port is served (a database created
 * later on the same port starts from zero).  The workers add with
 * relaxed atomics, the control thread reads the same way.
 */
struct pstats {
	_Atomic uint64_t	 hs[TLS_HS__COUNT];
	_Atomic uint64_t	 in, out;
};

#define STAT_ADD(field, v) \
	atomic_fetch_add_explicit(&(field), (v), memory_order_relaxed)

/* What a connection needs of its database; refcounted, immutable. */
struct endpoint {
	_Atomic int	 refs;
	int		 port;
	struct pstats	*st;		/* its listener's (freed after every
					   connection that uses it) */
	struct tlsctx	*ctx;		/* NULL: plaintext */
	char		 backend[108];
	char		 label[32];
};

struct listener {
	int		 fd;
	int		 port;
	struct tag	 tag;
	pthread_mutex_t	 mu;		/* guards ep */
	struct endpoint	*ep;
	struct pstats	 st;
};

enum {
	C_HANDSHAKE	= 1 << 0,	/* TLS handshake not finished */
	C_CLIENT_EOF	= 1 << 1,
	C_BACKEND_EOF	= 1 << 2,
	C_READ_WANTS_W	= 1 << 3,	/* SSL_read needs the socket writable */
	C_DRY		= 1 << 4,	/* last client read was short */
	C_CLOSED	= 1 << 5,	/* freed at the end of the batch */
	/* The io_uring path only (proxy_uring.c). */
	C_CRECV		= 1 << 6,	/* a receive from the client is queued */
	C_BRECV		= 1 << 7,	/* a receive from the backend is queued */
	C_RIN_EOF	= 1 << 8,	/* the client's socket said EOF */
	C_DIRTY		= 1 << 9,	/* on the worker's list to send */
	C_STARVE_C	= 1 << 10,	/* a receive found no buffer: retry */
	C_STARVE_B	= 1 << 11,
	C_DEAD		= 1 << 12,	/* on the worker's list to free */
	C_PAUSED_C	= 1 << 13,	/* client not read: the backend's
					   queue is full */
};

/*
 * Bytes on their way to one side, io_uring path.  The kernel reads f
 * until its send completes, so nothing may move it: what is written
 * meanwhile goes to q, which becomes the next f.  Both are allocated
 * only while they hold bytes.
 */
struct obuf {
	char		*q, *f;
	size_t		 qlen, qcap;
	size_t		 flen, foff;
	int		 inflight;	/* a send of f is queued */
};

struct pconn {
	struct tag	 ctag, btag;
	int		 cfd, bfd;
	SSL		*ssl;		/* NULL: plaintext */
	struct endpoint	*ep;		/* reference */
	struct worker	*w;
	unsigned	 flags;
	uint32_t	 cev, bev;	/* epoll interest now */
	char		*c2b;		/* pending to the backend */
	size_t		 c2b_len, c2b_off;
	char		*b2c;		/* pending to the client (SSL_write retry) */
	size_t		 b2c_len;
	time_t		 born;
	struct pconn	*prev, *next;
	/*
	 * io_uring path: rin is the client's bytes that OpenSSL has not
	 * read yet, in provided buffer rbid - 1 (0: none) or in rheap;
	 * out[0] goes to the client, out[1] to the backend; nops counts
	 * the operations the kernel still holds, and c is freed only when
	 * it is 0.
	 */
	const char	*rin;
	size_t		 rin_len;
	int		 rbid;
	char		*rheap;		/* rin's copy when rbid had to go back */
	int		 nops;
	struct obuf	 out[2];
	struct pconn	*dnext, *snext;	/* the dirty and starved lists */
};


struct worker {
	pthread_t	 thread;
	int		 started;
	int		 idx;
	int		 epfd;
	int		 wakefd;
	struct tag	 wtag;
	char		*scratch;
	struct pconn	*conns;
	struct pconn	*dead;		/* closed, to free at the end of the batch */
	struct uring	*u;		/* NULL: the epoll path */
	time_t		 last_sweep;
	pthread_mutex_t	 mu;		/* guards the queue and stop */
	struct pjob_link *qhead, **qtail;
	int		 stop;		/* exit once the queue is run */
};

/* proxy.c, for both paths. */
void	endpoint_unref(struct endpoint *ep);
void	conn_close(struct pconn *c, int notify);
void	conn_unlink(struct pconn *c);
void	conn_handshake_failed(struct pconn *c);
int	conn_init_tls(struct pconn *c, BIO_METHOD *m);
void	worker_accept(struct worker *w, struct listener *l);
int	worker_epoll(struct worker *w, int timeout_ms);
int	worker_batch_end(struct worker *w, int woken);
void	worker_reap(struct worker *w);

/* proxy_uring.c: the io_uring path.  uring_new fails (-1, why in errbuf)
 * where the kernel or a sandbox refuses io_uring. */
int	uring_new(struct worker *w, char *errbuf, size_t len);
void	uring_free(struct worker *w);
/* -1 when the ring would not start: the worker then uses epoll. */
int	uring_main(struct worker *w);
BIO_METHOD *uring_bio_method(void);
void	uring_conn_start(struct pconn *c);
void	uring_conn_close(struct pconn *c, int notify);

#endif
