/*
 * tlsa.c - the TLSA lookup for DANE, through ldns.
 *
 * Guarantees: the same resolvers, timeout and retries as every other
 * lookup (resolver, dns-timeout, dns-retry); a record set is only ever
 * returned when the resolver marked the answer authenticated (AD); a
 * SERVFAIL, REFUSED or silent resolver is TLSA_TEMP, never "no records"
 * (RFC 7672 2.2: a failed TLSA lookup must not turn into plaintext).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "core/config.h"
#include "core/tlsa.h"
#include "core/util.h"

#define TLSA_MAX_RECORDS	32

static ldns_resolver	*resolver_new(const struct config *, char *, size_t);
static int		 rdf_u8(const ldns_rdf *, unsigned char *);

static ldns_resolver *
resolver_new(const struct config *c, char *err, size_t errsize)
{
	ldns_resolver	*res = NULL;
	ldns_rdf	*rdf;
	struct in6_addr	 a6;
	struct timeval	 tv;
	size_t		 i;

	if (c->nresolvers == 0) {
		if (ldns_resolver_new_frm_file(&res, NULL) != LDNS_STATUS_OK) {
			(void)snprintf(err, errsize,
			    "cannot read /etc/resolv.conf");
			return (NULL);
		}
	} else {
		if ((res = ldns_resolver_new()) == NULL) {
			(void)snprintf(err, errsize, "out of memory");
			return (NULL);
		}
		for (i = 0; i < c->nresolvers; i++) {
			if (inet_pton(AF_INET6, c->resolvers[i].host, &a6) == 1)
				rdf = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_AAAA,
				    c->resolvers[i].host);
			else
				rdf = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_A,
				    c->resolvers[i].host);
			if (rdf == NULL || ldns_resolver_push_nameserver(res,
			    rdf) != LDNS_STATUS_OK) {
				if (rdf != NULL)
					ldns_rdf_deep_free(rdf);
				(void)snprintf(err, errsize, "resolver %s: not "
				    "an IP address", c->resolvers[i].host);
				ldns_resolver_deep_free(res);
				return (NULL);
			}
			ldns_rdf_deep_free(rdf);
		}
		ldns_resolver_set_port(res, c->resolvers[0].port ?
		    c->resolvers[0].port : 53);
	}
	tv.tv_sec = c->dns_timeout > 0 ? c->dns_timeout : 1;
	tv.tv_usec = 0;
	ldns_resolver_set_timeout(res, tv);
	ldns_resolver_set_retry(res, c->dns_retry >= 1 ?
	    (c->dns_retry > 255 ? 255 : c->dns_retry) : 1);
	ldns_resolver_set_recursive(res, true);
	ldns_resolver_set_dnsrch(res, false);
	ldns_resolver_set_defnames(res, false);
	ldns_resolver_set_fallback(res, true);
	/* The DO bit: a validating resolver then reports AD. */
	ldns_resolver_set_dnssec(res, true);
	return (res);
}

static int
rdf_u8(const ldns_rdf *rdf, unsigned char *v)
{
	if (rdf == NULL || ldns_rdf_size(rdf) != 1)
		return (-1);
	*v = ldns_rdf_data(rdf)[0];
	return (0);
}

enum tlsa_status
tlsa_lookup(const struct config *c, const char *host, int port,
    struct tlsa_record **records, size_t *n, char *err, size_t errsize)
{
	ldns_resolver		*res;
	ldns_rdf		*dname;
	ldns_pkt		*pkt = NULL;
	ldns_rr_list		*list;
	ldns_rr			*rr;
	ldns_pkt_rcode		 rcode;
	ldns_status		 st;
	struct tlsa_record	*out;
	char			 name[300];
	size_t			 i, count;
	enum tlsa_status	 status;

	*records = NULL;
	*n = 0;
	if (snprintf(name, sizeof(name), "_%d._tcp.%s.", port, host) >=
	    (int)sizeof(name)) {
		(void)snprintf(err, errsize, "TLSA name for %s too long", host);
		return (TLSA_TEMP);
	}
	if ((res = resolver_new(c, err, errsize)) == NULL)
		return (TLSA_TEMP);
	if ((dname = ldns_dname_new_frm_str(name)) == NULL) {
		ldns_resolver_deep_free(res);
		(void)snprintf(err, errsize, "bad TLSA name %s", name);
		return (TLSA_TEMP);
	}
	st = ldns_resolver_send(&pkt, res, dname, LDNS_RR_TYPE_TLSA,
	    LDNS_RR_CLASS_IN, LDNS_RD);
	ldns_rdf_deep_free(dname);
	ldns_resolver_deep_free(res);
	if (st != LDNS_STATUS_OK || pkt == NULL) {
		if (pkt != NULL)
			ldns_pkt_free(pkt);
		(void)snprintf(err, errsize, "DNS lookup of %s type=TLSA: %s",
		    name, ldns_get_errorstr_by_id(st));
		return (TLSA_TEMP);
	}
	rcode = ldns_pkt_get_rcode(pkt);
	if (rcode != LDNS_RCODE_NOERROR && rcode != LDNS_RCODE_NXDOMAIN) {
		(void)snprintf(err, errsize, "DNS lookup of %s type=TLSA: "
		    "rcode %d", name, (int)rcode);
		ldns_pkt_free(pkt);
		return (TLSA_TEMP);
	}
	if (!ldns_pkt_ad(pkt)) {
		(void)snprintf(err, errsize, "no DNSSEC-validated TLSA "
		    "records for %s (insecure answer)", name);
		ldns_pkt_free(pkt);
		return (TLSA_NONE);
	}
	list = ldns_pkt_rr_list_by_type(pkt, LDNS_RR_TYPE_TLSA,
	    LDNS_SECTION_ANSWER);
	count = list != NULL ? ldns_rr_list_rr_count(list) : 0;
	if (count > TLSA_MAX_RECORDS)
		count = TLSA_MAX_RECORDS;
	out = count > 0 ? xcalloc(count, sizeof(*out)) : NULL;
	for (i = 0; i < count; i++) {
		rr = ldns_rr_list_rr(list, i);
		if (ldns_rr_rd_count(rr) != 4 ||
		    rdf_u8(ldns_rr_rdf(rr, 0), &out[*n].usage) == -1 ||
		    rdf_u8(ldns_rr_rdf(rr, 1), &out[*n].selector) == -1 ||
		    rdf_u8(ldns_rr_rdf(rr, 2), &out[*n].mtype) == -1 ||
		    ldns_rdf_size(ldns_rr_rdf(rr, 3)) == 0)
			continue;	/* malformed: unusable, skipped */
		out[*n].len = ldns_rdf_size(ldns_rr_rdf(rr, 3));
		out[*n].data = xmalloc(out[*n].len);
		memcpy(out[*n].data, ldns_rdf_data(ldns_rr_rdf(rr, 3)),
		    out[*n].len);
		(*n)++;
	}
	if (list != NULL)
		ldns_rr_list_deep_free(list);
	ldns_pkt_free(pkt);
	if (*n == 0) {
		free(out);
		(void)snprintf(err, errsize, "no TLSA records for %s "
		    "(validated denial)", name);
		status = TLSA_NONE;
	} else {
		*records = out;
		status = TLSA_FOUND;
	}
	return (status);
}

void
tlsa_free(struct tlsa_record *r, size_t n)
{
	size_t	 i;

	if (r == NULL)
		return;
	for (i = 0; i < n; i++)
		free(r[i].data);
	free(r);
}
