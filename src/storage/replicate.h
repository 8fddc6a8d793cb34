/*
 * replicate.h - the replication state replicate.c owns (it alone changes it, on the network
 * thread), laid out here so the report (metrics.c) can read it where it lives, as it reads
 * connections and workers.  Storage-internal: replicate.c and metrics.c.
 */
#ifndef SLUICE_STORAGE_REPLICATE_H
#define SLUICE_STORAGE_REPLICATE_H

#include "storage/storage_int.h"

#define ISR_TEXT_MAX 2048

struct sli_pending_ack {
	uint64_t batch;
	uint64_t time;
	struct sl_source *src;
};

struct sli_mworker {
	uint64_t acked;        /* durable upper the member acknowledged */
	uint64_t prev_upper;   /* this process's upper when the previous acknowledgement came */
	uint64_t caught_up_ms; /* the last time it was caught up */
};

struct sli_member {
	char name[128];
	struct conn *conn; /* NULL while disconnected */
	int insync;        /* in the set this process computes */
	int recorded;      /* in the set the coordinator last recorded */
	struct sli_mworker **w; /* [source index][worker], grown as acknowledgements come */
	uint32_t *nw;
	size_t nsrc;
};

struct sli_repl {
	struct sli_member *m;
	size_t n, cap;
	size_t npending;     /* acknowledgements waiting, over all connections */
	/* For the coordinator's thread: the in-sync set as text, and a recorded set to apply. */
	pthread_mutex_t mu;
	char isr[ISR_TEXT_MAX];
	uint64_t version;
	char *recorded;      /* set by sl_storage_isr_recorded, applied by the next tick */
	char caught[ISR_TEXT_MAX]; /* mu: ",A,B," the members caught up at the last tick */
};

static inline int sli_repl_is_standby(const sl_storage *st)
{
	return st->standby_of != NULL && !atomic_load(&st->promoted);
}

static inline int sli_repl_may_act(sl_storage *st)
{
	return sli_now_ms() < atomic_load(&st->act_until);
}

/* Copies in sync, this process included (1 without replication). */
static inline unsigned sli_repl_insync(const sl_storage *st)
{
	unsigned n = 1;
	for (size_t i = 0; st->repl != NULL && i < st->repl->n; i++)
		n += st->repl->m[i].insync != 0;
	return n;
}

/* What member m acknowledged of worker wi of the source at index si (0 if nothing yet). */
static inline uint64_t sli_repl_acked_of(const struct sli_member *m, size_t si, uint32_t wi)
{
	if (si >= m->nsrc || m->w[si] == NULL || wi >= m->nw[si])
		return 0;
	return m->w[si][wi].acked;
}

/* Whether this process acts as a leader now (not a standby; with a coordinator, before its
 * deadline). */
static inline int sli_repl_leads(sl_storage *st)
{
	return !sli_repl_is_standby(st) && (!st->cfg.coordinated || sli_repl_may_act(st));
}

#endif
