/* join.h — POST /v1/bootstrap/join_cluster. */
#ifndef MOATD_JOIN_H
#define MOATD_JOIN_H

#include <jansson.h>

#include "node.h"

/* Join the cluster that node ("addr[:api port]") belongs to, proving
 * user/password to it.  *out: {"node_uid", "cluster"}. */
int	node_join_cluster(struct node *n, const char *node, const char *user,
	    const char *password, json_t **out, struct err *e);

/* Move the cluster of this node from its embedded store to etcd (url),
 * keeping certificates, policy, users and databases. */
int	node_move_store(struct node *n, const char *url, const char *who,
	    struct err *e);

#endif
