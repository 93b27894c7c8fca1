/*
 * spool_private.h - what the spool's own files share and nobody else may
 * use: read flags, batched reads, the cache hook, directory descriptors
 * (spool/INTERNALS).  The state encoding is the model's
 * (core/mail/envelope.h).
 */
#ifndef MXFB_SPOOL_PRIVATE_H
#define MXFB_SPOOL_PRIVATE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * Every file in the spool is opened for reading with these: never
 * through a symbolic link, and never waiting on a FIFO planted there
 * (O_NONBLOCK changes nothing for a regular file).
 */
#define SPOOL_READ_FLAGS	(O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)

/*
 * Batched reads for spool_foreach (spool/uring.c): for each item, the
 * last SPOOL_TAIL bytes of dirfd/name and its size, and the first
 * SPOOL_TAIL bytes of state_dirfd/name (state_dirfd -1: none wanted).
 * Results are byte counts or -errno; descriptors are all closed again.
 */
#define SPOOL_TAIL	4096
#define SPOOL_BATCH_MAX	64

struct spool_batch_item {
	int		 dirfd;		/* in */
	int		 state_dirfd;	/* in */
	const char	*name;		/* in */
	int		 fd;		/* open result (fd, closed) or -errno */
	int		 stat_res;	/* 0 or -errno */
	int		 state_fd;	/* likewise for the state file */
	int64_t		 size;		/* the file's size */
	int64_t		 tail_off;	/* where tail starts in it */
	int		 tail_len;	/* bytes read or -errno */
	int		 state_len;	/* bytes read or -errno */
	char		 tail[SPOOL_TAIL];
	char		 state[SPOOL_TAIL];
};

struct spool_batch;
/* -1 when the kernel (or a seccomp filter) offers no io_uring. */
int	 spool_batch_new(struct spool_batch **);
void	 spool_batch_free(struct spool_batch *);
/* -1 when the ring itself failed: free it, read the slow way. */
int	 spool_batch_read(struct spool_batch *, struct spool_batch_item *,
	    size_t);
/*
 * spool_foreach with envelopes from elsewhere (spool/listcache.c): for
 * each message, in ID order, has() says whether get() will provide it
 * (its files are then not read); get() returns 1 with env filled (its
 * memory stays the provider's; the walk sets held and claimed from
 * where the message is now), 0 or -1 when the files must be read after
 * all.
 */
struct envelope;
struct spool;
struct spool_cache_hook {
	void	*ctx;
	int	(*has)(void *, const char *id);
	int	(*get)(void *, const char *id, struct envelope *);
};
int	 spool_foreach_cached(struct spool *, const struct spool_cache_hook *,
	    int (*)(const struct envelope *, void *), void *);

/*
 * The spool's directories (spool/INTERNALS, section 1), and for
 * spool/listcache.c the descriptors and host name of an open spool.
 */
enum subdir {
	D_TMP, D_QUEUE, D_HOLD, D_ACTIVE, D_STATE, D_CORRUPT, D_DOMAINS,
	D_COUNT
};
int	 spool_private_dirfd(struct spool *, enum subdir);
/*
 * Each file of domains/ named NAME + suffix (NAME shorter than size):
 * fn(arg, NAME) until it returns non-zero, which is returned; -1 when
 * the directory cannot be read.
 */
int	 spool_private_walk_notes(struct spool *, const char *suffix,
	    size_t size, int (*fn)(void *, const char *), void *arg);
int	 spool_private_rootfd(struct spool *);
/*
 * domains/name, a lock file (made, a regular file, never through a
 * link), flocked LOCK_EX, waiting for it with wait: its descriptor, or
 * -1 (EWOULDBLOCK without wait when another holds it).
 */
int	 spool_private_lock_file(struct spool *, const char *name, int wait);
/* The decimal number len bytes at v (digits only, at most max): 0, or -1. */
int	 spool_private_parse_number(const char *v, size_t len, size_t max,
	    uint64_t *);
const char *spool_private_host(struct spool *);
/*
 * A new temp file dirfd/name, mode 0600: O_EXCL and O_NOFOLLOW, so that
 * nothing planted under that name (a link) is ever written through; a
 * name left over is removed first.  The descriptor, or -1.
 */
int	 spool_private_create_temp(int dirfd, const char *name);
/*
 * domains/ name DOMAIN.SUFFIX of a plain host name, lower case; -1
 * EINVAL for anything else (spool.h, the per-domain records).
 */
int	 spool_private_domain_file(const char *domain, const char *suffix,
	    char *buf, size_t size);

/*
 * The outage mailbox (spool/maildir.c): the spool's settings (NULL:
 * none), the index directory mailbox/ (made on first use; -1 on
 * error, logged), and what spool.c calls when a message's claim ends
 * (all: every copy leaves, else those of recipients env says are
 * finished, but for those skip marks (finished already when claimed:
 * their copies left then; NULL: none); env, when given, also names the
 * copies and tells whether any recipient has one; msgdirfd/msgname:
 * the message file to lock, or -1/NULL) and at recovery.
 */
struct spool_mailbox;
const struct spool_mailbox *spool_private_mailbox(struct spool *);
int	 spool_private_mailbox_dirfd(struct spool *);
void	 maildir_release(struct spool *, int msgdirfd, const char *msgname,
	    const char *id, const struct envelope *env, int all,
	    const unsigned char *skip);
void	 maildir_recover(struct spool *, time_t now);
/*
 * Receive's copies, made inside its commit (spool_writer_commit): once
 * the message file msgfd is written (whole, in tmp/), maildir_stage
 * writes and fsyncs each marked recipient's copy in its tmp/ (NULL: no
 * copy to make; a copy that fails is logged and noted owed); once the
 * message is in queue/ (its file locked), maildir_publish renames them
 * into new/ and frees the batch; when the commit fails,
 * maildir_discard frees it, unlinking the copies when unlink_copies
 * (else they stay owed, for flush).  The users' Maildirs stay open in
 * the spool handle's cache (freed by maildir_cache_free).
 */
struct maildir_batch;
struct maildir_cache;
struct maildir_batch *maildir_stage(struct spool *, const struct envelope *,
	    int msgfd);
void	 maildir_publish(struct spool *, const struct envelope *,
	    struct maildir_batch *);
void	 maildir_discard(struct maildir_batch *, int unlink_copies);
struct maildir_cache **spool_private_mailbox_cache(struct spool *);
void	 maildir_cache_free(struct maildir_cache *);
/* A Maildir++ maildirsize's byte total (spool/maildir.c; fuzzed). */
int	 maildir_quota_parse(const char *, size_t, int64_t *bytes,
	    int64_t *count);
#endif
