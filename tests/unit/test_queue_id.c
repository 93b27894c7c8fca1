/*
 * test_queue_id.c - queue IDs: shape, uniqueness, arrival order, the
 * time they encode, refusal of everything that is not one, and the IDs
 * derived for reports (the same as bounce made before they moved here).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/mail/queue_id.h"
#include "core/util.h"

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

/*
 * Computed with cmd/bounce.c's derive_id before it became
 * queue_id_derive: DSNs already in spools carry these IDs, so a rerun
 * of bounce must derive them again bit for bit.
 */
static void
test_derive_vectors(void **state)
{
	static const struct {
		const char	*orig;
		int		 tag;
		unsigned	 gen;
		const char	*id;
	} v[] = {
		{ "0K1B2C3D4E5F6G7H8", 'F', 0, "0K1B2C3D4E5CCZESR" },
		{ "0K1B2C3D4E5F6G7H8", 'F', 1, "0K1B2C3D4E536ZNNP" },
		{ "0K1B2C3D4E5F6G7H8", 'F', 7, "0K1B2C3D4E50R41G2" },
		{ "0K1B2C3D4E5F6G7H8", 'R', 0, "0K1B2C3D4E5X66MZW" },
		{ "0K1B2C3D4E5F6G7H8", 'R', 1, "0K1B2C3D4E5C22DYF" },
		{ "0K1B2C3D4E5F6G7H8", 'R', 7, "0K1B2C3D4E5V29KPW" },
		{ "0K1B2C3D4E5F6G7H8", 'D', 0, "0K1B2C3D4E5T6TJ6G" },
		{ "0K1B2C3D4E5F6G7H8", 'D', 1, "0K1B2C3D4E5K26TCQ" },
		{ "0K1B2C3D4E5F6G7H8", 'D', 7, "0K1B2C3D4E5GQC8QD" },
		{ "ZZZZZZZZZZZZZZZZZ", 'F', 0, "ZZZZZZZZZZZ426PKS" },
		{ "ZZZZZZZZZZZZZZZZZ", 'R', 1, "ZZZZZZZZZZZR3QE24" },
		{ "ZZZZZZZZZZZZZZZZZ", 'D', 7, "ZZZZZZZZZZZY4JHT0" },
	};
	char	 id[QUEUE_ID_SIZE];
	size_t	 i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		memset(id, 'x', sizeof(id));
		queue_id_derive(v[i].orig, v[i].tag, v[i].gen, id);
		assert_string_equal(id, v[i].id);
	}
}

/*
 * A derived ID is a valid ID that sorts with its original (same time
 * symbols, same arrival second), the same every time, and another tag
 * or generation gives another ID (fixed originals: 30 random-looking
 * bits could collide by chance, these are known not to).
 */
static void
test_derive_valid_distinct(void **state)
{
	static const int tags[] = { 'F', 'R', 'D' };
	static const char *origs[] = { "0K1B2C3D4E5F6G7H8",
	    "1NGMKK46KBY07HDKR", "00000000000000000" };
	const char	*orig;
	char		 a[QUEUE_ID_SIZE];
	char		 b[QUEUE_ID_SIZE];
	static char	 seen[3 * 20][QUEUE_ID_SIZE];
	size_t		 t, n = 0, i;
	unsigned	 gen;
	int		 k;

	for (k = 0; k < 3; k++) {
		orig = origs[k];
		n = 0;
		for (t = 0; t < 3; t++) {
			for (gen = 0; gen < 20; gen++) {
				queue_id_derive(orig, tags[t], gen, a);
				queue_id_derive(orig, tags[t], gen, b);
				assert_string_equal(a, b);
				assert_true(queue_id_valid(a));
				assert_memory_equal(a, orig, 11);
				assert_int_equal(queue_id_time(a),
				    queue_id_time(orig));
				assert_string_not_equal(a, orig);
				for (i = 0; i < n; i++)
					assert_string_not_equal(seen[i], a);
				memcpy(seen[n++], a, QUEUE_ID_SIZE);
			}
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_unique_sorted_valid),
		cmocka_unit_test(test_alphabet),
		cmocka_unit_test(test_invalid_ids),
		cmocka_unit_test(test_id_time),
		cmocka_unit_test(test_derive_vectors),
		cmocka_unit_test(test_derive_valid_distinct),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
