/*
 * ocsp.c — see ocsp.h.
 *
 * Store documents: the settings (SK_OCSP, RS's ocsp object without the
 * read-only responder_url), the staples (SK_OCSP_STAPLE, one per
 * certificate: the verified response about one leaf, which apply
 * staples), and each certificate's fetch state under the state prefix
 * (lease, failures, last error).  RS staples the proxy certificate; moat
 * does the same for api and cm when they name a responder.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "curlbuf.h"
#include "events.h"
#include "jobs.h"
#include "log.h"
#include "ocsp.h"
#include "ocspmsg.h"
#include "schema.h"
#include "workpool.h"
#include "x509.h"

#define OCSP_RESP_MAX	(64 * 1024)
#define LEASE_EXTRA_S	10	/* beyond the response timeout */

/* RS's settings and ranges, in one table (ocsp_functionality apart). */
static const struct {
	const char	*name;
	int		 min, max, dflt;
} ocsp_ints[] = {
	{ "query_frequency",	60, 86400, 3600 },
	{ "recovery_frequency",	60, 86400, 60 },
	{ "recovery_max_tries",	1, 100, 5 },
	{ "response_timeout",	1, 60, 1 },
};
#define NINTS	(sizeof(ocsp_ints) / sizeof(ocsp_ints[0]))

struct ocsp_settings {
	int	on;
	int	query, recovery, max_tries, timeout;
};

/* The certificates stapled, RS's (proxy) first. */
static const int ocsp_certs[] = { CERT_PROXY, CERT_API, CERT_CM };
#define NCERTS	(sizeof(ocsp_certs) / sizeof(ocsp_certs[0]))

static int	busy[CERT__COUNT];	/* a query of this node is under way */

/* ---- settings ---- */

/* The stored settings with defaults filled (a new object). */
static json_t *
settings_read(struct node *n, int64_t *rev, struct err *e)
{
	struct err	 ge = { 0 };
	json_t		*doc, *out;
	size_t		 i;

	if (rev != NULL)
		*rev = 0;
	doc = schema_get(n->store, schema_key(SK_OCSP), rev, &ge);
	if (doc == NULL && ge.code != E_NOT_FOUND) {
		if (e != NULL)
			err_set(e, ge.code, "%s", err_msg(&ge));
		err_clear(&ge);
		return NULL;
	}
	err_clear(&ge);
	out = json_pack("{s:b}", "ocsp_functionality",
	    json_is_true(json_object_get(doc, "ocsp_functionality")));
	for (i = 0; i < NINTS; i++) {
		json_t *v = json_object_get(doc, ocsp_ints[i].name);
		json_object_set_new(out, ocsp_ints[i].name, json_integer(
		    json_is_integer(v) ? json_integer_value(v) :
		    ocsp_ints[i].dflt));
	}
	json_decref(doc);
	return out;
}

static void
settings_of(const json_t *doc, struct ocsp_settings *s)
{
	s->on = json_is_true(json_object_get(doc, "ocsp_functionality"));
	s->query = (int)json_integer_value(json_object_get(doc,
	    "query_frequency"));
	s->recovery = (int)json_integer_value(json_object_get(doc,
	    "recovery_frequency"));
	s->max_tries = (int)json_integer_value(json_object_get(doc,
	    "recovery_max_tries"));
	s->timeout = (int)json_integer_value(json_object_get(doc,
	    "response_timeout"));
}

/* ---- what is asked about: the proxy certificate ---- */

struct target {
	int			 id;		/* enum cert_id */
	struct x509_material	*m;
	char			*issuers;	/* the cluster's CAs */
	char			*url;		/* NULL: none in the cert */
	char			 fp[100];
};

static void
target_clear(struct target *t)
{
	x509_material_free(t->m);
	free(t->issuers);
	free(t->url);
	memset(t, 0, sizeof(*t));
}

static int
target_read(struct node *n, int id, struct target *t, struct err *e)
{
	struct cert_doc	 cd;
	json_t		*doc, *ca;
	char		 key[SCHEMA_KEY_MAX];
	int		 rc = -1;

	memset(t, 0, sizeof(*t));
	t->id = id;
	if ((doc = schema_get(n->store, schema_key_of(SK_CERT, id, key), NULL,
	    e)) == NULL)
		return -1;
	if (cert_doc_decode(doc, &cd, e) == 0 &&
	    x509_material_parse(cd.certificate, NULL, &t->m, e) == 0) {
		x509_material_fingerprint(t->m, t->fp);
		t->url = ocsp_responder_url(t->m);
		if ((ca = schema_get(n->store, schema_key(SK_CA), NULL,
		    NULL)) != NULL) {
			t->issuers = ca_doc_bundle(ca);
			json_decref(ca);
		}
		rc = 0;
	}
	json_decref(doc);
	if (rc == -1)
		target_clear(t);
	t->id = id;
	return rc;
}

static const char *
staple_key(int id, char *buf)
{
	return schema_key_of(SK_OCSP_STAPLE, id, buf);
}

static json_t *
staple_read(struct node *n, int id)
{
	char key[SCHEMA_KEY_MAX];

	return schema_get(n->store, staple_key(id, key), NULL, NULL);
}

/* 1 when staple is about the leaf with fingerprint fp. */
static int
staple_is_for(const json_t *staple, const char *fp)
{
	const char *sfp = json_string_value(json_object_get(staple,
	    "fingerprint_sha256"));

	return sfp != NULL && strcmp(sfp, fp) == 0;
}

/* ---- the fetch state ---- */

static const char *
state_key(int id, char *buf)
{
	return schema_cert_state_key("ocsp.fetch", id, buf);
}

static json_t *
state_read(struct node *n, int id, int64_t *rev)
{
	return schema_cert_state_get(n->store, "ocsp.fetch", id, rev);
}

static json_t *
iso_json(time_t t)
{
	char buf[ISO_TIME_LEN];

	return t > 0 ? json_string(iso_time(t, buf)) : json_null();
}

/* ---- a query ---- */

struct job {
	struct node		*n;
	struct api_req		*r;	/* POST /v1/ocsp/test, or NULL */
	struct target		 t;
	struct ocsp_settings	 s;
	int64_t			 state_rev;	/* the fetch state it began at */
	unsigned char		*req;
	size_t			 reqlen;
	struct curlbuf		 resp;
	long			 status;
	char			 err[256];
};

static void
job_free(struct job *j)
{
	target_clear(&j->t);
	free(j->req);
	curlbuf_clear(&j->resp);
	free(j);
}

/* On the work pool: one HTTP POST (RFC 6960, appendix A). */
static void
job_work(void *arg)
{
	struct job		*j = arg;
	struct curl_slist	*h;
	CURL			*c;
	CURLcode		 rc;

	if ((c = curl_easy_init()) == NULL) {
		snprintf(j->err, sizeof(j->err), "out of memory");
		return;
	}
	h = curl_slist_append(NULL, "Content-Type: application/ocsp-request");
	j->resp.max = OCSP_RESP_MAX;
	curl_easy_setopt(c, CURLOPT_URL, j->t.url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)j->req);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)j->reqlen);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curlbuf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &j->resp);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)j->s.timeout);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if ((rc = curl_easy_perform(c)) != CURLE_OK)
		snprintf(j->err, sizeof(j->err), "cannot query the responder "
		    "at %s: %s", j->t.url, curl_easy_strerror(rc));
	else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &j->status);
		if (j->status != 200)
			snprintf(j->err, sizeof(j->err), "the responder at %s "
			    "answered HTTP %ld", j->t.url, j->status);
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

/* RS's ocsp_status object of a staple document about the leaf fp (NULL:
 * whichever); an answer about another leaf (the certificate was replaced
 * since) is no status of this one: null fields. */
static json_t *
status_json(const json_t *staple, const json_t *state, const char *fp)
{
	json_t *out = json_object();
	static const char *const fields[] = { "cert_status", "responder_url",
		"produced_at", "this_update", "next_update", "revocation_time",
		"fetched_at", "fetched_by", "fingerprint_sha256", NULL };
	size_t i;

	if (fp != NULL && !staple_is_for(staple, fp))
		staple = NULL;
	for (i = 0; fields[i] != NULL; i++) {
		json_t *v = json_object_get(staple, fields[i]);
		json_object_set(out, fields[i], v != NULL ? v : json_null());
	}
	if (state != NULL) {
		int same = fp == NULL || json_string_value(json_object_get(
		    state, "fingerprint_sha256")) == NULL || strcmp(
		    json_string_value(json_object_get(state,
		    "fingerprint_sha256")), fp) == 0;
		json_object_set_new(out, "failed_queries", json_integer(same ?
		    json_integer_value(json_object_get(state, "tries")) : 0));
		json_object_set(out, "last_error", same && json_object_get(
		    state, "last_error") ? json_object_get(state,
		    "last_error") : json_null());
	}
	return out;
}

/* The checked answer: the new staple document (caller owns). */
static json_t *
staple_new(struct job *j, const struct ocsp_result *res)
{
	json_t	*doc = schema_staple_encode(j->t.fp,
		    (const unsigned char *)j->resp.data, j->resp.len);
	char	 now[ISO_TIME_LEN];

	if (doc == NULL)
		return NULL;
	json_object_set_new(doc, "cert_status", json_string(
	    ocsp_status_name(res->status)));
	json_object_set_new(doc, "responder_url", json_string(j->t.url));
	json_object_set_new(doc, "produced_at", iso_json(res->produced_at));
	json_object_set_new(doc, "this_update", iso_json(res->this_update));
	json_object_set_new(doc, "next_update", iso_json(res->next_update));
	json_object_set_new(doc, "revocation_time",
	    iso_json(res->revocation_time));
	json_object_set_new(doc, "fetched_at", json_string(iso_time(time(NULL),
	    now)));
	json_object_set_new(doc, "fetched_by", json_integer(j->n->uid));
	return doc;
}

/*
 * Record what a query found, only if the fetch state is still what the
 * query started from (j->state_rev: after its lease, or as read by a
 * test): a query that outlived its lease, or overlapped another, loses
 * and changes nothing.  1 written, 0 lost, -1 the store failed.
 */
static int
record(struct job *j, json_t *state, json_t *staple, int drop_staple)
{
	struct store_txn	*t;
	struct err		 e = { 0 };
	char			 key[SCHEMA_KEY_MAX];
	json_t			*old;
	int64_t			 srev;
	int			 rc;

	if ((t = store_txn_new()) == NULL)
		return -1;
	store_txn_cmp(t, state_key(j->t.id, key), j->state_rev);
	store_txn_put_json(t, key, state);
	if (staple != NULL)
		store_txn_put_json(t, staple_key(j->t.id, key), staple);
	/* Drop only an answer about this very certificate, as read. */
	if (drop_staple && (old = schema_get(j->n->store, staple_key(j->t.id,
	    key), &srev, NULL)) != NULL) {
		if (staple_is_for(old, j->t.fp)) {
			store_txn_cmp(t, key, srev);
			store_txn_del(t, key);
		}
		json_decref(old);
	}
	rc = store_txn_commit(j->n->store, t, &e) == 0 ? 1 :
	    e.code == E_CONFLICT ? 0 : -1;
	if (rc == 0)
		log_info("OCSP: another query about the %s certificate was "
		    "recorded meanwhile; this one's answer is dropped",
		    cert_services[j->t.id].name);
	else if (rc == -1)
		log_warn("OCSP: cannot record the query: %s", err_msg(&e));
	store_txn_free(t);
	err_clear(&e);
	return rc;
}

static void
record_success(struct job *j, json_t *staple)
{
	struct node	*n = j->n;
	json_t		*old = staple_read(n, j->t.id), *state;
	const char	*was = json_string_value(json_object_get(old,
			    "cert_status"));
	const char	*now = json_string_value(json_object_get(staple,
			    "cert_status"));
	char		 iso[ISO_TIME_LEN];

	state = json_pack("{s:s, s:i, s:s, s:s, s:s}", "fingerprint_sha256",
	    j->t.fp, "tries", 0, "last_error", "", "last_try",
	    iso_time(time(NULL), iso), "last_success", iso);
	if (record(j, state, staple, 0) == 1 && (was == NULL ||
	    strcmp(was, now) != 0 || !staple_is_for(old, j->t.fp))) {
		log_info("OCSP: the %s certificate is %s (responder %s)",
		    cert_services[j->t.id].name, now, j->t.url);
		events_add(n, "ocsp_status_changed", strcmp(now, "GOOD") == 0 ?
		    "INFO" : "WARNING", json_pack("{s:s, s:s, s:s?, s:s, s:s}",
		    "name", cert_services[j->t.id].name, "cert_status", now,
		    "was", was, "fingerprint_sha256", j->t.fp, "responder_url",
		    j->t.url));
	}
	json_decref(state);
	json_decref(old);
}

static void
record_failure(struct job *j, const char *why)
{
	struct node	*n = j->n;
	json_t		*state = state_read(n, j->t.id, NULL);
	char		 iso[ISO_TIME_LEN];
	int		 tries = 0, rc;

	if (staple_is_for(state, j->t.fp))
		tries = (int)json_integer_value(json_object_get(state,
		    "tries"));
	if (tries == 0)
		json_object_set_new(state, "first_failure",
		    json_string(iso_time(time(NULL), iso)));
	tries++;
	json_object_set_new(state, "fingerprint_sha256", json_string(j->t.fp));
	json_object_set_new(state, "tries", json_integer(tries));
	json_object_set_new(state, "last_error", json_string(why));
	json_object_set_new(state, "last_try", json_string(iso_time(time(NULL),
	    iso)));
	json_object_del(state, "lease_until");
	/* RS: after recovery_max_tries the certificate's status is invalid;
	 * nothing stale is stapled. */
	rc = record(j, state, NULL, tries == j->s.max_tries);
	json_decref(state);
	if (rc != 1)
		return;
	log_warn("OCSP query %d about the %s certificate failed: %s", tries,
	    cert_services[j->t.id].name, why);
	if (tries == j->s.max_tries)
		events_add(n, "ocsp_query_failed", "WARNING", json_pack("{s:s, "
		    "s:i, s:s}", "name", cert_services[j->t.id].name, "tries",
		    tries, "last_error", why));
}

static void
job_done(void *arg)
{
	struct job		*j = arg;
	struct ocsp_result	 res;
	struct err		 e = { 0 };
	json_t			*staple = NULL;
	int			 rc = -1;

	if (j->r == NULL)
		busy[j->t.id] = 0;
	if (j->err[0] == '\0') {
		if (ocsp_response_check(j->t.m, j->t.issuers,
		    (const unsigned char *)j->resp.data, j->resp.len, &res,
		    &e) == -1)
			snprintf(j->err, sizeof(j->err), "%s", err_msg(&e));
		else if ((staple = staple_new(j, &res)) == NULL)
			snprintf(j->err, sizeof(j->err), "out of memory");
	}
	err_clear(&e);
	/* A test records only while stapling is on: otherwise nothing of
	 * it would be used. */
	if (j->r == NULL || j->s.on) {
		if (staple != NULL)
			record_success(j, staple);
		else
			record_failure(j, j->err);
	}
	if (j->r != NULL) {
		struct api_req *r = j->r;
		r->in_job = 0;
		if (staple != NULL) {
			r->resp = status_json(staple, NULL, NULL);
			json_object_set_new(r->resp, "name", json_string(
			    cert_services[j->t.id].name));
			rc = 0;
		} else
			err_set(&e, E_INVALID_OCSP, "%s", j->err);
		api_finish(r, rc, &e);
		err_clear(&e);
	}
	json_decref(staple);
	job_free(j);
}

/* Start a query about t (taken); r: the test request to answer. */
static int
job_start(struct node *n, struct api_req *r, struct target *t,
    const struct ocsp_settings *s, int64_t state_rev, struct err *e)
{
	struct job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		target_clear(t);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	j->n = n;
	j->r = r;
	j->t = *t;
	j->s = *s;
	j->state_rev = state_rev;
	memset(t, 0, sizeof(*t));
	if (ocsp_request(j->t.m, j->t.issuers, &j->req, &j->reqlen, e) == -1) {
		job_free(j);
		return -1;
	}
	if (workpool_run(n->wp, job_work, job_done, j) == -1) {
		job_free(j);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	return 0;
}

/* ---- the tick ---- */

static int
due(const struct ocsp_settings *s, const json_t *state, const json_t *staple,
    const char *fp, time_t now)
{
	const char	*sfp = json_string_value(json_object_get(state,
			    "fingerprint_sha256"));
	const char	*pfp = json_string_value(json_object_get(staple,
			    "fingerprint_sha256"));
	int		 tries = sfp != NULL && strcmp(sfp, fp) == 0 ?
			    (int)json_integer_value(json_object_get(state,
			    "tries")) : 0;
	time_t		 last = sfp != NULL && strcmp(sfp, fp) == 0 ?
			    iso_field(state, "last_try") : 0;

	if (tries == 0 && (pfp == NULL || strcmp(pfp, fp) != 0))
		return 1;	/* nothing about this certificate yet */
	if (tries > 0 && tries < s->max_tries)
		return now >= last + s->recovery;
	return now >= last + s->query;
}

/* One certificate's turn in the tick. */
static void
tick_one(struct node *n, const struct ocsp_settings *s, int id, time_t now)
{
	struct target		 t;
	struct store_txn	*txn;
	struct err		 e = { 0 };
	json_t			*state, *staple;
	char			 key[SCHEMA_KEY_MAX], iso[ISO_TIME_LEN];
	int64_t			 rev;

	if (busy[id] || target_read(n, id, &t, NULL) == -1)
		return;
	if (t.url == NULL) {
		target_clear(&t);
		return;
	}
	state = state_read(n, id, &rev);
	staple = staple_read(n, id);
	if (!due(s, state, staple, t.fp, now) ||
	    (iso_field(state, "lease_until") > now &&
	    json_integer_value(json_object_get(state, "lease_uid")) !=
	    n->uid)) {
		json_decref(staple);
		json_decref(state);
		target_clear(&t);
		return;
	}
	json_decref(staple);
	/* The lease: one node queries; the others see it taken. */
	json_object_set_new(state, "lease_uid", json_integer(n->uid));
	json_object_set_new(state, "lease_until", json_string(iso_time(now +
	    s->timeout + LEASE_EXTRA_S, iso)));
	if ((txn = store_txn_new()) != NULL) {
		store_txn_cmp(txn, state_key(id, key), rev);
		store_txn_put_json(txn, key, state);
	}
	json_decref(state);
	if (txn == NULL || store_txn_commit_rev(n->store, txn, &rev, &e) ==
	    -1) {
		store_txn_free(txn);
		target_clear(&t);
		err_clear(&e);
		return;
	}
	store_txn_free(txn);
	busy[id] = 1;
	if (job_start(n, NULL, &t, s, rev, &e) == -1) {
		busy[id] = 0;
		log_warn("OCSP: cannot start a query: %s", err_msg(&e));
	}
	err_clear(&e);
}

void
ocsp_tick(struct node *n)
{
	struct ocsp_settings	 s;
	json_t			*set;
	size_t			 i;
	time_t			 now = time(NULL);

	if ((set = settings_read(n, NULL, NULL)) == NULL)
		return;
	settings_of(set, &s);
	json_decref(set);
	if (!s.on)
		return;
	for (i = 0; i < NCERTS; i++)
		tick_one(n, &s, ocsp_certs[i], now);
}

/* ---- the API ---- */

int
api_ocsp_get(struct api_req *r, struct err *e)
{
	struct target	 t;
	json_t		*urls;
	size_t		 i;

	if ((r->resp = settings_read(r->n, NULL, e)) == NULL)
		return -1;
	/* responder_url: RS's, the proxy certificate's; responder_urls:
	 * every certificate moat staples. */
	urls = json_object();
	for (i = 0; i < NCERTS; i++) {
		if (target_read(r->n, ocsp_certs[i], &t, e) == -1) {
			json_decref(urls);
			return -1;
		}
		json_object_set_new(urls, cert_services[ocsp_certs[i]].name,
		    t.url != NULL ? json_string(t.url) : json_null());
		target_clear(&t);
	}
	json_object_set(r->resp, "responder_url", json_object_get(urls,
	    cert_services[CERT_PROXY].name));
	json_object_set_new(r->resp, "responder_urls", urls);
	return 0;
}

int
api_ocsp_put(struct api_req *r, struct err *e)
{
	struct store_txn	*txn = NULL;
	json_t			*b, *doc = NULL, *v, *got;
	const char		*k, *name;
	int64_t			 rev;
	size_t			 i;
	int			 rc = -1, any = 0;

	if ((b = api_body(r, 0, e)) == NULL)
		return -1;
	if (json_object_size(b) == 0)
		return err_set(e, E_INVALID_SCHEMA, "expected a JSON object with "
		    "at least one field to change");
	json_object_foreach(b, k, v) {
		if (strcmp(k, "ocsp_functionality") == 0) {
			if (!json_is_boolean(v))
				return err_set(e, E_INVALID_SCHEMA,
				    "ocsp_functionality must be true or false");
			continue;
		}
		if (strcmp(k, "responder_url") == 0 ||
		    strcmp(k, "responder_urls") == 0)
			return err_set(e, E_INVALID_SCHEMA, "%s is read-only: "
			    "it comes from the certificates", k);
		for (i = 0; i < NINTS; i++)
			if (strcmp(k, ocsp_ints[i].name) == 0)
				break;
		if (i == NINTS)
			return err_set(e, E_INVALID_SCHEMA, "unknown field "
			    "\"%.64s\"; settable: ocsp_functionality, "
			    "query_frequency, recovery_frequency, "
			    "recovery_max_tries, response_timeout", k);
		if (!json_is_integer(v) || json_integer_value(v) <
		    ocsp_ints[i].min || json_integer_value(v) >
		    ocsp_ints[i].max)
			return err_set(e, E_INVALID_SCHEMA, "%s must be an "
			    "integer from %d to %d", k, ocsp_ints[i].min,
			    ocsp_ints[i].max);
	}
	if (json_is_true(json_object_get(b, "ocsp_functionality"))) {
		/* Something must name a responder; RS asks it of proxy. */
		if (api_ocsp_get(r, e) == -1)
			return -1;
		got = json_object_get(r->resp, "responder_urls");
		json_object_foreach(got, name, v)
			any |= json_is_string(v);
		json_decref(r->resp);
		r->resp = NULL;
		if (!any)
			return err_set(e, E_NO_RESPONDER, "the proxy certificate "
			    "names no OCSP responder (no OCSP URI in its "
			    "Authority Information Access), nor do api and cm: "
			    "replace it with one that does first");
	}
	if ((doc = settings_read(r->n, &rev, e)) == NULL)
		return -1;
	json_object_update(doc, b);
	if ((txn = store_txn_new()) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	store_txn_cmp(txn, schema_key(SK_OCSP), rev);
	store_txn_put_json(txn, schema_key(SK_OCSP), doc);
	/* Off: nothing stapled any more, on every node. */
	if (!json_is_true(json_object_get(doc, "ocsp_functionality")))
		for (i = 0; i < NCERTS; i++) {
			char key[SCHEMA_KEY_MAX];
			store_txn_del(txn, staple_key(ocsp_certs[i], key));
		}
	events_txn_add(r->n, txn, "ocsp_settings_changed", "INFO",
	    json_pack("{s:s, s:O}", "user", r->who, "changes", b));
	if (store_txn_commit(r->n->store, txn, e) == -1)
		goto out;
	log_audit("%s changed the OCSP settings", r->who);
	jobs_kick(r->n->jobs);
	rc = api_ocsp_get(r, e);
out:
	store_txn_free(txn);
	json_decref(doc);
	return rc;
}

/* One certificate's status: its answer if it is about the leaf served. */
static json_t *
status_of(struct node *n, int id)
{
	struct target	 t;
	json_t		*staple = staple_read(n, id), *state = state_read(n,
			    id, NULL), *out;

	if (target_read(n, id, &t, NULL) == -1)
		memset(&t, 0, sizeof(t));
	out = status_json(staple, state, t.m != NULL ? t.fp : NULL);
	target_clear(&t);
	json_decref(staple);
	json_decref(state);
	return out;
}

int
api_ocsp_status(struct api_req *r, struct err *e)
{
	json_t	*all = json_object();
	size_t	 i;

	(void)e;
	/* RS's object is the proxy certificate's; moat adds every one. */
	r->resp = status_of(r->n, CERT_PROXY);
	for (i = 0; i < NCERTS; i++)
		json_object_set_new(all, cert_services[ocsp_certs[i]].name,
		    status_of(r->n, ocsp_certs[i]));
	json_object_set_new(r->resp, "certificates", all);
	return 0;
}

int
api_ocsp_test(struct api_req *r, struct err *e)
{
	struct ocsp_settings	 s;
	struct target		 t;
	json_t			*set, *b;
	json_error_t		 je;
	const char		*name = cert_services[CERT_PROXY].name;
	size_t			 i;
	int64_t			 rev;
	int			 id = -1;

	/* {"name": "api"}: moat's; RS tests the proxy certificate. */
	if ((b = api_body(r, 1, e)) == NULL)
		return -1;
	if (json_unpack_ex(b, &je, JSON_STRICT, "{s?s}", "name", &name) != 0)
		return err_set(e, E_INVALID_SCHEMA, "%s; expected nothing or "
		    "{\"name\": \"proxy\" | \"api\" | \"cm\"}", je.text);
	for (i = 0; i < NCERTS; i++)
		if (strcmp(name, cert_services[ocsp_certs[i]].name) == 0)
			id = ocsp_certs[i];
	if (id == -1)
		return err_set(e, E_INVALID_SCHEMA, "name must be proxy, api or "
		    "cm (the certificates moat staples)");
	if ((set = settings_read(r->n, NULL, e)) == NULL)
		return -1;
	settings_of(set, &s);
	json_decref(set);
	if (target_read(r->n, id, &t, e) == -1)
		return -1;
	if (t.url == NULL) {
		target_clear(&t);
		return err_set(e, E_NO_RESPONDER, "the %s certificate names no "
		    "OCSP responder (no OCSP URI in its Authority Information "
		    "Access)", name);
	}
	json_decref(state_read(r->n, id, &rev));
	if (job_start(r->n, r, &t, &s, rev, e) == -1)
		return -1;
	r->in_job = 1;
	api_hold(r);
	return API_ASYNC;
}

/* ---- alerts ---- */

json_t *
ocsp_alert_items(struct node *n, int revoked)
{
	struct ocsp_settings	 s;
	struct target		 t;
	json_t			*set, *out = json_array(), *doc;
	size_t			 i;
	time_t			 since;

	if ((set = settings_read(n, NULL, NULL)) == NULL)
		return out;
	settings_of(set, &s);
	json_decref(set);
	for (i = 0; s.on && i < NCERTS; i++) {
		int id = ocsp_certs[i];
		since = 0;
		if (target_read(n, id, &t, NULL) == -1)
			continue;
		if (revoked) {
			doc = staple_read(n, id);
			if (staple_is_for(doc, t.fp) && json_string_value(
			    json_object_get(doc, "cert_status")) != NULL &&
			    strcmp(json_string_value(json_object_get(doc,
			    "cert_status")), "REVOKED") == 0)
				since = iso_field(doc, "revocation_time");
		} else {
			doc = state_read(n, id, NULL);
			if (staple_is_for(doc, t.fp) && json_integer_value(
			    json_object_get(doc, "tries")) >= s.max_tries)
				since = iso_field(doc, "first_failure");
		}
		json_decref(doc);
		target_clear(&t);
		if (since > 0)
			json_array_append_new(out, json_pack("{s:s, s:I}",
			    "name", cert_services[id].name, "hot_since",
			    (json_int_t)since));
	}
	return out;
}
