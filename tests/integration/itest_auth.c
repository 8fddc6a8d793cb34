/*
 * itest_auth.c - authentication seen from the wire: a storage runtime configured with a token,
 * driven by hand-made clients (rawclient.h).  Any frame before Hello, a Hello without the
 * token and one with a wrong token each get Error(SL_EAUTH, fatal) and a close, and nothing
 * else; the runtime keeps serving a client that presented the token, before and after.  A TLS
 * ClientHello sent to a plaintext listener is answered at once with Error(SL_ETLS).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "rawclient.h"
#include "sluice/storage.h"

#define TOKEN "tok-123\twith a tab"

struct fixture {
	sl_storage *st;
	sl_source *src; /* "s": 1 worker, rows at times 0..9 */
	int port;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	sl_storage_config cfg;
	sl_storage_config_init(&cfg);
	cfg.listen = "127.0.0.1:0";
	cfg.auth_token = TOKEN;
	assert_int_equal(sl_storage_open(&cfg, &fx->st), 0);
	assert_int_equal(sl_source_register(fx->st, "s", "test", 1, 0, &fx->src), 0);
	sl_update ups[10];
	for (int i = 0; i < 10; i++)
		ups[i] = (sl_update){{(const uint8_t *)"row", 3}, (uint64_t)i, 1};
	assert_int_equal(sl_source_append(fx->src, 0, SL_OK, ups, 10), 0);
	assert_int_equal(sl_source_advance(fx->src, 0, 10), 0);
	assert_int_equal(sl_storage_start(fx->st), 0);
	fx->port = sl_storage_port(fx->st);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	sl_storage_close(fx->st);
	free(fx);
	return 0;
}

static int send_hello(rawc *c, const char *token)
{
	sli_frame f = {.type = SLI_HELLO};
	f.u.hello.magic = SLI_MAGIC;
	f.u.hello.version = SLI_PROTO_VERSION;
	f.u.hello.name = (sl_bytes){(const uint8_t *)"itest_auth", 10};
	if (token != NULL) {
		f.u.hello.flags = SLI_HELLO_TOKEN;
		f.u.hello.token = (sl_bytes){(const uint8_t *)token, strlen(token)};
	}
	return rawc_send(c, &f);
}

/* The next frames are exactly Error(code, fatal=1) naming `what`, then the close. */
static void expect_refusal(rawc *c, int code, const char *what)
{
	sli_frame f;
	assert_int_equal(rawc_next(c, &f, 5000), 1);
	assert_int_equal(f.type, SLI_ERROR);
	assert_int_equal(f.u.error.code, code);
	assert_int_equal(f.u.error.fatal, 1);
	assert_non_null(memmem(f.u.error.message.ptr, f.u.error.message.len, what, strlen(what)));
	assert_int_equal(rawc_next(c, &f, 5000), 0);
}

/* An authenticated client subscribes and receives the ten rows (its connection works). */
static void expect_served(rawc *c, uint64_t source, uint32_t handle)
{
	sli_frame f;
	uint32_t rows = 0;
	assert_int_equal(rawc_subscribe(c, handle, handle, source, 0, 0, 1 << 20), 0);
	assert_int_equal(rawc_expect(c, SLI_SUBSCRIBE_OK, &f, 5000), 1);
	assert_int_equal(f.u.subscribe_ok.handle, handle);
	while (rows < 10) {
		assert_int_equal(rawc_expect(c, SLI_DATA, &f, 5000), 1);
		sl_bytes rest = f.u.data.events;
		sli_event ev;
		while (f.u.data.collection == 0 && sli_events_next(&rest, &ev) == 1)
			if (ev.tag == SLI_EV_MESSAGES)
				rows += ev.count;
	}
	assert_int_equal(rows, 10);
}

static void authenticated(rawc *c, int port)
{
	sli_frame f;
	assert_int_equal(rawc_open(c, port), 0);
	assert_int_equal(send_hello(c, TOKEN), 0);
	assert_int_equal(rawc_next(c, &f, 5000), 1);
	assert_int_equal(f.type, SLI_HELLO);
}

static void test_subscribe_before_hello(void **state)
{
	struct fixture *fx = *state;
	rawc good, bad;
	authenticated(&good, fx->port);
	assert_int_equal(rawc_open(&bad, fx->port), 0);
	assert_int_equal(rawc_subscribe(&bad, 1, 1, 0, 0, 0, 1 << 20), 0);
	expect_refusal(&bad, SL_EAUTH, "expected Hello with a token, got Subscribe");
	rawc_close(&bad);
	expect_served(&good, sl_source_id(fx->src), 1);
	rawc_close(&good);
}

static void test_wrong_token(void **state)
{
	struct fixture *fx = *state;
	rawc good, bad;
	authenticated(&good, fx->port);
	assert_int_equal(rawc_open(&bad, fx->port), 0);
	assert_int_equal(send_hello(&bad, "tok-124\twith a tab"), 0);
	/* a Subscribe right behind it is not acted on either */
	assert_int_equal(rawc_subscribe(&bad, 1, 1, 0, 0, 0, 1 << 20), 0);
	expect_refusal(&bad, SL_EAUTH, "authentication failed: wrong token");
	rawc_close(&bad);
	/* a prefix of the token, and the token with more after it, are wrong too */
	assert_int_equal(rawc_open(&bad, fx->port), 0);
	assert_int_equal(send_hello(&bad, "tok-123"), 0);
	expect_refusal(&bad, SL_EAUTH, "wrong token");
	rawc_close(&bad);
	assert_int_equal(rawc_open(&bad, fx->port), 0);
	assert_int_equal(send_hello(&bad, TOKEN "x"), 0);
	expect_refusal(&bad, SL_EAUTH, "wrong token");
	rawc_close(&bad);
	assert_int_equal(rawc_open(&bad, fx->port), 0);
	assert_int_equal(send_hello(&bad, ""), 0);
	expect_refusal(&bad, SL_EAUTH, "wrong token");
	rawc_close(&bad);
	expect_served(&good, sl_source_id(fx->src), 2);
	rawc_close(&good);
}

static void test_missing_token(void **state)
{
	struct fixture *fx = *state;
	rawc good, bad;
	authenticated(&good, fx->port);
	assert_int_equal(rawc_open(&bad, fx->port), 0);
	assert_int_equal(send_hello(&bad, NULL), 0);
	expect_refusal(&bad, SL_EAUTH, "this server requires a token");
	rawc_close(&bad);
	expect_served(&good, sl_source_id(fx->src), 3);
	rawc_close(&good);
}

static void test_tls_hello_to_plaintext(void **state)
{
	struct fixture *fx = *state;
	rawc bad;
	/* the first bytes of a TLS 1.2+ ClientHello record */
	static const uint8_t ch[] = {0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00, 0x00, 0xf0, 0x03, 0x03};
	assert_int_equal(rawc_open(&bad, fx->port), 0);
	assert_int_equal(rawc_send_raw(&bad, ch, sizeof(ch)), 0);
	expect_refusal(&bad, SL_ETLS, "does not use TLS");
	rawc_close(&bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_subscribe_before_hello, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_hello_to_plaintext, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
