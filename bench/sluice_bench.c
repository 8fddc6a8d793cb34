/*
 * sluice_bench.c - the benchmark's entry: parses the command line, prints the header, runs the
 * benchmarks in order and writes the report.
 *
 * "Multiplexing at speed": sluice measured against the machine's limit, against Redis pub/sub,
 * and against its own targets, in one run on one machine.
 *
 *   raw       a plain TCP pump over loopback (one writer thread, one reader thread, 256 KiB
 *             writes) moving as many bytes as the sluice run moves row payload: the ceiling.
 *   sluice    updates/s and MB/s of 100-byte rows from an in-process storage runtime to a compute
 *             runtime: one source with S workers, one subscription per worker, all on one
 *             connection and one queue, one consumer thread that takes every event and iterates
 *             every update.  The data is appended before subscribing, in batches of up to 4096
 *             updates at one time (so Messages events fill 64 KiB log blocks), and every worker is
 *             closed, so a run ends when every subscription's frontier is closed.
 *   redis     redis-server on a free loopback port, a hiredis publisher pipelining PUBLISH of the
 *             same 100-byte payloads round-robin over C channels, one subscriber connection
 *             subscribed to all of them counting deliveries.
 *   fairness  100 subscriptions through two queues (1 + 99); the one stops consuming after its
 *             first Messages event.  The 99's payload rate against a run where none stops, and
 *             the storage's memory while that happens.
 *   latency   append-to-delivery at a paced 100,000 updates/s over 1,000 subscriptions: each row
 *             carries its CLOCK_MONOTONIC append time; the consumer subtracts it from now.
 *   memory    storage memory per idle subscription, 100,000 subscriptions on one connection.
 *
 * The fairness and memory tests run the storage runtime in a forked child process, so what they
 * measure (the child's malloc in-use bytes and VmRSS) is the storage's own memory and nothing of
 * the compute runtime's.  Every wait is bounded in time; everything is freed at the end (the
 * --quick configuration runs under ASan in CI).
 *
 * Files: bench.h (shared declarations), harness.c (defaults, statistics, processes, machine),
 * report.c (the table and the markdown report), store.c (storage and client setup), consumer.c
 * (the consumer thread), child.c (the storage child process), and one file per test: raw.c,
 * throughput.c (sluice), cluster.c, redis.c, fairness.c, latency.c, memory.c.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static int want(const struct config *cf, const char *test)
{
	return cf->only == NULL || strcmp(cf->only, test) == 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: sluice_bench [--quick] [--runs N] [--write FILE] [--skip-redis]\n"
	           "  --quick       a tiny configuration that finishes in seconds (CI)\n"
	           "  --runs N      runs per measurement, the median is reported (default 3)\n"
	           "  --write FILE  also write a markdown report to FILE\n"
	           "  --skip-redis  leave out the Redis pub/sub comparison\n"
	           "  --window B    initial compute credit window per subscription in bytes\n"
	           "                (default: the runtime's own, 256 KiB, growing to 4 MiB)\n"
	           "  --only TEST   run one test: raw, sluice, cluster, redis, fairness, latency, memory\n"
	           "  --subs N      sluice and redis with N subscriptions/channels only\n");
}

int main(int argc, char **argv)
{
	struct config cf;
	int quick = 0, skip_redis = 0, runs = 3, failures = 0;
	const char *write = NULL, *only = NULL;
	uint32_t window = 0, subs = 0;
	char cmdline[1024] = "", mach[512], date[64];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
		} else if (strcmp(argv[i], "--skip-redis") == 0) {
			skip_redis = 1;
		} else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
			char *end;
			long v = strtol(argv[++i], &end, 10);
			if (*end != '\0' || v < 1 || v > 100) {
				fprintf(stderr, "sluice_bench: --runs wants 1..100\n");
				return 2;
			}
			runs = (int)v;
		} else if (strcmp(argv[i], "--window") == 0 && i + 1 < argc) {
			char *end;
			unsigned long v = strtoul(argv[++i], &end, 10);
			if (*end != '\0' || v < 1 || v > (1ul << 30)) {
				fprintf(stderr, "sluice_bench: --window wants bytes\n");
				return 2;
			}
			window = (uint32_t)v;
		} else if (strcmp(argv[i], "--subs") == 0 && i + 1 < argc) {
			char *end;
			unsigned long v = strtoul(argv[++i], &end, 10);
			if (*end != '\0' || v < 1 || v > 1000000) {
				fprintf(stderr, "sluice_bench: --subs wants 1..1000000\n");
				return 2;
			}
			subs = (uint32_t)v;
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			only = argv[++i];
		} else if (strcmp(argv[i], "--write") == 0 && i + 1 < argc) {
			write = argv[++i];
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	config_init(&cf, quick);
	cf.runs = runs;
	cf.skip_redis = skip_redis;
	cf.write = write;
	cf.window = client_window = window;
	cf.only = only;
	if (subs) {
		cf.subs[0] = subs;
		cf.nsubs = 1;
	}
	for (int i = 0; i < argc; i++) {
		size_t len = strlen(cmdline);
		snprintf(cmdline + len, sizeof(cmdline) - len, "%s%s", i ? " " : "", argv[i]);
	}
	signal(SIGPIPE, SIG_IGN);
	machine(mach, sizeof(mach));
	time_t now = time(NULL);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	printf("sluice_bench: %s\n%s\n%s%s, median of %d runs\n\n", cmdline, mach,
	       quick ? "quick configuration" : "full configuration", "", runs);
	printf("  %-30s %-30s %16s %-12s %s\n", "test", "metric", "value", "target", "verdict");
	uint64_t t_begin = now_ns();
	double *v = calloc((size_t)runs, sizeof(double)), *v2 = calloc((size_t)runs, sizeof(double));
	if (v == NULL || v2 == NULL)
		return 1;

	/* raw */
	double raw = 0;
	if (want(&cf, "raw") || want(&cf, "sluice"))
		raw = bench_raw(&cf, v, &failures);

	/* sluice */
	double sluice_ups[3] = {0, 0, 0};
	if (want(&cf, "sluice"))
		bench_sluice(&cf, raw, v, v2, sluice_ups, &failures);

	/* a cluster: 1, 2 and 3 storage processes feeding one client */
	if (want(&cf, "cluster"))
		bench_cluster(&cf, v, &failures);

	/* redis */
	if (want(&cf, "redis"))
		bench_redis(&cf, sluice_ups, v, &failures);

	if (want(&cf, "fairness"))
		bench_fairness(&cf, v, &failures);
	if (want(&cf, "latency"))
		bench_latency(&cf, v, &failures);
	if (want(&cf, "memory"))
		bench_memory(&cf, v, &failures);

	double total = (double)(now_ns() - t_begin) / 1e9;
	printf("\ntotal %.1f s%s\n", total, failures ? ", with errors" : "");
	if (write && write_report(&cf, cmdline, mach, date, total) != 0)
		failures++;
	free(v);
	free(v2);
	free_rows();
	return failures ? 1 : 0;
}
