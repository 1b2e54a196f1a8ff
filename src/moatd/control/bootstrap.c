/*
 * bootstrap.c — see bootstrap.h.
 *
 * Creating a cluster writes the CA, the five certificates, the policy,
 * the layout version and the first admin in one transaction that only
 * succeeds on an empty store.  Joining: the new node proves the admin
 * credentials to a node of the cluster (GET /v1/cluster/store over
 * HTTPS, on the work pool: it is a network call), learns where the store
 * is, registers there under a new uid, and from then on serves what the
 * store says.  There is no copying of files and no replication of our
 * own: the store (etcd) is shared.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "apply.h"
#include "bootstrap.h"
#include "certs.h"
#include "cluster.h"
#include "curlbuf.h"
#include "fsutil.h"
#include "events.h"
#include "log.h"
#include "schema.h"
#include "seal.h"
#include "workpool.h"
#include "x509.h"

#define CA_DAYS		3650
#define JOIN_TRIES	5

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

static void
strv_free(char **v)
{
	int i;

	for (i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

static int
fqdn_valid(const char *s)
{
	size_t		 len = strlen(s), label = 0;
	int		 dots = 0;
	const char	*p;

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

/* DIR/node.json: this node's uid and, once shared, its store. */
static int
bootstrap_write_identity(struct node *n, int uid, const char *url,
    struct err *e)
{
	json_t	*id = url != NULL ? json_pack("{s:i, s:s}", "uid", uid, "store",
		    url) : json_pack("{s:i}", "uid", uid);
	char	*txt = id != NULL ? json_dumps(id, JSON_COMPACT) : NULL;
	char	 path[4096];
	int	 rc;

	json_decref(id);
	if (txt == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	snprintf(path, sizeof(path), "%s/node.json", n->cfg.data_dir);
	rc = fs_write_atomic(path, txt, strlen(txt), 0600, e);
	free(txt);
	return rc;
}

static void
bootstrap_forget_identity(struct node *n)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/node.json", n->cfg.data_dir);
	unlink(path);
}

/* Answered once this node serves the new cluster. */
static int
bootstrap_answer(struct api_req *r, int all_ok, json_t *nodes,
    struct err *e)
{
	json_t *c = cluster_get_json(r->n, e);

	if (c == NULL)
		return -1;
	r->resp = json_pack("{s:o, s:i}", "cluster", c, "node_uid", r->n->uid);
	return 0;
}

/* ---- create ---- */

static int
bootstrap_create_commit(struct api_req *r, const char *hash, struct err *e)
{
	struct node		*n = r->n;
	struct store_txn	*t = NULL;
	struct user_doc		 u;
	struct rollout_want	 w;
	const char		*fqdn, *user;
	char			*ca_cert = NULL, *ca_key = NULL, *cn = NULL;
	char			**ips = NULL, *now = NULL, key[SCHEMA_KEY_MAX];
	json_t			*doc;
	int			 rc = -1, i;

	memset(&w, 0, sizeof(w));
	json_unpack(r->body, "{s:{s:s}, s:{s:s}}", "cluster", "name", &fqdn,
	    "credentials", "username", &user);
	if (node_is_member(n)) {
		err_set(e, E_CLUSTER_EXISTS, "this node already belongs to a "
		    "cluster");
		goto out;
	}
	if ((t = store_txn_new()) == NULL || (now = iso_now()) == NULL ||
	    (ips = node_addresses(n->cfg.addr)) == NULL ||
	    asprintf(&cn, "%s cluster CA", fqdn) == -1) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	/* The keys go into the store sealed: the cluster key first. */
	if (!seal_have_key()) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/cluster.key",
		    n->cfg.data_dir);
		if (seal_key_create(path, e) == -1)
			goto out;
	}
	/* All of it in one transaction that only succeeds on an empty
	 * store: two concurrent creations cannot both win. */
	store_txn_cmp(t, schema_key(SK_CLUSTER), 0);
	if (x509_ca_create(cn, CA_DAYS, &ca_cert, &ca_key, e) == -1)
		goto out;
	doc = ca_doc_encode(ca_cert, ca_key);
	store_txn_put_json(t, schema_key(SK_CA), doc);
	json_decref(doc);
	for (i = 0; i < CERT__COUNT; i++)
		if (certs_issue_into(t, i, ca_cert, ca_key, fqdn,
		    (const char *const *)ips, 1, "bootstrap", now, 0, NULL,
		    e) == -1)
			goto out;
	doc = cluster_doc_new(fqdn, now);
	store_txn_put_json(t, schema_key(SK_CLUSTER), doc);
	json_decref(doc);
	schema_put_version(t);
	memset(&u, 0, sizeof(u));
	u.uid = 1;
	u.email = user;
	u.name = "admin";
	u.role = "admin";
	u.password_hash = hash;
	u.auth_method = "regular";
	doc = user_doc_encode(&u);
	store_txn_put_json(t, schema_key_of(SK_USER, 1, key), doc);
	json_decref(doc);
	if (bootstrap_write_identity(n, 1, NULL, e) == -1)
		goto out;
	if (store_txn_commit_rev(n->store, t, &w.rev, e) == -1) {
		if (e != NULL && e->code == E_CONFLICT)
			err_set(e, E_CLUSTER_EXISTS, "a cluster already exists "
			    "in this node's store");
		/* Not a member after all: a restart must not take this node
		 * for node 1 of whatever the store holds. */
		bootstrap_forget_identity(n);
		goto out;
	}
	n->uid = 1;
	w.only_uid = 1;
	log_audit("cluster %s created by %s; admin user %s", fqdn, r->who,
	    user);
	events_add(n, "cluster_created", "INFO", json_pack("{s:s, s:s, s:s}",
	    "name", fqdn, "admin", user, "user", r->who));
	if (node_attach_store(n, e) == -1)
		goto out;
	rc = api_park(r, &w, bootstrap_answer);
out:
	strv_free(ips);
	free(ca_cert);
	x509_pem_free(ca_key);
	free(now);
	free(cn);
	store_txn_free(t);
	return rc;
}

int
bootstrap_create(struct api_req *r, const char *fqdn, const char *user,
    const char *password, struct err *e)
{
	if (node_is_member(r->n))
		return err_set(e, E_CLUSTER_EXISTS, "this node already belongs "
		    "to cluster %s", apply_has_cluster(r->n) ?
		    apply_cluster(r->n)->name : "?");
	if (r->n->store == NULL)
		return err_set(e, E_STORE, "this node does not reach its store "
		    "(%s) yet; it keeps trying: retry shortly",
		    r->n->cfg.store_url);
	if (!fqdn_valid(fqdn))
		return err_set(e, E_INVALID_FQDN, "cluster name \"%.64s\" is "
		    "not a valid FQDN (letters, digits and '-', at least two "
		    "labels, e.g. cluster.example.com)", fqdn);
	if (users_check_new(user, password, e) == -1)
		return -1;
	return users_hash_then(r, password, bootstrap_create_commit);
}

/* ---- join ---- */

/*
 * One GET of a join into b: verified against ca alone when given (never
 * the system's trust store as well), not verified otherwise; with user
 * and password when given.  The HTTP status in *code.
 */
static CURLcode
join_get(const char *url, const char *ca, const char *user,
    const char *password, struct curlbuf *b, long *code)
{
	CURL		*c;
	CURLcode	 cc;

	*code = 0;
	if ((c = curl_easy_init()) == NULL)
		return CURLE_OUT_OF_MEMORY;
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (user != NULL) {
		curl_easy_setopt(c, CURLOPT_USERNAME, user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, password);
	}
	if (ca != NULL) {
		struct curl_blob blob = { (void *)ca, strlen(ca),
		    CURL_BLOB_COPY };
		curl_easy_setopt(c, CURLOPT_CAINFO, NULL);
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	} else {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curlbuf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
	curl_easy_cleanup(c);
	return cc;
}

/*
 * The cluster CA whose fingerprint the operator gave, fetched from the
 * node (its /ca.pem, public); NULL with e when that node does not have
 * it: then it is not the cluster the operator meant, or someone is in
 * between.
 */
static char *
join_pinned_ca(const char *base, const char *fp, struct err *e)
{
	struct curlbuf	 b = { NULL, 0, 65536 };
	char		 url[320], *ca = NULL;
	CURLcode	 cc;
	long		 code;

	snprintf(url, sizeof(url), "%s/ca.pem", base);
	/* Not verified yet: what comes back is checked against fp. */
	cc = join_get(url, NULL, NULL, NULL, &b, &code);
	if (cc != CURLE_OK)
		err_set(e, E_JOIN_FAILED, "cannot reach %.128s: %s", base,
		    curl_easy_strerror(cc));
	else if (code != 200 || b.data == NULL ||
	    (ca = x509_bundle_find(b.data, fp)) == NULL)
		err_set(e, E_JOIN_FAILED, "the node at %.128s does not have a "
		    "cluster CA with fingerprint %.100s: it is not that "
		    "cluster's node, or something is in between", base, fp);
	curlbuf_clear(&b);
	return ca;
}

static char *
join_ask_store(const char *node, int default_port, const char *ca_fp,
    const char *user, const char *password, char **cluster_key,
    struct err *e)
{
	struct curlbuf	 b = { NULL, 0, 65536 };
	char		 url[340], base[300], *store = NULL, *ca = NULL;
	long		 code = 0;
	CURLcode	 cc;
	json_t		*j;

	if (strchr(node, ':') != NULL)
		snprintf(base, sizeof(base), "https://%s", node);
	else
		snprintf(base, sizeof(base), "https://%s:%d", node,
		    default_port);
	snprintf(url, sizeof(url), "%s/v1/cluster/store", base);
	/* With the CA's fingerprint, the credentials only go to a node
	 * whose certificate that CA issued. */
	if (ca_fp != NULL && (ca = join_pinned_ca(base, ca_fp, e)) == NULL)
		return NULL;
	cc = join_get(url, ca, user, password, &b, &code);
	free(ca);
	if (cc != CURLE_OK)
		err_set(e, E_JOIN_FAILED, "cannot reach the cluster node %.128s: "
		    "%s", node, curl_easy_strerror(cc));
	else if (code == 401 || code == 429)
		err_set(e, E_UNAUTHORIZED, "the cluster node %.128s refused the "
		    "credentials", node);
	else if (code == 403)
		err_set(e, E_FORBIDDEN, "joining needs an admin user");
	else if (code == 409)
		err_set(e, E_STORE_NOT_SHARED, "the cluster at %.128s runs on "
		    "its embedded store; nodes can join a cluster on etcd only",
		    node);
	else if (code != 200 || b.data == NULL ||
	    (j = json_loads(b.data, 0, NULL)) == NULL)
		err_set(e, E_JOIN_FAILED, "the node %.128s answered %ld", node,
		    code);
	else {
		if (json_string_value(json_object_get(j, "cluster_key")) !=
		    NULL)
			*cluster_key = strdup(json_string_value(
			    json_object_get(j, "cluster_key")));
		if (json_string_value(json_object_get(j, "store")) != NULL)
			store = strdup(json_string_value(json_object_get(j,
			    "store")));
		else
			err_set(e, E_JOIN_FAILED, "the node %.128s sent no store",
			    node);
		json_decref(j);
	}
	curlbuf_clear(&b);
	return store;
}

/* Register under the first free uid; the compare makes two nodes
 * joining at once take different uids. */
static int
join_register(struct node *n, struct store *s, int64_t *rev, struct err *e)
{
	struct store_txn	*t;
	json_t			*docs, *d;
	struct node_report	 rep;
	char			 key[SCHEMA_KEY_MAX];
	size_t			 i;
	int			 uid, rc, tries;

	for (tries = 0; tries < JOIN_TRIES; tries++) {
		if ((docs = schema_list(s, SK_NODE, e)) == NULL)
			return -1;
		uid = 1;
		json_array_foreach(docs, i, d)
			if (json_integer_value(json_object_get(d, "uid")) >= uid)
				uid = (int)json_integer_value(json_object_get(d,
				    "uid")) + 1;
		json_decref(docs);
		memset(&rep, 0, sizeof(rep));
		rep.uid = uid;
		rep.addr = n->cfg.addr;
		rep.api_port = n->cfg.api_port;
		rep.status = "active";
		d = node_report_encode(&rep, NULL);
		schema_key_of(SK_NODE, uid, key);
		t = store_txn_new();
		store_txn_cmp(t, key, 0);
		store_txn_put_json(t, key, d);
		json_decref(d);
		rc = store_txn_commit_rev(s, t, rev, e);
		store_txn_free(t);
		if (rc == 0)
			return uid;
		if (e == NULL || e->code != E_CONFLICT)
			return -1;
		err_clear(e);
	}
	return err_set(e, E_CONFLICT, "could not take a node uid; retry");
}

/* The join's network call, on the work pool. */
struct join_job {
	struct api_req	*r;
	char		*node, *user, *password;
	char		*ca_fp;		/* NULL: not pinned */
	int		 port;
	char		*url;		/* the answer */
	char		*cluster_key;	/* base64; wiped */
	struct err	 e;
};

static void
join_job_free(struct join_job *j)
{
	free(j->node);
	free(j->ca_fp);
	free(j->user);
	if (j->password != NULL) {
		explicit_bzero(j->password, strlen(j->password));
		free(j->password);
	}
	free(j->url);
	seal_free(j->cluster_key);
	err_clear(&j->e);
	free(j);
}

static void
join_work(void *arg)
{
	struct join_job *j = arg;

	j->url = join_ask_store(j->node, j->port, j->ca_fp, j->user,
	    j->password, &j->cluster_key, &j->e);
}

static void
join_done(void *arg)
{
	struct join_job		*j = arg;
	struct api_req		*r = j->r;
	struct node		*n = r->n;
	struct store		*s = NULL;
	struct rollout_want	 w;
	struct err		 e = { 0 };
	int			 uid, rc = -1;

	memset(&w, 0, sizeof(w));
	r->in_job = 0;
	if (r->req == NULL) {
		err_set(&e, E_INTERNAL, "the client went away");
		goto out;
	}
	if (j->url == NULL) {
		e = j->e;
		j->e.msg = NULL;
		goto out;
	}
	if (node_is_member(n)) {
		err_set(&e, E_CLUSTER_EXISTS, "this node joined a cluster "
		    "meanwhile");
		goto out;
	}
	if ((s = store_open(j->url, n->cfg.data_dir, &e)) == NULL ||
	    schema_check(s, &e) == -1 ||
	    (uid = join_register(n, s, &w.rev, &e)) == -1)
		goto out;
	/* The key that opens the cluster's private keys: once this node is
	 * the cluster's (a failed join keeps no other cluster's key), and
	 * before anything of the store is applied. */
	if (j->cluster_key != NULL) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/cluster.key",
		    n->cfg.data_dir);
		if (seal_key_install(j->cluster_key, path, &e) == -1)
			goto out;
	}
	if (node_switch_store(n, s, j->url, uid, &e) == -1) {
		s = NULL;
		goto out;
	}
	s = NULL;
	w.only_uid = uid;
	log_audit("node %d joined the cluster through %s (user %s)", uid,
	    j->node, j->user);
	events_add(n, "node_joined", "INFO", json_pack("{s:i, s:s, s:s, "
	    "s:s}", "uid", uid, "addr", n->cfg.addr, "through", j->node,
	    "user", j->user));
	rc = api_park(r, &w, bootstrap_answer);
out:
	store_close(s);
	join_job_free(j);
	if (rc != API_ASYNC)
		api_finish(r, rc, &e);
}

int
bootstrap_join(struct api_req *r, const char *node, const char *ca_fp,
    const char *user, const char *password, struct err *e)
{
	struct join_job *j;

	if (node_is_member(r->n))
		return err_set(e, E_CLUSTER_EXISTS, "this node already belongs "
		    "to a cluster");
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->node = strdup(node)) == NULL ||
	    (j->user = strdup(user)) == NULL ||
	    (j->password = strdup(password)) == NULL ||
	    (ca_fp != NULL && (j->ca_fp = strdup(ca_fp)) == NULL)) {
		if (j != NULL)
			join_job_free(j);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	j->r = r;
	j->port = r->n->cfg.api_port;
	r->in_job = 1;
	api_hold(r);
	if (workpool_run(r->n->wp, join_work, join_done, j) == -1) {
		r->in_job = 0;
		join_job_free(j);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	return API_ASYNC;
}

/* ---- moving the store ---- */

/*
 * Copy every configuration key into the empty store t_s in batches that
 * fit its limit of operations per transaction, all-or-nothing from the
 * user's view: the target is claimed first (only if it holds no cluster
 * and no claim), filled under that claim (each batch compares it), and
 * becomes the cluster's store when the last transaction writes the
 * cluster document and drops the claim.  A failed fill removes what it
 * wrote.  Nodes look for the cluster document, so a half-filled store is
 * never taken for a cluster.
 */
static int
move_copy(struct node *n, struct store *to, struct store_kv *kvs, size_t nkv,
    struct err *e)
{
	struct store_txn	*t = NULL;
	const char		*claim = schema_key(SK_CLAIM);
	const struct store_kv	*cluster = NULL;
	int64_t			 crev = 0;
	size_t			 i, batch, done = 0;
	int			 max = store_max_txn_ops(to), rc = -1;
	char			 buf[128];

	batch = max > 2 ? (size_t)max - 1 : 1000000;
	t = store_txn_new();
	store_txn_cmp(t, schema_key(SK_CLUSTER), 0);
	store_txn_cmp(t, claim, 0);
	snprintf(buf, sizeof(buf), "{\"node\":%d}", n->uid);
	store_txn_put(t, claim, buf);
	if (store_txn_commit_rev(to, t, &crev, e) == -1) {
		store_txn_free(t);
		if (e != NULL && e->code == E_CONFLICT)
			err_set(e, E_CLUSTER_EXISTS, "the store at %.128s "
			    "already holds a cluster (or another move into it "
			    "is under way)", store_url(to));
		return -1;
	}
	store_txn_free(t);
	t = NULL;
	for (i = 0; i < nkv; i++) {
		enum schema_kind k = schema_classify(kvs[i].key, NULL);
		if (k == SK_CLUSTER) {
			cluster = &kvs[i];
			continue;
		}
		if (k == SK_ALIVE || k == SK_CLAIM)
			continue;
		if (t == NULL) {
			t = store_txn_new();
			store_txn_cmp(t, claim, crev);
		}
		store_txn_put(t, kvs[i].key, kvs[i].value);
		if (store_txn_len(t) >= batch) {
			if (store_txn_commit(to, t, e) == -1)
				goto undo;
			store_txn_free(t);
			t = NULL;
			done = i + 1;
		}
	}
	if (cluster == NULL) {
		err_set(e, E_STORE, "this node's store holds no cluster");
		goto undo;
	}
	if (t == NULL) {
		t = store_txn_new();
		store_txn_cmp(t, claim, crev);
	}
	if (store_txn_len(t) + 2 > batch && store_txn_len(t) > 1) {
		if (store_txn_commit(to, t, e) == -1)
			goto undo;
		store_txn_free(t);
		t = store_txn_new();
		store_txn_cmp(t, claim, crev);
	}
	store_txn_put(t, cluster->key, cluster->value);
	store_txn_del(t, claim);
	if (store_txn_commit(to, t, e) == -1)
		goto undo;
	rc = 0;
	goto out;
undo:
	store_txn_free(t);
	t = NULL;
	log_warn("moving the store failed; removing what was copied");
	for (i = 0; i < done; i++) {
		if (t == NULL)
			t = store_txn_new();
		store_txn_del(t, kvs[i].key);
		if (store_txn_len(t) >= batch) {
			store_txn_commit(to, t, NULL);
			store_txn_free(t);
			t = NULL;
		}
	}
	if (t != NULL) {
		store_txn_commit(to, t, NULL);
		store_txn_free(t);
	}
	t = store_txn_new();
	store_txn_del(t, claim);
	store_txn_commit(to, t, NULL);
out:
	store_txn_free(t);
	return rc;
}

int
bootstrap_move_store(struct node *n, const char *url, const char *who,
    struct err *e)
{
	struct store	*s;
	struct store_kv	*kvs = NULL;
	size_t		 nkv = 0;
	int		 rc = -1;

	if (strncmp(url, "etcd://", 7) != 0 && strncmp(url, "etcds://", 8) != 0)
		return err_set(e, E_INVALID_SCHEMA, "the new store must be "
		    "etcd://host:port[,host:port...] or etcds://...");
	if (store_is_shared(n->store))
		return err_set(e, E_CONFLICT, "this cluster already runs on a "
		    "shared store (%s)", store_driver_name(n->store));
	if ((s = store_open(url, n->cfg.data_dir, e)) == NULL)
		return -1;
	if (store_list(n->store, SCHEMA_ROOT, &kvs, &nkv, e) == -1 ||
	    move_copy(n, s, kvs, nkv, e) == -1)
		goto out;
	if (node_switch_store(n, s, url, n->uid, e) == -1) {
		s = NULL;
		goto out;
	}
	s = NULL;
	log_audit("%s moved the cluster (%zu keys) to %s", who, nkv, url);
	rc = 0;
out:
	store_kvs_free(kvs, nkv);
	store_close(s);
	return rc;
}
