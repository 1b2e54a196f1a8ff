/*
 * acme.h — an ACME client (RFC 8555) on libcurl, jansson and OpenSSL:
 * JWS requests signed with an ES256 account key, nonces, orders,
 * authorizations, challenges, finalization, and the keys, CSRs and
 * tls-alpn-01 certificates (RFC 8737) they need.
 *
 * Blocking: every call that says "network" makes HTTPS requests, so it
 * runs on a work pool thread, never on a loop.  No moatd state here:
 * what to keep (the account, the order) is the caller's.  An ACME
 * server's error (a problem document, RFC 7807) comes back as its type
 * and detail in the err's message.
 */
#ifndef MOAT_ACME_H
#define MOAT_ACME_H

#include <stddef.h>

#include <jansson.h>

#include "err.h"

struct acme;

struct acme_opts {
	const char	*directory_url;	/* https://... */
	const char	*ca_bundle;	/* PEM the server is checked against;
					   NULL: the system's */
	const char	*account_key;	/* PEM, EC P-256 */
	const char	*account_url;	/* the kid, until acme_account */
	int		 timeout_s;	/* per request */
	/* Polled during transfers: non-zero aborts them (NULL: never). */
	int		(*abort_cb)(void *);
	void		*abort_arg;
};

/* Network: read the directory.  The strings of o are copied. */
struct acme	*acme_new(const struct acme_opts *o, struct err *e);
void		 acme_free(struct acme *a);

/*
 * Network: the account of the key (created when the server does not
 * know it, with these mailto: contacts and the terms agreed; asked each
 * time, so that an account the CA lost is made again).  *kid gets its
 * URL (owned by a).
 */
int		 acme_account(struct acme *a, const json_t *contact,
		    const char **kid, struct err *e);

/*
 * Network: a signed POST of payload (NULL: POST-as-GET) to url.  *out
 * gets the JSON answer (NULL when it was not JSON), *text the raw body
 * (NULL to skip), *location the Location header (NULL to skip); all the
 * caller's.  An answer other than 2xx is an error.
 */
int		 acme_post(struct acme *a, const char *url,
		    const json_t *payload, json_t **out, char **text,
		    char **location, struct err *e);
/* The directory's URL for one of its resources ("newOrder"...). */
const char	*acme_dir_url(const struct acme *a, const char *resource);

/* token "." thumbprint of the account key (RFC 8555 8.1); caller's. */
char		*acme_key_authorization(const struct acme *a,
		    const char *token);

/* No network: a new private key, "ec256" or "rsa2048", as PEM. */
int		 acme_key_new(const char *type, char **key_pem,
		    struct err *e);
/* A CSR for names (the first is the subject's CN) signed by key_pem,
 * base64url DER as finalize wants it. */
int		 acme_csr(const char *key_pem, const char *const *names,
		    size_t n, char **csr, struct err *e);
/* The tls-alpn-01 answer for name: a self-signed certificate carrying
 * SHA-256(key_authorization) in id-pe-acmeIdentifier, and its key. */
int		 acme_alpn_cert(const char *name, const char *key_auth,
		    char **cert_pem, char **key_pem, struct err *e);
/* The dns-01 TXT value: base64url(SHA-256(key_authorization)). */
char		*acme_dns_txt(const char *key_auth);

#endif
