/*
 * join.c — a fresh node joins an existing cluster.
 *
 * The new node proves the admin credentials to a node of the cluster
 * (GET /v1/cluster/store over HTTPS), learns from it where the cluster
 * store is, registers itself there under a new uid, and from then on
 * serves what the store says: the same certificates, policy and
 * databases as every other node.  There is no copying of files and no
 * replication of our own: the store (etcd) is shared.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "certs.h"
#include "curlbuf.h"
#include "fsutil.h"
#include "join.h"
#include "log.h"

#include <event2/event.h>

/*
 * Ask the node at "addr[:port]" where the store is.  The cluster's CA is
 * not known yet, so the server certificate cannot be verified here: the
 * operator runs this on the cluster's own network (documented).
 */
static char *
join_ask_store(const char *node, int default_port, const char *user,
    const char *password, struct err *e)
{
	CURL		*c;
	struct curlbuf	 b = { NULL, 0, 65536 };
	char		 url[300], *store = NULL;
	long		 code = 0;
	CURLcode	 cc;
	json_t		*j;

	if (strchr(node, ':') != NULL)
		snprintf(url, sizeof(url), "https://%s/v1/cluster/store", node);
	else
		snprintf(url, sizeof(url), "https://%s:%d/v1/cluster/store",
		    node, default_port);
	if ((c = curl_easy_init()) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_USERNAME, user);
	curl_easy_setopt(c, CURLOPT_PASSWORD, password);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curlbuf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
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
join_register(struct node *n, struct store *s, struct err *e)
{
	struct store_kv		*kvs;
	struct store_txn	*t;
	size_t			 nkv, i;
	char			 key[64];
	json_t			*doc;
	int			 uid = 1, rc, tries;

	for (tries = 0; tries < 5; tries++) {
		if (store_list(s, "/moat/nodes/", &kvs, &nkv, e) == -1)
			return -1;
		for (i = 0; i < nkv; i++) {
			json_t *d = json_loads(kvs[i].value, 0, NULL);
			int u = (int)json_integer_value(json_object_get(d, "uid"));
			if (u >= uid)
				uid = u + 1;
			json_decref(d);
		}
		store_kvs_free(kvs, nkv);
		snprintf(key, sizeof(key), "/moat/nodes/%d", uid);
		doc = json_pack("{s:i, s:s, s:i, s:s, s:s, s:{}}", "uid", uid,
		    "addr", n->cfg.addr, "api_port", n->cfg.api_port, "status",
		    "active", "software_version", MOAT_VERSION, "certificates");
		t = store_txn_new();
		store_txn_cmp(t, key, 0);
		store_txn_put_json(t, key, doc);
		json_decref(doc);
		rc = store_txn_commit(s, t, e);
		store_txn_free(t);
		if (rc == 0)
			return uid;
		if (e == NULL || e->code != E_CONFLICT)
			return -1;
		err_clear(e);
	}
	return err_set(e, E_CONFLICT, "could not take a node uid; retry");
}

int
node_join_cluster(struct node *n, const char *node, const char *user,
    const char *password, json_t **out, struct err *e)
{
	struct store	*s = NULL, *old;
	char		*url, path[4096];
	json_t		*id;
	int		 uid;

	if (n->bootstrapped)
		return err_set(e, E_CLUSTER_EXISTS, "this node already belongs "
		    "to cluster %s", n->fqdn);
	if ((url = join_ask_store(node, n->cfg.api_port, user, password,
	    e)) == NULL)
		return -1;
	if ((s = store_open(url, n->cfg.data_dir, e)) == NULL)
		goto fail;
	if ((uid = join_register(n, s, e)) == -1)
		goto fail;
	id = json_pack("{s:i, s:s}", "uid", uid, "store", url);
	snprintf(path, sizeof(path), "%s/node.json", n->cfg.data_dir);
	char *txt = json_dumps(id, JSON_COMPACT);
	json_decref(id);
	if (txt == NULL || fs_write_atomic(path, txt, strlen(txt), 0600,
	    e) == -1) {
		free(txt);
		goto fail;
	}
	free(txt);
	/* From here on this node is the store's: the old, empty embedded
	 * store is left behind. */
	old = n->store;
	if (n->store_ev != NULL) {
		event_free(n->store_ev);
		n->store_ev = NULL;
	}
	n->store = s;
	n->uid = uid;
	free(n->store_url_buf);
	n->cfg.store_url = n->store_url_buf = url;
	store_close(old);
	if (node_attach_store(n, e) == -1)
		return -1;
	log_audit("node %d joined cluster %s through %s (user %s)", uid,
	    n->fqdn ? n->fqdn : "?", node, user);
	*out = json_pack("{s:i, s:o}", "node_uid", uid, "cluster",
	    node_cluster_json(n));
	return 0;
fail:
	store_close(s);
	free(url);
	return -1;
}

/*
 * Move this node's cluster from its current store (the embedded one) to
 * url (etcd), keeping everything: every /moat/ key is copied in one
 * transaction that only succeeds on a store without a cluster, then the
 * node switches over exactly as a joining node does.  The old store file
 * stays on disk, untouched, as a backup.
 */
int
node_move_store(struct node *n, const char *url, const char *who,
    struct err *e)
{
	struct store		*s;
	struct store_kv		*kvs = NULL;
	struct store_txn	*t = NULL;
	struct store		*old;
	size_t			 nkv = 0, i;
	char			 path[4096], *txt = NULL, *u = NULL;
	json_t			*id;
	int			 rc = -1;

	if (strncmp(url, "etcd://", 7) != 0 && strncmp(url, "etcds://", 8) != 0)
		return err_set(e, E_INVALID_SCHEMA, "the new store must be "
		    "etcd://host:port[,host:port...] or etcds://...");
	if (strcmp(store_driver_name(n->store), "sqlite") != 0)
		return err_set(e, E_CONFLICT, "this cluster already runs on %s",
		    store_driver_name(n->store));
	if ((s = store_open(url, n->cfg.data_dir, e)) == NULL)
		return -1;
	if (store_list(n->store, "/moat/", &kvs, &nkv, e) == -1 ||
	    (t = store_txn_new()) == NULL)
		goto out;
	/* Only into an empty store: never mix two clusters. */
	store_txn_cmp(t, "/moat/cluster", 0);
	for (i = 0; i < nkv; i++)
		if (strncmp(kvs[i].key, "/moat/alive/", 12) != 0)
			store_txn_put(t, kvs[i].key, kvs[i].value);
	if (store_txn_commit(s, t, e) == -1) {
		if (e != NULL && e->code == E_CONFLICT)
			err_set(e, E_CLUSTER_EXISTS, "the store at %.128s "
			    "already holds a cluster", url);
		goto out;
	}
	id = json_pack("{s:i, s:s}", "uid", n->uid, "store", url);
	txt = json_dumps(id, JSON_COMPACT);
	json_decref(id);
	snprintf(path, sizeof(path), "%s/node.json", n->cfg.data_dir);
	if (txt == NULL || (u = strdup(url)) == NULL ||
	    fs_write_atomic(path, txt, strlen(txt), 0600, e) == -1)
		goto out;
	old = n->store;
	if (n->store_ev != NULL) {
		event_free(n->store_ev);
		n->store_ev = NULL;
	}
	n->store = s;
	s = NULL;
	free(n->store_url_buf);
	n->cfg.store_url = n->store_url_buf = u;
	u = NULL;
	store_close(old);
	if (node_attach_store(n, e) == -1)
		goto out;
	log_audit("%s moved cluster %s (%zu keys) to %s", who, n->fqdn, nkv,
	    url);
	rc = 0;
out:
	free(u);
	free(txt);
	store_txn_free(t);
	store_kvs_free(kvs, nkv);
	store_close(s);
	return rc;
}
