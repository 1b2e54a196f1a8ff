/*
 * The interactive `moatadm> ` prompt: libedit for line editing and
 * history, TAB completion and `?` from the same grammar tables the parser
 * uses.
 */
#include <dirent.h>
#include <errno.h>
#include <histedit.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moatadm.h"

#define HISTORY_SIZE	500
#define COMPL_MAX	1024	/* a huge directory is not worth listing */
#define WORDS_MAX	64

volatile sig_atomic_t adm_interrupted;

/* Set by ^C while a line is typed; the loop drops that line. */
static int prompt_cancelled;

struct compl_item {
	char		*text;
	enum compl_kind	 kind;
};

struct compl_list {
	struct compl_item	 items[COMPL_MAX];
	size_t			 n;
};

static void
compl_add(void *arg, const char *text, enum compl_kind kind)
{
	struct compl_list *l = arg;
	size_t i;

	for (i = 0; i < l->n; i++)	/* the two min_*_version share hints */
		if (strcmp(l->items[i].text, text) == 0)
			return;
	if (l->n == COMPL_MAX || (l->items[l->n].text = strdup(text)) == NULL)
		return;
	l->items[l->n++].kind = kind;
}

static void
compl_clear(struct compl_list *l)
{
	while (l->n > 0)
		free(l->items[--l->n].text);
}

static int
path_is_dir(const char *dir, const char *name)
{
	struct stat st;
	char *path = str_printf("%s/%s", dir, name);
	int isdir = path != NULL && stat(path, &st) == 0 &&
	    S_ISDIR(st.st_mode);

	free(path);
	return isdir;
}

void
files_complete(const char *partial,
    void (*add)(void *, const char *, enum compl_kind), void *arg)
{
	const char *slash = strrchr(partial, '/'), *base;
	char *dir, *cand;
	struct dirent *de;
	size_t dlen, blen;
	DIR *d;

	dlen = slash != NULL ? (size_t)(slash - partial) + 1 : 0;
	base = partial + dlen;
	blen = strlen(base);
	dir = dlen == 0 ? strdup(".") : strndup(partial, dlen);
	if (dir == NULL || (d = opendir(dir)) == NULL) {
		free(dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    (de->d_name[0] == '.' && base[0] != '.') ||
		    strncmp(de->d_name, base, blen) != 0)
			continue;
		if (path_is_dir(dir, de->d_name)) {
			cand = str_printf("%.*s%s/", (int)dlen, partial,
			    de->d_name);
			if (cand != NULL)
				add(arg, cand, COMPL_DIR);
		} else {
			cand = str_printf("%.*s%s", (int)dlen, partial,
			    de->d_name);
			if (cand != NULL)
				add(arg, cand, COMPL_WORD);
		}
		free(cand);
	}
	closedir(d);
	free(dir);
}

/*
 * The first insertable candidate, with *lenp set to the length of the
 * prefix that every insertable candidate shares; NULL when none is.
 */
static const char *
compl_common(const struct compl_list *l, size_t *lenp)
{
	const char *first = NULL;
	size_t i, j, len = 0;

	for (i = 0; i < l->n; i++) {
		if (l->items[i].kind == COMPL_HINT)
			continue;
		if (first == NULL) {
			first = l->items[i].text;
			len = strlen(first);
			continue;
		}
		for (j = 0; j < len && first[j] == l->items[i].text[j]; j++)
			;
		len = j;
	}
	*lenp = len;
	return first;
}

static void
compl_list_print(const struct compl_list *l)
{
	size_t i, col = 0;

	printf("\n");
	for (i = 0; i < l->n; i++) {
		size_t w = strlen(l->items[i].text) + 2;

		if (col > 0 && col + w > 78) {
			printf("\n");
			col = 0;
		}
		printf("%s  ", l->items[i].text);
		col += w;
	}
	printf("\n");
	fflush(stdout);
}

/*
 * Splits the line up to the cursor into complete words and the partial
 * word being typed.  Plain whitespace splitting: quoting is rare in the
 * words worth completing.  Returns the word count, words in buf.
 */
static int
line_words_split(const LineInfo *li, char *buf, size_t size,
    const char **words, const char **partial)
{
	size_t len = (size_t)(li->cursor - li->buffer);
	int n = 0;
	char *p, *w;

	if (len >= size)
		len = size - 1;
	memcpy(buf, li->buffer, len);
	buf[len] = '\0';
	*partial = "";
	for (p = buf; *p != '\0'; ) {
		while (*p == ' ' || *p == '\t')
			*p++ = '\0';
		if (*p == '\0')
			break;
		for (w = p; *p != '\0' && *p != ' ' && *p != '\t'; p++)
			;
		if (*p == '\0') {
			*partial = w;
			break;
		}
		if (n < WORDS_MAX)
			words[n++] = w;
	}
	return n;
}

static unsigned char
prompt_complete(EditLine *el, int ch)
{
	const LineInfo *li = el_line(el);
	static struct compl_list l;	/* large; one prompt per process */
	const char *words[WORDS_MAX], *partial, *first;
	char buf[4096], *ins;
	size_t plen, common;
	unsigned char ret = CC_ERROR;
	int n;

	(void)ch;
	n = line_words_split(li, buf, sizeof(buf), words, &partial);
	grammar_words_complete(n, words, partial, 1, compl_add, &l);
	plen = strlen(partial);
	first = compl_common(&l, &common);
	if (l.n == 1 && first != NULL) {
		ins = str_printf("%s%s", first + plen,
		    l.items[0].kind == COMPL_WORD ? " " : "");
		if (ins != NULL && el_insertstr(el, ins) == 0)
			ret = CC_REFRESH;
		free(ins);
	} else if (first != NULL && common > plen) {
		if ((ins = strndup(first + plen, common - plen)) != NULL &&
		    el_insertstr(el, ins) == 0)
			ret = CC_REFRESH;
		free(ins);
	} else if (l.n > 0) {
		compl_list_print(&l);
		ret = CC_REDISPLAY;
	}
	compl_clear(&l);
	return ret;
}

/*
 * `?` lists what may come next, as rladmin does, and leaves the line as it
 * was; inside free text (a password, a path) it is just a character.
 */
static unsigned char
prompt_help(EditLine *el, int ch)
{
	const LineInfo *li = el_line(el);
	const char *words[WORDS_MAX], *partial;
	char buf[4096];
	int n;

	(void)ch;
	n = line_words_split(li, buf, sizeof(buf), words, &partial);
	if (grammar_help_literal(n, words, partial, 1))
		return el_insertstr(el, "?") == 0 ? CC_REFRESH : CC_ERROR;
	printf("?\n");
	grammar_choices_print(stdout, n, words, partial, 1);
	fflush(stdout);
	return CC_REDISPLAY;
}

/*
 * ^C drops the line being typed and starts a fresh prompt.  It reaches us
 * as a key, not as SIGINT (the terminal's isig is off while libedit
 * reads): a signal would race with the keys typed after it, which could
 * land on the line it was meant to drop.  The line is ended as Enter ends
 * it, so that libedit leaves the display tidy, with ^C shown at its end.
 */
static unsigned char
prompt_cancel(EditLine *el, int ch)
{
	const LineInfo *li = el_line(el);

	(void)ch;
	el_cursor(el, (int)(li->lastchar - li->cursor));
	el_insertstr(el, "^C");
	el_push(el, "\n");
	prompt_cancelled = 1;
	return CC_REFRESH;
}

static char *
prompt_text(EditLine *el)
{
	(void)el;
	return "moatadm> ";
}

/*
 * Runs one line; errors are printed and the prompt goes on.  Every line
 * goes to the history, a mistyped one too, so that the operator can recall
 * and fix it; but a password typed on the line must not be recallable.
 */
static void
prompt_line_run(struct adm_session *sess, Tokenizer *tok, History *hist,
    const char *line)
{
	struct cmd_args args;
	const char **argv;
	HistEvent ev;
	int argc;

	tok_reset(tok);
	if (tok_str(tok, line, &argc, &argv) != 0) {
		/* no words to look at: judge the secret by the raw line */
		if (strstr(line, "password") == NULL)
			history(hist, &ev, H_ENTER, line);
		fprintf(stderr, "Unbalanced quotes\n");
		return;
	}
	if (argc == 0)
		return;
	if (!grammar_words_secret(argc, argv))
		history(hist, &ev, H_ENTER, line);
	/* a line ending in `?` (piped, or pasted) lists, it does not run */
	if (grammar_words_help(stdout, argc, argv, 1) != 0)
		return;
	if (grammar_words_parse(argc, argv, 1, &args) == -1)
		return;
	session_command_run(sess, &args);
}

static EditLine *
prompt_editline_new(History *hist, const char *prog)
{
	EditLine *el;

	if ((el = el_init(prog, stdin, stdout, stderr)) == NULL)
		return NULL;
	el_set(el, EL_PROMPT, prompt_text);
	el_set(el, EL_EDITOR, "emacs");
	el_set(el, EL_SIGNAL, 1);
	el_set(el, EL_HIST, history, hist);
	/* el_set(EL_ADDFN) leaks copies of both strings; el_wset does not */
	el_wset(el, EL_ADDFN, L"moat-complete", L"complete a moatadm word",
	    prompt_complete);
	el_set(el, EL_BIND, "^I", "moat-complete", NULL);
	el_wset(el, EL_ADDFN, L"moat-help", L"list what may come next",
	    prompt_help);
	el_set(el, EL_BIND, "?", "moat-help", NULL);
	el_wset(el, EL_ADDFN, L"moat-cancel", L"drop the line",
	    prompt_cancel);
	el_set(el, EL_BIND, "^C", "moat-cancel", NULL);
	/* ^C as a key while editing; commands still get SIGINT */
	el_set(el, EL_SETTY, "-d", "-isig", NULL);
	el_source(el, NULL);	/* the operator's ~/.editrc, if any */
	return el;
}

static void
prompt_sigint(int sig)
{
	(void)sig;
	adm_interrupted = 1;
}

/*
 * SIGINT (^C while a command runs) gives up the request being waited for
 * and the prompt goes on; only ^D, exit and quit leave.  No SA_RESTART: a
 * SIGINT from elsewhere while el_gets reads must make it return too.
 */
static int
prompt_sigint_catch(struct sigaction *old)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = prompt_sigint;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGINT, &sa, old);
}

int
prompt_run(struct adm_session *sess)
{
	struct sigaction old_sigint;
	Tokenizer *tok = NULL;
	History *hist = NULL;
	EditLine *el = NULL;
	const char *line;
	HistEvent ev;
	int count, caught, rc = ADM_EXIT_SERVER;

	caught = prompt_sigint_catch(&old_sigint) == 0;
	if ((hist = history_init()) == NULL || (tok = tok_init(NULL)) == NULL ||
	    (el = prompt_editline_new(hist, "moatadm")) == NULL) {
		fprintf(stderr, "Error: cannot start the interactive prompt\n");
		goto out;
	}
	history(hist, &ev, H_SETSIZE, HISTORY_SIZE);
	history(hist, &ev, H_SETUNIQUE, 1);
	sess->interactive = 1;
	while (!sess->quit) {
		prompt_cancelled = 0;
		line = el_gets(el, &count);
		/*
		 * libedit prints the prompt before it turns isig off, so a ^C
		 * typed that early comes as SIGINT (the terminal drops what
		 * was typed before it, as ^C should): it must not interrupt
		 * the command typed after it.
		 */
		adm_interrupted = 0;
		if (prompt_cancelled)
			continue;	/* ^C: the next el_gets starts empty */
		if (line == NULL && count == -1 && errno == EINTR) {
			printf("\n");
			continue;
		}
		if (line == NULL || count <= 0)
			break;
		prompt_line_run(sess, tok, hist, line);
	}
	if (!sess->quit && isatty(STDIN_FILENO))
		printf("\n");	/* EOF leaves the cursor after the prompt */
	rc = ADM_EXIT_OK;
 out:
	if (el != NULL)
		el_end(el);
	if (tok != NULL)
		tok_end(tok);
	if (hist != NULL)
		history_end(hist);
	if (caught)
		sigaction(SIGINT, &old_sigint, NULL);
	return rc;
}
