/*
 * fuzz_address.c - libFuzzer target for the RFC 5321 path parser, the
 * relay-trick check, domain matching and recipient lists.  The first
 * byte selects the parser flags; the rest is the path.  Checks the
 * parser's guarantees: bounded lengths, no control characters, UTF-8
 * only when allowed, and an end pointer inside the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mail/address.h"
#include "core/util.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct address	 a;
	struct rcptlist	*rl;
	const char	*end;
	char		*s;
	size_t		 i, len;
	int		 allow_null, allow_utf8;

	if (size < 1)
		return (0);
	allow_null = data[0] & 1;
	allow_utf8 = (data[0] >> 1) & 1;
	s = xstrndup((const char *)data + 1, size - 1);
	len = strlen(s);
	if (address_parse_path(s, allow_null, allow_utf8, &a, &end) ==
	    ADDRESS_OK) {
		if (end < s || end > s + len)
			abort();
		if (strlen(a.local) > ADDRESS_LOCAL_MAX ||
		    strlen(a.domain) > DOMAIN_NAME_MAX ||
		    (size_t)(end - s) > ADDRESS_PATH_MAX)
			abort();
		if (a.null != (a.addr[0] == '\0') || (a.null && !allow_null))
			abort();
		for (i = 0; a.addr[i] != '\0'; i++) {
			unsigned char c = a.addr[i];

			if (c < 32 && !a.quoted)
				abort();
			if (c >= 0x80 && !allow_utf8)
				abort();
		}
		if (a.utf8 && !utf8_valid((const unsigned char *)a.addr,
		    strlen(a.addr)))
			abort();
		(void)address_relay_trick(&a);
		if (!a.null && !a.literal &&
		    !address_domain_match(a.domain, a.domain))
			abort();
		rl = rcptlist_parse(s, len);
		(void)rcptlist_match(rl, a.local_plain, a.domain);
		rcptlist_free(rl);
	}
	(void)address_domain_valid(s);
	free(s);
	return (0);
}
