/*
 * sasl.c - decoders of SASL PLAIN and LOGIN responses (see sasl.h).
 * The base64 is libsodium's constant-time decoder with the original
 * alphabet and padding required; every other step is a bounded copy.
 * Intermediate buffers that held a secret are wiped before returning.
 */
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "core/sasl.h"

static enum sasl_result	 copy_field(const unsigned char *, size_t, char *,
			    size_t);

enum sasl_mech
sasl_mech_parse(const char *s, size_t len)
{
	if (len == 5 && strncasecmp(s, "PLAIN", 5) == 0)
		return (SASL_PLAIN);
	if (len == 5 && strncasecmp(s, "LOGIN", 5) == 0)
		return (SASL_LOGIN);
	return (SASL_NONE);
}

const char *
sasl_mech_name(enum sasl_mech m)
{
	switch (m) {
	case SASL_PLAIN:
		return ("PLAIN");
	case SASL_LOGIN:
		return ("LOGIN");
	default:
		return ("NONE");
	}
}

void
sasl_wipe(void *p, size_t len)
{
	sodium_memzero(p, len);
}

void
sasl_creds_clear(struct sasl_creds *c)
{
	sodium_memzero(c, sizeof(*c));
}

enum sasl_result
sasl_base64_decode(const char *in, size_t len, unsigned char *out,
    size_t size, size_t *outlen)
{
	const char	*end;

	*outlen = 0;
	if (len == 1 && in[0] == '=')
		return (SASL_OK);
	/* Four characters make at most three octets. */
	if (len == 0 || len % 4 != 0 || len / 4 * 3 > size + 2)
		return (SASL_BAD_BASE64);
	if (sodium_base642bin(out, size, in, len, NULL, outlen, &end,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || end != in + len) {
		sodium_memzero(out, size);
		*outlen = 0;
		return (SASL_BAD_BASE64);
	}
	return (SASL_OK);
}

/* A field of len octets into out: not empty, no NUL, fits. */
static enum sasl_result
copy_field(const unsigned char *p, size_t len, char *out, size_t size)
{
	if (len == 0 || len >= size || memchr(p, '\0', len) != NULL)
		return (SASL_BAD_FORMAT);
	memcpy(out, p, len);
	out[len] = '\0';
	return (SASL_OK);
}

enum sasl_result
sasl_plain_decode(const char *b64, size_t len, struct sasl_creds *c)
{
	unsigned char	 buf[SASL_RESPONSE_MAX];
	unsigned char	*authcid, *pass;
	size_t		 n, zlen, clen;
	enum sasl_result r;

	sasl_creds_clear(c);
	if ((r = sasl_base64_decode(b64, len, buf, sizeof(buf), &n)) !=
	    SASL_OK)
		return (r);
	r = SASL_BAD_FORMAT;
	if ((authcid = memchr(buf, '\0', n)) == NULL)
		goto done;
	zlen = (size_t)(authcid - buf);
	authcid++;
	if ((pass = memchr(authcid, '\0', n - zlen - 1)) == NULL)
		goto done;
	clen = (size_t)(pass - authcid);
	pass++;
	if (copy_field(authcid, clen, c->authcid, sizeof(c->authcid)) !=
	    SASL_OK || copy_field(pass, n - zlen - clen - 2, c->password,
	    sizeof(c->password)) != SASL_OK)
		goto done;
	/* RFC 4616: an authzid other than the authcid asks to act for it. */
	if (zlen != 0 && (zlen != clen || memcmp(buf, authcid, zlen) != 0)) {
		r = SASL_BAD_AUTHZID;
		goto done;
	}
	r = SASL_OK;
done:
	if (r != SASL_OK)
		sasl_creds_clear(c);
	sodium_memzero(buf, sizeof(buf));
	return (r);
}

enum sasl_result
sasl_login_decode(const char *b64, size_t len, char *out, size_t size)
{
	unsigned char	 buf[SASL_RESPONSE_MAX];
	size_t		 n;
	enum sasl_result r;

	out[0] = '\0';
	if ((r = sasl_base64_decode(b64, len, buf, sizeof(buf), &n)) ==
	    SASL_OK)
		r = copy_field(buf, n, out, size);
	sodium_memzero(buf, sizeof(buf));
	return (r);
}
