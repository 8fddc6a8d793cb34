/*
 * frontier.c - the (time, count) multiset behind every subscription's frontier.
 *
 * The set is tiny in practice (one or two times: the current upper, and the next one while a
 * Progress event moves it), so a sorted array with linear search beats any tree.
 */
#include "compute/frontier.h"

#include <stdlib.h>
#include <string.h>

static sli_frontier_entry *entries(sli_frontier *f)
{
	return f->heap ? f->heap : f->inl;
}

void sli_frontier_init(sli_frontier *f)
{
	memset(f, 0, sizeof(*f));
	f->cap = SLI_FRONTIER_INLINE;
	f->inl[0].time = 0;
	f->inl[0].count = 1;
	f->n = 1;
}

void sli_frontier_fini(sli_frontier *f)
{
	free(f->heap);
	f->heap = NULL;
	f->n = 0;
	f->cap = SLI_FRONTIER_INLINE;
}

int sli_frontier_update(sli_frontier *f, uint64_t time, int64_t delta)
{
	sli_frontier_entry *e = entries(f);
	uint32_t i = 0;
	if (delta == 0)
		return 0;
	while (i < f->n && e[i].time < time)
		i++;
	if (i < f->n && e[i].time == time) {
		e[i].count += delta;
		if (e[i].count == 0) {
			memmove(&e[i], &e[i + 1], (f->n - i - 1) * sizeof(*e));
			f->n--;
		}
		return 0;
	}
	if (f->n == f->cap) {
		/* cap starts at SLI_FRONTIER_INLINE > 0, so it is never 0 here */
		/* NOLINTBEGIN(clang-analyzer-optin.portability.UnixAPI) */
		uint32_t cap = f->cap * 2;
		sli_frontier_entry *h = f->heap ? realloc(f->heap, cap * sizeof(*h))
		                                : malloc(cap * sizeof(*h));
		/* NOLINTEND(clang-analyzer-optin.portability.UnixAPI) */
		if (h == NULL)
			return SL_ENOMEM;
		if (f->heap == NULL)
			memcpy(h, f->inl, f->n * sizeof(*h));
		f->heap = h;
		f->cap = cap;
		e = h;
	}
	memmove(&e[i + 1], &e[i], (f->n - i) * sizeof(*e));
	e[i].time = time;
	e[i].count = delta;
	f->n++;
	return 0;
}

uint64_t sli_frontier_get(const sli_frontier *f)
{
	const sli_frontier_entry *e = f->heap ? f->heap : f->inl;
	for (uint32_t i = 0; i < f->n; i++)
		if (e[i].count > 0)
			return e[i].time;
	return SL_TIME_CLOSED;
}

const sli_frontier_entry *sli_frontier_entries(const sli_frontier *f)
{
	return f->heap ? f->heap : f->inl;
}

int sli_frontier_equal(const sli_frontier *a, const sli_frontier *b)
{
	if (a->n != b->n)
		return 0;
	return a->n == 0 || memcmp(sli_frontier_entries(a), sli_frontier_entries(b),
	                           a->n * sizeof(sli_frontier_entry)) == 0;
}

void sli_frontier_swap(sli_frontier *a, sli_frontier *b)
{
	/* by value: a heap pointer moves with its struct, inline entries are copied */
	sli_frontier t = *a;
	*a = *b;
	*b = t;
}
