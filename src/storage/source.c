/*
 * source.c - the source registry and the embedding API through which storage workers hand
 * their update streams to the runtime: append, advance, close, and the atomic ingest commit.
 *
 * Appends encode updates straight into the worker's log, grouping consecutive updates at one
 * time into one MESSAGES event, so the bytes in the log are the bytes a Data frame carries.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/block_write.h"
#include "storage/storage_int.h"

SL_API uint64_t sl_source_id(const sl_source *src) { return src->id; }
SL_API uint32_t sl_source_workers(const sl_source *src) { return src->nworkers; }
const char *sli_source_name(const sl_source *src) { return src->name; }

SL_API int sl_source_hosts(const sl_source *src, uint32_t worker)
{
	return worker < src->nworkers && sli_hosts(src->st, worker);
}

SL_API uint64_t sl_source_upper(const sl_source *src, uint32_t worker)
{
	if (worker >= src->nworkers)
		return 0;
	return atomic_load_explicit(&src->w[worker].upper, memory_order_acquire);
}

struct sl_source *sli_storage_find_source(sl_storage *st, uint64_t id)
{
	struct sl_source *s = NULL;
	pthread_mutex_lock(&st->src_mu);
	if (id >= 1 && id <= st->nsources)
		s = st->sources[id - 1];
	pthread_mutex_unlock(&st->src_mu);
	return s;
}

static void source_free(struct sl_source *s)
{
	if (s == NULL)
		return;
	if (s->w) {
		for (uint32_t i = 0; i < s->nworkers; i++) {
			sli_worker_compaction_free(&s->w[i]);
			sli_log_free(s->w[i].log[0]);
			sli_log_free(s->w[i].log[1]);
			pthread_mutex_destroy(&s->w[i].mu);
		}
	}
	free(s->w);
	free(s->name);
	free(s->kind);
	free(s);
}

static int name_taken(sl_storage *st, const char *name)
{
	for (size_t i = 0; i < st->nsources; i++)
		if (strcmp(st->sources[i]->name, name) == 0)
			return 1;
	return 0;
}

SL_API int sl_source_register(sl_storage *st, const char *name, const char *kind, uint32_t workers,
                              unsigned flags, sl_source **out)
{
	int rc = SL_ENOMEM;
	sli_storage_set_error("%s", "");
	if (st == NULL || name == NULL || name[0] == '\0' || kind == NULL || workers == 0 ||
	    workers > (1u << 20))
		return SL_EARG;
	pthread_mutex_lock(&st->src_mu);
	int taken = name_taken(st, name);
	pthread_mutex_unlock(&st->src_mu);
	if (taken) {
		sli_storage_set_error("a source named %s is already registered", name);
		return SL_EDUPLICATE;
	}
	struct sl_source *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return SL_ENOMEM;
	s->st = st;
	s->nworkers = workers;
	s->flags = flags;
	if ((s->name = strdup(name)) == NULL || (s->kind = strdup(kind)) == NULL ||
	    (s->w = calloc(workers, sizeof(*s->w))) == NULL)
		goto err_free;
	for (uint32_t i = 0; i < workers; i++) {
		pthread_mutex_init(&s->w[i].mu, NULL);
		s->w[i].src = s;
		s->w[i].index = i;
	}
	if (st->cfg.data_dir != NULL && (rc = sli_source_open_durable(st, s)) != 0)
		goto err_free;
	rc = SL_ENOMEM; /* what every failure below is but the duplicate name */
	/* In memory: every worker without a data directory, and in a cluster the workers other
	 * processes host (their logs stay empty: nothing appends to them here). */
	for (uint32_t i = 0; i < workers; i++)
		if (s->w[i].log[0] == NULL &&
		    (sli_log_new(&s->w[i].log[0]) != 0 || sli_log_new(&s->w[i].log[1]) != 0))
			goto err_free;
	pthread_mutex_lock(&st->src_mu);
	if (name_taken(st, name)) {
		pthread_mutex_unlock(&st->src_mu);
		rc = SL_EDUPLICATE;
		goto err_free;
	}
	if (st->nsources == st->cap_sources) {
		size_t cap = st->cap_sources ? st->cap_sources * 2 : 8;
		struct sl_source **t = realloc(st->sources, cap * sizeof(*t));
		if (t == NULL) {
			pthread_mutex_unlock(&st->src_mu);
			goto err_free;
		}
		st->sources = t;
		st->cap_sources = cap;
	}
	st->sources[st->nsources++] = s;
	s->id = st->nsources;
	pthread_mutex_unlock(&st->src_mu);
	*out = s;
	return 0;
err_free:
	source_free(s);
	return rc;
}

SL_API sl_source *sl_storage_source_at(sl_storage *st, size_t i)
{
	if (st == NULL)
		return NULL;
	pthread_mutex_lock(&st->src_mu);
	struct sl_source *s = i < st->nsources ? st->sources[i] : NULL;
	pthread_mutex_unlock(&st->src_mu);
	return s;
}

SL_API int sl_source_find(sl_storage *st, const char *name, const char *kind, uint32_t workers,
                          sl_source **out)
{
	if (st == NULL || name == NULL || kind == NULL || out == NULL)
		return SL_EARG;
	int rc = SL_ENOSOURCE;
	pthread_mutex_lock(&st->src_mu);
	for (size_t i = 0; i < st->nsources; i++) {
		struct sl_source *s = st->sources[i];
		if (strcmp(s->name, name) != 0)
			continue;
		if (strcmp(s->kind, kind) != 0 || s->nworkers != workers) {
			sli_storage_set_error("source %s is of kind %s with %u workers here, not %s with %u",
			                      name, s->kind, s->nworkers, kind, workers);
			rc = SL_EARG;
		} else {
			*out = s;
			rc = 0;
		}
		break;
	}
	pthread_mutex_unlock(&st->src_mu);
	return rc;
}

void sli_sources_free(sl_storage *st)
{
	for (size_t i = 0; i < st->nsources; i++)
		source_free(st->sources[i]);
	free(st->sources);
	st->sources = NULL;
	st->nsources = st->cap_sources = 0;
}

/* A full disk or an I/O error: what blocks a worker's appends until space or the device comes
 * back (anything else is the caller's mistake, not the worker's condition). */
static int disk_error(int rc)
{
	return rc == -ENOSPC || rc == -EDQUOT || rc == -EIO || rc == SL_EIO;
}

void sli_worker_note_append(struct sworker *w, int rc)
{
	sl_storage *st = w->src->st;
	char msg[256];
	int blocked = disk_error(rc);

	/* Every append ends here: the common case (no change) is one plain load, no locked write.
	 * The callers hold w's lock, so the flag cannot change between the load and the store. */
	if ((rc != 0 && !blocked) ||
	    atomic_load_explicit(&w->append_blocked, memory_order_relaxed) == blocked)
		return; /* one line when it starts, one when it clears */
	atomic_store_explicit(&w->append_blocked, blocked, memory_order_relaxed);
	if (st->cfg.warn == NULL)
		return;
	if (blocked)
		snprintf(msg, sizeof(msg), "source %s worker %u: appends blocked: %s (published data is "
		         "still served; appends resume when they succeed again)", w->src->name, w->index,
		         sl_strerror(rc));
	else
		snprintf(msg, sizeof(msg), "source %s worker %u: appends resumed", w->src->name, w->index);
	st->cfg.warn(st->cfg.warn_arg, msg);
}

void sli_worker_touch(struct sworker *w)
{
	sl_storage *st = w->src->st;
	if (atomic_exchange(&w->dirty, 1) != 0)
		return;
	pthread_mutex_lock(&st->dirty_mu);
	w->dirty_next = st->dirty;
	st->dirty = w;
	pthread_mutex_unlock(&st->dirty_mu);
	if (st->loop)
		sli_loop_wake(st->loop);
}

SL_API int sl_source_append(sl_source *src, uint32_t worker, sl_collection coll,
                            const sl_update *ups, size_t n)
{
	if (src == NULL || worker >= src->nworkers || (coll != SL_OK && coll != SL_ERR))
		return SL_EARG;
	if (!sli_hosts(src->st, worker))
		return SL_EWRONGOWNER;
	struct sworker *w = &src->w[worker];
	int rc = 0;
	pthread_mutex_lock(&w->mu);
	uint64_t upper = atomic_load(&w->upper);
	for (size_t i = 0; i < n; i++) {
		if (upper == SL_TIME_CLOSED) {
			rc = SL_ECLOSED;
			break;
		}
		if (ups[i].time < upper || ups[i].time == SL_TIME_CLOSED) {
			rc = SL_ETIME;
			break;
		}
		if (ups[i].row.len > SL_ROW_MAX) {
			rc = SL_ETOOBIG;
			break;
		}
	}
	if (rc == 0 && n > 0) {
		/* All or nothing: written under a hold, published whole or cut back (a full disk
		 * half-way must not leave half of ups for a retry to append twice). */
		sli_log *log = w->log[coll];
		uint64_t mark = sli_log_end(log);
		sli_log_hold(log);
		if ((rc = sli_log_write_updates(log, ups, n)) != 0)
			sli_log_truncate(log, mark);
		else
			sli_log_publish(log);
		sli_worker_note_append(w, rc);
	}
	pthread_mutex_unlock(&w->mu);
	if (rc == 0 && n > 0)
		sli_worker_touch(w);
	return rc;
}

SL_API int sl_source_advance(sl_source *src, uint32_t worker, uint64_t upper)
{
	if (src == NULL || worker >= src->nworkers)
		return SL_EARG;
	if (!sli_hosts(src->st, worker))
		return SL_EWRONGOWNER;
	struct sworker *w = &src->w[worker];
	int rc = 0;
	pthread_mutex_lock(&w->mu);
	uint64_t cur = atomic_load(&w->upper);
	if (upper < cur)
		rc = SL_ETIME;
	else if (upper > cur && (rc = sli_worker_persist_upper(src->st, w, upper)) == 0)
		atomic_store_explicit(&w->upper, upper, memory_order_release);
	if (upper > cur)
		sli_worker_note_append(w, rc);
	pthread_mutex_unlock(&w->mu);
	if (rc == 0 && upper > cur)
		sli_worker_touch(w);
	return rc;
}

SL_API int sl_source_close_worker(sl_source *src, uint32_t worker)
{
	return sl_source_advance(src, worker, SL_TIME_CLOSED);
}

/* A transaction over every worker of src (their locks held): every log is held (its commits
 * invisible to readers) from its end, kept in mark[2 * worker + collection]. */
static void txn_hold(sl_source *src, uint64_t *mark)
{
	for (uint32_t i = 0; i < src->nworkers; i++) {
		for (int coll = 0; coll < 2; coll++) {
			mark[2 * i + coll] = sli_log_end(src->w[i].log[coll]);
			sli_log_hold(src->w[i].log[coll]);
		}
	}
}

/* Ends it: when what was written succeeded (rc == 0), every hosted worker below `upper` gets
 * its upper marker, every log is published, then synced, and only then the uppers move; on any
 * failure every log is cut back to mark and no upper moves.  Returns the outcome. */
static int txn_finish(sl_source *src, const uint64_t *mark, int rc, uint64_t upper)
{
	uint32_t W = src->nworkers;
	for (uint32_t i = 0; i < W && rc == 0; i++)
		if (sli_hosts(src->st, i) && upper > atomic_load(&src->w[i].upper))
			rc = sli_worker_mark_upper(src->st, &src->w[i], upper);
	for (uint32_t i = 0; i < W; i++) {
		for (int coll = 0; coll < 2; coll++) {
			if (rc != 0)
				sli_log_truncate(src->w[i].log[coll], mark[2 * i + coll]);
			else
				sli_log_publish(src->w[i].log[coll]);
		}
	}
	/* A sync covers what is published, so it comes after; the uppers only after it. */
	for (uint32_t i = 0; i < W && rc == 0; i++)
		if (sli_hosts(src->st, i) && upper > atomic_load(&src->w[i].upper))
			rc = sli_worker_sync(src->st, &src->w[i]);
	for (uint32_t i = 0; i < W; i++) {
		if (!sli_hosts(src->st, i))
			continue;
		if (rc == 0 && upper > atomic_load(&src->w[i].upper))
			atomic_store_explicit(&src->w[i].upper, upper, memory_order_release);
		sli_worker_note_append(&src->w[i], rc);
	}
	return rc;
}

/* Commits one batch of encoded updates (the APPEND update encoding) atomically: all workers are
 * locked while the time is chosen; the rows are appended under a hold (invisible to readers),
 * and either every worker's upper is recorded and the whole batch published at once, or, on any
 * failure (a full disk), every log is cut back to where it was and no upper moves. */
int sli_ingest_commit(struct sl_source *src, const uint8_t *updates, size_t nbytes, uint32_t count,
                      uint64_t *time_out)
{
	uint32_t W = src->nworkers;
	struct blockw *bw = calloc(W, sizeof(*bw));
	uint64_t *mark = calloc(2 * (size_t)W, sizeof(*mark));
	int rc = 0;
	if (bw == NULL || mark == NULL) {
		free(bw);
		free(mark);
		return SL_ENOMEM;
	}
	for (uint32_t i = 0; i < W; i++)
		pthread_mutex_lock(&src->w[i].mu);
	uint64_t t = 0;
	for (uint32_t i = 0; i < W; i++) {
		if (!sli_hosts(src->st, i))
			continue; /* another process's: its upper is not ours to move */
		uint64_t u = atomic_load(&src->w[i].upper);
		if (u == SL_TIME_CLOSED) {
			rc = SL_ECLOSED;
			goto out;
		}
		if (u > t)
			t = u;
	}
	if (t >= SL_TIME_CLOSED - 1) {
		rc = SL_ETIME;
		goto out;
	}
	txn_hold(src, mark);
	sl_bytes rest = {updates, nbytes};
	int64_t diff;
	sl_bytes row;
	for (uint32_t k = 0; k < count && rc == 0; k++) {
		if (sli_updates_next(&rest, &diff, &row) != 1) {
			rc = SL_EPROTO;
			break;
		}
		uint32_t wi = sl_ingest_route(row, W);
		if (!sli_hosts(src->st, wi)) {
			rc = SL_EWRONGOWNER;
			break;
		}
		bw[wi].log = src->w[wi].log[SL_OK];
		if ((rc = block_put(&bw[wi], t, diff, row)) != 0 && sli_log_error(bw[wi].log) != 0)
			rc = sli_log_error(bw[wi].log);
	}
	for (uint32_t i = 0; i < W; i++)
		if (bw[i].log)
			block_commit(&bw[i]);
	if ((rc = txn_finish(src, mark, rc, t + 1)) == 0)
		*time_out = t;
out:
	for (uint32_t i = W; i-- > 0;)
		pthread_mutex_unlock(&src->w[i].mu);
	if (rc == 0)
		for (uint32_t i = 0; i < W; i++)
			sli_worker_touch(&src->w[i]);
	free(bw);
	free(mark);
	return rc;
}

SL_API int sl_source_ingest(sl_source *src, const sl_update *ups, size_t n, uint64_t *time_out)
{
	sli_buf b;
	sli_buf_init(&b);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (ups[i].row.len > SL_ROW_MAX)
			rc = SL_ETOOBIG;
		else
			rc = sli_put_update(&b, ups[i].diff, ups[i].row);
	}
	if (rc == 0)
		rc = sli_ingest_commit(src, b.ptr, b.len, (uint32_t)n, time_out);
	sli_buf_fini(&b);
	return rc;
}

int sli_encode_sources(sl_storage *st, sli_buf *b)
{
	pthread_mutex_lock(&st->src_mu);
	size_t hdr = b->len;
	int rc = sli_buf_reserve(b, SLI_FRAME_HDR + 4);
	if (rc != 0)
		goto out;
	b->len += SLI_FRAME_HDR;
	b->ptr[hdr + 4] = SLI_SOURCES;
	sli_set_u32(b->ptr + b->len, (uint32_t)st->nsources);
	b->len += 4;
	for (size_t i = 0; i < st->nsources; i++) {
		struct sl_source *s = st->sources[i];
		size_t nl = strlen(s->name), kl = strlen(s->kind);
		if ((rc = sli_buf_reserve(b, 8 + 4 + nl + 4 + kl + 4 + 8 * (size_t)s->nworkers)) != 0)
			goto out;
		uint8_t *p = b->ptr + b->len;
		sli_set_u64(p, s->id), p += 8;
		sli_set_u32(p, (uint32_t)nl), p += 4;
		memcpy(p, s->name, nl), p += nl;
		sli_set_u32(p, (uint32_t)kl), p += 4;
		memcpy(p, s->kind, kl), p += kl;
		sli_set_u32(p, s->nworkers), p += 4;
		for (uint32_t w = 0; w < s->nworkers; w++, p += 8)
			sli_set_u64(p, sli_worker_published(st, &s->w[w]));
		b->len = (size_t)(p - b->ptr);
	}
	sli_frame_end(b, hdr);
out:
	pthread_mutex_unlock(&st->src_mu);
	return rc;
}

SL_API int sl_source_commit(sl_source *src, const sl_append_part *parts, size_t nparts,
                            uint64_t upper)
{
	if (src == NULL || (parts == NULL && nparts > 0))
		return SL_EARG;
	uint32_t W = src->nworkers;
	uint64_t *mark = calloc(2 * (size_t)W, sizeof(*mark));
	int rc = 0;
	if (mark == NULL)
		return SL_ENOMEM;
	for (uint32_t i = 0; i < W; i++)
		pthread_mutex_lock(&src->w[i].mu);
	/* Every check first: nothing is written when one fails. */
	for (size_t p = 0; p < nparts && rc == 0; p++) {
		const sl_append_part *pt = &parts[p];
		if (pt->worker >= W || (pt->coll != SL_OK && pt->coll != SL_ERR) ||
		    (pt->ups == NULL && pt->n > 0)) {
			rc = SL_EARG;
			break;
		}
		if (!sli_hosts(src->st, pt->worker)) {
			rc = SL_EWRONGOWNER;
			break;
		}
		uint64_t u = atomic_load(&src->w[pt->worker].upper);
		for (size_t k = 0; k < pt->n && rc == 0; k++) {
			if (u == SL_TIME_CLOSED)
				rc = SL_ECLOSED;
			else if (pt->ups[k].time < u || pt->ups[k].time == SL_TIME_CLOSED)
				rc = SL_ETIME;
			else if (pt->ups[k].row.len > SL_ROW_MAX)
				rc = SL_ETOOBIG;
		}
	}
	if (rc != 0)
		goto out;
	/* Under a hold (invisible to readers) the parts and the upper markers are written; then
	 * either all of it is published or every log is cut back and no upper moves, so a retry of
	 * the same call is exact. */
	txn_hold(src, mark);
	for (size_t p = 0; p < nparts && rc == 0; p++)
		if (parts[p].n > 0)
			rc = sli_log_write_updates(src->w[parts[p].worker].log[parts[p].coll], parts[p].ups,
			                           parts[p].n);
	rc = txn_finish(src, mark, rc, upper);
out:
	for (uint32_t i = W; i-- > 0;)
		pthread_mutex_unlock(&src->w[i].mu);
	if (rc == 0)
		for (uint32_t i = 0; i < W; i++)
			if (sli_hosts(src->st, i))
				sli_worker_touch(&src->w[i]);
	free(mark);
	return rc;
}
