/* tlsctx_impl.h — for the modules that own sockets with TLS on them
 * (the HTTPS listener, the proxy): the OpenSSL object behind a tlsctx. */
#ifndef MOAT_TLSCTX_IMPL_H
#define MOAT_TLSCTX_IMPL_H

#include <openssl/ssl.h>

#include "tlsctx.h"

/* Borrowed: valid while the caller holds a reference on c. */
SSL_CTX	*tlsctx_ssl_ctx(struct tlsctx *c);

#endif
