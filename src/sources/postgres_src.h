/*
 * postgres_src.h - the state of one postgres source and the functions its files share:
 * postgres.c (the session loop, start and stop) calls postgres_snapshot.c and
 * postgres_stream.c, and all three write through postgres_batch.c; none calls back up.
 *
 * Part-level: only for src/sources/postgres*.c.
 */
#ifndef SLUICE_POSTGRES_SRC_H
#define SLUICE_POSTGRES_SRC_H

#include <stddef.h>
#include <stdint.h>

#include "sources/pgoutput.h"
#include "sources/postgres.h"
#include "sources/sources.h"

typedef struct relinfo {
	uint32_t relid;
	char *nsp, *rel;
	char replident;
	uint16_t ncols, nkeys;
} relinfo;

typedef struct pgsrc {
	char *name, *conninfo, *pub, *slot;
	uint32_t workers;
	sli_source_runner *runner;
	sl_source *src;
	sli_statefile state; /* pg-state: (upper, lsn) entries */

	uint64_t resume_lsn;  /* stream from here; 0 = no snapshot yet */
	uint64_t durable_lsn; /* told to PostgreSQL as flushed */
	uint64_t received_lsn;

	pg_conn *conn;
	sli_pgo_msg *msg;
	uint8_t *rowbuf;
	relinfo *rels;
	size_t nrels, rels_cap;
	int in_txn, skip_txn;

	sli_rowbatch batch; /* the batch of one time */

	char err[1024];
	char last_reported[1024];
} pgsrc;

/* ---- the batch of one transaction (postgres_batch.c) ---- */

/* Adds one row to the batch (an over-long one cut to SL_ROW_MAX).  0 or SL_ENOMEM.  Inline:
 * it runs for every row. */
static inline int sli_pgsrc_add(pgsrc *p, sl_collection coll, const void *row, size_t len,
                                int64_t diff)
{
	if (len > SL_ROW_MAX)
		len = SL_ROW_MAX; /* only err messages get here unchecked; cut them */
	return sli_rowbatch_add(&p->batch, coll, row, len, diff);
}

/* Adds an err row with the formatted message (cut to 1023 bytes).  0 or the batch's code. */
int sli_pgsrc_errf(pgsrc *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The least upper of the workers (all hosted here: see sli_postgres_start). */
uint64_t sli_pgsrc_least_upper(pgsrc *p);
/* Appends the batch at one time t, records that streaming continues at lsn after it, and
 * advances every worker to t + 1.  With force, advances even an empty batch. */
int sli_pgsrc_flush(pgsrc *p, uint64_t lsn, int force);
/* Forgets the rows gathered so far (an unfinished transaction). */
static inline void sli_pgsrc_drop(pgsrc *p)
{
	sli_rowbatch_clear(&p->batch);
}

/* One event of this source in sluiced's event log ("postgres source NAME: ..."). */
void sli_pgsrc_log(const pgsrc *p, int level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The name of a REPLICA IDENTITY setting ('d', 'n', 'f', 'i'). */
const char *sli_pgsrc_ident_name(char c);

/* ---- the first start (postgres_snapshot.c) ---- */

/* Creates the slot, reads every table of the publication and flushes it all at one time.
 * 0, -1 with p->err set, or SL_ECLOSED. */
int sli_pgsrc_snapshot(pgsrc *p);

/* ---- streaming (postgres_stream.c) ---- */

/* Handles one pgoutput message.  0, or a negative code that ends the session (p->err set
 * for -1; a sluice code otherwise). */
int sli_pgsrc_handle(pgsrc *p, const uint8_t *buf, size_t len, uint64_t lsn);
/* Forgets the relations described so far (a new session describes them again). */
void sli_pgsrc_rels_clear(pgsrc *p);

#endif
