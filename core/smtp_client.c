/*
 * smtp_client.c - hand mail to a primary over SMTP (RFC 5321) with the
 * extensions a backup MX needs to pass mail on unchanged: PIPELINING
 * (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531),
 * DSN (RFC 3461), ENHANCEDSTATUSCODES (RFC 2034).
 *
 * Guarantees: every wait has a deadline (connect, command, DATA, end of
 * data, as Postfix's smtp_*_timeout); the body goes out dot-stuffed but
 * otherwise byte for byte; a recipient gets an outcome only from a reply
 * that was really read for it, so after any failure the caller knows
 * exactly which recipients are still open.  Reply parsing is a pure
 * function over lines (fuzzed).  The socket I/O sits behind struct
 * smtp_client_io so that STARTTLS can replace it (smtp_starttls, then the
 * TLS handshake by the caller, then smtp_tls_started).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/dns.h"
#include "core/mail/envelope.h"
#include "core/smtp_client.h"
#include "core/util.h"

#define LINE_MAX_REPLY	4096		/* longest reply line we accept */
#define WBUF_FLUSH	(64 * 1024)	/* write when this much is queued */
#define COMMAND_MAX	2048		/* a command line with its CRLF */

struct smtp_conn {
	int			 fd;
	struct smtp_client_io	 io;
	struct smtp_timeouts	 to;
	char			 host[DOMAIN_NAME_SIZE];
	char			 relay[320];
	struct smtp_ext		 ext;
	char			 error[1024];
	int			 broken;
	int			 ntx;		/* transactions started */
	int64_t			 deadline;	/* now_ms() cap on every
						   wait; 0: none */
	char			 rbuf[LINE_MAX_REPLY + 2];
	size_t			 rstart, rend;
	char			*wbuf;
	size_t			 wlen, wsize;
};

/*
 * One transaction under way: the commands of a transaction in order, and
 * what their replies said so far.
 */
enum tx_step { TX_RSET, TX_MAIL, TX_RCPT, TX_DATA };
struct tx {
	const struct smtp_message *m;
	struct smtp_result	*res;
	char			*sent;	/* per recipient: 1 sent, 2 accepted */
	size_t			 nsent, accepted;
	int			 pipe;	/* PIPELINING: one write, then read */
	int			 rset;	/* RSET first */
	struct smtp_reply	 mail, data;	/* code 0: not read */
};

static ssize_t	 sock_read(void *, void *, size_t);
static ssize_t	 sock_write(void *, const void *, size_t);
static void	 conn_fail(struct smtp_conn *, int, const char *);
static int	 read_line(struct smtp_conn *, char *, size_t, size_t *,
		    int64_t, const char *);
static int	 read_reply(struct smtp_conn *, struct smtp_reply *, time_t,
		    const char *);
static void	 wbuf_append(struct smtp_conn *, const void *, size_t);
static int	 wbuf_printf(struct smtp_conn *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	 flush_out(struct smtp_conn *, time_t, const char *);
static int	 send_body(struct smtp_conn *, const struct smtp_message *);
static void	 set_result(struct smtp_conn *, struct smtp_result *,
		    const struct smtp_reply *, const char *);
static void	 set_local_result(struct smtp_result *, int, const char *,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
static void	 notify_string(int, char *, size_t);
static int	 has_8bit(const unsigned char *, size_t);
static int	 refused_locally(struct smtp_conn *, const struct smtp_message *,
		    struct smtp_result *);
static int	 mail_command(const struct smtp_conn *,
		    const struct smtp_message *, char *, size_t);
static int	 queue_rcpt(struct smtp_conn *,
		    const struct smtp_client_rcpt *);
static int	 rset_refused(struct smtp_conn *, const struct smtp_reply *);
static int	 tx_reply(struct smtp_conn *, struct tx *, enum tx_step, size_t);
static int	 tx_command(struct smtp_conn *, struct tx *, enum tx_step,
		    size_t);
static int	 tx_send(struct smtp_conn *, struct tx *, const char *);
static int	 tx_read(struct smtp_conn *, struct tx *);
static void	 tx_set_accepted(struct smtp_conn *, struct tx *,
		    const struct smtp_reply *, const char *);
static int	 tx_finish(struct smtp_conn *, struct tx *);
static int64_t	 step_deadline(const struct smtp_conn *, time_t);
static int	 parse_dsn(const char *, size_t, int, char *, size_t);

/* Reply parsing (pure). */

void
smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

/* "d.ddd.ddd" at the start of text, class matching the reply code. */
static int
parse_dsn(const char *s, size_t len, int code, char *out, size_t outsize)
{
	size_t	 i = 0, n;
	int	 part;

	if (len < 5 || s[0] != '0' + code / 100 || s[1] != '.')
		return (0);
	i = 2;
	for (part = 0; part < 2; part++) {
		for (n = 0; i < len && n < 4 && s[i] >= '0' && s[i] <= '9';
		    i++, n++)
			;
		if (n == 0 || n > 3)
			return (0);
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return (0);
			i++;
		}
	}
	if (i < len && s[i] != ' ')
		return (0);
	if (i >= outsize)
		return (0);
	memcpy(out, s, i);
	out[i] = '\0';
	return (1);
}

int
smtp_reply_add_line(struct smtp_reply *r, const char *line, size_t len)
{
	int		 code;
	const char	*text;
	size_t		 tlen, room;

	if (r->done)
		smtp_reply_init(r);
	if (len < 3 || line[0] < '2' || line[0] > '5' ||
	    line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9')
		return (-1);
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return (-1);
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return (-1);
	r->code = code;
	text = len > 4 ? line + 4 : "";
	tlen = len > 4 ? len - 4 : 0;
	if (r->nlines == 0)
		(void)parse_dsn(text, tlen, code, r->dsn, sizeof(r->dsn));
	if (r->nlines > 0 && r->len + 1 < sizeof(r->text))
		r->text[r->len++] = '\n';
	room = sizeof(r->text) - 1 - r->len;
	if (tlen > room)
		tlen = room;
	memcpy(r->text + r->len, text, tlen);
	r->len += tlen;
	r->text[r->len] = '\0';
	r->nlines++;
	if (len == 3 || line[3] == ' ') {
		r->done = 1;
		return (1);
	}
	return (0);
}

void
smtp_reply_string(const struct smtp_reply *r, char *buf, size_t size)
{
	size_t	 i, o;
	int	 n;

	if (size == 0)
		return;
	n = snprintf(buf, size, "%03d", r->code);
	if (n < 0 || (size_t)n >= size)
		return;
	o = (size_t)n;
	if (r->len > 0 && o + 1 < size)
		buf[o++] = ' ';
	for (i = 0; i < r->len && o + 1 < size; i++) {
		unsigned char c = (unsigned char)r->text[i];

		buf[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	buf[o] = '\0';
}

void
smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ext *e)
{
	const char	*p, *end, *nl;
	char		 kw[64], word[128];
	size_t		 n, k;
	const char	*errstr;
	long long	 v;

	memset(e, 0, sizeof(*e));
	e->esmtp = 1;
	p = memchr(r->text, '\n', r->len);
	end = r->text + r->len;
	while (p != NULL && p < end) {
		p++;			/* skip the '\n' */
		nl = memchr(p, '\n', end - p);
		n = (nl ? nl : end) - p;
		for (k = 0; k < n && k < sizeof(word) - 1 && p[k] != ' '; k++)
			word[k] = p[k];
		word[k] = '\0';
		strlcpy(kw, word, sizeof(kw));
		if (strcasecmp(kw, "PIPELINING") == 0)
			e->pipelining = 1;
		else if (strcasecmp(kw, "8BITMIME") == 0)
			e->eightbitmime = 1;
		else if (strcasecmp(kw, "SMTPUTF8") == 0)
			e->smtputf8 = 1;
		else if (strcasecmp(kw, "DSN") == 0)
			e->dsn = 1;
		else if (strcasecmp(kw, "STARTTLS") == 0)
			e->starttls = 1;
		else if (strcasecmp(kw, "ENHANCEDSTATUSCODES") == 0)
			e->enhancedstatuscodes = 1;
		else if (strcasecmp(kw, "SIZE") == 0) {
			e->size = 1;
			if (k < n && n - k - 1 < sizeof(word)) {
				memcpy(word, p + k + 1, n - k - 1);
				word[n - k - 1] = '\0';
				v = strtonum(word, 0, INT64_MAX, &errstr);
				if (errstr == NULL)
					e->maxsize = (uint64_t)v;
			}
		}
		if (kw[0] != '\0') {
			for (k = 0; kw[k] != '\0'; k++)
				if ((unsigned char)kw[k] < 0x21 ||
				    (unsigned char)kw[k] > 0x7e)
					kw[k] = '?';
			if (e->keywords[0] != '\0')
				strlcat(e->keywords, " ", sizeof(e->keywords));
			strlcat(e->keywords, kw, sizeof(e->keywords));
			if (strcasecmp(kw, "SIZE") == 0 && e->maxsize > 0) {
				snprintf(word, sizeof(word), "=%llu",
				    (unsigned long long)e->maxsize);
				strlcat(e->keywords, word,
				    sizeof(e->keywords));
			}
		}
		p = nl;
	}
}

/* Transport. */

static ssize_t
sock_read(void *ctx, void *buf, size_t len)
{
	return (recv(*(int *)ctx, buf, len, 0));
}

static ssize_t
sock_write(void *ctx, const void *buf, size_t len)
{
	return (send(*(int *)ctx, buf, len, MSG_NOSIGNAL));
}

/* Record why the connection died; timedout picks the wording. */
static void
conn_fail(struct smtp_conn *c, int timedout, const char *what)
{
	c->broken = 1;
	if (timedout)
		snprintf(c->error, sizeof(c->error),
		    "conversation with %s timed out while %s", c->relay, what);
	else
		snprintf(c->error, sizeof(c->error),
		    "lost connection with %s while %s", c->relay, what);
}

int
smtp_connect(const char *host, const struct sockaddr *sa, socklen_t salen,
    const struct smtp_timeouts *to, struct smtp_conn **out, char *why,
    size_t whysize)
{
	struct smtp_conn	*c;
	char			 ip[INET6_ADDRSTRLEN];
	int			 fd, err, port, r;
	socklen_t		 errlen = sizeof(err);

	*out = NULL;
	dns_addr_string(sa, ip, sizeof(ip));
	port = sa->sa_family == AF_INET6 ?
	    ntohs(((const struct sockaddr_in6 *)sa)->sin6_port) :
	    ntohs(((const struct sockaddr_in *)sa)->sin_port);
	c = xcalloc(1, sizeof(*c));
	c->fd = -1;
	c->to = *to;
	strlcpy(c->host, host, sizeof(c->host));
	snprintf(c->relay, sizeof(c->relay), "%s[%s]:%d", host, ip, port);

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		snprintf(why, whysize, "connect to %s: socket: %s", c->relay,
		    strerror(errno));
		free(c);
		return (-1);
	}
	if (connect(fd, sa, salen) == -1) {
		if (errno != EINPROGRESS && errno != EINTR) {
			err = errno;
			goto fail;
		}
		r = wait_fd(fd, POLLOUT, now_ms() + (int64_t)to->connect *
		    1000);
		if (r <= 0) {
			err = r == 0 ? ETIMEDOUT : errno;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) == -1)
			err = errno;
		if (err != 0)
			goto fail;
	}
	c->fd = fd;
	c->io.read = sock_read;
	c->io.write = sock_write;
	c->io.pending = NULL;
	c->io.ctx = &c->fd;
	c->io.close = NULL;
	c->wsize = WBUF_FLUSH + 8192;
	c->wbuf = xmalloc(c->wsize);
	*out = c;
	return (0);

fail:
	snprintf(why, whysize, "connect to %s: %s", c->relay, strerror(err));
	(void)close(fd);	/* the connect error is what matters */
	free(c);
	return (-1);
}

void
smtp_conn_set_deadline(struct smtp_conn *c, int64_t deadline)
{
	c->deadline = deadline;
}

/* A step's deadline: timeout seconds from now, capped by the conn's. */
static int64_t
step_deadline(const struct smtp_conn *c, time_t timeout)
{
	int64_t	 d = now_ms() + (int64_t)timeout * 1000;

	if (c->deadline > 0 && c->deadline < d)
		d = c->deadline;
	return (d);
}

void
smtp_conn_set_io(struct smtp_conn *c, const struct smtp_client_io *io)
{
	c->io = *io;
}

const struct smtp_ext *
smtp_conn_ext(const struct smtp_conn *c)
{
	return (&c->ext);
}

const char *
smtp_conn_relay(const struct smtp_conn *c)
{
	return (c->relay);
}

const char *
smtp_conn_host(const struct smtp_conn *c)
{
	return (c->host);
}

const char *
smtp_conn_error(const struct smtp_conn *c)
{
	return (c->error);
}

int
smtp_conn_fd(const struct smtp_conn *c)
{
	return (c->fd);
}

/* One line without CR LF into line (NUL-terminated). */
static int
read_line(struct smtp_conn *c, char *line, size_t size, size_t *lenp,
    int64_t deadline, const char *what)
{
	char	*nl, *start;
	size_t	 n;
	ssize_t	 r;
	int	 w;

	for (;;) {
		nl = memchr(c->rbuf + c->rstart, '\n', c->rend - c->rstart);
		if (nl != NULL) {
			start = c->rbuf + c->rstart;
			n = nl - start;
			c->rstart += n + 1;
			if (n > 0 && start[n - 1] == '\r')
				n--;
			if (n >= size)
				n = size - 1;
			memcpy(line, start, n);
			line[n] = '\0';
			*lenp = n;
			return (0);
		}
		if (c->rstart > 0) {
			memmove(c->rbuf, c->rbuf + c->rstart,
			    c->rend - c->rstart);
			c->rend -= c->rstart;
			c->rstart = 0;
		}
		if (c->rend >= sizeof(c->rbuf)) {
			c->broken = 1;
			snprintf(c->error, sizeof(c->error),
			    "%s sent a reply line that is too long while %s",
			    c->relay, what);
			return (-1);
		}
		if (c->io.pending == NULL || c->io.pending(c->io.ctx) <= 0) {
			w = wait_fd(c->fd, POLLIN, deadline);
			if (w <= 0) {
				conn_fail(c, w == 0, what);
				return (-1);
			}
		}
		r = c->io.read(c->io.ctx, c->rbuf + c->rend,
		    sizeof(c->rbuf) - c->rend);
		if (r == -1 && (errno == EAGAIN || errno == EINTR ||
		    errno == EWOULDBLOCK))
			continue;
		if (r <= 0) {
			conn_fail(c, 0, what);
			return (-1);
		}
		c->rend += (size_t)r;
	}
}

static int
read_reply(struct smtp_conn *c, struct smtp_reply *reply, time_t timeout,
    const char *what)
{
	char	 line[LINE_MAX_REPLY + 1];
	size_t	 len;
	int64_t	 deadline = step_deadline(c, timeout);
	int	 r;

	smtp_reply_init(reply);
	for (;;) {
		if (read_line(c, line, sizeof(line), &len, deadline, what) == -1)
			return (-1);
		r = smtp_reply_add_line(reply, line, len);
		if (r == 1)
			return (0);
		if (r == -1) {
			c->broken = 1;
			snprintf(c->error, sizeof(c->error),
			    "%s sent a malformed reply while %s", c->relay,
			    what);
			return (-1);
		}
	}
}

static void
wbuf_append(struct smtp_conn *c, const void *p, size_t len)
{
	if (c->wlen + len > c->wsize) {
		c->wsize = c->wlen + len + 8192;
		c->wbuf = xreallocarray(c->wbuf, 1, c->wsize);
	}
	memcpy(c->wbuf + c->wlen, p, len);
	c->wlen += len;
}

/* A command line; -1 when it does not fit in an SMTP line. */
static int
wbuf_printf(struct smtp_conn *c, const char *fmt, ...)
{
	char	 line[COMMAND_MAX];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		return (-1);
	line[n++] = '\r';
	line[n++] = '\n';
	wbuf_append(c, line, (size_t)n);
	return (0);
}

/* Write everything queued; the timeout applies to each write. */
static int
flush_out(struct smtp_conn *c, time_t timeout, const char *what)
{
	size_t	 off = 0;
	ssize_t	 w;
	int	 r;

	while (off < c->wlen) {
		w = c->io.write(c->io.ctx, c->wbuf + off, c->wlen - off);
		if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR)) {
			r = wait_fd(c->fd, POLLOUT, step_deadline(c,
			    timeout));
			if (r <= 0) {
				conn_fail(c, r == 0, what);
				c->wlen = 0;
				return (-1);
			}
			continue;
		}
		if (w <= 0) {
			conn_fail(c, 0, what);
			c->wlen = 0;
			return (-1);
		}
		off += (size_t)w;
	}
	c->wlen = 0;
	return (0);
}

int
smtp_command(struct smtp_conn *c, const char *cmd, struct smtp_reply *reply)
{
	char	 what[64];

	if (c->broken)
		return (-1);
	snprintf(what, sizeof(what), "sending %.40s", cmd);
	if (wbuf_printf(c, "%s", cmd) == -1)
		return (-1);
	if (flush_out(c, c->to.command, what) == -1)
		return (-1);
	return (read_reply(c, reply, c->to.command, what));
}

int
smtp_greet(struct smtp_conn *c, const char *helo, struct smtp_reply *banner)
{
	struct smtp_reply	 r;
	char			 cmd[300], s[512];

	if (read_reply(c, &r, c->to.command,
	    "receiving the initial server greeting") == -1)
		return (-1);
	if (banner != NULL)
		*banner = r;
	if (r.code != 220) {
		smtp_reply_string(&r, s, sizeof(s));
		c->broken = 1;
		snprintf(c->error, sizeof(c->error),
		    "host %s refused to talk to me: %s", c->relay, s);
		return (-1);
	}
	snprintf(cmd, sizeof(cmd), "EHLO %s", helo);
	if (smtp_command(c, cmd, &r) == -1)
		return (-1);
	if (r.code == 250) {
		smtp_ehlo_parse(&r, &c->ext);
		return (0);
	}
	if (r.code == 421) {
		smtp_reply_string(&r, s, sizeof(s));
		c->broken = 1;
		snprintf(c->error, sizeof(c->error),
		    "host %s said: %s (in reply to EHLO command)", c->relay, s);
		return (-1);
	}
	snprintf(cmd, sizeof(cmd), "HELO %s", helo);
	if (smtp_command(c, cmd, &r) == -1)
		return (-1);
	if (r.code != 250) {
		smtp_reply_string(&r, s, sizeof(s));
		c->broken = 1;
		snprintf(c->error, sizeof(c->error),
		    "host %s refused to talk to me: %s (in reply to HELO "
		    "command)", c->relay, s);
		return (-1);
	}
	memset(&c->ext, 0, sizeof(c->ext));
	return (0);
}

/* A 421 also means the server is closing: no further transaction. */
static void
set_result(struct smtp_conn *c, struct smtp_result *res,
    const struct smtp_reply *r, const char *stage)
{
	char	 s[512];

	if (r->code == 421 && !c->broken) {
		c->broken = 1;
		smtp_reply_string(r, s, sizeof(s));
		snprintf(c->error, sizeof(c->error), "host %s said: %s (in "
		    "reply to %s command)", c->relay, s, stage);
	}
	res->code = r->code;
	if (r->dsn[0] != '\0')
		strlcpy(res->dsn, r->dsn, sizeof(res->dsn));
	else
		snprintf(res->dsn, sizeof(res->dsn), "%d.0.0", r->code / 100);
	smtp_reply_string(r, res->reply, sizeof(res->reply));
	res->stage = stage;
	res->from_peer = 1;
}

static void
set_local_result(struct smtp_result *res, int code, const char *dsn,
    const char *fmt, ...)
{
	va_list	 ap;

	res->code = code;
	strlcpy(res->dsn, dsn, sizeof(res->dsn));
	va_start(ap, fmt);
	vsnprintf(res->reply, sizeof(res->reply), fmt, ap);
	va_end(ap);
	res->stage = NULL;
	res->from_peer = 0;
}

static void
notify_string(int notify, char *buf, size_t size)
{
	buf[0] = '\0';
	if (notify & NOTIFY_NEVER) {
		strlcpy(buf, "NEVER", size);
		return;
	}
	if (notify & NOTIFY_SUCCESS)
		strlcat(buf, "SUCCESS", size);
	if (notify & NOTIFY_FAILURE)
		strlcat(buf, buf[0] ? ",FAILURE" : "FAILURE", size);
	if (notify & NOTIFY_DELAY)
		strlcat(buf, buf[0] ? ",DELAY" : "DELAY", size);
}

/* The body, dot-stuffed, then the final dot. */
static int
send_body(struct smtp_conn *c, const struct smtp_message *m)
{
	const unsigned char	*p = m->data, *end = m->data + m->len, *nl;
	size_t			 n;

	while (p < end) {
		if (*p == '.')
			wbuf_append(c, ".", 1);
		nl = memchr(p, '\n', end - p);
		n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		wbuf_append(c, p, n);
		p += n;
		if (c->wlen >= WBUF_FLUSH && flush_out(c, c->to.data,
		    "sending message body") == -1)
			return (-1);
	}
	if (m->len > 0 && (m->len < 2 || memcmp(end - 2, "\r\n", 2) != 0))
		wbuf_append(c, "\r\n", 2);
	wbuf_append(c, ".\r\n", 3);
	return (flush_out(c, c->to.data, "sending message body"));
}

/* Any byte with the high bit set? */
static int
has_8bit(const unsigned char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (p[i] & 0x80)
			return (1);
	return (0);
}

/*
 * Before anything is sent: a message the server cannot take unchanged
 * gets a local outcome for every recipient.  1: refused.
 */
static int
refused_locally(struct smtp_conn *c, const struct smtp_message *m,
    struct smtp_result *res)
{
	size_t	 i;

	if (m->smtputf8 && !c->ext.smtputf8) {
		for (i = 0; i < m->nrcpts; i++)
			set_local_result(&res[i], 550, "5.6.7", "SMTPUTF8 is "
			    "required, but was not offered by host %s",
			    c->relay);
		return (1);
	}
	/*
	 * RFC 5321 2.4 and RFC 6152: no 8-bit data to a server that did not
	 * offer 8BITMIME.  The body is never converted (it would break
	 * signatures), so 8-bit content the sender declared goes back to it
	 * as RFC 3463's "conversion required and not supported"; a message
	 * declared 8BITMIME whose bytes are all 7-bit goes as it is.
	 */
	if (m->eightbit && !c->ext.eightbitmime && has_8bit(m->data, m->len)) {
		for (i = 0; i < m->nrcpts; i++)
			set_local_result(&res[i], 554, "5.6.3", "8-bit message "
			    "content (BODY=8BITMIME), but host %s does not offer "
			    "8BITMIME, and mxfb does not convert messages",
			    c->relay);
		return (1);
	}
	if (c->ext.size && c->ext.maxsize > 0 && m->len > c->ext.maxsize) {
		for (i = 0; i < m->nrcpts; i++)
			set_local_result(&res[i], 552, "5.3.4", "message size "
			    "%zu exceeds size limit %llu of server %s", m->len,
			    (unsigned long long)c->ext.maxsize, c->relay);
		return (1);
	}
	return (0);
}

/* MAIL FROM with the parameters the server offers; -1: too long. */
static int
mail_command(const struct smtp_conn *c, const struct smtp_message *m,
    char *buf, size_t bufsize)
{
	char	 size[32];
	int	 n;

	size[0] = '\0';
	if (c->ext.size)
		snprintf(size, sizeof(size), " SIZE=%zu", m->len);
	n = snprintf(buf, bufsize, "MAIL FROM:<%s>%s%s%s%s%s%s", m->sender,
	    size, m->eightbit && c->ext.eightbitmime ? " BODY=8BITMIME" : "",
	    m->smtputf8 ? " SMTPUTF8" : "",
	    c->ext.dsn && m->ret == RET_FULL ? " RET=FULL" :
	    c->ext.dsn && m->ret == RET_HDRS ? " RET=HDRS" : "",
	    c->ext.dsn && m->envid ? " ENVID=" : "",
	    c->ext.dsn && m->envid ? m->envid : "");
	if (n < 0 || (size_t)n >= bufsize)
		return (-1);
	return (0);
}

/* Queue RCPT TO with its DSN parameters; -1: too long. */
static int
queue_rcpt(struct smtp_conn *c, const struct smtp_client_rcpt *rcpt)
{
	char	 notify[40];
	int	 dsn = c->ext.dsn;

	notify_string(rcpt->notify, notify, sizeof(notify));
	return (wbuf_printf(c, "RCPT TO:<%s>%s%s%s%s", rcpt->addr,
	    dsn && notify[0] ? " NOTIFY=" : "", dsn && notify[0] ? notify : "",
	    dsn && rcpt->orcpt ? " ORCPT=" : "",
	    dsn && rcpt->orcpt ? rcpt->orcpt : ""));
}

/* The reply to RSET was not 250: the connection cannot go on. */
static int
rset_refused(struct smtp_conn *c, const struct smtp_reply *r)
{
	char	 text[512];

	c->broken = 1;
	smtp_reply_string(r, text, sizeof(text));
	snprintf(c->error, sizeof(c->error), "host %s said: %s (in reply to "
	    "RSET command)", c->relay, text);
	return (-1);
}

/*
 * Read the reply to one command of the transaction and record what it
 * says: the same whether it comes at once (lock-step) or after the
 * whole batch was written (PIPELINING).  -1: the connection is broken.
 */
static int
tx_reply(struct smtp_conn *c, struct tx *t, enum tx_step step, size_t i)
{
	struct smtp_reply	 r;

	switch (step) {
	case TX_RSET:
		if (read_reply(c, &r, c->to.command, "sending RSET") == -1)
			return (-1);
		return (r.code == 250 ? 0 : rset_refused(c, &r));
	case TX_MAIL:
		return (read_reply(c, &t->mail, c->to.command,
		    "sending MAIL FROM"));
	case TX_RCPT:
		if (read_reply(c, &r, c->to.command, "sending RCPT TO") == -1)
			return (-1);
		if (t->mail.code / 100 != 2)
			return (0);
		if (r.code / 100 == 2) {
			t->sent[i] = 2;	/* accepted, outcome after DATA */
			t->accepted++;
		} else
			set_result(c, &t->res[i], &r, "RCPT TO");
		return (0);
	case TX_DATA:
		return (read_reply(c, &t->data, c->to.data, "sending DATA"));
	}
	return (-1);
}

/* A command is queued: lock-step sends it and reads its reply now. */
static int
tx_command(struct smtp_conn *c, struct tx *t, enum tx_step step, size_t i)
{
	static const char *const what[] = { "sending RSET",
	    "sending MAIL FROM", "sending RCPT TO", "sending DATA" };

	if (t->pipe)
		return (0);
	if (flush_out(c, c->to.command, what[step]) == -1)
		return (-1);
	return (tx_reply(c, t, step, i));
}

/*
 * The send phase: RSET (not on a connection's first transaction), MAIL,
 * RCPT, DATA.  With PIPELINING all of it goes in one write; lock-step
 * stops where a reply makes the rest pointless (a refused MAIL, no
 * recipient accepted).
 */
static int
tx_send(struct smtp_conn *c, struct tx *t, const char *mail)
{
	const struct smtp_message	*m = t->m;
	size_t				 i;

	if (t->rset && (wbuf_printf(c, "RSET") == -1 ||
	    tx_command(c, t, TX_RSET, 0) == -1))
		return (-1);
	if (wbuf_printf(c, "%s", mail) == -1 ||
	    tx_command(c, t, TX_MAIL, 0) == -1)
		return (-1);
	if (!t->pipe && t->mail.code / 100 != 2)
		return (0);
	for (i = 0; i < m->nrcpts; i++) {
		if (queue_rcpt(c, &m->rcpts[i]) == -1) {
			set_local_result(&t->res[i], 550, "5.1.3",
			    "recipient address too long");
			continue;
		}
		t->sent[i] = 1;
		t->nsent++;
		if (tx_command(c, t, TX_RCPT, i) == -1)
			return (-1);
	}
	if (t->pipe) {
		if (t->nsent > 0 && wbuf_printf(c, "DATA") == -1)
			return (-1);
		return (flush_out(c, c->to.command, "sending MAIL FROM"));
	}
	if (t->accepted == 0)
		return (0);
	if (wbuf_printf(c, "DATA") == -1)
		return (-1);
	return (tx_command(c, t, TX_DATA, 0));
}

/* The read phase of PIPELINING: the replies in the order sent. */
static int
tx_read(struct smtp_conn *c, struct tx *t)
{
	size_t	 i;

	if (!t->pipe)
		return (0);
	if (t->rset && tx_reply(c, t, TX_RSET, 0) == -1)
		return (-1);
	if (tx_reply(c, t, TX_MAIL, 0) == -1)
		return (-1);
	for (i = 0; i < t->m->nrcpts; i++)
		if (t->sent[i] && tx_reply(c, t, TX_RCPT, i) == -1)
			return (-1);
	if (t->nsent > 0 && tx_reply(c, t, TX_DATA, 0) == -1)
		return (-1);
	return (0);
}

/* Give a reply to every recipient accepted at RCPT. */
static void
tx_set_accepted(struct smtp_conn *c, struct tx *t,
    const struct smtp_reply *r, const char *stage)
{
	size_t	 i;

	for (i = 0; i < t->m->nrcpts; i++)
		if (t->sent[i] == 2)
			set_result(c, &t->res[i], r, stage);
}

/*
 * After the replies to MAIL, RCPT and DATA: the body when the server
 * said 354 to a transaction with an accepted recipient.  -1: broken.
 */
static int
tx_finish(struct smtp_conn *c, struct tx *t)
{
	struct smtp_reply	 r;
	size_t			 i;

	if (t->mail.code / 100 != 2)
		for (i = 0; i < t->m->nrcpts; i++)
			if (t->res[i].code == 0)
				set_result(c, &t->res[i], &t->mail,
				    "MAIL FROM");
	if (t->mail.code / 100 != 2 || t->accepted == 0) {
		/* A server that said 354 anyway gets an empty end. */
		if (t->data.code == 354) {
			wbuf_append(c, ".\r\n", 3);
			if (flush_out(c, c->to.data,
			    "sending end of data") == -1 ||
			    read_reply(c, &r, c->to.data_done,
			    "sending end of data") == -1)
				return (-1);
		}
		return (0);
	}
	if (t->data.code != 354) {
		tx_set_accepted(c, t, &t->data, "DATA");
		return (0);
	}
	if (send_body(c, t->m) == -1)
		return (-1);
	if (read_reply(c, &r, c->to.data_done, "sending end of data") == -1) {
		strlcat(c->error, " -- message may be sent more than once",
		    sizeof(c->error));
		return (-1);
	}
	tx_set_accepted(c, t, &r, "end of DATA");
	return (0);
}

int
smtp_deliver(struct smtp_conn *c, const struct smtp_message *m,
    struct smtp_result *res)
{
	struct tx	 t;
	char		 mail[COMMAND_MAX - 2];
	size_t		 i;
	int		 r;

	memset(res, 0, m->nrcpts * sizeof(*res));
	if (c->broken)
		return (-1);
	if (refused_locally(c, m, res))
		return (0);
	if (mail_command(c, m, mail, sizeof(mail)) == -1) {
		for (i = 0; i < m->nrcpts; i++)
			set_local_result(&res[i], 550, "5.5.2",
			    "sender address too long");
		return (0);
	}
	memset(&t, 0, sizeof(t));
	t.m = m;
	t.res = res;
	t.pipe = c->ext.pipelining;
	t.rset = c->ntx++ > 0;
	t.sent = xcalloc(m->nrcpts ? m->nrcpts : 1, 1);
	r = tx_send(c, &t, mail);
	if (r == 0)
		r = tx_read(c, &t);
	if (r == 0)
		r = tx_finish(c, &t);
	free(t.sent);
	if (r == -1) {
		c->broken = 1;
		if (c->error[0] == '\0')
			snprintf(c->error, sizeof(c->error),
			    "lost connection with %s", c->relay);
	}
	return (c->broken ? -1 : 0);
}

int
smtp_starttls(struct smtp_conn *c, int *refused)
{
	struct smtp_reply	 r;
	char			 text[512];

	*refused = 0;
	if (smtp_command(c, "STARTTLS", &r) == -1)
		return (-1);
	if (r.code != 220) {
		smtp_reply_string(&r, text, sizeof(text));
		snprintf(c->error, sizeof(c->error), "host %s said: %s (in "
		    "reply to STARTTLS command)", c->relay, text);
		if (r.code == 421)
			c->broken = 1;
		else
			*refused = 1;
		return (-1);
	}
	if (c->rend > c->rstart) {
		c->broken = 1;
		snprintf(c->error, sizeof(c->error), "host %s sent plaintext "
		    "after its reply to STARTTLS", c->relay);
		return (-1);
	}
	return (0);
}

int
smtp_tls_started(struct smtp_conn *c, const struct smtp_client_io *io,
    const char *helo)
{
	struct smtp_reply	 r;
	char			 cmd[300], text[512];

	c->io = *io;
	c->rstart = c->rend = 0;
	memset(&c->ext, 0, sizeof(c->ext));
	snprintf(cmd, sizeof(cmd), "EHLO %s", helo);
	if (smtp_command(c, cmd, &r) == -1)
		return (-1);
	if (r.code != 250) {
		smtp_reply_string(&r, text, sizeof(text));
		c->broken = 1;
		snprintf(c->error, sizeof(c->error), "host %s said: %s (in "
		    "reply to EHLO command after STARTTLS)", c->relay, text);
		return (-1);
	}
	smtp_ehlo_parse(&r, &c->ext);
	return (0);
}

void
smtp_quit(struct smtp_conn *c)
{
	struct smtp_reply	 r;

	if (c == NULL)
		return;
	if (!c->broken) {
		c->to.command = c->to.command > 5 ? 5 : c->to.command;
		(void)smtp_command(c, "QUIT", &r);
	}
	smtp_close(c);
}

void
smtp_close(struct smtp_conn *c)
{
	if (c == NULL)
		return;
	if (c->io.close != NULL)
		c->io.close(c->io.ctx);
	if (c->fd != -1 && close(c->fd) == -1)
		c->fd = -1;	/* the peer is gone either way */
	free(c->wbuf);
	free(c);
}
