/*
 * conn.c - one compute connection on the storage side: reading and decoding frames, answering
 * requests, and writing the output buffer.  Runs on the network thread only.
 *
 * A misbehaving peer costs only its own connection: a malformed frame gets a fatal Error and
 * the connection closes after it; a request that fails gets an error answer and the connection
 * goes on.  A peer that does not read stops being read from once its output backs up, and is
 * dropped after the idle timeout, so it cannot grow this process's memory.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "net/sock.h"
#include "net/tls.h"
#include "storage/security.h"
#include "storage/storage_int.h"

#define READ_CHUNK (256u * 1024u)
#define READ_MIN (16u * 1024u) /* an idle connection's input buffer: most peers send little */
#define CREDIT_LIMIT ((uint64_t)1 << 62)

/* conn->tls_phase */
enum { CONN_TLS_NONE, CONN_TLS_SNIFF, CONN_TLS_HANDSHAKE, CONN_TLS_FAILED };

static void conn_update_interest(struct conn *c)
{
	if (c->dead)
		return;
	uint32_t ev = (c->reading ? SLI_READ : 0) | (c->want_write ? SLI_WRITE : 0);
	sli_loop_mod(c->st->loop, c->fd, ev);
}

/* Records why c closes, for its "connection closed" event; the first reason wins. */
static void conn_reason(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_reason(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	if (c->reason[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
}

static void conn_kill(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	sli_loop_del(c->st->loop, c->fd);
}

static void put_frame(struct conn *c, const sli_frame *f)
{
	if (sli_frame_encode(&c->out, f) != 0) {
		conn_reason(c, "out of memory");
		conn_kill(c); /* out of memory for one small frame: give this connection up */
		return;
	}
	c->frames_out++;
}

/* Queues an Error frame; a fatal one closes the connection once it is flushed. */
/* Formats an error message into msg[256] and returns it as a byte view (truncated to fit). */
#define ERRMSG_MAX 256
static sl_bytes format_message(char *msg, const char *fmt, va_list ap)
{
	int n = vsnprintf(msg, ERRMSG_MAX, fmt, ap);
	if (n < 0)
		n = 0;
	if (n >= ERRMSG_MAX)
		n = ERRMSG_MAX - 1;
	return (sl_bytes){(const uint8_t *)msg, (size_t)n};
}

static void queue_error(struct conn *c, int code, int fatal, const char *fmt, ...)
{
	char msg[ERRMSG_MAX];
	va_list ap;
	sli_frame f = {.type = SLI_ERROR};
	va_start(ap, fmt);
	f.u.error.message = format_message(msg, fmt, ap);
	va_end(ap);
	f.u.error.code = code;
	f.u.error.fatal = (uint8_t)(fatal != 0);
	put_frame(c, &f);
	sli_metrics_count_error(c->st, code);
	if (fatal) {
		conn_reason(c, "%s", msg);
		c->closing = 1;
		c->reading = 0;
	}
}

static void sub_error(struct conn *c, uint32_t handle, int code, const char *fmt, ...)
{
	char msg[ERRMSG_MAX];
	va_list ap;
	sli_frame f = {.type = SLI_SUBSCRIBE_ERROR};
	va_start(ap, fmt);
	f.u.subscribe_error.message = format_message(msg, fmt, ap);
	va_end(ap);
	f.u.subscribe_error.handle = handle;
	f.u.subscribe_error.code = code;
	put_frame(c, &f);
	sli_metrics_count_error(c->st, code);
	if (sli_elog_enabled(SLI_LOG_WARN)) {
		char id[24], h[16];
		snprintf(id, sizeof(id), "%" PRIu64, c->id);
		snprintf(h, sizeof(h), "%u", handle);
		sli_kv kv[] = {{"conn", id, 1}, {"peer", c->peer, 0}, {"handle", h, 1},
		               {"error", sl_strerror(code), 0}, {NULL, NULL, 0}};
		sli_elog(SLI_LOG_WARN, "subscribe_error", kv, "connection %s from %s: subscribe refused: %.*s",
		         id, c->peer, (int)f.u.subscribe_error.message.len, msg);
	}
}

static void append_error(struct conn *c, uint64_t batch, int code, const char *fmt, ...)
{
	char msg[ERRMSG_MAX];
	va_list ap;
	sli_frame f = {.type = SLI_APPEND_ERROR};
	va_start(ap, fmt);
	f.u.append_error.message = format_message(msg, fmt, ap);
	va_end(ap);
	f.u.append_error.batch = batch;
	f.u.append_error.code = code;
	put_frame(c, &f);
	sli_metrics_count_error(c->st, code);
}

static void sub_free(struct conn *c, struct sub *s)
{
	sli_sub_detach(s);
	sli_subtable_remove(&c->subs, s);
	free(s);
}

/* Subscribe/Unsubscribe churn (a "rapid reset" of subscriptions) is bounded by a token bucket
 * per connection; a client beyond it is told why and closed: 1 if the request may go on. */
static int rate_ok(struct conn *c)
{
	const sl_storage_config *cfg = &c->st->cfg;
	if (sli_rate_take(&c->sub_rate, cfg->subscribe_rate, cfg->subscribe_burst, sli_now_ms()) == 0)
		return 1;
	queue_error(c, SL_ELIMIT, 1, "more than %u Subscribe/Unsubscribe per second (burst %u): closing",
	            cfg->subscribe_rate, cfg->subscribe_burst);
	if (cfg->warn) {
		char msg[160];
		snprintf(msg, sizeof(msg), "closed a connection over the Subscribe/Unsubscribe rate limit "
		         "(%u/s, burst %u)", cfg->subscribe_rate, cfg->subscribe_burst);
		cfg->warn(cfg->warn_arg, msg);
	}
	return 0;
}

static void on_hello(struct conn *c, const sli_hello *h)
{
	if (h->fingerprint != 0 && c->st->cluster != NULL && h->fingerprint != c->st->fingerprint) {
		/* A process of a differently configured cluster: refuse to be mixed with it. */
		queue_error(c, SL_ECLUSTER, 1,
		            "cluster configuration differs: this process (%u of %u) has fingerprint %016llx, "
		            "yours is %016llx: check --cluster and --source on every process",
		            c->st->process, c->st->cluster_size, (unsigned long long)c->st->fingerprint,
		            (unsigned long long)h->fingerprint);
		if (c->st->cfg.warn) {
			char msg[256];
			snprintf(msg, sizeof(msg), "refused a peer with another cluster configuration "
			         "(fingerprint %016llx, ours %016llx)", (unsigned long long)h->fingerprint,
			         (unsigned long long)c->st->fingerprint);
			c->st->cfg.warn(c->st->cfg.warn_arg, msg);
		}
		return;
	}
	if (c->st->fenced) {
		queue_error(c, SL_EFENCED, 1,
		            "this storage process was superseded by %s (a promoted standby, term %llu): use it",
		            c->st->fenced_by, (unsigned long long)atomic_load(&c->st->term));
		return;
	}
	static const char name[] = "sluiced " "0.1";
	sli_frame f = {.type = SLI_HELLO};
	f.u.hello.magic = SLI_MAGIC;
	f.u.hello.version = SLI_PROTO_VERSION;
	f.u.hello.session = c->st->session;
	f.u.hello.epoch = c->st->epoch;
	f.u.hello.fingerprint = c->st->cluster ? c->st->fingerprint : 0;
	f.u.hello.name = (sl_bytes){(const uint8_t *)name, sizeof(name) - 1};
	put_frame(c, &f);
	c->hello_done = 1;
}

static void on_subscribe(struct conn *c, const sli_subscribe *r)
{
	if (!rate_ok(c))
		return;
	struct sl_source *src = sli_storage_find_source(c->st, r->source);
	if (src == NULL) {
		sub_error(c, r->handle, SL_ENOSOURCE, "no source with id %llu", (unsigned long long)r->source);
		return;
	}
	if (r->worker >= src->nworkers) {
		sub_error(c, r->handle, SL_ENOWORKER, "source %s has %u workers: worker %u is out of range",
		          src->name, src->nworkers, r->worker);
		return;
	}
	if (!sli_hosts(c->st, r->worker)) {
		uint32_t owner = r->worker % c->st->cluster_size;
		sub_error(c, r->handle, SL_EWRONGOWNER,
		          "worker %u of source %s is hosted by process %u at %s", r->worker, src->name,
		          owner, c->st->cluster[owner]);
		return;
	}
	if (sli_sub_by_handle(&c->subs, r->handle) != NULL) {
		sub_error(c, r->handle, SL_EDUPLICATE, "handle %u is already in use on this connection",
		          r->handle);
		return;
	}
	if (sli_sub_by_key(&c->subs, r->dataflow, r->source, r->worker) != NULL) {
		sub_error(c, r->handle, SL_EDUPLICATE,
		          "dataflow %llu already subscribes source %s worker %u on this connection",
		          (unsigned long long)r->dataflow, src->name, r->worker);
		return;
	}
	if (r->credit > CREDIT_LIMIT) {
		sub_error(c, r->handle, SL_ECREDIT, "initial credit %llu exceeds %llu",
		          (unsigned long long)r->credit, (unsigned long long)CREDIT_LIMIT);
		return;
	}
	if (c->subs.count >= c->st->cfg.max_subscriptions) {
		sub_error(c, r->handle, SL_ELIMIT, "at most %u subscriptions per connection",
		          c->st->cfg.max_subscriptions);
		return;
	}
	struct sub *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		sub_error(c, r->handle, SL_ENOMEM, "out of memory");
		return;
	}
	struct sworker *w = &src->w[r->worker];
	s->conn = c;
	s->w = w;
	s->handle = r->handle;
	s->dataflow = r->dataflow;
	s->from = r->from;
	s->credit = r->credit;
	s->cursor[0] = sli_log_start(w->log[0]);
	s->cursor[1] = sli_log_start(w->log[1]);
	uint8_t flags = 0;
	if (r->from < w->since) {
		/* History before `since` is consolidated: the snapshot at since comes first. */
		for (int coll = 0; coll < 2; coll++)
			s->snap[coll] = sli_snap_ref(w->snap[coll]);
		s->from = w->since;
		flags = SLI_SUBOK_SNAPSHOT;
	}
	if (sli_subtable_insert(&c->subs, s) != 0) {
		sli_snap_unref(s->snap[0]);
		sli_snap_unref(s->snap[1]);
		free(s);
		sub_error(c, r->handle, SL_ENOMEM, "out of memory");
		return;
	}
	s->wnext = w->subs;
	if (w->subs)
		w->subs->wprev = s;
	w->subs = s;
	sli_frame f = {.type = SLI_SUBSCRIBE_OK};
	f.u.subscribe_ok.handle = r->handle;
	f.u.subscribe_ok.since = w->since;
	f.u.subscribe_ok.upper = atomic_load(&w->upper);
	f.u.subscribe_ok.flags = flags;
	put_frame(c, &f);
	sli_serve_mark_ready(s);
	if (sli_elog_enabled(SLI_LOG_DEBUG)) {
		char id[24], h[16], wk[16], from[24];
		snprintf(id, sizeof(id), "%" PRIu64, c->id);
		snprintf(h, sizeof(h), "%u", r->handle);
		snprintf(wk, sizeof(wk), "%u", r->worker);
		snprintf(from, sizeof(from), "%" PRIu64, s->from);
		sli_kv kv[] = {{"conn", id, 1}, {"peer", c->peer, 0}, {"handle", h, 1}, {"source", src->name, 0},
		               {"worker", wk, 1}, {"from", from, 1}, {NULL, NULL, 0}};
		sli_elog(SLI_LOG_DEBUG, "subscribe", kv, "connection %s: handle %s subscribes source %s worker %s from %s",
		         id, h, src->name, wk, from);
	}
}

static void on_unsubscribe(struct conn *c, const sli_unsubscribe *r)
{
	if (!rate_ok(c))
		return;
	struct sub *s = sli_sub_by_key(&c->subs, r->dataflow, r->source, r->worker);
	if (s == NULL) {
		queue_error(c, SL_ENOTSUB, 0, "not subscribed: dataflow %llu source %llu worker %u",
		            (unsigned long long)r->dataflow, (unsigned long long)r->source, r->worker);
		return;
	}
	if (sli_elog_enabled(SLI_LOG_DEBUG)) {
		char id[24], h[16];
		snprintf(id, sizeof(id), "%" PRIu64, c->id);
		snprintf(h, sizeof(h), "%u", s->handle);
		sli_kv kv[] = {{"conn", id, 1}, {"peer", c->peer, 0}, {"handle", h, 1}, {NULL, NULL, 0}};
		sli_elog(SLI_LOG_DEBUG, "unsubscribe", kv, "connection %s: handle %s unsubscribes", id, h);
	}
	sli_frame f = {.type = SLI_UNSUBSCRIBE_OK};
	f.u.unsubscribe_ok.handle = s->handle;
	sub_free(c, s);
	put_frame(c, &f);
}

static void on_credit(struct conn *c, const sli_credit *r)
{
	struct sub *s = sli_sub_by_handle(&c->subs, r->handle);
	if (s == NULL) {
		queue_error(c, SL_EBADHANDLE, 0, "credit for unknown handle %u", r->handle);
		return;
	}
	if (r->bytes > CREDIT_LIMIT - s->credit) {
		queue_error(c, SL_ECREDIT, 0, "credit for handle %u would exceed %llu bytes", r->handle,
		            (unsigned long long)CREDIT_LIMIT);
		return;
	}
	s->credit += r->bytes;
	sli_serve_mark_ready(s);
}

static void stage_reset(struct conn *c)
{
	c->staging = 0;
	c->stage_failed = 0;
	c->stage_count = 0;
	if (c->stage.cap > (1u << 20))
		sli_buf_fini(&c->stage);
	c->stage.len = 0;
}

static void stage_fail(struct conn *c, int code, const char *what)
{
	append_error(c, c->stage_batch, code, "%s", what);
	c->stage_failed = 1;
	sli_buf_fini(&c->stage);
}

static void on_append(struct conn *c, const sli_append *r)
{
	char msg[160];
	if (c->staging && r->batch != c->stage_batch) {
		queue_error(c, SL_EPROTO, 1, "Append for batch %llu while batch %llu is open",
		            (unsigned long long)r->batch, (unsigned long long)c->stage_batch);
		return;
	}
	if (!c->staging) {
		c->staging = 1;
		c->stage_batch = r->batch;
		c->stage_source = r->source;
		struct sl_source *src = sli_storage_find_source(c->st, r->source);
		if (c->st->standby_of != NULL && !atomic_load(&c->st->promoted)) {
			snprintf(msg, sizeof(msg), "this is a standby of %s: promote it first with sluice "
			         "promote", c->st->standby_of);
			stage_fail(c, SL_EREJECTED, msg);
		} else if (src == NULL) {
			snprintf(msg, sizeof(msg), "no source with id %llu", (unsigned long long)r->source);
			stage_fail(c, SL_ENOSOURCE, msg);
		} else if (!(src->flags & SL_SOURCE_INGEST)) {
			snprintf(msg, sizeof(msg), "source %s is of kind %s, which does not accept ingest",
			         src->name, src->kind);
			stage_fail(c, SL_EKIND, msg);
		}
	}
	if (!c->stage_failed) {
		sl_bytes rest = r->updates;
		int64_t diff;
		sl_bytes row;
		for (uint32_t i = 0; i < r->count; i++) {
			sli_updates_next(&rest, &diff, &row);
			if (row.len > c->st->cfg.max_row) {
				snprintf(msg, sizeof(msg), "update %u: row of %zu bytes exceeds the limit of %u",
				         c->stage_count + i + 1, row.len, c->st->cfg.max_row);
				stage_fail(c, SL_ETOOBIG, msg);
				break;
			}
			struct sl_source *src = sli_storage_find_source(c->st, c->stage_source);
			uint32_t w = sl_ingest_route(row, src->nworkers);
			if (!sli_hosts(c->st, w)) {
				snprintf(msg, sizeof(msg), "update %u: its row goes to worker %u, hosted by "
				         "process %u at %s", c->stage_count + i + 1, w, w % c->st->cluster_size,
				         c->st->cluster[w % c->st->cluster_size]);
				stage_fail(c, SL_EWRONGOWNER, msg);
				break;
			}
		}
	}
	if (!c->stage_failed) {
		if (c->stage.len + r->updates.len > c->st->cfg.max_batch_bytes ||
		    (uint64_t)c->stage_count + r->count > UINT32_MAX) {
			snprintf(msg, sizeof(msg), "batch exceeds the limit of %llu bytes",
			         (unsigned long long)c->st->cfg.max_batch_bytes);
			stage_fail(c, SL_ETOOBIG, msg);
		} else if ((uint64_t)c->stage_count + r->count > c->st->cfg.max_batch_rows) {
			snprintf(msg, sizeof(msg), "batch exceeds the limit of %u updates",
			         c->st->cfg.max_batch_rows);
			stage_fail(c, SL_ETOOBIG, msg);
		} else if (sli_buf_reserve(&c->stage, r->updates.len) != 0) {
			stage_fail(c, SL_ENOMEM, "out of memory staging the batch");
		} else {
			memcpy(c->stage.ptr + c->stage.len, r->updates.ptr, r->updates.len);
			c->stage.len += r->updates.len;
			c->stage_count += r->count;
		}
	}
	if (r->flags & SLI_APPEND_LAST) {
		if (!c->stage_failed) {
			struct sl_source *src = sli_storage_find_source(c->st, c->stage_source);
			uint64_t t = 0;
			int rc = sli_ingest_commit(src, c->stage.ptr, c->stage.len, c->stage_count, &t);
			if (rc == 0) {
				sli_frame f = {.type = SLI_APPEND_OK};
				f.u.append_ok.batch = c->stage_batch;
				f.u.append_ok.time = t;
				put_frame(c, &f);
			} else {
				append_error(c, c->stage_batch, rc, "batch not committed: %s", sl_strerror(rc));
			}
		}
		stage_reset(c);
	}
}

static void on_frame(struct conn *c, const sli_frame *f)
{
	if (!c->hello_done) {
		/* Nothing but a valid Hello (with the token, when one is required) is acted on. */
		char msg[200];
		int rc = sli_hello_check(&c->st->sec->auth, f, msg, sizeof(msg));
		if (rc != 0)
			queue_error(c, rc, 1, "%s", msg);
		else
			on_hello(c, &f->u.hello);
		return;
	}
	switch (f->type) {
	case SLI_PING: {
		sli_frame p = {.type = SLI_PONG};
		p.u.ping.nonce = f->u.ping.nonce;
		put_frame(c, &p);
		break;
	}
	case SLI_PONG:
		break;
	case SLI_SUBSCRIBE:
		on_subscribe(c, &f->u.subscribe);
		break;
	case SLI_UNSUBSCRIBE:
		on_unsubscribe(c, &f->u.unsubscribe);
		break;
	case SLI_CREDIT:
		on_credit(c, &f->u.credit);
		break;
	case SLI_LIST_SOURCES:
		if (sli_encode_sources(c->st, &c->out) != 0)
			conn_kill(c);
		c->frames_out++;
		break;
	case SLI_CLUSTER_MAP:
		if (sli_encode_cluster(c->st, &c->out) != 0)
			conn_kill(c);
		c->frames_out++;
		break;
	case SLI_APPEND:
		on_append(c, &f->u.append);
		break;
	case SLI_STATS_REQUEST: {
		/* Rendered right here, on the network thread, so it is one consistent instant. */
		sli_buf text;
		sli_buf_init(&text);
		if (sli_metrics_render(c->st, &text) != 0) {
			queue_error(c, SL_ENOMEM, 0, "out of memory building the stats");
		} else if (text.len > c->st->cfg.max_frame - 64) {
			queue_error(c, SL_ETOOBIG, 0, "the stats (%zu bytes) exceed the frame limit: "
			            "scrape --metrics-listen instead", text.len);
		} else {
			sli_frame r = {.type = SLI_STATS};
			r.u.stats.text = (sl_bytes){text.ptr, text.len};
			put_frame(c, &r);
		}
		sli_buf_fini(&text);
		break;
	}
	case SLI_PROMOTE: {
		char err[200];
		uint64_t term = 0;
		int rc = sli_storage_promote(c->st, &term, err, sizeof(err));
		if (rc != 0) {
			queue_error(c, rc, 0, "%s", err);
		} else {
			sli_frame p = {.type = SLI_PROMOTED};
			p.u.promoted.term = term;
			put_frame(c, &p);
			/* From now on, fence the old primary whenever it comes back. */
			sli_fencer_start(c->st);
		}
		break;
	}
	case SLI_FENCE: {
		char by[256];
		snprintf(by, sizeof(by), "%.*s", (int)f->u.fence.by.len, (const char *)f->u.fence.by.ptr);
		if (f->u.fence.term <= atomic_load(&c->st->term)) {
			queue_error(c, SL_EREJECTED, 0, "fence of term %llu refused: this process is at term %llu",
			            (unsigned long long)f->u.fence.term,
			            (unsigned long long)atomic_load(&c->st->term));
			break;
		}
		int rc = sli_storage_fence(c->st, f->u.fence.term, by);
		if (rc != 0) {
			queue_error(c, rc, 0, "cannot record the fence: %s", sl_strerror(rc));
			break;
		}
		/* Every connection goes, this one with the reason. */
		for (struct conn *o = c->st->conns; o != NULL; o = o->next)
			if (!o->dead && !o->closing)
				queue_error(o, SL_EFENCED, 1, "superseded by %s (term %llu)", by,
				            (unsigned long long)f->u.fence.term);
		break;
	}
	case SLI_ERROR:
		if (f->u.error.fatal) {
			conn_reason(c, "the client sent a fatal error: %.*s", (int)f->u.error.message.len,
			            (const char *)f->u.error.message.ptr);
			conn_kill(c);
		}
		break;
	default:
		queue_error(c, SL_EPROTO, 1, "unexpected %s frame from a client", sli_frame_type_name(f->type));
		break;
	}
}

/* Whether this connection's unsent output is past the point where its requests stop being
 * read: a peer that asks faster than it reads its answers.  Checked before every frame, so the
 * output exceeds it by at most one answer. */
static int out_backed_up(const struct conn *c)
{
	return c->out.len - c->out_off > 4 * c->st->cfg.out_high_water;
}

/* Closes a connection whose output passed max_output (cannot happen with the checks above
 * unless one answer alone is that big): 1 if it did. */
static int out_over_limit(struct conn *c)
{
	if (c->out.len - c->out_off <= c->st->cfg.max_output)
		return 0;
	if (c->st->cfg.warn) {
		char msg[160];
		snprintf(msg, sizeof(msg), "closed a connection with %zu bytes of unsent output (limit %zu)",
		         c->out.len - c->out_off, c->st->cfg.max_output);
		c->st->cfg.warn(c->st->cfg.warn_arg, msg);
	}
	conn_kill(c);
	return 1;
}

/* Decodes and acts on every complete frame in c->in, unless output backs up first: then the
 * rest stays in c->in (in_pending) and reading stops until the output drains. */
static void conn_decode(struct conn *c)
{
	size_t max_frame = c->st->cfg.max_frame;
	size_t off = 0;
	c->in_pending = 0;
	while (!c->dead && !c->closing && off < c->in_len) {
		if (out_backed_up(c)) {
			c->in_pending = 1;
			break;
		}
		sli_frame f;
		ssize_t r = sli_frame_decode(c->in + off, c->in_len - off, (uint32_t)max_frame, &f);
		if (r == 0)
			break;
		if (r == SL_ETOOBIG) {
			queue_error(c, SL_ETOOBIG, 1, "frame length %u exceeds the maximum of %zu",
			            sli_get_u32(c->in + off), max_frame);
			break;
		}
		if (r < 0) {
			uint8_t type = c->in[off + 4];
			if (sli_frame_type_name(type)[0] == 'u') /* "unknown" */
				queue_error(c, SL_EPROTO, 1, "unknown frame type 0x%02x", type);
			else
				queue_error(c, SL_EPROTO, 1, "malformed %s frame", sli_frame_type_name(type));
			break;
		}
		c->frames_in++;
		on_frame(c, &f);
		off += (size_t)r;
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	if (c->in_len == 0 && c->in_cap > 4 * READ_MIN) {
		/* A burst (a big Append) is over: an idle connection keeps no big buffer. */
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
	if (c->dead || out_over_limit(c))
		return;
	/* Backpressure: a peer that asks faster than it reads stops being read. */
	if (out_backed_up(c) && !c->closing) {
		c->reading = 0;
		c->want_write = 1;
		conn_update_interest(c);
	}
}

static void conn_read(struct conn *c)
{
	size_t max_frame = c->st->cfg.max_frame;
	for (int rounds = 0; rounds < 16 && c->reading && !c->dead; rounds++) {
		if (c->in_cap - c->in_len < c->in_cap / 4 || c->in_cap == 0) {
			size_t cap = c->in_cap ? c->in_cap * 2 : READ_MIN;
			if (cap > max_frame + SLI_FRAME_HDR + READ_CHUNK)
				cap = max_frame + SLI_FRAME_HDR + READ_CHUNK;
			if (cap <= c->in_cap) {
				if (c->in_cap == c->in_len)
					break; /* cannot happen: a full frame always fits and is consumed */
			} else {
				uint8_t *p = realloc(c->in, cap);
				if (p == NULL) {
					conn_reason(c, "out of memory");
					conn_kill(c);
					return;
				}
				c->in = p;
				c->in_cap = cap;
			}
		}
		ssize_t n = sli_io_read(c->fd, c->ssl, c->in + c->in_len, c->in_cap - c->in_len);
		if (n == 0) {
			conn_reason(c, "closed by the client");
			conn_kill(c); /* peer closed, possibly mid-frame: nothing of it was acted on */
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				conn_reason(c, "read error: %s", sl_strerror(-errno));
				conn_kill(c);
			}
			return;
		}
		c->in_len += (size_t)n;
		c->bytes_in += (uint64_t)n;
		c->last_rx_ms = sli_now_ms();
		if (!c->hello_done && c->ssl == NULL && c->in[0] == SLI_TLS_HANDSHAKE_BYTE &&
		    (c->in_len < 2 || c->in[1] == 0x03)) {
			/* A TLS ClientHello on a plaintext listener: say so at once, rather than wait
			 * for the body its first bytes would announce as a frame length. */
			queue_error(c, SL_ETLS, 1, "this server does not use TLS (no --tls-cert): "
			            "connect without --tls-ca");
			return;
		}
		conn_decode(c);
	}
}

/* Input that backpressure left undecoded is decoded once the output has drained; its answers
 * leave at the next write readiness. */
static void conn_resume(struct conn *c)
{
	if (!c->in_pending || !c->reading || c->dead || c->closing)
		return;
	conn_decode(c);
	if (!c->dead && c->out.len > c->out_off && !c->want_write) {
		c->want_write = 1;
		conn_update_interest(c);
	}
}

int sli_conn_flush(struct conn *c)
{
	while (c->out_off < c->out.len && !c->dead) {
		ssize_t n = sli_io_send(c->fd, c->ssl, c->out.ptr + c->out_off, c->out.len - c->out_off);
		if (n > 0) {
			/* Advance an offset rather than moving the unsent rest down after every
			 * partial send; the buffer is reset once it is all out. */
			c->out_off += (size_t)n;
			c->bytes_out += (uint64_t)n;
			if (c->out_off == c->out.len)
				c->out_off = c->out.len = 0;
			c->last_tx_ms = sli_now_ms();
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (c->out_off > 0) { /* once per full socket, not per send */
				sli_buf_consume(&c->out, c->out_off);
				c->out_off = 0;
			}
			if (!c->want_write) {
				c->want_write = 1;
				conn_update_interest(c);
			}
			return 0;
		}
		conn_reason(c, "write error: %s", sl_strerror(-errno));
		conn_kill(c);
		return -1;
	}
	if (c->dead)
		return -1;
	int changed = 0;
	if (c->want_write) {
		c->want_write = 0;
		changed = 1;
	}
	if (!c->reading && !c->closing) {
		c->reading = 1;
		changed = 1;
	}
	if (changed)
		conn_update_interest(c);
	/* A big one-off buffer (a long sources list) is not kept for the connection's life. */
	if (c->out.cap > 8 * c->st->cfg.out_high_water)
		sli_buf_fini(&c->out);
	return 0;
}

/* A TLS listener's connection before its handshake is done: the first byte tells a TLS
 * ClientHello (0x16) from a plaintext sluice Hello, which is answered with a plaintext Error. */
static void conn_tls_io(struct conn *c, uint32_t events)
{
	char err[256];
	if (c->tls_phase == CONN_TLS_FAILED) {
		/* Lingering: what the client still sends is dropped until it closes, so that our
		 * close does not reset the connection before it has read OpenSSL's alert. */
		uint8_t junk[4096];
		ssize_t n;
		while ((n = recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT)) > 0)
			;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			conn_kill(c);
		return;
	}
	if (c->tls_phase == CONN_TLS_SNIFF) {
		uint8_t b;
		ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0) {
			conn_kill(c);
			return;
		}
		if (b != SLI_TLS_HANDSHAKE_BYTE) {
			/* Take in what the client sent (its Hello), so that closing does not reset
			 * the connection before the client has read why. */
			uint8_t junk[4096];
			while (recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
				;
			c->tls_phase = CONN_TLS_NONE;
			queue_error(c, SL_ETLS, 1, "this server requires TLS: connect with --tls-ca");
			return;
		}
		if ((c->ssl = sli_tls_new(c->st->sec->server, c->fd, 1, NULL)) == NULL) {
			conn_kill(c);
			return;
		}
		c->tls_phase = CONN_TLS_HANDSHAKE;
	}
	int r = sli_tls_handshake(c->ssl, err, sizeof(err));
	if (r < 0) {
		/* No sluice frame can reach a peer that failed the handshake (OpenSSL sent it an
		 * alert): close our side, drain theirs until they close or the deadline passes.
		 * The operator hears of it, at most once a second (a scanner cannot flood the log). */
		uint64_t now = sli_now_ms();
		if (c->st->cfg.warn && now - c->st->sec->warned_ms >= 1000) {
			char msg[320];
			c->st->sec->warned_ms = now;
			snprintf(msg, sizeof(msg), "TLS handshake with a client failed: %s", err);
			c->st->cfg.warn(c->st->cfg.warn_arg, msg);
		}
		shutdown(c->fd, SHUT_WR);
		c->tls_phase = CONN_TLS_FAILED;
		c->reading = 1;
		c->want_write = 0;
		sli_loop_mod(c->st->loop, c->fd, SLI_READ);
		return;
	}
	if (r > 0) {
		c->want_write = r == SLI_WRITE;
		c->reading = r == SLI_READ;
		sli_loop_mod(c->st->loop, c->fd, r == SLI_WRITE ? SLI_WRITE : SLI_READ);
		return;
	}
	c->tls_phase = CONN_TLS_NONE;
	c->reading = 1;
	c->want_write = 0;
	conn_update_interest(c);
	conn_read(c); /* the client's Hello may have come with its last handshake flight */
}

void sli_conn_read_pending(sl_storage *st)
{
	for (struct conn *c = st->conns; c != NULL; c = c->next)
		if (c->ssl != NULL && c->tls_phase == CONN_TLS_NONE && c->reading && !c->dead &&
		    !c->closing && SSL_pending(c->ssl) > 0)
			conn_read(c);
}

static void conn_io(sli_loop *l, int fd, uint32_t events, void *arg)
{
	struct conn *c = arg;
	if (c->tls_phase != CONN_TLS_NONE) {
		if (events & SLI_HUP && !(events & SLI_READ))
			conn_kill(c);
		else
			conn_tls_io(c, events);
		return;
	}
	if (events & SLI_WRITE) {
		sli_conn_flush(c);
		sli_serve_conn(c);
		conn_resume(c);
	}
	if ((events & SLI_READ) && c->reading)
		conn_read(c);
	else if (events & SLI_HUP) {
		conn_reason(c, "hang-up");
		conn_kill(c);
	}
}

static void conn_name_peer(struct conn *c)
{
	struct sockaddr_in sa = {0};
	socklen_t len = sizeof(sa);
	char ip[INET_ADDRSTRLEN];
	if (getpeername(c->fd, (struct sockaddr *)&sa, &len) != 0 || sa.sin_family != AF_INET ||
	    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip)) == NULL)
		snprintf(c->peer, sizeof(c->peer), "unknown");
	else
		snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, (unsigned)ntohs(sa.sin_port));
}

/* The connection's end: its counts go to the runtime's totals, and its event is logged. */
static void conn_closed(struct conn *c)
{
	struct sli_metrics *m = &c->st->metrics;
	m->bytes_in += c->bytes_in;
	m->bytes_out += c->bytes_out;
	m->frames_in += c->frames_in;
	m->frames_out += c->frames_out;
	if (sli_elog_enabled(SLI_LOG_INFO)) {
		char id[24], bin[24], bout[24];
		const char *why = c->reason[0] ? c->reason : "closed by the server";
		snprintf(id, sizeof(id), "%" PRIu64, c->id);
		snprintf(bin, sizeof(bin), "%" PRIu64, c->bytes_in);
		snprintf(bout, sizeof(bout), "%" PRIu64, c->bytes_out);
		sli_kv kv[] = {{"conn", id, 1},           {"peer", c->peer, 0}, {"reason", why, 0},
		               {"bytes_in", bin, 1}, {"bytes_out", bout, 1}, {NULL, NULL, 0}};
		sli_elog(SLI_LOG_INFO, "conn_close", kv, "connection %s from %s closed: %s", id, c->peer,
		         why);
	}
}

void sli_conn_accept(sli_loop *l, int lfd, uint32_t events, void *arg)
{
	sl_storage *st = arg;
	for (int i = 0; i < 64; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* The pending connection stays readable: without a pause this would spin.
				 * Accepting resumes at the next tick (sli_conn_tick). */
				sli_loop_mod(l, lfd, 0);
				st->accept_paused = 1;
			}
			return;
		}
		if (st->nconns >= st->cfg.max_connections) {
			sli_limits_refuse(st, fd);
			continue;
		}
		sli_set_nodelay(fd);
		struct conn *c = calloc(1, sizeof(*c));
		if (c == NULL || sli_subtable_init(&c->subs) != 0) {
			free(c);
			close(fd);
			continue;
		}
		c->st = st;
		c->fd = fd;
		c->reading = 1;
		c->last_rx_ms = c->last_tx_ms = c->accepted_ms = sli_now_ms();
		c->tls_phase = st->sec->server != NULL ? CONN_TLS_SNIFF : CONN_TLS_NONE;
		sli_rate_init(&c->sub_rate, st->cfg.subscribe_burst, c->accepted_ms);
		sli_buf_init(&c->out);
		sli_buf_init(&c->stage);
		if (sli_loop_add(l, fd, SLI_READ, conn_io, c) != 0) {
			sli_subtable_fini(&c->subs);
			free(c);
			close(fd);
			continue;
		}
		c->next = st->conns;
		if (st->conns)
			st->conns->prev = c;
		st->conns = c;
		st->nconns++;
		c->id = ++st->metrics.conn_seq;
		conn_name_peer(c);
		if (sli_elog_enabled(SLI_LOG_INFO)) {
			char id[24];
			snprintf(id, sizeof(id), "%" PRIu64, c->id);
			sli_kv kv[] = {{"conn", id, 1}, {"peer", c->peer, 0}, {NULL, NULL, 0}};
			sli_elog(SLI_LOG_INFO, "conn_open", kv, "connection %s opened from %s", id, c->peer);
		}
	}
}

void sli_conn_free(struct conn *c)
{
	conn_reason(c, "the server is shutting down");
	conn_closed(c);
	for (size_t i = 0; i < c->subs.nbuckets; i++) {
		struct sub *s = c->subs.by_handle[i], *next;
		for (; s; s = next) {
			next = s->hnext;
			sli_sub_detach(s);
			free(s);
		}
	}
	sli_subtable_fini(&c->subs);
	if (!c->dead)
		sli_loop_del(c->st->loop, c->fd);
	sli_tls_free(c->ssl);
	close(c->fd);
	free(c->in);
	sli_buf_fini(&c->out);
	sli_buf_fini(&c->stage);
	free(c);
}

void sli_conn_tick(sl_storage *st)
{
	uint64_t now = sli_now_ms();
	if (st->accept_paused) {
		st->accept_paused = 0;
		sli_loop_mod(st->loop, st->listen_fd, SLI_READ);
	}
	for (struct conn *c = st->conns; c != NULL; c = c->next) {
		if (c->dead || c->closing)
			continue;
		if (out_over_limit(c))
			continue;
		if (!c->hello_done && now - c->accepted_ms > st->cfg.handshake_timeout_ms) {
			/* Counted from accept, whatever trickles in: a byte a second does not hold a
			 * connection open before it has said who it is.  Mid-TLS-handshake no frame can
			 * be sent: the connection just closes. */
			if (c->tls_phase != CONN_TLS_NONE)
				conn_kill(c);
			else
				queue_error(c, SL_ETIMEDOUT, 1, "no valid Hello within %u ms",
				            st->cfg.handshake_timeout_ms);
			continue;
		}
		if (now - c->last_rx_ms > st->cfg.idle_timeout_ms) {
			queue_error(c, SL_EIDLE, 1, "no traffic from the client for %u ms", st->cfg.idle_timeout_ms);
			continue;
		}
		/* Ping when nothing was sent for a heartbeat, and also when nothing was received: a
		 * client that only receives a slow stream (no Credit due yet, and no Ping of its own,
		 * since it keeps hearing from us) must be asked, or the idle timeout would drop it. */
		if (c->hello_done && now - c->last_ping_ms >= st->cfg.heartbeat_ms &&
		    ((now - c->last_tx_ms >= st->cfg.heartbeat_ms && c->out.len == c->out_off) ||
		     now - c->last_rx_ms >= st->cfg.heartbeat_ms)) {
			sli_frame f = {.type = SLI_PING};
			f.u.ping.nonce = ++c->ping_nonce;
			put_frame(c, &f);
			c->last_ping_ms = now;
		}
	}
}

void sli_conn_flush_all(sl_storage *st)
{
	for (struct conn *c = st->conns; c != NULL; c = c->next) {
		if (!c->dead && c->out.len > c->out_off && !c->want_write)
			sli_conn_flush(c);
		conn_resume(c);
	}
}

void sli_conn_sweep(sl_storage *st)
{
	struct conn *c = st->conns, *next;
	for (; c != NULL; c = next) {
		next = c->next;
		if (c->closing && !c->dead) {
			sli_conn_flush(c); /* best effort: the Error frame says why */
			conn_kill(c);
		}
		if (!c->dead)
			continue;
		if (c->prev)
			c->prev->next = c->next;
		else
			st->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		st->nconns--;
		sli_conn_free(c);
	}
}
