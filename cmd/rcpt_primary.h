/*
 * rcpt_primary.h - what receive does at RCPT with the primary record
 * (spool.h, struct primary_obs): refuse a recipient the primary would
 * take itself right now (accept-when-primary-up no), or mail the
 * primary could never take (a declared SIZE above its limit, SMTPUTF8
 * it does not offer).  rcpt_primary_decide is the decision alone (no
 * spool, no configuration, no clock) so that every rule is tested by
 * itself; rcpt_primary_check is receive's one call, reading each
 * domain's record once per session.  primary_obs_from_ehlo makes the
 * observation probe and flush record.
 */
#ifndef MXFB_RCPT_PRIMARY_H
#define MXFB_RCPT_PRIMARY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "spool/spool.h"

struct address;
struct smtp_ext;
struct smtp_txn;

enum rcpt_primary_rule {
	RCPT_PRIMARY_ACCEPT,		/* as without a record */
	RCPT_PRIMARY_UP,		/* 450 4.7.0: deliver to it */
	RCPT_PRIMARY_SIZE,		/* 552 5.3.4: SIZE above its limit */
	RCPT_PRIMARY_SMTPUTF8		/* 553 5.6.7: it has no SMTPUTF8 */
};

/* The policy (accept-when-primary-up, primary-up-window). */
struct rcpt_primary_policy {
	int		 accept_when_up;
	time_t		 window;
};

/* What the client asks for this recipient. */
struct rcpt_primary_ask {
	uint64_t	 size;		/* MAIL SIZE=, 0: not declared */
	int		 smtputf8;	/* MAIL SMTPUTF8 */
	int		 exempt;	/* postmaster, an etrn-allow client */
};

/*
 * The rule that decides, given the domain's record (NULL: none).  The
 * capabilities count whenever an EHLO was seen, up or down since; the
 * "up" only when the last observation is, younger than the window (and
 * not from the future beyond a minute).
 */
enum rcpt_primary_rule rcpt_primary_decide(const struct primary_obs *,
	    const struct rcpt_primary_policy *,
	    const struct rcpt_primary_ask *, time_t now);
/* The reply for a refusal, naming addr and the primary. */
void	 rcpt_primary_reply(enum rcpt_primary_rule, const struct primary_obs *,
	    const struct rcpt_primary_ask *, const char *addr, char *, size_t);
/* "primary-up", "primary-size", "primary-smtputf8" (for the log). */
const char *rcpt_primary_rule_name(enum rcpt_primary_rule);

/* Each domain's record as read at its first RCPT in the session. */
struct rcpt_primary_seen {
	char			 domain[DOMAIN_NAME_SIZE];
	int			 have;		/* 0: none, unreadable */
	struct primary_obs	 obs;
};
struct rcpt_primary_cache {
	struct rcpt_primary_seen *v;
	size_t			 n;
};

/*
 * receive's RCPT check: 0 go on, or -1 with the reply in reply and the
 * rule's name in *rule.  etrn_client: the client may ETRN.
 */
int	 rcpt_primary_check(struct rcpt_primary_cache *, struct spool *,
	    const struct smtp_txn *, const struct address *, int etrn_client,
	    char *reply, size_t, const char **rule);
void	 rcpt_primary_cache_free(struct rcpt_primary_cache *);

/*
 * An observation of now: up with host and what its EHLO offered (ext
 * NULL or no EHLO: no capabilities), or down (host and ext unused).
 */
void	 primary_obs_from_ehlo(struct primary_obs *, int up,
	    const char *source, const char *host, const struct smtp_ext *);
/*
 * A down observation's reason from a failure text: what follows "connect
 * to HOST[IP]:PORT: " (the system's words: "Connection refused",
 * "Connection timed out"), else the text, cut to fit.
 */
void	 primary_obs_reason(struct primary_obs *, const char *why);

#endif
