/*
 * postgres.c - the `postgres` source: a PostgreSQL publication's tables, by logical replication.
 * This file holds its start, its connection loop and its stop; the snapshot, the streamed
 * changes and the batch are in postgres_snapshot.c, postgres_stream.c and postgres_batch.c.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sources/postgres.h"
#include "sources/postgres_src.h"

#define BACKOFF_MIN_NS 100000000u   /* 0.1 s */
#define BACKOFF_MAX_NS 5000000000u  /* 5 s */
#define STATUS_EVERY_NS 1000000000u /* a Standby Status Update at least this often */
#define RECV_TIMEOUT_MS 100

static void pg_free(void *arg)
{
	pgsrc *p = arg;

	if (p == NULL)
		return;
	sli_pgr_close(p->conn);
	sli_pgsrc_rels_clear(p);
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

/* Reports the failure in p->err: stderr every time, `err` once per distinct message. */
static int report(pgsrc *p, uint64_t retry_ns)
{
	int rc = 0;

	sli_pgsrc_log(p, SLI_LOG_WARN, "source_error", "%s (retrying in %.1f s)", p->err,
	        (double)retry_ns / 1e9);
	if (strcmp(p->err, p->last_reported) == 0)
		return 0;
	snprintf(p->last_reported, sizeof(p->last_reported), "%s", p->err);
	sli_pgsrc_drop(p); /* an unfinished transaction: streamed again after the reconnect */
	if ((rc = sli_pgsrc_errf(p, "%s", p->err)) == 0)
		rc = sli_pgsrc_flush(p, p->resume_lsn, 0);
	return rc;
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
	sli_pgsrc_rels_clear(p);
	p->in_txn = 0;
	p->skip_txn = 0;
	if (p->resume_lsn == 0) {
		if ((rc = sli_pgsrc_snapshot(p)) != 0)
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
	sli_pgsrc_log(p, SLI_LOG_INFO, "source_progress", "streaming slot %s from %s", p->slot, l);
	while (!sli_runner_stopping(run)) {
		int reply = 0;

		rc = sli_pgr_recv(p->conn, RECV_TIMEOUT_MS, &buf, &len, p->err, sizeof(p->err));
		if (rc < 0)
			return -1;
		if (rc == 1 && len >= 1 && buf[0] == 'w' && len >= 25) {
			uint64_t start = be64(buf + 1), end = be64(buf + 9);

			if (end > p->received_lsn)
				p->received_lsn = end;
			if ((rc = sli_pgsrc_handle(p, buf + 25, len - 25, start)) != 0)
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
			sli_pgsrc_log(p, SLI_LOG_WARN, "source_error", "cannot record the error: %s",
			              sl_strerror(rc));
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
	upper = sli_pgsrc_least_upper(p);
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
