/*
 * fence.c - keeping a replaced primary from serving stale data as if it were current.
 *
 * A promoted standby knows the address of the primary it replaced (it followed it).  From its
 * promotion on, a fencer thread tries that address every FENCE_RETRY_MS; whenever the old
 * primary is (back) up, the fencer sends it Fence(term, own address).  The old primary, whose
 * term is lower, records the fence in DATA/fenced (so a restart keeps it), drops every
 * connection with Error(SL_EFENCED) naming the new primary, and refuses every later client the
 * same way.  A client that knows both addresses never needed this (it follows the higher term);
 * this covers the clients that know only the old address.  The window left: between the old
 * primary's return and the fencer's next try (FENCE_RETRY_MS), and for as long as the two
 * cannot reach each other.  To let a fenced process serve again, start it on a new data
 * directory (its history may hold batches the new primary never received).
 */
#include <stdio.h>
#include <string.h>

#include "storage/probe.h"
#include "storage/storage_int.h"

#define FENCE_RETRY_MS 500
#define FENCE_IO_MS 3000

int sli_storage_fence(sl_storage *st, uint64_t term, const char *by)
{
	int rc = sli_storage_save_fenced(st, term, by);
	if (rc != 0)
		return rc;
	if ((rc = sli_storage_save_term(st, term)) != 0 && st->cfg.data_dir != NULL)
		return rc;
	atomic_store(&st->term, term);
	st->fenced = 1;
	snprintf(st->fenced_by, sizeof(st->fenced_by), "%s", by);
	if (st->cfg.warn) {
		char msg[400];
		snprintf(msg, sizeof(msg), "fenced: superseded by %s at term %llu; serving no client any more",
		         by, (unsigned long long)term);
		st->cfg.warn(st->cfg.warn_arg, msg);
	}
	return 0;
}

static int fenced_answer(const sli_frame *f, void *arg)
{
	/* Its Hello then Error(SL_EFENCED), or at once Error(SL_EFENCED) when fenced before. */
	return f->type == SLI_ERROR && f->u.error.code == SL_EFENCED;
}

static void *fence_thread(void *arg)
{
	sl_storage *st = arg;
	char self[192];
	sli_storage_self(st, self, sizeof(self));
	sli_frame fence = {.type = SLI_FENCE};
	fence.u.fence.by = (sl_bytes){(const uint8_t *)self, strlen(self)};
	while (!atomic_load(&st->fence_stop)) {
		fence.u.fence.term = atomic_load(&st->term);
		if (sli_probe(st->sec, st->standby_of, 0, "sluiced fencer", &fence, FENCE_IO_MS, fenced_answer, NULL)) {
			/* Fenced; it stays so across its restarts (DATA/fenced). */
			if (st->cfg.warn) {
				char msg[400];
				snprintf(msg, sizeof(msg), "fenced the old primary %s", st->standby_of);
				st->cfg.warn(st->cfg.warn_arg, msg);
			}
			break;
		}
		sli_nap(&st->fence_stop, FENCE_RETRY_MS);
	}
	return NULL;
}

int sli_fencer_start(sl_storage *st)
{
	if (st->fence_started || st->standby_of == NULL)
		return 0;
	atomic_store(&st->fence_stop, 0);
	int rc = pthread_create(&st->fence_tid, NULL, fence_thread, st);
	if (rc != 0)
		return -rc;
	st->fence_started = 1;
	return 0;
}

void sli_fencer_stop(sl_storage *st)
{
	if (!st->fence_started)
		return;
	atomic_store(&st->fence_stop, 1);
	pthread_join(st->fence_tid, NULL);
	st->fence_started = 0;
}
