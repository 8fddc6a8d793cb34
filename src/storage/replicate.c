/*
 * replicate.c - "acknowledged means replicated": the leader's high watermark per worker, the
 * in-sync set of its standbys, the acknowledgements that wait for the watermark, and a
 * standby's side (the watermark it learns, which bounds what it publishes).  Loop thread,
 * except the three public calls a coordinator makes (act_until, isr, isr_recorded).
 *
 * A standby's follower declares its connection with Replica(member) and acknowledges with
 * ReplicaAck(source, worker, upper) whenever its log of a worker is durable to a new upper.
 * For every hosted worker the leader keeps each member's acknowledged upper.  The high
 * watermark of a worker is the minimum of this process's upper and the acknowledged uppers of
 * the members that are in sync (and, with a coordinator, of those the coordinator last
 * recorded as in sync: a standby leaves the watermark only once etcd no longer lists it, so
 * every member etcd lists, and so every candidate that may win an election, holds everything
 * published).  The watermark moves only while at least min_insync copies (this one included)
 * are in sync, and the visible frontier (what ordinary subscribers are served up to, and what
 * an ingest batch's AppendOk waits for) follows it only while the coordinator's deadline
 * (sl_storage_act_until, the lease's safe deadline) has not passed.
 *
 * A member joins the in-sync set once it has acknowledged, on every hosted worker, at least
 * the watermark (so adding it never moves the watermark back); it leaves when its connection
 * closes or when on some worker it has not caught up with this process's upper for
 * insync_lag_ms (caught up: an acknowledgement at least the upper this process had when the
 * previous one arrived, or equal to the upper now).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "storage/conn.h"
#include "storage/replicate.h"
#include "storage/storage_int.h"



int sli_repl_open(sl_storage *st)
{
	st->gated = st->cfg.min_insync > 1 || st->cfg.coordinated;
	atomic_store(&st->act_until, st->cfg.coordinated ? 0 : UINT64_MAX);
	if (!st->gated)
		return 0;
	if ((st->repl = calloc(1, sizeof(*st->repl))) == NULL)
		return SL_ENOMEM;
	pthread_mutex_init(&st->repl->mu, NULL);
	return 0;
}

static void member_free(struct sli_member *m)
{
	for (size_t i = 0; i < m->nsrc; i++)
		free(m->w[i]);
	free(m->w);
	free(m->nw);
}

void sli_repl_free(sl_storage *st)
{
	struct sli_repl *r = st->repl;
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		member_free(&r->m[i]);
	free(r->m);
	free(r->recorded);
	pthread_mutex_destroy(&r->mu);
	free(r);
	st->repl = NULL;
}

/* Rewrites the text of the in-sync set after a change, and says it in the event log. */
static void isr_changed(sl_storage *st, const char *what, const char *who)
{
	struct sli_repl *r = st->repl;
	char text[ISR_TEXT_MAX];
	size_t off;
	sli_storage_self(st, text, sizeof(text));
	off = strlen(text);
	unsigned count = 1;
	for (size_t i = 0; i < r->n; i++) {
		if (!r->m[i].insync)
			continue;
		count++;
		int n = snprintf(text + off, sizeof(text) - off, ",%s", r->m[i].name);
		if (n < 0 || (size_t)n >= sizeof(text) - off)
			break;
		off += (size_t)n;
	}
	pthread_mutex_lock(&r->mu);
	memcpy(r->isr, text, sizeof(text));
	r->version++;
	pthread_mutex_unlock(&r->mu);
	char cnt[16], req[16];
	snprintf(cnt, sizeof(cnt), "%u", count);
	snprintf(req, sizeof(req), "%u", st->cfg.min_insync ? st->cfg.min_insync : 1);
	sli_kv kv[] = {{"member", who, 0}, {"change", what, 0}, {"insync", text, 0},
	               {"count", cnt, 1}, {"min_insync", req, 1}, {NULL, NULL, 0}};
	sli_elog(SLI_LOG_INFO, "isr_change", kv, "standby %s %s the in-sync set: %s (%s of %s "
	         "required)", who, what, text, cnt, req);
}


/* The member's record of (source index si, worker wi), grown on demand; NULL without memory. */
static struct sli_mworker *mrec(struct sli_member *m, size_t si, uint32_t nworkers, uint32_t wi)
{
	if (si >= m->nsrc) {
		struct sli_mworker **w = realloc(m->w, (si + 1) * sizeof(*w));
		if (w == NULL)
			return NULL;
		m->w = w;
		uint32_t *nw = realloc(m->nw, (si + 1) * sizeof(*nw));
		if (nw == NULL)
			return NULL;
		m->nw = nw;
		for (size_t i = m->nsrc; i <= si; i++) {
			m->w[i] = NULL;
			m->nw[i] = 0;
		}
		m->nsrc = si + 1;
	}
	if (m->w[si] == NULL) {
		if ((m->w[si] = calloc(nworkers, sizeof(**m->w))) == NULL)
			return NULL;
		m->nw[si] = nworkers;
	}
	return wi < m->nw[si] ? &m->w[si][wi] : NULL;
}


static struct sl_source *source_at(sl_storage *st, size_t i)
{
	pthread_mutex_lock(&st->src_mu);
	struct sl_source *src = i < st->nsources ? st->sources[i] : NULL;
	pthread_mutex_unlock(&st->src_mu);
	return src;
}

static size_t source_count(sl_storage *st)
{
	pthread_mutex_lock(&st->src_mu);
	size_t n = st->nsources;
	pthread_mutex_unlock(&st->src_mu);
	return n;
}

/* Sends the head acknowledgements of c whose time every hosted worker of their source
 * publishes. */
static void release_acks(struct conn *c)
{
	sl_storage *st = c->st;
	while (c->acks_len > 0) {
		struct sli_pending_ack *a = &c->acks[c->acks_head];
		for (uint32_t w = 0; w < a->src->nworkers; w++) {
			if (!sli_hosts(st, w))
				continue;
			uint64_t v = atomic_load(&a->src->w[w].visible);
			if (v != SL_TIME_CLOSED && v <= a->time)
				return;
		}
		sli_frame f = {.type = SLI_APPEND_OK};
		f.u.append_ok.batch = a->batch;
		f.u.append_ok.time = a->time;
		sli_conn_put_frame(c, &f);
		c->acks_head = (c->acks_head + 1) % c->acks_cap;
		c->acks_len--;
		st->repl->npending--;
	}
}

static void release_all(sl_storage *st)
{
	if (st->repl->npending == 0)
		return;
	for (struct conn *c = st->conns; c != NULL; c = c->next)
		if (c->acks_len > 0 && !c->dead)
			release_acks(c);
}

/* Recomputes w's watermark and visible frontier: 1 when the visible frontier moved. */
static int update(sl_storage *st, struct sworker *w)
{
	struct sli_repl *r = st->repl;
	uint64_t up = atomic_load_explicit(&w->upper, memory_order_acquire);
	uint64_t vis = atomic_load(&w->visible), nv;
	if (sli_repl_is_standby(st)) {
		uint64_t wm = atomic_load(&w->wm);
		nv = wm < up ? wm : up;
	} else {
		size_t si = (size_t)(w->src->id - 1);
		uint64_t hw = up;
		for (size_t i = 0; i < r->n; i++) {
			struct sli_member *m = &r->m[i];
			if (!m->insync && !(st->cfg.coordinated && m->recorded))
				continue;
			uint64_t a = sli_repl_acked_of(m, si, w->index);
			if (a < hw)
				hw = a;
		}
		if (sli_repl_insync(st) >= (st->cfg.min_insync ? st->cfg.min_insync : 1) && hw > w->hw)
			w->hw = hw;
		nv = sli_repl_may_act(st) ? w->hw : vis;
	}
	if (nv <= vis)
		return 0;
	atomic_store_explicit(&w->visible, nv, memory_order_release);
	return 1;
}

int sli_repl_update_worker(sl_storage *st, struct sworker *w)
{
	if (!st->gated || !update(st, w))
		return 0;
	release_all(st);
	return 1;
}

/* The same from here: a move queues the worker so the loop serves its subscribers. */
static void update_and_touch(sl_storage *st, struct sworker *w)
{
	if (sli_repl_update_worker(st, w))
		sli_worker_touch(w);
}

static struct sli_member *member_of(struct conn *c)
{
	return c->replica ? &c->st->repl->m[c->replica - 1] : NULL;
}

void sli_repl_on_replica(struct conn *c, sl_bytes name)
{
	sl_storage *st = c->st;
	struct sli_repl *r = st->repl;
	if (name.len == 0 || name.len >= sizeof(r->m->name)) {
		sli_conn_error(c, SL_EPROTO, 1, "Replica: a member name of %zu bytes", name.len);
		return;
	}
	if (r == NULL)
		return; /* unreplicated: the standby is served as any client, its acks ignored */
	if (c->replica != 0) {
		/* said again (a reconnect racing the first declaration): the same member only */
		if (strlen(r->m[c->replica - 1].name) != name.len ||
		    memcmp(r->m[c->replica - 1].name, name.ptr, name.len) != 0)
			sli_conn_error(c, SL_EPROTO, 1, "Replica: this connection is another member already");
		return;
	}
	size_t i;
	for (i = 0; i < r->n; i++)
		if (strlen(r->m[i].name) == name.len && memcmp(r->m[i].name, name.ptr, name.len) == 0)
			break;
	if (i == r->n) {
		if (r->n == r->cap) {
			size_t cap = r->cap ? 2 * r->cap : 4;
			struct sli_member *m = realloc(r->m, cap * sizeof(*m));
			if (m == NULL) {
				sli_conn_error(c, SL_ENOMEM, 1, "out of memory");
				return;
			}
			r->m = m;
			r->cap = cap;
		}
		memset(&r->m[i], 0, sizeof(r->m[i]));
		memcpy(r->m[i].name, name.ptr, name.len);
		r->n++;
	}
	struct sli_member *m = &r->m[i];
	if (m->conn != NULL && m->conn != c)
		m->conn->replica = 0; /* a reconnect: the new connection is the member now */
	m->conn = c;
	c->replica = (uint32_t)i + 1;
}

/* Whether m has acknowledged at least the watermark of every hosted worker. */
static int caught_up_with_hw(sl_storage *st, struct sli_member *m)
{
	size_t n = source_count(st);
	for (size_t i = 0; i < n; i++) {
		struct sl_source *src = source_at(st, i);
		for (uint32_t w = 0; w < src->nworkers; w++)
			if (sli_hosts(st, w) && sli_repl_acked_of(m, i, w) < src->w[w].hw)
				return 0;
	}
	return 1;
}

void sli_repl_on_ack(struct conn *c, const sli_replica_ack *a)
{
	sl_storage *st = c->st;
	struct sli_member *m = member_of(c);
	if (st->repl == NULL)
		return;
	if (m == NULL) {
		sli_conn_error(c, SL_EPROTO, 1, "ReplicaAck before Replica");
		return;
	}
	struct sl_source *src = sli_storage_find_source(st, a->source);
	if (src == NULL || a->worker >= src->nworkers || !sli_hosts(st, a->worker))
		return; /* a source this process does not know (yet): nothing to hold back */
	struct sworker *w = &src->w[a->worker];
	struct sli_mworker *mw = mrec(m, (size_t)(src->id - 1), src->nworkers, a->worker);
	if (mw == NULL)
		return;
	uint64_t now = sli_now_ms(), up = atomic_load(&w->upper);
	if (a->upper > mw->acked)
		mw->acked = a->upper;
	if (mw->acked >= mw->prev_upper || mw->acked >= up)
		mw->caught_up_ms = now;
	mw->prev_upper = up;
	if (!m->insync && caught_up_with_hw(st, m)) {
		m->insync = 1;
		size_t n = source_count(st);
		for (size_t i = 0; i < n; i++) {
			struct sl_source *s = source_at(st, i);
			for (uint32_t k = 0; k < s->nworkers; k++) {
				struct sli_mworker *r = sli_hosts(st, k) ? mrec(m, i, s->nworkers, k) : NULL;
				if (r != NULL)
					r->caught_up_ms = now;
			}
		}
		isr_changed(st, "joined", m->name);
	}
	update_and_touch(st, w);
}

static void leave(sl_storage *st, struct sli_member *m, const char *why)
{
	if (!m->insync)
		return;
	m->insync = 0;
	isr_changed(st, why, m->name);
}

void sli_repl_conn_closed(struct conn *c)
{
	struct sli_member *m = member_of(c);
	if (m != NULL) {
		m->conn = NULL;
		leave(c->st, m, "left (its connection closed)");
	}
	if (c->acks_len > 0)
		c->st->repl->npending -= c->acks_len;
	free(c->acks);
	c->acks = NULL;
	c->acks_len = c->acks_cap = c->acks_head = 0;
}

/* Applies a set the coordinator recorded (from its thread, through r->recorded). */
static void apply_recorded(sl_storage *st)
{
	struct sli_repl *r = st->repl;
	pthread_mutex_lock(&r->mu);
	char *text = r->recorded;
	r->recorded = NULL;
	pthread_mutex_unlock(&r->mu);
	if (text == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		r->m[i].recorded = 0;
	char self[160];
	sli_storage_self(st, self, sizeof(self));
	for (char *save = NULL, *tok = strtok_r(text, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t i;
		if (strcmp(tok, self) == 0)
			continue; /* this process: not a standby of itself */
		for (i = 0; i < r->n; i++)
			if (strcmp(r->m[i].name, tok) == 0)
				break;
		if (i == r->n) {
			/* a member recorded before it ever connected here: it still holds the watermark */
			if (strlen(tok) >= sizeof(r->m->name))
				continue;
			if (r->n == r->cap) {
				size_t cap = r->cap ? 2 * r->cap : 4;
				struct sli_member *m = realloc(r->m, cap * sizeof(*m));
				if (m == NULL)
					break;
				r->m = m;
				r->cap = cap;
			}
			memset(&r->m[i], 0, sizeof(r->m[i]));
			snprintf(r->m[i].name, sizeof(r->m[i].name), "%s", tok);
			r->n++;
		}
		r->m[i].recorded = 1;
	}
	free(text);
}

/* Which members are in sync and have acknowledged every hosted worker's upper now (for a
 * switchover, read by the coordinator's thread). */
static void note_caught_up(sl_storage *st)
{
	struct sli_repl *r = st->repl;
	char text[ISR_TEXT_MAX] = ",";
	size_t off = 1, n = source_count(st);
	for (size_t j = 0; j < r->n; j++) {
		struct sli_member *m = &r->m[j];
		int all = m->insync && m->conn != NULL;
		for (size_t i = 0; all && i < n; i++) {
			struct sl_source *src = source_at(st, i);
			for (uint32_t k = 0; all && k < src->nworkers; k++)
				if (sli_hosts(st, k) && sli_repl_acked_of(m, i, k) < atomic_load(&src->w[k].upper))
					all = 0;
		}
		int len = all ? snprintf(text + off, sizeof(text) - off, "%s,", m->name) : 0;
		if (len > 0 && (size_t)len < sizeof(text) - off)
			off += (size_t)len;
	}
	pthread_mutex_lock(&r->mu);
	memcpy(r->caught, text, off + 1);
	pthread_mutex_unlock(&r->mu);
}

void sli_repl_tick(sl_storage *st)
{
	struct sli_repl *r = st->repl;
	if (r == NULL)
		return;
	apply_recorded(st);
	uint64_t now = sli_now_ms();
	uint32_t lag = st->cfg.insync_lag_ms ? st->cfg.insync_lag_ms : 10000;
	size_t n = source_count(st);
	for (size_t i = 0; i < n; i++) {
		struct sl_source *src = source_at(st, i);
		for (uint32_t k = 0; k < src->nworkers; k++) {
			if (!sli_hosts(st, k))
				continue;
			struct sworker *w = &src->w[k];
			uint64_t up = atomic_load(&w->upper);
			for (size_t j = 0; j < r->n; j++) {
				struct sli_member *m = &r->m[j];
				if (!m->insync)
					continue;
				struct sli_mworker *mw = mrec(m, i, src->nworkers, k);
				if (mw == NULL)
					continue;
				if (mw->acked >= up)
					mw->caught_up_ms = now;
				else if (now - mw->caught_up_ms > lag)
					leave(st, m, "left (it fell behind)");
			}
			update_and_touch(st, w);
		}
	}
	note_caught_up(st);
}

int sli_repl_may_ingest(sl_storage *st, char *msg, size_t len)
{
	if (!st->gated)
		return 0;
	if (st->cfg.coordinated && (!sli_repl_may_act(st) || sli_repl_is_standby(st))) {
		snprintf(msg, len, "this process does not lead its group now (no leadership, or its "
		         "lease could not be renewed): ask the leader");
		return SL_ELEASE;
	}
	unsigned have = sli_repl_insync(st), need = st->cfg.min_insync ? st->cfg.min_insync : 1;
	if (have < need) {
		snprintf(msg, len, "only %u of the %u copies --min-insync requires are in sync: ingest "
		         "refused until a standby catches up", have, need);
		return SL_ENOTINSYNC;
	}
	return 0;
}

int sli_repl_ack(struct conn *c, struct sl_source *src, uint64_t batch, uint64_t time)
{
	if (!c->st->gated) {
		sli_frame f = {.type = SLI_APPEND_OK};
		f.u.append_ok.batch = batch;
		f.u.append_ok.time = time;
		sli_conn_put_frame(c, &f);
		return 0;
	}
	if (c->acks_len == c->acks_cap) {
		size_t cap = c->acks_cap ? 2 * c->acks_cap : 8;
		struct sli_pending_ack *a = malloc(cap * sizeof(*a));
		if (a == NULL)
			return SL_ENOMEM;
		for (size_t i = 0; i < c->acks_len; i++)
			a[i] = c->acks[(c->acks_head + i) % c->acks_cap];
		free(c->acks);
		c->acks = a;
		c->acks_cap = cap;
		c->acks_head = 0;
	}
	c->acks[(c->acks_head + c->acks_len) % c->acks_cap] =
	    (struct sli_pending_ack){.batch = batch, .time = time, .src = src};
	c->acks_len++;
	c->st->repl->npending++;
	/* the time may be published already (its copies acknowledged before the commit ended) */
	for (uint32_t w = 0; w < src->nworkers; w++)
		if (sli_hosts(c->st, w))
			update_and_touch(c->st, &src->w[w]);
	release_acks(c);
	return 0;
}

void sli_repl_send_watermark(struct conn *c, struct sub *s)
{
	uint64_t v = atomic_load(&s->w->visible);
	if (!c->st->gated || v <= s->sent_wm)
		return;
	sli_frame f = {.type = SLI_WATERMARK};
	f.u.watermark.handle = s->handle;
	f.u.watermark.hw = v;
	sli_conn_put_frame(c, &f);
	s->sent_wm = v;
}

SL_API void sl_storage_act_until(sl_storage *st, uint64_t monotonic_ms)
{
	if (st != NULL)
		atomic_store(&st->act_until, monotonic_ms);
}

SL_API int sl_storage_isr(sl_storage *st, char *buf, size_t len, uint64_t *version)
{
	if (st == NULL || buf == NULL || st->repl == NULL)
		return SL_EARG;
	struct sli_repl *r = st->repl;
	pthread_mutex_lock(&r->mu);
	if (r->version == 0)
		sli_storage_self(st, r->isr, sizeof(r->isr));
	size_t n = strlen(r->isr);
	int rc = n < len ? 0 : SL_EARG;
	if (rc == 0)
		memcpy(buf, r->isr, n + 1);
	if (version != NULL)
		*version = r->version;
	pthread_mutex_unlock(&r->mu);
	return rc;
}

SL_API int sl_storage_caught_up(sl_storage *st, const char *member)
{
	char key[160];
	if (st == NULL || member == NULL || st->repl == NULL ||
	    snprintf(key, sizeof(key), ",%s,", member) >= (int)sizeof(key))
		return 0;
	pthread_mutex_lock(&st->repl->mu);
	int yes = strstr(st->repl->caught, key) != NULL;
	pthread_mutex_unlock(&st->repl->mu);
	return yes;
}

SL_API int sl_storage_isr_recorded(sl_storage *st, const char *members)
{
	if (st == NULL || members == NULL || st->repl == NULL)
		return SL_EARG;
	char *copy = strdup(members);
	if (copy == NULL)
		return SL_ENOMEM;
	pthread_mutex_lock(&st->repl->mu);
	free(st->repl->recorded);
	st->repl->recorded = copy;
	pthread_mutex_unlock(&st->repl->mu);
	return 0;
}
