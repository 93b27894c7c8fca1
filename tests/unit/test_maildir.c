/*
 * test_maildir.c - the outage mailbox's parser of the user's Maildir++
 * maildirsize (spool/maildir.c): the quota line is skipped, "BYTES
 * COUNT" lines add up (removals negative, never below 0), and anything
 * else, or a sum out of range, is refused (the file is recalculated).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spool/spool_private.h"

static int64_t	 total(const char *);
static void	 test_adds_up(void **);
static void	 test_refuses(void **);

/* The parse of s, -2 when refused. */
static int64_t
total(const char *s)
{
	int64_t	 b;

	if (maildir_quota_parse(s, strlen(s), &b, NULL) == -1)
		return (-2);
	return (b);
}

static void
test_adds_up(void **state)
{
	(void)state;
	assert_int_equal(total("1000S\n"), 0);
	assert_int_equal(total("1000S\n300 1\n200 1\n"), 500);
	assert_int_equal(total("1000S,10C\n300 1\n-200 -1\n"), 100);
	assert_int_equal(total("1000S\n300 1\n\n-500 -1\n"), 0);
	assert_int_equal(total("1000S\n300 1"), 300);	/* a last line cut */
	assert_int_equal(total("1000S\n9223372036854775807 1\n"), INT64_MAX);
	assert_int_equal(maildir_quota_parse("1S\n5 1\0junk", 11,
	    &(int64_t){ 0 }, NULL), 0);
}

/* The COUNTs are summed too (compaction writes both back). */
static void
test_quota_count(void **state)
{
	int64_t	 b, c;
	const char	*s = "1000S\n300 1\n200 2\n-100 -1\n";

	(void)state;
	assert_int_equal(maildir_quota_parse(s, strlen(s), &b, &c), 0);
	assert_int_equal(b, 400);
	assert_int_equal(c, 2);
	/* A COUNT that does not read counts nothing; BYTES still do. */
	assert_int_equal(maildir_quota_parse("1S\n5 x\n7\n", 9, &b, &c), 0);
	assert_int_equal(b, 12);
	assert_int_equal(c, 0);
	/* Never below 0. */
	assert_int_equal(maildir_quota_parse("1S\n5 -3\n", 8, &b, &c), 0);
	assert_int_equal(c, 0);
}

static void
test_refuses(void **state)
{
	(void)state;
	assert_int_equal(total(""), -2);
	assert_int_equal(total("1000S"), -2);		/* no line ends */
	assert_int_equal(total("1000S\nabc 1\n"), -2);
	assert_int_equal(total("1000S\n12x 1\n"), -2);
	assert_int_equal(total("1000S\n 12 1\n"), 12);	/* strtoll's blanks */
	assert_int_equal(total("1000S\n99999999999999999999 1\n"), -2);
	assert_int_equal(total("1000S\n9223372036854775807 1\n1 1\n"), -2);
	assert_int_equal(total("1000S\n-9223372036854775807 1\n"
	    "-9223372036854775807 1\n"), -2);
	assert_int_equal(total("1000S\n1 "	/* a line over 63 */
	    "12345678901234567890123456789012345678901234567890123456789012345\n"),
	    -2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_adds_up),
		cmocka_unit_test(test_quota_count),
		cmocka_unit_test(test_refuses),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
