/*
 * queue_ops.c - what the administrator's queue commands share: opening
 * an existing spool read-only (status too), and queue surgery: hold,
 * release and delete by queue ID.
 *
 * Guarantees: every ID argument is checked for syntax before the
 * configuration or the spool is even opened (exit 64, nothing touched).
 * Then each message is handled in turn and the outcome of each is
 * logged ("QUEUEID: held by administrator (uid N)").  A missing message
 * does not stop the others: exit 1 at the end.  Holding a held message
 * or releasing one that is not held changes nothing and is no error.
 * A message claimed by a running flush or bounce cannot be changed
 * under it: "busy, try again" and exit 75 at the end.  Any other
 * failure is an I/O error (74).  The worst outcome decides the exit
 * status: 75, then 74, then 1.
 */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/queue_ops.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "spool/spool.h"

struct spool *
queue_open_existing(void)
{
	struct spool	*sp;
	struct stat	 st;

	if (spool_open(cfg->spool, 0, &sp) == 0) {
		cmd_spool_mailbox(sp);
		return (sp);
	}
	/*
	 * Not made yet: the first receive or inject makes the tree.  A
	 * read-only command must not make it (as root it would leave
	 * directories the mail user cannot write).
	 */
	if (errno == ENOENT && stat(cfg->spool, &st) == 0 &&
	    S_ISDIR(st.st_mode))
		return (NULL);
	return (cmd_open_spool(0));	/* reports the error and exits */
}

enum presence { MISSING, PRESENT, PRESENT_HELD, PRESENT_CLAIMED };

static enum presence message_presence(struct spool *, const char *);

/*
 * The spool reports ENOENT for a message that is not there, for one
 * that is claimed, and for one that is not in the state the operation
 * starts from (release of a message that is not held).  A message that
 * is still there has an envelope that can be read.
 */
static enum presence
message_presence(struct spool *sp, const char *id)
{
	struct envelope	 env;
	enum presence	 p;

	memset(&env, 0, sizeof(env));
	if (spool_read_envelope(sp, id, &env) == -1)
		return (MISSING);
	if (env.claimed)
		p = PRESENT_CLAIMED;
	else
		p = env.held ? PRESENT_HELD : PRESENT;
	envelope_free(&env);
	return (p);
}

int
queue_op_run(const struct queue_op *op, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help",	no_argument,	NULL, 'h' },
		{ NULL,		0,		NULL, 0 }
	};
	struct spool	*sp;
	enum presence	 p;
	int		 ch, i, missing = 0, busy = 0, ioerr = 0;

	while ((ch = getopt_long(argc, argv, "C:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			cmd_set_config_file(optarg);
			break;
		case 'h':
			cmd_usage(op->usage, 1);
		default:
			cmd_usage(op->usage, 0);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		cmd_usage(op->usage, 0);
	cmd_check_ids(argc, argv);

	cmd_load_config();
	cmd_become_user(0);
	if ((sp = queue_open_existing()) == NULL) {
		for (i = 0; i < argc; i++)
			log_cmd_errorx("%s: no such message", argv[i]);
		return (1);
	}
	for (i = 0; i < argc; i++) {
		if (op->act(sp, argv[i]) == 0) {
			log_info("%s: %s by administrator (uid %lu)", argv[i],
			    op->done, cmd_caller_uid());
			continue;
		}
		if (errno == ENOENT) {
			p = message_presence(sp, argv[i]);
			if (p == MISSING) {
				log_cmd_errorx("%s: no such message", argv[i]);
				missing = 1;
			} else if (p != PRESENT_CLAIMED &&
			    op->target_held != -1 &&
			    (p == PRESENT_HELD) == op->target_held) {
				/* Nothing to do: hold and release repeat. */
				log_cmd_errorx("%s: %s", argv[i], op->already);
			} else {
				log_cmd_errorx("%s: busy (being delivered or "
				    "bounced), try again", argv[i]);
				busy = 1;
			}
		} else if (errno == EBUSY) {
			log_cmd_errorx("%s: busy (being delivered or "
			    "bounced), try again", argv[i]);
			busy = 1;
		} else {
			log_cmd_error("%s", argv[i]);
			ioerr = 1;
		}
	}
	spool_close(sp);
	if (busy)
		return (EXIT_TEMPFAIL);
	if (ioerr)
		return (EXIT_IOERR);
	return (missing ? 1 : 0);
}
