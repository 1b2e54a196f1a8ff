/*
 * fuzz_schema.c — what the API takes from a request body before it is
 * stored: JSON text through jansson, then the decoders and checks a
 * PUT/POST runs on it (the cluster document, a certificate document, a
 * Replica Of source uri, the event log's query, the alert settings).
 * The input's first byte picks the path; the rest is the text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "alerts.h"
#include "schema.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cluster_doc	 c;
	struct cert_doc		 cd;
	struct events_query	 q;
	struct err		 e = { 0 };
	json_t			*j, *o;
	char			*s;

	if (size < 1 || (s = malloc(size)) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 4) {
	case 0:
		if ((j = json_loads(s, JSON_DECODE_ANY, NULL)) != NULL) {
			if (cluster_doc_decode(j, &c, &e) == 0) {
				o = cluster_doc_public(&c);
				json_decref(o);
				cluster_doc_clear(&c);
			}
			err_clear(&e);
			cert_doc_decode(j, &cd, &e);
			err_clear(&e);
			json_decref(j);
		}
		break;
	case 1: {
		struct replica_uri u;
		if (replica_uri_parse(s, &u, &e) == 0)
			free(replica_uri_masked(&u));
		err_clear(&e);
		break;
	}
	case 2: {
		/* stime, etime, order, limit, offset, split at NULs */
		const char *f[5] = { NULL };
		size_t k, at = 0;
		for (k = 0; k < 5 && at < size - 1; k++) {
			f[k] = s + at;
			at += strlen(s + at) + 1;
		}
		events_query_parse(&q, f[0], f[1], f[2], f[3], f[4], &e);
		err_clear(&e);
		break;
	}
	case 3:
		if ((j = json_loads(s, JSON_DECODE_ANY, NULL)) != NULL) {
			json_t *doc = json_object();
			if ((o = alerts_settings_merge(doc, j, &e)) != NULL)
				json_decref(o);
			err_clear(&e);
			json_decref(doc);
			json_decref(j);
		}
		break;
	}
	free(s);
	return 0;
}
