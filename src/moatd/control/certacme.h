/*
 * certacme.h — certificates from an ACME CA (RFC 8555), ordered by one
 * node and served by all, renewed before they expire.
 *
 * Per certificate name, PUT /v1/cluster/certificates/<name>/acme stores
 * the settings once the CA accepted an order for them.  The jobs tick
 * then works the order on whichever node holds the lease in the store:
 * challenges answered by every node (http-01 on a port of the operator's
 * choice, tls-alpn-01 on the api and cm ports, dns-01 through a hook),
 * the certificate installed like any update (validated, rolled out), and
 * renewed at two thirds of its lifetime.  A failed order retries with
 * back-off, raises cluster_acme_order_failed, and never takes away the
 * certificate in place.
 */
#ifndef MOATD_CERTACME_H
#define MOATD_CERTACME_H

#include <jansson.h>

#include "api.h"
#include "node.h"
#include "store.h"

/* GET, PUT (API_ASYNC: the CA is asked first), DELETE, and POST .../renew
 * of /v1/cluster/certificates/:name/acme. */
int	 api_acme_get(struct api_req *r, struct err *e);
int	 api_acme_put(struct api_req *r, struct err *e);
int	 api_acme_delete(struct api_req *r, struct err *e);
int	 api_acme_renew(struct api_req *r, struct err *e);

/* The jobs tick: start an order that is due when the lease is free. */
void	 certacme_tick(struct node *n);
/* Apply: serve http-01 on the ports the settings name, and the
 * tls-alpn-01 answers, as the store says. */
void	 certacme_apply(struct node *n, const struct store_kv *kv, size_t nkv);
/* For the alerts: {name, hot_since} of each certificate whose last
 * order failed; a new array. */
json_t	*certacme_alert_items(struct node *n);
/* At shutdown: stop the order under way, close the listeners. */
void	 certacme_shutdown(struct node *n);

#endif
