/*
 * metrics.h — the Prometheus exporter on --metrics-port: HTTPS with the
 * metrics_exporter certificate, text format, no sign-in (like RS's: the
 * numbers hold no secret).  Certificate expiry under RS's two names (/
 * and /v2), and moat's own counters (docs/operations.md lists them).
 */
#ifndef MOATD_METRICS_H
#define MOATD_METRICS_H

#include <event2/http.h>

#include "node.h"

/* The listener's callback; arg is the struct node. */
void	 metrics_dispatch(struct evhttp_request *req, void *arg);

#endif
