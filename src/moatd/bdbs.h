/*
 * bdbs.h — databases: their documents in the store (RS field names), the
 * shard and the endpoint this node runs for each.
 */
#ifndef MOATD_BDBS_H
#define MOATD_BDBS_H

#include <jansson.h>

#include "node.h"

int	 bdbs_init(struct node *n, struct err *e);
void	 bdbs_shutdown(struct node *n);
int	 bdbs_create(struct node *n, json_t *body, const char *who,
	    json_t **out, struct err *e);
int	 bdbs_update(struct node *n, int uid, json_t *body, const char *who,
	    json_t **out, struct err *e);
int	 bdbs_delete(struct node *n, int uid, const char *who, struct err *e);
/* One database (uid > 0) or the list (uid 0). */
json_t	*bdbs_get_json(struct node *n, int uid, struct err *e);
/*
 * Make shards and endpoints match the store.  data_changed: the proxy
 * certificate or the data policy changed, so every endpoint gets a new
 * TLS context.
 */
void	 bdbs_apply(struct node *n, int data_changed);
/* Close database connections that negotiated below min_version. */
int	 bdbs_close_below(struct node *n, int min_version);

#endif
