/*
 * flush_engine.c - flush's delivery engine: messages go per next-hop
 * host, not per domain.
 *
 * Each domain's route is looked up (RFC 5321 5.1, core/mx.c) and stands
 * at its first address whose host (address and port) is not known dead;
 * the messages of every domain standing at one host wait in that host's
 * queue.  A pool of threads (flush-concurrency, small stacks) takes
 * work: a route to look up, a session with a host (one blocking SMTP
 * client connection carrying its queued messages one transaction each,
 * RSET between; at most flush-per-host sessions to one host, and one
 * until the host has greeted us), or the deferral of messages no host
 * is left for.
 *
 * Guarantees:
 * - Claims are the spool's (a rename per message, held only while the
 *   message is in hand): concurrent flushes and threads never deliver a
 *   message twice, a killed process leaves claims spool_recover returns.
 * - A host that refuses, times out or greets with anything but 2xx is
 *   dead for the rest of the run: it is never connected to again, the
 *   domains standing at it move on to their next address, and those
 *   with none left defer all their messages at once with its reason.
 *   Its note in the spool (spool_host_observe) keeps it from being tried
 *   by other runs before its back-off ends (unless forced: -f, IDs).
 * - Hosts seen up last time (within retry-max) are served first, then
 *   new ones, then the deferrals, then hosts whose back-off just ended:
 *   a dead or hung host holds at most flush-per-host threads (one while
 *   unproven), never the pool.
 * - Thread safety: every thread has its own spool handle, resolver, TLS
 *   contexts and connection; the configuration is read-only; log lines
 *   are one write(2) or syslog(3) each; learn.c serialises its database
 *   handle; getaddrinfo, strerror (glibc 2.32 and later) and OpenSSL 3
 *   are thread-safe.  The engine's own tables are guarded by one mutex,
 *   never held across I/O but for the small host note read when a host
 *   is first met.
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/flush_engine.h"
#include "core/config.h"
#include "core/dns.h"
#include "core/log.h"
#include "core/mx.h"
#include "core/smtp_client.h"
#include "core/util.h"
#include "spool/spool.h"

#define THREAD_STACK	(1024 * 1024)	/* ASAN frames need the room */
#define CONN_SHARE	4	/* queued messages per further session */
#define BUSY_RETRIES	20	/* a multi-domain message claimed elsewhere */
#define BUSY_WAIT_MS	100
#define IDLE_WAIT_MS	100
#define RESOLVER_ERROR_SIZE 256
#define FDS_PER_THREAD	16	/* spool handle, mailbox, connection, DNS */
#define FDS_SPARE	64
#define NONE		((size_t)-1)

enum host_state { HOST_NEW, HOST_UP, HOST_DEAD };
/* The order hosts are served in. */
enum host_rank { RANK_UP, RANK_NEW, RANK_DOWN };

/* Item indexes in arrival order; taken ones become NONE. */
struct queue {
	size_t		*v;
	size_t		 head, len, cap, live;
};

struct e_domain {
	const struct job	*job;
	size_t			 first;		/* its items: [first, +nids) */
	int			 resolved;	/* 0 no, 1 in hand, 2 done */
	enum dns_status		 status;
	struct lookup_error	 error;
	struct mx_route		 route;
	size_t			 target, addr;	/* where the route stands */
	size_t			 host;		/* NONE: no host left */
	enum tls_level		 level;
	int			 observed;	/* recorded: 1 up, 2 down */
	char			 reason[1024];	/* why no host is left */
};

struct e_item {
	size_t		 dom, idx;	/* the job's ids[idx] */
	int		 tries;
	int64_t		 ready;		/* waits until this now_ms() */
};

struct e_host {
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	char			 key[HOST_KEY_SIZE];
	enum host_state		 state;
	enum host_rank		 rank;
	unsigned		 active;	/* sessions open or opening */
	int			 noted;		/* note written: 1 up, 2 down */
	char			 reason[1024];	/* why it is dead */
	struct queue		 q;
};

struct engine {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct e_domain	*doms;
	size_t		 ndoms, next_resolve;
	size_t		 unresolved;	/* routes not looked up yet */
	struct e_item	*items;
	size_t		 nitems;
	struct e_host	*hosts;
	size_t		 nhosts, hostcap;
	struct queue	 deferq;
	size_t		 queued;	/* items in any queue */
	unsigned	 busy;		/* threads at work */
	unsigned	 running;	/* threads with a spool */
	unsigned	 per_host;
	int		 force, report_fd;
};

enum task_kind { TASK_NONE, TASK_RESOLVE, TASK_HOST, TASK_DEFER };

struct task {
	enum task_kind	 kind;
	size_t		 n;		/* domain, host or item */
	const char	*domain;	/* a session's first, for its logs */
	enum tls_level	 level;		/* a session's class: level, name */
	const char	*mx_host;
	int		 port;
};

static void	 queue_push(struct queue *, size_t);
static size_t	 queue_take(struct engine *, struct queue *, int64_t,
		    const struct task *);
static int	 item_class(const struct engine *, size_t,
		    const struct task *);
static size_t	 host_find(struct engine *, struct spool *,
		    const struct sockaddr_storage *);
static void	 domain_place(struct engine *, struct spool *,
		    struct e_domain *);
static void	 item_route(struct engine *, size_t);
static void	 requeue(struct engine *, size_t);
static void	 host_fail(struct engine *, struct spool *, size_t,
		    const char *);
static void	 class_fail(struct engine *, struct spool *, size_t,
		    const struct task *, const char *);
static int	 pick_host(struct engine *, enum host_rank, int64_t,
		    struct task *);
static int	 pick(struct engine *, struct task *);
static void	 report(struct engine *, struct worker *);
static void	 note_host(struct engine *, struct worker *, size_t, int);
static void	 run_resolve(struct engine *, struct worker *,
		    struct dns_resolver **, size_t);
static void	 deliver_item(struct engine *, struct worker *, size_t,
		    const struct task *);
static void	 run_session(struct engine *, struct worker *,
		    const struct task *);
static void	 run_defer(struct engine *, struct worker *, size_t);
static size_t	 session_next(struct engine *, const struct task *);
static void	 wait_a_little(struct engine *, int);
static void	*thread_main(void *);
static size_t	 thread_count(size_t);

static void
queue_push(struct queue *q, size_t item)
{
	if (q->len == q->cap) {
		if (q->head > 0 && q->head >= q->len / 2) {
			memmove(q->v, q->v + q->head,
			    (q->len - q->head) * sizeof(*q->v));
			q->len -= q->head;
			q->head = 0;
		} else {
			q->cap = q->cap ? q->cap * 2 : 16;
			q->v = xreallocarray(q->v, q->cap, sizeof(*q->v));
		}
	}
	q->v[q->len++] = item;
	q->live++;
}

/* Does the item belong to the session's class (t NULL: any)? */
static int
item_class(const struct engine *e, size_t item, const struct task *t)
{
	const struct e_domain	*d = &e->doms[e->items[item].dom];

	if (t == NULL)
		return (1);
	return (d->host != NONE && d->level == t->level &&
	    strcmp(d->route.targets[d->target].host, t->mx_host) == 0);
}

/* The first item that is ready (and of t's class): taken off q. */
static size_t
queue_take(struct engine *e, struct queue *q, int64_t now,
    const struct task *t)
{
	size_t	 k, item;

	for (k = q->head; k < q->len; k++) {
		item = q->v[k];
		if (item == NONE || e->items[item].ready > now ||
		    !item_class(e, item, t))
			continue;
		q->v[k] = NONE;
		q->live--;
		e->queued--;
		while (q->head < q->len && q->v[q->head] == NONE)
			q->head++;
		return (item);
	}
	return (NONE);
}

/*
 * The host of an address, met for the first time: its note decides its
 * rank (up within retry-max: served first), and a back-off not over yet
 * makes it dead at once (unforced).
 */
static size_t
host_find(struct engine *e, struct spool *sp,
    const struct sockaddr_storage *ss)
{
	struct host_note	 n;
	struct e_host		*h;
	char			 key[HOST_KEY_SIZE];
	size_t			 i;
	time_t			 now = time(NULL);

	spool_host_key((const struct sockaddr *)ss, key, sizeof(key));
	for (i = 0; i < e->nhosts; i++)
		if (strcmp(e->hosts[i].key, key) == 0)
			return (i);
	if (e->nhosts == e->hostcap) {
		e->hostcap = e->hostcap ? e->hostcap * 2 : 16;
		e->hosts = xreallocarray(e->hosts, e->hostcap,
		    sizeof(*e->hosts));
	}
	h = &e->hosts[e->nhosts];
	memset(h, 0, sizeof(*h));
	h->ss = *ss;
	h->len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	(void)strlcpy(h->key, key, sizeof(h->key));
	h->rank = RANK_NEW;
	if (spool_host_read(sp, key, &n) == 0) {
		if (n.up && n.time >= now - cfg->retry_max)
			h->rank = RANK_UP;
		else if (n.up)
			h->rank = RANK_NEW;
		else if (!e->force && n.retry > now) {
			h->state = HOST_DEAD;
			h->noted = 2;
			(void)snprintf(h->reason, sizeof(h->reason),
			    "%s (host down, next try in %llds)", n.reason[0] ?
			    n.reason : "no answer", (long long)(n.retry - now));
		} else
			h->rank = RANK_DOWN;
	}
	return (e->nhosts++);
}

/*
 * Move the domain's route to its first address, from where it stands,
 * whose host is not dead.  None left: d->host is NONE, d->reason says
 * why (the last dead host's reason).
 */
static void
domain_place(struct engine *e, struct spool *sp, struct e_domain *d)
{
	struct mx_target	*t;
	size_t			 h;

	d->host = NONE;
	for (; d->target < d->route.ntargets; d->target++, d->addr = 0) {
		t = &d->route.targets[d->target];
		for (; d->addr < t->naddrs; d->addr++) {
			h = host_find(e, sp, &t->addrs[d->addr]);
			if (e->hosts[h].state != HOST_DEAD) {
				d->host = h;
				return;
			}
			(void)strlcpy(d->reason, e->hosts[h].reason,
			    sizeof(d->reason));
		}
	}
}

/* Into its domain's host queue, or the deferrals. */
static void
item_route(struct engine *e, size_t item)
{
	struct e_domain	*d = &e->doms[e->items[item].dom];

	if (d->host == NONE)
		queue_push(&e->deferq, item);
	else
		queue_push(&e->hosts[d->host].q, item);
	e->queued++;
}

/* The items of host h's queue go where their domains now stand. */
static void
requeue(struct engine *e, size_t h)
{
	struct queue	 old = e->hosts[h].q;
	size_t		 k;

	memset(&e->hosts[h].q, 0, sizeof(e->hosts[h].q));
	for (k = old.head; k < old.len; k++) {
		if (old.v[k] == NONE)
			continue;
		e->queued--;
		item_route(e, old.v[k]);
	}
	free(old.v);
}

/* Host h is dead for this run: its domains move on. */
static void
host_fail(struct engine *e, struct spool *sp, size_t h, const char *why)
{
	struct e_domain	*d;
	size_t		 i;

	e->hosts[h].state = HOST_DEAD;
	(void)strlcpy(e->hosts[h].reason, why, sizeof(e->hosts[h].reason));
	for (i = 0; i < e->ndoms; i++) {
		d = &e->doms[i];
		if (d->resolved != 2 || d->host != h)
			continue;
		(void)strlcpy(d->reason, why, sizeof(d->reason));
		d->addr++;
		domain_place(e, sp, d);
	}
	requeue(e, h);
}

/* TLS at t's level failed with host h: the domains of that class move. */
static void
class_fail(struct engine *e, struct spool *sp, size_t h, const struct task *t,
    const char *why)
{
	struct e_domain	*d;
	size_t		 i;

	for (i = 0; i < e->ndoms; i++) {
		d = &e->doms[i];
		if (d->resolved != 2 || d->host != h || d->level != t->level ||
		    strcmp(d->route.targets[d->target].host, t->mx_host) != 0)
			continue;
		(void)strlcpy(d->reason, why, sizeof(d->reason));
		d->addr++;
		domain_place(e, sp, d);
	}
	requeue(e, h);
}

/* A session with a host of this rank that may have one more: 1. */
static int
pick_host(struct engine *e, enum host_rank rank, int64_t now, struct task *t)
{
	struct e_host	*h;
	struct e_domain	*d;
	size_t		 i, k, item = NONE;
	unsigned	 cap;

	for (i = 0; i < e->nhosts; i++) {
		h = &e->hosts[i];
		if (h->rank != rank || h->state == HOST_DEAD || h->q.live == 0)
			continue;
		cap = h->state == HOST_UP ? e->per_host : 1;
		if (h->active >= cap || (h->active > 0 &&
		    h->q.live <= h->active * CONN_SHARE))
			continue;
		for (k = h->q.head; k < h->q.len; k++) {
			item = h->q.v[k];
			if (item != NONE && e->items[item].ready <= now)
				break;
		}
		if (k == h->q.len)
			continue;
		d = &e->doms[e->items[item].dom];
		t->kind = TASK_HOST;
		t->n = i;
		t->domain = d->job->domain;
		t->level = d->level;
		t->mx_host = d->route.targets[d->target].host;
		t->port = d->route.targets[d->target].port;
		h->active++;
		return (1);
	}
	return (0);
}

/*
 * The next work, by priority: routes to look up, sessions with hosts
 * seen up, with new hosts, deferrals, sessions with hosts whose back-off
 * has ended.  0 when there is none now.
 */
static int
pick(struct engine *e, struct task *t)
{
	int64_t	 now = now_ms();

	memset(t, 0, sizeof(*t));
	if (e->next_resolve < e->ndoms) {
		t->kind = TASK_RESOLVE;
		t->n = e->next_resolve++;
		e->doms[t->n].resolved = 1;
		return (1);
	}
	if (pick_host(e, RANK_UP, now, t) || pick_host(e, RANK_NEW, now, t))
		return (1);
	if ((t->n = queue_take(e, &e->deferq, now, NULL)) != NONE) {
		t->kind = TASK_DEFER;
		return (1);
	}
	return (pick_host(e, RANK_DOWN, now, t));
}

/* The thread's new counts, to flush: one record, written whole. */
static void
report(struct engine *e, struct worker *w)
{
	if (w->n.delivered == 0 && w->n.deferred == 0 && w->n.failed == 0)
		return;
	if (e->report_fd != -1 && write_all(e->report_fd, &w->n,
	    sizeof(w->n)) == -1)
		log_warn("cannot report counts");
	memset(&w->n, 0, sizeof(w->n));
}

/* The host's note, once per run for up and for down. */
static void
note_host(struct engine *e, struct worker *w, size_t h, int up)
{
	char	 key[HOST_KEY_SIZE];
	int	 want = up ? 1 : 2;

	(void)pthread_mutex_lock(&e->mu);
	if (e->hosts[h].noted & want) {
		(void)pthread_mutex_unlock(&e->mu);
		return;
	}
	e->hosts[h].noted |= want;
	(void)strlcpy(key, e->hosts[h].key, sizeof(key));
	(void)pthread_mutex_unlock(&e->mu);
	if (spool_host_observe(w->sp, key, up, w->mx_host, up ? NULL :
	    w->dead_reason, cfg->retry_min, cfg->retry_max, NULL) == -1)
		log_warn("host %s: cannot record its state", key);
}

/* Look up a domain's route and queue its messages where it stands. */
static void
run_resolve(struct engine *e, struct worker *w, struct dns_resolver **dr,
    size_t n)
{
	struct e_domain		*d = &e->doms[n];
	struct mx_route		 route;
	struct lookup_error	 err;
	enum dns_status		 st = DNS_OK;
	char			 why[RESOLVER_ERROR_SIZE];
	size_t			 i;

	memset(&route, 0, sizeof(route));
	memset(&err, 0, sizeof(err));
	if (d->job->domain[0] != '\0') {
		if (*dr == NULL && dns_resolver_open(cfg, dr, why,
		    sizeof(why)) == -1) {
			*dr = NULL;
			st = DNS_TEMP;
			lookup_error_set(&err, "4.4.3", "resolver: %s", why);
		} else
			st = mx_route_lookup(*dr, cfg, d->job->domain, &route,
			    &err);
	}
	(void)pthread_mutex_lock(&e->mu);
	d->status = st;
	d->error = err;
	d->route = route;
	d->level = config_tls_level(cfg, d->job->domain);
	(void)strlcpy(d->reason, "no primary to connect to",
	    sizeof(d->reason));
	if (st == DNS_OK && d->job->domain[0] != '\0')
		domain_place(e, w->sp, d);
	else
		d->host = NONE;
	d->resolved = 2;
	e->unresolved--;
	for (i = 0; i < d->job->nids; i++)
		item_route(e, d->first + i);
	(void)pthread_cond_broadcast(&e->cv);
	(void)pthread_mutex_unlock(&e->mu);
}

/*
 * One message over the session (or, with no connection, its deferral):
 * a message claimed elsewhere that has other domains comes back later.
 */
static void
deliver_item(struct engine *e, struct worker *w, size_t item,
    const struct task *t)
{
	struct e_item	*it = &e->items[item];
	struct e_domain	*d = &e->doms[it->dom];
	int		 busy, observe = 0;

	(void)pthread_mutex_lock(&e->mu);
	if (w->conn != NULL && d->observed != 1)
		observe = d->observed = 1;
	else if (t == NULL && d->status == DNS_OK &&
	    d->job->domain[0] != '\0' && d->observed == 0)
		observe = d->observed = 2;
	(void)pthread_mutex_unlock(&e->mu);
	w->domain = d->job->domain;
	if (observe)
		flush_observe(w, observe == 1);
	flush_deliver_one(w, d->job->ids[it->idx], &busy);
	report(e, w);
	if (!busy || !d->job->multi[it->idx] || it->tries >= BUSY_RETRIES)
		return;
	(void)pthread_mutex_lock(&e->mu);
	it->tries++;
	it->ready = now_ms() + BUSY_WAIT_MS;
	item_route(e, item);
	(void)pthread_mutex_unlock(&e->mu);
}

/*
 * A session with host t->n: connect, greet, TLS at the class's level,
 * then its queued messages of that class one after the other.
 */
static void
run_session(struct engine *e, struct worker *w, const struct task *t)
{
	struct e_host	*h;
	size_t		 item;
	int		 r;

	(void)pthread_mutex_lock(&e->mu);
	h = &e->hosts[t->n];
	w->addr = h->ss;
	w->addrlen = h->len;
	(void)pthread_mutex_unlock(&e->mu);
	w->domain = t->domain;
	w->mx_host = t->mx_host;
	w->port = t->port;
	w->level = t->level;
	w->dead = 0;
	w->reconnects = 0;
	w->route_status = DNS_OK;
	w->dead_reason[0] = '\0';
	r = flush_open_session(w);
	(void)pthread_mutex_lock(&e->mu);
	h = &e->hosts[t->n];
	if (r == SESSION_HOST_DOWN)
		host_fail(e, w->sp, t->n, w->dead_reason);
	else if (r == SESSION_TLS_FAILED)
		class_fail(e, w->sp, t->n, t, w->dead_reason);
	else
		h->state = HOST_UP;
	(void)pthread_cond_broadcast(&e->cv);
	(void)pthread_mutex_unlock(&e->mu);
	if (r != SESSION_TLS_FAILED)
		note_host(e, w, t->n, r == SESSION_UP);
	while (r == SESSION_UP) {
		if ((item = session_next(e, t)) == NONE)
			break;
		deliver_item(e, w, item, t);
		if (w->dead) {
			(void)pthread_mutex_lock(&e->mu);
			host_fail(e, w->sp, t->n, w->dead_reason);
			(void)pthread_mutex_unlock(&e->mu);
			note_host(e, w, t->n, 0);
			break;
		}
	}
	if (w->conn != NULL)
		smtp_quit(w->conn);
	w->conn = NULL;
	(void)pthread_mutex_lock(&e->mu);
	e->hosts[t->n].active--;
	(void)pthread_cond_broadcast(&e->cv);
	(void)pthread_mutex_unlock(&e->mu);
}

/* Wait on the engine's condition for at most ms (the lock held). */
static void
wait_a_little(struct engine *e, int ms)
{
	struct timespec	 ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)ms * 1000000L;
	while (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	(void)pthread_cond_timedwait(&e->cv, &e->mu, &ts);
}

/*
 * The session's next message.  While routes are still being looked up
 * (more mail may come to this host) or a message of its class waits to
 * be retried, the session waits for it instead of closing: a host gets
 * no more connections than its messages need.  NONE: close.
 */
static size_t
session_next(struct engine *e, const struct task *t)
{
	struct e_host	*h;
	size_t		 item, k;
	int		 later;

	(void)pthread_mutex_lock(&e->mu);
	for (;;) {
		h = &e->hosts[t->n];
		if (h->state == HOST_DEAD) {
			item = NONE;
			break;
		}
		if ((item = queue_take(e, &h->q, now_ms(), t)) != NONE)
			break;
		for (later = 0, k = h->q.head; k < h->q.len && !later; k++)
			later = h->q.v[k] != NONE && item_class(e, h->q.v[k], t);
		if (e->unresolved == 0 && !later)
			break;
		wait_a_little(e, IDLE_WAIT_MS);
	}
	(void)pthread_mutex_unlock(&e->mu);
	return (item);
}

/* A message of a domain no host is left for (or no route): deferred. */
static void
run_defer(struct engine *e, struct worker *w, size_t item)
{
	struct e_domain	*d = &e->doms[e->items[item].dom];

	(void)pthread_mutex_lock(&e->mu);
	w->route_status = d->status;
	w->route_error = d->error;
	(void)strlcpy(w->dead_reason, d->reason, sizeof(w->dead_reason));
	(void)pthread_mutex_unlock(&e->mu);
	w->conn = NULL;
	w->dead = 1;
	deliver_item(e, w, item, NULL);
}

/* One thread of the pool: work until none is left for anybody. */
static void *
thread_main(void *arg)
{
	struct engine		*e = arg;
	struct dns_resolver	*dr = NULL;
	struct worker		 w;
	struct task		 t;

	memset(&w, 0, sizeof(w));
	if (spool_open(cfg->spool, 0, &w.sp) == -1) {
		log_warn("flush: spool %s", cfg->spool);
		return (NULL);
	}
	cmd_spool_mailbox(w.sp);
	(void)pthread_mutex_lock(&e->mu);
	e->running++;
	for (;;) {
		if (!pick(e, &t)) {
			if (e->busy == 0 && e->queued == 0 &&
			    e->next_resolve == e->ndoms)
				break;
			(void)pthread_mutex_unlock(&e->mu);
			flush_remove_sent(&w);
			(void)pthread_mutex_lock(&e->mu);
			wait_a_little(e, IDLE_WAIT_MS);
			continue;
		}
		e->busy++;
		(void)pthread_mutex_unlock(&e->mu);
		if (t.kind == TASK_RESOLVE)
			run_resolve(e, &w, &dr, t.n);
		else if (t.kind == TASK_HOST)
			run_session(e, &w, &t);
		else
			run_defer(e, &w, t.n);
		(void)pthread_mutex_lock(&e->mu);
		e->busy--;
		(void)pthread_cond_broadcast(&e->cv);
	}
	(void)pthread_cond_broadcast(&e->cv);
	(void)pthread_mutex_unlock(&e->mu);
	flush_remove_sent(&w);
	starttls_contexts_free(&w.tls);
	dns_resolver_close(dr);
	spool_close(w.sp);
	return (NULL);
}

/*
 * As many threads as asked for, if the descriptors allow: the soft
 * limit is raised to the hard one when that is needed, and the pool is
 * smaller when even that is too low (logged).
 */
static size_t
thread_count(size_t want)
{
	struct rlimit	 rl;
	rlim_t		 need = (rlim_t)want * FDS_PER_THREAD + FDS_SPARE;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return (want);
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ||
		    rl.rlim_max > need ? need : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1 &&
		    getrlimit(RLIMIT_NOFILE, &rl) == -1)
			return (want);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		want = rl.rlim_cur > FDS_SPARE + FDS_PER_THREAD ?
		    (size_t)((rl.rlim_cur - FDS_SPARE) / FDS_PER_THREAD) : 1;
		log_warnx("flush: %zu delivery threads (open file limit %llu)",
		    want, (unsigned long long)rl.rlim_cur);
	}
	return (want);
}

int
flush_engine_run(const struct job *jobs, size_t njobs, int force,
    int report_fd)
{
	struct engine	 e;
	pthread_attr_t	 attr;
	pthread_t	*tids;
	size_t		 i, k, n, nthreads, started = 0;

	memset(&e, 0, sizeof(e));
	(void)pthread_mutex_init(&e.mu, NULL);
	(void)pthread_cond_init(&e.cv, NULL);
	e.force = force;
	e.report_fd = report_fd;
	e.per_host = cfg->flush_per_host ? cfg->flush_per_host : 1;
	e.ndoms = njobs;
	e.unresolved = njobs;
	e.doms = xcalloc(njobs ? njobs : 1, sizeof(*e.doms));
	for (i = 0, n = 0; i < njobs; i++)
		n += jobs[i].nids;
	e.items = xcalloc(n ? n : 1, sizeof(*e.items));
	for (i = 0; i < njobs; i++) {
		e.doms[i].job = &jobs[i];
		e.doms[i].first = e.nitems;
		e.doms[i].host = NONE;
		for (k = 0; k < jobs[i].nids; k++) {
			e.items[e.nitems].dom = i;
			e.items[e.nitems++].idx = k;
		}
	}
	nthreads = cfg->flush_concurrency ? cfg->flush_concurrency : 1;
	if (nthreads > n + njobs)
		nthreads = n + njobs;
	nthreads = thread_count(nthreads);
	tids = xcalloc(nthreads, sizeof(*tids));
	if (pthread_attr_init(&attr) == 0 &&
	    pthread_attr_setstacksize(&attr, THREAD_STACK) == 0)
		for (i = 1; i < nthreads; i++) {
			if ((errno = pthread_create(&tids[started], &attr,
			    thread_main, &e)) != 0) {
				log_warn("flush: thread");
				break;
			}
			started++;
		}
	(void)thread_main(&e);		/* this thread is one of them */
	for (i = 0; i < started; i++)
		(void)pthread_join(tids[i], NULL);
	free(tids);
	for (i = 0; i < e.nhosts; i++)
		free(e.hosts[i].q.v);
	free(e.hosts);
	free(e.deferq.v);
	for (i = 0; i < njobs; i++)
		mx_route_free(&e.doms[i].route);
	free(e.doms);
	free(e.items);
	return (e.running > 0 ? 0 : -1);
}
