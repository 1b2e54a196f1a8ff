/*
 * test_acme.c — the parts of the ACME client that make no request:
 * keys, CSRs, tls-alpn-01 certificates (RFC 8737), dns-01 TXT values,
 * and acme_new refusing an account key that is not EC P-256 before it
 * reaches for the network.
 *
 * Every output is taken apart here with OpenSSL, and the encodings
 * (base64url) are decoded and encoded by this file's own code, so the
 * test does not trust the code it tests to check itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme.h"
#include "err.h"
#include "t.h"

#define ACME_ID_OID	"1.3.6.1.5.5.7.1.31"

/* ---- this test's own base64url ---- */

static const char B64URL[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding (RFC 4648 5, RFC 8555 6.1). */
static char *
my_b64url(const unsigned char *p, size_t n)
{
	char	*out = malloc(4 * (n / 3 + 1) + 1), *o = out;
	size_t	 i;

	if (out == NULL)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		*o++ = B64URL[p[i] >> 2];
		*o++ = B64URL[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*o++ = B64URL[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		*o++ = B64URL[p[i + 2] & 63];
	}
	if (n - i == 1) {
		*o++ = B64URL[p[i] >> 2];
		*o++ = B64URL[(p[i] & 3) << 4];
	} else if (n - i == 2) {
		*o++ = B64URL[p[i] >> 2];
		*o++ = B64URL[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		*o++ = B64URL[(p[i + 1] & 15) << 2];
	}
	*o = '\0';
	return out;
}

/* Decode base64url without padding; NULL on any character outside the
 * alphabet (so '=', '+', '/' and white space are refused). */
static unsigned char *
my_unb64url(const char *s, size_t *len)
{
	size_t		 n = strlen(s), i, k = 0;
	unsigned char	*out = malloc(n * 3 / 4 + 3);
	unsigned int	 acc = 0;
	int		 bits = 0;
	const char	*c;

	if (out == NULL)
		return NULL;
	if (n % 4 == 1) {
		free(out);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (s[i] == '\0' || (c = strchr(B64URL, s[i])) == NULL) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned int)(c - B64URL);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[k++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*len = k;
	return out;
}

static int
is_b64url(const char *s)
{
	return s != NULL && s[0] != '\0' && strspn(s, B64URL) == strlen(s);
}

/* ---- helpers ---- */

static EVP_PKEY *
pem_key(const char *pem)
{
	BIO		*b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY	*k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) :
			    NULL;

	BIO_free(b);
	return k;
}

static X509 *
pem_cert(const char *pem)
{
	BIO	*b = BIO_new_mem_buf(pem, -1);
	X509	*x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return x;
}

static char *
pem_of(EVP_PKEY *k)
{
	BIO	*b = BIO_new(BIO_s_mem());
	char	*p, *out = NULL;
	long	 n;

	if (b != NULL && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL,
	    NULL) == 1 && (n = BIO_get_mem_data(b, &p)) > 0)
		out = strndup(p, (size_t)n);
	BIO_free(b);
	return out;
}

/* The EC group's name ("prime256v1"), or "" for a key without one. */
static const char *
group_of(EVP_PKEY *k, char *buf, size_t len)
{
	buf[0] = '\0';
	if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, buf,
	    len, NULL) != 1)
		buf[0] = '\0';
	return buf;
}

/* The DNS names of a SAN extension, joined with ','; "" for none. */
static void
san_join(const GENERAL_NAMES *gens, char *buf, size_t len, int *others)
{
	int	 i;
	size_t	 at = 0;

	buf[0] = '\0';
	*others = 0;
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME	*g = sk_GENERAL_NAME_value(gens, i);
		const unsigned char	*d;
		int			 dl;

		if (g->type != GEN_DNS) {
			(*others)++;
			continue;
		}
		d = ASN1_STRING_get0_data(g->d.dNSName);
		dl = ASN1_STRING_length(g->d.dNSName);
		at += (size_t)snprintf(buf + at, at < len ? len - at : 0,
		    "%s%.*s", at ? "," : "", dl, (const char *)d);
	}
}

/* The subject's CN, or "" when there is none. */
static void
cn_of(const X509_NAME *nm, char *buf, size_t len)
{
	buf[0] = '\0';
	if (X509_NAME_get_text_by_NID(nm, NID_commonName, buf, (int)len) < 0)
		buf[0] = '\0';
}

/* ---- acme_key_new ---- */

static void
test_key_new(void)
{
	static const char *const bad[] = { "ed25519", "rsa1024", "EC256",
		"ec384", "", "ec256 ", "rsa2048x" };
	struct err	 e = { 0 };
	char		*pem = NULL, grp[64];
	EVP_PKEY	*k;
	size_t		 i;

	T_CASE("key_new ec256");
	CHECK_INT(acme_key_new("ec256", &pem, &e), 0);
	CHECK_INT(e.code, E_OK);
	CHECK_HAS(pem, "-----BEGIN PRIVATE KEY-----");
	CHECK((k = pem ? pem_key(pem) : NULL) != NULL);
	if (k != NULL) {
		CHECK(EVP_PKEY_is_a(k, "EC"));
		CHECK_STR(group_of(k, grp, sizeof(grp)), "prime256v1");
		CHECK_INT(EVP_PKEY_get_bits(k), 256);
	}
	EVP_PKEY_free(k);
	free(pem);
	pem = NULL;

	T_CASE("key_new ec256 twice: two keys");
	{
		char *p1 = NULL, *p2 = NULL;

		CHECK_INT(acme_key_new("ec256", &p1, &e), 0);
		CHECK_INT(acme_key_new("ec256", &p2, &e), 0);
		CHECK(p1 != NULL && p2 != NULL && strcmp(p1, p2) != 0);
		free(p1);
		free(p2);
	}

	T_CASE("key_new rsa2048");
	CHECK_INT(acme_key_new("rsa2048", &pem, &e), 0);
	CHECK_INT(e.code, E_OK);
	CHECK_HAS(pem, "-----BEGIN PRIVATE KEY-----");
	CHECK((k = pem ? pem_key(pem) : NULL) != NULL);
	if (k != NULL) {
		CHECK(EVP_PKEY_is_a(k, "RSA"));
		CHECK_INT(EVP_PKEY_get_bits(k), 2048);
	}
	EVP_PKEY_free(k);
	free(pem);
	pem = NULL;

	for (i = 0; i < NELEMS(bad); i++) {
		T_CASE(bad[i]);
		pem = NULL;
		CHECK_INT(acme_key_new(bad[i], &pem, &e), -1);
		CHECK_INT(e.code, E_INVALID_CONFIG);
		CHECK_HAS(err_msg(&e), "key_type");
		CHECK(pem == NULL);
		free(pem);
		err_clear(&e);
	}
}

/* ---- acme_csr ---- */

struct csr_row {
	const char		*what;
	const char		*ktype;		/* acme_key_new's */
	const char *const	*names;
	size_t			 n;
	const char		*want_cn;	/* "": no CN */
	const char		*want_sans;	/* joined with ',' */
};

static void
csr_check(const struct csr_row *r)
{
	struct err		 e = { 0 };
	char			*pem = NULL, *csr = NULL, buf[1024], grp[64];
	unsigned char		*der = NULL;
	const unsigned char	*p;
	size_t			 len = 0;
	EVP_PKEY		*k = NULL, *other = NULL, *pub;
	X509_REQ		*req = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	GENERAL_NAMES		*gens = NULL;
	int			 others, crit = -1;

	T_CASE(r->what);
	if (acme_key_new(r->ktype, &pem, &e) == -1 || (k = pem_key(pem)) ==
	    NULL) {
		CHECKF(0, "cannot make a %s key: %s", r->ktype, err_msg(&e));
		goto done;
	}
	CHECK_INT(acme_csr(pem, r->names, r->n, &csr, &e), 0);
	CHECK_INT(e.code, E_OK);
	CHECKF(is_b64url(csr), "not base64url: %s", csr ? csr : "(null)");
	if (csr == NULL || (der = my_unb64url(csr, &len)) == NULL) {
		CHECKF(0, "the CSR does not decode as base64url");
		goto done;
	}
	p = der;
	req = d2i_X509_REQ(NULL, &p, (long)len);
	CHECKF(req != NULL, "not a DER CSR (%zu bytes)", len);
	if (req == NULL)
		goto done;
	CHECKF(p == der + len, "%td bytes after the CSR", (der + len) - p);

	/* Signed by the key given, and carrying its public half. */
	CHECKF(X509_REQ_verify(req, k) == 1, "the CSR's signature does not "
	    "verify with the key given");
	pub = X509_REQ_get0_pubkey(req);
	CHECK(pub != NULL && EVP_PKEY_eq(pub, k) == 1);
	if (strcmp(r->ktype, "ec256") == 0)
		other = EVP_EC_gen("P-256");
	else
		other = EVP_RSA_gen(2048);
	CHECK(other != NULL && X509_REQ_verify(req, other) != 1);
	if (strcmp(r->ktype, "ec256") == 0)
		CHECK_STR(group_of(pub, grp, sizeof(grp)), "prime256v1");
	CHECK_INT(X509_REQ_get_version(req), 0);

	cn_of(X509_REQ_get_subject_name(req), buf, sizeof(buf));
	CHECK_STR(buf, r->want_cn);
	/* Nothing else in the subject. */
	CHECK_INT(X509_NAME_entry_count(X509_REQ_get_subject_name(req)),
	    r->want_cn[0] != '\0' ? 1 : 0);

	exts = X509_REQ_get_extensions(req);
	CHECK(exts != NULL);
	gens = exts ? X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL) :
	    NULL;
	CHECKF(gens != NULL, "no subjectAltName in the CSR (crit %d)", crit);
	san_join(gens, buf, sizeof(buf), &others);
	CHECK_STR(buf, r->want_sans);
	CHECK_INT(others, 0);
	CHECK_INT(gens ? sk_GENERAL_NAME_num(gens) : -1, (long long)r->n);
done:
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	EVP_PKEY_free(other);
	EVP_PKEY_free(k);
	free(der);
	free(csr);
	free(pem);
	err_clear(&e);
	ERR_clear_error();
}

#define N64 "12345678901234567890123456789012345678901234567890.moat.test.com"
#define N65 "a" N64

static void
test_csr(void)
{
	static const char *const one[] = { "cluster.moat.test" };
	static const char *const two[] = { "cluster.moat.test",
		"*.cluster.moat.test" };
	static const char *const three[] = { "b.moat.test", "a.moat.test",
		"*.c.moat.test" };
	/* A 64-character name has its CN; 65 has none. */
	static const char *const n64[] = { N64, "x.moat.test" };
	static const char *const n65[] = { N65, "x.moat.test" };
	static const char *const wfirst[] = { "*.cluster.moat.test",
		"cluster.moat.test" };
	const struct csr_row rows[] = {
		{ "csr one name", "ec256", one, 1, "cluster.moat.test",
		  "cluster.moat.test" },
		{ "csr fqdn and wildcard", "ec256", two, 2,
		  "cluster.moat.test", "cluster.moat.test,*.cluster.moat.test" },
		{ "csr three names, order kept", "ec256", three, 3,
		  "b.moat.test", "b.moat.test,a.moat.test,*.c.moat.test" },
		{ "csr wildcard first", "ec256", wfirst, 2,
		  "*.cluster.moat.test",
		  "*.cluster.moat.test,cluster.moat.test" },
		{ "csr 64-char first name: CN", "ec256", n64, 2, N64,
		  N64 ",x.moat.test" },
		{ "csr 65-char first name: no CN", "ec256", n65, 2, "",
		  N65 ",x.moat.test" },
		{ "csr rsa2048 key", "rsa2048", two, 2, "cluster.moat.test",
		  "cluster.moat.test,*.cluster.moat.test" },
	};
	struct err	 e = { 0 };
	char		*csr, *pem = NULL;
	size_t		 i;

	CHECK_INT(strlen(N64), 64);
	CHECK_INT(strlen(N65), 65);
	for (i = 0; i < NELEMS(rows); i++)
		csr_check(&rows[i]);

	T_CASE("csr with a key that is not PEM");
	csr = (char *)"sentinel";
	CHECK_INT(acme_csr("garbage", one, 1, &csr, &e), -1);
	CHECK(csr == NULL);
	CHECK(e.code != E_OK);
	err_clear(&e);

	T_CASE("csr with no names");
	if (acme_key_new("ec256", &pem, &e) == 0) {
		csr = (char *)"sentinel";
		CHECK_INT(acme_csr(pem, one, 0, &csr, &e), -1);
		CHECK(csr == NULL);
		CHECK(e.code != E_OK);
	} else
		CHECKF(0, "acme_key_new: %s", err_msg(&e));
	free(pem);
	err_clear(&e);
	ERR_clear_error();
}

/* ---- acme_alpn_cert ---- */

static void
alpn_check(const char *name, const char *ka)
{
	struct err		 e = { 0 };
	char			*cert = NULL, *key = NULL, buf[512], grp[64];
	X509			*x = NULL;
	EVP_PKEY		*k = NULL;
	GENERAL_NAMES		*gens = NULL;
	ASN1_OBJECT		*oid = OBJ_txt2obj(ACME_ID_OID, 1);
	X509_EXTENSION		*ext;
	const ASN1_OCTET_STRING	*val;
	ASN1_OCTET_STRING	*inner = NULL;
	const unsigned char	*p;
	unsigned char		 md[32], want[34];
	unsigned int		 mdlen = sizeof(md);
	int			 idx, others, crit = -1;

	T_CASE(name);
	CHECK_INT(acme_alpn_cert(name, ka, &cert, &key, &e), 0);
	CHECK_INT(e.code, E_OK);
	CHECK_HAS(cert, "-----BEGIN CERTIFICATE-----");
	CHECK_HAS(key, "-----BEGIN PRIVATE KEY-----");
	if (cert == NULL || key == NULL || (x = pem_cert(cert)) == NULL ||
	    (k = pem_key(key)) == NULL) {
		CHECKF(0, "the certificate or key does not parse");
		goto done;
	}

	/* The key is the certificate's, and signed it: self-signed. */
	CHECK_INT(X509_check_private_key(x, k), 1);
	CHECK(EVP_PKEY_eq(X509_get0_pubkey(x), k) == 1);
	CHECK_INT(X509_verify(x, k), 1);
	CHECK_INT(X509_NAME_cmp(X509_get_subject_name(x),
	    X509_get_issuer_name(x)), 0);
	CHECK_INT(X509_get_version(x), X509_VERSION_3);
	CHECK(EVP_PKEY_is_a(k, "EC"));
	CHECK_STR(group_of(k, grp, sizeof(grp)), "prime256v1");
	/* Valid now. */
	CHECK(X509_cmp_current_time(X509_get0_notBefore(x)) < 0);
	CHECK(X509_cmp_current_time(X509_get0_notAfter(x)) > 0);

	/* SAN: exactly the name. */
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	CHECKF(gens != NULL, "no subjectAltName (crit %d)", crit);
	san_join(gens, buf, sizeof(buf), &others);
	CHECK_STR(buf, name);
	CHECK_INT(others, 0);
	CHECK_INT(gens ? sk_GENERAL_NAME_num(gens) : -1, 1);

	/* id-pe-acmeIdentifier: critical, once, its extnValue the DER of an
	 * OCTET STRING holding SHA-256(key authorization) (RFC 8737 3). */
	CHECK(oid != NULL);
	idx = X509_get_ext_by_OBJ(x, oid, -1);
	CHECKF(idx >= 0, "no %s extension", ACME_ID_OID);
	if (idx < 0)
		goto done;
	CHECK_INT(X509_get_ext_by_OBJ(x, oid, idx), -1);
	ext = X509_get_ext(x, idx);
	CHECK_INT(X509_EXTENSION_get_critical(ext), 1);
	val = X509_EXTENSION_get_data(ext);
	CHECK(EVP_Digest(ka, strlen(ka), md, &mdlen, EVP_sha256(), NULL) == 1);
	CHECK_INT(mdlen, 32);
	want[0] = 0x04;		/* OCTET STRING */
	want[1] = 32;
	memcpy(want + 2, md, 32);
	CHECK_INT(ASN1_STRING_length(val), 34);
	CHECKF(ASN1_STRING_length(val) == 34 &&
	    memcmp(ASN1_STRING_get0_data(val), want, 34) == 0,
	    "the extension's value is not OCTET STRING(SHA-256(\"%s\"))", ka);
	/* And it parses as that OCTET STRING, nothing after it. */
	p = ASN1_STRING_get0_data(val);
	inner = d2i_ASN1_OCTET_STRING(NULL, &p, ASN1_STRING_length(val));
	CHECK(inner != NULL && p == ASN1_STRING_get0_data(val) +
	    ASN1_STRING_length(val));
	CHECK(inner != NULL && ASN1_STRING_length(inner) == 32 &&
	    memcmp(ASN1_STRING_get0_data(inner), md, 32) == 0);
done:
	ASN1_OCTET_STRING_free(inner);
	ASN1_OBJECT_free(oid);
	GENERAL_NAMES_free(gens);
	X509_free(x);
	EVP_PKEY_free(k);
	free(cert);
	free(key);
	err_clear(&e);
	ERR_clear_error();
}

static void
test_alpn_cert(void)
{
	alpn_check("cluster.moat.test", "tok-123.thumb_ABC");
	alpn_check("node-1.cluster.moat.test", "a.b");
	alpn_check("x.moat.test", "");

	T_CASE("alpn two calls: two keys, two digests");
	{
		struct err	 e = { 0 };
		char		*c1 = NULL, *k1 = NULL, *c2 = NULL, *k2 = NULL;

		CHECK_INT(acme_alpn_cert("a.moat.test", "one.t", &c1, &k1, &e),
		    0);
		CHECK_INT(acme_alpn_cert("a.moat.test", "two.t", &c2, &k2, &e),
		    0);
		CHECK(k1 != NULL && k2 != NULL && strcmp(k1, k2) != 0);
		CHECK(c1 != NULL && c2 != NULL && strcmp(c1, c2) != 0);
		free(c1);
		free(k1);
		free(c2);
		free(k2);
		err_clear(&e);
	}
}

/* ---- acme_dns_txt ---- */

static void
test_dns_txt(void)
{
	static const char *const inputs[] = { "token.thumb", "",
		"a", "ab", "abc",
		"evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA."
		"9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI",
		"\xc3\xa9t\xc3\xa9.\xff" };
	unsigned char	 md[32];
	unsigned int	 mdlen;
	char		*got, *want;
	size_t		 i;

	/* printf %s 'token.thumb' | openssl dgst -sha256 -binary |
	 *     basenc --base64url | tr -d = */
	T_CASE("dns_txt known vector");
	got = acme_dns_txt("token.thumb");
	CHECK_STR(got, "lCdftpJCXapaZHkBGIZbcubeKW8RmA0jSG_aZN01zbU");
	free(got);
	/* The same for the empty string (SHA-256 of nothing). */
	got = acme_dns_txt("");
	CHECK_STR(got, "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
	free(got);

	for (i = 0; i < NELEMS(inputs); i++) {
		T_CASE(inputs[i]);
		mdlen = sizeof(md);
		CHECK(EVP_Digest(inputs[i], strlen(inputs[i]), md, &mdlen,
		    EVP_sha256(), NULL) == 1);
		want = my_b64url(md, mdlen);
		got = acme_dns_txt(inputs[i]);
		CHECK_STR(got, want);
		CHECK_INT(got ? strlen(got) : 0, 43);	/* 32 bytes, no '=' */
		CHECK(is_b64url(got));
		free(got);
		free(want);
	}

	/* The test's own coder, on the RFC 4648 vectors (base64url of these
	 * has no '+' or '/', so they match the base64 ones unpadded). */
	T_CASE("own base64url");
	{
		static const struct { const char *in, *out; } v[] = {
			{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" },
			{ "foo", "Zm9v" }, { "foob", "Zm9vYg" },
			{ "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
			{ "\xfb\xff", "-_8" },
		};
		unsigned char	*d;
		size_t		 n;

		for (i = 0; i < NELEMS(v); i++) {
			got = my_b64url((const unsigned char *)v[i].in,
			    strlen(v[i].in));
			CHECK_STR(got, v[i].out);
			free(got);
			d = my_unb64url(v[i].out, &n);
			CHECK(d != NULL && n == strlen(v[i].in) &&
			    memcmp(d, v[i].in, n) == 0);
			free(d);
		}
		CHECK(my_unb64url("Zm8=", &n) == NULL);
	}
}

/* ---- acme_new: the account key ---- */

static void
test_new_bad_key(void)
{
	struct acme_opts	 o = { 0 };
	struct err		 e = { 0 };
	struct acme		*a;
	EVP_PKEY		*k;
	char			*pem;
	struct {
		const char	*what;
		EVP_PKEY	*k;
	} rows[] = {
		{ "acme_new rsa2048 account key", NULL },
		{ "acme_new P-384 account key", NULL },
		{ "acme_new ed25519 account key", NULL },
	};
	size_t			 i;

	rows[0].k = EVP_RSA_gen(2048);
	rows[1].k = EVP_EC_gen("P-384");
	rows[2].k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	o.directory_url = "https://127.0.0.1:1/dir";
	o.timeout_s = 2;
	for (i = 0; i < NELEMS(rows); i++) {
		T_CASE(rows[i].what);
		k = rows[i].k;
		if (k == NULL || (pem = pem_of(k)) == NULL) {
			CHECKF(0, "cannot make the key");
			EVP_PKEY_free(k);
			continue;
		}
		o.account_key = pem;
		a = acme_new(&o, &e);
		CHECK(a == NULL);
		/* Refused on the key, not on the (closed) port. */
		CHECKF(e.code == E_INVALID_CONFIG, "got %s: %s",
		    err_name(e.code), err_msg(&e));
		CHECK_HAS(err_msg(&e), "P-256");
		acme_free(a);
		err_clear(&e);
		free(pem);
		EVP_PKEY_free(k);
	}

	T_CASE("acme_new account key that is not PEM");
	o.account_key = "-----BEGIN PRIVATE KEY-----\nnope\n"
	    "-----END PRIVATE KEY-----\n";
	a = acme_new(&o, &e);
	CHECK(a == NULL);
	CHECKF(e.code == E_INVALID_CONFIG, "got %s: %s", err_name(e.code),
	    err_msg(&e));
	acme_free(a);
	err_clear(&e);

	/* A good key passes the key check and only then meets the closed
	 * port: the refusals above were the key's. */
	T_CASE("acme_new P-256 key, closed port");
	if ((k = EVP_EC_gen("P-256")) != NULL && (pem = pem_of(k)) != NULL) {
		o.account_key = pem;
		a = acme_new(&o, &e);
		CHECK(a == NULL);
		CHECKF(e.code == E_ACME_UNREACHABLE, "got %s: %s",
		    err_name(e.code), err_msg(&e));
		acme_free(a);
		free(pem);
	} else
		CHECKF(0, "cannot make the key");
	EVP_PKEY_free(k);
	err_clear(&e);
	ERR_clear_error();
}

int
main(void)
{
	test_key_new();
	test_csr();
	test_alpn_cert();
	test_dns_txt();
	test_new_bad_key();
	return T_DONE();
}
