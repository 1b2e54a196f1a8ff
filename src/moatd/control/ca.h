/*
 * ca.h — the cluster CA: its description and its rollover (POST
 * /v1/cluster/certificates/ca/rotate), make-before-break: publish both
 * CAs, re-issue the leaves after a grace period, drop the old CA once
 * nothing served chains to it.  ca.c tells the steps.
 */
#ifndef MOATD_CA_H
#define MOATD_CA_H

#include <jansson.h>

#include "api.h"

/* Start a rollover: the new CA is published now, and signs (its leaves
 * re-issued) grace_days later; with now (grace_days 0) at once.  Returns
 * -1 or API_ASYNC (answered once every node publishes it). */
int	 ca_rotate(struct api_req *r, double grace_days, int now,
	    struct err *e);
/* {name "ca", certificates [{..., role signing|next|previous}],
 * rollover {state none|publishing|switched, reissue_at}, pem (the
 * bundle clients trust)}. */
json_t	*ca_describe_json(struct node *n, struct err *e);
/* From the jobs tick: take the rollover's next step when it is due. */
void	 ca_tick(struct node *n);

#endif
