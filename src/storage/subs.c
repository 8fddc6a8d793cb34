/*
 * subs.c - a connection's subscriptions, found by handle (Credit, Data bookkeeping) and by
 * (dataflow, source, worker) (Subscribe duplicates, Unsubscribe).  Two intrusive chained hash
 * tables over the same struct sub, so a subscription costs no allocation beyond itself.
 */
#include <stdlib.h>

#include "storage/storage_int.h"

/* A 32-bit multiplicative hash on purpose: the product wraps in 32 bits. */
static size_t hash_handle(uint32_t h) { return (size_t)(h * 2654435761u); } // NOLINT(bugprone-misplaced-widening-cast)

static size_t hash_key(uint64_t dataflow, uint64_t source, uint32_t worker)
{
	uint64_t x = dataflow * 0x9e3779b97f4a7c15ull ^ source * 0xc2b2ae3d27d4eb4full ^ worker;
	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	return (size_t)(x ^ (x >> 29));
}

static int key_eq(const struct sub *s, uint64_t dataflow, uint64_t source, uint32_t worker)
{
	return s->dataflow == dataflow && s->w->src->id == source && s->w->index == worker;
}

int sli_subtable_init(struct subtable *t)
{
	t->nbuckets = 16;
	t->count = 0;
	t->by_handle = calloc(t->nbuckets, sizeof(*t->by_handle));
	t->by_key = calloc(t->nbuckets, sizeof(*t->by_key));
	if (t->by_handle == NULL || t->by_key == NULL) {
		free(t->by_handle);
		free(t->by_key);
		return SL_ENOMEM;
	}
	return 0;
}

void sli_subtable_fini(struct subtable *t)
{
	free(t->by_handle);
	free(t->by_key);
	t->by_handle = t->by_key = NULL;
}

struct sub *sli_sub_by_handle(struct subtable *t, uint32_t handle)
{
	struct sub *s = t->by_handle[hash_handle(handle) & (t->nbuckets - 1)];
	while (s && s->handle != handle)
		s = s->hnext;
	return s;
}

struct sub *sli_sub_by_key(struct subtable *t, uint64_t dataflow, uint64_t source, uint32_t worker)
{
	struct sub *s = t->by_key[hash_key(dataflow, source, worker) & (t->nbuckets - 1)];
	while (s && !key_eq(s, dataflow, source, worker))
		s = s->knext;
	return s;
}

static void link_sub(struct subtable *t, struct sub *s)
{
	size_t m = t->nbuckets - 1;
	size_t hb = hash_handle(s->handle) & m;
	size_t kb = hash_key(s->dataflow, s->w->src->id, s->w->index) & m;
	s->hnext = t->by_handle[hb];
	t->by_handle[hb] = s;
	s->knext = t->by_key[kb];
	t->by_key[kb] = s;
}

static int rehash(struct subtable *t, size_t nbuckets)
{
	struct sub **oh = t->by_handle;
	size_t on = t->nbuckets;
	struct sub **nh = calloc(nbuckets, sizeof(*nh)), **nk = calloc(nbuckets, sizeof(*nk));
	if (nh == NULL || nk == NULL) {
		free(nh);
		free(nk);
		return SL_ENOMEM;
	}
	free(t->by_key);
	t->by_handle = nh;
	t->by_key = nk;
	t->nbuckets = nbuckets;
	for (size_t i = 0; i < on; i++) {
		struct sub *s = oh[i], *next;
		for (; s; s = next) {
			next = s->hnext;
			link_sub(t, s);
		}
	}
	free(oh);
	return 0;
}

int sli_subtable_insert(struct subtable *t, struct sub *s)
{
	if (t->count + 1 > t->nbuckets) {
		int rc = rehash(t, t->nbuckets * 2);
		if (rc != 0)
			return rc;
	}
	link_sub(t, s);
	t->count++;
	return 0;
}

void sli_subtable_remove(struct subtable *t, struct sub *s)
{
	size_t m = t->nbuckets - 1;
	struct sub **pp = &t->by_handle[hash_handle(s->handle) & m];
	while (*pp != s)
		pp = &(*pp)->hnext;
	*pp = s->hnext;
	pp = &t->by_key[hash_key(s->dataflow, s->w->src->id, s->w->index) & m];
	while (*pp != s)
		pp = &(*pp)->knext;
	*pp = s->knext;
	t->count--;
	/* Shrink after mass unsubscribes so memory returns to where it was. */
	if (t->nbuckets > 16 && t->count * 4 < t->nbuckets)
		rehash(t, t->nbuckets / 2);
}
