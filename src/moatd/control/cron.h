/*
 * cron.h — five-field cron expressions: "*", "*" with a step, "a",
 * "a-b", "a-b" with a step, and comma lists of those; weekday 0 or 7 is
 * Sunday.
 */
#ifndef MOATD_CRON_H
#define MOATD_CRON_H

#include <time.h>

/* 1 when expr is well formed. */
int	 cron_valid(const char *expr);
/* 1 when expr selects the minute of t (UTC), 0 when not (or t is 0),
 * -1 when expr is malformed. */
int	 cron_match(const char *expr, time_t t);

#endif
