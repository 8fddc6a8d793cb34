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
 * keeping the previous entry too: statefile.c).  On start the source looks up the entry for
 * its durable upper and continues reading from there, so each line becomes exactly one row
 * across any number of restarts.  A crash between two workers' advances leaves uppers t and
 * t + 1: the batch is then produced again at t for the workers still at t only.
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

typedef struct filesrc {
	char *path;
	int csv;
	uint64_t columns;
	uint32_t workers;
	int fd;
	uint64_t off;     /* file offset read so far */
	uint64_t line_no; /* complete lines seen */
	int warned;       /* an open error other than ENOENT was reported */
	sli_statefile state; /* file-offsets: (upper, offset, line) entries */

	/* the line being assembled */
	uint8_t *line;
	size_t line_len;
	uint64_t line_bytes; /* bytes of the current (incomplete) line read so far */
	int line_long; /* exceeded SL_ROW_MAX: bytes past it are not kept */
	int line_nul;

	sli_rowbatch batch; /* the batch being assembled */
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
	sli_statefile_fini(&f->state);
	free(f->line);
	sli_rowbatch_fini(&f->batch);
	free(f->chunk);
	free(f);
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
	return sli_rowbatch_add(&f->batch, SL_ERR, msg, (size_t)n, 1);
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
		rc = sli_rowbatch_add(&f->batch, SL_OK, f->line, f->line_len, 1);
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

/* Appends the batch at time t and advances every worker to t + 1. */
static int file_flush(filesrc *f, sl_source *src)
{
	uint64_t t = SL_TIME_CLOSED, u;
	uint32_t w;
	int rc;

	if (f->batch.nitems == 0)
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
		sli_rowbatch_clear(&f->batch);
		return 0;
	}
	/* The offset of the last complete line: a partial line at the end is read again. */
	uint64_t entry[3] = {t + 1, f->off - f->line_bytes, f->line_no};
	if ((rc = sli_statefile_write(&f->state, entry)) != 0 ||
	    (rc = sli_rowbatch_commit(&f->batch, src, t, t + 1)) != 0)
		return rc;
	sli_rowbatch_clear(&f->batch);
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

		if ((rc = sli_rowbatch_add(&f->batch, SL_ERR, msg, (size_t)n, 1)) != 0)
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
		/* A full disk: the batch read is kept whole and committed again, without reading more
		 * (so what waits stays bounded), until it goes in or the source stops. */
		for (uint64_t backoff = 0; sli_source_retryable(rc);) {
			if (sli_runner_backoff(r, &backoff))
				return NULL;
			rc = file_flush(f, r->src);
		}
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
	if (f->path == NULL || f->line == NULL || f->chunk == NULL ||
	    sli_rowbatch_init(&f->batch, f->workers) != 0)
		goto err_free;

	if ((rc = sli_source_register_spec(st, sp, f->workers, 0, &src, err, errlen)) != 0) {
		file_free(f);
		return rc;
	}
	if (sli_statefile_init(&f->state, st, sp->name, "file-offsets", 3) != 0)
		goto err_free;
	if (f->state.dir != NULL) {
		uint64_t upper = SL_TIME_CLOSED, e[3];
		for (uint32_t w = 0; w < f->workers; w++)
			if (sl_source_hosts(src, w) && sl_source_upper(src, w) < upper)
				upper = sl_source_upper(src, w);
		if (upper != SL_TIME_CLOSED) {
			if (sli_statefile_resume(&f->state, upper, e) != 0) {
				snprintf(err, errlen, "source '%s': %s/file-offsets has no entry for the "
				         "durable frontier %" PRIu64 ": cannot tell where to continue in %s",
				         sp->name, f->state.dir, upper, path);
				file_free(f);
				return SL_EIO;
			}
			f->off = e[1];
			f->line_no = e[2];
		}
	}
	return sli_runner_start(src, sp->name, f, file_free, file_main, out, err, errlen);

err_free:
	file_free(f);
err_nomem:
	snprintf(err, errlen, "source '%s': out of memory", sp->name);
	return SL_ENOMEM;
}
