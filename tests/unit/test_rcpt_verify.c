/*
 * test_rcpt_verify.c - the RCPT verification decision
 * (cmd/rcpt_verify.c, rcpt_verify_decide): a database verdict decides
 * whatever the primary would say; without one, the primary's 2xx or 5xx;
 * without either, verify-unknown-when-down (defer: 450, accept); never a
 * refusal without a verdict; the rule named for each.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cmd/rcpt_verify.h"

static void
check(enum rv_known k, enum rv_callout c, int accept, enum rv_action want,
    const char *want_rule)
{
	const char	*rule = NULL;

	assert_int_equal(rcpt_verify_decide(k, c, accept, &rule), want);
	assert_non_null(rule);
	assert_string_equal(rule, want_rule);
}

static void
test_database_decides(void **state)
{
	enum rv_callout	 c;
	int		 accept;

	(void)state;
	for (c = RV_NOT_ASKED; c <= RV_CANNOT_ASK; c++)
		for (accept = 0; accept <= 1; accept++) {
			check(RV_KNOWN_VALID, c, accept, RV_ACCEPT,
			    "verify-db");
			check(RV_KNOWN_INVALID, c, accept, RV_REJECT,
			    "verify-db");
		}
}

static void
test_primary_decides_the_unknown(void **state)
{
	(void)state;
	check(RV_UNKNOWN, RV_PRIMARY_VALID, 0, RV_ACCEPT, "callout");
	check(RV_UNKNOWN, RV_PRIMARY_VALID, 1, RV_ACCEPT, "callout");
	check(RV_UNKNOWN, RV_PRIMARY_INVALID, 0, RV_REJECT, "callout");
	check(RV_UNKNOWN, RV_PRIMARY_INVALID, 1, RV_REJECT, "callout");
}

static void
test_unverified_never_refused(void **state)
{
	(void)state;
	check(RV_UNKNOWN, RV_CANNOT_ASK, 0, RV_DEFER, "unverified");
	check(RV_UNKNOWN, RV_CANNOT_ASK, 1, RV_ACCEPT, "unverified");
	check(RV_UNKNOWN, RV_NOT_ASKED, 0, RV_DEFER, "unverified");
	check(RV_UNKNOWN, RV_NOT_ASKED, 1, RV_ACCEPT, "unverified");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_database_decides),
		cmocka_unit_test(test_primary_decides_the_unknown),
		cmocka_unit_test(test_unverified_never_refused),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
