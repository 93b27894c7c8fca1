/*
 * smtpping.c - connection cost: sessions that connect, read the banner,
 * EHLO, QUIT and close, as fast as CONCURRENCY threads can, for SECONDS.
 *
 *	smtpping HOST PORT CONCURRENCY SECONDS
 *
 * Prints: sessions=N errors=E seconds=S rate=R
 * A session counts only if it saw 220, 250 (end of EHLO) and 221.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in	 sin;
static atomic_int		 stop;
static atomic_long		 sessions, errors;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec / 1e9);
}

/* Read reply lines until the last one ("NNN " form); 1 if it has code. */
static int
reply(int fd, char *buf, size_t size, const char *code)
{
	size_t	 len = 0;
	ssize_t	 n;
	char	*line, *nl;

	for (;;) {
		if (len == size - 1)
			return (0);
		if ((n = read(fd, buf + len, size - 1 - len)) <= 0)
			return (0);
		len += n;
		buf[len] = '\0';
		/* find the last complete line */
		line = buf;
		while ((nl = strstr(line, "\r\n")) != NULL) {
			if (nl - line >= 4 && line[3] == ' ')
				return (strncmp(line, code, 3) == 0);
			line = nl + 2;
		}
	}
}

static int
say(int fd, const char *s)
{
	size_t len = strlen(s);

	return (write(fd, s, len) == (ssize_t)len);
}

static void *
client(void *arg)
{
	char	 buf[8192];
	int	 fd, one = 1, ok;

	(void)arg;
	while (!atomic_load(&stop)) {
		if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1) {
			atomic_fetch_add(&errors, 1);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
		    reply(fd, buf, sizeof(buf), "220") &&
		    say(fd, "EHLO ping.example.test\r\n") &&
		    reply(fd, buf, sizeof(buf), "250") &&
		    say(fd, "QUIT\r\n") &&
		    reply(fd, buf, sizeof(buf), "221");
		close(fd);
		atomic_fetch_add(ok ? &sessions : &errors, 1);
		if (!ok)
			usleep(1000);
	}
	return (NULL);
}

int
main(int argc, char *argv[])
{
	pthread_t	*t;
	double		 secs, t0, t1;
	long		 i, nc;

	if (argc != 5) {
		fprintf(stderr, "usage: smtpping HOST PORT CONCURRENCY SECONDS\n");
		return (64);
	}
	sin.sin_family = AF_INET;
	sin.sin_port = htons(atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &sin.sin_addr) != 1) {
		fprintf(stderr, "smtpping: HOST must be an IPv4 address\n");
		return (64);
	}
	nc = atol(argv[3]);
	secs = atof(argv[4]);
	if (nc < 1 || nc > 1024 || secs <= 0)
		return (fprintf(stderr, "smtpping: bad arguments\n"), 64);
	if ((t = calloc(nc, sizeof(*t))) == NULL)
		return (perror("calloc"), 1);
	t0 = now();
	for (i = 0; i < nc; i++)
		if (pthread_create(&t[i], NULL, client, NULL) != 0)
			return (fprintf(stderr, "pthread_create\n"), 1);
	usleep((useconds_t)(secs * 1e6));
	atomic_store(&stop, 1);
	for (i = 0; i < nc; i++)
		pthread_join(t[i], NULL);
	t1 = now();
	printf("sessions=%ld errors=%ld seconds=%.3f rate=%.1f\n",
	    atomic_load(&sessions), atomic_load(&errors), t1 - t0,
	    atomic_load(&sessions) / (t1 - t0));
	return (atomic_load(&sessions) > 0 ? 0 : 1);
}
