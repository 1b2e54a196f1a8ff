/*
 * alerts.h — RS's certificate expiry alerts, computed from the store:
 * cluster_certs_about_to_expire (the service certificates) and
 * node_internal_certs_about_to_expire (the cluster CA), with the
 * cluster's alert_settings (enabled, threshold in days, 45 by default).
 */
#ifndef MOATD_ALERTS_H
#define MOATD_ALERTS_H

#include <jansson.h>

#include "node.h"

/* alert_settings of a stored cluster document, defaults filled. */
json_t	*alerts_settings_public(const json_t *cluster_doc);
/* Validate a PUT's alert_settings and merge it over the stored ones: the
 * new object to store, or NULL with e (E_INVALID_SCHEMA). */
json_t	*alerts_settings_merge(const json_t *cluster_doc, const json_t *body,
	    struct err *e);
/* Every alert (name NULL: {name: alert}) or one (E_NOT_FOUND), as RS's
 * alert objects; ignore_settings: the state even when disabled. */
json_t	*alerts_json(struct node *n, const char *name, int ignore_settings,
	    struct err *e);
/* Record the alerts' and the nodes' state changes, each with its event,
 * once for the cluster (any node may call it; see alerts.c). */
void	 alerts_evaluate(struct node *n);
/* This node stops cleanly: record it down (with its event) now. */
void	 alerts_node_stopping(struct node *n);

#endif
