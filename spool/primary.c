/*
 * primary.c - the primary record: what the backup last learnt about a
 * domain's primary MX (spool.h, spool/INTERNALS section 11).
 *
 * domains/DOMAIN.probe holds "key=value" lines, the first
 * "mxfb-primary 1" (the file of the older probe note, whose one-line
 * "time=... host=... ehlo=..." form still reads).  It is replaced whole
 * by spool_domain_note_write (temp file in tmp/, fsync, rename), so that
 * a reader sees one record or the one before, never a mix; writers hold
 * domains/DOMAIN.plock (flock) across their read, change and rename, so
 * that a "down" never loses the host and the capabilities an "up" wrote
 * at the same moment.  Whatever the file holds is parsed with bounds:
 * anything but a well-formed record is EBADMSG.
 */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>


#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "spool/spool.h"
#include "spool/spool_private.h"

#define RECORD_MAGIC	"mxfb-primary 1"
#define RECORD_SUFFIX	".probe"
#define NUMBER_DIGITS	19	/* below INT64_MAX */

/* Which fields a record held (duplicates are refused). */
#define F_UP		0x01
#define F_TIME		0x02
#define F_LAST_UP	0x04
#define F_HOST		0x08
#define F_SOURCE	0x10
#define F_EHLO		0x20
#define F_SINCE		0x40
#define F_REASON	0x80
#define F_REQUIRED	(F_UP | F_TIME | F_LAST_UP | F_SOURCE)

static int	 parse_number(const char *, size_t, uint64_t *);
static int	 parse_flag(const char *, size_t, int *);
static int	 parse_word(const char *, size_t, char *, size_t, int);
static int	 parse_ehlo(const char *, size_t, struct primary_obs *);
static int	 parse_line(const char *, size_t, const char *, size_t,
		    struct primary_obs *, unsigned *);
static int	 parse_note(const char *, size_t, struct primary_obs *);
static int	 parse_reason(const char *, size_t, char *, size_t);
static int	 lock_writers(struct spool *, const char *);
static void	 carry_state(struct primary_obs *, const struct primary_obs *,
		    int);

static int
parse_number(const char *v, size_t len, uint64_t *out)
{
	return (spool_private_parse_number(v, len, NUMBER_DIGITS, out));
}

static int
parse_flag(const char *v, size_t len, int *out)
{
	if (len != 1 || (v[0] != '0' && v[0] != '1'))
		return (-1);
	*out = v[0] == '1';
	return (0);
}

/*
 * A host name or address literal (letters, digits, '-', '.', '_', '[',
 * ']', ':') or, with lower_only, a word of lower-case letters; it must
 * fit buf with its NUL.
 */
static int
parse_word(const char *v, size_t len, char *buf, size_t size, int lower_only)
{
	size_t	 i;
	int	 c;

	if (len == 0 || len >= size)
		return (-1);
	for (i = 0; i < len; i++) {
		c = (unsigned char)v[i];
		if (c >= 'a' && c <= 'z')
			continue;
		if (lower_only)
			return (-1);
		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '[' ||
		    c == ']' || c == ':'))
			return (-1);
	}
	memcpy(buf, v, len);
	buf[len] = '\0';
	return (0);
}

/* Printable ASCII (spaces too), fitting buf with its NUL. */
static int
parse_reason(const char *v, size_t len, char *buf, size_t size)
{
	size_t	 i;

	if (len == 0 || len >= size)
		return (-1);
	for (i = 0; i < len; i++)
		if ((unsigned char)v[i] < ' ' || (unsigned char)v[i] > '~')
			return (-1);
	memcpy(buf, v, len);
	buf[len] = '\0';
	return (0);
}

/*
 * EHLO keywords separated by spaces, any case: SIZE=N, SMTPUTF8,
 * 8BITMIME and DSN are kept, others skipped; a control character or a
 * bad SIZE fails.
 */
static int
parse_ehlo(const char *v, size_t len, struct primary_obs *o)
{
	const char	*p = v, *end = v + len, *sp;
	size_t		 i, n;

	for (i = 0; i < len; i++)
		if ((unsigned char)v[i] < ' ' || (unsigned char)v[i] > '~')
			return (-1);
	o->have_ehlo = 1;
	o->size_max = 0;
	o->smtputf8 = o->eightbitmime = o->dsn = 0;
	for (; p < end; p = sp + 1) {
		if ((sp = memchr(p, ' ', (size_t)(end - p))) == NULL)
			sp = end;
		n = (size_t)(sp - p);
		if (n > 5 && strncasecmp(p, "SIZE=", 5) == 0) {
			if (parse_number(p + 5, n - 5, &o->size_max) == -1)
				return (-1);
		} else if (n == 8 && strncasecmp(p, "SMTPUTF8", 8) == 0)
			o->smtputf8 = 1;
		else if (n == 8 && strncasecmp(p, "8BITMIME", 8) == 0)
			o->eightbitmime = 1;
		else if (n == 3 && strncasecmp(p, "DSN", 3) == 0)
			o->dsn = 1;
	}
	return (0);
}

/* One "key=value" line; unknown keys are skipped, a repeated one fails. */
static int
parse_line(const char *k, size_t klen, const char *v, size_t vlen,
    struct primary_obs *obs, unsigned *seen)
{
	static const struct {
		const char	*key;
		unsigned	 bit;
	} keys[] = {
		{ "up", F_UP }, { "time", F_TIME }, { "last_up", F_LAST_UP },
		{ "host", F_HOST }, { "source", F_SOURCE }, { "ehlo", F_EHLO },
		{ "since", F_SINCE }, { "reason", F_REASON },
	};
	uint64_t	 n;
	size_t		 i;
	unsigned	 bit = 0;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strlen(keys[i].key) == klen &&
		    memcmp(keys[i].key, k, klen) == 0)
			bit = keys[i].bit;
	if (bit == 0)
		return (0);
	if (*seen & bit)
		return (-1);
	*seen |= bit;
	switch (bit) {
	case F_UP:
		return (parse_flag(v, vlen, &obs->up));
	case F_TIME:
	case F_LAST_UP:
	case F_SINCE:
		if (parse_number(v, vlen, &n) == -1 ||
		    n > (uint64_t)INT64_MAX / 2)
			return (-1);
		if (bit == F_TIME)
			obs->checked = (time_t)n;
		else if (bit == F_LAST_UP)
			obs->last_up = (time_t)n;
		else
			obs->since = (time_t)n;
		return (0);
	case F_REASON:
		return (parse_reason(v, vlen, obs->reason,
		    sizeof(obs->reason)));
	case F_HOST:
		return (parse_word(v, vlen, obs->host, sizeof(obs->host), 0));
	case F_SOURCE:
		return (parse_word(v, vlen, obs->source, sizeof(obs->source),
		    1));
	default:
		return (parse_ehlo(v, vlen, obs));
	}
}

/*
 * An older mxfb's probe note, one line: "time=T host=H address=A
 * latency=Nms ehlo=KEYWORDS...": up at T, with H and the keywords.
 */
static int
parse_note(const char *buf, size_t len, struct primary_obs *o)
{
	const char	*p = buf, *end = buf + len, *sp, *eq;
	unsigned	 seen = 0;

	if (len > 0 && end[-1] == '\n')
		end--;
	if (memchr(buf, '\n', (size_t)(end - buf)) != NULL)
		return (-1);
	for (; p < end; p = sp + 1) {
		if ((eq = memchr(p, '=', (size_t)(end - p))) == NULL)
			return (-1);
		/* The keywords are the rest of the line. */
		if (eq - p == 4 && memcmp(p, "ehlo", 4) == 0)
			sp = end;
		else if ((sp = memchr(p, ' ', (size_t)(end - p))) == NULL)
			sp = end;
		if (eq > sp)
			return (-1);
		if ((eq - p == 4 && memcmp(p, "time", 4) == 0) ||
		    (eq - p == 4 && memcmp(p, "host", 4) == 0) ||
		    (eq - p == 4 && memcmp(p, "ehlo", 4) == 0))
			if (parse_line(p, (size_t)(eq - p), eq + 1,
			    (size_t)(sp - eq - 1), o, &seen) == -1)
				return (-1);
	}
	if (!(seen & F_TIME))
		return (-1);
	o->up = 1;
	o->last_up = o->since = o->checked;
	(void)strlcpy(o->source, "note", sizeof(o->source));
	return (0);
}

int
spool_primary_parse(const char *buf, size_t len, struct primary_obs *obs)
{
	struct primary_obs	 o;
	const char		*p, *end = buf + len, *nl, *eq;
	unsigned		 seen = 0;
	size_t			 mlen = strlen(RECORD_MAGIC);

	memset(&o, 0, sizeof(o));
	if (len > PRIMARY_RECORD_MAX || memchr(buf, '\0', len) != NULL)
		goto bad;
	if (len >= 5 && memcmp(buf, "time=", 5) == 0) {
		if (parse_note(buf, len, &o) == -1)
			goto bad;
		*obs = o;
		return (0);
	}
	if (len < mlen + 1 || memcmp(buf, RECORD_MAGIC, mlen) != 0 ||
	    buf[mlen] != '\n' || buf[len - 1] != '\n')
		goto bad;
	for (p = buf + mlen + 1; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		eq = memchr(p, '=', (size_t)(nl - p));
		if (eq == NULL || eq == p)
			goto bad;
		if (parse_line(p, (size_t)(eq - p), eq + 1,
		    (size_t)(nl - eq - 1), &o, &seen) == -1)
			goto bad;
	}
	if ((seen & F_REQUIRED) != F_REQUIRED)
		goto bad;
	/* A record from before "since": the state held at least then. */
	if (!(seen & F_SINCE))
		o.since = o.checked;
	*obs = o;
	return (0);
bad:
	errno = EBADMSG;
	return (-1);
}

int
spool_primary_format(const struct primary_obs *o, char *buf, size_t size)
{
	char	 host[DOMAIN_NAME_SIZE + 8], ehlo[80], word[32];
	char	 reason[PRIMARY_REASON_SIZE + 8];
	int	 n;

	if (o->host[0] != '\0')
		(void)snprintf(host, sizeof(host), "host=%s\n", o->host);
	else
		host[0] = '\0';
	ehlo[0] = '\0';
	if (o->have_ehlo) {
		/* "ehlo=SIZE=N 8BITMIME SMTPUTF8 DSN", what was offered. */
		(void)strlcpy(ehlo, "ehlo=", sizeof(ehlo));
		if (o->size_max > 0) {
			(void)snprintf(word, sizeof(word), " SIZE=%" PRIu64,
			    o->size_max);
			(void)strlcat(ehlo, word, sizeof(ehlo));
		}
		if (o->eightbitmime)
			(void)strlcat(ehlo, " 8BITMIME", sizeof(ehlo));
		if (o->smtputf8)
			(void)strlcat(ehlo, " SMTPUTF8", sizeof(ehlo));
		if (o->dsn)
			(void)strlcat(ehlo, " DSN", sizeof(ehlo));
		(void)strlcat(ehlo, "\n", sizeof(ehlo));
		/* No space after "=". */
		if (ehlo[5] == ' ')
			memmove(ehlo + 5, ehlo + 6, strlen(ehlo + 6) + 1);
	}
	if (o->reason[0] != '\0')
		(void)snprintf(reason, sizeof(reason), "reason=%s\n",
		    o->reason);
	else
		reason[0] = '\0';
	n = snprintf(buf, size, RECORD_MAGIC "\nup=%d\ntime=%lld\n"
	    "last_up=%lld\n%ssource=%s\n%ssince=%lld\n%s", o->up ? 1 : 0,
	    (long long)o->checked, (long long)o->last_up, host, o->source,
	    ehlo, (long long)o->since, reason);
	if (n < 0 || (size_t)n >= size) {
		errno = ENOSPC;
		return (-1);
	}
	return (n);
}

int
spool_primary_read(struct spool *sp, const char *domain,
    struct primary_obs *obs)
{
	char	*text;
	int	 r;

	if (spool_domain_note_read(sp, domain, &text, NULL) == -1)
		return (-1);
	r = spool_primary_parse(text, strlen(text), obs);
	free(text);
	return (r);
}

/*
 * domains/DOMAIN.plock, flocked (waiting): writers only, held for one
 * read, change and rename.  Only a regular file, never through a link.
 */
static int
lock_writers(struct spool *sp, const char *domain)
{
	char	 name[300];

	if (spool_private_domain_file(domain, "plock", name,
	    sizeof(name)) == -1)
		return (-1);
	return (spool_private_lock_file(sp, name, 1));
}

/*
 * From the record before (old, or none): a down keeps what the last up
 * saw; the state's start stays while the state does.  An up has no
 * reason; a down's is made printable.
 */
static void
carry_state(struct primary_obs *rec, const struct primary_obs *old,
    int have_old)
{
	char	*p;

	if (have_old && old->up == rec->up && old->since > 0 &&
	    old->since <= rec->checked)
		rec->since = old->since;
	else
		rec->since = rec->checked;
	if (rec->up) {
		rec->last_up = rec->checked;
		rec->reason[0] = '\0';
		return;
	}
	rec->reason[sizeof(rec->reason) - 1] = '\0';
	for (p = rec->reason; *p != '\0'; p++)
		if ((unsigned char)*p < ' ' || (unsigned char)*p > '~')
			*p = '?';
	if (!have_old) {
		rec->last_up = 0;
		rec->host[0] = '\0';
		rec->have_ehlo = 0;
		return;
	}
	/* Down: what the last "up" saw stays. */
	rec->last_up = old->last_up;
	(void)strlcpy(rec->host, old->host, sizeof(rec->host));
	rec->have_ehlo = old->have_ehlo;
	rec->size_max = old->size_max;
	rec->smtputf8 = old->smtputf8;
	rec->eightbitmime = old->eightbitmime;
	rec->dsn = old->dsn;
}

int
spool_primary_observe(struct spool *sp, const char *domain,
    const struct primary_obs *obs)
{
	struct primary_obs	 rec, old;
	char			 text[PRIMARY_RECORD_MAX];
	int			 lock, len, r = -1, save, have_old;

	if ((lock = lock_writers(sp, domain)) == -1)
		return (-1);
	rec = *obs;
	rec.up = obs->up ? 1 : 0;
	if (rec.checked <= 0)
		rec.checked = time(NULL);
	rec.host[sizeof(rec.host) - 1] = '\0';
	rec.source[sizeof(rec.source) - 1] = '\0';
	have_old = spool_primary_read(sp, domain, &old) == 0;
	carry_state(&rec, &old, have_old);
	/* Nothing is written that would not read back (a bad host). */
	if ((len = spool_primary_format(&rec, text, sizeof(text))) == -1 ||
	    spool_primary_parse(text, (size_t)len, &old) == -1)
		errno = EINVAL;
	else
		r = spool_domain_note_write(sp, domain, text);
	save = errno;
	(void)close(lock);
	errno = save;
	return (r);
}

/* What spool_primary_walk's walk of domains/ carries. */
struct primary_walk {
	struct spool	*sp;
	int		(*fn)(void *, const char *, const struct primary_obs *);
	void		*arg;
};

static int
primary_walk_one(void *arg, const char *domain)
{
	struct primary_walk	*w = arg;
	struct primary_obs	 obs;

	if (spool_primary_read(w->sp, domain, &obs) != 0)
		return (0);
	return (w->fn(w->arg, domain, &obs));
}

int
spool_primary_walk(struct spool *sp, int (*fn)(void *, const char *,
    const struct primary_obs *), void *arg)
{
	struct primary_walk	 w = { sp, fn, arg };

	return (spool_private_walk_notes(sp, RECORD_SUFFIX, DOMAIN_NAME_SIZE,
	    primary_walk_one, &w));
}
