/*
 * conn_subs.c - a connection's subscription requests: Subscribe (checked, then put on its
 * worker's subscriber list and the connection's ready ring), Unsubscribe and Credit, with the
 * rate limit on Subscribe/Unsubscribe churn.  Network thread only.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "storage/conn.h"
#include "storage/storage_int.h"

#define CREDIT_LIMIT ((uint64_t)1 << 62)

static void sub_error(struct conn *c, uint32_t handle, int code, const char *fmt, ...)
{
	char msg[ERRMSG_MAX];
	va_list ap;
	sli_frame f = {.type = SLI_SUBSCRIBE_ERROR};
	va_start(ap, fmt);
	f.u.subscribe_error.message = sli_conn_format_message(msg, fmt, ap);
	va_end(ap);
	f.u.subscribe_error.handle = handle;
	f.u.subscribe_error.code = code;
	sli_conn_put_frame(c, &f);
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
	sli_conn_error(c, SL_ELIMIT, 1, "more than %u Subscribe/Unsubscribe per second (burst %u): closing",
	            cfg->subscribe_rate, cfg->subscribe_burst);
	if (cfg->warn) {
		char msg[160];
		snprintf(msg, sizeof(msg), "closed a connection over the Subscribe/Unsubscribe rate limit "
		         "(%u/s, burst %u)", cfg->subscribe_rate, cfg->subscribe_burst);
		cfg->warn(cfg->warn_arg, msg);
	}
	return 0;
}

void sli_conn_on_subscribe(struct conn *c, const sli_subscribe *r)
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
	f.u.subscribe_ok.upper = c->replica ? atomic_load(&w->upper) : sli_worker_published(c->st, w);
	f.u.subscribe_ok.flags = flags;
	sli_conn_put_frame(c, &f);
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

void sli_conn_on_unsubscribe(struct conn *c, const sli_unsubscribe *r)
{
	if (!rate_ok(c))
		return;
	struct sub *s = sli_sub_by_key(&c->subs, r->dataflow, r->source, r->worker);
	if (s == NULL) {
		sli_conn_error(c, SL_ENOTSUB, 0, "not subscribed: dataflow %llu source %llu worker %u",
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
	sli_conn_put_frame(c, &f);
}

void sli_conn_on_credit(struct conn *c, const sli_credit *r)
{
	struct sub *s = sli_sub_by_handle(&c->subs, r->handle);
	if (s == NULL) {
		sli_conn_error(c, SL_EBADHANDLE, 0, "credit for unknown handle %u", r->handle);
		return;
	}
	if (r->bytes > CREDIT_LIMIT - s->credit) {
		sli_conn_error(c, SL_ECREDIT, 0, "credit for handle %u would exceed %llu bytes", r->handle,
		            (unsigned long long)CREDIT_LIMIT);
		return;
	}
	s->credit += r->bytes;
	sli_serve_mark_ready(s);
}
