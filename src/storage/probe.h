/*
 * probe.h - a short blocking conversation with another storage process, for the background
 * threads that need one (fence.c, peers.c); never for the network thread.
 */
#ifndef SLUICE_STORAGE_PROBE_H
#define SLUICE_STORAGE_PROBE_H

#include <stdatomic.h>
#include <stdint.h>

#include "proto/proto.h"

/* Called with each frame the other process answers; returns 1 to end the conversation. */
typedef int (*sli_probe_fn)(const sli_frame *f, void *arg);

struct sli_security;

/* Connects to addr (over TLS and with the token of sec, when it has them), sends Hello (with
 * `fingerprint` and `name`) and then *extra when not NULL, and hands every answer frame to fn
 * until fn returns 1, the other side closes, or timeout_ms pass.  Returns 1 when fn ended it,
 * 0 otherwise (unreachable, TLS failed, closed, malformed, timed out). */
int sli_probe(struct sli_security *sec, const char *addr, uint64_t fingerprint, const char *name, const sli_frame *extra,
              int timeout_ms, sli_probe_fn fn, void *arg);

/* Sleeps ms milliseconds in short slices, returning early once *stop is set. */
void sli_nap(atomic_int *stop, unsigned ms);

#endif
