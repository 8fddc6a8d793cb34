/*
 * runtime.c - the runtime thread and its loop: what runs on each connection's readiness (the
 * Hello of a new connection, or reading frames and flushing output), on its retry timer (the
 * next attempt to connect: a non-blocking connect), on the tick (heartbeats, idle and attempt
 * deadlines), on a wake (commands from caller threads) and on the idle turn (flushing).
 *
 * The runtime thread owns the sockets, the read buffers, the output buffers and the handle
 * tables.  Worker threads talk to it only through the command list (mailbox.c); it talks to them
 * only through their queues (sli_queue_push) and, for requests (sources.c, ingest.c), through
 * c->mu + c->cv.  It never waits for a worker and never runs user code.
 */
#include "compute/conn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "net/sock.h"
#include "net/tls.h"

static void on_io(sli_loop *l, int fd, uint32_t events, void *arg);

/* Starts one attempt: a non-blocking connect, finished in hello_io. */
static void try_connect(sli_conn *k)
{
	sl_client *c = k->c;
	struct sockaddr_in sa;
	int rc, fd;
	if ((rc = sli_parse_hostport(k->addr, &sa)) != 0) {
		sli_attempt_failed(k, rc);
		return;
	}
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		sli_attempt_failed(k, -errno);
		return;
	}
	if ((rc = sli_loop_add(c->loop, fd, SLI_READ | SLI_WRITE, on_io, k)) != 0) {
		close(fd);
		sli_attempt_failed(k, rc);
		return;
	}
	k->fd = fd;
	k->rlen = 0;
	k->out.len = 0;
	k->phase = SLI_PH_CONNECTING;
	/* an attempt does not outlive the window by more than a last chance */
	uint64_t now = sli_now_ms(), end = k->outage_start + c->cfg.retry_for_ms;
	k->attempt_deadline = now + (uint64_t)c->cfg.connect_timeout_ms;
	if (k->attempt_deadline > end + SLI_RETRY_MIN_MS)
		k->attempt_deadline = end + SLI_RETRY_MIN_MS;
	/* refused at once on loopback; otherwise writability (or an error) reports the outcome */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		sli_attempt_failed(k, -errno);
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
		sli_give_up(k, k->last_attempt_rc);
		return;
	}
	if (k->nalts > 1) {
		/* the primary or a standby: the reachable one with the highest term, never one with
		 * a lower term than seen (a returning old primary is stale).  Blocks the runtime
		 * thread for one probe per address (refused at once when a host is up). */
		uint64_t t = 0;
		int i = sli_pick_addr(k->c, k->alts, k->nalts, atomic_load(&k->term), &t);
		if (i < 0) {
			sli_attempt_failed(k, i);
			return;
		}
		snprintf(k->addr, sizeof(k->addr), "%s", k->alts[i]);
	}
	try_connect(k);
}

static void on_io(sli_loop *l, int fd, uint32_t events, void *arg)
{
	sli_conn *k = arg;
	if (k->phase == SLI_PH_CONNECTING || k->phase == SLI_PH_HELLO) {
		sli_hello_io(k, events);
		if (k->phase == SLI_PH_UP)
			sli_parse_frames(k); /* the frames that came right behind the Hello */
		return;
	}
	if (events & SLI_WRITE)
		sli_flush(k);
	if (!(events & SLI_READ))
		return;
	sli_client_read(k, fd);
}

static void conn_tick(sli_conn *k, uint64_t now)
{
	sl_client *c = k->c;
	if ((k->phase == SLI_PH_CONNECTING || k->phase == SLI_PH_HELLO) &&
	    now >= k->attempt_deadline) {
		sli_attempt_failed(k, SL_ETIMEDOUT);
		return;
	}
	if (!k->connected)
		return;
	if (now - k->last_rx >= c->cfg.idle_timeout_ms) {
		sli_conn_lost(k, SL_EIDLE, "no answer from storage for %u ms", c->cfg.idle_timeout_ms);
		return;
	}
	if (now - k->last_rx >= c->cfg.heartbeat_ms && now - k->last_ping >= c->cfg.heartbeat_ms) {
		sli_frame f = {.type = SLI_PING};
		f.u.ping.nonce = ++k->ping_nonce;
		sli_send_frame(k, &f);
		k->last_ping = now;
	}
}

static void on_wake(sli_loop *l, void *arg)
{
	sl_client *c = arg;
	for (sli_cmd *cmd = sli_take_cmds(c), *nx; cmd; cmd = nx) {
		nx = cmd->next;
		sli_run_cmd(c, cmd);
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
		sli_flush(&c->conns[i]);
}

static void *runtime_main(void *arg)
{
	sl_client *c = arg;
	/* frames that arrived together with the servers' answers at open */
	for (uint32_t i = 0; i < c->nconns; i++) {
		sli_parse_frames(&c->conns[i]);
		sli_flush(&c->conns[i]);
	}
	sli_loop_run(c->loop);
	return NULL;
}

int sli_runtime_start(sl_client *c)
{
	int rc;
	if ((rc = sli_loop_new(&c->loop)) != 0)
		return rc;
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
	return 0;
err_loop:
	/* closing the fds takes them out of the loop's epoll set */
	sli_loop_free(c->loop);
	c->loop = NULL;
	return rc;
}

void sli_runtime_stop(sl_client *c)
{
	sli_loop_stop(c->loop);
	pthread_join(c->thread, NULL);
}
