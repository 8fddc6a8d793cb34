/*
 * throughput.c - the sluice benchmark: updates/s and MB/s of 100-byte rows from an in-process
 * storage runtime to one consumer, at each subscription count, and their ratio to the raw pump.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>

#include "bench.h"

/* ------------------------------------------------------------------------------------------ */
/* sluice throughput */

/* One run with `subs` subscriptions (one per worker).  *ups in updates/s, *bps in payload B/s. */
static int run_sluice(const struct config *cf, uint32_t subs, double *ups, double *bps)
{
	uint64_t per_worker = cf->tput_bytes / ROW_BYTES / subs;
	struct store s;
	sl_client *c = NULL;
	struct cons k;
	pthread_t th;
	int rc;
	if (per_worker == 0)
		per_worker = 1;
	if ((rc = store_open(subs, per_worker, 1, &s)) != 0) {
		fprintf(stderr, "sluice: storage: %s\n", sl_strerror(rc));
		return rc;
	}
	if ((rc = client_open(sl_storage_port(s.st), &c)) != 0) {
		fprintf(stderr, "sluice: client: %s\n", sl_strerror(rc));
		goto out;
	}
	cons_init(&k, c, sl_source_id(s.src), 0, subs, 1, MODE_DRAIN, cf->timeout_ns);
	if ((rc = pthread_create(&th, NULL, cons_main, &k)) != 0) {
		rc = -rc;
		goto out;
	}
	pthread_join(th, NULL);
	if (k.rc != 0) {
		fprintf(stderr, "sluice: %s\n", k.err);
		rc = k.rc;
	} else if (k.updates != per_worker * subs) {
		fprintf(stderr, "sluice: got %" PRIu64 " updates, expected %" PRIu64 "\n", k.updates,
		        per_worker * subs);
		rc = SL_EPROTO;
	} else {
		double secs = (double)(k.t_done - k.t_start) / 1e9;
		if (getenv("SLUICE_BENCH_DEBUG"))
			fprintf(stderr, "sluice %u subs: %.3f s, subscribed after %.3f s\n", subs, secs,
			        (double)(k.t_subscribed - k.t_start) / 1e9);
		*ups = (double)k.updates / secs;
		*bps = (double)atomic_load(&k.payload) / secs;
	}
out:
	sl_client_close(c);
	store_close(&s);
	return rc;
}

void bench_sluice(const struct config *cf, double raw, double *v, double *v2, double *sluice_ups,
                  int *failures)
{
	int runs = cf->runs;
	char label[64], cnt[32];
	for (int i = 0; i < cf->nsubs; i++) {
		int rc = 0;
		uint32_t n = cf->subs[i];
		for (int r = 0; r < runs && rc == 0; r++)
			rc = run_sluice(cf, n, &v[r], &v2[r]);
		fmt_count(cnt, sizeof(cnt), n);
		snprintf(label, sizeof(label), "sluice, %s sub%s", cnt, n == 1 ? "" : "s");
		if (rc != 0) {
			(*failures)++;
			add_row(label, "updates/s", NULL, "error", "%s", sl_strerror(rc));
			continue;
		}
		double ups = median(v, runs), bps = median(v2, runs);
		sluice_ups[i] = ups;
		add_row(label, "updates/s", NULL, NULL, "%.0f", ups);
		add_row(label, "MB/s of row payload", NULL, NULL, "%.0f", bps / 1e6);
		double want = n == 1 ? 0.7 : n >= 10000 ? 0.6 : 0;
		char target[24] = "";
		if (want > 0)
			snprintf(target, sizeof(target), ">= %.1fx", want);
		if (raw > 0)
			add_row(label, "x raw", target, want > 0 ? verdict(bps / 1e9 / raw >= want) : NULL,
			        "%.2fx", bps / 1e9 / raw);
	}
}
