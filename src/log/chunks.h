/*
 * chunks.h - the seam between memlog.c, which owns struct sli_log (its chunk table and the
 * read/write path of log.h for every kind of log), and a provider of chunks that are not plain
 * malloc'd memory (disklog.c: segment files, mapped).
 *
 * The direction is one way: a provider creates its log with sli_log_new_chunked, passing the
 * operations memlog.c calls back through (only when a chunk is created, dropped or the log is
 * freed: never per block).  memlog.c knows nothing of what the provider is.
 *
 * Part-level: only for the files of src/log (memlog.c, disklog.c, disklog_recover.c).
 */
#ifndef SLUICE_LOG_CHUNKS_H
#define SLUICE_LOG_CHUNKS_H

#include <stdint.h>

#include "log/crc32c.h"
#include "log/log.h"
#include "proto/proto.h"

/* Ends a chunk where the next block would not fit (nothing does when fewer than 4 bytes are
 * left: readers skip a tail shorter than a header by arithmetic). */
#define SLI_SKIP_MARK 0xffffffffu

/* What a log asks of the provider of its chunks.  owner is the pointer given to
 * sli_log_new_chunked. */
typedef struct sli_chunk_ops {
	/* Creates, allocates and maps the chunk at base; *out is its memory.  Writer.  0 or the
	 * code sli_log_error reports (-errno, SL_ENOMEM). */
	int (*create)(void *owner, uint64_t base, uint8_t **out);
	/* Unmaps and deletes the first chunk (never the last).  Only the log's reader thread, once
	 * no reader position lies in it.  0, SL_EARG (only one chunk), -errno. */
	int (*drop_first)(void *owner);
	/* Unmaps and deletes the last chunk (never the first), which a truncation emptied.  Writer,
	 * once no reader position lies in it.  SL_EARG (only one chunk): nothing changed; else the
	 * chunk is unmapped and forgotten either way, and 0 or -errno says whether its file went. */
	int (*drop_last)(void *owner);
	/* Frees every chunk and the owner (called by sli_log_free). */
	void (*release)(void *owner);
} sli_chunk_ops;

/* A log whose chunks are 1 << shift bytes.  ops NULL: chunks are malloc'd (a memory log).
 * With ops (which must outlive the log) chunks come from owner, and the log is durable: each
 * sli_log_commit writes the block's checksum. */
int sli_log_new_chunked(sli_log **out, unsigned shift, const sli_chunk_ops *ops, void *owner);
/* Installs the recovered chunk at base (a multiple of the chunk size). */
int sli_log_adopt(sli_log *log, uint64_t base, uint8_t *chunk);
/* Sets the first position and the end (and where the writer continues). */
void sli_log_set_bounds(sli_log *log, uint64_t start, uint64_t end);
/* The owner log was created with, if its chunk ops are ops; else NULL (another kind of log). */
void *sli_log_chunk_owner(const sli_log *log, const sli_chunk_ops *ops);

/* The checksum of the block whose header is at h (its nbytes of events follow): the CRC-32C of
 * the header without its checksum slot, then the events. */
static inline uint32_t sli_block_checksum(const uint8_t *h)
{
	uint32_t crc = sli_crc32c(0, h, 4);
	crc = sli_crc32c(crc, h + 8, 16);
	return sli_crc32c(crc, h + SLI_BLOCK_HDR, sli_get_u32(h));
}

#endif
