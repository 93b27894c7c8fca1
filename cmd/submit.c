/*
 * submit.c - `receive -s`: who may submit and what (see submit.h).
 *
 * Failed logins are counted per client (its IPv4 address or IPv6 /64,
 * smtp_client_key) for SUBMIT_FAIL_WINDOW; at auth-fail-limit the client
 * gets 454 4.7.0 to every AUTH until that window ends.  Messages are
 * counted per account when they are complete, so a refused or broken
 * transaction costs nothing; MAIL is refused (452 4.7.0) once the
 * account's window holds submission-rate of them.  Two sessions of one
 * account at the very same moment may each get the last one.  A counter
 * that cannot be read (the database broken) lets the client through,
 * logged: the limits protect the host, the database must not stop mail.
 * Passwords are never logged; user names are, made safe.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cmd/submit.h"
#include "core/config.h"
#include "core/dkim.h"
#include "core/log.h"
#include "core/users.h"
#include "core/util.h"
#include "spool/spool.h"
#include "spool/verify_db.h"

/*
 * The accounts, kept from one session to the next of a receive process
 * (re-read when the file changes): read only by this file.
 */
static struct users_file accounts;

static struct verify_db *counters(struct submit *);
static void	 fail_key(const struct submit *, char *, size_t);
static int	 rate_key(const char *, char *, size_t);
static void	 count_failure(struct submit *, const char *, const char *,
		    const char *);
static int	 sign_fields(const void *, size_t, void *, char **, size_t *);

int
submit_config_check(char *err, size_t size)
{
	if (cfg->tls_cert[0] == '\0') {
		snprintf(err, size, "receive -s needs tls-cert and tls-key "
		    "(AUTH is offered only under TLS)");
		return (-1);
	}
	if (cfg->users[0] == '\0') {
		snprintf(err, size, "receive -s needs users (the submission "
		    "accounts)");
		return (-1);
	}
	return (0);
}

void
submit_begin(struct submit *sub, const char *client,
    const struct sockaddr *peer)
{
	memset(sub, 0, sizeof(*sub));
	sub->client = client;
	sub->client_key = peer != NULL ? smtp_client_key(peer) :
	    SMTP_CLIENT_NONE;
}

void
submit_end(struct submit *sub)
{
	verify_db_close(sub->db);
	sub->db = NULL;
	sasl_wipe(sub->user, sizeof(sub->user));
}

/* The database of the counters, opened (and made) at the first need. */
static struct verify_db *
counters(struct submit *sub)
{
	char	 path[1024], err[1024];

	if (sub->db != NULL)
		return (sub->db);
	if (verify_db_path(cfg->spool, cfg->verify_db, path,
	    sizeof(path)) == -1) {
		log_warnx("verify-db: path too long");
		return (NULL);
	}
	if (verify_db_open(path, 1, &sub->db, err, sizeof(err)) == -1) {
		log_warnx("verify-db %s", err);
		sub->db = NULL;
	}
	return (sub->db);
}

static void
fail_key(const struct submit *sub, char *key, size_t size)
{
	if (sub->client_key == SMTP_CLIENT_NONE)
		snprintf(key, size, "authfail:local");
	else
		snprintf(key, size, "authfail:%016" PRIx64, sub->client_key);
}

static int
rate_key(const char *addr, char *key, size_t size)
{
	char	 norm[ADDRESS_PATH_MAX + 1];

	if (verify_db_key(addr, norm, sizeof(norm)) == -1)
		return (-1);
	return (bsnprintf(key, size, "rate:%s", norm));
}

int
submit_auth_begin(struct submit *sub, char *reply, size_t size)
{
	struct verify_db	*db;
	char			 key[64];
	unsigned		 n;

	if ((db = counters(sub)) == NULL)
		return (0);
	fail_key(sub, key, sizeof(key));
	if (verify_db_count(db, key, time(NULL), SUBMIT_FAIL_WINDOW, 0,
	    &n) == 0 && n >= cfg->auth_fail_limit) {
		snprintf(reply, size, "454 4.7.0 Error: too many failed "
		    "logins from %s, try again later", sub->client);
		return (-1);
	}
	return (0);
}

/* A failed login: logged (never the password) and counted. */
static void
count_failure(struct submit *sub, const char *mech, const char *authcid,
    const char *why)
{
	struct verify_db	*db;
	char			 key[64], user[SASL_ID_MAX * 4 + 1];
	unsigned		 n = 0;

	log_safe(user, sizeof(user), authcid);
	if ((db = counters(sub)) != NULL) {
		fail_key(sub, key, sizeof(key));
		(void)verify_db_count(db, key, time(NULL), SUBMIT_FAIL_WINDOW,
		    1, &n);
	}
	log_warnx("unknown[%s]: SASL %s authentication failed: %s, "
	    "sasl_username=%s%s", sub->client, mech, why, user,
	    n >= cfg->auth_fail_limit ? "; auth-fail-limit reached, "
	    "locked out for 15 minutes" : "");
}

int
submit_auth(struct submit *sub, const char *mech, const char *authcid,
    const char *password, int bad_format, char *reply, size_t size)
{
	char	 why[1100];

	if (bad_format) {
		count_failure(sub, mech, authcid, "malformed response");
		strlcpy(reply, "535 5.7.8 Error: authentication failed",
		    size);
		return (-1);
	}
	if (users_refresh(&accounts, cfg->users, why, sizeof(why)) == -1) {
		log_warnx("users %s: no one can log in", why);
		strlcpy(reply, "454 4.7.0 Temporary authentication failure",
		    size);
		return (-1);
	}
	if (!users_verify(&accounts, authcid, password)) {
		count_failure(sub, mech, authcid, "bad user name or password");
		strlcpy(reply, "535 5.7.8 Error: authentication failed",
		    size);
		return (-1);
	}
	strlcpy(sub->user, authcid, sizeof(sub->user));
	return (0);
}

int
submit_mail(struct submit *sub, const struct smtp_txn *txn, char *reply,
    size_t size)
{
	struct verify_db	*db;
	char			 key[ADDRESS_PATH_MAX + 16];
	unsigned		 n;

	/* The null sender too: an account sends as itself only. */
	if (!users_addr_equal(txn->sender, sub->user)) {
		snprintf(reply, size, "553 5.7.1 <%s>: Sender address "
		    "rejected: not owned by user %s", txn->sender, sub->user);
		return (-1);
	}
	if ((db = counters(sub)) == NULL ||
	    rate_key(sub->user, key, sizeof(key)) == -1)
		return (0);
	if (verify_db_count(db, key, time(NULL), cfg->submission_window, 0,
	    &n) == 0 && n >= cfg->submission_rate) {
		snprintf(reply, size, "452 4.7.0 Error: %s has sent %u "
		    "messages, the submission-rate limit; try again later",
		    sub->user, n);
		return (-1);
	}
	return (0);
}

int
submit_rcpt(struct submit *sub, const struct address *a, char *reply,
    size_t size)
{
	const char	*trick;

	if ((trick = address_relay_trick(a)) != NULL) {
		snprintf(reply, size, "550 5.7.1 <%s>: Recipient address "
		    "rejected (%s)", a->addr, trick);
		return (-1);
	}
	return (0);
}

int
submit_message_complete(struct submit *sub, struct envelope *env,
    char *reply, size_t size)
{
	struct verify_db	*db;
	char			 key[ADDRESS_PATH_MAX + 16];
	unsigned		 n;

	if ((db = counters(sub)) == NULL ||
	    rate_key(sub->user, key, sizeof(key)) == -1)
		return (0);
	if (verify_db_count(db, key, time(NULL), cfg->submission_window, 1,
	    &n) == 0 && n == cfg->submission_rate)
		log_info("%s: submission-rate %u/%llds reached", sub->user,
		    cfg->submission_rate, (long long)cfg->submission_window);
	return (0);
}

/* What sign_fields needs, and what it tells. */
struct sign_job {
	const struct submit	*sub;
	char			 err[256];
	int			 failed;
};

/* spool_writer_prepend's callback: the DKIM-Signature fields, if any. */
static int
sign_fields(const void *msg, size_t len, void *arg, char **pre,
    size_t *prelen)
{
	struct sign_job	*job = arg;
	char		 from[DOMAIN_NAME_SIZE];
	const char	*at;

	if (dkim_from_domain(msg, len, from, sizeof(from)) == -1 ||
	    (at = strrchr(job->sub->user, '@')) == NULL ||
	    strcasecmp(at + 1, from) != 0)
		return (0);
	if (dkim_sign_message(cfg->dkim, cfg->ndkim, msg, len, time(NULL),
	    pre, prelen, job->err, sizeof(job->err)) == -1) {
		job->failed = 1;
		return (-1);
	}
	return (0);
}

int
submit_sign(struct submit *sub, struct spool_writer *w, char *reply,
    size_t size)
{
	struct sign_job	 job;

	if (cfg->ndkim == 0)
		return (0);
	memset(&job, 0, sizeof(job));
	job.sub = sub;
	if (spool_writer_prepend(w, sign_fields, &job) == 0)
		return (0);
	if (job.failed) {
		log_warnx("%s: DKIM signing failed: %s", sub->client,
		    job.err);
		snprintf(reply, size, "451 4.7.0 Error: cannot sign the "
		    "message, try again later");
	} else {
		log_warn("spool %s: DKIM signature", cfg->spool);
		snprintf(reply, size, "451 4.3.0 Error: queue file write "
		    "error");
	}
	return (-1);
}
