/*
 * input.c - the receive path: reading a connection's socket, parsing the frames in its read
 * buffer and dispatching each one (Data into queue items, answers to their requests, control
 * frames to the files they concern).
 *
 * Hot path: one read() fills a large buffer with many frames; each Data frame's events are copied
 * once into one queue item; nothing here touches individual updates.  The frame dispatch and the
 * Data handling are in this one file (static, so the compiler may inline them into the parse
 * loop); the handle lookup is inline (conn.h).
 *
 * Runtime thread only.  Reading fills the connection's rbuf (growing it for a large frame) and
 * stamps last_rx; failover.c empties it with the socket.
 */
#include "compute/conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls.h"

static void on_data(sli_conn *k, const sli_data *d)
{
	sli_csub *s = sli_handle_get(k, d->handle);
	if (s == NULL || (s->rstate != SLI_R_SUBSCRIBING && s->rstate != SLI_R_LIVE))
		return; /* unsubscribed by its worker: dropped */
	sli_replay *r = &s->rp[d->collection == SL_OK ? SL_OK : SL_ERR];
	int clean = sli_replay_clean(r);
	size_t len = d->events.len;
	sli_qitem *it = sli_qitem_new(SLI_QI_DATA, s, clean ? len : sli_replay_bound(r, d->events));
	if (it == NULL) {
		sli_conn_lost(k, SL_ENOMEM, "out of memory queueing a Data frame");
		return;
	}
	int rc;
	if (clean) {
		rc = sli_replay_pass(r, d->events);
		memcpy(it->data, d->events.ptr, len);
	} else {
		/* a resumed stream: drop what the worker already has */
		rc = sli_replay_filter(r, d->events, it->data, &len);
	}
	if (rc != 0) {
		free(it);
		sli_conn_lost(k, rc, "out of memory accounting a Data frame");
		return;
	}
	if (len < d->events.len) {
		/* the worker never sees (so never grants) what was dropped: grant it here */
		sli_frame f = {.type = SLI_CREDIT};
		f.u.credit = (sli_credit){.handle = s->handle, .bytes = d->events.len - len};
		sli_send_frame(k, &f);
	}
	if (len == 0) {
		free(it);
		return;
	}
	it->len = len;
	it->collection = d->collection;
	it->gen = s->gen;
	sli_queue_push(s->q, it);
}

static void on_frame(sli_conn *k, const sli_frame *f)
{
	sl_client *c = k->c;
	sli_csub *s;
	switch (f->type) {
	case SLI_DATA:
		on_data(k, &f->u.data);
		break;
	case SLI_PING: {
		sli_frame pong = {.type = SLI_PONG};
		pong.u.ping.nonce = f->u.ping.nonce;
		sli_send_frame(k, &pong);
		break;
	}
	case SLI_PONG:
		break;
	case SLI_SUBSCRIBE_OK:
		s = sli_handle_get(k, f->u.subscribe_ok.handle);
		if (s && s->rstate == SLI_R_SUBSCRIBING) {
			const sli_subscribe_ok *ok = &f->u.subscribe_ok;
			sli_qitem *it = NULL;
			s->rstate = SLI_R_LIVE;
			if (!s->acked) {
				it = sli_qitem_new(SLI_QI_SUBSCRIBED, s, 0);
			} else if (ok->flags & SLI_SUBOK_SNAPSHOT) {
				/* the history the worker had is compacted away: it gets a consolidated
				 * snapshot instead, nothing of which is a duplicate */
				it = sli_qitem_new(SLI_QI_RESNAPSHOT, s, 0);
				sli_replay_forget(&s->rp[SL_OK]);
				sli_replay_forget(&s->rp[SL_ERR]);
			} else {
				break; /* resumed: the worker had its SUBSCRIBED */
			}
			s->acked = 1;
			if (it == NULL) {
				sli_conn_lost(k, SL_ENOMEM, "out of memory");
				return;
			}
			it->since = ok->since;
			it->upper = ok->upper;
			sli_queue_push(s->q, it);
		}
		break;
	case SLI_SUBSCRIBE_ERROR:
		s = sli_handle_get(k, f->u.subscribe_error.handle);
		if (s == NULL)
			break;
		if (s->rstate == SLI_R_SUBSCRIBING) {
			const sli_subscribe_error *e = &f->u.subscribe_error;
			sli_qitem *it = sli_msg_item(SLI_QI_SUBERR, s, e->code, (const char *)e->message.ptr,
			                         e->message.len);
			if (it)
				sli_queue_push(s->q, it);
		}
		sli_release(c, s);
		break;
	case SLI_UNSUBSCRIBE_OK:
		s = sli_handle_get(k, f->u.unsubscribe_ok.handle);
		if (s)
			sli_release(c, s);
		break;
	case SLI_ERROR:
		/* Non-fatal errors answer requests that have no error reply of their own (an
		 * Unsubscribe racing with a SubscribeError, a Credit for a handle storage just
		 * dropped): nothing to do. */
		if (f->u.error.fatal)
			sli_conn_lost(k, f->u.error.code ? f->u.error.code : SL_EDISCONNECTED, "%.*s",
			          (int)f->u.error.message.len, (const char *)f->u.error.message.ptr);
		break;
	case SLI_SOURCES:
		sli_on_sources(k, &f->u.sources);
		break;
	case SLI_WATERMARK:
		/* only a replica link's subscriptions get it (src/replica) */
		s = sli_handle_get(k, f->u.watermark.handle);
		if (s && s->rstate == SLI_R_LIVE) {
			sli_qitem *it = sli_qitem_new(SLI_QI_WATERMARK, s, 0);
			if (it == NULL) {
				sli_conn_lost(k, SL_ENOMEM, "out of memory");
				return;
			}
			it->upper = f->u.watermark.hw;
			sli_queue_push(s->q, it);
		}
		break;
	case SLI_CLUSTER:
		sli_on_cluster(k, &f->u.cluster);
		break;
	case SLI_APPEND_OK:
		sli_on_append_answer(k, f->u.append_ok.batch, 0, f->u.append_ok.time, (sl_bytes){0});
		break;
	case SLI_APPEND_ERROR:
		sli_on_append_answer(k, f->u.append_error.batch,
		                 f->u.append_error.code ? f->u.append_error.code : SL_EREJECTED, 0,
		                 f->u.append_error.message);
		break;
	default:
		sli_conn_lost(k, SL_EPROTO, "unexpected %s frame from storage", sli_frame_type_name(f->type));
		break;
	}
}

/* Parses every complete frame in rbuf and keeps the partial tail.  Grows rbuf (up to one
 * max-size frame) when the frame at the head does not fit. */
void sli_parse_frames(sli_conn *k)
{
	sl_client *c = k->c;
	size_t off = 0;
	ssize_t r;
	sli_frame f;
	while (k->connected &&
	       (r = sli_frame_decode(k->rbuf + off, k->rlen - off, c->cfg.max_frame, &f)) > 0) {
		off += (size_t)r;
		on_frame(k, &f);
	}
	if (!k->connected)
		return;
	if (r < 0) {
		sli_conn_lost(k, (int)r, "malformed frame from storage: %s", sl_strerror((int)r));
		return;
	}
	if (off > 0) {
		memmove(k->rbuf, k->rbuf + off, k->rlen - off);
		k->rlen -= off;
	}
	if (k->rlen >= 4) {
		size_t need = (size_t)sli_get_u32(k->rbuf) + 4;
		if (need > k->rcap) {
			uint8_t *nb = realloc(k->rbuf, need);
			if (nb == NULL) {
				sli_conn_lost(k, SL_ENOMEM, "out of memory for a %zu-byte frame", need);
				return;
			}
			k->rbuf = nb;
			k->rcap = need;
		}
	}
}

void sli_client_read(sli_conn *k, int fd)
{
	/* A short read means the socket is drained; a full one that there may be more. */
	while (k->connected) {
		size_t room = k->rcap - k->rlen;
		ssize_t n = sli_io_read(fd, k->ssl, k->rbuf + k->rlen, room);
		if (n > 0) {
			k->rlen += (size_t)n;
			k->last_rx = sli_now_ms();
			sli_parse_frames(k);
			if ((size_t)n < room)
				return;
			continue;
		}
		if (n == 0) {
			sli_conn_lost(k, SL_EDISCONNECTED, "storage closed the connection");
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			sli_conn_lost(k, -errno, "read from storage failed: %s", strerror(errno));
		return;
	}
}
