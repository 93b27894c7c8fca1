/*
 * dsn.h - delivery status notifications (RFC 3464, 3461, 3463, 6533):
 * which recipients want one, and the bytes of the notification message.
 *
 * dsn_build() is pure: it turns an original envelope, the original
 * message bytes and a list of per-recipient reports into a complete
 * multipart/report message (CRLF lines, none over 998 octets, a random
 * boundary that occurs nowhere in the content).  It never touches the
 * spool; queueing the result is the caller's business.
 */
#ifndef MXFB_DSN_H
#define MXFB_DSN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/mail/envelope.h"

/* Why a recipient is being reported. */
enum dsn_reason {
	DSN_REASON_FAILED,	/* permanent failure (a primary's 5xx) */
	DSN_REASON_EXPIRED,	/* still undelivered at queue-lifetime */
	DSN_REASON_ADMIN,	/* returned by the administrator */
	DSN_REASON_DELAYED,	/* warning: older than delay-warning */
	DSN_REASON_RELAYED	/* success: handed to a primary */
};

struct dsn_report {
	const struct recipient	*rcpt;
	enum dsn_reason		 reason;
};

struct dsn_params {
	const char	*hostname;	/* Reporting-MTA, From, Message-ID */
	const char	*dsn_id;	/* queue ID of the DSN (Message-ID) */
	time_t		 now;		/* Date */
	time_t		 retry_until;	/* Will-Retry-Until (delays) */
	uint64_t	 size_limit;	/* bounce-size-limit; 0: no limit */
};

struct dsn_message {
	char		*data;		/* CRLF lines, not dot-stuffed */
	size_t		 len;
	int		 eightbit;	/* needs BODY=8BITMIME */
	int		 smtputf8;	/* needs SMTPUTF8 */
	int		 truncated;	/* original cut down to its headers */
};

/*
 * Does this recipient's NOTIFY (RFC 3461) ask for a report of this
 * kind?  No NOTIFY: failures and delays yes, success no.  1 yes, 0 no.
 */
int	 dsn_wanted(const struct recipient *, enum dsn_reason);

/* bounce-policy (the configuration key). */
enum bounce_policy { BOUNCE_ALL, BOUNCE_VERIFIED, BOUNCE_NONE };
/*
 * Does the policy let this recipient of env be reported for this
 * reason?  admin: the administrator's explicit `bounce ID`.  1 yes, 0 no.
 * `verified` reports only what cannot be backscatter to a forged sender:
 * a primary's own refusal, or expiry of mail whose recipients passed the
 * recipients check; admin is exempt from `verified`, never from `none`.
 */
/*
 * An RFC 3463 status that says the recipient does not exist: 5.1.1 to
 * 5.1.10 (bad mailbox, system, syntax, ambiguous, destination, moved,
 * sender...).  Only such a code makes an address invalid (learned from
 * flush, or from a callout): a bare 550, or a 5.7.x, may be a policy
 * refusal of that message or of us, not a verdict on the address.
 */
int	 dsn_unknown_user(const char *status);
int	 dsn_policy_allows(enum bounce_policy, const struct envelope *env,
	    const struct recipient *, enum dsn_reason, int admin);

/*
 * The RFC 3463 status for a report ("5.1.1", "4.4.7"...), taken from
 * the enhanced code of the last reply where it fits the reason.
 */
void	 dsn_status(const struct recipient *, enum dsn_reason, char *,
	    size_t);

/* Action field value for a reason: "failed", "delayed", "relayed". */
const char *dsn_action(enum dsn_reason);

/*
 * Build the notification.  Returns 0 and fills out (free it with
 * dsn_message_free), or -1 with errno set (EINVAL: no reports).
 */
int	 dsn_build(const struct envelope *orig, const unsigned char *msg,
	    size_t msglen, const struct dsn_report *, size_t nreports,
	    const struct dsn_params *, struct dsn_message *out);
void	 dsn_message_free(struct dsn_message *);

/*
 * What one of our notifications reports on, kept in its envelope
 * ("about"): the original's queue ID, the kind of report and, for
 * failure reports, how many of the original's recipients were already
 * reported when it was made.  bounce commits the notification first and
 * records it in the original second (reported flags, warned, or the
 * original's removal); flush delivers a notification only once that
 * record is durable, so that a bounce killed between the two steps and
 * run again finds the notification still queued and makes no second one.
 */
#define DSN_KIND_FINAL	'F'	/* expiry or administrator: then removed */
#define DSN_KIND_REPORT	'R'	/* failed or relayed recipients */
#define DSN_KIND_DELAY	'D'	/* the one delay warning */

struct dsn_about {
	char		 orig[QUEUE_ID_SIZE];
	int		 kind;		/* DSN_KIND_* */
	unsigned	 gen;		/* recipients reported before it */
};

/* "ORIGID KIND GEN"; returns a new string. */
char	*dsn_about_format(const struct dsn_about *);
/* Parse that; 0, or -1 when malformed. */
int	 dsn_about_parse(const char *, struct dsn_about *);
/*
 * Has the original recorded this notification?  orig: its envelope as
 * read now, or NULL when it is gone (removed or unreadable).  1 yes (or
 * nothing left to wait for), 0 not yet.
 */
int	 dsn_about_recorded(const struct dsn_about *,
	    const struct envelope *orig);

/*
 * Decode RFC 3461 xtext ("a+2Bb" -> "a+b") into buf.  Returns 0, or -1
 * when the input is malformed, does not fit, or decodes to a control
 * character (the caller then shows the text as it came).
 */
int	 xtext_decode(const char *, char *buf, size_t size);

#endif
