/*
 * syncer.h — Replica Of: the links of this node's destination databases
 * to their sources.
 *
 * A destination shard is a Redis replica of a relay that moatd listens
 * with on loopback; for each connection the shard opens, the relay opens
 * a TLS connection to the source endpoint, presenting the cluster's
 * syncer certificate and checking the source as its client context
 * says, authenticates, and then pipes bytes.  The shard authenticates to
 * the relay with a per-link token (its masterauth), so that nothing else
 * on the machine can borrow the link.
 *
 * Make-before-break: a new context (a rotated syncer certificate, a new
 * server_cert) is used for the next connection only; a connection keeps
 * the context it was opened with until it ends.
 *
 * A second connection to the source (the probe) reads the source's
 * replication offset ten times a second; with the shard's own offset it
 * gives the lag, and it finds a broken link (down source, refused
 * certificate, wrong password) even when the shard is not trying.
 *
 * Runs on the control thread; nothing here blocks.
 */
#ifndef MOATD_SYNCER_H
#define MOATD_SYNCER_H

#include <event2/event.h>

#include "err.h"
#include "tlsctx.h"

struct syncer;

struct syncer_conf {
	const char	*host;		/* the source endpoint */
	int		 port;
	const char	*user;		/* NULL: AUTH with the password only */
	const char	*password;	/* NULL: no AUTH */
	struct tlsctx	*ctx;		/* client context, referenced */
	int		 paused;	/* no replication, position kept */
	const char	*shard_sock;	/* the destination shard, for INFO */
	const char	*shard_password; /* NULL: none */
};

enum syncer_status { SYNC_SYNCING, SYNC_IN_SYNC, SYNC_OUT_OF_SYNC };

struct syncer_state {
	enum syncer_status	 status;
	long long		 lag_ms;
	char			 last_error[512];	/* "" when none */
};

struct syncer	*syncer_new(struct event_base *base, struct err *e);
/* Closes every link (shutdown). */
void		 syncer_free(struct syncer *s);
/*
 * Create or update the link of database uid.  *relay_port and *token
 * (borrowed, valid while the link exists) are what the shard must
 * replicate from: they stay the same for the life of the link.
 */
int		 syncer_set(struct syncer *s, int uid,
		    const struct syncer_conf *c, int *relay_port,
		    const char **token, struct err *e);
/* Where the shard of uid replicates from now: 0, or -1 without a link. */
int		 syncer_relay(struct syncer *s, int uid, int *relay_port,
		    const char **token);
/* Close the link of uid, if any. */
void		 syncer_del(struct syncer *s, int uid);
/* 0 and *out, or -1 when uid has no link. */
int		 syncer_state(struct syncer *s, int uid,
		    struct syncer_state *out);
/* "in-sync", "syncing", "out-of-sync" (RS's words). */
const char	*syncer_status_name(enum syncer_status st);

#endif
