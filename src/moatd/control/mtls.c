/*
 * mtls.c — certificate sign-in to the API and UI.
 *
 * The cluster document holds it all: mtls_trusted_ca (the CAs, no key),
 * mtls_certificate_authentication, mtls_client_cert_subject_validation_type,
 * mtls_authorized_subjects, mtls_crl (moat's own: revocation, which RS
 * does not check) and control_plane_basic_authentication.  The ports ask
 * for a certificate while sign-in by certificate is on; each request
 * checks what its connection's certificate proves against the document
 * of that moment, so a new CRL or a removed CA applies to connections
 * already open.
 */
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "log.h"
#include "mtls.h"
#include "rollout.h"
#include "schema.h"
#include "tlsctx.h"
#include "x509.h"

static const char *const subject_types[] = { "disabled", "san_cn",
	"full_subject", NULL };

static int
bool_of(const json_t *doc, const char *field, int dflt)
{
	json_t *v = json_object_get(doc, field);

	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static const char *
str_of(const json_t *doc, const char *field)
{
	return json_string_value(json_object_get(doc, field));
}

int
mtls_check_field(const char *key, json_t *v, struct err *e)
{
	size_t i;

	if (strcmp(key, "mtls_certificate_authentication") == 0 ||
	    strcmp(key, "control_plane_basic_authentication") == 0) {
		if (!json_is_boolean(v))
			return err_set(e, E_INVALID_SCHEMA, "%s must be true "
			    "or false", key);
		return 0;
	}
	if (strcmp(key, "mtls_client_cert_subject_validation_type") == 0) {
		for (i = 0; json_is_string(v) && subject_types[i] != NULL; i++)
			if (strcmp(json_string_value(v), subject_types[i]) == 0)
				return 0;
		return err_set(e, E_INVALID_SCHEMA, "%s must be \"disabled\", "
		    "\"san_cn\" or \"full_subject\"", key);
	}
	if (strcmp(key, "mtls_authorized_subjects") == 0)
		return schema_subjects_check(v, key, e);
	if (strcmp(key, "mtls_crl") == 0) {
		if (!json_is_string(v))
			return err_set(e, E_INVALID_SCHEMA, "mtls_crl must be "
			    "PEM text (\"\" for none)");
		if (*json_string_value(v) == '\0')
			return 0;
		return tls_crl_check(json_string_value(v), e);
	}
	return 1;
}

int
mtls_check_doc(struct node *n, json_t *doc, struct store_txn *t,
    struct err *e)
{
	const char	*type = str_of(doc,
			    "mtls_client_cert_subject_validation_type");
	json_t		*users;
	int		 on, ok;

	on = bool_of(doc, "mtls_certificate_authentication", 0);

	if (on && str_of(doc, MTLS_CA_NAME) == NULL)
		return err_set(e, E_INVALID_CONFIG, "mtls_certificate_"
		    "authentication needs the mtls_trusted_ca certificate: "
		    "upload it first (PUT /v1/cluster/update_cert with name "
		    "mtls_trusted_ca and no key)");
	if (type != NULL && strcmp(type, "disabled") != 0 &&
	    json_array_size(json_object_get(doc, "mtls_authorized_subjects"))
	    == 0)
		return err_set(e, E_INVALID_CONFIG, "mtls_client_cert_subject_"
		    "validation_type %s needs mtls_authorized_subjects (at "
		    "least one {\"CN\": ...})", type);
	if (bool_of(doc, "control_plane_basic_authentication", 1))
		return 0;
	if (!on)
		return err_set(e, E_LOCKOUT, "control_plane_basic_"
		    "authentication false needs "
		    "mtls_certificate_authentication true: without passwords, "
		    "certificates are the only way to sign in");
	if ((users = schema_list(n->store, SK_USER, e)) == NULL)
		return -1;
	ok = users_cmp_cert_admins(t, users, 0) > 0;
	json_decref(users);
	if (!ok)
		return err_set(e, E_LOCKOUT, "control_plane_basic_"
		    "authentication false needs an admin who signs in with a "
		    "certificate (a user with auth_method certificate and role "
		    "admin); create one and try signing in with it first");
	return 0;
}

void
mtls_public(const json_t *doc, json_t *out)
{
	json_t *subj = json_object_get(doc, "mtls_authorized_subjects");

	json_object_set_new(out, "mtls_certificate_authentication",
	    json_boolean(bool_of(doc, "mtls_certificate_authentication", 0)));
	json_object_set_new(out, "mtls_client_cert_subject_validation_type",
	    json_string(str_of(doc, "mtls_client_cert_subject_validation_type")
	    ? str_of(doc, "mtls_client_cert_subject_validation_type") :
	    "disabled"));
	json_object_set_new(out, "mtls_authorized_subjects", subj != NULL ?
	    json_deep_copy(subj) : json_array());
	json_object_set_new(out, "mtls_crl", json_string(str_of(doc,
	    "mtls_crl") ? str_of(doc, "mtls_crl") : ""));
	json_object_set_new(out, "control_plane_basic_authentication",
	    json_boolean(bool_of(doc, "control_plane_basic_authentication",
	    1)));
}

static json_t *
cluster_doc_read(struct node *n, int64_t *rev, struct err *e)
{
	return schema_get(n->store, schema_key(SK_CLUSTER), rev, e);
}

int
mtls_basic_allowed(struct node *n, struct err *e)
{
	json_t	*doc;
	int	 ok;

	if ((doc = cluster_doc_read(n, NULL, e)) == NULL)
		return -1;
	ok = bool_of(doc, "control_plane_basic_authentication", 1);
	json_decref(doc);
	return ok;
}

int
mtls_authenticate(struct node *n, struct https *h, struct evhttp_request *req,
    struct auth_user *u, struct err *e)
{
	struct tls_peer_rules	 r;
	struct tls_subject	*subj = NULL;
	const char		**ous = NULL;
	char			 subject[1100];	/* a line's 1024 and more */
	json_t			*doc;
	int			 rc;

	if (h == NULL || (doc = cluster_doc_read(n, NULL, e)) == NULL)
		return h == NULL ? 0 : -1;
	memset(&r, 0, sizeof(r));
	r.trust_pem = schema_mtls_ask_pem(doc);
	r.crl_pem = str_of(doc, "mtls_crl");
	if (r.trust_pem == NULL) {
		json_decref(doc);
		return 0;
	}
	if (schema_subject_rules(doc,
	    "mtls_client_cert_subject_validation_type",
	    "mtls_authorized_subjects", &r.subject_check, &subj, &ous,
	    &r.nsubjects) == -1) {
		rc = err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	r.subjects = subj;
	rc = https_peer_verify(h, req, &r, subject, sizeof(subject), e);
	if (rc == 1 && users_find_by_subject(n, subject, u, e) == -1)
		rc = -1;
out:
	free(subj);
	free(ous);
	json_decref(doc);
	return rc;
}

int
mtls_keep_cert_admin(struct node *n, json_t *docs, int uid,
    struct store_txn *t, struct err *e)
{
	json_t	*doc;
	int64_t	 rev;
	int	 basic;

	if ((doc = cluster_doc_read(n, &rev, e)) == NULL)
		return -1;
	basic = bool_of(doc, "control_plane_basic_authentication", 1);
	json_decref(doc);
	/* The decision holds only while the document says the same. */
	store_txn_cmp(t, schema_key(SK_CLUSTER), rev);
	if (basic || users_cmp_cert_admins(t, docs, uid) > 0)
		return 0;
	return err_set(e, E_LOCKOUT, "user %d is the last admin who signs in "
	    "with a certificate, and passwords are off "
	    "(control_plane_basic_authentication false): make another "
	    "certificate user an admin, or turn passwords on first", uid);
}

/* ---- mtls_trusted_ca ---- */

struct ca_state {
	json_t	*entry;		/* {name, certificates: [...]} */
	int	 single;
};

static void
ca_state_free(void *p)
{
	struct ca_state *s = p;

	if (s != NULL)
		json_decref(s->entry);
	free(s);
}

static int
ca_answer(struct api_req *r, int all_ok, json_t *nodes, struct err *e)
{
	struct ca_state *s = r->state;

	if (s->single)
		r->resp = json_deep_copy(s->entry);
	else
		r->resp = json_pack("{s:[O]}", "certificates", s->entry);
	if (r->resp == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	json_object_set(r->resp, "nodes", nodes);
	if (!all_ok)
		return err_set(e, E_NOT_ALL_NODES, "the change is stored, but "
		    "not every node confirmed it applies it yet; they will "
		    "converge (it is not a failure to retry)");
	return 0;
}

/* Write doc (read at rev) with its event and park r until every live
 * node applies it. */
static int
ca_commit(struct api_req *r, json_t *doc, int64_t rev, const char *type,
    json_t *event, struct ca_state *s, struct err *e)
{
	struct store_txn	*t;
	struct rollout_want	 w;

	memset(&w, 0, sizeof(w));
	if ((t = store_txn_new()) == NULL) {
		json_decref(event);
		ca_state_free(s);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	store_txn_cmp(t, schema_key(SK_CLUSTER), rev);
	store_txn_put_json(t, schema_key(SK_CLUSTER), doc);
	events_txn_add(r->n, t, type, "INFO", event);
	if (store_txn_commit_rev(r->n->store, t, &w.rev, e) == -1) {
		store_txn_free(t);
		ca_state_free(s);
		return -1;
	}
	store_txn_free(t);
	r->state = s;
	r->state_free = ca_state_free;
	return api_park(r, &w, ca_answer);
}

int
mtls_ca_update(struct api_req *r, const char *pem, int single,
    struct err *e)
{
	struct ca_state	*s;
	json_t		*doc, *desc = NULL, *fps;
	char		*clean = NULL;
	int64_t		 rev;
	size_t		 i;

	if (x509_ca_bundle_check(pem, 1, &clean, &desc, e) == -1)
		return -1;
	if ((doc = cluster_doc_read(r->n, &rev, e)) == NULL)
		goto fail;
	if (str_of(doc, MTLS_CA_NAME) != NULL &&
	    strcmp(str_of(doc, MTLS_CA_NAME), clean) == 0) {
		/* Already in place: nothing to roll out. */
		r->resp = json_pack("{s:s, s:O, s:b}", "name", MTLS_CA_NAME,
		    "certificates", desc, "unchanged", 1);
		if (!single)
			r->resp = json_pack("{s:[o]}", "certificates", r->resp);
		json_decref(doc);
		json_decref(desc);
		free(clean);
		return 0;
	}
	json_object_set_new(doc, MTLS_CA_NAME, json_string(clean));
	fps = json_array();
	for (i = 0; i < json_array_size(desc); i++)
		json_array_append(fps, json_object_get(json_array_get(desc, i),
		    "fingerprint_sha256"));
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		json_decref(fps);
		err_set(e, E_INTERNAL, "out of memory");
		goto fail;
	}
	s->single = single;
	s->entry = json_pack("{s:s, s:O}", "name", MTLS_CA_NAME,
	    "certificates", desc);
	log_audit("%s set %s (%zu certificate(s))", r->who, MTLS_CA_NAME,
	    json_array_size(desc));
	free(clean);
	json_decref(desc);
	{
		int rc = ca_commit(r, doc, rev, "certificate_updated",
		    json_pack("{s:s, s:o, s:s}", "name", MTLS_CA_NAME,
		    "fingerprints", fps, "user", r->who), s, e);
		json_decref(doc);
		return rc;
	}
fail:
	json_decref(doc);
	json_decref(desc);
	free(clean);
	return -1;
}

int
mtls_ca_delete(struct api_req *r, struct err *e)
{
	struct ca_state	*s;
	json_t		*doc;
	int64_t		 rev;
	int		 rc;

	if ((doc = cluster_doc_read(r->n, &rev, e)) == NULL)
		return -1;
	if (str_of(doc, MTLS_CA_NAME) == NULL) {
		json_decref(doc);
		return err_set(e, E_UNKNOWN_CERT_404, "%s is not set",
		    MTLS_CA_NAME);
	}
	if (bool_of(doc, "mtls_certificate_authentication", 0)) {
		int basic = bool_of(doc, "control_plane_basic_authentication",
		    1);
		json_decref(doc);
		return err_set(e, basic ? E_INVALID_CONFIG : E_LOCKOUT,
		    "certificate sign-in is on (mtls_certificate_"
		    "authentication true) and needs %s: turn it off first",
		    MTLS_CA_NAME);
	}
	json_object_del(doc, MTLS_CA_NAME);
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		json_decref(doc);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	s->single = 1;
	s->entry = json_pack("{s:s, s:b}", "name", MTLS_CA_NAME, "deleted", 1);
	log_audit("%s deleted %s", r->who, MTLS_CA_NAME);
	rc = ca_commit(r, doc, rev, "certificate_deleted", json_pack("{s:s, "
	    "s:s}", "name", MTLS_CA_NAME, "user", r->who), s, e);
	json_decref(doc);
	return rc;
}

json_t *
mtls_ca_describe(struct node *n, struct err *e)
{
	json_t	*doc, *desc = NULL, *out;
	char	*clean = NULL;

	if ((doc = cluster_doc_read(n, NULL, e)) == NULL)
		return NULL;
	if (str_of(doc, MTLS_CA_NAME) == NULL) {
		json_decref(doc);
		err_set(e, E_UNKNOWN_CERT_404, "%s is not set", MTLS_CA_NAME);
		return NULL;
	}
	/* Described as stored; an expired one says so in its not_after. */
	{
		struct err ign = { 0 };
		if (x509_ca_bundle_check(str_of(doc, MTLS_CA_NAME), 0, &clean,
		    &desc, &ign) == -1)
			desc = json_array();
		err_clear(&ign);
	}
	out = json_pack("{s:s, s:s, s:o, s:b}", "name", MTLS_CA_NAME,
	    "certificate", str_of(doc, MTLS_CA_NAME), "certificates", desc,
	    "in_use", bool_of(doc, "mtls_certificate_authentication", 0));
	free(clean);
	json_decref(doc);
	return out;
}

char *
mtls_ca_pem(struct node *n)
{
	json_t	*doc = cluster_doc_read(n, NULL, NULL);
	char	*out = NULL;

	if (doc != NULL && str_of(doc, MTLS_CA_NAME) != NULL)
		out = strdup(str_of(doc, MTLS_CA_NAME));
	json_decref(doc);
	return out;
}
