/*
 * users.h — API users, RS's roles and permissions, password hashing
 * (argon2id, on the work pool) and the defences around signing in.
 */
#ifndef MOATD_USERS_H
#define MOATD_USERS_H

#include <jansson.h>

#include "node.h"
#include "store.h"

/* What a route needs; which role holds what is the table in users.c. */
enum perm {
	PERM_NONE,		/* no sign-in needed (bootstrap) */
	PERM_VIEW_CLUSTER,	/* RS view_cluster_info, view_all_nodes_info */
	PERM_UPDATE_CLUSTER,	/* RS update_cluster */
	PERM_VIEW_BDB,		/* RS view_all_bdbs_info */
	PERM_EDIT_BDB,		/* RS create_bdb, update_bdb, delete_bdb */
	PERM_VIEW_USERS,	/* RS view_all_users_info */
	PERM_EDIT_USERS,	/* RS create_new_user, update_user, delete_user */
	PERM_SESSION,		/* any signed-in user (the UI's own session) */
};

struct auth_user {
	int	 uid;
	char	 email[256];
	char	 role[32];
};

struct api_req;

int	 users_check_new(const char *email, const char *password,
	    struct err *e);
/* 1 when role may do what perm needs. */
int	 users_role_allows(const char *role, enum perm perm);
/* The "roles" table for docs and moatadm: [{role, permissions:[...]}]. */
json_t	*users_roles_json(void);

/* Called on the control thread when a sign-in is decided: rc 0 (u is
 * filled) or -1 (e set; retry_after > 0 when rate-limited). */
typedef void (*users_auth_fn)(void *arg, int rc, int retry_after,
	    struct err *e);
/*
 * Check an Authorization header: 0 or -1 when decided at once (a
 * remembered sign-in, a malformed header, a rate-limited address), or
 * API_ASYNC when the password is being checked on the work pool; done is
 * then called later.  u must stay valid until then.
 */
int	 users_authenticate(struct node *n, const char *authorization,
	    const char *peer, struct auth_user *u, int *retry_after,
	    users_auth_fn done, void *arg, struct err *e);
/* An Authorization header's Basic credentials into raw (len bytes; the
 * email, NUL, the password at *password): 0, or E_UNAUTHORIZED (no Basic,
 * malformed, a NUL inside).  The caller wipes raw. */
int	 users_basic_decode(const char *authz, char *raw, size_t len,
	    const char **password, struct err *e);
/* The same with the email and password given directly (the UI's sign-in
 * form). */
int	 users_sign_in(struct node *n, const char *email,
	    const char *password, const char *peer, struct auth_user *u,
	    int *retry_after, users_auth_fn done, void *arg, struct err *e);
/* User uid as stored now (its role may have changed); E_UNAUTHORIZED
 * when the user is gone. */
int	 users_lookup(struct node *n, int uid, struct auth_user *u,
	    struct err *e);
/* The certificate user whose certificate_subject_line names subject
 * (u filled), or E_UNAUTHORIZED saying so. */
int	 users_find_by_subject(struct node *n, const char *subject,
	    struct auth_user *u, struct err *e);
/* Add to t a compare on every certificate admin but uid, at the revision
 * read (docs: the users as listed); returns how many there are. */
int	 users_cmp_cert_admins(struct store_txn *t, json_t *docs, int uid);
/* Forget remembered sign-ins (the users changed). */
void	 users_cache_flush(void);

/* Handlers' work (they return 0, -1 or API_ASYNC). */
json_t	*users_get_json(struct node *n, int uid, struct err *e);
int	 users_create(struct api_req *r, struct err *e);
int	 users_update(struct api_req *r, int uid, struct err *e);
int	 users_delete(struct node *n, int uid, const struct auth_user *by,
	    const char *who, struct err *e);
/* Hash password on the work pool, then run cont on the control thread
 * with the hash (wiped after); returns API_ASYNC. */
typedef int (*users_hash_cont)(struct api_req *r, const char *hash,
	    struct err *e);
int	 users_hash_then(struct api_req *r, const char *password,
	    users_hash_cont cont);

#endif
