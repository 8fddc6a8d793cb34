/*
 * itest_storage.c - the storage runtime seen from the wire: a real runtime on an ephemeral
 * loopback port, driven by a hand-made client (rawclient.h) that checks every frame it gets.
 * Covers credit limits, fairness between subscriptions of one connection, error answers for
 * bad requests, hostile bytes, silent peers, and memory after many subscribe cycles.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <pthread.h>

#include "rawclient.h"
#include "sluice/storage.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

struct fixture {
	sl_storage *st;
	sl_source *src; /* "s": 4 workers */
	sl_source *ing; /* "in": ingest, 2 workers */
	int port;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	sl_storage_config cfg;
	sl_storage_config_init(&cfg);
	cfg.listen = "127.0.0.1:0";
	cfg.heartbeat_ms = 100;
	cfg.idle_timeout_ms = 1500;
	/* test_subscribe_cycles churns subscriptions as fast as it can on purpose: lift the
	 * Subscribe/Unsubscribe rate limit (itest_hostile tests the limit itself). */
	cfg.subscribe_rate = 100000000;
	assert_int_equal(sl_storage_open(&cfg, &fx->st), 0);
	assert_int_equal(sl_source_register(fx->st, "s", "test", 4, 0, &fx->src), 0);
	assert_int_equal(sl_source_register(fx->st, "in", "ingest", 2, SL_SOURCE_INGEST, &fx->ing), 0);
	assert_int_equal(sl_storage_start(fx->st), 0);
	fx->port = sl_storage_port(fx->st);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	sl_storage_close(fx->st);
	free(fx);
	return 0;
}

/* Appends n rows of `rowlen` bytes at consecutive times starting at t0, then advances. */
static void fill(sl_source *src, uint32_t worker, uint64_t t0, size_t n, size_t rowlen)
{
	uint8_t *row = malloc(rowlen);
	memset(row, 'x', rowlen);
	sl_update *ups = calloc(n, sizeof(*ups));
	for (size_t i = 0; i < n; i++)
		ups[i] = (sl_update){{row, rowlen}, t0 + i, 1};
	assert_int_equal(sl_source_append(src, worker, SL_OK, ups, n), 0);
	assert_int_equal(sl_source_advance(src, worker, t0 + n), 0);
	free(ups);
	free(row);
}

/* Sums the event bytes and updates of a Data frame. */
static void count_data(const sli_frame *f, uint64_t *bytes, uint64_t *updates)
{
	sl_bytes rest = f->u.data.events;
	sli_event ev;
	while (sli_events_next(&rest, &ev) == 1) {
		*bytes += ev.size;
		if (ev.tag == SLI_EV_MESSAGES)
			*updates += ev.count;
	}
}

/* The watchdog's liveness signal: unknown before start, then the network thread's tick keeps it
 * within a few heartbeats (100 ms here), checked over several of them. */
static void test_loop_idle(void **state)
{
	struct fixture *fx = *state;
	sl_storage_config cfg;
	sl_storage *idle;

	sl_storage_config_init(&cfg);
	cfg.listen = "127.0.0.1:0";
	assert_int_equal(sl_storage_open(&cfg, &idle), 0);
	assert_true(sl_storage_loop_idle_ms(idle) == UINT64_MAX);
	sl_storage_close(idle);
	/* The first tick comes a quarter heartbeat after start. */
	for (int i = 0; i < 100 && sl_storage_loop_idle_ms(fx->st) == UINT64_MAX; i++) {
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < 20; i++) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		assert_true(sl_storage_loop_idle_ms(fx->st) < 2000);
		nanosleep(&ts, NULL);
	}
}

/* A NULL address is refused without touching memory it does not own (the cleanup once walked
 * off the front of the list), and a second call replaces the first without leaking it. */
static void test_set_cluster_args(void **state)
{
	const char *bad[] = {"127.0.0.1:7001", NULL, "127.0.0.1:7003"};
	const char *good[] = {"127.0.0.1:7001", "127.0.0.1:7002"};
	sl_storage_config cfg;
	sl_storage *st;

	sl_storage_config_init(&cfg);
	cfg.listen = "127.0.0.1:0";
	assert_int_equal(sl_storage_open(&cfg, &st), 0);
	assert_int_equal(sl_storage_set_cluster(st, bad, 3, 0, 1), SL_EARG);
	assert_int_equal(sl_storage_set_cluster(st, good, 2, 0, 1), 0);
	assert_int_equal(sl_storage_set_cluster(st, good, 2, 1, 1), 0);
	sl_storage_close(st);
}

static void test_version_refused(void **state)
{
	struct fixture *fx = *state;
	rawc c;
	sli_frame f = {.type = SLI_HELLO};
	assert_int_equal(rawc_open(&c, fx->port), 0);
	f.u.hello.magic = SLI_MAGIC;
	f.u.hello.version = 99;
	assert_int_equal(rawc_send(&c, &f), 0);
	assert_int_equal(rawc_next(&c, &f, 5000), 1);
	assert_int_equal(f.type, SLI_ERROR);
	assert_int_equal(f.u.error.code, SL_EVERSION);
	assert_int_equal(f.u.error.fatal, 1);
	assert_non_null(memmem(f.u.error.message.ptr, f.u.error.message.len, "version 99", 10));
	assert_int_equal(rawc_next(&c, &f, 5000), 0); /* then the server closes */
	rawc_close(&c);
}

static void test_subscribe_errors(void **state)
{
	struct fixture *fx = *state;
	rawc c;
	sli_frame f;
	assert_int_equal(rawc_open(&c, fx->port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);

	rawc_subscribe(&c, 1, 7, 999, 0, 0, 1 << 20);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.subscribe_error.handle, 1);
	assert_int_equal(f.u.subscribe_error.code, SL_ENOSOURCE);

	rawc_subscribe(&c, 2, 7, sl_source_id(fx->src), 4, 0, 1 << 20);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.subscribe_error.code, SL_ENOWORKER);

	rawc_subscribe(&c, 3, 7, sl_source_id(fx->src), 1, 0, 1 << 20);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_OK, &f, 5000), 1);
	assert_int_equal(f.u.subscribe_ok.handle, 3);
	rawc_subscribe(&c, 4, 7, sl_source_id(fx->src), 1, 0, 1 << 20); /* same triple */
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.subscribe_error.code, SL_EDUPLICATE);
	rawc_subscribe(&c, 3, 8, sl_source_id(fx->src), 1, 0, 1 << 20); /* same handle */
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.subscribe_error.code, SL_EDUPLICATE);

	sli_frame u = {.type = SLI_UNSUBSCRIBE};
	u.u.unsubscribe = (sli_unsubscribe){7, sl_source_id(fx->src), 2};
	rawc_send(&c, &u);
	assert_int_equal(rawc_expect(&c, SLI_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.error.code, SL_ENOTSUB);
	assert_int_equal(f.u.error.fatal, 0);

	rawc_credit(&c, 12345, 10);
	assert_int_equal(rawc_expect(&c, SLI_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.error.code, SL_EBADHANDLE);
	rawc_credit(&c, 3, UINT64_MAX);
	assert_int_equal(rawc_expect(&c, SLI_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.error.code, SL_ECREDIT);
	assert_int_equal(f.u.error.fatal, 0);

	/* The connection still works. */
	u.u.unsubscribe = (sli_unsubscribe){7, sl_source_id(fx->src), 1};
	rawc_send(&c, &u);
	assert_int_equal(rawc_expect(&c, SLI_UNSUBSCRIBE_OK, &f, 5000), 1);
	assert_int_equal(f.u.unsubscribe_ok.handle, 3);
	sli_frame p = {.type = SLI_PING};
	p.u.ping.nonce = 42;
	rawc_send(&c, &p);
	assert_int_equal(rawc_expect(&c, SLI_PONG, &f, 5000), 1);
	assert_int_equal(f.u.ping.nonce, 42);
	rawc_close(&c);
}

/* Storage never sends more event bytes than granted, and sends everything once granted. */
static void test_credit_limits_data(void **state)
{
	struct fixture *fx = *state;
	const size_t n = 20000, rowlen = 100;
	const uint64_t window = 128 * 1024;
	rawc c;
	sli_frame f;
	fill(fx->src, 0, 0, n, rowlen);
	assert_int_equal(rawc_open(&c, fx->port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	rawc_subscribe(&c, 1, 1, sl_source_id(fx->src), 0, 0, window);
	uint64_t granted = window, got_bytes = 0, got_updates = 0;
	int closed_progress = 0;
	uint64_t deadline = sli_now_ms() + 60000;
	uint64_t last_data = sli_now_ms();
	while (got_updates < n && sli_now_ms() < deadline) {
		int rc = rawc_next(&c, &f, 300);
		if (sli_now_ms() - last_data >= 300) {
			/* No data for a while: storage waits for credit.  Grant what we consumed. */
			assert_true(got_bytes <= granted);
			rawc_credit(&c, 1, got_bytes + window - granted);
			granted = got_bytes + window;
			last_data = sli_now_ms();
		}
		if (rc == SL_ETIMEDOUT)
			continue;
		assert_int_equal(rc, 1);
		if (f.type == SLI_DATA) {
			assert_int_equal(f.u.data.handle, 1);
			count_data(&f, &got_bytes, &got_updates);
			assert_true(got_bytes <= granted);
			last_data = sli_now_ms();
		} else if (f.type == SLI_PING) {
			sli_frame p = {.type = SLI_PONG};
			p.u.ping.nonce = f.u.ping.nonce;
			rawc_send(&c, &p);
		}
	}
	(void)closed_progress;
	assert_int_equal(got_updates, n);
	rawc_close(&c);
}

/* One subscription without credit does not hold back another on the same connection. */
static void test_stalled_sub_does_not_block_other(void **state)
{
	struct fixture *fx = *state;
	const size_t n = 50000;
	rawc c;
	sli_frame f;
	fill(fx->src, 2, 0, n, 100);
	fill(fx->src, 3, 0, n, 100);
	assert_int_equal(rawc_open(&c, fx->port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	rawc_subscribe(&c, 10, 1, sl_source_id(fx->src), 2, 0, 128 * 1024); /* never granted more */
	rawc_subscribe(&c, 11, 1, sl_source_id(fx->src), 3, 0, 1 << 20);
	uint64_t bytes[2] = {0}, updates[2] = {0}, unacked = 0;
	uint64_t deadline = sli_now_ms() + 60000;
	while (updates[1] < n && sli_now_ms() < deadline) {
		int rc = rawc_next(&c, &f, 1000);
		if (rc == SL_ETIMEDOUT)
			continue;
		assert_int_equal(rc, 1);
		if (f.type != SLI_DATA)
			continue;
		int i = f.u.data.handle == 11;
		uint64_t before = bytes[i];
		count_data(&f, &bytes[i], &updates[i]);
		if (i == 1) {
			unacked += bytes[1] - before;
			if (unacked >= 256 * 1024) {
				rawc_credit(&c, 11, unacked);
				unacked = 0;
			}
		}
	}
	assert_int_equal(updates[1], n);
	assert_true(bytes[0] <= 128 * 1024);
	assert_true(updates[0] < n);
	rawc_close(&c);
}

static void expect_fatal_and_close(rawc *c, int code)
{
	sli_frame f;
	assert_int_equal(rawc_expect(c, SLI_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.error.code, code);
	assert_int_equal(f.u.error.fatal, 1);
	assert_int_equal(rawc_next(c, &f, 5000), 0);
}

static void assert_server_serves(struct fixture *fx)
{
	rawc c;
	sli_frame f = {.type = SLI_LIST_SOURCES};
	assert_int_equal(rawc_open(&c, fx->port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	rawc_send(&c, &f);
	assert_int_equal(rawc_expect(&c, SLI_SOURCES, &f, 5000), 1);
	assert_int_equal(f.u.sources.count, 2);
	rawc_close(&c);
}

static void test_hostile_bytes(void **state)
{
	struct fixture *fx = *state;
	rawc c;

	/* Garbage before any Hello. */
	assert_int_equal(rawc_open(&c, fx->port), 0);
	rawc_send_raw(&c, "\x09\x00\x00\x00\x77garbage!", 13);
	expect_fatal_and_close(&c, SL_EPROTO);
	rawc_close(&c);

	/* A length prefix over the maximum. */
	assert_int_equal(rawc_open(&c, fx->port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	rawc_send_raw(&c, "\xff\xff\xff\x7f\x10", 5);
	expect_fatal_and_close(&c, SL_ETOOBIG);
	rawc_close(&c);

	/* An unknown frame type. */
	assert_int_equal(rawc_open(&c, fx->port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	rawc_send_raw(&c, "\x01\x00\x00\x00\xee", 5);
	expect_fatal_and_close(&c, SL_EPROTO);
	rawc_close(&c);

	/* A frame storage only sends. */
	assert_int_equal(rawc_open(&c, fx->port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	sli_frame f = {.type = SLI_UNSUBSCRIBE_OK};
	rawc_send(&c, &f);
	expect_fatal_and_close(&c, SL_EPROTO);
	rawc_close(&c);

	/* A Subscribe truncated by EOF. */
	assert_int_equal(rawc_open(&c, fx->port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	sli_frame s = {.type = SLI_SUBSCRIBE};
	s.u.subscribe = (sli_subscribe){1, 1, sl_source_id(fx->src), 0, 0, 1 << 20};
	c.out.len = 0;
	sli_frame_encode(&c.out, &s);
	rawc_send_raw(&c, c.out.ptr, c.out.len - 7);
	rawc_close(&c);

	/* Random bytes, many times. */
	srand(7);
	for (int i = 0; i < 50; i++) {
		uint8_t junk[512];
		for (size_t k = 0; k < sizeof(junk); k++)
			junk[k] = (uint8_t)rand();
		assert_int_equal(rawc_open(&c, fx->port), 0);
		if (i % 2)
			rawc_hello(&c, SLI_PROTO_VERSION);
		rawc_send_raw(&c, junk, (size_t)(rand() % (int)sizeof(junk)) + 1);
		rawc_close(&c);
	}
	assert_server_serves(fx);
}

/* A client that subscribes and then never reads is dropped after the idle timeout, and does
 * not stop another client from being served meanwhile. */
static void test_silent_client(void **state)
{
	struct fixture *fx = *state;
	rawc silent;
	sli_frame f;
	assert_int_equal(rawc_open(&silent, fx->port), 0);
	assert_int_equal(rawc_hello(&silent, SLI_PROTO_VERSION), 0);
	rawc_subscribe(&silent, 1, 1, sl_source_id(fx->src), 0, 0, 1ull << 40);
	rawc_subscribe(&silent, 2, 1, sl_source_id(fx->src), 2, 0, 1ull << 40);
	assert_server_serves(fx);
	/* Drain without answering pings: once the idle timeout passes, the server hangs up. */
	uint64_t deadline = sli_now_ms() + 20000;
	int rc;
	while ((rc = rawc_next(&silent, &f, 1000)) != 0 && sli_now_ms() < deadline)
		if (rc == 1 && f.type == SLI_ERROR)
			assert_int_equal(f.u.error.code, SL_EIDLE);
	assert_int_equal(rc, 0);
	rawc_close(&silent);
	assert_server_serves(fx);
}

static void test_ingest_append(void **state)
{
	struct fixture *fx = *state;
	rawc c;
	sli_frame f;
	assert_int_equal(rawc_open(&c, fx->port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	/* Two frames, one batch. */
	for (int part = 0; part < 2; part++) {
		c.out.len = 0;
		ssize_t off = sli_append_begin(&c.out, 5, sl_source_id(fx->ing), part ? SLI_APPEND_LAST : 0);
		for (int i = 0; i < 10; i++) {
			char row[16];
			int n = snprintf(row, sizeof(row), "r%d-%d", part, i);
			sli_put_update(&c.out, 1, (sl_bytes){(uint8_t *)row, (size_t)n});
		}
		sli_append_end(&c.out, (size_t)off, 10);
		sli_frame_end(&c.out, (size_t)off);
		rawc_send_raw(&c, c.out.ptr, c.out.len);
	}
	assert_int_equal(rawc_expect(&c, SLI_APPEND_OK, &f, 5000), 1);
	assert_int_equal(f.u.append_ok.batch, 5);
	uint64_t t = f.u.append_ok.time;
	assert_true(sl_source_upper(fx->ing, 0) == t + 1 && sl_source_upper(fx->ing, 1) == t + 1);

	/* Read both workers back: 20 rows at time t. */
	uint64_t updates = 0, bytes = 0;
	rawc_subscribe(&c, 1, 1, sl_source_id(fx->ing), 0, 0, 1 << 20);
	rawc_subscribe(&c, 2, 1, sl_source_id(fx->ing), 1, 0, 1 << 20);
	uint64_t deadline = sli_now_ms() + 10000;
	while (updates < 20 && sli_now_ms() < deadline)
		if (rawc_next(&c, &f, 500) == 1 && f.type == SLI_DATA)
			count_data(&f, &bytes, &updates);
	assert_int_equal(updates, 20);

	/* Append to a source that is not an ingest source: refused, connection lives. */
	c.out.len = 0;
	ssize_t off = sli_append_begin(&c.out, 6, sl_source_id(fx->src), SLI_APPEND_LAST);
	sli_put_update(&c.out, 1, (sl_bytes){(uint8_t *)"x", 1});
	sli_append_end(&c.out, (size_t)off, 1);
	sli_frame_end(&c.out, (size_t)off);
	rawc_send_raw(&c, c.out.ptr, c.out.len);
	assert_int_equal(rawc_expect(&c, SLI_APPEND_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.append_error.batch, 6);
	assert_int_equal(f.u.append_error.code, SL_EKIND);
	rawc_close(&c);
}

/* 100,000 subscribe/unsubscribe cycles on one connection: every one answered, and the heap
 * in use afterwards is what it was before. */
static void test_subscribe_cycles(void **state)
{
	struct fixture *fx = *state;
	rawc c;
	sli_frame f;
	assert_int_equal(rawc_open(&c, fx->port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	/* Warm up so buffers reach their steady size. */
	const int cycles = 100000, batch = 500;
	size_t before = 0;
	for (int i = 0; i < cycles; i += batch) {
		if (i == 2 * batch) {
#ifndef UNDER_ASAN
			before = mallinfo2().uordblks;
#endif
		}
		c.out.len = 0;
		for (int k = 0; k < batch; k++) {
			sli_frame s = {.type = SLI_SUBSCRIBE};
			s.u.subscribe = (sli_subscribe){(uint32_t)k, (uint64_t)(i + k), sl_source_id(fx->src),
			                                (uint32_t)(k % 4), 0, 1 << 17};
			sli_frame_encode(&c.out, &s);
			sli_frame u = {.type = SLI_UNSUBSCRIBE};
			u.u.unsubscribe = (sli_unsubscribe){(uint64_t)(i + k), sl_source_id(fx->src), (uint32_t)(k % 4)};
			sli_frame_encode(&c.out, &u);
		}
		rawc_send_raw(&c, c.out.ptr, c.out.len);
		for (int k = 0; k < batch; k++) {
			assert_int_equal(rawc_expect(&c, SLI_UNSUBSCRIBE_OK, &f, 10000), 1);
			assert_int_equal(f.u.unsubscribe_ok.handle, (uint32_t)k);
		}
	}
#ifndef UNDER_ASAN
	size_t after = mallinfo2().uordblks;
	print_message("heap in use: before %zu after %zu\n", before, after);
	assert_true(after <= before + 256 * 1024);
#endif
	(void)before;
	rawc_close(&c);
	assert_server_serves(fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loop_idle),
		cmocka_unit_test(test_set_cluster_args),
		cmocka_unit_test(test_version_refused),
		cmocka_unit_test(test_subscribe_errors),
		cmocka_unit_test(test_credit_limits_data),
		cmocka_unit_test(test_stalled_sub_does_not_block_other),
		cmocka_unit_test(test_hostile_bytes),
		cmocka_unit_test(test_silent_client),
		cmocka_unit_test(test_ingest_append),
		cmocka_unit_test(test_subscribe_cycles),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
