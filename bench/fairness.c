/*
 * fairness.c - the fairness benchmark: 1 + 99 subscriptions through two queues, the one
 * stopping after its first Messages event; the 99's payload rate against a run where none stops,
 * and the storage child's memory while that happens.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* ------------------------------------------------------------------------------------------ */
/* fairness */

struct fair_result {
	double rate99;                /* payload B/s of the 99 */
	struct mem before, steady, after;
};

/* 1 + (subs - 1) subscriptions through two queues; the first stops consuming when `stall`. */
static int run_fair(const struct config *cf, int stall, struct fair_result *fr)
{
	uint32_t subs = cf->fair_subs;
	uint64_t per_worker = cf->fair_bytes / ROW_BYTES / subs;
	uint64_t want = per_worker * (subs - 1) * ROW_BYTES;
	struct child ch;
	sl_client *c = NULL;
	struct cons one, many;
	pthread_t th1, th2;
	int rc, started = 0;
	memset(fr, 0, sizeof(*fr));
	if ((rc = child_start(subs, per_worker, 1, &ch)) != 0) {
		fprintf(stderr, "fairness: storage child: %s\n", sl_strerror(rc));
		child_stop(&ch);
		return rc;
	}
	if ((rc = child_mem(&ch, &fr->before)) != 0 || (rc = client_open(ch.port, &c)) != 0)
		goto out;
	/* Source ids start at 1; the child registered exactly one source. */
	cons_init(&one, c, 1, 0, 1, 1, stall ? MODE_STALL : MODE_DRAIN, cf->timeout_ns);
	cons_init(&many, c, 1, 1, subs - 1, 1, MODE_DRAIN, cf->timeout_ns);
	if ((rc = pthread_create(&th1, NULL, cons_main, &one)) != 0) {
		rc = -rc;
		goto out;
	}
	if ((rc = pthread_create(&th2, NULL, cons_main, &many)) != 0) {
		atomic_store(&one.release, 1);
		pthread_join(th1, NULL);
		rc = -rc;
		goto out;
	}
	started = 1;
	/* Steady state: the stalled one has stopped and the 99 moved a tenth of their data. */
	uint64_t deadline = now_ns() + cf->timeout_ns;
	while (!atomic_load(&many.finished) && now_ns() < deadline &&
	       (atomic_load(&many.payload) < want / 10 || (stall && !atomic_load(&one.stalled))))
		sleep_ms(1);
	if ((rc = child_mem(&ch, &fr->steady)) != 0)
		goto join;
	pthread_join(th2, NULL);
	started = 1 | 2;
	if ((rc = child_mem(&ch, &fr->after)) != 0)
		goto join;
	if (many.rc != 0) {
		fprintf(stderr, "fairness: %s\n", many.err);
		rc = many.rc;
	} else if (atomic_load(&many.payload) != want) {
		fprintf(stderr, "fairness: the 99 got %" PRIu64 " bytes, expected %" PRIu64 "\n",
		        atomic_load(&many.payload), want);
		rc = SL_EPROTO;
	} else {
		fr->rate99 = (double)want / ((double)(many.t_done - many.t_start) / 1e9);
	}
join:
	/* Without a stall the lone subscription drains its data too; on a loaded machine it may
	 * finish after the 99: releasing it before would count as its failure ("aborted"). */
	for (uint64_t until = now_ns() + cf->timeout_ns; !stall && rc == 0 &&
	     !atomic_load(&one.finished) && now_ns() < until;)
		sleep_ms(1);
	atomic_store(&one.release, 1);
	if (!(started & 2)) {
		atomic_store(&many.release, 1);
		pthread_join(th2, NULL);
	}
	pthread_join(th1, NULL);
	if (rc == 0 && one.rc != 0) {
		fprintf(stderr, "fairness: %s\n", one.err);
		rc = one.rc;
	}
out:
	sl_client_close(c);
	child_stop(&ch);
	return rc;
}

void bench_fairness(const struct config *cf, double *v, int *failures)
{
	int runs = cf->runs;
	char label[64];
	struct fair_result *base = calloc((size_t)runs, sizeof(*base));
	struct fair_result *stall = calloc((size_t)runs, sizeof(*stall));
	int rc = base && stall ? 0 : SL_ENOMEM;
	for (int r = 0; r < runs && rc == 0; r++)
		if ((rc = run_fair(cf, 0, &base[r])) == 0)
			rc = run_fair(cf, 1, &stall[r]);
	snprintf(label, sizeof(label), "fairness, %u subs", cf->fair_subs);
	if (rc != 0) {
		(*failures)++;
		add_row(label, "", NULL, "error", "%s", sl_strerror(rc));
	} else {
		for (int r = 0; r < runs; r++)
			v[r] = stall[r].rate99 / base[r].rate99;
		double ratio = median(v, runs);
		for (int r = 0; r < runs; r++)
			v[r] = base[r].rate99;
		add_row(label, "others' MB/s, none stalled", NULL, NULL, "%.0f", median(v, runs) / 1e6);
		for (int r = 0; r < runs; r++)
			v[r] = stall[r].rate99;
		add_row(label, "others' MB/s, one stalled", NULL, NULL, "%.0f", median(v, runs) / 1e6);
		add_row(label, "stalled / none stalled", ">= 0.9", verdict(ratio >= 0.9), "%.2f", ratio);
		/* memory: the median run by steady->after heap growth */
		double grow[100];
		for (int r = 0; r < runs; r++)
			grow[r] = (double)stall[r].after.heap - (double)stall[r].steady.heap;
		double g = median(grow, runs);
		const struct fair_result *m = &stall[0];
		for (int r = 0; r < runs; r++)
			if ((double)stall[r].after.heap - (double)stall[r].steady.heap == g)
				m = &stall[r];
		if (m->before.heap == 0) {
			/* mallinfo2 knows nothing of a replaced allocator (ASan): RSS only */
			add_row(label, "storage heap", NULL, NULL, "n/a (no mallinfo2)");
		} else {
			add_row(label, "storage heap before (MiB)", NULL, NULL, "%.1f",
			        (double)m->before.heap / 1048576.0);
			add_row(label, "storage heap steady (MiB)", NULL, NULL, "%.1f",
			        (double)m->steady.heap / 1048576.0);
			add_row(label, "storage heap after (MiB)", NULL, NULL, "%.1f",
			        (double)m->after.heap / 1048576.0);
			add_row(label, "storage heap steady->after", "flat (< 1 MiB)",
			        verdict(g < 1048576.0), "%+.0f KiB", g / 1024.0);
		}
		add_row(label, "storage RSS before/after (MiB)", NULL, NULL, "%.1f / %.1f",
		        (double)m->before.rss / 1048576.0, (double)m->after.rss / 1048576.0);
	}
	free(base);
	free(stall);
}
