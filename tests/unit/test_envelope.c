/*
 * test_envelope.c - the envelope text: every field survives encode and
 * decode, odd bytes included; truncated, garbled or non-canonical text is
 * refused and leaves nothing allocated; the state file merges only into
 * the envelope it belongs to.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/mail/envelope.h"

static const char odd[] = "sp ace%25\t\r\n\x01\x7f caf\xc3\xa9 <x@y> \"q\"";

static void
fill(struct envelope *env)
{
	struct recipient	*r;
	int			 i;

	memset(env, 0, sizeof(*env));
	assert_int_equal(queue_id_new(env->id), 0);
	env->arrival = 1795837540;
	env->sender = strdup("a%b c@example.org");
	env->client_addr = strdup("::ffff:127.0.0.1");
	env->client_name = strdup(odd);
	env->envid = strdup("QQ+2Bxyz");
	env->about = strdup("1NH0SM7AY82HK4F6V R 2");
	env->ret = RET_HDRS;
	env->smtputf8 = 1;
	env->eightbit = 1;
	env->verified = 1;
	for (i = 0; i < 32; i++)
		env->checksum[i] = (unsigned char)(i * 7 + 3);
	env->size = 12345678901ULL;
	env->next_retry = 1795839999;
	env->warned = 1;
	r = envelope_add_recipient(env, "x@example.test");
	r->orcpt = strdup("rfc822;X+2B@example.test");
	r->notify = NOTIFY_FAILURE | NOTIFY_DELAY;
	r->state = RCPT_DEFERRED;
	r->attempts = 3;
	r->last_attempt = 1795838000;
	r->last_error = strdup("451 4.3.0 try\r\nagain later");
	r->remote_mta = strdup("mx1.example.test[127.0.0.2]");
	r->status = strdup("4.3.0");
	r->reported = 1;
	r = envelope_add_recipient(env, odd);
	r->state = RCPT_DELIVERED;
	r->notify = NOTIFY_NEVER;
	r = envelope_add_recipient(env, "w@example.test");
	r->state = RCPT_DELIVERED;
	r->notify = NOTIFY_SUCCESS | NOTIFY_FAILURE;
	r->last_error = strdup("250 2.0.0 Ok: queued as 4Fq");
	r->remote_mta = strdup("mx1.example.test");
	r->relayed = 1;
	r->mailbox = 1;
	r = envelope_add_recipient(env, "z@example.test");
	r->state = RCPT_FAILED;
	r->last_error = strdup("");
}

static void
assert_str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void
assert_env_equal(const struct envelope *a, const struct envelope *b)
{
	size_t	 i;

	assert_string_equal(a->id, b->id);
	assert_int_equal(a->arrival, b->arrival);
	assert_str_eq(a->sender, b->sender);
	assert_str_eq(a->client_addr, b->client_addr);
	assert_str_eq(a->client_name, b->client_name);
	assert_str_eq(a->envid, b->envid);
	assert_str_eq(a->about, b->about);
	assert_int_equal(a->ret, b->ret);
	assert_int_equal(a->smtputf8, b->smtputf8);
	assert_int_equal(a->eightbit, b->eightbit);
	assert_int_equal(a->verified, b->verified);
	assert_memory_equal(a->checksum, b->checksum, 32);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->next_retry, b->next_retry);
	assert_int_equal(a->warned, b->warned);
	assert_int_equal(a->nrcpts, b->nrcpts);
	for (i = 0; i < a->nrcpts; i++) {
		assert_str_eq(a->rcpts[i].addr, b->rcpts[i].addr);
		assert_str_eq(a->rcpts[i].orcpt, b->rcpts[i].orcpt);
		assert_int_equal(a->rcpts[i].notify, b->rcpts[i].notify);
		assert_int_equal(a->rcpts[i].state, b->rcpts[i].state);
		assert_int_equal(a->rcpts[i].attempts, b->rcpts[i].attempts);
		assert_int_equal(a->rcpts[i].last_attempt,
		    b->rcpts[i].last_attempt);
		assert_str_eq(a->rcpts[i].last_error, b->rcpts[i].last_error);
		assert_str_eq(a->rcpts[i].remote_mta, b->rcpts[i].remote_mta);
		assert_str_eq(a->rcpts[i].status, b->rcpts[i].status);
		assert_int_equal(a->rcpts[i].reported, b->rcpts[i].reported);
		assert_int_equal(a->rcpts[i].relayed, b->rcpts[i].relayed);
		assert_int_equal(a->rcpts[i].mailbox, b->rcpts[i].mailbox);
	}
}

static void
test_round_trip(void **state)
{
	struct envelope	 a, b;
	char		*buf;
	size_t		 len, i;

	fill(&a);
	assert_int_equal(envelope_encode(&a, &buf, &len), 0);
	/* No byte of a value may break a line: only "\n" ends lines. */
	for (i = 0; i < len; i++)
		assert_true(buf[i] == '\n' ||
		    ((unsigned char)buf[i] > 0x1f && buf[i] != 0x7f));
	assert_int_equal(envelope_decode(buf, len, &b), 0);
	assert_env_equal(&a, &b);
	envelope_free(&b);
	/* "relayed" is written only when set: older readers stay happy. */
	assert_non_null(memmem(buf, len, "\nrelayed 1\n", 11));
	assert_null(memmem(buf, len, "relayed 0", 9));
	/* So is "mailbox" (issue 15), and it is not state: set at receipt. */
	assert_non_null(memmem(buf, len, "\nmailbox 1\n", 11));
	assert_null(memmem(buf, len, "mailbox 0", 9));
	free(buf);
	assert_int_equal(envelope_state_encode(&a, &buf, &len), 0);
	assert_null(memmem(buf, len, "mailbox", 7));
	free(buf);

	/* Defaults (NULLs, RET unset, fresh state) round-trip too. */
	envelope_free(&a);
	memset(&a, 0, sizeof(a));
	assert_int_equal(queue_id_new(a.id), 0);
	a.sender = strdup("");
	(void)envelope_add_recipient(&a, "p@example.test");
	assert_int_equal(envelope_encode(&a, &buf, &len), 0);
	assert_int_equal(envelope_decode(buf, len, &b), 0);
	assert_env_equal(&a, &b);
	assert_string_equal(b.sender, "");
	assert_null(b.client_name);
	assert_int_equal(b.ret, RET_UNSET);
	envelope_free(&b);
	envelope_free(&a);
	free(buf);
}

static void
test_encode_refuses_incomplete(void **state)
{
	struct envelope	 a;
	char		*buf;
	size_t		 len;

	memset(&a, 0, sizeof(a));
	assert_int_equal(queue_id_new(a.id), 0);
	a.sender = strdup("s@x");
	/* No recipient: nothing to deliver, not an envelope. */
	assert_int_equal(envelope_encode(&a, &buf, &len), -1);
	envelope_free(&a);
}

/* Every proper prefix of a valid envelope is refused. */
static void
test_truncated(void **state)
{
	struct envelope	 a, b;
	char		*buf;
	size_t		 len, n;

	fill(&a);
	assert_int_equal(envelope_encode(&a, &buf, &len), 0);
	for (n = 0; n < len; n++) {
		errno = 0;
		assert_int_equal(envelope_decode(buf, n, &b), -1);
		assert_int_equal(errno, EBADMSG);
		assert_null(b.rcpts);
		assert_null(b.sender);
	}
	free(buf);
	envelope_free(&a);
}

static void
expect_bad(const char *text)
{
	struct envelope	 b;

	if (envelope_decode(text, strlen(text), &b) != -1) {
		envelope_free(&b);
		fail_msg("accepted: %s", text);
	}
	assert_int_equal(errno, EBADMSG);
}

#define HEAD	"V1\nid 1NGMKK46KBY07HDKR\narrival 5\nsender a@b\n" \
		"checksum 00000000000000000000000000000000" \
		"00000000000000000000000000000000\nsize 10\n"

static void
test_garbled(void **state)
{
	struct envelope	 b;
	const char	*good = HEAD "rcpt x@y\nend\n";

	assert_int_equal(envelope_decode(good, strlen(good), &b), 0);
	assert_int_equal(b.size, 10);
	envelope_free(&b);

	expect_bad("");
	expect_bad("V2\nend\n");
	expect_bad("V1\nend\n");				/* no id... */
	expect_bad(HEAD "end\n");				/* no rcpt */
	/* no final LF */
	expect_bad(HEAD "rcpt x@y\nend");
	expect_bad(HEAD "rcpt x@y\nend\nX");			/* trailing */
	expect_bad(HEAD "rcpt x@y\nend\nend\n");
	/* unknown key */
	expect_bad(HEAD "rcpt x@y\nbogus 1\nend\n");
	expect_bad(HEAD "size 11\nrcpt x@y\nend\n");		/* duplicate */
	expect_bad(HEAD "rcpt x@y\nstate queued\nstate failed\nend\n");
	/* env after rcpt */
	expect_bad(HEAD "rcpt x@y\nsender z\nend\n");
	/* rcpt key first */
	expect_bad(HEAD "state queued\nrcpt x@y\nend\n");
	expect_bad(HEAD "rcpt x@y\nstate lost\nend\n");
	expect_bad(HEAD "rcpt x@y\nattempts -1\nend\n");
	/* not canonical */
	expect_bad(HEAD "rcpt x@y\nattempts 01\nend\n");
	expect_bad(HEAD "rcpt x@y\nattempts 99999999999\nend\n");
	expect_bad(HEAD "rcpt x@y\nattempts 1x\nend\n");
	expect_bad(HEAD "rcpt x@y\nattempts \nend\n");
	expect_bad(HEAD "rcpt x@y\nreported 2\nend\n");
	expect_bad(HEAD "rcpt x@y\nrelayed 2\nend\n");
	expect_bad(HEAD "rcpt x@y\nrelayed 1\nrelayed 1\nend\n");
	expect_bad(HEAD "rcpt x@y\nnotify 16\nend\n");
	/* short escape */
	expect_bad(HEAD "rcpt x@y\nlast-error a%0\nend\n");
	expect_bad(HEAD "rcpt x@y\nlast-error a%zz\nend\n");
	expect_bad(HEAD "rcpt x@y\nlast-error a%00b\nend\n");	/* NUL */
	expect_bad(HEAD "rcpt x@y\nlast-error a%41\nend\n");	/* needless */
	expect_bad(HEAD "rcpt x@y\nlast-error a%0a\nend\n");	/* lower hex */
	expect_bad(HEAD "rcpt x@y\nlast-error a b\nend\n");	/* raw space */
	expect_bad(HEAD "rcpt x@y\nlast-error a\rb\nend\n");	/* raw CR */
	expect_bad(HEAD "rcpt x@y\nlast-error\nend\n");	/* no space */
	expect_bad(HEAD "rcpt \nend\n");			/* empty rcpt */
	expect_bad(HEAD "rcpt x@y\nret all\nend\n");
	expect_bad("V1\nid ../../etc/passwd\narrival 5\nsender a@b\n"
	    "rcpt x@y\nend\n");
	expect_bad("V1\nid 1NGMKK46KBY07HDKR\narrival 5\nsender a@b\n"
	    "checksum 00\nsize 10\nrcpt x@y\nend\n");
	expect_bad("V1\nid 1NGMKK46KBY07HDKR\narrival 5\nsender a@b\n"
	    "checksum 000000000000000000000000000000000000000000000000000000000"
	    "000000G\nsize 10\nrcpt x@y\nend\n");
	/* Embedded NUL in the text. */
	assert_int_equal(envelope_decode(HEAD "rcpt x@\0y\nend\n",
	    sizeof(HEAD "rcpt x@\0y\nend\n") - 1, &b), -1);
}

static void
test_state_merge(void **state)
{
	struct envelope	 a, b, c;
	char		*buf, *sbuf;
	size_t		 len, slen;

	fill(&a);
	assert_int_equal(envelope_encode(&a, &buf, &len), 0);
	assert_int_equal(envelope_decode(buf, len, &b), 0);
	free(buf);

	/* Change the mutable part, save it, merge it into a fresh copy. */
	a.next_retry = 42;
	a.warned = 0;
	a.rcpts[1].state = RCPT_FAILED;
	a.rcpts[1].attempts = 9;
	free(a.rcpts[0].last_error);
	a.rcpts[0].last_error = strdup("550 5.1.1 no such user");
	a.rcpts[3].remote_mta = strdup("mx2[127.0.0.3]");
	a.rcpts[2].reported = 1;
	a.rcpts[2].relayed = 0;
	assert_int_equal(envelope_state_encode(&a, &sbuf, &slen), 0);
	assert_memory_equal(sbuf, "S1\n", 3);
	assert_null(memmem(sbuf, slen, "sender", 6));
	assert_int_equal(envelope_state_merge(&b, sbuf, slen), 0);
	assert_env_equal(&a, &b);

	/* A state file for other recipients is refused; env unchanged. */
	fill(&c);
	free(c.rcpts[3].addr);
	c.rcpts[3].addr = strdup("other@example.test");
	assert_int_equal(envelope_state_merge(&c, sbuf, slen), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(c.rcpts[1].state, RCPT_DELIVERED);
	envelope_free(&c);

	/* An envelope is not a state file, and a torn one is refused. */
	assert_int_equal(envelope_encode(&a, &buf, &len), 0);
	assert_int_equal(envelope_state_merge(&b, buf, len), -1);
	assert_int_equal(envelope_state_merge(&b, sbuf, slen - 1), -1);
	free(buf);
	free(sbuf);
	envelope_free(&a);
	envelope_free(&b);
}

static void
test_pending_finished(void **state)
{
	struct recipient	 r[4];
	struct envelope		 env;

	memset(r, 0, sizeof(r));
	memset(&env, 0, sizeof(env));
	r[0].state = RCPT_QUEUED;
	r[1].state = RCPT_DEFERRED;
	r[2].state = RCPT_DELIVERED;
	r[3].state = RCPT_FAILED;
	assert_true(rcpt_pending(&r[0]));
	assert_true(rcpt_pending(&r[1]));
	assert_false(rcpt_pending(&r[2]));
	assert_false(rcpt_pending(&r[3]));

	env.rcpts = r;
	env.nrcpts = 0;
	assert_true(envelope_finished(&env));
	env.nrcpts = 4;
	assert_false(envelope_finished(&env));
	/* Delivered and failed, the failure still owing its DSN. */
	env.rcpts = r + 2;
	env.nrcpts = 2;
	assert_false(envelope_finished(&env));
	r[3].reported = 1;
	assert_true(envelope_finished(&env));
	/* A relayed delivery owes its success report. */
	r[2].relayed = 1;
	assert_false(envelope_finished(&env));
	r[2].reported = 1;
	assert_true(envelope_finished(&env));
	env.rcpts = r + 1;
	env.nrcpts = 3;
	assert_false(envelope_finished(&env));
}

static void
test_state_names(void **state)
{
	assert_string_equal(rcpt_state_name(RCPT_QUEUED), "queued");
	assert_string_equal(rcpt_state_name(RCPT_DEFERRED), "deferred");
	assert_string_equal(rcpt_state_name(RCPT_DELIVERED), "delivered");
	assert_string_equal(rcpt_state_name(RCPT_FAILED), "failed");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_encode_refuses_incomplete),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_garbled),
		cmocka_unit_test(test_state_merge),
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_pending_finished),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
