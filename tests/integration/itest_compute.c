/*
 * itest_compute.c - the compute runtime (include/sluice/compute.h) against an in-process
 * storage runtime on 127.0.0.1, port 0.
 *
 * Storage sources are fed from a separate thread; the tests count what arrives on the client
 * side exactly (updates, diffs, sum of row values, frontier) and close everything so the leak
 * checker stays quiet.  Every wait has a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unistd.h>

#include "net/sock.h"
#include "proto/proto.h"
#include "sluice/compute.h"
#include "sluice/storage.h"

#define WAIT_MS 30000 /* the bound on every wait */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- storage fixture ---- */

typedef struct env {
	sl_storage *st;
	char addr[64];
} env;

static int setup(void **state)
{
	env *e = calloc(1, sizeof(*e));
	sl_storage_config cfg;
	sl_storage_config_init(&cfg);
	cfg.listen = "127.0.0.1:0";
	/* test_subscribe_unsubscribe_cycles churns on purpose: lift the Subscribe/Unsubscribe
	 * rate limit (itest_hostile tests the limit itself). */
	cfg.subscribe_rate = 100000000;
	assert_int_equal(sl_storage_open(&cfg, &e->st), 0);
	snprintf(e->addr, sizeof(e->addr), "127.0.0.1:%d", sl_storage_port(e->st));
	assert_int_equal(sl_storage_start(e->st), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	env *e = *state;
	sl_storage_close(e->st);
	free(e);
	return 0;
}

static sl_client *client_retry(env *e, uint32_t retry_for_ms)
{
	sl_client_config cfg;
	sl_client *c = NULL;
	sl_client_config_init(&cfg);
	cfg.server = e->addr;
	cfg.retry_for_ms = retry_for_ms;
	assert_int_equal(sl_client_open(&cfg, &c), 0);
	return c;
}

static sl_client *client(env *e)
{
	sl_client_config cfg;
	sl_client *c = NULL;
	sl_client_config_init(&cfg);
	cfg.server = e->addr;
	assert_int_equal(sl_client_open(&cfg, &c), 0);
	return c;
}

/* ---- feeding a source from a thread ---- */

/* Workers [w0, w1) each get, at every time t = 1..times, `per_time` ok rows whose value is t
 * (decimal, padded with spaces to rowsize bytes), and one err row at times divisible by
 * err_every; then each worker's upper moves to t + 1, and at the end the worker closes. */
typedef struct feed {
	sl_source *src;
	uint32_t w0, w1;
	uint64_t times;
	uint32_t per_time;
	uint32_t err_every;
	uint32_t rowsize;
	pthread_t thread;
} feed;

static void *feed_main(void *arg)
{
	feed *f = arg;
	char *rows = calloc(f->per_time, 64 + f->rowsize);
	sl_update *ups = calloc(f->per_time, sizeof(*ups));
	for (uint64_t t = 1; t <= f->times; t++) {
		for (uint32_t w = f->w0; w < f->w1; w++) {
			for (uint32_t i = 0; i < f->per_time; i++) {
				char *r = rows + (size_t)i * (64 + f->rowsize);
				int n = snprintf(r, 64, "%llu", (unsigned long long)t);
				if ((uint32_t)n < f->rowsize) {
					memset(r + n, ' ', f->rowsize - (uint32_t)n);
					n = (int)f->rowsize;
				}
				ups[i] = (sl_update){{(const uint8_t *)r, (size_t)n}, t, 1};
			}
			if (sl_source_append(f->src, w, SL_OK, ups, f->per_time) != 0)
				abort();
			if (f->err_every && t % f->err_every == 0) {
				sl_update eu = {{(const uint8_t *)"oops", 4}, t, 1};
				if (sl_source_append(f->src, w, SL_ERR, &eu, 1) != 0)
					abort();
			}
			if (sl_source_advance(f->src, w, t + 1) != 0)
				abort();
		}
	}
	for (uint32_t w = f->w0; w < f->w1; w++)
		sl_source_close_worker(f->src, w);
	free(rows);
	free(ups);
	return NULL;
}

static void feed_start(feed *f)
{
	assert_int_equal(pthread_create(&f->thread, NULL, feed_main, f), 0);
}

static void feed_join(feed *f)
{
	pthread_join(f->thread, NULL);
}

/* ---- consuming a queue and counting ---- */

typedef struct subst {
	sl_sub sub;
	int subscribed;
	int error; /* the SubscribeError code, 0 if none */
	uint64_t ok_updates, err_updates;
	int64_t diff_sum;
	uint64_t value_sum; /* sum of ok row values (rows are decimal numbers) */
	uint64_t frontier;
	int closed;
} subst;

typedef struct consumer {
	sl_queue *q;
	subst *s; /* sorted by sub id: subscriptions are added in increasing id order */
	size_t n, cap;
	size_t closed, errors, subscribed;
	int disconnected, disc_code;
} consumer;

static subst *consumer_add(consumer *c, sl_sub sub)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 16;
		c->s = realloc(c->s, c->cap * sizeof(*c->s));
	}
	subst *s = &c->s[c->n++];
	memset(s, 0, sizeof(*s));
	s->sub = sub;
	if (c->n > 1)
		assert_true(c->s[c->n - 2].sub.id < sub.id);
	return s;
}

static subst *consumer_find(consumer *c, sl_sub sub)
{
	size_t lo = 0, hi = c->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c->s[mid].sub.id < sub.id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->n && c->s[lo].sub.id == sub.id ? &c->s[lo] : NULL;
}

/* Takes one event and accounts it.  Returns sl_queue_next's result. */
static int consume_one(consumer *c, int timeout_ms)
{
	sl_event ev;
	int r = sl_queue_next(c->q, &ev, timeout_ms);
	if (r != 1)
		return r;
	if (ev.kind == SL_EV_DISCONNECTED) {
		c->disconnected++;
		c->disc_code = ev.code;
		return 1;
	}
	subst *s = consumer_find(c, ev.sub);
	assert_non_null(s);
	sl_iter it;
	sl_bytes row;
	int64_t diff;
	uint64_t t;
	switch (ev.kind) {
	case SL_EV_SUBSCRIBED:
		assert_false(s->subscribed);
		s->subscribed = 1;
		c->subscribed++;
		break;
	case SL_EV_SUBSCRIBE_ERROR:
		assert_int_not_equal(ev.code, 0);
		assert_non_null(ev.message);
		s->error = ev.code;
		c->errors++;
		break;
	case SL_EV_MESSAGES:
		assert_true(s->subscribed);
		/* a message is never behind the frontier announced before it */
		assert_true(ev.time >= s->frontier);
		sl_iter_init(&it, &ev);
		uint32_t n = 0;
		while (sl_iter_update(&it, &row, &diff)) {
			n++;
			s->diff_sum += diff;
			if (ev.collection == SL_OK) {
				s->ok_updates++;
				char buf[32];
				size_t l = row.len < 31 ? row.len : 31;
				memcpy(buf, row.ptr, l);
				buf[l] = '\0';
				s->value_sum += strtoull(buf, NULL, 10);
			} else {
				s->err_updates++;
			}
		}
		assert_int_equal(n, ev.count);
		break;
	case SL_EV_PROGRESS:
		sl_iter_init(&it, &ev);
		n = 0;
		while (sl_iter_change(&it, &t, &diff))
			n++;
		assert_int_equal(n, ev.count);
		break;
	default:
		fail_msg("unexpected event kind %d", ev.kind);
	}
	if (ev.kind != SL_EV_SUBSCRIBE_ERROR) {
		assert_true(ev.frontier >= s->frontier); /* never goes backwards */
		s->frontier = ev.frontier;
		assert_true(sl_sub_frontier(c->q, ev.sub) == ev.frontier);
		if (ev.frontier == SL_TIME_CLOSED && !s->closed) {
			s->closed = 1;
			c->closed++;
		}
	}
	return 1;
}

/* Consumes until `closed + errors` reaches `want` or the deadline passes. */
static void consume_until_done(consumer *c, size_t want, uint64_t deadline)
{
	while (c->closed + c->errors < want && !c->disconnected) {
		uint64_t now = now_ms();
		if (now >= deadline)
			fail_msg("timed out: %zu closed, %zu errors of %zu", c->closed, c->errors, want);
		consume_one(c, (int)(deadline - now < 200 ? deadline - now : 200));
	}
}

static void consumer_fini(consumer *c)
{
	sl_queue_close(c->q);
	free(c->s);
	memset(c, 0, sizeof(*c));
}

static void check_feed(const subst *s, const feed *f)
{
	uint64_t want_ok = f->times * f->per_time;
	uint64_t want_err = f->err_every ? f->times / f->err_every : 0;
	assert_true(s->subscribed);
	assert_int_equal(s->error, 0);
	assert_int_equal(s->ok_updates, want_ok);
	assert_int_equal(s->err_updates, want_err);
	assert_int_equal(s->diff_sum, (int64_t)(want_ok + want_err));
	assert_int_equal(s->value_sum, f->per_time * f->times * (f->times + 1) / 2);
	assert_true(s->closed);
}

/* ---- tests ---- */

/* Two workers of one source, ok and err rows, on one queue: exact counts and frontiers. */
static void test_stream_exact(void **state)
{
	env *e = *state;
	sl_source *src;
	assert_int_equal(sl_source_register(e->st, "exact", "test", 2, 0, &src), 0);
	sl_client *c = client(e);
	consumer con = {0};
	assert_int_equal(sl_queue_open(c, &con.q), 0);
	for (uint32_t w = 0; w < 2; w++) {
		sl_sub sub;
		assert_int_equal(sl_subscribe(con.q, 7, sl_source_id(src), w, 0, &sub), 0);
		consumer_add(&con, sub);
	}
	feed f = {.src = src, .w0 = 0, .w1 = 2, .times = 300, .per_time = 10, .err_every = 7};
	feed_start(&f);
	consume_until_done(&con, 2, now_ms() + WAIT_MS);
	feed_join(&f);
	for (size_t i = 0; i < con.n; i++) {
		check_feed(&con.s[i], &f);
		assert_true(sl_sub_frontier(con.q, con.s[i].sub) == SL_TIME_CLOSED);
	}
	/* nothing more arrives for closed subscriptions */
	assert_int_equal(consume_one(&con, 50), 0);
	assert_int_equal(sl_unsubscribe(con.q, con.s[0].sub), 0);
	assert_int_equal(sl_unsubscribe(con.q, con.s[0].sub), SL_ENOTSUB);
	assert_int_equal(sl_sub_frontier(con.q, con.s[0].sub), 0);
	consumer_fini(&con);
	sl_client_close(c);
}

/* A subscription starting `from` a time sees only updates at or after it. */
static void test_subscribe_from(void **state)
{
	env *e = *state;
	sl_source *src;
	assert_int_equal(sl_source_register(e->st, "from", "test", 1, 0, &src), 0);
	feed f = {.src = src, .w0 = 0, .w1 = 1, .times = 100, .per_time = 3};
	feed_start(&f);
	feed_join(&f);
	sl_client *c = client(e);
	consumer con = {0};
	assert_int_equal(sl_queue_open(c, &con.q), 0);
	sl_sub sub;
	assert_int_equal(sl_subscribe(con.q, 1, sl_source_id(src), 0, 51, &sub), 0);
	consumer_add(&con, sub);
	consume_until_done(&con, 1, now_ms() + WAIT_MS);
	assert_int_equal(con.s[0].ok_updates, 50 * 3);
	assert_int_equal(con.s[0].value_sum, 3 * (51 + 100) * 50 / 2);
	consumer_fini(&con);
	sl_client_close(c);
}

static void test_subscribe_errors(void **state)
{
	env *e = *state;
	sl_source *src;
	assert_int_equal(sl_source_register(e->st, "errs", "test", 2, 0, &src), 0);
	sl_client *c = client(e);
	consumer con = {0};
	sl_sub sub;
	assert_int_equal(sl_queue_open(c, &con.q), 0);
	assert_int_equal(sl_subscribe(con.q, 1, 999999, 0, 0, &sub), 0); /* unknown source */
	consumer_add(&con, sub);
	assert_int_equal(sl_subscribe(con.q, 1, sl_source_id(src), 2, 0, &sub), 0); /* no worker 2 */
	consumer_add(&con, sub);
	assert_int_equal(sl_subscribe(con.q, 1, sl_source_id(src), 1, 0, &sub), 0);
	consumer_add(&con, sub);
	assert_int_equal(sl_subscribe(con.q, 1, sl_source_id(src), 1, 0, &sub), SL_EDUPLICATE);
	uint64_t deadline = now_ms() + WAIT_MS;
	while (con.errors < 2 || con.subscribed < 1) {
		assert_true(now_ms() < deadline);
		consume_one(&con, 100);
	}
	assert_int_equal(con.s[0].error, SL_ENOSOURCE);
	assert_int_equal(con.s[1].error, SL_ENOWORKER);
	assert_int_equal(con.s[2].error, 0);
	/* a refused subscription has ended */
	assert_int_equal(sl_unsubscribe(con.q, con.s[0].sub), SL_ENOTSUB);
	assert_int_equal(sl_sub_frontier(con.q, con.s[0].sub), 0);
	/* and its triple is free again */
	assert_int_equal(sl_subscribe(con.q, 1, sl_source_id(src), 2, 0, &sub), 0);
	assert_int_equal(sl_unsubscribe(con.q, sub), 0);
	consumer_fini(&con);
	sl_client_close(c);
}

/* 1,000 workers of one source, one subscription each, all on one connection and one queue. */
static void test_thousand_subscriptions(void **state)
{
	env *e = *state;
	const uint32_t W = 1000;
	sl_source *src;
	assert_int_equal(sl_source_register(e->st, "wide", "test", W, 0, &src), 0);
	sl_client *c = client(e);
	consumer con = {0};
	assert_int_equal(sl_queue_open(c, &con.q), 0);
	for (uint32_t w = 0; w < W; w++) {
		sl_sub sub;
		assert_int_equal(sl_subscribe(con.q, 3, sl_source_id(src), w, 0, &sub), 0);
		consumer_add(&con, sub);
	}
	feed f = {.src = src, .w0 = 0, .w1 = W, .times = 20, .per_time = 5, .err_every = 10};
	feed_start(&f);
	consume_until_done(&con, W, now_ms() + 4 * WAIT_MS);
	feed_join(&f);
	for (size_t i = 0; i < con.n; i++)
		check_feed(&con.s[i], &f);
	consumer_fini(&con);
	sl_client_close(c);
}

/* Two clients subscribed to the same worker (same dataflow id, even) both get everything. */
static void test_two_clients_same_worker(void **state)
{
	env *e = *state;
	sl_source *src;
	assert_int_equal(sl_source_register(e->st, "shared", "test", 1, 0, &src), 0);
	sl_client *c[2];
	consumer con[2] = {{0}};
	for (int i = 0; i < 2; i++) {
		sl_sub sub;
		c[i] = client(e);
		assert_int_equal(sl_queue_open(c[i], &con[i].q), 0);
		assert_int_equal(sl_subscribe(con[i].q, 5, sl_source_id(src), 0, 0, &sub), 0);
		consumer_add(&con[i], sub);
	}
	feed f = {.src = src, .w0 = 0, .w1 = 1, .times = 500, .per_time = 20, .err_every = 50};
	feed_start(&f);
	uint64_t deadline = now_ms() + WAIT_MS;
	while (con[0].closed + con[1].closed < 2) {
		assert_true(now_ms() < deadline);
		for (int i = 0; i < 2; i++)
			while (consume_one(&con[i], 0) == 1)
				;
		struct pollfd p[2] = {{.fd = sl_queue_fd(con[0].q), .events = POLLIN},
		                      {.fd = sl_queue_fd(con[1].q), .events = POLLIN}};
		poll(p, 2, 100);
	}
	feed_join(&f);
	for (int i = 0; i < 2; i++) {
		check_feed(&con[i].s[0], &f);
		consumer_fini(&con[i]);
		sl_client_close(c[i]);
	}
}

/* A queue nobody reads does not hold back another queue's subscription on the same client. */
static void test_stalled_queue_isolated(void **state)
{
	env *e = *state;
	sl_source *src;
	assert_int_equal(sl_source_register(e->st, "stall", "test", 2, 0, &src), 0);
	sl_client *c = client(e);
	consumer stalled = {0}, live = {0};
	sl_sub sub;
	assert_int_equal(sl_queue_open(c, &stalled.q), 0);
	assert_int_equal(sl_queue_open(c, &live.q), 0);
	assert_int_equal(sl_subscribe(stalled.q, 1, sl_source_id(src), 0, 0, &sub), 0);
	consumer_add(&stalled, sub);
	assert_int_equal(sl_subscribe(live.q, 1, sl_source_id(src), 1, 0, &sub), 0);
	consumer_add(&live, sub);
	/* ~4 MB per worker: many credit windows */
	feed f = {.src = src, .w0 = 0, .w1 = 2, .times = 400, .per_time = 100, .rowsize = 100};
	feed_start(&f);
	consume_until_done(&live, 1, now_ms() + WAIT_MS);
	check_feed(&live.s[0], &f);
	feed_join(&f);
	/* the stalled one got at most its window, and still gets everything once read */
	consume_until_done(&stalled, 1, now_ms() + WAIT_MS);
	check_feed(&stalled.s[0], &f);
	consumer_fini(&stalled);
	consumer_fini(&live);
	sl_client_close(c);
}

static void test_list_sources(void **state)
{
	env *e = *state;
	sl_source *a, *b;
	assert_int_equal(sl_source_register(e->st, "alpha", "counter", 3, 0, &a), 0);
	assert_int_equal(sl_source_register(e->st, "beta", "ingest", 1, SL_SOURCE_INGEST, &b), 0);
	assert_int_equal(sl_source_advance(a, 0, 10), 0);
	assert_int_equal(sl_source_advance(a, 1, 5), 0);
	assert_int_equal(sl_source_close_worker(a, 2), 0);
	sl_client *c = client(e);
	sl_source_info *v = NULL;
	size_t n = 0;
	assert_int_equal(sl_client_list_sources(c, WAIT_MS, &v, &n), 0);
	assert_int_equal(n, 2);
	int seen = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i].name, "alpha") == 0) {
			seen |= 1;
			assert_int_equal(v[i].id, sl_source_id(a));
			assert_string_equal(v[i].kind, "counter");
			assert_int_equal(v[i].workers, 3);
			assert_int_equal(v[i].uppers[0], 10);
			assert_int_equal(v[i].uppers[1], 5);
			assert_true(v[i].uppers[2] == SL_TIME_CLOSED);
			assert_int_equal(v[i].upper, 5);
		} else if (strcmp(v[i].name, "beta") == 0) {
			seen |= 2;
			assert_int_equal(v[i].workers, 1);
			assert_int_equal(v[i].upper, 0);
		}
	}
	assert_int_equal(seen, 3);
	sl_source_info_free(v, n);
	/* and again, from the same thread: requests are serialised, not one-shot */
	assert_int_equal(sl_client_list_sources(c, WAIT_MS, &v, &n), 0);
	assert_int_equal(n, 2);
	sl_source_info_free(v, n);
	sl_client_close(c);
}

/* Append to an ingest source (one batch bigger than one Append frame) and read it back. */
static void test_append_ingest(void **state)
{
	env *e = *state;
	const uint32_t W = 3;
	const size_t N = 5000, ROW = 600; /* ~3 MB: several Append frames */
	sl_source *src, *plain;
	assert_int_equal(sl_source_register(e->st, "in", "ingest", W, SL_SOURCE_INGEST, &src), 0);
	assert_int_equal(sl_source_register(e->st, "plain", "test", 1, 0, &plain), 0);
	sl_client *c = client(e);
	char *rows = malloc(N * ROW);
	sl_update *ups = calloc(N, sizeof(*ups));
	for (size_t i = 0; i < N; i++) {
		char *r = rows + i * ROW;
		int n = snprintf(r, ROW, "%zu", i + 1);
		memset(r + n, 'x', ROW - (size_t)n);
		ups[i] = (sl_update){{(const uint8_t *)r, ROW}, 0, 1};
	}
	uint64_t t1 = 0, t2 = 0;
	assert_int_equal(sl_client_append(c, sl_source_id(src), ups, N, WAIT_MS, &t1), 0);
	assert_int_equal(sl_client_append(c, sl_source_id(src), ups, 10, WAIT_MS, &t2), 0);
	assert_true(t2 > t1);
	uint64_t t;
	assert_int_equal(sl_client_append(c, 424242, ups, 1, WAIT_MS, &t), SL_ENOSOURCE);
	assert_true(strlen(sl_client_last_error()) > 0);
	assert_int_equal(sl_client_append(c, sl_source_id(plain), ups, 1, WAIT_MS, &t), SL_EKIND);
	sl_update big = {{(const uint8_t *)rows, SL_ROW_MAX + 1}, 0, 1};
	char *bigrow = calloc(1, SL_ROW_MAX + 1);
	big.row.ptr = (const uint8_t *)bigrow;
	assert_int_equal(sl_client_append(c, sl_source_id(src), &big, 1, WAIT_MS, &t), SL_ETOOBIG);
	free(bigrow);

	/* read back everything at times <= t2 from every worker */
	consumer con = {0};
	assert_int_equal(sl_queue_open(c, &con.q), 0);
	for (uint32_t w = 0; w < W; w++) {
		sl_sub sub;
		assert_int_equal(sl_subscribe(con.q, 9, sl_source_id(src), w, 0, &sub), 0);
		consumer_add(&con, sub);
	}
	uint64_t deadline = now_ms() + WAIT_MS;
	for (;;) {
		uint64_t minf = SL_TIME_CLOSED;
		for (size_t i = 0; i < con.n; i++)
			if (con.s[i].frontier < minf)
				minf = con.s[i].frontier;
		if (minf > t2)
			break;
		assert_true(now_ms() < deadline);
		consume_one(&con, 100);
	}
	uint64_t total = 0, vsum = 0;
	for (size_t i = 0; i < con.n; i++) {
		total += con.s[i].ok_updates;
		vsum += con.s[i].value_sum;
	}
	assert_int_equal(total, N + 10);
	assert_int_equal(vsum, N * (N + 1) / 2 + 10 * 11 / 2);
	consumer_fini(&con);
	free(rows);
	free(ups);
	sl_client_close(c);
}

/* 100,000 subscribe/unsubscribe cycles on one connection, then the server still serves. */
static void test_subscribe_unsubscribe_cycles(void **state)
{
	env *e = *state;
	const uint32_t CYCLES = 100000;
	sl_source *src;
	assert_int_equal(sl_source_register(e->st, "churn", "test", 4, 0, &src), 0);
	feed f = {.src = src, .w0 = 0, .w1 = 4, .times = 5, .per_time = 2};
	feed_start(&f);
	feed_join(&f);
	sl_client *c = client(e);
	consumer con = {0};
	sl_event ev;
	assert_int_equal(sl_queue_open(c, &con.q), 0);
	uint64_t deadline = now_ms() + 10 * WAIT_MS;
	for (uint32_t i = 0; i < CYCLES; i++) {
		sl_sub sub;
		/* the same triple every fourth cycle: it is free as soon as it is unsubscribed */
		assert_int_equal(sl_subscribe(con.q, i % 8, sl_source_id(src), i % 4, 0, &sub), 0);
		if (i % 2 == 0) /* half of them see some events first */
			sl_queue_next(con.q, &ev, 0);
		assert_int_equal(sl_unsubscribe(con.q, sub), 0);
		/* nothing of an unsubscribed subscription is returned */
		while (sl_queue_next(con.q, &ev, 0) == 1)
			fail_msg("event of kind %d after unsubscribe", ev.kind);
		if (i % 1000 == 0)
			assert_true(now_ms() < deadline);
	}
	/* still serving: a fresh subscription gets the complete stream */
	sl_sub sub;
	assert_int_equal(sl_subscribe(con.q, 100, sl_source_id(src), 2, 0, &sub), 0);
	consumer_add(&con, sub);
	consume_until_done(&con, 1, now_ms() + WAIT_MS);
	check_feed(&con.s[0], &f);
	sl_source_info *v;
	size_t n;
	assert_int_equal(sl_client_list_sources(c, WAIT_MS, &v, &n), 0);
	sl_source_info_free(v, n);
	consumer_fini(&con);
	sl_client_close(c);
}

/* Losing storage ends every subscription with one Disconnected per queue. */
static void test_disconnect(void **state)
{
	env *e = *state;
	sl_source *src;
	assert_int_equal(sl_source_register(e->st, "gone", "test", 2, 0, &src), 0);
	sl_client *c = client_retry(e, 0); /* no reconnects: Disconnected at once */
	consumer con[2] = {{0}};
	for (int i = 0; i < 2; i++) {
		sl_sub sub;
		assert_int_equal(sl_queue_open(c, &con[i].q), 0);
		for (uint32_t w = 0; w < 2; w++) {
			assert_int_equal(sl_subscribe(con[i].q, (uint64_t)i, sl_source_id(src), w, 0, &sub), 0);
			consumer_add(&con[i], sub);
		}
	}
	uint64_t deadline = now_ms() + WAIT_MS;
	while (con[0].subscribed + con[1].subscribed < 4) {
		assert_true(now_ms() < deadline);
		consume_one(&con[0], 20);
		consume_one(&con[1], 20);
	}
	uint64_t src_id = sl_source_id(src);
	sl_storage_close(e->st);
	e->st = NULL;
	for (int i = 0; i < 2; i++) {
		while (!con[i].disconnected) {
			assert_true(now_ms() < deadline);
			consume_one(&con[i], 100);
		}
		assert_int_equal(con[i].disconnected, 1);
		assert_int_not_equal(con[i].disc_code, 0);
		/* every subscription has ended */
		for (size_t k = 0; k < con[i].n; k++)
			assert_int_equal(sl_unsubscribe(con[i].q, con[i].s[k].sub), SL_ENOTSUB);
		assert_int_equal(consume_one(&con[i], 50), 0);
	}
	sl_sub sub;
	assert_int_equal(sl_subscribe(con[0].q, 99, src_id, 0, 0, &sub), SL_EDISCONNECTED);
	sl_source_info *v;
	size_t n;
	assert_int_equal(sl_client_list_sources(c, WAIT_MS, &v, &n), SL_EDISCONNECTED);
	consumer_fini(&con[0]);
	consumer_fini(&con[1]);
	sl_client_close(c);
}

/* With short heartbeats on both sides, an idle connection stays up: each side's Pings are
 * answered.  Waits a fixed 1.5 s (30 heartbeats) for the absence of a disconnect. */
static void test_heartbeats_keep_alive(void **state)
{
	env *e = *state;
	sl_storage_close(e->st);
	sl_storage_config scfg;
	sl_storage_config_init(&scfg);
	scfg.listen = "127.0.0.1:0";
	scfg.heartbeat_ms = 50;
	scfg.idle_timeout_ms = 300;
	assert_int_equal(sl_storage_open(&scfg, &e->st), 0);
	snprintf(e->addr, sizeof(e->addr), "127.0.0.1:%d", sl_storage_port(e->st));
	assert_int_equal(sl_storage_start(e->st), 0);
	sl_source *src;
	assert_int_equal(sl_source_register(e->st, "quiet", "test", 1, 0, &src), 0);

	sl_client_config cfg;
	sl_client *c;
	sl_client_config_init(&cfg);
	cfg.server = e->addr;
	cfg.heartbeat_ms = 50;
	cfg.idle_timeout_ms = 300;
	assert_int_equal(sl_client_open(&cfg, &c), 0);
	consumer con = {0};
	sl_sub sub;
	assert_int_equal(sl_queue_open(c, &con.q), 0);
	assert_int_equal(sl_subscribe(con.q, 1, sl_source_id(src), 0, 0, &sub), 0);
	consumer_add(&con, sub);
	uint64_t end = now_ms() + 1500;
	while (now_ms() < end)
		consume_one(&con, 50);
	assert_int_equal(con.disconnected, 0);
	assert_true(con.s[0].subscribed);
	/* and it still works */
	feed f = {.src = src, .w0 = 0, .w1 = 1, .times = 10, .per_time = 1};
	feed_start(&f);
	consume_until_done(&con, 1, now_ms() + WAIT_MS);
	feed_join(&f);
	check_feed(&con.s[0], &f);
	consumer_fini(&con);
	sl_client_close(c);
}

/* A fake server: answers Hello (with `version`), then reads and discards, never answering. */
typedef struct fake {
	int lfd, port;
	uint16_t version;
	int stop;
	pthread_t thread;
} fake;

static void *fake_main(void *arg)
{
	fake *fk = arg;
	struct pollfd p = {.fd = fk->lfd, .events = POLLIN};
	if (poll(&p, 1, WAIT_MS) != 1)
		return NULL;
	int fd = accept(fk->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	sli_buf b;
	sli_buf_init(&b);
	sli_frame f = {.type = SLI_HELLO};
	f.u.hello = (sli_hello){.magic = SLI_MAGIC, .version = fk->version, .session = 1,
	                        .name = {(const uint8_t *)"fake", 4}};
	sli_frame_encode(&b, &f);
	ssize_t w = write(fd, b.ptr, b.len);
	(void)w;
	sli_buf_fini(&b);
	uint64_t end = now_ms() + WAIT_MS;
	while (!__atomic_load_n(&fk->stop, __ATOMIC_ACQUIRE) && now_ms() < end) {
		char buf[4096];
		struct pollfd q = {.fd = fd, .events = POLLIN};
		if (poll(&q, 1, 20) == 1 && read(fd, buf, sizeof(buf)) <= 0)
			break;
	}
	close(fd);
	return NULL;
}

static void fake_start(fake *fk, uint16_t version)
{
	memset(fk, 0, sizeof(*fk));
	fk->version = version;
	fk->lfd = sli_listen_tcp("127.0.0.1:0", &fk->port);
	assert_true(fk->lfd >= 0);
	assert_int_equal(pthread_create(&fk->thread, NULL, fake_main, fk), 0);
}

static void fake_stop(fake *fk)
{
	__atomic_store_n(&fk->stop, 1, __ATOMIC_RELEASE);
	pthread_join(fk->thread, NULL);
	close(fk->lfd);
}

/* A server that goes silent is declared dead after idle_timeout_ms. */
static void test_idle_timeout(void **state)
{
	(void)state;
	fake fk;
	char addr[64];
	fake_start(&fk, SLI_PROTO_VERSION);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", fk.port);
	sl_client_config cfg;
	sl_client *c;
	sl_client_config_init(&cfg);
	cfg.server = addr;
	cfg.heartbeat_ms = 50;
	cfg.idle_timeout_ms = 300;
	cfg.retry_for_ms = 0; /* no reconnects: Disconnected at once */
	assert_int_equal(sl_client_open(&cfg, &c), 0);
	consumer con = {0};
	sl_sub sub;
	assert_int_equal(sl_queue_open(c, &con.q), 0);
	assert_int_equal(sl_subscribe(con.q, 1, 1, 0, 0, &sub), 0);
	consumer_add(&con, sub);
	uint64_t start = now_ms(), deadline = start + WAIT_MS;
	while (!con.disconnected) {
		assert_true(now_ms() < deadline);
		consume_one(&con, 100);
	}
	assert_int_equal(con.disc_code, SL_EIDLE);
	assert_true(now_ms() - start >= 250);
	consumer_fini(&con);
	sl_client_close(c);
	fake_stop(&fk);
}

static void test_version_mismatch(void **state)
{
	(void)state;
	fake fk;
	char addr[64];
	fake_start(&fk, SLI_PROTO_VERSION + 1);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", fk.port);
	sl_client_config cfg;
	sl_client *c = NULL;
	sl_client_config_init(&cfg);
	cfg.server = addr;
	assert_int_equal(sl_client_open(&cfg, &c), SL_EVERSION);
	assert_null(c);
	fake_stop(&fk);
}

static void test_connect_refused(void **state)
{
	(void)state;
	sl_client_config cfg;
	sl_client *c = NULL;
	sl_client_config_init(&cfg);
	cfg.server = "127.0.0.1:1";
	assert_int_equal(sl_client_open(&cfg, &c), -ECONNREFUSED);
	assert_null(c);
	sl_client_close(NULL);
	sl_queue_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stream_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscribe_from, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscribe_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thousand_subscriptions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_clients_same_worker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stalled_queue_isolated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_ingest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscribe_unsubscribe_cycles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_heartbeats_keep_alive, setup, teardown),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_version_mismatch),
		cmocka_unit_test(test_connect_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
