/*
 * seal.c — see seal.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fsutil.h"
#include "seal.h"

static unsigned char	*cluster_key;	/* sodium_malloc'd, locked */

static int
seal_key_set(const unsigned char *k, struct err *e)
{
	if (cluster_key == NULL &&
	    (cluster_key = sodium_malloc(crypto_secretbox_KEYBYTES)) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	memcpy(cluster_key, k, crypto_secretbox_KEYBYTES);
	return 0;
}

static int
seal_key_write(const char *path, const unsigned char *k, struct err *e)
{
	char	b64[sodium_base64_ENCODED_LEN(crypto_secretbox_KEYBYTES,
		    sodium_base64_VARIANT_ORIGINAL) + 1];
	int	rc;

	sodium_bin2base64(b64, sizeof(b64) - 1, k, crypto_secretbox_KEYBYTES,
	    sodium_base64_VARIANT_ORIGINAL);
	strcat(b64, "\n");
	rc = fs_write_atomic(path, b64, strlen(b64), 0600, e);
	sodium_memzero(b64, sizeof(b64));
	return rc;
}

static int
seal_key_decode(const char *b64, unsigned char *k, struct err *e)
{
	size_t len = 0;

	if (sodium_base642bin(k, crypto_secretbox_KEYBYTES, b64,
	    strcspn(b64, "\r\n"), NULL, &len, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    len != crypto_secretbox_KEYBYTES)
		return err_set(e, E_INVALID_CONFIG, "the cluster key is not %d "
		    "bytes of base64", crypto_secretbox_KEYBYTES);
	return 0;
}

int
seal_key_load(const char *path, struct err *e)
{
	unsigned char	 k[crypto_secretbox_KEYBYTES];
	char		*text = NULL;
	int		 rc;

	if ((rc = fs_read(path, 1024, &text, e)) != 0)
		return rc;
	rc = seal_key_decode(text, k, e) == 0 ? seal_key_set(k, e) : -1;
	if (rc == -1 && e != NULL && e->code == E_INVALID_CONFIG) {
		char *m = e->msg;
		e->msg = NULL;
		err_set(e, E_INVALID_CONFIG, "%s: %s", path, m ? m : "");
		free(m);
	}
	sodium_memzero(k, sizeof(k));
	seal_free(text);
	return rc;
}

int
seal_key_create(const char *path, struct err *e)
{
	unsigned char	k[crypto_secretbox_KEYBYTES];
	int		rc;

	crypto_secretbox_keygen(k);
	rc = seal_key_write(path, k, e) == 0 ? seal_key_set(k, e) : -1;
	sodium_memzero(k, sizeof(k));
	return rc;
}

int
seal_key_install(const char *b64, const char *path, struct err *e)
{
	unsigned char	k[crypto_secretbox_KEYBYTES];
	int		rc;

	rc = seal_key_decode(b64, k, e) == 0 && seal_key_write(path, k,
	    e) == 0 ? seal_key_set(k, e) : -1;
	sodium_memzero(k, sizeof(k));
	return rc;
}

char *
seal_key_b64(void)
{
	size_t	 len = sodium_base64_ENCODED_LEN(crypto_secretbox_KEYBYTES,
		    sodium_base64_VARIANT_ORIGINAL);
	char	*out;

	if (cluster_key == NULL || (out = malloc(len)) == NULL)
		return NULL;
	sodium_bin2base64(out, len, cluster_key, crypto_secretbox_KEYBYTES,
	    sodium_base64_VARIANT_ORIGINAL);
	return out;
}

int
seal_have_key(void)
{
	return cluster_key != NULL;
}

char *
seal_text(const char *plain)
{
	size_t		 plen = strlen(plain);
	size_t		 blen = crypto_secretbox_NONCEBYTES +
			    crypto_secretbox_MACBYTES + plen;
	size_t		 olen = strlen(SEAL_PREFIX) +
			    sodium_base64_ENCODED_LEN(blen,
			    sodium_base64_VARIANT_ORIGINAL);
	unsigned char	*box;
	char		*out;

	if (cluster_key == NULL)
		return strdup(plain);
	if ((box = malloc(blen)) == NULL || (out = malloc(olen)) == NULL) {
		free(box);
		return NULL;
	}
	randombytes_buf(box, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES,
	    (const unsigned char *)plain, plen, box, cluster_key);
	strcpy(out, SEAL_PREFIX);
	sodium_bin2base64(out + strlen(SEAL_PREFIX), olen - strlen(SEAL_PREFIX),
	    box, blen, sodium_base64_VARIANT_ORIGINAL);
	free(box);
	return out;
}

char *
unseal_text(const char *stored, struct err *e)
{
	const char	*b64;
	unsigned char	*box;
	char		*out;
	size_t		 blen = 0, cap;

	if (strncmp(stored, SEAL_PREFIX, strlen(SEAL_PREFIX)) != 0)
		return strdup(stored);
	if (cluster_key == NULL) {
		err_set(e, E_INVALID_CONFIG, "a private key in the store is "
		    "sealed, and this node has no cluster key (DIR/cluster.key)");
		return NULL;
	}
	b64 = stored + strlen(SEAL_PREFIX);
	cap = strlen(b64);
	if ((box = malloc(cap + 1)) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	if (sodium_base642bin(box, cap, b64, cap, NULL, &blen, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    blen < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES ||
	    (out = malloc(blen - crypto_secretbox_NONCEBYTES -
	    crypto_secretbox_MACBYTES + 1)) == NULL) {
		free(box);
		err_set(e, E_INVALID_CONFIG, "a sealed private key in the "
		    "store is damaged");
		return NULL;
	}
	if (crypto_secretbox_open_easy((unsigned char *)out,
	    box + crypto_secretbox_NONCEBYTES,
	    blen - crypto_secretbox_NONCEBYTES, box, cluster_key) != 0) {
		free(box);
		free(out);
		err_set(e, E_INVALID_CONFIG, "a sealed private key in the "
		    "store does not open with this node's cluster key "
		    "(DIR/cluster.key is another cluster's?)");
		return NULL;
	}
	out[blen - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES] =
	    '\0';
	free(box);
	return out;
}

void
seal_free(char *s)
{
	if (s == NULL)
		return;
	sodium_memzero(s, strlen(s));
	free(s);
}
