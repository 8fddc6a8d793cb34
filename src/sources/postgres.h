/*
 * postgres.h - the replication connection of the postgres source (postgres_repl.c), used by
 * the source's glue (postgres.c).
 *
 * One libpq connection in `replication=database` mode does everything: it checks, drops and
 * creates the logical slot, reads the initial snapshot with plain SQL inside the transaction
 * that created the slot (USE_SNAPSHOT), then streams with START_REPLICATION.  Every function
 * reports a failure as -1 with a one-line message in err[0, errlen) (PostgreSQL's own message
 * when it sent one).  Blocking calls are bounded: connecting and receiving poll the socket and
 * give up when *stop becomes nonzero.
 *
 * Internal to libsluice (not installed).
 */
#ifndef SLUICE_POSTGRES_H
#define SLUICE_POSTGRES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pg_conn pg_conn; /* libpq's PGconn */

/* Connects to conninfo (a libpq connection string or URI, possibly empty: libpq's environment
 * defaults) as a logical replication connection.  *stop is polled while waiting.  On success
 * *out must be closed with sli_pgr_close. */
int sli_pgr_connect(const char *conninfo, atomic_int *stop, pg_conn **out, char *err,
                    size_t errlen);
void sli_pgr_close(pg_conn *c);

/* 1 if the slot exists, 0 if not, -1 on error. */
int sli_pgr_slot_exists(pg_conn *c, const char *slot, char *err, size_t errlen);

/* Drops the slot, waiting for a previous session of it to end.  0 or -1. */
int sli_pgr_drop_slot(pg_conn *c, const char *slot, char *err, size_t errlen);

/* Opens a REPEATABLE READ transaction, creates the slot in it with USE_SNAPSHOT and returns
 * its consistent point in *lsn: the snapshot read on this connection until sli_pgr_commit is
 * exactly the data before *lsn, and streaming from *lsn yields exactly what follows. */
int sli_pgr_create_slot_snapshot(pg_conn *c, const char *slot, uint64_t *lsn, char *err,
                                 size_t errlen);
int sli_pgr_commit(pg_conn *c, char *err, size_t errlen);

/* A table of the publication, as read in the snapshot. */
typedef struct sli_pgr_table {
	char *nsp, *rel;
	char replident; /* pg_class.relreplident */
	int has_pkey;
} sli_pgr_table;

/* Lists the publication's tables (*out malloc'ed, free with sli_pgr_tables_free). */
int sli_pgr_tables(pg_conn *c, const char *pub, sli_pgr_table **out, size_t *n, char *err,
                   size_t errlen);
void sli_pgr_tables_free(sli_pgr_table *t, size_t n);

/* Reads every row of one table, calling row(arg, ncols, values, lens, nulls) for each, in
 * the text form pgoutput uses (published columns only: not dropped, not generated).  row
 * returns 0 to go on or a negative code to stop (returned as is; err is then left alone). */
typedef int (*sli_pgr_row_fn)(void *arg, int ncols, const char *const *values, const int *lens,
                              const int *nulls);
int sli_pgr_read_table(pg_conn *c, const sli_pgr_table *t, sli_pgr_row_fn row, void *arg,
                       char *err, size_t errlen);

/* START_REPLICATION of the slot at lsn with pgoutput proto_version 1 for publication pub. */
int sli_pgr_start(pg_conn *c, const char *slot, uint64_t lsn, const char *pub, char *err,
                  size_t errlen);

/* Waits up to timeout_ms for one CopyData message of the stream.  Returns 1 with *buf and *len
 * set (valid until the next call or sli_pgr_close), 0 on timeout, -1 on error or end. */
int sli_pgr_recv(pg_conn *c, int timeout_ms, const uint8_t **buf, size_t *len, char *err,
                 size_t errlen);

/* Sends a Standby Status Update: received up to write_lsn, durable up to flush_lsn. */
int sli_pgr_send_status(pg_conn *c, uint64_t write_lsn, uint64_t flush_lsn, int reply,
                        char *err, size_t errlen);

/* "X/Y" text of an LSN into buf (at least 24 bytes). */
void sli_pgr_lsn_text(uint64_t lsn, char *buf, size_t n);
/* Parses "X/Y"; 0 or -1. */
int sli_pgr_lsn_parse(const char *s, uint64_t *out);

#endif
