/*
 * bootstrap.h — a node's way into a cluster, and the cluster's way to
 * another store: create_cluster, join_cluster, and moving the cluster
 * from the embedded store to etcd.
 */
#ifndef MOATD_BOOTSTRAP_H
#define MOATD_BOOTSTRAP_H

#include "api.h"

/* POST /v1/bootstrap/create_cluster (-1 or API_ASYNC). */
int	bootstrap_create(struct api_req *r, const char *fqdn,
	    const char *user, const char *password, struct err *e);
/* POST /v1/bootstrap/join_cluster through node ("addr[:api port]"),
 * proving user/password to it (-1 or API_ASYNC). */
int	bootstrap_join(struct api_req *r, const char *node,
	    const char *ca_fp, const char *user, const char *password,
	    struct err *e);
/* PUT /v1/cluster/store: move this node's cluster from its embedded
 * store to etcd (url), keeping everything (0/-1). */
int	bootstrap_move_store(struct node *n, const char *url, const char *who,
	    struct err *e);

#endif
