/*
 * ocsp.h — OCSP stapling for the proxy certificate, RS's /v1/ocsp.
 *
 * One node at a time (a lease in the store) asks the responder named in
 * the proxy certificate; the verified answer goes into the store, and
 * every node staples it to its databases' handshakes.  Failures retry
 * every recovery_frequency; after recovery_max_tries the staple is
 * dropped and cluster_ocsp_query_failed is raised.  A REVOKED answer
 * raises cluster_ocsp_status_revoked.
 */
#ifndef MOATD_OCSP_H
#define MOATD_OCSP_H

#include <jansson.h>

#include "api.h"
#include "node.h"

/* The handlers of GET/PUT /v1/ocsp, GET /v1/ocsp/status and
 * POST /v1/ocsp/test (which returns API_ASYNC). */
int	 api_ocsp_get(struct api_req *r, struct err *e);
int	 api_ocsp_put(struct api_req *r, struct err *e);
int	 api_ocsp_status(struct api_req *r, struct err *e);
int	 api_ocsp_test(struct api_req *r, struct err *e);

/* The jobs tick: query the responder when it is due and this node holds
 * the lease. */
void	 ocsp_tick(struct node *n);

/* For the alerts: the certificates whose staple says REVOKED (revoked
 * set), or whose last recovery_max_tries queries failed, each {name,
 * hot_since} (the revocation, or the first failure); a new array. */
json_t	*ocsp_alert_items(struct node *n, int revoked);

#endif
