/*
 * nodes.c — see nodes.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "log.h"
#include "nodes.h"
#include "schema.h"

/* 1 when node uid is announced in the store (alive, reaching the store). */
static int
nodes_alive(struct store_kv *alive, size_t nalive, int uid)
{
	char	key[SCHEMA_KEY_MAX];
	size_t	i;

	schema_key_of(SK_ALIVE, uid, key);
	for (i = 0; i < nalive; i++)
		if (strcmp(alive[i].key, key) == 0)
			return 1;
	return 0;
}

json_t *
nodes_list_json(struct node *n, int uid, struct err *e)
{
	struct store_kv	*alive = NULL;
	size_t		 nalive = 0, i;
	json_t		*docs, *arr, *doc;

	if ((docs = schema_list(n->store, SK_NODE, e)) == NULL)
		return NULL;
	/* Liveness is the presence key, not what a node last wrote about
	 * itself: a node killed with -9 wrote nothing. */
	if (store_list(n->store, schema_prefix(SK_ALIVE), &alive, &nalive,
	    e) == -1) {
		json_decref(docs);
		return NULL;
	}
	arr = json_array();
	json_array_foreach(docs, i, doc) {
		int u = (int)json_integer_value(json_object_get(doc, "uid"));
		json_object_del(doc, "_rev");
		json_object_set_new(doc, "status", json_string(nodes_alive(alive,
		    nalive, u) ? "active" : "down"));
		if (uid > 0 && u == uid) {
			json_incref(doc);
			json_decref(arr);
			json_decref(docs);
			store_kvs_free(alive, nalive);
			return doc;
		}
		json_array_append(arr, doc);
	}
	json_decref(docs);
	store_kvs_free(alive, nalive);
	if (uid > 0) {
		json_decref(arr);
		err_set(e, E_NODE_NOT_FOUND, "node %d does not exist", uid);
		return NULL;
	}
	return arr;
}

int
nodes_remove(struct node *n, int uid, const char *who, struct err *e)
{
	struct store_txn	*t;
	json_t			*doc;
	char			 key[SCHEMA_KEY_MAX], akey[SCHEMA_KEY_MAX];
	char			*v = NULL;
	int64_t			 rev;
	int			 rc;

	if ((doc = nodes_list_json(n, uid, e)) == NULL)
		return -1;
	if (strcmp(json_string_value(json_object_get(doc, "status")),
	    "active") == 0) {
		json_decref(doc);
		return err_set(e, E_CONFLICT, "node %d is active; stop its "
		    "moatd first, then remove it", uid);
	}
	json_decref(doc);
	schema_key_of(SK_NODE, uid, key);
	if (store_get(n->store, key, &v, &rev, e) == -1)
		return -1;
	free(v);
	if ((t = store_txn_new()) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	store_txn_cmp(t, key, rev);
	/* ...and it must still be down when the removal commits. */
	store_txn_cmp(t, schema_key_of(SK_ALIVE, uid, akey), 0);
	store_txn_del(t, key);
	rc = store_txn_commit(n->store, t, e);
	store_txn_free(t);
	if (rc == 0) {
		log_audit("%s removed node %d from the cluster", who, uid);
		events_add(n, "node_removed", "INFO", json_pack("{s:i, s:s}",
		    "uid", uid, "user", who));
	}
	return rc;
}
