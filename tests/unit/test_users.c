/*
 * test_users.c - unit tests of core/users.c: the line grammar (comments,
 * blank lines, extra fields, both hash forms, other schemes, bad
 * addresses), address comparison (local part exact, domain any case),
 * the file checks (modes, links, other kinds), re-reading on change, and
 * verification (good, wrong password, unknown user, a bad line).
 */
#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "core/users.h"

static char	 dir[] = "/tmp/test_users.XXXXXX";
static char	 path[256];

static void
test_parse_line(void **state)
{
	char	 l[256], *a, *h;

	strlcpy(l, "# comment", sizeof(l));
	assert_int_equal(users_parse_line(l, &a, &h), 0);
	strlcpy(l, "   ", sizeof(l));
	assert_int_equal(users_parse_line(l, &a, &h), 0);
	strlcpy(l, "a@b.test:{ARGON2ID}$argon2id$v=19$x::::", sizeof(l));
	assert_int_equal(users_parse_line(l, &a, &h), 1);
	assert_string_equal(a, "a@b.test");
	assert_string_equal(h, "$argon2id$v=19$x");
	strlcpy(l, "a@b.test:$argon2id$v=19$y", sizeof(l));
	assert_int_equal(users_parse_line(l, &a, &h), 1);
	assert_string_equal(h, "$argon2id$v=19$y");
	strlcpy(l, "a@b.test:{PLAIN}secret", sizeof(l));
	assert_int_equal(users_parse_line(l, &a, &h), 1);
	assert_null(h);
	strlcpy(l, "a@b.test", sizeof(l));
	assert_int_equal(users_parse_line(l, &a, &h), -1);
	strlcpy(l, "nodomain:$argon2id$", sizeof(l));
	assert_int_equal(users_parse_line(l, &a, &h), -1);
	strlcpy(l, "a b@c.test:$argon2id$", sizeof(l));
	assert_int_equal(users_parse_line(l, &a, &h), -1);
	strlcpy(l, ":$argon2id$", sizeof(l));
	assert_int_equal(users_parse_line(l, &a, &h), -1);
}

static void
test_addr_equal(void **state)
{
	assert_true(users_addr_equal("a@b.test", "a@B.TEST"));
	assert_false(users_addr_equal("a@b.test", "A@b.test"));
	assert_false(users_addr_equal("a@b.test", "ab.test"));
	assert_false(users_addr_equal("a@b.test", "a@b.tes"));
	assert_false(users_addr_equal("", "a@b.test"));
}

static void
write_file(const char *text, mode_t mode)
{
	FILE	*f;

	(void)unlink(path);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void
test_file_check(void **state)
{
	char	 why[512], link[300];

	write_file("", 0640);
	assert_int_equal(users_file_check(path, why, sizeof(why)), 0);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(users_file_check(path, why, sizeof(why)), 0);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(users_file_check(path, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "readable by others"));
	assert_int_equal(chmod(path, 0660), 0);
	assert_int_equal(users_file_check(path, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "writable"));
	assert_int_equal(chmod(path, 0602), 0);
	assert_int_equal(users_file_check(path, why, sizeof(why)), -1);
	assert_int_equal(chmod(path, 0640), 0);
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(users_file_check(link, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "symbolic link"));
	assert_int_equal(unlink(link), 0);
	assert_int_equal(users_file_check(dir, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not a regular file"));
	snprintf(link, sizeof(link), "%s/missing", dir);
	assert_int_equal(users_file_check(link, why, sizeof(why)), -1);
}

static void
test_verify_and_reread(void **state)
{
	struct users_file	 u;
	char			 hash[crypto_pwhash_STRBYTES], text[1024];
	char			 why[512];

	memset(&u, 0, sizeof(u));
	assert_int_equal(crypto_pwhash_str_alg(hash, "pw", 2,
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE,
	    crypto_pwhash_ALG_ARGON2ID13), 0);
	snprintf(text, sizeof(text), "# accounts\n\na@b.test:{ARGON2ID}%s:"
	    "1000:1000::/home/a::\nbad line\nc@b.test:{PLAIN}x\n", hash);
	write_file(text, 0640);
	assert_int_equal(users_refresh(&u, path, why, sizeof(why)), 0);
	assert_int_equal(u.n, 2);
	assert_int_equal(u.nbad, 2);
	assert_true(users_verify(&u, "a@b.test", "pw"));
	assert_true(users_verify(&u, "a@B.Test", "pw"));
	assert_false(users_verify(&u, "A@b.test", "pw"));
	assert_false(users_verify(&u, "a@b.test", "PW"));
	assert_false(users_verify(&u, "x@b.test", "pw"));
	assert_false(users_verify(&u, "c@b.test", "x"));
	/* Unchanged: not read again.  Changed: read again. */
	assert_int_equal(users_refresh(&u, path, why, sizeof(why)), 0);
	assert_int_equal(u.n, 2);
	snprintf(text, sizeof(text), "d@b.test:%s\n", hash);
	write_file(text, 0640);
	assert_int_equal(users_refresh(&u, path, why, sizeof(why)), 0);
	assert_int_equal(u.n, 1);
	assert_false(users_verify(&u, "a@b.test", "pw"));
	assert_true(users_verify(&u, "d@b.test", "pw"));
	/* A file others may read serves no one. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(users_refresh(&u, path, why, sizeof(why)), -1);
	assert_int_equal(u.n, 0);
	assert_false(users_verify(&u, "d@b.test", "pw"));
	users_free(&u);
}

static int
setup(void **state)
{
	if (mkdtemp(dir) == NULL || sodium_init() == -1)
		return (-1);
	snprintf(path, sizeof(path), "%s/users", dir);
	return (0);
}

static int
teardown(void **state)
{
	(void)unlink(path);
	return (rmdir(dir));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_line),
		cmocka_unit_test(test_addr_equal),
		cmocka_unit_test(test_file_check),
		cmocka_unit_test(test_verify_and_reread),
	};

	return (cmocka_run_group_tests(tests, setup, teardown));
}
