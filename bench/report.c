/*
 * report.c - the result table: every row printed as it is added, and at the end (--write) the
 * markdown report of the same rows with what each test measured.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct row {
	char test[40];
	char metric[40];
	char value[40];
	char target[24];
	char verdict[12];
};

static struct row *rows;
static size_t nrows, caprows;

void add_row(const char *test, const char *metric, const char *target, const char *verdict,
             const char *fmt, ...)
{
	if (nrows == caprows) {
		size_t cap = caprows ? caprows * 2 : 32;
		struct row *t = realloc(rows, cap * sizeof(*t));
		if (t == NULL)
			return;
		rows = t;
		caprows = cap;
	}
	struct row *r = &rows[nrows++];
	memset(r, 0, sizeof(*r));
	snprintf(r->test, sizeof(r->test), "%s", test);
	snprintf(r->metric, sizeof(r->metric), "%s", metric);
	snprintf(r->target, sizeof(r->target), "%s", target ? target : "");
	snprintf(r->verdict, sizeof(r->verdict), "%s", verdict ? verdict : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->value, sizeof(r->value), fmt, ap);
	va_end(ap);
	printf("  %-30s %-30s %16s %-12s %s\n", r->test, r->metric, r->value, r->target, r->verdict);
	fflush(stdout);
}

const char *verdict(int ok)
{
	return ok ? "met" : "MISSED";
}

void fmt_count(char *buf, size_t cap, uint64_t n)
{
	if (n >= 1000000 && n % 1000000 == 0)
		snprintf(buf, cap, "%" PRIu64 "M", n / 1000000);
	else if (n >= 1000 && n % 1000 == 0)
		snprintf(buf, cap, "%" PRIu64 ",%03u", n / 1000, 0u);
	else
		snprintf(buf, cap, "%" PRIu64, n);
}

int write_report(const struct config *cf, const char *cmdline, const char *mach,
                 const char *date, double total_secs)
{
	FILE *f = fopen(cf->write, "w");
	if (f == NULL) {
		fprintf(stderr, "sluice_bench: %s: %s\n", cf->write, strerror(errno));
		return -1;
	}
	fprintf(f, "# sluice_bench results\n\n");
	fprintf(f, "Produced by `%s` (%.0f s), %s.\n\n", cmdline, total_secs, date);
	fprintf(f, "Machine: %s.\n\n", mach);
	fprintf(f, "Every value is the median of %d runs.", cf->runs);
	if (cf->window)
		fprintf(f, "  Compute credit window: %u bytes per subscription.", cf->window);
	fprintf(f, "\n\n");
	fprintf(f, "| test | metric | value | target | verdict |\n| --- | --- | ---: | --- | --- |\n");
	for (size_t i = 0; i < nrows; i++)
		fprintf(f, "| %s | %s | %s | %s | %s |\n", rows[i].test, rows[i].metric, rows[i].value,
		        rows[i].target, rows[i].verdict);
	fprintf(f,
	        "\n## What was measured\n\n"
	        "- **raw**: one TCP connection over 127.0.0.1, one writer thread doing %u KiB "
	        "`write()`s, one reader thread doing %u KiB `read()`s, moving as many bytes as a sluice "
	        "run moves row payload (%" PRIu64 " MiB).\n"
	        "- **sluice**: an in-process storage runtime (`sl_storage_open` on 127.0.0.1:0) and "
	        "compute runtime (`sl_client_open`, default credit window: 256 KiB, doubling up to 4 MiB "
	        "while the consumer keeps up), one source with one "
	        "worker per subscription, all subscriptions on one connection and one queue, one consumer "
	        "thread that takes every event and iterates every update.  %" PRIu64 " MiB of %u-byte "
	        "rows are appended before subscribing, in batches of up to %u updates at one time, and "
	        "every worker is closed; the clock runs from the first `sl_subscribe` to the last closed "
	        "frontier.  MB/s counts row payload only (the wire also carries a 12-byte update header "
	        "per row); \"x raw\" is payload bytes/s over the raw pump's bytes/s.  The raw pump is the "
	        "machine's limit only roughly: on this shared VM single runs vary by about 20%%, so a "
	        "median above 0.89x (where the headers would make sluice exceed raw) means the pump ran "
	        "slow that time.\n"
	        "- **cluster**: 1, 2 and 3 storage runtimes in this process (each on its own loopback "
	        "port and network thread, `sl_storage_set_cluster`), one source of 6 workers whose "
	        "rows (the same total as above) each process holds for the workers it hosts, and one "
	        "client given process 0's address that subscribes all 6 (it connects to every process "
	        "itself); aggregate updates/s from the first subscribe to the last closed frontier.\n"
	        "- **redis**: Debian's redis-server on a free loopback port (`--save '' --appendonly no "
	        "--client-output-buffer-limit 'pubsub 0 0 0'`), a hiredis publisher thread pipelining "
	        "`PUBLISH` in batches of 1000 (`redisAppendCommand`), round-robin over the channels, and "
	        "one subscriber connection subscribed to all channels counting deliveries; %" PRIu64
	        " messages per run, the clock runs from the first publish to the last delivery.  "
	        "\"sluice / redis\" is sluice updates/s at the same subscription count over Redis "
	        "delivered messages/s.\n"
	        "- **fairness**: %u subscriptions (one per worker, %" PRIu64 " MiB of rows appended "
	        "before, workers closed) on one connection through two queues on two threads: one "
	        "subscription alone, the others together.  In the stalled run the lone queue stops "
	        "consuming after its first Messages event; the ratio is the others' payload rate over "
	        "their rate in a run where nobody stops.  The storage runtime runs in a forked child "
	        "process here, so its memory is its own: \"heap\" is the child's malloc in-use bytes "
	        "(`mallinfo2` uordblks + hblkhd), RSS its VmRSS.  \"before\" is the idle storage with "
	        "its data, \"steady\" is when the others have moved a tenth of their data and the lone "
	        "one has stopped, \"after\" is when the others are done (the stalled subscription still "
	        "open).  Flat means heap growth from steady to after under 1 MiB.\n"
	        "- **latency**: %u subscriptions (one per worker) on one connection; a paced producer "
	        "appends %u updates/s for %u ms (every millisecond, one update to each of the next "
	        "%u workers round-robin, each followed by an advance of its worker), each row carrying "
	        "its CLOCK_MONOTONIC time taken just before `sl_source_append`; the consumer thread "
	        "subtracts it from the time it takes the event.  All samples are sorted.\n"
	        "- **memory**: %u workers x %u dataflows = %" PRIu64 " idle subscriptions (no data) on one "
	        "connection to a storage child process; heap and RSS of the storage process after every "
	        "subscription was confirmed, minus before subscribing (with the connection already "
	        "open), divided by the subscriptions.  \"left after unsubscribe\" is the same difference "
	        "after the queue was closed (which unsubscribes everything).\n",
	        RAW_CHUNK >> 10, RAW_CHUNK >> 10, cf->tput_bytes >> 20, cf->tput_bytes >> 20, ROW_BYTES,
	        PREFILL_BATCH, cf->redis_msgs, cf->fair_subs, cf->fair_bytes >> 20, cf->lat_subs,
	        cf->lat_rate, cf->lat_ms, cf->lat_rate / 1000, cf->mem_workers, cf->mem_dataflows,
	        (uint64_t)cf->mem_workers * cf->mem_dataflows);
	int rc = fclose(f) == 0 ? 0 : -1;
	if (rc != 0)
		fprintf(stderr, "sluice_bench: %s: write failed\n", cf->write);
	return rc;
}

void free_rows(void)
{
	free(rows);
	rows = NULL;
	nrows = caprows = 0;
}
