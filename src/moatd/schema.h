/*
 * schema.h — the cluster store's layout: every key, the certificate
 * names, and the codecs of the documents stored under those keys.
 *
 * No other file spells a store key.  A document is JSON; its codec turns
 * it into a C struct (decode: strings borrowed from the json_t the caller
 * keeps) or back (encode: a new json_t the caller owns).
 */
#ifndef MOATD_SCHEMA_H
#define MOATD_SCHEMA_H

#include <stdint.h>

#include <time.h>

#include <jansson.h>

#include "err.h"
#include "store.h"
#include "tlsctx.h"

#define MOAT_VERSION	"0.2.0"
/* Layout version, in the store; see schema_check(). */
#define SCHEMA_VERSION	1

/* ---- the services that have a certificate ---- */

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

extern const struct cert_service cert_services[CERT__COUNT];
/* -1 when name is not a certificate name. */
int		 cert_id_of(const char *name);
/* "api, cm, proxy, syncer, metrics_exporter" for messages. */
const char	*cert_names_list(void);

/* ---- keys ---- */

#define SCHEMA_KEY_MAX	64

enum schema_kind {
	SK_OTHER,
	SK_CLUSTER,	/* the cluster document: name, TLS policy */
	SK_CA,		/* the cluster CA (certificate and key) */
	SK_VERSION,	/* the layout version */
	SK_CERT,	/* one per service certificate */
	SK_USER,
	SK_BDB,
	SK_NODE,	/* what each node reports about itself */
	SK_ALIVE,	/* presence: exists while the node lives */
	SK_CLAIM,	/* a store being filled by a move (see bootstrap.c) */
	SK_CERT_HIST,	/* earlier versions of the certificates */
	SK_EVENT,	/* the event log (events.c) */
	SK_STATE,	/* alert and node states (alerts.c) */
	SK_JOBS,	/* the job scheduler's settings (jobs.c) */
	SK_OCSP,	/* the OCSP settings (ocsp.c) */
	SK_OCSP_STAPLE,	/* OCSP responses, per certificate (proxy, api, cm) */
	SK_ACME,	/* ACME settings and account, per certificate */
	SK_ACME_HTTP,	/* http-01 answers, per token (certacme.c) */
	SK_ACME_ALPN,	/* tls-alpn-01 answers, per token */
};

/* How many earlier versions of each certificate are kept. */
#define CERT_HISTORY_KEEP	10

/* The key of version of certificate id in its history, into buf
 * (SCHEMA_KEY_MAX bytes); returns buf. */
char		*schema_cert_hist_key(int id, int version, char *buf);
/* The prefix of certificate id's history, into buf; returns buf. */
char		*schema_cert_hist_prefix(int id, char *buf);
/* The key of a job's state about certificate id, "<state/><what>.<name>"
 * (what: "ocsp.fetch", "acme"), into buf; returns buf. */
char		*schema_cert_state_key(const char *what, int id, char *buf);
/* That state document, or a new empty object (*rev 0) when there is none
 * yet or the store cannot say. */
json_t		*schema_cert_state_get(struct store *s, const char *what, int id,
		    int64_t *rev);

/* The key of a singleton (SK_CLUSTER, SK_CA, SK_VERSION). */
const char	*schema_key(enum schema_kind k);
/* The key of item id of a collection into buf (SCHEMA_KEY_MAX bytes);
 * returns buf.  For SK_CERT, SK_OCSP_STAPLE and SK_ACME, id is an enum
 * cert_id. */
char		*schema_key_of(enum schema_kind k, int id, char *buf);
/* The prefix under which a collection lives ("/moat/users/"). */
const char	*schema_prefix(enum schema_kind k);
/* Everything of the cluster lives under this prefix. */
#define SCHEMA_ROOT	"/moat/"
/* What key is; *id gets the item's id for collections (else 0). */
enum schema_kind schema_classify(const char *key, int *id);
/* 1 for keys that configure what nodes serve (apply acts on them);
 * 0 for what nodes say about themselves (nodes, presence). */
int		 schema_is_config(const char *key);

/* ---- reading ---- */

/* A store document parsed (NULL: E_NOT_FOUND or E_STORE); caller owns. */
json_t		*schema_get(struct store *s, const char *key, int64_t *rev,
		    struct err *e);
/* The documents of a collection, parsed, each with "_rev" (its mod_rev)
 * added; a JSON array the caller owns. */
json_t		*schema_list(struct store *s, enum schema_kind k,
		    struct err *e);

/* ---- the cluster document ---- */

/* The cluster's TLS policy; strings owned by the struct. */
struct cluster_policy {
	int	 min_control;
	int	 min_data;
	char	*control_cipher_list;
	char	*data_cipher_list;
	char	*data_ciphersuites;
};

struct cluster_doc {
	char			*name;		/* the FQDN */
	char			*created_time;
	struct cluster_policy	 policy;
};

int		 cluster_doc_decode(const json_t *j, struct cluster_doc *c,
		    struct err *e);
void		 cluster_doc_clear(struct cluster_doc *c);
void		 cluster_policy_clear(struct cluster_policy *p);
/* Deep copy; 0/-1. */
int		 cluster_policy_copy(struct cluster_policy *dst,
		    const struct cluster_policy *src);
/* The stored form of a new cluster with the default policy. */
json_t		*cluster_doc_new(const char *name, const char *now);
/* The RS cluster object of a stored document. */
json_t		*cluster_doc_public(const struct cluster_doc *c);
/* The TLS policy that applies to a kind of service. */
const struct tls_policy *cluster_tls_policy(const struct cluster_policy *p,
		    enum policy_kind k, struct tls_policy *out);

/* The CAs that the API and UI ports ask client certificates of (borrowed
 * from the cluster document doc), or NULL when certificate sign-in is
 * off (mtls.c owns the fields; apply needs this one). */
const char	*schema_mtls_ask_pem(const json_t *doc);

/* ---- the OCSP staple ---- */

/*
 * {fingerprint_sha256 (of the proxy leaf it is about), der (base64 of
 * the response), cert_status, responder_url, produced_at, this_update,
 * next_update, revocation_time, fetched_at, fetched_by}.  Decode: *der
 * (caller frees) and *until (when it stops being current).
 */
json_t		*schema_staple_encode(const char *fingerprint,
		    const unsigned char *der, size_t len);
int		 schema_staple_decode(const json_t *doc, const char **fingerprint,
		    unsigned char **der, size_t *len, time_t *until);

/* ---- certificates ---- */

struct cert_doc {
	const char	*certificate;	/* PEM chain */
	const char	*key;		/* PEM */
	const char	*updated_at;
	const char	*updated_by;
	int		 version;
	int		 by_cluster_ca;
};

/* c->key is the key as stored: sealed (seal.h) once the cluster has a
 * key; unseal_text() it where it is used, and nowhere else. */
int		 cert_doc_decode(const json_t *j, struct cert_doc *c,
		    struct err *e);
/* Seals c->key (unless it is sealed already). */
json_t		*cert_doc_encode(int id, const struct cert_doc *c);
/* A private key as the store keeps it (sealed); free with seal_free. */
char		*schema_seal_key(const char *key);

/*
 * The cluster CA: {"cert", "key"} sign; during a rollover (ca.c) also
 * "next": {"cert", "key", "at"} (published, signing from "at" on) and,
 * after the switch, "previous" (the old certificate, published while a
 * served certificate may still chain to it).
 */
json_t		*ca_doc_encode(const char *cert, const char *key);
int		 ca_doc_decode(const json_t *j, const char **cert,
		    const char **key, struct err *e);
/* Every CA certificate clients must trust now, as one PEM bundle (what
 * ca.pem holds); NULL when none.  Caller frees. */
char		*ca_doc_bundle(const json_t *j);

/* ---- users ---- */

struct user_doc {
	int		 uid;
	const char	*email;
	const char	*name;
	const char	*role;
	const char	*password_hash;	/* "" for a certificate user */
	/* "regular" (a password) or "certificate" (RS's auth_method). */
	const char	*auth_method;
	const char	*certificate_subject_line;	/* NULL: none */
};

/* 1 for a user who signs in with a client certificate only. */
int		 user_doc_is_cert(const struct user_doc *u);

int		 user_doc_decode(const json_t *j, struct user_doc *u);
json_t		*user_doc_encode(const struct user_doc *u);

/* ---- who may present a client certificate ---- */

/* RS's authorized_subjects: [{CN, O, OU: [...], L, ST, C}], CN required;
 * field names the list in messages.  E_INVALID_SCHEMA. */
int		 schema_subjects_check(json_t *list, const char *field,
		    struct err *e);
/*
 * The rules of doc's type_field ("disabled", "san_cn", "full_subject")
 * and list_field into *check and *subj (n of them): strings stay doc's;
 * *subj and *ous (every subject's OUs, NULL-terminated one after the
 * other) are the caller's to free.  -1 when out of memory.
 */
int		 schema_subject_rules(json_t *doc, const char *type_field,
		    const char *list_field, enum tls_subject_check *check,
		    struct tls_subject **subj, const char ***ous, size_t *n);

/* ---- databases: Replica Of ---- */

/* A source's uri, RS's form: redis://[user][:password]@host:port. */
struct replica_uri {
	char	user[128];
	char	password[513];	/* "" when none; wipe after use */
	char	host[256];
	int	port;
};

/* E_INVALID_SCHEMA naming what is wrong (never the password). */
int		 replica_uri_parse(const char *uri, struct replica_uri *u,
		    struct err *e);
/* The uri with the password replaced by REPLICA_PASSWORD_MASK (freshly
 * allocated), for answers. */
char		*replica_uri_masked(const struct replica_uri *u);
#define REPLICA_PASSWORD_MASK	"********"

/* ---- nodes ---- */

/* A node's own report, as apply writes it; see apply.c. */
struct node_report {
	int		 uid;
	const char	*addr;
	int		 api_port;
	const char	*status;	/* "active", "down" */
	int64_t		 applied_rev;	/* store revision applied */
	int64_t		 policy_rev;	/* mod_rev of the cluster document */
	struct {
		int		 version;
		const char	*fingerprint;
	}		 certs[CERT__COUNT];
	/* Sessions closed when policy_rev raised a minimum version. */
	int		 closed_api, closed_proxy;
	json_t		*sessions;	/* borrowed; may be NULL */
	/* {"<bdb uid>": {status, lag, last_error}} of the databases that
	 * replicate here (borrowed; may be NULL). */
	json_t		*replication;
};

json_t		*node_report_encode(const struct node_report *r,
		    const char *now);

/* ---- the layout version ---- */

/*
 * A newer moatd migrates an older store before it serves (nodes are
 * upgraded one at a time, and every version reads the layout of the one
 * before); an older moatd refuses a newer store rather than misread it.
 */
int		 schema_check(struct store *s, struct err *e);
/* Put the current version into t (a new cluster). */
int		 schema_put_version(struct store_txn *t);

/* "2026-11-28T18:00:00Z" now, freshly allocated. */
char		*iso_now(void);
/* t as "2026-11-29T21:04:17Z" into buf; returns buf. */
#define ISO_TIME_LEN	32
char		*iso_time(time_t t, char buf[ISO_TIME_LEN]);
/* The reverse (the Z optional; with date_ok, "2026-11-29" too): 0, or
 * -1 when s is neither. */
int		 iso_parse(const char *s, int date_ok, time_t *out);
/* The time in doc's ISO-8601 string field; 0 when absent or not one. */
time_t		 iso_field(const json_t *doc, const char *field);

#endif
