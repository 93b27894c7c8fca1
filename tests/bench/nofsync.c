/*
 * nofsync.c - LD_PRELOAD shim that turns fsync and friends into no-ops.
 * The bench uses it ONLY to fill the 100,000-message queues that `status`
 * and `postqueue -p` are timed on (listing does not depend on whether the
 * files were synced); never while a rate is being measured.
 */
#include <sys/types.h>

int	fsync(int);
int	fdatasync(int);
int	syncfs(int);
void	sync(void);
int	sync_file_range(int, off_t, off_t, unsigned int);

int fsync(int fd) { (void)fd; return (0); }
int fdatasync(int fd) { (void)fd; return (0); }
int syncfs(int fd) { (void)fd; return (0); }
void sync(void) { }
int sync_file_range(int fd, off_t o, off_t n, unsigned int f)
{ (void)fd; (void)o; (void)n; (void)f; return (0); }
