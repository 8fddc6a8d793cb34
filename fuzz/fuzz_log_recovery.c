/*
 * fuzz_log_recovery.c - libFuzzer target for the durable log's recovery
 * (src/log/disklog_recover.c, sli_disklog_open).
 *
 * The input is written as the segment files of one log directory, then the log is opened.
 * Input layout (seed_input() in gen_log_seeds.c writes the same):
 *
 *     byte 0   flags: bits 0-1 segments - 1 (3 is taken as 1); bit 2 the first segment's base
 *              is not 0 but (1 + byte 1 % 8) segments (a log compacted from the front); bit 3 the
 *              last segment is written full size, not short; bit 4 a segment is left out (a
 *              hole: must be refused); bit 5 a stray non-segment file is added
 *     byte 1   see bit 2
 *     byte 2   where the payload is cut between the first and the other segments (x/255)
 *     rest     the payload: the segments' bytes one after the other, each zero-padded to the
 *              segment size (the last one only with bit 3)
 *
 * Properties checked (abort on violation):
 *   - open either succeeds or fails with an error code and a message;
 *   - on success every block from start to end can be read, each one's next position is
 *     after it and at most the end; the writer can append an upper marker after recovery, and
 *     the directory then reopens cleanly with exactly that block more (recovery is idempotent
 *     and leaves a log the writer can continue);
 *   - when open refuses a corrupt log (SL_EIO), no file was modified.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/disklog.h"
#include "sluice/sluice.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "CHECK failed: %s (line %d)\n", #c, __LINE__); abort(); } } while (0)

#define SEG (128u << 10) /* the smallest segment size: fewer bytes to write per run */
#define MAX_SEGS 3

static char dir[96];

static void clear_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[192];
	CHECK(d != NULL);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
}

static void remove_dir(void)
{
	clear_dir();
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct stat sb;
	const char *tmp = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof(dir), "%s/fuzz_log_recovery.XXXXXX", tmp);
	CHECK(mkdtemp(dir) != NULL);
	atexit(remove_dir);
	return 0;
}

struct seg {
	char path[192];
	const uint8_t *bytes;
	size_t len;  /* payload bytes */
	size_t size; /* file size: len, or SEG when padded */
};

static void write_file(const struct seg *s)
{
	static uint8_t zeros[SEG];
	int fd = open(s->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	if (s->len > 0)
		CHECK(write(fd, s->bytes, s->len) == (ssize_t)s->len);
	if (s->size > s->len)
		CHECK(write(fd, zeros, s->size - s->len) == (ssize_t)(s->size - s->len));
	close(fd);
}

/* Whether the file still holds exactly what write_file put there. */
static int file_unchanged(const struct seg *s)
{
	static uint8_t buf[SEG + 1];
	int fd = open(s->path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n != (ssize_t)s->size || memcmp(buf, s->bytes, s->len) != 0)
		return 0;
	for (size_t i = s->len; i < s->size; i++)
		if (buf[i] != 0)
			return 0;
	return 1;
}

/* Reads every block; returns how many there are. */
static uint64_t walk(const sli_log *log)
{
	uint64_t pos = sli_log_start(log), end = sli_log_end(log), n = 0;
	volatile uint8_t sink = 0;
	while (pos < end) {
		sli_block b;
		sli_log_block(log, pos, &b);
		CHECK(b.next > pos && b.next <= end);
		CHECK(b.nbytes <= SLI_BLOCK_MAX);
		if (b.nbytes > 0)
			sink ^= b.events[0] ^ b.events[b.nbytes - 1];
		pos = b.next;
		n++;
	}
	(void)sink;
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seg segs[MAX_SEGS + 1];
	sli_disklog_opts opts = {.segment_size = SEG};
	char err[256];
	sli_log *log = NULL;

	if (size < 3)
		return 0;
	uint8_t flags = data[0];
	unsigned nseg = (flags & 3) == 3 ? 1 : (flags & 3) + 1;
	uint64_t base = (flags & 4) ? (uint64_t)SEG * (1 + data[1] % 8) : 0;
	const uint8_t *p = data + 3;
	size_t rest = size - 3;
	size_t cut = nseg == 1 ? rest : rest * data[2] / 255;

	clear_dir();
	for (unsigned i = 0; i < nseg; i++) {
		struct seg *s = &segs[i];
		size_t take = i == 0 ? cut : (i + 1 == nseg ? rest : rest / 2);
		if (take > SEG)
			take = SEG;
		uint64_t b = base + (uint64_t)SEG * i;
		if ((flags & 16) && i > 0)
			b += SEG; /* a hole before this segment */
		snprintf(s->path, sizeof(s->path), "%s/%016llx.seg", dir, (unsigned long long)b);
		s->bytes = p;
		s->len = take;
		s->size = (i + 1 < nseg || (flags & 8)) ? SEG : take;
		p += take;
		rest -= take;
		write_file(s);
	}
	unsigned nfiles = nseg;
	if (flags & 32) {
		struct seg *s = &segs[nfiles++];
		snprintf(s->path, sizeof(s->path), "%s/notes.txt", dir);
		s->bytes = data;
		s->len = size < 64 ? size : 64;
		s->size = s->len;
		write_file(s);
	}

	int rc = sli_disklog_open(dir, &opts, &log, err, sizeof(err));
	if (rc != 0) {
		CHECK(rc < 0);
		CHECK(err[0] != '\0');
		if (rc == SL_EIO)
			for (unsigned i = 0; i < nfiles; i++)
				CHECK(file_unchanged(&segs[i]));
		return 0;
	}
	uint64_t blocks = walk(log);
	uint64_t upper = sli_disklog_recovered_upper(log);
	uint64_t end = sli_log_end(log);
	int marked = upper < SL_TIME_CLOSED - 1 && sli_log_mark_upper(log, upper + 1) == 0;
	sli_log_free(log);

	/* What recovery left, plus one marker, must open again without complaint. */
	log = NULL;
	rc = sli_disklog_open(dir, &opts, &log, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "reopen after recovery failed: %s (%s)\n", sl_strerror(rc), err);
	CHECK(rc == 0);
	CHECK(err[0] == '\0'); /* nothing torn this time */
	CHECK(walk(log) == blocks + (marked ? 1 : 0));
	if (marked) {
		CHECK(sli_disklog_recovered_upper(log) == upper + 1);
		CHECK(sli_log_end(log) > end);
	} else {
		CHECK(sli_log_end(log) == end);
	}
	sli_log_free(log);
	return 0;
}

