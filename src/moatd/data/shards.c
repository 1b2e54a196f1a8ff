/*
 * shards.c — supervision of redis-server processes.
 *
 * Everything here runs on the control thread, which must never sleep nor
 * wait for a process: a shard is a small state machine driven by SIGCHLD
 * (waitpid WNOHANG on our own children only, so that no other module's
 * child is reaped behind its back) and by one timer per shard, whose
 * meaning depends on the state.  Only shards_free, at shutdown, waits.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <dirent.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "fsutil.h"
#include "log.h"
#include "net.h"
#include "shards.h"
#include "util.h"

#define REDIS_SERVER	"/usr/bin/redis-server"
#define MAX_SHARDS	1024
#define BACKOFF_MIN_MS	100
#define BACKOFF_MAX_MS	5000
#define STABLE_SECS	30
#ifndef STOP_WAIT_MS		/* the unit test shortens these */
#define STOP_WAIT_MS	5000	/* SIGTERM to SIGKILL */
#endif
#ifndef STALE_WAIT_MS
#define STALE_WAIT_MS	5000	/* the same for a leftover process */
#endif
#define TERM_AGAIN_MS	250	/* SIGTERM again while it runs */
#define POLL_MS		50	/* readiness, and a leftover being gone */
#ifndef CFG_TIMEOUT_SECS
#define CFG_TIMEOUT_SECS 5	/* for the replies to CONFIG SET */
#define CFG_RETRY_MS	1000
#endif
#define CFG_MAX		7	/* AUTH + five CONFIG SET + REPLICAOF */

enum shard_state {
	SH_STALE,	/* a leftover redis-server holds the directory */
	SH_STARTING,	/* forked; its socket does not answer yet */
	SH_UP,
	SH_BACKOFF,	/* exited or could not start: restart timer */
	SH_STOPPING,	/* SIGTERM sent (if it ran): SIGKILL timer */
	SH_REMOVING,	/* exited; rm -rf of its directory runs */
};

/* What changed and still has to reach the running process. */
enum {
	CFG_MAXMEMORY	= 1 << 0,
	CFG_PERSISTENCE	= 1 << 1,
	CFG_PASSWORD	= 1 << 2,
	CFG_REPLICA	= 1 << 3,
};

struct shard_waiter {
	shard_stop_cb		 cb;
	void			*arg;
	struct shard_waiter	*next;
};

struct shard {
	struct shards	*s;
	int		 uid;
	enum shard_state state;
	pid_t		 pid;		/* redis-server, our child; 0: none */
	pid_t		 rm_pid;	/* rm -rf of dir, our child; 0: none */
	pid_t		 stale_pid;	/* SH_STALE: not our child */
	int		 stale_killed;
	long long	 stale_deadline;	/* ms, monotonic */
	long long	 stop_deadline;	/* SH_STOPPING: SIGKILL then */
	int		 remove;	/* delete dir once the process exited */
	int		 restart;	/* ensured again while stopping */
	int		 need_conf;	/* dir and redis.conf to be made first */
	struct shard_waiter *waiters;	/* of the stop in progress */
	int		 backoff_ms;
	time_t		 started;
	long long	 maxmemory;
	char		*password;	/* wanted; owned, wiped */
	char		*live_password;	/* what the process has: for AUTH */
	enum shard_persistence persistence;
	int		 replica_port;	/* 0: a primary */
	int		 aof_deferred;	/* started from its RDB, AOF off */
	char		*replica_token;	/* owned, wiped */
	/* CONFIG SET in the background: one connection at a time, so that
	 * changes reach the process in the order they were made. */
	unsigned	 cfg_dirty;	/* CFG_*: not sent yet */
	unsigned	 cfg_sent;	/* CFG_*: on cfg_bev */
	struct bufferevent *cfg_bev;
	const char	*cfg_what[CFG_MAX];	/* reply i answers this */
	int		 cfg_n, cfg_i;
	char		*cfg_password;	/* requirepass being sent; wiped */
	char		 dir[4096];
	char		 sock[108];
	struct event	*timer;		/* see shard_timer */
};

struct shards {
	struct event_base	*base;
	char			*data_dir;
	shard_state_cb		 cb;
	void			*arg;
	struct event		*sigchld;
	struct shard		*v[MAX_SHARDS];
	int			 n;
};

static void	shard_launch(struct shard *sh);
static void	shard_cfg_flush(struct shard *sh);

static void
shard_arm(struct shard *sh, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(sh->timer, &tv);
}

/* Tell the owner a shard went up or down; not while shards_free tears
 * everything down (the owner is going away too). */
static void
shards_notify(struct shards *s, int uid, int up)
{
	if (s->cb != NULL)
		s->cb(uid, up, s->arg);
}

static struct shard *
shard_find(struct shards *s, int uid)
{
	int i;

	for (i = 0; i < s->n; i++)
		if (s->v[i]->uid == uid)
			return s->v[i];
	return NULL;
}

/* What each data_persistence value means to redis-server. */
static const struct {
	const char	*appendonly;
	const char	*save;
} persist_table[] = {
	[PERSIST_AOF] =		{ "yes", "" },
	[PERSIST_SNAPSHOT] =	{ "no", "900 1 300 10 60 10000" },
	[PERSIST_DISABLED] =	{ "no", "" },
};

/*
 * A replica must find its replication position again after a restart,
 * and Redis 7.0 restores it only from an RDB file (an AOF has none).  So
 * a replica with AOF persistence also saves an RDB at shutdown (any save
 * point makes SIGTERM save; a day's is the only periodic cost), and a
 * restart that finds that RDB newer than the AOF loads it, then turns
 * the AOF back on (see shard_start, shard_poll_ready).
 */
static const char *
shard_save(const struct shard *sh)
{
	if (sh->replica_port && sh->persistence == PERSIST_AOF)
		return "86400 1";
	return persist_table[sh->persistence].save;
}

static const char *
shard_appendonly(const struct shard *sh)
{
	return sh->aof_deferred ? "no" : persist_table[sh->persistence].appendonly;
}

/* Newest modification time under dir/appendonlydir (0: none). */
static long long
aof_mtime(const struct shard *sh)
{
	char		 path[4200];
	struct stat	 st;
	struct dirent	*de;
	DIR		*d;
	long long	 t = 0, m;

	snprintf(path, sizeof(path), "%s/appendonlydir", sh->dir);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) == 0) {
			m = (long long)st.st_mtim.tv_sec * 1000000000LL +
			    st.st_mtim.tv_nsec;
			if (m > t)
				t = m;
		}
	}
	closedir(d);
	return t;
}

/* 1 when this start should load the RDB a replica saved at shutdown. */
static int
shard_rdb_first(const struct shard *sh)
{
	char		 path[4200];
	struct stat	 st;
	long long	 m;

	if (!sh->replica_port || sh->persistence != PERSIST_AOF)
		return 0;
	snprintf(path, sizeof(path), "%s/dump.rdb", sh->dir);
	if (stat(path, &st) == -1)
		return 0;
	m = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	return m >= aof_mtime(sh);
}

/* The replication backlog: a tenth of the memory, 1 MiB to 512 MiB. */
static long long
shard_backlog(const struct shard *sh)
{
	long long b = sh->maxmemory / 10;

	if (b < 1024 * 1024)
		b = 1024 * 1024;
	if (b > 512LL * 1024 * 1024)
		b = 512LL * 1024 * 1024;
	return b;
}

/* redis.conf for the shard: mode 0600, it may hold requirepass. */
static int
shard_write_conf(struct shard *sh, struct err *e)
{
	char	 path[4200], *conf = NULL, replica[200];
	int	 rc;

	snprintf(replica, sizeof(replica), "%d\nmasterauth \"%s\"",
	    sh->replica_port, sh->replica_token ? sh->replica_token : "");

	snprintf(path, sizeof(path), "%s/redis.conf", sh->dir);
	if (asprintf(&conf,
	    "# written by moatd; changes are overwritten\n"
	    "port 0\n"
	    "unixsocket %s\n"
	    "unixsocketperm 600\n"
	    "dir %s\n"
	    "pidfile %s/redis.pid\n"
	    "logfile %s/redis.log\n"
	    "daemonize no\n"
	    "protected-mode no\n"
	    "maxmemory %lld\n"
	    "maxmemory-policy noeviction\n"
	    /* One shard connection per client connection: as many as the
	     * proxy can hold (redis lowers it to what its own open files
	     * limit allows, and says so in its log). */
	    "maxclients 100000\n"
	    "appendonly %s\n"
	    "appendfsync everysec\n"
	    "save \"%s\"\n"
	    /* A replica (Replica Of) starts its first sync at once, and
	     * finds the stream it missed in a backlog that outlives a
	     * link cut or a pause of any length. */
	    "repl-diskless-sync-delay 0\n"
	    "repl-backlog-size %lld\n"
	    "repl-backlog-ttl 0\n"
	    "%s%s%s"
	    "%s%s%s",
	    sh->sock, sh->dir, sh->dir, sh->dir, sh->maxmemory,
	    shard_appendonly(sh), shard_save(sh), shard_backlog(sh),
	    sh->password ? "requirepass \"" : "",
	    sh->password ? sh->password : "",
	    sh->password ? "\"\n" : "",
	    sh->replica_port ? "replicaof 127.0.0.1 " : "",
	    sh->replica_port ? replica : "",
	    sh->replica_port ? "\n" : "") == -1)
		return err_set(e, E_INTERNAL, "out of memory");
	rc = fs_write_atomic(path, conf, strlen(conf), 0600, e);
	explicit_bzero(conf, strlen(conf));
	free(conf);
	return rc;
}

/* ---- live configuration: CONFIG SET in the background ---- */

/* Forget the exchange in flight (the process went away, or we stop). */
static void
shard_cfg_abort(struct shard *sh)
{
	if (sh->cfg_bev != NULL)
		bufferevent_free(sh->cfg_bev);
	sh->cfg_bev = NULL;
	sh->cfg_sent = 0;
	secret_free(&sh->cfg_password);
}

/* Failed for a reason that may pass (a stopped or busy process): send
 * again what was on the wire, after a pause, if the shard is still up. */
static void
shard_cfg_retry(struct shard *sh, const char *why)
{
	log_warn("db:%d CONFIG SET: %s; trying again in %d ms", sh->uid, why,
	    CFG_RETRY_MS);
	sh->cfg_dirty |= sh->cfg_sent;
	shard_cfg_abort(sh);
	if (sh->state == SH_UP)
		shard_arm(sh, CFG_RETRY_MS);
}

static void
shard_cfg_read(struct bufferevent *bev, void *arg)
{
	struct shard	*sh = arg;
	char		*line;
	const char	*what;
	size_t		 len;

	while (sh->cfg_i < sh->cfg_n && (line = evbuffer_readln(
	    bufferevent_get_input(bev), &len, EVBUFFER_EOL_CRLF)) != NULL) {
		what = sh->cfg_what[sh->cfg_i++];
		if (line[0] == '+') {
			if (strcmp(what, "requirepass") == 0) {
				secret_free(&sh->live_password);
				sh->live_password = sh->cfg_password;
				sh->cfg_password = NULL;
			}
			free(line);
			continue;
		}
		if (strncmp(line, "-LOADING", 8) == 0) {
			/* Still reading its data: the change waits. */
			free(line);
			shard_cfg_retry(sh, "loading its data");
			return;
		}
		if (strcmp(what, "AUTH") == 0 ||
		    strncmp(line, "-NOAUTH", 7) == 0) {
			/* A password change may have reached it without us
			 * learning so (we gave up waiting for the reply, it
			 * ran later): try the wanted one. */
			int other = sh->password != NULL &&
			    (sh->live_password == NULL ||
			    strcmp(sh->password, sh->live_password) != 0);
			log_warn("db:%d %s: %.100s", sh->uid, what, line);
			free(line);
			if (other) {
				secret_free(&sh->live_password);
				sh->live_password = strdup(sh->password);
				shard_cfg_retry(sh, "AUTH refused");
			} else
				shard_cfg_abort(sh);
			return;
		}
		/* Refused for good (a value redis does not take): said
		 * once, not tried again. */
		log_warn("db:%d CONFIG SET %s failed: %.100s", sh->uid, what,
		    line);
		free(line);
	}
	if (sh->cfg_i < sh->cfg_n)
		return;
	shard_cfg_abort(sh);
	/* Changed again meanwhile: send that too. */
	shard_cfg_flush(sh);
}

static void
shard_cfg_event(struct bufferevent *bev, short what, void *arg)
{
	struct shard *sh = arg;

	shard_cfg_retry(sh, what & BEV_EVENT_TIMEOUT ?
	    "no answer" : "connection lost");
}

/*
 * Send what changed (cfg_dirty) to the running process, pipelined on one
 * non-blocking connection; the replies are read from the loop.  Nothing
 * in flight at a time but one exchange.
 */
static void
shard_cfg_flush(struct shard *sh)
{
	struct evbuffer	*out;
	struct timeval	 tv = { CFG_TIMEOUT_SECS, 0 };
	char		 num[32];
	const char	*pw;
	int		 fd, rc = 0;

	if (sh->cfg_bev != NULL || sh->cfg_dirty == 0 || sh->state != SH_UP)
		return;
	sh->cfg_sent = sh->cfg_dirty;
	sh->cfg_dirty = 0;
	sh->cfg_n = sh->cfg_i = 0;
	if ((fd = net_unix_connect(sh->sock, 1)) == -1) {
		shard_cfg_retry(sh, strerror(errno));
		return;
	}
	if ((sh->cfg_bev = bufferevent_socket_new(sh->s->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		shard_cfg_retry(sh, "out of memory");
		return;
	}
	out = bufferevent_get_output(sh->cfg_bev);
	/* AUTH with what the process has now, not what we want it to. */
	if (sh->live_password != NULL) {
		const char *a[] = { "AUTH", sh->live_password };
		rc |= net_resp_command(out, 2, a);
		sh->cfg_what[sh->cfg_n++] = "AUTH";
	}
	if (sh->cfg_sent & CFG_MAXMEMORY) {
		const char *a[] = { "CONFIG", "SET", "maxmemory", num };
		snprintf(num, sizeof(num), "%lld", sh->maxmemory);
		rc |= net_resp_command(out, 4, a);
		sh->cfg_what[sh->cfg_n++] = "maxmemory";
	}
	if (sh->cfg_sent & CFG_PERSISTENCE) {
		const char *a1[] = { "CONFIG", "SET", "appendonly",
		    shard_appendonly(sh) };
		const char *a2[] = { "CONFIG", "SET", "save",
		    shard_save(sh) };
		rc |= net_resp_command(out, 4, a1);
		rc |= net_resp_command(out, 4, a2);
		sh->cfg_what[sh->cfg_n++] = "appendonly";
		sh->cfg_what[sh->cfg_n++] = "save";
	}
	if (sh->cfg_sent & CFG_PASSWORD) {
		pw = sh->password != NULL ? sh->password : "";
		const char *a[] = { "CONFIG", "SET", "requirepass", pw };
		if (sh->password != NULL &&
		    (sh->cfg_password = strdup(sh->password)) == NULL)
			rc = -1;
		rc |= net_resp_command(out, 4, a);
		sh->cfg_what[sh->cfg_n++] = "requirepass";
	}
	if (sh->cfg_sent & CFG_REPLICA) {
		/* masterauth first: the relay wants it from the start. */
		const char *a1[] = { "CONFIG", "SET", "masterauth",
		    sh->replica_token ? sh->replica_token : "" };
		const char *a2[] = { "REPLICAOF", "127.0.0.1", num };
		const char *a3[] = { "REPLICAOF", "NO", "ONE" };
		snprintf(num, sizeof(num), "%d", sh->replica_port);
		rc |= net_resp_command(out, 4, a1);
		rc |= sh->replica_port ? net_resp_command(out, 3, a2) :
		    net_resp_command(out, 3, a3);
		sh->cfg_what[sh->cfg_n++] = "masterauth";
		sh->cfg_what[sh->cfg_n++] = "REPLICAOF";
	}
	if (rc != 0) {
		shard_cfg_retry(sh, "out of memory");
		return;
	}
	bufferevent_setcb(sh->cfg_bev, shard_cfg_read, NULL, shard_cfg_event,
	    sh);
	bufferevent_set_timeouts(sh->cfg_bev, &tv, &tv);
	bufferevent_enable(sh->cfg_bev, EV_READ | EV_WRITE);
}

/* ---- processes ---- */

/*
 * Is pid a live redis-server working in dir?  A zombie is not (it holds
 * no file); a recycled pid is not either: its executable must be redis
 * and, where /proc says, its working directory dir (redis chdirs there),
 * so that the shard of another database is never taken for a leftover.
 */
static int
stale_alive(pid_t pid, const char *dir)
{
	char	 path[64], link[PATH_MAX], real[PATH_MAX], buf[512], *p;
	FILE	*f;
	ssize_t	 n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = (ssize_t)fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n > 0 ? n : 0] = '\0';
	if ((p = strrchr(buf, ')')) == NULL || p[1] == '\0' || p[2] == 'Z')
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if ((n = readlink(path, link, sizeof(link) - 1)) <= 0)
		return 0;
	link[n] = '\0';
	if (strstr(link, "redis") == NULL)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)pid);
	if ((n = readlink(path, link, sizeof(link) - 1)) <= 0 ||
	    realpath(dir, real) == NULL)
		return 1;
	link[n] = '\0';
	return strcmp(link, real) == 0;
}

/* The redis-server of an earlier moatd (killed) still on this dir. */
static pid_t
shard_stale_pid(struct shard *sh)
{
	char	 path[4200], buf[32];
	FILE	*f;
	int	 pid = 0;

	snprintf(path, sizeof(path), "%s/redis.pid", sh->dir);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) != NULL)
		pid = atoi(buf);
	fclose(f);
	if (pid <= 1 || pid == (int)getpid() || !stale_alive(pid, sh->dir))
		return 0;
	return pid;
}

static void
shard_backoff(struct shard *sh)
{
	sh->state = SH_BACKOFF;
	shard_arm(sh, sh->backoff_ms);
	sh->backoff_ms = sh->backoff_ms * 2 > BACKOFF_MAX_MS ?
	    BACKOFF_MAX_MS : sh->backoff_ms * 2;
}

static void
shard_start(struct shard *sh)
{
	char	 conf[4200];
	pid_t	 pid;

	snprintf(conf, sizeof(conf), "%s/redis.conf", sh->dir);
	if (shard_rdb_first(sh)) {
		struct err e = { 0 };
		sh->aof_deferred = 1;
		if (shard_write_conf(sh, &e) == -1) {
			log_warn("db:%d %s", sh->uid, err_msg(&e));
			err_clear(&e);
			sh->aof_deferred = 0;
		} else
			log_info("db:%d loads the RDB it saved at shutdown, "
			    "which has its replication position; the AOF is "
			    "turned back on once it is up", sh->uid);
	}
	if ((pid = fork()) == -1) {
		log_error("db:%d cannot fork: %s; trying again in %d ms",
		    sh->uid, strerror(errno), sh->backoff_ms);
		shard_backoff(sh);
		return;
	}
	if (pid == 0) {
		/* The shard must not outlive moatd, nor hold its sockets. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		close_range(3, ~0U, 0);
		signal(SIGPIPE, SIG_DFL);
		execl(REDIS_SERVER, "redis-server", conf, (char *)NULL);
		_exit(127);
	}
	sh->pid = pid;
	sh->started = time(NULL);
	sh->state = SH_STARTING;
	/* It reads redis.conf, which holds every change made so far. */
	sh->cfg_dirty = 0;
	secret_free(&sh->live_password);
	if (sh->password != NULL)
		sh->live_password = strdup(sh->password);
	shard_arm(sh, 20);
}

/* Start, unless an old process still holds the directory: then stop
 * that one first and come back when it is gone. */
static void
shard_launch(struct shard *sh)
{
	struct err	 e = { 0 };
	pid_t		 pid;

	if (sh->need_conf) {
		if (fs_mkdir(sh->dir, 0700, &e) == -1 ||
		    shard_write_conf(sh, &e) == -1) {
			log_error("db:%d %s; trying again in %d ms", sh->uid,
			    err_msg(&e), sh->backoff_ms);
			err_clear(&e);
			shard_backoff(sh);
			return;
		}
		sh->need_conf = 0;
	}
	if ((pid = shard_stale_pid(sh)) > 0) {
		log_warn("db:%d stopping leftover redis-server pid %d", sh->uid,
		    (int)pid);
		kill(pid, SIGTERM);
		sh->stale_pid = pid;
		sh->stale_killed = 0;
		sh->stale_deadline = mono_ms() + STALE_WAIT_MS;
		sh->state = SH_STALE;
		shard_arm(sh, POLL_MS);
		return;
	}
	shard_start(sh);
}

static void
shard_stale_poll(struct shard *sh)
{
	if (!stale_alive(sh->stale_pid, sh->dir)) {
		sh->stale_pid = 0;
		shard_start(sh);
		return;
	}
	if (!sh->stale_killed && mono_ms() >= sh->stale_deadline) {
		log_warn("db:%d leftover redis-server pid %d still runs after "
		    "%d ms: SIGKILL", sh->uid, (int)sh->stale_pid,
		    STALE_WAIT_MS);
		kill(sh->stale_pid, SIGKILL);
		sh->stale_killed = 1;
	}
	shard_arm(sh, POLL_MS);
}

static void
shard_poll_ready(struct shard *sh)
{
	int c;

	/* Non-blocking: a stopped process with a full backlog must not
	 * hold the control thread. */
	if ((c = net_unix_connect(sh->sock, 1)) == -1) {
		shard_arm(sh, POLL_MS);
		return;
	}
	close(c);
	sh->state = SH_UP;
	log_info("db:%d shard up (redis-server pid %d)", sh->uid,
	    (int)sh->pid);
	shards_notify(sh->s, sh->uid, 1);
	if (sh->aof_deferred) {
		struct err e = { 0 };
		sh->aof_deferred = 0;
		sh->cfg_dirty |= CFG_PERSISTENCE;
		if (shard_write_conf(sh, &e) == -1) {
			log_warn("db:%d %s", sh->uid, err_msg(&e));
			err_clear(&e);
		}
	}
	/* Changes made while it was starting (it may have read the old
	 * redis.conf). */
	shard_cfg_flush(sh);
}

static void
shard_free(struct shard *sh)
{
	struct shard_waiter *w;

	while ((w = sh->waiters) != NULL) {
		sh->waiters = w->next;
		free(w);
	}
	shard_cfg_abort(sh);
	if (sh->timer != NULL)
		event_free(sh->timer);
	secret_free(&sh->password);
	secret_free(&sh->live_password);
	secret_free(&sh->replica_token);
	free(sh);
}

/* rm -rf of the shard's directory in a child; its pid, or 0. */
static pid_t
shard_rm_spawn(struct shard *sh)
{
	pid_t pid;

	/* The directory holds only what shard_write_conf and redis made. */
	if (strstr(sh->dir, "/dbs/") == NULL)
		return 0;
	if ((pid = fork()) == -1) {
		log_error("db:%d cannot fork to remove %s: %s", sh->uid,
		    sh->dir, strerror(errno));
		return 0;
	}
	if (pid == 0) {
		close_range(3, ~0U, 0);
		execl("/bin/rm", "rm", "-rf", "--", sh->dir, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void	shard_stopped(struct shard *sh);

/*
 * The stop is complete.  Whoever waited hears it first, while nothing
 * runs on the directory; a callback may ensure this uid again (then it
 * starts again here) or stop it (then it does not).
 */
static void
shard_stop_done(struct shard *sh)
{
	struct shards		*s = sh->s;
	struct shard_waiter	*w;
	int			 i;

	sh->remove = 0;
	while ((w = sh->waiters) != NULL) {
		sh->waiters = w->next;
		if (w->cb != NULL)
			w->cb(sh->uid, w->arg);
		free(w);
	}
	if (sh->remove) {
		/* A callback's stop asked for removal as well. */
		shard_stopped(sh);
		return;
	}
	if (sh->restart) {
		sh->restart = 0;
		sh->backoff_ms = BACKOFF_MIN_MS;
		log_info("db:%d stopped; starting it again", sh->uid);
		shard_launch(sh);
		return;
	}
	for (i = 0; i < s->n; i++)
		if (s->v[i] == sh)
			s->v[i] = s->v[--s->n];
	shard_free(sh);
}

/* The process is gone: remove its directory if asked, then done. */
static void
shard_stopped(struct shard *sh)
{
	if (sh->remove && (sh->rm_pid = shard_rm_spawn(sh)) > 0) {
		sh->state = SH_REMOVING;
		return;
	}
	shard_stop_done(sh);
}

/* The one timer of a shard; what it is for depends on the state. */
static void
shard_timer(evutil_socket_t fd, short what, void *arg)
{
	struct shard *sh = arg;

	switch (sh->state) {
	case SH_STALE:
		shard_stale_poll(sh);
		break;
	case SH_STARTING:
		shard_poll_ready(sh);
		break;
	case SH_UP:
		shard_cfg_flush(sh);	/* a retry */
		break;
	case SH_BACKOFF:
		shard_launch(sh);
		break;
	case SH_STOPPING:
		if (sh->pid == 0) {
			shard_stopped(sh);	/* nothing ran */
			break;
		}
		if (mono_ms() < sh->stop_deadline) {
			/* Redis refuses to stop while it writes its first AOF
			 * (after a full sync, say), and does not try again by
			 * itself: ask again until the deadline. */
			kill(sh->pid, SIGTERM);
			shard_arm(sh, TERM_AGAIN_MS);
			break;
		}
		log_warn("db:%d redis-server pid %d did not stop in %d ms: "
		    "SIGKILL", sh->uid, (int)sh->pid, STOP_WAIT_MS);
		kill(sh->pid, SIGKILL);
		break;
	case SH_REMOVING:
		break;
	}
}

/* Our redis-server exited (status from waitpid). */
static void
shard_exited(struct shard *sh, int status)
{
	int was_up = sh->state == SH_UP;

	sh->pid = 0;
	shard_cfg_abort(sh);
	if (sh->state == SH_STOPPING) {
		evtimer_del(sh->timer);
		shard_stopped(sh);
		return;
	}
	if (time(NULL) - sh->started > STABLE_SECS)
		sh->backoff_ms = BACKOFF_MIN_MS;
	log_warn("db:%d redis-server exited (%s %d); restarting in %d ms",
	    sh->uid, WIFSIGNALED(status) ? "signal" : "status",
	    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
	    sh->backoff_ms);
	shard_backoff(sh);
	if (was_up)
		shards_notify(sh->s, sh->uid, 0);
}

static void
shards_sigchld(evutil_socket_t fd, short what, void *arg)
{
	struct shards	*s = arg;
	struct shard	*sh;
	int		 status, i;

	/* A handler may add or drop shards: scan again after each. */
again:
	for (i = 0; i < s->n; i++) {
		sh = s->v[i];
		if (sh->pid > 0 &&
		    waitpid(sh->pid, &status, WNOHANG) == sh->pid) {
			shard_exited(sh, status);
			goto again;
		}
		if (sh->rm_pid > 0 &&
		    waitpid(sh->rm_pid, &status, WNOHANG) == sh->rm_pid) {
			sh->rm_pid = 0;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
				log_warn("db:%d rm -rf %s failed", sh->uid,
				    sh->dir);
			shard_stop_done(sh);
			goto again;
		}
	}
}

struct shards *
shards_new(struct event_base *base, const char *data_dir, shard_state_cb cb,
    void *arg, struct err *e)
{
	struct shards *s;

	if (access(REDIS_SERVER, X_OK) == -1) {
		err_set(e, E_INTERNAL, "%s is missing: run scripts/deps",
		    REDIS_SERVER);
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->data_dir = strdup(data_dir)) == NULL ||
	    (s->sigchld = evsignal_new(base, SIGCHLD, shards_sigchld,
	    s)) == NULL) {
		if (s != NULL)
			free(s->data_dir);
		free(s);
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	s->base = base;
	s->cb = cb;
	s->arg = arg;
	event_add(s->sigchld, NULL);
	return s;
}

/* A change to a shard that exists (running, starting or stopping). */
static int
shard_update(struct shard *sh, const struct shard_conf *c, const char *pw,
    struct err *e)
{
	int pw_changed = (pw == NULL) != (sh->password == NULL) ||
	    (pw != NULL && strcmp(pw, sh->password) != 0);
	int stopping = sh->state == SH_STOPPING || sh->state == SH_REMOVING;
	const char *tok = c->replica_port ? c->replica_token : NULL;
	int repl_changed = c->replica_port != sh->replica_port ||
	    (tok == NULL) != (sh->replica_token == NULL) ||
	    (tok != NULL && strcmp(tok, sh->replica_token) != 0);

	if (!stopping && !pw_changed && !repl_changed &&
	    c->maxmemory == sh->maxmemory && c->persistence == sh->persistence)
		return 0;
	if (repl_changed) {
		sh->cfg_dirty |= CFG_REPLICA | CFG_PERSISTENCE;
		sh->replica_port = c->replica_port;
		secret_free(&sh->replica_token);
		if (tok != NULL && (sh->replica_token = strdup(tok)) == NULL)
			return err_set(e, E_INTERNAL, "out of memory");
	}
	if (c->maxmemory != sh->maxmemory)
		sh->cfg_dirty |= CFG_MAXMEMORY;
	if (c->persistence != sh->persistence)
		sh->cfg_dirty |= CFG_PERSISTENCE;
	if (pw_changed)
		sh->cfg_dirty |= CFG_PASSWORD;
	sh->maxmemory = c->maxmemory;
	sh->persistence = c->persistence;
	if (pw_changed) {
		secret_free(&sh->password);
		if (pw != NULL && (sh->password = strdup(pw)) == NULL)
			return err_set(e, E_INTERNAL, "out of memory");
	}
	if (stopping) {
		/* Its directory may be on its way out: written when the
		 * old process is gone, just before the new one starts. */
		sh->restart = 1;
		sh->need_conf = 1;
		return 0;
	}
	if (shard_write_conf(sh, e) == -1)
		return -1;
	/* Live change: clients stay connected. */
	shard_cfg_flush(sh);
	return 0;
}

int
shards_ensure(struct shards *s, const struct shard_conf *c, struct err *e)
{
	struct shard	*sh = shard_find(s, c->uid);
	const char	*pw = c->password && *c->password ? c->password : NULL;

	if (sh != NULL)
		return shard_update(sh, c, pw, e);
	if (s->n == MAX_SHARDS || (sh = calloc(1, sizeof(*sh))) == NULL)
		return err_set(e, E_INTERNAL, "too many shards");
	sh->s = s;
	sh->uid = c->uid;
	sh->maxmemory = c->maxmemory;
	sh->persistence = c->persistence;
	sh->backoff_ms = BACKOFF_MIN_MS;
	sh->replica_port = c->replica_port;
	if ((c->replica_port && c->replica_token != NULL &&
	    (sh->replica_token = strdup(c->replica_token)) == NULL) ||
	    (pw != NULL && (sh->password = strdup(pw)) == NULL) ||
	    (sh->timer = evtimer_new(s->base, shard_timer, sh)) == NULL) {
		shard_free(sh);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	snprintf(sh->dir, sizeof(sh->dir), "%s/dbs/%d", s->data_dir, c->uid);
	if (shards_socket_path(s, c->uid, sh->sock, sizeof(sh->sock)) == -1) {
		shard_free(sh);
		return err_set(e, E_INTERNAL, "the data directory path is too "
		    "long for a unix socket (%zu bytes max)", sizeof(sh->sock) -
		    sizeof("/dbs/NNNNN/redis.sock"));
	}
	if (fs_mkdir(sh->dir, 0700, e) == -1 || shard_write_conf(sh, e) == -1) {
		shard_free(sh);
		return -1;
	}
	s->v[s->n++] = sh;
	shard_launch(sh);
	return 0;
}

int
shards_stop_async(struct shards *s, int uid, int remove, shard_stop_cb cb,
    void *arg)
{
	struct shard		*sh = shard_find(s, uid);
	struct shard_waiter	*w, **tail;
	int			 was_up;

	if (sh == NULL)
		return 0;
	if (cb != NULL) {
		if ((w = calloc(1, sizeof(*w))) == NULL)
			return -1;
		w->cb = cb;
		w->arg = arg;
		for (tail = &sh->waiters; *tail != NULL; tail = &(*tail)->next)
			;
		*tail = w;
	}
	/* A stop after a re-ensure wins over it. */
	sh->restart = 0;
	if (remove)
		sh->remove = 1;
	if (sh->state == SH_STOPPING || sh->state == SH_REMOVING)
		return 1;
	was_up = sh->state == SH_UP;
	shard_cfg_abort(sh);
	sh->cfg_dirty = 0;
	if (sh->stale_pid > 0) {
		/* It was being replaced anyway. */
		kill(sh->stale_pid, SIGKILL);
		sh->stale_pid = 0;
	}
	sh->state = SH_STOPPING;
	if (sh->pid > 0) {
		kill(sh->pid, SIGTERM);
		sh->stop_deadline = mono_ms() + STOP_WAIT_MS;
		shard_arm(sh, TERM_AGAIN_MS);
	} else
		shard_arm(sh, 0);	/* done, from the loop */
	if (was_up)
		shards_notify(s, uid, 0);
	return 1;
}

void
shards_cancel(struct shards *s, void *arg)
{
	struct shard_waiter	*w;
	int			 i;

	for (i = 0; i < s->n; i++)
		for (w = s->v[i]->waiters; w != NULL; w = w->next)
			if (w->arg == arg)
				w->cb = NULL;
}

/*
 * Shutdown only: block until one of our children may have exited, or ms
 * passed.  Polls pidfds, which become readable when their process exits;
 * where a pidfd cannot be had, 10 ms steps.
 */
static void
shards_wait_children(struct shards *s, int ms)
{
	struct pollfd	*pfd;
	int		 i, n = 0, fd;

	if ((pfd = calloc((size_t)s->n * 2 + 1, sizeof(*pfd))) == NULL) {
		poll(NULL, 0, ms < 10 ? ms : 10);
		return;
	}
	for (i = 0; i < s->n; i++) {
		pid_t pids[2] = { s->v[i]->pid, s->v[i]->rm_pid };
		for (int k = 0; k < 2; k++) {
			if (pids[k] <= 0)
				continue;
			if ((fd = pidfd_open(pids[k], 0)) == -1) {
				ms = ms < 10 ? ms : 10;
				continue;
			}
			pfd[n].fd = fd;
			pfd[n++].events = POLLIN;
		}
	}
	poll(pfd, (nfds_t)n, ms);
	for (i = 0; i < n; i++)
		close(pfd[i].fd);
	free(pfd);
}

/* Reap what exited; a shard whose stop asked for removal gets its rm.
 * How many children are left. */
static int
shards_reap(struct shards *s)
{
	struct shard	*sh;
	int		 i, left = 0, status;
	pid_t		 r;

	for (i = 0; i < s->n; i++) {
		sh = s->v[i];
		if (sh->pid > 0 && ((r = waitpid(sh->pid, &status,
		    WNOHANG)) == sh->pid || (r == -1 && errno == ECHILD))) {
			sh->pid = 0;
			if (sh->remove)
				sh->rm_pid = shard_rm_spawn(sh);
		}
		if (sh->rm_pid > 0 && ((r = waitpid(sh->rm_pid, &status,
		    WNOHANG)) == sh->rm_pid || (r == -1 && errno == ECHILD)))
			sh->rm_pid = 0;
		left += (sh->pid > 0) + (sh->rm_pid > 0);
	}
	return left;
}

void
shards_free(struct shards *s)
{
	struct shard	*sh;
	long long	 deadline, now;
	int		 i, killed = 0;

	if (s == NULL)
		return;
	s->cb = NULL;
	for (i = 0; i < s->n; i++) {
		sh = s->v[i];
		evtimer_del(sh->timer);
		shard_cfg_abort(sh);
		if (sh->stale_pid > 0)
			kill(sh->stale_pid, SIGKILL);
		if (sh->pid > 0 && sh->state != SH_STOPPING)
			kill(sh->pid, SIGTERM);
		sh->state = SH_STOPPING;
	}
	/* The loop is over: reap here, all shards in parallel. */
	event_free(s->sigchld);
	deadline = mono_ms() + STOP_WAIT_MS;
	while (shards_reap(s) > 0) {
		if ((now = mono_ms()) >= deadline) {
			if (killed) {
				log_error("children of moatd still run after "
				    "SIGKILL; leaving them");
				break;
			}
			for (i = 0; i < s->n; i++) {
				sh = s->v[i];
				if (sh->pid > 0) {
					log_warn("db:%d redis-server pid %d "
					    "did not stop in %d ms: SIGKILL",
					    sh->uid, (int)sh->pid,
					    STOP_WAIT_MS);
					kill(sh->pid, SIGKILL);
				}
				if (sh->rm_pid > 0)
					kill(sh->rm_pid, SIGKILL);
			}
			killed = 1;
			deadline = now + 2000;
			continue;
		}
		shards_wait_children(s, deadline - now < TERM_AGAIN_MS ?
		    (int)(deadline - now) : TERM_AGAIN_MS);
		/* A shutdown Redis refused (its first AOF is being written)
		 * is asked for again. */
		for (i = 0; !killed && i < s->n; i++)
			if (s->v[i]->pid > 0)
				kill(s->v[i]->pid, SIGTERM);
	}
	for (i = 0; i < s->n; i++)
		shard_free(s->v[i]);
	free(s->data_dir);
	free(s);
}

const char *
shards_socket(struct shards *s, int uid)
{
	struct shard *sh = shard_find(s, uid);

	return sh != NULL ? sh->sock : NULL;
}

int
shards_socket_path(struct shards *s, int uid, char *buf, size_t len)
{
	return (size_t)snprintf(buf, len, "%s/dbs/%d/redis.sock", s->data_dir,
	    uid) >= len ? -1 : 0;
}

int
shards_is_up(struct shards *s, int uid)
{
	struct shard *sh = shard_find(s, uid);

	return sh != NULL && sh->state == SH_UP;
}
