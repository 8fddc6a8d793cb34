/*
 * block_write.h - the writer's side of a worker's log: encoding updates into blocks of
 * MESSAGES events, so the bytes in the log are the bytes a Data frame carries.  Inline: it is
 * the append path of source.c (append, ingest) and also writes compaction's snapshots.
 */
#ifndef SLUICE_STORAGE_BLOCK_WRITE_H
#define SLUICE_STORAGE_BLOCK_WRITE_H

#include <stdint.h>
#include <string.h>

#include "log/log.h"
#include "proto/proto.h"
#include "sluice/storage.h"

/* Block being filled by an append: where events go and how far they reach. */
struct blockw {
	sli_log *log;
	uint8_t *base;
	size_t len;
	uint64_t min_time, max_time;
	uint8_t *ev;      /* open MESSAGES event header, or NULL */
	uint64_t ev_time;
	uint32_t ev_count;
};

static inline void block_close_event(struct blockw *b)
{
	if (b->ev == NULL)
		return;
	uint8_t *end = b->base + b->len;
	sli_set_u32(b->ev + 9, b->ev_count);
	sli_set_u32(b->ev + 13, (uint32_t)(end - b->ev - SLI_MESSAGES_HDR));
	b->ev = NULL;
}

static inline void block_commit(struct blockw *b)
{
	block_close_event(b);
	if (b->base != NULL && b->len > 0)
		sli_log_commit(b->log, (uint32_t)b->len, b->min_time, b->max_time);
	b->base = NULL;
	b->len = 0;
}

/* Appends one update, opening a new event or block as needed.  0 or SL_ENOMEM. */
static inline int block_put(struct blockw *b, uint64_t time, int64_t diff, sl_bytes row)
{
	size_t need = SLI_UPDATE_HDR + row.len;
	int same = b->ev != NULL && b->ev_time == time;
	if (b->base != NULL && b->len + need + (same ? 0 : SLI_MESSAGES_HDR) > SLI_BLOCK_MAX)
		block_commit(b), same = 0;
	if (b->base == NULL) {
		if ((b->base = sli_log_reserve(b->log, SLI_BLOCK_MAX)) == NULL)
			return SL_ENOMEM;
		b->len = 0;
		b->min_time = UINT64_MAX;
		b->max_time = 0;
	}
	if (!same) {
		block_close_event(b);
		b->ev = b->base + b->len;
		b->ev[0] = SLI_EV_MESSAGES;
		sli_set_u64(b->ev + 1, time);
		b->len += SLI_MESSAGES_HDR;
		b->ev_time = time;
		b->ev_count = 0;
	}
	uint8_t *p = b->base + b->len;
	sli_set_u64(p, (uint64_t)diff);
	sli_set_u32(p + 8, (uint32_t)row.len);
	if (row.len)
		memcpy(p + SLI_UPDATE_HDR, row.ptr, row.len);
	b->len += need;
	b->ev_count++;
	if (time < b->min_time)
		b->min_time = time;
	if (time > b->max_time)
		b->max_time = time;
	return 0;
}

/* Appends validated updates to a log as blocks of MESSAGES events (the writer's side).
 * 0, the log's error, or SL_ENOMEM. */
static inline int sli_log_write_updates(sli_log *log, const sl_update *ups, size_t n)
{
	struct blockw b = {.log = log};
	for (size_t i = 0; i < n; i++) {
		int rc = block_put(&b, ups[i].time, ups[i].diff, ups[i].row);
		if (rc != 0) {
			block_commit(&b);
			return sli_log_error(log) ? sli_log_error(log) : rc;
		}
	}
	block_commit(&b);
	return 0;
}

#endif
