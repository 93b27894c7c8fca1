/*
 * test_check.c - the verdicts of `mxfb check` (cmd/check_rules.c),
 * apart from DNS and the network: our place in the MX set, an MTA-STS
 * policy against our hostname, our certificate, and the two checks
 * that other parts wire to configuration keys: the DKIM key record
 * against our key (dkim) and SPF against our addresses (users).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmd/check_rules.h"
#include "cmd/plugin.h"
#include "core/certfile.h"
#include "core/dns.h"
#include "core/dnsrec.h"
#include "core/mtasts.h"

#define US	"backup.example.test"

static enum check_level	 mx_of(const char *, char *, size_t);

/* "10 a 20 b" -> the verdict for US. */
static enum check_level
mx_of(const char *spec, char *reason, size_t size)
{
	struct mx_record	 mx[8];
	char			 buf[256], *p, *tok;
	size_t			 n = 0;

	memset(mx, 0, sizeof(mx));
	(void)strlcpy(buf, spec, sizeof(buf));
	p = buf;
	while ((tok = strsep(&p, " ")) != NULL && p != NULL) {
		mx[n].pref = (unsigned)atoi(tok);
		(void)strlcpy(mx[n++].host, strsep(&p, " "),
		    sizeof(mx[0].host));
	}
	return (check_mx("example.test", mx, n, US, reason, size));
}

static void
test_mx(void **state)
{
	char	 r[1024];

	(void)state;
	assert_int_equal(mx_of("10 mx1.example.test 20 " US, r, sizeof(r)),
	    CHECK_OK);
	assert_non_null(strstr(r, "preference 20 behind mx1.example.test"));
	assert_int_equal(mx_of("10 mx1.example.test 20 BACKUP.example.test "
	    "30 x.test", r, sizeof(r)), CHECK_OK);
	assert_int_equal(mx_of("10 mx1.example.test", r, sizeof(r)),
	    CHECK_CRIT);
	assert_non_null(strstr(r, "add \"example.test. MX 20 " US ".\""));
	assert_int_equal(mx_of("10 " US " 20 mx1.example.test", r, sizeof(r)),
	    CHECK_CRIT);
	assert_non_null(strstr(r, "is the best MX"));
	assert_int_equal(mx_of("10 " US " 10 mx1.example.test", r, sizeof(r)),
	    CHECK_CRIT);
	assert_non_null(strstr(r, "tied with mx1.example.test"));
	/* Listed twice: the best record counts. */
	assert_int_equal(mx_of("30 " US " 10 mx1.example.test 5 " US, r,
	    sizeof(r)), CHECK_CRIT);
	assert_int_equal(mx_of("", r, sizeof(r)), CHECK_CRIT);
	assert_non_null(strstr(r, "no MX records"));
}

static void
test_mtasts(void **state)
{
	struct mtasts_policy	*p;
	char			 r[2048];

	(void)state;
	assert_non_null(p = calloc(1, sizeof(*p)));
	p->mode = MTASTS_MODE_ENFORCE;
	p->max_age = 86400;
	p->nmx = 1;
	(void)strlcpy(p->mx[0], "mx1.example.test", sizeof(p->mx[0]));
	assert_int_equal(check_mtasts("example.test", p, "1", US, r,
	    sizeof(r)), CHECK_CRIT);
	assert_non_null(strstr(r, "add \"mx: " US "\""));
	p->mode = MTASTS_MODE_TESTING;
	assert_int_equal(check_mtasts("example.test", p, "1", US, r,
	    sizeof(r)), CHECK_WARN);
	p->mode = MTASTS_MODE_NONE;
	assert_int_equal(check_mtasts("example.test", p, "1", US, r,
	    sizeof(r)), CHECK_OK);
	p->mode = MTASTS_MODE_ENFORCE;
	(void)strlcpy(p->mx[p->nmx++], "*.example.test", sizeof(p->mx[0]));
	assert_int_equal(check_mtasts("example.test", p, "1", US, r,
	    sizeof(r)), CHECK_OK);
	assert_non_null(strstr(r, "mx *.example.test matches " US));
	free(p);
}

static void
test_cert(void **state)
{
	struct cert_facts	 f;
	char			 r[1024];

	(void)state;
	memset(&f, 0, sizeof(f));
	assert_int_equal(check_cert(NULL, US, r, sizeof(r)), CHECK_WARN);
	f.covers = 1;
	f.expiry_days = 60;
	assert_int_equal(check_cert(&f, US, r, sizeof(r)), CHECK_OK);
	f.expiry_days = CHECK_CERT_WARN_DAYS + 1;
	assert_int_equal(check_cert(&f, US, r, sizeof(r)), CHECK_OK);
	f.expiry_days = CHECK_CERT_WARN_DAYS;
	assert_int_equal(check_cert(&f, US, r, sizeof(r)), CHECK_WARN);
	f.expiry_days = CHECK_CERT_CRIT_DAYS + 1;
	assert_int_equal(check_cert(&f, US, r, sizeof(r)), CHECK_WARN);
	f.expiry_days = CHECK_CERT_CRIT_DAYS;
	assert_int_equal(check_cert(&f, US, r, sizeof(r)), CHECK_CRIT);
	f.expiry_days = -1;
	assert_int_equal(check_cert(&f, US, r, sizeof(r)), CHECK_CRIT);
	assert_non_null(strstr(r, "expired"));
	f.expiry_days = 60;
	f.covers = 0;
	(void)strlcpy(f.names, "other.test", sizeof(f.names));
	assert_int_equal(check_cert(&f, US, r, sizeof(r)), CHECK_CRIT);
	assert_non_null(strstr(r, "(other.test) do not cover " US));
}

static void
test_dkim(void **state)
{
	struct dns_txt	 t[2];
	char		 r[4096], a[] = "v=DKIM1; k=ed25519; p=AAAA",
			 b[] = "v=DKIM1; k=ed25519; p=BB BB",
			 junk[] = "v=spf1 -all", revoked[] = "v=DKIM1; p=";
	const char	*key = "BBBB";

	(void)state;
	t[0].text = a;
	t[0].len = strlen(a);
	t[1].text = b;
	t[1].len = strlen(b);
	assert_int_equal(check_dkim("example.test", "s1", t, 2, "ed25519",
	    key, r, sizeof(r)), CHECK_OK);
	assert_int_equal(check_dkim("example.test", "s1", t, 1, "ed25519",
	    key, r, sizeof(r)), CHECK_CRIT);
	assert_non_null(strstr(r, "another key"));
	assert_non_null(strstr(r, "publish \"s1._domainkey.example.test. TXT "
	    "\\\"v=DKIM1; k=ed25519; p=BBBB\\\"\""));
	/* The right key of the wrong type is not ours. */
	assert_int_equal(check_dkim("example.test", "s1", t + 1, 1, "rsa",
	    key, r, sizeof(r)), CHECK_CRIT);
	assert_int_equal(check_dkim("example.test", "s1", NULL, 0, "rsa",
	    key, r, sizeof(r)), CHECK_CRIT);
	assert_non_null(strstr(r, "no DKIM key record at "
	    "s1._domainkey.example.test"));
	t[0].text = junk;
	t[0].len = strlen(junk);
	assert_int_equal(check_dkim("example.test", "s1", t, 1, "rsa", key,
	    r, sizeof(r)), CHECK_CRIT);
	t[0].text = revoked;
	t[0].len = strlen(revoked);
	assert_int_equal(check_dkim("example.test", "s1", t, 1, "rsa", key,
	    r, sizeof(r)), CHECK_CRIT);
	assert_non_null(strstr(r, "revoked"));
}

static void
test_spf(void **state)
{
	struct spf_outcome	 o[2] = {
		{ "192.0.2.1", "pass" }, { "2001:db8::1", "pass" }
	};
	char			 r[1024];

	(void)state;
	assert_int_equal(check_spf("example.test", o, 2, r, sizeof(r)),
	    CHECK_OK);
	o[1].result = "softfail";
	assert_int_equal(check_spf("example.test", o, 2, r, sizeof(r)),
	    CHECK_WARN);
	assert_non_null(strstr(r, "2001:db8::1 (softfail)"));
	assert_non_null(strstr(r, "add ip6:2001:db8::1"));
	o[0].result = "fail";
	assert_int_equal(check_spf("example.test", o, 2, r, sizeof(r)),
	    CHECK_WARN);
	assert_non_null(strstr(r, "add ip4:192.0.2.1 ip6:2001:db8::1"));
	o[0].result = "temperror";
	assert_int_equal(check_spf("example.test", o, 2, r, sizeof(r)),
	    CHECK_UNKNOWN);
}

static void
test_levels(void **state)
{
	(void)state;
	assert_string_equal(check_level_word(CHECK_WARN), "WARN");
	assert_int_equal(check_level_state(CHECK_CRIT), PLUGIN_CRITICAL);
	assert_int_equal(plugin_worse(PLUGIN_UNKNOWN, PLUGIN_CRITICAL),
	    PLUGIN_CRITICAL);
	assert_int_equal(plugin_worse(PLUGIN_WARNING, PLUGIN_UNKNOWN),
	    PLUGIN_UNKNOWN);
	assert_int_equal(plugin_worse(PLUGIN_OK, PLUGIN_WARNING),
	    PLUGIN_WARNING);
	assert_int_equal(plugin_worse(PLUGIN_OK, PLUGIN_OK), PLUGIN_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mx),
		cmocka_unit_test(test_mtasts),
		cmocka_unit_test(test_cert),
		cmocka_unit_test(test_dkim),
		cmocka_unit_test(test_spf),
		cmocka_unit_test(test_levels),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
