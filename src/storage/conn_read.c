/*
 * conn_read.c - a connection's input: reading the socket, decoding frames (stopping while the
 * output backs up), and dispatching each frame to what answers it.  Network thread only.
 *
 * A misbehaving peer costs only its own connection: a malformed frame gets a fatal Error and
 * the connection closes after it; a request that fails gets an error answer and the connection
 * goes on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/sock.h"
#include "net/tls.h"
#include "storage/conn.h"
#include "storage/storage_int.h"

#define READ_CHUNK (256u * 1024u)
#define READ_MIN (16u * 1024u) /* an idle connection's input buffer: most peers send little */

static void on_frame(struct conn *c, const sli_frame *f)
{
	if (!c->hello_done) {
		sli_conn_first_frame(c, f);
		return;
	}
	switch (f->type) {
	case SLI_PING: {
		sli_frame p = {.type = SLI_PONG};
		p.u.ping.nonce = f->u.ping.nonce;
		sli_conn_put_frame(c, &p);
		break;
	}
	case SLI_PONG:
		break;
	case SLI_SUBSCRIBE:
		sli_conn_on_subscribe(c, &f->u.subscribe);
		break;
	case SLI_UNSUBSCRIBE:
		sli_conn_on_unsubscribe(c, &f->u.unsubscribe);
		break;
	case SLI_CREDIT:
		sli_conn_on_credit(c, &f->u.credit);
		break;
	case SLI_LIST_SOURCES:
		if (sli_encode_sources(c->st, &c->out) != 0)
			sli_conn_kill(c);
		c->frames_out++;
		break;
	case SLI_CLUSTER_MAP:
		if (sli_encode_cluster(c->st, &c->out) != 0)
			sli_conn_kill(c);
		c->frames_out++;
		break;
	case SLI_APPEND:
		sli_conn_on_append(c, &f->u.append);
		break;
	case SLI_REPLICA:
		sli_repl_on_replica(c, f->u.replica.member);
		break;
	case SLI_REPLICA_ACK:
		sli_repl_on_ack(c, &f->u.replica_ack);
		break;
	case SLI_STATS_REQUEST: {
		/* Rendered right here, on the network thread, so it is one consistent instant. */
		sli_buf text;
		sli_buf_init(&text);
		if (sli_metrics_render(c->st, &text) != 0) {
			sli_conn_error(c, SL_ENOMEM, 0, "out of memory building the stats");
		} else if (text.len > c->st->cfg.max_frame - 64) {
			sli_conn_error(c, SL_ETOOBIG, 0, "the stats (%zu bytes) exceed the frame limit: "
			            "scrape --metrics-listen instead", text.len);
		} else {
			sli_frame r = {.type = SLI_STATS};
			r.u.stats.text = (sl_bytes){text.ptr, text.len};
			sli_conn_put_frame(c, &r);
		}
		sli_buf_fini(&text);
		break;
	}
	case SLI_PROMOTE: {
		char err[200];
		uint64_t term = 0;
		if (c->st->cfg.coordinated) {
			sli_switchover_request(c); /* answered once this process leads */
			break;
		}
		int rc = sli_storage_promote(c->st, &term, err, sizeof(err));
		if (rc != 0) {
			sli_conn_error(c, rc, 0, "%s", err);
		} else {
			sli_frame p = {.type = SLI_PROMOTED};
			p.u.promoted.term = term;
			sli_conn_put_frame(c, &p);
			/* From now on, fence the old primary whenever it comes back. */
			sli_fencer_start(c->st);
		}
		break;
	}
	case SLI_FENCE: {
		char by[256];
		snprintf(by, sizeof(by), "%.*s", (int)f->u.fence.by.len, (const char *)f->u.fence.by.ptr);
		if (f->u.fence.term <= atomic_load(&c->st->term)) {
			sli_conn_error(c, SL_EREJECTED, 0, "fence of term %llu refused: this process is at term %llu",
			            (unsigned long long)f->u.fence.term,
			            (unsigned long long)atomic_load(&c->st->term));
			break;
		}
		int rc = sli_storage_fence(c->st, f->u.fence.term, by);
		if (rc != 0) {
			sli_conn_error(c, rc, 0, "cannot record the fence: %s", sl_strerror(rc));
			break;
		}
		/* Every connection goes, this one with the reason. */
		for (struct conn *o = c->st->conns; o != NULL; o = o->next)
			if (!o->dead && !o->closing)
				sli_conn_error(o, SL_EFENCED, 1, "superseded by %s (term %llu)", by,
				            (unsigned long long)f->u.fence.term);
		break;
	}
	case SLI_ERROR:
		if (f->u.error.fatal) {
			sli_conn_reason(c, "the client sent a fatal error: %.*s", (int)f->u.error.message.len,
			            (const char *)f->u.error.message.ptr);
			sli_conn_kill(c);
		}
		break;
	default:
		sli_conn_error(c, SL_EPROTO, 1, "unexpected %s frame from a client", sli_frame_type_name(f->type));
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
			sli_conn_error(c, SL_ETOOBIG, 1, "frame length %u exceeds the maximum of %zu",
			            sli_get_u32(c->in + off), max_frame);
			break;
		}
		if (r < 0) {
			uint8_t type = c->in[off + 4];
			if (sli_frame_type_name(type)[0] == 'u') /* "unknown" */
				sli_conn_error(c, SL_EPROTO, 1, "unknown frame type 0x%02x", type);
			else
				sli_conn_error(c, SL_EPROTO, 1, "malformed %s frame", sli_frame_type_name(type));
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
	if (c->dead || sli_conn_out_over_limit(c))
		return;
	/* Backpressure: a peer that asks faster than it reads stops being read. */
	if (out_backed_up(c) && !c->closing) {
		c->reading = 0;
		c->want_write = 1;
		sli_conn_update_interest(c);
	}
}

void sli_conn_read(struct conn *c)
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
					sli_conn_reason(c, "out of memory");
					sli_conn_kill(c);
					return;
				}
				c->in = p;
				c->in_cap = cap;
			}
		}
		ssize_t n = sli_io_read(c->fd, c->ssl, c->in + c->in_len, c->in_cap - c->in_len);
		if (n == 0) {
			sli_conn_reason(c, "closed by the client");
			sli_conn_kill(c); /* peer closed, possibly mid-frame: nothing of it was acted on */
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				sli_conn_reason(c, "read error: %s", sl_strerror(-errno));
				sli_conn_kill(c);
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
			sli_conn_error(c, SL_ETLS, 1, "this server does not use TLS (no --tls-cert): "
			            "connect without --tls-ca");
			return;
		}
		conn_decode(c);
	}
}

/* Input that backpressure left undecoded is decoded once the output has drained; its answers
 * leave at the next write readiness. */
void sli_conn_resume(struct conn *c)
{
	if (!c->in_pending || !c->reading || c->dead || c->closing)
		return;
	conn_decode(c);
	if (!c->dead && c->out.len > c->out_off && !c->want_write) {
		c->want_write = 1;
		sli_conn_update_interest(c);
	}
}

void sli_conn_read_pending(sl_storage *st)
{
	for (struct conn *c = st->conns; c != NULL; c = c->next)
		if (c->ssl != NULL && c->tls_phase == CONN_TLS_NONE && c->reading && !c->dead &&
		    !c->closing && SSL_pending(c->ssl) > 0)
			sli_conn_read(c);
}
