/*
 * bdbs.c — the writer of database objects (RS field names): validate,
 * store, describe.  Running them is apply's (apply/apply_bdbs.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "apply.h"
#include "bdbs.h"
#include "events.h"
#include "log.h"
#include "nodes.h"
#include "schema.h"
#include "tlsctx.h"
#include "x509.h"

#define PORT_MIN	10000
#define PORT_MAX	19999
#define MEM_DEFAULT	(100LL * 1024 * 1024)
#define MEM_MIN		(1LL * 1024 * 1024)
#define MEM_MAX		(1024LL * 1024 * 1024 * 1024)
#define MAX_CLIENT_CERTS 64

/* ---- validation ---- */

#define ALNUM	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

/* 1 when s is 1 to max characters, all of ALNUM or extra. */
static int
chars_valid(const char *s, size_t max, const char *extra)
{
	size_t len = strlen(s), n = strspn(s, ALNUM);

	while (n < len && strchr(extra, s[n]) != NULL)
		n += 1 + strspn(s + n + 1, ALNUM);
	return len > 0 && len <= max && n == len;
}

static int
name_valid(const char *s)
{
	return chars_valid(s, 63, "-_");
}

/* The password goes into redis.conf between quotes: no quote, backslash,
 * space or control character, so nothing can escape it. */
static int
redis_pass_valid(const char *s)
{
	size_t i, len = strlen(s);

	if (len > 512)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == '"' || s[i] == '\\' ||
		    (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

static int
port_bindable(const char *addr, int port)
{
	struct sockaddr_in	 sin;
	int			 fd, one = 1, ok;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, addr, &sin.sin_addr);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	close(fd);
	return ok;
}

static int
one_of(const char *v, const char *const *allowed)
{
	for (; *allowed != NULL; allowed++)
		if (strcmp(v, *allowed) == 0)
			return 1;
	return 0;
}

static const char *const tls_modes[] = { "enabled", "disabled", "replica_ssl",
	NULL };
static const char *const on_off[] = { "enabled", "disabled", NULL };
static const char *const subject_checks[] = { "disabled", "san_cn",
	"full_subject", NULL };

/* Same order as enum shard_persistence. */
static const char *const persistence_modes[] = { "aof", "snapshot",
	"disabled", NULL };

static int
bdb_check_client_certs(json_t *list, struct err *e)
{
	struct x509_material	*m;
	char			 fps[MAX_CLIENT_CERTS][100];
	json_t			*it;
	size_t			 i, j;
	const char		*pem;

	if (!json_is_array(list) || json_array_size(list) > MAX_CLIENT_CERTS)
		return err_set(e, E_INVALID_SCHEMA, "authentication_ssl_client_"
		    "certs must be a list of at most %d {\"client_cert\": PEM}",
		    MAX_CLIENT_CERTS);
	json_array_foreach(list, i, it) {
		if (json_unpack(it, "{s:s !}", "client_cert", &pem) != 0)
			return err_set(e, E_INVALID_SCHEMA, "authentication_ssl_"
			    "client_certs[%zu] must be {\"client_cert\": PEM}", i);
		if (x509_material_parse(pem, NULL, &m, e) == -1)
			return err_set(e, E_INVALID_CERTIFICATE, "authentication"
			    "_ssl_client_certs[%zu] does not parse as a PEM "
			    "certificate", i);
		if (x509_material_seconds_left(m) <= 0) {
			x509_material_free(m);
			return err_set(e, E_EXPIRED, "authentication_ssl_client_"
			    "certs[%zu] has expired", i);
		}
		x509_material_fingerprint(m, fps[i]);
		x509_material_free(m);
		for (j = 0; j < i; j++)
			if (strcmp(fps[j], fps[i]) == 0)
				return err_set(e, E_DUPLICATED_CERTS, "authentication"
				    "_ssl_client_certs[%zu] repeats entry %zu", i, j);
	}
	return 0;
}

static const char *const replica_sync_modes[] = { "enabled", "disabled",
	"paused", "stopped", NULL };

/* A DNS name as SNI. */
static int
sni_valid(const char *s)
{
	return chars_valid(s, 253, "-.");
}

/*
 * One entry of replica_sources, checked and normalized into *out (RS's
 * fields; status, lag and last_error of a GET are accepted and dropped
 * so that what was read can be written back).  old: the stored entry,
 * whose password a masked uri keeps.
 */
static int
bdb_check_source(struct node *n, json_t *src, json_t *old, int own_port,
    json_t **out, struct err *e)
{
	struct replica_uri	 u, ou;
	const char		*key, *pem = NULL, *sni = NULL, *uri = NULL;
	json_t			*v;
	char			*fixed = NULL;
	int			 rc = -1;

	memset(&u, 0, sizeof(u));
	memset(&ou, 0, sizeof(ou));
	*out = NULL;
	if (!json_is_object(src))
		return err_set(e, E_INVALID_SCHEMA, "replica_sources[0] must be "
		    "an object {uri, encryption, server_cert, "
		    "replication_tls_sni}");
	json_object_foreach(src, key, v) {
		if (strcmp(key, "uri") == 0 && json_is_string(v))
			uri = json_string_value(v);
		else if (strcmp(key, "server_cert") == 0 && json_is_string(v))
			pem = json_string_value(v);
		else if (strcmp(key, "replication_tls_sni") == 0 &&
		    (json_is_string(v) || json_is_null(v)))
			sni = json_string_value(v);
		else if (strcmp(key, "encryption") == 0) {
			if (!json_is_boolean(v))
				return err_set(e, E_INVALID_SCHEMA, "replica_"
				    "sources[0].encryption must be true or "
				    "false");
			if (!json_is_true(v))
				return err_set(e, E_INVALID_CONFIG, "moat "
				    "replicates over TLS only: set "
				    "replica_sources[0].encryption to true and "
				    "give server_cert");
		} else if (strcmp(key, "compression") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) != 0)
				return err_set(e, E_INVALID_CONFIG, "replica_"
				    "sources[0].compression: only 0 is "
				    "supported (the link carries Redis's own "
				    "replication stream, uncompressed)");
		} else if (strcmp(key, "client_cert") == 0 ||
		    strcmp(key, "client_key") == 0) {
			return err_set(e, E_INVALID_CONFIG, "replica_sources[0]."
			    "%s is not supported: the link always presents "
			    "the cluster's syncer certificate (rotate it with "
			    "the certificate API)", key);
		} else if (strcmp(key, "status") == 0 ||
		    strcmp(key, "lag") == 0 || strcmp(key, "last_error") == 0) {
			continue;	/* read-only, from a GET */
		} else
			return err_set(e, E_INVALID_SCHEMA, "replica_sources[0]."
			    "%.64s is unknown or has the wrong type; settable: "
			    "uri, encryption, server_cert, "
			    "replication_tls_sni, compression (0)", key);
	}
	if (uri == NULL)
		return err_set(e, E_INVALID_SCHEMA, "replica_sources[0].uri is "
		    "required: redis://:<password>@<host>:<port> of the "
		    "source database");
	if (replica_uri_parse(uri, &u, e) == -1)
		return -1;
	if (strcmp(u.password, REPLICA_PASSWORD_MASK) == 0) {
		/* Written back from a GET: the stored password stays, as
		 * long as it is the same source. */
		if (old == NULL || replica_uri_parse(json_string_value(
		    json_object_get(old, "uri")), &ou, NULL) == -1 ||
		    strcmp(ou.host, u.host) != 0 || ou.port != u.port) {
			err_set(e, E_INVALID_SCHEMA, "the password in replica_"
			    "sources[0].uri is the mask a GET shows; give the "
			    "source's real password");
			goto out;
		}
		if (strcmp(ou.user, u.user) != 0) {
			err_set(e, E_INVALID_SCHEMA, "the password in replica_"
			    "sources[0].uri is the mask a GET shows, with "
			    "another user; give the real password");
			goto out;
		}
		/* The stored uri as it was written (its encoding too). */
		if ((fixed = strdup(json_string_value(json_object_get(old,
		    "uri")))) == NULL) {
			err_set(e, E_INTERNAL, "out of memory");
			goto out;
		}
		uri = fixed;
	}
	if (pem == NULL) {
		err_set(e, E_INVALID_CONFIG, "replica_sources[0].server_cert is "
		    "required: the source's CA (its chain and name are "
		    "checked) or its proxy certificate (pinned)");
		goto out;
	}
	if (tlsctx_server_cert_form(pem, e) == -1)
		goto out;
	if (sni != NULL && !sni_valid(sni)) {
		err_set(e, E_INVALID_SCHEMA, "replica_sources[0].replication_"
		    "tls_sni must be a DNS name");
		goto out;
	}
	if (u.port == own_port && (strcmp(u.host, n->cfg.addr) == 0 ||
	    strcmp(u.host, "localhost") == 0)) {
		err_set(e, E_INVALID_CONFIG, "a database cannot replicate from "
		    "its own endpoint");
		goto out;
	}
	*out = json_pack("{s:s, s:b, s:s, s:i}", "uri", uri, "encryption", 1,
	    "server_cert", pem, "compression", 0);
	if (*out != NULL && sni != NULL)
		json_object_set_new(*out, "replication_tls_sni",
		    json_string(sni));
	rc = *out != NULL ? 0 : err_set(e, E_INTERNAL, "out of memory");
out:
	if (fixed != NULL) {
		explicit_bzero(fixed, strlen(fixed));
		free(fixed);
	}
	explicit_bzero(&u, sizeof(u));
	explicit_bzero(&ou, sizeof(ou));
	return rc;
}

static int
bdb_check_sources(struct node *n, json_t *doc, json_t *list, json_t **out,
    struct err *e)
{
	json_t	*one;
	int	 port = (int)json_integer_value(json_object_get(doc, "port"));

	*out = NULL;
	if (!json_is_array(list))
		return err_set(e, E_INVALID_SCHEMA, "replica_sources must be a "
		    "list of {uri, encryption, server_cert, "
		    "replication_tls_sni}");
	if (json_array_size(list) > 1)
		return err_set(e, E_INVALID_SCHEMA, "replica_sources holds %zu "
		    "sources; moat replicates a database from one source "
		    "(give one entry, or none to stop)",
		    json_array_size(list));
	if ((*out = json_array()) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	if (json_array_size(list) == 0)
		return 0;
	if (bdb_check_source(n, json_array_get(list, 0), json_array_get(
	    json_object_get(doc, "replica_sources"), 0), port, &one, e) == -1) {
		json_decref(*out);
		*out = NULL;
		return -1;
	}
	json_array_append_new(*out, one);
	return 0;
}

/* Merge body into doc (a new database when doc is empty) and check it. */
static int
bdb_merge(struct node *n, json_t *doc, json_t *body, int creating,
    struct err *e)
{
	const char	*key;
	json_t		*v;
	static const char *const fields[] = { "name", "port", "memory_size",
	    "tls_mode", "authentication_redis_pass",
	    "enforce_client_authentication", "authentication_ssl_client_certs",
	    "client_cert_subject_validation_type", "authorized_subjects",
	    "crl", "data_persistence", "replica_sources", "replica_sync",
	    NULL };
	json_t		*srcs = NULL;

	json_object_foreach(body, key, v) {
		if (!one_of(key, fields))
			return err_set(e, E_INVALID_SCHEMA, "unknown or read-only "
			    "field \"%.64s\"; settable: name, port (on create), "
			    "memory_size, tls_mode, data_persistence, "
			    "authentication_redis_pass, "
			    "enforce_client_authentication, "
			    "authentication_ssl_client_certs, "
			    "client_cert_subject_validation_type, "
			    "authorized_subjects, crl, replica_sources, "
			    "replica_sync", key);
		if (strcmp(key, "port") == 0) {
			if (!creating)
				return err_set(e, E_INVALID_CONFIG, "the port of "
				    "a database cannot be changed");
			if (!json_is_integer(v) || json_integer_value(v) <
			    PORT_MIN || json_integer_value(v) > PORT_MAX)
				return err_set(e, E_INVALID_PORT, "port must be "
				    "an integer from %d to %d", PORT_MIN,
				    PORT_MAX);
		} else if (strcmp(key, "memory_size") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) <
			    MEM_MIN || json_integer_value(v) > MEM_MAX)
				return err_set(e, E_INVALID_MEMORY, "memory_size "
				    "must be a number of bytes from %lld to "
				    "%lld", MEM_MIN, MEM_MAX);
		} else if (strcmp(key, "authentication_ssl_client_certs") == 0) {
			if (bdb_check_client_certs(v, e) == -1)
				return -1;
		} else if (strcmp(key, "authorized_subjects") == 0) {
			if (schema_subjects_check(v, "authorized_subjects", e) == -1)
				return -1;
		} else if (strcmp(key, "crl") == 0) {
			/* "" takes the CRLs away. */
			if (!json_is_string(v) || (*json_string_value(v) !=
			    '\0' && tls_crl_check(json_string_value(v), e) ==
			    -1))
				return json_is_string(v) ? -1 : err_set(e,
				    E_INVALID_SCHEMA, "crl must be PEM text "
				    "(one or more X509 CRLs), or \"\"");
		} else if (strcmp(key, "replica_sources") == 0) {
			/* The port may come later in body: checked below. */
			continue;
		} else if (!json_is_string(v)) {
			return err_set(e, E_INVALID_SCHEMA, "%s must be a string",
			    key);
		} else if (strcmp(key, "name") == 0 &&
		    !name_valid(json_string_value(v))) {
			return err_set(e, E_INVALID_SCHEMA, "name must be 1 to 63 "
			    "letters, digits, '-' or '_'");
		} else if (strcmp(key, "tls_mode") == 0 &&
		    !one_of(json_string_value(v), tls_modes)) {
			return err_set(e, E_INVALID_TLS_MODE, "tls_mode \"%.32s\" "
			    "is not one of enabled, disabled, replica_ssl",
			    json_string_value(v));
		} else if (strcmp(key, "data_persistence") == 0 &&
		    !one_of(json_string_value(v), persistence_modes)) {
			return err_set(e, E_INVALID_CONFIG, "data_persistence "
			    "\"%.32s\" is not one of aof, snapshot, disabled",
			    json_string_value(v));
		} else if (strcmp(key, "replica_sync") == 0 &&
		    !one_of(json_string_value(v), replica_sync_modes)) {
			return err_set(e, E_INVALID_SCHEMA, "replica_sync must be "
			    "enabled, disabled, paused or stopped");
		} else if (strcmp(key, "client_cert_subject_validation_type") ==
		    0 && !one_of(json_string_value(v), subject_checks)) {
			return err_set(e, E_INVALID_SCHEMA, "client_cert_subject_"
			    "validation_type must be disabled, san_cn or "
			    "full_subject");
		} else if (strcmp(key, "enforce_client_authentication") == 0 &&
		    !one_of(json_string_value(v), on_off)) {
			return err_set(e, E_INVALID_SCHEMA, "enforce_client_"
			    "authentication must be enabled or disabled");
		} else if (strcmp(key, "authentication_redis_pass") == 0 &&
		    !redis_pass_valid(json_string_value(v))) {
			return err_set(e, E_INVALID_PASSWORD, "authentication_"
			    "redis_pass must be at most 512 printable characters "
			    "without spaces, quotes or backslashes");
		}
		json_object_set(doc, key, v);
	}
	if (creating && json_object_get(doc, "name") == NULL)
		return err_set(e, E_INVALID_SCHEMA, "name is required");
	if ((v = json_object_get(body, "replica_sources")) != NULL) {
		if (bdb_check_sources(n, doc, v, &srcs, e) == -1)
			return -1;
		/* A new list starts replicating unless told otherwise. */
		if (json_array_size(srcs) > 0 && json_array_size(
		    json_object_get(doc, "replica_sources")) == 0 &&
		    json_object_get(body, "replica_sync") == NULL)
			json_object_set_new(doc, "replica_sync",
			    json_string("enabled"));
		json_object_set_new(doc, "replica_sources", srcs);
	}
	if (json_object_get(doc, "replica_sync") == NULL)
		json_object_set_new(doc, "replica_sync", json_string(
		    json_array_size(json_object_get(doc, "replica_sources")) ?
		    "enabled" : "disabled"));
	if (json_array_size(json_object_get(doc, "replica_sources")) == 0 &&
	    (strcmp(json_string_value(json_object_get(doc, "replica_sync")),
	    "enabled") == 0 || strcmp(json_string_value(json_object_get(doc,
	    "replica_sync")), "paused") == 0))
		return err_set(e, E_INVALID_CONFIG, "replica_sync \"%s\" needs "
		    "a source in replica_sources",
		    json_string_value(json_object_get(doc, "replica_sync")));
	if (strcmp(json_string_value(json_object_get(doc,
	    "enforce_client_authentication")), "enabled") == 0) {
		if (strcmp(json_string_value(json_object_get(doc, "tls_mode")),
		    "enabled") != 0)
			return err_set(e, E_INVALID_CONFIG, "client "
			    "authentication needs tls_mode \"enabled\"");
		if (json_array_size(json_object_get(doc,
		    "authentication_ssl_client_certs")) == 0)
			return err_set(e, E_INVALID_CONFIG, "client "
			    "authentication needs at least one certificate in "
			    "authentication_ssl_client_certs");
	}
	if (json_string_value(json_object_get(doc,
	    "client_cert_subject_validation_type")) != NULL &&
	    strcmp(json_string_value(json_object_get(doc,
	    "client_cert_subject_validation_type")), "disabled") != 0) {
		if (strcmp(json_string_value(json_object_get(doc,
		    "enforce_client_authentication")), "enabled") != 0)
			return err_set(e, E_INVALID_CONFIG, "client_cert_subject_"
			    "validation_type needs enforce_client_authentication "
			    "\"enabled\"");
		if (json_array_size(json_object_get(doc,
		    "authorized_subjects")) == 0)
			return err_set(e, E_INVALID_CONFIG, "client_cert_subject_"
			    "validation_type \"%s\" needs at least one subject in "
			    "authorized_subjects", json_string_value(
			    json_object_get(doc,
			    "client_cert_subject_validation_type")));
	}
	(void)n;
	return 0;
}

static json_t *
bdb_doc_get(struct node *n, int uid, int64_t *rev, struct err *e)
{
	char	 key[SCHEMA_KEY_MAX];
	json_t	*d;

	if ((d = schema_get(n->store, schema_key_of(SK_BDB, uid, key), rev,
	    e)) == NULL &&
	    e != NULL && e->code == E_NOT_FOUND)
		err_set(e, E_BDB_NOT_FOUND, "database %d does not exist", uid);
	return d;
}

static json_t *
bdb_docs(struct node *n, struct err *e)
{
	return schema_list(n->store, SK_BDB, e);
}

/* Another database already uses this name or port. */
static int
bdb_conflicts(json_t *docs, json_t *doc, int uid, struct err *e)
{
	size_t	 i;
	json_t	*d;

	json_array_foreach(docs, i, d) {
		if (json_integer_value(json_object_get(d, "uid")) == uid)
			continue;
		if (json_equal(json_object_get(d, "name"),
		    json_object_get(doc, "name")))
			return err_set(e, E_NAME_IN_USE, "a database named %s "
			    "exists", json_string_value(json_object_get(doc,
			    "name")));
		if (json_equal(json_object_get(d, "port"),
		    json_object_get(doc, "port")))
			return err_set(e, E_PORT_IN_USE, "port %lld is used by "
			    "database %lld", json_integer_value(json_object_get(
			    doc, "port")), json_integer_value(json_object_get(d,
			    "uid")));
	}
	return 0;
}

static int
bdb_store(struct node *n, json_t *doc, int uid, int64_t rev, struct err *e)
{
	struct store_txn	*t = store_txn_new();
	char			 key[SCHEMA_KEY_MAX];
	int			 rc;

	schema_key_of(SK_BDB, uid, key);
	json_object_del(doc, "_rev");
	store_txn_cmp(t, key, rev);
	store_txn_put_json(t, key, doc);
	rc = store_txn_commit(n->store, t, e);
	store_txn_free(t);
	return rc;
}

int
bdbs_create(struct node *n, json_t *body, const char *who, json_t **out,
    struct err *e)
{
	json_t	*docs = NULL, *doc, *d;
	size_t	 i;
	int	 uid = 1, port, rc = -1;
	char	*now = iso_now();

	doc = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:[], s:s, s:[], "
	    "s:s}", "name", "",
	    "memory_size", (json_int_t)MEM_DEFAULT, "tls_mode", "disabled",
	    "data_persistence", "aof",
	    "authentication_redis_pass", "", "enforce_client_authentication",
	    "disabled", "authentication_ssl_client_certs",
	    "client_cert_subject_validation_type", "disabled",
	    "authorized_subjects", "crl", "");
	json_object_del(doc, "name");
	if (bdb_merge(n, doc, body, 1, e) == -1 ||
	    (docs = bdb_docs(n, e)) == NULL)
		goto out;
	json_array_foreach(docs, i, d)
		if (json_integer_value(json_object_get(d, "uid")) >= uid)
			uid = (int)json_integer_value(json_object_get(d,
			    "uid")) + 1;
	if (json_object_get(doc, "port") == NULL) {
		/* The first port no database uses and nothing else holds. */
		for (port = PORT_MIN; port <= PORT_MAX; port++) {
			json_object_set_new(doc, "port", json_integer(port));
			if (bdb_conflicts(docs, doc, uid, NULL) == 0 &&
			    port_bindable(n->cfg.addr, port))
				break;
		}
		if (port > PORT_MAX) {
			err_set(e, E_PORT_IN_USE, "no free port from %d to %d",
			    PORT_MIN, PORT_MAX);
			goto out;
		}
	}
	if (bdb_conflicts(docs, doc, uid, e) == -1)
		goto out;
	port = (int)json_integer_value(json_object_get(doc, "port"));
	if (!port_bindable(n->cfg.addr, port)) {
		err_set(e, E_PORT_IN_USE, "port %d is already in use on %s",
		    port, n->cfg.addr);
		goto out;
	}
	json_object_set_new(doc, "uid", json_integer(uid));
	json_object_set_new(doc, "node_uid", json_integer(n->uid));
	json_object_set_new(doc, "created_time", json_string(now ? now : ""));
	if (bdb_store(n, doc, uid, 0, e) == -1)
		goto out;
	log_audit("%s created database %d (%s) on port %d, tls_mode %s", who,
	    uid, json_string_value(json_object_get(doc, "name")), port,
	    json_string_value(json_object_get(doc, "tls_mode")));
	events_add(n, "bdb_created", "INFO", json_pack("{s:i, s:O?, s:i, "
	    "s:O?, s:s}", "bdb_uid", uid, "name", json_object_get(doc, "name"),
	    "port", port, "tls_mode", json_object_get(doc, "tls_mode"), "user",
	    who));
	*out = bdbs_get_json(n, uid, e);
	rc = *out != NULL ? 0 : -1;
out:
	free(now);
	json_decref(docs);
	json_decref(doc);
	return rc;
}

int
bdbs_update(struct node *n, int uid, json_t *body, const char *who,
    json_t **out, struct err *e)
{
	json_t	*doc, *docs = NULL;
	int64_t	 rev;
	int	 rc = -1;
	const char *key;
	json_t	*v;

	if ((doc = bdb_doc_get(n, uid, &rev, e)) == NULL)
		return -1;
	if (json_object_size(body) == 0) {
		err_set(e, E_INVALID_SCHEMA, "nothing to change");
		goto out;
	}
	if (bdb_merge(n, doc, body, 0, e) == -1 ||
	    (docs = bdb_docs(n, e)) == NULL ||
	    bdb_conflicts(docs, doc, uid, e) == -1 ||
	    bdb_store(n, doc, uid, rev, e) == -1)
		goto out;
	{
		/* Which fields, never their values (a source's uri holds a
		 * password). */
		json_t *fields = json_array();
		json_object_foreach(body, key, v) {
			log_audit("%s changed database %d: %s", who, uid, key);
			json_array_append_new(fields, json_string(key));
		}
		events_add(n, "bdb_updated", "INFO", json_pack("{s:i, s:O?, "
		    "s:o, s:s}", "bdb_uid", uid, "name", json_object_get(doc,
		    "name"), "changed", fields, "user", who));
	}
	*out = bdbs_get_json(n, uid, e);
	rc = *out != NULL ? 0 : -1;
out:
	json_decref(docs);
	json_decref(doc);
	return rc;
}

int
bdbs_delete(struct node *n, int uid, const char *who, struct err *e)
{
	struct store_txn	*t;
	json_t			*doc;
	int64_t			 rev;
	char			 key[SCHEMA_KEY_MAX];
	int			 rc;

	if ((doc = bdb_doc_get(n, uid, &rev, e)) == NULL)
		return -1;
	schema_key_of(SK_BDB, uid, key);
	if ((t = store_txn_new()) == NULL) {
		json_decref(doc);
		return err_set(e, E_INTERNAL, "out of memory");
	}
	store_txn_cmp(t, key, rev);
	store_txn_del(t, key);
	rc = store_txn_commit(n->store, t, e);
	store_txn_free(t);
	if (rc == 0) {
		log_audit("%s deleted database %d (%s)", who, uid,
		    json_string_value(json_object_get(doc, "name")));
		events_add(n, "bdb_deleted", "INFO", json_pack("{s:i, s:O?, "
		    "s:s}", "bdb_uid", uid, "name", json_object_get(doc,
		    "name"), "user", who));
	}
	json_decref(doc);
	return rc;
}

/*
 * replica_sources as answers show them: the password masked, and each
 * source's state from the node that runs the database (this node's live
 * state, or what that node last reported).
 */
static void
bdb_public_sources(struct node *n, json_t *o, json_t *nd, int uid)
{
	json_t			*list = json_object_get(o, "replica_sources");
	json_t			*src = json_array_get(list, 0), *st = NULL;
	struct replica_uri	 u;
	const char		*sync = json_string_value(json_object_get(o,
				    "replica_sync"));
	char			*masked, key[16];

	if (src == NULL)
		return;
	/* Never the stored uri as it is: it holds the password. */
	if (replica_uri_parse(json_string_value(json_object_get(src, "uri")),
	    &u, NULL) == 0 && (masked = replica_uri_masked(&u)) != NULL) {
		json_object_set_new(src, "uri", json_string(masked));
		free(masked);
	} else
		json_object_set_new(src, "uri", json_string(""));
	explicit_bzero(&u, sizeof(u));
	if (nd == NULL)
		st = apply_bdb_replication(n, uid);
	else {
		snprintf(key, sizeof(key), "%d", uid);
		st = json_incref(json_object_get(json_object_get(nd,
		    "replication"), key));
	}
	if (st == NULL)
		st = json_pack("{s:s, s:i, s:s}", "status", "out-of-sync",
		    "lag", 0, "last_error", sync != NULL &&
		    (strcmp(sync, "enabled") == 0 || strcmp(sync,
		    "paused") == 0) ? "the node that runs this database has "
		    "not reported the link yet" : "");
	json_object_update(src, st);
	json_decref(st);
}

static json_t *
bdb_public(struct node *n, json_t *d)
{
	int	 uid = (int)json_integer_value(json_object_get(d, "uid"));
	int	 port = (int)json_integer_value(json_object_get(d, "port"));
	char	 dns[300], euid[32];
	json_t	*o = json_deep_copy(d), *nd;
	int	 up = apply_bdb_up(n, uid);
	int	 node_uid = (int)json_integer_value(json_object_get(d,
		    "node_uid"));
	const char *addr = n->cfg.addr;

	/* Like a private key, the password is accepted, never returned. */
	json_object_del(o, "authentication_redis_pass");
	json_object_del(o, "_rev");
	/* created_at: the first releases' name, an alias for one release. */
	if (json_object_get(o, "created_time") == NULL)
		json_object_set(o, "created_time", json_object_get(o,
		    "created_at"));
	json_object_set(o, "created_at", json_object_get(o, "created_time"));
	json_object_set_new(o, "authentication_redis_pass_set", json_boolean(
	    json_string_length(json_object_get(d,
	    "authentication_redis_pass")) > 0));
	json_object_set_new(o, "status", json_string(up ? "active" :
	    "pending"));
	nd = node_uid == n->uid ? NULL : nodes_list_json(n, node_uid, NULL);
	if (nd != NULL && json_string_value(json_object_get(nd, "addr")))
		addr = json_string_value(json_object_get(nd, "addr"));
	/* The endpoint is on the node that runs the database, whichever
	 * node answers. */
	snprintf(dns, sizeof(dns), "redis-%d.%s", port,
	    apply_cluster(n)->name);
	snprintf(euid, sizeof(euid), "%d:1", uid);
	json_object_set_new(o, "endpoints", json_pack("[{s:s, s:s, s:[s], "
	    "s:i, s:i}]", "uid", euid, "dns_name", dns, "addr", addr, "port",
	    port, "node_uid", node_uid));
	/* Another node's shard: what this node knows is whether that node
	 * is alive. */
	if (nd != NULL)
		json_object_set(o, "status", json_object_get(nd, "status"));
	json_object_set_new(o, "ssl", json_boolean(strcmp(json_string_value(
	    json_object_get(d, "tls_mode")), "enabled") == 0));
	if (json_object_get(o, "replica_sync") == NULL)
		json_object_set_new(o, "replica_sync", json_string("disabled"));
	if (json_object_get(o, "replica_sources") == NULL)
		json_object_set_new(o, "replica_sources", json_array());
	bdb_public_sources(n, o, nd, uid);
	json_decref(nd);
	return o;
}

json_t *
bdbs_get_json(struct node *n, int uid, struct err *e)
{
	json_t	*docs, *d, *out;
	size_t	 i;

	if (uid > 0) {
		if ((d = bdb_doc_get(n, uid, NULL, e)) == NULL)
			return NULL;
		out = bdb_public(n, d);
		json_decref(d);
		return out;
	}
	if ((docs = bdb_docs(n, e)) == NULL)
		return NULL;
	out = json_array();
	json_array_foreach(docs, i, d)
		json_array_append_new(out, bdb_public(n, d));
	json_decref(docs);
	return out;
}

