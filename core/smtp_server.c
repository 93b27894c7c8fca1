/*
 * smtp_server.c - the SMTP server protocol engine: command parsing, the
 * RFC 5321 state machine, ESMTP parameters, pipelined reply batching and
 * the DATA reader with its SMTP smuggling defence.
 *
 * Input is read in large blocks into one buffer and consumed command by
 * command, so a pipelined group costs one read; replies are buffered and
 * written only when the buffer holds no further complete input (or the
 * reply must be seen before the client can go on: 354, 221, 421).  In
 * DATA only <CR><LF>.<CR><LF> ends the message; any bare CR, bare LF or
 * NUL marks the message bad, it is read to that real end and refused.
 *
 * Time limits, as Postfix's smtpd_per_record_deadline and
 * smtpd_min_data_rate: a command line must arrive whole within the
 * timeout (a client trickling a byte at a time cannot keep a session),
 * and the message text by a deadline that starts at one timeout after
 * DATA and grows by a second for every min_data_rate bytes received.
 * Both are checked only when a read must wait: a client whose input is
 * already buffered costs no clock reading.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mail/address.h"
#include "core/sasl.h"
#include "core/smtp_server.h"
#include "core/util.h"

#define IBUF_SIZE	(64 * 1024)
#define DBUF_SIZE	(64 * 1024)
#define SIZE_DIGITS_MAX	20	/* RFC 1870: size-value ::= 1*20DIGIT */
#define POSTMASTER	"<postmaster>"	/* RFC 5321 4.1.1.3: any case */
#define POSTMASTER_LEN	(sizeof(POSTMASTER) - 1)

/* Where the DATA reader is within a line. */
enum data_pos {
	DATA_BOL,	/* after CRLF (or at the start) */
	DATA_MID,	/* inside a line */
	DATA_CR,	/* after a CR inside a line */
	DATA_DOT,	/* after a '.' at the start of a line */
	DATA_DOT_CR	/* after ".\r" at the start of a line */
};

struct data_state {
	enum data_pos	 pos;
	int		 bare;		/* bare CR or LF seen */
	int		 nul;		/* NUL seen */
	int		 toobig;	/* beyond max_size */
	int		 write_errno;	/* data_write failed */
	int		 in_headers;
	size_t		 hdr_linepos;
	char		 hdr_prefix[9];
	unsigned	 received;	/* client's Received: headers */
	uint64_t	 size;		/* message bytes (unstuffed) */
	char		 buf[DBUF_SIZE];
	size_t		 len;
	size_t		 hdrlen;	/* our Received: header */
	int64_t		 start;		/* now_ms() at the 354 */
	uint64_t	 nread_start;	/* session->nread counted from here */
};

struct session {
	const struct smtp_params *p;
	struct smtp_server_io		 iobuf;	/* STARTTLS replaces it */
	struct smtp_server_io		*io;
	const struct smtp_hooks	*h;
	const char		*rule;	/* rcpt_rule of a refused RCPT */

	size_t		 ipos, iend;	/* the client's bytes: ibuf[ipos..iend) */
	char		*obuf;
	size_t		 olen, ocap;
	int		 closing;	/* QUIT, 421 or lost connection */
	uint64_t	 nread;		/* bytes read from the client */
	int64_t		 deadline;	/* now_ms() by which the line (or the
					   message) must be in; 0: none */

	char		 client[320];	/* "unknown[192.0.2.1]" */
	char		 helo[DOMAIN_NAME_SIZE];
	int		 have_helo;
	int		 esmtp;
	int		 tls;		/* STARTTLS done */
	char		 tls_desc[128];
	enum sasl_mech	 auth_mech;	/* AUTH done (SASL_NONE: not) */
	char		 auth_user[SASL_ID_MAX + 1];
	const char	*last_cmd;	/* for "lost connection after X" */
	int		 errors;
	unsigned	 overshoot;	/* 452 too many recipients */
	unsigned	 counts[SMTP_NVERBS];
	unsigned	 ncommands;

	struct smtp_txn	 txn;
	struct data_state *d;

	char		 ibuf[IBUF_SIZE];	/* last: never cleared (below) */
};

static const struct {
	const char	*name;
	enum smtp_verb	 verb;
} verbs[] = {
	{ "HELO", SMTP_HELO },	{ "EHLO", SMTP_EHLO },
	{ "MAIL", SMTP_MAIL },	{ "RCPT", SMTP_RCPT },
	{ "DATA", SMTP_DATA },	{ "RSET", SMTP_RSET },
	{ "NOOP", SMTP_NOOP },	{ "QUIT", SMTP_QUIT },
	{ "VRFY", SMTP_VRFY },	{ "EXPN", SMTP_EXPN },
	{ "HELP", SMTP_HELP },	{ "ETRN", SMTP_ETRN },
	{ "STARTTLS", SMTP_STARTTLS }, { "AUTH", SMTP_AUTH },
	{ "BDAT", SMTP_BDAT },
};

static ssize_t	 fd_read(void *, void *, size_t, int);
static int	 fd_write(void *, const void *, size_t, int);
static int	 fd_wait(int, short, int);
static void	 out_append(struct session *, const char *, size_t);
static int	 out_flush(struct session *);
static void	 reply(struct session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 reply_line(struct session *, const char *);
static int	 fill(struct session *);
static int	 read_line(struct session *, char **, size_t *, size_t);
static int	 line_check(const char *, size_t, size_t, char *, size_t);
static void	 log_reject(struct session *, const char *, const char *,
		    const char *);
static void	 safe_copy(char *, size_t, const char *);
static size_t	 line_limit(const char *, size_t);
static int	 param_split(char **, char **, char **);
static void	 param_refuse(const char *, const char *const *, char *,
		    size_t);
static void	 do_helo(struct session *, const struct smtp_command *, int);
static void	 do_mail(struct session *, const struct smtp_command *);
static void	 do_rcpt(struct session *, const struct smtp_command *);
static void	 do_data(struct session *, const struct smtp_command *);
static void	 do_etrn(struct session *, const struct smtp_command *);
static void	 do_starttls(struct session *, const struct smtp_command *);
static void	 do_auth(struct session *, const struct smtp_command *);
static int	 auth_refused(struct session *);
static int	 auth_response(struct session *, char *, size_t, size_t *);
static int	 auth_decode(struct session *, enum sasl_mech, const char *,
		    size_t, struct sasl_creds *);
static int	 auth_login(struct session *, const char *, size_t,
		    struct sasl_creds *, char *, size_t);
static void	 do_command(struct session *, char *);
static int	 read_data(struct session *);
static void	 data_deadline(struct session *);
static void	 data_emit(struct session *, const char *, size_t);
static void	 data_flush(struct session *);
static void	 data_finish(struct session *);
static int	 received_header(struct session *, char *, size_t);
static int	 parse_notify(const char *);
static int	 parse_orcpt(const char *, int);

/* ------------------------------------------------------------------ */
/* File descriptor I/O. */

static ssize_t
fd_read(void *ctx, void *buf, size_t len, int timeout)
{
	struct smtp_server_io_fd	*f = ctx;
	ssize_t			 n;

	for (;;) {
		if (fd_wait(f->in, POLLIN, timeout) == -1)
			return (-1);
		n = read(f->in, buf, len);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		return (n);
	}
}

/*
 * Wait until fd is ready for events, at most timeout seconds (0 or less:
 * no limit); -1 with errno ETIMEDOUT when the time is up.
 */
static int
fd_wait(int fd, short events, int timeout)
{
	int	 r;

	r = wait_fd(fd, events, timeout <= 0 ? -1 :
	    now_ms() + (int64_t)timeout * 1000);
	if (r == 0)
		errno = ETIMEDOUT;
	return (r == 1 ? 0 : -1);
}

static int
fd_write(void *ctx, const void *buf, size_t len, int timeout)
{
	struct smtp_server_io_fd	*f = ctx;
	const char		*p = buf;
	ssize_t			 n;

	while (len > 0) {
		/*
		 * Never block past the timeout on a client that does not
		 * read: MSG_DONTWAIT on sockets, tried first (a reply
		 * nearly always fits: no poll), poll only when the socket
		 * is full; pipes take poll and write().
		 */
		n = send(f->out, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n == -1 && errno == ENOTSOCK) {
			if (fd_wait(f->out, POLLOUT, timeout) == -1)
				return (-1);
			n = write(f->out, p, len);
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (fd_wait(f->out, POLLOUT, timeout) == -1)
				return (-1);
			continue;
		}
		if (n == -1)
			return (-1);
		p += n;
		len -= n;
	}
	return (0);
}

void
smtp_server_io_fd_init(struct smtp_server_io *io, struct smtp_server_io_fd *f,
    int in, int out)
{
	f->in = in;
	f->out = out;
	io->ctx = f;
	io->read = fd_read;
	io->write = fd_write;
}

/* ------------------------------------------------------------------ */
/* Pure parsers. */

void
smtp_command_parse(const char *line, struct smtp_command *cmd)
{
	size_t	 i, n;

	cmd->verb = SMTP_UNKNOWN;
	cmd->name = "UNKNOWN";
	cmd->arg = "";
	for (n = 0; isalpha((unsigned char)line[n]); n++)
		;
	if (line[n] != '\0' && line[n] != ' ')
		return;
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strlen(verbs[i].name) == n &&
		    strncasecmp(line, verbs[i].name, n) == 0) {
			cmd->verb = verbs[i].verb;
			cmd->name = verbs[i].name;
			break;
		}
	}
	if (cmd->verb == SMTP_UNKNOWN)
		return;
	line += n;
	while (*line == ' ')
		line++;
	cmd->arg = line;
}

/* The longest line allowed for this command (RFC 1869 extensions). */
static size_t
line_limit(const char *line, size_t len)
{
	if (len >= 5 && (line[4] == ' ' || line[4] == '\r')) {
		if (strncasecmp(line, "MAIL", 4) == 0)
			return (SMTP_MAIL_LINE_MAX);
		if (strncasecmp(line, "RCPT", 4) == 0)
			return (SMTP_RCPT_LINE_MAX);
	}
	return (SMTP_LINE_MAX);
}

int
smtp_line_check(const char *line, size_t len, char *rbuf, size_t rsize)
{
	return (line_check(line, len, line_limit(line, len), rbuf, rsize));
}

/* smtp_line_check with the limit given (AUTH's is RFC 4954's). */
static int
line_check(const char *line, size_t len, size_t max, char *rbuf,
    size_t rsize)
{
	if (len > max) {
		strlcpy(rbuf, max == SASL_LINE_MAX ? "500 5.5.6 Error: "
		    "authentication exchange line is too long" :
		    "500 5.5.2 Error: line too long", rsize);
		return (-1);
	}
	if (len < 2 || line[len - 1] != '\n' || line[len - 2] != '\r' ||
	    memchr(line, '\n', len - 1) != NULL) {
		strlcpy(rbuf, "500 5.5.2 Error: bare <LF> received", rsize);
		return (-1);
	}
	if (memchr(line, '\r', len - 2) != NULL) {
		strlcpy(rbuf, "500 5.5.2 Error: bare <CR> received", rsize);
		return (-1);
	}
	if (memchr(line, '\0', len) != NULL) {
		strlcpy(rbuf, "500 5.5.2 Error: NUL character received",
		    rsize);
		return (-1);
	}
	return (0);
}

int
smtp_xtext_valid(const char *s, size_t maxlen)
{
	size_t	 n = 0;

	if (*s == '\0')
		return (0);
	for (; *s != '\0'; s++, n++) {
		if (*s == '+') {
			if (!isxdigit((unsigned char)s[1]) ||
			    !isxdigit((unsigned char)s[2]) ||
			    islower((unsigned char)s[1]) ||
			    islower((unsigned char)s[2]))
				return (0);
			s += 2;
			n += 2;
		} else if ((unsigned char)*s < 33 || (unsigned char)*s > 126 ||
		    *s == '=')
			return (0);
	}
	return (n <= maxlen);
}

/* The parameters MAIL and RCPT know (RFC 1870, 6152, 6531, 3461). */
static const char *const mail_params[] = {
	"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", NULL
};
static const char *const rcpt_params[] = { "NOTIFY", "ORCPT", NULL };

/*
 * A parameter that did not parse: one we know, given twice or with a
 * value missing or extra, is bad syntax (501, as Postfix); one we do
 * not know is 555 (RFC 5321 4.1.1.11).
 */
static void
param_refuse(const char *key, const char *const *known, char *rbuf,
    size_t rsize)
{
	for (; *known != NULL; known++) {
		if (strcasecmp(key, *known) == 0) {
			snprintf(rbuf, rsize, "501 5.5.4 Bad %s parameter "
			    "syntax (duplicate, or value missing or extra)",
			    *known);
			return;
		}
	}
	strlcpy(rbuf, "555 5.5.4 Unsupported option", rsize);
}

/*
 * Next "KEY[=VALUE]" from *p (space separated); *p advances.  Returns 0
 * at the end, 1 for a parameter, -1 for bad syntax.
 */
static int
param_split(char **p, char **key, char **value)
{
	char	*s = *p, *k;

	while (*s == ' ')
		s++;
	if (*s == '\0')
		return (0);
	k = s;
	if (!isalnum((unsigned char)*s))
		return (-1);
	while (isalnum((unsigned char)*s) || *s == '-')
		s++;
	*key = k;
	*value = NULL;
	if (*s == '=') {
		*s++ = '\0';
		*value = s;
		while (*s != ' ' && *s != '\0') {
			if ((unsigned char)*s < 33 || *s == '=')
				return (-1);
			s++;
		}
		if (s == *value)
			return (-1);
	} else if (*s != ' ' && *s != '\0')
		return (-1);
	if (*s == ' ')
		*s++ = '\0';
	*p = s;
	return (1);
}

int
smtp_parse_mail(const char *arg, int esmtp, uint64_t max_size,
    struct smtp_txn *txn, char *rbuf, size_t rsize)
{
	struct address		 a;
	enum address_error	 e;
	const char		*end, *errstr;
	char			 params[SMTP_CMDLINE_MAX + 1], *p, *key, *val;
	int			 r, seen_size = 0, seen_body = 0;
	long long		 size;

	if (strncasecmp(arg, "FROM:", 5) != 0) {
		strlcpy(rbuf, "501 5.5.4 Syntax: MAIL FROM:<address>", rsize);
		return (-1);
	}
	arg += 5;
	while (*arg == ' ')
		arg++;
	if ((e = address_parse_path(arg, 1, 1, &a, &end)) != ADDRESS_OK ||
	    (*end != '\0' && *end != ' ')) {
		snprintf(rbuf, rsize, "501 5.1.7 Bad sender address syntax%s",
		    e == ADDRESS_TOO_LONG ? " (too long)" : "");
		return (-1);
	}
	if (strlcpy(params, end, sizeof(params)) >= sizeof(params)) {
		strlcpy(rbuf, "500 5.5.2 Error: line too long", rsize);
		return (-1);
	}
	p = params;
	while ((r = param_split(&p, &key, &val)) != 0) {
		if (r == -1) {
			strlcpy(rbuf, "501 5.5.4 Bad parameter syntax", rsize);
			return (-1);
		}
		if (!esmtp) {
			strlcpy(rbuf, "555 5.5.4 Parameters need EHLO", rsize);
			return (-1);
		}
		if (strcasecmp(key, "SIZE") == 0 && val != NULL &&
		    !seen_size) {
			seen_size = 1;
			if (strspn(val, "0123456789") != strlen(val) ||
			    strlen(val) > SIZE_DIGITS_MAX) {
				strlcpy(rbuf, "501 5.5.4 Bad SIZE parameter",
				    rsize);
				return (-1);
			}
			size = strtonum(val, 0, LLONG_MAX, &errstr);
			/* 19 or 20 digits beyond LLONG_MAX: just too big. */
			txn->size_param = errstr != NULL ? UINT64_MAX :
			    (uint64_t)size;
			if (max_size > 0 && txn->size_param > max_size) {
				strlcpy(rbuf, "552 5.3.4 Message size exceeds "
				    "fixed limit", rsize);
				return (-1);
			}
		} else if (strcasecmp(key, "BODY") == 0 && val != NULL &&
		    !seen_body) {
			seen_body = 1;
			if (strcasecmp(val, "8BITMIME") == 0)
				txn->eightbit = 1;
			else if (strcasecmp(val, "7BIT") != 0) {
				strlcpy(rbuf, "555 5.5.4 Unsupported BODY "
				    "parameter", rsize);
				return (-1);
			}
		} else if (strcasecmp(key, "SMTPUTF8") == 0 && val == NULL &&
		    !txn->smtputf8) {
			txn->smtputf8 = 1;
		} else if (strcasecmp(key, "RET") == 0 && val != NULL &&
		    txn->ret == RET_UNSET) {
			if (strcasecmp(val, "FULL") == 0)
				txn->ret = RET_FULL;
			else if (strcasecmp(val, "HDRS") == 0)
				txn->ret = RET_HDRS;
			else {
				strlcpy(rbuf, "501 5.5.4 Bad RET parameter",
				    rsize);
				return (-1);
			}
		} else if (strcasecmp(key, "ENVID") == 0 && val != NULL &&
		    txn->envid == NULL) {
			if (!smtp_xtext_valid(val, SMTP_ENVID_MAX)) {
				strlcpy(rbuf, "501 5.5.4 Bad ENVID parameter",
				    rsize);
				return (-1);
			}
			txn->envid = xstrdup(val);
		} else {
			param_refuse(key, mail_params, rbuf, rsize);
			return (-1);
		}
	}
	if (a.utf8 && !txn->smtputf8) {
		strlcpy(rbuf, "553 5.6.7 Must declare SMTPUTF8 to send Unicode "
		    "address", rsize);
		return (-1);
	}
	free(txn->sender);
	txn->sender = xstrdup(a.addr);
	return (0);
}

static int
parse_notify(const char *val)
{
	char	 buf[128], *p, *tok;
	int	 bits = 0, bit;

	if (strlcpy(buf, val, sizeof(buf)) >= sizeof(buf))
		return (-1);
	p = buf;
	while ((tok = strsep(&p, ",")) != NULL) {
		if (strcasecmp(tok, "NEVER") == 0)
			bit = NOTIFY_NEVER;
		else if (strcasecmp(tok, "SUCCESS") == 0)
			bit = NOTIFY_SUCCESS;
		else if (strcasecmp(tok, "FAILURE") == 0)
			bit = NOTIFY_FAILURE;
		else if (strcasecmp(tok, "DELAY") == 0)
			bit = NOTIFY_DELAY;
		else
			return (-1);
		if (bits & bit)
			return (-1);
		bits |= bit;
	}
	if ((bits & NOTIFY_NEVER) && bits != NOTIFY_NEVER)
		return (-1);
	return (bits);
}

/* addr-type ";" xtext (RFC 3461 4.2); UTF-8 allowed with SMTPUTF8. */
static int
parse_orcpt(const char *val, int smtputf8)
{
	const char	*semi, *p;
	char		 buf[SMTP_ORCPT_MAX + 1];
	size_t		 i;

	if (strlen(val) > SMTP_ORCPT_MAX ||
	    (semi = strchr(val, ';')) == NULL || semi == val)
		return (-1);
	for (p = val; p < semi; p++)
		if (!isalnum((unsigned char)*p) && *p != '-')
			return (-1);
	if (smtputf8) {
		if (!utf8_valid((const unsigned char *)semi + 1,
		    strlen(semi + 1)))
			return (-1);
		/* Check the xtext syntax with the UTF-8 octets masked. */
		strlcpy(buf, semi + 1, sizeof(buf));
		for (i = 0; buf[i] != '\0'; i++)
			if ((unsigned char)buf[i] >= 0x80)
				buf[i] = 'x';
		return (smtp_xtext_valid(buf, SMTP_ORCPT_MAX) ? 0 : -1);
	}
	return (smtp_xtext_valid(semi + 1, SMTP_ORCPT_MAX) ? 0 : -1);
}

int
smtp_parse_rcpt(const char *arg, int esmtp, const struct smtp_txn *txn,
    struct address *a, struct smtp_server_rcpt *rcpt, char *rbuf, size_t rsize)
{
	enum address_error	 e;
	const char		*end;
	char			 params[SMTP_CMDLINE_MAX + 1], *p, *key, *val;
	int			 r, notify;

	memset(rcpt, 0, sizeof(*rcpt));
	if (strncasecmp(arg, "TO:", 3) != 0) {
		strlcpy(rbuf, "501 5.5.4 Syntax: RCPT TO:<address>", rsize);
		return (-1);
	}
	arg += 3;
	while (*arg == ' ')
		arg++;
	if ((e = address_parse_path(arg, 0, 1, a, &end)) != ADDRESS_OK ||
	    (*end != '\0' && *end != ' ')) {
		snprintf(rbuf, rsize, "501 5.1.3 Bad recipient address "
		    "syntax%s", e == ADDRESS_TOO_LONG ? " (too long)" : "");
		return (-1);
	}
	if (strlcpy(params, end, sizeof(params)) >= sizeof(params)) {
		strlcpy(rbuf, "500 5.5.2 Error: line too long", rsize);
		return (-1);
	}
	p = params;
	while ((r = param_split(&p, &key, &val)) != 0) {
		if (r == -1) {
			strlcpy(rbuf, "501 5.5.4 Bad parameter syntax", rsize);
			goto fail;
		}
		if (!esmtp) {
			strlcpy(rbuf, "555 5.5.4 Parameters need EHLO", rsize);
			goto fail;
		}
		if (strcasecmp(key, "NOTIFY") == 0 && val != NULL &&
		    rcpt->notify == 0) {
			if ((notify = parse_notify(val)) <= 0) {
				strlcpy(rbuf, "501 5.5.4 Bad NOTIFY parameter",
				    rsize);
				goto fail;
			}
			rcpt->notify = notify;
		} else if (strcasecmp(key, "ORCPT") == 0 && val != NULL &&
		    rcpt->orcpt == NULL) {
			if (parse_orcpt(val, txn->smtputf8) == -1) {
				strlcpy(rbuf, "501 5.5.4 Bad ORCPT parameter",
				    rsize);
				goto fail;
			}
			rcpt->orcpt = xstrdup(val);
		} else {
			param_refuse(key, rcpt_params, rbuf, rsize);
			goto fail;
		}
	}
	if (a->utf8 && !txn->smtputf8) {
		strlcpy(rbuf, "553 5.6.7 Must declare SMTPUTF8 to send Unicode "
		    "address", rsize);
		goto fail;
	}
	return (0);
 fail:
	free(rcpt->orcpt);
	rcpt->orcpt = NULL;
	return (-1);
}

uint64_t
smtp_client_key(const struct sockaddr *sa)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	const unsigned char		*b;
	uint64_t			 key = 0;
	int				 i;

	if (sa == NULL)
		return (SMTP_CLIENT_NONE);
	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)sa;
		b = (const unsigned char *)&sin->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		b = sin6->sin6_addr.s6_addr;
		if (!IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			for (i = 0; i < 8; i++)
				key = key << 8 | b[i];
			return (key);
		}
		b += 12;
	} else
		return (SMTP_CLIENT_NONE);
	/* IPv4 as ff00::/32 + the address: a multicast prefix. */
	for (i = 0; i < 4; i++)
		key = key << 8 | b[i];
	return (0xff00000000000000ULL | key);
}

void
smtp_txn_reset(struct smtp_txn *txn)
{
	size_t	 i;

	free(txn->sender);
	free(txn->envid);
	for (i = 0; i < txn->nrcpts; i++) {
		free(txn->rcpts[i].addr);
		free(txn->rcpts[i].orcpt);
	}
	free(txn->rcpts);
	memset(txn, 0, sizeof(*txn));
}

/* ------------------------------------------------------------------ */
/* Session I/O. */

static void
out_append(struct session *s, const char *buf, size_t len)
{
	if (s->olen + len > s->ocap) {
		s->ocap = (s->olen + len) * 2;
		s->obuf = xreallocarray(s->obuf, s->ocap, 1);
	}
	memcpy(s->obuf + s->olen, buf, len);
	s->olen += len;
}

static int
out_flush(struct session *s)
{
	int	 r = 0;

	if (s->olen > 0 && !s->closing) {
		r = s->io->write(s->io->ctx, s->obuf, s->olen, s->p->timeout);
		if (r == -1)
			s->closing = 1;
	}
	s->olen = 0;
	return (r);
}

/* Queue one reply line; counts and paces errors as Postfix does. */
static void
reply_line(struct session *s, const char *line)
{
	int	 error = (line[0] == '4' || line[0] == '5') &&
		    strncmp(line, "421", 3) != 0;

	if (error && ++s->errors > s->p->soft_error_limit &&
	    s->p->error_sleep > 0) {
		if (out_flush(s) == 0)
			sleep(s->p->error_sleep);
	}
	out_append(s, line, strlen(line));
	out_append(s, "\r\n", 2);
	if (error && s->p->hard_error_limit > 0 &&
	    s->errors >= s->p->hard_error_limit) {
		log_info("too many errors after %s from %s", s->last_cmd,
		    s->client);
		reply(s, "421 4.7.0 %s Error: too many errors",
		    s->p->hostname);
		out_flush(s);
		s->closing = 1;
	}
}

static void
reply(struct session *s, const char *fmt, ...)
{
	char	 line[SMTP_REPLY_MAX];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	reply_line(s, line);
}

/*
 * Read more input, flushing pending replies first (RFC 2920: the
 * server flushes when it would otherwise wait).  Returns >0, or 0 when
 * the session is over (end of file, error or timeout, logged).
 */
static int
fill(struct session *s)
{
	ssize_t	 n;
	int64_t	 left = 0;
	int	 timeout = s->p->timeout;

	if (out_flush(s) == -1)
		return (0);
	if (s->ipos > 0) {
		memmove(s->ibuf, s->ibuf + s->ipos, s->iend - s->ipos);
		s->iend -= s->ipos;
		s->ipos = 0;
	}
	if (s->iend == sizeof(s->ibuf))
		return (1);
	/* No read waits past the deadline (rounded up to a second). */
	if (s->deadline > 0 && (left = s->deadline - now_ms()) <= 0) {
		n = -1;
		errno = ETIMEDOUT;
	} else {
		if (s->deadline > 0 && left < (int64_t)timeout * 1000)
			timeout = (int)((left + 999) / 1000);
		n = s->io->read(s->io->ctx, s->ibuf + s->iend,
		    sizeof(s->ibuf) - s->iend, timeout);
	}
	if (n > 0) {
		s->iend += n;
		s->nread += n;
		return (1);
	}
	if (n == -1 && errno == ETIMEDOUT && s->d != NULL &&
	    s->deadline > 0 && now_ms() >= s->deadline) {
		log_info("data too slow after DATA from %s: %llu bytes in "
		    "%llds, min-data-rate %llu", s->client,
		    (unsigned long long)(s->nread - s->d->nread_start),
		    (long long)((now_ms() - s->d->start) / 1000),
		    (unsigned long long)s->p->min_data_rate);
		reply(s, "421 4.4.2 %s Error: timeout exceeded (data too "
		    "slow)", s->p->hostname);
		out_flush(s);
	} else if (n == -1 && errno == ETIMEDOUT) {
		log_info("timeout after %s from %s", s->last_cmd, s->client);
		reply(s, "421 4.4.2 %s Error: timeout exceeded",
		    s->p->hostname);
		out_flush(s);
	} else
		log_info("lost connection after %s from %s", s->last_cmd,
		    s->client);
	s->closing = 1;
	return (0);
}

/*
 * The next input line into *line (with its LF).  Returns 1 for a line,
 * 2 for a line that was too long (already discarded), 0 at the end.
 */
static int
read_line(struct session *s, char **line, size_t *len, size_t max)
{
	char	*nl;
	int	 overlong = 0;

	for (;;) {
		nl = memchr(s->ibuf + s->ipos, '\n', s->iend - s->ipos);
		if (nl != NULL) {
			*line = s->ibuf + s->ipos;
			*len = nl - *line + 1;
			s->ipos += *len;
			s->deadline = 0;
			return (overlong ? 2 : 1);
		}
		if (s->iend - s->ipos >= max) {
			overlong = 1;
			s->ipos = s->iend;
		}
		/* The whole line within timeout, from the first wait. */
		if (s->deadline == 0 && s->p->timeout > 0)
			s->deadline = now_ms() + (int64_t)s->p->timeout * 1000;
		if (fill(s) == 0)
			return (0);
	}
}

static void
safe_copy(char *buf, size_t size, const char *text)
{
	log_safe(buf, size, text);
}

static void
log_reject(struct session *s, const char *stage, const char *line,
    const char *to)
{
	char	 from[ADDRESS_PATH_MAX * 4 + 1];
	char	 rcpt[ADDRESS_PATH_MAX * 4 + 1];
	char	 helo[sizeof(s->helo) * 4 + 1];
	char	 text[SMTP_REPLY_MAX * 4 + 1];
	safe_copy(text, sizeof(text), line);
	safe_copy(helo, sizeof(helo), s->helo);
	if (s->txn.sender != NULL)
		safe_copy(from, sizeof(from), s->txn.sender);
	if (to != NULL) {
		/* "<x@y> NOTIFY=..." as typed, when it did not parse */
		if (*to == '<')
			to++;
		safe_copy(rcpt, sizeof(rcpt), to);
		rcpt[strcspn(rcpt, "> ")] = '\0';
	}
	log_info("reject: %s from %s: %s;%s%s%s%s%s%s proto=%s helo=<%s>%s%s",
	    stage, s->client, text,
	    s->txn.sender != NULL ? " from=<" : "",
	    s->txn.sender != NULL ? from : "",
	    s->txn.sender != NULL ? ">" : "",
	    to != NULL ? " to=<" : "", to != NULL ? rcpt : "",
	    to != NULL ? ">" : "", s->esmtp ? "ESMTP" : "SMTP", helo,
	    s->rule != NULL ? "; rule=" : "", s->rule != NULL ? s->rule : "");
}

/* ------------------------------------------------------------------ */
/* Commands. */

static void
do_helo(struct session *s, const struct smtp_command *cmd, int esmtp)
{
	const char	*p;

	if (*cmd->arg == '\0') {
		reply(s, "501 5.5.4 Syntax: %s hostname", cmd->name);
		return;
	}
	for (p = cmd->arg; *p != '\0'; p++)
		if ((unsigned char)*p < 33 || (unsigned char)*p > 126)
			break;
	if (*p != '\0' || p - cmd->arg >= (ptrdiff_t)sizeof(s->helo)) {
		reply(s, "501 5.5.2 Syntax: %s hostname", cmd->name);
		return;
	}
	strlcpy(s->helo, cmd->arg, sizeof(s->helo));
	s->have_helo = 1;
	s->esmtp = esmtp;
	smtp_txn_reset(&s->txn);
	if (!esmtp) {
		reply(s, "250 %s", s->p->hostname);
		return;
	}
	reply(s, "250-%s", s->p->hostname);
	reply(s, "250-PIPELINING");
	if (s->p->max_size > 0)
		reply(s, "250-SIZE %llu", (unsigned long long)s->p->max_size);
	else
		reply(s, "250-SIZE");
	reply(s, "250-ETRN");
	reply(s, "250-ENHANCEDSTATUSCODES");
	reply(s, "250-8BITMIME");
	reply(s, "250-DSN");
	if (s->h->starttls != NULL && !s->tls)
		reply(s, "250-STARTTLS");
	/* RFC 4954 4: never the password in clear. */
	if (s->p->submission && s->h->auth != NULL && s->tls)
		reply(s, "250-AUTH PLAIN LOGIN");
	reply(s, "250 SMTPUTF8");
}

static void
do_mail(struct session *s, const struct smtp_command *cmd)
{
	char	 rbuf[SMTP_REPLY_MAX];

	if (!s->have_helo) {
		reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->txn.active) {
		reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if ((s->p->tls_required || s->p->submission) && !s->tls) {
		strlcpy(rbuf, "530 5.7.0 Must issue a STARTTLS command first",
		    sizeof(rbuf));
		log_reject(s, "MAIL", rbuf, NULL);
		reply_line(s, rbuf);
		return;
	}
	/* RFC 4954 6: submission takes nothing from strangers. */
	if (s->p->submission && s->auth_mech == SASL_NONE) {
		strlcpy(rbuf, "530 5.7.0 Authentication required",
		    sizeof(rbuf));
		log_reject(s, "MAIL", rbuf, NULL);
		reply_line(s, rbuf);
		return;
	}
	smtp_txn_reset(&s->txn);
	if (smtp_parse_mail(cmd->arg, s->esmtp, s->p->max_size, &s->txn,
	    rbuf, sizeof(rbuf)) == -1 ||
	    (s->h->mail != NULL &&
	    s->h->mail(s->h->ctx, &s->txn, rbuf, sizeof(rbuf)) == -1)) {
		log_reject(s, "MAIL", rbuf, NULL);
		smtp_txn_reset(&s->txn);
		reply_line(s, rbuf);
		return;
	}
	s->txn.active = 1;
	s->txn.helo = s->helo;
	reply(s, "250 2.1.0 Ok");
}

/*
 * RFC 5321 4.5.1: "RCPT TO:<Postmaster>", without a domain, MUST be
 * accepted: it becomes postmaster@ the domain the caller names (for
 * receive, its first relay domain).  The command's parameters stay.
 */
static const char *
postmaster_arg(const struct session *s, const char *arg, char *buf,
    size_t size)
{
	const char	*p = arg;

	if (s->p->postmaster_domain == NULL || strncasecmp(p, "TO:", 3) != 0)
		return (arg);
	for (p += 3; *p == ' '; p++)
		;
	if (strncasecmp(p, POSTMASTER, POSTMASTER_LEN) != 0 ||
	    (p[POSTMASTER_LEN] != '\0' && p[POSTMASTER_LEN] != ' '))
		return (arg);
	if ((size_t)snprintf(buf, size, "TO:<postmaster@%s>%s",
	    s->p->postmaster_domain, p + POSTMASTER_LEN) >= size)
		return (arg);
	return (buf);
}

static void
do_rcpt(struct session *s, const struct smtp_command *cmd)
{
	struct address		 a;
	struct smtp_server_rcpt	 r;
	char			 rbuf[SMTP_REPLY_MAX];
	char			 pm[SMTP_CMDLINE_MAX + 300];
	size_t			 i;

	if (!s->txn.active) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (smtp_parse_rcpt(postmaster_arg(s, cmd->arg, pm, sizeof(pm)),
	    s->esmtp, &s->txn, &a, &r, rbuf, sizeof(rbuf)) == -1) {
		log_reject(s, "RCPT", rbuf,
		    strncasecmp(cmd->arg, "TO:", 3) == 0 ? cmd->arg + 3 :
		    cmd->arg);
		reply_line(s, rbuf);
		return;
	}
	if (s->txn.nrcpts >= s->p->max_recipients) {
		free(r.orcpt);
		strlcpy(rbuf, "452 4.5.3 Error: too many recipients",
		    sizeof(rbuf));
		log_reject(s, "RCPT", rbuf, a.addr);
		/*
		 * A client that sends more recipients than we take is
		 * doing what RFC 5321 4.5.3.1.10 allows (it sends the rest
		 * in a later transaction): not an error to pace or to hang
		 * up on, up to an overshoot limit (as Postfix's
		 * smtpd_recipient_overshoot_limit).
		 */
		if (++s->overshoot <= SMTP_RCPT_OVERSHOOT) {
			out_append(s, rbuf, strlen(rbuf));
			out_append(s, "\r\n", 2);
		} else
			reply_line(s, rbuf);
		return;
	}
	if (s->h->rcpt != NULL &&
	    s->h->rcpt(s->h->ctx, &s->txn, &a, rbuf, sizeof(rbuf)) == -1) {
		free(r.orcpt);
		if (s->h->rcpt_rule != NULL)
			s->rule = s->h->rcpt_rule(s->h->ctx);
		log_reject(s, "RCPT", rbuf, a.addr);
		s->rule = NULL;
		reply_line(s, rbuf);
		return;
	}
	for (i = 0; i < s->txn.nrcpts; i++)
		if (strcmp(s->txn.rcpts[i].addr, a.addr) == 0)
			break;
	if (i < s->txn.nrcpts) {
		/* The same recipient twice: one delivery. */
		free(r.orcpt);
	} else {
		s->txn.rcpts = xreallocarray(s->txn.rcpts, s->txn.nrcpts + 1,
		    sizeof(*s->txn.rcpts));
		r.addr = xstrdup(a.addr);
		s->txn.rcpts[s->txn.nrcpts++] = r;
	}
	reply(s, "250 2.1.5 Ok");
}

static void
do_etrn(struct session *s, const struct smtp_command *cmd)
{
	char		 rbuf[SMTP_REPLY_MAX];
	const char	*domain = cmd->arg;

	if (!s->have_helo) {
		reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->txn.active) {
		reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (*domain == '\0') {
		reply(s, "501 5.5.4 Syntax: ETRN domain");
		return;
	}
	if (*domain == '#') {
		strlcpy(rbuf, "458 4.1.0 Error: queue names are not supported",
		    sizeof(rbuf));
		log_reject(s, "ETRN", rbuf, NULL);
		reply_line(s, rbuf);
		return;
	}
	if (*domain == '@')
		domain++;
	if (!address_domain_valid(domain)) {
		reply(s, "501 5.1.2 Error: invalid parameter syntax");
		return;
	}
	if (s->h->etrn == NULL) {
		strlcpy(rbuf, "458 4.1.2 Error: unable to queue messages for "
		    "node", sizeof(rbuf));
		log_reject(s, "ETRN", rbuf, NULL);
		reply_line(s, rbuf);
		return;
	}
	if (s->h->etrn(s->h->ctx, domain, rbuf, sizeof(rbuf)) == -1 &&
	    (rbuf[0] == '4' || rbuf[0] == '5'))
		log_reject(s, "ETRN", rbuf, NULL);
	reply_line(s, rbuf);
}

static void
do_starttls(struct session *s, const struct smtp_command *cmd)
{
	if (s->h->starttls == NULL) {
		reply(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (s->tls) {
		reply(s, "554 5.5.1 Error: TLS already active");
		return;
	}
	if (*cmd->arg != '\0') {
		reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->txn.active) {
		reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	reply(s, "220 2.0.0 Ready to start TLS");
	if (out_flush(s) == -1)
		return;
	/*
	 * Commands pipelined in clear after STARTTLS must not be taken
	 * as sent under TLS (CVE-2011-0411): forget them.
	 */
	if (s->iend > s->ipos)
		log_info("%zu bytes pipelined after STARTTLS from %s "
		    "discarded", s->iend - s->ipos, s->client);
	s->ipos = s->iend = 0;
	if (s->h->starttls(s->h->ctx, s->io, s->tls_desc,
	    sizeof(s->tls_desc)) == -1) {
		log_info("TLS handshake failed from %s", s->client);
		s->closing = 1;
		return;
	}
	s->tls = 1;
	s->have_helo = 0;
	s->esmtp = 0;
	s->helo[0] = '\0';
	smtp_txn_reset(&s->txn);
}

/*
 * AUTH (RFC 4954) on the submission port.  Refused without TLS (538),
 * twice or inside a transaction (503); the response to a challenge may
 * be "*" (cancelled, 501 5.0.0), an initial response "=" (empty).  What
 * a client sent is wiped once decoded; the engine never logs it.
 */
static void
do_auth(struct session *s, const struct smtp_command *cmd)
{
	struct sasl_creds	 c;
	char			 rbuf[SMTP_REPLY_MAX];
	const char		*sp, *resp = NULL;
	enum sasl_mech		 mech;
	size_t			 mlen;
	int			 fmt;

	if (!s->p->submission || s->h->auth == NULL) {
		reply(s, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (!s->have_helo || !s->esmtp) {
		reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (!s->tls) {
		reply(s, "538 5.7.11 Encryption required for requested "
		    "authentication mechanism");
		return;
	}
	if (s->auth_mech != SASL_NONE) {
		reply(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->txn.active) {
		reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	sp = strchr(cmd->arg, ' ');
	mlen = sp != NULL ? (size_t)(sp - cmd->arg) : strlen(cmd->arg);
	if (sp != NULL) {
		for (resp = sp; *resp == ' '; resp++)
			;
		if (*resp == '\0' || strchr(resp, ' ') != NULL) {
			reply(s, "501 5.5.4 Syntax: AUTH mechanism "
			    "[initial-response]");
			return;
		}
	}
	if (mlen == 0) {
		reply(s, "501 5.5.4 Syntax: AUTH mechanism "
		    "[initial-response]");
		return;
	}
	if ((mech = sasl_mech_parse(cmd->arg, mlen)) == SASL_NONE) {
		reply(s, "504 5.5.4 Unsupported authentication mechanism");
		return;
	}
	if (auth_refused(s))
		return;
	fmt = auth_decode(s, mech, resp, resp != NULL ? strlen(resp) : 0, &c);
	if (fmt == -1) {
		sasl_creds_clear(&c);
		return;
	}
	if (s->h->auth(s->h->ctx, sasl_mech_name(mech), c.authcid,
	    c.password, fmt, rbuf, sizeof(rbuf)) == 0) {
		s->auth_mech = mech;
		strlcpy(s->auth_user, c.authcid, sizeof(s->auth_user));
		reply(s, "235 2.7.0 Authentication successful");
	} else {
		if (rbuf[0] != '4' && rbuf[0] != '5')
			strlcpy(rbuf, "535 5.7.8 Error: authentication failed",
			    sizeof(rbuf));
		reply_line(s, rbuf);
	}
	sasl_creds_clear(&c);
}

/* The auth_begin hook said no (a lockout): its reply went out. */
static int
auth_refused(struct session *s)
{
	char	 rbuf[SMTP_REPLY_MAX];

	if (s->h->auth_begin == NULL ||
	    s->h->auth_begin(s->h->ctx, rbuf, sizeof(rbuf)) == 0)
		return (0);
	log_reject(s, "AUTH", rbuf, NULL);
	reply_line(s, rbuf);
	return (1);
}

/*
 * The client's answer to the challenge just queued, without CRLF, into
 * buf; the line in the input buffer is wiped.  0, or -1 when the
 * exchange ends here (cancelled, refused line, session over: replied).
 */
static int
auth_response(struct session *s, char *buf, size_t size, size_t *len)
{
	char	*line, rbuf[SMTP_REPLY_MAX];
	size_t	 n;
	int	 r;

	if ((r = read_line(s, &line, &n, SASL_LINE_MAX)) == 0)
		return (-1);
	if (r == 2) {
		reply(s, "500 5.5.6 Error: authentication exchange line is "
		    "too long");
		return (-1);
	}
	if (line_check(line, n, SASL_LINE_MAX, rbuf, sizeof(rbuf)) == -1 ||
	    n - 2 >= size) {
		sasl_wipe(line, n);
		reply_line(s, rbuf);
		return (-1);
	}
	memcpy(buf, line, n - 2);
	buf[n - 2] = '\0';
	*len = n - 2;
	sasl_wipe(line, n);
	if (strcmp(buf, "*") == 0) {
		reply(s, "501 5.0.0 Error: authentication aborted");
		return (-1);
	}
	return (0);
}

/*
 * The credentials of mech: from the initial response (len octets) or
 * challenges.  0 decoded, 1 decoded but not usable (the auth hook
 * counts a failure), -1 the exchange ended with a reply (bad base64:
 * 501 5.5.2) or the session did.
 */
static int
auth_decode(struct session *s, enum sasl_mech mech, const char *initial,
    size_t len, struct sasl_creds *c)
{
	char		 buf[SASL_LINE_MAX + 1];
	enum sasl_result r;
	int		 ret = -1;

	memset(c, 0, sizeof(*c));
	if (mech == SASL_LOGIN) {
		ret = auth_login(s, initial, len, c, buf, sizeof(buf));
		goto done;
	}
	if (initial == NULL) {
		reply(s, "334 ");
		if (auth_response(s, buf, sizeof(buf), &len) == -1)
			goto done;
		initial = buf;
	}
	r = sasl_plain_decode(initial, len, c);
	if (r == SASL_BAD_BASE64) {
		reply(s, "501 5.5.2 Error: cannot decode response");
		goto done;
	}
	ret = r == SASL_OK ? 0 : 1;
done:
	sasl_wipe(buf, sizeof(buf));
	return (ret);
}

/* LOGIN: the user name (initial response or challenge), the password. */
static int
auth_login(struct session *s, const char *initial, size_t len,
    struct sasl_creds *c, char *buf, size_t size)
{
	enum sasl_result r;
	int		 bad;

	if (initial == NULL) {
		reply(s, "334 VXNlcm5hbWU6");	/* "Username:" */
		if (auth_response(s, buf, size, &len) == -1)
			return (-1);
		initial = buf;
	}
	r = sasl_login_decode(initial, len, c->authcid, sizeof(c->authcid));
	if (r == SASL_BAD_BASE64) {
		reply(s, "501 5.5.2 Error: cannot decode response");
		return (-1);
	}
	bad = r != SASL_OK;
	reply(s, "334 UGFzc3dvcmQ6");		/* "Password:" */
	if (auth_response(s, buf, size, &len) == -1)
		return (-1);
	r = sasl_login_decode(buf, len, c->password, sizeof(c->password));
	if (r == SASL_BAD_BASE64) {
		reply(s, "501 5.5.2 Error: cannot decode response");
		return (-1);
	}
	return (bad || r != SASL_OK ? 1 : 0);
}

/* The Received: header we prepend (folded, CRLF). */
static int
received_header(struct session *s, char *buf, size_t size)
{
	char		 date[64], helo[sizeof(s->helo)];
	char		 forbuf[ADDRESS_PATH_MAX + 16], tlsbuf[140];
	char		 from[sizeof(s->helo) + 340];
	char		 authbuf[SASL_ID_MAX + 40];
	const char	*with;

	rfc5322_date(time(NULL), date, sizeof(date));
	strlcpy(helo, s->helo, sizeof(helo));
	if (strchr(s->p->client_addr, ':') != NULL)
		snprintf(from, sizeof(from), "%s (%s [IPv6:%s])", helo,
		    s->p->client_name, s->p->client_addr);
	else if (strcmp(s->p->client_addr, "local") == 0)
		snprintf(from, sizeof(from), "%s (%s)", helo,
		    s->p->client_addr);
	else
		snprintf(from, sizeof(from), "%s (%s [%s])", helo,
		    s->p->client_name, s->p->client_addr);
	/* RFC 3848 and 6531: S for TLS, A for AUTH (only under TLS). */
	if (!s->esmtp)
		with = s->tls ? "SMTPS" : "SMTP";
	else if (s->txn.smtputf8)
		with = s->auth_mech != SASL_NONE ? "UTF8SMTPSA" :
		    s->tls ? "UTF8SMTPS" : "UTF8SMTP";
	else
		with = s->auth_mech != SASL_NONE ? "ESMTPSA" :
		    s->tls ? "ESMTPS" : "ESMTP";
	/* As Postfix's smtpd_sasl_authenticated_header: the account only. */
	if (s->auth_mech != SASL_NONE)
		snprintf(authbuf, sizeof(authbuf), "\r\n\t(Authenticated "
		    "sender: %s)", s->auth_user);
	else
		authbuf[0] = '\0';
	if (s->tls)
		snprintf(tlsbuf, sizeof(tlsbuf), " (%s)", s->tls_desc);
	else
		tlsbuf[0] = '\0';
	if (s->txn.nrcpts == 1)
		snprintf(forbuf, sizeof(forbuf), "\r\n\tfor <%s>",
		    s->txn.rcpts[0].addr);
	else
		forbuf[0] = '\0';
	return (bsnprintf(buf, size, "Received: from %s%s\r\n"
	    "\tby %s (mxfb) with %s%s id %s%s;\r\n\t%s\r\n",
	    from, authbuf, s->p->hostname, with, tlsbuf, s->txn.id, forbuf,
	    date));
}

static void
data_flush(struct session *s)
{
	struct data_state	*d = s->d;

	if (d->len == 0)
		return;
	if (!d->bare && !d->nul && !d->toobig && d->write_errno == 0 &&
	    s->h->data_write(s->h->ctx, d->buf, d->len) == -1)
		d->write_errno = errno ? errno : EIO;
	d->len = 0;
}

/* Message bytes (already unstuffed) into the output buffer. */
static void
data_emit(struct session *s, const char *p, size_t n)
{
	struct data_state	*d = s->d;
	size_t			 i, chunk;

	if (d->in_headers) {
		for (i = 0; i < n && d->in_headers; i++) {
			if (d->hdr_linepos < sizeof(d->hdr_prefix))
				d->hdr_prefix[d->hdr_linepos] =
				    tolower((unsigned char)p[i]);
			d->hdr_linepos++;
			if (p[i] != '\n')
				continue;
			if (d->hdr_linepos <= 2)
				d->in_headers = 0;	/* empty line */
			else if (d->hdr_linepos > sizeof(d->hdr_prefix) &&
			    memcmp(d->hdr_prefix, "received:", 9) == 0)
				d->received++;
			d->hdr_linepos = 0;
		}
	}
	if (s->p->max_size > 0 && d->size + n > s->p->max_size)
		d->toobig = 1;
	d->size += n;
	if (d->toobig || d->bare || d->nul || d->write_errno != 0)
		return;
	while (n > 0) {
		chunk = sizeof(d->buf) - d->len;
		if (chunk > n)
			chunk = n;
		memcpy(d->buf + d->len, p, chunk);
		d->len += chunk;
		p += chunk;
		n -= chunk;
		if (d->len == sizeof(d->buf))
			data_flush(s);
	}
}

/*
 * The message's deadline: a timeout after the 354, plus a second for
 * every min_data_rate bytes received since.  Without a rate, or without
 * a timeout, each read waits timeout as before.
 */
static void
data_deadline(struct session *s)
{
	struct data_state	*d = s->d;
	uint64_t		 credit;

	if (s->p->min_data_rate == 0 || s->p->timeout <= 0) {
		s->deadline = 0;
		return;
	}
	credit = (s->nread - d->nread_start) / s->p->min_data_rate;
	if (credit > (uint64_t)INT32_MAX)
		credit = INT32_MAX;	/* a deadline decades away */
	s->deadline = d->start + ((int64_t)s->p->timeout + (int64_t)credit) *
	    1000;
}

/*
 * Read the message up to CRLF.CRLF.  Returns 1 at that end, 0 when the
 * connection ended first.
 */
static int
read_data(struct session *s)
{
	struct data_state	*d = s->d;
	const char		*p, *end, *run;
	char			 c;

	for (;;) {
		if (s->ipos == s->iend) {
			s->ipos = s->iend = 0;
			data_deadline(s);
			if (fill(s) == 0)
				return (0);
		}
		p = s->ibuf + s->ipos;
		end = s->ibuf + s->iend;
		while (p < end) {
			c = *p;
			switch (d->pos) {
			case DATA_BOL:
				if (c == '.') {
					d->pos = DATA_DOT;
					p++;
					continue;
				}
				d->pos = DATA_MID;
				break;
			case DATA_DOT:
				if (c == '\r') {
					d->pos = DATA_DOT_CR;
					p++;
					continue;
				}
				/* Dot-stuffed line: the dot is dropped. */
				d->pos = DATA_MID;
				break;
			case DATA_DOT_CR:
				if (c == '\n') {
					s->ipos = p + 1 - s->ibuf;
					s->deadline = 0;
					return (1);
				}
				/* ".\r" then not LF: a bare CR. */
				d->bare = 1;
				data_emit(s, "\r", 1);
				d->pos = DATA_MID;
				break;
			case DATA_CR:
				if (c == '\n') {
					data_emit(s, "\n", 1);
					d->pos = DATA_BOL;
					p++;
					continue;
				}
				d->bare = 1;
				d->pos = DATA_MID;
				break;
			case DATA_MID:
				break;
			}
			/* DATA_MID: copy the run up to a special byte. */
			run = p;
			while (p < end && *p != '\r' && *p != '\n' &&
			    *p != '\0')
				p++;
			if (p > run)
				data_emit(s, run, p - run);
			if (p == end)
				break;
			if (*p == '\r')
				d->pos = DATA_CR;
			else if (*p == '\n')
				d->bare = 1;	/* bare LF: stay MID */
			else
				d->nul = 1;
			data_emit(s, p, 1);
			p++;
		}
		s->ipos = s->iend;
	}
}

/* After CRLF.CRLF: refuse or commit, reply, and end the transaction. */
static void
data_finish(struct session *s)
{
	struct data_state	*d = s->d;
	char			 rbuf[SMTP_REPLY_MAX];
	char			 from[ADDRESS_PATH_MAX * 4 + 1];
	char			 user[SASL_ID_MAX * 4 + 1];
	int			 failed = 1;

	data_flush(s);
	s->txn.size = d->hdrlen + d->size;
	if (d->bare)
		strlcpy(rbuf, "550 5.5.2 Error: bare <CR> or <LF> received",
		    sizeof(rbuf));
	else if (d->nul)
		strlcpy(rbuf, "550 5.6.0 Error: NUL character in message",
		    sizeof(rbuf));
	else if (d->toobig)
		strlcpy(rbuf, "552 5.3.4 Message size exceeds fixed limit",
		    sizeof(rbuf));
	else if (d->received > SMTP_MAX_RECEIVED)
		strlcpy(rbuf, "554 5.4.6 Too many hops: mail forwarding loop",
		    sizeof(rbuf));
	else if (d->write_errno == ENOSPC || d->write_errno == EDQUOT)
		strlcpy(rbuf, "452 4.3.1 Insufficient system storage",
		    sizeof(rbuf));
	else if (d->write_errno != 0)
		strlcpy(rbuf, "451 4.3.0 Error: queue file write error",
		    sizeof(rbuf));
	else if (s->h->data_commit(s->h->ctx, &s->txn, rbuf,
	    sizeof(rbuf)) == 0)
		failed = 0;
	if (failed) {
		if (rbuf[0] != '4' && rbuf[0] != '5')
			strlcpy(rbuf, "451 4.3.0 Error: queue file write error",
			    sizeof(rbuf));
		if (d->bare || d->nul || d->toobig || d->write_errno != 0 ||
		    d->received > SMTP_MAX_RECEIVED)
			s->h->data_abort(s->h->ctx);
		log_reject(s, "END-OF-MESSAGE", rbuf, NULL);
		reply_line(s, rbuf);
	} else {
		safe_copy(from, sizeof(from), s->txn.sender);
		safe_copy(user, sizeof(user), s->auth_user);
		log_info("%s: client=%s%s%s%s%s, from=<%s>, size=%llu, "
		    "nrcpt=%zu", s->txn.id, s->client,
		    s->auth_mech != SASL_NONE ? ", sasl_method=" : "",
		    s->auth_mech != SASL_NONE ? sasl_mech_name(s->auth_mech) :
		    "", s->auth_mech != SASL_NONE ? ", sasl_username=" : "",
		    s->auth_mech != SASL_NONE ? user : "", from,
		    (unsigned long long)s->txn.size, s->txn.nrcpts);
		reply(s, "250 2.0.0 Ok: queued as %s", s->txn.id);
	}
	smtp_txn_reset(&s->txn);
}

static void
do_data(struct session *s, const struct smtp_command *cmd)
{
	char	 rbuf[SMTP_REPLY_MAX], hdr[2048];
	int	 ok;

	if (*cmd->arg != '\0') {
		reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!s->txn.active) {
		reply(s, "503 5.5.1 Error: need RCPT command");
		return;
	}
	if (s->txn.nrcpts == 0) {
		reply(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (s->h->data_begin(s->h->ctx, &s->txn, rbuf, sizeof(rbuf)) == -1) {
		log_reject(s, "DATA", rbuf, NULL);
		reply_line(s, rbuf);
		return;
	}
	s->d = xcalloc(1, sizeof(*s->d));
	s->d->pos = DATA_BOL;
	s->d->in_headers = 1;
	/* What the client pipelined after DATA counts as received now. */
	s->d->nread_start = s->nread - (s->iend - s->ipos);
	if (s->p->min_data_rate > 0)
		s->d->start = now_ms();
	if (received_header(s, hdr, sizeof(hdr)) == -1) {
		s->d->write_errno = EIO;
	} else {
		s->d->hdrlen = strlen(hdr);
		if (s->h->data_write(s->h->ctx, hdr, s->d->hdrlen) == -1)
			s->d->write_errno = errno ? errno : EIO;
	}
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
	ok = read_data(s);
	if (ok)
		data_finish(s);
	else {
		s->h->data_abort(s->h->ctx);
		smtp_txn_reset(&s->txn);
	}
	free(s->d);
	s->d = NULL;
}

static void
do_command(struct session *s, char *line)
{
	struct smtp_command	 cmd;

	smtp_command_parse(line, &cmd);
	s->counts[cmd.verb]++;
	s->ncommands++;
	s->last_cmd = cmd.name;
	switch (cmd.verb) {
	case SMTP_HELO:
		do_helo(s, &cmd, 0);
		break;
	case SMTP_EHLO:
		do_helo(s, &cmd, 1);
		break;
	case SMTP_MAIL:
		do_mail(s, &cmd);
		break;
	case SMTP_RCPT:
		do_rcpt(s, &cmd);
		break;
	case SMTP_DATA:
		do_data(s, &cmd);
		s->last_cmd = "END-OF-MESSAGE";
		break;
	case SMTP_RSET:
		if (*cmd.arg != '\0') {
			reply(s, "501 5.5.4 Syntax: RSET");
			break;
		}
		smtp_txn_reset(&s->txn);
		reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_NOOP:
		reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_QUIT:
		reply(s, "221 2.0.0 Bye");
		out_flush(s);
		s->closing = 1;
		break;
	case SMTP_VRFY:
		if (*cmd.arg == '\0')
			reply(s, "501 5.5.4 Syntax: VRFY address");
		else
			reply(s, "252 2.0.0 Cannot VRFY user, but will accept "
			    "message and attempt delivery");
		break;
	case SMTP_EXPN:
		reply(s, "502 5.5.1 Error: command not implemented");
		break;
	case SMTP_HELP:
		reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET "
		    "NOOP QUIT VRFY HELP ETRN");
		break;
	case SMTP_ETRN:
		do_etrn(s, &cmd);
		break;
	case SMTP_STARTTLS:
		do_starttls(s, &cmd);
		break;
	case SMTP_BDAT:
		reply(s, "502 5.5.1 Error: command not implemented");
		break;
	case SMTP_AUTH:
		do_auth(s, &cmd);
		break;
	case SMTP_UNKNOWN:
	case SMTP_NVERBS:
		reply(s, "500 5.5.2 Error: command not recognized");
		break;
	}
}

int
smtp_session(const struct smtp_params *p, const struct smtp_server_io *io,
    const struct smtp_hooks *h)
{
	struct session	*s;
	char		*line, cmdline[SASL_LINE_MAX + 1];
	char		 rbuf[SMTP_REPLY_MAX];
	char		 counts[512];
	size_t		 len, off;
	int		 r, quit, i, auth;

	/*
	 * Everything but the input buffer is cleared: 64 KB of zeros are 16
	 * page faults, a tenth of an inetd-started session's cost, and the
	 * buffer is only ever read below iend.
	 */
	s = xmalloc(sizeof(*s));
	memset(s, 0, offsetof(struct session, ibuf));
	s->p = p;
	s->iobuf = *io;
	s->io = &s->iobuf;
	s->h = h;
	s->last_cmd = "CONNECT";
	if (p->tls_desc != NULL) {
		s->tls = 1;
		strlcpy(s->tls_desc, p->tls_desc, sizeof(s->tls_desc));
	}
	snprintf(s->client, sizeof(s->client), "%s[%s]", p->client_name,
	    p->client_addr);
	log_info("connect from %s", s->client);
	reply(s, "220 %s ESMTP", p->hostname);
	while (!s->closing) {
		r = read_line(s, &line, &len, p->submission ? SASL_LINE_MAX :
		    SMTP_CMDLINE_MAX);
		if (r == 0)
			break;
		if (r == 2) {
			s->last_cmd = "UNKNOWN";
			reply(s, "500 5.5.2 Error: line too long");
			continue;
		}
		if (line_check(line, len, p->submission && len > 5 &&
		    strncasecmp(line, "AUTH ", 5) == 0 ? SASL_LINE_MAX :
		    line_limit(line, len), rbuf, sizeof(rbuf)) == -1) {
			s->last_cmd = "UNKNOWN";
			reply_line(s, rbuf);
			continue;
		}
		/* Trailing blanks are tolerated (RFC 5321 4.1.1 leniency). */
		while (len > 2 &&
		    (line[len - 3] == ' ' || line[len - 3] == '\t'))
			len--;
		memcpy(cmdline, line, len - 2);
		cmdline[len - 2] = '\0';
		/* An initial response may hold a password: wipe its copies. */
		if ((auth = len > 5 && strncasecmp(line, "AUTH ", 5) == 0))
			sasl_wipe(line, len);
		do_command(s, cmdline);
		if (auth)
			sasl_wipe(cmdline, len - 2);
	}
	out_flush(s);
	quit = s->counts[SMTP_QUIT] > 0;
	off = 0;
	counts[0] = '\0';
	for (i = 0; i < (int)(sizeof(verbs) / sizeof(verbs[0])); i++) {
		if (s->counts[verbs[i].verb] == 0)
			continue;
		r = snprintf(counts + off, sizeof(counts) - off, " %s=%u",
		    verbs[i].name, s->counts[verbs[i].verb]);
		if (r < 0 || (size_t)r >= sizeof(counts) - off)
			break;
		off += r;
	}
	for (len = 0; counts[len] != '\0'; len++)
		counts[len] = tolower((unsigned char)counts[len]);
	off = len;
	if (s->counts[SMTP_UNKNOWN] > 0)
		snprintf(counts + off, sizeof(counts) - off, " unknown=%u",
		    s->counts[SMTP_UNKNOWN]);
	log_info("disconnect from %s%s commands=%u", s->client, counts,
	    s->ncommands);
	smtp_txn_reset(&s->txn);
	free(s->obuf);
	free(s);
	return (quit ? 0 : -1);
}
