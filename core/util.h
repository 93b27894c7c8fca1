/*
 * util.h - small helpers that know nothing of mail: checked allocation,
 * bounded formatting, duration and size parsing, fsync'ed writes.
 */
#ifndef MXFB_UTIL_H
#define MXFB_UTIL_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* sysexits(3) values used throughout (also in <sysexits.h>). */
#define EXIT_USAGE	64
#define EXIT_DATAERR	65
#define EXIT_UNAVAIL	69
#define EXIT_SOFTWARE	70
#define EXIT_CANTCREAT	73
#define EXIT_IOERR	74
#define EXIT_TEMPFAIL	75
#define EXIT_CONFIG	78

/*
 * A domain or host name as text is at most 253 octets (RFC 1035 2.3.4
 * counts 255 with the length octets): DOMAIN_NAME_MAX with room to
 * spare, DOMAIN_NAME_SIZE a buffer for one with its NUL.  The one
 * maximum for domains: an address's domain (core/mail/address.h) too.
 */
#define DOMAIN_NAME_MAX		255
#define DOMAIN_NAME_SIZE	(DOMAIN_NAME_MAX + 1)

/* Allocation that cannot fail: on failure the process exits (EX_OSERR). */
void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
int	 xasprintf(char **, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

/* snprintf that returns -1 (errno ENAMETOOLONG) when the result is cut. */
int	 bsnprintf(char *, size_t, const char *, ...)
	    __attribute__((format(printf, 3, 4)));

/*
 * "90s", "4h", "5d", "2w", "30" (seconds), "0"; suffixes s m h d w.  Returns 0 and stores seconds,
 * or -1 with *errstr set to a static reason.
 */
int	 parse_duration(const char *, time_t *, const char **errstr);
/* "50M", "100K", "1G", "123" (bytes; K M G are 1024-based, either
 * case).  Same convention. */
int	 parse_size(const char *, uint64_t *, const char **errstr);

/* Lower-case in place (ASCII only); returns its argument. */
char	*ascii_lower(char *);

/*
 * Whole-buffer I/O that retries on EINTR and short counts; -1 on error.
 * read_all stops early only at end of file and returns the count read.
 */
ssize_t	 write_all(int, const void *, size_t);
ssize_t	 read_all(int, void *, size_t);

/* fsync the directory that holds path (for renames that must survive). */
int	 fsync_dir(const char *dirpath);

/* Seconds and microseconds of the wall clock. */
void	 now_tv(time_t *, long *usec);
/* Milliseconds of CLOCK_MONOTONIC: for deadlines and latencies. */
int64_t	 now_ms(void);
/*
 * Wait until fd is ready for events (poll(2) bits) or the now_ms()
 * deadline passes (-1: no deadline); EINTR does not end the wait.
 * 1 ready, 0 deadline passed, -1 error.
 */
int	 wait_fd(int, short, int64_t);

/* Format "Sat, 28 Nov 2026 03:32:17 +0000" (RFC 5322 date). */
void	 rfc5322_date(time_t, char *, size_t);

#endif
