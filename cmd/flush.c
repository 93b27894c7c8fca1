/*
 * flush.c - `mxfb flush [-f] [-d DOMAIN] [ID...]`: deliver what is due to
 * the primaries.
 *
 * Guarantees:
 * - A message is delivered only while this process holds its claim (the
 *   spool's atomic rename), so concurrent flushes, ETRN-started flushes,
 *   bounce, and flushes on other hosts sharing the spool never hand one
 *   message over twice.  The only duplicates possible are those of every
 *   MTA: a crash or a lost connection between the primary's 250 and our
 *   state update (at most the messages in flight; after a system crash
 *   also the last second's removals, up to 32 per delivery thread, whose
 *   one shared directory fsync had not happened yet).  A message is
 *   claimed only once a session with its host is up: none is held while
 *   a host is being connected to.
 * - A message whose bytes do not match their checksum is never sent: it
 *   is moved to corrupt/ and logged.
 * - Per recipient: 2xx delivered, 5xx failed (kept for `bounce`), 4xx or
 *   no connection deferred with back-off (retry-min doubling to
 *   retry-max).  A message leaves the spool only when every recipient is
 *   delivered, or failed and already reported by bounce.
 * - NOTIFY=SUCCESS (RFC 3461): a primary offering DSN gets the parameters
 *   and reports itself; when it does not, the recipient is delivered
 *   "relayed" (its 2xx kept as last error) and the message stays until
 *   bounce has sent the sender an Action: relayed report (6.2).
 * - Messages are grouped by recipient domain, domains by the next-hop
 *   host their route chooses (cmd/flush_engine.c): messages of every
 *   domain on one host share its connections (RSET between messages),
 *   up to flush-concurrency connections in all and flush-per-host to one
 *   host, run by threads of one forked delivery process (flush itself
 *   never delivers, so a delivery process that crashes is reported, its
 *   claims go back and its mail is recorded as deferred; flush then
 *   exits 70).
 * - With -d, at most one flush per domain runs at a time: a second one
 *   exits 0 at once (ETRN and probe -F start them freely).
 * - A relay domain's primary record (spool.h) is observed "up" when a
 *   session carries its first message (the host, its EHLO after
 *   STARTTLS) and "down" when no primary answered; DNS failures record
 *   nothing.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/flush_engine.h"
#include "cmd/flush_select.h"
#include "cmd/learn.h"
#include "cmd/queue_ops.h"
#include "cmd/rcpt_primary.h"
#include "core/backoff.h"
#include "core/config.h"
#include "core/dns.h"
#include "core/dsn.h"
#include "core/log.h"
#include "core/mail/address.h"
#include "core/mx.h"
#include "core/smtp_client.h"
#include "core/starttls.h"
#include "core/util.h"
#include "spool/spool.h"

#define USAGE	"mxfb flush [-C file] [-f] [-d domain] [queue-id ...]"
#define REMOVE_BATCH	32	/* delivered messages removed with one fsync */
#define REMOVE_DELAY	1	/* seconds a delivered message may wait */

struct selection {
	struct spool	*sp;
	struct flush_criteria fc;
	struct job	*jobs;
	size_t		 njobs;
	char		(*done)[QUEUE_ID_SIZE];	/* finished, to remove */
	size_t		 ndone;
};

/* One outcome for every recipient of an attempt that sent nothing. */
struct outcome {
	int		 state;		/* RCPT_FAILED or RCPT_DEFERRED */
	const char	*relay, *dsn, *why;
};

static int	 select_message(const struct envelope *, void *);
static int	 dsn_unrecorded(struct spool *, const struct envelope *);
static struct job *job_for(struct selection *, const char *);
static void	 job_add(struct job *, const char *, int);
static size_t	 choose_recipients(const struct worker *,
		    const struct envelope *, size_t *);
static int	 read_message(struct spool_claim *, const char *,
		    const unsigned char **, size_t *);
static int	 cannot_send(struct worker *, struct outcome *);
static void	 record_each(struct worker *, const struct envelope *,
		    const size_t *, size_t, const struct outcome *);
static void	 send_message(struct worker *, struct spool_claim *,
		    struct envelope *, const size_t *, size_t,
		    const unsigned char *, size_t);
static void	 apply_result(struct worker *, const struct envelope *,
		    struct recipient *, const struct smtp_result *);
static int	 secure_session(struct worker *, enum tls_level);
static void	 log_outcome(const struct envelope *, const struct recipient *,
		    const char *, const char *, const char *, const char *);
static void	 drop_connection(struct worker *);
static int	 all_sent(const struct envelope *, const size_t *, size_t,
		    const struct smtp_result *, int);
static int	 relay_report_due(const struct worker *,
		    const struct envelope *, const struct recipient *);
static void	 record(struct worker *, const struct envelope *,
		    struct recipient *, int, const char *, const char *,
		    const char *, const char *, const char *);
static void	 finish(struct spool_claim *, struct envelope *);
static void	 remove_done(struct spool *, const char *);
static void	 add_sent(struct worker *, struct spool_claim *);
static void	 worker_died(struct spool *, const struct selection *,
		    const struct job *, pid_t, int, struct counts *);
static void	 read_counts(int, struct counts *);
static int	 run_engine(struct spool *, struct selection *,
		    struct counts *);

static struct job *
job_for(struct selection *s, const char *domain)
{
	size_t	 i;

	for (i = 0; i < s->njobs; i++)
		if (strcmp(s->jobs[i].domain, domain) == 0)
			return (&s->jobs[i]);
	s->jobs = xreallocarray(s->jobs, s->njobs + 1, sizeof(*s->jobs));
	memset(&s->jobs[s->njobs], 0, sizeof(s->jobs[0]));
	strlcpy(s->jobs[s->njobs].domain, domain,
	    sizeof(s->jobs[s->njobs].domain));
	return (&s->jobs[s->njobs++]);
}

static void
job_add(struct job *j, const char *id, int multi)
{
	if (j->nids > 0 && strcmp(j->ids[j->nids - 1], id) == 0)
		return;
	if (j->nids == j->cap) {
		j->cap = j->cap ? j->cap * 2 : 16;
		j->ids = xreallocarray(j->ids, j->cap, sizeof(*j->ids));
		j->multi = xreallocarray(j->multi, j->cap, 1);
	}
	strlcpy(j->ids[j->nids], id, QUEUE_ID_SIZE);
	j->multi[j->nids++] = (unsigned char)multi;
}

/*
 * The queue walk's callback: a due message is taken for each of its
 * domains in this run, or noted for removal when only that is left.
 */
static int
select_message(const struct envelope *env, void *arg)
{
	struct selection	*s = arg;
	struct flush_pick	 p;
	size_t			 i;

	if (!flush_due(&s->fc, env))
		return (0);
	if (env->about != NULL && dsn_unrecorded(s->sp, env))
		return (0);
	switch (flush_pick(&s->fc, env, &p)) {
	case FLUSH_REMOVE:
		s->done = xreallocarray(s->done, s->ndone + 1,
		    sizeof(*s->done));
		strlcpy(s->done[s->ndone++], env->id, QUEUE_ID_SIZE);
		break;
	case FLUSH_DELIVER:
		for (i = 0; i < p.ndomains; i++)
			job_add(job_for(s, p.domains[i]), env->id, p.multi);
		flush_pick_free(&p);
		break;
	case FLUSH_SKIP:
		break;
	}
	return (0);
}

/*
 * One of our notifications whose original has not yet recorded it (a
 * bounce run interrupted between the two steps, or still running): held
 * back until the next bounce run has, so that run finds it queued and
 * makes no second one (see core/dsn.h).  1 held back, 0 deliverable.
 */
static int
dsn_unrecorded(struct spool *sp, const struct envelope *env)
{
	struct dsn_about	 a;
	struct envelope		 orig;
	int			 recorded;

	if (dsn_about_parse(env->about, &a) == -1)
		return (0);
	memset(&orig, 0, sizeof(orig));
	if (spool_read_envelope(sp, a.orig, &orig) == -1)
		return (0);	/* gone (or unreadable: nothing to wait for) */
	recorded = dsn_about_recorded(&a, &orig);
	envelope_free(&orig);
	if (recorded)
		return (0);
	log_info("%s: held back until bounce has recorded it in %s (an "
	    "interrupted or running bounce)", env->id, a.orig);
	return (1);
}

static void
remove_done(struct spool *sp, const char *id)
{
	struct spool_claim	*c;
	struct envelope		*env;

	if (spool_claim(sp, id, &c) == -1)
		return;
	env = spool_claim_envelope(c);
	if (!envelope_finished(env)) {
		if (spool_unclaim(c) == -1)
			log_warn("%s: unclaim", id);
		return;
	}
	if (spool_claim_remove(c) == -1)
		log_warn("%s: remove", id);
	else
		log_info("%s: removed", id);
}

/* The log line of one recipient's outcome. */
static void
log_outcome(const struct envelope *env, const struct recipient *r,
    const char *relay, const char *dsn, const char *status, const char *why)
{
	char	 safe[1024], addr[512];
	time_t	 now;
	long	 usec;
	double	 delay;

	now_tv(&now, &usec);
	delay = (double)(now - env->arrival) + (double)usec / 1e6;
	if (delay < 0)
		delay = 0;
	log_safe(safe, sizeof(safe), why);
	log_safe(addr, sizeof(addr), r->addr);
	log_info("%s: to=<%s>, relay=%s, delay=%.1f, dsn=%s, status=%s (%s)",
	    env->id, addr, relay, delay, dsn, status, safe);
}

/* Log one recipient's outcome and store it in the envelope. */
static void
record(struct worker *w, const struct envelope *env, struct recipient *r,
    int state, const char *relay, const char *dsn, const char *status,
    const char *why, const char *remote)
{
	time_t	 now = time(NULL);

	log_outcome(env, r, relay, dsn, status, why);
	r->attempts++;
	r->last_attempt = now;
	free(r->last_error);
	free(r->remote_mta);
	free(r->status);
	r->last_error = NULL;
	r->remote_mta = NULL;
	r->status = dsn != NULL ? xstrdup(dsn) : NULL;
	r->state = state;
	if (state == RCPT_DELIVERED) {
		w->n.delivered++;
		if (remote != NULL)
			r->remote_mta = xstrdup(remote);
		return;
	}
	if (state == RCPT_FAILED)
		w->n.failed++;
	else
		w->n.deferred++;
	r->last_error = xstrdup(why);
	if (remote != NULL)
		r->remote_mta = xstrdup(remote);
}

/*
 * After an attempt: the message leaves the spool when nothing is left
 * for flush or bounce, else goes back with its retry time.
 */
static void
finish(struct spool_claim *c, struct envelope *env)
{
	char	 id[QUEUE_ID_SIZE];
	size_t	 i;
	int	 attempts = 0;
	time_t	 now = time(NULL);

	for (i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].state == RCPT_DEFERRED &&
		    env->rcpts[i].attempts > attempts)
			attempts = env->rcpts[i].attempts;
	if (envelope_finished(env)) {
		strlcpy(id, env->id, sizeof(id));
		if (spool_claim_remove(c) == -1)
			log_warn("%s: cannot remove delivered message", id);
		else
			log_info("%s: removed", id);
		return;
	}
	if (attempts > 0)
		env->next_retry = now + backoff_delay(attempts, cfg->retry_min,
		    cfg->retry_max);
	strlcpy(id, env->id, sizeof(id));	/* env goes with the claim */
	if (spool_unclaim(c) == -1)
		log_warn("%s: cannot return message to the queue with its "
		    "new state", id);
}

/*
 * STARTTLS at the session's tls-outbound level on a greeted connection:
 * 0 go on, 1 reconnect in plaintext (may, failed handshake), -1 give up
 * on this host at this level (the connection is closed and dead_reason
 * says why).
 */
static int
secure_session(struct worker *w, enum tls_level level)
{
	struct starttls_report	 rep;
	enum starttls_outcome	 rc;
	char			 why[1024], line[1024];

	why[0] = '\0';
	rc = starttls_client(w->conn, cfg, &w->tls, level, w->mx_host,
	    w->port, cfg->hostname, (int)cfg->command_timeout, &rep, why,
	    sizeof(why));
	if (rc == STARTTLS_OK) {
		if (rep.active) {
			starttls_describe(&rep, smtp_conn_relay(w->conn), line,
			    sizeof(line));
			log_info("%s: %s", w->domain, line);
		} else if (why[0] != '\0')
			log_info("%s: %s; going on in plaintext (tls-outbound "
			    "%s)", w->domain, why, tls_level_name(rep.level));
		return (0);
	}
	log_safe(w->dead_reason, sizeof(w->dead_reason), why);
	smtp_close(w->conn);
	w->conn = NULL;
	if (rc == STARTTLS_RETRY_PLAIN) {
		log_info("%s: %s; retrying in plaintext (tls-outbound may)",
		    w->domain, w->dead_reason);
		return (1);
	}
	log_info("%s: %s", w->domain, w->dead_reason);
	return (-1);
}

/*
 * Connect to the session's host, be greeted, EHLO, TLS as its level
 * wants: SESSION_UP, SESSION_HOST_DOWN (the host refused, timed out or
 * did not greet us with 2xx) or SESSION_TLS_FAILED (the host answered,
 * but not as this level needs); dead_reason says why.
 */
int
flush_open_session(struct worker *w)
{
	struct smtp_timeouts	 to;
	char			 why[1024];
	int			 plain = 0, r;

	to.connect = cfg->connect_timeout;
	to.command = cfg->command_timeout;
	to.data = cfg->data_timeout;
	to.data_done = cfg->data_done_timeout;
again:
	if (smtp_connect(w->mx_host, (struct sockaddr *)&w->addr, w->addrlen,
	    &to, &w->conn, why, sizeof(why)) == -1) {
		strlcpy(w->dead_reason, why, sizeof(w->dead_reason));
		log_info("%s: %s", w->domain, why);
		return (SESSION_HOST_DOWN);
	}
	if (smtp_greet(w->conn, cfg->hostname, NULL) == -1) {
		log_safe(w->dead_reason, sizeof(w->dead_reason),
		    smtp_conn_error(w->conn));
		log_info("%s: %s", w->domain, w->dead_reason);
		smtp_close(w->conn);
		w->conn = NULL;
		return (SESSION_HOST_DOWN);
	}
	r = secure_session(w, plain ? TLS_LEVEL_NONE : w->level);
	if (r == 0)
		return (SESSION_UP);
	if (r == 1 && !plain) {
		plain = 1;
		goto again;
	}
	return (SESSION_TLS_FAILED);
}

/*
 * A relay domain's primary record: up when a session carries its mail
 * (the host and its EHLO, after STARTTLS), down when no primary
 * answered; the engine calls it once per domain for each.
 */
void
flush_observe(struct worker *w, int up)
{
	struct primary_obs	 o;

	if (config_relay_domain(cfg, w->domain) == NULL)
		return;
	primary_obs_from_ehlo(&o, up, "flush", up ? smtp_conn_host(w->conn) :
	    NULL, up ? smtp_conn_ext(w->conn) : NULL);
	if (!up)
		primary_obs_reason(&o, w->dead_reason);
	if (spool_primary_observe(w->sp, w->domain, &o) == -1)
		log_warn("%s: cannot record the primary", w->domain);
}

/* A broken connection: the next message gets a fresh one, twice. */
static void
drop_connection(struct worker *w)
{
	strlcpy(w->dead_reason, smtp_conn_error(w->conn),
	    sizeof(w->dead_reason));
	smtp_close(w->conn);
	w->conn = NULL;
	if (++w->reconnects > 2)
		w->dead = 1;
}

/*
 * A 2xx for this recipient means a success report for bounce to make:
 * NOTIFY=SUCCESS, and the primary did not offer DSN to pass it on
 * (RFC 3461 6.2).  Never for mail from <>.
 */
static int
relay_report_due(const struct worker *w, const struct envelope *env,
    const struct recipient *r)
{
	return ((r->notify & NOTIFY_SUCCESS) && env->sender[0] != '\0' &&
	    !smtp_conn_ext(w->conn)->dsn);
}

/*
 * Did this attempt finish the message: every recipient it carried got a
 * 2xx (owing no success report), and every other one is finished?  Then the
 * message is removed without first saving the new states (one fsync, not
 * three, per message); a crash before the removal is durable re-delivers
 * it, exactly like a crash between the primary's 250 and any update.
 */
static int
all_sent(const struct envelope *env, const size_t *idx, size_t n,
    const struct smtp_result *res, int report_due)
{
	size_t	 i, k;

	if (report_due)
		return (0);
	for (i = 0; i < n; i++)
		if (res[i].code / 100 != 2)
			return (0);
	for (i = 0; i < env->nrcpts; i++) {
		for (k = 0; k < n && idx[k] != i; k++)
			;
		if (k < n)
			continue;
		if (!rcpt_finished(&env->rcpts[i]))
			return (0);
	}
	return (1);
}

/*
 * Make the worker's removals durable: one fsync of the claim directory
 * for all of them instead of one each (a removal costs that fsync).
 * Each message was unlinked when its delivery ended, so a killed flush
 * re-delivers none of them; a system crash before this sync may (the
 * duplicate of spool/INTERNALS 6, for at most a batch per worker).
 */
void
flush_remove_sent(struct worker *w)
{
	if (w->nsent == 0)
		return;
	if (spool_sync_removals(w->sp) == -1)
		log_warn("cannot make removals durable");
	w->nsent = 0;
}

/* A delivered message leaves the spool; durable with its batch. */
static void
add_sent(struct worker *w, struct spool_claim *c)
{
	char	 id[QUEUE_ID_SIZE];

	strlcpy(id, spool_claim_envelope(c)->id, sizeof(id));
	if (spool_claim_remove_nosync(c) == -1) {
		log_warn("%s: cannot remove delivered message", id);
		return;
	}
	log_info("%s: removed", id);
	if (w->nsent++ == 0)
		w->sent_since = time(NULL);
	if (w->nsent == REMOVE_BATCH)
		flush_remove_sent(w);
}

/*
 * The recipients this attempt carries: pending ones in w->domain (their
 * indexes into env->rcpts go to idx, which has room for all).
 */
static size_t
choose_recipients(const struct worker *w, const struct envelope *env,
    size_t *idx)
{
	char	 dom[DOMAIN_NAME_SIZE];
	size_t	 i, n = 0;

	for (i = 0; i < env->nrcpts; i++) {
		(void)address_domain_of(env->rcpts[i].addr, dom, sizeof(dom));
		if (rcpt_pending(&env->rcpts[i]) && strcmp(dom, w->domain) == 0)
			idx[n++] = i;
	}
	return (n);
}

/*
 * The claimed message's bytes, checked against their checksum: 0, or -1
 * when they cannot be had (a corrupt message goes to corrupt/, any
 * other failure back to the queue; the claim is gone either way).
 */
static int
read_message(struct spool_claim *c, const char *id,
    const unsigned char **data, size_t *len)
{
	if (spool_claim_message(c, data, len) == 0)
		return (0);
	if (errno == EBADMSG) {
		log_warnx("%s: message does not match its checksum: not "
		    "delivered, moved to corrupt/", id);
		if (spool_quarantine(c) == -1)
			log_warn("%s: quarantine", id);
	} else {
		log_warn("%s: cannot read message", id);
		if (spool_unclaim(c) == -1)
			log_warn("%s: unclaim", id);
	}
	return (-1);
}

/*
 * Why nothing can be sent for this domain, if so: no domain at all, its
 * primaries not found, or none answering (the first message of a worker
 * opens the session).  1 with *o filled, 0 when a session is up.
 */
static int
cannot_send(struct worker *w, struct outcome *o)
{
	o->relay = "none";
	if (w->domain[0] == '\0') {
		o->state = RCPT_FAILED;
		o->dsn = "5.1.3";
		o->why = "recipient address has no domain";
		return (1);
	}
	if (w->route_status != DNS_OK) {
		o->state = w->route_status == DNS_PERM ? RCPT_FAILED :
		    RCPT_DEFERRED;
		o->dsn = w->route_error.dsn;
		o->why = w->route_error.text;
		return (1);
	}
	if (w->conn == NULL && !w->dead &&
	    flush_open_session(w) != SESSION_UP)
		w->dead = 1;
	if (w->dead) {
		o->state = RCPT_DEFERRED;
		o->dsn = "4.4.1";
		o->why = w->dead_reason;
		return (1);
	}
	return (0);
}

/* The same outcome for every recipient of the attempt. */
static void
record_each(struct worker *w, const struct envelope *env, const size_t *idx,
    size_t n, const struct outcome *o)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		record(w, env, &env->rcpts[idx[i]], o->state, o->relay, o->dsn,
		    o->state == RCPT_FAILED ? "bounced" : "deferred", o->why,
		    NULL);
}

/*
 * One recipient's result from the primary.  A reply of the primary's
 * own (from_peer) becomes the recipient's last_error as it was said,
 * for bounce's Diagnostic-Code; the log line says who said it.
 */
static void
apply_result(struct worker *w, const struct envelope *env,
    struct recipient *rp, const struct smtp_result *res)
{
	const char	*relay = smtp_conn_relay(w->conn);
	const char	*remote;
	char		 why[1024], dsn[16];

	if (res->code == 0) {
		record(w, env, rp, RCPT_DEFERRED, relay, "4.4.2", "deferred",
		    smtp_conn_error(w->conn), NULL);
		return;
	}
	if (res->from_peer && res->code / 100 != 2)
		snprintf(why, sizeof(why), "host %s said: %s (in reply to %s "
		    "command)", relay, res->reply, res->stage);
	else
		strlcpy(why, res->reply, sizeof(why));
	strlcpy(dsn, res->dsn, sizeof(dsn));
	if (res->code / 100 == 2) {
		record(w, env, rp, RCPT_DELIVERED, relay, dsn, "sent", why,
		    smtp_conn_host(w->conn));
		/* Its Diagnostic-Code: the primary's own reply. */
		if (relay_report_due(w, env, rp)) {
			rp->relayed = 1;
			rp->reported = 0;
			rp->last_error = xstrdup(res->reply);
		}
		return;
	}
	remote = res->from_peer ? smtp_conn_host(w->conn) : NULL;
	if (res->code / 100 == 5)
		record(w, env, rp, RCPT_FAILED, relay, dsn, "bounced", why,
		    remote);
	else
		record(w, env, rp, RCPT_DEFERRED, relay, dsn, "deferred", why,
		    remote);
	if (res->from_peer) {
		free(rp->last_error);
		rp->last_error = xstrdup(res->reply);
	}
}

/*
 * Hand the message to the primary for its recipients idx[0..n), then
 * record the results: a message this attempt finished leaves the spool
 * at once (add_sent), any other goes back with its new states.
 */
static void
send_message(struct worker *w, struct spool_claim *c, struct envelope *env,
    const size_t *idx, size_t n, const unsigned char *data, size_t len)
{
	struct smtp_client_rcpt	*rc;
	struct smtp_result	*res;
	struct smtp_message	 m;
	const char		*relay;
	size_t			 i;
	int			 r, report_due;

	rc = xcalloc(n, sizeof(*rc));
	res = xcalloc(n, sizeof(*res));
	for (i = 0; i < n; i++) {
		rc[i].addr = env->rcpts[idx[i]].addr;
		rc[i].orcpt = env->rcpts[idx[i]].orcpt;
		rc[i].notify = env->rcpts[idx[i]].notify;
	}
	memset(&m, 0, sizeof(m));
	m.sender = env->sender;
	m.envid = env->envid;
	m.ret = env->ret;
	m.smtputf8 = env->smtputf8;
	m.eightbit = env->eightbit;
	m.data = data;
	m.len = len;
	m.rcpts = rc;
	m.nrcpts = n;
	r = smtp_deliver(w->conn, &m, res);
	relay = smtp_conn_relay(w->conn);
	learn_results(rc, res, n);
	for (report_due = 0, i = 0; i < n; i++)
		if (res[i].code / 100 == 2 &&
		    relay_report_due(w, env, &env->rcpts[idx[i]]))
			report_due = 1;
	if (all_sent(env, idx, n, res, report_due)) {
		for (i = 0; i < n; i++)
			log_outcome(env, &env->rcpts[idx[i]], relay,
			    res[i].dsn, "sent", res[i].reply);
		w->n.delivered += n;
		add_sent(w, c);
	} else {
		for (i = 0; i < n; i++)
			apply_result(w, env, &env->rcpts[idx[i]], &res[i]);
		finish(c, env);
	}
	free(rc);
	free(res);
	if (r == -1)
		drop_connection(w);
}

/*
 * Claim one message and deliver its recipients in w->domain.  *busy is
 * set when someone else holds the claim.
 */
void
flush_deliver_one(struct worker *w, const char *id, int *busy)
{
	struct spool_claim	*c;
	struct envelope		*env;
	struct outcome		 o;
	const unsigned char	*data;
	size_t			*idx, n, len;

	*busy = 0;
	if (w->nsent > 0 && time(NULL) - w->sent_since >= REMOVE_DELAY)
		flush_remove_sent(w);
	if (spool_claim(w->sp, id, &c) == -1) {
		if (errno == ENOENT)
			*busy = 1;
		else if (errno != EBADMSG)
			log_warn("%s: claim", id);
		return;
	}
	env = spool_claim_envelope(c);
	spool_mailbox_copy(w->sp, env);		/* copies still owed */
	idx = xcalloc(env->nrcpts ? env->nrcpts : 1, sizeof(*idx));
	n = choose_recipients(w, env, idx);
	if (n == 0)
		finish(c, env);
	else if (read_message(c, id, &data, &len) == 0) {
		if (cannot_send(w, &o)) {
			record_each(w, env, idx, n, &o);
			finish(c, env);
		} else
			send_message(w, c, env, idx, n, data, len);
	}
	free(idx);
}

/*
 * The delivery process ended by a signal or an unexpected exit: its
 * claims go back to the queue at once (it is reaped, so they are stale),
 * and each message of the job that it did not get to (a pending
 * recipient in the job's domain with no attempt in this run) is
 * recorded as deferred with the reason, one attempt, so that it is
 * neither silent nor retried in a loop.
 */
static void
worker_died(struct spool *sp, const struct selection *s, const struct job *j,
    pid_t pid, int status, struct counts *total)
{
	struct worker		 w;
	struct spool_claim	*c;
	struct envelope		*env;
	struct recipient	*r;
	char			 why[512], dom[DOMAIN_NAME_SIZE];
	size_t			 i, k;
	int			 touched;

	if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "worker for %s (pid %ld) died: "
		    "signal %d", j->domain, (long)pid, WTERMSIG(status));
	else
		snprintf(why, sizeof(why), "worker for %s (pid %ld) died: "
		    "exit status %d", j->domain, (long)pid,
		    WEXITSTATUS(status));
	memset(&w, 0, sizeof(w));
	w.sp = sp;
	w.domain = j->domain;
	for (i = 0; i < j->nids; i++) {
		if (spool_claim(sp, j->ids[i], &c) == -1)
			continue;	/* finished, or in other hands */
		env = spool_claim_envelope(c);
		for (touched = 0, k = 0; k < env->nrcpts; k++) {
			r = &env->rcpts[k];
			(void)address_domain_of(r->addr, dom, sizeof(dom));
			if (!rcpt_pending(r) || strcmp(dom, j->domain) != 0 ||
			    r->last_attempt >= s->fc.now)
				continue;
			record(&w, env, r, RCPT_DEFERRED, "none", "4.3.0",
			    "deferred", why, NULL);
			touched = 1;
		}
		if (touched)
			finish(c, env);
		else if (spool_unclaim(c) == -1)
			log_warn("%s: unclaim", j->ids[i]);
	}
	total->deferred += w.n.deferred;
}

/*
 * Add the counts the delivery process reports, record by record, until
 * it closes the pipe (exits or dies).  Records are written whole
 * (smaller than PIPE_BUF).
 */
static void
read_counts(int fd, struct counts *total)
{
	struct counts	 c;
	ssize_t		 n;

	for (;;) {
		n = read(fd, &c, sizeof(c));
		if (n == -1 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(c))
			break;
		total->delivered += c.delivered;
		total->deferred += c.deferred;
		total->failed += c.failed;
	}
}

/*
 * Deliver the selection in one forked delivery process (its threads are
 * the sessions: cmd/flush_engine.c), which reports its counts through a
 * pipe as it goes.  One that dies is reported, its claims recovered and
 * its undelivered mail recorded.  Returns 1 when it died, else 0.
 */
static int
run_engine(struct spool *sp, struct selection *s, struct counts *total)
{
	size_t		 i;
	int		 p[2] = { -1, -1 }, status;
	pid_t		 pid;

	if (s->njobs == 0)
		return (0);
	if (pipe2(p, O_CLOEXEC) == -1 || (pid = fork()) == -1) {
		log_warn("cannot start the delivery process");
		if (p[0] != -1)
			(void)close(p[0]);
		if (p[1] != -1)
			(void)close(p[1]);
		return (0);
	}
	if (pid == 0) {
		(void)close(p[0]);
		if (flush_engine_run(s->jobs, s->njobs, s->fc.force ||
		    s->fc.nids > 0, p[1]) == -1)
			_exit(EXIT_IOERR);
		_exit(0);
	}
	(void)close(p[1]);
	read_counts(p[0], total);
	(void)close(p[0]);
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			log_warn("waitpid");
			return (0);
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return (0);
	if (WIFSIGNALED(status))
		log_warnx("delivery process (pid %ld) died: signal %d",
		    (long)pid, WTERMSIG(status));
	else
		log_warnx("delivery process (pid %ld) died: exit status %d",
		    (long)pid, WEXITSTATUS(status));
	if (spool_recover(sp, cfg->claim_timeout) == -1)
		log_warn("spool recovery");
	for (i = 0; i < s->njobs; i++)
		worker_died(sp, s, &s->jobs[i], pid, status, total);
	return (1);
}

int
cmd_flush(int argc, char **argv)
{
	struct selection	 s;
	struct counts		 total;
	struct spool		*sp;
	char			 domain[DOMAIN_NAME_SIZE];
	int			 ch, lockfd = -1, died;
	size_t			 i;

	memset(&s, 0, sizeof(s));
	while ((ch = getopt(argc, argv, "C:d:fh")) != -1) {
		switch (ch) {
		case 'C':
			cmd_set_config_file(optarg);
			break;
		case 'd':
			if (address_domain_typed(optarg, domain,
			    sizeof(domain)) == -1) {
				log_cmd_errorx("bad domain for -d");
				return (EXIT_USAGE);
			}
			s.fc.domain = domain;
			break;
		case 'f':
			s.fc.force = 1;
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
	s.fc.ids = argv;
	s.fc.nids = (size_t)argc;
	cmd_load_config();
	cmd_become_user(0);
	if ((sp = queue_open_existing()) == NULL) {
		/* A spool no mail has reached yet: nothing to deliver. */
		printf("delivered 0, deferred 0, failed 0\n");
		return (0);
	}
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		log_warn("signal");
	/* Named messages that are not there: say so (not an error). */
	for (i = 0; i < (size_t)argc; i++)
		if (spool_exists(sp, argv[i]) == 0)
			log_cmd_errorx("%s: no such message", argv[i]);

	s.sp = sp;
	if (s.fc.domain != NULL) {
		if (spool_domain_lock(sp, s.fc.domain, &lockfd) == -1) {
			if (errno == EWOULDBLOCK || errno == EAGAIN) {
				spool_close(sp);
				return (0);	/* one is running already */
			}
			log_cmd_error("lock for %s", s.fc.domain);
			spool_close(sp);
			return (EXIT_TEMPFAIL);
		}
	}
	if (spool_recover(sp, cfg->claim_timeout) == -1)
		log_warn("spool recovery");
	s.fc.now = time(NULL);
	if (spool_foreach(sp, select_message, &s) == -1) {
		log_cmd_error("reading the queue");
		spool_close(sp);
		return (EXIT_IOERR);
	}
	for (i = 0; i < s.ndone; i++)
		remove_done(sp, s.done[i]);
	memset(&total, 0, sizeof(total));
	died = run_engine(sp, &s, &total);

	printf("delivered %u, deferred %u, failed %u\n", total.delivered,
	    total.deferred, total.failed);
	if (fflush(stdout) == EOF)
		log_cmd_error("stdout");
	for (i = 0; i < s.njobs; i++) {
		free(s.jobs[i].ids);
		free(s.jobs[i].multi);
	}
	free(s.jobs);
	free(s.done);
	if (lockfd != -1)
		(void)close(lockfd);
	spool_close(sp);
	/* A delivery process died: cron mails the administrator. */
	return (died > 0 ? EXIT_SOFTWARE : 0);
}
