/*
 * test_mx.c - unit tests of mx_select() in core/mx.c, the RFC 5321
 * section 5.1 choice a backup MX makes: sort by preference, random order
 * among equal preferences, find ourselves by name (case and trailing dot
 * ignored) or by the self flag (an address of ours), keep only strictly
 * better hosts, and report the loop when we are the best; and of
 * mx_route_build() over a table of lookup results (no network): each
 * host once at its best preference, each address once, the lookup and
 * address caps, a lookup cut before we found ourselves, hosts that fail
 * while others work, address-named hosts, the implicit MX.
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

#include <cmocka.h>

#include "core/dns.h"
#include "core/mx.h"

static void
fill(struct mx_record *mx, unsigned pref, const char *host, int self)
{
	memset(mx, 0, sizeof(*mx));
	mx->pref = pref;
	strlcpy(mx->host, host, sizeof(mx->host));
	mx->self = self;
}

static void
test_sorted_and_cut_at_ourselves(void **state)
{
	struct mx_record	 mx[4];
	int			 looped;

	fill(&mx[0], 30, "mx3.example.test", 0);
	fill(&mx[1], 20, "BACKUP.example.test.", 0);
	fill(&mx[2], 10, "mx1.example.test", 0);
	fill(&mx[3], 15, "mx2.example.test", 0);
	assert_int_equal(mx_select(mx, 4, "backup.example.test", &looped), 2);
	assert_false(looped);
	assert_string_equal(mx[0].host, "mx1.example.test");
	assert_string_equal(mx[1].host, "mx2.example.test");
}

static void
test_not_listed_keeps_all(void **state)
{
	struct mx_record	 mx[3];
	int			 looped;

	fill(&mx[0], 20, "b.test", 0);
	fill(&mx[1], 10, "a.test", 0);
	fill(&mx[2], 30, "c.test", 0);
	assert_int_equal(mx_select(mx, 3, "backup.test", &looped), 3);
	assert_false(looped);
	assert_string_equal(mx[0].host, "a.test");
	assert_string_equal(mx[2].host, "c.test");
	/* No name at all (via/smarthost lookups). */
	assert_int_equal(mx_select(mx, 3, NULL, &looped), 3);
}

static void
test_self_by_address(void **state)
{
	struct mx_record	 mx[3];
	int			 looped;

	fill(&mx[0], 10, "primary.test", 0);
	fill(&mx[1], 20, "other-name-for-us.test", 1);
	fill(&mx[2], 20, "peer-backup.test", 0);
	/* Equal to our preference: not strictly better, dropped. */
	assert_int_equal(mx_select(mx, 3, "backup.test", &looped), 1);
	assert_string_equal(mx[0].host, "primary.test");
}

static void
test_loop_when_best(void **state)
{
	struct mx_record	 mx[3];
	int			 looped;

	fill(&mx[0], 10, "backup.test", 0);
	fill(&mx[1], 20, "mx2.test", 0);
	fill(&mx[2], 10, "mx1.test", 0);
	assert_int_equal(mx_select(mx, 3, "backup.test", &looped), 0);
	assert_true(looped);

	fill(&mx[0], 5, "x.test", 1);
	assert_int_equal(mx_select(mx, 1, "backup.test", &looped), 0);
	assert_true(looped);

	/* Listed twice: the best entry counts. */
	fill(&mx[0], 30, "backup.test", 0);
	fill(&mx[1], 20, "mx.test", 0);
	fill(&mx[2], 10, "backup.test", 0);
	assert_int_equal(mx_select(mx, 3, "backup.test", &looped), 0);
	assert_true(looped);
}

static void
test_equal_preferences_shuffled(void **state)
{
	struct mx_record	 mx[3];
	int			 looped, i, afirst = 0, bfirst = 0;

	for (i = 0; i < 200; i++) {
		fill(&mx[0], 10, "a.test", 0);
		fill(&mx[1], 10, "b.test", 0);
		fill(&mx[2], 5, "best.test", 0);
		assert_int_equal(mx_select(mx, 3, "backup.test", &looped), 3);
		assert_string_equal(mx[0].host, "best.test");
		if (strcmp(mx[1].host, "a.test") == 0)
			afirst++;
		else
			bfirst++;
	}
	/* Each order at least 30 times in 200 (p of failing ~ 1e-20). */
	assert_true(afirst > 30);
	assert_true(bfirst > 30);
}

static void
test_empty(void **state)
{
	int	 looped = 7;

	assert_int_equal(mx_select(NULL, 0, "backup.test", &looped), 0);
	assert_false(looped);
}

/* A host's answer in the fake DNS; unknown names are NXDOMAIN. */
struct fake_host {
	const char		*name;
	enum dns_status		 st;
	const char		*addrs[4];
	int			 stop;		/* the route's time is up */
};

static const struct fake_host	*fake;
static size_t			 nfake;
static int			 nlookups;

static int
fake_lookup(void *arg, const char *host, int port,
    struct sockaddr_storage **addrs, size_t *n, enum dns_status *st,
    struct lookup_error *e)
{
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	size_t			 i, j;

	*addrs = NULL;
	*n = 0;
	nlookups++;
	for (i = 0; i < nfake; i++)
		if (strcmp(fake[i].name, host) == 0)
			break;
	if (i == nfake) {
		*st = DNS_PERM;
		strlcpy(e->dsn, "5.1.2", sizeof(e->dsn));
		snprintf(e->text, sizeof(e->text), "%s: not found", host);
		return (0);
	}
	if (fake[i].stop) {
		strlcpy(e->dsn, "4.4.3", sizeof(e->dsn));
		strlcpy(e->text, "time is up", sizeof(e->text));
		return (-1);
	}
	*st = fake[i].st;
	if (*st != DNS_OK) {
		strlcpy(e->dsn, "4.4.3", sizeof(e->dsn));
		snprintf(e->text, sizeof(e->text), "%s: SERVFAIL", host);
		return (0);
	}
	*addrs = calloc(4, sizeof(**addrs));
	for (j = 0; j < 4 && fake[i].addrs[j] != NULL; j++) {
		sin = (struct sockaddr_in *)&(*addrs)[*n];
		sin6 = (struct sockaddr_in6 *)&(*addrs)[*n];
		if (inet_pton(AF_INET, fake[i].addrs[j], &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			sin->sin_port = htons(port);
		} else {
			assert_int_equal(inet_pton(AF_INET6, fake[i].addrs[j],
			    &sin6->sin6_addr), 1);
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons(port);
		}
		(*n)++;
	}
	return (0);
}

/* Only 127.0.0.1 is ours here. */
static int
fake_is_local(void *arg, const struct sockaddr *sa)
{
	const struct sockaddr_in	*sin = (const struct sockaddr_in *)sa;

	return (sa->sa_family == AF_INET &&
	    sin->sin_addr.s_addr == htonl(0x7f000001));
}

static const struct mx_lookup_ops fake_ops = { fake_lookup, fake_is_local,
    NULL };

static enum dns_status
build(struct mx_record *mx, size_t n, const struct fake_host *hosts,
    size_t nhosts, struct mx_route *r, struct lookup_error *e)
{
	fake = hosts;
	nfake = nhosts;
	nlookups = 0;
	memset(r, 0, sizeof(*r));
	memset(e, 0, sizeof(*e));
	return (mx_route_build(mx, n, "d.test", "backup.test", 25, &fake_ops,
	    r, e));
}

static size_t
route_addresses(const struct mx_route *r)
{
	size_t	 i, n = 0;

	for (i = 0; i < r->ntargets; i++)
		n += r->targets[i].naddrs;
	return (n);
}

static void
test_route_same_host_twice(void **state)
{
	static const struct fake_host	 h[] = {
		{ "mx1.test", DNS_OK, { "127.0.0.2", "::2" }, 0 },
	};
	struct mx_record	 mx[5];
	struct mx_route		 r;
	struct lookup_error	 e;

	/* The crash: mx1 at 10 and 15; variants of its name too. */
	fill(&mx[0], 15, "mx1.test", 0);
	fill(&mx[1], 10, "mx1.test", 0);
	fill(&mx[2], 12, "MX1.Test.", 0);
	fill(&mx[3], 20, "backup.test", 0);
	fill(&mx[4], 30, "BACKUP.TEST.", 0);
	assert_int_equal(build(mx, 5, h, 1, &r, &e), DNS_OK);
	assert_int_equal(nlookups, 1);
	assert_int_equal(r.ntargets, 1);
	assert_string_equal(r.targets[0].host, "mx1.test");
	assert_int_equal(r.targets[0].pref, 10);
	assert_int_equal(r.targets[0].naddrs, 2);
	mx_route_free(&r);
}

static void
test_route_same_address_once(void **state)
{
	static const struct fake_host	 h[] = {
		{ "a.test", DNS_OK, { "127.0.0.2" }, 0 },
		{ "b.test", DNS_OK, { "127.0.0.2", "127.0.0.2" }, 0 },
		{ "c.test", DNS_OK, { "127.0.0.2", "127.0.0.3", "127.0.0.3" },
		    0 },
	};
	struct mx_record	 mx[4];
	struct mx_route		 r;
	struct lookup_error	 e;

	fill(&mx[0], 10, "a.test", 0);
	fill(&mx[1], 11, "b.test", 0);
	fill(&mx[2], 12, "c.test", 0);
	fill(&mx[3], 20, "backup.test", 0);
	assert_int_equal(build(mx, 4, h, 3, &r, &e), DNS_OK);
	assert_int_equal(r.ntargets, 2);	/* b.test has nothing new */
	assert_string_equal(r.targets[0].host, "a.test");
	assert_string_equal(r.targets[1].host, "c.test");
	assert_int_equal(r.targets[1].naddrs, 1);
	mx_route_free(&r);
}

static void
test_route_address_limit(void **state)
{
	static const struct fake_host	 h[] = {
		{ "a.test", DNS_OK, { "10.0.0.1", "10.0.0.2", "10.0.0.3",
		    "10.0.0.4" }, 0 },
		{ "b.test", DNS_OK, { "10.0.1.1", "10.0.1.2", "10.0.1.3",
		    "10.0.1.4" }, 0 },
		{ "c.test", DNS_OK, { "10.0.2.1", "10.0.2.2", "10.0.2.3",
		    "10.0.2.4" }, 0 },
		{ "d.test", DNS_OK, { "10.0.3.1" }, 0 },
	};
	struct mx_record	 mx[4];
	struct mx_route		 r;
	struct lookup_error	 e;

	fill(&mx[0], 10, "a.test", 0);
	fill(&mx[1], 11, "b.test", 0);
	fill(&mx[2], 12, "c.test", 0);
	fill(&mx[3], 13, "d.test", 0);
	assert_int_equal(build(mx, 4, h, 4, &r, &e), DNS_OK);
	assert_int_equal(route_addresses(&r), MX_ADDRESS_LIMIT);
	assert_int_equal(r.ntargets, 3);
	assert_int_equal(r.targets[2].naddrs, 2);
	mx_route_free(&r);
}

static void
test_route_lookup_limit(void **state)
{
	static const struct fake_host	 h[] = {
		{ "h24.test", DNS_OK, { "127.0.0.2" }, 0 },
		{ "h05.test", DNS_OK, { "127.0.0.3" }, 0 },
	};
	struct mx_record	 mx[31];
	struct mx_route		 r;
	struct lookup_error	 e;
	char			 name[32];
	size_t			 i;

	/* 30 hosts at 1..30, ourselves at 100: 20 looked up. */
	for (i = 0; i < 30; i++) {
		snprintf(name, sizeof(name), "h%02zu.test", i);
		fill(&mx[i], (unsigned)i + 1, name, 0);
	}
	fill(&mx[30], 100, "backup.test", 0);
	assert_int_equal(build(mx, 31, h, 2, &r, &e), DNS_OK);
	assert_int_equal(nlookups, MX_LOOKUP_LIMIT);
	assert_int_equal(r.ntargets, 1);
	assert_string_equal(r.targets[0].host, "h05.test");
	mx_route_free(&r);

	/* Only h24 (beyond the cut) works: we could be h20 at 21. */
	for (i = 0; i < 30; i++) {
		snprintf(name, sizeof(name), "h%02zu.test", i);
		fill(&mx[i], (unsigned)i + 1, name, 0);
	}
	fill(&mx[30], 100, "backup.test", 0);
	assert_int_equal(build(mx, 31, &h[0], 1, &r, &e), DNS_TEMP);
	assert_int_equal(r.ntargets, 0);
	assert_string_equal(e.dsn, "4.4.3");
	assert_non_null(strstr(e.text, "limited to 20"));
	assert_non_null(strstr(e.text, "better than preference 21"));
}

static void
test_route_cut_by_time(void **state)
{
	static const struct fake_host	 h[] = {
		{ "a.test", DNS_OK, { "127.0.0.2" }, 0 },
		{ "slow.test", DNS_OK, { "127.0.0.3" }, 1 },
		{ "c.test", DNS_OK, { "127.0.0.4" }, 0 },
	};
	struct mx_record	 mx[4];
	struct mx_route		 r;
	struct lookup_error	 e;

	fill(&mx[0], 10, "a.test", 0);
	fill(&mx[1], 20, "slow.test", 0);
	fill(&mx[2], 30, "c.test", 0);
	fill(&mx[3], 40, "backup.test", 0);
	assert_int_equal(build(mx, 4, h, 3, &r, &e), DNS_OK);
	assert_int_equal(r.ntargets, 1);	/* never c.test */
	assert_string_equal(r.targets[0].host, "a.test");
	mx_route_free(&r);

	/* The time is up before the best host: nothing, deferred. */
	fill(&mx[0], 5, "slow.test", 0);
	fill(&mx[1], 10, "a.test", 0);
	assert_int_equal(build(mx, 2, h, 3, &r, &e), DNS_TEMP);
	assert_non_null(strstr(e.text, "time is up"));
}

static void
test_route_self_by_address(void **state)
{
	static const struct fake_host	 h[] = {
		{ "mx0.test", DNS_OK, { "127.0.0.3" }, 0 },
		{ "alias.test", DNS_OK, { "127.0.0.9", "127.0.0.1" }, 0 },
		{ "mx2.test", DNS_OK, { "127.0.0.2" }, 0 },
	};
	struct mx_record	 mx[4];
	struct mx_route		 r;
	struct lookup_error	 e;

	fill(&mx[0], 15, "mx2.test", 0);
	fill(&mx[1], 10, "alias.test", 0);
	fill(&mx[2], 5, "mx0.test", 0);
	fill(&mx[3], 20, "backup.test", 0);
	assert_int_equal(build(mx, 4, h, 3, &r, &e), DNS_OK);
	assert_int_equal(r.ntargets, 1);
	assert_string_equal(r.targets[0].host, "mx0.test");
	assert_int_equal(nlookups, 2);		/* mx2 not needed */
	mx_route_free(&r);

	/* We are the best: the loop. */
	fill(&mx[0], 15, "mx2.test", 0);
	fill(&mx[1], 10, "alias.test", 0);
	assert_int_equal(build(mx, 2, h, 3, &r, &e), DNS_TEMP);
	assert_string_equal(e.dsn, "4.4.6");
	assert_string_equal(e.text, "mail for d.test loops back to myself");

	/* An exchange that is an address: ours too, without a lookup. */
	fill(&mx[0], 10, "127.0.0.1", 0);
	fill(&mx[1], 15, "mx2.test", 0);
	assert_int_equal(build(mx, 2, h, 3, &r, &e), DNS_TEMP);
	assert_string_equal(e.dsn, "4.4.6");
	assert_int_equal(nlookups, 0);
	fill(&mx[0], 10, "127.0.0.2", 0);
	assert_int_equal(build(mx, 1, h, 3, &r, &e), DNS_OK);
	assert_int_equal(r.ntargets, 1);
	assert_int_equal(nlookups, 0);
	mx_route_free(&r);
}

static void
test_route_failures_and_others(void **state)
{
	static const struct fake_host	 h[] = {
		{ "sf.test", DNS_TEMP, { NULL }, 0 },
		{ "noaddr.test", DNS_OK, { NULL }, 0 },
		{ "mx2.test", DNS_OK, { "127.0.0.2" }, 0 },
	};
	struct mx_record	 mx[5];
	struct mx_route		 r;
	struct lookup_error	 e;

	fill(&mx[0], 10, "sf.test", 0);
	fill(&mx[1], 11, "noaddr.test", 0);
	fill(&mx[2], 12, "gone.test", 0);
	fill(&mx[3], 15, "mx2.test", 0);
	fill(&mx[4], 20, "backup.test", 0);
	assert_int_equal(build(mx, 5, h, 3, &r, &e), DNS_OK);
	assert_int_equal(r.ntargets, 1);
	assert_string_equal(r.targets[0].host, "mx2.test");
	mx_route_free(&r);

	/* None works: temporary, never a bounce; the last reason. */
	fill(&mx[0], 10, "sf.test", 0);
	fill(&mx[1], 11, "noaddr.test", 0);
	fill(&mx[2], 20, "backup.test", 0);
	assert_int_equal(build(mx, 3, h, 3, &r, &e), DNS_TEMP);
	assert_string_equal(e.dsn, "4.4.3");
	assert_non_null(strstr(e.text, "noaddr.test"));
	fill(&mx[0], 11, "noaddr.test", 0);
	assert_int_equal(build(mx, 1, h, 3, &r, &e), DNS_TEMP);
	assert_string_equal(e.text, "no address for any MX host of d.test");
}

static void
test_route_implicit_and_no_self_detection(void **state)
{
	static const struct fake_host	 h[] = {
		{ "d.test", DNS_OK, { "127.0.0.5", "127.0.0.5" }, 0 },
		{ "mx.test", DNS_OK, { "127.0.0.1" }, 0 },
	};
	static const struct fake_host	 ours[] = {
		{ "d.test", DNS_OK, { "127.0.0.1" }, 0 },
	};
	static const struct fake_host	 none[] = {
		{ "d.test", DNS_OK, { NULL }, 0 },
	};
	struct mx_record	 mx[1];
	struct mx_route		 r;
	struct lookup_error	 e;

	assert_int_equal(build(NULL, 0, h, 2, &r, &e), DNS_OK);
	assert_int_equal(r.ntargets, 1);
	assert_int_equal(r.targets[0].naddrs, 1);
	mx_route_free(&r);
	assert_int_equal(build(NULL, 0, ours, 1, &r, &e), DNS_TEMP);
	assert_string_equal(e.dsn, "4.4.6");
	assert_int_equal(build(NULL, 0, none, 1, &r, &e), DNS_PERM);
	assert_string_equal(e.dsn, "5.1.2");
	assert_int_equal(build(NULL, 0, none, 0, &r, &e), DNS_PERM);

	/* A via/smarthost MX set: no self-detection at all. */
	fill(&mx[0], 10, "mx.test", 0);
	fake = h;
	nfake = 2;
	memset(&r, 0, sizeof(r));
	assert_int_equal(mx_route_build(mx, 1, "relay.test", NULL, 25,
	    &fake_ops, &r, &e), DNS_OK);
	assert_int_equal(r.ntargets, 1);
	mx_route_free(&r);
}

static void
test_sort_dedup(void **state)
{
	struct mx_record	 mx[4];

	fill(&mx[0], 30, "A.test.", 0);
	fill(&mx[1], 20, "b.test", 0);
	fill(&mx[2], 10, "a.TEST", 0);
	fill(&mx[3], 40, "b.test.", 1);
	assert_int_equal(mx_sort(mx, 4), 2);
	assert_string_equal(mx[0].host, "a.test");
	assert_int_equal(mx[0].pref, 10);
	assert_string_equal(mx[1].host, "b.test");
	assert_int_equal(mx[1].pref, 20);
	assert_true(mx[1].self);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sorted_and_cut_at_ourselves),
		cmocka_unit_test(test_not_listed_keeps_all),
		cmocka_unit_test(test_self_by_address),
		cmocka_unit_test(test_loop_when_best),
		cmocka_unit_test(test_equal_preferences_shuffled),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_sort_dedup),
		cmocka_unit_test(test_route_same_host_twice),
		cmocka_unit_test(test_route_same_address_once),
		cmocka_unit_test(test_route_address_limit),
		cmocka_unit_test(test_route_lookup_limit),
		cmocka_unit_test(test_route_cut_by_time),
		cmocka_unit_test(test_route_self_by_address),
		cmocka_unit_test(test_route_failures_and_others),
		cmocka_unit_test(test_route_implicit_and_no_self_detection),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
