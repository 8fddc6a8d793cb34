/*
 * conn.h - how the files of one storage-side connection (conn*.c) reach each other: output and
 * errors (conn_out.c), input (conn_read.c), the handshake (conn_hello.c) and the request
 * handlers (conn_subs.c, conn_append.c).  Included by conn*.c only.  Network thread only.
 * What the runtime and the scheduler call (accept, tick, flush, sweep) is in storage_int.h.
 */
#ifndef SLUICE_STORAGE_CONN_H
#define SLUICE_STORAGE_CONN_H

#include <stdarg.h>
#include <stdint.h>

#include "proto/proto.h"
#include "storage/storage_int.h"

/* conn->tls_phase */
enum { CONN_TLS_NONE, CONN_TLS_SNIFF, CONN_TLS_HANDSHAKE, CONN_TLS_FAILED };

/* An error message's room: longer ones are truncated to fit. */
#define ERRMSG_MAX 256

/* conn_out.c */
/* Registers for what the connection waits for now (reading, writing). */
void sli_conn_update_interest(struct conn *c);
/* Records why c closes, for its "connection closed" event; the first reason wins. */
void sli_conn_reason(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Closes c now (it is freed by the next sweep). */
void sli_conn_kill(struct conn *c);
/* Formats an error message into msg[ERRMSG_MAX] and returns it as a byte view (truncated to
 * fit). */
sl_bytes sli_conn_format_message(char *msg, const char *fmt, va_list ap);
/* Queues an Error frame; a fatal one closes the connection once it is flushed. */
void sli_conn_error(struct conn *c, int code, int fatal, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Closes a connection whose output passed max_output (cannot happen with the checks of
 * conn_read.c unless one answer alone is that big): 1 if it did. */
int sli_conn_out_over_limit(struct conn *c);

/* Queues one frame (inline: every answer goes through it). */
static inline void sli_conn_put_frame(struct conn *c, const sli_frame *f)
{
	if (sli_frame_encode(&c->out, f) != 0) {
		sli_conn_reason(c, "out of memory");
		sli_conn_kill(c); /* out of memory for one small frame: give this connection up */
		return;
	}
	c->frames_out++;
}

/* conn_read.c */
/* Reads what the socket has (a few rounds at most) and acts on every complete frame. */
void sli_conn_read(struct conn *c);
/* Decodes input that backpressure left undecoded, once the output has drained. */
void sli_conn_resume(struct conn *c);

/* conn_hello.c */
/* Socket events of a TLS listener's connection before its handshake is done: 1 when the
 * handshake just finished (the caller then reads), 0 otherwise. */
int sli_conn_tls_io(struct conn *c, uint32_t events);
/* The first frame of a connection: a valid Hello is answered, anything else closes it. */
void sli_conn_first_frame(struct conn *c, const sli_frame *f);

/* conn_subs.c */
void sli_conn_on_subscribe(struct conn *c, const sli_subscribe *r);
void sli_conn_on_unsubscribe(struct conn *c, const sli_unsubscribe *r);
void sli_conn_on_credit(struct conn *c, const sli_credit *r);

/* conn_append.c */
void sli_conn_on_append(struct conn *c, const sli_append *r);

#endif
