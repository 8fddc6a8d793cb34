/*
 * itest_metrics.c - the operator's report of a real storage runtime: the hand-off that lets
 * another thread get one (bounded when the loop does not answer), the Stats frame on the wire,
 * the numbers it shows (subscriptions, uppers, lag, errors by kind, escaped labels), and many
 * threads asking at once while sources append.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "rawclient.h"
#include "sluice/storage.h"
#include "storage/storage_int.h"

static sl_storage *open_storage(void)
{
	sl_storage_config cfg;
	sl_storage *st = NULL;
	sl_storage_config_init(&cfg);
	cfg.listen = "127.0.0.1:0";
	assert_int_equal(sl_storage_open(&cfg, &st), 0);
	return st;
}

/* A report as a NUL-terminated string (freed by the caller). */
static char *report(sl_storage *st)
{
	sli_buf b;
	sli_buf_init(&b);
	assert_int_equal(sli_metrics_report(st, &b, 5000), 0);
	assert_int_equal(sli_buf_reserve(&b, 1), 0);
	b.ptr[b.len] = '\0';
	return (char *)b.ptr;
}

static void test_report_needs_the_loop(void **state)
{
	sl_storage *st = open_storage();
	sli_buf b;
	sli_buf_init(&b);
	uint64_t t0 = sli_now_ms();
	/* Not started: nobody renders, and the wait is bounded. */
	assert_int_equal(sli_metrics_report(st, &b, 200), SL_ETIMEDOUT);
	assert_true(sli_now_ms() - t0 < 2000);
	assert_int_equal(b.len, 0);
	assert_int_equal(sl_storage_start(st), 0);
	assert_int_equal(sli_metrics_report(st, &b, 5000), 0);
	assert_non_null(memmem(b.ptr, b.len, "sluice_connections 0\n", 21));
	sli_buf_fini(&b);
	sl_storage_close(st);
}

static void test_report_contents(void **state)
{
	sl_storage *st = open_storage();
	sl_source *src, *odd;
	rawc c;
	sli_frame f;
	char *text;
	assert_int_equal(sl_source_register(st, "s", "test", 2, 0, &src), 0);
	assert_int_equal(sl_source_register(st, "we\"ird", "test", 1, 0, &odd), 0);
	sl_update up = {.row = {(const uint8_t *)"x", 1}, .time = 3, .diff = 1};
	assert_int_equal(sl_source_append(src, 0, SL_OK, &up, 1), 0);
	assert_int_equal(sl_source_advance(src, 0, 5), 0);
	assert_int_equal(sl_storage_start(st), 0);

	assert_int_equal(rawc_open(&c, sl_storage_port(st)), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	assert_int_equal(rawc_subscribe(&c, 7, 99, sl_source_id(src), 0, 0, 1u << 20), 0);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_OK, &f, 5000), 1);
	/* Everything up to upper 5 reaches the subscriber: its lag drops to 0. */
	int caught_up = 0;
	for (int i = 0; i < 200 && !caught_up; i++) {
		text = report(st);
		caught_up = strstr(text, "sluice_subscription_lag{conn=\"1\",handle=\"7\",source=\"s\","
		                         "worker=\"0\",dataflow=\"99\"} 0\n") != NULL;
		free(text);
		if (!caught_up)
			rawc_next(&c, &f, 20);
	}
	assert_true(caught_up);
	/* A subscription without credit is told nothing: its lag is the whole upper. */
	assert_int_equal(rawc_subscribe(&c, 9, 99, sl_source_id(src), 1, 0, 0), 0);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_OK, &f, 5000), 1);
	assert_int_equal(sl_source_advance(src, 1, 9), 0);
	int lagging = 0;
	for (int i = 0; i < 200 && !lagging; i++) {
		text = report(st);
		lagging = strstr(text, "sluice_subscription_lag{conn=\"1\",handle=\"9\",source=\"s\","
		                       "worker=\"1\",dataflow=\"99\"} 9\n") != NULL;
		free(text);
		if (!lagging)
			usleep(10000);
	}
	assert_true(lagging);
	/* Open now: one connection, two subscriptions; every hosted worker, names escaped. */
	text = report(st);
	assert_non_null(strstr(text, "sluice_subscriptions 2\n"));
	assert_non_null(strstr(text, "sluice_connections 1\n"));
	assert_non_null(strstr(text, "sluice_source_upper{source=\"s\",worker=\"0\"} 5\n"));
	assert_non_null(strstr(text, "sluice_source_upper{source=\"s\",worker=\"1\"} 9\n"));
	assert_non_null(strstr(text, "sluice_connection_subscriptions{conn=\"1\",peer=\"127.0.0.1:"));
	assert_non_null(strstr(text, "sluice_subscription_sent_upper{conn=\"1\",handle=\"7\",source=\"s\","
	                             "worker=\"0\",dataflow=\"99\"} 5\n"));
	assert_non_null(strstr(text, "source=\"we\\\"ird\",worker=\"0\"}"));
	assert_non_null(strstr(text, "sluice_errors_total{kind=\"SL_ENOSOURCE\"} 0\n"));
	free(text);

	/* An error answer is counted by kind. */
	assert_int_equal(rawc_subscribe(&c, 8, 99, 12345, 0, 0, 1u << 20), 0);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_ERROR, &f, 5000), 1);
	/* The Stats frame carries the same report. */
	sli_frame req = {.type = SLI_STATS_REQUEST};
	assert_int_equal(rawc_send(&c, &req), 0);
	assert_int_equal(rawc_expect(&c, SLI_STATS, &f, 5000), 1);
	assert_non_null(memmem(f.u.stats.text.ptr, f.u.stats.text.len,
	                       "sluice_errors_total{kind=\"SL_ENOSOURCE\"} 1\n", 42));
	assert_non_null(memmem(f.u.stats.text.ptr, f.u.stats.text.len, "sluice_subscriptions 2\n", 23));

	/* The worker closes: upper +Inf; once told, the lag is 0 again. */
	assert_int_equal(sl_source_close_worker(src, 0), 0);
	int told = 0;
	for (int i = 0; i < 200 && !told; i++) {
		rawc_next(&c, &f, 20);
		text = report(st);
		told = strstr(text, "sluice_subscription_sent_upper{conn=\"1\",handle=\"7\",source=\"s\","
		                    "worker=\"0\",dataflow=\"99\"} +Inf\n") != NULL;
		if (told) {
			assert_non_null(strstr(text, "sluice_source_upper{source=\"s\",worker=\"0\"} +Inf\n"));
			assert_non_null(strstr(text, "dataflow=\"99\"} 0\n"));
		}
		free(text);
	}
	assert_true(told);

	/* The client goes: no subscription, its bytes stay in the totals. */
	rawc_close(&c);
	int gone = 0;
	for (int i = 0; i < 200 && !gone; i++) {
		text = report(st);
		gone = strstr(text, "sluice_subscriptions 0\n") != NULL &&
		       strstr(text, "sluice_connections 0\n") != NULL;
		if (gone) {
			assert_null(strstr(text, "sluice_bytes_out_total 0\n"));
			assert_non_null(strstr(text, "sluice_connections_accepted_total 1\n"));
		}
		free(text);
		if (!gone)
			usleep(10000);
	}
	assert_true(gone);
	sl_storage_close(st);
}

struct scraper {
	sl_storage *st;
	int ok;
};

static void *scrape_many(void *arg)
{
	struct scraper *s = arg;
	for (int i = 0; i < 50; i++) {
		sli_buf b;
		sli_buf_init(&b);
		if (sli_metrics_report(s->st, &b, 5000) == 0 &&
		    memmem(b.ptr, b.len, "sluice_fsync_seconds_count", 26) != NULL)
			s->ok++;
		sli_buf_fini(&b);
	}
	return NULL;
}

static void test_concurrent_reports(void **state)
{
	sl_storage *st = open_storage();
	sl_source *src;
	assert_int_equal(sl_source_register(st, "s", "test", 1, 0, &src), 0);
	assert_int_equal(sl_storage_start(st), 0);
	struct scraper s[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		s[i] = (struct scraper){st, 0};
		assert_int_equal(pthread_create(&t[i], NULL, scrape_many, &s[i]), 0);
	}
	/* Meanwhile the source appends and advances (waking the loop in between). */
	for (uint64_t k = 1; k <= 500; k++) {
		sl_update up = {.row = {(const uint8_t *)"r", 1}, .time = k, .diff = 1};
		assert_int_equal(sl_source_append(src, 0, SL_OK, &up, 1), 0);
		assert_int_equal(sl_source_advance(src, 0, k + 1), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(s[i].ok, 50);
	}
	sl_storage_close(st);
}

/* A metrics HTTP server on port 0 is stopped by sl_storage_close (no leak, no hang). */
static void test_http_lifecycle(void **state)
{
	sl_storage *st = open_storage();
	int port = 0;
	assert_int_equal(sl_storage_metrics_listen(st, "127.0.0.1:0", &port), 0);
	assert_true(port > 0);
	assert_int_equal(sl_storage_metrics_listen(st, "127.0.0.1:0", NULL), SL_EARG);
	assert_int_equal(sl_storage_start(st), 0);
	/* A GET over a plain socket. */
	char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	int fd = sli_connect_tcp(addr, 5000);
	assert_true(fd >= 0);
	static const char get[] = "GET /metrics HTTP/1.0\r\n\r\n";
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(write(fd, get, sizeof(get) - 1), (ssize_t)sizeof(get) - 1);
	char buf[65536];
	size_t len = 0;
	uint64_t deadline = sli_now_ms() + 5000;
	for (;;) {
		p.events = POLLIN;
		if (sli_now_ms() > deadline || poll(&p, 1, 1000) <= 0)
			break;
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	assert_true(strncmp(buf, "HTTP/1.0 200", 12) == 0 || strncmp(buf, "HTTP/1.1 200", 12) == 0);
	assert_non_null(strstr(buf, "text/plain; version=0.0.4"));
	assert_non_null(strstr(buf, "\r\n\r\n# HELP sluice_connections"));
	sl_storage_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report_needs_the_loop),
		cmocka_unit_test(test_report_contents),
		cmocka_unit_test(test_concurrent_reports),
		cmocka_unit_test(test_http_lifecycle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
