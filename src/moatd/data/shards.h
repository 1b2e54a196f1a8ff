/*
 * shards.h — the redis-server processes of this node's databases.
 *
 * One process per database, listening on a unix socket in its own
 * directory only (the endpoint is the only way in), started, watched
 * and restarted with back-off by moatd.  Runs on the control thread and
 * never blocks it: processes are watched through SIGCHLD and timers of
 * the event base, live configuration changes go out in the background.
 */
#ifndef MOATD_SHARDS_H
#define MOATD_SHARDS_H

#include <stddef.h>

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
	/* Replica Of: replicate from the syncer's relay on 127.0.0.1 at
	 * this port, authenticating with token (0: a primary). */
	int			 replica_port;
	const char		*replica_token;
};

/* on_state is called when a shard comes up (up=1) or goes down (0). */
typedef void (*shard_state_cb)(int uid, int up, void *arg);
/*
 * A stop is complete: the process is gone (reaped) and, when removal
 * was asked, its directory too; its socket path and directory are free.
 */
typedef void (*shard_stop_cb)(int uid, void *arg);

struct shards	*shards_new(struct event_base *base, const char *data_dir,
		    shard_state_cb cb, void *arg, struct err *e);
/*
 * Stops every shard (they keep their data; stops that asked for removal
 * are completed), without calling back.  Shutdown only: blocks until
 * every child is reaped, SIGKILL after 5 s.
 */
void		 shards_free(struct shards *s);
/*
 * Start the shard if needed, or apply a changed configuration to the
 * running process without restarting it (CONFIG SET, sent in the
 * background; redis.conf is rewritten at once).  Never waits: a shard
 * still stopping is started again once its old process is gone (and its
 * directory, if it was being removed: it starts empty), and a leftover
 * redis-server of an earlier moatd on the same directory is stopped
 * first (SIGKILL after 5 s), with the start deferred meanwhile.
 */
int		 shards_ensure(struct shards *s, const struct shard_conf *c,
		    struct err *e);
/*
 * Stop the shard without waiting for it: SIGTERM now, SIGKILL after 5 s,
 * and with remove its directory and data are deleted once the process
 * exited.  It goes down (on_state 0) at once.  cb (may be NULL) runs
 * from the event loop when all that is done, never inside this call.
 * 1: stopping, cb will be called; 0: no such shard, cb is not called;
 * -1: out of memory, nothing changed.
 */
int		 shards_stop_async(struct shards *s, int uid, int remove,
		    shard_stop_cb cb, void *arg);
/* Forget every stop callback registered with arg (its owner goes away);
 * the stops themselves go on. */
void		 shards_cancel(struct shards *s, void *arg);
/* The unix socket path of the shard (valid while it exists, which
 * includes while it is stopping). */
const char	*shards_socket(struct shards *s, int uid);
/* Where the socket of shard uid is (or will be), whether it exists or
 * not; -1 when the path does not fit in len. */
int		 shards_socket_path(struct shards *s, int uid, char *buf,
		    size_t len);
int		 shards_is_up(struct shards *s, int uid);

#endif
