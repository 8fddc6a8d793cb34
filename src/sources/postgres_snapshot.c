/*
 * postgres_snapshot.c - the postgres source's first start: on the replication connection, the
 * slot is created with USE_SNAPSHOT and every table of the publication is read in that
 * transaction; all those rows go in at one time and every worker advances past it.
 */
#include <stdio.h>

#include "common/log.h"
#include "sources/pgoutput.h"
#include "sources/postgres.h"
#include "sources/postgres_src.h"

typedef struct snap_ctx {
	pgsrc *p;
	const sli_pgr_table *t;
} snap_ctx;

static int snap_row(void *arg, int ncols, const char *const *vals, const int *lens,
                    const int *nulls)
{
	snap_ctx *s = arg;
	pgsrc *p = s->p;
	sli_pgo_row r;

	sli_pgo_row_init(&r, p->rowbuf, SL_ROW_MAX, s->t->nsp, s->t->rel);
	for (int i = 0; i < ncols; i++) {
		if (nulls[i])
			sli_pgo_row_null(&r);
		else
			sli_pgo_row_value(&r, (const uint8_t *)vals[i], (size_t)lens[i]);
	}
	if (r.overflow)
		return sli_pgsrc_errf(p, "table %s.%s: snapshot row longer than %u bytes", s->t->nsp,
		                      s->t->rel, (unsigned)SL_ROW_MAX);
	return sli_pgsrc_add(p, SL_OK, r.buf, r.len, 1);
}

int sli_pgsrc_snapshot(pgsrc *p)
{
	sli_pgr_table *tables = NULL;
	size_t ntables = 0;
	uint64_t cp;
	int rc;

	rc = sli_pgr_slot_exists(p->conn, p->slot, p->err, sizeof(p->err));
	if (rc < 0)
		return -1;
	/* A slot left by a snapshot that never became durable: nothing was confirmed from it. */
	if (rc == 1 && sli_pgr_drop_slot(p->conn, p->slot, p->err, sizeof(p->err)) != 0)
		return -1;
	if (sli_pgr_create_slot_snapshot(p->conn, p->slot, &cp, p->err, sizeof(p->err)) != 0)
		return -1;
	if (sli_pgr_tables(p->conn, p->pub, &tables, &ntables, p->err, sizeof(p->err)) != 0)
		return -1;
	sli_pgsrc_drop(p);
	for (size_t i = 0; i < ntables; i++) {
		sli_pgr_table *t = &tables[i];
		snap_ctx s = {p, t};

		if (t->replident == 'n' || (t->replident == 'd' && !t->has_pkey)) {
			sli_pgsrc_log(p, SLI_LOG_WARN, "source_error", "table %s.%s has no replica identity: "
			        "PostgreSQL refuses its updates and deletes while it is published; set "
			        "REPLICA IDENTITY FULL", t->nsp, t->rel);
			if ((rc = sli_pgsrc_errf(p, "table %s.%s has no replica identity (REPLICA IDENTITY %s "
			                         "without a primary key): its updates and deletes fail; set "
			                         "REPLICA IDENTITY FULL", t->nsp, t->rel,
			                         sli_pgsrc_ident_name(t->replident))) != 0)
				goto err_rc;
		} else if (t->replident != 'f') {
			sli_pgsrc_log(p, SLI_LOG_WARN, "source_error", "table %s.%s has REPLICA IDENTITY %s, "
			        "not FULL: its updates and deletes cannot be reproduced exactly",
			        t->nsp, t->rel, sli_pgsrc_ident_name(t->replident));
			if ((rc = sli_pgsrc_errf(p, "table %s.%s has REPLICA IDENTITY %s, not FULL: its "
			                         "updates and deletes cannot be reproduced exactly",
			                         t->nsp, t->rel,
			                         sli_pgsrc_ident_name(t->replident))) != 0)
				goto err_rc;
		}
		rc = sli_pgr_read_table(p->conn, t, snap_row, &s, p->err, sizeof(p->err));
		if (rc == -1)
			goto err;
		if (rc != 0)
			goto err_rc;
	}
	sli_pgr_tables_free(tables, ntables);
	tables = NULL;
	if (sli_pgr_commit(p->conn, p->err, sizeof(p->err)) != 0)
		goto err;
	if ((rc = sli_pgsrc_flush(p, cp, 1)) != 0)
		goto err_rc;
	{
		char l[32];

		sli_pgr_lsn_text(cp, l, sizeof(l));
		sli_pgsrc_log(p, SLI_LOG_INFO, "source_progress", "snapshot of %zu tables taken; streaming "
		        "from %s", ntables, l);
	}
	return 0;
err_rc:
	snprintf(p->err, sizeof(p->err), "snapshot failed: %s", sl_strerror(rc));
err:
	sli_pgr_tables_free(tables, ntables);
	sli_pgsrc_drop(p);
	return rc == SL_ECLOSED ? rc : -1; /* p->err says what failed */
}
