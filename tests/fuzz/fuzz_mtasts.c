/*
 * fuzz_mtasts.c - libFuzzer target for the parsers `mxfb check` runs on
 * outside input: the MTA-STS TXT record, the HTTP response and policy
 * file from the policy host (core/mtasts.c), and the DKIM key record
 * (core/dkim_record.c).  Checks: what is accepted holds only what the
 * grammar allows (an id of letters and digits, a mode in range, max_age
 * within a year, mx patterns that match themselves as host names when
 * not wildcards, a body inside the input), and nothing reads past it.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dkim_record.h"
#include "core/mtasts.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
static void	 check_policy(const char *, size_t);

static void
check_policy(const char *s, size_t len)
{
	struct mtasts_policy	*p;
	char			 why[256];
	size_t			 i;

	if ((p = malloc(sizeof(*p))) == NULL)
		abort();
	if (mtasts_policy_parse(s, len, p, why, sizeof(why)) == 0) {
		if (p->mode > MTASTS_MODE_ENFORCE || p->max_age < 0 ||
		    p->max_age > MTASTS_MAX_AGE_MAX || p->nmx > MTASTS_MX_MAX ||
		    (p->mode != MTASTS_MODE_NONE && p->nmx == 0))
			abort();
		for (i = 0; i < p->nmx; i++) {
			if (strlen(p->mx[i]) >= sizeof(p->mx[i]))
				abort();
			if (p->mx[i][0] != '*' &&
			    !mtasts_mx_match(p->mx[i], p->mx[i]))
				abort();
		}
	}
	free(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char		*s = (const char *)data, *body;
	char			 id[MTASTS_ID_SIZE], why[256];
	struct dkim_key_record	 dk;
	size_t			 blen, i;

	if (mtasts_txt_parse(s, size, id, sizeof(id), why, sizeof(why)) ==
	    0) {
		if (id[0] == '\0' || strlen(id) > 32)
			abort();
		for (i = 0; id[i] != '\0'; i++)
			if (!isalnum((unsigned char)id[i]))
				abort();
	}
	check_policy(s, size);
	if (mtasts_http_parse(s, size, &body, &blen, why, sizeof(why)) == 0) {
		if (body < s || body + blen > s + size ||
		    blen > MTASTS_POLICY_MAX)
			abort();
		check_policy(body, blen);
	}
	if (dkim_record_parse(s, size, &dk, why, sizeof(why)) == 0 &&
	    (strlen(dk.p) >= sizeof(dk.p) || strlen(dk.k) >= sizeof(dk.k)))
		abort();
	if (size > 1) {
		/* Two NUL-terminated halves as pattern and host. */
		char	*a = strndup(s, size / 2), *b = strndup(s + size / 2,
			    size - size / 2);

		if (a == NULL || b == NULL)
			abort();
		(void)mtasts_mx_match(a, b);
		free(a);
		free(b);
	}
	return (0);
}
