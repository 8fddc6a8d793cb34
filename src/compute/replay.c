/*
 * replay.c - dropping what a resumed subscription sends twice (see replay.h for the contract).
 *
 * The table of times is a small sorted array (inline while it has at most SLI_SEEN_INLINE
 * entries), like a frontier: in practice it holds the one or two times at or above the
 * frontier.  The events handed in were validated by the frame decoder, so they are walked with
 * raw loads and never fail to parse.
 */
#include "compute/replay.h"

#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

/* ---- the table of times ---- */

static sli_seen *seen(sli_replay *r)
{
	return r->heap ? r->heap : r->inl;
}

/* The index of time, or of where it would go.  Searched from the end: times arrive mostly in
 * increasing order, so the answer is almost always the last entry or just past it. */
static uint32_t seen_find(sli_replay *r, uint64_t time)
{
	const sli_seen *e = seen(r);
	uint32_t i = r->n;
	while (i > 0 && e[i - 1].time >= time)
		i--;
	return i;
}

/* The entry for time, inserted (zeroed) when missing; NULL when out of memory. */
static sli_seen *seen_get(sli_replay *r, uint64_t time)
{
	uint32_t i = seen_find(r, time);
	sli_seen *e = seen(r);
	if (i < r->n && e[i].time == time)
		return &e[i];
	if (r->n == r->cap) {
		/* cap starts at SLI_SEEN_INLINE > 0, so it is never 0 here */
		/* NOLINTBEGIN(clang-analyzer-optin.portability.UnixAPI) */
		uint32_t cap = r->cap * 2;
		sli_seen *h = r->heap ? realloc(r->heap, cap * sizeof(*h)) : malloc(cap * sizeof(*h));
		/* NOLINTEND(clang-analyzer-optin.portability.UnixAPI) */
		if (h == NULL)
			return NULL;
		if (r->heap == NULL)
			memcpy(h, r->inl, r->n * sizeof(*h));
		r->heap = h;
		r->cap = cap;
		e = h;
	}
	memmove(&e[i + 1], &e[i], (r->n - i) * sizeof(*e));
	e[i] = (sli_seen){.time = time};
	r->n++;
	return &e[i];
}

/* Drops the entries below the frontier: storage never sends those times again. */
static void seen_prune(sli_replay *r)
{
	uint64_t below = sli_frontier_get(&r->f);
	sli_seen *e = seen(r);
	uint32_t k = 0;
	while (k < r->n && e[k].time < below) {
		if (e[k].skip > 0)
			r->skipping--;
		k++;
	}
	if (k > 0) {
		memmove(e, e + k, (r->n - k) * sizeof(*e));
		r->n -= k;
	}
}

/* ---- lifecycle ---- */

void sli_replay_init(sli_replay *r)
{
	memset(r, 0, sizeof(*r));
	sli_frontier_init(&r->f);
	sli_frontier_init(&r->nf);
	r->cap = SLI_SEEN_INLINE;
}

void sli_replay_fini(sli_replay *r)
{
	sli_frontier_fini(&r->f);
	sli_frontier_fini(&r->nf);
	free(r->heap);
	r->heap = NULL;
	r->n = 0;
	r->cap = SLI_SEEN_INLINE;
}

uint64_t sli_replay_frontier(const sli_replay *r)
{
	return sli_frontier_get(&r->f);
}

void sli_replay_rewind(sli_replay *r)
{
	sli_seen *e = seen(r);
	r->skipping = 0;
	for (uint32_t i = 0; i < r->n; i++) {
		/* everything ever delivered at the time comes again, whatever an earlier replay
		 * already dropped */
		e[i].skip = e[i].delivered;
		if (e[i].skip > 0)
			r->skipping++;
	}
	sli_frontier_fini(&r->nf);
	sli_frontier_init(&r->nf);
	/* from 0 (nothing received yet) storage sends no initial PROGRESS: nothing to hold back */
	r->resync = !sli_frontier_equal(&r->nf, &r->f);
}

void sli_replay_forget(sli_replay *r)
{
	r->n = 0;
	r->skipping = 0;
}

/* ---- the clean path ---- */

int sli_replay_pass(sli_replay *r, sl_bytes events)
{
	const uint8_t *p = events.ptr, *end = events.ptr + events.len;
	while (p < end) {
		if (*p == SLI_EV_MESSAGES) {
			uint32_t count = sli_get_u32(p + 9);
			sli_seen *e = seen_get(r, sli_get_u64(p + 1));
			if (e == NULL)
				return SL_ENOMEM;
			e->delivered += count;
			p += SLI_MESSAGES_HDR + (size_t)sli_get_u32(p + 13);
			continue;
		}
		uint32_t n = sli_get_u32(p + 1);
		p += 5;
		for (uint32_t i = 0; i < n; i++, p += SLI_CHANGE_SIZE)
			if (sli_frontier_update(&r->f, sli_get_u64(p), (int64_t)sli_get_u64(p + 8)) != 0)
				return SL_ENOMEM;
		seen_prune(r);
	}
	return 0;
}

/* ---- the replay path ---- */

size_t sli_replay_bound(const sli_replay *r, sl_bytes events)
{
	const uint8_t *p = events.ptr, *end = events.ptr + events.len;
	size_t changes = 0;
	if (!r->resync)
		return events.len; /* only MESSAGES shrink */
	while (p < end) {
		if (*p == SLI_EV_MESSAGES) {
			p += SLI_MESSAGES_HDR + (size_t)sli_get_u32(p + 13);
			continue;
		}
		uint32_t n = sli_get_u32(p + 1);
		changes += n;
		p += 5 + (size_t)n * SLI_CHANGE_SIZE;
	}
	/* the catch-up PROGRESS holds at most one change per entry of f and of nf, and nf gains at
	 * most one entry per change */
	return events.len + 5 + (r->f.n + r->nf.n + changes) * SLI_CHANGE_SIZE;
}

/* Writes the PROGRESS that takes the worker from f to nf (nothing when they are equal), makes
 * nf the frontier and ends the resync.  Returns the bytes written. */
static size_t catch_up(sli_replay *r, uint8_t *out)
{
	const sli_frontier_entry *a = sli_frontier_entries(&r->f), *b = sli_frontier_entries(&r->nf);
	uint32_t i = 0, j = 0, n = 0;
	uint8_t *c = out + 5;
	while (i < r->f.n || j < r->nf.n) {
		uint64_t t;
		int64_t d;
		if (j == r->nf.n || (i < r->f.n && a[i].time < b[j].time)) {
			t = a[i].time;
			d = -a[i++].count;
		} else if (i == r->f.n || b[j].time < a[i].time) {
			t = b[j].time;
			d = b[j++].count;
		} else {
			t = a[i].time;
			d = b[j++].count - a[i++].count;
		}
		if (d == 0)
			continue;
		sli_set_u64(c, t);
		sli_set_u64(c + 8, (uint64_t)d);
		c += SLI_CHANGE_SIZE;
		n++;
	}
	sli_frontier_swap(&r->f, &r->nf);
	sli_frontier_fini(&r->nf);
	sli_frontier_init(&r->nf);
	r->resync = 0;
	seen_prune(r);
	if (n == 0)
		return 0;
	out[0] = SLI_EV_PROGRESS;
	sli_set_u32(out + 1, n);
	return 5 + (size_t)n * SLI_CHANGE_SIZE;
}

int sli_replay_filter(sli_replay *r, sl_bytes events, uint8_t *out, size_t *out_len)
{
	const uint8_t *p = events.ptr, *end = events.ptr + events.len;
	uint8_t *o = out;
	while (p < end) {
		if (*p == SLI_EV_MESSAGES) {
			uint64_t time = sli_get_u64(p + 1);
			uint32_t count = sli_get_u32(p + 9), nbytes = sli_get_u32(p + 13);
			const uint8_t *body = p + SLI_MESSAGES_HDR;
			p = body + nbytes;
			/* a time below the frontier was delivered whole: its PROGRESS came after it */
			if (time < sli_frontier_get(&r->f))
				continue;
			sli_seen *e = seen_get(r, time);
			if (e == NULL)
				return SL_ENOMEM;
			uint32_t drop = e->skip < count ? (uint32_t)e->skip : count;
			if (drop > 0) {
				e->skip -= drop;
				if (e->skip == 0)
					r->skipping--;
			}
			e->delivered += count - drop;
			if (drop == count)
				continue;
			if (drop == 0) {
				memcpy(o, body - SLI_MESSAGES_HDR, SLI_MESSAGES_HDR + (size_t)nbytes);
				o += SLI_MESSAGES_HDR + (size_t)nbytes;
				continue;
			}
			/* the duplicates end inside this event: keep its tail */
			const uint8_t *u = body;
			for (uint32_t k = 0; k < drop; k++)
				u += SLI_UPDATE_HDR + (size_t)sli_get_u32(u + 8);
			size_t keep = (size_t)(p - u);
			o[0] = SLI_EV_MESSAGES;
			sli_set_u64(o + 1, time);
			sli_set_u32(o + 9, count - drop);
			sli_set_u32(o + 13, (uint32_t)keep);
			memcpy(o + SLI_MESSAGES_HDR, u, keep);
			o += SLI_MESSAGES_HDR + keep;
			continue;
		}
		uint32_t n = sli_get_u32(p + 1);
		const uint8_t *ev = p;
		p += 5 + (size_t)n * SLI_CHANGE_SIZE;
		if (!r->resync) {
			for (uint32_t i = 0; i < n; i++)
				if (sli_frontier_update(&r->f, sli_get_u64(ev + 5 + 16 * (size_t)i),
				                        (int64_t)sli_get_u64(ev + 13 + 16 * (size_t)i)) != 0)
					return SL_ENOMEM;
			seen_prune(r);
			memcpy(o, ev, (size_t)(p - ev));
			o += p - ev;
			continue;
		}
		/* Resyncing: the new stream's PROGRESS is folded on its own and withheld until its
		 * frontier reaches the worker's; then the worker gets the difference. */
		for (uint32_t i = 0; i < n; i++)
			if (sli_frontier_update(&r->nf, sli_get_u64(ev + 5 + 16 * (size_t)i),
			                        (int64_t)sli_get_u64(ev + 13 + 16 * (size_t)i)) != 0)
				return SL_ENOMEM;
		if (sli_frontier_get(&r->nf) >= sli_frontier_get(&r->f))
			o += catch_up(r, o);
	}
	*out_len = (size_t)(o - out);
	return 0;
}
