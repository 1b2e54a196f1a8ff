/*
 * test_schema.c — the store layout: keys made and recognised the same
 * way, what apply acts on, and the codecs' round trips.  Includes
 * schema.c itself (a moatd source, not part of libmoat).
 */
#include "schema.c"

#include "t.h"

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

static void
t_classify(void)
{
	static const struct {
		const char		*key;
		enum schema_kind	 kind;
		int			 id;
		int			 config;
	} rows[] = {
		{ "/moat/cluster",		SK_CLUSTER,	0, 1 },
		{ "/moat/ca",			SK_CA,		0, 1 },
		{ "/moat/schema",		SK_VERSION,	0, 0 },
		{ "/moat/certs/api",		SK_CERT,	CERT_API, 1 },
		{ "/moat/certs/metrics_exporter", SK_CERT, CERT_METRICS, 1 },
		{ "/moat/users/12",		SK_USER,	12, 1 },
		{ "/moat/bdbs/3",		SK_BDB,		3, 1 },
		{ "/moat/nodes/2",		SK_NODE,	2, 0 },
		{ "/moat/alive/2",		SK_ALIVE,	2, 0 },
		{ "/moat/claim",		SK_CLAIM,	0, 0 },
		/* A watch that resumed after a gap reports its prefix:
		 * anything may have changed, so apply must run. */
		{ "/moat/",			SK_OTHER,	0, 1 },
		{ "/moat/clusterX",		SK_OTHER,	0, 1 },
	};
	size_t	i;
	int	id;

	for (i = 0; i < NELEMS(rows); i++) {
		T_CASE(rows[i].key);
		CHECK_INT(schema_classify(rows[i].key, &id), rows[i].kind);
		CHECK_INT(id, rows[i].id);
		CHECK_INT(schema_is_config(rows[i].key), rows[i].config);
	}
}

/* Every key the module makes is recognised as what it was made for. */
static void
t_round_trip_keys(void)
{
	static const enum schema_kind coll[] = { SK_CERT, SK_USER, SK_BDB,
	    SK_NODE, SK_ALIVE };
	char	buf[SCHEMA_KEY_MAX];
	size_t	i;
	int	id, got;

	for (i = 0; i < NELEMS(coll); i++) {
		T_CASE(schema_prefix(coll[i]));
		id = coll[i] == SK_CERT ? CERT_SYNCER : 41;
		schema_key_of(coll[i], id, buf);
		CHECK_INT(schema_classify(buf, &got), coll[i]);
		CHECK_INT(got, id);
		CHECK(strncmp(buf, SCHEMA_ROOT, strlen(SCHEMA_ROOT)) == 0);
	}
	T_CASE("singletons");
	CHECK_INT(schema_classify(schema_key(SK_CLUSTER), NULL), SK_CLUSTER);
	CHECK_INT(schema_classify(schema_key(SK_CA), NULL), SK_CA);
	CHECK(schema_key(SK_USER) == NULL);
	CHECK(schema_prefix(SK_CLUSTER) == NULL);
}

static void
t_cluster_doc(void)
{
	struct cluster_doc	 c;
	struct err		 e = { E_OK, NULL };
	json_t			*doc, *pub;

	T_CASE("new cluster document decodes, with both time names");
	doc = cluster_doc_new("c.example.com", "2026-11-29T00:00:00Z");
	CHECK_INT(cluster_doc_decode(doc, &c, &e), 0);
	CHECK_STR(c.name, "c.example.com");
	CHECK_INT(c.policy.min_control, TLS_V12);
	pub = cluster_doc_public(&c);
	CHECK_STR(json_string_value(json_object_get(pub, "created_time")),
	    "2026-11-29T00:00:00Z");
	CHECK_STR(json_string_value(json_object_get(pub, "created_at")),
	    "2026-11-29T00:00:00Z");
	json_decref(pub);
	cluster_doc_clear(&c);

	T_CASE("a document of the first releases (created_at) still reads");
	json_object_del(doc, "created_time");
	json_object_set_new(doc, "created_at", json_string("2025-01-01T00:00:00Z"));
	CHECK_INT(cluster_doc_decode(doc, &c, &e), 0);
	CHECK_STR(c.created_time, "2025-01-01T00:00:00Z");
	cluster_doc_clear(&c);

	T_CASE("a damaged document is an error, not a crash");
	json_object_del(doc, "min_data_TLS_version");
	CHECK_INT(cluster_doc_decode(doc, &c, &e), -1);
	CHECK_INT(e.code, E_STORE);
	err_clear(&e);
	json_decref(doc);
}

static void
t_user_doc(void)
{
	struct user_doc	 u = { 7, "a@b.co", "A", "db_viewer", "$argon2id$x",
			    "regular", NULL }, v;
	struct user_doc	 c = { 8, "c@b.co", "C", "admin", "", "certificate",
			    "CN=c, O=Example" };
	json_t		*j = user_doc_encode(&u), *k = user_doc_encode(&c);

	T_CASE("user document round trip");
	CHECK_INT(user_doc_decode(j, &v), 0);
	CHECK_INT(v.uid, 7);
	CHECK_STR(v.role, "db_viewer");
	CHECK_STR(v.password_hash, "$argon2id$x");
	CHECK_STR(v.auth_method, "regular");
	CHECK_INT(user_doc_is_cert(&v), 0);
	CHECK_INT(v.certificate_subject_line == NULL, 1);

	T_CASE("a certificate user's document round trip");
	CHECK_INT(user_doc_decode(k, &v), 0);
	CHECK_INT(user_doc_is_cert(&v), 1);
	CHECK_STR(v.certificate_subject_line, "CN=c, O=Example");

	T_CASE("a user stored before auth_method has a password");
	json_object_del(j, "auth_method");
	CHECK_INT(user_doc_decode(j, &v), 0);
	CHECK_STR(v.auth_method, "regular");
	json_decref(j);
	json_decref(k);
}

/* Subject lines as operators write them, compared as sets. */
static void
t_subject_lines(void)
{
	static const struct {
		const char	*a, *b;
		int		 eq;
	} rows[] = {
		{ "CN=alice, O=Example", "O=Example,CN=alice", 1 },
		{ "cn=alice,o=Example", "CN=alice, O=Example", 1 },
		{ "CN=alice, O=Example", "CN=alice, O=example", 0 },
		{ "CN=alice", "CN=alice, O=Example", 0 },
		{ "CN=a\\,b, O=x", "O=x, CN=a\\2Cb", 1 },
		{ "CN=alice+OU=ops", "OU=ops, CN=alice", 1 },
		{ "emailAddress=a@b, CN=x", "CN=x, E=a@b", 1 },
		/* CN "x\" and O "Corp" is not CN "x\,O=Corp": an escaped
		 * backslash does not escape the comma after it. */
		{ "CN=x\\\\,O=Corp", "CN=x\\,O=Corp", 0 },
		{ "CN=x\\\\,O=Corp", "O=Corp, CN=x\\5C", 1 },
	};
	struct err	e = { 0 };
	size_t		i;

	T_CASE("subject lines compare as sets of attribute=value pairs");
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		CHECK_INT(tls_subject_line_equal(rows[i].a, rows[i].b),
		    rows[i].eq);
	T_CASE("subject lines that do not parse, or name no CN");
	CHECK_INT(tls_subject_line_check("CN=alice, O=Example", &e), 0);
	CHECK_INT(tls_subject_line_check("O=Example", &e), -1);
	CHECK_INT(e.code, E_INVALID_SCHEMA);
	err_clear(&e);
	CHECK_INT(tls_subject_line_check("CN=alice, junk", &e), -1);
	err_clear(&e);
	CHECK_INT(tls_subject_line_check("CN=", &e), -1);
	err_clear(&e);
	CHECK_INT(tls_subject_line_check("", &e), -1);
	err_clear(&e);
}

/* RS's uri form, and what must never reach redis.conf or the wire. */
static void
t_replica_uri(void)
{
	static const struct {
		const char	*uri;
		int		 ok;
		const char	*user, *password, *host;
		int		 port;
		const char	*masked;
	} rows[] = {
		{ "redis://:pw@127.0.0.1:12000", 1, "", "pw", "127.0.0.1",
		    12000, "redis://:********@127.0.0.1:12000" },
		{ "redis://admin:p%40ss@db.example:6379/", 1, "admin", "p@ss",
		    "db.example", 6379, "redis://admin:********@db.example:6379" },
		/* The last '@' ends the credentials. */
		{ "redis://:a@b@h:1", 1, "", "a@b", "h", 1,
		    "redis://:********@h:1" },
		{ "redis://h:2", 1, "", "", "h", 2, "redis://h:2" },
		{ "rediss://:x@[::1]:3", 1, "", "x", "::1", 3,
		    "redis://:********@[::1]:3" },
		{ "http://h:1", 0, NULL, NULL, NULL, 0, NULL },
		{ "redis://h", 0, NULL, NULL, NULL, 0, NULL },
		{ "redis://h:0", 0, NULL, NULL, NULL, 0, NULL },
		{ "redis://h:70000", 0, NULL, NULL, NULL, 0, NULL },
		{ "redis://h:12x", 0, NULL, NULL, NULL, 0, NULL },
		{ "redis://:pw@:5", 0, NULL, NULL, NULL, 0, NULL },
		/* A quote or a space would escape redis.conf's quoting. */
		{ "redis://:a%22b@h:1", 0, NULL, NULL, NULL, 0, NULL },
		{ "redis://:a b@h:1", 0, NULL, NULL, NULL, 0, NULL },
		{ "redis://:a%0Ab@h:1", 0, NULL, NULL, NULL, 0, NULL },
		{ "redis://h/x:1", 0, NULL, NULL, NULL, 0, NULL },
		/* The host reaches log lines: no line break, no control. */
		{ "redis://h%0A:1", 0, NULL, NULL, NULL, 0, NULL },
		{ "redis://h\nx:1", 0, NULL, NULL, NULL, 0, NULL },
		{ "redis://[::1\n]:1", 0, NULL, NULL, NULL, 0, NULL },
		{ "redis://[]:1", 0, NULL, NULL, NULL, 0, NULL },
		{ "", 0, NULL, NULL, NULL, 0, NULL },
	};
	struct replica_uri	 u;
	struct err		 e = { 0 };
	size_t			 i;
	char			*m;

	for (i = 0; i < NELEMS(rows); i++) {
		T_CASE(rows[i].uri);
		CHECK_INT(replica_uri_parse(rows[i].uri, &u, &e),
		    rows[i].ok ? 0 : -1);
		if (!rows[i].ok) {
			CHECK_INT(e.code, E_INVALID_SCHEMA);
			/* The error never repeats the password. */
			CHECK(strstr(err_msg(&e), "pw") == NULL);
			err_clear(&e);
			continue;
		}
		CHECK_STR(u.user, rows[i].user);
		CHECK_STR(u.password, rows[i].password);
		CHECK_STR(u.host, rows[i].host);
		CHECK_INT(u.port, rows[i].port);
		m = replica_uri_masked(&u);
		CHECK_STR(m, rows[i].masked);
		free(m);
	}
	T_CASE("NULL uri");
	CHECK_INT(replica_uri_parse(NULL, &u, &e), -1);
	err_clear(&e);
}

int
main(void)
{
	t_classify();
	t_replica_uri();
	t_round_trip_keys();
	t_cluster_doc();
	t_user_doc();
	t_subject_lines();
	return T_DONE();
}
