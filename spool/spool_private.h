/*
 * spool_private.h - what the spool's own files share and nobody else may
 * use: the state-file encoding (see spool/INTERNALS, section 3).
 */
#ifndef MXFB_SPOOL_PRIVATE_H
#define MXFB_SPOOL_PRIVATE_H

#include <stddef.h>

struct envelope;

/* The mutable part only ("S1" ... "end"). */
int	 envelope_state_encode(const struct envelope *, char **, size_t *);
/*
 * Decode a state file and merge it into env.  -1 with EBADMSG when it is
 * malformed or does not match env's recipients; env is then unchanged.
 */
int	 envelope_state_merge(struct envelope *, const char *, size_t);

#endif
