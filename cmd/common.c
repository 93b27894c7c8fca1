/*
 * common.c - what every command shares: the -C file, loading the
 * configuration (exit 78 on error), opening the spool, checking IDs,
 * starting a detached flush (ETRN, probe -F).
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/*
 * `mxfb -C FILE flush -f -d DOMAIN`, detached (double fork, setsid,
 * stdio on /dev/null) so that the caller (an SMTP session, probe) never
 * waits for it.  Always this binary (/proc/self/exe): nothing a client
 * or the environment says can make an ETRN run another program.
 */
int
cmd_spawn_flush(const char *domain)
{
	char		*argv[8], dom[256];
	pid_t		 pid;
	int		 fd, status;

	if (strlcpy(dom, domain, sizeof(dom)) >= sizeof(dom))
		return (-1);
	ascii_lower(dom);
	if ((pid = fork()) == -1) {
		log_warn("flush %s: fork", dom);
		return (-1);
	}
	if (pid == 0) {
		if (setsid() == -1)
			_exit(1);
		if ((pid = fork()) == -1)
			_exit(1);
		if (pid > 0)
			_exit(0);
		if ((fd = open("/dev/null", O_RDWR)) == -1 ||
		    dup2(fd, 0) == -1 || dup2(fd, 1) == -1 ||
		    dup2(fd, 2) == -1)
			_exit(1);
		if (fd > 2)
			(void)close(fd);
		closefrom(3);
		argv[0] = (char *)"mxfb";
		argv[1] = (char *)"-C";
		argv[2] = (char *)cfg->file;
		argv[3] = (char *)"flush";
		argv[4] = (char *)"-f";
		argv[5] = (char *)"-d";
		argv[6] = dom;
		argv[7] = NULL;
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) == -1) {
		if (errno != EINTR) {
			log_warn("flush %s: waitpid", dom);
			return (-1);
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_warnx("flush %s: could not be started", dom);
		return (-1);
	}
	return (0);
}
