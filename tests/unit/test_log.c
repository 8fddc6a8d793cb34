/*
 * test_log.c - the operator's event log (src/common/log.c): levels filter, SLI_LOG_ALWAYS
 * passes every level, text lines keep the "PROG: " form, JSON lines are one object with
 * escaped strings and unquoted numbers, every event is exactly one line (one write), and a
 * message too long for a line is cut, never split.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static int fds[2];

static int setup(void **state)
{
	if (pipe2(fds, O_NONBLOCK) != 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	sli_elog_setup("test", -1, SLI_LOG_TEXT, 2); /* off again */
	close(fds[0]);
	close(fds[1]);
	return 0;
}

/* Everything written so far, NUL-terminated, into buf. */
static size_t drain(char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;
	while (len + 1 < cap && (n = read(fds[0], buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return len;
}

static void test_off_by_default_and_levels(void **state)
{
	char buf[8192];
	/* Before setup nothing is written, not even ALWAYS. */
	sli_elog(SLI_LOG_ALWAYS, "x", NULL, "hidden");
	sli_elog(SLI_LOG_ERROR, "x", NULL, "hidden");
	sli_elog_setup("prog", SLI_LOG_WARN, SLI_LOG_TEXT, fds[1]);
	assert_false(sli_elog_enabled(SLI_LOG_INFO));
	assert_true(sli_elog_enabled(SLI_LOG_WARN));
	sli_elog(SLI_LOG_DEBUG, "x", NULL, "no");
	sli_elog(SLI_LOG_INFO, "x", NULL, "no");
	sli_elog(SLI_LOG_WARN, "x", NULL, "careful %d", 1);
	sli_elog(SLI_LOG_ERROR, "x", NULL, "broken");
	sli_elog(SLI_LOG_ALWAYS, "listening", NULL, "listening on %s", "127.0.0.1:1");
	drain(buf, sizeof(buf));
	assert_string_equal(buf, "prog: warning: careful 1\nprog: error: broken\n"
	                         "prog: listening on 127.0.0.1:1\n");
	sli_elog_setup("prog", SLI_LOG_DEBUG, SLI_LOG_TEXT, fds[1]);
	sli_elog(SLI_LOG_DEBUG, "x", NULL, "detail");
	sli_elog(SLI_LOG_INFO, "x", NULL, "fact");
	drain(buf, sizeof(buf));
	assert_string_equal(buf, "prog: debug: detail\nprog: fact\n");
}

static void test_json(void **state)
{
	char buf[8192];
	sli_elog_setup("prog", SLI_LOG_INFO, SLI_LOG_JSON, fds[1]);
	sli_kv kv[] = {{"peer", "1.2.3.4:5", 0}, {"conn", "17", 1}, {"odd", "a\"b\\c\nd\x01", 0},
	               {"empty", "", 1}, {NULL, NULL, 0}};
	sli_elog(SLI_LOG_INFO, "conn_open", kv, "say \"%s\"", "hi");
	size_t n = drain(buf, sizeof(buf));
	assert_true(n > 0 && buf[n - 1] == '\n');
	assert_ptr_equal(strchr(buf, '\n'), buf + n - 1); /* one line */
	/* The timestamp varies; everything after it is fixed. */
	assert_true(strncmp(buf, "{\"ts\":\"", 7) == 0);
	const char *rest = strstr(buf, "Z\",\"level\"");
	assert_non_null(rest);
	assert_string_equal(rest, "Z\",\"level\":\"info\",\"event\":\"conn_open\",\"msg\":\"say \\\"hi\\\"\","
	                          "\"peer\":\"1.2.3.4:5\",\"conn\":17,\"odd\":\"a\\\"b\\\\c\\nd\\u0001\","
	                          "\"empty\":0}\n");
	sli_elog(SLI_LOG_ALWAYS, "listening", NULL, "up");
	drain(buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"level\":\"info\",\"event\":\"listening\",\"msg\":\"up\"}\n"));
}

static void test_long_lines_are_cut_not_split(void **state)
{
	static char big[10000], buf[16384];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (int format = SLI_LOG_TEXT; format <= SLI_LOG_JSON; format++) {
		sli_elog_setup("prog", SLI_LOG_INFO, format, fds[1]);
		sli_kv kv[] = {{"big", big, 0}, {NULL, NULL, 0}};
		sli_elog(SLI_LOG_INFO, "big", kv, "%s", big);
		size_t n = drain(buf, sizeof(buf));
		assert_true(n > 100 && n <= 4096);
		assert_int_equal(buf[n - 1], '\n');
		assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);
		if (format == SLI_LOG_JSON)
			assert_int_equal(buf[n - 2], '}');
	}
}

static void test_level_names(void **state)
{
	assert_int_equal(sli_elog_level_parse("error"), SLI_LOG_ERROR);
	assert_int_equal(sli_elog_level_parse("warn"), SLI_LOG_WARN);
	assert_int_equal(sli_elog_level_parse("warning"), SLI_LOG_WARN);
	assert_int_equal(sli_elog_level_parse("info"), SLI_LOG_INFO);
	assert_int_equal(sli_elog_level_parse("debug"), SLI_LOG_DEBUG);
	assert_int_equal(sli_elog_level_parse("loud"), -1);
	assert_int_equal(sli_elog_level_parse(""), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_off_by_default_and_levels),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_long_lines_are_cut_not_split),
		cmocka_unit_test(test_level_names),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
