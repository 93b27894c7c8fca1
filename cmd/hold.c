/*
 * hold.c - `mxfb hold ID...`: keep messages in the queue; a held message
 * is never flushed or bounced until it is released.
 * The work is shared with the other queue surgery commands (queue_ops.c).
 */
#include "cmd/cmd.h"
#include "cmd/queue_ops.h"
#include "spool/spool.h"

int
cmd_hold(int argc, char **argv)
{
	static const struct queue_op op = {
		"mxfb hold [-C file] ID ...",
		spool_hold,
		"held",
		1,
		"already held"
	};

	return (queue_op_run(&op, argc, argv));
}
