/*
 * frontier.h - folding Progress changes into a frontier.
 *
 * A frontier is kept as a small multiset of (time, count), sorted by time, entries with count 0
 * dropped.  The frontier is the least time whose count is positive; when there is none it is
 * SL_TIME_CLOSED.  Like timely's capture, a collection starts with the implicit capability
 * (0, +1): sli_frontier_init puts it there.  Counts may go negative in between (a change's
 * retraction can arrive before its insertion); such entries are kept but never define the
 * frontier.  Pure memory, no locks: one thread at a time.
 */
#ifndef SLUICE_COMPUTE_FRONTIER_H
#define SLUICE_COMPUTE_FRONTIER_H

#include <stdint.h>

#include "sluice/sluice.h"

#define SLI_FRONTIER_INLINE 4

typedef struct sli_frontier_entry {
	uint64_t time;
	int64_t count;
} sli_frontier_entry;

typedef struct sli_frontier {
	sli_frontier_entry inl[SLI_FRONTIER_INLINE]; /* used while cap <= SLI_FRONTIER_INLINE */
	sli_frontier_entry *heap;                    /* used once it outgrew inl */
	uint32_t n, cap;
} sli_frontier;

/* Sets f to {(0, +1)}.  Never allocates. */
void sli_frontier_init(sli_frontier *f);
/* Frees what f allocated.  f may be re-initialised afterwards. */
void sli_frontier_fini(sli_frontier *f);
/* Adds delta to the count at time.  0, or SL_ENOMEM (f unchanged).  Allocates only when more
 * than SLI_FRONTIER_INLINE distinct times are outstanding at once. */
int sli_frontier_update(sli_frontier *f, uint64_t time, int64_t delta);
/* The least time with a positive count, or SL_TIME_CLOSED. */
uint64_t sli_frontier_get(const sli_frontier *f);
/* The entries of f, sorted by time (f->n of them); valid until the next update of f. */
const sli_frontier_entry *sli_frontier_entries(const sli_frontier *f);
/* 1 when a and b hold the same (time, count) entries. */
int sli_frontier_equal(const sli_frontier *a, const sli_frontier *b);
/* Exchanges the contents of a and b (never allocates). */
void sli_frontier_swap(sli_frontier *a, sli_frontier *b);

#endif
