/*
 * route.c - the ingest routing hash that storage and clients agree on.
 *
 * An ingested row goes to worker hash(row) mod W on whichever side computes it: storage when
 * it takes a batch, a client when it splits a batch across storage processes.  It is part of
 * the protocol, so it lives here rather than in either side.
 */
#include "sluice/sluice.h"

SL_API uint32_t sl_ingest_route(sl_bytes row, uint32_t workers)
{
	/* FNV-1a: stable across processes and versions, which routing must be. */
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < row.len; i++) {
		h ^= row.ptr[i];
		h *= 1099511628211ull;
	}
	return workers ? (uint32_t)(h % workers) : 0;
}
