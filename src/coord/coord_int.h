/*
 * coord_int.h - what the files of src/coord share and nobody else may include: the etcd
 * handle's transport call (etcd_http.c), the JSON and base64 helpers (etcd_json.c) and the
 * thread's error text (error.c).
 */
#ifndef SLUICE_COORD_INT_H
#define SLUICE_COORD_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "coord/etcd.h"

/* error.c */
/* Sets the calling thread's sli_coord_last_error message. */
void sli_coord_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* etcd_http.c */
/* POSTs req (borrowed) to path ("/v3/kv/range") with failover between endpoints, within the
 * handle's timeout.  0 with *resp (the answer's first JSON value; json_decref it), or SL_EETCD
 * (unreachable, or an answer that is not JSON), SL_ELEASE (etcd's NOT_FOUND: only leases are
 * ever "not found"), SL_EARG (etcd's INVALID_ARGUMENT), SL_ELIMIT, SL_EAUTH, SL_ETOOBIG,
 * SL_ENOMEM, each with the error text set.  what names the request in error texts. */
int sli_etcd_call(sli_etcd *e, const char *path, const char *what, json_t *req, json_t **resp);

/* etcd_json.c: no I/O, no error text (callers say what failed). */
/* A JSON string holding p[0, n) in base64, or NULL (out of memory). */
json_t *sli_json_b64(const void *p, size_t n);
/* Decodes base64 text s into a new buffer with a NUL after its *n bytes.  0 with *out (free
 * it), SL_EPROTO for text that is not base64, SL_ENOMEM. */
int sli_b64_decode(const char *s, uint8_t **out, size_t *n);
/* A JSON string holding v in decimal (etcd's JSON for int64), or NULL. */
json_t *sli_json_i64(int64_t v);
/* obj's int64 member name, given as a decimal string or a number; *v = 0 when the member is
 * absent (protobuf's JSON leaves out zero values).  0, or SL_EPROTO. */
int sli_json_get_i64(const json_t *obj, const char *name, int64_t *v);
/* Parses one element of a "kvs" array into *kv (fini it).  0, SL_EPROTO, SL_ENOMEM. */
int sli_etcd_kv_parse(const json_t *o, sli_etcd_kv *kv);

#endif
