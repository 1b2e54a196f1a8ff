/*
 * test_shards.c — redis-server supervision never blocks the control
 * thread: stops, leftovers and live changes of a process that does not
 * answer (SIGSTOP) all return at once and finish from the event loop.
 *
 * Includes shards.c itself, to shorten its waits and to see a shard's
 * pid.  Needs /usr/bin/redis-server.  (The build tracks the include:
 * editing shards.c rebuilds this test.)
 */
#define STOP_WAIT_MS	400
#define STALE_WAIT_MS	400
#define CFG_TIMEOUT_SECS 1
#define CFG_RETRY_MS	200
#include "shards.c"

#include <sys/stat.h>

#include "t.h"

#define FAST_MS		100	/* "at once", with room for a slow CI box */

static struct event_base	*base;
static char			 data_dir[64];
static int			 ups[16], downs[16];
static long long		 max_gap;	/* ms between two ticks */
static long long		 last_tick;

static void
on_state(int uid, int up, void *arg)
{
	if (up)
		ups[uid]++;
	else
		downs[uid]++;
}

/* A 10 ms tick: the largest gap between two says whether anything held
 * the loop. */
static void
tick(evutil_socket_t fd, short what, void *arg)
{
	long long now = mono_ms();

	if (last_tick != 0 && now - last_tick > max_gap)
		max_gap = now - last_tick;
	last_tick = now;
}

/* Run the loop until *flag or ms pass; 1 if *flag. */
static int
run_until(const int *flag, int ms)
{
	long long deadline = mono_ms() + ms;

	while (!*flag && mono_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	return *flag != 0;
}

/* Run the loop until *v >= n or ms pass; 1 if it got there. */
static int
run_until_n(const int *v, int n, int ms)
{
	long long deadline = mono_ms() + ms;

	while (*v < n && mono_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	return *v >= n;
}

static void
run_for(int ms)
{
	int never = 0;

	run_until(&never, ms);
}

static pid_t
pid_of(struct shards *s, int uid)
{
	struct shard *sh = shard_find(s, uid);

	return sh != NULL ? sh->pid : 0;
}

/* Gone: reaped, not even a zombie. */
static int
pid_gone(pid_t pid)
{
	return kill(pid, 0) == -1 && errno == ESRCH;
}

static int
dir_exists(int uid)
{
	char		 path[128];
	struct stat	 st;

	snprintf(path, sizeof(path), "%s/dbs/%d", data_dir, uid);
	return stat(path, &st) == 0;
}

/*
 * Commands to the shard's socket, blocking (the test is not the control
 * thread): 1 when the replies contain want within a second.
 */
static int
ask(struct shards *s, int uid, const char *resp, const char *want)
{
	char		 buf[512];
	struct timeval	 tv = { 1, 0 };
	ssize_t		 n;
	size_t		 off = 0;
	int		 fd, found = 0;

	if ((fd = net_unix_connect(shards_socket(s, uid), 0)) == -1)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (write(fd, resp, strlen(resp)) == (ssize_t)strlen(resp)) {
		while (!found && off < sizeof(buf) - 1 &&
		    (n = read(fd, buf + off, sizeof(buf) - 1 - off)) > 0) {
			off += (size_t)n;
			buf[off] = '\0';
			found = strstr(buf, want) != NULL;
		}
	}
	close(fd);
	return found;
}

static struct shard_conf
conf(int uid, long long mem, const char *pw)
{
	struct shard_conf c = { uid, mem, pw, PERSIST_DISABLED, 0, NULL };

	return c;
}

static int
ensure(struct shards *s, int uid, long long mem, const char *pw)
{
	struct shard_conf	 c = conf(uid, mem, pw);
	struct err		 e = { 0 };
	int			 rc;

	rc = shards_ensure(s, &c, &e);
	if (rc == -1)
		fprintf(stderr, "shards_ensure: %s\n", err_msg(&e));
	err_clear(&e);
	return rc;
}

struct stopped {
	int	 called;
	int	 uid;
	pid_t	 old;		/* its process */
	int	 old_gone;	/* when the callback ran */
	int	 dir_left;
	long long at;
};

static void
on_stopped(int uid, void *arg)
{
	struct stopped *st = arg;

	st->called++;
	st->uid = uid;
	st->old_gone = pid_gone(st->old);
	st->dir_left = dir_exists(uid);
	st->at = mono_ms();
}

/* A shard whose process ignores SIGTERM (stopped) is deleted: the call
 * returns at once, the loop keeps turning, SIGKILL after STOP_WAIT_MS,
 * then the directory goes and the callback says so. */
static void
test_stop_stuck(struct shards *s)
{
	struct stopped	 st = { 0 };
	long long	 t0, dt;
	pid_t		 pid;

	T_CASE("stop a stuck shard");
	CHECK_INT(ensure(s, 1, 64 << 20, NULL), 0);
	CHECK(run_until(&ups[1], 5000));
	pid = pid_of(s, 1);
	CHECK(pid > 0);
	st.old = pid;
	kill(pid, SIGSTOP);
	t0 = mono_ms();
	CHECK_INT(shards_stop_async(s, 1, 1, on_stopped, &st), 1);
	dt = mono_ms() - t0;
	CHECKF(dt < FAST_MS, "shards_stop_async took %lld ms", dt);
	CHECK_INT(st.called, 0);	/* never from inside the call */
	CHECK_INT(shards_is_up(s, 1), 0);
	CHECK_INT(downs[1], 1);
	max_gap = 0;
	last_tick = 0;
	CHECK(run_until(&st.called, STOP_WAIT_MS + 3000));
	CHECK_INT(st.called, 1);
	CHECK_INT(st.uid, 1);
	CHECKF(st.at - t0 >= STOP_WAIT_MS - 20,
	    "stopped after %lld ms, before SIGKILL was due", st.at - t0);
	CHECK(st.old_gone);
	CHECK(!st.dir_left);
	CHECKF(max_gap < 100, "the loop stood still for %lld ms", max_gap);
	CHECK(shard_find(s, 1) == NULL);
	CHECK(shards_socket(s, 1) == NULL);
	CHECK_INT(downs[1], 1);
}

static void
on_up_check_old(int uid, int up, void *arg);

static pid_t	 restart_old;
static int	 restart_old_gone_at_up = -1;

/* Deleted and created again at once on the same uid: the new process
 * starts only once the old one is gone and its directory removed, and
 * it runs with the new configuration. */
static void
test_stop_then_ensure(struct shards *s)
{
	struct stopped	 st = { 0 };
	char		 want[64];
	pid_t		 pid, npid;
	long long	 t0;

	T_CASE("stop, then ensure the same uid");
	CHECK_INT(ensure(s, 2, 64 << 20, NULL), 0);
	CHECK(run_until(&ups[2], 5000));
	pid = pid_of(s, 2);
	st.old = restart_old = pid;
	kill(pid, SIGSTOP);
	CHECK_INT(shards_stop_async(s, 2, 1, on_stopped, &st), 1);
	t0 = mono_ms();
	CHECK_INT(ensure(s, 2, 32 << 20, NULL), 0);
	CHECKF(mono_ms() - t0 < FAST_MS, "shards_ensure took %lld ms",
	    mono_ms() - t0);
	CHECK_INT(pid_of(s, 2), pid);		/* still the old one */
	CHECK_INT(shards_is_up(s, 2), 0);
	s->cb = on_up_check_old;
	CHECK(run_until(&st.called, STOP_WAIT_MS + 3000));
	CHECK(st.old_gone);
	CHECK(!st.dir_left);	/* removed before the new one started */
	CHECK(run_until_n(&ups[2], 2, 5000));
	CHECK_INT(restart_old_gone_at_up, 1);
	s->cb = on_state;
	npid = pid_of(s, 2);
	CHECK(npid > 0 && npid != pid);
	snprintf(want, sizeof(want), "%lld", 32LL << 20);
	CHECK(ask(s, 2, "*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n"
	    "$9\r\nmaxmemory\r\n", want));
	/* And a stop after a re-ensure wins over it. */
	T_CASE("ensure, then stop again before the old one exited");
	memset(&st, 0, sizeof(st));
	st.old = npid;
	kill(npid, SIGSTOP);
	CHECK_INT(shards_stop_async(s, 2, 1, NULL, NULL), 1);
	CHECK_INT(ensure(s, 2, 16 << 20, NULL), 0);
	CHECK_INT(shards_stop_async(s, 2, 1, on_stopped, &st), 1);
	CHECK(run_until(&st.called, STOP_WAIT_MS + 3000));
	CHECK(st.old_gone);
	run_for(200);
	CHECK(shard_find(s, 2) == NULL);
	CHECK_INT(ups[2], 2);
}

static void
on_up_check_old(int uid, int up, void *arg)
{
	on_state(uid, up, arg);
	if (uid == 2 && up)
		restart_old_gone_at_up = pid_gone(restart_old);
}

/* A redis-server left by an earlier moatd, stuck: ensure returns at
 * once, the leftover gets SIGKILL after STALE_WAIT_MS, and ours starts
 * after it is gone (a zombie counts as gone: it holds no file). */
static void
test_stale(struct shards *s)
{
	char		 dir[128], path[160], text[1024];
	struct err	 e = { 0 };
	struct stat	 sb;
	pid_t		 old;
	long long	 t0, dt;
	int		 i, status;

	T_CASE("leftover redis-server");
	snprintf(dir, sizeof(dir), "%s/dbs/3", data_dir);
	CHECK_INT(fs_mkdir(dir, 0700, &e), 0);
	snprintf(text, sizeof(text), "port 0\nunixsocket %s/redis.sock\n"
	    "dir %s\npidfile %s/redis.pid\nlogfile %s/redis.log\n"
	    "daemonize no\nsave \"\"\n", dir, dir, dir, dir);
	snprintf(path, sizeof(path), "%s/redis.conf", dir);
	CHECK_INT(fs_write_atomic(path, text, strlen(text), 0600, &e), 0);
	if ((old = fork()) == 0) {
		execl(REDIS_SERVER, "redis-server", path, (char *)NULL);
		_exit(127);
	}
	snprintf(path, sizeof(path), "%s/redis.pid", dir);
	for (i = 0; i < 500 && stat(path, &sb) == -1; i++)
		poll(NULL, 0, 10);
	CHECK(stat(path, &sb) == 0);
	kill(old, SIGSTOP);
	t0 = mono_ms();
	CHECK_INT(ensure(s, 3, 64 << 20, NULL), 0);
	dt = mono_ms() - t0;
	CHECKF(dt < FAST_MS, "shards_ensure took %lld ms", dt);
	CHECK_INT(shard_find(s, 3)->state, SH_STALE);
	max_gap = 0;
	last_tick = 0;
	CHECK(run_until(&ups[3], STALE_WAIT_MS + 5000));
	CHECKF(mono_ms() - t0 >= STALE_WAIT_MS - 20,
	    "up after %lld ms, before the leftover was killed", mono_ms() - t0);
	CHECKF(max_gap < 100, "the loop stood still for %lld ms", max_gap);
	/* The leftover is our child here (a zombie until we reap it). */
	CHECK_INT(waitpid(old, &status, 0), old);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	CHECK(pid_of(s, 3) != old);
	CHECK(ask(s, 3, "*1\r\n$4\r\nPING\r\n", "+PONG"));
	err_clear(&e);
}

/* Live changes to a process that does not answer: ensure returns at
 * once; they arrive when it answers again, in order. */
static void
test_config_stuck(struct shards *s)
{
	char		 want[64];
	pid_t		 pid;
	long long	 t0, dt;
	int		 i, ok = 0;

	T_CASE("CONFIG SET to a stuck shard");
	CHECK_INT(ensure(s, 4, 64 << 20, NULL), 0);
	CHECK(run_until(&ups[4], 5000));
	pid = pid_of(s, 4);
	kill(pid, SIGSTOP);
	t0 = mono_ms();
	CHECK_INT(ensure(s, 4, 48 << 20, "pw-one"), 0);
	CHECK_INT(ensure(s, 4, 40 << 20, "pw-one"), 0);
	dt = mono_ms() - t0;
	CHECKF(dt < FAST_MS, "shards_ensure took %lld ms", dt);
	max_gap = 0;
	last_tick = 0;
	/* Past the reply timeout: the exchange is given up and sent again
	 * (and the first one still runs once the process is back). */
	run_for(1700);
	CHECKF(max_gap < 100, "the loop stood still for %lld ms", max_gap);
	kill(pid, SIGCONT);
	snprintf(want, sizeof(want), "%lld", 40LL << 20);
	for (i = 0; i < 100 && !ok; i++) {
		run_for(100);
		ok = ask(s, 4, "*2\r\n$4\r\nAUTH\r\n$6\r\npw-one\r\n"
		    "*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$9\r\nmaxmemory\r\n",
		    want);
	}
	CHECKF(ok, "maxmemory %s and requirepass never arrived", want);
	CHECK_INT(pid_of(s, 4), pid);	/* no restart for it */
	/* The next change authenticates with the password it now has. */
	T_CASE("password changed twice");
	CHECK_INT(ensure(s, 4, 40 << 20, "pw-two"), 0);
	for (ok = 0, i = 0; i < 50 && !ok; i++) {
		run_for(100);
		ok = ask(s, 4, "*2\r\n$4\r\nAUTH\r\n$6\r\npw-two\r\n",
		    "+OK");
	}
	CHECK(ok);
}

/* Shutdown waits, but reaps everything, stuck ones after SIGKILL. */
static void
test_free_reaps(void)
{
	struct shards	*s;
	struct err	 e = { 0 };
	pid_t		 a, b;
	long long	 t0, dt;

	T_CASE("shards_free reaps every child");
	s = shards_new(base, data_dir, on_state, NULL, &e);
	CHECK(s != NULL);
	if (s == NULL)
		return;
	CHECK_INT(ensure(s, 5, 64 << 20, NULL), 0);
	CHECK_INT(ensure(s, 6, 64 << 20, NULL), 0);
	CHECK(run_until(&ups[5], 5000));
	CHECK(run_until(&ups[6], 5000));
	a = pid_of(s, 5);
	b = pid_of(s, 6);
	kill(a, SIGSTOP);
	/* One already stopping, with removal asked. */
	CHECK_INT(shards_stop_async(s, 6, 1, NULL, NULL), 1);
	t0 = mono_ms();
	shards_free(s);
	dt = mono_ms() - t0;
	CHECK(pid_gone(a));
	CHECK(pid_gone(b));
	CHECK(!dir_exists(6));
	CHECK(dir_exists(5));
	CHECKF(dt < STOP_WAIT_MS + 2000, "shards_free took %lld ms", dt);
}

int
main(void)
{
	struct shards	*s;
	struct event	*t;
	struct timeval	 tv = { 0, 10 * 1000 };
	struct err	 e = { 0 };
	char		 cmd[128];

	if (access(REDIS_SERVER, X_OK) == -1) {
		fprintf(stderr, "test_shards: %s missing, skipped\n",
		    REDIS_SERVER);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(data_dir, sizeof(data_dir), "/tmp/moat-ut-XXXXXX");
	if (mkdtemp(data_dir) == NULL)
		return 1;
	base = event_base_new();
	t = event_new(base, -1, EV_PERSIST, tick, NULL);
	event_add(t, &tv);
	s = shards_new(base, data_dir, on_state, NULL, &e);
	CHECK(s != NULL);
	if (s != NULL) {
		test_stop_stuck(s);
		test_stop_then_ensure(s);
		test_stale(s);
		test_config_stuck(s);
		shards_free(s);
	}
	test_free_reaps();
	event_free(t);
	event_base_free(base);
	err_clear(&e);
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", data_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", data_dir);
	return T_DONE();
}
