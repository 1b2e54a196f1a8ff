/*
 * jobs.c — see jobs.h.
 *
 * The renewal job's settings are RS's cert_rotation_job_settings, kept
 * in the store (SK_JOBS): {cron_expression, enabled,
 * expiry_days_before_rotation}.  The cron expression says in which
 * minutes the job looks for certificates to renew; each node checks it
 * once per minute, and a change of the settings runs the job at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "alerts.h"
#include "ca.h"
#include "cron.h"
#include "certs.h"
#include "events.h"
#include "jobs.h"
#include "log.h"
#include "certacme.h"
#include "ocsp.h"
#include "schema.h"

#define JOBS_TICK_S	5
#define TRIM_EVERY	12	/* ticks: once a minute */

#define DEFAULT_CRON		"0 * * * *"	/* hourly */
#define DEFAULT_DAYS_BEFORE	60
#define MAX_DAYS_BEFORE		90		/* RS's range: 1-90 */

struct jobs {
	struct node	*n;
	struct event	*ev;
	unsigned	 ticks;
	time_t		 last_minute;	/* the cron minute last checked */
	int		 sealed;	/* nothing left in clear */
	int		 renew_now;	/* settings changed: run it now */
	char		 last_error[256];
};

/* ---- settings ---- */

/* The stored settings with defaults filled: {cert_rotation_job_settings:
 * {cron_expression, enabled, expiry_days_before_rotation}}. */
static json_t *
jobs_settings(struct node *n, int64_t *rev, struct err *e)
{
	struct err	 ge = { 0 };
	json_t		*doc, *crt;
	char		*val = NULL;
	int		 rc;

	if (rev != NULL)
		*rev = 0;
	rc = store_get(n->store, schema_key(SK_JOBS), &val, rev, &ge);
	if (rc == -1) {
		if (e != NULL)
			*e = ge;
		else
			err_clear(&ge);
		return NULL;
	}
	doc = rc == 0 ? json_loads(val, 0, NULL) : NULL;
	free(val);
	crt = json_object_get(doc, "cert_rotation_job_settings");
	crt = json_pack("{s:s, s:b, s:i}", "cron_expression",
	    json_string_value(json_object_get(crt, "cron_expression")) ?
	    json_string_value(json_object_get(crt, "cron_expression")) :
	    DEFAULT_CRON, "enabled", json_object_get(crt, "enabled") == NULL ||
	    json_is_true(json_object_get(crt, "enabled")),
	    "expiry_days_before_rotation", json_object_get(crt,
	    "expiry_days_before_rotation") != NULL ? (int)json_integer_value(
	    json_object_get(crt, "expiry_days_before_rotation")) :
	    DEFAULT_DAYS_BEFORE);
	json_decref(doc);
	return json_pack("{s:o}", "cert_rotation_job_settings", crt);
}

json_t *
jobs_settings_json(struct node *n, struct err *e)
{
	json_t *out = jobs_settings(n, NULL, e);

	if (out != NULL && n->jobs != NULL && n->jobs->last_error[0] != '\0')
		json_object_set_new(json_object_get(out,
		    "cert_rotation_job_settings"), "last_error",
		    json_string(n->jobs->last_error));
	return out;
}

int
jobs_settings_put(struct node *n, const json_t *body, const char *who,
    json_t **out, struct err *e)
{
	struct store_txn	*t = NULL;
	json_t			*cur = NULL, *crt, *v, *given;
	const char		*k;
	int64_t			 rev;
	int			 rc = -1, tries;

	if (!json_is_object(body) || json_object_size(body) == 0)
		return err_set(e, E_INVALID_SCHEMA, "expected "
		    "{\"cert_rotation_job_settings\": {...}}");
	json_object_foreach((json_t *)body, k, v)
		if (strcmp(k, "cert_rotation_job_settings") != 0)
			return err_set(e, E_INVALID_SCHEMA, "unknown job "
			    "\"%.64s\"; moat schedules "
			    "cert_rotation_job_settings", k);
	given = json_object_get(body, "cert_rotation_job_settings");
	if (!json_is_object(given))
		return err_set(e, E_INVALID_SCHEMA, "cert_rotation_job_settings "
		    "must be an object {cron_expression, enabled, "
		    "expiry_days_before_rotation}");
	json_object_foreach(given, k, v) {
		if (strcmp(k, "enabled") == 0) {
			if (!json_is_boolean(v))
				return err_set(e, E_INVALID_SCHEMA, "enabled "
				    "must be true or false");
		} else if (strcmp(k, "expiry_days_before_rotation") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > MAX_DAYS_BEFORE)
				return err_set(e, E_INVALID_SCHEMA,
				    "expiry_days_before_rotation must be a "
				    "number of days from 1 to %d",
				    MAX_DAYS_BEFORE);
		} else if (strcmp(k, "cron_expression") == 0) {
			if (!json_is_string(v) ||
			    !cron_valid(json_string_value(v)))
				return err_set(e, E_INVALID_SCHEMA,
				    "cron_expression must be five cron fields "
				    "(minute hour day month weekday, in UTC), "
				    "such as \"0 * * * *\"");
		} else
			return err_set(e, E_INVALID_SCHEMA, "cert_rotation_job_"
			    "settings: unknown field \"%.64s\" "
			    "(cron_expression, enabled, "
			    "expiry_days_before_rotation)", k);
	}
	/* Two PUTs at once through two nodes: each merges its fields over
	 * what the other stored, rather than one failing. */
	for (tries = 0; tries < 3; tries++) {
		json_decref(cur);
		store_txn_free(t);
		t = NULL;
		if ((cur = jobs_settings(n, &rev, e)) == NULL)
			return -1;
		crt = json_object_get(cur, "cert_rotation_job_settings");
		json_object_update(crt, given);
		if ((t = store_txn_new()) == NULL) {
			err_set(e, E_INTERNAL, "out of memory");
			goto out;
		}
		store_txn_cmp(t, schema_key(SK_JOBS), rev);
		store_txn_put_json(t, schema_key(SK_JOBS), cur);
		events_txn_add(n, t, "job_scheduler_changed", "INFO", json_pack(
		    "{s:O, s:s}", "cert_rotation_job_settings", crt, "user",
		    who));
		if (store_txn_commit(n->store, t, e) == 0)
			break;
		if (e == NULL || e->code != E_CONFLICT || tries == 2)
			goto out;
		err_clear(e);
	}
	log_audit("%s set cert_rotation_job_settings: enabled %s, %d days "
	    "before expiry, cron \"%s\"", who, json_is_true(json_object_get(crt,
	    "enabled")) ? "true" : "false", (int)json_integer_value(
	    json_object_get(crt, "expiry_days_before_rotation")),
	    json_string_value(json_object_get(crt, "cron_expression")));
	if (n->jobs != NULL) {
		n->jobs->renew_now = 1;
		jobs_kick(n->jobs);
	}
	*out = json_incref(cur);
	rc = 0;
out:
	store_txn_free(t);
	json_decref(cur);
	return rc;
}

/* ---- the duties ---- */

static void
jobs_renew(struct jobs *j, int now)
{
	struct node	*n = j->n;
	struct err	 e = { 0 };
	json_t		*s, *crt;
	time_t		 minute = time(NULL) / 60 * 60;
	int		 rc;

	if (!now && minute == j->last_minute)
		return;
	if ((s = jobs_settings(n, NULL, NULL)) == NULL)
		return;
	crt = json_object_get(s, "cert_rotation_job_settings");
	if (!json_is_true(json_object_get(crt, "enabled")) || (!now &&
	    cron_match(json_string_value(json_object_get(crt,
	    "cron_expression")), minute) != 1)) {
		j->last_minute = minute;
		json_decref(s);
		return;
	}
	j->last_minute = minute;
	rc = certs_renew_due(n, (int)json_integer_value(json_object_get(crt,
	    "expiry_days_before_rotation")), &e);
	if (rc == -1) {
		/* Said once per change, and shown in GET /v1/job_scheduler;
		 * the expiry alert takes it from there. */
		if (strcmp(j->last_error, err_msg(&e)) != 0)
			log_error("certificate renewal failed: %s", err_msg(&e));
		snprintf(j->last_error, sizeof(j->last_error), "%s",
		    err_msg(&e));
	} else
		j->last_error[0] = '\0';
	err_clear(&e);
	json_decref(s);
}

static void
jobs_run(evutil_socket_t fd, short what, void *arg)
{
	struct jobs	*j = arg;
	struct node	*n = j->n;
	int		 now = j->renew_now;

	if (n->store == NULL || n->uid <= 0)
		return;
	j->renew_now = 0;
	if (!j->sealed && certs_seal_store(n) == 0)
		j->sealed = 1;
	jobs_renew(j, now);
	ca_tick(n);
	ocsp_tick(n);
	certacme_tick(n);
	alerts_evaluate(n);
	if (j->ticks++ % TRIM_EVERY == 0)
		events_trim(n);
}

struct jobs *
jobs_new(struct node *n)
{
	struct jobs	*j;
	struct timeval	 tv = { JOBS_TICK_S, 0 };

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->n = n;
	if ((j->ev = event_new(n->base, -1, EV_PERSIST, jobs_run, j)) ==
	    NULL || event_add(j->ev, &tv) == -1) {
		jobs_free(j);
		return NULL;
	}
	return j;
}

void
jobs_free(struct jobs *j)
{
	if (j == NULL)
		return;
	if (j->ev != NULL)
		event_free(j->ev);
	free(j);
}

void
jobs_kick(struct jobs *j)
{
	if (j != NULL)
		event_active(j->ev, EV_TIMEOUT, 0);
}
