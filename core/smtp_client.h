/*
 * smtp_client.h - the SMTP client that hands mail to a primary: replies
 * (a pure parser, fuzzed), EHLO with HELO fallback, PIPELINING, SIZE,
 * 8BITMIME, SMTPUTF8, DSN parameters, dot-stuffing, RSET between messages
 * on one connection, QUIT.  Every step has a deadline.  A connection that
 * fails or times out at any step leaves every recipient not yet answered
 * without an outcome (code 0): the caller defers them.
 */
#ifndef MXFB_SMTP_CLIENT_H
#define MXFB_SMTP_CLIENT_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* One (possibly multi-line) reply. */
#define SMTP_REPLY_TEXT	4096
struct smtp_reply {
	int		 code;		/* 250; 0 while none */
	char		 dsn[16];	/* enhanced code of the first line, or "" */
	char		 text[SMTP_REPLY_TEXT];	/* lines after the code, '\n' apart */
	size_t		 len;
	int		 nlines;
	int		 done;		/* last line seen */
};

void	 smtp_reply_init(struct smtp_reply *);
/*
 * Add one line (without its CRLF).  Returns 1 when the reply is complete
 * ("250 ..."), 0 when more lines follow ("250-..."), -1 when the line is
 * not a reply line (no 2-5xx code, a different code than the previous
 * lines, a bad separator).  Text beyond the buffer is dropped.
 */
int	 smtp_reply_add_line(struct smtp_reply *, const char *, size_t);
/* "550 5.1.1 text text" on one line, control characters replaced. */
void	 smtp_reply_string(const struct smtp_reply *, char *, size_t);

/* What an EHLO reply offers. */
struct smtp_ext {
	int		 esmtp;		/* EHLO worked (else HELO) */
	int		 pipelining;
	int		 size;
	uint64_t	 maxsize;	/* 0: no limit given */
	int		 eightbitmime;
	int		 smtputf8;
	int		 dsn;
	int		 starttls;
	int		 enhancedstatuscodes;
	char		 keywords[512];	/* "PIPELINING SIZE=1000 ..." */
};
void	 smtp_ehlo_parse(const struct smtp_reply *, struct smtp_ext *);

struct smtp_timeouts {
	time_t		 connect;
	time_t		 command;
	time_t		 data;		/* DATA reply, and each write of the body */
	time_t		 data_done;	/* reply to the final dot */
};

/*
 * Transport below the protocol: plain sockets by default; STARTTLS can
 * swap these for TLS ones after the handshake.  They follow read(2) and
 * write(2) (-1 with EAGAIN: wait for the fd).
 */
struct smtp_client_io {
	ssize_t		(*read)(void *, void *, size_t);
	ssize_t		(*write)(void *, const void *, size_t);
	int		(*pending)(void *);	/* buffered bytes to read */
	void		*ctx;
	void		(*close)(void *);	/* NULL: nothing to free */
};

struct smtp_conn;

/*
 * Connect to one address (nonblocking, connect timeout).  relay names it
 * for logs: "host[ip]:port".  On failure returns -1 with why set
 * ("connect to host[ip]:port: Connection refused").
 */
int	 smtp_connect(const char *host, const struct sockaddr *, socklen_t,
	    const struct smtp_timeouts *, struct smtp_conn **, char *why,
	    size_t);
/*
 * Read the banner, EHLO (HELO when EHLO is refused).  -1 on failure,
 * with smtp_conn_error() saying why; the connection is then useless.
 * banner (may be NULL) gets the greeting.
 */
int	 smtp_greet(struct smtp_conn *, const char *helo,
	    struct smtp_reply *banner);
const struct smtp_ext *smtp_conn_ext(const struct smtp_conn *);
const char *smtp_conn_relay(const struct smtp_conn *);	/* host[ip]:port */
const char *smtp_conn_host(const struct smtp_conn *);
const char *smtp_conn_error(const struct smtp_conn *);
int	 smtp_conn_fd(const struct smtp_conn *);
void	 smtp_conn_set_io(struct smtp_conn *, const struct smtp_client_io *);
/*
 * Cap every later wait on the connection at deadline (a now_ms() time;
 * 0 lifts the cap): a whole exchange, not each step, ends by then.
 */
void	 smtp_conn_set_deadline(struct smtp_conn *, int64_t deadline);

/*
 * STARTTLS (RFC 3207), step one: send it and read the reply.  0: the
 * server said 220, do the handshake on smtp_conn_fd(); -1 otherwise,
 * with *refused set when the server merely declined (the connection can
 * still go on in plaintext) and clear when it is broken.  Bytes the
 * server sent after its 220 are plaintext injected ahead of TLS
 * (CVE-2011-0411 class): -1, broken.
 */
int	 smtp_starttls(struct smtp_conn *, int *refused);
/*
 * Step two, after the handshake: read and write through io from now on
 * (smtp_close calls io->close) and EHLO again; the extensions are those
 * offered over TLS.  -1: broken.
 */
int	 smtp_tls_started(struct smtp_conn *, const struct smtp_client_io *,
	    const char *helo);

/* Send one command line (CRLF added) and read its reply; -1: broken. */
int	 smtp_command(struct smtp_conn *, const char *, struct smtp_reply *);

/* One message to send. */
struct smtp_client_rcpt {
	const char	*addr;
	const char	*orcpt;		/* xtext, or NULL */
	int		 notify;	/* NOTIFY_* (core/mail/envelope.h), 0 none */
};
struct smtp_message {
	const char	*sender;	/* "" for <> */
	const char	*envid;		/* xtext, or NULL */
	int		 ret;		/* 0 none, 1 FULL, 2 HDRS */
	int		 smtputf8;
	int		 eightbit;
	const unsigned char *data;	/* CRLF lines, not dot-stuffed */
	size_t		 len;
	const struct smtp_client_rcpt *rcpts;
	size_t		 nrcpts;
};

/* The outcome for one recipient; code 0: none (connection trouble). */
struct smtp_result {
	int		 code;		/* 250, 451, 550, or 0 */
	char		 dsn[16];	/* "2.0.0", "5.1.1", "4.4.2" */
	char		 reply[512];	/* the primary's reply, one line */
	const char	*stage;		/* "MAIL FROM", "RCPT TO", "end of DATA" */
	int		 from_peer;	/* the reply came from the primary */
};

/*
 * One transaction (RSET first when it is not the connection's first):
 * fills results[0..nrcpts).  Returns 0 when the connection can carry
 * another message, -1 when it is broken; recipients then without a code
 * are to be deferred with smtp_conn_error() as the reason.
 */
int	 smtp_deliver(struct smtp_conn *, const struct smtp_message *,
	    struct smtp_result *);

/* QUIT (best effort, short wait), then close and free. */
void	 smtp_quit(struct smtp_conn *);
void	 smtp_close(struct smtp_conn *);

#endif
