/*
 * truncate.c - cutting a worker's logs back to a time (sli_source_truncate, replica_hooks.h):
 * what a replica rejoining under a new leader does to the suffix the new leader does not have.
 *
 * Where to cut.  Blocks go whole, and a log's blocks are in time order only mostly (an append
 * may be at any time >= the upper, so a block at a later time can come before one at an
 * earlier time).  The cut of each log is the first block position p after which nothing is
 * kept, and the new upper U the largest value <= time such that everything before p is below U
 * and nothing from p on is: starting with U = time, p is the first block (an upper marker too)
 * with max_time >= U, U is lowered to the least min_time of the blocks with events from p on,
 * and both are taken again until they stay put (for both logs together: they share the upper).
 *
 * Where it runs.  On the network thread once the storage is started (a request posted under
 * trunc_mu, a wake, and a wait): serving and compaction run there, so no reader is walking a
 * block while it is zeroed and `since` cannot move in the middle.  The worker's lock keeps its
 * appenders out.  Before the start, on the caller's thread.
 *
 * On disk.  The record first (durable.c: W/truncate, synced), then the cut of each log
 * (sli_log_truncate_durable), the marker of U, a sync of both logs, and the record is removed.
 * What a crash costs: before the record is durable, nothing happened; after it, the next open
 * redoes the cut and the marker from the record, so it recovers exactly upper U and the kept
 * blocks, even when the crash left a half-zeroed segment.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "log/disklog.h"
#include "storage/storage_int.h"

struct sli_trunc_req {
	struct sworker *w;
	uint64_t time;
	uint64_t upper; /* OUT */
	int rc;
	int done;
	char err[512]; /* the loop thread's error message (sl_storage_last_error is per thread) */
};

/* The position of the first block of log (an upper marker too) with max_time >= u, or the
 * log's end; *least is the least min_time of the blocks with events from there on (UINT64_MAX
 * when there are none). */
static uint64_t first_reaching(const sli_log *log, uint64_t u, uint64_t *least)
{
	uint64_t pos = sli_log_start(log), end = sli_log_end(log), cut = end;
	*least = UINT64_MAX;
	while (pos < end) {
		sli_block b;
		sli_log_block(log, pos, &b);
		if (cut == end && b.max_time >= u)
			cut = pos;
		if (cut != end && b.nbytes > 0 && b.min_time < *least)
			*least = b.min_time;
		pos = b.next;
	}
	return cut;
}

/* The cut of both logs of w (cut[coll]) and the upper they leave, for a truncation at time. */
static uint64_t find_cut(const struct sworker *w, uint64_t time, uint64_t cut[2])
{
	uint64_t u = time;
	for (;;) {
		uint64_t least = u;
		for (int coll = 0; coll < 2; coll++) {
			uint64_t l;
			cut[coll] = first_reaching(w->log[coll], u, &l);
			if (l < least)
				least = l;
		}
		if (least >= u)
			return u;
		u = least; /* a block reaching u starts below it: cut before it, and again */
	}
}

/* Whether a subscriber of w was sent, or is positioned past, anything the cut drops. */
static int subscriber_beyond(const struct sworker *w, const uint64_t cut[2], uint64_t upper)
{
	for (const struct sub *s = w->subs; s != NULL; s = s->wnext)
		if (s->sent_upper > upper || s->cursor[0] > cut[0] || s->cursor[1] > cut[1])
			return 1;
	return 0;
}

/* The truncation itself, on the thread that may read w's logs without a race (see top). */
static int truncate_worker(sl_storage *st, struct sworker *w, uint64_t time, uint64_t *upper_out)
{
	uint64_t cut[2];
	int rc = 0;
	sli_storage_set_error("%s", "");
	pthread_mutex_lock(&w->mu);
	uint64_t upper = atomic_load(&w->upper);
	if (time >= upper) {
		*upper_out = upper;
		goto out;
	}
	if (time < w->since) {
		sli_storage_set_error("cannot truncate %s worker %u to %llu: history below since %llu "
		                      "is compacted", w->src->name, w->index, (unsigned long long)time,
		                      (unsigned long long)w->since);
		rc = SL_EARG;
		goto out;
	}
	upper = find_cut(w, time, cut);
	if (upper < w->since) {
		sli_storage_set_error("cannot truncate %s worker %u to %llu: a block reaching it starts "
		                      "at %llu, below since %llu", w->src->name, w->index,
		                      (unsigned long long)time, (unsigned long long)upper,
		                      (unsigned long long)w->since);
		rc = SL_EARG;
		goto out;
	}
	if (subscriber_beyond(w, cut, upper)) {
		sli_storage_set_error("cannot truncate %s worker %u to %llu: a subscriber was served "
		                      "beyond it", w->src->name, w->index, (unsigned long long)upper);
		rc = SL_ETIME;
		goto out;
	}
	int durable = st->cfg.data_dir != NULL;
	if (durable && (rc = sli_worker_save_truncation(st, w, cut, upper)) != 0)
		goto out; /* nothing changed */
	/* From here on the record stands for the cut: each step is done even after a failure,
	 * so memory matches what the next open makes of the record. */
	for (int coll = 0; coll < 2; coll++) {
		int r = sli_log_truncate_durable(w->log[coll], cut[coll]);
		if (rc == 0)
			rc = r;
	}
	atomic_store_explicit(&w->upper, upper, memory_order_release);
	if (durable && rc == 0)
		rc = sli_worker_mark_upper(st, w, upper);
	for (int coll = 0; durable && coll < 2 && rc == 0; coll++)
		rc = sli_log_sync(w->log[coll]);
	if (durable && rc == 0)
		rc = sli_worker_clear_truncation(st, w);
	if (rc != 0)
		sli_storage_set_error("truncating %s worker %u to %llu: %s (the next open finishes it)",
		                      w->src->name, w->index, (unsigned long long)upper,
		                      sl_strerror(rc));
	else
		*upper_out = upper;
	sli_worker_note_append(w, rc);
out:
	pthread_mutex_unlock(&w->mu);
	return rc;
}

void sli_truncate_on_wake(sl_storage *st)
{
	if (!atomic_load_explicit(&st->trunc_want, memory_order_acquire))
		return;
	pthread_mutex_lock(&st->trunc_mu);
	struct sli_trunc_req *req = st->trunc_req;
	atomic_store(&st->trunc_want, 0);
	if (req != NULL && !req->done) {
		req->rc = truncate_worker(st, req->w, req->time, &req->upper);
		snprintf(req->err, sizeof(req->err), "%s", sl_storage_last_error());
		req->done = 1;
		pthread_cond_broadcast(&st->trunc_cv);
	}
	pthread_mutex_unlock(&st->trunc_mu);
}

int sli_source_truncate(sl_source *src, uint32_t worker, uint64_t time, uint64_t *upper_out)
{
	if (src == NULL || worker >= src->nworkers || upper_out == NULL)
		return SL_EARG;
	sl_storage *st = src->st;
	if (!sli_hosts(st, worker))
		return SL_EWRONGOWNER;
	struct sworker *w = &src->w[worker];
	if (!st->started || pthread_equal(pthread_self(), st->thread))
		return truncate_worker(st, w, time, upper_out);
	struct sli_trunc_req req = {.w = w, .time = time};
	pthread_mutex_lock(&st->trunc_mu);
	/* One request at a time: a second caller waits for the first to be answered. */
	while (st->trunc_req != NULL)
		pthread_cond_wait(&st->trunc_cv, &st->trunc_mu);
	st->trunc_req = &req;
	atomic_store_explicit(&st->trunc_want, 1, memory_order_release);
	sli_loop_wake(st->loop);
	while (!req.done)
		pthread_cond_wait(&st->trunc_cv, &st->trunc_mu);
	st->trunc_req = NULL;
	pthread_cond_broadcast(&st->trunc_cv);
	pthread_mutex_unlock(&st->trunc_mu);
	sli_storage_set_error("%s", req.err);
	if (req.rc == 0) {
		*upper_out = req.upper;
		sli_worker_touch(w); /* its subscribers look again */
	}
	return req.rc;
}
