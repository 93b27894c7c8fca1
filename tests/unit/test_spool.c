/*
 * test_spool.c - the spool on disk: writing, listing, claiming, queue
 * surgery, quarantine, domain notes and locks, and what a crash between
 * any two steps leaves (spool/INTERNALS, section 5), recovered without
 * loss; subdirectories and files never reached through a planted link.
 * Each test gets its own spool in a fresh temporary directory.
 */
#include <sys/types.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/util.h"
#include "spool/spool.h"

struct fixture {
	char		 root[PATH_MAX];	/* the temporary directory */
	char		 dir[PATH_MAX];		/* the spool inside it */
	struct spool	*sp;
	int		 mounted;
};

/* Formatting that must not be cut. */
#define PATHF(buf, ...)	\
	assert_int_not_equal(bsnprintf(buf, sizeof(buf), __VA_ARGS__), -1)

static const char body[] = "Subject: test\r\n\r\nHello, world.\r\n";

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return (remove(path));
}

static int
setup(void **state)
{
	struct fixture	*f;

	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	(void)strlcpy(f->root, "/tmp/mxfb-test-spool.XXXXXX", sizeof(f->root));
	assert_non_null(mkdtemp(f->root));
	PATHF(f->dir, "%s/spool", f->root);
	assert_int_equal(spool_open(f->dir, 1, &f->sp), 0);
	*state = f;
	return (0);
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;

	spool_close(f->sp);
	if (f->mounted)
		(void)umount(f->root);
	(void)nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return (0);
}

static void
path_of(struct fixture *f, char *buf, size_t size, const char *sub,
    const char *name)
{
	assert_int_not_equal(bsnprintf(buf, size, "%s/%s/%s", f->dir, sub,
	    name), -1);
}

static int
count_dir(struct fixture *f, const char *sub)
{
	char		 path[PATH_MAX];
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	PATHF(path, "%s/%s", f->dir, sub);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	(void)closedir(d);
	return (n);
}

/* The only name in a directory (for active/). */
static void
only_name(struct fixture *f, const char *sub, char *name, size_t size)
{
	char		 path[PATH_MAX];
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	PATHF(path, "%s/%s", f->dir, sub);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		(void)strlcpy(name, de->d_name, size);
		n++;
	}
	(void)closedir(d);
	assert_int_equal(n, 1);
}

static void
make_msg(struct spool *sp, const char *text, const char *rcpt,
    char id[QUEUE_ID_SIZE])
{
	struct spool_writer	*w;
	struct envelope		 env;

	assert_int_equal(spool_writer_begin(sp, &w, id), 0);
	assert_int_equal(spool_writer_write(w, text, strlen(text)), 0);
	memset(&env, 0, sizeof(env));
	env.arrival = time(NULL);
	env.sender = xstrdup("sender@example.org");
	env.client_addr = xstrdup("127.0.0.1");
	(void)envelope_add_recipient(&env, rcpt);
	(void)envelope_add_recipient(&env, "second@example.test");
	assert_int_equal(spool_writer_commit(w, &env), 0);
	assert_string_equal(env.id, id);
	envelope_free(&env);
}

static void
test_open(void **state)
{
	struct fixture	*f = *state;
	struct spool	*sp;
	struct stat	 st;
	char		 path[PATH_MAX];
	uint64_t	 free_bytes;

	PATHF(path, "%s/missing", f->root);
	errno = 0;
	assert_int_equal(spool_open(path, 0, &sp), -1);
	assert_int_equal(errno, ENOENT);
	PATHF(path, "%s/queue", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	/* Opening an existing spool without create works too. */
	assert_int_equal(spool_open(f->dir, 0, &sp), 0);
	assert_int_equal(spool_free_bytes(sp, &free_bytes), 0);
	assert_true(free_bytes > 0);
	spool_close(sp);
}

static void
test_writer_commit_abort(void **state)
{
	struct fixture		*f = *state;
	struct spool_writer	*w;
	struct envelope		 env;
	char			 id[QUEUE_ID_SIZE], id2[QUEUE_ID_SIZE];
	char			 buf[256];
	uint64_t		 size;
	int			 fd;

	make_msg(f->sp, body, "rcpt@example.test", id);
	assert_int_equal(count_dir(f, "tmp"), 0);
	assert_int_equal(count_dir(f, "queue"), 1);
	assert_int_equal(spool_read_envelope(f->sp, id, &env), 0);
	assert_string_equal(env.id, id);
	assert_string_equal(env.sender, "sender@example.org");
	assert_int_equal(env.size, strlen(body));
	assert_int_equal(env.nrcpts, 2);
	assert_string_equal(env.rcpts[0].addr, "rcpt@example.test");
	assert_int_equal(env.rcpts[0].state, RCPT_QUEUED);
	assert_false(env.held);
	assert_false(env.claimed);
	envelope_free(&env);

	/* The message bytes, exactly. */
	assert_int_equal(spool_open_message(f->sp, id, &fd, &size), 0);
	assert_int_equal(size, strlen(body));
	assert_int_equal(read(fd, buf, size), (ssize_t)size);
	assert_memory_equal(buf, body, size);
	(void)close(fd);

	/* abort leaves nothing. */
	assert_int_equal(spool_writer_begin(f->sp, &w, id2), 0);
	assert_int_equal(count_dir(f, "tmp"), 1);
	assert_int_equal(spool_writer_write(w, body, strlen(body)), 0);
	spool_writer_abort(w);
	assert_int_equal(count_dir(f, "tmp"), 0);
	assert_int_equal(count_dir(f, "queue"), 1);

	/* A commit that fails (no recipient) leaves nothing either. */
	assert_int_equal(spool_writer_begin(f->sp, &w, id2), 0);
	memset(&env, 0, sizeof(env));
	env.sender = xstrdup("");
	assert_int_equal(spool_writer_commit(w, &env), -1);
	assert_int_equal(errno, EINVAL);
	envelope_free(&env);
	assert_int_equal(count_dir(f, "tmp"), 0);
	assert_int_equal(count_dir(f, "queue"), 1);
	errno = 0;
	assert_int_equal(spool_read_envelope(f->sp, id2, &env), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_read_envelope(f->sp, "../../x", &env), -1);
}

static int
last_error_fn(const struct envelope *env, void *arg)
{
	size_t	*count = arg;

	assert_int_equal(env->nrcpts, 300);
	assert_non_null(env->rcpts[299].last_error);
	assert_string_equal(env->rcpts[299].last_error,
	    "421 4.4.2 mx.example.test: connection lost");
	*count = 1;
	return (0);
}

static void
test_large_message(void **state)
{
	struct fixture		*f = *state;
	struct spool_writer	*w;
	struct spool_claim	*c;
	struct envelope		 env;
	const unsigned char	*data;
	size_t			 len, i;
	char			 id[QUEUE_ID_SIZE], line[80];
	char			 rcpt[64];

	/* Bigger than the write buffer, and a trailer bigger than 4 KB. */
	assert_int_equal(spool_writer_begin(f->sp, &w, id), 0);
	for (i = 0; i < 20000; i++) {
		PATHF(line, "line %06zu\r\n", i);
		assert_int_equal(spool_writer_write(w, line, strlen(line)), 0);
	}
	memset(&env, 0, sizeof(env));
	env.sender = xstrdup("s@example.org");
	for (i = 0; i < 300; i++) {
		PATHF(rcpt, "user%03zu@example.test", i);
		(void)envelope_add_recipient(&env, rcpt);
	}
	assert_int_equal(spool_writer_commit(w, &env), 0);
	envelope_free(&env);
	assert_int_equal(spool_read_envelope(f->sp, id, &env), 0);
	assert_int_equal(env.nrcpts, 300);
	assert_string_equal(env.rcpts[299].addr, "user299@example.test");
	envelope_free(&env);
	/* A state file bigger than 4 KB too, read back by a listing. */
	assert_int_equal(spool_claim(f->sp, id, &c), 0);
	for (i = 0; i < 300; i++)
		spool_claim_envelope(c)->rcpts[i].last_error =
		    xstrdup("421 4.4.2 mx.example.test: connection lost");
	assert_int_equal(spool_unclaim(c), 0);
	i = 0;
	assert_int_equal(spool_foreach(f->sp, last_error_fn, &i), 0);
	assert_int_equal(i, 1);

	assert_int_equal(spool_claim(f->sp, id, &c), 0);
	assert_int_equal(spool_claim_message(c, &data, &len), 0);
	assert_int_equal(len, 20000 * 13);
	assert_memory_equal(data + 13 * 19999, "line 019999\r\n", 13);
	assert_int_equal(spool_claim_remove(c), 0);
	assert_int_equal(count_dir(f, "active"), 0);
}

static void
test_commit_as(void **state)
{
	struct fixture		*f = *state;
	struct spool_writer	*w;
	struct envelope		 env;
	char			 tmpid[QUEUE_ID_SIZE], id[QUEUE_ID_SIZE];
	char			 other[QUEUE_ID_SIZE];
	int			 round;

	assert_int_equal(queue_id_new(id), 0);
	assert_int_equal(spool_exists(f->sp, id), 0);
	for (round = 0; round < 2; round++) {
		assert_int_equal(spool_writer_begin(f->sp, &w, tmpid), 0);
		assert_int_equal(spool_writer_write(w, body, strlen(body)), 0);
		memset(&env, 0, sizeof(env));
		env.sender = xstrdup("");
		(void)envelope_add_recipient(&env, "s@example.org");
		errno = 0;
		assert_int_equal(spool_writer_commit_as(w, &env, id),
		    round == 0 ? 0 : -1);
		if (round == 1)
			assert_int_equal(errno, EEXIST);
		envelope_free(&env);
		assert_int_equal(count_dir(f, "tmp"), 0);
		assert_int_equal(count_dir(f, "queue"), 1);
		assert_int_equal(spool_exists(f->sp, id), 1);
	}
	assert_int_equal(spool_read_envelope(f->sp, id, &env), 0);
	assert_string_equal(env.id, id);
	envelope_free(&env);

	/* Held, the ID still exists; an invalid ID is refused. */
	assert_int_equal(spool_hold(f->sp, id), 0);
	assert_int_equal(spool_writer_begin(f->sp, &w, tmpid), 0);
	memset(&env, 0, sizeof(env));
	env.sender = xstrdup("");
	(void)envelope_add_recipient(&env, "s@example.org");
	assert_int_equal(spool_writer_commit_as(w, &env, id), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(spool_writer_begin(f->sp, &w, other), 0);
	assert_int_equal(spool_writer_commit_as(w, &env, "a/b"), -1);
	assert_int_equal(errno, EINVAL);
	envelope_free(&env);
	assert_int_equal(count_dir(f, "tmp"), 0);
	assert_int_equal(count_dir(f, "queue"), 0);
	assert_int_equal(count_dir(f, "hold"), 1);
}

struct collect {
	char	 ids[64][QUEUE_ID_SIZE];
	int	 held[64];
	int	 claimed[64];
	int	 n;
	int	 stop_at;
};

static int
collect_fn(const struct envelope *env, void *arg)
{
	struct collect	*c = arg;

	assert_true(c->n < 64);
	(void)strlcpy(c->ids[c->n], env->id, QUEUE_ID_SIZE);
	c->held[c->n] = env->held;
	c->claimed[c->n] = env->claimed;
	c->n++;
	return (c->n == c->stop_at ? 7 : 0);
}

/* Listings merge the state of exactly the messages that have one. */
static int
state_fn(const struct envelope *env, void *arg)
{
	int	*n = arg;

	n[0]++;
	if (env->rcpts[0].state == RCPT_DEFERRED) {
		n[1]++;
		assert_int_equal(env->next_retry, 4242);
	} else
		assert_int_equal(env->next_retry, 0);
	return (0);
}

static void
test_foreach_states(void **state)
{
	struct fixture		*f = *state;
	struct spool_claim	*c;
	char			 ids[70][QUEUE_ID_SIZE];
	int			 i, n[2];

	for (i = 0; i < 70; i++)
		make_msg(f->sp, body, "r@example.test", ids[i]);
	for (i = 0; i < 70; i += 7) {
		assert_int_equal(spool_claim(f->sp, ids[i], &c), 0);
		spool_claim_envelope(c)->rcpts[0].state = RCPT_DEFERRED;
		spool_claim_envelope(c)->next_retry = 4242;
		assert_int_equal(spool_unclaim(c), 0);
	}
	memset(n, 0, sizeof(n));
	assert_int_equal(spool_foreach(f->sp, state_fn, n), 0);
	assert_int_equal(n[0], 70);
	assert_int_equal(n[1], 10);
}

static void
test_foreach_order(void **state)
{
	struct fixture		*f = *state;
	struct spool_claim	*c;
	struct collect		 col;
	char			 ids[20][QUEUE_ID_SIZE];
	int			 i;

	for (i = 0; i < 20; i++)
		make_msg(f->sp, body, "r@example.test", ids[i]);
	assert_int_equal(spool_hold(f->sp, ids[5]), 0);
	assert_int_equal(spool_claim(f->sp, ids[9], &c), 0);

	memset(&col, 0, sizeof(col));
	assert_int_equal(spool_foreach(f->sp, collect_fn, &col), 0);
	assert_int_equal(col.n, 20);
	for (i = 0; i < 20; i++) {
		assert_string_equal(col.ids[i], ids[i]);
		assert_int_equal(col.held[i], i == 5);
		assert_int_equal(col.claimed[i], i == 9);
	}
	/* A non-zero return stops the walk and is returned. */
	memset(&col, 0, sizeof(col));
	col.stop_at = 3;
	assert_int_equal(spool_foreach(f->sp, collect_fn, &col), 7);
	assert_int_equal(col.n, 3);
	assert_int_equal(spool_unclaim(c), 0);

	/* Empty spool: no call. */
	for (i = 0; i < 20; i++)
		assert_int_equal(spool_delete(f->sp, ids[i]), 0);
	memset(&col, 0, sizeof(col));
	assert_int_equal(spool_foreach(f->sp, collect_fn, &col), 0);
	assert_int_equal(col.n, 0);
}

struct moving {
	struct spool	*sp;
	char		 ids[100][QUEUE_ID_SIZE];
	int		 seen[100];
	int		 held[100];
};

static int
moving_fn(const struct envelope *env, void *arg)
{
	struct moving	*m = arg;
	int		 i;

	for (i = 0; i < 100; i++)
		if (strcmp(env->id, m->ids[i]) == 0)
			break;
	assert_true(i < 100);
	m->seen[i]++;
	m->held[i] = env->held;
	if (i == 0) {
		/* Far ahead of the walk (another batch): changed under it. */
		assert_int_equal(spool_delete(m->sp, m->ids[90]), 0);
		assert_int_equal(spool_hold(m->sp, m->ids[91]), 0);
	}
	return (0);
}

/* Messages deleted or moved during a listing: skipped, or found. */
static void
test_foreach_moving(void **state)
{
	struct fixture	*f = *state;
	struct moving	*m;
	int		 i;

	m = calloc(1, sizeof(*m));
	assert_non_null(m);
	m->sp = f->sp;
	for (i = 0; i < 100; i++)
		make_msg(f->sp, body, "r@example.test", m->ids[i]);
	assert_int_equal(spool_foreach(f->sp, moving_fn, m), 0);
	for (i = 0; i < 100; i++)
		assert_int_equal(m->seen[i], i == 90 ? 0 : 1);
	assert_true(m->held[91]);
	assert_false(m->held[92]);
	free(m);
}

static void
test_claim_cycle(void **state)
{
	struct fixture		*f = *state;
	struct spool_claim	*c, *c2;
	struct envelope		*e, env;
	const unsigned char	*data;
	size_t			 len;
	char			 id[QUEUE_ID_SIZE];

	make_msg(f->sp, body, "r@example.test", id);
	assert_int_equal(spool_claim(f->sp, id, &c), 0);
	assert_int_equal(count_dir(f, "queue"), 0);
	assert_int_equal(count_dir(f, "active"), 1);

	/* Nobody else gets it. */
	errno = 0;
	assert_int_equal(spool_claim(f->sp, id, &c2), -1);
	assert_int_equal(errno, ENOENT);

	assert_int_equal(spool_claim_message(c, &data, &len), 0);
	assert_int_equal(len, strlen(body));
	assert_memory_equal(data, body, len);

	e = spool_claim_envelope(c);
	e->rcpts[0].state = RCPT_DELIVERED;
	e->rcpts[0].attempts = 1;
	e->rcpts[1].state = RCPT_DEFERRED;
	e->rcpts[1].attempts = 1;
	e->rcpts[1].last_error = xstrdup("451 4.4.1 try later");
	e->next_retry = 1234567;
	assert_int_equal(spool_claim_update(c), 0);
	assert_int_equal(count_dir(f, "state"), 1);

	/* Readers see the merged state and that it is claimed. */
	assert_int_equal(spool_read_envelope(f->sp, id, &env), 0);
	assert_true(env.claimed);
	assert_int_equal(env.rcpts[0].state, RCPT_DELIVERED);
	assert_string_equal(env.rcpts[1].last_error, "451 4.4.1 try later");
	assert_int_equal(env.next_retry, 1234567);
	envelope_free(&env);

	assert_int_equal(spool_unclaim(c), 0);
	assert_int_equal(count_dir(f, "queue"), 1);
	assert_int_equal(count_dir(f, "active"), 0);

	/* Claimed again: the state came along. */
	assert_int_equal(spool_claim(f->sp, id, &c), 0);
	e = spool_claim_envelope(c);
	assert_int_equal(e->rcpts[0].state, RCPT_DELIVERED);
	assert_int_equal(e->rcpts[1].state, RCPT_DEFERRED);
	e->rcpts[1].state = RCPT_DELIVERED;
	assert_int_equal(spool_claim_remove(c), 0);
	assert_int_equal(count_dir(f, "queue"), 0);
	assert_int_equal(count_dir(f, "active"), 0);
	assert_int_equal(count_dir(f, "state"), 0);
	assert_int_equal(spool_exists(f->sp, id), 0);
	errno = 0;
	assert_int_equal(spool_claim(f->sp, id, &c), -1);
	assert_int_equal(errno, ENOENT);
}

/*
 * Removals without the fsync, then one sync for all: each message is
 * gone at once; state files (one written during the claim, one left by
 * an earlier claim) only go with the sync; a claim taken away meanwhile
 * fails with ENOENT and the others are still removed.
 */
static void
test_claim_remove_nosync(void **state)
{
	struct fixture		*f = *state;
	struct spool_claim	*cv[4];
	char			 id[4][QUEUE_ID_SIZE], p2[PATH_MAX], q[PATH_MAX];
	DIR			*d;
	struct dirent		*de;
	int			 i;

	assert_int_equal(spool_sync_removals(f->sp), 0);	/* nothing */
	for (i = 0; i < 4; i++) {
		make_msg(f->sp, body, "r@example.test", id[i]);
		assert_int_equal(spool_claim(f->sp, id[i], &cv[i]), 0);
	}
	spool_claim_envelope(cv[1])->rcpts[1].state = RCPT_DEFERRED;
	assert_int_equal(spool_claim_update(cv[1]), 0);
	spool_claim_envelope(cv[2])->rcpts[1].state = RCPT_DEFERRED;
	assert_int_equal(spool_unclaim(cv[2]), 0);
	assert_int_equal(spool_claim(f->sp, id[2], &cv[2]), 0);
	assert_int_equal(count_dir(f, "state"), 2);
	assert_int_equal(count_dir(f, "active"), 4);

	/* id[3]'s claim file is taken away behind the spool's back. */
	PATHF(p2, "%s/active", f->dir);
	assert_non_null(d = opendir(p2));
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, id[3], QUEUE_ID_LEN) == 0)
			break;
	assert_non_null(de);
	PATHF(q, "%s/%s", p2, de->d_name);
	(void)closedir(d);
	assert_int_equal(unlink(q), 0);

	for (i = 0; i < 3; i++) {
		assert_int_equal(spool_claim_remove_nosync(cv[i]), 0);
		assert_int_equal(spool_exists(f->sp, id[i]), 0);
	}
	errno = 0;
	assert_int_equal(spool_claim_remove_nosync(cv[3]), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(count_dir(f, "active"), 0);
	assert_int_equal(count_dir(f, "state"), 2);	/* until the sync */
	assert_int_equal(spool_sync_removals(f->sp), 0);
	assert_int_equal(count_dir(f, "state"), 0);
	assert_int_equal(count_dir(f, "queue"), 0);

	/* spool_close syncs what is left. */
	make_msg(f->sp, body, "r@example.test", id[0]);
	assert_int_equal(spool_claim(f->sp, id[0], &cv[0]), 0);
	assert_int_equal(spool_claim_update(cv[0]), 0);
	assert_int_equal(spool_claim_remove_nosync(cv[0]), 0);
	assert_int_equal(count_dir(f, "state"), 1);
	spool_close(f->sp);
	assert_int_equal(spool_open(f->dir, 0, &f->sp), 0);
	assert_int_equal(count_dir(f, "state"), 0);
}

static void
test_unclaim_saves_state(void **state)
{
	struct fixture		*f = *state;
	struct spool_claim	*c;
	struct envelope		 env;
	char			 id[QUEUE_ID_SIZE];

	make_msg(f->sp, body, "r@example.test", id);
	/* Unchanged: no state file is written. */
	assert_int_equal(spool_claim(f->sp, id, &c), 0);
	assert_int_equal(spool_unclaim(c), 0);
	assert_int_equal(count_dir(f, "state"), 0);
	/* Changed without update: unclaim saves it first. */
	assert_int_equal(spool_claim(f->sp, id, &c), 0);
	spool_claim_envelope(c)->rcpts[0].state = RCPT_FAILED;
	spool_claim_envelope(c)->warned = 1;
	assert_int_equal(spool_unclaim(c), 0);
	assert_int_equal(spool_read_envelope(f->sp, id, &env), 0);
	assert_int_equal(env.rcpts[0].state, RCPT_FAILED);
	assert_int_equal(env.rcpts[1].state, RCPT_QUEUED);
	assert_true(env.warned);
	assert_false(env.claimed);
	envelope_free(&env);
}

static void
test_hold_release_delete(void **state)
{
	struct fixture		*f = *state;
	struct spool_claim	*c;
	struct envelope		 env;
	char			 id[QUEUE_ID_SIZE], id2[QUEUE_ID_SIZE];

	make_msg(f->sp, body, "r@example.test", id);
	make_msg(f->sp, body, "r@example.test", id2);
	assert_int_equal(spool_hold(f->sp, id), 0);
	errno = 0;
	assert_int_equal(spool_hold(f->sp, id), -1);
	assert_int_equal(errno, ENOENT);
	/* A held message is never claimable. */
	errno = 0;
	assert_int_equal(spool_claim(f->sp, id, &c), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_read_envelope(f->sp, id, &env), 0);
	assert_true(env.held);
	envelope_free(&env);
	assert_int_equal(spool_release(f->sp, id), 0);
	assert_int_equal(spool_release(f->sp, id), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_claim(f->sp, id, &c), 0);
	/* A claimed message is not held, released or deleted by ID. */
	assert_int_equal(spool_hold(f->sp, id), -1);
	assert_int_equal(spool_delete(f->sp, id), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_claim_update(c), 0);
	assert_int_equal(spool_unclaim(c), 0);

	/* Delete: queued and held alike, with their state. */
	assert_int_equal(spool_hold(f->sp, id2), 0);
	assert_int_equal(spool_delete(f->sp, id), 0);
	assert_int_equal(spool_delete(f->sp, id2), 0);
	assert_int_equal(spool_delete(f->sp, id2), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(count_dir(f, "queue"), 0);
	assert_int_equal(count_dir(f, "hold"), 0);
	assert_int_equal(count_dir(f, "active"), 0);
	assert_int_equal(count_dir(f, "state"), 0);

	/* Bad IDs touch nothing. */
	assert_int_equal(spool_hold(f->sp, "../queue/x"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_release(f->sp, ""), -1);
	assert_int_equal(spool_delete(f->sp, "a/b"), -1);
	assert_int_equal(spool_claim(f->sp, "..", &c), -1);
	assert_int_equal(spool_exists(f->sp, "x"), -1);
}

/* Flip one byte of a spool file at offset (negative: from the end). */
static void
flip_byte(struct fixture *f, const char *sub, const char *name, off_t off)
{
	char		 path[PATH_MAX];
	struct stat	 st;
	unsigned char	 b;
	int		 fd;

	path_of(f, path, sizeof(path), sub, name);
	assert_true((fd = open(path, O_RDWR)) != -1);
	assert_int_equal(fstat(fd, &st), 0);
	if (off < 0)
		off += st.st_size;
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= 0x20;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	(void)close(fd);
}

static void
test_quarantine_corrupt_body(void **state)
{
	struct fixture		*f = *state;
	struct spool_claim	*c;
	const unsigned char	*data;
	size_t			 len;
	char			 id[QUEUE_ID_SIZE], path[PATH_MAX];
	struct stat		 st;

	make_msg(f->sp, body, "r@example.test", id);
	flip_byte(f, "queue", id, 3);
	/* The envelope is intact: listed and claimable... */
	assert_int_equal(spool_claim(f->sp, id, &c), 0);
	/* ...but the body never comes back. */
	errno = 0;
	assert_int_equal(spool_claim_message(c, &data, &len), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(spool_quarantine(c), 0);
	path_of(f, path, sizeof(path), "corrupt", id);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(count_dir(f, "queue"), 0);
	assert_int_equal(count_dir(f, "active"), 0);
	assert_int_equal(spool_exists(f->sp, id), 1);
	/* Quarantined messages are not listed nor recovered. */
	assert_int_equal(spool_recover(f->sp, 0), 0);
	assert_int_equal(count_dir(f, "corrupt"), 1);
	assert_int_equal(spool_claim(f->sp, id, &c), -1);
	/* The administrator may delete it. */
	assert_int_equal(spool_delete(f->sp, id), 0);
	assert_int_equal(count_dir(f, "corrupt"), 0);
}

static void
test_corrupt_envelope(void **state)
{
	struct fixture		*f = *state;
	struct spool_claim	*c;
	struct collect		 col;
	char			 id[QUEUE_ID_SIZE], ok[QUEUE_ID_SIZE];

	make_msg(f->sp, body, "r@example.test", id);
	make_msg(f->sp, body, "r@example.test", ok);
	/* A byte of the trailer ("sender ...") garbled. */
	flip_byte(f, "queue", id, (off_t)strlen(body) + 3);
	memset(&col, 0, sizeof(col));
	assert_int_equal(spool_foreach(f->sp, collect_fn, &col), 0);
	assert_int_equal(col.n, 1);
	assert_string_equal(col.ids[0], ok);
	errno = 0;
	assert_int_equal(spool_claim(f->sp, id, &c), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(count_dir(f, "corrupt"), 1);
	assert_int_equal(count_dir(f, "active"), 0);
}

/* Crash during S0 -> S1: a partial file in tmp/. */
static void
test_crash_leftover_tmp(void **state)
{
	struct fixture	*f = *state;
	struct collect	 col;
	struct timeval	 tv[2];
	char		 id[QUEUE_ID_SIZE], path[PATH_MAX];
	int		 fd;

	assert_int_equal(queue_id_new(id), 0);
	path_of(f, path, sizeof(path), "tmp", id);
	assert_true((fd = open(path, O_WRONLY | O_CREAT, 0600)) != -1);
	assert_int_equal(write(fd, "Subject: half", 13), 13);
	(void)close(fd);

	memset(&col, 0, sizeof(col));
	assert_int_equal(spool_foreach(f->sp, collect_fn, &col), 0);
	assert_int_equal(col.n, 0);
	assert_int_equal(spool_exists(f->sp, id), 0);
	/* Young: may still be written by a live receive. */
	assert_int_equal(spool_recover(f->sp, 3600), 0);
	assert_int_equal(count_dir(f, "tmp"), 1);
	/* Two days old: removed. */
	tv[0].tv_sec = tv[1].tv_sec = time(NULL) - 2 * 86400;
	tv[0].tv_usec = tv[1].tv_usec = 0;
	assert_int_equal(utimes(path, tv), 0);
	assert_int_equal(spool_recover(f->sp, 3600), 0);
	assert_int_equal(count_dir(f, "tmp"), 0);
}

/* The holder of a claim died: a child claims and exits. */
static void
test_crash_stale_claim_dead_pid(void **state)
{
	struct fixture		*f = *state;
	struct spool_claim	*c;
	struct collect		 col;
	char			 id[QUEUE_ID_SIZE];
	pid_t			 pid;
	int			 status;

	make_msg(f->sp, body, "r@example.test", id);
	if ((pid = fork()) == 0) {
		struct spool_claim	*cc;
		struct envelope		*e;

		if (spool_claim(f->sp, id, &cc) == -1)
			_exit(1);
		e = spool_claim_envelope(cc);
		e->rcpts[0].state = RCPT_DELIVERED;
		if (spool_claim_update(cc) == -1)
			_exit(2);
		_exit(0);	/* crash: claim never given back */
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(count_dir(f, "active"), 1);

	/* Still listed (claimed), not claimable. */
	memset(&col, 0, sizeof(col));
	assert_int_equal(spool_foreach(f->sp, collect_fn, &col), 0);
	assert_int_equal(col.n, 1);
	assert_true(col.claimed[0]);
	assert_int_equal(spool_claim(f->sp, id, &c), -1);

	/* Dead pid on this host: recovered at once, whatever the timeout. */
	assert_int_equal(spool_recover(f->sp, 86400), 0);
	assert_int_equal(count_dir(f, "active"), 0);
	assert_int_equal(spool_claim(f->sp, id, &c), 0);
	/* Nothing the dead holder saved was lost. */
	assert_int_equal(spool_claim_envelope(c)->rcpts[0].state,
	    RCPT_DELIVERED);
	assert_int_equal(spool_claim_envelope(c)->rcpts[1].state,
	    RCPT_QUEUED);
	assert_int_equal(spool_unclaim(c), 0);
}

/* A holder killed but not yet reaped (a zombie) is dead too. */
static void
test_crash_stale_claim_zombie(void **state)
{
	struct fixture		*f = *state;
	struct spool_claim	*c;
	char			 id[QUEUE_ID_SIZE];
	pid_t			 pid;
	int			 status, i;

	make_msg(f->sp, body, "r@example.test", id);
	if ((pid = fork()) == 0) {
		struct spool_claim	*cc;

		if (spool_claim(f->sp, id, &cc) == -1)
			_exit(1);
		_exit(0);
	}
	assert_true(pid > 0);
	/* Wait until the child has claimed and exited, without reaping. */
	for (i = 0; i < 500 && count_dir(f, "active") == 0; i++)
		usleep(10000);
	assert_int_equal(count_dir(f, "active"), 1);
	for (i = 0; i < 500; i++) {
		siginfo_t	 si;

		memset(&si, 0, sizeof(si));
		assert_int_equal(waitid(P_PID, pid, &si,
		    WEXITED | WNOHANG | WNOWAIT), 0);
		if (si.si_pid == pid)
			break;
		usleep(10000);
	}
	assert_int_equal(kill(pid, 0), 0);	/* still there: a zombie */
	assert_int_equal(spool_recover(f->sp, 86400), 0);
	assert_int_equal(count_dir(f, "active"), 0);
	assert_int_equal(spool_claim(f->sp, id, &c), 0);
	assert_int_equal(spool_unclaim(c), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
}

/* A claim by a live (hung) process, or one on another host: by age. */
static void
test_crash_stale_claim_ctime(void **state)
{
	struct fixture		*f = *state;
	struct spool_claim	*c;
	char			 id[QUEUE_ID_SIZE], name[PATH_MAX];
	char			 from[PATH_MAX], to[PATH_MAX];

	make_msg(f->sp, body, "r@example.test", id);
	assert_int_equal(spool_claim(f->sp, id, &c), 0);
	spool_claim_free(c);		/* the holder hangs */
	assert_int_equal(spool_recover(f->sp, 3600), 0);
	assert_int_equal(count_dir(f, "active"), 1);	/* alive, young */

	/* The same claim as another host's: its pid means nothing here. */
	only_name(f, "active", name, sizeof(name));
	path_of(f, from, sizeof(from), "active", name);
	PATHF(to, "%s/active/%s.other-host.example.1",
	    f->dir, id);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(spool_recover(f->sp, 3600), 0);
	assert_int_equal(count_dir(f, "active"), 1);
	/* Older than the timeout (0 here): recovered. */
	assert_int_equal(spool_recover(f->sp, 0), 0);
	assert_int_equal(count_dir(f, "active"), 0);
	assert_int_equal(count_dir(f, "queue"), 1);
	assert_int_equal(spool_claim(f->sp, id, &c), 0);
	assert_int_equal(spool_claim_remove(c), 0);
}

/* Crash during a state update: the temp file is partial. */
static void
test_crash_half_state_temp(void **state)
{
	struct fixture		*f = *state;
	struct spool_claim	*c;
	struct envelope		 env;
	char			 id[QUEUE_ID_SIZE], name[PATH_MAX];
	char			 path[PATH_MAX];
	int			 fd;

	make_msg(f->sp, body, "r@example.test", id);
	assert_int_equal(spool_claim(f->sp, id, &c), 0);
	spool_claim_envelope(c)->rcpts[0].state = RCPT_DEFERRED;
	assert_int_equal(spool_claim_update(c), 0);
	assert_int_equal(spool_unclaim(c), 0);

	PATHF(name, "%s.state.somehost.4242", id);
	path_of(f, path, sizeof(path), "tmp", name);
	assert_true((fd = open(path, O_WRONLY | O_CREAT, 0600)) != -1);
	assert_int_equal(write(fd, "S1\nnext-retry 9\nrcpt r@exa", 26), 26);
	(void)close(fd);

	/* Readers use the last complete state only. */
	assert_int_equal(spool_read_envelope(f->sp, id, &env), 0);
	assert_int_equal(env.rcpts[0].state, RCPT_DEFERRED);
	assert_int_equal(env.next_retry, 0);
	envelope_free(&env);
	assert_int_equal(spool_claim(f->sp, id, &c), 0);
	assert_int_equal(spool_claim_envelope(c)->rcpts[0].state,
	    RCPT_DEFERRED);
	assert_int_equal(spool_unclaim(c), 0);
}

/* Crash inside remove: message gone, state file left. */
static void
test_crash_orphan_state(void **state)
{
	struct fixture		*f = *state;
	struct spool_claim	*c;
	char			 id[QUEUE_ID_SIZE], keep[QUEUE_ID_SIZE];
	char			 name[PATH_MAX], path[PATH_MAX];

	make_msg(f->sp, body, "r@example.test", id);
	make_msg(f->sp, body, "r@example.test", keep);
	assert_int_equal(spool_claim(f->sp, keep, &c), 0);
	spool_claim_envelope(c)->rcpts[0].state = RCPT_DEFERRED;
	assert_int_equal(spool_claim_update(c), 0);
	assert_int_equal(spool_unclaim(c), 0);

	assert_int_equal(spool_claim(f->sp, id, &c), 0);
	spool_claim_envelope(c)->rcpts[0].state = RCPT_DELIVERED;
	assert_int_equal(spool_claim_update(c), 0);
	/* The first step of remove, then the crash. */
	only_name(f, "active", name, sizeof(name));
	path_of(f, path, sizeof(path), "active", name);
	assert_int_equal(unlink(path), 0);
	spool_claim_free(c);
	assert_int_equal(count_dir(f, "state"), 2);

	assert_int_equal(spool_recover(f->sp, 3600), 0);
	assert_int_equal(count_dir(f, "state"), 1);
	path_of(f, path, sizeof(path), "state", keep);
	assert_int_equal(access(path, F_OK), 0);
}

/* A message file cut short (no footer): skipped, never a crash. */
static void
test_crash_truncated_message(void **state)
{
	struct fixture		*f = *state;
	struct spool_claim	*c;
	struct collect		 col;
	struct envelope		 env;
	struct stat		 st;
	char			 id[QUEUE_ID_SIZE], ok[QUEUE_ID_SIZE];
	char			 path[PATH_MAX];
	off_t			 sizes[] = { 0, 5, 31, -40, -1 };
	size_t			 i;

	make_msg(f->sp, body, "r@example.test", ok);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		make_msg(f->sp, body, "r@example.test", id);
		path_of(f, path, sizeof(path), "queue", id);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(truncate(path, sizes[i] >= 0 ? sizes[i] :
		    st.st_size + sizes[i]), 0);

		memset(&col, 0, sizeof(col));
		assert_int_equal(spool_foreach(f->sp, collect_fn, &col), 0);
		assert_int_equal(col.n, 1);
		assert_string_equal(col.ids[0], ok);
		assert_int_equal(spool_read_envelope(f->sp, id, &env), -1);
		assert_int_equal(errno, EBADMSG);
		assert_int_equal(spool_claim(f->sp, id, &c), -1);
		assert_int_equal(errno, EBADMSG);
		assert_int_equal(count_dir(f, "queue"), 1);
	}
	assert_int_equal(count_dir(f, "corrupt"), 5);
}

/* Corrupt state file: the message is unreadable, not silently fresh. */
static void
test_corrupt_state(void **state)
{
	struct fixture		*f = *state;
	struct spool_claim	*c;
	struct envelope		 env;
	char			 id[QUEUE_ID_SIZE], path[PATH_MAX];
	int			 fd;

	make_msg(f->sp, body, "r@example.test", id);
	path_of(f, path, sizeof(path), "state", id);
	assert_true((fd = open(path, O_WRONLY | O_CREAT, 0600)) != -1);
	assert_int_equal(write(fd, "S1\nrcpt nobody@x\nend\n", 21), 21);
	(void)close(fd);
	assert_int_equal(spool_read_envelope(f->sp, id, &env), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(spool_claim(f->sp, id, &c), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(count_dir(f, "corrupt"), 2);	/* message, state */
	assert_int_equal(count_dir(f, "state"), 0);
}

#define RACE_MSGS	50
#define RACE_PROCS	4

static void
test_claim_race(void **state)
{
	struct fixture		*f = *state;
	char			 ids[RACE_MSGS][QUEUE_ID_SIZE];
	char			 line[QUEUE_ID_SIZE + 1];
	int			 seen[RACE_MSGS];
	int			 p[2], i, j, k, status, total = 0;
	pid_t			 pids[RACE_PROCS];
	FILE			*in;

	for (i = 0; i < RACE_MSGS; i++)
		make_msg(f->sp, body, "r@example.test", ids[i]);
	assert_int_equal(pipe(p), 0);
	for (k = 0; k < RACE_PROCS; k++) {
		if ((pids[k] = fork()) == 0) {
			struct spool		*sp;
			struct spool_claim	*c;

			(void)close(p[0]);
			/* Each its own spool handle, as separate flushes. */
			if (spool_open(f->dir, 0, &sp) == -1)
				_exit(1);
			for (j = 0; j < RACE_MSGS; j++) {
				i = (j + k * 13) % RACE_MSGS;
				if (spool_claim(sp, ids[i], &c) == -1) {
					if (errno != ENOENT)
						_exit(2);
					continue;
				}
				PATHF(line, "%s\n",
				    ids[i]);
				if (write(p[1], line, QUEUE_ID_SIZE) !=
				    QUEUE_ID_SIZE)
					_exit(3);
				if (spool_claim_remove(c) == -1)
					_exit(4);
			}
			spool_close(sp);
			_exit(0);
		}
		assert_true(pids[k] > 0);
	}
	(void)close(p[1]);
	memset(seen, 0, sizeof(seen));
	assert_non_null(in = fdopen(p[0], "r"));
	while (fgets(line, sizeof(line), in) != NULL) {
		line[QUEUE_ID_LEN] = '\0';
		for (i = 0; i < RACE_MSGS; i++)
			if (strcmp(line, ids[i]) == 0)
				seen[i]++;
		total++;
	}
	(void)fclose(in);
	for (k = 0; k < RACE_PROCS; k++) {
		assert_int_equal(waitpid(pids[k], &status, 0), pids[k]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(total, RACE_MSGS);
	for (i = 0; i < RACE_MSGS; i++)
		assert_int_equal(seen[i], 1);
	assert_int_equal(count_dir(f, "queue"), 0);
	assert_int_equal(count_dir(f, "active"), 0);
}

/* Disk full: ENOSPC, and nothing left behind (needs root for tmpfs). */
static void
test_disk_full(void **state)
{
	struct fixture		*f = *state;
	struct spool_writer	*w;
	struct envelope		 env;
	struct spool		*sp;
	char			 dir[PATH_MAX], id[QUEUE_ID_SIZE];
	static char		 chunk[64 * 1024];
	int			 i, r = 0;

	if (mount("tmpfs", f->root, "tmpfs", 0, "size=1m,mode=0700") == -1)
		skip();
	f->mounted = 1;
	PATHF(dir, "%s/full", f->root);
	assert_int_equal(spool_open(dir, 1, &sp), 0);
	memset(chunk, 'x', sizeof(chunk));
	chunk[sizeof(chunk) - 2] = '\r';
	chunk[sizeof(chunk) - 1] = '\n';
	assert_int_equal(spool_writer_begin(sp, &w, id), 0);
	for (i = 0; i < 40 && r == 0; i++)
		r = spool_writer_write(w, chunk, sizeof(chunk));
	memset(&env, 0, sizeof(env));
	env.sender = xstrdup("");
	(void)envelope_add_recipient(&env, "r@example.test");
	if (r == 0) {
		assert_int_equal(spool_writer_commit(w, &env), -1);
		assert_int_equal(errno, ENOSPC);
	} else {
		assert_int_equal(errno, ENOSPC);
		/* A dead writer cannot be committed, and still frees. */
		assert_int_equal(spool_writer_commit(w, &env), -1);
		assert_int_equal(errno, ENOSPC);
	}
	envelope_free(&env);
	PATHF(f->dir, "%s", dir);
	assert_int_equal(count_dir(f, "tmp"), 0);
	assert_int_equal(count_dir(f, "queue"), 0);
	/* Space is back: a small message goes through. */
	make_msg(sp, body, "r@example.test", id);
	assert_int_equal(count_dir(f, "queue"), 1);
	spool_close(sp);
}

static void
test_domain_notes_and_locks(void **state)
{
	struct fixture	*f = *state;
	char		*text;
	time_t		 when;
	int		 fd, fd2;

	errno = 0;
	assert_int_equal(spool_domain_note_read(f->sp, "example.test", &text,
	    &when), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_domain_note_write(f->sp, "example.test",
	    "up mx1.example.test[127.0.0.2]:25 PIPELINING SIZE\n"), 0);
	assert_int_equal(spool_domain_note_write(f->sp, "Example.TEST",
	    "up again\n"), 0);
	assert_int_equal(spool_domain_note_read(f->sp, "example.test", &text,
	    &when), 0);
	assert_string_equal(text, "up again\n");
	assert_true(when > time(NULL) - 60 && when <= time(NULL));
	free(text);
	assert_int_equal(count_dir(f, "tmp"), 0);

	assert_int_equal(spool_domain_note_write(f->sp, "../x", "x"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_domain_note_write(f->sp, "a/b", "x"), -1);
	assert_int_equal(spool_domain_note_write(f->sp, ".hidden", "x"), -1);
	assert_int_equal(spool_domain_note_write(f->sp, "", "x"), -1);
	assert_int_equal(spool_domain_lock(f->sp, "a/../../b", &fd), -1);
	assert_int_equal(errno, EINVAL);

	assert_int_equal(spool_domain_lock(f->sp, "example.test", &fd), 0);
	errno = 0;
	assert_int_equal(spool_domain_lock(f->sp, "example.test", &fd2), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	assert_int_equal(spool_domain_lock(f->sp, "other.test", &fd2), 0);
	(void)close(fd2);
	(void)close(fd);
	assert_int_equal(spool_domain_lock(f->sp, "example.test", &fd), 0);
	(void)close(fd);
}

/* The spool's own subdirectories: never a link, never another's. */
static void
test_open_refuses_links(void **state)
{
	struct fixture	*f = *state;
	struct spool	*sp;
	struct stat	 st;
	char		 path[PATH_MAX], real[PATH_MAX], made[PATH_MAX];

	PATHF(path, "%s/state", f->dir);
	PATHF(real, "%s/elsewhere", f->root);
	assert_int_equal(rename(path, real), 0);
	assert_int_equal(symlink(real, path), 0);
	errno = 0;
	assert_int_equal(spool_open(f->dir, 0, &sp), -1);
	assert_int_equal(errno, ELOOP);
	errno = 0;
	assert_int_equal(spool_open(f->dir, 1, &sp), -1);
	assert_int_equal(errno, ELOOP);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rename(real, path), 0);

	PATHF(path, "%s/queue", f->dir);
	assert_int_equal(chmod(path, 0770), 0);
	errno = 0;
	assert_int_equal(spool_open(f->dir, 0, &sp), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(chmod(path, 0700), 0);
	assert_int_equal(chmod(f->dir, 0707), 0);
	errno = 0;
	assert_int_equal(spool_open(f->dir, 0, &sp), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(chmod(f->dir, 0700), 0);
	assert_int_equal(spool_open(f->dir, 0, &sp), 0);
	spool_close(sp);

	/* The directory root makes for the user: 0700, parents 0755. */
	PATHF(made, "%s/a/b/spool", f->root);
	assert_int_equal(spool_create_dir(made, getuid(), getgid()), 0);
	assert_int_equal(stat(made, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_uid, getuid());
	PATHF(path, "%s/a/b", f->root);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(chmod(made, 0750), 0);
	assert_int_equal(spool_create_dir(made, getuid(), getgid()), 0);
	assert_int_equal(stat(made, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);	/* left as it was */
}

/* Files made in the spool: never through a link planted there. */
static void
test_no_file_through_a_link(void **state)
{
	struct fixture	*f = *state;
	struct stat	 st;
	char		 host[DOMAIN_NAME_SIZE];
	char		 path[PATH_MAX], victim[PATH_MAX];
	char		*text;
	size_t		 i;
	int		 fd;

	if (gethostname(host, sizeof(host)) == -1 || host[0] == '\0')
		(void)strlcpy(host, "_", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	for (i = 0; host[i] != '\0'; i++)
		if (!((host[i] >= 'a' && host[i] <= 'z') ||
		    (host[i] >= 'A' && host[i] <= 'Z') ||
		    (host[i] >= '0' && host[i] <= '9') || host[i] == '-' ||
		    host[i] == '.'))
			host[i] = '_';
	PATHF(victim, "%s/victim", f->root);

	/* The temp name this process will use for its note. */
	PATHF(path, "%s/tmp/example.test.probe.%s.%ld", f->dir, host,
	    (long)getpid());
	assert_int_equal(symlink(victim, path), 0);
	assert_int_equal(spool_domain_note_write(f->sp, "example.test",
	    "up\n"), 0);
	errno = 0;
	assert_int_equal(lstat(victim, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(count_dir(f, "tmp"), 0);
	assert_int_equal(spool_domain_note_read(f->sp, "example.test", &text,
	    NULL), 0);
	assert_string_equal(text, "up\n");
	free(text);

	/* A note or a lock that is a link: refused, nothing made. */
	PATHF(path, "%s/domains/other.test.probe", f->dir);
	assert_int_equal(symlink(victim, path), 0);
	errno = 0;
	assert_int_equal(spool_domain_note_read(f->sp, "other.test", &text,
	    NULL), -1);
	assert_int_equal(errno, ELOOP);
	PATHF(path, "%s/domains/other.test.lock", f->dir);
	assert_int_equal(symlink(victim, path), 0);
	errno = 0;
	assert_int_equal(spool_domain_lock(f->sp, "other.test", &fd), -1);
	assert_int_equal(errno, ELOOP);
	assert_int_equal(lstat(victim, &st), -1);
	PATHF(path, "%s/domains/third.test.lock", f->dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	errno = 0;
	assert_int_equal(spool_domain_lock(f->sp, "third.test", &fd), -1);
	assert_int_equal(errno, EPERM);
}

/* An observation with the capabilities of one EHLO. */
static void
obs_fill(struct primary_obs *o, int up, time_t when, const char *host,
    uint64_t size, int utf8)
{
	memset(o, 0, sizeof(*o));
	o->up = up;
	o->checked = when;
	(void)strlcpy(o->host, host, sizeof(o->host));
	(void)strlcpy(o->source, "probe", sizeof(o->source));
	o->have_ehlo = up;
	o->size_max = size;
	o->smtputf8 = utf8;
	o->eightbitmime = utf8;
	o->dsn = 1;
}

/* spool_primary_walk's fn: a bit per domain seen (a.test, b.test). */
static int
walk_count(void *arg, const char *domain, const struct primary_obs *o)
{
	int	*seen = arg;

	assert_int_equal(o->checked, 1000);
	if (strcmp(domain, "a.test") == 0)
		*seen |= 1;
	else if (strcmp(domain, "b.test") == 0)
		*seen |= 2;
	else
		fail_msg("walked %s", domain);
	return (0);
}

/*
 * Callout slots: SPOOL_CALLOUT_SLOTS at once for a domain (flock is per
 * open file, so one process can hold them all), then EWOULDBLOCK; a
 * freed slot is taken again; another domain has its own; a bad domain
 * is EINVAL.
 */
static void
test_callout_slots(void **state)
{
	struct fixture	*f = *state;
	int		 fds[SPOOL_CALLOUT_SLOTS], fd, other, i;

	for (i = 0; i < SPOOL_CALLOUT_SLOTS; i++)
		assert_int_equal(spool_callout_slot(f->sp, "example.test",
		    &fds[i]), 0);
	errno = 0;
	assert_int_equal(spool_callout_slot(f->sp, "Example.TEST", &fd), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	assert_int_equal(spool_callout_slot(f->sp, "other.test", &other), 0);
	assert_int_equal(close(fds[3]), 0);
	assert_int_equal(spool_callout_slot(f->sp, "example.test", &fds[3]),
	    0);
	errno = 0;
	assert_int_equal(spool_callout_slot(f->sp, "../x", &fd), -1);
	assert_int_equal(errno, EINVAL);
	for (i = 0; i < SPOOL_CALLOUT_SLOTS; i++)
		(void)close(fds[i]);
	(void)close(other);
}

/* spool_host_walk's fn: count the notes. */
static int
host_count(void *arg, const struct host_note *n)
{
	(*(int *)arg)++;
	return (n->key[0] == '\0');
}

static void
test_host_note(void **state)
{
	struct fixture		*f = *state;
	struct host_note	 n, r;
	char			 buf[2048];
	time_t			 now = time(NULL);
	int			 count = 0, len;

	errno = 0;
	assert_int_equal(spool_host_read(f->sp, "127.0.0.2_25", &r), -1);
	assert_int_equal(errno, ENOENT);
	/* Down, down again: failures count, back-off doubles (60, 120). */
	assert_int_equal(spool_host_observe(f->sp, "127.0.0.2_25", 0,
	    "mx.example.test", "Connection\trefused", 60, 3600, &n), 0);
	assert_int_equal(spool_host_read(f->sp, "127.0.0.2_25", &r), 0);
	assert_int_equal(r.up, 0);
	assert_int_equal(r.failures, 1);
	assert_string_equal(r.host, "mx.example.test");
	assert_string_equal(r.reason, "Connection?refused");
	assert_true(r.retry >= now + 60 && r.retry <= time(NULL) + 60);
	assert_int_equal(r.retry, n.retry);
	assert_int_equal(spool_host_observe(f->sp, "127.0.0.2_25", 0, NULL,
	    "timed out", 60, 3600, NULL), 0);
	assert_int_equal(spool_host_read(f->sp, "127.0.0.2_25", &r), 0);
	assert_int_equal(r.failures, 2);
	assert_true(r.retry >= now + 120 && r.retry <= time(NULL) + 120);
	assert_true(r.since <= r.time);
	/* Up clears. */
	assert_int_equal(spool_host_observe(f->sp, "127.0.0.2_25", 1,
	    "mx.example.test", NULL, 60, 3600, NULL), 0);
	assert_int_equal(spool_host_read(f->sp, "127.0.0.2_25", &r), 0);
	assert_int_equal(r.up, 1);
	assert_int_equal(r.failures, 0);
	assert_int_equal(r.retry, 0);
	assert_string_equal(r.reason, "");
	assert_int_equal(spool_host_observe(f->sp, "::1_2525", 0, NULL, "x",
	    60, 3600, NULL), 0);
	assert_int_equal(spool_host_walk(f->sp, host_count, &count), 0);
	assert_int_equal(count, 2);
	assert_int_equal(count_dir(f, "tmp"), 0);
	/* Keys are addresses and ports only. */
	errno = 0;
	assert_int_equal(spool_host_observe(f->sp, "../x", 1, NULL, NULL, 60,
	    3600, NULL), -1);
	assert_int_equal(errno, EINVAL);
	/* Format and parse agree; damage reads as EBADMSG. */
	len = spool_host_format(&n, buf, sizeof(buf));
	assert_true(len > 0);
	assert_int_equal(spool_host_parse(buf, (size_t)len, &r), 0);
	assert_int_equal(r.retry, n.retry);
	errno = 0;
	assert_int_equal(spool_host_parse(buf, (size_t)len - 1, &r), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(spool_host_parse("mxfb-host 1\nup=2\ntime=1\n"
	    "since=1\nretry=0\nfailures=0\n", 51, &r), -1);
	assert_int_equal(spool_host_parse("mxfb-host 1\nup=1\ntime=1\n"
	    "since=1\nretry=0\nfailures=0\n", 51, &r), 0);
}

static void
test_primary_record(void **state)
{
	struct fixture		*f = *state;
	struct primary_obs	 o, r;
	char			 path[PATH_MAX];

	errno = 0;
	assert_int_equal(spool_primary_read(f->sp, "example.test", &r), -1);
	assert_int_equal(errno, ENOENT);
	/* Down with nothing before: no last_up, no host, no EHLO. */
	obs_fill(&o, 0, 1000, "mx9.example.test", 5, 1);
	assert_int_equal(spool_primary_observe(f->sp, "example.test", &o), 0);
	assert_int_equal(spool_primary_read(f->sp, "Example.TEST", &r), 0);
	assert_int_equal(r.up, 0);
	assert_int_equal(r.checked, 1000);
	assert_int_equal(r.last_up, 0);
	assert_string_equal(r.host, "");
	assert_int_equal(r.have_ehlo, 0);
	/* Up replaces. */
	obs_fill(&o, 1, 2000, "mx1.example.test", 10240, 0);
	assert_int_equal(spool_primary_observe(f->sp, "example.test", &o), 0);
	assert_int_equal(spool_primary_read(f->sp, "example.test", &r), 0);
	assert_int_equal(r.up, 1);
	assert_int_equal(r.checked, 2000);
	assert_int_equal(r.last_up, 2000);
	assert_string_equal(r.host, "mx1.example.test");
	assert_string_equal(r.source, "probe");
	assert_int_equal(r.have_ehlo, 1);
	assert_int_equal(r.size_max, 10240);
	assert_int_equal(r.smtputf8, 0);
	assert_int_equal(r.dsn, 1);
	/* Down keeps last_up, host and the capabilities. */
	obs_fill(&o, 0, 3000, "", 0, 1);
	(void)strlcpy(o.source, "flush", sizeof(o.source));
	assert_int_equal(spool_primary_observe(f->sp, "example.test", &o), 0);
	assert_int_equal(spool_primary_read(f->sp, "example.test", &r), 0);
	assert_int_equal(r.up, 0);
	assert_int_equal(r.checked, 3000);
	assert_int_equal(r.last_up, 2000);
	assert_string_equal(r.host, "mx1.example.test");
	assert_string_equal(r.source, "flush");
	assert_int_equal(r.have_ehlo, 1);
	assert_int_equal(r.size_max, 10240);
	assert_int_equal(r.smtputf8, 0);
	/* checked 0 is now. */
	obs_fill(&o, 1, 0, "mx2.example.test", 0, 1);
	assert_int_equal(spool_primary_observe(f->sp, "example.test", &o), 0);
	assert_int_equal(spool_primary_read(f->sp, "example.test", &r), 0);
	assert_true(r.checked > time(NULL) - 60 && r.checked <= time(NULL));
	assert_int_equal(r.last_up, r.checked);
	assert_int_equal(count_dir(f, "tmp"), 0);
	/* What would not read back is not written; bad domains EINVAL. */
	obs_fill(&o, 1, 0, "mx1 evil\nup 0", 0, 1);
	errno = 0;
	assert_int_equal(spool_primary_observe(f->sp, "example.test", &o), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(spool_primary_observe(f->sp, "../x", &o), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(spool_primary_read(f->sp, "a/b", &r), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(count_dir(f, "tmp"), 0);
	/* A link in the record's place is not followed. */
	PATHF(path, "%s/domains/link.test.probe", f->dir);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	errno = 0;
	assert_int_equal(spool_primary_read(f->sp, "link.test", &r), -1);
	assert_int_equal(errno, ELOOP);
}

/* An older mxfb's probe note reads as "up"; the first record replaces it. */
static void
test_primary_old_note(void **state)
{
	struct fixture		*f = *state;
	struct primary_obs	 o, r;
	char			*text;

	assert_int_equal(spool_domain_note_write(f->sp, "example.test",
	    "time=1700000000 host=mx1.example.test address=mx1.example.test"
	    "[127.0.0.1]:25 latency=3ms ehlo=PIPELINING SIZE=100 8BITMIME "
	    "ENHANCEDSTATUSCODES\n"), 0);
	assert_int_equal(spool_primary_read(f->sp, "example.test", &r), 0);
	assert_int_equal(r.up, 1);
	assert_int_equal(r.checked, 1700000000);
	assert_int_equal(r.last_up, 1700000000);
	assert_string_equal(r.host, "mx1.example.test");
	assert_string_equal(r.source, "note");
	assert_int_equal(r.have_ehlo, 1);
	assert_true(r.size_max == 100);
	assert_int_equal(r.eightbitmime, 1);
	assert_int_equal(r.smtputf8, 0);
	/* A down observation keeps the note's last_up, host and EHLO. */
	obs_fill(&o, 0, 1700000100, "", 0, 0);
	assert_int_equal(spool_primary_observe(f->sp, "example.test", &o), 0);
	assert_int_equal(spool_domain_note_read(f->sp, "example.test", &text,
	    NULL), 0);
	assert_true(strncmp(text, "mxfb-primary 1\n", 15) == 0);
	free(text);
	assert_int_equal(spool_primary_read(f->sp, "example.test", &r), 0);
	assert_int_equal(r.up, 0);
	assert_int_equal(r.checked, 1700000100);
	assert_int_equal(r.last_up, 1700000000);
	assert_string_equal(r.host, "mx1.example.test");
	assert_true(r.size_max == 100);
	/* A note that is not one: EBADMSG, like any garbage. */
	assert_int_equal(spool_domain_note_write(f->sp, "other.test",
	    "up again\n"), 0);
	errno = 0;
	assert_int_equal(spool_primary_read(f->sp, "other.test", &r), -1);
	assert_int_equal(errno, EBADMSG);
}

/*
 * The state's start (since) stays while up or down stays, moves when it
 * changes; a down's reason is kept printable and cut to fit, an up
 * clears it; since and reason round-trip through the text; a record
 * without them (before issue 17) reads with since = time, no reason.
 */
static void
test_primary_since(void **state)
{
	struct fixture		*f = *state;
	struct primary_obs	 o, r;
	char			 buf[PRIMARY_RECORD_MAX], longer[200];
	int			 n;

	obs_fill(&o, 1, 1000, "mx1.example.test", 0, 0);
	assert_int_equal(spool_primary_observe(f->sp, "example.test", &o), 0);
	obs_fill(&o, 1, 1100, "mx1.example.test", 0, 0);
	assert_int_equal(spool_primary_observe(f->sp, "example.test", &o), 0);
	assert_int_equal(spool_primary_read(f->sp, "example.test", &r), 0);
	assert_int_equal(r.since, 1000);
	assert_string_equal(r.reason, "");
	obs_fill(&o, 0, 2000, "", 0, 0);
	(void)strlcpy(o.reason, "Connection\trefused\n", sizeof(o.reason));
	assert_int_equal(spool_primary_observe(f->sp, "example.test", &o), 0);
	assert_int_equal(spool_primary_read(f->sp, "example.test", &r), 0);
	assert_int_equal(r.up, 0);
	assert_int_equal(r.since, 2000);
	assert_string_equal(r.reason, "Connection?refused?");
	/* Still down: since stays, the reason is the newest. */
	obs_fill(&o, 0, 2500, "", 0, 0);
	(void)strlcpy(o.reason, "Connection timed out", sizeof(o.reason));
	assert_int_equal(spool_primary_observe(f->sp, "example.test", &o), 0);
	assert_int_equal(spool_primary_read(f->sp, "example.test", &r), 0);
	assert_int_equal(r.since, 2000);
	assert_int_equal(r.checked, 2500);
	assert_int_equal(r.last_up, 1100);
	assert_string_equal(r.reason, "Connection timed out");
	/* Up again: a new since, no reason. */
	obs_fill(&o, 1, 3000, "mx1.example.test", 0, 0);
	(void)strlcpy(o.reason, "ignored", sizeof(o.reason));
	assert_int_equal(spool_primary_observe(f->sp, "example.test", &o), 0);
	assert_int_equal(spool_primary_read(f->sp, "example.test", &r), 0);
	assert_int_equal(r.since, 3000);
	assert_string_equal(r.reason, "");
	/* Round trip; a reason of the whole size is cut, never overflows. */
	obs_fill(&o, 0, 50, "", 0, 0);
	o.since = 40;
	memset(longer, 'x', sizeof(longer));
	longer[sizeof(longer) - 1] = '\0';
	(void)strlcpy(o.reason, longer, sizeof(o.reason));
	n = spool_primary_format(&o, buf, sizeof(buf));
	assert_true(n > 0);
	assert_non_null(strstr(buf, "\nsince=40\nreason=xxx"));
	assert_int_equal(spool_primary_parse(buf, (size_t)n, &r), 0);
	assert_int_equal(r.since, 40);
	assert_int_equal(strlen(r.reason), PRIMARY_REASON_SIZE - 1);
	/* A record from before: since = time, no reason. */
	(void)strlcpy(buf, "mxfb-primary 1\nup=0\ntime=77\nlast_up=5\n"
	    "source=probe\n", sizeof(buf));
	assert_int_equal(spool_primary_parse(buf, strlen(buf), &r), 0);
	assert_int_equal(r.since, 77);
	assert_string_equal(r.reason, "");
	/* Bad since or reason: EBADMSG. */
	(void)strlcpy(buf, "mxfb-primary 1\nup=0\ntime=77\nlast_up=5\n"
	    "source=probe\nsince=-1\n", sizeof(buf));
	assert_int_equal(spool_primary_parse(buf, strlen(buf), &r), -1);
	(void)strlcpy(buf, "mxfb-primary 1\nup=0\ntime=77\nlast_up=5\n"
	    "source=probe\nreason=a\tb\n", sizeof(buf));
	assert_int_equal(spool_primary_parse(buf, strlen(buf), &r), -1);
	(void)strlcpy(buf, "mxfb-primary 1\nup=0\ntime=77\nlast_up=5\n"
	    "source=probe\nreason=\n", sizeof(buf));
	assert_int_equal(spool_primary_parse(buf, strlen(buf), &r), -1);
	(void)strlcpy(buf, "mxfb-primary 1\nup=0\ntime=77\nlast_up=5\n"
	    "source=probe\nreason=", sizeof(buf));
	(void)strlcat(buf, longer, sizeof(buf));
	(void)strlcat(buf, "\n", sizeof(buf));
	assert_int_equal(spool_primary_parse(buf, strlen(buf), &r), -1);
}

/* spool_primary_walk: every readable record once; corrupt/ counted. */
static void
test_primary_walk_and_corrupt(void **state)
{
	struct fixture		*f = *state;
	struct primary_obs	 o;
	char			 path[PATH_MAX];
	uint64_t		 n = 99;
	int			 seen = 0;
	FILE			*fp;

	obs_fill(&o, 1, 1000, "mx1.a.test", 0, 0);
	assert_int_equal(spool_primary_observe(f->sp, "a.test", &o), 0);
	assert_int_equal(spool_primary_observe(f->sp, "B.test", &o), 0);
	assert_int_equal(spool_domain_note_write(f->sp, "bad.test",
	    "garbage\n"), 0);
	assert_int_equal(spool_primary_walk(f->sp, walk_count, &seen), 0);
	assert_int_equal(seen, 0x3);
	assert_int_equal(spool_count_corrupt(f->sp, &n), 0);
	assert_true(n == 0);
	PATHF(path, "%s/corrupt/1NH2Z0RRSNDK6497Y", f->dir);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fclose(fp), 0);
	PATHF(path, "%s/corrupt/1NH2Z0RRSNDK6497Y.state", f->dir);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(spool_count_corrupt(f->sp, &n), 0);
	assert_true(n == 1);
}

static void
test_primary_parse(void **state)
{
	static const char *bad[] = {
		"",
		"mxfb-primary 1",
		"mxfb-primary 2\nup=1\ntime=1\nlast_up=1\nsource=p\n",
		"mxfb-primary 1\nup=1\ntime=1\nlast_up=1\n",
		"mxfb-primary 1\nup=2\ntime=1\nlast_up=1\nsource=p\n",
		"mxfb-primary 1\nup=1\nup=1\ntime=1\nlast_up=1\nsource=p\n",
		"mxfb-primary 1\nup=1\ntime=-1\nlast_up=1\nsource=p\n",
		"mxfb-primary 1\nup=1\ntime=99999999999999999999\n"
		    "last_up=1\nsource=p\n",
		"mxfb-primary 1\nup=1\ntime=1\nlast_up=1\nsource=P\n",
		"mxfb-primary 1\nup=1\ntime=1\nlast_up=1\nsource=p\n"
		    "host=a b\n",
		"mxfb-primary 1\nup=1\ntime=1\nlast_up=1\nsource=p\n"
		    "ehlo=SIZE=1x\n",
		"mxfb-primary 1\nup=1\ntime=1\nlast_up=1\nsource=p\n"
		    "ehlo=DSN\tX\n",
		"mxfb-primary 1\nup=1\ntime=1\nlast_up=1\nsource=p\n"
		    "garbage\n",
		"mxfb-primary 1\nup=1\ntime=1\nlast_up=1\nsource=p",
		"mxfb-primary 1\nup=1\ntime=1\nlast_up=1\nsource="
		    "abcdefghijklmnopq\n",
		"time=x host=a\n",
		"time=1 host=a\nsecond line\n",
		"time=1 host\n",
	};
	struct primary_obs	 o, r;
	char			 buf[PRIMARY_RECORD_MAX], big[2048];
	size_t			 i;
	int			 n;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		if (spool_primary_parse(bad[i], strlen(bad[i]), &r) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(errno, EBADMSG);
	}
	/* A NUL inside, and one byte over the limit. */
	assert_int_equal(spool_primary_parse("mxfb-primary 1\n\0", 16, &r),
	    -1);
	memset(big, 'x', sizeof(big));
	assert_int_equal(spool_primary_parse(big, PRIMARY_RECORD_MAX + 1, &r),
	    -1);
	/* What format writes reads back the same; unknown keys are skipped. */
	obs_fill(&o, 1, 1234, "mx1.example.test", 1ULL << 40, 1);
	o.last_up = 1200;
	n = spool_primary_format(&o, buf, sizeof(buf));
	assert_true(n > 0);
	assert_non_null(strstr(buf, "\nehlo=SIZE=1099511627776 8BITMIME "
	    "SMTPUTF8 DSN\n"));
	(void)strlcat(buf, "future=1\n", sizeof(buf));
	assert_int_equal(spool_primary_parse(buf, strlen(buf), &r), 0);
	assert_int_equal(r.up, 1);
	assert_int_equal(r.checked, 1234);
	assert_int_equal(r.last_up, 1200);
	assert_string_equal(r.host, "mx1.example.test");
	assert_string_equal(r.source, "probe");
	assert_int_equal(r.have_ehlo, 1);
	assert_true(r.size_max == 1ULL << 40);
	assert_int_equal(r.smtputf8 + r.eightbitmime + r.dsn, 3);
	/* An EHLO with none of the four, and none at all. */
	obs_fill(&o, 1, 1, "[127.0.0.1]", 0, 0);
	o.dsn = 0;
	n = spool_primary_format(&o, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\nehlo=\n"));
	assert_int_equal(spool_primary_parse(buf, (size_t)n, &r), 0);
	assert_int_equal(r.have_ehlo, 1);
	assert_string_equal(r.host, "[127.0.0.1]");
	o.have_ehlo = 0;
	n = spool_primary_format(&o, buf, sizeof(buf));
	assert_null(strstr(buf, "ehlo="));
	assert_int_equal(spool_primary_parse(buf, (size_t)n, &r), 0);
	assert_int_equal(r.have_ehlo, 0);
	assert_int_equal(spool_primary_format(&o, buf, 20), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn)	cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_open),
		T(test_writer_commit_abort),
		T(test_large_message),
		T(test_commit_as),
		T(test_foreach_order),
		T(test_foreach_states),
		T(test_foreach_moving),
		T(test_claim_cycle),
		T(test_claim_remove_nosync),
		T(test_unclaim_saves_state),
		T(test_hold_release_delete),
		T(test_quarantine_corrupt_body),
		T(test_corrupt_envelope),
		T(test_crash_leftover_tmp),
		T(test_crash_stale_claim_dead_pid),
		T(test_crash_stale_claim_zombie),
		T(test_crash_stale_claim_ctime),
		T(test_crash_half_state_temp),
		T(test_crash_orphan_state),
		T(test_crash_truncated_message),
		T(test_corrupt_state),
		T(test_claim_race),
		T(test_disk_full),
		T(test_domain_notes_and_locks),
		T(test_open_refuses_links),
		T(test_no_file_through_a_link),
		T(test_primary_record),
		T(test_host_note),
		T(test_callout_slots),
		T(test_primary_old_note),
		T(test_primary_since),
		T(test_primary_walk_and_corrupt),
		T(test_primary_parse),
#undef T
	};
	int	 failed;

	/* Listings read files in io_uring batches; then one by one. */
	failed = cmocka_run_group_tests_name("batched", tests, NULL, NULL);
	if (setenv("MXFB_NO_IO_URING", "1", 1) == -1)
		return (1);
	failed += cmocka_run_group_tests_name("one by one", tests, NULL, NULL);
	return (failed);
}
