/*
 * itest_tls.c - TLS and tokens between the compute runtime and an in-process storage runtime,
 * both real, on 127.0.0.1 port 0.  Certificates are made here with the OpenSSL API (a CA, a
 * server certificate for IP 127.0.0.1, a client certificate, and a second CA nobody trusts).
 *
 * Checked: several MB of updates reach a mutual-TLS, token-protected client exactly; a client
 * without TLS, without a client certificate, with a CA that did not sign the server, or with a
 * wrong token is refused at open with the matching code, quickly, and the server goes on.
 * The suite runs under ThreadSanitizer too (scripts/test.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "sluice/compute.h"
#include "sluice/storage.h"

#define WAIT_MS 30000
#define TOKEN "itest-tls-token"
#define ROWS 20000 /* per worker */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

typedef struct env {
	char dir[64];
	char path[8][128]; /* ca.pem, srv.pem, srv.key, cli.pem, cli.key, other.pem */
	sl_storage *st;
	sl_source *src;
	char addr[64];
} env;

enum { CA, SRV, SRV_KEY, CLI, CLI_KEY, OTHER };

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(e);
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* A certificate for key, signed by ca_key as ca (self-signed when ca is NULL). */
static X509 *make_cert(EVP_PKEY *key, X509 *ca, EVP_PKEY *ca_key, const char *cn, const char *san)
{
	static long serial = 1;
	X509 *x = X509_new();
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : n);
	add_ext(x, ca ? ca : x, NID_basic_constraints, ca ? "CA:FALSE" : "critical,CA:TRUE");
	if (ca == NULL)
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	if (san)
		add_ext(x, ca, NID_subject_alt_name, san);
	assert_true(X509_sign(x, ca_key ? ca_key : key, EVP_sha256()) > 0);
	return x;
}

static void write_pem(const char *path, X509 *x, EVP_PKEY *key)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	if (x)
		assert_int_equal(PEM_write_X509(f, x), 1);
	if (key)
		assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
}

static int setup(void **state)
{
	env *e = calloc(1, sizeof(*e));
	static const char *names[] = {"ca.pem", "srv.pem", "srv.key", "cli.pem", "cli.key", "other.pem"};
	snprintf(e->dir, sizeof(e->dir), "/tmp/itest_tls.XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	for (int i = 0; i <= OTHER; i++)
		snprintf(e->path[i], sizeof(e->path[i]), "%s/%s", e->dir, names[i]);

	EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *srv_key = EVP_EC_gen("P-256");
	EVP_PKEY *cli_key = EVP_EC_gen("P-256"), *other_key = EVP_EC_gen("P-256");
	assert_true(ca_key && srv_key && cli_key && other_key);
	X509 *ca = make_cert(ca_key, NULL, NULL, "itest CA", NULL);
	X509 *srv = make_cert(srv_key, ca, ca_key, "127.0.0.1", "IP:127.0.0.1");
	X509 *cli = make_cert(cli_key, ca, ca_key, "itest client", NULL);
	X509 *other = make_cert(other_key, NULL, NULL, "itest other CA", NULL);
	write_pem(e->path[CA], ca, NULL);
	write_pem(e->path[SRV], srv, NULL);
	write_pem(e->path[SRV_KEY], NULL, srv_key);
	write_pem(e->path[CLI], cli, NULL);
	write_pem(e->path[CLI_KEY], NULL, cli_key);
	write_pem(e->path[OTHER], other, NULL);
	X509_free(ca);
	X509_free(srv);
	X509_free(cli);
	X509_free(other);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(srv_key);
	EVP_PKEY_free(cli_key);
	EVP_PKEY_free(other_key);

	sl_storage_config cfg;
	sl_storage_config_init(&cfg);
	cfg.listen = "127.0.0.1:0";
	cfg.tls_cert = e->path[SRV];
	cfg.tls_key = e->path[SRV_KEY];
	cfg.tls_client_ca = e->path[CA];
	cfg.auth_token = TOKEN;
	assert_int_equal(sl_storage_open(&cfg, &e->st), 0);
	assert_int_equal(sl_source_register(e->st, "s", "test", 2, 0, &e->src), 0);
	/* ROWS rows per worker, 100 bytes each ("<number>" padded with 'x'), one per time */
	sl_update *ups = calloc(ROWS, sizeof(*ups));
	char (*rows)[100] = calloc(ROWS, 100);
	for (uint32_t w = 0; w < 2; w++) {
		for (uint32_t i = 0; i < ROWS; i++) {
			memset(rows[i], 'x', 100);
			int n = snprintf(rows[i], 100, "%u", i + 1);
			rows[i][n] = 'x';
			ups[i] = (sl_update){{(const uint8_t *)rows[i], 100}, i, 1};
		}
		assert_int_equal(sl_source_append(e->src, w, SL_OK, ups, ROWS), 0);
		assert_int_equal(sl_source_advance(e->src, w, ROWS), 0);
		assert_int_equal(sl_source_close_worker(e->src, w), 0);
	}
	free(ups);
	free(rows);
	assert_int_equal(sl_storage_start(e->st), 0);
	snprintf(e->addr, sizeof(e->addr), "127.0.0.1:%d", sl_storage_port(e->st));
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	env *e = *state;
	sl_storage_close(e->st);
	for (int i = 0; i <= OTHER; i++)
		unlink(e->path[i]);
	rmdir(e->dir);
	free(e);
	return 0;
}

static void config(env *e, sl_client_config *cfg)
{
	sl_client_config_init(cfg);
	cfg->server = e->addr;
	cfg->retry_for_ms = 0;
	cfg->tls_ca = e->path[CA];
	cfg->tls_cert = e->path[CLI];
	cfg->tls_key = e->path[CLI_KEY];
	cfg->auth_token = TOKEN;
}

static void test_tls_stream_exact(void **state)
{
	env *e = *state;
	sl_client_config cfg;
	sl_client *c;
	sl_queue *q;
	config(e, &cfg);
	assert_int_equal(sl_client_open(&cfg, &c), 0);
	assert_int_equal(sl_queue_open(c, &q), 0);
	sl_sub subs[2];
	for (uint32_t w = 0; w < 2; w++)
		assert_int_equal(sl_subscribe(q, 1, sl_source_id(e->src), w, 0, &subs[w]), 0);
	uint64_t rows = 0, sum = 0, deadline = now_ms() + WAIT_MS;
	while (sl_sub_frontier(q, subs[0]) != SL_TIME_CLOSED ||
	       sl_sub_frontier(q, subs[1]) != SL_TIME_CLOSED) {
		if (now_ms() >= deadline)
			fail_msg("timed out with %llu rows", (unsigned long long)rows);
		sl_event ev;
		int r = sl_queue_next(q, &ev, 200);
		if (r != 1)
			continue;
		assert_int_not_equal(ev.kind, SL_EV_DISCONNECTED);
		assert_int_not_equal(ev.kind, SL_EV_SUBSCRIBE_ERROR);
		if (ev.kind == SL_EV_MESSAGES) {
			sl_iter it;
			sl_bytes row;
			int64_t diff;
			sl_iter_init(&it, &ev);
			while (sl_iter_update(&it, &row, &diff)) {
				assert_int_equal(row.len, 100);
				assert_int_equal(diff, 1);
				rows++;
				sum += strtoull((const char *)row.ptr, NULL, 10);
			}
		}
	}
	assert_int_equal(rows, 2 * ROWS);
	assert_true(sum == 2 * (uint64_t)ROWS * (ROWS + 1) / 2);
	sl_queue_close(q);
	sl_client_close(c);
}

static void expect_refused(env *e, const sl_client_config *cfg, int code, const char *what)
{
	sl_client *c = NULL;
	uint64_t t0 = now_ms();
	assert_int_equal(sl_client_open(cfg, &c), code);
	assert_null(c);
	assert_true(now_ms() - t0 < 10000);
	if (strstr(sl_client_last_error(), what) == NULL)
		fail_msg("expected '%s' in '%s'", what, sl_client_last_error());
	(void)e;
}

static void test_refusals(void **state)
{
	env *e = *state;
	sl_client_config cfg;

	config(e, &cfg);
	cfg.tls_ca = cfg.tls_cert = cfg.tls_key = NULL;
	expect_refused(e, &cfg, SL_ETLS, "this server requires TLS");

	config(e, &cfg);
	cfg.tls_cert = cfg.tls_key = NULL;
	expect_refused(e, &cfg, SL_ETLS, "TLS with storage");

	config(e, &cfg);
	cfg.tls_ca = e->path[OTHER];
	expect_refused(e, &cfg, SL_ETLS, "certificate verify failed");

	config(e, &cfg);
	cfg.auth_token = "not-the-token";
	expect_refused(e, &cfg, SL_EAUTH, "wrong token");

	config(e, &cfg);
	cfg.auth_token = NULL;
	expect_refused(e, &cfg, SL_EAUTH, "requires a token");

	/* and the server goes on serving */
	config(e, &cfg);
	sl_client *c;
	assert_int_equal(sl_client_open(&cfg, &c), 0);
	sl_source_info *infos;
	size_t n;
	assert_int_equal(sl_client_list_sources(c, WAIT_MS, &infos, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(infos[0].name, "s");
	sl_source_info_free(infos, n);
	sl_client_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tls_stream_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
