/*
 * dnsrec.h - the DNS lookups `mxfb check` adds to core/dns.h: TXT
 * records (MTA-STS, DKIM, SPF) and PTR records (forward-confirmed
 * reverse DNS), through the same resolver, timeouts and retries.
 */
#ifndef MXFB_DNSREC_H
#define MXFB_DNSREC_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stddef.h>

#include "core/dns.h"

/* Records kept from one answer. */
#define DNSREC_MAX	32

/* One TXT record: its character-strings joined (may hold any byte). */
struct dns_txt {
	char	*text;		/* NUL-terminated too */
	size_t	 len;
};

/*
 * TXT records of name (at most DNSREC_MAX).  DNS_OK with *n == 0: the
 * name exists without TXT; DNS_PERM: NXDOMAIN; DNS_TEMP: no usable
 * answer, e says why.
 */
enum dns_status dns_lookup_txt(struct dns_resolver *, const char *name,
	    struct dns_txt **, size_t *n, struct lookup_error *);
void	 dns_txt_free(struct dns_txt *, size_t);

/*
 * PTR names of an address (in-addr.arpa or ip6.arpa), lower case, no
 * final dot, bytes that are no host name characters escaped as ldns
 * prints them (\DDD); at most DNSREC_MAX.  As dns_lookup_txt.
 */
enum dns_status dns_lookup_ptr(struct dns_resolver *, const struct sockaddr *,
	    char (**)[DOMAIN_NAME_SIZE * 4], size_t *n,
	    struct lookup_error *);

#endif
