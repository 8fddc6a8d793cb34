/*
 * postgres_batch.c - what the postgres source writes and how it reports: the batch of one
 * upstream transaction flushed at one time (rows, then the resume LSN in pg-state, then the
 * workers' advance), err rows, and its lines in sluiced's event log.
 */
#include <stdarg.h>
#include <stdio.h>

#include "common/log.h"
#include "sources/postgres_src.h"

int sli_pgsrc_errf(pgsrc *p, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return SL_EARG;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	return sli_pgsrc_add(p, SL_ERR, msg, (size_t)n, 1);
}

/* The least upper of the workers (all hosted here: see sli_postgres_start). */
uint64_t sli_pgsrc_least_upper(pgsrc *p)
{
	uint64_t t = SL_TIME_CLOSED, u;

	for (uint32_t w = 0; w < p->workers; w++)
		if ((u = sl_source_upper(p->src, w)) < t)
			t = u;
	return t;
}

/* Appends the batch at one time t, records that streaming continues at lsn after it, and
 * advances every worker to t + 1.  With force, advances even an empty batch. */
int sli_pgsrc_flush(pgsrc *p, uint64_t lsn, int force)
{
	uint64_t t;
	int rc;

	if (p->batch.nitems == 0 && !force)
		return 0;
	if ((t = sli_pgsrc_least_upper(p)) == SL_TIME_CLOSED)
		return SL_ECLOSED;
	uint64_t entry[2] = {t + 1, lsn};
	/* A full disk: the transaction waits whole (PostgreSQL keeps its WAL, since nothing past
	 * durable_lsn is confirmed) and is committed again once space returns. */
	for (uint64_t backoff = 0;;) {
		if ((rc = sli_statefile_write(&p->state, entry)) == 0 &&
		    (rc = sli_rowbatch_commit(&p->batch, p->src, t, t + 1)) == 0)
			break;
		if (!sli_source_retryable(rc) || sli_runner_backoff(p->runner, &backoff))
			return rc;
	}
	sli_rowbatch_clear(&p->batch);
	p->resume_lsn = lsn;
	if (lsn > p->durable_lsn)
		p->durable_lsn = lsn;
	return 0;
}

/* One event of this source in sluiced's event log ("postgres source NAME: ..."). */
void sli_pgsrc_log(const pgsrc *p, int level, const char *event, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sli_kv kv[] = {{"source", p->name, 0}, {"kind", "postgres", 0}, {NULL, NULL, 0}};
	sli_elog(level, event, kv, "postgres source %s: %s", p->name, msg);
}

const char *sli_pgsrc_ident_name(char c)
{
	switch (c) {
	case 'd': return "DEFAULT";
	case 'n': return "NOTHING";
	case 'f': return "FULL";
	case 'i': return "USING INDEX";
	default: return "unknown";
	}
}
