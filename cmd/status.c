/*
 * status.c - `mxfb status`: look at the queue, never change it.
 *
 *   status          mailq-like listing in arrival order, with a total
 *   status -s       one line per destination domain (messages, bytes,
 *                   with recipient-verify callout the recipients the
 *                   verify database knows, oldest, when a primary was
 *                   last seen up), sorted
 *   status -j       the same as JSON, one object per line (the field
 *                   names are part of the interface: README, mxfb.1)
 *   status -m       Prometheus text exposition (0.0.4) of the same
 *                   figures, recipients by state, held and corrupt
 *                   counts and the primary records (-o FILE: written
 *                   atomically, for node_exporter's textfile collector)
 *   status ID...    envelope and headers of those messages (-j: JSON)
 *   status -b ID... the raw message bytes, as stored (CRLF)
 *
 * Guarantees: never changes the queue (a listing may refresh the
 * spool's status.cache: spool/listcache.c); memory stays bounded however
 * long the queue is (the spool walk reads one envelope at a time and
 * this file keeps only totals, and for -s one entry per domain); an
 * empty queue prints
 * nothing.  Text taken from mail (addresses, remote replies, header
 * lines, domains, HELO names) never reaches the terminal as a control:
 * C0 and C1 controls, DEL, bidi embeddings, overrides and isolates and
 * invalid UTF-8 are shown escaped (\x1b, \u202e), valid UTF-8 as it is;
 * JSON output is valid (RFC 8259) whatever bytes the envelopes hold
 * (invalid UTF-8 becomes U+FFFD).  Only -b prints raw bytes.  Exit 1
 * when an ID is not in the queue (the others are still shown), 64 for a
 * malformed ID.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/queue_ops.h"
#include "cmd/status_hosts.h"
#include "cmd/text_out.h"
#include "core/config.h"
#include "core/dsn.h"
#include "core/log.h"
#include "core/mail/address.h"
#include "core/util.h"
#include "spool/spool.h"
#include "spool/verify_db.h"

#define STATUS_USAGE	"mxfb status [-C file] [-j] [-s] [ID ...]\n" \
			"       mxfb status [-C file] [-j] -H\n" \
			"       mxfb status [-C file] -m [-o file]\n" \
			"       mxfb status [-C file] -b ID ..."
#define NSTATES		4	/* enum rcpt_state */
#define OUTBUF_SIZE	(256 * 1024)
#define LIST_INDENT	"                                                 "
#define DOMAIN_WIDTH	32

struct listing {
	FILE		*out;
	int		 json;
	time_t		 now;
	uint64_t	 bytes;
	size_t		 messages;
};

struct domain_entry {
	char		*name;
	uint64_t	 messages;
	uint64_t	 bytes;
	time_t		 oldest;
	size_t		 last_message;	/* serial of the message last counted */
	uint64_t	 copies;	/* in the outage mailbox */
	uint64_t	 rcpts[NSTATES];	/* -m: recipients by state */
	struct primary_obs *obs;	/* -m: its primary record, or NULL */
};

struct domain_table {
	struct domain_entry *slots;
	size_t		 size;		/* a power of two */
	size_t		 used;
	size_t		 serial;	/* messages seen so far */
	struct spool	*sp;		/* for the outage mailbox's index */
	int		 metrics;	/* -m: count every recipient */
	uint64_t	 held;		/* -m: held messages */
};

struct metric {
	const char	*name;
	const char	*type;
	const char	*help;
};

static void	 json_envelope(FILE *, const struct envelope *);
static time_t	 next_retry(const struct envelope *);
static void	 format_time(time_t, char *, size_t);
static int	 list_one(const struct envelope *, void *);
static int	 summary_one(const struct envelope *, void *);
static struct domain_entry *domain_lookup(struct domain_table *,
		    const char *);
static void	 domain_grow(struct domain_table *);
static uint64_t	 domain_hash(const char *);
static int	 domain_compare(const void *, const void *);
static void	 summary_print(FILE *, struct spool *, struct domain_table *,
		    int);
static int	 count_known(const struct verify_entry *, void *);
static struct verify_db *known_open(void);
static void	 summary_row(FILE *, const struct domain_entry *,
		    const struct primary_obs *, int, uint64_t, int);
static void	 show_field(FILE *, const char *, const char *);
static int	 show_envelope(FILE *, struct spool *, const char *, int);
static int	 show_headers(FILE *, struct spool *, const char *);
static int	 show_body(FILE *, struct spool *, const char *);
static int	 finish_output(FILE *);
static int	 show_copy(void *, const char *, const char *, int);
static int	 count_copy(void *, const char *, const char *, int);
static int	 add_primary_domain(void *, const char *,
		    const struct primary_obs *);
static void	 metric_head(FILE *, const struct metric *);
static void	 metrics_domain_rows(FILE *, const struct domain_table *,
		    time_t);
static int	 metrics_print(FILE *, struct spool *, struct domain_table *);
static int	 metrics_write(struct spool *, FILE *);
static int	 metrics_to_file(struct spool *, const char *);
static int	 status_metrics(struct spool *, const char *);
static int	 domains_free(struct domain_table *, status_domain_fn, void *);

/* When the message is next due; a time at or before now means due. */
static time_t
next_retry(const struct envelope *env)
{
	return (env->next_retry != 0 ? env->next_retry : env->arrival);
}

static void
json_envelope(FILE *f, const struct envelope *env)
{
	const struct recipient *r;
	size_t		 i;

	fputs("{\"id\":", f);
	json_string(f, env->id);
	fprintf(f, ",\"size\":%llu,\"arrival\":%lld,\"sender\":",
	    (unsigned long long)env->size, (long long)env->arrival);
	json_string(f, env->sender != NULL ? env->sender : "");
	fprintf(f, ",\"held\":%s,\"next_retry\":%lld,\"recipients\":[",
	    env->held ? "true" : "false", (long long)next_retry(env));
	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		fputs(i > 0 ? ",{\"addr\":" : "{\"addr\":", f);
		json_string(f, r->addr != NULL ? r->addr : "");
		fputs(",\"state\":", f);
		json_string(f, rcpt_state_name(r->state));
		fprintf(f, ",\"attempts\":%d,\"last_error\":", r->attempts);
		if (r->last_error != NULL)
			json_string(f, r->last_error);
		else
			fputs("null", f);
		putc('}', f);
	}
	fputs("]}\n", f);
}

/* "Sat Nov 28 03:32:17", local time, as mailq shows it. */
static void
format_time(time_t t, char *buf, size_t size)
{
	struct tm	 tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, size, "%a %b %e %H:%M:%S", &tm) == 0)
		(void)bsnprintf(buf, size, "%lld", (long long)t);
}

static int
list_one(const struct envelope *env, void *arg)
{
	struct listing	*l = arg;
	const struct recipient *r;
	char		 when[64];
	size_t		 i;
	time_t		 due;

	l->messages++;
	l->bytes += env->size;
	if (l->json) {
		json_envelope(l->out, env);
		return (0);
	}
	if (l->messages == 1)
		fprintf(l->out, "-Queue ID-------- --Size-- "
		    "----Arrival Time---- -Sender/Recipient-------\n");
	format_time(env->arrival, when, sizeof(when));
	fprintf(l->out, "%-17s%c %8llu %-20s <", env->id,
	    env->held ? '!' : env->claimed ? '*' : ' ',
	    (unsigned long long)env->size, when);
	text_str(l->out, env->sender);
	fputs(">\n", l->out);
	due = next_retry(env);
	if (env->held)
		fprintf(l->out, LIST_INDENT "(held by administrator)\n");
	else if (env->claimed)
		fprintf(l->out, LIST_INDENT "(being delivered or bounced)\n");
	else if (due > l->now) {
		format_time(due, when, sizeof(when));
		fprintf(l->out, LIST_INDENT "(next retry %s)\n", when);
	}
	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		fputs(LIST_INDENT, l->out);
		text_str(l->out, r->addr);
		fprintf(l->out, "  %s, %d attempt%s\n",
		    rcpt_state_name(r->state), r->attempts,
		    r->attempts == 1 ? "" : "s");
		if (r->last_error != NULL) {
			fputs(LIST_INDENT "  (", l->out);
			text_str(l->out, r->last_error);
			fputs(")\n", l->out);
		}
	}
	putc('\n', l->out);
	return (0);
}

/* FNV-1a over the lower-cased name. */
static uint64_t
domain_hash(const char *s)
{
	uint64_t	 h = 14695981039346656037ULL;
	unsigned char	 c;

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		h = (h ^ c) * 1099511628211ULL;
	}
	return (h);
}

static void
domain_grow(struct domain_table *t)
{
	struct domain_entry *old = t->slots;
	size_t		 oldsize = t->size, i, j;

	t->size = oldsize == 0 ? 64 : oldsize * 2;
	t->slots = xcalloc(t->size, sizeof(*t->slots));
	for (i = 0; i < oldsize; i++) {
		if (old[i].name == NULL)
			continue;
		j = domain_hash(old[i].name) & (t->size - 1);
		while (t->slots[j].name != NULL)
			j = (j + 1) & (t->size - 1);
		t->slots[j] = old[i];
	}
	free(old);
}

/* The entry for a domain (case-insensitive), created when new. */
static struct domain_entry *
domain_lookup(struct domain_table *t, const char *name)
{
	size_t		 j;

	if ((t->used + 1) * 2 > t->size)
		domain_grow(t);
	j = domain_hash(name) & (t->size - 1);
	while (t->slots[j].name != NULL) {
		if (strcasecmp(t->slots[j].name, name) == 0)
			return (&t->slots[j]);
		j = (j + 1) & (t->size - 1);
	}
	t->slots[j].name = ascii_lower(xstrdup(name));
	t->used++;
	return (&t->slots[j]);
}

/*
 * Count a message once for each domain it still has recipients in
 * (delivered recipients no longer have a destination here).
 */
static int
summary_one(const struct envelope *env, void *arg)
{
	struct domain_table *t = arg;
	struct domain_entry *d;
	char		 domain[DOMAIN_NAME_SIZE + 1];	/* and a final dot */
	size_t		 i;

	t->serial++;
	if (t->metrics && env->held)
		t->held++;
	for (i = 0; i < env->nrcpts; i++) {
		if (env->rcpts[i].addr == NULL ||
		    (env->rcpts[i].state == RCPT_DELIVERED && !t->metrics))
			continue;
		/* As flush groups them: case and one trailing dot aside. */
		(void)address_domain_of(env->rcpts[i].addr, domain,
		    sizeof(domain));
		d = domain_lookup(t, domain);
		if (t->metrics && (unsigned)env->rcpts[i].state < NSTATES)
			d->rcpts[env->rcpts[i].state]++;
		if (env->rcpts[i].state == RCPT_DELIVERED ||
		    d->last_message == t->serial)
			continue;
		d->last_message = t->serial;
		d->messages++;
		d->bytes += env->size;
		if (d->oldest == 0 || env->arrival < d->oldest)
			d->oldest = env->arrival;
	}
	/* Copies are -s's figure, not a metric: -m reads no index. */
	if (!t->metrics && cfg->mailbox[0] != '\0' &&
	    spool_mailbox_list(t->sp, env, 0, count_copy, t) == -1)
		log_warn("%s: mailbox index", env->id);
	return (0);
}

/* status -s: one more copy for the domain of addr. */
static int
count_copy(void *arg, const char *addr, const char *path, int found)
{
	struct domain_table *t = arg;
	char		 domain[DOMAIN_NAME_SIZE + 1];

	if (path == NULL)
		return (0);
	(void)address_domain_of(addr, domain, sizeof(domain));
	domain_lookup(t, domain)->copies++;
	return (0);
}

/* status ID: "mailbox: <addr> PATH" for each copy. */
static int
show_copy(void *arg, const char *addr, const char *path, int found)
{
	FILE	*f = arg;

	fputs("mailbox: <", f);
	text_str(f, addr);
	fputs("> ", f);
	if (path == NULL)
		fputs("no copy (over mailbox-max-size)", f);
	else {
		text_str(f, path);
		if (found == 0)
			fputs(" (moved or deleted by the user)", f);
		else if (found == 2)
			fputs(" (not made yet: flush makes it)", f);
	}
	fputc('\n', f);
	return (0);
}

static int
domain_compare(const void *a, const void *b)
{
	const struct domain_entry *da = a, *db = b;

	/* Empty slots (NULL names) sort last. */
	if (da->name == NULL || db->name == NULL)
		return ((da->name == NULL) - (db->name == NULL));
	return (strcmp(da->name, db->name));
}

/* Unexpired verify database entries of one domain, counted. */
static int
count_known(const struct verify_entry *e, void *arg)
{
	uint64_t	*n = arg;

	(void)e;
	(*n)++;
	return (0);
}

/*
 * With recipient-verify callout, the recipient database (NULL when there
 * is none yet, or it cannot be opened: logged, nothing counted).
 */
static struct verify_db *
known_open(void)
{
	struct verify_db *db;
	char		 path[1024], err[1024];

	if (!cfg->recipient_verify)
		return (NULL);
	if (verify_db_path(cfg->spool, cfg->verify_db, path,
	    sizeof(path)) == -1)
		return (NULL);
	if (verify_db_open(path, 0, &db, err, sizeof(err)) == 0)
		return (db);
	if (errno != ENOENT)
		log_warnx("verify-db %s", err);
	return (NULL);
}

/* One domain's line: queue figures, known recipients, the primary. */
static void
summary_row(FILE *f, const struct domain_entry *d, const struct primary_obs *o,
    int with_known, uint64_t known, int json)
{
	char		 when[64], up[64];
	size_t		 width;
	int		 seen = o != NULL && o->last_up > 0;

	if (json) {
		fputs("{\"domain\":", f);
		json_string(f, d->name);
		fprintf(f, ",\"messages\":%llu,\"bytes\":%llu,"
		    "\"oldest\":%lld,", (unsigned long long)d->messages,
		    (unsigned long long)d->bytes, (long long)d->oldest);
		if (with_known)
			fprintf(f, "\"known_recipients\":%llu,",
			    (unsigned long long)known);
		fputs("\"last_up\":", f);
		if (seen)
			fprintf(f, "%lld", (long long)o->last_up);
		else
			fputs("null", f);
		fputs(",\"last_up_host\":", f);
		if (seen && o->host[0] != '\0')
			json_string(f, o->host);
		else
			fputs("null", f);
		if (o != NULL && !o->up)
			fprintf(f, ",\"down_since\":%lld",
			    (long long)o->since);
		else
			fputs(",\"down_since\":null", f);
		if (cfg->mailbox[0] != '\0')
			fprintf(f, ",\"mailbox_copies\":%llu",
			    (unsigned long long)d->copies);
		fputs("}\n", f);
		return;
	}
	format_time(d->oldest, when, sizeof(when));
	if (seen)
		format_time(o->last_up, up, sizeof(up));
	else
		(void)strlcpy(up, "never", sizeof(up));
	width = text_str(f, d->name);
	fprintf(f, "%*s %8llu %12llu", width < DOMAIN_WIDTH ?
	    (int)(DOMAIN_WIDTH - width) : 0, "",
	    (unsigned long long)d->messages, (unsigned long long)d->bytes);
	if (with_known)
		fprintf(f, " %8llu", (unsigned long long)known);
	fprintf(f, "  %-20s  %s", when, up);
	if (seen && o->host[0] != '\0') {
		fputs(" (", f);
		text_str(f, o->host);
		fputc(')', f);
	}
	if (o != NULL && !o->up) {
		format_time(o->since, up, sizeof(up));
		fprintf(f, ", down since %s", up);
		if (o->reason[0] != '\0') {
			fputs(" (", f);
			text_str(f, o->reason);
			fputc(')', f);
		}
	}
	if (cfg->mailbox[0] != '\0')
		fprintf(f, ", mailbox copies %llu",
		    (unsigned long long)d->copies);
	fputc('\n', f);
}

/*
 * One line per domain, sorted.  Beside the queue figures: how many
 * recipients the verify database knows (recipient-verify callout), when
 * a primary of the domain was last seen up, and which (its record).
 */
static void
summary_print(FILE *f, struct spool *sp, struct domain_table *t, int json)
{
	struct domain_entry	*d;
	struct primary_obs	 obs;
	struct verify_db	*db;
	uint64_t		 known;
	time_t			 now = time(NULL);
	size_t			 i;
	int			 have;

	if (t->used == 0)
		return;
	qsort(t->slots, t->size, sizeof(*t->slots), domain_compare);
	db = known_open();
	if (!json) {
		fprintf(f, "%-*s %8s %12s", DOMAIN_WIDTH, "Domain",
		    "Messages", "Bytes");
		if (cfg->recipient_verify)
			fprintf(f, " %8s", "Known");
		fprintf(f, "  %-20s  %s\n", "Oldest", "Primary last seen up");
	}
	for (i = 0; i < t->used; i++) {
		d = &t->slots[i];
		have = spool_primary_read(sp, d->name, &obs) == 0;
		known = 0;
		if (db != NULL && verify_db_walk(db, d->name, now, count_known,
		    &known) == -1)
			log_warnx("verify-db: cannot count %s", d->name);
		summary_row(f, d, have ? &obs : NULL, cfg->recipient_verify,
		    known, json);
	}
	verify_db_close(db);
	for (i = 0; i < t->used; i++)
		free(t->slots[i].name);
	free(t->slots);
	t->slots = NULL;
	t->size = t->used = 0;
}

/* Hand each domain of the table to fn (unless NULL), then free it. */
static int
domains_free(struct domain_table *t, status_domain_fn fn, void *arg)
{
	size_t	 i;
	int	 rc = 0;

	for (i = 0; i < t->size; i++) {
		if (t->slots[i].name == NULL)
			continue;
		if (fn != NULL && rc == 0 && fn(arg, t->slots[i].name,
		    t->slots[i].messages, t->slots[i].oldest) != 0)
			rc = -1;
		free(t->slots[i].name);
	}
	free(t->slots);
	return (rc);
}

/*
 * The queue per destination domain as status -s counts it (cmd.h).
 */
int
status_queue_domains(struct spool *sp, status_domain_fn fn, void *arg)
{
	struct domain_table	 table;
	int			 rc;

	memset(&table, 0, sizeof(table));
	table.sp = sp;
	rc = spool_list(sp, summary_one, &table);
	if (domains_free(&table, rc == -1 ? NULL : fn, arg) == -1)
		rc = -1;
	return (rc);
}

/*
 * status -m: every domain with a primary record, and the record as the
 * walk read it (the one read for each domain: a record the walk does
 * not see is one no later read would find).
 */
static int
add_primary_domain(void *arg, const char *domain, const struct primary_obs *o)
{
	struct domain_entry *d;

	d = domain_lookup(arg, domain);
	if (d->obs == NULL) {
		d->obs = xmalloc(sizeof(*d->obs));
		*d->obs = *o;
	}
	return (0);
}

static void
metric_head(FILE *f, const struct metric *m)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
	    m->type);
}

/*
 * The per-domain families, one series per domain (the primary's only
 * for domains with a record; last up only once one was seen up).
 */
static void
metrics_domain_rows(FILE *f, const struct domain_table *t, time_t now)
{
	static const struct metric m[] = {
		{ "mxfb_queue_messages", "gauge",
		    "Messages queued with recipients pending in the domain." },
		{ "mxfb_queue_bytes", "gauge",
		    "Bytes of the messages queued for the domain." },
		{ "mxfb_queue_oldest_age_seconds", "gauge",
		    "Age of the oldest message queued for the domain." },
		{ "mxfb_queue_recipients", "gauge",
		    "Recipients of queued messages by domain and state." },
		{ "mxfb_primary_up", "gauge",
		    "1 when the last observation found the primary up." },
		{ "mxfb_primary_last_up_timestamp_seconds", "gauge",
		    "When the primary was last seen up (Unix time)." },
		{ "mxfb_primary_last_check_timestamp_seconds", "gauge",
		    "When the primary was last observed (Unix time)." },
	};
	const struct domain_entry *d;
	const struct primary_obs *o;
	size_t		 k, i;
	int		 s;
	long long	 v;

	for (k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		metric_head(f, &m[k]);
		for (i = 0; i < t->used; i++) {
			d = &t->slots[i];
			o = d->obs;
			if (k >= 4 && (o == NULL ||
			    (k == 5 && o->last_up <= 0)))
				continue;
			for (s = 0; s < (k == 3 ? NSTATES : 1); s++) {
				fprintf(f, "%s{domain=", m[k].name);
				prom_label(f, d->name);
				if (k == 3)
					fprintf(f, ",state=\"%s\"",
					    rcpt_state_name(s));
				v = k == 0 ? (long long)d->messages :
				    k == 1 ? (long long)d->bytes :
				    k == 2 ? (d->messages > 0 && d->oldest <
				    now ? (long long)(now - d->oldest) : 0) :
				    k == 3 ? (long long)d->rcpts[s] :
				    k == 4 ? o->up :
				    k == 5 ? (long long)o->last_up :
				    (long long)o->checked;
				fprintf(f, "} %lld\n", v);
			}
		}
	}
}

/*
 * status -m: the table (the queue's domains, with every relay domain and
 * every domain with a primary record added) as Prometheus text.
 */
static int
metrics_print(FILE *f, struct spool *sp, struct domain_table *t)
{
	static const struct metric held = { "mxfb_queue_held_messages",
	    "gauge", "Messages held by the administrator." };
	static const struct metric corrupt = { "mxfb_queue_corrupt_messages",
	    "gauge", "Messages quarantined in corrupt/ (never delivered)." };
	uint64_t		 ncorrupt = 0;
	size_t			 i;
	int			 rc = 0;

	for (i = 0; i < cfg->nrelays; i++)
		(void)domain_lookup(t, cfg->relays[i].name);
	if (sp != NULL &&
	    spool_primary_walk(sp, add_primary_domain, t) == -1) {
		log_cmd_error("spool %s: domains", cfg->spool);
		rc = -1;
	}
	if (sp != NULL && spool_count_corrupt(sp, &ncorrupt) == -1) {
		log_cmd_error("spool %s: corrupt", cfg->spool);
		rc = -1;
	}
	if (t->size > 0)
		qsort(t->slots, t->size, sizeof(*t->slots), domain_compare);
	metrics_domain_rows(f, t, time(NULL));
	metric_head(f, &held);
	fprintf(f, "%s %llu\n", held.name, (unsigned long long)t->held);
	metric_head(f, &corrupt);
	fprintf(f, "%s %llu\n", corrupt.name, (unsigned long long)ncorrupt);
	for (i = 0; i < t->used; i++) {
		free(t->slots[i].name);
		free(t->slots[i].obs);
	}
	free(t->slots);
	t->slots = NULL;
	t->size = t->used = 0;
	return (rc);
}

/*
 * List the spool into f as metrics: 0, or -1 (reported).  No spool yet
 * (NULL): an empty queue.
 */
static int
metrics_write(struct spool *sp, FILE *f)
{
	struct domain_table	 table;
	int			 rc = 0;

	memset(&table, 0, sizeof(table));
	table.sp = sp;
	table.metrics = 1;
	if (sp != NULL && spool_list(sp, summary_one, &table) == -1) {
		log_cmd_error("spool %s", cfg->spool);
		rc = -1;
	}
	if (metrics_print(f, sp, &table) == -1)
		rc = -1;
	return (rc);
}

/*
 * status -m -o FILE: a temp file beside FILE (".NAME.XXXXXX", which the
 * textfile collector ignores), mode 0644, fsync'd, renamed over FILE;
 * a reader sees the old file or the new one, whole.  EXIT_CANTCREAT when
 * it cannot be made (an unwritable directory), EXIT_IOERR otherwise.
 */
static int
metrics_to_file(struct spool *sp, const char *path)
{
	char	 dirbuf[1024], basebuf[1024], tmp[2100];
	char	*dir, *base;
	FILE	*f;
	int	 fd, dfd, rc = EXIT_IOERR;

	if (strlcpy(dirbuf, path, sizeof(dirbuf)) >= sizeof(dirbuf) ||
	    strlcpy(basebuf, path, sizeof(basebuf)) >= sizeof(basebuf)) {
		log_cmd_errorx("%s: name too long", path);
		return (EXIT_USAGE);
	}
	dir = dirname(dirbuf);
	base = basename(basebuf);
	if (bsnprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, base) == -1) {
		log_cmd_errorx("%s: name too long", path);
		return (EXIT_USAGE);
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		log_cmd_error("cannot create a file in %s", dir);
		return (EXIT_CANTCREAT);
	}
	if (fchmod(fd, 0644) == -1 || (f = fdopen(fd, "w")) == NULL) {
		log_cmd_error("%s", tmp);
		(void)close(fd);
		goto fail;
	}
	if (metrics_write(sp, f) == -1) {
		(void)fclose(f);
		goto fail;
	}
	if (fflush(f) == EOF || ferror(f) || fsync(fileno(f)) == -1) {
		log_cmd_error("%s", tmp);
		(void)fclose(f);
		goto fail;
	}
	if (fclose(f) == EOF) {
		log_cmd_error("%s", tmp);
		goto fail;
	}
	if (rename(tmp, path) == -1) {
		log_cmd_error("rename to %s", path);
		goto fail;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		if (fsync(dfd) == -1)
			log_cmd_error("fsync %s", dir);
		(void)close(dfd);
	}
	return (0);
fail:
	if (unlink(tmp) == -1 && errno != ENOENT)
		log_cmd_error("unlink %s", tmp);
	return (rc);
}

/* status -m [-o FILE]: the exit status; closes sp. */
static int
status_metrics(struct spool *sp, const char *outfile)
{
	static char	 buf[OUTBUF_SIZE];
	int		 rc = 0;

	if (outfile != NULL)
		rc = metrics_to_file(sp, outfile);
	else {
		if (setvbuf(stdout, buf, _IOFBF, sizeof(buf)) != 0 ||
		    metrics_write(sp, stdout) == -1)
			rc = EXIT_IOERR;
		if (finish_output(stdout) == -1)
			rc = EXIT_IOERR;
	}
	if (sp != NULL)
		spool_close(sp);
	return (rc);
}

/* "label value" on a line of its own, when there is a value. */
static void
show_field(FILE *f, const char *label, const char *value)
{
	if (value == NULL)
		return;
	fputs(label, f);
	text_str(f, value);
	fputc('\n', f);
}

/* One message's envelope, every field, as text or as a JSON line. */
static int
show_envelope(FILE *f, struct spool *sp, const char *id, int json)
{
	struct envelope	 env;
	struct dsn_about about;
	const struct recipient *r;
	char		 when[64], notify[40];
	size_t		 i;

	memset(&env, 0, sizeof(env));
	if (spool_read_envelope(sp, id, &env) == -1) {
		if (errno == ENOENT)
			log_cmd_errorx("%s: no such message", id);
		else
			log_cmd_error("%s", id);
		return (-1);
	}
	if (json) {
		json_envelope(f, &env);
		envelope_free(&env);
		return (0);
	}
	format_time(env.arrival, when, sizeof(when));
	fprintf(f, "*** ENVELOPE %s ***\n", env.id);
	fprintf(f, "arrival: %lld (%s)\n", (long long)env.arrival, when);
	fprintf(f, "size: %llu\n", (unsigned long long)env.size);
	fputs("sender: <", f);
	text_str(f, env.sender);
	fputs(">\nclient: ", f);
	text_str(f, env.client_addr);
	if (env.client_name != NULL) {
		fputs(" (helo ", f);
		text_str(f, env.client_name);
		fputc(')', f);
	}
	fputc('\n', f);
	show_field(f, "envid: ", env.envid);
	if (env.about != NULL && dsn_about_parse(env.about, &about) == 0)
		fprintf(f, "notification about: %s (%s)\n", about.orig,
		    about.kind == DSN_KIND_REPORT ? "failure report" :
		    about.kind == DSN_KIND_DELAY ? "delay warning" :
		    "final report");
	fprintf(f, "ret: %s\n", env.ret == RET_FULL ? "full" :
	    env.ret == RET_HDRS ? "hdrs" : "unset");
	fprintf(f, "body: %s%s\n", env.eightbit ? "8bitmime" : "7bit",
	    env.smtputf8 ? ", smtputf8" : "");
	fprintf(f, "recipients verified: %s\n", env.verified ? "yes" : "no");
	fputs("checksum: blake2b-256:", f);
	for (i = 0; i < sizeof(env.checksum); i++)
		fprintf(f, "%02x", env.checksum[i]);
	fputc('\n', f);
	fprintf(f, "held: %s\n", env.held ? "yes" : "no");
	fprintf(f, "claimed: %s\n", env.claimed ? "yes" : "no");
	format_time(next_retry(&env), when, sizeof(when));
	fprintf(f, "next retry: %lld (%s)\n", (long long)next_retry(&env),
	    when);
	fprintf(f, "delay warning sent: %s\n", env.warned ? "yes" : "no");
	for (i = 0; i < env.nrcpts; i++) {
		r = &env.rcpts[i];
		fputs("recipient: <", f);
		text_str(f, r->addr);
		fprintf(f, "> %s, %d attempt%s",
		    rcpt_state_name(r->state), r->attempts,
		    r->attempts == 1 ? "" : "s");
		if (r->last_attempt != 0) {
			format_time(r->last_attempt, when, sizeof(when));
			fprintf(f, ", last %s", when);
		}
		if (r->notify != 0) {
			notify[0] = '\0';
			if (r->notify & NOTIFY_NEVER)
				strlcat(notify, ",never", sizeof(notify));
			if (r->notify & NOTIFY_SUCCESS)
				strlcat(notify, ",success", sizeof(notify));
			if (r->notify & NOTIFY_FAILURE)
				strlcat(notify, ",failure", sizeof(notify));
			if (r->notify & NOTIFY_DELAY)
				strlcat(notify, ",delay", sizeof(notify));
			fprintf(f, ", notify=%s", notify + 1);
		}
		/* RFC 3461 6.2: bounce owes the sender a "relayed" DSN. */
		if (r->relayed && !r->reported)
			fputs(", relayed (success report due)", f);
		if (r->reported)
			fputs(", reported", f);
		fputc('\n', f);
		show_field(f, "  orcpt: ", r->orcpt);
		show_field(f, "  last error: ", r->last_error);
		show_field(f, "  remote mta: ", r->remote_mta);
	}
	if (spool_mailbox_list(sp, &env, 1, show_copy, f) == -1)
		log_warn("%s: mailbox index", env.id);
	envelope_free(&env);
	return (0);
}

/*
 * The message header, up to the empty line, CRLF shown as LF, each line
 * escaped as the envelope is (its bytes are the sender's).
 */
static int
show_headers(FILE *f, struct spool *sp, const char *id)
{
	FILE		*in;
	char		*line = NULL;
	size_t		 cap = 0;
	ssize_t		 len;
	uint64_t	 size, seen = 0;
	int		 fd, rc = 0;

	if (spool_open_message(sp, id, &fd, &size) == -1) {
		log_cmd_error("%s: message", id);
		return (-1);
	}
	if ((in = fdopen(fd, "r")) == NULL) {
		log_cmd_error("%s: fdopen", id);
		(void)close(fd);
		return (-1);
	}
	fprintf(f, "*** HEADERS %s ***\n", id);
	while (seen < size && (len = getline(&line, &cap, in)) != -1) {
		if ((uint64_t)len > size - seen)
			len = (ssize_t)(size - seen);
		seen += (uint64_t)len;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len == 0)
			break;
		text_put(f, (const unsigned char *)line, (size_t)len);
		fputc('\n', f);
	}
	if (ferror(in)) {
		log_cmd_error("%s: read", id);
		rc = -1;
	}
	free(line);
	(void)fclose(in);
	return (rc);
}

/* The raw message, exactly as stored. */
static int
show_body(FILE *f, struct spool *sp, const char *id)
{
	static char	 buf[65536];
	uint64_t	 size, left;
	ssize_t		 n;
	int		 fd;

	if (spool_open_message(sp, id, &fd, &size) == -1) {
		if (errno == ENOENT)
			log_cmd_errorx("%s: no such message", id);
		else
			log_cmd_error("%s", id);
		return (-1);
	}
	for (left = size; left > 0; left -= (uint64_t)n) {
		n = read(fd, buf, left < sizeof(buf) ? (size_t)left :
		    sizeof(buf));
		if (n == -1 && errno == EINTR) {
			n = 0;
			continue;
		}
		if (n <= 0) {
			if (n == 0)
				log_cmd_errorx("%s: message shorter than its "
				    "envelope says", id);
			else
				log_cmd_error("%s: read", id);
			(void)close(fd);
			return (-1);
		}
		if (fwrite(buf, 1, (size_t)n, f) != (size_t)n)
			break;
	}
	(void)close(fd);
	return (0);
}

static int
finish_output(FILE *f)
{
	if (fflush(f) == EOF || ferror(f)) {
		log_cmd_error("standard output");
		return (-1);
	}
	return (0);
}

int
cmd_status(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help",	no_argument,	NULL, 'h' },
		{ NULL,		0,		NULL, 0 }
	};
	static char	 outbuf[OUTBUF_SIZE];
	struct listing	 l;
	struct domain_table table;
	struct spool	*sp;
	const char	*outfile = NULL;
	int		 ch, i, json = 0, summary = 0, body = 0, rc = 0, r;
	int		 metrics = 0, hosts = 0;

	while ((ch = getopt_long(argc, argv, "bC:Hhjmo:s", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'b':
			body = 1;
			break;
		case 'C':
			cmd_set_config_file(optarg);
			break;
		case 'H':
			hosts = 1;
			break;
		case 'h':
			cmd_usage(STATUS_USAGE, 1);
		case 'j':
			json = 1;
			break;
		case 'm':
			metrics = 1;
			break;
		case 'o':
			outfile = optarg;
			break;
		case 's':
			summary = 1;
			break;
		default:
			cmd_usage(STATUS_USAGE, 0);
		}
	}
	argc -= optind;
	argv += optind;
	if ((body && (argc == 0 || json || summary)) ||
	    (summary && argc > 0) || (outfile != NULL && !metrics) ||
	    (metrics && (argc > 0 || json || summary || body)) ||
	    (hosts && (argc > 0 || summary || body || metrics)))
		cmd_usage(STATUS_USAGE, 0);
	cmd_check_ids(argc, argv);

	cmd_load_config();
	cmd_become_user(0);
	sp = queue_open_existing();
	if (metrics)
		return (status_metrics(sp, outfile));
	if (sp == NULL) {
		/* A spool never used: an empty queue, no such message. */
		for (i = 0; i < argc; i++)
			log_cmd_errorx("%s: no such message", argv[i]);
		return (argc > 0 ? 1 : 0);
	}
	if (setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf)) != 0) {
		log_cmd_error("setvbuf");
		spool_close(sp);
		return (EXIT_SOFTWARE);
	}

	if (argc > 0) {
		for (i = 0; i < argc; i++) {
			if (body)
				r = show_body(stdout, sp, argv[i]);
			else if ((r = show_envelope(stdout, sp, argv[i],
			    json)) == 0 && !json) {
				r = show_headers(stdout, sp, argv[i]);
				if (i + 1 < argc)
					putc('\n', stdout);
			}
			if (r == -1)
				rc = 1;
		}
	} else if (summary) {
		memset(&table, 0, sizeof(table));
		table.sp = sp;
		r = spool_list(sp, summary_one, &table);
		if (r == -1) {
			log_cmd_error("spool %s", cfg->spool);
			rc = EXIT_IOERR;
		}
		summary_print(stdout, sp, &table, json);
		if (!json && status_hosts_print(stdout, sp, 0, 1) == -1)
			log_cmd_error("spool %s: domains/", cfg->spool);
	} else if (hosts) {
		if (status_hosts_print(stdout, sp, json, 0) == -1) {
			log_cmd_error("spool %s: domains/", cfg->spool);
			rc = EXIT_IOERR;
		}
	} else {
		memset(&l, 0, sizeof(l));
		l.out = stdout;
		l.json = json;
		l.now = time(NULL);
		if (spool_list(sp, list_one, &l) == -1) {
			log_cmd_error("spool %s", cfg->spool);
			rc = EXIT_IOERR;
		}
		if (!json && l.messages > 0)
			fprintf(stdout, "-- %llu KiB in %zu message%s.\n",
			    (unsigned long long)((l.bytes + 1023) / 1024),
			    l.messages, l.messages == 1 ? "" : "s");
	}
	spool_close(sp);
	if (finish_output(stdout) == -1 && rc == 0)
		rc = EXIT_IOERR;
	return (rc);
}
