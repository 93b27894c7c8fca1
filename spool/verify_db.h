/*
 * verify_db.h - the recipient database (issue 14): what this host knows
 * about recipients, one LMDB file (verify-db, default SPOOL/verify.lmdb,
 * plus its -lock file).  Address -> verdict, source, since, expires.
 *
 * Keys are the address with its domain lower-cased; the local part is
 * kept as given (RFC 5321 2.4: only the primary may fold it).  Values
 * are a fixed 20-byte, versioned encoding (verify_value_encode).
 *
 * Guarantees: many readers at once while one writer writes (LMDB's own
 * lock; readers never block); an expired entry is a miss; a corrupt,
 * truncated or foreign file is renamed aside as FILE.corrupt-EPOCH,
 * logged, and a fresh one made: never fatal, lookups then miss; a full
 * map makes put fail (logged), nothing else.  A database on a network
 * file system is refused (errno EREMOTE).  Functions return -1 with
 * errno set on failure.
 */
#ifndef MXFB_VERIFY_DB_H
#define MXFB_VERIFY_DB_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/mail/address.h"

#define VERIFY_DB_MAPSIZE	(64UL * 1024 * 1024)
#define VERIFY_VALUE_SIZE	20
#define VERIFY_VALUE_VERSION	1

enum verify_verdict {
	VERIFY_VALID = 1,
	VERIFY_INVALID = 2
};

enum verify_source {
	VERIFY_SOURCE_FILE = 1,		/* the recipients file */
	VERIFY_SOURCE_CALLOUT = 2,	/* the primary asked at RCPT */
	VERIFY_SOURCE_DELIVERY = 3	/* learned by flush */
};

struct verify_entry {
	char			 addr[ADDRESS_PATH_MAX + 1]; /* the key */
	enum verify_verdict	 verdict;
	enum verify_source	 source;
	int64_t			 since;		/* when it was learned */
	int64_t			 expires;	/* a miss from then on */
};

struct verify_db;

/*
 * The file for setting (verify-db, "" = the default): an absolute path
 * as it is, a relative one relative to the spool directory.
 */
int	 verify_db_path(const char *spool, const char *setting, char *buf,
	    size_t size);
/*
 * Open (with create, make a missing file, mode 0600).  Refuses a
 * network file system (EREMOTE) with the reason in err.
 */
int	 verify_db_open(const char *path, int create, struct verify_db **,
	    char *err, size_t errsize);
void	 verify_db_close(struct verify_db *);
/* 1 and *e filled when known and unexpired at now, 0 when not, -1. */
int	 verify_db_lookup(struct verify_db *, const char *addr, time_t now,
	    struct verify_entry *);
/* Remember addr for ttl seconds from now. */
int	 verify_db_put(struct verify_db *, const char *addr,
	    enum verify_verdict, enum verify_source, time_t now, time_t ttl);

/* Several verdicts in one transaction (one sync): all or none. */
struct verify_put {
	const char		*addr;
	enum verify_verdict	 verdict;
	enum verify_source	 source;
	time_t			 ttl;
};
int	 verify_db_put_many(struct verify_db *, const struct verify_put *,
	    size_t n, time_t now);
/* 1 forgotten, 0 not there, -1 error. */
int	 verify_db_forget(struct verify_db *, const char *addr);
/*
 * Call fn for each unexpired entry (of domain only, unless NULL), in key
 * order; fn returning non-zero stops the walk.  Entries expired at now
 * are skipped (a later put for the address replaces them).
 */
int	 verify_db_walk(struct verify_db *, const char *domain, time_t now,
	    int (*fn)(const struct verify_entry *, void *), void *);

/* The key for addr (domain lower-cased); -1 (EINVAL) if it has no '@'. */
int	 verify_db_key(const char *addr, char *key, size_t size);
void	 verify_value_encode(const struct verify_entry *,
	    unsigned char [VERIFY_VALUE_SIZE]);
/* -1 (EBADMSG) unless exactly a valid encoding. */
int	 verify_value_decode(const unsigned char *, size_t,
	    struct verify_entry *);
/* Is a statfs f_type a network (or FUSE) file system? */
int	 verify_fs_is_network(unsigned long f_type);

/*
 * Counters with a fixed window (submission-rate per account,
 * auth-fail-limit per client), in the database's named database
 * "limits": shared by every process that opens the file.  *count is the
 * key's count in its window that is running at now (0 when none, or when
 * the window ended), after adding add (0: only read).  A window starts
 * at the first event counted and lasts window seconds.  A few expired
 * counters are removed at every write.  The key is any text (the caller
 * prefixes its kind: "rate:ADDR", "authfail:CLIENT").
 */
#define VERIFY_COUNT_SIZE	16
int	 verify_db_count(struct verify_db *, const char *key, time_t now,
	    time_t window, unsigned add, unsigned *count);
void	 verify_count_encode(unsigned count, int64_t expires,
	    unsigned char [VERIFY_COUNT_SIZE]);
/* -1 (EBADMSG) unless exactly a valid encoding. */
int	 verify_count_decode(const unsigned char *, size_t, unsigned *count,
	    int64_t *expires);

const char *verify_verdict_name(enum verify_verdict);
const char *verify_source_name(enum verify_source);

#endif
