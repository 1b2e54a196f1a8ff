/*
 * fuzz_cron.c — the renewal job's cron expressions (PUT
 * /v1/job_scheduler): whatever the text, a verdict and no crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (cron_valid(s))
		cron_match(s, 1796000000);
	free(s);
	return 0;
}
