/*
 * memory.c - the memory benchmark: the storage child's heap and RSS per idle subscription, many
 * subscriptions on one connection, and what is left after they are all unsubscribed.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* ------------------------------------------------------------------------------------------ */
/* memory per idle subscription */

struct mem_result {
	double heap_per_sub, rss_per_sub;     /* bytes */
	double heap_left_per_sub;             /* after unsubscribing everything */
	int heap_known;                       /* mallinfo2 works (not under ASan) */
	uint64_t subs;
};

static int run_memory(const struct config *cf, struct mem_result *mr)
{
	struct child ch;
	sl_client *c = NULL;
	struct cons k;
	pthread_t th;
	struct mem before, after, gone;
	int rc;
	memset(mr, 0, sizeof(*mr));
	mr->subs = (uint64_t)cf->mem_workers * cf->mem_dataflows;
	if ((rc = child_start(cf->mem_workers, 0, 0, &ch)) != 0) {
		fprintf(stderr, "memory: storage child: %s\n", sl_strerror(rc));
		child_stop(&ch);
		return rc;
	}
	/* "before" includes the connection, so what grows is the subscriptions' own memory. */
	if ((rc = client_open(ch.port, &c)) != 0)
		goto out;
	sleep_ms(50);
	if ((rc = child_mem(&ch, &before)) != 0)
		goto out;
	cons_init(&k, c, 1, 0, cf->mem_workers, cf->mem_dataflows, MODE_IDLE, cf->timeout_ns);
	if ((rc = pthread_create(&th, NULL, cons_main, &k)) != 0) {
		rc = -rc;
		goto out;
	}
	if (wait_flag(&k.subscribed_all, &k, now_ns() + cf->timeout_ns) != 0) {
		fprintf(stderr, "memory: subscriptions did not complete: %s\n", k.err);
		rc = k.rc ? k.rc : SL_ETIMEDOUT;
	}
	sleep_ms(50); /* let any trailing frames settle */
	if (rc == 0)
		rc = child_mem(&ch, &after);
	atomic_store(&k.release, 1);
	pthread_join(th, NULL); /* closing its queue unsubscribes everything */
	if (rc == 0 && k.rc != 0) {
		fprintf(stderr, "memory: %s\n", k.err);
		rc = k.rc;
	}
	if (rc == 0) {
		/* Unsubscribes are asynchronous: give storage a bounded moment to process them. */
		sleep_ms(cf->quick ? 200 : 1000);
		rc = child_mem(&ch, &gone);
	}
	if (rc == 0) {
		mr->heap_per_sub = ((double)after.heap - (double)before.heap) / (double)mr->subs;
		mr->rss_per_sub = ((double)after.rss - (double)before.rss) / (double)mr->subs;
		mr->heap_left_per_sub = ((double)gone.heap - (double)before.heap) / (double)mr->subs;
		mr->heap_known = before.heap != 0;
	}
out:
	sl_client_close(c);
	child_stop(&ch);
	return rc;
}

void bench_memory(const struct config *cf, double *v, int *failures)
{
	int runs = cf->runs;
	char label[64], cnt[32];
	struct mem_result *mr = calloc((size_t)runs, sizeof(*mr));
	int rc = mr ? 0 : SL_ENOMEM;
	for (int r = 0; r < runs && rc == 0; r++)
		rc = run_memory(cf, &mr[r]);
	fmt_count(cnt, sizeof(cnt), (uint64_t)cf->mem_workers * cf->mem_dataflows);
	snprintf(label, sizeof(label), "memory, %s idle subs", cnt);
	if (rc != 0) {
		(*failures)++;
		add_row(label, "", NULL, "error", "%s", sl_strerror(rc));
	} else {
		for (int r = 0; r < runs; r++)
			v[r] = mr[r].heap_per_sub;
		double h = median(v, runs);
		if (mr[0].heap_known)
			add_row(label, "storage heap B/sub", "<= 1024", verdict(h <= 1024), "%.0f", h);
		else
			add_row(label, "storage heap B/sub", NULL, NULL, "n/a (no mallinfo2)");
		for (int r = 0; r < runs; r++)
			v[r] = mr[r].rss_per_sub;
		add_row(label, "storage RSS B/sub", NULL, NULL, "%.0f", median(v, runs));
		for (int r = 0; r < runs; r++)
			v[r] = mr[r].heap_left_per_sub;
		add_row(label, "heap left after unsubscribe B/sub", NULL, NULL, "%.0f",
		        median(v, runs));
	}
	free(mr);
}
