/*
 * itest_reconnect.c - the compute runtime's reconnects (compute.h, "Reconnects") against
 * in-process storage runtimes on 127.0.0.1 that are closed and opened again on the same port.
 *
 * A producer thread feeds a source a deterministic stream: at each time k, every worker gets
 * per_time(k) ok rows "w:k:i" (in two appends, the worker's upper advancing only after the
 * second) and, at every 7th time, one err row.  A restarted storage gets a new producer that
 * appends the same stream from scratch, which is what a durable log restores.  The consumer
 * counts every (row, time, diff) and checks that each arrives exactly once, in time order per
 * subscription and collection, with frontiers that never go backwards, and that the stream ends
 * closed.  Every wait has a deadline; everything is closed so the leak checker stays quiet.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net/sock.h"
#include "proto/proto.h"
#include "sluice/compute.h"
#include "sluice/storage.h"

#define WAIT_MS 60000 /* the bound on every wait */
#define WORKERS 2
#define TIMES 150      /* times 1..TIMES, then every worker closes */
#define BIG_TIME 70    /* a time with far more updates than the credit window */
#define BIG_N 8000
#define ROW_LEN 40
#define BIG_ROW_LEN 100
#define LEAD 4 /* the producer runs at most this many times ahead of the consumer */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint32_t per_time(uint64_t k)
{
	return k == BIG_TIME ? BIG_N : 2 + (uint32_t)(k % 4);
}

/* ---- the producer ---- */

typedef struct producer {
	sl_source *src;
	atomic_uint_fast64_t *limit; /* produce times up to this one (shared across restarts) */
	atomic_int stop;
	pthread_t thread;
} producer;

static int make_row(char *buf, uint32_t w, uint64_t k, uint32_t i)
{
	int pad = k == BIG_TIME ? BIG_ROW_LEN : ROW_LEN;
	int n = snprintf(buf, 64, "%" PRIu32 ":%" PRIu64 ":%" PRIu32, w, k, i);
	memset(buf + n, '.', (size_t)(pad - n));
	return pad;
}

static void *producer_main(void *arg)
{
	producer *p = arg;
	char *rows = malloc((size_t)BIG_N * 128);
	sl_update *ups = calloc(BIG_N, sizeof(*ups));
	for (uint64_t k = 1; k <= TIMES; k++) {
		while (atomic_load(p->limit) < k) {
			if (atomic_load(&p->stop))
				goto out;
			usleep(500);
		}
		if (atomic_load(&p->stop))
			goto out;
		for (uint32_t w = 0; w < WORKERS; w++) {
			uint32_t n = per_time(k), half = n / 2;
			for (uint32_t i = 0; i < n; i++) {
				char *r = rows + (size_t)i * 128;
				int len = make_row(r, w, k, i);
				ups[i] = (sl_update){{(const uint8_t *)r, (size_t)len}, k, 1};
			}
			/* one time in two appends: the upper moves only after the second */
			if (sl_source_append(p->src, w, SL_OK, ups, half) != 0 ||
			    sl_source_append(p->src, w, SL_OK, ups + half, n - half) != 0)
				abort();
			if (k % 7 == 0) {
				char e[32];
				int len = snprintf(e, sizeof(e), "e:%" PRIu32 ":%" PRIu64, w, k);
				sl_update eu = {{(const uint8_t *)e, (size_t)len}, k, 1};
				if (sl_source_append(p->src, w, SL_ERR, &eu, 1) != 0)
					abort();
			}
			if (sl_source_advance(p->src, w, k + 1) != 0)
				abort();
		}
	}
	for (uint32_t w = 0; w < WORKERS; w++)
		sl_source_close_worker(p->src, w);
out:
	free(rows);
	free(ups);
	return NULL;
}

/* ---- a storage that can be restarted on its port ---- */

typedef struct env {
	sl_storage *st;
	int port;
	char addr[64];
	uint64_t src_id;
	producer prod;
	int producing;
	atomic_uint_fast64_t limit;
} env;

/* Opens storage on e->port (0 = pick one), registers the source and starts the network
 * thread; with `produce`, starts a producer that replays the stream from time 1. */
static void storage_up(env *e, int produce)
{
	sl_storage_config cfg;
	char listen[64];
	sl_storage_config_init(&cfg);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", e->port);
	cfg.listen = listen;
	uint64_t deadline = now_ms() + 5000;
	int rc;
	while ((rc = sl_storage_open(&cfg, &e->st)) == -EADDRINUSE && now_ms() < deadline)
		usleep(10000);
	assert_int_equal(rc, 0);
	if (e->port == 0) {
		e->port = sl_storage_port(e->st);
		snprintf(e->addr, sizeof(e->addr), "127.0.0.1:%d", e->port);
	}
	assert_int_equal(sl_storage_port(e->st), e->port);
	sl_source *src;
	assert_int_equal(sl_source_register(e->st, "stream", "test", WORKERS, 0, &src), 0);
	e->src_id = sl_source_id(src);
	assert_int_equal(sl_storage_start(e->st), 0);
	if (produce) {
		memset(&e->prod, 0, sizeof(e->prod));
		e->prod.src = src;
		e->prod.limit = &e->limit;
		atomic_init(&e->prod.stop, 0);
		assert_int_equal(pthread_create(&e->prod.thread, NULL, producer_main, &e->prod), 0);
		e->producing = 1;
	}
}

static void storage_down(env *e)
{
	if (e->producing) {
		atomic_store(&e->prod.stop, 1);
		pthread_join(e->prod.thread, NULL);
		e->producing = 0;
	}
	sl_storage_close(e->st);
	e->st = NULL;
}

static int setup(void **state)
{
	env *e = calloc(1, sizeof(*e));
	atomic_init(&e->limit, LEAD);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	env *e = *state;
	if (e->st)
		storage_down(e);
	free(e);
	return 0;
}

static sl_client *client(env *e, uint32_t retry_for_ms)
{
	sl_client_config cfg;
	sl_client *c = NULL;
	sl_client_config_init(&cfg);
	cfg.server = e->addr;
	cfg.window = 128u << 10; /* the minimum: a big time cannot arrive in one go */
	cfg.retry_for_ms = retry_for_ms;
	assert_int_equal(sl_client_open(&cfg, &c), 0);
	return c;
}

/* ---- the consumer ---- */

typedef struct sstate {
	sl_sub sub;
	uint32_t worker;
	int subscribed, ended;
	uint64_t frontier;
	uint64_t last_time[2]; /* per collection */
	uint64_t events_after_end;
} sstate;

typedef struct consumer {
	sl_queue *q;
	sstate s[8];
	size_t n;
	uint8_t *ok[WORKERS][TIMES + 1]; /* per (worker, time): a count per row index */
	uint8_t err[WORKERS][TIMES + 1];
	uint64_t ok_total, err_total;
	int reconnected, disconnected, disc_code;
	uint64_t last_session;
	int took_big; /* a MESSAGES at BIG_TIME was just taken */
} consumer;

static void consumer_init(consumer *c, sl_client *cl)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(sl_queue_open(cl, &c->q), 0);
	for (uint32_t w = 0; w < WORKERS; w++)
		for (uint64_t k = 1; k <= TIMES; k++)
			c->ok[w][k] = calloc(per_time(k), 1);
}

static void consumer_fini(consumer *c)
{
	sl_queue_close(c->q);
	for (uint32_t w = 0; w < WORKERS; w++)
		for (uint64_t k = 1; k <= TIMES; k++)
			free(c->ok[w][k]);
}

static sstate *subscribe(consumer *c, uint64_t src, uint32_t w)
{
	sstate *s = &c->s[c->n++];
	memset(s, 0, sizeof(*s));
	s->worker = w;
	assert_int_equal(sl_subscribe(c->q, 1, src, w, 0, &s->sub), 0);
	return s;
}

static sstate *find(consumer *c, sl_sub sub)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->s[i].sub.id == sub.id)
			return &c->s[i];
	return NULL;
}

/* Takes one event and checks it.  Returns sl_queue_next's result. */
static int consume_one(consumer *c, int timeout_ms)
{
	sl_event ev;
	sl_iter it;
	sl_bytes row;
	int64_t diff;
	int r = sl_queue_next(c->q, &ev, timeout_ms);
	if (r != 1)
		return r;
	c->took_big = 0;
	if (ev.kind == SL_EV_RECONNECTED) {
		assert_int_equal(ev.sub.id, 0);
		assert_int_not_equal(ev.session, c->last_session); /* a restarted process */
		c->last_session = ev.session;
		c->reconnected++;
		return 1;
	}
	if (ev.kind == SL_EV_DISCONNECTED) {
		c->disconnected++;
		c->disc_code = ev.code;
		return 1;
	}
	sstate *s = find(c, ev.sub);
	assert_non_null(s);
	assert_false(s->ended);
	switch (ev.kind) {
	case SL_EV_SUBSCRIBED:
		assert_false(s->subscribed); /* once, not again on a reconnect */
		s->subscribed = 1;
		break;
	case SL_EV_MESSAGES: {
		assert_true(s->subscribed);
		assert_true(ev.time >= s->frontier);
		assert_true(ev.time >= s->last_time[ev.collection]);
		assert_true(ev.time >= 1 && ev.time <= TIMES);
		s->last_time[ev.collection] = ev.time;
		uint32_t n = 0;
		sl_iter_init(&it, &ev);
		while (sl_iter_update(&it, &row, &diff)) {
			char buf[64];
			size_t l = row.len < 63 ? row.len : 63;
			unsigned w, i;
			unsigned long long k;
			memcpy(buf, row.ptr, l);
			buf[l] = '\0';
			n++;
			assert_int_equal(diff, 1);
			if (ev.collection == SL_OK) {
				assert_int_equal(sscanf(buf, "%u:%llu:%u", &w, &k, &i), 3);
				assert_int_equal(w, s->worker);
				assert_int_equal(k, ev.time);
				assert_true(i < per_time(k));
				if (c->ok[w][k][i]++ != 0)
					fail_msg("duplicate ok row %s at time %llu", buf, k);
				c->ok_total++;
			} else {
				assert_int_equal(sscanf(buf, "e:%u:%llu", &w, &k), 2);
				assert_int_equal(w, s->worker);
				assert_int_equal(k, ev.time);
				if (c->err[w][k]++ != 0)
					fail_msg("duplicate err row %s", buf);
				c->err_total++;
			}
		}
		assert_int_equal(n, ev.count);
		if (ev.time == BIG_TIME && ev.collection == SL_OK)
			c->took_big = 1;
		break;
	}
	case SL_EV_PROGRESS: {
		uint64_t t;
		uint32_t n = 0;
		sl_iter_init(&it, &ev);
		while (sl_iter_change(&it, &t, &diff))
			n++;
		assert_int_equal(n, ev.count);
		assert_true(n > 0); /* a change the worker must not see is dropped, not emptied */
		break;
	}
	case SL_EV_SUBSCRIBE_ERROR:
		fail_msg("subscribe error %d: %s", ev.code, ev.message);
		break;
	default:
		fail_msg("unexpected event kind %d", ev.kind);
	}
	assert_true(ev.frontier >= s->frontier); /* never backwards, reconnects included */
	s->frontier = ev.frontier;
	assert_int_equal(sl_sub_frontier(c->q, ev.sub), ev.frontier);
	return 1;
}

static uint64_t min_frontier(const consumer *c)
{
	uint64_t m = SL_TIME_CLOSED;
	for (size_t i = 0; i < c->n; i++)
		if (!c->s[i].ended && c->s[i].frontier < m)
			m = c->s[i].frontier;
	return m;
}

/* Every row of workers with a live subscription arrived exactly once. */
static void check_complete(const consumer *c, uint32_t w)
{
	for (uint64_t k = 1; k <= TIMES; k++) {
		for (uint32_t i = 0; i < per_time(k); i++)
			if (c->ok[w][k][i] != 1)
				fail_msg("ok row %u:%llu:%u arrived %u times", w, (unsigned long long)k, i,
				         c->ok[w][k][i]);
		if (c->err[w][k] != (k % 7 == 0))
			fail_msg("err row of %u at %llu arrived %u times", w, (unsigned long long)k,
			         c->err[w][k]);
	}
}

/* Consumes until every live subscription is closed, raising the producer's limit as the
 * consumer's frontier advances and restarting storage at each of the kill points (a frontier,
 * or 0: after the first MESSAGES of BIG_TIME is taken, which lands inside that time). */
static void run_with_kills(env *e, consumer *c, const uint64_t *kills, int nkills)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	int next = 0;
	while (min_frontier(c) != SL_TIME_CLOSED) {
		assert_true(now_ms() < deadline);
		assert_int_equal(c->disconnected, 0);
		consume_one(c, 20);
		uint64_t f = min_frontier(c);
		int big_pending = next < nkills && kills[next] == 0;
		uint64_t lim = f == SL_TIME_CLOSED ? TIMES : f + LEAD;
		if (big_pending && lim > BIG_TIME)
			lim = BIG_TIME; /* BIG_TIME is the last time storage has when the kill lands */
		if (lim > atomic_load(&e->limit))
			atomic_store(&e->limit, lim);
		if (next < nkills && ((big_pending && c->took_big) || (!big_pending && f >= kills[next] &&
		                                                          f != SL_TIME_CLOSED))) {
			storage_down(e);
			storage_up(e, 1);
			next++;
		}
	}
	assert_int_equal(next, nkills);
}

/* ---- tests ---- */

/* Five restarts in one run, one of them inside a time: every update exactly once. */
static void test_restarts_exactly_once(void **state)
{
	env *e = *state;
	static const uint64_t kills[] = {20, 45, 0, 95, 120};
	const int nkills = (int)(sizeof(kills) / sizeof(kills[0]));
	storage_up(e, 1);
	sl_client *cl = client(e, 20000);
	consumer c;
	consumer_init(&c, cl);
	uint64_t first_session;
	assert_int_equal(sl_client_server(cl, &first_session, NULL, NULL), 0);
	c.last_session = first_session;
	for (uint32_t w = 0; w < WORKERS; w++)
		subscribe(&c, e->src_id, w);
	run_with_kills(e, &c, kills, nkills);
	for (uint32_t w = 0; w < WORKERS; w++)
		check_complete(&c, w);
	assert_int_equal(c.reconnected, nkills);
	uint64_t session, reconnects;
	assert_int_equal(sl_client_server(cl, &session, NULL, &reconnects), 0);
	assert_int_equal(reconnects, nkills);
	assert_int_not_equal(session, first_session);
	assert_int_equal(session, c.last_session);
	/* the client still works on its last connection */
	sl_source_info *v;
	size_t n;
	assert_int_equal(sl_client_list_sources(cl, WAIT_MS, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].upper, SL_TIME_CLOSED);
	sl_source_info_free(v, n);
	consumer_fini(&c);
	sl_client_close(cl);
}

/* A subscription made `from` a time keeps that bound across a restart that comes before any of
 * its Progress arrived. */
static void test_restart_before_progress(void **state)
{
	env *e = *state;
	storage_up(e, 0); /* nothing produced: the subscription hears nothing at all */
	sl_client *cl = client(e, 20000);
	consumer c;
	consumer_init(&c, cl);
	sstate *s = &c.s[c.n++];
	memset(s, 0, sizeof(*s));
	assert_int_equal(sl_subscribe(c.q, 1, e->src_id, 0, 100, &s->sub), 0);
	uint64_t deadline = now_ms() + WAIT_MS;
	while (!s->subscribed) {
		assert_true(now_ms() < deadline);
		consume_one(&c, 20);
	}
	/* storage sends the moved capability 0 -> 100 at once: make the restart race it */
	storage_down(e);
	atomic_store(&e->limit, TIMES);
	storage_up(e, 1);
	while (s->frontier != SL_TIME_CLOSED) {
		assert_true(now_ms() < deadline);
		consume_one(&c, 20);
	}
	for (uint64_t k = 1; k <= TIMES; k++)
		for (uint32_t i = 0; i < per_time(k); i++)
			assert_int_equal(c.ok[0][k][i], k >= 100 ? 1 : 0);
	consumer_fini(&c);
	sl_client_close(cl);
}

/* No storage within the window: SL_EV_DISCONNECTED, and the client is done. */
static void test_window_expires(void **state)
{
	env *e = *state;
	storage_up(e, 1);
	sl_client *cl = client(e, 400);
	consumer c;
	consumer_init(&c, cl);
	for (uint32_t w = 0; w < WORKERS; w++)
		subscribe(&c, e->src_id, w);
	uint64_t deadline = now_ms() + WAIT_MS;
	while (min_frontier(&c) < 3) {
		assert_true(now_ms() < deadline);
		consume_one(&c, 20);
	}
	storage_down(e);
	uint64_t start = now_ms();
	while (!c.disconnected) {
		assert_true(now_ms() < deadline);
		consume_one(&c, 50);
	}
	uint64_t took = now_ms() - start;
	assert_true(took >= 350);
	assert_true(took < 5000);
	assert_int_equal(c.disconnected, 1);
	assert_int_not_equal(c.disc_code, 0);
	assert_int_equal(c.reconnected, 0);
	for (size_t i = 0; i < c.n; i++)
		assert_int_equal(sl_unsubscribe(c.q, c.s[i].sub), SL_ENOTSUB);
	sl_sub sub;
	assert_int_equal(sl_subscribe(c.q, 9, e->src_id, 0, 0, &sub), SL_EDISCONNECTED);
	sl_source_info *v;
	size_t n;
	assert_int_equal(sl_client_list_sources(cl, WAIT_MS, &v, &n), SL_EDISCONNECTED);
	/* a storage coming back later changes nothing */
	storage_up(e, 0);
	assert_int_equal(consume_one(&c, 300), 0);
	consumer_fini(&c);
	sl_client_close(cl);
}

/* retry_for_ms = 0: today's behaviour, Disconnected at once. */
static void test_no_retry(void **state)
{
	env *e = *state;
	storage_up(e, 1);
	sl_client *cl = client(e, 0);
	consumer c;
	consumer_init(&c, cl);
	subscribe(&c, e->src_id, 0);
	uint64_t deadline = now_ms() + WAIT_MS;
	while (min_frontier(&c) < 2) {
		assert_true(now_ms() < deadline);
		consume_one(&c, 20);
	}
	storage_down(e);
	storage_up(e, 1); /* back at once, but too late: no retries */
	while (!c.disconnected) {
		assert_true(now_ms() < deadline);
		consume_one(&c, 50);
	}
	assert_int_equal(c.reconnected, 0);
	consumer_fini(&c);
	sl_client_close(cl);
}

/* During an outage: unsubscribing works (nothing more arrives for it, storage is never asked
 * for it again), a new subscription waits for the connection, requests fail at once. */
static void test_outage_commands(void **state)
{
	env *e = *state;
	storage_up(e, 1);
	sl_client *cl = client(e, 20000);
	consumer c;
	consumer_init(&c, cl);
	for (uint32_t w = 0; w < WORKERS; w++)
		subscribe(&c, e->src_id, w);
	uint64_t deadline = now_ms() + WAIT_MS;
	while (min_frontier(&c) < 10) {
		assert_true(now_ms() < deadline);
		consume_one(&c, 20);
		if (min_frontier(&c) + LEAD > atomic_load(&e->limit))
			atomic_store(&e->limit, min_frontier(&c) + LEAD);
	}
	storage_down(e);
	/* worker 1's subscription ends during the outage */
	assert_int_equal(sl_unsubscribe(c.q, c.s[1].sub), 0);
	c.s[1].ended = 1;
	assert_int_equal(sl_unsubscribe(c.q, c.s[1].sub), SL_ENOTSUB);
	/* a new one, from the start, under another dataflow id */
	sstate *s2 = &c.s[c.n++];
	memset(s2, 0, sizeof(*s2));
	s2->worker = 1;
	assert_int_equal(sl_subscribe(c.q, 2, e->src_id, 1, 0, &s2->sub), 0);
	/* requests cannot be answered now */
	sl_source_info *v;
	size_t n;
	uint64_t t0 = now_ms();
	assert_int_equal(sl_client_list_sources(cl, WAIT_MS, &v, &n), SL_EDISCONNECTED);
	sl_update u = {{(const uint8_t *)"x", 1}, 0, 1};
	uint64_t when;
	assert_int_equal(sl_client_append(cl, e->src_id, &u, 1, WAIT_MS, &when), SL_EDISCONNECTED);
	assert_true(now_ms() - t0 < 5000);
	/* worker 1's counts start over for the new subscription: forget what the old one had */
	for (uint64_t k = 1; k <= TIMES; k++) {
		memset(c.ok[1][k], 0, per_time(k));
		c.err[1][k] = 0;
	}
	storage_up(e, 1);
	while (min_frontier(&c) != SL_TIME_CLOSED) {
		assert_true(now_ms() < deadline);
		assert_int_equal(c.disconnected, 0);
		consume_one(&c, 20);
		uint64_t f = min_frontier(&c), lim = f == SL_TIME_CLOSED ? TIMES : f + LEAD;
		if (lim > atomic_load(&e->limit))
			atomic_store(&e->limit, lim);
	}
	assert_true(s2->subscribed);
	check_complete(&c, 0);
	check_complete(&c, 1);
	assert_int_equal(c.reconnected, 1);
	consumer_fini(&c);
	sl_client_close(cl);
}

/* ---- a scripted server: SubscribeOk with the SNAPSHOT flag ---- */

typedef struct script {
	int lfd, port;
	int idle; /* round 1 goes silent instead of closing; round 2 replays instead of a snapshot */
	int round; /* connections served */
	pthread_t thread;
} script;

static void send_all(int fd, sli_buf *b)
{
	size_t off = 0;
	while (off < b->len) {
		ssize_t n = write(fd, b->ptr + off, b->len - off);
		if (n <= 0)
			return;
		off += (size_t)n;
	}
	b->len = 0;
}

/* Reads frames until a Subscribe arrives; fills *sub.  0, or -1 on EOF. */
static int read_subscribe(int fd, sli_subscribe *sub)
{
	static uint8_t buf[1 << 16];
	size_t len = 0;
	for (;;) {
		sli_frame f;
		ssize_t r = sli_frame_decode(buf, len, SLI_FRAME_MAX_DEFAULT, &f);
		if (r < 0)
			return -1;
		if (r > 0) {
			int got = f.type == SLI_SUBSCRIBE;
			if (got)
				*sub = f.u.subscribe;
			memmove(buf, buf + r, len - (size_t)r);
			len -= (size_t)r;
			if (got)
				return 0;
			continue;
		}
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n <= 0)
			return -1;
		len += (size_t)n;
	}
}

static void put_messages(sli_buf *b, uint32_t handle, uint64_t time, const char *const *rows,
                         int n)
{
	size_t nbytes = 0;
	for (int i = 0; i < n; i++)
		nbytes += SLI_UPDATE_HDR + strlen(rows[i]);
	ssize_t f = sli_data_begin(b, handle, SL_OK);
	sli_put_messages_header(b, time, (uint32_t)n, (uint32_t)nbytes);
	for (int i = 0; i < n; i++)
		sli_put_update(b, 1, (sl_bytes){(const uint8_t *)rows[i], strlen(rows[i])});
	sli_frame_end(b, (size_t)f);
}

static void put_progress(sli_buf *b, uint32_t handle, uint64_t to, uint64_t from)
{
	uint64_t times[2] = {to, from};
	int64_t deltas[2] = {1, -1};
	for (uint8_t coll = 0; coll < 2; coll++) {
		ssize_t f = sli_data_begin(b, handle, coll);
		if (to == SL_TIME_CLOSED)
			sli_put_progress(b, times + 1, deltas + 1, 1);
		else
			sli_put_progress(b, times, deltas, 2);
		sli_frame_end(b, (size_t)f);
	}
}

/* Round 1: rows a, b at time 5, frontier 0 -> 6, then c at 6, and the connection drops (or,
 * with `idle`, stops answering: the client's heartbeats time out).
 * Round 2 (a resubscribe from 6): SNAPSHOT flag with since 8, capability 0 -> 8, the snapshot
 * (a, b, c consolidated at 8), then the worker closes.  With `idle`: capability 0 -> 6, c at 6
 * again (a duplicate), d at 6, then the worker closes. */
static void *script_main(void *arg)
{
	script *sc = arg;
	for (sc->round = 1; sc->round <= 2; sc->round++) {
		struct pollfd p = {.fd = sc->lfd, .events = POLLIN};
		if (poll(&p, 1, WAIT_MS) != 1)
			return NULL;
		int fd = accept(sc->lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		/* accepted from a non-blocking listener: the script writes and reads blocking */
		int fl = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
		sli_buf b;
		sli_buf_init(&b);
		sli_frame h = {.type = SLI_HELLO};
		h.u.hello = (sli_hello){.magic = SLI_MAGIC, .version = SLI_PROTO_VERSION,
		                        .session = (uint64_t)sc->round, .epoch = (uint64_t)sc->round,
		                        .name = {(const uint8_t *)"script", 6}};
		sli_frame_encode(&b, &h);
		send_all(fd, &b);
		sli_subscribe sub;
		if (read_subscribe(fd, &sub) != 0) {
			close(fd);
			break;
		}
		sli_frame ok = {.type = SLI_SUBSCRIBE_OK};
		if (sc->round == 1) {
			static const char *const r5[] = {"a", "b"}, *const r6[] = {"c"};
			ok.u.subscribe_ok = (sli_subscribe_ok){.handle = sub.handle, .since = 0, .upper = 6};
			sli_frame_encode(&b, &ok);
			put_messages(&b, sub.handle, 5, r5, 2);
			put_progress(&b, sub.handle, 6, 0);
			put_messages(&b, sub.handle, 6, r6, 1);
			send_all(fd, &b);
			usleep(sc->idle ? 800000 : 100000);
		} else if (sc->idle) {
			static const char *const r6[] = {"c", "d"};
			ok.u.subscribe_ok = (sli_subscribe_ok){.handle = sub.handle, .since = 0, .upper = 7};
			sli_frame_encode(&b, &ok);
			put_progress(&b, sub.handle, sub.from == 6 ? 6 : 999, 0);
			put_messages(&b, sub.handle, 6, r6, 2);
			put_progress(&b, sub.handle, SL_TIME_CLOSED, 6);
			send_all(fd, &b);
			usleep(300000);
		} else {
			static const char *const snap[] = {"a", "b", "c"};
			ok.u.subscribe_ok = (sli_subscribe_ok){.handle = sub.handle, .since = 8, .upper = 9,
			                                       .flags = SLI_SUBOK_SNAPSHOT};
			sli_frame_encode(&b, &ok);
			/* the resume point was 6 */
			put_progress(&b, sub.handle, sub.from == 6 ? 8 : 999, 0);
			put_messages(&b, sub.handle, 8, snap, 3);
			put_progress(&b, sub.handle, SL_TIME_CLOSED, 8);
			send_all(fd, &b);
			usleep(300000);
		}
		sli_buf_fini(&b);
		close(fd);
	}
	return NULL;
}

static void test_resnapshot(void **state)
{
	(void)state;
	script sc;
	char addr[64];
	memset(&sc, 0, sizeof(sc));
	sc.lfd = sli_listen_tcp("127.0.0.1:0", &sc.port);
	assert_true(sc.lfd >= 0);
	assert_int_equal(pthread_create(&sc.thread, NULL, script_main, &sc), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", sc.port);
	sl_client_config cfg;
	sl_client *cl;
	sl_client_config_init(&cfg);
	cfg.server = addr;
	cfg.retry_for_ms = 10000;
	assert_int_equal(sl_client_open(&cfg, &cl), 0);
	sl_queue *q;
	sl_sub sub;
	assert_int_equal(sl_queue_open(cl, &q), 0);
	assert_int_equal(sl_subscribe(q, 1, 1, 0, 0, &sub), 0);
	/* expected: SUBSCRIBED, MESSAGES@5 (a b), PROGRESS ok, PROGRESS err, MESSAGES@6 (c),
	 * RECONNECTED, RESNAPSHOT since 8, PROGRESS ok 6->8, MESSAGES@8 (a b c),
	 * PROGRESS ok+err to closed, err 6->8 somewhere in between */
	int seen_resnap = 0, seen_reconn = 0, rows_before = 0, rows_after = 0;
	uint64_t frontier = 0, deadline = now_ms() + WAIT_MS;
	while (frontier != SL_TIME_CLOSED) {
		assert_true(now_ms() < deadline);
		sl_event ev;
		int r = sl_queue_next(q, &ev, 50);
		assert_true(r >= 0);
		if (r == 0)
			continue;
		assert_int_not_equal(ev.kind, SL_EV_DISCONNECTED);
		if (ev.kind == SL_EV_RECONNECTED) {
			assert_int_equal(ev.session, 2);
			assert_int_equal(ev.epoch, 2);
			seen_reconn++;
			continue;
		}
		assert_int_equal(ev.sub.id, sub.id);
		assert_true(ev.frontier >= frontier);
		frontier = ev.frontier;
		if (ev.kind == SL_EV_RESNAPSHOT) {
			assert_int_equal(seen_reconn, 1);
			assert_int_equal(ev.since, 8);
			assert_int_equal(frontier, 6);
			seen_resnap++;
		} else if (ev.kind == SL_EV_MESSAGES) {
			if (seen_resnap) {
				assert_int_equal(ev.time, 8);
				rows_after += (int)ev.count;
			} else {
				rows_before += (int)ev.count;
			}
		} else if (ev.kind == SL_EV_PROGRESS) {
			sl_iter it;
			uint64_t t;
			int64_t d;
			sl_iter_init(&it, &ev);
			while (sl_iter_change(&it, &t, &d))
				assert_true(t == 0 || t >= 6); /* never the 0 -> 8 of the new stream */
		}
	}
	assert_int_equal(seen_resnap, 1);
	assert_int_equal(rows_before, 3);
	assert_int_equal(rows_after, 3);
	sl_queue_close(q);
	sl_client_close(cl);
	pthread_join(sc.thread, NULL);
	close(sc.lfd);
}

/* A server that stops answering heartbeats is left and resumed: the replayed row at the
 * frontier's time is dropped, the one after it delivered. */
static void test_idle_resume(void **state)
{
	(void)state;
	script sc;
	char addr[64];
	memset(&sc, 0, sizeof(sc));
	sc.idle = 1;
	sc.lfd = sli_listen_tcp("127.0.0.1:0", &sc.port);
	assert_true(sc.lfd >= 0);
	assert_int_equal(pthread_create(&sc.thread, NULL, script_main, &sc), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", sc.port);
	sl_client_config cfg;
	sl_client *cl;
	sl_client_config_init(&cfg);
	cfg.server = addr;
	cfg.heartbeat_ms = 50;
	cfg.idle_timeout_ms = 300;
	cfg.retry_for_ms = 10000;
	assert_int_equal(sl_client_open(&cfg, &cl), 0);
	sl_queue *q;
	sl_sub sub;
	assert_int_equal(sl_queue_open(cl, &q), 0);
	assert_int_equal(sl_subscribe(q, 1, 1, 0, 0, &sub), 0);
	char got[16] = "";
	int reconn = 0, progress_events = 0;
	uint64_t frontier = 0, deadline = now_ms() + WAIT_MS;
	while (frontier != SL_TIME_CLOSED) {
		assert_true(now_ms() < deadline);
		sl_event ev;
		int r = sl_queue_next(q, &ev, 50);
		assert_true(r >= 0);
		if (r == 0)
			continue;
		assert_int_not_equal(ev.kind, SL_EV_DISCONNECTED);
		assert_int_not_equal(ev.kind, SL_EV_RESNAPSHOT);
		if (ev.kind == SL_EV_RECONNECTED) {
			reconn++;
			continue;
		}
		assert_true(ev.frontier >= frontier);
		frontier = ev.frontier;
		if (ev.kind == SL_EV_PROGRESS)
			progress_events++;
		if (ev.kind != SL_EV_MESSAGES)
			continue;
		sl_iter it;
		sl_bytes row;
		int64_t d;
		sl_iter_init(&it, &ev);
		while (sl_iter_update(&it, &row, &d)) {
			size_t l = strlen(got);
			assert_true(l + 2 < sizeof(got));
			got[l] = (char)row.ptr[0];
			got[l + 1] = (char)('0' + ev.time);
			got[l + 2] = '\0';
		}
	}
	assert_string_equal(got, "a5b5c6d6");
	assert_int_equal(reconn, 1);
	/* 0 -> 6 and 6 -> closed, on each collection: the resumed stream's 0 -> 6 is not among
	 * them */
	assert_int_equal(progress_events, 4);
	sl_queue_close(q);
	sl_client_close(cl);
	pthread_join(sc.thread, NULL);
	close(sc.lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_restarts_exactly_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_before_progress, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_expires, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outage_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resnapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_resume, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
