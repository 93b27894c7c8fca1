/*
 * rcpt_primary.c - receive's RCPT rules over the primary record
 * (rcpt_primary.h): accept-when-primary-up no refuses a recipient, 450
 * 4.7.0, while the domain's primary was last seen up within
 * primary-up-window (postmaster and etrn-allow clients excepted); a
 * declared SIZE above the primary's EHLO SIZE is 552 5.3.4 and SMTPUTF8
 * mail for a primary that did not offer it 553 5.6.7, from the last EHLO
 * seen even while the primary is down.  No record, a garbled one, or no
 * EHLO seen: accepted as without these rules.  Each domain's record is
 * read at its first RCPT of a session and kept for the session.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cmd/rcpt_primary.h"
#include "core/config.h"
#include "core/log.h"
#include "core/mail/address.h"
#include "core/smtp_client.h"
#include "core/smtp_server.h"
#include "core/util.h"
#include "spool/spool.h"

#define FUTURE_SLACK	60	/* seconds a record may be ahead of us */

static const struct primary_obs *cache_get(struct rcpt_primary_cache *,
		    struct spool *, const char *);

enum rcpt_primary_rule
rcpt_primary_decide(const struct primary_obs *o,
    const struct rcpt_primary_policy *pol, const struct rcpt_primary_ask *ask,
    time_t now)
{
	if (o == NULL)
		return (RCPT_PRIMARY_ACCEPT);
	if (o->have_ehlo) {
		if (ask->size > 0 && o->size_max > 0 &&
		    ask->size > o->size_max)
			return (RCPT_PRIMARY_SIZE);
		if (ask->smtputf8 && !o->smtputf8)
			return (RCPT_PRIMARY_SMTPUTF8);
	}
	if (pol->accept_when_up || ask->exempt || !o->up)
		return (RCPT_PRIMARY_ACCEPT);
	if (o->checked > now + FUTURE_SLACK || o->checked <= now - pol->window)
		return (RCPT_PRIMARY_ACCEPT);
	return (RCPT_PRIMARY_UP);
}

const char *
rcpt_primary_rule_name(enum rcpt_primary_rule rule)
{
	switch (rule) {
	case RCPT_PRIMARY_UP:
		return ("primary-up");
	case RCPT_PRIMARY_SIZE:
		return ("primary-size");
	case RCPT_PRIMARY_SMTPUTF8:
		return ("primary-smtputf8");
	default:
		return ("accept");
	}
}

void
rcpt_primary_reply(enum rcpt_primary_rule rule, const struct primary_obs *o,
    const struct rcpt_primary_ask *ask, const char *addr, char *reply,
    size_t size)
{
	char	 host[DOMAIN_NAME_SIZE + 16];

	if (o != NULL && o->host[0] != '\0')
		(void)snprintf(host, sizeof(host), "primary MX %s", o->host);
	else
		(void)strlcpy(host, "the primary MX", sizeof(host));
	switch (rule) {
	case RCPT_PRIMARY_UP:
		(void)snprintf(reply, size, "450 4.7.0 <%s>: %s is up, "
		    "deliver there", addr, host);
		break;
	case RCPT_PRIMARY_SIZE:
		(void)snprintf(reply, size, "552 5.3.4 <%s>: message size "
		    "%llu exceeds the limit of %s (%llu)", addr,
		    (unsigned long long)ask->size, host,
		    (unsigned long long)(o != NULL ? o->size_max : 0));
		break;
	case RCPT_PRIMARY_SMTPUTF8:
		(void)snprintf(reply, size, "553 5.6.7 <%s>: %s does not "
		    "accept SMTPUTF8 mail", addr, host);
		break;
	default:
		reply[0] = '\0';
		break;
	}
}

/* The domain's record, read at its first RCPT; NULL: none to go by. */
static const struct primary_obs *
cache_get(struct rcpt_primary_cache *c, struct spool *sp, const char *domain)
{
	struct rcpt_primary_seen	*e;
	size_t				 i;

	for (i = 0; i < c->n; i++)
		if (strcasecmp(c->v[i].domain, domain) == 0)
			return (c->v[i].have ? &c->v[i].obs : NULL);
	c->v = xreallocarray(c->v, c->n + 1, sizeof(*c->v));
	e = &c->v[c->n++];
	memset(e, 0, sizeof(*e));
	(void)strlcpy(e->domain, domain, sizeof(e->domain));
	if (spool_primary_read(sp, domain, &e->obs) == 0)
		e->have = 1;
	else if (errno != ENOENT)
		log_warn("spool: the primary record of %s: taken as none",
		    domain);
	return (e->have ? &e->obs : NULL);
}

int
rcpt_primary_check(struct rcpt_primary_cache *c, struct spool *sp,
    const struct smtp_txn *txn, const struct address *a, int etrn_client,
    char *reply, size_t size, const char **rule)
{
	struct rcpt_primary_policy	 pol;
	struct rcpt_primary_ask		 ask;
	const struct primary_obs	*o;
	enum rcpt_primary_rule		 r;

	o = cache_get(c, sp, a->domain);
	if (o == NULL)
		return (0);
	pol.accept_when_up = cfg->accept_when_primary_up;
	pol.window = cfg->primary_up_window;
	ask.size = txn->size_param;
	ask.smtputf8 = txn->smtputf8;
	ask.exempt = etrn_client ||
	    strcasecmp(a->local_plain, "postmaster") == 0;
	r = rcpt_primary_decide(o, &pol, &ask, time(NULL));
	if (r == RCPT_PRIMARY_ACCEPT)
		return (0);
	rcpt_primary_reply(r, o, &ask, a->addr, reply, size);
	*rule = rcpt_primary_rule_name(r);
	return (-1);
}

void
rcpt_primary_cache_free(struct rcpt_primary_cache *c)
{
	free(c->v);
	c->v = NULL;
	c->n = 0;
}

void
primary_obs_from_ehlo(struct primary_obs *o, int up, const char *source,
    const char *host, const struct smtp_ext *ext)
{
	memset(o, 0, sizeof(*o));
	o->up = up;
	o->checked = time(NULL);
	(void)strlcpy(o->source, source, sizeof(o->source));
	if (!up)
		return;
	if (host != NULL)
		(void)strlcpy(o->host, host, sizeof(o->host));
	if (ext == NULL || !ext->esmtp)
		return;
	o->have_ehlo = 1;
	o->size_max = ext->size ? ext->maxsize : 0;
	o->smtputf8 = ext->smtputf8;
	o->eightbitmime = ext->eightbitmime;
	o->dsn = ext->dsn;
}

void
primary_obs_reason(struct primary_obs *o, const char *why)
{
	const char	*p;

	if (strncmp(why, "connect to ", 11) == 0 &&
	    (p = strstr(why, "]: ")) != NULL)
		why = p + 3;
	else if (strncmp(why, "connect to ", 11) == 0 &&
	    (p = strrchr(why, ':')) != NULL && p[1] == ' ')
		why = p + 2;
	(void)strlcpy(o->reason, why, sizeof(o->reason));
}
