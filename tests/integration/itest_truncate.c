/*
 * itest_truncate.c - cutting a worker's logs back to a time (sli_source_truncate): a real
 * runtime on an ephemeral loopback port, whose logs are read back through a subscription
 * (rawclient.h) and again after reopening the same data directory.  Every row names its
 * collection, time and generation ("old" before the truncation, "new" after), so what a
 * subscriber gets is checked row by row against what the truncation promises.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <sys/stat.h>

#include "log/disklog.h"
#include "rawclient.h"
#include "sluice/storage.h"
#include "storage/replica_hooks.h"

#define SEG_SIZE (128u * 1024u)
#define TIMES 10
#define W 1 /* the worker the tests cut (worker 0 stays untouched) */
#define MAXT 4096 /* times a subscriber's record covers */

/* --- the runtime, in a directory or in memory ---------------------------------------------- */

struct env {
	char dir[64];
	int durable;
	int sync_thread; /* SL_FSYNC_INTERVAL every millisecond instead of SL_FSYNC_NEVER */
	uint64_t retain;
	sl_storage *st;
	sl_source *src;
};

static void env_open(struct env *e)
{
	sl_storage_config cfg;
	sl_storage_config_init(&cfg);
	cfg.listen = "127.0.0.1:0";
	cfg.heartbeat_ms = 100;
	cfg.data_dir = e->durable ? e->dir : NULL;
	cfg.segment_size = SEG_SIZE;
	cfg.fsync = SL_FSYNC_NEVER; /* the truncation syncs whatever the policy */
	if (e->sync_thread) {
		cfg.fsync = SL_FSYNC_INTERVAL;
		cfg.fsync_interval_ms = 1;
	}
	cfg.retain = e->retain;
	assert_int_equal(sl_storage_open(&cfg, &e->st), 0);
	assert_int_equal(sl_source_register(e->st, "s", "test", 2, 0, &e->src), 0);
	assert_int_equal(sl_storage_start(e->st), 0);
}

static void env_close(struct env *e)
{
	sl_storage_close(e->st);
	e->st = NULL;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup_disk(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "/tmp/sluice-trunc-XXXXXX");
	if (mkdtemp(e->dir) == NULL) {
		free(e);
		return -1;
	}
	e->durable = 1;
	*state = e;
	return 0;
}

static int setup_memory(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	if (e->st)
		sl_storage_close(e->st);
	if (e->durable)
		nftw(e->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(e);
	return 0;
}

/* --- writing and reading rows -------------------------------------------------------------- */

/* Appends n rows "GEN-COLL-TIME-I" of `len` bytes at `time` to collection coll of worker w. */
static void put(struct env *e, uint32_t w, sl_collection coll, const char *gen, uint64_t time,
                size_t n, size_t len)
{
	sl_update *ups = calloc(n, sizeof(*ups));
	char *rows = calloc(n, len);
	for (size_t i = 0; i < n; i++) {
		char *r = rows + i * len;
		memset(r, 'x', len);
		int k = snprintf(r, len, "%s-%d-%" PRIu64 "-%zu", gen, (int)coll, time, i);
		r[k] = 'x'; /* no NUL inside the row */
		ups[i] = (sl_update){{(const uint8_t *)r, len}, time, 1};
	}
	assert_int_equal(sl_source_append(e->src, w, coll, ups, n), 0);
	free(rows);
	free(ups);
}

/* The rows the first test writes at each time: big batches (several blocks and segments) at
 * every third time in SL_OK, a few rows otherwise and in SL_ERR. */
static size_t ok_rows(uint64_t t) { return t % 3 == 0 ? 400 : 20; }
#define OK_LEN 400
#define ERR_ROWS 3
#define ERR_LEN 60

struct seen {
	uint64_t frontier[2];
	uint32_t old_rows[2][MAXT];
	uint32_t new_rows[2][MAXT];
	uint32_t bad; /* a row at a time, collection or generation it does not name */
};

static void take_rows(struct seen *s, uint8_t coll, uint64_t time, sl_bytes body)
{
	sl_bytes rest = body;
	int64_t diff;
	sl_bytes row;
	while (sli_updates_next(&rest, &diff, &row) == 1) {
		char gen[4] = "";
		int c = -1;
		uint64_t t = UINT64_MAX;
		char buf[64];
		size_t n = row.len < sizeof(buf) - 1 ? row.len : sizeof(buf) - 1;
		memcpy(buf, row.ptr, n);
		buf[n] = '\0';
		if (sscanf(buf, "%3[a-z]-%d-%" SCNu64, gen, &c, &t) != 3 || c != coll || t != time ||
		    time >= MAXT || diff != 1) {
			s->bad++;
			continue;
		}
		if (strcmp(gen, "old") == 0)
			s->old_rows[coll][time]++;
		else if (strcmp(gen, "new") == 0)
			s->new_rows[coll][time]++;
		else
			s->bad++;
	}
}

/* Subscribes to worker w from 0 and reads until both collections' frontiers reach `upper`
 * (bounded: fails after 20 s), recording every row. */
static void read_all(struct env *e, uint32_t w, uint64_t upper, struct seen *s)
{
	rawc c;
	sli_frame f;
	memset(s, 0, sizeof(*s));
	assert_int_equal(rawc_open(&c, sl_storage_port(e->st)), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	rawc_subscribe(&c, 1, 1, sl_source_id(e->src), w, 0, (uint64_t)1 << 28);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_OK, &f, 5000), 1);
	uint64_t deadline = sli_now_ms() + 20000;
	while (s->frontier[0] < upper || s->frontier[1] < upper) {
		assert_true(sli_now_ms() < deadline);
		int rc = rawc_next(&c, &f, 200);
		if (rc == SL_ETIMEDOUT)
			continue;
		assert_int_equal(rc, 1);
		if (f.type == SLI_PING) {
			sli_frame p = {.type = SLI_PONG};
			p.u.ping.nonce = f.u.ping.nonce;
			rawc_send(&c, &p);
			continue;
		}
		if (f.type != SLI_DATA)
			continue;
		uint8_t coll = f.u.data.collection;
		sl_bytes rest = f.u.data.events;
		sli_event ev;
		while (sli_events_next(&rest, &ev) == 1) {
			if (ev.tag == SLI_EV_MESSAGES) {
				take_rows(s, coll, ev.time, ev.body);
				continue;
			}
			sl_bytes ch = ev.body;
			uint64_t t;
			int64_t d;
			while (sli_changes_next(&ch, &t, &d) == 1)
				if (d > 0)
					s->frontier[coll] = t;
		}
	}
	/* Nothing beyond the frontier follows it. */
	assert_int_equal(s->frontier[0], upper);
	assert_int_equal(s->frontier[1], upper);
	rawc_close(&c);
}

/* Writes the first test's history: times 0..TIMES-1 in both collections, advanced to TIMES. */
static void write_history(struct env *e)
{
	for (uint64_t t = 0; t < TIMES; t++) {
		put(e, W, SL_OK, "old", t, ok_rows(t), OK_LEN);
		put(e, W, SL_ERR, "old", t, ERR_ROWS, ERR_LEN);
		/* worker 0 gets the same, and is never cut */
		put(e, 0, SL_OK, "old", t, 2, 40);
	}
	assert_int_equal(sl_source_advance(e->src, W, TIMES), 0);
	assert_int_equal(sl_source_advance(e->src, 0, TIMES), 0);
}

/* Exactly the old rows at times [0, old_to) and the new rows at times [new_from, new_to). */
static void expect_rows(const struct seen *s, uint64_t old_to, uint64_t new_from, uint64_t new_to,
                        size_t new_ok, size_t new_err)
{
	assert_int_equal(s->bad, 0);
	for (uint64_t t = 0; t < MAXT; t++) {
		assert_int_equal(s->old_rows[SL_OK][t], t < old_to ? ok_rows(t) : 0);
		assert_int_equal(s->old_rows[SL_ERR][t], t < old_to ? ERR_ROWS : 0);
		int in_new = t >= new_from && t < new_to;
		assert_int_equal(s->new_rows[SL_OK][t], in_new ? new_ok : 0);
		assert_int_equal(s->new_rows[SL_ERR][t], in_new ? new_err : 0);
	}
}

static int record_exists(struct env *e)
{
	char path[160];
	snprintf(path, sizeof(path), "%s/sources/s/%d/truncate", e->dir, W);
	return access(path, F_OK) == 0;
}

/* --- the tests ----------------------------------------------------------------------------- */

/* The brief's scenario: cut 0..9 back to 6, read exactly 0..5, append at 6, advance 7, and
 * after a reopen of the same directory (or, in memory, at once) exactly old 0..5 and new 6. */
static void truncate_and_extend(struct env *e)
{
	struct seen s;
	uint64_t upper = 0;
	env_open(e);
	write_history(e);
	assert_int_equal(sli_source_truncate(e->src, W, 6, &upper), 0);
	assert_int_equal(upper, 6);
	assert_int_equal(sl_source_upper(e->src, W), 6);
	if (e->durable)
		assert_false(record_exists(e));
	read_all(e, W, 6, &s);
	expect_rows(&s, 6, 0, 0, 0, 0);
	/* The worker beside it is untouched. */
	assert_int_equal(sl_source_upper(e->src, 0), TIMES);
	read_all(e, 0, TIMES, &s);
	assert_int_equal(s.bad, 0);
	for (uint64_t t = 0; t < TIMES; t++)
		assert_int_equal(s.old_rows[SL_OK][t], 2);

	/* The worker goes on from its new upper: times below it are refused, 6 is taken. */
	sl_update early = {{(const uint8_t *)"x", 1}, 5, 1};
	assert_int_equal(sl_source_append(e->src, W, SL_OK, &early, 1), SL_ETIME);
	put(e, W, SL_OK, "new", 6, 300, OK_LEN);
	put(e, W, SL_ERR, "new", 6, 2, ERR_LEN);
	assert_int_equal(sl_source_advance(e->src, W, 7), 0);
	read_all(e, W, 7, &s);
	expect_rows(&s, 6, 6, 7, 300, 2);
	if (!e->durable)
		return;
	env_close(e);
	env_open(e);
	assert_int_equal(sl_source_upper(e->src, W), 7);
	read_all(e, W, 7, &s);
	expect_rows(&s, 6, 6, 7, 300, 2);
}

static void test_disk(void **state)
{
	truncate_and_extend(*state);
}

static void test_memory(void **state)
{
	truncate_and_extend(*state);
}

/* Blocks out of time order: a block at a later time ahead of one at an earlier time is cut
 * whole, so the upper falls to the earlier block's time (the largest upper that drops
 * nothing kept).  Also across a reopen. */
static void test_out_of_order(void **state)
{
	struct env *e = *state;
	struct seen s;
	uint64_t upper = 0;
	env_open(e);
	/* SL_OK: [0] m2 [6] [2] m5 [5] m7;  SL_ERR: [1] m2 [3] m5 m7 */
	put(e, W, SL_OK, "old", 0, 4, 50);
	put(e, W, SL_ERR, "old", 1, 3, 50);
	assert_int_equal(sl_source_advance(e->src, W, 2), 0);
	put(e, W, SL_OK, "old", 6, 4, 50); /* ahead of its time */
	put(e, W, SL_OK, "old", 2, 4, 50);
	put(e, W, SL_ERR, "old", 3, 3, 50);
	assert_int_equal(sl_source_advance(e->src, W, 5), 0);
	put(e, W, SL_OK, "old", 5, 4, 50);
	assert_int_equal(sl_source_advance(e->src, W, 7), 0);

	assert_int_equal(sli_source_truncate(e->src, W, 4, &upper), 0);
	assert_int_equal(upper, 2);
	read_all(e, W, 2, &s);
	assert_int_equal(s.bad, 0);
	for (uint64_t t = 0; t < MAXT; t++) {
		assert_int_equal(s.old_rows[SL_OK][t], t == 0 ? 4 : 0);
		assert_int_equal(s.old_rows[SL_ERR][t], t == 1 ? 3 : 0);
	}
	if (e->durable) {
		env_close(e);
		env_open(e);
		assert_int_equal(sl_source_upper(e->src, W), 2);
		read_all(e, W, 2, &s);
		assert_int_equal(s.bad, 0);
		for (uint64_t t = 0; t < MAXT; t++) {
			assert_int_equal(s.old_rows[SL_OK][t], t == 0 ? 4 : 0);
			assert_int_equal(s.old_rows[SL_ERR][t], t == 1 ? 3 : 0);
		}
	}
	/* A future block behind the earlier ones only costs itself. */
	put(e, W, SL_OK, "new", 2, 2, 50);
	put(e, W, SL_OK, "new", 9, 2, 50);
	put(e, W, SL_OK, "new", 3, 2, 50);
	assert_int_equal(sl_source_advance(e->src, W, 4), 0);
	assert_int_equal(sli_source_truncate(e->src, W, 3, &upper), 0);
	assert_int_equal(upper, 3);
	read_all(e, W, 3, &s);
	assert_int_equal(s.bad, 0);
	for (uint64_t t = 0; t < MAXT; t++)
		assert_int_equal(s.new_rows[SL_OK][t], t == 2 ? 2 : 0);
}

/* At or above the upper nothing changes; below it with nothing to drop only the upper moves. */
static void test_noop(void **state)
{
	struct env *e = *state;
	struct seen s;
	uint64_t upper = 0;
	env_open(e);
	write_history(e);
	assert_int_equal(sli_source_truncate(e->src, W, TIMES, &upper), 0);
	assert_int_equal(upper, TIMES);
	assert_int_equal(sli_source_truncate(e->src, W, UINT64_MAX - 1, &upper), 0);
	assert_int_equal(upper, TIMES);
	assert_int_equal(sl_source_upper(e->src, W), TIMES);
	read_all(e, W, TIMES, &s);
	expect_rows(&s, TIMES, 0, 0, 0, 0);
	/* Bad arguments. */
	assert_int_equal(sli_source_truncate(e->src, 2, 1, &upper), SL_EARG);
	assert_int_equal(sli_source_truncate(NULL, 0, 1, &upper), SL_EARG);

	/* Nothing at times >= 12 (advanced to 15, rows up to 9): the upper falls to 12 only. */
	assert_int_equal(sl_source_advance(e->src, W, 15), 0);
	assert_int_equal(sli_source_truncate(e->src, W, 12, &upper), 0);
	assert_int_equal(upper, 12);
	read_all(e, W, 12, &s);
	expect_rows(&s, TIMES, 0, 0, 0, 0);
	env_close(e);
	env_open(e);
	assert_int_equal(sl_source_upper(e->src, W), 12);
	read_all(e, W, 12, &s);
	expect_rows(&s, TIMES, 0, 0, 0, 0);
}

/* A subscriber served beyond the cut: the worker is left alone. */
static void test_subscriber_beyond(void **state)
{
	struct env *e = *state;
	struct seen s;
	uint64_t upper = 0;
	env_open(e);
	write_history(e);
	rawc c;
	sli_frame f;
	assert_int_equal(rawc_open(&c, sl_storage_port(e->st)), 0);
	assert_int_equal(rawc_hello(&c, SLI_PROTO_VERSION), 0);
	rawc_subscribe(&c, 1, 1, sl_source_id(e->src), W, 0, (uint64_t)1 << 28);
	assert_int_equal(rawc_expect(&c, SLI_SUBSCRIBE_OK, &f, 5000), 1);
	/* Wait until it was told the frontier TIMES (the storage has sent it everything). */
	uint64_t frontier = 0, deadline = sli_now_ms() + 20000;
	while (frontier < TIMES) {
		assert_true(sli_now_ms() < deadline);
		if (rawc_next(&c, &f, 200) != 1 || f.type != SLI_DATA)
			continue;
		sl_bytes rest = f.u.data.events;
		sli_event ev;
		while (sli_events_next(&rest, &ev) == 1) {
			if (ev.tag != SLI_EV_PROGRESS || f.u.data.collection != SL_OK)
				continue;
			sl_bytes ch = ev.body;
			uint64_t t;
			int64_t d;
			while (sli_changes_next(&ch, &t, &d) == 1)
				if (d > 0)
					frontier = t;
		}
	}
	assert_int_equal(sli_source_truncate(e->src, W, 6, &upper), SL_ETIME);
	assert_int_equal(sl_source_upper(e->src, W), TIMES);
	rawc_close(&c);
	read_all(e, W, TIMES, &s);
	expect_rows(&s, TIMES, 0, 0, 0, 0);
}

/* Below `since` (compaction consolidated that history) the cut is refused; above it, allowed. */
static void test_since(void **state)
{
	struct env *e = *state;
	struct seen s;
	uint64_t upper = 0;
	char path[160];
	e->retain = 3;
	env_open(e);
	write_history(e); /* since becomes TIMES - 3 = 7 once compaction runs */
	snprintf(path, sizeof(path), "%s/sources/s/%d/snapshot", e->dir, W);
	uint64_t deadline = sli_now_ms() + 20000;
	while (access(path, F_OK) != 0) {
		assert_true(sli_now_ms() < deadline);
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(sli_source_truncate(e->src, W, 6, &upper), SL_EARG);
	assert_int_equal(sl_source_upper(e->src, W), TIMES);
	assert_int_equal(sli_source_truncate(e->src, W, 8, &upper), 0);
	assert_int_equal(upper, 8);
	/* From 0: the snapshot (every row below 7, at 7: take_rows counts those as misplaced),
	 * then the log's time 7, and nothing of 8 and 9. */
	read_all(e, W, 8, &s);
	uint32_t consolidated = 0;
	for (uint64_t t = 0; t < 7; t++)
		consolidated += (uint32_t)(ok_rows(t) + ERR_ROWS);
	assert_int_equal(s.bad, consolidated);
	for (uint64_t t = 0; t < MAXT; t++) {
		assert_int_equal(s.old_rows[SL_OK][t], t == 7 ? ok_rows(7) : 0);
		assert_int_equal(s.old_rows[SL_ERR][t], t == 7 ? ERR_ROWS : 0);
	}
	env_close(e);
	env_open(e);
	assert_int_equal(sl_source_upper(e->src, W), 8);
}

/* A crash after the record was written: the cut half done, with a hole zeroed in the middle of
 * what it drops (as a crash of the writeback can leave).  The next open finishes it exactly. */
static void test_crash_after_record(void **state)
{
	struct env *e = *state;
	struct seen s;
	char ldir[160], err[256], rec[160];
	uint64_t cut[2];
	env_open(e);
	write_history(e);
	env_close(e);
	/* Where a truncation at 6 cuts each log (its blocks are in time order here): the first
	 * block reaching 6.  Then zero a stretch in the middle of the ok log's dropped part. */
	for (int coll = 0; coll < 2; coll++) {
		sli_log *log;
		snprintf(ldir, sizeof(ldir), "%s/sources/s/%d/%s", e->dir, W, coll ? "err" : "ok");
		sli_disklog_opts o = {.segment_size = SEG_SIZE};
		assert_int_equal(sli_disklog_open(ldir, &o, &log, err, sizeof(err)), 0);
		uint64_t pos = sli_log_start(log), end = sli_log_end(log);
		cut[coll] = end;
		while (pos < end) {
			sli_block b;
			sli_log_block(log, pos, &b);
			if (b.max_time >= 6) {
				cut[coll] = pos;
				break;
			}
			pos = b.next;
		}
		assert_true(cut[coll] < end);
		if (coll == 0) {
			uint64_t mid = cut[0] + (end - cut[0]) / 2;
			uint64_t base = mid & ~((uint64_t)SEG_SIZE - 1);
			char seg[200];
			snprintf(seg, sizeof(seg), "%s/%016" PRIx64 ".seg", ldir, base);
			int fd = open(seg, O_WRONLY);
			assert_true(fd >= 0);
			static const uint8_t zero[4096];
			assert_int_equal(pwrite(fd, zero, sizeof(zero), (off_t)(mid - base)), sizeof(zero));
			close(fd);
		}
		sli_log_free(log);
	}
	snprintf(rec, sizeof(rec), "%s/sources/s/%d/truncate", e->dir, W);
	FILE *f = fopen(rec, "w");
	assert_non_null(f);
	fprintf(f, "ok %" PRIu64 "\nerr %" PRIu64 "\nupper 6\n", cut[0], cut[1]);
	fclose(f);
	env_open(e);
	assert_false(record_exists(e));
	assert_int_equal(sl_source_upper(e->src, W), 6);
	read_all(e, W, 6, &s);
	expect_rows(&s, 6, 0, 0, 0, 0);
	env_close(e);
	env_open(e);
	assert_int_equal(sl_source_upper(e->src, W), 6);
}

/* Appends and truncations of one worker from two threads while the storage serves and the sync
 * thread syncs every millisecond: each truncation leaves an upper the appender continues from. */
struct racer {
	struct env *e;
	atomic_int stop;
	int appended;
};

static void *append_loop(void *arg)
{
	struct racer *r = arg;
	while (!atomic_load(&r->stop)) {
		uint64_t t = sl_source_upper(r->e->src, W);
		char row[32];
		if (t >= MAXT - 1)
			break;
		int n = snprintf(row, sizeof(row), "new-0-%" PRIu64 "-0", t);
		sl_update u = {{(const uint8_t *)row, (size_t)n}, t, 1};
		/* A truncation between the two may leave the append refused or the advance jumping
		 * over times it dropped: both fine, neither counted. */
		if (sl_source_append(r->e->src, W, SL_OK, &u, 1) == 0 &&
		    sl_source_advance(r->e->src, W, t + 1) == 0)
			r->appended++;
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	struct env *e = *state;
	struct racer r = {.e = e};
	pthread_t tid;
	e->sync_thread = 1;
	env_open(e);
	assert_int_equal(pthread_create(&tid, NULL, append_loop, &r), 0);
	for (int i = 0; i < 200; i++) {
		uint64_t up = sl_source_upper(e->src, W), got = 0;
		uint64_t to = up / 2;
		int rc = sli_source_truncate(e->src, W, to, &got);
		assert_int_equal(rc, 0);
		assert_true(got <= to);
	}
	atomic_store(&r.stop, 1);
	pthread_join(tid, NULL);
	assert_true(r.appended > 0);
	uint64_t up = sl_source_upper(e->src, W);
	struct seen s;
	read_all(e, W, up, &s);
	env_close(e);
	env_open(e);
	assert_int_equal(sl_source_upper(e->src, W), up);
	struct seen again;
	read_all(e, W, up, &again);
	assert_memory_equal(&s, &again, sizeof(s));
	/* At most one row per time (a truncation dropped every copy appended before it at that
	 * time), none at or above the upper. */
	assert_int_equal(s.bad, 0);
	for (uint64_t t = 0; t < MAXT; t++) {
		assert_true(s.new_rows[SL_OK][t] <= 1);
		if (t >= up)
			assert_int_equal(s.new_rows[SL_OK][t], 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_disk, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_memory, setup_memory, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order, setup_memory, teardown),
		cmocka_unit_test_setup_teardown(test_noop, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_subscriber_beyond, setup_memory, teardown),
		cmocka_unit_test_setup_teardown(test_since, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_crash_after_record, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup_disk, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
