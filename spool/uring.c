/*
 * uring.c - batched reading of many small spool files with io_uring, for
 * spool_foreach: a 100,000-message listing is 100,000 opens, stats, reads
 * and closes, and on a machine where a system call costs microseconds
 * that is most of the time.  io_uring submits a whole batch of them with
 * one system call.
 *
 * Guarantees: this is only an accelerator.  spool_batch_new() fails
 * (and the caller reads files one by one) when the kernel or a seccomp
 * filter refuses io_uring; any single operation the kernel refuses shows
 * up as that item's error and the caller reads that item the slow way.
 * Every descriptor the ring reported opened is closed before
 * spool_batch_read() returns.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/io_uring.h>

#include "core/util.h"
#include "spool/spool_private.h"

#define RING_DEPTH	256
#define UD_SHIFT	2		/* user_data: index << 2 | kind */

enum ud_kind { UD_OPEN, UD_STATX, UD_SOPEN, UD_OTHER };

struct spool_batch {
	int			 fd;
	void			*sq_ptr, *cq_ptr;
	size_t			 sq_len, cq_len, sqes_len;
	struct io_uring_sqe	*sqes;
	struct io_uring_cqe	*cqes;
	unsigned		*sq_tail, *sq_mask, *sq_array;
	unsigned		*cq_head, *cq_tail, *cq_mask;
	unsigned		 tail;		/* our copy of *sq_tail */
	unsigned		 pending;	/* queued, not yet submitted */
	struct statx		*stx;		/* one per item */
};

static struct io_uring_sqe *sqe_get(struct spool_batch *);
static int	 ring_run(struct spool_batch *, void (*)(struct spool_batch *,
		    const struct io_uring_cqe *, void *), void *);
static void	 round1_done(struct spool_batch *, const struct io_uring_cqe *,
		    void *);
static void	 round2_done(struct spool_batch *, const struct io_uring_cqe *,
		    void *);
static void	 ignore_done(struct spool_batch *, const struct io_uring_cqe *,
		    void *);
static void	 queue_open(struct spool_batch *, int, const char *, size_t,
		    enum ud_kind);
static void	 queue_read(struct spool_batch *, int, char *, uint64_t, size_t,
		    enum ud_kind);
static void	 queue_close(struct spool_batch *, int);
static void	 close_items(struct spool_batch_item *, size_t);
static void	 queue_opens(struct spool_batch *, struct spool_batch_item *,
		    size_t);
static void	 queue_heads(struct spool_batch *, struct spool_batch_item *,
		    size_t);
static void	 queue_stats(struct spool_batch *, struct spool_batch_item *,
		    size_t);
static void	 queue_tails(struct spool_batch *, struct spool_batch_item *,
		    size_t);

int
spool_batch_new(struct spool_batch **bp)
{
	struct io_uring_params	 p;
	struct spool_batch	*b;
	int			 save;

	b = xcalloc(1, sizeof(*b));
	b->sq_ptr = b->cq_ptr = b->sqes = MAP_FAILED;
	memset(&p, 0, sizeof(p));
	if ((b->fd = (int)syscall(__NR_io_uring_setup, RING_DEPTH, &p)) == -1)
		goto fail;
	b->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	b->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	b->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	if ((b->sq_ptr = mmap(NULL, b->sq_len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_POPULATE, b->fd, IORING_OFF_SQ_RING)) ==
	    MAP_FAILED ||
	    (b->cq_ptr = mmap(NULL, b->cq_len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_POPULATE, b->fd, IORING_OFF_CQ_RING)) ==
	    MAP_FAILED ||
	    (b->sqes = mmap(NULL, b->sqes_len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_POPULATE, b->fd, IORING_OFF_SQES)) == MAP_FAILED)
		goto fail;
	b->sq_tail = (unsigned *)((char *)b->sq_ptr + p.sq_off.tail);
	b->sq_mask = (unsigned *)((char *)b->sq_ptr + p.sq_off.ring_mask);
	b->sq_array = (unsigned *)((char *)b->sq_ptr + p.sq_off.array);
	b->cq_head = (unsigned *)((char *)b->cq_ptr + p.cq_off.head);
	b->cq_tail = (unsigned *)((char *)b->cq_ptr + p.cq_off.tail);
	b->cq_mask = (unsigned *)((char *)b->cq_ptr + p.cq_off.ring_mask);
	b->cqes = (struct io_uring_cqe *)((char *)b->cq_ptr + p.cq_off.cqes);
	b->tail = *b->sq_tail;
	b->stx = xreallocarray(NULL, SPOOL_BATCH_MAX, sizeof(*b->stx));
	*bp = b;
	return (0);
fail:
	save = errno;
	spool_batch_free(b);
	errno = save;
	return (-1);
}

void
spool_batch_free(struct spool_batch *b)
{
	if (b == NULL)
		return;
	if (b->sqes != MAP_FAILED)
		(void)munmap(b->sqes, b->sqes_len);
	if (b->cq_ptr != MAP_FAILED)
		(void)munmap(b->cq_ptr, b->cq_len);
	if (b->sq_ptr != MAP_FAILED)
		(void)munmap(b->sq_ptr, b->sq_len);
	if (b->fd != -1)
		(void)close(b->fd);
	free(b->stx);
	free(b);
}

/* A zeroed submission entry; never more than RING_DEPTH per round. */
static struct io_uring_sqe *
sqe_get(struct spool_batch *b)
{
	struct io_uring_sqe	*s;
	unsigned		 i = b->tail & *b->sq_mask;

	b->sq_array[i] = i;
	s = &b->sqes[i];
	memset(s, 0, sizeof(*s));
	b->tail++;
	b->pending++;
	return (s);
}

/* Submit what is queued and hand every completion to done. */
static int
ring_run(struct spool_batch *b, void (*done)(struct spool_batch *,
    const struct io_uring_cqe *, void *), void *arg)
{
	unsigned	 want = b->pending, got = 0, head;
	int		 r, busy = 0;

	__atomic_store_n(b->sq_tail, b->tail, __ATOMIC_RELEASE);
	while (got < want) {
		/*
		 * Submitting, wait for one completion only (a short
		 * submission must not wait for what was not submitted);
		 * then wait for all that are in flight.
		 */
		r = (int)syscall(__NR_io_uring_enter, b->fd, b->pending,
		    b->pending > 0 ? 1 : want - got, IORING_ENTER_GETEVENTS,
		    NULL, 0);
		if (r == -1) {
			/* Transient, but never forever: then the slow way. */
			if (errno == EINTR || ((errno == EAGAIN ||
			    errno == EBUSY) && ++busy < 1000))
				continue;
			return (-1);
		}
		b->pending -= (unsigned)r > b->pending ? b->pending :
		    (unsigned)r;
		head = *b->cq_head;
		while (head != __atomic_load_n(b->cq_tail, __ATOMIC_ACQUIRE)) {
			done(b, &b->cqes[head & *b->cq_mask], arg);
			head++;
			got++;
		}
		__atomic_store_n(b->cq_head, head, __ATOMIC_RELEASE);
	}
	return (0);
}

static void
round1_done(struct spool_batch *b, const struct io_uring_cqe *c, void *arg)
{
	struct spool_batch_item	*it = arg;
	size_t			 i = (size_t)(c->user_data >> UD_SHIFT);

	switch (c->user_data & ((1 << UD_SHIFT) - 1)) {
	case UD_OPEN:
		it[i].fd = c->res;
		break;
	case UD_STATX:
		it[i].stat_res = c->res;
		break;
	case UD_SOPEN:
		it[i].state_fd = c->res;
		break;
	}
}

static void
round2_done(struct spool_batch *b, const struct io_uring_cqe *c, void *arg)
{
	struct spool_batch_item	*it = arg;
	size_t			 i = (size_t)(c->user_data >> UD_SHIFT);

	switch (c->user_data & ((1 << UD_SHIFT) - 1)) {
	case UD_OPEN:
		it[i].tail_len = c->res;
		break;
	case UD_SOPEN:
		it[i].state_len = c->res;
		break;
	}
}

static void
ignore_done(struct spool_batch *b, const struct io_uring_cqe *c, void *arg)
{
}

static void
queue_open(struct spool_batch *b, int dirfd, const char *name, size_t i,
    enum ud_kind kind)
{
	struct io_uring_sqe	*s;

	s = sqe_get(b);
	s->opcode = IORING_OP_OPENAT;
	s->fd = dirfd;
	s->addr = (unsigned long)name;
	s->open_flags = SPOOL_READ_FLAGS;
	s->user_data = (uint64_t)i << UD_SHIFT | kind;
}

/* SPOOL_TAIL bytes of fd from off into buf. */
static void
queue_read(struct spool_batch *b, int fd, char *buf, uint64_t off, size_t i,
    enum ud_kind kind)
{
	struct io_uring_sqe	*s;

	s = sqe_get(b);
	s->opcode = IORING_OP_READ;
	s->fd = fd;
	s->addr = (unsigned long)buf;
	s->len = SPOOL_TAIL;
	s->off = off;
	s->user_data = (uint64_t)i << UD_SHIFT | kind;
}

static void
queue_close(struct spool_batch *b, int fd)
{
	struct io_uring_sqe	*s;

	s = sqe_get(b);
	s->opcode = IORING_OP_CLOSE;
	s->fd = fd;
	s->user_data = UD_OTHER;
}

/* Every descriptor the ring opened, closed the ordinary way. */
static void
close_items(struct spool_batch_item *it, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (it[i].fd >= 0)
			(void)close(it[i].fd);
		if (it[i].state_fd >= 0)
			(void)close(it[i].state_fd);
	}
}

/* Round 1: open each message (and its state file). */
static void
queue_opens(struct spool_batch *b, struct spool_batch_item *it, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		it[i].fd = it[i].state_fd = -ENOENT;
		it[i].stat_res = -ENOENT;
		it[i].tail_len = it[i].state_len = -ENOENT;
		it[i].size = it[i].tail_off = 0;
		if (it[i].dirfd == -1)
			continue;	/* the caller reads it itself */
		queue_open(b, it[i].dirfd, it[i].name, i, UD_OPEN);
		if (it[i].state_dirfd != -1)
			queue_open(b, it[i].state_dirfd, it[i].name, i,
			    UD_SOPEN);
	}
}

/* Round 2: read each from the start. */
static void
queue_heads(struct spool_batch *b, struct spool_batch_item *it, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (it[i].fd >= 0)
			queue_read(b, it[i].fd, it[i].tail, 0, i, UD_OPEN);
		if (it[i].state_fd >= 0)
			queue_read(b, it[i].state_fd, it[i].state, 0, i,
			    UD_SOPEN);
	}
}

/*
 * Round 3: a short read from the start was the whole file; statx the
 * others for their size.
 */
static void
queue_stats(struct spool_batch *b, struct spool_batch_item *it, size_t n)
{
	struct io_uring_sqe	*s;
	size_t			 i;

	for (i = 0; i < n; i++) {
		if (it[i].fd < 0 || it[i].tail_len < 0)
			continue;
		if (it[i].tail_len < SPOOL_TAIL) {
			it[i].size = it[i].tail_len;
			it[i].stat_res = 0;
			continue;
		}
		s = sqe_get(b);
		s->opcode = IORING_OP_STATX;
		s->fd = it[i].dirfd;
		s->addr = (unsigned long)it[i].name;
		s->len = STATX_SIZE;
		s->statx_flags = AT_SYMLINK_NOFOLLOW;
		s->off = (unsigned long)&b->stx[i];
		s->user_data = (uint64_t)i << UD_SHIFT | UD_STATX;
	}
}

/* Round 4: the last SPOOL_TAIL bytes of the files longer than that. */
static void
queue_tails(struct spool_batch *b, struct spool_batch_item *it, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (it[i].fd < 0 || it[i].tail_len != SPOOL_TAIL)
			continue;
		if (it[i].stat_res != 0) {
			it[i].tail_len = -ENOENT;
			continue;
		}
		it[i].size = (int64_t)b->stx[i].stx_size;
		if (it[i].size <= SPOOL_TAIL)
			continue;	/* exactly SPOOL_TAIL, or grew */
		it[i].tail_off = it[i].size - SPOOL_TAIL;
		it[i].tail_len = -ENOENT;
		queue_read(b, it[i].fd, it[i].tail, (uint64_t)it[i].tail_off,
		    i, UD_OPEN);
	}
}

/*
 * For each item: open dirfd/name (dirfd -1: skip the item), learn its
 * size and read its last SPOOL_TAIL bytes; open state_dirfd/name (if
 * state_dirfd != -1) and read its first SPOOL_TAIL bytes.  One system
 * call per round: open; read from the start (a short read is the whole
 * file, the usual case); for bigger files only, statx and read the
 * tail; close.
 */
int
spool_batch_read(struct spool_batch *b, struct spool_batch_item *it,
    size_t n)
{
	size_t	 i;
	int	 r = 0;

	if (n > SPOOL_BATCH_MAX) {
		errno = EINVAL;
		return (-1);
	}
	queue_opens(b, it, n);
	if (ring_run(b, round1_done, it) == -1) {
		close_items(it, n);
		return (-1);
	}
	queue_heads(b, it, n);
	if (b->pending > 0 && ring_run(b, round2_done, it) == -1)
		r = -1;
	if (r == 0) {
		queue_stats(b, it, n);
		if (b->pending > 0 && ring_run(b, round1_done, it) == -1)
			r = -1;
	}
	if (r == 0) {
		queue_tails(b, it, n);
		if (b->pending > 0 && ring_run(b, round2_done, it) == -1)
			r = -1;
	}

	/* Close everything, whatever happened. */
	for (i = 0; i < n; i++) {
		if (it[i].fd >= 0)
			queue_close(b, it[i].fd);
		if (it[i].state_fd >= 0)
			queue_close(b, it[i].state_fd);
	}
	if (b->pending > 0 && ring_run(b, ignore_done, NULL) == -1) {
		/* The ring broke: close them the ordinary way. */
		close_items(it, n);
		r = -1;
	}
	return (r);
}
