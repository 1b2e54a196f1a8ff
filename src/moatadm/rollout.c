/*
 * The report of a change that not every node confirmed in time (409
 * not_all_nodes_updated).  The change is stored and every node converges
 * on it, so the operator must not read the 409 as a failure and retry; what
 * helps is to see which nodes lag and what each of them serves meanwhile.
 */
#include <stdlib.h>
#include <string.h>

#include "moatadm.h"

#define NODE_COLS	4
#define CERT_COLS	3

static const char *const node_header[NODE_COLS] = {
	"NODE:ID", "ADDRESS", "STATUS", "APPLIED_REV"
};
static const char *const node_cert_header[NODE_COLS + CERT_COLS] = {
	"NODE:ID", "ADDRESS", "STATUS", "APPLIED_REV", "CERTIFICATE",
	"VERSION", "FINGERPRINT(SHA256)"
};

/*
 * The certificates the change stored: the "certificates" list of a bulk
 * change or a rotation, or the body itself for update_cert's single one;
 * an empty array for a policy change.  A new reference, or NULL.
 */
static json_t *
rollout_certs(const json_t *body)
{
	json_t *list = json_object_get(body, "certificates");

	if (json_is_array(list))
		return json_incref(list);
	if (json_is_string(json_object_get(body, "name")))
		return json_pack("[O]", body);
	return json_array();
}

static int
rollout_node_lagging(const json_t *node)
{
	const char *st = json_string_value(json_object_get(node, "status"));

	return st == NULL || strcmp(st, "updated") != 0;
}

void
rollout_cert_print(const char *verb, const json_t *c)
{
	char *name = json_member_format(c, "name");
	char *version = json_member_format(c, "version");
	char *fp = json_member_format(c, "fingerprint_sha256");

	printf("%s certificate %s: version %s, fingerprint %s\n", verb,
	    name != NULL ? name : "?", version != NULL ? version : "?",
	    fp != NULL ? fp : "?");
	free(name);
	free(version);
	free(fp);
}

/* What the lagging nodes will serve once they converge. */
static void
rollout_stored_print(const json_t *certs)
{
	const json_t *c;
	size_t i;

	json_array_foreach(certs, i, c)
		rollout_cert_print("Stored", c);
}

/* One row per lagging node, or per lagging node and changed certificate. */
static void
rollout_node_rows_add(struct table *t, const json_t *node,
    const json_t *certs)
{
	const json_t *c, *served;
	const char *name;
	char *uid, *version;
	size_t i, n = json_array_size(certs);

	uid = json_member_format(node, "uid");
	for (i = 0; i == 0 || i < n; i++) {
		if (table_row_add(t) == -1)
			break;
		table_cell_printf(t, 0, "node:%s", uid != NULL ? uid : "?");
		table_cell_json(t, 1, node, "addr");
		table_cell_json(t, 2, node, "status");
		table_cell_json(t, 3, node, "applied_rev");
		if (n == 0)
			break;
		c = json_array_get(certs, i);
		name = json_string_value(json_object_get(c, "name"));
		served = json_object_get(json_object_get(node, "certificates"),
		    name != NULL ? name : "");
		table_cell_printf(t, NODE_COLS, "%s", name != NULL ? name : "?");
		if (served != NULL) {
			version = json_member_format(served, "version");
			table_cell_printf(t, NODE_COLS + 1, "v%s",
			    version != NULL ? version : "?");
			free(version);
			table_cell_fingerprint(t, NODE_COLS + 2,
			    json_string_value(json_object_get(served,
			    "fingerprint_sha256")));
		} else {
			/* the node never reported this certificate */
			table_cell_printf(t, NODE_COLS + 1, "-");
			table_cell_printf(t, NODE_COLS + 2, "-");
		}
	}
	free(uid);
}

void
rollout_report_print(const json_t *body)
{
	const json_t *nodes = json_object_get(body, "nodes"), *node;
	struct table *t;
	json_t *certs;
	size_t i, lagging = 0;

	certs = rollout_certs(body);
	json_array_foreach(nodes, i, node)
		lagging += rollout_node_lagging(node);
	printf("\nThe change is stored, but %zu of %zu node(s) did not "
	    "confirm it in time.\n", lagging, json_array_size(nodes));
	printf("This is not a failure: do not retry. Every node applies the "
	    "stored change\nas soon as it can; a node that is down applies it "
	    "when it returns, before\nit serves. Follow it with `moatadm "
	    "status`.\n");
	rollout_stored_print(certs);
	t = json_array_size(certs) > 0 ?
	    table_new(node_cert_header, NODE_COLS + CERT_COLS) :
	    table_new(node_header, NODE_COLS);
	json_array_foreach(nodes, i, node)
		if (rollout_node_lagging(node))
			rollout_node_rows_add(t, node, certs);
	if (table_rows(t) > 0) {
		printf("Nodes that did not confirm:\n");
		table_print(t, stdout, "");
	}
	table_free(t);
	json_decref(certs);
}
