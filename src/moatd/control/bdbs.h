/*
 * bdbs.h — the writer of databases: their documents in the store (RS
 * field names).  The shard and the endpoint each node runs for them are
 * apply's (apply/apply_bdbs.h).
 */
#ifndef MOATD_BDBS_H
#define MOATD_BDBS_H

#include <jansson.h>

#include "node.h"

int	 bdbs_create(struct node *n, json_t *body, const char *who,
	    json_t **out, struct err *e);
int	 bdbs_update(struct node *n, int uid, json_t *body, const char *who,
	    json_t **out, struct err *e);
int	 bdbs_delete(struct node *n, int uid, const char *who, struct err *e);
/* One database (uid > 0) or the list (uid 0). */
json_t	*bdbs_get_json(struct node *n, int uid, struct err *e);

#endif
