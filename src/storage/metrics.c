/*
 * metrics.c - the storage runtime's report for its operator, in the Prometheus text exposition
 * format (version 0.0.4), and the hand-off that lets another thread get one (see metrics.h for
 * the threading).  The same text answers a client's Stats request (`sluice stat`) and a scrape
 * of GET /metrics (metrics_http.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "storage/replicate.h"
#include "storage/storage_int.h"

/* Upper bounds (seconds) of the fsync histogram's buckets; +Inf is implicit. */
static const double fsync_bounds[SLI_FSYNC_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
};

/* The names of the SL_E* codes, indexed by SL_EPROTO - code: the `kind` label of errors. */
static const char *const err_names[] = {
	"SL_EPROTO", "SL_EVERSION", "SL_ETOOBIG", "SL_ENOSOURCE", "SL_ENOWORKER", "SL_EDUPLICATE",
	"SL_ENOTSUB", "SL_EBADHANDLE", "SL_ECREDIT", "SL_ECLOSED", "SL_ETIME", "SL_EARG", "SL_ENOMEM",
	"SL_ETIMEDOUT", "SL_EDISCONNECTED", "SL_EREJECTED", "SL_EIO", "SL_EKIND", "SL_EIDLE",
	"SL_EWRONGOWNER", "SL_ECLUSTER", "SL_EFENCED", "SL_EAUTH", "SL_ETLS",
};
#define NERR_NAMES (sizeof(err_names) / sizeof(err_names[0]))
_Static_assert(NERR_NAMES <= SLI_ERR_KINDS, "SLI_ERR_KINDS too small");

void sli_metrics_init(sl_storage *st)
{
	struct sli_metrics *m = &st->metrics;
	pthread_mutex_init(&m->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cv, &ca);
	pthread_condattr_destroy(&ca);
	m->ready = 1;
}

void sli_metrics_fini(sl_storage *st)
{
	struct sli_metrics *m = &st->metrics;
	if (!m->ready)
		return;
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cv);
	m->ready = 0;
}

void sli_metrics_count_error(sl_storage *st, int code)
{
	int k = SL_EPROTO - code;
	st->metrics.errors[(k >= 0 && k < SLI_ERR_KINDS) ? k : SLI_ERR_KINDS]++;
}

void sli_metrics_fsync(sl_storage *st, uint64_t ns)
{
	struct sli_metrics *m = &st->metrics;
	double s = (double)ns / 1e9;
	for (int i = 0; i < SLI_FSYNC_BUCKETS; i++) {
		if (s <= fsync_bounds[i]) {
			atomic_fetch_add_explicit(&m->fsync_le[i], 1, memory_order_relaxed);
			break;
		}
	}
	atomic_fetch_add_explicit(&m->fsync_sum_ns, ns, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->fsync_count, 1, memory_order_relaxed);
}

/* ---- rendering (network thread) ---- */

struct out {
	sli_buf *b;
	int rc;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	if (o->rc != 0)
		return;
	for (size_t want = 256;;) {
		if (sli_buf_reserve(o->b, want) != 0) {
			o->rc = SL_ENOMEM;
			return;
		}
		size_t room = o->b->cap - o->b->len;
		va_start(ap, fmt);
		int n = vsnprintf((char *)o->b->ptr + o->b->len, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->rc = SL_EARG;
			return;
		}
		if ((size_t)n < room) {
			o->b->len += (size_t)n;
			return;
		}
		want = (size_t)n + 1;
	}
}

/* A label value as the text format wants it: \\, \" and \n escaped (truncated to fit). */
#define LABEL_MAX 512
static const char *esc(const char *in, char *buf)
{
	size_t n = 0;
	for (; *in != '\0' && n + 3 < LABEL_MAX; in++) {
		if (*in == '\\' || *in == '"' || *in == '\n') {
			buf[n++] = '\\';
			buf[n++] = *in == '\n' ? 'n' : *in;
		} else {
			buf[n++] = *in;
		}
	}
	buf[n] = '\0';
	return buf;
}

static void head(struct out *o, const char *name, const char *type, const char *help)
{
	outf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A time as a sample value: closed is +Inf. */
static void put_time(struct out *o, uint64_t t)
{
	if (t == SL_TIME_CLOSED)
		outf(o, "+Inf\n");
	else
		outf(o, "%" PRIu64 "\n", t);
}

/* Calls fn for every worker this process hosts (under src_mu: sources may be registered by
 * other threads meanwhile). */
typedef void (*worker_fn)(struct out *o, struct sl_source *src, struct sworker *w);
static void each_worker(sl_storage *st, struct out *o, worker_fn fn)
{
	pthread_mutex_lock(&st->src_mu);
	for (size_t i = 0; i < st->nsources; i++) {
		struct sl_source *src = st->sources[i];
		for (uint32_t k = 0; k < src->nworkers; k++)
			if (sli_hosts(st, k) && src->w[k].log[0] != NULL)
				fn(o, src, &src->w[k]);
	}
	pthread_mutex_unlock(&st->src_mu);
}

static void w_upper(struct out *o, struct sl_source *src, struct sworker *w)
{
	char nm[LABEL_MAX];
	outf(o, "sluice_source_upper{source=\"%s\",worker=\"%u\"} ", esc(src->name, nm), w->index);
	put_time(o, atomic_load(&w->upper));
}

static void w_published(struct out *o, struct sl_source *src, struct sworker *w)
{
	char nm[LABEL_MAX];
	outf(o, "sluice_source_published{source=\"%s\",worker=\"%u\"} ", esc(src->name, nm), w->index);
	put_time(o, sli_worker_published(src->st, w));
}

/* Each standby's acknowledged upper and lag per worker (replicate.c keeps them). */
static void replica_samples(sl_storage *st, struct out *o, int lag)
{
	for (size_t i = 0; st->repl != NULL && i < st->repl->n; i++) {
		const struct sli_member *m = &st->repl->m[i];
		char mb[LABEL_MAX], nm[LABEL_MAX];
		esc(m->name, mb);
		pthread_mutex_lock(&st->src_mu);
		for (size_t s = 0; s < st->nsources; s++) {
			struct sl_source *src = st->sources[s];
			for (uint32_t k = 0; k < src->nworkers; k++) {
				if (!sli_hosts(st, k))
					continue;
				uint64_t a = sli_repl_acked_of(m, s, k), up = atomic_load(&src->w[k].upper);
				outf(o, "%s{member=\"%s\",source=\"%s\",worker=\"%u\"} ",
				     lag ? "sluice_replica_lag" : "sluice_replica_acked_upper", mb,
				     esc(src->name, nm), k);
				if (lag)
					outf(o, "%" PRIu64 "\n", a >= up ? 0 : up == SL_TIME_CLOSED ? 1 : up - a);
				else
					put_time(o, a);
			}
		}
		pthread_mutex_unlock(&st->src_mu);
	}
}

static void w_since(struct out *o, struct sl_source *src, struct sworker *w)
{
	char nm[LABEL_MAX];
	outf(o, "sluice_source_since{source=\"%s\",worker=\"%u\"} %" PRIu64 "\n", esc(src->name, nm), w->index,
	     w->since);
}

static void w_blocked(struct out *o, struct sl_source *src, struct sworker *w)
{
	char nm[LABEL_MAX];
	outf(o, "sluice_worker_append_blocked{source=\"%s\",worker=\"%u\"} %d\n", esc(src->name, nm),
	     w->index, atomic_load(&w->append_blocked) != 0);
}

static void w_bytes(struct out *o, struct sl_source *src, struct sworker *w)
{
	char nm[LABEL_MAX];
	esc(src->name, nm);
	for (int coll = 0; coll < 2; coll++)
		outf(o, "sluice_log_bytes{source=\"%s\",worker=\"%u\",collection=\"%s\"} %" PRIu64 "\n",
		     nm, w->index, coll ? "err" : "ok",
		     sli_log_end(w->log[coll]) - sli_log_start(w->log[coll]));
}

typedef void (*sub_fn)(struct out *o, struct conn *c, struct sub *s);
static void each_sub(sl_storage *st, struct out *o, sub_fn fn)
{
	for (struct conn *c = st->conns; c != NULL; c = c->next) {
		if (c->dead)
			continue;
		for (size_t i = 0; i < c->subs.nbuckets; i++)
			for (struct sub *s = c->subs.by_handle[i]; s != NULL; s = s->hnext)
				fn(o, c, s);
	}
}

static void sub_labels(struct out *o, const char *name, struct conn *c, struct sub *s)
{
	char nm[LABEL_MAX];
	outf(o, "%s{conn=\"%" PRIu64 "\",handle=\"%u\",source=\"%s\",worker=\"%u\",dataflow=\"%" PRIu64
	     "\"} ", name, c->id, s->handle, esc(s->w->src->name, nm), s->w->index, s->dataflow);
}

static void s_lag(struct out *o, struct conn *c, struct sub *s)
{
	uint64_t upper = atomic_load(&s->w->upper);
	/* A subscription from a later time is not behind on the times before it. */
	uint64_t base = s->sent_upper > s->from ? s->sent_upper : s->from;
	sub_labels(o, "sluice_subscription_lag", c, s);
	if (s->sent_upper == SL_TIME_CLOSED || upper <= base)
		outf(o, "0\n");
	else if (upper == SL_TIME_CLOSED)
		outf(o, "+Inf\n"); /* closed, and the subscriber not yet told */
	else
		outf(o, "%" PRIu64 "\n", upper - base);
}

static void s_sent(struct out *o, struct conn *c, struct sub *s)
{
	sub_labels(o, "sluice_subscription_sent_upper", c, s);
	put_time(o, s->sent_upper);
}

static void s_credit(struct out *o, struct conn *c, struct sub *s)
{
	sub_labels(o, "sluice_subscription_credit_bytes", c, s);
	outf(o, "%" PRIu64 "\n", s->credit);
}

int sli_metrics_render(sl_storage *st, sli_buf *b)
{
	struct sli_metrics *m = &st->metrics;
	struct out o = {b, 0};
	uint64_t bin = m->bytes_in, bout = m->bytes_out, fin = m->frames_in, fout = m->frames_out;
	size_t nconns = 0, nsubs = 0;

	/* The totals include every connection not freed yet (its counts are folded into m at
	 * free), the dead ones awaiting the sweep too: else a total would dip between the two. */
	for (struct conn *c = st->conns; c != NULL; c = c->next) {
		if (!c->dead) {
			nconns++;
			nsubs += c->subs.count;
		}
		bin += c->bytes_in;
		bout += c->bytes_out;
		fin += c->frames_in;
		fout += c->frames_out;
	}
	head(&o, "sluice_connections", "gauge", "Client connections open now.");
	outf(&o, "sluice_connections %zu\n", nconns);
	head(&o, "sluice_connections_accepted_total", "counter", "Client connections accepted.");
	outf(&o, "sluice_connections_accepted_total %" PRIu64 "\n", m->conn_seq);
	head(&o, "sluice_subscriptions", "gauge", "Subscriptions open now.");
	outf(&o, "sluice_subscriptions %zu\n", nsubs);
	head(&o, "sluice_bytes_in_total", "counter", "Bytes read from clients.");
	outf(&o, "sluice_bytes_in_total %" PRIu64 "\n", bin);
	head(&o, "sluice_bytes_out_total", "counter", "Bytes written to clients.");
	outf(&o, "sluice_bytes_out_total %" PRIu64 "\n", bout);
	head(&o, "sluice_frames_in_total", "counter", "Frames received from clients.");
	outf(&o, "sluice_frames_in_total %" PRIu64 "\n", fin);
	head(&o, "sluice_frames_out_total", "counter", "Frames queued to clients.");
	outf(&o, "sluice_frames_out_total %" PRIu64 "\n", fout);

	head(&o, "sluice_connection_subscriptions", "gauge", "Subscriptions per open connection.");
	for (struct conn *c = st->conns; c != NULL; c = c->next)
		if (!c->dead)
			outf(&o, "sluice_connection_subscriptions{conn=\"%" PRIu64 "\",peer=\"%s\"} %zu\n",
			     c->id, c->peer, c->subs.count);
	head(&o, "sluice_connection_bytes_out_total", "counter", "Bytes written per open connection.");
	for (struct conn *c = st->conns; c != NULL; c = c->next)
		if (!c->dead)
			outf(&o, "sluice_connection_bytes_out_total{conn=\"%" PRIu64 "\",peer=\"%s\"} %" PRIu64 "\n",
			     c->id, c->peer, c->bytes_out);
	head(&o, "sluice_connection_bytes_in_total", "counter", "Bytes read per open connection.");
	for (struct conn *c = st->conns; c != NULL; c = c->next)
		if (!c->dead)
			outf(&o, "sluice_connection_bytes_in_total{conn=\"%" PRIu64 "\",peer=\"%s\"} %" PRIu64 "\n",
			     c->id, c->peer, c->bytes_in);

	head(&o, "sluice_source_upper", "gauge", "Upper (frontier) of each hosted worker; +Inf once closed.");
	each_worker(st, &o, w_upper);
	head(&o, "sluice_source_published", "gauge",
	     "Frontier subscribers are served up to: the upper, or with replication what every in-sync copy holds.");
	each_worker(st, &o, w_published);
	head(&o, "sluice_term", "gauge", "This process's term (with --etcd: the etcd revision its leadership began at).");
	outf(&o, "sluice_term %" PRIu64 "\n", (uint64_t)atomic_load(&st->term));
	head(&o, "sluice_leader", "gauge", "1 while this process leads (takes ingest, publishes), else 0.");
	outf(&o, "sluice_leader %d\n", sli_repl_leads(st));
	head(&o, "sluice_insync_copies", "gauge", "Copies in sync, this one included (1 without replication).");
	outf(&o, "sluice_insync_copies %u\n", sli_repl_insync(st));
	head(&o, "sluice_min_insync", "gauge", "Copies required in sync for ingest and publishing (--min-insync).");
	outf(&o, "sluice_min_insync %u\n", st->cfg.min_insync ? st->cfg.min_insync : 1);
	head(&o, "sluice_replica_insync", "gauge", "1 while the standby is in the in-sync set, else 0.");
	for (size_t i = 0; st->repl != NULL && i < st->repl->n; i++) {
		char mb[LABEL_MAX];
		outf(&o, "sluice_replica_insync{member=\"%s\"} %d\n", esc(st->repl->m[i].name, mb),
		     st->repl->m[i].insync);
	}
	head(&o, "sluice_replica_acked_upper", "gauge", "Upper each standby acknowledged as durable, per worker.");
	replica_samples(st, &o, 0);
	head(&o, "sluice_replica_lag", "gauge", "This process's upper minus what the standby acknowledged (time units).");
	replica_samples(st, &o, 1);
	head(&o, "sluice_source_since", "gauge", "Compaction frontier (since) of each hosted worker.");
	each_worker(st, &o, w_since);
	head(&o, "sluice_log_bytes", "gauge", "Bytes of log kept per worker and collection.");
	each_worker(st, &o, w_bytes);
	head(&o, "sluice_worker_append_blocked", "gauge",
	     "1 while the worker's appends fail on a full disk or an I/O error, else 0.");
	each_worker(st, &o, w_blocked);

	head(&o, "sluice_subscription_lag", "gauge",
	     "Source upper minus the frontier the subscription was sent (time units; +Inf: closed, not yet told).");
	each_sub(st, &o, s_lag);
	head(&o, "sluice_subscription_sent_upper", "gauge", "Frontier the subscription was sent.");
	each_sub(st, &o, s_sent);
	head(&o, "sluice_subscription_credit_bytes", "gauge", "Credit the subscription has left.");
	each_sub(st, &o, s_credit);

	head(&o, "sluice_fsync_seconds", "histogram", "Time taken by each durable log sync.");
	uint64_t cum = 0;
	for (int i = 0; i < SLI_FSYNC_BUCKETS; i++) {
		cum += atomic_load_explicit(&m->fsync_le[i], memory_order_relaxed);
		outf(&o, "sluice_fsync_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", fsync_bounds[i], cum);
	}
	uint64_t count = atomic_load(&m->fsync_count);
	if (count < cum)
		count = cum; /* read apart from the buckets: never let +Inf fall below them */
	outf(&o, "sluice_fsync_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", count);
	outf(&o, "sluice_fsync_seconds_sum %.9f\n", (double)atomic_load(&m->fsync_sum_ns) / 1e9);
	outf(&o, "sluice_fsync_seconds_count %" PRIu64 "\n", count);

	head(&o, "sluice_errors_total", "counter", "Error answers sent to clients, by error kind.");
	for (size_t k = 0; k < NERR_NAMES; k++)
		outf(&o, "sluice_errors_total{kind=\"%s\"} %" PRIu64 "\n", err_names[k], m->errors[k]);
	uint64_t other = m->errors[SLI_ERR_KINDS];
	for (size_t k = NERR_NAMES; k < SLI_ERR_KINDS; k++)
		other += m->errors[k];
	outf(&o, "sluice_errors_total{kind=\"other\"} %" PRIu64 "\n", other);
	head(&o, "sluice_build_info", "gauge",
	     "The sluice release and git commit this process runs (always 1).");
	outf(&o, "sluice_build_info{version=\"%s\",revision=\"%s\"} 1\n", sl_version(),
	     sl_revision());
	return o.rc;
}

/* ---- reports for other threads ---- */

void sli_metrics_on_wake(sl_storage *st)
{
	struct sli_metrics *m = &st->metrics;
	if (!atomic_load_explicit(&m->want, memory_order_acquire))
		return;
	pthread_mutex_lock(&m->mu);
	atomic_store(&m->want, 0);
	if (m->req_out != NULL) {
		size_t len = m->req_out->len;
		if (sli_metrics_render(st, m->req_out) != 0)
			m->req_out->len = len; /* the waiter sees no report: SL_ENOMEM */
		m->req_out = NULL;
		m->done_seq = m->req_seq;
		pthread_cond_broadcast(&m->cv);
	}
	pthread_mutex_unlock(&m->mu);
}

int sli_metrics_report(sl_storage *st, sli_buf *out, int timeout_ms)
{
	struct sli_metrics *m = &st->metrics;
	struct timespec dl;
	int rc = 0;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	uint64_t ns = (uint64_t)dl.tv_nsec + (uint64_t)timeout_ms * 1000000u;
	dl.tv_sec += (time_t)(ns / 1000000000u);
	dl.tv_nsec = (long)(ns % 1000000000u);

	pthread_mutex_lock(&m->mu);
	/* One request at a time: a second scraper waits for the first. */
	while (m->req_out != NULL && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&m->cv, &m->mu, &dl);
	if (m->req_out != NULL) {
		pthread_mutex_unlock(&m->mu);
		return SL_ETIMEDOUT;
	}
	size_t len0 = out->len;
	uint64_t seq = ++m->req_seq;
	m->req_out = out;
	atomic_store_explicit(&m->want, 1, memory_order_release);
	sli_loop_wake(st->loop);
	rc = 0;
	while (m->done_seq < seq && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&m->cv, &m->mu, &dl);
	if (m->done_seq < seq) {
		/* The loop renders only under mu, so withdrawing the buffer here is safe. */
		m->req_out = NULL;
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->mu);
		return SL_ETIMEDOUT;
	}
	pthread_mutex_unlock(&m->mu);
	return out->len > len0 ? 0 : SL_ENOMEM;
}
