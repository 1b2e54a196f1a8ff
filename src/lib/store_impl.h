/*
 * store_impl.h — what a store driver implements, and what it may use of
 * the generic part (store.c): the transaction's operations and the queue
 * that carries changes seen by another thread to the control thread.
 */
#ifndef MOAT_STORE_IMPL_H
#define MOAT_STORE_IMPL_H

#include "store.h"

enum txn_op_kind { OP_CMP, OP_PUT, OP_DEL };

struct txn_op {
	enum txn_op_kind kind;
	char		*key;
	char		*value;
	int64_t		 mod_rev;
};

struct store_txn {
	struct txn_op	*ops;
	size_t		 n, cap;
	int		 failed;	/* an op could not be added: the
					   commit must fail (sticky) */
};

struct store_driver {
	const char	*name;
	/* 1 when url is this driver's */
	int		(*match)(const char *url);
	void		*(*open)(struct store *s, const char *url,
			    const char *data_dir, struct err *e);
	void		 (*close)(void *impl);
	int		 (*get)(void *impl, const char *key, char **val,
			    int64_t *mod_rev, struct err *e);
	/* *rev (may be NULL): the store revision the list was read at. */
	int		 (*list)(void *impl, const char *prefix,
			    struct store_kv **kvs, size_t *n, int64_t *rev,
			    struct err *e);
	int64_t		 (*revision)(void *impl);
	/* All or nothing; E_CONFLICT when a compare fails. */
	/* *rev (may be NULL): the revision the commit created. */
	int		 (*commit)(void *impl, const struct store_txn *t,
			    int64_t *rev, struct err *e);
	/* Most operations one transaction may hold (0: no limit). */
	int		 max_txn_ops;
	/* Other processes share this store (nodes can join it). */
	int		 shared;
	/* Start reporting changes under prefix made by other nodes (NULL:
	 * the driver has no other writers). */
	int		 (*watch)(void *impl, const char *prefix);
	/* Keep key = value in the store for as long as this process lives
	 * and reaches the store (etcd: a lease kept alive by a thread). */
	int		 (*presence)(void *impl, const char *key,
			    const char *value, int ttl, struct err *e);
};

extern const struct store_driver store_sqlite_driver;
extern const struct store_driver store_etcd_driver;

/* From any thread: key changed elsewhere; store_dispatch() will tell the
 * watchers on the control thread. */
void	store_post_remote(struct store *s, const char *key);

#endif
