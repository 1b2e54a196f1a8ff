/*
 * test_workpool.c — the control thread's work pool: jobs run off the
 * loop, their completions come back on it in the order the jobs ended,
 * and the queue says how long it is.  Includes workpool.c (a moatd
 * source, not part of libmoat).
 */
#include <pthread.h>
#include <unistd.h>

#include "workpool.c"

#include "t.h"

struct job_arg {
	pthread_t	 ran_on;
	int		 done;
	int		 order;
	int		*next;
	int		 sleep_ms;
};

static pthread_t loop_thread;
static int done_on_loop = 1;

static void
work(void *arg)
{
	struct job_arg *a = arg;

	if (a->sleep_ms > 0)
		usleep((useconds_t)a->sleep_ms * 1000);
	a->ran_on = pthread_self();
}

static void
done(void *arg)
{
	struct job_arg *a = arg;

	if (!pthread_equal(pthread_self(), loop_thread))
		done_on_loop = 0;
	a->done = 1;
	a->order = (*a->next)++;
}

static int
all_done(struct job_arg *a, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (!a[i].done)
			return 0;
	return 1;
}

int
main(void)
{
	struct event_base	*base = event_base_new();
	struct workpool		*p;
	struct job_arg		 a[8];
	struct err		 e = { E_OK, NULL };
	struct timeval		 tick = { 0, 10000 };
	int			 i, next = 0, spins;

	loop_thread = pthread_self();
	T_CASE("one thread: jobs end in order, completions on the loop");
	p = workpool_new(base, 1, &e);
	CHECK(p != NULL);
	memset(a, 0, sizeof(a));
	for (i = 0; i < 8; i++) {
		a[i].next = &next;
		a[i].sleep_ms = i == 0 ? 50 : 0;
		CHECK_INT(workpool_run(p, work, done, &a[i]), 0);
	}
	/* The first job sleeps: the others wait in the queue. */
	CHECK(workpool_pending(p) >= 6);
	for (spins = 0; !all_done(a, 8) && spins < 500; spins++) {
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
	}
	CHECK(all_done(a, 8));
	CHECK_INT(workpool_pending(p), 0);
	CHECK(done_on_loop);
	for (i = 0; i < 8; i++) {
		CHECK(!pthread_equal(a[i].ran_on, loop_thread));
		CHECK_INT(a[i].order, i);
	}
	workpool_free(p);

	T_CASE("freeing with jobs queued: no completion runs after");
	p = workpool_new(base, 1, &e);
	memset(a, 0, sizeof(a));
	next = 0;
	for (i = 0; i < 4; i++) {
		a[i].next = &next;
		a[i].sleep_ms = 20;
		workpool_run(p, work, done, &a[i]);
	}
	workpool_free(p);
	event_base_loopexit(base, &tick);
	event_base_dispatch(base);
	CHECK(!all_done(a, 4));
	event_base_free(base);
	err_clear(&e);
	return T_DONE();
}
