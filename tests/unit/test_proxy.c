/*
 * test_proxy.c — the proxy's commands are queued, not waited for: they
 * come back on the control thread's event base, in order, and never
 * after proxy_free or a cancel.  Real workers, real TLS clients, an echo
 * server as the backend.
 *
 * Includes proxy.c itself, to see its workers (the build tracks the
 * include: editing proxy.c rebuilds this test).
 */
#include "proxy.c"
#include "proxy_uring.c"

#include <poll.h>
#include <signal.h>
#include <sys/un.h>

#include <event2/thread.h>

#include "t.h"
#include "x509.h"

#define NW	3		/* workers */

/* Every case runs on both data paths. */
static enum proxy_data_path path;

static struct event_base	*base;
static pthread_t		 control;
static char			 dir[64], backend[96];
static int			 backend_fd;

/* ---- an echo server on a unix socket, in its own thread ---- */

static void *
echo_main(void *arg)
{
	struct pollfd	 pfd[128];
	char		 buf[4096];
	int		 n = 1, i, fd;
	ssize_t		 r;

	pfd[0].fd = backend_fd;
	pfd[0].events = POLLIN;
	for (;;) {
		if (poll(pfd, (nfds_t)n, -1) == -1)
			continue;
		if (pfd[0].revents & POLLIN) {
			if ((fd = accept(backend_fd, NULL, NULL)) == -1)
				return NULL;	/* shut down */
			if (n < (int)NELEMS(pfd)) {
				/* revents: the slot's last occupant's, which
				 * would make the loop below block reading. */
				pfd[n].fd = fd;
				pfd[n].revents = 0;
				pfd[n++].events = POLLIN;
			} else
				close(fd);
		}
		if (pfd[0].revents & (POLLHUP | POLLERR))
			return NULL;
		for (i = 1; i < n; i++) {
			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if ((r = read(pfd[i].fd, buf, sizeof(buf))) > 0 &&
			    write(pfd[i].fd, buf, (size_t)r) == r)
				continue;
			close(pfd[i].fd);
			pfd[i--] = pfd[--n];
		}
	}
}

/* ---- clients (blocking; the test thread is not a worker) ---- */

struct client {
	int	 fd;
	SSL	*ssl;
};

static int
free_port(void)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	int			 fd, port;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(fd, (struct sockaddr *)&sin, &len);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static int
tcp_connect(int port)
{
	struct sockaddr_in	 sin;
	struct timeval		 tv = { 5, 0 };
	int			 fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A client that completed a handshake at exactly version v (0:
 * plaintext). */
static struct client
client_new(int port, int v)
{
	struct client	 c = { -1, NULL };
	SSL_CTX		*ctx;

	if ((c.fd = tcp_connect(port)) == -1 || v == 0)
		return c;
	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(ctx, v);
	SSL_CTX_set_max_proto_version(ctx, v);
	c.ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);
	SSL_set_fd(c.ssl, c.fd);
	if (SSL_connect(c.ssl) != 1) {
		SSL_free(c.ssl);
		c.ssl = NULL;
		close(c.fd);
		c.fd = -1;
	}
	return c;
}

static void
client_free(struct client *c)
{
	SSL_free(c->ssl);
	if (c->fd != -1)
		close(c->fd);
	c->ssl = NULL;
	c->fd = -1;
}

/* 1 when what we send comes back: the connection is served end to end. */
static int
client_echo(struct client *c)
{
	char	 buf[8];
	int	 n;

	if (c->fd == -1)
		return 0;
	if (c->ssl == NULL) {
		if (write(c->fd, "ping", 4) != 4)
			return 0;
		n = (int)read(c->fd, buf, sizeof(buf));
	} else {
		if (SSL_write(c->ssl, "ping", 4) != 4)
			return 0;
		n = SSL_read(c->ssl, buf, sizeof(buf));
	}
	return n == 4 && memcmp(buf, "ping", 4) == 0;
}

/* 1 when the proxy closed it (EOF or reset, no data). */
static int
client_closed(struct client *c)
{
	char	 buf[8];
	int	 n;

	if (c->ssl == NULL)
		return read(c->fd, buf, sizeof(buf)) <= 0;
	n = SSL_read(c->ssl, buf, sizeof(buf));
	ERR_clear_error();
	return n <= 0;
}

/* ---- the control thread's loop ---- */

static void
tick(evutil_socket_t fd, short what, void *arg)
{
}

static int
run_until(const int *flag, int ms)
{
	struct timespec	 t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (*flag)
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 +
		    (t.tv_nsec - t0.tv_nsec) / 1000000 > ms)
			return 0;
		event_base_loop(base, EVLOOP_ONCE);
	}
}

struct done {
	int	 called;
	int	 result;
	int	 on_control;	/* called on the thread that runs the base */
	int	 order;		/* its place among every callback */
};

static int	 calls;

static void
on_done(int result, void *arg)
{
	struct done *d = arg;

	d->called++;
	d->result = result;
	d->on_control = pthread_equal(pthread_self(), control);
	d->order = ++calls;
}

struct count {
	int				 called;
	int				 on_control;
	struct proxy_sessions		 s;
	struct proxy_port_sessions	 ports[8];
	int				 below13;
};

static void
on_sessions(const struct proxy_sessions *s, void *arg)
{
	struct count *c = arg;

	c->called++;
	c->on_control = pthread_equal(pthread_self(), control);
	c->s = *s;
	c->s.nports = s->nports < 8 ? s->nports : 8;
	if (c->s.nports > 0)
		memcpy(c->ports, s->ports,
		    (size_t)c->s.nports * sizeof(c->ports[0]));
	c->s.ports = c->ports;
	c->below13 = proxy_sessions_below(s, 0, TLS_V13);
	calls++;
}

/* Count until the workers accepted `total` connections (they accept
 * asynchronously), at most 3 s. */
static void
count_until(struct proxy *p, struct count *c, int total)
{
	int i, k, sum;

	for (i = 0; i < 30; i++) {
		memset(c, 0, sizeof(*c));
		CHECK_INT(proxy_sessions_async(p, on_sessions, c), 0);
		CHECK(run_until(&c->called, 3000));
		for (sum = 0, k = 0; k < PROXY_PROTO_MAX; k++)
			sum += c->s.n[k];
		if (sum == total)
			return;
		poll(NULL, 0, 100);
	}
}

static const struct proxy_port_sessions *
port_of(const struct count *c, int port)
{
	int i;

	for (i = 0; i < c->s.nports; i++)
		if (c->s.ports[i].port == port)
			return &c->s.ports[i];
	return NULL;
}

static struct x509_material *
material_new(void)
{
	static const char *const dns[] = { "moat.test", "*.moat.test", NULL };
	struct x509_material	*m = NULL;
	struct err		 e = { E_OK, NULL };
	char			*ca_cert, *ca_key, *cert = NULL, *key = NULL;

	if (x509_ca_create("proxy test CA", 30, &ca_cert, &ca_key, &e) == 0 &&
	    x509_cert_issue(ca_cert, ca_key, "moat.test", dns, NULL, 30,
	    &cert, &key, &e) == 0)
		(void)x509_material_parse(cert, key, &m, &e);
	if (m == NULL)
		fprintf(stderr, "cannot make test material: %s\n",
		    err_msg(&e));
	err_clear(&e);
	free(ca_cert);
	x509_pem_free(ca_key);
	free(cert);
	x509_pem_free(key);
	return m;
}

static int
set(struct proxy *p, int port, struct tlsctx *ctx)
{
	struct err	 e = { 0 };
	int		 rc;

	rc = proxy_endpoint_set_async(p, "127.0.0.1", port, ctx, backend,
	    "db:t", &e);
	if (rc == -1)
		fprintf(stderr, "proxy_endpoint_set_async %d: %s\n", port,
		    err_msg(&e));
	err_clear(&e);
	return rc;
}

/*
 * The commands below, run to the end: queue, then turn the loop until
 * the callback ran (at most 3 s).  Connections closed; -1 when it could
 * not be queued or never called back.
 */
static int
close_port(struct proxy *p, int port)
{
	struct done d = { 0 };

	if (proxy_close_port_async(p, port, on_done, &d) == -1 ||
	    !run_until(&d.called, 3000))
		return -1;
	return d.result;
}

static int
endpoint_del(struct proxy *p, int port)
{
	struct done d = { 0 };

	if (proxy_endpoint_del_async(p, port, on_done, &d) == -1 ||
	    !run_until(&d.called, 3000))
		return -1;
	return d.result;
}

/* Count by port and version; close below 1.3; delete a port with live
 * connections and serve it again at once. */
static void
test_sessions_and_close(struct proxy *p, struct tlsctx *ctx)
{
	struct client			 c12a, c12b, c13, raw, plain;
	struct count			 c;
	struct done			 d = { 0 }, d2 = { 0 };
	const struct proxy_port_sessions *ps;
	int				 a = free_port(), b = free_port();

	T_CASE("sessions by port and version");
	CHECK_INT(set(p, a, ctx), 0);
	CHECK_INT(set(p, b, NULL), 0);
	c12a = client_new(a, TLS1_2_VERSION);
	c12b = client_new(a, TLS1_2_VERSION);
	c13 = client_new(a, TLS1_3_VERSION);
	raw = client_new(a, 0);		/* TCP only: in its handshake */
	plain = client_new(b, 0);
	CHECK(client_echo(&c12a) && client_echo(&c12b) && client_echo(&c13));
	CHECK(client_echo(&plain));
	count_until(p, &c, 5);
	CHECK(c.on_control);
	CHECK_INT(c.s.n[PROXY_TLS1_2], 2);
	CHECK_INT(c.s.n[PROXY_TLS1_3], 1);
	CHECK_INT(c.s.n[PROXY_HANDSHAKE], 1);
	CHECK_INT(c.s.n[PROXY_PLAINTEXT], 1);
	CHECK_INT(c.below13, 2);
	CHECK_INT(c.s.nports, 2);
	CHECK((ps = port_of(&c, a)) != NULL);
	if (ps != NULL) {
		CHECK_INT(ps->n[PROXY_TLS1_2], 2);
		CHECK_INT(ps->n[PROXY_TLS1_3], 1);
		CHECK_INT(ps->n[PROXY_PLAINTEXT], 0);
	}
	CHECK_INT(proxy_sessions_below(&c.s, a, TLS_V13), 2);
	CHECK_INT(proxy_sessions_below(&c.s, b, TLS_V13), 0);
	CHECK_INT(proxy_sessions_below(&c.s, a, TLS_V12), 0);
	CHECK((ps = port_of(&c, b)) != NULL && ps->n[PROXY_PLAINTEXT] == 1);

	T_CASE("close below TLS 1.3, asynchronously");
	CHECK_INT(proxy_close_below_async(p, TLS_V13, on_done, &d), 0);
	CHECK_INT(d.called, 0);		/* never from inside the call */
	CHECK(run_until(&d.called, 3000));
	CHECK_INT(d.result, 2);
	CHECK(d.on_control);
	CHECK(client_closed(&c12a) && client_closed(&c12b));
	CHECK(client_echo(&c13));
	count_until(p, &c, 3);
	CHECK_INT(c.s.n[PROXY_TLS1_2], 0);
	CHECK_INT(c.s.n[PROXY_TLS1_3], 1);

	T_CASE("delete a port and serve it again at once");
	CHECK_INT(proxy_endpoint_del_async(p, a, on_done, &d2), 0);
	/* The port is free now, before the workers ran the delete. */
	CHECK_INT(set(p, a, ctx), 0);
	CHECK(run_until(&d2.called, 3000));
	CHECK_INT(d2.result, 2);	/* the 1.3 client and the raw one */
	CHECK(client_closed(&c13));
	client_free(&c13);
	c13 = client_new(a, TLS1_3_VERSION);
	CHECK(client_echo(&c13));
	CHECK_INT(proxy_endpoint_del_async(p, 9, on_done, &d2), -1);

	T_CASE("close a port's connections, delete the endpoints");
	CHECK_INT(close_port(p, b), 1);
	CHECK(client_closed(&plain));
	CHECK_INT(endpoint_del(p, a), 1);	/* the new 1.3 client */
	CHECK(client_closed(&c13));
	CHECK_INT(close_port(p, a), 0);
	CHECK_INT(endpoint_del(p, b), 0);
	client_free(&c12a);
	client_free(&c12b);
	client_free(&c13);
	client_free(&raw);
	client_free(&plain);
}

/* Set and delete the same port many times without waiting: every
 * worker applies them in order, so the last set wins and serves. */
static void
test_order(struct proxy *p, struct tlsctx *ctx)
{
	struct client	 cl;
	struct done	 d[3];
	struct count	 c;
	int		 port = free_port(), i, ok = 1;

	T_CASE("set and delete in order");
	memset(d, 0, sizeof(d));
	calls = 0;
	for (i = 0; i < 200; i++) {
		ok &= set(p, port, i % 2 ? NULL : ctx) == 0;
		ok &= proxy_endpoint_del_async(p, port, NULL, NULL) == 0;
	}
	CHECK(ok);
	CHECK_INT(set(p, port, ctx), 0);
	CHECK_INT(proxy_close_port_async(p, port, on_done, &d[0]), 0);
	CHECK_INT(proxy_close_below_async(p, TLS_V12, on_done, &d[1]), 0);
	CHECK_INT(proxy_close_port_async(p, port, on_done, &d[2]), 0);
	CHECK(run_until(&d[2].called, 3000));
	/* Called back in the order queued. */
	CHECK_INT(d[0].order, 1);
	CHECK_INT(d[1].order, 2);
	CHECK_INT(d[2].order, 3);
	cl = client_new(port, TLS1_3_VERSION);
	CHECK(client_echo(&cl));
	count_until(p, &c, 1);
	CHECK_INT(c.s.nports, 1);
	CHECK_INT(c.s.n[PROXY_TLS1_3], 1);
	client_free(&cl);
	CHECK(endpoint_del(p, port) != -1);
}

/* A cancelled callback is never called; the command still runs. */
static void
test_cancel(struct proxy *p)
{
	struct count	 c = { 0 };
	struct done	 d = { 0 }, after = { 0 };

	T_CASE("cancel");
	CHECK_INT(proxy_sessions_async(p, on_sessions, &c), 0);
	CHECK_INT(proxy_close_below_async(p, TLS_V12, on_done, &d), 0);
	CHECK_INT(proxy_close_below_async(p, TLS_V12, on_done, &after), 0);
	proxy_cancel(p, &c);
	proxy_cancel(p, &d);
	CHECK(run_until(&after.called, 3000));
	CHECK_INT(c.called, 0);
	CHECK_INT(d.called, 0);
}

/* proxy_free with commands in flight: no callback, no leak (the
 * sanitizer build checks the latter). */
static void
test_free_in_flight(struct tlsctx *ctx)
{
	struct proxy	*p;
	struct err	 e = { 0 };
	struct count	 c = { 0 };
	struct done	 d[4];
	struct client	 cl;
	int		 port = free_port(), i;

	T_CASE("proxy_free with commands in flight");
	memset(d, 0, sizeof(d));
	if ((p = proxy_new_base(base, NW, path, &e)) == NULL) {
		CHECK(p != NULL);
		return;
	}
	CHECK_INT(set(p, port, ctx), 0);
	cl = client_new(port, TLS1_3_VERSION);
	CHECK(client_echo(&cl));
	for (i = 0; i < 50; i++) {
		proxy_close_below_async(p, TLS_V12, on_done, &d[0]);
		proxy_sessions_async(p, on_sessions, &c);
	}
	CHECK_INT(proxy_close_port_async(p, 1, on_done, &d[1]), 0);
	CHECK_INT(proxy_endpoint_del_async(p, port, on_done, &d[2]), 0);
	CHECK_INT(set(p, port, NULL), 0);
	proxy_free(p);
	/* The loop turns after the free: nothing may come from it. */
	run_until(&d[3].called, 200);
	CHECK_INT(d[0].called + d[1].called + d[2].called, 0);
	CHECK_INT(c.called, 0);
	CHECK(client_closed(&cl));
	client_free(&cl);
}

/* A proxy that serves nothing yet still answers every command, from
 * the loop. */
static void
test_empty(void)
{
	struct proxy	*p;
	struct err	 e = { 0 };
	struct done	 d = { 0 };
	struct count	 c = { 0 };

	T_CASE("a proxy without endpoints");
	if ((p = proxy_new_base(base, 2, path, &e)) == NULL) {
		CHECK(p != NULL);
		return;
	}
	CHECK_INT(proxy_close_below_async(p, TLS_V13, on_done, &d), 0);
	CHECK_INT(d.called, 0);
	CHECK(run_until(&d.called, 3000));
	CHECK_INT(d.called, 1);
	CHECK_INT(d.result, 0);
	CHECK_INT(proxy_sessions_async(p, on_sessions, &c), 0);
	CHECK_INT(c.called, 0);
	CHECK(run_until(&c.called, 3000));
	CHECK_INT(c.called, 1);
	CHECK(c.on_control);
	CHECK_INT(c.s.nports, 0);
	proxy_free(p);
}

static void
test_proto_names(void)
{
	static const struct {
		enum proxy_proto	 proto;
		int			 version;
		const char		*name;
	} rows[] = {
		{ PROXY_PLAINTEXT, 0, "plaintext" },
		{ PROXY_HANDSHAKE, 0, "handshake" },
		{ PROXY_TLS1_0, TLS1_VERSION, "TLSv1" },
		{ PROXY_TLS1_1, TLS1_1_VERSION, "TLSv1.1" },
		{ PROXY_TLS1_2, TLS1_2_VERSION, "TLSv1.2" },
		{ PROXY_TLS1_3, TLS1_3_VERSION, "TLSv1.3" },
		{ PROXY_PROTO_MAX, 0, "?" },
	};
	size_t i;

	for (i = 0; i < NELEMS(rows); i++) {
		T_CASE(rows[i].name);
		CHECK_INT(proxy_proto_version(rows[i].proto), rows[i].version);
		CHECK_STR(proxy_proto_name(rows[i].proto), rows[i].name);
	}
	T_CASE("wire numbers of tlsctx.h");
	CHECK_INT(proxy_proto_version(PROXY_TLS1_2), TLS_V12);
	CHECK_INT(proxy_proto_version(PROXY_TLS1_3), TLS_V13);
}

int
main(void)
{
	struct x509_material	*m;
	struct tlsctx		*ctx = NULL;
	struct tls_policy	 pol = { TLS_V12, MOAT_DEFAULT_CIPHER_LIST,
				    MOAT_DEFAULT_CIPHERSUITES };
	struct tlsctx_data_opts	 o = { .label = "db:t" };
	struct proxy		*p;
	struct sockaddr_un	 sun;
	struct event		*t;
	struct timeval		 tv = { 0, 10 * 1000 };
	struct err		 e = { 0 };
	pthread_t		 echo;

	signal(SIGPIPE, SIG_IGN);
	evthread_use_pthreads();
	base = event_base_new();
	control = pthread_self();
	t = event_new(base, -1, EV_PERSIST, tick, NULL);
	event_add(t, &tv);

	snprintf(dir, sizeof(dir), "/tmp/moat-ut-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(backend, sizeof(backend), "%s/b.sock", dir);
	backend_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", backend);
	if (bind(backend_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(backend_fd, 128) == -1)
		return 1;
	pthread_create(&echo, NULL, echo_main, NULL);

	test_proto_names();
	T_CASE("setup");
	CHECK((m = material_new()) != NULL);
	if (m != NULL)
		CHECK((ctx = tlsctx_data_new(m, &pol, &o, &e)) != NULL);
	for (path = PROXY_EPOLL; path <= PROXY_IO_URING; path++) {
		T_CASE(proxy_data_path_name(path));
		CHECK((p = proxy_new_base(base, NW, path, &e)) != NULL);
		if (p != NULL)
			CHECK_INT(proxy_data_path(p), path);
		if (ctx != NULL && p != NULL) {
			test_sessions_and_close(p, ctx);
			test_order(p, ctx);
			test_cancel(p);
		}
		proxy_free(p);
		if (ctx != NULL) {
			test_free_in_flight(ctx);
			test_empty();
		}
	}
	tlsctx_unref(ctx);
	x509_material_free(m);
	err_clear(&e);
	shutdown(backend_fd, SHUT_RDWR);
	pthread_join(echo, NULL);
	close(backend_fd);
	unlink(backend);
	rmdir(dir);
	event_free(t);
	event_base_free(base);
	return T_DONE();
}
