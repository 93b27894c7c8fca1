/*
 * rcpt_verify.c - recipient verification at RCPT under recipient-verify
 * callout (issue 14 points 2, 4, 8 in part), for receive's RCPT hook and
 * `mxfb verify`.
 *
 * An address of a relay domain is decided by, in order: the recipient
 * database (an unexpired verdict, whatever its source); the primary,
 * asked by a callout (core/callout.c), whose 2xx is remembered as valid
 * for verify-positive-ttl and whose 5xx as invalid for
 * verify-negative-ttl (source callout); else verify-unknown-when-down:
 * 450 4.1.1 (defer) or accepted.  The primary is not asked when its
 * record (spool_primary_read) says it was observed down less than
 * RCPT_VERIFY_DOWN_HOLD seconds ago, when every callout slot of the
 * domain stays taken for half of verify-timeout (SPOOL_CALLOUT_SLOTS
 * across processes, each held for one question), or when this session's callout to it already failed.
 * Every callout that dialled is recorded as an observation (source
 * "callout": connected and EHLO up, else down).
 *
 * Guarantees: no 5xx without a verdict (from the database or the
 * primary's own 5xx); a database that cannot be opened or read (missing,
 * corrupt and being rebuilt) is a miss, logged, never a refusal.  The
 * database handle is per process (opened on first use, re-opened after
 * a fork, as LMDB requires) unless the caller gives one.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cmd/rcpt_primary.h"
#include "cmd/rcpt_verify.h"
#include "core/callout.h"
#include "core/config.h"
#include "core/log.h"
#include "core/mail/address.h"
#include "core/util.h"
#include "spool/spool.h"
#include "spool/verify_db.h"

#define SLOT_POLL_MS	20	/* a busy slot is tried again after */

struct rcpt_verify {
	struct spool		*sp;
	struct verify_db	*db;	/* the caller's, or NULL */
	struct callout		**co;
	size_t			 nco;
};

static struct verify_db	*proc_db;
static pid_t		 proc_db_pid;
static int		 proc_db_broken;

static struct verify_db *db_handle(struct rcpt_verify *);
static enum rv_known	 db_lookup(struct rcpt_verify *, const char *, time_t,
			    struct rv_outcome *);
static int		 primary_down(struct rcpt_verify *, const char *,
			    time_t, char *, size_t);
static struct callout	*callout_of(struct rcpt_verify *, const char *);
static void		 observe(struct rcpt_verify *, const char *,
			    const struct callout_answer *);
static int		 take_slot(struct rcpt_verify *, const char *,
			    int64_t, int *, struct rv_outcome *);
static enum rv_callout	 ask(struct rcpt_verify *, const struct address *,
			    time_t, struct rv_outcome *);

enum rv_action
rcpt_verify_decide(enum rv_known known, enum rv_callout co,
    int unknown_accept, const char **rule)
{
	if (known == RV_KNOWN_VALID || known == RV_KNOWN_INVALID) {
		*rule = "verify-db";
		return (known == RV_KNOWN_VALID ? RV_ACCEPT : RV_REJECT);
	}
	if (co == RV_PRIMARY_VALID || co == RV_PRIMARY_INVALID) {
		*rule = "callout";
		return (co == RV_PRIMARY_VALID ? RV_ACCEPT : RV_REJECT);
	}
	*rule = "unverified";
	return (unknown_accept ? RV_ACCEPT : RV_DEFER);
}

struct rcpt_verify *
rcpt_verify_new(struct spool *sp, struct verify_db *db)
{
	struct rcpt_verify	*rv;

	rv = xcalloc(1, sizeof(*rv));
	rv->sp = sp;
	rv->db = db;
	return (rv);
}

void
rcpt_verify_free(struct rcpt_verify *rv)
{
	size_t	 i;

	if (rv == NULL)
		return;
	for (i = 0; i < rv->nco; i++)
		callout_free(rv->co[i]);
	free(rv->co);
	free(rv);
}

/* The caller's database, or this process's (NULL: none to be had). */
static struct verify_db *
db_handle(struct rcpt_verify *rv)
{
	char	 path[1024], err[1024];

	if (rv->db != NULL)
		return (rv->db);
	if (proc_db_pid == getpid())
		return (proc_db_broken ? NULL : proc_db);
	/* A parent's handle must not be used after fork: left alone. */
	proc_db = NULL;
	proc_db_broken = 0;
	proc_db_pid = getpid();
	if (verify_db_path(cfg->spool, cfg->verify_db, path,
	    sizeof(path)) == -1) {
		log_warnx("verify-db: path too long");
		proc_db_broken = 1;
		return (NULL);
	}
	if (verify_db_open(path, 1, &proc_db, err, sizeof(err)) == -1) {
		log_warnx("verify-db %s: verifying without it", err);
		proc_db_broken = 1;
		return (NULL);
	}
	return (proc_db);
}

static enum rv_known
db_lookup(struct rcpt_verify *rv, const char *addr, time_t now,
    struct rv_outcome *out)
{
	struct verify_db	*db;
	struct verify_entry	 e;

	if ((db = db_handle(rv)) == NULL ||
	    verify_db_lookup(db, addr, now, &e) != 1)
		return (RV_UNKNOWN);
	out->since = e.since;
	out->expires = e.expires;
	out->source = (int)e.source;
	snprintf(out->why, sizeof(out->why), "database: %s by %s",
	    verify_verdict_name(e.verdict), verify_source_name(e.source));
	return (e.verdict == VERIFY_VALID ? RV_KNOWN_VALID : RV_KNOWN_INVALID);
}

/* Its record says the primary was down less than the hold ago. */
static int
primary_down(struct rcpt_verify *rv, const char *domain, time_t now,
    char *why, size_t size)
{
	struct primary_obs	 o;

	if (rv->sp == NULL || spool_primary_read(rv->sp, domain, &o) == -1)
		return (0);
	if (o.up || o.checked > now || now - o.checked >=
	    RCPT_VERIFY_DOWN_HOLD)
		return (0);
	snprintf(why, size, "primary observed down by %s %llds ago",
	    o.source, (long long)(now - o.checked));
	return (1);
}

static struct callout *
callout_of(struct rcpt_verify *rv, const char *domain)
{
	size_t	 i;

	for (i = 0; i < rv->nco; i++)
		if (strcasecmp(callout_domain(rv->co[i]), domain) == 0)
			return (rv->co[i]);
	rv->co = xreallocarray(rv->co, rv->nco + 1, sizeof(*rv->co));
	rv->co[rv->nco] = callout_new(domain);
	return (rv->co[rv->nco++]);
}

/* A callout that dialled is an observation of the primary. */
static void
observe(struct rcpt_verify *rv, const char *domain,
    const struct callout_answer *ans)
{
	struct primary_obs	 o;

	if (!ans->dialled)
		return;
	memset(&o, 0, sizeof(o));
	o.up = ans->connected;
	strlcpy(o.host, ans->host, sizeof(o.host));
	strlcpy(o.source, "callout", sizeof(o.source));
	if (!ans->connected)
		primary_obs_reason(&o, ans->reply);
	if (ans->connected && ans->ext.esmtp) {
		o.have_ehlo = 1;
		o.size_max = ans->ext.size ? ans->ext.maxsize : 0;
		o.smtputf8 = ans->ext.smtputf8;
		o.eightbitmime = ans->ext.eightbitmime;
		o.dsn = ans->ext.dsn;
	}
	if (spool_primary_observe(rv->sp, domain, &o) == -1)
		log_warn("spool: primary record of %s", domain);
}

/*
 * A callout slot of the domain, waiting for one (polling every
 * SLOT_POLL_MS) until half the callout's time is spent: 0 and *fd, or
 * -1 with out->why.
 */
static int
take_slot(struct rcpt_verify *rv, const char *domain, int64_t deadline,
    int *fd, struct rv_outcome *out)
{
	struct timespec	 ts = { 0, SLOT_POLL_MS * 1000000L };
	int64_t		 until = now_ms() + (deadline - now_ms()) / 2;

	for (;;) {
		if (spool_callout_slot(rv->sp, domain, fd) == 0)
			return (0);
		if (errno != EWOULDBLOCK) {
			snprintf(out->why, sizeof(out->why), "callout slot: "
			    "%s", strerror(errno));
			return (-1);
		}
		if (now_ms() >= until)
			break;
		(void)nanosleep(&ts, NULL);
	}
	snprintf(out->why, sizeof(out->why), "all %d callout slots of %s "
	    "are busy", SPOOL_CALLOUT_SLOTS, domain);
	return (-1);
}

/* Ask the primary (when it may be asked) and remember its verdict. */
static enum rv_callout
ask(struct rcpt_verify *rv, const struct address *a, time_t now,
    struct rv_outcome *out)
{
	struct callout_answer	 ans;
	struct verify_db	*db;
	struct callout		*co;
	char			 safe[ADDRESS_PATH_MAX * 4 + 1];
	int64_t			 deadline;
	int			 fd, valid;

	if (rv->sp == NULL) {
		strlcpy(out->why, "no spool: no callout", sizeof(out->why));
		return (RV_CANNOT_ASK);
	}
	if (primary_down(rv, a->domain, now, out->why, sizeof(out->why)))
		return (RV_CANNOT_ASK);
	co = callout_of(rv, a->domain);
	deadline = now_ms() + (int64_t)cfg->verify_timeout * 1000;
	if (take_slot(rv, a->domain, deadline, &fd, out) == -1)
		return (RV_CANNOT_ASK);
	callout_ask(co, cfg, a->addr, deadline, &ans);
	(void)close(fd);
	observe(rv, a->domain, &ans);
	log_safe(safe, sizeof(safe), a->addr);
	log_info("callout for <%s>: %s", safe, ans.reply);
	snprintf(out->why, sizeof(out->why), "callout: %s", ans.reply);
	if (ans.status != CALLOUT_ACCEPTED && ans.status != CALLOUT_REFUSED)
		return (RV_CANNOT_ASK);
	valid = ans.status == CALLOUT_ACCEPTED;
	out->source = VERIFY_SOURCE_CALLOUT;
	out->since = now;
	out->expires = now + (valid ? cfg->verify_positive_ttl :
	    cfg->verify_negative_ttl);
	if ((db = db_handle(rv)) != NULL)
		(void)verify_db_put(db, a->addr, valid ? VERIFY_VALID :
		    VERIFY_INVALID, VERIFY_SOURCE_CALLOUT, now, valid ?
		    cfg->verify_positive_ttl : cfg->verify_negative_ttl);
	return (valid ? RV_PRIMARY_VALID : RV_PRIMARY_INVALID);
}

void
rcpt_verify_run(struct rcpt_verify *rv, const struct address *a,
    time_t now, struct rv_outcome *out)
{
	memset(out, 0, sizeof(*out));
	out->since = out->expires = -1;
	out->callout = RV_NOT_ASKED;
	out->known = db_lookup(rv, a->addr, now, out);
	if (out->known == RV_UNKNOWN)
		out->callout = ask(rv, a, now, out);
	out->action = rcpt_verify_decide(out->known, out->callout,
	    cfg->verify_unknown_accept, &out->rule);
}

int
rcpt_verify_check(struct rcpt_verify *rv, const struct address *a,
    char *reply, size_t size, const char **rule, int *proven)
{
	struct rv_outcome	 out;

	*proven = 0;
	/* RFC 5321 4.5.1: postmaster is always accepted, never asked. */
	if (strcasecmp(a->local_plain, "postmaster") == 0)
		return (0);
	rcpt_verify_run(rv, a, time(NULL), &out);
	*rule = out.rule;
	switch (out.action) {
	case RV_ACCEPT:
		*proven = out.known == RV_KNOWN_VALID ||
		    out.callout == RV_PRIMARY_VALID;
		return (0);
	case RV_REJECT:
		snprintf(reply, size, "550 5.1.1 <%s>: Recipient address "
		    "rejected: User unknown%s", a->addr,
		    out.callout == RV_PRIMARY_INVALID ?
		    " (refused by the primary)" : "");
		return (-1);
	default:
		snprintf(reply, size, "450 4.1.1 <%s>: Recipient address "
		    "rejected: unverified address: primary unreachable",
		    a->addr);
		return (-1);
	}
}
