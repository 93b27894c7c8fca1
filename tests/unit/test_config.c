/*
 * test_config.c - unit tests of core/config.c: every key with a value and
 * with its default, every kind of error reported as "file:LINE: reason",
 * comments and blank lines, repeatable keys, relay-domain via forms,
 * host:port and CIDR parsing, CIDR matching (v4, v6, v4-mapped), the
 * TLS keys and the per-domain `tls LEVEL` override.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/util.h"

static char	 tmpdir[64];
static char	 conf[128];
static char	 err[1024];

static int
setup(void **state)
{
	(void)strlcpy(tmpdir, "/tmp/mxfb-test-config-XXXXXX", sizeof(tmpdir));
	if (mkdtemp(tmpdir) == NULL)
		return (-1);
	if (bsnprintf(conf, sizeof(conf), "%s/mxfb.conf", tmpdir) == -1)
		return (-1);
	return (0);
}

static int
teardown(void **state)
{
	(void)unlink(conf);
	return (rmdir(tmpdir));
}

static void
write_conf(const char *text)
{
	FILE	*f;

	assert_non_null(f = fopen(conf, "w"));
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int
parse(const char *text, struct config *c)
{
	write_conf(text);
	err[0] = '\0';
	return (config_parse_file(conf, c, err, sizeof(err)));
}

/* The text must fail with "FILE:line: ...reason..." */
static void
parse_fails(const char *text, int line, const char *reason)
{
	struct config	 c;
	char		 prefix[256];

	if (parse(text, &c) != -1) {
		config_free(&c);
		fail_msg("accepted: %s", text);
	}
	assert_int_not_equal(bsnprintf(prefix, sizeof(prefix), "%s:%d: ",
	    conf, line), -1);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("for %s: \"%s\" does not start with \"%s\"", text,
		    err, prefix);
	if (strstr(err, reason) == NULL)
		fail_msg("for %s: \"%s\" does not contain \"%s\"", text, err,
		    reason);
	/* Nothing left allocated on failure. */
	assert_null(c.relays);
	assert_null(c.resolvers);
	assert_null(c.etrn_allow);
}

static void
test_defaults(void **state)
{
	struct config	 c;
	char		 host[DOMAIN_NAME_SIZE];

	assert_int_equal(parse("", &c), 0);
	assert_string_equal(c.file, conf);
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	assert_string_equal(c.hostname, ascii_lower(host));
	assert_string_equal(c.spool, "/var/spool/mxfb");
	assert_int_equal(c.nrelays, 0);
	assert_string_equal(c.recipients, "");
	assert_true(c.max_size == 50ULL * 1024 * 1024);
	assert_int_equal(c.max_recipients, 1000);
	assert_int_equal(c.queue_lifetime, 5 * 86400);
	assert_int_equal(c.delay_warning, 4 * 3600);
	assert_int_equal(c.retry_min, 300);
	assert_int_equal(c.retry_max, 3600);
	assert_int_equal(c.nresolvers, 0);
	assert_int_equal(c.smtp_port, 25);
	assert_int_equal(c.netrn_allow, 0);
	assert_int_equal(c.has_smarthost, 0);
	assert_int_equal(c.log_stderr, 0);
	assert_int_equal(c.timeout, 300);
	assert_int_equal(c.soft_error_limit, 10);
	assert_int_equal(c.hard_error_limit, 20);
	assert_int_equal(c.error_sleep, 1);
	assert_true(c.queue_minfree == 100ULL * 1024 * 1024);
	assert_int_equal(c.max_sessions, 100);
	assert_int_equal(c.flush_concurrency, 100);
	assert_int_equal(c.flush_per_host, 10);
	assert_int_equal(c.connect_timeout, 30);
	assert_int_equal(c.command_timeout, 300);
	assert_int_equal(c.data_timeout, 120);
	assert_int_equal(c.data_done_timeout, 600);
	assert_int_equal(c.dns_timeout, 5);
	assert_int_equal(c.dns_retry, 2);
	assert_int_equal(c.claim_timeout, 7200);
	assert_true(c.bounce_size_limit == 100 * 1024);
	assert_int_equal(c.bounce_policy, BOUNCE_ALL);
	assert_string_equal(c.tls_cert, "");
	assert_string_equal(c.tls_key, "");
	assert_string_equal(c.tls_ciphers, "");
	assert_int_equal(c.tls_required, 0);
	assert_int_equal(c.tls_outbound, TLS_LEVEL_MAY);
	assert_string_equal(c.tls_ca_file, "");
	assert_string_equal(c.user, "mxfb");
	assert_int_equal(c.user_line, 0);
	config_free(&c);
}

/* `user`: only its syntax is checked here, and its line is kept for
 * the error cmd/common.c gives when the account is missing or root. */
static void
test_user(void **state)
{
	struct config	 c;

	assert_int_equal(parse("# x\n\nuser _mxfb-2.x\n", &c), 0);
	assert_string_equal(c.user, "_mxfb-2.x");
	assert_int_equal(c.user_line, 3);
	config_free(&c);
	assert_int_equal(parse("user root\n", &c), 0);
	assert_string_equal(c.user, "root");
	config_free(&c);
	assert_int_equal(parse("user 01234567890123456789012345678901\n",
	    &c), 0);
	config_free(&c);
	parse_fails("user 012345678901234567890123456789012\n", 1,
	    "bad user name");
	parse_fails("user -mxfb\n", 1, "bad user name");
	parse_fails("user ..\n", 1, "bad user name");
	parse_fails("user a/b\n", 1, "bad user name");
	parse_fails("user m\xc3\xa4il\n", 1, "bad user name");
	parse_fails("user a b\n", 1, "too many values");
	parse_fails("user a\nuser b\n", 2, "duplicate key");
}

static void
test_tls_keys(void **state)
{
	struct config	 c;

	assert_int_equal(parse(
	    "tls-cert /etc/ssl/mx.pem\n"
	    "tls-key /etc/ssl/private/mx.key\n"
	    "tls-ciphers ECDHE+AESGCM:ECDHE+CHACHA20\n"
	    "tls-required yes\n"
	    "tls-outbound verify\n"
	    "tls-ca-file /etc/ssl/certs/ca-certificates.crt\n"
	    "relay-domain a.test\n"
	    "relay-domain b.test tls dane\n"
	    "relay-domain c.test via [127.0.0.2]:2525 tls none\n"
	    "relay-domain d.test tls encrypt via mx.d.test\n", &c), 0);
	assert_string_equal(c.tls_ciphers, "ECDHE+AESGCM:ECDHE+CHACHA20");
	assert_int_equal(c.tls_required, 1);
	assert_int_equal(c.tls_outbound, TLS_LEVEL_VERIFY);
	assert_string_equal(c.tls_ca_file,
	    "/etc/ssl/certs/ca-certificates.crt");
	assert_int_equal(c.relays[0].has_tls, 0);
	assert_int_equal(c.relays[1].has_tls, 1);
	assert_int_equal(c.relays[1].tls, TLS_LEVEL_DANE);
	assert_int_equal(c.relays[1].has_via, 0);
	assert_int_equal(c.relays[2].tls, TLS_LEVEL_NONE);
	assert_int_equal(c.relays[2].via.port, 2525);
	assert_int_equal(c.relays[3].tls, TLS_LEVEL_ENCRYPT);
	assert_string_equal(c.relays[3].via.host, "mx.d.test");
	assert_int_equal(config_tls_level(&c, "a.test"), TLS_LEVEL_VERIFY);
	assert_int_equal(config_tls_level(&c, "B.Test."), TLS_LEVEL_DANE);
	assert_int_equal(config_tls_level(&c, "c.test"), TLS_LEVEL_NONE);
	assert_int_equal(config_tls_level(&c, "other.test"),
	    TLS_LEVEL_VERIFY);
	config_free(&c);

	assert_int_equal(parse("tls-required no\ntls-outbound none\n", &c),
	    0);
	assert_int_equal(c.tls_required, 0);
	assert_int_equal(c.tls_outbound, TLS_LEVEL_NONE);
	config_free(&c);

	parse_fails("tls-required maybe\n", 1, "neither yes nor no");
	parse_fails("tls-required yes\n", 1, "needs tls-cert");
	parse_fails("tls-outbound secure\n", 1, "not one of none, may");
	parse_fails("tls-outbound may\ntls-outbound dane\n", 2,
	    "duplicate key");
	parse_fails("spool /a\ntls-ciphers NO-SUCH-CIPHER\n", 2,
	    "tls-ciphers");
	parse_fails("relay-domain a.test tls\n", 1, "relay-domain");
	parse_fails("relay-domain a.test tls strict\n", 1,
	    "tls \"strict\" is not one of");
	parse_fails("relay-domain a.test tls may tls none\n", 1,
	    "once each");
	parse_fails("relay-domain a.test via x.test via y.test\n", 1,
	    "once each");
	parse_fails("relay-domain a.test via x.test tls may extra\n", 1,
	    "relay-domain");
}

static void
test_every_key(void **state)
{
	struct config	 c;
	struct sockaddr_in sin;

	assert_int_equal(parse(
	    "hostname Backup.Example.TEST.\n"
	    "spool /srv/spool\n"
	    "relay-domain example.test\n"
	    "recipients /etc/mxfb/recipients\n"
	    "max-size 10M\n"
	    "max-recipients 100\n"
	    "queue-lifetime 3d\n"
	    "delay-warning 0\n"
	    "retry-min 30s\n"
	    "retry-max 2h\n"
	    "resolver 127.0.0.1:5353\n"
	    "smtp-port 2525\n"
	    "etrn-allow 127.0.0.0/8\n"
	    "smarthost [127.0.0.9]:2526\n"
	    "log stderr\n"
	    "timeout 60s\n"
	    "soft-error-limit 0\n"
	    "hard-error-limit 3\n"
	    "error-sleep 2s\n"
	    "queue-minfree 1G\n"
	    "max-sessions 7\n"
	    "flush-concurrency 2\n"
	    "flush-per-host 3\n"
	    "connect-timeout 5s\n"
	    "command-timeout 1m\n"
	    "data-timeout 2m\n"
	    "data-done-timeout 3m\n"
	    "dns-timeout 1\n"
	    "dns-retry 1\n"
	    "claim-timeout 10m\n"
	    "bounce-size-limit 0\n"
	    "bounce-policy verified\n"
	    "tls-cert /etc/ssl/mxfb.crt\n"
	    "tls-key /etc/ssl/mxfb.key\n", &c), 0);
	assert_string_equal(c.hostname, "backup.example.test");
	assert_string_equal(c.spool, "/srv/spool");
	assert_int_equal(c.nrelays, 1);
	assert_string_equal(c.relays[0].name, "example.test");
	assert_int_equal(c.relays[0].has_via, 0);
	assert_string_equal(c.recipients, "/etc/mxfb/recipients");
	assert_true(c.max_size == 10ULL * 1024 * 1024);
	assert_int_equal(c.max_recipients, 100);
	assert_int_equal(c.queue_lifetime, 3 * 86400);
	assert_int_equal(c.delay_warning, 0);
	assert_int_equal(c.retry_min, 30);
	assert_int_equal(c.retry_max, 7200);
	assert_int_equal(c.nresolvers, 1);
	assert_string_equal(c.resolvers[0].host, "127.0.0.1");
	assert_int_equal(c.resolvers[0].port, 5353);
	assert_int_equal(c.smtp_port, 2525);
	assert_int_equal(c.netrn_allow, 1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, "127.1.2.3", &sin.sin_addr), 1);
	assert_true(config_etrn_allowed(&c, (struct sockaddr *)&sin));
	assert_int_equal(inet_pton(AF_INET, "10.0.0.1", &sin.sin_addr), 1);
	assert_false(config_etrn_allowed(&c, (struct sockaddr *)&sin));
	assert_int_equal(c.has_smarthost, 1);
	assert_string_equal(c.smarthost.host, "127.0.0.9");
	assert_int_equal(c.smarthost.literal, 1);
	assert_int_equal(c.smarthost.port, 2526);
	assert_int_equal(c.log_stderr, 1);
	assert_int_equal(c.timeout, 60);
	assert_int_equal(c.soft_error_limit, 0);
	assert_int_equal(c.hard_error_limit, 3);
	assert_int_equal(c.error_sleep, 2);
	assert_true(c.queue_minfree == 1024ULL * 1024 * 1024);
	assert_int_equal(c.max_sessions, 7);
	assert_int_equal(c.flush_concurrency, 2);
	assert_int_equal(c.flush_per_host, 3);
	assert_int_equal(c.connect_timeout, 5);
	assert_int_equal(c.command_timeout, 60);
	assert_int_equal(c.data_timeout, 120);
	assert_int_equal(c.data_done_timeout, 180);
	assert_int_equal(c.dns_timeout, 1);
	assert_int_equal(c.dns_retry, 1);
	assert_int_equal(c.claim_timeout, 600);
	assert_true(c.bounce_size_limit == 0);
	assert_int_equal(c.bounce_policy, BOUNCE_VERIFIED);
	assert_string_equal(c.tls_cert, "/etc/ssl/mxfb.crt");
	assert_string_equal(c.tls_key, "/etc/ssl/mxfb.key");
	config_free(&c);

	assert_int_equal(parse("log syslog\nbounce-policy none\n", &c), 0);
	assert_int_equal(c.log_stderr, 0);
	assert_int_equal(c.bounce_policy, BOUNCE_NONE);
	config_free(&c);
	assert_int_equal(parse("bounce-policy all\n", &c), 0);
	assert_int_equal(c.bounce_policy, BOUNCE_ALL);
	config_free(&c);
}

static void
test_comments_blanks(void **state)
{
	struct config	 c;

	assert_int_equal(parse(
	    "# a comment\n"
	    "\n"
	    "   \t  \n"
	    "   # indented comment\n"
	    "  spool   /a/b  # trailing comment\n"
	    "\tmax-size\t1K\t\n"
	    "hostname h.test\r\n"
	    "smtp-port 26#no blank before the comment\n"
	    "retry-max 1d", &c), 0);		/* no final newline */
	assert_string_equal(c.spool, "/a/b");
	assert_true(c.max_size == 1024);
	assert_string_equal(c.hostname, "h.test");
	assert_int_equal(c.smtp_port, 26);
	assert_int_equal(c.retry_max, 86400);
	config_free(&c);
}

static void
test_repeated(void **state)
{
	struct config	 c;

	assert_int_equal(parse(
	    "relay-domain a.test\n"
	    "resolver 127.0.0.1\n"
	    "relay-domain B.Test.\n"
	    "etrn-allow 127.0.0.1 10.0.0.0/8\n"
	    "resolver [::1]:5300\n"
	    "etrn-allow ::1\n"
	    "relay-domain c.test\n", &c), 0);
	assert_int_equal(c.nrelays, 3);
	assert_string_equal(c.relays[0].name, "a.test");
	assert_string_equal(c.relays[1].name, "b.test");
	assert_string_equal(c.relays[2].name, "c.test");
	assert_int_equal(c.nresolvers, 2);
	assert_string_equal(c.resolvers[0].host, "127.0.0.1");
	assert_int_equal(c.resolvers[0].port, 0);
	assert_string_equal(c.resolvers[1].host, "::1");
	assert_int_equal(c.resolvers[1].port, 5300);
	assert_int_equal(c.netrn_allow, 3);
	assert_int_equal(c.etrn_allow[0].family, AF_INET);
	assert_int_equal(c.etrn_allow[0].prefixlen, 32);
	assert_int_equal(c.etrn_allow[1].prefixlen, 8);
	assert_int_equal(c.etrn_allow[2].family, AF_INET6);
	assert_int_equal(c.etrn_allow[2].prefixlen, 128);

	assert_non_null(config_relay_domain(&c, "a.test"));
	assert_ptr_equal(config_relay_domain(&c, "B.TEST"), &c.relays[1]);
	assert_ptr_equal(config_relay_domain(&c, "c.test."), &c.relays[2]);
	assert_null(config_relay_domain(&c, "d.test"));
	assert_null(config_relay_domain(&c, "test"));
	assert_null(config_relay_domain(&c, "x.a.test"));
	assert_null(config_relay_domain(&c, "a.tes"));
	assert_null(config_relay_domain(&c, ""));
	assert_null(config_relay_domain(&c, "."));
	config_free(&c);
}

static void
test_relay_via(void **state)
{
	struct config	 c;

	assert_int_equal(parse(
	    "relay-domain a.test via mx.a.test\n"
	    "relay-domain b.test via MX.B.test.:2525\n"
	    "relay-domain c.test via [127.0.0.2]\n"
	    "relay-domain d.test via [127.0.0.3]:26\n"
	    "relay-domain e.test via [::1]:2525\n"
	    "relay-domain f.test via [mx.f.test]\n"
	    "relay-domain g.test via 127.0.0.4:27\n", &c), 0);
	assert_int_equal(c.nrelays, 7);
	assert_int_equal(c.relays[0].has_via, 1);
	assert_string_equal(c.relays[0].via.host, "mx.a.test");
	assert_int_equal(c.relays[0].via.literal, 0);
	assert_int_equal(c.relays[0].via.port, 0);
	assert_string_equal(c.relays[1].via.host, "mx.b.test");
	assert_int_equal(c.relays[1].via.port, 2525);
	assert_int_equal(c.relays[1].via.literal, 0);
	assert_string_equal(c.relays[2].via.host, "127.0.0.2");
	assert_int_equal(c.relays[2].via.literal, 1);
	assert_int_equal(c.relays[2].via.port, 0);
	assert_string_equal(c.relays[3].via.host, "127.0.0.3");
	assert_int_equal(c.relays[3].via.port, 26);
	assert_string_equal(c.relays[4].via.host, "::1");
	assert_int_equal(c.relays[4].via.literal, 1);
	assert_int_equal(c.relays[4].via.port, 2525);
	assert_string_equal(c.relays[5].via.host, "mx.f.test");
	assert_int_equal(c.relays[5].via.literal, 1);
	assert_string_equal(c.relays[6].via.host, "127.0.0.4");
	assert_int_equal(c.relays[6].via.literal, 1);
	assert_int_equal(c.relays[6].via.port, 27);
	config_free(&c);
}

static void
test_errors(void **state)
{
	struct config	 c;
	char		 longline[5000], longhost[300];

	parse_fails("spool /a\nfrobnicate 1\n", 2, "unknown key \"frobnicate\"");
	parse_fails("\n\nspool\n", 3, "missing value");
	parse_fails("spool /a /b\n", 1, "too many values");
	parse_fails("spool /a\nspool /b\n", 2, "duplicate key");
	parse_fails("log stderr\nlog stderr\n", 2, "duplicate key");
	parse_fails("max-size 10X\n", 1, "bad size");
	parse_fails("max-size -1\n", 1, "bad size");
	parse_fails("max-size 0\n", 1, "at least");
	parse_fails("queue-lifetime 5y\n", 1, "bad duration");
	parse_fails("delay-warning -4h\n", 1, "bad duration");
	parse_fails("timeout 0\n", 1, "at least");
	parse_fails("soft-error-limit -1\n", 1, "soft-error-limit: number "
	    "\"-1\" is too small (0..100000)");
	parse_fails("spool /a\nsoft-error-limit 100001\n", 2,
	    "soft-error-limit: number \"100001\" is too large");
	parse_fails("hard-error-limit 0\n", 1, "hard-error-limit: number "
	    "\"0\" is too small (1..100000)");
	parse_fails("hard-error-limit twenty\n", 1, "hard-error-limit");
	parse_fails("error-sleep 1h1s\n", 1, "error-sleep: bad duration");
	parse_fails("\nerror-sleep 61m\n", 2,
	    "error-sleep: must be at most 3600s");
	parse_fails("error-sleep 1s\nerror-sleep 2s\n", 2, "duplicate key");
	parse_fails("max-recipients 0\n", 1, "max-recipients");
	/* RFC 5321 4.5.3.1.8: 100 at least. */
	parse_fails("max-recipients 99\n", 1, "max-recipients: number \"99\" "
	    "is too small (100..100000)");
	parse_fails("max-recipients many\n", 1, "max-recipients");
	parse_fails("dns-retry 0\n", 1, "dns-retry");
	parse_fails("flush-concurrency 99999999999999999999\n", 1,
	    "flush-concurrency");
	parse_fails("flush-per-host 0\n", 1, "flush-per-host");
	parse_fails("smtp-port 0\n", 1, "bad port");
	parse_fails("smtp-port 65536\n", 1, "bad port");
	parse_fails("smtp-port 25x\n", 1, "bad port");
	parse_fails("smarthost host:port\n", 1, "bad port");
	parse_fails("smarthost [127.0.0.1\n", 1, "missing ]");
	parse_fails("smarthost ::1\n", 1, "brackets");
	parse_fails("smarthost bad_host\n", 1, "invalid host name");
	parse_fails("smarthost [127.0.0.1]x\n", 1, "garbage");
	parse_fails("resolver dns.example.test\n", 1, "not an IP address");
	parse_fails("resolver 127.0.0.1:99999\n", 1, "bad port");
	parse_fails("resolver 127.0.0.1 127.0.0.2\n", 1, "one per line");
	parse_fails("etrn-allow 127.0.0.0/33\n", 1, "etrn-allow");
	parse_fails("etrn-allow ::1/129\n", 1, "etrn-allow");
	parse_fails("etrn-allow 127.0.0.1 example.test\n", 1, "example.test");
	parse_fails("etrn-allow 10.0.0.0/\n", 1, "etrn-allow");
	parse_fails("log file\n", 1, "neither syslog nor stderr");
	parse_fails("bounce-policy some\n", 1, "bounce-policy");
	parse_fails("retry-min 2h\n", 1, "greater than retry-max");
	parse_fails("retry-max 1m\n\nretry-min 5m\n", 3, "greater");
	parse_fails("retry-min 5m\n\nretry-max 1m\n", 3, "greater");
	/* Soft above hard: at the later of the two lines (or the one set). */
	parse_fails("soft-error-limit 5\nspool /a\nhard-error-limit 4\n", 3,
	    "soft-error-limit (5) is greater than hard-error-limit (4)");
	parse_fails("hard-error-limit 4\nsoft-error-limit 5\n", 2,
	    "soft-error-limit (5) is greater than hard-error-limit (4)");
	parse_fails("spool /a\nsoft-error-limit 21\n", 2,
	    "soft-error-limit (21) is greater than hard-error-limit (20)");
	parse_fails("hard-error-limit 9\n", 1,
	    "soft-error-limit (10) is greater than hard-error-limit (9)");
	/* Equal is allowed: every error is paced once the session is
	   about to end. */
	assert_int_equal(parse("soft-error-limit 5\nhard-error-limit 5\n", &c),
	    0);
	assert_int_equal(c.soft_error_limit, 5);
	config_free(&c);
	parse_fails("tls-cert /a\n", 1, "tls-cert without tls-key");
	parse_fails("spool /a\ntls-key /a\n", 2, "tls-key without tls-cert");
	parse_fails("relay-domain\n", 1, "missing value");
	parse_fails("relay-domain a.test via\n", 1, "relay-domain");
	parse_fails("relay-domain a.test by mx.a.test\n", 1, "\"via\"");
	parse_fails("relay-domain a.test via [::1]:0\n", 1, "bad port");
	parse_fails("relay-domain a.test via [::1\n", 1, "missing ]");
	parse_fails("relay-domain a..test\n", 1, "invalid domain");
	parse_fails("relay-domain -a.test\n", 1, "invalid domain");
	parse_fails("relay-domain a-.test\n", 1, "invalid domain");
	parse_fails("relay-domain a_b.test\n", 1, "invalid domain");
	parse_fails("relay-domain [1.2.3.4]\n", 1, "invalid domain");
	parse_fails("relay-domain a.test\nrelay-domain A.TEST.\n", 2,
	    "duplicate relay-domain");
	parse_fails("relay-domain a.test via x.test extra\n", 1,
	    "relay-domain");
	parse_fails("hostname -bad\n", 1, "invalid host name");
	parse_fails("hostname a b\n", 1, "too many values");

	/* A 64-character label, and a name over 253 characters. */
	memset(longhost, 'a', 64);
	(void)strlcpy(longhost + 64, ".test\n", sizeof(longhost) - 64);
	write_conf("");
	{
		char	 text[400];

		assert_int_not_equal(bsnprintf(text, sizeof(text),
		    "hostname %s", longhost), -1);
		parse_fails(text, 1, "invalid host name");
		memset(longhost, 'a', 260);
		for (size_t i = 50; i < 260; i += 50)
			longhost[i] = '.';
		longhost[260] = '\0';
		assert_int_not_equal(bsnprintf(text, sizeof(text),
		    "spool /a\nhostname %s\n", longhost), -1);
		parse_fails(text, 2, "invalid host name");
	}

	/* Lines over 4096 bytes. */
	memset(longline, ' ', sizeof(longline));
	memcpy(longline, "spool /a", 8);
	longline[sizeof(longline) - 2] = '\n';
	longline[sizeof(longline) - 1] = '\0';
	parse_fails(longline, 1, "longer than");
}

static void
test_long_line_limit(void **state)
{
	struct config	 c;
	char		 line[4098];

	/* Exactly 4096 bytes before the newline is fine. */
	memset(line, ' ', sizeof(line));
	memcpy(line, "spool /a", 8);
	line[4096] = '\n';
	line[4097] = '\0';
	assert_int_equal(parse(line, &c), 0);
	assert_string_equal(c.spool, "/a");
	config_free(&c);
}

static void
test_missing_file(void **state)
{
	struct config	 c;
	char		 path[256], expect[300];

	assert_int_not_equal(bsnprintf(path, sizeof(path), "%s/nope.conf",
	    tmpdir), -1);
	assert_int_equal(config_parse_file(path, &c, err, sizeof(err)), -1);
	assert_int_not_equal(bsnprintf(expect, sizeof(expect),
	    "%s: No such file or directory", path), -1);
	assert_string_equal(err, expect);
}

static void
test_config_load(void **state)
{
	char	 path[256];

	write_conf("hostname from-env.test\nrelay-domain x.test\n");
	assert_int_equal(setenv("MXFB_CONFIG", conf, 1), 0);
	assert_int_equal(config_load(NULL, err, sizeof(err)), 0);
	assert_non_null(cfg);
	assert_string_equal(cfg->hostname, "from-env.test");
	assert_string_equal(cfg->file, conf);
	assert_non_null(config_relay_domain(cfg, "X.test"));

	/* An explicit path wins over the environment; reload replaces. */
	assert_int_not_equal(bsnprintf(path, sizeof(path), "%s/other.conf",
	    tmpdir), -1);
	{
		FILE	*f;

		assert_non_null(f = fopen(path, "w"));
		assert_true(fputs("hostname explicit.test\n", f) >= 0);
		assert_int_equal(fclose(f), 0);
	}
	assert_int_equal(config_load(path, err, sizeof(err)), 0);
	assert_string_equal(cfg->hostname, "explicit.test");
	assert_int_equal(cfg->nrelays, 0);
	assert_int_equal(unlink(path), 0);

	/* A failed load leaves the previous configuration in place. */
	assert_int_equal(config_load(path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file or directory"));
	assert_string_equal(cfg->hostname, "explicit.test");

	/* A missing $MXFB_CONFIG file is an error, not the defaults. */
	assert_int_equal(setenv("MXFB_CONFIG", path, 1), 0);
	assert_int_equal(config_load(NULL, err, sizeof(err)), -1);
	assert_int_equal(strncmp(err, path, strlen(path)), 0);
	assert_int_equal(unsetenv("MXFB_CONFIG"), 0);
	config_free((struct config *)cfg);
}

static void
test_hostport(void **state)
{
	struct hostport	 hp;
	const char	*errstr;

	assert_int_equal(hostport_parse("mx.test", &hp, &errstr), 0);
	assert_string_equal(hp.host, "mx.test");
	assert_int_equal(hp.port, 0);
	assert_int_equal(hp.literal, 0);
	assert_int_equal(hostport_parse("[::ffff:127.0.0.1]:25", &hp,
	    &errstr), 0);
	assert_string_equal(hp.host, "::ffff:127.0.0.1");
	assert_int_equal(hp.port, 25);
	assert_int_equal(hostport_parse("[::1]", &hp, &errstr), 0);
	assert_int_equal(hp.port, 0);
	assert_int_equal(hp.literal, 1);
	assert_int_equal(hostport_parse("", &hp, &errstr), -1);
	assert_int_equal(hostport_parse("[]", &hp, &errstr), -1);
	assert_int_equal(hostport_parse(":25", &hp, &errstr), -1);
	assert_int_equal(hostport_parse("mx.test:", &hp, &errstr), -1);
	assert_int_equal(hostport_parse("mx.test:-1", &hp, &errstr), -1);
	assert_int_equal(hostport_parse("[mx..test]", &hp, &errstr), -1);

	assert_true(hostname_valid("a"));
	assert_true(hostname_valid("a.b-c.d0."));
	assert_false(hostname_valid(""));
	assert_false(hostname_valid("."));
	assert_false(hostname_valid(".a"));
	assert_false(hostname_valid("a..b"));
	assert_false(hostname_valid("a.b.."));
	assert_false(hostname_valid("a b"));
	assert_false(hostname_valid("a.b-"));
}

static void
sa4(struct sockaddr_in *sin, const char *addr)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, addr, &sin->sin_addr), 1);
}

static void
sa6(struct sockaddr_in6 *sin6, const char *addr)
{
	memset(sin6, 0, sizeof(*sin6));
	sin6->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, addr, &sin6->sin6_addr), 1);
}

static void
test_cidr(void **state)
{
	struct cidr		 c;
	struct sockaddr_in	 s4;
	struct sockaddr_in6	 s6;
	struct sockaddr		 unix_sa;

	assert_int_equal(cidr_parse("127.0.0.0/8", &c), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefixlen, 8);
	sa4(&s4, "127.0.0.1");
	assert_true(cidr_match(&c, (struct sockaddr *)&s4));
	sa4(&s4, "127.255.255.255");
	assert_true(cidr_match(&c, (struct sockaddr *)&s4));
	sa4(&s4, "128.0.0.1");
	assert_false(cidr_match(&c, (struct sockaddr *)&s4));
	/* v4-mapped IPv6 peers match IPv4 networks. */
	sa6(&s6, "::ffff:127.0.0.1");
	assert_true(cidr_match(&c, (struct sockaddr *)&s6));
	sa6(&s6, "::ffff:10.0.0.1");
	assert_false(cidr_match(&c, (struct sockaddr *)&s6));
	sa6(&s6, "::1");
	assert_false(cidr_match(&c, (struct sockaddr *)&s6));

	/* Host bits in the network are ignored; odd prefix lengths. */
	assert_int_equal(cidr_parse("192.168.1.77/23", &c), 0);
	sa4(&s4, "192.168.0.1");
	assert_true(cidr_match(&c, (struct sockaddr *)&s4));
	sa4(&s4, "192.168.1.255");
	assert_true(cidr_match(&c, (struct sockaddr *)&s4));
	sa4(&s4, "192.168.2.0");
	assert_false(cidr_match(&c, (struct sockaddr *)&s4));

	assert_int_equal(cidr_parse("0.0.0.0/0", &c), 0);
	sa4(&s4, "203.0.113.9");
	assert_true(cidr_match(&c, (struct sockaddr *)&s4));
	sa6(&s6, "2001:db8::1");
	assert_false(cidr_match(&c, (struct sockaddr *)&s6));

	assert_int_equal(cidr_parse("10.1.2.3", &c), 0);
	assert_int_equal(c.prefixlen, 32);
	sa4(&s4, "10.1.2.3");
	assert_true(cidr_match(&c, (struct sockaddr *)&s4));
	sa4(&s4, "10.1.2.4");
	assert_false(cidr_match(&c, (struct sockaddr *)&s4));

	assert_int_equal(cidr_parse("::1", &c), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.prefixlen, 128);
	sa6(&s6, "::1");
	assert_true(cidr_match(&c, (struct sockaddr *)&s6));
	sa6(&s6, "::2");
	assert_false(cidr_match(&c, (struct sockaddr *)&s6));
	sa4(&s4, "127.0.0.1");
	assert_false(cidr_match(&c, (struct sockaddr *)&s4));

	assert_int_equal(cidr_parse("2001:db8::/33", &c), 0);
	sa6(&s6, "2001:db8:7fff::1");
	assert_true(cidr_match(&c, (struct sockaddr *)&s6));
	sa6(&s6, "2001:db8:8000::1");
	assert_false(cidr_match(&c, (struct sockaddr *)&s6));

	/* An IPv4 peer against a v4-mapped IPv6 network. */
	assert_int_equal(cidr_parse("::ffff:127.0.0.0/104", &c), 0);
	sa4(&s4, "127.0.0.5");
	assert_true(cidr_match(&c, (struct sockaddr *)&s4));
	sa4(&s4, "10.0.0.5");
	assert_false(cidr_match(&c, (struct sockaddr *)&s4));

	memset(&unix_sa, 0, sizeof(unix_sa));
	unix_sa.sa_family = AF_UNIX;
	assert_false(cidr_match(&c, &unix_sa));
	assert_false(cidr_match(&c, NULL));

	assert_int_equal(cidr_parse("", &c), -1);
	assert_int_equal(cidr_parse("1.2.3.4/", &c), -1);
	assert_int_equal(cidr_parse("1.2.3.4/-1", &c), -1);
	assert_int_equal(cidr_parse("1.2.3.4/33", &c), -1);
	assert_int_equal(cidr_parse("1.2.3/8", &c), -1);
	assert_int_equal(cidr_parse("::/129", &c), -1);
	assert_int_equal(cidr_parse("example.test/8", &c), -1);
	assert_int_equal(cidr_parse("1.2.3.4/8/8", &c), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_comments_blanks),
		cmocka_unit_test(test_repeated),
		cmocka_unit_test(test_relay_via),
		cmocka_unit_test(test_tls_keys),
		cmocka_unit_test(test_user),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_long_line_limit),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_config_load),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_cidr),
	};

	return (cmocka_run_group_tests(tests, setup, teardown));
}
