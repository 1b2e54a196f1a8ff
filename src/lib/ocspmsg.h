/*
 * ocspmsg.h — OCSP (RFC 6960) for a served certificate: the request for its
 * leaf, and the check of a responder's answer.  The transport (HTTP) is
 * the caller's; OpenSSL's types stay in ocspmsg.c.
 */
#ifndef MOAT_OCSPMSG_H
#define MOAT_OCSPMSG_H

#include <stddef.h>
#include <time.h>

#include "err.h"
#include "x509.h"

enum ocsp_cert_status { OCSP_GOOD, OCSP_REVOKED, OCSP_UNKNOWN };

/* "GOOD", "REVOKED", "UNKNOWN" (RS's words). */
const char	*ocsp_status_name(enum ocsp_cert_status s);

/* The OCSP responder URL of m's leaf (its Authority Information Access),
 * or NULL when it names none; caller frees. */
char		*ocsp_responder_url(const struct x509_material *m);

/*
 * A DER OCSP request for m's leaf, whose issuer is the next certificate
 * of m's chain or one of issuers_pem (may be NULL).  *der is the
 * caller's to free.  E_INVALID_CHAIN when the issuer is not found.
 */
int		 ocsp_request(const struct x509_material *m,
		    const char *issuers_pem, unsigned char **der, size_t *len,
		    struct err *e);

struct ocsp_result {
	enum ocsp_cert_status	 status;
	time_t			 produced_at, this_update, next_update;
	time_t			 revocation_time;	/* 0: not revoked */
};

/*
 * Check a DER response about m's leaf: successful, signed by the issuer
 * or by a responder the issuer delegated to, about this very
 * certificate, and current (thisUpdate not in the future, nextUpdate not
 * past).  E_INVALID_CERTIFICATE naming what is wrong.
 */
int		 ocsp_response_check(const struct x509_material *m,
		    const char *issuers_pem, const unsigned char *der,
		    size_t len, struct ocsp_result *r, struct err *e);

#endif
