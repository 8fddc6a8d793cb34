/*
 * etcd_http.c - the etcd handle's transport: the endpoint list, one libcurl easy handle, and
 * one POST of a JSON body with failover between endpoints inside one deadline.
 *
 * A call gets the handle's timeout as a whole.  Each attempt gets a slice of what is left
 * (an n-th of it, at least 200 ms), so one endpoint that accepts and never answers cannot eat
 * the whole deadline while another member could have answered.  At most two rounds of the list
 * are tried: a refused connection fails in microseconds, and during an etcd election a second
 * round often finds the new leader.  What counts as "try the next one": no connection, a
 * timeout, a broken connection, HTTP 502/503/504, and gRPC's UNAVAILABLE or DEADLINE_EXCEEDED
 * (no leader, quorum lost).  Any other answer is final.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coord/coord_int.h"

#define ETCD_MAX_ENDPOINTS 16
#define ETCD_MAX_ANSWER (64u * 1024u * 1024u)
#define ETCD_MIN_SLICE_MS 200

struct sli_etcd {
	char *endpoints[ETCD_MAX_ENDPOINTS];
	size_t count;
	size_t current; /* the endpoint that answered last: tried first */
	int timeout_ms;
	CURL *curl;
	struct curl_slist *headers;
	char *answer; /* the body being received */
	size_t len, cap;
	int too_big;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

/* curl_global_init is not thread-safe: done once, whoever opens first. */
static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	sli_etcd *e = arg;
	size_t n = size * nmemb;
	if (e->len + n + 1 > ETCD_MAX_ANSWER) {
		e->too_big = 1;
		return 0; /* makes curl fail the transfer */
	}
	if (e->len + n + 1 > e->cap) {
		size_t cap = e->cap ? e->cap : 4096;
		char *p;
		while (cap < e->len + n + 1)
			cap *= 2;
		if ((p = realloc(e->answer, cap)) == NULL)
			return 0;
		e->answer = p;
		e->cap = cap;
	}
	memcpy(e->answer + e->len, ptr, n);
	e->len += n;
	e->answer[e->len] = '\0';
	return n;
}

/* Adds one endpoint of the list, trimmed of blanks and of a trailing '/'. */
static int add_endpoint(sli_etcd *e, const char *p, size_t n)
{
	while (n > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '/'))
		n--;
	if (n == 0)
		return 0; /* "a,,b" or a trailing comma */
	if ((n <= 7 || strncmp(p, "http://", 7) != 0) && (n <= 8 || strncmp(p, "https://", 8) != 0)) {
		sli_coord_set_error("etcd endpoint '%.*s' is not an http:// or https:// URL", (int)n, p);
		return SL_EARG;
	}
	if (e->count == ETCD_MAX_ENDPOINTS) {
		sli_coord_set_error("more than %d etcd endpoints", ETCD_MAX_ENDPOINTS);
		return SL_EARG;
	}
	if ((e->endpoints[e->count] = strndup(p, n)) == NULL)
		return SL_ENOMEM;
	e->count++;
	return 0;
}

int sli_etcd_open(const char *endpoints, int timeout_ms, sli_etcd **out)
{
	sli_etcd *e;
	const char *p;
	int rc;

	if (endpoints == NULL || timeout_ms < 1) {
		sli_coord_set_error("etcd: no endpoints, or a timeout below 1 ms");
		return SL_EARG;
	}
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK) {
		sli_coord_set_error("libcurl would not start: %s", curl_easy_strerror(curl_init_rc));
		return SL_EETCD;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return SL_ENOMEM;
	e->timeout_ms = timeout_ms;
	for (p = endpoints;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if ((rc = add_endpoint(e, p, n)) != 0)
			goto err_close;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (e->count == 0) {
		sli_coord_set_error("etcd: the endpoint list '%s' is empty", endpoints);
		rc = SL_EARG;
		goto err_close;
	}
	rc = SL_ENOMEM;
	if ((e->curl = curl_easy_init()) == NULL)
		goto err_close;
	/* "Expect:" turns off curl's 100-continue round trip for bodies over 1 KiB. */
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	if (h == NULL)
		goto err_close;
	e->headers = h;
	if ((h = curl_slist_append(e->headers, "Expect:")) == NULL)
		goto err_close;
	e->headers = h;
	curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, e->headers);
	curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, e);
	curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM: other threads run */
	curl_easy_setopt(e->curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e->curl, CURLOPT_PROXY, ""); /* never through an http_proxy of the env */
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	*out = e;
	return 0;
err_close:
	sli_etcd_close(e);
	return rc;
}

void sli_etcd_close(sli_etcd *e)
{
	if (e == NULL)
		return;
	if (e->curl)
		curl_easy_cleanup(e->curl);
	curl_slist_free_all(e->headers);
	for (size_t i = 0; i < e->count; i++)
		free(e->endpoints[i]);
	free(e->answer);
	free(e);
}

const char *sli_etcd_endpoint(const sli_etcd *e)
{
	return e->endpoints[e->current];
}

/* gRPC status codes of etcd's error answers, as SL_E*; *retry when another member may do. */
static int grpc_code_to_rc(long code, int *retry)
{
	*retry = 0;
	switch (code) {
	case 3:  /* INVALID_ARGUMENT */
	case 9:  /* FAILED_PRECONDITION */
	case 11: /* OUT_OF_RANGE */
		return SL_EARG;
	case 5: /* NOT_FOUND: in kv and lease calls only a lease is ever not found */
		return SL_ELEASE;
	case 8: /* RESOURCE_EXHAUSTED: etcd's space quota, too many requests */
		return SL_ELIMIT;
	case 7:  /* PERMISSION_DENIED */
	case 16: /* UNAUTHENTICATED */
		return SL_EAUTH;
	case 4:  /* DEADLINE_EXCEEDED: "request timed out" without quorum */
	case 14: /* UNAVAILABLE: no leader, leader changed, member stopping */
		*retry = 1;
		return SL_EETCD;
	default:
		return SL_EETCD;
	}
}

/* The outcome of one HTTP exchange that completed: 0 with *resp, or an error with the text
 * set and *retry saying whether another endpoint may do better. */
static int judge_answer(sli_etcd *e, const char *url, const char *what, long status,
                        json_t **resp, int *retry)
{
	json_error_t jerr;
	json_t *j = json_loadb(e->answer ? e->answer : "", e->len, JSON_DISABLE_EOF_CHECK, &jerr);
	const json_t *err;
	long code = -1;
	const char *msg = NULL;
	int rc;

	*retry = 0;
	if (j == NULL || !json_is_object(j)) {
		json_decref(j);
		*retry = status >= 500;
		sli_coord_set_error("etcd %s: %s answered HTTP %ld with no JSON object", what, url,
		                    status);
		return SL_EETCD;
	}
	/* Unary errors: {"error": "...", "code": N, "message": "..."} with an HTTP error status.
	 * Stream errors (keepalive): {"error": {"grpc_code": N, "message": "..."}}, HTTP 200. */
	err = json_object_get(j, "error");
	if (json_is_object(err)) {
		code = (long)json_integer_value(json_object_get(err, "grpc_code"));
		msg = json_string_value(json_object_get(err, "message"));
	} else if (err != NULL || status != 200) {
		code = json_is_integer(json_object_get(j, "code"))
			? (long)json_integer_value(json_object_get(j, "code")) : -1;
		msg = json_string_value(json_object_get(j, "message"));
		if (msg == NULL)
			msg = json_string_value(err);
	}
	if (code < 0 && status == 200) {
		*resp = j;
		return 0;
	}
	rc = grpc_code_to_rc(code, retry);
	if (status == 502 || status == 503 || status == 504)
		*retry = 1;
	sli_coord_set_error("etcd %s: %s answered HTTP %ld: %s", what, url, status,
	                    msg ? msg : "(no message)");
	json_decref(j);
	return rc;
}

int sli_etcd_call(sli_etcd *e, const char *path, const char *what, json_t *req, json_t **resp)
{
	char *body = json_dumps(req, JSON_COMPACT);
	uint64_t start = now_ms(), deadline = start + (uint64_t)e->timeout_ms;
	size_t attempts = 2 * e->count;
	char url[512];
	char last[CURL_ERROR_SIZE + 600] = "";
	int rc = SL_EETCD;

	if (body == NULL)
		return SL_ENOMEM;
	curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	for (size_t a = 0; a < attempts; a++) {
		size_t idx = (e->current + a) % e->count;
		uint64_t now = now_ms(), left, slice;
		char cerr[CURL_ERROR_SIZE] = "";
		long status = 0;
		int retry;
		CURLcode cc;

		if (now >= deadline)
			break;
		left = deadline - now;
		slice = left / (e->count - (a % e->count));
		if (slice < ETCD_MIN_SLICE_MS)
			slice = left < ETCD_MIN_SLICE_MS ? left : ETCD_MIN_SLICE_MS;
		snprintf(url, sizeof(url), "%s%s", e->endpoints[idx], path);
		e->len = 0;
		e->too_big = 0;
		curl_easy_setopt(e->curl, CURLOPT_URL, url);
		curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, (long)slice);
		curl_easy_setopt(e->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)slice);
		curl_easy_setopt(e->curl, CURLOPT_ERRORBUFFER, cerr);
		cc = curl_easy_perform(e->curl);
		curl_easy_setopt(e->curl, CURLOPT_ERRORBUFFER, NULL);
		if (cc == CURLE_OK) {
			curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &status);
			rc = judge_answer(e, url, what, status, resp, &retry);
			if (rc == 0 || !retry) {
				if (rc == 0)
					e->current = idx;
				free(body);
				return rc;
			}
			snprintf(last, sizeof(last), "%s", sli_coord_last_error());
			continue;
		}
		if (e->too_big) {
			sli_coord_set_error("etcd %s: %s answered more than %u bytes", what, url,
			                    ETCD_MAX_ANSWER);
			free(body);
			return SL_ETOOBIG;
		}
		if (cc == CURLE_WRITE_ERROR || cc == CURLE_OUT_OF_MEMORY) {
			free(body);
			return SL_ENOMEM;
		}
		/* Everything else is the network or the member: try the next one. */
		snprintf(last, sizeof(last), "%s: %s", url, cerr[0] ? cerr : curl_easy_strerror(cc));
	}
	free(body);
	sli_coord_set_error("etcd unreachable: %s failed on every endpoint within %d ms (last: %s)",
	                    what, e->timeout_ms, last[0] ? last : "no time left for an attempt");
	return rc;
}
