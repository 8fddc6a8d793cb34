/*
 * client.c - the compute runtime thread: the connection to storage, frame dispatch, commands
 * from worker threads, heartbeats.
 *
 * The runtime thread owns the socket, the read buffer, the output buffer and the handle table.
 * Worker threads talk to it only through the command list (c->mu + sli_loop_wake); it talks to
 * them only through their queues (sli_queue_push) and, for requests (request.c), through c->mu +
 * c->cv.  It never waits for a worker and never runs user code.
 *
 * Hot path: one read() fills a large buffer with many frames; each Data frame's events are copied
 * once into one queue item; nothing here touches individual updates.  Output frames (credits,
 * pongs, subscribes) accumulate in one reused buffer, written once per loop iteration.
 */
#include "compute/runtime.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/sock.h"

#define RBUF_INITIAL (256u << 10)
#define WINDOW_DEFAULT (256u << 10)
#define WINDOW_MIN (128u << 10)

static _Thread_local char last_error[512];

void sli_set_last_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

const char *sl_client_last_error(void)
{
	return last_error;
}

void sl_client_config_init(sl_client_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->server = "127.0.0.1:6876";
	cfg->window = WINDOW_DEFAULT;
	cfg->max_frame = SLI_FRAME_MAX_DEFAULT;
	cfg->connect_timeout_ms = 5000;
	cfg->heartbeat_ms = 1000;
	cfg->idle_timeout_ms = 10000;
}

/* ---- the triple registry (c->mu) ---- */

static size_t triple_slot(const sl_client *c, uint64_t dataflow, uint64_t source, uint32_t worker)
{
	uint64_t h = dataflow * 0x9E3779B97F4A7C15ull;
	h ^= (source + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
	h ^= ((uint64_t)worker + 1) * 0x165667B19E3779F9ull;
	h ^= h >> 29;
	return (size_t)h & (c->tcap - 1);
}

static int triple_grow(sl_client *c)
{
	size_t ncap = c->tcap ? c->tcap * 2 : 64, ocap = c->tcap;
	sli_csub **nb = calloc(ncap, sizeof(*nb)), **ob = c->tbuckets;
	if (nb == NULL)
		return SL_ENOMEM;
	c->tbuckets = nb;
	c->tcap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		for (sli_csub *e = ob[i], *nx; e; e = nx) {
			nx = e->tnext;
			size_t k = triple_slot(c, e->dataflow, e->source, e->worker);
			e->tnext = nb[k];
			nb[k] = e;
		}
	}
	free(ob);
	return 0;
}

int sli_client_subscribe(sl_client *c, sli_csub *s)
{
	sli_cmd *cmd = calloc(1, sizeof(*cmd));
	int rc = 0;
	if (cmd == NULL)
		return SL_ENOMEM;
	pthread_mutex_lock(&c->mu);
	if (c->dead) {
		rc = SL_EDISCONNECTED;
		goto out;
	}
	if (c->tcount + 1 > c->tcap && (rc = triple_grow(c)) != 0)
		goto out;
	size_t k = triple_slot(c, s->dataflow, s->source, s->worker);
	for (sli_csub *e = c->tbuckets[k]; e; e = e->tnext) {
		if (e->dataflow == s->dataflow && e->source == s->source && e->worker == s->worker) {
			rc = SL_EDUPLICATE;
			goto out;
		}
	}
	s->tnext = c->tbuckets[k];
	c->tbuckets[k] = s;
	c->tcount++;
	s->registered = 1;
	s->id = ++c->next_sub_id;
	cmd->kind = SLI_CMD_SUB;
	cmd->sub = s;
	atomic_fetch_add(&s->refs, 1);
	if (c->cmd_tail)
		c->cmd_tail->next = cmd;
	else
		c->cmd_head = cmd;
	c->cmd_tail = cmd;
	cmd = NULL;
out:
	pthread_mutex_unlock(&c->mu);
	free(cmd);
	if (rc == 0)
		sli_loop_wake(c->loop);
	return rc;
}

void sli_client_unregister(sl_client *c, sli_csub *s)
{
	pthread_mutex_lock(&c->mu);
	if (s->registered) {
		size_t k = triple_slot(c, s->dataflow, s->source, s->worker);
		for (sli_csub **pp = &c->tbuckets[k]; *pp; pp = &(*pp)->tnext) {
			if (*pp == s) {
				*pp = s->tnext;
				c->tcount--;
				break;
			}
		}
		s->registered = 0;
	}
	pthread_mutex_unlock(&c->mu);
}

void sli_client_post(sl_client *c, sli_cmd *cmd)
{
	cmd->next = NULL;
	pthread_mutex_lock(&c->mu);
	if (c->cmd_tail)
		c->cmd_tail->next = cmd;
	else
		c->cmd_head = cmd;
	c->cmd_tail = cmd;
	pthread_mutex_unlock(&c->mu);
	sli_loop_wake(c->loop);
}

void sli_cmd_free(sli_cmd *cmd)
{
	if (cmd == NULL)
		return;
	sli_buf_fini(&cmd->frames);
	free(cmd);
}

/* ---- runtime thread: output ---- */

static void conn_lost(sl_client *c, int code, const char *fmt, ...);

static void send_frame(sl_client *c, const sli_frame *f)
{
	if (!c->connected)
		return;
	if (sli_frame_encode(&c->out, f) != 0)
		conn_lost(c, SL_ENOMEM, "out of memory encoding a %s frame", sli_frame_type_name(f->type));
}

static void flush(sl_client *c)
{
	while (c->connected && c->out.len > 0) {
		ssize_t n = send(c->fd, c->out.ptr, c->out.len, MSG_NOSIGNAL);
		if (n > 0) {
			sli_buf_consume(&c->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!c->want_write && sli_loop_mod(c->loop, c->fd, SLI_READ | SLI_WRITE) == 0)
				c->want_write = 1;
			return;
		}
		conn_lost(c, n < 0 ? -errno : SL_EDISCONNECTED, "write to storage failed: %s",
		          strerror(n < 0 ? errno : EPIPE));
		return;
	}
	if (c->connected && c->want_write) {
		sli_loop_mod(c->loop, c->fd, SLI_READ);
		c->want_write = 0;
	}
}

/* ---- runtime thread: subscriptions ---- */

static sli_qitem *msg_item(int kind, sli_csub *s, int code, const char *msg, size_t len)
{
	sli_qitem *it = sli_qitem_new(kind, s, len);
	if (it == NULL)
		return NULL;
	memcpy(it->data, msg, len);
	it->code = code;
	return it;
}

static int handle_alloc(sl_client *c, uint32_t *h)
{
	if (c->nfree > 0) {
		*h = c->freeh[--c->nfree];
		return 0;
	}
	uint32_t n = c->nslots ? c->nslots * 2 : 256;
	sli_csub **ns = realloc(c->slots, n * sizeof(*ns));
	if (ns == NULL)
		return SL_ENOMEM;
	c->slots = ns;
	uint32_t *nf = realloc(c->freeh, n * sizeof(*nf));
	if (nf == NULL)
		return SL_ENOMEM;
	c->freeh = nf;
	/* push the new handles so that the lowest comes out first */
	for (uint32_t i = n; i > c->nslots; i--) {
		c->slots[i - 1] = NULL;
		c->freeh[c->nfree++] = i - 1;
	}
	c->nslots = n;
	*h = c->freeh[--c->nfree];
	return 0;
}

static sli_csub *handle_get(sl_client *c, uint32_t h)
{
	return h < c->nslots ? c->slots[h] : NULL;
}

/* The runtime's last act on s: frees its handle and hands the runtime's reference to the queue
 * in a RELEASE item, behind every item pushed for s before. */
static void release(sl_client *c, sli_csub *s)
{
	if (s->rstate != SLI_R_NEW && s->handle < c->nslots && c->slots[s->handle] == s) {
		c->slots[s->handle] = NULL;
		c->freeh[c->nfree++] = s->handle;
	}
	s->rstate = SLI_R_RELEASED;
	sli_qitem *it = sli_qitem_new(SLI_QI_RELEASE, s, 0);
	if (it == NULL)
		return; /* leak s rather than free what queued items still point to */
	sli_queue_push(s->q, it);
}

/* Walks validated events and folds their Progress into the runtime's own copy of the frontier
 * (the resume point for a reconnect).  Per event, not per update. */
static void fold_progress(sli_frontier *f, sl_bytes ev)
{
	const uint8_t *p = ev.ptr, *end = ev.ptr + ev.len;
	while (p < end) {
		if (*p == SLI_EV_MESSAGES) {
			p += SLI_MESSAGES_HDR + (size_t)sli_get_u32(p + 13);
			continue;
		}
		uint32_t n = sli_get_u32(p + 1);
		p += 5;
		for (uint32_t i = 0; i < n; i++, p += SLI_CHANGE_SIZE)
			sli_frontier_update(f, sli_get_u64(p), (int64_t)sli_get_u64(p + 8));
	}
}

/* ---- runtime thread: commands ---- */

static void run_cmd(sl_client *c, sli_cmd *cmd)
{
	sli_csub *s = cmd->sub;
	sli_frame f;
	memset(&f, 0, sizeof(f));
	switch (cmd->kind) {
	case SLI_CMD_SUB: {
		/* the command's reference becomes the runtime's */
		uint32_t h;
		if (!c->connected || handle_alloc(c, &h) != 0) {
			sli_qitem *it = c->connected
			                    ? msg_item(SLI_QI_SUBERR, s, SL_ENOMEM, "out of memory", 13)
			                    : msg_item(SLI_QI_DISCONNECTED, NULL, c->dead_code,
			                               c->dead_msg, strlen(c->dead_msg));
			if (it)
				sli_queue_push(s->q, it);
			release(c, s);
			break;
		}
		c->slots[h] = s;
		s->handle = h;
		s->rstate = SLI_R_SUBSCRIBING;
		f.type = SLI_SUBSCRIBE;
		f.u.subscribe = (sli_subscribe){.handle = h, .dataflow = s->dataflow, .source = s->source,
		                                .worker = s->worker, .from = s->from,
		                                .credit = c->cfg.window};
		send_frame(c, &f);
		break;
	}
	case SLI_CMD_UNSUB:
		if (s->rstate == SLI_R_SUBSCRIBING || s->rstate == SLI_R_LIVE) {
			s->rstate = SLI_R_UNSUBSCRIBING;
			f.type = SLI_UNSUBSCRIBE;
			f.u.unsubscribe = (sli_unsubscribe){.dataflow = s->dataflow, .source = s->source,
			                                    .worker = s->worker};
			send_frame(c, &f);
		}
		sli_csub_unref(s);
		break;
	case SLI_CMD_CREDIT:
		if (s->rstate == SLI_R_SUBSCRIBING || s->rstate == SLI_R_LIVE) {
			f.type = SLI_CREDIT;
			f.u.credit = (sli_credit){.handle = s->handle, .bytes = cmd->bytes};
			send_frame(c, &f);
		}
		sli_csub_unref(s);
		break;
	case SLI_CMD_LIST:
		if (c->connected) {
			f.type = SLI_LIST_SOURCES;
			send_frame(c, &f);
			/* kept until its Sources answer arrives: answers come in request order */
			cmd->next = NULL;
			if (c->list_tail)
				c->list_tail->next = cmd;
			else
				c->list_head = cmd;
			c->list_tail = cmd;
			return;
		}
		break;
	case SLI_CMD_APPEND:
		if (c->connected) {
			if (sli_buf_reserve(&c->out, cmd->frames.len) != 0) {
				conn_lost(c, SL_ENOMEM, "out of memory queueing an Append");
				break;
			}
			memcpy(c->out.ptr + c->out.len, cmd->frames.ptr, cmd->frames.len);
			c->out.len += cmd->frames.len;
		}
		break;
	}
	sli_cmd_free(cmd);
}

static sli_cmd *take_cmds(sl_client *c)
{
	pthread_mutex_lock(&c->mu);
	sli_cmd *cmds = c->cmd_head;
	c->cmd_head = c->cmd_tail = NULL;
	pthread_mutex_unlock(&c->mu);
	return cmds;
}

static void on_wake(sli_loop *l, void *arg)
{
	sl_client *c = arg;
	for (sli_cmd *cmd = take_cmds(c), *nx; cmd; cmd = nx) {
		nx = cmd->next;
		run_cmd(c, cmd);
	}
}

/* ---- runtime thread: losing the connection ---- */

static void conn_lost(sl_client *c, int code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	if (!c->connected || c->losing)
		return;
	c->losing = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	/* From here no Subscribe can be posted; the ones already posted are run (their frames go
	 * nowhere) so that they end with everything else. */
	pthread_mutex_lock(&c->mu);
	c->dead = 1;
	c->dead_code = code;
	snprintf(c->dead_msg, sizeof(c->dead_msg), "%s", msg);
	sli_cmd *cmds = c->cmd_head;
	c->cmd_head = c->cmd_tail = NULL;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	for (sli_cmd *nx; cmds; cmds = nx) {
		nx = cmds->next;
		run_cmd(c, cmds);
	}

	c->connected = 0;
	sli_loop_del(c->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	c->out.len = 0;
	c->rlen = 0;
	for (sli_cmd *cmd = c->list_head, *nx; cmd; cmd = nx) {
		nx = cmd->next;
		sli_cmd_free(cmd);
	}
	c->list_head = c->list_tail = NULL;

	/* One Disconnected per queue that still has a subscription its worker sees... */
	for (uint32_t h = 0; h < c->nslots; h++) {
		sli_csub *s = c->slots[h];
		if (s && s->rstate != SLI_R_UNSUBSCRIBING && !s->q->disc_mark) {
			sli_qitem *it = msg_item(SLI_QI_DISCONNECTED, NULL, code, msg, strlen(msg));
			s->q->disc_mark = 1;
			if (it)
				sli_queue_push(s->q, it);
		}
	}
	/* ...then every subscription ends. */
	for (uint32_t h = 0; h < c->nslots; h++) {
		sli_csub *s = c->slots[h];
		if (s) {
			s->q->disc_mark = 0;
			release(c, s);
		}
	}
	c->losing = 0;
}

/* ---- runtime thread: input ---- */

static int build_sources(const sli_sources *src, sl_source_info **out, size_t *n)
{
	sl_source_info *v = calloc(src->count ? src->count : 1, sizeof(*v));
	sl_bytes rest = src->entries;
	sli_source_entry e;
	size_t i = 0;
	if (v == NULL)
		return SL_ENOMEM;
	while (i < src->count && sli_sources_next(&rest, &e) == 1) {
		sl_source_info *d = &v[i++];
		d->id = e.id;
		d->workers = e.workers;
		d->name = strndup((const char *)e.name.ptr, e.name.len);
		d->kind = strndup((const char *)e.kind.ptr, e.kind.len);
		d->uppers = calloc(e.workers ? e.workers : 1, sizeof(uint64_t));
		if (d->name == NULL || d->kind == NULL || d->uppers == NULL) {
			sl_source_info_free(v, i);
			return SL_ENOMEM;
		}
		d->upper = SL_TIME_CLOSED;
		for (uint32_t w = 0; w < e.workers; w++) {
			d->uppers[w] = sli_get_u64(e.uppers.ptr + 8 * (size_t)w);
			if (d->uppers[w] < d->upper)
				d->upper = d->uppers[w];
		}
	}
	*out = v;
	*n = i;
	return 0;
}

static void on_sources(sl_client *c, const sli_sources *src)
{
	sli_cmd *cmd = c->list_head;
	sl_source_info *v = NULL;
	size_t n = 0;
	if (cmd == NULL)
		return; /* unsolicited: ignore */
	c->list_head = cmd->next;
	if (c->list_head == NULL)
		c->list_tail = NULL;
	int rc = build_sources(src, &v, &n);
	pthread_mutex_lock(&c->mu);
	if (c->list_wait == cmd->seq) {
		c->list_rc = rc;
		c->list_out = v;
		c->list_n = n;
		c->list_done = 1;
		v = NULL;
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
	sl_source_info_free(v, n);
	sli_cmd_free(cmd);
}

static void on_append_answer(sl_client *c, uint64_t batch, int rc, uint64_t time, sl_bytes msg)
{
	pthread_mutex_lock(&c->mu);
	if (c->append_wait == batch && !c->append_done) {
		c->append_rc = rc;
		c->append_time = time;
		free(c->append_msg);
		c->append_msg = rc ? strndup((const char *)msg.ptr, msg.len) : NULL;
		c->append_done = 1;
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
}

static void on_data(sl_client *c, const sli_data *d)
{
	sli_csub *s = handle_get(c, d->handle);
	if (s == NULL || (s->rstate != SLI_R_SUBSCRIBING && s->rstate != SLI_R_LIVE))
		return; /* unsubscribed by its worker: dropped */
	fold_progress(d->collection == SL_OK ? &s->rok : &s->rerr, d->events);
	sli_qitem *it = sli_qitem_new(SLI_QI_DATA, s, d->events.len);
	if (it == NULL) {
		conn_lost(c, SL_ENOMEM, "out of memory queueing a Data frame");
		return;
	}
	memcpy(it->data, d->events.ptr, d->events.len);
	it->collection = d->collection;
	sli_queue_push(s->q, it);
}

static void on_frame(sl_client *c, const sli_frame *f)
{
	sli_csub *s;
	switch (f->type) {
	case SLI_DATA:
		on_data(c, &f->u.data);
		break;
	case SLI_PING: {
		sli_frame pong = {.type = SLI_PONG};
		pong.u.ping.nonce = f->u.ping.nonce;
		send_frame(c, &pong);
		break;
	}
	case SLI_PONG:
		break;
	case SLI_SUBSCRIBE_OK:
		s = handle_get(c, f->u.subscribe_ok.handle);
		if (s && s->rstate == SLI_R_SUBSCRIBING) {
			sli_qitem *it = sli_qitem_new(SLI_QI_SUBSCRIBED, s, 0);
			s->rstate = SLI_R_LIVE;
			if (it == NULL) {
				conn_lost(c, SL_ENOMEM, "out of memory");
				return;
			}
			it->since = f->u.subscribe_ok.since;
			it->upper = f->u.subscribe_ok.upper;
			sli_queue_push(s->q, it);
		}
		break;
	case SLI_SUBSCRIBE_ERROR:
		s = handle_get(c, f->u.subscribe_error.handle);
		if (s == NULL)
			break;
		if (s->rstate == SLI_R_SUBSCRIBING) {
			const sli_subscribe_error *e = &f->u.subscribe_error;
			sli_qitem *it = msg_item(SLI_QI_SUBERR, s, e->code, (const char *)e->message.ptr,
			                         e->message.len);
			if (it)
				sli_queue_push(s->q, it);
		}
		release(c, s);
		break;
	case SLI_UNSUBSCRIBE_OK:
		s = handle_get(c, f->u.unsubscribe_ok.handle);
		if (s)
			release(c, s);
		break;
	case SLI_ERROR:
		/* Non-fatal errors answer requests that have no error reply of their own (an
		 * Unsubscribe racing with a SubscribeError, a Credit for a handle storage just
		 * dropped): nothing to do. */
		if (f->u.error.fatal)
			conn_lost(c, f->u.error.code ? f->u.error.code : SL_EDISCONNECTED, "%.*s",
			          (int)f->u.error.message.len, (const char *)f->u.error.message.ptr);
		break;
	case SLI_SOURCES:
		on_sources(c, &f->u.sources);
		break;
	case SLI_APPEND_OK:
		on_append_answer(c, f->u.append_ok.batch, 0, f->u.append_ok.time, (sl_bytes){0});
		break;
	case SLI_APPEND_ERROR:
		on_append_answer(c, f->u.append_error.batch,
		                 f->u.append_error.code ? f->u.append_error.code : SL_EREJECTED, 0,
		                 f->u.append_error.message);
		break;
	default:
		conn_lost(c, SL_EPROTO, "unexpected %s frame from storage", sli_frame_type_name(f->type));
		break;
	}
}

/* Parses every complete frame in rbuf and keeps the partial tail.  Grows rbuf (up to one
 * max-size frame) when the frame at the head does not fit. */
static void parse_frames(sl_client *c)
{
	size_t off = 0;
	ssize_t r;
	sli_frame f;
	while (c->connected &&
	       (r = sli_frame_decode(c->rbuf + off, c->rlen - off, c->cfg.max_frame, &f)) > 0) {
		off += (size_t)r;
		on_frame(c, &f);
	}
	if (!c->connected)
		return;
	if (r < 0) {
		conn_lost(c, (int)r, "malformed frame from storage: %s", sl_strerror((int)r));
		return;
	}
	if (off > 0) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
	if (c->rlen >= 4) {
		size_t need = (size_t)sli_get_u32(c->rbuf) + 4;
		if (need > c->rcap) {
			uint8_t *nb = realloc(c->rbuf, need);
			if (nb == NULL) {
				conn_lost(c, SL_ENOMEM, "out of memory for a %zu-byte frame", need);
				return;
			}
			c->rbuf = nb;
			c->rcap = need;
		}
	}
}

static void on_io(sli_loop *l, int fd, uint32_t events, void *arg)
{
	sl_client *c = arg;
	if (events & SLI_WRITE)
		flush(c);
	if (!(events & SLI_READ))
		return;
	/* A short read means the socket is drained; a full one that there may be more. */
	while (c->connected) {
		size_t room = c->rcap - c->rlen;
		ssize_t n = read(fd, c->rbuf + c->rlen, room);
		if (n > 0) {
			c->rlen += (size_t)n;
			c->last_rx = sli_now_ms();
			parse_frames(c);
			if ((size_t)n < room)
				return;
			continue;
		}
		if (n == 0) {
			conn_lost(c, SL_EDISCONNECTED, "storage closed the connection");
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			conn_lost(c, -errno, "read from storage failed: %s", strerror(errno));
		return;
	}
}

static void on_tick(sli_loop *l, void *arg)
{
	sl_client *c = arg;
	uint64_t now = sli_now_ms();
	if (!c->connected)
		return;
	if (now - c->last_rx >= c->cfg.idle_timeout_ms) {
		conn_lost(c, SL_EIDLE, "no answer from storage for %u ms", c->cfg.idle_timeout_ms);
		return;
	}
	if (now - c->last_rx >= c->cfg.heartbeat_ms && now - c->last_ping >= c->cfg.heartbeat_ms) {
		sli_frame f = {.type = SLI_PING};
		f.u.ping.nonce = ++c->ping_nonce;
		send_frame(c, &f);
		c->last_ping = now;
	}
}

static void on_idle(sli_loop *l, void *arg)
{
	flush(arg);
}

static void *runtime_main(void *arg)
{
	sl_client *c = arg;
	/* frames that arrived together with the server's Hello */
	parse_frames(c);
	flush(c);
	sli_loop_run(c->loop);
	return NULL;
}

/* ---- open / close ---- */

static int wait_fd(int fd, short events, uint64_t deadline)
{
	uint64_t now = sli_now_ms();
	if (now >= deadline)
		return SL_ETIMEDOUT;
	struct pollfd p = {.fd = fd, .events = events};
	int n = poll(&p, 1, (int)(deadline - now));
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n == 0 ? SL_ETIMEDOUT : 0;
}

/* Sends our Hello and waits for the server's, before the runtime thread exists. */
static int handshake(sl_client *c)
{
	uint64_t deadline = sli_now_ms() + (uint64_t)c->cfg.connect_timeout_ms;
	uint64_t session = 0;
	sli_frame f = {.type = SLI_HELLO};
	int rc;
	if (getrandom(&session, sizeof(session), 0) != sizeof(session))
		session = sli_now_ms() ^ ((uint64_t)getpid() << 32);
	f.u.hello = (sli_hello){.magic = SLI_MAGIC, .version = SLI_PROTO_VERSION, .session = session,
	                        .epoch = 0, .name = {(const uint8_t *)"libsluice", 9}};
	if ((rc = sli_frame_encode(&c->out, &f)) != 0)
		return rc;
	while (c->out.len > 0) {
		ssize_t n = send(c->fd, c->out.ptr, c->out.len, MSG_NOSIGNAL);
		if (n > 0)
			sli_buf_consume(&c->out, (size_t)n);
		else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if ((rc = wait_fd(c->fd, POLLOUT, deadline)) != 0)
				return rc;
		} else
			return n < 0 ? -errno : SL_EDISCONNECTED;
	}
	for (;;) {
		ssize_t r = sli_frame_decode(c->rbuf, c->rlen, c->cfg.max_frame, &f);
		if (r < 0)
			return (int)r;
		if (r > 0) {
			if (f.type == SLI_ERROR) {
				sli_set_last_error("%.*s", (int)f.u.error.message.len,
				               (const char *)f.u.error.message.ptr);
				return f.u.error.code ? f.u.error.code : SL_EPROTO;
			}
			if (f.type != SLI_HELLO || f.u.hello.magic != SLI_MAGIC)
				return SL_EPROTO;
			if (f.u.hello.version != SLI_PROTO_VERSION)
				return SL_EVERSION;
			memmove(c->rbuf, c->rbuf + r, c->rlen - (size_t)r);
			c->rlen -= (size_t)r;
			return 0;
		}
		if (c->rlen == c->rcap)
			return SL_EPROTO; /* a Hello larger than the read buffer */
		ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
		if (n > 0)
			c->rlen += (size_t)n;
		else if (n == 0)
			return SL_EDISCONNECTED;
		else if (errno == EAGAIN || errno == EINTR) {
			if ((rc = wait_fd(c->fd, POLLIN, deadline)) != 0)
				return rc;
		} else
			return -errno;
	}
}

int sl_client_open(const sl_client_config *cfg, sl_client **out)
{
	sl_client_config def;
	sl_client *c;
	pthread_condattr_t ca;
	int rc;
	if (out == NULL)
		return SL_EARG;
	sl_client_config_init(&def);
	if (cfg == NULL)
		cfg = &def;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return SL_ENOMEM;
	c->cfg = *cfg;
	if (snprintf(c->server, sizeof(c->server), "%s", cfg->server ? cfg->server : def.server) >=
	    (int)sizeof(c->server)) {
		free(c);
		return SL_EARG;
	}
	c->cfg.server = c->server;
	if (c->cfg.window == 0)
		c->cfg.window = WINDOW_DEFAULT;
	if (c->cfg.window < WINDOW_MIN)
		c->cfg.window = WINDOW_MIN;
	if (c->cfg.max_frame == 0)
		c->cfg.max_frame = SLI_FRAME_MAX_DEFAULT;
	if (c->cfg.max_frame > SLI_FRAME_MAX_LIMIT)
		c->cfg.max_frame = SLI_FRAME_MAX_LIMIT;
	if (c->cfg.connect_timeout_ms <= 0)
		c->cfg.connect_timeout_ms = def.connect_timeout_ms;
	if (c->cfg.heartbeat_ms == 0)
		c->cfg.heartbeat_ms = def.heartbeat_ms;
	if (c->cfg.idle_timeout_ms == 0)
		c->cfg.idle_timeout_ms = def.idle_timeout_ms;
	c->credit_batch = c->cfg.window / 4;
	c->fd = -1;
	sli_buf_init(&c->out);
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->list_mu, NULL);
	pthread_mutex_init(&c->append_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	c->rcap = RBUF_INITIAL;
	if ((c->rbuf = malloc(c->rcap)) == NULL) {
		rc = SL_ENOMEM;
		goto err_free;
	}
	if ((c->fd = sli_connect_tcp(c->server, c->cfg.connect_timeout_ms)) < 0) {
		rc = c->fd;
		goto err_free;
	}
	if ((rc = handshake(c)) != 0)
		goto err_close;
	if ((rc = sli_loop_new(&c->loop)) != 0)
		goto err_close;
	if ((rc = sli_loop_add(c->loop, c->fd, SLI_READ, on_io, c)) != 0)
		goto err_loop;
	sli_loop_on_wake(c->loop, on_wake, c);
	uint32_t tick = c->cfg.heartbeat_ms / 2;
	if (tick > c->cfg.idle_timeout_ms / 4)
		tick = c->cfg.idle_timeout_ms / 4;
	sli_loop_on_tick(c->loop, tick < 10 ? 10 : tick, on_tick, c);
	sli_loop_on_idle(c->loop, on_idle, c);
	c->connected = 1;
	c->last_rx = c->last_ping = sli_now_ms();
	if ((rc = -pthread_create(&c->thread, NULL, runtime_main, c)) != 0)
		goto err_loop;
	*out = c;
	return 0;
err_loop:
	sli_loop_free(c->loop);
err_close:
	close(c->fd);
err_free:
	sli_buf_fini(&c->out);
	free(c->rbuf);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->list_mu);
	pthread_mutex_destroy(&c->append_mu);
	pthread_cond_destroy(&c->cv);
	free(c);
	return rc;
}

void sl_client_close(sl_client *c)
{
	if (c == NULL)
		return;
	sli_loop_stop(c->loop);
	pthread_join(c->thread, NULL);
	/* The runtime thread is gone: its state is ours now.  End what is still in flight; the
	 * queues were closed, so their items are dropped as they arrive. */
	pthread_mutex_lock(&c->mu);
	c->dead = 1;
	if (c->dead_code == 0) {
		c->dead_code = SL_ECLOSED;
		snprintf(c->dead_msg, sizeof(c->dead_msg), "client closed");
	}
	pthread_mutex_unlock(&c->mu);
	c->connected = 0;
	for (sli_cmd *cmd = take_cmds(c), *nx; cmd; cmd = nx) {
		nx = cmd->next;
		run_cmd(c, cmd);
	}
	for (uint32_t h = 0; h < c->nslots; h++)
		if (c->slots[h])
			release(c, c->slots[h]);
	for (sli_cmd *cmd = c->list_head, *nx; cmd; cmd = nx) {
		nx = cmd->next;
		sli_cmd_free(cmd);
	}
	if (c->fd >= 0) {
		sli_loop_del(c->loop, c->fd);
		close(c->fd);
	}
	sli_loop_free(c->loop);
	sl_source_info_free(c->list_out, c->list_n);
	free(c->append_msg);
	free(c->slots);
	free(c->freeh);
	free(c->tbuckets);
	free(c->rbuf);
	sli_buf_fini(&c->out);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->list_mu);
	pthread_mutex_destroy(&c->append_mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}
