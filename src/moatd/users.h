/*
 * users.h — API users, roles, password hashing (argon2id) and the
 * defences around logging in.
 */
#ifndef MOATD_USERS_H
#define MOATD_USERS_H

#include <jansson.h>

#include "node.h"
#include "store.h"

/* What a role may do; the table in users.c. */
enum perm {
	PERM_NONE,		/* no login needed (bootstrap) */
	PERM_VIEW,		/* read cluster, nodes, certificates */
	PERM_VIEW_USERS,	/* read users */
	PERM_ADMIN,		/* change anything */
};

struct auth_user {
	int	 uid;
	char	 email[256];
	char	 role[32];
};

int	 users_check_new(const char *email, const char *password,
	    struct err *e);
int	 users_put_into(struct store_txn *t, int uid, const char *email,
	    const char *name, const char *role, const char *password,
	    struct err *e);
/* 1 when role may do what perm needs. */
int	 users_role_allows(const char *role, enum perm perm);
/*
 * Check an Authorization header.  E_UNAUTHORIZED, or E_RATE_LIMITED with
 * *retry_after seconds when peer failed too often recently.
 */
int	 users_authenticate(struct node *n, const char *authorization,
	    const char *peer, struct auth_user *u, int *retry_after,
	    struct err *e);
json_t	*users_get_json(struct node *n, int uid, struct err *e);
int	 users_create(struct node *n, json_t *body, const char *who,
	    json_t **out, struct err *e);
int	 users_update(struct node *n, int uid, json_t *body, const char *who,
	    json_t **out, struct err *e);
int	 users_delete(struct node *n, int uid, const char *who, struct err *e);
/* Forget cached logins (after any user change). */
void	 users_cache_flush(void);

#endif
