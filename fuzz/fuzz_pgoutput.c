/*
 * fuzz_pgoutput.c - libFuzzer target for the pgoutput decoder and row builder
 * (src/sources/pgoutput.c).
 *
 * The input is one pgoutput message as PostgreSQL's walsender would send it in an XLogData.
 * A decode either fails with SL_EPROTO and a reason or succeeds; on success every column view
 * must lie inside the input, and the tuples are formatted into a small row buffer, which must
 * never be written past its capacity.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/sluice.h"
#include "sources/pgoutput.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void check_tuple(const sli_pgo_tuple *t, const uint8_t *data, size_t size)
{
	CHECK(t->ncols <= SLI_PGO_MAX_COLS);
	for (uint16_t i = 0; i < t->ncols; i++) {
		const sli_pgo_col *c = &t->cols[i];

		if (c->kind == 't' || c->kind == 'b')
			CHECK(c->ptr >= data && c->ptr + c->len <= data + size);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static sli_pgo_msg m;
	uint8_t row[260];
	const char *why = NULL;
	sli_pgo_row r;

	if (sli_pgo_decode(data, size, &m, &why) != 0) {
		CHECK(why != NULL);
		return 0;
	}
	check_tuple(&m.oldtup, data, size);
	check_tuple(&m.newtup, data, size);
	if (m.type == 'T')
		for (uint32_t i = 0; i < m.ntrunc; i++)
			(void)sli_pgo_trunc_relid(&m, i);
	memset(row + 256, 0xA5, 4);
	sli_pgo_row_init(&r, row, 256, "s", "t");
	(void)sli_pgo_row_tuple(&r, &m.newtup, m.old_kind == 'O' ? &m.oldtup : NULL, &why);
	CHECK(r.len <= 256);
	for (int i = 256; i < 260; i++)
		CHECK(row[i] == 0xA5);
	return 0;
}
