/*
 * etcd.h - a small synchronous client for etcd v3.4's JSON gateway (/v3/kv/..., /v3/lease/...):
 * get, get-by-prefix, put, delete, compare-and-swap transactions, and leases.
 *
 * Built on libcurl and jansson.  Every call is bounded by the handle's per-request timeout,
 * whatever the number of endpoints: a call tries the endpoint that answered last and moves on
 * to the next one on a connection error, a timeout or an "unavailable" answer (no leader,
 * quorum lost), in at most two rounds of the list.  A request that timed out may still have
 * been applied by etcd: callers make their writes safe to repeat (a create-if-absent txn that
 * already succeeded fails its compare the second time, and election.c recognises its own key).
 *
 * Threads: a handle holds one CURL easy handle and is used by one thread at a time (open one
 * handle per thread).  Errors: 0 or a count on success, a negative SL_E* code on failure with
 * the reason in sli_coord_last_error() of the calling thread:
 *   SL_EETCD  etcd is unreachable (every endpoint failed or the deadline passed) or answered
 *             something this client does not understand;
 *   SL_ELEASE the lease is unknown to etcd (expired or revoked);
 *   SL_EARG   a bad argument (or etcd refused one); SL_ENOMEM; SL_ETOOBIG (answer over 64 MiB).
 * Out-parameters are written only on success.
 */
#ifndef SLUICE_COORD_ETCD_H
#define SLUICE_COORD_ETCD_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/sluice.h"

typedef struct sli_etcd sli_etcd;

/* One key as etcd returns it.  key and value are owned (free with sli_etcd_kv_fini); each has
 * a NUL after its bytes, so text keys and values are C strings. */
typedef struct sli_etcd_kv {
	char *key;
	size_t key_len;
	uint8_t *value;
	size_t value_len;
	int64_t create_revision; /* 0 for a key that does not exist */
	int64_t mod_revision;
	int64_t version;
	int64_t lease; /* 0: no lease */
} sli_etcd_kv;

/* Opens a handle on endpoints, "http://host:port[,http://host:port...]" (at most 16; https://
 * works too, with the system's CA store).  timeout_ms (>= 1) bounds every call.  No request is
 * made here.  0 with *out (close with sli_etcd_close), SL_EARG, SL_ENOMEM, SL_EETCD (libcurl
 * would not start). */
int sli_etcd_open(const char *endpoints, int timeout_ms, sli_etcd **out);
/* Closes e (NULL is fine). */
void sli_etcd_close(sli_etcd *e);
/* The endpoint the next call tries first (the one that answered last); valid until the next
 * call on e. */
const char *sli_etcd_endpoint(const sli_etcd *e);

/* Frees what kv owns and zeroes it (NULL is fine). */
void sli_etcd_kv_fini(sli_etcd_kv *kv);
/* Frees an array from sli_etcd_get_prefix. */
void sli_etcd_kvs_free(sli_etcd_kv *kvs, size_t n);

/* Reads key.  1 with *kv filled (fini it), 0 when the key does not exist (*kv zeroed), < 0. */
int sli_etcd_get(sli_etcd *e, const char *key, sli_etcd_kv *kv);
/* Reads every key starting with prefix (all keys for ""), in key order.  The count (>= 0)
 * with *kvs (free with sli_etcd_kvs_free; NULL for 0), < 0. */
int sli_etcd_get_prefix(sli_etcd *e, const char *prefix, sli_etcd_kv **kvs);
/* Writes key = value[0, len), attached to lease (0: none).  *revision (may be NULL): the
 * revision of the write.  0, SL_ELEASE for an unknown lease, < 0. */
int sli_etcd_put(sli_etcd *e, const char *key, const void *value, size_t len, int64_t lease,
                 int64_t *revision);
/* Deletes key.  The number of keys deleted (0 or 1), < 0. */
int sli_etcd_delete(sli_etcd *e, const char *key);

/* A compare of a transaction: the key's create_revision, mod_revision or value EQUAL to the
 * given one (create_revision 0: the key does not exist). */
enum sli_etcd_target { SLI_ETCD_CREATE = 0, SLI_ETCD_MOD, SLI_ETCD_VALUE };
typedef struct sli_etcd_cmp {
	int target;        /* enum sli_etcd_target */
	const char *key;
	int64_t revision;  /* CREATE, MOD */
	const void *value; /* VALUE: value[0, value_len) */
	size_t value_len;
} sli_etcd_cmp;

/* An operation done when every compare holds: put key = value (with lease, 0: none) or
 * delete key. */
enum sli_etcd_op_kind { SLI_ETCD_PUT = 0, SLI_ETCD_DELETE };
typedef struct sli_etcd_op {
	int kind; /* enum sli_etcd_op_kind */
	const char *key;
	const void *value;
	size_t value_len;
	int64_t lease;
} sli_etcd_op;

/* One atomic transaction: if every cmps[i] holds, do every ops[j].  1 when it did
 * (*revision, may be NULL: etcd's revision after it, which is the create revision of a key it
 * created), 0 when a compare failed: then, if current is not NULL, *current is cmps[0].key as
 * it is now (create_revision 0 if absent; fini it).  ncmp >= 1.  < 0 on error. */
int sli_etcd_txn(sli_etcd *e, const sli_etcd_cmp *cmps, size_t ncmp, const sli_etcd_op *ops,
                 size_t nops, int64_t *revision, sli_etcd_kv *current);

/* Grants a lease of ttl_s seconds (etcd may grant more: its minimum is about 1.5 election
 * timeouts).  0 with *id and *granted_ttl_s (may be NULL), < 0. */
int sli_etcd_lease_grant(sli_etcd *e, int64_t ttl_s, int64_t *id, int64_t *granted_ttl_s);
/* Renews lease id once (one request on the keepalive stream).  0 with *ttl_s (may be NULL):
 * the TTL etcd restarted the lease with, counted from when etcd handled the request (so no
 * earlier than when the caller sent it); SL_ELEASE when the lease has expired or is unknown;
 * < 0. */
int sli_etcd_lease_keepalive(sli_etcd *e, int64_t id, int64_t *ttl_s);
/* Revokes lease id, deleting every key attached to it.  0, SL_ELEASE if unknown, < 0. */
int sli_etcd_lease_revoke(sli_etcd *e, int64_t id);

/* The reason for the last error of a coord call on this thread (never NULL). */
const char *sli_coord_last_error(void);

#endif
