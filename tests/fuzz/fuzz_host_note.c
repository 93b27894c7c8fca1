/*
 * fuzz_host_note.c - libFuzzer target for the host note's parser
 * (spool/hostnote.c), which reads whatever bytes domains/ holds.
 * Checks: what is accepted has up 0 or 1, times not negative, a host
 * and a reason of printable ASCII within their buffers, and formats
 * into a note that parses back to the same fields.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool/spool.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
static int	printable(const char *, size_t);
static int	same(const struct host_note *, const struct host_note *);

static int
printable(const char *s, size_t size)
{
	size_t	 i;

	for (i = 0; i < size && s[i] != '\0'; i++)
		if (s[i] < ' ' || s[i] > '~')
			return (0);
	return (i < size);
}

/* Field by field (the struct has padding). */
static int
same(const struct host_note *a, const struct host_note *b)
{
	return (a->up == b->up && a->time == b->time &&
	    a->since == b->since && a->retry == b->retry &&
	    a->failures == b->failures && strcmp(a->host, b->host) == 0 &&
	    strcmp(a->reason, b->reason) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct host_note	 n, again;
	char			 buf[2048];
	int			 len;

	if (spool_host_parse((const char *)data, size, &n) == -1)
		return (0);
	if ((n.up != 0 && n.up != 1) || n.time < 0 || n.since < 0 ||
	    n.retry < 0 || !printable(n.host, sizeof(n.host)) ||
	    !printable(n.reason, sizeof(n.reason)))
		abort();
	if ((len = spool_host_format(&n, buf, sizeof(buf))) == -1)
		abort();
	memset(&again, 0, sizeof(again));
	if (spool_host_parse(buf, (size_t)len, &again) == -1 ||
	    !same(&n, &again))
		abort();
	return (0);
}
