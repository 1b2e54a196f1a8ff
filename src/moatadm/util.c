/* Small helpers shared by the commands: memory, text, API call wrapper. */
#include <malloc.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "moatadm.h"

void
mem_wipe_free(void *p)
{
	if (p == NULL)
		return;
	/*
	 * The usable size covers the whole block, so callers need not know
	 * how long a secret was; jansson's strings included.
	 */
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

char *
str_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

static char *
json_array_format(const json_t *v)
{
	char *out = NULL, *item;
	size_t len = 0, i;
	FILE *fp;

	if ((fp = open_memstream(&out, &len)) == NULL)
		return NULL;
	for (i = 0; i < json_array_size(v); i++) {
		item = json_value_format(json_array_get(v, i));
		fprintf(fp, "%s%s", i > 0 ? ", " : "", item ? item : "?");
		free(item);
	}
	if (fclose(fp) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

char *
json_value_format(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		return strdup(json_string_value(v));
	case JSON_INTEGER:
		return str_printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	case JSON_REAL:
		return str_printf("%g", json_real_value(v));
	case JSON_TRUE:
		return strdup("true");
	case JSON_FALSE:
		return strdup("false");
	case JSON_ARRAY:
		return json_array_format(v);
	case JSON_OBJECT:
		return json_dumps(v, JSON_COMPACT);
	default:
		return strdup("-");
	}
}

char *
json_member_format(const json_t *obj, const char *key)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) :
	    NULL;

	return v != NULL ? json_value_format(v) : strdup("-");
}

/*
 * What the operator can do next, for errors whose way out is a moatadm
 * word the server's sentence cannot name.
 */
static const struct {
	const char	*code;
	const char	*hint;
} error_hints[] = {
	{ "unsupported_rotation",
	  "The certificate was supplied by the operator, not issued by the "
	  "cluster CA.\nTo replace it with one from the cluster CA anyway, "
	  "add the word force:\n  cluster certificate rotate <name> force" },
};

/* The server's own sentence when it sent one; that is the useful part. */
static void
server_error_print(const struct http_response *resp)
{
	const char *desc, *code;
	size_t i;

	desc = json_string_value(json_object_get(resp->body, "description"));
	code = json_string_value(json_object_get(resp->body, "error_code"));
	if (desc != NULL)
		fprintf(stderr, "Error: %s\n", desc);
	else if (code != NULL)
		fprintf(stderr, "Error: %s (HTTP %ld)\n", code, resp->status);
	else
		fprintf(stderr, "Error: moatd answered HTTP %ld\n",
		    resp->status);
	for (i = 0; code != NULL && i < sizeof(error_hints) /
	    sizeof(error_hints[0]); i++)
		if (strcmp(code, error_hints[i].code) == 0)
			fprintf(stderr, "%s\n", error_hints[i].hint);
}

/* 409 not_all_nodes_updated: stored, but not every node confirmed yet. */
static int
response_is_partial(const struct http_response *resp)
{
	const char *code;

	code = json_string_value(json_object_get(resp->body, "error_code"));
	return resp->status == 409 && code != NULL &&
	    strcmp(code, "not_all_nodes_updated") == 0;
}

int
session_api_call(struct adm_session *sess, const char *method,
    const char *path, const json_t *body, json_t **out)
{
	struct http_response resp;
	char *err;

	if (out != NULL)
		*out = NULL;
	if (http_client_request(sess->http, method, path, body, &resp,
	    &err) == -1) {
		fprintf(stderr, "%s\n", err != NULL ? err :
		    "Error: request to moatd failed");
		free(err);
		return ADM_EXIT_SERVER;
	}
	if (response_is_partial(&resp)) {
		json_decref(sess->partial);
		sess->partial = json_incref(resp.body);
	} else if (resp.status < 200 || resp.status > 299) {
		server_error_print(&resp);
		http_response_clear(&resp);
		return ADM_EXIT_SERVER;
	}
	if (out != NULL) {
		*out = resp.body;
		resp.body = NULL;
	}
	http_response_clear(&resp);
	return ADM_EXIT_OK;
}

int
session_command_run(struct adm_session *sess, const struct cmd_args *args)
{
	int rc;

	rc = args->action(sess, args);
	if (sess->partial != NULL) {
		rollout_report_print(sess->partial);
		json_decref(sess->partial);
		sess->partial = NULL;
		if (rc == ADM_EXIT_OK)
			rc = ADM_EXIT_PARTIAL;
	}
	fflush(stdout);
	return rc;
}

void
json_fields_print(const json_t *o, const char *indent)
{
	const char	*key;
	json_t		*v;
	char		*text;

	json_object_foreach((json_t *)o, key, v) {
		text = json_value_format(v);
		printf("%s%s: %s\n", indent, key, text != NULL ? text : "?");
		free(text);
	}
}

char *
password_read(const char *what)
{
	struct termios	 old, quiet;
	const char	*env = getenv("MOAT_PASSWORD");
	char		*line = NULL;
	size_t		 cap = 0;
	ssize_t		 n;
	int		 tty = isatty(STDIN_FILENO), hidden = 0;

	if (env != NULL && *env != '\0')
		return strdup(env);
	if (tty) {
		fprintf(stderr, "%s: ", what);
		fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			hidden = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
		}
	}
	n = getline(&line, &cap, stdin);
	if (hidden) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (n <= 0) {
		mem_wipe_free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}
