/*
 * submit.h - the policy of `receive -s` (submission, RFC 6409; issue
 * 16): who may log in (the `users` file, auth-fail-limit per client),
 * what an account may send (its own address as sender, any recipient
 * domain, submission-rate messages), as hooks for cmd/receive.c.  The
 * counters live in the recipient database's file (spool/verify_db.h,
 * its "limits" database), so every receive process shares them.
 */
#ifndef MXFB_SUBMIT_H
#define MXFB_SUBMIT_H

#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mail/address.h"
#include "core/mail/envelope.h"
#include "core/sasl.h"
#include "core/smtp_server.h"

#define SUBMIT_FAIL_WINDOW	(15 * 60)	/* auth-fail-limit's window */

struct verify_db;

struct submit {
	const char		*client;	/* "192.0.2.1", for the log */
	uint64_t		 client_key;	/* smtp_client_key */
	struct verify_db	*db;		/* opened at the first need */
	char			 user[SASL_ID_MAX + 1];	/* "" before AUTH */
};

/* receive -s needs tls-cert/tls-key and users: 0, or -1 with why. */
int	 submit_config_check(char *err, size_t);
/* A session's state for the client at peer (NULL: unknown, "local"). */
void	 submit_begin(struct submit *, const char *client,
	    const struct sockaddr *peer);
void	 submit_end(struct submit *);

/* The smtp_hooks of AUTH (see core/smtp_server.h). */
int	 submit_auth_begin(struct submit *, char *reply, size_t);
int	 submit_auth(struct submit *, const char *mech, const char *authcid,
	    const char *password, int bad_format, char *reply, size_t);
/* MAIL: the sender must be the account, within its rate. */
int	 submit_mail(struct submit *, const struct smtp_txn *, char *reply,
	    size_t);
/* RCPT: any domain, but no relay tricks. */
int	 submit_rcpt(struct submit *, const struct address *, char *reply,
	    size_t);
/*
 * The message is whole (spooled, not yet committed) with its envelope:
 * the last step before the commit, where a submitted message is
 * finished.  Counts it against the account's submission-rate.  0, or
 * -1 with a reply (the message is then not committed).
 */
int	 submit_message_complete(struct submit *, struct envelope *,
	    char *reply, size_t);
/*
 * DKIM (dkim lines): the spooled message gets a DKIM-Signature for each
 * key of its From domain, when that is the account's domain (a user
 * signs for their own domain only).  0 (signed, or nothing to sign), or
 * -1 with a reply: the signing failed (451, the client tries again) or
 * the spool did (the writer is then dead).
 */
struct spool_writer;
int	 submit_sign(struct submit *, struct spool_writer *, char *reply,
	    size_t);

#endif
