/*
 * spool.c - the spool on disk: opening it, writing new messages,
 * reading envelopes, listing, claiming, queue surgery, crash recovery
 * and the per-domain notes and locks.  The layout, the life cycle of a
 * message and what a crash leaves are in spool/INTERNALS.
 *
 * Guarantees: a message becomes visible in queue/ only complete, with
 * its envelope, fsync'd, by one rename (or link); every change of state
 * is write-temp, fsync, rename; a message is worked on only by the
 * process that renamed it into active/; names read from directories are
 * used only after queue_id_valid(); every file is opened relative to the
 * spool's directory descriptors, never through a path built from input,
 * and nothing below the spool directory is reached through a symbolic
 * link (whoever owns the spool cannot steer a process run as root).
 */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "core/log.h"
#include "core/util.h"
#include "spool/spool.h"
#include "spool/spool_private.h"

#define FOOTER_LEN	32
#define MAX_TRAILER	(16 * 1024 * 1024)
#define MAX_STATE	(16 * 1024 * 1024)
#define MAX_NOTE	(64 * 1024)
#define WRITE_BUF	(64 * 1024)
#define TMP_MAX_AGE	(24 * 60 * 60)
#define HOST_MAX	64
#define NAME_MAX_LEN	(QUEUE_ID_LEN + 1 + HOST_MAX + 1 + 48)	/* PID-START */

enum loc { LOC_QUEUE, LOC_HOLD, LOC_ACTIVE, LOC_CORRUPT, LOC_NONE };

static const char *subdir_names[D_COUNT] = {
	"tmp", "queue", "hold", "active", "state", "corrupt", "domains"
};

struct spool {
	char	*dir;
	int	 dirfd;
	int	 fd[D_COUNT];
	char	 host[HOST_MAX + 1];	/* gethostname(), safe for names */
	/* Removals not yet made durable (spool_claim_remove_nosync). */
	size_t	 unsynced;
	char	(*stale_state)[QUEUE_ID_SIZE];	/* unlink after the sync */
	size_t	 nstale, stalecap;
	/* The outage mailbox (spool/maildir.c), and mailbox/'s fd. */
	struct spool_mailbox mbox;
	int	 has_mbox;
	int	 mbox_fd;
	struct maildir_cache *mbcache;	/* users' Maildirs kept open */
};

struct spool_writer {
	crypto_generichash_state hash;	/* first: needs 64-byte alignment */
	struct spool	*sp;
	int		 fd;		/* -1 once dead */
	int		 error;		/* errno that killed it */
	char		 id[QUEUE_ID_SIZE];
	uint64_t	 size;
	size_t		 buflen;
	char		 buf[WRITE_BUF];
};

struct spool_claim {
	struct spool	*sp;
	int		 fd;
	char		 name[NAME_MAX_LEN];	/* in active/ */
	struct envelope	 env;
	uint64_t	 msgsize;
	char		*state0;	/* state as claimed, to see changes */
	size_t		 state0len;
	void		*map;
	unsigned char	*copy;		/* small message: its bytes, read */
	int		 verified;
	int		 has_state;	/* state/ID existed or was written */
	unsigned char	*fin0;		/* per recipient: finished when claimed */
};

/* One message found by a directory scan. */
struct entry {
	char		 id[QUEUE_ID_LEN];
	unsigned char	 loc;
};

static int	 mkdir_p(const char *);
static int	 open_subdir(int, const char *, const char *, uid_t);
static int	 check_dir(const char *, const char *, const struct stat *,
		    uid_t);
static int	 reopen_dir(struct spool *, enum subdir);
static void	 host_name(char *, size_t);
static int	 claim_name(struct spool *, const char *, char *, size_t);
static int	 process_stat(pid_t, char *, size_t, char **);
static int	 stat_start(const char *, unsigned long long *);
static int	 process_start(pid_t, unsigned long long *);
static int	 pread_all(int, void *, size_t, off_t);
static int	 parse_hex(const char *, size_t, uint64_t *);
static int	 read_footer(const char *, uint64_t, uint64_t *, uint32_t *);
static int	 parse_tail(const char *, size_t, uint64_t, const char *,
		    struct envelope *, uint64_t *, uint32_t *);
static int	 decode_trailer(const char *, size_t, const char *, uint64_t,
		    struct envelope *);
static int	 foreach_sync(struct spool *, const char *, enum loc,
		    struct envelope *);
static int	 foreach_batched(struct spool *, struct spool_batch_item *,
		    const char *, enum loc, struct envelope *);
static void	 delete_copies(struct spool *, const char *, const char *);
static int	 read_envelope_fd(int, const char *, struct envelope *,
		    uint64_t *, unsigned char **);
static int	 merge_state(struct spool *, struct envelope *, int *);
static int	 find_active(struct spool *, const char *, char *, size_t);
static int	 open_any(struct spool *, const char *, int, enum loc *);
static int	 read_any(struct spool *, const char *, int, struct envelope *);
static int	 write_state(struct spool *, const struct envelope *);
static int	 state_changed(struct spool_claim *, int *);
static int	 writer_flush(struct spool_writer *);
static void	 writer_kill(struct spool_writer *, int);
static void	 writer_free(struct spool_writer *);
static int	 writer_commit(struct spool_writer *, struct envelope *,
		    const char *);
static int	 scan_dir(struct spool *, enum subdir, struct entry **,
		    size_t *, size_t *);
static int	 entry_cmp(const void *, const void *);
static int	 entry_id_cmp(const void *, const void *);
static int	 list_entries(struct spool *, struct entry **, size_t *);
static void	 prepare_chunk(struct spool *, const struct spool_cache_hook *,
		    const struct entry *, size_t, const struct entry *, size_t,
		    int, struct spool_batch_item *, char (*)[QUEUE_ID_SIZE]);
static int	 visit_chunk(struct spool *, const struct spool_cache_hook *,
		    const struct entry *, size_t, struct spool_batch_item *,
		    int, int (*)(const struct envelope *, void *), void *);
static void	 recover_claim(struct spool *, const char *, time_t, time_t);
static void	 recover_tmp(struct spool *, const char *, time_t);
static void	 recover_state(struct spool *, const char *,
		    const struct entry *, size_t);
static struct entry *list_messages(struct spool *, size_t *);
static int	 claim_is_stale(struct spool *, const char *, time_t, time_t,
		    char *, size_t);
static void	 move_to_corrupt(struct spool *, const char *, const char *);
static int	 process_gone(pid_t, unsigned long long);
static int	 move_message(struct spool *, const char *, enum subdir,
		    enum subdir);
static int	 domain_file(const char *, const char *, char *, size_t);
static int	 lock_domain_file(struct spool *, const char *, const char *,
		    int *);

/* Opening and closing. */

/*
 * A new descriptor of a subdirectory already open (for readdir, which
 * moves the offset): never its name again, which may have been replaced
 * by a link since.
 */
static int
reopen_dir(struct spool *sp, enum subdir which)
{
	return (openat(sp->fd[which], ".", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC));
}

static int
mkdir_p(const char *dir)
{
	char	 path[PATH_MAX];
	char	*p;

	if (strlcpy(path, dir, sizeof(path)) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	for (p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) == -1 && errno != EEXIST)
			return (-1);
		*p = '/';
	}
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		return (-1);
	return (0);
}

static void
host_name(char *buf, size_t size)
{
	char	 raw[DOMAIN_NAME_SIZE];
	size_t	 i, j;

	if (gethostname(raw, sizeof(raw)) == -1)
		(void)strlcpy(raw, "localhost", sizeof(raw));
	raw[sizeof(raw) - 1] = '\0';
	for (i = j = 0; raw[i] != '\0' && j + 1 < size; i++) {
		unsigned char c = (unsigned char)raw[i];

		buf[j++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ?
		    (char)c : '_';
	}
	if (j == 0)
		buf[j++] = '_';
	buf[j] = '\0';
}

int
spool_open(const char *dir, int create, struct spool **spp)
{
	struct spool	*sp;
	struct stat	 top;
	int		 i, made = 0, save;

	if (sodium_init() == -1) {
		errno = EIO;
		return (-1);
	}
	sp = xcalloc(1, sizeof(*sp));
	for (i = 0; i < D_COUNT; i++)
		sp->fd[i] = -1;
	sp->mbox_fd = -1;
	sp->dir = xstrdup(dir);
	host_name(sp->host, sizeof(sp->host));
	/*
	 * Open first, make only what is missing: a spool opened once per
	 * connection (receive under inetd) costs eight opens, no mkdirs.
	 */
	if ((sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		if (errno != ENOENT || !create || mkdir_p(dir) == -1 ||
		    (sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC)) == -1)
			goto fail;
	}
	if (fstat(sp->dirfd, &top) == -1 ||
	    check_dir(dir, NULL, &top, top.st_uid) == -1)
		goto fail;
	for (i = 0; i < D_COUNT; i++) {
		sp->fd[i] = open_subdir(sp->dirfd, dir, subdir_names[i],
		    top.st_uid);
		if (sp->fd[i] != -1)
			continue;
		if (errno != ENOENT || !create)
			goto fail;
		if (mkdirat(sp->dirfd, subdir_names[i], 0700) == 0)
			made = 1;
		else if (errno != EEXIST)
			goto fail;
		if ((sp->fd[i] = open_subdir(sp->dirfd, dir, subdir_names[i],
		    top.st_uid)) == -1)
			goto fail;
	}
	if (made && fsync(sp->dirfd) == -1)
		goto fail;
	*spp = sp;
	return (0);
fail:
	save = errno;
	spool_close(sp);
	errno = save;
	return (-1);
}

/*
 * One subdirectory, never through a symbolic link: whoever owns the
 * spool could otherwise point state/ or queue/ at any directory, and a
 * process that may run as root would write there.
 */
static int
open_subdir(int dirfd, const char *dir, const char *name, uid_t owner)
{
	struct stat	 st;
	int		 fd, save;

	if ((fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		save = errno;
		if (save != ELOOP && save != ENOTDIR)
			return (-1);
		/* A link fails as ENOTDIR (O_DIRECTORY) or ELOOP. */
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode)) {
			log_warnx("spool %s: %s is a symbolic link: refused",
			    dir, name);
			save = ELOOP;
		} else
			log_warnx("spool %s: %s is not a directory: refused",
			    dir, name);
		errno = save;
		return (-1);
	}
	if (fstat(fd, &st) == -1 || check_dir(dir, name, &st, owner) == -1) {
		save = errno;
		(void)close(fd);
		errno = save;
		return (-1);
	}
	return (fd);
}

/* Owned by owner and writable by nobody else: else EPERM, logged. */
static int
check_dir(const char *dir, const char *name, const struct stat *st,
    uid_t owner)
{
	const char	*sep = name != NULL ? ": " : "";

	if (name == NULL)
		name = "";
	if (st->st_uid != owner) {
		log_warnx("spool %s%s%s: belongs to uid %lu, not to the "
		    "spool's owner (uid %lu): refused", dir, sep, name,
		    (unsigned long)st->st_uid, (unsigned long)owner);
		errno = EPERM;
		return (-1);
	}
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		log_warnx("spool %s%s%s: writable by group or others (mode "
		    "%04o): refused", dir, sep, name,
		    (unsigned)(st->st_mode & 07777));
		errno = EPERM;
		return (-1);
	}
	return (0);
}

/* Hand the directory at path (made by us) to uid:gid, durably. */
static int
hand_over(const char *path, uid_t uid, gid_t gid)
{
	int	 fd, save;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return (-1);
	if (fchown(fd, uid, gid) == -1 || fsync(fd) == -1) {
		save = errno;
		(void)close(fd);
		errno = save;
		return (-1);
	}
	return (close(fd));
}

int
spool_create_dir(const char *dir, uid_t uid, gid_t gid)
{
	struct stat	 st;
	char		 tmp[PATH_MAX];
	size_t		 len;
	int		 save;

	if (stat(dir, &st) == 0)
		return (0);
	if (errno != ENOENT)
		return (-1);
	/*
	 * The directory appears whole: made under a name of its own next
	 * to it, handed to uid:gid, then renamed into place without
	 * replacing anything.  A command started at the same moment never
	 * finds it still root's; the loser of that race removes its copy.
	 */
	len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (snprintf(tmp, sizeof(tmp), "%.*s.new.%ld", (int)len, dir,
	    (long)getpid()) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	if (mkdir_p(tmp) == -1)
		return (-1);
	if (hand_over(tmp, uid, gid) == 0 &&
	    renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_NOREPLACE) == 0)
		return (0);
	save = errno;
	(void)rmdir(tmp);
	if (save == EEXIST)
		return (0);
	if (save != EINVAL) {
		errno = save;
		return (-1);
	}
	/* A file system without RENAME_NOREPLACE: made in place. */
	if (mkdir(dir, 0700) == -1)
		return (errno == EEXIST ? 0 : -1);
	return (hand_over(dir, uid, gid));
}

void
spool_close(struct spool *sp)
{
	int	 i;

	if (sp == NULL)
		return;
	(void)spool_sync_removals(sp);
	free(sp->stale_state);
	for (i = 0; i < D_COUNT; i++)
		if (sp->fd[i] != -1)
			(void)close(sp->fd[i]);
	if (sp->dirfd != -1)
		(void)close(sp->dirfd);
	if (sp->mbox_fd != -1)
		(void)close(sp->mbox_fd);
	maildir_cache_free(sp->mbcache);
	free((char *)sp->mbox.dir);
	free(sp->dir);
	free(sp);
}

int
spool_is_at(struct spool *sp, const char *dir)
{
	struct stat	 a, b;

	if (stat(dir, &a) == -1 || fstat(sp->dirfd, &b) == -1)
		return (-1);
	return (a.st_dev == b.st_dev && a.st_ino == b.st_ino);
}

int
spool_free_bytes(struct spool *sp, uint64_t *bytes)
{
	struct statvfs	 vfs;

	if (fstatvfs(sp->dirfd, &vfs) == -1)
		return (-1);
	*bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
	return (0);
}

/*
 * "ID.HOST.PID-START": the name of a claim by this process.  The start
 * time is read once per process (a forked child has its own), under a
 * lock: flush's delivery threads claim at once.
 */
static int
claim_name(struct spool *sp, const char *id, char *buf, size_t size)
{
	static pthread_mutex_t	 lock = PTHREAD_MUTEX_INITIALIZER;
	static pid_t		 cached;
	static unsigned long long cached_start;
	unsigned long long	 start;
	pid_t			 pid = getpid();

	(void)pthread_mutex_lock(&lock);
	if (cached != pid) {
		if (process_start(pid, &cached_start) == -1)
			cached_start = 0;
		cached = pid;
	}
	start = cached_start;
	(void)pthread_mutex_unlock(&lock);
	if (start == 0)
		return (bsnprintf(buf, size, "%s.%s.%ld", id, sp->host,
		    (long)pid));
	return (bsnprintf(buf, size, "%s.%s.%ld-%llu", id, sp->host,
	    (long)pid, start));
}

/* Reading message files. */

static int
pread_all(int fd, void *buf, size_t len, off_t off)
{
	char	*p = buf;
	ssize_t	 n;

	while (len > 0) {
		n = pread(fd, p, len, off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		if (n == 0) {
			errno = EBADMSG;	/* shrank under us */
			return (-1);
		}
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return (0);
}

static int
parse_hex(const char *s, size_t len, uint64_t *v)
{
	size_t	 i;
	int	 c;

	*v = 0;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c >= '0' && c <= '9')
			c -= '0';
		else if (c >= 'a' && c <= 'f')
			c -= 'a' - 10;
		else
			return (-1);
		*v = *v << 4 | (uint64_t)c;
	}
	return (0);
}

/* The footer (FOOTER_LEN bytes at f): trailer offset and length. */
static int
read_footer(const char *f, uint64_t fsize, uint64_t *off, uint32_t *len)
{
	uint64_t	 o, l;

	if (memcmp(f, "MXFB1 ", 6) != 0 || f[22] != ' ' || f[31] != '\n' ||
	    parse_hex(f + 6, 16, &o) == -1 || parse_hex(f + 23, 8, &l) == -1 ||
	    l > MAX_TRAILER || o > fsize ||
	    o + l + FOOTER_LEN != fsize) {
		errno = EBADMSG;
		return (-1);
	}
	*off = o;
	*len = (uint32_t)l;
	return (0);
}

/*
 * The envelope from the last n bytes of a message file of fsize bytes.
 * EAGAIN: the trailer is longer than tail (read it at *off, *len).
 */
static int
parse_tail(const char *tail, size_t n, uint64_t fsize, const char *id,
    struct envelope *env, uint64_t *off, uint32_t *len)
{
	if (fsize < FOOTER_LEN || n < FOOTER_LEN ||
	    read_footer(tail + n - FOOTER_LEN, fsize, off, len) == -1) {
		errno = EBADMSG;
		return (-1);
	}
	if ((size_t)*len + FOOTER_LEN > n) {
		errno = EAGAIN;
		return (-1);
	}
	return (decode_trailer(tail + n - FOOTER_LEN - *len, *len, id, *off,
	    env));
}

static int
decode_trailer(const char *trailer, size_t len, const char *id, uint64_t off,
    struct envelope *env)
{
	if (envelope_decode(trailer, len, env) == -1)
		return (-1);
	if (strcmp(env->id, id) != 0 || env->size != off) {
		envelope_free(env);
		errno = EBADMSG;
		return (-1);
	}
	return (0);
}

/*
 * The envelope from the file's tail.  When the one read of the tail was
 * the whole file and whole is not NULL, *whole gets a copy of the
 * message bytes (NULL otherwise): no second read or mapping needed.
 */
static int
read_envelope_fd(int fd, const char *id, struct envelope *env,
    uint64_t *msgsize, unsigned char **whole)
{
	struct stat	 st;
	char		 tail[SPOOL_TAIL];
	char		*big;
	uint64_t	 off;
	uint32_t	 len;
	size_t		 n;
	int		 r, save;

	if (fstat(fd, &st) == -1)
		return (-1);
	if (st.st_size < FOOTER_LEN) {
		errno = EBADMSG;
		return (-1);
	}
	n = st.st_size < SPOOL_TAIL ? (size_t)st.st_size : SPOOL_TAIL;
	if (pread_all(fd, tail, n, st.st_size - (off_t)n) == -1)
		return (-1);
	r = parse_tail(tail, n, (uint64_t)st.st_size, id, env, &off, &len);
	if (r == -1 && errno == EAGAIN) {
		big = xmalloc(len);
		if ((r = pread_all(fd, big, len, (off_t)off)) == 0)
			r = decode_trailer(big, len, id, off, env);
		save = errno;
		free(big);
		errno = save;
	}
	if (r == 0 && msgsize != NULL)
		*msgsize = off;
	if (whole != NULL)
		*whole = NULL;
	if (r == 0 && whole != NULL && n == (size_t)st.st_size && off > 0) {
		*whole = xmalloc((size_t)off);
		memcpy(*whole, tail, (size_t)off);
	}
	return (r);
}

/*
 * Merge state/ID into env; no state file means fresh.  *found (if not
 * NULL) tells whether there was one.
 */
static int
merge_state(struct spool *sp, struct envelope *env, int *found)
{
	struct stat	 st;
	char		 small[SPOOL_TAIL];
	char		*buf;
	int		 fd, r, save;

	if (found != NULL)
		*found = 1;
	if ((fd = openat(sp->fd[D_STATE], env->id, SPOOL_READ_FLAGS)) == -1) {
		if (errno != ENOENT)
			return (-1);
		if (found != NULL)
			*found = 0;
		return (0);
	}
	if (fstat(fd, &st) == -1)
		goto fail;
	if (st.st_size > MAX_STATE) {
		errno = EBADMSG;
		goto fail;
	}
	buf = st.st_size <= (off_t)sizeof(small) ? small :
	    xmalloc((size_t)st.st_size);
	if (pread_all(fd, buf, (size_t)st.st_size, 0) == -1) {
		save = errno;
		if (buf != small)
			free(buf);
		errno = save;
		goto fail;
	}
	r = envelope_state_merge(env, buf, (size_t)st.st_size);
	save = errno;
	if (buf != small)
		free(buf);
	(void)close(fd);
	errno = save;
	return (r);
fail:
	save = errno;
	(void)close(fd);
	errno = save;
	return (-1);
}

/* The name of a claim of id in active/, whoever holds it. */
static int
find_active(struct spool *sp, const char *id, char *name, size_t size)
{
	DIR		*d;
	struct dirent	*de;
	int		 fd, found = 0;

	if ((fd = reopen_dir(sp, D_ACTIVE)) == -1)
		return (-1);
	if ((d = fdopendir(fd)) == NULL) {
		(void)close(fd);
		return (-1);
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, id, QUEUE_ID_LEN) == 0 &&
		    de->d_name[QUEUE_ID_LEN] == '.') {
			if (strlcpy(name, de->d_name, size) < size)
				found = 1;
			break;
		}
	}
	(void)closedir(d);
	if (!found) {
		errno = ENOENT;
		return (-1);
	}
	return (0);
}

/* Open message id wherever it is (queue, hold, active, from first). */
static int
open_any(struct spool *sp, const char *id, int first, enum loc *where)
{
	static const enum loc order[] = { LOC_QUEUE, LOC_HOLD, LOC_ACTIVE };
	char	 name[NAME_MAX_LEN];
	int	 fd, i, dfd;

	for (i = first; i < 3; i++) {
		if (order[i] == LOC_ACTIVE) {
			if (find_active(sp, id, name, sizeof(name)) == -1)
				return (-1);
			dfd = sp->fd[D_ACTIVE];
		} else {
			(void)strlcpy(name, id, sizeof(name));
			dfd = sp->fd[order[i] == LOC_QUEUE ? D_QUEUE : D_HOLD];
		}
		fd = openat(dfd, name, SPOOL_READ_FLAGS);
		if (fd != -1) {
			*where = order[i];
			return (fd);
		}
		if (errno != ENOENT)
			return (-1);
	}
	errno = ENOENT;
	return (-1);
}

static int
read_any(struct spool *sp, const char *id, int first, struct envelope *env)
{
	enum loc	 where;
	int		 fd, save;

	if ((fd = open_any(sp, id, first, &where)) == -1)
		return (-1);
	if (read_envelope_fd(fd, id, env, NULL, NULL) == -1) {
		save = errno;
		(void)close(fd);
		errno = save;
		return (-1);
	}
	(void)close(fd);
	if (merge_state(sp, env, NULL) == -1) {
		save = errno;
		envelope_free(env);
		errno = save;
		return (-1);
	}
	env->held = where == LOC_HOLD;
	env->claimed = where == LOC_ACTIVE;
	return (0);
}

int
spool_read_envelope(struct spool *sp, const char *id, struct envelope *env)
{
	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return (-1);
	}
	return (read_any(sp, id, 0, env));
}

int
spool_open_message(struct spool *sp, const char *id, int *fdp,
    uint64_t *size)
{
	struct stat	 st;
	char		 footer[FOOTER_LEN];
	enum loc	 where;
	uint64_t	 off;
	uint32_t	 len;
	int		 fd, save;

	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return (-1);
	}
	if ((fd = open_any(sp, id, 0, &where)) == -1)
		return (-1);
	if (fstat(fd, &st) == -1)
		goto fail;
	if (st.st_size < FOOTER_LEN) {
		errno = EBADMSG;
		goto fail;
	}
	if (pread_all(fd, footer, FOOTER_LEN, st.st_size - FOOTER_LEN) == -1 ||
	    read_footer(footer, (uint64_t)st.st_size, &off, &len) == -1)
		goto fail;
	*fdp = fd;
	*size = off;
	return (0);
fail:
	save = errno;
	(void)close(fd);
	errno = save;
	return (-1);
}

int
spool_exists(struct spool *sp, const char *id)
{
	static const enum subdir dirs[] = { D_QUEUE, D_HOLD, D_CORRUPT };
	struct stat	 st;
	char		 name[NAME_MAX_LEN];
	size_t		 i;

	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return (-1);
	}
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (fstatat(sp->fd[dirs[i]], id, &st, AT_SYMLINK_NOFOLLOW)
		    == 0)
			return (1);
		if (errno != ENOENT)
			return (-1);
	}
	if (find_active(sp, id, name, sizeof(name)) == 0)
		return (1);
	return (errno == ENOENT ? 0 : -1);
}

/* Writing new messages. */

int
spool_writer_begin(struct spool *sp, struct spool_writer **wp,
    char id[QUEUE_ID_SIZE])
{
	struct spool_writer	*w;
	void			*mem;
	int			 tries, save;

	/* crypto_generichash_state wants 64-byte alignment. */
	if ((errno = posix_memalign(&mem, 64, sizeof(*w))) != 0)
		return (-1);
	w = mem;
	memset(w, 0, sizeof(*w));
	w->sp = sp;
	w->fd = -1;
	for (tries = 0; tries < 10; tries++) {
		if (queue_id_new(w->id) == -1)
			break;
		w->fd = openat(sp->fd[D_TMP], w->id,
		    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (w->fd != -1 || errno != EEXIST)
			break;
	}
	if (w->fd == -1) {
		save = errno;
		free(w);
		errno = save;
		return (-1);
	}
	if (crypto_generichash_init(&w->hash, NULL, 0, 32) != 0) {
		writer_kill(w, EIO);
		free(w);
		errno = EIO;
		return (-1);
	}
	(void)strlcpy(id, w->id, QUEUE_ID_SIZE);
	*wp = w;
	return (0);
}

/* The writer is dead: temp file closed and removed, error kept. */
static void
writer_kill(struct spool_writer *w, int error)
{
	if (w->fd != -1) {
		(void)close(w->fd);
		w->fd = -1;
		if (unlinkat(w->sp->fd[D_TMP], w->id, 0) == -1 &&
		    errno != ENOENT)
			log_warn("spool: unlink tmp/%s", w->id);
	}
	if (w->error == 0)
		w->error = error;
}

static void
writer_free(struct spool_writer *w)
{
	sodium_memzero(&w->hash, sizeof(w->hash));
	free(w);
}

static int
writer_flush(struct spool_writer *w)
{
	if (w->buflen == 0)
		return (0);
	if (write_all(w->fd, w->buf, w->buflen) == -1) {
		writer_kill(w, errno);
		errno = w->error;
		return (-1);
	}
	w->buflen = 0;
	return (0);
}

int
spool_writer_write(struct spool_writer *w, const void *data, size_t len)
{
	const char	*p = data;
	size_t		 n;

	if (w->fd == -1) {
		errno = w->error ? w->error : EIO;
		return (-1);
	}
	if (crypto_generichash_update(&w->hash, data, len) != 0) {
		writer_kill(w, EIO);
		errno = EIO;
		return (-1);
	}
	w->size += len;
	while (len > 0) {
		if (w->buflen == sizeof(w->buf) && writer_flush(w) == -1)
			return (-1);
		n = sizeof(w->buf) - w->buflen;
		if (n > len)
			n = len;
		memcpy(w->buf + w->buflen, p, n);
		w->buflen += n;
		p += n;
		len -= n;
	}
	return (0);
}

/*
 * The message so far, mapped, handed to fn, which may return bytes to
 * put before it (a DKIM-Signature field: core/dkim.c signs the whole
 * message).  Written as tmp/ID.pre.HOST.PID (those bytes, then the old
 * file's), renamed over tmp/ID: a crash leaves either file, both only in
 * tmp/, so nothing is committed half changed.  The checksum is taken
 * again over the new content.
 */
int
spool_writer_prepend(struct spool_writer *w, spool_prepend_fn fn, void *arg)
{
	char		 name[NAME_MAX_LEN];
	char		*pre = NULL;
	size_t		 prelen = 0;
	void		*map = NULL;
	int		 fd = -1, save, rc;

	if (w->fd == -1) {
		errno = w->error ? w->error : EIO;
		return (-1);
	}
	if (writer_flush(w) == -1)
		return (-1);
	if (w->size > 0 && (map = mmap(NULL, w->size, PROT_READ, MAP_SHARED,
	    w->fd, 0)) == MAP_FAILED) {
		writer_kill(w, errno);
		errno = w->error;
		return (-1);
	}
	rc = fn(map != NULL ? map : "", w->size, arg, &pre, &prelen);
	if (rc == -1 || prelen == 0) {
		save = errno;
		if (map != NULL)
			(void)munmap(map, w->size);
		free(pre);
		errno = save;
		return (rc);
	}
	if (snprintf(name, sizeof(name), "%s.pre.%s.%ld", w->id,
	    w->sp->host, (long)getpid()) >= (int)sizeof(name)) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	if ((fd = openat(w->sp->fd[D_TMP], name, O_RDWR | O_CREAT | O_TRUNC |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) == -1)
		goto fail;
	if (crypto_generichash_init(&w->hash, NULL, 0, 32) != 0 ||
	    crypto_generichash_update(&w->hash, (unsigned char *)pre,
	    prelen) != 0 || (w->size > 0 && crypto_generichash_update(&w->hash,
	    map, w->size) != 0)) {
		errno = EIO;
		goto fail;
	}
	if (write_all(fd, pre, prelen) == -1 ||
	    (w->size > 0 && write_all(fd, map, w->size) == -1) ||
	    renameat(w->sp->fd[D_TMP], name, w->sp->fd[D_TMP], w->id) == -1)
		goto fail;
	if (map != NULL)
		(void)munmap(map, w->size);
	free(pre);
	(void)close(w->fd);
	w->fd = fd;
	w->size += prelen;
	return (0);
fail:
	save = errno;
	if (fd != -1) {
		(void)close(fd);
		(void)unlinkat(w->sp->fd[D_TMP], name, 0);
	}
	if (map != NULL)
		(void)munmap(map, w->size);
	free(pre);
	writer_kill(w, save);
	errno = save;
	return (-1);
}

/* Append trailer and footer, fsync, close; then rename or link as id. */
static int
writer_commit(struct spool_writer *w, struct envelope *env, const char *as)
{
	struct spool	*sp = w->sp;
	struct maildir_batch *batch = NULL;
	char		*trailer = NULL;
	char		 footer[FOOTER_LEN + 1];
	size_t		 tlen;
	int		 fd, e, lockfd = -1;

	if (w->fd == -1) {
		e = w->error ? w->error : EIO;
		goto fail;
	}
	if (env->nrcpts == 0 || env->sender == NULL) {
		e = EINVAL;
		goto fail;
	}
	if (crypto_generichash_final(&w->hash, env->checksum, 32) != 0) {
		e = EIO;
		goto fail;
	}
	env->size = w->size;
	(void)strlcpy(env->id, as != NULL ? as : w->id, sizeof(env->id));
	if (envelope_encode(env, &trailer, &tlen) == -1) {
		e = errno;
		goto fail;
	}
	if (tlen > MAX_TRAILER) {
		e = E2BIG;
		goto fail;
	}
	if (snprintf(footer, sizeof(footer), "MXFB1 %016llx %08x\n",
	    (unsigned long long)w->size, (unsigned)tlen) != FOOTER_LEN) {
		e = EIO;
		goto fail;
	}
	/* Small messages: body, trailer and footer in one write. */
	if (w->buflen + tlen + FOOTER_LEN <= sizeof(w->buf)) {
		memcpy(w->buf + w->buflen, trailer, tlen);
		memcpy(w->buf + w->buflen + tlen, footer, FOOTER_LEN);
		w->buflen += tlen + FOOTER_LEN;
		if (writer_flush(w) == -1) {
			e = errno;
			goto fail;
		}
	} else if (writer_flush(w) == -1 ||
	    write_all(w->fd, trailer, tlen) == -1 ||
	    write_all(w->fd, footer, FOOTER_LEN) == -1) {
		e = errno;
		goto fail;
	}
	/*
	 * The outage mailbox's copies (maildir.c): written and fsync'd
	 * now, published once the message is in queue/, under its file's
	 * lock (taken while no other process can see the file): a flush or
	 * delete of the message waits for them.  Without the lock they stay
	 * owed.
	 */
	if (sp->has_mbox)
		batch = maildir_stage(sp, env, w->fd);
	if (fsync(w->fd) == -1) {
		e = errno;
		goto fail;
	}
	if (batch != NULL && ((lockfd = dup(w->fd)) == -1 ||
	    flock(lockfd, LOCK_EX) == -1)) {
		log_warn("%s: mailbox: lock", env->id);
		maildir_discard(batch, 0);
		batch = NULL;
	}
	/* From here the file is closed but still in tmp/. */
	fd = w->fd;
	w->fd = -1;
	if (close(fd) == -1) {
		e = errno;
		goto unlink_tmp;
	}
	if (as == NULL) {
		if (renameat(sp->fd[D_TMP], w->id, sp->fd[D_QUEUE], w->id)
		    == -1) {
			e = errno;
			goto unlink_tmp;
		}
	} else {
		if ((e = spool_exists(sp, as)) != 0) {
			e = e == 1 ? EEXIST : errno;
			goto unlink_tmp;
		}
		if (linkat(sp->fd[D_TMP], w->id, sp->fd[D_QUEUE], as, 0)
		    == -1) {
			e = errno;
			goto unlink_tmp;
		}
		if (unlinkat(sp->fd[D_TMP], w->id, 0) == -1)
			log_warn("spool: unlink tmp/%s", w->id);
	}
	if (fsync(sp->fd[D_QUEUE]) == -1) {
		/* Not durable: take it back so no 250 is owed for it. */
		e = errno;
		if (unlinkat(sp->fd[D_QUEUE], env->id, 0) == -1)
			log_warn("spool: unlink queue/%s", env->id);
		goto fail;
	}
	maildir_publish(sp, env, batch);
	if (lockfd != -1)
		(void)close(lockfd);
	free(trailer);
	writer_free(w);
	return (0);

unlink_tmp:
	if (unlinkat(sp->fd[D_TMP], w->id, 0) == -1)
		log_warn("spool: unlink tmp/%s", w->id);
fail:
	maildir_discard(batch, 1);
	if (lockfd != -1)
		(void)close(lockfd);
	writer_kill(w, e);
	free(trailer);
	writer_free(w);
	errno = e;
	return (-1);
}

int
spool_writer_commit(struct spool_writer *w, struct envelope *env)
{
	return (writer_commit(w, env, NULL));
}

int
spool_writer_commit_as(struct spool_writer *w, struct envelope *env,
    const char *id)
{
	if (!queue_id_valid(id)) {
		spool_writer_abort(w);
		errno = EINVAL;
		return (-1);
	}
	return (writer_commit(w, env, id));
}

void
spool_writer_abort(struct spool_writer *w)
{
	if (w == NULL)
		return;
	writer_kill(w, ECANCELED);
	writer_free(w);
}

/* Listing. */

static int
entry_cmp(const void *a, const void *b)
{
	const struct entry	*x = a, *y = b;
	int			 c;

	if ((c = memcmp(x->id, y->id, QUEUE_ID_LEN)) != 0)
		return (c);
	return ((int)x->loc - (int)y->loc);
}

static int
entry_id_cmp(const void *a, const void *b)
{
	return (memcmp(((const struct entry *)a)->id,
	    ((const struct entry *)b)->id, QUEUE_ID_LEN));
}

/* Append the IDs in one of queue/, hold/, active/, corrupt/ to ents. */
static int
scan_dir(struct spool *sp, enum subdir which, struct entry **ents,
    size_t *n, size_t *cap)
{
	DIR		*d;
	struct dirent	*de;
	struct entry	*e;
	char		 id[QUEUE_ID_SIZE];
	int		 fd, save;

	if ((fd = reopen_dir(sp, which)) == -1)
		return (-1);
	if ((d = fdopendir(fd)) == NULL) {
		save = errno;
		(void)close(fd);
		errno = save;
		return (-1);
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		memcpy(id, de->d_name, QUEUE_ID_LEN);
		id[QUEUE_ID_LEN] = '\0';
		if (strnlen(de->d_name, QUEUE_ID_LEN) != QUEUE_ID_LEN ||
		    !queue_id_valid(id) ||
		    de->d_name[QUEUE_ID_LEN] !=
		    (which == D_ACTIVE ? '.' : '\0'))
			continue;
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 1024;
			*ents = xreallocarray(*ents, *cap, sizeof(**ents));
		}
		e = &(*ents)[(*n)++];
		memcpy(e->id, id, QUEUE_ID_LEN);
		e->loc = which == D_QUEUE ? LOC_QUEUE :
		    which == D_HOLD ? LOC_HOLD :
		    which == D_CORRUPT ? LOC_CORRUPT : LOC_ACTIVE;
		errno = 0;
	}
	save = errno;
	(void)closedir(d);
	errno = save;
	return (save != 0 ? -1 : 0);
}

/*
 * One message the slow way: 0 read, 1 skip it (gone, or unreadable and
 * logged), -1 error.
 */
static int
foreach_sync(struct spool *sp, const char *id, enum loc loc,
    struct envelope *env)
{
	if (read_any(sp, id, loc, env) == 0)
		return (0);
	/* Moved since the scan (claimed, released...): look everywhere. */
	if (errno == ENOENT && loc != LOC_QUEUE &&
	    read_any(sp, id, 0, env) == 0)
		return (0);
	if (errno == ENOENT)
		return (1);	/* delivered meanwhile */
	if (errno == EBADMSG) {
		log_warnx("%s: spool: unreadable message file or state, "
		    "skipped", id);
		return (1);
	}
	return (-1);
}

/* One message from what the batch read; anything unusual: the slow way. */
static int
foreach_batched(struct spool *sp, struct spool_batch_item *it,
    const char *id, enum loc loc, struct envelope *env)
{
	uint64_t	 off;
	uint32_t	 len;

	if (it->fd < 0 || it->stat_res != 0 ||
	    it->tail_len != (int)(it->size - it->tail_off) ||
	    (it->state_fd < 0 && it->state_fd != -ENOENT) ||
	    (it->state_fd >= 0 && (it->state_len < 0 ||
	    it->state_len >= SPOOL_TAIL)))
		return (foreach_sync(sp, id, loc, env));
	if (parse_tail(it->tail, (size_t)it->tail_len, (uint64_t)it->size, id,
	    env, &off, &len) == -1) {
		if (errno == EAGAIN)
			return (foreach_sync(sp, id, loc, env));
		log_warnx("%s: spool: unreadable message file or state, "
		    "skipped", id);
		return (1);
	}
	if (it->state_fd >= 0 && envelope_state_merge(env, it->state,
	    (size_t)it->state_len) == -1) {
		envelope_free(env);
		log_warnx("%s: spool: unreadable message file or state, "
		    "skipped", id);
		return (1);
	}
	env->held = loc == LOC_HOLD;
	env->claimed = 0;
	return (0);
}

int
spool_foreach(struct spool *sp, int (*fn)(const struct envelope *, void *),
    void *arg)
{
	return (spool_foreach_cached(sp, NULL, fn, arg));
}

/*
 * The messages of queue/, hold/ and active/, sorted; one seen twice
 * moved while we scanned: one is kept.  -1 with errno set on error.
 */
static int
list_entries(struct spool *sp, struct entry **entsp, size_t *np)
{
	struct entry	*ents = NULL;
	size_t		 n = 0, cap = 0, i, j;
	int		 save;

	if (scan_dir(sp, D_QUEUE, &ents, &n, &cap) == -1 ||
	    scan_dir(sp, D_HOLD, &ents, &n, &cap) == -1 ||
	    scan_dir(sp, D_ACTIVE, &ents, &n, &cap) == -1) {
		save = errno;
		free(ents);
		errno = save;
		return (-1);
	}
	if (n > 1)
		qsort(ents, n, sizeof(*ents), entry_cmp);
	for (i = j = 0; i < n; i++)
		if (j == 0 || memcmp(ents[i].id, ents[j - 1].id,
		    QUEUE_ID_LEN) != 0)
			ents[j++] = ents[i];
	*entsp = ents;
	*np = j;
	return (0);
}

int
spool_count_corrupt(struct spool *sp, uint64_t *count)
{
	struct entry	*ents = NULL;
	size_t		 n = 0, cap = 0;

	if (scan_dir(sp, D_CORRUPT, &ents, &n, &cap) == -1)
		return (-1);
	free(ents);
	*count = n;
	return (0);
}

/*
 * The batch items for the chunk of messages ents[0..chunk): only those
 * with a state file (states, when known) are opened in state/; claimed
 * ones and those the cache knows are left to the slow way or the cache.
 */
static void
prepare_chunk(struct spool *sp, const struct spool_cache_hook *hook,
    const struct entry *ents, size_t chunk, const struct entry *states,
    size_t nstates, int known_states, struct spool_batch_item *items,
    char (*ids)[QUEUE_ID_SIZE])
{
	struct entry	 key;
	size_t		 k;

	memset(&key, 0, sizeof(key));
	for (k = 0; k < chunk; k++) {
		memcpy(ids[k], ents[k].id, QUEUE_ID_LEN);
		ids[k][QUEUE_ID_LEN] = '\0';
		items[k].name = ids[k];
		items[k].state_dirfd = sp->fd[D_STATE];
		memcpy(key.id, ents[k].id, QUEUE_ID_LEN);
		if (known_states && (nstates == 0 || bsearch(&key, states,
		    nstates, sizeof(*states), entry_id_cmp) == NULL))
			items[k].state_dirfd = -1;
		/* Claimed ones have longer names: the slow way. */
		items[k].dirfd = ents[k].loc == LOC_HOLD ? sp->fd[D_HOLD] :
		    ents[k].loc == LOC_QUEUE ? sp->fd[D_QUEUE] : -1;
		/* Known to the cache: nothing to read. */
		if (hook != NULL && hook->has(hook->ctx, ids[k]))
			items[k].dirfd = items[k].state_dirfd = -1;
	}
}

/*
 * fn for each message of the chunk ents[0..chunk): from the cache, from
 * what the batch read (items, batch != NULL), or read one by one.
 * Returns fn's first non-zero result, -1 on error, else 0.
 */
static int
visit_chunk(struct spool *sp, const struct spool_cache_hook *hook,
    const struct entry *ents, size_t chunk, struct spool_batch_item *items,
    int batched, int (*fn)(const struct envelope *, void *), void *arg)
{
	struct envelope	 env;
	char		 id[QUEUE_ID_SIZE];
	enum loc	 loc;
	size_t		 k;
	int		 r = 0, how;

	for (k = 0; k < chunk && r == 0; k++) {
		loc = ents[k].loc;
		memcpy(id, ents[k].id, QUEUE_ID_LEN);
		id[QUEUE_ID_LEN] = '\0';
		if (hook != NULL && hook->get(hook->ctx, id, &env) == 1) {
			/* The cache's memory: not freed here. */
			env.held = loc == LOC_HOLD;
			env.claimed = loc == LOC_ACTIVE;
			r = fn(&env, arg);
			continue;
		}
		if (batched && loc != LOC_ACTIVE)
			how = foreach_batched(sp, &items[k], id, loc, &env);
		else
			how = foreach_sync(sp, id, loc, &env);
		if (how == 1)
			continue;
		if (how == -1)
			return (-1);
		r = fn(&env, arg);
		envelope_free(&env);
	}
	return (r);
}

int
spool_foreach_cached(struct spool *sp, const struct spool_cache_hook *hook,
    int (*fn)(const struct envelope *, void *), void *arg)
{
	struct entry		*ents = NULL, *states = NULL;
	struct spool_batch	*batch = NULL;
	struct spool_batch_item	*items = NULL;
	char			 (*ids)[QUEUE_ID_SIZE] = NULL;
	size_t			 n = 0, i, chunk;
	size_t			 nstates = 0, statecap = 0;
	int			 known_states = 0;
	pid_t			 owner = getpid();
	int			 r = 0, save;

	if (list_entries(sp, &ents, &n) == -1)
		return (-1);
	/*
	 * Read the files in batches where the kernel allows;
	 * MXFB_NO_IO_URING forces the one-by-one path (mxfb.1 ENVIRONMENT).
	 */
	if (n > 0 && getenv("MXFB_NO_IO_URING") == NULL &&
	    spool_batch_new(&batch) == 0) {
		items = xreallocarray(NULL, SPOOL_BATCH_MAX, sizeof(*items));
		ids = xreallocarray(NULL, SPOOL_BATCH_MAX, sizeof(*ids));
		/*
		 * Which messages have a state file: only those are opened
		 * in state/ (a message never tried has none, and a failed
		 * lookup in a big directory costs as much as an open).
		 */
		if (scan_dir(sp, D_STATE, &states, &nstates, &statecap) ==
		    0) {
			known_states = 1;
			if (nstates > 1)
				qsort(states, nstates, sizeof(*states),
				    entry_id_cmp);
		}
	}
	for (i = 0; i < n && r == 0; i += chunk) {
		chunk = n - i < SPOOL_BATCH_MAX ? n - i : SPOOL_BATCH_MAX;
		if (ids != NULL)
			prepare_chunk(sp, hook, ents + i, chunk, states,
			    nstates, known_states, items, ids);
		/* A callback that forked must not share the parent's ring. */
		if (batch != NULL && getpid() != owner) {
			spool_batch_free(batch);
			batch = NULL;
		}
		if (batch != NULL && spool_batch_read(batch, items, chunk)
		    == -1) {
			log_warn("spool: io_uring");
			spool_batch_free(batch);
			batch = NULL;
		}
		r = visit_chunk(sp, hook, ents + i, chunk, items,
		    batch != NULL, fn, arg);
	}
	save = errno;
	spool_batch_free(batch);
	free(items);
	free(ids);
	free(ents);
	free(states);
	errno = save;
	return (r);
}

/* Claims. */

int
spool_claim(struct spool *sp, const char *id, struct spool_claim **cp)
{
	struct spool_claim	*c;
	size_t			 i;
	int			 save;

	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return (-1);
	}
	c = xcalloc(1, sizeof(*c));
	c->sp = sp;
	c->fd = -1;
	if (claim_name(sp, id, c->name, sizeof(c->name)) == -1)
		goto fail;
	if (renameat(sp->fd[D_QUEUE], id, sp->fd[D_ACTIVE], c->name) == -1)
		goto fail;
	if ((c->fd = openat(sp->fd[D_ACTIVE], c->name,
	    SPOOL_READ_FLAGS)) == -1)
		goto giveback;
	/* The claim's age is its ctime: make sure it is now. */
	if (futimens(c->fd, NULL) == -1)
		log_warn("%s: spool: futimens active/%s", id, c->name);
	if (read_envelope_fd(c->fd, id, &c->env, &c->msgsize, &c->copy) == -1)
		goto giveback;
	if (merge_state(sp, &c->env, &c->has_state) == -1) {
		save = errno;
		envelope_free(&c->env);
		errno = save;
		goto giveback;
	}
	if (envelope_state_encode(&c->env, &c->state0, &c->state0len) == -1)
		goto giveback;
	c->fin0 = xcalloc(c->env.nrcpts ? c->env.nrcpts : 1, 1);
	for (i = 0; i < c->env.nrcpts; i++)
		c->fin0[i] = rcpt_finished(&c->env.rcpts[i]);
	*cp = c;
	return (0);

giveback:
	save = errno;
	if (save == EBADMSG) {
		log_warnx("%s: spool: unreadable envelope or state, "
		    "moved to corrupt/", id);
		move_to_corrupt(sp, c->name, id);
	} else if (renameat(sp->fd[D_ACTIVE], c->name, sp->fd[D_QUEUE], id)
	    == -1)
		log_warn("%s: spool: cannot unclaim", id);
	errno = save;
fail:
	save = errno;
	spool_claim_free(c);
	errno = save;
	return (-1);
}

struct envelope *
spool_claim_envelope(struct spool_claim *c)
{
	return (&c->env);
}

int
spool_claim_message(struct spool_claim *c, const unsigned char **data,
    size_t *len)
{
	static const unsigned char	 empty[1];
	unsigned char			 sum[32];
	const unsigned char		*p;

	if (c->msgsize > SIZE_MAX) {
		errno = EFBIG;
		return (-1);
	}
	if (c->msgsize == 0)
		p = empty;
	else if (c->copy != NULL)
		p = c->copy;
	else if (c->map != NULL)
		p = c->map;
	else {
		c->map = mmap(NULL, (size_t)c->msgsize, PROT_READ, MAP_PRIVATE,
		    c->fd, 0);
		if (c->map == MAP_FAILED) {
			c->map = NULL;
			return (-1);
		}
		p = c->map;
	}
	if (!c->verified) {
		if (crypto_generichash(sum, sizeof(sum), p,
		    (unsigned long long)c->msgsize, NULL, 0) != 0) {
			errno = EIO;
			return (-1);
		}
		if (sodium_memcmp(sum, c->env.checksum, sizeof(sum)) != 0) {
			errno = EBADMSG;
			return (-1);
		}
		c->verified = 1;
	}
	*data = p;
	*len = (size_t)c->msgsize;
	return (0);
}

/* State file: tmp/ID.state.HOST.PID, fsync, rename to state/ID. */
static int
write_state(struct spool *sp, const struct envelope *env)
{
	char	 tmp[NAME_MAX_LEN + 8];
	char	*buf = NULL;
	size_t	 len;
	int	 fd = -1, save;

	if (bsnprintf(tmp, sizeof(tmp), "%s.state.%s.%ld", env->id, sp->host,
	    (long)getpid()) == -1)
		return (-1);
	if (envelope_state_encode(env, &buf, &len) == -1)
		return (-1);
	if ((fd = spool_private_create_temp(sp->fd[D_TMP], tmp)) == -1)
		goto fail;
	if (write_all(fd, buf, len) == -1 || fsync(fd) == -1)
		goto fail_unlink;
	if (close(fd) == -1) {
		fd = -1;
		goto fail_unlink;
	}
	fd = -1;
	if (renameat(sp->fd[D_TMP], tmp, sp->fd[D_STATE], env->id) == -1)
		goto fail_unlink;
	if (fsync(sp->fd[D_STATE]) == -1)
		goto fail;
	free(buf);
	return (0);

fail_unlink:
	save = errno;
	if (unlinkat(sp->fd[D_TMP], tmp, 0) == -1 && errno != ENOENT)
		log_warn("spool: unlink tmp/%s", tmp);
	errno = save;
fail:
	save = errno;
	if (fd != -1)
		(void)close(fd);
	free(buf);
	errno = save;
	return (-1);
}

static int
state_changed(struct spool_claim *c, int *changed)
{
	char	*buf;
	size_t	 len;

	if (envelope_state_encode(&c->env, &buf, &len) == -1)
		return (-1);
	*changed = len != c->state0len || memcmp(buf, c->state0, len) != 0;
	free(buf);
	return (0);
}

int
spool_claim_update(struct spool_claim *c)
{
	char	*buf;
	size_t	 len;

	c->has_state = 1;	/* even a failed write may leave one */
	if (write_state(c->sp, &c->env) == -1)
		return (-1);
	/* Refresh the claim's ctime: it is still alive. */
	if (futimens(c->fd, NULL) == -1)
		log_warn("%s: spool: futimens active/%s", c->env.id, c->name);
	if (envelope_state_encode(&c->env, &buf, &len) == -1)
		return (-1);
	free(c->state0);
	c->state0 = buf;
	c->state0len = len;
	return (0);
}

int
spool_unclaim(struct spool_claim *c)
{
	struct spool	*sp = c->sp;
	int		 changed, r = 0, save = 0;

	if (state_changed(c, &changed) == -1 ||
	    (changed && write_state(sp, &c->env) == -1)) {
		save = errno;
		log_warn("%s: spool: cannot save state", c->env.id);
		r = -1;
	}
	/* Finished recipients' copies leave the outage mailbox. */
	if (r == 0 && sp->has_mbox)
		maildir_release(sp, sp->fd[D_ACTIVE], c->name, c->env.id,
		    &c->env, 0, c->fin0);
	if (renameat(sp->fd[D_ACTIVE], c->name, sp->fd[D_QUEUE], c->env.id)
	    == -1) {
		save = errno;
		r = -1;
	}
	spool_claim_free(c);
	if (r == -1)
		errno = save;
	return (r);
}

int
spool_claim_remove(struct spool_claim *c)
{
	struct spool	*sp = c->sp;

	if (spool_claim_remove_nosync(c) == -1)
		return (-1);
	(void)spool_sync_removals(sp);
	return (0);
}

/*
 * No state is saved first: the unlink, durable once the directory is
 * fsync'd, is the record that the message is done (INTERNALS 4, 6).
 * The state file goes only after that fsync, so that a message that
 * comes back after a system crash comes back with its state; and only
 * where there may be one: none at the claim and none written since
 * means none exists (only the holder writes it).
 */
int
spool_claim_remove_nosync(struct spool_claim *c)
{
	struct spool	*sp = c->sp;
	int		 save;

	/* Its copies leave the outage mailbox before it leaves the spool. */
	if (sp->has_mbox)
		maildir_release(sp, sp->fd[D_ACTIVE], c->name, c->env.id,
		    &c->env, 1, NULL);
	if (unlinkat(sp->fd[D_ACTIVE], c->name, 0) == -1) {
		save = errno;
		spool_claim_free(c);
		errno = save;
		return (-1);
	}
	sp->unsynced++;
	if (c->has_state) {
		if (sp->nstale == sp->stalecap) {
			sp->stalecap = sp->stalecap ? sp->stalecap * 2 : 16;
			sp->stale_state = xreallocarray(sp->stale_state,
			    sp->stalecap, sizeof(*sp->stale_state));
		}
		memcpy(sp->stale_state[sp->nstale++], c->env.id,
		    QUEUE_ID_SIZE);
	}
	spool_claim_free(c);
	return (0);
}

/* One fsync of active/ for every removal since the last. */
int
spool_sync_removals(struct spool *sp)
{
	size_t	 i;
	int	 r = 0, save = 0;

	if (sp->unsynced == 0)
		return (0);
	if (fsync(sp->fd[D_ACTIVE]) == -1) {
		save = errno;
		log_warn("spool: fsync active/ after %zu removals",
		    sp->unsynced);
		r = -1;
	}
	for (i = 0; i < sp->nstale; i++)
		if (unlinkat(sp->fd[D_STATE], sp->stale_state[i], 0) == -1 &&
		    errno != ENOENT)
			log_warn("%s: spool: unlink state/%s",
			    sp->stale_state[i], sp->stale_state[i]);
	sp->unsynced = 0;
	sp->nstale = 0;
	if (r == -1)
		errno = save;
	return (r);
}

/* active/NAME to corrupt/ID, and its state file along. */
static void
move_to_corrupt(struct spool *sp, const char *name, const char *id)
{
	char	 st[QUEUE_ID_SIZE + 8];

	if (renameat(sp->fd[D_ACTIVE], name, sp->fd[D_CORRUPT], id) == -1) {
		log_warn("%s: spool: rename active/%s to corrupt/", id, name);
		return;
	}
	(void)bsnprintf(st, sizeof(st), "%s.state", id);
	if (renameat(sp->fd[D_STATE], id, sp->fd[D_CORRUPT], st) == -1 &&
	    errno != ENOENT)
		log_warn("%s: spool: rename state/%s to corrupt/", id, id);
	if (fsync(sp->fd[D_CORRUPT]) == -1)
		log_warn("%s: spool: fsync corrupt/", id);
}

int
spool_quarantine(struct spool_claim *c)
{
	struct spool	*sp = c->sp;
	char		 st[QUEUE_ID_SIZE + 8];
	int		 save;

	if (renameat(sp->fd[D_ACTIVE], c->name, sp->fd[D_CORRUPT], c->env.id)
	    == -1) {
		save = errno;
		spool_claim_free(c);
		errno = save;
		return (-1);
	}
	(void)bsnprintf(st, sizeof(st), "%s.state", c->env.id);
	if (renameat(sp->fd[D_STATE], c->env.id, sp->fd[D_CORRUPT], st) == -1 &&
	    errno != ENOENT)
		log_warn("%s: spool: rename state to corrupt/", c->env.id);
	if (fsync(sp->fd[D_CORRUPT]) == -1)
		log_warn("%s: spool: fsync corrupt/", c->env.id);
	spool_claim_free(c);
	return (0);
}

void
spool_claim_free(struct spool_claim *c)
{
	if (c == NULL)
		return;
	if (c->map != NULL && munmap(c->map, (size_t)c->msgsize) == -1)
		log_warn("spool: munmap");
	if (c->fd != -1)
		(void)close(c->fd);
	envelope_free(&c->env);
	free(c->copy);
	free(c->state0);
	free(c->fin0);
	free(c);
}

/* Queue surgery. */

/* One atomic step between queue/ and hold/, made durable. */
static int
move_message(struct spool *sp, const char *id, enum subdir from,
    enum subdir to)
{
	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return (-1);
	}
	if (renameat(sp->fd[from], id, sp->fd[to], id) == -1)
		return (-1);
	if (fsync(sp->fd[to]) == -1)
		return (-1);
	return (0);
}

int
spool_hold(struct spool *sp, const char *id)
{
	return (move_message(sp, id, D_QUEUE, D_HOLD));
}

int
spool_release(struct spool *sp, const char *id)
{
	return (move_message(sp, id, D_HOLD, D_QUEUE));
}

/*
 * The copies of a message being deleted (claimed as active/name) leave
 * the outage mailbox: their names come from its envelope.
 */
static void
delete_copies(struct spool *sp, const char *name, const char *id)
{
	struct envelope	 env;
	int		 fd, ok = 0;

	memset(&env, 0, sizeof(env));
	if ((fd = openat(sp->fd[D_ACTIVE], name, SPOOL_READ_FLAGS)) != -1) {
		ok = read_envelope_fd(fd, id, &env, NULL, NULL) == 0;
		(void)close(fd);
	}
	maildir_release(sp, sp->fd[D_ACTIVE], name, id, ok ? &env : NULL,
	    1, NULL);
	if (ok)
		envelope_free(&env);
}

int
spool_delete(struct spool *sp, const char *id)
{
	static const enum subdir from[] = { D_QUEUE, D_HOLD, D_CORRUPT };
	char	 name[NAME_MAX_LEN];
	char	 st[QUEUE_ID_SIZE + 8];
	size_t	 i;

	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return (-1);
	}
	if (claim_name(sp, id, name, sizeof(name)) == -1)
		return (-1);
	/* Claim it first, so that no flush is delivering it meanwhile. */
	for (i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
		if (renameat(sp->fd[from[i]], id, sp->fd[D_ACTIVE], name) == 0)
			break;
		if (errno != ENOENT)
			return (-1);
	}
	if (i == sizeof(from) / sizeof(from[0])) {
		errno = ENOENT;
		return (-1);
	}
	if (sp->has_mbox)
		delete_copies(sp, name, id);
	if (unlinkat(sp->fd[D_ACTIVE], name, 0) == -1)
		return (-1);
	if (fsync(sp->fd[D_ACTIVE]) == -1)
		log_warn("%s: spool: fsync active/", id);
	if (unlinkat(sp->fd[D_STATE], id, 0) == -1 && errno != ENOENT)
		log_warn("%s: spool: unlink state/%s", id, id);
	(void)bsnprintf(st, sizeof(st), "%s.state", id);
	if (from[i] == D_CORRUPT && unlinkat(sp->fd[D_CORRUPT], st, 0) == -1 &&
	    errno != ENOENT)
		log_warn("%s: spool: unlink corrupt/%s", id, st);
	return (0);
}

/* Crash recovery. */

/*
 * /proc/PID/stat read into buf; *fields points just after "pid (comm) ",
 * at the state letter (comm may hold anything: the last ')' ends it).
 */
static int
process_stat(pid_t pid, char *buf, size_t size, char **fields)
{
	char	 path[64];
	char	*p;
	ssize_t	 n;
	int	 fd;

	if (bsnprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid) == -1 ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return (-1);
	n = read(fd, buf, size - 1);
	(void)close(fd);
	if (n <= 0)
		return (-1);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ' || p[2] == '\0')
		return (-1);
	*fields = p + 2;
	return (0);
}

/*
 * Field 22 of /proc/PID/stat, from the fields process_stat found: when
 * the process started (clock ticks after boot).
 */
static int
stat_start(const char *p, unsigned long long *start)
{
	char		*end;
	int		 field;

	for (field = 3; field < 22 && p != NULL; field++)
		if ((p = strchr(p, ' ')) != NULL)
			p++;
	if (p == NULL)
		return (-1);
	errno = 0;
	*start = strtoull(p, &end, 10);
	if (errno != 0 || end == p || *start == 0)
		return (-1);
	return (0);
}

static int
process_start(pid_t pid, unsigned long long *start)
{
	char	 buf[1024];
	char	*p;

	if (process_stat(pid, buf, sizeof(buf), &p) == -1)
		return (-1);
	return (stat_start(p, start));
}

/*
 * A local claimer is gone when its pid no longer exists, is a zombie
 * (killed, not yet reaped by its parent: it will never touch the claim),
 * or, when the claim names the claimer's start time (start != 0), now
 * belongs to a process that started at another time: the claimer died
 * and its pid was reused, which would otherwise hold the message until
 * claim-timeout.  Start times are the kernel's ticks since boot: no
 * clock is compared with another.
 */
static int
process_gone(pid_t pid, unsigned long long start)
{
	unsigned long long now_start;
	char		 buf[1024];
	char		*p;

	/*
	 * EPERM: alive but another user's, which a pid reused by, say, a
	 * root process is to a claimer running as `user`: look closer.
	 */
	if (kill(pid, 0) == -1 && errno != EPERM)
		return (errno == ESRCH);
	if (process_stat(pid, buf, sizeof(buf), &p) == -1)
		return (0);
	if (p[0] == 'Z' || p[0] == 'X')
		return (1);
	return (start != 0 && stat_start(p, &now_start) == 0 &&
	    now_start != start);
}

/*
 * Is the claim NAME stale?  Yes when its process is known gone (this
 * host: see process_gone) or when it is older than timeout.  Fills id.
 */
static int
claim_is_stale(struct spool *sp, const char *name, time_t now,
    time_t timeout, char *id, size_t idsize)
{
	struct stat	 st;
	const char	*dot, *host, *dash;
	const char	*errstr;
	char		 num[32];
	long long	 pid;
	unsigned long long start = 0;
	size_t		 hlen, plen;

	if (strlen(name) <= QUEUE_ID_LEN + 1 || name[QUEUE_ID_LEN] != '.' ||
	    idsize < QUEUE_ID_SIZE)
		return (0);
	memcpy(id, name, QUEUE_ID_LEN);
	id[QUEUE_ID_LEN] = '\0';
	if (!queue_id_valid(id))
		return (0);
	host = name + QUEUE_ID_LEN + 1;
	if ((dot = strrchr(host, '.')) == NULL)
		return (0);
	hlen = (size_t)(dot - host);
	/* PID, or PID-START (the claimer's start time, see claim_name). */
	plen = (dash = strchr(dot + 1, '-')) != NULL ?
	    (size_t)(dash - dot - 1) : strlen(dot + 1);
	if (plen >= sizeof(num))
		return (0);
	memcpy(num, dot + 1, plen);
	num[plen] = '\0';
	pid = strtonum(num, 1, INT_MAX, &errstr);
	if (dash != NULL && errstr == NULL)
		start = (unsigned long long)strtonum(dash + 1, 1, LLONG_MAX,
		    &errstr);
	if (errstr == NULL && hlen == strlen(sp->host) &&
	    memcmp(host, sp->host, hlen) == 0 &&
	    process_gone((pid_t)pid, start))
		return (1);
	if (fstatat(sp->fd[D_ACTIVE], name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return (0);	/* gone meanwhile */
	return (now - st.st_ctime >= timeout);
}

/* active/NAME: a stale claim goes back to the queue. */
static void
recover_claim(struct spool *sp, const char *name, time_t now,
    time_t timeout)
{
	char	 id[QUEUE_ID_SIZE];

	if (!claim_is_stale(sp, name, now, timeout, id, sizeof(id)))
		return;
	if (renameat(sp->fd[D_ACTIVE], name, sp->fd[D_QUEUE], id) == -1) {
		if (errno != ENOENT)
			log_warn("%s: spool: recover active/%s", id, name);
		return;
	}
	log_info("%s: spool: stale claim %s returned to the queue", id, name);
}

/* tmp/NAME: a leftover older than TMP_MAX_AGE is removed. */
static void
recover_tmp(struct spool *sp, const char *name, time_t now)
{
	struct stat	 st;

	if (fstatat(sp->fd[D_TMP], name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    now - st.st_mtime < TMP_MAX_AGE)
		return;
	if (unlinkat(sp->fd[D_TMP], name, 0) == -1) {
		if (errno != ENOENT)
			log_warn("spool: unlink tmp/%s", name);
		return;
	}
	log_info("spool: removed old temporary file tmp/%s", name);
}

/*
 * state/NAME: removed when no message of that ID exists.  msgs (sorted,
 * NULL: not known) are the messages listed before the walk.
 */
static void
recover_state(struct spool *sp, const char *name, const struct entry *msgs,
    size_t nmsgs)
{
	struct entry	 key;
	int		 pass, found;

	if (!queue_id_valid(name))
		return;
	/* The common case: its message was listed. */
	memset(&key, 0, sizeof(key));
	memcpy(key.id, name, QUEUE_ID_LEN);
	if (msgs != NULL && bsearch(&key, msgs, nmsgs, sizeof(*msgs),
	    entry_id_cmp) != NULL)
		return;
	/*
	 * Look again, twice, active/ last each time, so that a message
	 * moving meanwhile is seen.
	 */
	for (found = 0, pass = 0; pass < 2 && !found; pass++)
		found = spool_exists(sp, name);
	if (found != 0)
		return;
	if (unlinkat(sp->fd[D_STATE], name, 0) == -1) {
		if (errno != ENOENT)
			log_warn("spool: unlink state/%s", name);
		return;
	}
	log_info("%s: spool: removed orphaned state file", name);
}

/*
 * Every message's ID (queue/, hold/, corrupt/), sorted, so that telling
 * orphaned state files from live ones costs no system call per message.
 * NULL on error: then each state file is checked on its own.
 */
static struct entry *
list_messages(struct spool *sp, size_t *nmsgs)
{
	struct entry	*msgs = NULL;
	size_t		 cap = 0;

	*nmsgs = 0;
	if (scan_dir(sp, D_QUEUE, &msgs, nmsgs, &cap) == -1 ||
	    scan_dir(sp, D_HOLD, &msgs, nmsgs, &cap) == -1 ||
	    scan_dir(sp, D_CORRUPT, &msgs, nmsgs, &cap) == -1) {
		log_warn("spool: listing messages");
		free(msgs);
		*nmsgs = 0;
		return (NULL);
	}
	if (*nmsgs > 1)
		qsort(msgs, *nmsgs, sizeof(*msgs), entry_id_cmp);
	return (msgs);
}

int
spool_recover(struct spool *sp, time_t timeout)
{
	static const enum subdir walk[] = { D_ACTIVE, D_TMP, D_STATE };
	DIR		*d;
	struct dirent	*de;
	struct entry	*msgs;
	time_t		 now;
	size_t		 w, nmsgs;
	int		 fd, r = 0;

	/*
	 * Compared with file times: time(2) reads the coarse clock, which
	 * can lag behind a ctime the file system just wrote.
	 */
	now_tv(&now, NULL);
	msgs = list_messages(sp, &nmsgs);
	for (w = 0; w < sizeof(walk) / sizeof(walk[0]); w++) {
		if ((fd = reopen_dir(sp, walk[w])) == -1) {
			log_warn("spool: %s/", subdir_names[walk[w]]);
			r = -1;
			continue;
		}
		if ((d = fdopendir(fd)) == NULL) {
			log_warn("spool: %s/", subdir_names[walk[w]]);
			(void)close(fd);
			r = -1;
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			if (walk[w] == D_ACTIVE)
				recover_claim(sp, de->d_name, now, timeout);
			else if (walk[w] == D_TMP)
				recover_tmp(sp, de->d_name, now);
			else
				recover_state(sp, de->d_name, msgs, nmsgs);
		}
		(void)closedir(d);
	}
	free(msgs);
	if (sp->has_mbox)
		maildir_recover(sp, now);
	return (r);
}

/* Per-domain notes and locks. */

/* domains/DOMAIN.SUFFIX for a plain host name; -1 EINVAL otherwise. */
static int
domain_file(const char *domain, const char *suffix, char *buf, size_t size)
{
	size_t	 i, len = strlen(domain);
	int	 c;

	if (len == 0 || len > 253 || domain[0] == '.' ||
	    strstr(domain, "..") != NULL) {
		errno = EINVAL;
		return (-1);
	}
	for (i = 0; i < len; i++) {
		c = (unsigned char)domain[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_')) {
			errno = EINVAL;
			return (-1);
		}
	}
	if (bsnprintf(buf, size, "%s.%s", domain, suffix) == -1)
		return (-1);
	(void)ascii_lower(buf);
	return (0);
}

int
spool_domain_note_write(struct spool *sp, const char *domain,
    const char *text)
{
	char	 name[300], tmp[400];
	int	 fd, save;

	if (domain_file(domain, "probe", name, sizeof(name)) == -1)
		return (-1);
	if (bsnprintf(tmp, sizeof(tmp), "%s.%s.%ld", name, sp->host,
	    (long)getpid()) == -1)
		return (-1);
	if ((fd = spool_private_create_temp(sp->fd[D_TMP], tmp)) == -1)
		return (-1);
	if (write_all(fd, text, strlen(text)) == -1 || fsync(fd) == -1) {
		save = errno;
		(void)close(fd);
		goto fail;
	}
	if (close(fd) == -1) {
		save = errno;
		goto fail;
	}
	if (renameat(sp->fd[D_TMP], tmp, sp->fd[D_DOMAINS], name) == -1) {
		save = errno;
		goto fail;
	}
	return (0);
fail:
	if (unlinkat(sp->fd[D_TMP], tmp, 0) == -1 && errno != ENOENT)
		log_warn("spool: unlink tmp/%s", tmp);
	errno = save;
	return (-1);
}

int
spool_domain_note_read(struct spool *sp, const char *domain, char **text,
    time_t *when)
{
	struct stat	 st;
	char		 name[300];
	char		*buf;
	int		 fd, save;

	if (domain_file(domain, "probe", name, sizeof(name)) == -1)
		return (-1);
	if ((fd = openat(sp->fd[D_DOMAINS], name, SPOOL_READ_FLAGS)) == -1)
		return (-1);
	if (fstat(fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EPERM;
		goto fail;
	}
	if (st.st_size > MAX_NOTE) {
		errno = EFBIG;
		goto fail;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	if (pread_all(fd, buf, (size_t)st.st_size, 0) == -1) {
		save = errno;
		free(buf);
		errno = save;
		goto fail;
	}
	buf[st.st_size] = '\0';
	(void)close(fd);
	*text = buf;
	if (when != NULL)
		*when = st.st_mtime;
	return (0);
fail:
	save = errno;
	(void)close(fd);
	errno = save;
	return (-1);
}

int
spool_domain_lock(struct spool *sp, const char *domain, int *fdp)
{
	return (lock_domain_file(sp, domain, "lock", fdp));
}

/*
 * One of SPOOL_CALLOUT_SLOTS flocked files, domains/DOMAIN.calloutN:
 * the first free one, or EWOULDBLOCK when every one is held.
 */
int
spool_callout_slot(struct spool *sp, const char *domain, int *fdp)
{
	char	 suffix[32];
	int	 i;

	for (i = 0; i < SPOOL_CALLOUT_SLOTS; i++) {
		(void)snprintf(suffix, sizeof(suffix), "callout%d", i);
		if (lock_domain_file(sp, domain, suffix, fdp) == 0)
			return (0);
		if (errno != EWOULDBLOCK)
			return (-1);
	}
	errno = EWOULDBLOCK;
	return (-1);
}

/* domains/DOMAIN.suffix, flocked without waiting. */
static int
lock_domain_file(struct spool *sp, const char *domain, const char *suffix,
    int *fdp)
{
	char	 name[300];

	if (domain_file(domain, suffix, name, sizeof(name)) == -1 ||
	    (*fdp = spool_private_lock_file(sp, name, 0)) == -1)
		return (-1);
	return (0);
}

int
spool_private_lock_file(struct spool *sp, const char *name, int wait)
{
	struct stat	 st;
	int		 fd, save;

	/*
	 * The lock file stays (it is only ever flocked): opened without
	 * following a link planted in its place, and only a regular file
	 * will do (a FIFO would not even lock).
	 */
	if ((fd = openat(sp->fd[D_DOMAINS], name, O_RDWR | O_CREAT |
	    O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600)) == -1)
		return (-1);
	if (fstat(fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		log_warnx("spool: domains/%s is not a regular file: refused",
		    name);
		errno = EPERM;
		goto fail;
	}
	while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) == -1)
		if (errno != EINTR || !wait)
			goto fail;
	return (fd);
fail:
	save = errno;
	(void)close(fd);
	errno = save;
	return (-1);
}

/* Decimal digits only, at most max of them. */
int
spool_private_parse_number(const char *v, size_t len, size_t max,
    uint64_t *out)
{
	uint64_t	 n = 0;
	size_t		 i;

	if (len == 0 || len > max)
		return (-1);
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return (-1);
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	*out = n;
	return (0);
}

/* For spool/listcache.c (spool_private.h). */

int
spool_private_domain_file(const char *domain, const char *suffix, char *buf,
    size_t size)
{
	return (domain_file(domain, suffix, buf, size));
}

int
spool_private_create_temp(int dirfd, const char *name)
{
	int	 fd, tries;

	for (tries = 0; tries < 2; tries++) {
		fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd != -1 || errno != EEXIST)
			return (fd);
		/*
		 * Left by a dead process with our pid, or planted (a link
		 * to elsewhere): the name goes, whatever it pointed to
		 * stays untouched.
		 */
		if (unlinkat(dirfd, name, 0) == -1 && errno != ENOENT)
			return (-1);
	}
	errno = EEXIST;
	return (-1);
}

void
spool_set_mailbox(struct spool *sp, const struct spool_mailbox *mb)
{
	free((char *)sp->mbox.dir);
	memset(&sp->mbox, 0, sizeof(sp->mbox));
	maildir_cache_free(sp->mbcache);
	sp->mbcache = NULL;
	sp->has_mbox = mb != NULL && mb->dir != NULL && mb->dir[0] != '\0';
	if (!sp->has_mbox)
		return;
	sp->mbox = *mb;
	sp->mbox.dir = xstrdup(mb->dir);
}

struct maildir_cache **
spool_private_mailbox_cache(struct spool *sp)
{
	return (&sp->mbcache);
}

const struct spool_mailbox *
spool_private_mailbox(struct spool *sp)
{
	return (sp->has_mbox ? &sp->mbox : NULL);
}

/* mailbox/ beside queue/, made on first use, checked as the others. */
int
spool_private_mailbox_dirfd(struct spool *sp)
{
	struct stat	 top;

	if (sp->mbox_fd != -1)
		return (sp->mbox_fd);
	if (fstat(sp->dirfd, &top) == -1)
		return (-1);
	sp->mbox_fd = open_subdir(sp->dirfd, sp->dir, "mailbox", top.st_uid);
	if (sp->mbox_fd != -1 || errno != ENOENT)
		goto out;
	if (mkdirat(sp->dirfd, "mailbox", 0700) == -1 && errno != EEXIST)
		goto out;
	if ((sp->mbox_fd = open_subdir(sp->dirfd, sp->dir, "mailbox",
	    top.st_uid)) != -1 && fsync(sp->dirfd) == -1) {
		(void)close(sp->mbox_fd);
		sp->mbox_fd = -1;
	}
out:
	if (sp->mbox_fd == -1)
		log_warn("spool %s: mailbox/", sp->dir);
	return (sp->mbox_fd);
}

int
spool_private_dirfd(struct spool *sp, enum subdir which)
{
	return (sp->fd[which]);
}

int
spool_private_rootfd(struct spool *sp)
{
	return (sp->dirfd);
}

const char *
spool_private_host(struct spool *sp)
{
	return (sp->host);
}

int
spool_private_walk_notes(struct spool *sp, const char *suffix, size_t size,
    int (*fn)(void *, const char *), void *arg)
{
	struct dirent	*de;
	DIR		*d;
	char		 name[NAME_MAX + 1];
	size_t		 len, slen = strlen(suffix);
	int		 fd, r = 0;

	if ((fd = openat(sp->fd[D_DOMAINS], ".", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1)
		return (-1);
	if ((d = fdopendir(fd)) == NULL) {
		(void)close(fd);
		return (-1);
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len <= slen || len - slen >= size ||
		    len - slen >= sizeof(name) ||
		    strcmp(de->d_name + len - slen, suffix) != 0)
			continue;
		memcpy(name, de->d_name, len - slen);
		name[len - slen] = '\0';
		r = fn(arg, name);
	}
	(void)closedir(d);
	return (r);
}
