/*
 * callout.c - the recipient callout (callout.h): one connection to a
 * domain's primary, found as flush finds it, asked RCPT TO questions
 * under a null sender.  Each question has one deadline (verify-timeout)
 * for everything it waits on: the DNS (dns-timeout shortened to fit),
 * the connect, the greeting, EHLO, STARTTLS, MAIL and RCPT.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/callout.h"
#include "core/config.h"
#include "core/dns.h"
#include "core/dsn.h"
#include "core/log.h"
#include "core/mail/address.h"
#include "core/mx.h"
#include "core/smtp_client.h"
#include "core/starttls.h"
#include "core/util.h"

struct callout {
	char			 domain[DOMAIN_NAME_SIZE];
	struct smtp_conn	*conn;
	struct starttls_contexts tls;
	int			 dead;		/* failed: why says why */
	char			 why[1024];
	int			 in_txn;	/* MAIL FROM:<> accepted */
	unsigned		 nrcpts;	/* RCPTs in this transaction */
};

static time_t	 left(int64_t);
static int	 route(struct callout *, const struct config *, int64_t,
		    struct mx_route *);
static int	 dial(struct callout *, const struct config *,
		    const struct mx_target *, size_t, int64_t, int);
static int	 open_conn(struct callout *, const struct config *, int64_t,
		    struct callout_answer *);
static int	 start_txn(struct callout *, struct callout_answer *);
static void	 fail(struct callout *, struct callout_answer *,
		    enum callout_status, const char *);

struct callout *
callout_new(const char *domain)
{
	struct callout	*co;

	co = xcalloc(1, sizeof(*co));
	strlcpy(co->domain, domain, sizeof(co->domain));
	return (co);
}

const char *
callout_domain(const struct callout *co)
{
	return (co->domain);
}

/* Whole seconds left until deadline, at least 1. */
static time_t
left(int64_t deadline)
{
	int64_t	 ms = deadline - now_ms();

	if (ms < 1000)
		return (1);
	return ((time_t)((ms + 999) / 1000));
}

/*
 * The primaries of the domain (mx_route_lookup), asked with dns-timeout
 * cut so that MX_ROUTE_QUERIES unanswered queries fit before deadline.
 */
static int
route(struct callout *co, const struct config *c, int64_t deadline,
    struct mx_route *rt)
{
	struct config		 dc = *c;
	struct dns_resolver	*dr;
	struct lookup_error	 e;
	enum dns_status		 st;
	char			 err[256];
	time_t			 per;

	per = left(deadline) / MX_ROUTE_QUERIES;
	dc.dns_retry = 1;
	dc.dns_timeout = per < 1 ? 1 : per;
	if (dc.dns_timeout > c->dns_timeout)
		dc.dns_timeout = c->dns_timeout;
	if (dns_resolver_open(&dc, &dr, err, sizeof(err)) == -1) {
		snprintf(co->why, sizeof(co->why), "resolver: %s", err);
		return (-1);
	}
	memset(&e, 0, sizeof(e));
	st = mx_route_lookup(dr, &dc, co->domain, rt, &e);
	dns_resolver_close(dr);
	if (st != DNS_OK) {
		snprintf(co->why, sizeof(co->why), "no primary: %s", e.text);
		return (-1);
	}
	if (rt->ntargets == 0) {
		mx_route_free(rt);
		strlcpy(co->why, "no primary to ask", sizeof(co->why));
		return (-1);
	}
	return (0);
}

/*
 * Connect to address j of t, greet, STARTTLS at level.  0 connected, 1
 * reconnect in plaintext (may, a failed handshake), -1 next address.
 */
static int
dial(struct callout *co, const struct config *c, const struct mx_target *t,
    size_t j, int64_t deadline, int plain)
{
	struct smtp_timeouts	 to;
	struct starttls_report	 rep;
	enum starttls_outcome	 rc;
	socklen_t		 len;
	char			 why[1024];

	to.connect = to.command = to.data = to.data_done = left(deadline);
	len = t->addrs[j].ss_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (smtp_connect(t->host, (const struct sockaddr *)&t->addrs[j], len,
	    &to, &co->conn, co->why, sizeof(co->why)) == -1)
		return (-1);
	smtp_conn_set_deadline(co->conn, deadline);
	if (smtp_greet(co->conn, c->hostname, NULL) == -1) {
		strlcpy(co->why, smtp_conn_error(co->conn), sizeof(co->why));
		smtp_close(co->conn);
		co->conn = NULL;
		return (-1);
	}
	why[0] = '\0';
	rc = starttls_client(co->conn, c, &co->tls, plain ? TLS_LEVEL_NONE :
	    config_tls_level(c, co->domain), t->host, t->port, c->hostname,
	    (int)left(deadline), &rep, why, sizeof(why));
	if (rc == STARTTLS_OK)
		return (0);
	strlcpy(co->why, why, sizeof(co->why));
	smtp_close(co->conn);
	co->conn = NULL;
	return (rc == STARTTLS_RETRY_PLAIN && !plain ? 1 : -1);
}

/* A connection to the first primary address that greets us. */
static int
open_conn(struct callout *co, const struct config *c, int64_t deadline,
    struct callout_answer *ans)
{
	struct mx_route	 rt;
	size_t		 i, j;
	char		 why[1024];
	int		 r;

	ans->dialled = 1;
	memset(&rt, 0, sizeof(rt));
	if (route(co, c, deadline, &rt) == -1)
		return (-1);
	for (i = 0; i < rt.ntargets && co->conn == NULL; i++) {
		strlcpy(ans->host, rt.targets[i].host, sizeof(ans->host));
		for (j = 0; j < rt.targets[i].naddrs; j++) {
			if (now_ms() >= deadline)
				break;
			if ((r = dial(co, c, &rt.targets[i], j, deadline,
			    0)) == 1)
				r = dial(co, c, &rt.targets[i], j, deadline,
				    1);
			if (r == 0)
				break;
		}
	}
	mx_route_free(&rt);
	if (co->conn == NULL) {
		if (now_ms() >= deadline) {
			strlcpy(why, co->why, sizeof(why));
			(void)bsnprintf(co->why, sizeof(co->why), "no primary "
			    "answered within %lld s (%s)", (long long)
			    c->verify_timeout, why);
		}
		return (-1);
	}
	ans->connected = 1;
	ans->ext = *smtp_conn_ext(co->conn);
	return (0);
}

/* RSET when needed, MAIL FROM:<>: 0, or -1 with co->why. */
static int
start_txn(struct callout *co, struct callout_answer *ans)
{
	struct smtp_reply	 r;
	char			 s[512];

	if (co->in_txn && co->nrcpts < CALLOUT_RCPTS_PER_TXN)
		return (0);
	if (co->in_txn) {
		if (smtp_command(co->conn, "RSET", &r) == -1)
			goto broken;
		co->in_txn = 0;
		co->nrcpts = 0;
	}
	if (smtp_command(co->conn, "MAIL FROM:<>", &r) == -1)
		goto broken;
	if (r.code / 100 != 2) {
		smtp_reply_string(&r, s, sizeof(s));
		snprintf(co->why, sizeof(co->why), "%s said: %s (in reply to "
		    "MAIL FROM:<>)", smtp_conn_relay(co->conn), s);
		ans->status = CALLOUT_TEMPFAIL;
		return (-1);
	}
	co->in_txn = 1;
	return (0);
broken:
	strlcpy(co->why, smtp_conn_error(co->conn), sizeof(co->why));
	ans->status = CALLOUT_UNREACHABLE;
	return (-1);
}

/* The callout is done for: this answer and every later one. */
static void
fail(struct callout *co, struct callout_answer *ans,
    enum callout_status st, const char *why)
{
	if (why != co->why)
		strlcpy(co->why, why, sizeof(co->why));
	if (co->conn != NULL) {
		smtp_quit(co->conn);
		co->conn = NULL;
	}
	co->dead = 1;
	ans->status = st;
	log_safe(ans->reply, sizeof(ans->reply), co->why);
}

void
callout_ask(struct callout *co, const struct config *c, const char *addr,
    int64_t deadline, struct callout_answer *ans)
{
	struct smtp_reply	 r;
	char			 cmd[ADDRESS_PATH_MAX + 16], s[512];

	memset(ans, 0, sizeof(*ans));
	if (co->dead) {
		fail(co, ans, CALLOUT_UNREACHABLE, co->why);
		return;
	}
	if (co->conn == NULL && open_conn(co, c, deadline, ans) == -1) {
		fail(co, ans, CALLOUT_UNREACHABLE, co->why);
		return;
	}
	strlcpy(ans->host, smtp_conn_host(co->conn), sizeof(ans->host));
	smtp_conn_set_deadline(co->conn, deadline);
	if (start_txn(co, ans) == -1) {
		fail(co, ans, ans->status, co->why);
		return;
	}
	if (snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>", addr) >=
	    (int)sizeof(cmd) || smtp_command(co->conn, cmd, &r) == -1) {
		fail(co, ans, CALLOUT_UNREACHABLE,
		    smtp_conn_error(co->conn));
		return;
	}
	co->nrcpts++;
	smtp_conn_set_deadline(co->conn, 0);
	smtp_reply_string(&r, s, sizeof(s));
	snprintf(ans->reply, sizeof(ans->reply), "%s said: %s",
	    smtp_conn_relay(co->conn), s);
	if (r.code / 100 == 2)
		ans->status = CALLOUT_ACCEPTED;
	else if (r.code / 100 == 5 && dsn_unknown_user(r.dsn))
		ans->status = CALLOUT_REFUSED;
	else if (r.code == 421)
		fail(co, ans, CALLOUT_TEMPFAIL, ans->reply);
	else
		ans->status = CALLOUT_TEMPFAIL;
}

void
callout_free(struct callout *co)
{
	if (co == NULL)
		return;
	if (co->conn != NULL)
		smtp_quit(co->conn);
	starttls_contexts_free(&co->tls);
	free(co);
}
