/*
 * alerts.c — RS's certificate expiry alerts (see alerts.h).
 *
 * An alert's state is a function of the store and the clock: the
 * certificates stored (never files on some node's disk) and the
 * cluster's alert_settings.  GET computes it on the spot, so a change is
 * visible at once.  What cannot be computed — when the state last
 * changed — is recorded by alerts_evaluate, which runs on every node:
 * the state record's compare-and-swap lets exactly one node record a
 * transition and its event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alerts.h"
#include "events.h"
#include "log.h"
#include "nodes.h"
#include "certacme.h"
#include "ocsp.h"
#include "schema.h"
#include "x509.h"

#define DEFAULT_THRESHOLD	45	/* days, as RS */
#define MAX_THRESHOLD		3650

enum alert_scope { SCOPE_SERVICE, SCOPE_CA, SCOPE_OCSP_REVOKED,
	SCOPE_OCSP_FAILED, SCOPE_ACME };

/* The alerts moat computes: one table for settings, GET and the tick. */
static const struct alert_def {
	const char		*name;
	enum alert_scope	 scope;
	const char		*what;		/* for events */
} alert_defs[] = {
	{ "cluster_certs_about_to_expire", SCOPE_SERVICE,
	    "a cluster certificate expires soon" },
	{ "node_internal_certs_about_to_expire", SCOPE_CA,
	    "the cluster CA expires soon" },
	{ "cluster_ocsp_status_revoked", SCOPE_OCSP_REVOKED,
	    "the OCSP responder says the proxy certificate is revoked" },
	{ "cluster_ocsp_query_failed", SCOPE_OCSP_FAILED,
	    "the OCSP responder has not answered usefully" },
	{ "cluster_acme_order_failed", SCOPE_ACME,
	    "the last order of a certificate from the ACME CA failed" },
};
#define NALERTS (sizeof(alert_defs) / sizeof(alert_defs[0]))

/* "a, b, c": the names of the table, for messages. */
static const char *
alert_names(void)
{
	static char	buf[512];
	size_t		i;

	if (buf[0] == '\0')
		for (i = 0; i < NALERTS; i++)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
			    "%s%s", i > 0 ? ", " : "", alert_defs[i].name);
	return buf;
}

static const struct alert_def *
alert_def_of(const char *name)
{
	size_t i;

	for (i = 0; i < NALERTS; i++)
		if (strcmp(alert_defs[i].name, name) == 0)
			return &alert_defs[i];
	return NULL;
}

/* ---- settings ---- */

/* days from a stored or given threshold ("45" or 45); -1 when bad. */
static int
threshold_days(const json_t *v)
{
	const char	*s;
	char		*end;
	long		 d;

	if (json_is_integer(v))
		d = (long)json_integer_value(v);
	else if ((s = json_string_value(v)) != NULL && *s >= '0' &&
	    *s <= '9') {
		d = strtol(s, &end, 10);
		if (*end != '\0')
			return -1;
	} else
		return -1;
	return d >= 1 && d <= MAX_THRESHOLD ? (int)d : -1;
}

/* One alert's settings, defaults filled: {enabled, threshold}. */
static json_t *
alert_setting(const json_t *settings, const char *name)
{
	const json_t	*s = json_object_get(settings, name);
	const json_t	*en = json_object_get(s, "enabled");
	int		 days = threshold_days(json_object_get(s, "threshold"));
	char		 buf[16];

	snprintf(buf, sizeof(buf), "%d", days > 0 ? days : DEFAULT_THRESHOLD);
	return json_pack("{s:b, s:s}", "enabled", en == NULL ||
	    json_is_true(en), "threshold", buf);
}

json_t *
alerts_settings_public(const json_t *cluster_doc)
{
	const json_t	*settings = json_object_get(cluster_doc,
			    "alert_settings");
	json_t		*out = json_object();
	size_t		 i;

	for (i = 0; out != NULL && i < NALERTS; i++)
		json_object_set_new(out, alert_defs[i].name,
		    alert_setting(settings, alert_defs[i].name));
	return out;
}

json_t *
alerts_settings_merge(const json_t *cluster_doc, const json_t *body,
    struct err *e)
{
	json_t		*out, *v, *cur;
	const char	*name, *k;
	json_t		*f;

	if (!json_is_object(body))
		return err_set(e, E_INVALID_SCHEMA, "alert_settings must be an "
		    "object of alerts"), NULL;
	json_object_foreach((json_t *)body, name, v) {
		if (alert_def_of(name) == NULL)
			return err_set(e, E_INVALID_SCHEMA, "alert_settings: "
			    "unknown alert \"%.64s\"; known: %s", name,
			    alert_names()), NULL;
		if (!json_is_object(v))
			return err_set(e, E_INVALID_SCHEMA, "alert_settings."
			    "%s must be an object {enabled, threshold}", name),
			    NULL;
		json_object_foreach(v, k, f) {
			if (strcmp(k, "enabled") == 0 && json_is_boolean(f))
				continue;
			if (strcmp(k, "threshold") == 0 &&
			    threshold_days(f) > 0)
				continue;
			if (strcmp(k, "enabled") == 0)
				return err_set(e, E_INVALID_SCHEMA,
				    "alert_settings.%s.enabled must be true or "
				    "false", name), NULL;
			if (strcmp(k, "threshold") == 0)
				return err_set(e, E_INVALID_SCHEMA,
				    "alert_settings.%s.threshold must be a "
				    "number of days from 1 to %d", name,
				    MAX_THRESHOLD), NULL;
			return err_set(e, E_INVALID_SCHEMA, "alert_settings."
			    "%s: unknown field \"%.64s\" (enabled, threshold)",
			    name, k), NULL;
		}
	}
	if ((out = alerts_settings_public(cluster_doc)) == NULL)
		return err_set(e, E_INTERNAL, "out of memory"), NULL;
	json_object_foreach((json_t *)body, name, v) {
		cur = json_object_get(out, name);
		if ((f = json_object_get(v, "enabled")) != NULL)
			json_object_set(cur, "enabled", f);
		if ((f = json_object_get(v, "threshold")) != NULL) {
			char buf[16];
			snprintf(buf, sizeof(buf), "%d", threshold_days(f));
			json_object_set_new(cur, "threshold", json_string(buf));
		}
	}
	return out;
}

/* ---- evaluation ---- */

/* The certificates an alert watches, each {name, not_after, days_left,
 * issued_by_cluster_ca}. */
static json_t *
alert_certs(struct node *n, enum alert_scope scope, struct err *e)
{
	struct x509_material	*m;
	struct cert_doc		 cd;
	const char		*ca_cert, *ca_key;
	char			 key[SCHEMA_KEY_MAX], na[ISO_TIME_LEN];
	json_t			*out = json_array(), *doc;
	time_t			 t;
	int			 i;

	/* OCSP: the certificates stapled, hot since the revocation or the
	 * first failed query (no threshold applies). */
	if (scope == SCOPE_OCSP_REVOKED || scope == SCOPE_OCSP_FAILED) {
		json_decref(out);
		return ocsp_alert_items(n, scope == SCOPE_OCSP_REVOKED);
	}
	/* ACME: the certificates whose last order failed, hot since the
	 * first failure of the row. */
	if (scope == SCOPE_ACME) {
		json_decref(out);
		return certacme_alert_items(n);
	}
	for (i = 0; out != NULL && i < CERT__COUNT + 1; i++) {
		const char *pem, *name;
		int by_ca = 1;
		if ((scope == SCOPE_CA) != (i == CERT__COUNT))
			continue;
		if (i == CERT__COUNT) {
			name = "ca";
			doc = schema_get(n->store, schema_key(SK_CA), NULL, e);
			if (doc == NULL || ca_doc_decode(doc, &ca_cert, &ca_key,
			    e) == -1)
				goto fail;
			pem = ca_cert;
		} else {
			name = cert_services[i].name;
			doc = schema_get(n->store, schema_key_of(SK_CERT, i,
			    key), NULL, e);
			if (doc == NULL || cert_doc_decode(doc, &cd, e) == -1)
				goto fail;
			pem = cd.certificate;
			by_ca = cd.by_cluster_ca;
		}
		m = NULL;
		if (x509_material_parse(pem, NULL, &m, NULL) == 0) {
			t = x509_material_not_after(m);
			iso_time(t, na);
			json_array_append_new(out, json_pack("{s:s, s:s, s:I, "
			    "s:I, s:I, s:b}", "name", name, "not_after", na,
			    "not_after_epoch", (json_int_t)t, "not_before_epoch",
			    (json_int_t)x509_material_not_before(m),
			    "seconds_left",
			    (json_int_t)x509_material_seconds_left(m),
			    "issued_by_cluster_ca", by_ca));
		}
		x509_material_free(m);
		json_decref(doc);
	}
	return out;
fail:
	json_decref(doc);
	json_decref(out);
	return NULL;
}

static char *
iso_of(time_t t)
{
	char buf[ISO_TIME_LEN];

	return strdup(iso_time(t, buf));
}

static char *
state_key(const char *kind, const char *name, char *buf)
{
	snprintf(buf, SCHEMA_KEY_MAX, "%s%s.%s", schema_prefix(SK_STATE), kind,
	    name);
	return buf;
}

/*
 * One alert, RS's object: {enabled, state, severity, threshold,
 * change_time, change_value}.  change_value says why: the threshold and
 * the certificates within it.  *raw_state: the state regardless of
 * enabled (what the tick records).
 */
static json_t *
alert_eval(struct node *n, const struct alert_def *d, const json_t *settings,
    int ignore_settings, int *raw_state, struct err *e)
{
	json_t		*set = alert_setting(settings, d->name), *certs, *c;
	json_t		*hot, *rec, *out;
	const char	*thr = json_string_value(json_object_get(set,
			    "threshold"));
	long		 window = atol(thr) * 86400L;
	int		 enabled = json_is_true(json_object_get(set, "enabled"));
	int		 state;
	time_t		 since = 0, now = time(NULL);
	char		 key[SCHEMA_KEY_MAX], *ct = NULL;
	size_t		 i;

	if ((certs = alert_certs(n, d->scope, e)) == NULL) {
		json_decref(set);
		return NULL;
	}
	hot = json_array();
	json_array_foreach(certs, i, c) {
		json_int_t left = json_integer_value(json_object_get(c,
		    "seconds_left"));
		time_t t = (time_t)json_integer_value(json_object_get(c,
		    "not_after_epoch")) - window;
		time_t nb = (time_t)json_integer_value(json_object_get(c,
		    "not_before_epoch"));
		if (json_object_get(c, "hot_since") != NULL) {
			t = (time_t)json_integer_value(json_object_get(c,
			    "hot_since"));
			json_object_del(c, "hot_since");
			json_array_append(hot, c);
			if (since == 0 || (t > 0 && t < since))
				since = t > 0 ? t : now;
			continue;
		}
		if (left > window)
			continue;
		json_object_del(c, "not_after_epoch");
		json_object_del(c, "not_before_epoch");
		json_object_set_new(c, "days_left", json_integer(left / 86400));
		json_array_append(hot, c);
		/* It crossed the threshold at not_after - threshold, or
		 * was within it from the start. */
		if (t < nb)
			t = nb;
		if (since == 0 || t < since)
			since = t;
	}
	*raw_state = json_array_size(hot) > 0;
	state = *raw_state && (enabled || ignore_settings);
	/* When it last changed: the recorded transition when it agrees
	 * with what is computed now; otherwise what the certificates
	 * say (on), or now (off: the record will follow). */
	rec = schema_get(n->store, state_key("alert", d->name, key), NULL,
	    NULL);
	if (rec != NULL && json_is_true(json_object_get(rec, "state")) ==
	    *raw_state)
		ct = strdup(json_string_value(json_object_get(rec,
		    "change_time")) ? json_string_value(json_object_get(rec,
		    "change_time")) : "");
	else {
		time_t t = *raw_state ? (since < now ? since : now) : now;
		time_t last;
		/* Never before the change recorded last (the state was the
		 * other one then). */
		if (rec != NULL && iso_parse(json_string_value(json_object_get(
		    rec, "change_time")), 0, &last) == 0 && t < last)
			t = last;
		ct = iso_of(t);
	}
	json_decref(rec);
	out = json_pack("{s:b, s:b, s:s, s:s, s:s?, s:{s:b, s:s, s:o}}",
	    "enabled", enabled, "state", state, "severity", "WARNING",
	    "threshold", thr, "change_time", ct, "change_value", "state",
	    *raw_state, "threshold", thr, "certificates", hot);
	free(ct);
	json_decref(certs);
	json_decref(set);
	if (out == NULL)
		err_set(e, E_INTERNAL, "out of memory");
	return out;
}

json_t *
alerts_json(struct node *n, const char *name, int ignore_settings,
    struct err *e)
{
	const struct alert_def	*d = NULL;
	json_t			*cdoc, *settings, *out, *one;
	size_t			 i;
	int			 raw;

	if (name != NULL && (d = alert_def_of(name)) == NULL)
		return err_set(e, E_NOT_FOUND, "no alert \"%.64s\"; moat "
		    "computes %s", name, alert_names()), NULL;
	if ((cdoc = schema_get(n->store, schema_key(SK_CLUSTER), NULL, e)) ==
	    NULL)
		return NULL;
	settings = json_object_get(cdoc, "alert_settings");
	if (d != NULL) {
		out = alert_eval(n, d, settings, ignore_settings, &raw, e);
		json_decref(cdoc);
		return out;
	}
	out = json_object();
	for (i = 0; out != NULL && i < NALERTS; i++) {
		if ((one = alert_eval(n, &alert_defs[i], settings,
		    ignore_settings, &raw, e)) == NULL) {
			json_decref(out);
			out = NULL;
			break;
		}
		json_object_set_new(out, alert_defs[i].name, one);
	}
	json_decref(cdoc);
	return out;
}

/*
 * Record a state change of key (kind.name) with its event, once for the
 * whole cluster: the transaction compares the record's revision, so of
 * nodes seeing the same change at once, one writes and the others'
 * compare fails.  1: recorded with an event; 0: nothing to do, lost the
 * race, or a silent first record of the normal state.
 */
static int
state_transition(struct node *n, const char *kind, const char *name,
    int state, int normal, const char *change_time, const char *type,
    const char *severity, json_t *fields)
{
	struct store_txn	*t;
	struct err		 e = { 0 };
	char			 key[SCHEMA_KEY_MAX];
	int64_t			 rev = 0;
	json_t			*rec, *nrec;
	int			 had, rc = 0;

	rec = schema_get(n->store, state_key(kind, name, key), &rev, NULL);
	had = rec != NULL;
	if (had && json_is_true(json_object_get(rec, "state")) == state) {
		json_decref(rec);
		json_decref(fields);
		return 0;
	}
	json_decref(rec);
	if (!had)
		rev = 0;
	nrec = json_pack("{s:b, s:s}", "state", state, "change_time",
	    change_time);
	if ((t = store_txn_new()) == NULL || nrec == NULL) {
		json_decref(nrec);
		json_decref(fields);
		store_txn_free(t);
		return 0;
	}
	store_txn_cmp(t, key, rev);
	store_txn_put_json(t, key, nrec);
	/* A first record of the normal state (a node up, an alert off)
	 * is no event. */
	if (had || state != normal)
		events_txn_add(n, t, type, severity, fields);
	else
		json_decref(fields);
	if (store_txn_commit(n->store, t, &e) == 0)
		rc = had || state != normal;
	else if (e.code != E_CONFLICT)
		log_error("cannot record %s %s: %s", kind, name, err_msg(&e));
	err_clear(&e);
	store_txn_free(t);
	json_decref(nrec);
	return rc;
}

void
alerts_evaluate(struct node *n)
{
	struct err	 e = { 0 };
	json_t		*cdoc, *one, *nodes, *nd;
	size_t		 i;
	int		 raw;

	if (n->store == NULL || n->uid <= 0)
		return;
	if ((cdoc = schema_get(n->store, schema_key(SK_CLUSTER), NULL, &e)) ==
	    NULL) {
		err_clear(&e);
		return;
	}
	for (i = 0; i < NALERTS; i++) {
		one = alert_eval(n, &alert_defs[i], json_object_get(cdoc,
		    "alert_settings"), 1, &raw, &e);
		if (one == NULL) {
			err_clear(&e);
			continue;
		}
		if (state_transition(n, "alert", alert_defs[i].name, raw, 0,
		    json_string_value(json_object_get(one, "change_time")),
		    alert_defs[i].name, raw ? "WARNING" : "INFO",
		    json_pack("{s:b, s:s, s:O, s:b}", "state", raw,
		    "description", raw ? alert_defs[i].what : "cleared",
		    "certificates", json_object_get(json_object_get(one,
		    "change_value"), "certificates"), "enabled",
		    json_is_true(json_object_get(one, "enabled")))))
			log_info("alert %s %s", alert_defs[i].name, raw ?
			    "raised" : "cleared");
		json_decref(one);
	}
	json_decref(cdoc);
	/* Nodes going down and coming back, from their presence keys. */
	if ((nodes = nodes_list_json(n, 0, &e)) == NULL) {
		err_clear(&e);
		return;
	}
	json_array_foreach(nodes, i, nd) {
		char	 name[16], *now = iso_of(time(NULL));
		int	 uid = (int)json_integer_value(json_object_get(nd, "uid"));
		int	 up = strcmp(json_string_value(json_object_get(nd,
			    "status")), "active") == 0;
		snprintf(name, sizeof(name), "%d", uid);
		if (now != NULL && state_transition(n, "node", name, up, 1, now,
		    up ? "node_up" : "node_down", up ? "INFO" : "WARNING",
		    json_pack("{s:i, s:O?}", "uid", uid, "addr",
		    json_object_get(nd, "addr"))))
			log_info("node %d is %s", uid, up ? "up" : "down");
		free(now);
	}
	json_decref(nodes);
}

void
alerts_node_stopping(struct node *n)
{
	char	 name[16], *now = iso_of(time(NULL));

	snprintf(name, sizeof(name), "%d", n->uid);
	if (now != NULL)
		state_transition(n, "node", name, 0, 1, now, "node_down",
		    "WARNING", json_pack("{s:i, s:s, s:s}", "uid", n->uid,
		    "addr", n->cfg.addr, "reason", "stopped"));
	free(now);
}
