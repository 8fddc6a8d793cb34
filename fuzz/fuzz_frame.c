/*
 * fuzz_frame.c - libFuzzer target for the frame decoder (src/proto/codec.c).
 *
 * The first input byte picks a fragment size; the rest is fed through an accumulating buffer in
 * fragments of that size, as a socket would deliver it, and frames are decoded as they complete.
 * Every decoded frame must re-encode to exactly its original bytes, must decode the same way
 * from the unfragmented input, and its events, updates, changes and source entries are walked.
 * A negative result ends the input, as it would end the connection.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

/* Small enough that SL_ETOOBIG is reachable, large enough for interesting frames. */
#define FUZZ_MAX_FRAME 4096u

static void walk(const sli_frame *f)
{
	sl_bytes rest, inner, row;
	sli_event ev;
	sli_source_entry e;
	uint32_t n;
	int64_t d;
	uint64_t t;

	switch (f->type) {
	case SLI_DATA:
		rest = f->u.data.events;
		while (sli_events_next(&rest, &ev) == 1) {
			CHECK(ev.tag == SLI_EV_MESSAGES || ev.tag == SLI_EV_PROGRESS);
			inner = ev.body;
			n = 0;
			if (ev.tag == SLI_EV_MESSAGES) {
				while (sli_updates_next(&inner, &d, &row) == 1)
					n++;
			} else {
				while (sli_changes_next(&inner, &t, &d) == 1)
					n++;
			}
			CHECK(inner.len == 0 && n == ev.count);
		}
		CHECK(rest.len == 0);
		CHECK(sli_events_validate(f->u.data.events) == 0);
		break;
	case SLI_APPEND:
		rest = f->u.append.updates;
		n = 0;
		while (sli_updates_next(&rest, &d, &row) == 1)
			n++;
		CHECK(rest.len == 0 && n == f->u.append.count);
		break;
	case SLI_SOURCES:
		rest = f->u.sources.entries;
		n = 0;
		while (sli_sources_next(&rest, &e) == 1) {
			CHECK(e.uppers.len == 8 * (size_t)e.workers);
			for (uint32_t w = 0; w < e.workers; w++)
				(void)sli_get_u64(e.uppers.ptr + 8 * (size_t)w);
			n++;
		}
		CHECK(rest.len == 0 && n == f->u.sources.count);
		break;
	}
	CHECK(strcmp(sli_frame_type_name(f->type), "unknown") != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sli_buf acc, re;
	size_t frag, pos, abs_off = 0;

	if (size < 1)
		return 0;
	frag = 1 + (size_t)data[0];
	data++;
	size--;
	sli_buf_init(&acc);
	sli_buf_init(&re);
	for (pos = 0; pos < size; pos += frag) {
		size_t n = size - pos < frag ? size - pos : frag;
		ssize_t rc;
		sli_frame f, g;

		CHECK(sli_buf_reserve(&acc, n) == 0);
		memcpy(acc.ptr + acc.len, data + pos, n);
		acc.len += n;
		while ((rc = sli_frame_decode(acc.ptr, acc.len, FUZZ_MAX_FRAME, &f)) > 0) {
			CHECK((size_t)rc <= acc.len && (size_t)rc >= SLI_FRAME_HDR);
			/* Fragmentation must not matter. */
			CHECK(sli_frame_decode(data + abs_off, size - abs_off, FUZZ_MAX_FRAME, &g) == rc);
			CHECK(g.type == f.type);
			walk(&f);
			re.len = 0;
			CHECK(sli_frame_encode(&re, &f) == 0);
			CHECK(re.len == (size_t)rc);
			CHECK(memcmp(re.ptr, acc.ptr, re.len) == 0);
			abs_off += (size_t)rc;
			sli_buf_consume(&acc, (size_t)rc);
		}
		if (rc < 0) {
			CHECK(rc == SL_EPROTO || rc == SL_ETOOBIG);
			CHECK(sli_frame_decode(data + abs_off, size - abs_off, FUZZ_MAX_FRAME, &f) == rc);
			break;
		}
	}
	sli_buf_fini(&acc);
	sli_buf_fini(&re);
	return 0;
}
