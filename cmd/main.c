/*
 * main.c - the multi-call dispatcher.  "mxfb COMMAND ..." or, through a
 * link, "mxfb-COMMAND ...": argv[0]'s basename picks the command.
 */
#include <err.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/util.h"
#include "core/log.h"

struct command {
	const char	*name;
	int		(*run)(int, char **);
	const char	*summary;
};

/* Sorted by name. */
static const struct command commands[] = {
	{ "bounce",	cmd_bounce,	"return failed and expired mail to its senders" },
	{ "check",	cmd_check,	"lint the relay domains' MX, MTA-STS, DANE and TLS (monitoring plugin)" },
	{ "delete",	cmd_delete,	"remove messages from the queue" },
	{ "flush",	cmd_flush,	"deliver queued mail to the primaries" },
	{ "hold",	cmd_hold,	"keep messages from delivery and bounce" },
	{ "inject",	cmd_inject,	"queue a message read from stdin" },
	{ "passwd",	cmd_passwd,	"hash a password for Dovecot and users" },
	{ "probe",	cmd_probe,	"check that the primaries answer (monitoring plugin)" },
	{ "receive",	cmd_receive,	"SMTP server: inetd session or -l listener" },
	{ "release",	cmd_release,	"undo hold" },
	{ "status",	cmd_status,	"list the queue" },
	{ "verify",	cmd_verify,	"what is known about recipients" },
};

static const struct command *find_command(const char *);
static void usage(int) __attribute__((noreturn));
static int run(const struct command *, int, char **);

static const struct command *
find_command(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return (&commands[i]);
	return (NULL);
}

static void
usage(int help)
{
	FILE	*f = help ? stdout : stderr;
	size_t	 i;

	fprintf(f, "usage: mxfb [-C file] command [options] [args]\n"
	    "       mxfb -V | --version\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name,
		    commands[i].summary);
	fprintf(f, "\n'mxfb COMMAND -h' shows a command's options.\n");
	exit(help ? 0 : EXIT_USAGE);
}

static int
run(const struct command *c, int argc, char **argv)
{
	static char	 prefix[64];
	int		 rc;

	log_set_command(c->name);
	/*
	 * getopt(3) prefixes its messages with argv[0]: make them read
	 * "mxfb: status: invalid option -- 'x'" like every other error.
	 */
	(void)snprintf(prefix, sizeof(prefix), "mxfb: %s", c->name);
	argv[0] = prefix;
	/* Every command takes --help as its -h. */
	if (argc > 1 && strcmp(argv[1], "--help") == 0)
		argv[1] = (char *)"-h";
	optind = 0;		/* glibc: full re-initialisation */
	rc = c->run(argc, argv);
	/* Output that never reached its destination is a failure. */
	if (fflush(stdout) == EOF || ferror(stdout)) {
		log_cmd_error("standard output");
		if (rc == 0)
			rc = EXIT_IOERR;
	}
	return (rc);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "help",	no_argument,	NULL, 'h' },
		{ "version",	no_argument,	NULL, 'V' },
		{ NULL,		0,		NULL, 0 }
	};
	const struct command *c;
	const char	*base;
	int		 ch;

	if (argc < 1)
		usage(0);
	base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	if (strncmp(base, "mxfb-", 5) == 0) {
		if ((c = find_command(base + 5)) == NULL) {
			fprintf(stderr, "mxfb: unknown command: %s\n", base + 5);
			return (EXIT_USAGE);
		}
		return (run(c, argc, argv));
	}

	while ((ch = getopt_long(argc, argv, "+C:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			cmd_set_config_file(optarg);
			break;
		case 'h':
			usage(1);
		case 'V':
			printf("mxfb %s\n", MXFB_VERSION);
			return (fflush(stdout) == EOF ? EXIT_IOERR : 0);
		default:
			usage(0);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage(0);
	if ((c = find_command(argv[0])) == NULL) {
		fprintf(stderr, "mxfb: unknown command: %s\n", argv[0]);
		usage(0);
	}
	return (run(c, argc, argv));
}
