/*
 * loop.c - the epoll event loop declared in loop.h.
 *
 * Handlers live in a table indexed by fd, so dispatch is one array lookup.  Cross-thread wakes
 * go through one eventfd; the periodic tick through one timerfd.  Deleting an fd from inside
 * any callback is safe: a handler whose slot was cleared is skipped for the rest of the batch.
 */
#include "net/loop.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "sluice/sluice.h"

#define LOOP_MAX_EVENTS 256

struct handler {
	sli_io_fn fn;
	void *arg;
	uint32_t gen; /* bumped on every add/del so stale epoll events are recognised */
	int live;
};

struct sli_loop {
	int epfd;
	int wakefd;
	int tickfd;
	struct handler *h;
	size_t nh;
	sli_loop_fn on_wake, on_tick, on_idle;
	void *wake_arg, *tick_arg, *idle_arg;
	atomic_int stopping;
	atomic_int wake_pending;
};

uint64_t sli_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint32_t to_epoll(uint32_t ev)
{
	uint32_t e = 0;
	if (ev & SLI_READ)
		e |= EPOLLIN;
	if (ev & SLI_WRITE)
		e |= EPOLLOUT;
	return e;
}

static int grow(sli_loop *l, int fd)
{
	if ((size_t)fd < l->nh)
		return 0;
	size_t n = l->nh ? l->nh : 64;
	while (n <= (size_t)fd)
		n *= 2;
	struct handler *h = realloc(l->h, n * sizeof(*h));
	if (h == NULL)
		return SL_ENOMEM;
	memset(h + l->nh, 0, (n - l->nh) * sizeof(*h));
	l->h = h;
	l->nh = n;
	return 0;
}

int sli_loop_new(sli_loop **out)
{
	sli_loop *l = calloc(1, sizeof(*l));
	int rc;
	if (l == NULL)
		return SL_ENOMEM;
	l->wakefd = l->tickfd = -1;
	if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		rc = -errno;
		goto err_free;
	}
	if ((l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		rc = -errno;
		goto err_close;
	}
	if ((l->tickfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0) {
		rc = -errno;
		goto err_close;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)(uint32_t)l->wakefd};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) < 0) {
		rc = -errno;
		goto err_close;
	}
	ev.data.u64 = (uint64_t)(uint32_t)l->tickfd;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->tickfd, &ev) < 0) {
		rc = -errno;
		goto err_close;
	}
	*out = l;
	return 0;
err_close:
	if (l->tickfd >= 0)
		close(l->tickfd);
	if (l->wakefd >= 0)
		close(l->wakefd);
	close(l->epfd);
err_free:
	free(l);
	return rc;
}

void sli_loop_free(sli_loop *l)
{
	if (l == NULL)
		return;
	close(l->epfd);
	close(l->wakefd);
	close(l->tickfd);
	free(l->h);
	free(l);
}

int sli_loop_add(sli_loop *l, int fd, uint32_t events, sli_io_fn fn, void *arg)
{
	int rc;
	if (fd < 0)
		return SL_EARG;
	if ((rc = grow(l, fd)) != 0)
		return rc;
	struct handler *h = &l->h[fd];
	h->gen++;
	struct epoll_event ev = {.events = to_epoll(events),
	                         .data.u64 = (uint64_t)(uint32_t)fd | ((uint64_t)h->gen << 32)};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	h->fn = fn;
	h->arg = arg;
	h->live = 1;
	return 0;
}

int sli_loop_mod(sli_loop *l, int fd, uint32_t events)
{
	if (fd < 0 || (size_t)fd >= l->nh || !l->h[fd].live)
		return SL_EARG;
	struct epoll_event ev = {.events = to_epoll(events),
	                         .data.u64 = (uint64_t)(uint32_t)fd | ((uint64_t)l->h[fd].gen << 32)};
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

void sli_loop_del(sli_loop *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->nh || !l->h[fd].live)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	l->h[fd].live = 0;
	l->h[fd].gen++;
	l->h[fd].fn = NULL;
	l->h[fd].arg = NULL;
}

void sli_loop_on_wake(sli_loop *l, sli_loop_fn fn, void *arg)
{
	l->on_wake = fn;
	l->wake_arg = arg;
}

void sli_loop_on_tick(sli_loop *l, uint32_t interval_ms, sli_loop_fn fn, void *arg)
{
	l->on_tick = fn;
	l->tick_arg = arg;
	struct itimerspec its = {0};
	if (interval_ms > 0) {
		its.it_interval.tv_sec = interval_ms / 1000;
		its.it_interval.tv_nsec = (long)(interval_ms % 1000) * 1000000L;
		its.it_value = its.it_interval;
	}
	timerfd_settime(l->tickfd, 0, &its, NULL);
}

void sli_loop_on_idle(sli_loop *l, sli_loop_fn fn, void *arg)
{
	l->on_idle = fn;
	l->idle_arg = arg;
}

void sli_loop_wake(sli_loop *l)
{
	/* Many wakes between two loop iterations cost one write. */
	if (atomic_exchange(&l->wake_pending, 1) == 0) {
		uint64_t one = 1;
		ssize_t r = write(l->wakefd, &one, sizeof(one));
		(void)r;
	}
}

void sli_loop_stop(sli_loop *l)
{
	atomic_store(&l->stopping, 1);
	uint64_t one = 1;
	ssize_t r = write(l->wakefd, &one, sizeof(one));
	(void)r;
}

int sli_loop_run(sli_loop *l)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	while (!atomic_load(&l->stopping)) {
		int n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			int fd = (int)(uint32_t)evs[i].data.u64;
			uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
			if (fd == l->wakefd) {
				uint64_t v;
				ssize_t r = read(l->wakefd, &v, sizeof(v));
				(void)r;
				atomic_store(&l->wake_pending, 0);
				if (l->on_wake)
					l->on_wake(l, l->wake_arg);
				continue;
			}
			if (fd == l->tickfd) {
				uint64_t v;
				ssize_t r = read(l->tickfd, &v, sizeof(v));
				(void)r;
				if (l->on_tick)
					l->on_tick(l, l->tick_arg);
				continue;
			}
			if ((size_t)fd >= l->nh || !l->h[fd].live || l->h[fd].gen != gen)
				continue;
			uint32_t ready = 0;
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP))
				ready |= SLI_READ;
			if (evs[i].events & EPOLLOUT)
				ready |= SLI_WRITE;
			if (evs[i].events & (EPOLLERR | EPOLLHUP))
				ready |= SLI_HUP | SLI_READ;
			l->h[fd].fn(l, fd, ready, l->h[fd].arg);
		}
		if (l->on_idle)
			l->on_idle(l, l->idle_arg);
	}
	return 0;
}
