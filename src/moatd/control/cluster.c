/* cluster.c — policy changes, validated before they are stored. */
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
#include "apply.h"
#include "cluster.h"
#include "events.h"
#include "jobs.h"
#include "log.h"
#include "mtls.h"
#include "nodes.h"
#include "schema.h"
#include "seal.h"
#include "x509.h"

/* The settable fields, in one table: name, and which check applies. */
enum field_kind { F_VERSION, F_CIPHER_LIST, F_CIPHERSUITES, F_ALERTS };
static const struct {
	const char	*name;
	enum field_kind	 kind;
} cluster_fields[] = {
	{ "min_control_TLS_version",	F_VERSION },
	{ "min_data_TLS_version",	F_VERSION },
	{ "control_cipher_suites",	F_CIPHER_LIST },
	{ "data_cipher_list",		F_CIPHER_LIST },
	{ "data_cipher_suites_tls_1_3",	F_CIPHERSUITES },
	{ "alert_settings",		F_ALERTS },	/* alerts.c checks it */
};
#define NFIELDS (sizeof(cluster_fields) / sizeof(cluster_fields[0]))

static int
cluster_check_field(const char *key, json_t *v, struct err *e)
{
	size_t	 i;
	int	 ver, rc;

	if ((rc = mtls_check_field(key, v, e)) != 1)
		return rc;
	for (i = 0; i < NFIELDS; i++) {
		if (strcmp(cluster_fields[i].name, key) != 0)
			continue;
		if (cluster_fields[i].kind == F_ALERTS)
			return 0;
		if (!json_is_string(v))
			return err_set(e, E_INVALID_SCHEMA, "%s must be a "
			    "string", key);
		switch (cluster_fields[i].kind) {
		case F_VERSION:
			if (tls_version_parse(json_string_value(v), &ver, e))
				return err_set(e, E_INVALID_TLS_VERSION,
				    "%s: \"%.16s\" is not supported; allowed "
				    "values are \"1.2\" and \"1.3\"", key,
				    json_string_value(v));
			return 0;
		case F_CIPHER_LIST:
			return tls_cipher_list_check(json_string_value(v), e);
		case F_CIPHERSUITES:
			return tls_ciphersuites_check(json_string_value(v), e);
		case F_ALERTS:
			return 0;
		}
	}
	if (strcmp(key, "name") == 0 || strcmp(key, "created_at") == 0 ||
	    strcmp(key, "created_time") == 0 ||
	    strcmp(key, "control_cipher_suites_tls_1_3") == 0)
		return err_set(e, E_INVALID_SCHEMA, "%s is read-only", key);
	return err_set(e, E_INVALID_SCHEMA, "unknown field \"%.64s\"; settable: "
	    "min_control_TLS_version, min_data_TLS_version, "
	    "control_cipher_suites, data_cipher_list, "
	    "data_cipher_suites_tls_1_3, alert_settings, "
	    "mtls_certificate_authentication, "
	    "mtls_client_cert_subject_validation_type, "
	    "mtls_authorized_subjects, mtls_crl, "
	    "control_plane_basic_authentication", key);
}

json_t *
cluster_get_json(struct node *n, struct err *e)
{
	struct cluster_doc	 c;
	json_t			*doc, *out;

	if ((doc = schema_get(n->store, schema_key(SK_CLUSTER), NULL, e)) ==
	    NULL)
		return NULL;
	if (cluster_doc_decode(doc, &c, e) == -1) {
		json_decref(doc);
		return NULL;
	}
	out = cluster_doc_public(&c);
	if (out != NULL) {
		json_object_set_new(out, "alert_settings",
		    alerts_settings_public(doc));
		mtls_public(doc, out);
	}
	json_decref(doc);
	cluster_doc_clear(&c);
	return out;
}

/*
 * Every stored certificate must still complete a handshake under p; the
 * transaction t compares each certificate's revision, so that none can
 * change between this check and the commit.
 */
static int
cluster_trial(struct node *n, const struct cluster_doc *c,
    struct store_txn *t, struct err *e)
{
	struct tls_policy	 tp;
	struct tlsctx		*ctx;
	struct x509_material	*m;
	struct cert_doc		 cd;
	char			 key[SCHEMA_KEY_MAX];
	json_t			*doc;
	char			*plain = NULL;
	int64_t			 rev;
	int			 i, rc;

	for (i = 0; i < CERT__COUNT; i++) {
		if ((doc = schema_get(n->store, schema_key_of(SK_CERT, i, key),
		    &rev, e)) == NULL)
			return -1;
		m = NULL;
		ctx = NULL;
		rc = cert_doc_decode(doc, &cd, e) == 0 &&
		    (plain = unseal_text(cd.key, e)) != NULL &&
		    x509_material_parse(cd.certificate, plain, &m, e) == 0 &&
		    (ctx = tlsctx_server_new(m, cluster_tls_policy(&c->policy,
		    cert_services[i].policy, &tp), e)) != NULL &&
		    tlsctx_trial_handshake(ctx, m, c->name, e) == 0 ? 0 : -1;
		tlsctx_unref(ctx);
		x509_material_free(m);
		seal_free(plain);
		plain = NULL;
		json_decref(doc);
		if (rc == -1) {
			char *msg = e ? e->msg : NULL;
			if (e != NULL) {
				e->msg = NULL;
				err_set(e, E_HANDSHAKE, "the %s certificate "
				    "would not work under this policy: %s",
				    cert_services[i].name, msg ? msg : "");
			}
			free(msg);
			return -1;
		}
		if (t != NULL)
			store_txn_cmp(t, key, rev);
	}
	return 0;
}

/* Sessions of one kind below min, from a {"TLSv1.2": n, ...} count. */
static json_t *
below(json_t *counts, int min, int raised, int *total)
{
	json_t		*out = json_object(), *v;
	const char	*ver;
	int		 num;

	if (!raised)
		return out;
	json_object_foreach(counts, ver, v) {
		num = (int)json_integer_value(v);
		if (num == 0 || (strcmp(ver, "TLSv1.2") == 0 ?
		    TLS_V12 : TLS_V13) >= min)
			continue;
		json_object_set_new(out, ver, json_integer(num));
		*total += num;
	}
	return out;
}

/*
 * What raising the minimums would close, per node: this node counts its
 * sessions now; the others' counts come from their reports (refreshed
 * every few seconds, hence "as_of").
 */
/* A dry run between its validation and the count of this node's
 * sessions. */
struct dry_run {
	json_t	*cluster;	/* the object as it would be */
	json_t	*changes;
	int	 old_ctl, old_data, ctl, data;
};

static void
dry_run_free(void *p)
{
	struct dry_run *d = p;

	if (d == NULL)
		return;
	json_decref(d->cluster);
	json_decref(d->changes);
	free(d);
}

static json_t *
cluster_would_close(struct node *n, const struct dry_run *d, json_t *mine)
{
	json_t	*nodes = nodes_list_json(n, 0, NULL), *out = json_array();
	json_t	*nd, *sess;
	char	*now = iso_now();
	size_t	 i;
	int	 total = 0;
	int	 rc_ctl = d->ctl > d->old_ctl;
	int	 rc_data = d->data > d->old_data;

	json_array_foreach(nodes, i, nd) {
		int uid = (int)json_integer_value(json_object_get(nd, "uid"));
		const char *asof;
		if (strcmp(json_string_value(json_object_get(nd, "status")),
		    "active") != 0)
			continue;
		if (uid == n->uid) {
			sess = mine;
			asof = now;
		} else {
			sess = json_object_get(nd, "sessions");
			asof = json_string_value(json_object_get(sess, "as_of"));
		}
		json_array_append_new(out, json_pack("{s:i, s:O?, s:o, s:o, "
		    "s:o, s:o, s:s?}", "uid", uid, "addr", json_object_get(nd,
		    "addr"), "api", below(json_object_get(sess, "api"), d->ctl,
		    rc_ctl, &total), "cm", below(json_object_get(sess, "cm"),
		    d->ctl, rc_ctl, &total), "metrics_exporter",
		    below(json_object_get(sess, "metrics"), d->ctl, rc_ctl,
		    &total), "proxy", below(json_object_get(sess, "proxy"),
		    d->data, rc_data, &total), "as_of", asof));
	}
	json_decref(nodes);
	free(now);
	return json_pack("{s:i, s:o}", "total", total, "nodes", out);
}

/* This node's sessions are counted: answer the dry run. */
static void
cluster_dry_counted(json_t *mine, void *arg)
{
	struct api_req	*r = arg;
	struct dry_run	*d = r->state;
	struct err	 e = { 0 };
	int		 rc = 0;

	r->in_job = 0;
	r->resp = json_pack("{s:b, s:O, s:O, s:o}", "dry_run", 1, "cluster",
	    d->cluster, "changes", d->changes, "would_close",
	    cluster_would_close(r->n, d, mine));
	if (r->resp == NULL)
		rc = err_set(&e, E_INTERNAL, "out of memory");
	api_finish(r, rc, &e);
}

/* Once every live node applied it: the cluster object, the sessions
 * closed (summed over the nodes' reports for this change), the nodes. */
static int
cluster_answer(struct api_req *r, int all_ok, json_t *nodes, struct err *e)
{
	json_t	*reports = nodes_list_json(r->n, 0, NULL), *nd;
	int64_t	 rev = *(int64_t *)r->state;
	size_t	 i;
	int	 closed = 0;

	json_array_foreach(reports, i, nd) {
		json_t *cs = json_object_get(nd, "closed_sessions");
		if (json_integer_value(json_object_get(cs, "policy_rev")) == rev)
			closed += (int)(json_integer_value(json_object_get(cs,
			    "api")) + json_integer_value(json_object_get(cs,
			    "proxy")));
	}
	json_decref(reports);
	if ((r->resp = cluster_get_json(r->n, e)) == NULL)
		return -1;
	json_object_set_new(r->resp, "closed_sessions", json_integer(closed));
	json_object_set(r->resp, "nodes", nodes);
	if (!all_ok)
		return err_set(e, E_NOT_ALL_NODES, "the policy is stored, but not "
		    "every node confirmed it applies it yet; they will converge "
		    "(it is not a failure to retry)");
	return 0;
}

int
cluster_update(struct api_req *r, struct err *e)
{
	struct node		*n = r->n;
	struct cluster_doc	 c, old;
	struct store_txn	*t = NULL;
	struct rollout_want	 w;
	json_t			*body, *doc = NULL, *v, *olddoc = NULL;
	json_t			*changes = NULL;
	const char		*key;
	int64_t			 rev, *revp;
	int			 rc = -1;

	memset(&c, 0, sizeof(c));
	memset(&old, 0, sizeof(old));
	memset(&w, 0, sizeof(w));
	if ((body = api_body(r, 0, e)) == NULL)
		return -1;
	if (json_object_size(body) == 0)
		return err_set(e, E_INVALID_SCHEMA, "expected a JSON object "
		    "with at least one field to change");
	json_object_foreach(body, key, v)
		if (cluster_check_field(key, v, e) == -1)
			return -1;
	if ((doc = schema_get(n->store, schema_key(SK_CLUSTER), &rev, e)) ==
	    NULL)
		return -1;
	olddoc = json_deep_copy(doc);
	json_object_update_existing(doc, body);
	/* Fields a document from before them may lack. */
	json_object_foreach(body, key, v)
		if (mtls_check_field(key, v, NULL) == 0)
			json_object_set(doc, key, v);
	if ((v = json_object_get(body, "alert_settings")) != NULL) {
		json_t *merged = alerts_settings_merge(olddoc, v, e);
		if (merged == NULL)
			goto out;
		/* Stored whole: a document from before alert_settings gets
		 * every alert's settings the first time one is set. */
		json_object_set_new(doc, "alert_settings", merged);
		if (json_object_get(olddoc, "alert_settings") == NULL)
			json_object_set_new(olddoc, "alert_settings",
			    alerts_settings_public(olddoc));
	}
	if (cluster_doc_decode(olddoc, &old, e) == -1 ||
	    cluster_doc_decode(doc, &c, e) == -1)
		goto out;
	if ((t = store_txn_new()) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	if (cluster_trial(n, &c, t, e) == -1 ||
	    mtls_check_doc(n, doc, t, e) == -1)
		goto out;
	changes = json_object();
	json_object_foreach(body, key, v)
		if (!json_equal(json_object_get(olddoc, key),
		    json_object_get(doc, key)))
			json_object_set_new(changes, key, json_pack(
			    "{s:O*, s:O*}", "from", json_object_get(olddoc,
			    key), "to", json_object_get(doc, key)));
	if (r->dry_run) {
		struct dry_run *d = calloc(1, sizeof(*d));
		if (d == NULL) {
			err_set(e, E_INTERNAL, "out of memory");
			goto out;
		}
		d->cluster = cluster_doc_public(&c);
		d->changes = json_incref(changes);
		d->old_ctl = old.policy.min_control;
		d->old_data = old.policy.min_data;
		d->ctl = c.policy.min_control;
		d->data = c.policy.min_data;
		r->state = d;
		r->state_free = dry_run_free;
		r->in_job = 1;
		api_hold(r);
		if (apply_sessions_async(n, cluster_dry_counted, r) == -1) {
			r->in_job = 0;
			err_set(e, E_INTERNAL, "out of memory");
			goto out;
		}
		rc = API_ASYNC;
		goto out;
	}
	/* created_at: the first releases' name; keep created_time only. */
	if (json_object_get(doc, "created_time") == NULL)
		json_object_set(doc, "created_time", json_object_get(doc,
		    "created_at"));
	json_object_del(doc, "created_at");
	store_txn_cmp(t, schema_key(SK_CLUSTER), rev);
	store_txn_put_json(t, schema_key(SK_CLUSTER), doc);
	if (json_object_size(changes) > 0)
		events_txn_add(n, t, "cluster_settings_changed", "INFO",
		    json_pack("{s:s, s:O}", "user", r->who, "changes",
		    changes));
	if (store_txn_commit_rev(n->store, t, &w.rev, e) == -1)
		goto out;
	json_object_foreach(changes, key, v) {
		char *from = json_dumps(json_object_get(v, "from"),
		    JSON_COMPACT | JSON_ENCODE_ANY);
		char *to = json_dumps(json_object_get(v, "to"), JSON_COMPACT |
		    JSON_ENCODE_ANY);
		log_audit("%s changed %s: %s -> %s", r->who, key,
		    from ? from : "?", to ? to : "?");
		free(from);
		free(to);
	}
	jobs_kick(n->jobs);
	if ((revp = malloc(sizeof(*revp))) == NULL) {
		err_set(e, E_INTERNAL, "out of memory; the policy is stored");
		goto out;
	}
	*revp = w.rev;
	r->state = revp;
	r->state_free = free;
	rc = api_park(r, &w, cluster_answer);
out:
	json_decref(changes);
	store_txn_free(t);
	cluster_doc_clear(&c);
	cluster_doc_clear(&old);
	json_decref(olddoc);
	json_decref(doc);
	return rc;
}
