/*
 * receive.c - `mxfb receive`: the SMTP server.  Without -l it serves one
 * session on fds 0 and 1 (inetd, xinetd, systemd Accept=yes, tcpserver);
 * with -l ADDR:PORT it listens itself and forks one session per
 * connection, at most -c at a time.
 *
 * This file is the glue between the protocol engine (core/smtp_server)
 * and the spool: relay policy at RCPT (recipient verification in
 * cmd/rcpt_verify.c), free space at MAIL (and every
 * megabyte of DATA), the spool writer for DATA, ETRN, and STARTTLS
 * through core/tls when tls-cert is set (loaded once at start: a bad
 * certificate or key is exit 78).  Under -l, max-sessions-per-client is
 * counted where connections are accepted, in the slots the listener
 * shares with its children.
 * With -s it is the submission server (policy in cmd/submit.c: AUTH
 * against `users`, the sender the account, any recipient domain, the
 * shared rate and lockout counters); -T adds implicit TLS, the
 * handshake before the greeting.
 * Start-up stays cheap: no DNS, no spool scan; the recipients file is
 * read at the first RCPT that needs it.  A 250 after DATA is sent only
 * after spool_writer_commit() returned 0.
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/rcpt_verify.h"
#include "cmd/rcpt_primary.h"
#include "cmd/submit.h"
#include "core/config.h"
#include "core/dns.h"
#include "core/log.h"
#include "core/mail/address.h"
#include "core/smtp_server.h"
#include "core/tls.h"
#include "core/util.h"
#include "spool/spool.h"

#define USAGE \
	"mxfb receive [-C file] [-c max-sessions] [-l addr:port ...] [-s [-T]]"
#define MAX_LISTEN	8
#define SESSIONS_PER_CHILD 100	/* -l: sessions a child serves in turn */
#define CHILD_IDLE	60	/* -l: seconds an idle child waits for more */
#define FREE_CHECK_EVERY (1024 * 1024)	/* DATA: statvfs every MiB */
#define LISTEN_BACKLOG	128	/* -l: listen(2)'s queue of connections */
#define LISTEN_NAME_SIZE 128	/* an activated socket's name, for the log */
#define PROVEN_MAX	1000	/* addresses a session proves real (prove) */

struct receiver {
	int			 in, out;	/* the client's fds */
	struct tls_conn		*tls;		/* after STARTTLS */
	struct spool		*sp;
	struct spool_writer	*w;
	struct sockaddr_storage	 peer;
	int			 have_peer;
	char			 addr[INET6_ADDRSTRLEN + 8];
	struct rcptlist		*rcptlist;
	struct rcpt_verify	*rv;		/* recipient-verify callout */
	struct rcpt_primary_cache primaries;	/* records read at RCPT */
	const char		*rule;		/* that refused the last RCPT */
	char			*proven[PROVEN_MAX];	/* see prove() */
	size_t			 nproven;
	uint64_t		 written;	/* message bytes to the spool */
	uint64_t		 next_check;	/* free space again from here */
	struct submit		 sub;		/* -s: the account's session */
};

/* -l: the listener's sockets and children (by slot: pid, 0: free). */
struct listening {
	int			*lfd;
	int			 nspecs;
	pid_t			*kids;
	unsigned		 maxsessions;
	unsigned		 nchildren;
};

/* tls-cert/tls-key, loaded once before any session (NULL: no TLS). */
static struct tls_server *tls_server;
/* -s: submission (cmd/submit.c); -T: with implicit TLS (RFC 8314). */
static int	 submission, implicit_tls;

static volatile sig_atomic_t got_term;
static volatile sig_atomic_t got_child;
static int	 sigpipe_fds[2] = { -1, -1 };

/*
 * -l: which children are idle (waiting to accept), in memory shared
 * with the listener: one slot per child, written by the child, cleared
 * by the listener when it reaps the child.  Only when a child takes a
 * connection and sees no other idle child does it wake the listener
 * (a byte on the note pipe), which then accepts itself again: no
 * system call and no wake-up per session otherwise.
 */
struct child_slot {
	atomic_int	 idle;
	/*
	 * The client of the session it serves (smtp_client_key), for
	 * max-sessions-per-client; SMTP_CLIENT_NONE between sessions.
	 */
	_Atomic uint64_t client;
};
static struct child_slot *slots;	/* maxsessions of them */
static unsigned	 nslots;		/* slots ever used: [0, nslots) */
static atomic_uint *slots_used;		/* the same, shared with children */
#define SLOTS_SIZE(n)	((n) * sizeof(struct child_slot) + sizeof(atomic_uint))
static int	 note_fds[2] = { -1, -1 };	/* children -> listener */
static int	 life_fds[2] = { -1, -1 };	/* read end: EOF once it stops */
/* A child's copy of the listening sockets: closed by SIGUSR1. */
static int	 child_lfd[MAX_LISTEN];
static volatile sig_atomic_t child_stop;

static int	 session_timeout(void);
static int	 hook_mail(void *, const struct smtp_txn *, char *, size_t);
static int	 hook_rcpt(void *, const struct smtp_txn *,
		    const struct address *, char *, size_t);
static const char *hook_rcpt_rule(void *);
static int	 hook_data_begin(void *, struct smtp_txn *, char *, size_t);
static int	 hook_data_write(void *, const void *, size_t);
static int	 hook_data_commit(void *, struct smtp_txn *, char *, size_t);
static void	 hook_data_abort(void *);
static void	 mailbox_mark(struct receiver *, struct envelope *);
static void	 prove(struct receiver *, const char *);
static int	 proven(const struct receiver *, const char *);
static int	 hook_etrn(void *, const char *, char *, size_t);
static int	 hook_starttls(void *, struct smtp_server_io *, char *, size_t);
static int	 hook_auth_begin(void *, char *, size_t);
static int	 hook_auth(void *, const char *, const char *, const char *,
		    int, char *, size_t);
static void	 serve_params(struct receiver *, struct smtp_params *,
		    struct smtp_hooks *);
static int	 submission_config(char *, size_t);
static void	 peer_from_fd(struct receiver *, int);
static int	 serve(int, int, struct spool **);
static int	 stderr_is_client(void);
static int	 inetd_refuse(const char *);
static int	 inetd_session(void);
static int	 load_tls(char *, size_t);
static int	 listen_on(const char *);
static void	 on_signal(int);
static unsigned	 count_idle(const pid_t *);
static int	 listener(char **, int, unsigned);
static int	 activated_sockets(int *, char **, size_t);
static int	 listen_prepare(struct listening *);
static void	 reap_children(struct listening *);
static void	 accept_session(struct listening *, int);
static void	 stop_listening(struct listening *, int, unsigned);
static int	 serve_listening(int *, char **, int, int, unsigned);
static int	 child_loop(int, const int *, int, unsigned);
static void	 on_child_stop(int);
static void	 refuse_busy(int, const char *);
static int	 client_refused(unsigned, int, const struct sockaddr_storage *);
static void	 refuse_unavailable(int);

/* The `timeout` key in whole seconds for poll(2) (0: the default). */
static int
session_timeout(void)
{
	if (cfg->timeout <= 0)
		return (CONFIG_TIMEOUT_DEFAULT);
	return (cfg->timeout > INT_MAX / 1000 ? INT_MAX / 1000 :
	    (int)cfg->timeout);
}

/*
 * Room for the message before it is promised: queue-minfree, plus the
 * SIZE the client declared (RFC 1870: 452 when it does not fit now).
 */
static int
hook_mail(void *ctx, const struct smtp_txn *txn, char *reply, size_t size)
{
	struct receiver	*r = ctx;
	uint64_t	 avail, need;

	if (submission && submit_mail(&r->sub, txn, reply, size) == -1)
		return (-1);
	need = cfg->queue_minfree;
	if (txn->size_param > UINT64_MAX - need)
		need = UINT64_MAX;
	else
		need += txn->size_param;
	if (need == 0)
		return (0);
	if (spool_free_bytes(r->sp, &avail) == -1) {
		log_warn("spool %s: free space", cfg->spool);
		return (0);
	}
	if (avail < need) {
		if (txn->size_param > 0)
			log_warnx("spool %s: %llu bytes free, less than "
			    "SIZE=%llu plus queue-minfree", cfg->spool,
			    (unsigned long long)avail,
			    (unsigned long long)txn->size_param);
		else
			log_warnx("spool %s: %llu bytes free, below "
			    "queue-minfree", cfg->spool,
			    (unsigned long long)avail);
		strlcpy(reply, "452 4.3.1 Insufficient system storage", size);
		return (-1);
	}
	return (0);
}

static int
hook_rcpt(void *ctx, const struct smtp_txn *txn, const struct address *a,
    char *reply, size_t size)
{
	struct receiver	*r = ctx;
	char		 err[1024];
	size_t		 i;
	int		 proven;

	r->rule = "relay";
	if (submission)		/* authenticated: any domain */
		return (submit_rcpt(&r->sub, a, reply, size));
	if (address_relay_trick(a) != NULL) {
		snprintf(reply, size, "550 5.7.1 <%s>: Relay access denied "
		    "(%s)", a->addr, address_relay_trick(a));
		return (-1);
	}
	for (i = 0; i < cfg->nrelays; i++)
		if (address_domain_match(a->domain, cfg->relays[i].name))
			break;
	if (i == cfg->nrelays) {
		snprintf(reply, size, "550 5.7.1 <%s>: Relay access denied",
		    a->addr);
		return (-1);
	}
	if (rcpt_primary_check(&r->primaries, r->sp, txn, a, r->have_peer &&
	    config_etrn_allowed(cfg, (struct sockaddr *)&r->peer), reply, size,
	    &r->rule) == -1)
		return (-1);
	if (cfg->recipients[0] == '\0' && cfg->recipient_verify) {
		if (r->rv == NULL)
			r->rv = rcpt_verify_new(r->sp, NULL);
		if (rcpt_verify_check(r->rv, a, reply, size, &r->rule,
		    &proven) == -1)
			return (-1);
		if (proven)
			prove(r, a->addr);
		return (0);
	}
	if (cfg->recipients[0] == '\0')
		return (0);
	r->rule = "recipients-file";
	/*
	 * RFC 5321 4.5.1: postmaster at every domain we serve MUST be
	 * accepted, listed or not (the primary must have it too, so this
	 * makes no backscatter).
	 */
	if (strcasecmp(a->local_plain, "postmaster") == 0)
		return (0);
	if (r->rcptlist == NULL &&
	    (r->rcptlist = rcptlist_load(cfg->recipients, err,
	    sizeof(err))) == NULL) {
		log_warnx("recipients %s", err);
		snprintf(reply, size, "451 4.3.0 <%s>: Temporary lookup "
		    "failure", a->addr);
		return (-1);
	}
	if (!rcptlist_match(r->rcptlist, a->local_plain, a->domain)) {
		snprintf(reply, size, "550 5.1.1 <%s>: Recipient address "
		    "rejected: User unknown", a->addr);
		return (-1);
	}
	return (0);
}

static const char *
hook_rcpt_rule(void *ctx)
{
	struct receiver	*r = ctx;

	return (r->rule);
}

static int
hook_data_begin(void *ctx, struct smtp_txn *txn, char *reply, size_t size)
{
	struct receiver	*r = ctx;
	char		 id[QUEUE_ID_SIZE];

	if (spool_writer_begin(r->sp, &r->w, id) == -1) {
		log_warn("spool %s: new message", cfg->spool);
		r->w = NULL;
		if (errno == ENOSPC || errno == EDQUOT)
			strlcpy(reply, "452 4.3.1 Insufficient system storage",
			    size);
		else
			strlcpy(reply, "451 4.3.0 Error: queue file write "
			    "error", size);
		return (-1);
	}
	strlcpy(txn->id, id, sizeof(txn->id));
	r->written = 0;
	r->next_check = FREE_CHECK_EVERY;
	return (0);
}

/*
 * The message text into the spool.  Every FREE_CHECK_EVERY bytes the
 * free space is looked at again: a message without SIZE (or bigger than
 * it said) must not eat into queue-minfree, the room flush and bounce
 * need.  Running short fails the write as ENOSPC: the engine reads the
 * message to its end, answers 452 4.3.1 and aborts it.
 */
static int
hook_data_write(void *ctx, const void *buf, size_t len)
{
	struct receiver	*r = ctx;
	uint64_t	 avail;
	int		 saved;

	r->written += len;
	if (r->written >= r->next_check && cfg->queue_minfree > 0) {
		while (r->next_check <= r->written)
			r->next_check += FREE_CHECK_EVERY;
		if (spool_free_bytes(r->sp, &avail) == 0 &&
		    avail < cfg->queue_minfree) {
			log_warnx("spool %s: %llu bytes free after %llu "
			    "bytes of a message, below queue-minfree",
			    cfg->spool, (unsigned long long)avail,
			    (unsigned long long)r->written);
			errno = ENOSPC;
			return (-1);
		}
	}
	if (spool_writer_write(r->w, buf, len) == -1) {
		saved = errno;
		log_warn("spool %s: write", cfg->spool);
		errno = saved;
		return (-1);
	}
	return (0);
}

static int
hook_data_commit(void *ctx, struct smtp_txn *txn, char *reply, size_t size)
{
	struct receiver		*r = ctx;
	struct envelope		 env;
	struct recipient	*rc;
	size_t			 i;
	int			 ret, saved;

	memset(&env, 0, sizeof(env));
	env.arrival = time(NULL);
	env.sender = xstrdup(txn->sender);
	env.client_addr = xstrdup(r->addr);
	env.client_name = txn->helo != NULL && txn->helo[0] != '\0' ?
	    xstrdup(txn->helo) : NULL;
	env.envid = txn->envid != NULL ? xstrdup(txn->envid) : NULL;
	env.ret = txn->ret;
	env.smtputf8 = txn->smtputf8;
	env.eightbit = txn->eightbit;
	/*
	 * bounce-policy verified: a DSN to an authenticated sender (-s) is
	 * never backscatter, as one for recipients the file vouched for.
	 */
	env.verified = submission || cfg->recipients[0] != '\0';
	for (i = 0; i < txn->nrcpts; i++) {
		rc = envelope_add_recipient(&env, txn->rcpts[i].addr);
		rc->notify = txn->rcpts[i].notify;
		if (txn->rcpts[i].orcpt != NULL)
			rc->orcpt = xstrdup(txn->rcpts[i].orcpt);
	}
	mailbox_mark(r, &env);
	if (submission &&
	    (submit_sign(&r->sub, r->w, reply, size) == -1 ||
	    submit_message_complete(&r->sub, &env, reply, size) == -1)) {
		envelope_free(&env);
		hook_data_abort(r);
		return (-1);
	}
	/* The outage mailbox's copies are made by the commit: logged,
	 * never failing it (flush makes copies still owed). */
	ret = spool_writer_commit(r->w, &env);
	saved = errno;
	r->w = NULL;
	if (ret == 0) {
		strlcpy(txn->id, env.id, sizeof(txn->id));
		txn->size = env.size;
	}
	envelope_free(&env);
	if (ret == -1) {
		errno = saved;
		log_warn("spool %s: commit %s", cfg->spool, txn->id);
		if (saved == ENOSPC || saved == EDQUOT)
			strlcpy(reply, "452 4.3.1 Insufficient system storage",
			    size);
		else
			strlcpy(reply, "451 4.3.0 Error: queue file write "
			    "error", size);
		return (-1);
	}
	return (0);
}

/*
 * The recipients that get a copy in the outage mailbox (issue 15): the
 * recipients list names them exactly (mailbox_eligible).
 */
static void
mailbox_mark(struct receiver *r, struct envelope *env)
{
	char	 err[1024];
	size_t	 i;

	if (cfg->mailbox[0] == '\0')
		return;
	if (cfg->recipients[0] == '\0') {
		for (i = 0; i < env->nrcpts; i++)
			env->rcpts[i].mailbox = proven(r, env->rcpts[i].addr);
		return;
	}
	if (r->rcptlist == NULL &&
	    (r->rcptlist = rcptlist_load(cfg->recipients, err,
	    sizeof(err))) == NULL) {
		log_warnx("recipients %s", err);
		return;
	}
	for (i = 0; i < env->nrcpts; i++)
		env->rcpts[i].mailbox = mailbox_eligible(r->rcptlist,
		    env->rcpts[i].addr);
}

/*
 * Under recipient-verify callout, the addresses of this session accepted
 * on a verdict (rcpt_verify_check's proven): real users, who may get an
 * outage mailbox copy.  At most PROVEN_MAX a session; beyond, no copy.
 */
static void
prove(struct receiver *r, const char *addr)
{
	if (proven(r, addr) || r->nproven == PROVEN_MAX)
		return;
	r->proven[r->nproven++] = xstrdup(addr);
}

/* 1 when addr was proven in this session and is safe as a mailbox name. */
static int
proven(const struct receiver *r, const char *addr)
{
	char	 local[ADDRESS_LOCAL_MAX + 1], domain[DOMAIN_NAME_SIZE];
	size_t	 i;

	for (i = 0; i < r->nproven; i++)
		if (strcmp(r->proven[i], addr) == 0)
			return (address_mailbox_name(addr, local,
			    sizeof(local), domain, sizeof(domain)) == 0);
	return (0);
}

static void
hook_data_abort(void *ctx)
{
	struct receiver	*r = ctx;

	if (r->w != NULL)
		spool_writer_abort(r->w);
	r->w = NULL;
}

static int
hook_etrn(void *ctx, const char *domain, char *reply, size_t size)
{
	struct receiver	*r = ctx;
	size_t		 i;
	int		 fd;

	if (!r->have_peer ||
	    !config_etrn_allowed(cfg, (struct sockaddr *)&r->peer)) {
		strlcpy(reply, "459 4.7.1 Client host rejected: ETRN not "
		    "allowed", size);
		return (-1);
	}
	for (i = 0; i < cfg->nrelays; i++)
		if (address_domain_match(domain, cfg->relays[i].name))
			break;
	if (i == cfg->nrelays) {
		snprintf(reply, size, "458 4.1.2 Unable to queue messages for "
		    "node %s", domain);
		return (-1);
	}
	if (spool_domain_lock(r->sp, cfg->relays[i].name, &fd) == 0) {
		close(fd);
		(void)cmd_spawn_flush(cfg->relays[i].name);
		log_info("ETRN %s from %s[%s]: flush started",
		    cfg->relays[i].name, "unknown", r->addr);
	} else if (errno == EWOULDBLOCK)
		log_info("ETRN %s from %s[%s]: flush already running",
		    cfg->relays[i].name, "unknown", r->addr);
	else {
		log_warn("ETRN %s: lock", cfg->relays[i].name);
		strlcpy(reply, "458 4.3.0 Unable to queue messages for node",
		    size);
		return (-1);
	}
	snprintf(reply, size, "250 2.0.0 Queuing for node %s started",
	    cfg->relays[i].name);
	return (0);
}

static int
hook_starttls(void *ctx, struct smtp_server_io *io, char *desc, size_t size)
{
	struct receiver	*r = ctx;
	char		 err[512];

	if (tls_server_accept(tls_server, r->in, r->out,
	    session_timeout(), &r->tls, err,
	    sizeof(err)) == -1) {
		log_warnx("STARTTLS from unknown[%s]: %s", r->addr, err);
		r->tls = NULL;
		return (-1);
	}
	io->ctx = r->tls;
	io->read = tls_read_timeout;
	io->write = tls_write_timeout;
	tls_info_summary(tls_conn_info(r->tls), desc, size);
	log_info("STARTTLS from unknown[%s]: %s", r->addr, desc);
	return (0);
}

/*
 * The client: getpeername(fd), else $TCPREMOTEIP (tcpserver), else
 * $SOCAT_PEERADDR (socat EXEC: gives a socketpair), else "local".
 */
static void
peer_from_fd(struct receiver *r, int fd)
{
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	socklen_t		 len = sizeof(r->peer);
	const char		*env;

	r->have_peer = 0;
	strlcpy(r->addr, "local", sizeof(r->addr));
	memset(&r->peer, 0, sizeof(r->peer));
	if (getpeername(fd, (struct sockaddr *)&r->peer, &len) == 0 &&
	    (r->peer.ss_family == AF_INET || r->peer.ss_family == AF_INET6))
		r->have_peer = 1;
	else if ((env = getenv("TCPREMOTEIP")) != NULL ||
	    (env = getenv("SOCAT_PEERADDR")) != NULL) {
		memset(&r->peer, 0, sizeof(r->peer));
		sin = (struct sockaddr_in *)&r->peer;
		sin6 = (struct sockaddr_in6 *)&r->peer;
		if (inet_pton(AF_INET, env, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			r->have_peer = 1;
		} else if (inet_pton(AF_INET6, env, &sin6->sin6_addr) == 1) {
			sin6->sin6_family = AF_INET6;
			r->have_peer = 1;
		}
	}
	if (!r->have_peer)
		return;
	if (r->peer.ss_family == AF_INET) {
		sin = (struct sockaddr_in *)&r->peer;
		inet_ntop(AF_INET, &sin->sin_addr, r->addr, sizeof(r->addr));
	} else {
		sin6 = (struct sockaddr_in6 *)&r->peer;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12],
			    r->addr, sizeof(r->addr));
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, r->addr,
			    sizeof(r->addr));
	}
}

/* One SMTP session on in/out.  Returns the exit status. */
static int
serve(int in, int out, struct spool **spp)
{
	struct receiver		 r;
	struct smtp_params	 p;
	struct smtp_hooks	 h;
	struct smtp_server_io		 io;
	struct smtp_server_io_fd	 iofd;
	char				 tlsdesc[128];
	size_t				 i;

	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		log_warn("signal SIGPIPE");
	memset(&r, 0, sizeof(r));
	r.in = in;
	r.out = out;
	peer_from_fd(&r, in);
	/* A spool kept from an earlier session: still the same directory? */
	if (*spp != NULL && spool_is_at(*spp, cfg->spool) != 1) {
		spool_close(*spp);
		*spp = NULL;
	}
	if (*spp == NULL && spool_open(cfg->spool, 1, spp) == -1) {
		*spp = NULL;
		/*
		 * The client gets an SMTP answer it will retry on, not a
		 * dropped connection (or, under inetd, our stderr).
		 */
		log_warn("spool %s", cfg->spool);
		refuse_unavailable(out);
		return (EXIT_TEMPFAIL);
	}
	r.sp = *spp;
	cmd_spool_mailbox(r.sp);

	smtp_server_io_fd_init(&io, &iofd, in, out);
	submit_begin(&r.sub, r.addr, r.have_peer ?
	    (struct sockaddr *)&r.peer : NULL);
	serve_params(&r, &p, &h);
	/* -T: the handshake before the greeting (RFC 8314 3.3). */
	if (implicit_tls &&
	    hook_starttls(&r, &io, tlsdesc, sizeof(tlsdesc)) == 0)
		p.tls_desc = tlsdesc;
	if (!implicit_tls || p.tls_desc != NULL)
		smtp_session(&p, &io, &h);
	hook_data_abort(&r);
	if (r.tls != NULL)
		tls_conn_free(r.tls);
	submit_end(&r.sub);
	rcptlist_free(r.rcptlist);
	rcpt_verify_free(r.rv);
	for (i = 0; i < r.nproven; i++)
		free(r.proven[i]);
	rcpt_primary_cache_free(&r.primaries);
	return (0);
}

/* The session's parameters and hooks (-s: submission's). */
static void
serve_params(struct receiver *r, struct smtp_params *pp,
    struct smtp_hooks *hp)
{
	struct smtp_params	 p;
	struct smtp_hooks	 h;

	memset(&p, 0, sizeof(p));
	p.hostname = cfg->hostname;
	p.client_addr = r->addr;
	p.client_name = "unknown";
	p.max_size = cfg->max_size;
	p.max_recipients = cfg->max_recipients;
	p.timeout = session_timeout();
	p.min_data_rate = cfg->min_data_rate;
	p.soft_error_limit = (int)cfg->soft_error_limit;
	p.hard_error_limit = (int)cfg->hard_error_limit;
	p.error_sleep = (int)cfg->error_sleep;
	p.tls_required = cfg->tls_required;
	p.postmaster_domain = cfg->nrelays > 0 ? cfg->relays[0].name : NULL;
	p.submission = submission;
	memset(&h, 0, sizeof(h));
	h.ctx = r;
	h.mail = hook_mail;
	h.rcpt = hook_rcpt;
	h.rcpt_rule = hook_rcpt_rule;
	h.data_begin = hook_data_begin;
	h.data_write = hook_data_write;
	h.data_commit = hook_data_commit;
	h.data_abort = hook_data_abort;
	h.etrn = submission ? NULL : hook_etrn;
	h.starttls = tls_server != NULL ? hook_starttls : NULL;
	if (submission) {
		h.auth_begin = hook_auth_begin;
		h.auth = hook_auth;
	}
	*pp = p;
	*hp = h;
}

static int
hook_auth_begin(void *ctx, char *reply, size_t size)
{
	struct receiver	*r = ctx;

	return (submit_auth_begin(&r->sub, reply, size));
}

static int
hook_auth(void *ctx, const char *mech, const char *authcid,
    const char *password, int bad_format, char *reply, size_t size)
{
	struct receiver	*r = ctx;

	return (submit_auth(&r->sub, mech, authcid, password, bad_format,
	    reply, size));
}

/*
 * -s: what submission needs (submit_config_check); -T without -s is
 * a usage error, found before.  0, or -1 with why.
 */
static int
submission_config(char *err, size_t size)
{
	if (!submission)
		return (0);
	return (submit_config_check(err, size));
}

/* "127.0.0.1:25", "[::1]:2525", "*:25", ":25". */
static int
listen_on(const char *spec)
{
	struct addrinfo	 hints, *res;
	char		 host[DOMAIN_NAME_SIZE], port[16];
	const char	*colon, *close_br;
	int		 fd, on = 1, e;

	if (spec[0] == '[') {
		if ((close_br = strchr(spec, ']')) == NULL ||
		    close_br[1] != ':')
			goto bad;
		colon = close_br + 1;
		if ((size_t)(close_br - spec - 1) >= sizeof(host))
			goto bad;
		memcpy(host, spec + 1, close_br - spec - 1);
		host[close_br - spec - 1] = '\0';
	} else {
		if ((colon = strrchr(spec, ':')) == NULL ||
		    (size_t)(colon - spec) >= sizeof(host))
			goto bad;
		memcpy(host, spec, colon - spec);
		host[colon - spec] = '\0';
	}
	if (strlcpy(port, colon + 1, sizeof(port)) >= sizeof(port) ||
	    port[0] == '\0')
		goto bad;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if ((e = getaddrinfo(host[0] == '\0' || strcmp(host, "*") == 0 ?
	    NULL : host, port, &hints, &res)) != 0) {
		log_cmd_errorx("listen %s: %s", spec, gai_strerror(e));
		return (-1);
	}
	if ((fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) == -1) {
		log_cmd_error("listen %s: socket", spec);
		freeaddrinfo(res);
		return (-1);
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    (res->ai_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof(on)) == -1) ||
	    bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, LISTEN_BACKLOG) == -1) {
		log_cmd_error("listen %s", spec);
		close(fd);
		freeaddrinfo(res);
		return (-1);
	}
	freeaddrinfo(res);
	return (fd);
 bad:
	log_cmd_errorx("listen: bad address \"%s\" (want ADDR:PORT or "
	    "[ADDR]:PORT)", spec);
	return (-1);
}

static void
on_signal(int sig)
{
	int	 saved = errno;

	if (sig == SIGCHLD)
		got_child = 1;
	else
		got_term = 1;
	if (sigpipe_fds[1] != -1)
		(void)write(sigpipe_fds[1], "x", 1);
	errno = saved;
}

/* 421 4.7.0 to a connection over max-sessions (or, from: per client). */
static void
refuse_busy(int fd, const char *from)
{
	char	 line[SMTP_REPLY_MAX];
	int	 n;

	n = snprintf(line, sizeof(line), "421 4.7.0 %s Error: too many "
	    "connections%s%s\r\n", cfg->hostname, from != NULL ? " from " :
	    "", from != NULL ? from : "");
	if (n > 0 && (size_t)n < sizeof(line) &&
	    write(fd, line, (size_t)n) == -1)
		log_warn("421 to busy client");
}

/*
 * max-sessions-per-client: the connection fd from ss, accepted for slot
 * me (by the child itself, or by the listener before it forks), is one
 * too many when the slots of running sessions then hold more than the
 * limit of its client (smtp_client_key): it gets 421 4.7.0 and is
 * closed, and 1 is returned.  Otherwise the slot keeps the client until
 * the session ends.  The slot is written before the others are read,
 * so of two connections accepted at once at the limit, each sees the
 * other: both are refused, never both let in.
 */
static int
client_refused(unsigned me, int fd, const struct sockaddr_storage *ss)
{
	char		 host[64];
	uint64_t	 key;
	unsigned	 k, n = 0, used;

	if (cfg->max_sessions_per_client == 0 ||
	    (key = smtp_client_key((const struct sockaddr *)ss)) ==
	    SMTP_CLIENT_NONE)
		return (0);
	atomic_store(&slots[me].client, key);
	used = atomic_load(slots_used);
	for (k = 0; k < used; k++)
		if (atomic_load(&slots[k].client) == key)
			n++;
	if (n <= cfg->max_sessions_per_client)
		return (0);
	atomic_store(&slots[me].client, SMTP_CLIENT_NONE);
	dns_addr_string((const struct sockaddr *)ss, host, sizeof(host));
	log_warnx("too many connections from unknown[%s] (%u): refused",
	    host, cfg->max_sessions_per_client);
	refuse_busy(fd, host);
	(void)close(fd);
	return (1);
}

static void
refuse_unavailable(int fd)
{
	char	 line[SMTP_REPLY_MAX];
	int	 n;

	n = snprintf(line, sizeof(line), "421 4.3.0 %s Error: queue "
	    "unavailable, try again later\r\n", cfg->hostname);
	if (n > 0 && (size_t)n < sizeof(line) &&
	    write(fd, line, (size_t)n) == -1)
		log_warn("421 to client");
}

/*
 * inetd and its relatives often hand the connection over as stderr too:
 * then nothing of ours may be written there, or it would reach the
 * client as if it were SMTP (and show it our file names).
 */
static int
stderr_is_client(void)
{
	struct stat	 in, er;

	if (fstat(0, &in) == -1 || fstat(2, &er) == -1)
		return (0);
	return (S_ISSOCK(in.st_mode) && in.st_dev == er.st_dev &&
	    in.st_ino == er.st_ino);
}

/* The client learns only that we cannot serve it now; the log, why. */
static int
inetd_refuse(const char *why)
{
	static const char line[] =
	    "421 4.3.5 Service not available: server configuration error\r\n";

	openlog("mxfb/receive", LOG_PID | LOG_NDELAY, LOG_MAIL);
	syslog(LOG_ERR, "%s", why);
	closelog();
	(void)write(1, line, sizeof(line) - 1);
	return (EXIT_CONFIG);
}

/*
 * STARTTLS's certificate and key, when configured: loaded (and the key's
 * permissions checked) once, before a process started as root becomes
 * `user`: the key may be readable by root alone, as Postfix's is.
 */
static int
load_tls(char *err, size_t errsize)
{
	if (cfg->tls_cert[0] == '\0')
		return (0);
	return (tls_server_new(cfg->tls_cert, cfg->tls_key, cfg->tls_ciphers,
	    &tls_server, err, errsize));
}

/* One session on fds 0/1, as inetd, tcpserver or systemd start us. */
static int
inetd_session(void)
{
	struct spool	*sp;
	char		 err[1024];
	int		 quiet, fd, rc;

	if ((quiet = stderr_is_client())) {
		if ((fd = open("/dev/null", O_WRONLY)) == -1 ||
		    dup2(fd, 2) == -1)
			return (inetd_refuse("receive: /dev/null as stderr"));
		if (fd != 2)
			(void)close(fd);
	}
	if (cmd_try_load_config(err, sizeof(err)) == -1) {
		if (quiet)
			return (inetd_refuse(err));
		log_cmd_errorx("%s", err);
		return (EXIT_CONFIG);
	}
	if (quiet && cfg->log_stderr)
		log_init("mxfb", 0);	/* stderr is the client: syslog */
	if (submission_config(err, sizeof(err)) == -1) {
		if (quiet)
			return (inetd_refuse(err));
		log_cmd_errorx("%s", err);
		return (EXIT_CONFIG);
	}
	if (load_tls(err, sizeof(err)) == -1) {
		/* Never a quiet plaintext fallback. */
		if (quiet)
			return (inetd_refuse(err));
		log_cmd_errorx("%s", err);
		return (EXIT_CONFIG);
	}
	/* Not a byte from the client before this. */
	if ((rc = cmd_try_become_user(1, err, sizeof(err))) != 0) {
		if (quiet)
			(void)inetd_refuse(err);
		else
			log_cmd_errorx("%s", err);
		return (rc);
	}
	sp = NULL;
	rc = serve(0, 1, &sp);
	spool_close(sp);
	return (rc);
}

/*
 * A child of the listener: serve the connection it was forked for, then
 * accept the next ones itself, one at a time, up to SESSIONS_PER_CHILD
 * (as Postfix's smtpd does): a fork costs more than a whole session on a
 * small VM.  Each session is served as in a fresh child (the recipients
 * file is read anew), except that the spool stays open from one session
 * to the next while its path still names the same directory (two system
 * calls instead of sixteen to open it again).  While a child waits, its
 * shared slot says so and the listener leaves accepting to it (see
 * struct child_slot).  An idle child ends after CHILD_IDLE seconds, or
 * at once when the listener stops (the life pipe reaches EOF).
 */
/*
 * The listener stops (SIGUSR1): let go of its sockets at once, so that
 * the port is free while this child's session goes on, and end after it.
 */
static void
on_child_stop(int sig)
{
	int	 i, saved = errno;

	child_stop = 1;
	for (i = 0; i < MAX_LISTEN; i++) {
		if (child_lfd[i] != -1)
			(void)close(child_lfd[i]);
		child_lfd[i] = -1;
	}
	errno = saved;
}

/*
 * This child (slot me) is busy again: if no other child is idle, wake
 * the listener so that it accepts.  (Sequentially consistent: of two
 * children turning busy at once, at least one sees the other busy.)
 */
static void
child_busy(unsigned me)
{
	unsigned	 k, used;
	char		 c = 0;

	atomic_store(&slots[me].idle, 0);
	used = atomic_load(slots_used);
	for (k = 0; k < used; k++)
		if (k != me && atomic_load(&slots[k].idle))
			return;
	if (write(note_fds[1], &c, 1) == -1 && errno != EAGAIN)
		log_warn("note to the listener");
}

/*
 * Wait for a connection on the listening sockets: epoll with
 * EPOLLEXCLUSIVE, so that one idle child wakes per connection, not all
 * of them.  -1: stop (idle too long, the listener went away, SIGUSR1).
 */
static int
child_accept(int *epfd, int nspecs, struct sockaddr_storage *ss)
{
	struct epoll_event	 ev[MAX_LISTEN + 1];
	socklen_t		 len;
	int			 i, n, fd;

	if (*epfd == -1) {
		if ((*epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
			return (-1);
		for (i = 0; i <= nspecs; i++) {
			memset(&ev[0], 0, sizeof(ev[0]));
			ev[0].events = i < nspecs ? EPOLLIN | EPOLLEXCLUSIVE :
			    EPOLLIN;
			ev[0].data.u32 = (uint32_t)i;
			if (epoll_ctl(*epfd, EPOLL_CTL_ADD, i < nspecs ?
			    child_lfd[i] : life_fds[0], &ev[0]) == -1)
				return (-1);
		}
	}
	for (;;) {
		if (child_stop)
			return (-1);
		n = epoll_wait(*epfd, ev, nspecs + 1, CHILD_IDLE * 1000);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0 || child_stop)
			return (-1);
		for (i = 0; i < n; i++)
			if (ev[i].data.u32 == (uint32_t)nspecs)
				return (-1);	/* EOF: the listener stopped */
		for (i = 0; i < n; i++) {
			len = sizeof(*ss);
			fd = accept4(child_lfd[ev[i].data.u32],
			    (struct sockaddr *)ss, &len, SOCK_CLOEXEC);
			if (fd != -1)
				return (fd);
			/* EAGAIN: another process took it first. */
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				return (-1);	/* shut down: stopping */
		}
	}
}

static int
child_loop(int fd, const int *lfd, int nspecs, unsigned me)
{
	struct sigaction	 sa;
	struct sockaddr_storage	 ss;
	struct spool		*sp = NULL;
	sigset_t		 set;
	int			 i, rc, served = 0, epfd = -1;

	for (i = 0; i < MAX_LISTEN; i++)
		child_lfd[i] = i < nspecs ? lfd[i] : -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_child_stop;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (sigaction(SIGUSR1, &sa, NULL) == -1 ||
	    sigprocmask(SIG_UNBLOCK, &set, NULL) == -1)
		child_stop = 1;		/* one session, as before */
	for (;;) {
		rc = serve(fd, fd, &sp);
		(void)close(fd);
		atomic_store(&slots[me].client, SMTP_CLIENT_NONE);
		if (rc != 0 || ++served >= SESSIONS_PER_CHILD || child_stop)
			break;
		atomic_store(&slots[me].idle, 1);
		/* A refused client leaves this child idle: no wake-up. */
		while ((fd = child_accept(&epfd, nspecs, &ss)) != -1 &&
		    client_refused(me, fd, &ss))
			;
		child_busy(me);		/* also when leaving: not idle now */
		if (fd == -1) {
			rc = 0;
			break;
		}
	}
	if (epfd != -1)
		(void)close(epfd);
	spool_close(sp);
	return (rc);
}

/* The listener: how many of its children (kids, by slot) are idle. */
static unsigned
count_idle(const pid_t *kids)
{
	unsigned	 k, n = 0;

	for (k = 0; k < nslots; k++)
		if (kids[k] != 0 && atomic_load(&slots[k].idle))
			n++;
	return (n);
}

static int
listener(char **specs, int nspecs, unsigned maxsessions)
{
	int	 lfd[MAX_LISTEN], i;

	for (i = 0; i < nspecs; i++)
		if ((lfd[i] = listen_on(specs[i])) == -1)
			return (EXIT_UNAVAIL);
	return (serve_listening(lfd, specs, nspecs, 0, maxsessions));
}

/*
 * systemd socket activation with Accept=no (sd_listen_fds(3)): the
 * listening sockets come as fds 3.. when LISTEN_PID is ours.  Under
 * Accept=yes fd 3 is the connection itself, not listening: then 0 and
 * the session is served on fd 0/1 as under inetd (moved there when fd 0
 * is not a socket).  The variables are
 * removed either way (nothing started from here inherits them).
 * Returns how many sockets (names: their addresses, for the log), -1
 * on a malformed set.
 */
static int
activated_sockets(int *lfd, char **names, size_t namesize)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	const char		*pidstr, *nstr, *errstr;
	char			 host[64];
	long long		 pid, n;
	int			 i, on, fl;

	pidstr = getenv("LISTEN_PID");
	nstr = getenv("LISTEN_FDS");
	if (pidstr == NULL || nstr == NULL)
		return (0);
	pid = strtonum(pidstr, 1, INT_MAX, &errstr);
	if (errstr != NULL)
		pid = 0;
	n = strtonum(nstr, 0, INT_MAX, &errstr);
	(void)unsetenv("LISTEN_PID");
	(void)unsetenv("LISTEN_FDS");
	(void)unsetenv("LISTEN_FDNAMES");
	if (pid != (long long)getpid() || (errstr == NULL && n == 0))
		return (0);
	len = sizeof(on);
	if (getsockopt(3, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == -1)
		return (0);
	if (on == 0) {
		/*
		 * Accept=yes: fd 3 is the connection.  Without
		 * StandardInput=socket, fd 0 is not: serve fd 3 there.
		 */
		len = sizeof(on);
		if (getsockopt(0, SOL_SOCKET, SO_TYPE, &on, &len) == -1 &&
		    errno == ENOTSOCK) {
			if (dup2(3, 0) == -1 || dup2(3, 1) == -1) {
				log_cmd_error("socket activation: dup2");
				return (-1);
			}
			(void)close(3);
		}
		return (0);
	}
	if (errstr != NULL || n > MAX_LISTEN) {
		log_cmd_errorx("socket activation: LISTEN_FDS=%s (at most "
		    "%d)", nstr, MAX_LISTEN);
		return (-1);
	}
	for (i = 0; i < n; i++) {
		lfd[i] = 3 + i;
		len = sizeof(on);
		if (getsockopt(lfd[i], SOL_SOCKET, SO_ACCEPTCONN, &on,
		    &len) == -1 || on == 0) {
			log_cmd_errorx("socket activation: fd %d is not a "
			    "listening socket", lfd[i]);
			return (-1);
		}
		if ((fl = fcntl(lfd[i], F_GETFL)) == -1 ||
		    fcntl(lfd[i], F_SETFL, fl | O_NONBLOCK) == -1 ||
		    fcntl(lfd[i], F_SETFD, FD_CLOEXEC) == -1) {
			log_cmd_error("socket activation: fd %d", lfd[i]);
			return (-1);
		}
	}
	for (i = 0; i < n; i++) {
		len = sizeof(ss);
		memset(&ss, 0, sizeof(ss));
		(void)getsockname(lfd[i], (struct sockaddr *)&ss, &len);
		dns_addr_string((struct sockaddr *)&ss, host, sizeof(host));
		names[i] = xmalloc(namesize);
		(void)snprintf(names[i], namesize, "%s%s%s:%u (fd %d, socket "
		    "activation)", ss.ss_family == AF_INET6 ? "[" : "", host,
		    ss.ss_family == AF_INET6 ? "]" : "", ntohs(ss.ss_family ==
		    AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port), lfd[i]);
	}
	return ((int)n);
}

/*
 * -l: set up before the first accept: TLS loaded and `user` become (the
 * sockets are bound), the signal and note pipes, the children's shared
 * slots, and the signal handlers.  Returns 0 or the exit code.
 */
static int
listen_prepare(struct listening *l)
{
	struct sigaction	 sa;
	sigset_t		 usr1;
	char			 err[1024];
	unsigned		 k;
	int			 rc;

	/* The sockets are bound and the key read: root is no longer needed. */
	if (load_tls(err, sizeof(err)) == -1) {
		log_cmd_errorx("%s", err);
		return (EXIT_CONFIG);
	}
	if ((rc = cmd_try_become_user(1, err, sizeof(err))) != 0) {
		log_cmd_errorx("%s", err);
		return (rc);
	}
	if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) == -1 ||
	    pipe2(note_fds, O_CLOEXEC | O_NONBLOCK) == -1 ||
	    pipe2(life_fds, O_CLOEXEC) == -1) {
		log_cmd_error("pipe");
		return (EXIT_SOFTWARE);
	}
	l->kids = xcalloc(l->maxsessions, sizeof(*l->kids));
	slots = mmap(NULL, SLOTS_SIZE(l->maxsessions), PROT_READ |
	    PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (slots == MAP_FAILED) {
		log_cmd_error("mmap");
		return (EXIT_SOFTWARE);
	}
	slots_used = (atomic_uint *)(void *)(slots + l->maxsessions);
	for (k = 0; k < l->maxsessions; k++)
		atomic_store(&slots[k].client, SMTP_CLIENT_NONE);
	/* Children inherit it blocked until their handler is in place. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &usr1, NULL) == -1) {
		log_cmd_error("sigprocmask");
		return (EXIT_SOFTWARE);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGCHLD, &sa, NULL) == -1 ||
	    sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGINT, &sa, NULL) == -1 ||
	    signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		log_cmd_error("sigaction");
		return (EXIT_SOFTWARE);
	}
	return (0);
}

/* The children that ended free their slots. */
static void
reap_children(struct listening *l)
{
	pid_t		 pid;
	unsigned	 k;
	int		 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (k = 0; k < nslots; k++)
			if (l->kids[k] == pid)
				break;
		if (k == nslots)
			continue;
		/* Died idle (killed): not idle any more. */
		atomic_store(&slots[k].idle, 0);
		atomic_store(&slots[k].client, SMTP_CLIENT_NONE);
		l->kids[k] = 0;
		l->nchildren--;
	}
}

/*
 * Accept a connection on listening socket i and fork a child for it in
 * a free slot, or refuse it: over max-sessions, or over
 * max-sessions-per-client for its client.
 */
static void
accept_session(struct listening *l, int i)
{
	struct sigaction	 sa;
	struct receiver		 r;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	unsigned		 slot;
	pid_t			 pid;
	int			 fd;

	sslen = sizeof(ss);
	if ((fd = accept4(l->lfd[i], (struct sockaddr *)&ss, &sslen,
	    SOCK_CLOEXEC)) == -1) {
		if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("accept");
		return;
	}
	if (l->nchildren >= l->maxsessions) {
		memset(&r, 0, sizeof(r));
		peer_from_fd(&r, fd);
		log_warnx("too many connections (%u): refused unknown[%s]",
		    l->nchildren, r.addr);
		refuse_busy(fd, NULL);
		close(fd);
		return;
	}
	for (slot = 0; l->kids[slot] != 0; slot++)
		;	/* nchildren < maxsessions: one is free */
	if (slot + 1 > nslots) {
		nslots = slot + 1;
		atomic_store(slots_used, nslots);
	}
	if (client_refused(slot, fd, &ss))
		return;
	if ((pid = fork()) == -1) {
		log_warn("fork");
		atomic_store(&slots[slot].client, SMTP_CLIENT_NONE);
		close(fd);
		return;
	}
	if (pid == 0) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_RESTART;
		if (sigaction(SIGCHLD, &sa, NULL) == -1 ||
		    sigaction(SIGTERM, &sa, NULL) == -1 ||
		    sigaction(SIGINT, &sa, NULL) == -1)
			_exit(EXIT_SOFTWARE);
		close(sigpipe_fds[0]);
		close(sigpipe_fds[1]);
		sigpipe_fds[0] = sigpipe_fds[1] = -1;
		close(note_fds[0]);
		close(life_fds[1]);
		_exit(child_loop(fd, l->lfd, l->nspecs, slot));
	}
	l->kids[slot] = pid;
	l->nchildren++;
	close(fd);
}

/*
 * Stop listening now, for every process that shares the sockets: the
 * port is refused at once, not only once each child has run and closed
 * its copy.  Idle children end, busy ones let go of the port.
 */
static void
stop_listening(struct listening *l, int inherited, unsigned nidle)
{
	unsigned	 k;
	int		 i;

	for (i = 0; i < l->nspecs; i++) {
		if (!inherited)
			(void)shutdown(l->lfd[i], SHUT_RDWR);
		close(l->lfd[i]);
	}
	close(life_fds[1]);	/* idle children end */
	for (k = 0; k < nslots; k++)	/* busy ones free the port */
		if (l->kids[k] != 0)
			(void)kill(l->kids[k], SIGUSR1);
	log_info("stopped listening (%u sessions still running)",
	    l->nchildren - nidle);
	free(l->kids);
	l->kids = NULL;
	(void)munmap(slots, SLOTS_SIZE(l->maxsessions));
	slots = NULL;
}

/*
 * Serve the listening sockets lfd (names for the log) until SIGTERM.
 * inherited: they belong to whoever passed them (systemd), which keeps
 * listening after us: closed, never shut down.
 */
static int
serve_listening(int *lfd, char **specs, int nspecs, int inherited,
    unsigned maxsessions)
{
	struct listening	 l;
	struct pollfd		 pfd[MAX_LISTEN + 1];
	unsigned		 nidle = 0;
	char			 drain[64];
	int			 i, npfd, rc;

	memset(&l, 0, sizeof(l));
	l.lfd = lfd;
	l.nspecs = nspecs;
	l.maxsessions = maxsessions;
	if ((rc = listen_prepare(&l)) != 0)
		return (rc);
	for (i = 0; i < nspecs; i++)
		log_info("listening on %s", specs[i]);
	while (!got_term) {
		/*
		 * While a child is idle, accepting is left to it: no fork.
		 */
		nidle = count_idle(l.kids);
		pfd[0].fd = sigpipe_fds[0];
		pfd[0].events = POLLIN;
		pfd[1].fd = note_fds[0];
		pfd[1].events = POLLIN;
		npfd = 2;
		for (i = 0; nidle == 0 && i < nspecs; i++) {
			pfd[npfd].fd = lfd[i];
			pfd[npfd++].events = POLLIN;
		}
		if (poll(pfd, npfd, -1) == -1) {
			if (errno == EINTR)
				continue;
			log_cmd_error("poll");
			return (EXIT_SOFTWARE);
		}
		while (read(sigpipe_fds[0], drain, sizeof(drain)) > 0)
			;
		while (read(note_fds[0], drain, sizeof(drain)) > 0)
			;
		if (got_child) {
			got_child = 0;
			reap_children(&l);
		}
		if (got_term)
			break;
		nidle = count_idle(l.kids);
		for (i = 0; nidle == 0 && i < npfd - 2; i++)
			if (pfd[i + 2].revents & POLLIN)
				accept_session(&l, i);
	}
	stop_listening(&l, inherited, nidle);
	return (0);
}

int
cmd_receive(int argc, char **argv)
{
	char		*specs[MAX_LISTEN], err[512];
	const char	*errstr;
	long long	 maxsessions = 0;
	int		 ch, nspecs = 0, nact = 0, lfd[MAX_LISTEN], i, rc;

	while ((ch = getopt(argc, argv, "C:c:hl:sT")) != -1) {
		switch (ch) {
		case 'C':
			cmd_set_config_file(optarg);
			break;
		case 'c':
			maxsessions = strtonum(optarg, 1,
			    CONFIG_MAX_SESSIONS_MAX, &errstr);
			if (errstr != NULL) {
				log_cmd_errorx("-c %s: %s", optarg, errstr);
				return (EXIT_USAGE);
			}
			break;
		case 'h':
			cmd_usage(USAGE, 1);
		case 'l':
			if (nspecs == MAX_LISTEN) {
				log_cmd_errorx("at most %d -l options",
				    MAX_LISTEN);
				return (EXIT_USAGE);
			}
			specs[nspecs++] = optarg;
			break;
		case 's':
			submission = 1;
			break;
		case 'T':
			implicit_tls = 1;
			break;
		default:
			cmd_usage(USAGE, 0);
		}
	}
	if (optind != argc)
		cmd_usage(USAGE, 0);
	if (implicit_tls && !submission) {
		log_cmd_errorx("-T (implicit TLS) is for submission: -s -T");
		return (EXIT_USAGE);
	}
	if (nspecs == 0) {
		if ((nact = activated_sockets(lfd, specs,
		    LISTEN_NAME_SIZE)) == 0)
			return (inetd_session());
		if (nact == -1)
			return (EXIT_UNAVAIL);
	}
	cmd_load_config();
	if (submission_config(err, sizeof(err)) == -1) {
		log_cmd_errorx("%s", err);
		return (EXIT_CONFIG);
	}
	if (maxsessions == 0)
		maxsessions = cfg->max_sessions;	/* at least 1 */
	if (nact > 0) {
		rc = serve_listening(lfd, specs, nact, 1,
		    (unsigned)maxsessions);
		for (i = 0; i < nact; i++)
			free(specs[i]);
		return (rc);
	}
	return (listener(specs, nspecs, (unsigned)maxsessions));
}
