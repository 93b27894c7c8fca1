/*
 * passwd.c - `mxfb passwd`: read a password and print its hash in the
 * form a Dovecot passwd-file (and mxfb's `users`) reads:
 * {ARGON2ID}$argon2id$v=19$m=...,t=...,p=1$SALT$HASH.  libsodium's
 * crypto_pwhash_str with Argon2id (the same encoding Dovecot's
 * `doveadm pw -s ARGON2ID` makes and verifies); Dovecot refuses the
 * form without the scheme prefix.
 *
 * On a terminal the password is asked for twice, without echo; from a
 * pipe it is one line (its line end is not part of it).  The password
 * is wiped from memory once hashed.  Needs no configuration (-C is
 * accepted, as by every command).
 */
#include <errno.h>
#include <getopt.h>
#include <readpassphrase.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cmd/cmd.h"
#include "core/util.h"

#define USAGE		"mxfb passwd [-C file]"
#define PASSWORD_MAX	1024
#define SCHEME		"{ARGON2ID}"

static int	 read_terminal(char *, size_t);
static int	 read_pipe(char *, size_t);

/* Twice, echo off; 0, or an exit status with the reason printed. */
static int
read_terminal(char *pw, size_t size)
{
	char	 again[PASSWORD_MAX + 1];
	int	 same;

	if (readpassphrase("Password: ", pw, size, RPP_REQUIRE_TTY) == NULL ||
	    readpassphrase("Again: ", again, sizeof(again),
	    RPP_REQUIRE_TTY) == NULL) {
		fprintf(stderr, "mxfb: passwd: cannot read the password: "
		    "%s\n", strerror(errno));
		return (EXIT_IOERR);
	}
	same = strcmp(pw, again) == 0;
	sodium_memzero(again, sizeof(again));
	if (!same) {
		fprintf(stderr, "mxfb: passwd: the passwords differ\n");
		return (EXIT_DATAERR);
	}
	return (0);
}

/* One line from standard input, without its LF or CRLF. */
static int
read_pipe(char *pw, size_t size)
{
	size_t	 len;
	int	 c;

	if (fgets(pw, (int)size, stdin) == NULL) {
		if (ferror(stdin)) {
			fprintf(stderr, "mxfb: passwd: standard input: %s\n",
			    strerror(errno));
			return (EXIT_IOERR);
		}
		pw[0] = '\0';
		return (0);
	}
	len = strlen(pw);
	if (len > 0 && pw[len - 1] == '\n')
		pw[--len] = '\0';
	else if ((c = getchar()) != EOF) {
		fprintf(stderr, "mxfb: passwd: the password is longer than "
		    "%d bytes\n", PASSWORD_MAX);
		return (EXIT_DATAERR);
	}
	if (len > 0 && pw[len - 1] == '\r')
		pw[--len] = '\0';
	return (0);
}

int
cmd_passwd(int argc, char **argv)
{
	char	 pw[PASSWORD_MAX + 2];
	char	 hash[crypto_pwhash_STRBYTES];
	int	 ch, rc;

	while ((ch = getopt(argc, argv, "C:h")) != -1) {
		switch (ch) {
		case 'C':	/* as every command; no configuration needed */
			cmd_set_config_file(optarg);
			break;
		case 'h':
			cmd_usage(USAGE, 1);
		default:
			cmd_usage(USAGE, 0);
		}
	}
	if (argc != optind)
		cmd_usage(USAGE, 0);
	if (sodium_init() == -1) {
		fprintf(stderr, "mxfb: passwd: libsodium cannot start\n");
		return (EXIT_SOFTWARE);
	}
	rc = isatty(STDIN_FILENO) ? read_terminal(pw, sizeof(pw)) :
	    read_pipe(pw, sizeof(pw));
	if (rc == 0 && pw[0] == '\0') {
		fprintf(stderr, "mxfb: passwd: empty password refused\n");
		rc = EXIT_DATAERR;
	}
	if (rc == 0 && crypto_pwhash_str_alg(hash, pw, strlen(pw),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE,
	    crypto_pwhash_ALG_ARGON2ID13) != 0) {
		fprintf(stderr, "mxfb: passwd: out of memory hashing\n");
		rc = EXIT_SOFTWARE;
	}
	sodium_memzero(pw, sizeof(pw));
	if (rc != 0)
		return (rc);
	printf("%s%s\n", SCHEME, hash);
	return (0);
}
