/*
 * follow.c - a standby: this storage process follows another one (its primary) over the sluice
 * protocol, as a compute client, and writes what it receives into its own durable logs, so it
 * can serve read subscriptions and take over (promotion) when the primary is gone.
 *
 * The follower thread registers every source of the primary, in the primary's order (so ids
 * agree), subscribes every worker from the local worker's upper, appends each MESSAGES event
 * at its time and advances the local worker to each PROGRESS's frontier.  Storage sends only
 * complete times and the compute runtime resumes exactly across reconnects, so the local log is
 * a prefix of the primary's, time by time.  When the client gives up (the retry window ran out)
 * it is opened again; updates of a time already appended but not yet complete are skipped by
 * count when the new subscription sends them again (storage's log order is deterministic).
 * The client is also opened again after every reconnect, so sources a restarted primary added
 * are followed too.
 *
 * Promotion (a Promote frame, on the network thread): storage's standby.c calls the stop this
 * file registers, which sets `stop` under the follower's `mu` (so no event is half applied);
 * storage then opens its ingest sources and bumps the term.  The thread is joined at
 * sl_storage_close, through the registered join.
 *
 * This part sits above storage and compute: it drives the public compute client and sees its
 * storage runtime only through storage/replica_hooks.h and the public storage API.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compute/runtime.h" /* sli_client_map only: the cluster map the client learnt */
#include "replica/replica.h"
#include "sluice/compute.h"
#include "sluice/storage.h"
#include "storage/replica_hooks.h"

#define FOLLOW_RETRY_MS (24u * 3600u * 1000u)
#define FOLLOW_DATAFLOW 0x5354414e4442ull /* "STANDB" */

/* Per (local source, worker, collection): updates appended at times >= the upper since the
 * last advance; after the client is opened again, that many are skipped from the new stream. */
struct fworker {
	uint64_t pending[2];
	uint64_t skip[2];
};

/* A local source, with what the hot path (apply) reads of it kept here: it never changes. */
struct fsource {
	sl_source *src;
	uint64_t id;
	uint32_t nworkers;
	const char *name; /* storage's */
	struct fworker *w;
};

struct follower {
	sl_storage *st;
	const char *primary; /* storage's copy (sli_storage_standby_of) */
	struct fsource *srcs;
	size_t nsrcs;
	int refused; /* the last open failed on TLS or the token: said once, until it changes */
	char *limits; /* sl_storage_follow_truncating's cuts, applied once the sources are known */
	unsigned backoff_ms; /* while its own disk refuses appends: the wait before following again */
	pthread_mutex_t mu;  /* held by the follower while it applies one event */
	atomic_int stop;
	pthread_t tid;
};

/* A full disk or an I/O error of this standby's own logs (see sli_source_retryable). */
static int disk_error(int rc)
{
	return rc == -ENOSPC || rc == -EDQUOT || rc == -EIO || rc == SL_EIO;
}

static void follow_warn(sl_storage *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void follow_warn(sl_storage *st, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sli_storage_warn(st, msg);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Sleeps up to ms, returning early (1) when asked to stop. */
static int nap(struct follower *f, unsigned ms)
{
	for (unsigned t = 0; t < ms; t += 50) {
		if (atomic_load(&f->stop))
			return 1;
		sleep_ms(50);
	}
	return atomic_load(&f->stop);
}

/* Checks that the primary is the process this standby was configured for: a lone process for
 * a lone standby; for a standby given --cluster and --process, that process of a cluster with
 * the same list, whose fingerprint the standby then reports as its own.  Learns the primary's
 * term.  0, SL_ECLUSTER (fatal). */
static int check_primary(sl_storage *st, const char *primary, sl_client *c)
{
	uint64_t fp;
	uint32_t count, process, own_size, own_process;
	const char (*map)[SLI_MAP_ENTRY_MAX];
	const char *const *cluster = sli_storage_cluster(st, &own_size, &own_process);
	sli_client_map(c, &fp, &count, &process, &map);
	if (cluster == NULL && count > 1) {
		sli_storage_set_error("%s is process %u of a storage cluster of %u processes: give the "
		                      "standby the same --cluster list and --process %u", primary,
		                      process, count, process);
		return SL_ECLUSTER;
	}
	if (cluster != NULL) {
		int same = map != NULL && count == own_size && process == own_process;
		for (uint32_t i = 0; same && i < count; i++)
			same = strcmp(map[i], cluster[i]) == 0;
		if (!same) {
			sli_storage_set_error("%s is process %u of %u of a cluster listed as '%s...'; this "
			                      "standby was given process %u of %u listed as '%s...': give it "
			                      "the primary's --cluster and --process", primary,
			                      process, count, map ? map[0] : "", own_process,
			                      own_size, cluster[0]);
			return SL_ECLUSTER;
		}
		if (sli_storage_exchange_fingerprint(st, fp) != fp) {
			int rc = sli_storage_save_fingerprint(st, fp);
			if (rc != 0)
				follow_warn(st, "cannot persist the cluster fingerprint: %s", sl_strerror(rc));
		}
	}
	/* Under a coordinator a standby keeps its own term (the last it led, or 1), below the
	 * leader's: clients pick the leader by the higher term. */
	uint64_t t = sl_client_term(c);
	if (t > sl_storage_term(st) && !sli_storage_coordinated(st)) {
		sli_storage_set_term(st, t);
		int rc = sli_storage_save_term(st, t);
		if (rc != 0)
			follow_warn(st, "cannot persist term %" PRIu64 ": %s", t, sl_strerror(rc));
	}
	return 0;
}

/* Registers (or finds, on a later round) every source of the primary locally. */
static int register_sources(struct follower *f, sl_source_info *infos, size_t n)
{
	sl_storage *st = f->st;
	if (n > f->nsrcs) {
		struct fsource *ns = realloc(f->srcs, n * sizeof(*ns));
		if (ns == NULL)
			return SL_ENOMEM;
		memset(ns + f->nsrcs, 0, (n - f->nsrcs) * sizeof(*ns));
		f->srcs = ns;
	}
	for (size_t i = 0; i < n; i++) {
		struct fsource *fs = &f->srcs[i];
		if (i < f->nsrcs) {
			if (strcmp(fs->name, infos[i].name) != 0 || fs->id != infos[i].id ||
			    fs->nworkers != infos[i].workers) {
				sli_storage_set_error("the primary's source %" PRIu64 " is now %s with %u "
				                      "workers; this standby has %s with %u",
				                      infos[i].id, infos[i].name, infos[i].workers,
				                      fs->name, fs->nworkers);
				return SL_EARG;
			}
			continue;
		}
		sl_source *src;
		int rc = sl_source_register(st, infos[i].name, infos[i].kind, infos[i].workers, 0, &src);
		if (rc != 0)
			return rc;
		if (sl_source_id(src) != infos[i].id) {
			sli_storage_set_error("source %s has id %" PRIu64 " here and %" PRIu64 " on the "
			                      "primary: a standby must host no other source",
			                      infos[i].name, sl_source_id(src), infos[i].id);
			return SL_EARG;
		}
		if ((fs->w = calloc(infos[i].workers ? infos[i].workers : 1, sizeof(*fs->w))) == NULL)
			return SL_ENOMEM;
		fs->src = src;
		fs->id = sl_source_id(src);
		fs->nworkers = sl_source_workers(src);
		fs->name = sli_source_name(src);
		f->nsrcs = i + 1;
	}
	return 0;
}

static struct fsource *find_fsource(struct follower *f, uint64_t id)
{
	for (size_t i = 0; i < f->nsrcs; i++)
		if (f->srcs[i].id == id)
			return &f->srcs[i];
	return NULL;
}

/* Cuts each worker `limits` names back below its limit (sl_storage_follow_truncating).  0, or
 * a negative error (the follower stops: following on from a log the leader does not share
 * would serve other rows at the same times). */
static int apply_limits(struct follower *f)
{
	char *save = NULL;
	for (char *tok = strtok_r(f->limits, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint64_t id, t;
		uint32_t w;
		if (sscanf(tok, "%" SCNu64 ":%" SCNu32 "=%" SCNu64, &id, &w, &t) != 3)
			continue; /* checked at sl_storage_follow_truncating */
		struct fsource *fs = find_fsource(f, id);
		if (fs == NULL || w >= fs->nworkers || !sl_source_hosts(fs->src, w))
			continue;
		uint64_t before = sl_source_upper(fs->src, w), after;
		if (before == SL_TIME_CLOSED || before <= t)
			continue;
		int rc = sli_source_truncate(fs->src, w, t, &after);
		if (rc != 0) {
			sli_storage_set_error("cannot cut source %s worker %u back to %" PRIu64 ": %s",
			                      fs->name, w, t, sl_strerror(rc));
			return rc;
		}
		fs->w[w].pending[0] = fs->w[w].pending[1] = 0;
		follow_warn(f->st, "rejoining: cut source %s worker %u back from %" PRIu64 " to %" PRIu64
		            " (what the new leader had when its term began)", fs->name, w, before, after);
	}
	free(f->limits);
	f->limits = NULL;
	return 0;
}

/* Applies one event.  0, or a negative error (the round ends, the client is opened again).
 * Every Progress is acknowledged to the process followed with the local upper (durable once
 * sl_source_advance returned), also when it did not move: a restarted leader learns it so. */
static int apply(struct follower *f, sl_client *c, const sl_event *ev)
{
	struct fsource *fs = find_fsource(f, ev->source);
	if (fs == NULL || ev->worker >= fs->nworkers)
		return 0;
	struct fworker *fw = &fs->w[ev->worker];
	if (ev->kind == SL_EV_MESSAGES) {
		int coll = ev->collection == SL_ERR ? 1 : 0;
		sl_update *ups = malloc((ev->count ? ev->count : 1) * sizeof(*ups));
		if (ups == NULL)
			return SL_ENOMEM;
		size_t n = 0;
		sl_iter it;
		sl_bytes row;
		int64_t diff;
		sl_iter_init(&it, ev);
		while (sl_iter_update(&it, &row, &diff) == 1) {
			if (fw->skip[coll] > 0) {
				fw->skip[coll]--;
				continue;
			}
			ups[n++] = (sl_update){.row = row, .time = ev->time, .diff = diff};
		}
		int rc = n ? sl_source_append(fs->src, ev->worker, ev->collection, ups, n) : 0;
		free(ups);
		if (rc == 0)
			fw->pending[coll] += n;
		return rc;
	}
	if (ev->kind == SL_EV_PROGRESS) {
		uint64_t cur = sl_source_upper(fs->src, ev->worker);
		if (ev->frontier > cur) {
			int rc = sl_source_advance(fs->src, ev->worker, ev->frontier);
			if (rc != 0)
				return rc;
			fw->pending[0] = fw->pending[1] = 0;
			fw->skip[0] = fw->skip[1] = 0;
			cur = ev->frontier;
		}
		return sli_client_replica_ack(c, fs->id, ev->worker, cur);
	}
	if (ev->kind == SL_EV_WATERMARK)
		return sli_source_set_watermark(fs->src, ev->worker, ev->upper);
	return 0;
}

/* One connection to the primary, until the client gives up or we are told to stop.  Returns 1
 * to stop for good, 0 to open the client again. */
static int follow_round(struct follower *f)
{
	sl_storage *st = f->st;
	const char *primary = f->primary;
	sl_client_config cfg;
	sl_client *c = NULL;
	sl_queue *q = NULL;
	sl_source_info *infos = NULL;
	size_t n = 0;
	int rc, stop = 0;
	sl_client_config_init(&cfg);
	cfg.server = primary;
	cfg.retry_for_ms = FOLLOW_RETRY_MS;
	cfg.one_process = 1;
	sli_replica_client_config(st, &cfg);
	if ((rc = sl_client_open(&cfg, &c)) != 0) {
		if ((rc == SL_ETLS || rc == SL_EAUTH) && f->refused != rc)
			follow_warn(st, "cannot follow %s: %s", primary, sl_client_last_error());
		f->refused = rc;
		return 0; /* not reachable yet: try again */
	}
	f->refused = 0;
	if (check_primary(st, primary, c) != 0) {
		follow_warn(st, "%s", sl_storage_last_error());
		stop = 1;
		goto out;
	}
	while ((rc = sl_client_list_sources(c, 5000, &infos, &n)) != 0) {
		if (nap(f, 200))
			goto out;
		if (rc == SL_EDISCONNECTED || rc == SL_ETIMEDOUT)
			continue;
		follow_warn(st, "cannot list the sources of %s: %s", primary, sl_strerror(rc));
		goto out;
	}
	pthread_mutex_lock(&f->mu);
	rc = atomic_load(&f->stop) ? 1 : register_sources(f, infos, n);
	if (rc == 0 && f->limits != NULL)
		rc = apply_limits(f);
	pthread_mutex_unlock(&f->mu);
	if (rc != 0) {
		if (rc != 1)
			follow_warn(st, "standby of %s stops following: %s", primary,
			            sl_storage_last_error()[0] ? sl_storage_last_error() : sl_strerror(rc));
		stop = 1;
		goto out;
	}
	char self[160];
	sli_storage_self(st, self, sizeof(self));
	if (sli_client_replica(c, self) != 0 || sl_queue_open(c, &q) != 0)
		goto out;
	for (size_t i = 0; i < f->nsrcs; i++) {
		for (uint32_t w = 0; w < f->srcs[i].nworkers; w++) {
			struct fworker *fw = &f->srcs[i].w[w];
			uint64_t from = sl_source_upper(f->srcs[i].src, w);
			if (!sl_source_hosts(f->srcs[i].src, w))
				continue;
			/* What this copy holds already, said once per connection: a worker with nothing
			 * new to send (empty, idle or closed) gets no Progress to acknowledge, and the
			 * in-sync set must still learn it. */
			if (sli_client_replica_ack(c, f->srcs[i].id, w, from) != 0)
				goto out;
			if (from == SL_TIME_CLOSED)
				continue; /* nothing more to follow */
			/* what a previous round appended at times >= from comes again: skip it */
			fw->skip[0] = fw->pending[0];
			fw->skip[1] = fw->pending[1];
			sl_sub sub;
			if (sl_subscribe(q, FOLLOW_DATAFLOW, f->srcs[i].id, w, from, &sub) != 0)
				goto out;
		}
	}
	for (;;) {
		sl_event ev;
		if (atomic_load(&f->stop)) {
			stop = 1;
			break;
		}
		rc = sl_queue_next(q, &ev, 100);
		if (rc == 0)
			continue;
		if (rc < 0)
			break;
		if (ev.kind == SL_EV_DISCONNECTED) {
			follow_warn(st, "lost the primary %s: %s; connecting again", primary,
			            ev.message ? ev.message : sl_strerror(ev.code));
			break;
		}
		if (ev.kind == SL_EV_RECONNECTED) {
			/* the primary may have restarted with more sources: list them again (what the
			 * new subscriptions send twice is skipped by count) */
			break;
		}
		if (ev.kind == SL_EV_SUBSCRIBE_ERROR) {
			follow_warn(st, "the primary %s refused to follow source %" PRIu64 " worker %u: %s",
			            primary, ev.source, ev.worker, ev.message ? ev.message : "");
			continue;
		}
		if (ev.kind != SL_EV_MESSAGES && ev.kind != SL_EV_PROGRESS && ev.kind != SL_EV_WATERMARK)
			continue;
		pthread_mutex_lock(&f->mu);
		if (atomic_load(&f->stop)) {
			pthread_mutex_unlock(&f->mu);
			stop = 1;
			break;
		}
		rc = apply(f, c, &ev);
		pthread_mutex_unlock(&f->mu);
		if (rc != 0 && disk_error(rc)) {
			/* Storage said once that the worker's appends are blocked; the append wrote
			 * nothing, so following again from the upper (skipping by count) is exact. */
			f->backoff_ms = f->backoff_ms ? f->backoff_ms * 2 : 100;
			if (f->backoff_ms > 5000)
				f->backoff_ms = 5000;
			break;
		}
		if (rc != 0) {
			follow_warn(st, "standby of %s cannot apply an update: %s; following again",
			            primary, sl_strerror(rc));
			break;
		}
		f->backoff_ms = 0;
	}
out:
	sl_queue_close(q);
	sl_source_info_free(infos, n);
	sl_client_close(c);
	return stop || atomic_load(&f->stop);
}

static void *follow_thread(void *arg)
{
	struct follower *f = arg;
	while (!follow_round(f))
		if (nap(f, f->backoff_ms ? f->backoff_ms : 200))
			break;
	for (size_t i = 0; i < f->nsrcs; i++)
		free(f->srcs[i].w);
	free(f->srcs);
	f->srcs = NULL;
	f->nsrcs = 0;
	free(f->limits);
	f->limits = NULL;
	return NULL;
}

/* Registered with storage (replica_hooks.h): promotion stops the follower, close joins it. */
static void follower_stop(void *arg)
{
	struct follower *f = arg;
	/* The follower applies one event at a time under mu: after this no more. */
	pthread_mutex_lock(&f->mu);
	atomic_store(&f->stop, 1);
	pthread_mutex_unlock(&f->mu);
}

static void follower_join(void *arg)
{
	struct follower *f = arg;
	atomic_store(&f->stop, 1);
	pthread_join(f->tid, NULL);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

static const sli_follower_ops follower_ops = {follower_stop, follower_join};

static int follow(sl_storage *st, const char *primary, const char *limits);

SL_API int sl_storage_follow(sl_storage *st, const char *primary)
{
	return follow(st, primary, NULL);
}

SL_API int sl_storage_follow_truncating(sl_storage *st, const char *primary, const char *limits)
{
	if (limits != NULL) {
		uint64_t id, t;
		uint32_t w;
		int end = 0;
		for (const char *p = limits; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] != '\0'))
			if (sscanf(p, "%" SCNu64 ":%" SCNu32 "=%" SCNu64 "%n", &id, &w, &t, &end) != 3 ||
			    (p[end] != ',' && p[end] != '\0'))
				return SL_EARG;
	}
	return follow(st, primary, limits);
}

static int follow(sl_storage *st, const char *primary, const char *limits)
{
	/* A quick first look: a primary that is not the process this standby was configured for is
	 * refused right away. */
	sl_client_config cfg;
	sl_client *c;
	int rc = sli_storage_set_standby(st, primary);
	if (rc != 0)
		return rc;
	sl_client_config_init(&cfg);
	cfg.server = primary;
	cfg.one_process = 1;
	cfg.retry_for_ms = 0;
	sli_replica_client_config(st, &cfg);
	cfg.connect_timeout_ms = 2000;
	uint64_t fp;
	uint32_t size, process;
	if (sli_storage_cluster(st, &size, &process) != NULL && sli_storage_load_fingerprint(st, &fp) == 0)
		sli_storage_exchange_fingerprint(st, fp); /* learnt from the primary before a restart */
	int orc = sl_client_open(&cfg, &c);
	if (orc == SL_ETLS || orc == SL_EAUTH) {
		/* a primary that is up but refuses us will go on refusing: say so now */
		sli_storage_set_error("cannot follow %s: %s", primary, sl_client_last_error());
		sli_storage_clear_standby(st);
		return orc;
	}
	if (orc == 0) {
		rc = check_primary(st, primary, c);
		sl_client_close(c);
		if (rc != 0) {
			sli_storage_clear_standby(st);
			return rc;
		}
	}
	struct follower *f = calloc(1, sizeof(*f));
	if (f == NULL) {
		sli_storage_clear_standby(st); /* not a standby without a follower */
		return SL_ENOMEM;
	}
	f->st = st;
	f->primary = sli_storage_standby_of(st);
	if (limits != NULL && (f->limits = strdup(limits)) == NULL) {
		sli_storage_clear_standby(st);
		free(f);
		return SL_ENOMEM;
	}
	pthread_mutex_init(&f->mu, NULL);
	atomic_store(&f->stop, 0);
	sli_storage_set_follower(st, &follower_ops, f);
	rc = pthread_create(&f->tid, NULL, follow_thread, f);
	if (rc != 0) {
		sli_storage_set_follower(st, NULL, NULL);
		sli_storage_clear_standby(st);
		pthread_mutex_destroy(&f->mu);
		free(f->limits);
		free(f);
		return -rc;
	}
	return 0;
}
