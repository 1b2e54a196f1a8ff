/*
 * seal.h — private keys sealed at rest: what goes into the cluster store
 * is encrypted (libsodium's secretbox, XSalsa20-Poly1305) with a cluster
 * key that each node keeps in DIR/cluster.key (mode 0600), so that a
 * dump of etcd or of cluster.db holds no usable key.
 *
 * One cluster key per process, set once at start (or when the node
 * creates or joins a cluster); held in locked memory.  Text without the
 * sealed prefix passes through unsealing unchanged: stores written before
 * sealing keep working, and are sealed as their keys are rewritten.
 */
#ifndef MOAT_SEAL_H
#define MOAT_SEAL_H

#include "err.h"

#define SEAL_PREFIX	"moat-sealed-v1:"

/* DIR/cluster.key: 0 loaded, 1 absent, -1 unreadable or malformed. */
int	 seal_key_load(const char *path, struct err *e);
/* A new random cluster key, written to path (0600) and loaded. */
int	 seal_key_create(const char *path, struct err *e);
/* A cluster key given as base64 (a join): written to path and loaded. */
int	 seal_key_install(const char *b64, const char *path, struct err *e);
/* The loaded key as base64 (for a node that joins), or NULL; the caller
 * wipes and frees it (seal_free). */
char	*seal_key_b64(void);
int	 seal_have_key(void);

/* plain sealed with the cluster key (a copy of plain when there is no
 * key yet); NULL when out of memory.  Free with seal_free. */
char	*seal_text(const char *plain);
/* The plain text of stored (sealed or not), a fresh copy; NULL with e
 * when it is sealed and cannot be opened.  Free with seal_free. */
char	*unseal_text(const char *stored, struct err *e);
/* Wipe and free. */
void	 seal_free(char *s);

#endif
