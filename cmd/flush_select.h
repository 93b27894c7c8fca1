/*
 * flush_select.h - which messages a flush run takes, and for which
 * recipient domains: the decision alone, over one envelope and the
 * run's criteria (no spool, no configuration, no clock), so that every
 * rule can be tested by itself.  flush.c reads the queue, holds back a
 * notification its original has not recorded yet (that needs the
 * spool), and acts on the answers.
 */
#ifndef MXFB_FLUSH_SELECT_H
#define MXFB_FLUSH_SELECT_H

#include <stddef.h>
#include <time.h>

#include "core/util.h"

struct envelope;

/* What `flush [-f] [-d domain] [ID...]` asked for. */
struct flush_criteria {
	int		  force;	/* -f: due or not */
	const char	 *domain;	/* -d, as address_domain_typed made it */
	char		**ids;		/* the IDs named (none: every message) */
	size_t		  nids;
	time_t		  now;		/* when the run started */
};

enum flush_take {
	FLUSH_SKIP,		/* nothing for this run */
	FLUSH_REMOVE,		/* finished, only its removal is left */
	FLUSH_DELIVER		/* deliver to pick->domains */
};

/* The domains a message goes to in this run, for FLUSH_DELIVER. */
struct flush_pick {
	char		(*domains)[DOMAIN_NAME_SIZE];	/* first seen first */
	size_t		  ndomains;
	int		  multi;	/* pending recipients in several domains */
};

/*
 * May this run try the message at all?  Not when it is held or claimed
 * (another process has it); with IDs, only a named one (due or not);
 * without, only a due one (next_retry reached) unless forced.
 */
int	 flush_due(const struct flush_criteria *, const struct envelope *);

/*
 * For a due message: FLUSH_REMOVE when every recipient is finished (a
 * crash came between the last update and the removal), in a run without
 * -d only; FLUSH_DELIVER with each domain that has a pending recipient
 * (the -d domain only, when given) once, in the order of its first
 * recipient; else FLUSH_SKIP.  pick is filled for FLUSH_DELIVER and must
 * then be released with flush_pick_free.
 */
enum flush_take flush_pick(const struct flush_criteria *,
	    const struct envelope *, struct flush_pick *);
void	 flush_pick_free(struct flush_pick *);

#endif
