/*
 * workpool.c — see workpool.h.  Jobs wait in one FIFO; finished jobs go
 * back to the control thread through an eventfd watched by its loop.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "workpool.h"

#define POOL_MAX_THREADS	8

struct job {
	work_fn		 work;
	work_done_fn	 done;
	void		*arg;
	struct job	*next;
};

struct workpool {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct job	*todo, *todo_tail;	/* guarded by mu */
	int		 ntodo;			/* guarded by mu */
	struct job	*finished;		/* guarded by mu */
	int		 stopping;		/* guarded by mu */
	pthread_t	 threads[POOL_MAX_THREADS];
	int		 nthreads;
	int		 evfd;
	struct event	*ev;
};

static void *
workpool_main(void *arg)
{
	struct workpool	*p = arg;
	struct job	*j;
	uint64_t	 one = 1;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->todo == NULL && !p->stopping)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stopping)
			break;
		j = p->todo;
		if ((p->todo = j->next) == NULL)
			p->todo_tail = NULL;
		p->ntodo--;
		pthread_mutex_unlock(&p->mu);
		j->work(j->arg);
		pthread_mutex_lock(&p->mu);
		j->next = p->finished;
		p->finished = j;
		(void)!write(p->evfd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Control thread: run the completions of finished jobs. */
static void
workpool_event(evutil_socket_t fd, short what, void *arg)
{
	struct workpool	*p = arg;
	struct job	*j, *rev = NULL, *next;
	uint64_t	 v;

	(void)!read(p->evfd, &v, sizeof(v));
	pthread_mutex_lock(&p->mu);
	j = p->finished;
	p->finished = NULL;
	pthread_mutex_unlock(&p->mu);
	/* The list is newest first: complete in finishing order. */
	for (; j != NULL; j = next) {
		next = j->next;
		j->next = rev;
		rev = j;
	}
	for (j = rev; j != NULL; j = next) {
		next = j->next;
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
}

struct workpool *
workpool_new(struct event_base *base, int nthreads, struct err *e)
{
	struct workpool	*p;
	int		 i;

	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > POOL_MAX_THREADS)
		nthreads = POOL_MAX_THREADS;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if ((p->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1 ||
	    (p->ev = event_new(base, p->evfd, EV_READ | EV_PERSIST,
	    workpool_event, p)) == NULL || event_add(p->ev, NULL) == -1) {
		err_set(e, E_INTERNAL, "cannot set up the work pool");
		workpool_free(p);
		return NULL;
	}
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&p->threads[i], NULL, workpool_main,
		    p) != 0)
			break;
		p->nthreads++;
	}
	if (p->nthreads == 0) {
		err_set(e, E_INTERNAL, "cannot start the work pool threads");
		workpool_free(p);
		return NULL;
	}
	return p;
}

void
workpool_free(struct workpool *p)
{
	struct job	*j, *next;
	int		 i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	for (j = p->todo; j != NULL; j = next) {
		next = j->next;
		free(j);
	}
	for (j = p->finished; j != NULL; j = next) {
		next = j->next;
		free(j);
	}
	if (p->ev != NULL)
		event_free(p->ev);
	if (p->evfd != -1)
		close(p->evfd);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int
workpool_pending(struct workpool *p)
{
	int n;

	pthread_mutex_lock(&p->mu);
	n = p->ntodo;
	pthread_mutex_unlock(&p->mu);
	return n;
}

int
workpool_run(struct workpool *p, work_fn work, work_done_fn done, void *arg)
{
	struct job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&p->mu);
	if (p->todo_tail != NULL)
		p->todo_tail->next = j;
	else
		p->todo = j;
	p->todo_tail = j;
	p->ntodo++;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}
