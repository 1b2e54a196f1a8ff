/* tlsctx_impl.h — for the modules that own sockets with TLS on them
 * (the HTTPS listener, the proxy): the OpenSSL object behind a tlsctx. */
#ifndef MOAT_TLSCTX_IMPL_H
#define MOAT_TLSCTX_IMPL_H

#include <openssl/ssl.h>

#include "tlsctx.h"

/* Borrowed: valid while the caller holds a reference on c. */
SSL_CTX	*tlsctx_ssl_ctx(struct tlsctx *c);

/* A client connection of c (connect state, SNI and name check set), or
 * NULL; the caller owns it. */
SSL	*tlsctx_client_ssl(struct tlsctx *c);
/*
 * After a completed client handshake, before any byte is sent: 0 when
 * the server is who c trusts (a pinned leaf is compared here), else -1
 * with why naming the fingerprint expected and the one seen.
 */
int	 tlsctx_client_check(struct tlsctx *c, SSL *ssl, char *why,
	    size_t len);
/* Why a client handshake (or the first read after it: TLS 1.3 sends a
 * refusal of our certificate then) failed, in plain words; ec is the
 * OpenSSL error, 0 when none.  0 (why untouched) when no handshake byte
 * ever left: the TCP connection did not open. */
int	 tlsctx_client_why(struct tlsctx *c, SSL *ssl, unsigned long ec,
	    char *why, size_t len);

/* What a failed server handshake's OpenSSL error ec (0: none, the peer
 * went away) says about why. */
enum tls_hs_result tlsctx_handshake_why(unsigned long ec);

/* 1 when leaf passes the subject rules (RS's authorized_subjects). */
int	 tls_subject_allowed(enum tls_subject_check check,
	    const struct tls_subject *subjects, size_t nsubjects, X509 *leaf);

/* In a verify callback: CRLs are checked where the operator gave one, so
 * an issuer without a CRL is no reason to refuse.  1 (the error cleared:
 * return 1) when that is the only failure, else 0. */
int	 tls_verify_crl_missing(int ok, X509_STORE_CTX *xs);

/*
 * The client certificate of ssl (a server connection) against r, now:
 * 1 when it chains to r's CAs, no CRL of r revokes it and the subject
 * rules let it in (subject gets its RFC 2253 line); 0 when the client
 * presented none; -1 when it is refused (E_UNAUTHORIZED saying why).
 */
int	 tls_peer_verify(SSL *ssl, const struct tls_peer_rules *r,
	    char *subject, size_t len, struct err *e);

#endif
