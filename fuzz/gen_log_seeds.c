/*
 * gen_log_seeds.c - writes the seed corpus of fuzz_log_recovery: real logs written through the
 * log API (sli_disklog_open, sli_log_write_updates, sli_log_mark_upper), each turned into the
 * target's input layout (see fuzz_log_recovery.c).  Built with the fuzz targets; run by hand:
 *
 *     build-fuzz/fuzz/gen_log_seeds fuzz/corpus/fuzz_log_recovery
 *
 * The output is deterministic, so rerunning it reproduces the committed files.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/disklog.h"
#include "storage/storage_int.h"

#define SEG (128u << 10)

static void die(const char *what)
{
	fprintf(stderr, "gen_log_seeds: %s\n", what);
	exit(1);
}

/* Appends `ticks` times of `rows` rows each (row text "t.r"), with a marker after each time. */
static void fill(sli_log *log, uint64_t *t, int ticks, int rows, size_t rowlen)
{
	char buf[4096];
	sl_update ups[64];
	for (int k = 0; k < ticks; k++, (*t)++) {
		for (int r = 0; r < rows; r++) {
			memset(buf, 'a' + r % 26, rowlen);
			snprintf(buf, rowlen < 20 ? rowlen : 20, "%llu.%d", (unsigned long long)*t, r);
			uint8_t *copy = malloc(rowlen);
			if (copy == NULL)
				die("out of memory");
			memcpy(copy, buf, rowlen);
			ups[r].row = (sl_bytes){copy, rowlen};
			ups[r].time = *t;
			ups[r].diff = (r % 3 == 2) ? -1 : 1;
		}
		if (sli_log_write_updates(log, ups, (size_t)rows) != 0)
			die("write failed");
		for (int r = 0; r < rows; r++)
			free((void *)ups[r].row.ptr);
		if (sli_log_mark_upper(log, *t + 1) != 0)
			die("marker failed");
	}
}

/* Reads one segment file whole. */
static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat sb;
	int fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &sb) != 0)
		die(path);
	uint8_t *p = malloc((size_t)sb.st_size + 1);
	if (read(fd, p, (size_t)sb.st_size) != sb.st_size)
		die(path);
	close(fd);
	*len = (size_t)sb.st_size;
	return p;
}

/* Writes the log in dir (segments from base, n of them) as one input: flags, then each
 * segment's bytes without their zero tails (the last one `tear` bytes shorter still, for a
 * torn tail). */
static void emit(const char *out, const char *dir, uint64_t base, int n, size_t tear)
{
	FILE *f = fopen(out, "wb");
	uint8_t hdr[3];
	size_t first_len = 0, total = 0;
	uint8_t *seg[3];
	size_t len[3];
	char path[512];
	if (f == NULL)
		die(out);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%016llx.seg", dir, (unsigned long long)(base + (uint64_t)SEG * i));
		seg[i] = slurp(path, &len[i]);
		/* the target zero-pads every segment but a short last one; the 8 zero bytes put
		 * back cover the high bytes of the last marker's time */
		size_t full = len[i];
		while (len[i] > 0 && seg[i][len[i] - 1] == 0)
			len[i]--;
		len[i] = len[i] + 8 < full ? len[i] + 8 : full;
		if (i + 1 == n)
			len[i] = len[i] > tear ? len[i] - tear : 0;
		total += len[i];
		if (i == 0)
			first_len = len[i];
	}
	hdr[0] = (uint8_t)((n - 1) | (base ? 4 : 0));
	hdr[1] = (uint8_t)(base ? base / SEG - 1 : 0);
	hdr[2] = 255;
	size_t pad = first_len; /* the first segment's bytes in the input, zero-padded */
	if (n > 1) {
		/* The target cuts the payload at total * hdr[2] / 255: find a cut at or after the
		 * first segment's last byte (the zeros after it are the same segment). */
		size_t others = total - first_len;
		int found = 0;
		for (unsigned h = 1; h < 255 && !found; h++)
			for (size_t p = first_len; p <= SEG && !found; p++)
				if ((p + others) * h / 255 == p) {
					hdr[2] = (uint8_t)h;
					pad = p;
					found = 1;
				}
		if (!found)
			die("cannot express the cut between segments");
	}
	fwrite(hdr, 1, 3, f);
	for (int i = 0; i < n; i++) {
		fwrite(seg[i], 1, len[i], f);
		for (size_t k = i == 0 ? len[0] : 0; i == 0 && k < pad; k++)
			fputc(0, f);
		free(seg[i]);
	}
	fclose(f);
}

static void wipe(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		die("rm");
}

int main(int argc, char **argv)
{
	char tmp[] = "/tmp/gen_log_seeds.XXXXXX", out[512], err[256];
	sli_disklog_opts opts = {.segment_size = SEG};
	sli_log *log;
	uint64_t t;

	if (argc != 2)
		die("usage: gen_log_seeds OUTDIR");
	if (mkdtemp(tmp) == NULL)
		die("mkdtemp");
	mkdir(argv[1], 0755);

	/* 1: a few small times, one segment. */
	t = 1;
	if (sli_disklog_open(tmp, &opts, &log, err, sizeof(err)) != 0)
		die(err);
	fill(log, &t, 6, 3, 8);
	sli_log_free(log);
	snprintf(out, sizeof(out), "%s/small", argv[1]);
	emit(out, tmp, 0, 1, 0);
	/* 2: the same with its last block torn in half. */
	snprintf(out, sizeof(out), "%s/torn", argv[1]);
	emit(out, tmp, 0, 1, 20);
	/* 3: markers only (a source that advanced without data). */
	wipe(tmp);
	t = 1;
	if (sli_disklog_open(tmp, &opts, &log, err, sizeof(err)) != 0)
		die(err);
	for (int i = 0; i < 5; i++)
		sli_log_mark_upper(log, (uint64_t)i + 10);
	sli_log_free(log);
	snprintf(out, sizeof(out), "%s/markers", argv[1]);
	emit(out, tmp, 0, 1, 0);
	/* 4: two segments: big blocks fill the first, a skip mark ends it. */
	wipe(tmp);
	t = 1;
	if (sli_disklog_open(tmp, &opts, &log, err, sizeof(err)) != 0)
		die(err);
	fill(log, &t, 5, 30, 1000);
	fill(log, &t, 3, 2, 10);
	sli_log_free(log);
	snprintf(out, sizeof(out), "%s/two_segments", argv[1]);
	emit(out, tmp, 0, 2, 0);
	/* 5: a log whose first segment was compacted away: it starts at the second. */
	if (sli_disklog_open(tmp, &opts, &log, err, sizeof(err)) != 0)
		die(err);
	if (sli_log_drop_before(log, SEG) != 0)
		die("drop");
	sli_log_free(log);
	snprintf(out, sizeof(out), "%s/compacted", argv[1]);
	emit(out, tmp, SEG, 1, 0);
	wipe(tmp);
	return 0;
}
