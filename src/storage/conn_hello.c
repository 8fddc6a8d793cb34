/*
 * conn_hello.c - a connection's handshake: on a TLS listener, telling a TLS ClientHello from a
 * plaintext Hello and running the TLS handshake; then the first frame, which must be a valid
 * Hello (with the token, when one is required), and its answer.  Network thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>

#include "net/tls.h"
#include "storage/conn.h"
#include "storage/security.h"
#include "storage/storage_int.h"

static void on_hello(struct conn *c, const sli_hello *h)
{
	if (h->fingerprint != 0 && c->st->cluster != NULL && h->fingerprint != c->st->fingerprint) {
		/* A process of a differently configured cluster: refuse to be mixed with it. */
		sli_conn_error(c, SL_ECLUSTER, 1,
		            "cluster configuration differs: this process (%u of %u) has fingerprint %016llx, "
		            "yours is %016llx: check --cluster and --source on every process",
		            c->st->process, c->st->cluster_size, (unsigned long long)c->st->fingerprint,
		            (unsigned long long)h->fingerprint);
		if (c->st->cfg.warn) {
			char msg[256];
			snprintf(msg, sizeof(msg), "refused a peer with another cluster configuration "
			         "(fingerprint %016llx, ours %016llx)", (unsigned long long)h->fingerprint,
			         (unsigned long long)c->st->fingerprint);
			c->st->cfg.warn(c->st->cfg.warn_arg, msg);
		}
		return;
	}
	if (c->st->fenced) {
		sli_conn_error(c, SL_EFENCED, 1,
		            "this storage process was superseded by %s (a promoted standby, term %llu): use it",
		            c->st->fenced_by, (unsigned long long)atomic_load(&c->st->term));
		return;
	}
	static const char name[] = "sluiced " "0.1";
	sli_frame f = {.type = SLI_HELLO};
	f.u.hello.magic = SLI_MAGIC;
	f.u.hello.version = SLI_PROTO_VERSION;
	f.u.hello.session = c->st->session;
	f.u.hello.epoch = c->st->epoch;
	f.u.hello.fingerprint = c->st->cluster ? c->st->fingerprint : 0;
	f.u.hello.name = (sl_bytes){(const uint8_t *)name, sizeof(name) - 1};
	sli_conn_put_frame(c, &f);
	c->hello_done = 1;
}

/* Nothing but a valid Hello (with the token, when one is required) is acted on. */
void sli_conn_first_frame(struct conn *c, const sli_frame *f)
{
	char msg[200];
	int rc = sli_security_hello_check(c->st->sec, f, msg, sizeof(msg));
	if (rc != 0)
		sli_conn_error(c, rc, 1, "%s", msg);
	else
		on_hello(c, &f->u.hello);
}

/* A TLS listener's connection before its handshake is done: the first byte tells a TLS
 * ClientHello (0x16) from a plaintext sluice Hello, which is answered with a plaintext Error.
 * Returns 1 once the handshake is done, when the caller reads what came with it. */
int sli_conn_tls_io(struct conn *c, uint32_t events)
{
	char err[256];
	if (c->tls_phase == CONN_TLS_FAILED) {
		/* Lingering: what the client still sends is dropped until it closes, so that our
		 * close does not reset the connection before it has read OpenSSL's alert. */
		uint8_t junk[4096];
		ssize_t n;
		while ((n = recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT)) > 0)
			;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			sli_conn_kill(c);
		return 0;
	}
	if (c->tls_phase == CONN_TLS_SNIFF) {
		uint8_t b;
		ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return 0;
		if (n <= 0) {
			sli_conn_kill(c);
			return 0;
		}
		if (b != SLI_TLS_HANDSHAKE_BYTE) {
			/* Take in what the client sent (its Hello), so that closing does not reset
			 * the connection before the client has read why. */
			uint8_t junk[4096];
			while (recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
				;
			c->tls_phase = CONN_TLS_NONE;
			sli_conn_error(c, SL_ETLS, 1, "this server requires TLS: connect with --tls-ca");
			return 0;
		}
		if ((c->ssl = sli_security_server_ssl(c->st->sec, c->fd)) == NULL) {
			sli_conn_kill(c);
			return 0;
		}
		c->tls_phase = CONN_TLS_HANDSHAKE;
	}
	int r = sli_tls_handshake(c->ssl, err, sizeof(err));
	if (r < 0) {
		/* No sluice frame can reach a peer that failed the handshake (OpenSSL sent it an
		 * alert): close our side, drain theirs until they close or the deadline passes.
		 * The operator hears of it, at most once a second (a scanner cannot flood the log). */
		uint64_t now = sli_now_ms();
		if (c->st->cfg.warn && now - c->st->sec->warned_ms >= 1000) {
			char msg[320];
			c->st->sec->warned_ms = now;
			snprintf(msg, sizeof(msg), "TLS handshake with a client failed: %s", err);
			c->st->cfg.warn(c->st->cfg.warn_arg, msg);
		}
		shutdown(c->fd, SHUT_WR);
		c->tls_phase = CONN_TLS_FAILED;
		c->reading = 1;
		c->want_write = 0;
		sli_loop_mod(c->st->loop, c->fd, SLI_READ);
		return 0;
	}
	if (r > 0) {
		c->want_write = r == SLI_WRITE;
		c->reading = r == SLI_READ;
		sli_loop_mod(c->st->loop, c->fd, r == SLI_WRITE ? SLI_WRITE : SLI_READ);
		return 0;
	}
	c->tls_phase = CONN_TLS_NONE;
	c->reading = 1;
	c->want_write = 0;
	sli_conn_update_interest(c);
	return 1; /* the client's Hello may have come with its last handshake flight: read it */
}
