/*
 * spf.h - an SPF evaluator (RFC 7208 check_host()) for `mxfb check`:
 * does the domain's SPF record authorize one of our addresses to send
 * its mail?  DNS goes through a lookup function (spf_dns_lookup for
 * the configured resolver; tests pass a fake), so the evaluation itself
 * never touches the network.
 */
#ifndef MXFB_SPF_H
#define MXFB_SPF_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stddef.h>

#include "core/dns.h"

/* RFC 7208 2.6. */
enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR
};

/* What a lookup asks for. */
enum spf_type {
	SPF_TXT,
	SPF_A,
	SPF_AAAA,
	SPF_MX,
	SPF_PTR
};

/* Records kept from one answer. */
#define SPF_RR_MAX	32
/* The limits of RFC 7208 4.6.4. */
#define SPF_MAX_TERMS	10	/* DNS-querying terms */
#define SPF_MAX_VOID	2	/* lookups that found nothing */
#define SPF_MAX_NAMES	10	/* MX or PTR names looked at */
/* The longest macro expansion (past it: permerror). */
#define SPF_EXPAND_MAX	2048

/* One record of an answer. */
struct spf_rr {
	unsigned char	 addr[16];	/* A: the first 4 bytes; AAAA */
	char		*text;		/* TXT (may hold any byte), MX
					 * exchange or PTR name (lower
					 * case, no final dot); malloc'd */
	size_t		 len;		/* of text */
};

struct spf_rrset {
	struct spf_rr	 rr[SPF_RR_MAX];
	size_t		 n;
};

/*
 * The records of one type at name (no final dot; for SPF_PTR the
 * in-addr.arpa/ip6.arpa name) into set (empty on entry; the evaluator
 * frees the texts).  DNS_OK with n == 0: no such records; DNS_PERM:
 * the name does not exist; DNS_TEMP: no usable answer.
 */
typedef enum dns_status (*spf_lookup_fn)(void *, const char *,
	    enum spf_type, struct spf_rrset *);

/*
 * check_host(ip, domain, sender) of RFC 7208 4 for the client address
 * sa (AF_INET or AF_INET6), with helo as %{h}.  why (when not NULL)
 * says which term decided or what went wrong (text from DNS in it is
 * not escaped).
 */
enum spf_result spf_check_host(spf_lookup_fn, void *arg,
	    const struct sockaddr *sa, const char *domain, const char *sender,
	    const char *helo, char *why, size_t whysize);

/* "pass", "fail", "softfail", "neutral", "none", ... */
const char	*spf_result_word(enum spf_result);

/*
 * Expand the macro-string s (RFC 7208 7) for a client address, sender
 * and current domain into out: 0, or -1 on a syntax error or when the
 * expansion is longer than SPF_EXPAND_MAX (why says which).  The
 * letters c, r and t (explanations only) and p (discouraged; it
 * expands to "unknown") are accepted when exp is set, p always.
 */
int	 spf_expand(const char *s, size_t len, const struct sockaddr *sa,
	    const char *sender, const char *domain, const char *helo,
	    int exp, char *out, size_t outsize, char *why, size_t whysize);

/*
 * Is the record (one TXT string) a syntactically valid SPF record?
 * 0, or -1 with why.  The evaluator checks this before using a record.
 */
int	 spf_record_check(const char *rec, size_t len, char *why,
	    size_t whysize);

/* spf_lookup_fn through core/dns.c: arg is a struct dns_resolver *. */
enum dns_status spf_dns_lookup(void *, const char *, enum spf_type,
	    struct spf_rrset *);

void	 spf_rrset_clear(struct spf_rrset *);

#endif
