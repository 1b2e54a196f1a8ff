/*
 * t.h — the few macros the unit tests share.
 *
 * A failed CHECK prints file:line, the case being run (T_CASE) and what
 * was expected, counts the failure and carries on, so one run shows every
 * broken row.  main() ends with `return T_DONE();`, which prints a summary
 * and exits non-zero when anything failed.
 *
 * T_XFAIL marks a check that documents a known bug in src/lib: it does not
 * fail the run while the bug is there, and it DOES fail the run once the
 * bug is fixed ("XPASS"), so whoever fixes it turns it into a plain CHECK.
 */
#ifndef MOAT_T_H
#define MOAT_T_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int		 t_checks, t_failures, t_xfails;
static const char	*t_case = "";

#define T_CASE(name)	(t_case = (name))

#define T_FAIL_AT(file, line, ...) do {					\
	t_failures++;							\
	fprintf(stderr, "%s:%d: [%s] ", (file), (line), t_case);	\
	fprintf(stderr, __VA_ARGS__);					\
	fputc('\n', stderr);						\
} while (0)

#define CHECK(cond) do {						\
	t_checks++;							\
	if (!(cond))							\
		T_FAIL_AT(__FILE__, __LINE__, "CHECK(%s) failed", #cond); \
} while (0)

/* CHECK with a printf-style explanation. */
#define CHECKF(cond, ...) do {						\
	t_checks++;							\
	if (!(cond))							\
		T_FAIL_AT(__FILE__, __LINE__, __VA_ARGS__);		\
} while (0)

#define CHECK_INT(got, want) do {					\
	long long t_g_ = (long long)(got), t_w_ = (long long)(want);	\
	t_checks++;							\
	if (t_g_ != t_w_)						\
		T_FAIL_AT(__FILE__, __LINE__, "%s == %lld, want %lld",	\
		    #got, t_g_, t_w_);					\
} while (0)

#define CHECK_STR(got, want) do {					\
	const char *t_g_ = (got), *t_w_ = (want);			\
	t_checks++;							\
	if (t_g_ == NULL || t_w_ == NULL || strcmp(t_g_, t_w_) != 0)	\
		T_FAIL_AT(__FILE__, __LINE__, "%s == \"%s\", want \"%s\"", \
		    #got, t_g_ ? t_g_ : "(null)", t_w_ ? t_w_ : "(null)"); \
} while (0)

/* got contains the substring want. */
#define CHECK_HAS(got, want) do {					\
	const char *t_g_ = (got), *t_w_ = (want);			\
	t_checks++;							\
	if (t_g_ == NULL || strstr(t_g_, t_w_) == NULL)			\
		T_FAIL_AT(__FILE__, __LINE__, "%s == \"%s\", want it to " \
		    "contain \"%s\"", #got, t_g_ ? t_g_ : "(null)", t_w_); \
} while (0)

/* A known src/lib bug: see the comment at the call site. */
#define T_XFAIL(cond, bug) do {						\
	t_checks++;							\
	if (!(cond)) {							\
		t_xfails++;						\
		fprintf(stderr, "%s:%d: [%s] XFAIL (known bug: %s)\n",	\
		    __FILE__, __LINE__, t_case, (bug));			\
	} else								\
		T_FAIL_AT(__FILE__, __LINE__, "XPASS: %s now holds: the " \
		    "bug \"%s\" looks fixed; drop its xfail marking so " \
		    "this becomes a plain check", #cond, (bug));	\
} while (0)

#define T_DONE() (							\
	fprintf(stderr, "%s: %d checks, %d failed, %d known bugs\n",	\
	    __FILE__, t_checks, t_failures, t_xfails),			\
	t_failures != 0 ? 1 : 0)

#define NELEMS(a)	(sizeof(a) / sizeof((a)[0]))

#endif
