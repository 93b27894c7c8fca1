/*
 * common.c - what every command shares: the -C file, loading the
 * configuration (exit 78 on error), giving up root for the `user`
 * account, opening the spool, checking IDs, starting a detached flush
 * (ETRN, probe -F).
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
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
/* getuid() before the switch, for the logs; -1: not taken yet. */
static uid_t	 caller_uid = (uid_t)-1;

static int	 user_error(char *, size_t, const char *);

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

/* "file:line: user NAME: why" (the default has no line). */
static int
user_error(char *err, size_t errsize, const char *why)
{
	if (cfg->user_line > 0)
		(void)snprintf(err, errsize, "%s:%zu: user %s: %s", cfg->file,
		    cfg->user_line, cfg->user, why);
	else
		(void)snprintf(err, errsize, "%s: user %s (the default): %s",
		    cfg->file, cfg->user, why);
	return (EXIT_CONFIG);
}

/*
 * As Postfix's and qmail's programs do: root is kept only for what needs
 * it (binding port 25, reading keys only root may read, making the
 * spool), then given up for good before anything from outside is
 * parsed.  The spool, the recipients file and what is written are the
 * user's; a process that was root and could become root again has
 * gained nothing, so that is verified too.
 */
int
cmd_try_become_user(int create_spool, char *err, size_t errsize)
{
	struct passwd	*pw;
	char		 name[sizeof(cfg->user)];
	uid_t		 uid;
	gid_t		 gid;

	if (caller_uid == (uid_t)-1)
		caller_uid = getuid();
	if (geteuid() != 0)
		return (0);
	errno = 0;
	if ((pw = getpwnam(cfg->user)) == NULL)
		return (user_error(err, errsize, errno != 0 &&
		    errno != ENOENT && errno != ESRCH ? strerror(errno) :
		    "no such account (make it with useradd --system, or "
		    "name another)"));
	if (pw->pw_uid == 0)
		return (user_error(err, errsize, "is root (uid 0): name an "
		    "unprivileged account"));
	(void)strlcpy(name, pw->pw_name, sizeof(name));
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (create_spool && spool_create_dir(cfg->spool, uid, gid) == -1) {
		(void)snprintf(err, errsize, "spool %s: %s", cfg->spool,
		    strerror(errno));
		return (EXIT_CANTCREAT);
	}
	if (initgroups(name, gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1) {
		(void)snprintf(err, errsize, "becoming user %s (uid %lu): %s",
		    name, (unsigned long)uid, strerror(errno));
		return (EXIT_SOFTWARE);
	}
	if (setuid(0) != -1 || seteuid(0) != -1 || getuid() != uid ||
	    geteuid() != uid || getgid() != gid || getegid() != gid) {
		(void)snprintf(err, errsize, "user %s: root could be regained "
		    "after the switch", name);
		return (EXIT_SOFTWARE);
	}
	return (0);
}

void
cmd_become_user(int create_spool)
{
	char	 err[1024];
	int	 status;

	if ((status = cmd_try_become_user(create_spool, err,
	    sizeof(err))) != 0) {
		log_cmd_errorx("%s", err);
		exit(status);
	}
}

unsigned long
cmd_caller_uid(void)
{
	return ((unsigned long)(caller_uid == (uid_t)-1 ? getuid() :
	    caller_uid));
}

struct spool *
cmd_open_spool(int create)
{
	struct spool	*sp;

	if (spool_open(cfg->spool, create, &sp) == -1) {
		/* Root handed the work to `user`: the spool must be its. */
		if (errno == EACCES && caller_uid == 0 && geteuid() != 0)
			log_cmd_error("spool %s (it must belong to user %s)",
			    cfg->spool, cfg->user);
		else
			log_cmd_error("spool %s", cfg->spool);
		exit(errno == ENOENT || errno == EACCES ? EXIT_CANTCREAT :
		    EXIT_IOERR);
	}
	cmd_spool_mailbox(sp);
	return (sp);
}

void
cmd_spool_mailbox(struct spool *sp)
{
	struct spool_mailbox	 mb;

	if (sp == NULL || cfg->mailbox[0] == '\0')
		return;
	mb.dir = cfg->mailbox;
	mb.max_size = cfg->mailbox_max_size;
	mb.keep = cfg->mailbox_keep;
	spool_set_mailbox(sp, &mb);
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
	char		*argv[8], dom[DOMAIN_NAME_SIZE];
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
