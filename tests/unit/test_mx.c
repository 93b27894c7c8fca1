/*
 * test_mx.c - unit tests of mx_select() in core/mx.c, the RFC 5321
 * section 5.1 choice a backup MX makes: sort by preference, random order
 * among equal preferences, find ourselves by name (case and trailing dot
 * ignored) or by the self flag (an address of ours), keep only strictly
 * better hosts, and report the loop when we are the best.
 */
#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/dns.h"
#include "core/mx.h"

static void
fill(struct mx_record *mx, unsigned pref, const char *host, int self)
{
	memset(mx, 0, sizeof(*mx));
	mx->pref = pref;
	strlcpy(mx->host, host, sizeof(mx->host));
	mx->self = self;
}

static void
test_sorted_and_cut_at_ourselves(void **state)
{
	struct mx_record	 mx[4];
	int			 looped;

	fill(&mx[0], 30, "mx3.example.test", 0);
	fill(&mx[1], 20, "BACKUP.example.test.", 0);
	fill(&mx[2], 10, "mx1.example.test", 0);
	fill(&mx[3], 15, "mx2.example.test", 0);
	assert_int_equal(mx_select(mx, 4, "backup.example.test", &looped), 2);
	assert_false(looped);
	assert_string_equal(mx[0].host, "mx1.example.test");
	assert_string_equal(mx[1].host, "mx2.example.test");
}

static void
test_not_listed_keeps_all(void **state)
{
	struct mx_record	 mx[3];
	int			 looped;

	fill(&mx[0], 20, "b.test", 0);
	fill(&mx[1], 10, "a.test", 0);
	fill(&mx[2], 30, "c.test", 0);
	assert_int_equal(mx_select(mx, 3, "backup.test", &looped), 3);
	assert_false(looped);
	assert_string_equal(mx[0].host, "a.test");
	assert_string_equal(mx[2].host, "c.test");
	/* No name at all (via/smarthost lookups). */
	assert_int_equal(mx_select(mx, 3, NULL, &looped), 3);
}

static void
test_self_by_address(void **state)
{
	struct mx_record	 mx[3];
	int			 looped;

	fill(&mx[0], 10, "primary.test", 0);
	fill(&mx[1], 20, "other-name-for-us.test", 1);
	fill(&mx[2], 20, "peer-backup.test", 0);
	/* Equal to our preference: not strictly better, dropped. */
	assert_int_equal(mx_select(mx, 3, "backup.test", &looped), 1);
	assert_string_equal(mx[0].host, "primary.test");
}

static void
test_loop_when_best(void **state)
{
	struct mx_record	 mx[3];
	int			 looped;

	fill(&mx[0], 10, "backup.test", 0);
	fill(&mx[1], 20, "mx2.test", 0);
	fill(&mx[2], 10, "mx1.test", 0);
	assert_int_equal(mx_select(mx, 3, "backup.test", &looped), 0);
	assert_true(looped);

	fill(&mx[0], 5, "x.test", 1);
	assert_int_equal(mx_select(mx, 1, "backup.test", &looped), 0);
	assert_true(looped);

	/* Listed twice: the best entry counts. */
	fill(&mx[0], 30, "backup.test", 0);
	fill(&mx[1], 20, "mx.test", 0);
	fill(&mx[2], 10, "backup.test", 0);
	assert_int_equal(mx_select(mx, 3, "backup.test", &looped), 0);
	assert_true(looped);
}

static void
test_equal_preferences_shuffled(void **state)
{
	struct mx_record	 mx[3];
	int			 looped, i, afirst = 0, bfirst = 0;

	for (i = 0; i < 200; i++) {
		fill(&mx[0], 10, "a.test", 0);
		fill(&mx[1], 10, "b.test", 0);
		fill(&mx[2], 5, "best.test", 0);
		assert_int_equal(mx_select(mx, 3, "backup.test", &looped), 3);
		assert_string_equal(mx[0].host, "best.test");
		if (strcmp(mx[1].host, "a.test") == 0)
			afirst++;
		else
			bfirst++;
	}
	/* Each order at least 30 times in 200 (p of failing ~ 1e-20). */
	assert_true(afirst > 30);
	assert_true(bfirst > 30);
}

static void
test_empty(void **state)
{
	int	 looped = 7;

	assert_int_equal(mx_select(NULL, 0, "backup.test", &looped), 0);
	assert_false(looped);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sorted_and_cut_at_ourselves),
		cmocka_unit_test(test_not_listed_keeps_all),
		cmocka_unit_test(test_self_by_address),
		cmocka_unit_test(test_loop_when_best),
		cmocka_unit_test(test_equal_preferences_shuffled),
		cmocka_unit_test(test_empty),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
