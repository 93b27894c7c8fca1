/*
 * test_mtasts.c - the MTA-STS parsers (core/mtasts.c): the TXT record
 * (RFC 8461 3.1), the policy (3.2), the HTTP response around it (3.3:
 * 200, text/plain, no redirect, size), the mx pattern match (3.4); and
 * the DKIM key record's tag list (core/dkim_record.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/dkim_record.h"
#include "core/mtasts.h"

static int	 txt(const char *, char *);
static int	 policy(const char *, struct mtasts_policy *, char *);
static int	 http(const char *, const char **, size_t *, char *);

static int
txt(const char *s, char *id)
{
	char	 why[256];

	return (mtasts_txt_parse(s, strlen(s), id, MTASTS_ID_SIZE, why,
	    sizeof(why)));
}

static void
test_txt(void **state)
{
	char	 id[MTASTS_ID_SIZE];

	(void)state;
	assert_int_equal(txt("v=STSv1; id=20261203", id), 0);
	assert_string_equal(id, "20261203");
	assert_int_equal(txt("v=STSv1;id=abc;", id), 0);
	assert_string_equal(id, "abc");
	assert_int_equal(txt("v=STSv1; ext=x.y; id=A1 ;", id), 0);
	assert_string_equal(id, "A1");
	/* Not an MTA-STS record at all: discarded by senders. */
	assert_int_equal(txt("v=spf1 -all", id), 1);
	assert_int_equal(txt("", id), 1);
	assert_int_equal(txt("V=STSv1; id=1", id), 1);
	/* MTA-STS but invalid. */
	assert_int_equal(txt("v=STSv1", id), -1);
	assert_int_equal(txt("v=STSv1;", id), -1);
	assert_int_equal(txt("v=STSv1; id=", id), -1);
	assert_int_equal(txt("v=STSv1; id=a-b", id), -1);
	assert_int_equal(txt("v=STSv1; id=1; id=2", id), -1);
	assert_int_equal(txt("v=STSv1 id=1", id), -1);
	assert_int_equal(txt("v=STSv1; id=123456789012345678901234567890123",
	    id), -1);
	assert_int_equal(txt("v=STSv1; id=\x1b[2J", id), -1);
	assert_int_equal(mtasts_txt_parse("v=STSv1; id=1\0x", 15, id,
	    sizeof(id), id, sizeof(id)), -1);
}

static int
policy(const char *s, struct mtasts_policy *p, char *why)
{
	return (mtasts_policy_parse(s, strlen(s), p, why, 256));
}

static void
test_policy(void **state)
{
	struct mtasts_policy	*p;
	char			 why[256];

	(void)state;
	assert_non_null(p = malloc(sizeof(*p)));
	assert_int_equal(policy("version: STSv1\r\nmode: enforce\r\n"
	    "mx: MX1.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n",
	    p, why), 0);
	assert_int_equal(p->mode, MTASTS_MODE_ENFORCE);
	assert_int_equal(p->max_age, 604800);
	assert_int_equal(p->nmx, 2);
	assert_string_equal(p->mx[0], "mx1.example.com");
	assert_string_equal(p->mx[1], "*.example.net");
	/* LF only, blanks around values, unknown keys, no final newline. */
	assert_int_equal(policy("version:STSv1\nmode:   testing  \nfoo: bar\n"
	    "mx: a.b\nmax_age: 0", p, why), 0);
	assert_int_equal(p->mode, MTASTS_MODE_TESTING);
	assert_int_equal(policy("version: STSv1\nmode: none\nmax_age: 1\n",
	    p, why), 0);
	assert_int_equal(p->mode, MTASTS_MODE_NONE);
	/* Missing, repeated or bad fields. */
	assert_int_equal(policy("mode: enforce\nmx: a.b\nmax_age: 1\n", p,
	    why), -1);
	assert_string_equal(why, "no version field");
	assert_int_equal(policy("version: STSv1\nmode: enforce\nmax_age: 1\n",
	    p, why), -1);
	assert_string_equal(why, "no mx field");
	assert_int_equal(policy("version: STSv1\nmode: enforce\nmode: none\n"
	    "mx: a.b\nmax_age: 1\n", p, why), -1);
	assert_int_equal(policy("version: STSv2\nmode: enforce\nmx: a.b\n"
	    "max_age: 1\n", p, why), -1);
	assert_int_equal(policy("version: STSv1\nmode: Enforce\nmx: a.b\n"
	    "max_age: 1\n", p, why), -1);
	assert_int_equal(policy("version: STSv1\nmode: enforce\nmx: a.b\n"
	    "max_age: 31557601\n", p, why), -1);
	assert_int_equal(policy("version: STSv1\nmode: enforce\nmx: a.b\n"
	    "max_age: -1\n", p, why), -1);
	assert_int_equal(policy("version: STSv1\nmode: enforce\nmx: a..b\n"
	    "max_age: 1\n", p, why), -1);
	assert_int_equal(policy("version: STSv1\nmode: enforce\nmx: *\n"
	    "max_age: 1\n", p, why), -1);
	assert_int_equal(policy("version: STSv1\nmode: enforce\nmx: a.*.b\n"
	    "max_age: 1\n", p, why), -1);
	assert_int_equal(policy("version: STSv1\nmode enforce\nmx: a.b\n"
	    "max_age: 1\n", p, why), -1);
	free(p);
}

static int
http(const char *s, const char **body, size_t *len, char *why)
{
	return (mtasts_http_parse(s, strlen(s), body, len, why, 256));
}

static void
test_http(void **state)
{
	const char	*body;
	size_t		 len;
	char		 why[256];

	(void)state;
	assert_int_equal(http("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 4\r\n\r\nabcd", &body, &len, why), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(body, "abcd", 4);
	assert_int_equal(http("HTTP/1.1 200 OK\r\ncontent-type: text/plain; "
	    "charset=utf-8\r\n\r\nxy", &body, &len, why), 0);
	assert_int_equal(len, 2);
	assert_int_equal(http("HTTP/1.0 301 Moved\r\nLocation: "
	    "https://evil/\r\n\r\n", &body, &len, why), -1);
	assert_non_null(strstr(why, "redirect to \"https://evil/\""));
	assert_int_equal(http("HTTP/1.0 404 No\r\nContent-Type: text/plain"
	    "\r\n\r\n", &body, &len, why), -1);
	assert_string_equal(why, "HTTP status 404");
	assert_int_equal(http("HTTP/1.0 200 OK\r\nContent-Type: text/html"
	    "\r\n\r\nx", &body, &len, why), -1);
	assert_int_equal(http("HTTP/1.0 200 OK\r\nContent-Type: text/plainx"
	    "\r\n\r\nx", &body, &len, why), -1);
	assert_int_equal(http("HTTP/1.0 200 OK\r\nContent-Type: text/plain"
	    "\r\nContent-Length: 9\r\n\r\nabcd", &body, &len, why), -1);
	assert_int_equal(http("HTTP/1.0 200 OK\r\nContent-Type: text/plain"
	    "\r\nContent-Length: 99999999\r\n\r\nabcd", &body, &len, why), -1);
	assert_int_equal(http("HTTP/1.0 200 OK\r\nContent-Type: text/plain"
	    "\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd", &body, &len,
	    why), -1);
	assert_int_equal(http("HTTP/1.0 200 OK\r\nContent-Type: text/plain",
	    &body, &len, why), -1);
	assert_int_equal(http("SMTP 220 hi\r\n\r\n", &body, &len, why), -1);
}

static void
test_mx_match(void **state)
{
	(void)state;
	assert_true(mtasts_mx_match("mx.example.com", "mx.example.com"));
	assert_true(mtasts_mx_match("mx.example.com", "MX.Example.COM."));
	assert_true(mtasts_mx_match("mx.example.com.", "mx.example.com"));
	assert_false(mtasts_mx_match("mx.example.com", "mx.example.co"));
	assert_false(mtasts_mx_match("mx.example.com", "a.mx.example.com"));
	assert_true(mtasts_mx_match("*.example.com", "mx.example.com"));
	assert_true(mtasts_mx_match("*.example.com", "backup.EXAMPLE.com"));
	assert_false(mtasts_mx_match("*.example.com", "example.com"));
	assert_false(mtasts_mx_match("*.example.com", "a.mx.example.com"));
	assert_false(mtasts_mx_match("*.example.com", ".example.com"));
	assert_false(mtasts_mx_match("*.example.com", "mxexample.com"));
	assert_false(mtasts_mx_match("", "mx.example.com"));
	assert_false(mtasts_mx_match("*.", "mx."));
}

static void
test_dkim_record(void **state)
{
	struct dkim_key_record	 r;
	char			 why[128];
	const char		*s;

	(void)state;
	s = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
	assert_int_equal(dkim_record_parse(s, strlen(s), &r, why,
	    sizeof(why)), 0);
	assert_string_equal(r.k, "ed25519");
	assert_string_equal(r.p,
	    "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
	s = " p = MIIB IjAN\r\n\tBgkq ; t=s ; ";
	assert_int_equal(dkim_record_parse(s, strlen(s), &r, why,
	    sizeof(why)), 0);
	assert_string_equal(r.k, "rsa");
	assert_string_equal(r.p, "MIIBIjANBgkq");
	s = "v=DKIM1; p=";
	assert_int_equal(dkim_record_parse(s, strlen(s), &r, why,
	    sizeof(why)), 0);
	assert_string_equal(r.p, "");
	s = "k=rsa; v=DKIM1; p=abc";	/* v= not first */
	assert_int_equal(dkim_record_parse(s, strlen(s), &r, why,
	    sizeof(why)), -1);
	s = "v=DKIM1; k=rsa";
	assert_int_equal(dkim_record_parse(s, strlen(s), &r, why,
	    sizeof(why)), -1);
	s = "p=abc; p=abc";
	assert_int_equal(dkim_record_parse(s, strlen(s), &r, why,
	    sizeof(why)), -1);
	s = "p=ab!c";
	assert_int_equal(dkim_record_parse(s, strlen(s), &r, why,
	    sizeof(why)), -1);
	s = "p=abc; =x";
	assert_int_equal(dkim_record_parse(s, strlen(s), &r, why,
	    sizeof(why)), -1);
	assert_int_equal(dkim_record_parse("p=a\0b", 5, &r, why,
	    sizeof(why)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_txt),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_http),
		cmocka_unit_test(test_mx_match),
		cmocka_unit_test(test_dkim_record),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
