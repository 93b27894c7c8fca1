/*
 * test_dns.c - unit tests of core/dns.c and mx_route_lookup() in
 * core/mx.c against a small DNS server run in a child process on
 * 127.0.0.1 (answers built with ldns): MX records, NXDOMAIN (5.1.2),
 * SERVFAIL (temporary), Null MX (5.1.10), implicit MX, an unanswered
 * query (temporary, within the configured timeout), self-detection by
 * hostname and by one of our own addresses (127.0.0.1 is ours, 127.0.0.2
 * is not), relay-domain via and smarthost routes; and hostile answers:
 * records owned by other names ignored, CNAME chains followed (at most 8
 * links, a loop is temporary), exchanges that are no host name skipped,
 * a host under several preferences routed once, a lookup after a silent
 * one answered, the deadline of a series of lookups, which addresses
 * are ours (IPv4-mapped and unspecified ones included); the DO-bit query
 * TLSA lookups use (core/tlsa.c) asked after a silent one, and
 * tlsa_lookup through the same server (the server sets AD when asked
 * with DO).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <ifaddrs.h>

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ldns/ldns.h>

#include "core/config.h"
#include "core/dns.h"
#include "core/mx.h"
#include "core/tlsa.h"

/* The zone: "name type" -> records, or a forced rcode. */
static const struct {
	const char	*name;
	const char	*type;
	const char	*rr;		/* NULL: empty answer */
	int		 rcode;
} zone[] = {
	{ "mx.test", "MX", "mx.test. 60 IN MX 10 mx1.mx.test.", 0 },
	{ "mx.test", "MX", "mx.test. 60 IN MX 20 backup.test.", 0 },
	{ "mx.test", "MX", "mx.test. 60 IN MX 30 mx3.mx.test.", 0 },
	{ "mx1.mx.test", "A", "mx1.mx.test. 60 IN A 127.0.0.2", 0 },
	{ "mx1.mx.test", "AAAA", "mx1.mx.test. 60 IN AAAA ::2", 0 },
	{ "mx3.mx.test", "A", "mx3.mx.test. 60 IN A 127.0.0.3", 0 },
	{ "sf.test", NULL, NULL, LDNS_RCODE_SERVFAIL },
	{ "refused.test", NULL, NULL, LDNS_RCODE_REFUSED },
	{ "null.test", "MX", "null.test. 60 IN MX 0 .", 0 },
	{ "implicit.test", "A", "implicit.test. 60 IN A 127.0.0.5", 0 },
	{ "self.test", "MX", "self.test. 60 IN MX 10 me.self.test.", 0 },
	{ "self.test", "MX", "self.test. 60 IN MX 20 other.self.test.", 0 },
	{ "me.self.test", "A", "me.self.test. 60 IN A 127.0.0.1", 0 },
	{ "other.self.test", "A", "other.self.test. 60 IN A 127.0.0.9", 0 },
	{ "noaddr.test", "MX", "noaddr.test. 60 IN MX 10 gone.noaddr.test.",
	    0 },
	{ "relay.test", "A", "relay.test. 60 IN A 127.0.0.7", 0 },
	{ "smart.test", "MX", "smart.test. 60 IN MX 5 relay.test.", 0 },
	/* Hostile: records of another name, CNAMEs, loops, odd names. */
	{ "stray.test", "MX", "other.test. 60 IN MX 5 evil.test.", 0 },
	{ "stray.test", "MX", "stray.test. 60 IN MX 20 mx1.mx.test.", 0 },
	{ "alias.test", "MX", "alias.test. 60 IN CNAME real.test.", 0 },
	{ "alias.test", "MX", "real.test. 60 IN CNAME Real2.test.", 0 },
	{ "alias.test", "MX", "real2.test. 60 IN MX 10 mx1.mx.test.", 0 },
	{ "alias.test", "MX", "alias.test. 60 IN MX 1 evil.test.", 0 },
	{ "loop.test", "MX", "loop.test. 60 IN CNAME loop2.test.", 0 },
	{ "loop.test", "MX", "loop2.test. 60 IN CNAME loop.test.", 0 },
	{ "loop.test", "MX", "loop2.test. 60 IN MX 10 mx1.mx.test.", 0 },
	{ "chost.test", "A", "chost.test. 60 IN CNAME mx1.mx.test.", 0 },
	{ "chost.test", "A", "mx1.mx.test. 60 IN A 127.0.0.2", 0 },
	{ "chost.test", "A", "other.test. 60 IN A 127.0.0.66", 0 },
	{ "odd.test", "MX", "odd.test. 60 IN MX 10 a\\032b.odd.test.", 0 },
	{ "odd.test", "MX", "odd.test. 60 IN MX 11 a\\000b.odd.test.", 0 },
	{ "odd.test", "MX", "odd.test. 60 IN MX 12 a\\255b.odd.test.", 0 },
	{ "odd.test", "MX", "odd.test. 60 IN MX 13 a\\.b.odd.test.", 0 },
	{ "odd.test", "MX", "odd.test. 60 IN MX 0 .", 0 },
	{ "odd.test", "MX", "odd.test. 60 IN MX 20 MX1.mx.test.", 0 },
	{ "allodd.test", "MX", "allodd.test. 60 IN MX 10 a\\032b.test.",
	    0 },
	{ "dup.test", "MX", "dup.test. 60 IN MX 10 mx1.mx.test.", 0 },
	{ "dup.test", "MX", "dup.test. 60 IN MX 15 MX1.mx.test.", 0 },
	{ "dup.test", "MX", "dup.test. 60 IN MX 15 mx1.mx.test.", 0 },
	{ "_25._tcp.mx1.mx.test", "TLSA", "_25._tcp.mx1.mx.test. 60 IN TLSA "
	    "3 1 1 0a0b0c0d", 0 },
	{ "_25._tcp.sf.test", NULL, NULL, LDNS_RCODE_SERVFAIL },
};

static pid_t		 server_pid = -1;
static int		 server_port;

static int
known(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof(zone) / sizeof(zone[0]); i++)
		if (strcasecmp(zone[i].name, name) == 0)
			return (1);
	return (0);
}

static void
serve(int fd)
{
	unsigned char		 buf[4096];
	struct sockaddr_storage	 from;
	socklen_t		 fromlen;
	ldns_pkt		*q, *a;
	ldns_rr			*qrr, *rr;
	char			*qname, type[16];
	uint8_t			*wire;
	size_t			 wlen, i, len;
	ssize_t			 n;

	for (;;) {
		fromlen = sizeof(from);
		n = recvfrom(fd, buf, sizeof(buf), 0,
		    (struct sockaddr *)&from, &fromlen);
		if (n <= 0)
			continue;
		if (ldns_wire2pkt(&q, buf, (size_t)n) != LDNS_STATUS_OK)
			continue;
		qrr = ldns_rr_list_rr(ldns_pkt_question(q), 0);
		qname = ldns_rdf2str(ldns_rr_owner(qrr));
		len = strlen(qname);
		if (len > 1 && qname[len - 1] == '.')
			qname[len - 1] = '\0';
		snprintf(type, sizeof(type), "%s",
		    ldns_rr_get_type(qrr) == LDNS_RR_TYPE_MX ? "MX" :
		    ldns_rr_get_type(qrr) == LDNS_RR_TYPE_A ? "A" :
		    ldns_rr_get_type(qrr) == LDNS_RR_TYPE_AAAA ? "AAAA" :
		    ldns_rr_get_type(qrr) == LDNS_RR_TYPE_TLSA ? "TLSA" : "?");
		if (strcmp(qname, "silent.test") == 0) {
			free(qname);
			ldns_pkt_free(q);
			continue;
		}
		a = ldns_pkt_new();
		ldns_pkt_set_id(a, ldns_pkt_id(q));
		ldns_pkt_set_qr(a, 1);
		ldns_pkt_set_rd(a, 1);
		ldns_pkt_set_ra(a, 1);
		/* A validating resolver's answer to a query with DO. */
		ldns_pkt_set_ad(a, ldns_pkt_edns_do(q));
		ldns_pkt_push_rr(a, LDNS_SECTION_QUESTION, ldns_rr_clone(qrr));
		if (!known(qname))
			ldns_pkt_set_rcode(a, LDNS_RCODE_NXDOMAIN);
		for (i = 0; i < sizeof(zone) / sizeof(zone[0]); i++) {
			if (strcasecmp(zone[i].name, qname) != 0)
				continue;
			if (zone[i].rcode) {
				ldns_pkt_set_rcode(a, zone[i].rcode);
				break;
			}
			if (zone[i].rr == NULL || strcmp(zone[i].type, type))
				continue;
			if (ldns_rr_new_frm_str(&rr, zone[i].rr, 0, NULL,
			    NULL) == LDNS_STATUS_OK)
				ldns_pkt_push_rr(a, LDNS_SECTION_ANSWER, rr);
		}
		if (ldns_pkt2wire(&wire, a, &wlen) == LDNS_STATUS_OK) {
			(void)sendto(fd, wire, wlen, 0,
			    (struct sockaddr *)&from, fromlen);
			free(wire);
		}
		free(qname);
		ldns_pkt_free(a);
		ldns_pkt_free(q);
	}
}

static int
setup(void **state)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	int			 fd;

	if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) == -1)
		return (-1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0x7f000001);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		return (-1);
	server_port = ntohs(sin.sin_port);
	if ((server_pid = fork()) == -1)
		return (-1);
	if (server_pid == 0) {
		alarm(60);
		serve(fd);
		_exit(0);
	}
	close(fd);
	return (0);
}

static int
teardown(void **state)
{
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	return (0);
}

static struct hostport	 resolver;
static struct relay_domain relays[2];

static void
make_config(struct config *c)
{
	memset(c, 0, sizeof(*c));
	strlcpy(c->hostname, "backup.test", sizeof(c->hostname));
	memset(&resolver, 0, sizeof(resolver));
	strlcpy(resolver.host, "127.0.0.1", sizeof(resolver.host));
	resolver.port = server_port;
	c->resolvers = &resolver;
	c->nresolvers = 1;
	c->smtp_port = 2525;
	c->dns_timeout = 1;
	c->dns_retry = 1;
	memset(relays, 0, sizeof(relays));
	strlcpy(relays[0].name, "mx.test", sizeof(relays[0].name));
	strlcpy(relays[1].name, "via.test", sizeof(relays[1].name));
	relays[1].has_via = 1;
	strlcpy(relays[1].via.host, "127.0.0.8", sizeof(relays[1].via.host));
	relays[1].via.literal = 1;
	relays[1].via.port = 26;
	c->relays = relays;
	c->nrelays = 2;
}

static struct dns_resolver *
open_resolver(struct config *c)
{
	struct dns_resolver	*dr;
	char			 err[256];

	make_config(c);
	assert_int_equal(dns_resolver_open(c, &dr, err, sizeof(err)), 0);
	return (dr);
}

static void
test_mx_lookup(void **state)
{
	struct config		 c;
	struct dns_resolver	*dr = open_resolver(&c);
	struct mx_record	*mx;
	struct lookup_error	 e;
	size_t			 n;

	assert_int_equal(dns_lookup_mx(dr, "mx.test", &mx, &n, &e), DNS_OK);
	assert_int_equal(n, 3);
	assert_int_equal(mx[0].pref, 10);
	assert_string_equal(mx[0].host, "mx1.mx.test");
	free(mx);

	assert_int_equal(dns_lookup_mx(dr, "nx.test", &mx, &n, &e), DNS_PERM);
	assert_string_equal(e.dsn, "5.1.2");
	assert_int_equal(dns_lookup_mx(dr, "sf.test", &mx, &n, &e), DNS_TEMP);
	assert_string_equal(e.dsn, "4.4.3");
	assert_int_equal(dns_lookup_mx(dr, "refused.test", &mx, &n, &e),
	    DNS_TEMP);
	assert_int_equal(dns_lookup_mx(dr, "null.test", &mx, &n, &e),
	    DNS_PERM);
	assert_string_equal(e.dsn, "5.1.10");
	assert_int_equal(dns_lookup_mx(dr, "implicit.test", &mx, &n, &e),
	    DNS_OK);
	assert_int_equal(n, 0);
	free(mx);
	dns_resolver_close(dr);
}

static void
test_silent_server_times_out(void **state)
{
	struct config		 c;
	struct dns_resolver	*dr = open_resolver(&c);
	struct mx_record	*mx;
	struct lookup_error	 e;
	size_t			 n;
	time_t			 t0 = time(NULL);

	assert_int_equal(dns_lookup_mx(dr, "silent.test", &mx, &n, &e),
	    DNS_TEMP);
	assert_true(time(NULL) - t0 <= 3);
	/* The server stays worth asking (ldns gave up on it for good). */
	assert_int_equal(dns_lookup_mx(dr, "mx.test", &mx, &n, &e), DNS_OK);
	assert_int_equal(n, 3);
	free(mx);
	dns_resolver_close(dr);
}

static void
test_deadline(void **state)
{
	struct config		 c;
	struct dns_resolver	*dr = open_resolver(&c);
	struct sockaddr_storage	*a;
	struct lookup_error	 e;
	size_t			 n, i;
	struct timespec		 t0, t1;
	long			 ms;

	assert_int_equal(dns_query_time(dr), 1000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	dns_set_deadline(dr, 1500);
	for (i = 0; i < 5; i++)
		assert_int_equal(dns_lookup_addrs(dr, "silent.test", 25, &a,
		    &n, &e), DNS_TEMP);
	assert_true(dns_deadline_passed(dr));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 1400 && ms < 2000);
	assert_int_equal(dns_lookup_addrs(dr, "mx1.mx.test", 25, &a, &n, &e),
	    DNS_TEMP);
	assert_non_null(strstr(e.text, "too long"));
	dns_set_deadline(dr, 0);
	assert_int_equal(dns_lookup_addrs(dr, "mx1.mx.test", 25, &a, &n, &e),
	    DNS_OK);
	free(a);
	dns_resolver_close(dr);
}

static void
test_hostile_answers(void **state)
{
	struct config		 c;
	struct dns_resolver	*dr = open_resolver(&c);
	struct mx_record	*mx;
	struct sockaddr_storage	*a;
	struct mx_route		 r;
	struct lookup_error	 e;
	char			 ip[64];
	size_t			 n;

	/* Only the records of the name asked for. */
	assert_int_equal(dns_lookup_mx(dr, "stray.test", &mx, &n, &e), DNS_OK);
	assert_int_equal(n, 1);
	assert_string_equal(mx[0].host, "mx1.mx.test");
	free(mx);
	/* The end of the CNAME chain (case ignored), not its start. */
	assert_int_equal(dns_lookup_mx(dr, "alias.test", &mx, &n, &e), DNS_OK);
	assert_int_equal(n, 1);
	assert_int_equal(mx[0].pref, 10);
	free(mx);
	assert_int_equal(dns_lookup_mx(dr, "loop.test", &mx, &n, &e),
	    DNS_TEMP);
	assert_string_equal(e.dsn, "4.4.3");
	assert_non_null(strstr(e.text, "CNAME"));
	/* A host that is a CNAME: tolerated. */
	assert_int_equal(dns_lookup_addrs(dr, "chost.test", 25, &a, &n, &e),
	    DNS_OK);
	assert_int_equal(n, 1);
	dns_addr_string((struct sockaddr *)&a[0], ip, sizeof(ip));
	assert_string_equal(ip, "127.0.0.2");
	free(a);
	/* Space, NUL, 0xff, a dot in a label: skipped; "." among others. */
	assert_int_equal(dns_lookup_mx(dr, "odd.test", &mx, &n, &e), DNS_OK);
	assert_int_equal(n, 1);
	assert_string_equal(mx[0].host, "mx1.mx.test");
	free(mx);
	assert_int_equal(dns_lookup_mx(dr, "allodd.test", &mx, &n, &e),
	    DNS_TEMP);
	assert_int_equal(mx_route_lookup(dr, &c, "allodd.test", &r, &e),
	    DNS_TEMP);
	assert_int_equal(mx_route_lookup(dr, &c, "loop.test", &r, &e),
	    DNS_TEMP);
	/* One host at 10 and twice at 15: one target, its two addresses. */
	assert_int_equal(mx_route_lookup(dr, &c, "dup.test", &r, &e), DNS_OK);
	assert_int_equal(r.ntargets, 1);
	assert_int_equal(r.targets[0].pref, 10);
	assert_int_equal(r.targets[0].naddrs, 2);
	mx_route_free(&r);
	dns_resolver_close(dr);
}

static int
interface_has(const char *addr)
{
	struct ifaddrs		*ifa, *i;
	struct in_addr		 in;
	int			 found = 0;

	assert_int_equal(inet_pton(AF_INET, addr, &in), 1);
	assert_int_equal(getifaddrs(&ifa), 0);
	for (i = ifa; i != NULL; i = i->ifa_next)
		if (i->ifa_addr != NULL && i->ifa_addr->sa_family == AF_INET &&
		    ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr ==
		    in.s_addr)
			found = 1;
	freeifaddrs(ifa);
	return (found);
}

static int
is_local(struct dns_resolver *dr, const char *addr)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, addr, &sin6->sin6_addr),
		    1);
		sin6->sin6_family = AF_INET6;
	}
	return (dns_is_local_address(dr, (struct sockaddr *)&ss));
}

static void
test_our_addresses(void **state)
{
	struct config		 c;
	struct dns_resolver	*dr = open_resolver(&c);

	/* getifaddrs' addresses, not all of 127/8. */
	assert_true(is_local(dr, "127.0.0.1"));
	assert_int_equal(is_local(dr, "127.0.0.2"), interface_has("127.0.0.2"));
	assert_int_equal(is_local(dr, "127.0.0.9"), interface_has("127.0.0.9"));
	assert_false(is_local(dr, "192.0.2.1"));
	assert_true(is_local(dr, "::ffff:127.0.0.1"));
	assert_int_equal(is_local(dr, "::ffff:127.0.0.2"),
	    interface_has("127.0.0.2"));
	/* A connection to the unspecified address reaches this host. */
	assert_true(is_local(dr, "0.0.0.0"));
	assert_true(is_local(dr, "::"));
	dns_resolver_close(dr);
}

static void
test_addrs(void **state)
{
	struct config		 c;
	struct dns_resolver	*dr = open_resolver(&c);
	struct sockaddr_storage	*a;
	struct lookup_error	 e;
	char			 ip[64];
	size_t			 n;

	assert_int_equal(dns_lookup_addrs(dr, "mx1.mx.test", 25, &a, &n, &e),
	    DNS_OK);
	assert_int_equal(n, 2);
	assert_int_equal(a[0].ss_family, AF_INET);	/* IPv4 first */
	dns_addr_string((struct sockaddr *)&a[0], ip, sizeof(ip));
	assert_string_equal(ip, "127.0.0.2");
	assert_int_equal(ntohs(((struct sockaddr_in *)&a[0])->sin_port), 25);
	assert_int_equal(a[1].ss_family, AF_INET6);
	assert_false(dns_is_local_address(dr, (struct sockaddr *)&a[0]));
	free(a);
	assert_int_equal(dns_lookup_addrs(dr, "me.self.test", 25, &a, &n, &e),
	    DNS_OK);
	assert_true(dns_is_local_address(dr, (struct sockaddr *)&a[0]));
	free(a);
	assert_int_equal(dns_lookup_addrs(dr, "nope.test", 25, &a, &n, &e),
	    DNS_PERM);
	dns_resolver_close(dr);
}

static void
test_routes(void **state)
{
	struct config		 c;
	struct dns_resolver	*dr = open_resolver(&c);
	struct mx_route		 r;
	struct lookup_error	 e;
	char			 ip[64];

	/* Only the MX better than backup.test (20). */
	assert_int_equal(mx_route_lookup(dr, &c, "mx.test", &r, &e), DNS_OK);
	assert_int_equal(r.ntargets, 1);
	assert_string_equal(r.targets[0].host, "mx1.mx.test");
	assert_int_equal(r.targets[0].port, 2525);
	mx_route_free(&r);

	/* We are the best by address: loop, deferred. */
	assert_int_equal(mx_route_lookup(dr, &c, "self.test", &r, &e),
	    DNS_TEMP);
	assert_string_equal(e.dsn, "4.4.6");
	assert_string_equal(e.text, "mail for self.test loops back to myself");

	assert_int_equal(mx_route_lookup(dr, &c, "null.test", &r, &e),
	    DNS_PERM);
	assert_string_equal(e.dsn, "5.1.10");
	assert_int_equal(mx_route_lookup(dr, &c, "nx.test", &r, &e), DNS_PERM);
	assert_string_equal(e.dsn, "5.1.2");
	assert_int_equal(mx_route_lookup(dr, &c, "sf.test", &r, &e), DNS_TEMP);
	assert_int_equal(mx_route_lookup(dr, &c, "noaddr.test", &r, &e),
	    DNS_TEMP);

	/* Implicit MX. */
	assert_int_equal(mx_route_lookup(dr, &c, "implicit.test", &r, &e),
	    DNS_OK);
	assert_int_equal(r.ntargets, 1);
	dns_addr_string((struct sockaddr *)&r.targets[0].addrs[0], ip,
	    sizeof(ip));
	assert_string_equal(ip, "127.0.0.5");
	mx_route_free(&r);

	/* via [127.0.0.8]:26, no lookup at all. */
	assert_int_equal(mx_route_lookup(dr, &c, "VIA.test.", &r, &e), DNS_OK);
	assert_int_equal(r.ntargets, 1);
	assert_int_equal(r.targets[0].port, 26);
	assert_int_equal(ntohs(((struct sockaddr_in *)
	    &r.targets[0].addrs[0])->sin_port), 26);
	mx_route_free(&r);

	/* A smarthost without brackets is MX-looked-up, for non-relay mail. */
	c.has_smarthost = 1;
	strlcpy(c.smarthost.host, "smart.test", sizeof(c.smarthost.host));
	assert_int_equal(mx_route_lookup(dr, &c, "nx.test", &r, &e), DNS_OK);
	assert_int_equal(r.ntargets, 1);
	assert_string_equal(r.targets[0].host, "relay.test");
	mx_route_free(&r);
	/* A smarthost name without mail: ours to fix, never a bounce. */
	strlcpy(c.smarthost.host, "nx.test", sizeof(c.smarthost.host));
	assert_int_equal(mx_route_lookup(dr, &c, "other.test", &r, &e),
	    DNS_TEMP);
	assert_string_equal(e.dsn, "4.4.3");
	strlcpy(c.smarthost.host, "null.test", sizeof(c.smarthost.host));
	assert_int_equal(mx_route_lookup(dr, &c, "other.test", &r, &e),
	    DNS_TEMP);
	assert_string_equal(e.dsn, "4.4.3");
	strlcpy(c.smarthost.host, "smart.test", sizeof(c.smarthost.host));
	/* Relay domains still go to their primaries. */
	assert_int_equal(mx_route_lookup(dr, &c, "mx.test", &r, &e), DNS_OK);
	assert_string_equal(r.targets[0].host, "mx1.mx.test");
	mx_route_free(&r);
	dns_resolver_close(dr);
}

/*
 * The DO-bit query of TLSA lookups goes through the same resolver set-up
 * as every lookup: after a query that timed out (ldns gave up on the
 * server) it is still answered, the reply handed over whatever its
 * rcode; tlsa_lookup finds the record through the same server.
 */
static void
test_secure_query_and_tlsa(void **state)
{
	struct config		 c;
	struct dns_resolver	*dr = open_resolver(&c);
	struct mx_record	*mx;
	struct tlsa_record	*t;
	struct lookup_error	 e;
	ldns_pkt		*pkt;
	ldns_rr_list		*list;
	size_t			 n;
	char			 err[256];

	assert_int_equal(dns_lookup_mx(dr, "silent.test", &mx, &n, &e),
	    DNS_TEMP);
	assert_int_equal(dns_query_secure(dr, "_25._tcp.mx1.mx.test.",
	    LDNS_RR_TYPE_TLSA, &pkt, &e), DNS_OK);
	assert_int_equal(ldns_pkt_get_rcode(pkt), LDNS_RCODE_NOERROR);
	assert_true(ldns_pkt_ad(pkt));
	list = ldns_pkt_rr_list_by_type(pkt, LDNS_RR_TYPE_TLSA,
	    LDNS_SECTION_ANSWER);
	assert_non_null(list);
	assert_int_equal(ldns_rr_list_rr_count(list), 1);
	ldns_rr_list_deep_free(list);
	ldns_pkt_free(pkt);
	assert_int_equal(dns_query_secure(dr, "_25._tcp.nx.test.",
	    LDNS_RR_TYPE_TLSA, &pkt, &e), DNS_OK);
	assert_int_equal(ldns_pkt_get_rcode(pkt), LDNS_RCODE_NXDOMAIN);
	ldns_pkt_free(pkt);
	assert_int_equal(dns_query_secure(dr, "silent.test",
	    LDNS_RR_TYPE_TLSA, &pkt, &e), DNS_TEMP);
	assert_null(pkt);
	assert_non_null(strstr(e.text, "DNS lookup of silent.test "
	    "type=TLSA: "));
	dns_resolver_close(dr);

	assert_int_equal(tlsa_lookup(&c, "mx1.mx.test", 25, &t, &n, err,
	    sizeof(err)), TLSA_FOUND);
	assert_int_equal(n, 1);
	assert_int_equal(t[0].usage, 3);
	assert_int_equal(t[0].len, 4);
	assert_memory_equal(t[0].data, "\x0a\x0b\x0c\x0d", 4);
	tlsa_free(t, n);
	assert_int_equal(tlsa_lookup(&c, "nx.test", 25, &t, &n, err,
	    sizeof(err)), TLSA_NONE);
	assert_non_null(strstr(err, "validated denial"));
	assert_int_equal(tlsa_lookup(&c, "sf.test", 25, &t, &n, err,
	    sizeof(err)), TLSA_TEMP);
	assert_non_null(strstr(err, "type=TLSA: rcode 2"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mx_lookup),
		cmocka_unit_test(test_silent_server_times_out),
		cmocka_unit_test(test_addrs),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_hostile_answers),
		cmocka_unit_test(test_our_addresses),
		cmocka_unit_test(test_secure_query_and_tlsa),
	};

	return (cmocka_run_group_tests(tests, setup, teardown));
}
