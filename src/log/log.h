/*
 * log.h - the per-(source, worker, collection) log that subscriptions read as cursors.
 *
 * A log is a sequence of blocks addressed by a logical byte position.  A block holds one or more
 * encoded events (the MESSAGES encoding of src/proto, byte for byte what a Data frame carries)
 * behind a header with their byte count and time range, so serving a subscriber is a copy of
 * whole blocks, and a subscriber's cursor is the position of its next block.
 *
 * One writer at a time (the caller serialises appends, e.g. with the worker's lock); any number
 * of readers on other threads without a lock: sli_log_end is an acquire load, and the bytes
 * below it never change while the log lives.
 *
 * This implementation keeps the blocks in memory, in 1 MiB chunks that are never moved.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/sluice.h"

/* The largest events payload of one block.  Storage never sends a block that exceeds the
 * subscription's credit, so every credit window must be at least this big. */
#define SLI_BLOCK_MAX (64u * 1024u)
#define SLI_BLOCK_HDR 24u /* u32 nbytes | u32 checksum | u64 min_time | u64 max_time */

typedef struct sli_log sli_log;

typedef struct sli_block {
	const uint8_t *events; /* nbytes of encoded events */
	uint32_t nbytes;
	uint64_t min_time;
	uint64_t max_time;
	uint64_t next; /* position of the following block */
} sli_block;

int sli_log_new(sli_log **out);
void sli_log_free(sli_log *log);

/* Writer: returns a pointer where up to `cap` (<= SLI_BLOCK_MAX) bytes of events may be
 * written for the next block, or NULL when out of memory.  Nothing is visible to readers until
 * sli_log_commit. */
uint8_t *sli_log_reserve(sli_log *log, size_t cap);
/* Writer: publishes the block of nbytes (<= the reserved cap) written at the reserved place. */
void sli_log_commit(sli_log *log, uint32_t nbytes, uint64_t min_time, uint64_t max_time);
/* Writer: why the last sli_log_reserve returned NULL: SL_ENOMEM, or for a disk log (disklog.h)
 * the -errno of creating a segment (-ENOSPC: the disk is full, -EIO); 0 after a success. */
int sli_log_error(const sli_log *log);

/* Writer: a transaction over one log.  After sli_log_hold, commits stay invisible to readers
 * until sli_log_publish; sli_log_truncate(log, sli_log_end(log)) drops them instead. */
void sli_log_hold(sli_log *log);
void sli_log_publish(sli_log *log);
/* Writer: drops every block from pos (a block position) on, zeroing their bytes (on disk too).
 * Only for blocks no reader can have seen: those of a hold, or before any reader exists
 * (recovery dropping the incomplete tail). */
void sli_log_truncate(sli_log *log, uint64_t pos);

/* Writer: frees (deletes, on disk) every chunk after the one the writer is in, which a
 * sli_log_truncate emptied (so recovery never meets a run of empty segments).  Only for chunks
 * no reader position lies in.  0, or -errno from deleting a segment (the chunks above the one it
 * failed on are gone, that one and those below stay, empty, and are written over again). */
int sli_log_drop_after(sli_log *log);

/* The size of the log's chunks (segments on disk). */
uint64_t sli_log_chunk_size(const sli_log *log);
/* Reader thread: frees (deletes, on disk) every whole chunk below pos, never the one the
 * writer is in, and moves the start there.  No reader position may lie below pos. */
int sli_log_drop_before(sli_log *log, uint64_t pos);

/* The position just past the last committed block (acquire). */
uint64_t sli_log_end(const sli_log *log);
/* The position of the first block. */
uint64_t sli_log_start(const sli_log *log);

/* Reads the block at pos (which must be a block position below sli_log_end). */
void sli_log_block(const sli_log *log, uint64_t pos, sli_block *b);

/* Bytes of memory the log holds. */
size_t sli_log_memory(const sli_log *log);

#endif
