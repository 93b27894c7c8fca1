/*
 * listcache.c - spool_list(): the listing `status` shows, from a cache
 * file when the queue has not changed since it was written.
 *
 * A full listing opens and reads every message file and state file:
 * at 100,000 messages that is 200,000 opens, most of a second of kernel
 * time.  Yet an administrator typically runs status again and again on
 * a queue that only grows while the primary is down and changes
 * everywhere only when flush runs.  So the listing a full scan produced
 * is kept in the spool's status.cache, together with what identifies
 * the four directories it came from (queue/, hold/, active/, state/:
 * device, inode, size, mtime, ctime), and the next listing uses it only
 * when all four are still exactly the same.
 *
 * Why that is safe: every change the spool makes to what a listing
 * shows is a rename, link or unlink in one of those directories (files
 * are written once and never modified in place; state changes are a
 * rename into state/; claims, holds, releases and deletions move or
 * unlink names), and each such step updates the directory's mtime and
 * ctime.  The one hole is a change within the same clock tick as the
 * time stamp recorded (file system time stamps are coarse), so a cache
 * is written only when every directory's time stamps are over a second
 * older than the start of the scan, and only when the directories are
 * identical before and after it (nothing moved meanwhile).
 *
 * Guarantees: the cache is an accelerator, never a source of truth: it
 * is written like every spool file (temp, fsync, rename), it carries a
 * BLAKE2b hash of its records that is checked before anything from it
 * is shown, and any doubt (other format, other directories, short file,
 * bad hash, NFS, MXFB_NO_STATUS_CACHE set) means a full scan.  Failing
 * to write it (read-only spool, disk full) is silent.  Only status uses
 * it: flush and bounce always read the messages themselves.  Memory
 * stays bounded: records are streamed through one buffer.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#define CACHE_NAME	"status.cache"
#define CACHE_MAGIC	"MXFBLC2\n"
#define MAILBOX_BIT	0x100	/* in a recipient's state: marked `mailbox` */
#define CACHE_HASH_LEN	16
#define CACHE_BUF	(256 * 1024)
#define CACHE_NDIRS	4
#define CACHE_MIN	1000	/* smaller listings are not worth a cache */
#define NFS_MAGIC	0x6969
#define NO_STRING	UINT32_MAX

struct dir_key {
	uint64_t	 dev, ino, size;
	int64_t		 mtime_sec, mtime_nsec, ctime_sec, ctime_nsec;
};

struct cache_header {
	char		 magic[8];
	struct dir_key	 dirs[CACHE_NDIRS];
	uint64_t	 records;
	uint64_t	 length;	/* bytes of records after the header */
	unsigned char	 hash[CACHE_HASH_LEN];
};

struct cache_writer {
	crypto_generichash_state hash;	/* first: needs 64-byte alignment */
	struct spool	*sp;
	int		 fd;		/* -1: no temp file (yet) */
	int		 failed;	/* writing stopped: nothing is kept */
	char		 tmp[128];	/* "": no temp file made */
	char		*buf;
	size_t		 len;
	uint64_t	 records, length;
	int		 (*fn)(const struct envelope *, void *);
	void		*arg;
};

static int	 dirs_key(struct spool *, struct dir_key *);
static int	 keys_trusted(const struct dir_key *, time_t);
static uint64_t	 cache_min(void);
static int	 record_decode(const char *, size_t, struct envelope *,
		    struct recipient **, size_t *);
static void	 writer_start(struct spool *, struct cache_writer *,
		    int (*)(const struct envelope *, void *), void *);
static int	 writer_record(const struct envelope *, void *);
static void	 writer_flush(struct cache_writer *);
static void	 writer_finish(struct cache_writer *, const struct dir_key *);

static const enum subdir list_dirs[CACHE_NDIRS] = {
	D_QUEUE, D_HOLD, D_ACTIVE, D_STATE
};
#define CACHE_STATE	3	/* list_dirs[3] */

static int
dirs_key(struct spool *sp, struct dir_key *k)
{
	struct stat	 st;
	int		 i;

	memset(k, 0, sizeof(*k) * CACHE_NDIRS);
	for (i = 0; i < CACHE_NDIRS; i++) {
		if (fstat(spool_private_dirfd(sp, list_dirs[i]), &st) == -1)
			return (-1);
		k[i].dev = (uint64_t)st.st_dev;
		k[i].ino = (uint64_t)st.st_ino;
		k[i].size = (uint64_t)st.st_size;
		k[i].mtime_sec = (int64_t)st.st_mtim.tv_sec;
		k[i].mtime_nsec = (int64_t)st.st_mtim.tv_nsec;
		k[i].ctime_sec = (int64_t)st.st_ctim.tv_sec;
		k[i].ctime_nsec = (int64_t)st.st_ctim.tv_nsec;
	}
	return (0);
}

/*
 * Listings of fewer messages than this (MXFB_STATUS_CACHE_MIN, default
 * CACHE_MIN) are not cached: they are read in milliseconds anyway.
 */
static uint64_t
cache_min(void)
{
	const char	*s, *errstr;
	long long	 n;

	if ((s = getenv("MXFB_STATUS_CACHE_MIN")) == NULL)
		return (CACHE_MIN);
	n = strtonum(s, 0, LLONG_MAX, &errstr);
	return (errstr == NULL ? (uint64_t)n : CACHE_MIN);
}

/* Every time stamp over a second before the scan began. */
static int
keys_trusted(const struct dir_key *k, time_t start)
{
	int	 i;

	for (i = 0; i < CACHE_NDIRS; i++)
		if (k[i].mtime_sec >= (int64_t)start - 1 ||
		    k[i].ctime_sec >= (int64_t)start - 1)
			return (0);
	return (1);
}

/*
 * Writing.  Records go to a buffer; the temp file is made only when the
 * buffer fills or the listing is kept, so that a small queue (below
 * cache_min) costs no file at all.  Any failure (disk full...) only
 * stops the writing: the listing goes on.
 */

static void
writer_stop(struct cache_writer *w)
{
	if (w->fd != -1)
		(void)close(w->fd);
	w->fd = -1;
	w->failed = 1;
}

/* The temp file, with room for the header (written last). */
static void
writer_open(struct cache_writer *w)
{
	struct cache_header h;

	if (w->fd != -1 || w->failed)
		return;
	(void)bsnprintf(w->tmp, sizeof(w->tmp), "%s.%s.%ld", CACHE_NAME,
	    spool_private_host(w->sp), (long)getpid());
	w->fd = spool_private_create_temp(spool_private_dirfd(w->sp, D_TMP),
	    w->tmp);
	if (w->fd == -1) {
		w->failed = 1;
		return;
	}
	memset(&h, 0, sizeof(h));
	if (write_all(w->fd, &h, sizeof(h)) == -1)
		writer_stop(w);
}

static void
writer_write(struct cache_writer *w, const void *p, size_t n)
{
	writer_open(w);
	if (w->failed)
		return;
	crypto_generichash_update(&w->hash, p, n);
	if (write_all(w->fd, p, n) == -1)
		writer_stop(w);
	w->length += n;
}

static void
writer_flush(struct cache_writer *w)
{
	if (w->len > 0)
		writer_write(w, w->buf, w->len);
	w->len = 0;
}

static void
put(struct cache_writer *w, const void *p, size_t n)
{
	if (w->len + n > CACHE_BUF)
		writer_flush(w);
	if (w->failed)
		return;
	if (n > CACHE_BUF)
		writer_write(w, p, n);	/* bigger than the buffer */
	else {
		memcpy(w->buf + w->len, p, n);
		w->len += n;
	}
}

static void
put_u32(struct cache_writer *w, uint32_t v)
{
	put(w, &v, sizeof(v));
}

static void
put_u64(struct cache_writer *w, uint64_t v)
{
	put(w, &v, sizeof(v));
}

static void
put_str(struct cache_writer *w, const char *s)
{
	size_t	 n;

	if (s == NULL) {
		put_u32(w, NO_STRING);
		return;
	}
	n = strlen(s);
	put_u32(w, (uint32_t)n);
	put(w, s, n + 1);
}

static size_t
str_size(const char *s)
{
	return (sizeof(uint32_t) + (s != NULL ? strlen(s) + 1 : 0));
}

/*
 * Record: u32 length of what follows; the ID; u32 flags (1 held,
 * 2 claimed); u64 arrival, size, next-retry; sender; u32 recipients;
 * per recipient u32 state (0x100: marked `mailbox`), u32 attempts,
 * address, last error.  Strings
 * are u32 length (NO_STRING: NULL) and the bytes with their NUL.
 * Native byte order: the cache never leaves this host (not on NFS).
 */
static int
writer_record(const struct envelope *env, void *arg)
{
	struct cache_writer *w = arg;
	const struct recipient *r;
	size_t		 i, len;

	if (w->failed)
		return (w->fn(env, w->arg));
	len = QUEUE_ID_LEN + 2 * sizeof(uint32_t) + 3 * sizeof(uint64_t) +
	    str_size(env->sender);
	for (i = 0; i < env->nrcpts; i++)
		len += 2 * sizeof(uint32_t) + str_size(env->rcpts[i].addr) +
		    str_size(env->rcpts[i].last_error);
	if (len >= UINT32_MAX) {
		writer_stop(w);
		return (w->fn(env, w->arg));
	}
	put_u32(w, (uint32_t)len);
	put(w, env->id, QUEUE_ID_LEN);
	put_u32(w, (env->held ? 1U : 0U) | (env->claimed ? 2U : 0U));
	put_u64(w, (uint64_t)env->arrival);
	put_u64(w, env->size);
	put_u64(w, (uint64_t)env->next_retry);
	put_str(w, env->sender);
	put_u32(w, (uint32_t)env->nrcpts);
	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		put_u32(w, (uint32_t)r->state |
		    (r->mailbox ? MAILBOX_BIT : 0));
		put_u32(w, (uint32_t)r->attempts);
		put_str(w, r->addr);
		put_str(w, r->last_error);
	}
	w->records++;
	return (w->fn(env, w->arg));
}

static void
writer_start(struct spool *sp, struct cache_writer *w,
    int (*fn)(const struct envelope *, void *), void *arg)
{
	memset(w, 0, sizeof(*w));
	w->sp = sp;
	w->fd = -1;
	w->fn = fn;
	w->arg = arg;
	w->buf = xmalloc(CACHE_BUF);
	crypto_generichash_init(&w->hash, NULL, 0, CACHE_HASH_LEN);
}

/*
 * key: the walk saw these directories unchanged throughout, and old
 * enough, and listed enough messages: header, fsync, rename into place.
 * NULL (or any failure): whatever was written goes.
 */
static void
writer_finish(struct cache_writer *w, const struct dir_key *key)
{
	struct cache_header h;
	int		 ok;

	if (key == NULL)
		writer_stop(w);
	writer_flush(w);
	writer_open(w);		/* a listing that fitted in the buffer */
	if (!w->failed) {
		memset(&h, 0, sizeof(h));
		memcpy(h.magic, CACHE_MAGIC, sizeof(h.magic));
		memcpy(h.dirs, key, sizeof(h.dirs));
		h.records = w->records;
		h.length = w->length;
		crypto_generichash_final(&w->hash, h.hash, sizeof(h.hash));
		ok = pwrite(w->fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
		    fsync(w->fd) == 0;
		if (close(w->fd) == -1)
			ok = 0;
		w->fd = -1;
		if (ok && renameat(spool_private_dirfd(w->sp, D_TMP), w->tmp,
		    spool_private_rootfd(w->sp), CACHE_NAME) == 0)
			goto done;
		w->failed = 1;
	}
	writer_stop(w);
	if (w->tmp[0] != '\0')
		(void)unlinkat(spool_private_dirfd(w->sp, D_TMP), w->tmp, 0);
done:
	free(w->buf);
	w->buf = NULL;
}

/* Decoding, bounds-checked although the hash was: never trust a file. */

static int
get(const char **p, const char *end, void *v, size_t n)
{
	if ((size_t)(end - *p) < n)
		return (-1);
	memcpy(v, *p, n);
	*p += n;
	return (0);
}

static int
get_str(const char **p, const char *end, char **s)
{
	uint32_t	 n;

	if (get(p, end, &n, sizeof(n)) == -1)
		return (-1);
	if (n == NO_STRING) {
		*s = NULL;
		return (0);
	}
	if ((size_t)(end - *p) <= n || (*p)[n] != '\0' ||
	    memchr(*p, '\0', n) != NULL)
		return (-1);
	*s = (char *)(uintptr_t)*p;
	*p += n + 1;
	return (0);
}

static int
record_decode(const char *p, size_t len, struct envelope *env,
    struct recipient **rcpts, size_t *rcap)
{
	const char	*end = p + len;
	uint64_t	 arrival, size, next;
	uint32_t	 flags, n, state, attempts, i;

	memset(env, 0, sizeof(*env));
	if (get(&p, end, env->id, QUEUE_ID_LEN) == -1)
		return (-1);
	env->id[QUEUE_ID_LEN] = '\0';
	if (!queue_id_valid(env->id) ||
	    get(&p, end, &flags, sizeof(flags)) == -1 ||
	    get(&p, end, &arrival, sizeof(arrival)) == -1 ||
	    get(&p, end, &size, sizeof(size)) == -1 ||
	    get(&p, end, &next, sizeof(next)) == -1 ||
	    get_str(&p, end, &env->sender) == -1 ||
	    get(&p, end, &n, sizeof(n)) == -1)
		return (-1);
	/* Each recipient takes at least 16 bytes: n is bounded by len. */
	if (n > len / 16)
		return (-1);
	if (n > *rcap) {
		*rcpts = xreallocarray(*rcpts, n, sizeof(**rcpts));
		*rcap = n;
	}
	env->held = (flags & 1) != 0;
	env->claimed = (flags & 2) != 0;
	env->arrival = (time_t)arrival;
	env->size = size;
	env->next_retry = (time_t)next;
	env->rcpts = *rcpts;
	env->nrcpts = n;
	for (i = 0; i < n; i++) {
		memset(&env->rcpts[i], 0, sizeof(env->rcpts[i]));
		if (get(&p, end, &state, sizeof(state)) == -1 ||
		    get(&p, end, &attempts, sizeof(attempts)) == -1 ||
		    (state & ~MAILBOX_BIT) > RCPT_FAILED ||
		    attempts > INT32_MAX ||
		    get_str(&p, end, &env->rcpts[i].addr) == -1 ||
		    get_str(&p, end, &env->rcpts[i].last_error) == -1)
			return (-1);
		env->rcpts[i].mailbox = (state & MAILBOX_BIT) != 0;
		env->rcpts[i].state = (enum rcpt_state)(state & ~MAILBOX_BIT);
		env->rcpts[i].attempts = (int)attempts;
	}
	return (p == end ? 0 : -1);
}

/*
 * A validated cache file, read through a window: window() returns the
 * file's bytes [off, off + n), valid until the next call.
 */
struct cache_file {
	int		 fd;
	struct cache_header h;
	uint64_t	 size;
	char		*buf;
	size_t		 cap;
	uint64_t	 wpos;
	size_t		 wlen;
	/* Where has() and get() are in the records (incremental listing). */
	struct cursor {
		uint64_t	 off;		/* next record's length field */
		char		 last[QUEUE_ID_LEN];	/* ID before it */
		int		 bad;		/* out of order: stop */
	}		 has, get;
	struct recipient *rcpts;
	size_t		 rcap;
};

static const char *
window(struct cache_file *cf, uint64_t off, size_t n)
{
	ssize_t	 r;
	size_t	 want;

	if (off >= cf->wpos && off - cf->wpos + n <= cf->wlen)
		return (cf->buf + (off - cf->wpos));
	if (off > cf->size || n > cf->size - off)
		return (NULL);
	if (n > cf->cap) {
		cf->buf = xreallocarray(cf->buf, 1, n);
		cf->cap = n;
	}
	want = cf->cap;
	if (want > cf->size - off)
		want = (size_t)(cf->size - off);
	if ((r = pread(cf->fd, cf->buf, want, (off_t)off)) < 0 ||
	    (size_t)r < n)
		return (NULL);
	cf->wpos = off;
	cf->wlen = (size_t)r;
	return (cf->buf);
}

static void
cache_close(struct cache_file *cf)
{
	if (cf->fd != -1)
		(void)close(cf->fd);
	free(cf->buf);
	free(cf->rcpts);
	memset(cf, 0, sizeof(*cf));
	cf->fd = -1;
}

/* Open status.cache and check magic, length and hash: 0 when sound. */
static int
cache_open(struct spool *sp, struct cache_file *cf)
{
	crypto_generichash_state hs;
	unsigned char	 hash[CACHE_HASH_LEN];
	struct stat	 st;
	const char	*p;
	uint64_t	 off;
	size_t		 n;

	memset(cf, 0, sizeof(*cf));
	cf->fd = openat(spool_private_rootfd(sp), CACHE_NAME, SPOOL_READ_FLAGS);
	if (cf->fd == -1)
		return (-1);
	if (pread(cf->fd, &cf->h, sizeof(cf->h), 0) != (ssize_t)sizeof(cf->h) ||
	    memcmp(cf->h.magic, CACHE_MAGIC, sizeof(cf->h.magic)) != 0 ||
	    fstat(cf->fd, &st) == -1 ||
	    (uint64_t)st.st_size != sizeof(cf->h) + cf->h.length)
		goto bad;
	cf->size = (uint64_t)st.st_size;
	cf->cap = CACHE_BUF;
	cf->buf = xmalloc(cf->cap);
	crypto_generichash_init(&hs, NULL, 0, sizeof(hash));
	for (off = sizeof(cf->h); off < cf->size; off += n) {
		n = cf->size - off < CACHE_BUF ? (size_t)(cf->size - off) :
		    CACHE_BUF;
		if ((p = window(cf, off, n)) == NULL)
			goto bad;
		crypto_generichash_update(&hs, (const unsigned char *)p, n);
	}
	crypto_generichash_final(&hs, hash, sizeof(hash));
	if (sodium_memcmp(hash, cf->h.hash, sizeof(hash)) != 0)
		goto bad;
	return (0);
bad:
	cache_close(cf);
	return (-1);
}

/* The record at off: its length and its bytes; NULL when malformed. */
static const char *
record_at(struct cache_file *cf, uint64_t off, uint32_t *len)
{
	const char	*p;

	if ((p = window(cf, off, sizeof(*len))) == NULL)
		return (NULL);
	memcpy(len, p, sizeof(*len));
	return (window(cf, off + sizeof(*len), *len));
}

static void
cache_damaged(struct spool *sp)
{
	log_warnx("spool: %s is damaged; removed", CACHE_NAME);
	(void)unlinkat(spool_private_rootfd(sp), CACHE_NAME, 0);
	errno = EBADMSG;
}

/*
 * Every record to fn.  fn's value when it stops the walk, 0 when all
 * were shown, -1 (EBADMSG) when a record is malformed (impossible short
 * of a bug: the hash was checked).
 */
static int
cache_stream(struct spool *sp, struct cache_file *cf,
    int (*fn)(const struct envelope *, void *), void *arg)
{
	struct envelope	 env;
	const char	*p;
	uint64_t	 off, records = 0;
	uint32_t	 len;
	int		 rc;

	for (off = sizeof(cf->h); off < cf->size;
	    off += sizeof(len) + (uint64_t)len) {
		if ((p = record_at(cf, off, &len)) == NULL ||
		    record_decode(p, len, &env, &cf->rcpts, &cf->rcap) == -1) {
			cache_damaged(sp);
			return (-1);
		}
		records++;
		if ((rc = fn(&env, arg)) != 0)
			return (rc);
	}
	if (records != cf->h.records) {
		cache_damaged(sp);
		return (-1);
	}
	return (0);
}

/*
 * The walk asks has() and get() about IDs in increasing order, and the
 * records are in increasing ID order (the hash was checked): each keeps
 * a cursor that only moves forward, instead of an index of every record
 * in memory.  Finds the record of id: 1 and its offset, 0 when there is
 * none (or the records are out of order: then never again).
 */
static int
cursor_find(struct cache_file *cf, struct cursor *cur, const char *id,
    uint64_t *off)
{
	const char	*p;
	uint32_t	 len;
	int		 c;

	if (cur->off == 0)
		cur->off = sizeof(cf->h);
	while (!cur->bad && cur->off < cf->size) {
		if ((p = window(cf, cur->off, sizeof(len) + QUEUE_ID_LEN)) ==
		    NULL)
			break;
		memcpy(&len, p, sizeof(len));
		p += sizeof(len);
		if (len < QUEUE_ID_LEN || (cur->off > sizeof(cf->h) &&
		    memcmp(p, cur->last, QUEUE_ID_LEN) <= 0))
			break;
		if ((c = memcmp(p, id, QUEUE_ID_LEN)) == 0) {
			*off = cur->off;
			return (1);
		}
		if (c > 0)
			return (0);
		memcpy(cur->last, p, QUEUE_ID_LEN);
		cur->off += sizeof(len) + (uint64_t)len;
	}
	cur->bad = 1;
	return (0);
}

static int
cursor_has(void *ctx, const char *id)
{
	struct cache_file *cf = ctx;
	uint64_t	 off;

	return (cursor_find(cf, &cf->has, id, &off));
}

static int
cursor_get(void *ctx, const char *id, struct envelope *env)
{
	struct cache_file *cf = ctx;
	const char	*p;
	uint64_t	 off;
	uint32_t	 len;

	if (!cursor_find(cf, &cf->get, id, &off))
		return (0);
	if ((p = record_at(cf, off, &len)) == NULL ||
	    record_decode(p, len, env, &cf->rcpts, &cf->rcap) == -1 ||
	    memcmp(env->id, id, QUEUE_ID_LEN) != 0)
		return (-1);
	return (1);
}

int
spool_list(struct spool *sp, int (*fn)(const struct envelope *, void *),
    void *arg)
{
	struct spool_cache_hook hook;
	struct cache_writer w;
	struct cache_file cf;
	struct dir_key	 before[CACHE_NDIRS], after[CACHE_NDIRS];
	struct statfs	 sf;
	time_t		 start;
	int		 r, save, have = 0;

	if (getenv("MXFB_NO_STATUS_CACHE") != NULL ||
	    fstatfs(spool_private_rootfd(sp), &sf) == -1 ||
	    sf.f_type == NFS_MAGIC || dirs_key(sp, before) == -1)
		return (spool_foreach(sp, fn, arg));

	memset(&hook, 0, sizeof(hook));
	if (cache_open(sp, &cf) == 0) {
		/* Nothing changed: the cache is the listing. */
		if (memcmp(cf.h.dirs, before, sizeof(before)) == 0) {
			r = cache_stream(sp, &cf, fn, arg);
			save = errno;
			cache_close(&cf);
			errno = save;
			return (r);
		}
		/*
		 * Messages came, went or moved, but no state file changed:
		 * every message the cache lists shows what it showed then
		 * (its file never changes); only the others are read.
		 */
		if (memcmp(&cf.h.dirs[CACHE_STATE], &before[CACHE_STATE],
		    sizeof(before[CACHE_STATE])) == 0) {
			hook.ctx = &cf;
			hook.has = cursor_has;
			hook.get = cursor_get;
		}
		have = 1;
	}

	now_tv(&start, NULL);
	writer_start(sp, &w, fn, arg);
	r = spool_foreach_cached(sp, hook.ctx != NULL ? &hook : NULL,
	    writer_record, &w);
	save = errno;
	writer_finish(&w, r == 0 && dirs_key(sp, after) == 0 &&
	    memcmp(before, after, sizeof(before)) == 0 &&
	    keys_trusted(before, start) && w.records >= cache_min() ?
	    before : NULL);
	if (have)
		cache_close(&cf);
	errno = save;
	return (r);
}
