/*
 * check_rules.c - the verdicts of `mxfb check` (see check_rules.h).
 *
 * Guarantees: no I/O; every reason fits the caller's buffer (cut, never
 * overflowing) and says what to change when the level is not OK.  Text
 * from DNS is copied raw: the caller escapes it when it prints.
 */
#include <sys/types.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cmd/check_rules.h"
#include "cmd/plugin.h"
#include "core/certfile.h"
#include "core/dkim_record.h"
#include "core/dns.h"
#include "core/dnsrec.h"
#include "core/mtasts.h"
#include "core/mx.h"
#include "core/util.h"

static void	 mx_list(const struct mx_record *, size_t, char *, size_t);

const char *
check_level_word(enum check_level l)
{
	switch (l) {
	case CHECK_OK:
		return ("OK");
	case CHECK_WARN:
		return ("WARN");
	case CHECK_CRIT:
		return ("CRIT");
	default:
		return ("UNKNOWN");
	}
}

int
check_level_state(enum check_level l)
{
	switch (l) {
	case CHECK_OK:
		return (PLUGIN_OK);
	case CHECK_WARN:
		return (PLUGIN_WARNING);
	case CHECK_CRIT:
		return (PLUGIN_CRITICAL);
	default:
		return (PLUGIN_UNKNOWN);
	}
}

/* "a.example (10), b.example (20)", cut to fit. */
static void
mx_list(const struct mx_record *mx, size_t n, char *buf, size_t size)
{
	char	 one[DOMAIN_NAME_SIZE + 16];
	size_t	 i;

	buf[0] = '\0';
	for (i = 0; i < n && i < 8; i++) {
		(void)snprintf(one, sizeof(one), "%s%s (%u)", i > 0 ? ", " :
		    "", mx[i].host, mx[i].pref);
		(void)strlcat(buf, one, size);
	}
	if (n > 8)
		(void)strlcat(buf, ", ...", size);
}

enum check_level
check_mx(const char *domain, struct mx_record *mx, size_t n,
    const char *ourname, char *reason, size_t size)
{
	char		 list[700];
	size_t		 i, ours = n, tied = n;

	if (n == 0) {
		(void)snprintf(reason, size, "%s has no MX records (mail "
		    "goes to its address records, never to us); publish "
		    "MX records for the primary and, at a higher preference "
		    "value, %s", domain, ourname);
		return (CHECK_CRIT);
	}
	n = mx_sort(mx, n);
	mx_list(mx, n, list, sizeof(list));
	for (i = 0; i < n; i++)
		if (strcasecmp(mx[i].host, ourname) == 0) {
			ours = i;
			break;
		}
	if (ours == n) {
		(void)snprintf(reason, size, "%s is not among the MX hosts "
		    "(%s): senders never come here; add \"%s. MX %u %s.\"",
		    ourname, list, domain, mx[n - 1].pref + 10, ourname);
		return (CHECK_CRIT);
	}
	for (i = 0; i < n; i++)
		if (i != ours && mx[i].pref == mx[ours].pref)
			tied = i;
	if (mx[ours].pref == mx[0].pref && tied != n) {
		(void)snprintf(reason, size, "%s is tied with %s at "
		    "preference %u (%s): senders pick either at random; give "
		    "%s a higher preference value than the primary", ourname,
		    mx[tied].host, mx[ours].pref, list, ourname);
		return (CHECK_CRIT);
	}
	if (mx[ours].pref == mx[0].pref) {
		(void)snprintf(reason, size, "%s is the best MX (%s): all "
		    "mail comes here first and has no primary to go to; give "
		    "the primary a lower preference value than %u", ourname,
		    list, mx[ours].pref);
		return (CHECK_CRIT);
	}
	(void)snprintf(reason, size, "%s at preference %u behind %s (%u)",
	    ourname, mx[ours].pref, mx[0].host, mx[0].pref);
	return (CHECK_OK);
}

enum check_level
check_mtasts(const char *domain, const struct mtasts_policy *p,
    const char *id, const char *ourname, char *reason, size_t size)
{
	char		 list[600], one[DOMAIN_NAME_SIZE + 4];
	size_t		 i;

	list[0] = '\0';
	for (i = 0; i < p->nmx; i++) {
		if (mtasts_mx_match(p->mx[i], ourname)) {
			(void)snprintf(reason, size, "policy id %s, mode %s, "
			    "max_age %ld: mx %s matches %s", id,
			    mtasts_mode_name(p->mode), p->max_age, p->mx[i],
			    ourname);
			return (CHECK_OK);
		}
		(void)snprintf(one, sizeof(one), "%s%s", i > 0 ? ", " : "",
		    p->mx[i]);
		(void)strlcat(list, one, sizeof(list));
	}
	if (p->mode == MTASTS_MODE_NONE) {
		(void)snprintf(reason, size, "policy id %s, mode none: "
		    "senders do not apply it", id);
		return (CHECK_OK);
	}
	(void)snprintf(reason, size, "policy id %s, mode %s: no mx pattern "
	    "(%s) matches %s: %s; add \"mx: %s\" to "
	    "https://mta-sts.%s/.well-known/mta-sts.txt and change the id "
	    "of _mta-sts.%s", id, mtasts_mode_name(p->mode), list, ourname,
	    p->mode == MTASTS_MODE_ENFORCE ? "enforcing senders will not "
	    "hand us mail" : "testing senders report failures", ourname,
	    domain, domain);
	return (p->mode == MTASTS_MODE_ENFORCE ? CHECK_CRIT : CHECK_WARN);
}

enum check_level
check_cert(const struct cert_facts *f, const char *hostname, char *reason,
    size_t size)
{
	if (f == NULL) {
		(void)snprintf(reason, size, "no tls-cert: senders get no "
		    "STARTTLS, and those enforcing MTA-STS or DANE will not "
		    "use us; set tls-cert and tls-key");
		return (CHECK_WARN);
	}
	if (!f->covers) {
		(void)snprintf(reason, size, "the certificate's names (%s) "
		    "do not cover %s: verifying senders refuse it; get one "
		    "for %s", f->names, hostname, hostname);
		return (CHECK_CRIT);
	}
	if (f->expiry_days < 0) {
		(void)snprintf(reason, size, "the certificate for %s expired "
		    "%s; renew it", hostname, f->not_after);
		return (CHECK_CRIT);
	}
	if (f->expiry_days <= CHECK_CERT_WARN_DAYS) {
		(void)snprintf(reason, size, "the certificate for %s expires "
		    "in %ld days (%s); renew it", hostname, f->expiry_days,
		    f->not_after);
		return (f->expiry_days <= CHECK_CERT_CRIT_DAYS ? CHECK_CRIT :
		    CHECK_WARN);
	}
	(void)snprintf(reason, size, "the certificate covers %s, expires in "
	    "%ld days (%s)", hostname, f->expiry_days, f->not_after);
	return (CHECK_OK);
}

enum check_level
check_dkim(const char *domain, const char *selector, const struct dns_txt *t,
    size_t n, const char *keytype, const char *pub_b64, char *reason,
    size_t size)
{
	struct dkim_key_record	 r;
	char			 why[128], publish[DKIM_RECORD_KEY_MAX + 400];
	const char		*found = NULL;
	size_t			 i;

	(void)snprintf(publish, sizeof(publish), "publish \"%s._domainkey."
	    "%s. TXT \\\"v=DKIM1; k=%s; p=%s\\\"\"", selector, domain,
	    keytype, pub_b64);
	for (i = 0; i < n; i++) {
		if (dkim_record_parse(t[i].text, t[i].len, &r, why,
		    sizeof(why)) == -1) {
			found = why;
			continue;
		}
		if (strcasecmp(r.k, keytype) == 0 && strcmp(r.p,
		    pub_b64) == 0) {
			(void)snprintf(reason, size, "%s._domainkey.%s "
			    "carries our %s key", selector, domain, keytype);
			return (CHECK_OK);
		}
		found = r.p[0] == '\0' ? "the key is revoked (empty p=)" :
		    "it carries another key";
	}
	if (found == NULL)
		(void)snprintf(reason, size, "no DKIM key record at "
		    "%s._domainkey.%s: receivers cannot verify our "
		    "signatures; %s", selector, domain, publish);
	else
		(void)snprintf(reason, size, "%s._domainkey.%s does not "
		    "carry our key (%s); %s", selector, domain, found, publish);
	return (CHECK_CRIT);
}

enum check_level
check_spf(const char *domain, const struct spf_outcome *o, size_t n,
    char *reason, size_t size)
{
	char		 bad[600], add[600], one[160];
	size_t		 i;
	int		 temp = 0;

	bad[0] = add[0] = '\0';
	for (i = 0; i < n; i++) {
		if (strcmp(o[i].result, "pass") == 0)
			continue;
		if (strcmp(o[i].result, "temperror") == 0)
			temp = 1;
		(void)snprintf(one, sizeof(one), "%s%s (%s)", bad[0] ? ", " :
		    "", o[i].addr, o[i].result);
		(void)strlcat(bad, one, sizeof(bad));
		(void)snprintf(one, sizeof(one), " %s:%s",
		    strchr(o[i].addr, ':') != NULL ? "ip6" : "ip4", o[i].addr);
		(void)strlcat(add, one, sizeof(add));
	}
	if (bad[0] == '\0') {
		(void)snprintf(reason, size, "the SPF record of %s passes "
		    "our %zu address%s", domain, n, n == 1 ? "" : "es");
		return (CHECK_OK);
	}
	if (temp) {
		(void)snprintf(reason, size, "the SPF record of %s could not "
		    "be evaluated for %s", domain, bad);
		return (CHECK_UNKNOWN);
	}
	(void)snprintf(reason, size, "the SPF record of %s does not pass %s: "
	    "mail we submit for %s may be rejected; add%s to it", domain,
	    bad, domain, add);
	return (CHECK_WARN);
}
