/*
 * latency.c - the latency benchmark: append-to-delivery at a paced rate over many
 * subscriptions, each row carrying its CLOCK_MONOTONIC append time; p50, p99, p99.9.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* ------------------------------------------------------------------------------------------ */
/* latency */

struct lat_result {
	double p50, p99, p999; /* microseconds */
	size_t samples;
	double rate;           /* updates/s actually appended */
};

static int run_latency(const struct config *cf, struct lat_result *lr)
{
	uint32_t subs = cf->lat_subs;
	uint64_t total = (uint64_t)cf->lat_rate * cf->lat_ms / 1000;
	uint32_t per_tick = cf->lat_rate / 1000;
	struct store s;
	sl_client *c = NULL;
	struct cons k;
	pthread_t th;
	uint64_t *wtime = calloc(subs, sizeof(*wtime));
	int rc;
	memset(lr, 0, sizeof(*lr));
	memset(&k, 0, sizeof(k));
	if (wtime == NULL)
		return SL_ENOMEM;
	if ((rc = store_open(subs, 0, 0, &s)) != 0) {
		free(wtime);
		return rc;
	}
	if ((rc = client_open(sl_storage_port(s.st), &c)) != 0)
		goto out;
	cons_init(&k, c, sl_source_id(s.src), 0, subs, 1, MODE_DRAIN, cf->timeout_ns);
	k.cap_samples = total + 1024;
	if ((k.samples = malloc(k.cap_samples * sizeof(*k.samples))) == NULL) {
		rc = SL_ENOMEM;
		goto out;
	}
	if ((rc = pthread_create(&th, NULL, cons_main, &k)) != 0) {
		rc = -rc;
		goto out;
	}
	if (wait_flag(&k.subscribed_all, &k, now_ns() + cf->timeout_ns) != 0) {
		fprintf(stderr, "latency: subscriptions did not complete: %s\n", k.err);
		rc = k.rc ? k.rc : SL_ETIMEDOUT;
		goto close_workers;
	}

	/* The paced producer: every millisecond, per_tick updates (one per worker, round-robin),
	 * each stamped just before its append and followed by its worker's advance. */
	uint8_t row[ROW_BYTES];
	fill_row(row, 0);
	sl_update u = {.row = {row, ROW_BYTES}, .diff = 1};
	uint64_t start = now_ns(), sent = 0;
	uint32_t next_w = 0;
	for (uint64_t tick = 0; sent < total && rc == 0; tick++) {
		struct timespec ts;
		uint64_t at = start + tick * 1000000ull;
		ts.tv_sec = (time_t)(at / 1000000000ull);
		ts.tv_nsec = (long)(at % 1000000000ull);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		for (uint32_t i = 0; i < per_tick && sent < total && rc == 0; i++, sent++) {
			uint32_t w = next_w;
			next_w = (next_w + 1) % subs;
			u.time = ++wtime[w];
			uint64_t stamp = now_ns();
			memcpy(row, &stamp, sizeof(stamp));
			if ((rc = sl_source_append(s.src, w, SL_OK, &u, 1)) == 0)
				rc = sl_source_advance(s.src, w, u.time + 1);
		}
		if (now_ns() - start > cf->timeout_ns)
			rc = SL_ETIMEDOUT;
	}
	lr->rate = (double)sent / ((double)(now_ns() - start) / 1e9);
	if (rc != 0)
		fprintf(stderr, "latency: producer: %s\n", sl_strerror(rc));
close_workers:
	for (uint32_t w = 0; w < subs; w++)
		sl_source_close_worker(s.src, w);
	pthread_join(th, NULL);
	if (rc == 0 && k.rc != 0) {
		fprintf(stderr, "latency: %s\n", k.err);
		rc = k.rc;
	}
	if (rc == 0 && k.nsamples != total) {
		fprintf(stderr, "latency: %zu samples, expected %" PRIu64 "\n", k.nsamples, total);
		rc = SL_EPROTO;
	}
	if (rc == 0) {
		qsort(k.samples, k.nsamples, sizeof(*k.samples), cmp_u64);
		size_t n = k.nsamples;
		lr->samples = n;
		lr->p50 = (double)k.samples[(n - 1) * 50 / 100] / 1e3;
		lr->p99 = (double)k.samples[(n - 1) * 99 / 100] / 1e3;
		lr->p999 = (double)k.samples[(n - 1) * 999 / 1000] / 1e3;
	}
out:
	sl_client_close(c);
	store_close(&s);
	free(k.samples);
	free(wtime);
	return rc;
}

void bench_latency(const struct config *cf, double *v, int *failures)
{
	int runs = cf->runs;
	char label[64], cnt[32];
	struct lat_result *lr = calloc((size_t)runs, sizeof(*lr));
	int rc = lr ? 0 : SL_ENOMEM;
	for (int r = 0; r < runs && rc == 0; r++)
		rc = run_latency(cf, &lr[r]);
	fmt_count(cnt, sizeof(cnt), cf->lat_subs);
	snprintf(label, sizeof(label), "latency, %s subs, %uk/s", cnt, cf->lat_rate / 1000);
	if (rc != 0) {
		(*failures)++;
		add_row(label, "", NULL, "error", "%s", sl_strerror(rc));
	} else {
		for (int r = 0; r < runs; r++)
			v[r] = lr[r].p50;
		add_row(label, "p50 (us)", NULL, NULL, "%.0f", median(v, runs));
		for (int r = 0; r < runs; r++)
			v[r] = lr[r].p99;
		double p99 = median(v, runs);
		add_row(label, "p99 (us)", "<= 1000", verdict(p99 <= 1000), "%.0f", p99);
		for (int r = 0; r < runs; r++)
			v[r] = lr[r].p999;
		add_row(label, "p99.9 (us)", NULL, NULL, "%.0f", median(v, runs));
		for (int r = 0; r < runs; r++)
			v[r] = lr[r].rate;
		add_row(label, "achieved append rate (/s)", NULL, NULL, "%.0f", median(v, runs));
	}
	free(lr);
}
