/*
 * probe.c - the short blocking conversations of probe.h: one socket, one deadline, frames in
 * and out through the codec.
 */
#include "storage/probe.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/loop.h"
#include "net/sock.h"
#include "net/tls.h"
#include "storage/security.h"

static int send_all(int fd, SSL *ssl, const sli_buf *b, uint64_t deadline)
{
	size_t off = 0;
	while (off < b->len) {
		ssize_t n = sli_io_send(fd, ssl, b->ptr + off, b->len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (sli_now_ms() > deadline)
			return SL_ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		poll(&p, 1, 100);
	}
	return 0;
}

int sli_probe(struct sli_security *sec, const char *addr, uint64_t fingerprint,
              const char *name, const sli_frame *extra, int timeout_ms, sli_probe_fn fn, void *arg)
{
	uint8_t buf[4096];
	size_t len = 0;
	sli_buf out;
	int ended = 0;
	uint64_t deadline = sli_now_ms() + (uint64_t)timeout_ms;
	SSL *ssl = NULL;
	SSL_CTX *ctx = NULL;
	const char *token = NULL;
	char err[256];
	int fd = sli_connect_tcp(addr, timeout_ms);
	if (fd < 0)
		return 0;
	sli_buf_init(&out);
	sli_security_client(sec, &ctx, &token);
	if (ctx != NULL && sli_tls_connect(ctx, fd, addr, deadline, &ssl, err, sizeof(err)) != 0)
		goto out;
	sli_frame hello = {.type = SLI_HELLO};
	hello.u.hello.magic = SLI_MAGIC;
	hello.u.hello.version = SLI_PROTO_VERSION;
	hello.u.hello.fingerprint = fingerprint;
	hello.u.hello.name = (sl_bytes){(const uint8_t *)name, strlen(name)};
	if (token != NULL) {
		hello.u.hello.flags |= SLI_HELLO_TOKEN;
		hello.u.hello.token = (sl_bytes){(const uint8_t *)token, strlen(token)};
	}
	if (sli_frame_encode(&out, &hello) != 0 || (extra && sli_frame_encode(&out, extra) != 0) ||
	    send_all(fd, ssl, &out, deadline) != 0)
		goto out;
	while (!ended) {
		sli_frame f;
		ssize_t r = sli_frame_decode(buf, len, SLI_FRAME_MAX_DEFAULT, &f);
		if (r > 0) {
			ended = fn(&f, arg);
			memmove(buf, buf + r, len - (size_t)r);
			len -= (size_t)r;
			continue;
		}
		uint64_t now = sli_now_ms();
		if (r < 0 || len == sizeof(buf) || now >= deadline)
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if ((ssl == NULL || SSL_pending(ssl) == 0) && poll(&p, 1, (int)(deadline - now)) <= 0)
			continue;
		ssize_t n = sli_io_read(fd, ssl, buf + len, sizeof(buf) - len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
out:
	sli_buf_fini(&out);
	sli_tls_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return ended;
}

void sli_nap(atomic_int *stop, unsigned ms)
{
	for (unsigned i = 0; i < ms / 50 && !atomic_load(stop); i++) {
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
}
