/*
 * config.c - the configuration file.
 *
 * Syntax: one `key value...` per line, values separated by blanks; `#`
 * starts a comment anywhere on a line; blank lines are ignored; lines
 * are at most CONFIG_LINE_MAX bytes.  Guarantees: config_parse_file()
 * either fills in a complete configuration (every key has its default
 * unless set) or fails with "file:line: reason" and leaves nothing
 * allocated; unknown keys, bad values, a missing or an extra value and a
 * second occurrence of a single-valued key are all errors.  Domain names
 * are stored in lower case without a trailing dot.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/dkim.h"
#include "core/log.h"
#include "core/mail/address.h"
#include "core/users.h"
#include "core/util.h"

#define CONFIG_LINE_MAX	4096
#define CONFIG_MAXARGS	64

enum key_type {
	K_PATH,			/* char[1024], absolute or relative */
	K_HOSTNAME,		/* char[DOMAIN_NAME_SIZE], validated, lower
				   case */
	K_DURATION,		/* time_t */
	K_SIZE,			/* uint64_t */
	K_UINT,			/* unsigned, min..max */
	K_PORT,			/* int, 1..65535 */
	K_SMARTHOST,		/* struct hostport + has_smarthost */
	K_LOG,			/* log_stderr */
	K_BOUNCE_POLICY,	/* enum bounce_policy */
	K_RELAY_DOMAIN,		/* repeatable */
	K_RESOLVER,		/* repeatable */
	K_ETRN_ALLOW,		/* repeatable, several values */
	K_STRING,		/* char[], taken as written */
	K_YESNO,		/* int, yes = 1, no = 0 */
	K_TLS_LEVEL,		/* enum tls_level */
	K_USER,			/* char[], a user name (not looked up) */
	K_RECIPIENT_VERIFY,	/* int, callout = 1, off = 0 */
	K_UNKNOWN_WHEN_DOWN,	/* int, accept = 1, defer = 0 */
	K_RATE,			/* submission-rate N/DURATION */
	K_DKIM			/* repeatable, core/dkim.c reads the key */
};

struct key {
	const char	*name;
	enum key_type	 type;
	size_t		 offset;
	size_t		 size;		/* of a string field */
	unsigned long	 min, max;	/* K_UINT and K_DURATION bounds */
};

#define STR(f)	 offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define FLD(f)	 offsetof(struct config, f), 0
#define NOMAX	 ULONG_MAX

/* The order is the interface contract's key table, then the extensions. */
static const struct key keys[] = {
	{ "hostname",		K_HOSTNAME,	STR(hostname),	0, 0 },
	{ "spool",		K_PATH,		STR(spool),	0, 0 },
	{ "relay-domain",	K_RELAY_DOMAIN,	FLD(relays),	0, 0 },
	{ "recipients",		K_PATH,		STR(recipients), 0, 0 },
	{ "max-size",		K_SIZE,		FLD(max_size),	1, NOMAX },
	/* RFC 5321 4.5.3.1.8: a server must accept at least 100. */
	{ "max-recipients",	K_UINT,		FLD(max_recipients), 100, 100000 },
	{ "queue-lifetime",	K_DURATION,	FLD(queue_lifetime), 0, NOMAX },
	{ "delay-warning",	K_DURATION,	FLD(delay_warning), 0, NOMAX },
	{ "retry-min",		K_DURATION,	FLD(retry_min),	0, NOMAX },
	{ "retry-max",		K_DURATION,	FLD(retry_max),	0, NOMAX },
	{ "resolver",		K_RESOLVER,	FLD(resolvers),	0, 0 },
	{ "smtp-port",		K_PORT,		FLD(smtp_port),	0, 0 },
	{ "etrn-allow",		K_ETRN_ALLOW,	FLD(etrn_allow), 0, 0 },
	{ "smarthost",		K_SMARTHOST,	FLD(smarthost),	0, 0 },
	{ "log",		K_LOG,		FLD(log_stderr), 0, 0 },
	{ "timeout",		K_DURATION,	FLD(timeout),	1, NOMAX },
	{ "queue-minfree",	K_SIZE,		FLD(queue_minfree), 0, NOMAX },
	{ "max-sessions",	K_UINT,		FLD(max_sessions), 1,
	    CONFIG_MAX_SESSIONS_MAX },
	{ "max-sessions-per-client", K_UINT,	FLD(max_sessions_per_client),
	    0, 100000 },
	{ "min-data-rate",	K_SIZE,		FLD(min_data_rate), 0, NOMAX },
	/* Postfix's smtpd_soft/hard_error_limit, smtpd_error_sleep_time. */
	{ "soft-error-limit",	K_UINT,		FLD(soft_error_limit),
	    0, 100000 },
	{ "hard-error-limit",	K_UINT,		FLD(hard_error_limit),
	    1, 100000 },
	{ "error-sleep",	K_DURATION,	FLD(error_sleep), 0, 3600 },
	{ "flush-concurrency",	K_UINT,		FLD(flush_concurrency), 1, 1000 },
	{ "flush-per-host",	K_UINT,		FLD(flush_per_host), 1, 1000 },
	{ "connect-timeout",	K_DURATION,	FLD(connect_timeout), 1, NOMAX },
	{ "command-timeout",	K_DURATION,	FLD(command_timeout), 1, NOMAX },
	{ "data-timeout",	K_DURATION,	FLD(data_timeout), 1, NOMAX },
	{ "data-done-timeout",	K_DURATION,	FLD(data_done_timeout), 1, NOMAX },
	{ "dns-timeout",	K_DURATION,	FLD(dns_timeout), 1, NOMAX },
	{ "dns-retry",		K_UINT,		FLD(dns_retry),	1, 100 },
	{ "claim-timeout",	K_DURATION,	FLD(claim_timeout), 0, NOMAX },
	{ "bounce-size-limit",	K_SIZE,		FLD(bounce_size_limit), 0, NOMAX },
	{ "bounce-policy",	K_BOUNCE_POLICY, FLD(bounce_policy), 0, 0 },
	{ "tls-cert",		K_PATH,		STR(tls_cert),	0, 0 },
	{ "tls-key",		K_PATH,		STR(tls_key),	0, 0 },
	{ "tls-ciphers",	K_STRING,	STR(tls_ciphers), 0, 0 },
	{ "tls-required",	K_YESNO,	FLD(tls_required), 0, 0 },
	{ "tls-outbound",	K_TLS_LEVEL,	FLD(tls_outbound), 0, 0 },
	{ "tls-ca-file",	K_PATH,		STR(tls_ca_file), 0, 0 },
	{ "user",		K_USER,		STR(user),	0, 0 },
	{ "recipient-verify",	K_RECIPIENT_VERIFY, FLD(recipient_verify), 0, 0 },
	{ "verify-db",		K_PATH,		STR(verify_db),	0, 0 },
	{ "verify-positive-ttl", K_DURATION,	FLD(verify_positive_ttl), 1, NOMAX },
	{ "verify-negative-ttl", K_DURATION,	FLD(verify_negative_ttl), 1, NOMAX },
	{ "verify-timeout",	K_DURATION,	FLD(verify_timeout), 1, 3600 },
	{ "verify-unknown-when-down", K_UNKNOWN_WHEN_DOWN,
	    FLD(verify_unknown_accept), 0, 0 },
	{ "accept-when-primary-up", K_YESNO,	FLD(accept_when_primary_up), 0, 0 },
	{ "primary-up-window",	K_DURATION,	FLD(primary_up_window), 1, NOMAX },
	{ "mailbox",		K_PATH,		STR(mailbox),	0, 0 },
	{ "mailbox-max-size",	K_SIZE,		FLD(mailbox_max_size), 1, NOMAX },
	{ "mailbox-keep",	K_DURATION,	FLD(mailbox_keep), 0, NOMAX },
	{ "users",		K_PATH,		STR(users),	0, 0 },
	{ "submission-rate",	K_RATE,		FLD(submission_rate), 0, 0 },
	{ "auth-fail-limit",	K_UINT,		FLD(auth_fail_limit), 1, 100000 },
	{ "dkim",		K_DKIM,		FLD(dkim),	0, 0 },
};
#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

/* Parsing state: where we are, for messages, and what was seen where. */
struct parse {
	const char	*file;
	size_t		 lineno;
	char		*err;
	size_t		 errsize;
	size_t		 seen[NKEYS];	/* line of first occurrence, 0 = unset */
};

static struct config	 loaded;
const struct config	*cfg;

static void	 set_defaults(struct config *);
static int	 perr(struct parse *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	 split_line(char *, char **, int);
static int	 parse_line(struct parse *, struct config *, char *);
static int	 parse_key(struct parse *, struct config *, const struct key *,
		    char **, int);
static int	 parse_number(struct parse *, const struct key *, char *,
		    const char *);
static int	 parse_choice(struct parse *, struct config *,
		    const struct key *, char *, const char *);
static int	 parse_resolver_key(struct parse *, struct config *, char **,
		    int);
static int	 parse_etrn_allow(struct parse *, struct config *, char **,
		    int);
static int	 parse_domain(const char *, char *, size_t);
static int	 parse_relay_domain(struct parse *, struct config *, char **,
		    int);
static int	 parse_resolver(const char *, struct hostport *,
		    const char **);
static int	 check_config(struct parse *, struct config *);
static int	 parse_rate(struct parse *, struct config *, const char *);
static size_t	 key_line(const struct parse *, const char *);
static const struct key *find_key(const char *, size_t *);
static int	 parse_port(const char *, int *);
static int	 user_name_valid(const char *);
static int	 cidr_match_bytes(const struct cidr *, const unsigned char *,
		    int);

static void
set_defaults(struct config *c)
{
	char	 host[DOMAIN_NAME_SIZE];

	memset(c, 0, sizeof(*c));
	/* gethostname() cannot fail with a valid buffer; guard anyway. */
	if (gethostname(host, sizeof(host)) == -1 || host[0] == '\0')
		(void)strlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	(void)strlcpy(c->hostname, ascii_lower(host), sizeof(c->hostname));
	(void)strlcpy(c->spool, "/var/spool/mxfb", sizeof(c->spool));
	c->max_size = 50ULL * 1024 * 1024;
	c->max_recipients = 1000;
	c->queue_lifetime = 5 * 86400;
	c->delay_warning = 4 * 3600;
	c->retry_min = 5 * 60;
	c->retry_max = 3600;
	c->smtp_port = 25;
	c->log_stderr = 0;
	c->timeout = CONFIG_TIMEOUT_DEFAULT;
	c->queue_minfree = 100ULL * 1024 * 1024;
	c->max_sessions = CONFIG_MAX_SESSIONS_DEFAULT;
	c->max_sessions_per_client = 50;
	c->min_data_rate = 500;
	c->soft_error_limit = 10;
	c->hard_error_limit = 20;
	c->error_sleep = 1;
	c->flush_concurrency = 100;
	c->flush_per_host = 10;
	c->connect_timeout = 30;
	c->command_timeout = CONFIG_TIMEOUT_DEFAULT;
	c->data_timeout = 120;
	c->data_done_timeout = 600;
	c->dns_timeout = 5;
	c->dns_retry = 2;
	c->claim_timeout = 2 * 3600;
	c->bounce_size_limit = 100ULL * 1024;
	c->bounce_policy = BOUNCE_ALL;
	c->tls_required = 0;
	c->tls_outbound = TLS_LEVEL_MAY;
	(void)strlcpy(c->user, "mxfb", sizeof(c->user));
	c->verify_positive_ttl = 31 * 86400;
	c->verify_negative_ttl = 3 * 86400;
	c->verify_timeout = 10;
	c->accept_when_primary_up = 1;
	c->primary_up_window = 600;
	c->mailbox_max_size = 1024ULL * 1024 * 1024;
	c->submission_rate = 200;
	c->submission_window = 3600;
	c->auth_fail_limit = 5;
}

static int
perr(struct parse *p, const char *fmt, ...)
{
	char	 msg[1024];
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->lineno > 0)
		(void)snprintf(p->err, p->errsize, "%s:%zu: %s", p->file,
		    p->lineno, msg);
	else
		(void)snprintf(p->err, p->errsize, "%s: %s", p->file, msg);
	return (-1);
}

/* Cut at '#', split on blanks; returns the word count or -1 (too many). */
static int
split_line(char *line, char **av, int max)
{
	char	*s, *w;
	int	 n = 0;

	if ((s = strchr(line, '#')) != NULL)
		*s = '\0';
	s = line;
	while ((w = strsep(&s, " \t\r\n\f\v")) != NULL) {
		if (*w == '\0')
			continue;
		if (n == max)
			return (-1);
		av[n++] = w;
	}
	return (n);
}

static const struct key *
find_key(const char *name, size_t *idx)
{
	size_t	 i;

	for (i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].name, name) == 0) {
			*idx = i;
			return (&keys[i]);
		}
	}
	return (NULL);
}

static int
parse_line(struct parse *p, struct config *c, char *line)
{
	char			*av[CONFIG_MAXARGS], safe[128];
	const struct key	*k;
	size_t			 idx;
	int			 ac;

	if ((ac = split_line(line, av, CONFIG_MAXARGS)) == -1)
		return (perr(p, "too many values"));
	if (ac == 0)
		return (0);
	if ((k = find_key(av[0], &idx)) == NULL)
		return (perr(p, "unknown key \"%s\"",
		    log_safe(safe, sizeof(safe), av[0])));
	if (ac == 1)
		return (perr(p, "missing value for \"%s\"", k->name));
	if (k->type != K_RELAY_DOMAIN && k->type != K_RESOLVER &&
	    k->type != K_ETRN_ALLOW && k->type != K_DKIM) {
		if (p->seen[idx] != 0)
			return (perr(p, "duplicate key \"%s\" (first set on "
			    "line %zu)", k->name, p->seen[idx]));
		if (ac > 2)
			return (perr(p, "too many values for \"%s\"",
			    k->name));
	}
	if (p->seen[idx] == 0)
		p->seen[idx] = p->lineno;
	return (parse_key(p, c, k, av + 1, ac - 1));
}

static int
parse_key(struct parse *p, struct config *c, const struct key *k,
    char **av, int ac)
{
	char		*field = (char *)c + k->offset, safe[128], why[1024];
	const char	*errstr;

	log_safe(safe, sizeof(safe), av[0]);
	switch (k->type) {
	case K_PATH:
		if (strlcpy(field, av[0], k->size) >= k->size)
			return (perr(p, "%s: path too long", k->name));
		break;
	case K_HOSTNAME:
		if (parse_domain(av[0], field, k->size) == -1)
			return (perr(p, "%s: invalid host name \"%s\"",
			    k->name, safe));
		break;
	case K_DURATION:
	case K_SIZE:
	case K_UINT:
	case K_PORT:
		return (parse_number(p, k, field, av[0]));
	case K_LOG:
	case K_BOUNCE_POLICY:
	case K_YESNO:
	case K_TLS_LEVEL:
	case K_UNKNOWN_WHEN_DOWN:
		return (parse_choice(p, c, k, field, av[0]));
	case K_SMARTHOST:
		if (hostport_parse(av[0], &c->smarthost, &errstr) == -1)
			return (perr(p, "%s: bad host \"%s\": %s", k->name,
			    safe, errstr));
		c->has_smarthost = 1;
		break;
	case K_STRING:
		if (strlcpy(field, av[0], k->size) >= k->size)
			return (perr(p, "%s: value too long", k->name));
		break;
	case K_USER:
		/* Looked up only when started as root (cmd/common.c). */
		if (!user_name_valid(av[0]) ||
		    strlcpy(field, av[0], k->size) >= k->size)
			return (perr(p, "%s: bad user name \"%s\"", k->name,
			    safe));
		break;
	case K_RECIPIENT_VERIFY:
		if (strcmp(av[0], "callout") == 0)
			c->recipient_verify = 1;
		else if (strcmp(av[0], "off") == 0)
			c->recipient_verify = 0;
		else
			return (perr(p, "recipient-verify: \"%s\" is neither "
			    "off nor callout", safe));
		break;
	case K_RATE:
		return (parse_rate(p, c, av[0]));
	case K_RELAY_DOMAIN:
		return (parse_relay_domain(p, c, av, ac));
	case K_RESOLVER:
		return (parse_resolver_key(p, c, av, ac));
	case K_ETRN_ALLOW:
		return (parse_etrn_allow(p, c, av, ac));
	case K_DKIM:
		if (dkim_config_add(&c->dkim, &c->ndkim, av, ac, p->lineno,
		    why, sizeof(why)) == -1)
			return (perr(p, "%s", why));
		break;
	}
	return (0);
}

/* The numeric keys: a duration, a size, a count or a port, in bounds. */
static int
parse_number(struct parse *p, const struct key *k, char *field,
    const char *s)
{
	char		 safe[128];
	const char	*errstr;
	time_t		 t;
	uint64_t	 sz;
	long long	 ll;
	int		 port;

	log_safe(safe, sizeof(safe), s);
	switch (k->type) {
	case K_DURATION:
		if (parse_duration(s, &t, &errstr) == -1)
			return (perr(p, "%s: bad duration \"%s\": %s",
			    k->name, safe, errstr));
		if ((unsigned long long)t < k->min)
			return (perr(p, "%s: must be at least %lus", k->name,
			    k->min));
		if ((unsigned long long)t > k->max)
			return (perr(p, "%s: must be at most %lus", k->name,
			    k->max));
		*(time_t *)(void *)field = t;
		break;
	case K_SIZE:
		if (parse_size(s, &sz, &errstr) == -1)
			return (perr(p, "%s: bad size \"%s\": %s", k->name,
			    safe, errstr));
		if (sz < k->min)
			return (perr(p, "%s: must be at least %lu", k->name,
			    k->min));
		*(uint64_t *)(void *)field = sz;
		break;
	case K_UINT:
		ll = strtonum(s, (long long)k->min, (long long)k->max,
		    &errstr);
		if (errstr != NULL)
			return (perr(p, "%s: number \"%s\" is %s (%lu..%lu)",
			    k->name, safe, errstr, k->min, k->max));
		*(unsigned *)(void *)field = (unsigned)ll;
		break;
	case K_PORT:
		if (parse_port(s, &port) == -1)
			return (perr(p, "%s: bad port \"%s\"", k->name, safe));
		*(int *)(void *)field = port;
		break;
	default:
		return (perr(p, "%s: not a numeric key", k->name));
	}
	return (0);
}

/* submission-rate N/DURATION: N at least 1, DURATION at least 1s. */
static int
parse_rate(struct parse *p, struct config *c, const char *s)
{
	char		 num[32], safe[128];
	const char	*slash, *errstr;
	long long	 n;
	time_t		 t;

	log_safe(safe, sizeof(safe), s);
	if ((slash = strchr(s, '/')) == NULL ||
	    (size_t)(slash - s) >= sizeof(num))
		return (perr(p, "submission-rate: \"%s\" is not N/DURATION "
		    "(200/1h)", safe));
	memcpy(num, s, slash - s);
	num[slash - s] = '\0';
	n = strtonum(num, 1, 1000000, &errstr);
	if (errstr != NULL)
		return (perr(p, "submission-rate: count \"%s\" is %s "
		    "(1..1000000)", safe, errstr));
	if (parse_duration(slash + 1, &t, &errstr) == -1 || t < 1)
		return (perr(p, "submission-rate: bad duration in \"%s\": %s",
		    safe, errstr != NULL ? errstr : "must be at least 1s"));
	c->submission_rate = (unsigned)n;
	c->submission_window = t;
	return (0);
}

/* The keys whose value is one word out of a fixed list. */
static int
parse_choice(struct parse *p, struct config *c, const struct key *k,
    char *field, const char *s)
{
	char	 safe[128];

	log_safe(safe, sizeof(safe), s);
	switch (k->type) {
	case K_LOG:
		if (strcmp(s, "syslog") == 0)
			c->log_stderr = 0;
		else if (strcmp(s, "stderr") == 0)
			c->log_stderr = 1;
		else
			return (perr(p, "log: \"%s\" is neither syslog nor "
			    "stderr", safe));
		break;
	case K_BOUNCE_POLICY:
		if (strcmp(s, "all") == 0)
			c->bounce_policy = BOUNCE_ALL;
		else if (strcmp(s, "verified") == 0)
			c->bounce_policy = BOUNCE_VERIFIED;
		else if (strcmp(s, "none") == 0)
			c->bounce_policy = BOUNCE_NONE;
		else
			return (perr(p, "bounce-policy: \"%s\" is not one of "
			    "all, verified, none", safe));
		break;
	case K_YESNO:
		if (strcmp(s, "yes") == 0)
			*(int *)(void *)field = 1;
		else if (strcmp(s, "no") == 0)
			*(int *)(void *)field = 0;
		else
			return (perr(p, "%s: \"%s\" is neither yes nor no",
			    k->name, safe));
		break;
	case K_UNKNOWN_WHEN_DOWN:
		if (strcmp(s, "accept") == 0)
			c->verify_unknown_accept = 1;
		else if (strcmp(s, "defer") == 0)
			c->verify_unknown_accept = 0;
		else
			return (perr(p, "%s: \"%s\" is neither defer nor "
			    "accept", k->name, safe));
		break;
	case K_TLS_LEVEL:
		if (tls_level_parse(s, (enum tls_level *)(void *)field) == -1)
			return (perr(p, "%s: \"%s\" is not one of none, may, "
			    "encrypt, verify, dane", k->name, safe));
		break;
	default:
		return (perr(p, "%s: not a choice key", k->name));
	}
	return (0);
}

static int
parse_resolver_key(struct parse *p, struct config *c, char **av, int ac)
{
	struct hostport	 hp;
	const char	*errstr;
	char		 safe[128];

	if (ac != 1)
		return (perr(p, "too many values for \"resolver\" "
		    "(one per line)"));
	if (parse_resolver(av[0], &hp, &errstr) == -1)
		return (perr(p, "resolver: bad address \"%s\": %s",
		    log_safe(safe, sizeof(safe), av[0]), errstr));
	c->resolvers = xreallocarray(c->resolvers, c->nresolvers + 1,
	    sizeof(*c->resolvers));
	c->resolvers[c->nresolvers++] = hp;
	return (0);
}

static int
parse_etrn_allow(struct parse *p, struct config *c, char **av, int ac)
{
	struct cidr	 cidr;
	char		 safe[128];
	int		 i;

	for (i = 0; i < ac; i++) {
		if (cidr_parse(av[i], &cidr) == -1)
			return (perr(p, "etrn-allow: bad address or network "
			    "\"%s\"", log_safe(safe, sizeof(safe), av[i])));
		c->etrn_allow = xreallocarray(c->etrn_allow,
		    c->netrn_allow + 1, sizeof(*c->etrn_allow));
		c->etrn_allow[c->netrn_allow++] = cidr;
	}
	return (0);
}

/* Validate, lower-case and strip one trailing dot. */
static int
parse_domain(const char *s, char *out, size_t outsize)
{
	size_t	 len = strlen(s);

	if (!hostname_valid(s))
		return (-1);
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len >= outsize)
		return (-1);
	memcpy(out, s, len);
	out[len] = '\0';
	ascii_lower(out);
	return (0);
}

static int
parse_relay_domain(struct parse *p, struct config *c, char **av, int ac)
{
	struct relay_domain	 rd;
	const char		*errstr;
	char			 safe[128];
	size_t			 i;
	int			 a;

	memset(&rd, 0, sizeof(rd));
	if (ac != 1 && ac != 3 && ac != 5)
		return (perr(p, "relay-domain: expected DOMAIN [via "
		    "HOST[:PORT]] [tls LEVEL]"));
	if (parse_domain(av[0], rd.name, sizeof(rd.name)) == -1)
		return (perr(p, "relay-domain: invalid domain \"%s\"",
		    log_safe(safe, sizeof(safe), av[0])));
	for (a = 1; a + 1 < ac; a += 2) {
		if (strcmp(av[a], "via") == 0 && !rd.has_via) {
			if (hostport_parse(av[a + 1], &rd.via, &errstr) == -1)
				return (perr(p, "relay-domain: bad via host "
				    "\"%s\": %s", log_safe(safe, sizeof(safe),
				    av[a + 1]), errstr));
			rd.has_via = 1;
		} else if (strcmp(av[a], "tls") == 0 && !rd.has_tls) {
			if (tls_level_parse(av[a + 1], &rd.tls) == -1)
				return (perr(p, "relay-domain: tls \"%s\" is "
				    "not one of none, may, encrypt, verify, "
				    "dane", log_safe(safe, sizeof(safe),
				    av[a + 1])));
			rd.has_tls = 1;
		} else
			return (perr(p, "relay-domain: expected \"via\" or "
			    "\"tls\" (once each), not \"%s\"",
			    log_safe(safe, sizeof(safe), av[a])));
	}
	for (i = 0; i < c->nrelays; i++)
		if (strcmp(c->relays[i].name, rd.name) == 0)
			return (perr(p, "duplicate relay-domain \"%s\"",
			    rd.name));
	c->relays = xreallocarray(c->relays, c->nrelays + 1,
	    sizeof(*c->relays));
	c->relays[c->nrelays++] = rd;
	return (0);
}

/* "1.2.3.4", "1.2.3.4:53", "[1.2.3.4]:53", "::1", "[::1]", "[::1]:53". */
static int
parse_resolver(const char *s, struct hostport *hp, const char **errstr)
{
	struct in_addr	 a4;
	struct in6_addr	 a6;

	memset(hp, 0, sizeof(*hp));
	if (inet_pton(AF_INET6, s, &a6) == 1) {
		(void)strlcpy(hp->host, s, sizeof(hp->host));
		hp->literal = 1;
		return (0);
	}
	if (hostport_parse(s, hp, errstr) == -1)
		return (-1);
	if (inet_pton(AF_INET, hp->host, &a4) != 1 &&
	    inet_pton(AF_INET6, hp->host, &a6) != 1) {
		*errstr = "not an IP address";
		return (-1);
	}
	hp->literal = 1;
	return (0);
}

static int
parse_port(const char *s, int *port)
{
	const char	*errstr;
	long long	 v;

	v = strtonum(s, 1, 65535, &errstr);
	if (errstr != NULL)
		return (-1);
	*port = (int)v;
	return (0);
}

/* What useradd(8) accepts: [A-Za-z0-9._-], no leading '-', no "."/"..". */
static int
user_name_valid(const char *s)
{
	size_t	 i;

	if (s[0] == '\0' || s[0] == '-' || strcmp(s, ".") == 0 ||
	    strcmp(s, "..") == 0)
		return (0);
	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
		    s[i] == '_' || s[i] == '-'))
			return (0);
	return (1);
}

int
hostname_valid(const char *s)
{
	size_t	 len = strlen(s), label = 0, i;

	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return (0);
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return (0);
			label = 0;
			continue;
		}
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return (0);
		if (s[i] == '-' && label == 0)
			return (0);
		if (++label > 63)
			return (0);
	}
	/* "a.." (an empty last label) or "a-". */
	if (label == 0 || s[len - 1] == '-')
		return (0);
	return (1);
}

int
hostport_parse(const char *s, struct hostport *hp, const char **errstr)
{
	struct in_addr	 a4;
	struct in6_addr	 a6;
	const char	*end, *colon;
	size_t		 len;

	memset(hp, 0, sizeof(*hp));
	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL) {
			*errstr = "missing ]";
			return (-1);
		}
		len = (size_t)(end - s - 1);
		if (len == 0 || len >= sizeof(hp->host)) {
			*errstr = "bad host";
			return (-1);
		}
		memcpy(hp->host, s + 1, len);
		hp->host[len] = '\0';
		hp->literal = 1;
		colon = end + 1;
		if (*colon != '\0' && *colon != ':') {
			*errstr = "garbage after ]";
			return (-1);
		}
		if (inet_pton(AF_INET, hp->host, &a4) != 1 &&
		    inet_pton(AF_INET6, hp->host, &a6) != 1) {
			if (!hostname_valid(hp->host)) {
				*errstr = "invalid host name";
				return (-1);
			}
		}
	} else {
		colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			*errstr = "IPv6 addresses must be in brackets";
			return (-1);
		}
		len = colon != NULL ? (size_t)(colon - s) : strlen(s);
		if (len == 0 || len >= sizeof(hp->host)) {
			*errstr = "bad host";
			return (-1);
		}
		memcpy(hp->host, s, len);
		hp->host[len] = '\0';
		/* An address needs no MX lookup, bracketed or not. */
		if (inet_pton(AF_INET, hp->host, &a4) == 1)
			hp->literal = 1;
		else if (!hostname_valid(hp->host)) {
			*errstr = "invalid host name";
			return (-1);
		}
		if (colon == NULL)
			colon = s + len;
	}
	if (!hp->literal || inet_pton(AF_INET6, hp->host, &a6) != 1) {
		len = strlen(hp->host);
		if (hp->host[len - 1] == '.')
			hp->host[len - 1] = '\0';
		ascii_lower(hp->host);
	}
	if (*colon == ':') {
		if (parse_port(colon + 1, &hp->port) == -1) {
			*errstr = "bad port";
			return (-1);
		}
	}
	return (0);
}

int
cidr_parse(const char *s, struct cidr *c)
{
	char		 buf[INET6_ADDRSTRLEN + 8], *slash;
	const char	*errstr;
	long long	 len;
	int		 max, i, bits;

	memset(c, 0, sizeof(*c));
	if (strlcpy(buf, s, sizeof(buf)) >= sizeof(buf))
		return (-1);
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else
		return (-1);
	if (slash != NULL) {
		len = strtonum(slash, 0, max, &errstr);
		if (errstr != NULL)
			return (-1);
		c->prefixlen = (int)len;
	} else
		c->prefixlen = max;
	/* Clear host bits so that matching is a plain prefix compare. */
	for (i = 0; i < max / 8; i++) {
		bits = c->prefixlen - i * 8;
		if (bits >= 8)
			continue;
		if (bits <= 0)
			c->addr[i] = 0;
		else
			c->addr[i] &= (unsigned char)(0xff << (8 - bits));
	}
	return (0);
}

static int
cidr_match_bytes(const struct cidr *c, const unsigned char *addr, int family)
{
	int	 full = c->prefixlen / 8, rest = c->prefixlen % 8;
	unsigned char mask;

	if (family != c->family)
		return (0);
	if (memcmp(c->addr, addr, (size_t)full) != 0)
		return (0);
	if (rest == 0)
		return (1);
	mask = (unsigned char)(0xff << (8 - rest));
	return ((addr[full] & mask) == c->addr[full]);
}

int
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	static const unsigned char v4mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	unsigned char			 mapped[16];

	if (sa == NULL)
		return (0);
	switch (sa->sa_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)(const void *)sa;
		if (c->family == AF_INET)
			return (cidr_match_bytes(c,
			    (const unsigned char *)&sin->sin_addr, AF_INET));
		/* An IPv6 network such as ::ffff:0:0/96 may cover it. */
		memcpy(mapped, v4mapped, sizeof(v4mapped));
		memcpy(mapped + 12, &sin->sin_addr, 4);
		return (cidr_match_bytes(c, mapped, AF_INET6));
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (c->family == AF_INET &&
		    memcmp(sin6->sin6_addr.s6_addr, v4mapped,
		    sizeof(v4mapped)) == 0)
			return (cidr_match_bytes(c,
			    sin6->sin6_addr.s6_addr + 12, AF_INET));
		return (cidr_match_bytes(c, sin6->sin6_addr.s6_addr,
		    AF_INET6));
	default:
		return (0);
	}
}

int
config_etrn_allowed(const struct config *c, const struct sockaddr *sa)
{
	size_t	 i;

	for (i = 0; i < c->netrn_allow; i++)
		if (cidr_match(&c->etrn_allow[i], sa))
			return (1);
	return (0);
}

const struct relay_domain *
config_relay_domain(const struct config *c, const char *domain)
{
	size_t	 i;

	for (i = 0; i < c->nrelays; i++)
		if (address_domain_match(domain, c->relays[i].name))
			return (&c->relays[i]);
	return (NULL);
}

enum tls_level
config_tls_level(const struct config *c, const char *domain)
{
	const struct relay_domain	*rd;

	if ((rd = config_relay_domain(c, domain)) != NULL && rd->has_tls)
		return (rd->tls);
	return (c->tls_outbound);
}

/* The line on which a key was first set, 0 if it was not. */
static size_t
key_line(const struct parse *p, const char *name)
{
	size_t	 i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return (p->seen[i]);
	return (0);
}

/* Checks that involve more than one key, reported at the later line. */
static int
check_config(struct parse *p, struct config *c)
{
	size_t	 lmin, lmax, lcert, lkey, lreq, lciph, lsoft, lhard;
	char	 why[512];

	lmin = key_line(p, "retry-min");
	lmax = key_line(p, "retry-max");
	lcert = key_line(p, "tls-cert");
	lkey = key_line(p, "tls-key");
	lreq = key_line(p, "tls-required");
	lciph = key_line(p, "tls-ciphers");
	lsoft = key_line(p, "soft-error-limit");
	lhard = key_line(p, "hard-error-limit");
	c->user_line = key_line(p, "user");
	if (c->retry_min > c->retry_max) {
		p->lineno = lmin > lmax ? lmin : lmax;
		return (perr(p, "retry-min (%llds) is greater than retry-max "
		    "(%llds)", (long long)c->retry_min,
		    (long long)c->retry_max));
	}
	/* Pacing that can never start is a mistake, not a choice. */
	if (c->soft_error_limit > c->hard_error_limit) {
		p->lineno = lsoft > lhard ? lsoft : lhard;
		return (perr(p, "soft-error-limit (%u) is greater than "
		    "hard-error-limit (%u)", c->soft_error_limit,
		    c->hard_error_limit));
	}
	if ((lcert == 0) != (lkey == 0)) {
		p->lineno = lcert ? lcert : lkey;
		return (perr(p, "%s", lcert ? "tls-cert without tls-key" :
		    "tls-key without tls-cert"));
	}
	if (c->tls_required && lcert == 0) {
		p->lineno = lreq;
		return (perr(p, "tls-required yes needs tls-cert and "
		    "tls-key"));
	}
	/* A spammer must not make mailbox directories at will. */
	if (c->mailbox[0] != '\0' && c->recipients[0] == '\0' &&
	    !c->recipient_verify) {
		p->lineno = key_line(p, "mailbox");
		return (perr(p, "mailbox needs recipients or "
		    "recipient-verify callout"));
	}
	/* The passwords' file: never one others may read or write. */
	if (c->users[0] != '\0' && users_file_check(c->users, why,
	    sizeof(why)) == -1) {
		p->lineno = key_line(p, "users");
		return (perr(p, "users %s", why));
	}
	if (lciph != 0 && tls_ciphers_check(c->tls_ciphers, why,
	    sizeof(why)) == -1) {
		p->lineno = lciph;
		return (perr(p, "%s", why));
	}
	return (0);
}

int
config_parse_file(const char *path, struct config *c, char *err,
    size_t errsize)
{
	struct parse	 p;
	FILE		*f;
	char		*line = NULL;
	size_t		 linesize = 0;
	ssize_t		 len;
	int		 rc = -1;

	memset(&p, 0, sizeof(p));
	p.file = path;
	p.err = err;
	p.errsize = errsize;
	set_defaults(c);
	if (strlcpy(c->file, path, sizeof(c->file)) >= sizeof(c->file))
		return (perr(&p, "file name too long"));
	if ((f = fopen(path, "r")) == NULL)
		return (perr(&p, "%s", strerror(errno)));
	for (;;) {
		errno = 0;
		if ((len = getline(&line, &linesize, f)) == -1) {
			if (ferror(f)) {
				perr(&p, "read: %s", strerror(errno));
				goto done;
			}
			break;
		}
		p.lineno++;
		if ((size_t)len > CONFIG_LINE_MAX + 1 ||
		    ((size_t)len == CONFIG_LINE_MAX + 1 &&
		    line[len - 1] != '\n')) {
			perr(&p, "line longer than %d bytes", CONFIG_LINE_MAX);
			goto done;
		}
		if (strlen(line) != (size_t)len) {
			perr(&p, "NUL byte in line");
			goto done;
		}
		if (parse_line(&p, c, line) == -1)
			goto done;
	}
	if (check_config(&p, c) == -1)
		goto done;
	rc = 0;
done:
	free(line);
	if (fclose(f) == EOF && rc == 0) {
		p.lineno = 0;
		rc = perr(&p, "close: %s", strerror(errno));
	}
	if (rc == -1)
		config_free(c);
	return (rc);
}

void
config_free(struct config *c)
{
	free(c->relays);
	free(c->resolvers);
	free(c->etrn_allow);
	dkim_keys_free(c->dkim, c->ndkim);
	c->dkim = NULL;
	c->ndkim = 0;
	c->relays = NULL;
	c->resolvers = NULL;
	c->etrn_allow = NULL;
	c->nrelays = c->nresolvers = c->netrn_allow = 0;
}

int
config_load(const char *path, char *err, size_t errsize)
{
	struct config	 c;

	if (path == NULL || *path == '\0') {
		path = getenv("MXFB_CONFIG");
		if (path == NULL || *path == '\0')
			path = CONFIG_DEFAULT_FILE;
	}
	if (config_parse_file(path, &c, err, errsize) == -1)
		return (-1);
	if (cfg != NULL)
		config_free(&loaded);
	loaded = c;
	cfg = &loaded;
	return (0);
}
