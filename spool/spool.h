/*
 * spool.h - the spool: the only code that knows spool paths and file
 * formats.  Life cycle, file layout and crash recovery: spool/INTERNALS.
 * What it stores, the mail model (queue IDs, envelopes, recipient
 * states), is core/mail/'s, included here.
 *
 * Conventions: functions return 0 on success and -1 with errno set on
 * failure.  ENOENT from a claim means "not there any more, or someone
 * else has it"; ENOSPC/EDQUOT mean the file system is full.
 */
#ifndef MXFB_SPOOL_H
#define MXFB_SPOOL_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/mail/envelope.h"
#include "core/util.h"

struct sockaddr;
struct spool;

/*
 * Open (and with create, make) the spool directory tree.  dir itself may
 * be reached through a symbolic link (it is the administrator's); its
 * subdirectories are opened without following one, and each must be a
 * directory owned by dir's owner that neither group nor others can
 * write, as dir itself: otherwise -1 with ELOOP (a link) or EPERM, the
 * reason logged.  Everything in the tree is then reached relative to
 * those descriptors.
 */
int	 spool_open(const char *dir, int create, struct spool **);
/*
 * Make dir (mode 0700, missing parents 0755) when it is missing and hand
 * it to uid:gid: for a process started as root that then gives up root
 * (the user makes the subdirectories).  It appears already uid's (made
 * aside, renamed into place), so that commands started together never
 * find it root's.  0 also when it existed already.
 */
int	 spool_create_dir(const char *dir, uid_t uid, gid_t gid);
void	 spool_close(struct spool *);
/* 1 when dir still names the directory sp was opened at, else 0 (-1). */
int	 spool_is_at(struct spool *, const char *dir);

/*
 * Writing a new message: begin (creates a file in tmp/ and picks the
 * ID), write the message bytes (CRLF, not dot-stuffed), commit.
 * Commit computes size and checksum, stores the envelope with the
 * message in the same file, fsyncs it, renames it into the queue and
 * fsyncs the directory: one durable commit.  Only after commit returns
 * 0 may a 250 be sent.  abort (or any failure) unlinks the temp file.
 * commit (and commit_as) always consume the writer, success or not: do
 * not call abort after them.  After a failed write the writer is dead
 * (its temp file gone): only abort may follow.  commit sets env->id,
 * env->size and env->checksum; it needs at least one recipient.
 */
struct spool_writer;
int	 spool_writer_begin(struct spool *, struct spool_writer **,
	    char id[QUEUE_ID_SIZE]);
int	 spool_writer_write(struct spool_writer *, const void *, size_t);
int	 spool_writer_commit(struct spool_writer *, struct envelope *);
/*
 * Commit under a caller-chosen valid ID instead of the writer's (for
 * idempotent DSNs: the same original gives the same DSN ID).  Fails with
 * EEXIST, leaving nothing behind, when a message with that ID is already
 * anywhere in the spool (queued, held, claimed or quarantined).  The
 * final step is link() into the queue, which cannot replace a file.
 * Like commit, it frees the writer whatever the outcome.
 */
int	 spool_writer_commit_as(struct spool_writer *, struct envelope *,
	    const char *id);
void	 spool_writer_abort(struct spool_writer *);
/*
 * Put bytes made from the whole message before it (DKIM signing at
 * acceptance): fn gets the message so far and may set *pre (malloc'd)
 * and *prelen; 0 with nothing set changes nothing.  fn's -1 is returned
 * as is (the writer lives on); a failure of the spool's kills the writer
 * (errno set), as spool_writer_write's does.
 */
typedef int (*spool_prepend_fn)(const void *msg, size_t len, void *arg,
    char **pre, size_t *prelen);
int	 spool_writer_prepend(struct spool_writer *, spool_prepend_fn, void *);

/* 1 if a message with that ID is queued, held, claimed or quarantined,
 * 0 if not, -1 on error. */
int	 spool_exists(struct spool *, const char *id);

/* Free bytes available to us on the spool's file system. */
int	 spool_free_bytes(struct spool *, uint64_t *);

/*
 * Visit every message in arrival (ID) order: queued, held and claimed
 * ones alike.  The envelope (with state merged in) is valid only during
 * the call; fn returning non-zero stops the walk and is returned.
 * Memory stays bounded: only names are kept, envelopes are read one at
 * a time (in io_uring batches where the kernel allows).  A listing is a
 * snapshot: act on a message by claiming it and deciding again on the
 * envelope the claim returns.  Messages that vanish meanwhile are
 * skipped; unreadable ones are skipped with a warning.
 */
int	 spool_foreach(struct spool *,
	    int (*fn)(const struct envelope *, void *), void *);

/*
 * The listing status shows: the same walk, but from the spool's
 * status.cache when queue/, hold/, active/ and state/ are exactly as
 * they were when a full walk wrote it (spool/listcache.c).  Envelopes
 * it hands out carry only id, arrival, size, sender, held, claimed,
 * next_retry and per recipient addr, state, attempts and last_error:
 * for display, never for delivery decisions.
 */
int	 spool_list(struct spool *,
	    int (*fn)(const struct envelope *, void *), void *);
/* How many messages corrupt/ holds (quarantined: never delivered). */
int	 spool_count_corrupt(struct spool *, uint64_t *);

/* Read one message's envelope (with state) without claiming it. */
int	 spool_read_envelope(struct spool *, const char *id, struct envelope *);
/* Open the message bytes read-only (for status -b); caller closes. */
int	 spool_open_message(struct spool *, const char *id, int *fd,
	    uint64_t *size);

/*
 * Claiming: only the holder of a claim changes a message's state or
 * delivers it.  spool_claim renames the message into the claim area (an
 * atomic step, safe between processes and between hosts on NFS).  A
 * claim left by a dead process is recovered by spool_recover().
 */
struct spool_claim;
/*
 * ENOENT: not queued (gone, held, or claimed by someone else).
 * EBADMSG: its envelope or state is unreadable; the spool has already
 * moved it to corrupt/ (logged) and there is no claim to free.
 */
int	 spool_claim(struct spool *, const char *id, struct spool_claim **);
struct envelope *spool_claim_envelope(struct spool_claim *);
/*
 * The message bytes (mapped read-only, or for a small message the copy
 * read with the envelope), checksum verified: -1 with errno EBADMSG on
 * mismatch (the caller then calls spool_quarantine).
 */
int	 spool_claim_message(struct spool_claim *, const unsigned char **,
	    size_t *);
/* Store the claim's envelope state durably (write temp, fsync, rename). */
int	 spool_claim_update(struct spool_claim *);
/*
 * unclaim, remove and quarantine end the claim: it is freed whatever
 * they return.  ENOENT from them means the claim had been taken away
 * (recovered as stale by another process after claim_timeout).
 */
/* Give the message back to the queue (state saved first if changed). */
int	 spool_unclaim(struct spool_claim *);
/* Done with it: remove message and state (durable on return). */
int	 spool_claim_remove(struct spool_claim *);
/*
 * The same in two steps, so that many removals share one fsync of the
 * claim directory (that fsync is the cost of a removal).  remove_nosync
 * unlinks the message at once: it is gone for every process, and a
 * process killed afterwards re-delivers nothing; only a system crash
 * before the next spool_sync_removals (or spool_close) can bring it
 * back (INTERNALS 6).  Its state file is removed by that sync.  The
 * claim is freed whatever the outcome.
 */
int	 spool_claim_remove_nosync(struct spool_claim *);
int	 spool_sync_removals(struct spool *);
/* Move a corrupt message to corrupt/: never delivered, and never
 * deleted but by spool_delete. */
int	 spool_quarantine(struct spool_claim *);
/* Free a claim without touching files (after a failed operation). */
void	 spool_claim_free(struct spool_claim *);

/*
 * Queue surgery by ID; ENOENT if there is no such (unclaimed) message.
 * delete also removes a quarantined message.  EINVAL: not a queue ID.
 */
int	 spool_hold(struct spool *, const char *id);
int	 spool_release(struct spool *, const char *id);
int	 spool_delete(struct spool *, const char *id);

/*
 * Crash recovery, run by flush and bounce before work: stale claims back
 * to the queue (dead local process, or older than claim_timeout), tmp/
 * leftovers older than a day removed, orphaned state files removed.
 */
int	 spool_recover(struct spool *, time_t claim_timeout);

/*
 * Per-domain records kept in the spool: the last successful probe of a
 * domain's primary (one small text, replaced atomically), and a lock so
 * that at most one flush per domain runs at a time (ETRN, probe -F).
 * spool_domain_note_read allocates *text (free it) and gives the time
 * the note was written; ENOENT: none yet.  Domains are plain host names
 * (letters, digits, '-', '_', '.'; no leading '.', no ".."), compared
 * without case; anything else is EINVAL.  spool_domain_lock returns 0
 * and an fd to close to release it, or -1 with errno EWOULDBLOCK when
 * another process holds it.
 */
int	 spool_domain_note_write(struct spool *, const char *domain,
	    const char *text);
int	 spool_domain_note_read(struct spool *, const char *domain, char **text,
	    time_t *when);
int	 spool_domain_lock(struct spool *, const char *domain, int *fd);
/*
 * Callouts to a domain's primary at once, across processes (receive's
 * recipient verification): a slot is one of SPOOL_CALLOUT_SLOTS flocked
 * files domains/DOMAIN.calloutN.  0 and an fd to close to free it, or -1
 * with errno EWOULDBLOCK when every slot is taken.
 */
#define SPOOL_CALLOUT_SLOTS	8
int	 spool_callout_slot(struct spool *, const char *domain, int *fd);

/*
 * The primary record: one per domain, what the backup last learnt about
 * the domain's primary MX (spool/INTERNALS, section 11).  probe and flush
 * observe, receive reads it at RCPT, status shows it.
 *
 * spool_primary_observe records one observation: "up" (obs->up 1)
 * replaces host and the EHLO capabilities and sets last_up to checked;
 * "down" keeps last_up, host and the capabilities of the record before
 * (those of the last successful EHLO).  since is when the state began:
 * kept from the record before while up or down stays the same, checked
 * when it changes; reason (a down's why, printable ASCII, cut to fit)
 * is cleared by an up.  checked 0 means now.  Written
 * atomically (temp file, fsync, rename) under a short lock between
 * writers; readers never wait and see one whole record or the one before.
 * EINVAL: a bad domain, or a host or source that would not read back.
 *
 * spool_primary_read fills *obs: 0, or -1 with errno ENOENT (nothing
 * known), EINVAL (bad domain), EBADMSG (a garbled record), or that of a
 * failed open or read (ELOOP: a link).  The record replaces probe's old
 * note in the same file (domains/DOMAIN.probe); a note an older mxfb
 * wrote reads as "up" at its time, with its host and EHLO keywords,
 * source "note", until the first observation rewrites it; a record
 * without "since" reads with since = checked.
 *
 * spool_primary_walk calls fn for each domain with a readable record
 * (domains/DOMAIN.probe; others are skipped), in no order; fn returning
 * non-zero stops the walk and is returned; -1 when domains/ cannot be
 * read.
 *
 * spool_primary_parse and spool_primary_format are the record's text
 * (for tests and the fuzz target): parse accepts what format writes
 * (unknown "key=value" lines skipped) and the old note, -1 EBADMSG for
 * anything else.
 */
#define PRIMARY_SOURCE_SIZE	16
#define PRIMARY_REASON_SIZE	64
#define PRIMARY_RECORD_MAX	1024
struct primary_obs {
	int		 up;		/* the last observation: 1 up, 0 down */
	time_t		 checked;	/* when it was made */
	time_t		 last_up;	/* the last "up"; 0: never */
	char		 host[DOMAIN_NAME_SIZE];	/* last up, or "" */
	char		 source[PRIMARY_SOURCE_SIZE];	/* probe, flush... */
	int		 have_ehlo;	/* the four below were seen in EHLO */
	uint64_t	 size_max;	/* EHLO SIZE; 0: no limit given */
	int		 smtputf8;
	int		 eightbitmime;
	int		 dsn;
	time_t		 since;		/* when the state (up/down) began */
	char		 reason[PRIMARY_REASON_SIZE];	/* down: why, or "" */
};
int	 spool_primary_observe(struct spool *, const char *domain,
	    const struct primary_obs *);
int	 spool_primary_read(struct spool *, const char *domain,
	    struct primary_obs *);
int	 spool_primary_parse(const char *, size_t, struct primary_obs *);
int	 spool_primary_format(const struct primary_obs *, char *, size_t);
int	 spool_primary_walk(struct spool *, int (*fn)(void *, const char *,
	    const struct primary_obs *), void *);

/*
 * The host note (spool/INTERNALS, section 13): what flush last learnt
 * about one next-hop host, an address and a port, named by KEY
 * ("127.0.0.2_25", "::1_25": hex digits, '.', ':', '_' only).  A host
 * that refused, timed out or did not greet with 2xx is down until retry
 * (back-off from retry_min doubling per failure in a row up to
 * retry_max); an up clears the failures.  spool_host_observe reads,
 * changes and replaces the note under a lock and gives the note written
 * (out may be NULL); spool_host_read gives ENOENT when there is none,
 * EBADMSG for anything malformed; spool_host_walk calls fn for each
 * readable note, fn's non-zero stops it and is returned.
 */
#define HOST_KEY_SIZE	64
struct host_note {
	char		 key[HOST_KEY_SIZE];
	int		 up;		/* the last observation */
	time_t		 time;		/* when it was made */
	time_t		 since;		/* when the current state began */
	time_t		 retry;		/* down: not tried before (0: up) */
	unsigned	 failures;	/* downs in a row */
	char		 host[DOMAIN_NAME_SIZE];	/* the MX name used */
	char		 reason[256];	/* a down's why, printable ASCII */
};
int	 spool_host_observe(struct spool *, const char *key, int up,
	    const char *host, const char *reason, time_t retry_min,
	    time_t retry_max, struct host_note *out);
int	 spool_host_read(struct spool *, const char *key, struct host_note *);
/* The KEY of an address with its port. */
void	 spool_host_key(const struct sockaddr *, char *, size_t);
int	 spool_host_parse(const char *, size_t, struct host_note *);
/* The note's text (parse reads it back); -1 when it does not fit. */
int	 spool_host_format(const struct host_note *, char *, size_t);
int	 spool_host_walk(struct spool *, int (*fn)(void *,
	    const struct host_note *), void *);

/*
 * The outage mailbox (spool/INTERNALS, section 12): with one set, each
 * recipient marked `mailbox` gets a copy of the message in the Maildir
 * DIR/DOMAIN/LOCALPART/ under a name derived from the envelope (queue
 * ID, recipient index, size).  spool_writer_commit makes them as part
 * of the commit (after the message's fsync, published once it is in
 * queue/); spool_mailbox_copy makes the copies still owed (flush after
 * its claim).  The spool removes a recipient's copy
 * (or, with keep, moves it into the Maildir++ folder .Delivered) once
 * the recipient is finished and the claim ends (unclaim, remove), and
 * every copy of a deleted message.  spool_recover removes copies the
 * previous version listed for messages that left without it (a crash)
 * and, with keep, .Delivered copies older than keep.  dir is copied.
 * Failures are logged, never returned: the copy is owed again.
 */
struct spool_mailbox {
	const char	*dir;
	uint64_t	 max_size;	/* per user */
	time_t		 keep;		/* 0: remove at once */
};
void	 spool_set_mailbox(struct spool *, const struct spool_mailbox *);
void	 spool_mailbox_copy(struct spool *, const struct envelope *);
/*
 * The copies of env's recipients still waiting (marked, not finished):
 * fn gets each one's address and the copy's path (NULL: none, over
 * mailbox-max-size); with locate, the path where the copy is now (new/
 * or cur/ with its flags) and found 1, 2 when it is still owed (not
 * made yet: flush makes it), or 0 when it is in neither (the user moved
 * or deleted it); without, found is -1 and the path the one it was
 * given.  env needs only id, size and the recipients' addr, state and
 * mailbox (spool_list's do).  fn returning non-zero stops the walk and
 * is returned.  0 without a mailbox or copies; -1 when the spool's
 * record of them is unreadable.
 */
int	 spool_mailbox_list(struct spool *, const struct envelope *,
	    int locate,
	    int (*fn)(void *, const char *addr, const char *path, int found),
	    void *);

#endif
