/*
 * node.h — this node's view of the cluster: what the store says, what the
 * node serves, and the operations that change both.
 *
 * The store is the source of truth.  Every change is written to the store
 * first; node_apply() then makes this node serve it (TLS contexts swapped,
 * files under certs/ rewritten) and records what it serves in its node
 * document, which is what the API waits for.
 */
#ifndef MOATD_NODE_H
#define MOATD_NODE_H

#include <jansson.h>

#include "err.h"
#include "store.h"
#include "tlsctx.h"

#define MOAT_VERSION	"0.1.0"

/* The services that have a certificate; the table in certs.c. */
enum cert_id {
	CERT_API,
	CERT_CM,
	CERT_PROXY,
	CERT_SYNCER,
	CERT_METRICS,
	CERT__COUNT
};

enum policy_kind { POLICY_CONTROL, POLICY_DATA };

struct cert_service {
	const char		*name;
	enum policy_kind	 policy;
	int			 need_wildcard;
	int			 need_client_auth;
};

/* The cluster's TLS policy as stored; strings owned by the struct. */
struct cluster_policy {
	int	 min_control;
	int	 min_data;
	char	*control_cipher_list;
	char	*data_cipher_list;
	char	*data_ciphersuites;
};

/* What this node serves for one certificate. */
struct served_cert {
	struct x509_material	*material;	/* owned */
	struct tlsctx		*ctx;		/* owned reference */
	int			 version;
	char			 fingerprint[100];
};

struct node_config {
	const char	*data_dir;
	const char	*addr;
	int		 api_port;
	int		 cm_port;
	int		 metrics_port;
	const char	*store_url;
	const char	*bootstrap_token;	/* NULL: none */
	int		 workers;		/* data threads; 0: one per core */
};

struct https;
struct bdbs_state;

struct node {
	struct node_config	 cfg;
	struct event_base	*base;
	struct store		*store;
	struct https		*api;		/* the API listener */
	int			 bootstrapped;
	int			 uid;
	char			*fqdn;
	char			*created_at;
	struct cluster_policy	 policy;
	struct served_cert	 served[CERT__COUNT];
	struct bdbs_state	*bdbs;		/* databases run here (bdbs.c) */
	/* Set by node_apply for the API call that caused it. */
	int			 closed_sessions;	/* api + proxy */
	void			*current_conn;	/* connection of the request
						   being handled, or NULL */
	int			 current_conn_closed;
	struct event		*store_ev;	/* changes from other nodes */
	int64_t			 policy_rev;	/* cluster doc revision applied */
	int			 reported;	/* the store has what we serve */
	int			 rollout_timeout_ms; /* of the request being
						   handled (?timeout=) */
	char			*store_url_buf;	/* owned store URL from node.json */
};

extern const struct cert_service cert_services[CERT__COUNT];
/* -1 when name is not a certificate name. */
int		 cert_id_of(const char *name);

int		 node_init(struct node *n, struct event_base *base,
		    const struct node_config *cfg, struct err *e);
/*
 * Take node uid out of the cluster.  Only a node that is down can be
 * removed (a live one would keep serving as a member): stop it first.
 */
int		 node_remove(struct node *n, int uid, const char *who,
		    struct err *e);
/* Watch the store, apply it, announce this node (after init or a join). */
int		 node_attach_store(struct node *n, struct err *e);
void		 node_shutdown(struct node *n);
/* Bring what this node serves in line with the store. */
int		 node_apply(struct node *n, struct err *e);
int		 node_create_cluster(struct node *n, const char *fqdn,
		    const char *user, const char *password, struct err *e);
json_t		*node_cluster_json(struct node *n);
/* The node documents, or one (NULL with E_NODE_NOT_FOUND). */
json_t		*node_list_json(struct node *n, int uid, struct err *e);
/* Nodes that do not serve version of cert id yet: JSON array of
 * {uid, status}; sets *all_ok. */
/* versions: per certificate (NULL: none); policy_rev: the cluster
 * document's revision every node must have applied (0: none). */
json_t		*node_rollout_status(struct node *n, const int *versions,
		    int64_t policy_rev, int *all_ok, int *pending);
json_t		*node_rollout_wait(struct node *n, const int *versions,
		    int64_t policy_rev, int timeout_ms, int *all_ok);
#define ROLLOUT_TIMEOUT_MS	10000

const struct tls_policy *node_tls_policy(const struct cluster_policy *p,
		    enum policy_kind k, struct tls_policy *out);
void		 cluster_policy_clear(struct cluster_policy *p);
/* A store document parsed (NULL: E_NOT_FOUND or E_STORE); caller owns. */
json_t		*store_get_json(struct store *s, const char *key, int64_t *rev,
		    struct err *e);
/* "2026-11-28T18:00:00Z" now, freshly allocated. */
char		*iso_now(void);
/* The policy fields of a cluster document; strings copied into p (free
 * with cluster_policy_clear). */
int		 cluster_policy_from_json(const json_t *doc,
		    struct cluster_policy *p, struct err *e);

#endif
