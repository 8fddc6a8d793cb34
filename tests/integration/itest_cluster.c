/*
 * itest_cluster.c - the compute runtime against a storage cluster of three in-process storage
 * runtimes on 127.0.0.1 (compute.h, "Clusters").
 *
 * Process i hosts the workers w with w mod 3 == i; data for a worker is appended only on its
 * owner.  The client is given one process's address and must find the others, route each
 * subscription to its owner, merge ListSources, split Appends, and survive one process going
 * away and coming back on the same port (its stream resumes exactly; the others never stall).
 * Every wait has a deadline; everything is closed so the leak checker stays quiet.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sluice/compute.h"
#include "sluice/storage.h"

#define WAIT_MS 60000
#define P 3
#define W 6
#define FINGERPRINT 0x5eed5eed12345678ull

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the cluster ---- */

typedef struct cluster {
	sl_storage *st[P];
	int port[P];
	char addr[P][64];
	const char *addrs[P];
	uint64_t fp[P];
	const char *names[4];
	unsigned flags[4];
	int nsrc;
	sl_source *src[P][4];
} cluster;

static void proc_open(cluster *cl, int i, int port)
{
	sl_storage_config cfg;
	char listen[64];
	sl_storage_config_init(&cfg);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	cfg.listen = listen;
	cfg.heartbeat_ms = 200;
	uint64_t end = now_ms() + WAIT_MS;
	int rc;
	/* the port of a process just closed may take a moment to be free again */
	while ((rc = sl_storage_open(&cfg, &cl->st[i])) != 0 && port != 0 && now_ms() < end)
		usleep(20000);
	assert_int_equal(rc, 0);
	cl->port[i] = sl_storage_port(cl->st[i]);
}

static void proc_setup(cluster *cl, int i)
{
	assert_int_equal(sl_storage_set_cluster(cl->st[i], cl->addrs, P, (uint32_t)i, cl->fp[i]), 0);
	for (int s = 0; s < cl->nsrc; s++)
		assert_int_equal(sl_source_register(cl->st[i], cl->names[s],
		                                    cl->flags[s] ? "ingest" : "test", W, cl->flags[s],
		                                    &cl->src[i][s]),
		                 0);
	assert_int_equal(sl_storage_start(cl->st[i]), 0);
}

/* Opens P runtimes on ephemeral ports, then makes them one cluster with the given sources. */
static void cluster_start(cluster *cl, const char *const *names, const unsigned *flags, int nsrc)
{
	memset(cl, 0, sizeof(*cl));
	cl->nsrc = nsrc;
	for (int s = 0; s < nsrc; s++) {
		cl->names[s] = names[s];
		cl->flags[s] = flags[s];
	}
	for (int i = 0; i < P; i++) {
		proc_open(cl, i, 0);
		snprintf(cl->addr[i], sizeof(cl->addr[i]), "127.0.0.1:%d", cl->port[i]);
		cl->addrs[i] = cl->addr[i];
		cl->fp[i] = FINGERPRINT;
	}
}

static void cluster_go(cluster *cl)
{
	for (int i = 0; i < P; i++)
		proc_setup(cl, i);
}

static void cluster_stop(cluster *cl)
{
	for (int i = 0; i < P; i++)
		sl_storage_close(cl->st[i]);
}

static sl_client *client_open(const char *addr)
{
	sl_client_config cfg;
	sl_client *c;
	sl_client_config_init(&cfg);
	cfg.server = addr;
	cfg.heartbeat_ms = 200;
	cfg.idle_timeout_ms = 5000;
	int rc = sl_client_open(&cfg, &c);
	if (rc != 0)
		fprintf(stderr, "sl_client_open: %s: %s\n", sl_strerror(rc), sl_client_last_error());
	assert_int_equal(rc, 0);
	return c;
}

/* ---- the stream: worker w gets row "w:k" at each time k ---- */

static int make_row(char *buf, uint32_t w, uint64_t k)
{
	return snprintf(buf, 32, "%" PRIu32 ":%" PRIu64, w, k);
}

static void append_time(sl_source *src, uint32_t w, uint64_t k)
{
	char row[32];
	int n = make_row(row, w, k);
	sl_update u = {.time = k, .diff = 1, .row = {(const uint8_t *)row, (size_t)n}};
	assert_int_equal(sl_source_append(src, w, SL_OK, &u, 1), 0);
	assert_int_equal(sl_source_advance(src, w, k + 1), 0);
}

/* Checks each event against the stream: one row per time, times in order, none twice. */
typedef struct checker {
	uint64_t next[W]; /* the time whose row is expected next */
	uint64_t frontier[W];
	int subscribed;
	int errors;
} checker;

static void check_event(checker *ck, const sl_event *ev)
{
	sl_iter it;
	sl_bytes row;
	int64_t diff;
	char want[32];
	switch (ev->kind) {
	case SL_EV_SUBSCRIBED:
		ck->subscribed++;
		break;
	case SL_EV_MESSAGES:
		assert_true(ev->worker < W);
		assert_int_equal(ev->collection, SL_OK);
		sl_iter_init(&it, ev);
		while (sl_iter_update(&it, &row, &diff)) {
			int n = make_row(want, ev->worker, ck->next[ev->worker]);
			if (ev->time != ck->next[ev->worker] || diff != 1 || row.len != (size_t)n ||
			    memcmp(row.ptr, want, (size_t)n) != 0) {
				fprintf(stderr, "worker %u: got %.*s at %" PRIu64 ", want %s\n", ev->worker,
				        (int)row.len, (const char *)row.ptr, ev->time, want);
				fail();
			}
			ck->next[ev->worker]++;
		}
		break;
	case SL_EV_PROGRESS:
		assert_true(ev->frontier >= ck->frontier[ev->worker]);
		ck->frontier[ev->worker] = ev->frontier;
		break;
	case SL_EV_SUBSCRIBE_ERROR:
		fprintf(stderr, "subscribe error: %s\n", ev->message);
		ck->errors++;
		fail();
		break;
	case SL_EV_DISCONNECTED:
		fprintf(stderr, "disconnected: %s\n", ev->message);
		fail();
		break;
	default:
		break;
	}
}

/* ---- tests ---- */

/* A client given process 1's address subscribes every worker and gets every stream whole. */
static void test_subscribe_all(void **state)
{
	(void)state;
	static const char *const names[] = {"s"};
	static const unsigned flags[] = {0};
	enum { TIMES = 200 };
	cluster cl;
	cluster_start(&cl, names, flags, 1);
	cluster_go(&cl);
	for (uint32_t w = 0; w < W; w++) {
		for (uint64_t k = 1; k <= TIMES; k++)
			append_time(cl.src[w % P][0], w, k);
		assert_int_equal(sl_source_advance(cl.src[w % P][0], w, SL_TIME_CLOSED), 0);
	}

	sl_client *c = client_open(cl.addr[1]);
	uint32_t np = 0;
	assert_int_equal(sl_client_cluster(c, &np), 0);
	assert_int_equal(np, P);
	sl_queue *q;
	sl_sub sub;
	assert_int_equal(sl_queue_open(c, &q), 0);
	for (uint32_t w = 0; w < W; w++)
		assert_int_equal(sl_subscribe(q, 1, sl_source_id(cl.src[0][0]), w, 0, &sub), 0);
	checker ck;
	memset(&ck, 0, sizeof(ck));
	for (uint32_t w = 0; w < W; w++)
		ck.next[w] = 1;
	uint64_t end = now_ms() + WAIT_MS;
	for (;;) {
		int closed = 0;
		for (uint32_t w = 0; w < W; w++)
			closed += ck.frontier[w] == SL_TIME_CLOSED;
		if (closed == W)
			break;
		assert_true(now_ms() < end);
		sl_event ev;
		if (sl_queue_next(q, &ev, 100) == 1)
			check_event(&ck, &ev);
	}
	assert_int_equal(ck.subscribed, W);
	for (uint32_t w = 0; w < W; w++)
		assert_int_equal(ck.next[w], TIMES + 1);
	sl_queue_close(q);
	sl_client_close(c);
	cluster_stop(&cl);
}

/* ListSources asks every process: worker w's upper comes from its owner. */
static void test_list_sources(void **state)
{
	(void)state;
	static const char *const names[] = {"a", "b"};
	static const unsigned flags[] = {0, SL_SOURCE_INGEST};
	cluster cl;
	cluster_start(&cl, names, flags, 2);
	cluster_go(&cl);
	for (uint32_t w = 0; w < W; w++)
		assert_int_equal(sl_source_advance(cl.src[w % P][0], w, 10 + w), 0);

	sl_client *c = client_open(cl.addr[2]);
	sl_source_info *v;
	size_t n;
	assert_int_equal(sl_client_list_sources(c, WAIT_MS, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "a");
	assert_string_equal(v[1].name, "b");
	assert_int_equal(v[0].id, sl_source_id(cl.src[0][0]));
	assert_int_equal(v[0].workers, W);
	for (uint32_t w = 0; w < W; w++)
		assert_int_equal(v[0].uppers[w], 10 + w);
	assert_int_equal(v[0].upper, 10);
	sl_source_info_free(v, n);
	sl_client_close(c);
	cluster_stop(&cl);
}

/* An Append of 10,000 rows is split by owner: every row lands on its worker, exactly once. */
static void test_append_split(void **state)
{
	(void)state;
	static const char *const names[] = {"in"};
	static const unsigned flags[] = {SL_SOURCE_INGEST};
	enum { N = 10000 };
	cluster cl;
	cluster_start(&cl, names, flags, 1);
	cluster_go(&cl);
	sl_client *c = client_open(cl.addr[0]);
	char(*rows)[16] = calloc(N, sizeof(*rows));
	sl_update *ups = calloc(N, sizeof(*ups));
	uint8_t *seen = calloc(N, 1);
	assert_non_null(rows);
	assert_non_null(ups);
	assert_non_null(seen);
	for (int i = 0; i < N; i++) {
		int len = snprintf(rows[i], sizeof(rows[i]), "r%d", i);
		ups[i] = (sl_update){.diff = 1, .row = {(const uint8_t *)rows[i], (size_t)len}};
	}
	uint64_t id = sl_source_id(cl.src[0][0]), t = 0;
	int rc = sl_client_append(c, id, ups, N, WAIT_MS, &t);
	if (rc != 0)
		fprintf(stderr, "append: %s: %s\n", sl_strerror(rc), sl_client_last_error());
	assert_int_equal(rc, 0);

	sl_queue *q;
	sl_sub sub;
	assert_int_equal(sl_queue_open(c, &q), 0);
	for (uint32_t w = 0; w < W; w++)
		assert_int_equal(sl_subscribe(q, 1, id, w, 0, &sub), 0);
	int got = 0;
	uint64_t end = now_ms() + WAIT_MS;
	while (got < N) {
		assert_true(now_ms() < end);
		sl_event ev;
		if (sl_queue_next(q, &ev, 100) != 1 || ev.kind != SL_EV_MESSAGES)
			continue;
		sl_iter it;
		sl_bytes row;
		int64_t diff;
		sl_iter_init(&it, &ev);
		while (sl_iter_update(&it, &row, &diff)) {
			char buf[16];
			assert_true(row.len < sizeof(buf));
			memcpy(buf, row.ptr, row.len);
			buf[row.len] = '\0';
			int i = atoi(buf + 1);
			assert_true(i >= 0 && i < N);
			assert_int_equal(diff, 1);
			assert_int_equal(seen[i], 0);
			assert_int_equal(ev.worker, sl_ingest_route(row, W));
			assert_true(ev.time <= t);
			seen[i] = 1;
			got++;
		}
	}
	/* nothing more comes */
	sl_event ev;
	uint64_t quiet = now_ms() + 300;
	while (now_ms() < quiet)
		if (sl_queue_next(q, &ev, 50) == 1)
			assert_int_not_equal(ev.kind, SL_EV_MESSAGES);
	sl_queue_close(q);
	free(rows);
	free(ups);
	free(seen);
	sl_client_close(c);
	cluster_stop(&cl);
}

/* ---- one process goes away and comes back ---- */

typedef struct producer {
	sl_source *src;
	int proc;
	uint64_t fast_until; /* times up to this one are produced at once (a restart catching up) */
	atomic_int stop;
	atomic_uint_fast64_t done; /* the last time produced */
	pthread_t thread;
} producer;

static void *producer_main(void *arg)
{
	producer *p = arg;
	for (uint64_t k = 1; k <= 1000000 && !atomic_load(&p->stop); k++) {
		for (uint32_t w = (uint32_t)p->proc; w < W; w += P)
			append_time(p->src, w, k);
		atomic_store(&p->done, k);
		if (k > p->fast_until)
			usleep(2000);
	}
	return NULL;
}

static void producer_start(producer *p, sl_source *src, int proc, uint64_t fast_until)
{
	memset(p, 0, sizeof(*p));
	p->src = src;
	p->proc = proc;
	p->fast_until = fast_until;
	assert_int_equal(pthread_create(&p->thread, NULL, producer_main, p), 0);
}

static void producer_stop(producer *p)
{
	atomic_store(&p->stop, 1);
	pthread_join(p->thread, NULL);
}

static void pump(sl_queue *q, checker *ck, int ms)
{
	sl_event ev;
	uint64_t end = now_ms() + (uint64_t)ms;
	while (now_ms() < end)
		if (sl_queue_next(q, &ev, 20) == 1)
			check_event(ck, &ev);
}

static void test_process_outage(void **state)
{
	(void)state;
	static const char *const names[] = {"live"};
	static const unsigned flags[] = {0};
	enum { DOWN = 2 };
	cluster cl;
	producer prod[P];
	cluster_start(&cl, names, flags, 1);
	cluster_go(&cl);
	for (int i = 0; i < P; i++)
		producer_start(&prod[i], cl.src[i][0], i, 0);

	sl_client *c = client_open(cl.addr[0]);
	sl_queue *q;
	sl_sub sub;
	assert_int_equal(sl_queue_open(c, &q), 0);
	for (uint32_t w = 0; w < W; w++)
		assert_int_equal(sl_subscribe(q, 1, sl_source_id(cl.src[0][0]), w, 0, &sub), 0);
	checker ck;
	memset(&ck, 0, sizeof(ck));
	for (uint32_t w = 0; w < W; w++)
		ck.next[w] = 1;
	/* every stream is flowing */
	uint64_t end = now_ms() + WAIT_MS;
	for (;;) {
		int flowing = 0;
		for (uint32_t w = 0; w < W; w++)
			flowing += ck.next[w] > 20;
		if (flowing == W)
			break;
		assert_true(now_ms() < end);
		pump(q, &ck, 20);
	}

	/* process 2 goes away: its workers stall, the others go on */
	producer_stop(&prod[DOWN]);
	uint64_t produced = atomic_load(&prod[DOWN].done);
	sl_storage_close(cl.st[DOWN]);
	cl.st[DOWN] = NULL;
	pump(q, &ck, 300); /* what was in flight */
	uint64_t before[W];
	for (uint32_t w = 0; w < W; w++)
		before[w] = ck.next[w];
	end = now_ms() + WAIT_MS;
	for (;;) {
		int advanced = 0;
		for (uint32_t w = 0; w < W; w++)
			if (w % P != DOWN)
				advanced += ck.next[w] >= before[w] + 50;
		if (advanced == W - W / P)
			break;
		assert_true(now_ms() < end);
		pump(q, &ck, 20);
	}
	for (uint32_t w = DOWN; w < W; w += P) {
		assert_int_equal(ck.next[w], before[w]); /* stalled */
		assert_true(ck.next[w] <= produced + 1);
	}
	/* ListSources needs every process */
	sl_source_info *v;
	size_t n;
	assert_int_equal(sl_client_list_sources(c, WAIT_MS, &v, &n), SL_EDISCONNECTED);

	/* it comes back on the same port, producing the same stream from scratch (what a durable
	 * log would restore): its workers resume exactly where they were */
	proc_open(&cl, DOWN, cl.port[DOWN]);
	proc_setup(&cl, DOWN);
	producer_start(&prod[DOWN], cl.src[DOWN][0], DOWN, produced);
	end = now_ms() + WAIT_MS;
	for (;;) {
		int resumed = 0;
		for (uint32_t w = DOWN; w < W; w += P)
			resumed += ck.next[w] >= produced + 50;
		if (resumed == W / P)
			break;
		assert_true(now_ms() < end);
		pump(q, &ck, 20);
	}
	assert_int_equal(sl_client_list_sources(c, WAIT_MS, &v, &n), 0);
	assert_int_equal(n, 1);
	sl_source_info_free(v, n);
	for (int i = 0; i < P; i++)
		producer_stop(&prod[i]);
	sl_queue_close(q);
	sl_client_close(c);
	cluster_stop(&cl);
}

/* Processes that disagree about the cluster are refused. */
static void test_fingerprint_mismatch(void **state)
{
	(void)state;
	static const char *const names[] = {"s"};
	static const unsigned flags[] = {0};
	cluster cl;
	cluster_start(&cl, names, flags, 1);
	cl.fp[2] = FINGERPRINT + 1;
	cluster_go(&cl);
	sl_client_config cfg;
	sl_client *c = NULL;
	sl_client_config_init(&cfg);
	cfg.server = cl.addr[0];
	assert_int_equal(sl_client_open(&cfg, &c), SL_ECLUSTER);
	assert_non_null(strstr(sl_client_last_error(), "process 2"));
	cluster_stop(&cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_subscribe_all),
		cmocka_unit_test(test_list_sources),
		cmocka_unit_test(test_append_split),
		cmocka_unit_test(test_process_outage),
		cmocka_unit_test(test_fingerprint_mismatch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
