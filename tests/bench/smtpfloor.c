/*
 * smtpfloor.c - the least an inetd-style SMTP server can do: greet, answer
 * every command line with 250, QUIT with 221.  Run under tcpserver by the
 * bench, it measures the cost of a process per connection (fork, exec,
 * exit) on this machine: the floor under `mxfb receive`'s connection cost.
 */
#include <string.h>
#include <unistd.h>

static int
say(const char *s)
{
	size_t len = strlen(s);

	return (write(1, s, len) == (ssize_t)len);
}

int
main(void)
{
	char	 buf[4096];
	size_t	 len = 0;
	ssize_t	 n;
	char	*nl;

	if (!say("220 floor ESMTP\r\n"))
		return (1);
	for (;;) {
		while ((nl = memchr(buf, '\n', len)) != NULL) {
			if (strncasecmp(buf, "QUIT", 4) == 0) {
				say("221 bye\r\n");
				return (0);
			}
			if (!say(strncasecmp(buf, "EHLO", 4) == 0 ?
			    "250-floor\r\n250 PIPELINING\r\n" : "250 ok\r\n"))
				return (1);
			len -= nl + 1 - buf;
			memmove(buf, nl + 1, len);
		}
		if (len == sizeof(buf))
			len = 0;
		if ((n = read(0, buf + len, sizeof(buf) - len)) <= 0)
			return (0);
		len += n;
	}
}
