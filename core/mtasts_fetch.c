/*
 * mtasts_fetch.c - the HTTPS fetch of an MTA-STS policy (RFC 8461 3.3).
 *
 * Guarantees: the host is mta-sts.DOMAIN, its addresses come from the
 * configured resolver, the port is 443; the certificate must chain to
 * tls-ca-file (or the system store) and name that host (core/tls.c at
 * the verify level, which refuses anything else); no redirect is
 * followed; at most MTASTS_HEADER_MAX + MTASTS_POLICY_MAX bytes are
 * read, and the whole fetch, every address tried, ends within the
 * timeout.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dns.h"
#include "core/mtasts.h"
#include "core/tls.h"
#include "core/util.h"

#define HTTPS_PORT	443

static int	 connect_by(const struct sockaddr_storage *, int64_t,
		    char *, size_t);
static int	 get_policy(struct tls_client *, int, const char *, int64_t,
		    char **, size_t *, char *, size_t);
static int	 read_response(struct tls_conn *, int64_t, char **, size_t *,
		    char *, size_t);
static int	 seconds_left(int64_t);

static int
seconds_left(int64_t deadline)
{
	int64_t	 ms = deadline - now_ms();

	return (ms <= 0 ? 0 : (int)((ms + 999) / 1000));
}

/* A TCP connection to sa before the deadline: the fd, or -1 with why. */
static int
connect_by(const struct sockaddr_storage *ss, int64_t deadline, char *why,
    size_t whysize)
{
	socklen_t	 len, elen;
	int		 fd, err = 0, w;

	len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		(void)snprintf(why, whysize, "socket: %s", strerror(errno));
		return (-1);
	}
	if (connect(fd, (const struct sockaddr *)ss, len) == 0)
		return (fd);
	if (errno != EINPROGRESS)
		err = errno;
	else if ((w = wait_fd(fd, POLLOUT, deadline)) == 0)
		err = ETIMEDOUT;
	else if (w == -1)
		err = errno;
	else {
		elen = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1)
			err = errno;
	}
	if (err == 0)
		return (fd);
	(void)snprintf(why, whysize, "connect: %s", strerror(err));
	(void)close(fd);
	return (-1);
}

/* The response up to the connection's end, bounded. */
static int
read_response(struct tls_conn *tc, int64_t deadline, char **out,
    size_t *outlen, char *why, size_t whysize)
{
	size_t	 cap = MTASTS_HEADER_MAX + MTASTS_POLICY_MAX + 1, len = 0;
	char	*buf;
	ssize_t	 n;
	int	 left;

	buf = xmalloc(cap + 1);
	for (;;) {
		if ((left = seconds_left(deadline)) == 0) {
			(void)snprintf(why, whysize, "timed out reading the "
			    "response");
			goto fail;
		}
		n = tls_read_timeout(tc, buf + len, cap - len, left);
		if (n == 0)
			break;
		if (n == -1) {
			(void)snprintf(why, whysize, "reading the response: "
			    "%s", strerror(errno));
			goto fail;
		}
		len += (size_t)n;
		if (len == cap) {
			(void)snprintf(why, whysize, "response larger than "
			    "%d bytes", MTASTS_HEADER_MAX + MTASTS_POLICY_MAX);
			goto fail;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return (0);
fail:
	free(buf);
	return (-1);
}

/* Handshake, request, response, parse on a connected fd. */
static int
get_policy(struct tls_client *tcl, int fd, const char *host,
    int64_t deadline, char **body, size_t *len, char *why, size_t whysize)
{
	struct tls_conn	*tc;
	const char	*b;
	char		*resp = NULL, req[512], err[400];
	size_t		 rlen, blen;
	int		 rc = -1;

	if (tls_client_connect(tcl, fd, host, NULL, NULL, 0,
	    seconds_left(deadline), NULL, &tc, err, sizeof(err)) == -1) {
		(void)snprintf(why, whysize, "TLS: %s", err);
		return (-1);
	}
	(void)snprintf(req, sizeof(req), "GET /.well-known/mta-sts.txt "
	    "HTTP/1.0\r\nHost: %s\r\nUser-Agent: mxfb-check\r\n"
	    "Connection: close\r\n\r\n", host);
	if (tls_write_timeout(tc, req, strlen(req),
	    seconds_left(deadline)) == -1) {
		(void)snprintf(why, whysize, "sending the request: %s",
		    strerror(errno));
		goto out;
	}
	if (read_response(tc, deadline, &resp, &rlen, why, whysize) == -1)
		goto out;
	if (mtasts_http_parse(resp, rlen, &b, &blen, why, whysize) == -1)
		goto out;
	*body = xmalloc(blen + 1);
	memcpy(*body, b, blen);
	(*body)[blen] = '\0';
	*len = blen;
	rc = 0;
out:
	free(resp);
	tls_conn_free(tc);
	return (rc);
}

int
mtasts_fetch(struct dns_resolver *dr, const char *domain, const char *cafile,
    const char *ciphers, int timeout, char **body, size_t *len, char *why,
    size_t whysize)
{
	struct sockaddr_storage	*addrs = NULL;
	struct lookup_error	 e;
	struct tls_client	*tcl;
	char			 host[DOMAIN_NAME_SIZE + 8], err[1024];
	char			 ip[64];
	size_t			 n = 0, i;
	int64_t			 deadline;
	int			 fd, rc = -1;

	*body = NULL;
	*len = 0;
	memset(&e, 0, sizeof(e));
	deadline = now_ms() + (int64_t)(timeout > 0 ? timeout : 10) * 1000;
	if (snprintf(host, sizeof(host), "mta-sts.%s", domain) >=
	    (int)sizeof(host)) {
		(void)snprintf(why, whysize, "name too long");
		return (-1);
	}
	if (dns_lookup_addrs(dr, host, HTTPS_PORT, &addrs, &n, &e) !=
	    DNS_OK || n == 0) {
		(void)snprintf(why, whysize, "%s: %s", host,
		    e.text[0] != '\0' ? e.text : "no address");
		free(addrs);
		return (-1);
	}
	if (tls_client_new(TLS_LEVEL_VERIFY, ciphers, cafile, &tcl, err,
	    sizeof(err)) == -1) {
		(void)snprintf(why, whysize, "%s", err);
		free(addrs);
		return (-1);
	}
	(void)snprintf(why, whysize, "no address");
	for (i = 0; i < n && rc == -1; i++) {
		dns_addr_string((const struct sockaddr *)&addrs[i], ip,
		    sizeof(ip));
		if ((fd = connect_by(&addrs[i], deadline, err,
		    sizeof(err))) == -1) {
			(void)snprintf(why, whysize, "https://%s[%s]: %s",
			    host, ip, err);
			continue;
		}
		if (get_policy(tcl, fd, host, deadline, body, len, err,
		    sizeof(err)) == 0)
			rc = 0;
		else
			(void)snprintf(why, whysize, "https://%s[%s]: %s",
			    host, ip, err);
		(void)close(fd);
		if (rc == -1 && seconds_left(deadline) == 0)
			break;
	}
	tls_client_free(tcl);
	free(addrs);
	return (rc);
}
