/*
 * ui.h — the cm port: the management UI's page (embedded files), the
 * cluster CA for download, and the REST API with session sign-in.
 */
#ifndef MOATD_UI_H
#define MOATD_UI_H

#include <event2/http.h>

/* evhttp callback of the cm port; arg is a struct api_listener. */
void	ui_dispatch(struct evhttp_request *req, void *arg);

#endif
