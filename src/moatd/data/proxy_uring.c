/*
 * proxy_uring.c — the workers' io_uring data path.
 *
 * The epoll path pays four system calls per request and a wake-up per
 * batch (docs/performance.md).  Here a worker says what it wants done
 * and the kernel says what was done:
 *
 *  - a receive names no buffer: the kernel takes one from the worker's
 *    ring of provided buffers when bytes arrive, so an idle connection
 *    holds none, and the buffer goes back as soon as its bytes moved on;
 *  - OpenSSL reads the client's bytes out of that buffer through a BIO
 *    of ours, and its records go to the connection's queue for the
 *    client, never straight to a socket;
 *  - what one batch of completions queued for one side of a connection
 *    leaves in one send, and every receive and send of the batch is
 *    submitted by the same system call that waits for the next batch.
 *
 * Back-pressure as on the epoll path: a side is not read again while the
 * other side's queue holds OUT_HIGH bytes or more.  The listeners and the
 * control thread's doorbell stay in the worker's epoll set (proxy.c's code
 * for both paths), which the ring polls.
 *
 * Who owns what: a connection's operations in the kernel point at it, so
 * a closed connection is freed only when the last of them completed;
 * closing shuts both sockets down, which completes them at once.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"
#include "proxy_impl.h"

/*
 * Sizes: what an idle connection does not pay for, but the process does
 * (docs/performance.md, idle KiB).  A full SQ is submitted on the spot
 * and a full CQ overflows into the kernel's list, so neither bounds the
 * connections; the ring of buffers only bounds receives completed in one
 * batch (the rest complete with ENOBUFS and are retried).
 */
#define RING_SQ		256
#define RING_CQ		2048
#define NBUF		64		/* provided buffers per worker */
#define BUFSZ		(16 * 1024)	/* one TLS record and its header */
#define BGID		0
#define OUT_HIGH	SCRATCH		/* stop reading the other side */
#define EXIT_MS		2000		/* at exit, for closes to complete */

/* What a completion is about, in the low bits of its user_data (the
 * rest is the connection or worker: both aligned to 8 at least). */
enum op { OP_CRECV = 1, OP_BRECV, OP_CSEND, OP_BSEND, OP_POLL };
#define OP_MASK		7

struct uring {
	struct io_uring		 ring;
	struct io_uring_buf_ring *br;
	char			*bufs;		/* NBUF * BUFSZ */
	size_t			 brlen;
	int			 nret;		/* put back, not yet advanced */
	int			 fresh;		/* put back since the last retry */
	int			 polling;	/* a poll of the epoll set queued */
	int			 stopping;	/* at exit: no new poll */
	int			 epoll_ready;
	struct pconn		*dirty;		/* something to send */
	struct pconn		*starved;	/* a receive to retry */
	struct pconn		*closing;	/* closed, ops still out */
};

static BIO_METHOD	*ubio_method;

static void	conn_dead(struct pconn *c);

/* ---- submissions ---- */

static struct io_uring_sqe *
sqe_get(struct uring *u)
{
	struct io_uring_sqe *sqe;

	/* A full queue goes to the kernel now; the ops stay in order. */
	while ((sqe = io_uring_get_sqe(&u->ring)) == NULL)
		io_uring_submit(&u->ring);
	return sqe;
}

static void
sqe_data(struct io_uring_sqe *sqe, void *p, enum op op)
{
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)p | op);
}

static void
buf_put(struct uring *u, int bid)
{
	io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * BUFSZ, BUFSZ,
	    (unsigned short)bid, io_uring_buf_ring_mask(NBUF), u->nret++);
}

/* Hand the buffers put back to the kernel, before the next submit. */
static void
buf_commit(struct uring *u)
{
	if (u->nret == 0)
		return;
	io_uring_buf_ring_advance(u->br, u->nret);
	u->fresh += u->nret;
	u->nret = 0;
}

/* Queue a receive on one side, unless one is queued or c is closed. */
static void
recv_arm(struct pconn *c, int backend)
{
	struct uring		*u = c->w->u;
	struct io_uring_sqe	*sqe;
	unsigned		 flag = backend ? C_BRECV : C_CRECV;

	if (c->flags & (flag | C_CLOSED))
		return;
	sqe = sqe_get(u);
	io_uring_prep_recv(sqe, backend ? c->bfd : c->cfd, NULL, BUFSZ, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	sqe_data(sqe, c, backend ? OP_BRECV : OP_CRECV);
	c->flags |= flag;
	c->nops++;
}

static size_t
obuf_pending(const struct obuf *o)
{
	return o->qlen + (o->f != NULL ? o->flen - o->foff : 0);
}

static int
obuf_append(struct obuf *o, const void *p, size_t len)
{
	size_t	 cap;
	char	*q;

	if (o->qcap - o->qlen < len) {
		for (cap = o->qcap ? o->qcap : 1024; cap < o->qlen + len;
		    cap *= 2)
			;
		if ((q = realloc(o->q, cap)) == NULL)
			return -1;
		o->q = q;
		o->qcap = cap;
	}
	memcpy(o->q + o->qlen, p, len);
	o->qlen += len;
	return 0;
}

static void
dirty_mark(struct pconn *c)
{
	struct uring *u = c->w->u;

	if (c->flags & C_DIRTY)
		return;
	c->flags |= C_DIRTY;
	c->dnext = u->dirty;
	u->dirty = c;
}

/* Send f, or make q the new f and send it; one send per side at a time. */
static void
send_submit(struct pconn *c, int backend)
{
	struct obuf		*o = &c->out[backend];
	struct io_uring_sqe	*sqe;

	if (o->inflight || (c->flags & C_CLOSED))
		return;
	if (o->f == NULL) {
		if (o->qlen == 0)
			return;
		o->f = o->q;
		o->flen = o->qlen;
		o->foff = 0;
		o->q = NULL;
		o->qlen = o->qcap = 0;
	}
	sqe = sqe_get(c->w->u);
	io_uring_prep_send(sqe, backend ? c->bfd : c->cfd, o->f + o->foff,
	    o->flen - o->foff, MSG_NOSIGNAL);
	sqe_data(sqe, c, backend ? OP_BSEND : OP_CSEND);
	o->inflight = 1;
	c->nops++;
}

/* ---- the client's bytes, for OpenSSL ---- */

static void
rin_release(struct pconn *c)
{
	if (c->rbid > 0)
		buf_put(c->w->u, c->rbid - 1);
	c->rbid = 0;
	free(c->rheap);
	c->rheap = NULL;
	c->rin = NULL;
	c->rin_len = 0;
}

/*
 * The backend's queue is full and OpenSSL has not read all of rin: copy
 * it out, so that the ring's buffer serves others meanwhile (a backend
 * that does not read must not starve the worker's other connections).
 * On failure rin stays where it is, which is merely slower.
 */
static void
rin_detach(struct pconn *c)
{
	char *h;

	if (c->rbid == 0 || (h = malloc(c->rin_len)) == NULL)
		return;
	memcpy(h, c->rin, c->rin_len);
	buf_put(c->w->u, c->rbid - 1);
	c->rbid = 0;
	c->rheap = h;
	c->rin = h;
}

static int
ubio_read(BIO *b, char *buf, int len)
{
	struct pconn	*c = BIO_get_data(b);
	size_t		 n;

	BIO_clear_retry_flags(b);
	if (c->rin_len == 0) {
		if (c->flags & C_RIN_EOF)
			return 0;
		BIO_set_retry_read(b);
		return -1;
	}
	n = c->rin_len < (size_t)len ? c->rin_len : (size_t)len;
	memcpy(buf, c->rin, n);
	c->rin += n;
	c->rin_len -= n;
	if (c->rin_len == 0)
		rin_release(c);
	return (int)n;
}

/* Records for the client are queued, never refused: the queue's size is
 * bounded by not reading the backend while it is full. */
static int
ubio_write(BIO *b, const char *buf, int len)
{
	struct pconn *c = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (obuf_append(&c->out[0], buf, (size_t)len) == -1)
		return -1;
	dirty_mark(c);
	return len;
}

static long
ubio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int
ubio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

/* ---- connections ---- */

BIO_METHOD *
uring_bio_method(void)
{
	return ubio_method;
}

void
uring_conn_start(struct pconn *c)
{
	recv_arm(c, 0);
	/* A TLS connection reads its backend once the handshake is done. */
	if (c->ssl == NULL)
		recv_arm(c, 1);
}

/* Both directions finished and delivered. */
static int
both_done(struct pconn *c)
{
	if ((c->flags & C_CLIENT_EOF) && (c->flags & C_BACKEND_EOF) &&
	    c->out[0].qlen == 0 && c->out[0].f == NULL &&
	    c->out[1].qlen == 0 && c->out[1].f == NULL) {
		conn_close(c, 1);
		return -1;
	}
	return 0;
}

/* The client finished sending: once its bytes reached the backend, pass
 * the half-close on. */
static int
client_eof(struct pconn *c)
{
	c->flags |= C_CLIENT_EOF;
	if (obuf_pending(&c->out[1]) == 0) {
		shutdown(c->bfd, SHUT_WR);
		return both_done(c);
	}
	return 0;
}

/*
 * Run OpenSSL on what the client sent: the handshake, then its records
 * into the backend's queue until the queue is full.  Asks for more bytes
 * when OpenSSL wants them.  -1: c was closed.
 */
static int
client_pump(struct pconn *c)
{
	struct obuf	*o = &c->out[1];
	char		*s = c->w->scratch;
	int		 n;

	if (c->flags & C_HANDSHAKE) {
		if ((n = SSL_do_handshake(c->ssl)) != 1) {
			if (SSL_get_error(c->ssl, n) == SSL_ERROR_WANT_READ) {
				recv_arm(c, 0);
				return 0;
			}
			conn_handshake_failed(c);
			conn_close(c, 0);
			return -1;
		}
		c->flags &= ~C_HANDSHAKE;
		STAT_ADD(c->ep->st->hs[TLS_HS_OK], 1);
		recv_arm(c, 1);
	}
	c->flags &= ~C_PAUSED_C;
	while (!(c->flags & C_CLIENT_EOF) && obuf_pending(o) < OUT_HIGH) {
		n = SSL_read(c->ssl, s, SCRATCH);
		if (n > 0) {
			STAT_ADD(c->ep->st->in, (uint64_t)n);
			if (obuf_append(o, s, (size_t)n) == -1) {
				conn_close(c, 0);
				return -1;
			}
			dirty_mark(c);
			continue;
		}
		switch (SSL_get_error(c->ssl, n)) {
		case SSL_ERROR_WANT_READ:
			recv_arm(c, 0);
			return 0;
		case SSL_ERROR_ZERO_RETURN:
			rin_release(c);	/* what follows close_notify */
			return client_eof(c);
		default:
			conn_close(c, 0);
			return -1;
		}
	}
	/* The backend's queue is full: send_done resumes. */
	c->flags |= C_PAUSED_C;
	rin_detach(c);
	return 0;
}

static void
client_recv(struct pconn *c, int res, int bid)
{
	struct uring	*u = c->w->u;
	const char	*buf = bid >= 0 ? u->bufs + (size_t)bid * BUFSZ : NULL;

	if (res == -ENOBUFS) {
		if (!(c->flags & (C_STARVE_C | C_STARVE_B))) {
			c->snext = u->starved;
			u->starved = c;
		}
		c->flags |= C_STARVE_C;
		return;
	}
	if (res < 0) {
		/* (As the epoll path, which sees it through OpenSSL.) */
		if (c->flags & C_HANDSHAKE)
			conn_handshake_failed(c);
		conn_close(c, 0);
		return;
	}
	if (c->ssl == NULL) {
		if (res == 0) {
			client_eof(c);
			return;
		}
		STAT_ADD(c->ep->st->in, (uint64_t)res);
		if (obuf_append(&c->out[1], buf, (size_t)res) == -1) {
			buf_put(u, bid);
			conn_close(c, 0);
			return;
		}
		buf_put(u, bid);
		dirty_mark(c);
		if (obuf_pending(&c->out[1]) < OUT_HIGH)
			recv_arm(c, 0);
		else
			c->flags |= C_PAUSED_C;
		return;
	}
	if (res == 0)
		c->flags |= C_RIN_EOF;
	else {
		c->rin = buf;
		c->rin_len = (size_t)res;
		c->rbid = bid + 1;
	}
	client_pump(c);
}

static void
backend_recv(struct pconn *c, int res, int bid)
{
	struct uring	*u = c->w->u;
	const char	*buf = bid >= 0 ? u->bufs + (size_t)bid * BUFSZ : NULL;
	int		 ok, off, n = 0;

	if (res == -ENOBUFS) {
		if (!(c->flags & (C_STARVE_C | C_STARVE_B))) {
			c->snext = u->starved;
			u->starved = c;
		}
		c->flags |= C_STARVE_B;
		return;
	}
	if (res <= 0) {
		/* The shard closed (or died): what it said is delivered,
		 * then the client is told the connection is over. */
		c->flags |= C_BACKEND_EOF;
		if (obuf_pending(&c->out[0]) == 0)
			conn_close(c, 1);
		return;
	}
	if (c->ssl != NULL) {
		/* Partial writes are on (the epoll path needs them): a
		 * client that negotiated a smaller max_fragment_length takes
		 * a record at a time.  ubio_write never refuses, so this
		 * ends. */
		for (off = 0, ok = 1; ok && off < res; off += n)
			ok = (n = SSL_write(c->ssl, buf + off, res - off)) > 0;
		if (ok)
			STAT_ADD(c->ep->st->out, (uint64_t)res);
	} else
		ok = obuf_append(&c->out[0], buf, (size_t)res) == 0;
	buf_put(u, bid);
	if (!ok) {
		conn_close(c, 0);
		return;
	}
	dirty_mark(c);
	if (obuf_pending(&c->out[0]) < OUT_HIGH)
		recv_arm(c, 1);
}

/* A send completed: send the rest, then let the other side read again. */
static void
send_done(struct pconn *c, int backend, int res)
{
	struct obuf *o = &c->out[backend];

	o->inflight = 0;
	if (res < 0) {
		conn_close(c, backend);
		return;
	}
	/* Plaintext is counted as it leaves, as on the epoll path. */
	if (!backend && c->ssl == NULL)
		STAT_ADD(c->ep->st->out, (uint64_t)res);
	o->foff += (size_t)res;
	if (o->foff < o->flen) {
		send_submit(c, backend);
		return;
	}
	free(o->f);
	o->f = NULL;
	o->flen = o->foff = 0;
	if (o->qlen > 0)
		dirty_mark(c);
	if (!backend) {
		if (c->flags & C_BACKEND_EOF) {
			if (o->qlen == 0)
				conn_close(c, 1);
			return;
		}
		/* (The handshake's own records come here too: the backend
		 * is read once it is done.) */
		if (!(c->flags & C_HANDSHAKE) && obuf_pending(o) < OUT_HIGH)
			recv_arm(c, 1);
		return;
	}
	if (c->flags & C_CLIENT_EOF) {
		if (o->qlen == 0) {
			shutdown(c->bfd, SHUT_WR);
			both_done(c);
		}
		return;
	}
	if ((c->flags & C_PAUSED_C) && obuf_pending(o) < OUT_HIGH) {
		c->flags &= ~C_PAUSED_C;
		/* OpenSSL may hold records read ahead: the pump drains them
		 * and asks for more. */
		if (c->ssl != NULL)
			client_pump(c);
		else
			recv_arm(c, 0);
	}
}

static void
list_drop(struct pconn **head, struct pconn *c, int starved)
{
	struct pconn **pp;

	for (pp = head; *pp != NULL; pp = starved ? &(*pp)->snext :
	    &(*pp)->dnext)
		if (*pp == c) {
			*pp = starved ? c->snext : c->dnext;
			return;
		}
}

void
uring_conn_close(struct pconn *c, int notify)
{
	struct uring	*u = c->w->u;
	struct obuf	*o = &c->out[0];

	if (c->flags & C_CLOSED)
		return;
	if (c->ssl != NULL) {
		/* close_notify: a clean end for the client. */
		if (notify && !(c->flags & C_HANDSHAKE) && o->f == NULL)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	/*
	 * What is queued for the client goes now, best effort, as the epoll
	 * path's socket BIO would have written it: the close_notify, or the
	 * alert that says why a handshake failed (a client shown only EOF
	 * cannot tell a refused certificate from a dead server).  Only
	 * behind what was sent: never while a send is in flight.
	 */
	if (o->f == NULL && o->qlen > 0)
		(void)!send(c->cfd, o->q, o->qlen, MSG_NOSIGNAL | MSG_DONTWAIT);
	rin_release(c);
	/* Completes whatever the kernel still holds of c. */
	shutdown(c->cfd, SHUT_RDWR);
	if (c->bfd != -1)
		shutdown(c->bfd, SHUT_RDWR);
	endpoint_unref(c->ep);
	c->ep = NULL;
	conn_unlink(c);
	if (c->flags & C_DIRTY)
		list_drop(&u->dirty, c, 0);
	if (c->flags & (C_STARVE_C | C_STARVE_B))
		list_drop(&u->starved, c, 1);
	c->flags |= C_CLOSED;
	c->flags &= ~(C_DIRTY | C_STARVE_C | C_STARVE_B);
	ERR_clear_error();
	if (c->nops == 0) {
		conn_dead(c);
		return;
	}
	c->next = u->closing;
	if (u->closing != NULL)
		u->closing->prev = c;
	u->closing = c;
}

/* Nothing of c is left in the kernel: let the worker free it. */
static void
conn_dead(struct pconn *c)
{
	struct uring	*u = c->w->u;
	struct worker	*w = c->w;
	int		 i;

	if (c->flags & C_DEAD)
		return;
	if (c->prev != NULL || u->closing == c) {
		if (c->prev != NULL)
			c->prev->next = c->next;
		else
			u->closing = c->next;
		if (c->next != NULL)
			c->next->prev = c->prev;
	}
	close(c->cfd);
	if (c->bfd != -1)
		close(c->bfd);
	for (i = 0; i < 2; i++) {
		free(c->out[i].q);
		free(c->out[i].f);
	}
	c->flags |= C_DEAD;
	c->next = w->dead;
	w->dead = c;
}

/* ---- the loop ---- */

static void
cqe_handle(struct worker *w, struct io_uring_cqe *cqe)
{
	struct uring	*u = w->u;
	uint64_t	 ud = io_uring_cqe_get_data64(cqe);
	struct pconn	*c = (struct pconn *)(uintptr_t)(ud & ~(uint64_t)OP_MASK);
	int		 op = (int)(ud & OP_MASK), bid = -1;

	if (op == OP_POLL) {
		u->polling = 0;
		u->epoll_ready = 1;
		return;
	}
	if (op == 0)
		return;
	if (cqe->flags & IORING_CQE_F_BUFFER)
		bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
	c->nops--;
	if (op == OP_CRECV)
		c->flags &= ~C_CRECV;
	else if (op == OP_BRECV)
		c->flags &= ~C_BRECV;
	if (c->flags & C_CLOSED) {
		if (bid >= 0)
			buf_put(u, bid);
		if (c->nops == 0)
			conn_dead(c);
		return;
	}
	switch (op) {
	case OP_CRECV:
		client_recv(c, cqe->res, bid);
		break;
	case OP_BRECV:
		backend_recv(c, cqe->res, bid);
		break;
	case OP_CSEND:
		send_done(c, 0, cqe->res);
		break;
	case OP_BSEND:
		send_done(c, 1, cqe->res);
		break;
	}
	if ((c->flags & C_CLOSED) && c->nops == 0)
		conn_dead(c);
}

/* Everything queued during the batch goes out with the next submit. */
static void
uring_prepare(struct worker *w)
{
	struct uring		*u = w->u;
	struct io_uring_sqe	*sqe;
	struct pconn		*c, *list;

	while ((c = u->dirty) != NULL) {
		u->dirty = c->dnext;
		c->flags &= ~C_DIRTY;
		send_submit(c, 0);
		send_submit(c, 1);
	}
	buf_commit(u);
	/* Receives that found the ring empty try again once buffers came
	 * back, not before (that would only spin). */
	if (u->fresh > 0 && u->starved != NULL) {
		list = u->starved;
		u->starved = NULL;
		while ((c = list) != NULL) {
			list = c->snext;
			if (c->flags & C_STARVE_C)
				recv_arm(c, 0);
			if (c->flags & C_STARVE_B)
				recv_arm(c, 1);
			c->flags &= ~(C_STARVE_C | C_STARVE_B);
		}
	}
	u->fresh = 0;
	if (!u->polling && !u->stopping) {
		sqe = sqe_get(u);
		io_uring_prep_poll_add(sqe, w->epfd, POLLIN);
		sqe_data(sqe, w, OP_POLL);
		u->polling = 1;
	}
}

/* Wait up to ms for completions and handle them all. */
static void
uring_batch(struct worker *w, int ms)
{
	struct uring			*u = w->u;
	struct io_uring_cqe		*cqe;
	struct __kernel_timespec	 ts = { ms / 1000,
					    (ms % 1000) * 1000000L };
	unsigned			 head, n = 0;

	uring_prepare(w);
	io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
	io_uring_for_each_cqe(&u->ring, head, cqe) {
		cqe_handle(w, cqe);
		n++;
	}
	io_uring_cq_advance(&u->ring, n);
}

int
uring_main(struct worker *w)
{
	struct uring		*u = w->u;
	struct io_uring_sqe	*sqe;
	int			 woken, waited;

	/* The ring was made disabled by the control thread: enabling it
	 * here makes this thread its only submitter.  (Debian's liburing
	 * 2.3 declares io_uring_enable_rings but does not export it.) */
	if (syscall(__NR_io_uring_register, u->ring.ring_fd,
	    IORING_REGISTER_ENABLE_RINGS, NULL, 0) == -1) {
		log_warn("data worker %d: cannot enable its ring (%s); "
		    "this worker uses epoll", w->idx, strerror(errno));
		uring_free(w);
		return -1;
	}
	io_uring_register_ring_fd(&u->ring);
	for (;;) {
		uring_batch(w, 1000);
		woken = 0;
		if (u->epoll_ready) {
			u->epoll_ready = 0;
			woken = worker_epoll(w, 0);
		}
		if (worker_batch_end(w, woken))
			break;
	}
	while (w->conns != NULL)
		conn_close(w->conns, 1);
	/* Shutting the sockets down completes their operations; cancel
	 * whatever would not (and the poll of the epoll set). */
	u->stopping = 1;
	sqe = sqe_get(u);
	io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
	io_uring_sqe_set_data64(sqe, 0);
	for (waited = 0; u->closing != NULL && waited < EXIT_MS;
	    waited += 100)
		uring_batch(w, 100);
	/* Never seen: memory the kernel may still write is not freed. */
	if (u->closing != NULL)
		log_warn("data worker %d: connections still in the kernel at "
		    "exit; left allocated", w->idx);
	worker_reap(w);
	/* Registered by this thread: only it can take it back. */
	io_uring_unregister_ring_fd(&u->ring);
	return 0;
}

/* ---- setup ---- */

int
uring_new(struct worker *w, char *errbuf, size_t len)
{
	struct uring		*u;
	struct io_uring_params	 prm;
	struct io_uring_buf_reg	 reg;
	int			 r, i;

	if (ubio_method == NULL) {
		ubio_method = BIO_meth_new(BIO_get_new_index() |
		    BIO_TYPE_SOURCE_SINK, "moat io_uring");
		BIO_meth_set_read(ubio_method, ubio_read);
		BIO_meth_set_write(ubio_method, ubio_write);
		BIO_meth_set_ctrl(ubio_method, ubio_ctrl);
		BIO_meth_set_create(ubio_method, ubio_create);
	}
	if ((u = calloc(1, sizeof(*u))) == NULL) {
		snprintf(errbuf, len, "out of memory");
		return -1;
	}
	/* One thread submits, and completions run when it waits for them:
	 * the kernel then needs no locks and no interrupts for them. */
	memset(&prm, 0, sizeof(prm));
	prm.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
	    IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
	prm.cq_entries = RING_CQ;
	if ((r = io_uring_queue_init_params(RING_SQ, &u->ring, &prm)) < 0) {
		snprintf(errbuf, len, "io_uring_setup: %s", strerror(-r));
		free(u);
		return -1;
	}
	if (!(prm.features & IORING_FEAT_EXT_ARG)) {
		snprintf(errbuf, len, "the kernel is too old (no "
		    "IORING_FEAT_EXT_ARG)");
		io_uring_queue_exit(&u->ring);
		free(u);
		return -1;
	}
	u->brlen = NBUF * sizeof(struct io_uring_buf);
	u->br = mmap(NULL, u->brlen, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* Touched only where bytes land: small messages use one page of
	 * each buffer. */
	u->bufs = mmap(NULL, (size_t)NBUF * BUFSZ, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (u->br == MAP_FAILED || u->bufs == MAP_FAILED) {
		snprintf(errbuf, len, "out of memory");
		goto fail;
	}
	io_uring_buf_ring_init(u->br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)u->br;
	reg.ring_entries = NBUF;
	reg.bgid = BGID;
	if ((r = io_uring_register_buf_ring(&u->ring, &reg, 0)) < 0) {
		snprintf(errbuf, len, "provided buffer rings: %s",
		    strerror(-r));
		goto fail;
	}
	for (i = 0; i < NBUF; i++)
		buf_put(u, i);
	buf_commit(u);
	u->fresh = 0;
	w->u = u;
	return 0;
fail:
	if (u->br != MAP_FAILED && u->br != NULL)
		munmap(u->br, u->brlen);
	if (u->bufs != MAP_FAILED && u->bufs != NULL)
		munmap(u->bufs, (size_t)NBUF * BUFSZ);
	io_uring_queue_exit(&u->ring);
	free(u);
	return -1;
}

void
uring_free(struct worker *w)
{
	struct uring *u = w->u;

	if (u == NULL)
		return;
	io_uring_queue_exit(&u->ring);
	munmap(u->br, u->brlen);
	munmap(u->bufs, (size_t)NBUF * BUFSZ);
	free(u);
	w->u = NULL;
}
