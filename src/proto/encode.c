/*
 * encode.c - the growable output buffer and the frame and event encoders.
 *
 * No I/O here: encoders append bytes to an sli_buf, and whoever owns the buffer writes them out
 * and drops them with sli_buf_consume.  Every encoder reserves what it needs first, so on
 * SL_ENOMEM the buffer is unchanged.  The encoders trust their caller for what the decoder
 * checks structurally (a Data frame's event bytes, an Append's update bytes, a Sources entry
 * list are copied as given); they refuse only values the wire cannot carry.
 */
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

#define BUF_MIN_CAP 256u

void sli_buf_init(sli_buf *b)
{
	b->ptr = NULL;
	b->len = 0;
	b->cap = 0;
}

void sli_buf_fini(sli_buf *b)
{
	if (b == NULL)
		return;
	free(b->ptr);
	sli_buf_init(b);
}

int sli_buf_reserve(sli_buf *b, size_t n)
{
	size_t need, cap;
	uint8_t *p;

	if (b->cap - b->len >= n)
		return 0;
	if (n > SIZE_MAX - b->len)
		return SL_ENOMEM;
	need = b->len + n;
	/* Doubling keeps appends amortized O(1). */
	cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if ((p = realloc(b->ptr, cap)) == NULL)
		return SL_ENOMEM;
	b->ptr = p;
	b->cap = cap;
	return 0;
}

void sli_buf_consume(sli_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->ptr, b->ptr + n, b->len - n);
	b->len -= n;
}

/* ---- raw appends; the caller has reserved the room ---- */

static uint8_t *put_u8(uint8_t *p, uint8_t v)
{
	*p = v;
	return p + 1;
}

static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	return p + 2;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
	sli_set_u32(p, v);
	return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
	sli_set_u64(p, v);
	return p + 8;
}

static uint8_t *put_raw(uint8_t *p, sl_bytes v)
{
	if (v.len > 0)
		memcpy(p, v.ptr, v.len);
	return p + v.len;
}

static uint8_t *put_str(uint8_t *p, sl_bytes v)
{
	return put_raw(put_u32(p, (uint32_t)v.len), v);
}

/* The wire form of an error code: u32 -code, 1..INT32_MAX.  0 when the code cannot travel. */
static uint32_t wire_code(int32_t code)
{
	return code < 0 && code != INT32_MIN ? (uint32_t)-code : 0;
}

/* Body size of *f, or 0 with *rc set when a field cannot be encoded. */
static size_t body_size(const sli_frame *f, int *rc)
{
	const sl_bytes *str = NULL;
	size_t fixed;

	*rc = 0;
	switch (f->type) {
	case SLI_HELLO:
		fixed = 4 + 2 + 2 + 8 + 8 + 8 + 4;
		str = &f->u.hello.name;
		if (f->u.hello.flags & SLI_HELLO_TOKEN) {
			/* the token's prefix and bytes count as fixed; both strs must fit together */
			if (f->u.hello.token.len > UINT32_MAX / 2 || f->u.hello.name.len > UINT32_MAX / 2)
				goto err_arg;
			fixed += 4 + f->u.hello.token.len;
		}
		break;
	case SLI_ERROR:
		if (wire_code(f->u.error.code) == 0 || f->u.error.fatal > 1)
			goto err_arg;
		fixed = 4 + 1 + 4;
		str = &f->u.error.message;
		break;
	case SLI_PING:
	case SLI_PONG:
		fixed = 8;
		break;
	case SLI_SUBSCRIBE:
		fixed = 4 + 8 + 8 + 4 + 8 + 8;
		break;
	case SLI_SUBSCRIBE_OK:
		fixed = 4 + 8 + 8 + 1;
		break;
	case SLI_SUBSCRIBE_ERROR:
		if (wire_code(f->u.subscribe_error.code) == 0)
			goto err_arg;
		fixed = 4 + 4 + 4;
		str = &f->u.subscribe_error.message;
		break;
	case SLI_UNSUBSCRIBE:
		fixed = 8 + 8 + 4;
		break;
	case SLI_UNSUBSCRIBE_OK:
		fixed = 4;
		break;
	case SLI_CREDIT:
		fixed = 4 + 8;
		break;
	case SLI_DATA:
		if (f->u.data.collection > SL_ERR)
			goto err_arg;
		fixed = 4 + 1;
		str = &f->u.data.events; /* raw, no length prefix: see below */
		break;
	case SLI_LIST_SOURCES:
		fixed = 0;
		break;
	case SLI_SOURCES:
		fixed = 4;
		str = &f->u.sources.entries;
		break;
	case SLI_CLUSTER_MAP:
		fixed = 0;
		break;
	case SLI_CLUSTER:
		fixed = 8 + 8 + 4 + 4;
		str = &f->u.cluster.addrs;
		break;
	case SLI_APPEND:
		fixed = 8 + 8 + 1 + 4;
		str = &f->u.append.updates;
		break;
	case SLI_APPEND_OK:
		fixed = 8 + 8;
		break;
	case SLI_PROMOTE:
	case SLI_STATS_REQUEST:
		fixed = 0;
		break;
	case SLI_STATS:
		fixed = 4;
		str = &f->u.stats.text;
		break;
	case SLI_PROMOTED:
		fixed = 8;
		break;
	case SLI_FENCE:
		fixed = 8 + 4;
		str = &f->u.fence.by;
		break;
	case SLI_REPLICA:
		fixed = 4;
		str = &f->u.replica.member;
		break;
	case SLI_REPLICA_ACK:
		fixed = 8 + 4 + 8;
		break;
	case SLI_WATERMARK:
		fixed = 4 + 8;
		break;
	case SLI_APPEND_ERROR:
		if (wire_code(f->u.append_error.code) == 0)
			goto err_arg;
		fixed = 8 + 4 + 4;
		str = &f->u.append_error.message;
		break;
	default:
		goto err_arg;
	}
	/* The whole frame length (type + body) must fit its u32 prefix. */
	if (str != NULL && str->len > UINT32_MAX - 1 - fixed)
		goto err_arg;
	return fixed + (str != NULL ? str->len : 0);
err_arg:
	*rc = SL_EARG;
	return 0;
}

int sli_frame_encode(sli_buf *b, const sli_frame *f)
{
	size_t body;
	uint8_t *p;
	int rc;

	body = body_size(f, &rc);
	if (rc != 0)
		return rc;
	if ((rc = sli_buf_reserve(b, SLI_FRAME_HDR + body)) != 0)
		return rc;
	p = b->ptr + b->len;
	p = put_u32(p, (uint32_t)(1 + body));
	p = put_u8(p, f->type);
	switch (f->type) {
	case SLI_HELLO:
		p = put_u32(p, f->u.hello.magic);
		p = put_u16(p, f->u.hello.version);
		p = put_u16(p, f->u.hello.flags);
		p = put_u64(p, f->u.hello.session);
		p = put_u64(p, f->u.hello.epoch);
		p = put_u64(p, f->u.hello.fingerprint);
		p = put_str(p, f->u.hello.name);
		if (f->u.hello.flags & SLI_HELLO_TOKEN)
			p = put_str(p, f->u.hello.token);
		break;
	case SLI_ERROR:
		p = put_u32(p, wire_code(f->u.error.code));
		p = put_u8(p, f->u.error.fatal);
		p = put_str(p, f->u.error.message);
		break;
	case SLI_PING:
	case SLI_PONG:
		p = put_u64(p, f->u.ping.nonce);
		break;
	case SLI_SUBSCRIBE:
		p = put_u32(p, f->u.subscribe.handle);
		p = put_u64(p, f->u.subscribe.dataflow);
		p = put_u64(p, f->u.subscribe.source);
		p = put_u32(p, f->u.subscribe.worker);
		p = put_u64(p, f->u.subscribe.from);
		p = put_u64(p, f->u.subscribe.credit);
		break;
	case SLI_SUBSCRIBE_OK:
		p = put_u32(p, f->u.subscribe_ok.handle);
		p = put_u64(p, f->u.subscribe_ok.since);
		p = put_u64(p, f->u.subscribe_ok.upper);
		p = put_u8(p, f->u.subscribe_ok.flags);
		break;
	case SLI_SUBSCRIBE_ERROR:
		p = put_u32(p, f->u.subscribe_error.handle);
		p = put_u32(p, wire_code(f->u.subscribe_error.code));
		p = put_str(p, f->u.subscribe_error.message);
		break;
	case SLI_UNSUBSCRIBE:
		p = put_u64(p, f->u.unsubscribe.dataflow);
		p = put_u64(p, f->u.unsubscribe.source);
		p = put_u32(p, f->u.unsubscribe.worker);
		break;
	case SLI_UNSUBSCRIBE_OK:
		p = put_u32(p, f->u.unsubscribe_ok.handle);
		break;
	case SLI_CREDIT:
		p = put_u32(p, f->u.credit.handle);
		p = put_u64(p, f->u.credit.bytes);
		break;
	case SLI_DATA:
		p = put_u32(p, f->u.data.handle);
		p = put_u8(p, f->u.data.collection);
		p = put_raw(p, f->u.data.events);
		break;
	case SLI_LIST_SOURCES:
		break;
	case SLI_SOURCES:
		p = put_u32(p, f->u.sources.count);
		p = put_raw(p, f->u.sources.entries);
		break;
	case SLI_CLUSTER_MAP:
		break;
	case SLI_CLUSTER:
		p = put_u64(p, f->u.cluster.fingerprint);
		p = put_u64(p, f->u.cluster.term);
		p = put_u32(p, f->u.cluster.process);
		p = put_u32(p, f->u.cluster.count);
		p = put_raw(p, f->u.cluster.addrs);
		break;
	case SLI_APPEND:
		p = put_u64(p, f->u.append.batch);
		p = put_u64(p, f->u.append.source);
		p = put_u8(p, f->u.append.flags);
		p = put_u32(p, f->u.append.count);
		p = put_raw(p, f->u.append.updates);
		break;
	case SLI_APPEND_OK:
		p = put_u64(p, f->u.append_ok.batch);
		p = put_u64(p, f->u.append_ok.time);
		break;
	case SLI_PROMOTE:
	case SLI_STATS_REQUEST:
		break;
	case SLI_STATS:
		p = put_str(p, f->u.stats.text);
		break;
	case SLI_PROMOTED:
		p = put_u64(p, f->u.promoted.term);
		break;
	case SLI_FENCE:
		p = put_u64(p, f->u.fence.term);
		p = put_str(p, f->u.fence.by);
		break;
	case SLI_REPLICA:
		p = put_str(p, f->u.replica.member);
		break;
	case SLI_REPLICA_ACK:
		p = put_u64(p, f->u.replica_ack.source);
		p = put_u32(p, f->u.replica_ack.worker);
		p = put_u64(p, f->u.replica_ack.upper);
		break;
	case SLI_WATERMARK:
		p = put_u32(p, f->u.watermark.handle);
		p = put_u64(p, f->u.watermark.hw);
		break;
	case SLI_APPEND_ERROR:
		p = put_u64(p, f->u.append_error.batch);
		p = put_u32(p, wire_code(f->u.append_error.code));
		p = put_str(p, f->u.append_error.message);
		break;
	}
	b->len = (size_t)(p - b->ptr);
	return 0;
}

/* ---- in-place Data and Append frames ---- */

/* Offsets inside an Append frame, from its start. */
#define APPEND_COUNT_OFF (SLI_FRAME_HDR + 8 + 8 + 1)
#define APPEND_HDR (APPEND_COUNT_OFF + 4)
#define APPEND_FLAGS_OFF (SLI_FRAME_HDR + 8 + 8)

ssize_t sli_data_begin(sli_buf *b, uint32_t handle, uint8_t collection)
{
	size_t off = b->len;
	uint8_t *p;

	if (sli_buf_reserve(b, SLI_FRAME_HDR + 5) != 0)
		return SL_ENOMEM;
	p = b->ptr + off;
	p = put_u32(p, 0); /* patched by sli_frame_end */
	p = put_u8(p, SLI_DATA);
	p = put_u32(p, handle);
	p = put_u8(p, collection);
	b->len = (size_t)(p - b->ptr);
	return (ssize_t)off;
}

ssize_t sli_append_begin(sli_buf *b, uint64_t batch, uint64_t source, uint8_t flags)
{
	size_t off = b->len;
	uint8_t *p;

	if (sli_buf_reserve(b, APPEND_HDR) != 0)
		return SL_ENOMEM;
	p = b->ptr + off;
	p = put_u32(p, 0); /* patched by sli_frame_end */
	p = put_u8(p, SLI_APPEND);
	p = put_u64(p, batch);
	p = put_u64(p, source);
	p = put_u8(p, flags);
	p = put_u32(p, 0); /* patched by sli_append_end */
	b->len = (size_t)(p - b->ptr);
	return (ssize_t)off;
}

/* The caller keeps a frame under SLI_FRAME_MAX_LIMIT, so the length fits its u32. */
void sli_frame_end(sli_buf *b, size_t frame_off)
{
	sli_set_u32(b->ptr + frame_off, (uint32_t)(b->len - frame_off - 4));
}

/* Patches both the count and the length: no separate sli_frame_end is needed (it is harmless). */
void sli_append_end(sli_buf *b, size_t frame_off, uint32_t count)
{
	sli_set_u32(b->ptr + frame_off + APPEND_COUNT_OFF, count);
	sli_frame_end(b, frame_off);
}

void sli_append_set_last(sli_buf *b, size_t frame_off)
{
	b->ptr[frame_off + APPEND_FLAGS_OFF] |= SLI_APPEND_LAST;
}

/* ---- events ---- */

int sli_put_messages_header(sli_buf *b, uint64_t time, uint32_t count, uint32_t nbytes)
{
	uint8_t *p;

	if (sli_buf_reserve(b, SLI_MESSAGES_HDR) != 0)
		return SL_ENOMEM;
	p = b->ptr + b->len;
	p = put_u8(p, SLI_EV_MESSAGES);
	p = put_u64(p, time);
	p = put_u32(p, count);
	p = put_u32(p, nbytes);
	b->len = (size_t)(p - b->ptr);
	return 0;
}

int sli_put_update(sli_buf *b, int64_t diff, sl_bytes row)
{
	uint8_t *p;

	if (row.len > UINT32_MAX)
		return SL_EARG;
	if (sli_buf_reserve(b, SLI_UPDATE_HDR + row.len) != 0)
		return SL_ENOMEM;
	p = b->ptr + b->len;
	p = put_u64(p, (uint64_t)diff);
	p = put_str(p, row);
	b->len = (size_t)(p - b->ptr);
	return 0;
}

int sli_put_progress(sli_buf *b, const uint64_t *times, const int64_t *deltas, uint32_t count)
{
	uint8_t *p;

	if ((uint64_t)count * SLI_CHANGE_SIZE > SIZE_MAX - 5)
		return SL_ENOMEM;
	if (sli_buf_reserve(b, 5 + (size_t)count * SLI_CHANGE_SIZE) != 0)
		return SL_ENOMEM;
	p = b->ptr + b->len;
	p = put_u8(p, SLI_EV_PROGRESS);
	p = put_u32(p, count);
	for (uint32_t i = 0; i < count; i++) {
		p = put_u64(p, times[i]);
		p = put_u64(p, (uint64_t)deltas[i]);
	}
	b->len = (size_t)(p - b->ptr);
	return 0;
}
