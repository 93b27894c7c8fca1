/*
 * dkim_record.h - the DKIM key record (RFC 6376 3.6.1) published at
 * SELECTOR._domainkey.DOMAIN, parsed as a sender's verifier reads it,
 * for `mxfb check` to compare with our signing key.  A pure parser of
 * outside input (unit-tested and fuzzed).
 */
#ifndef MXFB_DKIM_RECORD_H
#define MXFB_DKIM_RECORD_H

#include <stddef.h>

/* Longest p= kept: an RSA-8192 key's base64 with room to spare. */
#define DKIM_RECORD_KEY_MAX	2048

struct dkim_key_record {
	char	 k[16];		/* key type, "rsa" when absent */
	char	 p[DKIM_RECORD_KEY_MAX]; /* base64, blanks removed; "": revoked */
};

/*
 * A tag=value list (RFC 6376 3.2: ';' apart, blanks around tags and
 * values, no tag twice); v= if present must come first and be DKIM1;
 * p= must be present and hold base64 only.  0, or -1 with why.
 */
int	 dkim_record_parse(const char *, size_t, struct dkim_key_record *,
	    char *why, size_t);

#endif
