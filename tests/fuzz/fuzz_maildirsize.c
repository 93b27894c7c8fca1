/*
 * fuzz_maildirsize.c - libFuzzer target for the outage mailbox's parser
 * of the Maildir++ maildirsize (spool/maildir.c), a file in the user's
 * Maildir that the user's own mail client (through Dovecot) may write.
 * Checks: an accepted file's total is never negative, and the same bytes
 * always give the same answer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "spool/spool_private.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t	 a, b, c;
	int	 r;

	r = maildir_quota_parse((const char *)data, size, &a, &c);
	if (maildir_quota_parse((const char *)data, size, &b, NULL) != r)
		abort();
	if (r == 0 && (a < 0 || a != b || c < 0))
		abort();
	return (0);
}
