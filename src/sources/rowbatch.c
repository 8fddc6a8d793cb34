/*
 * rowbatch.c - the rows a source gathers for one time, shared by the file and postgres sources.
 *
 * Rows are copied into one arena as they come; each remembers its worker (sl_ingest_route over
 * the row bytes, like ingested rows), its collection and its diff.  sli_rowbatch_commit then
 * hands them to the storage runtime at one time t with the uppers' advance, as one
 * sl_source_commit (all or nothing: a full disk leaves nothing half-written, and the same
 * commit is retried).  See sources.h.
 */
#include <stdlib.h>
#include <string.h>

#include "sources/sources.h"

int sli_rowbatch_init(sli_rowbatch *b, uint32_t workers)
{
	memset(b, 0, sizeof(*b));
	b->workers = workers;
	if ((b->counts = calloc(2u * (size_t)workers, sizeof(*b->counts))) == NULL ||
	    (b->parts = calloc(2u * (size_t)workers, sizeof(*b->parts))) == NULL)
		return SL_ENOMEM;
	return 0;
}

void sli_rowbatch_fini(sli_rowbatch *b)
{
	free(b->arena);
	free(b->items);
	free(b->ups);
	free(b->counts);
	free(b->parts);
	memset(b, 0, sizeof(*b));
}

int sli_rowbatch_add(sli_rowbatch *b, sl_collection coll, const void *row, size_t len,
                     int64_t diff)
{
	uint32_t w = 0;

	if (b->arena_len + len > b->arena_cap) {
		size_t cap = b->arena_cap ? b->arena_cap : 65536;
		uint8_t *a;

		while (cap < b->arena_len + len)
			cap *= 2;
		if ((a = realloc(b->arena, cap)) == NULL)
			return SL_ENOMEM;
		b->arena = a;
		b->arena_cap = cap;
	}
	if (b->nitems == b->items_cap) {
		size_t cap = b->items_cap ? b->items_cap * 2 : 1024;
		sli_rowbatch_item *it;

		if ((it = realloc(b->items, cap * sizeof(*it))) == NULL)
			return SL_ENOMEM;
		b->items = it;
		b->items_cap = cap;
	}
	if (len > 0)
		memcpy(b->arena + b->arena_len, row, len);
	if (b->workers > 1)
		w = sl_ingest_route((sl_bytes){b->arena + b->arena_len, len}, b->workers);
	b->items[b->nitems].off = b->arena_len;
	b->items[b->nitems].len = len;
	b->items[b->nitems].key = w * 2u + (uint32_t)coll;
	b->items[b->nitems].diff = diff;
	b->nitems++;
	b->arena_len += len;
	return 0;
}

int sli_rowbatch_commit(sli_rowbatch *b, sl_source *src, uint64_t t, uint64_t upper)
{
	size_t i, j = 0, np = 0;

	if (b->ups_cap < b->nitems) {
		sl_update *ups = realloc(b->ups, b->nitems * sizeof(*ups));

		if (ups == NULL)
			return SL_ENOMEM;
		b->ups = ups;
		b->ups_cap = b->nitems;
	}
	memset(b->counts, 0, 2u * (size_t)b->workers * sizeof(*b->counts));
	for (i = 0; i < b->nitems; i++)
		b->counts[b->items[i].key]++;
	/* One part per (worker, collection), its rows in the order they were added, laid out one
	 * group after another in ups. */
	for (uint32_t g = 0; g < 2u * b->workers; g++) {
		/* In a cluster another process keeps the rows of the workers not hosted here; a
		 * worker ahead of t has this batch already (a crash in the middle of a commit of an
		 * older version, whose advances were not one transaction). */
		if (b->counts[g] == 0 || !sl_source_hosts(src, g / 2u) ||
		    sl_source_upper(src, g / 2u) > t)
			continue;
		sl_append_part *pt = &b->parts[np++];
		pt->worker = g / 2u;
		pt->coll = (sl_collection)(g % 2u);
		pt->ups = b->ups + j;
		pt->n = 0;
		for (i = 0; i < b->nitems; i++) {
			if (b->items[i].key != g)
				continue;
			b->ups[j].row.ptr = b->arena + b->items[i].off;
			b->ups[j].row.len = b->items[i].len;
			b->ups[j].time = t;
			b->ups[j].diff = b->items[i].diff;
			j++;
			pt->n++;
		}
	}
	return sl_source_commit(src, b->parts, np, upper);
}

void sli_rowbatch_clear(sli_rowbatch *b)
{
	b->nitems = 0;
	b->arena_len = 0;
}
