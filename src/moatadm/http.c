/*
 * HTTP/1.1 to moatd over its unix control socket, or to a node's REST API
 * over HTTPS with a client certificate (remote mode).  libcurl does the
 * protocol; one easy handle per session so an interactive session reuses
 * its connection.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <curl/curl.h>

#include "moatadm.h"

/* Bounds what a confused server can make us buffer. */
#define HTTP_BODY_MAX		(16 * 1024 * 1024)
/* Certificate changes wait for every node; leave them time to answer. */
#define HTTP_TIMEOUT_SEC	120L
#define HTTP_CONNECT_SEC	5L

struct http_client {
	CURL	*curl;
	char	*sock_path;	/* the socket, or the remote base URL */
	/* Remote mode (all owned; NULL on the control socket). */
	char	*url, *cert, *key, *cacert;
	char	 errbuf[CURL_ERROR_SIZE];
};

struct http_buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};

struct http_client *
http_client_new(const char *sock_path)
{
	struct http_client *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->sock_path = strdup(sock_path)) == NULL ||
	    (c->curl = curl_easy_init()) == NULL) {
		http_client_free(c);
		return NULL;
	}
	return c;
}

struct http_client *
http_client_new_remote(const char *url, const char *cert, const char *key,
    const char *cacert)
{
	struct http_client	*c;
	size_t			 len = strlen(url);

	while (len > 0 && url[len - 1] == '/')
		len--;
	if ((c = http_client_new(url)) == NULL)
		return NULL;
	if ((c->url = strndup(url, len)) == NULL ||
	    (cert != NULL && (c->cert = strdup(cert)) == NULL) ||
	    (key != NULL && (c->key = strdup(key)) == NULL) ||
	    (cacert != NULL && (c->cacert = strdup(cacert)) == NULL)) {
		http_client_free(c);
		return NULL;
	}
	return c;
}

void
http_client_free(struct http_client *c)
{
	if (c == NULL)
		return;
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	free(c->sock_path);
	free(c->url);
	free(c->cert);
	free(c->key);
	free(c->cacert);
	free(c);
}

void
http_response_clear(struct http_response *resp)
{
	json_decref(resp->body);
	resp->body = NULL;
	resp->status = 0;
}

static size_t
http_body_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct http_buf *b = arg;
	size_t n = size * nmemb;
	char *p;

	if (n > HTTP_BODY_MAX - b->len)
		return 0;	/* makes curl fail with a write error */
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->data, cap)) == NULL)
			return 0;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/*
 * ^C at the prompt stops waiting.  libcurl calls this about once a second
 * while a change waits for the nodes, so the prompt is back within one.
 */
static int
http_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
	(void)arg;
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return adm_interrupted ? 1 : 0;
}

/* Why the transfer failed, in the words of the OS when it has them. */
static char *
http_error_describe(struct http_client *c, CURLcode rc)
{
	long oserr = 0;
	const char *reason;

	if (rc == CURLE_ABORTED_BY_CALLBACK)
		return str_printf("Interrupted: stopped waiting for moatd; a "
		    "change already sent may still be made (see `status`)");

	curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &oserr);
	if (rc == CURLE_COULDNT_CONNECT) {
		reason = oserr != 0 ? strerror((int)oserr) :
		    curl_easy_strerror(rc);
		return str_printf("cannot reach moatd at %s: %s",
		    c->sock_path, reason);
	}
	reason = c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(rc);
	return str_printf("Error: no usable answer from moatd at %s: %s",
	    c->sock_path, reason);
}

static int
http_method_set(struct http_client *c, const char *method, const char *body)
{
	if (strcmp(method, "GET") == 0 && body == NULL)
		return curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L) ==
		    CURLE_OK ? 0 : -1;
	if (strcmp(method, "POST") != 0 &&
	    curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method) !=
	    CURLE_OK)
		return -1;
	if (body == NULL)
		body = "";
	/* POSTFIELDS, not COPYPOSTFIELDS: no extra copy of a key to wipe */
	if (curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE,
	    (long)strlen(body)) != CURLE_OK)
		return -1;
	return 0;
}

static int
http_options_set(struct http_client *c, const char *method, const char *path,
    const char *body, struct curl_slist *headers, struct http_buf *buf)
{
	char url[2048];

	curl_easy_reset(c->curl);	/* keeps the live connection */
	c->errbuf[0] = '\0';
	if (c->url != NULL) {
		/* Remote: HTTPS only, the server verified (against --cacert
		 * or the system's CAs), signed in by the certificate. */
		snprintf(url, sizeof(url), "%s%s", c->url, path);
		if (curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "https") !=
		    CURLE_OK ||
		    (c->cert != NULL && curl_easy_setopt(c->curl,
		    CURLOPT_SSLCERT, c->cert) != CURLE_OK) ||
		    (c->key != NULL && curl_easy_setopt(c->curl,
		    CURLOPT_SSLKEY, c->key) != CURLE_OK) ||
		    (c->cacert != NULL && curl_easy_setopt(c->curl,
		    CURLOPT_CAINFO, c->cacert) != CURLE_OK))
			return -1;
	} else {
		snprintf(url, sizeof(url), "http://localhost%s", path);
		if (curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH,
		    c->sock_path) != CURLE_OK)
			return -1;
	}
	if (curl_easy_setopt(c->curl, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf) !=
	    CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT,
	    HTTP_CONNECT_SEC) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, HTTP_TIMEOUT_SEC) !=
	    CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers) !=
	    CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION,
	    http_body_write) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, buf) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION,
	    http_progress) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L) != CURLE_OK)
		return -1;
	return http_method_set(c, method, body);
}

/* A sun_path that does not fit would be cut short silently by curl. */
static int
http_sock_path_check(struct http_client *c, char **errp)
{
	struct sockaddr_un sun;

	if (c->url != NULL || strlen(c->sock_path) < sizeof(sun.sun_path))
		return 0;
	*errp = str_printf("cannot reach moatd at %s: %s", c->sock_path,
	    strerror(ENAMETOOLONG));
	return -1;
}

static struct curl_slist *
http_headers_new(void)
{
	struct curl_slist *headers, *h;

	/* no Expect: 100-continue round trip for large certificate bodies */
	if ((headers = curl_slist_append(NULL, "Expect:")) == NULL)
		return NULL;
	if ((h = curl_slist_append(headers,
	    "Content-Type: application/json")) == NULL) {
		curl_slist_free_all(headers);
		return NULL;
	}
	return h;
}

static int
http_transfer(struct http_client *c, const char *method, const char *path,
    const char *body, struct http_response *resp, char **errp)
{
	struct curl_slist *headers;
	struct http_buf buf = { 0 };
	json_error_t jerr;
	CURLcode rc;
	int ret = -1;

	if ((headers = http_headers_new()) == NULL) {
		*errp = str_printf("Error: out of memory");
		goto out;
	}
	if (http_options_set(c, method, path, body, headers, &buf) == -1) {
		*errp = str_printf("Error: cannot set up the HTTP request");
		goto out;
	}
	if ((rc = curl_easy_perform(c->curl)) != CURLE_OK) {
		*errp = http_error_describe(c, rc);
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	if (buf.len > 0)
		resp->body = json_loadb(buf.data, buf.len, 0, &jerr);
	ret = 0;
 out:
	curl_slist_free_all(headers);
	free(buf.data);
	return ret;
}

int
http_client_request(struct http_client *c, const char *method,
    const char *path, const json_t *body, struct http_response *resp,
    char **errp)
{
	char *text = NULL;
	int ret;

	resp->status = 0;
	resp->body = NULL;
	*errp = NULL;
	if (http_sock_path_check(c, errp) == -1)
		return -1;
	if (body != NULL &&
	    (text = json_dumps(body, JSON_COMPACT)) == NULL) {
		*errp = str_printf("Error: cannot encode the request");
		return -1;
	}
	ret = http_transfer(c, method, path, text, resp, errp);
	mem_wipe_free(text);	/* may hold a private key */
	return ret;
}

char *
http_path_escape(const char *s)
{
	char *esc, *copy;

	/* libcurl ignores the handle argument of curl_easy_escape */
	if ((esc = curl_easy_escape(NULL, s, 0)) == NULL)
		return NULL;
	copy = strdup(esc);
	curl_free(esc);
	return copy;
}
