/*
 * test_policy.c — TLS policy inputs (minimum version, cipher lists) and
 * what tlsctx_server_new makes of them.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "err.h"
#include "t.h"
#include "tlsctx.h"
#include "tlsctx_impl.h"
#include "x509.h"

static void
test_version_parse(void)
{
	static const struct {
		const char	*in;
		int		 want_rc;
		int		 want;	/* when want_rc == 0 */
	} rows[] = {
		{ "1.2", 0, TLS_V12 },
		{ "1.3", 0, TLS_V13 },
		{ "1.1", -1, 0 },
		{ "1.0", -1, 0 },
		{ "1", -1, 0 },
		{ "1.4", -1, 0 },
		{ "TLSv1.3", -1, 0 },
		{ "tls1.2", -1, 0 },
		{ "", -1, 0 },
		{ NULL, -1, 0 },
		{ "1.30", -1, 0 },
		{ "1.2 ", -1, 0 },
		{ " 1.3", -1, 0 },
		{ "1.2\n", -1, 0 },
	};
	size_t	 i;

	for (i = 0; i < NELEMS(rows); i++) {
		struct err	 e = { E_OK, NULL };
		int		 v = -12345;

		T_CASE(rows[i].in != NULL ? rows[i].in : "(NULL)");
		CHECK_INT(tls_version_parse(rows[i].in, &v, &e),
		    rows[i].want_rc);
		if (rows[i].want_rc == 0) {
			CHECK_INT(v, rows[i].want);
			CHECK_INT(e.code, E_OK);
			CHECK_STR(tls_version_str(v), rows[i].in);
		} else {
			CHECK_INT(e.code, E_INVALID_TLS_VERSION);
			/* The description tells the user what is allowed. */
			CHECK_HAS(err_msg(&e), "\"1.2\"");
			CHECK_HAS(err_msg(&e), "\"1.3\"");
		}
		err_clear(&e);
	}
}

struct list_row {
	const char	*name;
	const char	*in;
	int		 want_rc;
	const char	*want_msg;	/* description contains it */
	const char	*xfail;		/* known src/lib bug */
};

static void
run_list_rows(const char *what, int (*check)(const char *, struct err *),
    const struct list_row *rows, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		struct err	 e = { E_OK, NULL };
		char		 name[160];
		int		 rc;

		snprintf(name, sizeof(name), "%s: %s", what, rows[i].name);
		T_CASE(name);
		rc = check(rows[i].in, &e);
		if (rows[i].xfail != NULL) {
			T_XFAIL(rc == rows[i].want_rc, rows[i].xfail);
			err_clear(&e);
			continue;
		}
		CHECKF(rc == rows[i].want_rc, "returned %d, want %d (%s)", rc,
		    rows[i].want_rc, err_msg(&e));
		if (rows[i].want_rc == -1) {
			CHECK_INT(e.code, E_INVALID_CIPHER);
			if (rows[i].want_msg != NULL)
				CHECK_HAS(err_msg(&e), rows[i].want_msg);
		} else {
			CHECK_INT(e.code, E_OK);
		}
		err_clear(&e);
	}
}

static void
test_cipher_list(void)
{
	static char	 huge[5000];
	const struct list_row rows[] = {
		{ "the default", MOAT_DEFAULT_CIPHER_LIST, 0, NULL, NULL },
		{ "one cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", 0, NULL,
		    NULL },
		{ "two ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256:"
		    "ECDHE-RSA-AES256-GCM-SHA384", 0, NULL, NULL },
		{ "class minus class", "HIGH:!aNULL", 0, NULL, NULL },
		{ "combination with +", "ECDHE+AESGCM", 0, NULL, NULL },
		{ "@STRENGTH", "HIGH:!aNULL:@STRENGTH", 0, NULL, NULL },
		{ "comma and space separated", "ECDHE-ECDSA-AES128-GCM-SHA256, "
		    "ECDHE-RSA-AES128-GCM-SHA256", 0, NULL, NULL },
		{ "empty", "", -1, NULL, NULL },
		{ "NULL", NULL, -1, NULL, NULL },
		{ "unknown name", "FOO", -1, "FOO", NULL },
		/* OpenSSL itself would accept this and drop FOO silently. */
		{ "good name then a typo", "ECDHE-ECDSA-AES128-GCM-SHA256:FOO",
		    -1, "FOO", NULL },
		{ "typo then good name", "ECDHE-ECDSA-AES128-GCM-SHA25:"
		    "ECDHE-RSA-AES128-GCM-SHA256", -1,
		    "ECDHE-ECDSA-AES128-GCM-SHA25", NULL },
		/* OpenSSL also separates on ';'. */
		{ "good class;typo (';' separates too)", "HIGH;FOO", -1, "FOO",
		    NULL },
		/*
		 * By design, not checked: OpenSSL 3 cannot tell an unknown
		 * name from a class that selects nothing (RS's own default
		 * list excludes !EXPORT, !RC4, ... which select nothing), so
		 * exclusions are accepted as given.
		 */
		{ "typo in an exclusion", "DEFAULT:!3DSE", 0, NULL, NULL },
		{ "selects nothing: !ALL", "!ALL", -1, NULL, NULL },
		{ "selects nothing: HIGH:!HIGH", "HIGH:!HIGH", -1, NULL, NULL },
		{ "a TLS 1.3 suite in the TLS 1.2 list",
		    "TLS_AES_128_GCM_SHA256", -1, NULL, NULL },
		{ "longer than 4096 bytes", huge, -1, NULL, NULL },
	};
	size_t	 i;

	/* "HIGH:HIGH:...": valid elements, only the length is wrong. */
	for (i = 0; i + 5 < sizeof(huge); i += 5)
		memcpy(huge + i, "HIGH:", 5);
	huge[i - 1] = '\0';
	run_list_rows("cipher_list", tls_cipher_list_check, rows,
	    NELEMS(rows));
}

static void
test_ciphersuites(void)
{
	const struct list_row rows[] = {
		{ "the default", MOAT_DEFAULT_CIPHERSUITES, 0, NULL, NULL },
		{ "one suite", "TLS_AES_128_GCM_SHA256", 0, NULL, NULL },
		{ "two suites", "TLS_CHACHA20_POLY1305_SHA256:"
		    "TLS_AES_256_GCM_SHA384", 0, NULL, NULL },
		{ "empty", "", -1, NULL, NULL },
		{ "NULL", NULL, -1, NULL, NULL },
		{ "unknown suite", "TLS_FOO", -1, "TLS_FOO", NULL },
		{ "a TLS 1.2 cipher", "AES128-SHA", -1, "AES128-SHA", NULL },
		/* OpenSSL alone would drop the typo: checked one by one. */
		{ "good suite then a typo", "TLS_AES_128_GCM_SHA256:TLS_FOO",
		    -1, "TLS_FOO", NULL },
		{ "good suite then a TLS 1.2 cipher",
		    "TLS_AES_128_GCM_SHA256:AES128-SHA", -1, "AES128-SHA",
		    NULL },
	};

	run_list_rows("ciphersuites", tls_ciphersuites_check, rows,
	    NELEMS(rows));
}

/* ---- contexts ---- */

static struct x509_material *
material_new(void)
{
	static const char *const dns[] = { "moat.test", "*.moat.test", NULL };
	struct x509_material	*m = NULL;
	struct err		 e = { E_OK, NULL };
	char			*ca_cert, *ca_key, *cert = NULL, *key = NULL;

	if (x509_ca_create("policy test CA", 30, &ca_cert, &ca_key, &e) == 0 &&
	    x509_cert_issue(ca_cert, ca_key, "moat.test", dns, NULL, 30,
	    &cert, &key, &e) == 0)
		(void)x509_material_parse(cert, key, &m, &e);
	if (m == NULL)
		fprintf(stderr, "cannot make test material: %s\n",
		    err_msg(&e));
	err_clear(&e);
	free(ca_cert);
	x509_pem_free(ca_key);
	free(cert);
	x509_pem_free(key);
	return m;
}

/* An in-memory handshake of a client limited to [min, max] against
 * srv_ctx.  1 when both ends completed. */
static int
handshake(SSL_CTX *srv_ctx, int min, int max)
{
	SSL_CTX	*cctx = SSL_CTX_new(TLS_client_method());
	SSL	*cli = NULL, *srv = NULL;
	BIO	*cb = NULL, *sb = NULL;
	int	 i, cdone = 0, sdone = 0, r;

	if (cctx == NULL)
		return 0;
	SSL_CTX_set_min_proto_version(cctx, min);
	SSL_CTX_set_max_proto_version(cctx, max);
	if ((cli = SSL_new(cctx)) == NULL || (srv = SSL_new(srv_ctx)) == NULL ||
	    !BIO_new_bio_pair(&cb, 0, &sb, 0))
		goto out;
	SSL_set_bio(cli, cb, cb);
	SSL_set_bio(srv, sb, sb);
	SSL_set_connect_state(cli);
	SSL_set_accept_state(srv);
	for (i = 0; i < 32 && !(cdone && sdone); i++) {
		if (!cdone) {
			r = SSL_do_handshake(cli);
			if (r == 1)
				cdone = 1;
			else if (SSL_get_error(cli, r) != SSL_ERROR_WANT_READ)
				break;
		}
		if (!sdone) {
			r = SSL_do_handshake(srv);
			if (r == 1)
				sdone = 1;
			else if (SSL_get_error(srv, r) != SSL_ERROR_WANT_READ)
				break;
		}
	}
out:
	SSL_free(cli);
	SSL_free(srv);
	SSL_CTX_free(cctx);
	ERR_clear_error();
	return cdone && sdone;
}

static void
test_server_ctx(const struct x509_material *m)
{
	static const struct {
		const char	*name;
		int		 min;
		int		 want_openssl_min;
		/* can a client limited to exactly this version connect? */
		int		 v12_ok, v13_ok;
	} rows[] = {
		{ "minimum 1.2", TLS_V12, TLS1_2_VERSION, 1, 1 },
		{ "minimum 1.3", TLS_V13, TLS1_3_VERSION, 0, 1 },
	};
	size_t	 i;

	for (i = 0; i < NELEMS(rows); i++) {
		struct tls_policy p = { rows[i].min, MOAT_DEFAULT_CIPHER_LIST,
		    MOAT_DEFAULT_CIPHERSUITES };
		struct err	 e = { E_OK, NULL };
		struct tlsctx	*c, *c2;

		T_CASE(rows[i].name);
		c = tlsctx_server_new(m, &p, &e);
		CHECKF(c != NULL, "tlsctx_server_new: %s", err_msg(&e));
		if (c == NULL)
			continue;
		CHECK_INT(tlsctx_min_version(c), rows[i].min);
		CHECK_INT(SSL_CTX_get_min_proto_version(tlsctx_ssl_ctx(c)),
		    rows[i].want_openssl_min);
		CHECK_INT(handshake(tlsctx_ssl_ctx(c), TLS1_2_VERSION,
		    TLS1_2_VERSION), rows[i].v12_ok);
		CHECK_INT(handshake(tlsctx_ssl_ctx(c), TLS1_3_VERSION,
		    TLS1_3_VERSION), rows[i].v13_ok);
		CHECKF(tlsctx_trial_handshake(c, m, "moat.test", &e) == 0,
		    "trial: %s", err_msg(&e));

		/* A second reference keeps the context alive after the
		 * first is dropped (ASan sees a use after free if not). */
		c2 = tlsctx_ref(c);
		CHECK(c2 == c);
		tlsctx_unref(c);
		CHECK_INT(tlsctx_min_version(c2), rows[i].min);
		CHECK_INT(handshake(tlsctx_ssl_ctx(c2), TLS1_3_VERSION,
		    TLS1_3_VERSION), 1);
		tlsctx_unref(c2);
		err_clear(&e);
	}
}

static void
test_server_ctx_bad_policy(const struct x509_material *m)
{
	static const struct {
		const char		*name;
		struct tls_policy	 p;
	} rows[] = {
		{ "unknown cipher list", { TLS_V12, "FOO", NULL } },
		{ "unknown ciphersuites", { TLS_V12, NULL, "TLS_FOO" } },
	};
	size_t	 i;

	for (i = 0; i < NELEMS(rows); i++) {
		struct err	 e = { E_OK, NULL };
		struct tlsctx	*c;

		T_CASE(rows[i].name);
		c = tlsctx_server_new(m, &rows[i].p, &e);
		CHECK(c == NULL);
		CHECK_INT(e.code, E_INVALID_CIPHER);
		tlsctx_unref(c);
		err_clear(&e);
	}
	tlsctx_unref(NULL);	/* a no-op, as free(NULL) is */
}

int
main(void)
{
	struct x509_material *m;

	test_version_parse();
	test_cipher_list();
	test_ciphersuites();
	T_CASE("test material");
	m = material_new();
	CHECK(m != NULL);
	if (m != NULL) {
		test_server_ctx(m);
		test_server_ctx_bad_policy(m);
	}
	x509_material_free(m);
	return T_DONE();
}
