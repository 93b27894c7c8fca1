/*
 * test_spf.c - unit tests of core/spf.c, the RFC 7208 evaluator, over a
 * fake zone (no DNS): record selection, each mechanism with CIDR
 * lengths, qualifiers, include and redirect, the term, void and MX
 * limits, temperror, syntax errors, macros with transformers, and
 * hostile records (loops, NULs, bad CIDRs, huge records and expansions)
 * ending in permerror.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "core/spf.h"
#include "core/util.h"

/* One fake record: "TXT", "A", "AAAA", "MX", "PTR"; "TEMP" = SERVFAIL. */
struct fake {
	const char	*name;
	const char	*type;
	const char	*value;
	size_t		 len;		/* TXT with NULs: its length */
};

static struct fake	 zone[64];
static size_t		 nzone;
static char		 asked[64][300];
static size_t		 nasked;

static void
rr(const char *name, const char *type, const char *value)
{
	zone[nzone].name = name;
	zone[nzone].type = type;
	zone[nzone].value = value;
	zone[nzone++].len = strlen(value);
}

static int
setup(void **state)
{
	(void)state;
	nzone = nasked = 0;
	return (0);
}

static enum dns_status
fake_lookup(void *arg, const char *name, enum spf_type t,
    struct spf_rrset *set)
{
	static const char	*types[] = { "TXT", "A", "AAAA", "MX", "PTR" };
	size_t			 i;
	int			 exists = 0;
	struct spf_rr		*r;

	(void)arg;
	if (nasked < 64)
		(void)strlcpy(asked[nasked++], name, sizeof(asked[0]));
	for (i = 0; i < nzone; i++) {
		if (strcasecmp(zone[i].name, name) != 0)
			continue;
		if (strcmp(zone[i].type, "TEMP") == 0)
			return (DNS_TEMP);
		exists = 1;
		if (strcmp(zone[i].type, types[t]) != 0 || set->n >= SPF_RR_MAX)
			continue;
		r = &set->rr[set->n++];
		if (t == SPF_A)
			assert_int_equal(inet_pton(AF_INET, zone[i].value,
			    r->addr), 1);
		else if (t == SPF_AAAA)
			assert_int_equal(inet_pton(AF_INET6, zone[i].value,
			    r->addr), 1);
		else {
			r->text = xmalloc(zone[i].len + 1);
			memcpy(r->text, zone[i].value, zone[i].len);
			r->text[zone[i].len] = '\0';
			r->len = zone[i].len;
		}
	}
	return (exists ? DNS_OK : DNS_PERM);
}

static enum spf_result
check_ip(const char *ip, const char *domain, char *why, size_t size)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	char			 sender[300];

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
		sin6->sin6_family = AF_INET6;
	}
	(void)snprintf(sender, sizeof(sender), "postmaster@%s", domain);
	return (spf_check_host(fake_lookup, NULL, (struct sockaddr *)&ss,
	    domain, sender, "backup.example.test", why, size));
}

static enum spf_result
check(const char *ip, const char *domain)
{
	char	 why[512];

	return (check_ip(ip, domain, why, sizeof(why)));
}

static void
test_record_selection(void **state)
{
	char	 why[512];

	(void)state;
	assert_int_equal(check("192.0.2.1", "none.test"), SPF_NONE);
	rr("d.test", "TXT", "something else");
	assert_int_equal(check_ip("192.0.2.1", "d.test", why, sizeof(why)),
	    SPF_NONE);
	assert_non_null(strstr(why, "no v=spf1"));
	rr("d.test", "TXT", "v=spf10 -all");	/* not a version 1 record */
	assert_int_equal(check("192.0.2.1", "d.test"), SPF_NONE);
	rr("d.test", "TXT", "V=SPF1 +ip4:192.0.2.1");
	assert_int_equal(check("192.0.2.1", "d.test"), SPF_PASS);
	rr("d.test", "TXT", "v=spf1 -all");
	assert_int_equal(check_ip("192.0.2.1", "d.test", why, sizeof(why)),
	    SPF_PERMERROR);
	assert_non_null(strstr(why, "2 v=spf1 TXT records"));
	/* No record and a bad domain: none. */
	assert_int_equal(check("192.0.2.1", "nodot"), SPF_NONE);
	assert_int_equal(check("192.0.2.1", "a..b"), SPF_NONE);
	rr("t.test", "TEMP", "");
	assert_int_equal(check("192.0.2.1", "t.test"), SPF_TEMPERROR);
}

static void
test_ip_and_qualifiers(void **state)
{
	char	 why[512];

	(void)state;
	rr("d.test", "TXT", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 "
	    "?ip4:198.51.100.1 ~ip4:198.51.100.2 -ip4:198.51.100.3 ~all");
	assert_int_equal(check_ip("192.0.2.77", "d.test", why, sizeof(why)),
	    SPF_PASS);
	assert_string_equal(why, "ip4:192.0.2.0/24 in the SPF record of "
	    "d.test");
	assert_int_equal(check("2001:db8:1::5", "d.test"), SPF_PASS);
	assert_int_equal(check("2001:db9::5", "d.test"), SPF_SOFTFAIL);
	assert_int_equal(check("198.51.100.1", "d.test"), SPF_NEUTRAL);
	assert_int_equal(check("198.51.100.2", "d.test"), SPF_SOFTFAIL);
	assert_int_equal(check("198.51.100.3", "d.test"), SPF_FAIL);
	assert_int_equal(check("203.0.113.1", "d.test"), SPF_SOFTFAIL);
	/* No match and no all: neutral. */
	rr("e.test", "TXT", "v=spf1 ip4:192.0.2.1/32");
	assert_int_equal(check_ip("192.0.2.2", "e.test", why, sizeof(why)),
	    SPF_NEUTRAL);
	assert_non_null(strstr(why, "no term"));
	/* /0 and a CIDR boundary. */
	rr("z.test", "TXT", "v=spf1 ip4:10.0.0.0/0 -all");
	assert_int_equal(check("192.0.2.1", "z.test"), SPF_PASS);
	rr("b.test", "TXT", "v=spf1 ip4:192.0.2.128/25 -all");
	assert_int_equal(check("192.0.2.127", "b.test"), SPF_FAIL);
	assert_int_equal(check("192.0.2.128", "b.test"), SPF_PASS);
}

static void
test_a_mx_ptr_exists(void **state)
{
	char	 why[512];

	(void)state;
	rr("d.test", "TXT", "v=spf1 a mx/24 a:other.test//64 ptr:ok.test "
	    "exists:%{ir}.%{v}._spf.%{d} -all");
	rr("d.test", "A", "192.0.2.1");
	rr("d.test", "AAAA", "2001:db8:ffff::1");
	rr("d.test", "MX", "mx.d.test");
	rr("mx.d.test", "A", "198.51.100.9");
	rr("other.test", "AAAA", "2001:db8::1");
	rr("9.113.0.203.in-addr.arpa", "PTR", "h.ok.test");
	rr("h.ok.test", "A", "203.0.113.9");
	rr("10.113.0.203.in-addr.arpa", "PTR", "liar.ok.test");
	rr("liar.ok.test", "A", "203.0.113.99");
	rr("7.113.0.203.in-addr.arpa._spf.d.test", "A", "127.0.0.2");
	rr("7.113.0.203.in-addr._spf.d.test", "A", "127.0.0.2");
	assert_int_equal(check("192.0.2.1", "d.test"), SPF_PASS);
	assert_int_equal(check_ip("198.51.100.200", "d.test", why,
	    sizeof(why)), SPF_PASS);
	assert_string_equal(why, "mx/24 in the SPF record of d.test");
	assert_int_equal(check("2001:db8::abcd", "d.test"), SPF_PASS);
	assert_int_equal(check("2001:db9::1", "d.test"), SPF_FAIL);
	assert_int_equal(check("203.0.113.9", "d.test"), SPF_PASS);
	/* A PTR name that does not resolve back is not validated. */
	assert_int_equal(check("203.0.113.10", "d.test"), SPF_FAIL);
	/* exists: %{ir} reversed, %{v} "in-addr". */
	assert_int_equal(check_ip("203.0.113.7", "d.test", why, sizeof(why)),
	    SPF_PASS);
	assert_non_null(strstr(why, "exists:"));
}

static void
test_include_redirect(void **state)
{
	char	 why[512];

	(void)state;
	rr("d.test", "TXT", "v=spf1 include:_spf.d.test -all");
	rr("_spf.d.test", "TXT", "v=spf1 include:_net.d.test ?all");
	rr("_net.d.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all");
	assert_int_equal(check_ip("192.0.2.5", "d.test", why, sizeof(why)),
	    SPF_PASS);
	assert_string_equal(why, "ip4:192.0.2.0/24 in the SPF record of "
	    "_net.d.test");
	/* The include's ?all is no match: the outer -all decides. */
	assert_int_equal(check_ip("198.51.100.1", "d.test", why, sizeof(why)),
	    SPF_FAIL);
	assert_string_equal(why, "-all in the SPF record of d.test");
	/* Redirect: the target's result; none there is permerror. */
	rr("r.test", "TXT", "v=spf1 ip4:203.0.113.1 redirect=_net.d.test");
	assert_int_equal(check("203.0.113.1", "r.test"), SPF_PASS);
	assert_int_equal(check("192.0.2.9", "r.test"), SPF_PASS);
	assert_int_equal(check("198.51.100.1", "r.test"), SPF_FAIL);
	rr("r2.test", "TXT", "v=spf1 redirect=nothing.test");
	assert_int_equal(check("192.0.2.9", "r2.test"), SPF_PERMERROR);
	rr("i2.test", "TXT", "v=spf1 include:nothing.test ~all");
	assert_int_equal(check_ip("192.0.2.9", "i2.test", why, sizeof(why)),
	    SPF_PERMERROR);
	assert_non_null(strstr(why, "include:nothing.test, which has no"));
	/* An include that cannot be looked up: temperror. */
	rr("i3.test", "TXT", "v=spf1 include:t.test ~all");
	rr("t.test", "TEMP", "");
	assert_int_equal(check("192.0.2.9", "i3.test"), SPF_TEMPERROR);
	/* all before redirect: the redirect is never followed. */
	rr("r3.test", "TXT", "v=spf1 -all redirect=t.test");
	assert_int_equal(check("192.0.2.9", "r3.test"), SPF_FAIL);
}

static void
test_limits(void **state)
{
	char	 why[512];

	(void)state;
	/* A loop of includes. */
	rr("loop.test", "TXT", "v=spf1 include:loop2.test -all");
	rr("loop2.test", "TXT", "v=spf1 include:loop.test -all");
	assert_int_equal(check_ip("192.0.2.1", "loop.test", why,
	    sizeof(why)), SPF_PERMERROR);
	assert_non_null(strstr(why, "more than 10 DNS-querying terms"));
	/* A redirect to itself. */
	rr("self.test", "TXT", "v=spf1 redirect=self.test");
	assert_int_equal(check("192.0.2.1", "self.test"), SPF_PERMERROR);
	/* 10 terms are fine, 11 are not. */
	rr("ten.test", "TXT", "v=spf1 a a a a a a a a a ip4:192.0.2.1 a");
	rr("ten.test", "A", "198.51.100.1");
	assert_int_equal(check("192.0.2.1", "ten.test"), SPF_PASS);
	rr("eleven.test", "TXT", "v=spf1 a a a a a a a a a a a");
	rr("eleven.test", "A", "198.51.100.1");
	assert_int_equal(check("192.0.2.1", "eleven.test"), SPF_PERMERROR);
	/* Two void lookups are fine, three are not. */
	rr("v2.test", "TXT", "v=spf1 a:n1.test a:n2.test ?all");
	assert_int_equal(check("192.0.2.1", "v2.test"), SPF_NEUTRAL);
	rr("v3.test", "TXT", "v=spf1 a:n1.test a:n2.test exists:n3.test "
	    "?all");
	assert_int_equal(check_ip("192.0.2.1", "v3.test", why, sizeof(why)),
	    SPF_PERMERROR);
	assert_non_null(strstr(why, "found nothing"));
	/* The error is said, not what an include before it matched. */
	rr("v4.test", "TXT", "v=spf1 include:soft.test a:n1.test a:n2.test "
	    "a:n3.test ?all");
	rr("soft.test", "TXT", "v=spf1 ~all");
	assert_int_equal(check_ip("192.0.2.1", "v4.test", why, sizeof(why)),
	    SPF_PERMERROR);
	assert_non_null(strstr(why, "found nothing"));
	/* A macro-expand (%% too) may end a domain-spec. */
	assert_int_equal(spf_record_check("v=spf1 a:%{d}%%", 15, why,
	    sizeof(why)), 0);
}

static void
test_mx_limit_and_temp(void **state)
{
	static char	 names[11][32];
	size_t		 i;

	(void)state;
	rr("m.test", "TXT", "v=spf1 mx -all");
	for (i = 0; i < 11; i++) {
		(void)snprintf(names[i], sizeof(names[i]), "mx%zu.m.test", i);
		rr("m.test", "MX", names[i]);
	}
	assert_int_equal(check("192.0.2.1", "m.test"), SPF_PERMERROR);
	nzone = 0;
	rr("m.test", "TXT", "v=spf1 mx -all");
	rr("m.test", "MX", "mx.t.test");
	rr("mx.t.test", "TEMP", "");
	assert_int_equal(check("192.0.2.1", "m.test"), SPF_TEMPERROR);
	/* An error inside ptr is no match, not temperror. */
	rr("p.test", "TXT", "v=spf1 ptr ~all");
	rr("1.2.0.192.in-addr.arpa", "TEMP", "");
	assert_int_equal(check("192.0.2.1", "p.test"), SPF_SOFTFAIL);
	rr("a.test", "TXT", "v=spf1 a:t2.test ~all");
	rr("t2.test", "TEMP", "");
	assert_int_equal(check("192.0.2.1", "a.test"), SPF_TEMPERROR);
}

static void
test_syntax_errors(void **state)
{
	static const char *bad[] = {
		"v=spf1 foo", "v=spf1 ip4:192.0.2.1/33", "v=spf1 ip4:192.0.2.1/",
		"v=spf1 ip4:192.0.2.1/08", "v=spf1 ip6:2001:db8::/129",
		"v=spf1 ip4:300.1.1.1", "v=spf1 ip4:", "v=spf1 a/33",
		"v=spf1 mx//129", "v=spf1 a:example", "v=spf1 include",
		"v=spf1 include:", "v=spf1 all:x.test", "v=spf1 exists:%{x}.t",
		"v=spf1 exists:%{d0}.test", "v=spf1 exists:%{d", "v=spf1 a:%.t",
		"v=spf1 redirect=a.test redirect=b.test",
		"v=spf1 exp=a.test exp=b.test", "v=spf1 -redirect=a.test",
		"v=spf1 exists:%{c}.test", "v=spf1 ip6:192.0.2.1",
		"v=spf1 *all", "v=spf1 ip4:1.2.3.4/-1", "v=spf1 exists:x.test}",
		"v=spf1 a:%{d}x}",
	};
	char	 why[512];
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		nzone = 0;
		rr("s.test", "TXT", bad[i]);
		why[0] = '\0';
		if (check_ip("192.0.2.1", "s.test", why, sizeof(why)) !=
		    SPF_PERMERROR)
			fail_msg("%s: not permerror (%s)", bad[i], why);
		assert_int_equal(spf_record_check(bad[i], strlen(bad[i]), why,
		    sizeof(why)), -1);
	}
	/* Valid syntax, but the name has an empty label. */
	nzone = 0;
	rr("s.test", "TXT", "v=spf1 a:x..test/24 -all");
	assert_int_equal(check_ip("192.0.2.1", "s.test", why, sizeof(why)),
	    SPF_PERMERROR);
	assert_non_null(strstr(why, "expands to no domain name"));
	/* A syntax error after the matching term still counts. */
	nzone = 0;
	rr("s.test", "TXT", "v=spf1 +all bogus");
	assert_int_equal(check("192.0.2.1", "s.test"), SPF_PERMERROR);
	/* Unknown modifiers are ignored; exp= is checked, then ignored. */
	nzone = 0;
	rr("s.test", "TXT", "v=spf1 foo=bar%{d} exp=explain.%{d} "
	    "ip4:192.0.2.1 -all");
	assert_int_equal(check("192.0.2.1", "s.test"), SPF_PASS);
	/* A NUL in the record. */
	nzone = 0;
	rr("s.test", "TXT", "v=spf1 ip4:192.0.2.1 -all");
	zone[0].value = "v=spf1 ip4:192.0.2.1\0 -all";
	zone[0].len = 26;
	assert_int_equal(check("192.0.2.1", "s.test"), SPF_PERMERROR);
}

static void
test_macros(void **state)
{
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	char			 out[SPF_EXPAND_MAX + 1], why[256];
	const char		*s;

	(void)state;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, "192.0.2.3", &sin.sin_addr), 1);
#define EXP(m, want) do {						\
	s = (m);							\
	assert_int_equal(spf_expand(s, strlen(s),			\
	    (struct sockaddr *)&sin, "strong-bad@email.example.com",	\
	    "email.example.com", "mx.example.org", 0, out, sizeof(out),	\
	    why, sizeof(why)), 0);					\
	assert_string_equal(out, (want));				\
} while (0)
	/* The examples of RFC 7208 7.4. */
	EXP("%{s}", "strong-bad@email.example.com");
	EXP("%{o}", "email.example.com");
	EXP("%{d}", "email.example.com");
	EXP("%{d4}", "email.example.com");
	EXP("%{d3}", "email.example.com");
	EXP("%{d2}", "example.com");
	EXP("%{d1}", "com");
	EXP("%{dr}", "com.example.email");
	EXP("%{d2r}", "example.email");
	EXP("%{l}", "strong-bad");
	EXP("%{l-}", "strong.bad");
	EXP("%{lr}", "strong-bad");
	EXP("%{lr-}", "bad.strong");
	EXP("%{l1r-}", "strong");
	EXP("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com");
	EXP("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com");
	EXP("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
	    "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
	EXP("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
	    "3.2.0.192.in-addr.strong.lp._spf.example.com");
	EXP("%{d2}.trusted-domains.example.net",
	    "example.com.trusted-domains.example.net");
	EXP("%{h}", "mx.example.org");
	EXP("%%%_%-", "% %20");
	EXP("%{S}", "strong-bad%40email.example.com");
	EXP("%{d999}", "email.example.com");
	EXP("%{p}", "unknown");
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::cb01",
	    &sin6.sin6_addr), 1);
	s = "%{ir}.%{v}._spf.%{d2}";
	assert_int_equal(spf_expand(s, strlen(s), (struct sockaddr *)&sin6,
	    "strong-bad@email.example.com", "email.example.com", "h", 0, out,
	    sizeof(out), why, sizeof(why)), 0);
	assert_string_equal(out, "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
	/* c, r and t only in explanations; bad forms. */
	s = "%{c}";
	assert_int_equal(spf_expand(s, strlen(s), (struct sockaddr *)&sin,
	    "a@b", "b", "h", 0, out, sizeof(out), why, sizeof(why)), -1);
	assert_int_equal(spf_expand(s, strlen(s), (struct sockaddr *)&sin,
	    "a@b", "b", "h", 1, out, sizeof(out), why, sizeof(why)), 0);
	assert_string_equal(out, "192.0.2.3");
	s = "%{d0}";
	assert_int_equal(spf_expand(s, strlen(s), (struct sockaddr *)&sin,
	    "a@b", "b", "h", 0, out, sizeof(out), why, sizeof(why)), -1);
	s = "%x";
	assert_int_equal(spf_expand(s, strlen(s), (struct sockaddr *)&sin,
	    "a@b", "b", "h", 0, out, sizeof(out), why, sizeof(why)), -1);
	s = "100%";
	assert_int_equal(spf_expand(s, strlen(s), (struct sockaddr *)&sin,
	    "a@b", "b", "h", 0, out, sizeof(out), why, sizeof(why)), -1);
#undef EXP
}

static void
test_hostile(void **state)
{
	char		*big, why[512];
	size_t		 i, len;

	(void)state;
	/* An overlong expansion: permerror, not a crash. */
	len = 60000;
	big = xmalloc(len + 1);
	(void)strlcpy(big, "v=spf1 exists:", len + 1);
	for (i = strlen(big); i + 4 < len; i += 4)
		memcpy(big + i, "%{s}", 4);
	(void)strlcpy(big + i, ".t", len + 1 - i);
	rr("h.test", "TXT", big);
	assert_int_equal(check_ip("192.0.2.1", "h.test", why, sizeof(why)),
	    SPF_PERMERROR);
	assert_non_null(strstr(why, "longer than"));
	/* A huge record of many terms: the term limit ends it. */
	nzone = 0;
	(void)strlcpy(big, "v=spf1", len + 1);
	for (i = strlen(big); i + 12 < len; i += 11)
		memcpy(big + i, " a:x.test/8", 11);
	big[i] = '\0';
	rr("h.test", "TXT", big);
	rr("x.test", "A", "198.51.100.1");
	assert_int_equal(check("192.0.2.1", "h.test"), SPF_PERMERROR);
	assert_true(nasked < 20);
	/* An expansion past 253 octets loses labels on the left. */
	nzone = nasked = 0;
	rr("h.test", "TXT", "v=spf1 exists:%{s}.%{s}.%{s}.%{s}.%{s}.%{s}.t "
	    "-all");
	assert_int_equal(check("192.0.2.1", "h.test"), SPF_FAIL);
	assert_true(strlen(asked[1]) <= 253);
	/* A label over 63 octets after expansion: permerror. */
	nzone = 0;
	rr("h.test", "TXT", "v=spf1 exists:%{l}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.t -all");
	assert_int_equal(check("192.0.2.1", "h.test"), SPF_PERMERROR);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_record_selection, setup),
		cmocka_unit_test_setup(test_ip_and_qualifiers, setup),
		cmocka_unit_test_setup(test_a_mx_ptr_exists, setup),
		cmocka_unit_test_setup(test_include_redirect, setup),
		cmocka_unit_test_setup(test_limits, setup),
		cmocka_unit_test_setup(test_mx_limit_and_temp, setup),
		cmocka_unit_test_setup(test_syntax_errors, setup),
		cmocka_unit_test_setup(test_macros, setup),
		cmocka_unit_test_setup(test_hostile, setup),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
