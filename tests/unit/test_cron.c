/*
 * test_cron.c — the renewal job's cron expressions: what is refused, and
 * which minutes each form selects.  Includes cron.c (a moatd source).
 */
#include <time.h>

#include "cron.c"

#include "t.h"

/* 2026-11-29 (a Sunday) at hh:mm UTC. */
static time_t
at(int day, int hh, int mm)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = 2026 - 1900;
	tm.tm_mon = 10;
	tm.tm_mday = day;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	return timegm(&tm);
}

int
main(void)
{
	static const char *const bad[] = {
		"", "* * * *", "* * * * * *", "61 * * * *", "* 24 * * *",
		"* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *",
		"30-10 * * * *", "1,,2 * * * *", "5, * * * *", ",5 * * * *",
		"+5 * * * *", "-5 * * * *", "a b c d e", "5- * * * *",
		"*/ * * * *", "1/x * * * *", "* * * * * extra", NULL
	};
	static const struct {
		const char	*expr;
		int		 day, hh, mm;
		int		 want;
	} rows[] = {
		{ "* * * * *",		29, 10, 7, 1 },
		{ "0 * * * *",		29, 10, 0, 1 },
		{ "0 * * * *",		29, 10, 1, 0 },
		{ "*/15 * * * *",	29, 3, 45, 1 },
		{ "*/15 * * * *",	29, 3, 46, 0 },
		{ "10-20/5 * * * *",	29, 3, 15, 1 },
		{ "10-20/5 * * * *",	29, 3, 16, 0 },
		{ "5/20 * * * *",	29, 3, 45, 1 },	/* 5, 25, 45 */
		{ "1,2,59 * * * *",	29, 3, 59, 1 },
		{ "30 2 * * *",		29, 2, 30, 1 },
		{ "30 2 * * *",		29, 3, 30, 0 },
		{ "* * 29 11 *",	29, 0, 0, 1 },
		{ "* * 28 11 *",	29, 0, 0, 0 },
		{ "* * * * 0",		29, 0, 0, 1 },	/* Sunday */
		{ "* * * * 7",		29, 0, 0, 1 },	/* Sunday too */
		{ "* * * * 1-5",	29, 0, 0, 0 },
		{ "* * * * 1-5",	30, 0, 0, 1 },	/* Monday */
		{ " 0  *\t* * * ",	29, 4, 0, 1 },	/* blanks */
	};
	size_t i;

	for (i = 0; bad[i] != NULL; i++) {
		T_CASE(bad[i]);
		CHECK(!cron_valid(bad[i]));
		CHECK(cron_match(bad[i], at(29, 0, 0)) == -1);
	}
	CHECK(!cron_valid(NULL));
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		T_CASE(rows[i].expr);
		CHECK(cron_valid(rows[i].expr));
		CHECKF(cron_match(rows[i].expr, at(rows[i].day, rows[i].hh,
		    rows[i].mm)) == rows[i].want, "at %d %02d:%02d: want %d",
		    rows[i].day, rows[i].hh, rows[i].mm, rows[i].want);
	}
	return T_DONE();
}
