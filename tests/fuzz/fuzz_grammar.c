/*
 * fuzz_grammar.c — moatadm's grammar (rladmin's words): the input is a
 * command line, split on blanks; the first byte says whether it was
 * typed at the interactive prompt.  Parse it, and ask for the `?` help
 * of it, as a user would.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moatadm.h"

#define MAX_WORDS	32

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE		*devnull;
	struct cmd_args		 args;
	const char		*words[MAX_WORDS];
	char			*s, *tok, *save = NULL;
	int			 n = 0, interactive;

	if (size < 1 || (s = malloc(size)) == NULL)
		return 0;
	/* (Usage errors still go to stderr: libFuzzer reports there too,
	 * so it stays open.) */
	if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
		abort();
	interactive = data[0] & 1;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	for (tok = strtok_r(s, " \t\n", &save); tok != NULL && n < MAX_WORDS;
	    tok = strtok_r(NULL, " \t\n", &save))
		words[n++] = tok;
	memset(&args, 0, sizeof(args));
	grammar_words_parse(n, words, interactive, &args);
	grammar_words_help(devnull, n, words, interactive);
	free(s);
	return 0;
}
