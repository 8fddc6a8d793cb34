/*
 * test_coord_json.c - unit tests of etcd_json.c (src/coord): base64 both ways at every length
 * and against etcd's own examples, int64s as strings or numbers, and the key-value objects of
 * a range answer, including the zero fields protobuf's JSON leaves out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "coord/coord_int.h"

static void test_b64_known(void **state)
{
	static const struct {
		const char *plain, *b64;
	} cases[] = {
		{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
		{"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}, {"bar", "YmFy"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = sli_json_b64(cases[i].plain, strlen(cases[i].plain));
		uint8_t *out;
		size_t n;
		assert_non_null(j);
		assert_string_equal(json_string_value(j), cases[i].b64);
		json_decref(j);
		assert_int_equal(sli_b64_decode(cases[i].b64, &out, &n), 0);
		assert_int_equal(n, strlen(cases[i].plain));
		assert_memory_equal(out, cases[i].plain, n);
		assert_int_equal(out[n], 0);
		free(out);
	}
}

static void test_b64_round_trip(void **state)
{
	uint8_t in[300];
	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 37 + 11);
	for (size_t len = 0; len <= sizeof(in); len++) {
		json_t *j = sli_json_b64(in, len);
		uint8_t *out;
		size_t n;
		assert_non_null(j);
		assert_int_equal(strlen(json_string_value(j)), (len + 2) / 3 * 4);
		assert_int_equal(sli_b64_decode(json_string_value(j), &out, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(out, in, len);
		free(out);
		json_decref(j);
	}
}

static void test_b64_refusals(void **state)
{
	static const char *const bad[] = {"Z", "Zm9v!", "Zm 9v", "Zm9vY", "\xc3\xa9"};
	uint8_t *out = NULL;
	size_t n = 7;
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sli_b64_decode(bad[i], &out, &n), SL_EPROTO);
		assert_null(out);
		assert_int_equal(n, 7);
	}
	/* The URL-safe alphabet is read too. */
	assert_int_equal(sli_b64_decode("-_8=", &out, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0], 0xfb);
	assert_int_equal(out[1], 0xff);
	free(out);
}

static void test_i64(void **state)
{
	json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:b, s:s}", "str", "9223372036854775807",
	                      "num", (json_int_t)42, "neg", "-5", "junk", "12x", "empty", "",
	                      "bool", 1, "big", "9223372036854775808");
	int64_t v = 1;
	(void)state;
	assert_non_null(o);
	assert_int_equal(sli_json_get_i64(o, "str", &v), 0);
	assert_true(v == INT64_MAX);
	assert_int_equal(sli_json_get_i64(o, "num", &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(sli_json_get_i64(o, "neg", &v), 0);
	assert_int_equal(v, -5);
	assert_int_equal(sli_json_get_i64(o, "absent", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(sli_json_get_i64(NULL, "absent", &v), 0);
	assert_int_equal(sli_json_get_i64(o, "junk", &v), SL_EPROTO);
	assert_int_equal(sli_json_get_i64(o, "empty", &v), SL_EPROTO);
	assert_int_equal(sli_json_get_i64(o, "bool", &v), SL_EPROTO);
	assert_int_equal(sli_json_get_i64(o, "big", &v), SL_EPROTO);
	json_decref(o);

	json_t *s = sli_json_i64(INT64_MIN);
	assert_string_equal(json_string_value(s), "-9223372036854775808");
	json_decref(s);
}

static void test_kv_parse(void **state)
{
	json_error_t err;
	/* As etcd answers: a key with an empty value and no lease leaves both out. */
	json_t *full = json_loads("{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":"
	                          "\"5\",\"version\":\"3\",\"value\":\"YmFy\",\"lease\":\"77\"}",
	                          0, &err);
	json_t *sparse = json_loads("{\"key\":\"Zm9v\",\"create_revision\":\"2\","
	                            "\"mod_revision\":\"2\",\"version\":\"1\"}", 0, &err);
	json_t *bad = json_loads("{\"key\":\"Zm9v!\"}", 0, &err);
	json_t *badrev = json_loads("{\"key\":\"Zm9v\",\"mod_revision\":[1]}", 0, &err);
	sli_etcd_kv kv;
	(void)state;

	assert_int_equal(sli_etcd_kv_parse(full, &kv), 0);
	assert_string_equal(kv.key, "foo");
	assert_int_equal(kv.key_len, 3);
	assert_string_equal((char *)kv.value, "bar");
	assert_int_equal(kv.create_revision, 2);
	assert_int_equal(kv.mod_revision, 5);
	assert_int_equal(kv.version, 3);
	assert_int_equal(kv.lease, 77);
	sli_etcd_kv_fini(&kv);
	assert_null(kv.key);

	assert_int_equal(sli_etcd_kv_parse(sparse, &kv), 0);
	assert_int_equal(kv.value_len, 0);
	assert_non_null(kv.value);
	assert_string_equal((char *)kv.value, "");
	assert_int_equal(kv.lease, 0);
	sli_etcd_kv_fini(&kv);

	assert_int_equal(sli_etcd_kv_parse(bad, &kv), SL_EPROTO);
	assert_int_equal(sli_etcd_kv_parse(badrev, &kv), SL_EPROTO);
	assert_int_equal(sli_etcd_kv_parse(json_array_get(NULL, 0), &kv), SL_EPROTO);
	json_decref(full);
	json_decref(sparse);
	json_decref(bad);
	json_decref(badrev);
	sli_etcd_kv_fini(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_known),
		cmocka_unit_test(test_b64_round_trip),
		cmocka_unit_test(test_b64_refusals),
		cmocka_unit_test(test_i64),
		cmocka_unit_test(test_kv_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
