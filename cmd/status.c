/* status.c - placeholder until the command lands (replaced by its owner). */
#include <stdio.h>
#include "cmd/cmd.h"
#include "core/util.h"

int
cmd_status(int argc, char **argv)
{
	fprintf(stderr, "mxfb: status: not built yet\n");
	return (EXIT_SOFTWARE);
}
