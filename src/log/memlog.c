/*
 * memlog.c - the in-memory log of log.h.
 *
 * Chunks of CHUNK(log) bytes (1 MiB for a memory log) are found by position through a two-level
 * table whose first level is allocated once, so a reader never sees the table move.  A block
 * never straddles two chunks: when the next block does not fit, the writer leaves a skip marker
 * (or, when fewer than a header's bytes are left, nothing: readers skip such a tail by
 * arithmetic) and starts the next chunk.
 *
 * The same code serves the durable log (disklog.c): there a chunk is a segment file mapped
 * MAP_SHARED, its size is the segment size, disklog.c creates it (through the chunk ops of
 * chunks.h, so this file never calls disklog.c), and each commit also writes the block's
 * CRC-32C into the header's checksum slot.  A memory log leaves that slot 0.
 */
#include "log/log.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log/chunks.h"
#include "proto/proto.h"

#define SLI_CHUNK_SHIFT 20 /* chunk size of a memory log */
#define CHUNK(log) ((uint64_t)1 << (log)->shift)
#define L2_SHIFT 10
#define L2_SIZE ((size_t)1 << L2_SHIFT)
#define L1_SIZE ((size_t)1 << 12) /* 2^12 * 2^10 chunks of 1 MiB: 4 TiB of history */

struct sli_log {
	_Atomic(uint8_t *) *_Atomic *l1; /* l1[i] -> array of L2_SIZE chunk pointers */
	_Atomic uint64_t end;            /* committed position */
	uint64_t wpos;                   /* where the reserved block starts (== end between commits) */
	size_t nchunks;
	unsigned shift;           /* chunk size is 1 << shift */
	uint64_t start;           /* position of the first block */
	int err;                  /* why the last sli_log_reserve returned NULL, 0 after a success */
	const sli_chunk_ops *ops; /* NULL: a memory log, whose chunks are malloc'd */
	void *owner;              /* what ops work on */
	int held;                 /* commits do not move `end` until sli_log_publish */
};

static _Atomic(uint8_t *) *slot(const sli_log *log, uint64_t chunk, int create)
{
	size_t i = (size_t)(chunk >> L2_SHIFT), j = (size_t)(chunk & (L2_SIZE - 1));
	if (i >= L1_SIZE)
		return NULL;
	_Atomic(uint8_t *) *l2 = atomic_load_explicit(&log->l1[i], memory_order_acquire);
	if (l2 == NULL) {
		if (!create)
			return NULL;
		l2 = calloc(L2_SIZE, sizeof(*l2));
		if (l2 == NULL)
			return NULL;
		atomic_store_explicit(&log->l1[i], l2, memory_order_release);
	}
	return &l2[j];
}

static uint8_t *chunk_at(const sli_log *log, uint64_t pos)
{
	_Atomic(uint8_t *) *s = slot(log, pos >> log->shift, 0);
	return s ? atomic_load_explicit(s, memory_order_acquire) : NULL;
}

int sli_log_new_chunked(sli_log **out, unsigned shift, const sli_chunk_ops *ops, void *owner)
{
	sli_log *log = calloc(1, sizeof(*log));
	if (log == NULL)
		return SL_ENOMEM;
	if ((log->l1 = calloc(L1_SIZE, sizeof(*log->l1))) == NULL) {
		free(log);
		return SL_ENOMEM;
	}
	log->shift = shift;
	log->ops = ops;
	log->owner = owner;
	*out = log;
	return 0;
}

int sli_log_new(sli_log **out)
{
	return sli_log_new_chunked(out, SLI_CHUNK_SHIFT, NULL, NULL);
}

int sli_log_adopt(sli_log *log, uint64_t base, uint8_t *chunk)
{
	_Atomic(uint8_t *) *s = slot(log, base >> log->shift, 1);
	if (s == NULL)
		return SL_ENOMEM;
	atomic_store_explicit(s, chunk, memory_order_release);
	log->nchunks++;
	return 0;
}

void sli_log_set_bounds(sli_log *log, uint64_t start, uint64_t end)
{
	log->start = start;
	log->wpos = end;
	atomic_store_explicit(&log->end, end, memory_order_release);
}

void *sli_log_chunk_owner(const sli_log *log, const sli_chunk_ops *ops)
{
	return log->ops == ops ? log->owner : NULL;
}

int sli_log_error(const sli_log *log)
{
	return log->err;
}

void sli_log_free(sli_log *log)
{
	if (log == NULL)
		return;
	for (size_t i = 0; i < L1_SIZE; i++) {
		_Atomic(uint8_t *) *l2 = log->l1[i];
		if (l2 == NULL)
			continue;
		for (size_t j = 0; j < L2_SIZE && log->ops == NULL; j++)
			free(l2[j]);
		free(l2);
	}
	free(log->l1);
	if (log->ops != NULL)
		log->ops->release(log->owner); /* the chunks were its mappings */
	free(log);
}

uint8_t *sli_log_reserve(sli_log *log, size_t cap)
{
	uint64_t pos = log->wpos;
	uint64_t off = pos & (CHUNK(log) - 1);
	uint8_t *c = chunk_at(log, pos);
	if (c == NULL || off + SLI_BLOCK_HDR + cap > CHUNK(log)) {
		if (c != NULL) {
			/* Close this chunk: readers jump to the next one. */
			if (CHUNK(log) - off >= 4)
				sli_set_u32(c + off, SLI_SKIP_MARK);
			pos = (pos | (CHUNK(log) - 1)) + 1;
		}
		_Atomic(uint8_t *) *s = slot(log, pos >> log->shift, 1);
		if (s == NULL) {
			log->err = SL_ENOMEM;
			return NULL;
		}
		if ((c = atomic_load_explicit(s, memory_order_relaxed)) != NULL) {
			/* A chunk that a truncation emptied: write over it again. */
		} else if (log->ops != NULL) {
			int rc = log->ops->create(log->owner, pos, &c);
			if (rc != 0) {
				log->err = rc;
				return NULL;
			}
		} else if ((c = malloc(CHUNK(log))) == NULL) {
			log->err = SL_ENOMEM;
			return NULL;
		}
		if (atomic_load_explicit(s, memory_order_relaxed) != c) {
			atomic_store_explicit(s, c, memory_order_release);
			log->nchunks++;
		}
		log->wpos = pos;
		off = 0;
	}
	log->err = 0;
	return c + off + SLI_BLOCK_HDR;
}

void sli_log_commit(sli_log *log, uint32_t nbytes, uint64_t min_time, uint64_t max_time)
{
	uint8_t *h = chunk_at(log, log->wpos) + (log->wpos & (CHUNK(log) - 1));
	sli_set_u32(h, nbytes);
	sli_set_u64(h + 8, min_time);
	sli_set_u64(h + 16, max_time);
	/* checksum: computed by the durable log only */
	sli_set_u32(h + 4, log->ops != NULL ? sli_block_checksum(h) : 0);
	log->wpos += SLI_BLOCK_HDR + nbytes;
	if (!log->held)
		atomic_store_explicit(&log->end, log->wpos, memory_order_release);
}

uint64_t sli_log_chunk_size(const sli_log *log)
{
	return CHUNK(log);
}

int sli_log_drop_before(sli_log *log, uint64_t pos)
{
	uint64_t end = sli_log_end(log);
	while (log->start + CHUNK(log) <= pos && log->start + CHUNK(log) <= end) {
		uint64_t base = log->start & ~(CHUNK(log) - 1);
		_Atomic(uint8_t *) *s = slot(log, base >> log->shift, 0);
		uint8_t *c = s ? atomic_load_explicit(s, memory_order_relaxed) : NULL;
		if (log->ops != NULL) {
			int rc = log->ops->drop_first(log->owner);
			if (rc == SL_EARG)
				break; /* the writer's segment */
			if (rc != 0)
				return rc;
		} else {
			free(c);
		}
		if (s != NULL)
			atomic_store_explicit(s, NULL, memory_order_release);
		if (c != NULL)
			log->nchunks--;
		log->start = base + CHUNK(log);
	}
	return 0;
}

void sli_log_hold(sli_log *log)
{
	log->held = 1;
}

void sli_log_publish(sli_log *log)
{
	log->held = 0;
	atomic_store_explicit(&log->end, log->wpos, memory_order_release);
}

void sli_log_truncate(sli_log *log, uint64_t pos)
{
	uint64_t end = log->wpos;
	if (pos < log->start)
		pos = log->start;
	for (uint64_t p = pos; p < end;) {
		uint64_t stop = (p | (CHUNK(log) - 1)) + 1;
		if (stop > end)
			stop = end;
		uint8_t *c = chunk_at(log, p);
		if (c != NULL)
			memset(c + (p & (CHUNK(log) - 1)), 0, stop - p);
		p = stop;
	}
	log->wpos = pos < end ? pos : end;
	log->held = 0;
	if (atomic_load_explicit(&log->end, memory_order_relaxed) > log->wpos)
		atomic_store_explicit(&log->end, log->wpos, memory_order_release);
}

int sli_log_drop_after(sli_log *log)
{
	uint64_t keep = log->wpos >> log->shift, top = keep;
	_Atomic(uint8_t *) *s;
	/* Chunks are made in order, without gaps: the last one is the first empty slot's neighbour. */
	while ((s = slot(log, top + 1, 0)) != NULL && atomic_load_explicit(s, memory_order_relaxed))
		top++;
	for (; top > keep; top--) {
		s = slot(log, top, 0);
		uint8_t *c = atomic_load_explicit(s, memory_order_relaxed);
		int rc = log->ops != NULL ? log->ops->drop_last(log->owner) : 0;
		if (rc == SL_EARG)
			break; /* the provider's only chunk (never the case above the writer's) */
		atomic_store_explicit(s, NULL, memory_order_release);
		if (log->ops == NULL)
			free(c);
		log->nchunks--;
		if (rc != 0)
			return rc;
	}
	return 0;
}

uint64_t sli_log_end(const sli_log *log)
{
	return atomic_load_explicit(&log->end, memory_order_acquire);
}

uint64_t sli_log_start(const sli_log *log)
{
	return log->start;
}

void sli_log_block(const sli_log *log, uint64_t pos, sli_block *b)
{
	for (;;) {
		uint64_t off = pos & (CHUNK(log) - 1);
		const uint8_t *c = chunk_at(log, pos);
		if (c == NULL || CHUNK(log) - off < SLI_BLOCK_HDR ||
		    sli_get_u32(c + off) == SLI_SKIP_MARK) {
			pos = (pos | (CHUNK(log) - 1)) + 1;
			continue;
		}
		const uint8_t *h = c + off;
		b->nbytes = sli_get_u32(h);
		b->min_time = sli_get_u64(h + 8);
		b->max_time = sli_get_u64(h + 16);
		b->events = h + SLI_BLOCK_HDR;
		b->next = pos + SLI_BLOCK_HDR + b->nbytes;
		return;
	}
}

size_t sli_log_memory(const sli_log *log)
{
	return log->nchunks * CHUNK(log);
}
