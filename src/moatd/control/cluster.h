/* cluster.h — the writer of the cluster object's TLS policy
 * (GET/PUT /v1/cluster). */
#ifndef MOATD_CLUSTER_H
#define MOATD_CLUSTER_H

#include <jansson.h>

#include "api.h"

/* The RS cluster object as stored (NULL with e). */
json_t	*cluster_get_json(struct node *n, struct err *e);
/*
 * A PUT /v1/cluster body: every field checked (by OpenSSL for the cipher
 * strings, by a trial handshake of every stored certificate under the
 * new policy), then one store transaction, answered once every live node
 * applies it (-1 or API_ASYNC).  With r->dry_run nothing is written: the
 * answer says what would change and how many live sessions, per node and
 * TLS version, a raised minimum would close (0 or -1).
 */
int	 cluster_update(struct api_req *r, struct err *e);

#endif
