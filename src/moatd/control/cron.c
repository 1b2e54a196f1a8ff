/*
 * cron.c — five-field cron expressions (minute hour day-of-month month
 * day-of-week, UTC), as RS's job scheduler takes them.  Day of month and
 * day of week must both match (moat's rule: the job only looks for work,
 * so the stricter reading costs nothing).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"

static const struct {
	int	 lo, hi;
} cron_range[5] = { { 0, 59 }, { 0, 23 }, { 1, 31 }, { 1, 12 }, { 0, 7 } };

/* One field (a star, a star with a step "/n", "a", "a-b", "a-b/n", or a
 * comma list of those) into the bits of the values it selects; -1 when
 * malformed. */
static int
cron_field(const char *f, size_t len, int k, unsigned long long *bits)
{
	char	 buf[64], *save = NULL, *tok, *end;
	long	 a, b, step;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, f, len);
	buf[len] = '\0';
	/* strtok_r would skip an empty item: "1,,2" and "5," are typos. */
	if (buf[0] == ',' || buf[len - 1] == ',' || strstr(buf, ",,") != NULL)
		return -1;
	*bits = 0;
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		char *slash = strchr(tok, '/');
		step = 1;
		if (slash != NULL) {
			*slash = '\0';
			step = strtol(slash + 1, &end, 10);
			if (slash[1] < '0' || slash[1] > '9' || *end != '\0' ||
			    step < 1 ||
			    step > cron_range[k].hi)
				return -1;
		}
		if (strcmp(tok, "*") == 0) {
			a = cron_range[k].lo;
			b = cron_range[k].hi;
		} else {
			if (*tok < '0' || *tok > '9')
				return -1;
			a = strtol(tok, &end, 10);
			b = a;
			if (*end == '-') {
				char *e2;
				if (end[1] < '0' || end[1] > '9')
					return -1;
				b = strtol(end + 1, &e2, 10);
				if (*e2 != '\0')
					return -1;
			} else if (*end != '\0')
				return -1;
			if (slash != NULL && b == a)
				b = cron_range[k].hi;
		}
		if (a < cron_range[k].lo || b > cron_range[k].hi || a > b)
			return -1;
		for (; a <= b; a += step)
			*bits |= 1ULL << a;
	}
	return 0;
}

int
cron_match(const char *expr, time_t t)
{
	unsigned long long	 bits[5];
	const char		*p = expr;
	struct tm		 tm;
	size_t			 len;
	int			 k, dow;

	for (k = 0; k < 5; k++) {
		while (*p == ' ' || *p == '\t')
			p++;
		len = strcspn(p, " \t");
		if (cron_field(p, len, k, &bits[k]) == -1)
			return -1;
		p += len;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '\0')
		return -1;
	if (t == 0)
		return 0;
	gmtime_r(&t, &tm);
	dow = tm.tm_wday;
	return (bits[0] >> tm.tm_min & 1) && (bits[1] >> tm.tm_hour & 1) &&
	    (bits[2] >> tm.tm_mday & 1) && (bits[3] >> (tm.tm_mon + 1) & 1) &&
	    ((bits[4] >> dow & 1) || (dow == 0 && (bits[4] >> 7 & 1)));
}

int
cron_valid(const char *expr)
{
	return expr != NULL && cron_match(expr, 0) == 0;
}
