/* err.c — the table that maps each error code to its REST name and status. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "err.h"

static const struct {
	const char	*name;
	int		 status;
} err_table[E__COUNT] = {
	[E_OK] =		{ "ok", 200 },
	[E_INVALID_JSON] =	{ "invalid_json", 400 },
	[E_INVALID_SCHEMA] =	{ "invalid_schema", 400 },
	[E_TOO_LARGE] =		{ "payload_too_large", 413 },
	[E_UNKNOWN_CERT] =	{ "unknown_certificate", 403 },
	[E_UNKNOWN_CERT_404] =	{ "unknown_certificate", 404 },
	[E_CERT_REQUIRED] =	{ "certificate_required", 403 },
	[E_INVALID_PEM] =	{ "invalid_pem", 400 },
	[E_KEY_MISMATCH] =	{ "key_values_mismatch", 400 },
	[E_EXPIRED] =		{ "certificate_expired", 406 },
	[E_NOT_YET_VALID] =	{ "certificate_not_yet_valid", 400 },
	[E_INVALID_CHAIN] =	{ "invalid_chain", 400 },
	[E_WEAK_KEY] =		{ "weak_key", 400 },
	[E_WEAK_SIGNATURE] =	{ "weak_signature", 400 },
	[E_KEY_USAGE] =		{ "invalid_key_usage", 400 },
	[E_HOSTNAME] =		{ "hostname_mismatch", 400 },
	[E_HANDSHAKE] =		{ "handshake_failed", 400 },
	[E_DUPLICATE_CERT] =	{ "duplicate_certificate", 400 },
	[E_INVALID_TLS_VERSION] = { "invalid_tls_version", 400 },
	[E_INVALID_CIPHER] =	{ "invalid_cipher_list", 400 },
	[E_UNAUTHORIZED] =	{ "unauthorized", 401 },
	[E_FORBIDDEN] =		{ "forbidden", 403 },
	[E_RATE_LIMITED] =	{ "too_many_failed_logins", 429 },
	[E_NOT_FOUND] =		{ "not_found", 404 },
	[E_METHOD] =		{ "method_not_allowed", 405 },
	[E_NOT_BOOTSTRAPPED] =	{ "cluster_not_bootstrapped", 503 },
	[E_CLUSTER_EXISTS] =	{ "cluster_already_exists", 409 },
	[E_BOOTSTRAP_FORBIDDEN] = { "bootstrap_forbidden", 403 },
	[E_INVALID_FQDN] =	{ "invalid_fqdn", 400 },
	[E_INVALID_PASSWORD] =	{ "invalid_password", 400 },
	[E_INVALID_EMAIL] =	{ "invalid_email", 400 },
	[E_INVALID_ROLE] =	{ "invalid_role", 400 },
	[E_EMAIL_EXISTS] =	{ "email_already_exists", 409 },
	[E_USER_NOT_FOUND] =	{ "user_not_found", 404 },
	[E_LAST_ADMIN] =	{ "change_last_admin_role_not_allowed", 409 },
	[E_NODE_NOT_FOUND] =	{ "node_not_found", 404 },
	[E_NOT_ALL_NODES] =	{ "not_all_nodes_updated", 409 },
	[E_CONFLICT] =		{ "config_edit_conflict", 409 },
	[E_STORE] =		{ "store_unavailable", 503 },
	[E_BDB_NOT_FOUND] =	{ "bdb_not_found", 404 },
	[E_INVALID_PORT] =	{ "invalid_port", 400 },
	[E_PORT_IN_USE] =	{ "port_in_use", 409 },
	[E_NAME_IN_USE] =	{ "name_in_use", 409 },
	[E_INVALID_TLS_MODE] =	{ "invalid_tls_mode", 400 },
	[E_INVALID_CERTIFICATE] = { "invalid_certificate", 400 },
	[E_DUPLICATED_CERTS] =	{ "duplicated_certs", 400 },
	[E_INVALID_CONFIG] =	{ "invalid_configuration", 400 },
	[E_INVALID_MEMORY] =	{ "invalid_memory_size", 400 },
	[E_JOIN_FAILED] =	{ "join_failed", 400 },
	[E_STORE_NOT_SHARED] =	{ "store_not_shared", 409 },
	[E_STORE_REFUSED] =	{ "store_unavailable", 503 },
	[E_UNSUPPORTED_ROTATION] = { "unsupported_rotation", 403 },
	[E_CSRF] =		{ "csrf_token_invalid", 403 },
	[E_LOCKOUT] =		{ "admin_lockout", 409 },
	[E_INVALID_OCSP] =	{ "invalid_ocsp_response", 400 },
	[E_NO_RESPONDER] =	{ "no_responder_url", 400 },
	[E_ACME_UNREACHABLE] =	{ "acme_server_unreachable", 400 },
	[E_ACME_REFUSED] =	{ "acme_refused", 400 },
	[E_INTERNAL] =		{ "internal_error", 500 },
};

int
err_set(struct err *e, enum errc code, const char *fmt, ...)
{
	va_list	 ap;
	char	*m = NULL;

	if (e == NULL)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(&m, fmt, ap) == -1)
		m = NULL;
	va_end(ap);
	free(e->msg);
	e->code = code;
	e->msg = m;
	return -1;
}

void
err_clear(struct err *e)
{
	if (e == NULL)
		return;
	free(e->msg);
	e->msg = NULL;
	e->code = E_OK;
}

const char *
err_name(enum errc code)
{
	if (code < 0 || code >= E__COUNT || err_table[code].name == NULL)
		return "internal_error";
	return err_table[code].name;
}

int
err_http_status(enum errc code)
{
	if (code < 0 || code >= E__COUNT || err_table[code].status == 0)
		return 500;
	return err_table[code].status;
}

const char *
err_msg(const struct err *e)
{
	if (e->msg != NULL)
		return e->msg;
	return err_name(e->code);
}
