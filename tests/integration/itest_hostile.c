/*
 * itest_hostile.c - hostile clients against an in-process storage runtime on 127.0.0.1:0, while
 * a well-behaved compute client keeps receiving a counter's stream.
 *
 * The runtime runs with low limits (handshake 400 ms, idle 1500 ms, 64 subscriptions, 1000
 * Subscribe/Unsubscribe per second with a burst of 200, rows of 1000 bytes, 100 rows a batch)
 * so each misbehaviour meets its limit quickly.  The tests run in order against one runtime:
 * garbage, slowloris, half-open connections, 10,000 connections opened and dropped, a
 * Subscribe/Unsubscribe storm, out-of-range ids, credit overflow, oversized rows, a client that
 * never reads.  The last test checks that the well-behaved client received exactly rows 1..N in
 * order with no gap and no duplicate, and that the process's file descriptors came back exactly
 * to the baseline taken before the first hostile client, and its anonymous memory to within a
 * stated tolerance (see test_zz_after).
 *
 * HOSTILE_CONNS (default 10000) shrinks the connection churn for slow runs (valgrind).
 * Every wait has a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rawclient.h"
#include "sluice/compute.h"
#include "sluice/storage.h"
#include "sources/sources.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RSS_UNRELIABLE 1 /* the sanitizers' allocators keep freed memory on purpose */
#else
#define RSS_UNRELIABLE 0
#endif

#define HANDSHAKE_MS 400
#define IDLE_MS 1500
#define MAX_SUBS 64
#define SUB_RATE 1000
#define SUB_BURST 200
#define MAX_ROW 1000
#define MAX_ROWS 100
/* Anonymous memory (after malloc_trim) may end this much above the baseline.  Observed: 1 to
 * 2.5 MiB (heap fragmentation that trimming cannot return, and the runtimes' own growth while
 * the counter streams).  A leak of any per-connection buffer across the 10,000 connections
 * would be at least 16 KiB each (the input buffer), 160 MB; an exact leak of smaller state is
 * the job of the ASan and valgrind runs, where this check is off (their allocators keep freed
 * memory on purpose). */
#define RSS_TOLERANCE_KB (6 * 1024)

/* ---- the well-behaved client: subscribes both workers of counter "c" and checks every row ---- */

struct good {
	pthread_t tid;
	sl_client *client;
	uint64_t source;
	atomic_int stop;          /* set with target: run until both frontiers reach it */
	_Atomic uint64_t target;
	atomic_int started;       /* both subscriptions have delivered data */
	int joined;
	uint64_t next_row[2];     /* per worker: the next row expected (rows k with (k-1) mod 2 == w) */
	uint64_t frontier[2];
	uint64_t rows;
	char error[256];          /* first violation, or "" */
};

static struct {
	sl_storage *st;
	sli_source_runner *counter;
	sl_source *ingest;
	int port;
	char dir[64];
	struct good good;
	int base_fds;
	long base_rss_kb;
	int conns; /* HOSTILE_CONNS */
} fx;

static void good_fail(struct good *g, const char *fmt, ...)
{
	va_list ap;
	if (g->error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(g->error, sizeof(g->error), fmt, ap);
	va_end(ap);
}

static void *good_run(void *arg)
{
	struct good *g = arg;
	sl_queue *q;
	sl_sub subs[2];
	sl_event ev;

	g->next_row[0] = 1;
	g->next_row[1] = 2;
	if (sl_queue_open(g->client, &q) != 0) {
		good_fail(g, "sl_queue_open failed");
		return NULL;
	}
	for (uint32_t w = 0; w < 2; w++)
		if (sl_subscribe(q, 1, g->source, w, 0, &subs[w]) != 0)
			good_fail(g, "sl_subscribe %u failed", w);
	uint64_t deadline = 0;
	while (!g->error[0]) {
		if (atomic_load(&g->stop)) {
			uint64_t t = atomic_load(&g->target);
			if (g->frontier[0] >= t && g->frontier[1] >= t)
				break;
			if (deadline == 0)
				deadline = sli_now_ms() + 30000;
			else if (sli_now_ms() > deadline) {
				good_fail(g, "frontiers %llu %llu did not reach %llu within 30 s",
				          (unsigned long long)g->frontier[0], (unsigned long long)g->frontier[1],
				          (unsigned long long)t);
				break;
			}
		}
		int rc = sl_queue_next(q, &ev, 100);
		if (rc == 0)
			continue;
		if (rc < 0) {
			good_fail(g, "sl_queue_next: %s", sl_strerror(rc));
			break;
		}
		uint32_t w = ev.worker;
		if (w > 1) {
			good_fail(g, "event for worker %u", w);
			break;
		}
		switch (ev.kind) {
		case SL_EV_SUBSCRIBED:
			break;
		case SL_EV_MESSAGES: {
			sl_iter it;
			sl_bytes row;
			int64_t diff;
			if (ev.collection != SL_OK) {
				good_fail(g, "err collection event");
				break;
			}
			sl_iter_init(&it, &ev);
			while (sl_iter_update(&it, &row, &diff)) {
				char buf[32];
				snprintf(buf, sizeof(buf), "%llu", (unsigned long long)g->next_row[w]);
				if (diff != 1 || ev.time != g->next_row[w] || row.len != strlen(buf) ||
				    memcmp(row.ptr, buf, row.len) != 0) {
					good_fail(g, "worker %u: got row '%.*s' diff %lld at %llu, expected '%s' +1 at %s",
					          w, (int)row.len, (const char *)row.ptr, (long long)diff,
					          (unsigned long long)ev.time, buf, buf);
					break;
				}
				g->next_row[w] += 2;
				g->rows++;
			}
			if (g->rows > 10)
				atomic_store(&g->started, 1);
			break;
		}
		case SL_EV_PROGRESS:
			if (ev.frontier < g->frontier[w])
				good_fail(g, "worker %u: frontier went back", w);
			g->frontier[w] = ev.frontier;
			/* No row below the frontier may still be missing. */
			if (ev.frontier != SL_TIME_CLOSED && g->next_row[w] < ev.frontier &&
			    g->next_row[w] + 1 < ev.frontier)
				good_fail(g, "worker %u: frontier %llu passed missing row %llu", w,
				          (unsigned long long)ev.frontier, (unsigned long long)g->next_row[w]);
			break;
		case SL_EV_RECONNECTED:
			good_fail(g, "reconnected: the connection was lost");
			break;
		default:
			good_fail(g, "unexpected event kind %d (code %d: %s)", (int)ev.kind, ev.code,
			          ev.message ? ev.message : "");
			break;
		}
	}
	sl_queue_close(q);
	return NULL;
}

/* ---- process measurements ---- */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

/* RssAnon: heap and stacks.  The logs' segments are file mappings (RssFile) and grow with the
 * counter's stream whatever the clients do, so they are left out. */
static long rss_anon_kb(void)
{
	/* Free heap memory goes back to the kernel first, so what is measured is memory in use
	 * (and the arenas' fragmentation), not what malloc keeps cached for reuse. */
	malloc_trim(0);
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Waits (at most 10 s) until the descriptor count is back at the baseline. */
static int wait_fds_baseline(void)
{
	uint64_t deadline = sli_now_ms() + 10000;
	int n;
	while ((n = count_fds()) != fx.base_fds && sli_now_ms() < deadline)
		usleep(20000);
	return n;
}

/* ---- helpers ---- */

static int raw_connect(void)
{
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", fx.port);
	return sli_connect_tcp(addr, 5000);
}

/* The connection is alive and in order: ListSources is answered (every earlier request was). */
static void assert_alive(rawc *c)
{
	sli_frame f = {.type = SLI_LIST_SOURCES};
	assert_int_equal(rawc_send(c, &f), 0);
	for (;;) {
		int rc = rawc_next(c, &f, 5000);
		assert_int_equal(rc, 1);
		if (f.type == SLI_SOURCES)
			return;
		if (f.type == SLI_ERROR)
			fail_msg("unexpected Error %d (fatal %d) before Sources", f.u.error.code, f.u.error.fatal);
		if (f.type == SLI_PING) {
			sli_frame p = {.type = SLI_PONG};
			p.u.ping.nonce = f.u.ping.nonce;
			rawc_send(c, &p);
		}
	}
}

/* Expects a fatal Error with `code`, then the close, within timeout_ms. */
static void expect_fatal(rawc *c, int code, int timeout_ms)
{
	sli_frame f;
	assert_int_equal(rawc_expect(c, SLI_ERROR, &f, timeout_ms), 1);
	if (f.u.error.code != code)
		fail_msg("expected Error %d, got %d (%.*s)", code, f.u.error.code,
		         (int)f.u.error.message.len, (const char *)f.u.error.message.ptr);
	assert_int_equal(f.u.error.fatal, 1);
	int rc;
	while ((rc = rawc_next(c, &f, timeout_ms)) == 1)
		;
	assert_int_equal(rc, 0); /* EOF, not a timeout */
}

static void send_append(rawc *c, uint64_t batch, uint64_t source, uint32_t rows, size_t rowlen)
{
	uint8_t *row = malloc(rowlen + 1);
	assert_non_null(row);
	c->out.len = 0;
	ssize_t off = sli_append_begin(&c->out, batch, source, SLI_APPEND_LAST);
	assert_true(off >= 0);
	for (uint32_t i = 0; i < rows; i++) {
		memset(row, 'a' + (int)(i % 26), rowlen);
		/* distinct rows: the first bytes carry the index */
		snprintf((char *)row, rowlen + 1 > 12 ? 12 : rowlen + 1, "%u", i);
		if (rowlen > 0)
			row[rowlen - 1] = 'z';
		assert_int_equal(sli_put_update(&c->out, 1, (sl_bytes){row, rowlen}), 0);
	}
	sli_append_end(&c->out, (size_t)off, rows);
	assert_int_equal(rawc_send_raw(c, c->out.ptr, c->out.len), 0);
	free(row);
}

/* ---- setup ---- */

static void print_notice(void *arg, const char *msg)
{
	fprintf(stderr, "storage: %s\n", msg);
}

static int group_setup(void **state)
{
	sl_storage_config cfg;
	sl_client_config ccfg;
	char err[256];
	struct rlimit rl;
	const char *e = getenv("HOSTILE_CONNS");

	fx.conns = e ? atoi(e) : 10000;
	if (fx.conns <= 0)
		fx.conns = 10000;
	/* 10,000 connections in batches of 250: both ends are in this process. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 2048 && rl.rlim_max > rl.rlim_cur) {
		rl.rlim_cur = rl.rlim_max < 2048 ? rl.rlim_max : 2048;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/sluice-hostile.XXXXXX");
	assert_non_null(mkdtemp(fx.dir));
	sl_storage_config_init(&cfg);
	cfg.listen = "127.0.0.1:0";
	cfg.data_dir = fx.dir;
	cfg.segment_size = 1u << 20;
	cfg.fsync = SL_FSYNC_NEVER;
	cfg.heartbeat_ms = 100;
	cfg.idle_timeout_ms = IDLE_MS;
	cfg.handshake_timeout_ms = HANDSHAKE_MS;
	cfg.max_connections = 512;
	cfg.max_subscriptions = MAX_SUBS;
	cfg.subscribe_rate = SUB_RATE;
	cfg.subscribe_burst = SUB_BURST;
	cfg.max_row = MAX_ROW;
	cfg.max_batch_rows = MAX_ROWS;
	cfg.warn = print_notice;
	assert_int_equal(sl_storage_open(&cfg, &fx.st), 0);
	if (sli_source_start(fx.st, "c=counter,workers=2,rate=400", &fx.counter, err, sizeof(err)) != 0)
		fail_msg("counter: %s", err);
	assert_int_equal(sl_source_register(fx.st, "in", "ingest", 2, SL_SOURCE_INGEST, &fx.ingest), 0);
	assert_int_equal(sl_storage_start(fx.st), 0);
	fx.port = sl_storage_port(fx.st);

	char server[64];
	snprintf(server, sizeof(server), "127.0.0.1:%d", fx.port);
	sl_client_config_init(&ccfg);
	ccfg.server = server;
	ccfg.heartbeat_ms = 200;
	assert_int_equal(sl_client_open(&ccfg, &fx.good.client), 0);
	fx.good.source = sl_source_id(sli_source_handle(fx.counter));
	assert_int_equal(pthread_create(&fx.good.tid, NULL, good_run, &fx.good), 0);
	uint64_t deadline = sli_now_ms() + 10000;
	while (!atomic_load(&fx.good.started) && sli_now_ms() < deadline)
		usleep(10000);
	assert_true(atomic_load(&fx.good.started));

	/* Warm up what a first connection allocates once (the loop's handler table grows, the
	 * network thread's heap arena), so the baseline is the steady state. */
	for (int i = 0; i < 300; i++) {
		int fd = raw_connect();
		assert_true(fd >= 0);
		close(fd);
	}
	usleep(200000);
	fx.base_fds = wait_fds_baseline();
	fx.base_fds = count_fds();
	fx.base_rss_kb = rss_anon_kb();
	print_message("baseline: %d fds, RssAnon %ld kB\n", fx.base_fds, fx.base_rss_kb);
	*state = &fx;
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];
	if (!fx.good.joined) {
		atomic_store(&fx.good.target, 0);
		atomic_store(&fx.good.stop, 1);
		pthread_join(fx.good.tid, NULL);
	}
	sl_client_close(fx.good.client);
	sli_source_stop(fx.counter);
	sl_storage_close(fx.st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", fx.dir);
	return 0;
}

/* ---- the hostile clients ---- */

/* Bytes that are not the protocol: a fatal Error, then the close, on every connection. */
static void test_garbage(void **state)
{
	unsigned seed = 12345;
	for (int i = 0; i < 40; i++) {
		rawc c;
		uint8_t junk[4096];
		assert_int_equal(rawc_open(&c, fx.port), 0);
		if (i % 2 == 1)
			assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0); /* garbage after Hello */
		for (size_t k = 0; k < sizeof(junk); k++)
			junk[k] = (uint8_t)(rand_r(&seed) >> 7);
		if (i % 4 < 2) {
			/* a plausible length (under max_frame) with an unknown type */
			junk[0] = 40, junk[1] = junk[2] = junk[3] = 0, junk[4] = 0xee;
		}
		rawc_send_raw(&c, junk, sizeof(junk)); /* the server may close before taking it all */
		sli_frame f;
		int rc = rawc_expect(&c, SLI_ERROR, &f, 5000);
		assert_int_equal(rc, 1);
		assert_int_equal(f.u.error.fatal, 1);
		assert_true(f.u.error.code == SL_EPROTO || f.u.error.code == SL_ETOOBIG);
		while ((rc = rawc_next(&c, &f, 5000)) == 1)
			;
		assert_int_equal(rc, 0);
		rawc_close(&c);
	}
}

/* Slowloris: a Hello trickled a byte at a time never completes the handshake in time; each
 * connection is closed with SL_ETIMEDOUT within the handshake timeout plus a tick. */
static void test_slowloris(void **state)
{
	enum { N = 20 };
	rawc c[N];
	sli_frame hello = {.type = SLI_HELLO};
	sli_buf hb;
	int closed[N] = {0}, nclosed = 0;

	hello.u.hello.magic = SLI_MAGIC;
	hello.u.hello.version = SLI_PROTO_VERSION;
	hello.u.hello.name = (sl_bytes){(const uint8_t *)"slowloris", 9};
	sli_buf_init(&hb);
	assert_int_equal(sli_frame_encode(&hb, &hello), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(rawc_open(&c[i], fx.port), 0);
	uint64_t start = sli_now_ms();
	size_t sent = 0;
	while (nclosed < N && sli_now_ms() - start < 5000) {
		/* one byte on every connection, then a pause: 20 bytes take 2 s, the timeout 400 ms */
		for (int i = 0; i < N && sent < hb.len; i++)
			if (!closed[i])
				send(c[i].fd, hb.ptr + sent, 1, MSG_NOSIGNAL);
		sent++;
		usleep(100000);
		for (int i = 0; i < N; i++) {
			struct pollfd pf = {.fd = c[i].fd, .events = POLLIN};
			if (closed[i] || poll(&pf, 1, 0) != 1)
				continue;
			expect_fatal(&c[i], SL_ETIMEDOUT, 2000);
			closed[i] = 1;
			nclosed++;
		}
	}
	uint64_t took = sli_now_ms() - start;
	print_message("slowloris: %d of %d closed after %llu ms, %zu of %zu Hello bytes sent\n", nclosed,
	              N, (unsigned long long)took, sent, hb.len);
	assert_int_equal(nclosed, N);
	assert_true(sent < hb.len); /* they were cut off before the Hello could complete */
	assert_true(took < HANDSHAKE_MS + 1500);
	for (int i = 0; i < N; i++)
		rawc_close(&c[i]);
	sli_buf_fini(&hb);
}

/* Half-open: connected and silent (closed at the handshake timeout), or half a frame after
 * Hello and then silence (closed at the idle timeout). */
static void test_half_open(void **state)
{
	enum { N = 10 };
	rawc silent[N], half[N];
	uint8_t part[3] = {40, 0, 0};
	uint64_t start = sli_now_ms();

	for (int i = 0; i < N; i++) {
		assert_int_equal(rawc_open(&silent[i], fx.port), 0);
		assert_int_equal(rawc_open(&half[i], fx.port), 0);
		assert_int_equal(rawc_hello(&half[i], SLI_PROTO_VERSION), 0);
		assert_int_equal(rawc_send_raw(&half[i], part, sizeof(part)), 0);
	}
	for (int i = 0; i < N; i++)
		expect_fatal(&silent[i], SL_ETIMEDOUT, 3000);
	print_message("silent connections closed after %llu ms\n",
	              (unsigned long long)(sli_now_ms() - start));
	for (int i = 0; i < N; i++) {
		/* Pings from the server are skipped, never answered: the client is silent. */
		sli_frame f;
		int rc;
		for (;;) {
			rc = rawc_next(&half[i], &f, 5000);
			assert_int_equal(rc, 1);
			if (f.type != SLI_PING)
				break;
		}
		assert_int_equal(f.type, SLI_ERROR);
		assert_int_equal(f.u.error.code, SL_EIDLE);
		assert_int_equal(f.u.error.fatal, 1);
		while ((rc = rawc_next(&half[i], &f, 5000)) == 1)
			;
		assert_int_equal(rc, 0);
	}
	uint64_t took = sli_now_ms() - start;
	print_message("half-frame connections closed after %llu ms\n", (unsigned long long)took);
	assert_true(took >= IDLE_MS);
	assert_true(took < IDLE_MS + 3000);
	for (int i = 0; i < N; i++) {
		rawc_close(&silent[i]);
		rawc_close(&half[i]);
	}
}

/* 10,000 connections opened and dropped, 250 at a time: silent ones, ones that say Hello, ones
 * that send half a frame, some closed with a reset.  Every server-side descriptor is released. */
static void test_connection_churn(void **state)
{
	enum { BATCH = 250 };
	int fds[BATCH];
	uint64_t start = sli_now_ms();
	sli_buf hb;
	sli_frame hello = {.type = SLI_HELLO};

	hello.u.hello.magic = SLI_MAGIC;
	hello.u.hello.version = SLI_PROTO_VERSION;
	sli_buf_init(&hb);
	assert_int_equal(sli_frame_encode(&hb, &hello), 0);
	for (int done = 0; done < fx.conns; done += BATCH) {
		int n = fx.conns - done < BATCH ? fx.conns - done : BATCH;
		for (int i = 0; i < n; i++) {
			fds[i] = raw_connect();
			if (fds[i] < 0)
				fail_msg("connection %d: %s", done + i, sl_strerror(fds[i]));
			switch ((done + i) % 4) {
			case 1:
				send(fds[i], hb.ptr, hb.len, MSG_NOSIGNAL);
				break;
			case 2:
				send(fds[i], hb.ptr, hb.len / 2, MSG_NOSIGNAL);
				break;
			case 3: {
				struct linger lg = {1, 0}; /* close with RST */
				setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
				break;
			}
			}
		}
		for (int i = 0; i < n; i++)
			close(fds[i]);
		assert_true(sli_now_ms() - start < 120000);
	}
	sli_buf_fini(&hb);
	int n = wait_fds_baseline();
	print_message("%d connections opened and dropped in %llu ms; fds %d (baseline %d)\n", fx.conns,
	              (unsigned long long)(sli_now_ms() - start), n, fx.base_fds);
	assert_int_equal(n, fx.base_fds);
}

/* Over --max-connections: Error(SL_ELIMIT) "too many connections", then the close; once one
 * closes, a new connection is served again.  (Its own runtime: the shared one allows 512.) */
static void test_max_connections(void **state)
{
	sl_storage_config cfg;
	sl_storage *st;
	rawc c[3], extra;
	sli_frame f;

	sl_storage_config_init(&cfg);
	cfg.listen = "127.0.0.1:0";
	cfg.max_connections = 3;
	assert_int_equal(sl_storage_open(&cfg, &st), 0);
	assert_int_equal(sl_storage_start(st), 0);
	int port = sl_storage_port(st);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rawc_open(&c[i], port), 0);
		assert_int_equal(rawc_hello(&c[i], SLI_PROTO_VERSION), 0);
	}
	for (int k = 0; k < 5; k++) {
		assert_int_equal(rawc_open(&extra, port), 0);
		assert_int_equal(rawc_next(&extra, &f, 5000), 1);
		assert_int_equal(f.type, SLI_ERROR);
		assert_int_equal(f.u.error.code, SL_ELIMIT);
		assert_int_equal(f.u.error.fatal, 1);
		assert_non_null(memmem(f.u.error.message.ptr, f.u.error.message.len, "too many connections", 20));
		assert_int_equal(rawc_next(&extra, &f, 5000), 0);
		rawc_close(&extra);
	}
	rawc_close(&c[0]);
	/* The server notices the close at its next loop round: bounded retries. */
	int ok = 0;
	for (int tries = 0; tries < 100 && !ok; tries++) {
		assert_int_equal(rawc_open(&extra, port), 0);
		ok = rawc_hello(&extra, SLI_PROTO_VERSION) == 0;
		rawc_close(&extra);
		if (!ok)
			usleep(20000);
	}
	assert_true(ok);
	rawc_close(&c[1]);
	rawc_close(&c[2]);
	sl_storage_close(st);
}

static void encode_sub_unsub(sli_buf *b, uint32_t handle, uint64_t dataflow, uint64_t source)
{
	sli_frame s = {.type = SLI_SUBSCRIBE};
	s.u.subscribe = (sli_subscribe){handle, dataflow, source, 0, 0, 1 << 17};
	assert_int_equal(sli_frame_encode(b, &s), 0);
	sli_frame u = {.type = SLI_UNSUBSCRIBE};
	u.u.unsubscribe = (sli_unsubscribe){dataflow, source, 0};
	assert_int_equal(sli_frame_encode(b, &u), 0);
}

/* A Subscribe/Unsubscribe storm: within the burst every request is answered; past it the
 * connection gets Error(SL_ELIMIT) and is closed.  A connection that stays under the rate, and
 * one that holds more than max_subscriptions, are unharmed. */
static void test_subscribe_storm(void **state)
{
	uint64_t src = sl_source_id(sli_source_handle(fx.counter));
	rawc c;
	sli_frame f;

	/* Under the limit: 80 pairs = 160 requests < burst 200. */
	assert_int_equal(rawc_open(&c, fx.port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	c.out.len = 0;
	for (uint32_t i = 0; i < 80; i++)
		encode_sub_unsub(&c.out, i, 100 + i, src);
	assert_int_equal(rawc_send_raw(&c, c.out.ptr, c.out.len), 0);
	for (uint32_t i = 0; i < 80; i++) {
		assert_int_equal(rawc_expect(&c, SLI_UNSUBSCRIBE_OK, &f, 5000), 1);
		assert_int_equal(f.u.unsubscribe_ok.handle, i);
	}
	assert_alive(&c);
	rawc_close(&c);

	/* The storm: 5000 pairs at once.  At most burst + rate * elapsed are served. */
	assert_int_equal(rawc_open(&c, fx.port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	c.out.len = 0;
	for (uint32_t i = 0; i < 5000; i++)
		encode_sub_unsub(&c.out, i, 100 + i, src);
	uint64_t start = sli_now_ms();
	rawc_send_raw(&c, c.out.ptr, c.out.len); /* may be cut short by the close */
	int answered = 0, rc;
	for (;;) {
		rc = rawc_next(&c, &f, 5000);
		assert_int_equal(rc, 1);
		if (f.type == SLI_SUBSCRIBE_OK || f.type == SLI_UNSUBSCRIBE_OK)
			answered++;
		else if (f.type == SLI_ERROR)
			break;
	}
	uint64_t elapsed = sli_now_ms() - start;
	assert_int_equal(f.u.error.code, SL_ELIMIT);
	assert_int_equal(f.u.error.fatal, 1);
	while ((rc = rawc_next(&c, &f, 5000)) == 1)
		;
	assert_int_equal(rc, 0);
	print_message("storm: %d requests answered in %llu ms before the close\n", answered,
	              (unsigned long long)elapsed);
	assert_true(answered >= SUB_BURST - 1);
	assert_true((uint64_t)answered <= SUB_BURST + SUB_RATE * (elapsed + 1) / 1000 + 1);
	rawc_close(&c);

	/* max_subscriptions: the 65th live subscription is refused, the connection goes on. */
	assert_int_equal(rawc_open(&c, fx.port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	for (uint32_t i = 0; i <= MAX_SUBS; i++)
		assert_int_equal(rawc_subscribe(&c, i, 500 + i, src, i % 2, 0, 0), 0);
	int ok = 0, refused = 0;
	while (ok + refused < MAX_SUBS + 1) {
		assert_int_equal(rawc_next(&c, &f, 5000), 1);
		if (f.type == SLI_SUBSCRIBE_OK) {
			ok++;
		} else if (f.type == SLI_SUBSCRIBE_ERROR) {
			assert_int_equal(f.u.subscribe_error.code, SL_ELIMIT);
			assert_int_equal(f.u.subscribe_error.handle, MAX_SUBS);
			refused++;
		}
	}
	assert_int_equal(ok, MAX_SUBS);
	assert_int_equal(refused, 1);
	assert_alive(&c);
	rawc_close(&c);
}

/* Ids that name nothing: each request gets its own error and the connection goes on. */
static void test_out_of_range_ids(void **state)
{
	uint64_t src = sl_source_id(sli_source_handle(fx.counter));
	rawc c;
	sli_frame f;

	assert_int_equal(rawc_open(&c, fx.port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);

	rawc_subscribe(&c, 1, 1, 987654321, 0, 0, 1 << 17);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.subscribe_error.code, SL_ENOSOURCE);
	rawc_subscribe(&c, 2, 1, src, 2, 0, 1 << 17);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.subscribe_error.code, SL_ENOWORKER);
	rawc_subscribe(&c, 3, 1, src, UINT32_MAX, 0, 1 << 17);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.subscribe_error.code, SL_ENOWORKER);

	rawc_credit(&c, 77, 1000);
	assert_int_equal(rawc_expect(&c, SLI_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.error.code, SL_EBADHANDLE);
	assert_int_equal(f.u.error.fatal, 0);

	sli_frame u = {.type = SLI_UNSUBSCRIBE};
	u.u.unsubscribe = (sli_unsubscribe){42, src, 0};
	rawc_send(&c, &u);
	assert_int_equal(rawc_expect(&c, SLI_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.error.code, SL_ENOTSUB);
	assert_int_equal(f.u.error.fatal, 0);

	/* A duplicate handle, then a duplicate triple. */
	rawc_subscribe(&c, 5, 9, src, 0, 0, 0);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_OK, &f, 5000), 1);
	rawc_subscribe(&c, 5, 10, src, 1, 0, 0);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.subscribe_error.code, SL_EDUPLICATE);
	rawc_subscribe(&c, 6, 9, src, 0, 0, 0);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.subscribe_error.code, SL_EDUPLICATE);

	/* Append to an unknown source. */
	send_append(&c, 3, 987654321, 1, 5);
	assert_int_equal(rawc_expect(&c, SLI_APPEND_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.append_error.code, SL_ENOSOURCE);
	assert_alive(&c);
	rawc_close(&c);
}

/* Credit past the limit (2^62) in a Subscribe or a Credit is refused; credit past u32 is fine. */
static void test_credit_overflow(void **state)
{
	uint64_t src = sl_source_id(sli_source_handle(fx.counter));
	rawc c;
	sli_frame f;

	assert_int_equal(rawc_open(&c, fx.port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	rawc_subscribe(&c, 1, 1, src, 0, 0, UINT64_MAX);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.subscribe_error.code, SL_ECREDIT);

	/* Zero credit: nothing flows; then two grants of u32 max (past u32, far under 2^62). */
	rawc_subscribe(&c, 2, 1, src, 0, 0, 0);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_OK, &f, 5000), 1);
	rawc_credit(&c, 2, UINT32_MAX);
	rawc_credit(&c, 2, UINT32_MAX);
	assert_int_equal(rawc_expect(&c, SLI_DATA, &f, 5000), 1);
	assert_int_equal(f.u.data.handle, 2);
	/* Stop the flood (the whole history) before the next checks; from here on, subscriptions
	 * start in the future so no Data comes between the answers. */
	sli_frame u = {.type = SLI_UNSUBSCRIBE};
	u.u.unsubscribe = (sli_unsubscribe){1, src, 0};
	rawc_send(&c, &u);
	assert_int_equal(rawc_expect(&c, SLI_UNSUBSCRIBE_OK, &f, 10000), 1);
	rawc_subscribe(&c, 2, 1, src, 0, (uint64_t)1 << 40, 0);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_OK, &f, 5000), 1);
	rawc_credit(&c, 2, UINT32_MAX);
	rawc_credit(&c, 2, UINT32_MAX);
	/* Then past 2^62 and past u64: refused, not fatal, and the credit is unchanged. */
	rawc_credit(&c, 2, (uint64_t)1 << 62);
	assert_int_equal(rawc_expect(&c, SLI_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.error.code, SL_ECREDIT);
	assert_int_equal(f.u.error.fatal, 0);
	rawc_credit(&c, 2, UINT64_MAX);
	assert_int_equal(rawc_expect(&c, SLI_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.error.code, SL_ECREDIT);
	assert_int_equal(f.u.error.fatal, 0);
	/* A subscription at the limit exactly; then a grant past it (its first PROGRESS, moving
	 * the capability to `from`, has used a few dozen bytes of the credit). */
	rawc_subscribe(&c, 3, 1, src, 1, (uint64_t)1 << 40, (uint64_t)1 << 62);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_OK, &f, 5000), 1);
	rawc_credit(&c, 3, 1u << 20);
	assert_int_equal(rawc_expect(&c, SLI_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.error.code, SL_ECREDIT);
	assert_alive(&c);
	rawc_close(&c);
}

/* Rows over --max-row and batches over --max-batch-rows are refused with AppendError; a row of
 * exactly the limit is taken; an update whose length runs past its frame is a fatal EPROTO. */
static void test_oversized_append(void **state)
{
	uint64_t src = sl_source_id(fx.ingest);
	rawc c;
	sli_frame f;

	assert_int_equal(rawc_open(&c, fx.port), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	send_append(&c, 1, src, 3, MAX_ROW + 1);
	assert_int_equal(rawc_expect(&c, SLI_APPEND_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.append_error.batch, 1);
	assert_int_equal(f.u.append_error.code, SL_ETOOBIG);
	send_append(&c, 2, src, 1, 60000);
	assert_int_equal(rawc_expect(&c, SLI_APPEND_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.append_error.code, SL_ETOOBIG);
	send_append(&c, 3, src, MAX_ROWS + 1, 10);
	assert_int_equal(rawc_expect(&c, SLI_APPEND_ERROR, &f, 5000), 1);
	assert_int_equal(f.u.append_error.batch, 3);
	assert_int_equal(f.u.append_error.code, SL_ETOOBIG);
	send_append(&c, 4, src, MAX_ROWS, MAX_ROW);
	assert_int_equal(rawc_expect(&c, SLI_APPEND_OK, &f, 5000), 1);
	assert_int_equal(f.u.append_ok.batch, 4);
	assert_alive(&c);

	/* One update claiming a 4 GiB row inside a small frame. */
	c.out.len = 0;
	ssize_t off = sli_append_begin(&c.out, 5, src, SLI_APPEND_LAST);
	sli_put_update(&c.out, 1, (sl_bytes){(const uint8_t *)"abcd", 4});
	sli_append_end(&c.out, (size_t)off, 1);
	sli_set_u32(c.out.ptr + c.out.len - 8, UINT32_MAX); /* the row's length field */
	assert_int_equal(rawc_send_raw(&c, c.out.ptr, c.out.len), 0);
	expect_fatal(&c, SL_EPROTO, 5000);
	rawc_close(&c);
}

/* A client that asks and never reads: once its unread answers pass 4 x out_high_water the
 * server stops reading it, so the client's sends block; its memory stays bounded. */
static void test_never_reads(void **state)
{
	int fd = raw_connect();
	sli_buf b;
	sli_frame f = {.type = SLI_LIST_SOURCES};
	sli_frame hello = {.type = SLI_HELLO};
	int64_t total = 0;

	assert_true(fd >= 0);
	hello.u.hello.magic = SLI_MAGIC;
	hello.u.hello.version = SLI_PROTO_VERSION;
	sli_buf_init(&b);
	assert_int_equal(sli_frame_encode(&b, &hello), 0);
	assert_int_equal(send(fd, b.ptr, b.len, MSG_NOSIGNAL), (ssize_t)b.len);
	b.len = 0;
	for (int i = 0; i < 4096; i++)
		assert_int_equal(sli_frame_encode(&b, &f), 0);
	uint64_t start = sli_now_ms(), blocked_since = 0;
	int closed = 0;
	while (sli_now_ms() - start < 20000) {
		ssize_t n = send(fd, b.ptr, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			total += n;
			blocked_since = 0;
			continue;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			closed = 1; /* the idle timeout: the server stopped reading long ago */
			break;
		}
		assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
		if (blocked_since == 0)
			blocked_since = sli_now_ms();
		else if (sli_now_ms() - blocked_since > 500)
			break;
		usleep(20000);
	}
	print_message("never-reading client: sent %lld bytes of requests before the server stopped "
	              "reading (%s)\n", (long long)total, closed ? "then closed it" : "sends block");
	assert_true(closed || (blocked_since != 0 && sli_now_ms() - blocked_since > 500));
	/* Bounded: the requests it got in answer to are at most what 4 MiB of output (plus
	 * socket buffers, a few MiB) allows, far from 20 s of sending. */
	assert_true(total < (64 << 20));
	sli_buf_fini(&b);
	close(fd);
}

/* The well-behaved client got its whole stream, in order; fds and memory are back. */
static void test_zz_after(void **state)
{
	/* Measured while the well-behaved client still runs, as the baseline was. */
	int n = wait_fds_baseline();
	assert_int_equal(n, fx.base_fds);
	long rss = rss_anon_kb();
	print_message("RssAnon: baseline %ld kB, now %ld kB (tolerance %d kB%s)\n", fx.base_rss_kb, rss,
	              RSS_TOLERANCE_KB, RSS_UNRELIABLE || getenv("HOSTILE_NO_RSS") ? ", not checked here" : "");
	if (!RSS_UNRELIABLE && getenv("HOSTILE_NO_RSS") == NULL)
		assert_true(rss <= fx.base_rss_kb + RSS_TOLERANCE_KB);
	uint64_t target = sl_source_upper(sli_source_handle(fx.counter), 0);
	uint64_t t1 = sl_source_upper(sli_source_handle(fx.counter), 1);
	if (t1 < target)
		target = t1;
	atomic_store(&fx.good.target, target);
	atomic_store(&fx.good.stop, 1);
	assert_int_equal(pthread_join(fx.good.tid, NULL), 0);
	fx.good.joined = 1;
	if (fx.good.error[0])
		fail_msg("well-behaved client: %s", fx.good.error);
	/* Rows 1..target-1 exactly: worker w had rows w+1, w+3, ... below its frontier. */
	print_message("well-behaved client: %llu rows, frontiers %llu %llu (target %llu)\n",
	              (unsigned long long)fx.good.rows, (unsigned long long)fx.good.frontier[0],
	              (unsigned long long)fx.good.frontier[1], (unsigned long long)target);
	assert_true(fx.good.rows >= target - 1);
	assert_true(fx.good.next_row[0] >= target && fx.good.next_row[1] >= target);
	assert_true(target > 1000); /* it streamed all along (400 ticks/s) */

}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_slowloris),
		cmocka_unit_test(test_half_open),
		cmocka_unit_test(test_connection_churn),
		cmocka_unit_test(test_max_connections),
		cmocka_unit_test(test_subscribe_storm),
		cmocka_unit_test(test_out_of_range_ids),
		cmocka_unit_test(test_credit_overflow),
		cmocka_unit_test(test_oversized_append),
		cmocka_unit_test(test_never_reads),
		cmocka_unit_test(test_zz_after),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
