/*
 * verify_db.c - the recipient database on LMDB (see verify_db.h).
 *
 * One environment per process, opened with MDB_NOSUBDIR (one file and
 * its -lock file) and MDB_NOTLS (a process may hold several read
 * transactions; a forked child opens its own).  Readers never block;
 * LMDB serialises writers.  Before LMDB maps the file, it is checked:
 * a link or other non-regular file at the path is never followed
 * (lstat; commands have switched to `user` by then anyway), one at the
 * -lock path (which LMDB creates following links) is removed, and after
 * opening, the file must be as long as its meta page says, so that a
 * truncated file is rebuilt instead of faulting (SIGBUS) when a page
 * past its end is read.  A file LMDB calls invalid or corrupt is
 * renamed aside (only if the path still names the same inode, so two
 * processes never both move a fresh file away), its -lock file removed,
 * and a fresh database created.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "spool/verify_db.h"

struct verify_db {
	MDB_env		*env;
	MDB_dbi		 dbi;
	MDB_dbi		 limits;	/* "limits" (verify_db_count), */
	int		 have_limits;	/* once opened */
	char		 path[1024];
	dev_t		 dev;		/* the file env_open found, */
	ino_t		 ino;		/* 0/0: none */
};

static int	 env_open(struct verify_db *, char *, size_t);
static int	 env_check_size(struct verify_db *);
static int	 rebuild(struct verify_db *, const char *, char *, size_t);
static int	 move_aside(const struct verify_db *, const char *);
static int	 corrupt_code(int);
static int	 put_be64(unsigned char *, int64_t);
static int64_t	 get_be64(const unsigned char *);
static int	 key_domain_matches(const char *, const char *);
static void	 unsound(struct verify_db *, int);
static int	 count_txn(struct verify_db *, const char *, time_t, time_t,
		    unsigned, unsigned *);
static void	 count_purge(MDB_txn *, MDB_dbi, const MDB_val *, time_t);

int
verify_fs_is_network(unsigned long f_type)
{
	static const unsigned long deny[] = {
		0x6969UL,	/* NFS */
		0x517bUL,	/* SMB */
		0xff534d42UL,	/* CIFS */
		0xfe534d42UL,	/* SMB2 */
		0x5346414fUL,	/* AFS (OpenAFS) */
		0x6b414653UL,	/* kAFS */
		0x73757245UL,	/* Coda */
		0x564cUL,	/* NCP */
		0x01021997UL,	/* 9P (v9fs) */
		0x00c36400UL,	/* Ceph */
		0x0bd00bd0UL,	/* Lustre */
		0x01161970UL,	/* GFS2 */
		0x7461636fUL,	/* OCFS2 */
		0x65735546UL	/* FUSE: sshfs, glusterfs, s3fs... */
	};
	size_t	 i;

	for (i = 0; i < sizeof(deny) / sizeof(deny[0]); i++)
		if ((f_type & 0xffffffffUL) == deny[i])
			return (1);
	return (0);
}

const char *
verify_verdict_name(enum verify_verdict v)
{
	return (v == VERIFY_VALID ? "valid" : "invalid");
}

const char *
verify_source_name(enum verify_source s)
{
	switch (s) {
	case VERIFY_SOURCE_FILE:
		return ("file");
	case VERIFY_SOURCE_CALLOUT:
		return ("callout");
	default:
		return ("delivery");
	}
}

int
verify_db_path(const char *spool, const char *setting, char *buf,
    size_t size)
{
	const char	*name = setting[0] != '\0' ? setting : "verify.lmdb";

	if (name[0] == '/') {
		if (strlcpy(buf, name, size) >= size)
			goto toolong;
		return (0);
	}
	if (bsnprintf(buf, size, "%s/%s", spool, name) == -1)
		goto toolong;
	return (0);
toolong:
	errno = ENAMETOOLONG;
	return (-1);
}

int
verify_db_key(const char *addr, char *key, size_t size)
{
	const char	*at = strrchr(addr, '@');
	size_t		 len = strlen(addr), i;

	if (at == NULL || at == addr || at[1] == '\0' ||
	    len > ADDRESS_PATH_MAX || len >= size) {
		errno = EINVAL;
		return (-1);
	}
	memcpy(key, addr, len + 1);
	for (i = (size_t)(at - addr) + 1; i < len; i++)
		if (key[i] >= 'A' && key[i] <= 'Z')
			key[i] = key[i] - 'A' + 'a';
	return (0);
}

static int
put_be64(unsigned char *p, int64_t v)
{
	uint64_t	 u = (uint64_t)v;
	int		 i;

	for (i = 7; i >= 0; i--, u >>= 8)
		p[i] = u & 0xff;
	return (8);
}

static int64_t
get_be64(const unsigned char *p)
{
	uint64_t	 u = 0;
	int		 i;

	for (i = 0; i < 8; i++)
		u = (u << 8) | p[i];
	return ((int64_t)u);
}

/*
 * Version 1: version, verdict, source, 0, since (big-endian signed 64
 * bits), expires (the same).
 */
void
verify_value_encode(const struct verify_entry *e,
    unsigned char out[VERIFY_VALUE_SIZE])
{
	out[0] = VERIFY_VALUE_VERSION;
	out[1] = (unsigned char)e->verdict;
	out[2] = (unsigned char)e->source;
	out[3] = 0;
	put_be64(out + 4, e->since);
	put_be64(out + 12, e->expires);
}

int
verify_value_decode(const unsigned char *p, size_t len,
    struct verify_entry *e)
{
	if (len != VERIFY_VALUE_SIZE || p[0] != VERIFY_VALUE_VERSION ||
	    (p[1] != VERIFY_VALID && p[1] != VERIFY_INVALID) ||
	    p[2] < VERIFY_SOURCE_FILE || p[2] > VERIFY_SOURCE_DELIVERY ||
	    p[3] != 0)
		goto bad;
	e->verdict = (enum verify_verdict)p[1];
	e->source = (enum verify_source)p[2];
	e->since = get_be64(p + 4);
	e->expires = get_be64(p + 12);
	if (e->since < 0 || e->expires < e->since)
		goto bad;
	return (0);
bad:
	errno = EBADMSG;
	return (-1);
}

/* LMDB's answers that mean the file is not a sound database. */
static int
corrupt_code(int rc)
{
	return (rc == MDB_INVALID || rc == MDB_CORRUPTED ||
	    rc == MDB_VERSION_MISMATCH || rc == MDB_PAGE_NOTFOUND);
}

/* Is the file as long as its last page?  0 yes, -1 no (or unknown). */
static int
env_check_size(struct verify_db *db)
{
	MDB_envinfo	 info;
	MDB_stat	 st;
	struct stat	 sb;
	int		 fd;

	if (mdb_env_info(db->env, &info) != 0 ||
	    mdb_env_stat(db->env, &st) != 0 ||
	    mdb_env_get_fd(db->env, &fd) != 0 || fstat(fd, &sb) == -1)
		return (-1);
	if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size <
	    ((uint64_t)info.me_last_pgno + 1) * st.ms_psize)
		return (-1);
	return (0);
}

/*
 * Open the environment at db->path.  Returns 0, -1 with errno for an
 * error that is not the file's fault, or 1 when the file is unsound;
 * err says why (without the path).
 */
static int
env_open(struct verify_db *db, char *err, size_t errsize)
{
	MDB_txn		*txn;
	struct stat	 sb, lsb;
	char		 lock[1100];
	int		 rc;

	db->have_limits = 0;
	db->dev = 0;
	db->ino = 0;
	if (lstat(db->path, &sb) == 0) {
		db->dev = sb.st_dev;
		db->ino = sb.st_ino;
	}
	/*
	 * LMDB opens FILE-lock with O_CREAT and follows links: a link or
	 * other non-regular file planted there goes first.
	 */
	if (bsnprintf(lock, sizeof(lock), "%s-lock", db->path) == -1) {
		snprintf(err, errsize, "path too long");
		errno = ENAMETOOLONG;
		return (-1);
	}
	if (lstat(lock, &lsb) == 0 && !S_ISREG(lsb.st_mode)) {
		if (unlink(lock) == -1) {
			snprintf(err, errsize, "%s: %s", lock, strerror(errno));
			return (-1);
		}
		log_warnx("verify-db %s: not a regular file, removed", lock);
	}
	if (db->ino != 0 && !S_ISREG(sb.st_mode)) {
		snprintf(err, errsize, "not a regular file");
		return (1);
	}
	if ((rc = mdb_env_create(&db->env)) != 0 ||
	    (rc = mdb_env_set_mapsize(db->env, VERIFY_DB_MAPSIZE)) != 0 ||
	    (rc = mdb_env_set_maxreaders(db->env, 1024)) != 0 ||
	    (rc = mdb_env_set_maxdbs(db->env, 1)) != 0) {
		snprintf(err, errsize, "%s", mdb_strerror(rc));
		goto fail;
	}
	rc = mdb_env_open(db->env, db->path, MDB_NOSUBDIR | MDB_NOTLS, 0600);
	if (rc != 0) {
		snprintf(err, errsize, "%s", mdb_strerror(rc));
		mdb_env_close(db->env);
		db->env = NULL;
		if (corrupt_code(rc))
			return (1);
		errno = rc > 0 ? rc : EIO;
		return (-1);
	}
	if (env_check_size(db) == -1) {
		snprintf(err, errsize, "shorter than its last page "
		    "(truncated)");
		mdb_env_close(db->env);
		db->env = NULL;
		return (1);
	}
	(void)mdb_reader_check(db->env, NULL);
	if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)) != 0) {
		snprintf(err, errsize, "%s", mdb_strerror(rc));
		goto fail_close;
	}
	rc = mdb_dbi_open(txn, NULL, 0, &db->dbi);
	mdb_txn_abort(txn);
	if (rc != 0) {
		snprintf(err, errsize, "%s", mdb_strerror(rc));
		goto fail_close;
	}
	return (0);
fail_close:
	mdb_env_close(db->env);
	db->env = NULL;
	if (corrupt_code(rc))
		return (1);
	errno = EIO;
	return (-1);
fail:
	if (db->env != NULL)
		mdb_env_close(db->env);
	db->env = NULL;
	errno = EIO;
	return (-1);
}

/*
 * Rename the file aside as PATH.corrupt-EPOCH and remove its -lock,
 * unless the path no longer names the file found unsound (another
 * process rebuilt it meanwhile): then the fresh one is left alone.
 */
static int
move_aside(const struct verify_db *db, const char *why)
{
	struct stat	 sb;
	char		 aside[1100], lock[1100];

	if (lstat(db->path, &sb) == -1)
		return (errno == ENOENT ? 0 : -1);
	if (sb.st_dev != db->dev || sb.st_ino != db->ino)
		return (0);
	if (bsnprintf(aside, sizeof(aside), "%s.corrupt-%lld", db->path,
	    (long long)time(NULL)) == -1 ||
	    bsnprintf(lock, sizeof(lock), "%s-lock", db->path) == -1) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	if (rename(db->path, aside) == -1 && errno != ENOENT)
		return (-1);
	/* Processes still holding the old file keep the old lock. */
	if (unlink(lock) == -1 && errno != ENOENT)
		return (-1);
	log_warnx("verify-db %s: %s: renamed to %s, a new one is made",
	    db->path, why, aside);
	return (0);
}

static int
rebuild(struct verify_db *db, const char *why, char *err, size_t errsize)
{
	char	 reason[512];

	if (db->env != NULL) {
		mdb_env_close(db->env);
		db->env = NULL;
	}
	strlcpy(reason, why, sizeof(reason));
	if (move_aside(db, reason) == -1) {
		snprintf(err, errsize, "cannot move it aside: %s",
		    strerror(errno));
		return (-1);
	}
	if (env_open(db, err, errsize) != 0) {
		if (errno == 0)
			errno = EIO;
		return (-1);
	}
	return (0);
}

int
verify_db_open(const char *path, int create, struct verify_db **out,
    char *err, size_t errsize)
{
	struct verify_db *db;
	struct statfs	 fs;
	struct stat	 sb;
	char		 dir[1024], why[1024], *slash;
	int		 rc, saved;

	*out = NULL;
	if (strlcpy(dir, path, sizeof(dir)) >= sizeof(dir)) {
		snprintf(err, errsize, "%s: path too long", path);
		errno = ENAMETOOLONG;
		return (-1);
	}
	if ((slash = strrchr(dir, '/')) == NULL)
		strlcpy(dir, ".", sizeof(dir));
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (statfs(dir, &fs) == -1) {
		snprintf(err, errsize, "%s: %s", dir, strerror(errno));
		return (-1);
	}
	if (verify_fs_is_network((unsigned long)fs.f_type)) {
		snprintf(err, errsize, "%s lies on a network file system "
		    "(type 0x%lx): LMDB's locks need a local one; point "
		    "verify-db at local disk", path,
		    (unsigned long)fs.f_type);
		errno = EREMOTE;
		return (-1);
	}
	if (!create && lstat(path, &sb) == -1) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return (-1);
	}
	db = xcalloc(1, sizeof(*db));
	if (strlcpy(db->path, path, sizeof(db->path)) >= sizeof(db->path)) {
		free(db);
		snprintf(err, errsize, "%s: path too long", path);
		errno = ENAMETOOLONG;
		return (-1);
	}
	errno = 0;
	if ((rc = env_open(db, err, errsize)) == 1)
		rc = rebuild(db, err, err, errsize);
	if (rc != 0) {
		saved = errno != 0 ? errno : EIO;
		strlcpy(why, err, sizeof(why));
		snprintf(err, errsize, "%s: %s", path, why);
		free(db);
		errno = saved;
		return (-1);
	}
	*out = db;
	return (0);
}

void
verify_db_close(struct verify_db *db)
{
	if (db == NULL)
		return;
	if (db->env != NULL)
		mdb_env_close(db->env);
	free(db);
}

/* LMDB said the file is unsound while in use: start afresh. */
static void
unsound(struct verify_db *db, int rc)
{
	char	 err[1024];

	if (rebuild(db, mdb_strerror(rc), err, sizeof(err)) == -1)
		log_warnx("verify-db %s: %s", db->path, err);
}

int
verify_db_lookup(struct verify_db *db, const char *addr, time_t now,
    struct verify_entry *e)
{
	char	 key[ADDRESS_PATH_MAX + 1];
	MDB_txn	*txn;
	MDB_val	 k, v;
	int	 rc, found = 0;

	if (verify_db_key(addr, key, sizeof(key)) == -1)
		return (0);
	if (db->env == NULL)
		return (0);
	if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)) != 0)
		goto fail;
	k.mv_data = key;
	k.mv_size = strlen(key);
	rc = mdb_get(txn, db->dbi, &k, &v);
	if (rc == 0 && verify_value_decode(v.mv_data, v.mv_size, e) == 0 &&
	    e->expires > (int64_t)now) {
		strlcpy(e->addr, key, sizeof(e->addr));
		found = 1;
	}
	mdb_txn_abort(txn);
	if (rc == 0 || rc == MDB_NOTFOUND)
		return (found);
fail:
	log_warnx("verify-db %s: lookup: %s", db->path, mdb_strerror(rc));
	if (corrupt_code(rc))
		unsound(db, rc);
	return (0);
}

int
verify_db_put(struct verify_db *db, const char *addr,
    enum verify_verdict verdict, enum verify_source source, time_t now,
    time_t ttl)
{
	struct verify_put	 p;

	p.addr = addr;
	p.verdict = verdict;
	p.source = source;
	p.ttl = ttl;
	return (verify_db_put_many(db, &p, 1, now));
}

int
verify_db_put_many(struct verify_db *db, const struct verify_put *p,
    size_t n, time_t now)
{
	struct verify_entry e;
	unsigned char	 val[VERIFY_VALUE_SIZE];
	char		 key[ADDRESS_PATH_MAX + 1];
	MDB_txn		*txn;
	MDB_val		 k, v;
	size_t		 i;
	int		 rc;

	for (i = 0; i < n; i++)
		if (verify_db_key(p[i].addr, key, sizeof(key)) == -1)
			return (-1);
	if (db->env == NULL) {
		errno = EIO;
		return (-1);
	}
	if (n == 0)
		return (0);
	if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0)
		goto fail;
	for (i = 0; i < n; i++) {
		(void)verify_db_key(p[i].addr, key, sizeof(key));
		memset(&e, 0, sizeof(e));
		e.verdict = p[i].verdict;
		e.source = p[i].source;
		e.since = now;
		e.expires = (int64_t)now + (p[i].ttl > 0 ? p[i].ttl : 0);
		verify_value_encode(&e, val);
		k.mv_data = key;
		k.mv_size = strlen(key);
		v.mv_data = val;
		v.mv_size = sizeof(val);
		if ((rc = mdb_put(txn, db->dbi, &k, &v, 0)) != 0) {
			mdb_txn_abort(txn);
			goto fail;
		}
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	return (0);
fail:
	log_warnx("verify-db %s: cannot remember %zu verdict%s: %s",
	    db->path, n, n == 1 ? "" : "s", mdb_strerror(rc));
	if (corrupt_code(rc))
		unsound(db, rc);
	errno = rc == MDB_MAP_FULL ? ENOSPC : EIO;
	return (-1);
}

int
verify_db_forget(struct verify_db *db, const char *addr)
{
	char	 key[ADDRESS_PATH_MAX + 1];
	MDB_txn	*txn;
	MDB_val	 k;
	int	 rc;

	if (verify_db_key(addr, key, sizeof(key)) == -1)
		return (-1);
	if (db->env == NULL) {
		errno = EIO;
		return (-1);
	}
	if ((rc = mdb_txn_begin(db->env, NULL, 0, &txn)) != 0)
		goto fail;
	k.mv_data = key;
	k.mv_size = strlen(key);
	rc = mdb_del(txn, db->dbi, &k, NULL);
	if (rc == MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return (0);
	}
	if (rc != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	return (1);
fail:
	log_warnx("verify-db %s: cannot forget <%s>: %s", db->path, key,
	    mdb_strerror(rc));
	if (corrupt_code(rc))
		unsound(db, rc);
	errno = EIO;
	return (-1);
}

/* Does the key's domain (after its last '@') equal domain? */
static int
key_domain_matches(const char *key, const char *domain)
{
	const char	*at = strrchr(key, '@');

	return (at != NULL && address_domain_match(at + 1, domain));
}

int
verify_db_walk(struct verify_db *db, const char *domain, time_t now,
    int (*fn)(const struct verify_entry *, void *), void *arg)
{
	struct verify_entry e;
	MDB_txn		*txn;
	MDB_cursor	*cur;
	MDB_val		 k, v;
	int		 rc, stop = 0;

	if (db->env == NULL)
		return (0);
	if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)) != 0)
		goto fail;
	if ((rc = mdb_cursor_open(txn, db->dbi, &cur)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && !stop;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		memset(&e, 0, sizeof(e));
		if (k.mv_size == 0 || k.mv_size >= sizeof(e.addr) ||
		    verify_value_decode(v.mv_data, v.mv_size, &e) == -1)
			continue;
		memcpy(e.addr, k.mv_data, k.mv_size);
		e.addr[k.mv_size] = '\0';
		if (strlen(e.addr) != k.mv_size)
			continue;
		if (e.expires <= (int64_t)now)
			continue;
		if (domain != NULL && !key_domain_matches(e.addr, domain))
			continue;
		stop = fn(&e, arg);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc != 0 && rc != MDB_NOTFOUND && !stop)
		goto fail;
	return (0);
fail:
	log_warnx("verify-db %s: walk: %s", db->path, mdb_strerror(rc));
	if (corrupt_code(rc))
		unsound(db, rc);
	errno = EIO;
	return (-1);
}

/*
 * The counters of submission (issue 16) live in the named database
 * "limits" of the same environment, apart from the recipients: value
 * version 1, three zero octets, the count (big-endian 32 bits), the end
 * of its window (big-endian signed 64 bits).
 */
void
verify_count_encode(unsigned count, int64_t expires,
    unsigned char out[VERIFY_COUNT_SIZE])
{
	out[0] = VERIFY_VALUE_VERSION;
	out[1] = out[2] = out[3] = 0;
	out[4] = (count >> 24) & 0xff;
	out[5] = (count >> 16) & 0xff;
	out[6] = (count >> 8) & 0xff;
	out[7] = count & 0xff;
	put_be64(out + 8, expires);
}

int
verify_count_decode(const unsigned char *p, size_t len, unsigned *count,
    int64_t *expires)
{
	if (len != VERIFY_COUNT_SIZE || p[0] != VERIFY_VALUE_VERSION ||
	    p[1] != 0 || p[2] != 0 || p[3] != 0 || get_be64(p + 8) < 0) {
		errno = EBADMSG;
		return (-1);
	}
	*count = ((unsigned)p[4] << 24) | ((unsigned)p[5] << 16) |
	    ((unsigned)p[6] << 8) | p[7];
	*expires = get_be64(p + 8);
	return (0);
}

/*
 * Remove up to a few expired counters after key, so that the addresses
 * of clients that failed once do not pile up: every write pays a little.
 */
static void
count_purge(MDB_txn *txn, MDB_dbi dbi, const MDB_val *key, time_t now)
{
	MDB_cursor	*cur;
	MDB_val		 k = *key, v;
	unsigned	 n;
	int64_t		 exp;
	int		 i, rc;

	if (mdb_cursor_open(txn, dbi, &cur) != 0)
		return;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	for (i = 0; i < 4 && rc == 0; i++) {
		if (verify_count_decode(v.mv_data, v.mv_size, &n, &exp) == -1 ||
		    exp <= (int64_t)now)
			(void)mdb_cursor_del(cur, 0);
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
}

/* verify_db_count in one write transaction (add) or a read one. */
static int
count_txn(struct verify_db *db, const char *key, time_t now, time_t window,
    unsigned add, unsigned *count)
{
	unsigned char	 val[VERIFY_COUNT_SIZE];
	MDB_txn		*txn;
	MDB_val		 k, v;
	int64_t		 exp;
	int		 rc;

	*count = 0;
	if ((rc = mdb_txn_begin(db->env, NULL, add || !db->have_limits ? 0 :
	    MDB_RDONLY, &txn)) != 0)
		return (rc);
	if (!db->have_limits) {
		if ((rc = mdb_dbi_open(txn, "limits", MDB_CREATE,
		    &db->limits)) != 0) {
			mdb_txn_abort(txn);
			return (rc);
		}
	}
	k.mv_data = (void *)(uintptr_t)key;
	k.mv_size = strlen(key);
	exp = (int64_t)now + window;
	rc = mdb_get(txn, db->limits, &k, &v);
	if (rc == 0 && verify_count_decode(v.mv_data, v.mv_size, count,
	    &exp) == 0 && exp > (int64_t)now)
		;	/* the window goes on */
	else if (rc == 0 || rc == MDB_NOTFOUND) {
		*count = 0;
		exp = (int64_t)now + window;
	} else {
		mdb_txn_abort(txn);
		return (rc);
	}
	if (add == 0 && db->have_limits) {
		mdb_txn_abort(txn);
		return (0);
	}
	*count = *count > UINT32_MAX - add ? UINT32_MAX : *count + add;
	if (add > 0) {
		verify_count_encode(*count, exp, val);
		v.mv_data = val;
		v.mv_size = sizeof(val);
		if ((rc = mdb_put(txn, db->limits, &k, &v, 0)) != 0) {
			mdb_txn_abort(txn);
			return (rc);
		}
		count_purge(txn, db->limits, &k, now);
	}
	/*
	 * A counter is not worth two fsyncs: without the meta page's, a
	 * crash may undo the last commit but never breaks the file.
	 */
	(void)mdb_env_set_flags(db->env, MDB_NOMETASYNC, 1);
	rc = mdb_txn_commit(txn);
	(void)mdb_env_set_flags(db->env, MDB_NOMETASYNC, 0);
	if (rc != 0)
		return (rc);
	db->have_limits = 1;
	return (0);
}

int
verify_db_count(struct verify_db *db, const char *key, time_t now,
    time_t window, unsigned add, unsigned *count)
{
	int	 rc;

	*count = 0;
	if (db->env == NULL) {
		errno = EIO;
		return (-1);
	}
	if ((rc = count_txn(db, key, now, window, add, count)) == 0)
		return (0);
	log_warnx("verify-db %s: counter %s: %s", db->path, key,
	    mdb_strerror(rc));
	if (corrupt_code(rc))
		unsound(db, rc);
	errno = rc == MDB_MAP_FULL ? ENOSPC : EIO;
	return (-1);
}
