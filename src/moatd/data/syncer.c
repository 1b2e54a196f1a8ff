/*
 * syncer.c — Replica Of links (see syncer.h).
 *
 * A link (one per destination database on this node) owns: a loopback
 * listener (the relay) that its shard replicates from; the connections
 * pairs the shard opens (down: the shard's plain TCP; up: TLS to the
 * source); the probe (one more TLS connection that asks the source for
 * its offset); and a timer that reads the shard's own replication state.
 *
 * A connection to the source goes CONNECTING (TCP and TLS) -> AUTH (our
 * AUTH, or a PING without a password, is answered) -> READY.  Only then
 * does a relay pair answer the shard's PING and check its token, and
 * only after that do bytes flow both ways unchanged.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/listener.h>

#include "log.h"
#include "net.h"
#include "syncer.h"
#include "tlsctx_impl.h"
#include "util.h"

#define MAX_LINKS	1024
#define MAX_PAIRS	8	/* the shard opens one; a few to spare */
#define TICK_MS		100	/* the lag's resolution */
#define HIST		1024	/* source offsets the shard still lacks */
#define CONNECT_SECS	10
#define GATE_SECS	5	/* for a local connection to give the token */
#define LOCAL_SECS	2
#define PIPE_HIGH	(4 * 1024 * 1024)
#define PROBE_BACKOFF_MIN_MS 1000
#define PROBE_BACKOFF_MAX_MS 10000
#define PROBE_STALE_MS	2000	/* no answer for that long: lag grows */
#define INFO_MAX	(64 * 1024)

enum up_phase { UP_CONNECTING, UP_AUTH, UP_READY };
/* A relay pair: the shard's PING, its AUTH (the token), the source
 * being reached, then bytes both ways. */
enum gate { GATE_PING, GATE_AUTH, GATE_UPSTREAM, GATE_PIPE };

struct link;

/* A relay pair (down != NULL) or the probe (down == NULL). */
struct sconn {
	struct link		*l;
	struct bufferevent	*down;	/* the shard's connection to us */
	struct bufferevent	*up;	/* TLS to the source */
	struct tlsctx		*ctx;	/* of this connection's handshake */
	enum up_phase		 phase;
	enum gate		 gate;
	int			 info_pending;	/* probe: INFO on the wire */
	int			 watch;		/* relay: PSYNC not answered */
	TAILQ_ENTRY(sconn)	 entry;
};
TAILQ_HEAD(sconn_list, sconn);

struct link {
	struct syncer		*s;
	int			 uid;
	char			*host;
	int			 port;
	char			*user;
	char			*password;	/* wiped */
	struct tlsctx		*ctx;
	int			 paused;
	char			*shard_sock;
	char			*shard_password;	/* wiped */
	char			 token[65];
	struct evconnlistener	*lis;
	int			 relay_port;
	struct sconn_list	 pairs;
	int			 npairs;
	struct sconn		*probe;
	int			 probe_backoff_ms;
	long long		 probe_ok;	/* ms: its last answer */
	long long		 probe_next;	/* ms, monotonic */
	struct event		*tick;
	struct bufferevent	*local;		/* INFO of the shard */
	int			 local_auth;	/* an AUTH reply comes first */
	int			 local_pending;	/* an INFO is out */
	/*
	 * Source offsets the probe saw that the shard had not reached when
	 * last asked, oldest first, each with when it was first seen: the
	 * oldest one tells since when the shard lacks something.
	 */
	struct {
		long long	 off;
		long long	 t;	/* ms, monotonic */
	}			 hist[HIST];
	int			 nhist;
	/* The shard, as its last INFO said. */
	int			 dst_known, dst_up, dst_syncing;
	long long		 dst_off;
	long long		 local_sent;	/* ms: that INFO was asked */
	long long		 behind_since;	/* ms; 0: caught up */
	char			 relay_err[512], probe_err[512];
	struct syncer_state	 st;
	int			 logged;	/* st was logged once */
	char			 logged_err[512];
	enum syncer_status	 logged_status;
};

struct syncer {
	struct event_base	*base;
	struct evdns_base	*dns;
	struct link		*v[MAX_LINKS];
	int			 n;
};

static void	conn_free(struct sconn *c);
static void	link_update_state(struct link *l);

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static char *
str_dup0(const char *s)
{
	return s != NULL && *s != '\0' ? strdup(s) : NULL;
}

/*
 * One RESP array of bulk strings from b, as a client sends a command.
 * 1: argv[0..*argc) are freshly allocated (free with argv_free) and the
 * bytes are consumed; 0: not complete yet; -1: not a command.
 */
static int
resp_take_command(struct evbuffer *b, char **argv, int maxarg, int *argc)
{
	size_t	 len = evbuffer_get_length(b), pos = 0;
	char	*buf, *p, *nl;
	long	 n, blen;
	int	 i, rc = 0;

	*argc = 0;
	if (len == 0)
		return 0;
	if (len > 4096)
		len = 4096;
	if ((buf = malloc(len + 1)) == NULL)
		return -1;
	evbuffer_copyout(b, buf, len);
	buf[len] = '\0';
	if (buf[0] != '*') {
		free(buf);
		return -1;
	}
	if ((nl = memchr(buf, '\n', len)) == NULL)
		goto partial;
	n = strtol(buf + 1, NULL, 10);
	if (n < 1 || n > maxarg)
		goto bad;
	pos = (size_t)(nl - buf) + 1;
	for (i = 0; i < n; i++) {
		if (pos >= len || buf[pos] != '$')
			goto partial_or_bad;
		if ((nl = memchr(buf + pos, '\n', len - pos)) == NULL)
			goto partial;
		blen = strtol(buf + pos + 1, NULL, 10);
		if (blen < 0 || blen > 1024)
			goto bad;
		p = nl + 1;
		if ((size_t)(p - buf) + (size_t)blen + 2 > len)
			goto partial;
		if ((argv[i] = strndup(p, (size_t)blen)) == NULL)
			goto bad;
		(*argc)++;
		pos = (size_t)(p - buf) + (size_t)blen + 2;
	}
	evbuffer_drain(b, pos);
	rc = 1;
	goto out;
partial_or_bad:
	if (pos < len)
		goto bad;
partial:
	rc = len == 4096 ? -1 : 0;
	goto out;
bad:
	rc = -1;
out:
	if (rc != 1)
		while (*argc > 0)
			free(argv[--(*argc)]);
	free(buf);
	return rc;
}

static void
argv_free(char **argv, int argc)
{
	while (argc > 0) {
		argc--;
		explicit_bzero(argv[argc], strlen(argv[argc]));
		free(argv[argc]);
	}
}

/* ---- errors and status ---- */

/* Replace every occurrence of the password in s by the mask: a source
 * may echo what it was sent (a renamed AUTH: "unknown command ... with
 * args beginning with"), and last_error is logged and answered. */
static void
mask_password(struct link *l, char *s, size_t len)
{
	static const char	 mask[] = "********";
	char			*p, tmp[512];
	size_t			 pl;

	if (l->password == NULL || (pl = strlen(l->password)) == 0)
		return;
	while ((p = strstr(s, l->password)) != NULL) {
		snprintf(tmp, sizeof(tmp), "%s", p + pl);
		*p = '\0';
		snprintf(p, len - (size_t)(p - s), "%s%s", mask, tmp);
	}
}

static void
link_error(struct link *l, struct sconn *c, const char *why)
{
	char *dst = c->down != NULL ? l->relay_err : l->probe_err;

	snprintf(dst, sizeof(l->relay_err), "%s", why);
	mask_password(l, dst, sizeof(l->relay_err));
	link_update_state(l);
}

/* A connection did what it is for: its kind of error is over.  (The
 * probe retries at once when the settings change, so neither kind
 * speaks for the other.) */
static void
link_reached(struct link *l, struct sconn *c)
{
	if (c->down != NULL)
		l->relay_err[0] = '\0';
	else {
		l->probe_err[0] = '\0';
		l->probe_backoff_ms = PROBE_BACKOFF_MIN_MS;
	}
	link_update_state(l);
}

/* The lag: how long ago the source first held data the shard still
 * lacks (0 when the shard has everything the source last reported). */
static long long
link_lag(struct link *l)
{
	long long now = mono_ms(), lag;

	lag = l->behind_since != 0 ? now - l->behind_since : 0;
	/* A source we cannot hear from: nothing newer than its last answer
	 * is known to have reached the shard. */
	if (l->probe_ok != 0 && now - l->probe_ok > PROBE_STALE_MS &&
	    now - l->probe_ok > lag)
		lag = now - l->probe_ok;
	return lag;
}

/*
 * The shard reported its offset (asked at l->local_sent): forget what it
 * reached; what it still lacks and the source already had when the shard
 * was asked is the lag.  A source offset seen after that cannot be
 * judged by this answer.
 */
static void
link_lag_update(struct link *l)
{
	int i = 0;

	while (i < l->nhist && l->hist[i].off <= l->dst_off)
		i++;
	if (i > 0) {
		memmove(&l->hist[0], &l->hist[i], sizeof(l->hist[0]) *
		    (size_t)(l->nhist - i));
		l->nhist -= i;
	}
	l->behind_since = l->nhist > 0 && l->hist[0].t <= l->local_sent ?
	    l->hist[0].t : 0;
}

static void
link_update_state(struct link *l)
{
	struct syncer_state *st = &l->st;

	if (l->paused)
		st->status = SYNC_OUT_OF_SYNC;
	else if (l->dst_known && l->dst_up && !l->dst_syncing &&
	    l->probe_err[0] == '\0')
		st->status = SYNC_IN_SYNC;
	else if (l->dst_known && l->dst_syncing)
		st->status = SYNC_SYNCING;
	else if (l->relay_err[0] != '\0' || l->probe_err[0] != '\0')
		st->status = SYNC_OUT_OF_SYNC;
	else
		st->status = SYNC_SYNCING;
	snprintf(st->last_error, sizeof(st->last_error), "%s",
	    l->relay_err[0] != '\0' ? l->relay_err : l->probe_err);
	st->lag_ms = link_lag(l);
	/* Said once per change, not once per retry. */
	if (strcmp(st->last_error, l->logged_err) != 0) {
		if (st->last_error[0] != '\0')
			log_warn("db:%d replication from %s:%d: %s", l->uid,
			    l->host, l->port, st->last_error);
		else
			log_info("db:%d replication from %s:%d: the link "
			    "works again", l->uid, l->host, l->port);
		snprintf(l->logged_err, sizeof(l->logged_err), "%s",
		    st->last_error);
	}
	if (!l->logged || st->status != l->logged_status) {
		log_info("db:%d replication from %s:%d: %s%s", l->uid,
		    l->host, l->port, syncer_status_name(st->status),
		    l->paused ? " (paused)" : "");
		l->logged = 1;
		l->logged_status = st->status;
	}
}

/* ---- connections to the source ---- */

static void
conn_free(struct sconn *c)
{
	struct link *l = c->l;

	if (c->down != NULL) {
		TAILQ_REMOVE(&l->pairs, c, entry);
		l->npairs--;
		bufferevent_free(c->down);
	} else if (l->probe == c)
		l->probe = NULL;
	if (c->up != NULL)
		bufferevent_free(c->up);
	tlsctx_unref(c->ctx);
	free(c);
}

static void
probe_failed(struct link *l)
{
	l->probe_next = mono_ms() + l->probe_backoff_ms;
	l->probe_backoff_ms *= 2;
	if (l->probe_backoff_ms > PROBE_BACKOFF_MAX_MS)
		l->probe_backoff_ms = PROBE_BACKOFF_MAX_MS;
}

/* The connection failed before it was ready: say why, end it. */
static void
conn_fail(struct sconn *c, const char *why)
{
	struct link *l = c->l;

	if (c->down == NULL)
		probe_failed(l);
	link_error(l, c, why);
	conn_free(c);
}

/* Move what arrived on from to to, holding from while to is full. */
static void
pipe_bytes(struct bufferevent *from, struct bufferevent *to)
{
	struct evbuffer *dst = bufferevent_get_output(to);

	evbuffer_add_buffer(dst, bufferevent_get_input(from));
	if (evbuffer_get_length(dst) >= PIPE_HIGH) {
		bufferevent_setwatermark(to, EV_WRITE, PIPE_HIGH / 2,
		    PIPE_HIGH);
		bufferevent_disable(from, EV_READ);
	}
}

/* to drained below the low mark: let from read again. */
static void
pipe_drained(struct bufferevent *to, struct bufferevent *from)
{
	bufferevent_setwatermark(to, EV_WRITE, 0, 0);
	bufferevent_enable(from, EV_READ);
}

static void
probe_parse(struct link *l, const char *info)
{
	const char	*p = strstr(info, "\nmaster_repl_offset:");
	long long	 off, t = mono_ms();

	if (p == NULL && strncmp(info, "master_repl_offset:", 19) == 0)
		p = info - 1;
	if (p == NULL)
		return;
	off = strtoll(p + 20, NULL, 10);
	/* A restarted source starts again from lower offsets. */
	if (l->nhist > 0 && off < l->hist[l->nhist - 1].off)
		l->nhist = 0;
	/* Already reached, or already known since earlier. */
	if ((l->dst_known && off <= l->dst_off) ||
	    (l->nhist > 0 && off == l->hist[l->nhist - 1].off))
		return;
	if (l->nhist == HIST) {
		/* A long way behind: halve the resolution of all but the
		 * oldest, which alone says since when. */
		int i, j = 1;
		for (i = 2; i < HIST; i += 2)
			l->hist[j++] = l->hist[i];
		l->nhist = j;
	}
	l->hist[l->nhist].off = off;
	l->hist[l->nhist].t = t;
	l->nhist++;
}

/*
 * A bulk string reply ("$<n>\r\n<n bytes>\r\n") from b.  1: *out is
 * it, NUL-terminated, freshly allocated; 0: incomplete; -1: an error
 * reply or garbage (*out is then the first line, if any).
 */
static int
resp_take_bulk(struct evbuffer *b, char **out)
{
	struct evbuffer_ptr	 eol;
	size_t			 eol_len, head;
	char			 line[32];
	long			 n;

	*out = NULL;
	eol = evbuffer_search_eol(b, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	if (eol.pos < 0)
		return evbuffer_get_length(b) > 32 ? -1 : 0;
	if (eol.pos >= (ssize_t)sizeof(line) || evbuffer_get_length(b) == 0) {
		*out = evbuffer_readln(b, NULL, EVBUFFER_EOL_CRLF);
		return -1;
	}
	evbuffer_copyout(b, line, (size_t)eol.pos);
	line[eol.pos] = '\0';
	if (line[0] != '$') {
		*out = evbuffer_readln(b, NULL, EVBUFFER_EOL_CRLF);
		return -1;
	}
	n = strtol(line + 1, NULL, 10);
	if (n < 0 || n > INFO_MAX)
		return -1;
	head = (size_t)eol.pos + eol_len;
	if (evbuffer_get_length(b) < head + (size_t)n + 2)
		return 0;
	evbuffer_drain(b, head);
	if ((*out = malloc((size_t)n + 1)) == NULL)
		return -1;
	evbuffer_remove(b, *out, (size_t)n);
	(*out)[n] = '\0';
	evbuffer_drain(b, 2);
	return 1;
}

/* The source answered our AUTH (or PING). */
static int
up_auth_reply(struct sconn *c, const char *line)
{
	struct link	*l = c->l;
	char		 why[512];

	if (line[0] == '+') {
		c->phase = UP_READY;
		bufferevent_set_timeouts(c->up, NULL, NULL);
		if (c->down == NULL) {
			l->probe_ok = mono_ms();
			link_reached(l, c);
			return 0;
		}
		/* The shard's AUTH is answered now, and what it sent after
		 * it (REPLCONF, PSYNC) goes on to the source. */
		evbuffer_add_printf(bufferevent_get_output(c->down), "+OK\r\n");
		c->gate = GATE_PIPE;
		c->watch = 1;
		bufferevent_set_timeouts(c->down, NULL, NULL);
		bufferevent_enable(c->down, EV_READ);
		pipe_bytes(c->down, c->up);
		return 0;
	}
	if (strncmp(line, "-NOAUTH", 7) == 0)
		snprintf(why, sizeof(why), "the source requires a password: "
		    "give it in uri (redis://:<password>@%s:%d)", l->host,
		    l->port);
	else if (strncmp(line, "-WRONGPASS", 10) == 0 ||
	    strstr(line, "invalid password") != NULL ||
	    strstr(line, "invalid username-password") != NULL)
		snprintf(why, sizeof(why), "the source refused the password "
		    "in uri (%.120s)", line + 1);
	else
		snprintf(why, sizeof(why), "the source refused to "
		    "authenticate: %.120s", line + 1);
	conn_fail(c, why);
	return -1;
}

/*
 * Until the source accepted the shard's PSYNC (+FULLRESYNC, +CONTINUE),
 * read its replies on their way: a refusal (an ACL without +psync, a
 * proxy that will not replicate) is an error the shard alone would only
 * retry.  Returns how many bytes may go on (complete lines read so far,
 * or all once the stream started).
 */
static size_t
up_watch(struct sconn *c, struct evbuffer *in)
{
	struct link		*l = c->l;
	struct evbuffer_ptr	 p, eol;
	size_t			 eol_len, n;
	char			 line[200], why[512];

	evbuffer_ptr_set(in, &p, 0, EVBUFFER_PTR_SET);
	while (c->watch) {
		eol = evbuffer_search_eol(in, &p, &eol_len, EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) {
			/* A reply line is short; a long one is not one. */
			if (evbuffer_get_length(in) - (size_t)p.pos >
			    sizeof(line))
				c->watch = 0;
			break;
		}
		n = (size_t)(eol.pos - p.pos);
		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		evbuffer_copyout_from(in, &p, line, n);
		line[n] = '\0';
		if (line[0] == '-') {
			snprintf(why, sizeof(why), "the source refused to "
			    "replicate: %.150s", line + 1);
			link_error(l, c, why);
		} else if (strncmp(line, "+FULLRESYNC", 11) == 0 ||
		    strncmp(line, "+CONTINUE", 9) == 0) {
			c->watch = 0;
			link_reached(l, c);
		}
		evbuffer_ptr_set(in, &p, (size_t)eol.pos + eol_len,
		    EVBUFFER_PTR_SET);
	}
	return c->watch ? (size_t)p.pos : evbuffer_get_length(in);
}

static void
up_read(struct bufferevent *bev, void *arg)
{
	struct sconn	*c = arg;
	struct link	*l = c->l;
	struct evbuffer	*in = bufferevent_get_input(bev);
	char		*line;
	size_t		 n;
	int		 rc;

	if (c->phase == UP_AUTH) {
		if ((line = evbuffer_readln(in, NULL,
		    EVBUFFER_EOL_CRLF)) == NULL)
			return;
		rc = up_auth_reply(c, line);
		free(line);
		if (rc == -1 || c->down == NULL)
			return;	/* c may be gone; a probe reads on tick */
	}
	if (c->phase != UP_READY)
		return;
	if (c->down != NULL) {
		if (c->gate != GATE_PIPE)
			return;
		if (c->watch) {
			n = up_watch(c, in);
			evbuffer_remove_buffer(in, bufferevent_get_output(
			    c->down), n);
			if (c->watch)
				return;
		}
		pipe_bytes(c->up, c->down);
		return;
	}
	/* The probe: INFO replication replies. */
	while (c->info_pending) {
		rc = resp_take_bulk(in, &line);
		if (rc == 0)
			return;
		c->info_pending = 0;
		if (rc == 1) {
			l->probe_ok = mono_ms();
			probe_parse(l, line);
		}
		free(line);
		if (rc == -1) {
			conn_fail(c, "the source answered INFO with something "
			    "that is not Redis's reply");
			return;
		}
	}
}

static void
up_write(struct bufferevent *bev, void *arg)
{
	struct sconn *c = arg;

	(void)bev;
	if (c->down != NULL && c->gate == GATE_PIPE)
		pipe_drained(c->up, c->down);
}

static void
up_event(struct bufferevent *bev, short what, void *arg)
{
	struct sconn	*c = arg;
	struct link	*l = c->l;
	SSL		*ssl = bufferevent_openssl_get_ssl(bev);
	unsigned long	 ec = 0, e2;
	char		 why[512];

	if (what & BEV_EVENT_CONNECTED) {
		/* The stream is many small writes: none may wait for an ACK. */
		net_nodelay(bufferevent_getfd(bev));
		if (tlsctx_client_check(c->ctx, ssl, why, sizeof(why)) == -1) {
			conn_fail(c, why);
			return;
		}
		/* TLS is up; the source hears our credentials now, never
		 * before its certificate was checked. */
		c->phase = UP_AUTH;
		if (l->password != NULL) {
			const char *a2[] = { "AUTH", l->password };
			const char *a3[] = { "AUTH", l->user, l->password };
			if (l->user != NULL)
				net_resp_command(bufferevent_get_output(bev), 3, a3);
			else
				net_resp_command(bufferevent_get_output(bev), 2, a2);
		} else {
			const char *a[] = { "PING" };
			net_resp_command(bufferevent_get_output(bev), 1, a);
		}
		bufferevent_enable(bev, EV_READ | EV_WRITE);
		return;
	}
	if (c->phase == UP_READY && c->down != NULL) {
		/* An established link ended (the source cut it, or went
		 * away): the shard notices and comes back through us. */
		log_info("db:%d replication from %s:%d: the source closed the "
		    "link", l->uid, l->host, l->port);
		conn_free(c);
		return;
	}
	if (c->phase == UP_READY) {
		/* The probe lost a source that answered: say so (the
		 * shard's own link may take a minute to notice). */
		snprintf(why, sizeof(why), "the source %s:%d stopped "
		    "answering (%s)", l->host, l->port, what &
		    BEV_EVENT_TIMEOUT ? "no reply within 10 s" :
		    "connection closed");
		conn_fail(c, why);
		return;
	}
	/* libevent queues SSL_get_error()'s code (library 0) after
	 * OpenSSL's own errors and hands the latest first: keep the
	 * earliest real one. */
	while ((e2 = bufferevent_get_openssl_error(bev)) != 0)
		if (ERR_GET_LIB(e2) != 0)
			ec = e2;
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(why, sizeof(why), "the source %s:%d did not answer "
		    "within %d s", l->host, l->port, CONNECT_SECS);
	else if (bufferevent_socket_get_dns_error(bev) != 0)
		snprintf(why, sizeof(why), "cannot resolve the source host "
		    "%s: %s", l->host, evutil_gai_strerror(
		    bufferevent_socket_get_dns_error(bev)));
	else if (tlsctx_client_why(c->ctx, ssl, ec, why, sizeof(why)) == 0)
		snprintf(why, sizeof(why), "cannot reach the source %s:%d "
		    "(connection refused or no route: is it up?)", l->host,
		    l->port);
	else if (c->phase == UP_AUTH && ec == 0)
		snprintf(why, sizeof(why), "the source closed the connection "
		    "before it answered AUTH (does its database trust this "
		    "cluster's syncer certificate?)");
	ERR_clear_error();
	conn_fail(c, why);
}

/* Open c's connection to the source with the link's current context.
 * -1 when it failed at once (c is then freed). */
static int
conn_connect(struct sconn *c)
{
	struct link	*l = c->l;
	SSL		*ssl;
	struct timeval	 tv = { CONNECT_SECS, 0 };

	c->ctx = tlsctx_ref(l->ctx);
	if ((ssl = tlsctx_client_ssl(c->ctx)) == NULL) {
		conn_fail(c, "out of memory");
		return -1;
	}
	/* On failure libevent frees ssl (BEV_OPT_CLOSE_ON_FREE). */
	c->up = bufferevent_openssl_socket_new(l->s->base, -1, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (c->up == NULL) {
		conn_fail(c, "out of memory");
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->up, 1);
	bufferevent_setcb(c->up, up_read, up_write, up_event, c);
	bufferevent_set_timeouts(c->up, &tv, &tv);
	/* Events (and a refused connect) come from the loop. */
	if (bufferevent_socket_connect_hostname(c->up, l->s->dns, AF_UNSPEC,
	    l->host, l->port) == -1) {
		conn_fail(c, "cannot open a socket to the source");
		return -1;
	}
	return 0;
}

/* The probe: a connection to the source of its own. */
static void
probe_open(struct link *l)
{
	struct sconn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return;
	c->l = l;
	l->probe = c;
	if (conn_connect(c) == -1)
		l->probe = NULL;	/* freed */
}

/* ---- the relay: the shard's side ---- */

static void
down_read(struct bufferevent *bev, void *arg)
{
	struct sconn	*c = arg;
	struct link	*l = c->l;
	struct evbuffer	*in = bufferevent_get_input(bev);
	char		*argv[3];
	int		 argc, rc, ok;

	if (c->gate == GATE_PIPE) {
		pipe_bytes(c->down, c->up);
		return;
	}
	/*
	 * The shard's PING and AUTH are answered here, and nothing goes to
	 * the source (no TLS, no password) before the token proved that
	 * this is our shard.
	 */
	while (c->gate == GATE_PING || c->gate == GATE_AUTH) {
		if ((rc = resp_take_command(in, argv, 3, &argc)) == 0)
			return;
		if (rc == -1) {
			conn_free(c);
			return;
		}
		if (c->gate == GATE_PING && strcasecmp(argv[0], "PING") == 0) {
			evbuffer_add_printf(bufferevent_get_output(bev),
			    "+PONG\r\n");
			c->gate = GATE_AUTH;
			argv_free(argv, argc);
			continue;
		}
		ok = strcasecmp(argv[0], "AUTH") == 0 && argc >= 2 &&
		    strlen(argv[argc - 1]) == strlen(l->token) &&
		    CRYPTO_memcmp(argv[argc - 1], l->token,
		    strlen(l->token)) == 0;
		argv_free(argv, argc);
		if (!ok) {
			log_warn("db:%d replication relay: a local connection "
			    "did not give the shard's token; closed", l->uid);
			conn_free(c);
			return;
		}
		/* The rest waits until the source is ready. */
		c->gate = GATE_UPSTREAM;
		bufferevent_disable(c->down, EV_READ);
		bufferevent_set_timeouts(c->down, NULL, NULL);
		conn_connect(c);	/* on failure, c is gone */
		return;
	}
}

static void
down_write(struct bufferevent *bev, void *arg)
{
	struct sconn *c = arg;

	(void)bev;
	if (c->gate == GATE_PIPE)
		pipe_drained(c->down, c->up);
}

static void
down_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	conn_free(arg);		/* the shard went away: so does the pair */
}

static void
relay_accept(struct evconnlistener *lis, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct link	*l = arg;
	struct sconn	*c;
	struct timeval	 tv = { GATE_SECS, 0 };

	(void)lis;
	(void)sa;
	(void)salen;
	if (l->paused || l->npairs >= MAX_PAIRS ||
	    (c = calloc(1, sizeof(*c))) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	evutil_make_socket_nonblocking(fd);
	net_nodelay(fd);
	c->l = l;
	if ((c->down = bufferevent_socket_new(l->s->base, fd,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)) == NULL) {
		evutil_closesocket(fd);
		free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&l->pairs, c, entry);
	l->npairs++;
	/* A connection that does not prove itself soon gives its place
	 * back. */
	bufferevent_setcb(c->down, down_read, down_write, down_event, c);
	bufferevent_set_timeouts(c->down, &tv, NULL);
	bufferevent_enable(c->down, EV_READ | EV_WRITE);
}

/* ---- the shard's replication state ---- */

static void
local_done(struct link *l)
{
	if (l->local != NULL)
		bufferevent_free(l->local);
	l->local = NULL;
	l->local_pending = 0;
}

static const char *
info_field(const char *info, const char *name, char *out, size_t len)
{
	const char	*p = info;
	size_t		 n = strlen(name), i;

	while ((p = strstr(p, name)) != NULL) {
		if ((p == info || p[-1] == '\n') && p[n] == ':') {
			p += n + 1;
			for (i = 0; i + 1 < len && p[i] != '\r' &&
			    p[i] != '\n' && p[i] != '\0'; i++)
				out[i] = p[i];
			out[i] = '\0';
			return out;
		}
		p += n;
	}
	return NULL;
}

static void
local_read(struct bufferevent *bev, void *arg)
{
	struct link	*l = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	char		*line, *info, v[64];
	int		 rc;

	if (l->local_auth) {
		if ((line = evbuffer_readln(in, NULL,
		    EVBUFFER_EOL_CRLF)) == NULL)
			return;
		l->local_auth = 0;
		free(line);	/* a refusal shows as -NOAUTH below */
	}
	if ((rc = resp_take_bulk(in, &info)) == 0)
		return;
	if (rc == 1) {
		l->dst_known = 1;
		l->dst_up = info_field(info, "master_link_status", v,
		    sizeof(v)) != NULL && strcmp(v, "up") == 0;
		l->dst_syncing = info_field(info, "master_sync_in_progress", v,
		    sizeof(v)) != NULL && strcmp(v, "1") == 0;
		if (info_field(info, "slave_repl_offset", v, sizeof(v)) != NULL)
			l->dst_off = strtoll(v, NULL, 10);
		else if (info_field(info, "master_repl_offset", v,
		    sizeof(v)) != NULL)
			l->dst_off = strtoll(v, NULL, 10);
		link_lag_update(l);
	} else
		l->dst_known = 0;
	free(info);
	/* An answer that was not INFO's (a refused AUTH): start over. */
	if (rc == -1)
		local_done(l);
	else {
		l->local_pending = 0;
		bufferevent_set_timeouts(bev, NULL, NULL);
	}
	link_update_state(l);
}

static void
local_event(struct bufferevent *bev, short what, void *arg)
{
	struct link *l = arg;

	(void)bev;
	(void)what;
	l->dst_known = 0;	/* the shard is down or restarting */
	local_done(l);
	link_update_state(l);
}

/*
 * Ask the shard for its replication state, on one connection kept open
 * (authenticated once) for as long as the shard and its password last.
 */
static void
local_poll(struct link *l)
{
	struct timeval	 tv = { LOCAL_SECS, 0 };
	struct evbuffer	*out;
	int		 fd;

	if (l->local != NULL && l->local_pending)
		return;		/* the last question is still out */
	if (l->local == NULL) {
		if ((fd = net_unix_connect(l->shard_sock, 1)) == -1) {
			l->dst_known = 0;
			link_update_state(l);
			return;
		}
		if ((l->local = bufferevent_socket_new(l->s->base, fd,
		    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
			close(fd);
			return;
		}
		bufferevent_setcb(l->local, local_read, NULL, local_event, l);
		bufferevent_enable(l->local, EV_READ | EV_WRITE);
		l->local_auth = l->shard_password != NULL;
		if (l->local_auth) {
			const char *a[] = { "AUTH", l->shard_password };
			net_resp_command(bufferevent_get_output(l->local), 2,
			    a);
		}
	}
	out = bufferevent_get_output(l->local);
	{
		const char *a[] = { "INFO", "replication" };
		net_resp_command(out, 2, a);
	}
	l->local_sent = mono_ms();
	l->local_pending = 1;
	bufferevent_set_timeouts(l->local, &tv, &tv);
}

static void
link_tick(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;

	(void)fd;
	(void)what;
	if (l->probe == NULL && mono_ms() >= l->probe_next)
		probe_open(l);
	if (l->probe != NULL && l->probe->phase == UP_READY &&
	    !l->probe->info_pending) {
		const char *a[] = { "INFO", "replication" };
		struct timeval tv = { CONNECT_SECS, 0 };
		net_resp_command(bufferevent_get_output(l->probe->up), 2, a);
		bufferevent_set_timeouts(l->probe->up, &tv, NULL);
		l->probe->info_pending = 1;
	}
	local_poll(l);
}

/* ---- links ---- */

static struct link *
link_find(struct syncer *s, int uid)
{
	int i;

	for (i = 0; i < s->n; i++)
		if (s->v[i]->uid == uid)
			return s->v[i];
	return NULL;
}

static void
link_close_conns(struct link *l, int probe_too)
{
	while (!TAILQ_EMPTY(&l->pairs))
		conn_free(TAILQ_FIRST(&l->pairs));
	if (probe_too && l->probe != NULL)
		conn_free(l->probe);
}

static void
link_free(struct link *l)
{
	link_close_conns(l, 1);
	local_done(l);
	if (l->lis != NULL)
		evconnlistener_free(l->lis);
	if (l->tick != NULL)
		event_free(l->tick);
	tlsctx_unref(l->ctx);
	free(l->host);
	free(l->user);
	secret_free(&l->password);
	free(l->shard_sock);
	secret_free(&l->shard_password);
	explicit_bzero(l->token, sizeof(l->token));
	free(l);
}

static int
link_listen(struct link *l, struct err *e)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l->lis = evconnlistener_new_bind(l->s->base, relay_accept, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 8,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (l->lis == NULL || getsockname(evconnlistener_get_fd(l->lis),
	    (struct sockaddr *)&sin, &len) == -1)
		return err_set(e, E_INTERNAL, "cannot listen on loopback for "
		    "the replication relay: %s", strerror(errno));
	l->relay_port = ntohs(sin.sin_port);
	return 0;
}

static int
link_token(struct link *l, struct err *e)
{
	unsigned char	 r[32];
	int		 i;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return err_set(e, E_INTERNAL, "no randomness for the relay "
		    "token");
	for (i = 0; i < 32; i++)
		sprintf(l->token + i * 2, "%02x", r[i]);
	explicit_bzero(r, sizeof(r));
	return 0;
}

int
syncer_set(struct syncer *s, int uid, const struct syncer_conf *c,
    int *relay_port, const char **token, struct err *e)
{
	struct link	*l = link_find(s, uid);
	struct timeval	 tv = { 0, TICK_MS * 1000 };
	int		 fresh = l == NULL, moved;

	if (fresh) {
		if (s->n == MAX_LINKS || (l = calloc(1, sizeof(*l))) == NULL)
			return err_set(e, E_INTERNAL, "too many replica links");
		l->s = s;
		l->uid = uid;
		l->probe_backoff_ms = PROBE_BACKOFF_MIN_MS;
		TAILQ_INIT(&l->pairs);
		if (link_token(l, e) == -1 || link_listen(l, e) == -1 ||
		    (l->tick = event_new(s->base, -1, EV_PERSIST, link_tick,
		    l)) == NULL) {
			link_free(l);
			return err_set(e, E_INTERNAL, "cannot start the "
			    "replication link of database %d", uid);
		}
		s->v[s->n++] = l;
		event_add(l->tick, &tv);
	}
	moved = !fresh && (!str_eq(l->host, c->host) || l->port != c->port);
	if (moved) {
		/* Another source: nothing of the old one carries over. */
		link_close_conns(l, 1);
		l->nhist = 0;
		l->behind_since = 0;
		l->relay_err[0] = l->probe_err[0] = '\0';
	}
	if (!fresh && (!str_eq(l->password, c->password) ||
	    !str_eq(l->user, c->user)))
		l->probe_err[0] = l->relay_err[0] = '\0';
	free(l->host);
	free(l->user);
	secret_free(&l->password);
	if (!str_eq(l->shard_sock, c->shard_sock) ||
	    !str_eq(l->shard_password, c->shard_password != NULL &&
	    *c->shard_password != '\0' ? c->shard_password : NULL))
		local_done(l);	/* asks again with the new ones */
	free(l->shard_sock);
	secret_free(&l->shard_password);
	l->host = strdup(c->host);
	l->port = c->port;
	l->user = str_dup0(c->user);
	l->password = str_dup0(c->password);
	l->shard_sock = strdup(c->shard_sock);
	l->shard_password = str_dup0(c->shard_password);
	if (l->ctx != c->ctx) {
		/* Next connections only: open ones keep theirs.  A probe
		 * that was failing tries the new settings at once. */
		tlsctx_unref(l->ctx);
		l->ctx = tlsctx_ref(c->ctx);
		l->probe_next = 0;
		l->probe_backoff_ms = PROBE_BACKOFF_MIN_MS;
	}
	if (c->paused && !l->paused) {
		/* The shard keeps its position and comes back to it. */
		link_close_conns(l, 0);
		l->relay_err[0] = '\0';
	}
	l->paused = c->paused;
	if (l->host == NULL || l->shard_sock == NULL) {
		syncer_del(s, uid);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	link_update_state(l);
	*relay_port = l->relay_port;
	*token = l->token;
	return 0;
}

void
syncer_del(struct syncer *s, int uid)
{
	int i;

	for (i = 0; i < s->n; i++)
		if (s->v[i]->uid == uid) {
			log_info("db:%d replication from %s:%d: stopped", uid,
			    s->v[i]->host ? s->v[i]->host : "?",
			    s->v[i]->port);
			link_free(s->v[i]);
			s->v[i] = s->v[--s->n];
			return;
		}
}

int
syncer_relay(struct syncer *s, int uid, int *relay_port, const char **token)
{
	struct link *l = link_find(s, uid);

	if (l == NULL)
		return -1;
	*relay_port = l->relay_port;
	*token = l->token;
	return 0;
}

int
syncer_state(struct syncer *s, int uid, struct syncer_state *out)
{
	struct link *l = link_find(s, uid);

	if (l == NULL)
		return -1;
	l->st.lag_ms = link_lag(l);
	*out = l->st;
	return 0;
}

const char *
syncer_status_name(enum syncer_status st)
{
	switch (st) {
	case SYNC_IN_SYNC:
		return "in-sync";
	case SYNC_SYNCING:
		return "syncing";
	case SYNC_OUT_OF_SYNC:
		break;
	}
	return "out-of-sync";
}

struct syncer *
syncer_new(struct event_base *base, struct err *e)
{
	struct syncer *s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	s->base = base;
	/* Names resolve without blocking the loop; numeric hosts need
	 * no server at all. */
	if ((s->dns = evdns_base_new(base,
	    EVDNS_BASE_INITIALIZE_NAMESERVERS)) == NULL &&
	    (s->dns = evdns_base_new(base, 0)) == NULL) {
		free(s);
		err_set(e, E_INTERNAL, "cannot start the resolver");
		return NULL;
	}
	return s;
}

void
syncer_free(struct syncer *s)
{
	if (s == NULL)
		return;
	while (s->n > 0)
		link_free(s->v[--s->n]);
	evdns_base_free(s->dns, 0);
	free(s);
}
