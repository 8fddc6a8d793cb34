/*
 * test_pgoutput.c - the pgoutput decoder and the row text form (src/sources/pgoutput.c).
 *
 * Hand-built messages of every type decode to the expected fields; every strict prefix of
 * each (decoded from an exactly-sized heap copy, so ASan sees any overread) is an error;
 * trailing bytes, unknown types, absurd column counts and seeded random garbage are errors,
 * never crashes; rows escape tab/newline/CR/backslash, write NULL as \N, and take unchanged
 * TOASTed columns from the old row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/sluice.h"
#include "sources/pgoutput.h"

typedef struct mb {
	uint8_t b[512];
	size_t n;
} mb;

static void u8(mb *m, uint8_t v) { m->b[m->n++] = v; }
static void be(mb *m, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		m->b[m->n++] = (uint8_t)(v >> (8 * (n - 1 - i)));
}
static void str(mb *m, const char *s)
{
	size_t n = strlen(s) + 1;
	memcpy(m->b + m->n, s, n);
	m->n += n;
}
static void text(mb *m, const char *s)
{
	u8(m, 't');
	be(m, strlen(s), 4);
	memcpy(m->b + m->n, s, strlen(s));
	m->n += strlen(s);
}

static mb msg_begin(void)
{
	mb m = {.n = 0};
	u8(&m, 'B');
	be(&m, 0x100000028, 8);
	be(&m, 12345, 8);
	be(&m, 777, 4);
	return m;
}

static mb msg_commit(void)
{
	mb m = {.n = 0};
	u8(&m, 'C');
	u8(&m, 0);
	be(&m, 0x100000028, 8);
	be(&m, 0x100000058, 8);
	be(&m, 12345, 8);
	return m;
}

static mb msg_relation(void)
{
	mb m = {.n = 0};
	u8(&m, 'R');
	be(&m, 16384, 4);
	str(&m, "public");
	str(&m, "t1");
	u8(&m, 'f');
	be(&m, 3, 2);
	u8(&m, 1), str(&m, "id"), be(&m, 23, 4), be(&m, (uint32_t)-1, 4);
	u8(&m, 0), str(&m, "name"), be(&m, 25, 4), be(&m, (uint32_t)-1, 4);
	u8(&m, 0), str(&m, "note"), be(&m, 25, 4), be(&m, (uint32_t)-1, 4);
	return m;
}

static mb msg_insert(void)
{
	mb m = {.n = 0};
	u8(&m, 'I');
	be(&m, 16384, 4);
	u8(&m, 'N');
	be(&m, 3, 2);
	text(&m, "1");
	text(&m, "a\tb\nc\\d\re");
	u8(&m, 'n');
	return m;
}

static mb msg_update(void)
{
	mb m = {.n = 0};
	u8(&m, 'U');
	be(&m, 16384, 4);
	u8(&m, 'O');
	be(&m, 3, 2);
	text(&m, "1");
	text(&m, "old");
	text(&m, "big");
	u8(&m, 'N');
	be(&m, 3, 2);
	text(&m, "1");
	text(&m, "new");
	u8(&m, 'u');
	return m;
}

static mb msg_delete(void)
{
	mb m = {.n = 0};
	u8(&m, 'D');
	be(&m, 16384, 4);
	u8(&m, 'K');
	be(&m, 1, 2);
	text(&m, "1");
	return m;
}

static mb msg_truncate(void)
{
	mb m = {.n = 0};
	u8(&m, 'T');
	be(&m, 2, 4);
	u8(&m, 1);
	be(&m, 16384, 4);
	be(&m, 16390, 4);
	return m;
}

static mb msg_origin(void)
{
	mb m = {.n = 0};
	u8(&m, 'O');
	be(&m, 42, 8);
	str(&m, "node1");
	return m;
}

static mb msg_type(void)
{
	mb m = {.n = 0};
	u8(&m, 'Y');
	be(&m, 99999, 4);
	str(&m, "public");
	str(&m, "mood");
	return m;
}

static mb (*const builders[])(void) = {msg_begin, msg_commit, msg_relation, msg_insert,
                                      msg_update, msg_delete, msg_truncate, msg_origin, msg_type};
#define NBUILDERS (sizeof(builders) / sizeof(builders[0]))

/* Decodes buf[0, n) from an exactly-sized heap copy. */
static int decode_copy(const uint8_t *buf, size_t n, sli_pgo_msg *m, const char **why)
{
	uint8_t *c = malloc(n ? n : 1);
	int rc;

	assert_non_null(c);
	memcpy(c, buf, n);
	rc = sli_pgo_decode(c, n, m, why);
	free(c);
	return rc;
}

static void test_fields(void **state)
{
	sli_pgo_msg *m = malloc(sizeof(*m));
	const char *why = NULL;
	mb b;

	(void)state;
	b = msg_begin();
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), 0);
	assert_int_equal(m->type, 'B');
	assert_true(m->lsn == 0x100000028);
	assert_int_equal(m->xid, 777);

	b = msg_commit();
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), 0);
	assert_true(m->lsn == 0x100000028 && m->end_lsn == 0x100000058);

	b = msg_relation();
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), 0);
	assert_int_equal(m->relid, 16384);
	assert_string_equal(m->nspname, "public");
	assert_string_equal(m->relname, "t1");
	assert_int_equal(m->replident, 'f');
	assert_int_equal(m->ncols, 3);
	assert_int_equal(m->nkeys, 1);

	b = msg_insert();
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), 0);
	assert_int_equal(m->newtup.ncols, 3);
	assert_int_equal(m->newtup.cols[0].kind, 't');
	assert_int_equal(m->newtup.cols[2].kind, 'n');

	b = msg_update();
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), 0);
	assert_int_equal(m->old_kind, 'O');
	assert_int_equal(m->oldtup.ncols, 3);
	assert_int_equal(m->newtup.cols[2].kind, 'u');

	b = msg_delete();
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), 0);
	assert_int_equal(m->old_kind, 'K');
	assert_int_equal(m->oldtup.ncols, 1);

	b = msg_truncate();
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), 0);
	assert_int_equal(m->ntrunc, 2);
	assert_int_equal(sli_pgo_trunc_relid(m, 0), 16384);
	assert_int_equal(sli_pgo_trunc_relid(m, 1), 16390);

	b = msg_origin();
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), 0);
	b = msg_type();
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), 0);
	free(m);
}

static void test_truncated(void **state)
{
	sli_pgo_msg *m = malloc(sizeof(*m));
	const char *why;

	(void)state;
	for (size_t k = 0; k < NBUILDERS; k++) {
		mb b = builders[k]();

		assert_int_equal(decode_copy(b.b, b.n, m, &why), 0);
		for (size_t n = 0; n < b.n; n++) {
			why = NULL;
			assert_int_equal(decode_copy(b.b, n, m, &why), SL_EPROTO);
			assert_non_null(why);
		}
		/* one byte too many */
		b.b[b.n++] = 0;
		why = NULL;
		assert_int_equal(decode_copy(b.b, b.n, m, &why), SL_EPROTO);
		assert_non_null(why);
	}
	free(m);
}

static void test_malformed(void **state)
{
	sli_pgo_msg *m = malloc(sizeof(*m));
	const char *why;
	mb b = {.n = 0};

	(void)state;
	u8(&b, 'Z');
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), SL_EPROTO);

	/* a tuple claiming more columns than PostgreSQL allows */
	b.n = 0;
	u8(&b, 'I'), be(&b, 1, 4), u8(&b, 'N'), be(&b, SLI_PGO_MAX_COLS + 1, 2);
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), SL_EPROTO);

	/* a column kind that does not exist */
	b.n = 0;
	u8(&b, 'I'), be(&b, 1, 4), u8(&b, 'N'), be(&b, 1, 2), u8(&b, 'x');
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), SL_EPROTO);

	/* a value length past the end */
	b.n = 0;
	u8(&b, 'I'), be(&b, 1, 4), u8(&b, 'N'), be(&b, 1, 2), u8(&b, 't'), be(&b, 0xffffffff, 4);
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), SL_EPROTO);

	/* an Insert without 'N', a Delete without 'K'/'O' */
	b.n = 0;
	u8(&b, 'I'), be(&b, 1, 4), u8(&b, 'K'), be(&b, 0, 2);
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), SL_EPROTO);
	b.n = 0;
	u8(&b, 'D'), be(&b, 1, 4), u8(&b, 'N'), be(&b, 0, 2);
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), SL_EPROTO);

	/* a Relation string without its NUL */
	b.n = 0;
	u8(&b, 'R'), be(&b, 1, 4), u8(&b, 'p'), u8(&b, 'q');
	assert_int_equal(decode_copy(b.b, b.n, m, &why), SL_EPROTO);

	/* a Truncate claiming more relations than it holds (no overflow of ntrunc * 4) */
	b.n = 0;
	u8(&b, 'T'), be(&b, 0xffffffff, 4), u8(&b, 0), be(&b, 1, 4);
	assert_int_equal(decode_copy(b.b, b.n, m, &why), SL_EPROTO);
	free(m);
}

static void test_garbage(void **state)
{
	sli_pgo_msg *m = malloc(sizeof(*m));
	static const uint8_t types[] = "BCRIUDTOYMZ";
	uint64_t seed = 0x9e3779b97f4a7c15u;
	uint8_t buf[96] = {0};
	const char *why;

	(void)state;
	for (int iter = 0; iter < 200000; iter++) {
		size_t n;

		seed = seed * 6364136223846793005u + 1442695040888963407u;
		n = (size_t)(seed >> 33) % sizeof(buf);
		for (size_t i = 0; i < n; i++) {
			seed = seed * 6364136223846793005u + 1442695040888963407u;
			/* small numbers make plausible lengths and counts */
			buf[i] = (uint8_t)((seed >> 40) & ((seed >> 60) & 1 ? 0xff : 0x03));
		}
		if (n > 0)
			buf[0] = types[(seed >> 20) % (sizeof(types) - 1)];
		int rc = decode_copy(buf, n, m, &why);
		assert_true(rc == 0 || rc == SL_EPROTO);
		if (rc == 0 && (m->type == 'I' || m->type == 'U')) {
			uint8_t out[256];
			sli_pgo_row r;

			sli_pgo_row_init(&r, out, sizeof(out), "s", "t");
			rc = sli_pgo_row_tuple(&r, &m->newtup, m->old_kind == 'O' ? &m->oldtup : NULL, &why);
			assert_true(rc == 0 || rc == SL_EPROTO);
			assert_true(r.len <= sizeof(out));
		}
	}
	free(m);
}

static void test_rows(void **state)
{
	sli_pgo_msg *m = malloc(sizeof(*m));
	uint8_t out[256];
	const char *why = NULL;
	sli_pgo_row r;
	mb b;

	(void)state;
	b = msg_insert();
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), 0);
	sli_pgo_row_init(&r, out, sizeof(out), "public", "t1");
	assert_int_equal(sli_pgo_row_tuple(&r, &m->newtup, NULL, &why), 0);
	assert_false(r.overflow);
	const char *want = "public.t1\t1\ta\\tb\\nc\\\\d\\re\t\\N";
	assert_int_equal(r.len, strlen(want));
	assert_memory_equal(out, want, r.len);

	/* an unchanged TOASTed column is taken from the old row */
	b = msg_update();
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), 0);
	sli_pgo_row_init(&r, out, sizeof(out), "public", "t1");
	assert_int_equal(sli_pgo_row_tuple(&r, &m->newtup, &m->oldtup, &why), 0);
	want = "public.t1\t1\tnew\tbig";
	assert_int_equal(r.len, strlen(want));
	assert_memory_equal(out, want, r.len);
	/* ... and is an error without one */
	sli_pgo_row_init(&r, out, sizeof(out), "public", "t1");
	why = NULL;
	assert_int_equal(sli_pgo_row_tuple(&r, &m->newtup, NULL, &why), SL_EPROTO);
	assert_non_null(why);

	/* a binary column is an error */
	b.n = 0;
	u8(&b, 'I'), be(&b, 1, 4), u8(&b, 'N'), be(&b, 1, 2), u8(&b, 'b'), be(&b, 1, 4), u8(&b, 7);
	assert_int_equal(sli_pgo_decode(b.b, b.n, m, &why), 0);
	sli_pgo_row_init(&r, out, sizeof(out), "public", "t1");
	assert_int_equal(sli_pgo_row_tuple(&r, &m->newtup, NULL, &why), SL_EPROTO);

	/* a row that does not fit is flagged, never written past cap */
	uint8_t small[12];
	memset(small, 0xAA, sizeof(small));
	sli_pgo_row_init(&r, small, 10, "public", "t1");
	sli_pgo_row_value(&r, (const uint8_t *)"xyz", 3);
	assert_true(r.overflow);
	assert_true(r.len <= 10);
	assert_int_equal(small[10], 0xAA);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_rows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
