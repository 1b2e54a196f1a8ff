/*
 * moatadm [--data-dir DIR | --url URL --cert FILE --key FILE [--cacert FILE]]
 *     [command words...]
 * One command from the arguments, or the interactive prompt without any;
 * through this node's control socket, or a node's REST API signed in by
 * a client certificate.
 */
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "moatadm.h"

struct adm_opts {
	const char	*data_dir;
	/* Remote mode: the REST API at url, signed in by cert/key. */
	const char	*url, *cert, *key, *cacert;
	int		 first_word;	/* index of the first command word */
};

/* The options that take a value, in one table. */
static const struct {
	const char	*name;
	size_t		 off;
} adm_value_opts[] = {
	{ "--data-dir", offsetof(struct adm_opts, data_dir) },
	{ "--url", offsetof(struct adm_opts, url) },
	{ "--cert", offsetof(struct adm_opts, cert) },
	{ "--key", offsetof(struct adm_opts, key) },
	{ "--cacert", offsetof(struct adm_opts, cacert) },
};
#define N_VALUE_OPTS	(sizeof(adm_value_opts) / sizeof(adm_value_opts[0]))

static void
usage_print(FILE *fp)
{
	fprintf(fp, "usage: moatadm [--data-dir DIR] [command ...]\n"
	    "       moatadm --url https://HOST:PORT --cert FILE --key FILE "
	    "[--cacert FILE] [command ...]\n"
	    "Without a command, opens the interactive moatadm> prompt.\n"
	    "DIR defaults to $MOAT_DATA_DIR.  With --url, moatadm talks to "
	    "that node's REST API,\nsigned in by the client certificate "
	    "(PEM files; the cluster's mtls_trusted_ca signs it).\n"
	    "A last word `?` lists what may come next.\n"
	    "Exit status: 0 done, 1 moatd refused or could not be reached, "
	    "2 usage error,\n"
	    "3 change stored but not yet confirmed by every node (not a "
	    "failure: do not retry).\n\n");
	grammar_help_print(fp, 0);
}

/* 0 with opts filled, 1 when help was printed, -1 on a bad option. */
static int
opts_parse(int argc, char **argv, struct adm_opts *opts)
{
	const char *env = getenv("MOAT_DATA_DIR");
	int i;

	opts->data_dir = env != NULL && env[0] != '\0' ? env : NULL;
	opts->url = opts->cert = opts->key = opts->cacert = NULL;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		size_t k, len;
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			usage_print(stdout);
			return 1;
		}
		for (k = 0; k < N_VALUE_OPTS; k++) {
			const char **slot = (const char **)(void *)((char *)opts +
			    adm_value_opts[k].off);
			len = strlen(adm_value_opts[k].name);
			if (strcmp(argv[i], adm_value_opts[k].name) == 0) {
				if (i + 1 == argc) {
					fprintf(stderr, "%s needs a value\n",
					    argv[i]);
					return -1;
				}
				*slot = argv[++i];
				break;
			}
			if (strncmp(argv[i], adm_value_opts[k].name, len) ==
			    0 && argv[i][len] == '=') {
				*slot = argv[i] + len + 1;
				break;
			}
		}
		if (k == N_VALUE_OPTS) {
			fprintf(stderr, "Unknown option '%s'\n", argv[i]);
			usage_print(stderr);
			return -1;
		}
	}
	if (opts->url != NULL && (opts->cert == NULL || opts->key == NULL ||
	    strncmp(opts->url, "https://", 8) != 0)) {
		fprintf(stderr, "--url needs an https:// address, --cert and "
		    "--key (moatadm signs in to a remote node with a client "
		    "certificate)\n");
		return -1;
	}
	if (opts->url == NULL && (opts->cert != NULL || opts->key != NULL ||
	    opts->cacert != NULL)) {
		fprintf(stderr, "--cert, --key and --cacert go with --url (the "
		    "local control socket needs no sign-in)\n");
		return -1;
	}
	opts->first_word = i;
	return 0;
}

/* DIR/moatd.sock without a doubled slash; caller frees. */
static char *
sock_path_new(const char *data_dir)
{
	size_t len = strlen(data_dir);

	while (len > 1 && data_dir[len - 1] == '/')
		len--;
	return str_printf("%.*s/moatd.sock", (int)len, data_dir);
}

/* Runs the one-shot command or the prompt against an open session. */
static int
session_run(struct adm_session *sess, const struct cmd_args *args)
{
	if (args != NULL)
		return session_command_run(sess, args);
	return prompt_run(sess);
}

static int
moatadm_run(const struct adm_opts *opts, const struct cmd_args *args)
{
	struct adm_session sess = { 0 };
	char *sock_path;
	int rc;

	if (opts->url != NULL) {
		if ((sess.http = http_client_new_remote(opts->url, opts->cert,
		    opts->key, opts->cacert)) == NULL) {
			fprintf(stderr, "Error: out of memory\n");
			return ADM_EXIT_SERVER;
		}
		rc = session_run(&sess, args);
		http_client_free(sess.http);
		return rc;
	}
	if (opts->data_dir == NULL) {
		fprintf(stderr, "no data dir: pass --data-dir or set "
		    "MOAT_DATA_DIR\n");
		return ADM_EXIT_USAGE;
	}
	if ((sock_path = sock_path_new(opts->data_dir)) == NULL ||
	    (sess.http = http_client_new(sock_path)) == NULL) {
		fprintf(stderr, "Error: out of memory\n");
		free(sock_path);
		return ADM_EXIT_SERVER;
	}
	rc = session_run(&sess, args);
	http_client_free(sess.http);
	free(sock_path);
	return rc;
}

int
main(int argc, char **argv)
{
	struct adm_opts opts;
	struct cmd_args args;
	const char *const *words;
	int nwords, rc;

	/* keys and passwords pass through jansson: wipe what it frees */
	json_set_alloc_funcs(malloc, mem_wipe_free);
	signal(SIGPIPE, SIG_IGN);
	if ((rc = opts_parse(argc, argv, &opts)) != 0)
		return rc == 1 ? ADM_EXIT_OK : ADM_EXIT_USAGE;
	words = (const char *const *)argv + opts.first_word;
	nwords = argc - opts.first_word;
	/* `moatadm cluster ?` lists choices as the prompt does */
	if ((rc = grammar_words_help(stdout, nwords, words, 0)) != 0)
		return rc == 1 ? ADM_EXIT_OK : ADM_EXIT_USAGE;
	/* grammar first: a typo is reported even without a data dir */
	if (nwords > 0 &&
	    grammar_words_parse(nwords, words, 0, &args) == -1)
		return ADM_EXIT_USAGE;
	if (nwords > 0 && args.action == cmd_help)
		return cmd_help(&(struct adm_session){ 0 }, &args);
	/* Anyone on the machine sees the command line (ps, /proc), and the
	 * shell keeps it in its history. */
	if (nwords > 0 && args.arg[ARG_PASSWORD] != NULL) {
		fprintf(stderr, "Error: a password on the command line is "
		    "visible to every user of this machine (ps); leave out "
		    "'password ...': moatadm asks for it, or reads "
		    "MOAT_PASSWORD\n");
		return ADM_EXIT_USAGE;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "Error: cannot initialise libcurl\n");
		return ADM_EXIT_SERVER;
	}
	rc = moatadm_run(&opts, nwords > 0 ? &args : NULL);
	curl_global_cleanup();
	return rc;
}
