/*
 * schema.c — store keys and document codecs (see schema.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "log.h"
#include "seal.h"
#include "schema.h"

const struct cert_service cert_services[CERT__COUNT] = {
	[CERT_API] =	 { "api",		POLICY_CONTROL,	0, 0 },
	[CERT_CM] =	 { "cm",		POLICY_CONTROL,	0, 0 },
	[CERT_PROXY] =	 { "proxy",		POLICY_DATA,	1, 0 },
	[CERT_SYNCER] =	 { "syncer",		POLICY_DATA,	0, 1 },
	[CERT_METRICS] = { "metrics_exporter",	POLICY_CONTROL,	0, 0 },
};

int
cert_id_of(const char *name)
{
	int i;

	for (i = 0; i < CERT__COUNT && name != NULL; i++)
		if (strcmp(cert_services[i].name, name) == 0)
			return i;
	return -1;
}

const char *
cert_names_list(void)
{
	return "api, cm, proxy, syncer, metrics_exporter";
}

/* ---- keys ---- */

static const struct {
	enum schema_kind	 kind;
	const char		*key;	/* singleton key or collection prefix */
	int			 collection;
	int			 config;	/* apply acts on it */
} schema_keys[] = {
	{ SK_CLUSTER,	SCHEMA_ROOT "cluster",	0, 1 },
	{ SK_CA,	SCHEMA_ROOT "ca",	0, 1 },
	{ SK_VERSION,	SCHEMA_ROOT "schema",	0, 0 },
	{ SK_CERT,	SCHEMA_ROOT "certs/",	1, 1 },
	{ SK_USER,	SCHEMA_ROOT "users/",	1, 1 },
	{ SK_BDB,	SCHEMA_ROOT "bdbs/",	1, 1 },
	{ SK_NODE,	SCHEMA_ROOT "nodes/",	1, 0 },
	{ SK_ALIVE,	SCHEMA_ROOT "alive/",	1, 0 },
	{ SK_CLAIM,	SCHEMA_ROOT "claim",	0, 0 },
	/* Only a rollback reads it, through a certificate write. */
	{ SK_CERT_HIST,	SCHEMA_ROOT "certs_history/", 1, 0 },
	{ SK_EVENT,	SCHEMA_ROOT "events/",	1, 0 },
	{ SK_STATE,	SCHEMA_ROOT "state/",	1, 0 },
	{ SK_JOBS,	SCHEMA_ROOT "job_scheduler", 0, 0 },
	{ SK_OCSP,	SCHEMA_ROOT "ocsp",	0, 0 },
	/* What the endpoints staple, per certificate: apply acts on it. */
	{ SK_OCSP_STAPLE, SCHEMA_ROOT "ocsp_staples/", 1, 1 },
	/* The http-01 ports and the challenges' answers: apply loads
	 * them (a request never waits on the store). */
	{ SK_ACME,	SCHEMA_ROOT "acme/",	1, 1 },
	{ SK_ACME_HTTP,	SCHEMA_ROOT "acme_http/", 1, 1 },
	{ SK_ACME_ALPN,	SCHEMA_ROOT "acme_alpn/", 1, 1 },
};
#define NKEYS (sizeof(schema_keys) / sizeof(schema_keys[0]))

const char *
schema_key(enum schema_kind k)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (schema_keys[i].kind == k && !schema_keys[i].collection)
			return schema_keys[i].key;
	return NULL;
}

const char *
schema_prefix(enum schema_kind k)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (schema_keys[i].kind == k && schema_keys[i].collection)
			return schema_keys[i].key;
	return NULL;
}

char *
schema_key_of(enum schema_kind k, int id, char *buf)
{
	const char *p = schema_prefix(k);

	if (p == NULL)
		snprintf(buf, SCHEMA_KEY_MAX, "%s", schema_key(k));
	else if (k == SK_CERT || k == SK_OCSP_STAPLE || k == SK_ACME)
		snprintf(buf, SCHEMA_KEY_MAX, "%s%s", p, id >= 0 &&
		    id < CERT__COUNT ? cert_services[id].name : "?");
	else
		snprintf(buf, SCHEMA_KEY_MAX, "%s%d", p, id);
	return buf;
}

char *
schema_cert_hist_prefix(int id, char *buf)
{
	snprintf(buf, SCHEMA_KEY_MAX, "%s%s/", schema_prefix(SK_CERT_HIST),
	    id >= 0 && id < CERT__COUNT ? cert_services[id].name : "?");
	return buf;
}

char *
schema_cert_hist_key(int id, int version, char *buf)
{
	snprintf(buf, SCHEMA_KEY_MAX, "%s%s/%d", schema_prefix(SK_CERT_HIST),
	    id >= 0 && id < CERT__COUNT ? cert_services[id].name : "?",
	    version % 100000000);
	return buf;
}

char *
schema_cert_state_key(const char *what, int id, char *buf)
{
	snprintf(buf, SCHEMA_KEY_MAX, "%s%s.%s", schema_prefix(SK_STATE), what,
	    id >= 0 && id < CERT__COUNT ? cert_services[id].name : "?");
	return buf;
}

json_t *
schema_cert_state_get(struct store *s, const char *what, int id,
    int64_t *rev)
{
	char	 key[SCHEMA_KEY_MAX];
	json_t	*doc = schema_get(s, schema_cert_state_key(what, id, key), rev,
		    NULL);

	if (doc == NULL) {
		if (rev != NULL)
			*rev = 0;
		doc = json_object();
	}
	return doc;
}

enum schema_kind
schema_classify(const char *key, int *id)
{
	size_t	i, len;

	if (id != NULL)
		*id = 0;
	for (i = 0; i < NKEYS; i++) {
		len = strlen(schema_keys[i].key);
		if (!schema_keys[i].collection) {
			if (strcmp(key, schema_keys[i].key) == 0)
				return schema_keys[i].kind;
			continue;
		}
		if (strncmp(key, schema_keys[i].key, len) != 0)
			continue;
		if (id != NULL && schema_keys[i].kind == SK_CERT_HIST) {
			/* "<name>/<version>": the certificate's id */
			char name[32];
			snprintf(name, sizeof(name), "%.*s", (int)strcspn(key +
			    len, "/"), key + len);
			*id = cert_id_of(name);
		} else if (id != NULL)
			*id = schema_keys[i].kind == SK_CERT ||
			    schema_keys[i].kind == SK_OCSP_STAPLE ||
			    schema_keys[i].kind == SK_ACME ?
			    cert_id_of(key + len) : atoi(key + len);
		return schema_keys[i].kind;
	}
	return SK_OTHER;
}

int
schema_is_config(const char *key)
{
	size_t	i;
	int	id;
	enum schema_kind k = schema_classify(key, &id);

	/* A watch that resumed after a gap reports its prefix: the root
	 * may hide anything. */
	if (k == SK_OTHER)
		return 1;
	for (i = 0; i < NKEYS; i++)
		if (schema_keys[i].kind == k)
			return schema_keys[i].config;
	return 1;
}

/* ---- reading ---- */

json_t *
schema_get(struct store *s, const char *key, int64_t *rev, struct err *e)
{
	char	*v;
	json_t	*j;
	int	 r = store_get(s, key, &v, rev, e);

	if (r != 0) {
		if (r == 1)
			err_set(e, E_NOT_FOUND, "%s not found", key);
		return NULL;
	}
	j = json_loads(v, 0, NULL);
	explicit_bzero(v, strlen(v));
	free(v);
	if (j == NULL)
		err_set(e, E_STORE, "%s is damaged in the store", key);
	return j;
}

json_t *
schema_list(struct store *s, enum schema_kind k, struct err *e)
{
	struct store_kv	*kvs;
	size_t		 nkv, i;
	json_t		*arr, *d;

	if (store_list(s, schema_prefix(k), &kvs, &nkv, e) == -1)
		return NULL;
	if ((arr = json_array()) == NULL) {
		store_kvs_free(kvs, nkv);
		err_set(e, E_INTERNAL, "out of memory");
		return NULL;
	}
	for (i = 0; i < nkv; i++) {
		if ((d = json_loads(kvs[i].value, 0, NULL)) == NULL) {
			log_warn("%s is damaged in the store; skipped",
			    kvs[i].key);
			continue;
		}
		json_object_set_new(d, "_rev", json_integer(kvs[i].mod_rev));
		json_array_append_new(arr, d);
	}
	store_kvs_free(kvs, nkv);
	return arr;
}

/* ---- the cluster document ---- */

void
cluster_policy_clear(struct cluster_policy *p)
{
	free(p->control_cipher_list);
	free(p->data_cipher_list);
	free(p->data_ciphersuites);
	memset(p, 0, sizeof(*p));
}

int
cluster_policy_copy(struct cluster_policy *dst,
    const struct cluster_policy *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->min_control = src->min_control;
	dst->min_data = src->min_data;
	dst->control_cipher_list = strdup(src->control_cipher_list ?
	    src->control_cipher_list : "");
	dst->data_cipher_list = strdup(src->data_cipher_list ?
	    src->data_cipher_list : "");
	dst->data_ciphersuites = strdup(src->data_ciphersuites ?
	    src->data_ciphersuites : "");
	if (dst->control_cipher_list == NULL || dst->data_cipher_list ==
	    NULL || dst->data_ciphersuites == NULL) {
		cluster_policy_clear(dst);
		return -1;
	}
	return 0;
}

void
cluster_doc_clear(struct cluster_doc *c)
{
	free(c->name);
	free(c->created_time);
	cluster_policy_clear(&c->policy);
	memset(c, 0, sizeof(*c));
}

int
cluster_doc_decode(const json_t *doc, struct cluster_doc *c, struct err *e)
{
	const char	*name, *created = NULL, *minc, *mind, *ccl, *dcl, *dcs;
	struct cluster_policy *p = &c->policy;

	memset(c, 0, sizeof(*c));
	/* created_at: the name of the first releases, kept readable. */
	if (json_unpack((json_t *)doc, "{s:s, s:s, s:s, s:s, s:s, s:s}",
	    "name", &name, "min_control_TLS_version", &minc,
	    "min_data_TLS_version", &mind, "control_cipher_suites", &ccl,
	    "data_cipher_list", &dcl, "data_cipher_suites_tls_1_3",
	    &dcs) != 0)
		return err_set(e, E_STORE, "the stored cluster document is "
		    "damaged");
	created = json_string_value(json_object_get(doc, "created_time"));
	if (created == NULL)
		created = json_string_value(json_object_get(doc, "created_at"));
	if (tls_version_parse(minc, &p->min_control, e) == -1 ||
	    tls_version_parse(mind, &p->min_data, e) == -1)
		return -1;
	c->name = strdup(name);
	c->created_time = strdup(created ? created : "");
	p->control_cipher_list = strdup(ccl);
	p->data_cipher_list = strdup(dcl);
	p->data_ciphersuites = strdup(dcs);
	if (c->name == NULL || c->created_time == NULL ||
	    p->control_cipher_list == NULL || p->data_cipher_list == NULL ||
	    p->data_ciphersuites == NULL) {
		cluster_doc_clear(c);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	return 0;
}

json_t *
cluster_doc_new(const char *name, const char *now)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "name", name,
	    "created_time", now, "min_control_TLS_version", "1.2",
	    "min_data_TLS_version", "1.2",
	    "control_cipher_suites", MOAT_DEFAULT_CIPHER_LIST,
	    "data_cipher_list", MOAT_DEFAULT_CIPHER_LIST,
	    "data_cipher_suites_tls_1_3", MOAT_DEFAULT_CIPHERSUITES);
}

json_t *
cluster_doc_public(const struct cluster_doc *c)
{
	const struct cluster_policy *p = &c->policy;

	/* created_at: the first releases' name, an alias for one release. */
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
	    "name", c->name, "created_time", c->created_time,
	    "created_at", c->created_time,
	    "min_control_TLS_version", tls_version_str(p->min_control),
	    "min_data_TLS_version", tls_version_str(p->min_data),
	    "control_cipher_suites", p->control_cipher_list,
	    "control_cipher_suites_tls_1_3", MOAT_DEFAULT_CIPHERSUITES,
	    "data_cipher_list", p->data_cipher_list,
	    "data_cipher_suites_tls_1_3", p->data_ciphersuites);
}

json_t *
schema_staple_encode(const char *fingerprint, const unsigned char *der,
    size_t len)
{
	size_t	 blen = sodium_base64_ENCODED_LEN(len,
		    sodium_base64_VARIANT_ORIGINAL);
	char	*b64 = malloc(blen);
	json_t	*j;

	if (b64 == NULL)
		return NULL;
	sodium_bin2base64(b64, blen, der, len, sodium_base64_VARIANT_ORIGINAL);
	j = json_pack("{s:s, s:s}", "fingerprint_sha256", fingerprint, "der",
	    b64);
	free(b64);
	return j;
}

int
schema_staple_decode(const json_t *doc, const char **fingerprint,
    unsigned char **der, size_t *len, time_t *until)
{
	const char	*b64 = json_string_value(json_object_get(doc, "der"));
	const char	*nu = json_string_value(json_object_get(doc,
			    "next_update"));
	size_t		 max;

	*der = NULL;
	*fingerprint = json_string_value(json_object_get(doc,
	    "fingerprint_sha256"));
	if (b64 == NULL || *fingerprint == NULL)
		return -1;
	/* No nextUpdate: "newer information is always available"; keep it
	 * a day, the fetcher comes back well before. */
	if (nu == NULL || iso_parse(nu, 0, until) == -1)
		*until = time(NULL) + 86400;
	max = strlen(b64) / 4 * 3 + 3;
	if ((*der = malloc(max)) == NULL)
		return -1;
	if (sodium_base642bin(*der, max, b64, strlen(b64), NULL, len, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(*der);
		*der = NULL;
		return -1;
	}
	return 0;
}

const char *
schema_mtls_ask_pem(const json_t *doc)
{
	if (!json_is_true(json_object_get(doc,
	    "mtls_certificate_authentication")))
		return NULL;
	return json_string_value(json_object_get(doc, "mtls_trusted_ca"));
}

const struct tls_policy *
cluster_tls_policy(const struct cluster_policy *p, enum policy_kind k,
    struct tls_policy *out)
{
	if (k == POLICY_CONTROL) {
		out->min_version = p->min_control;
		out->cipher_list = p->control_cipher_list;
		out->ciphersuites = NULL;
	} else {
		out->min_version = p->min_data;
		out->cipher_list = p->data_cipher_list;
		out->ciphersuites = p->data_ciphersuites;
	}
	return out;
}

/* ---- certificates ---- */

int
cert_doc_decode(const json_t *j, struct cert_doc *c, struct err *e)
{
	int by_ca = 0;

	memset(c, 0, sizeof(*c));
	if (json_unpack((json_t *)j, "{s:s, s:s, s:i, s?s, s?s, s?b}",
	    "certificate", &c->certificate, "key", &c->key, "version",
	    &c->version, "updated_at", &c->updated_at, "updated_by",
	    &c->updated_by, "issued_by_cluster_ca", &by_ca) != 0)
		return err_set(e, E_STORE, "a stored certificate document is "
		    "damaged");
	c->by_cluster_ca = by_ca;
	return 0;
}

char *
schema_seal_key(const char *key)
{
	/* Already sealed (a document copied as stored): as it is. */
	if (strncmp(key, SEAL_PREFIX, strlen(SEAL_PREFIX)) == 0)
		return strdup(key);
	return seal_text(key);
}

json_t *
cert_doc_encode(int id, const struct cert_doc *c)
{
	char	*sk = schema_seal_key(c->key);
	json_t	*j;

	if (sk == NULL)
		return NULL;
	j = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:b}", "name",
	    cert_services[id].name, "certificate", c->certificate, "key",
	    sk, "version", c->version, "updated_at", c->updated_at ?
	    c->updated_at : "", "updated_by", c->updated_by ? c->updated_by :
	    "", "issued_by_cluster_ca", c->by_cluster_ca);
	seal_free(sk);
	return j;
}

json_t *
ca_doc_encode(const char *cert, const char *key)
{
	char	*sk = schema_seal_key(key);
	json_t	*j;

	if (sk == NULL)
		return NULL;
	j = json_pack("{s:s, s:s}", "cert", cert, "key", sk);
	seal_free(sk);
	return j;
}

int
ca_doc_decode(const json_t *j, const char **cert, const char **key,
    struct err *e)
{
	if (json_unpack((json_t *)j, "{s:s, s:s}", "cert", cert, "key",
	    key) != 0)
		return err_set(e, E_STORE, "the cluster CA is damaged in the "
		    "store");
	return 0;
}

/* Append pem to *out (with a newline), unless it is there already. */
static void
pem_append(char **out, const char *pem)
{
	char	*t;
	size_t	 len;

	if (pem == NULL || *out == NULL || strstr(*out, pem) != NULL)
		return;
	len = strlen(pem);
	if (asprintf(&t, "%s%s%s", *out, pem, len > 0 && pem[len - 1] ==
	    '\n' ? "" : "\n") == -1) {
		free(*out);
		*out = NULL;
		return;
	}
	free(*out);
	*out = t;
}

char *
ca_doc_bundle(const json_t *j)
{
	char *out = strdup("");

	pem_append(&out, json_string_value(json_object_get(j, "cert")));
	pem_append(&out, json_string_value(json_object_get(
	    json_object_get(j, "next"), "cert")));
	pem_append(&out, json_string_value(json_object_get(j, "previous")));
	if (out != NULL && *out == '\0') {
		free(out);
		return NULL;
	}
	return out;
}

/* ---- users ---- */

int
user_doc_decode(const json_t *j, struct user_doc *u)
{
	memset(u, 0, sizeof(*u));
	if (json_unpack((json_t *)j, "{s:i, s:s, s:s, s:s, s:s, s?s, s?s}",
	    "uid", &u->uid, "email", &u->email, "name", &u->name, "role",
	    &u->role, "password_hash", &u->password_hash, "auth_method",
	    &u->auth_method, "certificate_subject_line",
	    &u->certificate_subject_line) != 0)
		return -1;
	/* Users from before certificate sign-in have passwords. */
	if (u->auth_method == NULL)
		u->auth_method = "regular";
	return 0;
}

int
user_doc_is_cert(const struct user_doc *u)
{
	return strcmp(u->auth_method, "certificate") == 0;
}

json_t *
user_doc_encode(const struct user_doc *u)
{
	json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "uid", u->uid,
	    "email", u->email, "name", u->name, "role", u->role,
	    "password_hash", u->password_hash ? u->password_hash : "",
	    "auth_method", u->auth_method ? u->auth_method : "regular");

	if (j != NULL && u->certificate_subject_line != NULL)
		json_object_set_new(j, "certificate_subject_line",
		    json_string(u->certificate_subject_line));
	return j;
}

/* ---- who may present a client certificate ---- */

#define MAX_SUBJECTS	100

/* Characters, not bytes, of a UTF-8 string (jansson's are valid). */
static size_t
utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static int
subject_field_ok(json_t *v)
{
	return json_is_string(v) && *json_string_value(v) != '\0' &&
	    utf8_chars(json_string_value(v)) <= 64;
}

int
schema_subjects_check(json_t *list, const char *field, struct err *e)
{
	static const char *const single[] = { "CN", "O", "L", "ST", "C" };
	const char	*k;
	json_t		*it, *v, *ou;
	size_t		 i, j, s;

	if (!json_is_array(list) || json_array_size(list) > MAX_SUBJECTS)
		return err_set(e, E_INVALID_SCHEMA, "%s must be a list of at "
		    "most %d subjects", field, MAX_SUBJECTS);
	json_array_foreach(list, i, it) {
		if (!json_is_object(it))
			return err_set(e, E_INVALID_SCHEMA, "%s[%zu] must be an "
			    "object {CN, O, OU, L, ST, C}", field, i);
		json_object_foreach(it, k, v) {
			if (strcmp(k, "OU") == 0) {
				if (!json_is_array(v))
					return err_set(e, E_INVALID_SCHEMA,
					    "%s[%zu].OU must be a list of "
					    "strings", field, i);
				json_array_foreach(v, j, ou)
					if (!subject_field_ok(ou))
						return err_set(e,
						    E_INVALID_SCHEMA, "%s[%zu]"
						    ".OU[%zu] must be a string "
						    "of 1 to 64 characters",
						    field, i, j);
				continue;
			}
			for (s = 0; s < sizeof(single) / sizeof(single[0]); s++)
				if (strcmp(k, single[s]) == 0)
					break;
			if (s == sizeof(single) / sizeof(single[0]))
				return err_set(e, E_INVALID_SCHEMA, "%s[%zu]: "
				    "unknown field \"%.32s\" (CN, O, OU, L, ST, "
				    "C)", field, i, k);
			if (!subject_field_ok(v))
				return err_set(e, E_INVALID_SCHEMA, "%s[%zu].%s "
				    "must be a string of 1 to 64 characters",
				    field, i, k);
		}
		if (json_object_get(it, "CN") == NULL)
			return err_set(e, E_INVALID_SCHEMA, "%s[%zu] needs a CN",
			    field, i);
	}
	return 0;
}

int
schema_subject_rules(json_t *doc, const char *type_field,
    const char *list_field, enum tls_subject_check *check,
    struct tls_subject **subj, const char ***ous, size_t *np)
{
	const char	*type = json_string_value(json_object_get(doc,
			    type_field));
	json_t		*list = json_object_get(doc, list_field), *it, *ou;
	size_t		 i, k, n = json_array_size(list), nou = 0, at = 0;

	*check = TLS_SUBJECT_ANY;
	*np = 0;
	if (type != NULL && strcmp(type, "san_cn") == 0)
		*check = TLS_SUBJECT_SAN_CN;
	else if (type != NULL && strcmp(type, "full_subject") == 0)
		*check = TLS_SUBJECT_FULL;
	else
		return 0;
	json_array_foreach(list, i, it)
		nou += json_array_size(json_object_get(it, "OU")) + 1;
	if (n == 0)
		return 0;
	if ((*subj = calloc(n, sizeof(**subj))) == NULL ||
	    (*ous = calloc(nou, sizeof(**ous))) == NULL)
		return -1;
	json_array_foreach(list, i, it) {
		struct tls_subject *t = &(*subj)[i];
		t->cn = json_string_value(json_object_get(it, "CN"));
		t->o = json_string_value(json_object_get(it, "O"));
		t->l = json_string_value(json_object_get(it, "L"));
		t->st = json_string_value(json_object_get(it, "ST"));
		t->c = json_string_value(json_object_get(it, "C"));
		t->ou = &(*ous)[at];
		json_array_foreach(json_object_get(it, "OU"), k, ou)
			(*ous)[at++] = json_string_value(ou);
		(*ous)[at++] = NULL;
	}
	*np = n;
	return 0;
}

/* ---- nodes ---- */

json_t *
node_report_encode(const struct node_report *r, const char *now)
{
	json_t	*certs = json_object(), *doc;
	int	 i;

	for (i = 0; i < CERT__COUNT; i++) {
		if (r->certs[i].version == 0)
			continue;
		json_object_set_new(certs, cert_services[i].name,
		    json_pack("{s:i, s:s}", "version", r->certs[i].version,
		    "fingerprint_sha256", r->certs[i].fingerprint ?
		    r->certs[i].fingerprint : ""));
	}
	doc = json_pack("{s:i, s:s, s:i, s:s, s:s, s:o, s:I, s:I, s:{s:I, "
	    "s:i, s:i}, s:s}", "uid", r->uid, "addr", r->addr, "api_port",
	    r->api_port, "status", r->status, "software_version",
	    MOAT_VERSION, "certificates", certs, "applied_rev",
	    (json_int_t)r->applied_rev, "policy_rev",
	    (json_int_t)r->policy_rev, "closed_sessions", "policy_rev",
	    (json_int_t)r->policy_rev, "api", r->closed_api, "proxy",
	    r->closed_proxy, "updated_at", now ? now : "");
	if (doc != NULL && r->sessions != NULL)
		json_object_set(doc, "sessions", r->sessions);
	if (doc != NULL && r->replication != NULL)
		json_object_set(doc, "replication", r->replication);
	return doc;
}

/* ---- databases: Replica Of ---- */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode [s, s+n) into out (size len); -1 when it does not fit
 * or decodes to a control character, a space or a quote. */
static int
uri_part(const char *s, size_t n, char *out, size_t len)
{
	size_t	i, o = 0;
	int	c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
		    hexval(s[i + 2]) >= 0) {
			c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
			i += 2;
		}
		if (c <= ' ' || c == '"' || c == '\\' || c >= 0x7f ||
		    o + 1 >= len)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

int
replica_uri_parse(const char *uri, struct replica_uri *u, struct err *e)
{
	const char	*p, *at, *colon, *hostp, *end;
	char		*num_end;
	long		 port;

	memset(u, 0, sizeof(*u));
	if (uri == NULL || strlen(uri) > 1024)
		return err_set(e, E_INVALID_SCHEMA, "replica_sources[0].uri "
		    "must be a string like redis://:<password>@<host>:<port>");
	if (strncmp(uri, "redis://", 8) == 0)
		p = uri + 8;
	else if (strncmp(uri, "rediss://", 9) == 0)
		p = uri + 9;
	else
		return err_set(e, E_INVALID_SCHEMA, "replica_sources[0].uri "
		    "must start with redis:// (RS's form: "
		    "redis://:<password>@<host>:<port>)");
	end = p + strlen(p);
	if (end > p && end[-1] == '/')
		end--;
	if ((at = memrchr(p, '@', (size_t)(end - p))) != NULL) {
		colon = memchr(p, ':', (size_t)(at - p));
		if (uri_part(p, (size_t)((colon ? colon : at) - p), u->user,
		    sizeof(u->user)) == -1 || (colon != NULL &&
		    uri_part(colon + 1, (size_t)(at - colon - 1), u->password,
		    sizeof(u->password)) == -1)) {
			explicit_bzero(u->password, sizeof(u->password));
			return err_set(e, E_INVALID_SCHEMA, "the user or "
			    "password of replica_sources[0].uri is too long or "
			    "holds spaces, quotes or control characters");
		}
		hostp = at + 1;
	} else
		hostp = p;
	if (*hostp == '[') {	/* [v6]:port */
		const char *rb = memchr(hostp, ']', (size_t)(end - hostp));
		if (rb == NULL || rb[1] != ':' || rb == hostp + 1 ||
		    (size_t)(rb - hostp - 1) >= sizeof(u->host))
			goto badhost;
		memcpy(u->host, hostp + 1, (size_t)(rb - hostp - 1));
		colon = rb + 1;
		/* The host goes into log lines: only what an address has. */
		if (strspn(u->host, "0123456789abcdefABCDEF:.") !=
		    strlen(u->host))
			goto badhost;
	} else {
		if ((colon = memrchr(hostp, ':', (size_t)(end - hostp))) ==
		    NULL || colon == hostp || (size_t)(colon - hostp) >=
		    sizeof(u->host))
			goto badhost;
		memcpy(u->host, hostp, (size_t)(colon - hostp));
		/* A DNS name or an IPv4 address, nothing else. */
		if (strspn(u->host, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") !=
		    strlen(u->host))
			goto badhost;
	}
	errno = 0;
	port = strtol(colon + 1, &num_end, 10);
	if (num_end != end || port < 1 || port > 65535 || errno != 0)
		goto badhost;
	u->port = (int)port;
	return 0;
badhost:
	explicit_bzero(u->password, sizeof(u->password));
	return err_set(e, E_INVALID_SCHEMA, "replica_sources[0].uri must name "
	    "the source endpoint as <host>:<port> (port 1 to 65535) after "
	    "redis://[user][:password]@");
}

char *
replica_uri_masked(const struct replica_uri *u)
{
	char	*s = NULL;
	int	 v6 = strchr(u->host, ':') != NULL;

	if (asprintf(&s, "redis://%s%s%s%s%s%s%s:%d", u->user,
	    u->password[0] ? ":" : "",
	    u->password[0] ? REPLICA_PASSWORD_MASK : "",
	    u->user[0] || u->password[0] ? "@" : "",
	    v6 ? "[" : "", u->host, v6 ? "]" : "", u->port) == -1)
		return NULL;
	return s;
}

/* ---- the layout version ---- */

int
schema_put_version(struct store_txn *t)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "{\"version\":%d}", SCHEMA_VERSION);
	return store_txn_put(t, schema_key(SK_VERSION), buf);
}

int
schema_check(struct store *s, struct err *e)
{
	json_t			*doc;
	struct store_txn	*t;
	int64_t			 rev = 0;
	int			 v = 0, rc;

	if ((doc = schema_get(s, schema_key(SK_VERSION), &rev, NULL)) !=
	    NULL) {
		v = (int)json_integer_value(json_object_get(doc, "version"));
		json_decref(doc);
	}
	if (v > SCHEMA_VERSION)
		return err_set(e, E_STORE, "the cluster store has schema version "
		    "%d, newer than this moatd understands (%d): run the newer "
		    "moatd", v, SCHEMA_VERSION);
	if (v == SCHEMA_VERSION)
		return 0;
	/* Version 0 (no key) is the layout of the first releases; nothing
	 * moved since, so the migration is recording the version. */
	if ((t = store_txn_new()) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	store_txn_cmp(t, schema_key(SK_VERSION), rev);
	schema_put_version(t);
	rc = store_txn_commit(s, t, e);
	store_txn_free(t);
	if (rc == 0)
		log_info("cluster store migrated from schema %d to %d", v,
		    SCHEMA_VERSION);
	else if (e != NULL && e->code == E_CONFLICT) {
		err_clear(e);	/* another node migrated it meanwhile */
		rc = 0;
	}
	return rc;
}

char *
iso_time(time_t t, char buf[ISO_TIME_LEN])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, ISO_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

char *
iso_now(void)
{
	char buf[ISO_TIME_LEN];

	return strdup(iso_time(time(NULL), buf));
}

time_t
iso_field(const json_t *doc, const char *field)
{
	time_t t = 0;

	if (iso_parse(json_string_value(json_object_get(doc, field)), 0,
	    &t) == -1)
		return 0;
	return t;
}

int
iso_parse(const char *s, int date_ok, time_t *out)
{
	struct tm	 tm;
	const char	*end;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL)
		return -1;
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL) {
		memset(&tm, 0, sizeof(tm));
		if (!date_ok || (end = strptime(s, "%Y-%m-%d", &tm)) == NULL)
			return -1;
	}
	if (*end == 'Z')
		end++;
	if (*end != '\0')
		return -1;
	*out = timegm(&tm);
	return 0;
}
