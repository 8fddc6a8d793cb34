/*
 * metrics.h - what the storage runtime counts for its operator, and how another thread gets a
 * consistent view of it.
 *
 * Hot-path counters (bytes, frames, connections, errors) are plain integers touched by the
 * network thread only: they cost an add, no atomic and no lock.  The fsync latency histogram
 * is updated by whichever thread syncs, so its cells are atomic.  Everything else a report
 * needs (uppers, subscriptions and their lag) is read where it lives when a report is built.
 *
 * A report is always built ON THE NETWORK THREAD: a Stats request from a client is answered
 * there directly; the metrics HTTP thread posts a request (sli_metrics_report), wakes the loop
 * and waits, with a bounded timeout, for the loop to render the text into its buffer under
 * `mu`.  So no lock is ever taken on the hot path, and a scrape sees one instant.
 */
#ifndef SLUICE_STORAGE_METRICS_H
#define SLUICE_STORAGE_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "proto/proto.h"

#define SLI_FSYNC_BUCKETS 12
#define SLI_ERR_KINDS 64 /* SL_E* codes are counted by -(code - SL_EPROTO); the rest as "os" */

struct sli_metrics_http;

struct sli_metrics {
	/* network thread only */
	uint64_t conn_seq;       /* ids given to connections (1, 2, ...) = connections accepted */
	uint64_t bytes_in, bytes_out, frames_in, frames_out;
	uint64_t errors[SLI_ERR_KINDS + 1]; /* error frames sent, by kind; last: OS errors */
	/* any thread */
	_Atomic uint64_t fsync_le[SLI_FSYNC_BUCKETS]; /* syncs taking <= bound (not cumulative) */
	_Atomic uint64_t fsync_count, fsync_sum_ns;
	/* a report requested by another thread */
	int ready;               /* mu, cv initialised */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_int want;         /* a request is pending: the loop checks this without the lock */
	sli_buf *req_out;        /* mu: where the loop renders; NULL when nobody waits */
	uint64_t req_seq, done_seq; /* mu */
	struct sli_metrics_http *http;
};

struct sl_storage;

/* Runtime lifecycle (runtime.c). */
void sli_metrics_init(struct sl_storage *st);
void sli_metrics_fini(struct sl_storage *st);
/* On the loop's wake: renders a pending report, if any. */
void sli_metrics_on_wake(struct sl_storage *st);

/* Network thread: appends the Prometheus text exposition of everything to out.  0 or SL_ENOMEM. */
int sli_metrics_render(struct sl_storage *st, sli_buf *out);

/* Any thread but the network thread: has the loop render a report into out (appended) and
 * waits at most timeout_ms.  0, SL_ETIMEDOUT (the loop did not answer: not started or
 * stopping), SL_ENOMEM. */
int sli_metrics_report(struct sl_storage *st, sli_buf *out, int timeout_ms);

/* Counting helpers (network thread). */
void sli_metrics_count_error(struct sl_storage *st, int code);
/* Any thread: one log sync took ns nanoseconds. */
void sli_metrics_fsync(struct sl_storage *st, uint64_t ns);

/* The HTTP endpoint (metrics_http.c). */
void sli_metrics_http_stop(struct sl_storage *st);

#endif
