/*
 * conn_append.c - a connection's ingest: staging the Append frames of one batch (checked
 * against the standby role, the source's kind, the limits and the rows' owners) and committing
 * the batch at its last frame.  Network thread only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "storage/conn.h"
#include "storage/storage_int.h"

static void append_error(struct conn *c, uint64_t batch, int code, const char *fmt, ...)
{
	char msg[ERRMSG_MAX];
	va_list ap;
	sli_frame f = {.type = SLI_APPEND_ERROR};
	va_start(ap, fmt);
	f.u.append_error.message = sli_conn_format_message(msg, fmt, ap);
	va_end(ap);
	f.u.append_error.batch = batch;
	f.u.append_error.code = code;
	sli_conn_put_frame(c, &f);
	sli_metrics_count_error(c->st, code);
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

void sli_conn_on_append(struct conn *c, const sli_append *r)
{
	char msg[160];
	if (c->staging && r->batch != c->stage_batch) {
		sli_conn_error(c, SL_EPROTO, 1, "Append for batch %llu while batch %llu is open",
		            (unsigned long long)r->batch, (unsigned long long)c->stage_batch);
		return;
	}
	if (!c->staging) {
		c->staging = 1;
		c->stage_batch = r->batch;
		c->stage_source = r->source;
		struct sl_source *src = sli_storage_find_source(c->st, r->source);
		int rc;
		if (c->st->standby_of != NULL && !atomic_load(&c->st->promoted) && !c->st->cfg.coordinated) {
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
		} else if ((rc = sli_repl_may_ingest(c->st, msg, sizeof(msg))) != 0) {
			stage_fail(c, rc, msg);
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
				/* AppendOk once the batch is durable on the copies replication asks for */
				if (sli_repl_ack(c, src, c->stage_batch, t) != 0)
					sli_conn_error(c, SL_ENOMEM, 1, "out of memory keeping an acknowledgement");
			} else {
				append_error(c, c->stage_batch, rc, "batch not committed: %s", sl_strerror(rc));
			}
		}
		stage_reset(c);
	}
}
