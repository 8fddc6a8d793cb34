/*
 * pgoutput.h - decoding of PostgreSQL's pgoutput logical replication messages (protocol
 * version 1) and the text form of a row the postgres source publishes.
 *
 * No I/O here: sli_pgo_decode parses one message that the replication connection received
 * (the payload of an XLogData 'w' message) into views of the caller's buffer, and the row
 * builder formats values into a caller-owned buffer.  A truncated or malformed message is an
 * error with a reason, never a read past the buffer.
 *
 * Row text form (see docs/ARCHITECTURE.md, "PostgreSQL source"):
 *     SCHEMA.TABLE<TAB>VALUE1<TAB>VALUE2...
 * Each value is PostgreSQL's text output of the column, escaped like COPY's text format:
 * backslash -> "\\", tab -> "\t", newline -> "\n", carriage return -> "\r"; NULL is "\N".
 *
 * Internal to libsluice (not installed).
 */
#ifndef SLUICE_PGOUTPUT_H
#define SLUICE_PGOUTPUT_H

#include <stddef.h>
#include <stdint.h>

/* PostgreSQL's MaxTupleAttributeNumber: no tuple has more columns. */
#define SLI_PGO_MAX_COLS 1664

/* One column of a TupleData: kind 'n' (NULL), 'u' (unchanged TOASTed value, not sent), 't'
 * (text) or 'b' (binary); ptr/len point into the message for 't' and 'b'. */
typedef struct sli_pgo_col {
	char kind;
	const uint8_t *ptr;
	uint32_t len;
} sli_pgo_col;

typedef struct sli_pgo_tuple {
	uint16_t ncols;
	sli_pgo_col cols[SLI_PGO_MAX_COLS];
} sli_pgo_tuple;

/* A decoded message.  Which fields are set depends on type:
 *   'B' Begin:    lsn (final LSN of the transaction), ts, xid
 *   'C' Commit:   lsn (commit LSN), end_lsn, ts
 *   'O' Origin, 'Y' Type, 'M' Message: nothing (skipped)
 *   'R' Relation: relid, nspname, relname, replident ('d', 'n', 'f', 'i'), ncols, nkeys
 *   'I' Insert:   relid, newtup
 *   'U' Update:   relid, old_kind (0, 'K' key only, 'O' whole old row) + oldtup, newtup
 *   'D' Delete:   relid, old_kind ('K' or 'O'), oldtup
 *   'T' Truncate: ntrunc, trunc_flags, relids via sli_pgo_trunc_relid
 * Strings are NUL-terminated inside the message buffer.  The struct is large (two tuples):
 * allocate it, don't put it on a small stack. */
typedef struct sli_pgo_msg {
	char type;
	uint64_t lsn, end_lsn;
	int64_t ts;
	uint32_t xid;
	uint32_t relid;
	const char *nspname, *relname;
	char replident;
	uint16_t ncols, nkeys;
	char old_kind;
	sli_pgo_tuple oldtup, newtup;
	uint32_t ntrunc;
	uint8_t trunc_flags;
	const uint8_t *trunc_relids; /* ntrunc big-endian u32s */
} sli_pgo_msg;

/* sli_pgo_decode parses the pgoutput message buf[0, len) into *m.  Returns 0, or SL_EPROTO
 * with *why set to a static reason ("truncated Insert message", "unknown message type 'x'",
 * ...).  On success *m points into buf and is valid while buf is. */
int sli_pgo_decode(const uint8_t *buf, size_t len, sli_pgo_msg *m, const char **why);

/* The i-th relation id of a decoded Truncate (i < m->ntrunc). */
uint32_t sli_pgo_trunc_relid(const sli_pgo_msg *m, uint32_t i);

/* Builds one row in a caller-owned buffer.  Once a value does not fit, overflow is set and
 * further values are ignored: the row is then unusable (too long). */
typedef struct sli_pgo_row {
	uint8_t *buf;
	size_t len, cap;
	int overflow;
} sli_pgo_row;

/* Starts a row "SCHEMA.TABLE" in buf[0, cap). */
void sli_pgo_row_init(sli_pgo_row *r, uint8_t *buf, size_t cap, const char *nsp, const char *rel);
/* Appends a tab and one value, escaped (see the top of the file). */
void sli_pgo_row_value(sli_pgo_row *r, const uint8_t *p, size_t n);
/* Appends a tab and "\N". */
void sli_pgo_row_null(sli_pgo_row *r);

/* Appends the columns of t to r.  A column 'u' (unchanged TOASTed value) takes the value of
 * the same column of `old` when old is given and has it.  Returns 0, or SL_EPROTO with *why
 * set (a binary or unknown column, an unchanged value with no old row to take it from). */
int sli_pgo_row_tuple(sli_pgo_row *r, const sli_pgo_tuple *t, const sli_pgo_tuple *old,
                      const char **why);

#endif
