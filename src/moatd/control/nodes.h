/*
 * nodes.h — the cluster's nodes as the store knows them: what each
 * reported about itself, and whether it is alive (its presence key).
 */
#ifndef MOATD_NODES_H
#define MOATD_NODES_H

#include <jansson.h>

#include "node.h"

/* The node documents with "status" from presence, or one (uid > 0; NULL
 * with E_NODE_NOT_FOUND).  Caller owns. */
json_t	*nodes_list_json(struct node *n, int uid, struct err *e);
/* Take node uid out of the cluster; only a node that is down. */
int	 nodes_remove(struct node *n, int uid, const char *who,
	    struct err *e);

#endif
