/*
 * ocspmsg.c — OCSP requests and responses for a served certificate.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ocspmsg.h"
#include "x509_impl.h"

/* Answers this far off the clock are still taken (as OpenSSL's ocsp
 * command does by default). */
#define OCSP_SKEW_S	300

const char *
ocsp_status_name(enum ocsp_cert_status s)
{
	switch (s) {
	case OCSP_GOOD:
		return "GOOD";
	case OCSP_REVOKED:
		return "REVOKED";
	default:
		return "UNKNOWN";
	}
}

char *
ocsp_responder_url(const struct x509_material *m)
{
	STACK_OF(OPENSSL_STRING) *urls = X509_get1_ocsp(m->leaf);
	char *out = NULL;

	if (urls != NULL && sk_OPENSSL_STRING_num(urls) > 0)
		out = strdup(sk_OPENSSL_STRING_value(urls, 0));
	X509_email_free(urls);
	return out;
}

/* The issuer of m's leaf, borrowed from m or new from issuers_pem (then
 * *owned is set); NULL when none signed it. */
static X509 *
issuer_of(const struct x509_material *m, const char *issuers_pem, int *owned)
{
	BIO	*bio;
	X509	*x;
	int	 i;

	*owned = 0;
	for (i = 0; i < sk_X509_num(m->chain); i++)
		if (X509_check_issued(sk_X509_value(m->chain, i), m->leaf) ==
		    X509_V_OK)
			return sk_X509_value(m->chain, i);
	if (issuers_pem == NULL ||
	    (bio = BIO_new_mem_buf(issuers_pem, -1)) == NULL)
		return NULL;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (X509_check_issued(x, m->leaf) == X509_V_OK) {
			BIO_free(bio);
			*owned = 1;
			ERR_clear_error();
			return x;
		}
		X509_free(x);
	}
	BIO_free(bio);
	ERR_clear_error();
	return NULL;
}

static OCSP_CERTID *
cert_id(const struct x509_material *m, const char *issuers_pem,
    X509 **issuer, int *owned, struct err *e)
{
	OCSP_CERTID *id;

	if ((*issuer = issuer_of(m, issuers_pem, owned)) == NULL) {
		err_set(e, E_INVALID_CHAIN, "the certificate's issuer is not "
		    "known (neither in its chain nor among the cluster's CAs): "
		    "OCSP needs it");
		return NULL;
	}
	if ((id = OCSP_cert_to_id(NULL, m->leaf, *issuer)) == NULL) {
		err_set(e, E_INTERNAL, "cannot make an OCSP certificate id");
		if (*owned)
			X509_free(*issuer);
		*owned = 0;
		*issuer = NULL;
	}
	return id;
}

int
ocsp_request(const struct x509_material *m, const char *issuers_pem,
    unsigned char **der, size_t *len, struct err *e)
{
	OCSP_REQUEST	*req = NULL;
	OCSP_CERTID	*id;
	X509		*issuer;
	unsigned char	*p = NULL;
	int		 n, owned, rc = -1;

	*der = NULL;
	if ((id = cert_id(m, issuers_pem, &issuer, &owned, e)) == NULL)
		return -1;
	if ((req = OCSP_REQUEST_new()) == NULL ||
	    OCSP_request_add0_id(req, id) == NULL) {
		OCSP_CERTID_free(id);
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	/* A nonce would defeat the responders' caching, and the answer is
	 * shared by every node for hours anyway: none, as web servers do. */
	if ((n = i2d_OCSP_REQUEST(req, &p)) <= 0) {
		err_set(e, E_INTERNAL, "cannot encode the OCSP request");
		goto out;
	}
	*der = p;
	*len = (size_t)n;
	rc = 0;
out:
	OCSP_REQUEST_free(req);
	if (owned)
		X509_free(issuer);
	ERR_clear_error();
	return rc;
}

static time_t
time_of(const ASN1_GENERALIZEDTIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

int
ocsp_response_check(const struct x509_material *m, const char *issuers_pem,
    const unsigned char *der, size_t len, struct ocsp_result *r,
    struct err *e)
{
	const unsigned char	*p = der;
	OCSP_RESPONSE		*resp = NULL;
	OCSP_BASICRESP		*basic = NULL;
	OCSP_CERTID		*id = NULL;
	X509_STORE		*st = NULL;
	STACK_OF(X509)		*trust = NULL;
	ASN1_GENERALIZEDTIME	*rev = NULL, *thisupd = NULL, *nextupd = NULL;
	X509			*issuer = NULL;
	int			 status, reason, owned = 0, rc = -1;

	memset(r, 0, sizeof(*r));
	if ((resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len)) == NULL) {
		err_set(e, E_INVALID_CERTIFICATE, "the responder's answer is "
		    "not an OCSP response");
		goto out;
	}
	if ((status = OCSP_response_status(resp)) !=
	    OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		err_set(e, E_INVALID_CERTIFICATE, "the responder answered "
		    "\"%s\"", OCSP_response_status_str(status));
		goto out;
	}
	if ((basic = OCSP_response_get1_basic(resp)) == NULL) {
		err_set(e, E_INVALID_CERTIFICATE, "the OCSP response has no "
		    "basic response");
		goto out;
	}
	if ((id = cert_id(m, issuers_pem, &issuer, &owned, e)) == NULL)
		goto out;
	/* Signed by the issuer itself, or by a responder certificate
	 * (sent along) that the issuer signed for OCSP signing. */
	if ((st = X509_STORE_new()) == NULL || (trust = sk_X509_new_null()) ==
	    NULL || X509_STORE_add_cert(st, issuer) != 1 ||
	    sk_X509_push(trust, issuer) <= 0) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN);
	if (OCSP_basic_verify(basic, trust, st, OCSP_TRUSTOTHER) <= 0 &&
	    OCSP_basic_verify(basic, NULL, st, 0) <= 0) {
		err_set(e, E_INVALID_CERTIFICATE, "the OCSP response is not "
		    "signed by the certificate's issuer or a responder it "
		    "delegated to");
		goto out;
	}
	if (OCSP_resp_find_status(basic, id, &status, &reason, &rev, &thisupd,
	    &nextupd) != 1) {
		err_set(e, E_INVALID_CERTIFICATE, "the OCSP response says "
		    "nothing about this certificate");
		goto out;
	}
	if (OCSP_check_validity(thisupd, nextupd, OCSP_SKEW_S, -1) != 1) {
		err_set(e, E_INVALID_CERTIFICATE, "the OCSP response is not "
		    "current (thisUpdate in the future or nextUpdate past)");
		goto out;
	}
	r->status = status == V_OCSP_CERTSTATUS_GOOD ? OCSP_GOOD :
	    status == V_OCSP_CERTSTATUS_REVOKED ? OCSP_REVOKED : OCSP_UNKNOWN;
	r->this_update = time_of(thisupd);
	r->next_update = time_of(nextupd);
	r->revocation_time = time_of(rev);
	r->produced_at = time_of(OCSP_resp_get0_produced_at(basic));
	rc = 0;
out:
	sk_X509_free(trust);
	X509_STORE_free(st);
	OCSP_CERTID_free(id);
	if (owned)
		X509_free(issuer);
	OCSP_BASICRESP_free(basic);
	OCSP_RESPONSE_free(resp);
	ERR_clear_error();
	return rc;
}
