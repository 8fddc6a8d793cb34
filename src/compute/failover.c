/*
 * failover.c - losing a connection and getting it back: an outage parks its subscriptions and
 * retries with backoff; a new connection (the address with the highest term, chosen by
 * runtime.c's retry timer) says Hello and every parked subscription is subscribed again from its
 * resume point; running out of time, another cluster, or no retries at all is the end (die).
 *
 * Reconnects: when the connection is lost and cfg.retry_for_ms > 0, the runtime parks every live
 * subscription and tries to connect again, with exponential backoff (SLI_RETRY_MIN_MS doubling
 * to RETRY_MAX_MS, +-25% jitter) for up to retry_for_ms; refused connections are expected
 * meanwhile.  Connecting and the Hello exchange run on the loop (non-blocking), so commands from
 * workers are still taken during an outage.  Once a server answers Hello, every queue with a
 * subscription gets RECONNECTED and every parked subscription is subscribed again from its
 * resume point.  Only when the window runs out do the queues get DISCONNECTED.
 *
 * Runtime thread only.  This file owns each connection's phase and attempt fields, its term
 * after open, c->losing, c->dead* (with client.c at close) and c->srv_session/srv_epoch after
 * open.
 */
#include "compute/conn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "net/sock.h"
#include "net/tls.h"

#define RETRY_MAX_MS 2000u

/* ---- losing a connection ---- */

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
	sli_drop_output(k);
	k->rlen = 0;
}

/* Fails every request sent on the connection just lost: their answers will never come. */
static void fail_inflight(sli_conn *k)
{
	sli_fail_lists(k);
	sli_fail_append(k);
}

static void disconnected_once(sli_csub *s, int code, const char *msg)
{
	if (s->q->disc_mark)
		return;
	sli_qitem *it = sli_msg_item(SLI_QI_DISCONNECTED, NULL, code, msg, strlen(msg));
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
	sli_cmd *cmds = sli_take_cmds_locked(c);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	for (uint32_t i = 0; i < c->nconns; i++) {
		close_socket(&c->conns[i]);
		c->conns[i].phase = SLI_PH_DEAD;
	}
	for (sli_cmd *nx; cmds; cmds = nx) {
		nx = cmds->next;
		sli_run_cmd(c, cmds);
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
				sli_release(c, s);
			}
		}
		while (k->parked) {
			k->parked->q->disc_mark = 0;
			sli_release(c, k->parked);
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

/* Waits before the next attempt: SLI_RETRY_MIN_MS doubling up to RETRY_MAX_MS, +-25% jitter, and
 * never past the end of the window (where the timer gives up). */
static void schedule_attempt(sli_conn *k)
{
	sl_client *c = k->c;
	uint64_t delay = SLI_RETRY_MIN_MS;
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

void sli_give_up(sli_conn *k, int last_rc)
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
void sli_attempt_failed(sli_conn *k, int rc)
{
	close_socket(k);
	k->last_attempt_rc = rc;
	if (sli_now_ms() >= k->outage_start + k->c->cfg.retry_for_ms)
		sli_give_up(k, rc);
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
			sli_release(c, s);
		else
			sli_park(k, s, SLI_R_PARKED);
	}
	schedule_attempt(k);
}

/* c->on_lost, for every file (wire.c formats the reason and calls it once per loss). */
void sli_failover_lost(sli_conn *k, int code, const char *msg)
{
	if (k->c->cfg.retry_for_ms == 0)
		die(k->c, code, msg);
	else
		outage_begin(k, code, msg);
}

void sli_on_cluster(sli_conn *k, const sli_cluster *cl)
{
	sl_client *c = k->c;
	/* asked again after every reconnect (clusters and address lists): still the same
	 * cluster, and not a stale process (a term below one already seen)? */
	uint64_t seen = atomic_load(&k->term);
	if (cl->term < seen) {
		sli_conn_lost(k, SL_ECLUSTER, "storage at %s has term %llu, below %llu: stale",
		              k->addr, (unsigned long long)cl->term, (unsigned long long)seen);
		return;
	}
	atomic_store(&k->term, cl->term);
	if (c->map_count > 1 && (cl->fingerprint != c->fingerprint || cl->count != c->map_count ||
	                         cl->process != sli_conn_process(k))) {
		char msg[256];
		snprintf(msg, sizeof(msg), "storage process %u (%s) came back as another cluster "
		         "(fingerprint %016llx, process %u of %u)", k->index, k->addr,
		         (unsigned long long)cl->fingerprint, cl->process, cl->count);
		die(c, SL_ECLUSTER, msg);
	}
}

/* ---- connecting again ---- */

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
		sli_send_frame(k, &cm);
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
			sli_park(k, s, SLI_R_DONE);
			continue;
		}
		if (sli_subscribe_wire(k, s) != 0) {
			sli_qitem *it = sli_msg_item(SLI_QI_SUBERR, s, SL_ENOMEM, "out of memory", 13);
			if (it)
				sli_queue_push(s->q, it);
			s->rstate = SLI_R_NEW; /* on no list, holding no handle */
			sli_release(c, s);
		}
	}
	/* the frames that came right behind the Hello are the caller's to parse (runtime.c) */
}

/* The non-blocking connect and Hello exchange of a new connection. */
void sli_hello_io(sli_conn *k, uint32_t events)
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
				sli_attempt_failed(k, -err);
				return;
			}
			if (!(events & SLI_WRITE))
				return; /* still connecting */
			sli_set_nodelay(k->fd);
			if (c->tls != NULL && (k->ssl = sli_tls_new(c->tls, k->fd, 0, k->addr)) == NULL) {
				sli_attempt_failed(k, SL_ENOMEM);
				return;
			}
		}
		if (k->ssl != NULL) {
			/* the TLS handshake happens in this phase too, under the attempt's deadline */
			char why[256];
			int r = sli_tls_handshake(k->ssl, why, sizeof(why));
			if (r < 0) {
				sli_attempt_failed(k, r);
				return;
			}
			if (r > 0) {
				sli_loop_mod(c->loop, k->fd, r == SLI_WRITE ? SLI_WRITE : SLI_READ);
				return;
			}
		}
		sli_encode_hello(c, &f);
		if (sli_frame_encode(&k->out, &f) != 0 || sli_replica_after_hello(c, &k->out) != 0) {
			sli_attempt_failed(k, SL_ENOMEM);
			return;
		}
		k->phase = SLI_PH_HELLO;
	}
	int wr = sli_write_out(k);
	if (wr < 0) {
		sli_attempt_failed(k, wr);
		return;
	}
	sli_loop_mod(c->loop, k->fd,
	             k->out.len > 0 || k->wq_head ? SLI_READ | SLI_WRITE : SLI_READ);
	for (;;) {
		ssize_t r = sli_frame_decode(k->rbuf, k->rlen, c->cfg.max_frame, &f);
		if (r < 0) {
			sli_attempt_failed(k, (int)r);
			return;
		}
		if (r > 0) {
			if (f.type == SLI_ERROR)
				sli_attempt_failed(k, f.u.error.code ? f.u.error.code : SL_EPROTO);
			else if (f.type != SLI_HELLO || f.u.hello.magic != SLI_MAGIC)
				sli_attempt_failed(k, SL_EPROTO);
			else if (f.u.hello.version != SLI_PROTO_VERSION)
				sli_attempt_failed(k, SL_EVERSION);
			else
				conn_up(k, &f.u.hello, (size_t)r);
			return;
		}
		if (k->rlen == k->rcap) {
			sli_attempt_failed(k, SL_EPROTO); /* a Hello larger than the read buffer */
			return;
		}
		ssize_t n = sli_io_read(k->fd, k->ssl, k->rbuf + k->rlen, k->rcap - k->rlen);
		if (n > 0) {
			k->rlen += (size_t)n;
		} else if (n == 0) {
			sli_attempt_failed(k, SL_EDISCONNECTED);
			return;
		} else if (errno != EINTR) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				sli_attempt_failed(k, -errno);
			return;
		}
	}
}
