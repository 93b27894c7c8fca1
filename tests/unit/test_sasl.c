/*
 * test_sasl.c - unit tests of core/sasl.c: mechanism names, strict
 * base64 (padding, alphabet, "=" for empty, size bounds), PLAIN's three
 * fields (authzid empty or the authcid, empty or overlong fields, NULs,
 * missing separators), LOGIN's one field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "core/sasl.h"

/* base64 of len octets of raw, into out. */
static const char *
enc(const char *raw, size_t len, char *out, size_t size)
{
	sodium_bin2base64(out, size, (const unsigned char *)raw, len,
	    sodium_base64_VARIANT_ORIGINAL);
	return (out);
}

static void
test_mech(void **state)
{
	assert_int_equal(sasl_mech_parse("PLAIN", 5), SASL_PLAIN);
	assert_int_equal(sasl_mech_parse("plain", 5), SASL_PLAIN);
	assert_int_equal(sasl_mech_parse("LoGiN", 5), SASL_LOGIN);
	assert_int_equal(sasl_mech_parse("PLAINX", 6), SASL_NONE);
	assert_int_equal(sasl_mech_parse("PLAIN x", 5), SASL_PLAIN);
	assert_int_equal(sasl_mech_parse("CRAM-MD5", 8), SASL_NONE);
	assert_int_equal(sasl_mech_parse("", 0), SASL_NONE);
	assert_string_equal(sasl_mech_name(SASL_LOGIN), "LOGIN");
}

static void
test_base64(void **state)
{
	unsigned char	 out[16];
	size_t		 n;

	assert_int_equal(sasl_base64_decode("=", 1, out, sizeof(out), &n),
	    SASL_OK);
	assert_int_equal(n, 0);
	assert_int_equal(sasl_base64_decode("YWJj", 4, out, sizeof(out), &n),
	    SASL_OK);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "abc", 3);
	assert_int_equal(sasl_base64_decode("YQ==", 4, out, sizeof(out), &n),
	    SASL_OK);
	assert_int_equal(n, 1);
	/* No padding, bad characters, blanks, the URL alphabet, empty. */
	assert_int_equal(sasl_base64_decode("YQ", 2, out, sizeof(out), &n),
	    SASL_BAD_BASE64);
	assert_int_equal(sasl_base64_decode("YW!j", 4, out, sizeof(out), &n),
	    SASL_BAD_BASE64);
	assert_int_equal(sasl_base64_decode("YW j", 4, out, sizeof(out), &n),
	    SASL_BAD_BASE64);
	assert_int_equal(sasl_base64_decode("-_-_", 4, out, sizeof(out), &n),
	    SASL_BAD_BASE64);
	assert_int_equal(sasl_base64_decode("", 0, out, sizeof(out), &n),
	    SASL_BAD_BASE64);
	assert_int_equal(sasl_base64_decode("a===", 4, out, sizeof(out), &n),
	    SASL_BAD_BASE64);
	assert_int_equal(sasl_base64_decode("YWJjYWJjYWJjYWJjYWJjYWJj", 24,
	    out, 4, &n), SASL_BAD_BASE64);	/* too big for out */
}

static void
test_plain(void **state)
{
	struct sasl_creds	 c;
	char			 b[256], big[2 * SASL_PASSWORD_MAX];

	enc("\0a@b.test\0pw", 12, b, sizeof(b));
	assert_int_equal(sasl_plain_decode(b, strlen(b), &c), SASL_OK);
	assert_string_equal(c.authcid, "a@b.test");
	assert_string_equal(c.password, "pw");
	enc("a@b.test\0a@b.test\0pw", 20, b, sizeof(b));
	assert_int_equal(sasl_plain_decode(b, strlen(b), &c), SASL_OK);
	enc("x@b.test\0a@b.test\0pw", 20, b, sizeof(b));
	assert_int_equal(sasl_plain_decode(b, strlen(b), &c),
	    SASL_BAD_AUTHZID);
	assert_string_equal(c.password, "");	/* wiped */
	enc("a@b.test\0a@b.tes\0pw", 19, b, sizeof(b));
	assert_int_equal(sasl_plain_decode(b, strlen(b), &c),
	    SASL_BAD_AUTHZID);
	enc("\0\0pw", 4, b, sizeof(b));
	assert_int_equal(sasl_plain_decode(b, strlen(b), &c),
	    SASL_BAD_FORMAT);
	enc("\0a@b.test\0", 10, b, sizeof(b));
	assert_int_equal(sasl_plain_decode(b, strlen(b), &c),
	    SASL_BAD_FORMAT);
	enc("\0a@b.test\0p\0w", 13, b, sizeof(b));
	assert_int_equal(sasl_plain_decode(b, strlen(b), &c),
	    SASL_BAD_FORMAT);
	enc("a@b.test pw", 11, b, sizeof(b));
	assert_int_equal(sasl_plain_decode(b, strlen(b), &c),
	    SASL_BAD_FORMAT);
	assert_int_equal(sasl_plain_decode("=", 1, &c), SASL_BAD_FORMAT);
	assert_int_equal(sasl_plain_decode("AGFAYi", 6, &c), SASL_BAD_BASE64);
	/* A password one octet over the limit. */
	memset(big, 'p', sizeof(big));
	memcpy(big, "\0a@b\0", 5);
	{
		char	 e[4 * sizeof(big)];

		enc(big, 5 + SASL_PASSWORD_MAX + 1, e, sizeof(e));
		assert_int_equal(sasl_plain_decode(e, strlen(e), &c),
		    SASL_BAD_FORMAT);
		enc(big, 5 + SASL_PASSWORD_MAX, e, sizeof(e));
		assert_int_equal(sasl_plain_decode(e, strlen(e), &c),
		    SASL_OK);
		assert_int_equal(strlen(c.password), SASL_PASSWORD_MAX);
	}
	sasl_creds_clear(&c);
	assert_string_equal(c.authcid, "");
}

static void
test_login(void **state)
{
	char	 out[SASL_ID_MAX + 1], b[64];

	enc("a@b.test", 8, b, sizeof(b));
	assert_int_equal(sasl_login_decode(b, strlen(b), out, sizeof(out)),
	    SASL_OK);
	assert_string_equal(out, "a@b.test");
	assert_int_equal(sasl_login_decode("=", 1, out, sizeof(out)),
	    SASL_BAD_FORMAT);
	enc("a\0b", 3, b, sizeof(b));
	assert_int_equal(sasl_login_decode(b, strlen(b), out, sizeof(out)),
	    SASL_BAD_FORMAT);
	assert_int_equal(sasl_login_decode("abc", 3, out, sizeof(out)),
	    SASL_BAD_BASE64);
	enc("abcdefgh", 8, b, sizeof(b));
	assert_int_equal(sasl_login_decode(b, strlen(b), out, 8),
	    SASL_BAD_FORMAT);	/* no room for the NUL */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mech),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_login),
	};

	if (sodium_init() == -1)
		return (1);
	return (cmocka_run_group_tests(tests, NULL, NULL));
}
