/*
 * fuzz_x509.c — certificate and key validation, as every certificate
 * change runs it: the input is "<certificate PEM>\0<key PEM>" (no NUL:
 * a certificate alone).  Parse, validate against a cluster name, describe,
 * re-encode, and complete a chain from the key part as a pool.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "x509.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct x509_material	*m = NULL;
	struct x509_check	 chk = { "cluster.example.com", 1, 0, 0 };
	struct err		 e = { 0 };
	char			*buf, *cert, *key, *s;
	json_t			*d;

	if ((buf = malloc(size + 2)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = buf[size + 1] = '\0';
	cert = buf;
	key = memchr(buf, '\0', size) != NULL && (size_t)(strlen(buf)) < size ?
	    buf + strlen(buf) + 1 : NULL;
	if (x509_material_parse(cert, key, &m, &e) == 0) {
		x509_material_validate(m, &chk, &e);
		err_clear(&e);
		if ((d = x509_material_describe(m)) != NULL)
			json_decref(d);
		free(x509_material_chain_pem(m));
		x509_pem_free(x509_material_key_pem(m));
		x509_material_seconds_left(m);
		x509_material_free(m);
	}
	err_clear(&e);
	if ((s = x509_chain_complete(cert, key, &e)) != NULL)
		free(s);
	err_clear(&e);
	free(buf);
	return 0;
}
