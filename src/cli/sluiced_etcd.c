/*
 * sluiced_etcd.c - sluiced --etcd: this process is one candidate of its --cluster entry; etcd
 * decides who leads (src/failover/candidate.c).  Until it leads it is a standby of the leader
 * and runs no source; once it leads it starts its --source specs on the sources it followed
 * (each continues from its replicated upper).  When the candidate ends (its leadership lost,
 * or a new leader to follow) sluiced stops with status 75, to be restarted by its supervisor:
 * it then rejoins from its data directory.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/sluiced.h"
#include "common/log.h"
#include "failover/candidate.h"

int sluiced_etcd_check(const sluiced_etcd *e, const char *entry)
{
	size_t n = strlen(e->self);
	for (const char *p = entry;;) {
		size_t len = strcspn(p, "/");
		if (len == n && strncmp(p, e->self, n) == 0)
			return 0;
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
	fprintf(stderr, "sluiced: --listen %s is not an address of process %u's entry '%s' in "
	        "--cluster: with --etcd every candidate listens on its own address of the entry "
	        "(see sluiced --help)\n", e->self, e->process, entry);
	return 2;
}

static int on_lead(void *arg, uint64_t term)
{
	sluiced_etcd *e = arg;
	char err[512];
	(void)term;
	/* A source that cannot continue here (a file or postgres source finds no read position for
	 * the upper it replicated: those are not carried to standbys yet) says so and stays at its
	 * upper; the others go on, so one such source does not take the whole process down. */
	for (size_t i = 0; i < e->nspecs; i++)
		if (sli_source_start(e->cand_storage, e->specs[i], &e->runners[i], err, sizeof(err)) != 0)
			sli_elog(SLI_LOG_ERROR, "source_failed", NULL, "%s", err);
	return 0;
}

static void on_yield(void *arg)
{
	sluiced_etcd *e = arg;
	for (size_t i = 0; i < e->nspecs; i++) {
		sli_source_stop(e->runners[i]);
		e->runners[i] = NULL;
	}
}

static void on_stop(void *arg, const char *why)
{
	sluiced_etcd *e = arg;
	sli_elog(SLI_LOG_ERROR, "candidate_stopped", NULL, "%s", why);
	e->exit_status = 75;
	kill(getpid(), SIGTERM);
}

int sluiced_etcd_start(sluiced_etcd *e, sl_storage *st)
{
	char id[32];
	uint64_t h = 1469598103934665603ull;
	for (const char *p = e->cluster; *p; p++) {
		h ^= (uint8_t)*p;
		h *= 1099511628211ull;
	}
	snprintf(id, sizeof(id), "c%016llx", (unsigned long long)h);
	e->cand_storage = st;
	sli_candidate_config cfg = {.endpoints = e->endpoints, .cluster_id = id,
	                            .process = e->process, .self = e->self,
	                            .lease_ms = e->lease_ms, .on_lead = on_lead,
	                            .on_stop = on_stop, .on_yield = on_yield, .arg = e};
	int rc = sli_candidate_start(st, &cfg, &e->cand);
	if (rc != 0) {
		sli_elog(SLI_LOG_ERROR, "start_failed", NULL, "cannot use etcd at %s: %s", e->endpoints,
		         sl_strerror(rc));
		return 1;
	}
	return 0;
}

void sluiced_etcd_stop(sluiced_etcd *e)
{
	sli_candidate_stop(e->cand);
	e->cand = NULL;
	for (size_t i = 0; i < e->nspecs; i++) {
		sli_source_stop(e->runners[i]);
		e->runners[i] = NULL;
	}
}
