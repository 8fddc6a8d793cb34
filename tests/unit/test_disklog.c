/*
 * test_disklog.c - the durable log (src/log/disklog.c) and its CRC-32C (src/log/crc32c.c).
 *
 * Every test works in its own mkdtemp directory under /tmp, removed at the end.  Blocks carry
 * pseudo-random bytes derived from their index, so any block read back can be checked without
 * keeping a copy; a model (struct model) records where each block went.
 *
 * The ENOSPC test mounts a 3 MiB tmpfs when it can (root) and otherwise injects the failure
 * through sli_disklog_opts.allocate.  The crash test forks writers and SIGKILLs them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log/crc32c.h"
#include "log/disklog.h"
#include "log/log.h"
#include "proto/proto.h"

#define SEG ((uint64_t)1 << 20)
#define SEG_SMALL SLI_DISKLOG_SEGMENT_MIN

/* --- helpers ------------------------------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Each test's directory: made by setup, removed by teardown (which cmocka runs also after a
 * failed test), with the tmpfs of the ENOSPC test unmounted first. */
typedef struct fixture {
	char dir[64];
	int mounted;
} fixture;

static int fx_setup(void **state)
{
	fixture *fx = calloc(1, sizeof(*fx));
	if (fx == NULL)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/sluice-disklog-XXXXXX");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	fixture *fx = *state;
	if (fx->mounted)
		umount2(fx->dir, MNT_DETACH);
	rm_rf(fx->dir);
	free(fx);
	return 0;
}

static const char *fx_dir(void **state)
{
	return ((fixture *)*state)->dir;
}

static char *path_of(const char *dir, const char *name)
{
	static char buf[4][1024];
	static int k;
	char *p = buf[k++ & 3];
	snprintf(p, 1024, "%s/%s", dir, name);
	return p;
}

static const char *seg_file(uint64_t base)
{
	static char buf[4][32];
	static int k;
	char *p = buf[k++ & 3];
	snprintf(p, 32, "%016" PRIx64 ".seg", base);
	return p;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static void fill(uint8_t *p, uint32_t n, uint64_t seed)
{
	uint64_t s = seed * 0x2545f4914f6cdd1du + 1;
	for (uint32_t i = 0; i < n; i += 8) {
		uint64_t v = splitmix(&s);
		memcpy(p + i, &v, n - i < 8 ? n - i : 8);
	}
}

/* What was appended: data blocks (seed, len) and upper markers (len 0, upper). */
typedef struct rec {
	uint64_t pos;
	uint32_t len;
	uint64_t seed; /* data: content seed and min_time; marker: the upper */
} rec;

typedef struct model {
	rec *r;
	size_t n, cap;
	uint64_t upper; /* last marker */
} model;

static void model_push(model *m, rec r)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 256;
		m->r = realloc(m->r, m->cap * sizeof(*m->r));
		assert_non_null(m->r);
	}
	m->r[m->n++] = r;
}

/* Appends a data block of len bytes; returns 0 or the reserve error. */
static int put(sli_log *log, model *m, uint64_t seed, uint32_t len)
{
	uint8_t *p = sli_log_reserve(log, len);
	if (p == NULL)
		return sli_log_error(log);
	fill(p, len, seed);
	uint64_t end0 = sli_log_end(log);
	sli_log_commit(log, len, seed, seed + 1);
	uint64_t pos = sli_log_end(log) - SLI_BLOCK_HDR - len;
	assert_true(pos >= end0);
	if (m)
		model_push(m, (rec){pos, len, seed});
	return 0;
}

static int mark(sli_log *log, model *m, uint64_t upper)
{
	int rc = sli_log_mark_upper(log, upper);
	if (rc == 0 && m) {
		model_push(m, (rec){sli_log_end(log) - SLI_BLOCK_HDR, 0, upper});
		m->upper = upper;
	}
	return rc;
}

/* Reads the whole log and checks it against the first n records of m, and nothing else. */
static void check_log(const sli_log *log, const model *m, size_t n)
{
	uint64_t pos = sli_log_start(log), end = sli_log_end(log);
	uint8_t *want = malloc(SLI_BLOCK_MAX);
	assert_non_null(want);
	size_t i = 0;
	while (pos < end) {
		sli_block b;
		sli_log_block(log, pos, &b);
		assert_true(i < n);
		const rec *r = &m->r[i];
		assert_int_equal(b.next - SLI_BLOCK_HDR - b.nbytes, r->pos);
		assert_int_equal(b.nbytes, r->len);
		if (r->len == 0) {
			assert_int_equal(b.min_time, r->seed);
			assert_int_equal(b.max_time, r->seed);
		} else {
			assert_int_equal(b.min_time, r->seed);
			assert_int_equal(b.max_time, r->seed + 1);
			fill(want, r->len, r->seed);
			assert_memory_equal(b.events, want, r->len);
		}
		pos = b.next;
		i++;
	}
	assert_int_equal(pos, end);
	assert_int_equal(i, n);
	free(want);
}

static sli_log *open_ok(const char *dir, const sli_disklog_opts *o, char *err)
{
	sli_log *log = NULL;
	int rc = sli_disklog_open(dir, o, &log, err, 512);
	if (rc != 0)
		fail_msg("open %s: %d %s", dir, rc, err);
	return log;
}

static sli_disklog_opts seg_opts(uint64_t size)
{
	sli_disklog_opts o = {.segment_size = size};
	return o;
}

/* Size of the i-th block in the mixed workloads: small ones, and every so often a big one. */
static uint32_t mixed_len(uint64_t i)
{
	if (i % 13 == 5)
		return SLI_BLOCK_MAX - (uint32_t)(i % 7);
	return 1 + (uint32_t)((i * 7919) % 9000);
}

static uint32_t file_crc(const char *path, off_t *size)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	uint8_t buf[65536];
	uint32_t crc = 0;
	ssize_t k;
	*size = 0;
	while ((k = read(fd, buf, sizeof(buf))) > 0) {
		crc = sli_crc32c(crc, buf, (size_t)k);
		*size += k;
	}
	close(fd);
	return crc;
}

typedef struct snap {
	char name[64];
	off_t size;
	uint32_t crc;
} snap;

/* Names, sizes and checksums of the files of dir, sorted by name. */
static size_t snapshot(const char *dir, snap *out, size_t cap)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "ls -1 %s", dir);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	size_t n = 0;
	char line[256];
	while (fgets(line, sizeof(line), f) && n < cap) {
		line[strcspn(line, "\n")] = '\0';
		snprintf(out[n].name, sizeof(out[n].name), "%.60s", line);
		out[n].crc = file_crc(path_of(dir, line), &out[n].size);
		n++;
	}
	pclose(f);
	return n;
}

static void pwrite_at(const char *path, off_t off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static uint8_t byte_at(const char *path, off_t off)
{
	uint8_t b = 0xee;
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, off), 1);
	close(fd);
	return b;
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* --- CRC-32C ------------------------------------------------------------------------------ */

static void test_crc32c(void **state)
{
	(void)state;
	uint8_t z[32] = {0}, f[32], inc[32], dec[32];
	for (int i = 0; i < 32; i++) {
		f[i] = 0xff;
		inc[i] = (uint8_t)i;
		dec[i] = (uint8_t)(31 - i);
	}
	/* RFC 3720 B.4 and the usual check value. */
	assert_int_equal(sli_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(sli_crc32c(0, z, 32), 0x8A9136AAu);
	assert_int_equal(sli_crc32c(0, f, 32), 0x62A8AB43u);
	assert_int_equal(sli_crc32c(0, inc, 32), 0x46DD794Eu);
	assert_int_equal(sli_crc32c(0, dec, 32), 0x113FDB5Cu);
	assert_int_equal(sli_crc32c(0, NULL, 0), 0);
	/* Chaining at every split point, and every length against a bitwise reference. */
	uint8_t buf[300];
	fill(buf, sizeof(buf), 42);
	uint32_t whole = sli_crc32c(0, buf, sizeof(buf));
	for (size_t k = 0; k <= sizeof(buf); k++)
		assert_int_equal(sli_crc32c(sli_crc32c(0, buf, k), buf + k, sizeof(buf) - k),
		                 whole);
	for (size_t len = 0; len <= 40; len++) {
		uint32_t c = 0xffffffffu;
		for (size_t i = 0; i < len; i++) {
			c ^= buf[i + 3];
			for (int b = 0; b < 8; b++)
				c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
		}
		assert_int_equal(sli_crc32c(0, buf + 3, len), ~c);
	}
	/* An all-zero header is never a valid block: the CRC of zero fields is not zero. */
	assert_int_not_equal(sli_crc32c(0, z, 20), 0);
}

/* --- round trip --------------------------------------------------------------------------- */

static void test_roundtrip(void **state)
{
	const char *dir = fx_dir(state);
	char err[512];
	char sub[600];
	snprintf(sub, sizeof(sub), "%s/src/0/ok", dir); /* created with its parents */
	sli_disklog_opts o = seg_opts(SEG);
	model m = {0};
	sli_log *log = open_ok(sub, &o, err);
	assert_string_equal(err, "");
	assert_int_equal(sli_log_start(log), 0);
	assert_int_equal(sli_log_end(log), 0);
	assert_int_equal(sli_disklog_recovered_upper(log), 0);
	for (uint64_t i = 0; i < 300; i++) {
		assert_int_equal(put(log, &m, i + 1, 1 + (uint32_t)((i * 7919) % 3000)), 0);
		if (i % 10 == 9)
			assert_int_equal(mark(log, &m, i + 2), 0);
	}
	assert_int_equal(put(log, &m, 1000, 0 + 5), 0); /* after the last marker */
	check_log(log, &m, m.n);
	assert_int_equal(sli_log_sync(log), 0);
	assert_int_equal(sli_log_sync(log), 0); /* nothing new */
	uint64_t end = sli_log_end(log);
	assert_true(sli_log_memory(log) >= SEG);

	/* A second open of the same directory is refused while the first holds it. */
	sli_log *other = NULL;
	assert_int_equal(sli_disklog_open(sub, &o, &other, err, sizeof(err)), -EWOULDBLOCK);
	assert_null(other);
	assert_non_null(strstr(err, "in use"));
	sli_log_free(log);

	assert_true(exists(path_of(sub, "0000000000000000.seg")));
	log = open_ok(sub, &o, err);
	assert_string_equal(err, "");
	assert_int_equal(sli_log_end(log), end);
	assert_int_equal(sli_disklog_recovered_upper(log), 301);
	check_log(log, &m, m.n);
	/* Appending continues where it stood. */
	assert_int_equal(put(log, &m, 2000, 77), 0);
	assert_int_equal(mark(log, &m, 2001), 0);
	assert_int_equal(m.r[m.n - 2].pos, end);
	sli_log_free(log);
	log = open_ok(sub, &o, err);
	assert_string_equal(err, "");
	assert_int_equal(sli_disklog_recovered_upper(log), 2001);
	check_log(log, &m, m.n);
	sli_log_free(log);

	/* Bad arguments. */
	sli_disklog_opts bad = seg_opts(SEG + 4096);
	assert_int_equal(sli_disklog_open(sub, &bad, &log, err, sizeof(err)), SL_EARG);
	bad.segment_size = SLI_DISKLOG_SEGMENT_MIN / 2;
	assert_int_equal(sli_disklog_open(sub, &bad, &log, err, sizeof(err)), SL_EARG);

	free(m.r);
}

/* The memory log keeps working as before, and the new calls behave on it. */
static void test_memlog(void **state)
{
	(void)state;
	sli_log *log;
	model m = {0};
	assert_int_equal(sli_log_new(&log), 0);
	for (uint64_t i = 0; i < 100; i++)
		assert_int_equal(put(log, &m, i + 7, mixed_len(i)), 0);
	assert_int_equal(mark(log, &m, 9), 0);
	assert_int_equal(sli_log_error(log), 0);
	assert_int_equal(sli_log_sync(log), 0);
	assert_int_equal(sli_disklog_recovered_upper(log), 0);
	check_log(log, &m, m.n);
	sli_block b;
	sli_log_block(log, m.r[0].pos, &b);
	assert_int_equal(sli_get_u32(b.events - SLI_BLOCK_HDR + 4), 0); /* no checksum in memory */
	sli_log_free(log);
	free(m.r);
}

/* --- segments ----------------------------------------------------------------------------- */

static void test_segments(void **state)
{
	const char *dir = fx_dir(state);
	char err[512];
	sli_disklog_opts o = seg_opts(SEG);
	model m = {0};
	sli_log *log = open_ok(dir, &o, err);
	/* Segment 0 ends with a 2-byte tail (no room for a skip mark), segment 1 exactly at its
	 * end, segment 2 with a skip mark. */
	const uint32_t big = 60000;
	uint64_t seed = 1;
	for (int k = 0; k < 17; k++)
		assert_int_equal(put(log, &m, seed++, big), 0);
	uint32_t fit = (uint32_t)(SEG - 17 * (SLI_BLOCK_HDR + big) - 2 - SLI_BLOCK_HDR);
	assert_int_equal(put(log, &m, seed++, fit), 0);
	assert_int_equal(sli_log_end(log), SEG - 2);
	assert_int_equal(put(log, &m, seed++, 100), 0);
	assert_int_equal(m.r[m.n - 1].pos, SEG); /* jumped the 2 bytes */
	/* Fill segment 1 to its last byte. */
	uint64_t left = 2 * SEG - sli_log_end(log);
	while (left > SLI_BLOCK_HDR + SLI_BLOCK_MAX + SLI_BLOCK_HDR) {
		assert_int_equal(put(log, &m, seed++, big), 0);
		left = 2 * SEG - sli_log_end(log);
	}
	assert_int_equal(put(log, &m, seed++, (uint32_t)(left - SLI_BLOCK_HDR)), 0);
	assert_int_equal(sli_log_end(log), 2 * SEG);
	assert_true(!exists(path_of(dir, seg_file(2 * SEG))));

	/* Reopen with the log ending exactly at a segment boundary. */
	sli_log_free(log);
	log = open_ok(dir, &o, err);
	assert_string_equal(err, "");
	assert_int_equal(sli_log_end(log), 2 * SEG);
	check_log(log, &m, m.n);
	assert_int_equal(put(log, &m, seed++, 10), 0);
	assert_int_equal(m.r[m.n - 1].pos, 2 * SEG);
	/* Then a mixed workload over several segments, with skip marks. */
	for (uint64_t i = 0; i < 250; i++) {
		assert_int_equal(put(log, &m, seed++, mixed_len(i)), 0);
		if (i % 17 == 0)
			assert_int_equal(mark(log, &m, seed), 0);
	}
	uint64_t end = sli_log_end(log);
	assert_true(end > 4 * SEG);
	size_t skips = 0;
	for (size_t i = 1; i < m.n; i++) {
		uint64_t prev_end = m.r[i - 1].pos + SLI_BLOCK_HDR + m.r[i - 1].len;
		uint64_t last_byte = m.r[i].pos + SLI_BLOCK_HDR + m.r[i].len - 1;
		assert_true(m.r[i].pos / SEG == last_byte / SEG); /* never straddles */
		if (m.r[i].pos != prev_end) {
			assert_int_equal(m.r[i].pos % SEG, 0);
			const char *f = path_of(dir, seg_file(prev_end / SEG * SEG));
			if (SEG - prev_end % SEG >= 4) /* a skip mark */
				assert_int_equal(byte_at(f, (off_t)(prev_end % SEG)), 0xff);
			skips++;
		}
	}
	assert_true(skips >= 3);
	check_log(log, &m, m.n);
	assert_int_equal(sli_log_sync(log), 0);
	sli_log_free(log);
	for (uint64_t b = 0; b <= end / SEG; b++)
		assert_true(exists(path_of(dir, seg_file(b * SEG))));

	log = open_ok(dir, &o, err);
	assert_string_equal(err, "");
	assert_int_equal(sli_log_end(log), end);
	assert_int_equal(sli_disklog_recovered_upper(log), m.upper);
	check_log(log, &m, m.n);
	sli_log_free(log);

	/* A directory written with 1 MiB segments does not open with 128 KiB ones. */
	sli_disklog_opts small = seg_opts(SEG_SMALL);
	assert_int_equal(sli_disklog_open(dir, &small, &log, err, sizeof(err)), SL_EIO);
	assert_non_null(strstr(err, ".seg"));

	free(m.r);
}

/* Readers on another thread while the writer crosses segments: positions stay valid. */
typedef struct reader_arg {
	sli_log *log;
	_Atomic int done;
	size_t seen;
} reader_arg;

static void *reader(void *p)
{
	reader_arg *a = p;
	uint64_t pos = sli_log_start(a->log);
	uint8_t *want = malloc(SLI_BLOCK_MAX);
	for (;;) {
		int done = atomic_load(&a->done);
		uint64_t end = sli_log_end(a->log);
		while (pos < end) {
			sli_block b;
			sli_log_block(a->log, pos, &b);
			fill(want, b.nbytes, b.min_time);
			if (b.max_time != b.min_time + 1 || memcmp(want, b.events, b.nbytes) != 0)
				abort();
			pos = b.next;
			a->seen++;
		}
		if (done)
			break;
	}
	free(want);
	return NULL;
}

static void test_concurrent_reader(void **state)
{
	const char *dir = fx_dir(state);
	char err[512];
	sli_disklog_opts o = seg_opts(SEG_SMALL);
	sli_log *log = open_ok(dir, &o, err);
	reader_arg a = {.log = log};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, reader, &a), 0);
	for (uint64_t i = 0; i < 3000; i++)
		assert_int_equal(put(log, NULL, i + 1, mixed_len(i) / 4 + 1), 0);
	atomic_store(&a.done, 1);
	pthread_join(t, NULL);
	assert_int_equal(a.seen, 3000);
	sli_log_free(log);
}

/* --- torn tails --------------------------------------------------------------------------- */

typedef struct warned {
	int n;
	char last[512];
} warned;

static void on_warn(void *arg, const char *msg)
{
	warned *w = arg;
	w->n++;
	snprintf(w->last, sizeof(w->last), "%s", msg);
}

/* Writes a log of `blocks` mixed blocks (with markers) in dir; returns the model. */
static model write_log(const char *dir, uint64_t seg, int blocks)
{
	char err[512];
	sli_disklog_opts o = seg_opts(seg);
	model m = {0};
	sli_log *log = open_ok(dir, &o, err);
	for (int i = 0; i < blocks; i++) {
		assert_int_equal(put(log, &m, (uint64_t)i + 1, mixed_len((uint64_t)i)), 0);
		if (i % 5 == 4)
			assert_int_equal(mark(log, &m, (uint64_t)i + 100), 0);
	}
	sli_log_free(log);
	return m;
}

/* Index of the last data block of m. */
static size_t last_data(const model *m)
{
	size_t i = m->n;
	while (m->r[--i].len == 0)
		;
	return i;
}

/* After a torn tail at record `cut` (every record before it intact): the reopen warns,
 * appending continues at the cut, and the next reopen is clean. */
static void check_after_cut(const char *dir, uint64_t seg, model *m, size_t cut, const char *file)
{
	char err[512];
	warned w = {0};
	sli_disklog_opts o = seg_opts(seg);
	o.warn = on_warn;
	o.warn_arg = &w;
	sli_log *log = open_ok(dir, &o, err);
	assert_int_equal(w.n, 1);
	assert_non_null(strstr(w.last, "truncated torn tail"));
	assert_non_null(strstr(w.last, file));
	uint64_t cut_pos = m->r[cut].pos;
	char off[64];
	snprintf(off, sizeof(off), "offset %" PRIu64, cut_pos % seg);
	assert_non_null(strstr(w.last, off));
	m->n = cut;
	m->upper = 0;
	for (size_t i = 0; i < cut; i++)
		if (m->r[i].len == 0)
			m->upper = m->r[i].seed;
	assert_int_equal(sli_disklog_recovered_upper(log), m->upper);
	check_log(log, m, m->n);
	/* New blocks go where the torn one was (or, at a segment's start, on the previous end). */
	for (int i = 0; i < 20; i++)
		assert_int_equal(put(log, m, 5000 + (uint64_t)i, mixed_len((uint64_t)i + 3)), 0);
	assert_int_equal(mark(log, m, 7777), 0);
	assert_int_equal(m->r[cut].pos, cut_pos);
	sli_log_free(log);

	w.n = 0;
	log = open_ok(dir, &o, err);
	assert_int_equal(w.n, 0);
	assert_int_equal(sli_disklog_recovered_upper(log), 7777);
	check_log(log, m, m->n);
	sli_log_free(log);
}

static void test_torn_zeroed_end(void **state)
{
	const char *dir = fx_dir(state);
	model m = write_log(dir, SEG, 120);
	size_t k = last_data(&m);
	rec r = m.r[k];
	assert_true(r.len > 10);
	uint8_t zero[10] = {0};
	const char *file = seg_file(r.pos / SEG * SEG);
	/* Also drop the markers after it from the file, so that the torn block is the last. */
	uint64_t end = r.pos + SLI_BLOCK_HDR + r.len;
	uint64_t tail = m.r[m.n - 1].pos + SLI_BLOCK_HDR + m.r[m.n - 1].len;
	uint8_t *z = calloc(1, tail - end + 1);
	pwrite_at(path_of(dir, file), (off_t)(end % SEG), z, tail - end);
	free(z);
	pwrite_at(path_of(dir, file), (off_t)(end % SEG - 10), zero, 10);
	check_after_cut(dir, SEG, &m, k, file);
	free(m.r);
}

static void test_torn_cut_header(void **state)
{
	const char *dir = fx_dir(state);
	model m = write_log(dir, SEG, 120);
	size_t k = last_data(&m);
	rec r = m.r[k];
	const char *file = seg_file(r.pos / SEG * SEG);
	/* The file ends 10 bytes into the header of its last data block. */
	assert_int_equal(truncate(path_of(dir, file), (off_t)(r.pos % SEG + 10)), 0);
	check_after_cut(dir, SEG, &m, k, file);
	struct stat st;
	assert_int_equal(stat(path_of(dir, file), &st), 0);
	assert_int_equal(st.st_size, (off_t)SEG); /* extended back */
	free(m.r);
}

/* The crash came while the first block of a fresh segment was half written: the segment holds
 * nothing intact, so it goes, and the writer continues at the end of the previous one. */
static void test_torn_new_segment(void **state)
{
	const char *dir = fx_dir(state);
	char err[512];
	model m = write_log(dir, SEG_SMALL, 60);
	uint64_t end = m.r[m.n - 1].pos + SLI_BLOCK_HDR + m.r[m.n - 1].len;
	sli_disklog_opts o = seg_opts(SEG_SMALL);
	sli_log *log = open_ok(dir, &o, err);
	/* Big blocks until one starts a new segment. */
	uint64_t seed = 900;
	size_t before = m.n;
	do
		assert_int_equal(put(log, &m, seed++, SLI_BLOCK_MAX), 0);
	while (m.r[m.n - 1].pos % SEG_SMALL != 0);
	sli_log_free(log);
	rec r = m.r[m.n - 1];
	const char *file = seg_file(r.pos);
	uint8_t junk[6] = {1, 2, 3, 4, 5, 6};
	pwrite_at(path_of(dir, file), 8, junk, sizeof(junk)); /* its checksum and times */
	end = m.r[m.n - 2].pos + SLI_BLOCK_HDR + m.r[m.n - 2].len;
	(void)before;
	warned w = {0};
	o.warn = on_warn;
	o.warn_arg = &w;
	log = open_ok(dir, &o, err);
	assert_int_equal(w.n, 1);
	assert_non_null(strstr(w.last, file));
	assert_non_null(strstr(w.last, "offset 0"));
	assert_false(exists(path_of(dir, file)));
	assert_int_equal(sli_log_end(log), end);
	m.n--;
	check_log(log, &m, m.n);
	assert_int_equal(put(log, &m, seed++, SLI_BLOCK_MAX), 0);
	assert_int_equal(m.r[m.n - 1].pos, r.pos); /* the segment is made again */
	sli_log_free(log);
	w.n = 0;
	log = open_ok(dir, &o, err);
	assert_int_equal(w.n, 0);
	check_log(log, &m, m.n);
	sli_log_free(log);
	free(m.r);
}

/* A block reserved and filled but never committed (the writer died before sli_log_commit)
 * is not a torn block: no warning, and its bytes are cleared. */
static void test_uncommitted(void **state)
{
	const char *dir = fx_dir(state);
	char err[512];
	model m = write_log(dir, SEG, 30);
	sli_disklog_opts o = seg_opts(SEG);
	sli_log *log = open_ok(dir, &o, err);
	uint64_t end = sli_log_end(log);
	uint8_t *p = sli_log_reserve(log, 5000);
	assert_non_null(p);
	memset(p, 0x5a, 5000);
	sli_log_free(log);
	const char *f = path_of(dir, seg_file(0));
	assert_int_equal(byte_at(f, (off_t)end + SLI_BLOCK_HDR + 4999), 0x5a);
	log = open_ok(dir, &o, err);
	assert_string_equal(err, "");
	assert_int_equal(sli_log_end(log), end);
	check_log(log, &m, m.n);
	f = path_of(dir, seg_file(0));
	assert_int_equal(byte_at(f, (off_t)end + SLI_BLOCK_HDR + 4999), 0);
	assert_int_equal(put(log, &m, 31337, 100), 0); /* shorter than the leftovers were */
	sli_log_free(log);
	log = open_ok(dir, &o, err);
	assert_string_equal(err, "");
	check_log(log, &m, m.n);
	sli_log_free(log);
	free(m.r);
}

/* --- corruption --------------------------------------------------------------------------- */

typedef struct corruption {
	const char *name;
	uint64_t seg; /* segment size */
	int blocks;   /* of write_log */
	/* Damages the log in dir (model m); returns the file the error must name and writes the
	 * offset it must name to *off (UINT64_MAX: any). */
	const char *(*damage)(const char *dir, const model *m, uint64_t seg, uint64_t *off);
} corruption;

#define DAMAGE(name) \
	static const char *name(const char *dir, const model *m, uint64_t seg, uint64_t *off)

static void flip(const char *path, off_t off)
{
	uint8_t b = byte_at(path, off) ^ 0x10;
	pwrite_at(path, off, &b, 1);
}

DAMAGE(flip_middle_of_early_block)
{
	const rec *r = &m->r[3];
	assert_true(r->len > 2);
	flip(path_of(dir, seg_file(r->pos / seg * seg)),
	     (off_t)(r->pos % seg + SLI_BLOCK_HDR + r->len / 2));
	*off = r->pos % seg;
	return seg_file(r->pos / seg * seg);
}

DAMAGE(flip_nbytes_of_early_block)
{
	const rec *r = &m->r[5];
	flip(path_of(dir, seg_file(r->pos / seg * seg)), (off_t)(r->pos % seg + 1));
	*off = r->pos % seg;
	return seg_file(r->pos / seg * seg);
}

/* The last block of a segment that is not the last one. */
DAMAGE(flip_end_of_middle_segment)
{
	size_t i = 0;
	while (m->r[i + 1].pos < seg)
		i++;
	const rec *r = &m->r[i];
	flip(path_of(dir, seg_file(0)), (off_t)(r->pos + 12));
	*off = r->pos;
	return seg_file(0);
}

/* A flipped byte in the last segment, with intact blocks after it. */
DAMAGE(flip_in_last_segment)
{
	const rec *r = &m->r[m->n - 4];
	uint64_t base = r->pos / seg * seg;
	assert_int_equal(base, m->r[m->n - 1].pos / seg * seg);
	flip(path_of(dir, seg_file(base)), (off_t)(r->pos - base + 20));
	*off = r->pos - base;
	return seg_file(base);
}

DAMAGE(remove_middle_segment)
{
	(void)m;
	assert_int_equal(unlink(path_of(dir, seg_file(seg))), 0);
	*off = UINT64_MAX;
	return seg_file(seg);
}

DAMAGE(shorten_middle_segment)
{
	(void)m;
	assert_int_equal(truncate(path_of(dir, seg_file(seg)), (off_t)seg - 4096), 0);
	*off = UINT64_MAX;
	return seg_file(seg);
}

/* Garbage far past the end of the last segment's data. */
DAMAGE(scribble_far_past_end)
{
	uint64_t base = m->r[m->n - 1].pos / seg * seg;
	uint8_t x = 0x42;
	pwrite_at(path_of(dir, seg_file(base)), (off_t)seg - 1, &x, 1);
	*off = UINT64_MAX;
	return seg_file(base);
}

static const corruption corruptions[] = {
	{"byte flipped in the middle of an early block", SEG_SMALL, 60, flip_middle_of_early_block},
	{"nbytes flipped in an early block", SEG_SMALL, 60, flip_nbytes_of_early_block},
	{"last block of a middle segment", SEG_SMALL, 60, flip_end_of_middle_segment},
	{"bad block then intact ones in the last segment", SEG_SMALL, 60, flip_in_last_segment},
	{"missing segment", SEG_SMALL, 60, remove_middle_segment},
	{"short middle segment", SEG_SMALL, 60, shorten_middle_segment},
	{"data far past the end", SEG, 20, scribble_far_past_end},
};

static void test_corruption(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof(corruptions) / sizeof(corruptions[0]); c++) {
		char dir[128], err[512];
		snprintf(dir, sizeof(dir), "%s/case%zu", fx_dir(state), c);
		const corruption *k = &corruptions[c];
		model m = write_log(dir, k->seg, k->blocks);
		if (k->seg == SEG_SMALL)
			assert_true(m.r[m.n - 1].pos >= 2 * k->seg); /* three segments at least */
		uint64_t off;
		const char *file = k->damage(dir, &m, k->seg, &off);
		snap before[64], after[64];
		size_t nb = snapshot(dir, before, 64);
		sli_disklog_opts o = seg_opts(k->seg);
		sli_log *log = NULL;
		int rc = sli_disklog_open(dir, &o, &log, err, sizeof(err));
		if (rc != SL_EIO)
			fail_msg("%s: open returned %d (%s)", k->name, rc, err);
		assert_null(log);
		if (strstr(err, file) == NULL || strstr(err, dir) == NULL)
			fail_msg("%s: \"%s\" does not name %s/%s", k->name, err, dir, file);
		if (off != UINT64_MAX) {
			char want[64];
			snprintf(want, sizeof(want), "offset %" PRIu64, off);
			if (strstr(err, want) == NULL)
				fail_msg("%s: \"%s\" does not say %s", k->name, err, want);
		}
		size_t na = snapshot(dir, after, 64);
		assert_int_equal(na, nb);
		for (size_t i = 0; i < na; i++) {
			assert_string_equal(after[i].name, before[i].name);
			assert_int_equal(after[i].size, before[i].size);
			assert_int_equal(after[i].crc, before[i].crc);
		}
		free(m.r);
		rm_rf(dir);
	}
}

/* --- full disk ---------------------------------------------------------------------------- */

typedef struct fault {
	int err; /* errno to return, 0: allocate for real */
	int calls;
} fault;

static int fault_allocate(void *arg, int fd, off_t len)
{
	fault *f = arg;
	f->calls++;
	return f->err ? f->err : posix_fallocate(fd, 0, len);
}

/* Fills the log until sli_log_reserve fails; returns its error. */
static int fill_up(sli_log *log, model *m, uint64_t *seed, int max)
{
	for (int i = 0; i < max; i++) {
		int rc = put(log, m, (*seed)++, 40000);
		if (rc != 0)
			return rc;
		if (i % 7 == 0 && (rc = mark(log, m, *seed)) != 0)
			return rc;
	}
	return 0;
}

/* The disk fills: reserve returns NULL with -ENOSPC, nothing committed is lost, and once space
 * is freed appending resumes.  On a real 3 MiB tmpfs when we may mount one. */
static void test_enospc(void **state)
{
	const char *dir = fx_dir(state);
	char err[512];
	char logdir[600], filler[600];
	snprintf(logdir, sizeof(logdir), "%s/log", dir);
	snprintf(filler, sizeof(filler), "%s/filler", dir);
	int mounted = mount("tmpfs", dir, "tmpfs", 0, "size=3m") == 0;
	((fixture *)*state)->mounted = mounted;
	fault f = {0};
	sli_disklog_opts o = seg_opts(SEG);
	if (mounted) {
		/* 1.5 MiB taken: the first segment fits, the second does not. */
		int fd = open(filler, O_CREAT | O_WRONLY, 0644);
		assert_true(fd >= 0);
		assert_int_equal(posix_fallocate(fd, 0, 3 * SEG / 2), 0);
		close(fd);
	} else {
		print_message("tmpfs not mountable (%s): injecting ENOSPC\n", strerror(errno));
		o.allocate = fault_allocate;
		o.allocate_arg = &f;
	}
	model m = {0};
	uint64_t seed = 1;
	sli_log *log = open_ok(logdir, &o, err);
	f.err = 0;
	assert_int_equal(fill_up(log, &m, &seed, 20), 0); /* ~800 KB */
	f.err = ENOSPC;
	assert_int_equal(fill_up(log, &m, &seed, 1000), -ENOSPC);
	assert_int_equal(sli_log_error(log), -ENOSPC);
	assert_null(sli_log_reserve(log, SLI_BLOCK_MAX)); /* still full */
	assert_false(exists(path_of(logdir, seg_file(SEG)))); /* no half-made segment */
	check_log(log, &m, m.n);
	assert_int_equal(sli_log_sync(log), 0);
	sli_log_free(log);

	/* Reopening a full log works (it needs no space) and loses nothing. */
	char err2[512];
	log = open_ok(logdir, &o, err2);
	assert_string_equal(err2, "");
	assert_int_equal(sli_disklog_recovered_upper(log), m.upper);
	check_log(log, &m, m.n);
	assert_null(sli_log_reserve(log, SLI_BLOCK_MAX));
	assert_int_equal(sli_log_error(log), -ENOSPC);

	/* Space comes back: appending resumes in the same open log. */
	if (mounted)
		assert_int_equal(unlink(filler), 0);
	f.err = 0;
	assert_int_equal(fill_up(log, &m, &seed, 10), 0);
	assert_int_equal(sli_log_error(log), 0);
	assert_true(exists(path_of(logdir, seg_file(SEG))));
	assert_int_equal(sli_log_sync(log), 0);
	sli_log_free(log);
	log = open_ok(logdir, &o, err);
	assert_string_equal(err, "");
	check_log(log, &m, m.n);
	sli_log_free(log);

	/* EIO at allocation is reported the same way. */
	fault g = {.err = 0};
	sli_disklog_opts o2 = seg_opts(SEG_SMALL);
	o2.allocate = fault_allocate;
	o2.allocate_arg = &g;
	char eiodir[600];
	snprintf(eiodir, sizeof(eiodir), "%s/eio", dir);
	model m2 = {0};
	log = open_ok(eiodir, &o2, err);
	assert_int_equal(put(log, &m2, 1, 1000), 0);
	g.err = EIO;
	seed = 2;
	assert_int_equal(fill_up(log, &m2, &seed, 100), -EIO);
	assert_int_equal(sli_log_error(log), -EIO);
	check_log(log, &m2, m2.n);
	sli_log_free(log);
	free(m2.r);

	free(m.r);
	if (mounted) {
		assert_int_equal(umount(dir), 0);
		((fixture *)*state)->mounted = 0;
	}
}

/* --- crash -------------------------------------------------------------------------------- */

/* The crash writer's i-th data block (from 0): content seed i + 1, length crash_len(i); after
 * every 4th block a marker with upper = the number of data blocks so far. */
static uint32_t crash_len(uint64_t i)
{
	if (i % 29 == 3)
		return 30000 + (uint32_t)(i % 1000);
	return 1 + (uint32_t)((i * 2654435761u) % 2500);
}

/* Checks the recovered log against the crash writer's sequence; returns the data blocks. */
static uint64_t crash_check(const sli_log *log, uint64_t *last_marker)
{
	uint64_t pos = sli_log_start(log), end = sli_log_end(log), data = 0;
	uint8_t *want = malloc(SLI_BLOCK_MAX);
	*last_marker = 0;
	while (pos < end) {
		sli_block b;
		sli_log_block(log, pos, &b);
		if (b.nbytes == 0) {
			/* Every marker says how many data blocks precede it. */
			assert_int_equal(b.min_time, data);
			assert_int_equal(b.max_time, data);
			*last_marker = data;
		} else {
			assert_int_equal(b.nbytes, crash_len(data));
			assert_int_equal(b.min_time, data + 1);
			fill(want, b.nbytes, data + 1);
			assert_memory_equal(b.events, want, b.nbytes);
			data++;
		}
		pos = b.next;
	}
	free(want);
	return data;
}

static void crash_child(const char *dir, uint64_t limit, int ready)
{
	char err[512];
	sli_disklog_opts o = seg_opts(SEG_SMALL);
	sli_log *log;
	if (sli_disklog_open(dir, &o, &log, err, sizeof(err)) != 0)
		_exit(3);
	if (write(ready, "r", 1) != 1) /* the kill may come from now on */
		_exit(7);
	/* Continue the sequence from what survived. */
	uint64_t pos = sli_log_start(log), end = sli_log_end(log), data = 0;
	while (pos < end) {
		sli_block b;
		sli_log_block(log, pos, &b);
		data += b.nbytes != 0;
		pos = b.next;
	}
	for (uint64_t i = data; i < data + limit; i++) {
		uint32_t len = crash_len(i);
		uint8_t *p = sli_log_reserve(log, len);
		if (p == NULL)
			_exit(4);
		fill(p, len, i + 1);
		sli_log_commit(log, len, i + 1, i + 2);
		if (i % 4 == 3 && sli_log_mark_upper(log, i + 1) != 0)
			_exit(5);
		if (i % 64 == 0 && sli_log_sync(log) != 0)
			_exit(6);
	}
	for (;;)
		pause(); /* wait for the kill */
}

#define CRASH_ROUNDS 16

static void test_crash(void **state)
{
	const char *dir = fx_dir(state);
	char err[512];
	uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)getpid();
	print_message("crash seed %" PRIu64 "\n", seed);
	uint64_t prev_upper = 0, prev_data = 0;
	int torn = 0;
	for (int round = 0; round < CRASH_ROUNDS; round++) {
		int ready[2];
		assert_int_equal(pipe(ready), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(ready[0]);
			crash_child(dir, 3000, ready[1]);
		}
		close(ready[1]);
		char c;
		ssize_t k = read(ready[0], &c, 1);
		close(ready[0]);
		if (k == 1) {
			/* Most kills while it writes; a few after it is done. */
			struct timespec ts = {0, (long)(splitmix(&seed) % 8000000)};
			nanosleep(&ts, NULL);
		}
		assert_int_equal(kill(pid, SIGKILL), 0);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status))
			fail_msg("round %d: child exited with %d", round, WEXITSTATUS(status));

		warned w = {0};
		sli_disklog_opts o = seg_opts(SEG_SMALL);
		o.warn = on_warn;
		o.warn_arg = &w;
		sli_log *log = open_ok(dir, &o, err);
		torn += w.n;
		uint64_t marker, data = crash_check(log, &marker);
		assert_int_equal(sli_disklog_recovered_upper(log), marker);
		/* Nothing the previous rounds had is lost, and every block before the last marker
		 * is there (crash_check verified each). */
		assert_true(marker >= prev_upper);
		assert_true(data >= prev_data);
		assert_true(data >= marker);
		prev_upper = marker;
		prev_data = data;
		sli_log_free(log);
	}
	print_message("after %d kills: %" PRIu64 " blocks, upper %" PRIu64 ", %d torn tails\n",
	              CRASH_ROUNDS, prev_data, prev_upper, torn);
}


/* --- truncation ---------------------------------------------------------------------------- */

/* sli_log_truncate_durable across segments: the blocks before the cut stay, the segments after
 * the cut's go (files, and memory for a memory log), writing continues at the cut, and a
 * reopen recovers exactly that (no run of empty segments for recovery to refuse). */
static void test_truncate_durable(void **state)
{
	const char *dir = fx_dir(state);
	char err[512];
	for (int disk = 0; disk < 2; disk++) {
		sli_log *log;
		model m = {0};
		sli_disklog_opts o = seg_opts(SEG_SMALL);
		if (disk)
			log = open_ok(dir, &o, err);
		else
			assert_int_equal(sli_log_new(&log), 0);
		/* About 12 segments of SEG_SMALL (3 chunks of a memory log's 1 MiB). */
		for (uint64_t i = 0; i < 120; i++)
			assert_int_equal(put(log, &m, i, 20000 + (uint32_t)((i * 7919) % 20000)), 0);
		size_t keep = 30;
		uint64_t cut = m.r[keep].pos, chunk = sli_log_chunk_size(log);
		size_t mem0 = sli_log_memory(log);
		assert_int_equal(sli_log_truncate_durable(log, cut), 0);
		assert_int_equal(sli_log_end(log), cut);
		/* Only the chunks up to the cut's are held. */
		assert_int_equal(sli_log_memory(log), ((cut / chunk) + 1) * chunk);
		assert_true(sli_log_memory(log) < mem0);
		m.n = keep;
		check_log(log, &m, m.n);
		if (disk) {
			assert_true(exists(path_of(dir, seg_file(cut & ~(SEG_SMALL - 1)))));
			assert_false(exists(path_of(dir, seg_file((cut & ~(SEG_SMALL - 1)) + SEG_SMALL))));
		}
		/* Writing goes on over the zeroed space and into new segments. */
		for (uint64_t i = 0; i < 40; i++)
			assert_int_equal(put(log, &m, 1000 + i, 20000 + (uint32_t)((i * 7919) % 20000)), 0);
		assert_int_equal(mark(log, &m, 77), 0);
		assert_int_equal(sli_log_sync(log), 0);
		check_log(log, &m, m.n);
		/* Down to nothing. */
		sli_log_free(log);
		if (disk) {
			log = open_ok(dir, &o, err);
			assert_string_equal(err, "");
			check_log(log, &m, m.n);
			assert_int_equal(sli_disklog_recovered_upper(log), 77);
			assert_int_equal(sli_log_truncate_durable(log, sli_log_start(log)), 0);
			assert_int_equal(sli_log_end(log), sli_log_start(log));
			sli_log_free(log);
			log = open_ok(dir, &o, err);
			assert_int_equal(sli_log_end(log), sli_log_start(log));
			sli_log_free(log);
			rm_rf(dir);
		}
		free(m.r);
	}
}

/* A crash in the middle of a truncation can leave holes: zeroed pages with intact blocks after
 * them, which recovery refuses.  With the recorded position (opts.truncate) open finishes the
 * cut instead, exactly, and doing it twice changes nothing. */
static void test_truncate_recorded(void **state)
{
	const char *dir = fx_dir(state);
	char err[512];
	sli_disklog_opts o = seg_opts(SEG_SMALL);
	sli_log *log = open_ok(dir, &o, err), *again;
	model m = {0};
	for (uint64_t i = 0; i < 60; i++)
		assert_int_equal(put(log, &m, i, 20000 + (uint32_t)((i * 7919) % 20000)), 0);
	assert_int_equal(sli_log_sync(log), 0);
	uint64_t cut = m.r[20].pos, hole = m.r[24].pos;
	sli_log_free(log);
	/* The hole: one block's header zeroed, blocks after it intact, later segments still there. */
	uint8_t zero[SLI_BLOCK_HDR] = {0};
	pwrite_at(path_of(dir, seg_file(hole & ~(SEG_SMALL - 1))), (off_t)(hole & (SEG_SMALL - 1)),
	          zero, sizeof(zero));
	assert_int_not_equal(sli_disklog_open(dir, &o, &again, err, sizeof(err)), 0);
	o.truncate = 1;
	o.truncate_at = cut;
	for (int round = 0; round < 2; round++) {
		log = open_ok(dir, &o, err);
		m.n = 20;
		check_log(log, &m, m.n);
		assert_false(exists(path_of(dir, seg_file((cut & ~(SEG_SMALL - 1)) + SEG_SMALL))));
		sli_log_free(log);
	}
	o.truncate = 0;
	log = open_ok(dir, &o, err);
	assert_string_equal(err, "");
	check_log(log, &m, m.n);
	sli_log_free(log);
	free(m.r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test_setup_teardown(test_roundtrip, fx_setup, fx_teardown),
		cmocka_unit_test(test_memlog),
		cmocka_unit_test_setup_teardown(test_segments, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_reader, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_torn_zeroed_end, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_torn_cut_header, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_torn_new_segment, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_uncommitted, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_corruption, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_enospc, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_crash, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_truncate_durable, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_truncate_recorded, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
