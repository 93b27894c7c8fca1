/*
 * fuzz_route_mx.c - libFuzzer target for the MX choice after the
 * lookups: mx_route_build() over arbitrary answer sets, with no
 * network.  The input is read as a stream: a header byte (self-detection
 * by name or not; the implicit MX), a record count (up to 600), then per
 * record a preference, a self flag and a name (one of a small pool full
 * of variants of one another, or raw bytes: spaces, NUL, bytes above
 * 0x7f, 255 octets); each host lookup the route makes then reads its
 * outcome (addresses from a pool with duplicates, ours among them;
 * SERVFAIL; NXDOMAIN; "time is up") from the rest.  Checks the route's
 * guarantees: a target has addresses, the route at most
 * MX_ADDRESS_LIMIT of them, none twice, none of ours; at most
 * MX_LOOKUP_LIMIT lookups; no target as good as or worse than any entry
 * of ours (by name, flag or address); a permanent failure only without
 * MX records; NUL-terminated error texts.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/dns.h"
#include "core/mx.h"
#include "core/util.h"

#define MAX_RECORDS	600
#define OURNAME		"backup.test"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct reader {
	const uint8_t	*p, *end;
};

static const char *names[] = {
	"mx1.test", "MX1.Test.", "mx1.test.", "mx2.test", "backup.test",
	"BACKUP.TEST.", "127.0.0.1", "127.0.0.2", "::1", "ipv6:::1",
	"0.0.0.0", "", ".", "a b.test", "d.test", "ipv6:::ffff:127.0.0.1",
};

static const char *pool[] = {
	"127.0.0.1", "127.0.0.2", "127.0.0.3", "10.0.0.1", "10.0.0.2",
	"::1", "::2", "::ffff:127.0.0.1", "0.0.0.0", "::", "192.0.2.1",
	"2001:db8::1", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6",
};

/* Names whose lookup returned one of our addresses. */
static char	 local_hosts[MX_LOOKUP_LIMIT + 2][DOMAIN_NAME_SIZE];
static size_t	 nlocal_hosts;
static size_t	 nlookups;

static uint8_t
u8(struct reader *r)
{
	return (r->p < r->end ? *r->p++ : 0);
}

static int
ours(const struct sockaddr *sa)
{
	const struct sockaddr_in	*sin = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6	*sin6 = (const struct sockaddr_in6 *)sa;
	static const uint8_t		 mapped[16] = { 0, 0, 0, 0, 0, 0, 0, 0,
					    0, 0, 0xff, 0xff, 127, 0, 0, 1 };

	if (sa->sa_family == AF_INET)
		return (sin->sin_addr.s_addr == htonl(0x7f000001) ||
		    sin->sin_addr.s_addr == 0);
	if (sa->sa_family == AF_INET6)
		return (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
		    IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr) ||
		    memcmp(&sin6->sin6_addr, mapped, 16) == 0);
	return (0);
}

static int
is_local(void *arg, const struct sockaddr *sa)
{
	return (ours(sa));
}

static int
lookup(void *arg, const char *host, int port, struct sockaddr_storage **addrs,
    size_t *n, enum dns_status *st, struct lookup_error *e)
{
	struct reader		*r = arg;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	uint8_t			 b = u8(r), count, i;
	int			 local = 0;

	*addrs = NULL;
	*n = 0;
	nlookups++;
	switch (b & 3) {
	case 1:
		*st = DNS_PERM;
		snprintf(e->text, sizeof(e->text), "%s: not found", host);
		return (0);
	case 2:
		*st = DNS_TEMP;
		snprintf(e->text, sizeof(e->text), "%s: SERVFAIL", host);
		return (0);
	case 3:
		if (b & 4) {
			strlcpy(e->text, "time is up", sizeof(e->text));
			return (-1);
		}
		break;
	}
	*st = DNS_OK;
	count = (b >> 3) & 7;
	if (count == 0)
		return (0);
	*addrs = xcalloc(count, sizeof(**addrs));
	for (i = 0; i < count; i++) {
		const char	*a = pool[u8(r) % (sizeof(pool) /
				    sizeof(pool[0]))];

		sin = (struct sockaddr_in *)&(*addrs)[*n];
		sin6 = (struct sockaddr_in6 *)&(*addrs)[*n];
		if (inet_pton(AF_INET, a, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			sin->sin_port = htons(port);
		} else if (inet_pton(AF_INET6, a, &sin6->sin6_addr) == 1) {
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons(port);
		} else
			abort();
		local |= ours((struct sockaddr *)&(*addrs)[*n]);
		(*n)++;
	}
	if (local && nlocal_hosts < sizeof(local_hosts) /
	    sizeof(local_hosts[0]))
		strlcpy(local_hosts[nlocal_hosts++], host,
		    sizeof(local_hosts[0]));
	return (0);
}

/* Is the name ourname, as mx_route_build compares names? */
static int
named_us(const char *host)
{
	size_t	 len = strlen(host);

	if (len > 0 && host[len - 1] == '.')
		len--;
	return (len == strlen(OURNAME) && strncasecmp(host, OURNAME,
	    len) == 0);
}

static int
same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return (0);
	if (a->ss_family == AF_INET)
		return (memcmp(&((const struct sockaddr_in *)a)->sin_addr,
		    &((const struct sockaddr_in *)b)->sin_addr, 4) == 0);
	return (memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
	    &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reader		 r = { data, data + size };
	struct mx_record	*mx, *copy;
	struct mx_route		 route;
	struct lookup_error	 e;
	struct mx_lookup_ops	 ops = { lookup, is_local, &r };
	const char		*ourname;
	size_t			 n, m, i, j, k, l, total = 0, len;
	long long		 minself = -1;
	uint8_t			 hdr, kind;
	enum dns_status		 st;

	hdr = u8(&r);
	ourname = (hdr & 1) ? NULL : OURNAME;
	n = (hdr & 2) ? 0 : ((size_t)u8(&r) | (size_t)u8(&r) << 8) %
	    (MAX_RECORDS + 1);
	mx = xcalloc(n ? n : 1, sizeof(*mx));
	for (i = 0; i < n; i++) {
		mx[i].pref = (unsigned)u8(&r) << 8;
		mx[i].pref |= u8(&r);
		kind = u8(&r);
		mx[i].self = (kind & 0x80) != 0;
		if (kind & 0x40) {
			len = u8(&r);
			for (j = 0; j < len && j < sizeof(mx[i].host) - 1; j++)
				mx[i].host[j] = (char)u8(&r);
		} else
			strlcpy(mx[i].host, names[kind % (sizeof(names) /
			    sizeof(names[0]))], sizeof(mx[i].host));
	}
	/* Where we are, as far as the records themselves say. */
	copy = xcalloc(n ? n : 1, sizeof(*copy));
	memcpy(copy, mx, n * sizeof(*mx));
	m = mx_sort(copy, n);
	for (i = 0; i < m; i++)
		if (copy[i].self || (ourname != NULL &&
		    named_us(copy[i].host))) {
			minself = copy[i].pref;
			break;
		}

	nlocal_hosts = 0;
	nlookups = 0;
	memset(&route, 0, sizeof(route));
	memset(&e, 0, sizeof(e));
	st = mx_route_build(mx, n, "d.test", ourname, 25, &ops, &route, &e);

	if (strnlen(e.text, sizeof(e.text)) >= sizeof(e.text) ||
	    strnlen(e.dsn, sizeof(e.dsn)) >= sizeof(e.dsn))
		abort();
	if (nlookups > MX_LOOKUP_LIMIT + (n == 0))
		abort();
	if (n > 0 && st == DNS_PERM)
		abort();
	if ((st == DNS_OK) != (route.ntargets > 0))
		abort();
	/* Our entries found by address count too. */
	for (k = 0; k < nlocal_hosts && ourname != NULL; k++)
		for (i = 0; i < m; i++)
			if (strcmp(copy[i].host, local_hosts[k]) == 0 &&
			    (minself < 0 || copy[i].pref < minself))
				minself = copy[i].pref;
	for (i = 0; i < route.ntargets; i++) {
		if (route.targets[i].naddrs == 0 ||
		    strnlen(route.targets[i].host,
		    sizeof(route.targets[i].host)) >=
		    sizeof(route.targets[i].host))
			abort();
		if (i > 0 && route.targets[i].pref < route.targets[i - 1].pref)
			abort();
		if (ourname != NULL && n > 0 && minself >= 0 &&
		    route.targets[i].pref >= minself)
			abort();
		for (j = 0; j < route.targets[i].naddrs; j++) {
			total++;
			if (ourname != NULL && ours((struct sockaddr *)
			    &route.targets[i].addrs[j]))
				abort();
			for (k = 0; k <= i; k++)
				for (l = 0; l < route.targets[k].naddrs; l++)
					if ((k != i || l != j) &&
					    same(&route.targets[k].addrs[l],
					    &route.targets[i].addrs[j]))
						abort();
		}
	}
	if (total > MX_ADDRESS_LIMIT)
		abort();
	mx_route_free(&route);
	free(copy);
	free(mx);
	return (0);
}
