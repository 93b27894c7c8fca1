/*
 * config.h - the configuration file: `key value...` lines, # comments.
 * config_load() either returns a complete configuration (defaults filled
 * in) or an error naming file:line.  After loading, the configuration is
 * read-only: the one piece of global state besides the log.
 */
#ifndef MXFB_CONFIG_H
#define MXFB_CONFIG_H

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdint.h>
#include <time.h>

#include "core/dsn.h"
#include "core/tls.h"
#include "core/util.h"

struct dkim_key;		/* core/dkim.h */

#define CONFIG_DEFAULT_FILE	MXFB_SYSCONFDIR "/mxfb/mxfb.conf"

/*
 * Defaults a caller may need when a value is unset: RFC 5321 4.5.3.2
 * gives both the server's and the client's command timeout 5 minutes.
 */
#define CONFIG_TIMEOUT_DEFAULT	300	/* timeout, command-timeout */
/* max-sessions, and receive -c, which overrides it: default and bound. */
#define CONFIG_MAX_SESSIONS_DEFAULT	100
#define CONFIG_MAX_SESSIONS_MAX		100000

/* A host name or [literal] with an optional port (0 = the default). */
struct hostport {
	char		 host[DOMAIN_NAME_SIZE]; /* without brackets */
	int		 literal;	/* was written [host]: no MX lookup */
	int		 port;		/* 0: smtp-port */
};

struct relay_domain {
	char		 name[DOMAIN_NAME_SIZE]; /* lower case, no final dot */
	int		 has_via;
	struct hostport	 via;
	int		 has_tls;	/* `tls LEVEL` given */
	enum tls_level	 tls;		/* else tls-outbound applies */
};

struct cidr {
	int		 family;	/* AF_INET or AF_INET6 */
	unsigned char	 addr[16];
	int		 prefixlen;
};

struct config {
	char		 file[1024];		/* the file it came from */
	char		 hostname[DOMAIN_NAME_SIZE]; /* hostname */
	char		 spool[1024];		/* spool */
	struct relay_domain *relays;		/* relay-domain, repeatable */
	size_t		 nrelays;
	char		 recipients[1024];	/* recipients FILE, "" = none */
	uint64_t	 max_size;		/* max-size, 50M */
	unsigned	 max_recipients;	/* max-recipients, 1000 */
	time_t		 queue_lifetime;	/* queue-lifetime, 5d */
	time_t		 delay_warning;		/* delay-warning, 4h, 0 = off */
	time_t		 retry_min;		/* retry-min, 5m */
	time_t		 retry_max;		/* retry-max, 1h */
	struct hostport	*resolvers;		/* resolver, repeatable; port 0 = 53 */
	size_t		 nresolvers;		/* 0: /etc/resolv.conf */
	int		 smtp_port;		/* smtp-port, 25 */
	struct cidr	*etrn_allow;		/* etrn-allow CIDR..., repeatable */
	size_t		 netrn_allow;
	int		 has_smarthost;
	struct hostport	 smarthost;		/* smarthost HOST[:PORT] */
	int		 log_stderr;		/* log syslog|stderr */
	char		 user[33];		/* user NAME, mxfb */
	size_t		 user_line;		/* its line, 0: the default */

	/* receive */
	time_t		 timeout;		/* timeout, 300s: idle client */
	uint64_t	 queue_minfree;		/* queue-minfree, 100M */
	unsigned	 max_sessions;		/* max-sessions, 100: receive -l */
	unsigned	 max_sessions_per_client; /* max-sessions-per-client, 50,
						   0 = no limit: receive -l */
	uint64_t	 min_data_rate;		/* min-data-rate, 500 bytes/s,
						   0 = no limit */
	unsigned	 soft_error_limit;	/* soft-error-limit, 10: then
						   error-sleep per error */
	unsigned	 hard_error_limit;	/* hard-error-limit, 20: then
						   421 and hang up */
	time_t		 error_sleep;		/* error-sleep, 1s */

	/* flush and probe */
	unsigned	 flush_concurrency;	/* flush-concurrency, 100 */
	unsigned	 flush_per_host;	/* flush-per-host, 10 */
	time_t		 connect_timeout;	/* connect-timeout, 30s */
	time_t		 command_timeout;	/* command-timeout, 300s */
	time_t		 data_timeout;		/* data-timeout, 120s */
	time_t		 data_done_timeout;	/* data-done-timeout, 600s */
	time_t		 dns_timeout;		/* dns-timeout, 5s (x dns-retry) */
	unsigned	 dns_retry;		/* dns-retry, 2 */
	time_t		 claim_timeout;		/* claim-timeout, 2h */

	/* bounce */
	uint64_t	 bounce_size_limit;	/* bounce-size-limit, 100K */
	enum bounce_policy bounce_policy;	/* bounce-policy, all */

	/* STARTTLS in receive: both or neither ("" = off) */
	char		 tls_cert[1024];	/* tls-cert FILE */
	char		 tls_key[1024];		/* tls-key FILE */
	char		 tls_ciphers[1024];	/* tls-ciphers LIST, "" = default */
	int		 tls_required;		/* tls-required yes|no, no */

	/* recipient verification (issue 14) */
	int		 recipient_verify;	/* recipient-verify off|callout:
						   0 off (default), 1 callout */
	char		 verify_db[1024];	/* verify-db FILE, "" = default
						   SPOOL/verify.lmdb */
	time_t		 verify_positive_ttl;	/* verify-positive-ttl, 31d */
	time_t		 verify_negative_ttl;	/* verify-negative-ttl, 3d */
	time_t		 verify_timeout;	/* verify-timeout, 10s: one
						   callout, connect to answer */
	int		 verify_unknown_accept;	/* verify-unknown-when-down
						   defer (0, default)|accept */
	int		 accept_when_primary_up; /* accept-when-primary-up
						   yes|no, yes */
	time_t		 primary_up_window;	/* primary-up-window, 10m */

	/* the outage mailbox (issue 15) */
	char		 mailbox[1024];		/* mailbox DIR, "" = none */
	uint64_t	 mailbox_max_size;	/* mailbox-max-size, 1G */
	time_t		 mailbox_keep;		/* mailbox-keep, 0 */

	/* submission (issue 16): receive -s */
	char		 users[1024];		/* users FILE, "" = none */
	unsigned	 submission_rate;	/* submission-rate N/DURATION, */
	time_t		 submission_window;	/* 200/1h: per account */
	unsigned	 auth_fail_limit;	/* auth-fail-limit, 5: per client
						   (IPv6 /64) per 15 minutes */

	/* DKIM signing of submitted mail (issue 16): keys already read */
	struct dkim_key	**dkim;			/* dkim DOMAIN SELECTOR KEYFILE,
						   repeatable */
	size_t		 ndkim;

	/* TLS in flush and probe */
	enum tls_level	 tls_outbound;		/* tls-outbound LEVEL, may */
	char		 tls_ca_file[1024];	/* tls-ca-file, "" = system */
};

/* The loaded configuration; NULL before config_load() succeeds. */
extern const struct config *cfg;

/*
 * Load path (NULL: $MXFB_CONFIG, else CONFIG_DEFAULT_FILE).  On error
 * returns -1 with "file:line: reason" (or "file: reason") in err.
 * A missing default file is an error too.
 */
int	 config_load(const char *path, char *err, size_t errsize);

/* Parse into a caller-owned struct (for tests); same conventions. */
int	 config_parse_file(const char *path, struct config *, char *err,
	    size_t errsize);
void	 config_free(struct config *);

/* Relay domain for a (case-insensitive, trailing-dot-tolerant) domain. */
const struct relay_domain *config_relay_domain(const struct config *,
	    const char *domain);

/*
 * The tls-outbound level for mail to domain: its relay-domain's `tls`
 * override, else tls-outbound.
 */
enum tls_level config_tls_level(const struct config *, const char *domain);

/* Is the client address inside one of the etrn-allow CIDRs? */
int	 config_etrn_allowed(const struct config *, const struct sockaddr *);

/*
 * Parse "host", "host:port", "[1.2.3.4]:port", "[::1]:25", "[host]".
 * Brackets, and an unbracketed IPv4 address, set literal (no MX lookup);
 * host names are lower-cased without a trailing dot.
 */
int	 hostport_parse(const char *, struct hostport *, const char **errstr);
/* Parse "10.0.0.0/8", "::1", "127.0.0.1"; -1 on error. */
int	 cidr_parse(const char *, struct cidr *);
/* Letters, digits, hyphens and dots; labels 1..63; at most 253. */
int	 hostname_valid(const char *);
/* Does the socket address fall inside the CIDR?  A v4-mapped IPv6
 * address (::ffff:a.b.c.d) is matched as the IPv4 address it maps. */
int	 cidr_match(const struct cidr *, const struct sockaddr *);

#endif
