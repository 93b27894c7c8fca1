/*
 * backoff.c - the retry schedule: min, 2 min, 4 min, ... capped at max.
 * Overflow-safe for any attempt count; a max below min means min.
 */
#include "core/backoff.h"

time_t
backoff_delay(int attempts, time_t min, time_t max)
{
	time_t	 d;
	int	 i;

	if (min < 1)
		min = 1;
	if (max < min)
		max = min;
	d = min;
	for (i = 1; i < attempts && d < max; i++) {
		if (d > max / 2) {
			d = max;
			break;
		}
		d *= 2;
	}
	return (d < max ? d : max);
}
