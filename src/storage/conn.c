/*
 * conn.c - the life of one compute connection on the storage side: accepting it, routing its
 * socket events to input, output and handshake, its timeouts and heartbeats, and its end.
 * Runs on the network thread only.
 *
 * A peer that does not read stops being read from once its output backs up (conn_read.c), and
 * is dropped after the idle timeout, so it cannot grow this process's memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "net/sock.h"
#include "net/tls.h"
#include "storage/conn.h"
#include "storage/security.h"
#include "storage/storage_int.h"

static void conn_io(sli_loop *l, int fd, uint32_t events, void *arg)
{
	struct conn *c = arg;
	if (c->tls_phase != CONN_TLS_NONE) {
		if (events & SLI_HUP && !(events & SLI_READ))
			sli_conn_kill(c);
		else if (sli_conn_tls_io(c, events))
			sli_conn_read(c); /* the client's Hello may have come with its last handshake flight */
		return;
	}
	if (events & SLI_WRITE) {
		sli_conn_flush(c);
		sli_serve_conn(c);
		sli_conn_resume(c);
	}
	if ((events & SLI_READ) && c->reading)
		sli_conn_read(c);
	else if (events & SLI_HUP) {
		sli_conn_reason(c, "hang-up");
		sli_conn_kill(c);
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
		c->tls_phase = st->sec->tls_server ? CONN_TLS_SNIFF : CONN_TLS_NONE;
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
	sli_conn_reason(c, "the server is shutting down");
	conn_closed(c);
	sli_repl_conn_closed(c);
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
		if (sli_conn_out_over_limit(c))
			continue;
		if (!c->hello_done && now - c->accepted_ms > st->cfg.handshake_timeout_ms) {
			/* Counted from accept, whatever trickles in: a byte a second does not hold a
			 * connection open before it has said who it is.  Mid-TLS-handshake no frame can
			 * be sent: the connection just closes. */
			if (c->tls_phase != CONN_TLS_NONE)
				sli_conn_kill(c);
			else
				sli_conn_error(c, SL_ETIMEDOUT, 1, "no valid Hello within %u ms",
				            st->cfg.handshake_timeout_ms);
			continue;
		}
		if (now - c->last_rx_ms > st->cfg.idle_timeout_ms) {
			sli_conn_error(c, SL_EIDLE, 1, "no traffic from the client for %u ms", st->cfg.idle_timeout_ms);
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
			sli_conn_put_frame(c, &f);
			c->last_ping_ms = now;
		}
	}
}

void sli_conn_flush_all(sl_storage *st)
{
	for (struct conn *c = st->conns; c != NULL; c = c->next) {
		if (!c->dead && c->out.len > c->out_off && !c->want_write)
			sli_conn_flush(c);
		sli_conn_resume(c);
	}
}

void sli_conn_sweep(sl_storage *st)
{
	struct conn *c = st->conns, *next;
	for (; c != NULL; c = next) {
		next = c->next;
		if (c->closing && !c->dead) {
			sli_conn_flush(c); /* best effort: the Error frame says why */
			sli_conn_kill(c);
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

