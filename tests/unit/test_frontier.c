/*
 * test_frontier.c - the fold of Progress changes into a frontier (src/compute/frontier.c).
 *
 * A table of change sequences with the frontier expected after each change, plus the
 * inline-to-heap growth and the invariants of the multiset (sorted, no zero counts).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "compute/frontier.h"

#define C SL_TIME_CLOSED

typedef struct step {
	uint64_t time;
	int64_t delta;
	uint64_t expect; /* frontier after this change */
} step;

typedef struct fcase {
	const char *name;
	step steps[12];
	int n;
} fcase;

static const fcase cases[] = {
	{"advance one step", {{1, 1, 0}, {0, -1, 1}}, 2},
	{"retraction first", {{0, -1, C}, {5, 1, 5}}, 2},
	{"close", {{0, -1, C}}, 1},
	{"advance then close", {{3, 1, 0}, {0, -1, 3}, {3, -1, C}}, 3},
	{"two capabilities", {{2, 1, 0}, {7, 1, 0}, {0, -1, 2}, {2, -1, 7}, {7, -1, C}}, 5},
	{"count above one", {{0, 1, 0}, {0, -1, 0}, {0, -1, C}}, 3},
	{"negative below positive", {{4, 1, 0}, {2, -1, 0}, {0, -1, 4}, {2, 1, 4}}, 4},
	{"zero delta is a no-op", {{9, 0, 0}}, 1},
	{"jump far", {{UINT64_MAX - 1, 1, 0}, {0, -1, UINT64_MAX - 1}}, 2},
	{"reopen after close", {{0, -1, C}, {10, 1, 10}}, 2},
	{"out-of-order inserts",
	 {{5, 1, 0}, {3, 1, 0}, {8, 1, 0}, {1, 1, 0}, {0, -1, 1}, {1, -1, 3}, {3, -1, 5},
	  {5, -1, 8}, {8, -1, C}},
	 9},
};

static void check_invariants(const sli_frontier *f)
{
	const sli_frontier_entry *e = f->heap ? f->heap : f->inl;
	assert_true(f->n <= f->cap);
	for (uint32_t i = 0; i < f->n; i++) {
		assert_int_not_equal(e[i].count, 0);
		if (i > 0)
			assert_true(e[i - 1].time < e[i].time);
	}
}

static void test_table(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		sli_frontier f;
		sli_frontier_init(&f);
		assert_int_equal(sli_frontier_get(&f), 0);
		for (int i = 0; i < cases[c].n; i++) {
			const step *s = &cases[c].steps[i];
			assert_int_equal(sli_frontier_update(&f, s->time, s->delta), 0);
			check_invariants(&f);
			if (sli_frontier_get(&f) != s->expect)
				fail_msg("case '%s' step %d: frontier %llu, expected %llu", cases[c].name, i,
				         (unsigned long long)sli_frontier_get(&f),
				         (unsigned long long)s->expect);
		}
		sli_frontier_fini(&f);
	}
}

/* Many outstanding times push the set from its inline storage to the heap and back down. */
static void test_growth(void **state)
{
	(void)state;
	sli_frontier f;
	sli_frontier_init(&f);
	for (uint64_t t = 100; t > 0; t--)
		assert_int_equal(sli_frontier_update(&f, t, 1), 0);
	check_invariants(&f);
	assert_int_equal(f.n, 101);
	assert_int_equal(sli_frontier_get(&f), 0);
	assert_int_equal(sli_frontier_update(&f, 0, -1), 0);
	for (uint64_t t = 1; t <= 100; t++) {
		assert_int_equal(sli_frontier_get(&f), t);
		assert_int_equal(sli_frontier_update(&f, t, -1), 0);
		check_invariants(&f);
	}
	assert_int_equal(f.n, 0);
	assert_true(sli_frontier_get(&f) == SL_TIME_CLOSED);
	sli_frontier_fini(&f);
	sli_frontier_fini(&f); /* idempotent */
}

/* A frontier that advances forever in (t+1,+1),(t,-1) steps never grows past one entry. */
static void test_steady_advance(void **state)
{
	(void)state;
	sli_frontier f;
	sli_frontier_init(&f);
	for (uint64_t t = 0; t < 100000; t++) {
		assert_int_equal(sli_frontier_update(&f, t + 1, 1), 0);
		assert_int_equal(sli_frontier_update(&f, t, -1), 0);
		assert_int_equal(f.n, 1);
		assert_null(f.heap);
	}
	assert_int_equal(sli_frontier_get(&f), 100000);
	sli_frontier_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_steady_advance),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
