/*
 * certs.c — certificate changes, from request to store (see certs.h).
 *
 * A change is validated against the cluster document (its FQDN and TLS
 * policy) read from the store, and the transaction compares that
 * document's revision too: a certificate is never stored under a policy
 * it was not checked against.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apply.h"
#include "certs.h"
#include "events.h"
#include "fsutil.h"
#include "log.h"
#include "nodes.h"
#include "rollout.h"
#include "schema.h"
#include "seal.h"
#include "x509.h"

#define CERT_DAYS	365
#define CERT_MAX_DAYS	825	/* what browsers accepted longest */

/* A rotation or a renewal: see certs_rotate_fill. */
struct rotate_plan {
	int		 only;		/* one certificate id, or -1: all */
	int		 force;		/* operator certificates too */
	int		 days;		/* the new certificates' lifetime */
	long		 due_within;	/* renewal: seconds left below this */
	const char	*who;
	const char	*event;
	/* The CA to issue from; NULL: the cluster's signing CA. */
	const char	*ca_cert, *ca_key;
	/* A CA switch: the CA being rotated out (its leaves all go). */
	const char	*old_ca;
};

int
certs_issue_into(struct store_txn *t, int id, const char *ca_cert,
    const char *ca_key, const char *fqdn, const char *const *ips,
    int version, const char *who, const char *now, int days, char *fp,
    struct err *e)
{
	struct x509_material *m = NULL;

	struct cert_doc	 cd;
	char		*cert = NULL, *key = NULL, *wild = NULL, skey[SCHEMA_KEY_MAX];
	const char	*dns[3];
	json_t		*doc = NULL;
	int		 rc = -1;

	if (asprintf(&wild, "*.%s", fqdn) == -1)
		return err_set(e, E_INTERNAL, "out of memory");
	dns[0] = fqdn;
	dns[1] = wild;
	dns[2] = NULL;
	if (x509_cert_issue(ca_cert, ca_key, fqdn, dns, ips, days > 0 ? days :
	    CERT_DAYS, &cert, &key, e) == -1)
		goto out;
	memset(&cd, 0, sizeof(cd));
	cd.certificate = cert;
	cd.key = key;
	cd.version = version;
	cd.updated_at = now;
	cd.updated_by = who;
	cd.by_cluster_ca = 1;
	if (fp != NULL && x509_material_parse(cert, NULL, &m, NULL) == 0)
		x509_material_fingerprint(m, fp);
	x509_material_free(m);
	if ((doc = cert_doc_encode(id, &cd)) == NULL ||
	    store_txn_put_json(t, schema_key_of(SK_CERT, id, skey), doc) == -1) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	rc = 0;
out:
	json_decref(doc);
	free(wild);
	free(cert);
	x509_pem_free(key);
	return rc;
}

/*
 * The document being replaced (old, with its key: a rollback needs it)
 * joins its certificate's history, and the version that falls out of the
 * last CERT_HISTORY_KEEP goes.
 */
/* doc with its "key" member sealed, as the store must hold it (a copy
 * when it was not, from before the cluster had a key); NULL when out of
 * memory.  New reference. */
static json_t *
certs_doc_sealed(json_t *doc, const char *member)
{
	const char	*k = json_string_value(json_object_get(doc, member));
	json_t		*out;
	char		*sk;

	if (k == NULL || !seal_have_key() ||
	    strncmp(k, SEAL_PREFIX, strlen(SEAL_PREFIX)) == 0)
		return json_incref(doc);
	if ((out = json_deep_copy(doc)) == NULL ||
	    (sk = schema_seal_key(k)) == NULL) {
		json_decref(out);
		return NULL;
	}
	json_object_set_new(out, member, json_string(sk));
	seal_free(sk);
	return out;
}

static int
certs_keep_old(struct store_txn *t, int id, json_t *old, int old_version)
{
	char	 key[SCHEMA_KEY_MAX];
	json_t	*sealed;
	int	 rc;

	if (old_version <= 0)
		return 0;
	if ((sealed = certs_doc_sealed(old, "key")) == NULL)
		return -1;
	rc = store_txn_put_json(t, schema_cert_hist_key(id, old_version, key),
	    sealed);
	json_decref(sealed);
	if (rc == -1)
		return -1;
	if (old_version > CERT_HISTORY_KEEP)
		store_txn_del(t, schema_cert_hist_key(id, old_version -
		    CERT_HISTORY_KEEP, key));
	return 0;
}

/* The event of a certificate change, added to the change's own
 * transaction: fingerprints, never the key. */
static void
certs_event(struct node *n, struct store_txn *t, const char *type,
    const char *name, int version, const char *old_fp, const char *new_fp,
    const char *who, int restored)
{
	json_t *f = json_pack("{s:s, s:i, s:s, s:s, s:s}", "name", name,
	    "version", version, "old_fingerprint_sha256", old_fp,
	    "new_fingerprint_sha256", new_fp ? new_fp : "", "user", who);

	if (f != NULL && restored > 0)
		json_object_set_new(f, "restored_version",
		    json_integer(restored));
	events_txn_add(n, t, type, "INFO", f);
}

/* The fingerprint of a stored document's certificate into fp (100). */
static void
certs_doc_fingerprint(const char *cert_pem, char *fp)
{
	struct x509_material *m = NULL;

	fp[0] = '\0';
	if (x509_material_parse(cert_pem, NULL, &m, NULL) == 0)
		x509_material_fingerprint(m, fp);
	x509_material_free(m);
}

/* The cluster document as stored, with its revision. */
static int
certs_read_cluster(struct node *n, struct cluster_doc *c, int64_t *rev,
    struct err *e)
{
	json_t	*doc = schema_get(n->store, schema_key(SK_CLUSTER), rev, e);
	int	 rc;

	if (doc == NULL)
		return -1;
	rc = cluster_doc_decode(doc, c, e);
	json_decref(doc);
	return rc;
}

/* Prefix e's message with the certificate it is about. */
static int
certs_err_about(struct err *e, const char *name)
{
	char *msg;

	if (e != NULL && e->msg != NULL) {
		msg = e->msg;
		e->msg = NULL;
		err_set(e, e->code, "%s certificate: %s", name, msg);
		free(msg);
	}
	return -1;
}

/* Validate one change completely, trial handshake included; *m gets the
 * parsed material (caller frees). */
static int
certs_validate(const struct cluster_doc *c, const struct cert_change *ch,
    int id, struct x509_material **mp, struct err *e)
{
	const struct cert_service	*svc = &cert_services[id];
	struct x509_material		*m = NULL;
	struct tlsctx			*ctx = NULL;
	struct tls_policy		 tp;
	struct x509_check		 chk = { 0 };
	int				 rc = -1;

	chk.fqdn = c->name;
	chk.need_wildcard = svc->need_wildcard && !ch->names_only;
	chk.need_client_auth = svc->need_client_auth;
	/* What is sent is one key and nothing else (a rollback's comes
	 * from the store, as it was accepted then). */
	if ((ch->rollback_of == 0 && ch->key_pem != NULL &&
	    x509_key_pem_single(ch->key_pem, e) == -1) ||
	    x509_material_parse(ch->cert_pem, ch->key_pem, &m, e) == -1 ||
	    x509_material_validate(m, &chk, e) == -1)
		goto out;
	ctx = tlsctx_server_new(m, cluster_tls_policy(&c->policy, svc->policy,
	    &tp), e);
	if (ctx == NULL || tlsctx_trial_handshake(ctx, m, c->name, e) == -1)
		goto out;
	*mp = m;
	m = NULL;
	rc = 0;
out:
	if (rc == -1)
		certs_err_about(e, svc->name);
	tlsctx_unref(ctx);
	x509_material_free(m);
	return rc;
}

/* 1 when m is the very certificate (and chain) stored in doc. */
static int
certs_same(const struct cert_doc *stored, const struct x509_material *m)
{
	struct x509_material	*old = NULL;
	char			*a = NULL, *b = NULL;
	int			 same = 0;

	if (x509_material_parse(stored->certificate, NULL, &old, NULL) == -1)
		return 0;
	a = x509_material_chain_pem(old);
	b = x509_material_chain_pem(m);
	same = a != NULL && b != NULL && strcmp(a, b) == 0;
	free(a);
	free(b);
	x509_material_free(old);
	return same;
}

/* What a parked certificate change answers with. */
struct certs_state {
	json_t	*list;		/* [{name, version, fingerprint_sha256, ...}] */
	json_t	*skipped;	/* rotate: [{name, reason}], or NULL */
	int	 single;	/* update_cert's shape */
};

static void
certs_state_free(void *p)
{
	struct certs_state *s = p;

	if (s == NULL)
		return;
	json_decref(s->list);
	json_decref(s->skipped);
	free(s);
}

static int
certs_answer(struct api_req *r, int all_ok, json_t *nodes, struct err *e)
{
	struct certs_state	*s = r->state;
	json_t			*one;

	if (s->single) {
		one = json_array_get(s->list, 0);
		r->resp = json_deep_copy(one);
		json_object_set(r->resp, "nodes", nodes);
	} else {
		r->resp = json_pack("{s:O, s:O}", "certificates", s->list,
		    "nodes", nodes);
		if (s->skipped != NULL)
			json_object_set(r->resp, "skipped", s->skipped);
	}
	if (r->resp == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	if (!all_ok)
		return err_set(e, E_NOT_ALL_NODES, "the change is stored, but "
		    "not every node confirmed it serves it yet; they will "
		    "converge (it is not a failure to retry)");
	return 0;
}

/* Commit t and park r until every live node serves versions. */
static int
certs_commit_and_wait(struct api_req *r, struct store_txn *t,
    const int *versions, struct certs_state *s, struct err *e)
{
	struct rollout_want	 w;

	memset(&w, 0, sizeof(w));
	memcpy(w.versions, versions, sizeof(w.versions));
	if (store_txn_len(t) > 0 && store_txn_commit_rev(r->n->store, t,
	    &w.rev, e) == -1) {
		certs_state_free(s);
		return -1;
	}
	if (r->state_free != NULL)
		r->state_free(r->state);
	r->state = s;
	r->state_free = certs_state_free;
	return api_park(r, &w, certs_answer);
}

/* 1 when cert_pem was issued by a CA that will stay in ca.pem: the
 * signing one, or the next one during a rollover; never the previous one,
 * which leaves ca.pem once nothing served chains to it. */
static int
certs_ca_publishes(struct node *n, const char *cert_pem, int64_t *rev)
{
	struct x509_material	*m = NULL, *ca;
	json_t			*doc;
	const char		*pems[2];
	int			 i, ok = 0;

	if ((doc = schema_get(n->store, schema_key(SK_CA), rev, NULL)) ==
	    NULL || x509_material_parse(cert_pem, NULL, &m, NULL) == -1) {
		json_decref(doc);
		return 0;
	}
	pems[0] = json_string_value(json_object_get(doc, "cert"));
	pems[1] = json_string_value(json_object_get(json_object_get(doc,
	    "next"), "cert"));
	for (i = 0; i < 2 && !ok; i++) {
		ca = NULL;
		if (pems[i] != NULL && x509_material_parse(pems[i], NULL, &ca,
		    NULL) == 0 && x509_material_issued_by(m, ca))
			ok = 1;
		x509_material_free(ca);
	}
	x509_material_free(m);
	json_decref(doc);
	return ok;
}

/*
 * Validate ch[0..nch) whole and, when all are good, fill *tp with their
 * documents (and history, and events); versions[] gets the versions
 * each will have, s->list the answer's entries.  *tp is empty when every
 * one is already in place.
 */
static int
certs_update_prepare(struct node *n, const struct cert_change *ch,
    size_t nch, const char *who, struct store_txn **tp, int *versions,
    struct certs_state *s, struct err *e)
{
	struct cluster_doc	 c;
	struct x509_material	*m[CERT__COUNT] = { NULL };
	struct store_txn	*t = NULL;
	struct cert_doc		 cd, nd;
	json_t			*doc[CERT__COUNT] = { NULL }, *ndoc;
	char			 skey[SCHEMA_KEY_MAX], fp[100], oldfp[100];
	char			*now = NULL;
	char			*enc_cert[CERT__COUNT] = { NULL };
	char			*enc_key[CERT__COUNT] = { NULL };
	int			 seen[CERT__COUNT] = { 0 };
	int64_t			 crev, rev[CERT__COUNT];
	int			 id, rc = -1, puts = 0;
	size_t			 k;

	memset(&c, 0, sizeof(c));
	if (nch == 0)
		return err_set(e, E_INVALID_SCHEMA, "no certificates given");
	/* Names first, so a bad name is reported before any slow check. */
	for (k = 0; k < nch; k++) {
		if ((id = cert_id_of(ch[k].name)) == -1)
			return err_set(e, E_UNKNOWN_CERT, "unknown certificate "
			    "name \"%.64s\"; known: %s", ch[k].name,
			    cert_names_list());
		if (seen[id]++)
			return err_set(e, E_DUPLICATE_CERT, "certificate %s is "
			    "given more than once", ch[k].name);
	}
	if (certs_read_cluster(n, &c, &crev, e) == -1)
		return -1;
	for (k = 0; k < nch; k++) {
		id = cert_id_of(ch[k].name);
		if (certs_validate(&c, &ch[k], id, &m[id], e) == -1)
			goto out;
	}
	if ((t = store_txn_new()) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	for (k = 0; k < nch; k++) {
		int64_t carev = 0;
		/* A rollback to a leaf of the cluster CA: only while that CA
		 * stays in ca.pem, checked against the CA document this
		 * transaction compares. */
		if (ch[k].rollback_of <= 0 || !ch[k].by_cluster_ca)
			continue;
		if (!certs_ca_publishes(n, ch[k].cert_pem, &carev)) {
			err_set(e, E_INVALID_CONFIG, "version %d of %s was "
			    "issued by a cluster CA that was rotated out: "
			    "clients no longer trust it; rotate %s instead for "
			    "a new one", ch[k].rollback_of, ch[k].name,
			    ch[k].name);
			goto out;
		}
		store_txn_cmp(t, schema_key(SK_CA), carev);
	}
	if ((now = iso_now()) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	/* The policy the certificates were checked against must still be
	 * the cluster's when they are stored. */
	store_txn_cmp(t, schema_key(SK_CLUSTER), crev);
	for (k = 0; k < nch; k++) {
		int unchanged;
		id = cert_id_of(ch[k].name);
		schema_key_of(SK_CERT, id, skey);
		if ((doc[id] = schema_get(n->store, skey, &rev[id], e)) == NULL ||
		    cert_doc_decode(doc[id], &cd, e) == -1)
			goto out;
		x509_material_fingerprint(m[id], fp);
		unchanged = certs_same(&cd, m[id]);
		versions[id] = unchanged ? cd.version : cd.version + 1;
		json_array_append_new(s->list, json_pack("{s:s, s:i, s:s, s:b}",
		    "name", ch[k].name, "version", versions[id],
		    "fingerprint_sha256", fp, "unchanged", unchanged));
		/* Someone else's change in between makes this one fail
		 * whole instead of mixing the two; an unchanged one too, or
		 * "already in place" could be false when it commits. */
		store_txn_cmp(t, skey, rev[id]);
		if (unchanged)
			continue;
		puts++;
		memset(&nd, 0, sizeof(nd));
		/* What is stored is what was parsed, encoded anew: trailing
		 * bytes and anything else that came with it stay out. */
		if ((enc_cert[id] = x509_material_chain_pem(m[id])) == NULL ||
		    (enc_key[id] = x509_material_key_pem(m[id])) == NULL) {
			err_set(e, E_INTERNAL, "out of memory");
			goto out;
		}
		nd.certificate = enc_cert[id];
		nd.key = enc_key[id];
		nd.version = versions[id];
		nd.updated_at = now;
		nd.updated_by = who;
		nd.by_cluster_ca = ch[k].by_cluster_ca;
		ndoc = cert_doc_encode(id, &nd);
		store_txn_put_json(t, skey, ndoc);
		json_decref(ndoc);
		if (certs_keep_old(t, id, doc[id], cd.version) == -1) {
			err_set(e, E_INTERNAL, "out of memory");
			goto out;
		}
	}
	if (puts == 0) {
		/* Everything is already in place: nothing to write. */
		store_txn_free(t);
		t = store_txn_new();
	}
	for (k = 0; k < nch; k++) {
		json_t *it = json_array_get(s->list, k);
		if (json_is_true(json_object_get(it, "unchanged"))) {
			log_info("%s set certificate %s to what it already is; "
			    "nothing changed", who, ch[k].name);
			continue;
		}
		id = cert_id_of(ch[k].name);
		cert_doc_decode(doc[id], &cd, NULL);
		certs_doc_fingerprint(cd.certificate, oldfp);
		log_audit("%s replaces certificate %s: version %d, sha256 %s "
		    "-> %s", who, ch[k].name, versions[id], oldfp,
		    json_string_value(json_object_get(it,
		    "fingerprint_sha256")));
		if (puts > 0)
			certs_event(n, t, ch[k].rollback_of ?
			    "certificate_rolled_back" : "certificate_updated",
			    ch[k].name, versions[id], oldfp,
			    json_string_value(json_object_get(it,
			    "fingerprint_sha256")), who, ch[k].rollback_of);
	}
	*tp = t;
	t = NULL;
	rc = 0;
out:
	for (id = 0; id < CERT__COUNT; id++) {
		x509_material_free(m[id]);
		json_decref(doc[id]);
		free(enc_cert[id]);
		x509_pem_free(enc_key[id]);
	}
	cluster_doc_clear(&c);
	free(now);
	store_txn_free(t);
	return rc;
}

int
certs_update(struct api_req *r, const struct cert_change *ch, size_t nch,
    int single, struct err *e)
{
	struct store_txn	*t = NULL;
	struct certs_state	*s;
	int			 versions[CERT__COUNT] = { 0 };
	int			 rc;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->list = json_array()) == NULL) {
		free(s);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	s->single = single;
	if (certs_update_prepare(r->n, ch, nch, r->who, &t, versions, s,
	    e) == -1) {
		certs_state_free(s);
		return -1;
	}
	rc = certs_commit_and_wait(r, t, versions, s, e);
	store_txn_free(t);
	return rc;
}

int
certs_update_now(struct node *n, const struct cert_change *ch, size_t nch,
    const char *who, json_t **out, struct err *e)
{
	struct store_txn	*t = NULL;
	struct certs_state	 s;
	int			 versions[CERT__COUNT] = { 0 };
	int			 rc = -1;

	memset(&s, 0, sizeof(s));
	if ((s.list = json_array()) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	if (certs_update_prepare(n, ch, nch, who, &t, versions, &s, e) == 0 &&
	    (store_txn_len(t) == 0 || store_txn_commit(n->store, t, e) == 0)) {
		*out = json_incref(s.list);
		rc = 0;
	}
	json_decref(s.list);
	store_txn_free(t);
	return rc;
}

/*
 * Re-issue from the cluster CA, into t: the certificate p->only (or every
 * one, -1), skipping operator certificates unless p->force, and, for a
 * renewal, those with more than p->due_within seconds left.  versions[]
 * gets the new versions (0: untouched); list and skipped what the answer
 * shows.
 */
/* 1 when the leaf of cert_pem was signed by ca (NULL: no). */
static int
certs_pem_issued_by(const char *cert_pem, const struct x509_material *ca)
{
	struct x509_material	*m = NULL;
	int			 yes;

	if (ca == NULL || x509_material_parse(cert_pem, NULL, &m, NULL) == -1)
		return 0;
	yes = x509_material_issued_by(m, ca);
	x509_material_free(m);
	return yes;
}

static int
certs_rotate_fill(struct node *n, const struct rotate_plan *p,
    struct store_txn *t, int *versions, json_t *list, json_t *skipped,
    struct err *e)
{
	struct cluster_doc	 c;
	struct cert_doc		 cd;
	json_t			*ca = NULL, *doc, *nodes = NULL, *nd;
	const char		*ca_cert, *ca_key;
	char			 skey[SCHEMA_KEY_MAX], **ips = NULL, *now = NULL;
	char			 fp[100], oldfp[100];
	int			 i, rc = -1;
	int64_t			 rev, crev, carev;
	struct x509_material	*old_ca = NULL;
	char			*ca_plain = NULL;
	size_t			 k;

	memset(&c, 0, sizeof(c));
	if (certs_read_cluster(n, &c, &crev, e) == -1)
		return -1;
	if (p->ca_cert != NULL) {
		ca_cert = p->ca_cert;
		ca_key = p->ca_key;
	} else if ((ca = schema_get(n->store, schema_key(SK_CA), &carev,
	    e)) == NULL || ca_doc_decode(ca, &ca_cert, &ca_key, e) == -1)
		goto out;
	else
		/* A CA switch in between makes this fail rather than store
		 * leaves of the CA being rotated out. */
		store_txn_cmp(t, schema_key(SK_CA), carev);
	if ((ca_plain = unseal_text(ca_key, e)) == NULL)
		goto out;
	ca_key = ca_plain;
	if (p->old_ca != NULL && x509_material_parse(p->old_ca, NULL, &old_ca,
	    NULL) == -1)
		old_ca = NULL;
	/* SANs: every node's address, so that any node can be reached by IP. */
	if ((nodes = nodes_list_json(n, 0, e)) == NULL)
		goto out;
	ips = calloc(json_array_size(nodes) + 2, sizeof(char *));
	if (ips == NULL || (now = iso_now()) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	json_array_foreach(nodes, k, nd)
		ips[k] = (char *)json_string_value(json_object_get(nd, "addr"));
	if (json_array_size(nodes) == 1 && ips[0] != NULL &&
	    strcmp(ips[0], "0.0.0.0") == 0)
		ips[0] = "127.0.0.1";
	store_txn_cmp(t, schema_key(SK_CLUSTER), crev);
	for (i = 0; i < CERT__COUNT; i++) {
		if (p->only != -1 && i != p->only)
			continue;
		schema_key_of(SK_CERT, i, skey);
		if ((doc = schema_get(n->store, skey, &rev, e)) == NULL)
			goto out;
		if (cert_doc_decode(doc, &cd, e) == -1) {
			json_decref(doc);
			goto out;
		}
		/* An operator's certificate (their PKI, their names) is not
		 * ours to replace with one of the cluster CA's; but at a CA
		 * switch, whatever the old CA issued goes (an old served file
		 * brought back by an import, say), or the old CA would stay
		 * in ca.pem for ever. */
		if (!cd.by_cluster_ca && !p->force &&
		    !certs_pem_issued_by(cd.certificate, old_ca)) {
			json_decref(doc);
			if (p->only != -1) {
				err_set(e, E_UNSUPPORTED_ROTATION, "certificate "
				    "%s was supplied by an operator, not issued "
				    "by the cluster CA: rotating would replace "
				    "it with a cluster CA certificate; send "
				    "{\"name\": \"%s\", \"force\": true} to do "
				    "that", cert_services[i].name,
				    cert_services[i].name);
				goto out;
			}
			if (skipped != NULL)
				json_array_append_new(skipped, json_pack("{s:s, "
				    "s:s}", "name", cert_services[i].name,
				    "reason", "supplied by an operator, not "
				    "issued by the cluster CA (rotate it with "
				    "\"force\": true)"));
			continue;
		}
		if (p->due_within > 0) {
			struct x509_material *m = NULL;
			long left = x509_material_parse(cd.certificate, NULL,
			    &m, NULL) == 0 ? x509_material_seconds_left(m) : 0;
			x509_material_free(m);
			if (left > p->due_within) {
				json_decref(doc);
				continue;
			}
		}
		versions[i] = cd.version + 1;
		store_txn_cmp(t, skey, rev);
		if (certs_issue_into(t, i, ca_cert, ca_key, c.name,
		    (const char *const *)ips, versions[i], p->who, now,
		    p->days, fp, e) == -1) {
			json_decref(doc);
			goto out;
		}
		if (certs_keep_old(t, i, doc, cd.version) == -1) {
			json_decref(doc);
			err_set(e, E_INTERNAL, "out of memory");
			goto out;
		}
		certs_doc_fingerprint(cd.certificate, oldfp);
		json_decref(doc);
		json_array_append_new(list, json_pack("{s:s, s:i, s:s}",
		    "name", cert_services[i].name, "version", versions[i],
		    "fingerprint_sha256", fp));
		certs_event(n, t, p->event, cert_services[i].name, versions[i],
		    oldfp, fp, p->who, 0);
	}
	rc = 0;
out:
	seal_free(ca_plain);
	x509_material_free(old_ca);
	cluster_doc_clear(&c);
	free(ips);
	json_decref(nodes);
	json_decref(ca);
	free(now);
	return rc;
}

int
certs_rotate(struct api_req *r, const char *name, int force, int days,
    struct err *e)
{
	struct rotate_plan	 p;
	struct store_txn	*t = NULL;
	struct certs_state	*s = NULL;
	int			 versions[CERT__COUNT] = { 0 };
	int			 rc = -1;
	size_t			 k;

	memset(&p, 0, sizeof(p));
	p.only = -1;
	if (name != NULL && (p.only = cert_id_of(name)) == -1)
		return err_set(e, E_UNKNOWN_CERT, "unknown certificate name "
		    "\"%.64s\"; known: %s", name, cert_names_list());
	if (days != 0 && (days < 1 || days > CERT_MAX_DAYS))
		return err_set(e, E_INVALID_SCHEMA, "validity_days must be "
		    "from 1 to %d", CERT_MAX_DAYS);
	p.force = force;
	p.days = days != 0 ? days : CERT_DAYS;
	p.who = r->who;
	p.event = "certificate_rotated";
	if ((t = store_txn_new()) == NULL || (s = calloc(1, sizeof(*s))) ==
	    NULL || (s->list = json_array()) == NULL ||
	    (s->skipped = json_array()) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	if (certs_rotate_fill(r->n, &p, t, versions, s->list, s->skipped,
	    e) == -1)
		goto out;
	for (k = 0; k < json_array_size(s->list); k++) {
		json_t *it = json_array_get(s->list, k);
		log_audit("%s rotates certificate %s: version %d", r->who,
		    json_string_value(json_object_get(it, "name")),
		    (int)json_integer_value(json_object_get(it, "version")));
	}
	if (json_array_size(s->list) == 0)
		store_txn_free(t), t = store_txn_new();
	rc = certs_commit_and_wait(r, t, versions, s, e);
	s = NULL;
out:
	certs_state_free(s);
	store_txn_free(t);
	return rc;
}

int
certs_reissue_into(struct node *n, struct store_txn *t, const char *ca_cert,
    const char *ca_key, const char *old_ca, const char *who, json_t *list,
    struct err *e)
{
	struct rotate_plan	 p;
	int			 versions[CERT__COUNT] = { 0 };

	memset(&p, 0, sizeof(p));
	p.only = -1;
	p.days = CERT_DAYS;
	p.who = who;
	p.event = "certificate_rotated";
	p.ca_cert = ca_cert;
	p.ca_key = ca_key;
	p.old_ca = old_ca;
	return certs_rotate_fill(n, &p, t, versions, list, NULL, e);
}

int
certs_renew_due(struct node *n, int days_before, struct err *e)
{
	struct rotate_plan	 p;
	struct store_txn	*t;
	json_t			*list = json_array();
	int			 versions[CERT__COUNT] = { 0 };
	int			 rc = -1;
	size_t			 k;

	if (days_before < 1)
		return err_set(e, E_INVALID_CONFIG, "expiry_days_before_rotation "
		    "is %d: it must be at least 1", days_before);
	memset(&p, 0, sizeof(p));
	p.only = -1;
	p.days = CERT_DAYS;
	p.due_within = (long)days_before * 86400L;
	p.who = "renewal job";
	p.event = "certificate_renewed";
	if ((t = store_txn_new()) == NULL || list == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	if (certs_rotate_fill(n, &p, t, versions, list, NULL, e) == -1)
		goto out;
	rc = 0;
	if (json_array_size(list) == 0)
		goto out;
	/* Every node may try at once; the certificates' revisions let one
	 * commit, the others fail their compare and leave it. */
	if (store_txn_commit(n->store, t, e) == -1) {
		rc = e != NULL && e->code == E_CONFLICT ? 0 : -1;
		goto out;
	}
	rc = (int)json_array_size(list);
	for (k = 0; k < json_array_size(list); k++) {
		json_t *it = json_array_get(list, k);
		log_audit("renewal job renewed certificate %s: version %d, "
		    "sha256 %s (it would have expired within %d days)",
		    json_string_value(json_object_get(it, "name")),
		    (int)json_integer_value(json_object_get(it, "version")),
		    json_string_value(json_object_get(it,
		    "fingerprint_sha256")), days_before);
	}
out:
	json_decref(list);
	store_txn_free(t);
	return rc;
}

json_t *
certs_list_json(struct node *n, struct err *e)
{
	json_t	*out = json_object(), *doc;
	char	 skey[SCHEMA_KEY_MAX], field[64];
	int	 i;

	for (i = 0; i < CERT__COUNT; i++) {
		if ((doc = schema_get(n->store, schema_key_of(SK_CERT, i, skey),
		    NULL, e)) == NULL) {
			json_decref(out);
			return NULL;
		}
		snprintf(field, sizeof(field), "%s_cert", cert_services[i].name);
		json_object_set(out, field, json_object_get(doc, "certificate"));
		json_decref(doc);
	}
	return out;
}

/* The stored document of certificate name (with its key: callers keep
 * it to themselves), or NULL: 404 unknown_certificate for a name that
 * is not one of the five. */
static json_t *
certs_doc_of(struct node *n, const char *name, int *id, struct err *e)
{
	char skey[SCHEMA_KEY_MAX];

	if ((*id = cert_id_of(name)) == -1) {
		err_set(e, E_UNKNOWN_CERT_404, "unknown certificate name "
		    "\"%.64s\"", name);
		return NULL;
	}
	return schema_get(n->store, schema_key_of(SK_CERT, *id, skey), NULL,
	    e);
}

/* A stored certificate document as answers show it: the x509 facts
 * plus version, who and when, and time left; never its key. */
static json_t *
certs_doc_describe(json_t *doc, struct err *e)
{
	struct x509_material	*m = NULL;
	struct cert_doc		 cd;
	json_t			*out;

	if (cert_doc_decode(doc, &cd, e) == -1 ||
	    x509_material_parse(cd.certificate, NULL, &m, e) == -1)
		return NULL;
	out = x509_material_describe(m);
	json_object_set_new(out, "version", json_integer(cd.version));
	json_object_set_new(out, "updated_at", json_string(cd.updated_at ?
	    cd.updated_at : ""));
	json_object_set_new(out, "updated_by", json_string(cd.updated_by ?
	    cd.updated_by : ""));
	json_object_set_new(out, "issued_by_cluster_ca",
	    json_boolean(cd.by_cluster_ca));
	json_object_set_new(out, "expires_in_seconds",
	    json_integer(x509_material_seconds_left(m)));
	x509_material_free(m);
	return out;
}

json_t *
certs_describe_json(struct node *n, const char *name, struct err *e)
{
	json_t	*doc, *out;
	int	 id;

	if ((doc = certs_doc_of(n, name, &id, e)) == NULL)
		return NULL;
	if ((out = certs_doc_describe(doc, e)) != NULL)
		json_object_set_new(out, "name", json_string(name));
	json_decref(doc);
	return out;
}

/* One version of a history: as described, and whether it is the one
 * served and whether it has expired. */
static json_t *
certs_version_json(json_t *doc, int current)
{
	json_t *o = certs_doc_describe(doc, NULL);

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "current", json_boolean(current));
	json_object_set_new(o, "expired", json_boolean(json_integer_value(
	    json_object_get(o, "expires_in_seconds")) <= 0));
	return o;
}

static int
version_desc(const void *a, const void *b)
{
	json_t *const *x = a, *const *y = b;

	return (int)(json_integer_value(json_object_get(*y, "version")) -
	    json_integer_value(json_object_get(*x, "version")));
}

/* The kept documents of certificate id (with keys), as stored. */
static int
certs_history_docs(struct node *n, int id, struct store_kv **kv, size_t *nkv,
    struct err *e)
{
	char prefix[SCHEMA_KEY_MAX];

	return store_list(n->store, schema_cert_hist_prefix(id, prefix), kv,
	    nkv, e);
}

json_t *
certs_history_json(struct node *n, const char *name, struct err *e)
{
	struct store_kv	*kv = NULL;
	size_t		 nkv = 0, i;
	json_t		*doc, *arr, *one, **v;
	int		 id;

	if ((doc = certs_doc_of(n, name, &id, e)) == NULL)
		return NULL;
	if (certs_history_docs(n, id, &kv, &nkv, e) == -1) {
		json_decref(doc);
		return NULL;
	}
	arr = json_array();
	if ((one = certs_version_json(doc, 1)) != NULL)
		json_array_append_new(arr, one);
	json_decref(doc);
	for (i = 0; i < nkv; i++) {
		if ((doc = json_loads(kv[i].value, 0, NULL)) == NULL)
			continue;
		if ((one = certs_version_json(doc, 0)) != NULL)
			json_array_append_new(arr, one);
		json_decref(doc);
	}
	store_kvs_free(kv, nkv);
	/* Newest first. */
	if ((v = calloc(json_array_size(arr) + 1, sizeof(*v))) != NULL) {
		for (i = 0; i < json_array_size(arr); i++)
			v[i] = json_incref(json_array_get(arr, i));
		qsort(v, json_array_size(arr), sizeof(*v), version_desc);
		json_array_clear(arr);
		for (i = 0; v[i] != NULL; i++)
			json_array_append_new(arr, v[i]);
		free(v);
	}
	return json_pack("{s:s, s:i, s:o}", "name", name, "kept",
	    CERT_HISTORY_KEEP, "versions", arr);
}

int
certs_rollback(struct api_req *r, const char *name, int version,
    struct err *e)
{
	struct store_kv		*kv = NULL;
	struct cert_doc		 cd, cur;
	struct cert_change	 ch;
	json_t			*doc = NULL, *pick = NULL, *curdoc = NULL;
	char			*plain_key = NULL;
	size_t			 nkv = 0, i;
	int			 id, best = 0, rc = -1;

	if ((curdoc = certs_doc_of(r->n, name, &id, e)) == NULL ||
	    cert_doc_decode(curdoc, &cur, e) == -1)
		goto out;
	if (version != 0 && version == cur.version) {
		err_set(e, E_INVALID_CONFIG, "version %d of %s is the one "
		    "served; give an earlier version", version, name);
		goto out;
	}
	if (certs_history_docs(r->n, id, &kv, &nkv, e) == -1)
		goto out;
	for (i = 0; i < nkv; i++) {
		if ((doc = json_loads(kv[i].value, 0, NULL)) == NULL)
			continue;
		if (cert_doc_decode(doc, &cd, NULL) == 0 && (version != 0 ?
		    cd.version == version : cd.version > best)) {
			best = cd.version;
			json_decref(pick);
			pick = doc;
			continue;
		}
		json_decref(doc);
	}
	if (pick == NULL) {
		if (version != 0)
			err_set(e, E_NOT_FOUND, "version %d of %s is not kept "
			    "(the last %d are: GET /v1/cluster/certificates/%s/"
			    "history)", version, name, CERT_HISTORY_KEEP, name);
		else
			err_set(e, E_NOT_FOUND, "%s has no earlier version to "
			    "roll back to", name);
		goto out;
	}
	cert_doc_decode(pick, &cd, NULL);
	if ((plain_key = unseal_text(cd.key, e)) == NULL)
		goto out;
	ch.name = name;
	ch.cert_pem = cd.certificate;
	ch.key_pem = plain_key;
	ch.by_cluster_ca = cd.by_cluster_ca;
	ch.rollback_of = cd.version;
	/* The same checks and rollout as any update: an expired or no
	 * longer valid version is refused with the usual error. */
	/* (Rolling back to what is served already changes nothing: the
	 * update says so itself.) */
	if ((rc = certs_update(r, &ch, 1, 1, e)) != -1 &&
	    strcmp(cd.certificate, cur.certificate) != 0)
		log_audit("%s rolled certificate %s back to version %d", r->who,
		    name, cd.version);
out:
	seal_free(plain_key);
	store_kvs_free(kv, nkv);
	json_decref(pick);
	json_decref(curdoc);
	return rc;
}

/* ---- the legacy files ---- */

#define LEGACY_FILE_MAX	(1024 * 1024)

/* The files of one import: owned strings, freed with legacy_free. */
struct legacy {
	struct cert_change	 ch[CERT__COUNT];
	char			*cert[CERT__COUNT], *key[CERT__COUNT];
	size_t			 n;
};

static void
legacy_free(struct legacy *l)
{
	int i;

	for (i = 0; i < CERT__COUNT; i++) {
		free(l->cert[i]);
		x509_pem_free(l->key[i]);
	}
}

/*
 * Read <name>_cert.pem / <name>_key.pem for every name in dir, and
 * chain_certs.pem: each leaf gets the issuers it needs from it.  A file
 * without its partner is an error; a name with neither is left as it is.
 */
static int
legacy_read(const char *dir, struct legacy *l, struct err *e)
{
	char	 path[4096], *pool = NULL, *c, *k;
	int	 i, rc, rk;

	memset(l, 0, sizeof(*l));
	snprintf(path, sizeof(path), "%s/chain_certs.pem", dir);
	if (fs_read(path, LEGACY_FILE_MAX, &pool, e) == -1)
		return -1;
	if (pool != NULL) {
		/* Its own errors under its own name, not a leaf's. */
		struct x509_material *pm = NULL;
		if (x509_material_parse(pool, NULL, &pm, e) == -1) {
			char *msg = e != NULL ? e->msg : NULL;
			if (e != NULL) {
				e->msg = NULL;
				err_set(e, e->code, "%s/chain_certs.pem: %s", dir,
				    msg ? msg : "does not parse");
			}
			free(msg);
			free(pool);
			return -1;
		}
		x509_material_free(pm);
	}
	for (i = 0; i < CERT__COUNT; i++) {
		const char *name = cert_services[i].name;
		c = k = NULL;
		snprintf(path, sizeof(path), "%s/%s_cert.pem", dir, name);
		if ((rc = fs_read(path, LEGACY_FILE_MAX, &c, e)) == -1)
			goto fail;
		snprintf(path, sizeof(path), "%s/%s_key.pem", dir, name);
		if ((rk = fs_read(path, LEGACY_FILE_MAX, &k, e)) == -1) {
			free(c);
			goto fail;
		}
		if (rc == 1 && rk == 1)
			continue;
		if (rc != rk) {
			err_set(e, E_INVALID_CONFIG, "%s/%s_%s.pem is there but "
			    "not %s_%s.pem: give both files of a pair", dir,
			    name, rc == 0 ? "cert" : "key", name, rc == 0 ?
			    "key" : "cert");
			free(c);
			x509_pem_free(k);
			goto fail;
		}
		l->cert[i] = x509_chain_complete(c, pool, e);
		free(c);
		l->key[i] = k;
		if (l->cert[i] == NULL) {
			certs_err_about(e, name);
			goto fail;
		}
		l->ch[l->n].name = name;
		l->ch[l->n].cert_pem = l->cert[i];
		l->ch[l->n].key_pem = l->key[i];
		l->n++;
	}
	free(pool);
	if (l->n == 0)
		return err_set(e, E_INVALID_CONFIG, "no certificate files in %s "
		    "(expected pairs such as proxy_cert.pem and proxy_key.pem, "
		    "for %s)", dir, cert_names_list());
	return 0;
fail:
	free(pool);
	legacy_free(l);
	return -1;
}

int
certs_import(struct api_req *r, const char *dir, struct err *e)
{
	struct legacy	 l;
	int		 rc;

	struct stat	 st;

	if (dir[0] != '/')
		return err_set(e, E_INVALID_SCHEMA, "folder must be an absolute "
		    "path on this node");
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode))
		return err_set(e, E_INVALID_CONFIG, "%s is not a folder on this "
		    "node", dir);
	if (legacy_read(dir, &l, e) == -1)
		return -1;
	rc = certs_update(r, l.ch, l.n, 0, e);
	legacy_free(&l);
	return rc;
}

int
certs_import_dir(struct node *n, const char *dir, const char *who)
{
	struct legacy	 l;
	struct err	 e = { 0 };
	json_t		*out = NULL, *it;
	size_t		 i, changed = 0;
	int		 rc = -1;

	if (n->store == NULL || n->uid <= 0) {
		log_error("%s: no cluster store to import into", who);
		return -1;
	}
	if (legacy_read(dir, &l, &e) == -1) {
		log_error("%s: nothing imported from %s: %s", who, dir,
		    err_msg(&e));
		err_clear(&e);
		return -1;
	}
	if (certs_update_now(n, l.ch, l.n, who, &out, &e) == -1)
		log_error("%s: nothing imported from %s: %s", who, dir,
		    err_msg(&e));
	else {
		json_array_foreach(out, i, it)
			if (!json_is_true(json_object_get(it, "unchanged")))
				changed++;
		log_info("%s: imported %s: %zu certificate(s) changed, %zu "
		    "already in place", who, dir, changed,
		    json_array_size(out) - changed);
		rc = 0;
	}
	err_clear(&e);
	json_decref(out);
	legacy_free(&l);
	return rc;
}

/* ---- sealing what an older store holds in clear ---- */

/* Add to t a sealed copy of the document at key when its key member is
 * not sealed; 1 when something was added. */
static int
certs_seal_one(struct store_txn *t, const char *key, const char *value,
    int64_t rev, const char *member, const char *member2)
{
	json_t	*doc = json_loads(value, 0, NULL), *s1 = NULL, *s2 = NULL;
	json_t	*inner;
	int	 changed = 0;

	if (doc == NULL)
		return 0;
	if ((s1 = certs_doc_sealed(doc, member)) != NULL && s1 != doc)
		changed = 1;
	/* The CA's next key, during a rollover. */
	if (s1 != NULL && member2 != NULL &&
	    (inner = json_object_get(s1, member2)) != NULL &&
	    (s2 = certs_doc_sealed(inner, "key")) != NULL && s2 != inner) {
		if (s1 == doc) {
			json_decref(s1);
			s1 = json_deep_copy(doc);
		}
		json_object_set(s1, member2, s2);
		changed = 1;
	}
	if (changed && s1 != NULL) {
		store_txn_cmp(t, key, rev);
		store_txn_put_json(t, key, s1);
	}
	json_decref(s2);
	json_decref(s1);
	json_decref(doc);
	return changed;
}

int
certs_seal_store(struct node *n)
{
	struct store_kv		*kv = NULL;
	struct store_txn	*t;
	struct err		 e = { 0 };
	size_t			 nkv = 0, i;
	int			 count = 0, max;
	enum schema_kind	 k;

	if (!seal_have_key())
		return 0;	/* nothing can be sealed without a key */
	if (n->store == NULL ||
	    store_list(n->store, SCHEMA_ROOT, &kv, &nkv, &e) == -1) {
		err_clear(&e);
		return -1;
	}
	if ((t = store_txn_new()) == NULL) {
		store_kvs_free(kv, nkv);
		return -1;
	}
	max = store_max_txn_ops(n->store);
	for (i = 0; i < nkv; i++) {
		if (max > 0 && (int)store_txn_len(t) + 2 > max)
			break;
		k = schema_classify(kv[i].key, NULL);
		if (k == SK_CERT || k == SK_CERT_HIST)
			count += certs_seal_one(t, kv[i].key, kv[i].value,
			    kv[i].mod_rev, "key", NULL);
		else if (k == SK_CA)
			count += certs_seal_one(t, kv[i].key, kv[i].value,
			    kv[i].mod_rev, "key", "next");
	}
	if (count > 0) {
		/* Each document compares its revision: one written meanwhile
		 * makes this fail whole, and the next tick tries again. */
		if (store_txn_commit(n->store, t, &e) == 0)
			log_info("sealed %d private key document(s) the store "
			    "held in clear", count);
		else
			count = -1;
	}
	err_clear(&e);
	store_txn_free(t);
	store_kvs_free(kv, nkv);
	return count;
}
