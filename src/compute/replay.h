/*
 * replay.h - exactly-once delivery of one collection of one subscription across reconnects.
 *
 * After a reconnect the runtime resubscribes from the subscription's frontier F (the resume
 * point): storage then sends again every update at a time >= F, in the same order as before,
 * starting with a PROGRESS that moves its initial capability 0 -> F.  Some of those updates may
 * have reached the worker already (a time is delivered in pieces, and its PROGRESS comes after).
 * An sli_replay keeps, for each time >= F, how many updates were delivered at it; after a rewind
 * it drops exactly that many at each time (they come first for their time, in the same order),
 * and it holds back the new stream's PROGRESS until the new stream's frontier catches up with
 * the one the worker already has, then delivers the difference (usually nothing).  The worker
 * sees one continuous stream whose frontier never goes backwards.
 *
 * Cost: while nothing is being replayed (sli_replay_clean), a Data frame is looked at per event,
 * never per update, and copied whole.  While replaying, events are copied one by one into the
 * queue item, and an update is looked at only in the one event per time where the duplicates
 * end.  Nothing here allocates per update: the table of times grows only with the number of
 * distinct times at or above the frontier.
 *
 * Pure memory, no locks, no I/O: the runtime thread owns it.
 */
#ifndef SLUICE_COMPUTE_REPLAY_H
#define SLUICE_COMPUTE_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "compute/frontier.h"
#include "sluice/sluice.h"

#define SLI_SEEN_INLINE 4

/* Updates delivered at one time >= the frontier, and how many of them a replay still owes. */
typedef struct sli_seen {
	uint64_t time;
	uint64_t delivered;
	uint64_t skip;
} sli_seen;

typedef struct sli_replay {
	sli_frontier f;  /* folded from what was delivered: the worker's frontier once it caught up */
	sli_frontier nf; /* while resyncing: the new stream's own frontier */
	int resync;      /* the new stream's frontier has not caught up with f yet */
	uint32_t skipping; /* entries with skip > 0 */
	sli_seen inl[SLI_SEEN_INLINE];
	sli_seen *heap;
	uint32_t n, cap;
} sli_replay;

/* Sets r to "nothing delivered, frontier {(0, +1)}".  Never allocates. */
void sli_replay_init(sli_replay *r);
void sli_replay_fini(sli_replay *r);

/* The frontier of what was delivered (SL_TIME_CLOSED once closed). */
uint64_t sli_replay_frontier(const sli_replay *r);

/* The stream restarts: storage will send again everything at times >= a resume point that is
 * <= sli_replay_frontier(r), beginning with its initial capability (0, +1). */
void sli_replay_rewind(sli_replay *r);

/* Forgets what was delivered at each time (storage sends a consolidated snapshot instead of a
 * replay: nothing of it is a duplicate).  The frontier is kept. */
void sli_replay_forget(sli_replay *r);

/* 1 when a Data frame can go to the worker as it is (sli_replay_pass); 0 when it must be
 * filtered (sli_replay_bound + sli_replay_filter). */
static inline int sli_replay_clean(const sli_replay *r)
{
	return !r->resync && r->skipping == 0;
}

/* Accounts validated events that go to the worker unchanged.  0, or SL_ENOMEM. */
int sli_replay_pass(sli_replay *r, sl_bytes events);

/* An upper bound of what sli_replay_filter writes for events. */
size_t sli_replay_bound(const sli_replay *r, sl_bytes events);

/* Copies to out what of validated events the worker has not had yet, rewriting MESSAGES whose
 * first updates are duplicates and PROGRESS that the worker must not see, and sets *out_len
 * (0 when nothing is left).  out has room for sli_replay_bound bytes.  0, or SL_ENOMEM. */
int sli_replay_filter(sli_replay *r, sl_bytes events, uint8_t *out, size_t *out_len);

#endif
