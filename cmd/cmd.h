/*
 * cmd.h - the commands of the multi-call binary, and the glue they share:
 * -C handling, configuration loading, spool opening, queue ID checks.
 */
#ifndef MXFB_CMD_H
#define MXFB_CMD_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct spool;

int	 cmd_receive(int, char **);
int	 cmd_probe(int, char **);
int	 cmd_flush(int, char **);
int	 cmd_bounce(int, char **);
int	 cmd_status(int, char **);
int	 cmd_inject(int, char **);
int	 cmd_hold(int, char **);
int	 cmd_release(int, char **);
int	 cmd_delete(int, char **);
int	 cmd_verify(int, char **);
int	 cmd_passwd(int, char **);
int	 cmd_check(int, char **);

/*
 * The queue per destination domain, as `status -s` counts it (a message
 * once per domain it still has recipients in, held ones too): fn gets
 * each domain (lower case), its messages and the oldest arrival.  0, or
 * -1 when the spool cannot be listed (fn then not called) or fn failed.
 */
typedef int (*status_domain_fn)(void *, const char *, uint64_t, time_t);
int	 status_queue_domains(struct spool *, status_domain_fn, void *);

/* The configuration file named by -C (before the command or among its
 * options); NULL means $MXFB_CONFIG or the default. */
void	 cmd_set_config_file(const char *);
/* Load the configuration and start logging; exits 78 on error. */
void	 cmd_load_config(void);
/* The same with another exit status (probe: 3, as monitoring plugins). */
void	 cmd_load_config_or_exit(int);
/* Load without exiting: -1 with "file:line: reason" in err. */
int	 cmd_try_load_config(char *err, size_t errsize);
/*
 * Started as root (euid 0): become the `user` account for good, after
 * the configuration and the secrets were read and the sockets bound,
 * before any network input is read or the spool opened.  With
 * create_spool, a missing spool directory is made first and handed to
 * the user.  Not root: nothing.  Returns 0, or an exit status (78: no
 * such account, or it is root; 73: the spool could not be made; 70: the
 * switch failed) with the reason in err.
 */
int	 cmd_try_become_user(int create_spool, char *err, size_t errsize);
/* The same; exits with that status on failure. */
void	 cmd_become_user(int create_spool);
/* The real uid that started the command (before any switch). */
unsigned long cmd_caller_uid(void);
/* Open the spool (creating it with create); exits 73/74 on error. */
struct spool *cmd_open_spool(int create);
/* Hand the spool the outage mailbox's settings (mailbox, if set). */
void	 cmd_spool_mailbox(struct spool *);
/* Exit 64 with a message unless every argv[0..argc) is a queue ID. */
void	 cmd_check_ids(int argc, char **argv);
/* Start `mxfb -C FILE flush -f -d DOMAIN` detached; 0 once started. */
int	 cmd_spawn_flush(const char *domain);
/* "usage: mxfb COMMAND ..." to stderr (or stdout for -h) and exit. */
void	 cmd_usage(const char *usage, int help) __attribute__((noreturn));

#endif
