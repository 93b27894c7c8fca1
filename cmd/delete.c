/*
 * delete.c - `mxfb delete ID...`: remove messages from the queue,
 * without a delivery status notification (`bounce ID` returns them).
 * The work is shared with the other queue surgery commands (queue_ops.c).
 */
#include "cmd/cmd.h"
#include "cmd/queue_ops.h"
#include "spool/spool.h"

int
cmd_delete(int argc, char **argv)
{
	static const struct queue_op op = {
		"mxfb delete [-C file] ID ...",
		spool_delete,
		"deleted",
		-1,
		NULL
	};

	return (queue_op_run(&op, argc, argv));
}
