/*
 * runner.c - the runner every built-in source shares: one optional thread, a stop flag and an
 * interruptible sleep on it, and the state of the kind, freed once the thread was joined.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sources/sources.h"

uint64_t sli_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

sli_source_runner *sli_runner_new(sl_source *src)
{
	sli_source_runner *r;
	pthread_condattr_t ca;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->src = src;
	atomic_init(&r->stopping, 0);
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	return r;
}

int sli_runner_start(sl_source *src, const char *name, void *state, void (*free_state)(void *),
                     void *(*fn)(void *), sli_source_runner **out, char *err, size_t errlen)
{
	sli_source_runner *r = sli_runner_new(src);
	int rc;

	if (r == NULL) {
		free_state(state);
		snprintf(err, errlen, "source '%s': out of memory", name);
		return SL_ENOMEM;
	}
	r->state = state;
	r->free_state = free_state;
	if ((rc = sli_runner_spawn(r, fn)) != 0) {
		snprintf(err, errlen, "source '%s': cannot start its thread: %s", name, sl_strerror(rc));
		sli_source_stop(r); /* frees the state */
		return rc;
	}
	*out = r;
	return 0;
}

int sli_runner_spawn(sli_source_runner *r, void *(*fn)(void *))
{
	int rc = pthread_create(&r->thread, NULL, fn, r);

	if (rc != 0)
		return -rc;
	r->has_thread = 1;
	return 0;
}

int sli_runner_sleep(sli_source_runner *r, uint64_t ns)
{
	struct timespec ts;
	uint64_t deadline = sli_now_ns() + ns;
	int stopping;

	ts.tv_sec = (time_t)(deadline / 1000000000u);
	ts.tv_nsec = (long)(deadline % 1000000000u);
	pthread_mutex_lock(&r->mu);
	while (!(stopping = atomic_load(&r->stopping))) {
		if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&r->mu);
	return stopping;
}

void sli_source_stop(sli_source_runner *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	atomic_store(&r->stopping, 1);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	if (r->has_thread)
		pthread_join(r->thread, NULL);
	if (r->free_state != NULL)
		r->free_state(r->state);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

sl_source *sli_source_handle(const sli_source_runner *r)
{
	return r->src;
}

int sli_source_retryable(int rc)
{
	return rc == -ENOSPC || rc == -EDQUOT || rc == -EIO || rc == SL_EIO;
}

int sli_runner_backoff(sli_source_runner *r, uint64_t *backoff_ns)
{
	/* 100 ms, doubling to 5 s: quick to resume, cheap while the disk stays full. */
	*backoff_ns = *backoff_ns == 0 ? 100000000u : *backoff_ns * 2;
	if (*backoff_ns > 5000000000u)
		*backoff_ns = 5000000000u;
	return sli_runner_sleep(r, *backoff_ns);
}
