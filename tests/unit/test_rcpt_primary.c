/*
 * test_rcpt_primary.c - receive's RCPT rules over the primary record
 * (cmd/rcpt_primary.c): no record accepts; accept-when-primary-up no
 * refuses while the last observation is "up" and younger than the
 * window (not older, not down, not from the future, not for an exempt
 * client or postmaster); a declared SIZE above the recorded limit and
 * SMTPUTF8 to a primary without it are refused from the capabilities of
 * the last EHLO, down or not; no EHLO seen, no such refusal.  The
 * replies name the primary; the observation from an EHLO keeps what
 * smtp_client parsed; a down's reason is the system's words after
 * "connect to HOST[IP]:PORT: ", else the text.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmd/rcpt_primary.h"
#include "core/smtp_client.h"

#define NOW	1795837540

static struct primary_obs	 obs;
static struct rcpt_primary_policy pol;
static struct rcpt_primary_ask	 ask;

static int
setup(void **state)
{
	(void)state;
	memset(&obs, 0, sizeof(obs));
	obs.up = 1;
	obs.checked = obs.last_up = NOW - 60;
	(void)strlcpy(obs.host, "mx1.example.test", sizeof(obs.host));
	(void)strlcpy(obs.source, "probe", sizeof(obs.source));
	obs.have_ehlo = 1;
	obs.size_max = 1000;
	obs.smtputf8 = 0;
	pol.accept_when_up = 0;
	pol.window = 600;
	memset(&ask, 0, sizeof(ask));
	return (0);
}

static void
test_no_record(void **state)
{
	(void)state;
	ask.size = 5000;
	ask.smtputf8 = 1;
	assert_int_equal(rcpt_primary_decide(NULL, &pol, &ask, NOW),
	    RCPT_PRIMARY_ACCEPT);
}

static void
test_primary_up_window(void **state)
{
	char	 reply[512];

	(void)state;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_UP);
	rcpt_primary_reply(RCPT_PRIMARY_UP, &obs, &ask, "u@example.test",
	    reply, sizeof(reply));
	assert_string_equal(reply, "450 4.7.0 <u@example.test>: primary MX "
	    "mx1.example.test is up, deliver there");
	assert_string_equal(rcpt_primary_rule_name(RCPT_PRIMARY_UP),
	    "primary-up");
	/* The window's edge: 599 s old counts, 600 s does not. */
	obs.checked = NOW - 599;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_UP);
	obs.checked = NOW - 600;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_ACCEPT);
	/* From the future beyond a minute: not trusted. */
	obs.checked = NOW + 61;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_ACCEPT);
	obs.checked = NOW + 5;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_UP);
	/* Down, however recent: accepted. */
	obs.up = 0;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_ACCEPT);
	/* accept-when-primary-up yes: accepted. */
	obs.up = 1;
	pol.accept_when_up = 1;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_ACCEPT);
	/* No host recorded: the reply still says why. */
	obs.host[0] = '\0';
	rcpt_primary_reply(RCPT_PRIMARY_UP, &obs, &ask, "u@example.test",
	    reply, sizeof(reply));
	assert_string_equal(reply, "450 4.7.0 <u@example.test>: the primary "
	    "MX is up, deliver there");
}

static void
test_exempt(void **state)
{
	(void)state;
	ask.exempt = 1;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_ACCEPT);
	/* Not from what the primary could never take. */
	ask.size = 1001;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_SIZE);
}

static void
test_size(void **state)
{
	char	 reply[512];

	(void)state;
	pol.accept_when_up = 1;
	ask.size = 1000;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_ACCEPT);
	ask.size = 1001;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_SIZE);
	rcpt_primary_reply(RCPT_PRIMARY_SIZE, &obs, &ask, "u@example.test",
	    reply, sizeof(reply));
	assert_string_equal(reply, "552 5.3.4 <u@example.test>: message size "
	    "1001 exceeds the limit of primary MX mx1.example.test (1000)");
	/* Down since: the last EHLO still counts. */
	obs.up = 0;
	obs.checked = NOW - 86400;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_SIZE);
	/* SIZE without a limit, no SIZE declared, no EHLO seen. */
	obs.size_max = 0;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_ACCEPT);
	obs.size_max = 1000;
	ask.size = 0;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_ACCEPT);
	ask.size = 1001;
	obs.have_ehlo = 0;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_ACCEPT);
}

static void
test_smtputf8(void **state)
{
	char	 reply[512];

	(void)state;
	pol.accept_when_up = 1;
	ask.smtputf8 = 1;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_SMTPUTF8);
	rcpt_primary_reply(RCPT_PRIMARY_SMTPUTF8, &obs, &ask,
	    "u@example.test", reply, sizeof(reply));
	assert_string_equal(reply, "553 5.6.7 <u@example.test>: primary MX "
	    "mx1.example.test does not accept SMTPUTF8 mail");
	assert_string_equal(rcpt_primary_rule_name(RCPT_PRIMARY_SMTPUTF8),
	    "primary-smtputf8");
	obs.up = 0;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_SMTPUTF8);
	obs.smtputf8 = 1;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_ACCEPT);
	obs.smtputf8 = 0;
	obs.have_ehlo = 0;
	assert_int_equal(rcpt_primary_decide(&obs, &pol, &ask, NOW),
	    RCPT_PRIMARY_ACCEPT);
}

static void
test_obs_from_ehlo(void **state)
{
	struct smtp_ext	 ext;
	struct primary_obs o;

	(void)state;
	memset(&ext, 0, sizeof(ext));
	ext.esmtp = 1;
	ext.size = 1;
	ext.maxsize = 10240;
	ext.smtputf8 = 1;
	ext.dsn = 1;
	primary_obs_from_ehlo(&o, 1, "flush", "mx2.example.test", &ext);
	assert_int_equal(o.up, 1);
	assert_true(o.checked > 0);
	assert_string_equal(o.host, "mx2.example.test");
	assert_string_equal(o.source, "flush");
	assert_int_equal(o.have_ehlo, 1);
	assert_true(o.size_max == 10240);
	assert_int_equal(o.smtputf8, 1);
	assert_int_equal(o.eightbitmime, 0);
	assert_int_equal(o.dsn, 1);
	/* HELO only: no capabilities known. */
	ext.esmtp = 0;
	primary_obs_from_ehlo(&o, 1, "flush", "mx2.example.test", &ext);
	assert_int_equal(o.have_ehlo, 0);
	primary_obs_from_ehlo(&o, 0, "probe", "ignored", &ext);
	assert_int_equal(o.up, 0);
	assert_string_equal(o.host, "");
	assert_int_equal(o.have_ehlo, 0);
}

static void
test_obs_reason(void **state)
{
	struct primary_obs	 o;
	char			 longer[300];

	(void)state;
	memset(&o, 0, sizeof(o));
	primary_obs_reason(&o, "connect to mx1.example.test[127.0.0.2]:25: "
	    "Connection refused");
	assert_string_equal(o.reason, "Connection refused");
	primary_obs_reason(&o, "connect to [::1]:25: Connection timed out");
	assert_string_equal(o.reason, "Connection timed out");
	primary_obs_reason(&o, "connect to mx1.example.test:25: socket: "
	    "Too many open files");
	assert_string_equal(o.reason, "Too many open files");
	primary_obs_reason(&o, "421 4.3.2 shutting down");
	assert_string_equal(o.reason, "421 4.3.2 shutting down");
	memset(longer, 'y', sizeof(longer));
	longer[sizeof(longer) - 1] = '\0';
	primary_obs_reason(&o, longer);
	assert_int_equal(strlen(o.reason), sizeof(o.reason) - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn)	cmocka_unit_test_setup(fn, setup)
		T(test_no_record),
		T(test_primary_up_window),
		T(test_exempt),
		T(test_size),
		T(test_smtputf8),
		T(test_obs_from_ehlo),
		T(test_obs_reason),
#undef T
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
