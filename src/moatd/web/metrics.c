/*
 * metrics.c — the Prometheus exporter (see metrics.h, docs/operations.md).
 *
 * Everything here is read from what this node already keeps: the
 * certificates apply serves, the counters the HTTPS listeners and the
 * data workers keep, the live connections as last counted by apply's
 * tick.  A scrape never waits for a worker or reads the store, so a slow
 * or unreachable store shows as moat_store_up 0, never as a hung scrape.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "apply.h"
#include "https.h"
#include "metrics.h"
#include "proxy.h"
#include "rollout.h"

/* RS serves the expiry under one name at / and another at /v2. */
static const struct metrics_path {
	const char	*path;
	const char	*expiry_name;
} metrics_paths[] = {
	{ "/",		"node_cert_expiration_seconds" },
	{ "/metrics",	"node_cert_expiration_seconds" },
	{ "/v2",	"node_cert_expires_in_seconds" },
	{ "/v2/node",	"node_cert_expires_in_seconds" },
};

struct out {
	struct evbuffer	*b;
	char		 cluster[256];	/* escaped */
	int		 uid;
};

/* A label value in the text format: backslash, quote and newline are
 * escaped. */
static void
label_escape(char *dst, size_t len, const char *src)
{
	size_t o = 0;

	for (; src != NULL && *src != '\0' && o + 3 < len; src++) {
		if (*src == '\\' || *src == '"') {
			dst[o++] = '\\';
			dst[o++] = *src;
		} else if (*src == '\n') {
			dst[o++] = '\\';
			dst[o++] = 'n';
		} else
			dst[o++] = *src;
	}
	dst[o] = '\0';
}

static void
family(struct out *o, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(o->b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/* The certificates this node serves, plus the cluster CA. */
static void
certs(struct out *o, struct node *n, const char *expiry_name)
{
	struct apply_stats	 st;
	char			 path[4096], esc[4200];
	time_t			 now = time(NULL), na[CERT__COUNT + 1];
	const char		*names[CERT__COUNT + 1];
	int			 i;

	apply_stats(n, &st);
	for (i = 0; i < CERT__COUNT; i++) {
		names[i] = cert_services[i].name;
		na[i] = apply_not_after(n, i);
	}
	names[CERT__COUNT] = "ca";
	na[CERT__COUNT] = st.ca_not_after;

	family(o, expiry_name, "gauge", "Seconds until the certificate "
	    "expires (negative once expired).");
	for (i = 0; i <= CERT__COUNT; i++) {
		if (na[i] == 0)
			continue;
		snprintf(path, sizeof(path), "%s/certs/%s%s", n->cfg.data_dir,
		    names[i], i == CERT__COUNT ? ".pem" : "_cert.pem");
		label_escape(esc, sizeof(esc), path);
		evbuffer_add_printf(o->b, "%s{cluster=\"%s\",logical_name="
		    "\"%s\",node=\"%d\",path=\"%s\"} %lld\n", expiry_name,
		    o->cluster, names[i], o->uid, esc,
		    (long long)(na[i] - now));
	}
	family(o, "moat_cert_not_after_timestamp_seconds", "gauge",
	    "When the certificate expires, as a Unix time.");
	for (i = 0; i <= CERT__COUNT; i++)
		if (na[i] != 0)
			evbuffer_add_printf(o->b, "moat_cert_not_after_timestamp"
			    "_seconds{cluster=\"%s\",logical_name=\"%s\","
			    "node=\"%d\"} %lld\n", o->cluster, names[i], o->uid,
			    (long long)na[i]);
	family(o, "moat_cert_version", "gauge", "The version of the "
	    "certificate this node serves (its history number).");
	for (i = 0; i < CERT__COUNT; i++)
		if (na[i] != 0)
			evbuffer_add_printf(o->b, "moat_cert_version{cluster="
			    "\"%s\",logical_name=\"%s\",node=\"%d\"} %d\n",
			    o->cluster, names[i], o->uid, apply_version(n, i));
}

/* ---- connections and handshakes ---- */

static const struct {
	const char	*name;
	size_t		 off;
} control_ports[] = {
	{ "api",		offsetof(struct node, api) },
	{ "cm",			offsetof(struct node, cm) },
	{ "metrics_exporter",	offsetof(struct node, metrics) },
};

#define PORT_OF(n, i) \
	(*(struct https **)((char *)(n) + control_ports[i].off))

struct bdb_pass {
	struct out	*o;
	int		 what;
};

enum { PASS_HANDSHAKES, PASS_LIVE, PASS_IN, PASS_OUT };

static void
bdb_line(int uid, const struct proxy_port_stats *io, const int *live,
    void *arg)
{
	struct bdb_pass	*p = arg;
	struct out	*o = p->o;
	int		 k;

	switch (p->what) {
	case PASS_HANDSHAKES:
		for (k = 0; k < TLS_HS__COUNT; k++)
			evbuffer_add_printf(o->b, "moat_tls_handshakes_total{"
			    "node=\"%d\",endpoint=\"bdb\",bdb=\"%d\",result="
			    "\"%s\"} %llu\n", o->uid, uid,
			    tls_hs_result_name(k),
			    (unsigned long long)io->handshakes[k]);
		break;
	case PASS_LIVE:
		for (k = 0; k < PROXY_PROTO_MAX; k++)
			if (k != PROXY_HANDSHAKE || live[k] != 0)
				evbuffer_add_printf(o->b, "moat_connections{"
				    "node=\"%d\",endpoint=\"bdb\",bdb=\"%d\","
				    "version=\"%s\"} %d\n", o->uid, uid,
				    proxy_proto_name(k), live[k]);
		break;
	case PASS_IN:
	case PASS_OUT:
		evbuffer_add_printf(o->b, "moat_bdb_%s_bytes_total{node=\"%d\","
		    "bdb=\"%d\"} %llu\n", p->what == PASS_IN ? "received" :
		    "sent", o->uid, uid, (unsigned long long)(p->what ==
		    PASS_IN ? io->bytes_in : io->bytes_out));
		break;
	}
}

static void
traffic(struct out *o, struct node *n)
{
	struct bdb_pass	 p = { o, 0 };
	uint64_t	 hs[TLS_HS__COUNT];
	size_t		 i;
	int		 k, v12, v13;

	family(o, "moat_tls_handshakes_total", "counter", "TLS handshakes "
	    "since moatd started, by endpoint and how they ended.");
	for (i = 0; i < sizeof(control_ports) / sizeof(control_ports[0]);
	    i++) {
		if (PORT_OF(n, i) == NULL)
			continue;
		https_handshakes(PORT_OF(n, i), hs);
		for (k = 0; k < TLS_HS__COUNT; k++)
			evbuffer_add_printf(o->b, "moat_tls_handshakes_total{"
			    "node=\"%d\",endpoint=\"%s\",result=\"%s\"} %llu\n",
			    o->uid, control_ports[i].name,
			    tls_hs_result_name(k), (unsigned long long)hs[k]);
	}
	p.what = PASS_HANDSHAKES;
	apply_bdb_stats(n, bdb_line, &p);

	family(o, "moat_http_connections_refused_total", "counter",
	    "Connections to the HTTPS ports closed as too slow (no whole "
	    "request in time) or over a limit (per address, per port).");
	for (i = 0; i < sizeof(control_ports) / sizeof(control_ports[0]);
	    i++)
		if (PORT_OF(n, i) != NULL)
			evbuffer_add_printf(o->b, "moat_http_connections_"
			    "refused_total{node=\"%d\",endpoint=\"%s\"} %llu\n",
			    o->uid, control_ports[i].name, (unsigned long long)
			    https_refused(PORT_OF(n, i)));

	family(o, "moat_connections", "gauge", "Open client connections by "
	    "endpoint and TLS version (databases: as counted in the last "
	    "few seconds).");
	for (i = 0; i < sizeof(control_ports) / sizeof(control_ports[0]);
	    i++) {
		if (PORT_OF(n, i) == NULL)
			continue;
		https_count_versions(PORT_OF(n, i), &v12, &v13);
		evbuffer_add_printf(o->b, "moat_connections{node=\"%d\","
		    "endpoint=\"%s\",version=\"TLSv1.2\"} %d\n"
		    "moat_connections{node=\"%d\",endpoint=\"%s\",version="
		    "\"TLSv1.3\"} %d\n", o->uid, control_ports[i].name, v12,
		    o->uid, control_ports[i].name, v13);
	}
	p.what = PASS_LIVE;
	apply_bdb_stats(n, bdb_line, &p);

	family(o, "moat_bdb_received_bytes_total", "counter", "Bytes the "
	    "database's clients sent (decrypted), since moatd started.");
	p.what = PASS_IN;
	apply_bdb_stats(n, bdb_line, &p);
	family(o, "moat_bdb_sent_bytes_total", "counter", "Bytes sent to the "
	    "database's clients (before encryption), since moatd started.");
	p.what = PASS_OUT;
	apply_bdb_stats(n, bdb_line, &p);
}

/* ---- the control plane ---- */

static void
control(struct out *o, struct node *n)
{
	struct apply_stats	 st;
	uint64_t		 complete, partial;

	apply_stats(n, &st);
	rollout_counts(n->ro, &complete, &partial);
	family(o, "moat_store_up", "gauge", "1 when this node's last read "
	    "of the cluster store succeeded.");
	evbuffer_add_printf(o->b, "moat_store_up{node=\"%d\"} %d\n", o->uid,
	    st.store_up);
	family(o, "moat_store_applied_revision", "gauge", "The store "
	    "revision this node last applied.");
	evbuffer_add_printf(o->b, "moat_store_applied_revision{node=\"%d\"} "
	    "%lld\n", o->uid, (long long)st.rev);
	family(o, "moat_apply_last_success_timestamp_seconds", "gauge",
	    "When this node last applied the store without an error.");
	evbuffer_add_printf(o->b, "moat_apply_last_success_timestamp_seconds{"
	    "node=\"%d\"} %lld\n", o->uid, (long long)st.last_ok);
	family(o, "moat_applies_total", "counter", "Applies of the store "
	    "since moatd started, by result (error: the store did not "
	    "answer, or something could not be served).");
	evbuffer_add_printf(o->b, "moat_applies_total{node=\"%d\",result="
	    "\"ok\"} %llu\nmoat_applies_total{node=\"%d\",result=\"error\"} "
	    "%llu\n", o->uid, (unsigned long long)st.runs_ok, o->uid,
	    (unsigned long long)st.runs_failed);
	family(o, "moat_rollouts_total", "counter", "Changes made through "
	    "this node that waited for every node, by result (partial: the "
	    "timeout came first or a node was down).");
	evbuffer_add_printf(o->b, "moat_rollouts_total{node=\"%d\",result="
	    "\"complete\"} %llu\nmoat_rollouts_total{node=\"%d\",result="
	    "\"partial\"} %llu\n", o->uid, (unsigned long long)complete,
	    o->uid, (unsigned long long)partial);
}

void
metrics_dispatch(struct evhttp_request *req, void *arg)
{
	struct node		*n = arg;
	const char		*path = evhttp_uri_get_path(
				    evhttp_request_get_evhttp_uri(req));
	struct out		 o;
	size_t			 i;

	if (path == NULL || *path == '\0')
		path = "/";
	for (i = 0; i < sizeof(metrics_paths) / sizeof(metrics_paths[0]);
	    i++)
		if (strcmp(path, metrics_paths[i].path) == 0)
			break;
	if (i == sizeof(metrics_paths) / sizeof(metrics_paths[0])) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", "text/plain; charset=utf-8");
		evbuffer_add_printf(evhttp_request_get_output_buffer(req),
		    "not found: the metrics are at / and /v2\n");
		evhttp_send_reply(req, 404, "Not Found", NULL);
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET");
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", "text/plain; charset=utf-8");
		evbuffer_add_printf(evhttp_request_get_output_buffer(req),
		    "the metrics are read with GET\n");
		evhttp_send_reply(req, 405, "Method Not Allowed", NULL);
		return;
	}
	memset(&o, 0, sizeof(o));
	o.b = evhttp_request_get_output_buffer(req);
	o.uid = n->uid;
	if (apply_has_cluster(n))
		label_escape(o.cluster, sizeof(o.cluster),
		    apply_cluster(n)->name);
	certs(&o, n, metrics_paths[i].expiry_name);
	traffic(&o, n);
	control(&o, n);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", NULL);
}
