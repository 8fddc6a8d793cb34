/*
 * postgres.c - the `postgres` source: a PostgreSQL publication's tables, by logical replication.
 *
 * Keys: conninfo=C (required; a libpq connection string, may be empty for libpq's environment
 * defaults; it cannot contain a comma), publication=P (required), slot=S (default sluice_NAME,
 * lowercased, other characters than [a-z0-9_] made '_'), workers=W (default 1; rows are routed
 * like ingested rows, sl_ingest_route over the row bytes).
 *
 * First start: in one transaction on a replication connection, the slot is created with
 * USE_SNAPSHOT and every table of the publication is read; all those rows go in at one time
 * and every worker advances past it.  Then the slot streams from its consistent point: the
 * changes of each upstream transaction are held in memory until its Commit, then appended at
 * one time t (the least upper of the workers) and every worker advances to t + 1.  Times follow
 * commit LSN order because the slot delivers transactions in that order.
 *
 * Rows: "SCHEMA.TABLE<TAB>value..." (pgoutput.h).  insert = +1, delete = -1 of the old row,
 * update = -1 old row, +1 new row.  Only REPLICA IDENTITY FULL sends the whole old row; for
 * other tables an update adds its new row but cannot retract the old one, and a delete cannot
 * retract anything: each such change is reported in `err` instead (so is a Truncate).
 *
 * Durability: before the workers advance to t + 1, the LSN to stream from after that time
 * (the transaction's end LSN) is written to DATA/sources/NAME/pg-state, keyed by t + 1 (the
 * previous entry is kept: statefile.c).  At start the entry of the durable upper says where
 * to resume (LSN 0 = the snapshot was not finished: it is taken again, on a new slot).
 * PostgreSQL is told (flush LSN of Standby Status Updates) only LSNs whose changes are durable
 * here, so a SIGKILL loses nothing and duplicates nothing: the slot resends what follows the
 * confirmed LSN, and a transaction whose commit is before the resume LSN is skipped.
 *
 * Errors (unreachable server, dropped slot, missing publication, ...) are printed on stderr
 * and, once per distinct message, put in `err`; the source retries with a backoff of 0.1 s
 * doubling up to 5 s.  It never exits by itself.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sources/pgoutput.h"
#include "sources/postgres.h"
#include "sources/sources.h"

#define BACKOFF_MIN_NS 100000000u   /* 0.1 s */
#define BACKOFF_MAX_NS 5000000000u  /* 5 s */
#define STATUS_EVERY_NS 1000000000u /* a Standby Status Update at least this often */
#define RECV_TIMEOUT_MS 100

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

static void rels_clear(pgsrc *p)
{
	for (size_t i = 0; i < p->nrels; i++) {
		free(p->rels[i].nsp);
		free(p->rels[i].rel);
	}
	p->nrels = 0;
}

static void pg_free(void *arg)
{
	pgsrc *p = arg;

	if (p == NULL)
		return;
	sli_pgr_close(p->conn);
	rels_clear(p);
	free(p->rels);
	free(p->name);
	free(p->conninfo);
	free(p->pub);
	free(p->slot);
	sli_statefile_fini(&p->state);
	free(p->msg);
	free(p->rowbuf);
	sli_rowbatch_fini(&p->batch);
	free(p);
}

/* ---- the batch ---- */

static int batch_add(pgsrc *p, sl_collection coll, const void *row, size_t len, int64_t diff)
{
	if (len > SL_ROW_MAX)
		len = SL_ROW_MAX; /* only err messages get here unchecked; cut them */
	return sli_rowbatch_add(&p->batch, coll, row, len, diff);
}

static int batch_errf(pgsrc *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int batch_errf(pgsrc *p, const char *fmt, ...)
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
	return batch_add(p, SL_ERR, msg, (size_t)n, 1);
}

/* The least upper of the workers (all hosted here: see sli_postgres_start). */
static uint64_t least_upper(pgsrc *p)
{
	uint64_t t = SL_TIME_CLOSED, u;

	for (uint32_t w = 0; w < p->workers; w++)
		if ((u = sl_source_upper(p->src, w)) < t)
			t = u;
	return t;
}

/* Appends the batch at one time t, records that streaming continues at lsn after it, and
 * advances every worker to t + 1.  With force, advances even an empty batch. */
static int batch_flush(pgsrc *p, uint64_t lsn, int force)
{
	uint64_t t;
	int rc;

	if (p->batch.nitems == 0 && !force)
		return 0;
	if ((t = least_upper(p)) == SL_TIME_CLOSED)
		return SL_ECLOSED;
	uint64_t entry[2] = {t + 1, lsn};
	if ((rc = sli_rowbatch_append(&p->batch, p->src, t)) != 0 ||
	    (rc = sli_statefile_write(&p->state, entry)) != 0 ||
	    (rc = sli_rowbatch_advance(&p->batch, p->src, t + 1)) != 0)
		return rc;
	sli_rowbatch_clear(&p->batch);
	p->resume_lsn = lsn;
	if (lsn > p->durable_lsn)
		p->durable_lsn = lsn;
	return 0;
}

static void batch_drop(pgsrc *p)
{
	sli_rowbatch_clear(&p->batch);
}

/* ---- errors ---- */

/* One event of this source in sluiced's event log ("postgres source NAME: ..."). */
static void pg_log(const pgsrc *p, int level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void pg_log(const pgsrc *p, int level, const char *event, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sli_kv kv[] = {{"source", p->name, 0}, {"kind", "postgres", 0}, {NULL, NULL, 0}};
	sli_elog(level, event, kv, "postgres source %s: %s", p->name, msg);
}

/* Reports the failure in p->err: stderr every time, `err` once per distinct message. */
static int report(pgsrc *p, uint64_t retry_ns)
{
	int rc = 0;

	pg_log(p, SLI_LOG_WARN, "source_error", "%s (retrying in %.1f s)", p->err,
	        (double)retry_ns / 1e9);
	if (strcmp(p->err, p->last_reported) == 0)
		return 0;
	snprintf(p->last_reported, sizeof(p->last_reported), "%s", p->err);
	batch_drop(p); /* an unfinished transaction: streamed again after the reconnect */
	if ((rc = batch_errf(p, "%s", p->err)) == 0)
		rc = batch_flush(p, p->resume_lsn, 0);
	return rc;
}

static const char *ident_name(char c)
{
	switch (c) {
	case 'd': return "DEFAULT";
	case 'n': return "NOTHING";
	case 'f': return "FULL";
	case 'i': return "USING INDEX";
	default: return "unknown";
	}
}

/* ---- the snapshot ---- */

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
		return batch_errf(p, "table %s.%s: snapshot row longer than %u bytes", s->t->nsp,
		                  s->t->rel, (unsigned)SL_ROW_MAX);
	return batch_add(p, SL_OK, r.buf, r.len, 1);
}

static int take_snapshot(pgsrc *p)
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
	batch_drop(p);
	for (size_t i = 0; i < ntables; i++) {
		sli_pgr_table *t = &tables[i];
		snap_ctx s = {p, t};

		if (t->replident == 'n' || (t->replident == 'd' && !t->has_pkey)) {
			pg_log(p, SLI_LOG_WARN, "source_error", "table %s.%s has no replica identity: "
			        "PostgreSQL refuses its updates and deletes while it is published; set "
			        "REPLICA IDENTITY FULL", t->nsp, t->rel);
			if ((rc = batch_errf(p, "table %s.%s has no replica identity (REPLICA IDENTITY %s "
			                     "without a primary key): its updates and deletes fail; set "
			                     "REPLICA IDENTITY FULL", t->nsp, t->rel,
			                     ident_name(t->replident))) != 0)
				goto err_rc;
		} else if (t->replident != 'f') {
			pg_log(p, SLI_LOG_WARN, "source_error", "table %s.%s has REPLICA IDENTITY %s, "
			        "not FULL: its updates and deletes cannot be reproduced exactly",
			        t->nsp, t->rel, ident_name(t->replident));
			if ((rc = batch_errf(p, "table %s.%s has REPLICA IDENTITY %s, not FULL: its updates "
			                     "and deletes cannot be reproduced exactly", t->nsp, t->rel,
			                     ident_name(t->replident))) != 0)
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
	if ((rc = batch_flush(p, cp, 1)) != 0)
		goto err_rc;
	{
		char l[32];

		sli_pgr_lsn_text(cp, l, sizeof(l));
		pg_log(p, SLI_LOG_INFO, "source_progress", "snapshot of %zu tables taken; streaming "
		        "from %s", ntables, l);
	}
	return 0;
err_rc:
	snprintf(p->err, sizeof(p->err), "snapshot failed: %s", sl_strerror(rc));
err:
	sli_pgr_tables_free(tables, ntables);
	batch_drop(p);
	return rc == SL_ECLOSED ? rc : -1; /* p->err says what failed */
}

/* ---- streaming ---- */

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
		pg_log(p, SLI_LOG_WARN, "source_error", "table %s.%s has no replica identity: "
		        "PostgreSQL refuses its updates and deletes while it is published; set "
		        "REPLICA IDENTITY FULL", nsp, rel);
	else if (m->replident != 'f')
		pg_log(p, SLI_LOG_WARN, "source_error", "table %s.%s has REPLICA IDENTITY %s, not "
		        "FULL: its updates and deletes cannot be reproduced exactly", nsp, rel,
		        ident_name(m->replident));
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
		return batch_errf(p, "table %s.%s: %s with %u columns, the table has %u", r->nsp, r->rel,
		                  what, t->ncols, r->ncols);
	if (sli_pgo_row_tuple(&row, t, old, &why) != 0)
		return batch_errf(p, "table %s.%s: %s cannot be decoded: %s", r->nsp, r->rel, what, why);
	if (row.overflow)
		return batch_errf(p, "table %s.%s: %s row longer than %u bytes", r->nsp, r->rel, what,
		                  (unsigned)SL_ROW_MAX);
	return batch_add(p, SL_OK, row.buf, row.len, diff);
}

/* Handles one pgoutput message.  0, or a negative code that ends the session (p->err set
 * for -1; a sluice code otherwise). */
static int handle(pgsrc *p, const uint8_t *buf, size_t len, uint64_t lsn)
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
		if ((rc = batch_errf(p, "undecodable pgoutput message at LSN %s: %s", l, why)) != 0)
			return rc;
		return p->in_txn ? 0 : batch_flush(p, p->resume_lsn, 0);
	}
	switch (m->type) {
	case 'B':
		batch_drop(p);
		p->in_txn = 1;
		/* committed before the resume point: already durable here */
		p->skip_txn = m->lsn < p->resume_lsn;
		return 0;
	case 'C':
		p->in_txn = 0;
		if (p->skip_txn) {
			p->skip_txn = 0;
			batch_drop(p);
			return 0;
		}
		if (p->batch.nitems == 0) { /* nothing published changed: nothing to make durable */
			if (m->end_lsn > p->durable_lsn)
				p->durable_lsn = m->end_lsn;
			return 0;
		}
		return batch_flush(p, m->end_lsn, 0);
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
				rc = batch_errf(p, "table %s.%s truncated: its rows are not retracted", r->nsp,
				                r->rel);
			else
				rc = batch_errf(p, "relation %" PRIu32 " truncated: its rows are not retracted",
				                sli_pgo_trunc_relid(m, i));
		}
		return rc;
	}
	if ((r = rel_find(p, m->relid)) == NULL)
		return batch_errf(p, "change to relation %" PRIu32 " before its Relation message",
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
		if ((rc = batch_errf(p, "table %s.%s: update without the old row (REPLICA IDENTITY %s): "
		                     "the new row was added, the old one not retracted", r->nsp, r->rel,
		                     ident_name(r->replident))) != 0)
			return rc;
		return add_tuple(p, r, "update", &m->newtup, NULL, 1);
	case 'D':
		if (m->old_kind == 'O')
			return add_tuple(p, r, "delete", &m->oldtup, NULL, -1);
		return batch_errf(p, "table %s.%s: delete without the old row (REPLICA IDENTITY %s): "
		                  "the row was not retracted", r->nsp, r->rel, ident_name(r->replident));
	default:
		return batch_errf(p, "unexpected pgoutput message '%c'", m->type);
	}
}

static uint64_t be64(const uint8_t *b)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

/* One connection's life.  Returns -1 (p->err set) when it failed, a sluice code for a local
 * failure, 0 when stopping.  *progressed is set once streaming started. */
static int session(pgsrc *p, int *progressed)
{
	sli_source_runner *run = p->runner;
	uint64_t last_status = 0, sent_durable = 0;
	const uint8_t *buf;
	size_t len;
	int rc;
	char l[32];

	if (sli_pgr_connect(p->conninfo, &run->stopping, &p->conn, p->err, sizeof(p->err)) != 0)
		return sli_runner_stopping(run) ? 0 : -1;
	rels_clear(p);
	p->in_txn = 0;
	p->skip_txn = 0;
	if (p->resume_lsn == 0) {
		if ((rc = take_snapshot(p)) != 0)
			return rc;
	} else {
		if ((rc = sli_pgr_slot_exists(p->conn, p->slot, p->err, sizeof(p->err))) < 0)
			return -1;
		if (rc == 0) {
			sli_pgr_lsn_text(p->resume_lsn, l, sizeof(l));
			snprintf(p->err, sizeof(p->err), "replication slot \"%s\" does not exist (was it "
			         "dropped?): the changes after LSN %s cannot be streamed; to start over "
			         "with a new snapshot, stop sluiced and remove %s", p->slot, l,
			         p->state.dir ? p->state.dir : "the source's data");
			return -1;
		}
	}
	if (sli_pgr_start(p->conn, p->slot, p->resume_lsn, p->pub, p->err, sizeof(p->err)) != 0)
		return -1;
	*progressed = 1;
	p->last_reported[0] = '\0';
	sli_pgr_lsn_text(p->resume_lsn, l, sizeof(l));
	pg_log(p, SLI_LOG_INFO, "source_progress", "streaming slot %s from %s", p->slot, l);
	while (!sli_runner_stopping(run)) {
		int reply = 0;

		rc = sli_pgr_recv(p->conn, RECV_TIMEOUT_MS, &buf, &len, p->err, sizeof(p->err));
		if (rc < 0)
			return -1;
		if (rc == 1 && len >= 1 && buf[0] == 'w' && len >= 25) {
			uint64_t start = be64(buf + 1), end = be64(buf + 9);

			if (end > p->received_lsn)
				p->received_lsn = end;
			if ((rc = handle(p, buf + 25, len - 25, start)) != 0)
				return rc;
		} else if (rc == 1 && len >= 18 && buf[0] == 'k') {
			uint64_t walend = be64(buf + 1);

			if (walend > p->received_lsn)
				p->received_lsn = walend;
			/* Between transactions everything received is durable (each commit was made
			 * durable before the next message was read), so the server's position may be
			 * confirmed: nothing before it is left to send. */
			if (!p->in_txn && p->batch.nitems == 0 && walend > p->durable_lsn)
				p->durable_lsn = walend;
			reply = buf[17] != 0;
		} else if (rc == 1) {
			snprintf(p->err, sizeof(p->err), "unexpected replication message '%c' of %zu bytes",
			         len ? buf[0] : '?', len);
			return -1;
		}
		if (reply || p->durable_lsn != sent_durable ||
		    sli_now_ns() - last_status >= STATUS_EVERY_NS) {
			if (sli_pgr_send_status(p->conn, p->received_lsn, p->durable_lsn, 0, p->err,
			                        sizeof(p->err)) != 0)
				return -1;
			sent_durable = p->durable_lsn;
			last_status = sli_now_ns();
		}
	}
	/* Stopping: tell the server what is durable before leaving. */
	sli_pgr_send_status(p->conn, p->received_lsn, p->durable_lsn, 0, p->err, sizeof(p->err));
	return 0;
}

static void *pg_main(void *arg)
{
	sli_source_runner *run = arg;
	pgsrc *p = run->state;
	uint64_t backoff = BACKOFF_MIN_NS;

	p->runner = run;

	while (!sli_runner_stopping(run)) {
		int progressed = 0, rc = session(p, &progressed);

		sli_pgr_close(p->conn);
		p->conn = NULL;
		if (sli_runner_stopping(run))
			break;
		if (progressed)
			backoff = BACKOFF_MIN_NS;
		if (rc < -1) {
			if (rc == SL_ECLOSED)
				break;
			snprintf(p->err, sizeof(p->err), "%s", sl_strerror(rc));
		}
		if ((rc = report(p, backoff)) != 0 && rc != SL_ECLOSED)
			pg_log(p, SLI_LOG_WARN, "source_error", "cannot record the error: %s", sl_strerror(rc));
		if (sli_runner_sleep(run, backoff))
			break;
		backoff = backoff * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : backoff * 2;
	}
	return NULL;
}

/* ---- start ---- */

static char *default_slot(const char *name)
{
	size_t n = strlen(name);
	char *s = malloc(n + 8);

	if (s == NULL)
		return NULL;
	memcpy(s, "sluice_", 7);
	for (size_t i = 0; i < n; i++) {
		char c = (char)tolower((unsigned char)name[i]);

		s[7 + i] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '_';
	}
	s[7 + n] = '\0';
	return s;
}

static int slot_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return 0;
	return 1;
}

int sli_postgres_start(sl_storage *st, sli_spec *sp, sli_source_runner **out, char *err,
                       size_t errlen)
{
	const char *conninfo = sli_spec_get(sp, "conninfo");
	const char *pub = sli_spec_get(sp, "publication");
	const char *slot = sli_spec_get(sp, "slot");
	uint64_t workers, upper, lsn, e[2];
	sl_source *src;
	pgsrc *p;
	int rc;

	if (conninfo == NULL) {
		snprintf(err, errlen, "source '%s': kind postgres needs conninfo=C (a libpq connection "
		         "string)", sp->name);
		return SL_EARG;
	}
	if (pub == NULL || *pub == '\0') {
		snprintf(err, errlen, "source '%s': kind postgres needs publication=P", sp->name);
		return SL_EARG;
	}
	if (slot != NULL && !slot_name_ok(slot)) {
		snprintf(err, errlen, "source '%s': slot=%s: a slot name is 1 to 63 of a-z, 0-9 and _",
		         sp->name, slot);
		return SL_EARG;
	}
	if ((rc = sli_spec_get_u64(sp, "workers", 1, 1, SLI_SOURCE_MAX_WORKERS, &workers, err,
	                           errlen)) != 0 ||
	    (rc = sli_spec_check_used(sp, err, errlen)) != 0)
		return rc;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		goto err_nomem;
	p->workers = (uint32_t)workers;
	p->name = strdup(sp->name);
	p->conninfo = strdup(conninfo);
	p->pub = strdup(pub);
	p->slot = slot ? strdup(slot) : default_slot(sp->name);
	p->msg = malloc(sizeof(*p->msg));
	p->rowbuf = malloc(SL_ROW_MAX);
	if (p->name == NULL || p->conninfo == NULL || p->pub == NULL || p->slot == NULL ||
	    p->msg == NULL || p->rowbuf == NULL || sli_rowbatch_init(&p->batch, p->workers) != 0)
		goto err_free;
	if (!slot_name_ok(p->slot)) {
		snprintf(err, errlen, "source '%s': the default slot name %s is too long: give slot=S",
		         sp->name, p->slot);
		pg_free(p);
		return SL_EARG;
	}
	if ((rc = sli_source_register_spec(st, sp, p->workers, 0, &src, err, errlen)) != 0) {
		pg_free(p);
		return rc;
	}
	p->src = src;
	for (uint32_t w = 0; w < p->workers; w++) {
		if (!sl_source_hosts(src, w)) {
			snprintf(err, errlen, "source '%s': kind postgres runs in one storage process: "
			         "this one does not host worker %" PRIu32, sp->name, w);
			pg_free(p);
			return SL_EARG;
		}
	}
	upper = least_upper(p);
	if (upper == SL_TIME_CLOSED) {
		snprintf(err, errlen, "source '%s' is closed", sp->name);
		pg_free(p);
		return SL_ECLOSED;
	}
	if (sli_statefile_init(&p->state, st, sp->name, "pg-state", 2) != 0)
		goto err_free;
	if (p->state.dir != NULL) {
		if (sli_statefile_resume(&p->state, upper, e) != 0) {
			snprintf(err, errlen, "source '%s': %s/pg-state has no entry for the durable "
			         "frontier %" PRIu64 ": cannot tell where to resume the slot", sp->name,
			         p->state.dir, upper);
			pg_free(p);
			return SL_EIO;
		}
		lsn = e[1];
		p->resume_lsn = lsn;
		p->durable_lsn = lsn;
		/* A crash between two workers' advances right after the snapshot: the workers
		 * still before it cannot be given the same snapshot again. */
		for (uint32_t w = 0; lsn == 0 && w < p->workers; w++) {
			if (sl_source_upper(src, w) > upper && p->state.prev[0] == upper) {
				sli_statefile probe = p->state;

				if (sli_statefile_resume(&probe, upper + 1, e) == 0 && e[1] != 0) {
					snprintf(err, errlen, "source '%s': a crash interrupted the end of the "
					         "initial snapshot (workers at %" PRIu64 " and %" PRIu64 "): remove "
					         "%s and its logs to take it again", sp->name, upper,
					         sl_source_upper(src, w), p->state.dir);
					pg_free(p);
					return SL_EIO;
				}
			}
		}
	}
	return sli_runner_start(src, sp->name, p, pg_free, pg_main, out, err, errlen);

err_free:
	pg_free(p);
err_nomem:
	snprintf(err, errlen, "source '%s': out of memory", sp->name);
	return SL_ENOMEM;
}
