/*
 * shards.h — the redis-server processes of this node's databases.
 *
 * One process per database, listening on a unix socket in its own
 * directory only (the endpoint is the only way in), started, watched
 * and restarted with back-off by moatd.  Runs on the control thread.
 */
#ifndef MOATD_SHARDS_H
#define MOATD_SHARDS_H

#include <event2/event.h>

#include "err.h"

struct shards;

/* RS's data_persistence values. */
enum shard_persistence { PERSIST_AOF, PERSIST_SNAPSHOT, PERSIST_DISABLED };

struct shard_conf {
	int			 uid;
	long long		 maxmemory;	/* bytes */
	const char		*password;	/* NULL or "": none */
	enum shard_persistence	 persistence;
};

/* on_state is called when a shard comes up (up=1) or goes down (0). */
typedef void (*shard_state_cb)(int uid, int up, void *arg);

struct shards	*shards_new(struct event_base *base, const char *data_dir,
		    shard_state_cb cb, void *arg, struct err *e);
/* Stops every shard (they keep their data), without calling back. */
void		 shards_free(struct shards *s);
/* Start the shard if needed, or apply a changed configuration to the
 * running process without restarting it. */
int		 shards_ensure(struct shards *s, const struct shard_conf *c,
		    struct err *e);
/* Stop it; with remove, delete its directory and data. */
void		 shards_stop(struct shards *s, int uid, int remove);
/* The unix socket path of the shard (valid while it exists). */
const char	*shards_socket(struct shards *s, int uid);
int		 shards_is_up(struct shards *s, int uid);

#endif
