/*
 * test_verify_db.c - the recipient database: put, lookup and expiry
 * against an injected clock, keys (domain folded, local part kept),
 * forget, walk with and without a domain, the value encoding and its
 * refusals, a missing file created, a corrupt, truncated or linked one
 * renamed aside and rebuilt, the network file system deny-list, and the
 * path rule (relative to the spool).
 */
#include <sys/stat.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/util.h"
#include "spool/verify_db.h"

#define T0	1800000000	/* the injected clock */

struct fixture {
	char	 dir[64];
	char	 path[128];
};

struct seen {
	char	 addrs[8][ADDRESS_PATH_MAX + 1];
	size_t	 n;
};

static int
setup(void **state)
{
	struct fixture	*f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strlcpy(f->dir, "/tmp/test_verify_db.XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/verify.lmdb", f->dir);
	*state = f;
	return (0);
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;
	char		 cmd[200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return (0);
}

static struct verify_db *
open_db(const struct fixture *f)
{
	struct verify_db *db;
	char		 err[1024];

	if (verify_db_open(f->path, 1, &db, err, sizeof(err)) != 0)
		fail_msg("open: %s", err);
	return (db);
}

static size_t
corrupt_copies(const struct fixture *f)
{
	char	 pat[160];
	glob_t	 g;
	size_t	 n;

	snprintf(pat, sizeof(pat), "%s.corrupt-*", f->path);
	if (glob(pat, 0, NULL, &g) != 0)
		return (0);
	n = g.gl_pathc;
	globfree(&g);
	return (n);
}

static void
test_missing_file_created(void **state)
{
	struct fixture	*f = *state;
	struct verify_db *db;
	struct stat	 st;
	char		 err[1024];

	/* Without create a missing file is an error, with it a new one. */
	assert_int_equal(verify_db_open(f->path, 0, &db, err, sizeof(err)),
	    -1);
	assert_int_equal(errno, ENOENT);
	db = open_db(f);
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	verify_db_close(db);
	assert_int_equal(corrupt_copies(f), 0);
}

static void
test_put_lookup_expiry(void **state)
{
	struct fixture	*f = *state;
	struct verify_db *db = open_db(f);
	struct verify_entry e;

	assert_int_equal(verify_db_lookup(db, "a@example.test", T0, &e), 0);
	assert_int_equal(verify_db_put(db, "a@Example.TEST", VERIFY_VALID,
	    VERIFY_SOURCE_DELIVERY, T0, 100), 0);
	assert_int_equal(verify_db_lookup(db, "a@example.test", T0 + 99, &e),
	    1);
	assert_string_equal(e.addr, "a@example.test");
	assert_int_equal(e.verdict, VERIFY_VALID);
	assert_int_equal(e.source, VERIFY_SOURCE_DELIVERY);
	assert_int_equal(e.since, T0);
	assert_int_equal(e.expires, T0 + 100);
	/* At its expiry it is a miss. */
	assert_int_equal(verify_db_lookup(db, "a@example.test", T0 + 100, &e),
	    0);
	/* The local part is kept as given: A@ is another key. */
	assert_int_equal(verify_db_lookup(db, "A@example.test", T0, &e), 0);
	/* A later put replaces the verdict. */
	assert_int_equal(verify_db_put(db, "a@example.test", VERIFY_INVALID,
	    VERIFY_SOURCE_CALLOUT, T0 + 200, 50), 0);
	assert_int_equal(verify_db_lookup(db, "a@EXAMPLE.test", T0 + 210, &e),
	    1);
	assert_int_equal(e.verdict, VERIFY_INVALID);
	assert_int_equal(e.source, VERIFY_SOURCE_CALLOUT);
	/* Survives a close. */
	verify_db_close(db);
	db = open_db(f);
	assert_int_equal(verify_db_lookup(db, "a@example.test", T0 + 210, &e),
	    1);
	/* No '@': no key. */
	assert_int_equal(verify_db_put(db, "nobody", VERIFY_VALID,
	    VERIFY_SOURCE_FILE, T0, 10), -1);
	assert_int_equal(verify_db_lookup(db, "nobody", T0, &e), 0);
	verify_db_close(db);
}

static void
test_forget(void **state)
{
	struct fixture	*f = *state;
	struct verify_db *db = open_db(f);
	struct verify_entry e;

	assert_int_equal(verify_db_put(db, "b@example.test", VERIFY_VALID,
	    VERIFY_SOURCE_FILE, T0, 100), 0);
	assert_int_equal(verify_db_forget(db, "b@EXAMPLE.TEST"), 1);
	assert_int_equal(verify_db_lookup(db, "b@example.test", T0, &e), 0);
	assert_int_equal(verify_db_forget(db, "b@example.test"), 0);
	verify_db_close(db);
}

static void
test_put_many(void **state)
{
	struct fixture	*f = *state;
	struct verify_db *db = open_db(f);
	struct verify_entry e;
	struct verify_put p[3] = {
		{ "x@example.test", VERIFY_VALID, VERIFY_SOURCE_DELIVERY, 100 },
		{ "y@example.test", VERIFY_INVALID, VERIFY_SOURCE_DELIVERY, 10 },
		{ "no-domain", VERIFY_VALID, VERIFY_SOURCE_DELIVERY, 100 },
	};

	/* One bad address: nothing is written. */
	assert_int_equal(verify_db_put_many(db, p, 3, T0), -1);
	assert_int_equal(verify_db_lookup(db, "x@example.test", T0, &e), 0);
	assert_int_equal(verify_db_put_many(db, p, 2, T0), 0);
	assert_int_equal(verify_db_lookup(db, "x@example.test", T0 + 50, &e),
	    1);
	assert_int_equal(e.verdict, VERIFY_VALID);
	assert_int_equal(verify_db_lookup(db, "y@example.test", T0 + 5, &e),
	    1);
	assert_int_equal(e.verdict, VERIFY_INVALID);
	assert_int_equal(e.expires, T0 + 10);
	assert_int_equal(verify_db_lookup(db, "y@example.test", T0 + 50, &e),
	    0);
	assert_int_equal(verify_db_put_many(db, p, 0, T0), 0);
	verify_db_close(db);
}

static int
collect(const struct verify_entry *e, void *arg)
{
	struct seen	*s = arg;

	if (s->n < 8)
		strlcpy(s->addrs[s->n++], e->addr, sizeof(s->addrs[0]));
	return (0);
}

static int
stop_at_first(const struct verify_entry *e, void *arg)
{
	collect(e, arg);
	return (1);
}

static void
test_walk(void **state)
{
	struct fixture	*f = *state;
	struct verify_db *db = open_db(f);
	struct seen	 s;

	assert_int_equal(verify_db_put(db, "z@one.test", VERIFY_VALID,
	    VERIFY_SOURCE_DELIVERY, T0, 100), 0);
	assert_int_equal(verify_db_put(db, "a@two.test", VERIFY_INVALID,
	    VERIFY_SOURCE_DELIVERY, T0, 100), 0);
	assert_int_equal(verify_db_put(db, "c@one.test", VERIFY_VALID,
	    VERIFY_SOURCE_DELIVERY, T0, 100), 0);
	assert_int_equal(verify_db_put(db, "old@one.test", VERIFY_VALID,
	    VERIFY_SOURCE_DELIVERY, T0, 10), 0);

	memset(&s, 0, sizeof(s));
	assert_int_equal(verify_db_walk(db, NULL, T0 + 50, collect, &s), 0);
	assert_int_equal(s.n, 3);	/* old@ expired */
	assert_string_equal(s.addrs[0], "a@two.test");
	assert_string_equal(s.addrs[1], "c@one.test");
	assert_string_equal(s.addrs[2], "z@one.test");

	memset(&s, 0, sizeof(s));
	assert_int_equal(verify_db_walk(db, "ONE.test.", T0 + 5, collect,
	    &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.addrs[0], "c@one.test");
	assert_string_equal(s.addrs[1], "old@one.test");

	memset(&s, 0, sizeof(s));
	assert_int_equal(verify_db_walk(db, NULL, T0, stop_at_first, &s), 0);
	assert_int_equal(s.n, 1);
	verify_db_close(db);
}

/*
 * The counters of submission: a fixed window from the first event, read
 * without counting, kept apart from the recipients (the walk does not
 * see them, nor they it), shared by a second handle on the file, and
 * expired ones purged by later writes.
 */
static void
test_counters(void **state)
{
	struct fixture	*f = *state;
	struct verify_db *db = open_db(f), *db2;
	struct seen	 s;
	unsigned	 n;

	assert_int_equal(verify_db_count(db, "rate:a@b.test", T0, 100, 0,
	    &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(verify_db_put(db, "x@one.test", VERIFY_VALID,
	    VERIFY_SOURCE_DELIVERY, T0, 1000), 0);
	assert_int_equal(verify_db_count(db, "rate:a@b.test", T0, 100, 1,
	    &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(verify_db_count(db, "rate:a@b.test", T0 + 50, 100,
	    1, &n), 0);
	assert_int_equal(n, 2);
	db2 = open_db(f);
	assert_int_equal(verify_db_count(db2, "rate:a@b.test", T0 + 99, 100,
	    0, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(verify_db_count(db2, "authfail:1", T0, 10, 3, &n), 0);
	assert_int_equal(n, 3);
	verify_db_close(db2);
	/* The window began at T0: over at T0 + 100. */
	assert_int_equal(verify_db_count(db, "rate:a@b.test", T0 + 100, 100,
	    0, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(verify_db_count(db, "authfail:1", T0 + 5, 10, 0,
	    &n), 0);
	assert_int_equal(n, 3);
	/* A write after authfail:1 expired purges it. */
	assert_int_equal(verify_db_count(db, "authfail:0", T0 + 20, 10, 1,
	    &n), 0);
	assert_int_equal(verify_db_count(db, "authfail:1", T0 + 20, 10, 0,
	    &n), 0);
	assert_int_equal(n, 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(verify_db_walk(db, NULL, T0, collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.addrs[0], "x@one.test");
	verify_db_close(db);
}

static void
test_count_encoding(void **state)
{
	unsigned char	 v[VERIFY_COUNT_SIZE];
	unsigned	 n;
	int64_t		 exp;

	verify_count_encode(0x01020304, 1234567, v);
	assert_int_equal(verify_count_decode(v, sizeof(v), &n, &exp), 0);
	assert_int_equal(n, 0x01020304);
	assert_int_equal(exp, 1234567);
	assert_int_equal(verify_count_decode(v, sizeof(v) - 1, &n, &exp), -1);
	v[1] = 1;
	assert_int_equal(verify_count_decode(v, sizeof(v), &n, &exp), -1);
	verify_count_encode(1, -1, v);
	assert_int_equal(verify_count_decode(v, sizeof(v), &n, &exp), -1);
}

static void
test_value_encoding(void **state)
{
	struct verify_entry e, d;
	unsigned char	 v[VERIFY_VALUE_SIZE], bad[VERIFY_VALUE_SIZE];

	memset(&e, 0, sizeof(e));
	e.verdict = VERIFY_INVALID;
	e.source = VERIFY_SOURCE_CALLOUT;
	e.since = T0;
	e.expires = (int64_t)T0 + 86400;
	verify_value_encode(&e, v);
	assert_int_equal(v[0], VERIFY_VALUE_VERSION);
	assert_int_equal(verify_value_decode(v, sizeof(v), &d), 0);
	assert_int_equal(d.verdict, e.verdict);
	assert_int_equal(d.source, e.source);
	assert_int_equal(d.since, e.since);
	assert_int_equal(d.expires, e.expires);

	assert_int_equal(verify_value_decode(v, sizeof(v) - 1, &d), -1);
	assert_int_equal(errno, EBADMSG);
	memcpy(bad, v, sizeof(v));
	bad[0] = 2;			/* a version we do not know */
	assert_int_equal(verify_value_decode(bad, sizeof(bad), &d), -1);
	memcpy(bad, v, sizeof(v));
	bad[1] = 3;			/* no such verdict */
	assert_int_equal(verify_value_decode(bad, sizeof(bad), &d), -1);
	memcpy(bad, v, sizeof(v));
	bad[2] = 0;			/* no such source */
	assert_int_equal(verify_value_decode(bad, sizeof(bad), &d), -1);
	memcpy(bad, v, sizeof(v));
	bad[3] = 1;			/* reserved */
	assert_int_equal(verify_value_decode(bad, sizeof(bad), &d), -1);
	memcpy(bad, v, sizeof(v));
	memset(bad + 12, 0, 8);		/* expires before since */
	assert_int_equal(verify_value_decode(bad, sizeof(bad), &d), -1);
	memcpy(bad, v, sizeof(v));
	bad[4] = 0x80;			/* negative since */
	assert_int_equal(verify_value_decode(bad, sizeof(bad), &d), -1);
}

static void
test_keys(void **state)
{
	char	 key[ADDRESS_PATH_MAX + 1], big[400];

	assert_int_equal(verify_db_key("Jo.Doe@Mail.EXAMPLE.test", key,
	    sizeof(key)), 0);
	assert_string_equal(key, "Jo.Doe@mail.example.test");
	assert_int_equal(verify_db_key("\"a@b\"@X.test", key, sizeof(key)),
	    0);
	assert_string_equal(key, "\"a@b\"@x.test");
	assert_int_equal(verify_db_key("none", key, sizeof(key)), -1);
	assert_int_equal(verify_db_key("@x.test", key, sizeof(key)), -1);
	assert_int_equal(verify_db_key("a@", key, sizeof(key)), -1);
	memset(big, 'a', sizeof(big));
	strlcpy(big + 300, "@x.test", sizeof(big) - 300);
	assert_int_equal(verify_db_key(big, key, sizeof(key)), -1);
}

/* Damage the file with fn, then open: renamed aside, a fresh one works. */
static void
damaged(struct fixture *f, void (*fn)(const char *))
{
	struct verify_db *db = open_db(f);
	struct verify_entry e;

	assert_int_equal(verify_db_put(db, "d@example.test", VERIFY_VALID,
	    VERIFY_SOURCE_DELIVERY, T0, 100), 0);
	verify_db_close(db);
	fn(f->path);
	db = open_db(f);
	assert_int_equal(corrupt_copies(f), 1);
	assert_int_equal(verify_db_lookup(db, "d@example.test", T0, &e), 0);
	assert_int_equal(verify_db_put(db, "d@example.test", VERIFY_VALID,
	    VERIFY_SOURCE_DELIVERY, T0, 100), 0);
	assert_int_equal(verify_db_lookup(db, "d@example.test", T0, &e), 1);
	verify_db_close(db);
}

static void
write_garbage(const char *path)
{
	unsigned char	 buf[16384];
	size_t		 i;
	int		 fd;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 37 + 11);
	assert_true((fd = open(path, O_WRONLY | O_TRUNC)) != -1);
	assert_int_equal(write(fd, buf, sizeof(buf)), sizeof(buf));
	close(fd);
}

static void
truncate_short(const char *path)
{
	/* The two meta pages stay, the data pages they name go. */
	assert_int_equal(truncate(path, 8192 + 100), 0);
}

static void
replace_by_link(const char *path)
{
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink("/etc/passwd", path), 0);
}

static void
test_corrupt_rebuilt(void **state)
{
	damaged(*state, write_garbage);
}

static void
test_truncated_rebuilt(void **state)
{
	damaged(*state, truncate_short);
}

static void
test_link_not_followed(void **state)
{
	struct stat	 before, after;

	assert_int_equal(stat("/etc/passwd", &before), 0);
	damaged(*state, replace_by_link);
	assert_int_equal(stat("/etc/passwd", &after), 0);
	assert_int_equal(before.st_size, after.st_size);
	assert_int_equal(before.st_mtime, after.st_mtime);
}

static void
test_lock_link_removed(void **state)
{
	struct fixture	*f = *state;
	struct verify_db *db;
	struct stat	 st;
	char		 lock[160], target[160];
	int		 fd;

	snprintf(lock, sizeof(lock), "%s-lock", f->path);
	snprintf(target, sizeof(target), "%s/target", f->dir);
	assert_true((fd = open(target, O_WRONLY | O_CREAT, 0600)) != -1);
	close(fd);
	assert_int_equal(symlink(target, lock), 0);
	db = open_db(f);
	assert_int_equal(lstat(lock, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_size, 0);	/* never written through */
	verify_db_close(db);
}

static void
test_network_fs_deny_list(void **state)
{
	/* Network and cluster file systems, and FUSE. */
	assert_true(verify_fs_is_network(0x6969));		/* NFS */
	assert_true(verify_fs_is_network(0xff534d42));		/* CIFS */
	assert_true(verify_fs_is_network(0xfe534d42));		/* SMB2 */
	assert_true(verify_fs_is_network(0x517b));		/* SMB */
	assert_true(verify_fs_is_network(0x5346414f));		/* AFS */
	assert_true(verify_fs_is_network(0x6b414653));		/* kAFS */
	assert_true(verify_fs_is_network(0x73757245));		/* Coda */
	assert_true(verify_fs_is_network(0x564c));		/* NCP */
	assert_true(verify_fs_is_network(0x01021997));		/* 9P */
	assert_true(verify_fs_is_network(0x00c36400));		/* Ceph */
	assert_true(verify_fs_is_network(0x65735546));		/* FUSE */
	/* Local ones, tmpfs and overlayfs included. */
	assert_false(verify_fs_is_network(0xef53));		/* ext4 */
	assert_false(verify_fs_is_network(0x58465342));		/* XFS */
	assert_false(verify_fs_is_network(0x9123683e));		/* Btrfs */
	assert_false(verify_fs_is_network(0x01021994));		/* tmpfs */
	assert_false(verify_fs_is_network(0x794c7630));		/* overlayfs */
	assert_false(verify_fs_is_network(0x2fc12fc1));		/* ZFS */
}

static void
test_path(void **state)
{
	char	 buf[64];

	assert_int_equal(verify_db_path("/var/spool/mxfb", "", buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "/var/spool/mxfb/verify.lmdb");
	assert_int_equal(verify_db_path("/var/spool/mxfb", "db/v.lmdb", buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "/var/spool/mxfb/db/v.lmdb");
	assert_int_equal(verify_db_path("/var/spool/mxfb", "/srv/v.lmdb",
	    buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/srv/v.lmdb");
	assert_int_equal(verify_db_path("/var/spool/mxfb",
	    "a-very-long-name-that-does-not-fit-in-the-buffer.lmdb", buf,
	    sizeof(buf)), -1);
	assert_int_equal(errno, ENAMETOOLONG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_missing_file_created,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_lookup_expiry,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_counters, setup,
		    teardown),
		cmocka_unit_test(test_count_encoding),
		cmocka_unit_test_setup_teardown(test_put_many, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_forget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_rebuilt, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_truncated_rebuilt, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_link_not_followed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_lock_link_removed, setup,
		    teardown),
		cmocka_unit_test(test_value_encoding),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_network_fs_deny_list),
		cmocka_unit_test(test_path),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
