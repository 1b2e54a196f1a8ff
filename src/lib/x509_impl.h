/*
 * x509_impl.h — the inside of struct x509_material, for x509.c and
 * tlsctx.c only (the two modules that may see OpenSSL types).
 */
#ifndef MOAT_X509_IMPL_H
#define MOAT_X509_IMPL_H

#include <openssl/evp.h>
#include <openssl/x509.h>

struct x509_material {
	X509		*leaf;		/* owned */
	STACK_OF(X509)	*chain;		/* owned: issuers after the leaf */
	EVP_PKEY	*key;		/* owned; NULL for a certificate only */
};

/* SHA-256 of x's DER as "AB:CD:...", into out (>= 96 bytes). */
void	x509_fingerprint(X509 *x, char *out);

#endif
