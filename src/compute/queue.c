/*
 * queue.c - a dataflow worker's event queue, and the worker-side view of its subscriptions.
 *
 * The runtime thread pushes items (a whole Data frame's events in one block, or a control
 * event); the worker pops them and splits Data items into events itself, folding Progress into
 * each subscription's frontier and counting consumed bytes for credit.  The list is unbounded in
 * code and bounded by credit in practice.  Pushing never waits for the worker: it takes the queue
 * mutex for a pointer swap, and writes the eventfd only when the queue turns non-empty.
 *
 * Threads: sli_queue_push runs on the runtime thread; everything else on the queue's worker.
 */
#include "compute/runtime.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* ---- reference counts ---- */

static void queue_unref(sl_queue *q)
{
	if (atomic_fetch_sub(&q->refs, 1) != 1)
		return;
	close(q->efd);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q->buckets);
	free(q);
}

void sli_csub_unref(sli_csub *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	sl_queue *q = s->q;
	sli_frontier_fini(&s->wok);
	sli_frontier_fini(&s->werr);
	sli_replay_fini(&s->rp[SL_OK]);
	sli_replay_fini(&s->rp[SL_ERR]);
	free(s);
	queue_unref(q);
}

/* ---- items ---- */

/* Large items (Data frames) are recycled instead of freed: they are allocated on the runtime
 * thread and freed on a worker's, and malloc would hand such memory back to the kernel and
 * fault fresh zeroed pages in for the next frame (a fifth of the time at full speed).  Items of
 * one size class, so any cached buffer fits any large frame of a serve turn (storage's quantum
 * is 64 KiB); bigger frames are plain allocations. */
#define QITEM_SMALL (16u << 10)
#define QITEM_CLASS (192u << 10)
#define QITEM_CACHE 32
static pthread_mutex_t qitem_cache_mu = PTHREAD_MUTEX_INITIALIZER;
static sli_qitem *qitem_cache[QITEM_CACHE];
static int qitem_cached;

sli_qitem *sli_qitem_new(int kind, sli_csub *sub, size_t len)
{
	size_t need = sizeof(sli_qitem) + len + 1, cap = need;
	sli_qitem *it = NULL;
	if (need > QITEM_SMALL && need <= QITEM_CLASS) {
		cap = QITEM_CLASS;
		pthread_mutex_lock(&qitem_cache_mu);
		if (qitem_cached > 0)
			it = qitem_cache[--qitem_cached];
		pthread_mutex_unlock(&qitem_cache_mu);
	}
	if (it == NULL && (it = malloc(cap)) == NULL)
		return NULL;
	memset(it, 0, sizeof(*it));
	it->cap = cap;
	it->kind = kind;
	it->sub = sub;
	it->len = len;
	it->data[len] = '\0';
	it->message = (const char *)it->data;
	return it;
}

/* Frees an item nobody will look at; a RELEASE carries the runtime's reference to its sub. */
void sli_qitem_discard(sli_qitem *it)
{
	if (it == NULL)
		return;
	if (it->kind == SLI_QI_RELEASE)
		sli_csub_unref(it->sub);
	if (it->cap == QITEM_CLASS) {
		pthread_mutex_lock(&qitem_cache_mu);
		if (qitem_cached < QITEM_CACHE) {
			qitem_cache[qitem_cached++] = it;
			it = NULL;
		}
		pthread_mutex_unlock(&qitem_cache_mu);
	}
	free(it);
}

void sli_queue_push(sl_queue *q, sli_qitem *it)
{
	pthread_mutex_lock(&q->mu);
	if (q->closed) {
		pthread_mutex_unlock(&q->mu);
		/* may free q itself: the lock is released first */
		sli_qitem_discard(it);
		return;
	}
	it->next = NULL;
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	if (!q->signaled) {
		uint64_t one = 1;
		ssize_t r = write(q->efd, &one, sizeof(one));
		(void)r;
		q->signaled = 1;
	}
	if (q->waiting)
		pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

/* ---- the id map (worker thread) ---- */

static size_t id_slot(const sl_queue *q, uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (q->bcap - 1);
}

static sli_csub *map_find(const sl_queue *q, uint64_t id)
{
	if (q->bcap == 0)
		return NULL;
	for (sli_csub *s = q->buckets[id_slot(q, id)]; s; s = s->qnext)
		if (s->id == id)
			return s;
	return NULL;
}

/* Makes room for one more entry, so that map_insert cannot fail. */
static int map_reserve(sl_queue *q)
{
	if (q->bcount + 1 <= q->bcap)
		return 0;
	size_t ncap = q->bcap ? q->bcap * 2 : 16;
	sli_csub **nb = calloc(ncap, sizeof(*nb));
	if (nb == NULL)
		return SL_ENOMEM;
	size_t ocap = q->bcap;
	sli_csub **ob = q->buckets;
	q->buckets = nb;
	q->bcap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		for (sli_csub *e = ob[i], *nx; e; e = nx) {
			nx = e->qnext;
			size_t k = id_slot(q, e->id);
			e->qnext = nb[k];
			nb[k] = e;
		}
	}
	free(ob);
	return 0;
}

static void map_insert(sl_queue *q, sli_csub *s)
{
	size_t k = id_slot(q, s->id);
	s->qnext = q->buckets[k];
	q->buckets[k] = s;
	q->bcount++;
}

static void map_remove(sl_queue *q, sli_csub *s)
{
	for (sli_csub **pp = &q->buckets[id_slot(q, s->id)]; *pp; pp = &(*pp)->qnext) {
		if (*pp == s) {
			*pp = s->qnext;
			q->bcount--;
			return;
		}
	}
}

/* The worker is done with s: no more events for it reach the user.  Drops the worker's
 * reference (s stays alive while the runtime holds its own). */
static void sub_end(sl_queue *q, sli_csub *s)
{
	s->wstate = SLI_SUB_ENDED;
	map_remove(q, s);
	sli_client_unregister(q->c, s);
	sli_csub_unref(s);
}

/* ---- public API ---- */

int sl_queue_open(sl_client *c, sl_queue **out)
{
	sl_queue *q;
	pthread_condattr_t ca;
	if (c == NULL || out == NULL)
		return SL_EARG;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return SL_ENOMEM;
	if ((q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		int rc = -errno;
		free(q);
		return rc;
	}
	q->c = c;
	atomic_init(&q->refs, 1);
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
	*out = q;
	return 0;
}

void sl_queue_close(sl_queue *q)
{
	if (q == NULL)
		return;
	/* Unsubscribe everything still live; the runtime releases each one later. */
	for (size_t i = 0; i < q->bcap; i++) {
		while (q->buckets[i]) {
			sli_csub *s = q->buckets[i];
			sli_cmd *cmd = calloc(1, sizeof(*cmd));
			if (cmd) {
				cmd->kind = SLI_CMD_UNSUB;
				cmd->sub = s;
				atomic_fetch_add(&s->refs, 1);
				sli_client_post(q->c, cmd);
			}
			sub_end(q, s);
		}
	}
	pthread_mutex_lock(&q->mu);
	q->closed = 1;
	sli_qitem *it = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->mu);
	while (it) {
		sli_qitem *nx = it->next;
		sli_qitem_discard(it);
		it = nx;
	}
	sli_qitem_discard(q->cur);
	q->cur = NULL;
	queue_unref(q);
}

int sl_queue_fd(const sl_queue *q)
{
	return q ? q->efd : SL_EARG;
}

int sl_subscribe(sl_queue *q, uint64_t dataflow, uint64_t source, uint32_t worker, uint64_t from,
                 sl_sub *out)
{
	sli_csub *s;
	int rc;
	if (q == NULL || out == NULL)
		return SL_EARG;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return SL_ENOMEM;
	s->dataflow = dataflow;
	s->source = source;
	s->worker = worker;
	s->proc = sli_worker_proc(q->c, worker);
	s->from = from;
	s->q = q;
	s->wstate = SLI_SUB_PENDING;
	s->rstate = SLI_R_NEW;
	s->frontier = 0;
	sli_frontier_init(&s->wok);
	sli_frontier_init(&s->werr);
	sli_replay_init(&s->rp[SL_OK]);
	sli_replay_init(&s->rp[SL_ERR]);
	atomic_init(&s->refs, 1); /* the worker's */
	atomic_fetch_add(&q->refs, 1);
	if ((rc = map_reserve(q)) != 0)
		goto err_free;
	if ((rc = sli_client_subscribe(q->c, s)) != 0)
		goto err_free;
	map_insert(q, s);
	out->id = s->id;
	return 0;
err_free:
	sli_csub_unref(s);
	return rc;
}

int sl_unsubscribe(sl_queue *q, sl_sub sub)
{
	sli_csub *s;
	sli_cmd *cmd;
	if (q == NULL)
		return SL_EARG;
	if ((s = map_find(q, sub.id)) == NULL)
		return SL_ENOTSUB;
	if ((cmd = calloc(1, sizeof(*cmd))) == NULL)
		return SL_ENOMEM;
	cmd->kind = SLI_CMD_UNSUB;
	cmd->sub = s;
	atomic_fetch_add(&s->refs, 1);
	sub_end(q, s);
	sli_client_post(q->c, cmd);
	return 0;
}

uint64_t sl_sub_frontier(const sl_queue *q, sl_sub sub)
{
	const sli_csub *s = q ? map_find(q, sub.id) : NULL;
	return s ? s->frontier : 0;
}

/* Pops the next item, waiting until deadline_ms (UINT64_MAX = forever, 0 = don't wait).  When
 * the list is empty the eventfd is drained, so the fd is readable exactly while items wait. */
static sli_qitem *pop(sl_queue *q, uint64_t deadline_ms)
{
	sli_qitem *it;
	pthread_mutex_lock(&q->mu);
	while ((it = q->head) == NULL) {
		if (q->signaled) {
			uint64_t v;
			ssize_t r = read(q->efd, &v, sizeof(v));
			(void)r;
			q->signaled = 0;
		}
		uint64_t now = sli_now_ms();
		if (deadline_ms == 0 || now >= deadline_ms)
			break;
		q->waiting = 1;
		if (deadline_ms == UINT64_MAX) {
			pthread_cond_wait(&q->cv, &q->mu);
		} else {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			uint64_t left = deadline_ms - now;
			ts.tv_sec += (time_t)(left / 1000);
			ts.tv_nsec += (long)(left % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&q->cv, &q->mu, &ts);
		}
		q->waiting = 0;
	}
	if (it) {
		q->head = it->next;
		if (q->head == NULL)
			q->tail = NULL;
	}
	pthread_mutex_unlock(&q->mu);
	return it;
}

static int queue_is_empty(sl_queue *q)
{
	pthread_mutex_lock(&q->mu);
	int empty = q->head == NULL;
	pthread_mutex_unlock(&q->mu);
	return empty;
}

static void grant(sl_queue *q, sli_csub *s)
{
	sli_cmd *cmd = calloc(1, sizeof(*cmd));
	if (cmd == NULL)
		return; /* retried at the next event: ungranted keeps growing */
	cmd->kind = SLI_CMD_CREDIT;
	cmd->sub = s;
	cmd->bytes = s->ungranted;
	cmd->gen = s->wgen;
	atomic_fetch_add(&s->refs, 1);
	s->ungranted = 0;
	sli_client_post(q->c, cmd);
}

static void fill_common(sl_event *ev, const sli_csub *s)
{
	ev->sub.id = s->id;
	ev->dataflow = s->dataflow;
	ev->source = s->source;
	ev->worker = s->worker;
	ev->frontier = s->frontier;
}

/* The next event of the current Data item, or 0 when it has none left to give. */
static int next_data_event(sl_queue *q, sl_event *ev)
{
	sli_csub *s = q->cur->sub;
	sli_event se;
	if (s->wstate == SLI_SUB_ENDED || sli_events_next(&q->rest, &se) != 1) {
		q->rest.len = 0; /* unsubscribed: drop the rest unseen and ungranted */
		return 0;
	}
	if (q->cur->gen != s->wgen || s->window == 0) {
		/* a new connection: what was consumed of the old one is owed to nobody, and the
		 * window starts again where Subscribe put it */
		s->wgen = q->cur->gen;
		s->ungranted = 0;
		s->window = q->c->cfg.window;
	}
	memset(ev, 0, sizeof(*ev));
	ev->collection = (sl_collection)q->cur->collection;
	ev->count = se.count;
	ev->body = se.body;
	if (se.tag == SLI_EV_MESSAGES) {
		ev->kind = SL_EV_MESSAGES;
		ev->time = se.time;
	} else {
		sli_frontier *f = ev->collection == SL_OK ? &s->wok : &s->werr;
		sl_bytes rest = se.body;
		uint64_t t;
		int64_t d;
		ev->kind = SL_EV_PROGRESS;
		while (sli_changes_next(&rest, &t, &d) == 1)
			sli_frontier_update(f, t, d);
		uint64_t a = sli_frontier_get(&s->wok), b = sli_frontier_get(&s->werr);
		s->frontier = a < b ? a : b;
	}
	fill_common(ev, s);
	s->ungranted += se.size;
	if (s->ungranted >= s->window / 4) {
		/* A worker that has consumed everything delivered is waiting on the credit round
		 * trip: let storage run further ahead (doubling, up to window_max).  A worker that
		 * falls behind never grows its window, so what it can be owed stays bounded. */
		if (s->window < q->c->window_max && q->rest.len == 0 && queue_is_empty(q)) {
			s->ungranted += s->window;
			s->window *= 2;
		}
		grant(q, s);
	}
	return 1;
}

int sl_queue_next(sl_queue *q, sl_event *ev, int timeout_ms)
{
	uint64_t deadline;
	if (q == NULL || ev == NULL)
		return SL_EARG;
	if (timeout_ms < 0)
		deadline = UINT64_MAX;
	else if (timeout_ms == 0)
		deadline = 0;
	else
		deadline = sli_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		if (q->cur && q->cur->kind == SLI_QI_DATA && q->rest.len > 0 && next_data_event(q, ev))
			return 1;
		/* everything the previous event pointed into goes now */
		sli_qitem_discard(q->cur);
		q->cur = NULL;
		sli_qitem *it = pop(q, deadline);
		if (it == NULL)
			return 0;
		sli_csub *s = it->sub;
		switch (it->kind) {
		case SLI_QI_DATA:
			q->cur = it;
			q->rest.ptr = it->data;
			q->rest.len = it->len;
			continue;
		case SLI_QI_RELEASE:
			sli_qitem_discard(it);
			continue;
		case SLI_QI_SUBSCRIBED:
			q->cur = it;
			if (s->wstate == SLI_SUB_ENDED)
				continue;
			s->wstate = SLI_SUB_LIVE;
			memset(ev, 0, sizeof(*ev));
			ev->kind = SL_EV_SUBSCRIBED;
			ev->since = it->since;
			ev->upper = it->upper;
			fill_common(ev, s);
			return 1;
		case SLI_QI_SUBERR:
			q->cur = it;
			if (s->wstate == SLI_SUB_ENDED)
				continue;
			memset(ev, 0, sizeof(*ev));
			ev->kind = SL_EV_SUBSCRIBE_ERROR;
			ev->code = it->code;
			ev->message = it->message;
			fill_common(ev, s);
			sub_end(q, s);
			return 1;
		case SLI_QI_RECONNECTED:
			q->cur = it;
			memset(ev, 0, sizeof(*ev));
			ev->kind = SL_EV_RECONNECTED;
			ev->session = it->since;
			ev->epoch = it->upper;
			return 1;
		case SLI_QI_WATERMARK:
			q->cur = it;
			if (s->wstate == SLI_SUB_ENDED)
				continue;
			memset(ev, 0, sizeof(*ev));
			ev->kind = SL_EV_WATERMARK;
			ev->upper = it->upper;
			fill_common(ev, s);
			return 1;
		case SLI_QI_RESNAPSHOT:
			q->cur = it;
			if (s->wstate == SLI_SUB_ENDED)
				continue;
			memset(ev, 0, sizeof(*ev));
			ev->kind = SL_EV_RESNAPSHOT;
			ev->since = it->since;
			ev->upper = it->upper;
			fill_common(ev, s);
			return 1;
		case SLI_QI_DISCONNECTED:
			q->cur = it;
			for (size_t i = 0; i < q->bcap; i++)
				while (q->buckets[i])
					/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): sub_end unlinks it from the bucket (map_remove) before its reference goes */
					sub_end(q, q->buckets[i]);
			memset(ev, 0, sizeof(*ev));
			ev->kind = SL_EV_DISCONNECTED;
			ev->code = it->code;
			ev->message = it->message;
			return 1;
		default:
			free(it);
			continue;
		}
	}
}
