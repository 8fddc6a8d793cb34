/*
 * rawclient.h - a blocking test client that speaks frames by hand, for tests that must see
 * exactly what storage sends (credit limits, error frames) or send what no real client would.
 * Every read has a deadline, so a test never hangs.
 */
#ifndef SLUICE_TEST_RAWCLIENT_H
#define SLUICE_TEST_RAWCLIENT_H

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/loop.h"
#include "net/sock.h"
#include "proto/proto.h"

typedef struct rawc {
	int fd;
	uint8_t *in;
	size_t len, cap;
	size_t pending; /* bytes of the frame returned last, dropped by the next read */
	sli_buf out;
} rawc;

static inline int rawc_open(rawc *c, int port)
{
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	memset(c, 0, sizeof(*c));
	c->fd = sli_connect_tcp(addr, 5000);
	if (c->fd < 0)
		return c->fd;
	c->cap = 1u << 20;
	c->in = malloc(c->cap);
	sli_buf_init(&c->out);
	return 0;
}

static inline void rawc_close(rawc *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	sli_buf_fini(&c->out);
	c->fd = -1;
}

static inline int rawc_send_raw(rawc *c, const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t deadline = sli_now_ms() + 10000;
	while (n > 0) {
		ssize_t w = write(c->fd, b, n);
		if (w > 0) {
			b += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (sli_now_ms() > deadline)
			return SL_ETIMEDOUT;
		struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
		poll(&pf, 1, 100);
	}
	return 0;
}

static inline int rawc_send(rawc *c, const sli_frame *f)
{
	c->out.len = 0;
	if (sli_frame_encode(&c->out, f) != 0)
		return SL_ENOMEM;
	return rawc_send_raw(c, c->out.ptr, c->out.len);
}

/* Reads the next frame within timeout_ms: 1 with *f (valid until the next call), 0 on EOF,
 * SL_ETIMEDOUT, or a decode error. */
static inline int rawc_next(rawc *c, sli_frame *f, int timeout_ms)
{
	if (c->pending) {
		memmove(c->in, c->in + c->pending, c->len - c->pending);
		c->len -= c->pending;
		c->pending = 0;
	}
	uint64_t deadline = sli_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		ssize_t r = sli_frame_decode(c->in, c->len, SLI_FRAME_MAX_LIMIT, f);
		if (r > 0) {
			c->pending = (size_t)r;
			return 1;
		}
		if (r < 0)
			return (int)r;
		if (c->len == c->cap) {
			c->cap *= 2;
			c->in = realloc(c->in, c->cap);
		}
		uint64_t now = sli_now_ms();
		if (now >= deadline)
			return SL_ETIMEDOUT;
		struct pollfd pf = {.fd = c->fd, .events = POLLIN};
		if (poll(&pf, 1, (int)(deadline - now)) <= 0)
			continue;
		ssize_t n = read(c->fd, c->in + c->len, c->cap - c->len);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return errno == ECONNRESET ? 0 : -errno;
		}
		c->len += (size_t)n;
	}
}

/* Reads frames until one of `type` arrives (skipping Ping, answering it); 1, 0 on EOF, <0. */
static inline int rawc_expect(rawc *c, uint8_t type, sli_frame *f, int timeout_ms)
{
	uint64_t deadline = sli_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		uint64_t now = sli_now_ms();
		int rc = rawc_next(c, f, now >= deadline ? 0 : (int)(deadline - now));
		if (rc != 1)
			return rc;
		if (f->type == type)
			return 1;
		if (f->type == SLI_PING) {
			sli_frame p = {.type = SLI_PONG};
			p.u.ping.nonce = f->u.ping.nonce;
			rawc_send(c, &p);
		}
	}
}

static inline int rawc_hello(rawc *c, uint16_t version)
{
	sli_frame f = {.type = SLI_HELLO};
	f.u.hello.magic = SLI_MAGIC;
	f.u.hello.version = version;
	f.u.hello.name = (sl_bytes){(const uint8_t *)"rawclient", 9};
	int rc = rawc_send(c, &f);
	if (rc != 0)
		return rc;
	return rawc_next(c, &f, 5000) == 1 && f.type == SLI_HELLO ? 0 : SL_EPROTO;
}

static inline int rawc_subscribe(rawc *c, uint32_t handle, uint64_t dataflow, uint64_t source,
                                 uint32_t worker, uint64_t from, uint64_t credit)
{
	sli_frame f = {.type = SLI_SUBSCRIBE};
	f.u.subscribe = (sli_subscribe){handle, dataflow, source, worker, from, credit};
	return rawc_send(c, &f);
}

static inline int rawc_credit(rawc *c, uint32_t handle, uint64_t bytes)
{
	sli_frame f = {.type = SLI_CREDIT};
	f.u.credit.handle = handle;
	f.u.credit.bytes = bytes;
	return rawc_send(c, &f);
}

#endif
