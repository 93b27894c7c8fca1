/*
 * callout.h - asking a relay domain's primary whether it takes a
 * recipient (issue 14 point 2): the same route as flush (mx_route_lookup:
 * relay-domain via, or the MX hosts strictly better than ourselves),
 * EHLO, STARTTLS at the domain's tls-outbound level as flush does,
 * MAIL FROM:<>, then one RCPT TO per question on the same connection
 * (RSET and MAIL again every CALLOUT_RCPTS_PER_TXN), QUIT at the end.
 *
 * Guarantees: one question, from the route lookup to the RCPT reply,
 * ends by the deadline given (every wait is capped by one deadline);
 * a 5xx is reported as refused only when the primary gave it to RCPT
 * TO; anything else that is not a 2xx (4xx, a refused MAIL FROM:<>, no
 * route, no connection, a timeout, a broken connection) is "cannot
 * tell".  Once the connection failed, later questions of the same
 * callout get the same failure at once: one session does not dial a
 * dead primary for each of its RCPTs.
 */
#ifndef MXFB_CALLOUT_H
#define MXFB_CALLOUT_H

#include <stdint.h>
#include <time.h>

#include "core/smtp_client.h"
#include "core/util.h"

struct config;

#define CALLOUT_RCPTS_PER_TXN	50	/* then RSET, MAIL FROM:<> again */

enum callout_status {
	CALLOUT_ACCEPTED,	/* 2xx to RCPT TO */
	CALLOUT_REFUSED,	/* 5xx with 5.1.1-5.1.10 to RCPT TO: no such
				   recipient (dsn_unknown_user) */
	CALLOUT_TEMPFAIL,	/* the primary answered, but neither 2xx nor
				   "no such recipient": a 4xx, or a 5xx that
				   may be policy (5.7.1, a bare 550) */
	CALLOUT_UNREACHABLE	/* no route, connection, or reply in time */
};

struct callout_answer {
	enum callout_status status;
	/*
	 * This question tried to connect: dialled 1 when it had no
	 * connection yet; connected 1 when it got one and EHLO went
	 * through (the primary is up), 0 when none would (down).
	 */
	int		 dialled;
	int		 connected;
	struct smtp_ext	 ext;		/* when connected */
	char		 host[DOMAIN_NAME_SIZE];	/* asked, or "" */
	char		 reply[1024];	/* the primary's reply, or why not */
};

struct callout;

struct callout	*callout_new(const char *domain);
const char	*callout_domain(const struct callout *);
/*
 * Ask about addr (local@domain, as in RCPT TO:<...>) by deadline (a
 * now_ms() time).
 */
void		 callout_ask(struct callout *, const struct config *,
		    const char *addr, int64_t deadline,
		    struct callout_answer *);
/* QUIT (when connected), close, free; NULL is fine. */
void		 callout_free(struct callout *);

#endif
