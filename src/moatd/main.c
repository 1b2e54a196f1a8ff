/*
 * main.c — moatd: one per node.  Options, listeners, signals.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <sodium.h>

#include "api.h"
#include "apply.h"
#include "certs.h"
#include "fsutil.h"
#include "https.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "proxy.h"
#include "schema.h"
#include "ui.h"
#include "x509.h"

static void
usage(FILE *f, int status)
{
	fprintf(f,
	    "usage: moatd --data-dir DIR [--addr ADDR] [--api-port N] "
	    "[--cm-port N]\n"
	    "             [--metrics-port N] [--store sqlite | "
	    "--store etcd://HOST:PORT[,HOST:PORT...]]\n"
	    "             [--bootstrap-token-file FILE] [--workers N] "
	    "[--data-path epoll | io_uring]\n"
	    "             [--ui-idle-timeout S]\n"
	    "\n"
	    "  --data-dir DIR     this node's state (certificates, node.json, "
	    "shards)\n"
	    "  --addr ADDR        address to listen on (default 0.0.0.0)\n"
	    "  --api-port N       REST API over HTTPS (default 9443)\n"
	    "  --cm-port N        management UI over HTTPS (default 8443)\n"
	    "  --metrics-port N   Prometheus exporter over HTTPS (default "
	    "8070)\n"
	    "  --store URL        sqlite (embedded, one node; the default), or\n"
	    "                     etcd://h:p[,h:p...] / etcds://h:p?ca=&cert=&"
	    "key= for a cluster\n"
	    "  --bootstrap-token-file FILE  a token (the file's first line) "
	    "that lets\n"
	    "                     create_cluster come from other machines "
	    "(or\n"
	    "                     MOAT_BOOTSTRAP_TOKEN; never on the command "
	    "line)\n"
	    "  --workers N        data threads (default: one per core)\n"
	    "  --data-path P      how the data threads move bytes: io_uring "
	    "(the\n"
	    "                     default; epoll where the kernel refuses "
	    "it) or epoll\n"
	    "  --ui-idle-timeout S  UI sessions end after S idle seconds "
	    "(default 900)\n");
	exit(status);
}

/*
 * SIGHUP: the seed's legacy procedure.  An operator who copied new
 * <name>_cert.pem / <name>_key.pem (and chain_certs.pem) into DIR/certs/
 * has them validated and applied to the whole cluster in one
 * transaction; the files that still match what is served change nothing.
 */
static void
on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct node	*n = arg;
	char		 dir[4096];

	snprintf(dir, sizeof(dir), "%s/certs", n->cfg.data_dir);
	certs_import_dir(n, dir, "SIGHUP");
}

/* The first line of path, for a secret that must not be an argument. */
static int
read_token_file(const char *path, char **out)
{
	struct err	 e = { 0 };
	char		*buf;

	if (fs_read(path, 4096, &buf, &e) != 0) {
		fprintf(stderr, "moatd: cannot read the bootstrap token from "
		    "%s: %s\n", path, e.msg ? err_msg(&e) : "no such file");
		err_clear(&e);
		return -1;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	if (strlen(buf) < 16) {
		fprintf(stderr, "moatd: the bootstrap token in %s is shorter "
		    "than 16 characters\n", path);
		free(buf);
		return -1;
	}
	free(*out);
	*out = buf;
	return 0;
}

static int
parse_port(const char *s, const char *what)
{
	char	*end;
	long	 v = strtol(s, &end, 10);

	if (*end != '\0' || v < 1 || v > 65535) {
		fprintf(stderr, "moatd: %s must be a port number 1-65535, "
		    "not \"%s\"\n", what, s);
		exit(2);
	}
	return (int)v;
}

static int
parse_seconds(const char *s, const char *what)
{
	char	*end;
	long	 v = strtol(s, &end, 10);

	if (*end != '\0' || v < 1 || v > 86400) {
		fprintf(stderr, "moatd: %s must be 1 to 86400 seconds, not "
		    "\"%s\"\n", what, s);
		exit(2);
	}
	return (int)v;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	log_info("signal %d: shutting down", (int)sig);
	event_base_loopbreak(arg);
}

/* A throw-away self-signed certificate for the API port before the
 * cluster exists: bootstrap is still encrypted. */
static struct tlsctx *
bootstrap_ctx(const char *addr, struct err *e)
{
	char			*ca_cert = NULL, *ca_key = NULL, *c = NULL, *k = NULL;
	const char		*dns[] = { "localhost", NULL };
	const char		*ips[] = { addr, NULL };
	struct x509_material	*m = NULL;
	struct tlsctx		*ctx = NULL;
	struct tls_policy	 p = { TLS_V12, MOAT_DEFAULT_CIPHER_LIST, NULL };

	if (x509_ca_create("moat bootstrap", 1, &ca_cert, &ca_key, e) == 0 &&
	    x509_cert_issue(ca_cert, ca_key, "moat bootstrap", dns,
	    strcmp(addr, "0.0.0.0") ? ips : NULL, 1, &c, &k, e) == 0 &&
	    x509_material_parse(c, k, &m, e) == 0)
		ctx = tlsctx_server_new(m, &p, e);
	x509_material_free(m);
	free(ca_cert);
	free(c);
	x509_pem_free(ca_key);
	x509_pem_free(k);
	return ctx;
}

/* The context a listener starts with: its certificate once the node
 * serves a cluster, else a throw-away one (bootstrap is encrypted too). */
static struct tlsctx *
listener_ctx(struct node *n, int id, struct err *e)
{
	if (apply_has_cluster(n) && apply_ctx(n, id) != NULL)
		return tlsctx_ref(apply_ctx(n, id));
	return bootstrap_ctx(n->cfg.addr, e);
}

/*
 * The data workers allocate and free per request (OpenSSL's record
 * buffers, released while a connection is idle; the io_uring path's
 * queues).  glibc gives a thread arena's free top back to the kernel as
 * soon as it passes 128 KiB, with madvise: each time a TLB shootdown on
 * every core, then page faults to take it again.  Measured at -P 16 it
 * was a third of the workers' CPU (docs/performance.md).  A few MiB kept
 * per arena cost nothing an idle connection pays for.
 */
#define TRIM_THRESHOLD	(8 * 1024 * 1024)

/*
 * Every client connection to a database takes two descriptors here (the
 * client's and the shard's): the soft open files limit (1024 by default
 * on Debian) would stop moatd at a few hundred clients.  Take what the
 * hard limit allows, as servers do.
 */
static void
nofile_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("cannot raise the open files limit: %s",
		    strerror(errno));
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "data-dir",		required_argument, NULL, 'd' },
		{ "addr",		required_argument, NULL, 'a' },
		{ "api-port",		required_argument, NULL, 'p' },
		{ "cm-port",		required_argument, NULL, 'c' },
		{ "metrics-port",	required_argument, NULL, 'm' },
		{ "store",		required_argument, NULL, 's' },
		{ "bootstrap-token",	required_argument, NULL, 't' },
		{ "bootstrap-token-file", required_argument, NULL, 'T' },
		{ "workers",		required_argument, NULL, 'w' },
		{ "data-path",		required_argument, NULL, 'D' },
		{ "ui-idle-timeout",	required_argument, NULL, 'i' },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct node_config	 cfg = { NULL, "0.0.0.0", 9443, 8443, 8070,
				    "sqlite", NULL, 0, 900, PROXY_IO_URING };
	enum proxy_data_path	 path;
	struct api_listener	 tls_l, local_l, ui_l;
	struct event_base	*base;
	struct event		*sigterm, *sigint, *sighup;
	struct evhttp		*local;
	struct node		 node;
	struct tlsctx		*ctx;
	struct err		 e = { 0 };
	char			 sock[4200];
	char			*token_buf = NULL;
	int			 ch;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': cfg.data_dir = optarg; break;
		case 'a': cfg.addr = optarg; break;
		case 'p': cfg.api_port = parse_port(optarg, "--api-port"); break;
		case 'c': cfg.cm_port = parse_port(optarg, "--cm-port"); break;
		case 'm': cfg.metrics_port = parse_port(optarg,
			      "--metrics-port"); break;
		case 's': cfg.store_url = optarg; break;
		case 't':
			/* ps would show it to every user of the machine. */
			fprintf(stderr, "moatd: --bootstrap-token on the command "
			    "line is visible in ps; put the token in a file "
			    "(--bootstrap-token-file) or in "
			    "MOAT_BOOTSTRAP_TOKEN\n");
			return 2;
		case 'T':
			if (read_token_file(optarg, &token_buf) == -1)
				return 2;
			cfg.bootstrap_token = token_buf;
			break;
		case 'w': cfg.workers = atoi(optarg); break;
		case 'D':
			if (proxy_data_path_parse(optarg, &path) == -1) {
				fprintf(stderr, "moatd: --data-path %s: use "
				    "\"io_uring\" or \"epoll\"\n", optarg);
				return 2;
			}
			cfg.data_path = path;
			break;
		case 'i': cfg.ui_idle_timeout = parse_seconds(optarg,
			      "--ui-idle-timeout"); break;
		case 'h': usage(stdout, 0); break;
		default: usage(stderr, 2);
		}
	}
	if (cfg.data_dir == NULL || optind != argc)
		usage(stderr, 2);
	if (strcmp(cfg.store_url, "sqlite") != 0 &&
	    strncmp(cfg.store_url, "etcd://", 7) != 0 &&
	    strncmp(cfg.store_url, "etcds://", 8) != 0) {
		fprintf(stderr, "moatd: --store %s: use \"sqlite\" or "
		    "\"etcd://host:port[,host:port...]\"\n", cfg.store_url);
		return 2;
	}
	if (cfg.bootstrap_token == NULL)
		cfg.bootstrap_token = getenv("MOAT_BOOTSTRAP_TOKEN");
	if (sodium_init() < 0) {
		log_error("libsodium cannot initialise");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	nofile_raise();
	mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
	/* Before any thread: the work pool's OCSP queries and the etcd
	 * store both use libcurl. */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	evthread_use_pthreads();
	if ((base = event_base_new()) == NULL)
		return 1;
	if (node_init(&node, base, &cfg, &e) == -1) {
		log_error("%s", err_msg(&e));
		return 1;
	}
	memset(&tls_l, 0, sizeof(tls_l));
	memset(&local_l, 0, sizeof(local_l));
	memset(&ui_l, 0, sizeof(ui_l));
	tls_l.node = local_l.node = ui_l.node = &node;
	local_l.local = 1;
	ui_l.ui = 1;
	if ((ctx = listener_ctx(&node, CERT_API, &e)) == NULL) {
		log_error("no TLS context for the API: %s", err_msg(&e));
		return 1;
	}
	node.api = https_new(base, cfg.addr, cfg.api_port, ctx, api_dispatch,
	    &tls_l, &e);
	tlsctx_unref(ctx);
	if (node.api == NULL) {
		log_error("%s", err_msg(&e));
		return 1;
	}
	if ((ctx = listener_ctx(&node, CERT_CM, &e)) == NULL) {
		log_error("no TLS context for the UI: %s", err_msg(&e));
		return 1;
	}
	node.cm = https_new(base, cfg.addr, cfg.cm_port, ctx, ui_dispatch,
	    &ui_l, &e);
	tlsctx_unref(ctx);
	if (node.cm == NULL) {
		log_error("%s", err_msg(&e));
		return 1;
	}
	if ((ctx = listener_ctx(&node, CERT_METRICS, &e)) == NULL) {
		log_error("no TLS context for the metrics: %s", err_msg(&e));
		return 1;
	}
	node.metrics = https_new(base, cfg.addr, cfg.metrics_port, ctx,
	    metrics_dispatch, &node, &e);
	tlsctx_unref(ctx);
	if (node.metrics == NULL) {
		log_error("%s", err_msg(&e));
		return 1;
	}
	snprintf(sock, sizeof(sock), "%s/moatd.sock", cfg.data_dir);
	if ((local = http_local_new(base, sock, api_dispatch, &local_l,
	    &e)) == NULL) {
		log_error("%s", err_msg(&e));
		return 1;
	}
	sighup = evsignal_new(base, SIGHUP, on_sighup, &node);
	event_add(sighup, NULL);
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	if (node_is_member(&node))
		log_info("node %d of cluster %s: API on https://%s:%d, UI on "
		    "https://%s:%d, metrics on https://%s:%d, control socket "
		    "%s", node.uid, apply_has_cluster(&node) ?
		    apply_cluster(&node)->name : "(waiting for the store)",
		    cfg.addr, cfg.api_port, cfg.addr, cfg.cm_port, cfg.addr,
		    cfg.metrics_port, sock);
	else
		log_info("no cluster yet: API (bootstrap only) on "
		    "https://%s:%d, control socket %s", cfg.addr, cfg.api_port,
		    sock);
	event_base_dispatch(base);

	evhttp_free(local);
	unlink(sock);
	https_free(node.api);
	node.api = NULL;
	https_free(node.cm);
	node.cm = NULL;
	https_free(node.metrics);
	node.metrics = NULL;
	event_free(sighup);
	event_free(sigterm);
	event_free(sigint);
	node_shutdown(&node);
	/*
	 * A bufferevent freed while one of its deferred callbacks was queued
	 * (BEV_OPT_DEFER_CALLBACKS) is only released when that callback runs;
	 * event_base_free drops the queue without running it, and with it the
	 * SSL and buffers of, say, a Replica Of link caught mid-handshake.
	 * One pass of the loop lets them go; nothing live is left to call.
	 */
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_free(base);
	log_info("stopped");
	free(token_buf);
	return 0;
}
