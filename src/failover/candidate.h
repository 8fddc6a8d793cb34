/*
 * candidate.h - one candidate of a storage process group whose leadership is decided in etcd
 * (sluiced --etcd): it campaigns when nobody leads and it is eligible (listed in the group's
 * in-sync set, or the group is new), follows the leader as a standby otherwise, and while it
 * leads renews its lease, lets storage act until the lease's safe deadline and records the
 * in-sync set in etcd.  Leadership lost, or a leader other than the one it follows, ends the
 * candidate (on_stop): the process restarts and rejoins from its data directory (fail-stop:
 * a process never turns from leader back into a standby while it runs).
 *
 * Used by sluiced (src/cli); built on src/coord and the public storage API.
 */
#ifndef SLUICE_FAILOVER_CANDIDATE_H
#define SLUICE_FAILOVER_CANDIDATE_H

#include <stdint.h>

#include "sluice/storage.h"

typedef struct sli_candidate_config {
	const char *endpoints;  /* etcd client URLs, comma-separated */
	const char *cluster_id; /* the key layout's cluster id ([A-Za-z0-9._-], from --cluster) */
	uint32_t process;       /* the process index this candidate is one of */
	const char *self;       /* its own address (the leader key's value, what clients dial) */
	int64_t lease_ms;       /* the leadership lease (rounded up to whole seconds by etcd) */
	/* Called on the candidate's thread once this candidate leads at `term` (storage already
	 * takes ingest): start the sources that produce data.  0, or an error that ends it. */
	int (*on_lead)(void *arg, uint64_t term);
	/* Called on the candidate's thread when it ends for good (why: one line); the process
	 * should exit and be restarted.  The candidate thread stops after it returns. */
	void (*on_stop)(void *arg, const char *why);
	/* Called on the candidate's thread when it hands its leadership over (a switchover): stop
	 * the sources it started, so its standby can catch up with everything.  NULL: none. */
	void (*on_yield)(void *arg);
	void *arg;
} sli_candidate_config;

typedef struct sli_candidate sli_candidate;

/* Opens etcd and starts the candidate's thread on st (opened with cfg.coordinated, started or
 * not).  0 with *out, SL_EARG, SL_ENOMEM, SL_EETCD (etcd's URLs malformed), -errno. */
int sli_candidate_start(sl_storage *st, const sli_candidate_config *cfg, sli_candidate **out);
/* Stops the thread; a leader resigns first (so another candidate takes over at once).  NULL
 * is fine. */
void sli_candidate_stop(sli_candidate *c);
/* Whether it leads now (any thread). */
int sli_candidate_leads(const sli_candidate *c);

#endif
