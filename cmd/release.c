/*
 * release.c - `mxfb release ID...`: undo hold; the messages become due
 * for delivery and bounce again.
 * The work is shared with the other queue surgery commands (queue_ops.c).
 */
#include "cmd/cmd.h"
#include "cmd/queue_ops.h"
#include "spool/spool.h"

int
cmd_release(int argc, char **argv)
{
	static const struct queue_op op = {
		"mxfb release [-C file] ID ...",
		spool_release,
		"released",
		0,
		"not held"
	};

	return (queue_op_run(&op, argc, argv));
}
