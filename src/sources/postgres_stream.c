/*
 * postgres_stream.c - the postgres source's streamed changes: each pgoutput message (Begin,
 * Relation, Insert, Update, Delete, Truncate, Commit) applied to the batch of its transaction,
 * and the table of relations the stream has described.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sources/pgoutput.h"
#include "sources/postgres.h"
#include "sources/postgres_src.h"

void sli_pgsrc_rels_clear(pgsrc *p)
{
	for (size_t i = 0; i < p->nrels; i++) {
		free(p->rels[i].nsp);
		free(p->rels[i].rel);
	}
	p->nrels = 0;
}

static relinfo *rel_find(pgsrc *p, uint32_t relid)
{
	for (size_t i = 0; i < p->nrels; i++)
		if (p->rels[i].relid == relid)
			return &p->rels[i];
	return NULL;
}

static int rel_update(pgsrc *p, const sli_pgo_msg *m)
{
	relinfo *r = rel_find(p, m->relid);
	char *nsp = strdup(m->nspname[0] ? m->nspname : "pg_catalog"), *rel = strdup(m->relname);

	if (nsp == NULL || rel == NULL) {
		free(nsp);
		free(rel);
		return SL_ENOMEM;
	}
	if (r == NULL) {
		if (p->nrels == p->rels_cap) {
			size_t cap = p->rels_cap ? p->rels_cap * 2 : 16;
			relinfo *n = realloc(p->rels, cap * sizeof(*n));

			if (n == NULL) {
				free(nsp);
				free(rel);
				return SL_ENOMEM;
			}
			p->rels = n;
			p->rels_cap = cap;
		}
		r = &p->rels[p->nrels++];
	} else {
		free(r->nsp);
		free(r->rel);
	}
	r->relid = m->relid;
	r->nsp = nsp;
	r->rel = rel;
	r->replident = m->replident;
	r->ncols = m->ncols;
	r->nkeys = m->nkeys;
	if (m->replident == 'n' || (m->replident == 'd' && m->nkeys == 0))
		sli_pgsrc_log(p, SLI_LOG_WARN, "source_error", "table %s.%s has no replica identity: "
		        "PostgreSQL refuses its updates and deletes while it is published; set "
		        "REPLICA IDENTITY FULL", nsp, rel);
	else if (m->replident != 'f')
		sli_pgsrc_log(p, SLI_LOG_WARN, "source_error", "table %s.%s has REPLICA IDENTITY %s, not "
		        "FULL: its updates and deletes cannot be reproduced exactly", nsp, rel,
		        sli_pgsrc_ident_name(m->replident));
	return 0;
}

/* Adds the row of tuple t (the 'u' columns taken from old) with diff, or an err row. */
static int add_tuple(pgsrc *p, const relinfo *r, const char *what, const sli_pgo_tuple *t,
                     const sli_pgo_tuple *old, int64_t diff)
{
	const char *why = NULL;
	sli_pgo_row row;

	sli_pgo_row_init(&row, p->rowbuf, SL_ROW_MAX, r->nsp, r->rel);
	if (t->ncols != r->ncols)
		return sli_pgsrc_errf(p, "table %s.%s: %s with %u columns, the table has %u", r->nsp,
		                      r->rel, what, t->ncols, r->ncols);
	if (sli_pgo_row_tuple(&row, t, old, &why) != 0)
		return sli_pgsrc_errf(p, "table %s.%s: %s cannot be decoded: %s", r->nsp, r->rel, what,
		                      why);
	if (row.overflow)
		return sli_pgsrc_errf(p, "table %s.%s: %s row longer than %u bytes", r->nsp, r->rel, what,
		                      (unsigned)SL_ROW_MAX);
	return sli_pgsrc_add(p, SL_OK, row.buf, row.len, diff);
}

/* Handles one pgoutput message.  0, or a negative code that ends the session (p->err set
 * for -1; a sluice code otherwise). */
int sli_pgsrc_handle(pgsrc *p, const uint8_t *buf, size_t len, uint64_t lsn)
{
	sli_pgo_msg *m = p->msg;
	const char *why = NULL;
	const relinfo *r;
	char l[32];
	int rc = 0;

	if (sli_pgo_decode(buf, len, m, &why) != 0) {
		sli_pgr_lsn_text(lsn, l, sizeof(l));
		if (p->skip_txn)
			return 0;
		if ((rc = sli_pgsrc_errf(p, "undecodable pgoutput message at LSN %s: %s", l, why)) != 0)
			return rc;
		return p->in_txn ? 0 : sli_pgsrc_flush(p, p->resume_lsn, 0);
	}
	switch (m->type) {
	case 'B':
		sli_pgsrc_drop(p);
		p->in_txn = 1;
		/* committed before the resume point: already durable here */
		p->skip_txn = m->lsn < p->resume_lsn;
		return 0;
	case 'C':
		p->in_txn = 0;
		if (p->skip_txn) {
			p->skip_txn = 0;
			sli_pgsrc_drop(p);
			return 0;
		}
		if (p->batch.nitems == 0) { /* nothing published changed: nothing to make durable */
			if (m->end_lsn > p->durable_lsn)
				p->durable_lsn = m->end_lsn;
			return 0;
		}
		return sli_pgsrc_flush(p, m->end_lsn, 0);
	case 'R':
		return rel_update(p, m);
	case 'O':
	case 'Y':
	case 'M':
		return 0;
	default:
		break;
	}
	if (p->skip_txn)
		return 0;
	if (m->type == 'T') {
		for (uint32_t i = 0; i < m->ntrunc && rc == 0; i++) {
			r = rel_find(p, sli_pgo_trunc_relid(m, i));
			if (r != NULL)
				rc = sli_pgsrc_errf(p, "table %s.%s truncated: its rows are not retracted", r->nsp,
				                    r->rel);
			else
				rc = sli_pgsrc_errf(p, "relation %" PRIu32 " truncated: its rows are not retracted",
				                    sli_pgo_trunc_relid(m, i));
		}
		return rc;
	}
	if ((r = rel_find(p, m->relid)) == NULL)
		return sli_pgsrc_errf(p, "change to relation %" PRIu32 " before its Relation message",
		                      m->relid);
	switch (m->type) {
	case 'I':
		return add_tuple(p, r, "insert", &m->newtup, NULL, 1);
	case 'U':
		if (m->old_kind == 'O') {
			if ((rc = add_tuple(p, r, "update (old row)", &m->oldtup, NULL, -1)) != 0)
				return rc;
			return add_tuple(p, r, "update", &m->newtup, &m->oldtup, 1);
		}
		if ((rc = sli_pgsrc_errf(p, "table %s.%s: update without the old row (REPLICA IDENTITY "
		                         "%s): the new row was added, the old one not retracted",
		                         r->nsp, r->rel,
		                         sli_pgsrc_ident_name(r->replident))) != 0)
			return rc;
		return add_tuple(p, r, "update", &m->newtup, NULL, 1);
	case 'D':
		if (m->old_kind == 'O')
			return add_tuple(p, r, "delete", &m->oldtup, NULL, -1);
		return sli_pgsrc_errf(p, "table %s.%s: delete without the old row (REPLICA IDENTITY %s): "
		                      "the row was not retracted", r->nsp, r->rel,
		                      sli_pgsrc_ident_name(r->replident));
	default:
		return sli_pgsrc_errf(p, "unexpected pgoutput message '%c'", m->type);
	}
}
