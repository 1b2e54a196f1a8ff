/*
 * tlspeer.c — who a client certificate on a control connection is: its
 * chain, revocation and subject checked against the trust of the moment,
 * and subject lines compared the way operators write them.
 *
 * The handshake of the API and UI ports takes any certificate
 * (tlsctx_control_new); this file decides, per request, what it proves.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tlsctx_impl.h"

/* ---- subject lines ---- */

#define LINE_MAX_PAIRS	32
#define LINE_MAX_LEN	1024

struct line_pair {
	char	attr[32];	/* lower case, aliases resolved */
	char	value[256];	/* unescaped */
};

/* The names operators use for one attribute, as one spelling. */
static void
attr_canon(char *a)
{
	static const struct {
		const char *alias, *name;
	} aliases[] = {
		{ "e", "emailaddress" }, { "email", "emailaddress" },
		{ "s", "st" }, { "commonname", "cn" },
		{ "organizationname", "o" }, { "organizationalunitname", "ou" },
		{ "localityname", "l" }, { "stateorprovincename", "st" },
		{ "countryname", "c" },
	};
	size_t i;

	for (i = 0; a[i] != '\0'; i++)
		a[i] = (char)tolower((unsigned char)a[i]);
	for (i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strcmp(a, aliases[i].alias) == 0) {
			strcpy(a, aliases[i].name);
			return;
		}
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* 1 when the character at p (within [start, p]) is escaped: an odd run
 * of backslashes right before it. */
static int
escaped(const char *start, const char *p)
{
	int n = 0;

	while (p > start && p[-1] == '\\') {
		n++;
		p--;
	}
	return n % 2 == 1;
}

/* Trim spaces at both ends of [*s, *end); an escaped space stays. */
static void
trim(const char **s, const char **end)
{
	const char *start = *s;

	while (*s < *end && **s == ' ')
		(*s)++;
	while (*end > *s && (*end)[-1] == ' ' && !escaped(start, *end - 1))
		(*end)--;
}

/* One "attr=value" of [s, end) into p; -1 with why. */
static int
pair_parse(const char *s, const char *end, struct line_pair *p,
    const char **why)
{
	const char	*eq;
	size_t		 n = 0, al;

	trim(&s, &end);
	for (eq = s; eq < end && *eq != '='; eq++)
		;
	if (eq == end) {
		*why = "an element has no '=' (expected attr=value)";
		return -1;
	}
	{
		const char *ae = eq;
		trim(&s, &ae);
		al = (size_t)(ae - s);
		if (al == 0 || al >= sizeof(p->attr)) {
			*why = "an attribute name is empty or too long";
			return -1;
		}
		memcpy(p->attr, s, al);
		p->attr[al] = '\0';
		for (size_t i = 0; i < al; i++)
			if (!isalnum((unsigned char)p->attr[i]) &&
			    p->attr[i] != '.') {
				*why = "an attribute name has a character "
				    "other than letters, digits and dots";
				return -1;
			}
		attr_canon(p->attr);
	}
	s = eq + 1;
	trim(&s, &end);
	while (s < end) {
		int c = (unsigned char)*s++;
		if (c == '\\' && s < end) {
			int h = hexval((unsigned char)s[0]);
			int l = s + 1 < end ? hexval((unsigned char)s[1]) : -1;
			if (h >= 0 && l >= 0) {
				c = h * 16 + l;
				s += 2;
			} else
				c = (unsigned char)*s++;
		}
		if (c == '\0' || n + 1 >= sizeof(p->value)) {
			*why = "a value is too long or holds a NUL";
			return -1;
		}
		p->value[n++] = (char)c;
	}
	p->value[n] = '\0';
	if (n == 0) {
		*why = "a value is empty";
		return -1;
	}
	return 0;
}

static int
pair_cmp(const void *a, const void *b)
{
	const struct line_pair *x = a, *y = b;
	int c = strcmp(x->attr, y->attr);

	return c != 0 ? c : strcmp(x->value, y->value);
}

/* line into pairs, sorted; the count, or -1 with why. */
static int
line_parse(const char *line, struct line_pair *pairs, const char **why)
{
	const char	*s = line, *p;
	int		 n = 0;

	if (strlen(line) > LINE_MAX_LEN) {
		*why = "it is longer than 1024 characters";
		return -1;
	}
	for (p = line;; p++) {
		/* Commas and '+' (a multi-valued RDN) separate, unless
		 * escaped; a backslash escapes the character after it, even
		 * another backslash. */
		if (*p == '\\' && p[1] != '\0') {
			p++;
			continue;
		}
		if (*p != '\0' && *p != ',' && *p != '+' && *p != ';')
			continue;
		if (n == LINE_MAX_PAIRS) {
			*why = "it has more than 32 elements";
			return -1;
		}
		if (pair_parse(s, p, &pairs[n], why) == -1)
			return -1;
		n++;
		if (*p == '\0')
			break;
		s = p + 1;
	}
	qsort(pairs, (size_t)n, sizeof(*pairs), pair_cmp);
	return n;
}

int
tls_subject_line_check(const char *line, struct err *e)
{
	struct line_pair	*pairs;
	const char		*why = NULL;
	int			 n, i, cn = 0;

	if ((pairs = calloc(LINE_MAX_PAIRS, sizeof(*pairs))) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	n = line_parse(line, pairs, &why);
	for (i = 0; i < n; i++)
		if (strcmp(pairs[i].attr, "cn") == 0)
			cn = 1;
	free(pairs);
	if (n == -1)
		return err_set(e, E_INVALID_SCHEMA, "certificate_subject_line "
		    "does not parse: %s (expected \"CN=<name>, OU=<unit>, "
		    "O=<organization>, ...\")", why);
	if (!cn)
		return err_set(e, E_INVALID_SCHEMA, "certificate_subject_line "
		    "needs a CN");
	return 0;
}

int
tls_subject_line_equal(const char *a, const char *b)
{
	struct line_pair	*pa, *pb;
	const char		*why;
	int			 na, nb, eq = 0;

	pa = calloc(LINE_MAX_PAIRS, sizeof(*pa));
	pb = calloc(LINE_MAX_PAIRS, sizeof(*pb));
	if (pa != NULL && pb != NULL &&
	    (na = line_parse(a, pa, &why)) > 0 &&
	    (nb = line_parse(b, pb, &why)) == na)
		eq = memcmp(pa, pb, sizeof(*pa) * (size_t)na) == 0;
	free(pa);
	free(pb);
	return eq;
}

/* ---- the certificate of a connection ---- */

/* Revocation where the operator gave a CRL (the databases' rule). */
static int
peer_verify_cb(int ok, X509_STORE_CTX *xs)
{
	return tls_verify_crl_missing(ok, xs) ? 1 : ok;
}

static X509_STORE *
peer_store(const struct tls_peer_rules *r)
{
	X509_STORE	*st;
	BIO		*bio;
	X509		*x;
	X509_CRL	*crl;
	int		 ncrl = 0;

	if ((st = X509_STORE_new()) == NULL)
		return NULL;
	if ((bio = BIO_new_mem_buf(r->trust_pem, -1)) != NULL) {
		while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
			X509_STORE_add_cert(st, x);
			X509_free(x);
		}
		BIO_free(bio);
	}
	if (r->crl_pem != NULL && *r->crl_pem != '\0' &&
	    (bio = BIO_new_mem_buf(r->crl_pem, -1)) != NULL) {
		while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) !=
		    NULL) {
			X509_STORE_add_crl(st, crl);
			X509_CRL_free(crl);
			ncrl++;
		}
		BIO_free(bio);
	}
	ERR_clear_error();
	if (ncrl > 0)
		X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
	X509_STORE_set_verify_cb(st, peer_verify_cb);
	return st;
}

/* The verification error in an operator's words. */
static const char *
peer_why(int err)
{
	switch (err) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		return "it does not chain to mtls_trusted_ca";
	case X509_V_ERR_CERT_REVOKED:
		return "it is revoked (mtls_crl)";
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return "it has expired";
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return "it is not valid yet";
	case X509_V_ERR_INVALID_PURPOSE:
		return "its extended key usage does not allow client "
		    "authentication";
	default:
		return X509_verify_cert_error_string(err);
	}
}

int
tls_peer_verify(SSL *ssl, const struct tls_peer_rules *r, char *subject,
    size_t len, struct err *e)
{
	X509		*leaf = SSL_get0_peer_certificate(ssl);
	X509_STORE	*st = NULL;
	X509_STORE_CTX	*xs = NULL;
	BIO		*bio = NULL;
	int		 rc = -1, n;

	if (leaf == NULL)
		return 0;
	if (r->trust_pem == NULL)
		return err_set(e, E_UNAUTHORIZED, "certificate sign-in is not "
		    "enabled on this cluster");
	if ((st = peer_store(r)) == NULL || (xs = X509_STORE_CTX_new()) ==
	    NULL || X509_STORE_CTX_init(xs, st, leaf,
	    SSL_get_peer_cert_chain(ssl)) != 1) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	X509_STORE_CTX_set_purpose(xs, X509_PURPOSE_SSL_CLIENT);
	if (X509_verify_cert(xs) != 1) {
		err_set(e, E_UNAUTHORIZED, "the client certificate is "
		    "refused: %s", peer_why(X509_STORE_CTX_get_error(xs)));
		goto out;
	}
	if (!tls_subject_allowed(r->subject_check, r->subjects, r->nsubjects,
	    leaf)) {
		err_set(e, E_UNAUTHORIZED, "the client certificate is "
		    "refused: its subject is not among "
		    "mtls_authorized_subjects");
		goto out;
	}
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    X509_NAME_print_ex(bio, X509_get_subject_name(leaf), 0,
	    XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
		err_set(e, E_INTERNAL, "cannot print the certificate's "
		    "subject");
		goto out;
	}
	/* Never cut short: a prefix of a subject could be another user's. */
	if ((size_t)BIO_pending(bio) >= len ||
	    (n = BIO_read(bio, subject, (int)len - 1)) < 0) {
		err_set(e, E_UNAUTHORIZED, "the client certificate is "
		    "refused: its subject is longer than %zu bytes", len - 1);
		goto out;
	}
	subject[n] = '\0';
	rc = 1;
out:
	BIO_free(bio);
	X509_STORE_CTX_free(xs);
	X509_STORE_free(st);
	ERR_clear_error();
	return rc;
}
