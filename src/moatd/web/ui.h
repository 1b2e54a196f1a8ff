/*
 * ui.h — the cm port: the management UI's page (embedded files), the
 * cluster CA for download, and the REST API with session sign-in.
 */
#ifndef MOATD_UI_H
#define MOATD_UI_H

#include <event2/http.h>

/* evhttp callback of the cm port; arg is a struct api_listener. */
void	ui_dispatch(struct evhttp_request *req, void *arg);

struct node;
/* GET /ca.pem: every CA clients must trust (no sign-in: a client fetches
 * it before it can verify anything).  The API port serves it too, for a
 * joining node that pins the CA by its fingerprint. */
void	ui_ca(struct evhttp_request *req, struct node *n);

#endif
