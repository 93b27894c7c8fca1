/*
 * rusage.c - run a command and report its own resource usage.
 *
 *	rusage OUTFILE COMMAND [ARG...]
 *
 * Writes "maxrss_kb=N user_s=U sys_s=S status=X" to OUTFILE and exits
 * with the command's status.  Python's ru_maxrss for a child it forked
 * includes the Python image (Linux keeps the high-water mark across
 * exec); forked from this small program, the command's peak RSS is its
 * own.
 */
#include <sys/resource.h>
#include <sys/wait.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int
main(int argc, char *argv[])
{
	struct rusage	 ru;
	FILE		*f;
	pid_t		 pid;
	int		 status;

	if (argc < 3) {
		fprintf(stderr, "usage: rusage OUTFILE COMMAND [ARG...]\n");
		return (64);
	}
	if ((pid = fork()) == -1) {
		perror("fork");
		return (71);
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		perror(argv[2]);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) == -1) {
		perror("wait4");
		return (71);
	}
	if ((f = fopen(argv[1], "w")) == NULL) {
		perror(argv[1]);
		return (73);
	}
	fprintf(f, "maxrss_kb=%ld user_s=%.3f sys_s=%.3f status=%d\n",
	    ru.ru_maxrss, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
	    ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
	    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	fclose(f);
	return (WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}
