/*
 * learn.h - flush teaches the recipient database what the primaries
 * said (issue 14 point 3; see learn.c).
 */
#ifndef MXFB_LEARN_H
#define MXFB_LEARN_H

#include <stddef.h>

struct smtp_client_rcpt;
struct smtp_result;

/*
 * Remember the n recipients of one transaction: accepted ones as valid,
 * refused with an enhanced status 5.1.1..5.1.10 at RCPT as invalid.
 * Does nothing unless `recipient-verify callout`; never fails.
 */
void	 learn_results(const struct smtp_client_rcpt *, const struct smtp_result *,
	    size_t n);

#endif
