/* cluster.c — policy changes, validated before they are stored. */
#include <stdlib.h>
#include <string.h>

#include "certs.h"
#include "cluster.h"
#include "log.h"

#define KEY_CLUSTER	"/moat/cluster"

/* The settable fields, in one table: name, and which check applies. */
enum field_kind { F_VERSION, F_CIPHER_LIST, F_CIPHERSUITES };
static const struct {
	const char	*name;
	enum field_kind	 kind;
} cluster_fields[] = {
	{ "min_control_TLS_version",	F_VERSION },
	{ "min_data_TLS_version",	F_VERSION },
	{ "control_cipher_suites",	F_CIPHER_LIST },
	{ "data_cipher_list",		F_CIPHER_LIST },
	{ "data_cipher_suites_tls_1_3",	F_CIPHERSUITES },
};
#define NFIELDS (sizeof(cluster_fields) / sizeof(cluster_fields[0]))

static int
cluster_check_field(const char *key, json_t *v, struct err *e)
{
	size_t	 i;
	int	 ver;

	for (i = 0; i < NFIELDS; i++) {
		if (strcmp(cluster_fields[i].name, key) != 0)
			continue;
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
		}
	}
	if (strcmp(key, "name") == 0 || strcmp(key, "created_at") == 0 ||
	    strcmp(key, "control_cipher_suites_tls_1_3") == 0)
		return err_set(e, E_INVALID_SCHEMA, "%s is read-only", key);
	return err_set(e, E_INVALID_SCHEMA, "unknown field \"%.64s\"; settable: "
	    "min_control_TLS_version, min_data_TLS_version, "
	    "control_cipher_suites, data_cipher_list, "
	    "data_cipher_suites_tls_1_3", key);
}

/* Every served certificate must still complete a handshake under p. */
static int
cluster_trial(struct node *n, const struct cluster_policy *p, struct err *e)
{
	struct tls_policy	 tp;
	struct tlsctx		*ctx;
	int			 i, rc;

	for (i = 0; i < CERT__COUNT; i++) {
		struct x509_material *m = n->served[i].material;
		if (m == NULL)
			continue;
		ctx = tlsctx_server_new(m, node_tls_policy(p,
		    cert_services[i].policy, &tp), e);
		rc = ctx != NULL ? tlsctx_trial_handshake(ctx, m, n->fqdn, e) :
		    -1;
		tlsctx_unref(ctx);
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
	}
	return 0;
}

/* Wait until every live node applied the stored policy; add "nodes". */
static int
cluster_wait_nodes(struct node *n, json_t *out, struct err *e)
{
	char	*v = NULL;
	int64_t	 rev = 0;
	int	 all_ok;
	json_t	*nodes;

	if (store_get(n->store, KEY_CLUSTER, &v, &rev, e) == -1)
		return -1;
	free(v);
	nodes = node_rollout_wait(n, NULL, rev, n->rollout_timeout_ms > 0 ?
	    n->rollout_timeout_ms : ROLLOUT_TIMEOUT_MS, &all_ok);
	json_object_set_new(out, "nodes", nodes);
	if (!all_ok)
		return err_set(e, E_NOT_ALL_NODES, "the policy is stored, but not "
		    "every node confirmed it applies it yet; they will converge");
	return 0;
}

int
cluster_update(struct node *n, json_t *body, const char *who, json_t **out,
    struct err *e)
{
	struct cluster_policy	 p = { 0 };
	struct store_txn	*t = NULL;
	json_t			*doc, *v, *old = NULL;
	const char		*key;
	char			*s = NULL;
	int64_t			 rev;
	int			 rc = -1;

	*out = NULL;
	if (!json_is_object(body) || json_object_size(body) == 0)
		return err_set(e, E_INVALID_SCHEMA, "expected a JSON object "
		    "with at least one field to change");
	json_object_foreach(body, key, v)
		if (cluster_check_field(key, v, e) == -1)
			return -1;
	if ((doc = store_get_json(n->store, KEY_CLUSTER, &rev, e)) == NULL)
		return -1;
	old = json_deep_copy(doc);
	json_object_update_existing(doc, body);
	/* The policy the change would produce, for the trial. */
	if (cluster_policy_from_json(doc, &p, e) == -1 ||
	    cluster_trial(n, &p, e) == -1)
		goto out;
	if ((t = store_txn_new()) == NULL ||
	    (s = json_dumps(doc, JSON_COMPACT)) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	store_txn_cmp(t, KEY_CLUSTER, rev);
	store_txn_put(t, KEY_CLUSTER, s);
	if (store_txn_commit(n->store, t, e) == -1)
		goto out;
	s[0] = '\0';
	json_object_foreach(body, key, v)
		log_audit("%s changed %s: \"%s\" -> \"%s\"", who, key,
		    json_string_value(json_object_get(old, key)),
		    json_string_value(v));
	*out = node_cluster_json(n);
	json_object_set_new(*out, "closed_sessions",
	    json_integer(n->closed_sessions));
	rc = cluster_wait_nodes(n, *out, e);
out:
	free(s);
	store_txn_free(t);
	cluster_policy_clear(&p);
	json_decref(old);
	json_decref(doc);
	return rc;
}
