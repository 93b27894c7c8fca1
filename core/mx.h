/*
 * mx.h - where mail for a domain goes: the RFC 5321 section 5.1 choice
 * of MX hosts (a pure function, unit-tested), and the route of a domain
 * (relay-domain via, smarthost, or the MX hosts strictly better than we
 * are) with the addresses of every host, in the order to try them.
 */
#ifndef MXFB_MX_H
#define MXFB_MX_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stddef.h>

#include "core/dns.h"

struct config;

/*
 * Sort records by preference, equal preferences in random order, then
 * find ourselves (a record with self set, or whose host is ourname,
 * case-insensitive) and keep only the records strictly better than our
 * best one.  Returns how many were kept (they are moved to the front).
 * When we are listed and nothing is better, returns 0 with *looped = 1.
 */
size_t	 mx_select(struct mx_record *, size_t n, const char *ourname,
	    int *looped);

/* One host to try, with its addresses (IPv4 first, then IPv6). */
struct mx_target {
	char			 host[256];
	unsigned		 pref;		/* 0 for via/smarthost/implicit */
	int			 port;
	struct sockaddr_storage	*addrs;
	size_t			 naddrs;
};

struct mx_route {
	struct mx_target	*targets;
	size_t			 ntargets;
};

/*
 * The route of mail for domain.  DNS_PERM (NXDOMAIN 5.1.2, Null MX
 * 5.1.10) means the mail can never be delivered; DNS_TEMP covers DNS
 * trouble and "mail for DOMAIN loops back to myself" (4.4.6).
 */
enum dns_status mx_route_lookup(struct dns_resolver *, const struct config *,
	    const char *domain, struct mx_route *, struct lookup_error *);
void	 mx_route_free(struct mx_route *);

#endif
