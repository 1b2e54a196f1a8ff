/*
 * events.h — the cluster's event log, kept in the store (bounded) and
 * read with GET /v1/logs: who changed which certificate, policy, user or
 * database, failed sign-ins, nodes going down and up, alerts raised and
 * cleared.  An event is a flat JSON object with RS's "time", "type" and
 * "severity" plus fields of its own; never a secret (no key, password or
 * token).
 */
#ifndef MOATD_EVENTS_H
#define MOATD_EVENTS_H

#include <jansson.h>

#include "node.h"
#include "store.h"

/* Add an event to t, so that it commits with the change it records.
 * fields (a JSON object, may be NULL) is taken. */
int	 events_txn_add(struct node *n, struct store_txn *t,
	    const char *type, const char *severity, json_t *fields);
/* Record an event on its own (nothing else to commit with); a failure is
 * logged, never passed on.  fields is taken. */
void	 events_add(struct node *n, const char *type, const char *severity,
	    json_t *fields);
/* Drop the oldest events beyond what the log keeps. */
void	 events_trim(struct node *n);

/* GET /v1/logs's parameters. */
struct events_query {
	const char	*stime, *etime;	/* NULL: unbounded */
	int		 desc;		/* newest first */
	long		 limit, offset;
};

/* Check RS's query parameters (each NULL when absent). */
int	 events_query_parse(struct events_query *q, const char *stime,
	    const char *etime, const char *order, const char *limit,
	    const char *offset, struct err *e);
/* The events that match q, as a new array. */
json_t	*events_list_json(struct node *n, const struct events_query *q,
	    struct err *e);

#endif
