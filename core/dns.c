/*
 * dns.c - MX and address lookups through ldns.
 *
 * Guarantees: no lookup blocks longer than dns-timeout x dns-retry per
 * server (ldns' own default of 5 s x 3 is never used), nor past the
 * deadline a caller set for a series of lookups; NXDOMAIN and a Null MX
 * are the only permanent answers, anything else that is not a clean
 * answer (SERVFAIL, REFUSED, no reply, a malformed reply, a CNAME chain
 * longer than DNS_MAX_CNAME or a loop) is temporary.  ldns reports
 * NXDOMAIN and SERVFAIL as LDNS_STATUS_OK, so the rcode is checked on
 * every reply.  Only records owned by the name asked for, or by the end
 * of its CNAME chain in the answer, count (a host that is a CNAME is
 * tolerated, as resolvers do); MX exchanges that are no host name
 * (spaces, NUL, bytes above 0x7f, escapes: Postfix's "malformed domain
 * name") are skipped.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ldns/ldns.h>

#include "core/config.h"
#include "core/dns.h"
#include "core/log.h"
#include "core/util.h"

#define DNS_MAX_RECORDS	64	/* addresses taken from one answer */
#define DNS_MAX_CNAME	8	/* CNAME links followed in one answer */

struct dns_resolver {
	ldns_resolver		*res;
	struct sockaddr_storage	*local;		/* this machine's addresses */
	size_t			 nlocal;
	struct timeval		 timeout;	/* dns-timeout */
	int64_t			 deadline;	/* monotonic ms, 0: none */
	int			 unanswered;	/* the last query: no reply */
};

static int	 push_server(ldns_resolver *, const struct hostport *);
static void	 load_local_addresses(struct dns_resolver *);
static enum dns_status send_query(struct dns_resolver *, const char *,
		    ldns_rr_type, ldns_pkt **, struct lookup_error *);
static enum dns_status query(struct dns_resolver *, const char *,
		    ldns_rr_type, ldns_pkt **, struct lookup_error *);
static int	 dname_string(const ldns_rdf *, char *, size_t);
static int	 host_name(const char *);
static int	 set_query_timeout(struct dns_resolver *,
		    struct lookup_error *);
static enum dns_status answer_records(ldns_pkt *, const char *, ldns_rr_type,
		    ldns_rr_list **, struct lookup_error *);
static const char *qtype_name(ldns_rr_type);
static enum dns_status lookup_type(struct dns_resolver *, const char *, int,
		    ldns_rr_type, struct sockaddr_storage **, size_t *,
		    struct lookup_error *);

void
lookup_error_set(struct lookup_error *e, const char *dsn, const char *fmt,
    ...)
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
	/* Answers that only fit over TCP: ldns asks again over TCP. */
	ldns_resolver_set_fallback(res, true);

	dr = xcalloc(1, sizeof(*dr));
	dr->res = res;
	dr->timeout = tv;
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
	case LDNS_RR_TYPE_TLSA:
		return ("TLSA");
	default:
		return ("?");
	}
}

void
dns_set_deadline(struct dns_resolver *dr, int64_t ms)
{
	dr->deadline = ms > 0 ? now_ms() + ms : 0;
}

int
dns_deadline_passed(const struct dns_resolver *dr)
{
	return (dr->deadline != 0 && now_ms() >= dr->deadline);
}

int64_t
dns_query_time(const struct dns_resolver *dr)
{
	size_t	 n = ldns_resolver_nameserver_count(dr->res);

	return (((int64_t)dr->timeout.tv_sec * 1000 +
	    dr->timeout.tv_usec / 1000) * ldns_resolver_retry(dr->res) *
	    (int64_t)(n > 0 ? n : 1));
}

/*
 * Before each query: every server is worth asking again (ldns skips a
 * server for good once it timed out), and the wait per attempt shrinks
 * so that all attempts end by the deadline.  -1: the deadline passed.
 */
static int
set_query_timeout(struct dns_resolver *dr, struct lookup_error *e)
{
	struct timeval	 tv = dr->timeout;
	int64_t		 left, per, attempts;
	size_t		 i, n = ldns_resolver_nameserver_count(dr->res);

	for (i = 0; i < n; i++)
		ldns_resolver_set_nameserver_rtt(dr->res, i,
		    LDNS_RESOLV_RTT_MIN);
	if (dr->deadline != 0) {
		left = dr->deadline - now_ms();
		if (left <= 0) {
			lookup_error_set(e, "4.4.3", "DNS lookups took too "
			    "long (the time limit of one route)");
			return (-1);
		}
		attempts = (int64_t)ldns_resolver_retry(dr->res) *
		    (int64_t)(n > 0 ? n : 1);
		per = left / (attempts > 0 ? attempts : 1);
		if (per < 50)
			per = 50;
		if (per < (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000) {
			tv.tv_sec = per / 1000;
			tv.tv_usec = (per % 1000) * 1000;
		}
	}
	ldns_resolver_set_timeout(dr->res, tv);
	return (0);
}

/*
 * Send one query and wait for its reply, with the set-up every query
 * here has (set_query_timeout).  DNS_OK: *pktp holds a reply, whatever
 * its rcode.
 */
static enum dns_status
send_query(struct dns_resolver *dr, const char *name, ldns_rr_type type,
    ldns_pkt **pktp, struct lookup_error *e)
{
	ldns_rdf	*dname;
	ldns_pkt	*pkt = NULL;
	ldns_status	 st;

	*pktp = NULL;
	dr->unanswered = 0;
	if ((dname = ldns_dname_new_frm_str(name)) == NULL) {
		lookup_error_set(e, "5.1.2", "bad domain name %s", name);
		return (DNS_PERM);
	}
	if (set_query_timeout(dr, e) == -1) {
		ldns_rdf_deep_free(dname);
		dr->unanswered = 1;
		return (DNS_TEMP);
	}
	st = ldns_resolver_send(&pkt, dr->res, dname, type, LDNS_RR_CLASS_IN,
	    LDNS_RD);
	ldns_rdf_deep_free(dname);
	if (st != LDNS_STATUS_OK || pkt == NULL) {
		dr->unanswered = 1;
		if (pkt != NULL)
			ldns_pkt_free(pkt);
		lookup_error_set(e, "4.4.3", "DNS lookup of %s type=%s: %s",
		    name, qtype_name(type), ldns_get_errorstr_by_id(st));
		return (DNS_TEMP);
	}
	*pktp = pkt;
	return (DNS_OK);
}

/* A reply with NOERROR, or why not: NXDOMAIN is permanent. */
static enum dns_status
query(struct dns_resolver *dr, const char *name, ldns_rr_type type,
    ldns_pkt **pktp, struct lookup_error *e)
{
	ldns_pkt	*pkt;
	ldns_pkt_rcode	 rcode;
	enum dns_status	 st;

	if ((st = send_query(dr, name, type, pktp, e)) != DNS_OK)
		return (st);
	pkt = *pktp;
	rcode = ldns_pkt_get_rcode(pkt);
	if (rcode == LDNS_RCODE_NXDOMAIN) {
		ldns_pkt_free(pkt);
		*pktp = NULL;
		lookup_error_set(e, "5.1.2", "Host or domain name not found. "
		    "Name service error for name=%s type=%s: Host not found",
		    name, qtype_name(type));
		return (DNS_PERM);
	}
	if (rcode != LDNS_RCODE_NOERROR) {
		ldns_pkt_free(pkt);
		*pktp = NULL;
		lookup_error_set(e, "4.4.3", "Host or domain name not found. "
		    "Name service error for name=%s type=%s: %s", name,
		    qtype_name(type), rcode == LDNS_RCODE_SERVFAIL ?
		    "Host not found, try again" : rcode ==
		    LDNS_RCODE_REFUSED ? "query refused" : "server error");
		return (DNS_TEMP);
	}
	return (DNS_OK);
}

enum dns_status
dns_query_secure(struct dns_resolver *dr, const char *name, int type,
    ldns_pkt **pktp, struct lookup_error *e)
{
	enum dns_status	 st;

	/* The DO bit: a validating resolver then reports AD. */
	ldns_resolver_set_dnssec(dr->res, true);
	st = send_query(dr, name, (ldns_rr_type)type, pktp, e);
	ldns_resolver_set_dnssec(dr->res, false);
	return (st);
}

/* The name in lower case without its final dot; -1 if it does not fit. */
static int
dname_string(const ldns_rdf *rdf, char *buf, size_t size)
{
	char	*s;
	size_t	 len;

	buf[0] = '\0';
	if ((s = ldns_rdf2str(rdf)) == NULL)
		return (-1);
	len = strlcpy(buf, s, size);
	free(s);
	if (len >= size) {
		buf[0] = '\0';
		return (-1);
	}
	if (len > 0 && buf[len - 1] == '.')
		buf[len - 1] = '\0';
	ascii_lower(buf);
	return (0);
}

/*
 * Could a host have this name (as ldns prints it)?  Letters, digits,
 * hyphens and underscores in non-empty labels; ldns prints any other
 * byte escaped, so a backslash is enough to refuse the rest.
 */
static int
host_name(const char *s)
{
	const char	*p;
	size_t		 label = 0;

	if (*s == '\0')
		return (0);
	for (p = s; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0)
				return (0);
			label = 0;
		} else if ((*p >= 'a' && *p <= 'z') || (*p >= '0' &&
		    *p <= '9') || *p == '-' || *p == '_')
			label++;
		else
			return (0);
	}
	return (label > 0);
}

/*
 * The records of type that answer name: those of the name itself or of
 * the end of its CNAME chain in the answer section (at most
 * DNS_MAX_CNAME links; a longer chain or a loop is DNS_TEMP).  The
 * list's records belong to the packet (free it with ldns_rr_list_free).
 */
static enum dns_status
answer_records(ldns_pkt *pkt, const char *name, ldns_rr_type type,
    ldns_rr_list **out, struct lookup_error *e)
{
	ldns_rr_list	*answer = ldns_pkt_answer(pkt), *list;
	ldns_rr		*rr;
	ldns_rdf	*qname, *owner;
	char		 abs[1100];
	size_t		 i, count, links;
	int		 found;

	*out = NULL;
	snprintf(abs, sizeof(abs), "%s%s", name, name[0] != '\0' &&
	    name[strlen(name) - 1] == '.' ? "" : ".");
	if ((qname = ldns_dname_new_frm_str(abs)) == NULL) {
		lookup_error_set(e, "5.1.2", "bad domain name %s", name);
		return (DNS_PERM);
	}
	count = answer != NULL ? ldns_rr_list_rr_count(answer) : 0;
	owner = qname;
	for (links = 0;; links++) {
		found = 0;
		for (i = 0; i < count && !found; i++) {
			rr = ldns_rr_list_rr(answer, i);
			if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_CNAME ||
			    ldns_rr_rd_count(rr) < 1 ||
			    ldns_dname_compare(ldns_rr_owner(rr), owner) != 0)
				continue;
			owner = ldns_rr_rdf(rr, 0);
			found = 1;
		}
		if (!found)
			break;
		if (links == DNS_MAX_CNAME) {
			ldns_rdf_deep_free(qname);
			lookup_error_set(e, "4.4.3", "DNS lookup of %s "
			    "type=%s: CNAME chain longer than %d links, or a "
			    "CNAME loop", name, qtype_name(type),
			    DNS_MAX_CNAME);
			return (DNS_TEMP);
		}
	}
	if ((list = ldns_rr_list_new()) == NULL) {
		ldns_rdf_deep_free(qname);
		lookup_error_set(e, "4.4.3", "DNS lookup of %s: out of memory",
		    name);
		return (DNS_TEMP);
	}
	for (i = 0; i < count; i++) {
		rr = ldns_rr_list_rr(answer, i);
		if (ldns_rr_get_type(rr) == type &&
		    ldns_dname_compare(ldns_rr_owner(rr), owner) == 0)
			ldns_rr_list_push_rr(list, rr);
	}
	ldns_rdf_deep_free(qname);
	*out = list;
	return (DNS_OK);
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
	size_t		 i, count, nnull = 0, nbad = 0;
	enum dns_status	 st;

	*out = NULL;
	*n = 0;
	if ((st = query(dr, domain, LDNS_RR_TYPE_MX, &pkt, e)) != DNS_OK)
		return (st);
	if ((st = answer_records(pkt, domain, LDNS_RR_TYPE_MX, &rrs, e)) !=
	    DNS_OK) {
		ldns_pkt_free(pkt);
		return (st);
	}
	/*
	 * Every record, however many (a packet holds a few thousand at
	 * most): our own entry may be the last, and the caller must see it.
	 */
	count = ldns_rr_list_rr_count(rrs);
	mx = xcalloc(count ? count : 1, sizeof(*mx));
	for (i = 0; i < count; i++) {
		rr = ldns_rr_list_rr(rrs, i);
		if (ldns_rr_rd_count(rr) < 2)
			continue;
		pref = ldns_rr_rdf(rr, 0);
		exch = ldns_rr_rdf(rr, 1);
		if (ldns_rdf_get_type(pref) != LDNS_RDF_TYPE_INT16 ||
		    ldns_rdf_get_type(exch) != LDNS_RDF_TYPE_DNAME) {
			nbad++;
			continue;
		}
		if (ldns_dname_label_count(exch) == 0) {
			nnull++;
			continue;
		}
		mx[*n].pref = ldns_rdf2native_int16(pref);
		mx[*n].self = 0;
		if (dname_string(exch, mx[*n].host, sizeof(mx[*n].host)) ==
		    -1 || !host_name(mx[*n].host)) {
			nbad++;
			continue;
		}
		(*n)++;
	}
	ldns_rr_list_free(rrs);
	ldns_pkt_free(pkt);
	if (nbad > 0)
		log_warnx("%s: %zu MX record%s with a malformed host name "
		    "skipped", domain, nbad, nbad == 1 ? "" : "s");
	if (nnull > 0 && *n == 0) {
		free(mx);
		lookup_error_set(e, "5.1.10", "domain %s does not accept mail "
		    "(nullMX)", domain);
		return (DNS_PERM);
	}
	if (nbad > 0 && *n == 0) {
		/* MX records, none usable: not the implicit MX. */
		free(mx);
		lookup_error_set(e, "4.4.3", "malformed domain name in every "
		    "MX record of %s", domain);
		return (DNS_TEMP);
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
	if ((st = answer_records(pkt, host, type, &rrs, e)) != DNS_OK) {
		ldns_pkt_free(pkt);
		return (st);
	}
	count = ldns_rr_list_rr_count(rrs);
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
	ldns_rr_list_free(rrs);
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
	if (st4 == DNS_TEMP && dr->unanswered)
		return (DNS_TEMP);	/* silence: do not wait twice */
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
	lookup_error_set(e, "5.4.4", "no address record for %s", host);
	return (DNS_OK);
}

/*
 * Ours: an interface address as getifaddrs lists it (127.0.0.1 is,
 * 127.0.0.2 is not unless an interface has it), the same in IPv4-mapped
 * IPv6 form, and the unspecified address (a connection to 0.0.0.0 or ::
 * reaches this host).
 */
int
dns_is_local_address(const struct dns_resolver *dr, const struct sockaddr *sa)
{
	const struct sockaddr_in	*a, *b;
	const struct sockaddr_in6	*a6, *b6;
	struct sockaddr_in		 v4;
	size_t				 i;

	if (sa->sa_family == AF_INET6) {
		a6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr))
			return (1);
		if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
			memset(&v4, 0, sizeof(v4));
			v4.sin_family = AF_INET;
			memcpy(&v4.sin_addr, &a6->sin6_addr.s6_addr[12], 4);
			return (dns_is_local_address(dr,
			    (const struct sockaddr *)&v4));
		}
	} else if (sa->sa_family == AF_INET) {
		a = (const struct sockaddr_in *)sa;
		if (a->sin_addr.s_addr == htonl(INADDR_ANY))
			return (1);
	}
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
