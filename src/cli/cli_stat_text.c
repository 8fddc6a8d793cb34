/*
 * cli_stat_text.c - `sluice stat`'s tables: totals, sources (per worker, or one summary row per
 * source with many workers), connections, and subscriptions with their lag, every line within
 * 80 columns.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_stat.h"

#define WORKERS_SHOWN 4 /* a source with more workers gets one summary row */

/* A time for display: "closed" for +Inf. */
static const char *stat_time_str(uint64_t t, char *buf, size_t len)
{
	if (t == UINT64_MAX)
		return "closed";
	snprintf(buf, len, "%" PRIu64, t);
	return buf;
}

/* Bytes for display, in at most 9 characters: 999 B, 12.3 KiB, 4.0 GiB. */
static const char *stat_bytes_str(uint64_t b, char *buf, size_t len)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
	if (b < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", b);
		return buf;
	}
	double v = (double)b / 1024.0;
	int u = 0;
	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

static void conn_name(const view *v, size_t p, const sample *s, char *buf, size_t len)
{
	if (v->n > 1)
		snprintf(buf, len, "%zu:%s", p, stat_label(s, "conn"));
	else
		snprintf(buf, len, "%s", stat_label(s, "conn"));
}

struct wrow {
	const char *source, *worker;
	size_t order; /* of the source's first appearance */
	uint64_t wnum, upper, since, log_bytes;
	int blocked; /* sluice_worker_append_blocked */
};

static int wrow_cmp(const void *pa, const void *pb)
{
	const struct wrow *a = pa, *b = pb;
	if (a->order != b->order)
		return a->order < b->order ? -1 : 1;
	return a->wnum < b->wnum ? -1 : a->wnum > b->wnum;
}

/* Prints one source's rows: each worker, or for many workers a summary (lowest upper and since,
 * summed log bytes) and the highest upper. */
static void print_source(const struct wrow *w, size_t n)
{
	char a[24], b[24], c[24], d[24];
	if (n <= WORKERS_SHOWN) {
		for (size_t i = 0; i < n; i++)
			printf("%-20.20s %-9.9s %14s %14s %12s\n", w[i].source, w[i].worker,
			       stat_time_str(w[i].upper, a, sizeof(a)), stat_time_str(w[i].since, b, sizeof(b)),
			       stat_bytes_str(w[i].log_bytes, c, sizeof(c)));
		return;
	}
	uint64_t lo = UINT64_MAX, hi = 0, slo = UINT64_MAX, bytes = 0;
	for (size_t i = 0; i < n; i++) {
		lo = w[i].upper < lo ? w[i].upper : lo;
		hi = w[i].upper > hi ? w[i].upper : hi;
		slo = w[i].since < slo ? w[i].since : slo;
		bytes += w[i].log_bytes;
	}
	snprintf(d, sizeof(d), "%zu: min", n);
	printf("%-20.20s %-9.9s %14s %14s %12s\n", w[0].source, d, stat_time_str(lo, a, sizeof(a)),
	       stat_time_str(slo, b, sizeof(b)), stat_bytes_str(bytes, c, sizeof(c)));
	printf("%-20.20s %-9.9s %14s\n", "", "   max", stat_time_str(hi, a, sizeof(a)));
}

/* The workers whose appends are blocked (a full disk, an I/O error), SOURCE/WORKER, at most
 * eight named, on lines of at most 80 columns. */
static void print_blocked(const struct wrow *rows, size_t n)
{
	size_t shown = 0, total = 0, col;

	for (size_t i = 0; i < n; i++)
		total += rows[i].blocked;
	if (total == 0)
		return;
	col = (size_t)printf("appends blocked (disk full or I/O error):");
	for (size_t i = 0; i < n && shown < 8; i++) {
		if (!rows[i].blocked)
			continue;
		char name[48];
		int len = snprintf(name, sizeof(name), " %.30s/%.10s", rows[i].source, rows[i].worker);
		if (col + (size_t)len > 78) {
			fputs("\n ", stdout);
			col = 1;
		}
		fputs(name, stdout);
		col += (size_t)len;
		shown++;
	}
	if (total > shown)
		printf(" and %zu more", total - shown);
	fputs("\n", stdout);
}

/* Every worker of every process, grouped by source (in the order sources first appear). */
static int print_sources(const view *v)
{
	size_t n = 0, cap = 0, nsrc = 0;
	struct wrow *rows = NULL;

	printf("%-20.20s %-9s %14s %14s %12s\n", "SOURCE", "WORKER", "UPPER", "SINCE", "LOG");
	for (size_t p = 0; p < v->n; p++) {
		const report *r = &v->r[p];
		size_t h_since = 0, h_lb = 0, h_bl = 0;
		for (size_t i = 0; i < r->n; i++) {
			const sample *s = &r->s[i];
			if (strcmp(s->name, "sluice_source_upper") != 0)
				continue;
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 16;
				struct wrow *q = realloc(rows, ncap * sizeof(*q));
				if (q == NULL) {
					free(rows);
					return -1;
				}
				rows = q;
				cap = ncap;
			}
			const char *src = stat_label(s, "source"), *w = stat_label(s, "worker");
			struct wrow *row = &rows[n];
			row->source = src;
			row->worker = w;
			row->wnum = strtoull(w, NULL, 10);
			row->order = nsrc;
			for (size_t j = 0; j < n; j++) {
				if (strcmp(rows[j].source, src) == 0) {
					row->order = rows[j].order;
					break;
				}
			}
			if (row->order == nsrc)
				nsrc++;
			row->upper = stat_value_u64(s);
			row->since = stat_value_u64(stat_find_h(r, &h_since, "sluice_source_since", "source", src, "worker", w));
			/* Two samples per worker (ok, err): the second search starts past the first. */
			row->log_bytes = stat_value_u64(stat_find_h(r, &h_lb, "sluice_log_bytes", "source", src, "worker", w));
			row->log_bytes += stat_value_u64(stat_find_h(r, &h_lb, "sluice_log_bytes", "source", src, "worker", w));
			row->blocked = stat_value_u64(stat_find_h(r, &h_bl, "sluice_worker_append_blocked",
			                                          "source", src, "worker", w)) != 0;
			n++;
		}
	}
	if (n > 0)
		qsort(rows, n, sizeof(*rows), wrow_cmp);
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && rows[j].order == rows[i].order; j++)
			;
		print_source(&rows[i], j - i);
	}
	print_blocked(rows, n);
	free(rows);
	return 0;
}

static void print_conns(const view *v)
{
	char a[24], b[24], id[32];
	printf("%-6s %-21s %6s %12s %12s\n", "CONN", "PEER", "SUBS", "IN", "OUT");
	for (size_t p = 0; p < v->n; p++) {
		const report *r = &v->r[p];
		size_t h_in = 0, h_out = 0;
		for (size_t i = 0; i < r->n; i++) {
			const sample *s = &r->s[i];
			if (strcmp(s->name, "sluice_connection_subscriptions") != 0)
				continue;
			const char *c = stat_label(s, "conn");
			conn_name(v, p, s, id, sizeof(id));
			printf("%-6.6s %-21.21s %6" PRIu64 " %12s %12s\n", id, stat_label(s, "peer"), stat_value_u64(s),
			       stat_bytes_str(stat_value_u64(stat_find_h(r, &h_in, "sluice_connection_bytes_in_total", "conn", c,
			                                  NULL, NULL)), a, sizeof(a)),
			       stat_bytes_str(stat_value_u64(stat_find_h(r, &h_out, "sluice_connection_bytes_out_total", "conn", c,
			                                  NULL, NULL)), b, sizeof(b)));
		}
	}
}

struct srow {
	const sample *lag, *sent, *credit;
	size_t proc;
	uint64_t lagv;
	size_t order;
};

/* Most lagging first; ties in the servers' order. */
static int srow_cmp(const void *pa, const void *pb)
{
	const struct srow *a = pa, *b = pb;
	if (a->lagv != b->lagv)
		return a->lagv > b->lagv ? -1 : 1;
	return a->order < b->order ? -1 : a->order > b->order;
}

static int print_subs(const view *v)
{
	char a[24], b[24], c[24], id[32];
	size_t n = 0, cap = 0;
	struct srow *rows = NULL;
	printf("%-6s %-6s %-20s %-6s %12s %10s %10s\n", "CONN", "HANDLE", "SOURCE", "WORKER", "SENT", "LAG",
	       "CREDIT");
	for (size_t p = 0; p < v->n; p++) {
		const report *r = &v->r[p];
		size_t h_sent = 0, h_cr = 0;
		for (size_t i = 0; i < r->n; i++) {
			const sample *s = &r->s[i];
			if (strcmp(s->name, "sluice_subscription_lag") != 0)
				continue;
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 64;
				struct srow *q = realloc(rows, ncap * sizeof(*q));
				if (q == NULL) {
					free(rows);
					return -1;
				}
				rows = q;
				cap = ncap;
			}
			const char *cid = stat_label(s, "conn"), *h = stat_label(s, "handle");
			rows[n] = (struct srow){
				.lag = s,
				.sent = stat_find_h(r, &h_sent, "sluice_subscription_sent_upper", "conn", cid, "handle", h),
				.credit = stat_find_h(r, &h_cr, "sluice_subscription_credit_bytes", "conn", cid, "handle", h),
				.proc = p,
				.lagv = stat_value_u64(s),
				.order = n,
			};
			n++;
		}
	}
	if (n > 0)
		qsort(rows, n, sizeof(*rows), srow_cmp);
	for (size_t i = 0; i < n; i++) {
		const sample *s = rows[i].lag;
		conn_name(v, rows[i].proc, s, id, sizeof(id));
		printf("%-6.6s %-6.6s %-20.20s %-6.6s %12s %10s %10s\n", id, stat_label(s, "handle"),
		       stat_label(s, "source"), stat_label(s, "worker"), stat_time_str(stat_value_u64(rows[i].sent), a, sizeof(a)),
		       rows[i].lagv == UINT64_MAX ? "closing" : stat_time_str(rows[i].lagv, b, sizeof(b)),
		       stat_bytes_str(stat_value_u64(rows[i].credit), c, sizeof(c)));
	}
	free(rows);
	return 0;
}

/* What each process runs (sluice_build_info): one line when they all agree, else one each. */
static void print_versions(const view *v)
{
	const sample *first = NULL;
	int same = 1;

	for (size_t p = 0; p < v->n; p++) {
		const sample *b = stat_find(&v->r[p], "sluice_build_info", NULL, NULL, NULL, NULL);
		if (v->texts[p] == NULL || b == NULL)
			continue;
		if (first == NULL)
			first = b;
		else if (strcmp(stat_label(b, "version"), stat_label(first, "version")) != 0 ||
		         strcmp(stat_label(b, "revision"), stat_label(first, "revision")) != 0)
			same = 0;
	}
	if (first == NULL)
		return;
	if (same) {
		printf("sluiced %.20s (git %.20s)%s\n", stat_label(first, "version"),
		       stat_label(first, "revision"), v->n > 1 ? " on every process" : "");
		return;
	}
	for (size_t p = 0; p < v->n; p++) {
		const sample *b = stat_find(&v->r[p], "sluice_build_info", NULL, NULL, NULL, NULL);
		if (v->texts[p] != NULL && b != NULL)
			printf("process %zu: sluiced %.20s (git %.20s)\n", p, stat_label(b, "version"),
			       stat_label(b, "revision"));
	}
}

/* Each process's role and replication, when it reports them (sluice_term, sluice_leader,
 * sluice_insync_copies, sluice_replica_*): one line per process that replicates or leads. */
static void print_replication(const view *v)
{
	for (size_t p = 0; p < v->n; p++) {
		const report *r = &v->r[p];
		const sample *term = stat_find(r, "sluice_term", NULL, NULL, NULL, NULL);
		const sample *lead = stat_find(r, "sluice_leader", NULL, NULL, NULL, NULL);
		const sample *have = stat_find(r, "sluice_insync_copies", NULL, NULL, NULL, NULL);
		const sample *need = stat_find(r, "sluice_min_insync", NULL, NULL, NULL, NULL);
		if (v->texts[p] == NULL || term == NULL || lead == NULL)
			continue;
		uint64_t h = stat_value_u64(have), n = stat_value_u64(need);
		if (n <= 1 && stat_find(r, "sluice_replica_insync", NULL, NULL, NULL, NULL) == NULL &&
		    stat_value_u64(lead))
			continue; /* no replication: nothing to say */
		if (v->n > 1)
			printf("process %zu: ", p);
		printf("%s at term %" PRIu64 ", %" PRIu64 " of %" PRIu64 " copies in sync",
		       stat_value_u64(lead) ? "leader" : "not leading (standby, or its lease ran out)",
		       stat_value_u64(term), h, n);
		for (size_t i = 0; i < r->n; i++) {
			const sample *m = &r->s[i];
			if (strcmp(m->name, "sluice_replica_insync") != 0)
				continue;
			uint64_t lag = 0;
			for (size_t j = 0; j < r->n; j++)
				if (strcmp(r->s[j].name, "sluice_replica_lag") == 0 &&
				    strcmp(stat_label(&r->s[j], "member"), stat_label(m, "member")) == 0 &&
				    stat_value_u64(&r->s[j]) > lag)
					lag = stat_value_u64(&r->s[j]);
			printf("; standby %.60s %s, lag %" PRIu64, stat_label(m, "member"),
			       stat_value_u64(m) ? "in sync" : "out of sync", lag);
		}
		printf("\n");
	}
}

int stat_print_view(const char *server, const view *v)
{
	char a[24], b[24];
	if (v->n > 1)
		printf("cluster of %zu via %-.30s: %" PRIu64 " connections (%" PRIu64 " accepted), %" PRIu64
		       " subscriptions\n", v->n, server, stat_total(v, "sluice_connections"),
		       stat_total(v, "sluice_connections_accepted_total"), stat_total(v, "sluice_subscriptions"));
	else
		printf("%-.40s: %" PRIu64 " connections (%" PRIu64 " accepted), %" PRIu64 " subscriptions\n",
		       server, stat_total(v, "sluice_connections"), stat_total(v, "sluice_connections_accepted_total"),
		       stat_total(v, "sluice_subscriptions"));
	printf("in %s in %" PRIu64 " frames, out %s in %" PRIu64 " frames, %" PRIu64 " errors\n",
	       stat_bytes_str(stat_total(v, "sluice_bytes_in_total"), a, sizeof(a)), stat_total(v, "sluice_frames_in_total"),
	       stat_bytes_str(stat_total(v, "sluice_bytes_out_total"), b, sizeof(b)), stat_total(v, "sluice_frames_out_total"),
	       stat_total(v, "sluice_errors_total"));
	double fs_n = stat_total_f(v, "sluice_fsync_seconds_count");
	double fs_sum = stat_total_f(v, "sluice_fsync_seconds_sum");
	if (fs_n > 0)
		printf("log syncs: %.0f, %.3f ms on average\n", fs_n, fs_sum * 1000.0 / fs_n);
	print_versions(v);
	print_replication(v);
	for (size_t p = 0; p < v->n; p++)
		if (v->texts[p] == NULL)
			printf("process %zu at %-.24s missing: %-.30s\n", p, v->addrs ? v->addrs[p] : "?",
			       v->errs[p]);
	printf("\n");
	if (print_sources(v) != 0)
		return -1;
	printf("\n");
	print_conns(v);
	printf("\n");
	return print_subs(v);
}
