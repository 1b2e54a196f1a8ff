/*
 * moatadm: the operator CLI of moat.  It speaks the REST API of docs/api.md
 * over <data-dir>/moatd.sock with the rladmin grammar, one-shot or at an
 * interactive prompt.  Self-contained on purpose: it links no code from
 * src/lib, so the CLI keeps building while the server side changes.
 */
#ifndef MOATADM_H
#define MOATADM_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* Process exit codes; every command action returns one of these. */
enum adm_exit {
	ADM_EXIT_OK = 0,
	ADM_EXIT_SERVER = 1,	/* moatd said no, or could not be reached */
	ADM_EXIT_USAGE = 2,	/* the operator's words or files are wrong */
	/*
	 * The change is stored but not every node confirmed it in time (409
	 * not_all_nodes_updated): not a failure and nothing to retry, the
	 * nodes converge.  Scripts must be able to tell it from 1.
	 */
	ADM_EXIT_PARTIAL = 3
};

/* The five certificate names a cluster always has (NULL terminated). */
extern const char *const adm_cert_names[];

/* ---- http.c: HTTP/1.1 over the control socket, with libcurl ---- */

struct http_client;

struct http_response {
	long	 status;
	json_t	*body;		/* NULL when the body is empty or not JSON */
};

/* Returns a client for sock_path (copied), or NULL. */
struct http_client *http_client_new(const char *sock_path);
/* A client of the REST API at url (https://host:port), signed in by the
 * client certificate cert/key (PEM files), the server checked against
 * cacert (NULL: the system's CAs).  Strings are copied. */
struct http_client *http_client_new_remote(const char *url, const char *cert,
    const char *key, const char *cacert);
void http_client_free(struct http_client *);

/*
 * Sends one request; body may be NULL and stays owned by the caller.  The
 * serialized body is wiped after sending since it can carry a private key.
 * 0 when any HTTP response arrived (resp filled, clear it with
 * http_response_clear), -1 on a transport failure with *errp set to a
 * message the caller frees.
 */
int http_client_request(struct http_client *, const char *method,
    const char *path, const json_t *body, struct http_response *resp,
    char **errp);
void http_response_clear(struct http_response *);

/* s escaped for use as one URL path segment; caller frees. */
char *http_path_escape(const char *s);

/* ---- session: what a command runs against ---- */

struct adm_session {
	struct http_client	*http;
	int			 interactive;
	int			 quit;		/* set by exit/quit */
	/*
	 * The 409 not_all_nodes_updated body of a change made by the running
	 * command; reported after the command's own output.  Owned here.
	 */
	json_t			*partial;
};

/*
 * Runs one API call and reports failures the CLI way: transport errors and
 * non-2xx answers are printed on stderr.  On ADM_EXIT_OK *out (when out is
 * not NULL) receives the response body, owned by the caller.  A 409
 * not_all_nodes_updated is a change that is stored: it returns ADM_EXIT_OK
 * with its body, and keeps a reference in sess->partial for
 * session_command_run to report.
 */
int session_api_call(struct adm_session *, const char *method,
    const char *path, const json_t *body, json_t **out);

struct cmd_args;

/*
 * Runs a parsed command, then the report of a change that not every node
 * confirmed; returns the command's enum adm_exit, or ADM_EXIT_PARTIAL
 * after such a report.
 */
int session_command_run(struct adm_session *, const struct cmd_args *);

/*
 * Set by SIGINT at the interactive prompt; an HTTP request in flight gives
 * up when it is set.  Only prompt.c sets it and clears it.
 */
extern volatile sig_atomic_t adm_interrupted;

/* ---- grammar.c: the rladmin token tree ---- */

enum arg_slot {
	ARG_FQDN,
	ARG_USERNAME,
	ARG_PASSWORD,
	ARG_CERT_NAME,
	ARG_CERT_FILE,
	ARG_KEY_FILE,
	ARG_PARAM,		/* the config parameter a value belongs to */
	ARG_PARAM_VALUE,
	ARG_NODE,		/* cluster join nodes <addr[:port]> */
	ARG_STORE,		/* cluster store move <url> */
	ARG_FORCE,		/* the word force was given */
	ARG_DRY_RUN,		/* the word dry_run was given */
	ARG_VERSION,		/* certificate rollback <name> version <n> */
	ARG_GRACE_DAYS,		/* certificate rotate ca grace_days <n> */
	ARG_NOW,		/* certificate rotate ca now */
	ARG_FOLDER,		/* certificate import <folder> */
	ARG_CA_FP,		/* cluster join ... ca_fingerprint <sha256> */
	/* cluster certificate acme <name> set ... */
	ARG_ACME_DIR,
	ARG_ACME_CHALLENGE,
	ARG_ACME_HTTP_PORT,
	ARG_ACME_IDENTS,
	ARG_ACME_CONTACT,
	ARG_ACME_KEY_TYPE,
	ARG_ACME_CA_FILE,
	ARG_ACME_HOOK,
	ARG_MAX
};

#define CMD_PARAMS_MAX	8

struct cmd_param {
	const char	*name;
	const char	*value;
};

/* What a parsed command line asks for; strings point into the words. */
struct cmd_args {
	int		(*action)(struct adm_session *, const struct cmd_args *);
	const char	*arg[ARG_MAX];
	size_t		 nparams;
	struct cmd_param params[CMD_PARAMS_MAX];
};

/*
 * Matches words against the grammar.  0 with args filled, or -1 after
 * printing why on stderr (a usage error).  Interactive-only words (exit,
 * quit) match only when interactive is set.
 */
int grammar_words_parse(int argc, const char *const *argv, int interactive,
    struct cmd_args *args);

/* Kinds of completion candidates. */
enum compl_kind {
	COMPL_WORD,	/* insert it and a space */
	COMPL_DIR,	/* insert it, no space: the path goes on */
	COMPL_HINT	/* show it only, e.g. "<fqdn>" */
};

/*
 * Calls add() for every candidate that can follow the complete words and
 * starts with partial.  Nothing is added when the words do not parse.
 */
void grammar_words_complete(int argc, const char *const *argv,
    const char *partial, int interactive,
    void (*add)(void *, const char *, enum compl_kind), void *arg);

void grammar_help_print(FILE *, int interactive);

/*
 * `?`: prints on fp what may follow the complete words and starts with
 * partial: each keyword with the syntax after it, the choices of a name or
 * value, a <placeholder> for free text, and <Enter> where the command may
 * end.  -1 after printing on stderr why the words do not parse.
 */
int grammar_choices_print(FILE *fp, int argc, const char *const *argv,
    const char *partial, int interactive);

/*
 * 1 when a `?` typed after partial belongs to the word (partial is free
 * text there, such as a password or a path), 0 when it asks for the
 * choices.
 */
int grammar_help_literal(int argc, const char *const *argv,
    const char *partial, int interactive);

/*
 * A line whose last word is `?`, or ends in `?` where that cannot be part
 * of the word, asks for the choices instead of running: prints them (see
 * grammar_choices_print) and returns 1, or -1 when the words before it do
 * not parse.  0 when the words are a command to parse.
 */
int grammar_words_help(FILE *fp, int argc, const char *const *argv,
    int interactive);

/*
 * 1 when the words may hold a secret (a password), even when they do not
 * parse: such a line is never kept in the prompt's history.
 */
int grammar_words_secret(int argc, const char *const *argv);

/* ---- commands (cmd_*.c); each returns an enum adm_exit ---- */

int cmd_help(struct adm_session *, const struct cmd_args *);
int cmd_quit(struct adm_session *, const struct cmd_args *);
int cmd_cluster_create(struct adm_session *, const struct cmd_args *);
int cmd_cluster_join(struct adm_session *, const struct cmd_args *);
int cmd_node_remove(struct adm_session *, const struct cmd_args *);
int cmd_store_move(struct adm_session *, const struct cmd_args *);
int cmd_cluster_config(struct adm_session *, const struct cmd_args *);
int cmd_cluster_info(struct adm_session *, const struct cmd_args *);
int cmd_ocsp_compatible(struct adm_session *, const struct cmd_args *);
int cmd_ocsp_config(struct adm_session *, const struct cmd_args *);
int cmd_ocsp_status(struct adm_session *, const struct cmd_args *);
int cmd_ocsp_test(struct adm_session *, const struct cmd_args *);
int cmd_status_show(struct adm_session *, const struct cmd_args *);
int cmd_cert_set(struct adm_session *, const struct cmd_args *);
int cmd_cert_show(struct adm_session *, const struct cmd_args *);
int cmd_cert_rotate(struct adm_session *, const struct cmd_args *);
int cmd_cert_rollback(struct adm_session *, const struct cmd_args *);
int cmd_ca_rotate(struct adm_session *, const struct cmd_args *);
int cmd_cert_import(struct adm_session *, const struct cmd_args *);
int cmd_acme_set(struct adm_session *, const struct cmd_args *);
int cmd_acme_show(struct adm_session *, const struct cmd_args *);
int cmd_acme_renew(struct adm_session *, const struct cmd_args *);
int cmd_acme_delete(struct adm_session *, const struct cmd_args *);

/* ---- rollout.c: what the nodes did with a change ---- */

/*
 * Prints the 409 not_all_nodes_updated report on stdout: the change is
 * stored, which nodes did not confirm it and what each of them serves.
 */
void rollout_report_print(const json_t *body);
/* "<verb> certificate <name>: version <n>, fingerprint <fp>" for one
 * {name, version, fingerprint_sha256} of an answer. */
void rollout_cert_print(const char *verb, const json_t *c);

/* ---- table.c: columns aligned on their content, as rladmin prints ---- */

struct table;

/* header: ncols titles that must outlive the table; NULL for none. */
struct table *table_new(const char *const *header, size_t ncols);
void table_free(struct table *);
size_t table_rows(const struct table *);
/* Starts a row whose cells print as "?" until set; 0/-1. */
int table_row_add(struct table *);
/* Sets a cell of the last row; on failure the cell shows "?". */
void table_cell_printf(struct table *, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets a cell of the last row to json_member_format(obj, key). */
void table_cell_json(struct table *, size_t col, const json_t *obj,
    const char *key);
/*
 * Sets a cell of the last row to the start of a SHA-256 fingerprint (NULL:
 * "-"): as much as rladmin shows, enough to tell certificates apart.
 */
void table_cell_fingerprint(struct table *, size_t col, const char *fp);
/* The header and the rows, each line after indent. */
void table_print(const struct table *, FILE *, const char *indent);

/* ---- pem.c: reading certificate files ---- */

#define PEM_FILE_MAX	(1024 * 1024)

/*
 * Reads at most PEM_FILE_MAX bytes of path into a NUL-terminated buffer the
 * caller wipes and frees (mem_wipe_free).  -1 with *errp naming the path.
 */
int pem_file_read(const char *path, char **bufp, size_t *lenp, char **errp);

/*
 * Copies the PEM blocks of text whose label is "CERTIFICATE" (in order) to
 * *certp, and the one block whose label ends in "PRIVATE KEY" to *keyp.
 * Either pointer may be NULL when not wanted; a missing kind yields NULL.
 * Results are malloc'ed; wipe the key.  -1 with *errp on malformed PEM or
 * more than one key, where the message names path.
 */
int pem_blocks_split(const char *text, const char *path, char **certp,
    char **keyp, char **errp);

/* ---- util.c ---- */

/* free() that first wipes the whole allocation; jansson uses it too. */
void mem_wipe_free(void *);

/* printf into a new string; NULL on failure.  Caller frees. */
char *str_printf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* A JSON value as the CLI shows it (arrays joined by ", "); caller frees. */
char *json_value_format(const json_t *);
/* Print each field of o as "<indent><key>: <value>", in the server's order. */
void json_fields_print(const json_t *o, const char *indent);

/* Member key of obj formatted as above, "-" when absent; caller frees. */
char *json_member_format(const json_t *obj, const char *key);

/*
 * A password that was not given on the command line (where ps and the
 * shell's history would show it): $MOAT_PASSWORD, else asked on the
 * terminal without echo, else one line of stdin.  NULL at end of input.
 * Free with mem_wipe_free.
 */
char *password_read(const char *what);

/* ---- prompt.c ---- */

/* Runs the interactive moatadm> prompt until exit, quit or EOF. */
int prompt_run(struct adm_session *);

/* Adds the paths that complete partial ("dir/prefix"); used for FILE words. */
void files_complete(const char *partial,
    void (*add)(void *, const char *, enum compl_kind), void *arg);

#endif /* MOATADM_H */
