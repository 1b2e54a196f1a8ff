/* cluster create | config, info cluster, help, exit/quit */
#include <stdlib.h>
#include <string.h>

#include "moatadm.h"

int
cmd_help(struct adm_session *sess, const struct cmd_args *args)
{
	(void)args;
	grammar_help_print(stdout, sess->interactive);
	return ADM_EXIT_OK;
}

int
cmd_quit(struct adm_session *sess, const struct cmd_args *args)
{
	(void)args;
	sess->quit = 1;
	return ADM_EXIT_OK;
}

/*
 * POST a bootstrap body (create or join) and report the node uid.  body
 * holds the password: it is consumed here and wiped when freed.
 */
static int
cluster_bootstrap(struct adm_session *sess, const char *path, json_t *body,
    const char *fields, const char *done)
{
	json_t	*resp = NULL, *uid;
	int	 rc;

	if (body == NULL) {
		fprintf(stderr, "Error: %s must be UTF-8 text\n", fields);
		return ADM_EXIT_USAGE;
	}
	rc = session_api_call(sess, "POST", path, body, &resp);
	json_decref(body);
	if (rc != ADM_EXIT_OK)
		return rc;
	printf("%s\n", done);
	if (json_is_integer(uid = json_object_get(resp, "node_uid")))
		printf("Node UID: %" JSON_INTEGER_FORMAT "\n",
		    json_integer_value(uid));
	json_decref(resp);
	return ADM_EXIT_OK;
}

/* The password given at the prompt, or asked for; NULL (said) when
 * there is none.  Free with mem_wipe_free. */
static char *
cluster_password(const struct cmd_args *args, const char *what)
{
	char *pw;

	if (args->arg[ARG_PASSWORD] != NULL)
		return strdup(args->arg[ARG_PASSWORD]);
	if ((pw = password_read(what)) == NULL)
		fprintf(stderr, "Error: no password (set MOAT_PASSWORD, or "
		    "type it when asked)\n");
	return pw;
}

int
cmd_cluster_create(struct adm_session *sess, const struct cmd_args *args)
{
	char	*pw;
	int	 rc;

	if ((pw = cluster_password(args, "Password of the new admin")) ==
	    NULL)
		return ADM_EXIT_USAGE;
	rc = cluster_bootstrap(sess, "/v1/bootstrap/create_cluster",
	    json_pack("{s:s, s:{s:s}, s:{s:s, s:s}}", "action",
	    "create_cluster", "cluster", "name", args->arg[ARG_FQDN],
	    "credentials", "username", args->arg[ARG_USERNAME], "password",
	    pw), "name, username and password",
	    "Cluster created successfully");
	mem_wipe_free(pw);
	return rc;
}

int
cmd_cluster_join(struct adm_session *sess, const struct cmd_args *args)
{
	char	*pw;
	int	 rc;

	if ((pw = cluster_password(args, "Password of the cluster's admin")) ==
	    NULL)
		return ADM_EXIT_USAGE;
	rc = cluster_bootstrap(sess, "/v1/bootstrap/join_cluster",
	    json_pack("{s:s, s:{s:[s], s:s*}, s:{s:s, s:s}}", "action",
	    "join_cluster", "cluster", "nodes", args->arg[ARG_NODE],
	    "ca_fingerprint", args->arg[ARG_CA_FP], "credentials", "username",
	    args->arg[ARG_USERNAME], "password", pw),
	    "nodes, username and password", "Joined cluster successfully");
	mem_wipe_free(pw);
	return rc;
}

/* "param: from -> to" for each parameter the change would alter. */
static void
dry_run_changes_print(const json_t *changes)
{
	const char *param;
	json_t *change;
	char *from, *to;

	if (json_object_size(changes) == 0) {
		printf("No change: the cluster already has these values.\n");
		return;
	}
	printf("Changes:\n");
	json_object_foreach((json_t *)changes, param, change) {
		from = json_member_format(change, "from");
		to = json_member_format(change, "to");
		printf("  %s: %s -> %s\n", param, from != NULL ? from : "?",
		    to != NULL ? to : "?");
		free(from);
		free(to);
	}
}

#define CLOSE_COLS	6

static const char *const close_header[CLOSE_COLS] = {
	"NODE:ID", "ADDRESS", "PORT", "TLS_VERSION", "SESSIONS", "AS_OF"
};

/*
 * One row per port and TLS version of a node ({"api": {"TLSv1.2": 3}}):
 * every member whose value is an object is a port.  A node with nothing
 * to close still gets a row, so that no node seems forgotten.
 */
static void
dry_run_node_rows_add(struct table *t, const json_t *node)
{
	const char *port, *version;
	json_t *counts, *n;
	char *uid;
	int rows = 0;

	uid = json_member_format(node, "uid");
	json_object_foreach((json_t *)node, port, counts) {
		if (!json_is_object(counts))
			continue;
		json_object_foreach(counts, version, n) {
			if (table_row_add(t) == -1)
				break;
			table_cell_printf(t, 0, "node:%s", uid ? uid : "?");
			table_cell_json(t, 1, node, "addr");
			table_cell_printf(t, 2, "%s", port);
			table_cell_printf(t, 3, "%s", version);
			table_cell_json(t, 4, counts, version);
			table_cell_json(t, 5, node, "as_of");
			rows++;
		}
	}
	if (rows == 0 && table_row_add(t) == 0) {
		table_cell_printf(t, 0, "node:%s", uid ? uid : "?");
		table_cell_json(t, 1, node, "addr");
		table_cell_printf(t, 2, "-");
		table_cell_printf(t, 3, "-");
		table_cell_printf(t, 4, "0");
		table_cell_json(t, 5, node, "as_of");
	}
	free(uid);
}

static void
dry_run_close_print(const json_t *would_close)
{
	const json_t *nodes = json_object_get(would_close, "nodes"), *node;
	struct table *t;
	char *total;
	size_t i;

	total = json_member_format(would_close, "total");
	printf("Would close %s live TLS session(s):\n",
	    total != NULL ? total : "?");
	free(total);
	t = table_new(close_header, CLOSE_COLS);
	json_array_foreach(nodes, i, node)
		dry_run_node_rows_add(t, node);
	table_print(t, stdout, "");
	table_free(t);
}

/*
 * A server without dry runs ignores ?dry_run=true and makes the change:
 * say so plainly rather than print it as a preview.
 */
static int
dry_run_print(const json_t *resp)
{
	if (!json_is_true(json_object_get(resp, "dry_run"))) {
		fprintf(stderr, "Error: this moatd does not support dry_run: "
		    "the change WAS applied.\nSee `info cluster`.\n");
		return ADM_EXIT_SERVER;
	}
	printf("Dry run: nothing was changed.\n");
	dry_run_changes_print(json_object_get(resp, "changes"));
	dry_run_close_print(json_object_get(resp, "would_close"));
	return ADM_EXIT_OK;
}

static int
config_param_is_bool(const char *name)
{
	return strcmp(name, "mtls_certificate_authentication") == 0 ||
	    strcmp(name, "control_plane_basic_authentication") == 0;
}

int
cmd_cluster_config(struct adm_session *sess, const struct cmd_args *args)
{
	json_t *body, *resp = NULL, *closed;
	int dry_run = args->arg[ARG_DRY_RUN] != NULL;
	size_t i;
	int rc;

	if ((body = json_object()) == NULL)
		return ADM_EXIT_SERVER;
	for (i = 0; i < args->nparams; i++) {
		const char	*v = args->params[i].value;
		json_t		*jv;
		/* The on/off settings are booleans in the API, words here
		 * (rladmin's enabled/disabled). */
		if (config_param_is_bool(args->params[i].name)) {
			if (strcmp(v, "enabled") != 0 &&
			    strcmp(v, "disabled") != 0) {
				fprintf(stderr, "Error: %s takes enabled or "
				    "disabled\n", args->params[i].name);
				json_decref(body);
				return ADM_EXIT_USAGE;
			}
			jv = json_boolean(strcmp(v, "enabled") == 0);
		} else
			jv = json_string(v);
		if (json_object_set_new(body, args->params[i].name, jv) == -1) {
			fprintf(stderr, "Error: value of %s must be UTF-8 "
			    "text\n", args->params[i].name);
			json_decref(body);
			return ADM_EXIT_USAGE;
		}
	}
	rc = session_api_call(sess, "PUT", dry_run ?
	    "/v1/cluster?dry_run=true" : "/v1/cluster", body, &resp);
	json_decref(body);
	if (rc != ADM_EXIT_OK)
		return rc;
	if (dry_run) {
		rc = dry_run_print(resp);
		json_decref(resp);
		return rc;
	}
	printf("Cluster configured successfully\n");
	closed = json_object_get(resp, "closed_sessions");
	if (json_is_integer(closed) && json_integer_value(closed) > 0)
		printf("Closed %" JSON_INTEGER_FORMAT " TLS session(s) below "
		    "the new minimum version\n", json_integer_value(closed));
	json_decref(resp);
	return ADM_EXIT_OK;
}

int
cmd_cluster_info(struct adm_session *sess, const struct cmd_args *args)
{
	json_t *cluster;
	int rc;

	(void)args;
	if ((rc = session_api_call(sess, "GET", "/v1/cluster", NULL,
	    &cluster)) != ADM_EXIT_OK)
		return rc;
	if (!json_is_object(cluster)) {
		fprintf(stderr, "Error: moatd sent no cluster object\n");
		json_decref(cluster);
		return ADM_EXIT_SERVER;
	}
	printf("cluster configuration:\n");
	json_fields_print(cluster, "   ");
	json_decref(cluster);
	return ADM_EXIT_OK;
}

int
cmd_node_remove(struct adm_session *sess, const struct cmd_args *args)
{
	const char	*uid = args->arg[ARG_NODE];
	char		 path[64];
	json_t		*resp = NULL;
	int		 rc;

	if (uid == NULL || strspn(uid, "0123456789") != strlen(uid) ||
	    strlen(uid) == 0 || strlen(uid) > 9) {
		fprintf(stderr, "Error: node uid must be a number\n");
		return ADM_EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/v1/nodes/%s", uid);
	if ((rc = session_api_call(sess, "DELETE", path, NULL, &resp)) !=
	    ADM_EXIT_OK)
		return rc;
	printf("Node %s removed from the cluster\n", uid);
	json_decref(resp);
	return ADM_EXIT_OK;
}

int
cmd_store_move(struct adm_session *sess, const struct cmd_args *args)
{
	json_t	*body, *resp = NULL;
	int	 rc;

	if ((body = json_pack("{s:s}", "store", args->arg[ARG_STORE])) == NULL)
		return ADM_EXIT_USAGE;
	rc = session_api_call(sess, "PUT", "/v1/cluster/store", body, &resp);
	json_decref(body);
	if (rc != ADM_EXIT_OK)
		return rc;
	printf("Cluster moved to %s\n", json_string_value(json_object_get(resp,
	    "store")));
	json_decref(resp);
	return ADM_EXIT_OK;
}
