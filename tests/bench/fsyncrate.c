/*
 * fsyncrate.c - the machine's durable-commit limit, measured the way a
 * maildir-style spool commits a message: write 2 KB to a new file,
 * fsync it, rename it into place, fsync the directory.
 *
 *	fsyncrate DIR WRITERS SECONDS
 *
 * Runs WRITERS threads for SECONDS and prints one line:
 *	writers=W commits=N seconds=S rate=R
 * Files are left in DIR/new for the caller to remove.
 */
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char	*dir;
static int		 newfd = -1;
static atomic_int	 stop;
static atomic_long	 commits;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec / 1e9);
}

static void *
writer(void *arg)
{
	char	 buf[2048], tmp[4096], dst[4096];
	long	 w = (long)arg, n = 0;
	int	 fd;

	memset(buf, 'x', sizeof(buf));
	while (!atomic_load(&stop)) {
		snprintf(tmp, sizeof(tmp), "%s/tmp/%ld.%ld", dir, w, n);
		snprintf(dst, sizeof(dst), "%s/new/%ld.%ld", dir, w, n);
		n++;
		if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1 ||
		    write(fd, buf, sizeof(buf)) != sizeof(buf) ||
		    fsync(fd) == -1 || close(fd) == -1 ||
		    rename(tmp, dst) == -1 || fsync(newfd) == -1) {
			perror("fsyncrate");
			exit(1);
		}
		atomic_fetch_add(&commits, 1);
	}
	return (NULL);
}

int
main(int argc, char *argv[])
{
	pthread_t	*t;
	char		 path[4096];
	double		 secs, t0, t1;
	long		 i, nw;

	if (argc != 4) {
		fprintf(stderr, "usage: fsyncrate DIR WRITERS SECONDS\n");
		return (64);
	}
	dir = argv[1];
	nw = atol(argv[2]);
	secs = atof(argv[3]);
	if (nw < 1 || nw > 1024 || secs <= 0) {
		fprintf(stderr, "fsyncrate: bad arguments\n");
		return (64);
	}
	snprintf(path, sizeof(path), "%s/tmp", dir);
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		return (perror(path), 1);
	snprintf(path, sizeof(path), "%s/new", dir);
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		return (perror(path), 1);
	if ((newfd = open(path, O_RDONLY | O_DIRECTORY)) == -1)
		return (perror(path), 1);
	if ((t = calloc(nw, sizeof(*t))) == NULL)
		return (perror("calloc"), 1);
	t0 = now();
	for (i = 0; i < nw; i++)
		if (pthread_create(&t[i], NULL, writer, (void *)i) != 0)
			return (fprintf(stderr, "pthread_create\n"), 1);
	usleep((useconds_t)(secs * 1e6));
	atomic_store(&stop, 1);
	for (i = 0; i < nw; i++)
		pthread_join(t[i], NULL);
	t1 = now();
	printf("writers=%ld commits=%ld seconds=%.3f rate=%.1f\n", nw,
	    atomic_load(&commits), t1 - t0, atomic_load(&commits) / (t1 - t0));
	return (0);
}
