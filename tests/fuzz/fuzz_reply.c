/*
 * fuzz_reply.c - libFuzzer target for the SMTP client's reply parsing:
 * the input is split into lines as a primary would send them, each line
 * fed to smtp_reply_add_line(); complete replies are turned into their
 * one-line form and, when they look like an EHLO reply, parsed for
 * keywords.  Checks the parser's invariants (text bounded and
 * NUL-terminated, code in 200..599 when complete).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/smtp_client.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply	 r;
	struct smtp_ext		 e;
	char			 s[600];
	const uint8_t		*p = data, *end = data + size, *nl;
	size_t			 len;
	int			 rc;

	smtp_reply_init(&r);
	while (p < end) {
		nl = memchr(p, '\n', end - p);
		len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		rc = smtp_reply_add_line(&r, (const char *)p, len);
		if (r.len >= sizeof(r.text) || r.text[r.len] != '\0')
			abort();
		if (rc == 1) {
			if (r.code < 200 || r.code > 599)
				abort();
			smtp_reply_string(&r, s, sizeof(s));
			if (strlen(s) >= sizeof(s))
				abort();
			smtp_ehlo_parse(&r, &e);
			if (strlen(e.keywords) >= sizeof(e.keywords))
				abort();
		} else if (rc == -1)
			smtp_reply_init(&r);
		p += (nl ? (size_t)(nl - p) + 1 : (size_t)(end - p));
	}
	return (0);
}
