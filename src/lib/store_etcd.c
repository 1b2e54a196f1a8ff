/*
 * store_etcd.c — the cluster store driver: etcd v3 through its JSON
 * gateway (POST /v3/kv/range, /v3/kv/txn, /v3/watch), over libcurl.
 *
 * Consensus and replication are etcd's; this file only maps the store
 * interface onto etcd's: keys and values travel base64-encoded, mod_rev is
 * etcd's mod_revision, a transaction is one etcd Txn whose compares are on
 * MOD revisions.  Endpoints are tried in order until one answers.
 * A watch runs a streaming request on its own thread and hands each changed
 * key to the control thread through store_post_remote().
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "curlbuf.h"
#include "store_impl.h"
#include "util.h"

#define ETCD_MAX_EP	8
#define ETCD_TIMEOUT_MS	3000
#define ETCD_MAX_RESP	(64 * 1024 * 1024)
#define ETCD_MAX_IDLE	4
/* After a call found no quorum, calls fail at once for this long. */
#define ETCD_DOWN_MS	2000

struct etcd_watch {
	struct etcd_store	*es;
	char			*prefix;
	pthread_t		 thread;
	int			 started;
	int64_t			 from;		/* revision to resume at */
	char			*buf;		/* stream not yet parsed */
	size_t			 len;
};

struct etcd_presence {
	struct etcd_store	*es;
	char			*key;
	char			*value;
	int			 ttl;
	char			 id[32];	/* lease; "" when none */
	pthread_t		 thread;
};

struct etcd_store {
	struct store		*parent;
	char			*ep[ETCD_MAX_EP];	/* "http://host:port" */
	int			 nep;
	int			 cur;		/* endpoint that answered last */
	CURL			*idle[ETCD_MAX_IDLE];	/* handles not in use */
	int			 nidle;
	int64_t			 down_until;	/* ms, CLOCK_MONOTONIC */
	char			 down_why[160];
	volatile int		 stopping;
	struct etcd_watch	*w[16];
	int			 nw;
	struct etcd_presence	*pr;
	pthread_mutex_t		 mu;	/* guards idle[] and cur, never held
					   across a network call */
	int			 tls;	/* etcds:// */
	char			*ca, *cert, *key;	/* file paths, or NULL */
};

/* TLS to etcd: verify its certificate against ca (or the system CAs), and
 * present cert/key when etcd asks for client certificates. */
static void
etcd_curl_tls(struct etcd_store *es, CURL *c)
{
	if (!es->tls)
		return;
	if (es->ca != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, es->ca);
	if (es->cert != NULL)
		curl_easy_setopt(c, CURLOPT_SSLCERT, es->cert);
	if (es->key != NULL)
		curl_easy_setopt(c, CURLOPT_SSLKEY, es->key);
}

static char *
b64(const char *s)
{
	size_t	 n = strlen(s), out = sodium_base64_ENCODED_LEN(n,
		    sodium_base64_VARIANT_ORIGINAL);
	char	*b = malloc(out);

	if (b != NULL)
		sodium_bin2base64(b, out, (const unsigned char *)s, n,
		    sodium_base64_VARIANT_ORIGINAL);
	return b;
}

/* Decoded copy of a base64 JSON string (NUL-terminated), or NULL. */
static char *
unb64(json_t *j)
{
	const char	*s = json_string_value(j);
	size_t		 n, len;
	char		*b;

	if (s == NULL)
		return strdup("");
	n = strlen(s);
	if ((b = malloc(n + 1)) == NULL)
		return NULL;
	if (sodium_base642bin((unsigned char *)b, n, s, n, NULL, &len, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(b);
		return NULL;
	}
	b[len] = '\0';
	return b;
}

/* The first key after every key that starts with prefix. */
static char *
prefix_end(const char *prefix)
{
	char	*e = strdup(prefix);
	size_t	 n = strlen(prefix);

	while (e != NULL && n > 0) {
		if ((unsigned char)e[n - 1] < 0xff) {
			e[n - 1]++;
			e[n] = '\0';
			return e;
		}
		n--;
	}
	free(e);
	return strdup("\\0");	/* whole key space; not reached for ours */
}

static int64_t
jint(json_t *j)
{
	if (json_is_integer(j))
		return json_integer_value(j);
	if (json_is_string(j))
		return strtoll(json_string_value(j), NULL, 10);
	return 0;
}

/* POST body to path on the first endpoint that answers, with curl handle
 * c (each thread has its own). */
static json_t *
etcd_call_with(struct etcd_store *es, CURL *c, const char *path,
    json_t *body, struct err *e);

/*
 * Calls of the control thread.  A store without quorum holds each request
 * until it times out; once one call found that, the next ones fail at
 * once for ETCD_DOWN_MS instead of holding the control thread again, and
 * the first call after that tries again.
 */
static json_t *
etcd_call(struct etcd_store *es, const char *path, json_t *body,
    struct err *e)
{
	CURL		*c = NULL;
	json_t		*j;
	int64_t		 now = mono_ms();
	struct err	 le = { 0 };

	pthread_mutex_lock(&es->mu);
	if (now < es->down_until) {
		err_set(e, E_STORE, "%s (%lld ms ago; trying again shortly)",
		    es->down_why, (long long)(now - (es->down_until -
		    ETCD_DOWN_MS)));
		pthread_mutex_unlock(&es->mu);
		return NULL;
	}
	if (es->nidle > 0)
		c = es->idle[--es->nidle];
	pthread_mutex_unlock(&es->mu);
	if (c == NULL && (c = curl_easy_init()) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	j = etcd_call_with(es, c, path, body, &le);
	pthread_mutex_lock(&es->mu);
	if (j == NULL && le.code == E_STORE &&
	    strstr(err_msg(&le), "unavailable") != NULL) {
		es->down_until = mono_ms() + ETCD_DOWN_MS;
		snprintf(es->down_why, sizeof(es->down_why), "%.150s",
		    err_msg(&le));
	} else if (j != NULL)
		es->down_until = 0;
	if (es->nidle < ETCD_MAX_IDLE) {
		es->idle[es->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&es->mu);
	if (c != NULL)
		curl_easy_cleanup(c);
	if (j == NULL && e != NULL) {
		err_clear(e);
		*e = le;
	} else
		err_clear(&le);
	return j;
}

static json_t *
etcd_call_with(struct etcd_store *es, CURL *curl, const char *path,
    json_t *body, struct err *e)
{
	char		*s = json_dumps(body, JSON_COMPACT), url[512];
	struct curlbuf	 r = { NULL, 0, ETCD_MAX_RESP };
	long		 code = 0;
	json_t		*j = NULL;
	int		 i, idx, cur;
	CURLcode	 cc = CURLE_OK;

	if (s == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	pthread_mutex_lock(&es->mu);
	cur = es->cur;
	pthread_mutex_unlock(&es->mu);
	for (i = 0; i < es->nep; i++) {
		idx = (cur + i) % es->nep;
		snprintf(url, sizeof(url), "%s%s", es->ep[idx], path);
		curl_easy_reset(curl);
		curl_easy_setopt(curl, CURLOPT_URL, url);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, s);
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, curlbuf_write);
		curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
		curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, ETCD_TIMEOUT_MS);
		curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
		curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
		etcd_curl_tls(es, curl);
		curlbuf_clear(&r);
		cc = curl_easy_perform(curl);
		/* A member that answers nothing in time has no quorum either
		 * way (etcd holds requests it cannot commit): fail now rather
		 * than wait for every member in turn. */
		if (cc == CURLE_OPERATION_TIMEDOUT)
			break;
		if (cc != CURLE_OK)
			continue;
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
		/* 503 and friends: this member has no quorum; try another. */
		if (code >= 500)
			continue;
		pthread_mutex_lock(&es->mu);
		es->cur = idx;
		pthread_mutex_unlock(&es->mu);
		break;
	}
	explicit_bzero(s, strlen(s));
	free(s);
	if (i == es->nep || cc != CURLE_OK) {
		/* A store that is down or without quorum may come back; one
		 * that refuses our TLS (no client certificate, a CA that does
		 * not verify it) will not until its URL is fixed. */
		int refused = cc == CURLE_SSL_CONNECT_ERROR ||
		    cc == CURLE_PEER_FAILED_VERIFICATION ||
		    cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CACERT_BADFILE ||
		    (es->tls && (cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR));
		err_set(e, refused ? E_STORE_REFUSED : E_STORE, "the cluster "
		    "store (etcd) is unavailable: %s%s; nothing was changed, "
		    "and running nodes keep serving what they last applied",
		    cc != CURLE_OK ? curl_easy_strerror(cc) : "no quorum",
		    refused ? " (it refuses this node's TLS: check the ca=, "
		    "cert= and key= of the store URL)" : "");
	} else if (code != 200 || (j = json_loads(r.data ? r.data : "", 0,
	    NULL)) == NULL) {
		err_set(e, E_STORE, "etcd answered %ld to %s", code, path);
	}
	curlbuf_clear(&r);
	return j;
}

static int
etcd_match(const char *url)
{
	return strncmp(url, "etcd://", 7) == 0 ||
	    strncmp(url, "etcds://", 8) == 0;
}

/* etcds://...?ca=PATH&cert=PATH&key=PATH */
static int
etcd_parse_query(struct etcd_store *es, char *q, struct err *e)
{
	char *kv, *save = NULL, *eq;

	for (kv = strtok_r(q, "&", &save); kv != NULL;
	    kv = strtok_r(NULL, "&", &save)) {
		if ((eq = strchr(kv, '=')) == NULL || eq[1] == '\0')
			return err_set(e, E_STORE, "etcd URL option \"%.64s\" "
			    "needs a value", kv);
		*eq++ = '\0';
		if (access(eq, R_OK) == -1)
			return err_set(e, E_STORE, "etcd URL option %s: cannot "
			    "read %.200s", kv, eq);
		if (strcmp(kv, "ca") == 0)
			es->ca = strdup(eq);
		else if (strcmp(kv, "cert") == 0)
			es->cert = strdup(eq);
		else if (strcmp(kv, "key") == 0)
			es->key = strdup(eq);
		else
			return err_set(e, E_STORE, "unknown etcd URL option "
			    "\"%.64s\": use ca, cert, key", kv);
	}
	if ((es->cert == NULL) != (es->key == NULL))
		return err_set(e, E_STORE, "etcd URL: cert and key go together");
	return 0;
}

static void *
etcd_open(struct store *parent, const char *url, const char *data_dir,
    struct err *e)
{
	struct etcd_store	*es;
	char			*list, *tok, *save = NULL;
	json_t			*j, *body;

	int			 tls = strncmp(url, "etcds://", 8) == 0;
	char			*q;

	if ((es = calloc(1, sizeof(*es))) == NULL ||
	    (list = strdup(url + (tls ? 8 : 7))) == NULL) {
		free(es);
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	es->parent = parent;
	es->tls = tls;
	pthread_mutex_init(&es->mu, NULL);
	if ((q = strchr(list, '?')) != NULL) {
		*q++ = '\0';
		if (!tls) {
			err_set(e, E_STORE, "TLS options need an etcds:// URL");
			free(list);
			goto fail;
		}
		if (etcd_parse_query(es, q, e) == -1) {
			free(list);
			goto fail;
		}
	}
	for (tok = strtok_r(list, ",", &save); tok != NULL && es->nep <
	    ETCD_MAX_EP; tok = strtok_r(NULL, ",", &save))
		if (asprintf(&es->ep[es->nep], "%s://%s", tls ? "https" :
		    "http", tok) != -1)
			es->nep++;
	free(list);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (es->nep == 0) {
		err_set(e, E_STORE, "bad etcd URL \"%.128s\": use "
		    "etcd://host:port[,host:port...] or etcds://...[?ca=PATH"
		    "&cert=PATH&key=PATH]", url);
		goto fail;
	}
	/* Fail now, with the reason, rather than at the first request. */
	body = json_pack("{s:s, s:b}", "key", "AA==", "count_only", 1);
	j = etcd_call(es, "/v3/kv/range", body, e);
	json_decref(body);
	if (j == NULL)
		goto fail;
	json_decref(j);
	return es;
fail:
	free(es->ca);
	free(es->cert);
	free(es->key);
	for (int i = 0; i < es->nep; i++)
		free(es->ep[i]);
	while (es->nidle > 0)
		curl_easy_cleanup(es->idle[--es->nidle]);
	pthread_mutex_destroy(&es->mu);
	free(es);
	return NULL;
}

static int
etcd_range(struct etcd_store *es, const char *key, int prefix, json_t **out,
    int64_t *rev, struct err *e)
{
	char	*k = b64(key), *end = NULL, *eb = NULL;
	json_t	*body, *j;

	body = json_pack("{s:s}", "key", k ? k : "");
	if (prefix) {
		end = prefix_end(key);
		eb = end ? b64(end) : NULL;
		json_object_set_new(body, "range_end", json_string(eb ? eb : ""));
		json_object_set_new(body, "sort_order", json_string("ASCEND"));
		json_object_set_new(body, "sort_target", json_string("KEY"));
	}
	j = etcd_call(es, "/v3/kv/range", body, e);
	json_decref(body);
	free(k);
	free(end);
	free(eb);
	if (j == NULL)
		return -1;
	if (rev != NULL)
		*rev = jint(json_object_get(json_object_get(j, "header"),
		    "revision"));
	*out = j;
	return 0;
}

static int
etcd_get(void *impl, const char *key, char **val, int64_t *mod_rev,
    struct err *e)
{
	json_t	*j, *kv;

	*val = NULL;
	if (etcd_range(impl, key, 0, &j, NULL, e) == -1)
		return -1;
	kv = json_array_get(json_object_get(j, "kvs"), 0);
	if (kv == NULL) {
		json_decref(j);
		if (mod_rev != NULL)
			*mod_rev = 0;
		return 1;
	}
	*val = unb64(json_object_get(kv, "value"));
	if (mod_rev != NULL)
		*mod_rev = jint(json_object_get(kv, "mod_revision"));
	json_decref(j);
	return *val != NULL ? 0 : err_set(e, E_STORE, "bad value of %s", key);
}

static int
etcd_list(void *impl, const char *prefix, struct store_kv **kvs, size_t *n,
    int64_t *rev, struct err *e)
{
	json_t		*j, *arr, *kv;
	struct store_kv	*v;
	size_t		 i, cnt = 0;

	*kvs = NULL;
	*n = 0;
	if (etcd_range(impl, prefix, 1, &j, rev, e) == -1)
		return -1;
	arr = json_object_get(j, "kvs");
	if ((v = calloc(json_array_size(arr) + 1, sizeof(*v))) == NULL) {
		json_decref(j);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	json_array_foreach(arr, i, kv) {
		v[cnt].key = unb64(json_object_get(kv, "key"));
		v[cnt].value = unb64(json_object_get(kv, "value"));
		v[cnt].mod_rev = jint(json_object_get(kv, "mod_revision"));
		if (v[cnt].key != NULL && v[cnt].value != NULL)
			cnt++;
	}
	json_decref(j);
	*kvs = v;
	*n = cnt;
	return 0;
}

static int64_t
etcd_revision(void *impl)
{
	json_t	*j;
	int64_t	 rev = -1;

	if (etcd_range(impl, "/", 0, &j, &rev, NULL) == -1)
		return -1;
	json_decref(j);
	return rev;
}

static int
etcd_commit(void *impl, const struct store_txn *t, int64_t *out_rev,
    struct err *e)
{
	json_t	*cmp = json_array(), *ok = json_array(), *body, *j;
	size_t	 i;
	int	 rc;
	char	 rev[32];

	for (i = 0; i < t->n; i++) {
		const struct txn_op *op = &t->ops[i];
		char *k = b64(op->key), *v = op->value ? b64(op->value) : NULL;
		switch (op->kind) {
		case OP_CMP:
			snprintf(rev, sizeof(rev), "%lld",
			    (long long)op->mod_rev);
			json_array_append_new(cmp, json_pack("{s:s, s:s, s:s, "
			    "s:s}", "key", k ? k : "", "target", "MOD",
			    "result", "EQUAL", "mod_revision", rev));
			break;
		case OP_PUT:
			json_array_append_new(ok, json_pack("{s:{s:s, s:s}}",
			    "request_put", "key", k ? k : "", "value",
			    v ? v : ""));
			break;
		case OP_DEL:
			json_array_append_new(ok, json_pack("{s:{s:s}}",
			    "request_delete_range", "key", k ? k : ""));
			break;
		}
		free(k);
		if (v != NULL) {
			explicit_bzero(v, strlen(v));
			free(v);
		}
	}
	body = json_pack("{s:o, s:o}", "compare", cmp, "success", ok);
	j = etcd_call(impl, "/v3/kv/txn", body, e);
	json_decref(body);
	if (j == NULL)
		return -1;
	rc = json_is_true(json_object_get(j, "succeeded")) ? 0 :
	    err_set(e, E_CONFLICT, "the configuration was changed by someone "
	    "else meanwhile; read it again and retry");
	if (out_rev != NULL)
		*out_rev = jint(json_object_get(json_object_get(j, "header"),
		    "revision"));
	json_decref(j);
	return rc;
}

/* Stream callback: the gateway sends one JSON object per line. */
static size_t
watch_write(char *p, size_t sz, size_t n, void *arg)
{
	struct etcd_watch	*w = arg;
	char			*nb, *nl, *line;
	json_t			*j, *ev;
	size_t			 i;

	if (w->es->stopping)
		return 0;	/* aborts the transfer */
	if ((nb = realloc(w->buf, w->len + sz * n + 1)) == NULL)
		return 0;
	w->buf = nb;
	memcpy(w->buf + w->len, p, sz * n);
	w->len += sz * n;
	w->buf[w->len] = '\0';
	line = w->buf;
	while ((nl = strchr(line, '\n')) != NULL) {
		*nl = '\0';
		if ((j = json_loads(line, 0, NULL)) != NULL) {
			json_t *res = json_object_get(j, "result");
			json_array_foreach(json_object_get(res, "events"), i, ev) {
				json_t *kv = json_object_get(ev, "kv");
				char *k = unb64(json_object_get(kv, "key"));
				int64_t r = jint(json_object_get(kv,
				    "mod_revision"));
				if (k != NULL)
					store_post_remote(w->es->parent, k);
				free(k);
				if (r >= w->from)
					w->from = r + 1;
			}
			json_decref(j);
		}
		line = nl + 1;
	}
	w->len -= (size_t)(line - w->buf);
	memmove(w->buf, line, w->len + 1);
	return sz * n;
}

static int
watch_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c,
    curl_off_t d)
{
	struct etcd_watch *w = arg;

	return w->es->stopping;
}

/* Keep a watch stream open, reconnecting (to any endpoint) from the
 * revision last seen, so no change is missed while a member is down. */
static void *
watch_main(void *arg)
{
	struct etcd_watch	*w = arg;
	struct etcd_store	*es = w->es;
	CURL			*c = curl_easy_init();
	char			 url[512], *k = b64(w->prefix), *end, *eb;
	char			*body;
	int			 i = 0;

	end = prefix_end(w->prefix);
	eb = end ? b64(end) : NULL;
	while (!es->stopping && c != NULL) {
		char from[32];
		json_t *req;
		snprintf(from, sizeof(from), "%lld", (long long)w->from);
		req = json_pack("{s:{s:s, s:s, s:s}}", "create_request", "key",
		    k ? k : "", "range_end", eb ? eb : "", "start_revision",
		    from);
		body = json_dumps(req, JSON_COMPACT);
		json_decref(req);
		snprintf(url, sizeof(url), "%s/v3/watch", es->ep[i % es->nep]);
		curl_easy_reset(c);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_write);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, watch_progress);
		curl_easy_setopt(c, CURLOPT_XFERINFODATA, w);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		etcd_curl_tls(es, c);
		/* A silent stream may be a dead member: reconnect now and
		 * then (we resume from the last revision, so it is cheap). */
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
		w->len = 0;
		curl_easy_perform(c);
		free(body);
		if (es->stopping)
			break;
		/* Changes may have been missed while reconnecting: one
		 * notification makes the watchers re-read. */
		store_post_remote(es->parent, w->prefix);
		i++;
		usleep(200 * 1000);
	}
	if (c != NULL)
		curl_easy_cleanup(c);
	free(k);
	free(end);
	free(eb);
	return NULL;
}

static int
etcd_watch(void *impl, const char *prefix)
{
	struct etcd_store	*es = impl;
	struct etcd_watch	*w;

	if (es->nw == 16 || (w = calloc(1, sizeof(*w))) == NULL)
		return -1;
	w->es = es;
	w->prefix = strdup(prefix);
	w->from = etcd_revision(es) + 1;
	if (w->prefix == NULL || pthread_create(&w->thread, NULL, watch_main,
	    w) != 0) {
		free(w->prefix);
		free(w);
		return -1;
	}
	w->started = 1;
	es->w[es->nw++] = w;
	return 0;
}

/*
 * Keep the presence key alive: grant a lease, put the key on it, then
 * send keep-alives at a third of the TTL.  When the lease is lost (etcd
 * unreachable longer than the TTL), start over with a new one.
 */
/* Grant a lease and put the key on it; p->id is "" on failure. */
static int
presence_grant(struct etcd_presence *p, CURL *c, struct err *e)
{
	struct etcd_store	*es = p->es;
	char			*k = b64(p->key), *v = b64(p->value);
	json_t			*j, *body;

	p->id[0] = '\0';
	body = json_pack("{s:i}", "TTL", p->ttl);
	j = c != NULL ? etcd_call_with(es, c, "/v3/lease/grant", body, e) :
	    etcd_call(es, "/v3/lease/grant", body, e);
	json_decref(body);
	if (j != NULL && json_object_get(j, "ID") != NULL) {
		snprintf(p->id, sizeof(p->id), "%lld", (long long)jint(
		    json_object_get(j, "ID")));
		json_decref(j);
		body = json_pack("{s:s, s:s, s:s}", "key", k ? k : "", "value",
		    v ? v : "", "lease", p->id);
		j = c != NULL ? etcd_call_with(es, c, "/v3/kv/put", body, e) :
		    etcd_call(es, "/v3/kv/put", body, e);
		json_decref(body);
		if (j == NULL)
			p->id[0] = '\0';
	}
	json_decref(j);
	free(k);
	free(v);
	return p->id[0] != '\0' ? 0 : -1;
}

static void *
presence_main(void *arg)
{
	struct etcd_presence	*p = arg;
	struct etcd_store	*es = p->es;
	CURL			*c = curl_easy_init();
	char			*id = p->id;
	json_t			*j, *body;
	int			 i;

	while (!es->stopping && c != NULL) {
		if (id[0] == '\0') {
			presence_grant(p, c, NULL);
		} else {
			body = json_pack("{s:s}", "ID", id);
			j = etcd_call_with(es, c, "/v3/lease/keepalive", body,
			    NULL);
			json_decref(body);
			/* TTL 0 (or no answer): the lease is gone. */
			if (j == NULL || jint(json_object_get(json_object_get(j,
			    "result"), "TTL")) <= 0)
				id[0] = '\0';
			json_decref(j);
		}
		for (i = 0; i < p->ttl * 10 / 3 && !es->stopping; i++)
			usleep(100 * 1000);
	}
	/* A clean stop ends the presence at once rather than after ttl. */
	if (id[0] != '\0' && c != NULL) {
		body = json_pack("{s:s}", "ID", id);
		json_decref(etcd_call_with(es, c, "/v3/kv/lease/revoke", body,
		    NULL));
		json_decref(body);
	}
	if (c != NULL)
		curl_easy_cleanup(c);
	return NULL;
}

static int
etcd_presence(void *impl, const char *key, const char *value, int ttl,
    struct err *e)
{
	struct etcd_store	*es = impl;
	struct etcd_presence	*p;

	if (es->pr != NULL)
		return err_set(e, E_INTERNAL, "presence already announced");
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->key = strdup(key)) == NULL || (p->value = strdup(value)) == NULL) {
		if (p != NULL) {
			free(p->key);
			free(p);
		}
		return err_set(e, E_INTERNAL, "out of memory");
	}
	p->es = es;
	p->ttl = ttl < 2 ? 2 : ttl;
	/* The first lease before returning: the node is visible as soon as
	 * it says it is up. */
	if (presence_grant(p, NULL, e) == -1) {
		free(p->key);
		free(p->value);
		free(p);
		return -1;
	}
	if (pthread_create(&p->thread, NULL, presence_main, p) != 0) {
		free(p->key);
		free(p->value);
		free(p);
		return err_set(e, E_INTERNAL, "cannot start the lease thread");
	}
	es->pr = p;
	return 0;
}

static void
etcd_close(void *impl)
{
	struct etcd_store	*es = impl;
	int			 i;

	es->stopping = 1;
	if (es->pr != NULL) {
		pthread_join(es->pr->thread, NULL);
		free(es->pr->key);
		free(es->pr->value);
		free(es->pr);
	}
	for (i = 0; i < es->nw; i++) {
		pthread_join(es->w[i]->thread, NULL);
		free(es->w[i]->prefix);
		free(es->w[i]->buf);
		free(es->w[i]);
	}
	for (i = 0; i < es->nep; i++)
		free(es->ep[i]);
	while (es->nidle > 0)
		curl_easy_cleanup(es->idle[--es->nidle]);
	pthread_mutex_destroy(&es->mu);
	free(es->ca);
	free(es->cert);
	free(es->key);
	free(es);
}

const struct store_driver store_etcd_driver = {
	.name = "etcd",
	.match = etcd_match,
	.open = etcd_open,
	.close = etcd_close,
	.get = etcd_get,
	.list = etcd_list,
	.revision = etcd_revision,
	.commit = etcd_commit,
	.watch = etcd_watch,
	.presence = etcd_presence,
	/* etcd's --max-txn-ops default */
	.max_txn_ops = 128,
	.shared = 1,
};
