/*
 * queue_ops.h - queue surgery shared by hold, release and delete: every
 * ID is validated before anything is touched, then each is acted upon
 * and logged.
 */
#ifndef MXFB_QUEUE_OPS_H
#define MXFB_QUEUE_OPS_H

struct spool;

struct queue_op {
	const char	*usage;		/* "mxfb hold [-C file] ID ..." */
	int		(*act)(struct spool *, const char *);
	const char	*done;		/* "held", "released", "deleted" */
	int		 target_held;	/* held afterwards: 1, 0; -1: gone */
	const char	*already;	/* "already held", "not held" */
};

/* Parse options, act on every ID; returns the command's exit status. */
int	 queue_op_run(const struct queue_op *, int, char **);

#endif
