/*
 * sources.h - sluiced's built-in sources: counter, file, ingest, postgres.
 *
 * A source spec is `NAME=KIND[,key=value...]` (see DESIGN.md, "Command-line contract").
 * sli_source_start parses it, registers the source with a storage runtime and, for the kinds
 * that produce data themselves (counter, file, postgres), starts the one thread that feeds it through
 * sl_source_append / sl_source_advance.  The ingest kind has no thread: the storage runtime
 * takes client Appends itself.
 *
 * Internal to libsluice (not installed).
 */
#ifndef SLUICE_SOURCES_H
#define SLUICE_SOURCES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/storage.h"

typedef struct sli_source_runner sli_source_runner;

/* sli_source_start parses spec, registers the source on st and starts its thread if its kind
 * has one.  On success *out is owned by the caller: stop it with sli_source_stop before
 * sl_storage_close.  On failure returns a negative code (SL_EARG for a bad spec) and writes a
 * one-line message (no trailing newline, no program prefix) to err[0, errlen). */
int sli_source_start(sl_storage *st, const char *spec, sli_source_runner **out, char *err,
                     size_t errlen);

/* Stops the source's thread (promptly: every sleep in a source is bounded and interruptible),
 * joins it and frees the runner.  The registered source itself stays with the storage runtime;
 * its workers are not closed.  Accepts NULL. */
void sli_source_stop(sli_source_runner *r);

/* The registered source (valid until sl_storage_close). */
sl_source *sli_source_handle(const sli_source_runner *r);

/* ---- shared by the files of this module ----
 *
 * Calls go one way: kinds.c (the table of kinds, sli_source_start) -> each kind (counter.c,
 * file.c, ingest.c, postgres.c) -> spec.c, runner.c, rowbatch.c, statefile.c.  No kind calls
 * kinds.c. */

#define SLI_SPEC_MAX_KEYS 16

typedef struct sli_spec_kv {
	const char *key;
	const char *value;
	int used; /* set by the sli_spec_get* accessors, so unknown keys can be reported */
} sli_spec_kv;

/* A parsed spec.  Strings point into buf, which sli_spec_parse allocates. */
typedef struct sli_spec {
	char *buf;
	const char *name;
	const char *kind;
	size_t nkv;
	sli_spec_kv kv[SLI_SPEC_MAX_KEYS];
} sli_spec;

/* ---- spec.c ---- */

/* Writes the message to err[0, errlen) (when err is not NULL and errlen > 0); returns SL_EARG. */
int sli_spec_error(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Parses `NAME=KIND[,key=value...]`.  0, or SL_EARG / SL_ENOMEM with a message in err.
 * On success free with sli_spec_fini. */
int sli_spec_parse(const char *s, sli_spec *sp, char *err, size_t errlen);
void sli_spec_fini(sli_spec *sp);

/* The value of key (marked used), or NULL when absent. */
const char *sli_spec_get(sli_spec *sp, const char *key);

/* Reads key as a decimal u64 in [min, max]; *out = def when absent.  0 or SL_EARG with a
 * message in err. */
int sli_spec_get_u64(sli_spec *sp, const char *key, uint64_t def, uint64_t min, uint64_t max,
                     uint64_t *out, char *err, size_t errlen);

/* SL_EARG with "unknown key" in err if some key was never read, else 0. */
int sli_spec_check_used(const sli_spec *sp, char *err, size_t errlen);

/* Registers the source named by sp, and reports a failure in err.  Used by the starters. */
int sli_source_register_spec(sl_storage *st, const sli_spec *sp, uint32_t workers,
                             unsigned flags, sl_source **out, char *err, size_t errlen);

/* ---- runner.c ---- */

/* The runner every kind shares: one optional thread plus a stop flag it sleeps on. */
struct sli_source_runner {
	sl_source *src;
	pthread_t thread;
	int has_thread;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */
	atomic_int stopping;
	void *state;                    /* the kind's own state */
	void (*free_state)(void *state); /* runs after the thread was joined */
};

/* Allocates a runner (no thread yet).  NULL on out-of-memory. */
sli_source_runner *sli_runner_new(sl_source *src);
/* A kind's start, once its state is built: a runner for src that owns state (freed by
 * free_state after the thread was joined, or at once when this fails), running fn(runner) on
 * its thread.  0 with *out, or SL_ENOMEM / -errno with a message naming the source in err. */
int sli_runner_start(sl_source *src, const char *name, void *state, void (*free_state)(void *),
                     void *(*fn)(void *), sli_source_runner **out, char *err, size_t errlen);
/* Starts fn(r) on the runner's thread.  0 or -errno. */
int sli_runner_spawn(sli_source_runner *r, void *(*fn)(void *));
/* Sleeps up to ns nanoseconds; returns early (1) when the runner is stopping, else 0. */
int sli_runner_sleep(sli_source_runner *r, uint64_t ns);
static inline int sli_runner_stopping(sli_source_runner *r)
{
	return atomic_load_explicit(&r->stopping, memory_order_relaxed);
}
/* Whether a source should wait and try the same commit again: a full disk or an I/O error
 * (the storage marks the worker append blocked and says so once; appends are all or nothing,
 * so nothing of the failed commit is in the log). */
int sli_source_retryable(int rc);
/* Sleeps *backoff_ns, first 100 ms, doubling to 5 s (the caller sets it to 0 after a success).
 * Returns 1 when the runner is stopping. */
int sli_runner_backoff(sli_source_runner *r, uint64_t *backoff_ns);
/* Monotonic clock in nanoseconds. */
uint64_t sli_now_ns(void);

/* ---- the kinds, listed in kinds.c ----
 *
 * Per-kind starters, called by sli_source_start with the parsed spec (name and kind already
 * checked).  Each reads its keys, registers the source and fills *out. */
int sli_counter_start(sl_storage *st, sli_spec *sp, sli_source_runner **out, char *err,
                      size_t errlen);
int sli_file_start(sl_storage *st, sli_spec *sp, sli_source_runner **out, char *err,
                   size_t errlen);
int sli_ingest_start(sl_storage *st, sli_spec *sp, sli_source_runner **out, char *err,
                     size_t errlen);
int sli_postgres_start(sl_storage *st, sli_spec *sp, sli_source_runner **out, char *err,
                       size_t errlen);

/* The most workers a built-in source may have. */
#define SLI_SOURCE_MAX_WORKERS 4096u

/* ---- the batch of one time (rowbatch.c; file and postgres sources) ----
 *
 * A source gathers the rows of one time with sli_rowbatch_add (each routed to a worker like an
 * ingested row, sl_ingest_route over its bytes), picks the time t, records where it will be
 * once t is done (sli_statefile_write), then appends them all at t and moves the uppers to
 * t + 1 in one transaction with sli_rowbatch_commit, and empties the batch with
 * sli_rowbatch_clear.  A commit that fails on a full disk changed nothing: the source waits
 * (sli_source_retry) and commits the same batch again. */

typedef struct sli_rowbatch_item {
	size_t off; /* into arena */
	size_t len;
	uint32_t key; /* worker * 2 + collection */
	int64_t diff;
} sli_rowbatch_item;

typedef struct sli_rowbatch {
	uint32_t workers;
	uint8_t *arena;
	size_t arena_len, arena_cap;
	sli_rowbatch_item *items;
	size_t nitems, items_cap;
	sl_update *ups; /* the rows of one worker and collection, for sl_source_append */
	size_t ups_cap;
	uint32_t *counts; /* rows per key: 2 * workers */
	sl_append_part *parts; /* 2 * workers: one per (worker, collection) of a commit */
} sli_rowbatch;

/* 0 or SL_ENOMEM.  Free with sli_rowbatch_fini (also after a failure). */
int sli_rowbatch_init(sli_rowbatch *b, uint32_t workers);
void sli_rowbatch_fini(sli_rowbatch *b);
/* Copies one row (len <= SL_ROW_MAX is the caller's to check) into the batch.  0 or SL_ENOMEM. */
int sli_rowbatch_add(sli_rowbatch *b, sl_collection coll, const void *row, size_t len,
                     int64_t diff);
/* Appends every row at time t and advances every hosted worker to upper, as one
 * sl_source_commit, skipping the workers this process does not host and those whose upper is
 * already past t (they got this batch before).  The batch is kept.  0 or the commit's code. */
int sli_rowbatch_commit(sli_rowbatch *b, sl_source *src, uint64_t t, uint64_t upper);
/* Empties the batch (its memory is kept for the next one). */
void sli_rowbatch_clear(sli_rowbatch *b);

/* ---- restart state (statefile.c; file and postgres sources) ----
 *
 * DATA/sources/NAME/FILE maps an upper to where the source continues from there: entries of
 * nvals numbers, the upper first.  The newest entry and the one before it are kept, written
 * atomically (by rename) before the workers advance to the new upper, so after a crash the
 * durable upper -- the new one or, if the advance was lost, the previous -- has an entry. */

#define SLI_STATEFILE_MAX_VALS 3

typedef struct sli_statefile {
	char *dir;        /* DATA/sources/NAME; NULL without a data directory (nothing is kept) */
	const char *file; /* a literal: the name in dir */
	size_t nvals;     /* numbers per entry, <= SLI_STATEFILE_MAX_VALS */
	uint64_t prev[SLI_STATEFILE_MAX_VALS]; /* the entry written or found last */
} sli_statefile;

/* Sets up the state file FILE of source `source` (file must outlive s).  0 or SL_ENOMEM. */
int sli_statefile_init(sli_statefile *s, sl_storage *st, const char *source, const char *file,
                       size_t nvals);
void sli_statefile_fini(sli_statefile *s);
/* Records entry (nvals numbers, entry[0] the upper) after the previous one.  0 (also without
 * a data directory) or a negative errno / SL_EIO. */
int sli_statefile_write(sli_statefile *s, const uint64_t *entry);
/* Finds the entry of upper and copies it to entry (nvals numbers): 0, or SL_EIO when there is
 * none (the file was lost or belongs to other data).  Upper 0 or no data directory: 0 with
 * entry all zero. */
int sli_statefile_resume(sli_statefile *s, uint64_t upper, uint64_t *entry);

#endif
