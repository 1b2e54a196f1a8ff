/*
 * acme.c — see acme.h.
 *
 * Written on what moat already links (libcurl, jansson, OpenSSL): Debian
 * has no ACME client library for C.  Only what RFC 8555 asks of a client
 * that orders and finalizes; no revocation, no key change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme.h"
#include "curlbuf.h"

#define RESP_MAX	(1024 * 1024)
#define NONCE_TRIES	5	/* badNonce is retried (RFC 8555 6.5) */
#define ACME_ID_OID	"1.3.6.1.5.5.7.1.31"	/* id-pe-acmeIdentifier */

struct acme {
	char		*dir_url;
	char		*ca;
	char		*kid;
	char		*nonce;
	EVP_PKEY	*key;
	json_t		*dir;
	json_t		*jwk;
	char		 thumb[64];
	int		 timeout;
	int		(*abort_cb)(void *);
	void		*abort_arg;
};

struct hdrs {
	char	*nonce;
	char	*location;
	int	 json;		/* Content-Type says JSON */
};

/* ---- encodings ---- */

static char *
b64url(const unsigned char *p, size_t n)
{
	char	*out;
	int	 k, i;

	if ((out = malloc(4 * ((n + 2) / 3) + 1)) == NULL)
		return NULL;
	k = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	for (i = 0; i < k; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	while (k > 0 && out[k - 1] == '=')
		k--;
	out[k] = '\0';
	return out;
}

static char *
b64url_str(const char *s)
{
	return b64url((const unsigned char *)s, strlen(s));
}

static char *
sha256_b64url(const char *s)
{
	unsigned char	md[32];
	unsigned int	len = sizeof(md);

	if (EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL) != 1)
		return NULL;
	return b64url(md, len);
}

/* ---- HTTP ---- */

static char *
hdr_value(const char *p, size_t len, const char *name)
{
	size_t	 nl = strlen(name), end;
	char	*v;

	if (len <= nl + 1 || strncasecmp(p, name, nl) != 0 || p[nl] != ':')
		return NULL;
	p += nl + 1;
	len -= nl + 1;
	while (len > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	for (end = len; end > 0 && (p[end - 1] == '\r' || p[end - 1] == '\n' ||
	    p[end - 1] == ' '); end--)
		;
	if ((v = malloc(end + 1)) == NULL)
		return NULL;
	memcpy(v, p, end);
	v[end] = '\0';
	return v;
}

static size_t
hdr_cb(char *p, size_t sz, size_t n, void *arg)
{
	struct hdrs	*h = arg;
	size_t		 len = sz * n;
	char		*v;

	if ((v = hdr_value(p, len, "Replay-Nonce")) != NULL) {
		free(h->nonce);
		h->nonce = v;
	} else if ((v = hdr_value(p, len, "Location")) != NULL) {
		free(h->location);
		h->location = v;
	} else if ((v = hdr_value(p, len, "Content-Type")) != NULL) {
		h->json = strstr(v, "json") != NULL;
		free(v);
	}
	return len;
}

static void
hdrs_clear(struct hdrs *h)
{
	free(h->nonce);
	free(h->location);
	memset(h, 0, sizeof(*h));
}

static int
xfer_cb(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
    curl_off_t un)
{
	struct acme *a = arg;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return a->abort_cb != NULL && a->abort_cb(a->abort_arg);
}

/*
 * One request; the body (NULL: GET, or HEAD when head) goes as JOSE.
 * A failure to talk to the server at all is E_ACME_UNREACHABLE, with
 * curl's reason (a CA bundle that does not trust the server says so).
 */
static int
http(struct acme *a, const char *url, const char *body, int head,
    long *status, struct curlbuf *resp, struct hdrs *h, struct err *e)
{
	struct curl_slist	*hl = NULL;
	struct curl_blob	 blob;
	char			 ebuf[CURL_ERROR_SIZE] = "";
	CURL			*c;
	CURLcode		 rc;

	if ((c = curl_easy_init()) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)a->timeout);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "moat-acme");
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xfer_cb);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, a);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	if (a->ca != NULL) {
		blob.data = a->ca;
		blob.len = strlen(a->ca);
		blob.flags = CURL_BLOB_COPY;
		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curlbuf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hdr_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
	if (head)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (body != NULL) {
		hl = curl_slist_append(hl,
		    "Content-Type: application/jose+json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE)
		return err_set(e, E_ACME_UNREACHABLE, "%s: the ACME server's "
		    "certificate is not trusted by the CA bundle given (%s)",
		    url, ebuf[0] ? ebuf : curl_easy_strerror(rc));
	if (rc != CURLE_OK)
		return err_set(e, E_ACME_UNREACHABLE, "%s: %s", url,
		    ebuf[0] ? ebuf : curl_easy_strerror(rc));
	return 0;
}

/* The server's problem document as the error; returns -1. */
static int
problem(long status, const struct curlbuf *resp, const char *url,
    struct err *e)
{
	json_t		*p = resp->data ? json_loads(resp->data, 0, NULL) : NULL;
	const char	*type = json_string_value(json_object_get(p, "type"));
	const char	*detail = json_string_value(json_object_get(p,
			    "detail"));
	const char	*shortt = type;

	if (type != NULL && strncmp(type, "urn:ietf:params:acme:error:",
	    27) == 0)
		shortt = type + 27;
	err_set(e, E_ACME_REFUSED, "the ACME server refused (%ld %s): %s",
	    status, shortt ? shortt : "error", detail ? detail : url);
	json_decref(p);
	return -1;
}

static int
is_bad_nonce(const struct curlbuf *resp)
{
	json_t	*p = resp->data ? json_loads(resp->data, 0, NULL) : NULL;
	int	 bad;

	bad = json_is_string(json_object_get(p, "type")) &&
	    strcmp(json_string_value(json_object_get(p, "type")),
	    "urn:ietf:params:acme:error:badNonce") == 0;
	json_decref(p);
	return bad;
}

static int
nonce_fetch(struct acme *a, struct err *e)
{
	struct curlbuf	 resp = { NULL, 0, RESP_MAX };
	struct hdrs	 h = { 0 };
	long		 status = 0;
	const char	*url = acme_dir_url(a, "newNonce");

	if (url == NULL)
		return err_set(e, E_ACME_REFUSED, "the directory has no "
		    "newNonce");
	if (http(a, url, NULL, 1, &status, &resp, &h, e) == -1) {
		hdrs_clear(&h);
		curlbuf_clear(&resp);
		return -1;
	}
	curlbuf_clear(&resp);
	free(a->nonce);
	a->nonce = h.nonce;
	h.nonce = NULL;
	hdrs_clear(&h);
	if (a->nonce == NULL)
		return err_set(e, E_ACME_REFUSED, "%s gave no nonce", url);
	return 0;
}

/* ---- JWS (RFC 7515, ES256) ---- */

static char *
es256(EVP_PKEY *key, const char *input)
{
	EVP_MD_CTX		*md = EVP_MD_CTX_new();
	unsigned char		*der = NULL, raw[64];
	const unsigned char	*p;
	size_t			 len = 0;
	ECDSA_SIG		*sig = NULL;
	const BIGNUM		*r, *s;
	char			*out = NULL;

	if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
	    key) != 1 || EVP_DigestSign(md, NULL, &len,
	    (const unsigned char *)input, strlen(input)) != 1 ||
	    (der = malloc(len)) == NULL || EVP_DigestSign(md, der, &len,
	    (const unsigned char *)input, strlen(input)) != 1)
		goto done;
	p = der;
	if ((sig = d2i_ECDSA_SIG(NULL, &p, (long)len)) == NULL)
		goto done;
	/* JWS wants R || S, each 32 bytes, not DER. */
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, raw, 32) != 32 || BN_bn2binpad(s, raw + 32,
	    32) != 32)
		goto done;
	out = b64url(raw, sizeof(raw));
done:
	ECDSA_SIG_free(sig);
	free(der);
	EVP_MD_CTX_free(md);
	return out;
}

static char *
jws(struct acme *a, const char *url, const char *payload)
{
	json_t	*prot, *body;
	char	*ps = NULL, *p64 = NULL, *pl64 = NULL, *in = NULL, *sig = NULL;
	char	*out = NULL;

	prot = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "nonce",
	    a->nonce, "url", url);
	if (prot == NULL)
		return NULL;
	/* Before the account exists, the key itself; then its URL. */
	if (a->kid != NULL)
		json_object_set_new(prot, "kid", json_string(a->kid));
	else
		json_object_set(prot, "jwk", a->jwk);
	if ((ps = json_dumps(prot, JSON_COMPACT)) == NULL ||
	    (p64 = b64url_str(ps)) == NULL ||
	    (pl64 = payload ? b64url_str(payload) : strdup("")) == NULL ||
	    asprintf(&in, "%s.%s", p64, pl64) == -1 ||
	    (sig = es256(a->key, in)) == NULL)
		goto done;
	body = json_pack("{s:s, s:s, s:s}", "protected", p64, "payload", pl64,
	    "signature", sig);
	out = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
done:
	json_decref(prot);
	free(ps);
	free(p64);
	free(pl64);
	free(in);
	free(sig);
	return out;
}

int
acme_post(struct acme *a, const char *url, const json_t *payload,
    json_t **out, char **text, char **location, struct err *e)
{
	struct curlbuf	 resp = { NULL, 0, RESP_MAX };
	struct hdrs	 h = { 0 };
	long		 status = 0;
	char		*pl = NULL, *body;
	int		 try, rc = -1;

	if (out != NULL)
		*out = NULL;
	if (text != NULL)
		*text = NULL;
	if (location != NULL)
		*location = NULL;
	if (payload != NULL && (pl = json_dumps(payload, JSON_COMPACT)) ==
	    NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	for (try = 0; try < NONCE_TRIES; try++) {
		if (a->nonce == NULL && nonce_fetch(a, e) == -1)
			break;
		if ((body = jws(a, url, pl)) == NULL) {
			err_set(e, E_INTERNAL, "cannot sign the request");
			break;
		}
		/* A nonce is good for one request. */
		free(a->nonce);
		a->nonce = NULL;
		curlbuf_clear(&resp);
		hdrs_clear(&h);
		status = 0;
		if (http(a, url, body, 0, &status, &resp, &h, e) == -1) {
			free(body);
			break;
		}
		free(body);
		a->nonce = h.nonce;
		h.nonce = NULL;
		if (status >= 200 && status < 300) {
			if (out != NULL && resp.data != NULL)
				*out = json_loads(resp.data, 0, NULL);
			if (text != NULL && resp.data != NULL)
				*text = strdup(resp.data);
			if (location != NULL) {
				*location = h.location;
				h.location = NULL;
			}
			rc = 0;
			break;
		}
		if (status == 400 && is_bad_nonce(&resp))
			continue;
		problem(status, &resp, url, e);
		break;
	}
	if (try == NONCE_TRIES)
		err_set(e, E_ACME_REFUSED, "%s: the server kept refusing our "
		    "nonces", url);
	hdrs_clear(&h);
	curlbuf_clear(&resp);
	free(pl);
	return rc;
}

/* ---- the session ---- */

static int
jwk_of(struct acme *a, struct err *e)
{
	BIGNUM		*x = NULL, *y = NULL;
	unsigned char	 xb[32], yb[32];
	char		*x64 = NULL, *y64 = NULL, *canon = NULL, *t = NULL;
	char		 crv[32];
	int		 rc = -1;

	if (EVP_PKEY_get_utf8_string_param(a->key,
	    OSSL_PKEY_PARAM_GROUP_NAME, crv, sizeof(crv), NULL) != 1 ||
	    strcmp(crv, "prime256v1") != 0)
		return err_set(e, E_INVALID_CONFIG, "the ACME account key "
		    "must be an EC P-256 key");
	if (EVP_PKEY_get_bn_param(a->key, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
	    EVP_PKEY_get_bn_param(a->key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1 ||
	    BN_bn2binpad(x, xb, 32) != 32 || BN_bn2binpad(y, yb, 32) != 32 ||
	    (x64 = b64url(xb, 32)) == NULL || (y64 = b64url(yb, 32)) == NULL) {
		err_set(e, E_INTERNAL, "cannot read the account key");
		goto done;
	}
	a->jwk = json_pack("{s:s, s:s, s:s, s:s}", "crv", "P-256", "kty", "EC",
	    "x", x64, "y", y64);
	/* RFC 7638: the required members, sorted, no white space. */
	if (asprintf(&canon, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\","
	    "\"y\":\"%s\"}", x64, y64) == -1 || a->jwk == NULL ||
	    (t = sha256_b64url(canon)) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto done;
	}
	snprintf(a->thumb, sizeof(a->thumb), "%s", t);
	rc = 0;
done:
	BN_free(x);
	BN_free(y);
	free(x64);
	free(y64);
	free(canon);
	free(t);
	return rc;
}

struct acme *
acme_new(const struct acme_opts *o, struct err *e)
{
	struct acme	*a;
	struct curlbuf	 resp = { NULL, 0, RESP_MAX };
	struct hdrs	 h = { 0 };
	long		 status = 0;
	BIO		*b;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	a->timeout = o->timeout_s > 0 ? o->timeout_s : 10;
	a->abort_cb = o->abort_cb;
	a->abort_arg = o->abort_arg;
	a->dir_url = strdup(o->directory_url);
	a->ca = o->ca_bundle ? strdup(o->ca_bundle) : NULL;
	a->kid = o->account_url ? strdup(o->account_url) : NULL;
	if ((b = BIO_new_mem_buf(o->account_key, -1)) != NULL) {
		a->key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	ERR_clear_error();
	if (a->key == NULL) {
		err_set(e, E_INVALID_CONFIG, "the ACME account key cannot "
		    "be read");
		goto fail;
	}
	if (jwk_of(a, e) == -1)
		goto fail;
	if (http(a, a->dir_url, NULL, 0, &status, &resp, &h, e) == -1)
		goto fail;
	if (status != 200 || resp.data == NULL ||
	    (a->dir = json_loads(resp.data, 0, NULL)) == NULL ||
	    acme_dir_url(a, "newOrder") == NULL ||
	    acme_dir_url(a, "newAccount") == NULL) {
		err_set(e, E_ACME_UNREACHABLE, "%s is not an ACME directory "
		    "(HTTP %ld)", a->dir_url, status);
		goto fail;
	}
	a->nonce = h.nonce;
	h.nonce = NULL;
	hdrs_clear(&h);
	curlbuf_clear(&resp);
	return a;
fail:
	hdrs_clear(&h);
	curlbuf_clear(&resp);
	acme_free(a);
	return NULL;
}

void
acme_free(struct acme *a)
{
	if (a == NULL)
		return;
	free(a->dir_url);
	free(a->ca);
	free(a->kid);
	free(a->nonce);
	EVP_PKEY_free(a->key);
	json_decref(a->dir);
	json_decref(a->jwk);
	free(a);
}

const char *
acme_dir_url(const struct acme *a, const char *resource)
{
	return json_string_value(json_object_get(a->dir, resource));
}

int
acme_account(struct acme *a, const json_t *contact, const char **kid,
    struct err *e)
{
	json_t	*req, *out = NULL;
	char	*loc = NULL;
	int	 rc;

	/*
	 * Always asked, even with an account URL known: newAccount with a
	 * known key answers that account (RFC 8555 7.3.1), and a CA that
	 * lost it (a restarted test CA, a deactivated account) makes a new
	 * one instead of failing every order.
	 */
	free(a->kid);
	a->kid = NULL;
	{
		req = json_pack("{s:b}", "termsOfServiceAgreed", 1);
		if (contact != NULL && json_array_size(contact) > 0)
			json_object_set(req, "contact", (json_t *)contact);
		rc = acme_post(a, acme_dir_url(a, "newAccount"), req, &out,
		    NULL, &loc, e);
		json_decref(req);
		json_decref(out);
		if (rc == -1)
			return -1;
		if (loc == NULL)
			return err_set(e, E_ACME_REFUSED, "newAccount gave "
			    "no account URL");
		a->kid = loc;
	}
	*kid = a->kid;
	return 0;
}

char *
acme_key_authorization(const struct acme *a, const char *token)
{
	char *s;

	if (asprintf(&s, "%s.%s", token, a->thumb) == -1)
		return NULL;
	return s;
}

/* ---- keys, CSRs, challenge certificates ---- */

static char *
key_pem_of(EVP_PKEY *k)
{
	BIO	*b = BIO_new(BIO_s_mem());
	char	*p, *out = NULL;
	long	 n;

	if (b != NULL && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL,
	    NULL) == 1 && (n = BIO_get_mem_data(b, &p)) > 0 &&
	    (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, p, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(b);
	return out;
}

int
acme_key_new(const char *type, char **key_pem, struct err *e)
{
	EVP_PKEY *k = NULL;

	if (strcmp(type, "ec256") == 0)
		k = EVP_EC_gen("P-256");
	else if (strcmp(type, "rsa2048") == 0)
		k = EVP_RSA_gen(2048);
	else
		return err_set(e, E_INVALID_CONFIG, "key_type: use ec256 or "
		    "rsa2048");
	if (k == NULL || (*key_pem = key_pem_of(k)) == NULL) {
		EVP_PKEY_free(k);
		return err_set(e, E_INTERNAL, "cannot make a key");
	}
	EVP_PKEY_free(k);
	return 0;
}

static EVP_PKEY *
key_read(const char *pem)
{
	BIO		*b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY	*k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) :
			    NULL;

	BIO_free(b);
	return k;
}

/* subjectAltName: DNS:names[0],DNS:names[1]... */
static X509_EXTENSION *
san_ext(const char *const *names, size_t n)
{
	GENERAL_NAMES	*gens = sk_GENERAL_NAME_new_null();
	X509_EXTENSION	*ext = NULL;
	size_t		 i;

	for (i = 0; gens != NULL && i < n; i++) {
		GENERAL_NAME	*g = GENERAL_NAME_new();
		ASN1_IA5STRING	*s = ASN1_IA5STRING_new();
		if (g == NULL || s == NULL || ASN1_STRING_set(s, names[i],
		    -1) != 1) {
			GENERAL_NAME_free(g);
			ASN1_IA5STRING_free(s);
			goto done;
		}
		GENERAL_NAME_set0_value(g, GEN_DNS, s);
		sk_GENERAL_NAME_push(gens, g);
	}
	if (gens != NULL)
		ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
done:
	GENERAL_NAMES_free(gens);
	return ext;
}

int
acme_csr(const char *key_pem, const char *const *names, size_t n,
    char **csr, struct err *e)
{
	EVP_PKEY			*k = key_read(key_pem);
	X509_REQ			*req = X509_REQ_new();
	X509_NAME			*nm = X509_NAME_new();
	STACK_OF(X509_EXTENSION)	*exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION			*san = n > 0 ? san_ext(names, n) : NULL;
	unsigned char			*der = NULL;
	int				 len, rc = -1;

	*csr = NULL;
	if (k == NULL || req == NULL || nm == NULL || exts == NULL ||
	    san == NULL)
		goto done;
	/* The CN only when it fits (64), as CAs want; the SANs say it all. */
	if (strlen(names[0]) <= 64 && X509_NAME_add_entry_by_txt(nm, "CN",
	    MBSTRING_UTF8, (const unsigned char *)names[0], -1, -1, 0) != 1)
		goto done;
	sk_X509_EXTENSION_push(exts, san);
	san = NULL;
	if (X509_REQ_set_version(req, 0) != 1 ||
	    X509_REQ_set_subject_name(req, nm) != 1 ||
	    X509_REQ_set_pubkey(req, k) != 1 ||
	    X509_REQ_add_extensions(req, exts) != 1 ||
	    X509_REQ_sign(req, k, EVP_sha256()) <= 0 ||
	    (len = i2d_X509_REQ(req, &der)) <= 0 ||
	    (*csr = b64url(der, (size_t)len)) == NULL)
		goto done;
	rc = 0;
done:
	if (rc == -1)
		err_set(e, E_INTERNAL, "cannot make the certificate request");
	ERR_clear_error();
	OPENSSL_free(der);
	X509_EXTENSION_free(san);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(nm);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
	return rc;
}

int
acme_alpn_cert(const char *name, const char *key_auth, char **cert_pem,
    char **key_pem, struct err *e)
{
	EVP_PKEY		*k = EVP_EC_gen("P-256");
	X509			*x = X509_new();
	X509_EXTENSION		*san = san_ext(&name, 1), *id = NULL;
	ASN1_OBJECT		*oid = OBJ_txt2obj(ACME_ID_OID, 1);
	ASN1_OCTET_STRING	*val = ASN1_OCTET_STRING_new();
	unsigned char		 der[34];
	unsigned int		 mdlen = 32;
	BIO			*b = NULL;
	char			*p;
	long			 n;
	int			 rc = -1;

	*cert_pem = *key_pem = NULL;
	/* The extension's value: the DER of an OCTET STRING of 32 bytes,
	 * SHA-256 of the key authorization (RFC 8737 3). */
	der[0] = 0x04;
	der[1] = 32;
	if (k == NULL || x == NULL || san == NULL || oid == NULL ||
	    val == NULL || EVP_Digest(key_auth, strlen(key_auth), der + 2,
	    &mdlen, EVP_sha256(), NULL) != 1 ||
	    ASN1_OCTET_STRING_set(val, der, sizeof(der)) != 1 ||
	    (id = X509_EXTENSION_create_by_OBJ(NULL, oid, 1, val)) == NULL)
		goto done;
	if (X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL)) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -86400) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 7 * 86400) == NULL ||
	    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_UTF8, (const unsigned char *)"acme tls-alpn-01", -1, -1,
	    0) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
	    X509_set_pubkey(x, k) != 1 || X509_add_ext(x, san, -1) != 1 ||
	    X509_add_ext(x, id, -1) != 1 || X509_sign(x, k, EVP_sha256()) <= 0)
		goto done;
	if ((b = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_X509(b, x) != 1 ||
	    (n = BIO_get_mem_data(b, &p)) <= 0 ||
	    (*cert_pem = strndup(p, (size_t)n)) == NULL ||
	    (*key_pem = key_pem_of(k)) == NULL)
		goto done;
	rc = 0;
done:
	if (rc == -1) {
		free(*cert_pem);
		*cert_pem = NULL;
		err_set(e, E_INTERNAL, "cannot make the tls-alpn-01 "
		    "certificate");
	}
	ERR_clear_error();
	BIO_free(b);
	ASN1_OCTET_STRING_free(val);
	ASN1_OBJECT_free(oid);
	X509_EXTENSION_free(id);
	X509_EXTENSION_free(san);
	X509_free(x);
	EVP_PKEY_free(k);
	return rc;
}

char *
acme_dns_txt(const char *key_auth)
{
	return sha256_b64url(key_auth);
}
