/*
 * fuzz_primary_record.c - libFuzzer target for the primary record's
 * parser (spool/primary.c), which reads whatever bytes domains/ holds.
 * Checks: what is accepted has flags of 0 or 1, times not negative, a
 * source of lower-case letters, a reason of printable ASCII, and formats
 * into a record that parses back to the same fields.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool/spool.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
static int	same(const struct primary_obs *, const struct primary_obs *);

/* Field by field (the struct has padding). */
static int
same(const struct primary_obs *a, const struct primary_obs *b)
{
	return (a->up == b->up && a->checked == b->checked &&
	    a->last_up == b->last_up && strcmp(a->host, b->host) == 0 &&
	    strcmp(a->source, b->source) == 0 &&
	    a->have_ehlo == b->have_ehlo && a->size_max == b->size_max &&
	    a->smtputf8 == b->smtputf8 &&
	    a->eightbitmime == b->eightbitmime && a->dsn == b->dsn &&
	    a->since == b->since && strcmp(a->reason, b->reason) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct primary_obs	 o, again;
	char			 buf[PRIMARY_RECORD_MAX];
	size_t			 i;
	int			 n;

	if (spool_primary_parse((const char *)data, size, &o) == -1)
		return (0);
	if ((o.up != 0 && o.up != 1) || (o.have_ehlo != 0 &&
	    o.have_ehlo != 1) || o.checked < 0 || o.last_up < 0 ||
	    o.source[0] == '\0' || strlen(o.source) >= sizeof(o.source) ||
	    strlen(o.host) >= sizeof(o.host) || o.since < 0 ||
	    strlen(o.reason) >= sizeof(o.reason))
		abort();
	for (i = 0; o.reason[i] != '\0'; i++)
		if (o.reason[i] < ' ' || o.reason[i] > '~')
			abort();
	if ((n = spool_primary_format(&o, buf, sizeof(buf))) == -1)
		abort();
	memset(&again, 0, sizeof(again));
	if (spool_primary_parse(buf, (size_t)n, &again) == -1 ||
	    !same(&o, &again))
		abort();
	return (0);
}
