/* cluster certificate set | show | rotate | rollback */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "moatadm.h"

/* Files read for one `certificate set`; everything here is wiped. */
struct cert_material {
	char	*cert_text;
	char	*key_text;
	char	*cert;		/* the CERTIFICATE blocks, in file order */
	char	*key;		/* the one PRIVATE KEY block */
};

static void
cert_material_clear(struct cert_material *m)
{
	mem_wipe_free(m->cert_text);
	mem_wipe_free(m->key_text);
	mem_wipe_free(m->cert);
	mem_wipe_free(m->key);
	memset(m, 0, sizeof(*m));
}

/* The key comes from key_file, else from inside the certificate file. */
static int
cert_key_load(struct cert_material *m, const char *name, const char *key_path,
    char **errp)
{
	size_t len;

	if (key_path == NULL) {
		if (m->key == NULL) {
			*errp = str_printf("key_file is required for "
			    "certificate %s", name);
			return -1;
		}
		return 0;
	}
	if (pem_file_read(key_path, &m->key_text, &len, errp) == -1 ||
	    pem_blocks_split(m->key_text, key_path, NULL, &m->key,
	    errp) == -1)
		return -1;
	if (m->key == NULL) {
		*errp = str_printf("no private key found in %s", key_path);
		return -1;
	}
	return 0;
}

/* 0 with m filled, or -1 with *errp: a usage error naming the file. */
static int
cert_material_load(struct cert_material *m, const struct cmd_args *args,
    char **errp)
{
	const char *cert_path = args->arg[ARG_CERT_FILE];
	const char *key_path = args->arg[ARG_KEY_FILE];
	size_t len;

	if (pem_file_read(cert_path, &m->cert_text, &len, errp) == -1 ||
	    pem_blocks_split(m->cert_text, cert_path, &m->cert,
	    key_path == NULL ? &m->key : NULL, errp) == -1)
		return -1;
	if (m->cert == NULL) {
		*errp = str_printf("no certificate found in %s", cert_path);
		return -1;
	}
	return cert_key_load(m, args->arg[ARG_CERT_NAME], key_path, errp);
}

/*
 * The same certificate set again makes no new version; the server says
 * "unchanged", and "replaced" would tell the operator something false.
 */
static void
cert_set_result_print(const json_t *resp, const char *name, const char *path)
{
	char *version, *fp;

	if (!json_is_true(json_object_get(resp, "unchanged"))) {
		printf("Set %s certificate to contents of file %s\n", name,
		    path);
		return;
	}
	version = json_member_format(resp, "version");
	fp = json_member_format(resp, "fingerprint_sha256");
	printf("Certificate %s from file %s was already in place: no new "
	    "version (still version %s, fingerprint %s)\n", name, path,
	    version != NULL ? version : "?", fp != NULL ? fp : "?");
	free(version);
	free(fp);
}

/* mtls_trusted_ca: the CAs of the client certificates that sign in; a
 * certificate without a key. */
static int
cert_set_trusted_ca(struct adm_session *sess, const struct cmd_args *args)
{
	const char	*path = args->arg[ARG_CERT_FILE];
	json_t		*body, *resp = NULL;
	char		*text = NULL, *err = NULL;
	size_t		 len;
	int		 rc;

	if (args->arg[ARG_KEY_FILE] != NULL) {
		fprintf(stderr, "Error: mtls_trusted_ca is a CA certificate "
		    "without a key: leave out key_file\n");
		return ADM_EXIT_USAGE;
	}
	if (pem_file_read(path, &text, &len, &err) == -1) {
		fprintf(stderr, "Error: %s\n", err);
		free(err);
		return ADM_EXIT_USAGE;
	}
	body = json_pack("{s:s, s:s}", "name", "mtls_trusted_ca",
	    "certificate", text);
	free(text);
	if (body == NULL) {
		fprintf(stderr, "Error: %s must be UTF-8 text\n", path);
		return ADM_EXIT_USAGE;
	}
	rc = session_api_call(sess, "PUT", "/v1/cluster/update_cert", body,
	    &resp);
	if (rc == ADM_EXIT_OK)
		printf(json_is_true(json_object_get(resp, "unchanged")) ?
		    "mtls_trusted_ca from file %s was already in place\n" :
		    "Set mtls_trusted_ca certificate to contents of file %s\n",
		    path);
	json_decref(resp);
	json_decref(body);
	return rc;
}

int
cmd_cert_set(struct adm_session *sess, const struct cmd_args *args)
{
	struct cert_material m = { 0 };
	const char *name = args->arg[ARG_CERT_NAME];
	json_t *body = NULL, *resp = NULL;
	char *err = NULL;
	int rc = ADM_EXIT_USAGE;

	if (strcmp(name, "mtls_trusted_ca") == 0)
		return cert_set_trusted_ca(sess, args);
	if (cert_material_load(&m, args, &err) == -1)
		goto out;
	body = json_pack("{s:s, s:s, s:s}", "name", name, "key", m.key,
	    "certificate", m.cert);
	if (body == NULL) {
		err = str_printf("certificate name and files must be UTF-8 "
		    "text");
		goto out;
	}
	rc = session_api_call(sess, "PUT", "/v1/cluster/update_cert", body,
	    &resp);
	if (rc == ADM_EXIT_OK)
		cert_set_result_print(resp, name, args->arg[ARG_CERT_FILE]);
	json_decref(resp);
 out:
	if (err != NULL)
		fprintf(stderr, "Error: %s\n", err);
	free(err);
	json_decref(body);	/* jansson frees through mem_wipe_free */
	cert_material_clear(&m);
	return rc;
}

static int
cert_get(struct adm_session *sess, const char *name, json_t **out)
{
	char *esc, *path;
	int rc;

	if ((esc = http_path_escape(name)) == NULL ||
	    (path = str_printf("/v1/cluster/certificates/%s", esc)) == NULL) {
		free(esc);
		fprintf(stderr, "Error: out of memory\n");
		return ADM_EXIT_SERVER;
	}
	rc = session_api_call(sess, "GET", path, NULL, out);
	free(path);
	free(esc);
	if (rc == ADM_EXIT_OK && !json_is_object(*out)) {
		fprintf(stderr, "Error: moatd sent no certificate object\n");
		json_decref(*out);
		*out = NULL;
		rc = ADM_EXIT_SERVER;
	}
	return rc;
}

static int
cert_fields_print(struct adm_session *sess, const char *name)
{
	json_t *cert;
	int rc;

	if ((rc = cert_get(sess, name, &cert)) != ADM_EXIT_OK)
		return rc;
	json_fields_print(cert, "");
	json_decref(cert);
	return ADM_EXIT_OK;
}

#define CERT_COLS	5

static const char *const cert_table_header[CERT_COLS] = {
	"NAME", "SUBJECT", "NOT_AFTER", "VERSION", "FINGERPRINT(SHA256)"
};
static const char *const cert_table_fields[CERT_COLS] = {
	"name", "subject", "not_after", "version", "fingerprint_sha256"
};

/* Fetches every certificate first so that a failure prints no table. */
static int
cert_table_show(struct adm_session *sess)
{
	struct table *t;
	json_t *cert;
	size_t n, c;
	int rc = ADM_EXIT_OK;

	if ((t = table_new(cert_table_header, CERT_COLS)) == NULL) {
		fprintf(stderr, "Error: out of memory\n");
		return ADM_EXIT_SERVER;
	}
	for (n = 0; adm_cert_names[n] != NULL; n++) {
		if ((rc = cert_get(sess, adm_cert_names[n], &cert)) !=
		    ADM_EXIT_OK)
			break;
		if (table_row_add(t) == 0)
			for (c = 0; c < CERT_COLS; c++)
				table_cell_json(t, c, cert,
				    cert_table_fields[c]);
		json_decref(cert);
	}
	if (rc == ADM_EXIT_OK)
		table_print(t, stdout, "");
	table_free(t);
	return rc;
}

int
cmd_cert_show(struct adm_session *sess, const struct cmd_args *args)
{
	if (args->arg[ARG_CERT_NAME] != NULL)
		return cert_fields_print(sess, args->arg[ARG_CERT_NAME]);
	return cert_table_show(sess);
}

static void
cert_rotated_print(const json_t *resp)
{
	const json_t *c;
	size_t i;

	json_array_foreach(json_object_get(resp, "certificates"), i, c)
		rollout_cert_print("Rotated", c);
}

/* Returns how many certificates the server left in place. */
static size_t
cert_skipped_print(const json_t *resp)
{
	const json_t *skipped = json_object_get(resp, "skipped"), *c;
	char *name, *reason;
	size_t i;

	json_array_foreach(skipped, i, c) {
		name = json_member_format(c, "name");
		reason = json_member_format(c, "reason");
		printf("Skipped certificate %s: %s\n", name != NULL ? name :
		    "?", reason != NULL ? reason : "?");
		free(name);
		free(reason);
	}
	return json_array_size(skipped);
}

int
cmd_cert_rotate(struct adm_session *sess, const struct cmd_args *args)
{
	const char *name = args->arg[ARG_CERT_NAME];
	json_t *body, *resp = NULL;
	int rc;

	body = name != NULL ? json_pack("{s:s}", "name", name) :
	    json_object();
	if (body == NULL) {
		fprintf(stderr, "Error: certificate name must be UTF-8 text\n");
		return ADM_EXIT_USAGE;
	}
	/* force: re-issue even a certificate that the operator supplied */
	if (args->arg[ARG_FORCE] != NULL &&
	    json_object_set_new(body, "force", json_true()) == -1) {
		json_decref(body);
		fprintf(stderr, "Error: out of memory\n");
		return ADM_EXIT_SERVER;
	}
	rc = session_api_call(sess, "POST", "/v1/cluster/certificates/rotate",
	    body, &resp);
	json_decref(body);
	if (rc != ADM_EXIT_OK)
		return rc;
	cert_rotated_print(resp);
	if (cert_skipped_print(resp) > 0 && args->arg[ARG_FORCE] == NULL)
		printf("Skipped certificates stay as they are. To replace "
		    "them with certificates from\nthe cluster CA anyway: "
		    "cluster certificate rotate [<name>] force\n");
	json_decref(resp);
	return ADM_EXIT_OK;
}

int
cmd_cert_rollback(struct adm_session *sess, const struct cmd_args *args)
{
	const char *name = args->arg[ARG_CERT_NAME], *v = args->arg[ARG_VERSION];
	json_t *body, *resp = NULL;
	char *path, *esc, *end = NULL;
	long n = 0;
	int rc;

	if (v != NULL) {
		n = strtol(v, &end, 10);
		if (end == v || *end != '\0' || n <= 0 || n > 100000000) {
			fprintf(stderr, "Error: version must be a positive "
			    "number\n");
			return ADM_EXIT_USAGE;
		}
	}
	body = v != NULL ? json_pack("{s:I}", "version", (json_int_t)n) :
	    json_object();
	esc = http_path_escape(name);
	path = esc != NULL ? str_printf("/v1/cluster/certificates/%s/rollback",
	    esc) : NULL;
	free(esc);
	if (body == NULL || path == NULL) {
		json_decref(body);
		free(path);
		fprintf(stderr, "Error: out of memory\n");
		return ADM_EXIT_SERVER;
	}
	rc = session_api_call(sess, "POST", path, body, &resp);
	json_decref(body);
	free(path);
	if (rc != ADM_EXIT_OK)
		return rc;
	rollout_cert_print("Rolled back", resp);
	json_decref(resp);
	return ADM_EXIT_OK;
}

int
cmd_ca_rotate(struct adm_session *sess, const struct cmd_args *args)
{
	const char *g = args->arg[ARG_GRACE_DAYS];
	const json_t *c;
	json_t *body, *resp = NULL;
	char *end = NULL, *at;
	double days = 0;
	size_t i;
	int rc;

	if (g != NULL) {
		days = strtod(g, &end);
		if (end == g || *end != '\0' || !(days > 0 && days <= 365)) {
			fprintf(stderr, "Error: grace_days must be a number of "
			    "days more than 0 and at most 365\n");
			return ADM_EXIT_USAGE;
		}
		body = json_pack("{s:f}", "grace_days", days);
	} else
		body = json_pack("{s:i, s:b}", "grace_days", 0, "now", 1);
	if (body == NULL) {
		fprintf(stderr, "Error: out of memory\n");
		return ADM_EXIT_SERVER;
	}
	rc = session_api_call(sess, "POST", "/v1/cluster/certificates/ca/rotate",
	    body, &resp);
	json_decref(body);
	if (rc != ADM_EXIT_OK)
		return rc;
	json_array_foreach(json_object_get(resp, "certificates"), i, c)
		printf("CA %-8s %s\n", json_string_value(json_object_get(c,
		    "role")), json_string_value(json_object_get(c,
		    "fingerprint_sha256")));
	at = json_member_format(json_object_get(resp, "rollover"),
	    "reissue_at");
	if (g != NULL)
		printf("The new CA is in ca.pem on every node. Certificates "
		    "are re-issued from it at %s;\nclients must fetch the new "
		    "ca.pem before then.\n", at != NULL ? at : "?");
	else
		printf("Certificates were re-issued from the new CA. The old "
		    "CA leaves ca.pem once every node serves them.\n");
	free(at);
	json_decref(resp);
	return ADM_EXIT_OK;
}

/*
 * The folder is read by moatd itself, through the control socket: the
 * pairs are validated and applied to every node in one change, and what
 * is already in place is said so.
 */
int
cmd_cert_import(struct adm_session *sess, const struct cmd_args *args)
{
	const json_t *c;
	json_t *body, *resp = NULL;
	char *abs;
	size_t i;
	int rc;

	if ((abs = realpath(args->arg[ARG_FOLDER], NULL)) == NULL) {
		fprintf(stderr, "Error: cannot open folder %s: %s\n",
		    args->arg[ARG_FOLDER], strerror(errno));
		return ADM_EXIT_USAGE;
	}
	body = json_pack("{s:s}", "folder", abs);
	free(abs);
	if (body == NULL) {
		fprintf(stderr, "Error: the folder's path must be UTF-8 text\n");
		return ADM_EXIT_USAGE;
	}
	rc = session_api_call(sess, "POST", "/v1/cluster/certificates/import",
	    body, &resp);
	json_decref(body);
	if (rc != ADM_EXIT_OK)
		return rc;
	json_array_foreach(json_object_get(resp, "certificates"), i, c)
		rollout_cert_print(json_is_true(json_object_get(c,
		    "unchanged")) ? "Unchanged" : "Imported", c);
	json_decref(resp);
	return ADM_EXIT_OK;
}
