/*
 * maildir.c - the outage mailbox (issue 15): while a message waits in
 * the spool, each of its recipients marked `mailbox` (envelope.h) gets
 * a copy in the Maildir DIR/DOMAIN/LOCALPART/, and the copy leaves once
 * the recipient is finished (delivered, bounced, expired) or the message
 * is deleted.
 *
 * Guarantees (spool/INTERNALS, section 12): a copy is written in tmp/,
 * fsync'd, recorded in the message's index mailbox/ID (written temp,
 * fsync, rename), and only then linked into new/ (and new/ fsync'd):
 * whatever is visible in new/ or cur/ is whole and listed in an index,
 * so it is found again by its base name, never by scanning mailboxes.
 * The index goes only after every copy it lists has left.  Copy and
 * removal of one message hold an flock on its message file, so that
 * receive's copy and flush's removal never interleave.  Nothing here
 * fails a caller: failures are logged and the copy is owed again.
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
#define PATH_SIZE	(1024 + DOMAIN_NAME_SIZE + ADDRESS_LOCAL_MAX + \
			    BASE_SIZE + 32)
#define DELIVERED	".Delivered"

/* One line of an index: "copy ADDR DOMAIN/LOCAL/BASE" or "over ADDR". */
struct entry {
	char	*addr;
	char	 domain[DOMAIN_NAME_SIZE];
	char	 local[ADDRESS_LOCAL_MAX + 1];
	char	 base[BASE_SIZE];	/* "" for an "over" line */
	int	 gone;			/* removed now: not written back */
};

struct index {
	struct entry	*e;
	size_t		 n;
};

/* A copy written to tmp/, not yet linked into new/. */
struct pending {
	const char	*addr;
	int		 userfd;	/* DIR/DOMAIN/LOCAL */
	char		 base[BASE_SIZE];
	char		 domain[DOMAIN_NAME_SIZE];
	char		 local[ADDRESS_LOCAL_MAX + 1];
};

static int	 index_read(int, const char *, struct index *);
static int	 index_write(int, const char *, const struct index *);
static void	 index_free(struct index *);
static struct entry *index_find(const struct index *, const char *);
static void	 index_add(struct index *, const char *, const char *,
		    const char *, const char *);
static int	 open_dir(int, const char *, int);
static int	 open_user(const struct spool_mailbox *, const char *,
		    const char *, int);
static uint64_t	 user_usage(int);
static uint64_t	 dir_usage(int, const char *);
static int	 write_copy(int, int, uint64_t, const char *, char *,
		    size_t);
static int	 copy_one(struct spool *, const struct spool_mailbox *,
		    const char *, const char *, int, uint64_t,
		    struct pending *, struct index *);
static void	 link_copies(const struct spool_mailbox *, const char *,
		    struct pending *, size_t);
static int	 find_copy(int, const char *, char *, size_t, const char **);
static void	 release_entry(const struct spool_mailbox *, const char *,
		    struct entry *);
static void	 expire_user(int, const char *, time_t, time_t);
static void	 expire_domain(int, const char *, time_t, time_t);

/* mailbox/ID as entries; ENOENT when there is none. */
static int
index_read(int dirfd, const char *id, struct index *ix)
{
	struct stat	 st;
	char		*buf, *line, *s, *addr, *path, *sl1, *sl2;
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
	s = buf;
	if ((line = strsep(&s, "\n")) == NULL || strcmp(line, "M1") != 0)
		goto bad;
	while ((line = strsep(&s, "\n")) != NULL && *line != '\0') {
		if (strncmp(line, "over ", 5) == 0) {
			index_add(ix, line + 5, "", "", "");
			continue;
		}
		if (strncmp(line, "copy ", 5) != 0)
			goto bad;
		addr = line + 5;
		if ((path = strchr(addr, ' ')) == NULL)
			goto bad;
		*path++ = '\0';
		if ((sl1 = strchr(path, '/')) == NULL ||
		    (sl2 = strchr(sl1 + 1, '/')) == NULL)
			goto bad;
		*sl1++ = *sl2++ = '\0';
		if (strlen(path) >= DOMAIN_NAME_SIZE ||
		    strlen(sl1) > ADDRESS_LOCAL_MAX ||
		    strlen(sl2) >= BASE_SIZE || *sl2 == '\0' ||
		    strchr(sl2, '/') != NULL || *path == '.' || *sl1 == '.' ||
		    *sl2 == '.')
			goto bad;
		index_add(ix, addr, path, sl1, sl2);
	}
	free(buf);
	return (0);
bad:
	free(buf);
	index_free(ix);
	errno = EBADMSG;
	return (-1);
}

/* Replace mailbox/ID (temp, fsync, rename, directory fsync); none left:
 * unlink it. */
static int
index_write(int dirfd, const char *id, const struct index *ix)
{
	char	 tmp[QUEUE_ID_SIZE + 16];
	FILE	*f;
	size_t	 i, live = 0;
	int	 fd, save;

	for (i = 0; i < ix->n; i++)
		if (!ix->e[i].gone)
			live++;
	if (live == 0) {
		if (unlinkat(dirfd, id, 0) == -1 && errno != ENOENT)
			return (-1);
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
		if (ix->e[i].gone)
			continue;
		if (ix->e[i].base[0] == '\0')
			fprintf(f, "over %s\n", ix->e[i].addr);
		else
			fprintf(f, "copy %s %s/%s/%s\n", ix->e[i].addr,
			    ix->e[i].domain, ix->e[i].local, ix->e[i].base);
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

static void
index_add(struct index *ix, const char *addr, const char *domain,
    const char *local, const char *base)
{
	struct entry	*e;

	ix->e = xreallocarray(ix->e, ix->n + 1, sizeof(*ix->e));
	e = &ix->e[ix->n++];
	memset(e, 0, sizeof(*e));
	e->addr = xstrdup(addr);
	(void)strlcpy(e->domain, domain, sizeof(e->domain));
	(void)strlcpy(e->local, local, sizeof(e->local));
	(void)strlcpy(e->base, base, sizeof(e->base));
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

/* Bytes in new/ and cur/ (and .Delivered's), from the ,S= of names. */
static uint64_t
user_usage(int userfd)
{
	uint64_t	 sum;
	int		 fd;

	sum = dir_usage(userfd, "new") + dir_usage(userfd, "cur");
	if ((fd = open_dir(userfd, DELIVERED, 0)) != -1) {
		sum += dir_usage(fd, "new") + dir_usage(fd, "cur");
		(void)close(fd);
	}
	return (sum);
}

static uint64_t
dir_usage(int parent, const char *name)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	const char	*s;
	uint64_t	 sum = 0;
	int		 fd;

	if ((fd = open_dir(parent, name, 0)) == -1)
		return (0);
	if ((d = fdopendir(fd)) == NULL) {
		(void)close(fd);
		return (0);
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((s = strstr(de->d_name, ",S=")) != NULL)
			sum += strtoull(s + 3, NULL, 10);
		else if (fstatat(dirfd(d), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == 0)
			sum += (uint64_t)st.st_size;
	}
	(void)closedir(d);
	return (sum);
}

/*
 * Write the message (msgfd's first size bytes) to USER/tmp/BASE, mode
 * 0600, fsync'd.  BASE is unique: TIME.MusecPpidRrandom.HOST,S=size.
 */
static int
write_copy(int userfd, int msgfd, uint64_t size, const char *host,
    char *base, size_t basesize)
{
	char		 buf[64 * 1024];
	struct timespec	 ts;
	uint64_t	 off = 0;
	ssize_t		 n;
	int		 tmp, fd, save;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	if (bsnprintf(base, basesize, "%lld.M%ldP%ldR%08" PRIx32 ".%s,S=%"
	    PRIu64, (long long)ts.tv_sec, ts.tv_nsec / 1000, (long)getpid(),
	    randombytes_random(), host, size) == -1) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	if ((tmp = open_dir(userfd, "tmp", 0)) == -1)
		return (-1);
	fd = openat(tmp, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd == -1)
		goto fail;
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
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	(void)close(tmp);
	return (0);
fail:
	save = errno;
	if (fd != -1) {
		(void)close(fd);
		(void)unlinkat(tmp, base, 0);
	}
	(void)close(tmp);
	errno = save;
	return (-1);
}

/* 0: written to tmp/ (p filled), 1: over quota (noted), -1: failed. */
static int
copy_one(struct spool *sp, const struct spool_mailbox *mb, const char *id,
    const char *addr, int msgfd, uint64_t size, struct pending *p,
    struct index *ix)
{
	char	 safe[512];

	memset(p, 0, sizeof(*p));
	p->addr = addr;
	p->userfd = -1;
	log_safe(safe, sizeof(safe), addr);
	if (address_mailbox_name(addr, p->local, sizeof(p->local), p->domain,
	    sizeof(p->domain)) == -1)
		return (1);
	if ((p->userfd = open_user(mb, p->domain, p->local, 1)) == -1) {
		log_warn("%s: to=<%s>, mailbox=%s/%s/%s, status=failed",
		    id, safe, mb->dir, p->domain, p->local);
		return (-1);
	}
	if (user_usage(p->userfd) + size > mb->max_size) {
		log_warnx("%s: to=<%s>, mailbox=%s/%s/%s, status=over-quota "
		    "(mailbox-max-size %" PRIu64 " reached: no copy)", id, safe,
		    mb->dir, p->domain, p->local, mb->max_size);
		index_add(ix, addr, "", "", "");
		(void)close(p->userfd);
		p->userfd = -1;
		return (1);
	}
	if (write_copy(p->userfd, msgfd, size, spool_private_host(sp),
	    p->base, sizeof(p->base)) == -1) {
		log_warn("%s: to=<%s>, mailbox=%s/%s/%s, status=failed",
		    id, safe, mb->dir, p->domain, p->local);
		(void)close(p->userfd);
		p->userfd = -1;
		return (-1);
	}
	index_add(ix, addr, p->domain, p->local, p->base);
	return (0);
}

/* tmp/BASE into new/BASE (link, then unlink), new/ fsync'd; logged. */
static void
link_copies(const struct spool_mailbox *mb, const char *id,
    struct pending *p, size_t n)
{
	char	 safe[512];
	size_t	 i;
	int	 tmp, new;

	for (i = 0; i < n; i++) {
		log_safe(safe, sizeof(safe), p[i].addr);
		tmp = open_dir(p[i].userfd, "tmp", 0);
		new = open_dir(p[i].userfd, "new", 0);
		if (tmp == -1 || new == -1 ||
		    (linkat(tmp, p[i].base, new, p[i].base, 0) == -1 &&
		    errno != EEXIST) || fsync(new) == -1)
			log_warn("%s: to=<%s>, mailbox=%s/%s/%s/new/%s, "
			    "status=failed", id, safe, mb->dir, p[i].domain,
			    p[i].local, p[i].base);
		else
			log_info("%s: to=<%s>, mailbox=%s/%s/%s/new/%s, "
			    "status=copied", id, safe, mb->dir, p[i].domain,
			    p[i].local, p[i].base);
		if (tmp != -1) {
			(void)unlinkat(tmp, p[i].base, 0);
			(void)close(tmp);
		}
		if (new != -1)
			(void)close(new);
		(void)close(p[i].userfd);
	}
}

void
spool_mailbox_copy(struct spool *sp, const struct envelope *env)
{
	const struct spool_mailbox	*mb;
	struct pending			*p;
	struct index			 ix;
	uint64_t			 size;
	size_t				 i, n = 0;
	int				 ixfd, msgfd, owed = 0, changed = 0;

	if ((mb = spool_private_mailbox(sp)) == NULL)
		return;
	for (i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].mailbox && !rcpt_finished(&env->rcpts[i]))
			owed = 1;
	if (!owed)
		return;
	if ((ixfd = spool_private_mailbox_dirfd(sp)) == -1 ||
	    spool_open_message(sp, env->id, &msgfd, &size) == -1) {
		log_warn("%s: mailbox: cannot copy", env->id);
		return;
	}
	if (flock(msgfd, LOCK_EX) == -1 ||
	    (index_read(ixfd, env->id, &ix) == -1 && errno != ENOENT)) {
		log_warn("%s: mailbox: index", env->id);
		(void)close(msgfd);
		return;
	}
	p = xcalloc(env->nrcpts, sizeof(*p));
	for (i = 0; i < env->nrcpts; i++) {
		if (!env->rcpts[i].mailbox || rcpt_finished(&env->rcpts[i]) ||
		    index_find(&ix, env->rcpts[i].addr) != NULL)
			continue;
		switch (copy_one(sp, mb, env->id, env->rcpts[i].addr, msgfd,
		    size, &p[n], &ix)) {
		case 0:
			n++;
			changed = 1;
			break;
		case 1:
			changed = 1;
			break;
		}
	}
	if (changed && index_write(ixfd, env->id, &ix) == -1) {
		log_warn("%s: mailbox: cannot write the index: no copy",
		    env->id);
		for (i = 0; i < n; i++) {
			if ((ixfd = open_dir(p[i].userfd, "tmp", 0)) != -1) {
				(void)unlinkat(ixfd, p[i].base, 0);
				(void)close(ixfd);
			}
			(void)close(p[i].userfd);
		}
		n = 0;
	}
	link_copies(mb, env->id, p, n);
	free(p);
	index_free(&ix);
	(void)close(msgfd);
}

/*
 * The copy named base in the user's new/ or cur/ (where an IMAP client
 * moved it, renamed BASE:2,FLAGS): its directory fd and name in name,
 * *sub "new" or "cur".  -1 with ENOENT when it is in neither.
 */
static int
find_copy(int userfd, const char *base, char *name, size_t size,
    const char **sub)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	size_t		 len = strlen(base);
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
	if ((d = fdopendir(dup(fd))) == NULL) {
		(void)close(fd);
		return (-1);
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, base, len) == 0 &&
		    (de->d_name[len] == '\0' || de->d_name[len] == ':')) {
			(void)strlcpy(name, de->d_name, size);
			(void)closedir(d);
			*sub = "cur";
			return (fd);
		}
	}
	(void)closedir(d);
	(void)close(fd);
	errno = ENOENT;
	return (-1);
}

/* One copy leaves: unlinked, or with mailbox-keep moved to .Delivered. */
static void
release_entry(const struct spool_mailbox *mb, const char *id,
    struct entry *e)
{
	char		 name[BASE_SIZE + 64], safe[512];
	const char	*sub;
	int		 user, from, del = -1, to = -1, tmp = -1;

	e->gone = 1;
	if (e->base[0] == '\0')
		return;
	log_safe(safe, sizeof(safe), e->addr);
	if ((user = open_user(mb, e->domain, e->local, 0)) == -1)
		return;
	if ((from = find_copy(user, e->base, name, sizeof(name), &sub))
	    == -1) {
		(void)close(user);
		return;
	}
	if (mb->keep > 0) {
		if ((del = open_dir(user, DELIVERED, 1)) == -1 ||
		    (to = open_dir(del, sub, 1)) == -1 ||
		    (tmp = open_dir(del, "tmp", 1)) == -1 ||
		    renameat(from, name, to, name) == -1 || fsync(to) == -1 ||
		    fsync(from) == -1)
			log_warn("%s: to=<%s>, mailbox=%s/%s/%s/%s/%s, "
			    "status=failed (moving to %s)", id, safe, mb->dir,
			    e->domain, e->local, sub, name, DELIVERED);
		else
			log_info("%s: to=<%s>, mailbox=%s/%s/%s/%s/%s/%s, "
			    "status=delivered", id, safe, mb->dir, e->domain,
			    e->local, DELIVERED, sub, name);
	} else if (unlinkat(from, name, 0) == -1 || fsync(from) == -1)
		log_warn("%s: to=<%s>, mailbox=%s/%s/%s/%s/%s, status=failed "
		    "(removing)", id, safe, mb->dir, e->domain, e->local, sub,
		    name);
	else
		log_info("%s: to=<%s>, mailbox=%s/%s/%s/%s/%s, status=removed",
		    id, safe, mb->dir, e->domain, e->local, sub, name);
	if (tmp != -1)
		(void)close(tmp);
	if (to != -1)
		(void)close(to);
	if (del != -1)
		(void)close(del);
	(void)close(from);
	(void)close(user);
}

void
maildir_release(struct spool *sp, int msgdirfd, const char *msgname,
    const char *id, const struct envelope *env, int all)
{
	const struct spool_mailbox	*mb;
	const struct recipient		*r;
	struct index			 ix;
	size_t				 i, j;
	int				 ixfd, msgfd = -1, changed = 0, any = 0;

	if ((mb = spool_private_mailbox(sp)) == NULL)
		return;
	/* No recipient ever got a copy: nothing to look up. */
	for (i = 0; env != NULL && i < env->nrcpts; i++)
		if (env->rcpts[i].mailbox)
			any = 1;
	if (env != NULL && !any)
		return;
	if ((ixfd = spool_private_mailbox_dirfd(sp)) == -1)
		return;
	/*
	 * The lock first: a receive still copying (it holds it) writes the
	 * index only now, and the index is looked for after that.
	 */
	if (msgname != NULL &&
	    (msgfd = openat(msgdirfd, msgname, SPOOL_READ_FLAGS)) != -1)
		(void)flock(msgfd, LOCK_EX);
	if (index_read(ixfd, id, &ix) == -1) {
		if (errno != ENOENT)
			log_warn("%s: mailbox: index", id);
		goto done;
	}
	for (i = 0; i < ix.n; i++) {
		if (!all) {
			for (r = NULL, j = 0; env != NULL && j < env->nrcpts;
			    j++)
				if (strcmp(env->rcpts[j].addr,
				    ix.e[i].addr) == 0)
					r = &env->rcpts[j];
			if (r != NULL && !rcpt_finished(r))
				continue;
		}
		release_entry(mb, id, &ix.e[i]);
		changed = 1;
	}
	if (changed && index_write(ixfd, id, &ix) == -1)
		log_warn("%s: mailbox: cannot write the index", id);
	index_free(&ix);
done:
	if (msgfd != -1)
		(void)close(msgfd);
}

int
spool_mailbox_list(struct spool *sp, const char *id, int locate,
    int (*fn)(void *, const char *, const char *, int), void *arg)
{
	const struct spool_mailbox	*mb;
	struct index			 ix;
	const struct entry		*e;
	char				 name[BASE_SIZE + 64];
	char				 path[PATH_SIZE];
	const char			*sub = "new";
	size_t				 i;
	int				 ixfd, user, fd, found, r = 0;

	if ((mb = spool_private_mailbox(sp)) == NULL)
		return (0);
	if ((ixfd = spool_private_mailbox_dirfd(sp)) == -1)
		return (-1);
	if (index_read(ixfd, id, &ix) == -1)
		return (errno == ENOENT ? 0 : -1);
	for (i = 0; i < ix.n && r == 0; i++) {
		e = &ix.e[i];
		if (e->base[0] == '\0') {
			r = fn(arg, e->addr, NULL, 0);
			continue;
		}
		(void)strlcpy(name, e->base, sizeof(name));
		found = -1;
		if (locate) {
			found = 0;
			sub = "new";
			if ((user = open_user(mb, e->domain, e->local, 0)) !=
			    -1) {
				if ((fd = find_copy(user, e->base, name,
				    sizeof(name), &sub)) != -1) {
					found = 1;
					(void)close(fd);
				}
				(void)close(user);
			}
		}
		(void)bsnprintf(path, sizeof(path), "%s/%s/%s/%s/%s", mb->dir,
		    e->domain, e->local, sub, name);
		r = fn(arg, e->addr, path, found);
	}
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
			if (unlinkat(dirfd(d), de->d_name, 0) == 0)
				log_info("mailbox=%s/%s/%s/%s, status=removed "
				    "(mailbox-keep)", where, DELIVERED, sub[i],
				    de->d_name);
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
	/* An index whose message is gone (a crash between): copies leave. */
	if ((fd = dup(ixfd)) != -1 && (d = fdopendir(fd)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (queue_id_valid(de->d_name) &&
			    spool_exists(sp, de->d_name) == 0)
				maildir_release(sp, -1, NULL, de->d_name,
				    NULL, 1);
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
