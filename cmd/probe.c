/*
 * probe.c - `mxfb probe [-q] [-F] [DOMAIN...]`: are the primaries up?
 *
 * For each relay domain (or the domains named), resolve its primaries as
 * flush would (MX hosts better than us, or `via`), connect to each, read
 * the banner, EHLO, QUIT.  Output as a monitoring plugin (Monitoring
 * Plugins development guidelines): the first line is
 *
 *   MXFB OK|WARNING|CRITICAL|UNKNOWN - SUMMARY | PERFDATA
 *
 * SUMMARY one clause per domain ("D: primary HOST up", "D: primary HOST
 * up, 1 of 2 down", "D: down", "D: unknown"), PERFDATA per primary host
 * 'D HOST connect'=Ns and 'D HOST greeting'=Ns (connect: until the TCP
 * connection is made; greeting: from then until the EHLO is answered;
 * U when not reached) and per domain, from the spool listing status -s
 * makes (status_queue_domains), 'D queue'=N and 'D oldest'=Ns (left out
 * when the spool cannot be listed).  With no domain to probe, or a
 * `user` that cannot be become, the first line is "MXFB UNKNOWN -
 * REASON" alone.  Then one line per primary host:
 *
 *   DOMAIN HOST[IP]:PORT pref=N up|down LATENCYms TEXT
 *
 * TEXT is the banner of a host that is up, the reason for one that is
 * down, then what STARTTLS at the domain's tls-outbound level found:
 * "starttls=yes|no" and, after a handshake, "tls=TLSv1.3 cipher=NAME
 * subject="CN=..." expires=Nd verify=ok|dane|"reason"".  A primary
 * whose TLS fails the level (verify: a bad certificate; encrypt: no
 * STARTTLS) is down: flush could not deliver to it.  A certificate that
 * expires within TLS_EXPIRY_WARN_DAYS makes the exit status at least 1.  A domain whose primaries cannot be found (DNS failure, no
 * primary, loop to ourselves) gets one line with host "-", state
 * "unknown".  Exit status as a monitoring plugin: 0 every primary of every
 * domain up, 1 some primary down but every domain has one up, 2 some
 * domain has none up, 3 some domain could not be checked (and none is
 * down entirely).  -q prints nothing.
 *
 * Each domain's primary record (spool.h) gets the outcome: up, with the
 * best host found up and what its EHLO offered, or down when none
 * answered or the name takes no mail (not when DNS could not tell).
 * With -F, every domain that is up and has mail waiting gets a
 * background `flush -f -d DOMAIN` (at most one per domain: flush takes
 * the domain lock).
 *
 * Each wait (connect, banner, EHLO) is capped by -t seconds (default
 * 10) below connect-timeout and command-timeout, so that a monitoring
 * system gets its answer in time.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/plugin.h"
#include "cmd/probe.h"
#include "cmd/rcpt_primary.h"
#include "core/config.h"
#include "core/dns.h"
#include "core/log.h"
#include "core/mail/address.h"
#include "core/mx.h"
#include "core/smtp_client.h"
#include "core/starttls.h"
#include "core/tls.h"
#include "core/util.h"
#include "spool/spool.h"

#define USAGE	"mxfb probe [-C file] [-qF] [-t seconds] [domain ...]"
#define PROBE_TIMEOUT	10	/* default cap on each wait, for monitors */

#define PROBE_OK	0
#define PROBE_WARNING	1
#define PROBE_CRITICAL	2
#define PROBE_UNKNOWN	3

struct waiting {
	char		(*domains)[DOMAIN_NAME_SIZE];
	size_t		 n;
};

struct probe_options {
	int		 quiet;		/* -q */
	int		 flush;		/* -F */
	time_t		 cap;		/* -t: on each wait */
};

/* The domains probed, normalised, and the state each was found in. */
struct targets {
	char		(*domains)[DOMAIN_NAME_SIZE];
	int		*states;
	uint64_t	*messages;	/* queue figures, by domain */
	time_t		*oldest;
	size_t		 n;
};

static int	 probe_domain(struct dns_resolver *, struct spool *,
		    const char *, struct plugin_out *, time_t);
static int	 probe_host(const struct mx_target *, const char *,
		    struct plugin_out *, time_t, struct starttls_contexts *,
		    struct spool *, int *, struct primary_obs *);
static void	 host_note(struct spool *, const struct sockaddr *,
		    const char *, int, const char *, char *, size_t);
static int	 queue_figure(void *, const char *, uint64_t, time_t);
static void	 queue_perf(struct spool *, struct targets *,
		    struct plugin_out *);
static void	 observe(struct spool *, const char *, int,
		    const struct primary_obs *, const char *);
static void	 tls_fields(const struct starttls_report *, char *, size_t);
static int	 collect_waiting(const struct envelope *, void *);
static int	 probe_options(int, char **, struct probe_options *);
static int	 probe_targets(int, char **, struct targets *);
static int	 worst_state(const struct targets *);
static void	 flush_waiting(struct spool *, const struct targets *);

/* " starttls=yes tls=TLSv1.3 cipher=... subject=... expires=Nd verify=..." */
static void
tls_fields(const struct starttls_report *rep, char *buf, size_t size)
{
	const struct tls_info	*ti = &rep->info;
	char			 subject[300], verify[160];

	if (!rep->handshake) {
		(void)snprintf(buf, size, " starttls=%s",
		    rep->offered ? "yes" : "no");
		return;
	}
	if (ti->verified)
		(void)strlcpy(verify, ti->dane ? "dane" : "ok",
		    sizeof(verify));
	else
		(void)snprintf(verify, sizeof(verify), "\"%s\"",
		    ti->verify_error);
	if (ti->has_cert)
		(void)snprintf(subject, sizeof(subject), " subject=\"%s\" "
		    "expires=%ldd", ti->subject, ti->expiry_days);
	else
		subject[0] = '\0';
	(void)snprintf(buf, size, " starttls=yes tls=%s cipher=%s%s verify=%s",
	    ti->protocol, ti->cipher, subject, verify);
}

/*
 * flush's view of one address (its host note, spool/INTERNALS 13) as it
 * was before this probe, for the detail line (" flush-host=up", or
 * " flush-host=down(next try TIME)"), then the probe's own observation
 * in the note: a host found up is tried by the next flush at once.
 */
static void
host_note(struct spool *sp, const struct sockaddr *sa, const char *host,
    int up, const char *why, char *view, size_t size)
{
	struct host_note	 n;
	struct tm		 tm;
	char			 key[HOST_KEY_SIZE], t[32];

	if (sp == NULL)
		return;
	view[0] = '\0';
	spool_host_key(sa, key, sizeof(key));
	if (spool_host_read(sp, key, &n) == 0) {
		if (n.up)
			(void)strlcpy(view, " flush-host=up", size);
		else if (localtime_r(&n.retry, &tm) != NULL &&
		    strftime(t, sizeof(t), "%H:%M:%S", &tm) > 0)
			(void)snprintf(view, size, " flush-host=down(next try "
			    "%s)", t);
		else
			(void)strlcpy(view, " flush-host=down", size);
	}
	if (spool_host_observe(sp, key, up, host, why, cfg->retry_min,
	    cfg->retry_max, NULL) == -1)
		log_warn("host %s: cannot record its state", key);
}

int
probe_host_run(const struct mx_target *t, const char *domain,
    enum tls_level level, time_t cap, struct starttls_contexts *tls,
    struct spool *notes, struct probe_result *r, struct primary_obs *obs)
{
	struct starttls_report	 rep;
	enum starttls_outcome	 st;
	char			 twhy[1024];
	struct smtp_timeouts	 to;
	struct smtp_conn	*c;
	struct smtp_reply	 banner;
	char			 why[1024], ip[64];
	int64_t			 t0;
	size_t			 j;
	socklen_t		 len;

	memset(r, 0, sizeof(*r));
	to.connect = cfg->connect_timeout < cap ? cfg->connect_timeout : cap;
	to.command = cfg->command_timeout < cap ? cfg->command_timeout : cap;
	to.data = to.command;
	to.data_done = to.command;
	strlcpy(r->text, "no address", sizeof(r->text));
	snprintf(r->relay, sizeof(r->relay), "%s[-]:%d", t->host, t->port);
	r->connect_ms = r->greeting_ms = -1;
	t0 = now_ms();
	for (j = 0; j < t->naddrs && !r->up; j++) {
		len = t->addrs[j].ss_family == AF_INET6 ?
		    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
		dns_addr_string((const struct sockaddr *)&t->addrs[j], ip,
		    sizeof(ip));
		snprintf(r->relay, sizeof(r->relay), "%s[%s]:%d", t->host, ip,
		    t->port);
		t0 = now_ms();
		r->connect_ms = r->greeting_ms = -1;
		r->tls[0] = '\0';
		if (smtp_connect(t->host, (const struct sockaddr *)
		    &t->addrs[j], len, &to, &c, why, sizeof(why)) == -1) {
			strlcpy(r->text, why, sizeof(r->text));
			host_note(notes, (const struct sockaddr *)&t->addrs[j],
			    t->host, 0, r->text, r->view, sizeof(r->view));
			continue;
		}
		r->connect_ms = now_ms() - t0;
		if (smtp_greet(c, cfg->hostname, &banner) == -1) {
			strlcpy(r->text, smtp_conn_error(c), sizeof(r->text));
			smtp_close(c);
			host_note(notes, (const struct sockaddr *)&t->addrs[j],
			    t->host, 0, r->text, r->view, sizeof(r->view));
			continue;
		}
		r->greeting_ms = now_ms() - t0 - r->connect_ms;
		host_note(notes, (const struct sockaddr *)&t->addrs[j], t->host,
		    1, NULL, r->view, sizeof(r->view));
		st = starttls_client(c, cfg, tls, level, t->host, t->port,
		    cfg->hostname, (int)to.command, &rep, twhy, sizeof(twhy));
		tls_fields(&rep, r->tls, sizeof(r->tls));
		r->starttls = rep.offered;
		r->handshake = rep.handshake;
		r->verified = rep.handshake && rep.info.verified;
		if (rep.handshake && rep.info.has_cert &&
		    rep.info.expiry_days <= TLS_EXPIRY_WARN_DAYS)
			r->expiring = 1;
		if (st == STARTTLS_FAIL) {
			/* The level forbids delivery: down for flush too. */
			strlcpy(r->text, twhy, sizeof(r->text));
			smtp_close(c);
			continue;
		}
		r->up = 1;
		smtp_reply_string(&banner, r->text, sizeof(r->text));
		primary_obs_from_ehlo(obs, 1, "probe", t->host,
		    smtp_conn_ext(c));
		if (st == STARTTLS_RETRY_PLAIN) {
			/* may: flush would go on in plaintext. */
			strlcat(r->tls, " tls=failed", sizeof(r->tls));
			smtp_close(c);
		} else
			smtp_quit(c);
	}
	if (!r->up)
		primary_obs_reason(obs, r->text);
	r->ms = now_ms() - t0;
	return (r->up);
}

/*
 * 1 up, 0 down; the detail line "DOMAIN HOST[IP]:PORT pref=N up|down Nms
 * TEXT" and the host's perfdata; *expiring set when the certificate
 * expires within the warning days; when up, *obs is the observation
 * (the host and what its EHLO offered).
 */
static int
probe_host(const struct mx_target *t, const char *domain,
    struct plugin_out *po, time_t cap, struct starttls_contexts *tls,
    struct spool *sp, int *expiring, struct primary_obs *obs)
{
	struct probe_result	 r;
	char			 text[1024], safe[1024];
	const char		*state;

	(void)probe_host_run(t, domain, config_tls_level(cfg, domain), cap,
	    tls, sp, &r, obs);
	if (r.expiring)
		*expiring = 1;
	state = r.up ? "up" : "down";
	(void)strlcpy(text, r.text, sizeof(text));
	if (strlcat(text, r.tls, sizeof(text)) >= sizeof(text) ||
	    strlcat(text, r.view, sizeof(text)) >= sizeof(text))
		text[sizeof(text) - 1] = '\0';
	log_safe(safe, sizeof(safe), text);
	fprintf(po->detail, "%s %s pref=%u %s %lldms %s\n", domain, r.relay,
	    t->pref, state, (long long)r.ms, safe);
	perf_seconds(po->perf, domain, t->host, "connect", r.connect_ms);
	perf_seconds(po->perf, domain, t->host, "greeting", r.greeting_ms);
	log_info("probe %s: %s %s (%s)", domain, r.relay, state, safe);
	return (r.up);
}

/*
 * The domain's primary record: up (the best host found up, its EHLO) or
 * down (none answered, or the name takes no mail), with why.
 */
static void
observe(struct spool *sp, const char *domain, int up,
    const struct primary_obs *best, const char *why)
{
	struct primary_obs	 down;

	if (sp == NULL)
		return;
	if (!up) {
		primary_obs_from_ehlo(&down, 0, "probe", NULL, NULL);
		primary_obs_reason(&down, why);
	}
	if (spool_primary_observe(sp, domain, up ? best : &down) == -1)
		log_warn("probe %s: cannot record the primary", domain);
}

/* Monitoring state of one domain. */
static int
probe_domain(struct dns_resolver *dr, struct spool *sp, const char *domain,
    struct plugin_out *po, time_t cap)
{
	struct mx_route		 route;
	struct lookup_error	 e;
	struct starttls_contexts tls;
	struct primary_obs	 obs, best;
	char			 safe[600], host[300], down[64];
	const char		*word;
	size_t			 i, nup = 0;
	int			 expiring = 0;
	enum dns_status		 rc;

	if (dr == NULL)
		rc = DNS_TEMP;
	else
		rc = mx_route_lookup(dr, cfg, domain, &route, &e);
	if (rc != DNS_OK) {
		if (dr == NULL)
			strlcpy(e.text, "no resolver", sizeof(e.text));
		log_safe(safe, sizeof(safe), e.text);
		/*
		 * A name that does not exist or takes no mail (Null MX) has
		 * no primary for certain: critical.  Otherwise we cannot
		 * tell (DNS failure, or we are the best MX ourselves).
		 */
		word = rc == DNS_PERM ? "down" : "unknown";
		fprintf(po->detail, "%s - pref=- %s 0ms %s\n", domain, word,
		    safe);
		plugin_summary(po, "%s: %s", domain, word);
		log_info("probe %s: %s (%s)", domain, word, safe);
		if (rc == DNS_PERM)
			observe(sp, domain, 0, NULL, e.text);
		return (rc == DNS_PERM ? PROBE_CRITICAL : PROBE_UNKNOWN);
	}
	memset(&best, 0, sizeof(best));
	memset(&obs, 0, sizeof(obs));
	memset(&tls, 0, sizeof(tls));
	for (i = 0; i < route.ntargets; i++) {
		if (probe_host(&route.targets[i], domain, po, cap, &tls, sp,
		    &expiring, &obs)) {
			if (nup++ == 0)
				best = obs;
		}
	}
	starttls_contexts_free(&tls);
	observe(sp, domain, nup > 0, &best, route.ntargets > 0 ?
	    obs.reason : "no primary");
	i = route.ntargets;
	mx_route_free(&route);
	if (nup == 0) {
		plugin_summary(po, "%s: down", domain);
		return (PROBE_CRITICAL);
	}
	plugin_safe(host, sizeof(host), best.host);
	down[0] = '\0';
	if (nup < i)
		(void)snprintf(down, sizeof(down), ", %zu of %zu down",
		    i - nup, i);
	plugin_summary(po, "%s: primary %s up%s%s", domain, host, down,
	    expiring ? ", certificate expiring" : "");
	return (nup == i && !expiring ? PROBE_OK : PROBE_WARNING);
}

static int
collect_waiting(const struct envelope *env, void *arg)
{
	struct waiting	*w = arg;
	char		 dom[DOMAIN_NAME_SIZE];
	size_t		 i, k;

	if (env->held)
		return (0);
	for (i = 0; i < env->nrcpts; i++) {
		if (!rcpt_pending(&env->rcpts[i]))
			continue;
		if (address_domain_of(env->rcpts[i].addr, dom,
		    sizeof(dom)) == -1)
			continue;
		for (k = 0; k < w->n; k++)
			if (strcmp(w->domains[k], dom) == 0)
				break;
		if (k < w->n)
			continue;
		w->domains = xreallocarray(w->domains, w->n + 1,
		    sizeof(*w->domains));
		strlcpy(w->domains[w->n++], dom, sizeof(w->domains[0]));
	}
	return (0);
}

/*
 * The options: 0 to go on (the domains start at argv[optind]), or the
 * exit status of a bad one.
 */
static int
probe_options(int argc, char **argv, struct probe_options *o)
{
	const char	*errstr;
	int		 ch;

	memset(o, 0, sizeof(*o));
	o->cap = PROBE_TIMEOUT;
	while ((ch = getopt(argc, argv, "C:Fhqt:")) != -1) {
		switch (ch) {
		case 'C':
			cmd_set_config_file(optarg);
			break;
		case 'F':
			o->flush = 1;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 't':
			o->cap = (time_t)strtonum(optarg, 1, 3600, &errstr);
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
 * The domains to probe, as flush names them (address_domain_typed):
 * those given, else every relay-domain.  0, or an exit status.
 */
static int
probe_targets(int argc, char **argv, struct targets *t)
{
	const char	*name;
	size_t		 i;

	t->n = argc > 0 ? (size_t)argc : cfg->nrelays;
	if (t->n == 0) {
		log_cmd_errorx("no relay-domain configured and none given");
		return (PROBE_UNKNOWN);
	}
	t->domains = xcalloc(t->n, sizeof(*t->domains));
	t->states = xcalloc(t->n, sizeof(*t->states));
	t->messages = xcalloc(t->n, sizeof(*t->messages));
	t->oldest = xcalloc(t->n, sizeof(*t->oldest));
	for (i = 0; i < t->n; i++) {
		name = argc > 0 ? argv[i] : cfg->relays[i].name;
		if (strlen(name) > 253 || address_domain_typed(name,
		    t->domains[i], sizeof(t->domains[i])) == -1) {
			log_cmd_errorx("bad domain \"%.64s\"", name);
			return (EXIT_USAGE);
		}
	}
	return (0);
}

/* Critical beats unknown beats warning beats OK. */
static int
worst_state(const struct targets *t)
{
	size_t	 i;
	int	 worst = PROBE_OK;

	for (i = 0; i < t->n; i++)
		if (t->states[i] == PROBE_CRITICAL)
			worst = PROBE_CRITICAL;
	for (i = 0; i < t->n && worst != PROBE_CRITICAL; i++)
		if (t->states[i] == PROBE_UNKNOWN)
			worst = PROBE_UNKNOWN;
	for (i = 0; i < t->n && worst == PROBE_OK; i++)
		if (t->states[i] == PROBE_WARNING)
			worst = PROBE_WARNING;
	return (worst);
}

/* -F: a flush for each domain found up that has mail waiting. */
static void
flush_waiting(struct spool *sp, const struct targets *t)
{
	struct waiting	 w;
	size_t		 i, k;

	memset(&w, 0, sizeof(w));
	if (spool_foreach(sp, collect_waiting, &w) == -1)
		log_warn("probe: reading the queue");
	for (i = 0; i < t->n; i++) {
		if (t->states[i] != PROBE_OK && t->states[i] != PROBE_WARNING)
			continue;
		for (k = 0; k < w.n; k++)
			if (strcmp(w.domains[k], t->domains[i]) == 0 &&
			    cmd_spawn_flush(t->domains[i]) == 0)
				log_info("probe %s: primary up, flush started",
				    t->domains[i]);
	}
	free(w.domains);
}

/* status_queue_domains: keep the figures of the domains probed. */
static int
queue_figure(void *arg, const char *domain, uint64_t messages, time_t oldest)
{
	struct targets	*t = arg;
	size_t		 i;

	for (i = 0; i < t->n; i++) {
		if (strcasecmp(t->domains[i], domain) != 0)
			continue;
		t->messages[i] = messages;
		t->oldest[i] = oldest;
	}
	return (0);
}

/* 'D queue'=N 'D oldest'=Ns for each domain; nothing without a listing. */
static void
queue_perf(struct spool *sp, struct targets *t, struct plugin_out *po)
{
	time_t	 now = time(NULL), age;
	size_t	 i;

	if (sp == NULL)
		return;
	if (status_queue_domains(sp, queue_figure, t) == -1) {
		log_warn("probe: spool %s (no queue figures)", cfg->spool);
		return;
	}
	for (i = 0; i < t->n; i++) {
		age = t->messages[i] > 0 && now > t->oldest[i] ?
		    now - t->oldest[i] : 0;
		perf_label(po->perf, t->domains[i], NULL, "queue");
		fprintf(po->perf, "%llu", (unsigned long long)t->messages[i]);
		perf_label(po->perf, t->domains[i], NULL, "oldest");
		fprintf(po->perf, "%llds", (long long)age);
	}
}

int
cmd_probe(int argc, char **argv)
{
	struct probe_options	 o;
	struct targets		 t;
	struct plugin_out	 po;
	struct dns_resolver	*dr = NULL;
	struct spool		*sp = NULL;
	char			 err[1024], safe[1024];
	size_t			 i;
	int			 rc;

	if ((rc = probe_options(argc, argv, &o)) != 0)
		return (rc);
	argc -= optind;
	argv += optind;
	/* A monitoring plugin answers UNKNOWN, not 78, to a bad config. */
	cmd_load_config_or_exit(PROBE_UNKNOWN);
	/* Before any DNS answer or banner is read; a bad user: UNKNOWN. */
	if (cmd_try_become_user(0, err, sizeof(err)) != 0) {
		log_cmd_errorx("%s", err);
		if (!o.quiet) {
			plugin_safe(safe, sizeof(safe), err);
			printf("MXFB UNKNOWN - %s\n", safe);
		}
		return (PROBE_UNKNOWN);
	}
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		log_warn("signal");
	memset(&t, 0, sizeof(t));
	if ((rc = probe_targets(argc, argv, &t)) != 0) {
		if (rc == PROBE_UNKNOWN && !o.quiet)
			printf("MXFB UNKNOWN - no relay-domain configured\n");
		goto out;
	}
	if (plugin_open(&po) == -1) {
		rc = PROBE_UNKNOWN;
		goto out;
	}
	if (dns_resolver_open(cfg, &dr, err, sizeof(err)) == -1) {
		log_cmd_errorx("resolver: %s", err);
		dr = NULL;
	}
	if (spool_open(cfg->spool, 0, &sp) == -1) {
		log_warn("probe: spool %s (probes not recorded)", cfg->spool);
		sp = NULL;
	}
	for (i = 0; i < t.n; i++)
		t.states[i] = probe_domain(dr, sp, t.domains[i], &po, o.cap);
	rc = worst_state(&t);
	if (!o.quiet)
		queue_perf(sp, &t, &po);
	if (plugin_print(&po, rc, o.quiet) == -1)
		log_cmd_error("stdout");
	if (fflush(stdout) == EOF)
		log_cmd_error("stdout");
	if (o.flush && sp != NULL)
		flush_waiting(sp, &t);
	if (sp != NULL)
		spool_close(sp);
	dns_resolver_close(dr);
out:
	free(t.domains);
	free(t.states);
	free(t.messages);
	free(t.oldest);
	return (rc);
}
