/*
 * x509.c — parsing, validation, description and issuing of certificates.
 *
 * Validation is deliberately stricter than HAProxy or Redis (which only
 * check that the key matches): a certificate that any mainstream client
 * would refuse is refused here, before it can be served.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "x509.h"
#include "x509_impl.h"

#define PEM_MAX_CERTS	16

/* OpenSSL must never prompt on a terminal for a passphrase. */
static int
x509_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

void
x509_material_free(struct x509_material *m)
{
	if (m == NULL)
		return;
	X509_free(m->leaf);
	sk_X509_pop_free(m->chain, X509_free);
	EVP_PKEY_free(m->key);	/* OpenSSL clears key memory on free */
	free(m);
}

void
x509_pem_free(char *pem)
{
	if (pem == NULL)
		return;
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
}

static int
x509_parse_chain(const char *pem, struct x509_material *m, struct err *e)
{
	BIO		*bio;
	char		*name = NULL, *header = NULL;
	unsigned char	*data = NULL;
	long		 len;
	int		 n = 0, rc = -1;

	bio = BIO_new_mem_buf(pem, -1);
	if (bio == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	m->chain = sk_X509_new_null();
	for (;;) {
		const unsigned char *p;
		X509 *x;

		ERR_clear_error();
		if (!PEM_read_bio(bio, &name, &header, &data, &len)) {
			unsigned long ec = ERR_peek_last_error();
			if (n > 0 && ERR_GET_REASON(ec) == PEM_R_NO_START_LINE)
				break;	/* end of input */
			if (n == 0 && ERR_GET_REASON(ec) == PEM_R_NO_START_LINE)
				err_set(e, E_INVALID_PEM, "no "
				    "PEM certificate found (expected "
				    "-----BEGIN CERTIFICATE-----)");
			else
				err_set(e, E_INVALID_PEM, "certificate %d: "
				    "malformed PEM block", n + 1);
			goto out;
		}
		if (strstr(name, "PRIVATE KEY") != NULL) {
			err_set(e, E_INVALID_PEM, "the certificate field contains a "
			    "private key block; send the key in \"key\"");
			goto out;
		}
		if (strcmp(name, "CERTIFICATE") != 0) {
			err_set(e, E_INVALID_PEM, "certificate %d: unexpected "
			    "PEM block \"%s\"", n + 1, name);
			goto out;
		}
		p = data;
		x = d2i_X509(NULL, &p, len);
		if (x == NULL || p != data + len) {
			X509_free(x);
			err_set(e, E_INVALID_PEM, "certificate %d: not a valid "
			    "X.509 certificate", n + 1);
			goto out;
		}
		if (++n > PEM_MAX_CERTS) {
			X509_free(x);
			err_set(e, E_INVALID_PEM, "more than %d "
			    "certificates in the chain", PEM_MAX_CERTS);
			goto out;
		}
		if (m->leaf == NULL)
			m->leaf = x;
		else
			sk_X509_push(m->chain, x);
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
		name = header = NULL;
		data = NULL;
	}
	rc = 0;
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}

static int
x509_parse_key(const char *pem, struct x509_material *m, struct err *e)
{
	BIO	*bio;

	if (strstr(pem, "ENCRYPTED") != NULL)
		return err_set(e, E_INVALID_PEM, "key: encrypted private keys "
		    "are not accepted; send the key unencrypted over TLS");
	if (strstr(pem, "PRIVATE KEY-----") == NULL)
		return err_set(e, E_INVALID_PEM, "key: no PEM private key "
		    "found (expected -----BEGIN PRIVATE KEY-----)");
	bio = BIO_new_mem_buf(pem, -1);
	if (bio == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	m->key = PEM_read_bio_PrivateKey(bio, NULL, x509_no_passphrase, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (m->key == NULL)
		return err_set(e, E_INVALID_PEM, "key: the private key does "
		    "not parse");
	return 0;
}

int
x509_key_pem_single(const char *key_pem, struct err *e)
{
	EVP_PKEY	*k;
	BIO		*bio = BIO_new_mem_buf(key_pem, -1);
	char		 rest[64];
	int		 r, i, rc = 0;

	if (bio == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	k = PEM_read_bio_PrivateKey(bio, NULL, x509_no_passphrase, NULL);
	while (k != NULL && rc == 0 &&
	    (r = BIO_read(bio, rest, sizeof(rest))) > 0)
		for (i = 0; i < r && rc == 0; i++)
			if (rest[i] != ' ' && rest[i] != '\t' &&
			    rest[i] != '\r' && rest[i] != '\n')
				rc = err_set(e, E_INVALID_PEM, "key: something "
				    "follows the private key; send exactly one "
				    "key");
	EVP_PKEY_free(k);
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}

int
x509_material_parse(const char *cert_pem, const char *key_pem,
    struct x509_material **out, struct err *e)
{
	struct x509_material	*m;

	*out = NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	if (x509_parse_chain(cert_pem, m, e) == -1)
		goto fail;
	if (key_pem != NULL) {
		if (x509_parse_key(key_pem, m, e) == -1)
			goto fail;
		if (X509_check_private_key(m->leaf, m->key) != 1) {
			ERR_clear_error();
			err_set(e, E_KEY_MISMATCH, "the private key does not "
			    "match the certificate's public key");
			goto fail;
		}
	}
	*out = m;
	return 0;
fail:
	x509_material_free(m);
	return -1;
}

/* One line "CN=..,O=.." for messages and descriptions; caller frees. */
static char *
x509_name_str(const X509_NAME *name)
{
	BIO	*bio = BIO_new(BIO_s_mem());
	char	*s, *p;
	long	 n;

	if (bio == NULL)
		return strdup("?");
	X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	n = BIO_get_mem_data(bio, &p);
	s = strndup(p, (size_t)n);
	BIO_free(bio);
	return s != NULL ? s : strdup("?");
}

static X509 *
x509_chain_at(const struct x509_material *m, int i)
{
	return i == 0 ? m->leaf : sk_X509_value(m->chain, i - 1);
}

int
x509_material_chain_len(const struct x509_material *m)
{
	return 1 + sk_X509_num(m->chain);
}

static int
x509_check_times(const struct x509_material *m, time_t now, struct err *e)
{
	int	 i, n = x509_material_chain_len(m);
	char	*subj;

	/* X509_cmp_time returns 0 when it cannot read the time: refuse. */
	int nb = X509_cmp_time(X509_get0_notBefore(m->leaf), &now);
	if (nb == 0)
		return err_set(e, E_INVALID_PEM, "the certificate's notBefore "
		    "cannot be read");
	if (nb > 0)
		return err_set(e, E_NOT_YET_VALID, "the certificate is not "
		    "valid yet (notBefore is in the future)");
	for (i = 0; i < n; i++) {
		X509 *x = x509_chain_at(m, i);
		int na = X509_cmp_time(X509_get0_notAfter(x), &now);
		if (na == 0)
			return err_set(e, E_INVALID_PEM, "certificate %d: "
			    "notAfter cannot be read", i + 1);
		if (na > 0)
			continue;
		if (i == 0)
			return err_set(e, E_EXPIRED, "the certificate has "
			    "expired (notAfter is in the past)");
		subj = x509_name_str(X509_get_subject_name(x));
		err_set(e, E_EXPIRED, "chain certificate %d (%s) has expired",
		    i + 1, subj);
		free(subj);
		return -1;
	}
	return 0;
}

static int
x509_check_chain(const struct x509_material *m, struct err *e)
{
	int	 i, n = x509_material_chain_len(m);
	char	*a, *b;

	for (i = 0; i + 1 < n; i++) {
		X509 *x = x509_chain_at(m, i), *issuer = x509_chain_at(m, i + 1);
		if (X509_check_issued(issuer, x) == X509_V_OK &&
		    X509_verify(x, X509_get0_pubkey(issuer)) == 1 &&
		    X509_check_ca(issuer) >= 1)
			continue;
		ERR_clear_error();
		a = x509_name_str(X509_get_subject_name(x));
		b = x509_name_str(X509_get_subject_name(issuer));
		err_set(e, E_INVALID_CHAIN, "certificate %d (%s) is not "
		    "issued by certificate %d (%s); the chain must be the leaf "
		    "first, then each certificate's issuer", i + 1, a, i + 2, b);
		free(a);
		free(b);
		return -1;
	}
	ERR_clear_error();
	return 0;
}

#define RSA_MAX_BITS	8192
#define SAN_SHOWN	8	/* names an error message lists */

static int
x509_check_key_strength(EVP_PKEY *pk, const char *what, struct err *e)
{
	char	 group[64];
	size_t	 glen = 0;

	/* A public key OpenSSL cannot decode (found by fuzz_x509: moatd
	 * crashed on such a certificate in an update). */
	if (pk == NULL) {
		ERR_clear_error();
		return err_set(e, E_INVALID_PEM, "%s: the certificate's public "
		    "key does not parse", what);
	}
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(pk) < 2048)
			return err_set(e, E_WEAK_KEY, "%s: RSA key of %d bits; "
			    "at least 2048 are required", what,
			    EVP_PKEY_get_bits(pk));
		/* Each handshake signs with it: 16384 bits cost a third of
		 * a second of CPU per connection, an easy way to stall. */
		if (EVP_PKEY_get_bits(pk) > RSA_MAX_BITS)
			return err_set(e, E_WEAK_KEY, "%s: RSA key of %d bits; "
			    "at most %d are accepted (every handshake signs "
			    "with it)", what, EVP_PKEY_get_bits(pk),
			    RSA_MAX_BITS);
		return 0;
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen))
			return err_set(e, E_WEAK_KEY, "%s: EC key with explicit "
			    "curve parameters is not accepted", what);
		if (strcmp(group, "prime256v1") == 0 ||
		    strcmp(group, "secp384r1") == 0 ||
		    strcmp(group, "secp521r1") == 0)
			return 0;
		return err_set(e, E_WEAK_KEY, "%s: EC curve %s is not accepted; "
		    "use P-256, P-384 or P-521", what, group);
	case EVP_PKEY_ED25519:
	case EVP_PKEY_ED448:
		return 0;
	default:
		return err_set(e, E_WEAK_KEY, "%s: unsupported key type; use "
		    "RSA (>= 2048 bits), ECDSA or Ed25519", what);
	}
}

static int
x509_check_signatures(const struct x509_material *m, struct err *e)
{
	int	 i, n = x509_material_chain_len(m), mdnid = NID_undef;

	for (i = 0; i < n; i++) {
		X509 *x = x509_chain_at(m, i);
		/* A self-signed root's own signature is never checked by
		 * clients, so its hash does not matter. */
		if (i > 0 && X509_check_issued(x, x) == X509_V_OK)
			continue;
		if (!X509_get_signature_info(x, &mdnid, NULL, NULL, NULL))
			mdnid = NID_undef;
		if (mdnid == NID_sha1 || mdnid == NID_md5 ||
		    mdnid == NID_md5_sha1) {
			ERR_clear_error();
			return err_set(e, E_WEAK_SIGNATURE, "certificate %d is "
			    "signed with %s; use SHA-256 or stronger", i + 1,
			    OBJ_nid2sn(mdnid));
		}
	}
	ERR_clear_error();
	return 0;
}

static int
x509_check_usage(const struct x509_material *m, int need_client,
    struct err *e)
{
	uint32_t flags = X509_get_extension_flags(m->leaf);

	if (flags & EXFLAG_XKUSAGE) {
		uint32_t xku = X509_get_extended_key_usage(m->leaf);
		if (!(xku & XKU_SSL_SERVER))
			return err_set(e, E_KEY_USAGE, "the certificate's "
			    "extended key usage lacks serverAuth (TLS Web "
			    "Server Authentication)");
		if (need_client && !(xku & XKU_SSL_CLIENT))
			return err_set(e, E_KEY_USAGE, "the certificate's "
			    "extended key usage lacks clientAuth (TLS Web "
			    "Client Authentication), which the syncer needs");
	}
	if ((flags & EXFLAG_KUSAGE) &&
	    !(X509_get_key_usage(m->leaf) & KU_DIGITAL_SIGNATURE))
		return err_set(e, E_KEY_USAGE, "the certificate's key usage "
		    "lacks digitalSignature, which TLS needs");
	if (X509_check_ca(m->leaf) == 1 && (flags & EXFLAG_BCONS))
		return err_set(e, E_KEY_USAGE, "the leaf certificate is a CA "
		    "certificate; use a certificate issued for the service");
	return 0;
}

/* "DNS:a, DNS:b" of the leaf for error messages; caller frees. */
static char *
x509_san_str(X509 *x)
{
	GENERAL_NAMES	*gens;
	char		*s = NULL, *t;
	int		 i;

	int		 shown = 0, more = 0, len, k;
	char		 name[256];

	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *d;
		if (g->type != GEN_DNS)
			continue;
		/* A message stays short, and prints no control byte a
		 * certificate may carry. */
		if (shown == SAN_SHOWN) {
			more++;
			continue;
		}
		d = ASN1_STRING_get0_data(g->d.dNSName);
		len = ASN1_STRING_length(g->d.dNSName);
		for (k = 0; k < len && k < (int)sizeof(name) - 1; k++)
			name[k] = d[k] >= 0x20 && d[k] < 0x7f ? (char)d[k] : '?';
		name[k] = '\0';
		if (asprintf(&t, "%s%sDNS:%s", s ? s : "", s ? ", " : "",
		    name) == -1)
			break;
		free(s);
		s = t;
		shown++;
	}
	GENERAL_NAMES_free(gens);
	if (s != NULL && more > 0 && asprintf(&t, "%s and %d more", s,
	    more) != -1) {
		free(s);
		s = t;
	}
	return s != NULL ? s : strdup("no DNS names");
}

static int
x509_has_dns_san(X509 *x, const char *want)
{
	GENERAL_NAMES	*gens;
	int		 i, found = 0;
	size_t		 wl = strlen(want);

	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS)
			continue;
		if ((size_t)ASN1_STRING_length(g->d.dNSName) == wl &&
		    strncasecmp((const char *)ASN1_STRING_get0_data(
		    g->d.dNSName), want, wl) == 0)
			found = 1;
	}
	GENERAL_NAMES_free(gens);
	return found;
}

static int
x509_check_names(const struct x509_material *m, const struct x509_check *c,
    struct err *e)
{
	char	*wild, *have;
	int	 ok;

	if (c->fqdn == NULL)
		return 0;
	if (X509_check_host(m->leaf, c->fqdn, 0,
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
	    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL) != 1) {
		have = x509_san_str(m->leaf);
		err_set(e, E_HOSTNAME, "the certificate does not cover the "
		    "cluster name %s (it covers: %s)", c->fqdn, have);
		free(have);
		return -1;
	}
	if (!c->need_wildcard)
		return 0;
	if (asprintf(&wild, "*.%s", c->fqdn) == -1)
		return err_set(e, E_INTERNAL, "out of memory");
	ok = x509_has_dns_san(m->leaf, wild);
	if (!ok) {
		have = x509_san_str(m->leaf);
		err_set(e, E_HOSTNAME, "the certificate must also cover %s, "
		    "because databases are reached as redis-<port>.%s (it "
		    "covers: %s)", wild, c->fqdn, have);
		free(have);
	}
	free(wild);
	return ok ? 0 : -1;
}

int
x509_material_validate(const struct x509_material *m,
    const struct x509_check *c, struct err *e)
{
	time_t	 now = c->now != 0 ? c->now : time(NULL);
	int	 i;

	if (x509_check_times(m, now, e) == -1 ||
	    x509_check_chain(m, e) == -1)
		return -1;
	if (x509_check_key_strength(X509_get0_pubkey(m->leaf), "key", e) == -1)
		return -1;
	for (i = 1; i < x509_material_chain_len(m); i++) {
		char what[32];
		snprintf(what, sizeof(what), "chain certificate %d", i + 1);
		if (x509_check_key_strength(X509_get0_pubkey(
		    x509_chain_at(m, i)), what, e) == -1)
			return -1;
	}
	if (x509_check_signatures(m, e) == -1 ||
	    x509_check_usage(m, c->need_client_auth, e) == -1 ||
	    x509_check_names(m, c, e) == -1)
		return -1;
	return 0;
}

void
x509_fingerprint(X509 *x, char *out)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 n = 0, i;

	out[0] = '\0';
	if (!X509_digest(x, EVP_sha256(), md, &n))
		return;
	for (i = 0; i < n; i++)
		sprintf(out + i * 3, "%02X%s", md[i], i + 1 < n ? ":" : "");
}

void
x509_material_fingerprint(const struct x509_material *m, char *out)
{
	x509_fingerprint(m->leaf, out);
}

static json_t *
x509_time_json(const ASN1_TIME *t)
{
	struct tm	 tm;
	char		 buf[32];

	if (!ASN1_TIME_to_tm(t, &tm))
		return json_null();
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

static time_t
asn1_unix(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return timegm(&tm);
}

time_t
x509_material_not_after(const struct x509_material *m)
{
	return asn1_unix(X509_get0_notAfter(m->leaf));
}

time_t
x509_material_not_before(const struct x509_material *m)
{
	return asn1_unix(X509_get0_notBefore(m->leaf));
}

long
x509_material_seconds_left(const struct x509_material *m)
{
	int	 days = 0, secs = 0;

	if (!ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(m->leaf)))
		return 0;
	return (long)days * 86400 + secs;
}

static json_t *
x509_san_json(X509 *x)
{
	GENERAL_NAMES	*gens;
	json_t		*arr = json_array();
	char		 buf[INET6_ADDRSTRLEN + 8], *s;
	int		 i;

	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *d;
		int len;

		switch (g->type) {
		case GEN_DNS:
			len = ASN1_STRING_length(g->d.dNSName);
			d = ASN1_STRING_get0_data(g->d.dNSName);
			if (asprintf(&s, "DNS:%.*s", len, d) != -1) {
				json_array_append_new(arr, json_string(s));
				free(s);
			}
			break;
		case GEN_IPADD:
			len = ASN1_STRING_length(g->d.iPAddress);
			d = ASN1_STRING_get0_data(g->d.iPAddress);
			memcpy(buf, "IP:", 3);
			/* Only 4 or 16 bytes are an address; never read more
			 * than the certificate holds. */
			if ((len == 4 || len == 16) && inet_ntop(len == 4 ?
			    AF_INET : AF_INET6, d, buf + 3, sizeof(buf) - 3))
				json_array_append_new(arr, json_string(buf));
			break;
		case GEN_EMAIL:
			len = ASN1_STRING_length(g->d.rfc822Name);
			d = ASN1_STRING_get0_data(g->d.rfc822Name);
			if (asprintf(&s, "email:%.*s", len, d) != -1) {
				json_array_append_new(arr, json_string(s));
				free(s);
			}
			break;
		default:
			break;
		}
	}
	GENERAL_NAMES_free(gens);
	return arr;
}

json_t *
x509_material_describe(const struct x509_material *m)
{
	json_t		*o = json_object();
	char		*s, fp[100], *hex = NULL;
	BIGNUM		*bn;
	EVP_PKEY	*pk = X509_get0_pubkey(m->leaf);
	const char	*type = "unknown";

	s = x509_name_str(X509_get_subject_name(m->leaf));
	json_object_set_new(o, "subject", json_string(s));
	free(s);
	s = x509_name_str(X509_get_issuer_name(m->leaf));
	json_object_set_new(o, "issuer", json_string(s));
	free(s);
	json_object_set_new(o, "san", x509_san_json(m->leaf));
	json_object_set_new(o, "not_before",
	    x509_time_json(X509_get0_notBefore(m->leaf)));
	json_object_set_new(o, "not_after",
	    x509_time_json(X509_get0_notAfter(m->leaf)));
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(m->leaf), NULL);
	if (bn != NULL && (hex = BN_bn2hex(bn)) != NULL)
		json_object_set_new(o, "serial", json_string(hex));
	OPENSSL_free(hex);
	BN_free(bn);
	x509_material_fingerprint(m, fp);
	json_object_set_new(o, "fingerprint_sha256", json_string(fp));
	if (pk != NULL) {
		switch (EVP_PKEY_get_base_id(pk)) {
		case EVP_PKEY_RSA: type = "RSA"; break;
		case EVP_PKEY_EC: type = "EC"; break;
		case EVP_PKEY_ED25519: type = "ED25519"; break;
		case EVP_PKEY_ED448: type = "ED448"; break;
		}
		json_object_set_new(o, "key_bits",
		    json_integer(EVP_PKEY_get_bits(pk)));
	}
	json_object_set_new(o, "key_type", json_string(type));
	json_object_set_new(o, "chain_length",
	    json_integer(x509_material_chain_len(m)));
	return o;
}

int
x509_material_issued_by(const struct x509_material *m,
    const struct x509_material *ca)
{
	int ok = X509_check_issued(ca->leaf, m->leaf) == X509_V_OK &&
	    X509_verify(m->leaf, X509_get0_pubkey(ca->leaf)) == 1;

	ERR_clear_error();
	return ok;
}

static char	*x509_pem_of(X509 *x, EVP_PKEY *key);

char *
x509_material_key_pem(const struct x509_material *m)
{
	return m->key != NULL ? x509_pem_of(NULL, m->key) : NULL;
}

char *
x509_material_chain_pem(const struct x509_material *m)
{
	BIO	*bio = BIO_new(BIO_s_mem());
	char	*p, *s = NULL;
	long	 n;
	int	 i;

	if (bio == NULL)
		return NULL;
	for (i = 0; i < x509_material_chain_len(m); i++)
		PEM_write_bio_X509(bio, x509_chain_at(m, i));
	n = BIO_get_mem_data(bio, &p);
	s = strndup(p, (size_t)n);
	BIO_free(bio);
	return s;
}

char *
x509_chain_complete(const char *cert_pem, const char *pool_pem,
    struct err *e)
{
	struct x509_material	*m = NULL, *pool = NULL;
	X509			*last, *c;
	char			*out = NULL;
	int			 i, added;

	if (x509_material_parse(cert_pem, NULL, &m, e) == -1)
		return NULL;
	if (pool_pem != NULL && *pool_pem != '\0' &&
	    x509_material_parse(pool_pem, NULL, &pool, e) == -1) {
		x509_material_free(m);
		return NULL;
	}
	/* Follow the issuers from the last certificate given, up to (not
	 * including) a self-signed root: clients hold their roots. */
	do {
		added = 0;
		last = x509_chain_at(m, x509_material_chain_len(m) - 1);
		if (pool == NULL || X509_check_issued(last, last) == X509_V_OK)
			break;
		for (i = 0; i < x509_material_chain_len(pool); i++) {
			c = x509_chain_at(pool, i);
			if (X509_check_issued(c, last) != X509_V_OK ||
			    X509_check_issued(c, c) == X509_V_OK)
				continue;
			if (x509_material_chain_len(m) >= PEM_MAX_CERTS)
				break;
			X509_up_ref(c);
			if (sk_X509_push(m->chain, c) <= 0) {
				X509_free(c);
				break;
			}
			added = 1;
			break;
		}
	} while (added);
	ERR_clear_error();
	if ((out = x509_material_chain_pem(m)) == NULL)
		err_set(e, E_INTERNAL, "out of memory");
	x509_material_free(m);
	x509_material_free(pool);
	return out;
}

char *
x509_bundle_find(const char *bundle, const char *fingerprint)
{
	struct x509_material	*m = NULL;
	char			 want[100], fp[100], *out = NULL;
	size_t			 i, k = 0;
	int			 n;

	/* "AB:CD:..." or "abcd...": compared without colons or case. */
	for (i = 0; fingerprint[i] != '\0' && k < sizeof(want) - 1; i++)
		if (fingerprint[i] != ':')
			want[k++] = (char)toupper((unsigned char)fingerprint[i]);
	want[k] = '\0';
	if (x509_material_parse(bundle, NULL, &m, NULL) == -1)
		return NULL;
	for (n = 0; n < x509_material_chain_len(m) && out == NULL; n++) {
		X509 *x = x509_chain_at(m, n);
		x509_fingerprint(x, fp);
		for (i = 0, k = 0; fp[i] != '\0'; i++)
			if (fp[i] != ':')
				fp[k++] = fp[i];
		fp[k] = '\0';
		if (strcmp(fp, want) == 0)
			out = x509_pem_of(x, NULL);
	}
	x509_material_free(m);
	return out;
}

int
x509_ca_bundle_check(const char *pem, int check_dates, char **out,
    json_t **desc, struct err *e)
{
	struct x509_material	*m = NULL, *one = NULL;
	char			*acc = NULL, *p, *s;
	int			 i, n;

	*out = NULL;
	*desc = NULL;
	if (strstr(pem, "PRIVATE KEY") != NULL)
		return err_set(e, E_INVALID_PEM, "a trusted CA takes no key; "
		    "send the certificate only");
	if (x509_material_parse(pem, NULL, &m, e) == -1)
		return -1;
	if ((n = x509_material_chain_len(m)) > 16) {
		x509_material_free(m);
		return err_set(e, E_INVALID_CERTIFICATE, "at most 16 trusted "
		    "CA certificates (%d given)", n);
	}
	*desc = json_array();
	for (i = 0; i < n; i++) {
		X509 *x = x509_chain_at(m, i);
		if (X509_check_ca(x) < 1) {
			err_set(e, E_INVALID_CERTIFICATE, "certificate %d of "
			    "the bundle is not a CA (no basicConstraints "
			    "CA:TRUE): a trusted CA signs the client "
			    "certificates", i + 1);
			goto fail;
		}
		if (check_dates &&
		    X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
			err_set(e, E_EXPIRED, "certificate %d of the bundle has "
			    "expired", i + 1);
			goto fail;
		}
		if ((p = x509_pem_of(x, NULL)) == NULL)
			goto nomem;
		if (x509_material_parse(p, NULL, &one, NULL) == 0)
			json_array_append_new(*desc,
			    x509_material_describe(one));
		x509_material_free(one);
		one = NULL;
		s = acc;
		if (asprintf(&acc, "%s%s", s ? s : "", p) == -1)
			acc = NULL;
		free(s);
		free(p);
		if (acc == NULL)
			goto nomem;
	}
	x509_material_free(m);
	*out = acc;
	return 0;
nomem:
	err_set(e, E_INTERNAL, "out of memory");
fail:
	x509_material_free(m);
	free(acc);
	json_decref(*desc);
	*desc = NULL;
	return -1;
}

/* ---- issuing ---- */

static char *
x509_pem_of(X509 *x, EVP_PKEY *key)
{
	BIO	*bio = BIO_new(BIO_s_mem());
	char	*p, *s;
	long	 n;

	if (bio == NULL)
		return NULL;
	if (x != NULL)
		PEM_write_bio_X509(bio, x);
	else
		PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(bio, &p);
	s = strndup(p, (size_t)n);
	/* The BIO's buffer held the key: clear it before it is freed. */
	OPENSSL_cleanse(p, (size_t)n);
	BIO_free(bio);
	return s;
}

static int
x509_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX	 ctx;
	X509_EXTENSION	*ex;
	int		 ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ex == NULL)
		return 0;
	ok = X509_add_ext(x, ex, -1);
	X509_EXTENSION_free(ex);
	return ok;
}

static X509 *
x509_new_skeleton(EVP_PKEY *key, const char *cn, int days)
{
	X509		*x = X509_new();
	X509_NAME	*name;
	unsigned char	 serial[16];
	BIGNUM		*bn;

	if (x == NULL)
		return NULL;
	X509_set_version(x, X509_VERSION_3);
	RAND_bytes(serial, sizeof(serial));
	serial[0] &= 0x7f;	/* positive, as RFC 5280 requires */
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	/* Five minutes of slack for clients whose clock is a little behind. */
	X509_gmtime_adj(X509_getm_notBefore(x), -300);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
	    (const unsigned char *)"moat", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0);
	return x;
}

int
x509_ca_create(const char *cn, int days, char **cert_pem, char **key_pem,
    struct err *e)
{
	EVP_PKEY	*key = EVP_EC_gen("P-256");
	X509		*x = NULL;
	int		 rc = -1;

	*cert_pem = *key_pem = NULL;
	if (key == NULL || (x = x509_new_skeleton(key, cn, days)) == NULL)
		goto out;
	X509_set_issuer_name(x, X509_get_subject_name(x));
	if (!x509_add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
	    !x509_add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") ||
	    !x509_add_ext(x, x, NID_subject_key_identifier, "hash") ||
	    !X509_sign(x, key, EVP_sha256()))
		goto out;
	*cert_pem = x509_pem_of(x, NULL);
	*key_pem = x509_pem_of(NULL, key);
	if (*cert_pem != NULL && *key_pem != NULL)
		rc = 0;
out:
	if (rc == -1) {
		free(*cert_pem);
		x509_pem_free(*key_pem);
		*cert_pem = *key_pem = NULL;
		err_set(e, E_INTERNAL, "cannot create the cluster CA");
	}
	ERR_clear_error();
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

int
x509_cert_issue(const char *ca_cert_pem, const char *ca_key_pem,
    const char *cn, const char *const *dns, const char *const *ips, int days,
    char **cert_pem, char **key_pem, struct err *e)
{
	struct x509_material	*ca = NULL;
	EVP_PKEY		*key = NULL;
	X509			*x = NULL;
	char			*san = NULL, *t;
	int			 rc = -1, i;

	*cert_pem = *key_pem = NULL;
	if (x509_material_parse(ca_cert_pem, ca_key_pem, &ca, e) == -1)
		return -1;
	if ((key = EVP_EC_gen("P-256")) == NULL ||
	    (x = x509_new_skeleton(key, cn, days)) == NULL)
		goto out;
	X509_set_issuer_name(x, X509_get_subject_name(ca->leaf));
	for (i = 0; dns != NULL && dns[i] != NULL; i++) {
		if (asprintf(&t, "%s%sDNS:%s", san ? san : "", san ? "," : "",
		    dns[i]) == -1)
			goto out;
		free(san);
		san = t;
	}
	for (i = 0; ips != NULL && ips[i] != NULL; i++) {
		if (asprintf(&t, "%s%sIP:%s", san ? san : "", san ? "," : "",
		    ips[i]) == -1)
			goto out;
		free(san);
		san = t;
	}
	if (!x509_add_ext(x, ca->leaf, NID_basic_constraints, "critical,CA:FALSE") ||
	    /* An EC key only signs: no key encipherment. */
	    !x509_add_ext(x, ca->leaf, NID_key_usage, "critical,digitalSignature") ||
	    !x509_add_ext(x, ca->leaf, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    !x509_add_ext(x, ca->leaf, NID_subject_key_identifier, "hash") ||
	    !x509_add_ext(x, ca->leaf, NID_authority_key_identifier, "keyid") ||
	    (san != NULL && !x509_add_ext(x, ca->leaf, NID_subject_alt_name, san)) ||
	    !X509_sign(x, ca->key, EVP_sha256()))
		goto out;
	*cert_pem = x509_pem_of(x, NULL);
	*key_pem = x509_pem_of(NULL, key);
	if (*cert_pem != NULL && *key_pem != NULL)
		rc = 0;
out:
	if (rc == -1) {
		free(*cert_pem);
		x509_pem_free(*key_pem);
		*cert_pem = *key_pem = NULL;
		err_set(e, E_INTERNAL, "cannot issue the certificate for %s", cn);
	}
	ERR_clear_error();
	free(san);
	X509_free(x);
	EVP_PKEY_free(key);
	x509_material_free(ca);
	return rc;
}
