/*
 * queue_ops.h - what the administrator's queue commands share: opening
 * the spool read-only (status, hold, release, delete), and the queue
 * surgery of hold, release and delete (every ID validated before
 * anything is touched, then each acted upon and logged).
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

/*
 * Open the spool without creating anything.  A spool directory that
 * exists but was never initialised (no mail has arrived yet) is an
 * empty queue: NULL is returned.  Any other failure exits (73/74).
 */
struct spool *queue_open_existing(void);

/* Parse options, act on every ID; returns the command's exit status. */
int	 queue_op_run(const struct queue_op *, int, char **);

#endif
