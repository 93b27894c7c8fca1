/*
 * maildir.c - the outage mailbox (issue 15): while a message waits in
 * the spool, each of its recipients marked `mailbox` (envelope.h) gets
 * a copy in the Maildir DIR/DOMAIN/LOCALPART/, and the copy leaves once
 * the recipient is finished (delivered, bounced, expired) or the message
 * is deleted.
 *
 * Guarantees (spool/INTERNALS, section 12): a copy's name is derived
 * from the envelope (queue ID, recipient index, size), so it is found
 * again without any record, never by scanning mailboxes.  Receive
 * writes the copy into tmp/ under that name and fsyncs it within its
 * commit, before the message's own fsync: the copy is owed while that
 * file exists.  Once the message is in the spool it is renamed into
 * new/ (never replacing a file) and new/ fsync'd: whatever is visible
 * in new/ or cur/ is whole and belongs to a message in the spool.  The
 * users' Maildirs stay open in the spool handle from copy to copy.  The spool's mailbox/ID holds only what the
 * names cannot say: a copy over quota, a copy owed after a failure, and
 * the copies of a spool made by the previous version (named at random,
 * listed there).  Copy and removal of one message hold an flock on its
 * message file, so that receive's copy and flush's removal never
 * interleave.  The quota is the Maildir++ maildirsize file, appended to
 * and recalculated from a scan only when missing, big or stale.
 * Nothing here fails a caller: failures are logged and the copy is owed
 * again.
 */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "core/log.h"
#include "core/mail/address.h"
#include "core/util.h"
#include "spool/spool.h"
#include "spool/spool_private.h"

#define INDEX_MAX	(4 * 1024 * 1024)
#define BASE_SIZE	256		/* a Maildir base name */
#define NAME_SIZE	(BASE_SIZE + 64)	/* with :2,FLAGS */
#define PATH_SIZE	(1024 + DOMAIN_NAME_SIZE + ADDRESS_LOCAL_MAX + \
			    NAME_SIZE + 32)
#define DELIVERED	".Delivered"
#define HOST_PART	"mxfb"		/* see copy_names */
#define QUOTA_FILE	"maildirsize"
#define QUOTA_FILE_MAX	5120		/* Maildir++: compacted beyond */
#define QUOTA_READ_MAX	16384		/* bigger: recalculated */
#define QUOTA_STALE	(15 * 60)	/* over quota and older: recalculated */
#define RECOVER_AFTER	(60 * 60)	/* an orphan's owed/over lines */

/* A line of mailbox/ID. */
enum kind {
	K_COPY,		/* "copy ADDR D/L/BASE": the previous version's copy */
	K_OVER,		/* "over ADDR": over mailbox-max-size, no copy */
	K_OWED		/* "owed ADDR": a copy failed, flush makes it */
};

struct entry {
	char		*addr;
	enum kind	 kind;
	char		 domain[DOMAIN_NAME_SIZE];
	char		 local[ADDRESS_LOCAL_MAX + 1];
	char		 base[BASE_SIZE];	/* K_COPY only */
	int		 gone;			/* not written back */
};

/* maildirsize's sums. */
struct quota {
	int64_t		 bytes;
	int64_t		 count;
	time_t		 mtime;
	ssize_t		 len;		/* bytes read */
};

struct maildir_batch {
	struct pending	*p;
	size_t		 n;
};

struct index {
	struct entry	*e;
	size_t		 n;
	int		 changed;
};

/*
 * A user's Maildir kept open from one copy to the next (a spool
 * handle's: receive makes many copies for few users).
 */
struct maildir_user {
	char		 domain[DOMAIN_NAME_SIZE];
	char		 local[ADDRESS_LOCAL_MAX + 1];
	int		 userfd, tmpfd, newfd;
	int		 quotafd;	/* maildirsize, read and appended */
	ino_t		 q_ino;		/* maildirsize read up to q_off, */
	off_t		 q_off;		/* its sums so far */
	int64_t		 q_bytes, q_count;
	unsigned	 gen;		/* the batch using it (pinned) */
	int		 spare;		/* not in the cache: its pending's */
};

#define USER_CACHE	4

struct maildir_cache {
	struct maildir_user	 u[USER_CACHE];
	size_t			 next;		/* replaced next */
	unsigned		 gen;		/* the batch being made */
};

/* A copy written to tmp/, not yet renamed into new/. */
struct pending {
	const char	*addr;
	struct maildir_user *u;		/* the fds are its; NULL: ours */
	int		 userfd;	/* DIR/DOMAIN/LOCAL */
	int		 tmpfd;		/* its tmp/ */
	int		 newfd;		/* its new/ */
	int		 done;		/* in new/ */
	char		 tmpname[BASE_SIZE];
	char		 newname[BASE_SIZE];
	char		 domain[DOMAIN_NAME_SIZE];
	char		 local[ADDRESS_LOCAL_MAX + 1];
};

static int	 index_read(int, const char *, struct index *);
static int	 index_parse(char *, struct index *);
static int	 index_write(int, const char *, const struct index *);
static void	 index_free(struct index *);
static struct entry *index_find(const struct index *, const char *);
static struct entry *index_add(struct index *, enum kind, const char *,
		    const char *, const char *, const char *);
static int	 index_load(struct spool *, const char *, int *,
		    struct index *);
static int	 copy_names(const char *, size_t, uint64_t, char *, char *);
static int	 open_dir(int, const char *, int);
static int	 open_user(const struct spool_mailbox *, const char *,
		    const char *, int);
static void	 dir_usage(int, const char *, uint64_t *, uint64_t *);
static int	 quota_lines(const char *, size_t, int64_t *, int64_t *);
static int	 quota_read(int, struct maildir_user *, struct quota *);
static void	 quota_store(int, const struct spool_mailbox *, uint64_t,
		    uint64_t);
static uint64_t	 quota_recalc(int, const struct spool_mailbox *);
static uint64_t	 quota_usage(int, struct maildir_user *,
		    const struct spool_mailbox *, uint64_t);
static void	 quota_add(int, int, int64_t, int);
static uint64_t	 name_size(const char *);
static void	 user_close(struct maildir_user *);
static struct maildir_user *user_get(struct spool *,
		    const struct spool_mailbox *, const char *, const char *);
static int	 user_quotafd(struct maildir_user *);
static int	 over_quota(const struct spool_mailbox *, const char *,
		    const struct pending *, uint64_t);
static int	 stage_one(struct spool *, const struct spool_mailbox *,
		    const struct envelope *, size_t, int, struct pending *,
		    struct index *);
static void	 stage_failed(const struct spool_mailbox *,
		    const struct envelope *, struct pending *, struct index *);
static int	 write_copy(int, const char *, int, uint64_t);
static struct maildir_cache *cache_get(struct spool *);

static void	 pending_close(struct pending *);
static int	 prepare_copy(const struct spool_mailbox *,
		    const struct envelope *, size_t, int, uint64_t,
		    struct entry *, struct pending *, struct index *);
static void	 publish_copies(const struct spool_mailbox *,
		    const struct envelope *, struct pending *, size_t);
static int	 find_copy(int, const char *, char *, size_t, const char **);
static int	 copy_exists(int, const char *);
static void	 leave(const struct spool_mailbox *, const char *,
		    const char *, const char *, const char *, int,
		    const char *);
static void	 release_old(const struct spool_mailbox *, const char *,
		    struct entry *);
static void	 release_copy(const struct spool_mailbox *,
		    const struct envelope *, size_t);
static int	 list_one(const struct spool_mailbox *,
		    const struct envelope *, size_t, const struct index *,
		    int, int (*)(void *, const char *, const char *, int),
		    void *);
static void	 recover_index(const struct spool_mailbox *, int, const char *,
		    time_t);
static void	 expire_user(int, const char *, time_t, time_t);
static void	 expire_domain(int, const char *, time_t, time_t);

/* mailbox/ID as entries; ENOENT when there is none. */
static int
index_read(int dirfd, const char *id, struct index *ix)
{
	struct stat	 st;
	char		*buf;
	ssize_t		 got;
	int		 fd, save;

	memset(ix, 0, sizeof(*ix));
	if ((fd = openat(dirfd, id, SPOOL_READ_FLAGS)) == -1)
		return (-1);
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > INDEX_MAX) {
		save = errno;
		(void)close(fd);
		errno = save ? save : EBADMSG;
		return (-1);
	}
	buf = xmalloc((size_t)st.st_size + 1);
	got = pread(fd, buf, (size_t)st.st_size, 0);
	save = errno;
	(void)close(fd);
	if (got != st.st_size) {
		free(buf);
		errno = got == -1 ? save : EBADMSG;
		return (-1);
	}
	buf[got] = '\0';
	if (index_parse(buf, ix) == -1) {
		free(buf);
		index_free(ix);
		errno = EBADMSG;
		return (-1);
	}
	free(buf);
	return (0);
}

static int
index_parse(char *s, struct index *ix)
{
	char	*line, *addr, *path, *sl1, *sl2;

	if ((line = strsep(&s, "\n")) == NULL || strcmp(line, "M1") != 0)
		return (-1);
	while ((line = strsep(&s, "\n")) != NULL && *line != '\0') {
		if (strncmp(line, "over ", 5) == 0) {
			(void)index_add(ix, K_OVER, line + 5, "", "", "");
			continue;
		}
		if (strncmp(line, "owed ", 5) == 0) {
			(void)index_add(ix, K_OWED, line + 5, "", "", "");
			continue;
		}
		if (strncmp(line, "copy ", 5) != 0)
			return (-1);
		addr = line + 5;
		if ((path = strchr(addr, ' ')) == NULL)
			return (-1);
		*path++ = '\0';
		if ((sl1 = strchr(path, '/')) == NULL ||
		    (sl2 = strchr(sl1 + 1, '/')) == NULL)
			return (-1);
		*sl1++ = *sl2++ = '\0';
		if (strlen(path) >= DOMAIN_NAME_SIZE ||
		    strlen(sl1) > ADDRESS_LOCAL_MAX ||
		    strlen(sl2) >= BASE_SIZE || *sl2 == '\0' ||
		    strchr(sl2, '/') != NULL || *path == '.' || *sl1 == '.' ||
		    *sl2 == '.')
			return (-1);
		(void)index_add(ix, K_COPY, addr, path, sl1, sl2);
	}
	return (0);
}

/* Replace mailbox/ID (temp, fsync, rename, directory fsync); none left:
 * unlink it. */
static int
index_write(int dirfd, const char *id, const struct index *ix)
{
	char		 tmp[QUEUE_ID_SIZE + 16];
	const struct entry *e;
	FILE		*f;
	size_t		 i, live = 0;
	int		 fd, save;

	for (i = 0; i < ix->n; i++)
		if (!ix->e[i].gone)
			live++;
	if (live == 0) {
		if (unlinkat(dirfd, id, 0) == -1) {
			if (errno == ENOENT)
				return (0);
			return (-1);
		}
		return (fsync(dirfd));
	}
	(void)bsnprintf(tmp, sizeof(tmp), "%s.tmp.%ld", id, (long)getpid());
	if ((fd = spool_private_create_temp(dirfd, tmp)) == -1)
		return (-1);
	if ((f = fdopen(fd, "w")) == NULL) {
		save = errno;
		(void)close(fd);
		goto fail;
	}
	fprintf(f, "M1\n");
	for (i = 0; i < ix->n; i++) {
		e = &ix->e[i];
		if (e->gone)
			continue;
		if (e->kind == K_OVER)
			fprintf(f, "over %s\n", e->addr);
		else if (e->kind == K_OWED)
			fprintf(f, "owed %s\n", e->addr);
		else
			fprintf(f, "copy %s %s/%s/%s\n", e->addr, e->domain,
			    e->local, e->base);
	}
	if (fflush(f) == EOF || ferror(f) || fsync(fileno(f)) == -1) {
		save = errno;
		(void)fclose(f);
		goto fail;
	}
	if (fclose(f) == EOF) {
		save = errno;
		goto fail;
	}
	if (renameat(dirfd, tmp, dirfd, id) == -1) {
		save = errno;
		goto fail;
	}
	return (fsync(dirfd));
fail:
	(void)unlinkat(dirfd, tmp, 0);
	errno = save;
	return (-1);
}

static void
index_free(struct index *ix)
{
	size_t	 i;

	for (i = 0; i < ix->n; i++)
		free(ix->e[i].addr);
	free(ix->e);
	memset(ix, 0, sizeof(*ix));
}

static struct entry *
index_find(const struct index *ix, const char *addr)
{
	size_t	 i;

	for (i = 0; i < ix->n; i++)
		if (!ix->e[i].gone && strcmp(ix->e[i].addr, addr) == 0)
			return (&ix->e[i]);
	return (NULL);
}

static struct entry *
index_add(struct index *ix, enum kind kind, const char *addr,
    const char *domain, const char *local, const char *base)
{
	struct entry	*e;

	ix->e = xreallocarray(ix->e, ix->n + 1, sizeof(*ix->e));
	e = &ix->e[ix->n++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->addr = xstrdup(addr);
	(void)strlcpy(e->domain, domain, sizeof(e->domain));
	(void)strlcpy(e->local, local, sizeof(e->local));
	(void)strlcpy(e->base, base, sizeof(e->base));
	return (e);
}

/*
 * mailbox/id into ix (empty when there is none), mailbox/'s fd into
 * *ixfd: 0, or -1 (logged) when it cannot be read; ix is then empty.
 */
static int
index_load(struct spool *sp, const char *id, int *ixfd, struct index *ix)
{
	memset(ix, 0, sizeof(*ix));
	if ((*ixfd = spool_private_mailbox_dirfd(sp)) == -1)
		return (-1);
	if (index_read(*ixfd, id, ix) == 0 || errno == ENOENT)
		return (0);
	log_warn("%s: mailbox: index", id);
	return (-1);
}

/*
 * The names of recipient i's copy of message id: in tmp/ (made before
 * the spool commit, when the size is not known yet) and in new/ (with
 * ,S=size, which Dovecot trusts):
 *
 *	ARRIVAL.QQUEUEID_I.mxfb	and	ARRIVAL.QQUEUEID_I.mxfb,S=SIZE
 *
 * Unique, as Maildir wants: the queue ID is (its time and 30 random
 * bits).  The host part is a constant, not the host name: on a spool
 * two hosts share, the one that removes a copy may not be the one that
 * made it, and must find it under the same name.
 */
static int
copy_names(const char *id, size_t i, uint64_t size, char *tmpname,
    char *newname)
{
	if (bsnprintf(tmpname, BASE_SIZE, "%lld.Q%s_%zu.%s",
	    (long long)queue_id_time(id), id, i, HOST_PART) == -1 ||
	    (newname != NULL && bsnprintf(newname, BASE_SIZE, "%s,S=%" PRIu64,
	    tmpname, size) == -1)) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	return (0);
}

/* dirfd/name as a directory, never through a link; made (0700) with
 * create. */
static int
open_dir(int dirfd, const char *name, int create)
{
	int	 fd;

	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd != -1 || errno != ENOENT || !create)
		return (fd);
	if (mkdirat(dirfd, name, 0700) == -1 && errno != EEXIST)
		return (-1);
	return (openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC));
}

/* DIR/DOMAIN/LOCAL, with tmp/ new/ cur/ when create. */
static int
open_user(const struct spool_mailbox *mb, const char *domain,
    const char *local, int create)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	int	 top, dom, user, fd, save;
	size_t	 i;

	if ((top = open(mb->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return (-1);
	dom = open_dir(top, domain, create);
	save = errno;
	(void)close(top);
	if (dom == -1) {
		errno = save;
		return (-1);
	}
	user = open_dir(dom, local, create);
	save = errno;
	(void)close(dom);
	if (user == -1) {
		errno = save;
		return (-1);
	}
	for (i = 0; create && i < sizeof(sub) / sizeof(sub[0]); i++) {
		if ((fd = open_dir(user, sub[i], 1)) == -1) {
			save = errno;
			(void)close(user);
			errno = save;
			return (-1);
		}
		(void)close(fd);
	}
	return (user);
}

/* Bytes (from the ,S= of names) and files in parent/name. */
static void
dir_usage(int parent, const char *name, uint64_t *bytes, uint64_t *count)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	const char	*s;
	int		 fd;

	if ((fd = open_dir(parent, name, 0)) == -1)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		(void)close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((s = strstr(de->d_name, ",S=")) != NULL)
			*bytes += strtoull(s + 3, NULL, 10);
		else if (fstatat(dirfd(d), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == 0)
			*bytes += (uint64_t)st.st_size;
		(*count)++;
	}
	(void)closedir(d);
}

/*
 * The Maildir++ maildirsize, len bytes at buf (the user's file: any
 * bytes): a first line (the quota, "NS", not ours to judge), then lines
 * "BYTES COUNT" (negative for removals) whose BYTES add up to *bytes
 * (never below 0) and, when count is not NULL, whose COUNTs add up to
 * *count (a COUNT that does not read counts 0).  -1 for anything else,
 * or a sum out of range.
 */
int
maildir_quota_parse(const char *buf, size_t len, int64_t *bytes,
    int64_t *count)
{
	const char	*nl;
	int64_t		 c = 0;

	*bytes = 0;
	if (count != NULL)
		*count = 0;
	if ((nl = memchr(buf, '\n', len)) == NULL ||
	    quota_lines(nl + 1, len - (size_t)(nl + 1 - buf), bytes, &c) == -1)
		return (-1);
	if (*bytes < 0)
		*bytes = 0;
	if (count != NULL)
		*count = c < 0 ? 0 : c;
	return (0);
}

/*
 * maildirsize's "BYTES COUNT" lines, len bytes at p, added to *bytes
 * and *count (as they are: negative sums too).  -1 for a line that is
 * not one, or a sum out of range.
 */
static int
quota_lines(const char *p, size_t len, int64_t *bytes, int64_t *count)
{
	const char	*end = p + len, *nl;
	char		 line[64], *e, *ce;
	long long	 v, c;
	size_t		 n;

	for (; p < end; p += n + (nl != NULL)) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)((nl != NULL ? nl : end) - p);
		if (n == 0)
			continue;
		if (n >= sizeof(line))
			return (-1);
		memcpy(line, p, n);
		line[n] = '\0';
		errno = 0;
		v = strtoll(line, &e, 10);
		if (errno != 0 || e == line || (*e != ' ' && *e != '\0') ||
		    (v > 0 && *bytes > INT64_MAX - v) ||
		    (v < 0 && *bytes < INT64_MIN - v))
			return (-1);
		*bytes += v;
		if (*e != ' ')
			continue;
		errno = 0;
		c = strtoll(e + 1, &ce, 10);
		if (errno == 0 && ce != e + 1 && *ce == '\0' &&
		    c > -1000000000LL && c < 1000000000LL &&
		    *count > INT64_MIN / 2 && *count < INT64_MAX / 2)
			*count += c;
	}
	return (0);
}

/*
 * maildirsize's totals: 0, or -1 when it is missing, unreadable, not
 * Maildir++ or bigger than QUOTA_READ_MAX (recalculate).  From u's
 * open file when u is given, reading only what was appended since the
 * last time (the sums kept in u; the whole file again when it was
 * replaced or shrank), else opened here from userfd.  What is read ends
 * at its last line end: a line another process is appending right now
 * is read next time, and is no reason to recalculate.
 */
static int
quota_read(int userfd, struct maildir_user *u, struct quota *q)
{
	char		 buf[QUOTA_READ_MAX];
	struct stat	 st;
	const char	*nl, *start;
	ssize_t		 got;
	off_t		 from = 0;
	int64_t		 bytes = 0, count = 0;
	int		 fd, r = -1;

	memset(q, 0, sizeof(*q));
	if (u != NULL)
		fd = user_quotafd(u);
	else
		fd = openat(userfd, QUOTA_FILE, O_RDONLY | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return (-1);
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > QUOTA_READ_MAX)
		goto out;
	if (u != NULL && u->q_off > 0 && u->q_ino == st.st_ino &&
	    st.st_size >= u->q_off) {
		from = u->q_off;
		bytes = u->q_bytes;
		count = u->q_count;
	}
	got = st.st_size > from ? pread(fd, buf, (size_t)(st.st_size - from),
	    from) : 0;
	if (got < 0)
		goto out;
	start = buf;
	if (from == 0 && ((nl = memchr(buf, '\n', (size_t)got)) == NULL ||
	    (start = nl + 1) == NULL))
		goto out;			/* no first line yet */
	nl = got > 0 ? memrchr(buf, '\n', (size_t)got) : NULL;
	if (nl != NULL && nl + 1 > start &&
	    quota_lines(start, (size_t)(nl + 1 - start), &bytes, &count) ==
	    -1)
		goto out;
	if (u != NULL) {
		u->q_ino = st.st_ino;
		u->q_off = from + (nl != NULL ? nl + 1 - buf : 0);
		u->q_bytes = bytes;
		u->q_count = count;
	}
	q->bytes = bytes < 0 ? 0 : bytes;
	q->count = count < 0 ? 0 : count;
	q->mtime = st.st_mtime;
	q->len = st.st_size;
	r = 0;
out:
	if (r == -1 && u != NULL)
		u->q_off = 0;		/* read it whole next time */
	if (u == NULL)
		(void)close(fd);
	return (r);
}

/*
 * A fresh maildirsize saying bytes in count files (made in tmp/,
 * renamed into place, as Maildir++ wants).  Appends racing with it are
 * lost: the quota is allowed to be approximate.
 */
static void
quota_store(int userfd, const struct spool_mailbox *mb, uint64_t bytes,
    uint64_t count)
{
	char	 name[128], text[96];
	int	 fd, tmp;

	if ((tmp = open_dir(userfd, "tmp", 0)) == -1)
		return;
	(void)bsnprintf(name, sizeof(name), "%lld.P%ldR%08" PRIx32 ".%s.%s",
	    (long long)time(NULL), (long)getpid(), randombytes_random(),
	    HOST_PART, QUOTA_FILE);
	(void)bsnprintf(text, sizeof(text), "%" PRIu64 "S\n%" PRIu64 " %"
	    PRIu64 "\n", mb->max_size, bytes, count);
	fd = openat(tmp, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd != -1 && (write_all(fd, text, strlen(text)) == -1 ||
	    close(fd) == -1 || renameat(tmp, name, userfd, QUOTA_FILE) == -1))
		(void)unlinkat(tmp, name, 0);
	else if (fd == -1)
		log_warn("mailbox: %s", QUOTA_FILE);
	(void)close(tmp);
}

/* A scan of new/ and cur/ (and .Delivered's), stored as maildirsize. */
static uint64_t
quota_recalc(int userfd, const struct spool_mailbox *mb)
{
	uint64_t	 bytes = 0, count = 0;
	int		 del;

	dir_usage(userfd, "new", &bytes, &count);
	dir_usage(userfd, "cur", &bytes, &count);
	if ((del = open_dir(userfd, DELIVERED, 0)) != -1) {
		dir_usage(del, "new", &bytes, &count);
		dir_usage(del, "cur", &bytes, &count);
		(void)close(del);
	}
	quota_store(userfd, mb, bytes, count);
	return (bytes);
}

/*
 * The user's bytes, for a copy of size more, from maildirsize (u's, or
 * opened here from userfd when u is NULL): scanned only when the file
 * is missing or unreadable, or says over quota and has not changed for
 * QUOTA_STALE (the user's client may have removed mail without telling
 * it).  A file grown past QUOTA_FILE_MAX is compacted to its own sum,
 * not rescanned: what Maildir++ wants (a small file) at no directory
 * read.
 */
static uint64_t
quota_usage(int userfd, struct maildir_user *u,
    const struct spool_mailbox *mb, uint64_t size)
{
	struct quota	 q;

	if (quota_read(userfd, u, &q) == -1 ||
	    ((uint64_t)q.bytes + size > mb->max_size &&
	    time(NULL) - q.mtime >= QUOTA_STALE))
		return (quota_recalc(userfd, mb));
	if (q.len > QUOTA_FILE_MAX)
		quota_store(userfd, mb, (uint64_t)q.bytes, (uint64_t)q.count);
	return ((uint64_t)q.bytes);
}

/* One line appended to maildirsize (fd, or -1: opened here; when there
 * is none, the next copy's check recalculates it). */
static void
quota_add(int userfd, int fd, int64_t bytes, int count)
{
	char	 line[64];
	int	 own = fd == -1;

	if (own && (fd = openat(userfd, QUOTA_FILE, O_WRONLY | O_APPEND |
	    O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) == -1)
		return;
	(void)bsnprintf(line, sizeof(line), "%" PRId64 " %d\n", bytes, count);
	(void)write_all(fd, line, strlen(line));
	if (own)
		(void)close(fd);
}

/* The ,S= of a Maildir name, 0 without. */
static uint64_t
name_size(const char *name)
{
	const char	*s;

	if ((s = strstr(name, ",S=")) == NULL)
		return (0);
	return (strtoull(s + 3, NULL, 10));
}

/*
 * msgfd's first size bytes into tmpfd/name (made or emptied first),
 * mode 0600, fsync'd.  On failure it stays, emptied: the copy is still
 * owed, and a full disk gets its room back.
 */
static int
write_copy(int tmpfd, const char *name, int msgfd, uint64_t size)
{
	char		 buf[64 * 1024];
	uint64_t	 off = 0;
	ssize_t		 n;
	int		 fd, save;

	fd = openat(tmpfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd == -1)
		return (-1);
	while (off < size) {
		n = pread(msgfd, buf, size - off < sizeof(buf) ?
		    (size_t)(size - off) : sizeof(buf), (off_t)off);
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			goto fail;
		}
		if (write_all(fd, buf, (size_t)n) == -1)
			goto fail;
		off += (uint64_t)n;
	}
	if (fsync(fd) == -1)
		goto fail;
	return (close(fd));
fail:
	save = errno;
	(void)ftruncate(fd, 0);
	(void)close(fd);
	errno = save;
	return (-1);
}

static void
pending_close(struct pending *p)
{
	if (p->u != NULL) {
		if (p->u->spare) {
			user_close(p->u);
			free(p->u);
		}
		p->u = NULL;
		p->userfd = p->tmpfd = p->newfd = -1;
		return;
	}
	if (p->newfd != -1)
		(void)close(p->newfd);
	if (p->tmpfd != -1)
		(void)close(p->tmpfd);
	if (p->userfd != -1)
		(void)close(p->userfd);
	p->userfd = p->tmpfd = p->newfd = -1;
}

/*
 * Recipient i's copy, when owed: its tmp/ file (receive's, before the
 * commit), or e, its "owed" line.  0: written to tmp/ and fsync'd (p
 * filled); 1: nothing to do, or over quota (noted in ix); -1: failed
 * (logged, noted owed in ix).
 */
static int
prepare_copy(const struct spool_mailbox *mb, const struct envelope *env,
    size_t i, int msgfd, uint64_t size, struct entry *e, struct pending *p,
    struct index *ix)
{
	struct stat	 st;
	char		 safe[512];
	int		 r;

	memset(p, 0, sizeof(*p));
	p->addr = env->rcpts[i].addr;
	p->userfd = p->tmpfd = p->newfd = -1;
	if (address_mailbox_name(p->addr, p->local, sizeof(p->local),
	    p->domain, sizeof(p->domain)) == -1 ||
	    copy_names(env->id, i, size, p->tmpname, p->newname) == -1)
		return (1);
	log_safe(safe, sizeof(safe), p->addr);
	if ((p->userfd = open_user(mb, p->domain, p->local, e != NULL)) == -1 ||
	    (p->tmpfd = open_dir(p->userfd, "tmp", e != NULL)) == -1 ||
	    (p->newfd = open_dir(p->userfd, "new", 1)) == -1) {
		if (e == NULL && errno == ENOENT)
			goto none;		/* never intended */
		if (e == NULL) {
			/* Its tmp/ file, if any, says it is owed. */
			log_warn("%s: to=<%s>, mailbox=%s/%s/%s, status=failed",
			    env->id, safe, mb->dir, p->domain, p->local);
			goto none;
		}
		goto fail;
	}
	r = fstatat(p->tmpfd, p->tmpname, &st, AT_SYMLINK_NOFOLLOW);
	if (r == 0 && st.st_nlink > 1) {
		/* A link into new/ whose unlink a crash stopped: made. */
		(void)unlinkat(p->tmpfd, p->tmpname, 0);
		goto made;
	}
	if (r == -1 && e == NULL)
		goto none;	/* made (perhaps deleted since), or released */
	if (e != NULL && copy_exists(p->userfd, p->newname))
		goto made;			/* made before a crash */
	if (over_quota(mb, env->id, p, size)) {
		(void)unlinkat(p->tmpfd, p->tmpname, 0);
		if (e == NULL)
			e = index_add(ix, K_OVER, p->addr, p->domain,
			    p->local, "");
		e->kind = K_OVER;
		ix->changed = 1;
		goto none;
	}
	if (write_copy(p->tmpfd, p->tmpname, msgfd, size) == -1)
		goto fail;
	if (e != NULL) {
		e->gone = 1;
		ix->changed = 1;
	}
	return (0);
made:
	if (e != NULL) {
		e->gone = 1;
		ix->changed = 1;
	}
none:
	pending_close(p);
	return (1);
fail:
	log_warn("%s: to=<%s>, mailbox=%s/%s/%s, status=failed", env->id,
	    safe, mb->dir, p->domain, p->local);
	if (e == NULL) {
		(void)index_add(ix, K_OWED, p->addr, p->domain, p->local, "");
		ix->changed = 1;
	}
	pending_close(p);
	return (-1);
}

/*
 * tmp/ into new/ (rename that never replaces: a copy there is already
 * made), then one fsync for each user's new/; logged.
 */
static void
publish_copies(const struct spool_mailbox *mb, const struct envelope *env,
    struct pending *p, size_t n)
{
	char	 safe[512];
	size_t	 i, j;
	int	 r;

	for (i = 0; i < n; i++) {
		r = renameat2(p[i].tmpfd, p[i].tmpname, p[i].newfd,
		    p[i].newname, RENAME_NOREPLACE);
		if (r == -1 && (errno == EINVAL || errno == ENOSYS) &&
		    (r = linkat(p[i].tmpfd, p[i].tmpname, p[i].newfd,
		    p[i].newname, 0)) == 0)
			(void)unlinkat(p[i].tmpfd, p[i].tmpname, 0);
		if (r == -1 && errno == EEXIST)
			(void)unlinkat(p[i].tmpfd, p[i].tmpname, 0);
		else if (r == 0)
			p[i].done = 1;
		else {
			log_safe(safe, sizeof(safe), p[i].addr);
			log_warn("%s: to=<%s>, mailbox=%s/%s/%s/new/%s, "
			    "status=failed", env->id, safe, mb->dir,
			    p[i].domain, p[i].local, p[i].newname);
		}
	}
	for (i = 0; i < n; i++) {
		if (!p[i].done)
			continue;
		for (j = 0; j < i; j++)
			if (p[j].done && strcmp(p[j].domain, p[i].domain) == 0 &&
			    strcmp(p[j].local, p[i].local) == 0)
				break;
		log_safe(safe, sizeof(safe), p[i].addr);
		if (j == i && fsync(p[i].newfd) == -1)
			log_warn("%s: to=<%s>, mailbox=%s/%s/%s/new/%s, "
			    "status=failed (fsync)", env->id, safe, mb->dir,
			    p[i].domain, p[i].local, p[i].newname);
		else
			log_info("%s: to=<%s>, mailbox=%s/%s/%s/new/%s, "
			    "status=copied", env->id, safe, mb->dir,
			    p[i].domain, p[i].local, p[i].newname);
		quota_add(p[i].userfd, p[i].u != NULL ?
		    user_quotafd(p[i].u) : -1, (int64_t)env->size, 1);
	}
	for (i = 0; i < n; i++)
		pending_close(&p[i]);
}

/* Whether a copy of size more puts p's user over mailbox-max-size
 * (logged). */
static int
over_quota(const struct spool_mailbox *mb, const char *id,
    const struct pending *p, uint64_t size)
{
	char	 safe[512];

	if (quota_usage(p->userfd, p->u, mb, size) + size <= mb->max_size)
		return (0);
	log_safe(safe, sizeof(safe), p->addr);
	log_warnx("%s: to=<%s>, mailbox=%s/%s/%s, status=over-quota "
	    "(mailbox-max-size %" PRIu64 " reached: no copy)", id, safe,
	    mb->dir, p->domain, p->local, mb->max_size);
	return (1);
}

/* The spool handle's cache, made on first use. */
static struct maildir_cache *
cache_get(struct spool *sp)
{
	struct maildir_cache	**cp = spool_private_mailbox_cache(sp), *c;
	size_t			  i;

	if ((c = *cp) != NULL)
		return (c);
	c = *cp = xcalloc(1, sizeof(**cp));
	for (i = 0; i < USER_CACHE; i++) {
		c->u[i].userfd = c->u[i].tmpfd = -1;
		c->u[i].newfd = c->u[i].quotafd = -1;
	}
	return (c);
}

static void
user_close(struct maildir_user *u)
{
	if (u->quotafd != -1)
		(void)close(u->quotafd);
	if (u->newfd != -1)
		(void)close(u->newfd);
	if (u->tmpfd != -1)
		(void)close(u->tmpfd);
	if (u->userfd != -1)
		(void)close(u->userfd);
	u->userfd = u->tmpfd = u->newfd = u->quotafd = -1;
	u->domain[0] = u->local[0] = '\0';
	u->q_off = 0;
}

/*
 * The Maildir DIR/domain/local, made as needed, from the spool handle's
 * cache when it is still there (its new/ not removed since).  NULL
 * (errno) when it cannot be opened.
 */
static struct maildir_user *
user_get(struct spool *sp, const struct spool_mailbox *mb,
    const char *domain, const char *local)
{
	struct maildir_cache	 *c;
	struct maildir_user	 *u;
	struct stat		  st;
	size_t			  i, j;
	int			  save;

	c = cache_get(sp);
	for (i = 0; i < USER_CACHE; i++) {
		u = &c->u[i];
		if (u->userfd == -1 || strcmp(u->domain, domain) != 0 ||
		    strcmp(u->local, local) != 0)
			continue;
		if (u->gen == c->gen ||
		    (fstat(u->newfd, &st) == 0 && st.st_nlink > 0)) {
			u->gen = c->gen;
			return (u);
		}
		user_close(u);		/* removed since: made again */
		break;
	}
	/* An entry the batch being made does not use, else a spare one. */
	for (j = 0; i == USER_CACHE && j < USER_CACHE; j++)
		if (c->u[(c->next + j) % USER_CACHE].gen != c->gen)
			i = (c->next + j) % USER_CACHE;
	if (i == USER_CACHE) {
		u = xcalloc(1, sizeof(*u));
		u->userfd = u->tmpfd = u->newfd = u->quotafd = -1;
		u->spare = 1;
	} else {
		u = &c->u[i];
		c->next = i + 1;
	}
	user_close(u);
	u->gen = c->gen;
	/* Its tmp/ and new/ there: the Maildir is made (cur/ not looked at). */
	if ((u->userfd = open_user(mb, domain, local, 0)) == -1 ||
	    (u->tmpfd = open_dir(u->userfd, "tmp", 0)) == -1 ||
	    (u->newfd = open_dir(u->userfd, "new", 0)) == -1) {
		user_close(u);
		if ((u->userfd = open_user(mb, domain, local, 1)) == -1 ||
		    (u->tmpfd = open_dir(u->userfd, "tmp", 0)) == -1 ||
		    (u->newfd = open_dir(u->userfd, "new", 0)) == -1) {
			save = errno;
			user_close(u);
			if (u->spare)
				free(u);
			errno = save;
			return (NULL);
		}
	}
	(void)strlcpy(u->domain, domain, sizeof(u->domain));
	(void)strlcpy(u->local, local, sizeof(u->local));
	return (u);
}

/* u's maildirsize, open for reading and appending, opened again when it
 * was replaced (a recalculation renames a new one over it); -1: none. */
static int
user_quotafd(struct maildir_user *u)
{
	struct stat	 st;

	if (u->quotafd != -1 && (fstat(u->quotafd, &st) == -1 ||
	    st.st_nlink == 0)) {
		(void)close(u->quotafd);
		u->quotafd = -1;
	}
	if (u->quotafd == -1)
		u->quotafd = openat(u->userfd, QUOTA_FILE, O_RDWR | O_APPEND |
		    O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	return (u->quotafd);
}

void
maildir_cache_free(struct maildir_cache *c)
{
	size_t	 i;

	if (c == NULL)
		return;
	for (i = 0; i < USER_CACHE; i++)
		user_close(&c->u[i]);
	free(c);
}

/*
 * Recipient i's copy, inside receive's commit: written to its tmp/ and
 * fsync'd.  0: p filled; 1: none (no safe name, or over quota: noted in
 * ix); -1: failed (logged, noted owed in ix).
 */
static int
stage_one(struct spool *sp, const struct spool_mailbox *mb,
    const struct envelope *env, size_t i, int msgfd, struct pending *p,
    struct index *ix)
{
	struct maildir_user	*u;

	memset(p, 0, sizeof(*p));
	p->addr = env->rcpts[i].addr;
	p->userfd = p->tmpfd = p->newfd = -1;
	if (address_mailbox_name(p->addr, p->local, sizeof(p->local),
	    p->domain, sizeof(p->domain)) == -1 ||
	    copy_names(env->id, i, env->size, p->tmpname, p->newname) == -1)
		return (1);
	if ((u = user_get(sp, mb, p->domain, p->local)) == NULL) {
		stage_failed(mb, env, p, ix);
		return (-1);
	}
	p->u = u;
	p->userfd = u->userfd;
	p->tmpfd = u->tmpfd;
	p->newfd = u->newfd;
	if (over_quota(mb, env->id, p, env->size)) {
		(void)index_add(ix, K_OVER, p->addr, p->domain, p->local, "");
		ix->changed = 1;
		pending_close(p);
		return (1);
	}
	if (write_copy(u->tmpfd, p->tmpname, msgfd, env->size) == 0)
		return (0);
	stage_failed(mb, env, p, ix);
	return (-1);
}

/* A copy that could not be made in the commit: logged, owed (ix). */
static void
stage_failed(const struct spool_mailbox *mb, const struct envelope *env,
    struct pending *p, struct index *ix)
{
	char	 safe[512];

	log_safe(safe, sizeof(safe), p->addr);
	log_warn("%s: to=<%s>, mailbox=%s/%s/%s, status=failed", env->id,
	    safe, mb->dir, p->domain, p->local);
	(void)index_add(ix, K_OWED, p->addr, p->domain, p->local, "");
	ix->changed = 1;
	pending_close(p);
}

struct maildir_batch *
maildir_stage(struct spool *sp, const struct envelope *env, int msgfd)
{
	const struct spool_mailbox	*mb;
	struct maildir_batch		*b;
	struct index			 ix;
	size_t				 i;
	int				 ixfd, any = 0;

	if ((mb = spool_private_mailbox(sp)) == NULL)
		return (NULL);
	for (i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].mailbox && !rcpt_finished(&env->rcpts[i]))
			any = 1;
	if (!any)
		return (NULL);
	memset(&ix, 0, sizeof(ix));
	b = xcalloc(1, sizeof(*b));
	b->p = xcalloc(env->nrcpts, sizeof(*b->p));
	cache_get(sp)->gen++;		/* no entry pinned */
	for (i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].mailbox && !rcpt_finished(&env->rcpts[i]) &&
		    stage_one(sp, mb, env, i, msgfd, &b->p[b->n], &ix) == 0)
			b->n++;
	/* The unusual path: what the names cannot say, before the commit. */
	if (ix.changed && ((ixfd = spool_private_mailbox_dirfd(sp)) == -1 ||
	    index_write(ixfd, env->id, &ix) == -1))
		log_warn("%s: mailbox: cannot write the index", env->id);
	index_free(&ix);
	return (b);
}

void
maildir_publish(struct spool *sp, const struct envelope *env,
    struct maildir_batch *b)
{
	const struct spool_mailbox	*mb;

	if (b == NULL)
		return;
	if ((mb = spool_private_mailbox(sp)) != NULL)
		publish_copies(mb, env, b->p, b->n);
	maildir_discard(b, 0);
}

void
maildir_discard(struct maildir_batch *b, int unlink_copies)
{
	size_t	 i;

	if (b == NULL)
		return;
	for (i = 0; i < b->n; i++) {
		if (unlink_copies && b->p[i].tmpfd != -1)
			(void)unlinkat(b->p[i].tmpfd, b->p[i].tmpname, 0);
		pending_close(&b->p[i]);
	}
	free(b->p);
	free(b);
}

void
spool_mailbox_copy(struct spool *sp, const struct envelope *env)
{
	const struct spool_mailbox	*mb;
	struct pending			*p;
	struct entry			*e;
	struct index			 ix;
	struct stat			 st;
	uint64_t			 size;
	size_t				 i, n = 0;
	int				 ixfd, msgfd, owed = 0, ixok;

	if ((mb = spool_private_mailbox(sp)) == NULL)
		return;
	for (i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].mailbox && !rcpt_finished(&env->rcpts[i]))
			owed = 1;
	if (!owed)
		return;
	if (spool_open_message(sp, env->id, &msgfd, &size) == -1) {
		if (errno != ENOENT)
			log_warn("%s: mailbox: cannot copy", env->id);
		return;
	}
	/* The lock, then: is it still in the spool (not removed meanwhile)? */
	if (flock(msgfd, LOCK_EX) == -1 || fstat(msgfd, &st) == -1 ||
	    st.st_nlink == 0) {
		(void)close(msgfd);
		return;
	}
	ixok = index_load(sp, env->id, &ixfd, &ix) == 0;
	p = xcalloc(env->nrcpts, sizeof(*p));
	for (i = 0; i < env->nrcpts; i++) {
		if (!env->rcpts[i].mailbox || rcpt_finished(&env->rcpts[i]))
			continue;
		e = index_find(&ix, env->rcpts[i].addr);
		if (e != NULL && e->kind != K_OWED)
			continue;		/* over quota, or made */
		if (prepare_copy(mb, env, i, msgfd, size, e, &p[n], &ix) == 0)
			n++;
	}
	publish_copies(mb, env, p, n);
	if (ix.changed && ixok && index_write(ixfd, env->id, &ix) == -1)
		log_warn("%s: mailbox: cannot write the index", env->id);
	free(p);
	index_free(&ix);
	(void)close(msgfd);
}

/*
 * The copy named base in the user's new/ or cur/ (where an IMAP client
 * moved it, renamed BASE:2,FLAGS): its directory fd and name in name,
 * *sub "new" or "cur".  -1 with ENOENT when it is in neither.  new/ is
 * looked at first: a copy only ever moves from new/ to cur/.  In cur/
 * the usual flags are tried before the directory is read.
 */
static int
find_copy(int userfd, const char *base, char *name, size_t size,
    const char **sub)
{
	static const char *const flags[] = { ":2,S", ":2,", ":2,RS", ":2,FS",
	    ":2,FRS", ":2,ST", ":2,F", "" };
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	size_t		 i, len = strlen(base);
	int		 fd;

	if ((fd = open_dir(userfd, "new", 0)) != -1) {
		if (fstatat(fd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			(void)strlcpy(name, base, size);
			*sub = "new";
			return (fd);
		}
		(void)close(fd);
	}
	if ((fd = open_dir(userfd, "cur", 0)) == -1)
		return (-1);
	*sub = "cur";
	for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (bsnprintf(name, size, "%s%s", base, flags[i]) == 0 &&
		    fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return (fd);
	if ((d = fdopendir(dup(fd))) == NULL) {
		(void)close(fd);
		return (-1);
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, base, len) == 0 &&
		    (de->d_name[len] == '\0' || de->d_name[len] == ':')) {
			(void)strlcpy(name, de->d_name, size);
			(void)closedir(d);
			return (fd);
		}
	}
	(void)closedir(d);
	(void)close(fd);
	errno = ENOENT;
	return (-1);
}

static int
copy_exists(int userfd, const char *base)
{
	char		 name[NAME_SIZE];
	const char	*sub;
	int		 fd;

	if ((fd = find_copy(userfd, base, name, sizeof(name), &sub)) == -1)
		return (0);
	(void)close(fd);
	return (1);
}

/*
 * A copy leaves, found by base in the user's new/ or cur/: unlinked, or
 * with mailbox-keep moved to .Delivered.  Logged.
 */
static void
leave(const struct spool_mailbox *mb, const char *id, const char *addr,
    const char *domain, const char *local, int user, const char *base)
{
	char		 name[NAME_SIZE], safe[512];
	const char	*sub;
	int		 from, del = -1, to = -1, tmp = -1;

	if ((from = find_copy(user, base, name, sizeof(name), &sub)) == -1)
		return;
	log_safe(safe, sizeof(safe), addr);
	if (mb->keep > 0) {
		if ((del = open_dir(user, DELIVERED, 1)) == -1 ||
		    (to = open_dir(del, sub, 1)) == -1 ||
		    (tmp = open_dir(del, "tmp", 1)) == -1 ||
		    renameat(from, name, to, name) == -1 || fsync(to) == -1 ||
		    fsync(from) == -1)
			log_warn("%s: to=<%s>, mailbox=%s/%s/%s/%s/%s, "
			    "status=failed (moving to %s)", id, safe, mb->dir,
			    domain, local, sub, name, DELIVERED);
		else
			log_info("%s: to=<%s>, mailbox=%s/%s/%s/%s/%s/%s, "
			    "status=delivered", id, safe, mb->dir, domain,
			    local, DELIVERED, sub, name);
	} else if (unlinkat(from, name, 0) == -1 || fsync(from) == -1)
		log_warn("%s: to=<%s>, mailbox=%s/%s/%s/%s/%s, status=failed "
		    "(removing)", id, safe, mb->dir, domain, local, sub, name);
	else {
		log_info("%s: to=<%s>, mailbox=%s/%s/%s/%s/%s, status=removed",
		    id, safe, mb->dir, domain, local, sub, name);
		quota_add(user, -1, -(int64_t)name_size(name), -1);
	}
	if (tmp != -1)
		(void)close(tmp);
	if (to != -1)
		(void)close(to);
	if (del != -1)
		(void)close(del);
	(void)close(from);
}

/* A copy the previous version made and listed in mailbox/ID. */
static void
release_old(const struct spool_mailbox *mb, const char *id,
    struct entry *e)
{
	int	 user;

	e->gone = 1;
	if (e->kind != K_COPY)
		return;
	if ((user = open_user(mb, e->domain, e->local, 0)) == -1)
		return;
	leave(mb, id, e->addr, e->domain, e->local, user, e->base);
	(void)close(user);
}

/* Recipient i's copy, by its name: the tmp/ file (nothing is owed any
 * more) first, then the copy. */
static void
release_copy(const struct spool_mailbox *mb, const struct envelope *env,
    size_t i)
{
	char	 domain[DOMAIN_NAME_SIZE], local[ADDRESS_LOCAL_MAX + 1];
	char	 tmpname[BASE_SIZE], newname[BASE_SIZE];
	int	 user, tmp;

	if (address_mailbox_name(env->rcpts[i].addr, local, sizeof(local),
	    domain, sizeof(domain)) == -1 ||
	    copy_names(env->id, i, env->size, tmpname, newname) == -1 ||
	    (user = open_user(mb, domain, local, 0)) == -1)
		return;
	if ((tmp = open_dir(user, "tmp", 0)) != -1) {
		(void)unlinkat(tmp, tmpname, 0);
		(void)close(tmp);
	}
	leave(mb, env->id, env->rcpts[i].addr, domain, local, user, newname);
	(void)close(user);
}

void
maildir_release(struct spool *sp, int msgdirfd, const char *msgname,
    const char *id, const struct envelope *env, int all,
    const unsigned char *skip)
{
	const struct spool_mailbox	*mb;
	const struct recipient		*r;
	struct entry			*e;
	struct index			 ix;
	size_t				 i;
	int				 ixfd, msgfd = -1, any = 0, ixok;

	if ((mb = spool_private_mailbox(sp)) == NULL)
		return;
	/* No recipient ever got a copy: nothing to look up. */
	for (i = 0; env != NULL && i < env->nrcpts; i++)
		if (env->rcpts[i].mailbox)
			any = 1;
	if (env != NULL && !any)
		return;
	/*
	 * The lock first: a receive still copying (it holds it) has made
	 * the copy, or will find its tmp/ file gone and make none.
	 */
	if (msgname != NULL &&
	    (msgfd = openat(msgdirfd, msgname, SPOOL_READ_FLAGS)) != -1)
		(void)flock(msgfd, LOCK_EX);
	ixok = index_load(sp, id, &ixfd, &ix) == 0;
	for (i = 0; env != NULL && i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		if (!r->mailbox || (!all && (!rcpt_finished(r) ||
		    (skip != NULL && skip[i]))))
			continue;
		if ((e = index_find(&ix, r->addr)) == NULL || e->kind == K_OWED)
			release_copy(mb, env, i);
		if (e != NULL) {
			release_old(mb, id, e);
			ix.changed = 1;
		}
	}
	for (i = 0; all && i < ix.n; i++) {
		if (ix.e[i].gone)
			continue;
		release_old(mb, id, &ix.e[i]);
		ix.changed = 1;
	}
	if (ix.changed && ixok && index_write(ixfd, id, &ix) == -1)
		log_warn("%s: mailbox: cannot write the index", id);
	index_free(&ix);
	if (msgfd != -1)
		(void)close(msgfd);
}

/* Recipient i's copy for spool_mailbox_list. */
static int
list_one(const struct spool_mailbox *mb, const struct envelope *env,
    size_t i, const struct index *ix, int locate,
    int (*fn)(void *, const char *, const char *, int), void *arg)
{
	const struct entry	*e;
	char			 domain[DOMAIN_NAME_SIZE];
	char			 local[ADDRESS_LOCAL_MAX + 1];
	char			 base[BASE_SIZE], tmpname[BASE_SIZE];
	char			 name[NAME_SIZE], path[PATH_SIZE];
	const char		*sub = "new";
	struct stat		 st;
	int			 user, fd, found = -1;

	tmpname[0] = '\0';
	e = index_find(ix, env->rcpts[i].addr);
	if (e != NULL && e->kind == K_OVER)
		return (fn(arg, env->rcpts[i].addr, NULL, 0));
	if (e != NULL && e->kind == K_COPY) {
		(void)strlcpy(domain, e->domain, sizeof(domain));
		(void)strlcpy(local, e->local, sizeof(local));
		(void)strlcpy(base, e->base, sizeof(base));
	} else if (address_mailbox_name(env->rcpts[i].addr, local,
	    sizeof(local), domain, sizeof(domain)) == -1 ||
	    copy_names(env->id, i, env->size, tmpname, base) == -1)
		return (0);
	(void)strlcpy(name, base, sizeof(name));
	if (locate) {
		found = (e != NULL && e->kind == K_OWED) ? 2 : 0;
		if ((user = open_user(mb, domain, local, 0)) != -1) {
			if ((fd = find_copy(user, base, name, sizeof(name),
			    &sub)) != -1) {
				found = 1;
				(void)close(fd);
			} else if (tmpname[0] != '\0' &&
			    (fd = open_dir(user, "tmp", 0)) != -1) {
				if (fstatat(fd, tmpname, &st,
				    AT_SYMLINK_NOFOLLOW) == 0)
					found = 2;
				(void)close(fd);
			}
			(void)close(user);
		}
		if (found != 1) {
			sub = "new";
			(void)strlcpy(name, base, sizeof(name));
		}
	}
	(void)bsnprintf(path, sizeof(path), "%s/%s/%s/%s/%s", mb->dir, domain,
	    local, sub, name);
	return (fn(arg, env->rcpts[i].addr, path, found));
}

int
spool_mailbox_list(struct spool *sp, const struct envelope *env, int locate,
    int (*fn)(void *, const char *, const char *, int), void *arg)
{
	const struct spool_mailbox	*mb;
	struct index			 ix;
	size_t				 i;
	int				 ixfd, any = 0, r = 0;

	if ((mb = spool_private_mailbox(sp)) == NULL)
		return (0);
	for (i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].mailbox && !rcpt_finished(&env->rcpts[i]))
			any = 1;
	if (!any)
		return (0);
	if ((ixfd = spool_private_mailbox_dirfd(sp)) == -1)
		return (-1);
	if (index_read(ixfd, env->id, &ix) == -1) {
		if (errno != ENOENT)
			return (-1);
		memset(&ix, 0, sizeof(ix));
	}
	for (i = 0; i < env->nrcpts && r == 0; i++)
		if (env->rcpts[i].mailbox && !rcpt_finished(&env->rcpts[i]))
			r = list_one(mb, env, i, &ix, locate, fn, arg);
	index_free(&ix);
	return (r);
}

/* Files in USER/.Delivered/{new,cur} whose ctime (the move) is older
 * than keep leave. */
static void
expire_user(int userfd, const char *where, time_t now, time_t keep)
{
	static const char *const sub[] = { "new", "cur" };
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	size_t		 i;
	int		 del, fd;

	if ((del = open_dir(userfd, DELIVERED, 0)) == -1)
		return;
	for (i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		if ((fd = open_dir(del, sub[i], 0)) == -1)
			continue;
		if ((d = fdopendir(fd)) == NULL) {
			(void)close(fd);
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.' ||
			    fstatat(dirfd(d), de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == -1 ||
			    !S_ISREG(st.st_mode) || st.st_ctime + keep > now)
				continue;
			if (unlinkat(dirfd(d), de->d_name, 0) == 0) {
				log_info("mailbox=%s/%s/%s/%s, status=removed "
				    "(mailbox-keep)", where, DELIVERED, sub[i],
				    de->d_name);
				quota_add(userfd, -1, -(int64_t)(name_size(
				    de->d_name) ? name_size(de->d_name) :
				    (uint64_t)st.st_size), -1);
			}
		}
		(void)fsync(dirfd(d));
		(void)closedir(d);
	}
	(void)close(del);
}

static void
expire_domain(int domfd, const char *where, time_t now, time_t keep)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[PATH_SIZE];
	int		 fd, user;

	if ((fd = dup(domfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			(void)close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' ||
		    (user = open_dir(domfd, de->d_name, 0)) == -1)
			continue;
		(void)bsnprintf(path, sizeof(path), "%s/%s", where,
		    de->d_name);
		expire_user(user, path, now, keep);
		(void)close(user);
	}
	(void)closedir(d);
}

/*
 * mailbox/id without its message: the copies an earlier version listed
 * (a crash between its removals) leave.  "owed" and "over" lines go
 * only once an hour old: receive writes "owed" before its commit, so a
 * message being received right now is not in the spool yet.
 */
static void
recover_index(const struct spool_mailbox *mb, int ixfd, const char *id,
    time_t now)
{
	struct index	 ix;
	struct stat	 st;
	size_t		 i;
	int		 old;

	if (fstatat(ixfd, id, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    index_read(ixfd, id, &ix) == -1)
		return;
	old = st.st_mtime + RECOVER_AFTER <= now;
	for (i = 0; i < ix.n; i++) {
		if (ix.e[i].kind != K_COPY && !old)
			continue;
		release_old(mb, id, &ix.e[i]);
		ix.changed = 1;
	}
	if (ix.changed && index_write(ixfd, id, &ix) == -1)
		log_warn("%s: mailbox: cannot write the index", id);
	index_free(&ix);
}

void
maildir_recover(struct spool *sp, time_t now)
{
	const struct spool_mailbox	*mb;
	DIR				*d;
	struct dirent			*de;
	char				 path[PATH_SIZE];
	int				 ixfd, fd, top, dom;

	if ((mb = spool_private_mailbox(sp)) == NULL ||
	    (ixfd = spool_private_mailbox_dirfd(sp)) == -1)
		return;
	/* An index whose message is gone: its copies leave. */
	if ((fd = dup(ixfd)) != -1 && (d = fdopendir(fd)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (queue_id_valid(de->d_name) &&
			    spool_exists(sp, de->d_name) == 0)
				recover_index(mb, ixfd, de->d_name, now);
		(void)closedir(d);
	} else if (fd != -1)
		(void)close(fd);
	if (mb->keep == 0 ||
	    (top = open(mb->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return;
	if ((fd = dup(top)) != -1 && (d = fdopendir(fd)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.' ||
			    (dom = open_dir(top, de->d_name, 0)) == -1)
				continue;
			(void)bsnprintf(path, sizeof(path), "%s/%s", mb->dir,
			    de->d_name);
			expire_domain(dom, path, now, mb->keep);
			(void)close(dom);
		}
		(void)closedir(d);
	} else if (fd != -1)
		(void)close(fd);
	(void)close(top);
}
