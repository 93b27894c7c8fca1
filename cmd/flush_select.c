/*
 * flush_select.c - which messages a flush run takes (flush_select.h).
 * Pure functions over an envelope: recipients are grouped by
 * address_domain_of, pending and finished are the model's own
 * predicates.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/flush_select.h"
#include "core/mail/address.h"
#include "core/mail/envelope.h"
#include "core/util.h"

static int	 named(const struct flush_criteria *, const char *);
static int	 seen(const struct flush_pick *, const char *);

static int
named(const struct flush_criteria *fc, const char *id)
{
	size_t	 i;

	for (i = 0; i < fc->nids; i++)
		if (strcmp(fc->ids[i], id) == 0)
			return (1);
	return (0);
}

static int
seen(const struct flush_pick *p, const char *domain)
{
	size_t	 i;

	for (i = 0; i < p->ndomains; i++)
		if (strcmp(p->domains[i], domain) == 0)
			return (1);
	return (0);
}

int
flush_due(const struct flush_criteria *fc, const struct envelope *env)
{
	if (env->held || env->claimed)
		return (0);
	if (fc->nids > 0)
		return (named(fc, env->id));
	return (fc->force || env->next_retry <= fc->now);
}

enum flush_take
flush_pick(const struct flush_criteria *fc, const struct envelope *env,
    struct flush_pick *p)
{
	char	 dom[DOMAIN_NAME_SIZE], first[DOMAIN_NAME_SIZE];
	size_t	 i, npend = 0;

	memset(p, 0, sizeof(*p));
	if (envelope_finished(env))
		return (fc->domain == NULL ? FLUSH_REMOVE : FLUSH_SKIP);
	first[0] = '\0';
	for (i = 0; i < env->nrcpts; i++) {
		if (!rcpt_pending(&env->rcpts[i]))
			continue;
		(void)address_domain_of(env->rcpts[i].addr, dom, sizeof(dom));
		if (npend++ == 0)
			strlcpy(first, dom, sizeof(first));
		else if (strcmp(first, dom) != 0)
			p->multi = 1;
		if (fc->domain != NULL && strcmp(dom, fc->domain) != 0)
			continue;
		if (seen(p, dom))
			continue;
		if (p->domains == NULL)
			p->domains = xcalloc(env->nrcpts, sizeof(*p->domains));
		strlcpy(p->domains[p->ndomains++], dom, sizeof(p->domains[0]));
	}
	if (p->ndomains == 0) {
		flush_pick_free(p);
		return (FLUSH_SKIP);
	}
	return (FLUSH_DELIVER);
}

void
flush_pick_free(struct flush_pick *p)
{
	free(p->domains);
	memset(p, 0, sizeof(*p));
}
