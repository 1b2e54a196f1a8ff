/*
 * ca.c — the cluster CA's rollover, make-before-break (see ca.h).
 *
 * Three steps, each one store transaction that compares the CA
 * document's revision (so that of nodes acting at once, one acts):
 *   1. publish: a new CA joins the document as "next"; ca.pem on every
 *      node, and /ca.pem, carry both.  Leaves are still issued by the old
 *      one, so a client that has not refreshed its ca.pem sees nothing.
 *   2. switch (at next.at, after the grace period): every leaf the
 *      cluster CA issued is re-issued from the new CA, which becomes the
 *      signing CA; the old certificate stays published as "previous".
 *   3. drop: once every live node serves the re-issued leaves (their
 *      reports say so) and no stored leaf chains to it, "previous" goes.
 * A client that refreshed ca.pem at any time during the grace period
 * trusts both the old leaves and the new ones.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca.h"
#include "certs.h"
#include "events.h"
#include "log.h"
#include "nodes.h"
#include "schema.h"
#include "seal.h"
#include "x509.h"

#define CA_DAYS		3650
#define MAX_GRACE_DAYS	365

/* Why this node's last rollover step failed ("" when it did not): said
 * once in the log, and shown by GET .../ca until a step works. */
static char	ca_error[256];

static void
ca_fingerprint(const char *pem, char *fp)
{
	struct x509_material *m = NULL;

	fp[0] = '\0';
	if (pem != NULL && x509_material_parse(pem, NULL, &m, NULL) == 0)
		x509_material_fingerprint(m, fp);
	x509_material_free(m);
}

/*
 * Step 2 into t: re-issue the cluster CA's leaves from doc's "next",
 * which becomes the signing CA; the old one stays as "previous".  doc is
 * changed in place; versions[] gets the new versions (for a rollout).
 */
static int
ca_switch_into(struct node *n, struct store_txn *t, json_t *doc,
    const char *who, json_t *list, struct err *e)
{
	json_t		*next = json_object_get(doc, "next");
	const char	*ncert = json_string_value(json_object_get(next, "cert"));
	const char	*nkey = json_string_value(json_object_get(next, "key"));
	char		 oldfp[100], newfp[100], *plain;
	int		 rc;

	if (ncert == NULL || nkey == NULL)
		return err_set(e, E_STORE, "the new cluster CA is damaged in "
		    "the store");
	/* nkey stays as stored (sealed) in the document; the issuing
	 * needs it open. */
	if ((plain = unseal_text(nkey, e)) == NULL)
		return -1;
	rc = certs_reissue_into(n, t, ncert, plain, json_string_value(
	    json_object_get(doc, "cert")), who, list, e);
	seal_free(plain);
	if (rc == -1)
		return -1;
	ca_fingerprint(json_string_value(json_object_get(doc, "cert")),
	    oldfp);
	ca_fingerprint(ncert, newfp);
	json_object_set(doc, "previous", json_object_get(doc, "cert"));
	json_object_set_new(doc, "cert", json_string(ncert));
	json_object_set_new(doc, "key", json_string(nkey));
	json_object_del(doc, "next");
	events_txn_add(n, t, "ca_rollover_switched", "INFO", json_pack("{s:s, "
	    "s:s, s:O, s:s}", "old_fingerprint_sha256", oldfp,
	    "new_fingerprint_sha256", newfp, "reissued", list, "user", who));
	log_audit("%s: the cluster CA %s now signs; %zu certificate(s) "
	    "re-issued from it; %s stays published until nothing served "
	    "chains to it", who, newfp, json_array_size(list), oldfp);
	return 0;
}

/* What a parked rotate answers with: the CA as it is now. */
static int
ca_answer(struct api_req *r, int all_ok, json_t *nodes, struct err *e)
{
	if ((r->resp = ca_describe_json(r->n, e)) == NULL)
		return -1;
	json_object_set(r->resp, "nodes", nodes);
	if (!all_ok)
		return err_set(e, E_NOT_ALL_NODES, "the new CA is stored, but "
		    "not every node confirmed it publishes it yet; they will "
		    "converge (it is not a failure to retry)");
	return 0;
}

int
ca_rotate(struct api_req *r, double grace_days, int now, struct err *e)
{
	struct node		*n = r->n;
	struct store_txn	*t = NULL;
	struct rollout_want	 w;
	json_t			*doc = NULL, *cdoc = NULL, *list = NULL;
	const char		*fqdn;
	char			*cert = NULL, *key = NULL, *cn = NULL;
	char			*sealed;
	char			 at[ISO_TIME_LEN], stamp[ISO_TIME_LEN];
	char			 oldfp[100], newfp[100];
	int64_t			 rev;
	time_t			 t_at;
	int			 rc = -1;

	memset(&w, 0, sizeof(w));
	if (now && grace_days != 0)
		return err_set(e, E_INVALID_SCHEMA, "\"now\": true re-issues at "
		    "once: give it with \"grace_days\": 0 (or leave now out)");
	if (!now && !(grace_days > 0 && grace_days <= MAX_GRACE_DAYS))
		return err_set(e, E_INVALID_SCHEMA, "grace_days must be more "
		    "than 0 and at most %d (fractions allowed), or 0 with "
		    "\"now\": true to re-issue at once (clients that have not "
		    "fetched the new ca.pem then fail to verify)",
		    MAX_GRACE_DAYS);
	if ((doc = schema_get(n->store, schema_key(SK_CA), &rev, e)) == NULL ||
	    (cdoc = schema_get(n->store, schema_key(SK_CLUSTER), NULL, e)) ==
	    NULL)
		goto out;
	if (json_object_get(doc, "next") != NULL ||
	    json_object_get(doc, "previous") != NULL) {
		err_set(e, E_CONFLICT, "a CA rollover is in progress (GET "
		    "/v1/cluster/certificates/ca shows where it is); start the "
		    "next one once it has completed");
		goto out;
	}
	fqdn = json_string_value(json_object_get(cdoc, "name"));
	iso_time(time(NULL), stamp);
	/* A name of its own, so that people and tools can tell the two
	 * apart in a bundle. */
	if (asprintf(&cn, "%s cluster CA %s", fqdn ? fqdn : "moat", stamp) ==
	    -1 || (t = store_txn_new()) == NULL ||
	    (list = json_array()) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	if (x509_ca_create(cn, CA_DAYS, &cert, &key, e) == -1)
		goto out;
	t_at = time(NULL) + (time_t)(grace_days * 86400.0);
	iso_time(t_at, at);
	ca_fingerprint(json_string_value(json_object_get(doc, "cert")),
	    oldfp);
	ca_fingerprint(cert, newfp);
	if ((sealed = schema_seal_key(key)) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	json_object_set_new(doc, "next", json_pack("{s:s, s:s, s:s, s:s}",
	    "cert", cert, "key", sealed, "at", at, "started", stamp));
	seal_free(sealed);
	store_txn_cmp(t, schema_key(SK_CA), rev);
	events_txn_add(n, t, "ca_rollover_started", "INFO", json_pack("{s:s, "
	    "s:s, s:s, s:s}", "old_fingerprint_sha256", oldfp,
	    "new_fingerprint_sha256", newfp, "reissue_at", at, "user",
	    r->who));
	if (now && ca_switch_into(n, t, doc, r->who, list, e) == -1)
		goto out;
	store_txn_put_json(t, schema_key(SK_CA), doc);
	if (store_txn_commit_rev(n->store, t, &w.rev, e) == -1)
		goto out;
	log_audit("%s started a cluster CA rollover: new CA %s published "
	    "with %s; leaves re-issued from it %s%s", r->who, newfp, oldfp,
	    now ? "now" : "at ", now ? "" : at);
	/* Answered once every node publishes the new CA (and, with now,
	 * serves the re-issued leaves). */
	rc = api_park(r, &w, ca_answer);
out:
	free(cn);
	free(cert);
	x509_pem_free(key);
	json_decref(list);
	json_decref(doc);
	json_decref(cdoc);
	store_txn_free(t);
	return rc;
}

/* One CA certificate as answers show it, with its role. */
static void
ca_add(json_t *arr, const char *pem, const char *role)
{
	struct x509_material	*m = NULL;
	json_t			*d;

	if (pem == NULL || x509_material_parse(pem, NULL, &m, NULL) == -1)
		return;
	if ((d = x509_material_describe(m)) != NULL) {
		json_object_set_new(d, "role", json_string(role));
		json_object_set_new(d, "expires_in_seconds",
		    json_integer(x509_material_seconds_left(m)));
		json_array_append_new(arr, d);
	}
	x509_material_free(m);
}

json_t *
ca_describe_json(struct node *n, struct err *e)
{
	json_t		*doc, *arr, *out, *next;
	char		*bundle;
	const char	*state;

	if ((doc = schema_get(n->store, schema_key(SK_CA), NULL, e)) == NULL)
		return NULL;
	next = json_object_get(doc, "next");
	arr = json_array();
	ca_add(arr, json_string_value(json_object_get(doc, "cert")),
	    "signing");
	ca_add(arr, json_string_value(json_object_get(next, "cert")), "next");
	ca_add(arr, json_string_value(json_object_get(doc, "previous")),
	    "previous");
	state = next != NULL ? "publishing" : json_object_get(doc,
	    "previous") != NULL ? "switched" : "none";
	bundle = ca_doc_bundle(doc);
	out = json_pack("{s:s, s:o, s:{s:s, s:s?, s:s?}, s:s?}", "name", "ca",
	    "certificates", arr, "rollover", "state", state, "reissue_at",
	    json_string_value(json_object_get(next, "at")), "last_error",
	    ca_error[0] != '\0' && strcmp(state, "none") != 0 ? ca_error :
	    NULL, "pem", bundle);
	free(bundle);
	json_decref(doc);
	if (out == NULL)
		err_set(e, E_INTERNAL, "out of memory");
	return out;
}

/* 1 when every live node reports serving each certificate's stored
 * version, and none of those was issued by prev_pem. */
static int
ca_previous_unused(struct node *n, const char *prev_pem)
{
	struct x509_material	*prev = NULL, *m;
	struct cert_doc		 cd;
	char			 key[SCHEMA_KEY_MAX];
	json_t			*nodes, *nd, *doc;
	size_t			 k;
	int			 i, ok = 1;

	if (x509_material_parse(prev_pem, NULL, &prev, NULL) == -1)
		return 1;
	if ((nodes = nodes_list_json(n, 0, NULL)) == NULL) {
		x509_material_free(prev);
		return 0;
	}
	for (i = 0; ok && i < CERT__COUNT; i++) {
		doc = schema_get(n->store, schema_key_of(SK_CERT, i, key), NULL,
		    NULL);
		if (doc == NULL || cert_doc_decode(doc, &cd, NULL) == -1) {
			json_decref(doc);
			ok = 0;
			break;
		}
		m = NULL;
		if (x509_material_parse(cd.certificate, NULL, &m, NULL) == 0 &&
		    x509_material_issued_by(m, prev))
			ok = 0;
		x509_material_free(m);
		json_array_foreach(nodes, k, nd) {
			json_t *v = json_object_get(json_object_get(
			    json_object_get(nd, "certificates"),
			    cert_services[i].name), "version");
			if (strcmp(json_string_value(json_object_get(nd,
			    "status")), "active") == 0 &&
			    json_integer_value(v) != cd.version)
				ok = 0;
		}
		json_decref(doc);
	}
	json_decref(nodes);
	x509_material_free(prev);
	return ok;
}

void
ca_tick(struct node *n)
{
	struct store_txn	*t = NULL;
	struct err		 e = { 0 };
	json_t			*doc, *next, *list = NULL;
	const char		*prev;
	char			 fp[100];
	int64_t			 rev;
	time_t			 due;
	int			 changed = 0;

	if ((doc = schema_get(n->store, schema_key(SK_CA), &rev, NULL)) ==
	    NULL)
		return;
	next = json_object_get(doc, "next");
	prev = json_string_value(json_object_get(doc, "previous"));
	if ((t = store_txn_new()) == NULL || (list = json_array()) == NULL)
		goto out;
	if (next != NULL && (iso_parse(json_string_value(json_object_get(next,
	    "at")), 0, &due) == -1 || time(NULL) >= due)) {
		if (ca_switch_into(n, t, doc, "CA rollover", list, &e) == -1) {
			if (strcmp(ca_error, err_msg(&e)) != 0)
				log_error("CA rollover: cannot re-issue the "
				    "certificates from the new CA: %s; retrying",
				    err_msg(&e));
			snprintf(ca_error, sizeof(ca_error), "%s", err_msg(&e));
			goto out;
		}
		changed = 1;
	} else if (next == NULL && prev != NULL &&
	    ca_previous_unused(n, prev)) {
		ca_fingerprint(prev, fp);
		json_object_del(doc, "previous");
		events_txn_add(n, t, "ca_rollover_completed", "INFO", json_pack(
		    "{s:s}", "dropped_fingerprint_sha256", fp));
		log_audit("CA rollover complete: every node serves certificates "
		    "of the new CA; the old CA %s leaves ca.pem", fp);
		changed = 1;
	}
	if (!changed)
		goto out;
	store_txn_cmp(t, schema_key(SK_CA), rev);
	store_txn_put_json(t, schema_key(SK_CA), doc);
	/* Another node doing the same step at once makes this compare
	 * fail: it did it, nothing to say. */
	if (store_txn_commit(n->store, t, &e) == -1 && e.code != E_CONFLICT) {
		if (strcmp(ca_error, err_msg(&e)) != 0)
			log_error("CA rollover step failed: %s", err_msg(&e));
		snprintf(ca_error, sizeof(ca_error), "%s", err_msg(&e));
	} else
		ca_error[0] = '\0';
out:
	err_clear(&e);
	json_decref(list);
	json_decref(doc);
	store_txn_free(t);
}
