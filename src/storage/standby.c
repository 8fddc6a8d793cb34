/*
 * standby.c - storage's side of the standby role: the primary this process follows, the
 * follower that src/replica registers (storage never calls replica: it calls the registered
 * operations), promotion, and what the follower may read and adopt of this process (cluster
 * identity, term).  Declared in replica_hooks.h and storage_int.h.
 *
 * Promotion (a Promote frame, on the network thread): the follower is told to stop (so no event
 * is half applied), the ingest sources start taking Appends, and the term is bumped and
 * persisted.  The follower is joined at sl_storage_close.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/replica_hooks.h"
#include "storage/storage_int.h"

int sli_storage_set_standby(sl_storage *st, const char *primary)
{
	if (st == NULL || primary == NULL || st->standby_of != NULL)
		return SL_EARG;
	if ((st->standby_of = strdup(primary)) == NULL)
		return SL_ENOMEM;
	return 0;
}

void sli_storage_clear_standby(sl_storage *st)
{
	free(st->standby_of);
	st->standby_of = NULL;
}

const char *sli_storage_standby_of(const sl_storage *st)
{
	return st->standby_of;
}

void sli_storage_set_follower(sl_storage *st, const sli_follower_ops *ops, void *arg)
{
	st->follower_ops = ops;
	st->follower = ops != NULL ? arg : NULL;
}

void sli_storage_self(const sl_storage *st, char *buf, size_t len)
{
	const char *colon = strrchr(st->listen, ':');
	snprintf(buf, len, "%.*s:%d", colon ? (int)(colon - st->listen) : 0, st->listen, st->port);
}

void sli_storage_warn(sl_storage *st, const char *msg)
{
	if (st->cfg.warn)
		st->cfg.warn(st->cfg.warn_arg, msg);
}

const char *const *sli_storage_cluster(const sl_storage *st, uint32_t *size, uint32_t *process)
{
	*size = st->cluster_size;
	*process = st->process;
	return (const char *const *)st->cluster;
}

uint64_t sli_storage_exchange_fingerprint(sl_storage *st, uint64_t fp)
{
	return atomic_exchange(&st->fingerprint, fp);
}

int sli_storage_coordinated(const sl_storage *st)
{
	return st->cfg.coordinated;
}

void sli_storage_set_term(sl_storage *st, uint64_t term)
{
	atomic_store(&st->term, term);
}

SL_API int sl_storage_is_standby(const sl_storage *st)
{
	return st->standby_of != NULL && !atomic_load(&st->promoted);
}

SL_API uint64_t sl_storage_term(const sl_storage *st)
{
	return atomic_load(&st->term);
}

/* Stops the follower (if any), persists `term` and opens the ingest sources: the leader now. */
static int take_lead(sl_storage *st, uint64_t term, char *err, size_t errlen)
{
	/* The follower applies one event at a time under its lock: after this no more. */
	if (st->follower_ops != NULL)
		st->follower_ops->stop(st->follower);
	int rc = sli_storage_save_term(st, term);
	if (rc != 0) {
		snprintf(err, errlen, "cannot persist the new term %" PRIu64 ": %s", term, sl_strerror(rc));
		return rc;
	}
	atomic_store(&st->term, term);
	pthread_mutex_lock(&st->src_mu);
	for (size_t i = 0; i < st->nsources; i++)
		if (strcmp(st->sources[i]->kind, "ingest") == 0)
			st->sources[i]->flags |= SL_SOURCE_INGEST;
	pthread_mutex_unlock(&st->src_mu);
	atomic_store(&st->promoted, 1);
	return 0;
}

int sli_storage_promote(sl_storage *st, uint64_t *term_out, char *err, size_t errlen)
{
	if (st->cfg.coordinated) {
		snprintf(err, errlen, "leadership is decided in etcd: use sluice promote with --etcd");
		return SL_EREJECTED;
	}
	if (st->standby_of == NULL || atomic_load(&st->promoted)) {
		snprintf(err, errlen, "not a standby");
		return SL_EREJECTED;
	}
	uint64_t term = atomic_load(&st->term) + 1;
	int rc = take_lead(st, term, err, errlen);
	if (rc == 0)
		*term_out = term;
	return rc;
}

SL_API int sl_storage_set_leader(sl_storage *st, uint64_t term)
{
	char err[200];
	if (st == NULL || term <= atomic_load(&st->term) || !st->cfg.coordinated)
		return SL_EARG;
	int rc = take_lead(st, term, err, sizeof(err));
	if (rc != 0)
		sli_storage_set_error("%s", err);
	return rc;
}

int sli_source_set_watermark(sl_source *src, uint32_t worker, uint64_t hw)
{
	if (worker >= src->nworkers)
		return SL_EARG;
	struct sworker *w = &src->w[worker];
	uint64_t cur = atomic_load(&w->wm);
	while (hw > cur && !atomic_compare_exchange_weak(&w->wm, &cur, hw))
		;
	sli_worker_touch(w);
	return 0;
}

void sli_storage_stop_follower(sl_storage *st)
{
	if (st->follower_ops == NULL)
		return;
	st->follower_ops->join(st->follower);
	st->follower_ops = NULL;
	st->follower = NULL;
}
