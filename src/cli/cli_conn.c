/*
 * cli_conn.c - a short blocking conversation with one storage process, for the commands that
 * talk the protocol themselves (sluice promote, sluice stat): connect, TLS when the command was
 * given --tls-ca (or a client certificate), a Hello carrying the token of --auth-token-file,
 * then frames sent and read under one deadline.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "net/sock.h"
#include "net/tls.h"
#include "proto/proto.h"

uint64_t cli_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits until fd is ready for events, or the deadline passes (SL_ETIMEDOUT). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	uint64_t now = cli_now_ms();
	struct pollfd p = {.fd = fd, .events = events};
	if (now >= deadline)
		return SL_ETIMEDOUT;
	int n = poll(&p, 1, (int)(deadline - now));
	if (n < 0 && errno != EINTR)
		return -errno;
	return n == 0 ? SL_ETIMEDOUT : 0;
}

int cli_conn_open(cli_conn *k, const char *server, uint32_t timeout_ms, char *err, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	k->fd = -1;
	k->deadline = cli_now_ms() + timeout_ms;
	if ((cli_sec.tls_ca || cli_sec.tls_cert) &&
	    sli_tls_client_ctx(cli_sec.tls_ca, cli_sec.tls_cert, cli_sec.tls_key, &k->ctx, err,
	                       errlen) != 0)
		return SL_ETLS;
	if ((k->fd = sli_connect_tcp(server, (int)(timeout_ms / 2))) < 0) {
		int rc = k->fd;
		snprintf(err, errlen, "cannot connect to %s: %s", server, sl_strerror(rc));
		cli_conn_close(k);
		return rc;
	}
	if (k->ctx != NULL) {
		char why[256];
		if (sli_tls_connect(k->ctx, k->fd, server, k->deadline, &k->ssl, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "cannot connect to %s: TLS failed: %s", server, why);
			cli_conn_close(k);
			return SL_ETLS;
		}
	}
	return 0;
}

void cli_conn_hello(sli_frame *f, const char *name)
{
	memset(f, 0, sizeof(*f));
	f->type = SLI_HELLO;
	f->u.hello = (sli_hello){.magic = SLI_MAGIC, .version = SLI_PROTO_VERSION,
	                         .session = (uint64_t)getpid() ^ cli_now_ms(),
	                         .name = {(const uint8_t *)name, strlen(name)}};
	if (cli_sec.token != NULL) {
		f->u.hello.flags = SLI_HELLO_TOKEN;
		f->u.hello.token = (sl_bytes){(const uint8_t *)cli_sec.token, strlen(cli_sec.token)};
	}
}

int cli_conn_send(cli_conn *k, const sli_buf *b)
{
	size_t off = 0;
	while (off < b->len) {
		ssize_t n = sli_io_send(k->fd, k->ssl, b->ptr + off, b->len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = wait_fd(k->fd, POLLOUT, k->deadline);
			if (rc != 0)
				return rc;
			continue;
		}
		return n < 0 ? -errno : SL_EDISCONNECTED;
	}
	return 0;
}

ssize_t cli_conn_next(cli_conn *k, uint8_t *buf, size_t cap, size_t *len, sli_frame *f,
                      int want_hello)
{
	for (;;) {
		ssize_t r = sli_frame_decode(buf, *len, (uint32_t)(cap - 8), f);
		if (r < 0)
			return r;
		if (r > 0) {
			if (f->type != SLI_PING && (want_hello || f->type != SLI_HELLO))
				return r;
			memmove(buf, buf + r, *len - (size_t)r);
			*len -= (size_t)r;
			continue;
		}
		if (*len == cap)
			return SL_ETOOBIG;
		ssize_t n = sli_io_read(k->fd, k->ssl, buf + *len, cap - *len);
		if (n > 0) {
			*len += (size_t)n;
			continue;
		}
		if (n == 0)
			return SL_EDISCONNECTED;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int rc = wait_fd(k->fd, POLLIN, k->deadline);
		if (rc != 0)
			return rc;
	}
}

void cli_conn_close(cli_conn *k)
{
	sli_tls_free(k->ssl);
	SSL_CTX_free(k->ctx);
	if (k->fd >= 0)
		close(k->fd);
	k->ssl = NULL;
	k->ctx = NULL;
	k->fd = -1;
}
