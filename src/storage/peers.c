/*
 * peers.c - at start, every process of a cluster greets every other one once, with a Hello
 * that carries its configuration fingerprint, so processes given different cluster lists or
 * source specs notice each other (both sides report it; the greeted side refuses the greeting
 * with SL_ECLUSTER).  Clients refuse a mixed cluster on their own (they compare the Cluster
 * answers); this makes the operator see it in the processes' logs too.  A peer that is not up
 * yet is tried again every second until it has been greeted, or the runtime closes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "storage/probe.h"
#include "storage/storage_int.h"

#define PEER_RETRY_MS 1000
#define PEER_IO_MS 3000

static void report(sl_storage *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(sl_storage *st, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	if (st->cfg.warn == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	st->cfg.warn(st->cfg.warn_arg, msg);
}

struct greeting {
	sl_storage *st;
	uint32_t peer;
};

static int greeted(const sli_frame *f, void *arg)
{
	struct greeting *g = arg;
	sl_storage *st = g->st;
	if (f->type == SLI_HELLO && f->u.hello.fingerprint != st->fingerprint)
		report(st, "process %u at %s has another cluster configuration (fingerprint %016llx, "
		       "ours %016llx): check --cluster and --source on every process", g->peer,
		       st->cluster[g->peer], (unsigned long long)f->u.hello.fingerprint,
		       (unsigned long long)st->fingerprint);
	else if (f->type == SLI_ERROR && (f->u.error.code == SL_ECLUSTER || f->u.error.code == SL_EAUTH))
		report(st, "process %u at %s refused us: %.*s", g->peer, st->cluster[g->peer],
		       (int)f->u.error.message.len, (const char *)f->u.error.message.ptr);
	return 1; /* its first answer says all */
}

static void *peers_thread(void *arg)
{
	sl_storage *st = arg;
	uint32_t left = st->cluster_size - 1;
	uint8_t done[256] = {0};
	done[st->process] = 1;
	while (left > 0 && !atomic_load(&st->peers_stop)) {
		for (uint32_t i = 0; i < st->cluster_size && i < sizeof(done); i++) {
			struct greeting g = {st, i};
			/* a process's entry may list its standbys after it ("A/S"): greet the primary */
			char primary[128];
			snprintf(primary, sizeof(primary), "%.*s", (int)strcspn(st->cluster[i], "/"),
			         st->cluster[i]);
			if (!done[i] && sli_probe(st->sec, primary, st->fingerprint, "sluiced peer check", NULL,
			                          PEER_IO_MS, greeted, &g)) {
				done[i] = 1;
				left--;
			}
		}
		if (left > 0)
			sli_nap(&st->peers_stop, PEER_RETRY_MS);
	}
	return NULL;
}

int sli_peers_start(sl_storage *st)
{
	/* A standby is not greeted and greets nobody: its primary did (it has its fingerprint). */
	if (st->cluster == NULL || st->cluster_size < 2 || st->peers_started || st->standby_of != NULL)
		return 0;
	int rc = pthread_create(&st->peers_tid, NULL, peers_thread, st);
	if (rc != 0)
		return -rc;
	st->peers_started = 1;
	return 0;
}

void sli_peers_stop(sl_storage *st)
{
	if (!st->peers_started)
		return;
	atomic_store(&st->peers_stop, 1);
	pthread_join(st->peers_tid, NULL);
	st->peers_started = 0;
}
