/*
 * The rladmin grammar as one token tree, in the style of relayctl's
 * parser.c.  Parsing, TAB completion and `help` all walk these tables, so a
 * command added here is parsed, completed and documented at once.
 */
#include <string.h>

#include "moatadm.h"

enum token_type {
	TOK_SENTINEL = 0,	/* ends a table */
	TOK_KEYWORD,		/* this exact word */
	TOK_NAME,		/* an object name (completed from hints) */
	TOK_VALUE,		/* any word */
	TOK_FILE,		/* a path (completed from the filesystem) */
	TOK_ENDTOKEN		/* the command may end here */
};

/* Words that only make sense at the prompt. */
#define TOK_INTERACTIVE	0x1

struct token {
	enum token_type		 type;
	/* the word for KEYWORD, the placeholder name for NAME/VALUE/FILE */
	const char		*keyword;
	const struct token	*next;
	/* set when this word decides the command */
	int			(*action)(struct adm_session *,
				    const struct cmd_args *);
	/* where a NAME/VALUE/FILE word (or a KEYWORD with ARG_PARAM) goes */
	int			 slot;
	const char *const	*hints;	/* completion choices, not enforced */
	/* help shows this instead of expanding a repeating subtree */
	const char		*usage;
	/* what `?` says the word does, where the syntax does not tell */
	const char		*help;
	int			 flags;
};

#define NO_SLOT	(-1)

const char *const adm_cert_names[] = {
	"api", "cm", "proxy", "syncer", "metrics_exporter", NULL
};

static const char *const tls_versions[] = { "1.2", "1.3", NULL };
static const char *const on_off[] = { "enabled", "disabled", NULL };
static const char *const subject_checks[] = { "disabled", "san_cn",
	"full_subject", NULL };

static const struct token t_end[] = {
	{ .type = TOK_ENDTOKEN },
	{ 0 }
};

/*
 * cluster create name <fqdn> username <email> [password <password>]:
 * the password word is for the interactive prompt; from the shell it is
 * refused (ps shows it), and left out it is asked for (password_read).
 */
static const struct token t_create_password_value[] = {
	{ .type = TOK_VALUE, .keyword = "password", .slot = ARG_PASSWORD,
	  .next = t_end },
	{ 0 }
};
static const struct token t_create_password[] = {
	{ .type = TOK_ENDTOKEN },
	{ .type = TOK_KEYWORD, .keyword = "password", .slot = NO_SLOT,
	  .next = t_create_password_value,
	  .help = "at the moatadm> prompt only; left out, it is asked for "
	  "(or read from MOAT_PASSWORD)" },
	{ 0 }
};
static const struct token t_create_username_value[] = {
	{ .type = TOK_VALUE, .keyword = "email", .slot = ARG_USERNAME,
	  .next = t_create_password },
	{ 0 }
};
static const struct token t_create_username[] = {
	{ .type = TOK_KEYWORD, .keyword = "username", .slot = NO_SLOT,
	  .next = t_create_username_value },
	{ 0 }
};
static const struct token t_create_name_value[] = {
	{ .type = TOK_VALUE, .keyword = "fqdn", .slot = ARG_FQDN,
	  .next = t_create_username },
	{ 0 }
};
/*
 * cluster join nodes <addr[:port]> [ca_fingerprint <sha256>] username
 * <email> [password <password>]: with the fingerprint, the credentials
 * only go to a node that the cluster CA with that fingerprint vouches for.
 */
static const struct token t_join_fp_value[] = {
	{ .type = TOK_VALUE, .keyword = "sha256", .slot = ARG_CA_FP,
	  .next = t_create_username },
	{ 0 }
};
static const struct token t_join_opt[] = {
	{ .type = TOK_KEYWORD, .keyword = "ca_fingerprint", .slot = NO_SLOT,
	  .next = t_join_fp_value, .help = "the cluster CA's SHA-256 "
	  "fingerprint: the join then verifies the node it goes through" },
	{ .type = TOK_KEYWORD, .keyword = "username", .slot = NO_SLOT,
	  .next = t_create_username_value },
	{ 0 }
};
static const struct token t_join_node_value[] = {
	{ .type = TOK_VALUE, .keyword = "addr[:port]", .slot = ARG_NODE,
	  .next = t_join_opt },
	{ 0 }
};
static const struct token t_join[] = {
	{ .type = TOK_KEYWORD, .keyword = "nodes", .slot = NO_SLOT,
	  .next = t_join_node_value },
	{ 0 }
};
/* cluster store move <etcd://host:port[,...]> */
static const struct token t_store_url[] = {
	{ .type = TOK_VALUE, .keyword = "etcd://host:port[,host:port...]",
	  .slot = ARG_STORE, .next = t_end },
	{ 0 }
};
static const struct token t_store[] = {
	{ .type = TOK_KEYWORD, .keyword = "move", .slot = NO_SLOT,
	  .action = cmd_store_move, .next = t_store_url },
	{ 0 }
};
static const struct token t_create[] = {
	{ .type = TOK_KEYWORD, .keyword = "name", .slot = NO_SLOT,
	  .next = t_create_name_value },
	{ 0 }
};

/* cluster certificate set <name> certificate_file <path> [key_file <path>] */
static const struct token t_cert_key_path[] = {
	{ .type = TOK_FILE, .keyword = "path", .slot = ARG_KEY_FILE,
	  .next = t_end },
	{ 0 }
};
static const struct token t_cert_set_opt[] = {
	{ .type = TOK_ENDTOKEN },
	{ .type = TOK_KEYWORD, .keyword = "key_file", .slot = NO_SLOT,
	  .next = t_cert_key_path },
	{ 0 }
};
static const struct token t_cert_file_path[] = {
	{ .type = TOK_FILE, .keyword = "path", .slot = ARG_CERT_FILE,
	  .next = t_cert_set_opt },
	{ 0 }
};
static const struct token t_cert_file[] = {
	{ .type = TOK_KEYWORD, .keyword = "certificate_file",
	  .slot = NO_SLOT, .next = t_cert_file_path },
	{ 0 }
};
static const struct token t_cert_set[] = {
	{ .type = TOK_NAME, .keyword = "name", .slot = ARG_CERT_NAME,
	  .hints = adm_cert_names, .next = t_cert_file },
	{ 0 }
};
/* show takes an optional name */
static const struct token t_cert_opt_name[] = {
	{ .type = TOK_ENDTOKEN },
	{ .type = TOK_NAME, .keyword = "name", .slot = ARG_CERT_NAME,
	  .hints = adm_cert_names, .next = t_end },
	{ 0 }
};
/*
 * rotate [<name>] [force]: without force the server leaves a certificate
 * the operator supplied in place (rladmin's trailing-word style).
 */
#define FORCE_HELP	"also re-issue certificates that the operator supplied"
static const struct token t_rotate_force[] = {
	{ .type = TOK_ENDTOKEN },
	{ .type = TOK_KEYWORD, .keyword = "force", .slot = ARG_FORCE,
	  .next = t_end, .help = FORCE_HELP },
	{ 0 }
};
/*
 * rotate ca grace_days <days> | rotate ca now: the cluster CA's rollover;
 * the grace period is how long clients have to fetch the new ca.pem.
 */
static const struct token t_rotate_ca_days[] = {
	{ .type = TOK_VALUE, .keyword = "days", .slot = ARG_GRACE_DAYS,
	  .next = t_end },
	{ 0 }
};
static const struct token t_rotate_ca[] = {
	{ .type = TOK_KEYWORD, .keyword = "grace_days", .slot = NO_SLOT,
	  .next = t_rotate_ca_days, .help = "publish the new CA now, re-issue "
	  "the certificates from it after this many days" },
	{ .type = TOK_KEYWORD, .keyword = "now", .slot = ARG_NOW,
	  .next = t_end, .help = "re-issue at once: clients that have not "
	  "fetched the new ca.pem fail to verify" },
	{ 0 }
};
static const struct token t_rotate[] = {
	{ .type = TOK_ENDTOKEN },
	{ .type = TOK_KEYWORD, .keyword = "ca", .slot = NO_SLOT,
	  .action = cmd_ca_rotate, .next = t_rotate_ca,
	  .help = "roll the cluster CA over (both CAs published meanwhile)" },
	{ .type = TOK_KEYWORD, .keyword = "force", .slot = ARG_FORCE,
	  .next = t_end, .help = FORCE_HELP },
	{ .type = TOK_NAME, .keyword = "name", .slot = ARG_CERT_NAME,
	  .hints = adm_cert_names, .next = t_rotate_force },
	{ 0 }
};
/* rollback <name> [version <n>]: the newest earlier version by default */
static const struct token t_rollback_version_value[] = {
	{ .type = TOK_VALUE, .keyword = "n", .slot = ARG_VERSION,
	  .next = t_end },
	{ 0 }
};
static const struct token t_rollback_opt[] = {
	{ .type = TOK_ENDTOKEN },
	{ .type = TOK_KEYWORD, .keyword = "version", .slot = NO_SLOT,
	  .next = t_rollback_version_value,
	  .help = "the version to serve again (see cluster certificate "
	  "history)" },
	{ 0 }
};
static const struct token t_rollback[] = {
	{ .type = TOK_NAME, .keyword = "name", .slot = ARG_CERT_NAME,
	  .hints = adm_cert_names, .next = t_rollback_opt },
	{ 0 }
};
/* import <folder>: the legacy files (<name>_cert.pem, <name>_key.pem,
 * chain_certs.pem), all pairs in one change */
static const struct token t_import[] = {
	{ .type = TOK_FILE, .keyword = "folder", .slot = ARG_FOLDER,
	  .next = t_end },
	{ 0 }
};
/*
 * acme <name> set directory_url <url> [challenge <c>] [http_port <n>]
 * [identifiers <a,b>] [contact <mailto:x,...>] [key_type <t>]
 * [ca_bundle_file <path>] [dns_hook <path>] | show | renew | delete:
 * after each value the options table comes back, so they go in any order.
 */
static const char *const acme_challenges[] = { "http-01", "tls-alpn-01",
	"dns-01", NULL };
static const char *const acme_key_types[] = { "ec256", "rsa2048", NULL };
static const struct token t_acme_opts[10];
#define ACME_VALUE(name, word, s, h) \
static const struct token name[] = { \
	{ .type = TOK_VALUE, .keyword = word, .slot = s, .hints = h, \
	  .next = t_acme_opts, .usage = "[<option> <value> ...]" }, \
	{ 0 } \
}
ACME_VALUE(t_acme_chal_v, "challenge", ARG_ACME_CHALLENGE, acme_challenges);
ACME_VALUE(t_acme_port_v, "port", ARG_ACME_HTTP_PORT, NULL);
ACME_VALUE(t_acme_ids_v, "name[,name...]", ARG_ACME_IDENTS, NULL);
ACME_VALUE(t_acme_contact_v, "mailto:address[,...]", ARG_ACME_CONTACT, NULL);
ACME_VALUE(t_acme_kt_v, "key_type", ARG_ACME_KEY_TYPE, acme_key_types);
ACME_VALUE(t_acme_hook_v, "path", ARG_ACME_HOOK, NULL);
static const struct token t_acme_ca_v[] = {
	{ .type = TOK_FILE, .keyword = "path", .slot = ARG_ACME_CA_FILE,
	  .next = t_acme_opts, .usage = "[<option> <value> ...]" },
	{ 0 }
};
static const struct token t_acme_opts[10] = {
	{ .type = TOK_ENDTOKEN },
	{ .type = TOK_KEYWORD, .keyword = "challenge", .slot = NO_SLOT,
	  .next = t_acme_chal_v, .help = "how the names are proved: "
	  "http-01 (the default), tls-alpn-01 (api, cm) or dns-01" },
	{ .type = TOK_KEYWORD, .keyword = "http_port", .slot = NO_SLOT,
	  .next = t_acme_port_v, .help = "where every node answers http-01 "
	  "(80 by default)" },
	{ .type = TOK_KEYWORD, .keyword = "identifiers", .slot = NO_SLOT,
	  .next = t_acme_ids_v, .help = "the names to order (the cluster "
	  "name by default)" },
	{ .type = TOK_KEYWORD, .keyword = "contact", .slot = NO_SLOT,
	  .next = t_acme_contact_v },
	{ .type = TOK_KEYWORD, .keyword = "key_type", .slot = NO_SLOT,
	  .next = t_acme_kt_v, .help = "ec256 (the default) or rsa2048" },
	{ .type = TOK_KEYWORD, .keyword = "ca_bundle_file", .slot = NO_SLOT,
	  .next = t_acme_ca_v, .help = "the CAs the ACME server's HTTPS is "
	  "checked against (the system's by default)" },
	{ .type = TOK_KEYWORD, .keyword = "dns_hook", .slot = NO_SLOT,
	  .next = t_acme_hook_v, .help = "dns-01: run as `hook set|clear "
	  "<name> <txt value>`" },
	{ 0 }
};
static const struct token t_acme_dir_v[] = {
	{ .type = TOK_VALUE, .keyword = "url", .slot = ARG_ACME_DIR,
	  .next = t_acme_opts },
	{ 0 }
};
static const struct token t_acme_set[] = {
	{ .type = TOK_KEYWORD, .keyword = "directory_url", .slot = NO_SLOT,
	  .next = t_acme_dir_v, .help = "the CA's ACME directory (https://)" },
	{ 0 }
};
static const struct token t_acme_verb[] = {
	{ .type = TOK_KEYWORD, .keyword = "set", .slot = NO_SLOT,
	  .action = cmd_acme_set, .next = t_acme_set,
	  .help = "order this certificate from an ACME CA (asked at once)" },
	{ .type = TOK_KEYWORD, .keyword = "show", .slot = NO_SLOT,
	  .action = cmd_acme_show, .next = t_end },
	{ .type = TOK_KEYWORD, .keyword = "renew", .slot = NO_SLOT,
	  .action = cmd_acme_renew, .next = t_end,
	  .help = "order a new certificate now" },
	{ .type = TOK_KEYWORD, .keyword = "delete", .slot = NO_SLOT,
	  .action = cmd_acme_delete, .next = t_end,
	  .help = "stop ordering it; the certificate in place stays" },
	{ 0 }
};
static const struct token t_acme[] = {
	{ .type = TOK_NAME, .keyword = "name", .slot = ARG_CERT_NAME,
	  .hints = adm_cert_names, .next = t_acme_verb },
	{ 0 }
};
static const struct token t_cert[] = {
	{ .type = TOK_KEYWORD, .keyword = "set", .slot = NO_SLOT,
	  .action = cmd_cert_set, .next = t_cert_set },
	{ .type = TOK_KEYWORD, .keyword = "show", .slot = NO_SLOT,
	  .action = cmd_cert_show, .next = t_cert_opt_name },
	{ .type = TOK_KEYWORD, .keyword = "rotate", .slot = NO_SLOT,
	  .action = cmd_cert_rotate, .next = t_rotate },
	{ .type = TOK_KEYWORD, .keyword = "rollback", .slot = NO_SLOT,
	  .action = cmd_cert_rollback, .next = t_rollback },
	{ .type = TOK_KEYWORD, .keyword = "import", .slot = NO_SLOT,
	  .action = cmd_cert_import, .next = t_import },
	{ .type = TOK_KEYWORD, .keyword = "acme", .slot = NO_SLOT,
	  .next = t_acme, .help = "a certificate from an ACME CA, renewed "
	  "by the cluster" },
	{ 0 }
};

/*
 * cluster config <param> <value> [<param> <value> ...] [dry_run]: after
 * each value the command may end, end with dry_run, or take another pair,
 * so the pair table loops back to itself.  Its first CONFIG_ENDS entries
 * are those ways to end; `cluster config` points just past them, so that
 * at least one pair is required without a second copy of the parameter
 * list.  The values carry a .usage so that `?` and help do not unroll the
 * loop.
 */
#define CONFIG_PARAMS	8
#define CONFIG_ENDS	2
#define CONFIG_MORE	"[<param> <value> ...] [dry_run]"
static const struct token t_config_more[CONFIG_ENDS + CONFIG_PARAMS + 1];
static const struct token t_config_version[] = {
	{ .type = TOK_VALUE, .keyword = "version", .slot = ARG_PARAM_VALUE,
	  .hints = tls_versions, .next = t_config_more, .usage = CONFIG_MORE },
	{ 0 }
};
static const struct token t_config_on_off[] = {
	{ .type = TOK_VALUE, .keyword = "enabled|disabled",
	  .slot = ARG_PARAM_VALUE, .hints = on_off, .next = t_config_more,
	  .usage = CONFIG_MORE },
	{ 0 }
};
static const struct token t_config_subject_check[] = {
	{ .type = TOK_VALUE, .keyword = "check", .slot = ARG_PARAM_VALUE,
	  .hints = subject_checks, .next = t_config_more,
	  .usage = CONFIG_MORE },
	{ 0 }
};
static const struct token t_config_ciphers[] = {
	{ .type = TOK_VALUE, .keyword = "ciphers", .slot = ARG_PARAM_VALUE,
	  .next = t_config_more, .usage = CONFIG_MORE },
	{ 0 }
};
static const struct token t_config_more[CONFIG_ENDS + CONFIG_PARAMS + 1] = {
	{ .type = TOK_ENDTOKEN },
	{ .type = TOK_KEYWORD, .keyword = "dry_run", .slot = ARG_DRY_RUN,
	  .next = t_end, .help = "change nothing: show the changes and the "
	  "TLS sessions they would close" },
	{ .type = TOK_KEYWORD, .keyword = "min_control_TLS_version",
	  .slot = ARG_PARAM, .next = t_config_version },
	{ .type = TOK_KEYWORD, .keyword = "min_data_TLS_version",
	  .slot = ARG_PARAM, .next = t_config_version },
	{ .type = TOK_KEYWORD, .keyword = "control_cipher_suites",
	  .slot = ARG_PARAM, .next = t_config_ciphers },
	{ .type = TOK_KEYWORD, .keyword = "data_cipher_list",
	  .slot = ARG_PARAM, .next = t_config_ciphers },
	{ .type = TOK_KEYWORD, .keyword = "data_cipher_suites_tls_1_3",
	  .slot = ARG_PARAM, .next = t_config_ciphers },
	{ .type = TOK_KEYWORD, .keyword = "mtls_certificate_authentication",
	  .slot = ARG_PARAM, .next = t_config_on_off },
	{ .type = TOK_KEYWORD,
	  .keyword = "mtls_client_cert_subject_validation_type",
	  .slot = ARG_PARAM, .next = t_config_subject_check },
	{ .type = TOK_KEYWORD, .keyword = "control_plane_basic_authentication",
	  .slot = ARG_PARAM, .next = t_config_on_off },
	{ 0 }
};

/*
 * cluster ocsp certificate_compatible | status | test_certificate
 * cluster ocsp config <param> [set <value>]: rladmin's words.
 */
static const struct token t_ocsp_value[] = {
	{ .type = TOK_VALUE, .keyword = "value", .slot = ARG_PARAM_VALUE,
	  .next = t_end },
	{ 0 }
};
static const struct token t_ocsp_set[] = {
	{ .type = TOK_ENDTOKEN },
	{ .type = TOK_KEYWORD, .keyword = "set", .slot = NO_SLOT,
	  .next = t_ocsp_value, .help = "change it (without: show it)" },
	{ 0 }
};
static const struct token t_ocsp_param[] = {
	{ .type = TOK_KEYWORD, .keyword = "ocsp_functionality",
	  .slot = ARG_PARAM, .next = t_ocsp_set,
	  .help = "enabled | disabled" },
	{ .type = TOK_KEYWORD, .keyword = "query_frequency", .slot = ARG_PARAM,
	  .next = t_ocsp_set, .help = "seconds between queries (60-86400)" },
	{ .type = TOK_KEYWORD, .keyword = "recovery_frequency",
	  .slot = ARG_PARAM, .next = t_ocsp_set,
	  .help = "seconds between retries after a failure (60-86400)" },
	{ .type = TOK_KEYWORD, .keyword = "recovery_max_tries",
	  .slot = ARG_PARAM, .next = t_ocsp_set,
	  .help = "failures before the staple is dropped (1-100)" },
	{ .type = TOK_KEYWORD, .keyword = "response_timeout",
	  .slot = ARG_PARAM, .next = t_ocsp_set,
	  .help = "seconds to wait for the responder (1-60)" },
	{ .type = TOK_KEYWORD, .keyword = "responder_url", .slot = ARG_PARAM,
	  .next = t_end, .help = "from the proxy certificate (read-only)" },
	{ 0 }
};
static const struct token t_ocsp[] = {
	{ .type = TOK_KEYWORD, .keyword = "certificate_compatible",
	  .slot = NO_SLOT, .action = cmd_ocsp_compatible, .next = t_end,
	  .help = "does the proxy certificate name an OCSP responder?" },
	{ .type = TOK_KEYWORD, .keyword = "config", .slot = NO_SLOT,
	  .action = cmd_ocsp_config, .next = t_ocsp_param,
	  .help = "show or set one OCSP setting" },
	{ .type = TOK_KEYWORD, .keyword = "status", .slot = NO_SLOT,
	  .action = cmd_ocsp_status, .next = t_end,
	  .help = "the proxy certificate's last OCSP answer" },
	{ .type = TOK_KEYWORD, .keyword = "test_certificate", .slot = NO_SLOT,
	  .action = cmd_ocsp_test, .next = t_end,
	  .help = "ask the responder now" },
	{ 0 }
};

static const struct token t_cluster[] = {
	{ .type = TOK_KEYWORD, .keyword = "create", .slot = NO_SLOT,
	  .action = cmd_cluster_create, .next = t_create },
	{ .type = TOK_KEYWORD, .keyword = "join", .slot = NO_SLOT,
	  .action = cmd_cluster_join, .next = t_join },
	{ .type = TOK_KEYWORD, .keyword = "store", .slot = NO_SLOT,
	  .next = t_store },
	{ .type = TOK_KEYWORD, .keyword = "certificate", .slot = NO_SLOT,
	  .next = t_cert },
	{ .type = TOK_KEYWORD, .keyword = "ocsp", .slot = NO_SLOT,
	  .next = t_ocsp },
	{ .type = TOK_KEYWORD, .keyword = "config", .slot = NO_SLOT,
	  .action = cmd_cluster_config, .next = t_config_more + CONFIG_ENDS,
	  .usage = "<param> <value> " CONFIG_MORE },
	{ 0 }
};

static const struct token t_info[] = {
	{ .type = TOK_KEYWORD, .keyword = "cluster", .slot = NO_SLOT,
	  .action = cmd_cluster_info, .next = t_end },
	{ 0 }
};

/* node <uid> remove */
static const struct token t_node_remove[] = {
	{ .type = TOK_KEYWORD, .keyword = "remove", .slot = NO_SLOT,
	  .action = cmd_node_remove, .next = t_end },
	{ 0 }
};
static const struct token t_node[] = {
	{ .type = TOK_VALUE, .keyword = "uid", .slot = ARG_NODE,
	  .next = t_node_remove },
	{ 0 }
};

static const struct token t_main[] = {
	{ .type = TOK_KEYWORD, .keyword = "cluster", .slot = NO_SLOT,
	  .next = t_cluster },
	{ .type = TOK_KEYWORD, .keyword = "info", .slot = NO_SLOT,
	  .next = t_info },
	{ .type = TOK_KEYWORD, .keyword = "status", .slot = NO_SLOT,
	  .action = cmd_status_show, .next = t_end,
	  .help = "nodes, databases, the certificates each node serves, alerts" },
	{ .type = TOK_KEYWORD, .keyword = "node", .slot = NO_SLOT,
	  .next = t_node },
	{ .type = TOK_KEYWORD, .keyword = "help", .slot = NO_SLOT,
	  .action = cmd_help, .next = t_end, .help = "every command" },
	{ .type = TOK_KEYWORD, .keyword = "exit", .slot = NO_SLOT,
	  .action = cmd_quit, .next = t_end, .flags = TOK_INTERACTIVE,
	  .help = "leave the prompt (or ^D)" },
	{ .type = TOK_KEYWORD, .keyword = "quit", .slot = NO_SLOT,
	  .action = cmd_quit, .next = t_end, .flags = TOK_INTERACTIVE,
	  .help = "leave the prompt (or ^D)" },
	{ 0 }
};

static int
token_visible(const struct token *t, int interactive)
{
	return interactive || (t->flags & TOK_INTERACTIVE) == 0;
}

/*
 * The entry of table that word matches: keywords first and exactly (an
 * admin tool should not guess which command an abbreviation meant), then
 * any NAME/VALUE/FILE.  word == NULL matches the ENDTOKEN.
 */
static const struct token *
token_match(const struct token *table, const char *word, int interactive)
{
	const struct token *t;

	for (t = table; t->type != TOK_SENTINEL; t++) {
		if (!token_visible(t, interactive))
			continue;
		if (word == NULL && t->type == TOK_ENDTOKEN)
			return t;
		if (word != NULL && t->type == TOK_KEYWORD &&
		    strcmp(word, t->keyword) == 0)
			return t;
	}
	if (word == NULL)
		return NULL;
	for (t = table; t->type != TOK_SENTINEL; t++) {
		if (t->type == TOK_NAME || t->type == TOK_VALUE ||
		    t->type == TOK_FILE)
			return t;
	}
	return NULL;
}

/* How a token is named to the operator: the keyword or <placeholder>. */
static void
token_label(const struct token *t, char *buf, size_t size)
{
	if (t->type == TOK_KEYWORD)
		snprintf(buf, size, "%s", t->keyword);
	else
		snprintf(buf, size, "<%s>", t->keyword);
}

/* Appends s to buf, truncating; help and error lines are short. */
static void
str_append(char *buf, size_t size, const char *s)
{
	size_t len = strlen(buf);

	if (len + 1 < size)
		snprintf(buf + len, size - len, "%s", s);
}

/* "a, b, c" for the words table accepts; returns how many there are. */
static int
table_expected(const struct token *table, int interactive, char *buf,
    size_t size)
{
	const struct token *t;
	char label[128];
	int n = 0;

	buf[0] = '\0';
	for (t = table; t->type != TOK_SENTINEL; t++) {
		if (t->type == TOK_ENDTOKEN || !token_visible(t, interactive))
			continue;
		token_label(t, label, sizeof(label));
		if (n++ > 0)
			str_append(buf, size, ", ");
		str_append(buf, size, label);
	}
	return n;
}

static void
parse_error_print(const struct token *table, const char *word,
    int interactive)
{
	char expected[1024];
	int n;

	n = table_expected(table, interactive, expected, sizeof(expected));
	if (word == NULL)
		fprintf(stderr, "Missing argument: expected %s%s\n",
		    n > 1 ? "one of: " : "", expected);
	else if (n == 0)
		fprintf(stderr, "Unknown word '%s'. Expected end of command\n",
		    word);
	else
		fprintf(stderr, "Unknown word '%s'. Expected %s%s\n", word,
		    n > 1 ? "one of: " : "", expected);
}

/* Records what a matched word means; -1 (printed) on a repeated param. */
static int
token_store(const struct token *t, const char *word, struct cmd_args *args)
{
	size_t i;

	if (t->action != NULL)
		args->action = t->action;
	if (t->slot == NO_SLOT)
		return 0;
	if (t->slot != ARG_PARAM_VALUE) {
		args->arg[t->slot] = word;
		return 0;
	}
	for (i = 0; i < args->nparams; i++) {
		if (strcmp(args->params[i].name, args->arg[ARG_PARAM]) == 0) {
			fprintf(stderr, "Parameter '%s' given twice\n",
			    args->arg[ARG_PARAM]);
			return -1;
		}
	}
	if (args->nparams == CMD_PARAMS_MAX) {
		fprintf(stderr, "Too many parameters\n");
		return -1;
	}
	args->params[args->nparams].name = args->arg[ARG_PARAM];
	args->params[args->nparams].value = word;
	args->nparams++;
	return 0;
}

int
grammar_words_parse(int argc, const char *const *argv, int interactive,
    struct cmd_args *args)
{
	const struct token *table = t_main, *t;
	int i;

	memset(args, 0, sizeof(*args));
	for (i = 0; ; i++) {
		const char *word = i < argc ? argv[i] : NULL;

		if ((t = token_match(table, word, interactive)) == NULL) {
			parse_error_print(table, word, interactive);
			return -1;
		}
		if (t->type == TOK_ENDTOKEN)
			break;
		if (token_store(t, word, args) == -1)
			return -1;
		table = t->next;
	}
	if (args->action == NULL) {
		/* a grammar table bug, not the operator's */
		fprintf(stderr, "internal error: command has no action\n");
		return -1;
	}
	return 0;
}

/*
 * The table that follows the words; *badp is the index of the first word
 * that does not fit (the table returned is where it failed), else -1.
 */
static const struct token *
table_walk(int argc, const char *const *argv, int interactive, int *badp)
{
	const struct token *table = t_main, *t;
	int i;

	*badp = -1;
	for (i = 0; i < argc; i++) {
		if ((t = token_match(table, argv[i], interactive)) == NULL) {
			*badp = i;
			break;
		}
		table = t->next;
	}
	return table;
}

static void
hints_complete(const struct token *t, const char *partial,
    void (*add)(void *, const char *, enum compl_kind), void *arg)
{
	const char *const *h;
	size_t plen = strlen(partial);

	for (h = t->hints; *h != NULL; h++)
		if (strncmp(*h, partial, plen) == 0)
			add(arg, *h, COMPL_WORD);
}

void
grammar_words_complete(int argc, const char *const *argv,
    const char *partial, int interactive,
    void (*add)(void *, const char *, enum compl_kind), void *arg)
{
	const struct token *table, *t;
	char label[128];
	size_t plen = strlen(partial);
	int bad;

	table = table_walk(argc, argv, interactive, &bad);
	if (bad != -1)
		return;
	for (t = table; t->type != TOK_SENTINEL; t++) {
		if (!token_visible(t, interactive))
			continue;
		switch (t->type) {
		case TOK_KEYWORD:
			if (strncmp(t->keyword, partial, plen) == 0)
				add(arg, t->keyword, COMPL_WORD);
			break;
		case TOK_NAME:
		case TOK_VALUE:
			if (t->hints != NULL) {
				hints_complete(t, partial, add, arg);
			} else if (plen == 0) {
				token_label(t, label, sizeof(label));
				add(arg, label, COMPL_HINT);
			}
			break;
		case TOK_FILE:
			files_complete(partial, add, arg);
			break;
		default:
			break;
		}
	}
}

static void table_render(const struct token *, int, char *, size_t, int);

/* "word rest..." for one token and what may follow it. */
static void
token_render(const struct token *t, int interactive, char *buf, size_t size,
    int depth)
{
	char label[128], rest[512];

	token_label(t, label, sizeof(label));
	str_append(buf, size, label);
	if (t->usage != NULL) {
		str_append(buf, size, " ");
		str_append(buf, size, t->usage);
		return;
	}
	rest[0] = '\0';
	if (t->next != NULL)
		table_render(t->next, interactive, rest, sizeof(rest),
		    depth + 1);
	if (rest[0] != '\0') {
		str_append(buf, size, " ");
		str_append(buf, size, rest);
	}
}

/* A table as syntax: alternatives in {a | b}, optional parts in [ ]. */
static void
table_render(const struct token *table, int interactive, char *buf,
    size_t size, int depth)
{
	const struct token *t;
	char alts[512];
	int n = 0, optional = 0;

	if (depth > 16) {	/* a loop without .usage; do not recurse */
		str_append(buf, size, "...");
		return;
	}
	alts[0] = '\0';
	for (t = table; t->type != TOK_SENTINEL; t++) {
		if (!token_visible(t, interactive))
			continue;
		if (t->type == TOK_ENDTOKEN) {
			optional = 1;
			continue;
		}
		if (n++ > 0)
			str_append(alts, sizeof(alts), " | ");
		token_render(t, interactive, alts, sizeof(alts), depth);
	}
	if (n == 0)
		return;
	str_append(buf, size, optional ? "[" : (n > 1 ? "{" : ""));
	str_append(buf, size, alts);
	str_append(buf, size, optional ? "]" : (n > 1 ? "}" : ""));
}

/* Tables of plain keywords are printed as one help line per keyword. */
static int
table_expands(const struct token *table)
{
	const struct token *t;

	for (t = table; t->type != TOK_SENTINEL; t++)
		if (t->type != TOK_KEYWORD)
			return 0;
	return 1;
}

static void
help_walk(FILE *fp, const struct token *table, const char *prefix,
    int interactive)
{
	const struct token *t;
	char line[1024], expected[1024];

	for (t = table; t->type != TOK_SENTINEL; t++) {
		if (t->type != TOK_KEYWORD || !token_visible(t, interactive))
			continue;
		snprintf(line, sizeof(line), "%s%s", prefix,
		    prefix[0] != '\0' ? " " : "");
		if (t->usage == NULL && table_expands(t->next)) {
			str_append(line, sizeof(line), t->keyword);
			help_walk(fp, t->next, line, interactive);
			continue;
		}
		token_render(t, interactive, line, sizeof(line), 0);
		fprintf(fp, "  %s\n", line);
		if (t->usage != NULL) {
			table_expected(t->next, interactive, expected,
			    sizeof(expected));
			fprintf(fp, "      <param>: %s\n", expected);
		}
	}
}

void
grammar_help_print(FILE *fp, int interactive)
{
	char names[256];
	const char *const *n;

	fprintf(fp, "Commands:\n");
	help_walk(fp, t_main, "", interactive);
	names[0] = '\0';
	for (n = adm_cert_names; *n != NULL; n++) {
		if (n != adm_cert_names)
			str_append(names, sizeof(names), ", ");
		str_append(names, sizeof(names), *n);
	}
	fprintf(fp, "Certificate names: %s\n", names);
	if (interactive)
		fprintf(fp, "? lists what may come next, TAB completes, ^C drops "
		    "the line, ^D or exit leaves.\n");
}

/*
 * What may follow t: its .usage, or its next table rendered as syntax; a
 * choice of subcommands only by their first words, which `?` after one of
 * them details (the whole tree on one line is unreadable).
 */
static void
token_rest_render(const struct token *t, int interactive, char *buf,
    size_t size)
{
	const struct token *n;
	int count = 0, i = 0;

	buf[0] = '\0';
	if (t->usage != NULL) {
		str_append(buf, size, t->usage);
		return;
	}
	if (t->next == NULL)
		return;
	for (n = t->next; n->type != TOK_SENTINEL; n++)
		count += token_visible(n, interactive);
	if (count < 2 || !table_expands(t->next)) {
		table_render(t->next, interactive, buf, size, 1);
		return;
	}
	str_append(buf, size, "{");
	for (n = t->next; n->type != TOK_SENTINEL; n++) {
		if (!token_visible(n, interactive))
			continue;
		if (i++ > 0)
			str_append(buf, size, " | ");
		str_append(buf, size, n->keyword);
	}
	str_append(buf, size, "} ...");
}

/* The `?` rows of one token that match partial; returns how many. */
static int
token_choices_add(struct table *tbl, const struct token *t,
    const char *partial, int interactive)
{
	const char *const *h;
	char label[128], rest[512];
	size_t plen = strlen(partial);
	int n = 0;

	if (t->type == TOK_KEYWORD) {
		if (strncmp(t->keyword, partial, plen) != 0)
			return 0;
		token_rest_render(t, interactive, rest, sizeof(rest));
		if (table_row_add(tbl) == 0) {
			table_cell_printf(tbl, 0, "%s", t->keyword);
			table_cell_printf(tbl, 1, "%s%s%s", rest,
			    rest[0] != '\0' && t->help != NULL ? " - " : "",
			    t->help != NULL ? t->help : "");
		}
		return 1;
	}
	if (t->hints != NULL) {
		/* the words themselves: they are what the operator asked */
		for (h = t->hints; *h != NULL; h++) {
			if (strncmp(*h, partial, plen) != 0 ||
			    table_row_add(tbl) == -1)
				continue;
			table_cell_printf(tbl, 0, "%s", *h);
			table_cell_printf(tbl, 1, "%s", "");
			n++;
		}
		return n;
	}
	if (plen > 0)	/* free text: nothing to match a prefix against */
		return 0;
	token_label(t, label, sizeof(label));
	token_rest_render(t, interactive, rest, sizeof(rest));
	if (table_row_add(tbl) == 0) {
		table_cell_printf(tbl, 0, "%s", label);
		table_cell_printf(tbl, 1, "%s", rest);
	}
	return 1;
}

int
grammar_choices_print(FILE *fp, int argc, const char *const *argv,
    const char *partial, int interactive)
{
	const struct token *table, *t;
	struct table *tbl;
	int bad, n = 0, may_end = 0;

	table = table_walk(argc, argv, interactive, &bad);
	if (bad != -1) {
		parse_error_print(table, argv[bad], interactive);
		return -1;
	}
	if ((tbl = table_new(NULL, 2)) == NULL) {
		fprintf(stderr, "Error: out of memory\n");
		return -1;
	}
	for (t = table; t->type != TOK_SENTINEL; t++) {
		if (!token_visible(t, interactive))
			continue;
		if (t->type == TOK_ENDTOKEN)
			may_end = partial[0] == '\0';
		else
			n += token_choices_add(tbl, t, partial, interactive);
	}
	/* last, below the words that make the command go on */
	if (may_end && table_row_add(tbl) == 0) {
		table_cell_printf(tbl, 0, "%s", "<Enter>");
		table_cell_printf(tbl, 1, "%s", "run the command as typed");
		n++;
	}
	if (n == 0)
		parse_error_print(table, partial[0] != '\0' ? partial : NULL,
		    interactive);
	else
		table_print(tbl, fp, "  ");
	table_free(tbl);
	return n == 0 ? -1 : 0;
}

int
grammar_help_literal(int argc, const char *const *argv, const char *partial,
    int interactive)
{
	const struct token *table, *t;
	const char *const *h;
	size_t plen = strlen(partial);
	int bad, free_text = 0;

	if (plen == 0)
		return 0;
	table = table_walk(argc, argv, interactive, &bad);
	if (bad != -1)
		return 0;	/* `?` then says what is wrong */
	for (t = table; t->type != TOK_SENTINEL; t++) {
		if (!token_visible(t, interactive))
			continue;
		if (t->type == TOK_KEYWORD &&
		    strncmp(t->keyword, partial, plen) == 0)
			return 0;
		for (h = t->hints; h != NULL && *h != NULL; h++)
			if (strncmp(*h, partial, plen) == 0)
				return 0;
		if (t->type == TOK_VALUE || t->type == TOK_FILE)
			free_text = 1;
	}
	return free_text;
}

int
grammar_words_help(FILE *fp, int argc, const char *const *argv,
    int interactive)
{
	const char *last;
	char *partial;
	size_t len;
	int rc;

	if (argc == 0)
		return 0;
	last = argv[argc - 1];
	if ((len = strlen(last)) == 0 || last[len - 1] != '?')
		return 0;
	if ((partial = strndup(last, len - 1)) == NULL) {
		fprintf(stderr, "Error: out of memory\n");
		return -1;
	}
	if (grammar_help_literal(argc - 1, argv, partial, interactive))
		rc = 0;
	else
		rc = grammar_choices_print(fp, argc - 1, argv, partial,
		    interactive) == 0 ? 1 : -1;
	free(partial);
	return rc;
}

/*
 * Keywords whose next word is a secret (see the tables above).  Checked
 * word by word rather than through the parse, because a line that does
 * not parse may fail before it reaches the password.
 */
static const char *const secret_keywords[] = { "password", NULL };

int
grammar_words_secret(int argc, const char *const *argv)
{
	const char *const *k;
	int i;

	for (i = 0; i < argc; i++)
		for (k = secret_keywords; *k != NULL; k++)
			if (strcmp(argv[i], *k) == 0)
				return 1;
	return 0;
}
