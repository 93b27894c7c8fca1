/*
 * common.c - what every command shares: the -C file, loading the
 * configuration (exit 78 on error), opening the spool, checking IDs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "spool/spool.h"

static const char *config_file;

void
cmd_set_config_file(const char *path)
{
	config_file = path;
}

void
cmd_load_config(void)
{
	cmd_load_config_or_exit(EXIT_CONFIG);
}

void
cmd_load_config_or_exit(int status)
{
	char	 err[1024];

	if (cmd_try_load_config(err, sizeof(err)) == -1) {
		log_cmd_errorx("%s", err);
		exit(status);
	}
}

int
cmd_try_load_config(char *err, size_t errsize)
{
	if (config_load(config_file, err, errsize) == -1)
		return (-1);
	log_init("mxfb", cfg->log_stderr);
	return (0);
}

struct spool *
cmd_open_spool(int create)
{
	struct spool	*sp;

	if (spool_open(cfg->spool, create, &sp) == -1) {
		log_cmd_error("spool %s", cfg->spool);
		exit(errno == ENOENT || errno == EACCES ? EXIT_CANTCREAT :
		    EXIT_IOERR);
	}
	return (sp);
}

void
cmd_check_ids(int argc, char **argv)
{
	char	 safe[64];
	int	 i;

	for (i = 0; i < argc; i++) {
		if (!queue_id_valid(argv[i])) {
			log_safe(safe, sizeof(safe), argv[i]);
			log_cmd_errorx("not a queue ID: \"%s\"", safe);
			exit(EXIT_USAGE);
		}
	}
}

void
cmd_usage(const char *text, int help)
{
	fprintf(help ? stdout : stderr, "usage: %s\n", text);
	exit(help ? 0 : EXIT_USAGE);
}
