/*
 * compact.c - compaction: bounded history.
 *
 * With `retain` R, each worker keeps full history for the last R time units.  Before that
 * frontier, `since`, its updates live consolidated in one snapshot per collection: every update
 * at a time below `since` is advanced to `since`, equal rows are summed, zero counts dropped,
 * rows sorted by their bytes.  Whole log segments below `since` are then removed, so a counter
 * with keep=K running forever holds about K rows plus R time units of history on disk.
 *
 * `since` never passes a connected subscription's frontier (a read hold): a subscriber is
 * never denied an update it has not been sent.  A subscription from a time below `since` is
 * served the snapshot first (SubscribeOk says so), then the log from `since` on.
 *
 * On disk the snapshot of a worker is one file, DATA/sources/NAME/W/snapshot, replaced
 * atomically (written, synced, renamed) before any segment it covers is deleted:
 *   u32 magic "SLSN" | u32 version 1 | u64 since | u32 ok_bytes | u32 err_bytes |
 *   u32 crc32c(ok events, err events) | ok events | err events
 * where the events are MESSAGES events at `since` (the log's encoding).
 *
 * Everything here runs on the network thread (the only reader of cursors and holds), a few
 * workers per tick; a compaction costs one pass over the history it consolidates.
 */
#include <inttypes.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "log/crc32c.h"
#include "storage/block_write.h"
#include "storage/storage_int.h"

#define SNAP_MAGIC 0x4e534c53u /* "SLSN" */
#define SNAP_HDR 28u
#define COMPACTIONS_PER_TICK 4

struct sli_snap *sli_snap_ref(struct sli_snap *s)
{
	if (s)
		s->refs++;
	return s;
}

void sli_snap_unref(struct sli_snap *s)
{
	if (s && --s->refs == 0) {
		sli_log_free(s->log);
		free(s);
	}
}

void sli_worker_compaction_free(struct sworker *w)
{
	for (int coll = 0; coll < 2; coll++) {
		sli_snap_unref(w->snap[coll]);
		w->snap[coll] = NULL;
	}
}

/* ---- consolidation: row -> summed diff ---- */

struct centry {
	uint64_t hash;
	const uint8_t *row; /* borrowed from a log or snapshot alive during the compaction */
	uint32_t len;
	int64_t diff;
};

struct ctable {
	struct centry *e;
	size_t cap, n;
};

static uint64_t hash_row(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h | 1; /* 0 marks an empty slot */
}

static int ctable_grow(struct ctable *t)
{
	size_t cap = t->cap ? t->cap * 2 : 1024;
	struct centry *e = calloc(cap, sizeof(*e));
	if (e == NULL)
		return SL_ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		if (t->e[i].hash == 0)
			continue;
		size_t j = t->e[i].hash & (cap - 1);
		while (e[j].hash != 0)
			j = (j + 1) & (cap - 1);
		e[j] = t->e[i];
	}
	free(t->e);
	t->e = e;
	t->cap = cap;
	return 0;
}

static int ctable_add(struct ctable *t, sl_bytes row, int64_t diff)
{
	if (2 * (t->n + 1) > t->cap && ctable_grow(t) != 0)
		return SL_ENOMEM;
	uint64_t h = hash_row(row.ptr, row.len);
	size_t j = h & (t->cap - 1);
	for (;; j = (j + 1) & (t->cap - 1)) {
		struct centry *e = &t->e[j];
		if (e->hash == 0) {
			*e = (struct centry){h, row.ptr, (uint32_t)row.len, diff};
			t->n++;
			return 0;
		}
		if (e->hash == h && e->len == row.len && memcmp(e->row, row.ptr, row.len) == 0) {
			e->diff += diff;
			return 0;
		}
	}
}

/* Adds the updates of events[0, n) at times in [lo, hi). */
static int add_events(struct ctable *t, const uint8_t *events, size_t n, uint64_t lo, uint64_t hi)
{
	sl_bytes rest = {events, n};
	sli_event ev;
	while (sli_events_next(&rest, &ev) == 1) {
		if (ev.tag != SLI_EV_MESSAGES || ev.time < lo || ev.time >= hi)
			continue;
		sl_bytes ups = ev.body, row;
		int64_t diff;
		while (sli_updates_next(&ups, &diff, &row) == 1)
			if (ctable_add(t, row, diff) != 0)
				return SL_ENOMEM;
	}
	return 0;
}

/* Adds every update of log[start, end) at times in [lo, hi). */
static int add_log(struct ctable *t, const sli_log *log, uint64_t lo, uint64_t hi)
{
	uint64_t pos = sli_log_start(log), end = sli_log_end(log);
	while (pos < end) {
		sli_block b;
		sli_log_block(log, pos, &b);
		if (b.nbytes > 0 && b.max_time >= lo && b.min_time < hi &&
		    add_events(t, b.events, b.nbytes, lo, hi) != 0)
			return SL_ENOMEM;
		pos = b.next;
	}
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct centry *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->row, y->row, n);
	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* A new snapshot at `since` holding the table's non-zero rows, sorted. */
static int snap_build(struct ctable *t, uint64_t since, struct sli_snap **out)
{
	struct sli_snap *s = calloc(1, sizeof(*s));
	sl_update *ups = NULL;
	size_t n = 0;
	int rc = SL_ENOMEM;
	if (s == NULL || sli_log_new(&s->log) != 0)
		goto err;
	for (size_t i = 0; i < t->cap; i++)
		if (t->e[i].hash != 0 && t->e[i].diff != 0)
			t->e[n++] = t->e[i]; /* compact in place: the table is not probed again */
	if (n > 1)
		qsort(t->e, n, sizeof(*t->e), cmp_entry);
	if (n > 0 && (ups = calloc(n, sizeof(*ups))) == NULL)
		goto err;
	for (size_t i = 0; i < n; i++)
		ups[i] = (sl_update){{t->e[i].row, t->e[i].len}, since, t->e[i].diff};
	if ((rc = sli_log_write_updates(s->log, ups, n)) != 0)
		goto err;
	free(ups);
	s->refs = 1;
	s->since = since;
	*out = s;
	return 0;
err:
	free(ups);
	if (s)
		sli_log_free(s->log);
	free(s);
	return rc;
}

/* Appends every events byte of log to b (a snapshot log holds only MESSAGES blocks). */
static int log_events(const sli_log *log, sli_buf *b)
{
	uint64_t pos = sli_log_start(log), end = sli_log_end(log);
	while (pos < end) {
		sli_block blk;
		sli_log_block(log, pos, &blk);
		if (sli_buf_reserve(b, blk.nbytes) != 0)
			return SL_ENOMEM;
		memcpy(b->ptr + b->len, blk.events, blk.nbytes);
		b->len += blk.nbytes;
		pos = blk.next;
	}
	return 0;
}

static void worker_dir(sl_storage *st, struct sl_source *src, struct sworker *w, char *buf, size_t n)
{
	snprintf(buf, n, "%s/sources/%s/%u", st->cfg.data_dir, src->name, w->index);
}

static int snap_persist(sl_storage *st, struct sworker *w, struct sli_snap *snap[2])
{
	char dir[4096], tmp[4200], path[4200];
	sli_buf b;
	int rc;
	sli_buf_init(&b);
	if ((rc = sli_buf_reserve(&b, SNAP_HDR)) != 0)
		goto out;
	b.len = SNAP_HDR;
	size_t ok_bytes;
	if ((rc = log_events(snap[0]->log, &b)) != 0)
		goto out;
	ok_bytes = b.len - SNAP_HDR;
	if ((rc = log_events(snap[1]->log, &b)) != 0)
		goto out;
	sli_set_u32(b.ptr, SNAP_MAGIC);
	sli_set_u32(b.ptr + 4, 1);
	sli_set_u64(b.ptr + 8, snap[0]->since);
	sli_set_u32(b.ptr + 16, (uint32_t)ok_bytes);
	sli_set_u32(b.ptr + 20, (uint32_t)(b.len - SNAP_HDR - ok_bytes));
	sli_set_u32(b.ptr + 24, sli_crc32c(0, b.ptr + SNAP_HDR, b.len - SNAP_HDR));

	worker_dir(st, w->src, w, dir, sizeof(dir));
	snprintf(tmp, sizeof(tmp), "%s/.snapshot.tmp", dir);
	snprintf(path, sizeof(path), "%s/snapshot", dir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	size_t off = 0;
	while (off < b.len) {
		ssize_t k = write(fd, b.ptr + off, b.len - off);
		if (k < 0) {
			rc = errno == EINTR ? 0 : -errno;
			if (rc != 0)
				break;
			continue;
		}
		off += (size_t)k;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0) {
		unlink(tmp);
		goto out;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
out:
	sli_buf_fini(&b);
	return rc;
}

/* Builds one collection's snapshot from a run of events (a snapshot file's part). */
static int snap_from_events(const uint8_t *events, size_t n, uint64_t since, struct sli_snap **out)
{
	struct ctable t = {0};
	int rc = add_events(&t, events, n, since, since + 1);
	if (rc == 0)
		rc = snap_build(&t, since, out);
	free(t.e);
	return rc;
}

int sli_snapshot_load(sl_storage *st, struct sl_source *src, struct sworker *w)
{
	char dir[4096], path[4200];
	worker_dir(st, src, w, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/snapshot", dir);
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return errno == ENOENT ? 0 : -errno;
	uint8_t *buf = NULL;
	long size = -1;
	int rc = SL_EIO;
	if (fseek(f, 0, SEEK_END) == 0)
		size = ftell(f);
	if (size >= (long)SNAP_HDR && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)size)) != NULL &&
	    fread(buf, 1, (size_t)size, f) == (size_t)size) {
		uint64_t ok_bytes = sli_get_u32(buf + 16), err_bytes = sli_get_u32(buf + 20);
		if (sli_get_u32(buf) == SNAP_MAGIC && sli_get_u32(buf + 4) == 1 &&
		    SNAP_HDR + ok_bytes + err_bytes == (uint64_t)size &&
		    sli_crc32c(0, buf + SNAP_HDR, (size_t)size - SNAP_HDR) == sli_get_u32(buf + 24) &&
		    sli_events_validate((sl_bytes){buf + SNAP_HDR, ok_bytes}) == 0 &&
		    sli_events_validate((sl_bytes){buf + SNAP_HDR + ok_bytes, err_bytes}) == 0)
			rc = 0;
		uint64_t since = sli_get_u64(buf + 8);
		if (rc == 0 && since > atomic_load(&w->upper))
			rc = SL_EIO; /* a snapshot ahead of the log it came from */
		if (rc == 0)
			rc = snap_from_events(buf + SNAP_HDR, ok_bytes, since, &w->snap[0]);
		if (rc == 0)
			rc = snap_from_events(buf + SNAP_HDR + ok_bytes, err_bytes, since, &w->snap[1]);
		if (rc == 0)
			w->since = since;
	}
	fclose(f);
	free(buf);
	if (rc == SL_EIO)
		sli_storage_set_error("%s is corrupt (bad header, size or checksum): restore it or remove "
		                      "this worker's data", path);
	else if (rc != 0)
		sli_storage_set_error("cannot load %s: %s", path, sl_strerror(rc));
	return rc;
}

/* The position up to which whole chunks of log hold only blocks below `since` (and, for a
 * durable log, lie before the last upper marker, which recovery needs). */
static uint64_t droppable_end(const sli_log *log, uint64_t since, uint64_t limit)
{
	uint64_t chunk = sli_log_chunk_size(log);
	uint64_t pos = sli_log_start(log), end = sli_log_end(log), drop = pos;
	uint64_t chunk_end = pos - (pos & (chunk - 1)) + chunk;
	while (pos < end && chunk_end <= limit) {
		sli_block b;
		sli_log_block(log, pos, &b);
		uint64_t at = b.next - SLI_BLOCK_HDR - b.nbytes;
		if (at >= chunk_end) { /* crossed into the next chunk: the previous is droppable */
			drop = chunk_end;
			chunk_end = at - (at & (chunk - 1)) + chunk;
			if (chunk_end > limit)
				break;
		}
		if (b.nbytes > 0 && b.max_time >= since)
			break;
		pos = b.next;
	}
	return drop;
}

static int compact_worker(sl_storage *st, struct sworker *w, uint64_t since)
{
	struct sli_snap *fresh[2] = {NULL, NULL};
	int rc = 0;
	for (int coll = 0; coll < 2 && rc == 0; coll++) {
		struct ctable t = {0};
		if (w->snap[coll])
			rc = add_log(&t, w->snap[coll]->log, w->since, w->since + 1);
		if (rc == 0)
			rc = add_log(&t, w->log[coll], w->since, since);
		if (rc == 0)
			rc = snap_build(&t, since, &fresh[coll]);
		free(t.e);
	}
	if (rc == 0 && st->cfg.data_dir != NULL)
		rc = snap_persist(st, w, fresh);
	if (rc != 0) {
		sli_snap_unref(fresh[0]);
		sli_snap_unref(fresh[1]);
		if (st->cfg.warn) {
			char msg[256];
			snprintf(msg, sizeof(msg), "compaction of %s worker %u failed: %s", w->src->name,
			         w->index, sl_strerror(rc));
			st->cfg.warn(st->cfg.warn_arg, msg);
		}
		return rc;
	}
	for (int coll = 0; coll < 2; coll++) {
		sli_snap_unref(w->snap[coll]);
		w->snap[coll] = fresh[coll];
	}
	w->since = since;
	/* Only now, with the snapshot durable, may the segments it covers go. */
	uint64_t dropped = 0;
	for (int coll = 0; coll < 2; coll++) {
		uint64_t limit = st->cfg.data_dir ? atomic_load(&w->marker_end[coll]) : UINT64_MAX;
		uint64_t start = sli_log_start(w->log[coll]);
		sli_log_drop_before(w->log[coll], droppable_end(w->log[coll], since, limit));
		dropped += sli_log_start(w->log[coll]) - start;
	}
	if (sli_elog_enabled(SLI_LOG_INFO)) {
		char wk[16], sn[24], dr[24];
		snprintf(wk, sizeof(wk), "%u", w->index);
		snprintf(sn, sizeof(sn), "%" PRIu64, since);
		snprintf(dr, sizeof(dr), "%" PRIu64, dropped);
		sli_kv kv[] = {{"source", w->src->name, 0}, {"worker", wk, 1}, {"since", sn, 1},
		               {"dropped_bytes", dr, 1}, {NULL, NULL, 0}};
		sli_elog(SLI_LOG_INFO, "compaction", kv, "compacted source %s worker %s to since %s: "
		         "%s log bytes dropped", w->src->name, wk, sn, dr);
	}
	return 0;
}

void sli_compact_tick(sl_storage *st)
{
	uint64_t retain = st->cfg.retain;
	int budget = COMPACTIONS_PER_TICK;
	if (retain == 0)
		return;
	/* After a start, subscribers that were connected before reconnect and re-establish their
	 * read holds; compacting before they are back would make them re-snapshot needlessly. */
	if (sli_now_ms() < st->compact_after_ms)
		return;
	pthread_mutex_lock(&st->src_mu);
	size_t nsources = st->nsources;
	pthread_mutex_unlock(&st->src_mu);
	/* Sources are only ever added; the table may move under src_mu, so each is looked up. */
	for (size_t i = 0; i < nsources && budget > 0; i++) {
		pthread_mutex_lock(&st->src_mu);
		struct sl_source *src = st->sources[i];
		pthread_mutex_unlock(&st->src_mu);
		for (uint32_t k = 0; k < src->nworkers && budget > 0; k++) {
			struct sworker *w = &src->w[k];
			/* only what is published may be consolidated (replication may hold it back) */
			uint64_t upper = sli_worker_published(st, w);
			if (upper == SL_TIME_CLOSED || upper <= retain)
				continue;
			uint64_t since = upper - retain;
			for (struct sub *s = w->subs; s != NULL; s = s->wnext)
				if (s->sent_upper < since)
					since = s->sent_upper; /* the read hold */
			if (since <= w->since)
				continue;
			/* Consolidate only when it frees a whole segment. */
			int worth = 0;
			for (int coll = 0; coll < 2; coll++) {
				uint64_t limit = st->cfg.data_dir ? atomic_load(&w->marker_end[coll]) : UINT64_MAX;
				if (droppable_end(w->log[coll], since, limit) > sli_log_start(w->log[coll]))
					worth = 1;
			}
			if (!worth)
				continue;
			compact_worker(st, w, since);
			budget--;
		}
	}
}
