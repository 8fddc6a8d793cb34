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

/* ---- shared by the files of this module ---- */

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
/* Starts fn(r) on the runner's thread.  0 or -errno. */
int sli_runner_spawn(sli_source_runner *r, void *(*fn)(void *));
/* Sleeps up to ns nanoseconds; returns early (1) when the runner is stopping, else 0. */
int sli_runner_sleep(sli_source_runner *r, uint64_t ns);
static inline int sli_runner_stopping(sli_source_runner *r)
{
	return atomic_load_explicit(&r->stopping, memory_order_relaxed);
}
/* Monotonic clock in nanoseconds. */
uint64_t sli_now_ns(void);

/* Per-kind starters, called by sli_source_start with the parsed spec (name and kind already
 * checked).  Each reads its keys, registers the source and fills *out. */
int sli_counter_start(sl_storage *st, sli_spec *sp, sli_source_runner **out, char *err,
                      size_t errlen);
int sli_file_start(sl_storage *st, sli_spec *sp, sli_source_runner **out, char *err,
                   size_t errlen);
int sli_ingest_start(sl_storage *st, sli_spec *sp, sli_source_runner **out, char *err,
                     size_t errlen);
int sli_postgres_start(sl_storage *st, sli_spec *sp, sli_source_runner **out, char *err,
                       size_t errlen);

/* Registers the source named by sp, and reports a failure in err.  Used by the starters. */
int sli_source_register_spec(sl_storage *st, const sli_spec *sp, uint32_t workers,
                             unsigned flags, sl_source **out, char *err, size_t errlen);

/* The most workers a built-in source may have. */
#define SLI_SOURCE_MAX_WORKERS 4096u

#endif
