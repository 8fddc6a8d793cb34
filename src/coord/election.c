/*
 * election.c - leadership of one process index in etcd: a create-if-absent txn on the leader
 * key under this candidate's lease, the term from the key's create revision, and the safe
 * deadline from the send time of each keepalive (the rule is explained in election.h).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "coord/election.h"
#include "coord/coord_int.h"
#include "net/loop.h"

struct sli_election {
	sli_etcd *etcd; /* borrowed */
	char key[SLI_COORD_KEY_MAX]; /* the leader key */
	char *candidate;
	int64_t ttl_s;      /* asked for */
	int64_t margin_ms;  /* 0: a quarter of the granted TTL */
	sli_election_eligible_fn eligible;
	void *eligible_arg;
	int64_t lease;      /* 0: none */
	int64_t granted_ms; /* the TTL etcd granted */
	uint64_t lease_sent_ms; /* when the request that last (re)started the lease was sent */
	/* Read by other threads. */
	_Atomic int64_t term;          /* 0: not leading */
	_Atomic uint64_t safe_until_ms; /* 0: not leading */
};

int sli_election_new(sli_etcd *etcd, const sli_election_config *cfg, sli_election **out)
{
	sli_election *el;
	int rc;

	if (etcd == NULL || cfg == NULL || cfg->candidate == NULL || cfg->lease_ms < 1 ||
	    cfg->margin_ms < 0 || strlen(cfg->candidate) >= SLI_COORD_ADDR_MAX) {
		sli_coord_set_error("election: no etcd handle or candidate, a candidate address over "
		                    "%d bytes, or a lease below 1 ms", SLI_COORD_ADDR_MAX - 1);
		return SL_EARG;
	}
	if ((el = calloc(1, sizeof(*el))) == NULL)
		return SL_ENOMEM;
	if ((rc = sli_coord_key(el->key, sizeof(el->key), cfg->cluster, cfg->process, "leader")) != 0)
		goto err_free;
	rc = SL_ENOMEM;
	if ((el->candidate = strdup(cfg->candidate)) == NULL)
		goto err_free;
	el->etcd = etcd;
	el->ttl_s = (cfg->lease_ms + 999) / 1000;
	el->margin_ms = cfg->margin_ms;
	el->eligible = cfg->eligible;
	el->eligible_arg = cfg->eligible_arg;
	atomic_init(&el->term, 0);
	atomic_init(&el->safe_until_ms, 0);
	*out = el;
	return 0;
err_free:
	free(el);
	return rc;
}

void sli_election_free(sli_election *el)
{
	if (el == NULL)
		return;
	free(el->candidate);
	free(el);
}

/* Stops acting at once: may_act turns false before anything else happens. */
static void lose(sli_election *el)
{
	atomic_store(&el->safe_until_ms, 0);
	atomic_store(&el->term, 0);
}

/* Pushes the safe deadline to sent + TTL - margin (never back: an older keepalive's answer
 * cannot shorten what a newer one proved). */
static void extend(sli_election *el, uint64_t sent_ms)
{
	int64_t margin = el->margin_ms ? el->margin_ms : el->granted_ms / 4;
	int64_t span = el->granted_ms - margin;
	uint64_t until = span > 0 ? sent_ms + (uint64_t)span : 0;
	if (until > atomic_load(&el->safe_until_ms))
		atomic_store(&el->safe_until_ms, until);
}

/* Makes sure el holds a live lease: renews the one it has, or grants a new one.  0, < 0. */
static int hold_lease(sli_election *el)
{
	uint64_t sent = sli_now_ms();
	int64_t ttl;
	int rc;

	if (el->lease != 0) {
		rc = sli_etcd_lease_keepalive(el->etcd, el->lease, &ttl);
		if (rc == 0) {
			el->granted_ms = ttl * 1000;
			el->lease_sent_ms = sent;
			return 0;
		}
		if (rc != SL_ELEASE)
			return rc;
		el->lease = 0; /* expired: a new one */
		sent = sli_now_ms();
	}
	if ((rc = sli_etcd_lease_grant(el->etcd, el->ttl_s, &el->lease, &ttl)) != 0)
		return rc;
	el->granted_ms = ttl * 1000;
	el->lease_sent_ms = sent;
	return 0;
}

/* *leader from the leader key's current state (zeroed when absent). */
static void leader_from_kv(const sli_etcd_kv *kv, sli_leader *leader)
{
	memset(leader, 0, sizeof(*leader));
	if (kv->create_revision == 0)
		return;
	snprintf(leader->address, sizeof(leader->address), "%.*s", (int)kv->value_len,
	         (const char *)kv->value);
	leader->term = kv->create_revision;
	leader->lease = kv->lease;
}

/* Whether the key's current state is this candidate holding it under its lease. */
static int is_mine(const sli_election *el, const sli_etcd_kv *kv)
{
	return kv->create_revision != 0 && kv->lease == el->lease &&
	       kv->value_len == strlen(el->candidate) &&
	       memcmp(kv->value, el->candidate, kv->value_len) == 0;
}

static void set_leader(sli_leader *leader, const char *addr, int64_t term, int64_t lease)
{
	if (leader == NULL)
		return;
	memset(leader, 0, sizeof(*leader));
	snprintf(leader->address, sizeof(leader->address), "%s", addr);
	leader->term = term;
	leader->lease = lease;
}

int sli_election_campaign(sli_election *el, sli_leader *leader)
{
	sli_etcd_cmp absent = {.target = SLI_ETCD_CREATE, .key = el->key, .revision = 0};
	sli_etcd_op put = {.kind = SLI_ETCD_PUT, .key = el->key};
	sli_etcd_kv cur;
	int64_t rev;
	int rc;

	if (atomic_load(&el->term) != 0 && sli_election_may_act(el)) {
		set_leader(leader, el->candidate, atomic_load(&el->term), el->lease);
		return 1;
	}
	lose(el); /* a term whose deadline passed is over: only a new election leads again */
	if (el->eligible != NULL && !el->eligible(el->eligible_arg)) {
		sli_coord_set_error("candidate %s of %s may not lead: not eligible (not in sync)",
		                    el->candidate, el->key);
		return SL_EREJECTED;
	}
	if ((rc = hold_lease(el)) != 0)
		return rc;
	put.value = el->candidate;
	put.value_len = strlen(el->candidate);
	put.lease = el->lease;
	rc = sli_etcd_txn(el->etcd, &absent, 1, &put, 1, &rev, &cur);
	if (rc < 0)
		return rc;
	if (rc == 0 && !is_mine(el, &cur)) {
		if (leader != NULL)
			leader_from_kv(&cur, leader);
		sli_etcd_kv_fini(&cur);
		return 0;
	}
	/* Won, now or by an earlier attempt of this call that timed out after etcd applied it. */
	if (rc == 0) {
		rev = cur.create_revision;
		sli_etcd_kv_fini(&cur);
	}
	atomic_store(&el->term, rev);
	extend(el, el->lease_sent_ms);
	set_leader(leader, el->candidate, rev, el->lease);
	return 1;
}

int sli_election_renew(sli_election *el)
{
	int64_t term = atomic_load(&el->term), ttl;
	uint64_t sent = sli_now_ms();
	sli_etcd_kv kv;
	int rc, mine;

	if (term == 0) {
		sli_coord_set_error("election %s: renew without leadership", el->key);
		return SL_EARG;
	}
	rc = sli_etcd_lease_keepalive(el->etcd, el->lease, &ttl);
	if (rc == SL_ELEASE) {
		lose(el);
		el->lease = 0;
		return rc;
	}
	if (rc != 0)
		return rc;
	/* The lease lives, but the key may have been deleted (a handover) and taken since. */
	if ((rc = sli_etcd_get(el->etcd, el->key, &kv)) < 0)
		return rc;
	mine = rc == 1 && is_mine(el, &kv) && kv.create_revision == term;
	if (!mine) {
		sli_leader now;
		leader_from_kv(&kv, &now);
		sli_etcd_kv_fini(&kv);
		lose(el);
		sli_coord_set_error("election %s: term %lld is over; leader now '%s' (term %lld)",
		                    el->key, (long long)term, now.address, (long long)now.term);
		return SL_EFENCED;
	}
	sli_etcd_kv_fini(&kv);
	el->granted_ms = ttl * 1000;
	el->lease_sent_ms = sent;
	extend(el, sent);
	return 0;
}

int sli_election_resign(sli_election *el)
{
	int64_t term = atomic_load(&el->term);
	sli_etcd_cmp same = {.target = SLI_ETCD_CREATE, .key = el->key, .revision = term};
	sli_etcd_op del = {.kind = SLI_ETCD_DELETE, .key = el->key};
	int rc = 0;

	lose(el);
	if (term != 0 && (rc = sli_etcd_txn(el->etcd, &same, 1, &del, 1, NULL, NULL)) > 0)
		rc = 0;
	if (el->lease != 0) {
		int rrc = sli_etcd_lease_revoke(el->etcd, el->lease);
		if (rrc == 0 || rrc == SL_ELEASE)
			el->lease = 0;
		else if (rc == 0)
			rc = rrc;
	}
	return rc;
}

int sli_election_observe(sli_election *el, sli_leader *leader)
{
	sli_etcd_kv kv;
	int rc = sli_etcd_get(el->etcd, el->key, &kv);
	if (rc < 0)
		return rc;
	leader_from_kv(&kv, leader);
	sli_etcd_kv_fini(&kv);
	return rc;
}

int sli_election_put_fenced(sli_election *el, const char *key, const void *value, size_t len)
{
	int64_t term = atomic_load(&el->term);
	sli_etcd_cmp same = {.target = SLI_ETCD_CREATE, .key = el->key, .revision = term};
	sli_etcd_op put = {.kind = SLI_ETCD_PUT, .key = key, .value = value, .value_len = len};
	int rc;

	if (term == 0) {
		sli_coord_set_error("election %s: a fenced write without leadership", el->key);
		return SL_EARG;
	}
	rc = sli_etcd_txn(el->etcd, &same, 1, &put, 1, NULL, NULL);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		lose(el);
		sli_coord_set_error("election %s: term %lld is over; %s not written", el->key,
		                    (long long)term, key);
		return SL_EFENCED;
	}
	return 0;
}

int sli_election_may_act(const sli_election *el)
{
	uint64_t until = atomic_load(&((sli_election *)el)->safe_until_ms);
	return atomic_load(&((sli_election *)el)->term) != 0 && sli_now_ms() < until;
}

uint64_t sli_election_safe_until_ms(const sli_election *el)
{
	return atomic_load(&((sli_election *)el)->safe_until_ms);
}

int64_t sli_election_term(const sli_election *el)
{
	return atomic_load(&((sli_election *)el)->term);
}

int64_t sli_election_ttl_ms(const sli_election *el)
{
	return el->granted_ms;
}
