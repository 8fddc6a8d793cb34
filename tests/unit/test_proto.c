/*
 * test_proto.c - unit tests of the wire codec (src/proto) and sl_strerror.
 *
 * Every frame type round-trips (encode, decode, compare every field, re-encode to the same
 * bytes); every proper prefix of a valid frame asks for more; a stream fed one byte at a time
 * yields the same frames; a table of malformed frames is rejected with the right code; and a
 * bounded loop of random buffers from a fixed-seed PRNG never crashes or over-consumes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

#define MAXF SLI_FRAME_MAX_DEFAULT

static sl_bytes B(const char *s)
{
	sl_bytes b = { (const uint8_t *)s, strlen(s) };
	return b;
}

static sl_bytes bufb(const sli_buf *b)
{
	sl_bytes v = { b->ptr, b->len };
	return v;
}

static int bytes_eq(sl_bytes a, sl_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* ---- sample frames, one or more of every type ---- */

/* Bytes the samples point into; built once, freed by the teardown. */
static sli_buf ev_data;    /* events of the Data sample */
static sli_buf ev_single;  /* one PROGRESS event */
static sli_buf src_entries; /* two Sources entries */
static sli_buf app_updates; /* three updates */
static sli_buf cluster_addrs; /* three addresses */

#define NSAMPLES 32
static sli_frame samples[NSAMPLES];
static size_t nsamples;

static void put_entry(sli_buf *b, uint64_t id, const char *name, const char *kind,
	uint32_t workers, const uint64_t *uppers)
{
	sl_bytes n = B(name), k = B(kind);

	assert_int_equal(sli_buf_reserve(b, 8 + 4 + n.len + 4 + k.len + 4 + 8 * (size_t)workers), 0);
	sli_set_u64(b->ptr + b->len, id);
	b->len += 8;
	sli_set_u32(b->ptr + b->len, (uint32_t)n.len);
	memcpy(b->ptr + b->len + 4, n.ptr, n.len);
	b->len += 4 + n.len;
	sli_set_u32(b->ptr + b->len, (uint32_t)k.len);
	memcpy(b->ptr + b->len + 4, k.ptr, k.len);
	b->len += 4 + k.len;
	sli_set_u32(b->ptr + b->len, workers);
	b->len += 4;
	for (uint32_t w = 0; w < workers; w++, b->len += 8)
		sli_set_u64(b->ptr + b->len, uppers[w]);
}

static int setup_samples(void **state)
{
	static const uint64_t times[] = { 7, 3 };
	static const int64_t deltas[] = { 1, -1 };
	static const uint64_t uppers[] = { 10, SL_TIME_CLOSED, 0 };
	sli_frame *s = samples;
	size_t n = 0;

	(void)state;
	sli_buf_init(&ev_data);
	sli_buf_init(&ev_single);
	sli_buf_init(&src_entries);
	sli_buf_init(&app_updates);
	sli_buf_init(&cluster_addrs);
	{
		static const char *const addrs[] = { "127.0.0.1:7000", "127.0.0.2:7000", "" };
		for (int i = 0; i < 3; i++) {
			size_t l = strlen(addrs[i]);
			assert_int_equal(sli_buf_reserve(&cluster_addrs, 4 + l), 0);
			sli_set_u32(cluster_addrs.ptr + cluster_addrs.len, (uint32_t)l);
			memcpy(cluster_addrs.ptr + cluster_addrs.len + 4, addrs[i], l);
			cluster_addrs.len += 4 + l;
		}
	}

	/* Data events: MESSAGES(3 updates), empty MESSAGES, PROGRESS(2 changes). */
	assert_int_equal(sli_put_messages_header(&ev_data, 5, 3, 12 + 3 + 12 + 0 + 12 + 5), 0);
	assert_int_equal(sli_put_update(&ev_data, 1, B("abc")), 0);
	assert_int_equal(sli_put_update(&ev_data, -2, B("")), 0);
	assert_int_equal(sli_put_update(&ev_data, INT64_MIN, B("hello")), 0);
	assert_int_equal(sli_put_messages_header(&ev_data, SL_TIME_CLOSED - 1, 0, 0), 0);
	assert_int_equal(sli_put_progress(&ev_data, times, deltas, 2), 0);
	assert_int_equal(sli_put_progress(&ev_single, NULL, NULL, 0), 0);

	put_entry(&src_entries, 1, "counter", "counter", 3, uppers);
	put_entry(&src_entries, UINT64_MAX, "", "file", 0, NULL);

	assert_int_equal(sli_put_update(&app_updates, 1, B("row-1")), 0);
	assert_int_equal(sli_put_update(&app_updates, -1, B("row-2")), 0);
	assert_int_equal(sli_put_update(&app_updates, 0, B("")), 0);

	memset(samples, 0, sizeof(samples));
	s[n].type = SLI_HELLO;
	s[n].u.hello = (sli_hello){ SLI_MAGIC, SLI_PROTO_VERSION, 0, 0x1122334455667788ull, 3, B("sluice 0.1"),
		0x0123456789abcdefull, B("") };
	n++;
	s[n].type = SLI_HELLO;
	s[n].u.hello = (sli_hello){ 0xffffffffu, 0xffff, 0xffff, UINT64_MAX, 0, B(""), UINT64_MAX, B("") };
	n++;
	s[n].type = SLI_ERROR;
	s[n].u.error = (sli_error){ SL_EVERSION, 1, B("version 9 not supported") };
	n++;
	s[n].type = SLI_ERROR;
	s[n].u.error = (sli_error){ -EINVAL, 0, B("") };
	n++;
	s[n].type = SLI_PING;
	s[n].u.ping.nonce = 42;
	n++;
	s[n].type = SLI_PONG;
	s[n].u.ping.nonce = UINT64_MAX;
	n++;
	s[n].type = SLI_SUBSCRIBE;
	s[n].u.subscribe = (sli_subscribe){ 7, 0x0102030405060708ull, 9, 2, 100, 1u << 20 };
	n++;
	s[n].type = SLI_SUBSCRIBE_OK;
	s[n].u.subscribe_ok = (sli_subscribe_ok){ 7, 50, 120, SLI_SUBOK_SNAPSHOT };
	n++;
	s[n].type = SLI_SUBSCRIBE_ERROR;
	s[n].u.subscribe_error = (sli_subscribe_error){ 8, SL_ENOSOURCE, B("no source 9") };
	n++;
	s[n].type = SLI_UNSUBSCRIBE;
	s[n].u.unsubscribe = (sli_unsubscribe){ 1, 9, 2 };
	n++;
	s[n].type = SLI_UNSUBSCRIBE_OK;
	s[n].u.unsubscribe_ok.handle = 7;
	n++;
	s[n].type = SLI_CREDIT;
	s[n].u.credit = (sli_credit){ 7, 65536 };
	n++;
	s[n].type = SLI_DATA;
	s[n].u.data = (sli_data){ 7, SL_OK, bufb(&ev_data) };
	n++;
	s[n].type = SLI_DATA;
	s[n].u.data = (sli_data){ 0xffffffffu, SL_ERR, bufb(&ev_single) };
	n++;
	s[n].type = SLI_LIST_SOURCES;
	n++;
	s[n].type = SLI_SOURCES;
	s[n].u.sources = (sli_sources){ 2, bufb(&src_entries) };
	n++;
	s[n].type = SLI_SOURCES;
	s[n].u.sources = (sli_sources){ 0, { NULL, 0 } };
	n++;
	s[n].type = SLI_APPEND;
	s[n].u.append = (sli_append){ 11, 1, SLI_APPEND_LAST, 3, bufb(&app_updates) };
	n++;
	s[n].type = SLI_APPEND_OK;
	s[n].u.append_ok = (sli_append_ok){ 11, 1234 };
	n++;
	s[n].type = SLI_APPEND_ERROR;
	s[n].u.append_error = (sli_append_error){ 12, SL_EREJECTED, B("row too big") };
	n++;
	s[n].type = SLI_CLUSTER_MAP;
	n++;
	s[n].type = SLI_CLUSTER;
	s[n].u.cluster = (sli_cluster){ 0x1234567890abcdefull, 7, 2, 3, bufb(&cluster_addrs) };
	n++;
	s[n].type = SLI_PROMOTE;
	n++;
	s[n].type = SLI_PROMOTED;
	s[n].u.promoted = (sli_promoted){ 42 };
	n++;
	s[n].type = SLI_FENCE;
	s[n].u.fence = (sli_fence){ 3, B("127.0.0.1:7001") };
	n++;
	s[n].type = SLI_HELLO; /* with an authentication token */
	s[n].u.hello = (sli_hello){ SLI_MAGIC, SLI_PROTO_VERSION, SLI_HELLO_TOKEN, 9, 0, B("sluice 0.1"),
		0, B("s3cret token\twith a tab") };
	n++;
	s[n].type = SLI_HELLO; /* the token flag with an empty token and an empty name */
	s[n].u.hello = (sli_hello){ SLI_MAGIC, SLI_PROTO_VERSION, SLI_HELLO_TOKEN, 1, 0, B(""), 0, B("") };
	n++;
	s[n].type = SLI_REPLICA;
	s[n].u.replica = (sli_replica){ B("127.0.0.1:7002") };
	n++;
	s[n].type = SLI_REPLICA_ACK;
	s[n].u.replica_ack = (sli_replica_ack){ 7, 3, 0xfffffffffffffff0ull };
	n++;
	s[n].type = SLI_WATERMARK;
	s[n].u.watermark = (sli_watermark){ 11, 12345 };
	n++;
	s[n].type = SLI_STATS_REQUEST;
	n++;
	s[n].type = SLI_STATS;
	s[n].u.stats = (sli_stats){ B("# TYPE sluice_connections gauge\nsluice_connections 1\n") };
	n++;
	assert_int_equal(n, NSAMPLES);
	nsamples = n;
	return 0;
}

static int teardown_samples(void **state)
{
	(void)state;
	sli_buf_fini(&ev_data);
	sli_buf_fini(&ev_single);
	sli_buf_fini(&src_entries);
	sli_buf_fini(&cluster_addrs);
	sli_buf_fini(&app_updates);
	return 0;
}

/* Compares every field of two frames of the same type. */
static void assert_frame_eq(const sli_frame *a, const sli_frame *b)
{
	assert_int_equal(a->type, b->type);
	switch (a->type) {
	case SLI_HELLO:
		assert_int_equal(a->u.hello.magic, b->u.hello.magic);
		assert_int_equal(a->u.hello.version, b->u.hello.version);
		assert_int_equal(a->u.hello.flags, b->u.hello.flags);
		assert_true(a->u.hello.session == b->u.hello.session);
		assert_true(a->u.hello.epoch == b->u.hello.epoch);
		assert_true(a->u.hello.fingerprint == b->u.hello.fingerprint);
		assert_true(bytes_eq(a->u.hello.name, b->u.hello.name));
		assert_true(bytes_eq(a->u.hello.token, b->u.hello.token));
		break;
	case SLI_ERROR:
		assert_int_equal(a->u.error.code, b->u.error.code);
		assert_int_equal(a->u.error.fatal, b->u.error.fatal);
		assert_true(bytes_eq(a->u.error.message, b->u.error.message));
		break;
	case SLI_PING:
	case SLI_PONG:
		assert_true(a->u.ping.nonce == b->u.ping.nonce);
		break;
	case SLI_SUBSCRIBE:
		assert_int_equal(a->u.subscribe.handle, b->u.subscribe.handle);
		assert_true(a->u.subscribe.dataflow == b->u.subscribe.dataflow);
		assert_true(a->u.subscribe.source == b->u.subscribe.source);
		assert_int_equal(a->u.subscribe.worker, b->u.subscribe.worker);
		assert_true(a->u.subscribe.from == b->u.subscribe.from);
		assert_true(a->u.subscribe.credit == b->u.subscribe.credit);
		break;
	case SLI_SUBSCRIBE_OK:
		assert_int_equal(a->u.subscribe_ok.handle, b->u.subscribe_ok.handle);
		assert_true(a->u.subscribe_ok.since == b->u.subscribe_ok.since);
		assert_true(a->u.subscribe_ok.upper == b->u.subscribe_ok.upper);
		assert_int_equal(a->u.subscribe_ok.flags, b->u.subscribe_ok.flags);
		break;
	case SLI_SUBSCRIBE_ERROR:
		assert_int_equal(a->u.subscribe_error.handle, b->u.subscribe_error.handle);
		assert_int_equal(a->u.subscribe_error.code, b->u.subscribe_error.code);
		assert_true(bytes_eq(a->u.subscribe_error.message, b->u.subscribe_error.message));
		break;
	case SLI_UNSUBSCRIBE:
		assert_true(a->u.unsubscribe.dataflow == b->u.unsubscribe.dataflow);
		assert_true(a->u.unsubscribe.source == b->u.unsubscribe.source);
		assert_int_equal(a->u.unsubscribe.worker, b->u.unsubscribe.worker);
		break;
	case SLI_UNSUBSCRIBE_OK:
		assert_int_equal(a->u.unsubscribe_ok.handle, b->u.unsubscribe_ok.handle);
		break;
	case SLI_CREDIT:
		assert_int_equal(a->u.credit.handle, b->u.credit.handle);
		assert_true(a->u.credit.bytes == b->u.credit.bytes);
		break;
	case SLI_DATA:
		assert_int_equal(a->u.data.handle, b->u.data.handle);
		assert_int_equal(a->u.data.collection, b->u.data.collection);
		assert_true(bytes_eq(a->u.data.events, b->u.data.events));
		break;
	case SLI_LIST_SOURCES:
		break;
	case SLI_SOURCES:
		assert_int_equal(a->u.sources.count, b->u.sources.count);
		assert_true(bytes_eq(a->u.sources.entries, b->u.sources.entries));
		break;
	case SLI_CLUSTER_MAP:
		break;
	case SLI_CLUSTER:
		assert_true(a->u.cluster.fingerprint == b->u.cluster.fingerprint);
		assert_true(a->u.cluster.term == b->u.cluster.term);
		assert_int_equal(a->u.cluster.process, b->u.cluster.process);
		assert_int_equal(a->u.cluster.count, b->u.cluster.count);
		assert_true(bytes_eq(a->u.cluster.addrs, b->u.cluster.addrs));
		break;
	case SLI_APPEND:
		assert_true(a->u.append.batch == b->u.append.batch);
		assert_true(a->u.append.source == b->u.append.source);
		assert_int_equal(a->u.append.flags, b->u.append.flags);
		assert_int_equal(a->u.append.count, b->u.append.count);
		assert_true(bytes_eq(a->u.append.updates, b->u.append.updates));
		break;
	case SLI_PROMOTE:
	case SLI_STATS_REQUEST:
		break;
	case SLI_STATS:
		assert_true(bytes_eq(a->u.stats.text, b->u.stats.text));
		break;
	case SLI_PROMOTED:
		assert_true(a->u.promoted.term == b->u.promoted.term);
		break;
	case SLI_FENCE:
		assert_true(a->u.fence.term == b->u.fence.term);
		assert_true(bytes_eq(a->u.fence.by, b->u.fence.by));
		break;
	case SLI_REPLICA:
		assert_true(bytes_eq(a->u.replica.member, b->u.replica.member));
		break;
	case SLI_REPLICA_ACK:
		assert_true(a->u.replica_ack.source == b->u.replica_ack.source);
		assert_int_equal(a->u.replica_ack.worker, b->u.replica_ack.worker);
		assert_true(a->u.replica_ack.upper == b->u.replica_ack.upper);
		break;
	case SLI_WATERMARK:
		assert_int_equal(a->u.watermark.handle, b->u.watermark.handle);
		assert_true(a->u.watermark.hw == b->u.watermark.hw);
		break;
	case SLI_APPEND_OK:
		assert_true(a->u.append_ok.batch == b->u.append_ok.batch);
		assert_true(a->u.append_ok.time == b->u.append_ok.time);
		break;
	case SLI_APPEND_ERROR:
		assert_true(a->u.append_error.batch == b->u.append_error.batch);
		assert_int_equal(a->u.append_error.code, b->u.append_error.code);
		assert_true(bytes_eq(a->u.append_error.message, b->u.append_error.message));
		break;
	default:
		fail_msg("unexpected type %d", a->type);
	}
}

/* ---- round trips ---- */

static void test_roundtrip(void **state)
{
	int seen[256] = { 0 };

	(void)state;
	for (size_t i = 0; i < nsamples; i++) {
		sli_buf b1, b2;
		sli_frame f;
		uint8_t *exact;

		sli_buf_init(&b1);
		sli_buf_init(&b2);
		assert_int_equal(sli_frame_encode(&b1, &samples[i]), 0);
		assert_int_equal(sli_get_u32(b1.ptr), b1.len - 4);
		assert_int_equal(b1.ptr[4], samples[i].type);
		/* Decode from an exact-size heap copy so a sanitizer sees any over-read. */
		exact = malloc(b1.len);
		assert_non_null(exact);
		memcpy(exact, b1.ptr, b1.len);
		assert_int_equal(sli_frame_decode(exact, b1.len, MAXF, &f), (ssize_t)b1.len);
		assert_frame_eq(&f, &samples[i]);
		assert_int_equal(sli_frame_encode(&b2, &f), 0);
		assert_int_equal(b2.len, b1.len);
		assert_memory_equal(b2.ptr, b1.ptr, b1.len);
		/* The frame needs exactly its own length: max_frame = length is accepted. */
		assert_int_equal(sli_frame_decode(exact, b1.len, (uint32_t)(b1.len - 4), &f), (ssize_t)b1.len);
		assert_int_equal(sli_frame_decode(exact, b1.len, (uint32_t)(b1.len - 5), &f), SL_ETOOBIG);
		assert_string_not_equal(sli_frame_type_name(samples[i].type), "unknown");
		seen[samples[i].type] = 1;
		free(exact);
		sli_buf_fini(&b1);
		sli_buf_fini(&b2);
	}
	static const uint8_t all[] = { SLI_HELLO, SLI_ERROR, SLI_PING, SLI_PONG, SLI_SUBSCRIBE,
		SLI_SUBSCRIBE_OK, SLI_SUBSCRIBE_ERROR, SLI_UNSUBSCRIBE, SLI_UNSUBSCRIBE_OK, SLI_CREDIT,
		SLI_DATA, SLI_LIST_SOURCES, SLI_SOURCES, SLI_CLUSTER_MAP, SLI_CLUSTER, SLI_APPEND,
		SLI_APPEND_OK, SLI_APPEND_ERROR, SLI_PROMOTE, SLI_PROMOTED, SLI_FENCE,
		SLI_REPLICA, SLI_REPLICA_ACK, SLI_WATERMARK, SLI_STATS_REQUEST, SLI_STATS };
	for (size_t i = 0; i < sizeof(all); i++)
		assert_true(seen[all[i]]);
	assert_string_equal(sli_frame_type_name(SLI_SUBSCRIBE), "Subscribe");
	assert_string_equal(sli_frame_type_name(0x99), "unknown");
}

static void test_prefixes(void **state)
{
	(void)state;
	for (size_t i = 0; i < nsamples; i++) {
		sli_buf b;
		sli_frame f;

		sli_buf_init(&b);
		assert_int_equal(sli_frame_encode(&b, &samples[i]), 0);
		for (size_t k = 0; k < b.len; k++) {
			uint8_t *exact = malloc(k + 1);

			assert_non_null(exact);
			memcpy(exact, b.ptr, k);
			assert_int_equal(sli_frame_decode(exact, k, MAXF, &f), 0);
			free(exact);
		}
		sli_buf_fini(&b);
	}
}

/* A stream of every sample, fed one byte at a time through an accumulating buffer. */
static void test_byte_at_a_time(void **state)
{
	sli_buf stream, acc;
	size_t next = 0;

	(void)state;
	sli_buf_init(&stream);
	sli_buf_init(&acc);
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < nsamples; i++)
			assert_int_equal(sli_frame_encode(&stream, &samples[i]), 0);
	for (size_t pos = 0; pos < stream.len; pos++) {
		ssize_t rc;
		sli_frame f;

		assert_int_equal(sli_buf_reserve(&acc, 1), 0);
		acc.ptr[acc.len++] = stream.ptr[pos];
		while ((rc = sli_frame_decode(acc.ptr, acc.len, MAXF, &f)) > 0) {
			assert_true(next < 2 * nsamples);
			assert_frame_eq(&f, &samples[next % nsamples]);
			next++;
			sli_buf_consume(&acc, (size_t)rc);
		}
		assert_int_equal(rc, 0);
	}
	assert_int_equal(next, 2 * nsamples);
	assert_int_equal(acc.len, 0);
	sli_buf_fini(&stream);
	sli_buf_fini(&acc);
}

/* The in-place builders produce the same bytes as sli_frame_encode. */
static void test_in_place(void **state)
{
	static const uint64_t times[] = { 7, 3 };
	static const int64_t deltas[] = { 1, -1 };
	sli_buf a, b;
	ssize_t off;

	(void)state;
	sli_buf_init(&a);
	sli_buf_init(&b);
	assert_int_equal(sli_frame_encode(&a, &samples[4]), 0); /* something before it */
	assert_int_equal(sli_frame_encode(&b, &samples[4]), 0);
	off = sli_data_begin(&a, 7, SL_OK);
	assert_int_equal(off, b.len);
	assert_int_equal(sli_put_messages_header(&a, 5, 3, 12 + 3 + 12 + 0 + 12 + 5), 0);
	assert_int_equal(sli_put_update(&a, 1, B("abc")), 0);
	assert_int_equal(sli_put_update(&a, -2, B("")), 0);
	assert_int_equal(sli_put_update(&a, INT64_MIN, B("hello")), 0);
	assert_int_equal(sli_put_messages_header(&a, SL_TIME_CLOSED - 1, 0, 0), 0);
	assert_int_equal(sli_put_progress(&a, times, deltas, 2), 0);
	sli_frame_end(&a, (size_t)off);
	assert_int_equal(samples[12].type, SLI_DATA);
	assert_int_equal(sli_frame_encode(&b, &samples[12]), 0);

	off = sli_append_begin(&a, 11, 1, SLI_APPEND_LAST);
	assert_int_equal(off, b.len);
	assert_int_equal(sli_put_update(&a, 1, B("row-1")), 0);
	assert_int_equal(sli_put_update(&a, -1, B("row-2")), 0);
	assert_int_equal(sli_put_update(&a, 0, B("")), 0);
	sli_append_end(&a, (size_t)off, 3);
	assert_int_equal(samples[17].type, SLI_APPEND);
	assert_int_equal(sli_frame_encode(&b, &samples[17]), 0);

	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.ptr, b.ptr, a.len);
	sli_buf_fini(&a);
	sli_buf_fini(&b);
}

/* ---- iterators ---- */

static void test_iterators(void **state)
{
	sl_bytes rest = bufb(&ev_data), ups, ch;
	sli_event ev;
	int64_t diff, delta;
	uint64_t t;
	sl_bytes row;
	sli_source_entry e;

	(void)state;
	assert_int_equal(sli_events_next(&rest, &ev), 1);
	assert_int_equal(ev.tag, SLI_EV_MESSAGES);
	assert_true(ev.time == 5);
	assert_int_equal(ev.count, 3);
	assert_int_equal(ev.size, SLI_MESSAGES_HDR + 44);
	ups = ev.body;
	assert_int_equal(sli_updates_next(&ups, &diff, &row), 1);
	assert_true(diff == 1 && bytes_eq(row, B("abc")));
	assert_int_equal(sli_updates_next(&ups, &diff, &row), 1);
	assert_true(diff == -2 && row.len == 0);
	assert_int_equal(sli_updates_next(&ups, &diff, &row), 1);
	assert_true(diff == INT64_MIN && bytes_eq(row, B("hello")));
	assert_int_equal(sli_updates_next(&ups, &diff, &row), 0);

	assert_int_equal(sli_events_next(&rest, &ev), 1);
	assert_int_equal(ev.tag, SLI_EV_MESSAGES);
	assert_true(ev.time == SL_TIME_CLOSED - 1);
	assert_int_equal(ev.count, 0);
	assert_int_equal(ev.body.len, 0);

	assert_int_equal(sli_events_next(&rest, &ev), 1);
	assert_int_equal(ev.tag, SLI_EV_PROGRESS);
	assert_int_equal(ev.count, 2);
	assert_int_equal(ev.size, 5 + 32);
	ch = ev.body;
	assert_int_equal(sli_changes_next(&ch, &t, &delta), 1);
	assert_true(t == 7 && delta == 1);
	assert_int_equal(sli_changes_next(&ch, &t, &delta), 1);
	assert_true(t == 3 && delta == -1);
	assert_int_equal(sli_changes_next(&ch, &t, &delta), 0);
	assert_int_equal(sli_events_next(&rest, &ev), 0);
	assert_int_equal(sli_events_validate(bufb(&ev_data)), 0);

	rest = bufb(&src_entries);
	assert_int_equal(sli_sources_next(&rest, &e), 1);
	assert_true(e.id == 1 && bytes_eq(e.name, B("counter")) && bytes_eq(e.kind, B("counter")));
	assert_int_equal(e.workers, 3);
	assert_true(sli_get_u64(e.uppers.ptr + 8) == SL_TIME_CLOSED);
	assert_int_equal(sli_sources_next(&rest, &e), 1);
	assert_true(e.id == UINT64_MAX && e.name.len == 0 && e.workers == 0 && e.uppers.len == 0);
	assert_int_equal(sli_sources_next(&rest, &e), 0);

	/* Truncated input makes every iterator fail instead of reading past the end. */
	rest = bufb(&ev_data);
	rest.len -= 1;
	assert_int_equal(sli_events_validate(rest), SL_EPROTO);
	rest = bufb(&app_updates);
	rest.len = 11;
	assert_int_equal(sli_updates_next(&rest, &diff, &row), SL_EPROTO);
	rest = bufb(&app_updates);
	rest.len = 16; /* header says 5 row bytes, 4 present */
	assert_int_equal(sli_updates_next(&rest, &diff, &row), SL_EPROTO);
	ch.ptr = ev_data.ptr;
	ch.len = 15;
	assert_int_equal(sli_changes_next(&ch, &t, &delta), SL_EPROTO);
	rest = bufb(&src_entries);
	rest.len = 30;
	assert_int_equal(sli_sources_next(&rest, &e), SL_EPROTO);
}

/* ---- malformed frames ---- */

/* Builds `u32 length | type | body` with length = 1 + n. */
static void raw_frame(sli_buf *b, uint8_t type, const uint8_t *body, size_t n)
{
	b->len = 0;
	assert_int_equal(sli_buf_reserve(b, 5 + n), 0);
	sli_set_u32(b->ptr, (uint32_t)(1 + n));
	b->ptr[4] = type;
	if (n > 0)
		memcpy(b->ptr + 5, body, n);
	b->len = 5 + n;
}

static ssize_t decode_buf(const sli_buf *b)
{
	sli_frame f;
	uint8_t *exact = malloc(b->len);
	ssize_t rc;

	assert_non_null(exact);
	memcpy(exact, b->ptr, b->len);
	rc = sli_frame_decode(exact, b->len, MAXF, &f);
	free(exact);
	return rc;
}

static void test_malformed(void **state)
{
	uint8_t body[256] = {0};
	sli_buf b;
	sli_frame f;
	uint8_t hdr[8];

	(void)state;
	sli_buf_init(&b);

	/* Length over max: known from the 4 prefix bytes alone. */
	sli_set_u32(hdr, MAXF + 1);
	assert_int_equal(sli_frame_decode(hdr, 4, MAXF, &f), SL_ETOOBIG);
	sli_set_u32(hdr, UINT32_MAX);
	assert_int_equal(sli_frame_decode(hdr, 4, MAXF, &f), SL_ETOOBIG);
	assert_int_equal(sli_frame_decode(hdr, 3, MAXF, &f), 0);
	/* Zero length. */
	sli_set_u32(hdr, 0);
	assert_int_equal(sli_frame_decode(hdr, 4, MAXF, &f), SL_EPROTO);
	assert_int_equal(sli_frame_decode(hdr, 8, MAXF, &f), SL_EPROTO);

	/* Unknown types. */
	raw_frame(&b, 0x00, NULL, 0);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	raw_frame(&b, 0x05, NULL, 0);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	raw_frame(&b, 0xff, body, 8);
	assert_int_equal(decode_buf(&b), SL_EPROTO);

	/* Trailing bytes, and short bodies. */
	memset(body, 0, sizeof(body));
	raw_frame(&b, SLI_PING, body, 8);
	assert_int_equal(decode_buf(&b), 13);
	raw_frame(&b, SLI_PING, body, 9);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	raw_frame(&b, SLI_PING, body, 7);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	raw_frame(&b, SLI_LIST_SOURCES, body, 1);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	for (size_t i = 0; i < nsamples; i++) {
		/* Every sample with one extra byte inside its length. */
		b.len = 0;
		assert_int_equal(sli_frame_encode(&b, &samples[i]), 0);
		assert_int_equal(sli_buf_reserve(&b, 1), 0);
		b.ptr[b.len++] = 0;
		sli_set_u32(b.ptr, (uint32_t)(b.len - 4));
		assert_int_equal(decode_buf(&b), SL_EPROTO);
		/* And with one byte fewer. */
		b.len -= 2;
		sli_set_u32(b.ptr, (uint32_t)(b.len - 4));
		if (b.len > 4)
			assert_int_equal(decode_buf(&b), SL_EPROTO);
	}

	/* Error: code 0, code > INT32_MAX, fatal 2. */
	memset(body, 0, sizeof(body));
	raw_frame(&b, SLI_ERROR, body, 9);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body, 0x80000000u);
	raw_frame(&b, SLI_ERROR, body, 9);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body, INT32_MAX);
	raw_frame(&b, SLI_ERROR, body, 9);
	assert_int_equal(decode_buf(&b), 14);
	body[4] = 2;
	raw_frame(&b, SLI_ERROR, body, 9);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	/* SubscribeError and AppendError with code 0. */
	memset(body, 0, sizeof(body));
	raw_frame(&b, SLI_SUBSCRIBE_ERROR, body, 12);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	raw_frame(&b, SLI_APPEND_ERROR, body, 16);
	assert_int_equal(decode_buf(&b), SL_EPROTO);

	/* Truncated str inside a complete frame: name says 100 bytes, 3 present. */
	memset(body, 0, sizeof(body));
	sli_set_u32(body + 32, 100);
	raw_frame(&b, SLI_HELLO, body, 36 + 3);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body + 32, UINT32_MAX);
	raw_frame(&b, SLI_HELLO, body, 36 + 3);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body + 32, 3);
	raw_frame(&b, SLI_HELLO, body, 36 + 3);
	assert_int_equal(decode_buf(&b), 5 + 39);

	/* Data: bad collection, no events, unknown event tag. */
	memset(body, 0, sizeof(body));
	body[5] = SLI_EV_PROGRESS; /* PROGRESS with count 0 */
	raw_frame(&b, SLI_DATA, body, 10);
	assert_int_equal(decode_buf(&b), 15);
	body[4] = SL_ERR;
	raw_frame(&b, SLI_DATA, body, 10);
	assert_int_equal(decode_buf(&b), 15);
	body[4] = 2;
	raw_frame(&b, SLI_DATA, body, 10);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	body[4] = 0xff;
	raw_frame(&b, SLI_DATA, body, 10);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	body[4] = SL_OK;
	raw_frame(&b, SLI_DATA, body, 5);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	body[5] = 3;
	raw_frame(&b, SLI_DATA, body, 10);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	body[5] = 0;
	raw_frame(&b, SLI_DATA, body, 10);
	assert_int_equal(decode_buf(&b), SL_EPROTO);

	/* MESSAGES: a valid one (1 update of 2 bytes), then nbytes too big, too small, count off. */
	memset(body, 0, sizeof(body));
	body[5] = SLI_EV_MESSAGES;
	sli_set_u64(body + 6, 9);
	sli_set_u32(body + 14, 1);
	sli_set_u32(body + 18, 14);
	sli_set_u64(body + 22, 1);
	sli_set_u32(body + 30, 2);
	raw_frame(&b, SLI_DATA, body, 22 + 14);
	assert_int_equal(decode_buf(&b), 5 + 36);
	sli_set_u32(body + 18, 15); /* one past the frame */
	raw_frame(&b, SLI_DATA, body, 22 + 14);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body + 18, 13); /* update sticks out of nbytes; leftover byte is no event */
	raw_frame(&b, SLI_DATA, body, 22 + 14);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body + 18, 15); /* nbytes holds a stray byte after the update */
	raw_frame(&b, SLI_DATA, body, 22 + 15);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body + 18, 14);
	sli_set_u32(body + 14, 2); /* count says 2, one present */
	raw_frame(&b, SLI_DATA, body, 22 + 14);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body + 14, 0); /* count says 0, one present */
	raw_frame(&b, SLI_DATA, body, 22 + 14);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body + 14, UINT32_MAX); /* count overflow: count * 12 wraps 32 bits */
	raw_frame(&b, SLI_DATA, body, 22 + 14);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body + 14, 0x15555556u); /* * 12 = 2^32 + 8 */
	raw_frame(&b, SLI_DATA, body, 22 + 14);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body + 14, 1);
	sli_set_u32(body + 18, UINT32_MAX); /* nbytes overflow */
	raw_frame(&b, SLI_DATA, body, 22 + 14);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body + 18, 14);
	sli_set_u32(body + 30, UINT32_MAX); /* row length overflow */
	raw_frame(&b, SLI_DATA, body, 22 + 14);
	assert_int_equal(decode_buf(&b), SL_EPROTO);

	/* PROGRESS count overflow: 0x10000000 * 16 wraps 32 bits to 0. */
	memset(body, 0, sizeof(body));
	body[5] = SLI_EV_PROGRESS;
	sli_set_u32(body + 6, 0x10000000u);
	raw_frame(&b, SLI_DATA, body, 10);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body + 6, 1); /* truncated change */
	raw_frame(&b, SLI_DATA, body, 10 + 15);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	raw_frame(&b, SLI_DATA, body, 10 + 16);
	assert_int_equal(decode_buf(&b), 5 + 26);
	raw_frame(&b, SLI_DATA, body, 9); /* PROGRESS header cut */
	assert_int_equal(decode_buf(&b), SL_EPROTO);

	/* Sources: count too big, count overflow, uppers overflow, trailing entry bytes. */
	memset(body, 0, sizeof(body));
	sli_set_u32(body, 1);
	raw_frame(&b, SLI_SOURCES, body, 4 + 20);
	assert_int_equal(decode_buf(&b), 5 + 24);
	sli_set_u32(body, 2);
	raw_frame(&b, SLI_SOURCES, body, 4 + 20);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body, UINT32_MAX);
	raw_frame(&b, SLI_SOURCES, body, 4 + 20);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body, 1);
	sli_set_u32(body + 4 + 16, 0x20000000u); /* workers * 8 wraps 32 bits to 0 */
	raw_frame(&b, SLI_SOURCES, body, 4 + 20);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body + 4 + 16, 0);
	raw_frame(&b, SLI_SOURCES, body, 4 + 21);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body + 4 + 8, 5); /* name length past the end */
	raw_frame(&b, SLI_SOURCES, body, 4 + 20);
	assert_int_equal(decode_buf(&b), SL_EPROTO);

	/* Append: count mismatch and overflow. */
	memset(body, 0, sizeof(body));
	sli_set_u32(body + 17, 1);
	raw_frame(&b, SLI_APPEND, body, 21 + 12);
	assert_int_equal(decode_buf(&b), 5 + 33);
	sli_set_u32(body + 17, 2);
	raw_frame(&b, SLI_APPEND, body, 21 + 12);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body + 17, 0x15555556u);
	raw_frame(&b, SLI_APPEND, body, 21 + 12);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	sli_set_u32(body + 17, 0);
	raw_frame(&b, SLI_APPEND, body, 21 + 12);
	assert_int_equal(decode_buf(&b), SL_EPROTO);
	raw_frame(&b, SLI_APPEND, body, 21);
	assert_int_equal(decode_buf(&b), 5 + 21);

	sli_buf_fini(&b);
}

/* ---- encoder refusals, buffer, strerror ---- */

static void test_encode_refuses(void **state)
{
	sli_buf b;
	sli_frame f;

	(void)state;
	sli_buf_init(&b);
	memset(&f, 0, sizeof(f));
	f.type = 0x77;
	assert_int_equal(sli_frame_encode(&b, &f), SL_EARG);
	f.type = SLI_ERROR;
	f.u.error.code = 0;
	assert_int_equal(sli_frame_encode(&b, &f), SL_EARG);
	f.u.error.code = 5;
	assert_int_equal(sli_frame_encode(&b, &f), SL_EARG);
	f.u.error.code = INT32_MIN;
	assert_int_equal(sli_frame_encode(&b, &f), SL_EARG);
	f.u.error.code = SL_EPROTO;
	f.u.error.fatal = 2;
	assert_int_equal(sli_frame_encode(&b, &f), SL_EARG);
	f.type = SLI_DATA;
	f.u.data.collection = 2;
	assert_int_equal(sli_frame_encode(&b, &f), SL_EARG);
	assert_int_equal(b.len, 0);
	sli_buf_fini(&b);
}

static void test_buf(void **state)
{
	sli_buf b;
	size_t reallocs = 0, cap = 0;

	(void)state;
	sli_buf_init(&b);
	for (uint32_t i = 0; i < 100000; i++) {
		assert_int_equal(sli_buf_reserve(&b, 4), 0);
		sli_set_u32(b.ptr + b.len, i);
		b.len += 4;
		if (b.cap != cap) {
			cap = b.cap;
			reallocs++;
		}
	}
	assert_true(reallocs < 20); /* doubling: log2(400000 / 256) + 1 */
	sli_buf_consume(&b, 8);
	assert_int_equal(b.len, 400000 - 8);
	assert_int_equal(sli_get_u32(b.ptr), 2);
	sli_buf_consume(&b, b.len + 5);
	assert_int_equal(b.len, 0);
	sli_buf_fini(&b);
	assert_null(b.ptr);
	sli_buf_fini(NULL);
}

static void test_strerror(void **state)
{
	(void)state;
	for (int c = SL_EPROTO; c >= SL_EAGAIN; c--) {
		const char *s = sl_strerror(c);

		assert_non_null(s);
		assert_string_not_equal(s, "unknown error");
		assert_true(strlen(s) > 3);
		for (int d = SL_EPROTO; d > c; d--)
			assert_string_not_equal(s, sl_strerror(d));
	}
	assert_string_equal(sl_strerror(SL_ENOSOURCE), "no such source");
	assert_string_equal(sl_strerror(-EINVAL), "Invalid argument");
	assert_string_equal(sl_strerror(-ECONNREFUSED), "Connection refused");
	assert_string_equal(sl_strerror(0), "success");
	assert_string_equal(sl_strerror(SL_EAGAIN - 1), "unknown error");
	assert_string_equal(sl_strerror(-999), "unknown error");
	assert_string_equal(sl_strerror(7), "unknown error");
	assert_string_equal(sl_strerror(INT32_MIN), "unknown error");
}

/* ---- random input ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	/* xorshift64*: fixed seed, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static const uint8_t known_types[] = { SLI_HELLO, SLI_ERROR, SLI_PING, SLI_PONG, SLI_SUBSCRIBE,
	SLI_SUBSCRIBE_OK, SLI_SUBSCRIBE_ERROR, SLI_UNSUBSCRIBE, SLI_UNSUBSCRIBE_OK, SLI_CREDIT,
	SLI_DATA, SLI_LIST_SOURCES, SLI_SOURCES, SLI_APPEND, SLI_APPEND_OK, SLI_APPEND_ERROR };

static void walk(const sli_frame *f)
{
	sl_bytes rest, inner, row;
	sli_event ev;
	sli_source_entry e;
	int64_t d;
	uint64_t t;

	switch (f->type) {
	case SLI_DATA:
		rest = f->u.data.events;
		while (sli_events_next(&rest, &ev) == 1) {
			inner = ev.body;
			if (ev.tag == SLI_EV_MESSAGES) {
				while (sli_updates_next(&inner, &d, &row) == 1)
					;
			} else {
				while (sli_changes_next(&inner, &t, &d) == 1)
					;
			}
			assert_int_equal(inner.len, 0);
		}
		assert_int_equal(rest.len, 0);
		break;
	case SLI_APPEND:
		rest = f->u.append.updates;
		while (sli_updates_next(&rest, &d, &row) == 1)
			;
		assert_int_equal(rest.len, 0);
		break;
	case SLI_SOURCES:
		rest = f->u.sources.entries;
		while (sli_sources_next(&rest, &e) == 1)
			;
		assert_int_equal(rest.len, 0);
		break;
	}
}

static void test_random(void **state)
{
	uint8_t *buf = malloc(96);
	size_t decoded = 0;
	sli_buf re;

	(void)state;
	assert_non_null(buf);
	sli_buf_init(&re);
	for (int iter = 0; iter < 200000; iter++) {
		size_t len = (size_t)(rng() % 96);
		uint64_t r = rng();
		sli_frame f;
		ssize_t rc;

		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rng();
		/* Most of the time, make the framing plausible so the body parsers get exercised. */
		if (len >= 5 && (r & 3) != 0) {
			sli_set_u32(buf, (uint32_t)(len - 4 - ((r >> 2) & 1)));
			buf[4] = known_types[(r >> 8) % sizeof(known_types)];
			if ((r & 0x30000) == 0 && len >= 10)
				buf[10] = (uint8_t)(1 + ((r >> 20) & 1)); /* a Data event tag */
			if ((r & 0xc0000) == 0 && len >= 10)
				buf[9] = 0; /* a valid collection */
			/* Shrink some counts and lengths so they can fit. */
			for (size_t i = 5 + ((r >> 24) & 7); i + 3 < len; i += 4 + ((r >> 28) & 7))
				if ((rng() & 3) == 0)
					sli_set_u32(buf + i, (uint32_t)(rng() % 8));
		}
		rc = sli_frame_decode(buf, len, 64, &f);
		assert_true(rc <= (ssize_t)len);
		assert_true(rc == 0 || rc == SL_EPROTO || rc == SL_ETOOBIG || rc >= 5);
		if (rc > 0) {
			decoded++;
			walk(&f);
			re.len = 0;
			assert_int_equal(sli_frame_encode(&re, &f), 0);
			assert_int_equal(re.len, (size_t)rc);
			assert_memory_equal(re.ptr, buf, (size_t)rc);
		}
	}
	/* The plausible framing must actually reach the success path now and then. */
	print_message("random: %zu of 200000 buffers decoded to a frame\n", decoded);
	assert_true(decoded > 100);
	sli_buf_fini(&re);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_byte_at_a_time),
		cmocka_unit_test(test_in_place),
		cmocka_unit_test(test_iterators),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, setup_samples, teardown_samples);
}
