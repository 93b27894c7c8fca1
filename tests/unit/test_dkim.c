/*
 * test_dkim.c - core/dkim.c: relaxed canonicalization against RFC 6376
 * 3.4.5's example and hostile edge cases, the From domain that picks a
 * key, the h= list (every instance, From oversigned), bh=, the key
 * checks of a `dkim` line.  Signatures themselves are checked by an
 * independent verifier in tests/integration/test_dkim.py.
 */
#include <sys/stat.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "core/dkim.h"

static void	 header_is(const char *, size_t, const char *, size_t);
static void	 body_is(const char *, size_t, const char *, size_t);
static void	 from_is(const char *, const char *);
static char	*key_file(const char *, mode_t);
static char	*field_of(const char *, const char *, const char *);
static void	 folded_short(const char *);

#define HDR(in, want)	header_is(in, sizeof(in) - 1, want, sizeof(want) - 1)
#define BODY(in, want)	body_is(in, sizeof(in) - 1, want, sizeof(want) - 1)

static void
header_is(const char *in, size_t inlen, const char *want, size_t wantlen)
{
	char	*out;
	size_t	 len;

	out = dkim_canon_header(in, inlen, &len);
	assert_int_equal(len, wantlen);
	assert_memory_equal(out, want, wantlen);
	free(out);
}

static void
body_is(const char *in, size_t inlen, const char *want, size_t wantlen)
{
	char	*out;
	size_t	 len;

	assert_non_null(out = dkim_canon_body(in, inlen, &len));
	assert_int_equal(len, wantlen);
	assert_memory_equal(out, want, wantlen);
	free(out);
}

/* The From domain of msg is want (NULL: none, not signed). */
static void
from_is(const char *msg, const char *want)
{
	char	 domain[256];
	int	 rc;

	rc = dkim_from_domain(msg, strlen(msg), domain, sizeof(domain));
	if (want == NULL) {
		if (rc != -1)
			fail_msg("%s: got %s, want none", msg, domain);
		return;
	}
	if (rc == -1)
		fail_msg("%s: got none, want %s", msg, want);
	assert_string_equal(domain, want);
}

/* A PEM private key of that algorithm in a temporary file, mode. */
static char *
key_file(const char *alg, mode_t mode)
{
	char		 path[] = "/tmp/test_dkim.XXXXXX";
	EVP_PKEY	*pkey;
	FILE		*f;
	int		 fd;

	if (strcmp(alg, "RSA") == 0)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	else if (strcmp(alg, "EC") == 0)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, alg);
	assert_non_null(pkey);
	assert_true((fd = mkstemp(path)) != -1);
	assert_non_null(f = fdopen(fd, "w"));
	assert_int_equal(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL,
	    NULL), 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
	EVP_PKEY_free(pkey);
	return (strdup(path));
}

/* The value of tag in the signature field, unfolded (malloc'd). */
static char *
field_of(const char *sig, const char *tag, const char *end)
{
	const char	*p, *q;
	char		*v;
	size_t		 i, n = 0;

	assert_non_null(p = strstr(sig, tag));
	p += strlen(tag);
	q = strstr(p, end);
	if (q == NULL)
		q = p + strlen(p);
	v = malloc((size_t)(q - p) + 1);
	for (i = 0; p + i < q; i++)
		if (p[i] != '\r' && p[i] != '\n' && p[i] != '\t')
			v[n++] = p[i];
	v[n] = '\0';
	return (v);
}

/* Lines end in CRLF; all but the first are folded short of 80 columns
 * (a tab counting 8). */
static void
folded_short(const char *sig)
{
	const char	*p, *q;

	for (p = strchr(sig, '\n') + 1; *p != '\0'; p = q + 1) {
		assert_non_null(q = strchr(p, '\n'));
		assert_int_equal(q[-1], '\r');
		assert_int_equal(p[0], '\t');
		assert_true(q - p - 1 + 7 < 80);
	}
}

static void
test_rfc6376_example(void **state)
{
	(void)state;
	/* RFC 6376 3.4.5. */
	HDR("A: X\r\n", "a:X\r\n");
	HDR("B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n");
	BODY(" C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n");
}

static void
test_canon_header_edges(void **state)
{
	(void)state;
	HDR("SUBJECT:   \r\n\t  \r\n", "subject:\r\n");
	HDR("Subject:\r\n", "subject:\r\n");
	HDR("X-Y:\tv  w\t\tz\r\n", "x-y:v w z\r\n");
	HDR("X: no final CRLF", "x:no final CRLF\r\n");
	HDR("No colon at all\r\n", "No colon at all\r\n");
	HDR("X: a:b: c\r\n", "x:a:b: c\r\n");
	/* Bare LF and CR are no line ends; a NUL is a byte. */
	HDR("X: a\nb \rc\r\n", "x:a\nb \rc\r\n");
	HDR("X: a\0b\r\n", "x:a\0b\r\n");
	HDR("X:\r\n\r\n\r\n", "x:\r\n");
	HDR("", "\r\n");
	HDR(":", ":\r\n");
}

static void
test_canon_body_edges(void **state)
{
	(void)state;
	BODY("", "");
	BODY("\r\n", "");
	BODY("\r\n\r\n  \r\n\t\r\n", "");
	BODY("abc", "abc\r\n");
	BODY("a\r\n \r\n\r\nb", "a\r\n\r\n\r\nb\r\n");
	BODY("\tx\t \ty  ", " x y\r\n");
	BODY("a\0b\r\n", "a\0b\r\n");
	BODY("a\nb \n", "a\nb \n\r\n");
	BODY("a\r", "a\r\r\n");
	BODY("\r\r\n", "\r\r\n");
	BODY("x\r\n\r\n \r", "x\r\n\r\n \r\r\n");
}

/* A body of a million empty lines then text: linear, and exact. */
static void
test_canon_body_many_blank_lines(void **state)
{
	size_t	 n = 1000000, len, i;
	char	*in, *out;

	(void)state;
	in = malloc(n * 2 + 1);
	for (i = 0; i < n; i++)
		memcpy(in + 2 * i, "\r\n", 2);
	in[2 * n] = 'x';
	out = dkim_canon_body(in, 2 * n + 1, &len);
	assert_int_equal(len, 2 * n + 3);
	assert_memory_equal(out + 2 * n, "x\r\n", 3);
	free(out);
	out = dkim_canon_body(in, 2 * n, &len);
	assert_int_equal(len, 0);
	free(out);
	free(in);
}

static void
test_from_domain(void **state)
{
	(void)state;
	from_is("From: Alice <alice@Example.ORG>\r\n\r\nbody\r\n",
	    "example.org");
	from_is("From: alice@example.org (Alice (the) one)\r\n\r\n",
	    "example.org");
	from_is("From: \"Doe, John\" <j@x.org>\r\n\r\n", "x.org");
	from_is("From: \"a@b.org\" <c@d.org>\r\n\r\n", "d.org");
	from_is("From: \"x y\"@q.org\r\n\r\n", "q.org");
	from_is("From: Alice\r\n <alice@example.org>\r\nTo: b@c.d\r\n\r\n",
	    "example.org");
	from_is("fROM : a@x.org.\r\n", "x.org");
	from_is("From:a@x.org", "x.org");
	from_is("To: b@y.org\r\nFrom: =?utf-8?q?J=C3=B6rg?= <j@z.org>\r\n\r\n",
	    "z.org");
	/* Not exactly one From with exactly one address: not signed. */
	from_is("To: b@y.org\r\n\r\nFrom: a@x.org\r\n", NULL);
	from_is("From: a@x.org\r\nFrom: a@x.org\r\n\r\n", NULL);
	from_is("From: a@x.org, b@y.org\r\n\r\n", NULL);
	from_is("From: Friends: a@x.org;\r\n\r\n", NULL);
	from_is("From: <a@x.org> b@y.org\r\n\r\n", NULL);
	from_is("From: <a@x.org\r\n\r\n", NULL);
	from_is("From: \"open <a@x.org>\r\n\r\n", NULL);
	from_is("From: a@x.org (open\r\n\r\n", NULL);
	from_is("From: a@[192.0.2.1]\r\n\r\n", NULL);
	from_is("From: a@b@c.org\r\n\r\n", NULL);
	from_is("From: @c.org\r\n\r\n", NULL);
	from_is("From: a@\r\n\r\n", NULL);
	from_is("From: a@x_y.org\r\n\r\n", NULL);
	from_is("From: <a@x.org..>\r\n\r\n", NULL);
	from_is("From: <@r.org:a@x.org>\r\n\r\n", NULL);
	from_is("From: Alice\r\n\r\n", NULL);
	from_is("From: \r\n\r\n", NULL);
	from_is("", NULL);
	/* A NUL in the domain is no part of a host name. */
	assert_int_equal(dkim_from_domain("From: a@x.org\0.evil\r\n", 22,
	    (char [256]){ 0 }, 256), -1);
}

static void
test_sign_fields(void **state)
{
	static const char msg[] =
	    "Received: from x\r\n"
	    "From: Alice <alice@example.org>\r\n"
	    "To: b@example.net\r\n"
	    "Subject: one\r\n"
	    "to: c@example.net\r\n"
	    "X-Other: not signed\r\n"
	    "Message-ID: <1@example.org>\r\n"
	    "\r\n"
	    " C \r\nD \t E\r\n\r\n\r\n";
	unsigned char	 digest[crypto_hash_sha256_BYTES];
	char		 b64[64], err[512], *path, *sig, *v, *m2, *p2;
	const char	*p;
	struct dkim_key	*k;
	size_t		 len, i;

	(void)state;
	path = key_file("ED25519", 0600);
	k = dkim_key_load("Example.ORG.", "Sel-1", path, err, sizeof(err));
	if (k == NULL)
		fail_msg("%s", err);
	assert_string_equal(dkim_key_domain(k), "example.org");
	assert_string_equal(dkim_key_selector(k), "sel-1");
	assert_string_equal(dkim_key_algorithm(k), "ed25519-sha256");
	assert_int_equal(dkim_sign(k, msg, sizeof(msg) - 1, 1700000000, &sig,
	    &len, err, sizeof(err)), 0);
	assert_int_equal(strlen(sig), len);
	assert_memory_equal(sig, "DKIM-Signature: v=1; a=ed25519-sha256; "
	    "c=relaxed/relaxed; d=example.org; s=sel-1;", 79);
	assert_memory_equal(sig + len - 2, "\r\n", 2);
	v = field_of(sig, " h=", ";");
	assert_string_equal(v, "from:from:to:to:subject:message-id");
	free(v);
	v = field_of(sig, "\tt=", ";");
	assert_string_equal(v, "1700000000");
	free(v);
	/* bh= is the SHA-256 of the example's canonical body. */
	(void)crypto_hash_sha256(digest, (const unsigned char *)
	    " C\r\nD E\r\n", 9);
	(void)sodium_bin2base64(b64, sizeof(b64), digest, sizeof(digest),
	    sodium_base64_VARIANT_ORIGINAL);
	v = field_of(sig, "\tbh=", ";");
	assert_string_equal(v, b64);
	free(v);
	folded_short(sig);
	free(sig);
	/* Thirty To fields: thirty "to" in h=, folded. */
	m2 = strdup("From: a@example.org\r\n");
	for (i = 0; i < 30; i++) {
		assert_true(asprintf(&p2, "%sTo: r%zu@example.net\r\n", m2,
		    i) != -1);
		free(m2);
		m2 = p2;
	}
	assert_int_equal(dkim_sign(k, m2, strlen(m2), 1, &sig, &len, err,
	    sizeof(err)), 0);
	folded_short(sig);
	v = field_of(sig, " h=", ";");
	for (i = 0, p = v; (p = strstr(p, ":to")) != NULL; p++)
		i++;
	assert_int_equal(i, 30);
	assert_int_equal(strncmp(v, "from:from:to:", 13), 0);
	free(v);
	free(sig);
	free(m2);
	dkim_key_free(k);
	unlink(path);
	free(path);
}

/* The key list a configuration builds: checks, order, selection. */
static void
test_config_keys(void **state)
{
	struct dkim_key		**keys = NULL;
	const struct dkim_key	*use[4];
	char			*ed, *rsa, *open_, *gw, *ec, err[1024];
	char			*av[3];
	size_t			 n = 0;
	static const char	 msg[] = "From: a@example.org\r\n\r\nx\r\n";

	(void)state;
	ed = key_file("ED25519", 0600);
	rsa = key_file("RSA", 0640);
	open_ = key_file("ED25519", 0604);
	gw = key_file("ED25519", 0620);
	ec = key_file("EC", 0600);
#define ADD(d, s, f, line) (av[0] = (d), av[1] = (s), av[2] = (f), \
	dkim_config_add(&keys, &n, av, 3, line, err, sizeof(err)))
	assert_int_equal(ADD("example.org", "ed", ed, 3), 0);
	assert_int_equal(ADD("EXAMPLE.org", "rsa", rsa, 4), 0);
	assert_int_equal(ADD("other.test", "ed", ed, 5), 0);
	assert_int_equal(ADD("example.org", "ED", rsa, 6), -1);
	assert_non_null(strstr(err, "duplicate"));
	assert_non_null(strstr(err, "line 3"));
	assert_int_equal(ADD("example.org", "x", open_, 7), -1);
	assert_non_null(strstr(err, "0604"));
	assert_int_equal(ADD("example.org", "x", gw, 7), -1);
	assert_non_null(strstr(err, "0620"));
	assert_int_equal(ADD("example.org", "x", ec, 7), -1);
	assert_non_null(strstr(err, "neither an RSA nor an Ed25519"));
	assert_int_equal(ADD("example.org", "x", "/nonexistent/key", 7), -1);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(ADD("-bad.org", "x", ed, 7), -1);
	assert_int_equal(ADD("example.org", "a_b", ed, 7), -1);
	assert_int_equal(ADD("example.org", "x.", ed, 7), -1);
	assert_int_equal(ADD("example.org", "", ed, 7), -1);
	assert_int_equal(dkim_config_add(&keys, &n, av, 2, 7, err,
	    sizeof(err)), -1);
	assert_int_equal(n, 3);
	/* Both of the From domain's keys, in the configuration's order. */
	assert_int_equal(dkim_keys_for_message(keys, n, msg, sizeof(msg) - 1,
	    use, 4), 2);
	assert_string_equal(dkim_key_selector(use[0]), "ed");
	assert_string_equal(dkim_key_selector(use[1]), "rsa");
	assert_string_equal(dkim_key_algorithm(use[1]), "rsa-sha256");
	assert_int_equal(dkim_keys_for_message(keys, n, msg, sizeof(msg) - 1,
	    use, 1), 1);
	assert_int_equal(dkim_keys_for_message(keys, n,
	    "From: a@sub.example.org\r\n\r\n", 27, use, 4), 0);
	dkim_keys_free(keys, n);
	unlink(ed);
	unlink(rsa);
	unlink(open_);
	unlink(gw);
	unlink(ec);
	free(ed);
	free(rsa);
	free(open_);
	free(gw);
	free(ec);
}

static void
test_dns_record(void **state)
{
	struct dkim_key	*k;
	char		 err[512], name[300], *path, *rec;

	(void)state;
	path = key_file("ED25519", 0600);
	assert_non_null(k = dkim_key_load("example.org", "s1", path, err,
	    sizeof(err)));
	assert_non_null(rec = dkim_dns_record(k));
	assert_int_equal(strncmp(rec, "v=DKIM1; k=ed25519; p=", 22), 0);
	assert_int_equal(strlen(rec), 22 + 44);
	free(rec);
	assert_int_equal(dkim_dns_name(k, name, sizeof(name)), 0);
	assert_string_equal(name, "s1._domainkey.example.org");
	assert_int_equal(dkim_dns_name(k, name, 10), -1);
	dkim_key_free(k);
	unlink(path);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc6376_example),
		cmocka_unit_test(test_canon_header_edges),
		cmocka_unit_test(test_canon_body_edges),
		cmocka_unit_test(test_canon_body_many_blank_lines),
		cmocka_unit_test(test_from_domain),
		cmocka_unit_test(test_sign_fields),
		cmocka_unit_test(test_config_keys),
		cmocka_unit_test(test_dns_record),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
