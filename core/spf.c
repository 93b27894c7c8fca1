/*
 * spf.c - RFC 7208 check_host() for `mxfb check` (see spf.h).
 *
 * Guarantees: exactly one "v=spf1" TXT record is used (several are
 * permerror, none is none); a record is checked whole before any term
 * is evaluated, and any syntax error (an unknown mechanism, a bad CIDR
 * length or address, a byte outside printable ASCII, a bad macro, a
 * second redirect= or exp=) is permerror; include, a, mx, ptr, exists
 * and redirect count against SPF_MAX_TERMS, lookups that find nothing
 * against SPF_MAX_VOID, beyond either is permerror (so a loop of
 * includes ends there); mx looks at no more than SPF_MAX_NAMES names
 * (more is permerror), ptr at the first SPF_MAX_NAMES; a DNS failure is
 * temperror except inside ptr (no match, as 5.5 says); exp= is checked
 * and then ignored.  Macro expansions are bounded by SPF_EXPAND_MAX and
 * a name past 253 octets loses labels on the left (7.3).  Nothing here
 * reads outside the record's len bytes.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/spf.h"
#include "core/util.h"

#define TERM_SHOWN	80	/* bytes of a term quoted in why */
#define VALUE_MAX	512	/* a macro letter's value */
#define PARTS_MAX	(VALUE_MAX + 1)

enum mech {
	M_ALL, M_INCLUDE, M_A, M_MX, M_PTR, M_IP4, M_IP6, M_EXISTS,
	M_REDIRECT, M_EXP, M_UNKNOWN_MOD
};

struct term {
	char		 qual;		/* + - ~ ? */
	enum mech	 mech;
	const char	*arg;		/* domain-spec, or NULL */
	size_t		 arglen;
	int		 cidr4, cidr6;
	unsigned char	 net[16];
};

struct spf_ctx {
	spf_lookup_fn	 lookup;
	void		*arg;
	const struct sockaddr *sa;
	int		 family;
	unsigned char	 ip[16];
	const char	*sender;
	const char	*helo;
	int		 terms, voids, depth;
	enum spf_result	 err;		/* the first error, or SPF_NONE */
	char		*why;
	size_t		 whysize;
};

struct outbuf {
	char		*p;		/* NULL: syntax check only */
	size_t		 size, len;
	int		 over;
};

static const struct {
	const char	*name;
	enum mech	 mech;
} mechs[] = {
	{ "all", M_ALL }, { "include", M_INCLUDE }, { "a", M_A },
	{ "mx", M_MX }, { "ptr", M_PTR }, { "ip4", M_IP4 }, { "ip6", M_IP6 },
	{ "exists", M_EXISTS }
};

static void	 say(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static enum spf_result fail(struct spf_ctx *, enum spf_result,
		    const char *, ...) __attribute__((format(printf, 3, 4)));
static void	 forget_error(struct spf_ctx *);
static int	 is_alpha(int);
static int	 is_digit(int);
static int	 is_alnum(int);
static int	 next_term(const char *, size_t, size_t *, const char **,
		    size_t *);
static int	 is_spf_record(const char *, size_t);
static int	 toplabel(const char *, size_t);
static int	 ends_in_macro(const char *, size_t);
static int	 domain_spec_check(const char *, size_t, char *, size_t);
static int	 cidr_len(const char *, size_t, int, int *);
static int	 strip_cidrs(const char *, size_t *, struct term *);
static int	 parse_ip(const char *, size_t, struct term *, int);
static int	 parse_modifier(const char *, size_t, struct term *, char *,
		    size_t);
static int	 parse_term(const char *, size_t, struct term *, char *,
		    size_t);
static void	 put(struct outbuf *, const char *, size_t);
static void	 put_escaped(struct outbuf *, const char *, size_t);
static int	 is_delim(char, const char *, size_t);
static void	 put_transformed(struct outbuf *, const char *, size_t, long,
		    int, const char *, size_t, int);
static int	 letter_value(char, const struct sockaddr *, const char *,
		    const char *, const char *, char *, size_t);
static int	 expand_macro(const char *, size_t, size_t *,
		    const struct sockaddr *, const char *, const char *,
		    const char *, int, struct outbuf *, char *, size_t);
static int	 expand(const char *, size_t, const struct sockaddr *,
		    const char *, const char *, const char *, int,
		    struct outbuf *, char *, size_t);
static int	 query_name(char *);
static int	 valid_domain(const char *);
static void	 reverse_name(const struct spf_ctx *, char *, size_t);
static int	 addr_match(const struct spf_ctx *, const unsigned char *,
		    int);
static enum dns_status ask(struct spf_ctx *, const char *, enum spf_type,
		    struct spf_rrset *);
static int	 count_term(struct spf_ctx *, const char *);
static int	 void_lookup(struct spf_ctx *, const char *);
static int	 target(struct spf_ctx *, const struct term *, const char *,
		    char *, size_t);
static int	 addrs_match(struct spf_ctx *, const char *, const struct term *,
		    int);
static int	 match_mx(struct spf_ctx *, const char *,
		    const struct term *);
static int	 match_ptr(struct spf_ctx *, const char *);
static int	 match_include(struct spf_ctx *, const char *);
static int	 match(struct spf_ctx *, const struct term *, const char *);
static int	 select_record(struct spf_ctx *, const char *,
		    struct spf_rrset *, size_t *, enum spf_result *);
static enum spf_result evaluate(struct spf_ctx *, const char *,
		    const char *, size_t);
static enum spf_result check_host(struct spf_ctx *, const char *);

static void
say(char *why, size_t size, const char *fmt, ...)
{
	va_list	 ap;

	if (why == NULL || size == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(why, size, fmt, ap);
	va_end(ap);
}

/* Set err and why (the first error wins: nothing overwrites it); r. */
static enum spf_result
fail(struct spf_ctx *c, enum spf_result r, const char *fmt, ...)
{
	va_list	 ap;

	if (c->err == SPF_NONE) {
		c->err = r;
		va_start(ap, fmt);
		(void)vsnprintf(c->why, c->whysize, fmt, ap);
		va_end(ap);
	}
	return (r);
}

/* An error that does not end the evaluation (inside ptr, include). */
static void
forget_error(struct spf_ctx *c)
{
	c->err = SPF_NONE;
	c->why[0] = '\0';
}

static int
is_alpha(int ch)
{
	return ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'));
}

static int
is_digit(int ch)
{
	return (ch >= '0' && ch <= '9');
}

static int
is_alnum(int ch)
{
	return (is_alpha(ch) || is_digit(ch));
}

const char *
spf_result_word(enum spf_result r)
{
	switch (r) {
	case SPF_NONE:
		return ("none");
	case SPF_NEUTRAL:
		return ("neutral");
	case SPF_PASS:
		return ("pass");
	case SPF_FAIL:
		return ("fail");
	case SPF_SOFTFAIL:
		return ("softfail");
	case SPF_TEMPERROR:
		return ("temperror");
	case SPF_PERMERROR:
		break;
	}
	return ("permerror");
}

void
spf_rrset_clear(struct spf_rrset *s)
{
	size_t	 i;

	for (i = 0; i < s->n && i < SPF_RR_MAX; i++)
		free(s->rr[i].text);
	memset(s, 0, sizeof(*s));
}

/* The next space-separated term from *pos; 0 at the end. */
static int
next_term(const char *s, size_t len, size_t *pos, const char **t,
    size_t *tlen)
{
	size_t	 i = *pos, j;

	while (i < len && s[i] == ' ')
		i++;
	if (i >= len) {
		*pos = i;
		return (0);
	}
	for (j = i; j < len && s[j] != ' '; j++)
		;
	*t = s + i;
	*tlen = j - i;
	*pos = j;
	return (1);
}

/* "v=spf1" alone or followed by a space (4.5). */
static int
is_spf_record(const char *s, size_t len)
{
	return (len >= 6 && strncasecmp(s, "v=spf1", 6) == 0 &&
	    (len == 6 || s[6] == ' '));
}

/* toplabel of 4.8: letters, digits, inner hyphens, not all digits. */
static int
toplabel(const char *s, size_t len)
{
	size_t	 i;
	int	 letter = 0;

	if (len == 0 || len > 63 || !is_alnum(s[0]) || !is_alnum(s[len - 1]))
		return (0);
	for (i = 0; i < len; i++) {
		if (!is_alnum(s[i]) && s[i] != '-')
			return (0);
		if (!is_digit(s[i]))
			letter = 1;
	}
	return (letter);
}

/* Does a macro-expand (already checked) end the macro-string? */
static int
ends_in_macro(const char *s, size_t len)
{
	const char	*close;
	size_t		 i = 0, end = 0;

	while (i < len) {
		if (s[i] != '%' || i + 1 >= len)
			i++;
		else if (s[i + 1] != '{')
			end = i += 2;
		else if ((close = memchr(s + i, '}', len - i)) != NULL)
			end = i = (size_t)(close - s) + 1;
		else
			return (0);
	}
	return (end == len);
}

/*
 * domain-spec = macro-string domain-end; domain-end = "." toplabel
 * ["."] / macro-expand.  0, or -1 with why.
 */
static int
domain_spec_check(const char *s, size_t len, char *why, size_t whysize)
{
	struct outbuf	 o;
	struct sockaddr_in sin;
	size_t		 end, dot;

	memset(&o, 0, sizeof(o));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (len == 0) {
		say(why, whysize, "empty domain-spec");
		return (-1);
	}
	if (expand(s, len, (struct sockaddr *)&sin, "postmaster@x.invalid",
	    "x.invalid", "x.invalid", 0, &o, why, whysize) == -1)
		return (-1);
	if (ends_in_macro(s, len))
		return (0);
	end = len;
	if (s[end - 1] == '.')
		end--;
	for (dot = end; dot > 0 && s[dot - 1] != '.'; dot--)
		;
	if (dot == 0 || !toplabel(s + dot, end - dot)) {
		say(why, whysize, "\"%.*s\" does not end in a top label",
		    (int)(len > TERM_SHOWN ? TERM_SHOWN : len), s);
		return (-1);
	}
	return (0);
}

/* A CIDR length: "0" or digits without a leading zero, at most max. */
static int
cidr_len(const char *s, size_t len, int max, int *out)
{
	size_t	 i;
	int	 v = 0;

	if (len == 0 || len > 3 || (len > 1 && s[0] == '0'))
		return (-1);
	for (i = 0; i < len; i++) {
		if (!is_digit(s[i]))
			return (-1);
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return (-1);
	*out = v;
	return (0);
}

/*
 * dual-cidr-length = [ip4-cidr-length] ["/" ip6-cidr-length], taken
 * off the end of s (*len shortened).  -1 on a bad length.
 */
static int
strip_cidrs(const char *s, size_t *len, struct term *m)
{
	size_t	 j, n = *len;

	for (j = n; j > 0 && is_digit(s[j - 1]); j--)
		;
	if (j == n || j == 0 || s[j - 1] != '/')
		return (0);
	if (j >= 2 && s[j - 2] == '/') {
		if (cidr_len(s + j, n - j, 128, &m->cidr6) == -1)
			return (-1);
		*len = n = j - 2;
		for (j = n; j > 0 && is_digit(s[j - 1]); j--)
			;
		if (j == n || j == 0 || s[j - 1] != '/')
			return (0);
	}
	if (cidr_len(s + j, n - j, 32, &m->cidr4) == -1)
		return (-1);
	*len = j - 1;
	return (0);
}

/* ip4:ip4-network[ip4-cidr-length] or ip6:...: the part after ':'. */
static int
parse_ip(const char *s, size_t len, struct term *m, int family)
{
	char	 buf[64];
	size_t	 n;

	for (n = 0; n < len && s[n] != '/'; n++)
		;
	if (n == 0 || n >= sizeof(buf))
		return (-1);
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (inet_pton(family, buf, m->net) != 1)
		return (-1);
	if (n == len)
		return (0);
	return (cidr_len(s + n + 1, len - n - 1, family == AF_INET ? 32 : 128,
	    family == AF_INET ? &m->cidr4 : &m->cidr6));
}

/* name "=" macro-string; 1 when t is a modifier, 0 if not, -1 bad. */
static int
parse_modifier(const char *t, size_t len, struct term *m, char *why,
    size_t whysize)
{
	size_t	 n;

	if (len == 0 || !is_alpha(t[0]))
		return (0);
	for (n = 0; n < len && (is_alnum(t[n]) || t[n] == '-' ||
	    t[n] == '_' || t[n] == '.'); n++)
		;
	if (n == len || t[n] != '=')
		return (0);
	m->arg = t + n + 1;
	m->arglen = len - n - 1;
	if (n == 8 && strncasecmp(t, "redirect", 8) == 0)
		m->mech = M_REDIRECT;
	else if (n == 3 && strncasecmp(t, "exp", 3) == 0)
		m->mech = M_EXP;
	else {
		m->mech = M_UNKNOWN_MOD;
		return (spf_expand(m->arg, m->arglen, NULL, "", "", "", 0,
		    NULL, 0, why, whysize) == -1 ? -1 : 1);
	}
	return (domain_spec_check(m->arg, m->arglen, why, whysize) == -1 ?
	    -1 : 1);
}

/* One term into m: 0 a mechanism, 1 a modifier, -1 a syntax error. */
static int
parse_term(const char *t, size_t len, struct term *m, char *why,
    size_t whysize)
{
	const char	*rest;
	size_t		 i = 0, n, j, restlen;
	int		 r;

	memset(m, 0, sizeof(*m));
	m->qual = '+';
	m->cidr4 = m->cidr6 = -1;
	if ((r = parse_modifier(t, len, m, why, whysize)) != 0)
		return (r);
	if (len > 0 && strchr("+-~?", t[0]) != NULL)
		m->qual = t[i++];
	for (n = i; n < len && (n == i ? is_alpha(t[n]) : is_alnum(t[n])); n++)
		;
	for (j = 0; j < sizeof(mechs) / sizeof(mechs[0]); j++)
		if (strlen(mechs[j].name) == n - i &&
		    strncasecmp(t + i, mechs[j].name, n - i) == 0)
			break;
	if (j == sizeof(mechs) / sizeof(mechs[0]))
		goto bad;
	m->mech = mechs[j].mech;
	rest = t + n;
	restlen = len - n;
	switch (m->mech) {
	case M_ALL:
		if (restlen != 0)
			goto bad;
		return (0);
	case M_IP4:
	case M_IP6:
		if (restlen < 2 || rest[0] != ':' || parse_ip(rest + 1,
		    restlen - 1, m, m->mech == M_IP4 ? AF_INET : AF_INET6) ==
		    -1)
			goto bad;
		return (0);
	case M_A:
	case M_MX:
		if (strip_cidrs(rest, &restlen, m) == -1)
			goto bad;
		break;
	default:
		break;
	}
	if (restlen == 0 && (m->mech == M_INCLUDE || m->mech == M_EXISTS))
		goto bad;
	if (restlen == 0)
		return (0);
	if (rest[0] != ':')
		goto bad;
	m->arg = rest + 1;
	m->arglen = restlen - 1;
	if (domain_spec_check(m->arg, m->arglen, why, whysize) == -1)
		return (-1);
	return (0);
bad:
	say(why, whysize, "syntax error in the term \"%.*s\"",
	    (int)(len > TERM_SHOWN ? TERM_SHOWN : len), t);
	return (-1);
}

int
spf_record_check(const char *rec, size_t len, char *why, size_t whysize)
{
	struct term	 m;
	const char	*t;
	size_t		 pos = 6, tlen, i;
	int		 redirect = 0, exp = 0, r;

	if (!is_spf_record(rec, len)) {
		say(why, whysize, "not a v=spf1 record");
		return (-1);
	}
	for (i = 0; i < len; i++)
		if ((unsigned char)rec[i] < 0x20 ||
		    (unsigned char)rec[i] > 0x7e) {
			say(why, whysize, "the record holds byte 0x%02x",
			    (unsigned char)rec[i]);
			return (-1);
		}
	while (next_term(rec, len, &pos, &t, &tlen)) {
		if ((r = parse_term(t, tlen, &m, why, whysize)) == -1)
			return (-1);
		if (r == 1 && ((m.mech == M_REDIRECT && redirect++) ||
		    (m.mech == M_EXP && exp++))) {
			say(why, whysize, "more than one %s= modifier",
			    m.mech == M_EXP ? "exp" : "redirect");
			return (-1);
		}
	}
	return (0);
}

static void
put(struct outbuf *o, const char *s, size_t len)
{
	if (o->over || len > SPF_EXPAND_MAX - o->len) {
		o->over = 1;
		return;
	}
	if (o->p != NULL) {
		if (o->len + len >= o->size) {
			o->over = 1;
			return;
		}
		memcpy(o->p + o->len, s, len);
		o->p[o->len + len] = '\0';
	}
	o->len += len;
}

/* URL-escaped (7.3, upper-case macro letters): unreserved bytes kept. */
static void
put_escaped(struct outbuf *o, const char *s, size_t len)
{
	char	 hex[4];
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (is_alnum(s[i]) || strchr("-._~", s[i]) != NULL)
			put(o, s + i, 1);
		else {
			(void)snprintf(hex, sizeof(hex), "%%%02X",
			    (unsigned char)s[i]);
			put(o, hex, 3);
		}
	}
}

static int
is_delim(char ch, const char *delims, size_t nd)
{
	return (nd == 0 ? ch == '.' : memchr(delims, ch, nd) != NULL);
}

/*
 * The value split on the delimiters, reversed when rev, its rightmost
 * keep parts (0: all) joined with dots, URL-escaped when esc.
 */
static void
put_transformed(struct outbuf *o, const char *v, size_t vlen, long keep,
    int rev, const char *delims, size_t nd, int esc)
{
	size_t	 start[PARTS_MAX], plen[PARTS_MAX], np = 0, i, first, k;

	start[0] = 0;
	for (i = 0; i <= vlen && np < PARTS_MAX; i++)
		if (i == vlen || is_delim(v[i], delims, nd)) {
			plen[np] = i - start[np];
			if (++np < PARTS_MAX)
				start[np] = i + 1;
		}
	first = keep > 0 && (size_t)keep < np ? np - (size_t)keep : 0;
	for (i = first; i < np; i++) {
		k = rev ? np - 1 - i : i;
		if (i > first)
			put(o, ".", 1);
		if (esc)
			put_escaped(o, v + start[k], plen[k]);
		else
			put(o, v + start[k], plen[k]);
	}
}

/* The value of a macro letter (7.3) into buf; -1 for no such letter. */
static int
letter_value(char l, const struct sockaddr *sa, const char *sender,
    const char *domain, const char *helo, char *buf, size_t size)
{
	const struct sockaddr_in6	*s6;
	const char			*at;
	size_t				 o = 0;
	int				 i;

	at = strrchr(sender, '@');
	buf[0] = '\0';
	switch (l) {
	case 's':
		(void)strlcpy(buf, sender, size);
		break;
	case 'l':
		if (at == NULL || at == sender)
			(void)strlcpy(buf, "postmaster", size);
		else
			(void)snprintf(buf, size, "%.*s", (int)(at - sender),
			    sender);
		break;
	case 'o':
		(void)strlcpy(buf, at != NULL ? at + 1 : sender, size);
		break;
	case 'd':
		(void)strlcpy(buf, domain, size);
		break;
	case 'i':
	case 'c':
		if (sa == NULL)
			break;
		if (sa->sa_family == AF_INET || l == 'c') {
			if (inet_ntop(sa->sa_family, sa->sa_family == AF_INET ?
			    (const void *)&((const struct sockaddr_in *)sa)->
			    sin_addr : (const void *)&((const struct
			    sockaddr_in6 *)sa)->sin6_addr, buf, size) == NULL)
				buf[0] = '\0';
			break;
		}
		s6 = (const struct sockaddr_in6 *)sa;
		for (i = 0; i < 16 && o + 4 < size; i++) {
			buf[o++] = "0123456789abcdef"[s6->sin6_addr.s6_addr[i] >> 4];
			buf[o++] = '.';
			buf[o++] = "0123456789abcdef"[s6->sin6_addr.s6_addr[i] & 0xf];
			buf[o++] = i < 15 ? '.' : '\0';
		}
		break;
	case 'v':
		(void)strlcpy(buf, sa != NULL && sa->sa_family == AF_INET6 ?
		    "ip6" : "in-addr", size);
		break;
	case 'h':
	case 'r':
		(void)strlcpy(buf, helo, size);
		break;
	case 'p':
		(void)strlcpy(buf, "unknown", size);
		break;
	case 't':
		(void)snprintf(buf, size, "%lld", (long long)time(NULL));
		break;
	default:
		return (-1);
	}
	return (0);
}

/*
 * The macro-expand at s[*i] (just past "%{"): letter, transformers,
 * delimiters, "}"; *i moves past the "}".  0, or -1 with why.
 */
static int
expand_macro(const char *s, size_t len, size_t *i, const struct sockaddr *sa,
    const char *sender, const char *domain, const char *helo, int exp,
    struct outbuf *o, char *why, size_t whysize)
{
	char		 v[VALUE_MAX], l;
	const char	*delims;
	size_t		 j = *i, nd, ndig = 0;
	long		 keep = 0;
	int		 rev = 0, upper;

	if (j >= len)
		goto bad;
	upper = s[j] >= 'A' && s[j] <= 'Z';
	l = s[j] >= 'A' && s[j] <= 'Z' ? (char)(s[j] - 'A' + 'a') : s[j];
	if (strchr("slodiphvcrt", l) == NULL || l == '\0' ||
	    (!exp && strchr("crt", l) != NULL))
		goto bad;
	for (j++; j < len && is_digit(s[j]); j++, ndig++)
		if (keep < 1000)
			keep = keep * 10 + (s[j] - '0');
	if (ndig > 0 && keep == 0)
		goto bad;
	if (j < len && (s[j] == 'r' || s[j] == 'R')) {
		rev = 1;
		j++;
	}
	delims = s + j;
	for (nd = 0; j < len && strchr(".-+,/_=", s[j]) != NULL &&
	    s[j] != '\0'; j++)
		nd++;
	if (j >= len || s[j] != '}')
		goto bad;
	*i = j + 1;
	if (letter_value(l, sa, sender, domain, helo, v, sizeof(v)) == -1)
		goto bad;
	put_transformed(o, v, strlen(v), keep, rev, delims, nd, upper);
	return (0);
bad:
	say(why, whysize, "bad macro at \"%%{%.*s\"", (int)(len - *i > 20 ?
	    20 : len - *i), s + *i);
	return (-1);
}

/* macro-string (7.1) into o; 0, or -1 with why. */
static int
expand(const char *s, size_t len, const struct sockaddr *sa,
    const char *sender, const char *domain, const char *helo, int exp,
    struct outbuf *o, char *why, size_t whysize)
{
	size_t	 i = 0;

	while (i < len) {
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) {
			say(why, whysize, "byte 0x%02x in a macro-string",
			    (unsigned char)s[i]);
			return (-1);
		}
		if (s[i] != '%') {
			put(o, s + i++, 1);
			continue;
		}
		if (i + 1 >= len)
			goto bad;
		switch (s[i + 1]) {
		case '%':
			put(o, "%", 1);
			break;
		case '_':
			put(o, " ", 1);
			break;
		case '-':
			put(o, "%20", 3);
			break;
		case '{':
			i += 2;
			if (expand_macro(s, len, &i, sa, sender, domain, helo,
			    exp, o, why, whysize) == -1)
				return (-1);
			continue;
		default:
			goto bad;
		}
		i += 2;
	}
	if (o->over) {
		say(why, whysize, "a macro expansion longer than %d bytes",
		    SPF_EXPAND_MAX);
		return (-1);
	}
	return (0);
bad:
	say(why, whysize, "a bare %% in \"%.*s\"", (int)(len > TERM_SHOWN ?
	    TERM_SHOWN : len), s);
	return (-1);
}

int
spf_expand(const char *s, size_t len, const struct sockaddr *sa,
    const char *sender, const char *domain, const char *helo, int exp,
    char *out, size_t outsize, char *why, size_t whysize)
{
	struct outbuf	 o;

	memset(&o, 0, sizeof(o));
	o.p = outsize > 0 ? out : NULL;
	o.size = outsize;
	if (o.p != NULL)
		o.p[0] = '\0';
	return (expand(s, len, sa, sender, domain, helo, exp, &o, why,
	    whysize));
}

/*
 * An expanded domain-spec made a query name in place (7.3): no final
 * dot, labels dropped on the left until it fits 253 octets; -1 when
 * what is left is no domain name (an empty or overlong label).
 */
static int
query_name(char *s)
{
	size_t	 len = strlen(s);
	char	*p;

	if (len > 0 && s[len - 1] == '.')
		s[--len] = '\0';
	while (len > 253 && (p = strchr(s, '.')) != NULL) {
		len -= (size_t)(p + 1 - s);
		memmove(s, p + 1, len + 1);
	}
	return (valid_domain(s) ? 0 : -1);
}

/* Non-empty labels of at most 63 octets, 253 in all. */
static int
valid_domain(const char *s)
{
	size_t	 label = 0, len = 0;

	for (; *s != '\0'; s++, len++) {
		if (*s == '.') {
			if (label == 0)
				return (0);
			label = 0;
		} else if (++label > 63)
			return (0);
	}
	return (len > 0 && len <= 253 && label > 0);
}

/* The in-addr.arpa / ip6.arpa name of the client address. */
static void
reverse_name(const struct spf_ctx *c, char *buf, size_t size)
{
	size_t	 o = 0;
	int	 i;

	if (c->family == AF_INET) {
		(void)snprintf(buf, size, "%u.%u.%u.%u.in-addr.arpa", c->ip[3],
		    c->ip[2], c->ip[1], c->ip[0]);
		return;
	}
	for (i = 15; i >= 0 && o + 4 < size; i--) {
		buf[o++] = "0123456789abcdef"[c->ip[i] & 0xf];
		buf[o++] = '.';
		buf[o++] = "0123456789abcdef"[c->ip[i] >> 4];
		buf[o++] = '.';
	}
	buf[o] = '\0';
	(void)strlcat(buf, "ip6.arpa", size);
}

/* Is the client address inside addr/bits (bits < 0: the whole)? */
static int
addr_match(const struct spf_ctx *c, const unsigned char *addr, int bits)
{
	int	 max = c->family == AF_INET ? 32 : 128, whole, rest;

	if (bits < 0 || bits > max)
		bits = max;
	whole = bits / 8;
	rest = bits % 8;
	if (memcmp(c->ip, addr, (size_t)whole) != 0)
		return (0);
	if (rest == 0)
		return (1);
	return (((c->ip[whole] ^ addr[whole]) & (0xff << (8 - rest))) == 0);
}

static enum dns_status
ask(struct spf_ctx *c, const char *name, enum spf_type t,
    struct spf_rrset *set)
{
	enum dns_status	 st;

	memset(set, 0, sizeof(*set));
	st = c->lookup(c->arg, name, t, set);
	if (set->n > SPF_RR_MAX)
		set->n = SPF_RR_MAX;
	return (st);
}

/* One more DNS-querying term (4.6.4): -1 past the limit. */
static int
count_term(struct spf_ctx *c, const char *domain)
{
	if (++c->terms <= SPF_MAX_TERMS)
		return (0);
	(void)fail(c, SPF_PERMERROR, "more than %d DNS-querying terms "
	    "(include, a, mx, ptr, exists, redirect) reached at %s: a loop "
	    "of includes, or too many", SPF_MAX_TERMS, domain);
	return (-1);
}

/* A lookup that found nothing: -1 past the limit. */
static int
void_lookup(struct spf_ctx *c, const char *name)
{
	if (++c->voids <= SPF_MAX_VOID)
		return (0);
	(void)fail(c, SPF_PERMERROR, "more than %d lookups found nothing "
	    "(the last: %s)", SPF_MAX_VOID, name);
	return (-1);
}

/* The term's domain-spec expanded (or the current domain); -1 bad. */
static int
target(struct spf_ctx *c, const struct term *m, const char *domain,
    char *buf, size_t size)
{
	char	 why[256];

	if (m->arg == NULL) {
		(void)strlcpy(buf, domain, size);
		return (0);
	}
	why[0] = '\0';
	if (spf_expand(m->arg, m->arglen, c->sa, c->sender, domain, c->helo,
	    0, buf, size, why, sizeof(why)) == -1) {
		(void)fail(c, SPF_PERMERROR, "in the record of %s: %s", domain,
		    why);
		return (-1);
	}
	if (query_name(buf) == -1) {
		(void)fail(c, SPF_PERMERROR, "in the record of %s: \"%.*s\" "
		    "expands to no domain name", domain,
		    (int)(m->arglen > TERM_SHOWN ? TERM_SHOWN : m->arglen),
		    m->arg);
		return (-1);
	}
	return (0);
}

/*
 * Does name have an address (of the client's family) inside the term's
 * CIDR?  1, 0, -1 error (why set).  voids: count a lookup that found
 * nothing.
 */
static int
addrs_match(struct spf_ctx *c, const char *name, const struct term *m,
    int voids)
{
	struct spf_rrset	 set;
	enum dns_status		 st;
	size_t			 i;
	int			 found = 0;

	st = ask(c, name, c->family == AF_INET ? SPF_A : SPF_AAAA, &set);
	if (st == DNS_TEMP) {
		spf_rrset_clear(&set);
		(void)fail(c, SPF_TEMPERROR, "the lookup of %s failed", name);
		return (-1);
	}
	if ((st == DNS_PERM || set.n == 0) && voids &&
	    void_lookup(c, name) == -1) {
		spf_rrset_clear(&set);
		return (-1);
	}
	for (i = 0; i < set.n && !found; i++)
		found = addr_match(c, set.rr[i].addr, c->family == AF_INET ?
		    m->cidr4 : m->cidr6);
	spf_rrset_clear(&set);
	return (found);
}

/* mx (5.4): the MX hosts' addresses; more than 10 names: permerror. */
static int
match_mx(struct spf_ctx *c, const char *name, const struct term *m)
{
	struct spf_rrset	 set;
	enum dns_status		 st;
	size_t			 i, names = 0;
	int			 r = 0;

	st = ask(c, name, SPF_MX, &set);
	if (st == DNS_TEMP) {
		spf_rrset_clear(&set);
		(void)fail(c, SPF_TEMPERROR, "the MX lookup of %s failed",
		    name);
		return (-1);
	}
	if (st == DNS_PERM || set.n == 0) {
		spf_rrset_clear(&set);
		return (void_lookup(c, name));
	}
	for (i = 0; i < set.n; i++)
		if (set.rr[i].text != NULL && set.rr[i].text[0] != '\0')
			names++;
	if (names > SPF_MAX_NAMES) {
		spf_rrset_clear(&set);
		(void)fail(c, SPF_PERMERROR, "%s has %zu MX hosts, more than "
		    "the %d an mx mechanism may look at", name, names,
		    SPF_MAX_NAMES);
		return (-1);
	}
	for (i = 0; i < set.n && r == 0; i++)
		if (set.rr[i].text != NULL && set.rr[i].text[0] != '\0')
			r = addrs_match(c, set.rr[i].text, m, 0);
	spf_rrset_clear(&set);
	return (r);
}

/* ptr (5.5): a validated PTR name at or under name; errors: no match. */
static int
match_ptr(struct spf_ctx *c, const char *name)
{
	struct spf_rrset	 set;
	struct term		 whole;
	char			 rev[80];
	const char		*p;
	size_t			 i, nlen = strlen(name), plen;
	enum dns_status		 st;
	int			 r = 0, v;

	memset(&whole, 0, sizeof(whole));
	whole.cidr4 = whole.cidr6 = -1;
	reverse_name(c, rev, sizeof(rev));
	st = ask(c, rev, SPF_PTR, &set);
	if (st != DNS_OK || set.n == 0) {
		spf_rrset_clear(&set);
		return (st == DNS_TEMP ? 0 : void_lookup(c, rev));
	}
	for (i = 0; i < set.n && i < SPF_MAX_NAMES && r == 0; i++) {
		if ((p = set.rr[i].text) == NULL || (plen = strlen(p)) < nlen)
			continue;
		if (strcasecmp(p + plen - nlen, name) != 0 || (plen > nlen &&
		    p[plen - nlen - 1] != '.'))
			continue;
		if ((v = addrs_match(c, p, &whole, 0)) == -1) {
			forget_error(c);	/* no error inside ptr */
			continue;
		}
		r = v;
	}
	spf_rrset_clear(&set);
	return (r);
}

/* include (5.2): 1 when the target passes; -1 on errors (and none). */
static int
match_include(struct spf_ctx *c, const char *name)
{
	enum spf_result	 r;

	r = check_host(c, name);
	switch (r) {
	case SPF_PASS:
		return (1);
	case SPF_TEMPERROR:
	case SPF_PERMERROR:
		return (-1);
	case SPF_NONE:
		forget_error(c);
		(void)fail(c, SPF_PERMERROR, "include:%s, which has no SPF "
		    "record", name);
		return (-1);
	default:
		return (0);
	}
}

/* Does the mechanism match?  1, 0, -1 (an error; why set). */
static int
match(struct spf_ctx *c, const struct term *m, const char *domain)
{
	struct term	 any;
	char		 name[SPF_EXPAND_MAX + 1];
	int		 famok, r;

	famok = c->family == (m->mech == M_IP4 ? AF_INET : AF_INET6);
	switch (m->mech) {
	case M_ALL:
		return (1);
	case M_IP4:
	case M_IP6:
		return (famok && addr_match(c, m->net, m->mech == M_IP4 ?
		    m->cidr4 : m->cidr6));
	default:
		break;
	}
	if (count_term(c, domain) == -1 || target(c, m, domain, name,
	    sizeof(name)) == -1)
		return (-1);
	switch (m->mech) {
	case M_INCLUDE:
		return (match_include(c, name));
	case M_A:
		return (addrs_match(c, name, m, 1));
	case M_MX:
		return (match_mx(c, name, m));
	case M_PTR:
		return (match_ptr(c, name));
	case M_EXISTS:
		/* Any A record (5.7), whatever the client's family. */
		memset(&any, 0, sizeof(any));
		famok = c->family;
		c->family = AF_INET;
		r = addrs_match(c, name, &any, 1);
		c->family = famok;
		return (r);
	default:
		return (0);
	}
}

/*
 * The one v=spf1 record among the TXT records of domain: 0 with *which,
 * or -1 with the result (none, temperror, permerror) in *r.
 */
static int
select_record(struct spf_ctx *c, const char *domain, struct spf_rrset *set,
    size_t *which, enum spf_result *r)
{
	enum dns_status	 st;
	size_t		 i, n = 0;

	st = ask(c, domain, SPF_TXT, set);
	if (st == DNS_TEMP) {
		*r = fail(c, SPF_TEMPERROR, "the TXT lookup of %s failed",
		    domain);
		return (-1);
	}
	for (i = 0; st == DNS_OK && i < set->n; i++)
		if (set->rr[i].text != NULL &&
		    is_spf_record(set->rr[i].text, set->rr[i].len)) {
			*which = i;
			n++;
		}
	if (n == 1)
		return (0);
	if (n > 1)
		*r = fail(c, SPF_PERMERROR, "%zu v=spf1 TXT records at %s "
		    "(one is allowed)", n, domain);
	else {
		say(c->why, c->whysize, "%s %s", domain, st == DNS_PERM ?
		    "does not exist" : "has no v=spf1 TXT record");
		*r = SPF_NONE;
	}
	spf_rrset_clear(set);
	return (-1);
}

/* The record of domain, term by term (4.6, 4.7). */
static enum spf_result
evaluate(struct spf_ctx *c, const char *domain, const char *rec, size_t len)
{
	struct term	 m, redirect;
	char		 why[256], name[SPF_EXPAND_MAX + 1];
	const char	*t;
	size_t		 pos = 6, tlen;
	int		 have_redirect = 0, r;

	why[0] = '\0';
	if (spf_record_check(rec, len, why, sizeof(why)) == -1)
		return (fail(c, SPF_PERMERROR, "the SPF record of %s: %s",
		    domain, why));
	while (next_term(rec, len, &pos, &t, &tlen)) {
		if (parse_term(t, tlen, &m, NULL, 0) == 1) {
			if (m.mech == M_REDIRECT) {
				redirect = m;
				have_redirect = 1;
			}
			continue;
		}
		if ((r = match(c, &m, domain)) == -1)
			return (c->err != SPF_NONE ? c->err : SPF_PERMERROR);
		if (r == 0)
			continue;
		if (m.mech != M_INCLUDE)
			say(c->why, c->whysize, "%.*s in the SPF record of %s",
			    (int)(tlen > TERM_SHOWN ? TERM_SHOWN : tlen), t,
			    domain);
		switch (m.qual) {
		case '-':
			return (SPF_FAIL);
		case '~':
			return (SPF_SOFTFAIL);
		case '?':
			return (SPF_NEUTRAL);
		default:
			return (SPF_PASS);
		}
	}
	if (!have_redirect) {
		say(c->why, c->whysize, "no term of the SPF record of %s "
		    "matched", domain);
		return (SPF_NEUTRAL);
	}
	if (count_term(c, domain) == -1 || target(c, &redirect, domain, name,
	    sizeof(name)) == -1)
		return (c->err);
	if ((r = check_host(c, name)) != SPF_NONE)
		return (r);
	forget_error(c);
	return (fail(c, SPF_PERMERROR, "redirect=%s, which has no SPF "
	    "record", name));
}

static enum spf_result
check_host(struct spf_ctx *c, const char *domain)
{
	struct spf_rrset	 set;
	enum spf_result		 r;
	size_t			 which = 0;

	if (!valid_domain(domain) || strchr(domain, '.') == NULL) {
		say(c->why, c->whysize, "\"%.*s\" is no domain name",
		    TERM_SHOWN, domain);
		return (SPF_NONE);
	}
	if (c->depth >= 2 * SPF_MAX_TERMS)
		return (fail(c, SPF_PERMERROR, "includes nested too deep at "
		    "%s", domain));
	if (select_record(c, domain, &set, &which, &r) == -1)
		return (r);
	c->depth++;
	r = evaluate(c, domain, set.rr[which].text, set.rr[which].len);
	c->depth--;
	spf_rrset_clear(&set);
	return (r);
}

enum spf_result
spf_check_host(spf_lookup_fn lookup, void *arg, const struct sockaddr *sa,
    const char *domain, const char *sender, const char *helo, char *why,
    size_t whysize)
{
	struct spf_ctx	 c;
	char		 mine[256];

	memset(&c, 0, sizeof(c));
	c.lookup = lookup;
	c.arg = arg;
	c.sa = sa;
	c.family = sa->sa_family;
	c.sender = sender;
	c.helo = helo;
	c.err = SPF_NONE;
	c.why = why != NULL && whysize > 0 ? why : mine;
	c.whysize = why != NULL && whysize > 0 ? whysize : sizeof(mine);
	c.why[0] = '\0';
	if (sa->sa_family == AF_INET)
		memcpy(c.ip, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	else if (sa->sa_family == AF_INET6)
		memcpy(c.ip, &((const struct sockaddr_in6 *)sa)->sin6_addr,
		    16);
	else
		return (fail(&c, SPF_PERMERROR, "no IPv4 or IPv6 address"));
	return (check_host(&c, domain));
}
