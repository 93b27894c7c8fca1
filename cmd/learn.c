/*
 * learn.c - learning recipients from our own deliveries (issue 14
 * point 3).  Every recipient a primary accepts during flush is put in
 * the recipient database as valid (source delivery, verify-positive-ttl);
 * every one it refuses at RCPT with an enhanced status code 5.1.1 to
 * 5.1.10 (bad mailbox, system, syntax, ambiguous, destination, moved,
 * sender, ...: RFC 3463 and its registry) as invalid (verify-negative-ttl).
 * Only enhanced codes count: a bare "550 user unknown" teaches nothing,
 * since its text is free-form and a 550 without 5.1.x may be a policy
 * refusal of that one message.
 *
 * Guarantees: a database failure never changes a delivery's outcome; it
 * is logged (by verify_db) and learning stops for this process.  The
 * handle is opened on first use in the process that delivers (flush's
 * forked delivery process) and re-opened after a fork, as LMDB requires;
 * it lives as long as that process, and its threads use it one at a
 * time (learn_lock).
 */
#include <sys/types.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/learn.h"
#include "core/config.h"
#include "core/dsn.h"
#include "core/log.h"
#include "core/smtp_client.h"
#include "core/util.h"
#include "spool/verify_db.h"

static struct verify_db	*learn_db;	/* per process, see above */
static pid_t		 learn_pid;
static int		 learn_broken;
/* flush delivers from several threads: one handle, one user at a time. */
static pthread_mutex_t	 learn_lock = PTHREAD_MUTEX_INITIALIZER;

static struct verify_db *learn_open(void);

static struct verify_db *
learn_open(void)
{
	char	 path[1024], err[1024];

	if (learn_pid == getpid())
		return (learn_broken ? NULL : learn_db);
	/* A parent's handle must not be used after fork: left alone. */
	learn_db = NULL;
	learn_broken = 0;
	learn_pid = getpid();
	if (verify_db_path(cfg->spool, cfg->verify_db, path,
	    sizeof(path)) == -1) {
		log_warn("verify-db");
		learn_broken = 1;
		return (NULL);
	}
	if (verify_db_open(path, 1, &learn_db, err, sizeof(err)) == -1) {
		log_warnx("verify-db %s: not learning from deliveries", err);
		learn_broken = 1;
		return (NULL);
	}
	return (learn_db);
}

void
learn_results(const struct smtp_client_rcpt *rc, const struct smtp_result *res,
    size_t n)
{
	struct verify_db	*db;
	struct verify_put	*p;
	char			 key[ADDRESS_PATH_MAX + 1];
	size_t			 i, np = 0;

	if (!cfg->recipient_verify || n == 0)
		return;
	(void)pthread_mutex_lock(&learn_lock);
	if ((db = learn_open()) == NULL) {
		(void)pthread_mutex_unlock(&learn_lock);
		return;
	}
	p = xcalloc(n, sizeof(*p));
	for (i = 0; i < n; i++) {
		if (!res[i].from_peer ||
		    verify_db_key(rc[i].addr, key, sizeof(key)) == -1)
			continue;
		if (res[i].code / 100 == 2) {
			p[np].verdict = VERIFY_VALID;
			p[np].ttl = cfg->verify_positive_ttl;
		} else if (res[i].code / 100 == 5 && res[i].stage != NULL &&
		    strcmp(res[i].stage, "RCPT TO") == 0 &&
		    dsn_unknown_user(res[i].dsn)) {
			p[np].verdict = VERIFY_INVALID;
			p[np].ttl = cfg->verify_negative_ttl;
		} else
			continue;
		p[np].addr = rc[i].addr;
		p[np].source = VERIFY_SOURCE_DELIVERY;
		np++;
	}
	/* One transaction, one sync, for the whole message. */
	(void)verify_db_put_many(db, p, np, time(NULL));
	(void)pthread_mutex_unlock(&learn_lock);
	free(p);
}
