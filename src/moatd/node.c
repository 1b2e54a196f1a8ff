/*
 * node.c — bootstrap, and making this node serve what the store says.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "bdbs.h"
#include "certs.h"
#include "fsutil.h"
#include "https.h"
#include "log.h"
#include "node.h"
#include "users.h"
#include "x509.h"

#define KEY_CLUSTER	"/moat/cluster"
#define KEY_SCHEMA	"/moat/schema"
#define KEY_CA		"/moat/ca"
#define CA_DAYS		3650
#define SCHEMA_VERSION	1
#define MOAT_STR2(x)	#x
#define MOAT_STR(x)	MOAT_STR2(x)

void
cluster_policy_clear(struct cluster_policy *p)
{
	free(p->control_cipher_list);
	free(p->data_cipher_list);
	free(p->data_ciphersuites);
	memset(p, 0, sizeof(*p));
}

const struct tls_policy *
node_tls_policy(const struct cluster_policy *p, enum policy_kind k,
    struct tls_policy *out)
{
	if (k == POLICY_CONTROL) {
		out->min_version = p->min_control;
		out->cipher_list = p->control_cipher_list;
		out->ciphersuites = NULL;
	} else {
		out->min_version = p->min_data;
		out->cipher_list = p->data_cipher_list;
		out->ciphersuites = p->data_ciphersuites;
	}
	return out;
}

char *
iso_now(void)
{
	char		 buf[32];
	time_t		 t = time(NULL);
	struct tm	 tm;

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return strdup(buf);
}

int
cluster_policy_from_json(const json_t *doc, struct cluster_policy *p,
    struct err *e)
{
	const char *minc, *mind, *ccl, *dcl, *dcs;

	memset(p, 0, sizeof(*p));
	if (json_unpack((json_t *)doc, "{s:s, s:s, s:s, s:s, s:s}",
	    "min_control_TLS_version", &minc, "min_data_TLS_version", &mind,
	    "control_cipher_suites", &ccl, "data_cipher_list", &dcl,
	    "data_cipher_suites_tls_1_3", &dcs) != 0)
		return err_set(e, E_STORE, "the stored cluster document is "
		    "damaged");
	if (tls_version_parse(minc, &p->min_control, e) == -1 ||
	    tls_version_parse(mind, &p->min_data, e) == -1)
		return -1;
	p->control_cipher_list = strdup(ccl);
	p->data_cipher_list = strdup(dcl);
	p->data_ciphersuites = strdup(dcs);
	return 0;
}

/* Parse the stored cluster document into fqdn and policy. */
static int
node_read_cluster(struct node *n, json_t *doc, struct cluster_policy *p,
    struct err *e)
{
	const char *name, *created;

	if (json_unpack(doc, "{s:s, s:s}", "name", &name, "created_at",
	    &created) != 0)
		return err_set(e, E_STORE, "the stored cluster document is "
		    "damaged");
	if (cluster_policy_from_json(doc, p, e) == -1)
		return -1;
	if (n->fqdn == NULL || strcmp(n->fqdn, name) != 0) {
		free(n->fqdn);
		n->fqdn = strdup(name);
	}
	free(n->created_at);
	n->created_at = strdup(created);
	return 0;
}

json_t *
store_get_json(struct store *s, const char *key, int64_t *rev, struct err *e)
{
	char	*v;
	json_t	*j;
	int	 r = store_get(s, key, &v, rev, e);

	if (r != 0) {
		if (r == 1)
			err_set(e, E_NOT_FOUND, "%s not found", key);
		return NULL;
	}
	j = json_loads(v, 0, NULL);
	explicit_bzero(v, strlen(v));
	free(v);
	if (j == NULL)
		err_set(e, E_STORE, "%s is damaged in the store", key);
	return j;
}

static int
node_write_file(struct node *n, const char *name, const char *data,
    mode_t mode)
{
	char		 path[4096];
	struct err	 e = { 0 };
	int		 rc;

	char	 staging[4096];

	snprintf(path, sizeof(path), "%s/certs/%s", n->cfg.data_dir, name);
	snprintf(staging, sizeof(staging), "%s/.staging", n->cfg.data_dir);
	if ((rc = fs_write_atomic_via(path, staging, data, strlen(data), mode,
	    &e)) == -1)
		log_error("%s", err_msg(&e));
	err_clear(&e);
	return rc;
}

/* ca.pem and chain_certs.pem: the cluster CA, plus every issuer that an
 * operator's certificate brought with it. */
static void
node_write_trust_files(struct node *n)
{
	json_t		*ca = store_get_json(n->store, KEY_CA, NULL, NULL);
	const char	*ca_pem = NULL;
	char		*chain = NULL, *t, *c;
	int		 i;

	if (ca == NULL || json_unpack(ca, "{s:s}", "cert", &ca_pem) != 0) {
		json_decref(ca);
		return;
	}
	node_write_file(n, "ca.pem", ca_pem, 0644);
	chain = strdup(ca_pem);
	for (i = 0; i < CERT__COUNT && chain != NULL; i++) {
		struct x509_material *m = n->served[i].material;
		char *pem, *p;
		if (m == NULL || x509_material_chain_len(m) < 2)
			continue;
		if ((pem = x509_material_chain_pem(m)) == NULL)
			continue;
		/* skip the leaf: first END CERTIFICATE line */
		p = strstr(pem, "-----END CERTIFICATE-----");
		p = p ? p + strlen("-----END CERTIFICATE-----\n") : NULL;
		if (p != NULL && *p != '\0') {
			/* keep each issuer once */
			for (c = p; c != NULL && *c != '\0';) {
				char *end = strstr(c, "-----END CERTIFICATE-----");
				size_t len;
				if (end == NULL)
					break;
				end += strlen("-----END CERTIFICATE-----\n");
				len = (size_t)(end - c);
				if (memmem(chain, strlen(chain), c, len) == NULL &&
				    asprintf(&t, "%s%.*s", chain, (int)len, c) != -1) {
					free(chain);
					chain = t;
				}
				c = end;
			}
		}
		free(pem);
	}
	if (chain != NULL)
		node_write_file(n, "chain_certs.pem", chain, 0644);
	free(chain);
	json_decref(ca);
}

/* Record in the store what this node serves now. */
static void
node_report(struct node *n, const char *status)
{
	json_t			*doc, *certs = json_object();
	struct store_txn	*t;
	struct err		 e = { 0 };
	char			*s, *now = iso_now();
	char			 key[64];
	int			 i;

	for (i = 0; i < CERT__COUNT; i++) {
		if (n->served[i].material == NULL)
			continue;
		json_object_set_new(certs, cert_services[i].name,
		    json_pack("{s:i, s:s}", "version", n->served[i].version,
		    "fingerprint_sha256", n->served[i].fingerprint));
	}
	doc = json_pack("{s:i, s:s, s:i, s:s, s:s, s:o, s:I, s:s}", "uid",
	    n->uid, "addr", n->cfg.addr, "api_port", n->cfg.api_port,
	    "status", status, "software_version", MOAT_VERSION,
	    "certificates", certs, "policy_rev", (json_int_t)n->policy_rev,
	    "updated_at", now ? now : "");
	free(now);
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	snprintf(key, sizeof(key), "/moat/nodes/%d", n->uid);
	t = store_txn_new();
	n->reported = s != NULL && t != NULL && store_txn_put(t, key, s) == 0 &&
	    store_txn_commit(n->store, t, &e) == 0;
	if (!n->reported)
		log_error("cannot record node state: %s", err_msg(&e));
	err_clear(&e);
	store_txn_free(t);
	free(s);
}

static int
node_apply_cert(struct node *n, int id, int policy_changed)
{
	const struct cert_service	*svc = &cert_services[id];
	struct served_cert		*sv = &n->served[id];
	struct x509_material		*m = NULL;
	struct tlsctx			*ctx;
	struct tls_policy		 tp;
	struct err			 e = { 0 };
	const char			*cert, *key;
	char				 skey[64], fname[64];
	json_t				*doc;
	int				 version, changed;

	snprintf(skey, sizeof(skey), "/moat/certs/%s", svc->name);
	if ((doc = store_get_json(n->store, skey, NULL, &e)) == NULL ||
	    json_unpack(doc, "{s:s, s:s, s:i}", "certificate", &cert,
	    "key", &key, "version", &version) != 0) {
		log_error("certificate %s: %s", svc->name,
		    doc ? "damaged in the store" : err_msg(&e));
		goto fail;
	}
	changed = version != sv->version;
	if (!changed && !policy_changed) {
		json_decref(doc);
		return 0;
	}
	/* Everything in the store was validated by the node that wrote it;
	 * still, a node never serves material it cannot load. */
	if (x509_material_parse(cert, key, &m, &e) == -1 ||
	    (ctx = tlsctx_server_new(m, node_tls_policy(&n->policy,
	    svc->policy, &tp), &e)) == NULL) {
		log_error("certificate %s version %d not applied: %s",
		    svc->name, version, err_msg(&e));
		goto fail;
	}
	if (changed) {
		snprintf(fname, sizeof(fname), "%s_cert.pem", svc->name);
		node_write_file(n, fname, cert, 0644);
		snprintf(fname, sizeof(fname), "%s_key.pem", svc->name);
		node_write_file(n, fname, key, 0600);
	}
	tlsctx_unref(sv->ctx);
	x509_material_free(sv->material);
	sv->ctx = ctx;
	sv->material = m;
	sv->version = version;
	x509_material_fingerprint(m, sv->fingerprint);
	if (id == CERT_API && n->api != NULL)
		https_set_ctx(n->api, ctx);
	if (changed)
		log_info("serving %s certificate version %d (sha256 %s)",
		    svc->name, version, sv->fingerprint);
	json_decref(doc);
	return changed;
fail:
	x509_material_free(m);
	json_decref(doc);
	err_clear(&e);
	return -1;
}

int
node_apply(struct node *n, struct err *e)
{
	struct cluster_policy	 p = { 0 }, old;
	json_t			*doc;
	int			 i, ctl_changed, data_changed, any = 0;
	int			 raised, data_raised, proxy_changed = 0;

	int64_t			 policy_rev;

	if ((doc = store_get_json(n->store, KEY_CLUSTER, &policy_rev, e)) ==
	    NULL)
		return -1;
	if (node_read_cluster(n, doc, &p, e) == -1) {
		json_decref(doc);
		cluster_policy_clear(&p);
		return -1;
	}
	json_decref(doc);
	old = n->policy;
	ctl_changed = !n->bootstrapped || p.min_control != old.min_control ||
	    strcmp(p.control_cipher_list, old.control_cipher_list ?
	    old.control_cipher_list : "") != 0;
	data_changed = !n->bootstrapped || p.min_data != old.min_data ||
	    strcmp(p.data_cipher_list, old.data_cipher_list ?
	    old.data_cipher_list : "") != 0 ||
	    strcmp(p.data_ciphersuites, old.data_ciphersuites ?
	    old.data_ciphersuites : "") != 0;
	raised = n->bootstrapped && p.min_control > old.min_control;
	data_raised = n->bootstrapped && p.min_data > old.min_data;
	n->policy = p;
	cluster_policy_clear(&old);
	n->bootstrapped = 1;
	for (i = 0; i < CERT__COUNT; i++) {
		int pc = cert_services[i].policy == POLICY_CONTROL ?
		    ctl_changed : data_changed;
		if (node_apply_cert(n, i, pc) > 0) {
			any = 1;
			if (i == CERT_PROXY)
				proxy_changed = 1;
		}
	}
	/* Every endpoint gets a context with the new certificate or policy
	 * for its next handshake. */
	bdbs_apply(n, proxy_changed || data_changed);
	if (any)
		node_write_trust_files(n);
	n->closed_sessions = 0;
	n->current_conn_closed = 0;
	if (raised && n->api != NULL) {
		n->closed_sessions = https_close_below(n->api,
		    p.min_control, n->current_conn, &n->current_conn_closed);
		log_info("minimum control TLS version raised to %s: closed %d "
		    "session(s) below it", tls_version_str(p.min_control),
		    n->closed_sessions);
	}
	if (data_raised) {
		int c = bdbs_close_below(n, p.min_data);
		n->closed_sessions += c;
		log_info("minimum data TLS version raised to %s: closed %d "
		    "database connection(s) below it",
		    tls_version_str(p.min_data), c);
	}
	/* Only a change is worth a store write: every node applies on every
	 * change anywhere in /moat/, most of which concern it in nothing. */
	if (any || ctl_changed || data_changed || policy_rev != n->policy_rev ||
	    !n->reported) {
		n->policy_rev = policy_rev;
		node_report(n, "active");
	}
	return 0;
}

static void
node_watch_cb(const char *key, void *arg)
{
	struct node	*n = arg;
	struct err	 e = { 0 };

	if (node_apply(n, &e) == -1)
		log_error("cannot apply the cluster configuration: %s",
		    err_msg(&e));
	err_clear(&e);
}


/* IPv4 addresses this node is reached by, for the certificates' SANs. */
static char **
node_addresses(const char *addr)
{
	struct ifaddrs	*ifa, *i;
	char		**v = calloc(17, sizeof(char *)), buf[INET_ADDRSTRLEN];
	int		 n = 0;

	if (v == NULL)
		return NULL;
	if (strcmp(addr, "0.0.0.0") != 0) {
		v[0] = strdup(addr);
		return v;
	}
	if (getifaddrs(&ifa) == -1)
		return v;
	for (i = ifa; i != NULL && n < 16; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET)
			continue;
		inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr,
		    buf, sizeof(buf));
		v[n++] = strdup(buf);
	}
	freeifaddrs(ifa);
	return v;
}

static int
fqdn_valid(const char *s)
{
	size_t	 len = strlen(s), label = 0;
	int	 dots = 0;
	const char *p;

	if (len == 0 || len > 253 || s[0] == '.' || s[len - 1] == '.' ||
	    s[0] == '-')
		return 0;
	for (p = s; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return 0;
			dots++;
			label = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-'))
			return 0;
		if (label == 0 && *p == '-')
			return 0;
		if (++label > 63)
			return 0;
	}
	return dots >= 1;
}

int
node_create_cluster(struct node *n, const char *fqdn, const char *user,
    const char *password, struct err *e)
{
	struct store_txn	*t = NULL;
	char			*ca_cert = NULL, *ca_key = NULL, *s = NULL;
	char			**ips = NULL, *now = NULL, *cn = NULL;
	char			 path[4096];
	json_t			*doc;
	int			 rc = -1, i;

	if (n->bootstrapped)
		return err_set(e, E_CLUSTER_EXISTS, "this node already belongs "
		    "to cluster %s", n->fqdn);
	if (!fqdn_valid(fqdn))
		return err_set(e, E_INVALID_FQDN, "cluster name \"%.64s\" is "
		    "not a valid FQDN (letters, digits and '-', at least two "
		    "labels, e.g. cluster.example.com)", fqdn);
	if (users_check_new(user, password, e) == -1)
		return -1;
	if ((t = store_txn_new()) == NULL || (now = iso_now()) == NULL ||
	    (ips = node_addresses(n->cfg.addr)) == NULL ||
	    asprintf(&cn, "%s cluster CA", fqdn) == -1) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	/* All of it in one transaction that only succeeds on an empty
	 * store: two concurrent creations cannot both win. */
	store_txn_cmp(t, KEY_CLUSTER, 0);
	if (x509_ca_create(cn, CA_DAYS, &ca_cert, &ca_key, e) == -1)
		goto out;
	doc = json_pack("{s:s, s:s}", "cert", ca_cert, "key", ca_key);
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	store_txn_put(t, KEY_CA, s);
	x509_pem_free(s);
	s = NULL;
	for (i = 0; i < CERT__COUNT; i++)
		if (certs_issue_into(t, i, ca_cert, ca_key, fqdn,
		    (const char *const *)ips, 1, "bootstrap", now, e) == -1)
			goto out;
	doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "name", fqdn,
	    "created_at", now, "min_control_TLS_version", "1.2",
	    "min_data_TLS_version", "1.2",
	    "control_cipher_suites", MOAT_DEFAULT_CIPHER_LIST,
	    "data_cipher_list", MOAT_DEFAULT_CIPHER_LIST,
	    "data_cipher_suites_tls_1_3", MOAT_DEFAULT_CIPHERSUITES);
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	store_txn_put(t, KEY_CLUSTER, s);
	free(s);
	s = NULL;
	store_txn_put(t, KEY_SCHEMA, "{\"version\":" MOAT_STR(SCHEMA_VERSION) "}");
	if (users_put_into(t, 1, user, "admin", "admin", password, e) == -1)
		goto out;
	n->uid = 1;
	snprintf(path, sizeof(path), "%s/node.json", n->cfg.data_dir);
	if (fs_write_atomic(path, "{\"uid\":1}\n", 10, 0600, e) == -1)
		goto out;
	if (store_txn_commit(n->store, t, e) == -1) {
		if (e != NULL && e->code == E_CONFLICT)
			err_set(e, E_CLUSTER_EXISTS, "a cluster already exists "
			    "in this node's store");
		goto out;
	}
	log_audit("cluster %s created by %s; admin user %s", fqdn, "bootstrap",
	    user);
	snprintf(path, sizeof(path), "/moat/alive/%d", n->uid);
	if (store_presence(n->store, path, n->cfg.addr, 5, e) == -1)
		goto out;
	rc = 0;
out:
	for (i = 0; ips != NULL && ips[i] != NULL; i++)
		free(ips[i]);
	free(ips);
	free(ca_cert);
	x509_pem_free(ca_key);
	free(now);
	free(cn);
	store_txn_free(t);
	return rc;
}

json_t *
node_cluster_json(struct node *n)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
	    "name", n->fqdn, "created_at", n->created_at,
	    "min_control_TLS_version", tls_version_str(n->policy.min_control),
	    "min_data_TLS_version", tls_version_str(n->policy.min_data),
	    "control_cipher_suites", n->policy.control_cipher_list,
	    "control_cipher_suites_tls_1_3", MOAT_DEFAULT_CIPHERSUITES,
	    "data_cipher_list", n->policy.data_cipher_list,
	    "data_cipher_suites_tls_1_3", n->policy.data_ciphersuites);
}

/* 1 when node uid is announced in the store (alive, reaching the store). */
static int
node_alive(struct store_kv *alive, size_t nalive, int uid)
{
	char	key[64];
	size_t	i;

	snprintf(key, sizeof(key), "/moat/alive/%d", uid);
	for (i = 0; i < nalive; i++)
		if (strcmp(alive[i].key, key) == 0)
			return 1;
	return 0;
}

json_t *
node_list_json(struct node *n, int uid, struct err *e)
{
	struct store_kv	*kvs, *alive = NULL;
	size_t		 nkv, nalive = 0, i;
	json_t		*arr = json_array(), *doc;

	if (store_list(n->store, "/moat/nodes/", &kvs, &nkv, e) == -1) {
		json_decref(arr);
		return NULL;
	}
	/* Liveness is the presence key, not what a node last wrote about
	 * itself: a node killed with -9 wrote nothing. */
	store_list(n->store, "/moat/alive/", &alive, &nalive, NULL);
	for (i = 0; i < nkv; i++) {
		if ((doc = json_loads(kvs[i].value, 0, NULL)) == NULL)
			continue;
		json_object_set_new(doc, "status", json_string(node_alive(alive,
		    nalive, (int)json_integer_value(json_object_get(doc,
		    "uid"))) ? "active" : "down"));
		if (uid > 0 && json_integer_value(json_object_get(doc,
		    "uid")) == uid) {
			json_decref(arr);
			store_kvs_free(kvs, nkv);
			store_kvs_free(alive, nalive);
			return doc;
		}
		json_array_append_new(arr, doc);
	}
	store_kvs_free(kvs, nkv);
	store_kvs_free(alive, nalive);
	if (uid > 0) {
		json_decref(arr);
		err_set(e, E_NODE_NOT_FOUND, "node %d does not exist", uid);
		return NULL;
	}
	return arr;
}

/*
 * Wait (up to timeout_ms) until every live node serves versions, then say
 * per node whether it does.  A down node cannot confirm: it counts as not
 * updated (and applies the change when it returns), but is not waited for.
 * The control thread blocks meanwhile; data workers do not.
 */
json_t *
node_rollout_wait(struct node *n, const int *versions, int64_t policy_rev,
    int timeout_ms, int *all_ok)
{
	json_t	*out;
	int	 waited = 0, pending;

	for (;;) {
		out = node_rollout_status(n, versions, policy_rev, all_ok,
		    &pending);
		if (!pending || waited >= timeout_ms)
			return out;
		json_decref(out);
		usleep(20 * 1000);
		waited += 20;
	}
}

json_t *
node_rollout_status(struct node *n, const int *versions, int64_t policy_rev,
    int *all_ok, int *pending)
{
	json_t	*nodes = node_list_json(n, 0, NULL), *out = json_array(), *nd;
	size_t	 k;
	int	 i;

	*all_ok = 1;
	*pending = 0;
	json_array_foreach(nodes, k, nd) {
		json_t *certs = json_object_get(nd, "certificates");
		const char *status = json_string_value(json_object_get(nd,
		    "status"));
		int ok = json_integer_value(json_object_get(nd, "policy_rev")) >=
		    policy_rev;
		for (i = 0; versions != NULL && i < CERT__COUNT; i++) {
			json_t *c = json_object_get(certs, cert_services[i].name);
			if (versions[i] > 0 && json_integer_value(
			    json_object_get(c, "version")) < versions[i])
				ok = 0;
		}
		if (!ok)
			*all_ok = 0;
		if (!ok && status != NULL && strcmp(status, "active") == 0)
			*pending = 1;
		json_array_append_new(out, json_pack("{s:O, s:s}", "uid",
		    json_object_get(nd, "uid"), "status", ok ? "updated" :
		    (status && strcmp(status, "active") == 0) ? "not_updated" :
		    "down"));
	}
	json_decref(nodes);
	return out;
}

int
node_init(struct node *n, struct event_base *base,
    const struct node_config *cfg, struct err *e)
{
	char	 path[4096];
	json_t	*id;

	memset(n, 0, sizeof(*n));
	n->cfg = *cfg;
	n->base = base;
	snprintf(path, sizeof(path), "%s/certs", cfg->data_dir);
	if (fs_mkdir(cfg->data_dir, 0700, e) == -1 ||
	    fs_mkdir(path, 0755, e) == -1)
		return -1;
	/* Files are written here, then renamed into certs/: whatever a
	 * killed moatd left here is incomplete and nobody's. */
	snprintf(path, sizeof(path), "%s/.staging", cfg->data_dir);
	if (fs_mkdir(path, 0700, e) == -1)
		return -1;
	fs_empty_dir(path);
	/* A node that joined a cluster remembers its store. */
	snprintf(path, sizeof(path), "%s/node.json", cfg->data_dir);
	if ((id = json_load_file(path, 0, NULL)) != NULL) {
		n->uid = (int)json_integer_value(json_object_get(id, "uid"));
		if (json_string_value(json_object_get(id, "store")) != NULL)
			n->cfg.store_url = n->store_url_buf =
			    strdup(json_string_value(json_object_get(id, "store")));
		json_decref(id);
	}
	if ((n->store = store_open(n->cfg.store_url, cfg->data_dir, e)) == NULL)
		return -1;
	if (bdbs_init(n, e) == -1)
		return -1;
	return node_attach_store(n, e);
}

/* Changes of the cluster configuration, from this node or another. */
static void
node_store_cb(const char *key, void *arg)
{
	struct node *n = arg;

	/* What nodes write about themselves changes nothing to apply; the
	 * store hands over the first key of each change set, so anything
	 * else may carry certificates, policy or databases: re-read (node_apply
	 * changes only what differs, databases included). */
	if (n->uid <= 0 || strncmp(key, "/moat/nodes/", 12) == 0 ||
	    strncmp(key, "/moat/alive/", 12) == 0)
		return;
	node_watch_cb(key, n);
}

static void
node_store_event(evutil_socket_t fd, short what, void *arg)
{
	struct node *n = arg;

	store_dispatch(n->store);
}

/*
 * The store's layout carries a version.  A newer moatd migrates an older
 * store before it serves (nodes are upgraded one at a time, and every
 * version reads the layout of the one before); an older moatd refuses a
 * newer store rather than misread it.
 */
static int
node_check_schema(struct node *n, struct err *e)
{
	json_t			*doc;
	struct store_txn	*t;
	int64_t			 rev = 0;
	int			 v = 0, rc;

	if ((doc = store_get_json(n->store, KEY_SCHEMA, &rev, NULL)) != NULL) {
		v = (int)json_integer_value(json_object_get(doc, "version"));
		json_decref(doc);
	}
	if (v > SCHEMA_VERSION)
		return err_set(e, E_STORE, "the cluster store has schema version "
		    "%d, newer than this moatd understands (%d): run the newer "
		    "moatd", v, SCHEMA_VERSION);
	if (v == SCHEMA_VERSION)
		return 0;
	/* Version 0 (no key) is the layout of the first releases; nothing
	 * moved since, so the migration is recording the version. */
	if ((t = store_txn_new()) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	store_txn_cmp(t, KEY_SCHEMA, rev);
	store_txn_put(t, KEY_SCHEMA, "{\"version\":" MOAT_STR(SCHEMA_VERSION)
	    "}");
	rc = store_txn_commit(n->store, t, e);
	store_txn_free(t);
	if (rc == 0)
		log_info("cluster store migrated from schema %d to %d", v,
		    SCHEMA_VERSION);
	else if (e != NULL && e->code == E_CONFLICT) {
		err_clear(e);	/* another node migrated it meanwhile */
		rc = 0;
	}
	return rc;
}

int
node_attach_store(struct node *n, struct err *e)
{
	char	key[64];
	int	fd;

	if (n->uid > 0 && (node_check_schema(n, e) == -1 ||
	    node_apply(n, e) == -1))
		return -1;
	store_watch(n->store, "/moat/", node_store_cb, n);
	if ((fd = store_event_fd(n->store)) != -1) {
		n->store_ev = event_new(n->base, fd, EV_READ | EV_PERSIST,
		    node_store_event, n);
		event_add(n->store_ev, NULL);
	}
	if (n->uid > 0) {
		snprintf(key, sizeof(key), "/moat/alive/%d", n->uid);
		if (store_presence(n->store, key, n->cfg.addr, 5, e) == -1)
			return -1;
	}
	return 0;
}

void
node_shutdown(struct node *n)
{
	int i;

	bdbs_shutdown(n);
	if (n->bootstrapped)
		node_report(n, "down");
	if (n->uid > 0 && strcmp(store_driver_name(n->store), "sqlite") == 0) {
		/* etcd revokes the lease itself when the store is closed */
		struct store_txn *t = store_txn_new();
		char key[64];
		snprintf(key, sizeof(key), "/moat/alive/%d", n->uid);
		if (t != NULL && store_txn_del(t, key) == 0)
			store_txn_commit(n->store, t, NULL);
		store_txn_free(t);
	}
	if (n->store_ev != NULL)
		event_free(n->store_ev);
	for (i = 0; i < CERT__COUNT; i++) {
		tlsctx_unref(n->served[i].ctx);
		x509_material_free(n->served[i].material);
	}
	cluster_policy_clear(&n->policy);
	store_close(n->store);
	free(n->store_url_buf);
	free(n->fqdn);
	free(n->created_at);
}

int
node_remove(struct node *n, int uid, const char *who, struct err *e)
{
	struct store_txn	*t;
	json_t			*doc;
	char			 key[64], *v = NULL;
	int64_t			 rev;
	int			 rc;

	if ((doc = node_list_json(n, uid, e)) == NULL)
		return -1;
	if (strcmp(json_string_value(json_object_get(doc, "status")),
	    "active") == 0) {
		json_decref(doc);
		return err_set(e, E_CONFLICT, "node %d is active; stop its "
		    "moatd first, then remove it", uid);
	}
	json_decref(doc);
	snprintf(key, sizeof(key), "/moat/nodes/%d", uid);
	if (store_get(n->store, key, &v, &rev, e) == -1)
		return -1;
	free(v);
	if ((t = store_txn_new()) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	store_txn_cmp(t, key, rev);
	store_txn_del(t, key);
	rc = store_txn_commit(n->store, t, e);
	store_txn_free(t);
	if (rc == 0)
		log_audit("%s removed node %d from the cluster", who, uid);
	return rc;
}
