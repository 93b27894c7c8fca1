/*
 * primary.c - the primary record: what the backup last learnt about a
 * domain's primary MX (spool.h, spool/INTERNALS section 11).
 *
 * domains/DOMAIN.primary holds "key value" lines, the first
 * "mxfb-primary 1".  It is replaced whole (temp file in tmp/, fsync,
 * rename), so that a reader sees one record or the one before, never a
 * mix; writers hold domains/DOMAIN.plock (flock) across their read,
 * change and rename, so that a "down" never loses the host and the
 * capabilities an "up" wrote at the same moment.  Whatever the file holds
 * is parsed with bounds: anything but a well-formed record is EBADMSG.
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
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "spool/spool.h"
#include "spool/spool_private.h"

#define RECORD_MAGIC	"mxfb-primary 1"
#define NUMBER_DIGITS	19	/* below INT64_MAX */

/* Which fields a record held (duplicates are refused). */
#define F_UP		0x001
#define F_CHECKED	0x002
#define F_LAST_UP	0x004
#define F_HOST		0x008
#define F_SOURCE	0x010
#define F_EHLO		0x020
#define F_SIZE		0x040
#define F_SMTPUTF8	0x080
#define F_8BITMIME	0x100
#define F_DSN		0x200
#define F_REQUIRED	(F_UP | F_CHECKED | F_LAST_UP | F_SOURCE | F_EHLO)

static int	 parse_number(const char *, size_t, uint64_t *);
static int	 parse_flag(const char *, size_t, int *);
static int	 parse_word(const char *, size_t, char *, size_t, int);
static int	 parse_line(const char *, size_t, const char *, size_t,
		    struct primary_obs *, unsigned *);
static int	 read_record(struct spool *, const char *,
		    struct primary_obs *);
static int	 read_note(struct spool *, const char *, struct primary_obs *);
static int	 write_record(struct spool *, const char *,
		    const struct primary_obs *);
static int	 lock_writers(struct spool *, const char *);

/* Decimal digits only, at most NUMBER_DIGITS of them. */
static int
parse_number(const char *v, size_t len, uint64_t *out)
{
	uint64_t	 n = 0;
	size_t		 i;

	if (len == 0 || len > NUMBER_DIGITS)
		return (-1);
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return (-1);
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	*out = n;
	return (0);
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
 * A host name (letters, digits, '-', '.', '_') or, with lower_only, a
 * word of lower-case letters; it must fit buf with its NUL.
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
		    c == '-' || c == '.' || c == '_'))
			return (-1);
	}
	memcpy(buf, v, len);
	buf[len] = '\0';
	return (0);
}

/* One "key value" line; unknown keys are skipped, a repeated one fails. */
static int
parse_line(const char *k, size_t klen, const char *v, size_t vlen,
    struct primary_obs *obs, unsigned *seen)
{
	static const struct {
		const char	*key;
		unsigned	 bit;
	} keys[] = {
		{ "up", F_UP }, { "checked", F_CHECKED },
		{ "last_up", F_LAST_UP }, { "host", F_HOST },
		{ "source", F_SOURCE }, { "ehlo", F_EHLO },
		{ "size", F_SIZE }, { "smtputf8", F_SMTPUTF8 },
		{ "8bitmime", F_8BITMIME }, { "dsn", F_DSN },
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
	case F_CHECKED:
	case F_LAST_UP:
		if (parse_number(v, vlen, &n) == -1 ||
		    n > (uint64_t)INT64_MAX / 2)
			return (-1);
		if (bit == F_CHECKED)
			obs->checked = (time_t)n;
		else
			obs->last_up = (time_t)n;
		return (0);
	case F_HOST:
		return (parse_word(v, vlen, obs->host, sizeof(obs->host), 0));
	case F_SOURCE:
		return (parse_word(v, vlen, obs->source, sizeof(obs->source),
		    1));
	case F_EHLO:
		return (parse_flag(v, vlen, &obs->have_ehlo));
	case F_SIZE:
		return (parse_number(v, vlen, &obs->size_max));
	case F_SMTPUTF8:
		return (parse_flag(v, vlen, &obs->smtputf8));
	case F_8BITMIME:
		return (parse_flag(v, vlen, &obs->eightbitmime));
	default:
		return (parse_flag(v, vlen, &obs->dsn));
	}
}

int
spool_primary_parse(const char *buf, size_t len, struct primary_obs *obs)
{
	struct primary_obs	 o;
	const char		*p = buf, *end = buf + len, *nl, *sp;
	unsigned		 seen = 0;
	size_t			 mlen = strlen(RECORD_MAGIC);

	memset(&o, 0, sizeof(o));
	if (len > PRIMARY_RECORD_MAX || len < mlen + 1 ||
	    memcmp(buf, RECORD_MAGIC, mlen) != 0 || buf[mlen] != '\n' ||
	    memchr(buf, '\0', len) != NULL || buf[len - 1] != '\n')
		goto bad;
	for (p = buf + mlen + 1; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		sp = memchr(p, ' ', (size_t)(nl - p));
		if (sp == NULL || sp == p)
			goto bad;
		if (parse_line(p, (size_t)(sp - p), sp + 1,
		    (size_t)(nl - sp - 1), &o, &seen) == -1)
			goto bad;
	}
	if ((seen & F_REQUIRED) != F_REQUIRED)
		goto bad;
	*obs = o;
	return (0);
bad:
	errno = EBADMSG;
	return (-1);
}

int
spool_primary_format(const struct primary_obs *o, char *buf, size_t size)
{
	char	 host[DOMAIN_NAME_SIZE + 8];
	int	 n;

	if (o->host[0] != '\0')
		(void)snprintf(host, sizeof(host), "host %s\n", o->host);
	else
		host[0] = '\0';
	n = snprintf(buf, size, RECORD_MAGIC "\nup %d\nchecked %lld\n"
	    "last_up %lld\n%ssource %s\nehlo %d\nsize %" PRIu64 "\n"
	    "smtputf8 %d\n8bitmime %d\ndsn %d\n", o->up ? 1 : 0,
	    (long long)o->checked, (long long)o->last_up, host, o->source,
	    o->have_ehlo ? 1 : 0, o->size_max, o->smtputf8 ? 1 : 0,
	    o->eightbitmime ? 1 : 0, o->dsn ? 1 : 0);
	if (n < 0 || (size_t)n >= size) {
		errno = ENOSPC;
		return (-1);
	}
	return (n);
}

/* domains/DOMAIN.primary; -1 with errno (ENOENT, EBADMSG, ...). */
static int
read_record(struct spool *sp, const char *name, struct primary_obs *obs)
{
	struct stat	 st;
	char		 buf[PRIMARY_RECORD_MAX + 1];
	ssize_t		 n;
	size_t		 got = 0;
	int		 fd, save;

	if ((fd = openat(spool_private_dirfd(sp, D_DOMAINS), name,
	    SPOOL_READ_FLAGS)) == -1)
		return (-1);
	if (fstat(fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EPERM;
		goto fail;
	}
	/* One byte more than a record may hold shows one too long. */
	while (got < sizeof(buf)) {
		n = read(fd, buf + got, sizeof(buf) - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	(void)close(fd);
	return (spool_primary_parse(buf, got, obs));
fail:
	save = errno;
	(void)close(fd);
	errno = save;
	return (-1);
}

/* An older mxfb's probe note: "time=... host=H address=... ...". */
static int
read_note(struct spool *sp, const char *domain, struct primary_obs *obs)
{
	char		*note, *p;
	time_t		 when;
	size_t		 len;

	if (spool_domain_note_read(sp, domain, &note, &when) == -1)
		return (-1);
	memset(obs, 0, sizeof(*obs));
	obs->up = 1;
	obs->checked = obs->last_up = when;
	(void)strlcpy(obs->source, "note", sizeof(obs->source));
	for (p = note; (p = strstr(p, "host=")) != NULL; p += 5) {
		if (p != note && p[-1] != ' ')
			continue;
		len = strcspn(p + 5, " \n");
		if (parse_word(p + 5, len, obs->host, sizeof(obs->host),
		    0) == -1)
			obs->host[0] = '\0';
		break;
	}
	free(note);
	return (0);
}

int
spool_primary_read(struct spool *sp, const char *domain,
    struct primary_obs *obs)
{
	char	 name[300];

	if (spool_private_domain_file(domain, "primary", name,
	    sizeof(name)) == -1)
		return (-1);
	if (read_record(sp, name, obs) == 0)
		return (0);
	if (errno != ENOENT)
		return (-1);
	if (read_note(sp, domain, obs) == -1) {
		if (errno != ENOENT && errno != EINVAL)
			log_warn("spool: domains/%s.probe", domain);
		errno = ENOENT;
		return (-1);
	}
	return (0);
}

/* Temp file, fsync, rename over domains/NAME. */
static int
write_record(struct spool *sp, const char *name, const struct primary_obs *o)
{
	struct primary_obs	 check;
	char			 text[PRIMARY_RECORD_MAX], tmp[400];
	int			 fd, len, save;

	if ((len = spool_primary_format(o, text, sizeof(text))) == -1)
		return (-1);
	/* Nothing is written that would not read back (a bad host). */
	if (spool_primary_parse(text, (size_t)len, &check) == -1) {
		errno = EINVAL;
		return (-1);
	}
	if (bsnprintf(tmp, sizeof(tmp), "%s.%s.%ld", name,
	    spool_private_host(sp), (long)getpid()) == -1)
		return (-1);
	if ((fd = spool_private_create_temp(spool_private_dirfd(sp, D_TMP),
	    tmp)) == -1)
		return (-1);
	if (write_all(fd, text, (size_t)len) == -1 || fsync(fd) == -1) {
		save = errno;
		(void)close(fd);
		goto fail;
	}
	if (close(fd) == -1) {
		save = errno;
		goto fail;
	}
	if (renameat(spool_private_dirfd(sp, D_TMP), tmp,
	    spool_private_dirfd(sp, D_DOMAINS), name) == -1) {
		save = errno;
		goto fail;
	}
	return (0);
fail:
	if (unlinkat(spool_private_dirfd(sp, D_TMP), tmp, 0) == -1 &&
	    errno != ENOENT)
		log_warn("spool: unlink tmp/%s", tmp);
	errno = save;
	return (-1);
}

/*
 * domains/DOMAIN.plock, flocked (waiting): writers only, held for one
 * read, change and rename.  Only a regular file, never through a link.
 */
static int
lock_writers(struct spool *sp, const char *domain)
{
	struct stat	 st;
	char		 name[300];
	int		 fd, save;

	if (spool_private_domain_file(domain, "plock", name,
	    sizeof(name)) == -1)
		return (-1);
	if ((fd = openat(spool_private_dirfd(sp, D_DOMAINS), name, O_RDWR |
	    O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600)) == -1)
		return (-1);
	if (fstat(fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EPERM;
		goto fail;
	}
	while (flock(fd, LOCK_EX) == -1)
		if (errno != EINTR)
			goto fail;
	return (fd);
fail:
	save = errno;
	(void)close(fd);
	errno = save;
	return (-1);
}

int
spool_primary_observe(struct spool *sp, const char *domain,
    const struct primary_obs *obs)
{
	struct primary_obs	 rec, old;
	char			 name[300], note[300];
	int			 lock, r, save;

	if (spool_private_domain_file(domain, "primary", name,
	    sizeof(name)) == -1)
		return (-1);
	if ((lock = lock_writers(sp, domain)) == -1)
		return (-1);
	rec = *obs;
	rec.up = obs->up ? 1 : 0;
	if (rec.checked <= 0)
		rec.checked = time(NULL);
	rec.host[sizeof(rec.host) - 1] = '\0';
	rec.source[sizeof(rec.source) - 1] = '\0';
	if (rec.up)
		rec.last_up = rec.checked;
	else {
		/* Down: what the last "up" saw stays. */
		memset(&old, 0, sizeof(old));
		if (spool_primary_read(sp, domain, &old) == -1)
			memset(&old, 0, sizeof(old));
		rec.last_up = old.last_up;
		(void)strlcpy(rec.host, old.host, sizeof(rec.host));
		rec.have_ehlo = old.have_ehlo;
		rec.size_max = old.size_max;
		rec.smtputf8 = old.smtputf8;
		rec.eightbitmime = old.eightbitmime;
		rec.dsn = old.dsn;
	}
	r = write_record(sp, name, &rec);
	save = errno;
	/* The record replaces an older mxfb's note for good. */
	if (r == 0 && spool_private_domain_file(domain, "probe", note,
	    sizeof(note)) == 0 && unlinkat(spool_private_dirfd(sp, D_DOMAINS),
	    note, 0) == -1 && errno != ENOENT)
		log_warn("spool: unlink domains/%s", note);
	(void)close(lock);
	errno = save;
	return (r);
}
