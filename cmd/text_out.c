/*
 * text_out.c - text taken from mail or from the network, shown safely:
 * for the terminal (text_put, text_str) and as JSON strings
 * (json_string).  status and verify print through these, so that no
 * peer-supplied byte reaches a terminal as a control and JSON output is
 * valid (RFC 8259) whatever bytes it holds.
 */
#include <stdio.h>
#include <string.h>

#include "cmd/text_out.h"

static size_t	 utf8_sequence(const unsigned char *, size_t,
		    unsigned long *);
static int	 unicode_control(unsigned long);

/*
 * Length of the well-formed UTF-8 sequence at s (1..4, never more than
 * len) and its code point in *cp, or 0 when the byte at s does not start
 * one (overlong, surrogate, truncated...).
 */
static size_t
utf8_sequence(const unsigned char *s, size_t len, unsigned long *cp)
{
	size_t		 n, k;

	*cp = s[0];
	if (s[0] < 0x80)
		return (1);
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 1;
		*cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 2;
		*cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 3;
		*cp = s[0] & 0x07;
	} else
		return (0);
	if (n >= len)
		return (0);
	for (k = 1; k <= n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return (0);
		*cp = (*cp << 6) | (s[k] & 0x3f);
	}
	if ((n == 2 && *cp < 0x800) || (n == 3 && *cp < 0x10000) ||
	    (*cp >= 0xd800 && *cp <= 0xdfff) || *cp > 0x10ffff)
		return (0);
	return (n + 1);
}

/*
 * Characters a terminal acts on although they are valid UTF-8: the C1
 * controls (U+009B is CSI, as ESC [ is) and the bidi embeddings,
 * overrides and isolates that make text read other than it is stored
 * (U+202A-202E, U+2066-2069: "Trojan Source").
 */
static int
unicode_control(unsigned long cp)
{
	return ((cp >= 0x80 && cp <= 0x9f) ||
	    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069));
}

/*
 * Text for the terminal: valid UTF-8 (names like jörg@) passes through;
 * a backslash is doubled, TAB is \t, other C0 controls, DEL and bytes
 * that are not UTF-8 are \xHH, C1 and bidi controls \uHHHH, so that no
 * peer-supplied text can drive the terminal or hide what it says.
 * Returns the width written in characters (for padding).
 */
size_t
text_put(FILE *f, const unsigned char *s, size_t len)
{
	unsigned long	 cp;
	size_t		 i = 0, n, width = 0;

	while (i < len) {
		n = utf8_sequence(s + i, len - i, &cp);
		if (n == 0 || (n == 1 && (cp < 0x20 || cp == 0x7f) &&
		    cp != '\t')) {
			fprintf(f, "\\x%02x", s[i]);
			width += 4;
			i++;
			continue;
		}
		if (cp == '\\' || cp == '\t') {
			fputs(cp == '\t' ? "\\t" : "\\\\", f);
			width += 2;
		} else if (unicode_control(cp)) {
			fprintf(f, "\\u%04lx", cp);
			width += 6;
		} else {
			fwrite(s + i, 1, n, f);
			width++;
		}
		i += n;
	}
	return (width);
}

/* The same for a string; NULL prints nothing. */
size_t
text_str(FILE *f, const char *str)
{
	if (str == NULL)
		return (0);
	return (text_put(f, (const unsigned char *)str, strlen(str)));
}

/*
 * A JSON string (RFC 8259): quotes, backslashes and every control below
 * 0x20 escaped, DEL, C1 and bidi controls too (\u escapes decode to the
 * same text, and a terminal showing the JSON is safe); valid UTF-8
 * passed through; each byte that is not UTF-8 becomes U+FFFD.
 */
void
json_string(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned long	 cp;
	size_t		 len = strlen(str), i = 0, n;

	putc('"', f);
	while (i < len) {
		n = utf8_sequence(s + i, len - i, &cp);
		if (n == 0) {
			fputs("\\ufffd", f);
			i++;
			continue;
		}
		if (cp == '"' || cp == '\\') {
			putc('\\', f);
			putc((int)cp, f);
		} else if (cp < 0x20 || cp == 0x7f || unicode_control(cp))
			fprintf(f, "\\u%04lx", cp);
		else
			fwrite(s + i, 1, n, f);
		i += n;
	}
	putc('"', f);
}

void
prom_label(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned long	 cp;
	size_t		 len = strlen(str), i = 0, n;

	putc('"', f);
	while (i < len) {
		n = utf8_sequence(s + i, len - i, &cp);
		if (n == 0) {
			fputs("\xef\xbf\xbd", f);
			i++;
			continue;
		}
		if (cp == '"' || cp == '\\') {
			putc('\\', f);
			putc((int)cp, f);
		} else if (cp == '\n')
			fputs("\\n", f);
		else if (cp < 0x20 || cp == 0x7f)
			fputs("\xef\xbf\xbd", f);
		else
			fwrite(s + i, 1, n, f);
		i += n;
	}
	putc('"', f);
}
