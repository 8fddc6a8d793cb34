/*
 * durable.c - how the storage runtime keeps its logs on disk: where they live under the data
 * directory, how a worker is recovered to a consistent upper, how an upper is made durable
 * before it is published, the epoch, and the background sync of SL_FSYNC_INTERVAL.
 *
 * Layout:  DATA/epoch                     decimal count of opens of this directory
 *          DATA/sources/NAME/source       "kind KIND\nworkers W\n": refused if it changes
 *          DATA/sources/NAME/W/ok, .../err one durable log each (src/log/disklog.c)
 *
 *          DATA/sources/NAME/W/truncate   "ok P\nerr P\nupper U\n" while a truncation runs
 *
 * Every advance writes an upper marker into both logs of the worker, after the blocks it
 * covers.  At recovery the worker's upper is the smaller of the two logs' last markers, and
 * each log is cut after its last marker at or below it: what follows are updates at times that
 * were not complete yet, which no subscriber was sent (serve.c sends only complete times) and
 * which the source produces again.
 *
 * A truncation (truncate.c) first records where it cuts each log and the upper it leaves in
 * W/truncate (written atomically and synced), then cuts, marks that upper, syncs, and removes
 * the record.  Recovery finding the record redoes the cut (sli_disklog_opts.truncate, which
 * also repairs the holes a crash can leave in a half-zeroed segment) and the marker before it
 * reads the upper, so a crash anywhere after the record is durable recovers exactly the
 * truncated state, and one before it recovers the state from before the truncation.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "log/disklog.h"
#include "storage/storage_int.h"

static int mkdir_p(const char *path)
{
	char buf[4096];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return SL_EARG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Writes data to path atomically (temporary file, fsync, rename, fsync of the directory). */
static int write_file_atomic(const char *dir, const char *name, const char *data)
{
	char tmp[4096], path[4096];
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	size_t len = strlen(data);
	int rc = 0;
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0)
		rc = errno ? -errno : SL_EIO;
	close(fd);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0) {
		unlink(tmp);
		return rc;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

int sli_storage_open_data_dir(sl_storage *st)
{
	const char *dir = st->cfg.data_dir;
	int rc = mkdir_p(dir);
	if (rc != 0) {
		sli_storage_set_error("cannot create data directory %s: %s", dir, sl_strerror(rc));
		return rc;
	}
	char path[4096], buf[64] = "";
	snprintf(path, sizeof(path), "%s/epoch", dir);
	FILE *f = fopen(path, "r");
	uint64_t epoch = 0;
	if (f != NULL) {
		if (fgets(buf, sizeof(buf), f) == NULL || sscanf(buf, "%" SCNu64, &epoch) != 1) {
			fclose(f);
			sli_storage_set_error("%s does not hold an epoch number", path);
			return SL_EIO;
		}
		fclose(f);
	}
	st->epoch = epoch + 1;
	/* The fencing term: 1 on a fresh directory. */
	snprintf(path, sizeof(path), "%s/term", dir);
	uint64_t term = 1;
	if ((f = fopen(path, "r")) != NULL) {
		if (fgets(buf, sizeof(buf), f) == NULL || sscanf(buf, "%" SCNu64, &term) != 1 || term == 0) {
			fclose(f);
			sli_storage_set_error("%s does not hold a term number", path);
			return SL_EIO;
		}
		fclose(f);
	}
	atomic_store(&st->term, term);
	/* Fenced by a promoted standby: stays so across restarts (see fence.c). */
	snprintf(path, sizeof(path), "%s/fenced", dir);
	if ((f = fopen(path, "r")) != NULL) {
		uint64_t fterm = 0;
		char by[256] = "";
		if (fgets(buf, sizeof(buf), f) == NULL || sscanf(buf, "%" SCNu64 " %255s", &fterm, by) != 2) {
			fclose(f);
			sli_storage_set_error("%s does not hold a term and an address", path);
			return SL_EIO;
		}
		fclose(f);
		st->fenced = 1;
		snprintf(st->fenced_by, sizeof(st->fenced_by), "%s", by);
		if (fterm > term)
			atomic_store(&st->term, fterm);
	}
	snprintf(path, sizeof(path), "%s/epoch", dir);
	snprintf(buf, sizeof(buf), "%" PRIu64 "\n", st->epoch);
	if ((rc = write_file_atomic(dir, "epoch", buf)) != 0) {
		sli_storage_set_error("cannot write %s: %s", path, sl_strerror(rc));
		return rc;
	}
	return 0;
}

static int valid_name(const char *name)
{
	for (const char *p = name; *p; p++)
		if (!(*p == '_' || *p == '-' || *p == '.' || (*p >= '0' && *p <= '9') ||
		      (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
			return 0;
	return name[0] != '\0' && name[0] != '.';
}

/* Creates or checks DATA/sources/NAME/source. */
static int check_source_meta(const char *sdir, const struct sl_source *s)
{
	char path[4200], want[256], have[256];
	snprintf(path, sizeof(path), "%s/source", sdir);
	snprintf(want, sizeof(want), "kind %s\nworkers %u\n", s->kind, s->nworkers);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		int rc = write_file_atomic(sdir, "source", want);
		if (rc != 0)
			sli_storage_set_error("cannot write %s: %s", path, sl_strerror(rc));
		return rc;
	}
	ssize_t n = read(fd, have, sizeof(have) - 1);
	close(fd);
	have[n > 0 ? n : 0] = '\0';
	if (strcmp(have, want) != 0) {
		char *nl;
		while ((nl = strchr(have, '\n')) != NULL)
			*nl = nl[1] ? ',' : '\0';
		sli_storage_set_error("source %s in %s was created with %s; now it is kind %s with %u "
		                      "workers: use another --data-dir or the original spec",
		                      s->name, sdir, have, s->kind, s->nworkers);
		return SL_EIO;
	}
	return 0;
}

/* The position just past the last upper marker at or below `upper` (the log's start if none). */
static uint64_t cut_position(const sli_log *log, uint64_t upper)
{
	uint64_t pos = sli_log_start(log), end = sli_log_end(log), cut = pos;
	while (pos < end) {
		sli_block b;
		sli_log_block(log, pos, &b);
		if (b.nbytes == 0 && b.min_time <= upper)
			cut = b.next;
		pos = b.next;
	}
	return cut;
}

/* Which worker's log a disk log's recovery progress is about. */
struct progress_ctx {
	sl_storage *st;
	const char *source;
	uint32_t worker, workers;
};

static void on_log_progress(void *arg, size_t segment, size_t segments)
{
	struct progress_ctx *pc = arg;
	pc->st->cfg.progress(pc->st->cfg.progress_arg, pc->source, pc->worker, pc->workers, segment,
	                     segments);
}

static void on_log_warning(void *arg, const char *msg)
{
	sl_storage *st = arg;
	if (st->cfg.warn)
		st->cfg.warn(st->cfg.warn_arg, msg);
}

static void worker_dir(const sl_storage *st, const struct sl_source *s, uint32_t i, char *buf,
                       size_t len)
{
	snprintf(buf, len, "%s/sources/%s/%u", st->cfg.data_dir, s->name, i);
}

int sli_worker_save_truncation(sl_storage *st, struct sworker *w, const uint64_t pos[2],
                               uint64_t upper)
{
	char dir[4200], buf[96];
	worker_dir(st, w->src, w->index, dir, sizeof(dir));
	snprintf(buf, sizeof(buf), "ok %" PRIu64 "\nerr %" PRIu64 "\nupper %" PRIu64 "\n", pos[0],
	         pos[1], upper);
	return write_file_atomic(dir, "truncate", buf);
}

int sli_worker_clear_truncation(sl_storage *st, struct sworker *w)
{
	char dir[4200];
	worker_dir(st, w->src, w->index, dir, sizeof(dir));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int rc = 0;
	if (unlinkat(dfd, "truncate", 0) != 0 && errno != ENOENT)
		rc = -errno;
	else if (fsync(dfd) != 0)
		rc = -errno;
	close(dfd);
	return rc;
}

/* Reads W/truncate into pos[2] and *upper: 1 when a truncation was recorded, 0 when there is
 * none, SL_EIO (with the error set) when the file is unreadable. */
static int load_truncation(const char *wdir, uint64_t pos[2], uint64_t *upper)
{
	char path[4300];
	snprintf(path, sizeof(path), "%s/truncate", wdir);
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		sli_storage_set_error("cannot read %s: %s", path, strerror(errno));
		return -errno;
	}
	int n = fscanf(f, "ok %" SCNu64 " err %" SCNu64 " upper %" SCNu64, &pos[0], &pos[1], upper);
	fclose(f);
	if (n != 3) {
		sli_storage_set_error("%s does not hold a truncation (ok P, err P, upper U)", path);
		return SL_EIO;
	}
	return 1;
}

/* Finishes the recorded truncation of worker w once its logs were opened with the cut done:
 * marks the recorded upper (unless both logs already end on it), syncs, removes the record. */
static int finish_truncation(sl_storage *st, struct sworker *w, uint64_t upper)
{
	int rc = 0;
	if (sli_disklog_recovered_upper(w->log[0]) != upper ||
	    sli_disklog_recovered_upper(w->log[1]) != upper) {
		for (int coll = 0; coll < 2 && rc == 0; coll++)
			rc = sli_log_mark_upper(w->log[coll], upper);
	}
	for (int coll = 0; coll < 2 && rc == 0; coll++)
		rc = sli_log_sync(w->log[coll]);
	if (rc == 0)
		rc = sli_worker_clear_truncation(st, w);
	if (rc != 0)
		sli_storage_set_error("cannot finish the truncation of %s worker %u: %s", w->src->name,
		                      w->index, sl_strerror(rc));
	return rc;
}

int sli_source_open_durable(sl_storage *st, struct sl_source *s)
{
	char sdir[4096], ldir[4200], err[512];
	int rc;
	if (!valid_name(s->name)) {
		sli_storage_set_error("source name %s: only letters, digits, '_', '-' and '.' may be used",
		                      s->name);
		return SL_EARG;
	}
	snprintf(sdir, sizeof(sdir), "%s/sources/%s", st->cfg.data_dir, s->name);
	if ((rc = mkdir_p(sdir)) != 0) {
		sli_storage_set_error("cannot create %s: %s", sdir, sl_strerror(rc));
		return rc;
	}
	if ((rc = check_source_meta(sdir, s)) != 0)
		return rc;
	struct progress_ctx pc = {st, s->name, 0, s->nworkers};
	sli_disklog_opts opts = {.segment_size = st->cfg.segment_size, .warn = on_log_warning,
	                         .warn_arg = st, .progress = st->cfg.progress ? on_log_progress : NULL,
	                         .progress_arg = &pc};
	for (uint32_t i = 0; i < s->nworkers; i++) {
		struct sworker *w = &s->w[i];
		uint64_t upper = SL_TIME_CLOSED, recorded[2] = {0, 0}, cut_upper = 0;
		if (!sli_hosts(st, i))
			continue; /* another process keeps it */
		pc.worker = i;
		snprintf(ldir, sizeof(ldir), "%s/%u", sdir, i);
		int truncating = load_truncation(ldir, recorded, &cut_upper);
		if (truncating < 0)
			return truncating;
		for (int coll = 0; coll < 2; coll++) {
			snprintf(ldir, sizeof(ldir), "%s/%u/%s", sdir, i, coll ? "err" : "ok");
			err[0] = '\0';
			opts.truncate = truncating;
			opts.truncate_at = truncating ? recorded[coll] : 0;
			if ((rc = sli_disklog_open(ldir, &opts, &w->log[coll], err, sizeof(err))) != 0) {
				sli_storage_set_error("cannot open log %s: %s", ldir, err[0] ? err : sl_strerror(rc));
				return rc;
			}
		}
		if (truncating && (rc = finish_truncation(st, w, cut_upper)) != 0)
			return rc;
		for (int coll = 0; coll < 2; coll++) {
			/* After a finished truncation the last marker is the one it wrote. */
			uint64_t u = truncating ? cut_upper : sli_disklog_recovered_upper(w->log[coll]);
			if (u < upper)
				upper = u;
		}
		for (int coll = 0; coll < 2; coll++) {
			uint64_t cut = cut_position(w->log[coll], upper);
			sli_log_truncate(w->log[coll], cut);
			atomic_store(&w->marker_end[coll], cut);
		}
		atomic_store(&w->upper, upper);
		if ((rc = sli_snapshot_load(st, s, w)) != 0)
			return rc;
		if (sli_elog_enabled(SLI_LOG_DEBUG)) {
			char wk[16], up[24], bytes[24];
			uint64_t n = 0;
			for (int coll = 0; coll < 2; coll++)
				n += sli_log_end(w->log[coll]) - sli_log_start(w->log[coll]);
			snprintf(wk, sizeof(wk), "%u", i);
			snprintf(up, sizeof(up), "%" PRIu64, upper);
			snprintf(bytes, sizeof(bytes), "%" PRIu64, n);
			sli_kv kv[] = {{"source", s->name, 0}, {"worker", wk, 1},
			               {"upper", upper == SL_TIME_CLOSED ? "closed" : up, 0},
			               {"since", "", 0}, {"log_bytes", bytes, 1}, {NULL, NULL, 0}};
			char since[24];
			snprintf(since, sizeof(since), "%" PRIu64, w->since);
			kv[3].val = since;
			/* A fresh log recovers nothing worth an operator's line. */
			sli_elog(n > 0 ? SLI_LOG_INFO : SLI_LOG_DEBUG, "recovered", kv,
			         "recovered source %s worker %s: upper %s, since %s, %s log bytes", s->name, wk,
			         kv[2].val, since, bytes);
		}
	}
	return 0;
}

int sli_storage_save_fenced(sl_storage *st, uint64_t term, const char *by)
{
	char buf[320];
	if (st->cfg.data_dir == NULL)
		return 0;
	snprintf(buf, sizeof(buf), "%" PRIu64 " %s\n", term, by);
	return write_file_atomic(st->cfg.data_dir, "fenced", buf);
}

/* A standby of a cluster process reports its primary's fingerprint: kept in DATA/fingerprint
 * so that after a restart it has it before (and without) reaching the primary again. */
int sli_storage_save_fingerprint(sl_storage *st, uint64_t fp)
{
	char buf[64];
	if (st->cfg.data_dir == NULL)
		return 0;
	snprintf(buf, sizeof(buf), "%016" PRIx64 "\n", fp);
	return write_file_atomic(st->cfg.data_dir, "fingerprint", buf);
}

int sli_storage_load_fingerprint(sl_storage *st, uint64_t *fp)
{
	char path[4096], buf[64];
	if (st->cfg.data_dir == NULL)
		return SL_EIO;
	snprintf(path, sizeof(path), "%s/fingerprint", st->cfg.data_dir);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -errno;
	int ok = fgets(buf, sizeof(buf), f) != NULL && sscanf(buf, "%" SCNx64, fp) == 1;
	fclose(f);
	return ok ? 0 : SL_EIO;
}

int sli_storage_save_term(sl_storage *st, uint64_t term)
{
	char buf[64];
	if (st->cfg.data_dir == NULL)
		return 0;
	snprintf(buf, sizeof(buf), "%" PRIu64 "\n", term);
	return write_file_atomic(st->cfg.data_dir, "term", buf);
}

int sli_worker_mark_upper(sl_storage *st, struct sworker *w, uint64_t upper)
{
	if (st->cfg.data_dir == NULL)
		return 0;
	for (int coll = 0; coll < 2; coll++) {
		int rc = sli_log_mark_upper(w->log[coll], upper);
		if (rc != 0)
			return rc;
		/* Compaction never removes the segment holding the last marker: recovery needs one. */
		atomic_store(&w->marker_end[coll], sli_log_end(w->log[coll]));
	}
	return 0;
}

/* One log sync, timed for the fsync histogram. */
static int timed_sync(sl_storage *st, sli_log *log)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	int rc = sli_log_sync(log);
	clock_gettime(CLOCK_MONOTONIC, &b);
	sli_metrics_fsync(st, (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)b.tv_nsec -
	                          (uint64_t)a.tv_nsec);
	return rc;
}

int sli_worker_sync(sl_storage *st, struct sworker *w)
{
	if (st->cfg.data_dir == NULL || st->cfg.fsync != SL_FSYNC_ALWAYS)
		return 0;
	for (int coll = 0; coll < 2; coll++) {
		int rc = timed_sync(st, w->log[coll]);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int sli_worker_persist_upper(sl_storage *st, struct sworker *w, uint64_t upper)
{
	int rc = sli_worker_mark_upper(st, w, upper);
	return rc != 0 ? rc : sli_worker_sync(st, w);
}

static void *sync_thread(void *arg)
{
	sl_storage *st = arg;
	pthread_mutex_lock(&st->sync_mu);
	while (!st->sync_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)st->cfg.fsync_interval_ms * 1000000u;
		ts.tv_sec += (time_t)(ns / 1000000000u);
		ts.tv_nsec = (long)(ns % 1000000000u);
		pthread_cond_timedwait(&st->sync_cv, &st->sync_mu, &ts);
		if (st->sync_stop)
			break;
		pthread_mutex_unlock(&st->sync_mu);
		pthread_mutex_lock(&st->src_mu);
		for (size_t i = 0; i < st->nsources; i++)
			for (uint32_t k = 0; k < st->sources[i]->nworkers; k++)
				for (int coll = 0; coll < 2; coll++)
					if (st->sources[i]->w[k].log[coll] != NULL)
						timed_sync(st, st->sources[i]->w[k].log[coll]);
		pthread_mutex_unlock(&st->src_mu);
		pthread_mutex_lock(&st->sync_mu);
	}
	pthread_mutex_unlock(&st->sync_mu);
	return NULL;
}

int sli_sync_start(sl_storage *st)
{
	pthread_mutex_init(&st->sync_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->sync_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (st->cfg.data_dir == NULL || st->cfg.fsync != SL_FSYNC_INTERVAL)
		return 0;
	int rc = pthread_create(&st->sync_tid, NULL, sync_thread, st);
	if (rc != 0)
		return -rc;
	st->sync_running = 1;
	return 0;
}

void sli_sync_stop(sl_storage *st)
{
	if (st->sync_running) {
		pthread_mutex_lock(&st->sync_mu);
		st->sync_stop = 1;
		pthread_cond_signal(&st->sync_cv);
		pthread_mutex_unlock(&st->sync_mu);
		pthread_join(st->sync_tid, NULL);
		st->sync_running = 0;
	}
	pthread_mutex_destroy(&st->sync_mu);
	pthread_cond_destroy(&st->sync_cv);
}
