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
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "core/config.h"
#include "core/dns.h"
#include "core/mx.h"
#include "core/util.h"

static int	 same_host(const char *, const char *);
static enum dns_status route_host(struct dns_resolver *, const char *,
		    const struct hostport *, int, struct mx_route *,
		    struct lookup_error *);
static enum dns_status route_mx(struct dns_resolver *, const struct config *,
		    const char *, struct mx_route *, struct lookup_error *);
static enum dns_status add_target(struct dns_resolver *, struct mx_route *,
		    const char *, unsigned, int, struct lookup_error *);
static int	 literal_address(const char *, int, struct sockaddr_storage *);

static int
same_host(const char *a, const char *b)
{
	size_t	 la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return (la == lb && strncasecmp(a, b, la) == 0);
}

size_t
mx_select(struct mx_record *mx, size_t n, const char *ourname, int *looped)
{
	struct mx_record	 tmp;
	size_t			 i, j;
	unsigned		 ourpref = 0;
	int			 listed = 0;

	*looped = 0;
	/* Shuffle, then a stable sort: equal preferences stay shuffled. */
	for (i = n; i > 1; i--) {
		j = randombytes_uniform((uint32_t)i);
		tmp = mx[i - 1];
		mx[i - 1] = mx[j];
		mx[j] = tmp;
	}
	for (i = 1; i < n; i++) {
		tmp = mx[i];
		for (j = i; j > 0 && mx[j - 1].pref > tmp.pref; j--)
			mx[j] = mx[j - 1];
		mx[j] = tmp;
	}
	for (i = 0; i < n; i++) {
		if (mx[i].self || (ourname != NULL &&
		    same_host(mx[i].host, ourname))) {
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

/* An MX host's addresses as self-detection looked them up. */
struct known_host {
	char			 host[256];
	enum dns_status		 st;
	struct sockaddr_storage	*addrs;
	size_t			 naddrs;
	struct lookup_error	 e;
};

/* A target with these addresses (taken over). */
static void
add_target_addrs(struct mx_route *r, const char *host, unsigned pref,
    int port, struct sockaddr_storage *addrs, size_t naddrs)
{
	struct mx_target	*t;

	r->targets = xreallocarray(r->targets, r->ntargets + 1,
	    sizeof(*r->targets));
	t = &r->targets[r->ntargets++];
	memset(t, 0, sizeof(*t));
	strlcpy(t->host, host, sizeof(t->host));
	t->pref = pref;
	t->port = port;
	t->addrs = addrs;
	t->naddrs = naddrs;
}

static enum dns_status
add_target(struct dns_resolver *dr, struct mx_route *r, const char *host,
    unsigned pref, int port, struct lookup_error *e)
{
	struct sockaddr_storage	*addrs = NULL, ss;
	size_t			 naddrs = 0;
	enum dns_status		 st;

	if (literal_address(host, port, &ss)) {
		addrs = xmalloc(sizeof(*addrs));
		addrs[0] = ss;
		naddrs = 1;
	} else {
		st = dns_lookup_addrs(dr, host, port, &addrs, &naddrs, e);
		if (st != DNS_OK)
			return (st);
		if (naddrs == 0)
			return (DNS_PERM);
	}
	add_target_addrs(r, host, pref, port, addrs, naddrs);
	return (DNS_OK);
}

/* A via or smarthost: [host] is used as it is, host is MX-looked-up. */
static enum dns_status
route_host(struct dns_resolver *dr, const char *domain,
    const struct hostport *hp, int defport, struct mx_route *r,
    struct lookup_error *e)
{
	struct mx_record	*mx = NULL;
	size_t			 nmx = 0, i, keep;
	int			 port = hp->port ? hp->port : defport, looped;
	enum dns_status		 st;
	struct lookup_error	 e1;

	if (!hp->literal) {
		st = dns_lookup_mx(dr, hp->host, &mx, &nmx, e);
		if (st != DNS_OK)
			return (st);
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
	keep = mx_select(mx, nmx, NULL, &looped);
	for (i = 0; i < keep; i++) {
		st = add_target(dr, r, mx[i].host, mx[i].pref, port, &e1);
		if (st != DNS_OK && e != NULL)
			*e = e1;
	}
	free(mx);
	if (r->ntargets > 0)
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
	struct mx_record	*mx = NULL;
	struct sockaddr_storage	*addrs, ss;
	struct known_host	*known, *k;
	size_t			 nmx = 0, i, j, keep, naddrs, nknown = 0;
	int			 looped, temp = 0, port = c->smtp_port;
	enum dns_status		 st;
	struct lookup_error	 e1;

	st = dns_lookup_mx(dr, domain, &mx, &nmx, e);
	if (st != DNS_OK)
		return (st);
	if (nmx == 0) {
		/* Implicit MX: the domain's own addresses, unless ours. */
		free(mx);
		st = dns_lookup_addrs(dr, domain, port, &addrs, &naddrs, e);
		if (st != DNS_OK)
			return (st);
		for (i = 0; i < naddrs; i++) {
			if (dns_is_local_address(dr,
			    (struct sockaddr *)&addrs[i]) ||
			    same_host(domain, c->hostname)) {
				free(addrs);
				goto loop;
			}
		}
		if (naddrs == 0) {
			if (e != NULL) {
				strlcpy(e->dsn, "5.1.2", sizeof(e->dsn));
				snprintf(e->text, sizeof(e->text),
				    "Host or domain name not found: %s has "
				    "no MX and no address", domain);
			}
			return (DNS_PERM);
		}
		r->targets = xcalloc(1, sizeof(*r->targets));
		r->ntargets = 1;
		strlcpy(r->targets[0].host, domain, sizeof(r->targets[0].host));
		r->targets[0].port = port;
		r->targets[0].addrs = addrs;
		r->targets[0].naddrs = naddrs;
		return (DNS_OK);
	}

	/*
	 * Self-detection needs every host's addresses; they are kept (by
	 * host: mx_select reorders) for the targets, not looked up twice.
	 */
	known = xcalloc(nmx, sizeof(*known));
	for (i = 0; i < nmx; i++) {
		if (same_host(mx[i].host, c->hostname)) {
			mx[i].self = 1;
			continue;
		}
		k = &known[nknown++];
		strlcpy(k->host, mx[i].host, sizeof(k->host));
		k->st = dns_lookup_addrs(dr, mx[i].host, port, &k->addrs,
		    &k->naddrs, &k->e);
		if (k->st == DNS_TEMP) {
			temp = 1;
			if (e != NULL)
				*e = k->e;
		}
		for (j = 0; j < k->naddrs; j++)
			if (dns_is_local_address(dr,
			    (struct sockaddr *)&k->addrs[j]))
				mx[i].self = 1;
	}
	keep = mx_select(mx, nmx, c->hostname, &looped);
	for (i = 0; i < keep && !looped; i++) {
		k = NULL;
		if (!literal_address(mx[i].host, port, &ss))
			for (j = 0; j < nknown && k == NULL; j++)
				if (strcmp(known[j].host, mx[i].host) == 0)
					k = &known[j];
		if (k == NULL)
			st = add_target(dr, r, mx[i].host, mx[i].pref, port,
			    &e1);
		else {
			/* As add_target would have it, error text included. */
			e1 = k->e;
			st = k->st == DNS_OK && k->naddrs == 0 ? DNS_PERM :
			    k->st;
			if (st == DNS_OK) {
				add_target_addrs(r, mx[i].host, mx[i].pref,
				    port, k->addrs, k->naddrs);
				k->addrs = NULL;	/* the target's now */
			}
		}
		if (st == DNS_TEMP)
			temp = 1;
		if (st != DNS_OK && e != NULL)
			*e = e1;
	}
	for (j = 0; j < nknown; j++)
		free(known[j].addrs);
	free(known);
	free(mx);
	if (looped)
		goto loop;
	if (r->ntargets > 0)
		return (DNS_OK);
	if (e != NULL) {
		strlcpy(e->dsn, "4.4.3", sizeof(e->dsn));
		if (!temp)
			snprintf(e->text, sizeof(e->text),
			    "no address for any MX host of %s", domain);
	}
	return (DNS_TEMP);

loop:
	if (e != NULL) {
		strlcpy(e->dsn, "4.4.6", sizeof(e->dsn));
		snprintf(e->text, sizeof(e->text),
		    "mail for %s loops back to myself", domain);
	}
	return (DNS_TEMP);
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
	rd = config_relay_domain(c, domain);
	if (rd != NULL && rd->has_via)
		st = route_host(dr, domain, &rd->via, c->smtp_port, r, e);
	else if (rd == NULL && c->has_smarthost)
		st = route_host(dr, domain, &c->smarthost, c->smtp_port, r, e);
	else
		st = route_mx(dr, c, domain, r, e);
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
