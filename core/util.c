/*
 * util.c - small helpers that know nothing of mail.
 *
 * Guarantees: the x* allocators never return NULL (the process exits 71,
 * EX_OSERR, with a message instead); bsnprintf never silently truncates;
 * the parsers accept exactly the documented syntax and reject everything
 * else (negative numbers, overflow, trailing garbage, empty strings);
 * write_all/read_all retry on EINTR and on short counts; wait_fd keeps
 * waiting through EINTR until its deadline.
 */
#include <sys/types.h>
#include <sys/time.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"

#define EXIT_OSERR	71

static void	 alloc_fail(const char *) __attribute__((noreturn));
static int	 parse_scaled(const char *, uint64_t, uint64_t *,
		    const char **);

static void
alloc_fail(const char *what)
{
	/* No allocation here: the heap is what failed. */
	fprintf(stderr, "mxfb: %s: out of memory\n", what);
	exit(EXIT_OSERR);
}

void *
xmalloc(size_t size)
{
	void	*p;

	if (size == 0)
		size = 1;
	if ((p = malloc(size)) == NULL)
		alloc_fail("malloc");
	return (p);
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void	*p;

	if (nmemb == 0 || size == 0)
		nmemb = size = 1;
	if ((p = calloc(nmemb, size)) == NULL)
		alloc_fail("calloc");
	return (p);
}

void *
xreallocarray(void *ptr, size_t nmemb, size_t size)
{
	void	*p;

	if (nmemb == 0 || size == 0)
		nmemb = size = 1;
	if ((p = reallocarray(ptr, nmemb, size)) == NULL)
		alloc_fail("reallocarray");
	return (p);
}

char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL)
		alloc_fail("strdup");
	return (p);
}

char *
xstrndup(const char *s, size_t n)
{
	char	*p;

	if ((p = strndup(s, n)) == NULL)
		alloc_fail("strndup");
	return (p);
}

int
xasprintf(char **ret, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vasprintf(ret, fmt, ap);
	va_end(ap);
	if (n == -1)
		alloc_fail("asprintf");
	return (n);
}

int
bsnprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0)
		return (-1);
	if ((size_t)n >= size) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	return (n);
}

/*
 * Digits followed by at most one suffix character; the suffix's
 * multiplier is given by the caller (mult == 0: suffix not allowed).
 */
static int
parse_scaled(const char *s, uint64_t mult, uint64_t *res, const char **errstr)
{
	uint64_t	 v = 0;
	const char	*p;

	if (s == NULL || *s == '\0') {
		*errstr = "empty";
		return (-1);
	}
	if (*s == '-') {
		*errstr = "negative";
		return (-1);
	}
	for (p = s; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
			*errstr = "too large";
			return (-1);
		}
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (p == s) {
		*errstr = "not a number";
		return (-1);
	}
	if (*p != '\0') {
		/* parse_duration/parse_size handed us the suffix's value. */
		if (mult == 0 || p[1] != '\0') {
			*errstr = "invalid suffix";
			return (-1);
		}
		if (v != 0 && v > UINT64_MAX / mult) {
			*errstr = "too large";
			return (-1);
		}
		v *= mult;
	}
	*res = v;
	return (0);
}

int
parse_duration(const char *s, time_t *res, const char **errstr)
{
	uint64_t	 mult = 0, v;
	size_t		 len;

	if (s == NULL || (len = strlen(s)) == 0) {
		*errstr = "empty";
		return (-1);
	}
	if (!isdigit((unsigned char)s[len - 1])) {
		switch (s[len - 1]) {
		case 's':
			mult = 1;
			break;
		case 'm':
			mult = 60;
			break;
		case 'h':
			mult = 3600;
			break;
		case 'd':
			mult = 86400;
			break;
		case 'w':
			mult = 7 * 86400;
			break;
		default:
			*errstr = "invalid duration suffix (s m h d w)";
			return (-1);
		}
		if (len == 1) {
			*errstr = "not a number";
			return (-1);
		}
	}
	if (parse_scaled(s, mult, &v, errstr) == -1)
		return (-1);
	/* time_t is signed; keep a margin so now + duration cannot wrap. */
	if (v > (uint64_t)INT32_MAX * 64) {
		*errstr = "too large";
		return (-1);
	}
	*res = (time_t)v;
	return (0);
}

int
parse_size(const char *s, uint64_t *res, const char **errstr)
{
	uint64_t	 mult = 0;
	size_t		 len;

	if (s == NULL || (len = strlen(s)) == 0) {
		*errstr = "empty";
		return (-1);
	}
	if (!isdigit((unsigned char)s[len - 1])) {
		switch (s[len - 1]) {
		case 'K':
		case 'k':
			mult = 1024ULL;
			break;
		case 'M':
		case 'm':
			mult = 1024ULL * 1024;
			break;
		case 'G':
		case 'g':
			mult = 1024ULL * 1024 * 1024;
			break;
		default:
			*errstr = "invalid size suffix (K M G)";
			return (-1);
		}
		if (len == 1) {
			*errstr = "not a number";
			return (-1);
		}
	}
	return (parse_scaled(s, mult, res, errstr));
}

char *
ascii_lower(char *s)
{
	char	*p;

	for (p = s; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return (s);
}

ssize_t
write_all(int fd, const void *buf, size_t len)
{
	const char	*p = buf;
	size_t		 done = 0;
	ssize_t		 n;

	while (done < len) {
		n = write(fd, p + done, len - done);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		if (n == 0) {
			errno = EIO;
			return (-1);
		}
		done += (size_t)n;
	}
	return ((ssize_t)done);
}

/* Reads until len bytes or end of file; returns the count read. */
ssize_t
read_all(int fd, void *buf, size_t len)
{
	char	*p = buf;
	size_t	 done = 0;
	ssize_t	 n;

	while (done < len) {
		n = read(fd, p + done, len - done);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return ((ssize_t)done);
}

int
fsync_dir(const char *dirpath)
{
	int	 fd, saved;

	if ((fd = open(dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return (-1);
	if (fsync(fd) == -1) {
		saved = errno;
		(void)close(fd);
		errno = saved;
		return (-1);
	}
	if (close(fd) == -1)
		return (-1);
	return (0);
}

void
now_tv(time_t *sec, long *usec)
{
	struct timeval	 tv;

	if (gettimeofday(&tv, NULL) == -1) {
		/* Cannot fail with a valid pointer; fall back to time(). */
		tv.tv_sec = time(NULL);
		tv.tv_usec = 0;
	}
	*sec = tv.tv_sec;
	if (usec != NULL)
		*usec = (long)tv.tv_usec;
}

int64_t
now_ms(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return (0);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd	 pfd;
	int64_t		 left;
	int		 r, ms;

	for (;;) {
		if (deadline < 0)
			ms = -1;
		else {
			left = deadline - now_ms();
			if (left <= 0)
				return (0);
			ms = left > 60000 ? 60000 : (int)left;
		}
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		r = poll(&pfd, 1, ms);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		if (r > 0)
			return (1);
	}
}

/*
 * The day and month names are the C locale's whatever the environment
 * says (RFC 5322 fixes them), hence no strftime %a/%b.
 */
void
rfc5322_date(time_t t, char *buf, size_t size)
{
	static const char *const days[] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	struct tm	 tm;
	long		 off;
	char		 sign;

	if (size == 0)
		return;
	if (localtime_r(&t, &tm) == NULL && gmtime_r(&t, &tm) == NULL) {
		buf[0] = '\0';
		return;
	}
	off = tm.tm_gmtoff / 60;
	sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	if (bsnprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
	    off / 60, off % 60) == -1)
		buf[0] = '\0';
}
