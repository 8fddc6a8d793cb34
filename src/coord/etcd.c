/*
 * etcd.c - the etcd operations sluice needs, each one request to the JSON gateway: range
 * (get, get by prefix), put, delete range, txn (compare-and-swap), lease grant, keepalive and
 * revoke.  Builds the request, sends it through sli_etcd_call (etcd_http.c) and reads the
 * answer's fields; see etcd.h for the contracts.
 */
#include <stdlib.h>
#include <string.h>

#include "coord/coord_int.h"

void sli_etcd_kv_fini(sli_etcd_kv *kv)
{
	if (kv == NULL)
		return;
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

void sli_etcd_kvs_free(sli_etcd_kv *kvs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sli_etcd_kv_fini(&kvs[i]);
	free(kvs);
}

/* Sets obj[name] = v, taking v; SL_ENOMEM if v is NULL or the set fails. */
static int set_new(json_t *obj, const char *name, json_t *v)
{
	return json_object_set_new(obj, name, v) == 0 ? 0 : SL_ENOMEM;
}

static int set_key(json_t *obj, const char *name, const void *p, size_t n)
{
	return set_new(obj, name, sli_json_b64(p, n));
}

/* A request object {"key": base64(key)}, or NULL. */
static json_t *key_request(const char *key)
{
	json_t *o = json_object();
	if (o != NULL && set_key(o, "key", key, strlen(key)) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The revision in an answer's header. */
static int header_revision(const json_t *resp, int64_t *rev)
{
	return sli_json_get_i64(json_object_get(resp, "header"), "revision", rev);
}

/* Parses the "kvs" array of a range answer into a new array.  The count, or < 0. */
static int parse_kvs(const json_t *range, const char *what, sli_etcd_kv **out)
{
	const json_t *arr = json_object_get(range, "kvs");
	size_t n = json_array_size(arr);
	sli_etcd_kv *kvs;
	int rc;

	*out = NULL;
	if (arr != NULL && !json_is_array(arr)) {
		sli_coord_set_error("etcd %s: the answer's kvs is not an array", what);
		return SL_EETCD;
	}
	if (n == 0)
		return 0;
	if (n > (size_t)INT32_MAX || (kvs = calloc(n, sizeof(*kvs))) == NULL)
		return SL_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if ((rc = sli_etcd_kv_parse(json_array_get(arr, i), &kvs[i])) != 0) {
			sli_etcd_kvs_free(kvs, i);
			if (rc == SL_EPROTO) {
				sli_coord_set_error("etcd %s: a malformed key-value in the answer", what);
				rc = SL_EETCD;
			}
			return rc;
		}
	}
	*out = kvs;
	return (int)n;
}

/* The first kv of a range answer into *kv: 1, 0 (absent), < 0. */
static int first_kv(const json_t *range, const char *what, sli_etcd_kv *kv)
{
	sli_etcd_kv *kvs;
	int n = parse_kvs(range, what, &kvs);
	if (n < 0)
		return n;
	if (n == 0) {
		memset(kv, 0, sizeof(*kv));
		return 0;
	}
	*kv = kvs[0];
	memset(&kvs[0], 0, sizeof(kvs[0]));
	sli_etcd_kvs_free(kvs, (size_t)n);
	return 1;
}

int sli_etcd_get(sli_etcd *e, const char *key, sli_etcd_kv *kv)
{
	json_t *req = key_request(key), *resp;
	int rc;

	if (req == NULL)
		return SL_ENOMEM;
	rc = sli_etcd_call(e, "/v3/kv/range", "get", req, &resp);
	json_decref(req);
	if (rc != 0)
		return rc;
	rc = first_kv(resp, "get", kv);
	json_decref(resp);
	return rc;
}

int sli_etcd_get_prefix(sli_etcd *e, const char *prefix, sli_etcd_kv **kvs)
{
	size_t n = strlen(prefix);
	uint8_t end[1024];
	size_t end_len = n;
	json_t *req, *resp;
	int rc;

	if (n > sizeof(end)) {
		sli_coord_set_error("etcd get prefix: a prefix over %zu bytes", sizeof(end));
		return SL_EARG;
	}
	/* range_end: the prefix with its last byte below 0xff incremented (and what follows it
	 * dropped); "\0" (from every key on) when there is none, as etcd defines it. */
	memcpy(end, prefix, n);
	while (end_len > 0 && end[end_len - 1] == 0xff)
		end_len--;
	if (end_len > 0)
		end[end_len - 1]++;
	else
		end[end_len++] = 0;
	if ((req = key_request(prefix)) == NULL)
		return SL_ENOMEM;
	if (n == 0 && set_key(req, "key", "", 1) != 0) { /* key "\0": every key */
		json_decref(req);
		return SL_ENOMEM;
	}
	if (set_key(req, "range_end", end, end_len) != 0) {
		json_decref(req);
		return SL_ENOMEM;
	}
	rc = sli_etcd_call(e, "/v3/kv/range", "get prefix", req, &resp);
	json_decref(req);
	if (rc != 0)
		return rc;
	rc = parse_kvs(resp, "get prefix", kvs);
	json_decref(resp);
	return rc;
}

/* The body of a put: {"key", "value"[, "lease"]}. */
static json_t *put_request(const char *key, const void *value, size_t len, int64_t lease)
{
	json_t *o = key_request(key);
	if (o == NULL || set_key(o, "value", value, len) != 0 ||
	    (lease != 0 && set_new(o, "lease", sli_json_i64(lease)) != 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int sli_etcd_put(sli_etcd *e, const char *key, const void *value, size_t len, int64_t lease,
                 int64_t *revision)
{
	json_t *req = put_request(key, value, len, lease), *resp;
	int64_t rev;
	int rc;

	if (req == NULL)
		return SL_ENOMEM;
	rc = sli_etcd_call(e, "/v3/kv/put", "put", req, &resp);
	json_decref(req);
	if (rc != 0)
		return rc;
	rc = header_revision(resp, &rev);
	json_decref(resp);
	if (rc != 0) {
		sli_coord_set_error("etcd put: no revision in the answer");
		return SL_EETCD;
	}
	if (revision)
		*revision = rev;
	return 0;
}

int sli_etcd_delete(sli_etcd *e, const char *key)
{
	json_t *req = key_request(key), *resp;
	int64_t deleted;
	int rc;

	if (req == NULL)
		return SL_ENOMEM;
	rc = sli_etcd_call(e, "/v3/kv/deleterange", "delete", req, &resp);
	json_decref(req);
	if (rc != 0)
		return rc;
	rc = sli_json_get_i64(resp, "deleted", &deleted);
	json_decref(resp);
	if (rc != 0 || deleted < 0 || deleted > 1) {
		sli_coord_set_error("etcd delete: a malformed count of deleted keys");
		return SL_EETCD;
	}
	return (int)deleted;
}

static json_t *compare_json(const sli_etcd_cmp *c)
{
	static const char *const targets[] = {"CREATE", "MOD", "VALUE"};
	json_t *o;
	int rc;

	if (c->target < SLI_ETCD_CREATE || c->target > SLI_ETCD_VALUE || c->key == NULL)
		return NULL;
	if ((o = key_request(c->key)) == NULL)
		return NULL;
	rc = set_new(o, "target", json_string(targets[c->target]));
	if (rc == 0)
		rc = set_new(o, "result", json_string("EQUAL"));
	if (rc == 0 && c->target == SLI_ETCD_CREATE)
		rc = set_new(o, "create_revision", sli_json_i64(c->revision));
	if (rc == 0 && c->target == SLI_ETCD_MOD)
		rc = set_new(o, "mod_revision", sli_json_i64(c->revision));
	if (rc == 0 && c->target == SLI_ETCD_VALUE)
		rc = set_key(o, "value", c->value, c->value_len);
	if (rc != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *op_json(const sli_etcd_op *op)
{
	json_t *o = json_object(), *inner;

	if (o == NULL || op->key == NULL)
		goto err;
	if (op->kind == SLI_ETCD_PUT)
		inner = put_request(op->key, op->value, op->value_len, op->lease);
	else if (op->kind == SLI_ETCD_DELETE)
		inner = key_request(op->key);
	else
		goto err;
	if (set_new(o, op->kind == SLI_ETCD_PUT ? "request_put" : "request_delete_range", inner) != 0)
		goto err;
	return o;
err:
	json_decref(o);
	return NULL;
}

/* A new array set as obj[name] (owned by obj), or NULL. */
static json_t *add_array(json_t *obj, const char *name)
{
	json_t *a = json_array();
	return json_object_set_new(obj, name, a) == 0 ? a : NULL; /* set_new takes a, or frees it */
}

/* The body of a txn; the failure branch reads cmps[0].key when want_current. */
static json_t *txn_request(const sli_etcd_cmp *cmps, size_t ncmp, const sli_etcd_op *ops,
                           size_t nops, int want_current)
{
	json_t *req = json_object(), *compare, *success, *failure;

	if (req == NULL)
		return NULL;
	if ((compare = add_array(req, "compare")) == NULL ||
	    (success = add_array(req, "success")) == NULL ||
	    (failure = add_array(req, "failure")) == NULL)
		goto err;
	for (size_t i = 0; i < ncmp; i++)
		if (json_array_append_new(compare, compare_json(&cmps[i])) != 0)
			goto err;
	for (size_t i = 0; i < nops; i++)
		if (json_array_append_new(success, op_json(&ops[i])) != 0)
			goto err;
	if (want_current) {
		json_t *range = json_object();
		if (json_array_append_new(failure, range) != 0 ||
		    set_new(range, "request_range", key_request(cmps[0].key)) != 0)
			goto err;
	}
	return req;
err:
	json_decref(req);
	return NULL;
}

int sli_etcd_txn(sli_etcd *e, const sli_etcd_cmp *cmps, size_t ncmp, const sli_etcd_op *ops,
                 size_t nops, int64_t *revision, sli_etcd_kv *current)
{
	json_t *req, *resp;
	const json_t *ok, *first;
	int64_t rev;
	int rc;

	if (ncmp == 0 || cmps == NULL || (nops > 0 && ops == NULL)) {
		sli_coord_set_error("etcd txn: no compare, or operations missing");
		return SL_EARG;
	}
	if ((req = txn_request(cmps, ncmp, ops, nops, current != NULL)) == NULL) {
		sli_coord_set_error("etcd txn: a bad compare or operation, or out of memory");
		return SL_EARG;
	}
	rc = sli_etcd_call(e, "/v3/kv/txn", "txn", req, &resp);
	json_decref(req);
	if (rc != 0)
		return rc;
	ok = json_object_get(resp, "succeeded"); /* left out when false */
	if (json_is_true(ok)) {
		rc = header_revision(resp, &rev);
		json_decref(resp);
		if (rc != 0) {
			sli_coord_set_error("etcd txn: no revision in the answer");
			return SL_EETCD;
		}
		if (revision)
			*revision = rev;
		return 1;
	}
	if (current != NULL) {
		first = json_array_get(json_object_get(resp, "responses"), 0);
		rc = first_kv(json_object_get(first, "response_range"), "txn", current);
		if (rc < 0) {
			json_decref(resp);
			return rc;
		}
	}
	json_decref(resp);
	return 0;
}

int sli_etcd_lease_grant(sli_etcd *e, int64_t ttl_s, int64_t *id, int64_t *granted_ttl_s)
{
	json_t *req = json_object(), *resp;
	int64_t got_id, got_ttl;
	const char *err;
	int rc;

	if (ttl_s < 1) {
		json_decref(req);
		sli_coord_set_error("etcd lease grant: a TTL below 1 s");
		return SL_EARG;
	}
	if (req == NULL || set_new(req, "TTL", sli_json_i64(ttl_s)) != 0) {
		json_decref(req);
		return SL_ENOMEM;
	}
	rc = sli_etcd_call(e, "/v3/lease/grant", "lease grant", req, &resp);
	json_decref(req);
	if (rc != 0)
		return rc;
	err = json_string_value(json_object_get(resp, "error"));
	if (err != NULL && err[0] != '\0') {
		sli_coord_set_error("etcd lease grant: %s", err);
		json_decref(resp);
		return SL_EETCD;
	}
	rc = sli_json_get_i64(resp, "ID", &got_id);
	if (rc == 0)
		rc = sli_json_get_i64(resp, "TTL", &got_ttl);
	json_decref(resp);
	if (rc != 0 || got_id == 0 || got_ttl < 1) {
		sli_coord_set_error("etcd lease grant: no lease ID or TTL in the answer");
		return SL_EETCD;
	}
	*id = got_id;
	if (granted_ttl_s)
		*granted_ttl_s = got_ttl;
	return 0;
}

static json_t *id_request(int64_t id)
{
	json_t *o = json_object();
	if (o != NULL && set_new(o, "ID", sli_json_i64(id)) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int sli_etcd_lease_keepalive(sli_etcd *e, int64_t id, int64_t *ttl_s)
{
	json_t *req = id_request(id), *resp;
	int64_t ttl;
	int rc;

	if (req == NULL)
		return SL_ENOMEM;
	/* A stream of one message: the gateway answers {"result": {...}} and ends the stream
	 * when the request body ends. */
	rc = sli_etcd_call(e, "/v3/lease/keepalive", "lease keepalive", req, &resp);
	json_decref(req);
	if (rc != 0)
		return rc;
	rc = sli_json_get_i64(json_object_get(resp, "result"), "TTL", &ttl);
	json_decref(resp);
	if (rc != 0) {
		sli_coord_set_error("etcd lease keepalive: a malformed TTL in the answer");
		return SL_EETCD;
	}
	if (ttl <= 0) {
		sli_coord_set_error("etcd lease %lld has expired or is unknown", (long long)id);
		return SL_ELEASE;
	}
	if (ttl_s)
		*ttl_s = ttl;
	return 0;
}

int sli_etcd_lease_revoke(sli_etcd *e, int64_t id)
{
	json_t *req = id_request(id), *resp;
	int rc;

	if (req == NULL)
		return SL_ENOMEM;
	rc = sli_etcd_call(e, "/v3/lease/revoke", "lease revoke", req, &resp);
	json_decref(req);
	if (rc != 0)
		return rc;
	json_decref(resp);
	return 0;
}
