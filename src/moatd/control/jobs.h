/*
 * jobs.h — the control plane's periodic duties, on one timer of the
 * control thread: alerts and node states (alerts.c), the event log's
 * trimming (events.c), certificate renewal.  Every node runs them; the
 * store's compare-and-swap makes each one's effect happen once.
 */
#ifndef MOATD_JOBS_H
#define MOATD_JOBS_H

#include <jansson.h>

#include "node.h"

struct jobs;

struct jobs	*jobs_new(struct node *n);
void		 jobs_free(struct jobs *j);
/* Run the duties on the next turn of the loop (a change they watch). */
void		 jobs_kick(struct jobs *j);

/* GET /v1/job_scheduler: RS's cert_rotation_job_settings, defaults
 * filled, plus last_error when the last renewal failed on this node. */
json_t		*jobs_settings_json(struct node *n, struct err *e);
/* PUT /v1/job_scheduler: validate, merge, store; the job then runs at
 * once.  *out: the settings now. */
int		 jobs_settings_put(struct node *n, const json_t *body,
		    const char *who, json_t **out, struct err *e);

#endif
