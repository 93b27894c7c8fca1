/*
 * dnsrec.c - TXT and PTR lookups for `mxfb check` (see dnsrec.h).
 *
 * Guarantees: each lookup is one query through dns_query_secure (the
 * configured servers, timeout, retries and deadline); NXDOMAIN is
 * DNS_PERM, any other failing rcode DNS_TEMP; at most DNSREC_MAX
 * records are kept, each bounded by what one DNS message can hold.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "core/dnsrec.h"
#include "core/util.h"

static enum dns_status	 ask(struct dns_resolver *, const char *, int,
			    ldns_pkt **, struct lookup_error *);
static int		 reverse_name(const struct sockaddr *, char *, size_t);

/* One query; DNS_OK only with a NOERROR reply in *pkt. */
static enum dns_status
ask(struct dns_resolver *dr, const char *name, int type, ldns_pkt **pkt,
    struct lookup_error *e)
{
	ldns_pkt_rcode	 rcode;
	enum dns_status	 st;

	if ((st = dns_query_secure(dr, name, type, pkt, e)) != DNS_OK)
		return (st);
	rcode = ldns_pkt_get_rcode(*pkt);
	if (rcode == LDNS_RCODE_NOERROR)
		return (DNS_OK);
	ldns_pkt_free(*pkt);
	*pkt = NULL;
	if (rcode == LDNS_RCODE_NXDOMAIN) {
		lookup_error_set(e, "5.1.2", "%s does not exist (NXDOMAIN)",
		    name);
		return (DNS_PERM);
	}
	lookup_error_set(e, "4.4.3", "DNS lookup of %s: %s", name,
	    rcode == LDNS_RCODE_SERVFAIL ? "SERVFAIL" : rcode ==
	    LDNS_RCODE_REFUSED ? "REFUSED" : "server error");
	return (DNS_TEMP);
}

enum dns_status
dns_lookup_txt(struct dns_resolver *dr, const char *name, struct dns_txt **out,
    size_t *n, struct lookup_error *e)
{
	ldns_pkt	*pkt;
	ldns_rr_list	*list;
	ldns_rr		*rr;
	ldns_rdf	*rdf;
	struct dns_txt	*t;
	size_t		 i, j, count, len;
	enum dns_status	 st;

	*out = NULL;
	*n = 0;
	if ((st = ask(dr, name, LDNS_RR_TYPE_TXT, &pkt, e)) != DNS_OK)
		return (st);
	list = ldns_pkt_rr_list_by_type(pkt, LDNS_RR_TYPE_TXT,
	    LDNS_SECTION_ANSWER);
	count = list != NULL ? ldns_rr_list_rr_count(list) : 0;
	if (count > DNSREC_MAX)
		count = DNSREC_MAX;
	t = xcalloc(count ? count : 1, sizeof(*t));
	for (i = 0; i < count; i++) {
		rr = ldns_rr_list_rr(list, i);
		len = 0;
		for (j = 0; j < ldns_rr_rd_count(rr); j++)
			len += ldns_rdf_size(ldns_rr_rdf(rr, j));
		t[i].text = xmalloc(len + 1);
		for (j = 0; j < ldns_rr_rd_count(rr); j++) {
			rdf = ldns_rr_rdf(rr, j);
			/* A character-string: its length byte, then bytes. */
			if (ldns_rdf_size(rdf) < 1)
				continue;
			len = ldns_rdf_data(rdf)[0];
			if (len > ldns_rdf_size(rdf) - 1)
				len = ldns_rdf_size(rdf) - 1;
			memcpy(t[i].text + t[i].len, ldns_rdf_data(rdf) + 1,
			    len);
			t[i].len += len;
		}
		t[i].text[t[i].len] = '\0';
	}
	if (list != NULL)
		ldns_rr_list_deep_free(list);
	ldns_pkt_free(pkt);
	*out = t;
	*n = count;
	return (DNS_OK);
}

void
dns_txt_free(struct dns_txt *t, size_t n)
{
	size_t	 i;

	if (t == NULL)
		return;
	for (i = 0; i < n; i++)
		free(t[i].text);
	free(t);
}

/* "4.3.2.1.in-addr.arpa." or the ip6.arpa nibbles; -1 for others. */
static int
reverse_name(const struct sockaddr *sa, char *buf, size_t size)
{
	const unsigned char	*b;
	size_t			 o = 0;
	int			 i;

	buf[0] = '\0';
	if (sa->sa_family == AF_INET) {
		b = (const unsigned char *)
		    &((const struct sockaddr_in *)sa)->sin_addr;
		return (bsnprintf(buf, size, "%u.%u.%u.%u.in-addr.arpa.",
		    b[3], b[2], b[1], b[0]));
	}
	if (sa->sa_family != AF_INET6 || size < 74)
		return (-1);
	b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	for (i = 15; i >= 0; i--) {
		buf[o++] = "0123456789abcdef"[b[i] & 0xf];
		buf[o++] = '.';
		buf[o++] = "0123456789abcdef"[b[i] >> 4];
		buf[o++] = '.';
	}
	(void)strlcpy(buf + o, "ip6.arpa.", size - o);
	return (0);
}

enum dns_status
dns_lookup_ptr(struct dns_resolver *dr, const struct sockaddr *sa,
    char (**out)[DOMAIN_NAME_SIZE * 4], size_t *n, struct lookup_error *e)
{
	ldns_pkt	*pkt;
	ldns_rr_list	*list;
	ldns_rdf	*rdf;
	char		 name[80], *s;
	size_t		 i, count, len;
	enum dns_status	 st;

	*out = NULL;
	*n = 0;
	if (reverse_name(sa, name, sizeof(name)) == -1) {
		lookup_error_set(e, "5.1.2", "no reverse name for this "
		    "address");
		return (DNS_PERM);
	}
	if ((st = ask(dr, name, LDNS_RR_TYPE_PTR, &pkt, e)) != DNS_OK)
		return (st);
	list = ldns_pkt_rr_list_by_type(pkt, LDNS_RR_TYPE_PTR,
	    LDNS_SECTION_ANSWER);
	count = list != NULL ? ldns_rr_list_rr_count(list) : 0;
	if (count > DNSREC_MAX)
		count = DNSREC_MAX;
	*out = xcalloc(count ? count : 1, sizeof(**out));
	for (i = 0; i < count; i++) {
		rdf = ldns_rr_rdf(ldns_rr_list_rr(list, i), 0);
		if (rdf == NULL || (s = ldns_rdf2str(rdf)) == NULL)
			continue;
		len = strlen(s);
		if (len > 1 && s[len - 1] == '.')
			s[len - 1] = '\0';
		(void)strlcpy((*out)[*n], s, sizeof((*out)[*n]));
		(void)ascii_lower((*out)[(*n)++]);
		free(s);
	}
	if (list != NULL)
		ldns_rr_list_deep_free(list);
	ldns_pkt_free(pkt);
	return (DNS_OK);
}
