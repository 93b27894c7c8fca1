/*
 * dns.c - MX and address lookups through ldns.
 *
 * Guarantees: no lookup blocks longer than dns-timeout x dns-retry per
 * server (ldns' own default of 5 s x 3 is never used); NXDOMAIN and a
 * Null MX are the only permanent answers, anything else that is not a
 * clean answer (SERVFAIL, REFUSED, no reply, a malformed reply) is
 * temporary.  ldns reports NXDOMAIN and SERVFAIL as LDNS_STATUS_OK, so
 * the rcode is checked on every reply.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "core/config.h"
#include "core/dns.h"
#include "core/util.h"

#define DNS_MAX_RECORDS	64

struct dns_resolver {
	ldns_resolver		*res;
	struct sockaddr_storage	*local;		/* this machine's addresses */
	size_t			 nlocal;
};

static int	 push_server(ldns_resolver *, const struct hostport *);
static void	 load_local_addresses(struct dns_resolver *);
static enum dns_status query(struct dns_resolver *, const char *,
		    ldns_rr_type, ldns_pkt **, struct lookup_error *);
static void	 set_error(struct lookup_error *, const char *,
		    const char *, ...) __attribute__((format(printf, 3, 4)));
static void	 dname_string(const ldns_rdf *, char *, size_t);
static const char *qtype_name(ldns_rr_type);
static enum dns_status lookup_type(struct dns_resolver *, const char *, int,
		    ldns_rr_type, struct sockaddr_storage **, size_t *,
		    struct lookup_error *);

static void
set_error(struct lookup_error *e, const char *dsn, const char *fmt, ...)
{
	va_list	 ap;

	if (e == NULL)
		return;
	strlcpy(e->dsn, dsn, sizeof(e->dsn));
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
}

static int
push_server(ldns_resolver *res, const struct hostport *hp)
{
	ldns_rdf	*rdf;
	ldns_status	 st;
	struct in6_addr	 a6;

	if (inet_pton(AF_INET6, hp->host, &a6) == 1)
		rdf = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_AAAA, hp->host);
	else
		rdf = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_A, hp->host);
	if (rdf == NULL)
		return (-1);
	st = ldns_resolver_push_nameserver(res, rdf);
	ldns_rdf_deep_free(rdf);
	return (st == LDNS_STATUS_OK ? 0 : -1);
}

static void
load_local_addresses(struct dns_resolver *dr)
{
	struct ifaddrs	*ifa, *i;
	size_t		 n = 0;

	if (getifaddrs(&ifa) == -1)
		return;		/* self-detection then relies on hostname */
	for (i = ifa; i != NULL; i = i->ifa_next)
		if (i->ifa_addr != NULL && (i->ifa_addr->sa_family == AF_INET ||
		    i->ifa_addr->sa_family == AF_INET6))
			n++;
	dr->local = xcalloc(n ? n : 1, sizeof(*dr->local));
	for (i = ifa; i != NULL; i = i->ifa_next) {
		if (i->ifa_addr == NULL)
			continue;
		if (i->ifa_addr->sa_family == AF_INET)
			memcpy(&dr->local[dr->nlocal++], i->ifa_addr,
			    sizeof(struct sockaddr_in));
		else if (i->ifa_addr->sa_family == AF_INET6)
			memcpy(&dr->local[dr->nlocal++], i->ifa_addr,
			    sizeof(struct sockaddr_in6));
	}
	freeifaddrs(ifa);
}

int
dns_resolver_open(const struct config *c, struct dns_resolver **out,
    char *err, size_t errsize)
{
	struct dns_resolver	*dr;
	ldns_resolver		*res = NULL;
	struct timeval		 tv;
	size_t			 i;

	if (c->nresolvers == 0) {
		if (ldns_resolver_new_frm_file(&res, NULL) != LDNS_STATUS_OK) {
			snprintf(err, errsize,
			    "cannot read /etc/resolv.conf");
			return (-1);
		}
	} else {
		if ((res = ldns_resolver_new()) == NULL) {
			snprintf(err, errsize, "out of memory");
			return (-1);
		}
		for (i = 0; i < c->nresolvers; i++) {
			if (push_server(res, &c->resolvers[i]) == -1) {
				snprintf(err, errsize,
				    "resolver %s: not an IP address",
				    c->resolvers[i].host);
				ldns_resolver_deep_free(res);
				return (-1);
			}
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

	dr = xcalloc(1, sizeof(*dr));
	dr->res = res;
	load_local_addresses(dr);
	*out = dr;
	return (0);
}

void
dns_resolver_close(struct dns_resolver *dr)
{
	if (dr == NULL)
		return;
	ldns_resolver_deep_free(dr->res);
	free(dr->local);
	free(dr);
}

static const char *
qtype_name(ldns_rr_type t)
{
	switch (t) {
	case LDNS_RR_TYPE_MX:
		return ("MX");
	case LDNS_RR_TYPE_A:
		return ("A");
	case LDNS_RR_TYPE_AAAA:
		return ("AAAA");
	default:
		return ("?");
	}
}

static enum dns_status
query(struct dns_resolver *dr, const char *name, ldns_rr_type type,
    ldns_pkt **pktp, struct lookup_error *e)
{
	ldns_rdf	*dname;
	ldns_pkt	*pkt = NULL;
	ldns_status	 st;
	ldns_pkt_rcode	 rcode;

	*pktp = NULL;
	if ((dname = ldns_dname_new_frm_str(name)) == NULL) {
		set_error(e, "5.1.2", "bad domain name %s", name);
		return (DNS_PERM);
	}
	st = ldns_resolver_send(&pkt, dr->res, dname, type, LDNS_RR_CLASS_IN,
	    LDNS_RD);
	ldns_rdf_deep_free(dname);
	if (st != LDNS_STATUS_OK || pkt == NULL) {
		if (pkt != NULL)
			ldns_pkt_free(pkt);
		set_error(e, "4.4.3", "DNS lookup of %s type=%s: %s",
		    name, qtype_name(type), ldns_get_errorstr_by_id(st));
		return (DNS_TEMP);
	}
	rcode = ldns_pkt_get_rcode(pkt);
	if (rcode == LDNS_RCODE_NXDOMAIN) {
		ldns_pkt_free(pkt);
		set_error(e, "5.1.2", "Host or domain name not found. Name "
		    "service error for name=%s type=%s: Host not found",
		    name, qtype_name(type));
		return (DNS_PERM);
	}
	if (rcode != LDNS_RCODE_NOERROR) {
		ldns_pkt_free(pkt);
		set_error(e, "4.4.3", "Host or domain name not found. Name "
		    "service error for name=%s type=%s: %s", name,
		    qtype_name(type), rcode == LDNS_RCODE_SERVFAIL ?
		    "Host not found, try again" : rcode ==
		    LDNS_RCODE_REFUSED ? "query refused" : "server error");
		return (DNS_TEMP);
	}
	*pktp = pkt;
	return (DNS_OK);
}

static void
dname_string(const ldns_rdf *rdf, char *buf, size_t size)
{
	char	*s;
	size_t	 len;

	buf[0] = '\0';
	if ((s = ldns_rdf2str(rdf)) == NULL)
		return;
	strlcpy(buf, s, size);
	free(s);
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '.')
		buf[len - 1] = '\0';
	ascii_lower(buf);
}

enum dns_status
dns_lookup_mx(struct dns_resolver *dr, const char *domain,
    struct mx_record **out, size_t *n, struct lookup_error *e)
{
	ldns_pkt	*pkt;
	ldns_rr_list	*rrs;
	ldns_rr		*rr;
	ldns_rdf	*pref, *exch;
	struct mx_record *mx;
	size_t		 i, count, nnull = 0;
	enum dns_status	 st;

	*out = NULL;
	*n = 0;
	if ((st = query(dr, domain, LDNS_RR_TYPE_MX, &pkt, e)) != DNS_OK)
		return (st);
	rrs = ldns_pkt_rr_list_by_type(pkt, LDNS_RR_TYPE_MX,
	    LDNS_SECTION_ANSWER);
	count = rrs ? ldns_rr_list_rr_count(rrs) : 0;
	if (count > DNS_MAX_RECORDS)
		count = DNS_MAX_RECORDS;
	mx = xcalloc(count ? count : 1, sizeof(*mx));
	for (i = 0; i < count; i++) {
		rr = ldns_rr_list_rr(rrs, i);
		if (ldns_rr_rd_count(rr) < 2)
			continue;
		pref = ldns_rr_rdf(rr, 0);
		exch = ldns_rr_rdf(rr, 1);
		if (ldns_dname_label_count(exch) == 0) {
			nnull++;
			continue;
		}
		mx[*n].pref = ldns_rdf2native_int16(pref);
		dname_string(exch, mx[*n].host, sizeof(mx[*n].host));
		if (mx[*n].host[0] != '\0')
			(*n)++;
	}
	if (rrs != NULL)
		ldns_rr_list_deep_free(rrs);
	ldns_pkt_free(pkt);
	if (nnull > 0 && *n == 0) {
		free(mx);
		set_error(e, "5.1.10", "domain %s does not accept mail "
		    "(nullMX)", domain);
		return (DNS_PERM);
	}
	*out = mx;
	return (DNS_OK);
}

static enum dns_status
lookup_type(struct dns_resolver *dr, const char *host, int port,
    ldns_rr_type type, struct sockaddr_storage **addrs, size_t *n,
    struct lookup_error *e)
{
	ldns_pkt		*pkt;
	ldns_rr_list		*rrs;
	ldns_rdf		*rdf;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	size_t			 i, count;
	enum dns_status		 st;

	if ((st = query(dr, host, type, &pkt, e)) != DNS_OK)
		return (st);
	rrs = ldns_pkt_rr_list_by_type(pkt, type, LDNS_SECTION_ANSWER);
	count = rrs ? ldns_rr_list_rr_count(rrs) : 0;
	if (count > DNS_MAX_RECORDS)
		count = DNS_MAX_RECORDS;
	if (count > 0)
		*addrs = xreallocarray(*addrs, *n + count, sizeof(**addrs));
	for (i = 0; i < count; i++) {
		rdf = ldns_rr_rdf(ldns_rr_list_rr(rrs, i), 0);
		if (rdf == NULL)
			continue;
		memset(&(*addrs)[*n], 0, sizeof(**addrs));
		if (type == LDNS_RR_TYPE_A && ldns_rdf_size(rdf) == 4) {
			sin = (struct sockaddr_in *)&(*addrs)[*n];
			sin->sin_family = AF_INET;
			sin->sin_port = htons(port);
			memcpy(&sin->sin_addr, ldns_rdf_data(rdf), 4);
			(*n)++;
		} else if (type == LDNS_RR_TYPE_AAAA &&
		    ldns_rdf_size(rdf) == 16) {
			sin6 = (struct sockaddr_in6 *)&(*addrs)[*n];
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons(port);
			memcpy(&sin6->sin6_addr, ldns_rdf_data(rdf), 16);
			(*n)++;
		}
	}
	if (rrs != NULL)
		ldns_rr_list_deep_free(rrs);
	ldns_pkt_free(pkt);
	return (DNS_OK);
}

enum dns_status
dns_lookup_addrs(struct dns_resolver *dr, const char *host, int port,
    struct sockaddr_storage **addrs, size_t *n, struct lookup_error *e)
{
	enum dns_status	 st4, st6;
	struct lookup_error e6;

	*addrs = NULL;
	*n = 0;
	st4 = lookup_type(dr, host, port, LDNS_RR_TYPE_A, addrs, n, e);
	if (st4 == DNS_PERM)
		return (DNS_PERM);	/* NXDOMAIN: no AAAA either */
	st6 = lookup_type(dr, host, port, LDNS_RR_TYPE_AAAA, addrs, n, &e6);
	if (*n > 0)
		return (DNS_OK);
	free(*addrs);
	*addrs = NULL;
	if (st4 == DNS_TEMP)
		return (DNS_TEMP);
	if (st6 != DNS_OK) {
		if (e != NULL)
			*e = e6;
		return (st6);
	}
	set_error(e, "5.4.4", "no address record for %s", host);
	return (DNS_OK);
}

int
dns_is_local_address(const struct dns_resolver *dr, const struct sockaddr *sa)
{
	const struct sockaddr_in	*a, *b;
	const struct sockaddr_in6	*a6, *b6;
	size_t				 i;

	for (i = 0; i < dr->nlocal; i++) {
		if (dr->local[i].ss_family != sa->sa_family)
			continue;
		if (sa->sa_family == AF_INET) {
			a = (const struct sockaddr_in *)sa;
			b = (const struct sockaddr_in *)&dr->local[i];
			if (a->sin_addr.s_addr == b->sin_addr.s_addr)
				return (1);
		} else if (sa->sa_family == AF_INET6) {
			a6 = (const struct sockaddr_in6 *)sa;
			b6 = (const struct sockaddr_in6 *)&dr->local[i];
			if (memcmp(&a6->sin6_addr, &b6->sin6_addr, 16) == 0)
				return (1);
		}
	}
	return (0);
}

void
dns_addr_string(const struct sockaddr *sa, char *buf, size_t size)
{
	const void	*p;

	if (sa->sa_family == AF_INET)
		p = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		p = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	else {
		strlcpy(buf, "?", size);
		return;
	}
	if (inet_ntop(sa->sa_family, p, buf, size) == NULL)
		strlcpy(buf, "?", size);
}
