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
#include "net/tls.h"

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

static void conn_lost(sli_conn *k, int code, const char *fmt, ...);
static uint32_t conn_process(const sli_conn *k);

static void send_frame(sli_conn *k, const sli_frame *f)
{
	if (!k->connected)
		return;
	if (sli_frame_encode(&k->out, f) != 0)
		conn_lost(k, SL_ENOMEM, "out of memory encoding a %s frame", sli_frame_type_name(f->type));
}

static void flush(sli_conn *k)
{
	sl_client *c = k->c;
	while (k->connected && k->out.len > 0) {
		ssize_t n = sli_io_send(k->fd, k->ssl, k->out.ptr, k->out.len);
		if (n > 0) {
			sli_buf_consume(&k->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!k->want_write && sli_loop_mod(c->loop, k->fd, SLI_READ | SLI_WRITE) == 0)
				k->want_write = 1;
			return;
		}
		conn_lost(k, n < 0 ? -errno : SL_EDISCONNECTED, "write to storage failed: %s",
		          strerror(n < 0 ? errno : EPIPE));
		return;
	}
	if (k->connected && k->want_write) {
		sli_loop_mod(c->loop, k->fd, SLI_READ);
		k->want_write = 0;
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

static int handle_alloc(sli_conn *k, uint32_t *h)
{
	if (k->nfree > 0) {
		*h = k->freeh[--k->nfree];
		return 0;
	}
	uint32_t n = k->nslots ? k->nslots * 2 : 256;
	sli_csub **ns = realloc(k->slots, n * sizeof(*ns));
	if (ns == NULL)
		return SL_ENOMEM;
	k->slots = ns;
	uint32_t *nf = realloc(k->freeh, n * sizeof(*nf));
	if (nf == NULL)
		return SL_ENOMEM;
	k->freeh = nf;
	/* push the new handles so that the lowest comes out first */
	for (uint32_t i = n; i > k->nslots; i--) {
		k->slots[i - 1] = NULL;
		k->freeh[k->nfree++] = i - 1;
	}
	k->nslots = n;
	*h = k->freeh[--k->nfree];
	return 0;
}

static sli_csub *handle_get(sli_conn *k, uint32_t h)
{
	return h < k->nslots ? k->slots[h] : NULL;
}

static void park(sli_conn *k, sli_csub *s, int rstate)
{
	s->rstate = rstate;
	s->pprev = NULL;
	s->pnext = k->parked;
	if (k->parked)
		k->parked->pprev = s;
	k->parked = s;
}

static void unpark(sli_conn *k, sli_csub *s)
{
	if (s->pprev)
		s->pprev->pnext = s->pnext;
	else
		k->parked = s->pnext;
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
	sli_conn *k = &c->conns[s->proc];
	if (is_parked(s))
		unpark(k, s);
	else if (s->rstate != SLI_R_NEW && s->handle < k->nslots && k->slots[s->handle] == s) {
		k->slots[s->handle] = NULL;
		k->freeh[k->nfree++] = s->handle;
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
static int subscribe_wire(sli_conn *k, sli_csub *s)
{
	sl_client *c = k->c;
	uint64_t from = s->from;
	uint32_t h;
	if (s->acked) {
		uint64_t a = sli_replay_frontier(&s->rp[SL_OK]), b = sli_replay_frontier(&s->rp[SL_ERR]);
		uint64_t f = a < b ? a : b;
		if (f == SL_TIME_CLOSED) {
			park(k, s, SLI_R_DONE);
			return 0;
		}
		/* never before the original `from`: storage would send times the worker never had */
		if (f > from)
			from = f;
	}
	if (handle_alloc(k, &h) != 0)
		return SL_ENOMEM;
	if (s->acked) {
		sli_replay_rewind(&s->rp[SL_OK]);
		sli_replay_rewind(&s->rp[SL_ERR]);
	}
	k->slots[h] = s;
	s->handle = h;
	s->gen++;
	s->rstate = SLI_R_SUBSCRIBING;
	sli_frame f;
	memset(&f, 0, sizeof(f));
	f.type = SLI_SUBSCRIBE;
	f.u.subscribe = (sli_subscribe){.handle = h, .dataflow = s->dataflow, .source = s->source,
	                                .worker = s->worker, .from = from, .credit = c->cfg.window};
	send_frame(k, &f);
	return 0;
}

/* ---- runtime thread: requests that cannot be answered ---- */

/* Fails the ListSources a caller waits for, if it is seq: process k could not answer it. */
static void fail_list(sli_conn *k, uint64_t seq, int rc)
{
	sl_client *c = k->c;
	pthread_mutex_lock(&c->mu);
	if (c->list_wait == seq && !c->list_done) {
		c->list_rc = rc;
		snprintf(c->list_msg, sizeof(c->list_msg),
		         "storage process %u (%s) is not connected: %s", k->index, k->addr,
		         sl_strerror(rc));
		c->list_done = 1;
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
}

static void on_append_answer(sli_conn *k, uint64_t batch, int rc, uint64_t time, sl_bytes msg);

static const char append_lost_msg[] = "the connection to storage was lost before the batch was "
                                      "answered: it may or may not have been committed";

/* ---- runtime thread: commands ---- */

static void run_cmd(sl_client *c, sli_cmd *cmd)
{
	sli_csub *s = cmd->sub;
	sli_conn *k = s ? &c->conns[s->proc] : &c->conns[cmd->proc < c->nconns ? cmd->proc : 0];
	sli_frame f;
	memset(&f, 0, sizeof(f));
	if (s == NULL && (cmd->kind == SLI_CMD_SUB || cmd->kind == SLI_CMD_UNSUB ||
	                  cmd->kind == SLI_CMD_CREDIT))
		return; /* cannot happen: these commands always carry their subscription */
	switch (cmd->kind) {
	case SLI_CMD_SUB:
		/* the command's reference becomes the runtime's */
		if (!k->connected && (!c->dead || c->losing)) {
			/* an outage (or the end of one): subscribed when a connection is back */
			park(k, s, SLI_R_PARKED);
			break;
		}
		if (!k->connected || subscribe_wire(k, s) != 0) {
			sli_qitem *it = k->connected
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
			send_frame(k, &f);
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
			send_frame(k, &f);
		}
		sli_csub_unref(s);
		break;
	case SLI_CMD_LIST:
		/* asked of every process; each keeps a copy of the command until its answer */
		for (uint32_t i = 0; i < c->nconns; i++) {
			sli_conn *kk = &c->conns[i];
			sli_cmd *one;
			if (!kk->connected) {
				fail_list(kk, cmd->seq, SL_EDISCONNECTED);
				continue;
			}
			if ((one = calloc(1, sizeof(*one))) == NULL) {
				fail_list(kk, cmd->seq, SL_ENOMEM);
				continue;
			}
			one->kind = SLI_CMD_LIST;
			one->seq = cmd->seq;
			one->proc = i;
			f.type = SLI_LIST_SOURCES;
			send_frame(kk, &f);
			/* answers come in request order */
			if (kk->list_tail)
				kk->list_tail->next = one;
			else
				kk->list_head = one;
			kk->list_tail = one;
		}
		break;
	case SLI_CMD_APPEND:
		if (k->connected) {
			if (sli_buf_reserve(&k->out, cmd->frames.len) != 0) {
				on_append_answer(k, cmd->seq, SL_ENOMEM, 0, (sl_bytes){0});
				break;
			}
			memcpy(k->out.ptr + k->out.len, cmd->frames.ptr, cmd->frames.len);
			k->out.len += cmd->frames.len;
			k->append_inflight = cmd->seq;
			break;
		}
		/* never sent: certainly not committed */
		on_append_answer(k, cmd->seq, SL_EDISCONNECTED, 0,
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
static void close_socket(sli_conn *k)
{
	sli_tls_free(k->ssl);
	k->ssl = NULL;
	if (k->fd >= 0) {
		sli_loop_del(k->c->loop, k->fd);
		close(k->fd);
		k->fd = -1;
	}
	k->connected = 0;
	k->want_write = 0;
	k->out.len = 0;
	k->rlen = 0;
}

/* Fails every request sent on the connection just lost: their answers will never come. */
static void fail_inflight(sli_conn *k)
{
	for (sli_cmd *cmd = k->list_head, *nx; cmd; cmd = nx) {
		nx = cmd->next;
		fail_list(k, cmd->seq, SL_EDISCONNECTED);
		sli_cmd_free(cmd);
	}
	k->list_head = k->list_tail = NULL;
	if (k->append_inflight) {
		on_append_answer(k, k->append_inflight, SL_EDISCONNECTED, 0,
		                 (sl_bytes){(const uint8_t *)append_lost_msg, sizeof(append_lost_msg) - 1});
		k->append_inflight = 0;
	}
}

static void disconnected_once(sli_csub *s, int code, const char *msg)
{
	if (s->q->disc_mark)
		return;
	sli_qitem *it = msg_item(SLI_QI_DISCONNECTED, NULL, code, msg, strlen(msg));
	s->q->disc_mark = 1;
	if (it)
		sli_queue_push(s->q, it);
}

/* The end: no more reconnects, on any connection (one process lost for good ends the client).
 * One Disconnected per queue that still has a subscription its worker sees, then every
 * subscription ends. */
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
	for (uint32_t i = 0; i < c->nconns; i++) {
		close_socket(&c->conns[i]);
		c->conns[i].phase = SLI_PH_DEAD;
	}
	for (sli_cmd *nx; cmds; cmds = nx) {
		nx = cmds->next;
		run_cmd(c, cmds);
	}
	for (uint32_t i = 0; i < c->nconns; i++)
		fail_inflight(&c->conns[i]);

	for (uint32_t i = 0; i < c->nconns; i++) {
		sli_conn *k = &c->conns[i];
		for (uint32_t h = 0; h < k->nslots; h++) {
			sli_csub *s = k->slots[h];
			if (s && s->rstate != SLI_R_UNSUBSCRIBING)
				disconnected_once(s, code, msg);
		}
		for (sli_csub *s = k->parked; s; s = s->pnext)
			disconnected_once(s, code, msg);
	}
	for (uint32_t i = 0; i < c->nconns; i++) {
		sli_conn *k = &c->conns[i];
		for (uint32_t h = 0; h < k->nslots; h++) {
			sli_csub *s = k->slots[h];
			if (s) {
				s->q->disc_mark = 0;
				release(c, s);
			}
		}
		while (k->parked) {
			k->parked->q->disc_mark = 0;
			release(c, k->parked);
		}
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

static void arm_timer(sli_conn *k, uint64_t delay_ms)
{
	struct itimerspec its;
	memset(&its, 0, sizeof(its));
	if (delay_ms == 0)
		delay_ms = 1; /* 0 would disarm */
	its.it_value.tv_sec = (time_t)(delay_ms / 1000);
	its.it_value.tv_nsec = (long)(delay_ms % 1000) * 1000000L;
	timerfd_settime(k->timerfd, 0, &its, NULL);
}

/* Waits before the next attempt: RETRY_MIN_MS doubling up to RETRY_MAX_MS, +-25% jitter, and
 * never past the end of the window (where the timer gives up). */
static void schedule_attempt(sli_conn *k)
{
	sl_client *c = k->c;
	uint64_t delay = RETRY_MIN_MS;
	for (uint32_t i = 0; i < k->attempts && delay < RETRY_MAX_MS; i++)
		delay *= 2;
	if (delay > RETRY_MAX_MS)
		delay = RETRY_MAX_MS;
	delay = delay * 3 / 4 + rng_next(c) % (delay / 2 + 1);
	k->attempts++;
	uint64_t now = sli_now_ms(), end = k->outage_start + c->cfg.retry_for_ms;
	if (now + delay > end)
		delay = end > now ? end - now : 0;
	k->phase = SLI_PH_WAIT;
	arm_timer(k, delay);
}

static void give_up(sli_conn *k, int last_rc)
{
	char msg[512];
	if (k->c->nconns > 1)
		snprintf(msg, sizeof(msg), "storage process %u (%s): %s (no connection again within "
		         "%u ms; last attempt: %s)", k->index, k->addr, k->lost_msg,
		         k->c->cfg.retry_for_ms, sl_strerror(last_rc));
	else
		snprintf(msg, sizeof(msg), "%s (no connection again within %u ms; last attempt: %s)",
		         k->lost_msg, k->c->cfg.retry_for_ms, sl_strerror(last_rc));
	die(k->c, k->lost_code, msg);
}

/* An attempt to connect again failed: wait and try again, or give up. */
static void attempt_failed(sli_conn *k, int rc)
{
	close_socket(k);
	k->last_attempt_rc = rc;
	if (sli_now_ms() >= k->outage_start + k->c->cfg.retry_for_ms)
		give_up(k, rc);
	else
		schedule_attempt(k);
}

/* The connection is gone but may come back: every live subscription is parked (those being
 * unsubscribed end: storage dropped them with the connection), the requests in flight fail,
 * and the first attempt to connect again is scheduled.  Other connections go on. */
static void outage_begin(sli_conn *k, int code, const char *msg)
{
	sl_client *c = k->c;
	close_socket(k);
	k->lost_code = code;
	snprintf(k->lost_msg, sizeof(k->lost_msg), "%s", msg);
	k->outage_start = sli_now_ms();
	k->attempts = 0;
	fail_inflight(k);
	for (uint32_t h = 0; h < k->nslots; h++) {
		sli_csub *s = k->slots[h];
		if (s == NULL)
			continue;
		k->slots[h] = NULL;
		k->freeh[k->nfree++] = h;
		if (s->rstate == SLI_R_UNSUBSCRIBING)
			release(c, s);
		else
			park(k, s, SLI_R_PARKED);
	}
	schedule_attempt(k);
}

static void conn_lost(sli_conn *k, int code, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	if (!k->connected || k->c->losing)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (k->c->cfg.retry_for_ms == 0)
		die(k->c, code, msg);
	else
		outage_begin(k, code, msg);
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

static void on_sources(sli_conn *k, const sli_sources *src)
{
	sl_client *c = k->c;
	sli_cmd *cmd = k->list_head;
	sl_source_info *v = NULL;
	size_t n = 0;
	if (cmd == NULL)
		return; /* unsolicited: ignore */
	k->list_head = cmd->next;
	if (k->list_head == NULL)
		k->list_tail = NULL;
	int rc = build_sources(src, &v, &n);
	pthread_mutex_lock(&c->mu);
	if (c->list_wait == cmd->seq && !c->list_done) {
		if (rc != 0) {
			c->list_rc = rc;
			snprintf(c->list_msg, sizeof(c->list_msg), "%s", sl_strerror(rc));
			c->list_done = 1;
		} else if (c->list_parts[k->index] == NULL) {
			c->list_parts[k->index] = v;
			c->list_nparts[k->index] = n;
			v = NULL;
			if (--c->list_left == 0)
				c->list_done = 1;
		}
		if (c->list_done)
			pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
	sl_source_info_free(v, n);
	sli_cmd_free(cmd);
}

static void on_append_answer(sli_conn *k, uint64_t batch, int rc, uint64_t time, sl_bytes msg)
{
	sl_client *c = k->c;
	uint32_t i = k->index;
	pthread_mutex_lock(&c->mu);
	if (c->append_wait == batch && !c->append_done &&
	    c->append_state[i] == SLI_PART_PENDING) {
		c->append_state[i] = rc ? SLI_PART_FAILED : SLI_PART_OK;
		c->append_rcs[i] = rc;
		c->append_times[i] = time;
		free(c->append_msgs[i]);
		c->append_msgs[i] = rc ? strndup(msg.ptr ? (const char *)msg.ptr : "", msg.len) : NULL;
		if (--c->append_left == 0) {
			c->append_done = 1;
			pthread_cond_broadcast(&c->cv);
		}
	}
	pthread_mutex_unlock(&c->mu);
}

static void on_data(sli_conn *k, const sli_data *d)
{
	sli_csub *s = handle_get(k, d->handle);
	if (s == NULL || (s->rstate != SLI_R_SUBSCRIBING && s->rstate != SLI_R_LIVE))
		return; /* unsubscribed by its worker: dropped */
	sli_replay *r = &s->rp[d->collection == SL_OK ? SL_OK : SL_ERR];
	int clean = sli_replay_clean(r);
	size_t len = d->events.len;
	sli_qitem *it = sli_qitem_new(SLI_QI_DATA, s, clean ? len : sli_replay_bound(r, d->events));
	if (it == NULL) {
		conn_lost(k, SL_ENOMEM, "out of memory queueing a Data frame");
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
		conn_lost(k, rc, "out of memory accounting a Data frame");
		return;
	}
	if (len < d->events.len) {
		/* the worker never sees (so never grants) what was dropped: grant it here */
		sli_frame f = {.type = SLI_CREDIT};
		f.u.credit = (sli_credit){.handle = s->handle, .bytes = d->events.len - len};
		send_frame(k, &f);
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
		send_frame(k, &pong);
		break;
	}
	case SLI_PONG:
		break;
	case SLI_SUBSCRIBE_OK:
		s = handle_get(k, f->u.subscribe_ok.handle);
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
				conn_lost(k, SL_ENOMEM, "out of memory");
				return;
			}
			it->since = ok->since;
			it->upper = ok->upper;
			sli_queue_push(s->q, it);
		}
		break;
	case SLI_SUBSCRIBE_ERROR:
		s = handle_get(k, f->u.subscribe_error.handle);
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
		s = handle_get(k, f->u.unsubscribe_ok.handle);
		if (s)
			release(c, s);
		break;
	case SLI_ERROR:
		/* Non-fatal errors answer requests that have no error reply of their own (an
		 * Unsubscribe racing with a SubscribeError, a Credit for a handle storage just
		 * dropped): nothing to do. */
		if (f->u.error.fatal)
			conn_lost(k, f->u.error.code ? f->u.error.code : SL_EDISCONNECTED, "%.*s",
			          (int)f->u.error.message.len, (const char *)f->u.error.message.ptr);
		break;
	case SLI_SOURCES:
		on_sources(k, &f->u.sources);
		break;
	case SLI_CLUSTER:
		/* asked again after every reconnect (clusters and address lists): still the same
		 * cluster, and not a stale process (a term below one already seen)? */
		{
			uint64_t seen = atomic_load(&k->term);
			if (f->u.cluster.term < seen) {
				conn_lost(k, SL_ECLUSTER, "storage at %s has term %llu, below %llu: stale",
				          k->addr, (unsigned long long)f->u.cluster.term,
				          (unsigned long long)seen);
				return;
			}
			atomic_store(&k->term, f->u.cluster.term);
		}
		if (c->map_count > 1 && (f->u.cluster.fingerprint != c->fingerprint ||
		                         f->u.cluster.count != c->map_count ||
		                         f->u.cluster.process != conn_process(k))) {
			char msg[256];
			snprintf(msg, sizeof(msg), "storage process %u (%s) came back as another cluster "
			         "(fingerprint %016llx, process %u of %u)", k->index, k->addr,
			         (unsigned long long)f->u.cluster.fingerprint, f->u.cluster.process,
			         f->u.cluster.count);
			die(c, SL_ECLUSTER, msg);
		}
		break;
	case SLI_APPEND_OK:
		if (k->append_inflight == f->u.append_ok.batch)
			k->append_inflight = 0;
		on_append_answer(k, f->u.append_ok.batch, 0, f->u.append_ok.time, (sl_bytes){0});
		break;
	case SLI_APPEND_ERROR:
		if (k->append_inflight == f->u.append_error.batch)
			k->append_inflight = 0;
		on_append_answer(k, f->u.append_error.batch,
		                 f->u.append_error.code ? f->u.append_error.code : SL_EREJECTED, 0,
		                 f->u.append_error.message);
		break;
	default:
		conn_lost(k, SL_EPROTO, "unexpected %s frame from storage", sli_frame_type_name(f->type));
		break;
	}
}

/* Parses every complete frame in rbuf and keeps the partial tail.  Grows rbuf (up to one
 * max-size frame) when the frame at the head does not fit. */
static void parse_frames(sli_conn *k)
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
		conn_lost(k, (int)r, "malformed frame from storage: %s", sl_strerror((int)r));
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
				conn_lost(k, SL_ENOMEM, "out of memory for a %zu-byte frame", need);
				return;
			}
			k->rbuf = nb;
			k->rcap = need;
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
	if (c->token != NULL) {
		f->u.hello.flags |= SLI_HELLO_TOKEN;
		f->u.hello.token = (sl_bytes){(const uint8_t *)c->token, strlen(c->token)};
	}
}

/* A server answered Hello on the new connection: resume everything. */
static void conn_up(sli_conn *k, const sli_hello *h, size_t consumed)
{
	sl_client *c = k->c;
	pthread_mutex_lock(&c->mu);
	if (k->index == c->home) {
		c->srv_session = h->session;
		c->srv_epoch = h->epoch;
	}
	c->reconnects++;
	pthread_mutex_unlock(&c->mu);
	memmove(k->rbuf, k->rbuf + consumed, k->rlen - consumed);
	k->rlen -= consumed;
	k->connected = 1;
	k->phase = SLI_PH_UP;
	k->attempts = 0;
	k->last_rx = k->last_ping = sli_now_ms();
	k->want_write = 0;
	sli_loop_mod(c->loop, k->fd, SLI_READ);
	if (c->map_count > 1 || k->nalts > 1) {
		/* the same cluster (the same term or newer)?  checked when the answer comes */
		sli_frame cm = {.type = SLI_CLUSTER_MAP};
		send_frame(k, &cm);
	}

	/* One Reconnected per queue with a subscription, ahead of everything resumed... */
	for (sli_csub *s = k->parked; s; s = s->pnext) {
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
	for (sli_csub *s = k->parked; s; s = s->pnext)
		s->q->disc_mark = 0;
	/* ...then every parked subscription is subscribed again (or parked as DONE). */
	sli_csub *list = k->parked;
	k->parked = NULL;
	for (sli_csub *s = list, *nx; s; s = nx) {
		nx = s->pnext;
		s->pnext = s->pprev = NULL;
		if (s->rstate == SLI_R_DONE) {
			park(k, s, SLI_R_DONE);
			continue;
		}
		if (subscribe_wire(k, s) != 0) {
			sli_qitem *it = msg_item(SLI_QI_SUBERR, s, SL_ENOMEM, "out of memory", 13);
			if (it)
				sli_queue_push(s->q, it);
			s->rstate = SLI_R_NEW; /* on no list, holding no handle */
			release(c, s);
		}
	}
	/* frames that came right behind the Hello */
	parse_frames(k);
}

/* The non-blocking connect and Hello exchange of a new connection. */
static void hello_io(sli_conn *k, uint32_t events)
{
	sl_client *c = k->c;
	sli_frame f;
	if (k->phase == SLI_PH_CONNECTING) {
		if (k->ssl == NULL) {
			int err = 0;
			socklen_t el = sizeof(err);
			if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
				err = errno;
			if (err != 0) {
				attempt_failed(k, -err);
				return;
			}
			if (!(events & SLI_WRITE))
				return; /* still connecting */
			sli_set_nodelay(k->fd);
			if (c->tls != NULL && (k->ssl = sli_tls_new(c->tls, k->fd, 0, k->addr)) == NULL) {
				attempt_failed(k, SL_ENOMEM);
				return;
			}
		}
		if (k->ssl != NULL) {
			/* the TLS handshake happens in this phase too, under the attempt's deadline */
			char why[256];
			int r = sli_tls_handshake(k->ssl, why, sizeof(why));
			if (r < 0) {
				attempt_failed(k, r);
				return;
			}
			if (r > 0) {
				sli_loop_mod(c->loop, k->fd, r == SLI_WRITE ? SLI_WRITE : SLI_READ);
				return;
			}
		}
		encode_hello(c, &f);
		if (sli_frame_encode(&k->out, &f) != 0) {
			attempt_failed(k, SL_ENOMEM);
			return;
		}
		k->phase = SLI_PH_HELLO;
	}
	while (k->out.len > 0) {
		ssize_t n = sli_io_send(k->fd, k->ssl, k->out.ptr, k->out.len);
		if (n > 0) {
			sli_buf_consume(&k->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		attempt_failed(k, n < 0 ? -errno : SL_EDISCONNECTED);
		return;
	}
	sli_loop_mod(c->loop, k->fd, k->out.len > 0 ? SLI_READ | SLI_WRITE : SLI_READ);
	for (;;) {
		ssize_t r = sli_frame_decode(k->rbuf, k->rlen, c->cfg.max_frame, &f);
		if (r < 0) {
			attempt_failed(k, (int)r);
			return;
		}
		if (r > 0) {
			if (f.type == SLI_ERROR)
				attempt_failed(k, f.u.error.code ? f.u.error.code : SL_EPROTO);
			else if (f.type != SLI_HELLO || f.u.hello.magic != SLI_MAGIC)
				attempt_failed(k, SL_EPROTO);
			else if (f.u.hello.version != SLI_PROTO_VERSION)
				attempt_failed(k, SL_EVERSION);
			else
				conn_up(k, &f.u.hello, (size_t)r);
			return;
		}
		if (k->rlen == k->rcap) {
			attempt_failed(k, SL_EPROTO); /* a Hello larger than the read buffer */
			return;
		}
		ssize_t n = sli_io_read(k->fd, k->ssl, k->rbuf + k->rlen, k->rcap - k->rlen);
		if (n > 0) {
			k->rlen += (size_t)n;
		} else if (n == 0) {
			attempt_failed(k, SL_EDISCONNECTED);
			return;
		} else if (errno != EINTR) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				attempt_failed(k, -errno);
			return;
		}
	}
}

static void on_io(sli_loop *l, int fd, uint32_t events, void *arg);
static int pick_addr(sl_client *c, char (*alts)[SLI_ADDR_MAX], uint32_t n, uint64_t min_term,
                     uint64_t *term_out);

/* Starts one attempt: a non-blocking connect, finished in hello_io. */
static void try_connect(sli_conn *k)
{
	sl_client *c = k->c;
	struct sockaddr_in sa;
	int rc, fd;
	if ((rc = sli_parse_hostport(k->addr, &sa)) != 0) {
		attempt_failed(k, rc);
		return;
	}
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		attempt_failed(k, -errno);
		return;
	}
	if ((rc = sli_loop_add(c->loop, fd, SLI_READ | SLI_WRITE, on_io, k)) != 0) {
		close(fd);
		attempt_failed(k, rc);
		return;
	}
	k->fd = fd;
	k->rlen = 0;
	k->out.len = 0;
	k->phase = SLI_PH_CONNECTING;
	/* an attempt does not outlive the window by more than a last chance */
	uint64_t now = sli_now_ms(), end = k->outage_start + c->cfg.retry_for_ms;
	k->attempt_deadline = now + (uint64_t)c->cfg.connect_timeout_ms;
	if (k->attempt_deadline > end + RETRY_MIN_MS)
		k->attempt_deadline = end + RETRY_MIN_MS;
	/* refused at once on loopback; otherwise writability (or an error) reports the outcome */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		attempt_failed(k, -errno);
}

static void on_timer(sli_loop *l, int fd, uint32_t events, void *arg)
{
	sli_conn *k = arg;
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));
	(void)r;
	if (k->phase != SLI_PH_WAIT)
		return;
	if (sli_now_ms() >= k->outage_start + k->c->cfg.retry_for_ms) {
		give_up(k, k->last_attempt_rc);
		return;
	}
	if (k->nalts > 1) {
		/* the primary or a standby: the reachable one with the highest term, never one with
		 * a lower term than seen (a returning old primary is stale).  Blocks the runtime
		 * thread for one probe per address (refused at once when a host is up). */
		uint64_t t = 0;
		int i = pick_addr(k->c, k->alts, k->nalts, atomic_load(&k->term), &t);
		if (i < 0) {
			attempt_failed(k, i);
			return;
		}
		snprintf(k->addr, sizeof(k->addr), "%s", k->alts[i]);
	}
	try_connect(k);
}

/* ---- runtime thread: the connection's readiness ---- */

static void on_io(sli_loop *l, int fd, uint32_t events, void *arg)
{
	sli_conn *k = arg;
	if (k->phase == SLI_PH_CONNECTING || k->phase == SLI_PH_HELLO) {
		hello_io(k, events);
		return;
	}
	if (events & SLI_WRITE)
		flush(k);
	if (!(events & SLI_READ))
		return;
	/* A short read means the socket is drained; a full one that there may be more. */
	while (k->connected) {
		size_t room = k->rcap - k->rlen;
		ssize_t n = sli_io_read(fd, k->ssl, k->rbuf + k->rlen, room);
		if (n > 0) {
			k->rlen += (size_t)n;
			k->last_rx = sli_now_ms();
			parse_frames(k);
			if ((size_t)n < room)
				return;
			continue;
		}
		if (n == 0) {
			conn_lost(k, SL_EDISCONNECTED, "storage closed the connection");
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			conn_lost(k, -errno, "read from storage failed: %s", strerror(errno));
		return;
	}
}

static void conn_tick(sli_conn *k, uint64_t now)
{
	sl_client *c = k->c;
	if ((k->phase == SLI_PH_CONNECTING || k->phase == SLI_PH_HELLO) &&
	    now >= k->attempt_deadline) {
		attempt_failed(k, SL_ETIMEDOUT);
		return;
	}
	if (!k->connected)
		return;
	if (now - k->last_rx >= c->cfg.idle_timeout_ms) {
		conn_lost(k, SL_EIDLE, "no answer from storage for %u ms", c->cfg.idle_timeout_ms);
		return;
	}
	if (now - k->last_rx >= c->cfg.heartbeat_ms && now - k->last_ping >= c->cfg.heartbeat_ms) {
		sli_frame f = {.type = SLI_PING};
		f.u.ping.nonce = ++k->ping_nonce;
		send_frame(k, &f);
		k->last_ping = now;
	}
}

static void on_tick(sli_loop *l, void *arg)
{
	sl_client *c = arg;
	uint64_t now = sli_now_ms();
	for (uint32_t i = 0; i < c->nconns && !c->dead; i++)
		conn_tick(&c->conns[i], now);
}

static void on_idle(sli_loop *l, void *arg)
{
	sl_client *c = arg;
	/* bytes OpenSSL already holds never make the socket readable again */
	for (uint32_t i = 0; i < c->nconns; i++)
		if (c->conns[i].ssl != NULL && c->conns[i].connected && SSL_pending(c->conns[i].ssl) > 0)
			on_io(l, c->conns[i].fd, SLI_READ, &c->conns[i]);
	for (uint32_t i = 0; i < c->nconns; i++)
		flush(&c->conns[i]);
}

static void *runtime_main(void *arg)
{
	sl_client *c = arg;
	/* frames that arrived together with the servers' answers at open */
	for (uint32_t i = 0; i < c->nconns; i++) {
		parse_frames(&c->conns[i]);
		flush(&c->conns[i]);
	}
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

/* Sends f on k and returns in *ans the next frame that is not a Ping (pointing into k->rbuf,
 * valid until *consumed bytes are dropped from it), before the runtime thread exists. */
static int exchange(sli_conn *k, const sli_frame *f, uint64_t deadline, sli_frame *ans,
                    size_t *consumed)
{
	sl_client *c = k->c;
	int rc;
	if ((rc = sli_frame_encode(&k->out, f)) != 0)
		return rc;
	while (k->out.len > 0) {
		ssize_t n = sli_io_send(k->fd, k->ssl, k->out.ptr, k->out.len);
		if (n > 0)
			sli_buf_consume(&k->out, (size_t)n);
		else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if ((rc = wait_fd(k->fd, POLLOUT, deadline)) != 0)
				return rc;
		} else
			return n < 0 ? -errno : SL_EDISCONNECTED;
	}
	for (;;) {
		ssize_t r = sli_frame_decode(k->rbuf, k->rlen, c->cfg.max_frame, ans);
		if (r < 0)
			return (int)r;
		if (r > 0 && ans->type == SLI_PING) {
			memmove(k->rbuf, k->rbuf + r, k->rlen - (size_t)r);
			k->rlen -= (size_t)r;
			continue;
		}
		if (r > 0) {
			*consumed = (size_t)r;
			return 0;
		}
		if (k->rlen == k->rcap)
			return SL_EPROTO; /* an answer larger than the read buffer */
		ssize_t n = sli_io_read(k->fd, k->ssl, k->rbuf + k->rlen, k->rcap - k->rlen);
		if (n > 0)
			k->rlen += (size_t)n;
		else if (n == 0)
			return SL_EDISCONNECTED;
		else if (errno == EAGAIN || errno == EINTR) {
			if ((rc = wait_fd(k->fd, POLLIN, deadline)) != 0)
				return rc;
		} else
			return -errno;
	}
}

static void drop_answer(sli_conn *k, size_t consumed)
{
	memmove(k->rbuf, k->rbuf + consumed, k->rlen - consumed);
	k->rlen -= consumed;
}

/* Sends our Hello and waits for the server's, before the runtime thread exists. */
static int handshake(sli_conn *k, uint64_t *session, uint64_t *epoch)
{
	sl_client *c = k->c;
	uint64_t deadline = sli_now_ms() + (uint64_t)c->cfg.connect_timeout_ms;
	sli_frame f, ans = {0};
	size_t used = 0;
	int rc;
	encode_hello(c, &f);
	if ((rc = exchange(k, &f, deadline, &ans, &used)) != 0)
		return rc;
	if (ans.type == SLI_ERROR) {
		sli_set_last_error("%.*s", (int)ans.u.error.message.len,
		                   (const char *)ans.u.error.message.ptr);
		return ans.u.error.code ? ans.u.error.code : SL_EPROTO;
	}
	if (ans.type != SLI_HELLO || ans.u.hello.magic != SLI_MAGIC)
		return SL_EPROTO;
	if (ans.u.hello.version != SLI_PROTO_VERSION)
		return SL_EVERSION;
	*session = ans.u.hello.session;
	*epoch = ans.u.hello.epoch;
	drop_answer(k, used);
	return 0;
}

/* The cluster as one process describes it (copied out of the frame). */
typedef struct cluster_view {
	uint64_t fingerprint;
	uint64_t term;
	uint32_t process, count;
	char (*addrs)[SLI_MAP_ENTRY_MAX];
} cluster_view;

/* Asks k for the cluster map.  1 when the server does not know ClusterMap (a server older than
 * clusters: it answered with an Error and closed the connection), 2 when it did not answer in
 * time, 0 with *v filled. */
static int ask_cluster(sli_conn *k, cluster_view *v)
{
	uint64_t wait = (uint64_t)k->c->cfg.connect_timeout_ms;
	/* no longer than the runtime would wait before declaring the connection dead */
	if (wait > k->c->cfg.idle_timeout_ms)
		wait = k->c->cfg.idle_timeout_ms;
	uint64_t deadline = sli_now_ms() + wait;
	sli_frame f = {.type = SLI_CLUSTER_MAP}, ans = {0};
	size_t used = 0;
	int rc;
	if ((rc = exchange(k, &f, deadline, &ans, &used)) != 0)
		return rc == SL_ETIMEDOUT ? 2 : rc;
	if (ans.type == SLI_ERROR && ans.u.error.code == SL_EPROTO)
		return 1;
	if (ans.type != SLI_CLUSTER || ans.u.cluster.count == 0)
		return SL_EPROTO;
	v->fingerprint = ans.u.cluster.fingerprint;
	v->term = ans.u.cluster.term;
	v->process = ans.u.cluster.process;
	v->count = ans.u.cluster.count;
	if ((v->addrs = calloc(v->count, sizeof(*v->addrs))) == NULL)
		return SL_ENOMEM;
	sl_bytes rest = ans.u.cluster.addrs, one;
	for (uint32_t i = 0; i < v->count; i++) {
		if (sli_strs_next(&rest, &one) != 1 || one.len == 0 || one.len >= sizeof(v->addrs[i]))
			return SL_EPROTO; /* the caller frees v->addrs */
		memcpy(v->addrs[i], one.ptr, one.len);
	}
	drop_answer(k, used);
	return 0;
}

/* Splits list at sep into addresses (each non-empty, shorter than SLI_ADDR_MAX).  0 with *out
 * (free it) and *n set, SL_EARG, SL_ENOMEM. */
static int split_addrs(const char *list, char sep, char (**out)[SLI_ADDR_MAX], uint32_t *n)
{
	uint32_t cnt = 1;
	for (const char *p = list; *p; p++)
		cnt += *p == sep;
	char (*a)[SLI_ADDR_MAX] = calloc(cnt, sizeof(*a));
	if (a == NULL)
		return SL_ENOMEM;
	const char *p = list;
	for (uint32_t i = 0; i < cnt; i++) {
		const char *e = strchr(p, sep);
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == 0 || len >= SLI_ADDR_MAX) {
			free(a);
			return SL_EARG;
		}
		snprintf(a[i], sizeof(a[i]), "%.*s", (int)len, p);
		p = e ? e + 1 : p + len;
	}
	*out = a;
	*n = cnt;
	return 0;
}

static int conn_init(sl_client *c, sli_conn *k, uint32_t index, const char *addr)
{
	memset(k, 0, sizeof(*k));
	k->c = c;
	k->index = index;
	k->fd = -1;
	k->timerfd = -1;
	snprintf(k->addr, sizeof(k->addr), "%s", addr);
	sli_buf_init(&k->out);
	k->rcap = RBUF_INITIAL;
	if ((k->rbuf = malloc(k->rcap)) == NULL)
		return SL_ENOMEM;
	return 0;
}

/* Sets the addresses k fails over among: list split at sep (a map entry: '/').  An address k
 * already has that is not among them (the one the caller was given, spelt another way) goes
 * first. */
static int conn_set_alts(sli_conn *k, const char *list, char sep)
{
	char (*a)[SLI_ADDR_MAX];
	uint32_t n, i;
	int rc;
	if ((rc = split_addrs(list, sep, &a, &n)) != 0) {
		sli_set_last_error("bad address list '%s' for storage process %u", list, k->index);
		return rc;
	}
	for (i = 0; i < n && strcmp(a[i], k->addr) != 0; i++)
		;
	if (k->addr[0] != '\0' && i == n) {
		char (*b)[SLI_ADDR_MAX] = realloc(a, (n + 1) * sizeof(*a));
		if (b == NULL) {
			free(a);
			return SL_ENOMEM;
		}
		a = b;
		memmove(a + 1, a, n * sizeof(*a));
		snprintf(a[0], sizeof(a[0]), "%s", k->addr);
		n++;
	}
	if (k->addr[0] == '\0')
		snprintf(k->addr, sizeof(k->addr), "%s", a[0]);
	free(k->alts);
	k->alts = a;
	k->nalts = n;
	return 0;
}

/* Frees what conn_init and connecting allocated (the loop registrations are the caller's). */
static void conn_fini(sli_conn *k)
{
	for (sli_cmd *cmd = k->list_head, *nx; cmd; cmd = nx) {
		nx = cmd->next;
		sli_cmd_free(cmd);
	}
	k->list_head = k->list_tail = NULL;
	sli_tls_free(k->ssl);
	k->ssl = NULL;
	if (k->fd >= 0)
		close(k->fd);
	if (k->timerfd >= 0)
		close(k->timerfd);
	k->fd = k->timerfd = -1;
	sli_buf_fini(&k->out);
	free(k->rbuf);
	free(k->slots);
	free(k->freeh);
	free(k->alts);
	k->rbuf = NULL;
	k->slots = NULL;
	k->freeh = NULL;
	k->alts = NULL;
	k->nalts = 0;
}

/* Connects k to its address and exchanges Hello. */
static int conn_connect(sli_conn *k, uint64_t *session, uint64_t *epoch)
{
	int rc;
	if ((k->fd = sli_connect_tcp(k->addr, k->c->cfg.connect_timeout_ms)) < 0) {
		rc = k->fd;
		k->fd = -1;
		sli_set_last_error("cannot connect to storage at %s: %s", k->addr, sl_strerror(rc));
		return rc;
	}
	k->rlen = 0;
	k->out.len = 0;
	if (k->c->tls != NULL) {
		char why[256];
		uint64_t deadline = sli_now_ms() + (uint64_t)k->c->cfg.connect_timeout_ms;
		if ((rc = sli_tls_connect(k->c->tls, k->fd, k->addr, deadline, &k->ssl, why,
		                          sizeof(why))) != 0) {
			sli_set_last_error("TLS with storage at %s failed: %s", k->addr, why);
			close(k->fd);
			k->fd = -1;
			return rc;
		}
	}
	if ((rc = handshake(k, session, epoch)) != 0) {
		if (rc == -EPROTO && k->ssl != NULL) {
			/* e.g. TLS 1.3 mutual TLS: the refusal of our certificate comes after the
			 * handshake, as an alert in place of the answer */
			sli_set_last_error("TLS with storage at %s failed: %s", k->addr,
			                   sli_tls_last_error());
			rc = SL_ETLS;
		} else if ((rc == -ECONNRESET || rc == SL_EDISCONNECTED) && k->ssl != NULL) {
			sli_set_last_error("TLS with storage at %s failed: the server closed the "
			                   "connection after the handshake (does it want a client "
			                   "certificate: --tls-cert/--tls-key?)", k->addr);
			rc = SL_ETLS;
		}
		if (sl_client_last_error()[0] == '\0')
			sli_set_last_error("no Hello from storage at %s: %s", k->addr, sl_strerror(rc));
		sli_tls_free(k->ssl);
		k->ssl = NULL;
		close(k->fd);
		k->fd = -1;
	}
	return rc;
}

/* Connects to addr, asks its cluster map and hangs up: *term is its fencing term (0 for a
 * server without cluster maps). */
static int probe(sl_client *c, const char *addr, uint64_t *term)
{
	sli_conn k;
	cluster_view v = {0};
	uint64_t s, e;
	int rc;
	if ((rc = conn_init(c, &k, 0, addr)) != 0)
		return rc;
	if ((rc = conn_connect(&k, &s, &e)) == 0) {
		rc = ask_cluster(&k, &v);
		if (rc == 1) {
			*term = 0;
			rc = 0;
		} else if (rc == 2) {
			rc = SL_ETIMEDOUT;
		} else if (rc == 0) {
			*term = v.term;
		}
	}
	free(v.addrs);
	conn_fini(&k);
	return rc;
}

/* Of alts[0, n) (one process: a primary and its standbys), the reachable one with the highest
 * term, at least min_term (ties: the first listed).  Blocks for one connection attempt per
 * address.  Its index, or a negative error (the last address's). */
static int pick_addr(sl_client *c, char (*alts)[SLI_ADDR_MAX], uint32_t n, uint64_t min_term,
                     uint64_t *term_out)
{
	int best = -1, rc = SL_EDISCONNECTED;
	uint64_t best_term = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t t = 0;
		int r = probe(c, alts[i], &t);
		if (r != 0) {
			rc = r;
			continue;
		}
		if (t < min_term) {
			rc = SL_ECLUSTER; /* stale: an old primary that came back */
			continue;
		}
		if (best < 0 || t > best_term) {
			best = (int)i;
			best_term = t;
		}
	}
	if (best < 0) {
		sli_set_last_error("no storage reachable at %s%s with term >= %llu: %s", alts[0],
		                   n > 1 ? " or its standbys" : "", (unsigned long long)min_term,
		                   sl_strerror(rc));
		return rc;
	}
	*term_out = best_term;
	return best;
}

/* The cluster process connection k talks to. */
static uint32_t conn_process(const sli_conn *k)
{
	return k->c->nconns > 1 ? k->index : k->c->map_process;
}

/* Connects to process i of the map (the reachable one of its addresses with the highest term),
 * exchanges Hello and checks that it describes the same cluster as the home process did. */
static int join_process(sl_client *c, sli_conn *k, uint32_t i)
{
	cluster_view w = {0};
	uint64_t s, e, t = 0;
	int rc;
	if ((rc = conn_init(c, k, i, "")) != 0 || (rc = conn_set_alts(k, c->map[i], '/')) != 0)
		return rc;
	if (k->nalts > 1) {
		int j = pick_addr(c, k->alts, k->nalts, 0, &t);
		if (j < 0) {
			char why[512];
			snprintf(why, sizeof(why), "%s", sl_client_last_error());
			sli_set_last_error("storage process %u of %u: %s", i, c->map_count, why);
			return j;
		}
		snprintf(k->addr, sizeof(k->addr), "%s", k->alts[j]);
	}
	if ((rc = conn_connect(k, &s, &e)) != 0) {
		char why[512];
		snprintf(why, sizeof(why), "%s", sl_client_last_error());
		sli_set_last_error("storage process %u of %u: %s", i, c->map_count, why);
		return rc;
	}
	if ((rc = ask_cluster(k, &w)) != 0) {
		free(w.addrs);
		rc = rc == 1 ? SL_ECLUSTER : rc == 2 ? SL_ETIMEDOUT : rc;
		sli_set_last_error("storage process %u at %s gave no cluster map: %s", i, k->addr,
		                   sl_strerror(rc));
		return rc;
	}
	int same = w.fingerprint == c->fingerprint && w.count == c->map_count && w.process == i;
	for (uint32_t j = 0; same && j < w.count; j++)
		same = strcmp(w.addrs[j], c->map[j]) == 0;
	free(w.addrs);
	if (!same) {
		sli_set_last_error("storage process %u at %s disagrees about the cluster: it says "
		                   "fingerprint %016llx, process %u of %u; %s says fingerprint "
		                   "%016llx, %u processes", i, k->addr,
		                   (unsigned long long)w.fingerprint, w.process, w.count, c->server,
		                   (unsigned long long)c->fingerprint, c->map_count);
		return SL_ECLUSTER;
	}
	atomic_store(&k->term, w.term);
	return 0;
}

/* Connects to cfg->server, learns the cluster and connects to every other process, checking
 * that all describe the same cluster.  Fills c->conns, c->nconns, c->home, c->fingerprint and
 * the map. */
static int cluster_open(sl_client *c)
{
	sli_conn first;
	cluster_view v = {0};
	uint64_t session = 0, epoch = 0;
	const char *home_addr = c->server;
	int rc;
	if (c->naddrs > 1) {
		uint64_t t = 0;
		int i = pick_addr(c, c->addrs, c->naddrs, 0, &t);
		if (i < 0)
			return i;
		home_addr = c->addrs[i];
	}
	if ((rc = conn_init(c, &first, 0, home_addr)) != 0)
		return rc;
	if ((rc = conn_connect(&first, &session, &epoch)) != 0)
		goto err_first;
	if ((rc = ask_cluster(&first, &v)) == 1) {
		/* a server without clusters: it closed the connection; connect again, alone */
		sli_tls_free(first.ssl);
		first.ssl = NULL;
		close(first.fd);
		first.fd = -1;
		v.count = 1;
		if ((rc = conn_connect(&first, &session, &epoch)) != 0)
			goto err_first;
	} else if (rc == 2) {
		/* Hello but no cluster map: a lone server, silent for now.  The runtime's idle timeout
		 * deals with a server that stays silent; a late answer is ignored. */
		v.count = 1;
	} else if (rc != 0) {
		sli_set_last_error("no cluster map from storage at %s: %s", c->server, sl_strerror(rc));
		goto err_first;
	}
	c->srv_session = session;
	c->srv_epoch = epoch;
	c->fingerprint = v.fingerprint;
	c->map_count = v.count;
	c->map_process = v.count > 1 ? v.process : 0;
	c->map = v.addrs; /* NULL from a server without cluster maps */
	v.addrs = NULL;
	c->nconns = v.count > 1 && !c->cfg.one_process ? v.count : 1;
	c->home = c->nconns > 1 ? v.process : 0;
	/* The home process's addresses: a lone process's are the ones we were given; a cluster
	 * process's, its map entry (where the address we reached stays first). */
	first.index = c->home;
	atomic_store(&first.term, v.term);
	if (c->cfg.one_process)
		rc = conn_set_alts(&first, home_addr, ','); /* the one address it follows */
	else if (v.count > 1 || (c->map != NULL && strchr(c->map[0], '/') != NULL))
		rc = conn_set_alts(&first, c->map[c->map_process], '/');
	else
		rc = conn_set_alts(&first, c->server, ',');
	if (rc != 0)
		goto err_first;
	if ((c->conns = calloc(c->nconns, sizeof(*c->conns))) == NULL) {
		rc = SL_ENOMEM;
		goto err_first;
	}
	for (uint32_t i = 0; i < c->nconns; i++)
		c->conns[i].fd = c->conns[i].timerfd = -1;
	c->conns[c->home] = first;
	/* moved: what first held is the home connection's now */
	memset(&first, 0, sizeof(first));
	first.fd = first.timerfd = -1;
	sli_buf_init(&first.out);
	for (uint32_t i = 0; i < c->nconns; i++) {
		if (i != c->home && (rc = join_process(c, &c->conns[i], i)) != 0)
			goto err_conns;
	}
	return 0;
err_conns:
	for (uint32_t i = 0; i < c->nconns; i++)
		conn_fini(&c->conns[i]);
	free(c->conns);
	c->conns = NULL;
err_first:
	free(v.addrs);
	free(c->map);
	c->map = NULL;
	conn_fini(&first);
	return rc;
}

uint64_t sl_client_term(sl_client *c)
{
	return c ? atomic_load(&c->conns[c->home].term) : 0;
}

int sl_client_cluster(sl_client *c, uint32_t *processes)
{
	if (c == NULL)
		return SL_EARG;
	if (processes)
		*processes = c->map_count;
	return 0;
}

void sli_client_map(const sl_client *c, uint64_t *fingerprint, uint32_t *count,
                    uint32_t *process, const char (**entries)[SLI_MAP_ENTRY_MAX])
{
	*fingerprint = c->fingerprint;
	*count = c->map_count;
	*process = c->map_process;
	*entries = (const char (*)[SLI_MAP_ENTRY_MAX])c->map;
}

/* Frees the client and what it owns beside its connections (the per-process request tables,
 * the routing table, the address lists, TLS and token); NULL members are fine, so a client
 * that failed half way through opening is freed the same way as a closed one. */
static void client_free(sl_client *c)
{
	free(c->list_parts);
	free(c->list_nparts);
	free(c->append_state);
	free(c->append_rcs);
	free(c->append_times);
	free(c->append_msgs);
	free(c->wsrc);
	free(c->wcount);
	free(c->tbuckets);
	free(c->addrs);
	free(c->map);
	SSL_CTX_free(c->tls);
	free(c->token);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->list_mu);
	pthread_mutex_destroy(&c->append_mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

int sl_client_open(const sl_client_config *cfg, sl_client **out)
{
	sl_client_config def;
	sl_client *c;
	pthread_condattr_t ca;
	int rc;
	sli_set_last_error("%s", "");
	if (out == NULL)
		return SL_EARG;
	sl_client_config_init(&def);
	if (cfg == NULL)
		cfg = &def;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return SL_ENOMEM;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->list_mu, NULL);
	pthread_mutex_init(&c->append_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	c->cfg = *cfg;
	if (snprintf(c->server, sizeof(c->server), "%s", cfg->server ? cfg->server : def.server) >=
	    (int)sizeof(c->server)) {
		sli_set_last_error("server address too long");
		rc = SL_EARG;
		goto err_free;
	}
	c->cfg.server = c->server;
	if (strchr(c->server, ',') != NULL &&
	    (rc = split_addrs(c->server, ',', &c->addrs, &c->naddrs)) != 0) {
		sli_set_last_error("bad server list '%s'", cfg->server);
		goto err_free;
	}
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
	if (c->cfg.tls_ca != NULL || c->cfg.tls_cert != NULL || c->cfg.tls_key != NULL) {
		char why[512];
		if ((rc = sli_tls_client_ctx(c->cfg.tls_ca, c->cfg.tls_cert, c->cfg.tls_key, &c->tls,
		                             why, sizeof(why))) != 0) {
			sli_set_last_error("%s", why);
			goto err_free;
		}
	}
	if (c->cfg.auth_token != NULL && (c->token = strdup(c->cfg.auth_token)) == NULL) {
		rc = SL_ENOMEM;
		goto err_free;
	}
	/* the caller's strings are read during the call only */
	c->cfg.tls_ca = c->cfg.tls_cert = c->cfg.tls_key = c->cfg.auth_token = NULL;
	c->credit_batch = c->cfg.window / 4;
	c->window_max = c->cfg.window > WINDOW_GROWN_MAX ? c->cfg.window : WINDOW_GROWN_MAX;
	if (getrandom(&c->session, sizeof(c->session), 0) != sizeof(c->session))
		c->session = sli_now_ms() ^ ((uint64_t)getpid() << 32);
	c->rng = c->session | 1;
	if ((rc = cluster_open(c)) != 0)
		goto err_free;
	c->list_parts = calloc(c->nconns, sizeof(*c->list_parts));
	c->list_nparts = calloc(c->nconns, sizeof(*c->list_nparts));
	c->append_state = calloc(c->nconns, sizeof(*c->append_state));
	c->append_rcs = calloc(c->nconns, sizeof(*c->append_rcs));
	c->append_times = calloc(c->nconns, sizeof(*c->append_times));
	c->append_msgs = calloc(c->nconns, sizeof(*c->append_msgs));
	if (!c->list_parts || !c->list_nparts || !c->append_state || !c->append_rcs ||
	    !c->append_times || !c->append_msgs) {
		rc = SL_ENOMEM;
		goto err_conns;
	}
	if ((rc = sli_loop_new(&c->loop)) != 0)
		goto err_conns;
	for (uint32_t i = 0; i < c->nconns; i++) {
		sli_conn *k = &c->conns[i];
		if ((rc = sli_loop_add(c->loop, k->fd, SLI_READ, on_io, k)) != 0)
			goto err_loop;
		if ((k->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0) {
			rc = -errno;
			goto err_loop;
		}
		if ((rc = sli_loop_add(c->loop, k->timerfd, SLI_READ, on_timer, k)) != 0)
			goto err_loop;
		k->connected = 1;
		k->phase = SLI_PH_UP;
		k->last_rx = k->last_ping = sli_now_ms();
	}
	sli_loop_on_wake(c->loop, on_wake, c);
	uint32_t tick = c->cfg.heartbeat_ms / 2;
	if (tick > c->cfg.idle_timeout_ms / 4)
		tick = c->cfg.idle_timeout_ms / 4;
	sli_loop_on_tick(c->loop, tick < 10 ? 10 : tick, on_tick, c);
	sli_loop_on_idle(c->loop, on_idle, c);
	if ((rc = -pthread_create(&c->thread, NULL, runtime_main, c)) != 0)
		goto err_loop;
	*out = c;
	return 0;
err_loop:
	/* closing the fds takes them out of the loop's epoll set */
	sli_loop_free(c->loop);
err_conns:
	for (uint32_t i = 0; i < c->nconns; i++)
		conn_fini(&c->conns[i]);
	free(c->conns);
err_free:
	client_free(c);
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
	for (uint32_t i = 0; i < c->nconns; i++)
		c->conns[i].connected = 0;
	for (sli_cmd *cmd = take_cmds(c), *nx; cmd; cmd = nx) {
		nx = cmd->next;
		run_cmd(c, cmd);
	}
	for (uint32_t i = 0; i < c->nconns; i++) {
		sli_conn *k = &c->conns[i];
		for (uint32_t h = 0; h < k->nslots; h++)
			if (k->slots[h])
				release(c, k->slots[h]);
		while (k->parked)
			release(c, k->parked);
		if (k->fd >= 0)
			sli_loop_del(c->loop, k->fd);
		if (k->timerfd >= 0)
			sli_loop_del(c->loop, k->timerfd);
		conn_fini(k);
	}
	sli_loop_free(c->loop);
	for (uint32_t i = 0; i < c->nconns; i++) {
		sl_source_info_free(c->list_parts[i], c->list_nparts[i]);
		free(c->append_msgs[i]);
	}
	free(c->conns);
	client_free(c);
}
