/*
 * wire.c - a connection's output, and the one way to report that a connection is lost.
 *
 * Runtime thread only.  Output frames (credits, pongs, subscribes) accumulate in one reused
 * buffer per connection, written once per loop iteration (the idle turn) or when the socket
 * turns writable again.  Append parts (a batch can be megabytes) are queued as they are and
 * written from their own buffer, each freed once written: no copy, and the client holds a
 * batch only until the socket has taken it.
 *
 * What a loss means (an outage with reconnects, or the end) is failover.c's to decide, and
 * failover.c itself sends frames through this file; so sli_conn_lost hands the reason to
 * c->on_lost (failover.c's handler, set at open) rather than calling failover.c.  Only a
 * failure goes through that pointer.
 */
#include "compute/conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "net/tls.h"

void sli_send_frame(sli_conn *k, const sli_frame *f)
{
	if (!k->connected)
		return;
	if (sli_frame_encode(&k->out, f) != 0)
		sli_conn_lost(k, SL_ENOMEM, "out of memory encoding a %s frame",
		              sli_frame_type_name(f->type));
}

void sli_queue_append(sli_conn *k, sli_cmd *cmd)
{
	cmd->next = NULL;
	if (k->wq_tail)
		k->wq_tail->next = cmd;
	else
		k->wq_head = cmd;
	k->wq_tail = cmd;
}

void sli_drop_output(sli_conn *k)
{
	k->out.len = 0;
	for (sli_cmd *cmd = k->wq_head, *nx; cmd; cmd = nx) {
		nx = cmd->next;
		sli_cmd_free(cmd);
	}
	k->wq_head = k->wq_tail = NULL;
	k->wq_off = 0;
}

int sli_write_out(sli_conn *k)
{
	for (;;) {
		/* the small frames first, but never inside a part already begun */
		int from_out = k->out.len > 0 && k->wq_off == 0;
		if (!from_out && k->wq_head == NULL)
			break;
		const uint8_t *ptr = from_out ? k->out.ptr : k->wq_head->frames.ptr + k->wq_off;
		size_t len = from_out ? k->out.len : k->wq_head->frames.len - k->wq_off;
		ssize_t n = sli_io_send(k->fd, k->ssl, ptr, len);
		if (n > 0 && from_out) {
			sli_buf_consume(&k->out, (size_t)n);
			continue;
		}
		if (n > 0) {
			if ((k->wq_off += (size_t)n) == k->wq_head->frames.len) {
				sli_cmd *done = k->wq_head;
				if ((k->wq_head = done->next) == NULL)
					k->wq_tail = NULL;
				k->wq_off = 0;
				sli_cmd_free(done);
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		return n < 0 ? -errno : SL_EDISCONNECTED;
	}
	return 0;
}

void sli_flush(sli_conn *k)
{
	sl_client *c = k->c;
	int rc;
	if (!k->connected)
		return;
	if ((rc = sli_write_out(k)) == 1) {
		if (!k->want_write && sli_loop_mod(c->loop, k->fd, SLI_READ | SLI_WRITE) == 0)
			k->want_write = 1;
		return;
	}
	if (rc < 0) {
		sli_conn_lost(k, rc, "write to storage failed: %s",
		              strerror(rc == SL_EDISCONNECTED ? EPIPE : -rc));
		return;
	}
	if (k->connected && k->want_write) {
		sli_loop_mod(c->loop, k->fd, SLI_READ);
		k->want_write = 0;
	}
}

void sli_conn_lost(sli_conn *k, int code, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	if (!k->connected || k->c->losing)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	k->c->on_lost(k, code, msg);
}
