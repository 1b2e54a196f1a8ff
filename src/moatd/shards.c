/*
 * shards.c — supervision of redis-server processes.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "net.h"
#include "shards.h"

#define REDIS_SERVER	"/usr/bin/redis-server"
#define MAX_SHARDS	1024
#define BACKOFF_MIN_MS	100
#define BACKOFF_MAX_MS	5000
#define STABLE_SECS	30
#define STOP_WAIT_MS	5000

struct shard {
	struct shards	*s;
	int		 uid;
	pid_t		 pid;
	int		 up;
	int		 stopping;
	int		 backoff_ms;
	time_t		 started;
	long long	 maxmemory;
	char		*password;
	enum shard_persistence persistence;
	char		 dir[4096];
	char		 sock[108];
	struct event	*timer;		/* restart or readiness poll */
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

/* redis.conf for the shard: mode 0600, it may hold requirepass. */
static int
shard_write_conf(struct shard *sh, struct err *e)
{
	char	 path[4200], *conf = NULL;
	int	 rc;

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
	    "appendonly %s\n"
	    "appendfsync everysec\n"
	    "save \"%s\"\n"
	    "%s%s%s",
	    sh->sock, sh->dir, sh->dir, sh->dir, sh->maxmemory,
	    persist_table[sh->persistence].appendonly,
	    persist_table[sh->persistence].save,
	    sh->password ? "requirepass \"" : "",
	    sh->password ? sh->password : "",
	    sh->password ? "\"\n" : "") == -1)
		return err_set(e, E_INTERNAL, "out of memory");
	rc = fs_write_atomic(path, conf, strlen(conf), 0600, e);
	explicit_bzero(conf, strlen(conf));
	free(conf);
	return rc;
}

static int
shard_connect(struct shard *sh)
{
	return net_unix_connect(sh->sock, 0);
}

/*
 * One command over the unix socket, synchronously (the shard is local and
 * answers CONFIG SET at once).  0 when the reply is "+OK".
 */
static int
shard_command(struct shard *sh, const char *const *argv, int argc)
{
	char	 buf[256], *cmd = NULL, *t;
	int	 fd, i, rc = -1;
	ssize_t	 n;
	struct timeval tv = { 2, 0 };

	if ((fd = shard_connect(sh)) == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (asprintf(&cmd, "*%d\r\n", argc) == -1)
		goto out;
	for (i = 0; i < argc; i++) {
		if (asprintf(&t, "%s$%zu\r\n%s\r\n", cmd, strlen(argv[i]),
		    argv[i]) == -1)
			goto out;
		explicit_bzero(cmd, strlen(cmd));
		free(cmd);
		cmd = t;
	}
	if (sh->password != NULL) {
		char *a = NULL;
		if (asprintf(&a, "*2\r\n$4\r\nAUTH\r\n$%zu\r\n%s\r\n",
		    strlen(sh->password), sh->password) == -1)
			goto out;
		n = write(fd, a, strlen(a));
		explicit_bzero(a, strlen(a));
		free(a);
		if (n <= 0 || read(fd, buf, sizeof(buf)) < 3 ||
		    strncmp(buf, "+OK", 3) != 0)
			goto out;
	}
	if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
		goto out;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n >= 3 && strncmp(buf, "+OK", 3) == 0)
		rc = 0;
out:
	if (cmd != NULL) {
		explicit_bzero(cmd, strlen(cmd));
		free(cmd);
	}
	close(fd);
	return rc;
}

static void shard_start(struct shard *sh);

static void
shard_poll_ready(evutil_socket_t fd, short what, void *arg)
{
	struct shard	*sh = arg;
	struct timeval	 tv = { 0, 50 * 1000 };
	int		 c;

	if (sh->pid == 0 || sh->stopping)
		return;
	if ((c = shard_connect(sh)) == -1) {
		evtimer_add(sh->timer, &tv);
		return;
	}
	close(c);
	sh->up = 1;
	log_info("db:%d shard up (redis-server pid %d)", sh->uid,
	    (int)sh->pid);
	shards_notify(sh->s, sh->uid, 1);
}

static void
shard_restart_cb(evutil_socket_t fd, short what, void *arg)
{
	struct shard *sh = arg;

	if (!sh->stopping && sh->pid == 0)
		shard_start(sh);
}

/* If a redis-server of an earlier moatd still runs on this directory
 * (moatd was killed), stop it before starting ours on the same files. */
static void
shard_kill_stale(struct shard *sh)
{
	char	 path[4200], buf[32], exe[64], link[256];
	FILE	*f;
	int	 pid = 0, i;
	ssize_t	 n;

	snprintf(path, sizeof(path), "%s/redis.pid", sh->dir);
	if ((f = fopen(path, "r")) == NULL)
		return;
	if (fgets(buf, sizeof(buf), f) != NULL)
		pid = atoi(buf);
	fclose(f);
	if (pid <= 1)
		return;
	snprintf(exe, sizeof(exe), "/proc/%d/exe", pid);
	n = readlink(exe, link, sizeof(link) - 1);
	if (n <= 0)
		return;
	link[n] = '\0';
	if (strstr(link, "redis") == NULL)
		return;
	log_warn("db:%d stopping leftover redis-server pid %d", sh->uid, pid);
	kill(pid, SIGTERM);
	for (i = 0; i < 100 && kill(pid, 0) == 0; i++)
		usleep(50 * 1000);
	if (kill(pid, 0) == 0)
		kill(pid, SIGKILL);
}

static void
shard_start(struct shard *sh)
{
	char		 conf[4200];
	struct timeval	 tv = { 0, 20 * 1000 };
	pid_t		 pid;

	snprintf(conf, sizeof(conf), "%s/redis.conf", sh->dir);
	if ((pid = fork()) == -1) {
		log_error("db:%d cannot fork: %s", sh->uid, strerror(errno));
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
	sh->up = 0;
	if (sh->timer != NULL)
		event_free(sh->timer);
	sh->timer = evtimer_new(sh->s->base, shard_poll_ready, sh);
	evtimer_add(sh->timer, &tv);
}

static void
shards_sigchld(evutil_socket_t fd, short what, void *arg)
{
	struct shards	*s = arg;
	struct shard	*sh;
	struct timeval	 tv;
	pid_t		 pid;
	int		 status, i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (sh = NULL, i = 0; i < s->n; i++)
			if (s->v[i]->pid == pid)
				sh = s->v[i];
		if (sh == NULL)
			continue;
		sh->pid = 0;
		if (sh->up) {
			sh->up = 0;
			shards_notify(s, sh->uid, 0);
		}
		if (sh->stopping)
			continue;
		if (time(NULL) - sh->started > STABLE_SECS)
			sh->backoff_ms = BACKOFF_MIN_MS;
		log_warn("db:%d redis-server exited (%s %d); restarting in %d ms",
		    sh->uid, WIFSIGNALED(status) ? "signal" : "status",
		    WIFSIGNALED(status) ? WTERMSIG(status) :
		    WEXITSTATUS(status), sh->backoff_ms);
		tv.tv_sec = sh->backoff_ms / 1000;
		tv.tv_usec = (sh->backoff_ms % 1000) * 1000;
		if (sh->timer != NULL)
			event_free(sh->timer);
		sh->timer = evtimer_new(s->base, shard_restart_cb, sh);
		evtimer_add(sh->timer, &tv);
		sh->backoff_ms = sh->backoff_ms * 2 > BACKOFF_MAX_MS ?
		    BACKOFF_MAX_MS : sh->backoff_ms * 2;
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
	    (s->data_dir = strdup(data_dir)) == NULL) {
		free(s);
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	s->base = base;
	s->cb = cb;
	s->arg = arg;
	s->sigchld = evsignal_new(base, SIGCHLD, shards_sigchld, s);
	event_add(s->sigchld, NULL);
	return s;
}

int
shards_ensure(struct shards *s, const struct shard_conf *c, struct err *e)
{
	struct shard	*sh = shard_find(s, c->uid);
	const char	*pw = c->password && *c->password ? c->password : NULL;
	char		 num[32];

	if (sh != NULL) {
		int pw_changed = (pw == NULL) != (sh->password == NULL) ||
		    (pw != NULL && strcmp(pw, sh->password) != 0);
		if (!pw_changed && c->maxmemory == sh->maxmemory &&
		    c->persistence == sh->persistence)
			return 0;
		if (sh->up && c->persistence != sh->persistence) {
			const char *a1[] = { "CONFIG", "SET", "appendonly",
			    persist_table[c->persistence].appendonly };
			const char *a2[] = { "CONFIG", "SET", "save",
			    persist_table[c->persistence].save };
			if (shard_command(sh, a1, 4) == -1 ||
			    shard_command(sh, a2, 4) == -1)
				log_warn("db:%d CONFIG SET persistence failed",
				    sh->uid);
		}
		sh->persistence = c->persistence;
		/* Live change: clients stay connected. */
		if (sh->up && c->maxmemory != sh->maxmemory) {
			const char *argv[] = { "CONFIG", "SET", "maxmemory", num };
			snprintf(num, sizeof(num), "%lld", c->maxmemory);
			if (shard_command(sh, argv, 4) == -1)
				log_warn("db:%d CONFIG SET maxmemory failed",
				    sh->uid);
		}
		if (sh->up && pw_changed) {
			const char *argv[] = { "CONFIG", "SET", "requirepass",
			    pw ? pw : "" };
			if (shard_command(sh, argv, 4) == -1)
				log_warn("db:%d CONFIG SET requirepass failed",
				    sh->uid);
		}
		sh->maxmemory = c->maxmemory;
		if (sh->password != NULL) {
			explicit_bzero(sh->password, strlen(sh->password));
			free(sh->password);
		}
		sh->password = pw ? strdup(pw) : NULL;
		return shard_write_conf(sh, e);
	}
	if (s->n == MAX_SHARDS || (sh = calloc(1, sizeof(*sh))) == NULL)
		return err_set(e, E_INTERNAL, "too many shards");
	sh->s = s;
	sh->uid = c->uid;
	sh->maxmemory = c->maxmemory;
	sh->persistence = c->persistence;
	sh->password = pw ? strdup(pw) : NULL;
	sh->backoff_ms = BACKOFF_MIN_MS;
	snprintf(sh->dir, sizeof(sh->dir), "%s/dbs/%d", s->data_dir, c->uid);
	if ((size_t)snprintf(sh->sock, sizeof(sh->sock), "%s/redis.sock",
	    sh->dir) >= sizeof(sh->sock)) {
		free(sh->password);
		free(sh);
		return err_set(e, E_INTERNAL, "the data directory path is too "
		    "long for a unix socket (%zu bytes max)", sizeof(sh->sock) -
		    sizeof("/dbs/NNNNN/redis.sock"));
	}
	if (fs_mkdir(sh->dir, 0700, e) == -1 || shard_write_conf(sh, e) == -1) {
		free(sh->password);
		free(sh);
		return -1;
	}
	s->v[s->n++] = sh;
	shard_kill_stale(sh);
	shard_start(sh);
	return 0;
}

static void
rm_rf(const char *dir)
{
	char cmd[4300];

	/* The directory holds only what shard_write_conf and redis made. */
	snprintf(cmd, sizeof(cmd), "%s", dir);
	if (strstr(cmd, "/dbs/") == NULL)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		close_range(3, ~0U, 0);
		execl("/bin/rm", "rm", "-rf", "--", dir, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

void
shards_stop(struct shards *s, int uid, int remove)
{
	struct shard	*sh = shard_find(s, uid);
	int		 i, status;

	if (sh == NULL)
		return;
	sh->stopping = 1;
	if (sh->pid > 0) {
		kill(sh->pid, SIGTERM);
		for (i = 0; i < STOP_WAIT_MS / 10; i++) {
			if (waitpid(sh->pid, &status, WNOHANG) == sh->pid)
				break;
			usleep(10 * 1000);
		}
		if (i == STOP_WAIT_MS / 10) {
			kill(sh->pid, SIGKILL);
			waitpid(sh->pid, &status, 0);
		}
		sh->pid = 0;
	}
	if (sh->up) {
		sh->up = 0;
		shards_notify(s, uid, 0);
	}
	if (remove)
		rm_rf(sh->dir);
	for (i = 0; i < s->n; i++)
		if (s->v[i] == sh)
			s->v[i] = s->v[--s->n];
	if (sh->timer != NULL)
		event_free(sh->timer);
	if (sh->password != NULL) {
		explicit_bzero(sh->password, strlen(sh->password));
		free(sh->password);
	}
	free(sh);
}

void
shards_free(struct shards *s)
{
	if (s == NULL)
		return;
	s->cb = NULL;
	while (s->n > 0)
		shards_stop(s, s->v[0]->uid, 0);
	event_free(s->sigchld);
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
shards_is_up(struct shards *s, int uid)
{
	struct shard *sh = shard_find(s, uid);

	return sh != NULL && sh->up;
}

