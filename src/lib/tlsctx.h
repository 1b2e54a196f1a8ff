/*
 * tlsctx.h — TLS policy and the immutable, reference-counted TLS contexts
 * built from certificate material plus policy.
 *
 * A context is never modified once published: a certificate or policy
 * change builds a new one and swaps the pointer.  Live connections hold
 * the old one (OpenSSL refcounts it per connection) and are never dropped.
 */
#ifndef MOAT_TLSCTX_H
#define MOAT_TLSCTX_H

#include <stddef.h>
#include <time.h>

#include "err.h"
#include "x509.h"

#define TLS_V12		0x0303
#define TLS_V13		0x0304

/* TLS 1.2: forward secrecy and AEAD only (no CBC: LUCKY13 and kin). */
#define MOAT_DEFAULT_CIPHER_LIST \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define MOAT_DEFAULT_CIPHERSUITES \
	"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"

/* How a server-side handshake ended, for the metrics. */
enum tls_hs_result {
	TLS_HS_OK,
	TLS_HS_VERSION,		/* no protocol version in common */
	TLS_HS_CLIENT_CERT,	/* client certificate missing or refused */
	TLS_HS_TIMEOUT,		/* the client did not finish in time */
	TLS_HS_ABANDONED,	/* the client closed before the end */
	TLS_HS_ERROR,		/* anything else: not TLS, no cipher ... */
	TLS_HS__COUNT
};

/* "ok", "version_refused", "client_cert_refused", "timeout",
 * "abandoned", "error". */
const char	*tls_hs_result_name(enum tls_hs_result r);

/* Plain data; strings owned by whoever owns the struct. */
struct tls_policy {
	int		 min_version;	/* TLS_V12 or TLS_V13 */
	const char	*cipher_list;	/* TLS <= 1.2, OpenSSL syntax */
	const char	*ciphersuites;	/* TLS 1.3 */
};

/* "1.2" / "1.3" -> TLS_V12 / TLS_V13; anything else E_INVALID_TLS_VERSION. */
int		 tls_version_parse(const char *s, int *out, struct err *e);
const char	*tls_version_str(int v);
/* Each element of the list must be known to OpenSSL. E_INVALID_CIPHER. */
int		 tls_cipher_list_check(const char *list, struct err *e);
int		 tls_ciphersuites_check(const char *list, struct err *e);

struct tlsctx;

/* New server context (refcount 1) from validated material and a policy. */
struct tlsctx	*tlsctx_server_new(const struct x509_material *m,
		    const struct tls_policy *p, struct err *e);

/* Who may connect, beyond a certificate that verifies (RS's
 * authorized_subjects): CN required, the others checked when given. */
struct tls_subject {
	const char		*cn, *o, *l, *st, *c;
	const char *const	*ou;	/* NULL-terminated; all must be there */
};

enum tls_subject_check {
	TLS_SUBJECT_ANY,	/* "disabled": any verified certificate */
	TLS_SUBJECT_SAN_CN,	/* a SAN DNS name or the CN is a listed CN */
	TLS_SUBJECT_FULL,	/* the subject matches a listed one */
};

/* An OCSP response (DER) about a context's certificate, stapled to the
 * handshakes of clients that ask, until until (its nextUpdate). */
struct tls_staple {
	const unsigned char	*der;
	size_t			 len;
	time_t			 until;
};

/*
 * A control-plane context (API, UI): as tlsctx_server_new, stapling
 * staple (NULL: none); with
 * client_ca_pem, the handshake also asks for a client certificate,
 * naming those CAs, but never requires one and never refuses one: the
 * API checks what it proves at each request, against the trust and the
 * revocations of that moment (tls_peer_verify), so that a change of
 * either applies to connections already open.
 */
struct tlsctx	*tlsctx_control_new(const struct x509_material *m,
		    const struct tls_policy *p, const char *client_ca_pem,
		    const struct tls_staple *staple, struct err *e);

/*
 * tls-alpn-01 (RFC 8737) on the control ports: a ClientHello that offers
 * only "acme-tls/1" for a name in this process-wide table gets that
 * name's challenge certificate and the protocol acme-tls/1, whatever
 * context it reached; every other handshake is as before.  The table is
 * replaced whole (n entries; 0 empties it); it is guarded by a lock.
 */
struct tls_alpn_answer {
	const char	*name;
	const char	*cert_pem;
	const char	*key_pem;
};
int		 tlsctx_acme_answers(const struct tls_alpn_answer *v, size_t n,
		    struct err *e);

/* What a client certificate must satisfy to sign in (strings borrowed). */
struct tls_peer_rules {
	const char		*trust_pem;	/* the CAs it must chain to */
	const char		*crl_pem;	/* NULL: no revocation list */
	enum tls_subject_check	 subject_check;
	const struct tls_subject *subjects;
	size_t			 nsubjects;
};

/* A subject line (RFC 2253 or RS's "CN=x, OU=y, O=z" form): 0 when it
 * parses and names a CN, else E_INVALID_SCHEMA naming the problem. */
int		 tls_subject_line_check(const char *line, struct err *e);
/* 1 when a and b name the same subject: the same attribute=value pairs
 * in any order, attribute names compared without case. */
int		 tls_subject_line_equal(const char *a, const char *b);

/* Options of a data-path context (a database endpoint). */
struct tlsctx_data_opts {
	/* PEM certificates a client must present or chain to (leaf or CA
	 * form); NULL: no client certificate is asked for. */
	const char		*client_trust_pem;
	const char		*label;		/* for log lines, e.g. "db:1" */
	enum tls_subject_check	 subject_check;
	const struct tls_subject *subjects;	/* nsubjects of them */
	size_t			 nsubjects;
	/* PEM CRLs: a client certificate one of them revokes is refused
	 * (an issuer without a CRL here is not checked). */
	const char		*crl_pem;
	const struct tls_staple	*staple;	/* NULL: none */
};

/* 0 when pem holds at least one CRL and nothing else that fails to
 * parse (E_INVALID_PEM). */
int		 tls_crl_check(const char *pem, struct err *e);

/*
 * A context for a proxy endpoint: as tlsctx_server_new, plus read-ahead
 * (one read per batch of records), a tolerant EOF, no session cache, and
 * client-certificate verification when opts asks for it.  E_INVALID_PEM
 * when the client trust does not parse.
 */
struct tlsctx	*tlsctx_data_new(const struct x509_material *m,
		    const struct tls_policy *p,
		    const struct tlsctx_data_opts *opts, struct err *e);
/* Options of a client context (the syncer's link to a source). */
struct tlsctx_client_opts {
	/*
	 * What the server must present.  A CA (or several certificates, one
	 * of them a CA): its chain is verified and verify_name checked (the
	 * source may rotate freely under that CA).  A single certificate
	 * that is not a CA: pinned, the server must present exactly it.
	 */
	const char	*server_cert_pem;
	const char	*verify_name;	/* DNS name or address; NULL: none */
	const char	*sni;		/* NULL: none sent */
};

/* 1: server_cert is in CA form; 0: a pinned leaf; -1: neither
 * (E_INVALID_CERTIFICATE). */
int		 tlsctx_server_cert_form(const char *pem, struct err *e);
/*
 * New client context presenting id (certificate and key; NULL: none)
 * under policy p, trusting the server as o says.  Immutable like the
 * others: a rotation of id builds a new one, open links keep theirs.
 */
struct tlsctx	*tlsctx_client_new(const struct x509_material *id,
		    const struct tls_policy *p,
		    const struct tlsctx_client_opts *o, struct err *e);
struct tlsctx	*tlsctx_ref(struct tlsctx *c);
void		 tlsctx_unref(struct tlsctx *c);
int		 tlsctx_min_version(const struct tlsctx *c);

/*
 * Complete an in-memory handshake against c at every protocol version
 * the policy allows, as a client offering OpenSSL's defaults would, and
 * check that the leaf of m is what the client receives.  E_HANDSHAKE.
 */
int		 tlsctx_trial_handshake(struct tlsctx *c,
		    const struct x509_material *m, const char *sni,
		    struct err *e);

#endif
