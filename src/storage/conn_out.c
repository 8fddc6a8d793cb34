/*
 * conn_out.c - a connection's output: queueing frames and Error frames into its buffer,
 * writing the buffer to the socket (and so turning reading back on once it drained), and the
 * connection's end when the output or the socket fails.  Network thread only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "net/sock.h"
#include "net/tls.h"
#include "storage/conn.h"
#include "storage/storage_int.h"

void sli_conn_update_interest(struct conn *c)
{
	if (c->dead)
		return;
	uint32_t ev = (c->reading ? SLI_READ : 0) | (c->want_write ? SLI_WRITE : 0);
	sli_loop_mod(c->st->loop, c->fd, ev);
}

void sli_conn_reason(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	if (c->reason[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
}

void sli_conn_kill(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	sli_loop_del(c->st->loop, c->fd);
}

sl_bytes sli_conn_format_message(char *msg, const char *fmt, va_list ap)
{
	int n = vsnprintf(msg, ERRMSG_MAX, fmt, ap);
	if (n < 0)
		n = 0;
	if (n >= ERRMSG_MAX)
		n = ERRMSG_MAX - 1;
	return (sl_bytes){(const uint8_t *)msg, (size_t)n};
}

void sli_conn_error(struct conn *c, int code, int fatal, const char *fmt, ...)
{
	char msg[ERRMSG_MAX];
	va_list ap;
	sli_frame f = {.type = SLI_ERROR};
	va_start(ap, fmt);
	f.u.error.message = sli_conn_format_message(msg, fmt, ap);
	va_end(ap);
	f.u.error.code = code;
	f.u.error.fatal = (uint8_t)(fatal != 0);
	sli_conn_put_frame(c, &f);
	sli_metrics_count_error(c->st, code);
	if (fatal) {
		sli_conn_reason(c, "%s", msg);
		c->closing = 1;
		c->reading = 0;
	}
}

int sli_conn_out_over_limit(struct conn *c)
{
	if (c->out.len - c->out_off <= c->st->cfg.max_output)
		return 0;
	if (c->st->cfg.warn) {
		char msg[160];
		snprintf(msg, sizeof(msg), "closed a connection with %zu bytes of unsent output (limit %zu)",
		         c->out.len - c->out_off, c->st->cfg.max_output);
		c->st->cfg.warn(c->st->cfg.warn_arg, msg);
	}
	sli_conn_kill(c);
	return 1;
}

int sli_conn_flush(struct conn *c)
{
	while (c->out_off < c->out.len && !c->dead) {
		ssize_t n = sli_io_send(c->fd, c->ssl, c->out.ptr + c->out_off, c->out.len - c->out_off);
		if (n > 0) {
			/* Advance an offset rather than moving the unsent rest down after every
			 * partial send; the buffer is reset once it is all out. */
			c->out_off += (size_t)n;
			c->bytes_out += (uint64_t)n;
			if (c->out_off == c->out.len)
				c->out_off = c->out.len = 0;
			c->last_tx_ms = sli_now_ms();
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (c->out_off > 0) { /* once per full socket, not per send */
				sli_buf_consume(&c->out, c->out_off);
				c->out_off = 0;
			}
			if (!c->want_write) {
				c->want_write = 1;
				sli_conn_update_interest(c);
			}
			return 0;
		}
		sli_conn_reason(c, "write error: %s", sl_strerror(-errno));
		sli_conn_kill(c);
		return -1;
	}
	if (c->dead)
		return -1;
	int changed = 0;
	if (c->want_write) {
		c->want_write = 0;
		changed = 1;
	}
	if (!c->reading && !c->closing) {
		c->reading = 1;
		changed = 1;
	}
	if (changed)
		sli_conn_update_interest(c);
	/* A big one-off buffer (a long sources list) is not kept for the connection's life. */
	if (c->out.cap > 8 * c->st->cfg.out_high_water)
		sli_buf_fini(&c->out);
	return 0;
}
