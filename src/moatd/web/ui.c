/*
 * ui.c — the cm port's requests: the page's files and /ca.pem here;
 * /v1/ (the REST API) and /ui/session go to the API's dispatcher, which
 * authenticates them by the session cookie (control/sessions.c).
 */
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "api.h"
#include "schema.h"
#include "ui.h"
#include "ui_assets.h"

/* The page runs only its own code: no inline script, nothing from
 * another host, no framing. */
static const char *const ui_headers[][2] = {
	{ "Content-Security-Policy", "default-src 'self'; img-src 'self' "
	    "data:; frame-ancestors 'none'; base-uri 'none'; form-action "
	    "'self'" },
	{ "X-Content-Type-Options", "nosniff" },
	{ "Referrer-Policy", "no-referrer" },
	{ "X-Frame-Options", "DENY" },
	{ "Cache-Control", "no-cache" },
};

static void
ui_send(struct evhttp_request *req, int status, const char *type,
    const void *data, size_t len, const char *disposition)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct evbuffer		*b = evbuffer_new();
	size_t			 i;

	for (i = 0; i < sizeof(ui_headers) / sizeof(ui_headers[0]); i++)
		evhttp_add_header(h, ui_headers[i][0], ui_headers[i][1]);
	evhttp_add_header(h, "Content-Type", type);
	if (disposition != NULL)
		evhttp_add_header(h, "Content-Disposition", disposition);
	if (b != NULL && data != NULL)
		evbuffer_add(b, data, len);
	evhttp_send_reply(req, status, NULL, b);
	if (b != NULL)
		evbuffer_free(b);
}

/* The cluster CA: public, so a browser can fetch it before it trusts
 * the port it fetches it from. */
void
ui_ca(struct evhttp_request *req, struct node *n)
{
	json_t		*doc = NULL;
	char		*bundle = NULL;

	/* During a CA rollover both CAs: a client that trusts this file
	 * verifies the cluster before and after the switch. */
	if (n->store == NULL || (doc = schema_get(n->store,
	    schema_key(SK_CA), NULL, NULL)) == NULL ||
	    (bundle = ca_doc_bundle(doc)) == NULL) {
		static const char msg[] = "no cluster CA (yet)\n";
		ui_send(req, 404, "text/plain; charset=utf-8", msg,
		    sizeof(msg) - 1, NULL);
	} else {
		ui_send(req, 200, "application/x-pem-file", bundle,
		    strlen(bundle), "attachment; filename=\"ca.pem\"");
	}
	free(bundle);
	json_decref(doc);
}

void
ui_dispatch(struct evhttp_request *req, void *arg)
{
	struct api_listener		*l = arg;
	const struct evhttp_uri		*uri = evhttp_request_get_evhttp_uri(req);
	const char			*path = uri ? evhttp_uri_get_path(uri) : NULL;
	const struct ui_asset		*a;

	if (path == NULL || strncmp(path, "/v1/", 4) == 0 ||
	    strncmp(path, "/ui/", 4) == 0 ||
	    evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		api_dispatch(req, arg);
		return;
	}
	if (strcmp(path, "/ca.pem") == 0) {
		ui_ca(req, l->node);
		return;
	}
	if (strcmp(path, "/") == 0)
		path = "/index.html";
	for (a = ui_assets; a->path != NULL; a++) {
		if (strcmp(a->path, path) == 0) {
			ui_send(req, 200, a->type, a->data, a->len, NULL);
			return;
		}
	}
	api_dispatch(req, arg);	/* its 404 has the API's shape */
}
