/*
 * err.h — one error vocabulary for moatd, the API and moatadm.
 *
 * Every failure that can reach a user carries a code from this enum and a
 * human description.  The code decides the HTTP status and the REST
 * `error_code`; the description says which input was wrong.  Descriptions
 * never contain key material: callers format them from names and numbers.
 */
#ifndef MOAT_ERR_H
#define MOAT_ERR_H

enum errc {
	E_OK = 0,
	E_INVALID_JSON,
	E_INVALID_SCHEMA,
	E_TOO_LARGE,
	E_UNKNOWN_CERT,
	E_UNKNOWN_CERT_404,
	E_CERT_REQUIRED,
	E_INVALID_PEM,
	E_KEY_MISMATCH,
	E_EXPIRED,
	E_NOT_YET_VALID,
	E_INVALID_CHAIN,
	E_WEAK_KEY,
	E_WEAK_SIGNATURE,
	E_KEY_USAGE,
	E_HOSTNAME,
	E_HANDSHAKE,
	E_DUPLICATE_CERT,
	E_INVALID_TLS_VERSION,
	E_INVALID_CIPHER,
	E_UNAUTHORIZED,
	E_FORBIDDEN,
	E_RATE_LIMITED,
	E_NOT_FOUND,
	E_METHOD,
	E_NOT_BOOTSTRAPPED,
	E_CLUSTER_EXISTS,
	E_BOOTSTRAP_FORBIDDEN,
	E_INVALID_FQDN,
	E_INVALID_PASSWORD,
	E_INVALID_EMAIL,
	E_INVALID_ROLE,
	E_EMAIL_EXISTS,
	E_USER_NOT_FOUND,
	E_LAST_ADMIN,
	E_NODE_NOT_FOUND,
	E_NOT_ALL_NODES,
	E_CONFLICT,
	E_STORE,
	E_BDB_NOT_FOUND,
	E_INVALID_PORT,
	E_PORT_IN_USE,
	E_NAME_IN_USE,
	E_INVALID_TLS_MODE,
	E_INVALID_CERTIFICATE,
	E_DUPLICATED_CERTS,
	E_INVALID_CONFIG,
	E_INVALID_MEMORY,
	E_JOIN_FAILED,
	E_STORE_NOT_SHARED,
	E_STORE_REFUSED,	/* the store answers but refuses us (TLS, auth) */
	E_UNSUPPORTED_ROTATION,
	E_CSRF,
	E_LOCKOUT,	/* the change would leave no admin a way to sign in */
	E_INVALID_OCSP,	/* the responder's answer is unusable */
	E_NO_RESPONDER,	/* the certificate names no OCSP responder */
	E_ACME_UNREACHABLE,	/* no answer from the ACME server (or an
				   untrusted one) */
	E_ACME_REFUSED,	/* the ACME server's problem document */
	E_INTERNAL,
	E__COUNT
};

/* An error: code plus heap description (owned by the struct). */
struct err {
	enum errc	 code;
	char		*msg;
};

/* Record an error in e (may be NULL); always returns -1 so callers can
 * `return err_set(...)`.  A second call replaces the first. */
int		 err_set(struct err *e, enum errc code, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));
void		 err_clear(struct err *e);
/* RS-style `error_code` string, e.g. "key_values_mismatch". */
const char	*err_name(enum errc code);
int		 err_http_status(enum errc code);
/* Message or, when none was set, the code's name. */
const char	*err_msg(const struct err *e);

#endif
