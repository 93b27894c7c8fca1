/*
 * test_dsn.c - unit tests for core/dsn.c: NOTIFY rules, bounce-policy,
 * RFC 3463 status
 * derivation, xtext decoding, and the shape of the built notification
 * (CRLF, line lengths, boundary, every RFC 3464 field, returned content).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/dsn.h"
#include "core/mail/envelope.h"

static const char original[] =
    "Received: from client.example.org by backup.example.test\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.test\r\n"
    "Subject: hello\r\n"
    "Message-ID: <orig-1@example.org>\r\n"
    "\r\n"
    "Body line one.\r\n"
    "Body line two.\r\n";

static struct recipient rcpts[3];
static struct envelope env;
static struct dsn_params params;

static void
fixture(void)
{
	memset(rcpts, 0, sizeof(rcpts));
	memset(&env, 0, sizeof(env));
	memset(&params, 0, sizeof(params));
	strlcpy(env.id, "0ABCDEFGHJK123456", sizeof(env.id));
	env.arrival = 1700000000;
	env.sender = "alice@example.org";
	env.client_addr = "192.0.2.1";
	env.ret = RET_UNSET;
	env.rcpts = rcpts;
	env.nrcpts = 3;
	rcpts[0].addr = "bob@example.test";
	rcpts[0].state = RCPT_FAILED;
	rcpts[0].last_error = "550 5.1.1 <bob@example.test>: user unknown";
	rcpts[0].remote_mta = "mx1.example.test[127.0.0.2]:25";
	rcpts[0].last_attempt = 1700000100;
	rcpts[0].orcpt = "rfc822;Bob+2BTag@example.test";
	rcpts[1].addr = "carol@example.test";
	rcpts[1].state = RCPT_DEFERRED;
	rcpts[1].last_error = "connect to mx1.example.test: Connection refused";
	rcpts[1].last_attempt = 1700000200;
	rcpts[2].addr = "dave@example.test";
	rcpts[2].state = RCPT_QUEUED;
	params.hostname = "backup.example.test";
	params.dsn_id = "0ABCDEFGHJKZZZZZZ";
	params.now = 1700000300;
	params.retry_until = 1700000000 + 5 * 86400;
	params.size_limit = 100 * 1024;
}

/* Every line ends in CRLF, no bare CR or LF, none longer than 998. */
static void
assert_wellformed(const struct dsn_message *m)
{
	size_t		 i, col = 0;

	assert_true(m->len >= 2);
	assert_memory_equal(m->data + m->len - 2, "\r\n", 2);
	for (i = 0; i < m->len; i++) {
		if (m->data[i] == '\r') {
			assert_true(i + 1 < m->len);
			assert_int_equal(m->data[i + 1], '\n');
			assert_true(col <= 998);
			col = 0;
			i++;
			continue;
		}
		assert_int_not_equal(m->data[i], '\n');
		col++;
	}
}

static int
contains(const struct dsn_message *m, const char *s)
{
	return (memmem(m->data, m->len, s, strlen(s)) != NULL);
}

static const char *
boundary_of(const struct dsn_message *m, char *buf, size_t size)
{
	const char	*p, *q;

	p = memmem(m->data, m->len, "boundary=\"", 10);
	assert_non_null(p);
	p += 10;
	q = memchr(p, '"', m->len - (size_t)(p - m->data));
	assert_non_null(q);
	assert_true((size_t)(q - p) < size);
	memcpy(buf, p, (size_t)(q - p));
	buf[q - p] = '\0';
	return (buf);
}

static size_t
count(const struct dsn_message *m, const char *s)
{
	const char	*p = m->data, *end = m->data + m->len, *q;
	size_t		 n = 0;

	while ((q = memmem(p, (size_t)(end - p), s, strlen(s))) != NULL) {
		n++;
		p = q + 1;
	}
	return (n);
}

static void
test_wanted(void **state)
{
	struct recipient r;

	memset(&r, 0, sizeof(r));
	assert_true(dsn_wanted(&r, DSN_REASON_FAILED));
	assert_true(dsn_wanted(&r, DSN_REASON_EXPIRED));
	assert_true(dsn_wanted(&r, DSN_REASON_DELAYED));
	assert_false(dsn_wanted(&r, DSN_REASON_RELAYED));
	r.notify = NOTIFY_NEVER;
	assert_false(dsn_wanted(&r, DSN_REASON_FAILED));
	assert_false(dsn_wanted(&r, DSN_REASON_ADMIN));
	assert_false(dsn_wanted(&r, DSN_REASON_DELAYED));
	r.notify = NOTIFY_FAILURE;
	assert_true(dsn_wanted(&r, DSN_REASON_FAILED));
	assert_true(dsn_wanted(&r, DSN_REASON_EXPIRED));
	assert_false(dsn_wanted(&r, DSN_REASON_DELAYED));
	r.notify = NOTIFY_DELAY;
	assert_false(dsn_wanted(&r, DSN_REASON_FAILED));
	assert_true(dsn_wanted(&r, DSN_REASON_DELAYED));
	r.notify = NOTIFY_SUCCESS;
	assert_true(dsn_wanted(&r, DSN_REASON_RELAYED));
	assert_false(dsn_wanted(&r, DSN_REASON_FAILED));
}

/* bounce-policy, every branch of dsn_policy_allows. */
/* Only 5.1.1 to 5.1.10 says "no such recipient". */
static void
test_unknown_user(void **state)
{
	const char	*yes[] = { "5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10" };
	const char	*no[] = { "", "5.1.0", "5.1.11", "5.1.", "5.1.1x",
	    "5.7.1", "5.2.1", "4.1.1", "5.1.-1", "5.1.01x", "5.11.1" };
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_true(dsn_unknown_user(yes[i]));
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(dsn_unknown_user(no[i]));
}

static void
test_policy(void **state)
{
	static const enum dsn_reason all[] = { DSN_REASON_FAILED,
	    DSN_REASON_EXPIRED, DSN_REASON_ADMIN, DSN_REASON_DELAYED,
	    DSN_REASON_RELAYED };
	struct envelope	 e;
	struct recipient r;
	size_t		 i;
	int		 admin;

	memset(&e, 0, sizeof(e));
	memset(&r, 0, sizeof(r));
	/* all: everything; none: nothing, not even for the administrator. */
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		for (admin = 0; admin < 2; admin++) {
			assert_true(dsn_policy_allows(BOUNCE_ALL, &e, &r,
			    all[i], admin));
			assert_false(dsn_policy_allows(BOUNCE_NONE, &e, &r,
			    all[i], admin));
		}
	/* verified, administrator: always. */
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		assert_true(dsn_policy_allows(BOUNCE_VERIFIED, &e, &r,
		    all[i], 1));
	/* verified, failed: only a primary's own refusal. */
	r.state = RCPT_FAILED;
	assert_false(dsn_policy_allows(BOUNCE_VERIFIED, &e, &r,
	    DSN_REASON_FAILED, 0));
	r.remote_mta = "mx1.example.test[127.0.0.2]:25";
	assert_true(dsn_policy_allows(BOUNCE_VERIFIED, &e, &r,
	    DSN_REASON_FAILED, 0));
	r.state = RCPT_DEFERRED;
	assert_false(dsn_policy_allows(BOUNCE_VERIFIED, &e, &r,
	    DSN_REASON_FAILED, 0));
	/* verified, relayed: the primary took it. */
	r.state = RCPT_DELIVERED;
	assert_true(dsn_policy_allows(BOUNCE_VERIFIED, &e, &r,
	    DSN_REASON_RELAYED, 0));
	r.remote_mta = NULL;
	assert_false(dsn_policy_allows(BOUNCE_VERIFIED, &e, &r,
	    DSN_REASON_RELAYED, 0));
	/* verified, expired/delayed/returned: recipients checked or not. */
	r.state = RCPT_DEFERRED;
	r.remote_mta = "mx1.example.test[127.0.0.2]:25";
	for (i = 1; i < 4; i++) {
		e.verified = 0;
		assert_false(dsn_policy_allows(BOUNCE_VERIFIED, &e, &r,
		    all[i], 0));
		e.verified = 1;
		assert_true(dsn_policy_allows(BOUNCE_VERIFIED, &e, &r,
		    all[i], 0));
	}
	/* A value outside the enum allows nothing. */
	assert_false(dsn_policy_allows((enum bounce_policy)42, &e, &r,
	    DSN_REASON_FAILED, 1));
}

static void
test_status(void **state)
{
	struct recipient r;
	char		 s[16];

	memset(&r, 0, sizeof(r));
	r.last_error = "550 5.1.1 user unknown";
	dsn_status(&r, DSN_REASON_FAILED, s, sizeof(s));
	assert_string_equal(s, "5.1.1");
	dsn_status(&r, DSN_REASON_EXPIRED, s, sizeof(s));
	assert_string_equal(s, "4.4.7");
	dsn_status(&r, DSN_REASON_ADMIN, s, sizeof(s));
	assert_string_equal(s, "5.0.0");
	r.last_error = "554 no thanks";
	dsn_status(&r, DSN_REASON_FAILED, s, sizeof(s));
	assert_string_equal(s, "5.0.0");
	r.last_error = "550-5.7.1 policy";
	dsn_status(&r, DSN_REASON_FAILED, s, sizeof(s));
	assert_string_equal(s, "5.7.1");
	r.last_error = "451 4.3.0 try again";
	dsn_status(&r, DSN_REASON_DELAYED, s, sizeof(s));
	assert_string_equal(s, "4.3.0");
	dsn_status(&r, DSN_REASON_FAILED, s, sizeof(s));
	assert_string_equal(s, "5.0.0");
	r.last_error = "5.1.2 domain has a null MX";
	dsn_status(&r, DSN_REASON_FAILED, s, sizeof(s));
	assert_string_equal(s, "5.1.2");
	r.last_error = "550 5.1234.1 bogus";
	dsn_status(&r, DSN_REASON_FAILED, s, sizeof(s));
	assert_string_equal(s, "5.0.0");
	r.last_error = NULL;
	dsn_status(&r, DSN_REASON_DELAYED, s, sizeof(s));
	assert_string_equal(s, "4.0.0");
	assert_string_equal(dsn_action(DSN_REASON_EXPIRED), "failed");
	assert_string_equal(dsn_action(DSN_REASON_DELAYED), "delayed");
}

static void
test_xtext(void **state)
{
	char	 b[64];

	assert_int_equal(xtext_decode("rfc822;a+2Bb@x", b, sizeof(b)), 0);
	assert_string_equal(b, "rfc822;a+b@x");
	assert_int_equal(xtext_decode("plain", b, sizeof(b)), 0);
	assert_string_equal(b, "plain");
	assert_int_equal(xtext_decode("bad+2", b, sizeof(b)), -1);
	assert_int_equal(xtext_decode("bad+zz", b, sizeof(b)), -1);
	assert_int_equal(xtext_decode("ctl+0D+0A", b, sizeof(b)), -1);
	assert_int_equal(xtext_decode("a=b", b, sizeof(b)), -1);
	assert_int_equal(xtext_decode("toolong", b, 4), -1);
}

static void
test_failure(void **state)
{
	struct dsn_report reps[1];
	struct dsn_message m;
	char		 b[128], delim[140];

	fixture();
	env.envid = "QQ+2B314";
	reps[0].rcpt = &rcpts[0];
	reps[0].reason = DSN_REASON_FAILED;
	assert_int_equal(dsn_build(&env, (const unsigned char *)original,
	    strlen(original), reps, 1, &params, &m), 0);
	assert_wellformed(&m);
	assert_true(contains(&m, "\r\nSubject: Undelivered Mail Returned to "
	    "Sender\r\n"));
	assert_true(contains(&m, "\r\nFrom: Mail Delivery System "
	    "<MAILER-DAEMON@backup.example.test>\r\n"));
	assert_true(contains(&m, "\r\nTo: <alice@example.org>\r\n"));
	assert_true(contains(&m, "\r\nAuto-Submitted: auto-replied\r\n"));
	assert_true(contains(&m, "\r\nMessage-ID: <0ABCDEFGHJKZZZZZZ."));
	assert_true(contains(&m, "@backup.example.test>\r\n"));
	assert_true(contains(&m, "report-type=delivery-status"));
	assert_true(contains(&m, "Reporting-MTA: dns; backup.example.test\r\n"));
	assert_true(contains(&m, "Original-Envelope-Id: QQ+314\r\n"));
	assert_true(contains(&m, "Arrival-Date: "));
	assert_true(contains(&m, "Original-Recipient: rfc822;Bob+Tag@"
	    "example.test\r\n"));
	assert_true(contains(&m, "Final-Recipient: rfc822; bob@example.test"
	    "\r\n"));
	assert_true(contains(&m, "Action: failed\r\n"));
	assert_true(contains(&m, "Status: 5.1.1\r\n"));
	assert_true(contains(&m, "Remote-MTA: dns; mx1.example.test\r\n"));
	assert_true(contains(&m, "Diagnostic-Code: smtp; 550 5.1.1 "));
	assert_true(contains(&m, "Last-Attempt-Date: "));
	assert_false(contains(&m, "Will-Retry-Until"));
	assert_true(contains(&m, "Content-Type: message/delivery-status\r\n"));
	assert_true(contains(&m, "Content-Type: message/rfc822\r\n"));
	assert_true(contains(&m, "Body line two.\r\n"));
	assert_true(contains(&m, "host mx1.example.test[127.0.0.2]:25 said:"));
	assert_false(m.eightbit);
	assert_false(m.truncated);
	assert_false(contains(&m, "carol"));
	boundary_of(&m, b, sizeof(b));
	assert_true(strlen(b) >= 16 && strlen(b) <= 70);
	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", b);
	assert_int_equal(count(&m, delim), 3);
	snprintf(delim, sizeof(delim), "\r\n--%s--\r\n", b);
	assert_int_equal(count(&m, delim), 1);
	assert_int_equal(count(&m, b), 5);
	dsn_message_free(&m);
}

static void
test_expired_and_delayed(void **state)
{
	struct dsn_report reps[2];
	struct dsn_message m;

	fixture();
	reps[0].rcpt = &rcpts[1];
	reps[0].reason = DSN_REASON_EXPIRED;
	reps[1].rcpt = &rcpts[2];
	reps[1].reason = DSN_REASON_EXPIRED;
	assert_int_equal(dsn_build(&env, (const unsigned char *)original,
	    strlen(original), reps, 2, &params, &m), 0);
	assert_wellformed(&m);
	assert_int_equal(count(&m, "Status: 4.4.7\r\n"), 2);
	assert_int_equal(count(&m, "Action: failed\r\n"), 2);
	assert_true(contains(&m, "Diagnostic-Code: X-mxfb; connect to "));
	assert_false(contains(&m, "Remote-MTA"));
	assert_true(contains(&m, "message expired"));
	dsn_message_free(&m);

	reps[0].reason = DSN_REASON_DELAYED;
	reps[1].reason = DSN_REASON_DELAYED;
	assert_int_equal(dsn_build(&env, (const unsigned char *)original,
	    strlen(original), reps, 2, &params, &m), 0);
	assert_wellformed(&m);
	assert_true(contains(&m, "Subject: Delayed Mail (still being retried)"
	    "\r\n"));
	assert_int_equal(count(&m, "Action: delayed\r\n"), 2);
	assert_int_equal(count(&m, "Will-Retry-Until: "), 2);
	assert_int_equal(count(&m, "Status: 4.0.0\r\n"), 2);
	assert_true(contains(&m, "THIS IS A WARNING ONLY"));
	assert_true(contains(&m, "until it is 5 days old"));
	assert_true(contains(&m, "Content-Type: text/rfc822-headers\r\n"));
	assert_false(contains(&m, "Body line"));
	dsn_message_free(&m);
}

static void
test_ret_hdrs_and_limit(void **state)
{
	struct dsn_report reps[1];
	struct dsn_message m;
	char		*big;
	size_t		 n, hdrlen;

	fixture();
	env.ret = RET_HDRS;
	reps[0].rcpt = &rcpts[0];
	reps[0].reason = DSN_REASON_FAILED;
	assert_int_equal(dsn_build(&env, (const unsigned char *)original,
	    strlen(original), reps, 1, &params, &m), 0);
	assert_wellformed(&m);
	assert_true(contains(&m, "Content-Type: text/rfc822-headers\r\n"));
	assert_false(contains(&m, "message/rfc822"));
	assert_true(contains(&m, "Subject: hello\r\n"));
	assert_false(contains(&m, "Body line"));
	assert_false(m.truncated);
	dsn_message_free(&m);

	/* Over the size limit: headers only, and it says why. */
	env.ret = RET_FULL;
	params.size_limit = 1000;
	hdrlen = strlen(original) - strlen("Body line one.\r\n"
	    "Body line two.\r\n");
	n = hdrlen + 5000;
	big = malloc(n);
	assert_non_null(big);
	memcpy(big, original, hdrlen);
	memset(big + hdrlen, 'x', n - hdrlen);
	memcpy(big + n - 2, "\r\n", 2);
	assert_int_equal(dsn_build(&env, (unsigned char *)big, n, reps, 1,
	    &params, &m), 0);
	assert_wellformed(&m);
	assert_true(m.truncated);
	assert_true(contains(&m, "Content-Type: text/rfc822-headers\r\n"));
	assert_true(contains(&m, "larger than 1000 bytes"));
	assert_false(contains(&m, "xxxx"));
	dsn_message_free(&m);

	/* Headers alone over the limit: cut at a header boundary. */
	params.size_limit = 80;
	assert_int_equal(dsn_build(&env, (unsigned char *)big, n, reps, 1,
	    &params, &m), 0);
	assert_wellformed(&m);
	assert_true(contains(&m, "\r\n\r\nReceived: from client.example.org"));
	assert_false(contains(&m, "Subject: hello"));
	dsn_message_free(&m);
	free(big);
}

static void
test_eightbit_and_utf8(void **state)
{
	static const char eight[] = "Subject: caf\xc3\xa9\r\n\r\n"
	    "Gr\xc3\xbc\xc3\x9f""e\r\n";
	struct dsn_report reps[1];
	struct dsn_message m;

	fixture();
	env.eightbit = 1;
	reps[0].rcpt = &rcpts[0];
	reps[0].reason = DSN_REASON_ADMIN;
	assert_int_equal(dsn_build(&env, (const unsigned char *)eight,
	    strlen(eight), reps, 1, &params, &m), 0);
	assert_wellformed(&m);
	assert_true(m.eightbit);
	assert_false(m.smtputf8);
	assert_true(contains(&m, "\r\nContent-Transfer-Encoding: 8bit\r\n"));
	assert_true(contains(&m, "Status: 5.0.0\r\n"));
	assert_true(contains(&m, "returned to sender by the mail"));
	dsn_message_free(&m);

	/* SMTPUTF8: RFC 6533 types, UTF-8 addresses kept. */
	env.smtputf8 = 1;
	env.sender = "j\xc3\xb6rg@example.org";
	rcpts[0].addr = "b\xc3\xb8@example.test";
	rcpts[0].orcpt = NULL;
	assert_int_equal(dsn_build(&env, (const unsigned char *)eight,
	    strlen(eight), reps, 1, &params, &m), 0);
	assert_wellformed(&m);
	assert_true(m.smtputf8);
	assert_true(contains(&m, "report-type=global-delivery-status"));
	assert_true(contains(&m, "Content-Type: message/global-delivery-status"
	    "\r\n"));
	assert_true(contains(&m, "Content-Type: message/global\r\n"));
	assert_true(contains(&m, "Final-Recipient: utf-8; b\xc3\xb8@"
	    "example.test\r\n"));
	assert_true(contains(&m, "To: <j\xc3\xb6rg@example.org>\r\n"));
	dsn_message_free(&m);

	/* Without SMTPUTF8 8-bit peer text never reaches the report. */
	env.smtputf8 = 0;
	rcpts[0].last_error = "550 5.1.1 caf\xc3\xa9 \x01 bad\r\nInjected: yes";
	reps[0].reason = DSN_REASON_FAILED;
	assert_int_equal(dsn_build(&env, (const unsigned char *)original,
	    strlen(original), reps, 1, &params, &m), 0);
	assert_wellformed(&m);
	assert_false(m.eightbit);
	assert_false(contains(&m, "\r\nInjected: yes"));
	assert_true(contains(&m, "caf?? ? bad Injected: yes"));
	dsn_message_free(&m);
}

static void
test_long_lines(void **state)
{
	struct dsn_report reps[1];
	struct dsn_message m;
	char		*err;

	fixture();
	err = malloc(5000);
	assert_non_null(err);
	memcpy(err, "550 5.1.1 ", 10);
	memset(err + 10, 'y', 4989);
	err[4999] = '\0';
	rcpts[0].last_error = err;
	reps[0].rcpt = &rcpts[0];
	reps[0].reason = DSN_REASON_FAILED;
	assert_int_equal(dsn_build(&env, (const unsigned char *)original,
	    strlen(original), reps, 1, &params, &m), 0);
	assert_wellformed(&m);
	assert_true(contains(&m, "Status: 5.1.1\r\n"));
	dsn_message_free(&m);
	free(err);
}

/* RFC 3461 6.2: success through a primary that does not offer DSN. */
static void
test_relayed(void **state)
{
	struct dsn_report reps[2];
	struct dsn_message m;

	fixture();
	env.envid = "QQ+2B314";
	env.ret = RET_FULL;
	rcpts[2].state = RCPT_DELIVERED;
	rcpts[2].relayed = 1;
	rcpts[2].notify = NOTIFY_SUCCESS | NOTIFY_FAILURE;
	rcpts[2].orcpt = "rfc822;Dave@example.test";
	rcpts[2].last_error = "250 2.0.0 Ok: queued as 4Fq";
	rcpts[2].remote_mta = "mx1.example.test";
	rcpts[2].last_attempt = 1700000250;
	reps[0].rcpt = &rcpts[2];
	reps[0].reason = DSN_REASON_RELAYED;
	assert_int_equal(dsn_build(&env, (const unsigned char *)original,
	    strlen(original), reps, 1, &params, &m), 0);
	assert_wellformed(&m);
	assert_true(contains(&m, "\r\nSubject: Successful Mail Relay\r\n"));
	assert_true(contains(&m, "Original-Envelope-Id: QQ+314\r\n"));
	assert_true(contains(&m, "Original-Recipient: rfc822;Dave@example.test"
	    "\r\n"));
	assert_true(contains(&m, "Final-Recipient: rfc822; dave@example.test"
	    "\r\n"));
	assert_true(contains(&m, "Action: relayed\r\n"));
	assert_true(contains(&m, "Status: 2.0.0\r\n"));
	assert_true(contains(&m, "Remote-MTA: dns; mx1.example.test\r\n"));
	assert_true(contains(&m, "Diagnostic-Code: smtp; 250 2.0.0 Ok: "
	    "queued as 4Fq\r\n"));
	assert_true(contains(&m, "Last-Attempt-Date: "));
	assert_false(contains(&m, "Will-Retry-Until"));
	assert_false(contains(&m, "Action: failed"));
	assert_true(contains(&m, "successfully relayed"));
	assert_true(contains(&m, "does not issue delivery"));
	assert_false(contains(&m, "could not\r\nbe delivered"));
	/* Success reports carry the headers only, even with RET=FULL. */
	assert_true(contains(&m, "Content-Type: text/rfc822-headers\r\n"));
	assert_true(contains(&m, "Subject: hello\r\n"));
	assert_false(contains(&m, "Body line"));
	dsn_message_free(&m);

	/* Together with a failure: both actions, the failure's subject. */
	reps[1].rcpt = &rcpts[0];
	reps[1].reason = DSN_REASON_FAILED;
	assert_int_equal(dsn_build(&env, (const unsigned char *)original,
	    strlen(original), reps, 2, &params, &m), 0);
	assert_wellformed(&m);
	assert_true(contains(&m, "Subject: Undelivered Mail Returned to "
	    "Sender\r\n"));
	assert_int_equal(count(&m, "Action: relayed\r\n"), 1);
	assert_int_equal(count(&m, "Action: failed\r\n"), 1);
	assert_true(contains(&m, "successfully relayed"));
	assert_true(contains(&m, "Body line two.\r\n"));
	dsn_message_free(&m);
}

static void
test_no_reports(void **state)
{
	struct dsn_message m;

	fixture();
	assert_int_equal(dsn_build(&env, (const unsigned char *)original,
	    strlen(original), NULL, 0, &params, &m), -1);
}

static void
test_about(void **state)
{
	static const char *bad[] = {
		"", "1NH0SM7AY82HK4F6V", "1NH0SM7AY82HK4F6V R", "1NH0SM7AY82HK4F6V R ",
		"1NH0SM7AY82HK4F6V X 0", "1NH0SM7AY82HK4F6V RR 0",
		"1NH0SM7AY82HK4F6 R 0", "1NH0SM7AY82HK4F6VV R 0",
		"1nh0sm7ay82hk4f6v R 0", "1NH0SM7AY82HK4F6V R -1",
		"1NH0SM7AY82HK4F6V R 4294967296", "1NH0SM7AY82HK4F6V R 1x",
		"1NH0SM7AY82HK4F6V  R 0",
	};
	struct dsn_about	 a, b;
	struct envelope		 orig;
	struct recipient	*r;
	char			*s;
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(dsn_about_parse(bad[i], &a), -1);

	memset(&a, 0, sizeof(a));
	strlcpy(a.orig, "1NH0SM7AY82HK4F6V", sizeof(a.orig));
	a.kind = DSN_KIND_REPORT;
	a.gen = 1;
	s = dsn_about_format(&a);
	assert_string_equal(s, "1NH0SM7AY82HK4F6V R 1");
	assert_int_equal(dsn_about_parse(s, &b), 0);
	free(s);
	assert_string_equal(b.orig, a.orig);
	assert_int_equal(b.kind, DSN_KIND_REPORT);
	assert_int_equal(b.gen, 1);

	/* Recorded: a report once more recipients than gen are reported. */
	assert_int_equal(dsn_about_recorded(&a, NULL), 1);
	memset(&orig, 0, sizeof(orig));
	r = envelope_add_recipient(&orig, "a@example.test");
	r->reported = 1;
	(void)envelope_add_recipient(&orig, "b@example.test");
	assert_int_equal(dsn_about_recorded(&a, &orig), 0);
	orig.rcpts[1].reported = 1;
	assert_int_equal(dsn_about_recorded(&a, &orig), 1);
	/* A delay warning by the warned flag; a final report never. */
	a.kind = DSN_KIND_DELAY;
	assert_int_equal(dsn_about_recorded(&a, &orig), 0);
	orig.warned = 1;
	assert_int_equal(dsn_about_recorded(&a, &orig), 1);
	a.kind = DSN_KIND_FINAL;
	assert_int_equal(dsn_about_recorded(&a, &orig), 0);
	/* Held mail is left alone by bounce: nothing to wait for. */
	orig.held = 1;
	assert_int_equal(dsn_about_recorded(&a, &orig), 1);
	envelope_free(&orig);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wanted),
		cmocka_unit_test(test_unknown_user),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_failure),
		cmocka_unit_test(test_expired_and_delayed),
		cmocka_unit_test(test_ret_hdrs_and_limit),
		cmocka_unit_test(test_eightbit_and_utf8),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_relayed),
		cmocka_unit_test(test_no_reports),
		cmocka_unit_test(test_about),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
