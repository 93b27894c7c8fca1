/*
 * dkim_sign.c - a test helper, built by the Makefile for the tests only
 * and never installed: runs core/dkim.c on a message so that
 * tests/integration/test_dkim.py can check its signatures with an
 * independent verifier (dkimpy).
 *
 *	dkim_sign DOMAIN SELECTOR KEYFILE TIME <MESSAGE
 *		the DKIM-Signature field for MESSAGE with that key
 *	dkim_sign -c CONFIG TIME <MESSAGE
 *		the fields acceptance would prepend: the configuration's
 *		`dkim` keys (read as every command reads them), the key
 *		chosen by the From domain; nothing when none applies
 *	dkim_sign -r DOMAIN SELECTOR KEYFILE
 *		the TXT record to publish, then its name, one a line
 *
 * Exit 0, or 1 with the reason on stderr (78 for a configuration).
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/dkim.h"
#include "core/util.h"

static char	*read_stdin(size_t *);
static time_t	 parse_time(const char *);
static int	 put(const char *, size_t);
static int	 sign_config(const char *, const char *);
static int	 record(const char *, const char *, const char *);

static char *
read_stdin(size_t *len)
{
	char	*p = NULL;
	size_t	 cap = 0;
	ssize_t	 n;

	*len = 0;
	for (;;) {
		if (*len == cap) {
			cap = cap ? cap * 2 : 65536;
			p = xreallocarray(p, cap, 1);
		}
		if ((n = read(0, p + *len, cap - *len)) == -1) {
			perror("dkim_sign: stdin");
			exit(1);
		}
		if (n == 0)
			return (p);
		*len += (size_t)n;
	}
}

static time_t
parse_time(const char *s)
{
	const char	*errstr;
	long long	 t;

	t = strtonum(s, 0, 1LL << 40, &errstr);
	if (errstr != NULL) {
		fprintf(stderr, "dkim_sign: time %s: %s\n", s, errstr);
		exit(1);
	}
	return ((time_t)t);
}

static int
put(const char *p, size_t len)
{
	if (len > 0 && fwrite(p, 1, len, stdout) != len)
		return (1);
	return (fflush(stdout) == EOF);
}

/* -c CONFIG TIME: sign as acceptance would; everything freed on every path. */
static int
sign_config(const char *conf, const char *when)
{
	struct config	 c;
	char		 err[1024], *msg, *out = NULL;
	size_t		 len, outlen = 0;
	int		 rc;

	if (config_parse_file(conf, &c, err, sizeof(err)) == -1) {
		fprintf(stderr, "dkim_sign: %s\n", err);
		return (EXIT_CONFIG);
	}
	msg = read_stdin(&len);
	if (dkim_sign_message(c.dkim, c.ndkim, msg, len, parse_time(when),
	    &out, &outlen, err, sizeof(err)) == -1) {
		fprintf(stderr, "dkim_sign: %s\n", err);
		rc = 1;
	} else
		rc = put(out, outlen);
	free(out);
	free(msg);
	config_free(&c);
	return (rc);
}

/* -r DOMAIN SELECTOR KEYFILE: the TXT record and its name. */
static int
record(const char *domain, const char *selector, const char *file)
{
	struct dkim_key	*k;
	char		 err[1024], name[DOMAIN_NAME_SIZE * 2], *out;
	int		 rc = 1;

	if ((k = dkim_key_load(domain, selector, file, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "dkim_sign: %s\n", err);
		return (1);
	}
	if ((out = dkim_dns_record(k)) != NULL &&
	    dkim_dns_name(k, name, sizeof(name)) == 0) {
		printf("%s\n%s\n", out, name);
		rc = fflush(stdout) == EOF;
	}
	free(out);
	dkim_key_free(k);
	return (rc);
}

int
main(int argc, char *argv[])
{
	struct dkim_key	*k;
	char		 err[1024], *msg, *out = NULL;
	size_t		 len, outlen = 0;
	int		 rc;

	if (argc == 4 && strcmp(argv[1], "-c") == 0)
		return (sign_config(argv[2], argv[3]));
	if (argc == 5 && strcmp(argv[1], "-r") == 0)
		return (record(argv[2], argv[3], argv[4]));
	if (argc != 5) {
		fprintf(stderr, "usage: dkim_sign DOMAIN SELECTOR KEYFILE TIME "
		    "<MESSAGE\n       dkim_sign -c CONFIG TIME <MESSAGE\n"
		    "       dkim_sign -r DOMAIN SELECTOR KEYFILE\n");
		return (1);
	}
	if ((k = dkim_key_load(argv[1], argv[2], argv[3], err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "dkim_sign: %s\n", err);
		return (1);
	}
	msg = read_stdin(&len);
	if (dkim_sign(k, msg, len, parse_time(argv[4]), &out, &outlen, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "dkim_sign: %s\n", err);
		rc = 1;
	} else
		rc = put(out, outlen);
	free(out);
	free(msg);
	dkim_key_free(k);
	return (rc);
}
