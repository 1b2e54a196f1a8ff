/*
 * api_handlers.c — the endpoints.  Each checks its body's shape with
 * json_unpack_ex (whose message names the offending field) and leaves
 * the work to the writers: certs.c, cluster.c, users.c, bdbs.c,
 * bootstrap.c, nodes.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/keyvalq_struct.h>
#include <sodium.h>

#include "alerts.h"
#include "api_handlers.h"
#include "bdbs.h"
#include "bootstrap.h"
#include "ca.h"
#include "certs.h"
#include "cluster.h"
#include "events.h"
#include "jobs.h"
#include "log.h"
#include "mtls.h"
#include "nodes.h"
#include "seal.h"

static int
schema_error(struct err *e, const json_error_t *je, const char *shape)
{
	return err_set(e, E_INVALID_SCHEMA, "%s; expected %s", je->text, shape);
}

/* Loopback and the control socket may bootstrap; elsewhere only with the
 * token moatd was started with.  A wrong token is refused everywhere. */
static int
bootstrap_allowed(struct api_req *r, struct err *e)
{
	const char *tok = evhttp_find_header(evhttp_request_get_input_headers(
	    r->req), "X-Moat-Bootstrap-Token");
	const char *want = r->n->cfg.bootstrap_token;

	if (tok != NULL) {
		if (want != NULL && strlen(tok) == strlen(want) &&
		    sodium_memcmp(tok, want, strlen(want)) == 0)
			return 0;
		return err_set(e, E_BOOTSTRAP_FORBIDDEN, "wrong bootstrap "
		    "token");
	}
	if (r->local || r->loopback)
		return 0;
	return err_set(e, E_BOOTSTRAP_FORBIDDEN, "cluster creation is only "
	    "accepted from this machine, or with the X-Moat-Bootstrap-Token "
	    "header matching moatd --bootstrap-token");
}

int
api_bootstrap_create(struct api_req *r, struct err *e)
{
	json_t		*b;
	json_error_t	 je;
	const char	*action, *name, *user, *pw;
	int		 rc = -1;

	if (bootstrap_allowed(r, e) == -1)
		return -1;
	if ((b = api_body(r, 0, e)) == NULL)
		return -1;
	if (json_unpack_ex(b, &je, 0, "{s:s, s:{s:s}, s:{s:s, s:s}}",
	    "action", &action, "cluster", "name", &name, "credentials",
	    "username", &user, "password", &pw) != 0) {
		schema_error(e, &je, "{\"action\":\"create_cluster\", "
		    "\"cluster\":{\"name\":<fqdn>}, \"credentials\":"
		    "{\"username\":..., \"password\":...}}");
		goto out;
	}
	if (strcmp(action, "create_cluster") != 0) {
		err_set(e, E_INVALID_SCHEMA, "action must be \"create_cluster\"");
		goto out;
	}
	rc = bootstrap_create(r, name, user, pw, e);
out:
	return rc;
}

int
api_bootstrap_join(struct api_req *r, struct err *e)
{
	json_t		*b, *nodes;
	json_error_t	 je;
	const char	*action, *user, *pw, *first, *fp;
	int		 rc = -1;

	if (bootstrap_allowed(r, e) == -1)
		return -1;
	if ((b = api_body(r, 0, e)) == NULL)
		return -1;
	if (json_unpack_ex(b, &je, 0, "{s:s, s:{s:o}, s:{s:s, s:s}}",
	    "action", &action, "cluster", "nodes", &nodes, "credentials",
	    "username", &user, "password", &pw) != 0 ||
	    (first = json_string_value(json_array_get(nodes, 0))) == NULL) {
		err_set(e, E_INVALID_SCHEMA, "%s; expected {\"action\":"
		    "\"join_cluster\", \"cluster\":{\"nodes\":[\"<addr>[:<api "
		    "port>]\"]}, \"credentials\":{\"username\", \"password\"}}",
		    je.text[0] ? je.text : "cluster.nodes must list a node");
		goto out;
	}
	if (strcmp(action, "join_cluster") != 0) {
		err_set(e, E_INVALID_SCHEMA, "action must be \"join_cluster\"");
		goto out;
	}
	/* Optional: the cluster CA's SHA-256 fingerprint, so that the
	 * credentials go only to a node that CA vouches for. */
	fp = json_string_value(json_object_get(json_object_get(b, "cluster"),
	    "ca_fingerprint"));
	if (json_object_get(json_object_get(b, "cluster"), "ca_fingerprint") !=
	    NULL && (fp == NULL || strlen(fp) < 64 || strlen(fp) > 95)) {
		err_set(e, E_INVALID_SCHEMA, "cluster.ca_fingerprint must be the "
		    "CA's SHA-256 fingerprint (openssl x509 -noout -fingerprint "
		    "-sha256)");
		goto out;
	}
	rc = bootstrap_join(r, first, fp, user, pw, e);
out:
	return rc;
}

/* Where the cluster store is, for a node that joins (admins only). */
int
api_cluster_store(struct api_req *r, struct err *e)
{
	if (!store_is_shared(r->n->store))
		return err_set(e, E_STORE_NOT_SHARED, "this cluster runs on the "
		    "embedded store; start its first node with --store "
		    "etcd://... for other nodes to join");
	r->resp = json_pack("{s:s}", "store", store_url(r->n->store));
	/* A node that joins needs the key that opens the private keys in
	 * the store: an admin's join gets it (over the TLS the credentials
	 * came through), nobody else. */
	if (r->resp != NULL && (r->local || strcmp(r->user.role, "admin") ==
	    0)) {
		char *k = seal_key_b64();
		if (k != NULL)
			json_object_set_new(r->resp, "cluster_key",
			    json_string(k));
		seal_free(k);
	}
	return 0;
}

int
api_cluster_store_move(struct api_req *r, struct err *e)
{
	json_t		*b;
	json_error_t	 je;
	const char	*url;
	int		 rc = -1;

	if ((b = api_body(r, 0, e)) == NULL)
		return -1;
	if (json_unpack_ex(b, &je, JSON_STRICT, "{s:s}", "store", &url) != 0)
		err_set(e, E_INVALID_SCHEMA, "%s; expected {\"store\": "
		    "\"etcd://host:port[,host:port...]\"}", je.text);
	else if ((rc = bootstrap_move_store(r->n, url, r->who, e)) == 0)
		r->resp = json_pack("{s:s}", "store", store_url(r->n->store));
	return rc;
}

int
api_cluster_get(struct api_req *r, struct err *e)
{
	r->resp = cluster_get_json(r->n, e);
	return r->resp != NULL ? 0 : -1;
}

int
api_cluster_put(struct api_req *r, struct err *e)
{
	return cluster_update(r, e);
}

/* {"name": "mtls_trusted_ca", "certificate": PEM}: no key. */
static int
api_mtls_ca_put(struct api_req *r, json_t *it, int single, struct err *e)
{
	const char	*name, *pem;
	json_error_t	 je;

	if (json_unpack_ex(it, &je, JSON_STRICT, "{s:s, s:s}", "name", &name,
	    "certificate", &pem) != 0)
		return err_set(e, E_INVALID_SCHEMA, "%s: %s; expected {\"name\": "
		    "\"%s\", \"certificate\": PEM} (a trusted CA has no key)",
		    MTLS_CA_NAME, je.text, MTLS_CA_NAME);
	return mtls_ca_update(r, pem, single, e);
}

int
api_update_cert(struct api_req *r, struct err *e)
{
	struct cert_change	 c = { NULL, NULL, NULL, 0, 0, 0 };
	json_t			*b;
	json_error_t		 je;
	int			 rc = -1;

	if ((b = api_body(r, 0, e)) == NULL)
		return -1;
	/* The trusted CA of certificate sign-in has no key. */
	if (json_is_string(json_object_get(b, "name")) && strcmp(
	    json_string_value(json_object_get(b, "name")), MTLS_CA_NAME) == 0)
		return api_mtls_ca_put(r, b, 1, e);
	if (json_unpack_ex(b, &je, JSON_STRICT, "{s:s, s:s, s:s}", "name",
	    &c.name, "key", &c.key_pem, "certificate", &c.cert_pem) != 0) {
		schema_error(e, &je, "{\"name\", \"key\", \"certificate\"}");
		goto out;
	}
	rc = certs_update(r, &c, 1, 1, e);
out:
	return rc;
}

int
api_certs_get(struct api_req *r, struct err *e)
{
	char *ca;

	if ((r->resp = certs_list_json(r->n, e)) == NULL)
		return -1;
	if ((ca = mtls_ca_pem(r->n)) != NULL)
		json_object_set_new(r->resp, MTLS_CA_NAME "_cert",
		    json_string(ca));
	free(ca);
	return 0;
}

int
api_certs_put(struct api_req *r, struct err *e)
{
	struct cert_change	*ch = NULL;
	json_t			*b, *list, *it;
	json_error_t		 je;
	size_t			 i;
	int			 rc = -1;

	if ((b = api_body(r, 0, e)) == NULL)
		return -1;
	if (json_unpack_ex(b, &je, JSON_STRICT, "{s:o}", "certificates",
	    &list) != 0 || !json_is_array(list)) {
		schema_error(e, &je, "{\"certificates\": [{\"name\", "
		    "\"certificate\", \"key\"}, ...]}");
		goto out;
	}
	if (json_array_size(list) == 0 || json_array_size(list) > 16) {
		err_set(e, E_INVALID_SCHEMA, "certificates must list 1 to 16 "
		    "entries");
		goto out;
	}
	if ((ch = calloc(json_array_size(list), sizeof(*ch))) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	json_array_foreach(list, i, it) {
		if (json_is_string(json_object_get(it, "name")) &&
		    strcmp(json_string_value(json_object_get(it, "name")),
		    MTLS_CA_NAME) == 0) {
			if (json_array_size(list) != 1) {
				err_set(e, E_INVALID_SCHEMA, "%s is set on its "
				    "own (it has no key and rolls out apart "
				    "from the served certificates)",
				    MTLS_CA_NAME);
				goto out;
			}
			rc = api_mtls_ca_put(r, it, 0, e);
			goto out;
		}
		if (json_unpack_ex(it, &je, JSON_STRICT, "{s:s, s:s, s:s}",
		    "name", &ch[i].name, "certificate", &ch[i].cert_pem, "key",
		    &ch[i].key_pem) != 0) {
			err_set(e, E_INVALID_SCHEMA, "certificates[%zu]: %s; "
			    "expected {\"name\", \"certificate\", \"key\"}", i,
			    je.text);
			goto out;
		}
	}
	rc = certs_update(r, ch, json_array_size(list), 0, e);
out:
	free(ch);
	return rc;
}

int
api_cert_get(struct api_req *r, struct err *e)
{
	/* "ca": the cluster CA(s) and where a rollover stands. */
	if (strcmp(r->param, "ca") == 0)
		r->resp = ca_describe_json(r->n, e);
	else if (strcmp(r->param, MTLS_CA_NAME) == 0)
		r->resp = mtls_ca_describe(r->n, e);
	else
		r->resp = certs_describe_json(r->n, r->param, e);
	return r->resp != NULL ? 0 : -1;
}

/* ?ignore_settings=true: the state even of a disabled alert (RS). */
static int
ignore_settings(struct api_req *r, int *out, struct err *e)
{
	char		 buf[16];
	const char	*v = api_query_arg(r, "ignore_settings", buf,
			    sizeof(buf));

	*out = 0;
	if (v == NULL || strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
		return 0;
	if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || *v == '\0') {
		*out = 1;
		return 0;
	}
	return err_set(e, E_INVALID_SCHEMA, "ignore_settings must be true or "
	    "false");
}

int
api_alerts_get(struct api_req *r, struct err *e)
{
	int ign;

	if (ignore_settings(r, &ign, e) == -1)
		return -1;
	r->resp = alerts_json(r->n, NULL, ign, e);
	return r->resp != NULL ? 0 : -1;
}

int
api_alert_get(struct api_req *r, struct err *e)
{
	int ign;

	if (ignore_settings(r, &ign, e) == -1)
		return -1;
	r->resp = alerts_json(r->n, r->param, ign, e);
	return r->resp != NULL ? 0 : -1;
}

int
api_logs_get(struct api_req *r, struct err *e)
{
	static const char *const names[5] = { "stime", "etime", "order",
		"limit", "offset" };
	struct events_query	 q;
	char			 b[5][64];
	const char		*v[5];
	int			 i;

	for (i = 0; i < 5; i++) {
		v[i] = api_query_arg(r, names[i], b[i], sizeof(b[i]));
		/* Cut to fit would pass what was never checked. */
		if (v[i] != NULL && strlen(v[i]) >= sizeof(b[i]) - 1)
			return err_set(e, E_INVALID_SCHEMA, "%s is too long",
			    names[i]);
	}
	if (events_query_parse(&q, v[0], v[1], v[2], v[3], v[4], e) == -1)
		return -1;
	r->resp = events_list_json(r->n, &q, e);
	return r->resp != NULL ? 0 : -1;
}

int
api_jobs_get(struct api_req *r, struct err *e)
{
	r->resp = jobs_settings_json(r->n, e);
	return r->resp != NULL ? 0 : -1;
}

int
api_jobs_put(struct api_req *r, struct err *e)
{
	json_t *b;

	if ((b = api_body(r, 0, e)) == NULL)
		return -1;
	return jobs_settings_put(r->n, b, r->who, &r->resp, e);
}

int
api_cert_history(struct api_req *r, struct err *e)
{
	r->resp = certs_history_json(r->n, r->param, e);
	return r->resp != NULL ? 0 : -1;
}

int
api_cert_rollback(struct api_req *r, struct err *e)
{
	json_t		*b;
	json_error_t	 je;
	json_int_t	 version = -1;

	if ((b = api_body(r, 1, e)) == NULL)
		return -1;
	if (json_unpack_ex(b, &je, JSON_STRICT, "{s?I}", "version",
	    &version) != 0)
		return schema_error(e, &je, "{} (the newest earlier version) or "
		    "{\"version\": <n>}");
	if (version == -1 && json_object_get(b, "version") == NULL)
		version = 0;	/* not given: the newest earlier one */
	else if (version <= 0 || version > 100000000)
		return err_set(e, E_INVALID_SCHEMA, "version must be a positive "
		    "integer");
	return certs_rollback(r, r->param, (int)version, e);
}

int
api_cert_delete(struct api_req *r, struct err *e)
{
	if (strcmp(r->param, MTLS_CA_NAME) == 0)
		return mtls_ca_delete(r, e);
	if (cert_id_of(r->param) != -1)
		return err_set(e, E_CERT_REQUIRED, "certificate %s is required "
		    "and cannot be deleted; replace or rotate it instead",
		    r->param);
	return err_set(e, E_UNKNOWN_CERT_404, "unknown certificate name "
	    "\"%.64s\"", r->param);
}

int
api_certs_rotate(struct api_req *r, struct err *e)
{
	json_t		*b;
	json_error_t	 je;
	const char	*name = NULL;
	json_int_t	 days = 0;
	int		 rc = -1, force = 0;

	if ((b = api_body(r, 1, e)) == NULL)
		return -1;
	if (json_unpack_ex(b, &je, JSON_STRICT, "{s?s, s?b, s?I}", "name",
	    &name, "force", &force, "validity_days", &days) != 0)
		schema_error(e, &je, "{}, {\"name\": <certificate name>}, "
		    "either with \"force\": true and \"validity_days\": <n>");
	else if (json_object_get(b, "validity_days") != NULL &&
	    (days < 1 || days > 825))
		err_set(e, E_INVALID_SCHEMA, "validity_days must be from 1 to "
		    "825");
	else
		rc = certs_rotate(r, name, force, (int)days, e);
	return rc;
}

int
api_ca_rotate(struct api_req *r, struct err *e)
{
	json_t		*b, *g = NULL;
	json_error_t	 je;
	int		 now = 0;

	if ((b = api_body(r, 0, e)) == NULL)
		return -1;
	if (json_unpack_ex(b, &je, JSON_STRICT, "{s?o, s?b}", "grace_days", &g,
	    "now", &now) != 0)
		return schema_error(e, &je, "{\"grace_days\": <days>} or "
		    "{\"grace_days\": 0, \"now\": true}");
	if (g != NULL && !json_is_number(g))
		return err_set(e, E_INVALID_SCHEMA, "grace_days must be a number "
		    "of days");
	if (g == NULL)
		return err_set(e, E_INVALID_SCHEMA, "grace_days is required: "
		    "how long clients have to fetch the new ca.pem before the "
		    "certificates are re-issued from the new CA (days; 0 with "
		    "\"now\": true for at once)");
	return ca_rotate(r, json_number_value(g), now, e);
}

/* The node reads the folder itself: only through its control socket
 * (root on this machine), never for a caller over the network. */
int
api_certs_import(struct api_req *r, struct err *e)
{
	json_t		*b;
	json_error_t	 je;
	const char	*folder;

	if (!r->local)
		return err_set(e, E_FORBIDDEN, "an import reads files on the "
		    "node: it is accepted on the node's control socket only "
		    "(moatadm cluster certificate import <folder>)");
	if ((b = api_body(r, 0, e)) == NULL)
		return -1;
	if (json_unpack_ex(b, &je, JSON_STRICT, "{s:s}", "folder",
	    &folder) != 0)
		return schema_error(e, &je, "{\"folder\": <absolute path>}");
	return certs_import(r, folder, e);
}

int
api_nodes_get(struct api_req *r, struct err *e)
{
	r->resp = nodes_list_json(r->n, 0, e);
	return r->resp != NULL ? 0 : -1;
}

int
api_node_get(struct api_req *r, struct err *e)
{
	int uid = api_param_uid(r);

	if (uid == -1)
		return err_set(e, E_NODE_NOT_FOUND, "no node \"%.32s\"",
		    r->param);
	r->resp = nodes_list_json(r->n, uid, e);
	return r->resp != NULL ? 0 : -1;
}

int
api_node_delete(struct api_req *r, struct err *e)
{
	int uid = api_param_uid(r);

	if (uid == -1)
		return err_set(e, E_NODE_NOT_FOUND, "no node \"%.32s\"",
		    r->param);
	if (nodes_remove(r->n, uid, r->who, e) == -1)
		return -1;
	r->resp = json_pack("{s:i, s:b}", "uid", uid, "removed", 1);
	return 0;
}

int
api_users_get(struct api_req *r, struct err *e)
{
	r->resp = users_get_json(r->n, 0, e);
	return r->resp != NULL ? 0 : -1;
}

int
api_user_get(struct api_req *r, struct err *e)
{
	int uid = api_param_uid(r);

	if (uid == -1)
		return err_set(e, E_USER_NOT_FOUND, "no user \"%.32s\"",
		    r->param);
	r->resp = users_get_json(r->n, uid, e);
	return r->resp != NULL ? 0 : -1;
}

int
api_users_post(struct api_req *r, struct err *e)
{
	if (api_body(r, 0, e) == NULL)
		return -1;
	return users_create(r, e);
}

int
api_user_put(struct api_req *r, struct err *e)
{
	int	 uid = api_param_uid(r), rc;
	json_t	*b;

	if (uid == -1)
		return err_set(e, E_USER_NOT_FOUND, "no user \"%.32s\"",
		    r->param);
	if ((b = api_body(r, 0, e)) == NULL)
		return -1;
	rc = users_update(r, uid, e);
	return rc;
}

int
api_user_delete(struct api_req *r, struct err *e)
{
	int uid = api_param_uid(r);

	if (uid == -1)
		return err_set(e, E_USER_NOT_FOUND, "no user \"%.32s\"",
		    r->param);
	if (users_delete(r->n, uid, &r->user, r->who, e) == -1)
		return -1;
	r->resp = json_pack("{s:i, s:b}", "uid", uid, "deleted", 1);
	return 0;
}

int
api_bdbs_get(struct api_req *r, struct err *e)
{
	r->resp = bdbs_get_json(r->n, 0, e);
	return r->resp != NULL ? 0 : -1;
}

int
api_bdbs_post(struct api_req *r, struct err *e)
{
	json_t	*b = api_body(r, 0, e);
	int	 rc;

	if (b == NULL)
		return -1;
	rc = bdbs_create(r->n, b, r->who, &r->resp, e);
	return rc;
}

int
api_bdb_get(struct api_req *r, struct err *e)
{
	int uid = api_param_uid(r);

	if (uid == -1)
		return err_set(e, E_BDB_NOT_FOUND, "no database \"%.32s\"",
		    r->param);
	r->resp = bdbs_get_json(r->n, uid, e);
	return r->resp != NULL ? 0 : -1;
}

int
api_bdb_put(struct api_req *r, struct err *e)
{
	int	 uid = api_param_uid(r), rc;
	json_t	*b;

	if (uid == -1)
		return err_set(e, E_BDB_NOT_FOUND, "no database \"%.32s\"",
		    r->param);
	if ((b = api_body(r, 0, e)) == NULL)
		return -1;
	rc = bdbs_update(r->n, uid, b, r->who, &r->resp, e);
	return rc;
}

int
api_bdb_delete(struct api_req *r, struct err *e)
{
	int uid = api_param_uid(r);

	if (uid == -1)
		return err_set(e, E_BDB_NOT_FOUND, "no database \"%.32s\"",
		    r->param);
	if (bdbs_delete(r->n, uid, r->who, e) == -1)
		return -1;
	r->resp = json_pack("{s:i, s:b}", "uid", uid, "deleted", 1);
	return 0;
}
