/*
 * store.c — the driver-independent part of the store: transactions,
 * watchers, and the hand-over of changes seen by a driver's own thread
 * (etcd's watch stream) to the control thread.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "store_impl.h"

#define STORE_MAX_WATCH	16
#define STORE_MAX_QUEUE	4096

struct store {
	const struct store_driver	*d;
	void				*impl;
	struct {
		char		*prefix;
		store_watch_cb	 cb;
		void		*arg;
	} watch[STORE_MAX_WATCH];
	int				 nwatch;
	int				 evfd;
	char				*url;
	pthread_mutex_t			 mu;	/* guards queue */
	char				*queue[STORE_MAX_QUEUE];
	int				 nqueue;
};

static const struct store_driver *const drivers[] = {
	&store_sqlite_driver,
	&store_etcd_driver,
};

struct store *
store_open(const char *url, const char *data_dir, struct err *e)
{
	struct store	*s;
	size_t		 i;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	for (i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
		if (drivers[i]->match(url))
			s->d = drivers[i];
	if (s->d == NULL) {
		free(s);
		err_set(e, E_STORE, "unsupported store \"%.128s\": use \"sqlite\" "
		    "or \"etcd://host:port[,host:port...]\"", url);
		return NULL;
	}
	s->evfd = -1;
	s->url = strdup(url);
	pthread_mutex_init(&s->mu, NULL);
	if ((s->impl = s->d->open(s, url, data_dir, e)) == NULL) {
		pthread_mutex_destroy(&s->mu);
		free(s->url);
		free(s);
		return NULL;
	}
	return s;
}

void
store_close(struct store *s)
{
	int i;

	if (s == NULL)
		return;
	/* The driver stops its threads first: nothing posts after this. */
	s->d->close(s->impl);
	for (i = 0; i < s->nwatch; i++)
		free(s->watch[i].prefix);
	for (i = 0; i < s->nqueue; i++)
		free(s->queue[i]);
	if (s->evfd != -1)
		close(s->evfd);
	pthread_mutex_destroy(&s->mu);
	free(s->url);
	free(s);
}

const char *
store_driver_name(struct store *s)
{
	return s->d->name;
}

int
store_is_shared(struct store *s)
{
	return s->d->shared;
}

int
store_max_txn_ops(struct store *s)
{
	return s->d->max_txn_ops;
}

const char *
store_url(struct store *s)
{
	return s->url;
}

int
store_presence(struct store *s, const char *key, const char *value, int ttl,
    struct err *e)
{
	struct store_txn	*t;
	int			 rc;

	if (s->d->presence != NULL)
		return s->d->presence(s->impl, key, value, ttl, e);
	if ((t = store_txn_new()) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	rc = store_txn_put(t, key, value) == 0 ? s->d->commit(s->impl, t, NULL,
	    e) :
	    err_set(e, E_INTERNAL, "out of memory");
	store_txn_free(t);
	return rc;
}

int
store_get(struct store *s, const char *key, char **val, int64_t *mod_rev,
    struct err *e)
{
	return s->d->get(s->impl, key, val, mod_rev, e);
}

int
store_list(struct store *s, const char *prefix, struct store_kv **kvs,
    size_t *n, struct err *e)
{
	return s->d->list(s->impl, prefix, kvs, n, NULL, e);
}

int
store_list_at(struct store *s, const char *prefix, struct store_kv **kvs,
    size_t *n, int64_t *rev, struct err *e)
{
	return s->d->list(s->impl, prefix, kvs, n, rev, e);
}

void
store_kvs_free(struct store_kv *kvs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(kvs[i].key);
		if (kvs[i].value != NULL) {
			explicit_bzero(kvs[i].value, strlen(kvs[i].value));
			free(kvs[i].value);
		}
	}
	free(kvs);
}

int64_t
store_revision(struct store *s)
{
	return s->d->revision(s->impl);
}

struct store_txn *
store_txn_new(void)
{
	return calloc(1, sizeof(struct store_txn));
}

static int
store_txn_add(struct store_txn *t, enum txn_op_kind k, const char *key,
    const char *value, int64_t rev)
{
	struct txn_op *nops;

	if (t == NULL)
		return -1;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		if ((nops = realloc(t->ops, cap * sizeof(*nops))) == NULL) {
			t->failed = 1;
			return -1;
		}
		t->ops = nops;
		t->cap = cap;
	}
	t->ops[t->n].kind = k;
	t->ops[t->n].key = strdup(key);
	t->ops[t->n].value = value ? strdup(value) : NULL;
	t->ops[t->n].mod_rev = rev;
	if (t->ops[t->n].key == NULL || (value && !t->ops[t->n].value)) {
		free(t->ops[t->n].key);
		free(t->ops[t->n].value);
		t->failed = 1;
		return -1;
	}
	t->n++;
	return 0;
}

int
store_txn_cmp(struct store_txn *t, const char *key, int64_t mod_rev)
{
	return store_txn_add(t, OP_CMP, key, NULL, mod_rev);
}

int
store_txn_put(struct store_txn *t, const char *key, const char *value)
{
	return store_txn_add(t, OP_PUT, key, value, 0);
}

int
store_txn_del(struct store_txn *t, const char *key)
{
	return store_txn_add(t, OP_DEL, key, NULL, 0);
}

int
store_txn_put_json(struct store_txn *t, const char *key, const json_t *doc)
{
	char	*s = json_dumps(doc, JSON_COMPACT);
	int	 rc;

	if (s == NULL) {
		if (t != NULL)
			t->failed = 1;
		return -1;
	}
	rc = store_txn_put(t, key, s);
	/* Documents may hold private keys. */
	explicit_bzero(s, strlen(s));
	free(s);
	return rc;
}

void
store_txn_free(struct store_txn *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++) {
		free(t->ops[i].key);
		if (t->ops[i].value != NULL) {
			explicit_bzero(t->ops[i].value,
			    strlen(t->ops[i].value));
			free(t->ops[i].value);
		}
	}
	free(t->ops);
	free(t);
}

/* Each watcher for every key of the change set under its prefix, as
 * etcd's watch reports them: a watcher may act on the kind of key, and
 * the first key of a transaction need not be the one that matters. */
static void
store_notify(struct store *s, char *const *keys, size_t n)
{
	size_t	 i;
	int	 w;

	for (w = 0; w < s->nwatch; w++) {
		size_t plen = strlen(s->watch[w].prefix);
		for (i = 0; i < n; i++)
			if (strncmp(keys[i], s->watch[w].prefix, plen) == 0)
				s->watch[w].cb(keys[i], s->watch[w].arg);
	}
}

size_t
store_txn_len(const struct store_txn *t)
{
	return t != NULL ? t->n : 0;
}

int
store_txn_commit(struct store *s, struct store_txn *t, struct err *e)
{
	return store_txn_commit_rev(s, t, NULL, e);
}

int
store_txn_commit_rev(struct store *s, struct store_txn *t, int64_t *rev,
    struct err *e)
{
	char	**keys;
	size_t	 i, n = 0;

	/* A transaction missing an operation would commit something else
	 * than its writer decided: never. */
	if (t == NULL || t->failed)
		return err_set(e, E_INTERNAL, "out of memory while building a "
		    "store transaction; nothing was changed");
	if (s->d->max_txn_ops > 0 && t->n > (size_t)s->d->max_txn_ops)
		return err_set(e, E_STORE, "a transaction of %zu operations is "
		    "over the store's limit of %d; nothing was changed", t->n,
		    s->d->max_txn_ops);
	if (s->d->commit(s->impl, t, rev, e) == -1)
		return -1;
	if ((keys = calloc(t->n + 1, sizeof(char *))) == NULL)
		return 0;
	for (i = 0; i < t->n; i++)
		if (t->ops[i].kind != OP_CMP)
			keys[n++] = t->ops[i].key;
	store_notify(s, keys, n);
	free(keys);
	return 0;
}

int
store_watch(struct store *s, const char *prefix, store_watch_cb cb, void *arg)
{
	if (s->nwatch == STORE_MAX_WATCH)
		return -1;
	if ((s->watch[s->nwatch].prefix = strdup(prefix)) == NULL)
		return -1;
	s->watch[s->nwatch].cb = cb;
	s->watch[s->nwatch].arg = arg;
	s->nwatch++;
	if (s->d->watch != NULL) {
		if (s->evfd == -1)
			s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		return s->d->watch(s->impl, prefix);
	}
	return 0;
}

int
store_event_fd(struct store *s)
{
	return s->evfd;
}

void
store_post_remote(struct store *s, const char *key)
{
	uint64_t one = 1;

	pthread_mutex_lock(&s->mu);
	if (s->nqueue < STORE_MAX_QUEUE)
		s->queue[s->nqueue++] = strdup(key);
	pthread_mutex_unlock(&s->mu);
	if (s->evfd != -1)
		(void)!write(s->evfd, &one, sizeof(one));
}

void
store_dispatch(struct store *s)
{
	char		*q[STORE_MAX_QUEUE];
	uint64_t	 v;
	int		 n, i;

	if (s->evfd != -1)
		(void)!read(s->evfd, &v, sizeof(v));
	pthread_mutex_lock(&s->mu);
	n = s->nqueue;
	memcpy(q, s->queue, (size_t)n * sizeof(char *));
	s->nqueue = 0;
	pthread_mutex_unlock(&s->mu);
	for (i = 0; i < n; i++) {
		if (q[i] != NULL)
			store_notify(s, &q[i], 1);
		free(q[i]);
	}
}
