/*
 * status: the rladmin overview, one table per kind of object.  Columns are
 * as wide as their content, as rladmin's are; no cell holds a blank, so
 * scripts that split rows on whitespace keep working.
 */
#include <stdlib.h>
#include <string.h>

#include "moatadm.h"

static void
status_cluster_print(const json_t *cluster)
{
	char *name = json_member_format(cluster, "name");

	printf("CLUSTER: %s\n", name != NULL ? name : "?");
	free(name);
}

#define NODE_COLS	4

static const char *const node_header[NODE_COLS] = {
	"NODE:ID", "ADDRESS", "STATUS", "VERSION"
};

/*
 * The API does not say which node answered the control socket; with a
 * single node it can only be that one, marked with rladmin's '*'.
 */
static void
status_nodes_print(const json_t *nodes)
{
	struct table *t = table_new(node_header, NODE_COLS);
	const json_t *node;
	char *uid;
	size_t i;

	json_array_foreach(nodes, i, node) {
		if (table_row_add(t) == -1)
			break;
		uid = json_member_format(node, "uid");
		table_cell_printf(t, 0, "%snode:%s",
		    json_array_size(nodes) == 1 ? "*" : "",
		    uid != NULL ? uid : "?");
		free(uid);
		table_cell_json(t, 1, node, "addr");
		table_cell_json(t, 2, node, "status");
		table_cell_json(t, 3, node, "software_version");
	}
	printf("\nCLUSTER NODES:\n");
	table_print(t, stdout, "");
	table_free(t);
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

#define DB_COLS	4

static const char *const db_header[DB_COLS] = {
	"DB:ID", "NAME", "ENDPOINT", "SSL"
};

static void
status_dbs_print(const json_t *dbs)
{
	struct table *t;
	const json_t *db;
	char *uid, *endpoint;
	size_t i;

	printf("\nDATABASES:\n");
	if (json_array_size(dbs) == 0)
		return;
	t = table_new(db_header, DB_COLS);
	json_array_foreach(dbs, i, db) {
		if (table_row_add(t) == -1)
			break;
		uid = json_member_format(db, "uid");
		endpoint = status_db_endpoint(db);
		table_cell_printf(t, 0, "db:%s", uid != NULL ? uid : "?");
		table_cell_json(t, 1, db, "name");
		table_cell_printf(t, 2, "%s", endpoint != NULL ? endpoint :
		    "?");
		table_cell_printf(t, 3, "%s", status_db_tls(db) ? "Yes" : "No");
		free(uid);
		free(endpoint);
	}
	table_print(t, stdout, "");
	table_free(t);
}

#define REPL_COLS	5

static const char *const repl_header[REPL_COLS] = {
	"DB:ID", "SOURCE", "SYNC", "STATUS", "LAG(ms)"
};

/* host:port of a source uri (RS's redis://[user][:password]@host:port). */
static const char *
status_source_addr(const char *uri)
{
	const char *at;

	if (uri == NULL)
		return "?";
	if ((at = strrchr(uri, '@')) != NULL)
		return at + 1;
	return strstr(uri, "://") != NULL ? strstr(uri, "://") + 3 : uri;
}

/*
 * Replica Of: each replicating database with its source, status and lag;
 * the errors follow the table, one line each (they hold blanks).
 */
static void
status_replication_print(const json_t *dbs)
{
	struct table *t = NULL;
	const json_t *db, *src;
	const char *err;
	char *uid;
	size_t i;

	json_array_foreach(dbs, i, db) {
		if ((src = json_array_get(json_object_get(db,
		    "replica_sources"), 0)) == NULL)
			continue;
		if (t == NULL && (t = table_new(repl_header, REPL_COLS)) == NULL)
			return;
		if (table_row_add(t) == -1)
			break;
		uid = json_member_format(db, "uid");
		table_cell_printf(t, 0, "db:%s", uid != NULL ? uid : "?");
		table_cell_printf(t, 1, "%s", status_source_addr(
		    json_string_value(json_object_get(src, "uri"))));
		table_cell_json(t, 2, db, "replica_sync");
		table_cell_json(t, 3, src, "status");
		table_cell_json(t, 4, src, "lag");
		free(uid);
	}
	if (t == NULL)
		return;
	printf("\nREPLICA OF:\n");
	table_print(t, stdout, "");
	table_free(t);
	json_array_foreach(dbs, i, db) {
		src = json_array_get(json_object_get(db, "replica_sources"), 0);
		err = json_string_value(json_object_get(src, "last_error"));
		if (err == NULL || *err == '\0')
			continue;
		uid = json_member_format(db, "uid");
		printf("db:%s last error: %s\n", uid != NULL ? uid : "?", err);
		free(uid);
	}
}

#define CERT_COLS	4

static const char *const cert_header[CERT_COLS] = {
	"NODE:ID", "NAME", "VERSION", "FINGERPRINT(SHA256)"
};

static void
status_node_certs_add(struct table *t, const json_t *node)
{
	const json_t *cert;
	const char *name;
	char *uid, *version;

	uid = json_member_format(node, "uid");
	json_object_foreach((json_t *)json_object_get(node, "certificates"),
	    name, cert) {
		if (table_row_add(t) == -1)
			break;
		version = json_member_format(cert, "version");
		table_cell_printf(t, 0, "node:%s", uid != NULL ? uid : "?");
		table_cell_printf(t, 1, "%s", name);
		table_cell_printf(t, 2, "v%s", version != NULL ? version : "?");
		table_cell_fingerprint(t, 3, json_string_value(
		    json_object_get(cert, "fingerprint_sha256")));
		free(version);
	}
	free(uid);
}

static void
status_certs_print(const json_t *nodes)
{
	struct table *t = table_new(cert_header, CERT_COLS);
	const json_t *node;
	size_t i;

	json_array_foreach(nodes, i, node)
		status_node_certs_add(t, node);
	printf("\nCERTIFICATES:\n");
	table_print(t, stdout, "");
	table_free(t);
}

/* Databases and alerts are optional (an older moatd, a role that may
 * not see them): any failure just shows none. */
static json_t *
status_fetch(struct adm_session *sess, const char *path, int array)
{
	struct http_response resp;
	json_t *out = NULL;
	char *err = NULL;

	if (http_client_request(sess->http, "GET", path, NULL, &resp,
	    &err) == -1) {
		free(err);
		return NULL;
	}
	if (resp.status == 200 && (array ? json_is_array(resp.body) :
	    json_is_object(resp.body)))
		out = json_incref(resp.body);
	http_response_clear(&resp);
	return out;
}

#define ALERT_COLS	5

static const char *const alert_header[ALERT_COLS] = {
	"ALERT", "STATE", "THRESHOLD", "SINCE", "CERTIFICATES"
};

/* The certificates within the threshold, "name:12d,..." (no blank). */
static char *
status_alert_certs(const json_t *alert)
{
	const json_t *certs = json_object_get(json_object_get(alert,
	    "change_value"), "certificates"), *c;
	char *out = NULL, *t;
	size_t i;

	json_array_foreach(certs, i, c) {
		t = str_printf("%s%s%s:%" JSON_INTEGER_FORMAT "d",
		    out != NULL ? out : "", out != NULL ? "," : "",
		    json_string_value(json_object_get(c, "name")),
		    json_integer_value(json_object_get(c, "days_left")));
		free(out);
		out = t;
	}
	return out != NULL ? out : strdup("-");
}

static void
status_alerts_print(const json_t *alerts)
{
	struct table *t;
	const json_t *a;
	const char *name;
	char *certs, *thr;

	if (alerts == NULL)
		return;
	t = table_new(alert_header, ALERT_COLS);
	json_object_foreach((json_t *)alerts, name, a) {
		int on = json_is_true(json_object_get(a, "state"));
		if (table_row_add(t) == -1)
			break;
		table_cell_printf(t, 0, "%s", name);
		table_cell_printf(t, 1, "%s", !json_is_true(json_object_get(a,
		    "enabled")) ? "disabled" : on ? "ON" : "off");
		thr = json_member_format(a, "threshold");
		table_cell_printf(t, 2, "%sd", thr != NULL ? thr : "?");
		free(thr);
		if (on)
			table_cell_json(t, 3, a, "change_time");
		else
			table_cell_printf(t, 3, "-");
		certs = on ? status_alert_certs(a) : strdup("-");
		table_cell_printf(t, 4, "%s", certs != NULL ? certs : "-");
		free(certs);
	}
	printf("\nCLUSTER ALERTS:\n");
	table_print(t, stdout, "");
	table_free(t);
}

int
cmd_status_show(struct adm_session *sess, const struct cmd_args *args)
{
	json_t *cluster = NULL, *nodes = NULL, *dbs, *alerts;
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
	dbs = status_fetch(sess, "/v1/bdbs", 1);
	alerts = status_fetch(sess, "/v1/cluster/alerts", 0);
	status_cluster_print(cluster);
	status_nodes_print(nodes);
	status_dbs_print(dbs);
	status_replication_print(dbs);
	status_certs_print(nodes);
	status_alerts_print(alerts);
	json_decref(dbs);
	json_decref(alerts);
 out:
	json_decref(cluster);
	json_decref(nodes);
	return rc;
}
