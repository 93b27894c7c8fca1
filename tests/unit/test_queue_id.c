/*
 * test_queue_id.c - queue IDs: shape, uniqueness, arrival order, the
 * time they encode, and refusal of everything that is not one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/util.h"
#include "spool/spool.h"

#define NIDS	1000

static int
cmp_id(const void *a, const void *b)
{
	return (strcmp(a, b));
}

static void
test_ids_unique_sorted_valid(void **state)
{
	static char	 ids[NIDS][QUEUE_ID_SIZE];
	time_t		 before, t, after;
	int		 i;

	/*
	 * Bounds from the clock the IDs use: time(2) reads the coarse
	 * clock, which can still be in the previous second for a few
	 * milliseconds after gettimeofday(2) has moved on.
	 */
	now_tv(&before, NULL);
	for (i = 0; i < NIDS; i++) {
		assert_int_equal(queue_id_new(ids[i]), 0);
		assert_int_equal(strlen(ids[i]), QUEUE_ID_LEN);
		assert_true(queue_id_valid(ids[i]));
		t = queue_id_time(ids[i]);
		now_tv(&after, NULL);
		assert_true(t >= before && t <= after);
		/* Strictly increasing within a process: byte order. */
		if (i > 0)
			assert_true(strcmp(ids[i - 1], ids[i]) < 0);
	}
	qsort(ids, NIDS, QUEUE_ID_SIZE, cmp_id);
	for (i = 1; i < NIDS; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
}

static void
test_alphabet(void **state)
{
	char	 id[QUEUE_ID_SIZE];
	int	 i, j;

	for (j = 0; j < 200; j++) {
		assert_int_equal(queue_id_new(id), 0);
		for (i = 0; i < QUEUE_ID_LEN; i++) {
			assert_true((id[i] >= '0' && id[i] <= '9') ||
			    (id[i] >= 'A' && id[i] <= 'Z'));
			assert_null(strchr("ILOU", id[i]));
		}
	}
}

static void
test_invalid_ids(void **state)
{
	static const char *bad[] = {
		"", "../x", "a/b", "1NGMKK46KBY07HDK", "1NGMKK46KBY07HDKRR",
		"1ngmkk46kby07hdkr", "1NGMKK46KBY07HDKI", "1NGMKK46KBY07HDK/",
		"../../etc/passwd", "1NGMKK46KBY07HDK.", "1NGMKK46KBY07HD KR",
		"1NGMKK46KBY07HDKO", "1NGMKK46KBY07HDKU", "1NGMKK46KBY07HDKL",
		"1NGMKK46KBY07HDK\n",
	};
	size_t	 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(queue_id_valid(bad[i]));
	assert_false(queue_id_valid(NULL));
	assert_true(queue_id_valid("1NGMKK46KBY07HDKR"));
	assert_true(queue_id_valid("00000000000000000"));
	assert_true(queue_id_valid("ZZZZZZZZZZZZZZZZZ"));
}

static void
test_id_time(void **state)
{
	/* The first 7 symbols, base 32: "0000001" is 1, "0000010" 32. */
	assert_int_equal(queue_id_time("00000010000000000"), 1);
	assert_int_equal(queue_id_time("00000100000000000"), 32);
	assert_int_equal(queue_id_time("00000Z1ZZZZZZZZZZ"), 31 * 32 + 1);
	assert_int_equal(queue_id_time("1NGMKK4ZZZZZZZZZZ"),
	    queue_id_time("1NGMKK40000000000"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_unique_sorted_valid),
		cmocka_unit_test(test_alphabet),
		cmocka_unit_test(test_invalid_ids),
		cmocka_unit_test(test_id_time),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
