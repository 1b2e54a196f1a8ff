/*
 * apply_bdbs.c — reconcile this node's shards and endpoints with the
 * database documents of a snapshot (see apply_bdbs.h).  It runs after
 * every configuration change and at start, so a restarted moatd serves
 * every database again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply_bdbs.h"
#include "log.h"
#include "proxy.h"
#include "shards.h"
#include "syncer.h"

#define MAX_BDBS	1024

struct bdb_run {
	int	 uid;
	int	 port;
	int64_t	 rev;		/* mod_rev of the document applied */
	int	 live[PROXY_PROTO_MAX];	/* as last counted */
};

/* A count of live connections queued to the workers. */
struct count_req {
	struct apply_bdbs	*b;
	apply_count_cb		 cb;
	void			*arg;
	void			(*arg_free)(void *);
	struct count_req	*next;	/* b->pending */
};

struct apply_bdbs {
	struct count_req *pending;	/* counts the workers still hold */
	struct proxy	*proxy;
	struct shards	*shards;
	struct syncer	*syncer;	/* Replica Of links */
	struct bdb_run	 run[MAX_BDBS];
	int		 nrun;
	/* The proxy certificate's OCSP staple (owned), NULL: none. */
	unsigned char	*staple;
	size_t		 staple_len;
	time_t		 staple_until;
};

int
apply_bdbs_set_staple(struct apply_bdbs *b, const unsigned char *der,
    size_t len, time_t until)
{
	unsigned char *copy = NULL;

	if (der != NULL && len > 0) {
		if ((copy = malloc(len)) == NULL)
			return -1;
		memcpy(copy, der, len);
	}
	free(b->staple);
	b->staple = copy;
	b->staple_len = copy != NULL ? len : 0;
	b->staple_until = until;
	return 0;
}

/* Same order as enum shard_persistence. */
static const char *const persistence_modes[] = { "aof", "snapshot",
	"disabled", NULL };

static void
apply_bdbs_shard_state(int uid, int up, void *arg)
{
	struct apply_bdbs	*b = arg;
	int			 i;

	/* Connections to a dead shard are over; the clients reconnect
	 * when it is back (new connections are refused until then). */
	if (up)
		return;
	for (i = 0; i < b->nrun; i++)
		if (b->run[i].uid == uid)
			proxy_close_port_async(b->proxy, b->run[i].port, NULL,
			    NULL);
}

struct apply_bdbs *
apply_bdbs_new(struct node *n, struct err *e)
{
	struct apply_bdbs *b;

	if ((b = calloc(1, sizeof(*b))) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	if ((b->proxy = proxy_new_base(n->base, n->cfg.workers,
	    (enum proxy_data_path)n->cfg.data_path, e)) == NULL ||
	    (b->shards = shards_new(n->base, n->cfg.data_dir,
	    apply_bdbs_shard_state, b, e)) == NULL ||
	    (b->syncer = syncer_new(n->base, e)) == NULL) {
		shards_free(b->shards);
		proxy_free(b->proxy);
		free(b);
		return NULL;
	}
	return b;
}

void
apply_bdbs_free(struct apply_bdbs *b)
{
	if (b == NULL)
		return;
	/* Endpoints first: no client is handed to a stopping shard. */
	proxy_free(b->proxy);
	/* Counts the workers never answered (proxy_free drops their
	 * callbacks): their requests are freed here, with their argument. */
	while (b->pending != NULL) {
		struct count_req *c = b->pending;
		b->pending = c->next;
		if (c->arg_free != NULL)
			c->arg_free(c->arg);
		free(c);
	}
	syncer_free(b->syncer);
	shards_free(b->shards);
	free(b->staple);
	free(b);
}

static char *
bdb_trust_pem(json_t *d)
{
	json_t	*list = json_object_get(d, "authentication_ssl_client_certs");
	json_t	*it;
	size_t	 i;
	char	*s = strdup(""), *t;

	json_array_foreach(list, i, it) {
		if (s == NULL || asprintf(&t, "%s%s\n", s, json_string_value(
		    json_object_get(it, "client_cert"))) == -1) {
			free(s);
			return NULL;
		}
		free(s);
		s = t;
	}
	return s;
}

static int
str_is(json_t *d, const char *field, const char *want)
{
	const char *v = json_string_value(json_object_get(d, field));

	return v != NULL && strcmp(v, want) == 0;
}

static const char *
str_of(json_t *o, const char *field)
{
	return json_string_value(json_object_get(o, field));
}

/*
 * Replica Of: start, update or stop the link of database uid.  On return
 * sc says what the shard replicates from (replica_port 0: nothing).  -1
 * when the link the document asks for could not be set: sc then keeps
 * what runs (a replica never turns into a writable primary because of a
 * failure here), or, with no link yet, the shard must not start.
 */
static int
bdb_replica(struct apply_bdbs *b, json_t *d, int uid,
    const struct x509_material *syncer, const struct cluster_policy *policy,
    struct shard_conf *sc)
{
	json_t			*src = json_array_get(json_object_get(d,
				    "replica_sources"), 0);
	struct replica_uri	 u;
	struct tlsctx_client_opts o = { NULL, NULL, NULL };
	struct syncer_conf	 c;
	struct tls_policy	 tp;
	struct tlsctx		*ctx = NULL;
	struct err		 e = { 0 };
	const char		*sync = str_of(d, "replica_sync");
	char			 sock[108];

	int			 rc = -1;

	sc->replica_port = 0;
	sc->replica_token = NULL;
	memset(&u, 0, sizeof(u));
	if (src == NULL || sync == NULL || (strcmp(sync, "enabled") != 0 &&
	    strcmp(sync, "paused") != 0)) {
		syncer_del(b->syncer, uid);
		return 0;
	}
	if (replica_uri_parse(str_of(src, "uri"), &u, &e) == -1)
		goto fail;
	if (syncer == NULL) {
		err_set(&e, E_INTERNAL, "the cluster has no syncer certificate");
		goto fail;
	}
	o.server_cert_pem = str_of(src, "server_cert");
	o.sni = str_of(src, "replication_tls_sni");
	o.verify_name = o.sni != NULL ? o.sni : u.host;
	if ((ctx = tlsctx_client_new(syncer, cluster_tls_policy(policy,
	    POLICY_DATA, &tp), &o, &e)) == NULL)
		goto fail;
	memset(&c, 0, sizeof(c));
	c.host = u.host;
	c.port = u.port;
	c.user = u.user;
	c.password = u.password;
	c.ctx = ctx;
	c.paused = strcmp(sync, "paused") == 0;
	c.shard_sock = sock;
	c.shard_password = sc->password;
	if (shards_socket_path(b->shards, uid, sock, sizeof(sock)) == -1) {
		err_set(&e, E_INTERNAL, "the shard's socket path is too long");
		goto fail;
	}
	if (syncer_set(b->syncer, uid, &c, &sc->replica_port,
	    &sc->replica_token, &e) == -1)
		goto fail;
	rc = 0;
	goto out;
fail:
	/* Keep what runs: an old link goes on rather than stop. */
	log_error("db:%d cannot replicate: %s", uid, err_msg(&e));
	syncer_relay(b->syncer, uid, &sc->replica_port, &sc->replica_token);
out:
	explicit_bzero(u.password, sizeof(u.password));
	tlsctx_unref(ctx);
	err_clear(&e);
	return rc;
}

static int
bdb_run_one(struct apply_bdbs *b, struct node *n, json_t *d,
    const struct x509_material *proxy, const struct x509_material *syncer,
    const struct cluster_policy *policy)
{
	struct shard_conf	 sc;
	struct tlsctx		*ctx = NULL;
	struct tls_policy	 tp;
	struct tlsctx_data_opts	 o;
	struct tls_staple	 staple = { b->staple, b->staple_len,
				    b->staple_until };
	struct tls_subject	*subj = NULL;
	const char		**ous = NULL;
	struct err		 e = { 0 };
	char			 label[32], *trust = NULL;
	int			 uid = (int)json_integer_value(json_object_get(d,
				    "uid"));
	int			 port = (int)json_integer_value(json_object_get(d,
				    "port"));
	int			 k, rc = -1, repl_rc;

	memset(&o, 0, sizeof(o));
	sc.uid = uid;
	sc.maxmemory = json_integer_value(json_object_get(d, "memory_size"));
	sc.password = json_string_value(json_object_get(d,
	    "authentication_redis_pass"));
	sc.persistence = PERSIST_AOF;
	for (k = 0; persistence_modes[k] != NULL; k++)
		if (str_is(d, "data_persistence", persistence_modes[k]))
			sc.persistence = (enum shard_persistence)k;
	snprintf(label, sizeof(label), "db:%d", uid);
	/* The link first: a new replica starts as one, never as a
	 * writable primary for a moment.  A link that could not be set
	 * leaves the document to be applied again next time. */
	repl_rc = bdb_replica(b, d, uid, syncer, policy, &sc);
	if (repl_rc == -1 && sc.replica_port == 0) {
		err_set(&e, E_INTERNAL, "its replication link cannot start");
		goto out;
	}
	if (shards_ensure(b->shards, &sc, &e) == -1)
		goto out;
	if (str_is(d, "tls_mode", "enabled")) {
		if (str_is(d, "enforce_client_authentication", "enabled")) {
			o.client_trust_pem = trust = bdb_trust_pem(d);
			o.crl_pem = json_string_value(json_object_get(d, "crl"));
			if (schema_subject_rules(d,
			    "client_cert_subject_validation_type",
			    "authorized_subjects", &o.subject_check, &subj,
			    &ous, &o.nsubjects) == -1) {
				err_set(&e, E_INTERNAL, "out of memory");
				goto out;
			}
		}
		o.subjects = subj;
		o.label = label;
		o.staple = b->staple != NULL ? &staple : NULL;
		ctx = tlsctx_data_new((struct x509_material *)proxy,
		    cluster_tls_policy(policy, POLICY_DATA, &tp), &o, &e);
		if (ctx == NULL)
			goto out;
	}
	if (proxy_endpoint_set_async(b->proxy, n->cfg.addr, port, ctx,
	    shards_socket(b->shards, uid), label, &e) == -1)
		goto out;
	rc = repl_rc;
out:
	/* (A link that failed but keeps running said why already.) */
	if (rc == -1 && e.code != E_OK)
		log_error("db:%d cannot serve port %d: %s", uid, port,
		    err_msg(&e));
	free(trust);
	free(subj);
	free(ous);
	tlsctx_unref(ctx);
	err_clear(&e);
	return rc;
}

void
apply_bdbs_run(struct apply_bdbs *b, struct node *n, const struct store_kv *kv,
    size_t nkv, const struct x509_material *proxy,
    const struct x509_material *syncer, const struct cluster_policy *policy,
    int data_changed)
{
	json_t	*docs = json_array(), *d;
	size_t	 i;
	int	 j, found;

	if (proxy == NULL || docs == NULL) {
		json_decref(docs);
		return;
	}
	for (i = 0; i < nkv; i++) {
		if (schema_classify(kv[i].key, NULL) != SK_BDB ||
		    (d = json_loads(kv[i].value, 0, NULL)) == NULL)
			continue;
		json_object_set_new(d, "_rev", json_integer(kv[i].mod_rev));
		json_array_append_new(docs, d);
	}
	/* Gone from the store, or moved to another node: stop and remove. */
	for (j = 0; j < b->nrun; j++) {
		found = 0;
		json_array_foreach(docs, i, d)
			if (json_integer_value(json_object_get(d, "uid")) ==
			    b->run[j].uid && json_integer_value(json_object_get(
			    d, "node_uid")) == n->uid)
				found = 1;
		if (found)
			continue;
		proxy_endpoint_del_async(b->proxy, b->run[j].port, NULL, NULL);
		syncer_del(b->syncer, b->run[j].uid);
		shards_stop_async(b->shards, b->run[j].uid, 1, NULL, NULL);
		log_info("db:%d removed", b->run[j].uid);
		b->run[j--] = b->run[--b->nrun];
	}
	json_array_foreach(docs, i, d) {
		int uid = (int)json_integer_value(json_object_get(d, "uid"));
		int64_t rev = json_integer_value(json_object_get(d, "_rev"));
		struct bdb_run *r = NULL;
		if (json_integer_value(json_object_get(d, "node_uid")) != n->uid)
			continue;
		for (j = 0; j < b->nrun; j++)
			if (b->run[j].uid == uid)
				r = &b->run[j];
		if (r != NULL && r->rev == rev && !data_changed)
			continue;
		if (bdb_run_one(b, n, d, proxy, syncer, policy) == -1)
			continue;
		if (r == NULL) {
			if (b->nrun == MAX_BDBS)
				continue;
			r = &b->run[b->nrun++];
			log_info("db:%d serving on %s:%lld", uid, n->cfg.addr,
			    json_integer_value(json_object_get(d, "port")));
		}
		r->uid = uid;
		r->port = (int)json_integer_value(json_object_get(d, "port"));
		r->rev = rev;
	}
	json_decref(docs);
}

void
apply_bdbs_close_below(struct apply_bdbs *b, int min_version,
    void (*cb)(int closed, void *arg), void *arg)
{
	if (proxy_close_below_async(b->proxy, min_version, cb, arg) == -1)
		cb(0, arg);
}

json_t *
apply_bdbs_replication(struct apply_bdbs *b, int uid)
{
	struct syncer_state	 st;
	json_t			*o;
	char			 key[16];
	int			 i;

	if (uid > 0) {
		if (b == NULL || syncer_state(b->syncer, uid, &st) == -1)
			return NULL;
		return json_pack("{s:s, s:I, s:s}", "status",
		    syncer_status_name(st.status), "lag",
		    (json_int_t)st.lag_ms, "last_error", st.last_error);
	}
	o = json_object();
	for (i = 0; b != NULL && o != NULL && i < b->nrun; i++) {
		json_t *one = apply_bdbs_replication(b, b->run[i].uid);
		if (one == NULL)
			continue;
		snprintf(key, sizeof(key), "%d", b->run[i].uid);
		json_object_set_new(o, key, one);
	}
	return o;
}

int
apply_bdbs_up(struct apply_bdbs *b, int uid)
{
	return b != NULL && shards_is_up(b->shards, uid);
}


static void
apply_bdbs_counted(const struct proxy_sessions *s, void *arg)
{
	struct count_req	*c = arg, **pp;
	struct apply_bdbs	*b = c->b;
	int			 i, k;

	for (pp = &b->pending; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}

	/* Every count (the report's, every few seconds, or a dry run's)
	 * is also what the metrics show. */
	for (i = 0; i < b->nrun; i++) {
		memset(b->run[i].live, 0, sizeof(b->run[i].live));
		for (k = 0; k < s->nports; k++)
			if (s->ports[k].port == b->run[i].port)
				memcpy(b->run[i].live, s->ports[k].n,
				    sizeof(b->run[i].live));
	}

	c->cb(s->n[PROXY_TLS1_2], s->n[PROXY_TLS1_3], c->arg);
	free(c);
}

int
apply_bdbs_count_versions(struct apply_bdbs *b, apply_count_cb cb, void *arg,
    void (*arg_free)(void *))
{
	struct count_req *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	c->b = b;
	c->cb = cb;
	c->arg = arg;
	c->arg_free = arg_free;
	if (proxy_sessions_async(b->proxy, apply_bdbs_counted, c) == -1) {
		free(c);
		return -1;
	}
	c->next = b->pending;
	b->pending = c;
	return 0;
}

void
apply_bdbs_stats(struct apply_bdbs *b, apply_bdb_stats_cb cb, void *arg)
{
	struct proxy_port_stats	 io;
	int			 i;

	for (i = 0; b != NULL && i < b->nrun; i++) {
		if (proxy_port_stats(b->proxy, b->run[i].port, &io) == -1)
			continue;
		cb(b->run[i].uid, &io, b->run[i].live, arg);
	}
}
