/*
 * mx.c - choosing where mail for a domain goes.
 *
 * RFC 5321 section 5.1: MX hosts sorted by preference, random order among
 * equal preferences; a backup MX delivers only to hosts strictly better
 * than its own best entry, and defers ("loops back to myself") when it
 * is the best.  We are an MX host when the record names our hostname or
 * when one of the host's addresses is exactly one of this machine's
 * interface addresses (not a whole network: primaries on 127.0.0.2 are
 * not us).  `via` and `smarthost` replace the domain's MX lookup; a
 * bracketed [host] or [address] skips the MX lookup of that host too,
 * as in Postfix.
 *
 * The answers may be hostile (the route of a DSN is the sender's
 * domain): a host listed under several preferences counts once, at its
 * best; an address under several names is tried once; at most
 * MX_LOOKUP_LIMIT hosts are looked up, within MX_ROUTE_QUERIES query
 * times, and when that stops the lookups before we found ourselves,
 * only hosts strictly better than the first one left out may get mail
 * (we could be that one).  The choice after the lookups is
 * mx_route_build, a function of the answers alone (no network), which
 * the unit tests and tests/fuzz/fuzz_route_mx.c drive directly.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "core/config.h"
#include "core/dns.h"
#include "core/mail/address.h"
#include "core/mx.h"
#include "core/util.h"

/* A record with the random key that orders equal preferences. */
struct keyed_record {
	struct mx_record	 rec;
	uint32_t		 key;
};

/* What the lookup of one MX host found. */
struct host_lookup {
	enum dns_status		 st;
	struct sockaddr_storage	*addrs;
	size_t			 naddrs;
	struct lookup_error	 e;
};

static int	 by_name(const void *, const void *);
static int	 by_preference(const void *, const void *);
static int	 literal_address(const char *, int, struct sockaddr_storage *);
static int	 same_address(const struct sockaddr_storage *,
		    const struct sockaddr_storage *);
static enum dns_status looped(struct lookup_error *, const char *);
static void	 add_target_addrs(struct mx_route *, const char *, unsigned,
		    int, const struct sockaddr_storage *, size_t);
static enum dns_status implicit_mx(const char *, const char *, int,
		    const struct mx_lookup_ops *, struct mx_route *,
		    struct lookup_error *);
static enum dns_status add_target(struct dns_resolver *, struct mx_route *,
		    const char *, unsigned, int, struct lookup_error *);
static int	 dns_host_lookup(void *, const char *, int,
		    struct sockaddr_storage **, size_t *, enum dns_status *,
		    struct lookup_error *);
static int	 dns_host_is_local(void *, const struct sockaddr *);
static enum dns_status route_host(struct dns_resolver *, const char *,
		    const struct hostport *, int, struct mx_route *,
		    struct lookup_error *);
static enum dns_status route_mx(struct dns_resolver *, const struct config *,
		    const char *, struct mx_route *, struct lookup_error *);

static enum dns_status
looped(struct lookup_error *e, const char *domain)
{
	lookup_error_set(e, "4.4.6", "mail for %s loops back to myself",
	    domain);
	return (DNS_TEMP);
}

/* Host, then preference: the first of each host is its best record. */
static int
by_name(const void *a, const void *b)
{
	const struct keyed_record	*x = a, *y = b;
	int				 c;

	if ((c = strcmp(x->rec.host, y->rec.host)) != 0)
		return (c);
	return (x->rec.pref < y->rec.pref ? -1 : x->rec.pref > y->rec.pref);
}

/* Preference, then the random key. */
static int
by_preference(const void *a, const void *b)
{
	const struct keyed_record	*x = a, *y = b;

	if (x->rec.pref != y->rec.pref)
		return (x->rec.pref < y->rec.pref ? -1 : 1);
	return (x->key < y->key ? -1 : x->key > y->key);
}

size_t
mx_sort(struct mx_record *mx, size_t n)
{
	struct keyed_record	*k;
	size_t			 i, m, len;

	if (n == 0)
		return (0);
	k = xcalloc(n, sizeof(*k));
	for (i = 0; i < n; i++) {
		k[i].rec = mx[i];
		k[i].rec.host[sizeof(k[i].rec.host) - 1] = '\0';
		len = strlen(k[i].rec.host);
		if (len > 0 && k[i].rec.host[len - 1] == '.')
			k[i].rec.host[len - 1] = '\0';
		ascii_lower(k[i].rec.host);
		k[i].key = randombytes_random();
	}
	qsort(k, n, sizeof(*k), by_name);
	for (i = 0, m = 0; i < n; i++) {
		if (m > 0 && strcmp(k[m - 1].rec.host, k[i].rec.host) == 0) {
			k[m - 1].rec.self |= k[i].rec.self;
			continue;
		}
		k[m++] = k[i];
	}
	qsort(k, m, sizeof(*k), by_preference);
	for (i = 0; i < m; i++)
		mx[i] = k[i].rec;
	free(k);
	return (m);
}

size_t
mx_select(struct mx_record *mx, size_t n, const char *ourname, int *looped)
{
	size_t			 i;
	unsigned		 ourpref = 0;
	int			 listed = 0;

	*looped = 0;
	n = mx_sort(mx, n);
	for (i = 0; i < n; i++) {
		if (mx[i].self || (ourname != NULL &&
		    address_domain_match(mx[i].host, ourname))) {
			ourpref = mx[i].pref;
			listed = 1;
			break;
		}
	}
	if (!listed)
		return (n);
	for (i = 0; i < n && mx[i].pref < ourpref; i++)
		;
	if (i == 0)
		*looped = 1;
	return (i);
}

static int
literal_address(const char *host, int port, struct sockaddr_storage *ss)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	const char		*h = host;

	memset(ss, 0, sizeof(*ss));
	if (strncasecmp(h, "ipv6:", 5) == 0)
		h += 5;
	if (inet_pton(AF_INET, h, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		return (1);
	}
	if (inet_pton(AF_INET6, h, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		return (1);
	}
	return (0);
}

static int
same_address(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b)
{
	const struct sockaddr_in	*a4, *b4;
	const struct sockaddr_in6	*a6, *b6;

	if (a->ss_family != b->ss_family)
		return (0);
	if (a->ss_family == AF_INET) {
		a4 = (const struct sockaddr_in *)a;
		b4 = (const struct sockaddr_in *)b;
		return (a4->sin_addr.s_addr == b4->sin_addr.s_addr &&
		    a4->sin_port == b4->sin_port);
	}
	if (a->ss_family == AF_INET6) {
		a6 = (const struct sockaddr_in6 *)a;
		b6 = (const struct sockaddr_in6 *)b;
		return (memcmp(&a6->sin6_addr, &b6->sin6_addr, 16) == 0 &&
		    a6->sin6_port == b6->sin6_port);
	}
	return (1);
}

/*
 * A target with those of these addresses the route does not hold yet,
 * up to MX_ADDRESS_LIMIT in the route; none left: no target.
 */
static void
add_target_addrs(struct mx_route *r, const char *host, unsigned pref,
    int port, const struct sockaddr_storage *addrs, size_t naddrs)
{
	struct sockaddr_storage	*keep;
	struct mx_target	*t;
	size_t			 i, j, k, n = 0, total = 0;
	int			 dup;

	for (i = 0; i < r->ntargets; i++)
		total += r->targets[i].naddrs;
	if (total >= MX_ADDRESS_LIMIT || naddrs == 0)
		return;
	keep = xcalloc(naddrs < MX_ADDRESS_LIMIT ? naddrs : MX_ADDRESS_LIMIT,
	    sizeof(*keep));
	for (i = 0; i < naddrs && total + n < MX_ADDRESS_LIMIT; i++) {
		if (addrs[i].ss_family != AF_INET &&
		    addrs[i].ss_family != AF_INET6)
			continue;
		dup = 0;
		for (j = 0; j < r->ntargets && !dup; j++)
			for (k = 0; k < r->targets[j].naddrs && !dup; k++)
				dup = same_address(&r->targets[j].addrs[k],
				    &addrs[i]);
		for (k = 0; k < n && !dup; k++)
			dup = same_address(&keep[k], &addrs[i]);
		if (!dup)
			keep[n++] = addrs[i];
	}
	if (n == 0) {
		free(keep);
		return;
	}
	r->targets = xreallocarray(r->targets, r->ntargets + 1,
	    sizeof(*r->targets));
	t = &r->targets[r->ntargets++];
	memset(t, 0, sizeof(*t));
	strlcpy(t->host, host, sizeof(t->host));
	t->pref = pref;
	t->port = port;
	t->addrs = keep;
	t->naddrs = n;
}

/* No MX: the domain's own addresses, unless they are ours. */
static enum dns_status
implicit_mx(const char *domain, const char *ourname, int port,
    const struct mx_lookup_ops *ops, struct mx_route *r,
    struct lookup_error *e)
{
	struct sockaddr_storage	*addrs = NULL;
	struct lookup_error	 le;
	size_t			 i, naddrs = 0;
	enum dns_status		 st = DNS_TEMP;

	memset(&le, 0, sizeof(le));
	if (ops->lookup(ops->arg, domain, port, &addrs, &naddrs, &st,
	    &le) == -1) {
		if (e != NULL)
			*e = le;
		return (DNS_TEMP);
	}
	if (st != DNS_OK) {
		free(addrs);
		if (e != NULL)
			*e = le;
		return (st);
	}
	if (ourname != NULL) {
		for (i = 0; i < naddrs; i++)
			if (ops->is_local(ops->arg,
			    (struct sockaddr *)&addrs[i]))
				break;
		if (i < naddrs || address_domain_match(domain, ourname)) {
			free(addrs);
			return (looped(e, domain));
		}
	}
	if (naddrs == 0) {
		free(addrs);
		lookup_error_set(e, "5.1.2", "Host or domain name not found: "
		    "%s has no MX and no address", domain);
		return (DNS_PERM);
	}
	add_target_addrs(r, domain, 0, port, addrs, naddrs);
	free(addrs);
	return (r->ntargets > 0 ? DNS_OK : DNS_TEMP);
}

enum dns_status
mx_route_build(struct mx_record *mx, size_t n, const char *domain,
    const char *ourname, int port, const struct mx_lookup_ops *ops,
    struct mx_route *r, struct lookup_error *e)
{
	struct host_lookup	*hl;
	struct sockaddr_storage	 ss;
	struct lookup_error	 last, stop;
	size_t			 i, j, nlookups = 0, better = 0;
	long long		 bound = LLONG_MAX, named = LLONG_MAX;
	int			 listed = 0, cut = 0, temp = 0, failed = 0;
	enum dns_status		 st;

	if (n == 0)
		return (implicit_mx(domain, ourname, port, ops, r, e));
	n = mx_sort(mx, n);
	hl = xcalloc(n, sizeof(*hl));
	memset(&stop, 0, sizeof(stop));
	/* Our best entry by name or flag: nothing from there on is needed. */
	for (i = 0; i < n && named == LLONG_MAX; i++)
		if (mx[i].self || (ourname != NULL &&
		    address_domain_match(mx[i].host, ourname)))
			named = mx[i].pref;
	/* Look up in order of preference until we meet ourselves. */
	for (i = 0; i < n; i++) {
		if (mx[i].pref >= named)
			break;
		hl[i].st = DNS_OK;
		if (literal_address(mx[i].host, port, &ss)) {
			hl[i].addrs = xmalloc(sizeof(*hl[i].addrs));
			hl[i].addrs[0] = ss;
			hl[i].naddrs = 1;
		} else if (nlookups == MX_LOOKUP_LIMIT) {
			lookup_error_set(&stop, "4.4.3", "MX host lookups "
			    "limited to %d", MX_LOOKUP_LIMIT);
			cut = 1;
			break;
		} else {
			nlookups++;
			if (ops->lookup(ops->arg, mx[i].host, port,
			    &hl[i].addrs, &hl[i].naddrs, &hl[i].st,
			    &stop) == -1) {
				free(hl[i].addrs);
				hl[i].addrs = NULL;
				hl[i].naddrs = 0;
				cut = 1;
				break;
			}
			hl[i].e = stop;
			memset(&stop, 0, sizeof(stop));
		}
		for (j = 0; j < hl[i].naddrs && ourname != NULL; j++)
			if (ops->is_local(ops->arg,
			    (struct sockaddr *)&hl[i].addrs[j]))
				mx[i].self = 1;
		if (mx[i].self)
			break;
	}
	/* i: ourselves, or the first host not looked up, or n. */
	if (i < n) {
		listed = !cut;
		bound = mx[i].pref;
	}
	memset(&last, 0, sizeof(last));
	for (j = 0; j < i && mx[j].pref < bound; j++) {
		better++;
		st = hl[j].st;
		if (st == DNS_OK && hl[j].naddrs == 0) {
			st = DNS_PERM;
			if (hl[j].e.text[0] == '\0')
				lookup_error_set(&hl[j].e, "5.4.4",
				    "no address record for %s", mx[j].host);
		}
		if (st != DNS_OK) {
			temp |= st == DNS_TEMP;
			failed = 1;
			last = hl[j].e;
			continue;
		}
		add_target_addrs(r, mx[j].host, mx[j].pref, port, hl[j].addrs,
		    hl[j].naddrs);
	}
	for (j = 0; j < n; j++)
		free(hl[j].addrs);
	free(hl);
	if (r->ntargets > 0)
		return (DNS_OK);
	if (listed && better == 0)
		return (looped(e, domain));
	if (cut)
		lookup_error_set(e, "4.4.3", "%s: no usable MX host of %s "
		    "better than preference %lld", stop.text, domain, bound);
	else if (failed && temp) {
		if (e != NULL) {
			*e = last;
			strlcpy(e->dsn, "4.4.3", sizeof(e->dsn));
		}
	} else
		lookup_error_set(e, "4.4.3", "no address for any MX host of %s",
		    domain);
	return (DNS_TEMP);
}

static int
dns_host_lookup(void *arg, const char *host, int port,
    struct sockaddr_storage **addrs, size_t *naddrs, enum dns_status *st,
    struct lookup_error *e)
{
	struct dns_resolver	*dr = arg;

	*addrs = NULL;
	*naddrs = 0;
	if (dns_deadline_passed(dr)) {
		lookup_error_set(e, "4.4.3", "DNS lookups took too long "
		    "(the time limit of one route)");
		return (-1);
	}
	*st = dns_lookup_addrs(dr, host, port, addrs, naddrs, e);
	return (0);
}

static int
dns_host_is_local(void *arg, const struct sockaddr *sa)
{
	return (dns_is_local_address(arg, sa));
}

static enum dns_status
add_target(struct dns_resolver *dr, struct mx_route *r, const char *host,
    unsigned pref, int port, struct lookup_error *e)
{
	struct sockaddr_storage	*addrs = NULL, ss;
	size_t			 naddrs = 0;
	enum dns_status		 st;

	if (literal_address(host, port, &ss)) {
		add_target_addrs(r, host, pref, port, &ss, 1);
		return (DNS_OK);
	}
	st = dns_lookup_addrs(dr, host, port, &addrs, &naddrs, e);
	if (st != DNS_OK)
		return (st);
	if (naddrs == 0)
		return (DNS_PERM);
	add_target_addrs(r, host, pref, port, addrs, naddrs);
	free(addrs);
	return (DNS_OK);
}

/* A via or smarthost: [host] is used as it is, host is MX-looked-up. */
static enum dns_status
route_host(struct dns_resolver *dr, const char *domain,
    const struct hostport *hp, int defport, struct mx_route *r,
    struct lookup_error *e)
{
	struct mx_lookup_ops	 ops = { dns_host_lookup, dns_host_is_local,
				    dr };
	struct mx_record	*mx = NULL;
	size_t			 nmx = 0;
	int			 port = hp->port ? hp->port : defport;
	enum dns_status		 st;

	if (!hp->literal) {
		st = dns_lookup_mx(dr, hp->host, &mx, &nmx, e);
		if (st != DNS_OK) {
			/* A relay host without mail is ours to fix. */
			if (e != NULL)
				strlcpy(e->dsn, "4.4.3", sizeof(e->dsn));
			return (DNS_TEMP);
		}
	}
	if (nmx == 0) {
		free(mx);
		st = add_target(dr, r, hp->host, 0, port, e);
		if (st == DNS_OK)
			return (DNS_OK);
		if (e != NULL && st == DNS_PERM && e->dsn[0] == '\0')
			snprintf(e->text, sizeof(e->text),
			    "no address for %s", hp->host);
		/* A broken relay host is our problem: never bounce. */
		if (e != NULL)
			strlcpy(e->dsn, "4.4.3", sizeof(e->dsn));
		return (DNS_TEMP);
	}
	st = mx_route_build(mx, nmx, hp->host, NULL, port, &ops, r, e);
	free(mx);
	if (st == DNS_OK)
		return (DNS_OK);
	if (e != NULL) {
		strlcpy(e->dsn, "4.4.3", sizeof(e->dsn));
		if (e->text[0] == '\0')
			snprintf(e->text, sizeof(e->text),
			    "no address for the MX hosts of %s (for %s)",
			    hp->host, domain);
	}
	return (DNS_TEMP);
}

static enum dns_status
route_mx(struct dns_resolver *dr, const struct config *c, const char *domain,
    struct mx_route *r, struct lookup_error *e)
{
	struct mx_lookup_ops	 ops = { dns_host_lookup, dns_host_is_local,
				    dr };
	struct mx_record	*mx = NULL;
	size_t			 nmx = 0;
	enum dns_status		 st;

	st = dns_lookup_mx(dr, domain, &mx, &nmx, e);
	if (st != DNS_OK)
		return (st);
	st = mx_route_build(mx, nmx, domain, c->hostname, c->smtp_port, &ops,
	    r, e);
	free(mx);
	return (st);
}

enum dns_status
mx_route_lookup(struct dns_resolver *dr, const struct config *c,
    const char *domain, struct mx_route *r, struct lookup_error *e)
{
	const struct relay_domain	*rd;
	enum dns_status			 st;

	memset(r, 0, sizeof(*r));
	if (e != NULL) {
		e->dsn[0] = '\0';
		e->text[0] = '\0';
	}
	/* However many hosts and silent servers: bounded. */
	dns_set_deadline(dr, MX_ROUTE_QUERIES * dns_query_time(dr));
	rd = config_relay_domain(c, domain);
	if (rd != NULL && rd->has_via)
		st = route_host(dr, domain, &rd->via, c->smtp_port, r, e);
	else if (rd == NULL && c->has_smarthost)
		st = route_host(dr, domain, &c->smarthost, c->smtp_port, r, e);
	else
		st = route_mx(dr, c, domain, r, e);
	dns_set_deadline(dr, 0);
	if (st != DNS_OK)
		mx_route_free(r);
	return (st);
}

void
mx_route_free(struct mx_route *r)
{
	size_t	 i;

	for (i = 0; i < r->ntargets; i++)
		free(r->targets[i].addrs);
	free(r->targets);
	r->targets = NULL;
	r->ntargets = 0;
}
