/*
 * check_rules.h - the verdicts of `mxfb check`: pure functions from what
 * DNS, the network or our files showed to a level and a reason (with
 * what to change), unit-tested apart from the lookups (cmd/check.c).
 */
#ifndef MXFB_CHECK_RULES_H
#define MXFB_CHECK_RULES_H

#include <stddef.h>

struct mx_record;
struct mtasts_policy;
struct cert_facts;
struct dns_txt;

/* A finding's level; UNKNOWN: the check could not tell (DNS failure). */
enum check_level {
	CHECK_OK,
	CHECK_WARN,
	CHECK_CRIT,
	CHECK_UNKNOWN
};

/* "OK", "WARN", "CRIT", "UNKNOWN". */
const char *check_level_word(enum check_level);
/* The monitoring-plugin state (PLUGIN_*) of a level. */
int	 check_level_state(enum check_level);

/* Our certificate's expiry: WARN within this many days, CRIT within 3. */
#define CHECK_CERT_WARN_DAYS	14
#define CHECK_CERT_CRIT_DAYS	3

/*
 * The MX set (as dns_lookup_mx gave it; sorted and deduplicated here)
 * against our hostname: OK when we are listed at a worse preference
 * than the best host; CRIT when we are missing, the best or tied with
 * the best, or there is no MX at all (n == 0).
 */
enum check_level check_mx(const char *domain, struct mx_record *, size_t n,
	    const char *ourname, char *reason, size_t);

/*
 * An MTA-STS policy (id from the TXT record) against our hostname:
 * OK when an mx pattern matches (or mode none); otherwise CRIT under
 * enforce, WARN under testing.
 */
enum check_level check_mtasts(const char *domain,
	    const struct mtasts_policy *, const char *id, const char *ourname,
	    char *reason, size_t);

/*
 * Our certificate (tls-cert; facts NULL when none is configured) for
 * hostname: WARN without one; CRIT when its names do not cover
 * hostname or it expires within CHECK_CERT_CRIT_DAYS, WARN within
 * CHECK_CERT_WARN_DAYS, OK otherwise.
 */
enum check_level check_cert(const struct cert_facts *, const char *hostname,
	    char *reason, size_t);

/*
 * The DKIM key record of selector at domain (the TXT records found
 * there, n == 0 for none) against our key (keytype "rsa" or "ed25519",
 * the public key's base64): OK when a record carries that key; CRIT
 * otherwise, with the record to publish.
 */
enum check_level check_dkim(const char *domain, const char *selector,
	    const struct dns_txt *, size_t n, const char *keytype,
	    const char *pub_b64, char *reason, size_t);

/* The SPF result (RFC 7208 2.6) of the domain for one of our addresses. */
struct spf_outcome {
	const char	*addr;		/* "192.0.2.1", "2001:db8::1" */
	const char	*result;	/* "pass", "fail", "softfail", ... */
};

/*
 * The domain's SPF evaluated for each of our sending addresses: OK when
 * every one passes; WARN naming those that do not (with the mechanism
 * to add); UNKNOWN when an evaluation was temperror.
 */
enum check_level check_spf(const char *domain, const struct spf_outcome *,
	    size_t n, char *reason, size_t);

#endif
