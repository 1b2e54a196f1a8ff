/*
 * node.c — one moatd's lifecycle: the data dir, the store and its watch,
 * and the parts of the node (apply, rollout, work pool).
 *
 * The watch is where the one-way flow turns: a change of configuration
 * schedules apply; a change of what nodes report (or of their presence)
 * re-checks the parked requests.  Neither runs inside the writer's call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alerts.h"
#include "apply.h"
#include "fsutil.h"
#include "jobs.h"
#include "log.h"
#include "node.h"
#include "certacme.h"
#include "rollout.h"
#include "schema.h"
#include "seal.h"
#include "sessions.h"
#include "users.h"
#include "workpool.h"

#define PRESENCE_TTL	5	/* seconds a dead node stays "active" */
#define RETRY_MIN_MS	250
#define RETRY_MAX_MS	2000
#define HASH_THREADS	2	/* argon2id: 64 MiB each */

int
node_is_member(const struct node *n)
{
	return n->uid > 0;
}

/* Changes of the cluster store, from this node or another. */
static void
node_store_cb(const char *key, void *arg)
{
	struct node *n = arg;

	if (n->uid <= 0)
		return;
	if (schema_classify(key, NULL) == SK_USER)
		users_cache_flush();
	if (schema_is_config(key))
		apply_schedule(n);
	else
		rollout_check(n->ro);
}

static void
node_store_event(evutil_socket_t fd, short what, void *arg)
{
	struct node *n = arg;

	store_dispatch(n->store);
}

int
node_attach_store(struct node *n, struct err *e)
{
	char	key[SCHEMA_KEY_MAX];
	int	fd;

	if (n->uid > 0 && schema_check(n->store, e) == -1)
		return -1;
	if (n->store_ev == NULL) {
		store_watch(n->store, SCHEMA_ROOT, node_store_cb, n);
		if ((fd = store_event_fd(n->store)) != -1) {
			n->store_ev = event_new(n->base, fd, EV_READ |
			    EV_PERSIST, node_store_event, n);
			event_add(n->store_ev, NULL);
		}
	}
	if (n->uid > 0) {
		/* The first lease before the node says it is up. */
		if (store_presence(n->store, schema_key_of(SK_ALIVE, n->uid,
		    key), n->cfg.addr, PRESENCE_TTL, e) == -1)
			return -1;
		apply_schedule(n);
	}
	return 0;
}

int
node_switch_store(struct node *n, struct store *s, const char *url, int uid,
    struct err *e)
{
	json_t	*id;
	char	*txt, *u, path[4096];
	int	 rc;

	id = json_pack("{s:i, s:s}", "uid", uid, "store", url);
	txt = id != NULL ? json_dumps(id, JSON_COMPACT) : NULL;
	json_decref(id);
	snprintf(path, sizeof(path), "%s/node.json", n->cfg.data_dir);
	if (txt == NULL || (u = strdup(url)) == NULL) {
		free(txt);
		store_close(s);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	rc = fs_write_atomic(path, txt, strlen(txt), 0600, e);
	free(txt);
	if (rc == -1) {
		free(u);
		store_close(s);
		return -1;
	}
	/* From here on this node is the new store's: the old one (the
	 * embedded file) is left behind as it was, a backup. */
	if (n->store_ev != NULL) {
		event_free(n->store_ev);
		n->store_ev = NULL;
	}
	store_close(n->store);
	n->store = s;
	n->uid = uid;
	free(n->store_url_buf);
	n->cfg.store_url = n->store_url_buf = u;
	return node_attach_store(n, e);
}

/* ---- a member whose store does not answer at start ---- */

/* Opening the store is a network call (etcd's driver asks a member at
 * once): it runs on the work pool, never on the control thread. */
struct store_probe {
	struct node	*n;
	struct store	*s;	/* the answer: opened, or NULL with e */
	struct err	 e;
};

static void
node_probe_work(void *arg)
{
	struct store_probe *p = arg;

	p->s = store_open(p->n->cfg.store_url, p->n->cfg.data_dir, &p->e);
}

static void
node_probe_done(void *arg)
{
	struct store_probe	*p = arg;
	struct node		*n = p->n;
	struct err		 e = { 0 };
	struct timeval		 tv;

	n->probe = NULL;
	if (p->s != NULL) {
		n->store = p->s;
		log_info("the cluster store answers: catching up");
		if (node_attach_store(n, &e) == 0) {
			err_clear(&p->e);
			free(p);
			return;
		}
		log_error("%s", err_msg(&e));
		err_clear(&e);
		store_close(n->store);
		n->store = NULL;
	} else {
		log_warn("still waiting for the cluster store at %s: %s; retry "
		    "in %d ms", n->cfg.store_url, err_msg(&p->e), n->retry_ms);
	}
	err_clear(&p->e);
	free(p);
	/* The probe took its time: count the back-off from now. */
	event_base_update_cache_time(n->base);
	tv.tv_sec = n->retry_ms / 1000;
	tv.tv_usec = (n->retry_ms % 1000) * 1000;
	evtimer_add(n->retry_ev, &tv);
	n->retry_ms = n->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS :
	    n->retry_ms * 2;
}

static void
node_retry_store(evutil_socket_t fd, short what, void *arg)
{
	struct node		*n = arg;
	struct store_probe	*p;
	struct timeval		 tv = { 1, 0 };

	if ((p = calloc(1, sizeof(*p))) != NULL) {
		p->n = n;
		if (workpool_run(n->wp, node_probe_work, node_probe_done,
		    p) == 0) {
			n->probe = p;
			return;
		}
		free(p);
	}
	evtimer_add(n->retry_ev, &tv);
}

int
node_init(struct node *n, struct event_base *base,
    const struct node_config *cfg, struct err *e)
{
	char		 path[4096];
	struct err	 se = { 0 };
	json_t		*id;

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
	/* The key that seals private keys in the store (seal.h): created
	 * with the cluster, handed to a node when it joins. */
	snprintf(path, sizeof(path), "%s/cluster.key", cfg->data_dir);
	if (seal_key_load(path, e) == -1)
		return -1;
	/* A node that joined a cluster remembers its uid and store. */
	snprintf(path, sizeof(path), "%s/node.json", cfg->data_dir);
	if ((id = json_load_file(path, 0, NULL)) != NULL) {
		n->uid = (int)json_integer_value(json_object_get(id, "uid"));
		if (json_string_value(json_object_get(id, "store")) != NULL)
			n->cfg.store_url = n->store_url_buf = strdup(
			    json_string_value(json_object_get(id, "store")));
		json_decref(id);
	}
	if ((n->ro = rollout_new(n)) == NULL ||
	    (n->ss = sessions_new(cfg->ui_idle_timeout)) == NULL ||
	    (n->jobs = jobs_new(n)) == NULL ||
	    (n->wp = workpool_new(base, HASH_THREADS, e)) == NULL)
		return err_set(e, E_INTERNAL, "cannot start the control plane");
	if (apply_init(n, e) == -1)
		return -1;
	if ((n->store = store_open(n->cfg.store_url, cfg->data_dir,
	    &se)) != NULL) {
		err_clear(&se);
		if (node_attach_store(n, e) == -1)
			return -1;
		/* Serve the cluster's certificates and databases from the
		 * first connection on, not a moment later. */
		if (n->uid > 0)
			apply_now(n);
		return 0;
	}
	/* A bad URL, or a store that refuses this node's TLS, will not get
	 * better by waiting: a node with nothing to serve says so and stops
	 * (a member serves what it last applied and keeps trying). */
	if (strncmp(n->cfg.store_url, "etcd", 4) != 0 ||
	    (n->uid <= 0 && se.code == E_STORE_REFUSED)) {
		*e = se;
		return -1;
	}
	/* A member serves what it last applied while its store does not
	 * answer (etcd starting with the node, a network cut), and keeps
	 * trying; a node in no cluster yet answers the bootstrap calls
	 * (503 until the store answers). */
	log_warn("the cluster store at %s does not answer: %s",
	    n->cfg.store_url, err_msg(&se));
	err_clear(&se);
	if (n->uid > 0 && apply_from_cache(n, &se) == -1)
		log_warn("%s; nothing to serve until the store answers",
		    err_msg(&se));
	err_clear(&se);
	log_info("waiting for the cluster store; retrying in the background");
	n->retry_ms = RETRY_MIN_MS;
	if ((n->retry_ev = evtimer_new(base, node_retry_store, n)) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	{
		struct timeval tv = { 0, RETRY_MIN_MS * 1000 };
		evtimer_add(n->retry_ev, &tv);
	}
	return 0;
}

void
node_shutdown(struct node *n)
{
	struct store_txn	*t;
	char			 key[SCHEMA_KEY_MAX];

	if (n->store != NULL && n->uid > 0) {
		apply_report_down(n);
		alerts_node_stopping(n);
		/* etcd revokes the lease itself when the store is closed */
		if (!store_is_shared(n->store) && (t = store_txn_new()) !=
		    NULL) {
			store_txn_del(t, schema_key_of(SK_ALIVE, n->uid, key));
			store_txn_commit(n->store, t, NULL);
			store_txn_free(t);
		}
	}
	certacme_shutdown(n);
	apply_shutdown(n);
	jobs_free(n->jobs);
	rollout_free(n->ro);
	sessions_free(n->ss);
	workpool_free(n->wp);
	/* A probe the pool ran but could not complete (it is stopped). */
	if (n->probe != NULL) {
		store_close(n->probe->s);
		err_clear(&n->probe->e);
		free(n->probe);
	}
	if (n->store_ev != NULL)
		event_free(n->store_ev);
	if (n->retry_ev != NULL)
		event_free(n->retry_ev);
	store_close(n->store);
	free(n->store_url_buf);
}
