/*
 * tlsctx.c — SSL_CTX construction from material + policy, and the trial
 * handshake that proves a new context works before anyone is served by it.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tlsctx_impl.h"
#include "x509_impl.h"

struct tlsctx {
	_Atomic int	 refs;
	SSL_CTX		*ctx;	/* owned */
	int		 min_version;
	char		*label;	/* owned; the SSL_CTX's app data */
	/* Client contexts only (all owned, NULL when unused). */
	char		*pin;		/* pinned leaf: its SHA-256 fingerprint */
	char		*verify_name;	/* CA form: the name checked */
	char		*sni;
	/* Data contexts: who may connect (owned copies). */
	enum tls_subject_check	 subject_check;
	struct tls_subject	*subjects;
	size_t			 nsubjects;
};

int
tls_version_parse(const char *s, int *out, struct err *e)
{
	if (s != NULL && strcmp(s, "1.2") == 0)
		*out = TLS_V12;
	else if (s != NULL && strcmp(s, "1.3") == 0)
		*out = TLS_V13;
	else
		return err_set(e, E_INVALID_TLS_VERSION, "unsupported minimum "
		    "TLS version \"%.16s\": allowed values are \"1.2\" and "
		    "\"1.3\"", s != NULL ? s : "");
	return 0;
}

const char *
tls_version_str(int v)
{
	return v == TLS_V13 ? "1.3" : "1.2";
}

const char *
tls_hs_result_name(enum tls_hs_result r)
{
	static const char *const names[TLS_HS__COUNT] = {
		[TLS_HS_OK] = "ok",
		[TLS_HS_VERSION] = "version_refused",
		[TLS_HS_CLIENT_CERT] = "client_cert_refused",
		[TLS_HS_TIMEOUT] = "timeout",
		[TLS_HS_ABANDONED] = "abandoned",
		[TLS_HS_ERROR] = "error",
	};

	return (unsigned)r < TLS_HS__COUNT ? names[r] : "error";
}

enum tls_hs_result
tlsctx_handshake_why(unsigned long ec)
{
	if (ec == 0)
		return TLS_HS_ABANDONED;
	if (ERR_GET_LIB(ec) != ERR_LIB_SSL)
		return TLS_HS_ERROR;
	switch (ERR_GET_REASON(ec)) {
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		return TLS_HS_ABANDONED;
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
	case SSL_R_VERSION_TOO_LOW:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
		return TLS_HS_VERSION;
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
	case SSL_R_CERTIFICATE_VERIFY_FAILED:
	case SSL_R_NO_CERTIFICATES_RETURNED:
		return TLS_HS_CLIENT_CERT;
	default:
		return TLS_HS_ERROR;
	}
}

/*
 * OpenSSL accepts a list as long as one element selects something, so a
 * typo next to a valid name would be silently dropped.  Check each
 * selecting element on its own instead.
 */
/*
 * What a list must never let through, whatever else it says: no
 * encryption, no authentication, export strength, RC4, 3DES, and a
 * security level below 2 (which re-enables small keys and SHA-1).  ctx
 * has the list set; the message names the cipher (or the @SECLEVEL).
 */
static int
tls_cipher_list_weak(SSL_CTX *ctx, const char *list, struct err *e)
{
	STACK_OF(SSL_CIPHER)	*sk = SSL_CTX_get_ciphers(ctx);
	const char		*lv;
	int			 i;

	for (lv = strstr(list, "@SECLEVEL="); lv != NULL;
	    lv = strstr(lv + 1, "@SECLEVEL="))
		if (lv[10] < '2' || lv[10] > '5' || (lv[11] >= '0' &&
		    lv[11] <= '9'))
			return err_set(e, E_INVALID_CIPHER, "\"%.12s\": security "
			    "levels below 2 are refused (they allow small keys "
			    "and SHA-1)", lv);
	for (i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
		const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);
		const char *why = NULL;
		int enc = SSL_CIPHER_get_cipher_nid(c);
		int auth = SSL_CIPHER_get_auth_nid(c);

		if (enc == NID_undef)
			why = "no encryption (NULL)";
		else if (auth == NID_auth_null)
			why = "no authentication (anonymous)";
		else if (enc == NID_rc4 || enc == NID_rc4_40)
			why = "RC4";
		else if (enc == NID_des_ede3_cbc || enc == NID_des_cbc)
			why = "DES/3DES";
		else if (SSL_CIPHER_get_bits(c, NULL) < 112)
			why = "export strength";
		if (why != NULL)
			return err_set(e, E_INVALID_CIPHER, "the cipher list "
			    "selects %s, which has %s; exclude it (for example "
			    "with !aNULL:!eNULL:!RC4:!3DES)",
			    SSL_CIPHER_get_name(c), why);
	}
	return 0;
}

int
tls_cipher_list_check(const char *list, struct err *e)
{
	SSL_CTX	*ctx;
	char	*copy, *tok, *save = NULL;
	int	 rc = 0;

	if (list == NULL || *list == '\0' || strlen(list) > 4096)
		return err_set(e, E_INVALID_CIPHER, "the cipher list is empty "
		    "or too long");
	if ((ctx = SSL_CTX_new(TLS_method())) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	if ((copy = strdup(list)) == NULL) {
		SSL_CTX_free(ctx);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	for (tok = strtok_r(copy, ":,; ", &save); tok != NULL && rc == 0;
	    tok = strtok_r(NULL, ":,; ", &save)) {
		if (*tok == '!' || *tok == '-' || *tok == '+' || *tok == '@')
			continue;
		if (!SSL_CTX_set_cipher_list(ctx, tok)) {
			rc = err_set(e, E_INVALID_CIPHER, "cipher list element "
			    "\"%.64s\" is not known to OpenSSL (see `openssl "
			    "ciphers -v`)", tok);
		}
	}
	if (rc == 0 && !SSL_CTX_set_cipher_list(ctx, list))
		rc = err_set(e, E_INVALID_CIPHER, "the cipher list selects no "
		    "cipher");
	if (rc == 0)
		rc = tls_cipher_list_weak(ctx, list, e);
	free(copy);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

int
tls_ciphersuites_check(const char *list, struct err *e)
{
	SSL_CTX	*ctx;
	int	 rc = 0;

	if (list == NULL || *list == '\0' || strlen(list) > 4096)
		return err_set(e, E_INVALID_CIPHER, "the TLS 1.3 cipher suite "
		    "list is empty or too long");
	if ((ctx = SSL_CTX_new(TLS_method())) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	/* OpenSSL skips unknown names next to a known one: check each. */
	char *copy = strdup(list), *tok, *save = NULL;
	for (tok = copy ? strtok_r(copy, ":", &save) : NULL;
	    tok != NULL && rc == 0; tok = strtok_r(NULL, ":", &save))
		if (!SSL_CTX_set_ciphersuites(ctx, tok))
			rc = err_set(e, E_INVALID_CIPHER, "TLS 1.3 cipher suite "
			    "\"%.64s\" is not valid; allowed: "
			    "TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, "
			    "TLS_AES_128_GCM_SHA256, TLS_AES_128_CCM_SHA256, "
			    "TLS_AES_128_CCM_8_SHA256", tok);
	if (copy == NULL)
		rc = err_set(e, E_INTERNAL, "out of memory");
	else if (rc == 0 && !SSL_CTX_set_ciphersuites(ctx, list))
		rc = err_set(e, E_INVALID_CIPHER, "the TLS 1.3 cipher suite "
		    "list is not valid");
	free(copy);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

/* What every context of ours has: the policy's floor and ciphers, no
 * renegotiation, no compression.  E_INVALID_CIPHER. */
static int
ctx_use_policy(SSL_CTX *ctx, const struct tls_policy *p, struct err *e)
{
	SSL_CTX_set_min_proto_version(ctx, p->min_version);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION);
	if ((p->cipher_list != NULL &&
	    !SSL_CTX_set_cipher_list(ctx, p->cipher_list)) ||
	    (p->ciphersuites != NULL &&
	    !SSL_CTX_set_ciphersuites(ctx, p->ciphersuites)))
		return err_set(e, E_INVALID_CIPHER, "the cipher configuration "
		    "is rejected by OpenSSL");
	return 0;
}

/* The certificate, its chain and its key, which must match. */
static int
ctx_use_material(SSL_CTX *ctx, const struct x509_material *m)
{
	int i;

	if (SSL_CTX_use_certificate(ctx, m->leaf) != 1)
		return -1;
	for (i = 0; i < sk_X509_num(m->chain); i++)
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(m->chain, i)) != 1)
			return -1;
	if (m->key == NULL || SSL_CTX_use_PrivateKey(ctx, m->key) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		return -1;
	return 0;
}

struct tlsctx *
tlsctx_server_new(const struct x509_material *m, const struct tls_policy *p,
    struct err *e)
{
	struct tlsctx	*c;
	SSL_CTX		*ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		err_set(e, E_INTERNAL, "cannot create a TLS context");
		return NULL;
	}
	/* Release read/write buffers while a connection is idle: an idle
	 * client costs OpenSSL's state only. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (ctx_use_policy(ctx, p, e) == -1)
		goto fail;
	if (ctx_use_material(ctx, m) == -1)
		goto badcert;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto fail;
	}
	atomic_init(&c->refs, 1);
	c->ctx = ctx;
	c->min_version = p->min_version;
	ERR_clear_error();
	return c;
badcert:
	err_set(e, E_HANDSHAKE, "OpenSSL refuses the certificate or key "
	    "for a TLS context");
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * The staple belongs to the SSL_CTX (ex_data, freed with it), not to the
 * tlsctx: a connection accepted before a context swap keeps its SSL_CTX
 * alive, but the tlsctx around it may be gone by the time its
 * ClientHello asks for the status (the API port waits for it).
 */
struct staple {
	unsigned char	*der;
	size_t		 len;
	time_t		 until;
};

static int	staple_idx = -1;

static void
staple_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	struct staple *st = ptr;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (st != NULL)
		free(st->der);
	free(st);
}

/* A client asked for the certificate's status: the staple, while it is
 * current (an expired one would make a strict client refuse). */
static int
tlsctx_status_cb(SSL *ssl, void *arg)
{
	const struct staple	*st = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl),
				    staple_idx);
	unsigned char		*p;

	(void)arg;
	if (st == NULL || time(NULL) >= st->until ||
	    (p = OPENSSL_memdup(st->der, st->len)) == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	if (SSL_set_tlsext_status_ocsp_resp(ssl, p, (long)st->len) != 1) {
		OPENSSL_free(p);
		return SSL_TLSEXT_ERR_NOACK;
	}
	return SSL_TLSEXT_ERR_OK;
}

/* Staple st (copied) to c's handshakes; 0/-1 (out of memory).  Contexts
 * are built on the control thread only, so the index is made once. */
static int
tlsctx_set_staple(struct tlsctx *c, const struct tls_staple *in)
{
	struct staple *st;

	if (in == NULL || in->der == NULL || in->len == 0)
		return 0;
	if (staple_idx == -1 && (staple_idx = SSL_CTX_get_ex_new_index(0,
	    NULL, NULL, NULL, staple_free)) == -1)
		return -1;
	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (st->der = malloc(in->len)) == NULL) {
		free(st);
		return -1;
	}
	memcpy(st->der, in->der, in->len);
	st->len = in->len;
	st->until = in->until;
	if (SSL_CTX_set_ex_data(c->ctx, staple_idx, st) != 1) {
		staple_free(NULL, st, NULL, 0, 0, NULL);
		return -1;
	}
	SSL_CTX_set_tlsext_status_cb(c->ctx, tlsctx_status_cb);
	return 0;
}

/* ---- tls-alpn-01 answers ---- */

#define ACME_ALPN	"acme-tls/1"

struct alpn_entry {
	char		*name;
	X509		*cert;
	EVP_PKEY	*key;
};

static pthread_mutex_t	 alpn_mu = PTHREAD_MUTEX_INITIALIZER;
static struct alpn_entry *alpn_v;
static size_t		 alpn_n;
static int		 alpn_idx = -1;	/* SSL ex_data: answered by us */

static void
alpn_entries_free(struct alpn_entry *v, size_t n)
{
	while (n > 0) {
		n--;
		free(v[n].name);
		X509_free(v[n].cert);
		EVP_PKEY_free(v[n].key);
	}
	free(v);
}

int
tlsctx_acme_answers(const struct tls_alpn_answer *v, size_t n,
    struct err *e)
{
	struct alpn_entry	*nv = NULL, *old;
	size_t			 i, oldn;
	BIO			*b;

	if (n > 0 && (nv = calloc(n, sizeof(*nv))) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	for (i = 0; i < n; i++) {
		nv[i].name = strdup(v[i].name);
		if ((b = BIO_new_mem_buf(v[i].cert_pem, -1)) != NULL) {
			nv[i].cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
			BIO_free(b);
		}
		if ((b = BIO_new_mem_buf(v[i].key_pem, -1)) != NULL) {
			nv[i].key = PEM_read_bio_PrivateKey(b, NULL, NULL,
			    NULL);
			BIO_free(b);
		}
		if (nv[i].name == NULL || nv[i].cert == NULL ||
		    nv[i].key == NULL) {
			ERR_clear_error();
			alpn_entries_free(nv, n);
			return err_set(e, E_INVALID_PEM, "a tls-alpn-01 answer "
			    "does not parse");
		}
	}
	pthread_mutex_lock(&alpn_mu);
	if (alpn_idx == -1)
		alpn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	old = alpn_v;
	oldn = alpn_n;
	alpn_v = nv;
	alpn_n = n;
	pthread_mutex_unlock(&alpn_mu);
	alpn_entries_free(old, oldn);
	return 0;
}

/* 1 when the wire-format protocol list p offers proto. */
static int
alpn_offers(const unsigned char *p, size_t len, const char *proto)
{
	size_t plen = strlen(proto), l;

	while (len > 0) {
		l = p[0];
		if (l + 1 > len)
			return 0;
		if (l == plen && memcmp(p + 1, proto, plen) == 0)
			return 1;
		p += l + 1;
		len -= l + 1;
	}
	return 0;
}

/* The host_name of a server_name extension's body, into buf. */
static int
sni_of(const unsigned char *p, size_t len, char *buf, size_t blen)
{
	size_t l;

	/* list length (2), type (1), name length (2), name */
	if (len < 5 || p[2] != 0)
		return -1;
	l = ((size_t)p[3] << 8) | p[4];
	if (l + 5 > len || l >= blen)
		return -1;
	memcpy(buf, p + 5, l);
	buf[l] = '\0';
	return 0;
}

static int
acme_hello_cb(SSL *ssl, int *al, void *arg)
{
	const unsigned char	*p;
	size_t			 len, i;
	char			 host[256];
	int			 done = 0;

	(void)al;
	(void)arg;
	if (SSL_client_hello_get0_ext(ssl,
	    TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
	    &len) != 1 || len < 2 || !alpn_offers(p + 2, len - 2, ACME_ALPN) ||
	    SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p,
	    &len) != 1 || sni_of(p, len, host, sizeof(host)) == -1)
		return SSL_CLIENT_HELLO_SUCCESS;
	pthread_mutex_lock(&alpn_mu);
	for (i = 0; i < alpn_n && !done; i++) {
		if (strcasecmp(alpn_v[i].name, host) != 0)
			continue;
		/* Replace, not add: with two certificates OpenSSL would pick
		 * by the client's signature algorithms, and a validator
		 * that lists RSA first would get the real one. */
		SSL_certs_clear(ssl);
		done = SSL_use_certificate(ssl, alpn_v[i].cert) == 1 &&
		    SSL_use_PrivateKey(ssl, alpn_v[i].key) == 1;
	}
	if (done)
		SSL_set_ex_data(ssl, alpn_idx, (void *)1);
	pthread_mutex_unlock(&alpn_mu);
	ERR_clear_error();
	return SSL_CLIENT_HELLO_SUCCESS;
}

/* acme-tls/1 for the handshakes acme_hello_cb answered; no ALPN else. */
static int
acme_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)arg;
	if (alpn_idx == -1 || SSL_get_ex_data(ssl, alpn_idx) == NULL ||
	    !alpn_offers(in, inlen, ACME_ALPN))
		return SSL_TLSEXT_ERR_NOACK;
	*out = (const unsigned char *)ACME_ALPN;
	*outlen = (unsigned char)strlen(ACME_ALPN);
	return SSL_TLSEXT_ERR_OK;
}

/* The handshake takes any client certificate: the API checks it at each
 * request, against the trust of that moment (tls_peer_verify). */
static int
tlsctx_accept_any_cb(int ok, X509_STORE_CTX *xs)
{
	(void)ok;
	(void)xs;
	return 1;
}

struct tlsctx *
tlsctx_control_new(const struct x509_material *m, const struct tls_policy *p,
    const char *client_ca_pem, const struct tls_staple *staple, struct err *e)
{
	struct tlsctx	*c = tlsctx_server_new(m, p, e);
	BIO		*bio;
	X509		*x;
	int		 n = 0;

	if (c != NULL && tlsctx_set_staple(c, staple) == -1)
		goto nomem;
	if (c != NULL) {
		SSL_CTX_set_client_hello_cb(c->ctx, acme_hello_cb, NULL);
		SSL_CTX_set_alpn_select_cb(c->ctx, acme_alpn_cb, NULL);
	}
	if (c == NULL || client_ca_pem == NULL)
		return c;
	if ((bio = BIO_new_mem_buf(client_ca_pem, -1)) == NULL)
		goto nomem;
	/* Named in the certificate request, so that a client with several
	 * certificates (a browser) offers one these CAs signed. */
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (SSL_CTX_add_client_CA(c->ctx, x) == 1)
			n++;
		X509_free(x);
	}
	BIO_free(bio);
	ERR_clear_error();
	if (n == 0) {
		tlsctx_unref(c);
		err_set(e, E_INVALID_PEM, "no trusted client CA parses");
		return NULL;
	}
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, tlsctx_accept_any_cb);
	/* No resumption: a resumed session keeps the client's leaf but not
	 * its chain, and each request verifies the chain (a certificate
	 * from an intermediate CA would be refused on every resumed
	 * connection).  A full handshake per connection is cheap on a
	 * control port. */
	SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(c->ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(c->ctx, 0);
	SSL_CTX_set_session_id_context(c->ctx, (const unsigned char *)"moat-ctl",
	    8);
	return c;
nomem:
	tlsctx_unref(c);
	err_set(e, E_INTERNAL, "out of memory");
	return NULL;
}

struct tlsctx *
tlsctx_ref(struct tlsctx *c)
{
	if (c != NULL)
		atomic_fetch_add(&c->refs, 1);
	return c;
}

static void	tlsctx_subjects_free(struct tlsctx *);

void
tlsctx_unref(struct tlsctx *c)
{
	if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	SSL_CTX_free(c->ctx);
	tlsctx_subjects_free(c);
	free(c->label);
	free(c->pin);
	free(c->verify_name);
	free(c->sni);
	free(c);
}

static void
tlsctx_subjects_free(struct tlsctx *c)
{
	size_t i;
	char **ou;

	for (i = 0; i < c->nsubjects; i++) {
		struct tls_subject *t = &c->subjects[i];
		free((char *)t->cn);
		free((char *)t->o);
		free((char *)t->l);
		free((char *)t->st);
		free((char *)t->c);
		for (ou = (char **)t->ou; ou != NULL && *ou != NULL; ou++)
			free(*ou);
		free((char **)t->ou);
	}
	free(c->subjects);
	c->subjects = NULL;
	c->nsubjects = 0;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* Copy the caller's rules into c (the verify callback reads them at
 * every handshake, long after the caller's strings are gone). */
static int
tlsctx_subjects_copy(struct tlsctx *c, const struct tlsctx_data_opts *o)
{
	size_t i, k, n;

	c->subject_check = o->subject_check;
	if (o->nsubjects == 0)
		return 0;
	if ((c->subjects = calloc(o->nsubjects, sizeof(*c->subjects))) ==
	    NULL)
		return -1;
	c->nsubjects = o->nsubjects;
	for (i = 0; i < o->nsubjects; i++) {
		const struct tls_subject *f = &o->subjects[i];
		struct tls_subject *t = &c->subjects[i];
		char **ou;
		t->cn = dup_or_null(f->cn);
		t->o = dup_or_null(f->o);
		t->l = dup_or_null(f->l);
		t->st = dup_or_null(f->st);
		t->c = dup_or_null(f->c);
		for (n = 0; f->ou != NULL && f->ou[n] != NULL; n++)
			;
		if ((ou = calloc(n + 1, sizeof(*ou))) == NULL)
			return -1;
		for (k = 0; k < n; k++)
			ou[k] = strdup(f->ou[k]);
		t->ou = (const char *const *)ou;
	}
	return 0;
}

/*
 * 1 when entry i of name is exactly want (ci: without ASCII case): the
 * whole value, compared as bytes, never cut short and never equal when
 * it holds a NUL ("alice\0x" is not alice).
 */
static int
entry_is(X509_NAME *name, int i, const char *want, int ci)
{
	ASN1_STRING	*d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name,
			    i));
	unsigned char	*u = NULL;
	int		 ul, eq;
	size_t		 wl = strlen(want);

	if ((ul = ASN1_STRING_to_UTF8(&u, d)) < 0)
		return 0;
	eq = (size_t)ul == wl && memchr(u, '\0', (size_t)ul) == NULL &&
	    (ci ? strncasecmp((const char *)u, want, wl) == 0 :
	    memcmp(u, want, wl) == 0);
	OPENSSL_free(u);
	return eq;
}

/* 1 when one entry nid of name is want (want NULL: nothing to check). */
static int
field_is(X509_NAME *name, int nid, const char *want, int ci)
{
	int i = -1;

	if (want == NULL)
		return 1;
	while ((i = X509_NAME_get_index_by_NID(name, nid, i)) >= 0)
		if (entry_is(name, i, want, ci))
			return 1;
	return 0;
}

/* Every OU in want is one of the certificate's. */
static int
ous_present(X509_NAME *name, const char *const *want)
{
	for (; want != NULL && *want != NULL; want++)
		if (!field_is(name, NID_organizationalUnitName, *want, 0))
			return 0;
	return 1;
}

/* 1 when leaf is one that the rules let in. */
int
tls_subject_allowed(enum tls_subject_check check,
    const struct tls_subject *subjects, size_t nsubjects, X509 *leaf)
{
	X509_NAME	*name = X509_get_subject_name(leaf);
	size_t		 i;

	if (check == TLS_SUBJECT_ANY || nsubjects == 0)
		return 1;
	for (i = 0; i < nsubjects; i++) {
		const struct tls_subject *t = &subjects[i];
		if (check == TLS_SUBJECT_SAN_CN) {
			/* A SAN DNS entry, or the CN, names it; both compared
			 * as DNS names are, without case, whether or not the
			 * certificate has SANs. */
			if (X509_check_host(leaf, t->cn, 0,
			    X509_CHECK_FLAG_NO_WILDCARDS |
			    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL) == 1 ||
			    field_is(name, NID_commonName, t->cn, 1))
				return 1;
			continue;
		}
		if (field_is(name, NID_commonName, t->cn, 0) &&
		    field_is(name, NID_organizationName, t->o, 0) &&
		    field_is(name, NID_localityName, t->l, 0) &&
		    field_is(name, NID_stateOrProvinceName, t->st, 0) &&
		    field_is(name, NID_countryName, t->c, 0) &&
		    ous_present(name, t->ou))
			return 1;
	}
	return 0;
}

int
tls_verify_crl_missing(int ok, X509_STORE_CTX *xs)
{
	int err = X509_STORE_CTX_get_error(xs);

	if (ok || (err != X509_V_ERR_UNABLE_TO_GET_CRL &&
	    err != X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER))
		return 0;
	X509_STORE_CTX_set_error(xs, X509_V_OK);
	return 1;
}

/* Why a client certificate was refused, for the log; and the checks
 * that come after the chain: revocation only where a CRL is known, and
 * who may connect. */
static int
tlsctx_verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL			*ssl;
	SSL_CTX			*ctx;
	const struct tlsctx	*c;
	const char		*label;
	char			 subj[256] = "";
	X509			*cur;
	int			 err = X509_STORE_CTX_get_error(xs);

	ssl = X509_STORE_CTX_get_ex_data(xs,
	    SSL_get_ex_data_X509_STORE_CTX_idx());
	ctx = ssl != NULL ? SSL_get_SSL_CTX(ssl) : NULL;
	c = ctx != NULL ? SSL_CTX_get_app_data(ctx) : NULL;
	label = c != NULL ? c->label : NULL;
	/* A pinned leaf (the chain is the leaf alone): OpenSSL takes the
	 * leaf for its own CRL issuer and fails; look the leaf up in the
	 * CRLs of its issuer's name instead (they are the operator's). */
	if (!ok && X509_STORE_CTX_get_error_depth(xs) == 0 &&
	    sk_X509_num(X509_STORE_CTX_get0_chain(xs)) == 1 &&
	    (err == X509_V_ERR_KEYUSAGE_NO_CRL_SIGN ||
	    err == X509_V_ERR_CRL_SIGNATURE_FAILURE ||
	    err == X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER ||
	    err == X509_V_ERR_DIFFERENT_CRL_SCOPE) &&
	    (cur = X509_STORE_CTX_get_current_cert(xs)) != NULL) {
		STACK_OF(X509_CRL) *crls = X509_STORE_CTX_get1_crls(xs,
		    X509_get_issuer_name(cur));
		X509_REVOKED *rv;
		int i, revoked = 0;
		for (i = 0; i < sk_X509_CRL_num(crls); i++)
			if (X509_CRL_get0_by_cert(sk_X509_CRL_value(crls, i),
			    &rv, cur) == 1)
				revoked = 1;
		sk_X509_CRL_pop_free(crls, X509_CRL_free);
		if (!revoked) {
			X509_STORE_CTX_set_error(xs, X509_V_OK);
			return 1;
		}
		X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REVOKED);
		err = X509_V_ERR_CERT_REVOKED;
	}
	if (tls_verify_crl_missing(ok, xs))
		return 1;
	if (ok && c != NULL && X509_STORE_CTX_get_error_depth(xs) == 0 &&
	    (cur = X509_STORE_CTX_get_current_cert(xs)) != NULL &&
	    !tls_subject_allowed(c->subject_check, c->subjects,
	    c->nsubjects, cur)) {
		X509_NAME_oneline(X509_get_subject_name(cur), subj,
		    sizeof(subj));
		log_warn("%s: client certificate %s refused: its subject is "
		    "not among the authorized subjects",
		    label ? label : "endpoint", subj);
		X509_STORE_CTX_set_error(xs,
		    X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	if (ok)
		return ok;
	if ((cur = X509_STORE_CTX_get_current_cert(xs)) != NULL)
		X509_NAME_oneline(X509_get_subject_name(cur), subj,
		    sizeof(subj));
	log_warn("%s: client certificate %s refused: %s",
	    label ? label : "endpoint", subj,
	    X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)));
	return ok;
}

static int
tlsctx_set_client_trust(SSL_CTX *ctx, const char *pem, struct err *e)
{
	X509_STORE	*st = SSL_CTX_get_cert_store(ctx);
	BIO		*bio = BIO_new_mem_buf(pem, -1);
	X509		*x;
	int		 n = 0;

	if (bio == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		X509_STORE_add_cert(st, x);
		X509_free(x);
		n++;
	}
	BIO_free(bio);
	ERR_clear_error();
	if (n == 0)
		return err_set(e, E_INVALID_PEM, "no client certificate parses");
	/* A trusted leaf need not be self-signed: accept a chain that ends
	 * at any certificate of the list. */
	X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
	    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, tlsctx_verify_cb);
	SSL_CTX_set_verify_depth(ctx, 8);
	return 0;
}

/* The CRLs of pem into ctx's store, checked for the leaf (-1 with e
 * when pem has none that parses, or something else). */
static int
tlsctx_add_crls(SSL_CTX *ctx, const char *pem, struct err *e)
{
	X509_STORE	*st = SSL_CTX_get_cert_store(ctx);
	BIO		*bio;
	X509_CRL	*crl;
	int		 n = 0;

	if (pem == NULL || *pem == '\0')
		return 0;
	if ((bio = BIO_new_mem_buf(pem, -1)) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
		X509_STORE_add_crl(st, crl);
		X509_CRL_free(crl);
		n++;
	}
	BIO_free(bio);
	ERR_clear_error();
	if (n == 0)
		return err_set(e, E_INVALID_PEM, "crl: no PEM CRL parses "
		    "(expected -----BEGIN X509 CRL-----)");
	X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
	return 0;
}

int
tls_crl_check(const char *pem, struct err *e)
{
	SSL_CTX	*ctx;
	int	 rc;

	if (strstr(pem, "PRIVATE KEY") != NULL)
		return err_set(e, E_INVALID_PEM, "crl: holds a private key");
	if ((ctx = SSL_CTX_new(TLS_method())) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	rc = tlsctx_add_crls(ctx, pem, e);
	SSL_CTX_free(ctx);
	return rc;
}

struct tlsctx *
tlsctx_data_new(const struct x509_material *m, const struct tls_policy *p,
    const struct tlsctx_data_opts *opts, struct err *e)
{
	struct tlsctx	*c = tlsctx_server_new(m, p, e);
	char		*label = NULL;

	if (c == NULL)
		return NULL;
	SSL_CTX_set_read_ahead(c->ctx, 1);
	SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* No server-side cache: resumption works through tickets, and an
	 * idle connection does not pin a cache entry. */
	SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(c->ctx, 1);
	if (opts != NULL && opts->label != NULL &&
	    (label = strdup(opts->label)) != NULL)
		c->label = label;
	/* The verify callback finds the rules and the label through it. */
	SSL_CTX_set_app_data(c->ctx, c);
	if (opts != NULL && opts->client_trust_pem != NULL &&
	    (tlsctx_set_client_trust(c->ctx, opts->client_trust_pem, e) == -1 ||
	    tlsctx_add_crls(c->ctx, opts->crl_pem, e) == -1)) {
		tlsctx_unref(c);
		return NULL;
	}
	if (opts != NULL && tlsctx_set_staple(c, opts->staple) == -1) {
		tlsctx_unref(c);
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	if (opts != NULL && tlsctx_subjects_copy(c, opts) == -1) {
		tlsctx_unref(c);
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	return c;
}

int
tlsctx_min_version(const struct tlsctx *c)
{
	return c->min_version;
}

SSL_CTX *
tlsctx_ssl_ctx(struct tlsctx *c)
{
	return c->ctx;
}

/* Drive both ends over a BIO pair until both finish or one fails. */
static int
tlsctx_trial_one(struct tlsctx *c, const struct x509_material *m,
    const char *sni, int version, struct err *e)
{
	SSL_CTX		*cctx;
	SSL		*cli = NULL, *srv = NULL;
	BIO		*cb = NULL, *sb = NULL;
	int		 i, cdone = 0, sdone = 0, rc = -1;
	unsigned long	 ec = 0;
	char		 why[256] = "no progress";

	if ((cctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	SSL_CTX_set_min_proto_version(cctx, version);
	SSL_CTX_set_max_proto_version(cctx, version);
	if ((cli = SSL_new(cctx)) == NULL || (srv = SSL_new(c->ctx)) == NULL ||
	    !BIO_new_bio_pair(&cb, 0, &sb, 0))
		goto out;
	SSL_set_bio(cli, cb, cb);
	SSL_set_bio(srv, sb, sb);
	if (sni != NULL)
		SSL_set_tlsext_host_name(cli, sni);
	SSL_set_connect_state(cli);
	SSL_set_accept_state(srv);
	for (i = 0; i < 32 && !(cdone && sdone); i++) {
		int r;
		if (!cdone) {
			r = SSL_do_handshake(cli);
			if (r == 1)
				cdone = 1;
			else if (SSL_get_error(cli, r) != SSL_ERROR_WANT_READ) {
				ec = ERR_peek_last_error();
				break;
			}
		}
		if (!sdone) {
			r = SSL_do_handshake(srv);
			if (r == 1)
				sdone = 1;
			else if (SSL_get_error(srv, r) != SSL_ERROR_WANT_READ) {
				ec = ERR_peek_last_error();
				break;
			}
		}
	}
	if (cdone && sdone) {
		X509 *peer = SSL_get0_peer_certificate(cli);
		if (peer != NULL && X509_cmp(peer, m->leaf) == 0)
			rc = 0;
		else
			snprintf(why, sizeof(why), "the client did not receive "
			    "the new certificate");
	} else if (ec != 0) {
		ERR_error_string_n(ec, why, sizeof(why));
	}
	if (rc == -1)
		err_set(e, E_HANDSHAKE, "a trial TLS %s handshake with the new "
		    "certificate and the current policy failed: %s",
		    tls_version_str(version), why);
out:
	if (rc == -1 && e != NULL && e->code != E_HANDSHAKE)
		err_set(e, E_INTERNAL, "cannot set up the trial handshake");
	SSL_free(cli);
	SSL_free(srv);
	SSL_CTX_free(cctx);
	ERR_clear_error();
	return rc;
}

int
tlsctx_trial_handshake(struct tlsctx *c, const struct x509_material *m,
    const char *sni, struct err *e)
{
	int v;

	for (v = c->min_version; v <= TLS_V13; v++)
		if (tlsctx_trial_one(c, m, sni, v, e) == -1)
			return -1;
	return 0;
}

/* ---- client contexts: the syncer's link to a source database ---- */

/* Every certificate of pem, or NULL with E_INVALID_CERTIFICATE. */
static STACK_OF(X509) *
pem_certs(const char *pem, struct err *e)
{
	STACK_OF(X509)	*sk = sk_X509_new_null();
	BIO		*bio = pem != NULL ? BIO_new_mem_buf(pem, -1) : NULL;
	X509		*x;

	while (bio != NULL && sk != NULL &&
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(sk, x))
			X509_free(x);
	BIO_free(bio);
	ERR_clear_error();
	if (sk == NULL || sk_X509_num(sk) == 0) {
		sk_X509_pop_free(sk, X509_free);
		err_set(e, E_INVALID_CERTIFICATE, "server_cert does not parse "
		    "as a PEM certificate");
		return NULL;
	}
	return sk;
}

int
tlsctx_server_cert_form(const char *pem, struct err *e)
{
	STACK_OF(X509)	*sk;
	int		 i, ca = 0;

	if ((sk = pem_certs(pem, e)) == NULL)
		return -1;
	/* Only basicConstraints CA:TRUE makes a CA here: a self-signed
	 * leaf (RS's pinned way) stays a leaf. */
	for (i = 0; i < sk_X509_num(sk); i++)
		if (X509_get_extension_flags(sk_X509_value(sk, i)) & EXFLAG_CA)
			ca = 1;
	if (!ca && sk_X509_num(sk) > 1) {
		sk_X509_pop_free(sk, X509_free);
		return err_set(e, E_INVALID_CERTIFICATE, "server_cert holds "
		    "several certificates and none is a CA: give one CA (the "
		    "source's chain and name are checked) or the source's "
		    "proxy leaf alone (pinned)");
	}
	sk_X509_pop_free(sk, X509_free);
	return ca;
}

static int
str_set(char **dst, const char *src)
{
	if (src == NULL || *src == '\0')
		return 0;
	return (*dst = strdup(src)) != NULL ? 0 : -1;
}

struct tlsctx *
tlsctx_client_new(const struct x509_material *id, const struct tls_policy *p,
    const struct tlsctx_client_opts *o, struct err *e)
{
	struct tlsctx	*c;
	SSL_CTX		*ctx;
	STACK_OF(X509)	*sk;
	X509_STORE	*st;
	char		 fp[100];
	int		 i, form;

	if ((form = tlsctx_server_cert_form(o->server_cert_pem, e)) == -1 ||
	    (sk = pem_certs(o->server_cert_pem, e)) == NULL)
		return NULL;
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    (c = calloc(1, sizeof(*c))) == NULL) {
		SSL_CTX_free(ctx);
		sk_X509_pop_free(sk, X509_free);
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	atomic_init(&c->refs, 1);
	c->ctx = ctx;
	c->min_version = p->min_version;
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (ctx_use_policy(ctx, p, e) == -1)
		goto fail;
	/* Our identity: the cluster's syncer certificate. */
	if (id != NULL && ctx_use_material(ctx, id) == -1)
		goto badcert;
	if (form == 1) {
		/* CA form: the usual checks, chain and name. */
		st = SSL_CTX_get_cert_store(ctx);
		for (i = 0; i < sk_X509_num(sk); i++)
			X509_STORE_add_cert(st, sk_X509_value(sk, i));
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_verify_depth(ctx, 8);
		if (str_set(&c->verify_name, o->verify_name) == -1)
			goto nomem;
	} else {
		/* Pinned leaf (RS's way): the chain is not what is trusted,
		 * the exact certificate is; it is compared once the
		 * handshake is done, before a byte is sent. */
		x509_fingerprint(sk_X509_value(sk, 0), fp);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		if (str_set(&c->pin, fp) == -1)
			goto nomem;
	}
	if (str_set(&c->sni, o->sni) == -1)
		goto nomem;
	sk_X509_pop_free(sk, X509_free);
	ERR_clear_error();
	return c;
nomem:
	err_set(e, E_INTERNAL, "out of memory");
	goto fail;
badcert:
	err_set(e, E_HANDSHAKE, "OpenSSL refuses the syncer certificate or "
	    "key for a TLS client context");
fail:
	sk_X509_pop_free(sk, X509_free);
	ERR_clear_error();
	tlsctx_unref(c);
	return NULL;
}

SSL *
tlsctx_client_ssl(struct tlsctx *c)
{
	SSL		*ssl;
	X509_VERIFY_PARAM *vp;
	unsigned char	 ip[16];

	if ((ssl = SSL_new(c->ctx)) == NULL)
		return NULL;
	if (c->sni != NULL && !SSL_set_tlsext_host_name(ssl, c->sni))
		goto fail;
	if (c->verify_name != NULL) {
		vp = SSL_get0_param(ssl);
		/* An address is checked against IP SANs, a name against
		 * DNS SANs (wildcards as browsers take them). */
		if (inet_pton(AF_INET, c->verify_name, ip) == 1 ||
		    inet_pton(AF_INET6, c->verify_name, ip) == 1) {
			if (!X509_VERIFY_PARAM_set1_ip_asc(vp, c->verify_name))
				goto fail;
		} else {
			X509_VERIFY_PARAM_set_hostflags(vp,
			    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (!X509_VERIFY_PARAM_set1_host(vp, c->verify_name, 0))
				goto fail;
		}
	}
	SSL_set_connect_state(ssl);
	return ssl;
fail:
	SSL_free(ssl);
	ERR_clear_error();
	return NULL;
}

int
tlsctx_client_check(struct tlsctx *c, SSL *ssl, char *why, size_t len)
{
	X509	*peer;
	char	 fp[100];

	if (c->pin == NULL)
		return 0;	/* CA form: verified during the handshake */
	if ((peer = SSL_get0_peer_certificate(ssl)) == NULL) {
		snprintf(why, len, "the source presented no certificate");
		return -1;
	}
	x509_fingerprint(peer, fp);
	if (strcmp(fp, c->pin) == 0)
		return 0;
	snprintf(why, len, "the source's certificate is not the one "
	    "server_cert pins: expected SHA-256 %s, the source presented %s "
	    "(its proxy certificate changed? PUT the new one as server_cert, "
	    "or give the source's CA to trust every certificate it issues)",
	    c->pin, fp);
	return -1;
}

/* TLS alerts that mean "your certificate": RFC 8446 6.2. */
static int
alert_about_our_cert(int alert)
{
	switch (alert) {
	case SSL3_AD_BAD_CERTIFICATE:
	case SSL3_AD_UNSUPPORTED_CERTIFICATE:
	case SSL3_AD_CERTIFICATE_REVOKED:
	case SSL3_AD_CERTIFICATE_EXPIRED:
	case SSL3_AD_CERTIFICATE_UNKNOWN:
	case TLS1_AD_UNKNOWN_CA:
	case TLS1_AD_ACCESS_DENIED:
	case TLS13_AD_CERTIFICATE_REQUIRED:
		return 1;
	}
	return 0;
}

int
tlsctx_client_why(struct tlsctx *c, SSL *ssl, unsigned long ec, char *why,
    size_t len)
{
	long	 vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	int	 reason;
	char	 buf[256];

	if (ERR_GET_LIB(ec) == 0)
		ec = 0;		/* an SSL_get_error() code, not an error */
	reason = ERR_GET_REASON(ec);

	if (c->pin == NULL && vr != X509_V_OK) {
		if (vr == X509_V_ERR_HOSTNAME_MISMATCH ||
		    vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
			snprintf(why, len, "the source's certificate does not "
			    "verify against server_cert: it is not valid for "
			    "\"%s\" (set replication_tls_sni to the name it "
			    "carries)", c->verify_name ? c->verify_name : "");
		else
			snprintf(why, len, "the source's certificate does not "
			    "verify against server_cert: %s",
			    X509_verify_cert_error_string(vr));
		return 1;
	}
	if (ERR_GET_LIB(ec) == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET &&
	    reason < SSL_AD_REASON_OFFSET + 256) {
		int alert = reason - SSL_AD_REASON_OFFSET;
		if (alert_about_our_cert(alert))
			snprintf(why, len, "the source refused this cluster's "
			    "syncer certificate (TLS alert \"%s\"): its database "
			    "must trust it in authentication_ssl_client_certs",
			    SSL_alert_desc_string_long(alert));
		else
			snprintf(why, len, "the source ended the TLS handshake "
			    "(TLS alert \"%s\")", SSL_alert_desc_string_long(
			    alert));
		return 1;
	}
	if (ec != 0) {
		ERR_error_string_n(ec, buf, sizeof(buf));
		snprintf(why, len, "TLS with the source failed: %s", buf);
		return 1;
	}
	/* No ClientHello ever left: the TCP connection never was. */
	if (ssl == NULL || SSL_get_wbio(ssl) == NULL ||
	    BIO_number_written(SSL_get_wbio(ssl)) == 0)
		return 0;
	snprintf(why, len, "the source closed the connection during the TLS "
	    "handshake");
	return 1;
}
