/*
 * apply.c — make this node serve what the store says (see apply.h).
 *
 * Every run reads the whole configuration in one store read at one
 * revision R (a snapshot), so that two changes committed through two
 * nodes at the same moment are applied together or one after the other,
 * never half of one: what a node applies is always a state the store
 * has been in.  The node then reports R, and for each certificate the
 * version it serves; the rollout waits for those reports.
 *
 * The snapshot is also kept in DIR/applied.json (mode 0600: it holds
 * private keys, like the key files under certs/), so that a node whose store does
 * not answer at start serves what it last applied at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apply.h"
#include "certacme.h"
#include "apply_bdbs.h"
#include "fsutil.h"
#include "https.h"
#include "seal.h"
#include "log.h"
#include "x509.h"

#define CACHE_FILE	"applied.json"

/* What this node serves for one certificate. */
struct served_cert {
	struct x509_material	*material;	/* owned */
	struct tlsctx		*ctx;		/* owned reference */
	int			 version;
	char			 fingerprint[100];
};

struct applied {
	struct node		*n;
	struct event		*ev;		/* apply on the next turn */
	int			 have_cluster;
	struct cluster_doc	 cluster;
	struct served_cert	 served[CERT__COUNT];
	int64_t			 rev;		/* store revision applied */
	int64_t			 policy_rev;	/* cluster doc's mod_rev */
	int			 closed_api, closed_proxy;
	int			 reported;	/* the store has our report */
	struct apply_bdbs	*bdbs;
	/* Live sessions as last reported, for other nodes' dry runs. */
	json_t			*sessions;
	char			 sessions_at[32];
	/* Replica Of links as last reported (apply_bdbs_replication). */
	json_t			*replication;
	struct event		*sess_ev;
	/* For the metrics exporter. */
	uint64_t		 runs[2];	/* failed, ok */
	int			 store_up;	/* the last read succeeded */
	time_t			 last_ok;
	time_t			 ca_not_after;
	int64_t			 ca_rev;	/* the CA document applied */
	/* The CAs the API and UI ports ask client certificates of (owned;
	 * NULL: they ask for none). */
	char			*mtls_ask;
	/* The OCSP staples applied (their documents' revisions), and the
	 * proxy certificate the databases' staple was chosen for. */
	int64_t			 staple_rev[CERT__COUNT];
	char			 staple_fp[100];
};

#define SESSIONS_EVERY_S	2

/* A snapshot: one consistent read of the store. */
struct snapshot {
	struct store_kv	*kv;
	size_t		 n;
	int64_t		 rev;
};

static const struct store_kv *
snap_find(const struct snapshot *s, const char *key)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->kv[i].key, key) == 0)
			return &s->kv[i];
	return NULL;
}

static json_t *
snap_json(const struct snapshot *s, const char *key, int64_t *rev)
{
	const struct store_kv *kv = snap_find(s, key);

	if (kv == NULL)
		return NULL;
	if (rev != NULL)
		*rev = kv->mod_rev;
	return json_loads(kv->value, 0, NULL);
}

/* ---- files under certs/ ---- */

static int
apply_write_file(struct node *n, const char *name, const char *data,
    mode_t mode)
{
	char		 path[4096], staging[4096];
	struct err	 e = { 0 };
	int		 rc;

	snprintf(path, sizeof(path), "%s/certs/%s", n->cfg.data_dir, name);
	snprintf(staging, sizeof(staging), "%s/.staging", n->cfg.data_dir);
	if ((rc = fs_write_atomic_via(path, staging, data, strlen(data), mode,
	    &e)) == -1)
		log_error("%s", err_msg(&e));
	err_clear(&e);
	return rc;
}

/* Append each certificate of pem after its leaf to *chain, once. */
static void
chain_add_issuers(char **chain, const char *pem)
{
	static const char	 end_marker[] = "-----END CERTIFICATE-----";
	const char		*c, *end;
	char			*t;
	size_t			 len;

	if ((c = strstr(pem, end_marker)) == NULL)
		return;
	c += sizeof(end_marker) - 1;
	while (*c == '\n' || *c == '\r')
		c++;
	while (*chain != NULL && (end = strstr(c, end_marker)) != NULL) {
		end += sizeof(end_marker) - 1;
		if (*end == '\n')
			end++;
		len = (size_t)(end - c);
		if (memmem(*chain, strlen(*chain), c, len) == NULL &&
		    asprintf(&t, "%s%.*s", *chain, (int)len, c) != -1) {
			free(*chain);
			*chain = t;
		}
		c = end;
	}
}

/* ca.pem and chain_certs.pem: the cluster CA, plus every issuer that an
 * operator's certificate brought with it. */
static void
apply_trust_files(struct node *n, const struct snapshot *snap)
{
	struct applied	*ap = n->ap;
	json_t		*ca = snap_json(snap, schema_key(SK_CA), NULL);
	const char	*ca_pem, *ca_key;
	char		*chain, *pem, *bundle;
	int		 i;

	if (ca == NULL || ca_doc_decode(ca, &ca_pem, &ca_key, NULL) == -1 ||
	    (bundle = ca_doc_bundle(ca)) == NULL) {
		json_decref(ca);
		return;
	}
	/* Every CA clients must trust: during a rollover, both. */
	apply_write_file(n, "ca.pem", bundle, 0644);
	{
		struct x509_material *cam = NULL;
		struct err ce = { 0 };
		if (x509_material_parse(ca_pem, NULL, &cam, &ce) == 0)
			ap->ca_not_after = x509_material_not_after(cam);
		x509_material_free(cam);
		err_clear(&ce);
	}
	chain = bundle;
	for (i = 0; i < CERT__COUNT && chain != NULL; i++) {
		struct x509_material *m = ap->served[i].material;
		if (m == NULL || x509_material_chain_len(m) < 2 ||
		    (pem = x509_material_chain_pem(m)) == NULL)
			continue;
		chain_add_issuers(&chain, pem);
		free(pem);
	}
	if (chain != NULL)
		apply_write_file(n, "chain_certs.pem", chain, 0644);
	free(chain);
	json_decref(ca);
}

/* ---- certificates ---- */

/* The OCSP staple of certificate id in snap when it is about the leaf
 * with fingerprint fp: st filled, *der the caller's to free; else
 * nothing (st->der NULL). */
static void
staple_of(const struct snapshot *snap, int id, const char *fp,
    unsigned char **der, struct tls_staple *st)
{
	char		 key[SCHEMA_KEY_MAX];
	json_t		*doc = snap_json(snap, schema_key_of(SK_OCSP_STAPLE, id,
			    key), NULL);
	const char	*sfp;

	memset(st, 0, sizeof(*st));
	*der = NULL;
	if (doc != NULL && schema_staple_decode(doc, &sfp, der, &st->len,
	    &st->until) == 0 && strcmp(sfp, fp) == 0)
		st->der = *der;
	else {
		free(*der);
		*der = NULL;
	}
	json_decref(doc);
}

/* Serve certificate id as the snapshot has it; 1 when it changed, 0 when
 * not, -1 when it cannot be served (the old one stays). */
static int
apply_cert(struct node *n, const struct snapshot *snap, int id,
    int policy_changed)
{
	struct applied			*ap = n->ap;
	const struct cert_service	*svc = &cert_services[id];
	struct served_cert		*sv = &ap->served[id];
	struct x509_material		*m = NULL;
	struct tlsctx			*ctx;
	struct tls_policy		 tp;
	struct cert_doc			 cd;
	struct err			 e = { 0 };
	char				 key[SCHEMA_KEY_MAX], fname[64];
	json_t				*doc;
	char				*plain_key = NULL;
	unsigned char			*der = NULL;
	struct tls_staple		 st = { NULL, 0, 0 };
	int				 changed;

	doc = snap_json(snap, schema_key_of(SK_CERT, id, key), NULL);
	if (doc == NULL || cert_doc_decode(doc, &cd, &e) == -1) {
		log_error("certificate %s: %s", svc->name, doc ?
		    err_msg(&e) : "missing from the store");
		goto fail;
	}
	changed = cd.version != sv->version;
	if (!changed && !policy_changed) {
		json_decref(doc);
		return 0;
	}
	/* Everything in the store was validated by the node that wrote it;
	 * still, a node never serves material it cannot load. */
	if ((plain_key = unseal_text(cd.key, &e)) != NULL &&
	    x509_material_parse(cd.certificate, plain_key, &m, &e) == 0 &&
	    (id == CERT_API || id == CERT_CM)) {
		/* The API and UI ports: certificate sign-in and their own
		 * OCSP staple (the databases' is apply_bdbs'). */
		char fp[100];
		x509_material_fingerprint(m, fp);
		staple_of(snap, id, fp, &der, &st);
	}
	if (m == NULL || (ctx = tlsctx_control_new(m, cluster_tls_policy(
	    &ap->cluster.policy, svc->policy, &tp), id == CERT_API ||
	    id == CERT_CM ? ap->mtls_ask : NULL, st.der != NULL ? &st : NULL,
	    &e)) == NULL) {
		log_error("certificate %s version %d not applied: %s",
		    svc->name, cd.version, err_msg(&e));
		goto fail;
	}
	free(der);
	der = NULL;
	if (changed) {
		snprintf(fname, sizeof(fname), "%s_cert.pem", svc->name);
		apply_write_file(n, fname, cd.certificate, 0644);
		snprintf(fname, sizeof(fname), "%s_key.pem", svc->name);
		apply_write_file(n, fname, plain_key, 0600);
	}
	seal_free(plain_key);
	plain_key = NULL;
	tlsctx_unref(sv->ctx);
	x509_material_free(sv->material);
	sv->ctx = ctx;
	sv->material = m;
	sv->version = cd.version;
	x509_material_fingerprint(m, sv->fingerprint);
	if (id == CERT_API && n->api != NULL)
		https_set_ctx(n->api, ctx);
	if (id == CERT_CM && n->cm != NULL)
		https_set_ctx(n->cm, ctx);
	if (id == CERT_METRICS && n->metrics != NULL)
		https_set_ctx(n->metrics, ctx);
	if (changed)
		log_info("serving %s certificate version %d (sha256 %s)",
		    svc->name, cd.version, sv->fingerprint);
	json_decref(doc);
	return changed;
fail:
	free(der);
	seal_free(plain_key);
	x509_material_free(m);
	json_decref(doc);
	err_clear(&e);
	return -1;
}

/* Staple what the store holds about the proxy certificate served now;
 * nothing when it is about another one (a rotation outran the fetcher). */
static void
apply_staple(struct node *n, const struct snapshot *snap)
{
	struct applied		*ap = n->ap;
	struct tls_staple	 st;
	unsigned char		*der;

	staple_of(snap, CERT_PROXY, ap->served[CERT_PROXY].fingerprint, &der,
	    &st);
	if (apply_bdbs_set_staple(ap->bdbs, st.der, st.len, st.until) == 0 &&
	    st.der != NULL)
		log_info("stapling an OCSP response to the databases' "
		    "handshakes");
	free(der);
}

static void apply_report(struct node *, const char *);

/* The workers closed the database connections below a raised minimum:
 * the report says how many (the writer's answer sums the reports). */
struct closed_req {
	struct node	*n;
	int64_t		 policy_rev;
	int		 min;
};

static void
apply_closed_proxy(int closed, void *arg)
{
	struct closed_req	*cr = arg;
	struct applied		*ap = cr->n->ap;

	log_info("minimum data TLS version raised to %s: closed %d database "
	    "connection(s) below it", tls_version_str(cr->min), closed);
	if (ap->policy_rev == cr->policy_rev) {
		ap->closed_proxy += closed;
		apply_report(cr->n, "active");
	}
	free(cr);
}

static int
str_differs(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") != 0;
}

/* The result of one run, for the report. */
struct apply_result {
	int	any_cert;
	int	failed;		/* a certificate could not be served */
	int	closing;	/* the report follows the workers' count */
};

static int
apply_snapshot(struct node *n, const struct snapshot *snap,
    struct apply_result *res)
{
	struct applied		*ap = n->ap;
	struct cluster_doc	 c, old;
	struct err		 e = { 0 };
	json_t			*doc;
	int64_t			 prev;
	int			 i, ctl, data, raised_ctl, raised_data;
	int			 first = !ap->have_cluster, proxy_changed = 0;
	int			 syncer_changed = 0, mtls_changed = 0;
	int			 mtls_failed = 0;
	char			*prev_ask = NULL;

	memset(res, 0, sizeof(*res));
	if ((doc = snap_json(snap, schema_key(SK_CLUSTER), &prev)) == NULL)
		return 0;	/* no cluster (yet) */
	if (cluster_doc_decode(doc, &c, &e) == -1) {
		log_error("cannot apply the cluster document: %s", err_msg(&e));
		json_decref(doc);
		err_clear(&e);
		return -1;
	}
	{
		/* Certificate sign-in turned on or off, or its CAs changed:
		 * the API and UI contexts ask anew. */
		const char *ask = schema_mtls_ask_pem(doc);
		if (str_differs(ask, ap->mtls_ask)) {
			/* The old one comes back if a context cannot be
			 * built, so that the next run tries again. */
			prev_ask = ap->mtls_ask;
			ap->mtls_ask = ask != NULL ? strdup(ask) : NULL;
			mtls_changed = 1;
		}
	}
	json_decref(doc);
	old = ap->cluster;
	ctl = first || c.policy.min_control != old.policy.min_control ||
	    str_differs(c.policy.control_cipher_list,
	    old.policy.control_cipher_list);
	data = first || c.policy.min_data != old.policy.min_data ||
	    str_differs(c.policy.data_cipher_list, old.policy.data_cipher_list) ||
	    str_differs(c.policy.data_ciphersuites,
	    old.policy.data_ciphersuites);
	raised_ctl = !first && c.policy.min_control > old.policy.min_control;
	raised_data = !first && c.policy.min_data > old.policy.min_data;
	ap->cluster = c;
	cluster_doc_clear(&old);
	ap->have_cluster = 1;
	for (i = 0; i < CERT__COUNT; i++) {
		int pc = cert_services[i].policy == POLICY_CONTROL ? ctl : data;
		char skey[SCHEMA_KEY_MAX];
		const struct store_kv *skv = snap_find(snap,
		    schema_key_of(SK_OCSP_STAPLE, i, skey));
		int64_t srev = skv != NULL ? skv->mod_rev : 0;
		/* A new staple for the API or UI port: a new context. */
		int staple = srev != ap->staple_rev[i] && (i == CERT_API ||
		    i == CERT_CM);
		int rc = apply_cert(n, snap, i, pc || staple || (mtls_changed &&
		    (i == CERT_API || i == CERT_CM)));
		if (rc != -1 && i != CERT_PROXY)
			ap->staple_rev[i] = srev;
		if (rc == -1)
			res->failed = 1;
		if (rc == -1 && (i == CERT_API || i == CERT_CM))
			mtls_failed = 1;
		if (rc > 0) {
			res->any_cert = 1;
			if (i == CERT_PROXY)
				proxy_changed = 1;
			if (i == CERT_SYNCER)
				syncer_changed = 1;
		}
	}
	if (mtls_changed && mtls_failed) {
		free(ap->mtls_ask);
		ap->mtls_ask = prev_ask;
	} else
		free(prev_ask);
	{
		const struct store_kv *ca = snap_find(snap, schema_key(SK_CA));
		/* A CA rollover changes ca.pem with no certificate change. */
		if (res->any_cert || (ca != NULL && ca->mod_rev != ap->ca_rev)) {
			apply_trust_files(n, snap);
			ap->ca_rev = ca != NULL ? ca->mod_rev : 0;
		}
	}
	/* The proxy certificate's OCSP staple: when it, or the certificate
	 * it is about, changed. */
	{
		char skey[SCHEMA_KEY_MAX];
		const struct store_kv *kv = snap_find(snap,
		    schema_key_of(SK_OCSP_STAPLE, CERT_PROXY, skey));
		int64_t srev = kv != NULL ? kv->mod_rev : 0;
		if (srev != ap->staple_rev[CERT_PROXY] || strcmp(ap->staple_fp,
		    ap->served[CERT_PROXY].fingerprint) != 0) {
			apply_staple(n, snap);
			ap->staple_rev[CERT_PROXY] = srev;
			snprintf(ap->staple_fp, sizeof(ap->staple_fp), "%s",
			    ap->served[CERT_PROXY].fingerprint);
			proxy_changed = 1;
		}
	}
	/* Databases: every endpoint gets a context with the new certificate
	 * or policy for its next handshake. */
	/* ACME: the http-01 ports and tls-alpn-01 answers of this node. */
	certacme_apply(n, snap->kv, snap->n);
	apply_bdbs_run(ap->bdbs, n, snap->kv, snap->n,
	    ap->served[CERT_PROXY].material, ap->served[CERT_SYNCER].material,
	    &ap->cluster.policy, proxy_changed || syncer_changed || data);
	if (prev != ap->policy_rev) {
		ap->policy_rev = prev;
		ap->closed_api = ap->closed_proxy = 0;
	}
	if (raised_ctl) {
		/* The API, UI and metrics ports are all under the control
		 * policy. */
		ap->closed_api = (n->api != NULL ? https_close_below(n->api,
		    c.policy.min_control) : 0) + (n->cm != NULL ?
		    https_close_below(n->cm, c.policy.min_control) : 0) +
		    (n->metrics != NULL ? https_close_below(n->metrics,
		    c.policy.min_control) : 0);
		log_info("minimum control TLS version raised to %s: closed %d "
		    "session(s) below it", tls_version_str(c.policy.min_control),
		    ap->closed_api);
	}
	if (raised_data) {
		struct closed_req *cr = malloc(sizeof(*cr));
		if (cr != NULL) {
			cr->n = n;
			cr->policy_rev = prev;
			cr->min = c.policy.min_data;
			res->closing = 1;
			apply_bdbs_close_below(ap->bdbs, c.policy.min_data,
			    apply_closed_proxy, cr);
		}
	}
	return 0;
}

/* ---- the node's report ---- */

static void
apply_report(struct node *n, const char *status)
{
	struct applied		*ap = n->ap;
	struct node_report	 r;
	struct store_txn	*t;
	struct err		 e = { 0 };
	char			 key[SCHEMA_KEY_MAX], *now = iso_now();
	json_t			*doc;
	int			 i;

	if (n->store == NULL || n->uid <= 0)
		return;
	memset(&r, 0, sizeof(r));
	r.uid = n->uid;
	r.addr = n->cfg.addr;
	r.api_port = n->cfg.api_port;
	r.status = status;
	r.applied_rev = ap->rev;
	r.policy_rev = ap->policy_rev;
	r.closed_api = ap->closed_api;
	r.closed_proxy = ap->closed_proxy;
	if (ap->sessions != NULL) {
		json_object_set_new(ap->sessions, "as_of",
		    json_string(ap->sessions_at));
		r.sessions = ap->sessions;
	}
	json_decref(ap->replication);
	ap->replication = apply_bdbs_replication(ap->bdbs, 0);
	r.replication = ap->replication;
	for (i = 0; i < CERT__COUNT; i++) {
		r.certs[i].version = ap->served[i].version;
		r.certs[i].fingerprint = ap->served[i].fingerprint;
	}
	doc = node_report_encode(&r, now);
	free(now);
	t = store_txn_new();
	ap->reported = doc != NULL && store_txn_put_json(t,
	    schema_key_of(SK_NODE, n->uid, key), doc) == 0 &&
	    store_txn_commit(n->store, t, &e) == 0;
	if (!ap->reported)
		log_error("cannot record this node's state: %s", err_msg(&e));
	err_clear(&e);
	store_txn_free(t);
	json_decref(doc);
}

void
apply_report_down(struct node *n)
{
	if (n->ap != NULL && n->ap->have_cluster)
		apply_report(n, "down");
}

/* ---- the local copy ---- */

/* Only what serving needs: the cluster, certificates, databases. */
static int
cache_wanted(const char *key)
{
	enum schema_kind k = schema_classify(key, NULL);

	return k == SK_CLUSTER || k == SK_CA || k == SK_CERT || k == SK_BDB;
}

static void
cache_write(struct node *n, const struct snapshot *snap)
{
	json_t		*kvs = json_object(), *doc;
	char		 path[4096], *s;
	struct err	 e = { 0 };
	size_t		 i;

	for (i = 0; i < snap->n; i++)
		if (cache_wanted(snap->kv[i].key))
			json_object_set_new(kvs, snap->kv[i].key, json_pack(
			    "{s:s, s:I}", "value", snap->kv[i].value, "mod_rev",
			    (json_int_t)snap->kv[i].mod_rev));
	doc = json_pack("{s:I, s:o}", "revision", (json_int_t)snap->rev,
	    "kvs", kvs);
	s = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	snprintf(path, sizeof(path), "%s/%s", n->cfg.data_dir, CACHE_FILE);
	if (s == NULL || fs_write_atomic(path, s, strlen(s), 0600, &e) == -1)
		log_warn("cannot keep a local copy of the configuration: %s",
		    err_msg(&e));
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
	err_clear(&e);
}

int
apply_from_cache(struct node *n, struct err *e)
{
	struct snapshot		 snap = { NULL, 0, 0 };
	struct apply_result	 res;
	json_t			*doc, *kvs, *v;
	const char		*key;
	char			 path[4096];
	int			 rc;

	snprintf(path, sizeof(path), "%s/%s", n->cfg.data_dir, CACHE_FILE);
	if ((doc = json_load_file(path, 0, NULL)) == NULL)
		return err_set(e, E_STORE, "no local copy of the configuration "
		    "in %s", path);
	kvs = json_object_get(doc, "kvs");
	snap.rev = json_integer_value(json_object_get(doc, "revision"));
	if ((snap.kv = calloc(json_object_size(kvs) + 1,
	    sizeof(*snap.kv))) == NULL) {
		json_decref(doc);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	json_object_foreach(kvs, key, v) {
		const char *val = json_string_value(json_object_get(v, "value"));
		if (val == NULL)
			continue;
		snap.kv[snap.n].key = strdup(key);
		snap.kv[snap.n].value = strdup(val);
		snap.kv[snap.n].mod_rev = json_integer_value(json_object_get(v,
		    "mod_rev"));
		if (snap.kv[snap.n].key != NULL && snap.kv[snap.n].value != NULL)
			snap.n++;
	}
	json_decref(doc);
	rc = apply_snapshot(n, &snap, &res);
	if (rc == 0 && n->ap->have_cluster) {
		n->ap->rev = snap.rev;
		log_info("serving the configuration last applied (store "
		    "revision %lld) from %s", (long long)snap.rev, path);
	}
	store_kvs_free(snap.kv, snap.n);
	if (rc == -1 || !n->ap->have_cluster)
		return err_set(e, E_STORE, "the local copy in %s holds no "
		    "cluster", path);
	return 0;
}

/* ---- the run ---- */

static void
apply_run(evutil_socket_t fd, short what, void *arg)
{
	struct node		*n = arg;
	struct applied		*ap = n->ap;
	struct snapshot		 snap = { NULL, 0, 0 };
	struct apply_result	 res;
	struct err		 e = { 0 };

	if (n->store == NULL || n->uid <= 0)
		return;
	if (store_list_at(n->store, SCHEMA_ROOT, &snap.kv, &snap.n, &snap.rev,
	    &e) == -1) {
		ap->store_up = 0;
		ap->runs[0]++;
		/* The watch hears again when the store is back. */
		log_error("cannot read the cluster configuration: %s; serving "
		    "what was applied last", err_msg(&e));
		err_clear(&e);
		return;
	}
	ap->store_up = 1;
	if (apply_snapshot(n, &snap, &res) == 0 && ap->have_cluster) {
		int moved = snap.rev != ap->rev;
		ap->runs[!res.failed]++;
		if (!res.failed)
			ap->last_ok = time(NULL);
		ap->rev = snap.rev;
		if (moved || res.any_cert)
			cache_write(n, &snap);
		/* Only a change is worth a store write.  While database
		 * connections are being closed, the report waits for their
		 * count (apply_closed_proxy), so that it is never read as
		 * "applied" without it. */
		if ((moved || res.any_cert || !ap->reported) && !res.closing)
			apply_report(n, "active");
	} else if (ap->have_cluster)
		ap->runs[0]++;
	store_kvs_free(snap.kv, snap.n);
}

/*
 * Every few seconds: count this node's live sessions by TLS version and
 * report them when they changed, so that a dry run through any node can
 * say what raising a minimum would close here.
 */
static void
apply_sessions_counted_tick(json_t *counts, void *arg)
{
	struct node	*n = arg;
	struct applied	*ap = n->ap;
	json_t		*now = json_deep_copy(counts), *old, *repl;
	char		*ts;
	int		 repl_changed;

	if (now == NULL || n->store == NULL || !ap->have_cluster) {
		json_decref(now);
		return;
	}
	repl = apply_bdbs_replication(ap->bdbs, 0);
	repl_changed = !json_equal(repl, ap->replication);
	json_decref(repl);
	if ((old = ap->sessions) != NULL)
		json_object_del(old, "as_of");
	if (old != NULL && json_equal(old, now)) {
		json_decref(now);
		if (repl_changed)
			apply_report(n, "active");
		return;
	}
	json_decref(old);
	ap->sessions = now;
	if ((ts = iso_now()) != NULL) {
		snprintf(ap->sessions_at, sizeof(ap->sessions_at), "%s", ts);
		free(ts);
	}
	apply_report(n, "active");
}

static void
apply_sessions_tick(evutil_socket_t fd, short what, void *arg)
{
	struct node *n = arg;

	if (n->store != NULL && n->ap->have_cluster)
		apply_sessions_async(n, apply_sessions_counted_tick, n);
}

void
apply_now(struct node *n)
{
	/* This run covers whatever was scheduled so far: not twice. */
	if (n->ap != NULL && n->ap->ev != NULL)
		event_del(n->ap->ev);
	apply_run(-1, 0, n);
}

void
apply_schedule(struct node *n)
{
	if (n->ap != NULL && n->ap->ev != NULL)
		event_active(n->ap->ev, EV_TIMEOUT, 0);
}

int
apply_init(struct node *n, struct err *e)
{
	struct applied *ap;

	if ((ap = calloc(1, sizeof(*ap))) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	ap->n = n;
	n->ap = ap;
	if ((ap->ev = event_new(n->base, -1, 0, apply_run, n)) == NULL ||
	    (ap->sess_ev = event_new(n->base, -1, EV_PERSIST,
	    apply_sessions_tick, n)) == NULL ||
	    (ap->bdbs = apply_bdbs_new(n, e)) == NULL) {
		apply_shutdown(n);
		return err_set(e, E_INTERNAL, "cannot start the data plane");
	}
	{
		struct timeval tv = { SESSIONS_EVERY_S, 0 };
		event_add(ap->sess_ev, &tv);
	}
	return 0;
}

void
apply_shutdown(struct node *n)
{
	struct applied	*ap = n->ap;
	int		 i;

	if (ap == NULL)
		return;
	apply_bdbs_free(ap->bdbs);
	if (ap->ev != NULL)
		event_free(ap->ev);
	if (ap->sess_ev != NULL)
		event_free(ap->sess_ev);
	json_decref(ap->sessions);
	free(ap->mtls_ask);
	json_decref(ap->replication);
	for (i = 0; i < CERT__COUNT; i++) {
		tlsctx_unref(ap->served[i].ctx);
		x509_material_free(ap->served[i].material);
	}
	cluster_doc_clear(&ap->cluster);
	free(ap);
	n->ap = NULL;
}

/* ---- readers ---- */

int
apply_has_cluster(struct node *n)
{
	return n->ap != NULL && n->ap->have_cluster;
}

const struct cluster_doc *
apply_cluster(struct node *n)
{
	return &n->ap->cluster;
}

struct tlsctx *
apply_ctx(struct node *n, int id)
{
	return n->ap->served[id].ctx;
}

int
apply_version(struct node *n, int id)
{
	return n->ap->served[id].version;
}

const char *
apply_fingerprint(struct node *n, int id)
{
	return n->ap->served[id].fingerprint;
}

int64_t
apply_revision(struct node *n)
{
	return n->ap->rev;
}

int
apply_bdb_up(struct node *n, int uid)
{
	return apply_bdbs_up(n->ap->bdbs, uid);
}

json_t *
apply_bdb_replication(struct node *n, int uid)
{
	return n->ap != NULL ? apply_bdbs_replication(n->ap->bdbs, uid) :
	    NULL;
}

struct sessions_req {
	struct node		*n;
	int			 api12, api13, cm12, cm13, mx12, mx13;
	apply_sessions_cb	 cb;
	void			*arg;
};

static void
apply_sessions_counted(int tls12, int tls13, void *arg)
{
	struct sessions_req	*sr = arg;
	json_t			*j;

	j = json_pack("{s:{s:i, s:i}, s:{s:i, s:i}, s:{s:i, s:i}, "
	    "s:{s:i, s:i}}", "api", "TLSv1.2", sr->api12, "TLSv1.3",
	    sr->api13, "cm", "TLSv1.2", sr->cm12, "TLSv1.3", sr->cm13,
	    "metrics", "TLSv1.2", sr->mx12, "TLSv1.3", sr->mx13, "proxy",
	    "TLSv1.2", tls12, "TLSv1.3", tls13);
	sr->cb(j, sr->arg);
	json_decref(j);
	free(sr);
}

int
apply_sessions_async(struct node *n, apply_sessions_cb cb, void *arg)
{
	struct sessions_req *sr;

	if ((sr = calloc(1, sizeof(*sr))) == NULL)
		return -1;
	sr->n = n;
	sr->cb = cb;
	sr->arg = arg;
	/* The API's sessions are the control thread's: counted now. */
	if (n->api != NULL)
		https_count_versions(n->api, &sr->api12, &sr->api13);
	if (n->cm != NULL)
		https_count_versions(n->cm, &sr->cm12, &sr->cm13);
	if (n->metrics != NULL)
		https_count_versions(n->metrics, &sr->mx12, &sr->mx13);
	if (apply_bdbs_count_versions(n->ap->bdbs, apply_sessions_counted,
	    sr, free) == -1) {
		free(sr);
		return -1;
	}
	return 0;
}

void
apply_stats(struct node *n, struct apply_stats *out)
{
	struct applied *ap = n->ap;

	memset(out, 0, sizeof(*out));
	if (ap == NULL)
		return;
	out->runs_ok = ap->runs[1];
	out->runs_failed = ap->runs[0];
	out->store_up = n->store != NULL && ap->store_up;
	out->rev = ap->rev;
	out->last_ok = ap->last_ok;
	out->ca_not_after = ap->ca_not_after;
}

time_t
apply_not_after(struct node *n, int id)
{
	struct x509_material *m = n->ap != NULL ? n->ap->served[id].material :
	    NULL;

	return m != NULL ? x509_material_not_after(m) : 0;
}

void
apply_bdb_stats(struct node *n, apply_bdb_stats_cb cb, void *arg)
{
	if (n->ap != NULL)
		apply_bdbs_stats(n->ap->bdbs, cb, arg);
}
