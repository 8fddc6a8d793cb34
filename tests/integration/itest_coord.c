/*
 * itest_coord.c - the coordination part (src/coord) against a real 3-member etcd cluster on
 * 127.0.0.1, started by tests/integration/etcd_cluster.sh: the etcd client's get/put/delete,
 * compare-and-swap and lease semantics, its deadline and endpoint failover; leadership: one
 * winner out of two candidates, terms that strictly increase after a resignation and after a
 * lease expiry, eligibility, and the safe deadline passing while etcd is down.
 *
 * etcd missing is a failure, not a skip (it is a listed dependency).  Every wait is a bounded
 * poll; the cluster is killed at the end (and by the helper's watchdog if this process dies).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coord/election.h"
#include "coord/etcd.h"
#include "net/loop.h"

#ifndef ETCD_CLUSTER_SH
#define ETCD_CLUSTER_SH "tests/integration/etcd_cluster.sh"
#endif
#define TIMEOUT_MS 2000

static char tmp_dir[256];
static char cluster_dir[300];
static char endpoints[512];
static char member_url[3][128];

/* Runs etcd_cluster.sh VERB cluster_dir [ARG], bounded by timeout(1).  Its exit status. */
static int helper(const char *verb, const char *arg)
{
	const char *script = getenv("ETCD_CLUSTER_SH") ? getenv("ETCD_CLUSTER_SH") : ETCD_CLUSTER_SH;
	pid_t pid = fork();
	int status;
	if (pid == 0) {
		execlp("timeout", "timeout", "-k", "5", "150", "bash", script, verb, cluster_dir, arg,
		       (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int setup_cluster(void **state)
{
	char pid[32], path[400];
	FILE *f;
	snprintf(tmp_dir, sizeof(tmp_dir), "%s/sluice-itest-coord.XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(tmp_dir) == NULL)
		return -1;
	snprintf(cluster_dir, sizeof(cluster_dir), "%s/etcd", tmp_dir);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (helper("start", pid) != 0) {
		fprintf(stderr, "itest_coord: could not start a 3-member etcd cluster (is etcd-server "
		                "installed? scripts/install-deps.sh)\n");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/endpoints", cluster_dir);
	if ((f = fopen(path, "r")) == NULL || fgets(endpoints, sizeof(endpoints), f) == NULL)
		return -1;
	fclose(f);
	endpoints[strcspn(endpoints, "\n")] = '\0';
	for (int i = 0, o = 0; i < 3; i++) {
		size_t n = strcspn(endpoints + o, ",");
		snprintf(member_url[i], sizeof(member_url[i]), "%.*s", (int)n, endpoints + o);
		o += (int)n + 1;
	}
	return 0;
}

static int teardown_cluster(void **state)
{
	pid_t pid;
	helper("stop", NULL);
	if ((pid = fork()) == 0) {
		execlp("rm", "rm", "-rf", tmp_dir, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return 0;
}

static sli_etcd *open_etcd(const char *eps, int timeout_ms)
{
	sli_etcd *e = NULL;
	int rc = sli_etcd_open(eps, timeout_ms, &e);
	if (rc != 0)
		fprintf(stderr, "sli_etcd_open: %s\n", sli_coord_last_error());
	assert_int_equal(rc, 0);
	return e;
}

static void test_bad_endpoints(void **state)
{
	sli_etcd *e = NULL;
	assert_int_equal(sli_etcd_open("", 1000, &e), SL_EARG);
	assert_int_equal(sli_etcd_open(" , ", 1000, &e), SL_EARG);
	assert_int_equal(sli_etcd_open("ftp://127.0.0.1:1", 1000, &e), SL_EARG);
	assert_non_null(strstr(sli_coord_last_error(), "ftp://"));
	assert_int_equal(sli_etcd_open("http://127.0.0.1:1", 0, &e), SL_EARG);
	assert_null(e);
}

/* A listener that never accepts: connections complete in the kernel, answers never come. */
static int blackhole(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void test_deadline_and_failover(void **state)
{
	int port, fd = blackhole(&port);
	char eps[700];
	sli_etcd *e;
	sli_etcd_kv kv;
	uint64_t t0, dt;

	/* Nobody answers: the call ends with SL_EETCD within its deadline. */
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d", port);
	e = open_etcd(eps, 500);
	t0 = sli_now_ms();
	assert_int_equal(sli_etcd_get(e, "/k", &kv), SL_EETCD);
	dt = sli_now_ms() - t0;
	assert_true(dt >= 400 && dt < 800);
	assert_non_null(strstr(sli_coord_last_error(), "etcd unreachable"));
	sli_etcd_close(e);

	/* A refused port fails at once. */
	e = open_etcd("http://127.0.0.1:1", 2000);
	t0 = sli_now_ms();
	assert_int_equal(sli_etcd_put(e, "/k", "v", 1, 0, NULL), SL_EETCD);
	assert_true(sli_now_ms() - t0 < 1000);
	sli_etcd_close(e);

	/* A silent endpoint first, then a real one: the call gets through in time, and the
	 * member that answered is tried first from then on. */
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d, %s/", port, member_url[1]);
	e = open_etcd(eps, TIMEOUT_MS);
	t0 = sli_now_ms();
	assert_true(sli_etcd_put(e, "/itest/failover", "x", 1, 0, NULL) == 0);
	assert_true(sli_now_ms() - t0 < TIMEOUT_MS);
	assert_string_equal(sli_etcd_endpoint(e), member_url[1]);
	t0 = sli_now_ms();
	assert_int_equal(sli_etcd_get(e, "/itest/failover", &kv), 1);
	assert_true(sli_now_ms() - t0 < 300);
	sli_etcd_kv_fini(&kv);
	sli_etcd_close(e);
	close(fd);
}

static void test_kv_and_cas(void **state)
{
	sli_etcd *e = open_etcd(endpoints, TIMEOUT_MS);
	static const uint8_t bin[] = {0, 1, 0xff, '\n', 0x80};
	sli_etcd_kv kv, cur, *kvs;
	int64_t r1, r2, r3, lease, ttl;

	assert_int_equal(sli_etcd_get(e, "/itest/kv/absent", &kv), 0);
	assert_int_equal(kv.create_revision, 0);

	assert_int_equal(sli_etcd_put(e, "/itest/kv/a", "one", 3, 0, &r1), 0);
	assert_int_equal(sli_etcd_get(e, "/itest/kv/a", &kv), 1);
	assert_string_equal(kv.key, "/itest/kv/a");
	assert_string_equal((char *)kv.value, "one");
	assert_int_equal(kv.create_revision, r1);
	assert_int_equal(kv.mod_revision, r1);
	assert_int_equal(kv.version, 1);
	sli_etcd_kv_fini(&kv);
	assert_int_equal(sli_etcd_put(e, "/itest/kv/a", bin, sizeof(bin), 0, &r2), 0);
	assert_true(r2 > r1);
	assert_int_equal(sli_etcd_get(e, "/itest/kv/a", &kv), 1);
	assert_int_equal(kv.value_len, sizeof(bin));
	assert_memory_equal(kv.value, bin, sizeof(bin));
	assert_int_equal(kv.create_revision, r1);
	assert_int_equal(kv.mod_revision, r2);
	sli_etcd_kv_fini(&kv);

	/* CAS on mod_revision: the current one wins, a stale one fails and shows the current. */
	sli_etcd_cmp cmp = {.target = SLI_ETCD_MOD, .key = "/itest/kv/a", .revision = r2};
	sli_etcd_op put = {.kind = SLI_ETCD_PUT, .key = "/itest/kv/a", .value = "two", .value_len = 3};
	assert_int_equal(sli_etcd_txn(e, &cmp, 1, &put, 1, &r3, NULL), 1);
	assert_true(r3 > r2);
	put.value = "three";
	put.value_len = 5;
	assert_int_equal(sli_etcd_txn(e, &cmp, 1, &put, 1, NULL, &cur), 0); /* r2 is stale now */
	assert_int_equal(cur.mod_revision, r3);
	assert_string_equal((char *)cur.value, "two");
	sli_etcd_kv_fini(&cur);
	/* CAS on value, and on create_revision == 0 (absent). */
	sli_etcd_cmp val = {.target = SLI_ETCD_VALUE, .key = "/itest/kv/a", .value = "two",
	                    .value_len = 3};
	assert_int_equal(sli_etcd_txn(e, &val, 1, &put, 1, NULL, NULL), 1);
	assert_int_equal(sli_etcd_txn(e, &val, 1, &put, 1, NULL, NULL), 0);
	sli_etcd_cmp absent = {.target = SLI_ETCD_CREATE, .key = "/itest/kv/a", .revision = 0};
	assert_int_equal(sli_etcd_txn(e, &absent, 1, &put, 1, NULL, &cur), 0);
	assert_int_equal(cur.create_revision, r1);
	sli_etcd_kv_fini(&cur);
	/* Two compares and two operations, atomically: put b and delete a. */
	sli_etcd_cmp both[2] = {{.target = SLI_ETCD_CREATE, .key = "/itest/kv/a", .revision = r1},
	                        {.target = SLI_ETCD_CREATE, .key = "/itest/kv/b", .revision = 0}};
	sli_etcd_op ops[2] = {{.kind = SLI_ETCD_PUT, .key = "/itest/kv/b", .value = "bee",
	                       .value_len = 3},
	                      {.kind = SLI_ETCD_DELETE, .key = "/itest/kv/a"}};
	assert_int_equal(sli_etcd_txn(e, both, 2, ops, 2, NULL, NULL), 1);
	assert_int_equal(sli_etcd_get(e, "/itest/kv/a", &kv), 0);
	assert_int_equal(sli_etcd_txn(e, both, 2, ops, 2, NULL, NULL), 0);

	/* Prefix reads: in key order, nothing outside the prefix. */
	assert_int_equal(sli_etcd_put(e, "/itest/kv/c", "", 0, 0, NULL), 0);
	assert_int_equal(sli_etcd_put(e, "/itest/kv0", "outside", 7, 0, NULL), 0);
	assert_int_equal(sli_etcd_get_prefix(e, "/itest/kv/", &kvs), 2);
	assert_string_equal(kvs[0].key, "/itest/kv/b");
	assert_string_equal(kvs[1].key, "/itest/kv/c");
	assert_int_equal(kvs[1].value_len, 0);
	sli_etcd_kvs_free(kvs, 2);
	assert_int_equal(sli_etcd_get_prefix(e, "/itest/none/", &kvs), 0);
	assert_null(kvs);
	int all = sli_etcd_get_prefix(e, "", &kvs); /* "": every key */
	assert_true(all >= 4);
	sli_etcd_kvs_free(kvs, (size_t)all);
	assert_int_equal(sli_etcd_delete(e, "/itest/kv/c"), 1);
	assert_int_equal(sli_etcd_delete(e, "/itest/kv/c"), 0);

	/* Leases: a key under a lease goes with it; an unknown lease is SL_ELEASE. */
	assert_int_equal(sli_etcd_lease_grant(e, 5, &lease, &ttl), 0);
	assert_true(ttl >= 5);
	assert_int_equal(sli_etcd_put(e, "/itest/kv/leased", "l", 1, lease, NULL), 0);
	assert_int_equal(sli_etcd_get(e, "/itest/kv/leased", &kv), 1);
	assert_int_equal(kv.lease, lease);
	sli_etcd_kv_fini(&kv);
	assert_int_equal(sli_etcd_lease_keepalive(e, lease, &ttl), 0);
	assert_true(ttl >= 5);
	assert_int_equal(sli_etcd_lease_revoke(e, lease), 0);
	assert_int_equal(sli_etcd_get(e, "/itest/kv/leased", &kv), 0);
	assert_int_equal(sli_etcd_lease_keepalive(e, lease, &ttl), SL_ELEASE);
	assert_int_equal(sli_etcd_lease_revoke(e, lease), SL_ELEASE);
	assert_int_equal(sli_etcd_put(e, "/itest/kv/leased", "l", 1, lease, NULL), SL_ELEASE);
	assert_non_null(strstr(sli_coord_last_error(), "lease"));
	sli_etcd_close(e);
}

static sli_election *new_election(sli_etcd *e, const char *candidate, int64_t lease_ms,
                                  sli_election_eligible_fn fn, void *arg)
{
	sli_election_config cfg = {.cluster = "itest", .process = 0, .candidate = candidate,
	                           .lease_ms = lease_ms, .eligible = fn, .eligible_arg = arg};
	sli_election *el = NULL;
	assert_int_equal(sli_election_new(e, &cfg, &el), 0);
	return el;
}

static int never(void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static void test_key_layout_and_eligibility(void **state)
{
	char key[SLI_COORD_KEY_MAX];
	sli_etcd *e = open_etcd(endpoints, TIMEOUT_MS);
	sli_leader ld;
	int asked = 0;

	assert_int_equal(sli_coord_key(key, sizeof(key), "prod-1", 7, "isr"), 0);
	assert_string_equal(key, "/sluice/prod-1/process/7/isr");
	assert_int_equal(sli_coord_key(key, sizeof(key), "a/b", 0, "leader"), SL_EARG);
	assert_int_equal(sli_coord_key(key, sizeof(key), "", 0, "leader"), SL_EARG);

	sli_election *el = new_election(e, "127.0.0.1:7001", 2000, never, &asked);
	assert_int_equal(sli_election_campaign(el, &ld), SL_EREJECTED);
	assert_int_equal(asked, 1);
	assert_non_null(strstr(sli_coord_last_error(), "not eligible"));
	assert_int_equal(sli_election_observe(el, &ld), 0); /* nothing was written */
	assert_false(sli_election_may_act(el));
	assert_int_equal(sli_election_renew(el), SL_EARG);
	sli_election_free(el);
	sli_etcd_close(e);
}

struct racer {
	const char *addr;
	pthread_barrier_t *go;
	int rc;
	sli_leader seen;
	int64_t term;
	sli_etcd *e;
	sli_election *el;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	pthread_barrier_wait(r->go);
	r->rc = sli_election_campaign(r->el, &r->seen);
	r->term = sli_election_term(r->el);
	return NULL;
}

/* Two candidates campaign at the same instant, each with its own handle on its own member. */
static void test_one_winner(void **state)
{
	pthread_barrier_t go;
	pthread_t th[2];
	struct racer r[2] = {{.addr = "127.0.0.1:7001"}, {.addr = "127.0.0.1:7002"}};
	sli_leader ld;

	pthread_barrier_init(&go, NULL, 2);
	for (int i = 0; i < 2; i++) {
		r[i].go = &go;
		r[i].e = open_etcd(member_url[i], TIMEOUT_MS);
		r[i].el = new_election(r[i].e, r[i].addr, 3000, NULL, NULL);
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);

	assert_true(r[0].rc >= 0 && r[1].rc >= 0);
	assert_int_equal(r[0].rc + r[1].rc, 1); /* exactly one won */
	int w = r[0].rc == 1 ? 0 : 1, l = 1 - w;
	assert_true(r[w].term > 0);
	assert_true(sli_election_may_act(r[w].el));
	assert_false(sli_election_may_act(r[l].el));
	assert_int_equal(r[l].term, 0);
	/* The loser was told who won; observe agrees. */
	assert_string_equal(r[l].seen.address, r[w].addr);
	assert_int_equal(r[l].seen.term, r[w].term);
	assert_int_equal(sli_election_observe(r[l].el, &ld), 1);
	assert_string_equal(ld.address, r[w].addr);
	assert_int_equal(ld.term, r[w].term);
	/* Campaigning again changes nothing: the winner still leads at its term. */
	assert_int_equal(sli_election_campaign(r[l].el, NULL), 0);
	assert_int_equal(sli_election_campaign(r[w].el, &ld), 1);
	assert_int_equal(ld.term, r[w].term);
	assert_int_equal(sli_election_renew(r[w].el), 0);

	/* Only the leader's fenced write goes through. */
	char isr[SLI_COORD_KEY_MAX];
	assert_int_equal(sli_coord_key(isr, sizeof(isr), "itest", 0, "isr"), 0);
	assert_int_equal(sli_election_put_fenced(r[w].el, isr, "a,b", 3), 0);
	assert_int_equal(sli_election_put_fenced(r[l].el, isr, "c", 1), SL_EARG);

	for (int i = 0; i < 2; i++) {
		assert_int_equal(sli_election_resign(r[i].el), 0);
		sli_election_free(r[i].el);
		sli_etcd_close(r[i].e);
	}
}

/* Campaigns every 50 ms until el wins (at most 15 s or 300 tries).  The time it won. */
static uint64_t campaign_until_won(sli_election *el)
{
	uint64_t deadline = sli_now_ms() + 15000;
	for (int i = 0; i < 300 && sli_now_ms() < deadline; i++) {
		int rc = sli_election_campaign(el, NULL);
		assert_true(rc == 0 || rc == 1);
		if (rc == 1)
			return sli_now_ms();
		sleep_ms(50);
	}
	fail_msg("no leadership within 15 s");
	return 0;
}

static void test_term_after_resign(void **state)
{
	sli_etcd *e = open_etcd(endpoints, TIMEOUT_MS);
	sli_election *a = new_election(e, "127.0.0.1:7001", 3000, NULL, NULL);
	sli_election *b = new_election(e, "127.0.0.1:7002", 3000, NULL, NULL);
	sli_leader ld;
	int64_t t1, t2, t3;

	assert_int_equal(sli_election_campaign(a, NULL), 1);
	t1 = sli_election_term(a);
	assert_int_equal(sli_election_campaign(b, &ld), 0);
	assert_int_equal(ld.term, t1);
	assert_int_equal(sli_election_resign(a), 0);
	assert_false(sli_election_may_act(a));
	assert_int_equal(sli_election_term(a), 0);
	assert_int_equal(sli_election_campaign(b, NULL), 1);
	t2 = sli_election_term(b);
	assert_true(t2 > t1);
	/* The one that resigned has nothing to renew. */
	assert_int_equal(sli_election_renew(a), SL_EARG);
	assert_int_equal(sli_election_resign(b), 0);
	assert_int_equal(sli_election_campaign(a, NULL), 1);
	t3 = sli_election_term(a);
	assert_true(t3 > t2);
	assert_int_equal(sli_election_resign(a), 0);
	assert_int_equal(sli_election_observe(b, &ld), 0);
	sli_election_free(a);
	sli_election_free(b);
	sli_etcd_close(e);
}

/* A leader that stops renewing: its lease expires, the other candidate wins a higher term,
 * and never before the old leader's safe deadline. */
static void test_term_after_expiry(void **state)
{
	sli_etcd *e = open_etcd(endpoints, TIMEOUT_MS);
	sli_election *a = new_election(e, "127.0.0.1:7001", 1000, NULL, NULL);
	sli_election *b = new_election(e, "127.0.0.1:7002", 1000, NULL, NULL);
	uint64_t a_safe, b_won;
	int64_t t1;

	assert_int_equal(sli_election_campaign(a, NULL), 1);
	t1 = sli_election_term(a);
	assert_int_equal(sli_election_renew(a), 0);
	a_safe = sli_election_safe_until_ms(a);
	assert_true(a_safe > sli_now_ms());
	assert_true(a_safe <= sli_now_ms() + (uint64_t)sli_election_ttl_ms(a));
	/* a "dies" here: no more renewals. */
	b_won = campaign_until_won(b);
	assert_true(b_won >= a_safe);
	assert_false(sli_election_may_act(a));
	assert_true(sli_election_term(b) > t1);
	assert_true(sli_election_may_act(b));
	/* a still believes it leads: its fenced write is refused, and that ends its term. */
	char isr[SLI_COORD_KEY_MAX];
	assert_int_equal(sli_coord_key(isr, sizeof(isr), "itest", 0, "isr"), 0);
	assert_int_equal(sli_election_term(a), t1);
	assert_int_equal(sli_election_put_fenced(a, isr, "stale", 5), SL_EFENCED);
	assert_int_equal(sli_election_term(a), 0);
	assert_int_equal(sli_election_put_fenced(b, isr, "fresh", 5), 0);
	int64_t t2 = sli_election_term(b);
	assert_int_equal(sli_election_resign(b), 0);

	/* A leader whose lease expired learns it from its next renewal. */
	sli_election *c = new_election(e, "127.0.0.1:7003", 1000, NULL, NULL);
	sli_leader ld;
	assert_int_equal(sli_election_campaign(c, NULL), 1);
	assert_true(sli_election_term(c) > t2);
	uint64_t deadline = sli_now_ms() + 15000;
	int gone = 0;
	for (int i = 0; i < 300 && !gone && sli_now_ms() < deadline; i++) {
		int rc = sli_election_observe(b, &ld);
		assert_true(rc == 0 || rc == 1);
		gone = rc == 0;
		if (!gone)
			sleep_ms(50);
	}
	assert_true(gone);
	assert_int_equal(sli_election_renew(c), SL_ELEASE);
	assert_false(sli_election_may_act(c));
	assert_int_equal(sli_election_term(c), 0);
	sli_election_free(a);
	sli_election_free(b);
	sli_election_free(c);
	sli_etcd_close(e);
}

/* One member killed: every kind of call still gets through within the deadline. */
static void test_member_killed(void **state)
{
	sli_etcd *e = open_etcd(endpoints, TIMEOUT_MS);
	sli_election *a = new_election(e, "127.0.0.1:7001", 3000, NULL, NULL);
	sli_etcd_kv kv;
	uint64_t t0;

	assert_int_equal(sli_etcd_put(e, "/itest/kill", "before", 6, 0, NULL), 0);
	assert_string_equal(sli_etcd_endpoint(e), member_url[0]);
	assert_int_equal(sli_election_campaign(a, NULL), 1);
	assert_int_equal(helper("kill", "1"), 0);

	/* If member 1 led etcd's raft, the others elect a new leader meanwhile (election timeout
	 * 500 ms): a call may fail once, each one inside its deadline; 20 tries at most. */
	int got = 0, put = 0;
	for (int i = 0; i < 20 && !(got && put); i++) {
		int rc;
		t0 = sli_now_ms();
		if (!got) {
			rc = sli_etcd_get(e, "/itest/kill", &kv);
			assert_true(rc == 1 || rc == SL_EETCD);
			if (rc == 1) {
				assert_string_equal((char *)kv.value, "before");
				sli_etcd_kv_fini(&kv);
				got = 1;
			}
		} else {
			rc = sli_etcd_put(e, "/itest/kill", "after", 5, 0, NULL);
			assert_true(rc == 0 || rc == SL_EETCD);
			put = rc == 0;
		}
		assert_true(sli_now_ms() - t0 < TIMEOUT_MS + 300);
	}
	assert_true(got && put);
	assert_string_not_equal(sli_etcd_endpoint(e), member_url[0]);
	assert_int_equal(sli_election_renew(a), 0);
	assert_true(sli_election_may_act(a));
	assert_int_equal(sli_election_resign(a), 0);
	sli_election_free(a);
	sli_etcd_close(e);
	assert_int_equal(helper("restart", "1"), 0);
}

/* All of etcd down: renewals fail within their deadline, and the leader stops acting exactly
 * when its safe deadline passes; nothing is needed from etcd for that. */
static void test_etcd_down(void **state)
{
	sli_etcd *e = open_etcd(endpoints, 1000);
	sli_election *a = new_election(e, "127.0.0.1:7001", 3000, NULL, NULL);
	uint64_t safe, t0, stopped = 0;

	assert_int_equal(helper("wait", NULL), 0);
	assert_int_equal(sli_election_campaign(a, NULL), 1);
	t0 = sli_now_ms();
	assert_int_equal(sli_election_renew(a), 0);
	safe = sli_election_safe_until_ms(a);
	assert_true(safe >= t0 + (uint64_t)sli_election_ttl_ms(a) / 2);
	assert_true(safe <= t0 + (uint64_t)sli_election_ttl_ms(a));

	assert_int_equal(helper("kill", "1"), 0);
	assert_int_equal(helper("kill", "2"), 0);
	assert_int_equal(helper("kill", "3"), 0);
	/* Renew every 50 ms (refused connections fail at once) until the leader stops acting:
	 * at most 400 rounds, and the deadline is a few seconds away. */
	for (int i = 0; i < 400 && sli_now_ms() < safe + 5000; i++) {
		uint64_t now = sli_now_ms();
		int acting = sli_election_may_act(a);
		if (!acting) {
			stopped = now;
			break;
		}
		assert_true(now < safe); /* never acting past the deadline */
		t0 = sli_now_ms();
		assert_int_equal(sli_election_renew(a), SL_EETCD);
		assert_true(sli_now_ms() - t0 <= 1000 + 300);
		assert_int_equal(sli_election_safe_until_ms(a), safe); /* a failure extends nothing */
		sleep_ms(50);
	}
	assert_true(stopped >= safe);
	assert_true(stopped < safe + 1500);
	assert_false(sli_election_may_act(a));
	assert_int_equal(sli_election_renew(a), SL_EETCD);
	assert_non_null(strstr(sli_coord_last_error(), "etcd unreachable"));
	assert_true(sli_election_resign(a) < 0);
	assert_false(sli_election_may_act(a));
	sli_election_free(a);
	sli_etcd_close(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_endpoints),
		cmocka_unit_test(test_deadline_and_failover),
		cmocka_unit_test(test_kv_and_cas),
		cmocka_unit_test(test_key_layout_and_eligibility),
		cmocka_unit_test(test_one_winner),
		cmocka_unit_test(test_term_after_resign),
		cmocka_unit_test(test_term_after_expiry),
		cmocka_unit_test(test_member_killed),
		cmocka_unit_test(test_etcd_down), /* last: leaves etcd down */
	};
	return cmocka_run_group_tests(tests, setup_cluster, teardown_cluster);
}
