/*
 * log.h - one line per event, Postfix-like, to syslog (facility mail) or
 * to stderr.  Text that came from a client or a peer must go through
 * log_safe() before it is logged.
 */
#ifndef MXFB_LOG_H
#define MXFB_LOG_H

#include <stddef.h>

/* ident is "mxfb/receive" and the like; to_stderr per the `log` key. */
void	 log_init(const char *ident, int to_stderr);
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
/* Appends ": strerror(errno)". */
void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));

/*
 * Error from a command: "mxfb: COMMAND: message" on stderr, and to the
 * log as well when the log is syslog.  log_cmd_error appends strerror.
 */
void	 log_cmd_errorx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_cmd_error(const char *, ...) __attribute__((format(printf, 1, 2)));
/* The command name used in those messages ("receive", "status"...). */
void	 log_set_command(const char *);

/*
 * Escape untrusted text (C style, vis(3) VIS_CSTYLE|VIS_TAB|VIS_NL|
 * VIS_OCTAL) into buf, truncating to fit; returns buf.
 */
char	*log_safe(char *buf, size_t size, const char *text);

#endif
