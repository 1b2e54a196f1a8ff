/*
 * cmd_ocsp.c — `cluster ocsp ...`: OCSP stapling of the proxy
 * certificate, with rladmin's words, over /v1/ocsp.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moatadm.h"

int
cmd_ocsp_compatible(struct adm_session *sess, const struct cmd_args *args)
{
	json_t		*resp = NULL;
	const char	*url;
	int		 rc;

	(void)args;
	if ((rc = session_api_call(sess, "GET", "/v1/ocsp", NULL, &resp)) !=
	    ADM_EXIT_OK)
		return rc;
	url = json_string_value(json_object_get(resp, "responder_url"));
	if (url != NULL)
		printf("Success. OCSP URI is %s\n", url);
	else
		fprintf(stderr, "Error: the proxy certificate names no OCSP "
		    "responder (no OCSP URI in its Authority Information "
		    "Access)\n");
	json_decref(resp);
	return url != NULL ? ADM_EXIT_OK : ADM_EXIT_SERVER;
}

/* The API's value of param from the word given. */
static json_t *
ocsp_value(const char *param, const char *word)
{
	char	*end;
	long	 v;

	if (strcmp(param, "ocsp_functionality") == 0) {
		if (strcmp(word, "enabled") == 0)
			return json_true();
		if (strcmp(word, "disabled") == 0)
			return json_false();
		fprintf(stderr, "Error: ocsp_functionality takes enabled or "
		    "disabled\n");
		return NULL;
	}
	errno = 0;
	v = strtol(word, &end, 10);
	if (errno != 0 || end == word || *end != '\0') {
		fprintf(stderr, "Error: %s takes a whole number of %s\n",
		    param, strcmp(param, "recovery_max_tries") == 0 ?
		    "tries" : "seconds");
		return NULL;
	}
	return json_integer(v);
}

static void
ocsp_param_print(const json_t *settings, const char *param)
{
	json_t *v = json_object_get(settings, param);

	if (strcmp(param, "ocsp_functionality") == 0)
		printf("%s: %s\n", param, json_is_true(v) ? "enabled" :
		    "disabled");
	else if (json_is_integer(v))
		printf("%s: %" JSON_INTEGER_FORMAT "\n", param,
		    json_integer_value(v));
	else
		printf("%s: %s\n", param, json_string_value(v) ?
		    json_string_value(v) : "(none)");
}

int
cmd_ocsp_config(struct adm_session *sess, const struct cmd_args *args)
{
	const char	*param = args->arg[ARG_PARAM];
	json_t		*body, *v, *resp = NULL;
	int		 rc;

	if (args->nparams == 0) {
		if ((rc = session_api_call(sess, "GET", "/v1/ocsp", NULL,
		    &resp)) == ADM_EXIT_OK)
			ocsp_param_print(resp, param);
		json_decref(resp);
		return rc;
	}
	if ((v = ocsp_value(param, args->params[0].value)) == NULL)
		return ADM_EXIT_USAGE;
	body = json_object();
	json_object_set_new(body, param, v);
	rc = session_api_call(sess, "PUT", "/v1/ocsp", body, &resp);
	json_decref(body);
	if (rc == ADM_EXIT_OK) {
		printf("Updated OCSP configuration\n");
		ocsp_param_print(resp, param);
	}
	json_decref(resp);
	return rc;
}

int
cmd_ocsp_status(struct adm_session *sess, const struct cmd_args *args)
{
	json_t	*resp = NULL;
	int	 rc;

	(void)args;
	if ((rc = session_api_call(sess, "GET", "/v1/ocsp/status", NULL,
	    &resp)) != ADM_EXIT_OK)
		return rc;
	printf("OCSP status of the proxy certificate:\n");
	json_fields_print(resp, "   ");
	json_decref(resp);
	return ADM_EXIT_OK;
}

int
cmd_ocsp_test(struct adm_session *sess, const struct cmd_args *args)
{
	json_t	*resp = NULL;
	int	 rc;

	(void)args;
	if ((rc = session_api_call(sess, "POST", "/v1/ocsp/test", NULL,
	    &resp)) != ADM_EXIT_OK)
		return rc;
	printf("Success. The responder says the proxy certificate is %s\n",
	    json_string_value(json_object_get(resp, "cert_status")) ?
	    json_string_value(json_object_get(resp, "cert_status")) : "?");
	json_fields_print(resp, "   ");
	json_decref(resp);
	return ADM_EXIT_OK;
}
