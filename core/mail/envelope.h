/*
 * envelope.h - the mail model (core/mail/): a message's envelope and the
 * state of each recipient, what the states mean, and the envelope as
 * text.  Pure data and encodings: nothing here touches a file; storing
 * envelopes is the spool's business (spool/spool.h, spool/INTERNALS).
 */
#ifndef MXFB_MAIL_ENVELOPE_H
#define MXFB_MAIL_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/mail/queue_id.h"

enum rcpt_state {
	RCPT_QUEUED,		/* never tried */
	RCPT_DEFERRED,		/* tried, temporary failure */
	RCPT_DELIVERED,		/* a primary said 2xx */
	RCPT_FAILED		/* permanent failure, to be bounced */
};

/* RFC 3461 NOTIFY bits; 0 means the parameter was not given. */
#define NOTIFY_NEVER	0x01
#define NOTIFY_SUCCESS	0x02
#define NOTIFY_FAILURE	0x04
#define NOTIFY_DELAY	0x08

enum dsn_ret { RET_UNSET, RET_FULL, RET_HDRS };

struct recipient {
	char		*addr;		/* as accepted, without <> */
	char		*orcpt;		/* ORCPT ("rfc822;x@y" xtext) or NULL */
	int		 notify;	/* NOTIFY_* bits */
	enum rcpt_state	 state;
	int		 attempts;
	time_t		 last_attempt;	/* 0: never */
	char		*last_error;	/* last reply or reason, or NULL */
	char		*remote_mta;	/* host that gave last_error, or NULL */
	char		*status;	/* RFC 3463 code of the last outcome
					   ("4.4.1"), or NULL */
	int		 reported;	/* failure/success already in a DSN */
	int		 relayed;	/* delivered to a primary without DSN
					   with NOTIFY=SUCCESS: an RFC 3461
					   "relayed" report is owed */
	int		 mailbox;	/* gets a copy in the outage mailbox
					   (set at receipt, never changed) */
};

struct envelope {
	char		 id[QUEUE_ID_SIZE];
	time_t		 arrival;
	char		*sender;	/* "" for the null sender <> */
	char		*client_addr;	/* "127.0.0.1", "local" for inject */
	char		*client_name;	/* HELO/EHLO argument, or NULL */
	char		*envid;		/* ENVID (xtext as received), or NULL */
	enum dsn_ret	 ret;
	int		 smtputf8;	/* SMTPUTF8 given at MAIL */
	int		 eightbit;	/* BODY=8BITMIME given at MAIL */
	int		 verified;	/* passed a recipients check */
	char		*about;		/* a DSN of ours: "ORIGID KIND GEN", or NULL */
	unsigned char	 checksum[32];	/* BLAKE2b-256 of the message bytes */
	uint64_t	 size;		/* message bytes as stored (CRLF) */
	struct recipient *rcpts;
	size_t		 nrcpts;

	/* Mutable state (kept apart from the immutable message). */
	time_t		 next_retry;	/* 0: due now */
	int		 warned;	/* delay warning sent */
	int		 held;		/* set by the spool: in hold/ */
	int		 claimed;	/* set by the spool: in active/ */
};

/*
 * Recipient helpers; strings are copied.  The returned pointer is valid
 * until the next envelope_add_recipient (the array may move).
 */
struct recipient *envelope_add_recipient(struct envelope *, const char *addr);
void	 envelope_free(struct envelope *);	/* frees members, not env */
const char *rcpt_state_name(enum rcpt_state);
/*
 * A DSN is owed for this recipient: failed, or relayed (delivered with
 * a success report owed), and not yet reported.  Finished: nothing is
 * left for flush or bounce (delivered or failed, no report owed).
 */
int	 rcpt_report_owed(const struct recipient *);
int	 rcpt_finished(const struct recipient *);
/* Pending: queued or deferred, still to be tried by flush. */
int	 rcpt_pending(const struct recipient *);
/* Finished message: every recipient finished, nothing left to do. */
int	 envelope_finished(const struct envelope *);

/*
 * Envelope text (spool/INTERNALS, section 3): the whole envelope ("V1"
 * ... "end"), and its mutable part only, the state ("S1" ... "end").
 */
int	 envelope_encode(const struct envelope *, char **buf, size_t *len);
int	 envelope_decode(const char *buf, size_t len, struct envelope *);
int	 envelope_state_encode(const struct envelope *, char **, size_t *);
/*
 * Decode a state and merge it into env.  -1 with EBADMSG when it is
 * malformed or does not match env's recipients; env is then unchanged.
 */
int	 envelope_state_merge(struct envelope *, const char *, size_t);

#endif
