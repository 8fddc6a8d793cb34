/*
 * bench.h - what the files of sluice_bench share: the configuration, the clock, the storage and
 * client setup, the consumer thread, the storage child process, the result table, and the entry
 * of every benchmark (each in its own file; sluice_bench.c parses the command line and calls
 * them in order).  Only the files of bench/ include it.
 */
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "sluice/compute.h"
#include "sluice/storage.h"

#define ROW_BYTES 100u
#define PREFILL_BATCH 4096u   /* updates per sl_source_append in prefills */
#define RAW_CHUNK (256u << 10)


/* ------------------------------------------------------------------------------------------ */
/* configuration */

struct config {
	int quick;
	int runs;
	int skip_redis;
	const char *write;
	uint64_t tput_bytes;       /* row payload per sluice throughput run */
	uint32_t subs[3];          /* subscription counts for sluice and Redis */
	int nsubs;                 /* entries of subs in use */
	uint64_t redis_msgs;       /* messages per Redis run */
	uint32_t fair_subs;
	uint64_t fair_bytes;       /* row payload over all fairness workers */
	uint32_t lat_subs;
	uint32_t lat_rate;         /* updates per second */
	uint32_t lat_ms;           /* how long the paced producer runs */
	uint32_t mem_workers, mem_dataflows; /* idle subscriptions = workers x dataflows */
	uint64_t timeout_ns;       /* bound on any single run */
	uint32_t window;           /* client credit window per subscription; 0 = the default */
	const char *only;          /* run only the test of this name (for profiling) */
};

/* harness.c: the configuration's defaults, statistics, processes, the machine */
void config_init(struct config *cf, int quick);
int cmp_u64(const void *a, const void *b);
double median(double *v, int n);
int free_port(void);
void stop_process(pid_t pid);
void machine(char *buf, size_t cap);

/* The clock, the sleep and the row pattern of the timing loops: inline here so the measured code
 * compiles as it did when the benchmark was one file. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Fills row with ROW_BYTES of a recognisable pattern. */
static inline void fill_row(uint8_t *row, uint64_t seed)
{
	for (unsigned i = 0; i < ROW_BYTES; i++)
		row[i] = (uint8_t)('a' + (seed + i) % 26);
}

/* ------------------------------------------------------------------------------------------ */
/* report.c: the result table (printed row by row) and the markdown report */

void add_row(const char *test, const char *metric, const char *target, const char *verdict,
             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
const char *verdict(int ok);
void fmt_count(char *buf, size_t cap, uint64_t n);
int write_report(const struct config *cf, const char *cmdline, const char *mach,
                 const char *date, double total_secs);
void free_rows(void);

/* ------------------------------------------------------------------------------------------ */
/* store.c: storage setup shared by the in-process tests and the storage child */

struct store {
	sl_storage *st;
	sl_source *src;
	uint32_t workers;
};

int store_prepare(struct store *s);
int store_fill_start(struct store *s, uint32_t workers, uint64_t per_worker, int close_workers);
int store_open(uint32_t workers, uint64_t per_worker, int close_workers, struct store *s);
void store_close(struct store *s);

extern uint32_t client_window; /* --window; 0 = the runtime's default */
int client_open(int port, sl_client **out);

/* ------------------------------------------------------------------------------------------ */
/* consumer.c: the consumer, one queue on its own thread */

enum { MODE_DRAIN, MODE_STALL, MODE_IDLE };

struct cons {
	/* in */
	sl_client *c;
	uint64_t source;
	uint32_t worker0, nworkers;  /* subscribes workers [worker0, worker0 + nworkers) ... */
	uint32_t ndataflows;         /* ... for dataflows 1..ndataflows */
	int mode;
	uint64_t *samples;           /* latency samples (ns), when not NULL */
	size_t cap_samples;
	atomic_int release;          /* STALL/IDLE: set by main to end the run */
	uint64_t deadline_ns;
	/* out */
	_Atomic uint64_t payload;    /* row bytes seen so far */
	uint64_t updates;
	size_t nsamples;
	uint64_t dropped_samples;
	uint64_t t_start, t_done;
	uint64_t t_subscribed;       /* when the last SUBSCRIBED event was taken */
	atomic_int subscribed_all;   /* every SUBSCRIBED event was taken */
	atomic_int stalled;          /* STALL: it stopped consuming */
	atomic_int finished;
	int rc;
	char err[160];
};

void *cons_main(void *arg);
void cons_init(struct cons *k, sl_client *c, uint64_t source, uint32_t worker0,
               uint32_t nworkers, uint32_t ndataflows, int mode, uint64_t timeout_ns);
int wait_flag(atomic_int *flag, struct cons *k, uint64_t deadline_ns);

/* ------------------------------------------------------------------------------------------ */
/* child.c: the storage child: a storage runtime in its own process, so its memory is its own */

struct mem {
	uint64_t heap; /* malloc in-use bytes (mallinfo2: uordblks + hblkhd) */
	uint64_t rss;  /* VmRSS bytes */
};

struct child {
	pid_t pid;
	int cmd_fd, rsp_fd;
	int port;
};

int child_start(uint32_t workers, uint64_t per_worker, int close_workers, struct child *ch);
int child_mem(struct child *ch, struct mem *m);
void child_stop(struct child *ch);

/* ------------------------------------------------------------------------------------------ */
/* The benchmarks, in the order sluice_bench runs them.  Each runs its measurement cf->runs
 * times, adds its rows to the table, and adds its errors to *failures; v and v2 are scratch
 * arrays of cf->runs doubles. */

/* raw.c: the raw TCP pump; returns its median GB/s, 0 when it failed */
double bench_raw(const struct config *cf, double *v, int *failures);
/* throughput.c: sluice updates/s at each subscription count, into sluice_ups[i] (0: failed);
 * raw is bench_raw's figure (0: not measured) */
void bench_sluice(const struct config *cf, double raw, double *v, double *v2, double *sluice_ups,
                  int *failures);
/* cluster.c: 1, 2 and 3 storage processes feeding one client */
void bench_cluster(const struct config *cf, double *v, int *failures);
/* redis.c: Redis pub/sub at the same subscription counts, against sluice_ups */
void bench_redis(const struct config *cf, const double *sluice_ups, double *v, int *failures);
/* fairness.c, latency.c, memory.c */
void bench_fairness(const struct config *cf, double *v, int *failures);
void bench_latency(const struct config *cf, double *v, int *failures);
void bench_memory(const struct config *cf, double *v, int *failures);

#endif
