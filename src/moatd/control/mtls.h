/*
 * mtls.h — signing in to the API and the UI with a client certificate
 * (RS's mtls_* cluster fields, the key-less mtls_trusted_ca certificate
 * and control_plane_basic_authentication), and the rule that no change
 * may leave the admins without a way to sign in.
 *
 * Everything lives in the cluster document; what a certificate proves is
 * checked at every request against the document of that moment.
 */
#ifndef MOATD_MTLS_H
#define MOATD_MTLS_H

#include <event2/http.h>
#include <jansson.h>

#include "api.h"
#include "https.h"
#include "store.h"
#include "users.h"

/* The name of the key-less certificate the client certificates chain to. */
#define MTLS_CA_NAME	"mtls_trusted_ca"

/* A settable cluster field of certificate sign-in: 0 (valid), -1 (e),
 * or 1 when key is not one of them. */
int	 mtls_check_field(const char *key, json_t *v, struct err *e);
/* The merged cluster document doc is consistent and leaves the admins a
 * way in; t gets compares on what the decision read. */
int	 mtls_check_doc(struct node *n, json_t *doc, struct store_txn *t,
	    struct err *e);
/* Add the public sign-in fields of doc to out (GET /v1/cluster). */
void	 mtls_public(const json_t *doc, json_t *out);

/* 1 when passwords may sign in now (control_plane_basic_authentication),
 * 0 when not, -1 when the store does not answer (e). */
int	 mtls_basic_allowed(struct node *n, struct err *e);
/*
 * Sign in by the client certificate of req's connection on h: 1 with u
 * filled, 0 when there is nothing to go by (no certificate, or the
 * cluster does not sign in with certificates), -1 refused (E_UNAUTHORIZED
 * saying why).
 */
int	 mtls_authenticate(struct node *n, struct https *h,
	    struct evhttp_request *req, struct auth_user *u, struct err *e);
/* Certificate admin uid is about to be deleted or demoted: refused when
 * passwords are off and no other certificate admin remains; t compares
 * what was read.  docs: the users as listed. */
int	 mtls_keep_cert_admin(struct node *n, json_t *docs, int uid,
	    struct store_txn *t, struct err *e);

/* mtls_trusted_ca through the certificate endpoints: set (single: in
 * update_cert's shape), delete, describe.  Set and delete return -1 or
 * API_ASYNC (answered once every live node applies it). */
int	 mtls_ca_update(struct api_req *r, const char *pem, int single,
	    struct err *e);
int	 mtls_ca_delete(struct api_req *r, struct err *e);
json_t	*mtls_ca_describe(struct node *n, struct err *e);
/* The stored PEM (caller frees), NULL when none or unreadable. */
char	*mtls_ca_pem(struct node *n);

#endif
