/*
 * mtasts.c - the MTA-STS parsers (RFC 8461): the TXT record, the policy
 * file, the HTTP response around it, and the mx pattern match.
 *
 * Guarantees: pure functions over the bytes given (any bytes, NULs
 * included); nothing is read beyond len, every field is bounded
 * (MTASTS_MX_MAX patterns, DOMAIN_NAME_SIZE each, MTASTS_POLICY_MAX
 * bytes of policy), and what is accepted is what the RFC's ABNF allows,
 * but for blank lines in a policy, which are skipped.
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mtasts.h"
#include "core/util.h"

#define IS_WSP(c)	((c) == ' ' || (c) == '\t')

static int	 ext_name_char(int);
static int	 ext_value_char(int);
static int	 txt_field(const char *, size_t, size_t *, char *, size_t,
		    int *, char *, size_t);
static int	 valid_host(const char *, size_t);
static int	 policy_line(const char *, size_t, struct mtasts_policy *,
		    unsigned *, char *, size_t);
static int	 policy_value(const char *, const char *, size_t,
		    struct mtasts_policy *, unsigned *, char *, size_t);
static size_t	 line_end(const char *, size_t, size_t, size_t *);
static int	 header_value(const char *, size_t, const char *,
		    const char **, size_t *);
static void	 show(char *, size_t, const char *, size_t);

/* RFC 8461 3.1 sts-ext-name after its first character. */
static int
ext_name_char(int c)
{
	return (isascii(c) && (isalnum(c) || c == '_' || c == '-' ||
	    c == '.'));
}

/* sts-ext-value: %x21-3A / %x3C / %x3E-7E. */
static int
ext_value_char(int c)
{
	return (c >= 0x21 && c <= 0x7e && c != ';' && c != '=');
}

/* At most 40 printable bytes of s for a reason, the rest as '?'. */
static void
show(char *buf, size_t size, const char *s, size_t len)
{
	size_t	 i, o = 0;

	if (size == 0)
		return;
	for (i = 0; i < len && i < 40 && o + 1 < size; i++)
		buf[o++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	buf[o] = '\0';
}

/*
 * One "name=value" field at *pos; the id's value into id.  0, or -1
 * with why.
 */
static int
txt_field(const char *s, size_t len, size_t *pos, char *id, size_t idsize,
    int *haveid, char *why, size_t whysize)
{
	size_t	 i = *pos, name, nlen, val, vlen;
	char	 shown[48];

	name = i;
	if (i >= len || !isascii((unsigned char)s[i]) ||
	    !isalnum((unsigned char)s[i])) {
		show(shown, sizeof(shown), s + i, len - i);
		(void)snprintf(why, whysize, "bad field at \"%s\"", shown);
		return (-1);
	}
	while (i < len && ext_name_char((unsigned char)s[i]))
		i++;
	nlen = i - name;
	if (nlen > 32 || i >= len || s[i] != '=') {
		show(shown, sizeof(shown), s + name, len - name);
		(void)snprintf(why, whysize, "bad field at \"%s\"", shown);
		return (-1);
	}
	val = ++i;
	while (i < len && ext_value_char((unsigned char)s[i]))
		i++;
	vlen = i - val;
	if (vlen == 0) {
		show(shown, sizeof(shown), s + name, nlen);
		(void)snprintf(why, whysize, "empty value of \"%s\"", shown);
		return (-1);
	}
	if (nlen == 2 && memcmp(s + name, "id", 2) == 0) {
		for (*pos = val; *pos < i; (*pos)++)
			if (!isascii((unsigned char)s[*pos]) ||
			    !isalnum((unsigned char)s[*pos]))
				break;
		if (*haveid || vlen > 32 || *pos != i ||
		    vlen >= idsize) {
			(void)snprintf(why, whysize, *haveid ? "two id "
			    "fields" : "id is not 1 to 32 letters and "
			    "digits");
			return (-1);
		}
		memcpy(id, s + val, vlen);
		id[vlen] = '\0';
		*haveid = 1;
	}
	*pos = i;
	return (0);
}

int
mtasts_txt_parse(const char *s, size_t len, char *id, size_t idsize,
    char *why, size_t whysize)
{
	static const char	 version[] = "v=STSv1";
	size_t			 i, vl = sizeof(version) - 1;
	int			 haveid = 0;

	if (idsize > 0)
		id[0] = '\0';
	if (len < vl || memcmp(s, version, vl) != 0)
		return (1);
	i = vl;
	while (i < len) {
		while (i < len && IS_WSP(s[i]))
			i++;
		if (i >= len)
			break;
		if (s[i] != ';') {
			(void)snprintf(why, whysize, "\";\" expected after "
			    "a field");
			return (-1);
		}
		i++;
		while (i < len && IS_WSP(s[i]))
			i++;
		if (i >= len)
			break;		/* a final ';' */
		if (txt_field(s, len, &i, id, idsize, &haveid, why,
		    whysize) == -1)
			return (-1);
	}
	if (i == vl || !haveid) {
		(void)snprintf(why, whysize, "no id field");
		return (-1);
	}
	return (0);
}

/* "mx.example.com": letters, digits, hyphens, labels of 1-63. */
static int
valid_host(const char *s, size_t len)
{
	size_t	 i, label = 0;

	if (len == 0 || len > 253)
		return (0);
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return (0);
			label = 0;
			continue;
		}
		if (!isascii((unsigned char)s[i]) ||
		    !(isalnum((unsigned char)s[i]) || s[i] == '-'))
			return (0);
		if ((label == 0 && s[i] == '-') || ++label > 63)
			return (0);
	}
	return (label > 0 && s[len - 1] != '-');
}

/* Where the line at pos ends; *next after its LF or CRLF. */
static size_t
line_end(const char *s, size_t len, size_t pos, size_t *next)
{
	const char	*nl;
	size_t		 end;

	nl = memchr(s + pos, '\n', len - pos);
	end = nl != NULL ? (size_t)(nl - s) : len;
	*next = nl != NULL ? end + 1 : len;
	if (end > pos && s[end - 1] == '\r')
		end--;
	return (end);
}

/* The value of a known key; seen: a bit per version, mode, max_age. */
static int
policy_value(const char *key, const char *v, size_t vlen,
    struct mtasts_policy *p, unsigned *seen, char *why, size_t whysize)
{
	char		 shown[48], num[16];
	const char	*host;
	size_t		 hl;
	unsigned	 bit;
	int		 i;

	bit = strcmp(key, "version") == 0 ? 1 : strcmp(key, "mode") == 0 ?
	    2 : strcmp(key, "max_age") == 0 ? 4 : 0;
	if (bit != 0 && (*seen & bit)) {
		(void)snprintf(why, whysize, "%s given twice", key);
		return (-1);
	}
	*seen |= bit;
	show(shown, sizeof(shown), v, vlen);
	if (bit == 1) {
		if (vlen != 5 || memcmp(v, "STSv1", 5) != 0)
			goto bad;
	} else if (bit == 2) {
		if (vlen == 7 && memcmp(v, "enforce", 7) == 0)
			p->mode = MTASTS_MODE_ENFORCE;
		else if (vlen == 7 && memcmp(v, "testing", 7) == 0)
			p->mode = MTASTS_MODE_TESTING;
		else if (vlen == 4 && memcmp(v, "none", 4) == 0)
			p->mode = MTASTS_MODE_NONE;
		else
			goto bad;
	} else if (bit == 4) {
		if (vlen == 0 || vlen > 10)
			goto bad;
		for (i = 0; i < (int)vlen; i++)
			if (!isdigit((unsigned char)v[i]))
				goto bad;
		memcpy(num, v, vlen);
		num[vlen] = '\0';
		p->max_age = strtol(num, NULL, 10);
		if (p->max_age > MTASTS_MAX_AGE_MAX)
			goto bad;
	} else if (strcmp(key, "mx") == 0) {
		host = v;
		hl = vlen;
		if (hl > 2 && v[0] == '*' && v[1] == '.') {
			host += 2;
			hl -= 2;
		}
		if (!valid_host(host, hl))
			goto bad;
		if (p->nmx >= MTASTS_MX_MAX) {
			(void)snprintf(why, whysize, "more than %d mx "
			    "patterns", MTASTS_MX_MAX);
			return (-1);
		}
		memcpy(p->mx[p->nmx], v, vlen);
		p->mx[p->nmx][vlen] = '\0';
		(void)ascii_lower(p->mx[p->nmx++]);
	}
	return (0);
bad:
	(void)snprintf(why, whysize, "bad %s \"%s\"", key, shown);
	return (-1);
}

/* One "key: value" line (without its line end). */
static int
policy_line(const char *s, size_t len, struct mtasts_policy *p,
    unsigned *seen, char *why, size_t whysize)
{
	char	 key[33], shown[48];
	size_t	 i = 0, k;

	while (i < len && ext_name_char((unsigned char)s[i]))
		i++;
	k = i;
	if (k == 0 || k >= sizeof(key) || i >= len || s[i] != ':') {
		show(shown, sizeof(shown), s, len);
		(void)snprintf(why, whysize, "bad line \"%s\"", shown);
		return (-1);
	}
	memcpy(key, s, k);
	key[k] = '\0';
	for (i++; i < len && IS_WSP(s[i]); i++)
		;
	while (len > i && IS_WSP(s[len - 1]))
		len--;
	return (policy_value(key, s + i, len - i, p, seen, why, whysize));
}

int
mtasts_policy_parse(const char *s, size_t len, struct mtasts_policy *p,
    char *why, size_t whysize)
{
	size_t		 pos = 0, end, next;
	unsigned	 seen = 0;

	memset(p, 0, sizeof(*p));
	if (len > MTASTS_POLICY_MAX) {
		(void)snprintf(why, whysize, "policy larger than %d bytes",
		    MTASTS_POLICY_MAX);
		return (-1);
	}
	while (pos < len) {
		end = line_end(s, len, pos, &next);
		if (end > pos && policy_line(s + pos, end - pos, p, &seen,
		    why, whysize) == -1)
			return (-1);
		pos = next;
	}
	if ((seen & 7) != 7) {
		(void)snprintf(why, whysize, "no %s field", !(seen & 1) ?
		    "version" : !(seen & 2) ? "mode" : "max_age");
		return (-1);
	}
	if (p->mode != MTASTS_MODE_NONE && p->nmx == 0) {
		(void)snprintf(why, whysize, "no mx field");
		return (-1);
	}
	return (0);
}

/*
 * The value of header name in the header block (case-insensitive
 * name, surrounding blanks dropped): 1 found, 0 not.
 */
static int
header_value(const char *h, size_t len, const char *name, const char **v,
    size_t *vlen)
{
	size_t	 pos, end, next, nl = strlen(name), i;

	/* The status line first. */
	(void)line_end(h, len, 0, &pos);
	while (pos < len) {
		end = line_end(h, len, pos, &next);
		if (end - pos > nl && h[pos + nl] == ':' &&
		    strncasecmp(h + pos, name, nl) == 0) {
			for (i = pos + nl + 1; i < end && IS_WSP(h[i]); i++)
				;
			while (end > i && IS_WSP(h[end - 1]))
				end--;
			*v = h + i;
			*vlen = end - i;
			return (1);
		}
		pos = next;
	}
	return (0);
}

int
mtasts_http_parse(const char *buf, size_t len, const char **body,
    size_t *bodylen, char *why, size_t whysize)
{
	const char	*v, *end;
	char		 shown[48], num[24];
	size_t		 hlen, vlen, i;
	long long	 clen;
	int		 status;

	*body = NULL;
	*bodylen = 0;
	if ((end = memmem(buf, len, "\r\n\r\n", 4)) != NULL)
		hlen = (size_t)(end - buf) + 4;
	else if ((end = memmem(buf, len, "\n\n", 2)) != NULL)
		hlen = (size_t)(end - buf) + 2;
	else {
		(void)snprintf(why, whysize, "no complete HTTP header");
		return (-1);
	}
	if (hlen > MTASTS_HEADER_MAX) {
		(void)snprintf(why, whysize, "HTTP header longer than %d "
		    "bytes", MTASTS_HEADER_MAX);
		return (-1);
	}
	if (hlen < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ' ||
	    !isdigit((unsigned char)buf[9]) ||
	    !isdigit((unsigned char)buf[10]) ||
	    !isdigit((unsigned char)buf[11]) ||
	    (hlen > 12 && buf[12] != ' ' && buf[12] != '\r' &&
	    buf[12] != '\n')) {
		show(shown, sizeof(shown), buf, hlen);
		(void)snprintf(why, whysize, "not an HTTP response: \"%s\"",
		    shown);
		return (-1);
	}
	status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + buf[11] - '0';
	if (status >= 300 && status < 400) {
		if (header_value(buf, hlen, "Location", &v, &vlen))
			show(shown, sizeof(shown), v, vlen);
		else
			(void)strlcpy(shown, "?", sizeof(shown));
		(void)snprintf(why, whysize, "HTTP %d redirect to \"%s\" "
		    "(senders do not follow redirects, RFC 8461 3.3)",
		    status, shown);
		return (-1);
	}
	if (status != 200) {
		(void)snprintf(why, whysize, "HTTP status %d", status);
		return (-1);
	}
	if (header_value(buf, hlen, "Transfer-Encoding", &v, &vlen)) {
		(void)snprintf(why, whysize, "Transfer-Encoding in an "
		    "HTTP/1.0 response");
		return (-1);
	}
	if (!header_value(buf, hlen, "Content-Type", &v, &vlen) ||
	    vlen < 10 || strncasecmp(v, "text/plain", 10) != 0 ||
	    (vlen > 10 && v[10] != ';' && !IS_WSP(v[10]))) {
		(void)snprintf(why, whysize, "media type is not text/plain "
		    "(RFC 8461 3.2)");
		return (-1);
	}
	*body = buf + hlen;
	*bodylen = len - hlen;
	if (header_value(buf, hlen, "Content-Length", &v, &vlen)) {
		for (i = 0; i < vlen && i < sizeof(num) - 1; i++) {
			if (!isdigit((unsigned char)v[i]))
				break;
			num[i] = v[i];
		}
		num[i] = '\0';
		if (vlen == 0 || i != vlen || vlen > 18) {
			(void)snprintf(why, whysize, "bad Content-Length");
			return (-1);
		}
		clen = strtoll(num, NULL, 10);
		if ((long long)*bodylen != clen && clen <=
		    MTASTS_POLICY_MAX) {
			(void)snprintf(why, whysize, "body of %zu bytes, "
			    "Content-Length %lld", *bodylen, clen);
			return (-1);
		}
		if (clen > MTASTS_POLICY_MAX)
			*bodylen = MTASTS_POLICY_MAX + 1;
	}
	if (*bodylen > MTASTS_POLICY_MAX) {
		(void)snprintf(why, whysize, "policy larger than %d bytes",
		    MTASTS_POLICY_MAX);
		return (-1);
	}
	return (0);
}

int
mtasts_mx_match(const char *pattern, const char *host)
{
	size_t	 pl = strlen(pattern), hl = strlen(host);
	const char *dot;

	if (pl > 0 && pattern[pl - 1] == '.')
		pl--;
	if (hl > 0 && host[hl - 1] == '.')
		hl--;
	if (pl == 0 || hl == 0)
		return (0);
	if (pl > 2 && pattern[0] == '*' && pattern[1] == '.') {
		/* One label, then exactly the rest. */
		if ((dot = memchr(host, '.', hl)) == NULL || dot == host)
			return (0);
		return ((size_t)(host + hl - dot - 1) == pl - 2 &&
		    strncasecmp(dot + 1, pattern + 2, pl - 2) == 0);
	}
	return (pl == hl && strncasecmp(pattern, host, hl) == 0);
}

const char *
mtasts_mode_name(enum mtasts_mode m)
{
	switch (m) {
	case MTASTS_MODE_ENFORCE:
		return ("enforce");
	case MTASTS_MODE_TESTING:
		return ("testing");
	default:
		return ("none");
	}
}
