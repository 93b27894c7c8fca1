/*
 * fuzz_dkim.c - libFuzzer target for core/dkim.c's reading of a message
 * (header fields, folding, the body) as a submitted message gives it:
 * the relaxed canonicalization of the whole input as a body and as one
 * header field, the From domain, and a signature over it (an Ed25519
 * key made once).  Checks: a canonical body has no WSP before a CRLF,
 * no two WSP in a row, no empty line at its end and ends in CRLF unless
 * empty; a canonical header field ends in CRLF, its value has
 * no tab, no two SP in a row and no SP before that CRLF; a From
 * domain is a lower-case host name; the signature field is ASCII, ends
 * in CRLF and every CRLF in it is followed by a tab.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/config.h"
#include "core/dkim.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct dkim_key	*key;

static void	 check_body(const char *, size_t);
static void	 check_header(const char *, size_t);
static void	 check_signature(const char *, size_t);
static void	 make_key(void);

static void
make_key(void)
{
	char		 path[] = "/tmp/fuzz_dkim.XXXXXX", err[512];
	EVP_PKEY	*pkey;
	FILE		*f;
	int		 fd;

	if ((pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL ||
	    (fd = mkstemp(path)) == -1 || (f = fdopen(fd, "w")) == NULL ||
	    PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    fclose(f) == EOF)
		abort();
	EVP_PKEY_free(pkey);
	if ((key = dkim_key_load("example.org", "fuzz", path, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	(void)unlink(path);
}

static void
check_body(const char *b, size_t len)
{
	size_t	 i;

	if (len == 0)
		return;
	if (len < 3 || memcmp(b + len - 2, "\r\n", 2) != 0)
		abort();
	if (len >= 4 && memcmp(b + len - 4, "\r\n\r\n", 4) == 0)
		abort();
	for (i = 0; i + 1 < len; i++) {
		if ((b[i] == ' ' || b[i] == '\t') &&
		    (b[i + 1] == ' ' || b[i + 1] == '\t' ||
		    (b[i + 1] == '\r' && i + 2 < len && b[i + 2] == '\n')))
			abort();
		if (b[i] == '\t')
			abort();
	}
}

static void
check_header(const char *h, size_t len)
{
	const char	*colon;
	size_t		 i;

	if (len < 2 || memcmp(h + len - 2, "\r\n", 2) != 0 ||
	    (len > 2 && h[len - 3] == ' '))
		abort();
	if ((colon = memchr(h, ':', len)) != NULL)
		i = (size_t)(colon - h);
	else
		i = 0;
	for (; i + 1 < len; i++)
		if (h[i] == '\t' || (h[i] == ' ' && h[i + 1] == ' '))
			abort();
}

static void
check_signature(const char *s, size_t len)
{
	size_t	 i;

	if (len < 2 || memcmp(s + len - 2, "\r\n", 2) != 0 ||
	    strlen(s) != len)
		abort();
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] > 0x7e)
			abort();
		if (s[i] == '\n' && (s[i - 1] != '\r' ||
		    (i + 1 < len && s[i + 1] != '\t')))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*msg = (const char *)data;
	char		 domain[DOMAIN_NAME_SIZE], err[512], *out;
	size_t		 len, i;

	if (key == NULL)
		make_key();
	out = dkim_canon_body(msg, size, &len);
	check_body(out, len);
	free(out);
	out = dkim_canon_header(msg, size, &len);
	check_header(out, len);
	free(out);
	if (dkim_from_domain(msg, size, domain, sizeof(domain)) == 0) {
		if (!hostname_valid(domain) || domain[0] == '\0' ||
		    domain[strlen(domain) - 1] == '.')
			abort();
		for (i = 0; domain[i] != '\0'; i++)
			if (domain[i] >= 'A' && domain[i] <= 'Z')
				abort();
	}
	if (dkim_sign(key, msg, size, 1700000000, &out, &len, err,
	    sizeof(err)) == -1)
		abort();
	check_signature(out, len);
	free(out);
	return (0);
}
