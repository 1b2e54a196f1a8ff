/*
 * users.c — users in the store, RS's roles, argon2id hashes, and the
 * sign-in path.
 *
 * argon2id is slow on purpose (tens of milliseconds and 64 MiB), so it
 * never runs on the control thread: a sign-in that needs it, and every
 * new password, is hashed on the work pool and continues on the control
 * thread when done.  A successful sign-in is remembered for a short time
 * under a keyed hash of (email, password, stored hash): repeated requests
 * of a keep-alive client cost one hash, and any change of the user's
 * stored hash invalidates the entry.  Failed sign-ins are counted per
 * address and slowed down exponentially.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "api.h"
#include "events.h"
#include "log.h"
#include "mtls.h"
#include "schema.h"
#include "users.h"
#include "workpool.h"

#define AUTH_CACHE_SIZE		64
#define AUTH_CACHE_TTL		300
#define FAIL_TABLE_SIZE		4096
#define NAME_MAX_LEN		256	/* a user's display name */
/* RS: 5 failed sign-ins within 15 minutes lock the user for 30. */
#define LOCK_FAILURES		5
#define LOCK_WINDOW		(15 * 60)
#define LOCK_TIME		(30 * 60)
#define FAIL_FREE		5	/* failures before any delay */
#define FAIL_MAX_DELAY		60
#define FAIL_FORGET		600	/* seconds until a quiet address is forgotten */
#define PASSWORD_MIN		8
#define PASSWORD_MAX		256
#define UPDATE_TRIES		5	/* a write that lost a race re-reads */
/* Sign-ins waiting for a hashing thread: beyond this, a burst (from many
 * addresses, which the per-address back-off does not slow) is told to
 * come back instead of making every later sign-in wait behind it. */
#define SIGN_IN_QUEUE_MAX	64

#define P(x)	(1u << (x))

/* RS's roles and what each may do (RS REST API permissions page). */
static const struct {
	const char	*name;
	unsigned	 perms;
} role_table[] = {
	{ "admin",		P(PERM_VIEW_CLUSTER) | P(PERM_UPDATE_CLUSTER) |
				P(PERM_VIEW_BDB) | P(PERM_EDIT_BDB) |
				P(PERM_VIEW_USERS) | P(PERM_EDIT_USERS) },
	{ "cluster_member",	P(PERM_VIEW_CLUSTER) | P(PERM_VIEW_BDB) |
				P(PERM_EDIT_BDB) },
	{ "cluster_viewer",	P(PERM_VIEW_CLUSTER) | P(PERM_VIEW_BDB) },
	{ "db_member",		P(PERM_VIEW_CLUSTER) | P(PERM_VIEW_BDB) |
				P(PERM_EDIT_BDB) },
	{ "db_viewer",		P(PERM_VIEW_CLUSTER) | P(PERM_VIEW_BDB) },
	{ "user_manager",	P(PERM_VIEW_CLUSTER) | P(PERM_VIEW_BDB) |
				P(PERM_VIEW_USERS) | P(PERM_EDIT_USERS) },
	{ "none",		0 },
};
#define NROLES (sizeof(role_table) / sizeof(role_table[0]))

static const char *const perm_names[] = {
	[PERM_NONE] = "none",
	[PERM_VIEW_CLUSTER] = "view_cluster_info",
	[PERM_UPDATE_CLUSTER] = "update_cluster",
	[PERM_VIEW_BDB] = "view_all_bdbs_info",
	[PERM_EDIT_BDB] = "create_bdb, update_bdb, delete_bdb",
	[PERM_VIEW_USERS] = "view_all_users_info",
	[PERM_EDIT_USERS] = "create_new_user, update_user, delete_user",
	[PERM_SESSION] = "sign in to the UI",
};

static struct {
	unsigned char	 tag[32];
	int		 uid;
	time_t		 expires;
} auth_cache[AUTH_CACHE_SIZE];
static unsigned char	auth_cache_key[crypto_generichash_KEYBYTES];
static int		auth_cache_ready;

/*
 * Failed sign-ins, per address (back-off) and per user name (lockout):
 * two tables, so that failures from many addresses cannot push a user's
 * lock out, nor many names an address's back-off.  A full table evicts
 * the oldest entry that does not block anything at the moment.
 */
struct fail_entry {
	char		 key[256];	/* address, or lowercased user name */
	int		 failures;
	time_t		 first, last, blocked_until;
	/* The event log hears of an address at most once a minute. */
	time_t		 event_at;
	int		 unreported;
};
static struct fail_entry	fail_table[FAIL_TABLE_SIZE];
static struct fail_entry	lock_table[FAIL_TABLE_SIZE];
/* When every entry of fail_table blocks (thousands of addresses failing
 * at once), the addresses without one share this entry: they are slowed
 * down together rather than not at all. */
static struct fail_entry	fail_overflow;

int
users_role_allows(const char *role, enum perm perm)
{
	size_t i;

	if (perm == PERM_NONE || perm == PERM_SESSION)
		return 1;
	for (i = 0; i < NROLES; i++)
		if (strcmp(role_table[i].name, role) == 0)
			return (role_table[i].perms & P(perm)) != 0;
	return 0;
}

json_t *
users_roles_json(void)
{
	json_t	*out = json_array(), *perms;
	size_t	 i, p;

	for (i = 0; i < NROLES; i++) {
		perms = json_array();
		for (p = 1; p < sizeof(perm_names) / sizeof(perm_names[0]); p++)
			if (role_table[i].perms & P(p))
				json_array_append_new(perms,
				    json_string(perm_names[p]));
		json_array_append_new(out, json_pack("{s:s, s:o}", "role",
		    role_table[i].name, "permissions", perms));
	}
	return out;
}

static int
role_valid(const char *role)
{
	size_t i;

	for (i = 0; i < NROLES; i++)
		if (strcmp(role_table[i].name, role) == 0)
			return 1;
	return 0;
}

static int
role_check(const char *role, struct err *e)
{
	if (!role_valid(role))
		return err_set(e, E_INVALID_ROLE, "unknown role \"%.32s\": use "
		    "admin, cluster_member, cluster_viewer, db_member, "
		    "db_viewer, user_manager or none", role);
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

static int
name_check(const char *name, struct err *e)
{
	size_t i;

	if (name == NULL)
		return 0;
	if (strlen(name) > NAME_MAX_LEN)
		return err_set(e, E_INVALID_SCHEMA, "name must be at most %d "
		    "characters", NAME_MAX_LEN);
	for (i = 0; name[i] != '\0'; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return err_set(e, E_INVALID_SCHEMA, "name must not "
			    "contain control characters");
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
fail_find(struct fail_entry *tab, const char *key, int create, int forget)
{
	time_t	 now = time(NULL);
	int	 i, free_slot = -1, oldest = -1;

	for (i = 0; i < FAIL_TABLE_SIZE; i++) {
		if (tab[i].key[0] != '\0' && now - tab[i].last > forget &&
		    tab[i].blocked_until <= now)
			tab[i].key[0] = '\0';
		if (tab[i].key[0] == '\0') {
			if (free_slot == -1)
				free_slot = i;
			continue;
		}
		if (strcmp(tab[i].key, key) == 0)
			return i;
		if (tab[i].blocked_until <= now && (oldest == -1 ||
		    tab[i].last < tab[oldest].last))
			oldest = i;
	}
	if (!create)
		return -1;
	if ((i = free_slot != -1 ? free_slot : oldest) == -1)
		return -1;	/* everything blocks: keep it so */
	memset(&tab[i], 0, sizeof(tab[i]));
	snprintf(tab[i].key, sizeof(tab[i].key), "%s", key);
	tab[i].first = now;
	return i;
}

static int
fail_slot(const char *peer, int create)
{
	return fail_find(fail_table, peer, create, FAIL_FORGET);
}

/* 1 when fail_table could take a new address (a free entry, or one
 * that blocks nothing and can go). */
static int
fail_has_room(void)
{
	time_t	now = time(NULL);
	int	i;

	for (i = 0; i < FAIL_TABLE_SIZE; i++)
		if (fail_table[i].key[0] == '\0' ||
		    fail_table[i].blocked_until <= now)
			return 1;
	return 0;
}

/* The entry that holds peer's failures: its own, or the shared one when
 * the table has no room (NULL when neither has any yet). */
static struct fail_entry *
fail_entry_of(const char *peer, int create)
{
	int i = fail_slot(peer, create);

	if (i != -1)
		return &fail_table[i];
	if (create || (!fail_has_room() && fail_overflow.failures > 0))
		return &fail_overflow;
	return NULL;
}

/* The lock table's key of a user name: lowercased, as emails compare. */
static void
lock_key(const char *email, char *out, size_t len)
{
	size_t i;

	for (i = 0; email[i] != '\0' && i < len - 1; i++)
		out[i] = (char)tolower((unsigned char)email[i]);
	out[i] = '\0';
}

/* Seconds email stays locked, 0 when it is not. */
static int
lock_left(const char *email)
{
	char	 key[256];
	int	 i;
	time_t	 now = time(NULL);

	lock_key(email, key, sizeof(key));
	if ((i = fail_find(lock_table, key, 0, LOCK_WINDOW)) == -1 ||
	    lock_table[i].blocked_until <= now)
		return 0;
	return (int)(lock_table[i].blocked_until - now);
}

static void
lock_record(struct node *n, const char *email, const char *shown)
{
	char	 key[256];
	int	 i;
	time_t	 now = time(NULL);

	lock_key(email, key, sizeof(key));
	if ((i = fail_find(lock_table, key, 1, LOCK_WINDOW)) == -1)
		return;
	if (now - lock_table[i].first > LOCK_WINDOW) {
		lock_table[i].first = now;
		lock_table[i].failures = 0;
	}
	lock_table[i].failures++;
	lock_table[i].last = now;
	if (lock_table[i].failures >= LOCK_FAILURES &&
	    lock_table[i].blocked_until <= now) {
		lock_table[i].blocked_until = now + LOCK_TIME;
		log_warn("user \"%s\" locked for %d minutes after %d failed "
		    "sign-ins in %d minutes", shown, LOCK_TIME / 60,
		    lock_table[i].failures, LOCK_WINDOW / 60);
		events_add(n, "user_locked", "WARNING", json_pack("{s:s, s:i}",
		    "user", shown, "minutes", LOCK_TIME / 60));
	}
}

/* A new password (an admin's reset) ends a lock. */
static void
lock_clear(const char *email)
{
	char	 key[256];
	int	 i;

	lock_key(email, key, sizeof(key));
	if ((i = fail_find(lock_table, key, 0, LOCK_WINDOW)) != -1)
		memset(&lock_table[i], 0, sizeof(lock_table[i]));
}

static void
fail_record(const char *peer)
{
	struct fail_entry	*f = fail_entry_of(peer, 1);
	time_t			 now = time(NULL);
	int			 over;

	if (now - f->last > FAIL_FORGET && f == &fail_overflow)
		f->failures = 0;
	f->failures++;
	f->last = now;
	over = f->failures - FAIL_FREE;
	if (over >= 0) {
		/* 4 s, doubling: long enough that a slow argon2 check of the
		 * next attempt cannot outlast it. */
		int delay = over >= 4 ? FAIL_MAX_DELAY : 4 << over;
		if (delay > FAIL_MAX_DELAY)
			delay = FAIL_MAX_DELAY;
		f->blocked_until = now + delay;
		log_warn("%d failed logins from %s: refusing it for %d s",
		    f->failures, f == &fail_overflow ? "addresses without an "
		    "entry of their own" : peer, delay);
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


/* ---- the work pool's part ---- */

/* A password check or a hash, done off the control thread.  The job owns
 * copies of what it needs: the request may be gone when it finishes. */
struct pw_job {
	struct node	*n;
	char		*password;	/* wiped */
	char		 hash[crypto_pwhash_STRBYTES];
	int		 ok;
	/* sign-in */
	char		 email[256], peer[64];
	int		 uid;
	char		 role[32];
	unsigned char	 tag[32];
	struct auth_user *u;
	users_auth_fn	 done;
	void		*arg;
	/* hashing for a writer */
	struct api_req	*r;
	users_hash_cont	 cont;
};

static void
pw_job_free(struct pw_job *j)
{
	if (j->password != NULL) {
		sodium_memzero(j->password, strlen(j->password));
		free(j->password);
	}
	sodium_memzero(j, sizeof(*j));
	free(j);
}

static void
pw_verify_work(void *arg)
{
	struct pw_job *j = arg;

	/* An unknown user costs the same as a wrong password: no probing
	 * for names. */
	if (j->uid <= 0) {
		char	dummy[crypto_pwhash_STRBYTES];
		int	rc = crypto_pwhash_str(dummy, j->password,
			    strlen(j->password),
			    crypto_pwhash_OPSLIMIT_INTERACTIVE,
			    crypto_pwhash_MEMLIMIT_INTERACTIVE);
		(void)rc;	/* refused whatever it gives */
		j->ok = 0;
		return;
	}
	j->ok = crypto_pwhash_str_verify(j->hash, j->password,
	    strlen(j->password)) == 0;
}

static void
pw_hash_work(void *arg)
{
	struct pw_job *j = arg;

	j->ok = crypto_pwhash_str(j->hash, j->password, strlen(j->password),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0;
}

/* The name as given, printable ASCII only: the logs are read by people
 * and tools, never a channel for a forged line. */
static void
shown_name(const char *email, char *user, size_t len)
{
	size_t i;

	for (i = 0; email[i] != '\0' && i < len - 1; i++)
		user[i] = email[i] >= 0x20 && email[i] < 0x7f ? email[i] : '?';
	user[i] = '\0';
}

/*
 * A password check is about to start: it counts as a failure of the
 * address and of the user until it succeeds (then both are cleared).
 * Counted before the check, not after, so that a burst of guesses sent
 * together meets the limits while they are still being hashed.
 */
static void
attempt_record(struct node *n, const char *email, int known,
    const char *peer)
{
	char user[65];

	shown_name(email, user, sizeof(user));
	fail_record(peer);
	/* Only users can be locked: made-up names cannot fill the table
	 * and push a real user's count out. */
	if (known)
		lock_record(n, email, user);
}

/* It succeeded: what attempt_record counted is forgotten. */
static void
attempt_forget(const char *email, const char *peer)
{
	char	 key[256];
	int	 slot;

	if ((slot = fail_slot(peer, 0)) != -1)
		fail_table[slot].key[0] = '\0';
	/* This attempt was not a failure after all: a lock that it alone
	 * brought about ends (the right password on the fifth try). */
	lock_key(email, key, sizeof(key));
	if ((slot = fail_find(lock_table, key, 0, LOCK_WINDOW)) != -1 &&
	    --lock_table[slot].failures < LOCK_FAILURES)
		lock_table[slot].blocked_until = 0;
}

static int
auth_fail(struct node *n, const char *email, int known, const char *peer,
    struct err *e)
{
	char	 user[65];
	int	 slot;
	time_t	 now = time(NULL);

	shown_name(email, user, sizeof(user));
	log_warn("failed sign-in for \"%s\" from %s", user, peer);
	/*
	 * The cluster's event log, which every viewer reads: a name that is
	 * no user is often a password typed in the wrong field, so it is not
	 * repeated there; and one address says at most once a minute how
	 * many times it failed, so that a flood cannot push the log's real
	 * events out.
	 */
	if ((slot = fail_slot(peer, 0)) == -1)
		return err_set(e, E_UNAUTHORIZED, "invalid username or "
		    "password");
	if (now - fail_table[slot].event_at < 60) {
		fail_table[slot].unreported++;
	} else {
		events_add(n, "failed_sign_in", "WARNING", json_pack("{s:s, "
		    "s:s, s:i}", "user", known ? user : "(not a user)", "peer",
		    peer, "count", fail_table[slot].unreported + 1));
		fail_table[slot].event_at = now;
		fail_table[slot].unreported = 0;
	}
	return err_set(e, E_UNAUTHORIZED, "invalid username or password");
}

static void
pw_verify_done(void *arg)
{
	struct pw_job	*j = arg;
	struct err	 e = { 0 };
	int		 rc = -1;

	if (j->ok) {
		auth_remember(j->tag, j->uid);
		j->u->uid = j->uid;
		snprintf(j->u->email, sizeof(j->u->email), "%s", j->email);
		snprintf(j->u->role, sizeof(j->u->role), "%s", j->role);
		attempt_forget(j->email, j->peer);
		rc = 0;
	} else {
		auth_fail(j->n, j->email, j->uid > 0, j->peer, &e);
	}
	j->done(j->arg, rc, 0, &e);
	err_clear(&e);
	pw_job_free(j);
}

/* 1 (E_RATE_LIMITED, *retry_after set) while peer is held back after
 * failed sign-ins; else 0 and *retry_after is 0. */
static int
addr_blocked(const char *peer, int *retry_after, struct err *e)
{
	struct fail_entry	*fe;
	time_t			 now = time(NULL);

	*retry_after = 0;
	if ((fe = fail_entry_of(peer, 0)) == NULL || fe->blocked_until <= now)
		return 0;
	*retry_after = (int)(fe->blocked_until - now);
	err_set(e, E_RATE_LIMITED, "too many failed sign-ins from %s; retry "
	    "in %d s", peer, *retry_after);
	return 1;
}

int
users_basic_decode(const char *authz, char *raw, size_t len,
    const char **password, struct err *e)
{
	size_t	 rawlen = 0;
	char	*colon;

	if (authz == NULL || strncasecmp(authz, "Basic ", 6) != 0)
		return err_set(e, E_UNAUTHORIZED, "authentication required "
		    "(HTTP Basic with a user's email and password)");
	if (sodium_base642bin((unsigned char *)raw, len - 1, authz + 6,
	    strlen(authz + 6), " ", &rawlen, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    (raw[rawlen] = '\0', (colon = strchr(raw, ':')) == NULL)) {
		sodium_memzero(raw, len);
		return err_set(e, E_UNAUTHORIZED, "malformed Authorization "
		    "header");
	}
	/* A NUL would cut the password short: "secret\0anything" must not
	 * sign in as "secret". */
	if (memchr(raw, '\0', rawlen) != NULL) {
		sodium_memzero(raw, len);
		return err_set(e, E_UNAUTHORIZED, "malformed Authorization "
		    "header (a NUL byte)");
	}
	*colon = '\0';
	*password = colon + 1;
	return 0;
}

int
users_authenticate(struct node *n, const char *authz, const char *peer,
    struct auth_user *u, int *retry_after, users_auth_fn done, void *arg,
    struct err *e)
{
	char		 raw[1024];
	const char	*password;
	int		 rc;

	if (addr_blocked(peer, retry_after, e))
		return -1;
	if (users_basic_decode(authz, raw, sizeof(raw), &password, e) == -1) {
		/* No header at all is no failure: the client asks first. */
		if (authz != NULL && strncasecmp(authz, "Basic ", 6) == 0)
			fail_record(peer);
		return -1;
	}
	rc = users_sign_in(n, raw, password, peer, u, retry_after, done, arg,
	    e);
	sodium_memzero(raw, sizeof(raw));
	return rc;
}

static int
sign_in_remembered(const char *email, const char *password,
    const struct user_doc *u)
{
	unsigned char tag[32];

	if (u->uid <= 0)
		return 0;
	auth_tag(email, password, u->password_hash, tag);
	return auth_cached(tag, u->uid);
}

int
users_sign_in(struct node *n, const char *email, const char *password,
    const char *peer, struct auth_user *u, int *retry_after,
    users_auth_fn done, void *arg, struct err *e)
{
	json_t		*docs = NULL, *d;
	struct user_doc	 ud, found;
	struct pw_job	*j = NULL;
	size_t		 i;
	int		 slot, rc = -1;

	if (addr_blocked(peer, retry_after, e))
		return -1;
	if ((*retry_after = lock_left(email)) > 0)
		return err_set(e, E_RATE_LIMITED, "too many failed sign-ins for "
		    "this user; retry in %d minutes (or have an admin set a new "
		    "password)", (*retry_after + 59) / 60);
	memset(&found, 0, sizeof(found));
	if ((docs = schema_list(n->store, SK_USER, e)) == NULL)
		goto out;
	/* Without case, as emails compare; but two users stored before that
	 * rule, differing only in case, each keep signing in as themselves. */
	json_array_foreach(docs, i, d)
		if (user_doc_decode(d, &ud) == 0 && strcasecmp(ud.email,
		    email) == 0 && (found.uid == 0 || strcmp(ud.email,
		    email) == 0))
			found = ud;
	/* A certificate user has no password: to a password, it is no
	 * user (and costs the same hash as one). */
	if (found.uid > 0 && user_doc_is_cert(&found))
		memset(&found, 0, sizeof(found));
	/* A remembered sign-in costs no hash: it goes on regardless. */
	if (workpool_pending(n->wp) >= SIGN_IN_QUEUE_MAX &&
	    !sign_in_remembered(email, password, &found)) {
		*retry_after = 1;
		err_set(e, E_RATE_LIMITED, "too many sign-ins are being checked "
		    "at the moment; retry in 1 s");
		goto out;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->password = strdup(password)) == NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	j->n = n;
	j->u = u;
	j->done = done;
	j->arg = arg;
	snprintf(j->email, sizeof(j->email), "%.255s", email);
	snprintf(j->peer, sizeof(j->peer), "%s", peer);
	if (found.uid > 0) {
		j->uid = found.uid;
		snprintf(j->role, sizeof(j->role), "%s", found.role);
		snprintf(j->hash, sizeof(j->hash), "%s", found.password_hash);
		auth_tag(email, password, found.password_hash, j->tag);
		if (auth_cached(j->tag, found.uid)) {
			u->uid = found.uid;
			snprintf(u->email, sizeof(u->email), "%s", j->email);
			snprintf(u->role, sizeof(u->role), "%s", found.role);
			if ((slot = fail_slot(peer, 0)) != -1)
				fail_table[slot].key[0] = '\0';
			rc = 0;
			goto out;
		}
	}
	attempt_record(n, email, found.uid > 0, peer);
	if (workpool_run(n->wp, pw_verify_work, pw_verify_done, j) == -1) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	j = NULL;
	rc = API_ASYNC;
out:
	if (j != NULL)
		pw_job_free(j);
	json_decref(docs);
	return rc;
}

/* The current role of user uid (NULL when the user is gone); *email
 * too.  For sessions, whose user may change meanwhile. */
int
users_lookup(struct node *n, int uid, struct auth_user *u, struct err *e)
{
	json_t		*docs, *d;
	struct user_doc	 ud;
	size_t		 i;
	int		 rc = -1;

	if ((docs = schema_list(n->store, SK_USER, e)) == NULL)
		return -1;
	json_array_foreach(docs, i, d) {
		if (user_doc_decode(d, &ud) == 0 && ud.uid == uid) {
			u->uid = uid;
			snprintf(u->email, sizeof(u->email), "%s", ud.email);
			snprintf(u->role, sizeof(u->role), "%s", ud.role);
			rc = 0;
		}
	}
	json_decref(docs);
	if (rc == -1)
		err_set(e, E_UNAUTHORIZED, "this session's user no longer "
		    "exists; sign in again");
	return rc;
}

static void
pw_hash_done(void *arg)
{
	struct pw_job	*j = arg;
	struct api_req	*r = j->r;
	struct err	 e = { 0 };
	int		 rc;

	r->in_job = 0;
	if (r->req == NULL)
		rc = err_set(&e, E_INTERNAL, "the client went away");
	else if (!j->ok)
		rc = err_set(&e, E_INTERNAL, "cannot hash the password");
	else
		rc = j->cont(r, j->hash, &e);
	pw_job_free(j);
	if (rc != API_ASYNC)
		api_finish(r, rc, &e);
}

int
users_hash_then(struct api_req *r, const char *password, users_hash_cont cont)
{
	struct pw_job	*j;
	struct err	 e = { 0 };

	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->password = strdup(password)) == NULL) {
		free(j);
		err_set(&e, E_INTERNAL, "out of memory");
		api_finish(r, -1, &e);
		return API_ASYNC;
	}
	j->n = r->n;
	j->r = r;
	j->cont = cont;
	r->in_job = 1;
	api_hold(r);
	if (workpool_run(r->n->wp, pw_hash_work, pw_hash_done, j) == -1) {
		pw_job_free(j);
		r->in_job = 0;
		err_set(&e, E_INTERNAL, "out of memory");
		api_finish(r, -1, &e);
	}
	return API_ASYNC;
}

/* ---- reading ---- */

static json_t *
users_public(const json_t *doc)
{
	struct user_doc	 u;
	json_t		*out;

	if (user_doc_decode(doc, &u) == -1)
		return json_pack("{s:O}", "uid", json_object_get(doc, "uid"));
	out = json_pack("{s:i, s:s, s:s, s:s, s:s}", "uid", u.uid, "email",
	    u.email, "name", u.name, "role", u.role, "auth_method",
	    u.auth_method);
	if (out != NULL && u.certificate_subject_line != NULL)
		json_object_set_new(out, "certificate_subject_line",
		    json_string(u.certificate_subject_line));
	return out;
}

/* The document of uid or with email among docs (borrowed), or NULL. */
static json_t *
users_find(json_t *docs, const char *email, int uid)
{
	struct user_doc	 u;
	size_t		 i;
	json_t		*d;

	json_array_foreach(docs, i, d) {
		if (user_doc_decode(d, &u) == -1)
			continue;
		/* Emails compare without case, as mail systems do: ADMIN@x
		 * and admin@x are one user. */
		if ((email != NULL && strcasecmp(u.email, email) == 0) ||
		    (uid > 0 && u.uid == uid))
			return d;
	}
	return NULL;
}

/* The certificate user other than uid whose subject line names the same
 * subject as line (borrowed), or NULL. */
static json_t *
users_find_subject(json_t *docs, const char *line, int uid)
{
	struct user_doc	 u;
	size_t		 i;
	json_t		*d;

	json_array_foreach(docs, i, d)
		if (user_doc_decode(d, &u) == 0 && u.uid != uid &&
		    user_doc_is_cert(&u) && u.certificate_subject_line != NULL &&
		    tls_subject_line_equal(u.certificate_subject_line, line))
			return d;
	return NULL;
}

int
users_find_by_subject(struct node *n, const char *subject,
    struct auth_user *au, struct err *e)
{
	struct user_doc	 u;
	json_t		*docs, *d;

	if ((docs = schema_list(n->store, SK_USER, e)) == NULL)
		return -1;
	if ((d = users_find_subject(docs, subject, 0)) == NULL ||
	    user_doc_decode(d, &u) == -1) {
		json_decref(docs);
		return err_set(e, E_UNAUTHORIZED, "the client certificate "
		    "verifies, but no user has certificate_subject_line "
		    "\"%.300s\"", subject);
	}
	au->uid = u.uid;
	snprintf(au->email, sizeof(au->email), "%s", u.email);
	snprintf(au->role, sizeof(au->role), "%s", u.role);
	json_decref(docs);
	return 0;
}

/* The certificate fields of a new or changed user: auth_method (NULL:
 * unchanged, or "regular" for a new user), the subject line and the
 * password, consistent with each other.  cur: the user as stored, NULL
 * for a new one. */
static int
users_check_method(const char *method, const char *line,
    const char *password, const struct user_doc *cur, json_t *docs,
    struct err *e)
{
	int cert;

	if (method != NULL && strcmp(method, "regular") != 0 &&
	    strcmp(method, "certificate") != 0)
		return err_set(e, E_INVALID_SCHEMA, "auth_method must be "
		    "\"regular\" or \"certificate\"");
	if (cur != NULL && method != NULL && strcmp(method,
	    cur->auth_method) != 0)
		return err_set(e, E_INVALID_SCHEMA, "auth_method cannot change "
		    "(user %d signs in with %s): create a new user instead",
		    cur->uid, user_doc_is_cert(cur) ? "a certificate" :
		    "a password");
	cert = cur != NULL ? user_doc_is_cert(cur) : method != NULL &&
	    strcmp(method, "certificate") == 0;
	if (cert && password != NULL)
		return err_set(e, E_INVALID_SCHEMA, "a user with auth_method "
		    "certificate has no password");
	if (!cert && line != NULL)
		return err_set(e, E_INVALID_SCHEMA, "certificate_subject_line "
		    "is for users with auth_method certificate");
	if (cur == NULL && cert && line == NULL)
		return err_set(e, E_INVALID_SCHEMA, "auth_method certificate "
		    "needs certificate_subject_line (the subject of the user's "
		    "client certificate, e.g. \"CN=alice, O=Example\")");
	if (cur == NULL && !cert && password == NULL)
		return err_set(e, E_INVALID_SCHEMA, "password is required (or "
		    "auth_method certificate with certificate_subject_line)");
	if (line != NULL && tls_subject_line_check(line, e) == -1)
		return -1;
	if (line != NULL && users_find_subject(docs, line, cur != NULL ?
	    cur->uid : 0) != NULL)
		return err_set(e, E_EMAIL_EXISTS, "another user has the same "
		    "certificate_subject_line");
	return 0;
}

json_t *
users_get_json(struct node *n, int uid, struct err *e)
{
	json_t	*docs, *out, *d;
	size_t	 i;

	if ((docs = schema_list(n->store, SK_USER, e)) == NULL)
		return NULL;
	if (uid > 0) {
		if ((d = users_find(docs, NULL, uid)) == NULL)
			err_set(e, E_USER_NOT_FOUND, "user %d does not exist",
			    uid);
		out = d != NULL ? users_public(d) : NULL;
		json_decref(docs);
		return out;
	}
	out = json_array();
	json_array_foreach(docs, i, d)
		json_array_append_new(out, users_public(d));
	json_decref(docs);
	return out;
}

/*
 * Add to t a compare on every admin but uid, at the revision read: the
 * decision "another admin remains" holds at commit time or the commit
 * fails (two admins demoting each other through two nodes at once).
 * Returns how many users besides uid pred holds for (admins; admins who
 * sign in with a certificate; certificate users, whose subjects must
 * stay unique).
 */
static int
users_cmp_matching(struct store_txn *t, json_t *docs, int uid,
    int (*pred)(const struct user_doc *))
{
	struct user_doc	 u;
	char		 key[SCHEMA_KEY_MAX];
	size_t		 i;
	json_t		*d;
	int		 c = 0;

	json_array_foreach(docs, i, d) {
		if (user_doc_decode(d, &u) == -1 || u.uid == uid || !pred(&u))
			continue;
		store_txn_cmp(t, schema_key_of(SK_USER, u.uid, key),
		    json_integer_value(json_object_get(d, "_rev")));
		c++;
	}
	return c;
}

static int
is_admin(const struct user_doc *u)
{
	return strcmp(u->role, "admin") == 0;
}

static int
is_cert_admin(const struct user_doc *u)
{
	return is_admin(u) && user_doc_is_cert(u);
}

static int
is_cert_user(const struct user_doc *u)
{
	return user_doc_is_cert(u);
}

/* A user_manager manages users, not admins (or it could make itself
 * one). */
static int
users_may_touch(const struct auth_user *by, const char *old_role,
    const char *new_role, struct err *e)
{
	if (strcmp(by->role, "admin") == 0)
		return 0;
	if ((old_role != NULL && strcmp(old_role, "admin") == 0) ||
	    (new_role != NULL && strcmp(new_role, "admin") == 0))
		return err_set(e, E_FORBIDDEN, "only an admin may create, "
		    "change or delete an admin user");
	return 0;
}

/* ---- writers ---- */

static int
users_create_commit(struct api_req *r, const char *hash, struct err *e)
{
	const char		*email, *role, *name = NULL;
	struct user_doc		 u;
	struct store_txn	*t = NULL;
	json_t			*docs = NULL, *d, *doc = NULL;
	char			 key[SCHEMA_KEY_MAX];
	size_t			 i;
	int			 uid = 1, rc = -1;

	const char		*method = NULL, *line = NULL;

	json_unpack(r->body, "{s:s, s:s, s?s, s?s, s?s}", "email", &email,
	    "role", &role, "name", &name, "auth_method", &method,
	    "certificate_subject_line", &line);
	if ((docs = schema_list(r->n->store, SK_USER, e)) == NULL)
		return -1;
	if (users_find(docs, email, 0) != NULL) {
		err_set(e, E_EMAIL_EXISTS, "a user with email %s exists", email);
		goto out;
	}
	if (line != NULL && users_find_subject(docs, line, 0) != NULL) {
		err_set(e, E_EMAIL_EXISTS, "another user has the same "
		    "certificate_subject_line");
		goto out;
	}
	json_array_foreach(docs, i, d)
		if (json_integer_value(json_object_get(d, "uid")) >= uid)
			uid = (int)json_integer_value(json_object_get(d,
			    "uid")) + 1;
	u.uid = uid;
	u.email = email;
	u.name = name ? name : email;
	u.role = role;
	u.password_hash = hash;
	u.auth_method = method != NULL ? method : "regular";
	u.certificate_subject_line = line;
	schema_key_of(SK_USER, uid, key);
	if ((t = store_txn_new()) == NULL || (doc = user_doc_encode(&u)) ==
	    NULL) {
		err_set(e, E_INTERNAL, "out of memory");
		goto out;
	}
	store_txn_cmp(t, key, 0);
	/* No other certificate user got the same subject meanwhile. */
	if (line != NULL)
		users_cmp_matching(t, docs, uid, is_cert_user);
	store_txn_put_json(t, key, doc);
	events_txn_add(r->n, t, "user_created", "INFO", json_pack("{s:i, "
	    "s:s, s:s, s:s}", "uid", uid, "email", email, "role", role, "user",
	    r->who));
	if (store_txn_commit(r->n->store, t, e) == -1)
		goto out;
	log_audit("%s created user %d (%s) with role %s", r->who, uid, email,
	    role);
	r->resp = users_get_json(r->n, uid, e);
	rc = r->resp != NULL ? 0 : -1;
out:
	json_decref(doc);
	json_decref(docs);
	store_txn_free(t);
	return rc;
}

#define USER_FIELDS	"email, password, role, name, auth_method, " \
			"certificate_subject_line"

int
users_create(struct api_req *r, struct err *e)
{
	const char	*email, *password = NULL, *role, *name = NULL;
	const char	*method = NULL, *line = NULL;
	json_t		*docs;
	json_error_t	 je;
	int		 rc;

	if (json_unpack_ex(r->body, &je, JSON_STRICT, "{s:s, s?s, s:s, s?s, "
	    "s?s, s?s}", "email", &email, "password", &password, "role", &role,
	    "name", &name, "auth_method", &method, "certificate_subject_line",
	    &line) != 0)
		return err_set(e, E_INVALID_SCHEMA, "user: %s (fields: "
		    USER_FIELDS ")", je.text);
	if ((docs = schema_list(r->n->store, SK_USER, e)) == NULL)
		return -1;
	rc = users_check_method(method, line, password, NULL, docs, e);
	/* Checked here too, so that a taken email costs no hash. */
	if (rc == 0 && users_find(docs, email, 0) != NULL)
		rc = err_set(e, E_EMAIL_EXISTS, "a user with email %s exists",
		    email);
	json_decref(docs);
	if (rc == -1 ||
	    (password != NULL ? users_check_new(email, password, e) :
	    email_check(email, e)) == -1 ||
	    name_check(name, e) == -1 ||
	    role_check(role, e) == -1 ||
	    users_may_touch(&r->user, NULL, role, e) == -1)
		return -1;
	if (password == NULL)	/* a certificate user: nothing to hash */
		return users_create_commit(r, "", e);
	return users_hash_then(r, password, users_create_commit);
}

/*
 * Decide a change of user uid on a fresh read of every user and commit
 * it; when someone changed a user the decision read (the transaction
 * compares them), read and decide again.  decide adds its writes to t,
 * or fails with the reason; *u is uid's document as read.
 */
typedef int (*users_decide_fn)(json_t *docs, json_t *cur,
		    const struct user_doc *u, struct store_txn *t, void *arg,
		    struct err *e);

static int
users_write(struct node *n, int uid, users_decide_fn decide, void *arg,
    struct err *e)
{
	struct store_txn	*t = NULL;
	struct user_doc		 u;
	json_t			*docs = NULL, *cur;
	char			 key[SCHEMA_KEY_MAX];
	int			 tries, rc = -1;

	schema_key_of(SK_USER, uid, key);
	for (tries = 0; tries < UPDATE_TRIES; tries++) {
		json_decref(docs);
		store_txn_free(t);
		t = NULL;
		if ((docs = schema_list(n->store, SK_USER, e)) == NULL)
			return -1;
		if ((cur = users_find(docs, NULL, uid)) == NULL ||
		    user_doc_decode(cur, &u) == -1) {
			err_set(e, E_USER_NOT_FOUND, "user %d does not exist",
			    uid);
			goto out;
		}
		if ((t = store_txn_new()) == NULL) {
			err_set(e, E_INTERNAL, "out of memory");
			goto out;
		}
		store_txn_cmp(t, key, json_integer_value(json_object_get(cur,
		    "_rev")));
		if (decide(docs, cur, &u, t, arg, e) == -1)
			goto out;
		if (store_txn_commit(n->store, t, e) == 0) {
			rc = 0;
			goto out;
		}
		if (e == NULL || e->code != E_CONFLICT)
			goto out;
		/* Someone changed a user we decided on: decide again. */
		err_clear(e);
	}
	err_set(e, E_CONFLICT, "the users kept changing meanwhile; retry");
out:
	json_decref(docs);
	store_txn_free(t);
	return rc;
}

/* Demoting or deleting the last admin is refused; otherwise t compares
 * every other admin, so that the decision holds when it commits. */
static int
users_keep_an_admin(struct node *n, json_t *docs, const struct user_doc *u,
    int losing, struct store_txn *t, struct err *e)
{
	if (strcmp(u->role, "admin") == 0 && losing &&
	    users_cmp_matching(t, docs, u->uid, is_admin) == 0)
		return err_set(e, E_LAST_ADMIN, "user %d is the last admin; "
		    "make another user an admin first", u->uid);
	/* Without passwords, the certificate admins are the only way in. */
	if (strcmp(u->role, "admin") == 0 && losing && user_doc_is_cert(u))
		return mtls_keep_cert_admin(n, docs, u->uid, t, e);
	return 0;
}

int
users_cmp_cert_admins(struct store_txn *t, json_t *docs, int uid)
{
	return users_cmp_matching(t, docs, uid, is_cert_admin);
}

struct users_update_arg {
	struct api_req	*r;
	const char	*email, *role, *name, *newhash, *line;
};

static int
users_update_decide(json_t *docs, json_t *cur, const struct user_doc *old,
    struct store_txn *t, void *arg, struct err *e)
{
	struct users_update_arg	*a = arg;
	struct user_doc		 u = *old;
	char			 key[SCHEMA_KEY_MAX];
	json_t			*other, *doc;
	int			 rc;

	if (users_may_touch(&a->r->user, old->role, a->role, e) == -1)
		return -1;
	if (a->email != NULL && (other = users_find(docs, a->email, 0)) !=
	    NULL && other != cur)
		return err_set(e, E_EMAIL_EXISTS, "a user with email %s exists",
		    a->email);
	if (a->line != NULL && users_find_subject(docs, a->line, old->uid))
		return err_set(e, E_EMAIL_EXISTS, "another user has the same "
		    "certificate_subject_line");
	if (a->line != NULL)
		users_cmp_matching(t, docs, old->uid, is_cert_user);
	if (users_keep_an_admin(a->r->n, docs, old, a->role != NULL &&
	    strcmp(a->role, "admin") != 0, t, e) == -1)
		return -1;
	if (a->line != NULL)
		u.certificate_subject_line = a->line;
	if (a->email != NULL)
		u.email = a->email;
	if (a->name != NULL)
		u.name = a->name;
	if (a->role != NULL)
		u.role = a->role;
	if (a->newhash != NULL)
		u.password_hash = a->newhash;
	if ((doc = user_doc_encode(&u)) == NULL)
		return err_set(e, E_INTERNAL, "out of memory");
	rc = store_txn_put_json(t, schema_key_of(SK_USER, u.uid, key), doc);
	json_decref(doc);
	return rc == 0 ? 0 : err_set(e, E_INTERNAL, "out of memory");
}

static int
users_update_commit(struct api_req *r, const char *newhash, struct err *e)
{
	struct users_update_arg	 a = { r, NULL, NULL, NULL, newhash, NULL };
	int			 uid = api_param_uid(r);

	json_unpack(r->body, "{s?s, s?s, s?s, s?s}", "email", &a.email, "role",
	    &a.role, "name", &a.name, "certificate_subject_line", &a.line);
	if (users_write(r->n, uid, users_update_decide, &a, e) == -1)
		return -1;
	log_audit("%s updated user %d:%s%s%s%s%s", r->who, uid,
	    a.email ? " email" : "", a.name ? " name" : "",
	    a.role ? " role" : "", newhash ? " password" : "",
	    a.line ? " certificate_subject_line" : "");
	/* What changed, never the password itself. */
	events_add(r->n, "user_updated", "INFO", json_pack("{s:i, s:s, "
	    "s:[s*s*s*s*s*]}", "uid", uid, "user", r->who, "changed", a.email ?
	    "email" : NULL, a.name ? "name" : NULL, a.role ? "role" : NULL,
	    newhash ? "password" : NULL, a.line ? "certificate_subject_line" :
	    NULL));
	r->resp = users_get_json(r->n, uid, e);
	if (newhash != NULL && r->resp != NULL &&
	    json_string_value(json_object_get(r->resp, "email")) != NULL)
		lock_clear(json_string_value(json_object_get(r->resp,
		    "email")));
	return r->resp != NULL ? 0 : -1;
}

int
users_update(struct api_req *r, int uid, struct err *e)
{
	const char	*email = NULL, *password = NULL, *role = NULL;
	const char	*name = NULL, *method = NULL, *line = NULL;
	json_error_t	 je;
	json_t		*docs, *cur;
	struct user_doc	 old;
	int		 rc = 0;

	if (json_unpack_ex(r->body, &je, JSON_STRICT, "{s?s, s?s, s?s, s?s, "
	    "s?s, s?s}", "email", &email, "password", &password, "role", &role,
	    "name", &name, "auth_method", &method, "certificate_subject_line",
	    &line) != 0)
		return err_set(e, E_INVALID_SCHEMA, "user: %s (fields: "
		    USER_FIELDS ")", je.text);
	if ((email != NULL && email_check(email, e) == -1) ||
	    name_check(name, e) == -1 ||
	    (role != NULL && role_check(role, e) == -1) ||
	    (password != NULL && password_check(password, e) == -1))
		return -1;
	/* Refuse before hashing what would be refused after. */
	if ((docs = schema_list(r->n->store, SK_USER, e)) == NULL)
		return -1;
	if ((cur = users_find(docs, NULL, uid)) == NULL ||
	    user_doc_decode(cur, &old) == -1)
		rc = err_set(e, E_USER_NOT_FOUND, "user %d does not exist", uid);
	else if ((rc = users_check_method(method, line, password, &old, docs,
	    e)) == 0)
		rc = users_may_touch(&r->user, old.role, role, e);
	json_decref(docs);
	if (rc == -1)
		return -1;
	if (password != NULL)
		return users_hash_then(r, password, users_update_commit);
	return users_update_commit(r, NULL, e);
}

struct users_delete_arg {
	struct node		*n;
	const struct auth_user	*by;
	char			 email[256];
};

static int
users_delete_decide(json_t *docs, json_t *cur, const struct user_doc *u,
    struct store_txn *t, void *arg, struct err *e)
{
	struct users_delete_arg	*a = arg;
	char			 key[SCHEMA_KEY_MAX];

	if (users_may_touch(a->by, u->role, NULL, e) == -1 ||
	    users_keep_an_admin(a->n, docs, u, 1, t, e) == -1)
		return -1;
	snprintf(a->email, sizeof(a->email), "%s", u->email);
	return store_txn_del(t, schema_key_of(SK_USER, u->uid, key)) == 0 ? 0 :
	    err_set(e, E_INTERNAL, "out of memory");
}

int
users_delete(struct node *n, int uid, const struct auth_user *by,
    const char *who, struct err *e)
{
	struct users_delete_arg a;

	memset(&a, 0, sizeof(a));
	a.n = n;
	a.by = by;
	if (users_write(n, uid, users_delete_decide, &a, e) == -1)
		return -1;
	log_audit("%s deleted user %d (%s)", who, uid, a.email);
	events_add(n, "user_deleted", "INFO", json_pack("{s:i, s:s?, s:s}",
	    "uid", uid, "email", a.email, "user", who));
	return 0;
}
