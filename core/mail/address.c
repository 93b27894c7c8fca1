/*
 * address.c - RFC 5321 path parsing and the acceptance rules of a backup
 * MX: which recipient addresses could make us an open relay, whether a
 * domain is one we back up, and lists of valid recipients.
 *
 * The parser is strict where leniency would be a risk (lengths, control
 * characters, UTF-8 only with SMTPUTF8) and keeps what it accepted
 * byte for byte, apart from one trailing dot on the domain.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mail/address.h"
#include "core/util.h"

struct rcptlist {
	char	**entries;	/* lower case, sorted */
	size_t	  n;
};

static int	 is_atext(unsigned char);
static int	 is_letdig(unsigned char);
static const char *parse_domain(const char *, char *, size_t, int *);
static const char *parse_literal(const char *, char *, size_t);
static const char *parse_local(const char *, struct address *);
static int	 has_high_bytes(const char *);
static int	 entry_cmp(const void *, const void *);
static int	 rcptlist_lookup(const struct rcptlist *, const char *);
static struct rcptlist *rcptlist_build(const char *, size_t, size_t *);
static void	 domain_copy_lower(char *, size_t, const char *);

static int
is_atext(unsigned char c)
{
	if (c >= 0x80)
		return (1);	/* UTF-8; checked as a whole afterwards */
	if (isalnum(c))
		return (1);
	return (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static int
is_letdig(unsigned char c)
{
	return (c >= 0x80 || isalnum(c));
}

/*
 * Domain: labels of letters, digits and hyphens (not at either end),
 * at most 63 octets each, one optional trailing dot (dropped).  Stops
 * at the first character that cannot continue it.
 */
static const char *
parse_domain(const char *s, char *out, size_t outsize, int *literal)
{
	const char	*p = s, *label;
	size_t		 len;

	*literal = 0;
	if (*p == '[') {
		*literal = 1;
		return (parse_literal(s, out, outsize));
	}
	for (;;) {
		label = p;
		while (is_letdig((unsigned char)*p) || *p == '-')
			p++;
		if (p == label || p - label > 63 || label[0] == '-' ||
		    p[-1] == '-')
			return (NULL);
		if (*p != '.')
			break;
		p++;
		if (!is_letdig((unsigned char)*p))
			break;	/* trailing dot, or end of domain */
	}
	len = p - s;
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len > DOMAIN_NAME_MAX || len >= outsize)
		return (NULL);
	memcpy(out, s, len);
	out[len] = '\0';
	return (p);
}

/* [1.2.3.4], [IPv6:::1] or [tag:dcontent]; kept with its brackets. */
static const char *
parse_literal(const char *s, char *out, size_t outsize)
{
	const char	*p = s + 1;
	char		 inner[DOMAIN_NAME_SIZE];
	unsigned char	 bin[16];
	size_t		 len;
	const char	*colon;

	while (*p != ']') {
		if ((unsigned char)*p < 33 || (unsigned char)*p > 126 ||
		    *p == '[' || *p == '\\')
			return (NULL);
		p++;
	}
	len = p - (s + 1);
	if (len == 0 || len + 2 > DOMAIN_NAME_MAX || len + 2 >= outsize)
		return (NULL);
	memcpy(inner, s + 1, len);
	inner[len] = '\0';
	if (strncasecmp(inner, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, inner + 5, bin) != 1)
			return (NULL);
	} else if ((colon = strchr(inner, ':')) != NULL) {
		/* General-address-literal: Standardized-tag ":" dcontent */
		if (colon == inner || colon[1] == '\0')
			return (NULL);
	} else if (inet_pton(AF_INET, inner, bin) != 1)
		return (NULL);
	memcpy(out, s, len + 2);
	out[len + 2] = '\0';
	return (p + 1);
}

/* Dot-string or Quoted-string, up to (not including) the '@'. */
static const char *
parse_local(const char *s, struct address *a)
{
	const char	*p = s;
	size_t		 n = 0;

	if (*p == '"') {
		a->quoted = 1;
		p++;
		for (;;) {
			unsigned char c = *p;

			if (c == '"')
				break;
			if (c == '\\') {
				c = p[1];
				if (c < 32 || c > 126)
					return (NULL);
				p++;
			} else if ((c < 32 || c == 127) && c < 0x80)
				return (NULL);
			if (n >= ADDRESS_LOCAL_MAX)
				return (NULL);
			a->local_plain[n++] = c;
			p++;
		}
		p++;
	} else {
		for (;;) {
			const char *atom = p;

			while (is_atext((unsigned char)*p))
				p++;
			if (p == atom)
				return (NULL);
			if (*p != '.')
				break;
			p++;
		}
		n = p - s;
		if (n > ADDRESS_LOCAL_MAX)
			return (NULL);
		memcpy(a->local_plain, s, n);
	}
	a->local_plain[n] = '\0';
	if (p - s > ADDRESS_LOCAL_MAX)
		return (NULL);
	memcpy(a->local, s, p - s);
	a->local[p - s] = '\0';
	return (p);
}

static int
has_high_bytes(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return (1);
	return (0);
}

enum address_error
address_parse_path(const char *s, int allow_null, int allow_utf8,
    struct address *a, const char **end)
{
	const char	*p = s, *q;
	char		 scratch[DOMAIN_NAME_SIZE];
	int		 lit;
	size_t		 len;

	memset(a, 0, sizeof(*a));
	if (*p++ != '<')
		return (ADDRESS_SYNTAX);
	if (*p == '>') {
		if (!allow_null)
			return (ADDRESS_SYNTAX);
		a->null = 1;
		*end = p + 1;
		return (ADDRESS_OK);
	}
	if (*p == '@') {
		/* A-d-l: "@" Domain *( "," "@" Domain ) ":" */
		a->route = 1;
		for (;;) {
			if (*p != '@')
				return (ADDRESS_SYNTAX);
			if ((q = parse_domain(p + 1, scratch, sizeof(scratch),
			    &lit)) == NULL)
				return (ADDRESS_SYNTAX);
			p = q;
			if (*p == ':')
				break;
			if (*p++ != ',')
				return (ADDRESS_SYNTAX);
		}
		p++;
	}
	if ((q = parse_local(p, a)) == NULL) {
		for (q = p; *q != '\0' && *q != '@' && *q != '>'; q++)
			;
		return (q - p > ADDRESS_LOCAL_MAX ? ADDRESS_TOO_LONG :
		    ADDRESS_SYNTAX);
	}
	p = q;
	if (*p++ != '@')
		return (ADDRESS_SYNTAX);
	if ((q = parse_domain(p, a->domain, sizeof(a->domain),
	    &a->literal)) == NULL) {
		for (q = p; *q != '\0' && *q != '>'; q++)
			;
		return (q - p > DOMAIN_NAME_MAX ? ADDRESS_TOO_LONG :
		    ADDRESS_SYNTAX);
	}
	p = q;
	if (*p != '>')
		return (ADDRESS_SYNTAX);
	p++;
	if (p - s > ADDRESS_PATH_MAX)
		return (ADDRESS_TOO_LONG);
	if (bsnprintf(a->addr, sizeof(a->addr), "%s@%s", a->local,
	    a->domain) == -1)
		return (ADDRESS_TOO_LONG);
	if (has_high_bytes(a->addr) || has_high_bytes(a->local_plain)) {
		if (!allow_utf8)
			return (ADDRESS_NEED_UTF8);
		len = strlen(a->addr);
		if (!utf8_valid((const unsigned char *)a->addr, len) ||
		    !utf8_valid((const unsigned char *)a->local_plain,
		    strlen(a->local_plain)))
			return (ADDRESS_SYNTAX);
		a->utf8 = 1;
	}
	*end = p;
	return (ADDRESS_OK);
}

const char *
address_error_text(enum address_error e)
{
	switch (e) {
	case ADDRESS_OK:
		return ("OK");
	case ADDRESS_TOO_LONG:
		return ("address too long");
	case ADDRESS_NEED_UTF8:
		return ("must declare SMTPUTF8 to send Unicode addresses");
	case ADDRESS_SYNTAX:
	default:
		return ("bad address syntax");
	}
}

const char *
address_relay_trick(const struct address *a)
{
	if (a->null)
		return ("null address");
	if (a->route)
		return ("source route");
	if (a->literal)
		return ("address literal");
	if (strchr(a->local_plain, '%') != NULL)
		return ("percent hack");
	if (strchr(a->local_plain, '!') != NULL)
		return ("bang path");
	if (strchr(a->local_plain, '@') != NULL)
		return ("quoted local part with @");
	return (NULL);
}

int
address_domain_match(const char *domain, const char *relay)
{
	size_t	 dl = strlen(domain), rl = strlen(relay);

	if (dl > 0 && domain[dl - 1] == '.')
		dl--;
	if (rl > 0 && relay[rl - 1] == '.')
		rl--;
	return (dl == rl && dl > 0 && strncasecmp(domain, relay, dl) == 0);
}

int
address_domain_of(const char *addr, char *buf, size_t size)
{
	const char	*at = strrchr(addr, '@');
	size_t		 len;

	if (size == 0)
		return (-1);
	buf[0] = '\0';
	if (at == NULL)
		return (-1);
	(void)strlcpy(buf, at + 1, size);
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '.')
		buf[len - 1] = '\0';
	ascii_lower(buf);
	return (0);
}

int
address_domain_valid(const char *s)
{
	char		 out[DOMAIN_NAME_SIZE];
	const char	*end;
	int		 lit;

	if (has_high_bytes(s) || *s == '[')
		return (0);
	end = parse_domain(s, out, sizeof(out), &lit);
	return (end != NULL && *end == '\0');
}

int
utf8_valid(const unsigned char *s, size_t len)
{
	size_t		 i = 0, need, k;
	uint32_t	 cp, min;

	while (i < len) {
		unsigned char c = s[i];

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			need = 1;
			cp = c & 0x1f;
			min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			need = 2;
			cp = c & 0x0f;
			min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			need = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else
			return (0);
		if (len - i - 1 < need)
			return (0);
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return (0);
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return (0);
		i += need + 1;
	}
	return (1);
}

static int
entry_cmp(const void *a, const void *b)
{
	return (strcmp(*(char * const *)a, *(char * const *)b));
}

static void
domain_copy_lower(char *out, size_t size, const char *domain)
{
	size_t	 len;

	strlcpy(out, domain, size);
	len = strlen(out);
	if (len > 0 && out[len - 1] == '.')
		out[len - 1] = '\0';
	ascii_lower(out);
}

/*
 * Parse text into a list.  *badline gets the number of the first line
 * that is neither user@domain nor @domain (0 if none); such lines are
 * left out.
 */
static struct rcptlist *
rcptlist_build(const char *text, size_t len, size_t *badline)
{
	struct rcptlist	*rl;
	const char	*p = text, *end = text + len, *nl, *b, *e, *at;
	size_t		 lineno = 0, cap = 0, n;
	char		*entry;

	*badline = 0;
	rl = xcalloc(1, sizeof(*rl));
	while (p < end) {
		lineno++;
		if ((nl = memchr(p, '\n', end - p)) == NULL)
			nl = end;
		b = p;
		e = nl;
		p = nl < end ? nl + 1 : end;
		if ((at = memchr(b, '#', e - b)) != NULL)
			e = at;
		while (b < e && isspace((unsigned char)*b))
			b++;
		while (e > b && isspace((unsigned char)e[-1]))
			e--;
		if (b == e)
			continue;
		n = e - b;
		at = memrchr(b, '@', n);
		if (at == NULL || at == e - 1 || memchr(b, '\0', n) != NULL ||
		    n > ADDRESS_PATH_MAX) {
			if (*badline == 0)
				*badline = lineno;
			continue;
		}
		entry = xstrndup(b, n);
		if (entry[n - 1] == '.')
			entry[n - 1] = '\0';
		ascii_lower(entry);
		if (rl->n == cap) {
			cap = cap ? cap * 2 : 16;
			rl->entries = xreallocarray(rl->entries, cap,
			    sizeof(char *));
		}
		rl->entries[rl->n++] = entry;
	}
	if (rl->n > 0)
		qsort(rl->entries, rl->n, sizeof(char *), entry_cmp);
	return (rl);
}

struct rcptlist *
rcptlist_parse(const char *text, size_t len)
{
	size_t	 bad;

	return (rcptlist_build(text, len, &bad));
}

struct rcptlist *
rcptlist_load(const char *path, char *err, size_t errsize)
{
	struct rcptlist	*rl;
	struct stat	 st;
	char		*buf;
	size_t		 bad;
	int		 fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		saved = errno;
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		errno = saved;
		return (NULL);
	}
	saved = 0;
	if (fstat(fd, &st) == -1)
		saved = errno;
	else if (!S_ISREG(st.st_mode))
		saved = EINVAL;
	else if (st.st_size > 256 * 1024 * 1024)
		saved = EFBIG;
	if (saved != 0) {
		snprintf(err, errsize, "%s: %s", path, strerror(saved));
		close(fd);
		errno = saved;
		return (NULL);
	}
	buf = xmalloc((size_t)st.st_size + 1);
	if (read_all(fd, buf, (size_t)st.st_size) != st.st_size) {
		saved = errno ? errno : EIO;
		snprintf(err, errsize, "%s: read: %s", path, strerror(saved));
		free(buf);
		close(fd);
		errno = saved;
		return (NULL);
	}
	close(fd);
	buf[st.st_size] = '\0';
	rl = rcptlist_build(buf, (size_t)st.st_size, &bad);
	free(buf);
	if (bad != 0) {
		snprintf(err, errsize, "%s:%zu: not user@domain or @domain",
		    path, bad);
		rcptlist_free(rl);
		errno = EINVAL;
		return (NULL);
	}
	return (rl);
}

static int
rcptlist_lookup(const struct rcptlist *rl, const char *key)
{
	return (rl->n > 0 && bsearch(&key, rl->entries, rl->n,
	    sizeof(char *), entry_cmp) != NULL);
}

int
rcptlist_match(const struct rcptlist *rl, const char *local,
    const char *domain)
{
	return (rcptlist_match_how(rl, local, domain) != RCPTLIST_NONE);
}

enum rcptlist_how
rcptlist_match_how(const struct rcptlist *rl, const char *local,
    const char *domain)
{
	char		 dom[DOMAIN_NAME_SIZE];
	char		 key[ADDRESS_PATH_MAX * 2 + 2];
	const char	*plus;

	domain_copy_lower(dom, sizeof(dom), domain);
	if (bsnprintf(key, sizeof(key), "%s@%s", local, dom) == -1)
		return (RCPTLIST_NONE);
	ascii_lower(key);
	if (rcptlist_lookup(rl, key))
		return (RCPTLIST_USER);
	if ((plus = strchr(local, '+')) != NULL && plus != local) {
		if (bsnprintf(key, sizeof(key), "%.*s@%s",
		    (int)(plus - local), local, dom) == -1)
			return (RCPTLIST_NONE);
		ascii_lower(key);
		if (rcptlist_lookup(rl, key))
			return (RCPTLIST_USER);
	}
	if (bsnprintf(key, sizeof(key), "@%s", dom) == -1)
		return (RCPTLIST_NONE);
	return (rcptlist_lookup(rl, key) ? RCPTLIST_DOMAIN : RCPTLIST_NONE);
}

/*
 * A mailbox name must be safe as one path component: no '/', no leading
 * '.', no control characters, no quoting, at most ADDRESS_LOCAL_MAX
 * octets.  Dovecot's %Lu lookup lower-cases both parts; +tag goes.
 */
int
address_mailbox_name(const char *addr, char *local, size_t lsize,
    char *domain, size_t dsize)
{
	const char	*at, *p, *plus;
	size_t		 len;

	if (lsize == 0 || dsize == 0)
		return (-1);
	local[0] = domain[0] = '\0';
	if ((at = strrchr(addr, '@')) == NULL || at == addr)
		return (-1);
	len = (size_t)(at - addr);
	if ((plus = memchr(addr, '+', len)) != NULL && plus != addr)
		len = (size_t)(plus - addr);
	if (len > ADDRESS_LOCAL_MAX || len >= lsize || addr[0] == '.')
		return (-1);
	for (p = addr; p < addr + len; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '/' ||
		    *p == '"' || *p == '\\')
			return (-1);
	memcpy(local, addr, len);
	local[len] = '\0';
	ascii_lower(local);
	domain_copy_lower(domain, dsize, at + 1);
	if (domain[0] == '\0' || domain[0] == '.' ||
	    !address_domain_valid(domain)) {
		local[0] = domain[0] = '\0';
		return (-1);
	}
	return (0);
}

/*
 * Only real users get a mailbox (a spammer must not make directories at
 * will): a `user@domain` line of the recipients list names the address
 * exactly, not an `@domain` catch-all, and the name is safe as a path.
 * Other proofs of a real user (a callout's verdict) join here.
 */
int
mailbox_eligible(const struct rcptlist *rl, const char *addr)
{
	char		 local[ADDRESS_LOCAL_MAX + 1];
	char		 domain[DOMAIN_NAME_SIZE];
	const char	*at;
	char		 lp[ADDRESS_LOCAL_MAX + 1];
	size_t		 len;

	if (rl == NULL || address_mailbox_name(addr, local, sizeof(local),
	    domain, sizeof(domain)) == -1)
		return (0);
	at = strrchr(addr, '@');
	len = (size_t)(at - addr);
	if (len >= sizeof(lp))
		return (0);
	memcpy(lp, addr, len);
	lp[len] = '\0';
	return (rcptlist_match_how(rl, lp, domain) == RCPTLIST_USER);
}

size_t
rcptlist_count(const struct rcptlist *rl)
{
	return (rl->n);
}

void
rcptlist_free(struct rcptlist *rl)
{
	size_t	 i;

	if (rl == NULL)
		return;
	for (i = 0; i < rl->n; i++)
		free(rl->entries[i]);
	free(rl->entries);
	free(rl);
}

int
address_domain_typed(const char *typed, char *buf, size_t size)
{
	if (size == 0)
		return (-1);
	domain_copy_lower(buf, size, typed);
	if (buf[0] == '\0' || strchr(buf, '/') != NULL) {
		buf[0] = '\0';
		return (-1);
	}
	return (0);
}
