/*
 * maildir.c - the outage mailbox (issue 15): while a message waits in
 * the spool, each of its recipients marked `mailbox` (envelope.h) gets
 * a copy in the Maildir DIR/DOMAIN/LOCALPART/, and the copy leaves once
 * the recipient is finished (delivered, bounced, expired) or the message
 * is deleted.
 *
 * Guarantees (spool/INTERNALS, section 12): a copy's name is derived
 * from the envelope (queue ID, recipient index, size), so it is found
 * again without any record, never by scanning mailboxes.  Before the
 * spool commit, receive leaves an empty tmp/ file under that name: the
 * copy is owed while it exists.  After the commit the copy is written
 * into it, fsync'd, renamed into new/ (never replacing a file) and new/
 * fsync'd: whatever is visible in new/ or cur/ is whole and belongs to
 * a message in the spool.  The spool's mailbox/ID holds only what the
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
#define QUOTA_FILE_MAX	5120		/* Maildir++: recalculated beyond */
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

struct index {
	struct entry	*e;
	size_t		 n;
	int		 changed;
};

/* A copy written to tmp/, not yet renamed into new/. */
struct pending {
	const char	*addr;
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
static int	 quota_read(int, int64_t *, time_t *);
static uint64_t	 quota_recalc(int, const struct spool_mailbox *);
static uint64_t	 quota_usage(int, const struct spool_mailbox *, uint64_t);
static void	 quota_add(int, int64_t, int);
static uint64_t	 name_size(const char *);
static int	 intend_one(const struct spool_mailbox *, const char *,
		    const char *, size_t, char *, char *);
static int	 write_copy(int, const char *, int, uint64_t);
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
 * (never below 0).  -1 for anything else, or a sum out of range.
 */
int
maildir_quota_parse(const char *buf, size_t len, int64_t *bytes)
{
	const char	*p, *end = buf + len, *nl;
	char		 line[64], *e;
	long long	 v;
	size_t		 n;

	*bytes = 0;
	if ((nl = memchr(buf, '\n', len)) == NULL)
		return (-1);
	for (p = nl + 1; p < end; p += n + (nl != NULL)) {
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
	}
	if (*bytes < 0)
		*bytes = 0;
	return (0);
}

/* maildirsize's total: -1 when it is missing, unreadable or bigger than
 * QUOTA_FILE_MAX (recalculate). */
static int
quota_read(int userfd, int64_t *bytes, time_t *mtime)
{
	char		 buf[QUOTA_FILE_MAX + 1];
	struct stat	 st;
	ssize_t		 got;
	int		 fd;

	*bytes = 0;
	if ((fd = openat(userfd, QUOTA_FILE, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return (-1);
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > QUOTA_FILE_MAX ||
	    (got = pread(fd, buf, sizeof(buf) - 1, 0)) != st.st_size) {
		(void)close(fd);
		return (-1);
	}
	(void)close(fd);
	*mtime = st.st_mtime;
	return (maildir_quota_parse(buf, (size_t)got, bytes));
}

/*
 * A scan of new/ and cur/ (and .Delivered's), written as a fresh
 * maildirsize (made in tmp/, renamed into place: Maildir++).  Appends
 * racing with it are lost: the quota is allowed to be approximate.
 */
static uint64_t
quota_recalc(int userfd, const struct spool_mailbox *mb)
{
	char		 name[128], text[96];
	uint64_t	 bytes = 0, count = 0;
	int		 fd, del, tmp;

	dir_usage(userfd, "new", &bytes, &count);
	dir_usage(userfd, "cur", &bytes, &count);
	if ((del = open_dir(userfd, DELIVERED, 0)) != -1) {
		dir_usage(del, "new", &bytes, &count);
		dir_usage(del, "cur", &bytes, &count);
		(void)close(del);
	}
	if ((tmp = open_dir(userfd, "tmp", 0)) == -1)
		return (bytes);
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
	return (bytes);
}

/*
 * The user's bytes, for a copy of size more: from maildirsize, scanned
 * only when it is missing or too big, or says over quota and has not
 * changed for QUOTA_STALE (the user's client may have removed mail
 * without telling it).
 */
static uint64_t
quota_usage(int userfd, const struct spool_mailbox *mb, uint64_t size)
{
	int64_t		 bytes;
	time_t		 mtime;

	if (quota_read(userfd, &bytes, &mtime) == 0 &&
	    ((uint64_t)bytes + size <= mb->max_size ||
	    time(NULL) - mtime < QUOTA_STALE))
		return ((uint64_t)bytes);
	return (quota_recalc(userfd, mb));
}

/* One line appended to maildirsize (when there is one: else the next
 * copy's check recalculates it). */
static void
quota_add(int userfd, int64_t bytes, int count)
{
	char	 line[64];
	int	 fd;

	if ((fd = openat(userfd, QUOTA_FILE, O_WRONLY | O_APPEND | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return;
	(void)bsnprintf(line, sizeof(line), "%" PRId64 " %d\n", bytes, count);
	(void)write_all(fd, line, strlen(line));
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
 * Before the spool commit: recipient i's empty tmp/ file, the sign that
 * its copy is owed.  0, or -1 (logged; domain and local filled) when it
 * cannot be made.
 */
static int
intend_one(const struct spool_mailbox *mb, const char *id,
    const char *addr, size_t i, char *domain, char *local)
{
	char	 tmpname[BASE_SIZE], safe[512];
	int	 user, tmp = -1, fd = -1, save;

	if (address_mailbox_name(addr, local, ADDRESS_LOCAL_MAX + 1, domain,
	    DOMAIN_NAME_SIZE) == -1)
		return (0);
	if (copy_names(id, i, 0, tmpname, NULL) == -1)
		goto fail;
	/* Its tmp/ there: the Maildir is made (no need to look further). */
	if ((user = open_user(mb, domain, local, 0)) != -1 &&
	    (tmp = open_dir(user, "tmp", 0)) == -1) {
		(void)close(user);
		user = -1;
	}
	if (user == -1 && (user = open_user(mb, domain, local, 1)) != -1 &&
	    (tmp = open_dir(user, "tmp", 0)) == -1) {
		save = errno;
		(void)close(user);
		errno = save;
		user = -1;
	}
	if (user == -1)
		goto fail;
	fd = openat(tmp, tmpname, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	(void)close(user);
	if (tmp != -1)
		(void)close(tmp);
	if (fd == -1)
		goto fail;
	(void)close(fd);
	return (0);
fail:
	log_safe(safe, sizeof(safe), addr);
	log_warn("%s: to=<%s>, mailbox=%s/%s/%s, status=failed", id, safe,
	    mb->dir, domain, local);
	return (-1);
}

void
spool_mailbox_intend(struct spool *sp, const char *id,
    const struct envelope *env)
{
	const struct spool_mailbox	*mb;
	char				 domain[DOMAIN_NAME_SIZE];
	char				 local[ADDRESS_LOCAL_MAX + 1];
	struct index			 ix;
	size_t				 i;
	int				 ixfd = -1, loaded = 0;

	if ((mb = spool_private_mailbox(sp)) == NULL)
		return;
	memset(&ix, 0, sizeof(ix));
	for (i = 0; i < env->nrcpts; i++) {
		if (!env->rcpts[i].mailbox ||
		    intend_one(mb, id, env->rcpts[i].addr, i, domain,
		    local) == 0)
			continue;
		/* The unusual path: owed, said in mailbox/ID. */
		if (!loaded && index_load(sp, id, &ixfd, &ix) == -1)
			break;
		loaded = 1;
		if (index_find(&ix, env->rcpts[i].addr) == NULL) {
			(void)index_add(&ix, K_OWED, env->rcpts[i].addr,
			    domain, local, "");
			ix.changed = 1;
		}
	}
	if (ix.changed && index_write(ixfd, id, &ix) == -1)
		log_warn("%s: mailbox: cannot write the index", id);
	index_free(&ix);
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
	if (close(fd) == -1)
		return (-1);
	return (0);
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
	if (quota_usage(p->userfd, mb, size) + size > mb->max_size) {
		log_warnx("%s: to=<%s>, mailbox=%s/%s/%s, status=over-quota "
		    "(mailbox-max-size %" PRIu64 " reached: no copy)", env->id,
		    safe, mb->dir, p->domain, p->local, mb->max_size);
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
		quota_add(p[i].userfd, (int64_t)env->size, 1);
	}
	for (i = 0; i < n; i++)
		pending_close(&p[i]);
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
		quota_add(user, -(int64_t)name_size(name), -1);
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
				quota_add(userfd, -(int64_t)(name_size(
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
