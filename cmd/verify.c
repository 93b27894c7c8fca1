/*
 * verify.c - `mxfb verify`: what this host knows about recipients
 * (issue 14 point 5).
 *
 *   verify [-j] ADDR...        decide each address from what is known,
 *                              without the network, and say why
 *   verify -l [-j] [-d DOMAIN] list the recipient database
 *   verify -x ADDR...          forget addresses
 *
 * An address is decided as RCPT would decide it without asking anyone:
 * outside the relay domains (or a relay trick): invalid (source config);
 * with a `recipients` file: listed (or postmaster) valid, else invalid
 * (source file); else, with `recipient-verify callout`, the database's
 * unexpired entry; else the primary, asked by a callout as RCPT asks it
 * (cmd/rcpt_verify.c: its 2xx or 5xx decides and is remembered, the
 * reply is shown); when it cannot be asked, undecided (exit 75), or
 * valid under verify-unknown-when-down accept.  Without a recipients
 * file and with
 * recipient-verify off, RCPT takes every address of a relay domain:
 * valid (source config).
 *
 * Exit: 0 when every address is valid, else 1 when one is invalid, else
 * 75 (undecided): the worst wins, invalid over undecided.  -x: 0, or 1
 * when an address was not known.  A malformed address: 64, nothing done.
 * The database is used only with `recipient-verify callout` (-l and -x
 * exit 78 without it, and when it lies on a network file system).
 * Addresses are shown escaped (text_out.c): they may hold any byte.
 */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cmd/cmd.h"
#include "cmd/rcpt_verify.h"
#include "cmd/text_out.h"
#include "core/mail/address.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "spool/spool.h"
#include "spool/verify_db.h"

#define USAGE	"mxfb verify [-C file] [-j] address ...\n" \
		"       mxfb verify [-C file] -l [-j] [-d domain]\n" \
		"       mxfb verify [-C file] -x address ..."

enum outcome { OUT_VALID, OUT_UNDECIDED, OUT_INVALID };

/* One decision: a verdict (or none) and why. */
struct decision {
	enum outcome	 outcome;
	const char	*source;	/* "config", "file", "callout", ... */
	int64_t		 since, expires; /* -1: none */
	char		 why[1200];
};

struct lister {
	int		 json;
	time_t		 now;
	size_t		 n;
};

static void	 check_addresses(int, char **);
static struct verify_db *open_db(int);
static void	 decide(struct verify_db *, struct rcpt_verify *,
		    const char *, time_t, struct decision *);
static void	 decide_callout(struct rcpt_verify *, const struct address *,
		    time_t, struct decision *);
static void	 decide_file(const struct address *, struct decision *);
static void	 show(const char *, const struct decision *, int);
static void	 format_time(int64_t, char *, size_t);
static void	 format_age(int64_t, char *, size_t);
static int	 list_one(const struct verify_entry *, void *);
static int	 run_list(const char *, int);
static int	 run_forget(int, char **);
static int	 run_verify(int, char **, int);

/* Every argument must be an address a client could give at RCPT. */
static void
check_addresses(int argc, char **argv)
{
	struct address	 a;
	const char	*end;
	char		 path[ADDRESS_PATH_MAX + 8], safe[128];
	int		 i;

	for (i = 0; i < argc; i++) {
		if (bsnprintf(path, sizeof(path), "<%s>", argv[i]) == -1 ||
		    address_parse_path(path, 0, 1, &a, &end) != ADDRESS_OK ||
		    *end != '\0' || a.domain[0] == '\0') {
			log_safe(safe, sizeof(safe), argv[i]);
			log_cmd_errorx("not an address: \"%s\"", safe);
			exit(EXIT_USAGE);
		}
	}
}

/*
 * The database, or NULL when it cannot be had (logged; lookups then
 * miss).  A network file system is a configuration error: exit 78.
 */
static struct verify_db *
open_db(int must)
{
	struct verify_db *db;
	char		 path[1024], err[1024];

	if (verify_db_path(cfg->spool, cfg->verify_db, path,
	    sizeof(path)) == -1) {
		log_cmd_errorx("verify-db: path too long");
		exit(EXIT_CONFIG);
	}
	if (verify_db_open(path, 1, &db, err, sizeof(err)) == 0)
		return (db);
	if (errno == EREMOTE) {
		log_cmd_errorx("verify-db %s", err);
		exit(EXIT_CONFIG);
	}
	/* No spool yet: nothing is known. */
	if (errno == ENOENT)
		return (NULL);
	log_cmd_errorx("verify-db %s", err);
	if (must)
		exit(EXIT_IOERR);
	return (NULL);
}

/* The recipients file decides every address of the relay domains. */
static void
decide_file(const struct address *a, struct decision *d)
{
	struct rcptlist	*rl;
	struct stat	 st;
	char		 err[1024];

	d->source = "file";
	if (strcasecmp(a->local_plain, "postmaster") == 0) {
		d->outcome = OUT_VALID;
		strlcpy(d->why, "postmaster is always accepted (RFC 5321 "
		    "4.5.1)", sizeof(d->why));
		return;
	}
	if ((rl = rcptlist_load(cfg->recipients, err, sizeof(err))) == NULL) {
		d->outcome = OUT_UNDECIDED;
		snprintf(d->why, sizeof(d->why), "recipients %s", err);
		return;
	}
	if (stat(cfg->recipients, &st) == 0)
		d->since = st.st_mtime;
	if (rcptlist_match(rl, a->local_plain, a->domain)) {
		d->outcome = OUT_VALID;
		snprintf(d->why, sizeof(d->why), "listed in %s",
		    cfg->recipients);
	} else {
		d->outcome = OUT_INVALID;
		snprintf(d->why, sizeof(d->why), "not listed in %s",
		    cfg->recipients);
	}
	rcptlist_free(rl);
}

/* Not known: the primary decides, as at RCPT. */
static void
decide_callout(struct rcpt_verify *rv, const struct address *a, time_t now,
    struct decision *d)
{
	struct rv_outcome	 out;

	if (strcasecmp(a->local_plain, "postmaster") == 0) {
		d->outcome = OUT_VALID;
		strlcpy(d->why, "postmaster is always accepted (RFC 5321 "
		    "4.5.1)", sizeof(d->why));
		return;
	}
	rcpt_verify_run(rv, a, now, &out);
	d->since = out.since;
	d->expires = out.expires;
	d->source = out.callout == RV_PRIMARY_VALID ||
	    out.callout == RV_PRIMARY_INVALID ? "callout" : NULL;
	if (out.known != RV_UNKNOWN)
		d->source = verify_source_name(out.source);
	switch (out.action) {
	case RV_ACCEPT:
		d->outcome = OUT_VALID;
		break;
	case RV_REJECT:
		d->outcome = OUT_INVALID;
		break;
	default:
		d->outcome = OUT_UNDECIDED;
		break;
	}
	if (out.action == RV_ACCEPT && d->source == NULL)
		(void)bsnprintf(d->why, sizeof(d->why), "not known, accepted "
		    "unverified (verify-unknown-when-down accept): %s",
		    out.why);
	else if (out.action == RV_DEFER)
		(void)bsnprintf(d->why, sizeof(d->why), "not known, the "
		    "primary cannot be asked now: %s", out.why);
	else
		strlcpy(d->why, out.why, sizeof(d->why));
}

static void
decide(struct verify_db *db, struct rcpt_verify *rv, const char *addr,
    time_t now, struct decision *d)
{
	struct verify_entry e;
	struct address	 a;
	const char	*end, *trick;
	char		 path[ADDRESS_PATH_MAX + 8], age[64];

	memset(d, 0, sizeof(*d));
	d->since = d->expires = -1;
	d->source = "config";
	(void)bsnprintf(path, sizeof(path), "<%s>", addr);
	(void)address_parse_path(path, 0, 1, &a, &end);
	if ((trick = address_relay_trick(&a)) != NULL) {
		d->outcome = OUT_INVALID;
		snprintf(d->why, sizeof(d->why), "relay access denied (%s)",
		    trick);
		return;
	}
	if (config_relay_domain(cfg, a.domain) == NULL) {
		d->outcome = OUT_INVALID;
		strlcpy(d->why, "not a relay domain", sizeof(d->why));
		return;
	}
	if (cfg->recipients[0] != '\0') {
		decide_file(&a, d);
		return;
	}
	if (!cfg->recipient_verify) {
		d->outcome = OUT_VALID;
		strlcpy(d->why, "every address of a relay domain is "
		    "accepted (no recipients file, recipient-verify off)",
		    sizeof(d->why));
		return;
	}
	if (db != NULL && verify_db_lookup(db, addr, now, &e) == 1) {
		d->outcome = e.verdict == VERIFY_VALID ? OUT_VALID :
		    OUT_INVALID;
		d->source = verify_source_name(e.source);
		d->since = e.since;
		d->expires = e.expires;
		format_age((int64_t)now - e.since, age, sizeof(age));
		snprintf(d->why, sizeof(d->why), "database: %s by %s %s ago",
		    verify_verdict_name(e.verdict), d->source, age);
		return;
	}
	decide_callout(rv, &a, now, d);
}

static void
format_time(int64_t t, char *buf, size_t size)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)bsnprintf(buf, size, "%lld", (long long)t);
}

/* "3d", "5h", "12m", "40s". */
static void
format_age(int64_t secs, char *buf, size_t size)
{
	if (secs < 0)
		secs = 0;
	if (secs >= 86400)
		(void)bsnprintf(buf, size, "%lldd", (long long)(secs / 86400));
	else if (secs >= 3600)
		(void)bsnprintf(buf, size, "%lldh", (long long)(secs / 3600));
	else if (secs >= 60)
		(void)bsnprintf(buf, size, "%lldm", (long long)(secs / 60));
	else
		(void)bsnprintf(buf, size, "%llds", (long long)secs);
}

static void
show(const char *addr, const struct decision *d, int json)
{
	static const char *names[] = { "valid", "undecided", "invalid" };
	char		 when[64];

	if (json) {
		fputs("{\"addr\":", stdout);
		json_string(stdout, addr);
		printf(",\"verdict\":\"%s\",\"source\":",
		    d->outcome == OUT_UNDECIDED ? "unknown" :
		    names[d->outcome]);
		if (d->source != NULL)
			json_string(stdout, d->source);
		else
			fputs("null", stdout);
		if (d->since >= 0)
			printf(",\"since\":%lld", (long long)d->since);
		else
			fputs(",\"since\":null", stdout);
		if (d->expires >= 0)
			printf(",\"expires\":%lld", (long long)d->expires);
		else
			fputs(",\"expires\":null", stdout);
		fputs(",\"reason\":", stdout);
		json_string(stdout, d->why);
		fputs("}\n", stdout);
		return;
	}
	text_str(stdout, addr);
	printf(": %s (", names[d->outcome]);
	text_str(stdout, d->why);
	if (d->expires >= 0) {
		format_time(d->expires, when, sizeof(when));
		printf(", until %s", when);
	}
	fputs(")\n", stdout);
}

static int
list_one(const struct verify_entry *e, void *arg)
{
	struct lister	*l = arg;
	char		 since[64], until[64];

	l->n++;
	if (l->json) {
		fputs("{\"addr\":", stdout);
		json_string(stdout, e->addr);
		printf(",\"verdict\":\"%s\",\"source\":\"%s\",\"since\":%lld,"
		    "\"expires\":%lld}\n", verify_verdict_name(e->verdict),
		    verify_source_name(e->source), (long long)e->since,
		    (long long)e->expires);
		return (0);
	}
	format_time(e->since, since, sizeof(since));
	format_time(e->expires, until, sizeof(until));
	text_str(stdout, e->addr);
	printf(" %s %s since %s until %s\n", verify_verdict_name(e->verdict),
	    verify_source_name(e->source), since, until);
	return (0);
}

static int
run_list(const char *domain, int json)
{
	struct verify_db *db;
	struct lister	 l;
	int		 rc;

	memset(&l, 0, sizeof(l));
	l.json = json;
	l.now = time(NULL);
	if ((db = open_db(1)) == NULL)
		return (0);
	rc = verify_db_walk(db, domain, l.now, list_one, &l);
	verify_db_close(db);
	if (rc == -1) {
		log_cmd_errorx("verify-db: cannot list it (see the log)");
		return (EXIT_IOERR);
	}
	return (0);
}

static int
run_forget(int argc, char **argv)
{
	struct verify_db *db;
	char		 safe[ADDRESS_PATH_MAX * 4 + 1];
	int		 i, r, missing = 0, ioerr = 0;

	if ((db = open_db(1)) == NULL) {
		for (i = 0; i < argc; i++) {
			log_safe(safe, sizeof(safe), argv[i]);
			log_cmd_errorx("<%s>: not known", safe);
		}
		return (1);
	}
	for (i = 0; i < argc; i++) {
		log_safe(safe, sizeof(safe), argv[i]);
		if ((r = verify_db_forget(db, argv[i])) == 1)
			log_info("verify-db: <%s> forgotten by administrator "
			    "(uid %lu)", safe, cmd_caller_uid());
		else if (r == 0) {
			log_cmd_errorx("<%s>: not known", safe);
			missing = 1;
		} else
			ioerr = 1;
	}
	verify_db_close(db);
	if (ioerr)
		return (EXIT_IOERR);
	return (missing ? 1 : 0);
}

static int
run_verify(int argc, char **argv, int json)
{
	struct verify_db *db = NULL;
	struct rcpt_verify *rv = NULL;
	struct spool	*sp = NULL;
	struct decision	 d;
	enum outcome	 worst = OUT_VALID;
	time_t		 now = time(NULL);
	int		 i;

	if (cfg->recipient_verify && cfg->recipients[0] == '\0') {
		db = open_db(0);
		/* Without the spool: no callout slot, the primary unasked. */
		if (spool_open(cfg->spool, 1, &sp) == -1) {
			log_warn("spool %s", cfg->spool);
			sp = NULL;
		}
		rv = rcpt_verify_new(sp, db);
	}
	for (i = 0; i < argc; i++) {
		decide(db, rv, argv[i], now, &d);
		show(argv[i], &d, json);
		if (d.outcome > worst)
			worst = d.outcome;
	}
	rcpt_verify_free(rv);
	if (sp != NULL)
		spool_close(sp);
	verify_db_close(db);
	switch (worst) {
	case OUT_VALID:
		return (0);
	case OUT_INVALID:
		return (1);
	default:
		return (EXIT_TEMPFAIL);
	}
}

int
cmd_verify(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help",	no_argument,	NULL, 'h' },
		{ NULL,		0,		NULL, 0 }
	};
	const char	*domain = NULL;
	int		 ch, json = 0, list = 0, forget = 0;

	while ((ch = getopt_long(argc, argv, "C:d:hjlx", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'C':
			cmd_set_config_file(optarg);
			break;
		case 'd':
			domain = optarg;
			break;
		case 'h':
			cmd_usage(USAGE, 1);
		case 'j':
			json = 1;
			break;
		case 'l':
			list = 1;
			break;
		case 'x':
			forget = 1;
			break;
		default:
			cmd_usage(USAGE, 0);
		}
	}
	argc -= optind;
	argv += optind;
	if ((list && (forget || argc > 0)) || (!list && domain != NULL) ||
	    (forget && json) || (!list && argc == 0))
		cmd_usage(USAGE, 0);
	if (domain != NULL && !address_domain_valid(domain)) {
		log_cmd_errorx("not a domain: \"%s\"", domain);
		return (EXIT_USAGE);
	}
	check_addresses(argc, argv);

	cmd_load_config();
	/* A callout may be made: the spool holds its slots, as for RCPT. */
	cmd_become_user(!list && !forget && cfg->recipient_verify &&
	    cfg->recipients[0] == '\0');
	if ((list || forget) && !cfg->recipient_verify) {
		log_cmd_errorx("%s: recipient-verify is off: there is no "
		    "recipient database", cfg->file);
		return (EXIT_CONFIG);
	}
	if (list)
		return (run_list(domain, json));
	if (forget)
		return (run_forget(argc, argv));
	return (run_verify(argc, argv, json));
}
