/*
 * proto.h - the sluice wire codec: pure functions over byte buffers.
 *
 * Nothing in src/proto touches a socket, a clock or a file.  Decoding never allocates: a decoded
 * frame holds views (sl_bytes) into the caller's buffer, valid while that buffer is.  Encoding
 * appends to a growable sli_buf.  docs/PROTOCOL.md is the byte-by-byte description of what these
 * functions read and write; keep both in step.
 *
 * All integers are little-endian, fixed width.  A "str" is u32 length + that many bytes.
 *
 * Frame:   u32 length | u8 type | body (length - 1 bytes)
 *          length counts the type byte and the body, so it is >= 1 and <= max_frame.
 *
 * Events (the body of a Data frame after its handle and collection, and a durable log record):
 *   MESSAGES: u8 1 | u64 time | u32 count | u32 nbytes | updates (nbytes bytes)
 *             update: i64 diff | u32 len | row (len bytes)
 *   PROGRESS: u8 2 | u32 count | count x (u64 time | i64 delta)
 */
#ifndef SLUICE_PROTO_H
#define SLUICE_PROTO_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "sluice/sluice.h"

#define SLI_PROTO_VERSION 1
#define SLI_MAGIC 0x45434c53u /* "SLCE" as read little-endian */
#define SLI_FRAME_HDR 5u      /* u32 length + u8 type */
#define SLI_FRAME_MAX_DEFAULT (4u << 20)
#define SLI_FRAME_MAX_LIMIT (64u << 20) /* no peer may configure more than this */

#define SLI_EV_MESSAGES 1
#define SLI_EV_PROGRESS 2
#define SLI_MESSAGES_HDR 17u /* tag + time + count + nbytes */
#define SLI_UPDATE_HDR 12u   /* diff + len */
#define SLI_CHANGE_SIZE 16u  /* time + delta */

enum sli_frame_type {
	SLI_HELLO = 0x01,
	SLI_ERROR = 0x02,
	SLI_PING = 0x03,
	SLI_PONG = 0x04,
	SLI_SUBSCRIBE = 0x10,
	SLI_SUBSCRIBE_OK = 0x11,
	SLI_SUBSCRIBE_ERROR = 0x12,
	SLI_UNSUBSCRIBE = 0x13,
	SLI_UNSUBSCRIBE_OK = 0x14,
	SLI_CREDIT = 0x15,
	SLI_DATA = 0x20,
	SLI_LIST_SOURCES = 0x30,
	SLI_SOURCES = 0x31,
	SLI_CLUSTER_MAP = 0x32,
	SLI_CLUSTER = 0x33,
	SLI_APPEND = 0x40,
	SLI_APPEND_OK = 0x41,
	SLI_APPEND_ERROR = 0x42,
	SLI_PROMOTE = 0x50,
	SLI_PROMOTED = 0x51,
	SLI_FENCE = 0x52,
	SLI_REPLICA = 0x53,
	SLI_REPLICA_ACK = 0x54,
	SLI_WATERMARK = 0x55,
	SLI_STATS_REQUEST = 0x60,
	SLI_STATS = 0x61,
};

/* SubscribeOk flags */
#define SLI_SUBOK_SNAPSHOT 0x01 /* from < since: a consolidated snapshot at `since` comes first */
/* Hello flags */
#define SLI_HELLO_TOKEN 0x0001 /* an authentication token (str) follows the name */
/* Append flags */
#define SLI_APPEND_LAST 0x01 /* this frame ends the batch: commit it */

typedef struct sli_hello {
	uint32_t magic;   /* SLI_MAGIC */
	uint16_t version; /* SLI_PROTO_VERSION */
	uint16_t flags;   /* SLI_HELLO_TOKEN or 0; other bits reserved (sent 0, ignored) */
	uint64_t session; /* random per process start (server) or per client */
	uint64_t epoch;   /* server: increments on every restart on the same data dir; client: 0 */
	sl_bytes name;    /* free text: program name and version */
	uint64_t fingerprint; /* a cluster process's configuration fingerprint (see sli_cluster);
	                         0 from clients and from a process outside a cluster.  On the wire
	                         it comes before name. */
	sl_bytes token;   /* with SLI_HELLO_TOKEN: the client's authentication token, on the wire
	                     as a str after name; {NULL, 0} without the flag */
} sli_hello;

typedef struct sli_error {
	int32_t code;     /* an SL_E* (negative); on the wire as u32 -code */
	uint8_t fatal;    /* 1: the sender closes the connection after this frame */
	sl_bytes message;
} sli_error;

typedef struct sli_ping {
	uint64_t nonce;
} sli_ping; /* also Pong */

typedef struct sli_subscribe {
	uint32_t handle; /* chosen by the client, unique among its live subscriptions */
	uint64_t dataflow;
	uint64_t source;
	uint32_t worker;
	uint64_t from;   /* send updates with time >= from; 0 = everything */
	uint64_t credit; /* initial credit in event bytes */
} sli_subscribe;

typedef struct sli_subscribe_ok {
	uint32_t handle;
	uint64_t since; /* compaction frontier of the worker */
	uint64_t upper; /* worker's upper when the subscription started */
	uint8_t flags;  /* SLI_SUBOK_* */
} sli_subscribe_ok;

typedef struct sli_subscribe_error {
	uint32_t handle;
	int32_t code;
	sl_bytes message;
} sli_subscribe_error;

typedef struct sli_unsubscribe {
	uint64_t dataflow;
	uint64_t source;
	uint32_t worker;
} sli_unsubscribe;

typedef struct sli_unsubscribe_ok {
	uint32_t handle; /* no frame names this handle after this one; it may be reused */
} sli_unsubscribe_ok;

typedef struct sli_credit {
	uint32_t handle;
	uint64_t bytes; /* added to the subscription's credit */
} sli_credit;

typedef struct sli_data {
	uint32_t handle;
	uint8_t collection; /* SL_OK or SL_ERR */
	sl_bytes events;    /* one or more events, each validated by the decoder */
} sli_data;

typedef struct sli_sources {
	uint32_t count;
	sl_bytes entries; /* iterate with sli_sources_next; validated by the decoder */
} sli_sources;

typedef struct sli_source_entry {
	uint64_t id;
	sl_bytes name;
	sl_bytes kind;
	uint32_t workers;
	sl_bytes uppers; /* workers x u64; read with sli_get_u64(uppers.ptr + 8 * w) */
} sli_source_entry;

/* The storage cluster as one process sees it: P processes, process i at addrs[i] hosting the
 * workers w with w mod P == i.  A lone process answers count 1 with its own address. */
typedef struct sli_cluster {
	uint64_t fingerprint; /* hash of the cluster list and the source specs: equal on every process */
	uint64_t term;        /* fencing epoch of the answering process (primary and standbys) */
	uint32_t process;     /* the index of the answering process */
	uint32_t count;       /* processes */
	sl_bytes addrs;       /* count x str "HOST:PORT"; read with sli_strs_next */
} sli_cluster;

typedef struct sli_append {
	uint64_t batch;  /* client-chosen id; echoed in AppendOk/AppendError */
	uint64_t source;
	uint8_t flags;   /* SLI_APPEND_* */
	uint32_t count;  /* updates in this frame */
	sl_bytes updates; /* count x update (the MESSAGES update encoding); validated */
} sli_append;

typedef struct sli_append_ok {
	uint64_t batch;
	uint64_t time; /* the time every update of the batch was given */
} sli_append_ok;

typedef struct sli_append_error {
	uint64_t batch;
	int32_t code;
	sl_bytes message;
} sli_append_error;

/* From a promoted standby to the primary it replaced, once that one is back: it must serve no
 * more (it answers with Error(SL_EFENCED, fatal) and refuses every later client). */
typedef struct sli_fence {
	uint64_t term; /* the promoted standby's term: takes effect only above the receiver's */
	sl_bytes by;   /* the promoted standby's address, for the receiver's refusals */
} sli_fence;

/* From a standby's follower to the process it follows, right after Hello on every connection:
 * this connection is the standby `member` (its own address): its subscriptions are served up
 * to each worker's local upper, beyond the replicated high watermark, and get Watermark frames. */
typedef struct sli_replica {
	sl_bytes member;
} sli_replica;

/* From a standby's follower: its log of (source, worker) is durable up to `upper`. */
typedef struct sli_replica_ack {
	uint64_t source;
	uint32_t worker;
	uint64_t upper;
} sli_replica_ack;

/* To a standby's subscription: the group's high watermark of its worker (what every in-sync
 * copy holds: the frontier the standby may publish to its own readers). */
typedef struct sli_watermark {
	uint32_t handle;
	uint64_t hw;
} sli_watermark;

typedef struct sli_promoted {
	uint64_t term; /* the new term of the promoted standby */
} sli_promoted;

/* The answer to StatsRequest: the server's report in the Prometheus text exposition format
 * (the same text as its GET /metrics). */
typedef struct sli_stats {
	sl_bytes text;
} sli_stats;

typedef struct sli_frame {
	uint8_t type; /* enum sli_frame_type */
	union {
		sli_hello hello;
		sli_error error;
		sli_ping ping; /* PING and PONG */
		sli_subscribe subscribe;
		sli_subscribe_ok subscribe_ok;
		sli_subscribe_error subscribe_error;
		sli_unsubscribe unsubscribe;
		sli_unsubscribe_ok unsubscribe_ok;
		sli_credit credit;
		sli_data data;
		sli_sources sources;
		sli_cluster cluster;
		sli_append append;
		sli_append_ok append_ok;
		sli_append_error append_error;
		sli_promoted promoted;
		sli_fence fence;
		sli_replica replica;
		sli_replica_ack replica_ack;
		sli_watermark watermark;
		sli_stats stats;
		/* LIST_SOURCES, CLUSTER_MAP, PROMOTE and STATS_REQUEST have an empty body */
	} u;
} sli_frame;

/* One event inside a Data frame or a log record. */
typedef struct sli_event {
	uint8_t tag;    /* SLI_EV_MESSAGES or SLI_EV_PROGRESS */
	uint64_t time;  /* MESSAGES only */
	uint32_t count; /* updates or changes */
	sl_bytes body;  /* the encoded updates or changes */
	size_t size;    /* whole encoded event, header included */
} sli_event;

/* ---- decoding ---- */

/* sli_frame_decode parses one frame from buf[0, len).  Returns the bytes consumed (> 0), 0 when
 * more input is needed (also for every proper prefix of a valid frame), SL_ETOOBIG when the
 * length prefix exceeds max_frame, or SL_EPROTO for anything malformed (zero length, unknown
 * type, body of the wrong size, malformed events/updates/entries inside).  On success *f points
 * into buf and is valid while buf is.  Never reads outside buf[0, len). */
ssize_t sli_frame_decode(const uint8_t *buf, size_t len, uint32_t max_frame, sli_frame *f);

/* The iterators consume from *rest.  Return 1 with the item, 0 at the end (rest empty), or
 * SL_EPROTO if the bytes are malformed.  Input that came from a successful sli_frame_decode is
 * already validated, so on it they never fail. */
int sli_events_next(sl_bytes *rest, sli_event *ev);
int sli_updates_next(sl_bytes *rest, int64_t *diff, sl_bytes *row);
int sli_changes_next(sl_bytes *rest, uint64_t *time, int64_t *delta);
int sli_sources_next(sl_bytes *rest, sli_source_entry *e);
int sli_strs_next(sl_bytes *rest, sl_bytes *s);

/* Validates a whole run of events (as in a Data frame).  0 or SL_EPROTO. */
int sli_events_validate(sl_bytes events);

/* Returns a static name for a frame type ("Subscribe"), or "unknown". */
const char *sli_frame_type_name(uint8_t type);

/* ---- encoding ---- */

/* A growable output buffer.  sli_buf_init zeroes it; sli_buf_fini frees it. */
typedef struct sli_buf {
	uint8_t *ptr;
	size_t len;
	size_t cap;
} sli_buf;

void sli_buf_init(sli_buf *b);
void sli_buf_fini(sli_buf *b);
/* Makes room for n more bytes.  0 or SL_ENOMEM. */
int sli_buf_reserve(sli_buf *b, size_t n);
/* Drops the first n bytes (after they were written out). */
void sli_buf_consume(sli_buf *b, size_t n);

/* Appends one complete frame.  0, SL_ENOMEM, or SL_EARG for an unknown type or a value the wire
 * cannot carry (an error code that is not negative, fatal or collection not 0/1, a frame over
 * 4 GiB); on error b is unchanged. */
int sli_frame_encode(sli_buf *b, const sli_frame *f);

/* Building a Data frame in place, for the hot path: sli_data_begin writes the frame header, the
 * handle and the collection and returns the frame's offset in b (or SL_ENOMEM as a negative
 * value); the caller then appends events with the sli_put_* helpers or raw log bytes, and
 * sli_frame_end patches the length prefix.  The same pair works for Append frames
 * (sli_append_begin) whose count is patched by sli_append_end (which also patches the length). */
ssize_t sli_data_begin(sli_buf *b, uint32_t handle, uint8_t collection);
ssize_t sli_append_begin(sli_buf *b, uint64_t batch, uint64_t source, uint8_t flags);
void sli_frame_end(sli_buf *b, size_t frame_off);
void sli_append_end(sli_buf *b, size_t frame_off, uint32_t count);
/* Sets the LAST flag of the Append frame begun at frame_off (a batch built before its end is
 * known). */
void sli_append_set_last(sli_buf *b, size_t frame_off);

/* Event encoders (append to b; 0 or SL_ENOMEM; sli_put_update: SL_EARG for a row over 4 GiB). */
int sli_put_messages_header(sli_buf *b, uint64_t time, uint32_t count, uint32_t nbytes);
int sli_put_update(sli_buf *b, int64_t diff, sl_bytes row);
int sli_put_progress(sli_buf *b, const uint64_t *times, const int64_t *deltas, uint32_t count);

/* Fixed-width little-endian access to raw memory (no bounds checks: callers check). */
static inline uint16_t sli_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t sli_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t sli_get_u64(const uint8_t *p)
{
	return (uint64_t)sli_get_u32(p) | ((uint64_t)sli_get_u32(p + 4) << 32);
}
static inline void sli_set_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void sli_set_u64(uint8_t *p, uint64_t v)
{
	sli_set_u32(p, (uint32_t)v);
	sli_set_u32(p + 4, (uint32_t)(v >> 32));
}

#endif
