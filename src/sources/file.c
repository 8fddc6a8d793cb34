/*
 * file.c - the `file` source: tails a file, one row per line.
 *
 * Keys: path=P (required), format=text|csv (default text), columns=C (csv only: the number of
 * columns every line must have; 0 or absent = any), workers=W (default 1; rows are routed like
 * ingested rows, sl_ingest_route).
 *
 * The thread polls the file's size every POLL_NS and reads what was appended; a missing file is
 * waited for.  Each complete line (without its '\n') becomes a row with diff +1.  A line that
 * does not parse -- csv: wrong column count or unbalanced quotes; any format: longer than
 * SL_ROW_MAX or containing a NUL byte -- becomes the err row "line L: reason" instead, so
 * nothing is dropped silently.  Every batch read in one poll (at most BATCH_BYTES) gets one time
 * t = the current upper, and then every worker's upper advances to t + 1.  A file that shrinks
 * was truncated: an err row says so and reading starts again at its first line.  A trailing
 * line without '\n' waits for its newline.
 *
 * Restarts: before the uppers move to t + 1, the file offset and line number that produced
 * everything below t + 1 are written to DATA/sources/NAME/file-offsets (atomically, by rename,
 * keeping the previous entry too).  On start the source looks up the entry for its durable
 * upper and continues reading from there, so each line becomes exactly one row across any
 * number of restarts.  A crash between two workers' advances leaves uppers t and t + 1: the
 * batch is then produced again at t for the workers still at t only.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "sources/sources.h"

#define POLL_NS 100000000u    /* 100 ms */
#define READ_CHUNK (64u << 10)
#define BATCH_BYTES (4u << 20) /* at most this much file per time */

typedef struct pending {
	size_t off; /* into arena */
	size_t len;
	uint32_t key; /* worker * 2 + collection */
} pending;

typedef struct filesrc {
	char *path;
	int csv;
	uint64_t columns;
	uint32_t workers;
	int fd;
	uint64_t off;     /* file offset read so far */
	uint64_t line_no; /* complete lines seen */
	int warned;       /* an open error other than ENOENT was reported */
	char *state_dir;  /* where file-offsets lives; NULL without a data directory */
	uint64_t prev[3]; /* the previous (upper, offset, line) entry */

	/* the line being assembled */
	uint8_t *line;
	size_t line_len;
	uint64_t line_bytes; /* bytes of the current (incomplete) line read so far */
	int line_long; /* exceeded SL_ROW_MAX: bytes past it are not kept */
	int line_nul;

	/* the batch being assembled */
	uint8_t *arena;
	size_t arena_len, arena_cap;
	pending *items;
	size_t nitems, items_cap;
	sl_update *ups;
	size_t ups_cap;
	uint32_t *counts; /* 2 * workers */
	uint8_t *chunk;
} filesrc;

static void file_free(void *p)
{
	filesrc *f = p;

	if (f == NULL)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f->path);
	free(f->state_dir);
	free(f->line);
	free(f->arena);
	free(f->items);
	free(f->ups);
	free(f->counts);
	free(f->chunk);
	free(f);
}

/* Adds one row to the batch.  0 or SL_ENOMEM. */
static int file_add(filesrc *f, sl_collection coll, const void *row, size_t len)
{
	uint32_t w = 0;

	if (f->arena_len + len > f->arena_cap) {
		size_t cap = f->arena_cap ? f->arena_cap : 65536;
		uint8_t *a;

		while (cap < f->arena_len + len)
			cap *= 2;
		if ((a = realloc(f->arena, cap)) == NULL)
			return SL_ENOMEM;
		f->arena = a;
		f->arena_cap = cap;
	}
	if (f->nitems == f->items_cap) {
		size_t cap = f->items_cap ? f->items_cap * 2 : 1024;
		pending *it;

		if ((it = realloc(f->items, cap * sizeof(*it))) == NULL)
			return SL_ENOMEM;
		f->items = it;
		f->items_cap = cap;
	}
	if (len > 0)
		memcpy(f->arena + f->arena_len, row, len);
	if (f->workers > 1)
		w = sl_ingest_route((sl_bytes){f->arena + f->arena_len, len}, f->workers);
	f->items[f->nitems].off = f->arena_len;
	f->items[f->nitems].len = len;
	f->items[f->nitems].key = w * 2u + (uint32_t)coll;
	f->nitems++;
	f->arena_len += len;
	return 0;
}

static int file_add_error(filesrc *f, const char *fmt_reason, uint64_t a, uint64_t b)
{
	char msg[160], reason[120];
	int n;

	/* fmt_reason is one of this file's literals, using 0 to 2 of a and b: unused trailing
	 * arguments are allowed (C11 7.21.6.1p2), which cppcheck does not know. */
	// cppcheck-suppress wrongPrintfScanfArgNum
	snprintf(reason, sizeof(reason), fmt_reason, a, b);
	n = snprintf(msg, sizeof(msg), "line %" PRIu64 ": %s", f->line_no, reason);
	return file_add(f, SL_ERR, msg, (size_t)n);
}

/* Checks one csv line: returns NULL when it has the right shape, else a reason format whose
 * arguments (*a, *b) are filled in. */
static const char *csv_check(const uint8_t *p, size_t n, uint64_t columns, uint64_t *a,
                             uint64_t *b)
{
	size_t i = 0;
	uint64_t cols = 1;

	for (;;) {
		if (i < n && p[i] == '"') {
			i++;
			for (;;) {
				if (i == n)
					return (*a = cols, *b = 0, "unbalanced quotes in column %" PRIu64);
				if (p[i] == '"') {
					if (i + 1 < n && p[i + 1] == '"') {
						i += 2;
						continue;
					}
					i++;
					break;
				}
				i++;
			}
			if (i < n && p[i] != ',')
				return (*a = cols, *b = 0,
				        "unexpected character after closing quote in column %" PRIu64);
		} else {
			while (i < n && p[i] != ',') {
				if (p[i] == '"')
					return (*a = cols, *b = 0, "unbalanced quotes in column %" PRIu64);
				i++;
			}
		}
		if (i == n)
			break;
		i++; /* the comma */
		cols++;
	}
	if (columns > 0 && cols != columns)
		return (*a = columns, *b = cols, "expected %" PRIu64 " columns, got %" PRIu64);
	return NULL;
}

/* The line in f->line is complete: turn it into a row or an error. */
static int file_line_done(filesrc *f)
{
	const char *why;
	uint64_t a = 0, b = 0;
	int rc;

	f->line_no++;
	if (f->line_long)
		rc = file_add_error(f, "longer than %" PRIu64 " bytes", SL_ROW_MAX, 0);
	else if (f->line_nul)
		rc = file_add_error(f, "contains a NUL byte", 0, 0);
	else if (f->csv && (why = csv_check(f->line, f->line_len, f->columns, &a, &b)) != NULL)
		rc = file_add_error(f, why, a, b);
	else
		rc = file_add(f, SL_OK, f->line, f->line_len);
	f->line_len = 0;
	f->line_bytes = 0;
	f->line_long = 0;
	f->line_nul = 0;
	return rc;
}

static int file_feed(filesrc *f, const uint8_t *p, size_t n)
{
	const uint8_t *nl;
	size_t seg;
	int rc;

	while (n > 0) {
		nl = memchr(p, '\n', n);
		seg = nl ? (size_t)(nl - p) : n;
		if (!f->line_long) {
			if (f->line_len + seg > SL_ROW_MAX) {
				f->line_long = 1;
			} else {
				memcpy(f->line + f->line_len, p, seg);
				f->line_len += seg;
			}
		}
		if (!f->line_nul && memchr(p, '\0', seg) != NULL)
			f->line_nul = 1;
		f->line_bytes += seg;
		if (nl == NULL)
			return 0;
		if ((rc = file_line_done(f)) != 0)
			return rc;
		p += seg + 1;
		n -= seg + 1;
	}
	return 0;
}

/* Records that everything below `upper` came from the file up to `offset` (line `line`). */
static int offsets_write(filesrc *f, uint64_t upper, uint64_t offset, uint64_t line)
{
	char tmp[4200], path[4200], text[160];
	if (f->state_dir == NULL)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s/.file-offsets.tmp", f->state_dir);
	snprintf(path, sizeof(path), "%s/file-offsets", f->state_dir);
	int n = snprintf(text, sizeof(text), "%" PRIu64 " %" PRIu64 " %" PRIu64 "\n%" PRIu64 " %" PRIu64
	                 " %" PRIu64 "\n", f->prev[0], f->prev[1], f->prev[2], upper, offset, line);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int rc = write(fd, text, (size_t)n) == n ? 0 : (errno ? -errno : SL_EIO);
	close(fd);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc == 0) {
		f->prev[0] = upper;
		f->prev[1] = offset;
		f->prev[2] = line;
	}
	return rc;
}

/* Finds where to continue for the durable upper: 0 (offset and line set), or SL_EIO when the
 * upper has no entry (the state file was lost or belongs to other data). */
static int offsets_resume(filesrc *f, uint64_t upper)
{
	char path[4200];
	uint64_t e[2][3] = {{0}};
	if (upper == 0 || f->state_dir == NULL)
		return 0;
	snprintf(path, sizeof(path), "%s/file-offsets", f->state_dir);
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		return SL_EIO;
	int n = fscanf(fp, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64,
	               &e[0][0], &e[0][1], &e[0][2], &e[1][0], &e[1][1], &e[1][2]);
	fclose(fp);
	if (n != 6)
		return SL_EIO;
	for (int i = 1; i >= 0; i--) {
		if (e[i][0] == upper) {
			f->off = e[i][1];
			f->line_no = e[i][2];
			memcpy(f->prev, e[i], sizeof(f->prev));
			return 0;
		}
	}
	return SL_EIO;
}

/* Appends the batch at time t and advances every worker to t + 1. */
static int file_flush(filesrc *f, sl_source *src)
{
	uint64_t t = SL_TIME_CLOSED, u;
	uint32_t g, w;
	size_t i, j;
	int rc;

	if (f->nitems == 0)
		return 0;
	/* The least upper: after a crash between two advances, the workers ahead already have
	 * this batch (see the top of the file). */
	for (w = 0; w < f->workers; w++) {
		if (!sl_source_hosts(src, w))
			continue; /* in a cluster, another process keeps that worker's rows */
		u = sl_source_upper(src, w);
		if (u == SL_TIME_CLOSED)
			return SL_ECLOSED;
		if (u < t)
			t = u;
	}
	if (t == SL_TIME_CLOSED) { /* hosts no worker of this source */
		f->nitems = 0;
		f->arena_len = 0;
		return 0;
	}
	if (f->ups_cap < f->nitems) {
		sl_update *ups = realloc(f->ups, f->nitems * sizeof(*ups));

		if (ups == NULL)
			return SL_ENOMEM;
		f->ups = ups;
		f->ups_cap = f->nitems;
	}
	memset(f->counts, 0, 2u * f->workers * sizeof(*f->counts));
	for (i = 0; i < f->nitems; i++)
		f->counts[f->items[i].key]++;
	for (g = 0; g < 2u * f->workers; g++) {
		if (f->counts[g] == 0 || !sl_source_hosts(src, g / 2u) || sl_source_upper(src, g / 2u) > t)
			continue;
		for (i = 0, j = 0; i < f->nitems; i++) {
			if (f->items[i].key != g)
				continue;
			f->ups[j].row.ptr = f->arena + f->items[i].off;
			f->ups[j].row.len = f->items[i].len;
			f->ups[j].time = t;
			f->ups[j].diff = 1;
			j++;
		}
		if ((rc = sl_source_append(src, g / 2u, (sl_collection)(g % 2u), f->ups, j)) != 0)
			return rc;
	}
	/* The offset of the last complete line: a partial line at the end is read again. */
	if ((rc = offsets_write(f, t + 1, f->off - f->line_bytes, f->line_no)) != 0)
		return rc;
	for (w = 0; w < f->workers; w++) {
		if (sl_source_hosts(src, w) && (rc = sl_source_advance(src, w, t + 1)) != 0)
			return rc;
	}
	f->nitems = 0;
	f->arena_len = 0;
	return 0;
}

/* Reads what is new in the file, at most BATCH_BYTES.  Returns 1 if more is waiting, 0 if the
 * end was reached (or the file is missing), negative on a fatal error. */
static int file_poll(filesrc *f, sl_source *src)
{
	struct stat sb;
	size_t total = 0;
	ssize_t got;
	int rc;

	if (f->fd < 0) {
		if ((f->fd = open(f->path, O_RDONLY | O_CLOEXEC)) < 0) {
			if (errno != ENOENT && !f->warned) {
				sli_kv kv[] = {{"path", f->path, 0}, {"error", strerror(errno), 0}, {NULL, NULL, 0}};
				sli_elog(SLI_LOG_WARN, "source_error", kv, "file source cannot open %s: %s (retrying)",
				         f->path, strerror(errno));
				f->warned = 1;
			}
			return 0;
		}
		f->warned = 0;
	}
	if (fstat(f->fd, &sb) != 0)
		return -errno;
	if ((uint64_t)sb.st_size < f->off) {
		char msg[96];
		int n = snprintf(msg, sizeof(msg),
		                 "file truncated after line %" PRIu64 "; reading it again from line 1",
		                 f->line_no);

		if ((rc = file_add(f, SL_ERR, msg, (size_t)n)) != 0)
			return rc;
		f->off = 0;
		f->line_no = 0;
		f->line_len = 0;
		f->line_bytes = 0;
		f->line_long = 0;
		f->line_nul = 0;
	}
	while ((uint64_t)sb.st_size > f->off && total < BATCH_BYTES) {
		got = pread(f->fd, f->chunk, READ_CHUNK, (off_t)f->off);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (got == 0)
			break;
		f->off += (uint64_t)got;
		total += (size_t)got;
		if ((rc = file_feed(f, f->chunk, (size_t)got)) != 0)
			return rc;
	}
	if ((rc = file_flush(f, src)) != 0)
		return rc;
	return (uint64_t)sb.st_size > f->off;
}

static void *file_main(void *arg)
{
	sli_source_runner *r = arg;
	filesrc *f = r->state;
	int rc;

	while (!sli_runner_stopping(r)) {
		rc = file_poll(f, r->src);
		if (rc < 0) {
			if (rc != SL_ECLOSED) {
				sli_kv kv[] = {{"path", f->path, 0}, {"error", sl_strerror(rc), 0}, {NULL, NULL, 0}};
				sli_elog(SLI_LOG_ERROR, "source_stopped", kv, "file source %s stopped: %s", f->path,
				         sl_strerror(rc));
			}
			break;
		}
		if (rc == 0)
			sli_runner_sleep(r, POLL_NS);
	}
	return NULL;
}

int sli_file_start(sl_storage *st, sli_spec *sp, sli_source_runner **out, char *err,
                   size_t errlen)
{
	const char *path = sli_spec_get(sp, "path");
	const char *format = sli_spec_get(sp, "format");
	uint64_t columns, workers;
	int csv = 0, rc, have_columns = sli_spec_get(sp, "columns") != NULL;
	filesrc *f;
	sl_source *src;
	sli_source_runner *r;

	if (path == NULL || *path == '\0') {
		snprintf(err, errlen, "source '%s': kind file needs path=P", sp->name);
		return SL_EARG;
	}
	if (format != NULL && strcmp(format, "csv") == 0) {
		csv = 1;
	} else if (format != NULL && strcmp(format, "text") != 0) {
		snprintf(err, errlen, "source '%s': format=%s is not text or csv", sp->name, format);
		return SL_EARG;
	}
	if ((rc = sli_spec_get_u64(sp, "columns", 0, 0, SL_ROW_MAX, &columns, err, errlen)) != 0 ||
	    (rc = sli_spec_get_u64(sp, "workers", 1, 1, SLI_SOURCE_MAX_WORKERS, &workers, err,
	                           errlen)) != 0 ||
	    (rc = sli_spec_check_used(sp, err, errlen)) != 0)
		return rc;
	if (have_columns && !csv) {
		snprintf(err, errlen, "source '%s': columns=C needs format=csv", sp->name);
		return SL_EARG;
	}

	if ((f = calloc(1, sizeof(*f))) == NULL)
		goto err_nomem;
	f->fd = -1;
	f->csv = csv;
	f->columns = columns;
	f->workers = (uint32_t)workers;
	f->path = strdup(path);
	f->line = malloc(SL_ROW_MAX);
	f->chunk = malloc(READ_CHUNK);
	f->counts = calloc(2 * workers, sizeof(*f->counts));
	if (f->path == NULL || f->line == NULL || f->chunk == NULL || f->counts == NULL)
		goto err_free;

	if ((rc = sli_source_register_spec(st, sp, f->workers, 0, &src, err, errlen)) != 0) {
		file_free(f);
		return rc;
	}
	if (sl_storage_data_dir(st) != NULL) {
		size_t n = strlen(sl_storage_data_dir(st)) + strlen(sp->name) + 16;
		if ((f->state_dir = malloc(n)) == NULL)
			goto err_free;
		snprintf(f->state_dir, n, "%s/sources/%s", sl_storage_data_dir(st), sp->name);
		uint64_t upper = SL_TIME_CLOSED;
		for (uint32_t w = 0; w < f->workers; w++)
			if (sl_source_hosts(src, w) && sl_source_upper(src, w) < upper)
				upper = sl_source_upper(src, w);
		if (upper != SL_TIME_CLOSED && offsets_resume(f, upper) != 0) {
			snprintf(err, errlen, "source '%s': %s/file-offsets has no entry for the durable "
			         "frontier %" PRIu64 ": cannot tell where to continue in %s", sp->name,
			         f->state_dir, upper, path);
			file_free(f);
			return SL_EIO;
		}
	}
	if ((r = sli_runner_new(src)) == NULL)
		goto err_free;
	r->state = f;
	r->free_state = file_free;
	if ((rc = sli_runner_spawn(r, file_main)) != 0) {
		snprintf(err, errlen, "source '%s': cannot start its thread: %s", sp->name,
		         sl_strerror(rc));
		sli_source_stop(r);
		return rc;
	}
	*out = r;
	return 0;

err_free:
	file_free(f);
err_nomem:
	snprintf(err, errlen, "source '%s': out of memory", sp->name);
	return SL_ENOMEM;
}
