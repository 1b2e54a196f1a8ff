/*
 * cmd_acme.c — `cluster certificate acme <name> set|show|renew|delete`:
 * a certificate ordered from an ACME CA, over
 * /v1/cluster/certificates/<name>/acme.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moatadm.h"

/* method on /v1/cluster/certificates/<name>/acme<tail>; *resp (may be
 * NULL) gets the answer on ADM_EXIT_OK, the caller's. */
static int
acme_call(struct adm_session *sess, const struct cmd_args *args,
    const char *method, const char *tail, const json_t *body, json_t **resp)
{
	char	*name = http_path_escape(args->arg[ARG_CERT_NAME]), *path;
	int	 rc = ADM_EXIT_SERVER;

	path = name ? str_printf("/v1/cluster/certificates/%s/acme%s", name,
	    tail) : NULL;
	if (path != NULL)
		rc = session_api_call(sess, method, path, body, resp);
	free(name);
	free(path);
	return rc;
}

/* "a,b,c" as a JSON array of strings. */
static json_t *
word_list(const char *s)
{
	json_t		*a = json_array();
	const char	*p = s;
	size_t		 n;

	while (a != NULL && *p != '\0') {
		n = strcspn(p, ",");
		if (n > 0)
			json_array_append_new(a, json_stringn(p, n));
		p += n;
		if (*p == ',')
			p++;
	}
	return a;
}

int
cmd_acme_set(struct adm_session *sess, const struct cmd_args *args)
{
	json_t	*body, *resp = NULL;
	char	*pem = NULL, *err = NULL, *end;
	size_t	 len;
	long	 port;
	int	 rc;

	body = json_pack("{s:s}", "directory_url", args->arg[ARG_ACME_DIR]);
	if (args->arg[ARG_ACME_CHALLENGE] != NULL)
		json_object_set_new(body, "challenge",
		    json_string(args->arg[ARG_ACME_CHALLENGE]));
	if (args->arg[ARG_ACME_KEY_TYPE] != NULL)
		json_object_set_new(body, "key_type",
		    json_string(args->arg[ARG_ACME_KEY_TYPE]));
	if (args->arg[ARG_ACME_HOOK] != NULL)
		json_object_set_new(body, "dns_hook",
		    json_string(args->arg[ARG_ACME_HOOK]));
	if (args->arg[ARG_ACME_IDENTS] != NULL)
		json_object_set_new(body, "identifiers",
		    word_list(args->arg[ARG_ACME_IDENTS]));
	if (args->arg[ARG_ACME_CONTACT] != NULL)
		json_object_set_new(body, "contact",
		    word_list(args->arg[ARG_ACME_CONTACT]));
	if (args->arg[ARG_ACME_HTTP_PORT] != NULL) {
		errno = 0;
		port = strtol(args->arg[ARG_ACME_HTTP_PORT], &end, 10);
		if (errno != 0 || *end != '\0' || port < 1 || port > 65535) {
			fprintf(stderr, "Error: http_port takes a port number "
			    "(1-65535)\n");
			json_decref(body);
			return ADM_EXIT_USAGE;
		}
		json_object_set_new(body, "http_port", json_integer(port));
	}
	if (args->arg[ARG_ACME_CA_FILE] != NULL) {
		if (pem_file_read(args->arg[ARG_ACME_CA_FILE], &pem, &len,
		    &err) == -1) {
			fprintf(stderr, "Error: %s\n", err);
			free(err);
			json_decref(body);
			return ADM_EXIT_USAGE;
		}
		json_object_set_new(body, "ca_bundle", json_string(pem));
		mem_wipe_free(pem);
	}
	/* moatd asks the CA before it answers: a few seconds. */
	rc = acme_call(sess, args, "PUT", "", body, &resp);
	if (rc == ADM_EXIT_OK) {
		printf("%s: ordered from %s (%s); the order goes on in the "
		    "background (cluster certificate acme %s show)\n",
		    args->arg[ARG_CERT_NAME], args->arg[ARG_ACME_DIR],
		    json_string_value(json_object_get(resp, "challenge")),
		    args->arg[ARG_CERT_NAME]);
	}
	json_decref(resp);
	json_decref(body);
	return rc;
}

int
cmd_acme_show(struct adm_session *sess, const struct cmd_args *args)
{
	json_t	*resp = NULL;
	int	 rc;

	/* The CA bundle is long and says nothing at a glance. */
	if ((rc = acme_call(sess, args, "GET", "", NULL, &resp)) ==
	    ADM_EXIT_OK) {
		if (json_is_string(json_object_get(resp, "ca_bundle")))
			json_object_set_new(resp, "ca_bundle",
			    json_string("(given)"));
		json_fields_print(resp, "");
	}
	json_decref(resp);
	return rc;
}

int
cmd_acme_renew(struct adm_session *sess, const struct cmd_args *args)
{
	int rc;

	if ((rc = acme_call(sess, args, "POST", "/renew", NULL, NULL)) ==
	    ADM_EXIT_OK)
		printf("%s: a new order starts now (cluster certificate acme "
		    "%s show)\n", args->arg[ARG_CERT_NAME],
		    args->arg[ARG_CERT_NAME]);
	return rc;
}

int
cmd_acme_delete(struct adm_session *sess, const struct cmd_args *args)
{
	int rc;

	if ((rc = acme_call(sess, args, "DELETE", "", NULL, NULL)) ==
	    ADM_EXIT_OK)
		printf("%s: no longer ordered from an ACME CA; the certificate "
		    "in place stays\n", args->arg[ARG_CERT_NAME]);
	return rc;
}
