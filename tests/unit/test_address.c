/*
 * test_address.c - RFC 5321 path parsing, open-relay tricks, relay
 * domain matching and recipient lists (core/mail/address.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/mail/address.h"

static enum address_error
parse(const char *s, int allow_null, int utf8, struct address *a)
{
	const char	*end;
	enum address_error e;

	e = address_parse_path(s, allow_null, utf8, a, &end);
	if (e == ADDRESS_OK)
		assert_int_equal(*end, '\0');
	return (e);
}

static void
test_simple(void **state)
{
	struct address	 a;

	assert_int_equal(parse("<user@example.test>", 0, 0, &a), ADDRESS_OK);
	assert_string_equal(a.addr, "user@example.test");
	assert_string_equal(a.local, "user");
	assert_string_equal(a.domain, "example.test");
	assert_false(a.null || a.route || a.quoted || a.literal || a.utf8);
	assert_int_equal(parse("<first.last+tag@sub.example.test>", 0, 0, &a),
	    ADDRESS_OK);
	assert_string_equal(a.local_plain, "first.last+tag");
	assert_int_equal(parse("<a!#$%&'*+-/=?^_`{|}~@x-y.test>", 0, 0, &a),
	    ADDRESS_OK);
}

static void
test_null(void **state)
{
	struct address	 a;

	assert_int_equal(parse("<>", 1, 0, &a), ADDRESS_OK);
	assert_true(a.null);
	assert_string_equal(a.addr, "");
	assert_int_equal(parse("<>", 0, 0, &a), ADDRESS_SYNTAX);
}

static void
test_syntax_errors(void **state)
{
	static const char *bad[] = {
		"user@example.test", "<user@example.test", "<user>",
		"<@example.test>", "<user@>", "<user@@example.test>",
		"<.user@example.test>", "<user.@example.test>",
		"<us..er@example.test>", "<user@example..test>",
		"<user@-example.test>", "<user@example-.test>",
		"<user@exa_mple.test>", "<us er@example.test>",
		"<user@example.test..>", "<\"unterminated@example.test>",
		"<user@[1.2.3]>", "<user@[IPv6:zz]>", "<user@[]>",
		"<user@example.test> ", "<user\x01@example.test>",
		"<\"a\x01\"@example.test>", "<user@example.test.>x",
		"<@a.test@b.test>", "<@a.test,b.test:u@c.test>", "<a@b@c>",
		"<\"a\\\x7f\"@x.test>", "<user@exa\xffmple.test>x",
		NULL
	};
	struct address	 a;
	const char	*end;
	int		 i;

	for (i = 0; bad[i] != NULL; i++) {
		enum address_error e = address_parse_path(bad[i], 1, 1, &a,
		    &end);
		if (e == ADDRESS_OK && *end == '\0')
			fail_msg("accepted \"%s\"", bad[i]);
	}
}

static void
test_trailing_dot_and_case(void **state)
{
	struct address	 a;

	assert_int_equal(parse("<User@EXAMPLE.Test.>", 0, 0, &a), ADDRESS_OK);
	assert_string_equal(a.domain, "EXAMPLE.Test");
	assert_string_equal(a.addr, "User@EXAMPLE.Test");
	assert_true(address_domain_match(a.domain, "example.test"));
	assert_true(address_domain_match("example.test.", "example.test"));
	assert_true(address_domain_match("example.test", "Example.Test."));
	assert_false(address_domain_match("sub.example.test", "example.test"));
	assert_false(address_domain_match("example.test.evil", "example.test"));
	assert_false(address_domain_match("xexample.test", "example.test"));
	assert_false(address_domain_match("example.tes", "example.test"));
	assert_false(address_domain_match("", ""));
	assert_false(address_domain_match(".", "."));
}

static void
test_domain_of(void **state)
{
	char	 buf[16];

	assert_int_equal(address_domain_of("u@Example.ORG.", buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "example.org");
	assert_int_equal(address_domain_of("\"a@b\"@C.test", buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "c.test");
	assert_int_equal(address_domain_of("u@.", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	assert_int_equal(address_domain_of("postmaster", buf,
	    sizeof(buf)), -1);
	assert_string_equal(buf, "");
	assert_int_equal(address_domain_of("u@a-very-long.example", buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "a-very-long.exa");
}

static void
test_domain_typed(void **state)
{
	char	 buf[16];

	assert_int_equal(address_domain_typed("Example.ORG.", buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "example.org");
	/* One dot only: the name is what is left. */
	assert_int_equal(address_domain_typed("x.test..", buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "x.test.");
	assert_int_equal(address_domain_typed("plain", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "plain");
	/* Cut to size, as flush -d always did. */
	assert_int_equal(address_domain_typed("a-very-long.example", buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "a-very-long.exa");
	assert_int_equal(address_domain_typed("", buf, sizeof(buf)), -1);
	assert_string_equal(buf, "");
	assert_int_equal(address_domain_typed(".", buf, sizeof(buf)), -1);
	assert_string_equal(buf, "");
	assert_int_equal(address_domain_typed("../x", buf, sizeof(buf)), -1);
	assert_string_equal(buf, "");
	assert_int_equal(address_domain_typed("a/b.test", buf,
	    sizeof(buf)), -1);
	assert_int_equal(address_domain_typed("x.test", buf, 0), -1);
}

static void
test_lengths(void **state)
{
	struct address	 a;
	char		 buf[1024], local[100], label[100];

	memset(local, 'a', 64);
	local[64] = '\0';
	snprintf(buf, sizeof(buf), "<%s@x.test>", local);
	assert_int_equal(parse(buf, 0, 0, &a), ADDRESS_OK);
	memset(local, 'a', 65);
	local[65] = '\0';
	snprintf(buf, sizeof(buf), "<%s@x.test>", local);
	assert_int_equal(parse(buf, 0, 0, &a), ADDRESS_TOO_LONG);

	memset(label, 'b', 63);
	label[63] = '\0';
	snprintf(buf, sizeof(buf), "<u@%s.test>", label);
	assert_int_equal(parse(buf, 0, 0, &a), ADDRESS_OK);
	memset(label, 'b', 64);
	label[64] = '\0';
	snprintf(buf, sizeof(buf), "<u@%s.test>", label);
	assert_int_not_equal(parse(buf, 0, 0, &a), ADDRESS_OK);

	/* A 253-octet domain is fine on its own but not in a 256 path. */
	memset(local, 'a', 64);
	local[64] = '\0';
	snprintf(buf, sizeof(buf), "<%s@%s.%s.%s.x>", local, label + 1,
	    label + 1, label + 1);
	assert_int_equal(strlen(buf), 1 + 64 + 1 + 63 * 3 + 3 + 1 + 1);
	assert_int_equal(parse(buf, 0, 0, &a), ADDRESS_TOO_LONG);
}

/*
 * An address's domain obeys the one domain maximum of core/util.h
 * (DOMAIN_NAME_MAX octets, DOMAIN_NAME_SIZE with the NUL), which
 * address.h itself provides.
 */
static void
test_domain_maximum(void **state)
{
	struct address	 a;
	char		 dom[DOMAIN_NAME_MAX + 8], label[64];

	assert_int_equal(DOMAIN_NAME_MAX, 255);
	assert_int_equal(sizeof(a.domain), DOMAIN_NAME_SIZE);
	memset(label, 'c', 63);
	label[63] = '\0';
	/* Four labels of 63: DOMAIN_NAME_MAX octets exactly. */
	snprintf(dom, sizeof(dom), "%s.%s.%s.%s", label, label, label,
	    label);
	assert_int_equal(strlen(dom), DOMAIN_NAME_MAX);
	assert_true(address_domain_valid(dom));
	/* The final dot is not counted. */
	(void)strlcat(dom, ".", sizeof(dom));
	assert_true(address_domain_valid(dom));
	/* One octet more is too long (labels of 63, 63, 63, 62 and 1). */
	snprintf(dom, sizeof(dom), "%s.%s.%s.%.62s.a", label, label, label,
	    label);
	assert_int_equal(strlen(dom), DOMAIN_NAME_MAX + 1);
	assert_false(address_domain_valid(dom));
}

static void
test_quoted(void **state)
{
	struct address	 a;

	assert_int_equal(parse("<\"john doe\"@example.test>", 0, 0, &a),
	    ADDRESS_OK);
	assert_true(a.quoted);
	assert_string_equal(a.local, "\"john doe\"");
	assert_string_equal(a.local_plain, "john doe");
	assert_null(address_relay_trick(&a));
	assert_int_equal(parse("<\"a\\\"b\"@example.test>", 0, 0, &a),
	    ADDRESS_OK);
	assert_string_equal(a.local_plain, "a\"b");
	assert_int_equal(parse("<\"user@other.test\"@example.test>", 0, 0,
	    &a), ADDRESS_OK);
	assert_non_null(address_relay_trick(&a));
	assert_int_equal(parse("<\"user%other.test\"@example.test>", 0, 0,
	    &a), ADDRESS_OK);
	assert_non_null(address_relay_trick(&a));
	assert_int_equal(parse("<\"other!user\"@example.test>", 0, 0, &a),
	    ADDRESS_OK);
	assert_non_null(address_relay_trick(&a));
}

static void
test_relay_tricks(void **state)
{
	static const struct {
		const char	*path;
		const char	*reason;	/* NULL: clean */
	} cases[] = {
		{ "<user@example.test>", NULL },
		{ "<user+tag@example.test>", NULL },
		{ "<user%other.test@example.test>", "percent hack" },
		{ "<other.test!user@example.test>", "bang path" },
		{ "<@example.test:user@other.test>", "source route" },
		{ "<@a.test,@example.test:user@other.test>", "source route" },
		{ "<user@[127.0.0.1]>", "address literal" },
		{ "<user@[IPv6:::1]>", "address literal" },
		{ "<\"user@other.test\"@example.test>",
		    "quoted local part with @" },
	};
	struct address	 a;
	const char	*r;
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].path, 0, 0, &a), ADDRESS_OK);
		r = address_relay_trick(&a);
		if (cases[i].reason == NULL)
			assert_null(r);
		else {
			assert_non_null(r);
			assert_string_equal(r, cases[i].reason);
		}
	}
	/* The route is dropped: the address is the mailbox. */
	assert_int_equal(parse("<@a.test,@b.test:user@c.test>", 0, 0, &a),
	    ADDRESS_OK);
	assert_string_equal(a.addr, "user@c.test");
}

static void
test_utf8(void **state)
{
	struct address	 a;

	assert_int_equal(parse("<j\xc3\xb6rg@example.test>", 0, 0, &a),
	    ADDRESS_NEED_UTF8);
	assert_int_equal(parse("<j\xc3\xb6rg@example.test>", 0, 1, &a),
	    ADDRESS_OK);
	assert_true(a.utf8);
	assert_int_equal(parse("<user@b\xc3\xbc" "cher.test>", 0, 1, &a),
	    ADDRESS_OK);
	/* Invalid UTF-8 even with SMTPUTF8: overlong, lone continuation. */
	assert_int_equal(parse("<\xc0\xafuser@example.test>", 0, 1, &a),
	    ADDRESS_SYNTAX);
	assert_int_equal(parse("<\x80user@example.test>", 0, 1, &a),
	    ADDRESS_SYNTAX);
	assert_int_equal(parse("<\xed\xa0\x80@example.test>", 0, 1, &a),
	    ADDRESS_SYNTAX);
	assert_true(utf8_valid((const unsigned char *)"\xf0\x9f\x98\x80", 4));
	assert_false(utf8_valid((const unsigned char *)"\xf0\x9f\x98", 3));
	assert_false(utf8_valid((const unsigned char *)"\xf4\x90\x80\x80", 4));
}

static void
test_domain_valid(void **state)
{
	assert_true(address_domain_valid("example.test"));
	assert_true(address_domain_valid("example.test."));
	assert_false(address_domain_valid(""));
	assert_false(address_domain_valid("exa mple"));
	assert_false(address_domain_valid("[1.2.3.4]"));
	assert_false(address_domain_valid("a..b"));
	assert_false(address_domain_valid("-a.b"));
}

static void
test_rcptlist(void **state)
{
	static const char text[] =
	    "# valid recipients\n"
	    "Alice@Example.Test\n"
	    "  bob@example.test   # trailing comment\n"
	    "\n"
	    "@catchall.test\n"
	    "carol@example.test.\n";
	struct rcptlist	*rl;

	rl = rcptlist_parse(text, strlen(text));
	assert_int_equal(rcptlist_count(rl), 4);
	assert_true(rcptlist_match(rl, "alice", "example.test"));
	assert_true(rcptlist_match(rl, "ALICE", "EXAMPLE.TEST."));
	assert_true(rcptlist_match(rl, "bob", "example.test"));
	assert_true(rcptlist_match(rl, "bob+news", "example.test"));
	assert_true(rcptlist_match(rl, "carol", "example.test"));
	assert_false(rcptlist_match(rl, "dave", "example.test"));
	assert_false(rcptlist_match(rl, "+bob", "example.test"));
	assert_false(rcptlist_match(rl, "bobby", "example.test"));
	assert_false(rcptlist_match(rl, "alice", "sub.example.test"));
	assert_true(rcptlist_match(rl, "anyone", "catchall.test"));
	assert_true(rcptlist_match(rl, "x+y", "CatchAll.Test"));
	assert_false(rcptlist_match(rl, "anyone", "sub.catchall.test"));
	rcptlist_free(rl);
}

static void
test_rcptlist_match_how(void **state)
{
	static const char text[] =
	    "Alice@Example.Test\n"
	    "@catchall.test\n"
	    "bob@catchall.test\n";
	struct rcptlist	*rl;

	rl = rcptlist_parse(text, strlen(text));
	assert_int_equal(rcptlist_match_how(rl, "alice", "example.test"),
	    RCPTLIST_USER);
	assert_int_equal(rcptlist_match_how(rl, "alice+x", "EXAMPLE.test"),
	    RCPTLIST_USER);
	assert_int_equal(rcptlist_match_how(rl, "bob", "catchall.test"),
	    RCPTLIST_USER);
	assert_int_equal(rcptlist_match_how(rl, "eve", "catchall.test"),
	    RCPTLIST_DOMAIN);
	assert_int_equal(rcptlist_match_how(rl, "eve", "example.test"),
	    RCPTLIST_NONE);
	rcptlist_free(rl);
}

static void
test_mailbox_name(void **state)
{
	char	 l[ADDRESS_LOCAL_MAX + 1], d[DOMAIN_NAME_SIZE];
	char	 big[ADDRESS_LOCAL_MAX + 40];

	assert_int_equal(address_mailbox_name("User+Tag@Example.TEST.", l,
	    sizeof(l), d, sizeof(d)), 0);
	assert_string_equal(l, "user");
	assert_string_equal(d, "example.test");
	assert_int_equal(address_mailbox_name("a.b@x.test", l, sizeof(l), d,
	    sizeof(d)), 0);
	assert_string_equal(l, "a.b");
	/* Unsafe as a path component, or no plain domain: refused. */
	assert_int_equal(address_mailbox_name("a/b@x.test", l, sizeof(l), d,
	    sizeof(d)), -1);
	assert_string_equal(l, "");
	assert_int_equal(address_mailbox_name(".hidden@x.test", l, sizeof(l),
	    d, sizeof(d)), -1);
	assert_int_equal(address_mailbox_name("..@x.test", l, sizeof(l),
	    d, sizeof(d)), -1);
	assert_int_equal(address_mailbox_name("a\tb@x.test", l, sizeof(l),
	    d, sizeof(d)), -1);
	assert_int_equal(address_mailbox_name("a\x7f@x.test", l, sizeof(l),
	    d, sizeof(d)), -1);
	assert_int_equal(address_mailbox_name("\"a b\"@x.test", l, sizeof(l),
	    d, sizeof(d)), -1);
	assert_int_equal(address_mailbox_name("a\\b@x.test", l, sizeof(l),
	    d, sizeof(d)), -1);
	assert_int_equal(address_mailbox_name("a@[127.0.0.1]", l, sizeof(l),
	    d, sizeof(d)), -1);
	assert_int_equal(address_mailbox_name("a@../x", l, sizeof(l), d,
	    sizeof(d)), -1);
	assert_int_equal(address_mailbox_name("noat", l, sizeof(l), d,
	    sizeof(d)), -1);
	assert_int_equal(address_mailbox_name("@x.test", l, sizeof(l), d,
	    sizeof(d)), -1);
	assert_int_equal(address_mailbox_name("+tag@x.test", l, sizeof(l), d,
	    sizeof(d)), 0);
	assert_string_equal(l, "+tag");
	/* 64 octets pass, 65 do not (+tag stripped first). */
	memset(big, 'a', 64);
	strcpy(big + 64, "@x.test");
	assert_int_equal(address_mailbox_name(big, l, sizeof(l), d,
	    sizeof(d)), 0);
	memset(big, 'a', 65);
	strcpy(big + 65, "@x.test");
	assert_int_equal(address_mailbox_name(big, l, sizeof(l), d,
	    sizeof(d)), -1);
	memset(big, 'a', 64);
	strcpy(big + 64, "+tag@x.test");
	assert_int_equal(address_mailbox_name(big, l, sizeof(l), d,
	    sizeof(d)), 0);
}

static void
test_mailbox_eligible(void **state)
{
	static const char text[] =
	    "alice@example.test\n"
	    "a/b@example.test\n"
	    "@catchall.test\n";
	struct rcptlist	*rl;

	rl = rcptlist_parse(text, strlen(text));
	assert_true(mailbox_eligible(rl, "alice@example.test"));
	assert_true(mailbox_eligible(rl, "Alice+news@EXAMPLE.TEST"));
	assert_false(mailbox_eligible(rl, "bob@example.test"));
	assert_false(mailbox_eligible(rl, "anyone@catchall.test"));
	assert_false(mailbox_eligible(rl, "a/b@example.test"));
	assert_false(mailbox_eligible(NULL, "alice@example.test"));
	rcptlist_free(rl);
}

static void
test_rcptlist_load(void **state)
{
	char		 path[] = "/tmp/test_address.XXXXXX", err[256];
	struct rcptlist	*rl;
	FILE		*f;
	int		 fd;

	assert_true((fd = mkstemp(path)) != -1);
	assert_non_null(f = fdopen(fd, "w"));
	fputs("a@example.test\n@b.test\n", f);
	assert_int_equal(fclose(f), 0);
	assert_non_null(rl = rcptlist_load(path, err, sizeof(err)));
	assert_int_equal(rcptlist_count(rl), 2);
	rcptlist_free(rl);

	assert_non_null(f = fopen(path, "w"));
	fputs("a@example.test\njustaname\n", f);
	assert_int_equal(fclose(f), 0);
	assert_null(rcptlist_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, ":2:"));
	assert_int_equal(unlink(path), 0);
	assert_null(rcptlist_load(path, err, sizeof(err)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_domain_of),
		cmocka_unit_test(test_domain_typed),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_trailing_dot_and_case),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_domain_maximum),
		cmocka_unit_test(test_quoted),
		cmocka_unit_test(test_relay_tricks),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_domain_valid),
		cmocka_unit_test(test_rcptlist),
		cmocka_unit_test(test_rcptlist_load),
		cmocka_unit_test(test_rcptlist_match_how),
		cmocka_unit_test(test_mailbox_name),
		cmocka_unit_test(test_mailbox_eligible),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
