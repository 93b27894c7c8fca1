/*
 * flush_engine.h - flush's delivery engine, shared by cmd/flush.c (the
 * command, the queue walk, the delivery of one claimed message over an
 * open session) and cmd/flush_engine.c (routes per domain, the next-hop
 * hosts, the pool of delivery threads).  Private to flush.
 */
#ifndef MXFB_FLUSH_ENGINE_H
#define MXFB_FLUSH_ENGINE_H

#include <sys/types.h>
#include <sys/socket.h>

#include "core/dns.h"
#include "core/mail/queue_id.h"
#include "core/starttls.h"
#include "core/tls.h"
#include "core/util.h"

struct smtp_conn;
struct spool;

/* The messages of one recipient domain in this run. */
struct job {
	char		 domain[DOMAIN_NAME_SIZE];
	char		(*ids)[QUEUE_ID_SIZE];
	unsigned char	*multi;		/* message has other domains too */
	size_t		 nids, cap;
};

struct counts {
	unsigned	 delivered, deferred, failed;
};

/*
 * One delivery thread's session: the host it talks to (an address and
 * port, the MX name for TLS and logs, the tls-outbound level), and the
 * domain of the message in hand.
 */
struct worker {
	struct spool		*sp;		/* the thread's own handle */
	const char		*domain;
	enum dns_status		 route_status;
	struct lookup_error	 route_error;
	const char		*mx_host;
	int			 port;
	struct sockaddr_storage	 addr;
	socklen_t		 addrlen;
	enum tls_level		 level;
	struct smtp_conn	*conn;
	struct starttls_contexts tls;		/* per level, made on use */
	int			 dead;		/* no session to be had */
	char			 dead_reason[1024];
	int			 reconnects;
	struct counts		 n;
	/* Removals not yet durable: one fsync for several. */
	size_t			 nsent;
	time_t			 sent_since;
};

/* What flush_open_session found. */
#define SESSION_UP		0
#define SESSION_HOST_DOWN	(-1)	/* refused, timed out, no greeting */
#define SESSION_TLS_FAILED	(-2)	/* at this level; the host answered */

/* flush.c: one session and one message. */
int	 flush_open_session(struct worker *);
void	 flush_deliver_one(struct worker *, const char *id, int *busy);
void	 flush_remove_sent(struct worker *);
void	 flush_observe(struct worker *, int up);

/*
 * flush_engine.c: deliver the jobs with up to flush-concurrency
 * sessions (threads of this process), at most flush-per-host to one
 * host.  Each message's outcome adds its counts to a record written to
 * report_fd (whole, below PIPE_BUF).  force: host back-off in the spool
 * is ignored (flush -f, named IDs).  -1 when no thread could open the
 * spool (nothing was tried).
 */
int	 flush_engine_run(const struct job *, size_t njobs, int force,
	    int report_fd);

#endif
