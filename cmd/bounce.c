/*
 * bounce.c - `mxfb bounce [ID...]`: return failed, expired and delayed
 * mail to its senders as RFC 3464 delivery status notifications.
 *
 * Without IDs (cron): one pass over the queue.  Failed recipients not yet
 * reported get one DSN per message, together with recipients delivered
 * with NOTIFY=SUCCESS to a primary that does not offer DSN (RFC 3461
 * 6.2: Action relayed, 2.0.0, recorded by flush as "relayed"; a primary
 * that offers DSN got NOTIFY and reports itself); a message past
 * queue-lifetime gets a final DSN (4.4.7) and leaves the spool; a
 * message past delay-warning gets one delay DSN, ever.  With IDs
 * (administrator): those messages are returned now (5.0.0; a relayed
 * recipient still gets its 2.0.0) and removed.  NOTIFY (RFC 3461) and
 * bounce-policy decide which recipients are reported; mail from the null
 * sender (our own DSNs among it) is never bounced, only dropped, logged.
 *
 * Crash safety: a message is claimed before it is looked at.  Each DSN
 * is committed under an ID derived from the original's ID, the kind of
 * report and, for partial failure reports, the number of recipients
 * already reported; the spool refuses a second message with that ID
 * (EEXIST).  Only after the DSN is durable is the original's state
 * updated (recipients reported, warned set) or the original removed.
 * A kill -9 between the two leaves the original claimed; the next run
 * recovers the claim, derives the same ID, finds the DSN there and
 * finishes the update: no DSN is lost and none is made twice.  A flush
 * between the crash and the next run would deliver (and so remove) the
 * DSN, and the run would then make it again: the DSN's envelope names
 * what it reports on ("about"), and flush holds it back until the
 * original has recorded it.  The next run finds such a DSN from either
 * side: the original's own work (recover_report, and the derived ID found
 * by warn_delay and expire), or, when the original needs nothing else
 * (an administrator's return, delay warnings since turned off), the
 * held-back DSN itself (recover_original).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cmd/cmd.h"
#include "cmd/queue_ops.h"
#include "core/config.h"
#include "core/dsn.h"
#include "core/log.h"
#include "core/util.h"
#include "spool/spool.h"

#define USAGE	"mxfb bounce [-q] [-C file] [ID ...]"

/* Kinds of DSN (core/dsn.h), part of the derived ID. */
#define TAG_FINAL	DSN_KIND_FINAL
#define TAG_REPORT	DSN_KIND_REPORT
#define TAG_DELAY	DSN_KIND_DELAY

struct bounce {
	struct spool	*sp;
	time_t		 now;
	unsigned	 bounced;
	unsigned	 delayed;
	unsigned	 expired;
	int		 errors;
	int		 badmsg;	/* last error: corrupt message */
};

static unsigned	 count_reported(const struct envelope *);
static const char *suppressed_why(const struct envelope *,
		    const struct recipient *, enum dsn_reason, int);
static int	 queue_dsn(struct bounce *, struct spool_claim *,
		    const struct dsn_report *, size_t, int, unsigned,
		    char *);
static int	 queue_final(struct bounce *, struct spool_claim *,
		    struct dsn_report *, size_t);
static void	 recover_original(struct bounce *, const struct envelope *);
static enum dsn_reason final_reason(const struct recipient *, int);
static struct dsn_report *final_reports(const struct envelope *, int,
		    size_t *);
static void	 mark_after_crash(struct bounce *, struct envelope *,
		    const char *);
static void	 recover_report(struct bounce *, struct spool_claim *);
static enum dsn_reason report_reason(const struct recipient *,
		    enum dsn_reason);
static int	 report_owed(struct bounce *, struct spool_claim *);
static int	 expire(struct bounce *, struct spool_claim *);
static int	 warn_delay(struct bounce *, struct spool_claim *);
static void	 null_sender(struct bounce *, struct spool_claim *, int);
static void	 finish(struct bounce *, struct spool_claim *, int);
static int	 needs_work(const struct bounce *, const struct envelope *);
static int	 visit(const struct envelope *, void *);
static void	 process(struct bounce *, const char *);
static int	 admin_return(struct bounce *, struct spool_claim *);
static int	 claim_held(struct bounce *, const char *,
		    struct spool_claim **);
static void	 hold_again(struct bounce *, const char *);
static int	 admin_one(struct bounce *, const char *);
static int	 bounce_pass(struct bounce *);
static int	 bounce_ids(struct bounce *, int, char **);

/*
 * What to tell about a recipient not done: a relayed one gets its
 * success report whatever else happens to the message; a failed one its
 * failure; the others what the caller says (expired, returned).
 */
static enum dsn_reason
report_reason(const struct recipient *r, enum dsn_reason otherwise)
{
	if (r->state == RCPT_DELIVERED)
		return (DSN_REASON_RELAYED);
	if (r->state == RCPT_FAILED)
		return (DSN_REASON_FAILED);
	return (otherwise);
}

static unsigned
count_reported(const struct envelope *env)
{
	size_t		 i;
	unsigned	 n = 0;

	for (i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].reported)
			n++;
	return (n);
}

/* NULL if this recipient gets a report, else why not (for the log). */
static const char *
suppressed_why(const struct envelope *env, const struct recipient *r,
    enum dsn_reason reason, int admin)
{
	if (!dsn_wanted(r, reason))
		return ("NOTIFY");
	if (!dsn_policy_allows(cfg->bounce_policy, env, r, reason, admin))
		return (cfg->bounce_policy == BOUNCE_NONE ?
		    "bounce-policy none" : "bounce-policy verified");
	return (NULL);
}

/*
 * Build and commit one DSN for the claimed message under its derived
 * ID.  Returns 0 when it was queued now, 1 when it was already there
 * (a previous run made it), -1 on error (logged).
 */
static int
queue_dsn(struct bounce *b, struct spool_claim *c,
    const struct dsn_report *reps, size_t nreps, int tag, unsigned gen,
    char *dsnid)
{
	struct envelope		*env = spool_claim_envelope(c);
	struct envelope		 denv;
	struct recipient	*r;
	struct dsn_params	 p;
	struct dsn_message	 m;
	struct dsn_about	 about;
	struct spool_writer	*w;
	const unsigned char	*msg;
	size_t			 msglen;
	char			 wid[QUEUE_ID_SIZE];
	int			 rv;

	queue_id_derive(env->id, tag, gen, dsnid);
	if (!queue_id_valid(dsnid)) {
		log_warnx("%s: bounce: cannot derive a notification ID",
		    env->id);
		return (-1);
	}
	if ((rv = spool_exists(b->sp, dsnid)) == 1)
		return (1);
	if (rv == -1) {
		log_warn("%s: bounce: spool", env->id);
		return (-1);
	}
	if (spool_claim_message(c, &msg, &msglen) == -1) {
		b->badmsg = errno == EBADMSG;
		log_warn("%s: bounce: message", env->id);
		return (-1);
	}
	memset(&p, 0, sizeof(p));
	p.hostname = cfg->hostname;
	p.dsn_id = dsnid;
	p.now = b->now;
	p.retry_until = env->arrival + cfg->queue_lifetime;
	p.size_limit = cfg->bounce_size_limit;
	if (dsn_build(env, msg, msglen, reps, nreps, &p, &m) == -1) {
		log_warn("%s: bounce: cannot build the notification",
		    env->id);
		return (-1);
	}

	/*
	 * Its arrival is the time it is made, after the claim: every failure
	 * it reports was recorded no later (see mark_after_crash).
	 */
	memset(&denv, 0, sizeof(denv));
	denv.arrival = time(NULL);
	denv.sender = xstrdup("");
	denv.client_addr = xstrdup("local");
	denv.ret = RET_UNSET;
	denv.eightbit = m.eightbit;
	denv.smtputf8 = m.smtputf8;
	memset(&about, 0, sizeof(about));
	(void)strlcpy(about.orig, env->id, sizeof(about.orig));
	about.kind = tag;
	about.gen = gen;
	denv.about = dsn_about_format(&about);
	r = envelope_add_recipient(&denv, env->sender);
	/* A notification never asks for one about itself (RFC 3461). */
	r->notify = NOTIFY_NEVER;

	rv = -1;
	if (spool_writer_begin(b->sp, &w, wid) == -1) {
		log_warn("%s: bounce: spool", env->id);
		goto done;
	}
	if (spool_writer_write(w, m.data, m.len) == -1) {
		log_warn("%s: bounce: spool write", env->id);
		spool_writer_abort(w);
		goto done;
	}
	if (spool_writer_commit_as(w, &denv, dsnid) == -1) {
		if (errno == EEXIST)
			rv = 1;
		else
			log_warn("%s: bounce: spool commit", env->id);
		goto done;
	}
	log_info("%s: from=<>, size=%zu, nrcpt=1 (notification about %s)",
	    dsnid, m.len, env->id);
	rv = 0;
done:
	envelope_free(&denv);
	dsn_message_free(&m);
	return (rv);
}

/*
 * A report of failed (or relayed) recipients with this ID exists but
 * they were not marked (a crash between the two steps).  It holds the
 * outcomes known when it was made: those with a last attempt no later
 * than its arrival.  If that rule marks nothing, mark them all rather than
 * finding the same ID forever.
 */
static void
mark_after_crash(struct bounce *b, struct envelope *env, const char *dsnid)
{
	struct envelope	 denv;
	struct recipient *r;
	time_t		 made = b->now;
	size_t		 i;
	int		 marked = 0;

	memset(&denv, 0, sizeof(denv));
	if (spool_read_envelope(b->sp, dsnid, &denv) == 0) {
		made = denv.arrival;
		envelope_free(&denv);
	}
	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		if (rcpt_report_owed(r) && r->last_attempt <= made) {
			r->reported = 1;
			marked = 1;
		}
	}
	for (i = 0; !marked && i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		if (rcpt_report_owed(r))
			r->reported = 1;
	}
	log_info("%s: sender non-delivery notification: %s (found after "
	    "an interrupted run)", env->id, dsnid);
}

/* Finish an interrupted failure report before anything else. */
static void
recover_report(struct bounce *b, struct spool_claim *c)
{
	struct envelope	*env = spool_claim_envelope(c);
	char		 dsnid[QUEUE_ID_SIZE];
	size_t		 i;

	for (i = 0; i < env->nrcpts; i++)
		if (rcpt_report_owed(&env->rcpts[i]))
			break;
	if (i == env->nrcpts)
		return;
	queue_id_derive(env->id, TAG_REPORT, count_reported(env), dsnid);
	if (spool_exists(b->sp, dsnid) == 1)
		mark_after_crash(b, env, dsnid);
}

/*
 * One of our notifications (dsn) is queued that its original has not
 * recorded (flush holds it back until then): the original's run was
 * interrupted between the two steps.  Record it now.  A failure report
 * is found again by the original's own processing (recover_report); a
 * delay warning or a final report by the time the original needs it
 * (warn_delay, expire: the derived ID exists), but an administrator's
 * return, or a delay warning with warnings turned off since, would wait
 * for ever: those are finished here, from the notification's side.
 */
static void
recover_original(struct bounce *b, const struct envelope *dsn)
{
	struct dsn_about	 a;
	struct envelope		 orig, *env;
	struct spool_claim	*c;
	int			 pending;

	if (dsn_about_parse(dsn->about, &a) == -1)
		return;
	memset(&orig, 0, sizeof(orig));
	if (spool_read_envelope(b->sp, a.orig, &orig) == -1)
		return;
	pending = !orig.claimed && !dsn_about_recorded(&a, &orig);
	envelope_free(&orig);
	if (!pending)
		return;
	if (a.kind == TAG_REPORT) {
		process(b, a.orig);
		return;
	}
	if (spool_claim(b->sp, a.orig, &c) == -1)
		return;		/* someone else has it, or it is gone */
	env = spool_claim_envelope(c);
	if (dsn_about_recorded(&a, env)) {
		finish(b, c, 0);
		return;
	}
	log_info("%s: sender %s notification: %s (found after an interrupted "
	    "run)", env->id, a.kind == TAG_DELAY ? "delay" : "non-delivery",
	    dsn->id);
	if (a.kind == TAG_DELAY)
		env->warned = 1;
	finish(b, c, a.kind == TAG_FINAL);
}

/*
 * Failed and relayed recipients not yet reported: one DSN for all of
 * them.
 */
static int
report_owed(struct bounce *b, struct spool_claim *c)
{
	struct envelope		*env = spool_claim_envelope(c);
	struct dsn_report	*reps;
	struct recipient	*r;
	enum dsn_reason		 reason;
	const char		*why;
	char			 dsnid[QUEUE_ID_SIZE], safe[512];
	size_t			 i, n = 0, nowed = 0;
	unsigned		 gen;
	int			 rv = 0, failure = 0;

	reps = xreallocarray(NULL, env->nrcpts, sizeof(*reps));
	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		if (!rcpt_report_owed(r))
			continue;
		nowed++;
		reason = report_reason(r, DSN_REASON_FAILED);
		why = suppressed_why(env, r, reason, 0);
		if (why != NULL) {
			log_info("%s: to=<%s>, status=%s, no notification "
			    "(%s)", env->id, log_safe(safe, sizeof(safe),
			    r->addr), reason == DSN_REASON_RELAYED ? "relayed" :
			    "bounced", why);
			continue;
		}
		if (reason == DSN_REASON_FAILED)
			failure = 1;
		reps[n].rcpt = r;
		reps[n].reason = reason;
		n++;
	}
	if (nowed == 0)
		goto out;
	gen = count_reported(env);
	if (n > 0) {
		rv = queue_dsn(b, c, reps, n, TAG_REPORT, gen, dsnid);
		if (rv == -1)
			goto out;
		if (rv == 1) {
			mark_after_crash(b, env, dsnid);
			rv = 0;
			goto out;
		}
		log_info("%s: sender %s notification: %s", env->id, failure ?
		    "non-delivery" : "delivery status", dsnid);
		if (failure)
			b->bounced++;
	}
	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		if (rcpt_report_owed(r))
			r->reported = 1;
	}
out:
	free(reps);
	return (rv);
}

/* Past queue-lifetime: a final DSN for what is left, then remove. */
static int
expire(struct bounce *b, struct spool_claim *c)
{
	struct envelope		*env = spool_claim_envelope(c);
	struct dsn_report	*reps;
	struct recipient	*r;
	enum dsn_reason		 reason;
	const char		*why;
	char			 safe[512], st[16];
	size_t			 i, n = 0;
	int			 rv;

	reps = final_reports(env, 0, &n);
	if ((rv = queue_final(b, c, reps, n)) == -1)
		return (-1);
	/* Logged once the notification is safe in the spool. */
	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		if (rcpt_finished(r))
			continue;
		reason = final_reason(r, 0);
		dsn_status(r, reason, st, sizeof(st));
		why = suppressed_why(env, r, reason, 0);
		log_info("%s: to=<%s>, delay=%lld, dsn=%s, status=%s, %s%s%s",
		    env->id, log_safe(safe, sizeof(safe), r->addr),
		    (long long)(b->now - env->arrival), st,
		    reason == DSN_REASON_FAILED ? "bounced" :
		    reason == DSN_REASON_RELAYED ? "relayed" : "expired",
		    why ? "not returned (" : "returned to sender",
		    why ? why : "", why ? ")" : "");
	}
	b->expired++;
	finish(b, c, 1);
	return (0);
}

/* Why a recipient is in a final report: expiry, or the administrator. */
static enum dsn_reason
final_reason(const struct recipient *r, int admin)
{
	if (!admin)
		return (report_reason(r, DSN_REASON_EXPIRED));
	return (r->state == RCPT_DELIVERED ? DSN_REASON_RELAYED :
	    DSN_REASON_ADMIN);
}

/* The recipients a final report tells of (*n of them; free the array). */
static struct dsn_report *
final_reports(const struct envelope *env, int admin, size_t *n)
{
	struct dsn_report	*reps;
	struct recipient	*r;
	size_t			 i;

	reps = xreallocarray(NULL, env->nrcpts, sizeof(*reps));
	*n = 0;
	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		reps[*n].reason = final_reason(r, admin);
		if (rcpt_finished(r) ||
		    suppressed_why(env, r, reps[*n].reason, admin) != NULL)
			continue;
		reps[*n].rcpt = r;
		(*n)++;
	}
	return (reps);
}

/* The one delay warning for recipients still waiting. */
static int
warn_delay(struct bounce *b, struct spool_claim *c)
{
	struct envelope		*env = spool_claim_envelope(c);
	struct dsn_report	*reps;
	struct recipient	*r;
	char			 dsnid[QUEUE_ID_SIZE];
	size_t			 i, n = 0;
	int			 rv;

	reps = xreallocarray(NULL, env->nrcpts, sizeof(*reps));
	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		if (r->state == RCPT_DELIVERED || r->state == RCPT_FAILED ||
		    suppressed_why(env, r, DSN_REASON_DELAYED, 0) != NULL)
			continue;
		reps[n].rcpt = r;
		reps[n].reason = DSN_REASON_DELAYED;
		n++;
	}
	if (n > 0) {
		rv = queue_dsn(b, c, reps, n, TAG_DELAY, 0, dsnid);
		if (rv == -1) {
			free(reps);
			return (-1);
		}
		log_info("%s: sender delay notification: %s%s", env->id, dsnid,
		    rv == 1 ? " (found after an interrupted run)" : "");
		if (rv == 0)
			b->delayed++;
	} else
		log_info("%s: delayed, no delay notification (NOTIFY or "
		    "bounce-policy)", env->id);
	free(reps);
	env->warned = 1;
	return (0);
}

/*
 * Mail from <> (bounces, ours among them) is never returned: failures
 * are marked reported, an expired message is dropped.  Both logged.
 */
static void
null_sender(struct bounce *b, struct spool_claim *c, int expired)
{
	struct envelope		*env = spool_claim_envelope(c);
	struct recipient	*r;
	char			 safe[512];
	size_t			 i;

	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		if (rcpt_report_owed(r)) {
			log_info("%s: to=<%s>, status=%s, not returned: "
			    "the sender is <>", env->id,
			    r->state == RCPT_FAILED ? "bounced" : "relayed",
			    log_safe(safe, sizeof(safe), r->addr));
			r->reported = 1;
		}
	}
	if (expired) {
		log_info("%s: from=<>, status=expired, dropped: mail from the "
		    "null sender is never returned", env->id);
		b->expired++;
		finish(b, c, 1);
		return;
	}
	finish(b, c, envelope_finished(env));
}

/*
 * Remove the message (logged) or give it back.  The claim is consumed
 * whatever the outcome; a failure is logged and counted.
 */
static void
finish(struct bounce *b, struct spool_claim *c, int remove)
{
	struct envelope	*env = spool_claim_envelope(c);
	char		 id[QUEUE_ID_SIZE];

	(void)strlcpy(id, env->id, sizeof(id));
	if (remove) {
		if (spool_claim_remove(c) == -1) {
			log_warn("%s: bounce: remove", id);
			b->errors = 1;
		} else
			log_info("%s: removed", id);
		return;
	}
	if (spool_unclaim(c) == -1) {
		log_warn("%s: bounce: unclaim", id);
		b->errors = 1;
	}
}

/* Anything for bounce to do with this message (seen unclaimed)? */
static int
needs_work(const struct bounce *b, const struct envelope *env)
{
	time_t	 age = b->now - env->arrival;
	size_t	 i;

	if (env->held || env->claimed)
		return (0);
	if (age >= cfg->queue_lifetime || envelope_finished(env))
		return (1);
	for (i = 0; i < env->nrcpts; i++)
		if (rcpt_report_owed(&env->rcpts[i]))
			return (1);
	if (cfg->delay_warning > 0 && !env->warned &&
	    age >= cfg->delay_warning && env->sender[0] != '\0')
		return (1);
	return (0);
}

static void
process(struct bounce *b, const char *id)
{
	struct spool_claim	*c;
	struct envelope		*env;
	time_t			 age;

	if (spool_claim(b->sp, id, &c) == -1) {
		if (errno != ENOENT && errno != EBADMSG) {
			log_warn("%s: bounce: claim", id);
			b->errors = 1;
		}
		return;		/* someone else has it, or it is gone */
	}
	env = spool_claim_envelope(c);
	age = b->now - env->arrival;
	if (env->sender[0] == '\0') {
		null_sender(b, c, age >= cfg->queue_lifetime);
		return;
	}
	recover_report(b, c);
	if (envelope_finished(env)) {
		/* Nothing left to do (a crash came before the removal). */
		finish(b, c, 1);
		return;
	}
	if (age >= cfg->queue_lifetime) {
		if (expire(b, c) == -1)
			goto fail;
		return;
	}
	if (report_owed(b, c) == -1)
		goto fail;
	if (cfg->delay_warning > 0 && !env->warned &&
	    age >= cfg->delay_warning && warn_delay(b, c) == -1)
		goto fail;
	finish(b, c, envelope_finished(env));
	return;
fail:
	b->errors = 1;
	if (b->badmsg) {
		b->badmsg = 0;
		if (spool_quarantine(c) == -1)
			log_warn("%s: bounce: quarantine", id);
		return;
	}
	if (spool_unclaim(c) == -1)
		log_warn("%s: bounce: unclaim", id);
}

static int
visit(const struct envelope *env, void *arg)
{
	struct bounce	*b = arg;
	char		 id[QUEUE_ID_SIZE];

	if (env->sender[0] == '\0' && env->about != NULL)
		recover_original(b, env);
	if (!needs_work(b, env))
		return (0);
	(void)strlcpy(id, env->id, sizeof(id));
	process(b, id);
	return (0);
}

static int
bounce_pass(struct bounce *b)
{
	if (spool_recover(b->sp, cfg->claim_timeout) == -1) {
		log_cmd_error("spool recovery");
		return (EXIT_IOERR);
	}
	if (spool_foreach(b->sp, visit, b) == -1) {
		log_cmd_error("spool %s", cfg->spool);
		return (EXIT_IOERR);
	}
	return (b->errors ? EXIT_TEMPFAIL : 0);
}

/* The administrator returns a message now, whatever its state. */
static int
admin_return(struct bounce *b, struct spool_claim *c)
{
	struct envelope		*env = spool_claim_envelope(c);
	struct dsn_report	*reps;
	struct recipient	*r;
	enum dsn_reason		 reason;
	const char		*why;
	char			 safe[512];
	size_t			 i, n = 0;
	int			 rv;

	if (env->sender[0] == '\0') {
		log_info("%s: from=<>, returned by the administrator (uid "
		    "%lu): dropped, mail from the null sender is never "
		    "returned", env->id, cmd_caller_uid());
		finish(b, c, 1);
		return (0);
	}
	recover_report(b, c);
	reps = final_reports(env, 1, &n);
	if ((rv = queue_final(b, c, reps, n)) == -1)
		return (-1);
	/* Logged once the notification is safe in the spool. */
	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		if (rcpt_finished(r))
			continue;
		reason = final_reason(r, 1);
		why = suppressed_why(env, r, reason, 1);
		log_info("%s: to=<%s>, dsn=%s, status=%s (uid %lu)%s%s%s",
		    env->id, log_safe(safe, sizeof(safe), r->addr),
		    reason == DSN_REASON_RELAYED ? "2.0.0" : "5.0.0",
		    reason == DSN_REASON_RELAYED ? "relayed, removed by the "
		    "administrator" : "returned by the administrator",
		    cmd_caller_uid(), why ? ", no notification (" : "",
		    why ? why : "", why ? ")" : "");
	}
	if (rv == 0)
		b->bounced++;
	finish(b, c, 1);
	return (0);
}

/*
 * The last DSN of a message that then leaves the spool (expiry, or the
 * administrator's bounce ID): queued and logged, reps freed.  Returns
 * what queue_dsn does, or 2 when there was nothing to report.
 */
static int
queue_final(struct bounce *b, struct spool_claim *c, struct dsn_report *reps,
    size_t n)
{
	char	 dsnid[QUEUE_ID_SIZE];
	int	 rv;

	if (n == 0) {
		free(reps);
		return (2);
	}
	rv = queue_dsn(b, c, reps, n, TAG_FINAL, 0, dsnid);
	free(reps);
	if (rv == -1)
		return (-1);
	log_info("%s: sender non-delivery notification: %s%s",
	    spool_claim_envelope(c)->id, dsnid, rv == 1 ?
	    " (found after an interrupted run)" : "");
	return (rv);
}

/*
 * A held message, for the administrator's bounce ID: returning it is the
 * administrator's decision too.  The spool claims only from the queue, so
 * it is released and then claimed; if that claim fails, it is held again.
 * 0 claimed, 1 no such message, 2 busy or failed (said on stderr).
 */
static int
claim_held(struct bounce *b, const char *id, struct spool_claim **cp)
{
	struct envelope	 env;
	int		 held, claimed;

	memset(&env, 0, sizeof(env));
	if (spool_read_envelope(b->sp, id, &env) == -1) {
		log_cmd_errorx("%s: no such message", id);
		return (1);
	}
	held = env.held;
	claimed = env.claimed;
	envelope_free(&env);
	if (claimed || !held || spool_release(b->sp, id) == -1) {
		log_cmd_errorx("%s: busy (being delivered or bounced), "
		    "try again", id);
		return (2);
	}
	if (spool_claim(b->sp, id, cp) == -1) {
		if (errno == EBADMSG) {
			log_cmd_errorx("%s: unreadable, moved to corrupt/", id);
			return (2);
		}
		hold_again(b, id);
		log_cmd_errorx("%s: busy (being delivered or bounced), "
		    "try again", id);
		return (2);
	}
	return (0);
}

/*
 * Back to hold/ after a failed return.  Only a flush that listed the
 * queue in the moment the message was there can have taken it: then it
 * is no longer held, and that is said.
 */
static void
hold_again(struct bounce *b, const char *id)
{
	if (spool_hold(b->sp, id) == -1)
		log_cmd_error("%s: no longer held (hold)", id);
}

/* 0 done, 1 no such message, 2 busy or failed. */
static int
admin_one(struct bounce *b, const char *id)
{
	struct spool_claim	*c;
	int			 held = 0, rv;

	if (spool_claim(b->sp, id, &c) == -1) {
		if (errno != ENOENT) {
			log_cmd_error("%s", id);
			return (2);
		}
		if ((rv = claim_held(b, id, &c)) != 0)
			return (rv);
		held = 1;
	}
	if (admin_return(b, c) == -1) {
		if (b->badmsg) {
			b->badmsg = 0;
			if (spool_quarantine(c) == -1)
				log_warn("%s: bounce: quarantine", id);
		} else if (spool_unclaim(c) == -1)
			log_warn("%s: bounce: unclaim", id);
		else if (held)
			hold_again(b, id);
		log_cmd_errorx("%s: could not be returned", id);
		return (2);
	}
	return (0);
}

static int
bounce_ids(struct bounce *b, int argc, char **argv)
{
	int	 i, r, missing = 0, failed = 0;

	if (spool_recover(b->sp, cfg->claim_timeout) == -1) {
		log_cmd_error("spool recovery");
		return (EXIT_IOERR);
	}
	for (i = 0; i < argc; i++) {
		r = admin_one(b, argv[i]);
		if (r == 1)
			missing = 1;
		else if (r == 2)
			failed = 1;
	}
	if (failed)
		return (EXIT_TEMPFAIL);
	return (missing ? 1 : 0);
}

int
cmd_bounce(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help",	no_argument,	NULL, 'h' },
		{ NULL,		0,		NULL, 0 }
	};
	struct bounce	 b;
	int		 ch, i, rv, quiet = 0;

	while ((ch = getopt_long(argc, argv, "C:hq", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			cmd_set_config_file(optarg);
			break;
		case 'q':
			quiet = 1;	/* for cron: the log says it all */
			break;
		case 'h':
			cmd_usage(USAGE, 1);
		default:
			cmd_usage(USAGE, 0);
		}
	}
	argc -= optind;
	argv += optind;
	cmd_check_ids(argc, argv);
	cmd_load_config();
	cmd_become_user(0);
	if (sodium_init() == -1) {
		log_cmd_errorx("libsodium initialisation failed");
		return (EXIT_SOFTWARE);
	}

	memset(&b, 0, sizeof(b));
	b.now = time(NULL);
	if ((b.sp = queue_open_existing()) == NULL) {
		/* A spool no mail has reached yet: an empty queue. */
		for (i = 0; i < argc; i++)
			log_cmd_errorx("%s: no such message", argv[i]);
		rv = argc > 0 ? 1 : 0;
	} else {
		rv = argc > 0 ? bounce_ids(&b, argc, argv) : bounce_pass(&b);
		spool_close(b.sp);
	}
	if (!quiet && (rv == 0 || rv == 1 || rv == EXIT_TEMPFAIL))
		printf("bounced %u, delayed %u, expired %u\n", b.bounced,
		    b.delayed, b.expired);
	return (rv);
}
