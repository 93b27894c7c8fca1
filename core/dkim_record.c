/*
 * dkim_record.c - the DKIM key record's tag list (RFC 6376 3.2, 3.6.1).
 *
 * Guarantees: reads only the len bytes given (NULs included: refused),
 * keeps bounded copies (DKIM_RECORD_KEY_MAX of key, 15 of key type), and
 * accepts only what the tag-list grammar allows.
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/dkim_record.h"
#include "core/util.h"

#define IS_FWS(c)	((c) == ' ' || (c) == '\t' || (c) == '\r' || \
			    (c) == '\n')

static int	 tag_value(const char *, size_t, const char *, size_t, int,
		    struct dkim_key_record *, unsigned *, char *, size_t);

/* One tag's value (blanks inside already allowed); *seen: v, k, p. */
static int
tag_value(const char *name, size_t nlen, const char *v, size_t vlen,
    int first, struct dkim_key_record *r, unsigned *seen, char *why,
    size_t whysize)
{
	size_t	 i, o = 0;
	int	 c;

	if (nlen == 1 && name[0] == 'v') {
		if (!first || vlen != 5 || memcmp(v, "DKIM1", 5) != 0) {
			(void)snprintf(why, whysize, "v= must come first and "
			    "be DKIM1");
			return (-1);
		}
	} else if (nlen == 1 && name[0] == 'k') {
		if (vlen == 0 || vlen >= sizeof(r->k)) {
			(void)snprintf(why, whysize, "bad k= tag");
			return (-1);
		}
		memcpy(r->k, v, vlen);
		r->k[vlen] = '\0';
		for (i = 0; i < vlen; i++)
			if (!isascii((unsigned char)v[i]) ||
			    !isalnum((unsigned char)v[i])) {
				(void)snprintf(why, whysize, "bad k= tag");
				return (-1);
			}
	} else if (nlen == 1 && name[0] == 'p') {
		for (i = 0; i < vlen; i++) {
			c = (unsigned char)v[i];
			if (IS_FWS(c))
				continue;
			if (!(isascii(c) && (isalnum(c) || c == '+' ||
			    c == '/' || c == '=')) || o + 1 >= sizeof(r->p)) {
				(void)snprintf(why, whysize, o + 1 >=
				    sizeof(r->p) ? "p= too long" :
				    "p= is not base64");
				return (-1);
			}
			r->p[o++] = (char)c;
		}
		r->p[o] = '\0';
	}
	return (0);
}

int
dkim_record_parse(const char *s, size_t len, struct dkim_key_record *r,
    char *why, size_t whysize)
{
	size_t		 i = 0, name, nlen, val, vend, ntags = 0;
	unsigned	 seen = 0, bit;

	memset(r, 0, sizeof(*r));
	(void)strlcpy(r->k, "rsa", sizeof(r->k));
	while (i < len) {
		while (i < len && IS_FWS(s[i]))
			i++;
		if (i >= len)
			break;
		name = i;
		if (!isascii((unsigned char)s[i]) ||
		    !isalpha((unsigned char)s[i]))
			goto bad;
		while (i < len && isascii((unsigned char)s[i]) &&
		    (isalnum((unsigned char)s[i]) || s[i] == '_'))
			i++;
		nlen = i - name;
		while (i < len && IS_FWS(s[i]))
			i++;
		if (i >= len || s[i] != '=')
			goto bad;
		for (i++; i < len && IS_FWS(s[i]); i++)
			;
		val = i;
		while (i < len && s[i] != ';') {
			if (!IS_FWS(s[i]) && (s[i] < 0x21 || s[i] > 0x7e))
				goto bad;
			i++;
		}
		vend = i;
		while (vend > val && IS_FWS(s[vend - 1]))
			vend--;
		bit = nlen != 1 ? 0 : s[name] == 'v' ? 1 : s[name] == 'k' ?
		    2 : s[name] == 'p' ? 4 : 0;
		if (bit != 0 && (seen & bit)) {
			(void)snprintf(why, whysize, "%c= given twice",
			    s[name]);
			return (-1);
		}
		seen |= bit;
		if (tag_value(s + name, nlen, s + val, vend - val,
		    ntags++ == 0, r, &seen, why, whysize) == -1)
			return (-1);
		if (i < len)
			i++;	/* the ';' */
	}
	if (!(seen & 4)) {
		(void)snprintf(why, whysize, "no p= tag");
		return (-1);
	}
	return (0);
bad:
	(void)snprintf(why, whysize, "not a tag=value list at byte %zu", i);
	return (-1);
}
