/*
 * log.c - one line per event to syslog (facility mail) or to stderr.
 *
 * Guarantees: every line is written with a single write (stderr) or a
 * single syslog(3) call, so concurrent processes never interleave within
 * a line; a line is never longer than LOG_LINE_MAX (longer ones are cut,
 * not dropped); untrusted text escaped by log_safe() contains no control
 * characters.  Before log_init() lines go to stderr.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include <vis.h>

#include "core/log.h"
#include "core/util.h"

#define LOG_LINE_MAX	4096

static char	 log_ident[64] = "mxfb";
static char	 log_command[32];
static int	 log_to_stderr = 1;

static void	 log_emit(int, const char *, va_list, int)
		    __attribute__((format(printf, 2, 0)));
static void	 log_stderr_line(const char *);

void
log_set_command(const char *name)
{
	if (strlcpy(log_command, name, sizeof(log_command)) >=
	    sizeof(log_command))
		log_command[sizeof(log_command) - 1] = '\0';
}

/*
 * An ident without a '/' gets the command appended ("mxfb" becomes
 * "mxfb/flush"), so operators can grep one command's lines.
 */
void
log_init(const char *ident, int to_stderr)
{
	if (strchr(ident, '/') == NULL && log_command[0] != '\0') {
		if (bsnprintf(log_ident, sizeof(log_ident), "%s/%s", ident,
		    log_command) == -1)
			(void)strlcpy(log_ident, ident, sizeof(log_ident));
	} else
		(void)strlcpy(log_ident, ident, sizeof(log_ident));
	if (!log_to_stderr)
		closelog();
	log_to_stderr = to_stderr;
	if (!to_stderr)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

static void
log_stderr_line(const char *line)
{
	char	 buf[LOG_LINE_MAX + 128];
	int	 n;

	n = snprintf(buf, sizeof(buf), "%s[%ld]: %s\n", log_ident,
	    (long)getpid(), line);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf)) {
		n = sizeof(buf) - 1;
		buf[n - 1] = '\n';
	}
	/* Nowhere left to report a failure to write the log. */
	(void)write_all(STDERR_FILENO, buf, (size_t)n);
}

static void
log_emit(int prio, const char *fmt, va_list ap, int with_errno)
{
	char	 line[LOG_LINE_MAX];
	size_t	 len;
	int	 saved = errno;

	(void)vsnprintf(line, sizeof(line), fmt, ap);
	if (with_errno) {
		len = strlen(line);
		(void)snprintf(line + len, sizeof(line) - len, ": %s",
		    strerror(saved));
	}
	if (log_to_stderr)
		log_stderr_line(line);
	else
		syslog(prio, "%s", line);
	errno = saved;
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_emit(LOG_INFO, fmt, ap, 0);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_emit(LOG_WARNING, fmt, ap, 0);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_emit(LOG_WARNING, fmt, ap, 1);
	va_end(ap);
}

static void cmd_error(const char *, va_list, int)
    __attribute__((format(printf, 1, 0)));

static void
cmd_error(const char *fmt, va_list ap, int with_errno)
{
	char	 line[LOG_LINE_MAX], out[LOG_LINE_MAX + 64];
	size_t	 len;
	int	 saved = errno, n;

	(void)vsnprintf(line, sizeof(line), fmt, ap);
	if (with_errno) {
		len = strlen(line);
		(void)snprintf(line + len, sizeof(line) - len, ": %s",
		    strerror(saved));
	}
	if (log_command[0] != '\0')
		n = snprintf(out, sizeof(out), "mxfb: %s: %s\n", log_command,
		    line);
	else
		n = snprintf(out, sizeof(out), "mxfb: %s\n", line);
	if (n >= 0) {
		if ((size_t)n >= sizeof(out)) {
			n = sizeof(out) - 1;
			out[n - 1] = '\n';
		}
		(void)write_all(STDERR_FILENO, out, (size_t)n);
	}
	if (!log_to_stderr)
		syslog(LOG_ERR, "%s", line);
	errno = saved;
}

void
log_cmd_errorx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	cmd_error(fmt, ap, 0);
	va_end(ap);
}

void
log_cmd_error(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	cmd_error(fmt, ap, 1);
	va_end(ap);
}

/*
 * One character at a time with vis(3): libbsd's strnvis() may leave a
 * cut escape sequence and no terminator when the buffer is too small.
 */
char *
log_safe(char *buf, size_t size, const char *text)
{
	char		 enc[8], *end;
	const char	*p;
	size_t		 used = 0, n;

	if (size == 0)
		return (buf);
	if (text == NULL)
		text = "(null)";
	for (p = text; *p != '\0'; p++) {
		end = vis(enc, (unsigned char)p[0], VIS_CSTYLE | VIS_TAB |
		    VIS_NL | VIS_OCTAL, (unsigned char)p[1]);
		n = (size_t)(end - enc);
		if (used + n >= size)
			break;
		memcpy(buf + used, enc, n);
		used += n;
	}
	buf[used] = '\0';
	return (buf);
}
