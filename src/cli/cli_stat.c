/*
 * cli_stat.c - `sluice stat [--server HOST:PORT] [--once] [--interval S]`: the operator's view
 * of a storage process (or of the whole cluster it belongs to), fitting an 80-column terminal.
 *
 * Each refresh is one short conversation on a fresh connection: Hello, ClusterMap and
 * StatsRequest, answered by Hello, Cluster and the Stats frame (the server's report in the
 * Prometheus text format, the same text its GET /metrics serves) or an Error, within a
 * deadline; then Hello and StatsRequest to every other process the map names.  The reports are
 * parsed into samples and printed as tables: totals, sources (per worker, or one summary row
 * per source with many workers), connections, and subscriptions with their lag.  Exit status:
 * 0; 1 when the server cannot be reached or answers with an error (or, with --once, when a
 * process of its cluster does not answer); 2 for bad arguments.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "net/sock.h"
#include "proto/proto.h"

#define STAT_TIMEOUT_MS 10000
#define STAT_MAX_FRAME (SLI_FRAME_MAX_DEFAULT + 1024u)
#define MAX_LABELS 8
#define WORKERS_SHOWN 4 /* a source with more workers gets one summary row */

static const char usage_stat[] =
	"usage: sluice stat [--server HOST:PORT] [--once] [--interval S]\n"
	"                   [--tls-ca FILE [--tls-cert FILE --tls-key FILE]] [--auth-token-file FILE]\n"
	"\n"
	"Shows what a storage process (and every other process of its cluster) is\n"
	"doing, refreshed every S seconds until interrupted: connections, bytes and\n"
	"frames in and out, every source's upper and since (per worker, or summarized\n"
	"for sources of more than 4 workers: lowest and highest), every connection,\n"
	"and every subscription's lag (the worker's upper minus the frontier the\n"
	"subscription was sent), most lagging first.\n"
	"\n"
	"  --server HOST:PORT   a storage process (default 127.0.0.1:6876)\n"
	"  --once               print once and exit (for scripts)\n"
	"  --interval S         seconds between refreshes (default 1; fractions allowed)\n"
	CLI_SECURITY_HELP;

/* ---- the conversation ---- */

/* The processes of the cluster the server belongs to (one, outside a cluster). */
struct cmap {
	char **addrs; /* owned */
	uint32_t n, self;
};

static void cmap_fini(struct cmap *m)
{
	for (uint32_t i = 0; m->addrs != NULL && i < m->n; i++)
		free(m->addrs[i]);
	free(m->addrs);
	memset(m, 0, sizeof(*m));
}

static int cmap_set(struct cmap *m, const sli_cluster *c)
{
	sl_bytes rest = c->addrs, a;
	if ((m->addrs = calloc(c->count, sizeof(*m->addrs))) == NULL)
		return SL_ENOMEM;
	m->n = c->count;
	m->self = c->process;
	for (uint32_t i = 0; i < c->count; i++) {
		if (sli_strs_next(&rest, &a) != 1 || (m->addrs[i] = strndup((const char *)a.ptr, a.len)) == NULL) {
			cmap_fini(m);
			return SL_ENOMEM;
		}
	}
	return 0;
}

/* Fetches the report text into *text (malloc'ed, NUL-terminated; the caller frees it) and, when
 * map is not NULL, the cluster map too (asked in the same conversation).  On failure, a
 * one-line reason in err. */
static int fetch_stats(const char *server, char **text, struct cmap *map, char *err, size_t errlen)
{
	size_t cap = STAT_MAX_FRAME, len = 0;
	uint8_t *buf = NULL;
	sli_buf out;
	cli_conn k;
	int rc;

	if ((rc = cli_conn_open(&k, server, STAT_TIMEOUT_MS, err, errlen)) != 0)
		return rc;
	sli_buf_init(&out);
	sli_frame hello, req = {.type = SLI_STATS_REQUEST}, cm = {.type = SLI_CLUSTER_MAP};
	cli_conn_hello(&hello, "sluice stat");
	if (sli_frame_encode(&out, &hello) != 0 || (map != NULL && sli_frame_encode(&out, &cm) != 0) ||
	    sli_frame_encode(&out, &req) != 0 || (buf = malloc(cap)) == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = SL_ENOMEM;
		goto out;
	}
	if ((rc = cli_conn_send(&k, &out)) != 0) {
		snprintf(err, errlen, "cannot send to %s: %s", server, sl_strerror(rc));
		goto out;
	}
	for (;;) {
		sli_frame f;
		ssize_t r = cli_conn_next(&k, buf, cap, &len, &f, 0);
		if (r < 0) {
			rc = (int)r;
			if (rc == SL_EPROTO || rc == SL_ETOOBIG)
				snprintf(err, errlen, "bad answer from %s: %s", server, sl_strerror(rc));
			else
				snprintf(err, errlen, "no stats from %s: %s (is it a sluice storage server?)",
				         server, sl_strerror(rc));
			goto out;
		}
		if (f.type == SLI_STATS) {
			if ((*text = malloc(f.u.stats.text.len + 1)) == NULL) {
				rc = SL_ENOMEM;
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			memcpy(*text, f.u.stats.text.ptr, f.u.stats.text.len);
			(*text)[f.u.stats.text.len] = '\0';
			goto out;
		}
		if (f.type == SLI_CLUSTER && map != NULL && map->addrs == NULL &&
		    (rc = cmap_set(map, &f.u.cluster)) != 0) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		if (f.type == SLI_ERROR) {
			rc = f.u.error.code;
			snprintf(err, errlen, "%s refused: %.*s", server, (int)f.u.error.message.len,
			         (const char *)f.u.error.message.ptr);
			goto out;
		}
		/* the Cluster comes before the Stats */
		memmove(buf, buf + r, len - (size_t)r);
		len -= (size_t)r;
	}
out:
	if (rc != 0 && map != NULL)
		cmap_fini(map);
	sli_buf_fini(&out);
	free(buf);
	cli_conn_close(&k);
	return rc;
}

/* ---- the report, parsed ---- */

typedef struct sample {
	const char *name;
	const char *key[MAX_LABELS], *val[MAX_LABELS];
	int nlabels;
	const char *value; /* as written: a number, or +Inf */
} sample;

typedef struct report {
	sample *s;
	size_t n, cap;
} report;

/* Parses a label value in place (undoing \\, \" and \n); returns past the closing quote. */
static char *parse_label_value(char *p, const char **out)
{
	char *w = p;
	*out = p;
	while (*p != '\0' && *p != '"') {
		if (*p == '\\' && p[1] != '\0') {
			p++;
			*w++ = *p == 'n' ? '\n' : *p;
			p++;
		} else {
			*w++ = *p++;
		}
	}
	if (*p != '"')
		return NULL;
	*w = '\0'; /* w <= p: safe even when nothing was unescaped */
	return p + 1;
}

/* Parses the Prometheus text in place (text must outlive r).  0, or -1 for a malformed line. */
static int parse_report(char *text, report *r)
{
	char *line = text, *next;
	for (; line != NULL && *line != '\0'; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (*line == '#' || *line == '\0')
			continue;
		if (r->n == r->cap) {
			size_t cap = r->cap ? 2 * r->cap : 256;
			sample *s = realloc(r->s, cap * sizeof(*s));
			if (s == NULL)
				return -1;
			r->s = s;
			r->cap = cap;
		}
		sample *s = &r->s[r->n];
		memset(s, 0, sizeof(*s));
		s->name = line;
		char *p = line + strcspn(line, "{ ");
		if (*p == '{') {
			*p++ = '\0';
			while (*p != '}') {
				char *eq = strchr(p, '=');
				if (eq == NULL || eq[1] != '"' || s->nlabels == MAX_LABELS)
					return -1;
				*eq = '\0';
				s->key[s->nlabels] = p;
				if ((p = parse_label_value(eq + 2, &s->val[s->nlabels])) == NULL)
					return -1;
				s->nlabels++;
				if (*p == ',')
					p++;
				else if (*p != '}')
					return -1;
			}
			p++;
		}
		if (*p != ' ')
			return -1;
		*p++ = '\0';
		s->value = p;
		p[strcspn(p, " ")] = '\0'; /* a timestamp after the value is ignored */
		r->n++;
	}
	return 0;
}

static const char *label(const sample *s, const char *key)
{
	for (int i = 0; i < s->nlabels; i++)
		if (strcmp(s->key[i], key) == 0)
			return s->val[i];
	return "";
}

/* The first sample named `name` whose labels k1 and k2 (NULL: any) have the values given.  The
 * search starts at *hint and wraps; *hint is left just past the match.  The server writes the
 * samples of every metric in the same order (sources, workers, connections, subscriptions), so
 * looking up the rows of one table in order through one hint per metric costs O(1) each. */
static const sample *find_h(const report *r, size_t *hint, const char *name, const char *k1,
                            const char *v1, const char *k2, const char *v2)
{
	size_t start = *hint < r->n ? *hint : 0;
	for (size_t n = 0; n < r->n; n++) {
		size_t i = (start + n) % r->n;
		const sample *s = &r->s[i];
		if (strcmp(s->name, name) != 0)
			continue;
		if (k1 != NULL && strcmp(label(s, k1), v1) != 0)
			continue;
		if (k2 != NULL && strcmp(label(s, k2), v2) != 0)
			continue;
		*hint = i + 1;
		return s;
	}
	return NULL;
}

static const sample *find(const report *r, const char *name, const char *k1, const char *v1,
                          const char *k2, const char *v2)
{
	size_t hint = 0;
	return find_h(r, &hint, name, k1, v1, k2, v2);
}

static uint64_t value_u64(const sample *s)
{
	if (s == NULL)
		return 0;
	if (strcmp(s->value, "+Inf") == 0)
		return UINT64_MAX;
	return strtoull(s->value, NULL, 10);
}

static double value_f(const sample *s)
{
	return s == NULL ? 0.0 : strtod(s->value, NULL);
}

/* A time for display: "closed" for +Inf. */
static const char *time_str(uint64_t t, char *buf, size_t len)
{
	if (t == UINT64_MAX)
		return "closed";
	snprintf(buf, len, "%" PRIu64, t);
	return buf;
}

/* Bytes for display, in at most 9 characters: 999 B, 12.3 KiB, 4.0 GiB. */
static const char *bytes_str(uint64_t b, char *buf, size_t len)
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

/* ---- printing (every line fits 80 columns) ---- */

/* The reports of every process (one outside a cluster); texts[i] NULL when process i did not
 * answer (errs[i] says why).  With more than one process, connections are named P:ID. */
typedef struct view {
	size_t n;
	report *r;
	char **texts;
	char (*errs)[256];
	char **addrs;
} view;

static void conn_name(const view *v, size_t p, const sample *s, char *buf, size_t len)
{
	if (v->n > 1)
		snprintf(buf, len, "%zu:%s", p, label(s, "conn"));
	else
		snprintf(buf, len, "%s", label(s, "conn"));
}

struct wrow {
	const char *source, *worker;
	size_t order; /* of the source's first appearance */
	uint64_t wnum, upper, since, log_bytes;
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
			       time_str(w[i].upper, a, sizeof(a)), time_str(w[i].since, b, sizeof(b)),
			       bytes_str(w[i].log_bytes, c, sizeof(c)));
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
	printf("%-20.20s %-9.9s %14s %14s %12s\n", w[0].source, d, time_str(lo, a, sizeof(a)),
	       time_str(slo, b, sizeof(b)), bytes_str(bytes, c, sizeof(c)));
	printf("%-20.20s %-9.9s %14s\n", "", "   max", time_str(hi, a, sizeof(a)));
}

/* Every worker of every process, grouped by source (in the order sources first appear). */
static int print_sources(const view *v)
{
	size_t n = 0, cap = 0, nsrc = 0;
	struct wrow *rows = NULL;

	printf("%-20.20s %-9s %14s %14s %12s\n", "SOURCE", "WORKER", "UPPER", "SINCE", "LOG");
	for (size_t p = 0; p < v->n; p++) {
		const report *r = &v->r[p];
		size_t h_since = 0, h_lb = 0;
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
			const char *src = label(s, "source"), *w = label(s, "worker");
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
			row->upper = value_u64(s);
			row->since = value_u64(find_h(r, &h_since, "sluice_source_since", "source", src, "worker", w));
			/* Two samples per worker (ok, err): the second search starts past the first. */
			row->log_bytes = value_u64(find_h(r, &h_lb, "sluice_log_bytes", "source", src, "worker", w));
			row->log_bytes += value_u64(find_h(r, &h_lb, "sluice_log_bytes", "source", src, "worker", w));
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
			const char *c = label(s, "conn");
			conn_name(v, p, s, id, sizeof(id));
			printf("%-6.6s %-21.21s %6" PRIu64 " %12s %12s\n", id, label(s, "peer"), value_u64(s),
			       bytes_str(value_u64(find_h(r, &h_in, "sluice_connection_bytes_in_total", "conn", c,
			                                  NULL, NULL)), a, sizeof(a)),
			       bytes_str(value_u64(find_h(r, &h_out, "sluice_connection_bytes_out_total", "conn", c,
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
			const char *cid = label(s, "conn"), *h = label(s, "handle");
			rows[n] = (struct srow){
				.lag = s,
				.sent = find_h(r, &h_sent, "sluice_subscription_sent_upper", "conn", cid, "handle", h),
				.credit = find_h(r, &h_cr, "sluice_subscription_credit_bytes", "conn", cid, "handle", h),
				.proc = p,
				.lagv = value_u64(s),
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
		printf("%-6.6s %-6.6s %-20.20s %-6.6s %12s %10s %10s\n", id, label(s, "handle"),
		       label(s, "source"), label(s, "worker"), time_str(value_u64(rows[i].sent), a, sizeof(a)),
		       rows[i].lagv == UINT64_MAX ? "closing" : time_str(rows[i].lagv, b, sizeof(b)),
		       bytes_str(value_u64(rows[i].credit), c, sizeof(c)));
	}
	free(rows);
	return 0;
}

/* The sum of a metric over every process (all its samples: every label set). */
static uint64_t total(const view *v, const char *name)
{
	uint64_t t = 0;
	for (size_t p = 0; p < v->n; p++)
		for (size_t i = 0; i < v->r[p].n; i++)
			if (strcmp(v->r[p].s[i].name, name) == 0)
				t += value_u64(&v->r[p].s[i]);
	return t;
}

static double total_f(const view *v, const char *name)
{
	double t = 0;
	for (size_t p = 0; p < v->n; p++)
		t += value_f(find(&v->r[p], name, NULL, NULL, NULL, NULL));
	return t;
}

static int print_view(const char *server, const view *v)
{
	char a[24], b[24];
	if (v->n > 1)
		printf("cluster of %zu via %-.30s: %" PRIu64 " connections (%" PRIu64 " accepted), %" PRIu64
		       " subscriptions\n", v->n, server, total(v, "sluice_connections"),
		       total(v, "sluice_connections_accepted_total"), total(v, "sluice_subscriptions"));
	else
		printf("%-.40s: %" PRIu64 " connections (%" PRIu64 " accepted), %" PRIu64 " subscriptions\n",
		       server, total(v, "sluice_connections"), total(v, "sluice_connections_accepted_total"),
		       total(v, "sluice_subscriptions"));
	printf("in %s in %" PRIu64 " frames, out %s in %" PRIu64 " frames, %" PRIu64 " errors\n",
	       bytes_str(total(v, "sluice_bytes_in_total"), a, sizeof(a)), total(v, "sluice_frames_in_total"),
	       bytes_str(total(v, "sluice_bytes_out_total"), b, sizeof(b)), total(v, "sluice_frames_out_total"),
	       total(v, "sluice_errors_total"));
	double fs_n = total_f(v, "sluice_fsync_seconds_count");
	double fs_sum = total_f(v, "sluice_fsync_seconds_sum");
	if (fs_n > 0)
		printf("log syncs: %.0f, %.3f ms on average\n", fs_n, fs_sum * 1000.0 / fs_n);
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

static void view_fini(view *v)
{
	for (size_t p = 0; p < v->n; p++) {
		free(v->r[p].s);
		free(v->texts[p]);
	}
	free(v->r);
	free(v->texts);
	free(v->errs);
	memset(v, 0, sizeof(*v));
}

/* fetch_stats for another process of the cluster, whose map entry is "ADDR" or, when it has
 * standbys, "PRIMARY/STANDBY/...": the first address of the entry that answers gives the
 * report (a standby answers too, after a failover).  The last failure's code otherwise. */
static int fetch_stats_entry(const char *entry, char **text, char *err, size_t errlen)
{
	char addr[256];
	int rc = SL_EARG;

	for (const char *p = entry;;) {
		size_t n = strcspn(p, "/");
		if (n < sizeof(addr)) {
			memcpy(addr, p, n);
			addr[n] = '\0';
			if ((rc = fetch_stats(addr, text, NULL, err, errlen)) == 0)
				return 0;
		}
		if (p[n] == '\0')
			return rc;
		p += n + 1;
	}
}

/* Fetches the reports of the server and of every other process of its cluster.  0 with *v
 * filled (some processes may be missing: *missing counts them), or an error for the server
 * itself (reason in err). */
static int view_fetch(const char *server, view *v, struct cmap *map, int *missing, char *err,
                      size_t errlen)
{
	char *text = NULL;
	int rc;
	*missing = 0;
	memset(v, 0, sizeof(*v));
	if ((rc = fetch_stats(server, &text, map, err, errlen)) != 0)
		return rc;
	size_t n = map->n > 0 ? map->n : 1;
	v->r = calloc(n, sizeof(*v->r));
	v->texts = calloc(n, sizeof(*v->texts));
	v->errs = calloc(n, sizeof(*v->errs));
	if (v->r == NULL || v->texts == NULL || v->errs == NULL) {
		free(text);
		view_fini(v);
		snprintf(err, errlen, "out of memory");
		return SL_ENOMEM;
	}
	v->n = n;
	v->addrs = map->addrs;
	for (size_t p = 0; p < n; p++) {
		if (p == (n > 1 ? map->self : 0)) {
			v->texts[p] = text;
		} else if ((rc = fetch_stats_entry(map->addrs[p], &v->texts[p], err, errlen)) != 0) {
			/* Shown in the view: the reason alone (the address is beside it). */
			snprintf(v->errs[p], sizeof(v->errs[p]), "%s", sl_strerror(rc));
			v->texts[p] = NULL;
			(*missing)++;
			continue;
		}
		if (parse_report(v->texts[p], &v->r[p]) != 0) {
			snprintf(err, errlen, "cannot parse the stats from %s", n > 1 ? map->addrs[p] : server);
			view_fini(v);
			return SL_EPROTO;
		}
	}
	return 0;
}

/* ---- the command ---- */

static volatile sig_atomic_t stop_flag;
static void on_stop(int sig)
{
	stop_flag = 1;
}

int cli_stat(int argc, char **argv)
{
	static const cli_opt opts[] = {{"server", 1}, {"once", 0}, {"interval", 1}, {"help", 0},
	                               CLI_SECURITY_OPTS, {NULL, 0}};
	const char *server = "127.0.0.1:6876", *val;
	const cli_opt *opt;
	char err[512];
	double interval = 1.0;
	int once = 0, k, status = 0;
	cli_args a;

	cli_args_init(&a, argc, argv, 2);
	while ((k = cli_args_next(&a, opts, &opt, &val, err, sizeof(err))) != CLI_END) {
		if (k == CLI_BAD) {
			fprintf(stderr, "sluice: %s (see sluice stat --help)\n", err);
			return 2;
		}
		if (k == CLI_POSITIONAL) {
			fprintf(stderr, "sluice: unexpected argument '%s' (see sluice stat --help)\n", val);
			return 2;
		}
		if (strcmp(opt->name, "help") == 0) {
			fputs(usage_stat, stdout);
			return 0;
		} else if (strcmp(opt->name, "once") == 0) {
			once = 1;
		} else if (strcmp(opt->name, "interval") == 0) {
			char *end;
			errno = 0;
			interval = strtod(val, &end);
			if (errno != 0 || end == val || *end != '\0' || !(interval >= 0.05 && interval <= 86400)) {
				fprintf(stderr, "sluice: bad --interval '%s': expected seconds from 0.05 to 86400 "
				        "(see sluice stat --help)\n", val);
				return 2;
			}
		} else if (!cli_security_opt(&cli_sec, opt->name, val)) {
			server = val;
		}
	}
	if (cli_check_hostport(server) != 0) {
		fprintf(stderr, "sluice: bad --server address '%s': expected HOST:PORT (see sluice stat "
		        "--help)\n", server);
		return 2;
	}
	if (cli_security_load(&cli_sec, err, sizeof(err)) != 0) {
		fprintf(stderr, "sluice: %s\n", err);
		return 1;
	}
	int tty = isatty(1);
	struct sigaction sa = {0};
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (int first = 1; !stop_flag; first = 0) {
		struct cmap map = {0};
		view v;
		int missing = 0;
		int rc = view_fetch(server, &v, &map, &missing, err, sizeof(err));
		if (rc != 0) {
			/* A refresh that fails is shown and retried; the first (or --once) ends it. */
			fprintf(stderr, "sluice: %s\n", err);
			cmap_fini(&map);
			if (once || first) {
				status = 1;
				break;
			}
		} else {
			if (tty && !once)
				fputs("\033[H\033[2J", stdout);
			else if (!first)
				fputs("\n", stdout);
			rc = print_view(server, &v);
			for (size_t p = 0; once && p < v.n; p++)
				if (v.texts[p] == NULL)
					fprintf(stderr, "sluice: process %zu at %s: %s\n", p, v.addrs[p], v.errs[p]);
			if (once && missing > 0)
				status = 1;
			view_fini(&v);
			cmap_fini(&map);
			if (rc != 0) {
				fprintf(stderr, "sluice: out of memory\n");
				status = 1;
				break;
			}
		}
		if (fflush(stdout) != 0) {
			status = 1;
			break;
		}
		if (once)
			break;
		struct timespec ts = {(time_t)interval, (long)((interval - (double)(time_t)interval) * 1e9)};
		while (!stop_flag && nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	cli_security_fini(&cli_sec);
	return status;
}
