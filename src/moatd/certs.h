/*
 * certs.h — the cluster's service certificates: validate, replace, rotate,
 * describe.  Every change is validated whole, then written to the store
 * in one transaction; the node applies it from there.
 */
#ifndef MOATD_CERTS_H
#define MOATD_CERTS_H

#include <jansson.h>

#include "node.h"
#include "store.h"

struct cert_change {
	const char	*name;
	const char	*cert_pem;
	const char	*key_pem;
};

/* Issue certificate id from the CA and add its document to t. */
int	 certs_issue_into(struct store_txn *t, int id, const char *ca_cert,
	    const char *ca_key, const char *fqdn, const char *const *ips,
	    int version, const char *who, const char *now, struct err *e);
/*
 * Replace the certificates in ch[0..nch) at once.  Nothing changes unless
 * all are valid.  *result: {certificates:[...], nodes:[...]}.  On
 * E_NOT_ALL_NODES the change is stored and *result still says which
 * nodes did not confirm.
 */
int	 certs_update(struct node *n, const struct cert_change *ch, size_t nch,
	    const char *who, json_t **result, struct err *e);
/* Re-issue name (or all when NULL) from the cluster CA. */
int	 certs_rotate(struct node *n, const char *name, const char *who,
	    json_t **result, struct err *e);
/* RS shape {"<name>_cert": PEM, ...}; never keys. */
json_t	*certs_list_json(struct node *n, struct err *e);
json_t	*certs_describe_json(struct node *n, const char *name, struct err *e);

#endif
