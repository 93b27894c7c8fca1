/*
 * check.c - `mxfb check [-j] [-t seconds] [DOMAIN...]`: is each relay
 * domain set up so that senders reach us?  For each relay domain (or the
 * relay domains named; another name is a usage error), from DNS (the
 * configured resolver), the network and our own files, one finding per
 * line:
 *
 *   LEVEL DOMAIN CHECK: REASON[; WHAT TO CHANGE]
 *
 * LEVEL OK, WARN or CRIT (UNKNOWN when a lookup failed and the check
 * could not tell); CHECK one of mx, address, primary, mta-sts, dane,
 * cert, spf (with users; core/spf.c evaluates SPF; the verdicts are in
 * check_rules.c).  The first line is a monitoring plugin's
 * (cmd/plugin.h, shared with probe): "MXFB
 * OK|WARNING|CRITICAL|UNKNOWN - SUMMARY | PERFDATA", SUMMARY naming the
 * checks that are not OK per domain, PERFDATA the primaries' connect
 * and greeting latencies.  -j prints one JSON object per finding
 * instead, {"domain","check","level","reason"}, and no first line.
 * Exit status: 0 all OK, 1 some WARN, 2 some CRIT, 3 some check could
 * not tell; CRITICAL outranks UNKNOWN outranks WARNING.
 *
 * Text from DNS and from peers is escaped as status escapes it
 * (cmd/text_out.c) wherever it is printed.  Nothing is written: the
 * primary record is probe's.  Each network wait is capped by -t
 * (default 10 s).
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd/check_rules.h"
#include "cmd/cmd.h"
#include "cmd/plugin.h"
#include "cmd/probe.h"
#include "cmd/text_out.h"
#include "core/certfile.h"
#include "core/config.h"
#include "core/dkim.h"
#include "core/dns.h"
#include "core/dnsrec.h"
#include "core/log.h"
#include "core/mail/address.h"
#include "core/mtasts.h"
#include "core/mx.h"
#include "core/spf.h"
#include "core/starttls.h"
#include "core/tlsa.h"
#include "core/util.h"
#include "spool/spool.h"

#define USAGE		"mxfb check [-C file] [-j] [-t seconds] [domain ...]"
#define CHECK_TIMEOUT	10	/* default cap on each wait */
#define REASON_MAX	4096

struct finding {
	enum check_level level;
	char		 domain[DOMAIN_NAME_SIZE];
	char		 check[16];
	char		*reason;
};

struct check_run {
	struct dns_resolver	*dr;
	struct plugin_out	 po;
	struct finding		*f;
	size_t			 nf;
	time_t			 cap;
	int			 json;
};

static void	 add(struct check_run *, const char *, const char *,
		    enum check_level, const char *, ...)
		    __attribute__((__format__(__printf__, 5, 6)));
static void	 check_mx_set(struct check_run *, const char *);
static void	 check_address(struct check_run *, const char *);
static void	 check_fcrdns(struct check_run *, const char *,
		    const struct sockaddr_storage *);
static int	 resolves_to(struct check_run *, const char *,
		    const struct sockaddr_storage *);
static void	 check_primaries(struct check_run *, const char *);
static void	 check_primary(struct check_run *, const char *,
		    const struct mx_target *, struct starttls_contexts *);
static void	 check_mta_sts(struct check_run *, const char *);
static void	 check_policy(struct check_run *, const char *, const char *);
static void	 check_dane(struct check_run *, const char *);
static void	 check_our_cert(struct check_run *, const char *);
static void	 check_dkim_keys(struct check_run *, const char *);
static void	 check_dkim_key(struct check_run *, const char *,
		    const struct dkim_key *);
static void	 check_spf_record(struct check_run *, const char *);
static void	 check_domain(struct check_run *, const char *);
static int	 check_options(int, char **, struct check_run *);
static int	 check_targets(int, char **, char ***, size_t *);
static int	 summarize(struct check_run *, char **, size_t);
static void	 print_findings(const struct check_run *, FILE *);

static void
add(struct check_run *run, const char *domain, const char *check,
    enum check_level level, const char *fmt, ...)
{
	struct finding	*f;
	va_list		 ap;

	run->f = xreallocarray(run->f, run->nf + 1, sizeof(*run->f));
	f = &run->f[run->nf++];
	memset(f, 0, sizeof(*f));
	f->level = level;
	(void)strlcpy(f->domain, domain, sizeof(f->domain));
	(void)strlcpy(f->check, check, sizeof(f->check));
	f->reason = xmalloc(REASON_MAX);
	va_start(ap, fmt);
	(void)vsnprintf(f->reason, REASON_MAX, fmt, ap);
	va_end(ap);
}

/* mx: our place in the domain's MX set. */
static void
check_mx_set(struct check_run *run, const char *domain)
{
	struct mx_record	*mx = NULL;
	struct lookup_error	 e;
	char			 reason[2048];
	size_t			 n = 0;
	enum dns_status		 st;
	enum check_level	 l;

	memset(&e, 0, sizeof(e));
	st = dns_lookup_mx(run->dr, domain, &mx, &n, &e);
	if (st == DNS_PERM) {
		add(run, domain, "mx", CHECK_CRIT, "%s%s", e.text,
		    strcmp(e.dsn, "5.1.10") == 0 ? " (Null MX): senders "
		    "send nothing, to us neither; replace the Null MX with "
		    "MX records for the primary and us" : "; create the "
		    "domain's MX records");
		return;
	}
	if (st != DNS_OK) {
		add(run, domain, "mx", CHECK_UNKNOWN, "%s", e.text);
		return;
	}
	l = check_mx(domain, mx, n, cfg->hostname, reason, sizeof(reason));
	add(run, domain, "mx", l, "%s", reason);
	free(mx);
}

/* Does name resolve to the address sa? -1 when DNS could not tell. */
static int
resolves_to(struct check_run *run, const char *name,
    const struct sockaddr_storage *sa)
{
	struct sockaddr_storage	*a = NULL;
	struct lookup_error	 e;
	char			 x[64], y[64];
	size_t			 n = 0, i;
	enum dns_status		 st;
	int			 found = 0;

	st = dns_lookup_addrs(run->dr, name, 25, &a, &n, &e);
	if (st == DNS_TEMP)
		return (-1);
	dns_addr_string((const struct sockaddr *)sa, x, sizeof(x));
	for (i = 0; i < n && !found; i++) {
		dns_addr_string((const struct sockaddr *)&a[i], y, sizeof(y));
		found = strcmp(x, y) == 0;
	}
	free(a);
	return (found);
}

/* address: forward-confirmed reverse DNS of one of our addresses. */
static void
check_fcrdns(struct check_run *run, const char *domain,
    const struct sockaddr_storage *sa)
{
	char			 (*ptr)[DOMAIN_NAME_SIZE * 4] = NULL;
	struct lookup_error	 e;
	char			 ip[64];
	const char		*whose;
	size_t			 n = 0, i;
	enum dns_status		 st;
	int			 r, ours, confirmed = -1, temp = 0;

	dns_addr_string((const struct sockaddr *)sa, ip, sizeof(ip));
	ours = dns_is_local_address(run->dr, (const struct sockaddr *)sa);
	whose = ours ? "this host" : "NOT an address of this host";
	memset(&e, 0, sizeof(e));
	st = dns_lookup_ptr(run->dr, (const struct sockaddr *)sa, &ptr, &n,
	    &e);
	if (st == DNS_TEMP) {
		add(run, domain, "address", CHECK_UNKNOWN, "%s %s (%s): %s",
		    cfg->hostname, ip, whose, e.text);
		free(ptr);
		return;
	}
	for (i = 0; i < n && confirmed < 0; i++) {
		if ((r = resolves_to(run, ptr[i], sa)) == 1)
			confirmed = (int)i;
		else if (r == -1)
			temp = 1;
	}
	if (n == 0)
		add(run, domain, "address", CHECK_WARN, "%s %s (%s) has no "
		    "PTR record: receivers distrust mail from it; ask for "
		    "the PTR of %s to be %s", cfg->hostname, ip, whose, ip,
		    cfg->hostname);
	else if (confirmed >= 0)
		add(run, domain, "address", ours ? CHECK_OK : CHECK_WARN,
		    "%s %s (%s), PTR %s confirmed%s", cfg->hostname, ip,
		    whose, ptr[confirmed], ours ? "" : "; point the "
		    "hostname's A/AAAA records at this host");
	else
		add(run, domain, "address", temp ? CHECK_UNKNOWN :
		    CHECK_WARN, "%s %s (%s): its PTR %s does not resolve "
		    "back to %s%s", cfg->hostname, ip, whose, ptr[0], ip,
		    temp ? " (lookup failed)" : "; make the PTR name's "
		    "A/AAAA record include it, or the PTR name our hostname");
	free(ptr);
}

/* address: our hostname's addresses, each of this host, with FCrDNS. */
static void
check_address(struct check_run *run, const char *domain)
{
	struct sockaddr_storage	*a = NULL;
	struct lookup_error	 e;
	size_t			 n = 0, i;
	enum dns_status		 st;

	memset(&e, 0, sizeof(e));
	st = dns_lookup_addrs(run->dr, cfg->hostname, 25, &a, &n, &e);
	if (st == DNS_TEMP)
		add(run, domain, "address", CHECK_UNKNOWN, "%s", e.text);
	else if (n == 0)
		add(run, domain, "address", CHECK_CRIT, "%s has no A or AAAA "
		    "record: senders cannot reach us; publish the addresses "
		    "of this host for it", cfg->hostname);
	for (i = 0; i < n; i++)
		check_fcrdns(run, domain, &a[i]);
	free(a);
}

/* primary: one primary host, probed as probe does it. */
static void
check_primary(struct check_run *run, const char *domain,
    const struct mx_target *t, struct starttls_contexts *tls)
{
	struct probe_result	 r;
	struct primary_obs	 obs;
	enum tls_level		 level;

	memset(&obs, 0, sizeof(obs));
	level = config_tls_level(cfg, domain);
	if (level < TLS_LEVEL_MAY)
		level = TLS_LEVEL_MAY;	/* to see its certificate */
	(void)probe_host_run(t, domain, level, run->cap, tls, NULL, &r,
	    &obs);
	perf_seconds(run->po.perf, domain, t->host, "connect", r.connect_ms);
	perf_seconds(run->po.perf, domain, t->host, "greeting",
	    r.greeting_ms);
	if (!r.up)
		add(run, domain, "primary", CHECK_WARN, "%s down: %s%s "
		    "(probe is the alarm for this)", r.relay, r.text, r.tls);
	else if (!r.starttls)
		add(run, domain, "primary", CHECK_WARN, "%s up, no STARTTLS: "
		    "%s%s; our mail to it goes in plaintext: enable STARTTLS "
		    "on the primary", r.relay, r.text, r.tls);
	else if (r.expiring)
		add(run, domain, "primary", CHECK_WARN, "%s up: %s%s; its "
		    "certificate expires within %d days: renew it", r.relay,
		    r.text, r.tls, TLS_EXPIRY_WARN_DAYS);
	else
		add(run, domain, "primary", CHECK_OK, "%s up: %s%s", r.relay,
		    r.text, r.tls);
}

/* primary: each primary, when the MX set has any besides us. */
static void
check_primaries(struct check_run *run, const char *domain)
{
	struct mx_route			 route;
	struct lookup_error		 e;
	struct starttls_contexts	 tls;
	size_t				 i;
	enum dns_status			 st;

	memset(&e, 0, sizeof(e));
	st = mx_route_lookup(run->dr, cfg, domain, &route, &e);
	if (st == DNS_PERM || (st == DNS_TEMP &&
	    strcmp(e.dsn, "4.4.6") == 0))
		return;		/* no MX, Null MX, we are best: see mx */
	if (st != DNS_OK) {
		add(run, domain, "primary", CHECK_UNKNOWN, "cannot find the "
		    "primaries: %s", e.text);
		return;
	}
	memset(&tls, 0, sizeof(tls));
	for (i = 0; i < route.ntargets; i++)
		check_primary(run, domain, &route.targets[i], &tls);
	starttls_contexts_free(&tls);
	mx_route_free(&route);
}

/* mta-sts: the policy behind a valid TXT record. */
static void
check_policy(struct check_run *run, const char *domain, const char *id)
{
	struct mtasts_policy	*p;
	char			*body = NULL, why[1024], reason[2048];
	size_t			 len;
	enum check_level	 l;

	if (mtasts_fetch(run->dr, domain, cfg->tls_ca_file, cfg->tls_ciphers,
	    (int)run->cap, &body, &len, why, sizeof(why)) == -1) {
		add(run, domain, "mta-sts", CHECK_CRIT, "_mta-sts.%s "
		    "announces policy id %s but it cannot be fetched: %s; "
		    "serve https://mta-sts.%s/.well-known/mta-sts.txt with a "
		    "valid certificate, or remove the TXT record", domain, id,
		    why, domain);
		return;
	}
	p = xmalloc(sizeof(*p));
	if (mtasts_policy_parse(body, len, p, why, sizeof(why)) == -1)
		add(run, domain, "mta-sts", CHECK_CRIT, "the policy of %s "
		    "(id %s) is invalid: %s; fix "
		    "https://mta-sts.%s/.well-known/mta-sts.txt", domain, id,
		    why, domain);
	else {
		l = check_mtasts(domain, p, id, cfg->hostname, reason,
		    sizeof(reason));
		add(run, domain, "mta-sts", l, "%s", reason);
	}
	free(p);
	free(body);
}

/* mta-sts: the TXT record, then the policy. */
static void
check_mta_sts(struct check_run *run, const char *domain)
{
	struct dns_txt		*t = NULL;
	struct lookup_error	 e;
	char			 name[DOMAIN_NAME_SIZE + 16], id[MTASTS_ID_SIZE];
	char			 why[256], firstwhy[256];
	size_t			 n = 0, i, nsts = 0, valid = 0;
	enum dns_status		 st;

	(void)snprintf(name, sizeof(name), "_mta-sts.%s", domain);
	memset(&e, 0, sizeof(e));
	firstwhy[0] = '\0';
	st = dns_lookup_txt(run->dr, name, &t, &n, &e);
	if (st == DNS_TEMP) {
		add(run, domain, "mta-sts", CHECK_UNKNOWN, "%s", e.text);
		return;
	}
	for (i = 0; i < n; i++) {
		switch (mtasts_txt_parse(t[i].text, t[i].len, id, sizeof(id),
		    why, sizeof(why))) {
		case 0:
			nsts++;
			valid++;
			break;
		case -1:
			nsts++;
			if (firstwhy[0] == '\0')
				(void)strlcpy(firstwhy, why, sizeof(firstwhy));
			break;
		}
	}
	dns_txt_free(t, n);
	if (nsts == 0)
		add(run, domain, "mta-sts", CHECK_OK, "no MTA-STS policy "
		    "(no v=STSv1 TXT record at %s)", name);
	else if (nsts > 1)
		add(run, domain, "mta-sts", CHECK_WARN, "%zu v=STSv1 TXT "
		    "records at %s: senders ignore MTA-STS; keep one", nsts,
		    name);
	else if (valid == 0)
		add(run, domain, "mta-sts", CHECK_WARN, "the TXT record at %s "
		    "is invalid (%s): senders ignore MTA-STS; publish "
		    "\"v=STSv1; id=YYYYMMDDNN\"", name, firstwhy);
	else
		check_policy(run, domain, id);
}

/* dane: TLSA records of our hostname against tls-cert. */
static void
check_dane(struct check_run *run, const char *domain)
{
	struct tlsa_record	*r = NULL;
	char			 err[1024], hex[80];
	size_t			 n = 0;
	int			 secure = 0, m;
	enum tlsa_status	 st;

	st = tlsa_lookup_any(run->dr, cfg->hostname, 25, &r, &n, &secure,
	    err, sizeof(err));
	if (st == TLSA_TEMP) {
		add(run, domain, "dane", CHECK_UNKNOWN, "%s", err);
		return;
	}
	if (st == TLSA_NONE) {
		add(run, domain, "dane", CHECK_OK, "no TLSA records at "
		    "_25._tcp.%s", cfg->hostname);
		return;
	}
	if (cfg->tls_cert[0] == '\0')
		add(run, domain, "dane", CHECK_CRIT, "%zu TLSA record%s at "
		    "_25._tcp.%s but no tls-cert: DANE senders will not "
		    "deliver here; set tls-cert, or remove the records", n,
		    n == 1 ? "" : "s", cfg->hostname);
	else if ((m = tlsa_match_chain_file(r, n, cfg->tls_cert, err,
	    sizeof(err))) == -1)
		add(run, domain, "dane", CHECK_CRIT, "tls-cert: %s", err);
	else if (m == 0) {
		if (tlsa_spki_sha256_file(cfg->tls_cert, hex, sizeof(hex),
		    err, sizeof(err)) == -1)
			(void)strlcpy(hex, "SHA-256-OF-THE-PUBLIC-KEY",
			    sizeof(hex));
		add(run, domain, "dane", CHECK_CRIT, "none of the %zu TLSA "
		    "record%s at _25._tcp.%s matches tls-cert %s: DANE "
		    "senders will not deliver here; publish \"_25._tcp.%s. "
		    "TLSA 3 1 1 %s\" for the certificate in use", n, n == 1 ? "" : "s", cfg->hostname,
		    cfg->tls_cert, cfg->hostname, hex);
	} else
		add(run, domain, "dane", secure ? CHECK_OK : CHECK_WARN,
		    "%d of %zu TLSA record%s at _25._tcp.%s match%s tls-cert"
		    "%s", m, n, n == 1 ? "" : "s", cfg->hostname,
		    m == 1 ? "es" : "", secure ? "" : ", but the answer is "
		    "not DNSSEC-validated (no AD bit): DANE senders ignore "
		    "it; sign the zone");
	tlsa_free(r, n);
}

/* cert: tls-cert against our hostname. */
static void
check_our_cert(struct check_run *run, const char *domain)
{
	struct cert_facts	 f;
	char			 err[1024], reason[2048];
	enum check_level	 l;

	if (cfg->tls_cert[0] == '\0')
		l = check_cert(NULL, cfg->hostname, reason, sizeof(reason));
	else if (certfile_facts(cfg->tls_cert, cfg->hostname, &f, err,
	    sizeof(err)) == -1) {
		add(run, domain, "cert", CHECK_CRIT, "tls-cert: %s", err);
		return;
	} else
		l = check_cert(&f, cfg->hostname, reason, sizeof(reason));
	add(run, domain, "cert", l, "%s", reason);
}

/* dkim: each key of the domain's dkim lines against its TXT record. */
static void
check_dkim_keys(struct check_run *run, const char *domain)
{
	size_t	 i;

	for (i = 0; i < cfg->ndkim; i++)
		if (address_domain_match(dkim_key_domain(cfg->dkim[i]), domain))
			check_dkim_key(run, domain, cfg->dkim[i]);
}

static void
check_dkim_key(struct check_run *run, const char *domain,
    const struct dkim_key *key)
{
	struct dns_txt		*t = NULL;
	struct lookup_error	 e;
	char			 name[DOMAIN_NAME_SIZE * 2], reason[2048];
	char			*rec, *k, *p;
	size_t			 n = 0;
	enum dns_status		 st;

	if (dkim_dns_name(key, name, sizeof(name)) == -1 ||
	    (rec = dkim_dns_record(key)) == NULL) {
		add(run, domain, "dkim", CHECK_UNKNOWN, "selector %s: the key "
		    "could not be read", dkim_key_selector(key));
		return;
	}
	/* Our own record: "v=DKIM1; k=TYPE; p=BASE64". */
	k = strstr(rec, "k=");
	p = strstr(rec, "p=");
	if (k == NULL || p == NULL) {
		free(rec);
		add(run, domain, "dkim", CHECK_UNKNOWN, "selector %s: no "
		    "public key", dkim_key_selector(key));
		return;
	}
	k += 2;
	k[strcspn(k, ";")] = '\0';
	p += 2;
	memset(&e, 0, sizeof(e));
	st = dns_lookup_txt(run->dr, name, &t, &n, &e);
	if (st == DNS_TEMP)
		add(run, domain, "dkim", CHECK_UNKNOWN, "%s: %s", name, e.text);
	else {
		add(run, domain, "dkim", check_dkim(domain,
		    dkim_key_selector(key), t, n, k, p, reason,
		    sizeof(reason)), "%s", reason);
		dns_txt_free(t, n);
	}
	free(rec);
}

/*
 * spf: with users (we send the domain's mail), the domain's SPF record
 * evaluated (core/spf.c) for each address of our hostname, sender
 * postmaster@DOMAIN, HELO our hostname.
 */
static void
check_spf_record(struct check_run *run, const char *domain)
{
	struct sockaddr_storage	*a = NULL;
	struct spf_outcome	*o;
	struct lookup_error	 e;
	enum spf_result		 r;
	char			 (*ip)[64], sender[DOMAIN_NAME_SIZE + 16];
	char			 why[512], first[600], reason[2048];
	size_t			 n = 0, i;
	int			 none = 0;
	enum check_level	 l;

	if (cfg->users[0] == '\0')
		return;
	memset(&e, 0, sizeof(e));
	if (dns_lookup_addrs(run->dr, cfg->hostname, 25, &a, &n, &e) ==
	    DNS_TEMP) {
		add(run, domain, "spf", CHECK_UNKNOWN, "cannot find the "
		    "addresses of %s: %s", cfg->hostname, e.text);
		return;
	}
	if (n == 0) {
		free(a);
		return;		/* address says it */
	}
	(void)snprintf(sender, sizeof(sender), "postmaster@%s", domain);
	o = xcalloc(n, sizeof(*o));
	ip = xcalloc(n, sizeof(*ip));
	first[0] = '\0';
	for (i = 0; i < n; i++) {
		dns_addr_string((const struct sockaddr *)&a[i], ip[i],
		    sizeof(ip[i]));
		r = spf_check_host(spf_dns_lookup, run->dr,
		    (const struct sockaddr *)&a[i], domain, sender,
		    cfg->hostname, why, sizeof(why));
		o[i].addr = ip[i];
		o[i].result = spf_result_word(r);
		if (r == SPF_NONE)
			none = 1;
		else if (r != SPF_PASS && first[0] == '\0')
			(void)snprintf(first, sizeof(first), "; %s for %s: %s",
			    o[i].result, ip[i], why);
	}
	l = check_spf(domain, o, n, reason, sizeof(reason));
	add(run, domain, "spf", l, "%s%s%s", reason, none ? "; there is no "
	    "SPF record: senders' receivers will treat mail from the backup "
	    "as neutral" : "", first);
	free(ip);
	free(o);
	free(a);
}

static void
check_domain(struct check_run *run, const char *domain)
{
	if (run->dr == NULL) {
		add(run, domain, "mx", CHECK_UNKNOWN, "no resolver");
		return;
	}
	check_mx_set(run, domain);
	check_address(run, domain);
	check_primaries(run, domain);
	check_mta_sts(run, domain);
	check_dane(run, domain);
	check_our_cert(run, domain);
	check_dkim_keys(run, domain);
	check_spf_record(run, domain);
}

/* 0 to go on (domains at argv[optind]), or an exit status. */
static int
check_options(int argc, char **argv, struct check_run *run)
{
	const char	*errstr;
	int		 ch;

	run->cap = CHECK_TIMEOUT;
	while ((ch = getopt(argc, argv, "C:hjt:")) != -1) {
		switch (ch) {
		case 'C':
			cmd_set_config_file(optarg);
			break;
		case 'j':
			run->json = 1;
			break;
		case 't':
			run->cap = (time_t)strtonum(optarg, 1, 3600, &errstr);
			if (errstr != NULL) {
				log_cmd_errorx("-t %s: %s", optarg, errstr);
				return (EXIT_USAGE);
			}
			break;
		case 'h':
			cmd_usage(USAGE, 1);
		default:
			cmd_usage(USAGE, 0);
		}
	}
	return (0);
}

/*
 * The summary clause of each domain ("D: all N OK" or "D: mx CRIT,
 * address WARN"); returns the plugin state of all findings.
 */
static int
summarize(struct check_run *run, char **domains, size_t nd)
{
	const struct finding	*f;
	char			 clause[1024], one[64];
	size_t			 d, i, nok;
	int			 state = PLUGIN_OK;

	for (d = 0; d < nd; d++) {
		clause[0] = '\0';
		nok = 0;
		for (i = 0; i < run->nf; i++) {
			f = &run->f[i];
			if (strcmp(f->domain, domains[d]) != 0)
				continue;
			state = plugin_worse(state,
			    check_level_state(f->level));
			if (f->level == CHECK_OK) {
				nok++;
				continue;
			}
			(void)snprintf(one, sizeof(one), "%s%s %s",
			    clause[0] ? ", " : "", f->check,
			    check_level_word(f->level));
			(void)strlcat(clause, one, sizeof(clause));
		}
		if (clause[0] == '\0')
			plugin_summary(&run->po, "%s: all %zu OK", domains[d],
			    nok);
		else
			plugin_summary(&run->po, "%s: %s", domains[d], clause);
	}
	return (state);
}

/* The findings, as text (escaped) or JSON lines, into the detail. */
static void
print_findings(const struct check_run *run, FILE *out)
{
	const struct finding	*f;
	size_t			 i;

	for (i = 0; i < run->nf; i++) {
		f = &run->f[i];
		if (run->json) {
			fputs("{\"domain\":", out);
			json_string(out, f->domain);
			fputs(",\"check\":", out);
			json_string(out, f->check);
			fputs(",\"level\":", out);
			json_string(out, check_level_word(f->level));
			fputs(",\"reason\":", out);
			json_string(out, f->reason);
			fputs("}\n", out);
		} else {
			fprintf(out, "%s ", check_level_word(f->level));
			(void)text_str(out, f->domain);
			fprintf(out, " %s: ", f->check);
			(void)text_str(out, f->reason);
			fputc('\n', out);
		}
	}
}

/*
 * The domains to check: those named, each a relay-domain (else 64),
 * or every relay-domain.  0, or an exit status.
 */
static int
check_targets(int argc, char **argv, char ***domains, size_t *nd)
{
	const struct relay_domain	*rd;
	size_t				 i;

	*nd = argc > 0 ? (size_t)argc : cfg->nrelays;
	if (*nd == 0) {
		log_cmd_errorx("no relay-domain configured");
		return (PLUGIN_UNKNOWN);
	}
	*domains = xcalloc(*nd, sizeof(**domains));
	for (i = 0; i < *nd; i++) {
		rd = argc > 0 ? config_relay_domain(cfg, argv[i]) :
		    &cfg->relays[i];
		if (rd == NULL) {
			log_cmd_errorx("\"%.64s\" is not a relay-domain",
			    argv[i]);
			return (EXIT_USAGE);
		}
		(*domains)[i] = xstrdup(rd->name);
	}
	return (0);
}

int
cmd_check(int argc, char **argv)
{
	struct check_run	 run;
	char			 err[1024], safe[1024], **domains = NULL;
	size_t			 nd = 0, i;
	int			 rc;

	memset(&run, 0, sizeof(run));
	if ((rc = check_options(argc, argv, &run)) != 0)
		return (rc);
	argc -= optind;
	argv += optind;
	cmd_load_config_or_exit(PLUGIN_UNKNOWN);
	if (cmd_try_become_user(0, err, sizeof(err)) != 0) {
		log_cmd_errorx("%s", err);
		plugin_safe(safe, sizeof(safe), err);
		printf("MXFB UNKNOWN - %s\n", safe);
		return (PLUGIN_UNKNOWN);
	}
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		log_warn("signal");
	if ((rc = check_targets(argc, argv, &domains, &nd)) != 0) {
		if (rc == PLUGIN_UNKNOWN)
			printf("MXFB UNKNOWN - no relay-domain configured\n");
		goto out;
	}
	if (plugin_open(&run.po) == -1) {
		rc = PLUGIN_UNKNOWN;
		goto out;
	}
	if (dns_resolver_open(cfg, &run.dr, err, sizeof(err)) == -1) {
		log_cmd_errorx("resolver: %s", err);
		run.dr = NULL;
	}
	for (i = 0; i < nd; i++)
		check_domain(&run, domains[i]);
	rc = summarize(&run, domains, nd);
	print_findings(&run, run.json ? stdout : run.po.detail);
	if (plugin_print(&run.po, rc, run.json) == -1 || fflush(stdout) == EOF)
		log_cmd_error("stdout");
	dns_resolver_close(run.dr);
out:
	for (i = 0; i < run.nf; i++)
		free(run.f[i].reason);
	free(run.f);
	for (i = 0; domains != NULL && i < nd; i++)
		free(domains[i]);
	free(domains);
	return (rc);
}
