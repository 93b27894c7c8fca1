/*
 * spf_dns.c - spf_lookup_fn through core/dns.c (see spf.h): TXT, A,
 * AAAA, MX and PTR records for the SPF evaluator, asked of the
 * configured resolver with its timeouts, retries and deadline.
 *
 * Guarantees: NOERROR is DNS_OK (no records of the type: n == 0),
 * NXDOMAIN or a name that cannot be asked DNS_PERM, any other rcode or
 * no reply DNS_TEMP; at most SPF_RR_MAX records are kept; names are
 * lower case without the final dot, a root name (Null MX) as "".
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "core/spf.h"
#include "core/util.h"

static void	 txt_rr(const ldns_rr *, struct spf_rr *);
static void	 name_rr(const ldns_rdf *, struct spf_rr *);

/* A TXT record's character-strings joined. */
static void
txt_rr(const ldns_rr *rr, struct spf_rr *out)
{
	const ldns_rdf	*rdf;
	size_t		 j, len = 0, n;

	for (j = 0; j < ldns_rr_rd_count(rr); j++)
		len += ldns_rdf_size(ldns_rr_rdf(rr, j));
	out->text = xmalloc(len + 1);
	out->len = 0;
	for (j = 0; j < ldns_rr_rd_count(rr); j++) {
		rdf = ldns_rr_rdf(rr, j);
		if (ldns_rdf_size(rdf) < 1)
			continue;
		n = ldns_rdf_data(rdf)[0];
		if (n > ldns_rdf_size(rdf) - 1)
			n = ldns_rdf_size(rdf) - 1;
		memcpy(out->text + out->len, ldns_rdf_data(rdf) + 1, n);
		out->len += n;
	}
	out->text[out->len] = '\0';
}

/* A domain name as ldns prints it, lower case, no final dot. */
static void
name_rr(const ldns_rdf *rdf, struct spf_rr *out)
{
	char	*s;
	size_t	 len;

	if (rdf == NULL || (s = ldns_rdf2str(rdf)) == NULL) {
		out->text = xstrdup("");
		return;
	}
	len = strlen(s);
	if (len > 0 && s[len - 1] == '.')
		s[--len] = '\0';
	out->text = xstrdup(ascii_lower(s));
	out->len = len;
	free(s);
}

enum dns_status
spf_dns_lookup(void *arg, const char *name, enum spf_type t,
    struct spf_rrset *set)
{
	static const ldns_rr_type types[] = { LDNS_RR_TYPE_TXT,
	    LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA, LDNS_RR_TYPE_MX,
	    LDNS_RR_TYPE_PTR };
	struct lookup_error	 e;
	ldns_pkt		*pkt = NULL;
	ldns_rr_list		*list;
	ldns_rr			*rr;
	ldns_rdf		*rdf;
	ldns_pkt_rcode		 rcode;
	size_t			 i, count;
	enum dns_status		 st;

	memset(&e, 0, sizeof(e));
	st = dns_query_secure(arg, name, types[t], &pkt, &e);
	if (st != DNS_OK)
		return (st);	/* DNS_PERM: a name ldns cannot ask */
	rcode = ldns_pkt_get_rcode(pkt);
	if (rcode != LDNS_RCODE_NOERROR) {
		ldns_pkt_free(pkt);
		return (rcode == LDNS_RCODE_NXDOMAIN ? DNS_PERM : DNS_TEMP);
	}
	list = ldns_pkt_rr_list_by_type(pkt, types[t], LDNS_SECTION_ANSWER);
	count = list != NULL ? ldns_rr_list_rr_count(list) : 0;
	for (i = 0; i < count && set->n < SPF_RR_MAX; i++) {
		rr = ldns_rr_list_rr(list, i);
		rdf = ldns_rr_rdf(rr, t == SPF_MX ? 1 : 0);
		switch (t) {
		case SPF_TXT:
			txt_rr(rr, &set->rr[set->n++]);
			break;
		case SPF_A:
		case SPF_AAAA:
			if (rdf == NULL || ldns_rdf_size(rdf) !=
			    (t == SPF_A ? 4 : 16))
				break;
			memcpy(set->rr[set->n++].addr, ldns_rdf_data(rdf),
			    ldns_rdf_size(rdf));
			break;
		case SPF_MX:
		case SPF_PTR:
			name_rr(rdf, &set->rr[set->n++]);
			break;
		}
	}
	if (list != NULL)
		ldns_rr_list_deep_free(list);
	ldns_pkt_free(pkt);
	return (DNS_OK);
}
