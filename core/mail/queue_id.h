/*
 * queue_id.h - queue IDs (the mail model, core/mail/): the name of a
 * message everywhere, in the spool, the logs and DSN Message-IDs.
 *
 * QUEUE_ID_LEN characters of the alphabet
 * "0123456789ABCDEFGHJKMNPQRSTVWXYZ" (32 symbols in ASCII order, no I L
 * O U): 7 for the seconds, 4 for the microseconds of the arrival, then 6
 * random (libsodium).  Byte order is therefore arrival order; within one
 * process IDs are strictly increasing.
 */
#ifndef MXFB_MAIL_QUEUE_ID_H
#define MXFB_MAIL_QUEUE_ID_H

#include <time.h>

#define QUEUE_ID_LEN	17
#define QUEUE_ID_SIZE	(QUEUE_ID_LEN + 1)

int	 queue_id_new(char id[QUEUE_ID_SIZE]);
int	 queue_id_valid(const char *);		/* 1 valid, 0 not */
time_t	 queue_id_time(const char *);		/* arrival second it encodes */
/*
 * The ID of a report about the message orig (a valid ID): orig's 11 time
 * symbols, so that it sorts next to it, then 30 bits of BLAKE2b over
 * orig, the kind tag (a character) and the generation.  The same
 * (orig, tag, gen) always gives the same ID: DSN IDs already in spools
 * depend on every bit of it.
 */
void	 queue_id_derive(const char *orig, int tag, unsigned gen,
	    char out[QUEUE_ID_SIZE]);

#endif
