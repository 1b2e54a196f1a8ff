/*
 * certs.c — certificate changes, from request to store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certs.h"
#include "log.h"
#include "x509.h"

#define CERT_DAYS	365

const struct cert_service cert_services[CERT__COUNT] = {
	[CERT_API] =	 { "api",		POLICY_CONTROL,	0, 0 },
	[CERT_CM] =	 { "cm",		POLICY_CONTROL,	0, 0 },
	[CERT_PROXY] =	 { "proxy",		POLICY_DATA,	1, 0 },
	[CERT_SYNCER] =	 { "syncer",		POLICY_DATA,	0, 1 },
	[CERT_METRICS] = { "metrics_exporter",	POLICY_CONTROL,	0, 0 },
};

int
cert_id_of(const char *name)
{
	int i;

	for (i = 0; i < CERT__COUNT && name != NULL; i++)
		if (strcmp(cert_services[i].name, name) == 0)
			return i;
	return -1;
}

static void
cert_store_key(int id, char *buf, size_t len)
{
	snprintf(buf, len, "/moat/certs/%s", cert_services[id].name);
}

static int
certs_put_doc(struct store_txn *t, int id, const char *cert, const char *key,
    int version, const char *who, const char *now, int by_ca)
{
	char	 skey[64];
	json_t	*doc;
	int	 rc;

	cert_store_key(id, skey, sizeof(skey));
	doc = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:b}", "name",
	    cert_services[id].name, "certificate", cert, "key", key,
	    "version", version, "updated_at", now, "updated_by", who,
	    "issued_by_cluster_ca", by_ca);
	rc = store_txn_put_json(t, skey, doc);
	json_decref(doc);
	return rc;
}

int
certs_issue_into(struct store_txn *t, int id, const char *ca_cert,
    const char *ca_key, const char *fqdn, const char *const *ips,
    int version, const char *who, const char *now, struct err *e)
{
	char		*cert = NULL, *key = NULL, *wild = NULL;
	const char	*dns[3];
	int		 rc = -1;

	if (asprintf(&wild, "*.%s", fqdn) == -1)
		return err_set(e, E_INTERNAL, "out of memory");
	dns[0] = fqdn;
	dns[1] = wild;
	dns[2] = NULL;
	if (x509_cert_issue(ca_cert, ca_key, fqdn, dns, ips, CERT_DAYS, &cert,
	    &key, e) == 0 &&
	    certs_put_doc(t, id, cert, key, version, who, now, 1) == 0)
		rc = 0;
	else if (e != NULL && e->code == E_OK)
		err_set(e, E_INTERNAL, "cannot store certificate");
	free(wild);
	free(cert);
	x509_pem_free(key);
	return rc;
}

/* Validate one change completely, trial handshake included. */
static int
certs_validate(struct node *n, const struct cert_change *c, int id,
    char *fp, struct err *e)
{
	const struct cert_service	*svc = &cert_services[id];
	struct x509_material		*m = NULL;
	struct tlsctx			*ctx = NULL;
	struct tls_policy		 tp;
	struct x509_check		 chk = { 0 };
	int				 rc = -1;

	chk.fqdn = n->fqdn;
	chk.need_wildcard = svc->need_wildcard;
	chk.need_client_auth = svc->need_client_auth;
	if (x509_material_parse(c->cert_pem, c->key_pem, &m, e) == -1 ||
	    x509_material_validate(m, &chk, e) == -1)
		goto out;
	ctx = tlsctx_server_new(m, node_tls_policy(&n->policy, svc->policy,
	    &tp), e);
	if (ctx == NULL || tlsctx_trial_handshake(ctx, m, n->fqdn, e) == -1)
		goto out;
	x509_material_fingerprint(m, fp);
	rc = 0;
out:
	/* Say which certificate the message is about. */
	if (rc == -1 && e != NULL && e->msg != NULL) {
		char *msg = e->msg;
		e->msg = NULL;
		err_set(e, e->code, "%s certificate: %s", svc->name, msg);
		free(msg);
	}
	tlsctx_unref(ctx);
	x509_material_free(m);
	return rc;
}

/* Wait for the nodes and shape the result; shared by update and rotate. */
static int
certs_finish(struct node *n, const int *versions, const char *fps[],
    json_t **result, struct err *e)
{
	json_t	*list = json_array(), *nodes;
	int	 i, all_ok;

	nodes = node_rollout_wait(n, versions, 0, n->rollout_timeout_ms > 0 ?
	    n->rollout_timeout_ms : ROLLOUT_TIMEOUT_MS, &all_ok);
	for (i = 0; i < CERT__COUNT; i++) {
		if (versions[i] == 0)
			continue;
		json_array_append_new(list, json_pack("{s:s, s:i, s:s}",
		    "name", cert_services[i].name, "version", versions[i],
		    "fingerprint_sha256", fps[i]));
	}
	*result = json_pack("{s:o, s:o}", "certificates", list, "nodes",
	    nodes);
	if (!all_ok)
		return err_set(e, E_NOT_ALL_NODES, "the change is stored, but "
		    "not every node confirmed it serves it yet; they will "
		    "converge");
	return 0;
}

int
certs_update(struct node *n, const struct cert_change *ch, size_t nch,
    const char *who, json_t **result, struct err *e)
{
	struct store_txn	*t = NULL;
	char			 fps[CERT__COUNT][100], skey[64];
	char			 oldfp[CERT__COUNT][100];
	const char		*fpp[CERT__COUNT];
	int			 versions[CERT__COUNT] = { 0 };
	int			 seen[CERT__COUNT] = { 0 };
	int			 i, id, rc = -1;
	char			*now = NULL;
	size_t			 k;

	*result = NULL;
	if (nch == 0)
		return err_set(e, E_INVALID_SCHEMA, "no certificates given");
	/* Names first, so a bad name is reported before any slow check. */
	for (k = 0; k < nch; k++) {
		if ((id = cert_id_of(ch[k].name)) == -1)
			return err_set(e, E_UNKNOWN_CERT, "unknown certificate "
			    "name \"%.64s\"; known: api, cm, proxy, syncer, "
			    "metrics_exporter", ch[k].name);
		if (seen[id]++)
			return err_set(e, E_DUPLICATE_CERT, "certificate %s is "
			    "given more than once", ch[k].name);
	}
	for (k = 0; k < nch; k++)
		if (certs_validate(n, &ch[k], cert_id_of(ch[k].name),
		    fps[cert_id_of(ch[k].name)], e) == -1)
			return -1;
	if ((t = store_txn_new()) == NULL || (now = iso_now()) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	for (k = 0; k < nch; k++) {
		json_t *doc;
		int64_t rev;
		id = cert_id_of(ch[k].name);
		cert_store_key(id, skey, sizeof(skey));
		if ((doc = store_get_json(n->store, skey, &rev, e)) == NULL)
			goto out;
		versions[id] = (int)json_integer_value(json_object_get(doc,
		    "version")) + 1;
		json_decref(doc);
		/* Someone else's change in between makes this one fail
		 * whole instead of mixing the two. */
		store_txn_cmp(t, skey, rev);
		if (certs_put_doc(t, id, ch[k].cert_pem, ch[k].key_pem,
		    versions[id], who, now, 0) == -1) {
			err_set(e, E_INTERNAL, "out of memory");
			goto out;
		}
		snprintf(oldfp[id], sizeof(oldfp[id]), "%s",
		    n->served[id].fingerprint);
	}
	if (store_txn_commit(n->store, t, e) == -1)
		goto out;
	for (i = 0; i < CERT__COUNT; i++) {
		fpp[i] = fps[i];
		if (versions[i] != 0)
			log_audit("%s replaced certificate %s: version %d, "
			    "sha256 %s -> %s", who, cert_services[i].name,
			    versions[i], oldfp[i], fps[i]);
	}
	rc = certs_finish(n, versions, fpp, result, e);
out:
	free(now);
	store_txn_free(t);
	return rc;
}

int
certs_rotate(struct node *n, const char *name, const char *who,
    json_t **result, struct err *e)
{
	struct store_txn	*t = NULL;
	json_t			*ca = NULL, *doc;
	const char		*ca_cert, *ca_key, *fpp[CERT__COUNT];
	char			 skey[64], **ips = NULL, *now = NULL;
	char			 oldfp[CERT__COUNT][100];
	int			 versions[CERT__COUNT] = { 0 };
	int			 i, id = -1, rc = -1;
	int64_t			 rev;
	json_t			*nodes = NULL, *nd;
	size_t			 k;

	*result = NULL;
	if (name != NULL && (id = cert_id_of(name)) == -1)
		return err_set(e, E_UNKNOWN_CERT, "unknown certificate name "
		    "\"%.64s\"; known: api, cm, proxy, syncer, "
		    "metrics_exporter", name);
	if ((ca = store_get_json(n->store, "/moat/ca", NULL, e)) == NULL)
		return -1;
	if (json_unpack(ca, "{s:s, s:s}", "cert", &ca_cert, "key", &ca_key)) {
		err_set(e, E_STORE, "the cluster CA is damaged in the store");
		goto out;
	}
	/* SANs: every node's address, so that any node can be reached by IP. */
	nodes = node_list_json(n, 0, e);
	ips = calloc(json_array_size(nodes) + 2, sizeof(char *));
	if (nodes == NULL || ips == NULL || (t = store_txn_new()) == NULL ||
	    (now = iso_now()) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	json_array_foreach(nodes, k, nd)
		ips[k] = (char *)json_string_value(json_object_get(nd, "addr"));
	if (json_array_size(nodes) == 1 && ips[0] != NULL &&
	    strcmp(ips[0], "0.0.0.0") == 0)
		ips[0] = "127.0.0.1";
	for (i = 0; i < CERT__COUNT; i++) {
		if (id != -1 && i != id)
			continue;
		cert_store_key(i, skey, sizeof(skey));
		if ((doc = store_get_json(n->store, skey, &rev, e)) == NULL)
			goto out;
		versions[i] = (int)json_integer_value(json_object_get(doc,
		    "version")) + 1;
		json_decref(doc);
		store_txn_cmp(t, skey, rev);
		if (certs_issue_into(t, i, ca_cert, ca_key, n->fqdn,
		    (const char *const *)ips, versions[i], who, now, e) == -1)
			goto out;
	}
	for (i = 0; i < CERT__COUNT; i++)
		snprintf(oldfp[i], sizeof(oldfp[i]), "%s",
		    n->served[i].fingerprint);
	if (store_txn_commit(n->store, t, e) == -1)
		goto out;
	for (i = 0; i < CERT__COUNT; i++) {
		fpp[i] = n->served[i].fingerprint;
		if (versions[i] != 0)
			log_audit("%s rotated certificate %s: version %d, "
			    "sha256 %s -> %s", who, cert_services[i].name,
			    versions[i], oldfp[i], n->served[i].fingerprint);
	}
	rc = certs_finish(n, versions, fpp, result, e);
out:
	free(ips);
	json_decref(nodes);
	json_decref(ca);
	free(now);
	store_txn_free(t);
	return rc;
}

json_t *
certs_list_json(struct node *n, struct err *e)
{
	json_t	*out = json_object(), *doc;
	char	 skey[64], field[64];
	int	 i;

	for (i = 0; i < CERT__COUNT; i++) {
		cert_store_key(i, skey, sizeof(skey));
		if ((doc = store_get_json(n->store, skey, NULL, e)) == NULL) {
			json_decref(out);
			return NULL;
		}
		snprintf(field, sizeof(field), "%s_cert", cert_services[i].name);
		json_object_set(out, field, json_object_get(doc, "certificate"));
		json_decref(doc);
	}
	return out;
}

json_t *
certs_describe_json(struct node *n, const char *name, struct err *e)
{
	struct x509_material	*m = NULL;
	json_t			*doc, *out;
	char			 skey[64];
	int			 id = cert_id_of(name);

	if (id == -1) {
		err_set(e, E_UNKNOWN_CERT_404, "unknown certificate name "
		    "\"%.64s\"", name);
		return NULL;
	}
	cert_store_key(id, skey, sizeof(skey));
	if ((doc = store_get_json(n->store, skey, NULL, e)) == NULL)
		return NULL;
	if (x509_material_parse(json_string_value(json_object_get(doc,
	    "certificate")), NULL, &m, e) == -1) {
		json_decref(doc);
		return NULL;
	}
	out = x509_material_describe(m);
	json_object_set_new(out, "name", json_string(name));
	json_object_set(out, "version", json_object_get(doc, "version"));
	json_object_set(out, "updated_at", json_object_get(doc, "updated_at"));
	json_object_set(out, "updated_by", json_object_get(doc, "updated_by"));
	json_object_set(out, "issued_by_cluster_ca",
	    json_object_get(doc, "issued_by_cluster_ca"));
	json_object_set_new(out, "expires_in_seconds",
	    json_integer(x509_material_seconds_left(m)));
	x509_material_free(m);
	json_decref(doc);
	return out;
}
