/*
 * status_hosts.h - the next-hop host view (the host notes flush keeps,
 * spool/INTERNALS 13) for `status -s`, `status -H` and probe.
 */
#ifndef MXFB_STATUS_HOSTS_H
#define MXFB_STATUS_HOSTS_H

#include <stddef.h>
#include <stdio.h>

struct host_note;
struct spool;

/*
 * Every note, sorted by key: a table with a header (json 0; after an
 * empty line when separate), or one object per host (json 1).  Nothing
 * when there is none.  -1 when domains/ cannot be read.
 */
int	 status_hosts_print(FILE *, struct spool *, int json, int separate);

/* "down since TIME, next try TIME (REASON)" or "up since TIME". */
void	 status_host_describe(const struct host_note *, char *, size_t);

#endif
