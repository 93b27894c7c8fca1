/*
 * test_flush_select.c - which messages a flush run takes and for which
 * domains (cmd/flush_select.c): held and claimed messages never, named
 * IDs due or not, otherwise only due ones unless forced; a finished
 * message only removed, and only by a run without -d; each pending
 * domain once, in order, the -d domain alone when given; "multi" when
 * pending recipients span domains.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmd/flush_select.h"
#include "core/mail/envelope.h"

#define NOW	1795837540

static char id_a[] = "1NH0SM7AY82HK4F6V";
static char id_b[] = "1NH0SM7AY82HK4F6W";

static void
make(struct envelope *env, const char *id)
{
	memset(env, 0, sizeof(*env));
	strlcpy(env->id, id, sizeof(env->id));
	env->arrival = NOW - 600;
	env->sender = strdup("s@example.org");
}

static struct recipient *
rcpt(struct envelope *env, const char *addr, enum rcpt_state state)
{
	struct recipient	*r;

	r = envelope_add_recipient(env, addr);
	r->state = state;
	return (r);
}

static void
criteria(struct flush_criteria *fc)
{
	memset(fc, 0, sizeof(*fc));
	fc->now = NOW;
}

static void
test_due_time(void **state)
{
	struct flush_criteria	 fc;
	struct envelope		 env;

	criteria(&fc);
	make(&env, id_a);
	rcpt(&env, "x@a.test", RCPT_DEFERRED);
	env.next_retry = 0;
	assert_true(flush_due(&fc, &env));
	env.next_retry = NOW;
	assert_true(flush_due(&fc, &env));
	env.next_retry = NOW + 1;
	assert_false(flush_due(&fc, &env));
	/* -f: due or not. */
	fc.force = 1;
	assert_true(flush_due(&fc, &env));
	envelope_free(&env);
}

static void
test_held_claimed(void **state)
{
	struct flush_criteria	 fc;
	struct envelope		 env;
	char			*ids[] = { id_a };

	criteria(&fc);
	fc.force = 1;
	make(&env, id_a);
	rcpt(&env, "x@a.test", RCPT_QUEUED);
	env.held = 1;
	assert_false(flush_due(&fc, &env));
	env.held = 0;
	env.claimed = 1;
	assert_false(flush_due(&fc, &env));
	/* Not even when named. */
	fc.ids = ids;
	fc.nids = 1;
	assert_false(flush_due(&fc, &env));
	env.claimed = 0;
	env.held = 1;
	assert_false(flush_due(&fc, &env));
	envelope_free(&env);
}

static void
test_named_ids(void **state)
{
	struct flush_criteria	 fc;
	struct envelope		 a, b;
	char			*ids[] = { id_b };

	criteria(&fc);
	fc.ids = ids;
	fc.nids = 1;
	make(&a, id_a);
	make(&b, id_b);
	rcpt(&a, "x@a.test", RCPT_QUEUED);
	rcpt(&b, "x@a.test", RCPT_DEFERRED);
	/* Named: due or not; not named: not taken, however due. */
	b.next_retry = NOW + 3600;
	assert_true(flush_due(&fc, &b));
	a.next_retry = 0;
	assert_false(flush_due(&fc, &a));
	envelope_free(&a);
	envelope_free(&b);
}

static void
test_finished_removed(void **state)
{
	struct flush_criteria	 fc;
	struct envelope		 env;
	struct flush_pick	 p;
	struct recipient	*r;

	criteria(&fc);
	make(&env, id_a);
	/* No recipient left at all: nothing but the removal. */
	assert_int_equal(flush_pick(&fc, &env, &p), FLUSH_REMOVE);
	rcpt(&env, "x@a.test", RCPT_DELIVERED);
	r = rcpt(&env, "y@b.test", RCPT_FAILED);
	r->reported = 1;
	assert_int_equal(flush_pick(&fc, &env, &p), FLUSH_REMOVE);
	assert_int_equal(p.ndomains, 0);
	/* A run with -d leaves removals to a run without. */
	fc.domain = "a.test";
	assert_int_equal(flush_pick(&fc, &env, &p), FLUSH_SKIP);
	fc.domain = NULL;
	/* A report still owed (bounce's part): not finished, nothing to send. */
	r->reported = 0;
	assert_int_equal(flush_pick(&fc, &env, &p), FLUSH_SKIP);
	r->reported = 1;
	env.rcpts[0].relayed = 1;
	assert_int_equal(flush_pick(&fc, &env, &p), FLUSH_SKIP);
	envelope_free(&env);
}

static void
test_domains(void **state)
{
	struct flush_criteria	 fc;
	struct envelope		 env;
	struct flush_pick	 p;

	criteria(&fc);
	make(&env, id_a);
	rcpt(&env, "x@B.test", RCPT_QUEUED);
	rcpt(&env, "y@a.test", RCPT_DEFERRED);
	rcpt(&env, "z@b.test.", RCPT_DEFERRED);
	rcpt(&env, "w@c.test", RCPT_DELIVERED);
	rcpt(&env, "v@a.test", RCPT_QUEUED);
	assert_int_equal(flush_pick(&fc, &env, &p), FLUSH_DELIVER);
	/* Once each, in the order of its first pending recipient. */
	assert_int_equal(p.ndomains, 2);
	assert_string_equal(p.domains[0], "b.test");
	assert_string_equal(p.domains[1], "a.test");
	assert_true(p.multi);
	flush_pick_free(&p);
	assert_null(p.domains);
	envelope_free(&env);
}

static void
test_single_domain(void **state)
{
	struct flush_criteria	 fc;
	struct envelope		 env;
	struct flush_pick	 p;

	criteria(&fc);
	make(&env, id_a);
	rcpt(&env, "x@a.test", RCPT_QUEUED);
	rcpt(&env, "y@A.TEST.", RCPT_DEFERRED);
	/* Delivered or failed elsewhere: no longer another domain. */
	rcpt(&env, "z@b.test", RCPT_DELIVERED);
	rcpt(&env, "w@c.test", RCPT_FAILED);
	assert_int_equal(flush_pick(&fc, &env, &p), FLUSH_DELIVER);
	assert_int_equal(p.ndomains, 1);
	assert_string_equal(p.domains[0], "a.test");
	assert_false(p.multi);
	flush_pick_free(&p);
	envelope_free(&env);
}

static void
test_domain_option(void **state)
{
	struct flush_criteria	 fc;
	struct envelope		 env;
	struct flush_pick	 p;

	criteria(&fc);
	fc.domain = "a.test";
	make(&env, id_a);
	rcpt(&env, "x@b.test", RCPT_QUEUED);
	rcpt(&env, "y@A.test", RCPT_QUEUED);
	rcpt(&env, "z@a.test", RCPT_DEFERRED);
	assert_int_equal(flush_pick(&fc, &env, &p), FLUSH_DELIVER);
	assert_int_equal(p.ndomains, 1);
	assert_string_equal(p.domains[0], "a.test");
	/* The message has b.test too: another worker may hold it. */
	assert_true(p.multi);
	flush_pick_free(&p);
	fc.domain = "c.test";
	assert_int_equal(flush_pick(&fc, &env, &p), FLUSH_SKIP);
	assert_int_equal(p.ndomains, 0);
	assert_null(p.domains);
	envelope_free(&env);
}

static void
test_no_domain(void **state)
{
	struct flush_criteria	 fc;
	struct envelope		 env;
	struct flush_pick	 p;

	criteria(&fc);
	make(&env, id_a);
	rcpt(&env, "postmaster", RCPT_QUEUED);
	rcpt(&env, "x@a.test", RCPT_QUEUED);
	/* No '@': the empty domain, which flush fails as 5.1.3. */
	assert_int_equal(flush_pick(&fc, &env, &p), FLUSH_DELIVER);
	assert_int_equal(p.ndomains, 2);
	assert_string_equal(p.domains[0], "");
	assert_string_equal(p.domains[1], "a.test");
	assert_true(p.multi);
	flush_pick_free(&p);
	envelope_free(&env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_due_time),
		cmocka_unit_test(test_held_claimed),
		cmocka_unit_test(test_named_ids),
		cmocka_unit_test(test_finished_removed),
		cmocka_unit_test(test_domains),
		cmocka_unit_test(test_single_domain),
		cmocka_unit_test(test_domain_option),
		cmocka_unit_test(test_no_domain),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
