/*
 * producer.c - the producer: updates gathered into batches, each batch posted to the runtime
 * thread when it is cut (one part per owning process) without waiting for the answers of the
 * batches before it, and the answers handed back in batch order, within a bounded window.
 *
 * The caller's thread owns the open batch (one buffer of encoded Append frames per process, so
 * a row is copied once, where it is sent from), cutting, and taking completions.  The runtime
 * thread only files each part's answer into its batch's slot (sli_producer_answer, under p->mu)
 * and wakes the caller (p->cv, and the eventfd behind sl_producer_fd).  Lifetime: one reference
 * for the caller until sl_producer_close, one per part posted and not yet answered (ingest.c's
 * FIFO holds it while the part is on the wire), so the runtime never touches freed memory.
 */
#include "compute/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define FRAME_CHUNK (1u << 20) /* update bytes per Append frame, as sl_client_append */
#define INFLIGHT_MAX 1024u
#define BYTES_MIN (64u << 10)
#define MSG_MAX 256

/* A batch cut and not yet taken: its answer as the parts come in. */
typedef struct slot {
	uint64_t batch; /* 0: never used */
	uint64_t rows, bytes;
	uint32_t parts_left, parts_ok, failed_proc;
	int rc;
	uint64_t time;
	char msg[MSG_MAX];
} slot;

/* One process's part of the open batch: Append frames, the last one still open. */
typedef struct part {
	sli_buf b;
	ssize_t frame; /* offset of the open frame, -1: none */
	uint32_t count;
	size_t bytes;
} part;

struct sl_producer {
	sl_client *c;
	uint64_t source;
	sl_producer_config cfg;
	atomic_int refs;
	uint32_t P, W;
	int efd, tfd, pfd; /* completions (eventfd), linger (timerfd), both (epoll: the public fd) */
	/* the caller's thread */
	part *parts; /* [P] */
	uint64_t open_rows, open_bytes, open_since;
	uint64_t cut, taken; /* batches cut; completions taken */
	char msg[MSG_MAX];   /* the message of the completion taken last */
	/* mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t answered; /* batches whose every part is answered */
	int failed;        /* a batch was answered with an error */
	uint64_t flight_bytes; /* bytes of the batches cut and not yet answered */
	slot *slots;       /* [nslots]: batch b in slots[(b - 1) % nslots] */
	uint32_t nslots;   /* 2 x inflight: the window, and as many answered and not yet taken */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void abs_ms(struct timespec *ts, uint64_t at_ms)
{
	ts->tv_sec = (time_t)(at_ms / 1000u);
	ts->tv_nsec = (long)(at_ms % 1000u) * 1000000L;
}

static void producer_free(sl_producer *p)
{
	if (p->pfd >= 0)
		close(p->pfd);
	if (p->efd >= 0)
		close(p->efd);
	if (p->tfd >= 0)
		close(p->tfd);
	if (p->parts)
		for (uint32_t i = 0; i < p->P; i++)
			sli_buf_fini(&p->parts[i].b);
	free(p->parts);
	free(p->slots);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

static void producer_unref(sl_producer *p)
{
	if (atomic_fetch_sub(&p->refs, 1) == 1)
		producer_free(p);
}

void sl_producer_config_init(sl_producer_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->batch_rows = 65536;
	cfg->batch_bytes = 8u << 20;
	cfg->linger_ms = 10;
	cfg->inflight = 8;
	cfg->timeout_ms = 30000;
	cfg->inflight_bytes = 32u << 20;
}

static int open_fds(sl_producer *p)
{
	struct epoll_event ev = {.events = EPOLLIN};
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	p->pfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->efd < 0 || p->tfd < 0 || p->pfd < 0)
		return -errno;
	ev.data.fd = p->efd;
	if (epoll_ctl(p->pfd, EPOLL_CTL_ADD, p->efd, &ev) != 0)
		return -errno;
	ev.data.fd = p->tfd;
	if (epoll_ctl(p->pfd, EPOLL_CTL_ADD, p->tfd, &ev) != 0)
		return -errno;
	return 0;
}

int sl_producer_open(sl_client *c, uint64_t source, const sl_producer_config *cfg,
                     sl_producer **out)
{
	sl_producer_config d;
	pthread_condattr_t ca;
	sl_producer *p;
	int rc;
	if (c == NULL || out == NULL || (cfg && cfg->inflight > INFLIGHT_MAX))
		return SL_EARG;
	sl_producer_config_init(&d);
	if (cfg) {
		d.batch_rows = cfg->batch_rows ? cfg->batch_rows : d.batch_rows;
		d.batch_bytes = cfg->batch_bytes ? cfg->batch_bytes : d.batch_bytes;
		d.linger_ms = cfg->linger_ms ? cfg->linger_ms : d.linger_ms;
		d.inflight = cfg->inflight ? cfg->inflight : d.inflight;
		d.nonblocking = cfg->nonblocking;
		d.stop_on_error = cfg->stop_on_error;
		d.timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : d.timeout_ms;
		d.inflight_bytes = cfg->inflight_bytes ? cfg->inflight_bytes : d.inflight_bytes;
	}
	if (d.batch_bytes < BYTES_MIN)
		d.batch_bytes = BYTES_MIN;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return SL_ENOMEM;
	p->c = c;
	p->source = source;
	p->cfg = d;
	atomic_init(&p->refs, 1);
	p->P = c->nconns;
	p->W = 1;
	p->efd = p->tfd = p->pfd = -1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	p->nslots = 2 * d.inflight;
	p->parts = calloc(p->P, sizeof(*p->parts));
	p->slots = calloc(p->nslots, sizeof(*p->slots));
	if (p->parts == NULL || p->slots == NULL) {
		producer_free(p);
		return SL_ENOMEM;
	}
	for (uint32_t i = 0; i < p->P; i++)
		p->parts[i].frame = -1;
	if ((rc = open_fds(p)) != 0 ||
	    (p->P > 1 && (rc = sli_source_workers(c, source, d.timeout_ms, &p->W)) != 0)) {
		producer_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

static void set_timer(sl_producer *p, uint32_t ms)
{
	struct itimerspec its;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = ms / 1000u;
	its.it_value.tv_nsec = (long)(ms % 1000u) * 1000000L;
	timerfd_settime(p->tfd, 0, &its, NULL); /* disarms for ms 0 */
}

static void drain_fd(int fd)
{
	uint64_t v;
	while (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
}

/* The open batch should be cut before anything else goes into it. */
static int due(const sl_producer *p, uint64_t now)
{
	return p->open_rows > 0 &&
	       (p->open_rows >= p->cfg.batch_rows || p->open_bytes >= p->cfg.batch_bytes ||
	        now - p->open_since >= p->cfg.linger_ms);
}

/* Room to cut one more batch: 0, SL_EAGAIN, SL_ETIMEDOUT. */
static int room(sl_producer *p, int may_wait)
{
	int rc = 0;
	if (p->cut - p->taken >= p->nslots)
		return SL_EAGAIN; /* only the caller can make room: waiting would never end */
	uint64_t deadline = p->cfg.timeout_ms >= 0 ? now_ms() + (uint64_t)p->cfg.timeout_ms : 0;
	pthread_mutex_lock(&p->mu);
	while (!(p->failed && p->cfg.stop_on_error) &&
	       (p->cut - p->answered >= p->cfg.inflight ||
	        (p->cut > p->answered &&
	         p->flight_bytes + p->open_bytes > p->cfg.inflight_bytes))) {
		if (!may_wait || p->cfg.nonblocking) {
			rc = SL_EAGAIN;
			break;
		}
		if (p->cfg.timeout_ms < 0) {
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		struct timespec ts;
		abs_ms(&ts, deadline);
		if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT) {
			rc = SL_ETIMEDOUT;
			break;
		}
	}
	if (p->failed && p->cfg.stop_on_error)
		rc = SL_EREJECTED;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* Cuts the open batch (if any) and posts its parts. */
static int cut(sl_producer *p, int may_wait)
{
	sl_client *c = p->c;
	sli_cmd **cmds;
	uint32_t nparts = 0;
	int rc;
	if (p->open_rows == 0)
		return 0;
	if ((rc = room(p, may_wait)) != 0)
		return rc;
	if ((cmds = calloc(p->P, sizeof(*cmds))) == NULL)
		return SL_ENOMEM;
	for (uint32_t i = 0; i < p->P; i++) {
		if (p->parts[i].frame >= 0 && (cmds[i] = calloc(1, sizeof(*cmds[i]))) == NULL) {
			for (uint32_t j = 0; j < i; j++)
				free(cmds[j]);
			free(cmds);
			return SL_ENOMEM;
		}
	}
	uint64_t batch = p->cut + 1;
	for (uint32_t i = 0; i < p->P; i++) {
		part *t = &p->parts[i];
		if (cmds[i] == NULL)
			continue;
		sli_append_end(&t->b, (size_t)t->frame, t->count);
		sli_append_set_last(&t->b, (size_t)t->frame);
		cmds[i]->kind = SLI_CMD_APPEND;
		cmds[i]->seq = batch;
		cmds[i]->proc = i;
		cmds[i]->frames = t->b; /* moved: the runtime copies it out and frees it */
		cmds[i]->producer = p;
		sli_buf_init(&t->b);
		t->frame = -1;
		nparts++;
	}
	pthread_mutex_lock(&p->mu);
	slot *s = &p->slots[(batch - 1) % p->nslots];
	memset(s, 0, sizeof(*s));
	s->batch = batch;
	s->rows = p->open_rows;
	s->bytes = p->open_bytes;
	p->flight_bytes += p->open_bytes;
	s->parts_left = nparts;
	pthread_mutex_unlock(&p->mu);
	atomic_fetch_add(&p->refs, (int)nparts);
	p->cut = batch;
	p->open_rows = p->open_bytes = 0;
	set_timer(p, 0);
	pthread_mutex_lock(&c->mu);
	for (uint32_t i = 0; i < p->P; i++)
		if (cmds[i])
			sli_cmds_append_locked(c, cmds[i]);
	pthread_mutex_unlock(&c->mu);
	sli_loop_wake(c->loop);
	free(cmds);
	return 0;
}

/* Adds one update to the open batch (its process's part). */
static int add(sl_producer *p, int64_t diff, sl_bytes row)
{
	uint32_t proc = p->P > 1 ? sl_ingest_route(row, p->W) % p->P : 0;
	part *t = &p->parts[proc];
	size_t ub = SLI_UPDATE_HDR + row.len;
	if (t->frame >= 0 && t->bytes + ub > FRAME_CHUNK) {
		sli_append_end(&t->b, (size_t)t->frame, t->count);
		t->frame = -1;
	}
	if (t->frame < 0) {
		/* one allocation per batch: the part's share of the batch, and a frame header per
		 * chunk (doubling covers an uneven split) */
		if (t->b.len == 0) {
			size_t want = (size_t)(p->cfg.batch_bytes / p->P) + SL_ROW_MAX + 64 +
			              (size_t)(p->cfg.batch_bytes / FRAME_CHUNK + 1) * 32;
			if (sli_buf_reserve(&t->b, want) != 0)
				return SL_ENOMEM;
		}
		ssize_t off = sli_append_begin(&t->b, p->cut + 1, p->source, 0);
		if (off < 0)
			return SL_ENOMEM;
		t->frame = off;
		t->count = 0;
		t->bytes = 0;
	}
	if (sli_put_update(&t->b, diff, row) != 0)
		return SL_ENOMEM;
	t->count++;
	t->bytes += ub;
	if (p->open_rows++ == 0) {
		p->open_since = now_ms();
		set_timer(p, p->cfg.linger_ms);
	}
	p->open_bytes += ub;
	return 0;
}

int sl_producer_append(sl_producer *p, int64_t diff, sl_bytes row, uint64_t *batch)
{
	int rc;
	if (p == NULL || (row.ptr == NULL && row.len > 0))
		return SL_EARG;
	if (row.len > SL_ROW_MAX)
		return SL_ETOOBIG;
	if (p->open_rows > 0 &&
	    (due(p, now_ms()) || p->open_bytes + SLI_UPDATE_HDR + row.len > p->cfg.batch_bytes) &&
	    (rc = cut(p, 1)) != 0)
		return rc;
	if ((rc = add(p, diff, row)) != 0)
		return rc;
	if (batch)
		*batch = p->cut + 1;
	if (p->open_rows >= p->cfg.batch_rows || p->open_bytes >= p->cfg.batch_bytes)
		(void)cut(p, 0); /* no room now: the next call cuts it */
	return 0;
}

int sl_producer_flush(sl_producer *p)
{
	if (p == NULL)
		return SL_EARG;
	return cut(p, 1);
}

static long long drop_open(sl_producer *p)
{
	long long n = (long long)p->open_rows;
	for (uint32_t i = 0; i < p->P; i++) {
		p->parts[i].b.len = 0;
		p->parts[i].frame = -1;
	}
	p->open_rows = p->open_bytes = 0;
	set_timer(p, 0);
	return n;
}

long long sl_producer_discard(sl_producer *p)
{
	if (p == NULL)
		return SL_EARG;
	if (due(p, now_ms())) {
		int rc = cut(p, 1);
		return rc;
	}
	return drop_open(p);
}

/* Fills out from the oldest slot (answered; p->mu held). */
static void take(sl_producer *p, const slot *s, sl_completion *out)
{
	out->batch = s->batch;
	out->rows = s->rows;
	out->time = s->rc == 0 ? s->time : 0;
	out->code = s->rc;
	p->msg[0] = '\0';
	if (s->rc != 0 && p->P == 1)
		snprintf(p->msg, sizeof(p->msg), "%s", s->msg);
	else if (s->rc != 0 && s->parts_ok == 0)
		snprintf(p->msg, sizeof(p->msg), "storage process %u: %s (no process committed its "
		         "part)", s->failed_proc, s->msg);
	else if (s->rc != 0) {
		out->code = SL_EREJECTED;
		snprintf(p->msg, sizeof(p->msg), "storage process %u: %s; the parts of %u other "
		         "processes were committed", s->failed_proc, s->msg, s->parts_ok);
	}
	out->message = p->msg;
	p->taken++;
}

int sl_producer_next(sl_producer *p, sl_completion *out, int timeout_ms)
{
	uint64_t deadline = timeout_ms > 0 ? now_ms() + (uint64_t)timeout_ms : 0;
	if (p == NULL || out == NULL)
		return SL_EARG;
	for (;;) {
		uint64_t now = now_ms();
		if (due(p, now))
			(void)cut(p, 0); /* no room: an answer makes some, and wakes us */
		pthread_mutex_lock(&p->mu);
		if (p->taken < p->cut) {
			const slot *s = &p->slots[p->taken % p->nslots];
			if (s->parts_left == 0) {
				take(p, s, out);
				pthread_mutex_unlock(&p->mu);
				return 1;
			}
		}
		/* nothing to take: the fd stops polling readable until an answer or the linger */
		drain_fd(p->efd);
		drain_fd(p->tfd);
		if ((p->taken == p->cut && p->open_rows == 0) || timeout_ms == 0 ||
		    (timeout_ms > 0 && now >= deadline)) {
			pthread_mutex_unlock(&p->mu);
			return 0;
		}
		uint64_t until = timeout_ms > 0 ? deadline : UINT64_MAX;
		if (p->open_rows > 0 && p->cut - p->answered < p->cfg.inflight &&
		    p->cut - p->taken < p->nslots && p->open_since + p->cfg.linger_ms < until)
			until = p->open_since + p->cfg.linger_ms;
		if (until == UINT64_MAX) {
			pthread_cond_wait(&p->cv, &p->mu);
		} else {
			struct timespec ts;
			abs_ms(&ts, until);
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		}
		pthread_mutex_unlock(&p->mu);
	}
}

int sl_producer_pending(const sl_producer *p, uint64_t *cut_out, uint64_t *open_rows)
{
	if (p == NULL)
		return SL_EARG;
	if (cut_out)
		*cut_out = p->cut - p->taken;
	if (open_rows)
		*open_rows = p->open_rows;
	return 0;
}

int sl_producer_fd(const sl_producer *p)
{
	return p == NULL ? SL_EARG : p->pfd;
}

void sl_producer_close(sl_producer *p)
{
	if (p == NULL)
		return;
	(void)drop_open(p);
	producer_unref(p);
}

void sli_producer_answer(sl_producer *p, uint32_t proc, uint64_t batch, int rc, uint64_t time,
                         sl_bytes msg)
{
	pthread_mutex_lock(&p->mu);
	slot *s = &p->slots[(batch - 1) % p->nslots];
	if (s->batch == batch && s->parts_left > 0) {
		if (rc == 0) {
			s->parts_ok++;
			if (time > s->time)
				s->time = time;
		} else if (s->rc == 0) {
			p->failed = 1;
			s->rc = rc;
			s->failed_proc = proc;
			snprintf(s->msg, sizeof(s->msg), "%.*s", (int)(msg.len < MSG_MAX ? msg.len : MSG_MAX),
			         msg.ptr ? (const char *)msg.ptr : "");
			if (s->msg[0] == '\0')
				snprintf(s->msg, sizeof(s->msg), "%s", sl_strerror(rc));
		}
		if (--s->parts_left == 0) {
			uint64_t one = 1;
			p->answered++;
			p->flight_bytes -= s->bytes;
			if (write(p->efd, &one, sizeof(one)) < 0) {
				/* the counter is far from full: cannot happen */
			}
			pthread_cond_broadcast(&p->cv);
		}
	}
	pthread_mutex_unlock(&p->mu);
	producer_unref(p);
}
