/*
 * events.c — the cluster's event log (see events.h).
 *
 * One store key per event, named so that the keys sort by time:
 * <usec since 1970, 16 hex digits>-<node uid>-<sequence>.  A change and
 * its event share one transaction wherever the writer has one, so the
 * log never shows a change that did not happen nor misses one that did.
 * The log keeps the newest EVENTS_KEEP entries; trimming is done in the
 * background (events_trim) rather than on every write, and two nodes
 * trimming at once only delete the same keys twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "events.h"
#include "log.h"
#include "schema.h"

#define EVENTS_KEEP	1000
#define EVENTS_LIMIT	1000	/* most entries one GET returns */

static unsigned events_seq;

static json_t *
events_entry(struct node *n, const char *type, const char *severity,
    json_t *fields, char *key)
{
	struct timeval	 tv;
	char		 ts[ISO_TIME_LEN];
	json_t		*ev;

	gettimeofday(&tv, NULL);
	iso_time(tv.tv_sec, ts);
	snprintf(key, SCHEMA_KEY_MAX, "%s%016llx-%d-%u",
	    schema_prefix(SK_EVENT), (unsigned long long)tv.tv_sec * 1000000ULL
	    + (unsigned long long)tv.tv_usec, n->uid, events_seq++);
	ev = fields != NULL ? fields : json_object();
	if (ev == NULL)
		return NULL;
	json_object_set_new(ev, "time", json_string(ts));
	json_object_set_new(ev, "type", json_string(type));
	json_object_set_new(ev, "severity", json_string(severity));
	if (n->uid > 0)
		json_object_set_new(ev, "node_uid", json_integer(n->uid));
	return ev;
}

int
events_txn_add(struct node *n, struct store_txn *t, const char *type,
    const char *severity, json_t *fields)
{
	char	 key[SCHEMA_KEY_MAX];
	json_t	*ev = events_entry(n, type, severity, fields, key);
	int	 rc;

	if (ev == NULL)
		return -1;
	rc = store_txn_put_json(t, key, ev);
	json_decref(ev);
	return rc;
}

void
events_add(struct node *n, const char *type, const char *severity,
    json_t *fields)
{
	struct store_txn	*t;
	struct err		 e = { 0 };

	if (n->store == NULL || n->uid <= 0) {
		json_decref(fields);
		return;
	}
	if ((t = store_txn_new()) == NULL) {
		json_decref(fields);
		return;
	}
	if (events_txn_add(n, t, type, severity, fields) == -1 ||
	    store_txn_commit(n->store, t, &e) == -1)
		log_error("event %s not recorded: %s", type, err_msg(&e));
	err_clear(&e);
	store_txn_free(t);
}

/* One trimming transaction: 1 when more is left to drop. */
static int
events_trim_once(struct node *n)
{
	struct store_kv		*kv = NULL;
	struct store_txn	*t;
	struct err		 e = { 0 };
	size_t			 nkv = 0, i, drop = 0;
	int			 max;

	if (n->store == NULL || store_list(n->store, schema_prefix(SK_EVENT),
	    &kv, &nkv, &e) == -1) {
		err_clear(&e);
		return 0;
	}
	if (nkv > EVENTS_KEEP && (t = store_txn_new()) != NULL) {
		drop = nkv - EVENTS_KEEP;
		max = store_max_txn_ops(n->store);
		if (max > 0 && drop > (size_t)max)
			drop = (size_t)max;
		for (i = 0; i < drop; i++)
			store_txn_del(t, kv[i].key);
		if (store_txn_commit(n->store, t, &e) == -1) {
			log_error("cannot trim the event log: %s", err_msg(&e));
			drop = 0;
		}
		err_clear(&e);
		store_txn_free(t);
	}
	store_kvs_free(kv, nkv);
	return drop > 0 && nkv - drop > EVENTS_KEEP;
}

void
events_trim(struct node *n)
{
	int rounds;

	/* A transaction holds a bounded number of deletes (etcd's limit):
	 * as many as it takes, within reason for one tick. */
	for (rounds = 0; rounds < 16 && events_trim_once(n); rounds++)
		;
}

/* The event's time from its key (exact to the microsecond). */
static time_t
events_key_time(const char *key)
{
	const char *p = key + strlen(schema_prefix(SK_EVENT));

	return (time_t)(strtoull(p, NULL, 16) / 1000000ULL);
}

json_t *
events_list_json(struct node *n, const struct events_query *q,
    struct err *e)
{
	struct store_kv	*kv = NULL;
	size_t		 nkv = 0, i, k;
	time_t		 st = 0, et = 0;
	json_t		*out, *ev;
	long		 skipped = 0;

	if (q->stime != NULL && iso_parse(q->stime, 1, &st) == -1)
		return err_set(e, E_INVALID_SCHEMA, "stime must be a time like "
		    "2026-01-31T12:00:00Z"), NULL;
	if (q->etime != NULL && iso_parse(q->etime, 1, &et) == -1)
		return err_set(e, E_INVALID_SCHEMA, "etime must be a time like "
		    "2026-01-31T12:00:00Z"), NULL;
	if (q->stime != NULL && q->etime != NULL && et < st)
		return err_set(e, E_INVALID_SCHEMA, "etime is before stime"),
		    NULL;
	if (store_list(n->store, schema_prefix(SK_EVENT), &kv, &nkv, e) == -1)
		return NULL;
	if ((out = json_array()) == NULL) {
		store_kvs_free(kv, nkv);
		return err_set(e, E_INTERNAL, "out of memory"), NULL;
	}
	for (k = 0; k < nkv && (long)json_array_size(out) < q->limit; k++) {
		time_t t;
		i = q->desc ? nkv - 1 - k : k;
		t = events_key_time(kv[i].key);
		if ((q->stime != NULL && t < st) ||
		    (q->etime != NULL && t > et))
			continue;
		if (skipped++ < q->offset)
			continue;
		if ((ev = json_loads(kv[i].value, 0, NULL)) != NULL)
			json_array_append_new(out, ev);
	}
	store_kvs_free(kv, nkv);
	return out;
}

int
events_query_parse(struct events_query *q, const char *stime,
    const char *etime, const char *order, const char *limit,
    const char *offset, struct err *e)
{
	char	*end;
	long	 v;

	memset(q, 0, sizeof(*q));
	q->stime = stime;
	q->etime = etime;
	q->desc = 1;		/* RS's default: newest first */
	q->limit = EVENTS_LIMIT;
	if (order != NULL) {
		if (strcmp(order, "asc") == 0)
			q->desc = 0;
		else if (strcmp(order, "desc") != 0)
			return err_set(e, E_INVALID_SCHEMA, "order must be "
			    "\"asc\" or \"desc\"");
	}
	if (limit != NULL) {
		v = strtol(limit, &end, 10);
		if (*limit < '0' || *limit > '9' || *end != '\0' || v < 1 ||
		    v > EVENTS_LIMIT)
			return err_set(e, E_INVALID_SCHEMA, "limit must be a "
			    "number from 1 to %d", EVENTS_LIMIT);
		q->limit = v;
	}
	if (offset != NULL) {
		v = strtol(offset, &end, 10);
		if (*offset < '0' || *offset > '9' || *end != '\0' ||
		    v > 1000000)
			return err_set(e, E_INVALID_SCHEMA, "offset must be a "
			    "number from 0");
		q->offset = v;
	}
	return 0;
}
