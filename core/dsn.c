/*
 * dsn.c - delivery status notifications: RFC 3464 multipart/report
 * messages, RFC 3461 NOTIFY rules, RFC 3463 status codes, RFC 6533 for
 * SMTPUTF8 originals.
 *
 * Guarantees of dsn_build(): every line ends in CRLF and is at most 998
 * octets (headers are folded, text is wrapped; only the returned
 * original keeps its lines as they came); the MIME boundary is random
 * (libsodium) and verified to occur nowhere but as a delimiter; text that
 * came from a peer (replies, addresses, ENVID) is cleaned of control
 * characters and, unless the DSN is SMTPUTF8, of 8-bit bytes.  Nothing
 * here touches the spool or the network.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sysexits.h>

#include "core/dsn.h"
#include "core/log.h"
#include "core/util.h"

#define LINE_MAX_OCTETS	998
#define HEADER_WIDTH	78
#define TEXT_WIDTH	72
#define BOUNDARY_TRIES	8

struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};

static void	 buf_add(struct buf *, const void *, size_t);
static void	 buf_adds(struct buf *, const char *);
static char	*vformat(const char *, va_list)
		    __attribute__((format(printf, 1, 0)));
static void	 buf_addf(struct buf *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 buf_folded(struct buf *, const char *, size_t, const char *);
static void	 buf_header(struct buf *, const char *, const char *);
static void	 buf_headerf(struct buf *, const char *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static size_t	 utf8_seqlen(const unsigned char *, size_t);
static char	*clean(const char *, int);
static int	 has_8bit(const void *, size_t);
static int	 enhanced_code(const char *, char *, size_t);
static void	 mta_name(const char *, char *, size_t);
static void	 duration_text(time_t, char *, size_t);
static size_t	 header_section(const unsigned char *, size_t, uint64_t);
static void	 rcpt_explain(struct buf *, const struct dsn_report *,
		    const struct envelope *, const struct dsn_params *, int);
static void	 human_part(struct buf *, const struct envelope *,
		    const struct dsn_report *, size_t,
		    const struct dsn_params *, int, int, int);
static void	 status_part(struct buf *, const struct envelope *,
		    const struct dsn_report *, size_t,
		    const struct dsn_params *, int);
static int	 build_once(struct buf *, const char *,
		    const struct envelope *, const unsigned char *, size_t,
		    const struct dsn_report *, size_t,
		    const struct dsn_params *, struct dsn_message *);
static size_t	 count_occurrences(const char *, size_t, const char *);

/* Growable buffer; allocation failure exits (xreallocarray). */
static void
buf_add(struct buf *b, const void *p, size_t n)
{
	size_t	 cap;

	if (n == 0)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (b->len + n + 1 > cap)
			cap *= 2;
		b->data = xreallocarray(b->data, cap, 1);
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* vasprintf; out of memory is fatal, as for xmalloc (EX_OSERR). */
static char *
vformat(const char *fmt, va_list ap)
{
	char	*s;

	if (vasprintf(&s, fmt, ap) == -1) {
		log_warnx("dsn: out of memory");
		exit(EX_OSERR);
	}
	return (s);
}

static void
buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;

	va_start(ap, fmt);
	s = vformat(fmt, ap);
	va_end(ap);
	buf_adds(b, s);
	free(s);
}

/*
 * Append text wrapped at width columns: runs of spaces are break points,
 * continuation lines start with indent.  A word that cannot fit in a
 * line of LINE_MAX_OCTETS is cut.  Ends with CRLF.
 */
static void
buf_folded(struct buf *b, const char *text, size_t width, const char *indent)
{
	const char	*p = text, *w;
	size_t		 col = 0, wlen, ilen = strlen(indent), room;
	int		 first = 1;

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		w = p;
		while (*p != '\0' && *p != ' ')
			p++;
		wlen = (size_t)(p - w);
		if (!first) {
			if (col + 1 + wlen > width && col > ilen) {
				buf_adds(b, "\r\n");
				buf_adds(b, indent);
				col = ilen;
			} else {
				buf_adds(b, " ");
				col++;
			}
		}
		first = 0;
		while (col + wlen > LINE_MAX_OCTETS) {
			room = LINE_MAX_OCTETS - col;
			buf_add(b, w, room);
			w += room;
			wlen -= room;
			buf_adds(b, "\r\n");
			buf_adds(b, indent);
			col = ilen;
		}
		buf_add(b, w, wlen);
		col += wlen;
	}
	buf_adds(b, "\r\n");
}

/* "Name: value", folded; value must already be clean. */
static void
buf_header(struct buf *b, const char *name, const char *value)
{
	struct buf	 line = { NULL, 0, 0 };

	buf_adds(&line, name);
	buf_adds(&line, ": ");
	buf_adds(&line, value);
	buf_folded(b, line.data, HEADER_WIDTH, " ");
	free(line.data);
}

static void
buf_headerf(struct buf *b, const char *name, const char *fmt, ...)
{
	va_list	 ap;
	char	*value;

	va_start(ap, fmt);
	value = vformat(fmt, ap);
	va_end(ap);
	buf_header(b, name, value);
	free(value);
}

/* Length of a valid UTF-8 sequence at p (RFC 3629), 0 if invalid. */
static size_t
utf8_seqlen(const unsigned char *p, size_t n)
{
	size_t	 len, i;
	unsigned int cp;

	if (p[0] < 0x80)
		return (1);
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else
		return (0);
	if (len > n)
		return (0);
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return (0);
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return (0);
	return (len);
}

/*
 * A copy of peer-supplied text safe to put in a header or text line:
 * CR, LF and TAB become spaces, other controls '?', 8-bit bytes '?'
 * unless utf8 is set and they form valid UTF-8.
 */
static char *
clean(const char *s, int utf8)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t		 n = strlen(s), i = 0, o = 0, l;
	char		*out;

	out = xmalloc(n + 1);
	while (i < n) {
		if (p[i] >= 0x80) {
			l = utf8 ? utf8_seqlen(p + i, n - i) : 0;
			if (l == 0) {
				out[o++] = '?';
				i++;
			} else {
				memcpy(out + o, p + i, l);
				o += l;
				i += l;
			}
			continue;
		}
		if (p[i] == '\r' || p[i] == '\n' || p[i] == '\t')
			out[o++] = ' ';
		else if (p[i] < 0x20 || p[i] == 0x7f)
			out[o++] = '?';
		else
			out[o++] = (char)p[i];
		i++;
	}
	out[o] = '\0';
	return (out);
}

static int
has_8bit(const void *p, size_t n)
{
	const unsigned char *u = p;
	size_t		 i;

	for (i = 0; i < n; i++)
		if (u[i] >= 0x80)
			return (1);
	return (0);
}

/*
 * The RFC 3463 enhanced code in a reply ("550 5.1.1 text", "5.1.1
 * text", "550-5.1.1 text"): returns its class digit ('2', '4', '5') and
 * copies the code, or 0 when there is none.
 */
static int
enhanced_code(const char *reply, char *code, size_t size)
{
	const char	*p = reply, *start;
	int		 part, digits;

	while (*p == ' ')
		p++;
	if (p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
	    p[2] >= '0' && p[2] <= '9' && (p[3] == ' ' || p[3] == '-'))
		p += 4;
	start = p;
	if (*p != '2' && *p != '4' && *p != '5')
		return (0);
	p++;
	for (part = 0; part < 2; part++) {
		if (*p++ != '.')
			return (0);
		for (digits = 0; *p >= '0' && *p <= '9'; p++)
			digits++;
		if (digits < 1 || digits > 3)
			return (0);
	}
	if (*p != '\0' && *p != ' ')
		return (0);
	if ((size_t)(p - start) >= size)
		return (0);
	memcpy(code, start, (size_t)(p - start));
	code[p - start] = '\0';
	return (start[0]);
}

int
dsn_wanted(const struct recipient *r, enum dsn_reason reason)
{
	if (r->notify & NOTIFY_NEVER)
		return (0);
	switch (reason) {
	case DSN_REASON_FAILED:
	case DSN_REASON_EXPIRED:
	case DSN_REASON_ADMIN:
		return (r->notify == 0 || (r->notify & NOTIFY_FAILURE));
	case DSN_REASON_DELAYED:
		return (r->notify == 0 || (r->notify & NOTIFY_DELAY));
	case DSN_REASON_RELAYED:
		return ((r->notify & NOTIFY_SUCCESS) != 0);
	}
	return (0);
}

int
dsn_unknown_user(const char *status)
{
	const char	*errstr;

	if (strncmp(status, "5.1.", 4) != 0)
		return (0);
	(void)strtonum(status + 4, 1, 10, &errstr);
	return (errstr == NULL);
}

int
dsn_policy_allows(enum bounce_policy policy, const struct envelope *env,
    const struct recipient *r, enum dsn_reason reason, int admin)
{
	switch (policy) {
	case BOUNCE_NONE:
		return (0);
	case BOUNCE_ALL:
		return (1);
	case BOUNCE_VERIFIED:
		if (admin)
			return (1);
		if (reason == DSN_REASON_FAILED)
			return (r->state == RCPT_FAILED &&
			    r->remote_mta != NULL);
		/* The primary itself took it. */
		if (reason == DSN_REASON_RELAYED)
			return (r->remote_mta != NULL);
		return (env->verified);
	}
	return (0);
}

void
dsn_status(const struct recipient *r, enum dsn_reason reason, char *buf,
    size_t size)
{
	char		 code[16];
	const char	*status = NULL;
	int		 class = 0;

	if (r->last_error != NULL)
		class = enhanced_code(r->last_error, code, sizeof(code));
	/* No code in the text (our own reason): the one flush recorded. */
	if (class == 0 && r->status != NULL)
		class = enhanced_code(r->status, code, sizeof(code));
	switch (reason) {
	case DSN_REASON_FAILED:
		status = class == '5' ? code : "5.0.0";
		break;
	case DSN_REASON_EXPIRED:
		status = "4.4.7";
		break;
	case DSN_REASON_ADMIN:
		status = "5.0.0";
		break;
	case DSN_REASON_DELAYED:
		status = class == '4' ? code : "4.0.0";
		break;
	case DSN_REASON_RELAYED:
		status = "2.0.0";
		break;
	}
	if (strlcpy(buf, status, size) >= size && size > 0)
		buf[0] = '\0';
}

const char *
dsn_action(enum dsn_reason reason)
{
	switch (reason) {
	case DSN_REASON_DELAYED:
		return ("delayed");
	case DSN_REASON_RELAYED:
		return ("relayed");
	case DSN_REASON_FAILED:
	case DSN_REASON_EXPIRED:
	case DSN_REASON_ADMIN:
		break;
	}
	return ("failed");
}

int
xtext_decode(const char *s, char *buf, size_t size)
{
	size_t		 o = 0;
	int		 hi, lo, c;

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if (c == '+') {
			hi = s[1] >= '0' && s[1] <= '9' ? s[1] - '0' :
			    s[1] >= 'A' && s[1] <= 'F' ? s[1] - 'A' + 10 : -1;
			lo = hi == -1 ? -1 :
			    s[2] >= '0' && s[2] <= '9' ? s[2] - '0' :
			    s[2] >= 'A' && s[2] <= 'F' ? s[2] - 'A' + 10 : -1;
			if (hi == -1 || lo == -1)
				return (-1);
			c = hi * 16 + lo;
			s += 2;
		} else if (c < 0x21 || c > 0x7e || c == '=')
			return (-1);
		if (c < 0x20 || c == 0x7f)
			return (-1);
		if (o + 1 >= size)
			return (-1);
		buf[o++] = (char)c;
	}
	if (size == 0)
		return (-1);
	buf[o] = '\0';
	return (0);
}

/* The host name out of "mx1.example.test[127.0.0.2]:25" and the like. */
static void
mta_name(const char *remote, char *buf, size_t size)
{
	const char	*close;
	size_t		 n;

	if (remote[0] == '[' && (close = strchr(remote, ']')) != NULL)
		n = (size_t)(close - remote) + 1;
	else
		n = strcspn(remote, "[: ");
	if (n == 0)
		n = strlen(remote);
	if (n >= size)
		n = size - 1;
	memcpy(buf, remote, n);
	buf[n] = '\0';
}

/* "3 seconds", "4 hours", "5 days": the largest unit that reads well. */
static void
duration_text(time_t secs, char *buf, size_t size)
{
	long long	 s = secs < 0 ? 0 : (long long)secs;
	const char	*unit;
	long long	 n;

	if (s >= 2 * 86400) {
		n = s / 86400;
		unit = "days";
	} else if (s >= 2 * 3600) {
		n = s / 3600;
		unit = "hours";
	} else if (s >= 2 * 60) {
		n = s / 60;
		unit = "minutes";
	} else {
		n = s;
		unit = n == 1 ? "second" : "seconds";
	}
	if (bsnprintf(buf, size, "%lld %s", n, unit) == -1 && size > 0)
		buf[0] = '\0';
}

/*
 * Length of the header section of a message (through the CRLF of its
 * last header line, without the empty line), cut at a header boundary
 * to fit limit when limit is not 0.
 */
static size_t
header_section(const unsigned char *msg, size_t len, uint64_t limit)
{
	size_t		 i, end = len, lastgood = 0;

	for (i = 0; i + 1 < len; i++) {
		if (msg[i] == '\r' && msg[i + 1] == '\n') {
			if (i == 0 || (i >= 2 && msg[i - 2] == '\r' &&
			    msg[i - 1] == '\n')) {
				end = i;
				break;
			}
		}
	}
	if (limit == 0 || end <= limit)
		return (end);
	/* Cut before the first header field that would cross the limit. */
	for (i = 0; i < end && i <= limit; i++) {
		if (i == 0 || (msg[i - 1] == '\n' && msg[i] != ' ' &&
		    msg[i] != '\t'))
			lastgood = i;
	}
	return (lastgood);
}

/* One recipient's paragraph in the human-readable part. */
static void
rcpt_explain(struct buf *b, const struct dsn_report *rep,
    const struct envelope *env, const struct dsn_params *p, int utf8)
{
	const struct recipient *r = rep->rcpt;
	struct buf	 t = { NULL, 0, 0 };
	char		*addr, *err = NULL, *remote = NULL, life[64];

	addr = clean(r->addr, utf8);
	if (r->last_error != NULL)
		err = clean(r->last_error, utf8);
	if (r->remote_mta != NULL)
		remote = clean(r->remote_mta, utf8);
	buf_addf(&t, "<%s>: ", addr);
	switch (rep->reason) {
	case DSN_REASON_FAILED:
		if (remote != NULL && err != NULL)
			buf_addf(&t, "host %s said: %s", remote, err);
		else if (err != NULL)
			buf_adds(&t, err);
		else
			buf_adds(&t, "delivery failed permanently");
		break;
	case DSN_REASON_EXPIRED:
		duration_text(p->retry_until - env->arrival, life,
		    sizeof(life));
		buf_addf(&t, "message expired: it could not be passed on "
		    "within %s", life);
		if (remote != NULL && err != NULL)
			buf_addf(&t, "; last error: host %s said: %s", remote,
			    err);
		else if (err != NULL)
			buf_addf(&t, "; last error: %s", err);
		else
			buf_adds(&t, "; no delivery attempt was made");
		break;
	case DSN_REASON_ADMIN:
		buf_adds(&t, "message returned to sender by the mail system "
		    "administrator");
		if (err != NULL)
			buf_addf(&t, " (last error: %s)", err);
		break;
	case DSN_REASON_DELAYED:
		if (remote != NULL && err != NULL)
			buf_addf(&t, "host %s said: %s", remote, err);
		else if (err != NULL)
			buf_adds(&t, err);
		else
			buf_adds(&t, "not yet delivered (no attempt made yet)");
		break;
	case DSN_REASON_RELAYED:
		if (remote != NULL)
			buf_addf(&t, "relayed to host %s", remote);
		else
			buf_adds(&t, "relayed to the recipient's mail server");
		if (err != NULL)
			buf_addf(&t, ", which said: %s", err);
		buf_adds(&t, "; that host does not issue delivery status "
		    "notifications");
		break;
	}
	buf_folded(b, t.data, TEXT_WIDTH, "    ");
	buf_adds(b, "\r\n");
	free(t.data);
	free(addr);
	free(err);
	free(remote);
}

static void
human_part(struct buf *b, const struct envelope *env,
    const struct dsn_report *reps, size_t nreps, const struct dsn_params *p,
    int utf8, int headers_only, int truncated)
{
	char		 host[512], age[64], life[64], until[64];
	size_t		 i;
	int		 failed = 0, delayed = 0, relayed = 0;

	for (i = 0; i < nreps; i++) {
		if (reps[i].reason == DSN_REASON_DELAYED)
			delayed = 1;
		else if (reps[i].reason == DSN_REASON_RELAYED)
			relayed = 1;
		else
			failed = 1;
	}
	if (bsnprintf(host, sizeof(host), "%s", p->hostname) == -1)
		host[0] = '\0';
	buf_addf(b, "This is the mail system at host %s.\r\n\r\n", host);
	if (failed) {
		buf_adds(b, "I'm sorry to have to inform you that your message "
		    "could not\r\nbe delivered to one or more recipients. ");
		buf_adds(b, headers_only ? "Its headers are attached below."
		    : "It's attached below.");
		buf_adds(b, "\r\n\r\n");
	}
	if (delayed) {
		duration_text(p->now - env->arrival, age, sizeof(age));
		duration_text(p->retry_until - env->arrival, life,
		    sizeof(life));
		rfc5322_date(p->retry_until, until, sizeof(until));
		buf_adds(b, "##################################################"
		    "##################\r\n"
		    "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR "
		    "MESSAGE. #\r\n"
		    "##################################################"
		    "##################\r\n\r\n");
		buf_addf(b, "Your message could not be delivered for %s to "
		    "the recipients\r\nlisted below.  It will be retried "
		    "until it is %s old\r\n(until %s).\r\n\r\n", age, life,
		    until);
	}
	/* RFC 3461 6.2: NOTIFY=SUCCESS through a primary without DSN. */
	if (relayed)
		buf_adds(b, "Your message was successfully relayed to the mail "
		    "server of the\r\nrecipients listed below.  That server "
		    "does not issue delivery\r\nstatus notifications: you "
		    "will receive no further notice of\r\nits delivery, "
		    "although that server or others may still report\r\n"
		    "errors.\r\n\r\n");
	buf_addf(b, "%s is a backup (fallback) mail exchanger: it accepted "
	    "your\r\nmessage while the recipients' own mail server could not "
	    "be\r\nreached, and passes it on when that server is back.\r\n"
	    "\r\n", host);
	if (truncated)
		buf_addf(b, "Your message was larger than %llu bytes: only "
		    "its headers are\r\nreturned.\r\n\r\n",
		    (unsigned long long)p->size_limit);
	else if (headers_only && failed && env->ret == RET_HDRS)
		buf_adds(b, "As you asked (RET=HDRS), only the headers of "
		    "your message are\r\nreturned.\r\n\r\n");
	buf_adds(b, "For further assistance, please send mail to postmaster."
	    "\r\n\r\nIf you do so, please include this problem report. You "
	    "can\r\ndelete your own text from the attached returned message."
	    "\r\n\r\n                   The mail system\r\n\r\n");
	for (i = 0; i < nreps; i++)
		rcpt_explain(b, &reps[i], env, p, utf8);
}

static void
status_part(struct buf *b, const struct envelope *env,
    const struct dsn_report *reps, size_t nreps, const struct dsn_params *p,
    int utf8)
{
	const struct recipient *r;
	char		 date[64], status[16], mta[512], *s, *dec;
	size_t		 i, n;

	buf_headerf(b, "Reporting-MTA", "dns; %s", p->hostname);
	buf_header(b, "X-Mxfb-Queue-ID", env->id);
	s = clean(env->sender, utf8);
	buf_headerf(b, "X-Mxfb-Sender", "%s; %s",
	    has_8bit(s, strlen(s)) ? "utf-8" : "rfc822", s);
	free(s);
	if (env->envid != NULL) {
		n = strlen(env->envid) + 1;
		dec = xmalloc(n);
		if (xtext_decode(env->envid, dec, n) == -1)
			s = clean(env->envid, 0);
		else
			s = clean(dec, 0);
		buf_header(b, "Original-Envelope-Id", s);
		free(s);
		free(dec);
	}
	rfc5322_date(env->arrival, date, sizeof(date));
	buf_header(b, "Arrival-Date", date);

	for (i = 0; i < nreps; i++) {
		r = reps[i].rcpt;
		buf_adds(b, "\r\n");
		if (r->orcpt != NULL) {
			n = strlen(r->orcpt) + 1;
			dec = xmalloc(n);
			if (utf8 || xtext_decode(r->orcpt, dec, n) == -1)
				s = clean(r->orcpt, utf8);
			else
				s = clean(dec, 0);
			buf_header(b, "Original-Recipient", s);
			free(s);
			free(dec);
		}
		s = clean(r->addr, utf8);
		buf_headerf(b, "Final-Recipient", "%s; %s",
		    has_8bit(s, strlen(s)) ? "utf-8" : "rfc822", s);
		free(s);
		buf_header(b, "Action", dsn_action(reps[i].reason));
		dsn_status(r, reps[i].reason, status, sizeof(status));
		buf_header(b, "Status", status);
		if (r->remote_mta != NULL) {
			s = clean(r->remote_mta, 0);
			mta_name(s, mta, sizeof(mta));
			buf_headerf(b, "Remote-MTA", "dns; %s", mta);
			free(s);
		}
		if (r->last_error != NULL) {
			s = clean(r->last_error, utf8);
			buf_headerf(b, "Diagnostic-Code", "%s; %s",
			    r->remote_mta != NULL ? "smtp" : "X-mxfb", s);
			free(s);
		}
		if (r->last_attempt != 0) {
			rfc5322_date(r->last_attempt, date, sizeof(date));
			buf_header(b, "Last-Attempt-Date", date);
		}
		if (reps[i].reason == DSN_REASON_DELAYED && p->retry_until) {
			rfc5322_date(p->retry_until, date, sizeof(date));
			buf_header(b, "Will-Retry-Until", date);
		}
	}
}

static size_t
count_occurrences(const char *hay, size_t len, const char *needle)
{
	size_t		 n = 0, nl = strlen(needle);
	const char	*p = hay, *end = hay + len, *q;

	while (p < end && (q = memmem(p, (size_t)(end - p), needle, nl))
	    != NULL) {
		n++;
		p = q + nl;
	}
	return (n);
}

/* Build with one boundary; returns 0, or -1 if the boundary collides. */
static int
build_once(struct buf *b, const char *boundary, const struct envelope *env,
    const unsigned char *msg, size_t msglen, const struct dsn_report *reps,
    size_t nreps, const struct dsn_params *p, struct dsn_message *out)
{
	struct buf	 human = { NULL, 0, 0 }, status = { NULL, 0, 0 };
	unsigned char	 rnd[8];
	char		 date[64], rhex[sizeof(rnd) * 2 + 1], delim[128];
	char		*to;
	const char	*subject, *ret_type;
	size_t		 i, inclen;
	int		 utf8 = env->smtputf8, headers_only, truncated = 0;
	int		 failed = 0, delayed = 0, human8, status8, inc8;

	if (msg != NULL && memmem(msg, msglen, boundary, strlen(boundary))
	    != NULL)
		return (-1);
	for (i = 0; i < nreps; i++) {
		if (reps[i].reason == DSN_REASON_DELAYED)
			delayed = 1;
		else if (reps[i].reason != DSN_REASON_RELAYED)
			failed = 1;
	}
	subject = failed ? "Undelivered Mail Returned to Sender" :
	    delayed ? "Delayed Mail (still being retried)" :
	    "Successful Mail Relay";

	/* A warning or a success report needs no copy of the body. */
	headers_only = env->ret == RET_HDRS || msg == NULL || !failed;
	if (!headers_only && p->size_limit != 0 && msglen > p->size_limit)
		headers_only = truncated = 1;
	if (msg == NULL)
		inclen = 0;
	else if (headers_only)
		inclen = header_section(msg, msglen, p->size_limit);
	else
		inclen = msglen;
	inc8 = msg != NULL && has_8bit(msg, inclen);

	human_part(&human, env, reps, nreps, p, utf8, headers_only, truncated);
	status_part(&status, env, reps, nreps, p, utf8);
	human8 = has_8bit(human.data, human.len);
	status8 = has_8bit(status.data, status.len);

	rfc5322_date(p->now, date, sizeof(date));
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(rhex, sizeof(rhex), rnd, sizeof(rnd));
	to = clean(env->sender, utf8);

	buf_header(b, "Date", date);
	buf_headerf(b, "From", "Mail Delivery System <MAILER-DAEMON@%s>",
	    p->hostname);
	buf_header(b, "Subject", subject);
	buf_headerf(b, "To", "<%s>", to);
	buf_header(b, "Auto-Submitted", "auto-replied");
	buf_headerf(b, "Message-ID", "<%s.%s@%s>", p->dsn_id, rhex,
	    p->hostname);
	buf_header(b, "MIME-Version", "1.0");
	buf_headerf(b, "Content-Type", "multipart/report; report-type=%s; "
	    "boundary=\"%s\"", utf8 ? "global-delivery-status" :
	    "delivery-status", boundary);
	buf_header(b, "Content-Transfer-Encoding",
	    human8 || status8 || inc8 ? "8bit" : "7bit");
	buf_adds(b, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");
	free(to);

	if (bsnprintf(delim, sizeof(delim), "--%s", boundary) == -1)
		goto fail;
	buf_addf(b, "%s\r\n", delim);
	buf_header(b, "Content-Description", "Notification");
	buf_headerf(b, "Content-Type", "text/plain; charset=%s",
	    human8 ? "utf-8" : "us-ascii");
	if (human8)
		buf_header(b, "Content-Transfer-Encoding", "8bit");
	buf_adds(b, "\r\n");
	buf_add(b, human.data, human.len);
	buf_adds(b, "\r\n");

	buf_addf(b, "%s\r\n", delim);
	buf_header(b, "Content-Description", "Delivery report");
	buf_header(b, "Content-Type", utf8 ?
	    "message/global-delivery-status" : "message/delivery-status");
	if (status8)
		buf_header(b, "Content-Transfer-Encoding", "8bit");
	buf_adds(b, "\r\n");
	buf_add(b, status.data, status.len);
	buf_adds(b, "\r\n");

	if (utf8)
		ret_type = headers_only ? "message/global-headers" :
		    "message/global";
	else
		ret_type = headers_only ? "text/rfc822-headers" :
		    "message/rfc822";
	buf_addf(b, "%s\r\n", delim);
	buf_header(b, "Content-Description", !failed && !delayed ?
	    "Relayed Message Headers" : headers_only ?
	    "Undelivered Message Headers" : "Undelivered Message");
	buf_header(b, "Content-Type", ret_type);
	buf_header(b, "Content-Transfer-Encoding", inc8 ? "8bit" : "7bit");
	buf_adds(b, "\r\n");
	if (inclen > 0) {
		buf_add(b, msg, inclen);
		if (inclen < 2 || msg[inclen - 2] != '\r' ||
		    msg[inclen - 1] != '\n')
			buf_adds(b, "\r\n");
	}
	buf_addf(b, "\r\n%s--\r\n", delim);

	/* Exactly three delimiters and the close delimiter, nothing more. */
	if (count_occurrences(b->data, b->len, boundary) != 5)
		goto fail;

	out->eightbit = human8 || status8 || inc8;
	out->smtputf8 = utf8;
	out->truncated = truncated;
	free(human.data);
	free(status.data);
	return (0);
fail:
	free(human.data);
	free(status.data);
	return (-1);
}

int
dsn_build(const struct envelope *env, const unsigned char *msg,
    size_t msglen, const struct dsn_report *reps, size_t nreps,
    const struct dsn_params *p, struct dsn_message *out)
{
	struct buf	 b;
	unsigned char	 rnd[16];
	char		 hex[sizeof(rnd) * 2 + 1], boundary[64];
	int		 try;

	memset(out, 0, sizeof(*out));
	if (nreps == 0 || p->hostname == NULL || p->dsn_id == NULL) {
		errno = EINVAL;
		return (-1);
	}
	for (try = 0; try < BOUNDARY_TRIES; try++) {
		memset(&b, 0, sizeof(b));
		randombytes_buf(rnd, sizeof(rnd));
		sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
		if (bsnprintf(boundary, sizeof(boundary), "=_mxfb_%s", hex)
		    == -1) {
			errno = EINVAL;
			return (-1);
		}
		if (build_once(&b, boundary, env, msg, msglen, reps, nreps, p,
		    out) == 0) {
			out->data = b.data;
			out->len = b.len;
			return (0);
		}
		free(b.data);
	}
	errno = EAGAIN;
	return (-1);
}

void
dsn_message_free(struct dsn_message *m)
{
	free(m->data);
	m->data = NULL;
	m->len = 0;
}

char *
dsn_about_format(const struct dsn_about *a)
{
	char	*s;

	(void)xasprintf(&s, "%s %c %u", a->orig, a->kind, a->gen);
	return (s);
}

int
dsn_about_parse(const char *s, struct dsn_about *a)
{
	const char	*errstr;
	const char	*p;
	size_t		 n;

	memset(a, 0, sizeof(*a));
	if ((p = strchr(s, ' ')) == NULL)
		return (-1);
	n = (size_t)(p - s);
	if (n != QUEUE_ID_LEN)
		return (-1);
	memcpy(a->orig, s, n);
	a->orig[n] = '\0';
	if (!queue_id_valid(a->orig))
		return (-1);
	p++;
	if ((*p != DSN_KIND_FINAL && *p != DSN_KIND_REPORT &&
	    *p != DSN_KIND_DELAY) || p[1] != ' ' || p[2] == '\0')
		return (-1);
	a->kind = *p;
	a->gen = (unsigned)strtonum(p + 2, 0, UINT_MAX, &errstr);
	if (errstr != NULL)
		return (-1);
	return (0);
}

int
dsn_about_recorded(const struct dsn_about *a, const struct envelope *orig)
{
	size_t		 i;
	unsigned	 reported = 0;

	/* Gone: removed after its final report, delivered, or deleted. */
	if (orig == NULL)
		return (1);
	/* bounce leaves held mail alone: nothing would ever record it. */
	if (orig->held)
		return (1);
	switch (a->kind) {
	case DSN_KIND_REPORT:
		for (i = 0; i < orig->nrcpts; i++)
			if (orig->rcpts[i].reported)
				reported++;
		return (reported > a->gen);
	case DSN_KIND_DELAY:
		return (orig->warned != 0);
	default:
		/* A final report is recorded by the original's removal. */
		return (0);
	}
}
