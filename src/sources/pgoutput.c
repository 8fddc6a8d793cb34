/*
 * pgoutput.c - decoder of pgoutput messages (protocol version 1) and the row text form.
 *
 * Pure functions over byte buffers: no I/O, no allocation.  Every read is bounds-checked
 * against the message length; column counts are bounded by SLI_PGO_MAX_COLS before use.
 */
#include <string.h>

#include "sluice/sluice.h"
#include "sources/pgoutput.h"

typedef struct rd {
	const uint8_t *p;
	size_t len, off;
	int bad;
} rd;

static uint8_t rd_u8(rd *r)
{
	if (r->bad || r->len - r->off < 1) {
		r->bad = 1;
		return 0;
	}
	return r->p[r->off++];
}

static uint64_t rd_be(rd *r, unsigned n)
{
	uint64_t v = 0;

	if (r->bad || r->len - r->off < n) {
		r->bad = 1;
		return 0;
	}
	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | r->p[r->off + i];
	r->off += n;
	return v;
}

/* A NUL-terminated string inside the message. */
static const char *rd_str(rd *r)
{
	const uint8_t *nul;

	if (r->bad || r->off >= r->len) {
		r->bad = 1;
		return "";
	}
	if ((nul = memchr(r->p + r->off, '\0', r->len - r->off)) == NULL) {
		r->bad = 1;
		return "";
	}
	const char *s = (const char *)(r->p + r->off);
	r->off = (size_t)(nul - r->p) + 1;
	return s;
}

static int rd_tuple(rd *r, sli_pgo_tuple *t, const char **why)
{
	uint16_t n = (uint16_t)rd_be(r, 2);

	if (r->bad)
		return (*why = "truncated tuple"), SL_EPROTO;
	if (n > SLI_PGO_MAX_COLS)
		return (*why = "tuple with more columns than PostgreSQL allows"), SL_EPROTO;
	t->ncols = n;
	for (uint16_t i = 0; i < n; i++) {
		sli_pgo_col *c = &t->cols[i];

		c->kind = (char)rd_u8(r);
		c->ptr = NULL;
		c->len = 0;
		if (r->bad)
			return (*why = "truncated tuple"), SL_EPROTO;
		switch (c->kind) {
		case 'n':
		case 'u':
			break;
		case 't':
		case 'b':
			c->len = (uint32_t)rd_be(r, 4);
			if (r->bad || r->len - r->off < c->len)
				return (*why = "truncated column value"), SL_EPROTO;
			c->ptr = r->p + r->off;
			r->off += c->len;
			break;
		default:
			return (*why = "unknown column kind in tuple"), SL_EPROTO;
		}
	}
	return 0;
}

int sli_pgo_decode(const uint8_t *buf, size_t len, sli_pgo_msg *m, const char **why)
{
	rd r = {buf, len, 0, 0};
	uint8_t tag;
	int rc;

	m->type = (char)rd_u8(&r);
	if (r.bad)
		return (*why = "empty message"), SL_EPROTO;
	m->old_kind = 0;
	m->oldtup.ncols = 0;
	m->newtup.ncols = 0;
	switch (m->type) {
	case 'B':
		m->lsn = rd_be(&r, 8);
		m->ts = (int64_t)rd_be(&r, 8);
		m->xid = (uint32_t)rd_be(&r, 4);
		if (r.bad)
			return (*why = "truncated Begin message"), SL_EPROTO;
		break;
	case 'C':
		(void)rd_u8(&r); /* flags, unused */
		m->lsn = rd_be(&r, 8);
		m->end_lsn = rd_be(&r, 8);
		m->ts = (int64_t)rd_be(&r, 8);
		if (r.bad)
			return (*why = "truncated Commit message"), SL_EPROTO;
		break;
	case 'O':
		(void)rd_be(&r, 8);
		(void)rd_str(&r);
		if (r.bad)
			return (*why = "truncated Origin message"), SL_EPROTO;
		break;
	case 'Y':
		(void)rd_be(&r, 4);
		(void)rd_str(&r);
		(void)rd_str(&r);
		if (r.bad)
			return (*why = "truncated Type message"), SL_EPROTO;
		break;
	case 'M':
		break; /* logical decoding messages are not requested; skipped if sent anyway */
	case 'R':
		m->relid = (uint32_t)rd_be(&r, 4);
		m->nspname = rd_str(&r);
		m->relname = rd_str(&r);
		m->replident = (char)rd_u8(&r);
		m->ncols = (uint16_t)rd_be(&r, 2);
		if (r.bad)
			return (*why = "truncated Relation message"), SL_EPROTO;
		if (m->ncols > SLI_PGO_MAX_COLS)
			return (*why = "Relation with more columns than PostgreSQL allows"), SL_EPROTO;
		m->nkeys = 0;
		for (uint16_t i = 0; i < m->ncols; i++) {
			uint8_t flags = rd_u8(&r);

			(void)rd_str(&r);
			(void)rd_be(&r, 4); /* type oid */
			(void)rd_be(&r, 4); /* typmod */
			if (r.bad)
				return (*why = "truncated Relation message"), SL_EPROTO;
			if (flags & 1)
				m->nkeys++;
		}
		break;
	case 'I':
		m->relid = (uint32_t)rd_be(&r, 4);
		tag = rd_u8(&r);
		if (r.bad)
			return (*why = "truncated Insert message"), SL_EPROTO;
		if (tag != 'N')
			return (*why = "Insert without its new tuple"), SL_EPROTO;
		if ((rc = rd_tuple(&r, &m->newtup, why)) != 0)
			return rc;
		break;
	case 'U':
		m->relid = (uint32_t)rd_be(&r, 4);
		tag = rd_u8(&r);
		if (r.bad)
			return (*why = "truncated Update message"), SL_EPROTO;
		if (tag == 'K' || tag == 'O') {
			m->old_kind = (char)tag;
			if ((rc = rd_tuple(&r, &m->oldtup, why)) != 0)
				return rc;
			tag = rd_u8(&r);
			if (r.bad)
				return (*why = "truncated Update message"), SL_EPROTO;
		}
		if (tag != 'N')
			return (*why = "Update without its new tuple"), SL_EPROTO;
		if ((rc = rd_tuple(&r, &m->newtup, why)) != 0)
			return rc;
		break;
	case 'D':
		m->relid = (uint32_t)rd_be(&r, 4);
		tag = rd_u8(&r);
		if (r.bad)
			return (*why = "truncated Delete message"), SL_EPROTO;
		if (tag != 'K' && tag != 'O')
			return (*why = "Delete without its old tuple"), SL_EPROTO;
		m->old_kind = (char)tag;
		if ((rc = rd_tuple(&r, &m->oldtup, why)) != 0)
			return rc;
		break;
	case 'T':
		m->ntrunc = (uint32_t)rd_be(&r, 4);
		m->trunc_flags = rd_u8(&r);
		if (r.bad)
			return (*why = "truncated Truncate message"), SL_EPROTO;
		if ((r.len - r.off) / 4 < m->ntrunc)
			return (*why = "truncated Truncate message"), SL_EPROTO;
		m->trunc_relids = buf + r.off;
		r.off += (size_t)m->ntrunc * 4;
		break;
	default:
		return (*why = "unknown pgoutput message type"), SL_EPROTO;
	}
	if (m->type != 'M' && r.off != r.len)
		return (*why = "trailing bytes after a pgoutput message"), SL_EPROTO;
	return 0;
}

uint32_t sli_pgo_trunc_relid(const sli_pgo_msg *m, uint32_t i)
{
	const uint8_t *p = m->trunc_relids + (size_t)i * 4;

	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void row_put(sli_pgo_row *r, const void *p, size_t n)
{
	if (r->overflow || r->cap - r->len < n) {
		r->overflow = 1;
		return;
	}
	memcpy(r->buf + r->len, p, n);
	r->len += n;
}

void sli_pgo_row_init(sli_pgo_row *r, uint8_t *buf, size_t cap, const char *nsp, const char *rel)
{
	r->buf = buf;
	r->cap = cap;
	r->len = 0;
	r->overflow = 0;
	row_put(r, nsp, strlen(nsp));
	row_put(r, ".", 1);
	row_put(r, rel, strlen(rel));
}

void sli_pgo_row_value(sli_pgo_row *r, const uint8_t *p, size_t n)
{
	size_t i, run = 0;

	row_put(r, "\t", 1);
	for (i = 0; i < n; i++) {
		const char *esc;

		switch (p[i]) {
		case '\\': esc = "\\\\"; break;
		case '\t': esc = "\\t"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		default: esc = NULL; break;
		}
		if (esc == NULL) {
			run++;
			continue;
		}
		row_put(r, p + i - run, run);
		run = 0;
		row_put(r, esc, 2);
	}
	row_put(r, p + n - run, run);
}

void sli_pgo_row_null(sli_pgo_row *r)
{
	row_put(r, "\t\\N", 3);
}

int sli_pgo_row_tuple(sli_pgo_row *r, const sli_pgo_tuple *t, const sli_pgo_tuple *old,
                      const char **why)
{
	for (uint16_t i = 0; i < t->ncols; i++) {
		const sli_pgo_col *c = &t->cols[i];

		if (c->kind == 'u') {
			if (old == NULL || i >= old->ncols || old->cols[i].kind == 'u')
				return (*why = "unchanged TOASTed value not sent and no old row to take it "
				               "from (set REPLICA IDENTITY FULL)"),
				       SL_EPROTO;
			c = &old->cols[i];
		}
		switch (c->kind) {
		case 'n':
			sli_pgo_row_null(r);
			break;
		case 't':
			sli_pgo_row_value(r, c->ptr, c->len);
			break;
		case 'b':
			return (*why = "binary column value (not requested)"), SL_EPROTO;
		default:
			return (*why = "unknown column kind"), SL_EPROTO;
		}
	}
	return 0;
}
