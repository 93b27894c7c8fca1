/*
 * backoff.h - the retry schedule of deferred mail: retry-min after the
 * first failed attempt, doubling with every further one, never more than
 * retry-max.
 */
#ifndef MXFB_BACKOFF_H
#define MXFB_BACKOFF_H

#include <time.h>

/* Seconds to wait after the attempts-th failed attempt (attempts >= 1). */
time_t	 backoff_delay(int attempts, time_t min, time_t max);

#endif
