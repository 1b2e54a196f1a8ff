/* util.h — two small helpers more than one module needs. */
#ifndef MOAT_UTIL_H
#define MOAT_UTIL_H

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Milliseconds on the monotonic clock: for deadlines and back-off. */
static inline long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wipe and free a string that held a secret (a password, a token), and
 * forget it. */
static inline void
secret_free(char **p)
{
	if (*p != NULL) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

#endif
