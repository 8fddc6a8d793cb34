/*
 * election.h - leadership of one storage process index, held in etcd under a lease: campaign,
 * renew, resign, observe, and writes fenced by the term.
 *
 * Key layout (all under /sluice/<cluster-id>/process/<i>/, see sli_coord_key):
 *   leader  value: the leader's candidate address (its --listen ADDR); attached to the leader's
 *           lease, so it disappears when the leader stops renewing.  Its create_revision is the
 *           leader's TERM: every election creates the key anew, and etcd's revisions only grow,
 *           so terms strictly increase across elections, whoever wins.
 *   isr     the in-sync set of the process's group, written only by the leader and only with
 *           sli_election_put_fenced (the write happens only while leader's create_revision is
 *           still the writer's term); its value's format belongs to the replication layer.
 *
 * The safe deadline: etcd expires a lease TTL after the last keepalive it HANDLED, which is
 * after the leader SENT it.  So a leader that records the monotonic time t at which it sent a
 * keepalive answered with TTL may act until t + TTL - margin: etcd cannot have expired its
 * lease (and let anyone else win) before then, whatever happens to the network afterwards;
 * margin covers the clock-rate difference between the machines.  A leader acknowledges and
 * publishes only while sli_election_may_act() says so; when renewals fail, the deadline just
 * passes, with no request needed.
 *
 * Threads: an election is driven by one thread (the one using its etcd handle);
 * sli_election_may_act, _safe_until_ms and _term may be called from any thread.
 * Errors as in etcd.h (text in sli_coord_last_error).
 */
#ifndef SLUICE_COORD_ELECTION_H
#define SLUICE_COORD_ELECTION_H

#include <stddef.h>
#include <stdint.h>

#include "coord/etcd.h"

#define SLI_COORD_KEY_MAX 320
#define SLI_COORD_ADDR_MAX 256

/* Writes "/sluice/<cluster>/process/<process>/<leaf>" into buf[cap] (leaf "" gives the
 * process's prefix, ending with '/').  cluster: 1 to 128 bytes of [A-Za-z0-9._-].
 * 0, SL_EARG. */
int sli_coord_key(char *buf, size_t cap, const char *cluster, uint32_t process,
                  const char *leaf);

/* Whether the calling candidate may take the leadership now (1) or not (0): issue 12's
 * in-sync check, so that no candidate that lacks acknowledged data can win. */
typedef int (*sli_election_eligible_fn)(void *arg);

typedef struct sli_election_config {
	const char *cluster;  /* the cluster id of the key layout (copied) */
	uint32_t process;     /* the process index led */
	const char *candidate; /* this candidate's address, the leader key's value (copied) */
	int64_t lease_ms;     /* the lease TTL, rounded up to whole seconds (etcd's unit); >= 1 */
	int64_t margin_ms;    /* subtracted from every safe deadline; 0: a quarter of the TTL */
	sli_election_eligible_fn eligible; /* NULL: always eligible */
	void *eligible_arg;
} sli_election_config;

typedef struct sli_election sli_election;

/* Who leads a process index. */
typedef struct sli_leader {
	char address[SLI_COORD_ADDR_MAX];
	int64_t term;  /* the leader key's create_revision */
	int64_t lease; /* the leader's lease */
} sli_leader;

/* A new election on etcd (borrowed: it must outlive the election).  No request is made.
 * 0 with *out (free with sli_election_free), SL_EARG, SL_ENOMEM. */
int sli_election_new(sli_etcd *etcd, const sli_election_config *cfg, sli_election **out);
/* Frees el (NULL is fine).  Makes no request: a leader that does not resign first stays
 * leader in etcd until its lease expires. */
void sli_election_free(sli_election *el);

/* Tries once to take the leadership: asks the eligibility callback, makes sure this candidate
 * holds a live lease (granted, or renewed), then creates the leader key only if it does not
 * exist.  1: this candidate leads (term and safe deadline set; also when it already led),
 * 0: another candidate leads, or the key was just deleted and not yet re-created;
 * SL_EREJECTED: not eligible (nothing written); < 0.  *leader (may be NULL): who leads after
 * the call (address "" and term 0 if nobody).  A leader whose safe deadline passed while its
 * key and lease survived (renewals failed, then etcd came back) gets the same term back: nobody
 * else can have led in between. */
int sli_election_campaign(sli_election *el, sli_leader *leader);

/* Renews the leader's lease once and checks that the leader key is still this candidate's at
 * its term; extends the safe deadline from the time the keepalive was sent.  Call it every
 * TTL/3 or so.  0; SL_ELEASE (lease gone) or SL_EFENCED (the key is someone else's): the
 * leadership is lost (term 0, may_act 0); SL_EARG when not leading; SL_EETCD and others: the
 * deadline stays where it was, and the leader may act until it passes. */
int sli_election_renew(sli_election *el);

/* Gives the leadership up: stops acting at once, deletes the leader key if it is still this
 * term's, revokes the lease.  0, or < 0 when etcd could not be told (the lease then expires
 * by itself; this candidate has stopped acting anyway).  Fine when not leading. */
int sli_election_resign(sli_election *el);

/* Reads who leads el's process index.  1 with *leader, 0 when nobody does (*leader zeroed),
 * < 0. */
int sli_election_observe(sli_election *el, sli_leader *leader);

/* Writes key = value only while this candidate's term is still the leader key's create
 * revision (a txn), so a deposed leader can never overwrite its successor's state.  0;
 * SL_EFENCED (not written; the leadership is lost); SL_EARG when not leading; < 0. */
int sli_election_put_fenced(sli_election *el, const char *key, const void *value, size_t len);

/* Whether this candidate leads and its safe deadline has not passed.  Any thread. */
int sli_election_may_act(const sli_election *el);
/* The safe deadline in sli_now_ms() milliseconds (CLOCK_MONOTONIC), 0 when not leading.
 * Any thread. */
uint64_t sli_election_safe_until_ms(const sli_election *el);
/* The term led, 0 when not leading.  Any thread. */
int64_t sli_election_term(const sli_election *el);
/* The lease's TTL in ms as etcd granted it (0 before the first campaign). */
int64_t sli_election_ttl_ms(const sli_election *el);

#endif
