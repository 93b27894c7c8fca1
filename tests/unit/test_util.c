/*
 * test_util.c - unit tests of core/util.c and core/log.c: duration and
 * size parsing (every suffix, zero, overflow, garbage, empty), bounded
 * formatting, case folding, whole-buffer I/O, dates, log_safe escaping,
 * wait_fd (ready, deadline, no deadline, a signal during the wait).
 */
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "core/util.h"

static time_t
dur_ok(const char *s)
{
	const char	*errstr = NULL;
	time_t		 t = -1;

	assert_int_equal(parse_duration(s, &t, &errstr), 0);
	return (t);
}

static void
dur_bad(const char *s)
{
	const char	*errstr = NULL;
	time_t		 t = 12345;

	assert_int_equal(parse_duration(s, &t, &errstr), -1);
	assert_non_null(errstr);
	assert_int_equal(t, 12345);	/* untouched on error */
}

static void
test_duration(void **state)
{
	assert_int_equal(dur_ok("0"), 0);
	assert_int_equal(dur_ok("0s"), 0);
	assert_int_equal(dur_ok("30"), 30);
	assert_int_equal(dur_ok("90s"), 90);
	assert_int_equal(dur_ok("5m"), 300);
	assert_int_equal(dur_ok("4h"), 4 * 3600);
	assert_int_equal(dur_ok("5d"), 5 * 86400);
	assert_int_equal(dur_ok("2w"), 14 * 86400);
	assert_int_equal(dur_ok("007"), 7);
	assert_int_equal(dur_ok("1000d"), 1000 * 86400);
}

static void
test_duration_bad(void **state)
{
	dur_bad("");
	dur_bad("s");
	dur_bad("-1");
	dur_bad("-5m");
	dur_bad("+5");
	dur_bad(" 5");
	dur_bad("5 ");
	dur_bad("5x");
	dur_bad("5ms");
	dur_bad("5S");		/* suffixes are lower case */
	dur_bad("1.5h");
	dur_bad("h5");
	dur_bad("abc");
	dur_bad("0x10");
	dur_bad("99999999999999999999");	/* > UINT64_MAX */
	dur_bad("18446744073709551615w");	/* multiplication overflow */
	dur_bad("9999999999999d");		/* beyond any sane time_t */
}

static uint64_t
size_ok(const char *s)
{
	const char	*errstr = NULL;
	uint64_t	 v = 0;

	assert_int_equal(parse_size(s, &v, &errstr), 0);
	return (v);
}

static void
size_bad(const char *s)
{
	const char	*errstr = NULL;
	uint64_t	 v = 4242;

	assert_int_equal(parse_size(s, &v, &errstr), -1);
	assert_non_null(errstr);
	assert_int_equal(v, 4242);
}

static void
test_size(void **state)
{
	assert_int_equal(size_ok("0"), 0);
	assert_int_equal(size_ok("0K"), 0);
	assert_int_equal(size_ok("123"), 123);
	assert_int_equal(size_ok("100K"), 100 * 1024);
	assert_int_equal(size_ok("100k"), 100 * 1024);
	assert_int_equal(size_ok("50M"), 50 * 1024 * 1024);
	assert_int_equal(size_ok("1G"), 1024ULL * 1024 * 1024);
	assert_true(size_ok("8G") == 8ULL * 1024 * 1024 * 1024);
	assert_true(size_ok("18446744073709551615") == UINT64_MAX);
}

static void
test_size_bad(void **state)
{
	size_bad("");
	size_bad("K");
	size_bad("-1");
	size_bad("-1K");
	size_bad("1T");
	size_bad("1KB");
	size_bad("1.5M");
	size_bad("M1");
	size_bad(" 1");
	size_bad("1 ");
	size_bad("ten");
	size_bad("18446744073709551616");	/* UINT64_MAX + 1 */
	size_bad("18014398509481984K");		/* 2^54 K = 2^64 */
	size_bad("99999999999G");
}

static void
test_bsnprintf(void **state)
{
	char	 buf[8];

	assert_int_equal(bsnprintf(buf, sizeof(buf), "%s", "1234567"), 7);
	assert_string_equal(buf, "1234567");
	errno = 0;
	assert_int_equal(bsnprintf(buf, sizeof(buf), "%s", "12345678"), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	assert_int_equal(bsnprintf(buf, sizeof(buf), "%d-%d", 1, 2), 3);
	assert_string_equal(buf, "1-2");
	assert_int_equal(bsnprintf(buf, sizeof(buf), "%s", ""), 0);
	assert_string_equal(buf, "");
}

static void
test_ascii_lower(void **state)
{
	char	 s[] = "MiXeD.Example.TEST-09_\xc3\x89";
	char	 e[] = "";

	assert_ptr_equal(ascii_lower(s), s);
	/* Only ASCII letters change; bytes >= 0x80 are left alone. */
	assert_string_equal(s, "mixed.example.test-09_\xc3\x89");
	assert_string_equal(ascii_lower(e), "");
}

static void
test_alloc(void **state)
{
	char	*s, *t, *u;
	int	*a;

	s = xstrdup("hello");
	assert_string_equal(s, "hello");
	t = xstrndup("hello", 3);
	assert_string_equal(t, "hel");
	assert_int_equal(xasprintf(&u, "%s-%d", s, 42), 8);
	assert_string_equal(u, "hello-42");
	a = xcalloc(4, sizeof(*a));
	assert_int_equal(a[3], 0);
	a = xreallocarray(a, 1000, sizeof(*a));
	a[999] = 7;
	assert_int_equal(a[999], 7);
	free(a);
	free(s);
	free(t);
	free(u);
	free(xmalloc(0));
}

static void
test_io(void **state)
{
	char	 path[] = "/tmp/mxfb-test-util-XXXXXX";
	char	 big[100000], back[100001];
	int	 fd;
	size_t	 i;

	for (i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	assert_int_not_equal(fd = mkstemp(path), -1);
	assert_int_equal(write_all(fd, big, sizeof(big)), sizeof(big));
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	/* Asking for more than there is returns what there is. */
	assert_int_equal(read_all(fd, back, sizeof(back)), sizeof(big));
	assert_memory_equal(big, back, sizeof(big));
	assert_int_equal(close(fd), 0);
	assert_int_equal(write_all(fd, big, 1), -1);
	assert_int_equal(unlink(path), 0);

	assert_int_equal(fsync_dir("/tmp"), 0);
	assert_int_equal(fsync_dir("/nonexistent-mxfb-dir"), -1);
	assert_int_equal(errno, ENOENT);
}

static void
test_date(void **state)
{
	char	 buf[64], small[10];
	time_t	 sec;
	long	 usec;

	assert_int_equal(setenv("TZ", "UTC", 1), 0);
	tzset();
	rfc5322_date(0, buf, sizeof(buf));
	assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 +0000");
	rfc5322_date(1795836737, buf, sizeof(buf));
	assert_string_equal(buf, "Sat, 28 Nov 2026 03:32:17 +0000");

	assert_int_equal(setenv("TZ", "EST5EDT", 1), 0);
	tzset();
	rfc5322_date(0, buf, sizeof(buf));
	assert_string_equal(buf, "Wed, 31 Dec 1969 19:00:00 -0500");
	assert_int_equal(setenv("TZ", "IST-5:30", 1), 0);
	tzset();
	rfc5322_date(0, buf, sizeof(buf));
	assert_string_equal(buf, "Thu, 01 Jan 1970 05:30:00 +0530");

	/* Too small a buffer gives an empty string, never a cut date. */
	rfc5322_date(0, small, sizeof(small));
	assert_string_equal(small, "");

	now_tv(&sec, &usec);
	assert_true(sec > 1700000000);
	assert_true(usec >= 0 && usec < 1000000);
}

static void
test_log_safe(void **state)
{
	char	 buf[64], tiny[6];

	assert_string_equal(log_safe(buf, sizeof(buf), "plain text"),
	    "plain text");
	assert_string_equal(log_safe(buf, sizeof(buf), "a\r\nb\tc"),
	    "a\\r\\nb\\tc");
	assert_string_equal(log_safe(buf, sizeof(buf), "\x1b[1m"),
	    "\\033[1m");
	assert_string_equal(log_safe(buf, sizeof(buf), "\xff"), "\\377");
	assert_string_equal(log_safe(buf, sizeof(buf), NULL), "(null)");
	/* Truncation never leaves half an escape or no terminator. */
	log_safe(tiny, sizeof(tiny), "abc\n\n\n");
	assert_true(strlen(tiny) < sizeof(tiny));
	assert_null(strchr(tiny, '\n'));
	assert_string_equal(tiny, "abc\\n");
	log_safe(tiny, sizeof(tiny), "ab\n\n");
	assert_string_equal(tiny, "ab\\n");
}

/* Run fn with stderr redirected to a file; return what it wrote. */
static char *
capture_stderr(void (*fn)(void))
{
	static char	 out[16384];
	char		 path[] = "/tmp/mxfb-test-log-XXXXXX";
	ssize_t		 n;
	int		 fd, saved;

	assert_int_not_equal(fd = mkstemp(path), -1);
	assert_int_not_equal(saved = dup(STDERR_FILENO), -1);
	assert_int_not_equal(dup2(fd, STDERR_FILENO), -1);
	fn();
	assert_int_not_equal(dup2(saved, STDERR_FILENO), -1);
	assert_int_equal(close(saved), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_true((n = read_all(fd, out, sizeof(out) - 1)) >= 0);
	out[n] = '\0';
	assert_int_equal(close(fd), 0);
	assert_int_equal(unlink(path), 0);
	return (out);
}

static void
log_some_lines(void)
{
	log_set_command("flush");
	log_init("mxfb", 1);
	log_info("%s: to=<%s>, status=%s", "ABC", "u@example.test", "sent");
	errno = ENOENT;
	log_warn("open %s", "/nonexistent");
	log_warnx("plain warning");
	errno = EACCES;
	log_cmd_error("spool %s", "/var/spool/mxfb");
	log_cmd_errorx("not a queue ID: \"%s\"", "x");
}

static void
log_long_line(void)
{
	char	 big[10000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_info("%s", big);
	log_info("after");
}

static void
test_log_format(void **state)
{
	char	*out, expect[256], *nl;
	size_t	 len;

	out = capture_stderr(log_some_lines);
	assert_int_not_equal(bsnprintf(expect, sizeof(expect),
	    "mxfb/flush[%ld]: ABC: to=<u@example.test>, status=sent\n"
	    "mxfb/flush[%ld]: open /nonexistent: No such file or directory\n"
	    "mxfb/flush[%ld]: plain warning\n"
	    "mxfb: flush: spool /var/spool/mxfb: Permission denied\n"
	    "mxfb: flush: not a queue ID: \"x\"\n", (long)getpid(),
	    (long)getpid(), (long)getpid()), -1);
	assert_string_equal(out, expect);

	/* An over-long line is cut, still ends in a newline, and the next
	 * line is whole. */
	out = capture_stderr(log_long_line);
	assert_non_null(nl = strchr(out, '\n'));
	len = (size_t)(nl - out);
	assert_true(len > 4000 && len < 4200);
	assert_int_not_equal(bsnprintf(expect, sizeof(expect),
	    "mxfb/flush[%ld]: after\n", (long)getpid()), -1);
	assert_string_equal(nl + 1, expect);
}

static volatile sig_atomic_t	 alarms;

static void
on_alarm(int sig)
{
	alarms++;
}

static void
test_wait_fd(void **state)
{
	struct sigaction	 sa, old;
	struct itimerval	 it;
	int			 p[2];
	int64_t			 t0;

	assert_int_equal(pipe(p), 0);
	/* Nothing to read: the deadline passes, not earlier. */
	t0 = now_ms();
	assert_int_equal(wait_fd(p[0], POLLIN, t0 + 150), 0);
	assert_true(now_ms() - t0 >= 150);
	/* A deadline already past: no wait at all. */
	assert_int_equal(wait_fd(p[0], POLLIN, now_ms() - 1), 0);
	/* Writable at once; readable once there is data, with or without
	 * a deadline. */
	assert_int_equal(wait_fd(p[1], POLLOUT, now_ms() + 1000), 1);
	assert_int_equal(write(p[1], "x", 1), 1);
	t0 = now_ms();
	assert_int_equal(wait_fd(p[0], POLLIN, t0 + 5000), 1);
	assert_int_equal(wait_fd(p[0], POLLIN, -1), 1);
	assert_true(now_ms() - t0 < 1000);
	assert_int_equal(read(p[0], &t0, 1), 1);

	/* A signal (no SA_RESTART) interrupts poll: the wait goes on to
	 * the deadline instead of returning early or failing. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	memset(&it, 0, sizeof(it));
	it.it_value.tv_usec = 50000;
	alarms = 0;
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	t0 = now_ms();
	assert_int_equal(wait_fd(p[0], POLLIN, t0 + 300), 0);
	assert_true(now_ms() - t0 >= 300);
	assert_int_equal(alarms, 1);
	assert_int_equal(sigaction(SIGALRM, &old, NULL), 0);
	close(p[0]);
	close(p[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_duration_bad),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_size_bad),
		cmocka_unit_test(test_bsnprintf),
		cmocka_unit_test(test_ascii_lower),
		cmocka_unit_test(test_alloc),
		cmocka_unit_test(test_io),
		cmocka_unit_test(test_date),
		cmocka_unit_test(test_log_safe),
		cmocka_unit_test(test_log_format),
		cmocka_unit_test(test_wait_fd),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
