/*
 * dns.h - the DNS lookups delivery needs (MX, A, AAAA), through ldns, with
 * explicit timeouts.  Every lookup answers one of three ways: OK, a
 * permanent failure (NXDOMAIN, Null MX: the mail can never be delivered)
 * or a temporary one (SERVFAIL, REFUSED, timeout, network error: try
 * again later, never bounce).
 */
#ifndef MXFB_DNS_H
#define MXFB_DNS_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

struct config;
struct ldns_struct_pkt;		/* ldns_pkt of <ldns/ldns.h> */

enum dns_status {
	DNS_OK,
	DNS_PERM,		/* the name does not exist or takes no mail */
	DNS_TEMP		/* no usable answer now */
};

/* Why a lookup or a route failed: an RFC 3463 code and a reason. */
struct lookup_error {
	char		 dsn[16];	/* "5.1.2", "4.4.3", ... */
	char		 text[512];
};

/* One MX record; self is set by the caller when the host is us. */
struct mx_record {
	unsigned	 pref;
	char		 host[DOMAIN_NAME_SIZE]; /* lower case, no final dot */
	int		 self;
};

/* Set e (when not NULL) to dsn and the formatted text. */
void	 lookup_error_set(struct lookup_error *, const char *dsn,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

struct dns_resolver;

/*
 * A resolver aimed at the configured `resolver` servers (all of them
 * must share one port: ldns has one port per resolver; the first one's
 * is used), or at /etc/resolv.conf when none are configured.  Timeout
 * and retries from dns-timeout and dns-retry.  Also remembers this
 * machine's own interface addresses (getifaddrs) for self-detection.
 */
int	 dns_resolver_open(const struct config *, struct dns_resolver **,
	    char *err, size_t errsize);
void	 dns_resolver_close(struct dns_resolver *);

/*
 * A series of lookups (one route) ends within ms from now: a query that
 * would wait past it waits less, one started after it fails at once
 * (DNS_TEMP).  0 lifts the deadline.
 */
void	 dns_set_deadline(struct dns_resolver *, int64_t ms);
int	 dns_deadline_passed(const struct dns_resolver *);

/* The longest one unanswered query waits: timeout x retry x servers, ms. */
int64_t	 dns_query_time(const struct dns_resolver *);

/*
 * MX records of domain, unsorted, every one the answer holds, names in
 * lower case without the final dot; exchanges that are no host name
 * are left out.  DNS_OK with *n == 0 means the domain exists but has no
 * MX (use its A/AAAA: the implicit MX).  A Null MX (RFC 7505) alone is
 * DNS_PERM with 5.1.10 (mixed with other records it is left out);
 * NXDOMAIN is DNS_PERM with 5.1.2; MX records none of which names a
 * host are DNS_TEMP.
 */
enum dns_status dns_lookup_mx(struct dns_resolver *, const char *domain,
	    struct mx_record **, size_t *n, struct lookup_error *);

/*
 * IPv4 then IPv6 addresses of host, with port set in each (at most 64
 * of each).  DNS_OK with *n == 0 when the name exists but has no
 * address.  When the A query gets no reply at all, AAAA is not asked
 * (DNS_TEMP): a silent server costs one query time, not two.
 */
enum dns_status dns_lookup_addrs(struct dns_resolver *, const char *host,
	    int port, struct sockaddr_storage **, size_t *n,
	    struct lookup_error *);

/*
 * One query of name and type (an ldns_rr_type) with the DO bit set, so
 * that a validating resolver reports AD, asked like every lookup here
 * (each server asked again, the deadline).  DNS_OK: *pkt holds the
 * reply whatever its rcode (free it with ldns_pkt_free); otherwise no
 * reply, and e says why.  For callers that read the reply themselves
 * (core/tlsa.c).
 */
enum dns_status dns_query_secure(struct dns_resolver *, const char *name,
	    int type, struct ldns_struct_pkt **, struct lookup_error *);

/*
 * Is this address one of this machine's interface addresses (also in
 * IPv4-mapped form), or the unspecified address?
 */
int	 dns_is_local_address(const struct dns_resolver *,
	    const struct sockaddr *);

/* "127.0.0.2" / "::1" for an address (port left out). */
void	 dns_addr_string(const struct sockaddr *, char *, size_t);

#endif
