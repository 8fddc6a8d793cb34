/*
 * cluster.c - the cluster benchmark: aggregate updates/s to one client from 1, 2 and 3 storage
 * runtimes in this process, each holding its share of one source's workers.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>

#include "bench.h"

/* Aggregate throughput to one client from a cluster of `procs` storage runtimes (in this
 * process, each on its own port and network thread): one source of CLUSTER_WORKERS workers,
 * each process holding its share, the client subscribing every worker. */
#define CLUSTER_WORKERS 6
static int run_cluster(const struct config *cf, uint32_t procs, double *ups)
{
	uint64_t per_worker = cf->tput_bytes / ROW_BYTES / CLUSTER_WORKERS;
	struct store s[3];
	char addr[3][64];
	const char *addrs[3];
	sl_client *c = NULL;
	struct cons k;
	pthread_t th;
	uint32_t opened = 0;
	int rc = 0;
	if (per_worker == 0)
		per_worker = 1;
	for (; opened < procs && rc == 0; opened++)
		if ((rc = store_prepare(&s[opened])) == 0) {
			snprintf(addr[opened], sizeof(addr[opened]), "127.0.0.1:%d", sl_storage_port(s[opened].st));
			addrs[opened] = addr[opened];
		}
	for (uint32_t i = 0; i < procs && rc == 0; i++)
		if (procs > 1 && (rc = sl_storage_set_cluster(s[i].st, addrs, procs, i, 42)) != 0)
			break;
	for (uint32_t i = 0; i < procs && rc == 0; i++)
		rc = store_fill_start(&s[i], CLUSTER_WORKERS, per_worker, 1);
	if (rc != 0) {
		fprintf(stderr, "cluster: storage: %s\n", sl_strerror(rc));
		goto out;
	}
	if ((rc = client_open(sl_storage_port(s[0].st), &c)) != 0) {
		fprintf(stderr, "cluster: client: %s\n", sl_strerror(rc));
		goto out;
	}
	cons_init(&k, c, sl_source_id(s[0].src), 0, CLUSTER_WORKERS, 1, MODE_DRAIN, cf->timeout_ns);
	if ((rc = pthread_create(&th, NULL, cons_main, &k)) != 0) {
		rc = -rc;
		goto out;
	}
	pthread_join(th, NULL);
	if (k.rc != 0) {
		fprintf(stderr, "cluster: %s\n", k.err);
		rc = k.rc;
	} else if (k.updates != per_worker * CLUSTER_WORKERS) {
		fprintf(stderr, "cluster: got %" PRIu64 " updates, expected %" PRIu64 "\n", k.updates,
		        per_worker * CLUSTER_WORKERS);
		rc = SL_EPROTO;
	} else {
		*ups = (double)k.updates / ((double)(k.t_done - k.t_start) / 1e9);
	}
out:
	sl_client_close(c);
	for (uint32_t i = 0; i < opened; i++)
		if (s[i].st != NULL)
			store_close(&s[i]);
	return rc;
}

void bench_cluster(const struct config *cf, double *v, int *failures)
{
	int runs = cf->runs;
	char label[64];
	for (uint32_t procs = 1; procs <= 3; procs++) {
		int rc = 0;
		for (int r = 0; r < runs && rc == 0; r++)
			rc = run_cluster(cf, procs, &v[r]);
		snprintf(label, sizeof(label), "cluster, %u process%s", procs, procs == 1 ? "" : "es");
		if (rc != 0) {
			(*failures)++;
			add_row(label, "updates/s", NULL, "error", "%s", sl_strerror(rc));
			continue;
		}
		add_row(label, "updates/s (6 workers, one client)", NULL, NULL, "%.0f", median(v, runs));
	}
}
