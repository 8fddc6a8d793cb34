/*
 * candidate.c - a candidate of one storage process group under etcd (see candidate.h).
 *
 * The thread ticks every quarter of the lease (at most every 250 ms while following, so a
 * dead leader's expired key is noticed quickly).  Following: it reads the leader key; nobody
 * leads, and it is eligible, so it campaigns; somebody else leads, so it follows that leader
 * (sl_storage_follow, once).  Leading: it renews the lease and hands the safe deadline to
 * storage (sl_storage_act_until), and writes the in-sync set to etcd whenever storage's
 * changes (sli_election_put_fenced, then sl_storage_isr_recorded).
 *
 * Eligibility is the group's in-sync set in etcd: only a candidate it lists may campaign, so
 * a standby that lacks published data never leads (no unclean election).  A group without
 * the key is new: every candidate is eligible.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "coord/election.h"
#include "failover/candidate.h"

#define ISR_MAX 2048
#define EPOCH_MAX (1u << 20) /* "ID:W=T," per hosted worker of every source */

struct sli_candidate {
	sl_storage *st;
	sli_candidate_config cfg;
	char *endpoints, *cluster_id, *self;
	char isr_key[SLI_COORD_KEY_MAX];
	char epoch_prefix[SLI_COORD_KEY_MAX]; /* .../epoch/: one key per term, its start uppers */
	char handover_key[SLI_COORD_KEY_MAX]; /* .../handover: the standby a switchover is for */
	int asked;                            /* this standby wrote its handover request */
	sli_etcd *etcd;
	sli_election *el;
	pthread_t tid;
	atomic_int stop;
	atomic_int leads;
	char following[SLI_COORD_ADDR_MAX]; /* the leader followed, "" before */
	int64_t following_term;
	uint64_t isr_version; /* storage's in-sync set version last recorded */
	int etcd_down;        /* said once per outage */
};

static void nap(sli_candidate *c, unsigned ms)
{
	for (unsigned t = 0; t < ms && !atomic_load(&c->stop); t += 25) {
		struct timespec ts = {0, 25 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/* Reads the handover key: 1 with its value in buf, 0 when there is none, < 0. */
static int read_handover(sli_candidate *c, char *buf, size_t cap)
{
	sli_etcd_kv kv;
	int rc = sli_etcd_get(c->etcd, c->handover_key, &kv);
	if (rc == 1) {
		snprintf(buf, cap, "%.*s", (int)kv.value_len, (const char *)kv.value);
		sli_etcd_kv_fini(&kv);
	}
	return rc;
}

/* Listed in the group's in-sync set, or the group has none yet; and no switchover is under
 * way to another candidate. */
static int eligible(void *arg)
{
	sli_candidate *c = arg;
	sli_etcd_kv kv;
	char to[SLI_COORD_ADDR_MAX];
	if (read_handover(c, to, sizeof(to)) == 1 && strcmp(to, c->self) != 0)
		return 0;
	int rc = sli_etcd_get(c->etcd, c->isr_key, &kv);
	if (rc < 0)
		return 0;
	if (rc == 0)
		return 1;
	int listed = 0;
	size_t n = strlen(c->self);
	for (const char *p = (const char *)kv.value, *end = p + kv.value_len; p < end;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		size_t len = comma ? (size_t)(comma - p) : (size_t)(end - p);
		if (len == n && memcmp(p, c->self, n) == 0)
			listed = 1;
		p += len + 1;
	}
	sli_etcd_kv_fini(&kv);
	return listed;
}

static void say_etcd(sli_candidate *c, int rc)
{
	if (rc == 0) {
		if (c->etcd_down)
			sli_elog(SLI_LOG_WARN, "etcd_back", NULL, "etcd answers again");
		c->etcd_down = 0;
	} else if (!c->etcd_down) {
		c->etcd_down = 1;
		sli_elog(SLI_LOG_WARN, "etcd_unreachable", NULL, "etcd: %s",
		         sli_coord_last_error()[0] ? sli_coord_last_error() : sl_strerror(rc));
	}
}

/* Writes storage's in-sync set to etcd when it changed.  0, or SL_EFENCED (no longer leads). */
static int record_isr(sli_candidate *c)
{
	char isr[ISR_MAX];
	uint64_t version;
	if (sl_storage_isr(c->st, isr, sizeof(isr), &version) != 0 || version == c->isr_version)
		return 0;
	int rc = sli_election_put_fenced(c->el, c->isr_key, isr, strlen(isr));
	if (rc == SL_EFENCED || rc == SL_EARG)
		return SL_EFENCED;
	if (rc != 0) {
		/* tried again next tick; until then the larger set holds the watermark */
		sli_elog(SLI_LOG_WARN, "isr_not_recorded", NULL, "cannot record the in-sync set %s "
		         "in etcd yet: %s", isr, sli_coord_last_error()[0] ? sli_coord_last_error()
		                                                        : sl_strerror(rc));
		return 0;
	}
	sl_storage_isr_recorded(c->st, isr);
	c->isr_version = version;
	sli_kv kv[] = {{"insync", isr, 0}, {NULL, NULL, 0}};
	sli_elog(SLI_LOG_INFO, "isr_recorded", kv, "recorded the in-sync set in etcd: %s", isr);
	return 0;
}

/* Appends "ID:W=T," for every hosted worker of st (its upper now) to buf.  0, or SL_ETOOBIG. */
static int uppers_text(sl_storage *st, char *buf, size_t cap)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0;; i++) {
		sl_source *src = sl_storage_source_at(st, i);
		if (src == NULL)
			return 0;
		for (uint32_t w = 0; w < sl_source_workers(src); w++) {
			if (!sl_source_hosts(src, w))
				continue;
			int n = snprintf(buf + off, cap - off, "%s%" PRIu64 ":%u=%" PRIu64, off ? "," : "",
			                 sl_source_id(src), w, sl_source_upper(src, w));
			if (n < 0 || (size_t)n >= cap - off)
				return SL_ETOOBIG;
			off += (size_t)n;
		}
	}
}

/* Records where this term begins: every worker's upper once the follower stopped (KIP-101's
 * leader epoch).  A process rejoining under a later term cuts its logs back to these. */
static int record_epoch(sli_candidate *c, int64_t term)
{
	char key[SLI_COORD_KEY_MAX];
	char *text = malloc(EPOCH_MAX);
	if (text == NULL)
		return SL_ENOMEM;
	int rc = uppers_text(c->st, text, EPOCH_MAX);
	if (rc == 0 && snprintf(key, sizeof(key), "%s%020" PRId64, c->epoch_prefix, term) >= (int)sizeof(key))
		rc = SL_EARG;
	if (rc == 0)
		rc = sli_election_put_fenced(c->el, key, text, strlen(text));
	free(text);
	return rc;
}

/* This candidate just won `term`: shrink the recorded set to itself, take the lead (the
 * follower stops), record where the term begins, then act and start the sources. */
static int take_lead(sli_candidate *c, int64_t term, char *why, size_t len)
{
	int rc = sli_election_put_fenced(c->el, c->isr_key, c->self, strlen(c->self));
	if (rc == 0)
		rc = sl_storage_isr_recorded(c->st, c->self);
	if (rc == 0)
		rc = sl_storage_set_leader(c->st, (uint64_t)term);
	if (rc == 0)
		rc = record_epoch(c, term);
	char to[SLI_COORD_ADDR_MAX];
	if (rc == 0 && read_handover(c, to, sizeof(to)) == 1 && strcmp(to, c->self) == 0)
		sli_etcd_delete(c->etcd, c->handover_key); /* the switchover is done */
	if (rc != 0) {
		snprintf(why, len, "won term %" PRId64 " but could not take it: %s", term,
		         sl_storage_last_error()[0] ? sl_storage_last_error() : sl_strerror(rc));
		return rc;
	}
	sl_storage_act_until(c->st, sli_election_safe_until_ms(c->el));
	atomic_store(&c->leads, 1);
	char t[24], p[16];
	snprintf(t, sizeof(t), "%" PRId64, term);
	snprintf(p, sizeof(p), "%u", c->cfg.process);
	sli_kv kv[] = {{"process", p, 1}, {"term", t, 1}, {"address", c->self, 0}, {NULL, NULL, 0}};
	sli_elog(SLI_LOG_INFO, "elected", kv, "leads process %s at term %s", p, t);
	if (c->cfg.on_lead != NULL && (rc = c->cfg.on_lead(c->cfg.arg, (uint64_t)term)) != 0) {
		snprintf(why, len, "leads at term %" PRId64 " but its sources did not start", term);
		return rc;
	}
	return 0;
}

/* A switchover asked for: hand the leadership to `to` (in the in-sync set) without loss.  Stop
 * acting and producing, give the standby up to 5 s to acknowledge everything, resign. */
static void hand_over(sli_candidate *c, const char *to, char *why, size_t len)
{
	sli_kv kv[] = {{"to", to, 0}, {NULL, NULL, 0}};
	sli_elog(SLI_LOG_INFO, "handover", kv, "hands the leadership of process %u over to %s",
	         c->cfg.process, to);
	sl_storage_act_until(c->st, 0);
	atomic_store(&c->leads, 0);
	if (c->cfg.on_yield != NULL)
		c->cfg.on_yield(c->cfg.arg);
	for (int i = 0; i < 100 && !sl_storage_caught_up(c->st, to); i++)
		nap(c, 50);
	sli_election_resign(c->el);
	snprintf(why, len, "handed the leadership of process %u over to %s (a switchover); restart "
	         "it to follow as a standby", c->cfg.process, to);
}

/* Whether a switchover to a member of the in-sync set is asked for: 1 with its address. */
static int handover_wanted(sli_candidate *c, char *to, size_t cap)
{
	char isr[ISR_MAX], key[SLI_COORD_ADDR_MAX + 2];
	if (read_handover(c, to, cap) != 1 || strcmp(to, c->self) == 0)
		return 0;
	if (sl_storage_isr(c->st, isr, sizeof(isr), NULL) != 0)
		return 0;
	char list[ISR_MAX + 2];
	snprintf(list, sizeof(list), ",%s,", isr);
	snprintf(key, sizeof(key), ",%s,", to);
	if (strstr(list, key) == NULL) {
		sli_elog(SLI_LOG_WARN, "handover_refused", NULL, "a switchover to %s is asked for, but "
		         "it is not in sync: not handing over", to);
		sli_etcd_delete(c->etcd, c->handover_key);
		return 0;
	}
	return 1;
}

/* One tick as the leader.  0, or 1 when the candidate ends (why filled). */
static int lead_tick(sli_candidate *c, char *why, size_t len)
{
	char to[SLI_COORD_ADDR_MAX];
	if (handover_wanted(c, to, sizeof(to))) {
		hand_over(c, to, why, len);
		return 1;
	}
	int rc = sli_election_renew(c->el);
	say_etcd(c, rc == SL_ELEASE || rc == SL_EFENCED ? 0 : rc);
	if (rc != 0 && rc != SL_ELEASE && rc != SL_EFENCED && rc != SL_EETCD)
		sli_elog(SLI_LOG_WARN, "renew_failed", NULL, "cannot renew the lease: %s",
		         sli_coord_last_error()[0] ? sli_coord_last_error() : sl_strerror(rc));
	if (rc == SL_ELEASE || rc == SL_EFENCED) {
		sl_storage_act_until(c->st, 0);
		atomic_store(&c->leads, 0);
		snprintf(why, len, "lost the leadership of process %u (%s): it stopped acting; "
		         "restart it to rejoin as a standby", c->cfg.process,
		         rc == SL_ELEASE ? "its lease expired" : "the leader key is another's");
		return 1;
	}
	if (rc == 0)
		sl_storage_act_until(c->st, sli_election_safe_until_ms(c->el));
	/* with renewals failing the deadline just passes: storage stops acting by itself */
	if (rc == 0 && record_isr(c) == SL_EFENCED) {
		sl_storage_act_until(c->st, 0);
		atomic_store(&c->leads, 0);
		snprintf(why, len, "lost the leadership of process %u (a fenced write failed)",
		         c->cfg.process);
		return 1;
	}
	return 0;
}

/* The data term: the last term this process led (storage's), or followed (DATA/followed-term,
 * written once following began: its log was a prefix of that leader's then). */
static uint64_t data_term(sli_candidate *c)
{
	uint64_t t = sl_storage_term(c->st), f = 0;
	char path[4096];
	const char *dir = sl_storage_data_dir(c->st);
	if (dir != NULL && snprintf(path, sizeof(path), "%s/followed-term", dir) < (int)sizeof(path)) {
		FILE *fp = fopen(path, "r");
		if (fp != NULL) {
			if (fscanf(fp, "%" SCNu64, &f) != 1)
				f = 0;
			fclose(fp);
		}
	}
	return f > t ? f : t;
}

static void save_followed_term(sli_candidate *c, int64_t term)
{
	char path[4096], tmp[4110];
	const char *dir = sl_storage_data_dir(c->st);
	if (dir == NULL || snprintf(path, sizeof(path), "%s/followed-term", dir) >= (int)sizeof(path))
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *fp = fopen(tmp, "w");
	if (fp == NULL)
		return;
	int ok = fprintf(fp, "%" PRId64 "\n", term) > 0;
	ok &= fflush(fp) == 0 && fsync(fileno(fp)) == 0;
	ok &= fclose(fp) == 0;
	if (!ok || rename(tmp, path) != 0)
		unlink(tmp); /* a rejoin then cuts back further than needed: safe */
}

/* The cuts a rejoin needs: for every worker, the least start upper of the terms begun after
 * this process's data term (each of those leaders began from what it had; nothing of ours
 * beyond that was ever published).  *out NULL when there are none.  0, or < 0 (etcd). */
static int rejoin_limits(sli_candidate *c, char **out)
{
	sli_etcd_kv *kvs = NULL;
	uint64_t since = data_term(c);
	int n = sli_etcd_get_prefix(c->etcd, c->epoch_prefix, &kvs);
	*out = NULL;
	if (n < 0)
		return n;
	size_t plen = strlen(c->epoch_prefix), cap = 0, len = 0;
	char *acc = NULL;
	for (int i = 0; i < n; i++) {
		uint64_t term = strtoull(kvs[i].key + plen, NULL, 10);
		if (term <= since || kvs[i].value_len == 0)
			continue;
		/* merge: keep the least limit per ID:W (lists are small: a few per source) */
		char *v = strndup((const char *)kvs[i].value, kvs[i].value_len);
		if (v == NULL)
			break;
		char *save = NULL;
		for (char *tok = strtok_r(v, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(tok, '=');
			if (eq == NULL)
				continue;
			size_t klen = (size_t)(eq - tok) + 1; /* "ID:W=" */
			uint64_t t = strtoull(eq + 1, NULL, 10);
			char *hit = NULL;
			for (char *p = acc; p != NULL && p < acc + len;) {
				if (strncmp(p, tok, klen) == 0 && (p == acc || p[-1] == ','))
					hit = p;
				char *comma = strchr(p, ',');
				p = comma ? comma + 1 : NULL;
			}
			if (hit != NULL) {
				if (strtoull(hit + klen, NULL, 10) <= t)
					continue;
				/* remove the old entry, then append the smaller one */
				char *end = strchr(hit, ',');
				size_t cut = end ? (size_t)(end + 1 - hit) : (size_t)(acc + len - hit);
				memmove(hit, hit + cut, (size_t)(acc + len - hit - cut) + 1);
				len -= cut;
				if (len > 0 && acc[len - 1] == ',')
					acc[--len] = '\0';
			}
			size_t need = len + strlen(tok) + 2;
			if (need > cap) {
				char *na = realloc(acc, need * 2);
				if (na == NULL)
					break;
				acc = na;
				cap = need * 2;
			}
			len += (size_t)sprintf(acc + len, "%s%s", len ? "," : "", tok);
		}
		free(v);
	}
	sli_etcd_kvs_free(kvs, (size_t)n);
	*out = acc;
	return 0;
}

/* One tick as a follower.  0, or 1 when the candidate ends (why filled). */
static int follow_tick(sli_candidate *c, char *why, size_t len)
{
	sli_leader leader;
	int rc = sli_election_observe(c->el, &leader);
	say_etcd(c, rc < 0 ? rc : 0);
	if (rc < 0)
		return 0;
	if (rc == 0) {
		rc = sli_election_campaign(c->el, &leader);
		if (rc == 1)
			return take_lead(c, sli_election_term(c->el), why, len) != 0;
		if (rc != 0 || leader.address[0] == '\0')
			return 0; /* not eligible, or the key is between two leaders */
	}
	if (strcmp(leader.address, c->self) == 0)
		return 0; /* our own key from before a restart: it expires, then we campaign */
	if (sl_storage_switchover_requested(c->st) && !c->asked) {
		/* `sluice promote` here: ask the leader, under a lease of its own so a request whose
		 * standby died does not block elections for long */
		int64_t lease = 0, ttl = 0;
		if (sli_etcd_lease_grant(c->etcd, 10, &lease, &ttl) == 0 &&
		    sli_etcd_put(c->etcd, c->handover_key, c->self, strlen(c->self), lease, NULL) == 0) {
			c->asked = 1;
			sli_elog(SLI_LOG_INFO, "handover_asked", NULL, "asks the leader %s to hand "
			         "process %u over", leader.address, c->cfg.process);
		}
	}
	if (c->following[0] == '\0') {
		char *limits = NULL;
		if (rejoin_limits(c, &limits) < 0)
			return 0; /* etcd did not answer: next tick */
		rc = sl_storage_follow_truncating(c->st, leader.address, limits);
		free(limits);
		if (rc != 0) {
			snprintf(why, len, "cannot follow the leader %s: %s", leader.address,
			         sl_storage_last_error()[0] ? sl_storage_last_error() : sl_strerror(rc));
			return 1;
		}
		snprintf(c->following, sizeof(c->following), "%s", leader.address);
		c->following_term = leader.term;
		save_followed_term(c, leader.term);
		char t[24];
		snprintf(t, sizeof(t), "%" PRId64, leader.term);
		sli_kv kv[] = {{"leader", leader.address, 0}, {"term", t, 1}, {NULL, NULL, 0}};
		sli_elog(SLI_LOG_INFO, "following", kv, "follows the leader %s (term %s) as a standby",
		         leader.address, t);
		return 0;
	}
	if (strcmp(leader.address, c->following) != 0 || leader.term != c->following_term) {
		snprintf(why, len, "the leader is now %s (term %" PRId64 "), not the %s this standby "
		         "follows: restart it to follow the new one", leader.address, leader.term,
		         c->following);
		return 1;
	}
	return 0;
}

static void *candidate_thread(void *arg)
{
	sli_candidate *c = arg;
	char why[512] = "";
	int64_t ttl = c->cfg.lease_ms;
	while (!atomic_load(&c->stop)) {
		int leads = atomic_load(&c->leads);
		if ((leads ? lead_tick(c, why, sizeof(why)) : follow_tick(c, why, sizeof(why))) != 0) {
			if (c->cfg.on_stop != NULL)
				c->cfg.on_stop(c->cfg.arg, why);
			break;
		}
		if (sli_election_ttl_ms(c->el) > 0)
			ttl = sli_election_ttl_ms(c->el);
		unsigned period = (unsigned)(ttl / 6);
		if (!leads && period > 250)
			period = 250;
		nap(c, period ? period : 1);
	}
	return NULL;
}

int sli_candidate_start(sl_storage *st, const sli_candidate_config *cfg, sli_candidate **out)
{
	if (st == NULL || cfg == NULL || out == NULL || cfg->endpoints == NULL ||
	    cfg->cluster_id == NULL || cfg->self == NULL || cfg->lease_ms < 1)
		return SL_EARG;
	sli_candidate *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return SL_ENOMEM;
	c->st = st;
	c->cfg = *cfg;
	int rc = SL_ENOMEM;
	if ((c->self = strdup(cfg->self)) == NULL || (c->cluster_id = strdup(cfg->cluster_id)) == NULL)
		goto fail;
	c->cfg.self = c->self;
	c->cfg.cluster_id = c->cluster_id;
	c->cfg.endpoints = NULL;
	if ((rc = sli_coord_key(c->isr_key, sizeof(c->isr_key), cfg->cluster_id, cfg->process,
	                        "isr")) != 0 ||
	    (rc = sli_coord_key(c->epoch_prefix, sizeof(c->epoch_prefix), cfg->cluster_id,
	                        cfg->process, "epoch/")) != 0 ||
	    (rc = sli_coord_key(c->handover_key, sizeof(c->handover_key), cfg->cluster_id,
	                        cfg->process, "handover")) != 0)
		goto fail;
	/* every call is bounded well inside the lease, so a slow etcd never holds a renewal up
	 * past the deadline by much */
	int timeout = (int)(cfg->lease_ms / 3 > 200 ? cfg->lease_ms / 3 : 200);
	if ((rc = sli_etcd_open(cfg->endpoints, timeout, &c->etcd)) != 0)
		goto fail;
	sli_election_config ec = {.cluster = cfg->cluster_id, .process = cfg->process,
	                          .candidate = cfg->self, .lease_ms = cfg->lease_ms,
	                          .eligible = eligible, .eligible_arg = c};
	if ((rc = sli_election_new(c->etcd, &ec, &c->el)) != 0)
		goto fail;
	atomic_store(&c->stop, 0);
	if ((rc = pthread_create(&c->tid, NULL, candidate_thread, c)) != 0) {
		rc = -rc;
		goto fail;
	}
	*out = c;
	return 0;
fail:
	sli_election_free(c->el);
	sli_etcd_close(c->etcd);
	free(c->self);
	free(c->cluster_id);
	free(c);
	return rc;
}

void sli_candidate_stop(sli_candidate *c)
{
	if (c == NULL)
		return;
	atomic_store(&c->stop, 1);
	pthread_join(c->tid, NULL);
	if (atomic_load(&c->leads)) {
		sl_storage_act_until(c->st, 0);
		sli_election_resign(c->el);
		sli_elog(SLI_LOG_INFO, "resigned", NULL, "resigned the leadership of process %u",
		         c->cfg.process);
	}
	sli_election_free(c->el);
	sli_etcd_close(c->etcd);
	free(c->self);
	free(c->cluster_id);
	free(c);
}

int sli_candidate_leads(const sli_candidate *c)
{
	return c != NULL && atomic_load(&c->leads);
}
