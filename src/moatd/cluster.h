/* cluster.h — the cluster object's TLS policy (GET/PUT /v1/cluster). */
#ifndef MOATD_CLUSTER_H
#define MOATD_CLUSTER_H

#include <jansson.h>

#include "node.h"

/*
 * Apply a PUT /v1/cluster body: every field checked (by OpenSSL for the
 * cipher strings, by a trial handshake of every certificate under the new
 * policy), then one store transaction.  *out is the new cluster object
 * plus "closed_sessions".
 */
int	cluster_update(struct node *n, json_t *body, const char *who,
	    json_t **out, struct err *e);

#endif
