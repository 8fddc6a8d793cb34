/*
 * counter.c - the `counter` source: a deterministic load generator.
 *
 * Tick k (k = 1, 2, ...) happens at time k: worker (k-1) mod W inserts row k (decimal ASCII,
 * diff +1); with keep=K > 0 and k > K, worker (k-K-1) mod W retracts row k-K (diff -1); with
 * errors=E > 0 and k mod E == 0, worker (k-1) mod W adds "tick k" to err (diff +1).  After tick
 * k every worker's upper is at least k+1; after tick max=N every worker is closed.
 *
 * Ticks are produced in batches (at most BATCH_TICKS): one sl_source_commit per batch (every
 * worker's and collection's ticks and the advance of every worker, all or nothing), so nothing
 * here costs a syscall per tick, and a batch refused by a full disk is simply committed again
 * once space returns.
 * With rate=R the batches hold the ticks that are due by a monotonic clock and the thread sleeps
 * (interruptibly, at most SLEEP_MAX_NS at a time) until the next one is due.
 *
 * A restarted counter resumes from the workers' uppers: a tick's update for worker w is made
 * only if its time is >= w's upper, so the output is the same as if it had never stopped.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sources/sources.h"

#define BATCH_TICKS 4096u
#define SLEEP_MAX_NS 50000000u /* 50 ms: how long stop may wait for a paced counter */
#define ROW_BYTES 32u          /* "tick " + 20 digits, rounded up */

typedef struct counter {
	uint32_t workers;
	uint64_t max, keep, rate, errors;
	uint64_t *uppers;     /* per worker, as last advanced (or read at start) */
	uint32_t *counts;     /* 2 * workers: updates per (worker, collection) in this batch */
	uint32_t *offs;       /* 2 * workers: start of each group in sorted */
	sl_update *staged;    /* in tick order */
	uint32_t *staged_key; /* worker * 2 + collection, parallel to staged */
	sl_update *sorted;    /* grouped by (worker, collection), tick order inside */
	sl_append_part *parts; /* 2 * workers: the groups of one commit */
	char *rows;           /* row bytes of this batch, ROW_BYTES per slot */
	char err[256];
} counter;

static void counter_free(void *p)
{
	counter *c = p;

	if (c == NULL)
		return;
	free(c->uppers);
	free(c->counts);
	free(c->offs);
	free(c->staged);
	free(c->staged_key);
	free(c->sorted);
	free(c->parts);
	free(c->rows);
	free(c);
}

/* Stages one update unless worker w already holds time t (a restart resumes mid-batch). */
static void stage(counter *c, size_t *n, uint32_t w, sl_collection coll, const char *row,
                  size_t len, uint64_t t, int64_t diff)
{
	if (t < c->uppers[w])
		return;
	c->staged[*n].row.ptr = (const uint8_t *)row;
	c->staged[*n].row.len = len;
	c->staged[*n].time = t;
	c->staged[*n].diff = diff;
	c->staged_key[*n] = w * 2u + (uint32_t)coll;
	(*n)++;
}

/* Produces ticks [first, last] and advances every worker to last + 1 (or closes it when last is
 * the final tick).  Returns 0 or the first error of the storage runtime. */
static int counter_batch(counter *c, sl_source *src, uint64_t first, uint64_t last)
{
	uint32_t W = c->workers, w, g;
	size_t n = 0, i, slot = 0;
	uint64_t k, upper;
	char *row;
	int len, rc;

	for (k = first; k <= last; k++) {
		w = (uint32_t)((k - 1) % W);
		row = c->rows + slot++ * ROW_BYTES;
		len = snprintf(row, ROW_BYTES, "%" PRIu64, k);
		stage(c, &n, w, SL_OK, row, (size_t)len, k, +1);
		if (c->keep > 0 && k > c->keep) {
			uint64_t old = k - c->keep;

			row = c->rows + slot++ * ROW_BYTES;
			len = snprintf(row, ROW_BYTES, "%" PRIu64, old);
			stage(c, &n, (uint32_t)((old - 1) % W), SL_OK, row, (size_t)len, k, -1);
		}
		if (c->errors > 0 && k % c->errors == 0) {
			row = c->rows + slot++ * ROW_BYTES;
			len = snprintf(row, ROW_BYTES, "tick %" PRIu64, k);
			stage(c, &n, w, SL_ERR, row, (size_t)len, k, +1);
		}
	}

	/* Group by (worker, collection) with a counting sort that keeps tick order. */
	memset(c->counts, 0, 2u * W * sizeof(*c->counts));
	for (i = 0; i < n; i++)
		c->counts[c->staged_key[i]]++;
	for (g = 0, i = 0; g < 2u * W; g++) {
		c->offs[g] = (uint32_t)i;
		i += c->counts[g];
	}
	for (i = 0; i < n; i++)
		c->sorted[c->offs[c->staged_key[i]]++] = c->staged[i];
	size_t np = 0;
	for (g = 0, i = 0; g < 2u * W; g++) {
		if (c->counts[g] > 0)
			c->parts[np++] = (sl_append_part){g / 2u, (sl_collection)(g % 2u), c->sorted + i,
			                                  c->counts[g]};
		i += c->counts[g];
	}
	/* The ticks and every worker's advance in one transaction: a full disk leaves nothing of
	 * the batch, and the same batch is committed again once it clears. */
	upper = (c->max > 0 && last >= c->max) ? SL_TIME_CLOSED : last + 1;
	if ((rc = sl_source_commit(src, c->parts, np, upper)) != 0)
		return rc;
	for (w = 0; w < W; w++)
		if (c->uppers[w] < upper)
			c->uppers[w] = upper;
	return 0;
}

static void *counter_main(void *arg)
{
	sli_source_runner *r = arg;
	counter *c = r->state;
	uint64_t next = UINT64_MAX, last, t0 = 0, now, due, wait, backoff = 0;
	uint32_t w;
	int rc;

	/* Resume where the slowest worker stands (upper u: ticks < u are done there). */
	for (w = 0; w < c->workers; w++) {
		/* In a cluster another process produces the workers this one does not host: here
		 * they count as done, so nothing is staged or advanced for them. */
		c->uppers[w] = sl_source_hosts(r->src, w) ? sl_source_upper(r->src, w) : SL_TIME_CLOSED;
		if (c->uppers[w] < next)
			next = c->uppers[w];
	}
	if (next == SL_TIME_CLOSED)
		return NULL;
	if (next == 0)
		next = 1;
	if (c->rate > 0) {
		uint64_t done = (uint64_t)((double)(next - 1) * 1e9 / (double)c->rate);

		now = sli_now_ns();
		t0 = now > done ? now - done : 0;
	}

	while (!sli_runner_stopping(r)) {
		if (c->max > 0 && next > c->max)
			break;
		last = next + BATCH_TICKS - 1;
		if (c->rate > 0) {
			now = sli_now_ns();
			/* Ticks due by now: tick k is due at t0 + (k-1)/R seconds. */
			due = (uint64_t)((double)(now - t0) * (double)c->rate / 1e9) + 1;
			if (due < next) {
				wait = (uint64_t)((double)(next - 1) * 1e9 / (double)c->rate) + t0 - now;
				if (wait > SLEEP_MAX_NS)
					wait = SLEEP_MAX_NS;
				sli_runner_sleep(r, wait > 0 ? wait : 1000);
				continue;
			}
			if (due < last)
				last = due;
		}
		if (c->max > 0 && last > c->max)
			last = c->max;
		if ((rc = counter_batch(c, r->src, next, last)) != 0) {
			if (sli_source_retryable(rc)) {
				/* The storage said so (appends blocked); the same batch goes again. */
				if (sli_runner_backoff(r, &backoff))
					break;
				continue;
			}
			if (rc != SL_ECLOSED) {
				char id[24];
				snprintf(id, sizeof(id), "%" PRIu64, sl_source_id(r->src));
				sli_kv kv[] = {{"source_id", id, 1}, {"error", sl_strerror(rc), 0}, {NULL, NULL, 0}};
				sli_elog(SLI_LOG_ERROR, "source_stopped", kv, "counter source %s stopped: %s", id,
				         sl_strerror(rc));
			}
			break;
		}
		backoff = 0;
		next = last + 1;
	}
	return NULL;
}

int sli_counter_start(sl_storage *st, sli_spec *sp, sli_source_runner **out, char *err,
                      size_t errlen)
{
	uint64_t workers, max, keep, rate, errors;
	counter *c;
	sl_source *src;
	int rc;

	if ((rc = sli_spec_get_u64(sp, "workers", 1, 1, SLI_SOURCE_MAX_WORKERS, &workers, err,
	                           errlen)) != 0 ||
	    (rc = sli_spec_get_u64(sp, "max", 0, 0, SL_TIME_CLOSED - 2, &max, err, errlen)) != 0 ||
	    (rc = sli_spec_get_u64(sp, "keep", 0, 0, UINT64_MAX, &keep, err, errlen)) != 0 ||
	    (rc = sli_spec_get_u64(sp, "rate", 0, 0, 1000000000u, &rate, err, errlen)) != 0 ||
	    (rc = sli_spec_get_u64(sp, "errors", 0, 0, UINT64_MAX, &errors, err, errlen)) != 0 ||
	    (rc = sli_spec_check_used(sp, err, errlen)) != 0)
		return rc;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto err_nomem;
	c->workers = (uint32_t)workers;
	c->max = max;
	c->keep = keep;
	c->rate = rate;
	c->errors = errors;
	c->uppers = calloc(workers, sizeof(*c->uppers));
	c->counts = calloc(2 * workers, sizeof(*c->counts));
	c->offs = calloc(2 * workers, sizeof(*c->offs));
	c->staged = calloc(3 * BATCH_TICKS, sizeof(*c->staged));
	c->staged_key = calloc(3 * BATCH_TICKS, sizeof(*c->staged_key));
	c->sorted = calloc(3 * BATCH_TICKS, sizeof(*c->sorted));
	c->parts = calloc(2 * workers, sizeof(*c->parts));
	c->rows = malloc(3 * BATCH_TICKS * ROW_BYTES);
	if (c->uppers == NULL || c->counts == NULL || c->offs == NULL || c->staged == NULL ||
	    c->staged_key == NULL || c->sorted == NULL || c->parts == NULL || c->rows == NULL)
		goto err_free_counter;

	if ((rc = sli_source_register_spec(st, sp, c->workers, 0, &src, err, errlen)) != 0) {
		counter_free(c);
		return rc;
	}
	return sli_runner_start(src, sp->name, c, counter_free, counter_main, out, err, errlen);

err_free_counter:
	counter_free(c);
err_nomem:
	snprintf(err, errlen, "source '%s': out of memory", sp->name);
	return SL_ENOMEM;
}
