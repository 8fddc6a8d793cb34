/*
 * sluice_bench.c - "Multiplexing at speed": sluice measured against the machine's limit, against
 * Redis pub/sub, and against its own targets, in one run on one machine.
 *
 *   raw       a plain TCP pump over loopback (one writer thread, one reader thread, 256 KiB
 *             writes) moving as many bytes as the sluice run moves row payload: the ceiling.
 *   sluice    updates/s and MB/s of 100-byte rows from an in-process storage runtime to a compute
 *             runtime: one source with S workers, one subscription per worker, all on one
 *             connection and one queue, one consumer thread that takes every event and iterates
 *             every update.  The data is appended before subscribing, in batches of up to 4096
 *             updates at one time (so Messages events fill 64 KiB log blocks), and every worker is
 *             closed, so a run ends when every subscription's frontier is closed.
 *   redis     redis-server on a free loopback port, a hiredis publisher pipelining PUBLISH of the
 *             same 100-byte payloads round-robin over C channels, one subscriber connection
 *             subscribed to all of them counting deliveries.
 *   fairness  100 subscriptions through two queues (1 + 99); the one stops consuming after its
 *             first Messages event.  The 99's payload rate against a run where none stops, and
 *             the storage's memory while that happens.
 *   latency   append-to-delivery at a paced 100,000 updates/s over 1,000 subscriptions: each row
 *             carries its CLOCK_MONOTONIC append time; the consumer subtracts it from now.
 *   memory    storage memory per idle subscription, 100,000 subscriptions on one connection.
 *
 * The fairness and memory tests run the storage runtime in a forked child process, so what they
 * measure (the child's malloc in-use bytes and VmRSS) is the storage's own memory and nothing of
 * the compute runtime's.  Every wait is bounded in time; everything is freed at the end (the
 * --quick configuration runs under ASan in CI).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sluice/compute.h"
#include "sluice/storage.h"

#ifdef SLUICE_BENCH_HIREDIS
#include <hiredis/hiredis.h>
#endif

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

static void config_init(struct config *cf, int quick)
{
	memset(cf, 0, sizeof(*cf));
	cf->quick = quick;
	cf->runs = 3;
	if (quick) {
		cf->tput_bytes = 4u << 20;
		cf->subs[0] = 1, cf->subs[1] = 100, cf->subs[2] = 1000, cf->nsubs = 3;
		cf->redis_msgs = 20000;
		cf->fair_subs = 100;
		cf->fair_bytes = 4u << 20;
		cf->lat_subs = 100;
		cf->lat_rate = 100000;
		cf->lat_ms = 200;
		cf->mem_workers = 100, cf->mem_dataflows = 10;
		cf->timeout_ns = 30ull * 1000000000ull;
	} else {
		cf->tput_bytes = 1ull << 30;
		cf->subs[0] = 1, cf->subs[1] = 100, cf->subs[2] = 10000, cf->nsubs = 3;
		cf->redis_msgs = 2000000;
		cf->fair_subs = 100;
		cf->fair_bytes = 512ull << 20;
		cf->lat_subs = 1000;
		cf->lat_rate = 100000;
		cf->lat_ms = 3000;
		cf->mem_workers = 1000, cf->mem_dataflows = 100;
		cf->timeout_ns = 120ull * 1000000000ull;
	}
}

/* ------------------------------------------------------------------------------------------ */
/* small helpers */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The median of v[0, n) (sorts v); NAN-free: callers pass n >= 1. */
static double median(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Fills row with ROW_BYTES of a recognisable pattern. */
static void fill_row(uint8_t *row, uint64_t seed)
{
	for (unsigned i = 0; i < ROW_BYTES; i++)
		row[i] = (uint8_t)('a' + (seed + i) % 26);
}

/* ------------------------------------------------------------------------------------------ */
/* the result table */

struct row {
	char test[40];
	char metric[40];
	char value[40];
	char target[24];
	char verdict[12];
};

static struct row *rows;
static size_t nrows, caprows;

static void add_row(const char *test, const char *metric, const char *target, const char *verdict,
                    const char *fmt, ...)
{
	if (nrows == caprows) {
		size_t cap = caprows ? caprows * 2 : 32;
		struct row *t = realloc(rows, cap * sizeof(*t));
		if (t == NULL)
			return;
		rows = t;
		caprows = cap;
	}
	struct row *r = &rows[nrows++];
	memset(r, 0, sizeof(*r));
	snprintf(r->test, sizeof(r->test), "%s", test);
	snprintf(r->metric, sizeof(r->metric), "%s", metric);
	snprintf(r->target, sizeof(r->target), "%s", target ? target : "");
	snprintf(r->verdict, sizeof(r->verdict), "%s", verdict ? verdict : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->value, sizeof(r->value), fmt, ap);
	va_end(ap);
	printf("  %-30s %-30s %16s %-12s %s\n", r->test, r->metric, r->value, r->target, r->verdict);
	fflush(stdout);
}

static const char *verdict(int ok)
{
	return ok ? "met" : "MISSED";
}

/* ------------------------------------------------------------------------------------------ */
/* storage setup shared by the in-process tests and the storage child */

struct store {
	sl_storage *st;
	sl_source *src;
	uint32_t workers;
};

/* Opens a storage runtime on 127.0.0.1:0 with one source of `workers` workers, appends
 * `per_worker` 100-byte updates to each (batches of PREFILL_BATCH at one time), closes every
 * worker when `close_workers` is set, and starts the network thread. */
static int store_prepare(struct store *s)
{
	sl_storage_config cfg;
	memset(s, 0, sizeof(*s));
	sl_storage_config_init(&cfg);
	cfg.listen = "127.0.0.1:0";
	/* The memory test puts 100,000 subscriptions on one connection, subscribed at once:
	 * above the default per-connection limits, which guard against hostile clients. */
	cfg.max_subscriptions = 1u << 20;
	cfg.subscribe_burst = 1u << 20;
	return sl_storage_open(&cfg, &s->st);
}

/* The rest of store_open on a prepared runtime (in a cluster: only the hosted workers). */
static int store_fill_start(struct store *s, uint32_t workers, uint64_t per_worker, int close_workers)
{
	int rc;
	if ((rc = sl_source_register(s->st, "bench", "bench", workers, 0, &s->src)) != 0)
		goto err_close;
	s->workers = workers;
	if (per_worker > 0) {
		size_t batch = per_worker < PREFILL_BATCH ? (size_t)per_worker : PREFILL_BATCH;
		uint8_t *buf = malloc(batch * ROW_BYTES);
		sl_update *ups = malloc(batch * sizeof(*ups));
		if (buf == NULL || ups == NULL) {
			free(buf);
			free(ups);
			rc = SL_ENOMEM;
			goto err_close;
		}
		for (size_t i = 0; i < batch; i++) {
			fill_row(buf + i * ROW_BYTES, i);
			ups[i].row = (sl_bytes){buf + i * ROW_BYTES, ROW_BYTES};
			ups[i].diff = 1;
		}
		for (uint32_t w = 0; w < workers && rc == 0; w++) {
			uint64_t left = per_worker, t = 1;
			if (!sl_source_hosts(s->src, w))
				continue;
			while (left > 0 && rc == 0) {
				size_t n = left < batch ? (size_t)left : batch;
				for (size_t i = 0; i < n; i++)
					ups[i].time = t;
				rc = sl_source_append(s->src, w, SL_OK, ups, n);
				left -= n;
				t++;
			}
			if (rc == 0 && !close_workers)
				rc = sl_source_advance(s->src, w, t);
		}
		free(buf);
		free(ups);
		if (rc != 0)
			goto err_close;
	}
	if (close_workers)
		for (uint32_t w = 0; w < workers && rc == 0; w++)
			if (sl_source_hosts(s->src, w))
				rc = sl_source_close_worker(s->src, w);
	if (rc != 0 || (rc = sl_storage_start(s->st)) != 0)
		goto err_close;
	return 0;
err_close:
	sl_storage_close(s->st);
	s->st = NULL;
	return rc;
}

static int store_open(uint32_t workers, uint64_t per_worker, int close_workers, struct store *s)
{
	int rc = store_prepare(s);
	return rc != 0 ? rc : store_fill_start(s, workers, per_worker, close_workers);
}

static void store_close(struct store *s)
{
	sl_storage_close(s->st);
	s->st = NULL;
}

static uint32_t client_window; /* --window; 0 = the runtime's default */

static int client_open(int port, sl_client **out)
{
	char addr[64];
	sl_client_config cfg;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	sl_client_config_init(&cfg);
	cfg.server = addr;
	if (client_window)
		cfg.window = client_window;
	return sl_client_open(&cfg, out);
}

/* ------------------------------------------------------------------------------------------ */
/* the consumer: one queue on its own thread */

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

static void cons_fail(struct cons *k, int rc, const char *what)
{
	if (k->rc == 0) {
		k->rc = rc ? rc : SL_EPROTO;
		snprintf(k->err, sizeof(k->err), "%s: %s", what, sl_strerror(k->rc));
	}
}

static void *cons_main(void *arg)
{
	struct cons *k = arg;
	uint64_t nsubs = (uint64_t)k->nworkers * k->ndataflows, closed = 0, subscribed = 0;
	uint8_t *isclosed = calloc(nsubs ? nsubs : 1, 1);
	sl_queue *q = NULL;
	int rc;
	if (isclosed == NULL) {
		cons_fail(k, SL_ENOMEM, "consumer");
		goto out;
	}
	if ((rc = sl_queue_open(k->c, &q)) != 0) {
		cons_fail(k, rc, "sl_queue_open");
		goto out;
	}
	k->t_start = now_ns();
	for (uint32_t d = 1; d <= k->ndataflows; d++) {
		for (uint32_t w = 0; w < k->nworkers; w++) {
			sl_sub sub;
			if ((rc = sl_subscribe(q, d, k->source, k->worker0 + w, 0, &sub)) != 0) {
				cons_fail(k, rc, "sl_subscribe");
				goto out;
			}
		}
	}
	for (;;) {
		if (now_ns() > k->deadline_ns) {
			cons_fail(k, SL_ETIMEDOUT, "consumer deadline");
			break;
		}
		if (k->mode == MODE_DRAIN && closed == nsubs)
			break;
		if (atomic_load(&k->release)) {
			/* STALL/IDLE: the end of the run; DRAIN: main gave up on it */
			if (k->mode == MODE_DRAIN)
				cons_fail(k, SL_ECLOSED, "aborted");
			break;
		}
		if (k->mode == MODE_STALL && atomic_load(&k->stalled)) {
			sleep_ms(1); /* it stopped consuming: credit runs out, storage must stop */
			continue;
		}
		sl_event ev;
		rc = sl_queue_next(q, &ev, k->mode == MODE_DRAIN ? 100 : 10);
		if (rc < 0) {
			cons_fail(k, rc, "sl_queue_next");
			break;
		}
		if (rc == 0)
			continue;
		switch (ev.kind) {
		case SL_EV_SUBSCRIBED:
			if (++subscribed == nsubs) {
				k->t_subscribed = now_ns();
				atomic_store(&k->subscribed_all, 1);
			}
			break;
		case SL_EV_MESSAGES: {
			sl_iter it;
			sl_bytes row;
			int64_t diff;
			uint64_t bytes = 0, n = 0;
			sl_iter_init(&it, &ev);
			if (k->samples) {
				uint64_t now = now_ns();
				while (sl_iter_update(&it, &row, &diff)) {
					bytes += row.len;
					n++;
					if (row.len >= 8) {
						uint64_t stamp;
						memcpy(&stamp, row.ptr, 8);
						if (k->nsamples < k->cap_samples)
							k->samples[k->nsamples++] = now - stamp;
						else
							k->dropped_samples++;
					}
				}
			} else {
				while (sl_iter_update(&it, &row, &diff)) {
					bytes += row.len;
					n++;
				}
			}
			k->updates += n;
			atomic_fetch_add_explicit(&k->payload, bytes, memory_order_relaxed);
			if (k->mode == MODE_STALL)
				atomic_store(&k->stalled, 1);
			break;
		}
		case SL_EV_PROGRESS:
			if (ev.frontier == SL_TIME_CLOSED) {
				uint64_t i = (uint64_t)(ev.dataflow - 1) * k->nworkers + (ev.worker - k->worker0);
				if (i < nsubs && !isclosed[i]) {
					isclosed[i] = 1;
					closed++;
				}
			}
			break;
		case SL_EV_SUBSCRIBE_ERROR:
			cons_fail(k, ev.code, "subscribe refused");
			goto out;
		case SL_EV_DISCONNECTED:
			cons_fail(k, ev.code, "disconnected");
			goto out;
		case SL_EV_RECONNECTED:
		case SL_EV_RESNAPSHOT:
			break; /* storage is in-process here: neither happens */
		}
	}
out:
	k->t_done = now_ns();
	sl_queue_close(q);
	free(isclosed);
	atomic_store(&k->finished, 1);
	return NULL;
}

static void cons_init(struct cons *k, sl_client *c, uint64_t source, uint32_t worker0,
                      uint32_t nworkers, uint32_t ndataflows, int mode, uint64_t timeout_ns)
{
	memset(k, 0, sizeof(*k));
	k->c = c;
	k->source = source;
	k->worker0 = worker0;
	k->nworkers = nworkers;
	k->ndataflows = ndataflows;
	k->mode = mode;
	k->deadline_ns = now_ns() + timeout_ns;
}

/* Waits (bounded by deadline_ns) until *flag is set or the consumer finished.  0 when set. */
static int wait_flag(atomic_int *flag, struct cons *k, uint64_t deadline_ns)
{
	while (!atomic_load(flag)) {
		if (atomic_load(&k->finished) || now_ns() > deadline_ns)
			return -1;
		sleep_ms(1);
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* raw: the machine's limit */

struct pump {
	int fd;
	uint64_t bytes;
	int rc;
};

static void *pump_writer(void *arg)
{
	struct pump *p = arg;
	uint8_t *buf = malloc(RAW_CHUNK);
	uint64_t left = p->bytes;
	if (buf == NULL) {
		p->rc = -ENOMEM;
		shutdown(p->fd, SHUT_WR);
		return NULL;
	}
	memset(buf, 'x', RAW_CHUNK);
	while (left > 0) {
		size_t n = left < RAW_CHUNK ? (size_t)left : RAW_CHUNK;
		ssize_t w = write(p->fd, buf, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			p->rc = -errno;
			break;
		}
		left -= (uint64_t)w;
	}
	shutdown(p->fd, SHUT_WR);
	free(buf);
	return NULL;
}

/* Moves `bytes` over a loopback TCP connection; *gbps = bytes / seconds / 1e9. */
static int run_raw(uint64_t bytes, double *gbps)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int lfd, wfd = -1, rfd = -1, rc = 0;
	uint8_t *buf = NULL;
	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 1) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) != 0 ||
	    (wfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(wfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    (rfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		rc = -errno;
		goto out;
	}
	if ((buf = malloc(RAW_CHUNK)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	struct pump p = {.fd = wfd, .bytes = bytes};
	pthread_t th;
	uint64_t t0 = now_ns(), got = 0;
	if ((rc = pthread_create(&th, NULL, pump_writer, &p)) != 0) {
		rc = -rc;
		goto out;
	}
	for (;;) {
		ssize_t r = read(rfd, buf, RAW_CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (uint64_t)r;
	}
	uint64_t t1 = now_ns();
	pthread_join(th, NULL);
	if (p.rc != 0)
		rc = p.rc;
	else if (got != bytes)
		rc = -EIO;
	else
		*gbps = (double)bytes / (double)(t1 - t0);
out:
	free(buf);
	if (rfd >= 0)
		close(rfd);
	if (wfd >= 0)
		close(wfd);
	close(lfd);
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* sluice throughput */

/* One run with `subs` subscriptions (one per worker).  *ups in updates/s, *bps in payload B/s. */
static int run_sluice(const struct config *cf, uint32_t subs, double *ups, double *bps)
{
	uint64_t per_worker = cf->tput_bytes / ROW_BYTES / subs;
	struct store s;
	sl_client *c = NULL;
	struct cons k;
	pthread_t th;
	int rc;
	if (per_worker == 0)
		per_worker = 1;
	if ((rc = store_open(subs, per_worker, 1, &s)) != 0) {
		fprintf(stderr, "sluice: storage: %s\n", sl_strerror(rc));
		return rc;
	}
	if ((rc = client_open(sl_storage_port(s.st), &c)) != 0) {
		fprintf(stderr, "sluice: client: %s\n", sl_strerror(rc));
		goto out;
	}
	cons_init(&k, c, sl_source_id(s.src), 0, subs, 1, MODE_DRAIN, cf->timeout_ns);
	if ((rc = pthread_create(&th, NULL, cons_main, &k)) != 0) {
		rc = -rc;
		goto out;
	}
	pthread_join(th, NULL);
	if (k.rc != 0) {
		fprintf(stderr, "sluice: %s\n", k.err);
		rc = k.rc;
	} else if (k.updates != per_worker * subs) {
		fprintf(stderr, "sluice: got %" PRIu64 " updates, expected %" PRIu64 "\n", k.updates,
		        per_worker * subs);
		rc = SL_EPROTO;
	} else {
		double secs = (double)(k.t_done - k.t_start) / 1e9;
		if (getenv("SLUICE_BENCH_DEBUG"))
			fprintf(stderr, "sluice %u subs: %.3f s, subscribed after %.3f s\n", subs, secs,
			        (double)(k.t_subscribed - k.t_start) / 1e9);
		*ups = (double)k.updates / secs;
		*bps = (double)atomic_load(&k.payload) / secs;
	}
out:
	sl_client_close(c);
	store_close(&s);
	return rc;
}

/* Aggregate throughput to one client from a cluster of `procs` storage runtimes (in this
 * process, each on its own port and network thread): one source of CLUSTER_WORKERS workers,
 * each process holding its share, the client subscribing every worker. */
#define CLUSTER_WORKERS 6
static int run_cluster(const struct config *cf, uint32_t procs, double *ups)
{
	uint64_t per_worker = cf->tput_bytes / ROW_BYTES / CLUSTER_WORKERS;
	struct store s[3];
	char addr[3][64];
	const char *addrs[3];
	sl_client *c = NULL;
	struct cons k;
	pthread_t th;
	uint32_t opened = 0;
	int rc = 0;
	if (per_worker == 0)
		per_worker = 1;
	for (; opened < procs && rc == 0; opened++)
		if ((rc = store_prepare(&s[opened])) == 0) {
			snprintf(addr[opened], sizeof(addr[opened]), "127.0.0.1:%d", sl_storage_port(s[opened].st));
			addrs[opened] = addr[opened];
		}
	for (uint32_t i = 0; i < procs && rc == 0; i++)
		if (procs > 1 && (rc = sl_storage_set_cluster(s[i].st, addrs, procs, i, 42)) != 0)
			break;
	for (uint32_t i = 0; i < procs && rc == 0; i++)
		rc = store_fill_start(&s[i], CLUSTER_WORKERS, per_worker, 1);
	if (rc != 0) {
		fprintf(stderr, "cluster: storage: %s\n", sl_strerror(rc));
		goto out;
	}
	if ((rc = client_open(sl_storage_port(s[0].st), &c)) != 0) {
		fprintf(stderr, "cluster: client: %s\n", sl_strerror(rc));
		goto out;
	}
	cons_init(&k, c, sl_source_id(s[0].src), 0, CLUSTER_WORKERS, 1, MODE_DRAIN, cf->timeout_ns);
	if ((rc = pthread_create(&th, NULL, cons_main, &k)) != 0) {
		rc = -rc;
		goto out;
	}
	pthread_join(th, NULL);
	if (k.rc != 0) {
		fprintf(stderr, "cluster: %s\n", k.err);
		rc = k.rc;
	} else if (k.updates != per_worker * CLUSTER_WORKERS) {
		fprintf(stderr, "cluster: got %" PRIu64 " updates, expected %" PRIu64 "\n", k.updates,
		        per_worker * CLUSTER_WORKERS);
		rc = SL_EPROTO;
	} else {
		*ups = (double)k.updates / ((double)(k.t_done - k.t_start) / 1e9);
	}
out:
	sl_client_close(c);
	for (uint32_t i = 0; i < opened; i++)
		if (s[i].st != NULL)
			store_close(&s[i]);
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* the storage child: a storage runtime in its own process, so its memory is its own */

struct mem {
	uint64_t heap; /* malloc in-use bytes (mallinfo2: uordblks + hblkhd) */
	uint64_t rss;  /* VmRSS bytes */
};

struct child {
	pid_t pid;
	int cmd_fd, rsp_fd;
	int port;
};

static uint64_t vmrss_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	uint64_t kb = 0;
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %" SCNu64, &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

static void mem_self(struct mem *m)
{
	struct mallinfo2 mi = mallinfo2();
	m->heap = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
	m->rss = vmrss_bytes();
}

static int read_full(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n > 0) {
		ssize_t r = read(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static void child_main(int cmd_fd, int rsp_fd, uint32_t workers, uint64_t per_worker,
                       int close_workers)
{
	struct store s;
	int32_t port;
	int rc = store_open(workers, per_worker, close_workers, &s);
	port = rc == 0 ? sl_storage_port(s.st) : rc;
	if (write_full(rsp_fd, &port, sizeof(port)) != 0 || rc != 0)
		goto out;
	for (;;) {
		char cmd;
		if (read_full(cmd_fd, &cmd, 1) != 0 || cmd == 'q')
			break;
		if (cmd == 'm') {
			struct mem m;
			mem_self(&m);
			if (write_full(rsp_fd, &m, sizeof(m)) != 0)
				break;
		}
	}
	store_close(&s);
out:
	close(cmd_fd);
	close(rsp_fd);
}

static int child_start(uint32_t workers, uint64_t per_worker, int close_workers, struct child *ch)
{
	int a[2], b[2];
	int32_t port;
	memset(ch, 0, sizeof(*ch));
	if (pipe2(a, O_CLOEXEC) != 0)
		return -errno;
	if (pipe2(b, O_CLOEXEC) != 0) {
		int rc = -errno;
		close(a[0]);
		close(a[1]);
		return rc;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int rc = -errno;
		close(a[0]), close(a[1]), close(b[0]), close(b[1]);
		return rc;
	}
	if (pid == 0) {
		close(a[1]);
		close(b[0]);
		child_main(a[0], b[1], workers, per_worker, close_workers);
		_exit(0);
	}
	close(a[0]);
	close(b[1]);
	ch->pid = pid;
	ch->cmd_fd = a[1];
	ch->rsp_fd = b[0];
	struct pollfd pfd = {.fd = ch->rsp_fd, .events = POLLIN};
	if (poll(&pfd, 1, 60000) != 1 || read_full(ch->rsp_fd, &port, sizeof(port)) != 0)
		port = SL_ETIMEDOUT;
	ch->port = port;
	return port > 0 ? 0 : port;
}

static int child_mem(struct child *ch, struct mem *m)
{
	struct pollfd pfd = {.fd = ch->rsp_fd, .events = POLLIN};
	if (write_full(ch->cmd_fd, "m", 1) != 0 || poll(&pfd, 1, 10000) != 1 ||
	    read_full(ch->rsp_fd, m, sizeof(*m)) != 0)
		return SL_EIO;
	return 0;
}

/* Stops the child: asks it to close its storage, waits up to 10 s, then kills it. */
static void child_stop(struct child *ch)
{
	if (ch->pid <= 0)
		return;
	(void)write_full(ch->cmd_fd, "q", 1);
	close(ch->cmd_fd);
	for (int i = 0; i < 1000; i++) {
		if (waitpid(ch->pid, NULL, WNOHANG) == ch->pid)
			goto done;
		sleep_ms(10);
	}
	kill(ch->pid, SIGKILL);
	waitpid(ch->pid, NULL, 0);
done:
	close(ch->rsp_fd);
	ch->pid = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* fairness */

struct fair_result {
	double rate99;                /* payload B/s of the 99 */
	struct mem before, steady, after;
};

/* 1 + (subs - 1) subscriptions through two queues; the first stops consuming when `stall`. */
static int run_fair(const struct config *cf, int stall, struct fair_result *fr)
{
	uint32_t subs = cf->fair_subs;
	uint64_t per_worker = cf->fair_bytes / ROW_BYTES / subs;
	uint64_t want = per_worker * (subs - 1) * ROW_BYTES;
	struct child ch;
	sl_client *c = NULL;
	struct cons one, many;
	pthread_t th1, th2;
	int rc, started = 0;
	memset(fr, 0, sizeof(*fr));
	if ((rc = child_start(subs, per_worker, 1, &ch)) != 0) {
		fprintf(stderr, "fairness: storage child: %s\n", sl_strerror(rc));
		child_stop(&ch);
		return rc;
	}
	if ((rc = child_mem(&ch, &fr->before)) != 0 || (rc = client_open(ch.port, &c)) != 0)
		goto out;
	/* Source ids start at 1; the child registered exactly one source. */
	cons_init(&one, c, 1, 0, 1, 1, stall ? MODE_STALL : MODE_DRAIN, cf->timeout_ns);
	cons_init(&many, c, 1, 1, subs - 1, 1, MODE_DRAIN, cf->timeout_ns);
	if ((rc = pthread_create(&th1, NULL, cons_main, &one)) != 0) {
		rc = -rc;
		goto out;
	}
	if ((rc = pthread_create(&th2, NULL, cons_main, &many)) != 0) {
		atomic_store(&one.release, 1);
		pthread_join(th1, NULL);
		rc = -rc;
		goto out;
	}
	started = 1;
	/* Steady state: the stalled one has stopped and the 99 moved a tenth of their data. */
	uint64_t deadline = now_ns() + cf->timeout_ns;
	while (!atomic_load(&many.finished) && now_ns() < deadline &&
	       (atomic_load(&many.payload) < want / 10 || (stall && !atomic_load(&one.stalled))))
		sleep_ms(1);
	if ((rc = child_mem(&ch, &fr->steady)) != 0)
		goto join;
	pthread_join(th2, NULL);
	started = 1 | 2;
	if ((rc = child_mem(&ch, &fr->after)) != 0)
		goto join;
	if (many.rc != 0) {
		fprintf(stderr, "fairness: %s\n", many.err);
		rc = many.rc;
	} else if (atomic_load(&many.payload) != want) {
		fprintf(stderr, "fairness: the 99 got %" PRIu64 " bytes, expected %" PRIu64 "\n",
		        atomic_load(&many.payload), want);
		rc = SL_EPROTO;
	} else {
		fr->rate99 = (double)want / ((double)(many.t_done - many.t_start) / 1e9);
	}
join:
	atomic_store(&one.release, 1);
	if (!(started & 2)) {
		atomic_store(&many.release, 1);
		pthread_join(th2, NULL);
	}
	pthread_join(th1, NULL);
	if (rc == 0 && one.rc != 0) {
		fprintf(stderr, "fairness: %s\n", one.err);
		rc = one.rc;
	}
out:
	sl_client_close(c);
	child_stop(&ch);
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* latency */

struct lat_result {
	double p50, p99, p999; /* microseconds */
	size_t samples;
	double rate;           /* updates/s actually appended */
};

static int run_latency(const struct config *cf, struct lat_result *lr)
{
	uint32_t subs = cf->lat_subs;
	uint64_t total = (uint64_t)cf->lat_rate * cf->lat_ms / 1000;
	uint32_t per_tick = cf->lat_rate / 1000;
	struct store s;
	sl_client *c = NULL;
	struct cons k;
	pthread_t th;
	uint64_t *wtime = calloc(subs, sizeof(*wtime));
	int rc;
	memset(lr, 0, sizeof(*lr));
	memset(&k, 0, sizeof(k));
	if (wtime == NULL)
		return SL_ENOMEM;
	if ((rc = store_open(subs, 0, 0, &s)) != 0) {
		free(wtime);
		return rc;
	}
	if ((rc = client_open(sl_storage_port(s.st), &c)) != 0)
		goto out;
	cons_init(&k, c, sl_source_id(s.src), 0, subs, 1, MODE_DRAIN, cf->timeout_ns);
	k.cap_samples = total + 1024;
	if ((k.samples = malloc(k.cap_samples * sizeof(*k.samples))) == NULL) {
		rc = SL_ENOMEM;
		goto out;
	}
	if ((rc = pthread_create(&th, NULL, cons_main, &k)) != 0) {
		rc = -rc;
		goto out;
	}
	if (wait_flag(&k.subscribed_all, &k, now_ns() + cf->timeout_ns) != 0) {
		fprintf(stderr, "latency: subscriptions did not complete: %s\n", k.err);
		rc = k.rc ? k.rc : SL_ETIMEDOUT;
		goto close_workers;
	}

	/* The paced producer: every millisecond, per_tick updates (one per worker, round-robin),
	 * each stamped just before its append and followed by its worker's advance. */
	uint8_t row[ROW_BYTES];
	fill_row(row, 0);
	sl_update u = {.row = {row, ROW_BYTES}, .diff = 1};
	uint64_t start = now_ns(), sent = 0;
	uint32_t next_w = 0;
	for (uint64_t tick = 0; sent < total && rc == 0; tick++) {
		struct timespec ts;
		uint64_t at = start + tick * 1000000ull;
		ts.tv_sec = (time_t)(at / 1000000000ull);
		ts.tv_nsec = (long)(at % 1000000000ull);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		for (uint32_t i = 0; i < per_tick && sent < total && rc == 0; i++, sent++) {
			uint32_t w = next_w;
			next_w = (next_w + 1) % subs;
			u.time = ++wtime[w];
			uint64_t stamp = now_ns();
			memcpy(row, &stamp, sizeof(stamp));
			if ((rc = sl_source_append(s.src, w, SL_OK, &u, 1)) == 0)
				rc = sl_source_advance(s.src, w, u.time + 1);
		}
		if (now_ns() - start > cf->timeout_ns)
			rc = SL_ETIMEDOUT;
	}
	lr->rate = (double)sent / ((double)(now_ns() - start) / 1e9);
	if (rc != 0)
		fprintf(stderr, "latency: producer: %s\n", sl_strerror(rc));
close_workers:
	for (uint32_t w = 0; w < subs; w++)
		sl_source_close_worker(s.src, w);
	pthread_join(th, NULL);
	if (rc == 0 && k.rc != 0) {
		fprintf(stderr, "latency: %s\n", k.err);
		rc = k.rc;
	}
	if (rc == 0 && k.nsamples != total) {
		fprintf(stderr, "latency: %zu samples, expected %" PRIu64 "\n", k.nsamples, total);
		rc = SL_EPROTO;
	}
	if (rc == 0) {
		qsort(k.samples, k.nsamples, sizeof(*k.samples), cmp_u64);
		size_t n = k.nsamples;
		lr->samples = n;
		lr->p50 = (double)k.samples[(n - 1) * 50 / 100] / 1e3;
		lr->p99 = (double)k.samples[(n - 1) * 99 / 100] / 1e3;
		lr->p999 = (double)k.samples[(n - 1) * 999 / 1000] / 1e3;
	}
out:
	sl_client_close(c);
	store_close(&s);
	free(k.samples);
	free(wtime);
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* memory per idle subscription */

struct mem_result {
	double heap_per_sub, rss_per_sub;     /* bytes */
	double heap_left_per_sub;             /* after unsubscribing everything */
	int heap_known;                       /* mallinfo2 works (not under ASan) */
	uint64_t subs;
};

static int run_memory(const struct config *cf, struct mem_result *mr)
{
	struct child ch;
	sl_client *c = NULL;
	struct cons k;
	pthread_t th;
	struct mem before, after, gone;
	int rc;
	memset(mr, 0, sizeof(*mr));
	mr->subs = (uint64_t)cf->mem_workers * cf->mem_dataflows;
	if ((rc = child_start(cf->mem_workers, 0, 0, &ch)) != 0) {
		fprintf(stderr, "memory: storage child: %s\n", sl_strerror(rc));
		child_stop(&ch);
		return rc;
	}
	/* "before" includes the connection, so what grows is the subscriptions' own memory. */
	if ((rc = client_open(ch.port, &c)) != 0)
		goto out;
	sleep_ms(50);
	if ((rc = child_mem(&ch, &before)) != 0)
		goto out;
	cons_init(&k, c, 1, 0, cf->mem_workers, cf->mem_dataflows, MODE_IDLE, cf->timeout_ns);
	if ((rc = pthread_create(&th, NULL, cons_main, &k)) != 0) {
		rc = -rc;
		goto out;
	}
	if (wait_flag(&k.subscribed_all, &k, now_ns() + cf->timeout_ns) != 0) {
		fprintf(stderr, "memory: subscriptions did not complete: %s\n", k.err);
		rc = k.rc ? k.rc : SL_ETIMEDOUT;
	}
	sleep_ms(50); /* let any trailing frames settle */
	if (rc == 0)
		rc = child_mem(&ch, &after);
	atomic_store(&k.release, 1);
	pthread_join(th, NULL); /* closing its queue unsubscribes everything */
	if (rc == 0 && k.rc != 0) {
		fprintf(stderr, "memory: %s\n", k.err);
		rc = k.rc;
	}
	if (rc == 0) {
		/* Unsubscribes are asynchronous: give storage a bounded moment to process them. */
		sleep_ms(cf->quick ? 200 : 1000);
		rc = child_mem(&ch, &gone);
	}
	if (rc == 0) {
		mr->heap_per_sub = ((double)after.heap - (double)before.heap) / (double)mr->subs;
		mr->rss_per_sub = ((double)after.rss - (double)before.rss) / (double)mr->subs;
		mr->heap_left_per_sub = ((double)gone.heap - (double)before.heap) / (double)mr->subs;
		mr->heap_known = before.heap != 0;
	}
out:
	sl_client_close(c);
	child_stop(&ch);
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Redis pub/sub */

#ifdef SLUICE_BENCH_HIREDIS
struct redis_pub {
	int port;
	uint32_t channels;
	uint64_t msgs;
	_Atomic uint64_t t_start;
	int rc;
};

static void chan_name(char *buf, size_t cap, uint32_t i)
{
	snprintf(buf, cap, "c%u", i);
}

static void *redis_pub_main(void *arg)
{
	struct redis_pub *p = arg;
	struct timeval tv = {.tv_sec = 10};
	redisContext *ctx = redisConnectWithTimeout("127.0.0.1", p->port, tv);
	uint8_t payload[ROW_BYTES];
	const size_t batch = 1000;
	fill_row(payload, 0);
	if (ctx == NULL || ctx->err) {
		p->rc = -ECONNREFUSED;
		goto out;
	}
	redisSetTimeout(ctx, tv);
	atomic_store(&p->t_start, now_ns());
	for (uint64_t i = 0; i < p->msgs && p->rc == 0;) {
		size_t n = p->msgs - i < batch ? (size_t)(p->msgs - i) : batch;
		for (size_t j = 0; j < n; j++) {
			char ch[16];
			chan_name(ch, sizeof(ch), (uint32_t)((i + j) % p->channels));
			redisAppendCommand(ctx, "PUBLISH %s %b", ch, payload, (size_t)ROW_BYTES);
		}
		for (size_t j = 0; j < n; j++) {
			void *reply;
			if (redisGetReply(ctx, &reply) != REDIS_OK) {
				p->rc = -EIO;
				break;
			}
			freeReplyObject(reply);
		}
		i += n;
	}
out:
	redisFree(ctx);
	return NULL;
}

/* One run: deliveries/s seen by one subscriber of `channels` channels. */
static int run_redis(int port, uint32_t channels, uint64_t msgs, uint64_t timeout_ns, double *mps)
{
	struct timeval tv = {.tv_sec = 10};
	redisContext *sub = redisConnectWithTimeout("127.0.0.1", port, tv);
	struct redis_pub pub = {.port = port, .channels = channels, .msgs = msgs};
	pthread_t th;
	uint64_t got = 0, t_last = 0, deadline = now_ns() + timeout_ns;
	int rc = 0;
	char **argv = NULL;
	size_t *argl = NULL;
	if (sub == NULL || sub->err) {
		redisFree(sub);
		return -ECONNREFUSED;
	}
	redisSetTimeout(sub, tv);
	/* SUBSCRIBE in commands of up to 1000 channels; one confirmation per channel. */
	const uint32_t per_cmd = 1000;
	argv = calloc(per_cmd + 1, sizeof(*argv));
	argl = calloc(per_cmd + 1, sizeof(*argl));
	if (argv == NULL || argl == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i <= per_cmd; i++)
		if ((argv[i] = malloc(16)) == NULL) {
			rc = -ENOMEM;
			goto out;
		}
	for (uint32_t i = 0; i < channels; i += per_cmd) {
		uint32_t n = channels - i < per_cmd ? channels - i : per_cmd;
		strcpy(argv[0], "SUBSCRIBE");
		argl[0] = 9;
		for (uint32_t j = 0; j < n; j++) {
			chan_name(argv[j + 1], 16, i + j);
			argl[j + 1] = strlen(argv[j + 1]);
		}
		redisAppendCommandArgv(sub, (int)n + 1, (const char **)argv, argl);
	}
	for (uint32_t i = 0; i < channels; i++) {
		redisReply *r;
		if (redisGetReply(sub, (void **)&r) != REDIS_OK) {
			rc = -EIO;
			goto out;
		}
		freeReplyObject(r);
	}
	if ((rc = pthread_create(&th, NULL, redis_pub_main, &pub)) != 0) {
		rc = -rc;
		goto out;
	}
	while (got < msgs && now_ns() < deadline) {
		redisReply *r;
		if (redisGetReply(sub, (void **)&r) != REDIS_OK)
			break; /* timeout or error: counted as not delivered */
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
		    r->element[2]->type == REDIS_REPLY_STRING && r->element[2]->len == ROW_BYTES)
			got++;
		freeReplyObject(r);
	}
	t_last = now_ns();
	pthread_join(th, NULL);
	if (pub.rc != 0)
		rc = pub.rc;
	else if (got != msgs) {
		fprintf(stderr, "redis: %" PRIu64 " of %" PRIu64 " messages delivered\n", got, msgs);
		rc = -EIO;
	} else
		*mps = (double)got / ((double)(t_last - atomic_load(&pub.t_start)) / 1e9);
out:
	if (argv)
		for (uint32_t i = 0; i <= per_cmd; i++)
			free(argv[i]);
	free(argv);
	free(argl);
	redisFree(sub);
	return rc;
}
#endif

/* A path to redis-server on PATH, or NULL. */
static int have_redis_server(void)
{
	const char *path = getenv("PATH");
	char buf[4096];
	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin";
	while (*path) {
		const char *end = strchr(path, ':');
		size_t n = end ? (size_t)(end - path) : strlen(path);
		snprintf(buf, sizeof(buf), "%.*s/redis-server", (int)n, path);
		if (access(buf, X_OK) == 0)
			return 1;
		path += n;
		if (*path == ':')
			path++;
	}
	return 0;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void stop_process(pid_t pid)
{
	kill(pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

#ifdef SLUICE_BENCH_HIREDIS
/* Starts redis-server on a free loopback port and waits (at most 5 s) for it to answer PING. */
static pid_t redis_start(int *port_out)
{
	int port = free_port();
	char ps[16];
	if (port <= 0)
		return -1;
	snprintf(ps, sizeof(ps), "%d", port);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0), dup2(fd, 1), dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
		execlp("redis-server", "redis-server", "--port", ps, "--bind", "127.0.0.1", "--save", "",
		       "--appendonly", "no", "--protected-mode", "no", "--client-output-buffer-limit",
		       "pubsub 0 0 0", "--daemonize", "no", (char *)NULL);
		_exit(127);
	}
	uint64_t deadline = now_ns() + 5000000000ull;
	while (now_ns() < deadline) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		struct timeval tv = {.tv_sec = 1};
		redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
		if (c && !c->err) {
			redisReply *r = redisCommand(c, "PING");
			int ok = r && r->type == REDIS_REPLY_STATUS;
			freeReplyObject(r);
			redisFree(c);
			if (ok) {
				*port_out = port;
				return pid;
			}
		} else {
			redisFree(c);
		}
		sleep_ms(20);
	}
	stop_process(pid);
	return -1;
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* machine description */

static void machine(char *buf, size_t cap)
{
	char model[256] = "unknown", line[512];
	struct utsname u;
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			char *colon = strchr(line, ':');
			if (strncmp(line, "model name", 10) == 0 && colon) {
				snprintf(model, sizeof(model), "%s", colon + 2);
				model[strcspn(model, "\n")] = '\0';
				break;
			}
		}
		fclose(f);
	}
	if (uname(&u) != 0)
		memset(&u, 0, sizeof(u));
	snprintf(buf, cap, "nproc %ld; CPU %s; kernel %s %s %s", sysconf(_SC_NPROCESSORS_ONLN), model,
	         u.sysname, u.release, u.machine);
}

/* ------------------------------------------------------------------------------------------ */

static int want(const struct config *cf, const char *test)
{
	return cf->only == NULL || strcmp(cf->only, test) == 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: sluice_bench [--quick] [--runs N] [--write FILE] [--skip-redis]\n"
	           "  --quick       a tiny configuration that finishes in seconds (CI)\n"
	           "  --runs N      runs per measurement, the median is reported (default 3)\n"
	           "  --write FILE  also write a markdown report to FILE\n"
	           "  --skip-redis  leave out the Redis pub/sub comparison\n"
	           "  --window B    initial compute credit window per subscription in bytes\n"
	           "                (default: the runtime's own, 256 KiB, growing to 4 MiB)\n"
	           "  --only TEST   run one test: raw, sluice, cluster, redis, fairness, latency, memory\n"
	           "  --subs N      sluice and redis with N subscriptions/channels only\n");
}

static void fmt_count(char *buf, size_t cap, uint64_t n)
{
	if (n >= 1000000 && n % 1000000 == 0)
		snprintf(buf, cap, "%" PRIu64 "M", n / 1000000);
	else if (n >= 1000 && n % 1000 == 0)
		snprintf(buf, cap, "%" PRIu64 ",%03u", n / 1000, 0u);
	else
		snprintf(buf, cap, "%" PRIu64, n);
}

static int write_report(const struct config *cf, const char *cmdline, const char *mach,
                        const char *date, double total_secs)
{
	FILE *f = fopen(cf->write, "w");
	if (f == NULL) {
		fprintf(stderr, "sluice_bench: %s: %s\n", cf->write, strerror(errno));
		return -1;
	}
	fprintf(f, "# sluice_bench results\n\n");
	fprintf(f, "Produced by `%s` (%.0f s), %s.\n\n", cmdline, total_secs, date);
	fprintf(f, "Machine: %s.\n\n", mach);
	fprintf(f, "Every value is the median of %d runs.", cf->runs);
	if (cf->window)
		fprintf(f, "  Compute credit window: %u bytes per subscription.", cf->window);
	fprintf(f, "\n\n");
	fprintf(f, "| test | metric | value | target | verdict |\n| --- | --- | ---: | --- | --- |\n");
	for (size_t i = 0; i < nrows; i++)
		fprintf(f, "| %s | %s | %s | %s | %s |\n", rows[i].test, rows[i].metric, rows[i].value,
		        rows[i].target, rows[i].verdict);
	fprintf(f,
	        "\n## What was measured\n\n"
	        "- **raw**: one TCP connection over 127.0.0.1, one writer thread doing %u KiB "
	        "`write()`s, one reader thread doing %u KiB `read()`s, moving as many bytes as a sluice "
	        "run moves row payload (%" PRIu64 " MiB).\n"
	        "- **sluice**: an in-process storage runtime (`sl_storage_open` on 127.0.0.1:0) and "
	        "compute runtime (`sl_client_open`, default credit window: 256 KiB, doubling up to 4 MiB "
	        "while the consumer keeps up), one source with one "
	        "worker per subscription, all subscriptions on one connection and one queue, one consumer "
	        "thread that takes every event and iterates every update.  %" PRIu64 " MiB of %u-byte "
	        "rows are appended before subscribing, in batches of up to %u updates at one time, and "
	        "every worker is closed; the clock runs from the first `sl_subscribe` to the last closed "
	        "frontier.  MB/s counts row payload only (the wire also carries a 12-byte update header "
	        "per row); \"x raw\" is payload bytes/s over the raw pump's bytes/s.  The raw pump is the "
	        "machine's limit only roughly: on this shared VM single runs vary by about 20%%, so a "
	        "median above 0.89x (where the headers would make sluice exceed raw) means the pump ran "
	        "slow that time.\n"
	        "- **cluster**: 1, 2 and 3 storage runtimes in this process (each on its own loopback "
	        "port and network thread, `sl_storage_set_cluster`), one source of 6 workers whose "
	        "rows (the same total as above) each process holds for the workers it hosts, and one "
	        "client given process 0's address that subscribes all 6 (it connects to every process "
	        "itself); aggregate updates/s from the first subscribe to the last closed frontier.\n"
	        "- **redis**: Debian's redis-server on a free loopback port (`--save '' --appendonly no "
	        "--client-output-buffer-limit 'pubsub 0 0 0'`), a hiredis publisher thread pipelining "
	        "`PUBLISH` in batches of 1000 (`redisAppendCommand`), round-robin over the channels, and "
	        "one subscriber connection subscribed to all channels counting deliveries; %" PRIu64
	        " messages per run, the clock runs from the first publish to the last delivery.  "
	        "\"sluice / redis\" is sluice updates/s at the same subscription count over Redis "
	        "delivered messages/s.\n"
	        "- **fairness**: %u subscriptions (one per worker, %" PRIu64 " MiB of rows appended "
	        "before, workers closed) on one connection through two queues on two threads: one "
	        "subscription alone, the others together.  In the stalled run the lone queue stops "
	        "consuming after its first Messages event; the ratio is the others' payload rate over "
	        "their rate in a run where nobody stops.  The storage runtime runs in a forked child "
	        "process here, so its memory is its own: \"heap\" is the child's malloc in-use bytes "
	        "(`mallinfo2` uordblks + hblkhd), RSS its VmRSS.  \"before\" is the idle storage with "
	        "its data, \"steady\" is when the others have moved a tenth of their data and the lone "
	        "one has stopped, \"after\" is when the others are done (the stalled subscription still "
	        "open).  Flat means heap growth from steady to after under 1 MiB.\n"
	        "- **latency**: %u subscriptions (one per worker) on one connection; a paced producer "
	        "appends %u updates/s for %u ms (every millisecond, one update to each of the next "
	        "%u workers round-robin, each followed by an advance of its worker), each row carrying "
	        "its CLOCK_MONOTONIC time taken just before `sl_source_append`; the consumer thread "
	        "subtracts it from the time it takes the event.  All samples are sorted.\n"
	        "- **memory**: %u workers x %u dataflows = %" PRIu64 " idle subscriptions (no data) on one "
	        "connection to a storage child process; heap and RSS of the storage process after every "
	        "subscription was confirmed, minus before subscribing (with the connection already "
	        "open), divided by the subscriptions.  \"left after unsubscribe\" is the same difference "
	        "after the queue was closed (which unsubscribes everything).\n",
	        RAW_CHUNK >> 10, RAW_CHUNK >> 10, cf->tput_bytes >> 20, cf->tput_bytes >> 20, ROW_BYTES,
	        PREFILL_BATCH, cf->redis_msgs, cf->fair_subs, cf->fair_bytes >> 20, cf->lat_subs,
	        cf->lat_rate, cf->lat_ms, cf->lat_rate / 1000, cf->mem_workers, cf->mem_dataflows,
	        (uint64_t)cf->mem_workers * cf->mem_dataflows);
	int rc = fclose(f) == 0 ? 0 : -1;
	if (rc != 0)
		fprintf(stderr, "sluice_bench: %s: write failed\n", cf->write);
	return rc;
}

int main(int argc, char **argv)
{
	struct config cf;
	int quick = 0, skip_redis = 0, runs = 3, failures = 0;
	const char *write = NULL, *only = NULL;
	uint32_t window = 0, subs = 0;
	char cmdline[1024] = "", mach[512], date[64], label[64], cnt[32];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
		} else if (strcmp(argv[i], "--skip-redis") == 0) {
			skip_redis = 1;
		} else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
			char *end;
			long v = strtol(argv[++i], &end, 10);
			if (*end != '\0' || v < 1 || v > 100) {
				fprintf(stderr, "sluice_bench: --runs wants 1..100\n");
				return 2;
			}
			runs = (int)v;
		} else if (strcmp(argv[i], "--window") == 0 && i + 1 < argc) {
			char *end;
			unsigned long v = strtoul(argv[++i], &end, 10);
			if (*end != '\0' || v < 1 || v > (1ul << 30)) {
				fprintf(stderr, "sluice_bench: --window wants bytes\n");
				return 2;
			}
			window = (uint32_t)v;
		} else if (strcmp(argv[i], "--subs") == 0 && i + 1 < argc) {
			char *end;
			unsigned long v = strtoul(argv[++i], &end, 10);
			if (*end != '\0' || v < 1 || v > 1000000) {
				fprintf(stderr, "sluice_bench: --subs wants 1..1000000\n");
				return 2;
			}
			subs = (uint32_t)v;
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			only = argv[++i];
		} else if (strcmp(argv[i], "--write") == 0 && i + 1 < argc) {
			write = argv[++i];
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	config_init(&cf, quick);
	cf.runs = runs;
	cf.skip_redis = skip_redis;
	cf.write = write;
	cf.window = client_window = window;
	cf.only = only;
	if (subs) {
		cf.subs[0] = subs;
		cf.nsubs = 1;
	}
	for (int i = 0; i < argc; i++) {
		size_t len = strlen(cmdline);
		snprintf(cmdline + len, sizeof(cmdline) - len, "%s%s", i ? " " : "", argv[i]);
	}
	signal(SIGPIPE, SIG_IGN);
	machine(mach, sizeof(mach));
	time_t now = time(NULL);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	printf("sluice_bench: %s\n%s\n%s%s, median of %d runs\n\n", cmdline, mach,
	       quick ? "quick configuration" : "full configuration", "", runs);
	printf("  %-30s %-30s %16s %-12s %s\n", "test", "metric", "value", "target", "verdict");
	uint64_t t_begin = now_ns();
	double *v = calloc((size_t)runs, sizeof(double)), *v2 = calloc((size_t)runs, sizeof(double));
	if (v == NULL || v2 == NULL)
		return 1;

	/* raw */
	double raw = 0;
	if (want(&cf, "raw") || want(&cf, "sluice")) {
		int rc = 0;
		for (int r = 0; r < runs && rc == 0; r++)
			rc = run_raw(cf.tput_bytes, &v[r]);
		if (rc != 0) {
			failures++;
			add_row("raw TCP pump", "GB/s", NULL, "error", "%s", sl_strerror(rc));
		} else {
			raw = median(v, runs);
			add_row("raw TCP pump", "GB/s", NULL, NULL, "%.2f", raw);
		}
	}

	/* sluice */
	double sluice_ups[3] = {0, 0, 0};
	for (int i = 0; i < cf.nsubs && want(&cf, "sluice"); i++) {
		int rc = 0;
		uint32_t n = cf.subs[i];
		for (int r = 0; r < runs && rc == 0; r++)
			rc = run_sluice(&cf, n, &v[r], &v2[r]);
		fmt_count(cnt, sizeof(cnt), n);
		snprintf(label, sizeof(label), "sluice, %s sub%s", cnt, n == 1 ? "" : "s");
		if (rc != 0) {
			failures++;
			add_row(label, "updates/s", NULL, "error", "%s", sl_strerror(rc));
			continue;
		}
		double ups = median(v, runs), bps = median(v2, runs);
		sluice_ups[i] = ups;
		add_row(label, "updates/s", NULL, NULL, "%.0f", ups);
		add_row(label, "MB/s of row payload", NULL, NULL, "%.0f", bps / 1e6);
		double want = n == 1 ? 0.7 : n >= 10000 ? 0.6 : 0;
		char target[24] = "";
		if (want > 0)
			snprintf(target, sizeof(target), ">= %.1fx", want);
		if (raw > 0)
			add_row(label, "x raw", target, want > 0 ? verdict(bps / 1e9 / raw >= want) : NULL,
			        "%.2fx", bps / 1e9 / raw);
	}

	/* a cluster: 1, 2 and 3 storage processes feeding one client */
	for (uint32_t procs = 1; procs <= 3 && want(&cf, "cluster"); procs++) {
		int rc = 0;
		for (int r = 0; r < runs && rc == 0; r++)
			rc = run_cluster(&cf, procs, &v[r]);
		snprintf(label, sizeof(label), "cluster, %u process%s", procs, procs == 1 ? "" : "es");
		if (rc != 0) {
			failures++;
			add_row(label, "updates/s", NULL, "error", "%s", sl_strerror(rc));
			continue;
		}
		add_row(label, "updates/s (6 workers, one client)", NULL, NULL, "%.0f", median(v, runs));
	}

	/* redis */
	if (!want(&cf, "redis")) {
		/* not asked for */
	} else if (skip_redis) {
		add_row("redis pub/sub", "", NULL, NULL, "skipped (--skip-redis)");
	} else {
#ifdef SLUICE_BENCH_HIREDIS
		int port = 0;
		pid_t pid = have_redis_server() ? redis_start(&port) : -1;
		if (!have_redis_server()) {
			add_row("redis pub/sub", "", NULL, NULL, "skipped (not installed)");
		} else if (pid < 0) {
			failures++;
			add_row("redis pub/sub", "", NULL, "error", "redis-server did not start");
		} else {
			for (int i = 0; i < cf.nsubs; i++) {
				int rc = 0;
				uint32_t n = cf.subs[i];
				for (int r = 0; r < runs && rc == 0; r++)
					rc = run_redis(port, n, cf.redis_msgs, cf.timeout_ns, &v[r]);
				fmt_count(cnt, sizeof(cnt), n);
				snprintf(label, sizeof(label), "redis, %s channel%s", cnt, n == 1 ? "" : "s");
				if (rc != 0) {
					failures++;
					add_row(label, "messages/s", NULL, "error", "%s", sl_strerror(rc));
					continue;
				}
				double mps = median(v, runs);
				add_row(label, "messages/s", NULL, NULL, "%.0f", mps);
				if (sluice_ups[i] > 0)
					add_row(label, "sluice / redis", ">= 5x",
					        verdict(sluice_ups[i] / mps >= 5), "%.1fx", sluice_ups[i] / mps);
			}
			stop_process(pid);
		}
#else
		add_row("redis pub/sub", "", NULL, NULL, "skipped (not installed)");
#endif
	}

	/* fairness */
	if (want(&cf, "fairness")) {
		struct fair_result *base = calloc((size_t)runs, sizeof(*base));
		struct fair_result *stall = calloc((size_t)runs, sizeof(*stall));
		int rc = base && stall ? 0 : SL_ENOMEM;
		for (int r = 0; r < runs && rc == 0; r++)
			if ((rc = run_fair(&cf, 0, &base[r])) == 0)
				rc = run_fair(&cf, 1, &stall[r]);
		snprintf(label, sizeof(label), "fairness, %u subs", cf.fair_subs);
		if (rc != 0) {
			failures++;
			add_row(label, "", NULL, "error", "%s", sl_strerror(rc));
		} else {
			for (int r = 0; r < runs; r++)
				v[r] = stall[r].rate99 / base[r].rate99;
			double ratio = median(v, runs);
			for (int r = 0; r < runs; r++)
				v[r] = base[r].rate99;
			add_row(label, "others' MB/s, none stalled", NULL, NULL, "%.0f", median(v, runs) / 1e6);
			for (int r = 0; r < runs; r++)
				v[r] = stall[r].rate99;
			add_row(label, "others' MB/s, one stalled", NULL, NULL, "%.0f", median(v, runs) / 1e6);
			add_row(label, "stalled / none stalled", ">= 0.9", verdict(ratio >= 0.9), "%.2f", ratio);
			/* memory: the median run by steady->after heap growth */
			double grow[100];
			for (int r = 0; r < runs; r++)
				grow[r] = (double)stall[r].after.heap - (double)stall[r].steady.heap;
			double g = median(grow, runs);
			const struct fair_result *m = &stall[0];
			for (int r = 0; r < runs; r++)
				if ((double)stall[r].after.heap - (double)stall[r].steady.heap == g)
					m = &stall[r];
			if (m->before.heap == 0) {
				/* mallinfo2 knows nothing of a replaced allocator (ASan): RSS only */
				add_row(label, "storage heap", NULL, NULL, "n/a (no mallinfo2)");
			} else {
				add_row(label, "storage heap before (MiB)", NULL, NULL, "%.1f",
				        (double)m->before.heap / 1048576.0);
				add_row(label, "storage heap steady (MiB)", NULL, NULL, "%.1f",
				        (double)m->steady.heap / 1048576.0);
				add_row(label, "storage heap after (MiB)", NULL, NULL, "%.1f",
				        (double)m->after.heap / 1048576.0);
				add_row(label, "storage heap steady->after", "flat (< 1 MiB)",
				        verdict(g < 1048576.0), "%+.0f KiB", g / 1024.0);
			}
			add_row(label, "storage RSS before/after (MiB)", NULL, NULL, "%.1f / %.1f",
			        (double)m->before.rss / 1048576.0, (double)m->after.rss / 1048576.0);
		}
		free(base);
		free(stall);
	}

	/* latency */
	if (want(&cf, "latency")) {
		struct lat_result *lr = calloc((size_t)runs, sizeof(*lr));
		int rc = lr ? 0 : SL_ENOMEM;
		for (int r = 0; r < runs && rc == 0; r++)
			rc = run_latency(&cf, &lr[r]);
		fmt_count(cnt, sizeof(cnt), cf.lat_subs);
		snprintf(label, sizeof(label), "latency, %s subs, %uk/s", cnt, cf.lat_rate / 1000);
		if (rc != 0) {
			failures++;
			add_row(label, "", NULL, "error", "%s", sl_strerror(rc));
		} else {
			for (int r = 0; r < runs; r++)
				v[r] = lr[r].p50;
			add_row(label, "p50 (us)", NULL, NULL, "%.0f", median(v, runs));
			for (int r = 0; r < runs; r++)
				v[r] = lr[r].p99;
			double p99 = median(v, runs);
			add_row(label, "p99 (us)", "<= 1000", verdict(p99 <= 1000), "%.0f", p99);
			for (int r = 0; r < runs; r++)
				v[r] = lr[r].p999;
			add_row(label, "p99.9 (us)", NULL, NULL, "%.0f", median(v, runs));
			for (int r = 0; r < runs; r++)
				v[r] = lr[r].rate;
			add_row(label, "achieved append rate (/s)", NULL, NULL, "%.0f", median(v, runs));
		}
		free(lr);
	}

	/* memory */
	if (want(&cf, "memory")) {
		struct mem_result *mr = calloc((size_t)runs, sizeof(*mr));
		int rc = mr ? 0 : SL_ENOMEM;
		for (int r = 0; r < runs && rc == 0; r++)
			rc = run_memory(&cf, &mr[r]);
		fmt_count(cnt, sizeof(cnt), (uint64_t)cf.mem_workers * cf.mem_dataflows);
		snprintf(label, sizeof(label), "memory, %s idle subs", cnt);
		if (rc != 0) {
			failures++;
			add_row(label, "", NULL, "error", "%s", sl_strerror(rc));
		} else {
			for (int r = 0; r < runs; r++)
				v[r] = mr[r].heap_per_sub;
			double h = median(v, runs);
			if (mr[0].heap_known)
				add_row(label, "storage heap B/sub", "<= 1024", verdict(h <= 1024), "%.0f", h);
			else
				add_row(label, "storage heap B/sub", NULL, NULL, "n/a (no mallinfo2)");
			for (int r = 0; r < runs; r++)
				v[r] = mr[r].rss_per_sub;
			add_row(label, "storage RSS B/sub", NULL, NULL, "%.0f", median(v, runs));
			for (int r = 0; r < runs; r++)
				v[r] = mr[r].heap_left_per_sub;
			add_row(label, "heap left after unsubscribe B/sub", NULL, NULL, "%.0f",
			        median(v, runs));
		}
		free(mr);
	}

	double total = (double)(now_ns() - t_begin) / 1e9;
	printf("\ntotal %.1f s%s\n", total, failures ? ", with errors" : "");
	if (write && write_report(&cf, cmdline, mach, date, total) != 0)
		failures++;
	free(v);
	free(v2);
	free(rows);
	return failures ? 1 : 0;
}
