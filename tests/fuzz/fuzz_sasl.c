/*
 * fuzz_sasl.c - libFuzzer target for the AUTH decoders (core/sasl.c):
 * whatever a client sends as a PLAIN or LOGIN response, and a line of
 * the users file (core/users.c's users_parse_line).  Checks: what is
 * accepted has NUL-terminated, non-empty fields within their limits;
 * PLAIN round-trips (the fields, encoded again, decode to the same);
 * refused input leaves the credentials wiped.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/sasl.h"
#include "core/users.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_plain(const char *in, size_t len)
{
	struct sasl_creds	 c, again;
	char			 raw[SASL_ID_MAX + SASL_PASSWORD_MAX + 4];
	char			 b64[sizeof(raw) * 2];
	size_t			 n, i;

	if (sasl_plain_decode(in, len, &c) != SASL_OK) {
		for (i = 0; i < sizeof(c); i++)
			if (((unsigned char *)&c)[i] != 0)
				abort();
		return;
	}
	n = strlen(c.authcid);
	if (n == 0 || n > SASL_ID_MAX || c.password[0] == '\0' ||
	    strlen(c.password) > SASL_PASSWORD_MAX)
		abort();
	raw[0] = '\0';
	memcpy(raw + 1, c.authcid, n + 1);
	memcpy(raw + n + 2, c.password, strlen(c.password));
	n = n + 2 + strlen(c.password);
	sodium_bin2base64(b64, sizeof(b64), (unsigned char *)raw, n,
	    sodium_base64_VARIANT_ORIGINAL);
	if (sasl_plain_decode(b64, strlen(b64), &again) != SASL_OK ||
	    strcmp(again.authcid, c.authcid) != 0 ||
	    strcmp(again.password, c.password) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	 in[SASL_LINE_MAX + 1], out[SASL_ID_MAX + 1], *a, *h;
	size_t	 n = size < SASL_LINE_MAX ? size : SASL_LINE_MAX;
	int	 r;

	memcpy(in, data, n);
	in[n] = '\0';
	check_plain(in, n);
	if (sasl_login_decode(in, n, out, sizeof(out)) == SASL_OK &&
	    (out[0] == '\0' || strlen(out) > SASL_ID_MAX))
		abort();
	n = strlen(in);
	if (n > USERS_LINE_MAX)
		n = USERS_LINE_MAX;
	in[n] = '\0';
	r = users_parse_line(in, &a, &h);
	if (r == 1 && (a == NULL || strchr(a, '@') == NULL ||
	    (h != NULL && strncmp(h, "$argon2id$", 10) != 0)))
		abort();
	if (r != 1 && (a != NULL || h != NULL))
		abort();
	return (0);
}
