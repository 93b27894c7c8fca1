/*
 * queue_ops.c - queue surgery: hold, release and delete by queue ID.
 *
 * Guarantees: every ID argument is checked for syntax before the
 * configuration or the spool is even opened (exit 64, nothing touched).
 * Then each message is handled in turn and the outcome of each is
 * logged ("QUEUEID: held by administrator (uid N)").  A missing message
 * does not stop the others: exit 1 at the end.  A message claimed by a
 * running flush or bounce cannot be changed under it: "busy, try again"
 * and exit 75 at the end (takes precedence over 1).
 */
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

static int	 message_exists(struct spool *, const char *);

/*
 * The spool reports ENOENT both for a message that is not there and
 * for one that is claimed; a claimed message still has an envelope
 * that can be read, a missing one has not.
 */
static int
message_exists(struct spool *sp, const char *id)
{
	struct envelope	 env;

	memset(&env, 0, sizeof(env));
	if (spool_read_envelope(sp, id, &env) == -1)
		return (0);
	envelope_free(&env);
	return (1);
}

int
queue_op_run(const struct queue_op *op, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help",	no_argument,	NULL, 'h' },
		{ NULL,		0,		NULL, 0 }
	};
	struct spool	*sp;
	int		 ch, i, missing = 0, busy = 0;

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
	sp = cmd_open_spool(0);
	for (i = 0; i < argc; i++) {
		if (op->act(sp, argv[i]) == 0) {
			log_info("%s: %s by administrator (uid %lu)", argv[i],
			    op->done, (unsigned long)getuid());
			continue;
		}
		if (errno == EBUSY || (errno == ENOENT &&
		    message_exists(sp, argv[i]))) {
			log_cmd_errorx("%s: busy (being delivered or bounced), "
			    "try again", argv[i]);
			busy = 1;
		} else if (errno == ENOENT) {
			log_cmd_errorx("%s: no such message", argv[i]);
			missing = 1;
		} else {
			log_cmd_error("%s", argv[i]);
			busy = 1;
		}
	}
	spool_close(sp);
	if (busy)
		return (EXIT_TEMPFAIL);
	return (missing ? 1 : 0);
}
