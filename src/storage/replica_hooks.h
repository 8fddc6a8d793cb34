/*
 * replica_hooks.h - what storage lets the standby part (src/replica) see and do: record the
 * primary it follows, register the running follower (so that promotion and sl_storage_close
 * stop it without storage calling replica), read and adopt the cluster identity and the term,
 * the identity of this process's outgoing connections, and cutting a worker's logs back to a
 * time for a rejoin.  Included by src/replica and by the storage files that implement it
 * (standby.c, durable.c, error.c, security.c, source.c, truncate.c).
 */
#ifndef SLUICE_STORAGE_REPLICA_HOOKS_H
#define SLUICE_STORAGE_REPLICA_HOOKS_H

#include <stdint.h>

#include "sluice/storage.h"

/* The follower as storage sees it, registered once by sli_storage_set_follower. */
typedef struct sli_follower_ops {
	/* On Promote (network thread): the follower applies no further event; returns once none
	 * is half applied.  Does not join. */
	void (*stop)(void *arg);
	/* At sl_storage_close, before the network thread stops: stops the follower, joins its
	 * thread and frees arg. */
	void (*join)(void *arg);
} sli_follower_ops;

/* standby.c */
/* Records primary (copied) as the process st follows.  0, SL_EARG (st or primary NULL, or st
 * already follows one), SL_ENOMEM. */
int sli_storage_set_standby(sl_storage *st, const char *primary);
/* Forgets the primary again (the follower did not start). */
void sli_storage_clear_standby(sl_storage *st);
/* The primary st follows ("HOST:PORT", valid until sl_storage_close), or NULL. */
const char *sli_storage_standby_of(const sl_storage *st);
/* Registers the follower (ops static, arg the follower's), or unregisters it with ops NULL.
 * Called from the thread that calls sl_storage_follow, before the follower starts. */
void sli_storage_set_follower(sl_storage *st, const sli_follower_ops *ops, void *arg);
/* This process's own address: the host of its listen address and the port it got. */
void sli_storage_self(const sl_storage *st, char *buf, size_t len);
/* Hands msg to the runtime's warn callback, if it has one. */
void sli_storage_warn(sl_storage *st, const char *msg);
/* The cluster's process list (NULL outside a cluster), with its size and this process's index. */
const char *const *sli_storage_cluster(const sl_storage *st, uint32_t *size, uint32_t *process);
/* Sets the cluster fingerprint this process reports; returns the previous one. */
uint64_t sli_storage_exchange_fingerprint(sl_storage *st, uint64_t fp);
/* Whether leadership is decided outside (sl_storage_config.coordinated): the terms then come
 * from the coordinator, not from the process followed. */
int sli_storage_coordinated(const sl_storage *st);
/* Sets the term (sl_storage_term), not persisting it: see sli_storage_save_term. */
void sli_storage_set_term(sl_storage *st, uint64_t term);

/* standby.c: the watermark the process followed sent for a worker (Watermark): with
 * replication, what this standby may publish of it.  0 or SL_EARG. */
int sli_source_set_watermark(sl_source *src, uint32_t worker, uint64_t hw);

/* truncate.c */
/* sli_source_truncate drops every update of worker `worker` at times >= `time` from both of its
 * logs (SL_OK and SL_ERR), so that a replica rejoining under a new leader keeps only what that
 * leader has too.  Then *upper_out (OUT) is the worker's new upper U <= time: every update the
 * logs keep is at a time < U, and none at a time < U was dropped.  U is below `time` when a
 * block holding times on both sides of it had to go (blocks are dropped whole): the caller
 * fetches again from U.  When time >= the upper, nothing changes and *upper_out is the upper.
 * With a data directory the result is durable (synced) when this returns 0, whatever the
 * fsync policy, and a restart recovers exactly it: upper U, no dropped update back.  A crash
 * during the call recovers either the state from before it or exactly the truncated one.
 *
 * Precondition (the caller's to guarantee: it truncates only above what was ever published,
 * before it serves the worker's subscribers beyond it): no subscriber has been sent, or is
 * positioned past, any dropped block, nor told a frontier above U.  It is checked: a worker
 * with such a subscriber is left alone and SL_ETIME returned.
 *
 * Any thread (not while sl_storage_start or sl_storage_close runs, nor holding the worker's
 * lock); safe while the storage serves other workers and appenders append to this one.
 * Once the storage is started the work runs on its network thread (where serving and
 * compaction run, so no reader walks a block while it is cut) and the caller waits for it;
 * appenders of the worker wait on its lock meanwhile.  Returns 0, SL_EARG (src NULL, worker out
 * of range, time or U below the worker's compaction `since`: that history is consolidated),
 * SL_EWRONGOWNER (another cluster process hosts the worker), SL_ETIME (the precondition), or
 * -errno from the disk: nothing changed if the record of the truncation could not be written;
 * after that the worker is cut in memory and its record stays, so the next open finishes the
 * cut (the worker must not be appended to before that restart). */
int sli_source_truncate(sl_source *src, uint32_t worker, uint64_t time, uint64_t *upper_out);

/* source.c: the name of a registered source (valid as long as the runtime). */
const char *sli_source_name(const sl_source *src);

/* security.c: the TLS files (all NULL when outgoing connections are plaintext) and the token
 * (NULL: none) of this process's own outgoing connections; the strings stay st's. */
void sli_storage_client_identity(const sl_storage *st, const char **tls_ca, const char **tls_cert,
                                 const char **tls_key, const char **token);

/* error.c: the calling thread's last error message (sl_storage_last_error). */
void sli_storage_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* durable.c */
/* Writes the term to DATA/term (no-op without a data directory).  0 or -errno. */
int sli_storage_save_term(sl_storage *st, uint64_t term);
int sli_storage_save_fingerprint(sl_storage *st, uint64_t fp);
/* 0 with *fp from DATA/fingerprint (a standby of a cluster process), or a negative error. */
int sli_storage_load_fingerprint(sl_storage *st, uint64_t *fp);

#endif
