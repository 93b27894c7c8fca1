/*
 * rcpt_verify.h - recipient verification at RCPT (issue 14 points 2, 4
 * and 8 in part): the recipient database, then the primary (a callout),
 * then verify-unknown-when-down.  Used by receive's RCPT hook and by
 * `mxfb verify`.  See rcpt_verify.c.
 */
#ifndef MXFB_RCPT_VERIFY_H
#define MXFB_RCPT_VERIFY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct address;
struct spool;
struct verify_db;

/* A primary observed down this recently is not called out again. */
#define RCPT_VERIFY_DOWN_HOLD	60

/* What the database says of an address. */
enum rv_known { RV_UNKNOWN, RV_KNOWN_VALID, RV_KNOWN_INVALID };
/* What the primary said, if it was asked. */
enum rv_callout { RV_NOT_ASKED, RV_PRIMARY_VALID, RV_PRIMARY_INVALID,
	RV_CANNOT_ASK };
enum rv_action { RV_ACCEPT, RV_REJECT, RV_DEFER };

/*
 * The pure decision: a database verdict decides; else the primary's 2xx
 * or 5xx; else (cannot ask, not asked) verify-unknown-when-down: defer,
 * or accept when unknown_accept.  *rule: "verify-db", "callout" or
 * "unverified".  Never RV_REJECT without a verdict.
 */
enum rv_action	 rcpt_verify_decide(enum rv_known, enum rv_callout,
		    int unknown_accept, const char **rule);

/* The outcome of one address, with why (for the log and verify). */
struct rv_outcome {
	enum rv_action	 action;
	const char	*rule;
	enum rv_known	 known;
	enum rv_callout	 callout;
	int64_t		 since, expires;	/* of the verdict, -1: none */
	int		 source;	/* enum verify_source, 0: none */
	char		 why[1200];
};

struct rcpt_verify;

/*
 * Per SMTP session (or verify run) state: the callouts, one per domain,
 * kept until rcpt_verify_free.  sp (may be NULL: no slots, no
 * observations, so no callout) gives the callout slots and the primary
 * records; db (may be NULL) is used if given, else a process-wide
 * handle is opened on first use.
 */
struct rcpt_verify *rcpt_verify_new(struct spool *, struct verify_db *);
/* QUIT every callout connection; NULL is fine. */
void		 rcpt_verify_free(struct rcpt_verify *);

/*
 * Decide an address of a relay domain under recipient-verify callout
 * (a->addr, a->domain), asking the primary if need be, and remember
 * the primary's verdict.
 */
void		 rcpt_verify_run(struct rcpt_verify *, const struct address *,
		    time_t now, struct rv_outcome *);
/*
 * For receive's RCPT hook: 0 accept, or -1 with the reply line written
 * and *rule set.  *proven: accepted on a verdict (the database's, or
 * the primary's 2xx), not by verify-unknown-when-down accept nor as
 * postmaster: a real user (the outage mailbox copies only for those).
 */
int		 rcpt_verify_check(struct rcpt_verify *, const struct address *,
		    char *reply, size_t, const char **rule, int *proven);

#endif
