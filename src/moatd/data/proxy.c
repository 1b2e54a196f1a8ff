/*
 * proxy.c — TLS termination workers: the listeners, the control thread's
 * commands, accepting, and the epoll data path (--data-path epoll); the
 * io_uring path, the default, is proxy_uring.c.
 *
 * Each worker thread owns an epoll set and the connections it accepted;
 * nothing about a connection is shared with another thread.  Listening
 * sockets are shared (EPOLLEXCLUSIVE wakes one worker per connection on
 * the epoll path; on the io_uring path the ring polls the epoll set,
 * which cannot be exclusive, so every worker wakes).
 *
 * Where the time goes (docs/performance.md measures it): mostly the
 * kernel.  So the epoll loop avoids syscalls: OpenSSL reads through a BIO of
 * ours that remembers a short read (the socket is then empty, and asking
 * again would only return EAGAIN), read-ahead pulls a batch of records per
 * read, epoll interest changes only when a side blocks, and data goes
 * through a per-thread scratch buffer; a connection owns a buffer only
 * while the other side cannot take its data, which bounds memory per
 * connection to one scratch buffer per direction (back-pressure).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"
#include "net.h"
#include "proxy_impl.h"

/*
 * Commands from the control thread to the workers.
 *
 * One pjob per call, with one link per worker: each worker has its own
 * FIFO of links, guarded by its mutex, and an eventfd as the doorbell.
 * A mutex-protected list rather than a pipe of fixed-size records: a
 * pipe has a fixed capacity, and a full one would block the control
 * thread (or need a second, overflow path), while appending to a list
 * never waits longer than the few instructions under the lock; one
 * allocation also serves every worker.  The control thread appends to
 * every queue in the same order, so each worker applies the commands in
 * the order they were made.
 */
enum cmd_kind { CMD_ADD, CMD_DEL, CMD_CLOSE_BELOW, CMD_CLOSE_PORT,
	CMD_SESSIONS };

enum job_mode {
	JOB_FORGET,	/* nobody waits: the last worker frees the job */
	JOB_POST,	/* the last worker posts it to the control base */
};

struct pjob;

struct pjob_link {
	struct pjob_link	*next;
	struct pjob		*job;
};

struct pjob {
	struct proxy		*p;
	enum cmd_kind		 kind;
	enum job_mode		 mode;
	int			 arg;		/* port or minimum version */
	struct listener		*l;		/* ADD: borrowed; DEL: owned */
	_Atomic int		 pending;	/* workers yet to run it */
	_Atomic int		 closed;	/* connections closed, summed */
	struct pjob		*done_next;	/* p->done list; under p->mu */
	/* Control thread only. */
	proxy_done_cb		 done_cb;
	proxy_sessions_cb	 sessions_cb;
	void			*cb_arg;
	struct pjob		*live_prev, *live_next;
	/*
	 * CMD_SESSIONS: the ports served when it was queued, sorted; one
	 * table of counts per worker ([nports + 1][PROXY_PROTO_MAX], the
	 * last row for a port not in the list), each written by its own
	 * worker only and read by the control thread once all are done.
	 */
	int			 nports;
	int			*ports;
	int			*counts;
	struct proxy_port_sessions *result;	/* nports, summed at the end */
	struct pjob_link	 links[];	/* one per worker */
};


struct proxy {
	struct worker	*w;
	int		 nw;		/* workers allocated */
	struct listener	*ls[MAX_LISTENERS];
	int		 nls;
	struct event	*done_ev;	/* activated by workers: p->done */
	pthread_mutex_t	 mu;		/* guards the done list */
	struct pjob	*done_head, **done_tail;
	struct pjob	*live;		/* JOB_POST jobs not yet finished */
	enum proxy_data_path path;
};

static BIO_METHOD	*pbio_method;

void
endpoint_unref(struct endpoint *ep)
{
	if (ep == NULL || atomic_fetch_sub(&ep->refs, 1) != 1)
		return;
	tlsctx_unref(ep->ctx);
	free(ep);
}

/* ---- a socket BIO that knows when the socket ran dry ---- */

static int
pbio_read(BIO *b, char *buf, int len)
{
	struct pconn	*c = BIO_get_data(b);
	ssize_t		 n;

	BIO_clear_retry_flags(b);
	if (c->flags & C_DRY) {
		BIO_set_retry_read(b);
		return -1;
	}
	n = read(c->cfd, buf, (size_t)len);
	if (n > 0) {
		/* A short read drained the socket: the next read would
		 * only say EAGAIN.  Not so after EOF or an error, which
		 * level-triggered epoll reports again. */
		if (n < len)
			c->flags |= C_DRY;
		return (int)n;
	}
	if (n == 0)
		return 0;
	if (errno == EAGAIN || errno == EINTR) {
		c->flags |= C_DRY;
		BIO_set_retry_read(b);
	}
	return -1;
}

static int
pbio_write(BIO *b, const char *buf, int len)
{
	struct pconn	*c = BIO_get_data(b);
	ssize_t		 n;

	BIO_clear_retry_flags(b);
	n = send(c->cfd, buf, (size_t)len, MSG_NOSIGNAL);
	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EINTR)
		BIO_set_retry_write(b);
	return -1;
}

static long
pbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int
pbio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

/* ---- connections ---- */

static void
conn_interest(struct pconn *c, int backend, uint32_t ev)
{
	struct epoll_event	 e;
	uint32_t		*cur = backend ? &c->bev : &c->cev;

	if (*cur == ev)
		return;
	memset(&e, 0, sizeof(e));
	e.events = ev;
	e.data.ptr = backend ? &c->btag : &c->ctag;
	epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, backend ? c->bfd : c->cfd, &e);
	*cur = ev;
}

/* Take c off its worker's list of live connections. */
void
conn_unlink(struct pconn *c)
{
	struct worker *w = c->w;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

void
conn_close(struct pconn *c, int notify)
{
	struct worker *w = c->w;

	if (w->u != NULL) {
		uring_conn_close(c, notify);
		return;
	}
	if (c->ssl != NULL) {
		/* close_notify, best effort: a clean end for the client. */
		if (notify && !(c->flags & C_HANDSHAKE))
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	c->ssl = NULL;
	/* close() also removes both fds from the epoll set. */
	close(c->cfd);
	if (c->bfd != -1)
		close(c->bfd);
	free(c->c2b);
	free(c->b2c);
	c->c2b = c->b2c = NULL;
	endpoint_unref(c->ep);
	c->ep = NULL;
	conn_unlink(c);
	/* Another event of this batch may still point at c. */
	c->flags |= C_CLOSED;
	c->next = w->dead;
	w->dead = c;
	ERR_clear_error();
}

/* Count and log a handshake that failed; the caller closes c. */
void
conn_handshake_failed(struct pconn *c)
{
	unsigned long	 ec = ERR_peek_last_error();
	char		 why[200];

	STAT_ADD(c->ep->st->hs[tlsctx_handshake_why(ec)], 1);
	if (ec != 0) {
		ERR_error_string_n(ec, why, sizeof(why));
		log_info("%s: TLS handshake failed: %s", c->ep->label, why);
	}
}

void
worker_reap(struct worker *w)
{
	struct pconn *c;

	while ((c = w->dead) != NULL) {
		w->dead = c->next;
		free(c);
	}
}

/* Read from the client: >0 bytes, 0 EOF, -1 would block, -2 error. */
static int
cli_read(struct pconn *c, char *buf, size_t len)
{
	int	 n, err;

	if (c->ssl == NULL) {
		ssize_t r;
		if (c->flags & C_DRY)
			return -1;
		r = read(c->cfd, buf, len);
		if (r > 0) {
			STAT_ADD(c->ep->st->in, (uint64_t)r);
			if ((size_t)r < len)
				c->flags |= C_DRY;
			return (int)r;
		}
		if (r == 0)
			return 0;
		if (errno == EAGAIN || errno == EINTR) {
			c->flags |= C_DRY;
			return -1;
		}
		return -2;
	}
	n = SSL_read(c->ssl, buf, (int)len);
	if (n > 0) {
		STAT_ADD(c->ep->st->in, (uint64_t)n);
		return n;
	}
	switch ((err = SSL_get_error(c->ssl, n))) {
	case SSL_ERROR_WANT_READ:
		return -1;
	case SSL_ERROR_WANT_WRITE:
		c->flags |= C_READ_WANTS_W;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	default:
		return -2;
	}
}

/* Write to the client: bytes written (maybe fewer), -1 blocked, -2 error. */
static int
cli_write(struct pconn *c, const char *buf, size_t len)
{
	int n;

	if (c->ssl == NULL) {
		ssize_t r = send(c->cfd, buf, len, MSG_NOSIGNAL);
		if (r >= 0) {
			STAT_ADD(c->ep->st->out, (uint64_t)r);
			return (int)r;
		}
		return errno == EAGAIN || errno == EINTR ? -1 : -2;
	}
	n = SSL_write(c->ssl, buf, (int)len);
	if (n > 0) {
		STAT_ADD(c->ep->st->out, (uint64_t)n);
		return n;
	}
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_WRITE:
	case SSL_ERROR_WANT_READ:
		return -1;
	default:
		return -2;
	}
}

static int	conn_client_readable(struct pconn *c);
static int	conn_backend_readable(struct pconn *c);

/* Send to the backend; what does not fit waits in c2b and the client is
 * not read until it drains.  -1: the connection was closed. */
static int
conn_to_backend(struct pconn *c, const char *buf, size_t len)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (off < len) {
		n = send(c->bfd, buf + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			break;
		conn_close(c, 1);
		return -1;
	}
	if (off == len)
		return 0;
	if ((c->c2b = malloc(len - off)) == NULL) {
		conn_close(c, 1);
		return -1;
	}
	memcpy(c->c2b, buf + off, len - off);
	c->c2b_len = len - off;
	c->c2b_off = 0;
	conn_interest(c, 0, c->cev & ~EPOLLIN);
	conn_interest(c, 1, c->bev | EPOLLOUT);
	return 0;
}

/* Send to the client; see conn_to_backend.  OpenSSL wants a blocked
 * SSL_write retried with the same bytes, which b2c keeps. */
static int
conn_to_client(struct pconn *c, const char *buf, size_t len)
{
	size_t	 off = 0;
	int	 n;

	while (off < len) {
		n = cli_write(c, buf + off, len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n == -1)
			break;
		conn_close(c, 0);
		return -1;
	}
	if (off == len)
		return 0;
	if ((c->b2c = malloc(len - off)) == NULL) {
		conn_close(c, 0);
		return -1;
	}
	memcpy(c->b2c, buf + off, len - off);
	c->b2c_len = len - off;
	conn_interest(c, 1, c->bev & ~EPOLLIN);
	conn_interest(c, 0, c->cev | EPOLLOUT);
	return 0;
}

/* Both directions are finished: nothing more can flow. */
static int
conn_maybe_done(struct pconn *c)
{
	if ((c->flags & C_CLIENT_EOF) && (c->flags & C_BACKEND_EOF) &&
	    c->c2b == NULL && c->b2c == NULL) {
		conn_close(c, 1);
		return -1;
	}
	return 0;
}

static int
conn_client_readable(struct pconn *c)
{
	char	*s = c->w->scratch;
	size_t	 used;
	int	 n = -1;

	for (;;) {
		used = 0;
		while (used < SCRATCH) {
			n = cli_read(c, s + used, SCRATCH - used);
			if (n <= 0)
				break;
			used += (size_t)n;
		}
		if (used > 0 && conn_to_backend(c, s, used) == -1)
			return -1;
		if (n == -2) {
			conn_close(c, 0);
			return -1;
		}
		if (n == 0) {
			/* Client finished sending: pass the half-close on. */
			c->flags |= C_CLIENT_EOF;
			conn_interest(c, 0, c->cev & ~EPOLLIN);
			if (c->c2b == NULL)
				shutdown(c->bfd, SHUT_WR);
			return conn_maybe_done(c);
		}
		if (c->c2b != NULL || n == -1)
			break;
		/* scratch was full: more may be waiting inside OpenSSL */
	}
	if (c->flags & C_READ_WANTS_W)
		conn_interest(c, 0, c->cev | EPOLLOUT);
	return 0;
}

static int
conn_backend_readable(struct pconn *c)
{
	char	*s = c->w->scratch;
	ssize_t	 n;

	for (;;) {
		n = read(c->bfd, s, SCRATCH);
		if (n > 0) {
			if (conn_to_client(c, s, (size_t)n) == -1)
				return -1;
			if (c->b2c != NULL || n < SCRATCH)
				return 0;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		/* The shard closed (or died): what it said is delivered,
		 * then the client is told the connection is over. */
		c->flags |= C_BACKEND_EOF;
		conn_interest(c, 1, c->bev & ~EPOLLIN);
		if (c->b2c == NULL) {
			conn_close(c, 1);
			return -1;
		}
		return 0;
	}
}

static int
conn_client_writable(struct pconn *c)
{
	int n;

	if (c->flags & C_READ_WANTS_W) {
		c->flags &= ~C_READ_WANTS_W;
		conn_interest(c, 0, c->cev & ~EPOLLOUT);
		if (conn_client_readable(c) == -1)
			return -1;
	}
	while (c->b2c != NULL) {
		n = cli_write(c, c->b2c, c->b2c_len);
		if (n == -1)
			return 0;
		if (n < 0) {
			conn_close(c, 0);
			return -1;
		}
		if ((size_t)n < c->b2c_len) {
			memmove(c->b2c, c->b2c + n, c->b2c_len - (size_t)n);
			c->b2c_len -= (size_t)n;
			continue;
		}
		free(c->b2c);
		c->b2c = NULL;
		c->b2c_len = 0;
		conn_interest(c, 0, c->cev & ~EPOLLOUT);
		if (c->flags & C_BACKEND_EOF) {
			conn_close(c, 1);
			return -1;
		}
		conn_interest(c, 1, c->bev | EPOLLIN);
		return conn_backend_readable(c);
	}
	if (!(c->flags & (C_READ_WANTS_W)) && c->b2c == NULL)
		conn_interest(c, 0, c->cev & ~EPOLLOUT);
	return 0;
}

static int
conn_backend_writable(struct pconn *c)
{
	ssize_t n;

	while (c->c2b != NULL) {
		n = send(c->bfd, c->c2b + c->c2b_off, c->c2b_len - c->c2b_off,
		    MSG_NOSIGNAL);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0) {
			conn_close(c, 1);
			return -1;
		}
		c->c2b_off += (size_t)n;
		if (c->c2b_off < c->c2b_len)
			continue;
		free(c->c2b);
		c->c2b = NULL;
		conn_interest(c, 1, c->bev & ~EPOLLOUT);
		if (c->flags & C_CLIENT_EOF) {
			shutdown(c->bfd, SHUT_WR);
			return conn_maybe_done(c);
		}
		conn_interest(c, 0, c->cev | EPOLLIN);
		/* OpenSSL may hold records read ahead: epoll will not say. */
		c->flags &= ~C_DRY;
		return conn_client_readable(c);
	}
	conn_interest(c, 1, c->bev & ~EPOLLOUT);
	return 0;
}

static int
conn_handshake(struct pconn *c)
{
	int	 r = SSL_do_handshake(c->ssl), err;

	if (r == 1) {
		c->flags &= ~C_HANDSHAKE;
		STAT_ADD(c->ep->st->hs[TLS_HS_OK], 1);
		conn_interest(c, 0, EPOLLIN);
		return conn_client_readable(c);
	}
	err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ) {
		conn_interest(c, 0, EPOLLIN);
		return 0;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		conn_interest(c, 0, EPOLLIN | EPOLLOUT);
		return 0;
	}
	conn_handshake_failed(c);
	conn_close(c, 0);
	return -1;
}

static void
conn_event(struct pconn *c, int backend, uint32_t ev)
{
	if (c->flags & C_CLOSED)
		return;
	if (!backend) {
		if (c->flags & C_HANDSHAKE) {
			c->flags &= ~C_DRY;
			conn_handshake(c);
			return;
		}
		if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
			c->flags &= ~C_DRY;
			if (conn_client_readable(c) == -1)
				return;
		}
		if (ev & EPOLLOUT)
			conn_client_writable(c);
		return;
	}
	if (ev & EPOLLOUT) {
		if (conn_backend_writable(c) == -1)
			return;
	}
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		if (c->c2b != NULL && (ev & (EPOLLHUP | EPOLLERR)) &&
		    !(ev & EPOLLIN)) {
			conn_close(c, 1);
			return;
		}
		conn_backend_readable(c);
	}
}

/* c's TLS session, reading and writing through a BIO of method m (the
 * data path's: pbio here, proxy_uring.c's ubio). */
int
conn_init_tls(struct pconn *c, BIO_METHOD *m)
{
	BIO *b = BIO_new(m);

	c->ssl = SSL_new(tlsctx_ssl_ctx(c->ep->ctx));
	if (b == NULL || c->ssl == NULL) {
		BIO_free(b);
		SSL_free(c->ssl);
		c->ssl = NULL;
		return -1;
	}
	BIO_set_data(b, c);
	SSL_set_bio(c->ssl, b, b);
	SSL_set_accept_state(c->ssl);
	c->flags |= C_HANDSHAKE;
	return 0;
}

static int
backend_connect(const char *path)
{
	return net_unix_connect(path, 1);
}

void
worker_accept(struct worker *w, struct listener *l)
{
	struct epoll_event	 e;
	struct pconn		*c;
	struct endpoint		*ep;
	int			 fd, bfd, one = 1, i;

	for (i = 0; i < 16; i++) {
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1)
			return;
		pthread_mutex_lock(&l->mu);
		ep = l->ep;
		atomic_fetch_add(&ep->refs, 1);
		pthread_mutex_unlock(&l->mu);
		/* No shard, no connection: the client sees it at once
		 * instead of after a handshake. */
		if ((bfd = backend_connect(ep->backend)) == -1) {
			close(fd);
			endpoint_unref(ep);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			close(bfd);
			endpoint_unref(ep);
			continue;
		}
		c->cfd = fd;
		c->bfd = bfd;
		c->ep = ep;
		c->w = w;
		c->born = time(NULL);
		c->ctag.kind = TAG_CLIENT;
		c->ctag.ptr = c;
		c->btag.kind = TAG_BACKEND;
		c->btag.ptr = c;
		if (ep->ctx != NULL && conn_init_tls(c, w->u != NULL ?
		    uring_bio_method() : pbio_method) == -1) {
			close(fd);
			close(bfd);
			endpoint_unref(ep);
			free(c);
			continue;
		}
		c->next = w->conns;
		if (w->conns != NULL)
			w->conns->prev = c;
		w->conns = c;
		if (w->u != NULL) {
			uring_conn_start(c);
			continue;
		}
		memset(&e, 0, sizeof(e));
		e.events = c->cev = EPOLLIN;
		e.data.ptr = &c->ctag;
		epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &e);
		e.events = c->bev = EPOLLIN;
		e.data.ptr = &c->btag;
		epoll_ctl(w->epfd, EPOLL_CTL_ADD, bfd, &e);
	}
}

/* ---- commands: shared by both sides ---- */

static void
listener_free(struct listener *l)
{
	close(l->fd);
	endpoint_unref(l->ep);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* The job and what it owns (a deleted listener, a count's tables). */
static void
job_free(struct pjob *j)
{
	if (j->kind == CMD_DEL)
		listener_free(j->l);
	free(j->ports);
	free(j->counts);
	free(j->result);
	free(j);
}

/*
 * A worker ran j (and closed `closed` connections).  The last one to do
 * so hands the job on; the others must not touch it afterwards, as it
 * may be freed at any moment from then on.
 */
static void
job_ran(struct pjob *j, int closed)
{
	struct proxy *p = j->p;

	if (closed > 0)
		atomic_fetch_add(&j->closed, closed);
	/* seq_cst: every worker's counts and closes happen before this. */
	if (atomic_fetch_sub(&j->pending, 1) != 1)
		return;
	switch (j->mode) {
	case JOB_FORGET:
		job_free(j);
		break;
	case JOB_POST:
		pthread_mutex_lock(&p->mu);
		j->done_next = NULL;
		*p->done_tail = j;
		p->done_tail = &j->done_next;
		pthread_mutex_unlock(&p->mu);
		/* Safe from this thread: libevent locks the base
		 * (evthread_use_pthreads), and proxy_free joins every
		 * worker before it frees done_ev. */
		event_active(p->done_ev, EV_READ, 0);
		break;
	}
}

/* ---- commands, in the worker ---- */

static int
int_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return x < y ? -1 : x > y;
}

static enum proxy_proto
conn_proto(struct pconn *c)
{
	int v;

	if (c->ssl == NULL)
		return PROXY_PLAINTEXT;
	if (c->flags & C_HANDSHAKE)
		return PROXY_HANDSHAKE;
	v = SSL_version(c->ssl);
	if (v <= TLS1_VERSION)
		return PROXY_TLS1_0;
	if (v >= TLS1_3_VERSION)
		return PROXY_TLS1_3;
	return (enum proxy_proto)(PROXY_TLS1_0 + (v - TLS1_VERSION));
}

/* Count this worker's connections into its own table of j. */
static void
worker_sessions(struct worker *w, struct pjob *j)
{
	struct pconn	*c;
	int		*t, *hit;
	size_t		 row;

	t = j->counts + (size_t)w->idx * (size_t)(j->nports + 1) *
	    PROXY_PROTO_MAX;
	for (c = w->conns; c != NULL; c = c->next) {
		hit = j->nports == 0 ? NULL : bsearch(&c->ep->port, j->ports,
		    (size_t)j->nports, sizeof(int), int_cmp);
		row = hit != NULL ? (size_t)(hit - j->ports) :
		    (size_t)j->nports;
		t[row * PROXY_PROTO_MAX + conn_proto(c)]++;
	}
}

/* Run one command of the control thread; how many connections it closed. */
static int
worker_run(struct worker *w, struct pjob *j)
{
	struct epoll_event	 e;
	struct pconn		*c, *next;
	int			 n = 0;

	switch (j->kind) {
	case CMD_ADD:
		memset(&e, 0, sizeof(e));
		e.events = EPOLLIN | EPOLLEXCLUSIVE;
		e.data.ptr = &j->l->tag;
		epoll_ctl(w->epfd, EPOLL_CTL_ADD, j->l->fd, &e);
		break;
	case CMD_DEL:
		/* Before the job is done, so before anyone closes the fd
		 * (a reused fd number must never be removed here); the
		 * port's connections go with it. */
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, j->l->fd, NULL);
		/* FALLTHROUGH */
	case CMD_CLOSE_PORT:
		for (c = w->conns; c != NULL; c = next) {
			next = c->next;
			if (c->ep->port == j->arg) {
				conn_close(c, 1);
				n++;
			}
		}
		break;
	case CMD_CLOSE_BELOW:
		for (c = w->conns; c != NULL; c = next) {
			next = c->next;
			if (c->ssl != NULL && !(c->flags & C_HANDSHAKE) &&
			    SSL_version(c->ssl) < j->arg) {
				conn_close(c, 1);
				n++;
			} else if (c->ssl != NULL && (c->flags & C_HANDSHAKE)) {
				SSL_set_min_proto_version(c->ssl, j->arg);
			}
		}
		break;
	case CMD_SESSIONS:
		worker_sessions(w, j);
		break;
	}
	return n;
}

/*
 * Run what the control thread queued, in order.  Called at the end of an
 * epoll batch, never in its middle: a later event of the same batch may
 * point at a listener that a CMD_DEL here lets the last worker free.
 * Returns 1 when the worker is to exit (proxy_free).
 */
static int
worker_commands(struct worker *w)
{
	struct pjob_link	*q, *next;
	struct pjob		*j;
	int			 stop;

	pthread_mutex_lock(&w->mu);
	q = w->qhead;
	w->qhead = NULL;
	w->qtail = &w->qhead;
	/* Read with the queue: everything queued before stop runs. */
	stop = w->stop;
	pthread_mutex_unlock(&w->mu);
	for (; q != NULL; q = next) {
		/* q lives in j, which job_ran may let go. */
		next = q->next;
		j = q->job;
		job_ran(j, worker_run(w, j));
	}
	return stop;
}

static void
worker_sweep(struct worker *w)
{
	struct pconn	*c, *next;
	time_t		 now = time(NULL);

	for (c = w->conns; c != NULL; c = next) {
		next = c->next;
		if ((c->flags & C_HANDSHAKE) && now - c->born >
		    HANDSHAKE_SECS) {
			STAT_ADD(c->ep->st->hs[TLS_HS_TIMEOUT], 1);
			conn_close(c, 0);
		}
	}
}

/*
 * Wait up to timeout_ms for events of w's epoll set and handle them.
 * Returns 1 when the control thread rang (commands are queued).  On the
 * io_uring path the set holds only the listeners and the doorbell.
 */
int
worker_epoll(struct worker *w, int timeout_ms)
{
	struct epoll_event	 ev[MAX_EVENTS];
	int			 i, n, woken = 0;
	uint64_t		 v;

	n = epoll_wait(w->epfd, ev, MAX_EVENTS, timeout_ms);
	for (i = 0; i < n; i++) {
		struct tag *t = ev[i].data.ptr;
		switch (t->kind) {
		case TAG_LISTEN:
			worker_accept(w, t->ptr);
			break;
		case TAG_CLIENT:
			conn_event(t->ptr, 0, ev[i].events);
			break;
		case TAG_BACKEND:
			/* The client side of this batch may have closed
			 * the connection already. */
			conn_event(t->ptr, 1, ev[i].events);
			break;
		case TAG_WAKE:
			(void)!read(w->wakefd, &v, sizeof(v));
			woken = 1;
			break;
		}
	}
	return woken;
}

/*
 * The end of a batch, on both paths: run the control thread's commands
 * when it rang, free what was closed, time out slow handshakes once a
 * second.  Returns 1 when the worker is to exit.
 */
int
worker_batch_end(struct worker *w, int woken)
{
	time_t now;

	if (woken && worker_commands(w))
		return 1;
	worker_reap(w);
	now = time(NULL);
	if (now != w->last_sweep) {
		w->last_sweep = now;
		worker_sweep(w);
	}
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	w->last_sweep = time(NULL);
	if (w->u != NULL && uring_main(w) == 0)
		return NULL;
	while (!worker_batch_end(w, worker_epoll(w, 1000)))
		;
	while (w->conns != NULL)
		conn_close(w->conns, 1);
	worker_reap(w);
	return NULL;
}

/* ---- the control thread's side ---- */

static struct pjob *
job_new(struct proxy *p, enum cmd_kind kind, int arg, struct listener *l)
{
	struct pjob	*j;
	int		 i;

	if ((j = calloc(1, sizeof(*j) + (size_t)p->nw *
	    sizeof(j->links[0]))) == NULL)
		return NULL;
	j->p = p;
	j->kind = kind;
	j->arg = arg;
	j->l = l;
	j->mode = JOB_FORGET;
	atomic_init(&j->pending, p->nw);
	atomic_init(&j->closed, 0);
	for (i = 0; i < p->nw; i++)
		j->links[i].job = j;
	return j;
}

static void
live_link(struct proxy *p, struct pjob *j)
{
	j->live_prev = NULL;
	j->live_next = p->live;
	if (p->live != NULL)
		p->live->live_prev = j;
	p->live = j;
}

static void
live_unlink(struct proxy *p, struct pjob *j)
{
	if (j->mode != JOB_POST)
		return;
	if (j->live_prev != NULL)
		j->live_prev->live_next = j->live_next;
	else
		p->live = j->live_next;
	if (j->live_next != NULL)
		j->live_next->live_prev = j->live_prev;
}

/* Append j to every worker's queue.  A JOB_FORGET job may be freed by a
 * worker as soon as the last link is in: do not touch it afterwards. */
static void
job_queue(struct proxy *p, struct pjob *j)
{
	struct worker		*w;
	struct pjob_link	*q;
	uint64_t		 one = 1;
	int			 i;

	for (i = 0; i < p->nw; i++) {
		w = &p->w[i];
		q = &j->links[i];
		pthread_mutex_lock(&w->mu);
		q->next = NULL;
		*w->qtail = q;
		w->qtail = &q->next;
		pthread_mutex_unlock(&w->mu);
		(void)!write(w->wakefd, &one, sizeof(one));
	}
}

/* Call j's callback, if any is left, with what the workers found. */
static void
job_call(struct pjob *j)
{
	struct proxy_sessions	 s;
	int			 nw = j->p->nw, r, k, i, sum;

	if (j->kind != CMD_SESSIONS) {
		if (j->done_cb != NULL)
			j->done_cb(atomic_load(&j->closed), j->cb_arg);
		return;
	}
	if (j->sessions_cb == NULL)
		return;
	memset(&s, 0, sizeof(s));
	for (r = 0; r <= j->nports; r++) {
		for (k = 0; k < PROXY_PROTO_MAX; k++) {
			for (sum = 0, i = 0; i < nw; i++)
				sum += j->counts[((size_t)i *
				    (size_t)(j->nports + 1) + (size_t)r) *
				    PROXY_PROTO_MAX + (size_t)k];
			s.n[k] += sum;
			if (r < j->nports)
				j->result[r].n[k] = sum;
		}
		if (r < j->nports)
			j->result[r].port = j->ports[r];
	}
	s.nports = j->nports;
	s.ports = j->result;
	j->sessions_cb(&s, j->cb_arg);
}

/* Hand j to the workers; one with a callback stays cancellable until
 * it is called back. */
static void
job_submit(struct proxy *p, struct pjob *j)
{
	if (j->mode == JOB_POST)
		live_link(p, j);
	job_queue(p, j);
}

/* Results the workers posted: called back on the control thread. */
static void
proxy_done(evutil_socket_t fd, short what, void *arg)
{
	struct proxy	*p = arg;
	struct pjob	*list, *j;

	pthread_mutex_lock(&p->mu);
	list = p->done_head;
	p->done_head = NULL;
	p->done_tail = &p->done_head;
	pthread_mutex_unlock(&p->mu);
	/* In the order they were queued (see job_ran).  Each job leaves
	 * the live list before its callback, the others stay on it until
	 * their turn, so a callback may proxy_cancel a later one. */
	while ((j = list) != NULL) {
		list = j->done_next;
		live_unlink(p, j);
		job_call(j);
		job_free(j);
	}
}

enum proxy_data_path
proxy_data_path(const struct proxy *p)
{
	return p->path;
}

const char *
proxy_data_path_name(enum proxy_data_path path)
{
	return path == PROXY_IO_URING ? "io_uring" : "epoll";
}

int
proxy_data_path_parse(const char *s, enum proxy_data_path *path)
{
	if (strcmp(s, "epoll") == 0)
		*path = PROXY_EPOLL;
	else if (strcmp(s, "io_uring") == 0)
		*path = PROXY_IO_URING;
	else
		return -1;
	return 0;
}

struct proxy *
proxy_new_base(struct event_base *base, int nworkers,
    enum proxy_data_path path, struct err *e)
{
	struct proxy		*p;
	struct worker		*w;
	struct epoll_event	 ev;
	long			 ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char			 why[200];
	int			 i;

	if (pbio_method == NULL) {
		pbio_method = BIO_meth_new(BIO_get_new_index() |
		    BIO_TYPE_SOURCE_SINK, "moat socket");
		BIO_meth_set_read(pbio_method, pbio_read);
		BIO_meth_set_write(pbio_method, pbio_write);
		BIO_meth_set_ctrl(pbio_method, pbio_ctrl);
		BIO_meth_set_create(pbio_method, pbio_create);
	}
	if (nworkers <= 0)
		nworkers = ncpu > 0 ? (int)ncpu : 1;
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->w = calloc((size_t)nworkers, sizeof(*p->w))) == NULL) {
		free(p);
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	p->done_tail = &p->done_head;
	/* Everything proxy_free undoes is set up first, so that it can
	 * undo a half-made proxy. */
	p->nw = nworkers;
	for (i = 0; i < nworkers; i++) {
		w = &p->w[i];
		w->idx = i;
		w->epfd = w->wakefd = -1;
		w->qtail = &w->qhead;
		pthread_mutex_init(&w->mu, NULL);
	}
	if ((p->done_ev = event_new(base, -1, 0, proxy_done, p)) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		proxy_free(p);
		return NULL;
	}
	/* Every worker on the same path: all rings, or none. */
	p->path = path;
	for (i = 0; path == PROXY_IO_URING && i < nworkers; i++) {
		if (uring_new(&p->w[i], why, sizeof(why)) == -1) {
			log_warn("data path: io_uring is not available (%s); "
			    "using epoll", why);
			while (i >= 0)
				uring_free(&p->w[i--]);
			p->path = PROXY_EPOLL;
			break;
		}
	}
	for (i = 0; i < nworkers; i++) {
		w = &p->w[i];
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		w->scratch = malloc(SCRATCH);
		w->wtag.kind = TAG_WAKE;
		w->wtag.ptr = w;
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.ptr = &w->wtag;
		if (w->epfd == -1 || w->wakefd == -1 || w->scratch == NULL ||
		    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &ev) == -1 ||
		    pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			err_set(e, E_INTERNAL, "cannot start data worker %d", i);
			proxy_free(p);
			return NULL;
		}
		w->started = 1;
	}
	log_info("data path: %s, %d worker%s", proxy_data_path_name(p->path),
	    nworkers, nworkers == 1 ? "" : "s");
	return p;
}

static struct listener *
proxy_listener(struct proxy *p, int port, int *idx)
{
	int i;

	for (i = 0; i < p->nls; i++)
		if (p->ls[i]->port == port) {
			if (idx != NULL)
				*idx = i;
			return p->ls[i];
		}
	return NULL;
}

static int
listen_tcp(const char *addr, int port, struct err *e)
{
	struct sockaddr_in	 sin;
	int			 fd, one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		return err_set(e, E_INTERNAL, "bad listen address %s", addr);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return err_set(e, E_INTERNAL, "socket: %s", strerror(errno));
	/* Also what lets a port be served again while the workers still
	 * hold the socket of its deleted endpoint (see
	 * proxy_endpoint_del_async). */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, 1024) == -1) {
		err_set(e, E_CONFLICT, "cannot listen on %s:%d: %s", addr, port,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
proxy_port_stats(struct proxy *p, int port, struct proxy_port_stats *out)
{
	int i, k;

	memset(out, 0, sizeof(*out));
	out->port = port;
	for (i = 0; i < p->nls; i++) {
		struct pstats *st = &p->ls[i]->st;
		if (p->ls[i]->port != port)
			continue;
		for (k = 0; k < TLS_HS__COUNT; k++)
			out->handshakes[k] = atomic_load_explicit(&st->hs[k],
			    memory_order_relaxed);
		out->bytes_in = atomic_load_explicit(&st->in,
		    memory_order_relaxed);
		out->bytes_out = atomic_load_explicit(&st->out,
		    memory_order_relaxed);
		return 0;
	}
	return -1;
}

int
proxy_endpoint_set_async(struct proxy *p, const char *addr, int port,
    struct tlsctx *ctx, const char *backend, const char *label,
    struct err *e)
{
	struct endpoint	*ep, *old;
	struct listener	*l;
	struct pjob	*j;
	int		 fd;

	if ((ep = calloc(1, sizeof(*ep))) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	atomic_init(&ep->refs, 1);
	ep->port = port;
	ep->ctx = tlsctx_ref(ctx);
	snprintf(ep->backend, sizeof(ep->backend), "%s", backend);
	snprintf(ep->label, sizeof(ep->label), "%s", label);
	if ((l = proxy_listener(p, port, NULL)) != NULL) {
		/* Workers read l->ep under l->mu at accept time: no
		 * command needed.  The counters go on. */
		ep->st = &l->st;
		pthread_mutex_lock(&l->mu);
		old = l->ep;
		l->ep = ep;
		pthread_mutex_unlock(&l->mu);
		endpoint_unref(old);
		return 0;
	}
	if (p->nls == MAX_LISTENERS || (l = calloc(1, sizeof(*l))) == NULL) {
		endpoint_unref(ep);
		return err_set(e, E_INTERNAL, "too many endpoints");
	}
	if ((fd = listen_tcp(addr, port, e)) == -1) {
		endpoint_unref(ep);
		free(l);
		return -1;
	}
	l->fd = fd;
	l->port = port;
	ep->st = &l->st;
	l->ep = ep;
	l->tag.kind = TAG_LISTEN;
	l->tag.ptr = l;
	pthread_mutex_init(&l->mu, NULL);
	if ((j = job_new(p, CMD_ADD, port, l)) == NULL) {
		listener_free(l);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	p->ls[p->nls++] = l;
	job_submit(p, j);
	return 0;
}

int
proxy_endpoint_del_async(struct proxy *p, int port, proxy_done_cb cb,
    void *arg)
{
	struct listener	*l;
	struct pjob	*j;
	int		 i;

	/* The job owns the listener from now on. */
	if ((l = proxy_listener(p, port, &i)) == NULL ||
	    (j = job_new(p, CMD_DEL, port, l)) == NULL)
		return -1;
	p->ls[i] = p->ls[--p->nls];
	/*
	 * Stop accepting now, before the workers get to it: shutdown of a
	 * listening socket resets its backlog and releases the port (the
	 * socket goes to CLOSE, and SO_REUSEADDR then lets a new one bind),
	 * so a database re-created on the same port is served at once.
	 * The fd itself stays open until every worker removed it from its
	 * epoll set, so that its number cannot be reused under them.
	 * Workers polling it meanwhile see EPOLLHUP and an accept EINVAL.
	 */
	shutdown(l->fd, SHUT_RD);
	if (cb != NULL) {
		j->mode = JOB_POST;
		j->done_cb = cb;
		j->cb_arg = arg;
	}
	job_submit(p, j);
	return 0;
}

static int
proxy_close_async(struct proxy *p, enum cmd_kind kind, int arg,
    proxy_done_cb cb, void *arg_cb)
{
	struct pjob *j;

	if ((j = job_new(p, kind, arg, NULL)) == NULL)
		return -1;
	if (cb != NULL) {
		j->mode = JOB_POST;
		j->done_cb = cb;
		j->cb_arg = arg_cb;
	}
	job_submit(p, j);
	return 0;
}

int
proxy_close_below_async(struct proxy *p, int min_version, proxy_done_cb cb,
    void *arg)
{
	return proxy_close_async(p, CMD_CLOSE_BELOW, min_version, cb, arg);
}

int
proxy_close_port_async(struct proxy *p, int port, proxy_done_cb cb,
    void *arg)
{
	return proxy_close_async(p, CMD_CLOSE_PORT, port, cb, arg);
}

int
proxy_sessions_async(struct proxy *p, proxy_sessions_cb cb, void *arg)
{
	struct pjob	*j;
	int		 i, n = p->nls;

	if ((j = job_new(p, CMD_SESSIONS, 0, NULL)) == NULL)
		return -1;
	j->nports = n;
	j->counts = calloc((size_t)p->nw * (size_t)(n + 1) * PROXY_PROTO_MAX,
	    sizeof(int));
	if (n > 0) {
		j->ports = calloc((size_t)n, sizeof(int));
		j->result = calloc((size_t)n, sizeof(*j->result));
	}
	if (j->counts == NULL || (n > 0 && (j->ports == NULL ||
	    j->result == NULL))) {
		job_free(j);
		return -1;
	}
	for (i = 0; i < n; i++)
		j->ports[i] = p->ls[i]->port;
	if (n > 0)
		qsort(j->ports, (size_t)n, sizeof(int), int_cmp);
	j->mode = JOB_POST;
	j->sessions_cb = cb;
	j->cb_arg = arg;
	job_submit(p, j);
	return 0;
}

void
proxy_cancel(struct proxy *p, void *arg)
{
	struct pjob *j;

	for (j = p->live; j != NULL; j = j->live_next)
		if (j->cb_arg == arg) {
			j->done_cb = NULL;
			j->sessions_cb = NULL;
		}
}

int
proxy_proto_version(enum proxy_proto proto)
{
	if (proto < PROXY_TLS1_0 || proto > PROXY_TLS1_3)
		return 0;
	return TLS1_VERSION + (int)(proto - PROXY_TLS1_0);
}

const char *
proxy_proto_name(enum proxy_proto proto)
{
	static const char *const names[PROXY_PROTO_MAX] = {
		[PROXY_PLAINTEXT] = "plaintext",
		[PROXY_HANDSHAKE] = "handshake",
		[PROXY_TLS1_0] = "TLSv1",
		[PROXY_TLS1_1] = "TLSv1.1",
		[PROXY_TLS1_2] = "TLSv1.2",
		[PROXY_TLS1_3] = "TLSv1.3",
	};

	return proto >= 0 && proto < PROXY_PROTO_MAX ? names[proto] : "?";
}

int
proxy_sessions_below(const struct proxy_sessions *s, int port,
    int min_version)
{
	const int	*n = NULL;
	int		 i, k, sum = 0;

	if (port == 0)
		n = s->n;
	for (i = 0; n == NULL && i < s->nports; i++)
		if (s->ports[i].port == port)
			n = s->ports[i].n;
	if (n == NULL)
		return 0;
	for (k = PROXY_TLS1_0; k <= PROXY_TLS1_3; k++)
		if (proxy_proto_version((enum proxy_proto)k) < min_version)
			sum += n[k];
	return sum;
}

void
proxy_free(struct proxy *p)
{
	struct worker	*w;
	struct pjob	*j;
	uint64_t	 one = 1;
	int		 i;

	if (p == NULL)
		return;
	/* Workers run what is queued, then exit closing their
	 * connections.  No command for this: it cannot fail for want of
	 * memory. */
	for (i = 0; i < p->nw; i++) {
		w = &p->w[i];
		if (!w->started)
			continue;
		pthread_mutex_lock(&w->mu);
		w->stop = 1;
		pthread_mutex_unlock(&w->mu);
		(void)!write(w->wakefd, &one, sizeof(one));
	}
	for (i = 0; i < p->nw; i++) {
		w = &p->w[i];
		if (w->started)
			pthread_join(w->thread, NULL);
		if (w->epfd != -1)
			close(w->epfd);
		if (w->wakefd != -1)
			close(w->wakefd);
		uring_free(w);
		free(w->scratch);
		pthread_mutex_destroy(&w->mu);
	}
	/* Every queued job ran; those posted and not yet called back are
	 * dropped without a call: the owner is going away too. */
	while ((j = p->done_head) != NULL) {
		p->done_head = j->done_next;
		live_unlink(p, j);
		job_free(j);
	}
	/* No worker polls these any more. */
	while (p->nls > 0)
		listener_free(p->ls[--p->nls]);
	if (p->done_ev != NULL)
		event_free(p->done_ev);
	pthread_mutex_destroy(&p->mu);
	free(p->w);
	free(p);
}
