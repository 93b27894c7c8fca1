/*
 * mx.h - where mail for a domain goes: the RFC 5321 section 5.1 choice
 * of MX hosts (pure functions over the answers, unit-tested and fuzzed),
 * and the route of a domain (relay-domain via, smarthost, or the MX
 * hosts strictly better than we are) with the addresses of every host,
 * in the order to try them.  However hostile the DNS answers, a route
 * costs a bounded number of lookups and time and holds a bounded number
 * of addresses, each once.
 */
#ifndef MXFB_MX_H
#define MXFB_MX_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stddef.h>

#include "core/dns.h"
#include "core/util.h"

struct config;

/* MX hosts whose addresses one route looks up (Postfix looks up all). */
#define MX_LOOKUP_LIMIT		20
/* Addresses one route holds, all hosts together (Postfix: 5). */
#define MX_ADDRESS_LIMIT	10
/* One route's DNS time: this many unanswered queries (dns_query_time). */
#define MX_ROUTE_QUERIES	4

/*
 * Host names in lower case without a final dot, each host once at its
 * best preference (self kept if any of its records had it), sorted by
 * preference, equal preferences in random order.  Returns the new count.
 */
size_t	 mx_sort(struct mx_record *, size_t n);

/*
 * mx_sort, then find ourselves (a record with self set, or whose host
 * is ourname, case-insensitive) and keep only the records strictly
 * better than our best one.  Returns how many were kept (they are at
 * the front).  When we are listed and nothing is better, returns 0 with
 * *looped = 1.
 */
size_t	 mx_select(struct mx_record *, size_t n, const char *ourname,
	    int *looped);

/* One host to try, with its addresses (IPv4 first, then IPv6). */
struct mx_target {
	char			 host[DOMAIN_NAME_SIZE];
	unsigned		 pref;		/* 0 for via/smarthost/implicit */
	int			 port;
	struct sockaddr_storage	*addrs;
	size_t			 naddrs;
};

struct mx_route {
	struct mx_target	*targets;
	size_t			 ntargets;
};

/* How mx_route_build looks up an MX host: the DNS, or a test's table. */
struct mx_lookup_ops {
	/*
	 * The addresses of host, port set in each, as dns_lookup_addrs
	 * gives them (DNS_OK with none: the host has no address).
	 * Returns -1, with e set, when no time is left to look up more.
	 */
	int	(*lookup)(void *, const char *host, int port,
		    struct sockaddr_storage **, size_t *, enum dns_status *,
		    struct lookup_error *e);
	/* Is this address this machine's (dns_is_local_address)? */
	int	(*is_local)(void *, const struct sockaddr *);
	void	*arg;
};

/*
 * The route from a domain's MX records (any order, any names, any
 * number; n == 0: the implicit MX, domain's own addresses): hosts
 * deduplicated (mx_sort) and looked up in order of preference until
 * ourselves are found (ourname, or one of our addresses; ourname NULL:
 * no self-detection) or MX_LOOKUP_LIMIT lookups or the lookup's time
 * are spent.  Hosts strictly better than ourselves become targets; when
 * the lookups stopped early, only hosts strictly better than the first
 * host not looked up (we might be that one).  A host named by an IPv4
 * or IPv6 address is that address, as in Postfix.  Each address once,
 * MX_ADDRESS_LIMIT in all.  Returns as mx_route_lookup.
 */
enum dns_status mx_route_build(struct mx_record *, size_t n,
	    const char *domain, const char *ourname, int port,
	    const struct mx_lookup_ops *, struct mx_route *,
	    struct lookup_error *);

/*
 * The route of mail for domain.  DNS_PERM (NXDOMAIN 5.1.2, Null MX
 * 5.1.10) means the mail can never be delivered; DNS_TEMP covers DNS
 * trouble and "mail for DOMAIN loops back to myself" (4.4.6).
 */
enum dns_status mx_route_lookup(struct dns_resolver *, const struct config *,
	    const char *domain, struct mx_route *, struct lookup_error *);
void	 mx_route_free(struct mx_route *);

#endif
