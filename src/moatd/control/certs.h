/*
 * certs.h — the writer of the cluster's service certificates: validate,
 * replace, rotate, describe.  A change is validated whole, then written
 * in one transaction; the request then waits (parked, see rollout.h) for
 * every live node to serve it.
 */
#ifndef MOATD_CERTS_H
#define MOATD_CERTS_H

#include <jansson.h>

#include "api.h"
#include "store.h"

struct cert_change {
	const char	*name;
	const char	*cert_pem;
	const char	*key_pem;
	int		 by_cluster_ca;	/* a rollback to one the CA issued */
	int		 rollback_of;	/* a rollback: the version restored */
	int		 names_only;	/* ACME without dns-01: the names it
					   ordered, no *.<fqdn> required */
};

/* Issue certificate id from the CA and add its document to t; fp (100
 * bytes, may be NULL) gets the new certificate's fingerprint. */
int	 certs_issue_into(struct store_txn *t, int id, const char *ca_cert,
	    const char *ca_key, const char *fqdn, const char *const *ips,
	    int version, const char *who, const char *now, int days, char *fp,
	    struct err *e);
/*
 * Replace the certificates in ch[0..nch) at once: nothing changes unless
 * all are valid; a certificate already in place is left as it is
 * ("unchanged").  single: answer in update_cert's shape.  Returns -1 or
 * API_ASYNC (answered when every live node serves the change).
 */
int	 certs_update(struct api_req *r, const struct cert_change *ch,
	    size_t nch, int single, struct err *e);
/* The same without a request: commit and return at once (the nodes
 * converge on their own); *out gets [{name, version, fingerprint_sha256,
 * unchanged}].  For moatd's own callers (SIGHUP's import). */
int	 certs_update_now(struct node *n, const struct cert_change *ch,
	    size_t nch, const char *who, json_t **out, struct err *e);
/* Re-issue name (or every certificate the cluster CA issued when NULL)
 * from the cluster CA; force: operator certificates too; days: the new
 * certificates' lifetime (0: the default, 365). */
int	 certs_rotate(struct api_req *r, const char *name, int force, int days,
	    struct err *e);
/*
 * The renewal job: re-issue every certificate the cluster CA issued that
 * expires within days_before days, in one transaction that any other
 * node's renewal of the same certificates makes fail (so one node does
 * it).  Nobody waits for the rollout.  Returns how many were renewed (0:
 * none due, or another node did it), -1 on error.
 */
int	 certs_renew_due(struct node *n, int days_before, struct err *e);
/* Re-issue, into t, every certificate the cluster CA issued (and any
 * other that old_ca signed), from the CA given (a CA rollover's switch);
 * list gets [{name, version, fingerprint_sha256}]. */
int	 certs_reissue_into(struct node *n, struct store_txn *t,
	    const char *ca_cert, const char *ca_key, const char *old_ca,
	    const char *who, json_t *list, struct err *e);
/*
 * The versions of certificate name this cluster keeps, newest first: the
 * one served, then up to CERT_HISTORY_KEEP earlier ones, each described
 * (never its key).
 */
json_t	*certs_history_json(struct node *n, const char *name, struct err *e);
/*
 * Serve an earlier version of name again (version 0: the newest one
 * kept): validated and rolled out like any update, as a new version.
 */
int	 certs_rollback(struct api_req *r, const char *name, int version,
	    struct err *e);
/*
 * The seed's legacy procedure: the pairs <name>_cert.pem/<name>_key.pem
 * found in dir (plus chain_certs.pem for their issuers) replace those
 * certificates in one transaction, validated like any update.
 * certs_import answers r (API_ASYNC, like an update); certs_import_dir
 * is SIGHUP's: it logs what it did (who names the trigger) and does not
 * wait for the rollout.
 */
int	 certs_import(struct api_req *r, const char *dir, struct err *e);
int	 certs_import_dir(struct node *n, const char *dir, const char *who);
/*
 * A store written before this node had a cluster key holds keys in
 * clear: seal them (certificates, their history, the CA).  Returns how
 * many documents were sealed, 0 when none was left, -1 when the store
 * or a race stopped it (try again later).
 */
int	 certs_seal_store(struct node *n);
/* RS shape {"<name>_cert": PEM, ...}; never keys. */
json_t	*certs_list_json(struct node *n, struct err *e);
json_t	*certs_describe_json(struct node *n, const char *name, struct err *e);

#endif
