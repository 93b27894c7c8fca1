/*
 * tlsa.c - the TLSA lookup for DANE, through ldns.
 *
 * Guarantees: the query goes through core/dns.c's resolver: the same
 * servers, timeout and retries as every other lookup (resolver,
 * dns-timeout, dns-retry) and the same set-up before it; a record set
 * is only ever returned when the resolver marked the answer
 * authenticated (AD); a SERVFAIL, REFUSED or silent resolver is
 * TLSA_TEMP, never "no records" (RFC 7672 2.2: a failed TLSA lookup
 * must not turn into plaintext).
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "core/config.h"
#include "core/dns.h"
#include "core/tlsa.h"
#include "core/util.h"

#define TLSA_MAX_RECORDS	32

static int		 rdf_u8(const ldns_rdf *, unsigned char *);
static enum tlsa_status tlsa_records(ldns_pkt *, const char *,
		    struct tlsa_record **, size_t *, char *, size_t);

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
	struct dns_resolver	*dr;
	struct lookup_error	 e;
	ldns_pkt		*pkt = NULL;
	ldns_pkt_rcode		 rcode;
	enum tlsa_status	 status;
	char			 name[300];

	*records = NULL;
	*n = 0;
	if (snprintf(name, sizeof(name), "_%d._tcp.%s.", port, host) >=
	    (int)sizeof(name)) {
		(void)snprintf(err, errsize, "TLSA name for %s too long", host);
		return (TLSA_TEMP);
	}
	if (dns_resolver_open(c, &dr, err, errsize) == -1)
		return (TLSA_TEMP);
	if (dns_query_secure(dr, name, LDNS_RR_TYPE_TLSA, &pkt, &e) !=
	    DNS_OK) {
		dns_resolver_close(dr);
		(void)strlcpy(err, e.text, errsize);
		return (TLSA_TEMP);
	}
	dns_resolver_close(dr);
	rcode = ldns_pkt_get_rcode(pkt);
	if (rcode != LDNS_RCODE_NOERROR && rcode != LDNS_RCODE_NXDOMAIN) {
		(void)snprintf(err, errsize, "DNS lookup of %s type=TLSA: "
		    "rcode %d", name, (int)rcode);
		status = TLSA_TEMP;
	} else if (!ldns_pkt_ad(pkt)) {
		(void)snprintf(err, errsize, "no DNSSEC-validated TLSA "
		    "records for %s (insecure answer)", name);
		status = TLSA_NONE;
	} else
		status = tlsa_records(pkt, name, records, n, err, errsize);
	ldns_pkt_free(pkt);
	return (status);
}

/* The usable records of a validated answer. */
static enum tlsa_status
tlsa_records(ldns_pkt *pkt, const char *name, struct tlsa_record **records,
    size_t *n, char *err, size_t errsize)
{
	ldns_rr_list		*list;
	ldns_rr			*rr;
	struct tlsa_record	*out;
	size_t			 i, count;

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
	if (*n == 0) {
		free(out);
		(void)snprintf(err, errsize, "no TLSA records for %s "
		    "(validated denial)", name);
		return (TLSA_NONE);
	}
	*records = out;
	return (TLSA_FOUND);
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
