/*
 * smtp_server.h - the SMTP server protocol engine (RFC 5321 with
 * PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, DSN, ETRN;
 * and for submission, RFC 6409, AUTH PLAIN/LOGIN after TLS, RFC 4954).
 *
 * The engine knows neither the spool nor the configuration file: it
 * reads and writes through a struct smtp_server_io (plain fds now, TLS
 * later) and asks struct smtp_hooks what to do with senders, recipients and
 * message bytes.  It guarantees that a message is reported accepted
 * (250 after DATA) only when the commit hook said so, that a DATA phase
 * with bare CR, bare LF or NUL, too many Received headers or too many
 * bytes is read to its real end (CRLF.CRLF only) and then refused with
 * nothing committed, and that replies to pipelined commands come out in
 * order, flushed only when the client's input is exhausted or the
 * reply must be synchronous.  A slow client cannot hold a session: each
 * command line must arrive whole within the timeout, and DATA at least
 * at min_data_rate on average (after a grace of one timeout), else 421
 * 4.4.2 and nothing is committed.
 */
#ifndef MXFB_SMTP_SERVER_H
#define MXFB_SMTP_SERVER_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mail/address.h"
#include "core/mail/envelope.h"

#define SMTP_LINE_MAX	512	/* command line, CRLF included (RFC 5321
				   4.5.3.1.4) */
/*
 * Extensions lengthen MAIL and RCPT lines (RFC 1869 framework): MAIL by
 * 26 (SIZE, RFC 1870), 14 (BODY, RFC 6152), 110 (RET, ENVID, RFC 3461)
 * and 10 (SMTPUTF8, RFC 6531); RCPT by 514 (NOTIFY, ORCPT) and 10.
 */
#define SMTP_MAIL_LINE_MAX	(SMTP_LINE_MAX + 26 + 14 + 110 + 10)
#define SMTP_RCPT_LINE_MAX	(SMTP_LINE_MAX + 514 + 10)
#define SMTP_CMDLINE_MAX	SMTP_RCPT_LINE_MAX	/* the longest */
#define SMTP_RCPT_OVERSHOOT	1000	/* 452s past max_recipients that are
					   not counted as client errors */
#define SMTP_REPLY_MAX	512	/* reply line, CRLF included (RFC 5321
				   4.5.3.1.5) */
#define SMTP_MAX_RECEIVED 100	/* more Received: headers is a loop */
#define SMTP_ENVID_MAX	100	/* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX	500	/* RFC 3461 4.2 */

/*
 * The byte stream to and from the client.  read waits at most timeout
 * seconds: >0 bytes, 0 end of file, -1 error (errno ETIMEDOUT when the
 * client was silent).  write sends everything or returns -1.
 */
struct smtp_server_io {
	void	*ctx;
	ssize_t	(*read)(void *ctx, void *buf, size_t len, int timeout);
	int	(*write)(void *ctx, const void *buf, size_t len, int timeout);
};

/* A plain file descriptor pair (inetd: 0 and 1; -l: the socket twice). */
struct smtp_server_io_fd {
	int	 in;
	int	 out;
};
void	 smtp_server_io_fd_init(struct smtp_server_io *,
	    struct smtp_server_io_fd *, int in, int out);

struct smtp_server_rcpt {
	char	*addr;		/* local@domain as accepted */
	char	*orcpt;		/* "rfc822;x@y" as received, or NULL */
	int	 notify;	/* NOTIFY_* bits (the model's), 0 = not given */
};

/* One mail transaction: what MAIL and RCPT said. */
struct smtp_txn {
	int		 active;	/* MAIL accepted */
	const char	*helo;		/* the session's HELO/EHLO argument */
	char		*sender;	/* "" for <> */
	int		 smtputf8;
	int		 eightbit;	/* BODY=8BITMIME */
	enum dsn_ret	 ret;
	char		*envid;		/* xtext as received, or NULL */
	uint64_t	 size_param;	/* SIZE=, 0 if not given */
	struct smtp_server_rcpt *rcpts;
	size_t		 nrcpts;
	char		 id[64];	/* queue ID, from data_begin */
	uint64_t	 size;		/* bytes committed (Received incl.) */
};

/* Facts about the session that hooks and logs may use. */
struct smtp_params {
	const char	*hostname;	/* banner, EHLO, Received */
	const char	*client_addr;	/* "192.0.2.1", "2001:db8::1", "local" */
	const char	*client_name;	/* "unknown": we do no DNS */
	uint64_t	 max_size;	/* 0: unlimited */
	unsigned	 max_recipients;
	int		 timeout;	/* seconds for a whole command line
					   (and for any one read) */
	uint64_t	 min_data_rate;	/* DATA bytes per second, averaged
					   from the 354 on, judged after a
					   grace of timeout; 0: no limit */
	int		 soft_error_limit;	/* errors before slowing down */
	int		 hard_error_limit;	/* then 421, hang up; 0: no */
	int		 error_sleep;	/* seconds per reply beyond soft */
	int		 tls_required;	/* MAIL before STARTTLS: 530 5.7.0 */
	const char	*postmaster_domain;	/* RCPT TO:<Postmaster> is
					   postmaster@ this (NULL: 501) */
	/*
	 * Submission (RFC 6409, issue 16): AUTH (the auth hook) offered
	 * and taken only under TLS (before: 538 5.7.11), and MAIL only
	 * once authenticated (530 5.7.0).  The Received header then says
	 * ESMTPSA and names the account.
	 */
	int		 submission;
	/*
	 * Not NULL: the connection is TLS from its first byte (RFC 8314
	 * implicit TLS), described so for the Received header.
	 */
	const char	*tls_desc;
};

/*
 * Policy and storage.  Hooks returning int give 0 to go on or -1 after
 * writing a complete reply line ("550 5.7.1 ...", no CRLF) into reply.
 * data_write returns -1 with errno set; the engine then reads the
 * message to its end and replies 452 4.3.1 (ENOSPC, EDQUOT) or 451
 * 4.3.0.  After data_begin succeeded, exactly one of data_commit or
 * data_abort is called.
 */
struct smtp_hooks {
	void	*ctx;
	int	(*mail)(void *ctx, const struct smtp_txn *, char *reply,
		    size_t);
	int	(*rcpt)(void *ctx, const struct smtp_txn *,
		    const struct address *, char *reply, size_t);
	/*
	 * After rcpt refused: the rule that decided ("callout", ...),
	 * logged as "; rule=NAME" at the end of the reject line; NULL
	 * (or this hook unset): no rule named.
	 */
	const char *(*rcpt_rule)(void *ctx);
	int	(*data_begin)(void *ctx, struct smtp_txn *, char *reply,
		    size_t);	/* fills txn->id */
	int	(*data_write)(void *ctx, const void *, size_t);
	int	(*data_commit)(void *ctx, struct smtp_txn *, char *reply,
		    size_t);
	void	(*data_abort)(void *ctx);
	int	(*etrn)(void *ctx, const char *domain, char *reply, size_t);
	/*
	 * STARTTLS (RFC 3207), offered only when this hook is set.  Called
	 * after "220 2.0.0 Ready to start TLS" went out and whatever the
	 * client had pipelined after the command was thrown away: run the
	 * handshake on the connection behind *io, then replace *io with the
	 * TLS stream and describe the result ("TLSv1.3:TLS_AES_256_GCM_
	 * SHA384:256") in desc for the Received header.  -1: the handshake
	 * failed and the session ends.  Afterwards the session starts over
	 * (EHLO required), ESMTPS.
	 */
	int	(*starttls)(void *ctx, struct smtp_server_io *io, char *desc,
		    size_t);
	/*
	 * AUTH (RFC 4954), with params->submission.  auth_begin (may be
	 * unset) decides whether this client may try at all (a lockout:
	 * -1 with "454 4.7.0 ..."), before any challenge.  auth gets the
	 * decoded credentials (wiped after the call): 0 for 235, or -1
	 * with the reply (535 5.7.8, 454 4.7.0).  bad_format: the client
	 * sent fields that cannot be an account (PLAIN acting for another
	 * authzid, an empty field): auth counts it as a failure and
	 * answers 535 without looking anything up.
	 */
	int	(*auth_begin)(void *ctx, char *reply, size_t);
	int	(*auth)(void *ctx, const char *mech, const char *authcid,
		    const char *password, int bad_format, char *reply,
		    size_t);
};

/* Command verbs. */
enum smtp_verb {
	SMTP_UNKNOWN, SMTP_HELO, SMTP_EHLO, SMTP_MAIL, SMTP_RCPT, SMTP_DATA,
	SMTP_RSET, SMTP_NOOP, SMTP_QUIT, SMTP_VRFY, SMTP_EXPN, SMTP_HELP,
	SMTP_ETRN, SMTP_STARTTLS, SMTP_AUTH, SMTP_BDAT, SMTP_NVERBS
};

struct smtp_command {
	enum smtp_verb	 verb;
	const char	*name;	/* "MAIL", or "UNKNOWN" */
	const char	*arg;	/* after the verb and its spaces ("" if none) */
};

/*
 * Split a command line (CRLF already removed, no NUL/CR/LF inside) into
 * verb and argument; verbs are case-insensitive and must be followed by
 * a space or the end.  Never fails: unknown verbs give SMTP_UNKNOWN.
 */
void	 smtp_command_parse(const char *line, struct smtp_command *);

/*
 * Check a command line as read from the client, lf pointing at its
 * '\n': 0 if it is "text CRLF" of at most SMTP_LINE_MAX octets (MAIL:
 * SMTP_MAIL_LINE_MAX, RCPT: SMTP_RCPT_LINE_MAX) without
 * NUL or bare CR; otherwise -1 with a reply in reply.
 */
int	 smtp_line_check(const char *line, size_t len, char *reply, size_t);

/*
 * The argument of MAIL ("FROM:<a@b> SIZE=10 ...") into txn, or -1 with
 * a reply.  esmtp: the client said EHLO (parameters allowed).
 */
int	 smtp_parse_mail(const char *arg, int esmtp, uint64_t max_size,
	    struct smtp_txn *, char *reply, size_t);
/*
 * The argument of RCPT ("TO:<x@y> NOTIFY=... ORCPT=...") into addr and
 * rcpt (rcpt->orcpt allocated), or -1 with a reply.
 */
int	 smtp_parse_rcpt(const char *arg, int esmtp, const struct smtp_txn *,
	    struct address *, struct smtp_server_rcpt *, char *reply, size_t);
/* RFC 3461 xtext of at most maxlen octets? */
int	 smtp_xtext_valid(const char *, size_t maxlen);

/*
 * The client that max-sessions-per-client counts a connection against:
 * its IPv4 address (an IPv4-mapped IPv6 one too), or its IPv6 /64 (one
 * site's LAN or one customer's: its addresses cost an attacker nothing).
 * The values of the two families never meet (an IPv6 /64 starting with
 * ff is multicast, never a client).  Other families, and none:
 * SMTP_CLIENT_NONE.
 */
#define SMTP_CLIENT_NONE	UINT64_MAX
struct sockaddr;
uint64_t smtp_client_key(const struct sockaddr *);

/* Free what a transaction holds and zero it. */
void	 smtp_txn_reset(struct smtp_txn *);

/*
 * Run one session: greeting, commands until QUIT, end of input, timeout
 * or too many errors.  Logs connect/disconnect, each accepted message
 * and each refusal.  Returns 0 after QUIT, -1 otherwise.
 */
int	 smtp_session(const struct smtp_params *, const struct smtp_server_io *,
	    const struct smtp_hooks *);

#endif
