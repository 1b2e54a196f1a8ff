/*
 * workpool.h — a few threads for the control thread's slow work:
 * argon2id hashing (tens of milliseconds and 64 MiB each, on purpose) and
 * the blocking HTTPS call of a join.  The control thread hands a job over
 * and goes on serving; the job's completion runs back on the control
 * thread, in its event loop.
 */
#ifndef MOATD_WORKPOOL_H
#define MOATD_WORKPOOL_H

#include <event2/event.h>

#include "err.h"

struct workpool;

/* Runs on a pool thread: must not touch control-thread state. */
typedef void	(*work_fn)(void *arg);
/* Runs on the control thread once work_fn returned. */
typedef void	(*work_done_fn)(void *arg);

struct workpool	*workpool_new(struct event_base *base, int nthreads,
		    struct err *e);
/* Waits for running jobs; queued jobs are dropped without their done. */
void		 workpool_free(struct workpool *p);
/* Jobs queued and not started yet. */
int		 workpool_pending(struct workpool *p);
/* Queue a job; 0, or -1 when out of memory.  arg stays the caller's. */
int		 workpool_run(struct workpool *p, work_fn work,
		    work_done_fn done, void *arg);

#endif
