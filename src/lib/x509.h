/*
 * x509.h — certificate material: parse, validate, describe, issue.
 *
 * Following HAProxy's split, a `struct x509_material` is the parsed and
 * validated certificate chain plus private key of one service; the TLS
 * context built from it lives in tlsctx.h and can be replaced on its own.
 * OpenSSL types never leave this module and tlsctx.c.
 */
#ifndef MOAT_X509_H
#define MOAT_X509_H

#include <time.h>

#include <jansson.h>

#include "err.h"

struct x509_material;

/* What a service needs of its certificate. */
struct x509_check {
	const char	*fqdn;		/* leaf must cover it (NULL: skip) */
	int		 need_wildcard;	/* leaf must also cover *.<fqdn> */
	int		 need_client_auth; /* EKU must allow clientAuth */
	time_t		 now;		/* 0: time(NULL) */
};

/*
 * Parse a PEM chain (leaf first) and, when key_pem is not NULL, its
 * private key.  The caller keeps its strings; *out is owned by the caller
 * and freed with x509_material_free.  Fails with E_INVALID_PEM,
 * E_KEY_MISMATCH.
 */
int	 x509_material_parse(const char *cert_pem, const char *key_pem,
	    struct x509_material **out, struct err *e);
/* New input only (stored material is parsed leniently, as it was
 * accepted): 0 when key_pem holds one private key and nothing after it
 * but blank space; E_INVALID_PEM otherwise. */
int	 x509_key_pem_single(const char *key_pem, struct err *e);
/* Wipes the key before freeing. NULL is fine. */
void	 x509_material_free(struct x509_material *m);

/*
 * Every check of DESIGN.md except the trial handshake (tlsctx.h does
 * that): validity window of leaf and chain, chain order and signatures,
 * key strength, signature hash, EKU, names.  First failure wins.
 */
int	 x509_material_validate(const struct x509_material *m,
	    const struct x509_check *c, struct err *e);

/* SHA-256 of the leaf's DER as "AB:CD:...", into out (>= 96 bytes). */
void	 x509_material_fingerprint(const struct x509_material *m, char *out);
/* New JSON object: subject, issuer, san, not_before, not_after, serial,
 * fingerprint_sha256, key_type, key_bits, chain_length.  Caller owns. */
json_t	*x509_material_describe(const struct x509_material *m);
/* 1 when the leaf was signed by ca's leaf key. */
int	 x509_material_issued_by(const struct x509_material *m,
	    const struct x509_material *ca);
/* The private key as PKCS#8 PEM, freshly encoded (free with
 * x509_pem_free), or NULL when m has none. */
char	*x509_material_key_pem(const struct x509_material *m);
/* The chain as PEM (leaf first), freshly allocated; caller frees. */
char	*x509_material_chain_pem(const struct x509_material *m);
/*
 * cert_pem (a leaf, maybe with issuers) completed with its issuers found
 * in pool_pem (any order, may hold unrelated certificates and roots),
 * up to a self-signed root (left out); a new PEM string.  For the
 * legacy files, whose leaves and chain_certs.pem are apart.
 */
char	*x509_chain_complete(const char *cert_pem, const char *pool_pem,
	    struct err *e);
/* The PEM of the certificate in bundle whose SHA-256 fingerprint is
 * fingerprint ("AB:CD:.." or plain hex, any case); NULL when none.
 * Caller frees. */
char	*x509_bundle_find(const char *bundle, const char *fingerprint);
/*
 * A bundle of CA certificates that client certificates must chain to
 * (the API's mtls_trusted_ca): 1 to 16, each a CA (within its dates
 * with check_dates), no key.  *out gets them re-encoded (caller frees),
 * *desc a description of each (caller owns).  E_INVALID_PEM,
 * E_INVALID_CERTIFICATE, E_EXPIRED.
 */
int	 x509_ca_bundle_check(const char *pem, int check_dates, char **out,
	    json_t **desc, struct err *e);
/* Number of certificates (leaf included). */
int	 x509_material_chain_len(const struct x509_material *m);
/* The leaf's notAfter and notBefore as Unix times (0: unreadable). */
time_t	 x509_material_not_after(const struct x509_material *m);
time_t	 x509_material_not_before(const struct x509_material *m);
/* Seconds from now until the leaf's notAfter (negative when expired). */
long	 x509_material_seconds_left(const struct x509_material *m);

/*
 * Issuing: an ECDSA P-256 CA, and leaves signed by it with CN = cn,
 * SANs dns[] (NULL-terminated) and ips[] (NULL-terminated), EKU serverAuth
 * + clientAuth.  Output PEM strings are owned by the caller; free keys with
 * x509_pem_free.
 */
int	 x509_ca_create(const char *cn, int days, char **cert_pem,
	    char **key_pem, struct err *e);
int	 x509_cert_issue(const char *ca_cert_pem, const char *ca_key_pem,
	    const char *cn, const char *const *dns, const char *const *ips,
	    int days, char **cert_pem, char **key_pem, struct err *e);
/* Wipe and free a string that may hold key material. */
void	 x509_pem_free(char *pem);

#endif
