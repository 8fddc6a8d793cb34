/*
 * consumer.c - the consumer thread: one queue that subscribes a range of workers and dataflows,
 * takes every event and iterates every update (draining, stalling after its first Messages
 * event, or idle), counting payload and, for the latency test, taking samples.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* ------------------------------------------------------------------------------------------ */
/* the consumer: one queue on its own thread */

static void cons_fail(struct cons *k, int rc, const char *what)
{
	if (k->rc == 0) {
		k->rc = rc ? rc : SL_EPROTO;
		snprintf(k->err, sizeof(k->err), "%s: %s", what, sl_strerror(k->rc));
	}
}

void *cons_main(void *arg)
{
	struct cons *k = arg;
	uint64_t nsubs = (uint64_t)k->nworkers * k->ndataflows, closed = 0, subscribed = 0;
	uint8_t *isclosed = calloc(nsubs ? nsubs : 1, 1);
	sl_queue *q = NULL;
	int rc;
	if (isclosed == NULL) {
		cons_fail(k, SL_ENOMEM, "consumer");
		goto out;
	}
	if ((rc = sl_queue_open(k->c, &q)) != 0) {
		cons_fail(k, rc, "sl_queue_open");
		goto out;
	}
	k->t_start = now_ns();
	for (uint32_t d = 1; d <= k->ndataflows; d++) {
		for (uint32_t w = 0; w < k->nworkers; w++) {
			sl_sub sub;
			if ((rc = sl_subscribe(q, d, k->source, k->worker0 + w, 0, &sub)) != 0) {
				cons_fail(k, rc, "sl_subscribe");
				goto out;
			}
		}
	}
	for (;;) {
		if (now_ns() > k->deadline_ns) {
			cons_fail(k, SL_ETIMEDOUT, "consumer deadline");
			break;
		}
		if (k->mode == MODE_DRAIN && closed == nsubs)
			break;
		if (atomic_load(&k->release)) {
			/* STALL/IDLE: the end of the run; DRAIN: main gave up on it */
			if (k->mode == MODE_DRAIN)
				cons_fail(k, SL_ECLOSED, "aborted");
			break;
		}
		if (k->mode == MODE_STALL && atomic_load(&k->stalled)) {
			sleep_ms(1); /* it stopped consuming: credit runs out, storage must stop */
			continue;
		}
		sl_event ev;
		rc = sl_queue_next(q, &ev, k->mode == MODE_DRAIN ? 100 : 10);
		if (rc < 0) {
			cons_fail(k, rc, "sl_queue_next");
			break;
		}
		if (rc == 0)
			continue;
		switch (ev.kind) {
		case SL_EV_SUBSCRIBED:
			if (++subscribed == nsubs) {
				k->t_subscribed = now_ns();
				atomic_store(&k->subscribed_all, 1);
			}
			break;
		case SL_EV_MESSAGES: {
			sl_iter it;
			sl_bytes row;
			int64_t diff;
			uint64_t bytes = 0, n = 0;
			sl_iter_init(&it, &ev);
			if (k->samples) {
				uint64_t now = now_ns();
				while (sl_iter_update(&it, &row, &diff)) {
					bytes += row.len;
					n++;
					if (row.len >= 8) {
						uint64_t stamp;
						memcpy(&stamp, row.ptr, 8);
						if (k->nsamples < k->cap_samples)
							k->samples[k->nsamples++] = now - stamp;
						else
							k->dropped_samples++;
					}
				}
			} else {
				while (sl_iter_update(&it, &row, &diff)) {
					bytes += row.len;
					n++;
				}
			}
			k->updates += n;
			atomic_fetch_add_explicit(&k->payload, bytes, memory_order_relaxed);
			if (k->mode == MODE_STALL)
				atomic_store(&k->stalled, 1);
			break;
		}
		case SL_EV_PROGRESS:
			if (ev.frontier == SL_TIME_CLOSED) {
				uint64_t i = (uint64_t)(ev.dataflow - 1) * k->nworkers + (ev.worker - k->worker0);
				if (i < nsubs && !isclosed[i]) {
					isclosed[i] = 1;
					closed++;
				}
			}
			break;
		case SL_EV_SUBSCRIBE_ERROR:
			cons_fail(k, ev.code, "subscribe refused");
			goto out;
		case SL_EV_DISCONNECTED:
			cons_fail(k, ev.code, "disconnected");
			goto out;
		case SL_EV_RECONNECTED:
		case SL_EV_RESNAPSHOT:
		case SL_EV_WATERMARK:
			break; /* storage is in-process here: neither happens */
		}
	}
out:
	k->t_done = now_ns();
	sl_queue_close(q);
	free(isclosed);
	atomic_store(&k->finished, 1);
	return NULL;
}

void cons_init(struct cons *k, sl_client *c, uint64_t source, uint32_t worker0,
               uint32_t nworkers, uint32_t ndataflows, int mode, uint64_t timeout_ns)
{
	memset(k, 0, sizeof(*k));
	k->c = c;
	k->source = source;
	k->worker0 = worker0;
	k->nworkers = nworkers;
	k->ndataflows = ndataflows;
	k->mode = mode;
	k->deadline_ns = now_ns() + timeout_ns;
}

/* Waits (bounded by deadline_ns) until *flag is set or the consumer finished.  0 when set. */
int wait_flag(atomic_int *flag, struct cons *k, uint64_t deadline_ns)
{
	while (!atomic_load(flag)) {
		if (atomic_load(&k->finished) || now_ns() > deadline_ns)
			return -1;
		sleep_ms(1);
	}
	return 0;
}
