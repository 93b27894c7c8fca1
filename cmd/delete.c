/* delete.c - placeholder until the command lands (replaced by its owner). */
#include <stdio.h>
#include "cmd/cmd.h"
#include "core/util.h"

int
cmd_delete(int argc, char **argv)
{
	fprintf(stderr, "mxfb: delete: not built yet\n");
	return (EXIT_SOFTWARE);
}
