/*
 * users.c — users in the store, argon2id hashes, and the login path.
 *
 * argon2id is slow on purpose (tens of milliseconds), and the API runs on
 * one thread, so a successful login is remembered for a short time under
 * a keyed hash of (email, password, stored hash): repeated requests of a
 * keep-alive client cost one hash, and any change of the user's stored
 * hash invalidates the entry.  Failed logins are counted per address and
 * slowed down exponentially.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "certs.h"
#include "log.h"
#include "users.h"

#define AUTH_CACHE_SIZE		64
#define AUTH_CACHE_TTL		300
#define FAIL_TABLE_SIZE		256
#define FAIL_FREE		5	/* failures before any delay */
#define FAIL_MAX_DELAY		60
#define FAIL_FORGET		600	/* seconds until a quiet address is forgotten */
#define PASSWORD_MIN		8
#define PASSWORD_MAX		256

static const struct {
	const char	*name;
	enum perm	 max;	/* highest permission the role holds */
	int		 users;	/* may read users */
} role_table[] = {
	{ "admin",		PERM_ADMIN,	1 },
	{ "cluster_viewer",	PERM_VIEW_USERS, 1 },
	{ "db_viewer",		PERM_VIEW,	0 },
};

static struct {
	unsigned char	 tag[32];
	int		 uid;
	time_t		 expires;
} auth_cache[AUTH_CACHE_SIZE];
static unsigned char	auth_cache_key[crypto_generichash_KEYBYTES];
static int		auth_cache_ready;

static struct {
	char		 peer[64];
	int		 failures;
	time_t		 last, blocked_until;
} fail_table[FAIL_TABLE_SIZE];

int
users_role_allows(const char *role, enum perm perm)
{
	size_t i;

	if (perm == PERM_NONE)
		return 1;
	for (i = 0; i < sizeof(role_table) / sizeof(role_table[0]); i++) {
		if (strcmp(role_table[i].name, role) != 0)
			continue;
		if (perm == PERM_VIEW_USERS)
			return role_table[i].users;
		return role_table[i].max >= perm;
	}
	return 0;
}

static int
role_valid(const char *role)
{
	size_t i;

	for (i = 0; i < sizeof(role_table) / sizeof(role_table[0]); i++)
		if (strcmp(role_table[i].name, role) == 0)
			return 1;
	return 0;
}

static int
email_valid(const char *s)
{
	size_t		 len = strlen(s), i;
	const char	*at;

	if (len == 0 || len > 254)
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] == ':' || (unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return 0;
	/* RS logs in with an email: something@something. */
	at = strchr(s, '@');
	return at != NULL && at != s && at[1] != '\0' && strchr(at + 1, '@') == NULL;
}

static int
email_check(const char *email, struct err *e)
{
	if (!email_valid(email))
		return err_set(e, E_INVALID_EMAIL, "the user name must be an email "
		    "address (name@domain, at most 254 characters, no spaces "
		    "or ':')");
	return 0;
}

static int
password_check(const char *password, struct err *e)
{
	if (strlen(password) < PASSWORD_MIN || strlen(password) > PASSWORD_MAX)
		return err_set(e, E_INVALID_PASSWORD, "the password must be "
		    "%d to %d characters long", PASSWORD_MIN, PASSWORD_MAX);
	return 0;
}

int
users_check_new(const char *email, const char *password, struct err *e)
{
	if (email_check(email, e) == -1 || password_check(password, e) == -1)
		return -1;
	return 0;
}

static int
users_hash(const char *password, char *out, struct err *e)
{
	if (crypto_pwhash_str(out, password, strlen(password),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return err_set(e, E_INTERNAL, "cannot hash the password");
	return 0;
}

static int
users_put_doc(struct store_txn *t, int uid, const char *email,
    const char *name, const char *role, const char *hash)
{
	char	 key[64];
	json_t	*doc;
	int	 rc;

	snprintf(key, sizeof(key), "/moat/users/%d", uid);
	doc = json_pack("{s:i, s:s, s:s, s:s, s:s}", "uid", uid, "email",
	    email, "name", name, "role", role, "password_hash", hash);
	rc = store_txn_put_json(t, key, doc);
	json_decref(doc);
	return rc;
}

int
users_put_into(struct store_txn *t, int uid, const char *email,
    const char *name, const char *role, const char *password, struct err *e)
{
	char hash[crypto_pwhash_STRBYTES];

	if (users_hash(password, hash, e) == -1)
		return -1;
	if (users_put_doc(t, uid, email, name, role, hash) == -1)
		return err_set(e, E_INTERNAL, "out of memory");
	return 0;
}

static json_t *
users_public(json_t *doc)
{
	return json_pack("{s:O, s:O, s:O, s:O}", "uid",
	    json_object_get(doc, "uid"), "email", json_object_get(doc, "email"),
	    "name", json_object_get(doc, "name"), "role",
	    json_object_get(doc, "role"));
}

/* All user documents (with hashes, for internal use) and their revs. */
static int
users_load(struct node *n, struct store_kv **kvs, size_t *nkv, struct err *e)
{
	return store_list(n->store, "/moat/users/", kvs, nkv, e);
}

static json_t *
users_find(struct store_kv *kvs, size_t nkv, const char *email, int uid,
    int64_t *rev)
{
	size_t	 i;
	json_t	*doc;

	for (i = 0; i < nkv; i++) {
		if ((doc = json_loads(kvs[i].value, 0, NULL)) == NULL)
			continue;
		if ((email != NULL && strcmp(json_string_value(
		    json_object_get(doc, "email")), email) == 0) ||
		    (uid > 0 && json_integer_value(json_object_get(doc,
		    "uid")) == uid)) {
			if (rev != NULL)
				*rev = kvs[i].mod_rev;
			return doc;
		}
		json_decref(doc);
	}
	return NULL;
}

static int
fail_slot(const char *peer, int create)
{
	time_t	 now = time(NULL);
	int	 i, free_slot = -1, oldest = 0;

	for (i = 0; i < FAIL_TABLE_SIZE; i++) {
		if (fail_table[i].peer[0] != '\0' &&
		    now - fail_table[i].last > FAIL_FORGET)
			fail_table[i].peer[0] = '\0';
		if (fail_table[i].peer[0] == '\0') {
			if (free_slot == -1)
				free_slot = i;
			continue;
		}
		if (strcmp(fail_table[i].peer, peer) == 0)
			return i;
		if (fail_table[i].last < fail_table[oldest].last)
			oldest = i;
	}
	if (!create)
		return -1;
	i = free_slot != -1 ? free_slot : oldest;
	memset(&fail_table[i], 0, sizeof(fail_table[i]));
	snprintf(fail_table[i].peer, sizeof(fail_table[i].peer), "%s", peer);
	return i;
}

static void
fail_record(const char *peer)
{
	int	 i = fail_slot(peer, 1), over;
	time_t	 now = time(NULL);

	fail_table[i].failures++;
	fail_table[i].last = now;
	over = fail_table[i].failures - FAIL_FREE;
	if (over >= 0) {
		/* 4 s, doubling: long enough that a slow argon2 check of the
		 * next attempt cannot outlast it. */
		int delay = over >= 4 ? FAIL_MAX_DELAY : 4 << over;
		if (delay > FAIL_MAX_DELAY)
			delay = FAIL_MAX_DELAY;
		fail_table[i].blocked_until = now + delay;
		log_warn("%d failed logins from %s: refusing it for %d s",
		    fail_table[i].failures, peer, delay);
	}
}

void
users_cache_flush(void)
{
	memset(auth_cache, 0, sizeof(auth_cache));
}

static void
auth_tag(const char *email, const char *password, const char *hash,
    unsigned char *tag)
{
	crypto_generichash_state st;

	if (!auth_cache_ready) {
		randombytes_buf(auth_cache_key, sizeof(auth_cache_key));
		auth_cache_ready = 1;
	}
	crypto_generichash_init(&st, auth_cache_key, sizeof(auth_cache_key), 32);
	crypto_generichash_update(&st, (const unsigned char *)email,
	    strlen(email) + 1);
	crypto_generichash_update(&st, (const unsigned char *)password,
	    strlen(password) + 1);
	crypto_generichash_update(&st, (const unsigned char *)hash,
	    strlen(hash));
	crypto_generichash_final(&st, tag, 32);
}

static int
auth_cached(const unsigned char *tag, int uid)
{
	time_t	now = time(NULL);
	int	i;

	for (i = 0; i < AUTH_CACHE_SIZE; i++)
		if (auth_cache[i].expires > now && auth_cache[i].uid == uid &&
		    sodium_memcmp(auth_cache[i].tag, tag, 32) == 0)
			return 1;
	return 0;
}

static void
auth_remember(const unsigned char *tag, int uid)
{
	static int next;

	memcpy(auth_cache[next].tag, tag, 32);
	auth_cache[next].uid = uid;
	auth_cache[next].expires = time(NULL) + AUTH_CACHE_TTL;
	next = (next + 1) % AUTH_CACHE_SIZE;
}

int
users_authenticate(struct node *n, const char *authz, const char *peer,
    struct auth_user *u, int *retry_after, struct err *e)
{
	unsigned char	 raw[1024], tag[32];
	size_t		 rawlen = 0;
	char		*colon;
	struct store_kv	*kvs = NULL;
	size_t		 nkv = 0;
	json_t		*doc = NULL;
	const char	*hash;
	int		 slot, rc = -1;
	time_t		 now = time(NULL);

	*retry_after = 0;
	if ((slot = fail_slot(peer, 0)) != -1 &&
	    fail_table[slot].blocked_until > now) {
		*retry_after = (int)(fail_table[slot].blocked_until - now);
		return err_set(e, E_RATE_LIMITED, "too many failed logins from "
		    "%s; retry in %d s", peer, *retry_after);
	}
	if (authz == NULL || strncasecmp(authz, "Basic ", 6) != 0)
		return err_set(e, E_UNAUTHORIZED, "authentication required "
		    "(HTTP Basic with a user's email and password)");
	if (sodium_base642bin(raw, sizeof(raw) - 1, authz + 6,
	    strlen(authz + 6), " ", &rawlen, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    (raw[rawlen] = '\0', (colon = strchr((char *)raw, ':')) == NULL)) {
		fail_record(peer);
		return err_set(e, E_UNAUTHORIZED, "malformed Authorization "
		    "header");
	}
	*colon = '\0';
	if (users_load(n, &kvs, &nkv, e) == -1)
		goto out;
	doc = users_find(kvs, nkv, (char *)raw, 0, NULL);
	if (doc == NULL) {
		/* Same cost as a wrong password: no probing for names. */
		char dummy[crypto_pwhash_STRBYTES];
		users_hash("moat-no-such-user", dummy, NULL);
		goto bad;
	}
	hash = json_string_value(json_object_get(doc, "password_hash"));
	u->uid = (int)json_integer_value(json_object_get(doc, "uid"));
	auth_tag((char *)raw, colon + 1, hash, tag);
	if (!auth_cached(tag, u->uid)) {
		if (crypto_pwhash_str_verify(hash, colon + 1,
		    strlen(colon + 1)) != 0)
			goto bad;
		auth_remember(tag, u->uid);
	}
	snprintf(u->email, sizeof(u->email), "%.255s", (char *)raw);
	snprintf(u->role, sizeof(u->role), "%s", json_string_value(
	    json_object_get(doc, "role")));
	if (slot != -1)
		fail_table[slot].peer[0] = '\0';
	rc = 0;
	goto out;
bad:
	fail_record(peer);
	log_warn("failed login for \"%.64s\" from %s", (char *)raw, peer);
	err_set(e, E_UNAUTHORIZED, "invalid username or password");
out:
	sodium_memzero(raw, sizeof(raw));
	json_decref(doc);
	store_kvs_free(kvs, nkv);
	return rc;
}

json_t *
users_get_json(struct node *n, int uid, struct err *e)
{
	struct store_kv	*kvs;
	size_t		 nkv, i;
	json_t		*arr, *doc;

	if (users_load(n, &kvs, &nkv, e) == -1)
		return NULL;
	if (uid > 0) {
		doc = users_find(kvs, nkv, NULL, uid, NULL);
		store_kvs_free(kvs, nkv);
		if (doc == NULL) {
			err_set(e, E_USER_NOT_FOUND, "user %d does not exist",
			    uid);
			return NULL;
		}
		arr = users_public(doc);
		json_decref(doc);
		return arr;
	}
	arr = json_array();
	for (i = 0; i < nkv; i++) {
		if ((doc = json_loads(kvs[i].value, 0, NULL)) == NULL)
			continue;
		json_array_append_new(arr, users_public(doc));
		json_decref(doc);
	}
	store_kvs_free(kvs, nkv);
	return arr;
}

/* Admins other than uid that would remain. */
static int
users_other_admins(struct store_kv *kvs, size_t nkv, int uid)
{
	size_t	 i;
	int	 c = 0;
	json_t	*doc;

	for (i = 0; i < nkv; i++) {
		if ((doc = json_loads(kvs[i].value, 0, NULL)) == NULL)
			continue;
		if (json_integer_value(json_object_get(doc, "uid")) != uid &&
		    strcmp(json_string_value(json_object_get(doc, "role")),
		    "admin") == 0)
			c++;
		json_decref(doc);
	}
	return c;
}

int
users_create(struct node *n, json_t *body, const char *who, json_t **out,
    struct err *e)
{
	const char		*email, *password, *role, *name = NULL;
	struct store_kv		*kvs = NULL;
	size_t			 nkv = 0, i;
	struct store_txn	*t = NULL;
	json_t			*doc = NULL;
	json_error_t		 je;
	char			 key[64];
	int			 uid = 1, rc = -1;

	if (json_unpack_ex(body, &je, JSON_STRICT, "{s:s, s:s, s:s, s?s}",
	    "email", &email, "password", &password, "role", &role, "name",
	    &name) != 0)
		return err_set(e, E_INVALID_SCHEMA, "user: %s (fields: email, "
		    "password, role, name)", je.text);
	if (users_check_new(email, password, e) == -1)
		return -1;
	if (!role_valid(role))
		return err_set(e, E_INVALID_ROLE, "unknown role \"%.32s\": use "
		    "admin, cluster_viewer or db_viewer", role);
	if (users_load(n, &kvs, &nkv, e) == -1)
		return -1;
	if ((doc = users_find(kvs, nkv, email, 0, NULL)) != NULL) {
		err_set(e, E_EMAIL_EXISTS, "a user with email %s exists", email);
		goto out;
	}
	for (i = 0; i < nkv; i++) {
		json_t *d = json_loads(kvs[i].value, 0, NULL);
		int u = (int)json_integer_value(json_object_get(d, "uid"));
		if (u >= uid)
			uid = u + 1;
		json_decref(d);
	}
	snprintf(key, sizeof(key), "/moat/users/%d", uid);
	if ((t = store_txn_new()) == NULL)
		goto out;
	store_txn_cmp(t, key, 0);
	if (users_put_into(t, uid, email, name ? name : email, role, password,
	    e) == -1 || store_txn_commit(n->store, t, e) == -1)
		goto out;
	log_audit("%s created user %d (%s) with role %s", who, uid, email, role);
	*out = users_get_json(n, uid, e);
	rc = *out != NULL ? 0 : -1;
out:
	json_decref(doc);
	store_txn_free(t);
	store_kvs_free(kvs, nkv);
	return rc;
}

int
users_update(struct node *n, int uid, json_t *body, const char *who,
    json_t **out, struct err *e)
{
	const char		*email = NULL, *password = NULL, *role = NULL;
	const char		*name = NULL, *hash;
	struct store_kv		*kvs = NULL;
	size_t			 nkv = 0;
	struct store_txn	*t = NULL;
	json_t			*doc = NULL, *other = NULL;
	json_error_t		 je;
	char			 newhash[crypto_pwhash_STRBYTES], key[64];
	int64_t			 rev = 0;
	int			 rc = -1;

	if (json_unpack_ex(body, &je, JSON_STRICT, "{s?s, s?s, s?s, s?s}",
	    "email", &email, "password", &password, "role", &role, "name",
	    &name) != 0)
		return err_set(e, E_INVALID_SCHEMA, "user: %s (fields: email, "
		    "password, role, name)", je.text);
	if (users_load(n, &kvs, &nkv, e) == -1)
		return -1;
	if ((doc = users_find(kvs, nkv, NULL, uid, &rev)) == NULL) {
		err_set(e, E_USER_NOT_FOUND, "user %d does not exist", uid);
		goto out;
	}
	if (email != NULL && email_check(email, e) == -1)
		goto out;
	if (email != NULL && (other = users_find(kvs, nkv, email, 0, NULL)) &&
	    json_integer_value(json_object_get(other, "uid")) != uid) {
		err_set(e, E_EMAIL_EXISTS, "a user with email %s exists", email);
		goto out;
	}
	if (role != NULL && !role_valid(role)) {
		err_set(e, E_INVALID_ROLE, "unknown role \"%.32s\": use admin, "
		    "cluster_viewer or db_viewer", role);
		goto out;
	}
	if (role != NULL && strcmp(role, "admin") != 0 &&
	    users_other_admins(kvs, nkv, uid) == 0) {
		err_set(e, E_LAST_ADMIN, "user %d is the last admin; make "
		    "another admin first", uid);
		goto out;
	}
	hash = json_string_value(json_object_get(doc, "password_hash"));
	if (password != NULL) {
		if (password_check(password, e) == -1 ||
		    users_hash(password, newhash, e) == -1)
			goto out;
		hash = newhash;
	}
	snprintf(key, sizeof(key), "/moat/users/%d", uid);
	if ((t = store_txn_new()) == NULL)
		goto out;
	store_txn_cmp(t, key, rev);
	users_put_doc(t, uid, email ? email :
	    json_string_value(json_object_get(doc, "email")), name ? name :
	    json_string_value(json_object_get(doc, "name")), role ? role :
	    json_string_value(json_object_get(doc, "role")), hash);
	if (store_txn_commit(n->store, t, e) == -1)
		goto out;
	users_cache_flush();
	log_audit("%s updated user %d:%s%s%s%s", who, uid,
	    email ? " email" : "", name ? " name" : "",
	    role ? " role" : "", password ? " password" : "");
	*out = users_get_json(n, uid, e);
	rc = *out != NULL ? 0 : -1;
out:
	json_decref(doc);
	json_decref(other);
	store_txn_free(t);
	store_kvs_free(kvs, nkv);
	return rc;
}

int
users_delete(struct node *n, int uid, const char *who, struct err *e)
{
	struct store_kv		*kvs = NULL;
	size_t			 nkv = 0;
	struct store_txn	*t = NULL;
	json_t			*doc;
	char			 key[64];
	int64_t			 rev = 0;
	int			 rc = -1;

	if (users_load(n, &kvs, &nkv, e) == -1)
		return -1;
	if ((doc = users_find(kvs, nkv, NULL, uid, &rev)) == NULL) {
		err_set(e, E_USER_NOT_FOUND, "user %d does not exist", uid);
		goto out;
	}
	if (strcmp(json_string_value(json_object_get(doc, "role")),
	    "admin") == 0 && users_other_admins(kvs, nkv, uid) == 0) {
		err_set(e, E_LAST_ADMIN, "user %d is the last admin; make "
		    "another admin first", uid);
		goto out;
	}
	snprintf(key, sizeof(key), "/moat/users/%d", uid);
	if ((t = store_txn_new()) == NULL)
		goto out;
	store_txn_cmp(t, key, rev);
	store_txn_del(t, key);
	if (store_txn_commit(n->store, t, e) == -1)
		goto out;
	users_cache_flush();
	log_audit("%s deleted user %d (%s)", who, uid,
	    json_string_value(json_object_get(doc, "email")));
	rc = 0;
out:
	json_decref(doc);
	store_txn_free(t);
	store_kvs_free(kvs, nkv);
	return rc;
}
