/*
 * postgres_repl.c - the postgres source's replication connection to PostgreSQL (libpq).
 *
 * What PostgreSQL is asked, in order: connect with replication=database; check or drop the
 * slot; BEGIN REPEATABLE READ + CREATE_REPLICATION_SLOT ... LOGICAL pgoutput USE_SNAPSHOT
 * + SELECTs of the publication's tables + COMMIT (the initial snapshot, exactly consistent
 * with the slot's consistent point); START_REPLICATION SLOT ... LOGICAL lsn (proto_version
 * '1', publication_names '...'); then CopyData in both directions: XLogData and keepalives in,
 * Standby Status Updates out.  A walsender does not speak the extended query protocol, so
 * every value sent in SQL is quoted with PQescapeLiteral / PQescapeIdentifier.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <libpq-fe.h>

#include "sluice/sluice.h"
#include "sources/postgres.h"

struct pg_conn {
	PGconn *pq;
	char *copybuf; /* the last message of sli_pgr_recv, freed by the next call */
};

/* "what: msg" in err, on one line: PostgreSQL's trailing newline and spaces cut, inner
 * newlines and tabs made spaces.  -1. */
static int one_line(const char *what, const char *msg, char *err, size_t errlen)
{
	size_t n;

	snprintf(err, errlen, "%s: %s", what, msg);
	n = strlen(err);
	while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
	for (char *p = err; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	return -1;
}

static int pq_fail(PGconn *pq, const char *what, char *err, size_t errlen)
{
	return one_line(what, pq ? PQerrorMessage(pq) : "out of memory", err, errlen);
}

static int res_fail(PGresult *res, PGconn *pq, const char *what, char *err, size_t errlen)
{
	const char *m = res ? PQresultErrorMessage(res) : "";
	int rc = m == NULL || *m == '\0' ? pq_fail(pq, what, err, errlen)
	                                  : one_line(what, m, err, errlen);

	PQclear(res);
	return rc;
}

void sli_pgr_lsn_text(uint64_t lsn, char *buf, size_t n)
{
	snprintf(buf, n, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

int sli_pgr_lsn_parse(const char *s, uint64_t *out)
{
	unsigned hi, lo;
	int used = 0;

	if (s == NULL || sscanf(s, "%X/%X%n", &hi, &lo, &used) != 2 || s[used] != '\0')
		return -1;
	*out = (uint64_t)hi << 32 | lo;
	return 0;
}

int sli_pgr_connect(const char *conninfo, atomic_int *stop, pg_conn **out, char *err,
                    size_t errlen)
{
	/* dbname is expanded as a whole connection string; replication given after it wins. */
	const char *keys[] = {"dbname", "replication", "fallback_application_name", NULL};
	const char *vals[] = {conninfo, "database", "sluiced", NULL};
	PGconn *pq = PQconnectStartParams(keys, vals, 1);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	pg_conn *c;

	if (pq == NULL || PQstatus(pq) == CONNECTION_BAD) {
		pq_fail(pq, "cannot connect to PostgreSQL", err, errlen);
		PQfinish(pq);
		return -1;
	}
	while (st != PGRES_POLLING_OK) {
		struct pollfd pfd = {PQsocket(pq), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0};

		if (st == PGRES_POLLING_FAILED) {
			pq_fail(pq, "cannot connect to PostgreSQL", err, errlen);
			PQfinish(pq);
			return -1;
		}
		if (atomic_load(stop)) {
			snprintf(err, errlen, "stopping");
			PQfinish(pq);
			return -1;
		}
		if (pfd.fd < 0 || poll(&pfd, 1, 100) < 0) {
			if (pfd.fd >= 0 && errno == EINTR)
				continue;
			pq_fail(pq, "cannot connect to PostgreSQL", err, errlen);
			PQfinish(pq);
			return -1;
		}
		if (pfd.revents == 0)
			continue;
		st = PQconnectPoll(pq);
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		PQfinish(pq);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->pq = pq;
	*out = c;
	return 0;
}

void sli_pgr_close(pg_conn *c)
{
	if (c == NULL)
		return;
	if (c->copybuf != NULL)
		PQfreemem(c->copybuf);
	PQfinish(c->pq);
	free(c);
}

/* Runs one command that returns no rows (or rows we ignore).  0 or -1. */
static int exec_ok(pg_conn *c, const char *sql, const char *what, char *err, size_t errlen)
{
	PGresult *res = PQexec(c->pq, sql);

	if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK &&
	                    PQresultStatus(res) != PGRES_TUPLES_OK))
		return res_fail(res, c->pq, what, err, errlen);
	PQclear(res);
	return 0;
}

int sli_pgr_slot_exists(pg_conn *c, const char *slot, char *err, size_t errlen)
{
	char *lit = PQescapeLiteral(c->pq, slot, strlen(slot)), sql[512];
	PGresult *res;
	int n;

	if (lit == NULL)
		return pq_fail(c->pq, "cannot quote the slot name", err, errlen);
	snprintf(sql, sizeof(sql), "SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = %s",
	         lit);
	PQfreemem(lit);
	res = PQexec(c->pq, sql);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
		return res_fail(res, c->pq, "cannot look up the replication slot", err, errlen);
	n = PQntuples(res);
	PQclear(res);
	return n > 0;
}

int sli_pgr_drop_slot(pg_conn *c, const char *slot, char *err, size_t errlen)
{
	char *id = PQescapeIdentifier(c->pq, slot, strlen(slot)), sql[512];
	int rc;

	if (id == NULL)
		return pq_fail(c->pq, "cannot quote the slot name", err, errlen);
	snprintf(sql, sizeof(sql), "DROP_REPLICATION_SLOT %s WAIT", id);
	PQfreemem(id);
	rc = exec_ok(c, sql, "cannot drop the replication slot", err, errlen);
	return rc;
}

int sli_pgr_create_slot_snapshot(pg_conn *c, const char *slot, uint64_t *lsn, char *err,
                                 size_t errlen)
{
	char *id = PQescapeIdentifier(c->pq, slot, strlen(slot)), sql[512];
	PGresult *res;

	if (id == NULL)
		return pq_fail(c->pq, "cannot quote the slot name", err, errlen);
	if (exec_ok(c, "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ", "cannot begin the snapshot",
	            err, errlen) != 0) {
		PQfreemem(id);
		return -1;
	}
	snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput USE_SNAPSHOT", id);
	PQfreemem(id);
	res = PQexec(c->pq, sql);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
		return res_fail(res, c->pq, "cannot create the replication slot", err, errlen);
	if (PQntuples(res) != 1 || PQnfields(res) < 2 ||
	    sli_pgr_lsn_parse(PQgetvalue(res, 0, 1), lsn) != 0) {
		PQclear(res);
		snprintf(err, errlen, "CREATE_REPLICATION_SLOT returned no consistent point");
		return -1;
	}
	PQclear(res);
	return 0;
}

int sli_pgr_commit(pg_conn *c, char *err, size_t errlen)
{
	return exec_ok(c, "COMMIT", "cannot end the snapshot transaction", err, errlen);
}

void sli_pgr_tables_free(sli_pgr_table *t, size_t n)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(t[i].nsp);
		free(t[i].rel);
	}
	free(t);
}

int sli_pgr_tables(pg_conn *c, const char *pub, sli_pgr_table **out, size_t *n, char *err,
                   size_t errlen)
{
	char *lit = PQescapeLiteral(c->pq, pub, strlen(pub)), *sql;
	const char *fmt =
		"SELECT p.schemaname, p.tablename, c.relreplident, "
		"EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) "
		"FROM pg_catalog.pg_publication_tables p "
		"JOIN pg_catalog.pg_namespace s ON s.nspname = p.schemaname "
		"JOIN pg_catalog.pg_class c ON c.relnamespace = s.oid AND c.relname = p.tablename "
		"WHERE p.pubname = %s ORDER BY 1, 2";
	PGresult *res;
	sli_pgr_table *t;
	int rows;

	if (lit == NULL)
		return pq_fail(c->pq, "cannot quote the publication name", err, errlen);
	if ((sql = malloc(strlen(fmt) + strlen(lit) + 1)) == NULL) {
		PQfreemem(lit);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	sprintf(sql, fmt, lit);
	res = PQexec(c->pq, sql);
	free(sql);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQfreemem(lit);
		return res_fail(res, c->pq, "cannot list the publication's tables", err, errlen);
	}
	rows = PQntuples(res);
	if (rows == 0) {
		/* Tell a missing publication from an empty one. */
		char q[512];
		PGresult *r2;

		snprintf(q, sizeof(q), "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = %s", lit);
		r2 = PQexec(c->pq, q);
		if (r2 != NULL && PQresultStatus(r2) == PGRES_TUPLES_OK && PQntuples(r2) == 0) {
			PQclear(r2);
			PQclear(res);
			snprintf(err, errlen, "publication \"%s\" does not exist", pub);
			PQfreemem(lit);
			return -1;
		}
		PQclear(r2);
	}
	PQfreemem(lit);
	if ((t = calloc((size_t)rows + 1, sizeof(*t))) == NULL) {
		PQclear(res);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < rows; i++) {
		t[i].nsp = strdup(PQgetvalue(res, i, 0));
		t[i].rel = strdup(PQgetvalue(res, i, 1));
		t[i].replident = PQgetvalue(res, i, 2)[0];
		t[i].has_pkey = PQgetvalue(res, i, 3)[0] == 't';
		if (t[i].nsp == NULL || t[i].rel == NULL) {
			sli_pgr_tables_free(t, (size_t)rows);
			PQclear(res);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	PQclear(res);
	*out = t;
	*n = (size_t)rows;
	return 0;
}

int sli_pgr_read_table(pg_conn *c, const sli_pgr_table *t, sli_pgr_row_fn row, void *arg,
                       char *err, size_t errlen)
{
	char *nsp = PQescapeIdentifier(c->pq, t->nsp, strlen(t->nsp));
	char *rel = PQescapeIdentifier(c->pq, t->rel, strlen(t->rel));
	char *sql = NULL;
	const char **vals = NULL;
	int *lens = NULL, *nulls = NULL, rc = 0;
	PGresult *res = NULL;
	size_t cap;

	if (nsp == NULL || rel == NULL) {
		rc = pq_fail(c->pq, "cannot quote a table name", err, errlen);
		goto out;
	}
	/* The quoted identifiers go inside a literal below, where a ' would end it. */
	if (strchr(nsp, '\'') != NULL || strchr(rel, '\'') != NULL) {
		snprintf(err, errlen, "table %s.%s: a ' in a schema or table name is not supported",
		         t->nsp, t->rel);
		rc = -1;
		goto out;
	}
	/* The columns pgoutput sends, in its order: by attnum, neither dropped nor generated. */
	cap = strlen(nsp) + strlen(rel) + 512;
	if ((sql = malloc(cap)) == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = -1;
		goto out;
	}
	snprintf(sql, cap,
	         "SELECT string_agg(quote_ident(attname), ',' ORDER BY attnum) "
	         "FROM pg_catalog.pg_attribute WHERE attrelid = '%s.%s'::regclass AND attnum > 0 "
	         "AND NOT attisdropped AND attgenerated = ''",
	         nsp, rel);
	res = PQexec(c->pq, sql);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		rc = res_fail(res, c->pq, "cannot read a table's columns", err, errlen);
		res = NULL;
		goto out;
	}
	{
		const char *cols = PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0);
		size_t need = (cols ? strlen(cols) : 0) + strlen(nsp) + strlen(rel) + 64;
		char *q = realloc(sql, need);

		if (q == NULL) {
			snprintf(err, errlen, "out of memory");
			rc = -1;
			goto out;
		}
		sql = q;
		snprintf(sql, need, "SELECT %s FROM %s.%s", cols ? cols : "", nsp, rel);
	}
	PQclear(res);
	res = NULL;
	if (!PQsendQuery(c->pq, sql) || !PQsetSingleRowMode(c->pq)) {
		rc = pq_fail(c->pq, "cannot read a table", err, errlen);
		goto out;
	}
	while ((res = PQgetResult(c->pq)) != NULL) {
		ExecStatusType st = PQresultStatus(res);

		if (st == PGRES_SINGLE_TUPLE && rc == 0) {
			int nf = PQnfields(res);

			if (vals == NULL) {
				vals = calloc((size_t)nf + 1, sizeof(*vals));
				lens = calloc((size_t)nf + 1, sizeof(*lens));
				nulls = calloc((size_t)nf + 1, sizeof(*nulls));
				if (vals == NULL || lens == NULL || nulls == NULL) {
					snprintf(err, errlen, "out of memory");
					rc = -1;
				}
			}
			for (int i = 0; rc == 0 && i < nf; i++) {
				vals[i] = PQgetvalue(res, 0, i);
				lens[i] = PQgetlength(res, 0, i);
				nulls[i] = PQgetisnull(res, 0, i);
			}
			if (rc == 0)
				rc = row(arg, nf, vals, lens, nulls);
		} else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && rc == 0) {
			char what[300];

			snprintf(what, sizeof(what), "cannot read table %s.%s", t->nsp, t->rel);
			res_fail(res, c->pq, what, err, errlen);
			res = NULL;
			rc = -1;
		}
		PQclear(res);
	}
	res = NULL;
out:
	PQclear(res);
	PQfreemem(nsp);
	PQfreemem(rel);
	free(sql);
	free(vals);
	free(lens);
	free(nulls);
	return rc;
}

int sli_pgr_start(pg_conn *c, const char *slot, uint64_t lsn, const char *pub, char *err,
                  size_t errlen)
{
	char *id = PQescapeIdentifier(c->pq, slot, strlen(slot));
	char *pubid = PQescapeIdentifier(c->pq, pub, strlen(pub));
	char *publit = pubid ? PQescapeLiteral(c->pq, pubid, strlen(pubid)) : NULL;
	char lsntext[32], *sql = NULL;
	PGresult *res;
	size_t cap;
	int rc = -1;

	if (id == NULL || publit == NULL) {
		pq_fail(c->pq, "cannot quote the slot or publication name", err, errlen);
		goto out;
	}
	sli_pgr_lsn_text(lsn, lsntext, sizeof(lsntext));
	cap = strlen(id) + strlen(publit) + 128;
	if ((sql = malloc(cap)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	snprintf(sql, cap,
	         "START_REPLICATION SLOT %s LOGICAL %s (proto_version '1', publication_names %s)", id,
	         lsntext, publit);
	res = PQexec(c->pq, sql);
	if (res == NULL || PQresultStatus(res) != PGRES_COPY_BOTH) {
		res_fail(res, c->pq, "cannot start replication", err, errlen);
		goto out;
	}
	PQclear(res);
	rc = 0;
out:
	PQfreemem(id);
	PQfreemem(pubid);
	PQfreemem(publit);
	free(sql);
	return rc;
}

int sli_pgr_recv(pg_conn *c, int timeout_ms, const uint8_t **buf, size_t *len, char *err,
                 size_t errlen)
{
	int n;

	if (c->copybuf != NULL) {
		PQfreemem(c->copybuf);
		c->copybuf = NULL;
	}
	for (int round = 0; round < 2; round++) {
		n = PQgetCopyData(c->pq, &c->copybuf, 1);
		if (n > 0) {
			*buf = (const uint8_t *)c->copybuf;
			*len = (size_t)n;
			return 1;
		}
		if (n == -1) {
			PGresult *res = PQgetResult(c->pq);

			if (res != NULL && PQresultStatus(res) != PGRES_COMMAND_OK)
				return res_fail(res, c->pq, "replication stream ended", err, errlen);
			PQclear(res);
			snprintf(err, errlen, "replication stream ended by the server");
			return -1;
		}
		if (n == -2)
			return pq_fail(c->pq, "replication stream failed", err, errlen);
		if (round == 1)
			break;
		struct pollfd pfd = {PQsocket(c->pq), POLLIN, 0};
		int p = poll(&pfd, 1, timeout_ms);

		if (p < 0 && errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			return -1;
		}
		if (p <= 0)
			return 0;
		if (!PQconsumeInput(c->pq))
			return pq_fail(c->pq, "replication connection lost", err, errlen);
	}
	return 0;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

int sli_pgr_send_status(pg_conn *c, uint64_t write_lsn, uint64_t flush_lsn, int reply,
                        char *err, size_t errlen)
{
	uint8_t msg[34];
	struct timeval tv;
	/* microseconds since 2000-01-01 00:00 UTC, PostgreSQL's epoch */
	uint64_t now;

	gettimeofday(&tv, NULL);
	now = ((uint64_t)tv.tv_sec - 946684800u) * 1000000u + (uint64_t)tv.tv_usec;
	msg[0] = 'r';
	put_be64(msg + 1, write_lsn);
	put_be64(msg + 9, flush_lsn);
	put_be64(msg + 17, flush_lsn); /* applied = durable: sluice applies by making it durable */
	put_be64(msg + 25, now);
	msg[33] = (uint8_t)(reply != 0);
	if (PQputCopyData(c->pq, (const char *)msg, sizeof(msg)) != 1 || PQflush(c->pq) != 0)
		return pq_fail(c->pq, "cannot send a status update", err, errlen);
	return 0;
}
