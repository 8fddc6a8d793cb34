/*
 * codec.c - decoding sluice frames, events, updates and source entries.
 *
 * Pure functions over a caller's bytes: no I/O, no clock, no allocation.  The decoder faces a
 * hostile peer, so every size it reads is checked against the bytes actually present before it
 * is used, and every sum or product of peer-supplied sizes is computed in 64 bits (a u32 times
 * 16 plus a u32 cannot wrap a u64) or compared by division.  A frame is parsed only once all of
 * it is present; its body must be consumed exactly.  Decoded frames hold views into the input.
 */
#include <string.h>

#include "proto/proto.h"

/* A bounds-checked reader over one frame body.  The first short read marks it bad; later reads
 * then return zeros, so parsers read a whole struct and check `bad` once at the end. */
typedef struct rd {
	const uint8_t *p;
	size_t left;
	int bad;
} rd;

static int rd_take(rd *r, size_t n, const uint8_t **out)
{
	if (r->bad || r->left < n) {
		r->bad = 1;
		return 0;
	}
	*out = r->p;
	r->p += n;
	r->left -= n;
	return 1;
}

static uint8_t rd_u8(rd *r)
{
	const uint8_t *p;
	return rd_take(r, 1, &p) ? p[0] : 0;
}

static uint16_t rd_u16(rd *r)
{
	const uint8_t *p;
	return rd_take(r, 2, &p) ? sli_get_u16(p) : 0;
}

static uint32_t rd_u32(rd *r)
{
	const uint8_t *p;
	return rd_take(r, 4, &p) ? sli_get_u32(p) : 0;
}

static uint64_t rd_u64(rd *r)
{
	const uint8_t *p;
	return rd_take(r, 8, &p) ? sli_get_u64(p) : 0;
}

static sl_bytes rd_bytes(rd *r, size_t n)
{
	sl_bytes b = { NULL, 0 };
	const uint8_t *p;

	if (rd_take(r, n, &p)) {
		b.ptr = p;
		b.len = n;
	}
	return b;
}

static sl_bytes rd_str(rd *r)
{
	uint32_t n = rd_u32(r);
	return rd_bytes(r, n);
}

/* The rest of the body, whatever its size. */
static sl_bytes rd_rest(rd *r)
{
	return rd_bytes(r, r->left);
}

/* An error code as carried by Error, SubscribeError and AppendError: u32 -code in 1..INT32_MAX. */
static int32_t rd_code(rd *r)
{
	uint32_t w = rd_u32(r);

	if (w == 0 || w > INT32_MAX) {
		r->bad = 1;
		return 0;
	}
	return -(int32_t)w;
}

/* Checks that `b` holds exactly `count` updates and nothing else. */
static int updates_validate(sl_bytes b, uint32_t count)
{
	const uint8_t *p = b.ptr;
	size_t left = b.len;

	/* Every update is at least SLI_UPDATE_HDR bytes: reject an impossible count up front so a
	 * hostile count cannot make the loop below run long (it is bounded by left anyway). */
	if ((uint64_t)count * SLI_UPDATE_HDR > left)
		return SL_EPROTO;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t rlen;

		if (left < SLI_UPDATE_HDR)
			return SL_EPROTO;
		rlen = sli_get_u32(p + 8);
		if (left - SLI_UPDATE_HDR < rlen)
			return SL_EPROTO;
		p += SLI_UPDATE_HDR + (size_t)rlen;
		left -= SLI_UPDATE_HDR + (size_t)rlen;
	}
	return left == 0 ? 0 : SL_EPROTO;
}

int sli_events_next(sl_bytes *rest, sli_event *ev)
{
	const uint8_t *p = rest->ptr;
	size_t left = rest->len;
	sli_event e;

	if (left == 0)
		return 0;
	memset(&e, 0, sizeof(e));
	e.tag = p[0];
	switch (e.tag) {
	case SLI_EV_MESSAGES: {
		uint32_t nbytes;

		if (left < SLI_MESSAGES_HDR)
			return SL_EPROTO;
		e.time = sli_get_u64(p + 1);
		e.count = sli_get_u32(p + 9);
		nbytes = sli_get_u32(p + 13);
		if (left - SLI_MESSAGES_HDR < nbytes)
			return SL_EPROTO;
		e.body.ptr = p + SLI_MESSAGES_HDR;
		e.body.len = nbytes;
		if (updates_validate(e.body, e.count) != 0)
			return SL_EPROTO;
		e.size = SLI_MESSAGES_HDR + (size_t)nbytes;
		break;
	}
	case SLI_EV_PROGRESS: {
		uint64_t n;

		if (left < 5)
			return SL_EPROTO;
		e.count = sli_get_u32(p + 1);
		n = (uint64_t)e.count * SLI_CHANGE_SIZE;
		if (n > left - 5)
			return SL_EPROTO;
		e.body.ptr = p + 5;
		e.body.len = (size_t)n;
		e.size = 5 + (size_t)n;
		break;
	}
	default:
		return SL_EPROTO;
	}
	rest->ptr += e.size;
	rest->len -= e.size;
	*ev = e;
	return 1;
}

int sli_events_validate(sl_bytes events)
{
	sli_event ev;
	int rc;

	while ((rc = sli_events_next(&events, &ev)) == 1)
		;
	return rc;
}

int sli_updates_next(sl_bytes *rest, int64_t *diff, sl_bytes *row)
{
	uint32_t rlen;

	if (rest->len == 0)
		return 0;
	if (rest->len < SLI_UPDATE_HDR)
		return SL_EPROTO;
	rlen = sli_get_u32(rest->ptr + 8);
	if (rest->len - SLI_UPDATE_HDR < rlen)
		return SL_EPROTO;
	*diff = (int64_t)sli_get_u64(rest->ptr);
	row->ptr = rest->ptr + SLI_UPDATE_HDR;
	row->len = rlen;
	rest->ptr += SLI_UPDATE_HDR + (size_t)rlen;
	rest->len -= SLI_UPDATE_HDR + (size_t)rlen;
	return 1;
}

int sli_changes_next(sl_bytes *rest, uint64_t *time, int64_t *delta)
{
	if (rest->len == 0)
		return 0;
	if (rest->len < SLI_CHANGE_SIZE)
		return SL_EPROTO;
	*time = sli_get_u64(rest->ptr);
	*delta = (int64_t)sli_get_u64(rest->ptr + 8);
	rest->ptr += SLI_CHANGE_SIZE;
	rest->len -= SLI_CHANGE_SIZE;
	return 1;
}

/* Smallest encoded source entry: id + two empty strs + workers. */
#define SOURCE_ENTRY_MIN 20u

int sli_sources_next(sl_bytes *rest, sli_source_entry *e)
{
	rd r = { rest->ptr, rest->len, 0 };
	sli_source_entry x;

	if (rest->len == 0)
		return 0;
	x.id = rd_u64(&r);
	x.name = rd_str(&r);
	x.kind = rd_str(&r);
	x.workers = rd_u32(&r);
	if (r.bad || (uint64_t)x.workers * 8 > r.left)
		return SL_EPROTO;
	x.uppers = rd_bytes(&r, (size_t)x.workers * 8);
	rest->ptr = r.p;
	rest->len = r.left;
	*e = x;
	return 1;
}

int sli_strs_next(sl_bytes *rest, sl_bytes *s)
{
	rd r = { rest->ptr, rest->len, 0 };
	if (rest->len == 0)
		return 0;
	sl_bytes x = rd_str(&r);
	if (r.bad)
		return SL_EPROTO;
	rest->ptr = r.p;
	rest->len = r.left;
	*s = x;
	return 1;
}

static int strs_validate(sl_bytes strs, uint32_t count)
{
	sl_bytes one;
	if ((uint64_t)count * 4 > strs.len)
		return SL_EPROTO;
	for (uint32_t i = 0; i < count; i++)
		if (sli_strs_next(&strs, &one) != 1)
			return SL_EPROTO;
	return strs.len == 0 ? 0 : SL_EPROTO;
}

static int sources_validate(sl_bytes entries, uint32_t count)
{
	sli_source_entry e;

	if ((uint64_t)count * SOURCE_ENTRY_MIN > entries.len)
		return SL_EPROTO;
	for (uint32_t i = 0; i < count; i++)
		if (sli_sources_next(&entries, &e) != 1)
			return SL_EPROTO;
	return entries.len == 0 ? 0 : SL_EPROTO;
}

/* Parses a complete body of `type` into *f.  0 or SL_EPROTO. */
static int body_decode(uint8_t type, rd *r, sli_frame *f)
{
	switch (type) {
	case SLI_HELLO:
		f->u.hello.magic = rd_u32(r);
		f->u.hello.version = rd_u16(r);
		f->u.hello.flags = rd_u16(r);
		f->u.hello.session = rd_u64(r);
		f->u.hello.epoch = rd_u64(r);
		f->u.hello.fingerprint = rd_u64(r);
		f->u.hello.name = rd_str(r);
		f->u.hello.token = (sl_bytes){NULL, 0};
		if (f->u.hello.flags & SLI_HELLO_TOKEN)
			f->u.hello.token = rd_str(r);
		break;
	case SLI_ERROR:
		f->u.error.code = rd_code(r);
		f->u.error.fatal = rd_u8(r);
		f->u.error.message = rd_str(r);
		if (f->u.error.fatal > 1)
			return SL_EPROTO;
		break;
	case SLI_PING:
	case SLI_PONG:
		f->u.ping.nonce = rd_u64(r);
		break;
	case SLI_SUBSCRIBE:
		f->u.subscribe.handle = rd_u32(r);
		f->u.subscribe.dataflow = rd_u64(r);
		f->u.subscribe.source = rd_u64(r);
		f->u.subscribe.worker = rd_u32(r);
		f->u.subscribe.from = rd_u64(r);
		f->u.subscribe.credit = rd_u64(r);
		break;
	case SLI_SUBSCRIBE_OK:
		f->u.subscribe_ok.handle = rd_u32(r);
		f->u.subscribe_ok.since = rd_u64(r);
		f->u.subscribe_ok.upper = rd_u64(r);
		f->u.subscribe_ok.flags = rd_u8(r);
		break;
	case SLI_SUBSCRIBE_ERROR:
		f->u.subscribe_error.handle = rd_u32(r);
		f->u.subscribe_error.code = rd_code(r);
		f->u.subscribe_error.message = rd_str(r);
		break;
	case SLI_UNSUBSCRIBE:
		f->u.unsubscribe.dataflow = rd_u64(r);
		f->u.unsubscribe.source = rd_u64(r);
		f->u.unsubscribe.worker = rd_u32(r);
		break;
	case SLI_UNSUBSCRIBE_OK:
		f->u.unsubscribe_ok.handle = rd_u32(r);
		break;
	case SLI_CREDIT:
		f->u.credit.handle = rd_u32(r);
		f->u.credit.bytes = rd_u64(r);
		break;
	case SLI_DATA:
		f->u.data.handle = rd_u32(r);
		f->u.data.collection = rd_u8(r);
		if (r->bad || f->u.data.collection > SL_ERR || r->left == 0)
			return SL_EPROTO;
		f->u.data.events = rd_rest(r);
		if (sli_events_validate(f->u.data.events) != 0)
			return SL_EPROTO;
		break;
	case SLI_LIST_SOURCES:
		break;
	case SLI_SOURCES:
		f->u.sources.count = rd_u32(r);
		f->u.sources.entries = rd_rest(r);
		if (r->bad || sources_validate(f->u.sources.entries, f->u.sources.count) != 0)
			return SL_EPROTO;
		break;
	case SLI_CLUSTER_MAP:
		break;
	case SLI_CLUSTER:
		f->u.cluster.fingerprint = rd_u64(r);
		f->u.cluster.term = rd_u64(r);
		f->u.cluster.process = rd_u32(r);
		f->u.cluster.count = rd_u32(r);
		f->u.cluster.addrs = rd_rest(r);
		if (r->bad || f->u.cluster.count == 0 || f->u.cluster.process >= f->u.cluster.count ||
		    strs_validate(f->u.cluster.addrs, f->u.cluster.count) != 0)
			return SL_EPROTO;
		break;
	case SLI_APPEND:
		f->u.append.batch = rd_u64(r);
		f->u.append.source = rd_u64(r);
		f->u.append.flags = rd_u8(r);
		f->u.append.count = rd_u32(r);
		f->u.append.updates = rd_rest(r);
		if (r->bad || updates_validate(f->u.append.updates, f->u.append.count) != 0)
			return SL_EPROTO;
		break;
	case SLI_APPEND_OK:
		f->u.append_ok.batch = rd_u64(r);
		f->u.append_ok.time = rd_u64(r);
		break;
	case SLI_PROMOTE:
	case SLI_STATS_REQUEST:
		break;
	case SLI_STATS:
		f->u.stats.text = rd_str(r);
		break;
	case SLI_PROMOTED:
		f->u.promoted.term = rd_u64(r);
		break;
	case SLI_FENCE:
		f->u.fence.term = rd_u64(r);
		f->u.fence.by = rd_str(r);
		break;
	case SLI_REPLICA:
		f->u.replica.member = rd_str(r);
		break;
	case SLI_REPLICA_ACK:
		f->u.replica_ack.source = rd_u64(r);
		f->u.replica_ack.worker = rd_u32(r);
		f->u.replica_ack.upper = rd_u64(r);
		break;
	case SLI_WATERMARK:
		f->u.watermark.handle = rd_u32(r);
		f->u.watermark.hw = rd_u64(r);
		break;
	case SLI_APPEND_ERROR:
		f->u.append_error.batch = rd_u64(r);
		f->u.append_error.code = rd_code(r);
		f->u.append_error.message = rd_str(r);
		break;
	default:
		return SL_EPROTO;
	}
	return r->bad || r->left != 0 ? SL_EPROTO : 0;
}

ssize_t sli_frame_decode(const uint8_t *buf, size_t len, uint32_t max_frame, sli_frame *f)
{
	sli_frame x;
	uint32_t flen;
	rd r;

	if (len < 4)
		return 0;
	flen = sli_get_u32(buf);
	if (flen == 0)
		return SL_EPROTO;
	if (flen > max_frame)
		return SL_ETOOBIG;
	/* 64-bit so that 4 + flen cannot wrap where size_t is 32 bits. */
	if ((uint64_t)len < 4 + (uint64_t)flen)
		return 0;
	memset(&x, 0, sizeof(x));
	x.type = buf[4];
	r.p = buf + SLI_FRAME_HDR;
	r.left = flen - 1;
	r.bad = 0;
	if (body_decode(x.type, &r, &x) != 0)
		return SL_EPROTO;
	*f = x;
	return (ssize_t)(4 + (size_t)flen);
}

const char *sli_frame_type_name(uint8_t type)
{
	switch (type) {
	case SLI_HELLO: return "Hello";
	case SLI_ERROR: return "Error";
	case SLI_PING: return "Ping";
	case SLI_PONG: return "Pong";
	case SLI_SUBSCRIBE: return "Subscribe";
	case SLI_SUBSCRIBE_OK: return "SubscribeOk";
	case SLI_SUBSCRIBE_ERROR: return "SubscribeError";
	case SLI_UNSUBSCRIBE: return "Unsubscribe";
	case SLI_UNSUBSCRIBE_OK: return "UnsubscribeOk";
	case SLI_CREDIT: return "Credit";
	case SLI_DATA: return "Data";
	case SLI_LIST_SOURCES: return "ListSources";
	case SLI_SOURCES: return "Sources";
	case SLI_CLUSTER_MAP: return "ClusterMap";
	case SLI_CLUSTER: return "Cluster";
	case SLI_APPEND: return "Append";
	case SLI_APPEND_OK: return "AppendOk";
	case SLI_APPEND_ERROR: return "AppendError";
	case SLI_PROMOTE: return "Promote";
	case SLI_STATS_REQUEST: return "StatsRequest";
	case SLI_STATS: return "Stats";
	case SLI_PROMOTED: return "Promoted";
	case SLI_FENCE: return "Fence";
	case SLI_REPLICA: return "Replica";
	case SLI_REPLICA_ACK: return "ReplicaAck";
	case SLI_WATERMARK: return "Watermark";
	default: return "unknown";
	}
}
