/*
 * serve.c - the scheduler that moves log bytes into connections.
 *
 * Every connection has a ring of ready subscriptions: those that may have something to send
 * and the credit to send some of it.  The loop takes them round-robin, each for at most one
 * quantum of bytes, until the connection's output reaches its high-water mark; a subscription
 * with more to send goes back to the tail.  So one busy subscription cannot starve the others,
 * and one without credit costs nothing until credit arrives: it leaves the ring, its cursor
 * stays where it is, and the log is its buffer.
 *
 * Progress is folded: a subscription is told only the newest upper, and only once everything
 * before it was sent, so nothing queues per elapsed time while it waits.
 */
#include <string.h>

#include "storage/storage_int.h"

#define SERVE_QUANTUM (64u * 1024u)
#define PROGRESS_MAX_SIZE (1u + 4u + 2u * SLI_CHANGE_SIZE)

void sli_serve_mark_ready(struct sub *s)
{
	if (s->ready)
		return;
	struct conn *c = s->conn;
	s->ready = 1;
	s->rnext = NULL;
	s->rprev = c->ready_tail;
	if (c->ready_tail)
		c->ready_tail->rnext = s;
	else
		c->ready_head = s;
	c->ready_tail = s;
}

/* Removes s from its worker's subscriber list and its connection's ready ring. */
void sli_sub_detach(struct sub *s)
{
	for (int coll = 0; coll < 2; coll++) {
		sli_snap_unref(s->snap[coll]);
		s->snap[coll] = NULL;
	}
	if (s->wprev)
		s->wprev->wnext = s->wnext;
	else
		s->w->subs = s->wnext;
	if (s->wnext)
		s->wnext->wprev = s->wprev;
	s->wnext = s->wprev = NULL;
	if (s->ready) {
		struct conn *c = s->conn;
		if (s->rprev)
			s->rprev->rnext = s->rnext;
		else
			c->ready_head = s->rnext;
		if (s->rnext)
			s->rnext->rprev = s->rprev;
		else
			c->ready_tail = s->rprev;
		s->rnext = s->rprev = NULL;
		s->ready = 0;
	}
}

/* Bytes of the events of block b at times >= from. */
static size_t filtered_size(const sli_block *b, uint64_t from)
{
	sl_bytes rest = {b->events, b->nbytes};
	sli_event ev;
	size_t n = 0;
	while (sli_events_next(&rest, &ev) == 1)
		if (ev.time >= from)
			n += ev.size;
	return n;
}

static void copy_filtered(uint8_t *dst, const sli_block *b, uint64_t from)
{
	sl_bytes rest = {b->events, b->nbytes};
	const uint8_t *p = b->events;
	sli_event ev;
	while (sli_events_next(&rest, &ev) == 1) {
		if (ev.time >= from) {
			memcpy(dst, p, ev.size);
			dst += ev.size;
		}
		p += ev.size;
	}
}

/* Sends a PROGRESS event moving the subscription's frontier from sent_upper to `to` on both
 * collections.  Returns 0, or 1 when the credit does not cover it. */
static int send_progress(struct conn *c, struct sub *s, uint64_t to)
{
	uint64_t times[2];
	int64_t deltas[2];
	uint32_t n = 0;
	if (to != SL_TIME_CLOSED) {
		times[n] = to;
		deltas[n++] = 1;
	}
	times[n] = s->sent_upper;
	deltas[n++] = -1;
	size_t size = 1 + 4 + (size_t)n * SLI_CHANGE_SIZE;
	if (2 * size > s->credit)
		return 1;
	for (uint8_t coll = 0; coll < 2; coll++) {
		ssize_t f = sli_data_begin(&c->out, s->handle, coll);
		if (f < 0 || sli_put_progress(&c->out, times, deltas, n) != 0)
			return 1; /* out of memory: leave it for the next round */
		sli_frame_end(&c->out, (size_t)f);
		c->frames_out++;
	}
	s->credit -= 2 * size;
	s->sent_upper = to;
	return 0;
}

/* One turn of one subscription: the bytes it may still send, and the frame being filled. */
struct turn {
	struct conn *c;
	struct sub *s;
	size_t budget;     /* quantum left */
	size_t max_events; /* event bytes per Data frame */
	uint64_t upper;    /* the worker's upper, read before any log end */
	int more;          /* stopped with data left and credit for it */
};

/* Copies blocks of one log from *cursor into Data frames of collection coll, skipping blocks
 * below `from`, until the log's end, a block not complete below the upper, the credit or the
 * quantum.  Returns 1 when it reached the end of the log. */
static int serve_log(struct turn *t, uint8_t coll, const sli_log *log, uint64_t *cursor, uint64_t from)
{
	struct conn *c = t->c;
	struct sub *s = t->s;
	uint64_t end = sli_log_end(log);
	ssize_t frame = -1;
	size_t frame_bytes = 0;
	while (*cursor < end) {
		sli_block b;
		sli_log_block(log, *cursor, &b);
		/* Blocks without events (upper markers of a durable log) carry nothing to send. */
		if (b.nbytes == 0 || b.max_time < from) {
			*cursor = b.next;
			continue;
		}
		/* A time's updates leave only once the time is complete (below the upper): a
		 * subscriber never holds part of a time, so resuming from its frontier after a
		 * reconnect or a restart is exact, and a restarted source may regenerate the
		 * incomplete times the log dropped. */
		if (b.max_time >= t->upper)
			break;
		int filter = b.min_time < from;
		size_t size = filter ? filtered_size(&b, from) : b.nbytes;
		if (size > s->credit || t->budget == 0) {
			t->more |= size <= s->credit;
			break;
		}
		if (frame >= 0 && frame_bytes + size > t->max_events) {
			sli_frame_end(&c->out, (size_t)frame);
			frame = -1;
		}
		if (frame < 0) {
			if ((frame = sli_data_begin(&c->out, s->handle, coll)) < 0)
				break;
			frame_bytes = 0;
			c->frames_out++;
		}
		if (sli_buf_reserve(&c->out, size) != 0)
			break;
		if (filter)
			copy_filtered(c->out.ptr + c->out.len, &b, from);
		else
			memcpy(c->out.ptr + c->out.len, b.events, size);
		c->out.len += size;
		frame_bytes += size;
		s->credit -= size;
		t->budget = size >= t->budget ? 0 : t->budget - size;
		*cursor = b.next;
	}
	if (frame >= 0)
		sli_frame_end(&c->out, (size_t)frame);
	return *cursor >= end;
}

/* Whether every block of log from cursor to its end is still pending: all its updates at times
 * >= upper.  Then nothing below upper is left to send, and the subscription may be told the
 * upper although its cursor waits at a pending block (a source that appended and has not
 * advanced yet, or whose advance a full disk refuses).  A block holding times on both sides of
 * the upper is not pending: its earlier times are still to be sent.  Walks only what was
 * appended since the last advance, and only when the frontier would move. */
static int only_pending(const sli_log *log, uint64_t cursor, uint64_t upper)
{
	uint64_t end = sli_log_end(log);
	while (cursor < end) {
		sli_block b;
		sli_log_block(log, cursor, &b);
		if (b.nbytes > 0 && b.min_time < upper)
			return 0;
		cursor = b.next;
	}
	return 1;
}

/* Sends what s may send, at most about one quantum.  Returns 1 when it has more to send and
 * credit for it (so it belongs back on the ring). */
static int serve_sub(struct conn *c, struct sub *s)
{
	struct sworker *w = s->w;
	struct turn t = {c, s, SERVE_QUANTUM, c->st->cfg.max_frame - 64, 0, 0};

	/* The moved initial capability comes before any data (timely's replay needs it). */
	if (s->sent_upper < s->from && send_progress(c, s, s->from) != 0)
		return 0;

	/* Read the upper before the ends: every block below a time < upper is then within them.
	 * A standby's subscription reads to the upper, and learns the watermark; every other one
	 * to the published frontier (the upper, or with replication what the copies hold). */
	if (c->replica) {
		sli_repl_send_watermark(c, s);
		t.upper = atomic_load_explicit(&w->upper, memory_order_acquire);
	} else {
		t.upper = sli_worker_published(c->st, w);
	}

	/* A subscription from before `since` first gets the snapshot at since (s->from). */
	if (s->snap[0] != NULL || s->snap[1] != NULL) {
		int done = 1;
		for (uint8_t coll = 0; coll < 2; coll++)
			if (s->snap[coll] != NULL &&
			    !serve_log(&t, coll, s->snap[coll]->log, &s->snap_cursor[coll], s->from))
				done = 0;
		if (!done)
			return t.more;
		for (uint8_t coll = 0; coll < 2; coll++) {
			sli_snap_unref(s->snap[coll]);
			s->snap[coll] = NULL;
			/* Whatever compaction removed meanwhile is inside the snapshot just sent. */
			s->cursor[coll] = sli_log_start(w->log[coll]);
		}
	}

	int caught_up = 1;
	uint64_t target = t.upper > s->from ? t.upper : s->from;
	for (uint8_t coll = 0; coll < 2; coll++)
		if (!serve_log(&t, coll, w->log[coll], &s->cursor[coll], s->from) &&
		    (target <= s->sent_upper || !only_pending(w->log[coll], s->cursor[coll], t.upper)))
			caught_up = 0;
	if (caught_up && target > s->sent_upper && s->sent_upper != SL_TIME_CLOSED)
		send_progress(c, s, target);
	return t.more;
}

void sli_serve_conn(struct conn *c)
{
	size_t high = c->st->cfg.out_high_water;
	while (!c->dead && !c->closing && c->ready_head != NULL) {
		if (c->out.len - c->out_off >= high) {
			/* Hand the batch to the kernel; stop if it will not take it now. */
			if (sli_conn_flush(c) != 0 || c->out.len - c->out_off >= high)
				return;
		}
		struct sub *s = c->ready_head;
		c->ready_head = s->rnext;
		if (c->ready_head == NULL)
			c->ready_tail = NULL;
		else
			c->ready_head->rprev = NULL;
		s->rnext = NULL;
		s->ready = 0;
		if (serve_sub(c, s))
			sli_serve_mark_ready(s);
	}
}

void sli_serve_dirty(sl_storage *st)
{
	pthread_mutex_lock(&st->dirty_mu);
	struct sworker *w = st->dirty;
	st->dirty = NULL;
	pthread_mutex_unlock(&st->dirty_mu);
	for (struct sworker *next; w != NULL; w = next) {
		next = w->dirty_next;
		/* An exchange, not a store: it acquires what the appender published before it set
		 * the flag, and an append after this point queues the worker again (which rewrites
		 * dirty_next: hence `next` was read first). */
		atomic_exchange(&w->dirty, 0);
		sli_repl_update_worker(st, w);
		for (struct sub *s = w->subs; s != NULL; s = s->wnext)
			sli_serve_mark_ready(s);
	}
	for (struct conn *c = st->conns; c != NULL; c = c->next)
		if (c->ready_head != NULL)
			sli_serve_conn(c);
}
