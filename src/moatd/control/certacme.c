/*
 * certacme.c — see certacme.h.
 *
 * Store documents:
 *  - SK_ACME/<name>: the settings as PUT gave them, plus the account
 *    (its key sealed like every key, its URL);
 *  - state/acme.<name>: the order (its URL, the lease of the node working
 *    on it, tries, last error, next try) and what was issued last;
 *  - SK_ACME_HTTP/<token> and SK_ACME_ALPN/<token>: the answers to the
 *    challenges of an order under way, which every node serves.
 *
 * An order runs on a thread of its own (a work pool of one: it waits on
 * the CA for seconds), writes the challenge answers to the store itself
 * (the store is thread-safe), and hands the certificate back to the
 * control thread, which installs it through certs_update_now.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "acme.h"
#include "apply.h"
#include "certacme.h"
#include "certs.h"
#include "events.h"
#include "log.h"
#include "schema.h"
#include "seal.h"
#include "tlsctx.h"
#include "workpool.h"
#include "x509.h"

#define LEASE_S		900	/* an order's lease in the store; an order
				   gives up LEASE_MARGIN_S before it ends */
#define LEASE_MARGIN_S	120
#define POLL_S		60	/* how long a challenge or order is polled */
#define RETRY_MIN_S	10	/* back-off after a failure, doubling */
#define RETRY_MAX_S	3600
#define ALPN_SETTLE_S	2	/* for every node to load an answer */
#define MAX_IDENTS	20
#define MAX_HTTP_PORTS	8
#define HOOK_S		60	/* a dns-01 hook's run */

/* The challenges moat answers, and where. */
static const char *const challenges[] = { "http-01", "tls-alpn-01",
	"dns-01" };

static int		 busy[CERT__COUNT];	/* an order of this node */
static struct workpool	*pool;			/* one thread: orders */
static _Atomic int	 stopping;

/* http-01 listeners of this node, one per port the settings name. */
static struct {
	int		 port;
	struct evhttp	*h;
} http_ls[MAX_HTTP_PORTS];
static int		 http_n;
static int64_t		 alpn_rev = -1;		/* of the answers loaded */
/* The http-01 answers, as apply last saw the store: token, answer. */
static json_t		*http_answers;

/* ---- documents ---- */

static const char *
state_key(int id, char *buf)
{
	return schema_cert_state_key("acme", id, buf);
}

static json_t *
state_read(struct node *n, int id, int64_t *rev)
{
	return schema_cert_state_get(n->store, "acme", id, rev);
}

static json_t *
settings_read(struct node *n, int id, int64_t *rev, struct err *e)
{
	char key[SCHEMA_KEY_MAX];

	return schema_get(n->store, schema_key_of(SK_ACME, id, key), rev, e);
}

static void
set_time(json_t *doc, const char *field, time_t t)
{
	char buf[ISO_TIME_LEN];

	json_object_set_new(doc, field, t > 0 ? json_string(iso_time(t, buf)) :
	    json_null());
}

static const char *
str(const json_t *doc, const char *field)
{
	return json_string_value(json_object_get(doc, field));
}

/* 1 when an ACME object's status is s. */
static int
status_is(const json_t *o, const char *s)
{
	return str(o, "status") != NULL && strcmp(str(o, "status"), s) == 0;
}

/* GET's answer: the settings (never the account key) and the state. */
static json_t *
view(int id, const json_t *set, const json_t *st)
{
	static const char *const sf[] = { "directory_url", "contact",
		"identifiers", "challenge", "http_port", "key_type",
		"ca_bundle", "dns_hook", "account_url", NULL };
	static const char *const tf[] = { "not_after", "next_renewal",
		"last_issued", "next_try", "fingerprint_sha256", "order_url",
		NULL };
	json_t	*out = json_pack("{s:s}", "name", cert_services[id].name);
	const char *state = str(st, "state"), *le = str(st, "last_error");
	size_t	 i;

	for (i = 0; sf[i] != NULL; i++) {
		json_t *v = json_object_get(set, sf[i]);
		json_object_set(out, sf[i], v != NULL ? v : json_null());
	}
	for (i = 0; tf[i] != NULL; i++) {
		json_t *v = json_object_get(st, tf[i]);
		json_object_set(out, tf[i], v != NULL ? v : json_null());
	}
	json_object_set_new(out, "state", json_string(state ? state :
	    "pending"));
	json_object_set_new(out, "last_error", le != NULL && *le != '\0' ?
	    json_string(le) : json_null());
	json_object_set_new(out, "tries", json_integer(json_integer_value(
	    json_object_get(st, "tries"))));
	return out;
}

/* ---- the order, on the pool's thread ---- */

struct ajob {
	struct node	*n;
	struct api_req	*r;		/* PUT: answer it (probe only) */
	int		 id;
	int		 probe;		/* account and order, no more */
	json_t		*set;		/* the settings (a copy) */
	char		*account_key;	/* PEM, clear */
	char		*order_url;	/* continue this one; NULL: new */
	time_t		 deadline;	/* the lease's end, less a margin */
	int64_t		 set_rev;	/* the settings it runs with */
	int		 renew_asked;	/* renew_requested was set at start */
	/* What it found. */
	char		*new_account_key;
	char		*account_url;
	char		*new_order_url;
	char		*cert_pem, *key_pem;
	struct err	 err;
};

static void
ajob_free(struct ajob *j)
{
	json_decref(j->set);
	seal_free(j->account_key);
	free(j->order_url);
	seal_free(j->new_account_key);
	free(j->account_url);
	free(j->new_order_url);
	free(j->cert_pem);
	seal_free(j->key_pem);
	err_clear(&j->err);
	free(j);
}

/* 1 when the order must end now: moatd stops, or its lease runs out. */
static int
must_end(const struct ajob *j)
{
	return atomic_load(&stopping) || time(NULL) >= j->deadline;
}

/* Sleep s seconds unless the order must end; -1 (e set) when it must. */
static int
nap(const struct ajob *j, int s, struct err *e)
{
	for (;;) {
		if (must_end(j))
			return err_set(e, E_ACME_REFUSED, "%s",
			    atomic_load(&stopping) ? "moatd is stopping" :
			    "the order took longer than its lease");
		if (s-- <= 0)
			return 0;
		sleep(1);
	}
}

/* For acme.c's transfers: abort them when the order must end. */
static int
abort_cb(void *arg)
{
	return must_end(arg);
}

/*
 * Store commits of the order's thread run on the control thread: the
 * store's watchers (rollouts, apply) and the SQLite connection's
 * transactions are the control thread's.  The order waits for the
 * answer; at shutdown it stops waiting (the control thread no longer
 * runs these).
 */
struct xcommit {
	struct store_txn	*t;
	int			 rc, done;
	struct err		 e;
	struct xcommit		*next;
};

static pthread_mutex_t	 x_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 x_cv = PTHREAD_COND_INITIALIZER;
static struct xcommit	*x_head;
static struct event	*x_ev;
static struct node	*x_node;

static void
x_run(evutil_socket_t fd, short what, void *arg)
{
	struct xcommit *list, *x;

	(void)fd;
	(void)what;
	(void)arg;
	pthread_mutex_lock(&x_mu);
	list = x_head;
	x_head = NULL;
	pthread_mutex_unlock(&x_mu);
	while ((x = list) != NULL) {
		list = x->next;
		x->rc = x_node->store != NULL ? store_txn_commit(x_node->store,
		    x->t, &x->e) : err_set(&x->e, E_STORE, "no store");
		pthread_mutex_lock(&x_mu);
		x->done = 1;
		pthread_cond_broadcast(&x_cv);
		pthread_mutex_unlock(&x_mu);
	}
}

static int
pool_commit(struct store_txn *t, struct err *e)
{
	struct xcommit	 x = { t, -1, 0, { 0 }, NULL }, **pp;
	struct timespec	 ts;

	pthread_mutex_lock(&x_mu);
	x.next = x_head;
	x_head = &x;
	pthread_mutex_unlock(&x_mu);
	event_active(x_ev, EV_READ, 0);
	pthread_mutex_lock(&x_mu);
	while (!x.done && !atomic_load(&stopping)) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&x_cv, &x_mu, &ts);
	}
	if (!x.done)
		for (pp = &x_head; *pp != NULL; pp = &(*pp)->next)
			if (*pp == &x) {
				*pp = x.next;
				break;
			}
	pthread_mutex_unlock(&x_mu);
	if (!x.done)
		return err_set(e, E_INTERNAL, "moatd is stopping");
	if (x.rc == -1) {
		err_set(e, x.e.code, "%s", err_msg(&x.e));
		err_clear(&x.e);
	}
	return x.rc;
}

/* dns-01: the operator's hook, `hook set|clear <name> <txt>`. */
static int
dns_hook(const char *hook, const char *verb, const char *name,
    const char *txt, struct err *e)
{
	pid_t	pid, r;
	int	st = 0, waited;

	if ((pid = fork()) == -1)
		return err_set(e, E_INTERNAL, "fork: %s", strerror(errno));
	if (pid == 0) {
		execl(hook, hook, verb, name, txt, (char *)NULL);
		_exit(127);
	}
	/* A hook that hangs must not hold the orders (or the shutdown). */
	for (waited = 0; (r = waitpid(pid, &st, WNOHANG)) == 0 &&
	    waited < HOOK_S * 10 && !atomic_load(&stopping); waited++)
		usleep(100 * 1000);
	if (r == 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
			;
		return err_set(e, E_ACME_REFUSED, "the dns-01 hook %s %s %s "
		    "did not finish within %d s", hook, verb, name, HOOK_S);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return err_set(e, E_ACME_REFUSED, "the dns-01 hook %s %s %s "
		    "failed (status %d)", hook, verb, name, WIFEXITED(st) ?
		    WEXITSTATUS(st) : -1);
	return 0;
}

/* Put the answer to one challenge where every node serves it. */
static int
publish(struct ajob *j, const char *kind, const char *ident,
    const char *token, const char *ka, struct err *e)
{
	struct store_txn	*t;
	json_t			*doc = NULL;
	char			 key[SCHEMA_KEY_MAX], *cert = NULL, *k = NULL;
	char			*sealed = NULL, *txt;
	int			 rc;

	if (strlen(token) > SCHEMA_KEY_MAX - 20 || strchr(token, '/') != NULL)
		return err_set(e, E_ACME_REFUSED, "the CA gave a token moat "
		    "cannot store");
	if (strcmp(kind, "dns-01") == 0) {
		if ((txt = acme_dns_txt(ka)) == NULL)
			return err_set(e, E_INTERNAL, "out of memory");
		rc = dns_hook(str(j->set, "dns_hook"), "set", ident, txt, e);
		free(txt);
		return rc;
	}
	if (strcmp(kind, "http-01") == 0) {
		snprintf(key, sizeof(key), "%s%s", schema_prefix(SK_ACME_HTTP),
		    token);
		doc = json_pack("{s:s, s:s}", "key_authorization", ka,
		    "certificate", cert_services[j->id].name);
	} else {
		if (acme_alpn_cert(ident, ka, &cert, &k, e) == -1)
			return -1;
		snprintf(key, sizeof(key), "%s%s", schema_prefix(SK_ACME_ALPN),
		    token);
		sealed = seal_text(k);
		doc = json_pack("{s:s, s:s, s:s?, s:s}", "name", ident,
		    "certificate", cert, "key", sealed, "for",
		    cert_services[j->id].name);
		free(cert);
		seal_free(k);
		seal_free(sealed);
	}
	if (doc == NULL || (t = store_txn_new()) == NULL) {
		json_decref(doc);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	store_txn_put_json(t, key, doc);
	json_decref(doc);
	rc = pool_commit(t, e);
	store_txn_free(t);
	return rc;
}

static void
unpublish(struct ajob *j, const char *kind, const char *ident,
    const char *token, const char *ka)
{
	struct store_txn	*t;
	char			 key[SCHEMA_KEY_MAX], *txt;

	if (strcmp(kind, "dns-01") == 0) {
		if ((txt = acme_dns_txt(ka)) != NULL)
			dns_hook(str(j->set, "dns_hook"), "clear", ident, txt,
			    NULL);
		free(txt);
		return;
	}
	snprintf(key, sizeof(key), "%s%s", schema_prefix(strcmp(kind,
	    "http-01") == 0 ? SK_ACME_HTTP : SK_ACME_ALPN), token);
	if ((t = store_txn_new()) == NULL)
		return;
	store_txn_del(t, key);
	pool_commit(t, NULL);
	store_txn_free(t);
}

/* The error a challenge or authorization carries, into e. */
static int
object_error(const json_t *o, const char *what, struct err *e)
{
	const json_t	*err = json_object_get(o, "error");
	const char	*d = str(err, "detail"), *ty = str(err, "type");
	size_t		 i;

	for (i = 0; err == NULL && i < json_array_size(json_object_get(o,
	    "challenges")); i++) {
		err = json_object_get(json_array_get(json_object_get(o,
		    "challenges"), i), "error");
		d = str(err, "detail");
		ty = str(err, "type");
	}
	if (ty != NULL && strncmp(ty, "urn:ietf:params:acme:error:", 27) == 0)
		ty += 27;
	return err_set(e, E_ACME_REFUSED, "%s is invalid: %s%s%s", what,
	    ty ? ty : "", ty ? ": " : "", d ? d : "no reason given");
}

/* One authorization: answer its challenge and wait for the verdict. */
static int
authorize(struct ajob *j, struct acme *a, const char *url, struct err *e)
{
	const char	*kind = str(j->set, "challenge");
	json_t		*az = NULL, *ch, *empty = json_object();
	char		*ka = NULL, *ident = NULL, *token = NULL, *curl = NULL;
	size_t		 i;
	int		 rc = -1, waited;

	if (acme_post(a, url, NULL, &az, NULL, NULL, e) == -1)
		goto out;
	if (status_is(az, "valid")) {
		rc = 0;
		goto out;
	}
	/* Copies: az is replaced while the validation is polled.  A
	 * wildcard's authorization names the base domain (RFC 8555 7.1.4):
	 * the hook is told "*.<name>", the record still goes to
	 * _acme-challenge.<name>. */
	if (str(json_object_get(az, "identifier"), "value") != NULL &&
	    asprintf(&ident, "%s%s", json_is_true(json_object_get(az,
	    "wildcard")) ? "*." : "", str(json_object_get(az,
	    "identifier"), "value")) == -1)
		ident = NULL;
	for (i = 0; i < json_array_size(json_object_get(az, "challenges"));
	    i++) {
		ch = json_array_get(json_object_get(az, "challenges"), i);
		if (str(ch, "type") != NULL && strcmp(str(ch, "type"),
		    kind) == 0 && str(ch, "url") != NULL &&
		    str(ch, "token") != NULL) {
			curl = strdup(str(ch, "url"));
			token = strdup(str(ch, "token"));
			break;
		}
	}
	if (ident == NULL || curl == NULL || token == NULL) {
		err_set(e, E_ACME_REFUSED, "the CA offers no %s challenge for "
		    "%s", kind, ident ? ident : url);
		goto out;
	}
	if ((ka = acme_key_authorization(a, token)) == NULL ||
	    publish(j, kind, ident, token, ka, e) == -1)
		goto out;
	/* Every node loads the answer when its watch applies it. */
	if (strcmp(kind, "dns-01") != 0 && nap(j, ALPN_SETTLE_S, e) == -1)
		goto unpub;
	if (acme_post(a, curl, empty, NULL, NULL, NULL, e) == -1)
		goto unpub;
	for (waited = 0; waited < POLL_S; waited++) {
		json_decref(az);
		az = NULL;
		if (nap(j, 1, e) == -1 || acme_post(a, url, NULL, &az, NULL,
		    NULL, e) == -1)
			goto unpub;
		if (status_is(az, "valid")) {
			rc = 0;
			goto unpub;
		}
		if (!status_is(az, "pending")) {
			object_error(az, ident, e);
			goto unpub;
		}
	}
	err_set(e, E_ACME_REFUSED, "the CA did not validate %s within %d s",
	    ident, POLL_S);
unpub:
	unpublish(j, kind, ident, token, ka);
out:
	free(ka);
	free(ident);
	free(token);
	free(curl);
	json_decref(az);
	json_decref(empty);
	return rc;
}

/* Poll the order until its status is not `while_is`. */
static json_t *
order_wait(struct ajob *j, struct acme *a, const char *url,
    const char *while_is, struct err *e)
{
	json_t	*o = NULL;
	int	 waited;

	for (waited = 0; waited <= POLL_S; waited++) {
		json_decref(o);
		if (acme_post(a, url, NULL, &o, NULL, NULL, e) == -1)
			return NULL;
		if (!status_is(o, while_is))
			return o;
		if (nap(j, 1, e) == -1) {
			json_decref(o);
			return NULL;
		}
	}
	json_decref(o);
	err_set(e, E_ACME_REFUSED, "the order stayed %s for %d s", while_is,
	    POLL_S);
	return NULL;
}

static json_t *
order_new(struct ajob *j, struct acme *a, struct err *e)
{
	json_t		*ids = json_array(), *req, *o = NULL;
	const json_t	*v;
	size_t		 i;
	char		*loc = NULL;

	json_array_foreach(json_object_get(j->set, "identifiers"), i, v)
		json_array_append_new(ids, json_pack("{s:s, s:O}", "type",
		    "dns", "value", v));
	req = json_pack("{s:o}", "identifiers", ids);
	if (acme_post(a, acme_dir_url(a, "newOrder"), req, &o, NULL, &loc,
	    e) == 0 && loc == NULL) {
		json_decref(o);
		o = NULL;
		err_set(e, E_ACME_REFUSED, "newOrder gave no order URL");
	}
	json_decref(req);
	free(j->new_order_url);
	j->new_order_url = loc;
	return o;
}

static void
ajob_work(void *arg)
{
	struct ajob		*j = arg;
	struct acme_opts	 o = { 0 };
	struct acme		*a = NULL;
	const char		*kid, *url;
	const json_t		*v;
	json_t			*ord = NULL, *req;
	char			*csr = NULL;
	const char		**names = NULL;
	size_t			 i, n;
	struct err		*e = &j->err;

	o.directory_url = str(j->set, "directory_url");
	o.ca_bundle = str(j->set, "ca_bundle");
	o.account_key = j->account_key;
	o.account_url = str(j->set, "account_url");
	o.timeout_s = 10;
	o.abort_cb = abort_cb;
	o.abort_arg = j;
	if (o.account_key == NULL) {
		if (acme_key_new("ec256", &j->new_account_key, e) == -1)
			return;
		o.account_key = j->new_account_key;
		o.account_url = NULL;
	}
	if ((a = acme_new(&o, e)) == NULL)
		return;
	if (acme_account(a, json_object_get(j->set, "contact"), &kid,
	    e) == -1)
		goto out;
	j->account_url = strdup(kid);
	/* An order under way goes on; one the CA no longer knows (it was
	 * restarted, or the order expired) starts over. */
	if (j->order_url != NULL && (acme_post(a, j->order_url, NULL, &ord,
	    NULL, NULL, e) == -1 || str(ord, "status") == NULL ||
	    status_is(ord, "invalid"))) {
		if (e->code == E_ACME_UNREACHABLE) {
			/* A network blip: the order goes on next time. */
			j->new_order_url = strdup(j->order_url);
			goto out;
		}
		err_clear(e);
		json_decref(ord);
		ord = NULL;
	} else if (j->order_url != NULL)
		j->new_order_url = strdup(j->order_url);
	if (ord == NULL && (ord = order_new(j, a, e)) == NULL)
		goto out;
	if (j->probe)
		goto out;
	url = j->new_order_url;
	if (status_is(ord, "pending")) {
		json_array_foreach(json_object_get(ord, "authorizations"), i,
		    v)
			if (authorize(j, a, json_string_value(v), e) == -1)
				goto out;
		json_decref(ord);
		if ((ord = order_wait(j, a, url, "pending", e)) == NULL)
			goto out;
	}
	if (status_is(ord, "ready")) {
		n = json_array_size(json_object_get(j->set, "identifiers"));
		if ((names = calloc(n, sizeof(*names))) == NULL) {
			err_set(e, E_INTERNAL, "out of memory");
			goto out;
		}
		for (i = 0; i < n; i++)
			names[i] = json_string_value(json_array_get(
			    json_object_get(j->set, "identifiers"), i));
		if (acme_key_new(str(j->set, "key_type"), &j->key_pem,
		    e) == -1 || acme_csr(j->key_pem, names, n, &csr, e) == -1)
			goto out;
		req = json_pack("{s:s}", "csr", csr);
		if (str(ord, "finalize") == NULL || acme_post(a, str(ord,
		    "finalize"), req, NULL, NULL, NULL, e) == -1) {
			if (str(ord, "finalize") == NULL)
				err_set(e, E_ACME_REFUSED, "the order has no "
				    "finalize URL");
			json_decref(req);
			goto out;
		}
		json_decref(req);
		json_decref(ord);
		if ((ord = order_wait(j, a, url, "processing", e)) == NULL)
			goto out;
	}
	if (!status_is(ord, "valid") || str(ord, "certificate") == NULL) {
		object_error(ord, "the order", e);
		goto out;
	}
	if (acme_post(a, str(ord, "certificate"), NULL, NULL, &j->cert_pem,
	    NULL, e) == -1)
		goto out;
	/* A key made for an earlier try of a continued order is lost: the
	 * CA signed the CSR of that try.  Start over then. */
	if (j->key_pem == NULL) {
		free(j->cert_pem);
		j->cert_pem = NULL;
		free(j->new_order_url);
		j->new_order_url = NULL;
		err_set(e, E_ACME_REFUSED, "the order was finalized by an "
		    "earlier try; a new one follows");
	}
out:
	free(names);
	free(csr);
	json_decref(ord);
	acme_free(a);
}

/* ---- back on the control thread ---- */

/* Orders handed to the pool and not back: freed at shutdown if the pool
 * drops them. */
static struct ajob	*live[2 * CERT__COUNT + 8];

static int
live_add(struct ajob *j)
{
	size_t i;

	for (i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (live[i] == NULL) {
			live[i] = j;
			return 0;
		}
	return -1;
}

static void
live_del(struct ajob *j)
{
	size_t i;

	for (i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (live[i] == j)
			live[i] = NULL;
}

/*
 * Change this certificate's state, only while this node still holds the
 * lease it took (lease_until): an order that outlived its lease, or
 * whose settings were replaced meanwhile, changes nothing.  1 written,
 * 0 lost, -1 the store failed.
 */
static int
record(struct node *n, int id, time_t lease_until, json_t *changes,
    const char *const *drop)
{
	struct store_txn	*t;
	struct err		 e = { 0 };
	char			 key[SCHEMA_KEY_MAX];
	json_t			*st;
	int64_t			 rev;
	int			 try, rc = -1;
	size_t			 i;

	for (try = 0; try < 5; try++) {
		st = state_read(n, id, &rev);
		if (json_integer_value(json_object_get(st, "lease_uid")) !=
		    n->uid || iso_field(st, "lease_until") != lease_until) {
			json_decref(st);
			return 0;
		}
		json_object_update(st, changes);
		for (i = 0; drop != NULL && drop[i] != NULL; i++)
			json_object_del(st, drop[i]);
		json_object_del(st, "lease_uid");
		json_object_del(st, "lease_until");
		if ((t = store_txn_new()) == NULL) {
			json_decref(st);
			return -1;
		}
		store_txn_cmp(t, state_key(id, key), rev);
		store_txn_put_json(t, key, st);
		json_decref(st);
		rc = store_txn_commit(n->store, t, &e);
		store_txn_free(t);
		if (rc == 0)
			return 1;
		if (e.code != E_CONFLICT)
			break;
		err_clear(&e);
	}
	log_warn("ACME: cannot record the %s order: %s",
	    cert_services[id].name, err_msg(&e));
	err_clear(&e);
	return -1;
}

/* A new account (or its new URL) goes into the settings, if unchanged. */
static void
account_save(struct ajob *j)
{
	struct store_txn	*t;
	json_t			*set;
	char			 key[SCHEMA_KEY_MAX], *sealed;
	int64_t			 rev;

	if (j->account_url == NULL || (j->new_account_key == NULL &&
	    str(j->set, "account_url") != NULL && strcmp(str(j->set,
	    "account_url"), j->account_url) == 0))
		return;
	if ((set = settings_read(j->n, j->id, &rev, NULL)) == NULL)
		return;
	/* Only the settings the order ran with. */
	if (strcmp(str(set, "directory_url") ? str(set, "directory_url") : "",
	    str(j->set, "directory_url")) == 0) {
		json_object_set_new(set, "account_url",
		    json_string(j->account_url));
		if (j->new_account_key != NULL) {
			sealed = seal_text(j->new_account_key);
			json_object_set_new(set, "account_key", json_string(
			    sealed));
			seal_free(sealed);
		}
		if ((t = store_txn_new()) != NULL) {
			store_txn_cmp(t, schema_key_of(SK_ACME, j->id, key),
			    rev);
			store_txn_put_json(t, key, set);
			store_txn_commit(j->n->store, t, NULL);
			store_txn_free(t);
		}
	}
	json_decref(set);
}

static time_t	lease_of(const struct ajob *j);

/* An order that failed: count it, say why, retry later (with back-off);
 * what was issued before stays. */
static void
fail_record(struct node *n, int id, time_t lease, const char *order_url,
    int renew_asked, const char *why)
{
	json_t		*st = state_read(n, id, NULL), *ch;
	int		 tries = (int)json_integer_value(json_object_get(st,
			    "tries")) + 1;
	int		 backoff = RETRY_MIN_S;
	const char	*drop[] = { NULL, NULL, NULL };
	time_t		 now = time(NULL);
	size_t		 nd = 0;

	while (backoff < RETRY_MAX_S && backoff < (RETRY_MIN_S << (tries >
	    12 ? 12 : tries - 1)))
		backoff *= 2;
	if (backoff > RETRY_MAX_S)
		backoff = RETRY_MAX_S;
	ch = json_pack("{s:i, s:s, s:s}", "tries", tries, "last_error", why,
	    "state", str(st, "last_issued") != NULL ? "valid" : "failed");
	if (tries == 1)
		set_time(ch, "first_failure", now);
	set_time(ch, "next_try", now + backoff);
	if (order_url != NULL)
		json_object_set_new(ch, "order_url", json_string(order_url));
	else
		drop[nd++] = "order_url";
	/* A renewal asked for meanwhile stays asked for. */
	if (renew_asked)
		drop[nd++] = "renew_requested";
	if (record(n, id, lease, ch, drop) == 1) {
		log_warn("ACME: the %s certificate's order failed (try %d, "
		    "next in %d s): %s", cert_services[id].name, tries,
		    backoff, why);
		events_add(n, "acme_order_failed", "WARNING", json_pack("{s:s, "
		    "s:i, s:s}", "name", cert_services[id].name, "tries",
		    tries, "last_error", why));
	}
	json_decref(ch);
	json_decref(st);
}

static void
order_failed(struct ajob *j, const char *why)
{
	fail_record(j->n, j->id, lease_of(j), j->new_order_url,
	    j->renew_asked, why);
}

/*
 * When to renew a certificate valid from nb to na: two thirds into its
 * life, as Let's Encrypt advises, or RS's expiry_days_before_rotation
 * before it ends when the operator set it (PUT /v1/job_scheduler) --
 * never before half its life, so that a short-lived certificate is not
 * renewed over and over.
 */
static time_t
renewal_time(struct node *n, time_t nb, time_t na)
{
	json_t	*doc = schema_get(n->store, schema_key(SK_JOBS), NULL, NULL);
	json_t	*days = json_object_get(json_object_get(doc,
		    "cert_rotation_job_settings"), "expiry_days_before_rotation");
	time_t	 t = nb + (na - nb) * 2 / 3;

	if (json_is_integer(days)) {
		t = na - (time_t)json_integer_value(days) * 86400;
		if (t < nb + (na - nb) / 2)
			t = nb + (na - nb) / 2;
	}
	json_decref(doc);
	return t;
}

static void
install(struct ajob *j)
{
	struct node		*n = j->n;
	struct cert_change	 ch = { 0 };
	struct x509_material	*m = NULL;
	struct err		 e = { 0 };
	json_t			*out = NULL, *st, *set;
	time_t			 nb, na, now = time(NULL);
	char			 fp[100];
	int64_t			 srev;
	/* (renew_requested first: kept when asked for during the order) */
	const char		*drop[] = { "renew_requested", "order_url",
				    "next_try", "first_failure", NULL };

	/* Still this order's to install: the lease held, and the settings
	 * it ran with (a PUT or DELETE meanwhile wins). */
	st = state_read(n, j->id, NULL);
	set = settings_read(n, j->id, &srev, NULL);
	if (json_integer_value(json_object_get(st, "lease_uid")) != n->uid ||
	    iso_field(st, "lease_until") != lease_of(j) ||
	    iso_field(st, "lease_until") <= now || set == NULL ||
	    srev != j->set_rev) {
		log_info("ACME: the %s order ended after its lease or "
		    "settings changed; its certificate is not used",
		    cert_services[j->id].name);
		json_decref(st);
		json_decref(set);
		st = json_object();
		record(n, j->id, lease_of(j), st, NULL);
		json_decref(st);
		return;
	}
	json_decref(st);
	json_decref(set);
	if (!j->renew_asked)
		drop[0] = "order_url";
	ch.name = cert_services[j->id].name;
	ch.cert_pem = j->cert_pem;
	ch.key_pem = j->key_pem;
	/* Only dns-01 can prove a wildcard: with the others, the names
	 * ordered are what the certificate covers. */
	ch.names_only = strcmp(str(j->set, "challenge"), "dns-01") != 0;
	if (certs_update_now(n, &ch, 1, "acme", &out, &e) == -1 ||
	    x509_material_parse(j->cert_pem, NULL, &m, &e) == -1) {
		char why[512];
		snprintf(why, sizeof(why), "the certificate issued cannot be "
		    "served: %s", err_msg(&e));
		order_failed(j, why);
		err_clear(&e);
		json_decref(out);
		return;
	}
	json_decref(out);
	x509_material_fingerprint(m, fp);
	nb = x509_material_not_before(m);
	na = x509_material_not_after(m);
	x509_material_free(m);
	st = json_pack("{s:s, s:i, s:s, s:s}", "state", "valid", "tries", 0,
	    "last_error", "", "fingerprint_sha256", fp);
	set_time(st, "last_issued", now);
	set_time(st, "not_after", na);
	set_time(st, "next_renewal", renewal_time(n, nb, na));
	if (record(n, j->id, lease_of(j), st, drop) == 1) {
		log_info("ACME: the %s certificate was issued (%s, until %s)",
		    ch.name, fp, str(st, "not_after"));
		events_add(n, "acme_certificate_issued", "INFO", json_pack(
		    "{s:s, s:s, s:s}", "name", ch.name, "fingerprint_sha256",
		    fp, "not_after", str(st, "not_after")));
	}
	json_decref(st);
}

/* The lease an order job holds is in its settings copy. */
static time_t
lease_of(const struct ajob *j)
{
	return (time_t)json_integer_value(json_object_get(j->set,
	    "_lease_until"));
}

static void	put_done(struct ajob *j);

static void
ajob_done(void *arg)
{
	struct ajob *j = arg;

	live_del(j);
	if (j->r != NULL) {
		put_done(j);
		return;
	}
	busy[j->id] = 0;
	if (j->err.code == E_OK && j->cert_pem != NULL)
		install(j);
	else
		order_failed(j, j->err.code != E_OK ? err_msg(&j->err) :
		    "the order ended without a certificate");
	/* After install, which compares the settings' revision with the
	 * one the order ran with: the account is no change of settings. */
	account_save(j);
	ajob_free(j);
}

static int
ajob_start(struct node *n, struct ajob *j, struct err *e)
{
	if (pool == NULL && (pool = workpool_new(n->base, 1, e)) == NULL)
		return -1;
	if (x_ev == NULL) {
		x_node = n;
		if ((x_ev = event_new(n->base, -1, 0, x_run, NULL)) == NULL)
			return err_set(e, E_INTERNAL, "out of memory");
	}
	if (live_add(j) == -1)
		return err_set(e, E_INTERNAL, "too many ACME orders at once");
	if (workpool_run(pool, ajob_work, ajob_done, j) == -1) {
		live_del(j);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	return 0;
}

/* A job with the settings set (taken) and its account key unsealed. */
static struct ajob *
ajob_new(struct node *n, int id, json_t *set, struct err *e)
{
	struct ajob	*j;
	const char	*sealed = str(set, "account_key");

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		json_decref(set);
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	j->n = n;
	j->id = id;
	j->set = set;
	if (sealed != NULL && (j->account_key = unseal_text(sealed,
	    e)) == NULL) {
		ajob_free(j);
		return NULL;
	}
	return j;
}

/* ---- the tick ---- */

static int
due(const json_t *st, time_t now)
{
	const char *state = str(st, "state");

	if (iso_field(st, "next_try") > now)
		return 0;
	if (state == NULL || strcmp(state, "valid") != 0 ||
	    json_is_true(json_object_get(st, "renew_requested")) ||
	    json_integer_value(json_object_get(st, "tries")) > 0)
		return 1;
	return iso_field(st, "next_renewal") <= now;
}

static void
tick_one(struct node *n, int id, json_t *set, int64_t set_rev, time_t now)
{
	struct store_txn	*t;
	struct ajob		*j;
	struct err		 e = { 0 };
	json_t			*st;
	char			 key[SCHEMA_KEY_MAX], iso[ISO_TIME_LEN];
	int64_t			 rev;

	st = state_read(n, id, &rev);
	if (!due(st, now) || (iso_field(st, "lease_until") > now &&
	    json_integer_value(json_object_get(st, "lease_uid")) != n->uid)) {
		json_decref(st);
		return;
	}
	/* The lease: one node works on the order; the others see it. */
	json_object_set_new(st, "lease_uid", json_integer(n->uid));
	json_object_set_new(st, "lease_until", json_string(iso_time(now +
	    LEASE_S, iso)));
	if ((t = store_txn_new()) == NULL) {
		json_decref(st);
		return;
	}
	store_txn_cmp(t, state_key(id, key), rev);
	store_txn_put_json(t, key, st);
	if (store_txn_commit(n->store, t, &e) == -1) {
		store_txn_free(t);
		json_decref(st);
		err_clear(&e);
		return;
	}
	store_txn_free(t);
	json_object_set_new(set, "_lease_until", json_integer(now + LEASE_S));
	if ((j = ajob_new(n, id, json_incref(set), &e)) == NULL) {
		/* Counted like any failure: back-off, alert. */
		fail_record(n, id, now + LEASE_S, str(st, "order_url"),
		    json_is_true(json_object_get(st, "renew_requested")),
		    err_msg(&e));
		json_decref(st);
		err_clear(&e);
		return;
	}
	j->set_rev = set_rev;
	j->deadline = now + LEASE_S - LEASE_MARGIN_S;
	j->renew_asked = json_is_true(json_object_get(st, "renew_requested"));
	if (str(st, "order_url") != NULL)
		j->order_url = strdup(str(st, "order_url"));
	json_decref(st);
	busy[id] = 1;
	if (ajob_start(n, j, &e) == -1) {
		busy[id] = 0;
		order_failed(j, err_msg(&e));
		ajob_free(j);
	}
	err_clear(&e);
}

void
certacme_tick(struct node *n)
{
	json_t		*list, *set;
	size_t		 i;
	int		 id;
	time_t		 now = time(NULL);

	if (n->store == NULL || n->uid <= 0 || atomic_load(&stopping))
		return;
	if ((list = schema_list(n->store, SK_ACME, NULL)) == NULL)
		return;
	json_array_foreach(list, i, set) {
		int64_t rev = json_integer_value(json_object_get(set, "_rev"));
		if ((id = cert_id_of(str(set, "name") ? str(set, "name") :
		    "")) < 0 || busy[id])
			continue;
		json_object_del(set, "_rev");
		tick_one(n, id, set, rev, now);
	}
	json_decref(list);
}

/* ---- the API ---- */

static int
param_id(struct api_req *r, struct err *e)
{
	int id = cert_id_of(r->param);

	if (id < 0)
		return err_set(e, E_UNKNOWN_CERT_404, "no certificate named "
		    "\"%.64s\"; names: %s", r->param, cert_names_list());
	return id;
}

/* The settings of the request's certificate (*id), or 404. */
static json_t *
settings_of_req(struct api_req *r, int *id, int64_t *rev, struct err *e)
{
	json_t *set;

	if ((*id = param_id(r, e)) == -1)
		return NULL;
	if ((set = settings_read(r->n, *id, rev, e)) == NULL &&
	    e->code == E_NOT_FOUND)
		err_set(e, E_NOT_FOUND, "the %s certificate is not ordered "
		    "from an ACME CA", r->param);
	return set;
}

int
api_acme_get(struct api_req *r, struct err *e)
{
	json_t	*set, *st;
	int	 id;

	if ((set = settings_of_req(r, &id, NULL, e)) == NULL)
		return -1;
	st = state_read(r->n, id, NULL);
	r->resp = view(id, set, st);
	json_decref(set);
	json_decref(st);
	return 0;
}

static int
is_dns_name(const char *s, int wildcard_ok)
{
	size_t	 i, len = strlen(s);

	if (len == 0 || len > 253)
		return 0;
	if (wildcard_ok && strncmp(s, "*.", 2) == 0)
		s += 2;
	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-' || s[i] == '.' || s[i] == '_'))
			return 0;
	return 1;
}

/* PUT's body checked and completed with the defaults: the settings. */
static json_t *
settings_of(struct api_req *r, int id, const json_t *b, struct err *e)
{
	static const char *const known[] = { "directory_url", "contact",
		"identifiers", "challenge", "http_port", "key_type",
		"ca_bundle", "dns_hook", NULL };
	const char	*k, *dir, *chal = "http-01", *kt = "ec256", *fqdn;
	json_t		*v, *set, *ids;
	size_t		 i;
	int		 port = 80;

	json_object_foreach((json_t *)b, k, v) {
		for (i = 0; known[i] != NULL && strcmp(known[i], k) != 0; i++)
			;
		if (known[i] == NULL)
			return err_set(e, E_INVALID_SCHEMA, "unknown field "
			    "\"%.64s\"; fields: directory_url, contact, "
			    "identifiers, challenge, http_port, key_type, "
			    "ca_bundle, dns_hook", k), NULL;
	}
	dir = str(b, "directory_url");
	if (dir == NULL || strncmp(dir, "https://", 8) != 0 || strlen(dir) >
	    1024)
		return err_set(e, E_INVALID_SCHEMA, "directory_url: the ACME "
		    "directory's https:// URL is required"), NULL;
	if ((v = json_object_get(b, "challenge")) != NULL) {
		chal = json_string_value(v);
		for (i = 0; chal != NULL && i < 3 && strcmp(chal,
		    challenges[i]) != 0; i++)
			;
		if (chal == NULL || i == 3)
			return err_set(e, E_INVALID_SCHEMA, "challenge: "
			    "http-01, tls-alpn-01 or dns-01"), NULL;
	}
	if (strcmp(chal, "tls-alpn-01") == 0 && id != CERT_API &&
	    id != CERT_CM)
		return err_set(e, E_INVALID_SCHEMA, "tls-alpn-01 is answered "
		    "on the endpoint's own port: the api and cm certificates "
		    "only (use http-01 or dns-01 for %s)",
		    cert_services[id].name), NULL;
	if ((v = json_object_get(b, "http_port")) != NULL &&
	    (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > 65535))
		return err_set(e, E_INVALID_SCHEMA, "http_port: 1 to 65535"),
		    NULL;
	if (v != NULL)
		port = (int)json_integer_value(v);
	if ((v = json_object_get(b, "key_type")) != NULL) {
		kt = json_string_value(v);
		if (kt == NULL || (strcmp(kt, "ec256") != 0 && strcmp(kt,
		    "rsa2048") != 0))
			return err_set(e, E_INVALID_SCHEMA, "key_type: ec256 "
			    "or rsa2048"), NULL;
	}
	if ((v = json_object_get(b, "ca_bundle")) != NULL &&
	    (!json_is_string(v) || strstr(json_string_value(v),
	    "-----BEGIN CERTIFICATE-----") == NULL))
		return err_set(e, E_INVALID_SCHEMA, "ca_bundle: PEM "
		    "certificates (what the ACME server's HTTPS is checked "
		    "against)"), NULL;
	if (strcmp(chal, "dns-01") == 0 && (str(b, "dns_hook") == NULL ||
	    str(b, "dns_hook")[0] != '/' || access(str(b, "dns_hook"),
	    X_OK) != 0))
		return err_set(e, E_INVALID_SCHEMA, "dns-01 needs dns_hook: "
		    "the absolute path of an executable, run as `hook set|"
		    "clear <name> <txt value>`"), NULL;
	if ((v = json_object_get(b, "contact")) != NULL) {
		if (!json_is_array(v) || json_array_size(v) > 4)
			return err_set(e, E_INVALID_SCHEMA, "contact: up to 4 "
			    "\"mailto:\" addresses"), NULL;
		for (i = 0; i < json_array_size(v); i++) {
			k = json_string_value(json_array_get(v, i));
			if (k == NULL || strncmp(k, "mailto:", 7) != 0 ||
			    strlen(k) > 256)
				return err_set(e, E_INVALID_SCHEMA, "contact: "
				    "\"mailto:\" addresses"), NULL;
		}
	}
	fqdn = r->n->ap != NULL && apply_has_cluster(r->n) ?
	    apply_cluster(r->n)->name : NULL;
	if ((v = json_object_get(b, "identifiers")) != NULL) {
		if (!json_is_array(v) || json_array_size(v) == 0 ||
		    json_array_size(v) > MAX_IDENTS)
			return err_set(e, E_INVALID_SCHEMA, "identifiers: 1 to "
			    "%d DNS names", MAX_IDENTS), NULL;
		for (i = 0; i < json_array_size(v); i++) {
			k = json_string_value(json_array_get(v, i));
			if (k == NULL || !is_dns_name(k, 1))
				return err_set(e, E_INVALID_SCHEMA,
				    "identifiers: DNS names"), NULL;
			if (k[0] == '*' && strcmp(chal, "dns-01") != 0)
				return err_set(e, E_INVALID_SCHEMA, "a wildcard "
				    "(%s) can only be proved with dns-01", k),
				    NULL;
		}
		ids = json_copy(v);
	} else if (fqdn == NULL)
		return err_set(e, E_NOT_BOOTSTRAPPED, "no cluster name yet"),
		    NULL;
	else {
		ids = json_pack("[s]", fqdn);
		/* Databases are reached as redis-<port>.<fqdn>: a wildcard
		 * where the challenge can prove one. */
		if (id == CERT_PROXY && strcmp(chal, "dns-01") == 0) {
			char *w;
			if (asprintf(&w, "*.%s", fqdn) != -1) {
				json_array_append_new(ids, json_string(w));
				free(w);
			}
		}
	}
	set = json_pack("{s:s, s:s, s:o, s:s, s:i, s:s}", "name",
	    cert_services[id].name, "directory_url", dir, "identifiers", ids,
	    "challenge", chal, "http_port", port, "key_type", kt);
	json_object_set_new(set, "contact", json_object_get(b, "contact") ?
	    json_copy(json_object_get(b, "contact")) : json_array());
	if (str(b, "ca_bundle") != NULL)
		json_object_set(set, "ca_bundle", json_object_get(b,
		    "ca_bundle"));
	if (str(b, "dns_hook") != NULL)
		json_object_set(set, "dns_hook", json_object_get(b,
		    "dns_hook"));
	return set;
}

int
api_acme_put(struct api_req *r, struct err *e)
{
	struct ajob	*j;
	json_t		*b, *set, *old;
	int		 id;

	if ((id = param_id(r, e)) == -1 || (b = api_body(r, 0, e)) == NULL)
		return -1;
	if (!json_is_object(b))
		return err_set(e, E_INVALID_SCHEMA, "expected a JSON object");
	if ((set = settings_of(r, id, b, e)) == NULL)
		return -1;
	/* The same directory keeps its account. */
	if ((old = settings_read(r->n, id, NULL, NULL)) != NULL &&
	    strcmp(str(old, "directory_url") ? str(old, "directory_url") : "",
	    str(set, "directory_url")) == 0 && str(old, "account_key")) {
		json_object_set(set, "account_key", json_object_get(old,
		    "account_key"));
		if (str(old, "account_url") != NULL)
			json_object_set(set, "account_url", json_object_get(
			    old, "account_url"));
	}
	json_decref(old);
	if ((j = ajob_new(r->n, id, set, e)) == NULL)
		return -1;
	j->r = r;
	j->probe = 1;
	j->deadline = time(NULL) + 2 * POLL_S;
	if (ajob_start(r->n, j, e) == -1) {
		ajob_free(j);
		return -1;
	}
	r->in_job = 1;
	api_hold(r);
	return API_ASYNC;
}

/* The CA took an order for the settings: store them, start working. */
static void
put_done(struct ajob *j)
{
	struct api_req		*r = j->r;
	struct node		*n = j->n;
	struct store_txn	*t = NULL;
	struct err		 e = { 0 };
	json_t			*st;
	char			 key[SCHEMA_KEY_MAX], *sealed = NULL;
	int			 rc = -1, foreign;
	int64_t			 srev;
	const char		*drop[] = { "order_url", "next_try",
				    "renew_requested", "lease_uid",
				    "lease_until", "first_failure", NULL };
	size_t			 i;

	r->in_job = 0;
	if (j->err.code != E_OK) {
		api_finish(r, -1, &j->err);
		ajob_free(j);
		return;
	}
	if (j->new_account_key != NULL) {
		sealed = seal_text(j->new_account_key);
		json_object_set_new(j->set, "account_key", json_string(sealed));
		seal_free(sealed);
	}
	json_object_set_new(j->set, "account_url", json_string(
	    j->account_url));
	/* What was issued before stays described; the new order starts.
	 * Another node's order under way keeps its lease (it will not
	 * install what it gets: the settings changed). */
	st = state_read(n, j->id, &srev);
	foreign = iso_field(st, "lease_until") > time(NULL) &&
	    json_integer_value(json_object_get(st, "lease_uid")) != n->uid;
	for (i = 0; drop[i] != NULL; i++)
		if (!foreign || strncmp(drop[i], "lease_", 6) != 0)
			json_object_del(st, drop[i]);
	json_object_set_new(st, "state", json_string(str(st, "last_issued") ?
	    "valid" : "pending"));
	json_object_set_new(st, "renew_requested", json_true());
	json_object_set_new(st, "tries", json_integer(0));
	json_object_set_new(st, "last_error", json_string(""));
	json_object_set_new(st, "order_url", json_string(j->new_order_url));
	if ((t = store_txn_new()) == NULL) {
		err_set(&e, E_INTERNAL, "out of memory");
		goto out;
	}
	store_txn_put_json(t, schema_key_of(SK_ACME, j->id, key), j->set);
	store_txn_cmp(t, state_key(j->id, key), srev);
	store_txn_put_json(t, key, st);
	if (store_txn_commit(n->store, t, &e) == 0) {
		json_object_del(j->set, "account_key");
		r->resp = view(j->id, j->set, st);
		rc = 0;
		log_info("ACME: the %s certificate is ordered from %s (%s)",
		    cert_services[j->id].name, str(j->set, "directory_url"),
		    str(j->set, "challenge"));
		events_add(n, "acme_settings_changed", "INFO", json_pack(
		    "{s:s, s:s, s:s, s:O}", "name", cert_services[j->id].name,
		    "directory_url", str(j->set, "directory_url"), "challenge",
		    str(j->set, "challenge"), "identifiers", json_object_get(
		    j->set, "identifiers")));
	}
out:
	store_txn_free(t);
	json_decref(st);
	api_finish(r, rc, &e);
	err_clear(&e);
	ajob_free(j);
	if (rc == 0)
		certacme_tick(n);
}

int
api_acme_delete(struct api_req *r, struct err *e)
{
	struct store_txn	*t;
	char			 key[SCHEMA_KEY_MAX];
	json_t			*set;
	int64_t			 rev;
	int			 id, rc;

	if ((set = settings_of_req(r, &id, &rev, e)) == NULL)
		return -1;
	json_decref(set);
	if ((t = store_txn_new()) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	store_txn_cmp(t, schema_key_of(SK_ACME, id, key), rev);
	store_txn_del(t, key);
	store_txn_del(t, state_key(id, key));
	rc = store_txn_commit(r->n->store, t, e);
	store_txn_free(t);
	if (rc == -1)
		return -1;
	log_info("ACME: the %s certificate is no longer ordered; the one in "
	    "place stays", cert_services[id].name);
	events_add(r->n, "acme_settings_deleted", "INFO", json_pack("{s:s}",
	    "name", cert_services[id].name));
	r->resp = json_pack("{s:s, s:b}", "name", cert_services[id].name,
	    "deleted", 1);
	return 0;
}

int
api_acme_renew(struct api_req *r, struct err *e)
{
	struct store_txn	*t;
	char			 key[SCHEMA_KEY_MAX];
	json_t			*set, *st;
	int64_t			 rev;
	int			 id, rc;

	if ((set = settings_of_req(r, &id, NULL, e)) == NULL)
		return -1;
	st = state_read(r->n, id, &rev);
	json_object_set_new(st, "renew_requested", json_true());
	json_object_del(st, "next_try");
	if ((t = store_txn_new()) == NULL) {
		json_decref(set);
		json_decref(st);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	store_txn_cmp(t, state_key(id, key), rev);
	store_txn_put_json(t, key, st);
	rc = store_txn_commit(r->n->store, t, e);
	store_txn_free(t);
	if (rc == 0) {
		json_object_del(set, "account_key");
		r->resp = view(id, set, st);
		certacme_tick(r->n);
	} else if (e->code == E_CONFLICT)
		err_set(e, E_CONFLICT, "the order's state changed meanwhile; "
		    "try again");
	json_decref(set);
	json_decref(st);
	return rc;
}

/* ---- serving the challenges (every node) ---- */

static void
http01_cb(struct evhttp_request *req, void *arg)
{
	const char	*uri = evhttp_request_get_uri(req), *tok;
	const char	*pre = "/.well-known/acme-challenge/", *ka = NULL;
	struct evbuffer	*b = evbuffer_new();
	size_t		 i;

	if (b == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	(void)arg;
	if (evhttp_request_get_command(req) == EVHTTP_REQ_GET && uri != NULL &&
	    strncmp(uri, pre, strlen(pre)) == 0) {
		tok = uri + strlen(pre);
		for (i = 0; tok[i] != '\0' && ((tok[i] >= 'a' && tok[i] <= 'z') ||
		    (tok[i] >= 'A' && tok[i] <= 'Z') || (tok[i] >= '0' &&
		    tok[i] <= '9') || tok[i] == '-' || tok[i] == '_'); i++)
			;
		if (tok[i] == '\0' && i > 0)
			ka = json_string_value(json_object_get(http_answers,
			    tok));
	}
	if (ka != NULL) {
		evbuffer_add_printf(b, "%s", ka);
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", "application/octet-stream");
		evhttp_send_reply(req, 200, "OK", b);
	} else {
		evbuffer_add_printf(b, "no such challenge\n");
		evhttp_send_reply(req, 404, "Not Found", b);
	}
	evbuffer_free(b);
}

static void
http01_sync(struct node *n, const int *ports, int np)
{
	int i, k;

	for (i = 0; i < http_n; i++) {
		for (k = 0; k < np && ports[k] != http_ls[i].port; k++)
			;
		if (k < np)
			continue;
		evhttp_free(http_ls[i].h);
		log_info("ACME: http-01 no longer answered on port %d",
		    http_ls[i].port);
		http_ls[i--] = http_ls[--http_n];
	}
	for (k = 0; k < np && http_n < MAX_HTTP_PORTS; k++) {
		for (i = 0; i < http_n && http_ls[i].port != ports[k]; i++)
			;
		if (i < http_n)
			continue;
		if ((http_ls[http_n].h = evhttp_new(n->base)) == NULL)
			return;
		if (evhttp_bind_socket(http_ls[http_n].h, n->cfg.addr,
		    (uint16_t)ports[k]) == -1) {
			log_warn("ACME: cannot answer http-01 on %s:%d: %s",
			    n->cfg.addr, ports[k], strerror(errno));
			evhttp_free(http_ls[http_n].h);
			continue;
		}
		evhttp_set_allowed_methods(http_ls[http_n].h, EVHTTP_REQ_GET |
		    EVHTTP_REQ_HEAD);
		evhttp_set_max_body_size(http_ls[http_n].h, 0);
		evhttp_set_timeout(http_ls[http_n].h, 10);
		evhttp_set_gencb(http_ls[http_n].h, http01_cb, n);
		http_ls[http_n].port = ports[k];
		log_info("ACME: http-01 answered on %s:%d", n->cfg.addr,
		    ports[k]);
		http_n++;
	}
}

void
certacme_apply(struct node *n, const struct store_kv *kv, size_t nkv)
{
	struct tls_alpn_answer	 v[16];
	char			*keys[16];
	int			 ports[MAX_HTTP_PORTS], np = 0, i, id;
	int64_t			 rev = 0;
	size_t			 k, na = 0;
	struct err		 e = { 0 };
	json_t			*docs[16];

	json_decref(http_answers);
	http_answers = json_object();
	for (k = 0; k < nkv; k++) {
		enum schema_kind kind = schema_classify(kv[k].key, &id);
		json_t *doc;
		if (kind == SK_ACME_ALPN)
			rev += kv[k].mod_rev;
		if (kind == SK_ACME_HTTP && (doc = json_loads(kv[k].value, 0,
		    NULL)) != NULL) {
			json_object_set(http_answers, kv[k].key +
			    strlen(schema_prefix(SK_ACME_HTTP)),
			    json_object_get(doc, "key_authorization"));
			json_decref(doc);
			continue;
		}
		if (kind != SK_ACME || (doc = json_loads(kv[k].value, 0,
		    NULL)) == NULL)
			continue;
		if (strcmp(str(doc, "challenge") ? str(doc, "challenge") : "",
		    "http-01") == 0 && np < MAX_HTTP_PORTS) {
			int p = (int)json_integer_value(json_object_get(doc,
			    "http_port"));
			for (i = 0; i < np && ports[i] != p; i++)
				;
			if (i == np && p > 0)
				ports[np++] = p;
		}
		json_decref(doc);
	}
	http01_sync(n, ports, np);
	if (rev == alpn_rev)
		return;
	for (k = 0; k < nkv && na < 16; k++) {
		if (schema_classify(kv[k].key, &id) != SK_ACME_ALPN ||
		    (docs[na] = json_loads(kv[k].value, 0, NULL)) == NULL)
			continue;
		if (str(docs[na], "name") == NULL || str(docs[na],
		    "certificate") == NULL || str(docs[na], "key") == NULL ||
		    (keys[na] = unseal_text(str(docs[na], "key"), NULL)) ==
		    NULL) {
			json_decref(docs[na]);
			continue;
		}
		v[na].name = str(docs[na], "name");
		v[na].cert_pem = str(docs[na], "certificate");
		v[na].key_pem = keys[na];
		na++;
	}
	if (tlsctx_acme_answers(v, na, &e) == 0)
		alpn_rev = rev;
	else
		log_warn("ACME: tls-alpn-01 answers: %s", err_msg(&e));
	err_clear(&e);
	while (na > 0) {
		na--;
		seal_free(keys[na]);
		json_decref(docs[na]);
	}
}

/* ---- alerts, shutdown ---- */

json_t *
certacme_alert_items(struct node *n)
{
	json_t	*out = json_array(), *list, *set, *st;
	size_t	 i;
	int	 id;

	if ((list = schema_list(n->store, SK_ACME, NULL)) == NULL)
		return out;
	json_array_foreach(list, i, set) {
		if ((id = cert_id_of(str(set, "name") ? str(set, "name") :
		    "")) < 0)
			continue;
		st = state_read(n, id, NULL);
		if (json_integer_value(json_object_get(st, "tries")) > 0)
			json_array_append_new(out, json_pack("{s:s, s:O?}",
			    "name", cert_services[id].name, "hot_since",
			    json_object_get(st, "first_failure")));
		json_decref(st);
	}
	json_decref(list);
	return out;
}

void
certacme_shutdown(struct node *n)
{
	size_t i;

	(void)n;
	atomic_store(&stopping, 1);
	workpool_free(pool);
	pool = NULL;
	/* What the pool dropped: nobody will call it back; a PUT still
	 * waiting for the CA is told. */
	for (i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (live[i] != NULL) {
			if (live[i]->r != NULL) {
				struct err e = { 0 };
				live[i]->r->in_job = 0;
				err_set(&e, E_INTERNAL, "moatd is stopping");
				api_finish(live[i]->r, -1, &e);
				err_clear(&e);
			}
			ajob_free(live[i]);
			live[i] = NULL;
		}
	if (x_ev != NULL)
		event_free(x_ev);
	x_ev = NULL;
	json_decref(http_answers);
	http_answers = NULL;
	while (http_n > 0)
		evhttp_free(http_ls[--http_n].h);
	tlsctx_acme_answers(NULL, 0, NULL);
	alpn_rev = -1;
	memset(busy, 0, sizeof(busy));
}
