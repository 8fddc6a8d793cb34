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
 *
 * Reconnects: when the connection is lost and cfg.retry_for_ms > 0, the runtime parks every live
 * subscription and tries to connect again, with exponential backoff (RETRY_MIN_MS doubling to
 * RETRY_MAX_MS, +-25% jitter) for up to retry_for_ms; refused connections are expected meanwhile.
 * Connecting and the Hello exchange run on the loop (non-blocking), so commands from workers are
 * still taken during an outage.  Once a server answers Hello, every queue with a subscription
 * gets RECONNECTED and every parked subscription is subscribed again from its resume point.
 * Only when the window runs out do the queues get DISCONNECTED.
 */
#include "compute/runtime.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "net/sock.h"

#define RBUF_INITIAL (256u << 10)
#define WINDOW_DEFAULT (256u << 10)
#define WINDOW_MIN (128u << 10)
/* A subscription whose worker keeps up doubles its window up to this (see queue.c, grant). */
#define WINDOW_GROWN_MAX (4u << 20)
#define RETRY_FOR_DEFAULT 30000u
#define RETRY_MIN_MS 50u
#define RETRY_MAX_MS 2000u

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
	cfg->retry_for_ms = RETRY_FOR_DEFAULT;
}

int sl_client_server(sl_client *c, uint64_t *session, uint64_t *epoch, uint64_t *reconnects)
{
	if (c == NULL)
		return SL_EARG;
	pthread_mutex_lock(&c->mu);
	if (session)
		*session = c->srv_session;
	if (epoch)
		*epoch = c->srv_epoch;
	if (reconnects)
		*reconnects = c->reconnects;
	pthread_mutex_unlock(&c->mu);
	return 0;
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

static void park(sl_client *c, sli_csub *s, int rstate)
{
	s->rstate = rstate;
	s->pprev = NULL;
	s->pnext = c->parked;
	if (c->parked)
		c->parked->pprev = s;
	c->parked = s;
}

static void unpark(sl_client *c, sli_csub *s)
{
	if (s->pprev)
		s->pprev->pnext = s->pnext;
	else
		c->parked = s->pnext;
	if (s->pnext)
		s->pnext->pprev = s->pprev;
	s->pnext = s->pprev = NULL;
}

static int is_parked(const sli_csub *s)
{
	return s->rstate == SLI_R_PARKED || s->rstate == SLI_R_DONE;
}

/* The runtime's last act on s: frees its handle (or takes it off the parked list) and hands the
 * runtime's reference to the queue in a RELEASE item, behind every item pushed for s before. */
static void release(sl_client *c, sli_csub *s)
{
	if (is_parked(s))
		unpark(c, s);
	else if (s->rstate != SLI_R_NEW && s->handle < c->nslots && c->slots[s->handle] == s) {
		c->slots[s->handle] = NULL;
		c->freeh[c->nfree++] = s->handle;
	}
	s->rstate = SLI_R_RELEASED;
	sli_qitem *it = sli_qitem_new(SLI_QI_RELEASE, s, 0);
	if (it == NULL)
		return; /* leak s rather than free what queued items still point to */
	sli_queue_push(s->q, it);
}

/* Sends s's Subscribe on the current connection: from its `from` the first time, from its resume
 * point after a reconnect.  A subscription whose frontier closed needs nothing more and is parked
 * as DONE.  0, or SL_ENOMEM (s is then still the caller's to end). */
static int subscribe_wire(sl_client *c, sli_csub *s)
{
	uint64_t from = s->from;
	uint32_t h;
	if (s->acked) {
		uint64_t a = sli_replay_frontier(&s->rp[SL_OK]), b = sli_replay_frontier(&s->rp[SL_ERR]);
		uint64_t f = a < b ? a : b;
		if (f == SL_TIME_CLOSED) {
			park(c, s, SLI_R_DONE);
			return 0;
		}
		/* never before the original `from`: storage would send times the worker never had */
		if (f > from)
			from = f;
	}
	if (handle_alloc(c, &h) != 0)
		return SL_ENOMEM;
	if (s->acked) {
		sli_replay_rewind(&s->rp[SL_OK]);
		sli_replay_rewind(&s->rp[SL_ERR]);
	}
	c->slots[h] = s;
	s->handle = h;
	s->gen++;
	s->rstate = SLI_R_SUBSCRIBING;
	sli_frame f;
	memset(&f, 0, sizeof(f));
	f.type = SLI_SUBSCRIBE;
	f.u.subscribe = (sli_subscribe){.handle = h, .dataflow = s->dataflow, .source = s->source,
	                                .worker = s->worker, .from = from, .credit = c->cfg.window};
	send_frame(c, &f);
	return 0;
}

/* ---- runtime thread: requests that cannot be answered ---- */

/* Fails the ListSources a caller waits for, if it is seq. */
static void fail_list(sl_client *c, uint64_t seq)
{
	pthread_mutex_lock(&c->mu);
	if (c->list_wait == seq && !c->list_done) {
		c->list_rc = SL_EDISCONNECTED;
		c->list_out = NULL;
		c->list_n = 0;
		c->list_done = 1;
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
}

static void on_append_answer(sl_client *c, uint64_t batch, int rc, uint64_t time, sl_bytes msg);

static const char append_lost_msg[] = "the connection to storage was lost before the batch was "
                                      "answered: it may or may not have been committed";

/* ---- runtime thread: commands ---- */

static void run_cmd(sl_client *c, sli_cmd *cmd)
{
	sli_csub *s = cmd->sub;
	sli_frame f;
	memset(&f, 0, sizeof(f));
	switch (cmd->kind) {
	case SLI_CMD_SUB:
		/* the command's reference becomes the runtime's */
		if (!c->connected && (!c->dead || c->losing)) {
			/* an outage (or the end of one): subscribed when a connection is back */
			park(c, s, SLI_R_PARKED);
			break;
		}
		if (!c->connected || subscribe_wire(c, s) != 0) {
			sli_qitem *it = c->connected
			                    ? msg_item(SLI_QI_SUBERR, s, SL_ENOMEM, "out of memory", 13)
			                    : msg_item(SLI_QI_DISCONNECTED, NULL, c->dead_code,
			                               c->dead_msg, strlen(c->dead_msg));
			if (it)
				sli_queue_push(s->q, it);
			release(c, s);
		}
		break;
	case SLI_CMD_UNSUB:
		if (s->rstate == SLI_R_SUBSCRIBING || s->rstate == SLI_R_LIVE) {
			s->rstate = SLI_R_UNSUBSCRIBING;
			f.type = SLI_UNSUBSCRIBE;
			f.u.unsubscribe = (sli_unsubscribe){.dataflow = s->dataflow, .source = s->source,
			                                    .worker = s->worker};
			send_frame(c, &f);
		} else if (is_parked(s)) {
			/* nothing of it is on the wire: storage holds nothing for it */
			release(c, s);
		}
		sli_csub_unref(s);
		break;
	case SLI_CMD_CREDIT:
		/* bytes of an older connection are not owed to the new one */
		if ((s->rstate == SLI_R_SUBSCRIBING || s->rstate == SLI_R_LIVE) && cmd->gen == s->gen) {
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
		fail_list(c, cmd->seq);
		break;
	case SLI_CMD_APPEND:
		if (c->connected) {
			if (sli_buf_reserve(&c->out, cmd->frames.len) != 0) {
				on_append_answer(c, cmd->seq, SL_ENOMEM, 0, (sl_bytes){0});
				break;
			}
			memcpy(c->out.ptr + c->out.len, cmd->frames.ptr, cmd->frames.len);
			c->out.len += cmd->frames.len;
			c->append_inflight = cmd->seq;
			break;
		}
		/* never sent: certainly not committed */
		on_append_answer(c, cmd->seq, SL_EDISCONNECTED, 0,
		                 (sl_bytes){(const uint8_t *)"not connected to storage", 24});
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

/* Closes the socket (connected or still connecting) and forgets its buffers. */
static void close_socket(sl_client *c)
{
	if (c->fd >= 0) {
		sli_loop_del(c->loop, c->fd);
		close(c->fd);
		c->fd = -1;
	}
	c->connected = 0;
	c->want_write = 0;
	c->out.len = 0;
	c->rlen = 0;
}

/* Fails every request sent on the connection just lost: their answers will never come. */
static void fail_inflight(sl_client *c)
{
	for (sli_cmd *cmd = c->list_head, *nx; cmd; cmd = nx) {
		nx = cmd->next;
		fail_list(c, cmd->seq);
		sli_cmd_free(cmd);
	}
	c->list_head = c->list_tail = NULL;
	if (c->append_inflight) {
		on_append_answer(c, c->append_inflight, SL_EDISCONNECTED, 0,
		                 (sl_bytes){(const uint8_t *)append_lost_msg, sizeof(append_lost_msg) - 1});
		c->append_inflight = 0;
	}
}

/* The end: no more reconnects.  One Disconnected per queue that still has a subscription its
 * worker sees, then every subscription ends. */
static void die(sl_client *c, int code, const char *msg)
{
	c->losing = 1;
	/* From here no Subscribe can be posted; the ones already posted are run (they are parked)
	 * so that they end with everything else. */
	pthread_mutex_lock(&c->mu);
	c->dead = 1;
	c->dead_code = code;
	snprintf(c->dead_msg, sizeof(c->dead_msg), "%s", msg);
	sli_cmd *cmds = c->cmd_head;
	c->cmd_head = c->cmd_tail = NULL;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	close_socket(c);
	c->phase = SLI_PH_DEAD;
	for (sli_cmd *nx; cmds; cmds = nx) {
		nx = cmds->next;
		run_cmd(c, cmds);
	}
	fail_inflight(c);

	for (uint32_t h = 0; h < c->nslots; h++) {
		sli_csub *s = c->slots[h];
		if (s && s->rstate != SLI_R_UNSUBSCRIBING && !s->q->disc_mark) {
			sli_qitem *it = msg_item(SLI_QI_DISCONNECTED, NULL, code, msg, strlen(msg));
			s->q->disc_mark = 1;
			if (it)
				sli_queue_push(s->q, it);
		}
	}
	for (sli_csub *s = c->parked; s; s = s->pnext) {
		if (!s->q->disc_mark) {
			sli_qitem *it = msg_item(SLI_QI_DISCONNECTED, NULL, code, msg, strlen(msg));
			s->q->disc_mark = 1;
			if (it)
				sli_queue_push(s->q, it);
		}
	}
	for (uint32_t h = 0; h < c->nslots; h++) {
		sli_csub *s = c->slots[h];
		if (s) {
			s->q->disc_mark = 0;
			release(c, s);
		}
	}
	while (c->parked) {
		c->parked->q->disc_mark = 0;
		release(c, c->parked);
	}
	c->losing = 0;
}

static uint64_t rng_next(sl_client *c)
{
	/* xorshift64*: jitter only */
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return c->rng * 0x2545F4914F6CDD1Dull;
}

static void arm_timer(sl_client *c, uint64_t delay_ms)
{
	struct itimerspec its;
	memset(&its, 0, sizeof(its));
	if (delay_ms == 0)
		delay_ms = 1; /* 0 would disarm */
	its.it_value.tv_sec = (time_t)(delay_ms / 1000);
	its.it_value.tv_nsec = (long)(delay_ms % 1000) * 1000000L;
	timerfd_settime(c->timerfd, 0, &its, NULL);
}

/* Waits before the next attempt: RETRY_MIN_MS doubling up to RETRY_MAX_MS, +-25% jitter, and
 * never past the end of the window (where the timer gives up). */
static void schedule_attempt(sl_client *c)
{
	uint64_t delay = RETRY_MIN_MS;
	for (uint32_t i = 0; i < c->attempts && delay < RETRY_MAX_MS; i++)
		delay *= 2;
	if (delay > RETRY_MAX_MS)
		delay = RETRY_MAX_MS;
	delay = delay * 3 / 4 + rng_next(c) % (delay / 2 + 1);
	c->attempts++;
	uint64_t now = sli_now_ms(), end = c->outage_start + c->cfg.retry_for_ms;
	if (now + delay > end)
		delay = end > now ? end - now : 0;
	c->phase = SLI_PH_WAIT;
	arm_timer(c, delay);
}

static void give_up(sl_client *c, int last_rc)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "%s (no connection again within %u ms; last attempt: %s)",
	         c->lost_msg, c->cfg.retry_for_ms, sl_strerror(last_rc));
	die(c, c->lost_code, msg);
}

/* An attempt to connect again failed: wait and try again, or give up. */
static void attempt_failed(sl_client *c, int rc)
{
	close_socket(c);
	c->last_attempt_rc = rc;
	if (sli_now_ms() >= c->outage_start + c->cfg.retry_for_ms)
		give_up(c, rc);
	else
		schedule_attempt(c);
}

/* The connection is gone but may come back: every live subscription is parked (those being
 * unsubscribed end: storage dropped them with the connection), the requests in flight fail,
 * and the first attempt to connect again is scheduled. */
static void outage_begin(sl_client *c, int code, const char *msg)
{
	close_socket(c);
	c->lost_code = code;
	snprintf(c->lost_msg, sizeof(c->lost_msg), "%s", msg);
	c->outage_start = sli_now_ms();
	c->attempts = 0;
	fail_inflight(c);
	for (uint32_t h = 0; h < c->nslots; h++) {
		sli_csub *s = c->slots[h];
		if (s == NULL)
			continue;
		c->slots[h] = NULL;
		c->freeh[c->nfree++] = h;
		if (s->rstate == SLI_R_UNSUBSCRIBING)
			release(c, s);
		else
			park(c, s, SLI_R_PARKED);
	}
	schedule_attempt(c);
}

static void conn_lost(sl_client *c, int code, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	if (!c->connected || c->losing)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->cfg.retry_for_ms == 0)
		die(c, code, msg);
	else
		outage_begin(c, code, msg);
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
	sli_replay *r = &s->rp[d->collection == SL_OK ? SL_OK : SL_ERR];
	int clean = sli_replay_clean(r);
	size_t len = d->events.len;
	sli_qitem *it = sli_qitem_new(SLI_QI_DATA, s, clean ? len : sli_replay_bound(r, d->events));
	if (it == NULL) {
		conn_lost(c, SL_ENOMEM, "out of memory queueing a Data frame");
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
		conn_lost(c, rc, "out of memory accounting a Data frame");
		return;
	}
	if (len < d->events.len) {
		/* the worker never sees (so never grants) what was dropped: grant it here */
		sli_frame f = {.type = SLI_CREDIT};
		f.u.credit = (sli_credit){.handle = s->handle, .bytes = d->events.len - len};
		send_frame(c, &f);
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
				conn_lost(c, SL_ENOMEM, "out of memory");
				return;
			}
			it->since = ok->since;
			it->upper = ok->upper;
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
		if (c->append_inflight == f->u.append_ok.batch)
			c->append_inflight = 0;
		on_append_answer(c, f->u.append_ok.batch, 0, f->u.append_ok.time, (sl_bytes){0});
		break;
	case SLI_APPEND_ERROR:
		if (c->append_inflight == f->u.append_error.batch)
			c->append_inflight = 0;
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

/* ---- runtime thread: connecting again ---- */

static void encode_hello(sl_client *c, sli_frame *f)
{
	memset(f, 0, sizeof(*f));
	f->type = SLI_HELLO;
	f->u.hello = (sli_hello){.magic = SLI_MAGIC, .version = SLI_PROTO_VERSION,
	                         .session = c->session, .epoch = 0,
	                         .name = {(const uint8_t *)"libsluice", 9}};
}

/* A server answered Hello on the new connection: resume everything. */
static void conn_up(sl_client *c, const sli_hello *h, size_t consumed)
{
	pthread_mutex_lock(&c->mu);
	c->srv_session = h->session;
	c->srv_epoch = h->epoch;
	c->reconnects++;
	pthread_mutex_unlock(&c->mu);
	memmove(c->rbuf, c->rbuf + consumed, c->rlen - consumed);
	c->rlen -= consumed;
	c->connected = 1;
	c->phase = SLI_PH_UP;
	c->attempts = 0;
	c->last_rx = c->last_ping = sli_now_ms();
	c->want_write = 0;
	sli_loop_mod(c->loop, c->fd, SLI_READ);

	/* One Reconnected per queue with a subscription, ahead of everything resumed... */
	for (sli_csub *s = c->parked; s; s = s->pnext) {
		if (s->q->disc_mark)
			continue;
		s->q->disc_mark = 1;
		sli_qitem *it = sli_qitem_new(SLI_QI_RECONNECTED, NULL, 0);
		if (it) {
			it->since = h->session;
			it->upper = h->epoch;
			sli_queue_push(s->q, it);
		}
	}
	for (sli_csub *s = c->parked; s; s = s->pnext)
		s->q->disc_mark = 0;
	/* ...then every parked subscription is subscribed again (or parked as DONE). */
	sli_csub *list = c->parked;
	c->parked = NULL;
	for (sli_csub *s = list, *nx; s; s = nx) {
		nx = s->pnext;
		s->pnext = s->pprev = NULL;
		if (s->rstate == SLI_R_DONE) {
			park(c, s, SLI_R_DONE);
			continue;
		}
		if (subscribe_wire(c, s) != 0) {
			sli_qitem *it = msg_item(SLI_QI_SUBERR, s, SL_ENOMEM, "out of memory", 13);
			if (it)
				sli_queue_push(s->q, it);
			s->rstate = SLI_R_NEW; /* on no list, holding no handle */
			release(c, s);
		}
	}
	/* frames that came right behind the Hello */
	parse_frames(c);
}

/* The non-blocking connect and Hello exchange of a new connection. */
static void hello_io(sl_client *c, uint32_t events)
{
	sli_frame f;
	if (c->phase == SLI_PH_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		if (err != 0) {
			attempt_failed(c, -err);
			return;
		}
		if (!(events & SLI_WRITE))
			return; /* still connecting */
		sli_set_nodelay(c->fd);
		encode_hello(c, &f);
		if (sli_frame_encode(&c->out, &f) != 0) {
			attempt_failed(c, SL_ENOMEM);
			return;
		}
		c->phase = SLI_PH_HELLO;
	}
	while (c->out.len > 0) {
		ssize_t n = send(c->fd, c->out.ptr, c->out.len, MSG_NOSIGNAL);
		if (n > 0) {
			sli_buf_consume(&c->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		attempt_failed(c, n < 0 ? -errno : SL_EDISCONNECTED);
		return;
	}
	sli_loop_mod(c->loop, c->fd, c->out.len > 0 ? SLI_READ | SLI_WRITE : SLI_READ);
	for (;;) {
		ssize_t r = sli_frame_decode(c->rbuf, c->rlen, c->cfg.max_frame, &f);
		if (r < 0) {
			attempt_failed(c, (int)r);
			return;
		}
		if (r > 0) {
			if (f.type == SLI_ERROR)
				attempt_failed(c, f.u.error.code ? f.u.error.code : SL_EPROTO);
			else if (f.type != SLI_HELLO || f.u.hello.magic != SLI_MAGIC)
				attempt_failed(c, SL_EPROTO);
			else if (f.u.hello.version != SLI_PROTO_VERSION)
				attempt_failed(c, SL_EVERSION);
			else
				conn_up(c, &f.u.hello, (size_t)r);
			return;
		}
		if (c->rlen == c->rcap) {
			attempt_failed(c, SL_EPROTO); /* a Hello larger than the read buffer */
			return;
		}
		ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
		if (n > 0) {
			c->rlen += (size_t)n;
		} else if (n == 0) {
			attempt_failed(c, SL_EDISCONNECTED);
			return;
		} else if (errno != EINTR) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				attempt_failed(c, -errno);
			return;
		}
	}
}

static void on_io(sli_loop *l, int fd, uint32_t events, void *arg);

/* Starts one attempt: a non-blocking connect, finished in hello_io. */
static void try_connect(sl_client *c)
{
	struct sockaddr_in sa;
	int rc, fd;
	if ((rc = sli_parse_hostport(c->server, &sa)) != 0) {
		attempt_failed(c, rc);
		return;
	}
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		attempt_failed(c, -errno);
		return;
	}
	if ((rc = sli_loop_add(c->loop, fd, SLI_READ | SLI_WRITE, on_io, c)) != 0) {
		close(fd);
		attempt_failed(c, rc);
		return;
	}
	c->fd = fd;
	c->rlen = 0;
	c->out.len = 0;
	c->phase = SLI_PH_CONNECTING;
	/* an attempt does not outlive the window by more than a last chance */
	uint64_t now = sli_now_ms(), end = c->outage_start + c->cfg.retry_for_ms;
	c->attempt_deadline = now + (uint64_t)c->cfg.connect_timeout_ms;
	if (c->attempt_deadline > end + RETRY_MIN_MS)
		c->attempt_deadline = end + RETRY_MIN_MS;
	/* refused at once on loopback; otherwise writability (or an error) reports the outcome */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		attempt_failed(c, -errno);
}

static void on_timer(sli_loop *l, int fd, uint32_t events, void *arg)
{
	sl_client *c = arg;
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));
	(void)r;
	if (c->phase != SLI_PH_WAIT)
		return;
	if (sli_now_ms() >= c->outage_start + c->cfg.retry_for_ms)
		give_up(c, c->last_attempt_rc);
	else
		try_connect(c);
}

/* ---- runtime thread: the connection's readiness ---- */

static void on_io(sli_loop *l, int fd, uint32_t events, void *arg)
{
	sl_client *c = arg;
	if (c->phase == SLI_PH_CONNECTING || c->phase == SLI_PH_HELLO) {
		hello_io(c, events);
		return;
	}
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
	if ((c->phase == SLI_PH_CONNECTING || c->phase == SLI_PH_HELLO) &&
	    now >= c->attempt_deadline) {
		attempt_failed(c, SL_ETIMEDOUT);
		return;
	}
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
	sli_frame f;
	int rc;
	encode_hello(c, &f);
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
			c->srv_session = f.u.hello.session;
			c->srv_epoch = f.u.hello.epoch;
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
	c->window_max = c->cfg.window > WINDOW_GROWN_MAX ? c->cfg.window : WINDOW_GROWN_MAX;
	c->fd = -1;
	c->timerfd = -1;
	if (getrandom(&c->session, sizeof(c->session), 0) != sizeof(c->session))
		c->session = sli_now_ms() ^ ((uint64_t)getpid() << 32);
	c->rng = c->session | 1;
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
	if ((c->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0) {
		rc = -errno;
		goto err_loop;
	}
	if ((rc = sli_loop_add(c->loop, c->timerfd, SLI_READ, on_timer, c)) != 0)
		goto err_timer;
	sli_loop_on_wake(c->loop, on_wake, c);
	uint32_t tick = c->cfg.heartbeat_ms / 2;
	if (tick > c->cfg.idle_timeout_ms / 4)
		tick = c->cfg.idle_timeout_ms / 4;
	sli_loop_on_tick(c->loop, tick < 10 ? 10 : tick, on_tick, c);
	sli_loop_on_idle(c->loop, on_idle, c);
	c->connected = 1;
	c->phase = SLI_PH_UP;
	c->last_rx = c->last_ping = sli_now_ms();
	if ((rc = -pthread_create(&c->thread, NULL, runtime_main, c)) != 0)
		goto err_timer;
	*out = c;
	return 0;
err_timer:
	if (c->timerfd >= 0)
		close(c->timerfd);
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
	while (c->parked)
		release(c, c->parked);
	for (sli_cmd *cmd = c->list_head, *nx; cmd; cmd = nx) {
		nx = cmd->next;
		sli_cmd_free(cmd);
	}
	if (c->fd >= 0) {
		sli_loop_del(c->loop, c->fd);
		close(c->fd);
	}
	sli_loop_del(c->loop, c->timerfd);
	close(c->timerfd);
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
