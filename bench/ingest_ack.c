/*
 * ingest_ack.c - sluice_ingest_ack: one producer's synchronous ingest batches against a running
 * storage process, timed: rows/s and the acknowledgement latency (p50, p99) of each batch.
 * bench/replication.sh runs it against a primary with --min-insync 1 and 2 and through a
 * failover under etcd (--until-ack: the time from start to the first acknowledged batch).
 *
 *   sluice_ingest_ack SERVER SOURCE BATCHES ROWS      batches of ROWS 100-byte rows
 *   sluice_ingest_ack --until-ack SERVER SOURCE MS    retries one-row batches for at most MS ms;
 *                                                     prints the ms until the first is acked
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/compute.h"

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int find_source(sl_client *c, const char *name, uint64_t *id)
{
	sl_source_info *infos;
	size_t n;
	int rc = sl_client_list_sources(c, 5000, &infos, &n);
	if (rc != 0)
		return rc;
	rc = SL_ENOSOURCE;
	for (size_t i = 0; i < n; i++)
		if (strcmp(infos[i].name, name) == 0) {
			*id = infos[i].id;
			rc = 0;
		}
	sl_source_info_free(infos, n);
	return rc;
}

static sl_client *open_client(const char *server)
{
	sl_client_config cfg;
	sl_client *c;
	sl_client_config_init(&cfg);
	cfg.server = server;
	cfg.retry_for_ms = 30000;
	cfg.connect_timeout_ms = 1000;
	return sl_client_open(&cfg, &c) == 0 ? c : NULL;
}

/* --until-ack: one-row batches until one is acknowledged. */
static int until_ack(const char *server, const char *source, uint64_t limit_ms)
{
	uint64_t t0 = now_us(), t;
	uint8_t row[16] = "failover-probe";
	for (uint64_t i = 0; (now_us() - t0) / 1000 < limit_ms; i++) {
		sl_client *c = open_client(server);
		uint64_t id;
		if (c != NULL && find_source(c, source, &id) == 0) {
			sl_update up = {.row = {row, sizeof(row)}, .diff = 1};
			if (sl_client_append(c, id, &up, 1, 2000, &t) == 0) {
				printf("%.0f\n", (double)(now_us() - t0) / 1000.0);
				sl_client_close(c);
				return 0;
			}
		}
		sl_client_close(c);
		struct timespec ts = {0, 20 * 1000000L};
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "sluice_ingest_ack: no batch acknowledged within %" PRIu64 " ms\n", limit_ms);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "--until-ack") == 0)
		return until_ack(argv[2], argv[3], strtoull(argv[4], NULL, 10));
	if (argc != 5) {
		fprintf(stderr, "usage: sluice_ingest_ack SERVER SOURCE BATCHES ROWS\n"
		                "       sluice_ingest_ack --until-ack SERVER SOURCE MS\n");
		return 2;
	}
	size_t batches = strtoull(argv[3], NULL, 10), rows = strtoull(argv[4], NULL, 10);
	sl_client *c = open_client(argv[1]);
	uint64_t id, t;
	if (c == NULL || find_source(c, argv[2], &id) != 0) {
		fprintf(stderr, "sluice_ingest_ack: cannot reach source %s at %s\n", argv[2], argv[1]);
		return 1;
	}
	uint8_t *data = malloc(rows * 100);
	sl_update *ups = malloc(rows * sizeof(*ups));
	uint64_t *lat = malloc(batches * sizeof(*lat));
	if (data == NULL || ups == NULL || lat == NULL)
		return 1;
	uint64_t start = now_us();
	for (size_t b = 0; b < batches; b++) {
		for (size_t i = 0; i < rows; i++) {
			snprintf((char *)data + i * 100, 100, "%zu-%zu", b, i);
			memset(data + i * 100 + strlen((char *)data + i * 100), 'x',
			       100 - strlen((char *)data + i * 100));
			ups[i] = (sl_update){.row = {data + i * 100, 100}, .diff = 1};
		}
		uint64_t t0 = now_us();
		int rc = sl_client_append(c, id, ups, rows, 30000, &t);
		if (rc != 0) {
			fprintf(stderr, "sluice_ingest_ack: batch %zu: %s\n", b, sl_strerror(rc));
			return 1;
		}
		lat[b] = now_us() - t0;
	}
	double secs = (double)(now_us() - start) / 1e6;
	qsort(lat, batches, sizeof(*lat), cmp);
	printf("rows_per_s %.0f p50_ms %.2f p99_ms %.2f\n", (double)(batches * rows) / secs,
	       (double)lat[batches / 2] / 1000.0, (double)lat[batches * 99 / 100] / 1000.0);
	sl_client_close(c);
	free(data);
	free(ups);
	free(lat);
	return 0;
}
