/*
 * hostnote.c - the host note: what flush last learnt about one next-hop
 * host, an address and a port (spool.h, spool/INTERNALS section 13).
 *
 * domains/KEY.host ("127.0.0.2_25", "::1_25") holds "key=value" lines,
 * the first "mxfb-host 1", replaced whole (temp file in tmp/, fsync,
 * rename) under flock of domains/KEY.hlock, so that a reader sees one
 * note or the one before and two writers never lose a failure count.
 * Whatever the file holds is parsed with bounds: anything but a
 * well-formed note is EBADMSG, which every reader treats as no note.
 */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>


#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>

#include "core/backoff.h"
#include "core/dns.h"
#include "core/log.h"
#include "core/util.h"
#include "spool/spool.h"
#include "spool/spool_private.h"

#define NOTE_MAGIC	"mxfb-host 1"
#define NOTE_SUFFIX	".host"
#define NOTE_MAX	1024
#define NUMBER_DIGITS	19

#define F_UP		0x01
#define F_TIME		0x02
#define F_SINCE		0x04
#define F_RETRY		0x08
#define F_FAILURES	0x10
#define F_HOST		0x20
#define F_REASON	0x40
#define F_REQUIRED	(F_UP | F_TIME | F_SINCE | F_RETRY | F_FAILURES)

static int	 key_valid(const char *);
static int	 note_name(const char *, const char *, char *, size_t);
static int	 parse_number(const char *, size_t, uint64_t *);
static int	 parse_text(const char *, size_t, char *, size_t);
static int	 parse_line(const char *, size_t, const char *, size_t,
		    struct host_note *, unsigned *);
static int	 lock_writers(struct spool *, const char *);
static int	 write_note(struct spool *, const struct host_note *);

void
spool_host_key(const struct sockaddr *sa, char *buf, size_t size)
{
	char	 a[48];
	int	 port;

	dns_addr_string(sa, a, sizeof(a));
	port = sa->sa_family == AF_INET6 ?
	    ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port) :
	    ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
	(void)snprintf(buf, size, "%s_%d", a, port & 0xffff);
}

/* Addresses and ports only: hex digits, '.', ':', '_'. */
static int
key_valid(const char *key)
{
	size_t	 i, len = strlen(key);

	if (len == 0 || len >= HOST_KEY_SIZE)
		return (0);
	for (i = 0; i < len; i++)
		if (strchr("0123456789abcdefABCDEF.:_", key[i]) == NULL)
			return (0);
	return (1);
}

static int
note_name(const char *key, const char *suffix, char *buf, size_t size)
{
	if (!key_valid(key)) {
		errno = EINVAL;
		return (-1);
	}
	return (bsnprintf(buf, size, "%s%s", key, suffix));
}

static int
parse_number(const char *v, size_t len, uint64_t *out)
{
	return (spool_private_parse_number(v, len, NUMBER_DIGITS, out));
}

/* Printable ASCII (space included), shorter than size. */
static int
parse_text(const char *v, size_t len, char *buf, size_t size)
{
	size_t	 i;

	if (len >= size)
		return (-1);
	for (i = 0; i < len; i++)
		if ((unsigned char)v[i] < ' ' || (unsigned char)v[i] > '~')
			return (-1);
	memcpy(buf, v, len);
	buf[len] = '\0';
	return (0);
}

static int
parse_line(const char *k, size_t klen, const char *v, size_t vlen,
    struct host_note *n, unsigned *seen)
{
	static const struct {
		const char	*name;
		unsigned	 flag;
	} fields[] = {
		{ "up", F_UP }, { "time", F_TIME }, { "since", F_SINCE },
		{ "retry", F_RETRY }, { "failures", F_FAILURES },
		{ "host", F_HOST }, { "reason", F_REASON }
	};
	uint64_t	 x = 0;
	size_t		 i;
	unsigned	 f = 0;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strlen(fields[i].name) == klen &&
		    memcmp(fields[i].name, k, klen) == 0)
			f = fields[i].flag;
	if (f == 0)
		return (0);	/* a newer mxfb's key */
	if (*seen & f)
		return (-1);
	*seen |= f;
	if (f == F_HOST)
		return (parse_text(v, vlen, n->host, sizeof(n->host)));
	if (f == F_REASON)
		return (parse_text(v, vlen, n->reason, sizeof(n->reason)));
	if (parse_number(v, vlen, &x) == -1 || x > INT64_MAX / 2)
		return (-1);
	if (f == F_UP) {
		if (x > 1)
			return (-1);
		n->up = (int)x;
	} else if (f == F_TIME)
		n->time = (time_t)x;
	else if (f == F_SINCE)
		n->since = (time_t)x;
	else if (f == F_RETRY)
		n->retry = (time_t)x;
	else if (x > 1000000)
		return (-1);
	else
		n->failures = (unsigned)x;
	return (0);
}

int
spool_host_parse(const char *buf, size_t len, struct host_note *n)
{
	const char	*p = buf, *end = buf + len, *nl, *eq;
	unsigned	 seen = 0;
	size_t		 mlen = strlen(NOTE_MAGIC);

	memset(n, 0, sizeof(*n));
	if (len > NOTE_MAX || len == 0 || buf[len - 1] != '\n' ||
	    memchr(buf, '\0', len) != NULL || len <= mlen ||
	    memcmp(buf, NOTE_MAGIC "\n", mlen + 1) != 0)
		goto bad;
	for (p += mlen + 1; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if ((eq = memchr(p, '=', (size_t)(nl - p))) == NULL ||
		    eq == p)
			goto bad;
		if (parse_line(p, (size_t)(eq - p), eq + 1,
		    (size_t)(nl - eq - 1), n, &seen) == -1)
			goto bad;
	}
	if ((seen & F_REQUIRED) != F_REQUIRED)
		goto bad;
	return (0);
bad:
	memset(n, 0, sizeof(*n));
	errno = EBADMSG;
	return (-1);
}

int
spool_host_read(struct spool *sp, const char *key, struct host_note *n)
{
	struct stat	 st;
	char		 name[HOST_KEY_SIZE + 16], buf[NOTE_MAX + 1];
	ssize_t		 len;
	int		 fd, save;

	if (note_name(key, NOTE_SUFFIX, name, sizeof(name)) == -1)
		return (-1);
	if ((fd = openat(spool_private_dirfd(sp, D_DOMAINS), name,
	    SPOOL_READ_FLAGS)) == -1)
		return (-1);
	if (fstat(fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EPERM;
		goto fail;
	}
	if ((len = read(fd, buf, sizeof(buf))) == -1)
		goto fail;
	(void)close(fd);
	if (spool_host_parse(buf, (size_t)len, n) == -1)
		return (-1);
	(void)strlcpy(n->key, key, sizeof(n->key));
	return (0);
fail:
	save = errno;
	(void)close(fd);
	errno = save;
	return (-1);
}

/* domains/KEY.hlock, flocked (waiting), for one read, change, rename. */
static int
lock_writers(struct spool *sp, const char *key)
{
	char	 name[HOST_KEY_SIZE + 16];

	if (note_name(key, ".hlock", name, sizeof(name)) == -1)
		return (-1);
	return (spool_private_lock_file(sp, name, 1));
}

int
spool_host_format(const struct host_note *n, char *buf, size_t size)
{
	int	 len;

	len = snprintf(buf, size, NOTE_MAGIC "\nup=%d\ntime=%lld\n"
	    "since=%lld\nretry=%lld\nfailures=%u\n%s%s%s%s%s%s", n->up,
	    (long long)n->time, (long long)n->since, (long long)n->retry,
	    n->failures, n->host[0] ? "host=" : "", n->host,
	    n->host[0] ? "\n" : "", n->reason[0] ? "reason=" : "", n->reason,
	    n->reason[0] ? "\n" : "");
	if (len < 0 || (size_t)len >= size || len > NOTE_MAX) {
		errno = ENOSPC;
		return (-1);
	}
	return (len);
}

/* tmp/KEY.host.PID.TID, fsync, rename over domains/KEY.host. */
static int
write_note(struct spool *sp, const struct host_note *n)
{
	char	 text[NOTE_MAX + 1], name[HOST_KEY_SIZE + 16], tmp[160];
	int	 fd, len, save;

	len = spool_host_format(n, text, sizeof(text));
	if (len < 0 ||
	    note_name(n->key, NOTE_SUFFIX, name, sizeof(name)) == -1 ||
	    bsnprintf(tmp, sizeof(tmp), "%s.%ld.%ld", name, (long)getpid(),
	    (long)gettid()) == -1) {
		errno = EINVAL;
		return (-1);
	}
	if ((fd = spool_private_create_temp(spool_private_dirfd(sp, D_TMP),
	    tmp)) == -1)
		return (-1);
	if (write_all(fd, text, (size_t)len) == -1 || fsync(fd) == -1) {
		save = errno;
		(void)close(fd);
		goto fail;
	}
	if (close(fd) == -1 || renameat(spool_private_dirfd(sp, D_TMP), tmp,
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

int
spool_host_observe(struct spool *sp, const char *key, int up,
    const char *host, const char *reason, time_t retry_min, time_t retry_max,
    struct host_note *out)
{
	struct host_note	 old, n;
	char			*p;
	int			 lock, have_old, r, save;
	time_t			 now = time(NULL);

	if ((lock = lock_writers(sp, key)) == -1)
		return (-1);
	have_old = spool_host_read(sp, key, &old) == 0;
	memset(&n, 0, sizeof(n));
	(void)strlcpy(n.key, key, sizeof(n.key));
	n.up = up ? 1 : 0;
	n.time = now;
	n.since = have_old && old.up == n.up && old.since > 0 &&
	    old.since <= now ? old.since : now;
	if (host != NULL)
		(void)strlcpy(n.host, host, sizeof(n.host));
	if (!up) {
		n.failures = have_old && !old.up ? old.failures + 1 : 1;
		if (n.failures > 1000000)
			n.failures = 1000000;
		n.retry = now + backoff_delay((int)n.failures, retry_min,
		    retry_max);
		(void)strlcpy(n.reason, reason != NULL ? reason : "",
		    sizeof(n.reason));
		for (p = n.reason; *p != '\0'; p++)
			if ((unsigned char)*p < ' ' || (unsigned char)*p > '~')
				*p = '?';
	}
	r = write_note(sp, &n);
	save = errno;
	(void)close(lock);
	if (r == 0 && out != NULL)
		*out = n;
	errno = save;
	return (r);
}

/* What spool_host_walk's walk of domains/ carries. */
struct host_walk {
	struct spool	*sp;
	int		(*fn)(void *, const struct host_note *);
	void		*arg;
};

static int
host_walk_one(void *arg, const char *key)
{
	struct host_walk	*w = arg;
	struct host_note	 n;

	if (spool_host_read(w->sp, key, &n) != 0)
		return (0);
	return (w->fn(w->arg, &n));
}

int
spool_host_walk(struct spool *sp, int (*fn)(void *, const struct host_note *),
    void *arg)
{
	struct host_walk	 w = { sp, fn, arg };

	return (spool_private_walk_notes(sp, NOTE_SUFFIX, HOST_KEY_SIZE,
	    host_walk_one, &w));
}
