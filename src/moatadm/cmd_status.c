/*
 * status: the rladmin overview.  Rows are single-space separated (as
 * rladmin's are easy to grep, and as scripts written against it expect),
 * one section per kind of object.
 */
#include <stdlib.h>
#include <string.h>

#include "moatadm.h"

/* rladmin shows this much of a fingerprint; enough to tell them apart. */
#define FINGERPRINT_SHOWN	23

static void
status_cluster_print(const json_t *cluster)
{
	char *name = json_member_format(cluster, "name");

	printf("CLUSTER: %s\n", name != NULL ? name : "?");
	free(name);
}

static void
status_node_print(const json_t *node, int local)
{
	static const char *const fields[] = {
		"addr", "status", "software_version", NULL
	};
	const char *const *f;
	char *text;

	text = json_member_format(node, "uid");
	printf("%snode:%s", local ? "*" : "", text != NULL ? text : "?");
	free(text);
	for (f = fields; *f != NULL; f++) {
		text = json_member_format(node, *f);
		printf(" %s", text != NULL ? text : "?");
		free(text);
	}
	printf("\n");
}

/*
 * The API does not say which node answered the control socket; with a
 * single node it can only be that one.
 */
static void
status_nodes_print(const json_t *nodes)
{
	const json_t *node;
	size_t i;

	printf("\nCLUSTER NODES:\n");
	printf("NODE:ID ADDRESS STATUS VERSION\n");
	json_array_foreach(nodes, i, node)
		status_node_print(node, json_array_size(nodes) == 1);
}

/* "dns_name:port" of the first endpoint, RS's older field otherwise. */
static char *
status_db_endpoint(const json_t *db)
{
	const json_t *ep = json_array_get(json_object_get(db, "endpoints"), 0);
	const char *dns = json_string_value(json_object_get(ep, "dns_name"));
	const json_t *port = json_object_get(ep, "port");
	const char *addr;

	if (dns != NULL && json_is_integer(port))
		return str_printf("%s:%" JSON_INTEGER_FORMAT, dns,
		    json_integer_value(port));
	addr = json_string_value(json_object_get(db, "dns_address_master"));
	return strdup(addr != NULL ? addr : "-");
}

static int
status_db_tls(const json_t *db)
{
	const char *mode = json_string_value(json_object_get(db, "tls_mode"));

	if (mode != NULL)
		return strcmp(mode, "enabled") == 0;
	return json_is_true(json_object_get(db, "ssl"));
}

static void
status_dbs_print(const json_t *dbs)
{
	const json_t *db;
	char *uid, *name, *endpoint;
	size_t i;

	printf("\nDATABASES:\n");
	if (json_array_size(dbs) == 0)
		return;
	printf("DB:ID NAME ENDPOINT SSL\n");
	json_array_foreach(dbs, i, db) {
		uid = json_member_format(db, "uid");
		name = json_member_format(db, "name");
		endpoint = status_db_endpoint(db);
		printf("db:%s %s %s %s\n", uid ? uid : "?", name ? name : "?",
		    endpoint ? endpoint : "?", status_db_tls(db) ? "Yes" : "No");
		free(uid);
		free(name);
		free(endpoint);
	}
}

static void
status_node_certs_print(const json_t *node)
{
	const json_t *cert;
	const char *name, *fp;
	char *uid, *version;

	uid = json_member_format(node, "uid");
	json_object_foreach((json_t *)json_object_get(node, "certificates"),
	    name, cert) {
		version = json_member_format(cert, "version");
		fp = json_string_value(json_object_get(cert,
		    "fingerprint_sha256"));
		if (fp == NULL)
			fp = "-";
		printf("node:%s %s v%s %.*s%s\n", uid ? uid : "?", name,
		    version ? version : "?", FINGERPRINT_SHOWN, fp,
		    strlen(fp) > FINGERPRINT_SHOWN ? "..." : "");
		free(version);
	}
	free(uid);
}

static void
status_certs_print(const json_t *nodes)
{
	const json_t *node;
	size_t i;

	printf("\nCERTIFICATES:\n");
	printf("NODE:ID NAME VERSION FINGERPRINT(SHA256)\n");
	json_array_foreach(nodes, i, node)
		status_node_certs_print(node);
}

/* Databases are optional for now: any failure just shows none. */
static json_t *
status_dbs_fetch(struct adm_session *sess)
{
	struct http_response resp;
	json_t *dbs = NULL;
	char *err = NULL;

	if (http_client_request(sess->http, "GET", "/v1/bdbs", NULL, &resp,
	    &err) == -1) {
		free(err);
		return NULL;
	}
	if (resp.status == 200 && json_is_array(resp.body))
		dbs = json_incref(resp.body);
	http_response_clear(&resp);
	return dbs;
}

int
cmd_status_show(struct adm_session *sess, const struct cmd_args *args)
{
	json_t *cluster = NULL, *nodes = NULL, *dbs;
	int rc;

	(void)args;
	if ((rc = session_api_call(sess, "GET", "/v1/cluster", NULL,
	    &cluster)) != ADM_EXIT_OK ||
	    (rc = session_api_call(sess, "GET", "/v1/nodes", NULL,
	    &nodes)) != ADM_EXIT_OK)
		goto out;
	if (!json_is_object(cluster) || !json_is_array(nodes)) {
		fprintf(stderr, "Error: moatd sent an unexpected answer\n");
		rc = ADM_EXIT_SERVER;
		goto out;
	}
	dbs = status_dbs_fetch(sess);
	status_cluster_print(cluster);
	status_nodes_print(nodes);
	status_dbs_print(dbs);
	status_certs_print(nodes);
	json_decref(dbs);
 out:
	json_decref(cluster);
	json_decref(nodes);
	return rc;
}
