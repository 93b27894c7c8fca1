/*
 * test_tls.c - core/tls.c: contexts, key permission checks, and real
 * handshakes between a server and a client context over a socketpair
 * (the server in a forked child), with certificates made at test time
 * by the openssl command: a private CA, a valid certificate, one for
 * the wrong name, an expired one; DANE-EE and DANE-TA records computed
 * from them.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/tls.h"

#define HOST	"mx1.example.test"

static char	 dir[] = "/tmp/mxfb-test-tls.XXXXXX";
static char	 path_buf[8][1100];

static const char *
path(int slot, const char *name)
{
	snprintf(path_buf[slot], sizeof(path_buf[slot]), "%s/%s", dir, name);
	return (path_buf[slot]);
}

static int
sh(const char *fmt, ...)
{
	char	 cmd[4096];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return (system(cmd));
}

/* A certificate "label" for cn, signed by the CA, valid for days. */
static int
issue(const char *label, const char *cn, int days)
{
	return (sh("cd %s && openssl req -newkey ec -pkeyopt "
	    "ec_paramgen_curve:P-256 -nodes -keyout %s.key -out %s.csr "
	    "-subj /CN=%s >/dev/null 2>&1 && "
	    "printf 'subjectAltName=DNS:%s\\n' > %s.ext && "
	    "openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key "
	    "-CAcreateserial -days %d -out %s.pem -extfile %s.ext "
	    ">/dev/null 2>&1 && chmod 600 %s.key && "
	    "cat %s.pem ca.pem > %s.chain.pem",
	    dir, label, label, cn, cn, label, label, days, label, label,
	    label, label, label));
}

static int
group_setup(void **state)
{
	if (mkdtemp(dir) == NULL)
		return (-1);
	if (sh("cd %s && openssl req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem "
	    "-days 30 -subj '/CN=mxfb unit CA' -addext "
	    "basicConstraints=critical,CA:TRUE >/dev/null 2>&1", dir) != 0)
		return (-1);
	if (issue("valid", HOST, 30) != 0 ||
	    issue("wrong", "other.example.test", 30) != 0 ||
	    issue("expired", HOST, -1) != 0)
		return (-1);
	signal(SIGPIPE, SIG_IGN);
	return (0);
}

static int
group_teardown(void **state)
{
	sh("rm -rf %s", dir);
	return (0);
}

/* SHA-256 of a certificate's SPKI (selector 1) or whole DER (0). */
static void
digest(const char *pem, int selector, unsigned char out[32])
{
	FILE		*f;
	X509		*x;
	unsigned char	*der = NULL;
	unsigned int	 len = 32;
	int		 n;

	assert_non_null(f = fopen(pem, "r"));
	assert_non_null(x = PEM_read_X509(f, NULL, NULL, NULL));
	fclose(f);
	if (selector == 1)
		n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	else
		n = i2d_X509(x, &der);
	assert_true(n > 0);
	assert_int_equal(EVP_Digest(der, (size_t)n, out, &len, EVP_sha256(),
	    NULL), 1);
	OPENSSL_free(der);
	X509_free(x);
}

/* Serve one TLS session on fd: echo one line, then wait for the end. */
static void
serve(int fd, const char *label)
{
	struct tls_server	*ts;
	struct tls_conn		*c;
	char			 err[512], buf[256];
	ssize_t			 n;

	if (tls_server_new(path(6, label), path(7, label[0] == 'v' ?
	    "valid.key" : label[0] == 'w' ? "wrong.key" : "expired.key"),
	    NULL, &ts, err, sizeof(err)) == -1)
		_exit(2);
	if (tls_server_accept(ts, fd, fd, 10, &c, err, sizeof(err)) == -1)
		_exit(3);
	n = tls_read_timeout(c, buf, sizeof(buf), 10);
	if (n > 0 && tls_write_timeout(c, buf, (size_t)n, 10) == -1)
		_exit(4);
	while (tls_read_timeout(c, buf, sizeof(buf), 10) > 0)
		;
	tls_conn_free(c);
	tls_server_free(ts);
	_exit(0);
}

struct outcome {
	int		 rc;
	char		 err[512];
	struct tls_info	 seen;
	struct tls_info	 info;
	char		 echo[64];
};

/* A client handshake at level against a server using cert label. */
static void
handshake(enum tls_level level, const char *label, const char *host,
    const struct tlsa_record *tlsa, size_t ntlsa, struct outcome *o)
{
	struct tls_client	*tc;
	struct tls_conn		*c;
	char			 certfile[64];
	int			 sv[2], status;
	pid_t			 pid;
	ssize_t			 n;
	size_t			 got = 0;

	memset(o, 0, sizeof(*o));
	snprintf(certfile, sizeof(certfile), "%s.chain.pem", label);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_true((pid = fork()) != -1);
	if (pid == 0) {
		close(sv[0]);
		serve(sv[1], certfile);
	}
	close(sv[1]);
	assert_int_equal(tls_client_new(level, NULL, path(0, "ca.pem"), &tc,
	    o->err, sizeof(o->err)), 0);
	o->rc = tls_client_connect(tc, sv[0], host, host, tlsa, ntlsa, 10,
	    &o->seen, &c, o->err, sizeof(o->err));
	if (o->rc == 0) {
		o->info = *tls_conn_info(c);
		assert_int_equal(tls_write(c, "EHLO x\r\n", 8), 8);
		while (got < 8) {
			n = tls_read(c, o->echo + got, sizeof(o->echo) - 1 -
			    got);
			if (n == -1 && errno == EAGAIN)
				continue;
			assert_true(n > 0);
			got += (size_t)n;
		}
		assert_int_equal(tls_pending(c), 0);
		tls_conn_free(c);
	}
	close(sv[0]);
	tls_client_free(tc);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (o->rc == 0)
		assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_levels(void **state)
{
	enum tls_level	 l;

	assert_int_equal(tls_level_parse("none", &l), 0);
	assert_int_equal(l, TLS_LEVEL_NONE);
	assert_int_equal(tls_level_parse("dane", &l), 0);
	assert_int_equal(l, TLS_LEVEL_DANE);
	assert_int_equal(tls_level_parse("verify", &l), 0);
	assert_int_equal(l, TLS_LEVEL_VERIFY);
	assert_int_equal(tls_level_parse("Verify", &l), -1);
	assert_int_equal(tls_level_parse("", &l), -1);
	assert_string_equal(tls_level_name(TLS_LEVEL_ENCRYPT), "encrypt");
	assert_string_equal(tls_level_name(TLS_LEVEL_MAY), "may");
	assert_true(TLS_LEVEL_MAY < TLS_LEVEL_ENCRYPT &&
	    TLS_LEVEL_ENCRYPT < TLS_LEVEL_VERIFY);
}

static void
test_server_load(void **state)
{
	struct tls_server	*ts;
	char			 err[512];

	assert_int_equal(tls_server_new(path(0, "valid.chain.pem"),
	    path(1, "valid.key"), NULL, &ts, err, sizeof(err)), 0);
	tls_server_free(ts);

	/* A missing certificate names the key and the file. */
	assert_int_equal(tls_server_new(path(0, "nonexistent.pem"),
	    path(1, "valid.key"), NULL, &ts, err, sizeof(err)), -1);
	assert_null(ts);
	assert_non_null(strstr(err, "tls-cert"));
	assert_non_null(strstr(err, "nonexistent.pem"));

	/* Not a certificate. */
	assert_int_equal(tls_server_new(path(0, "valid.ext"),
	    path(1, "valid.key"), NULL, &ts, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no usable PEM certificate"));

	/* A key that belongs to another certificate. */
	assert_int_equal(tls_server_new(path(0, "valid.pem"),
	    path(1, "wrong.key"), NULL, &ts, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "does not match"));

	/* A certificate where the key should be. */
	sh("cp %s/valid.pem %s/notakey.pem && chmod 600 %s/notakey.pem",
	    dir, dir, dir);
	assert_int_equal(tls_server_new(path(0, "valid.pem"),
	    path(1, "notakey.pem"), NULL, &ts, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no usable PEM private key"));

	/* A bad cipher list is the configuration's error, not OpenSSL's. */
	assert_int_equal(tls_server_new(path(0, "valid.pem"),
	    path(1, "valid.key"), "NO-SUCH-CIPHER", &ts, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "tls-ciphers"));
	assert_int_equal(tls_ciphers_check("ECDHE+AESGCM", err,
	    sizeof(err)), 0);
	assert_int_equal(tls_ciphers_check("nonsense", err, sizeof(err)), -1);
}

static void
test_key_permissions(void **state)
{
	struct tls_server	*ts;
	char			 err[512];
	const mode_t		 bad[] = { 0640, 0644, 0604, 0660, 0610 };
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(chmod(path(1, "valid.key"), bad[i]), 0);
		assert_int_equal(tls_server_new(path(0, "valid.pem"),
		    path(1, "valid.key"), NULL, &ts, err, sizeof(err)), -1);
		assert_null(ts);
		assert_non_null(strstr(err, "too open"));
		assert_non_null(strstr(err, "valid.key"));
	}
	assert_int_equal(chmod(path(1, "valid.key"), 0400), 0);
	assert_int_equal(tls_server_new(path(0, "valid.pem"),
	    path(1, "valid.key"), NULL, &ts, err, sizeof(err)), 0);
	tls_server_free(ts);
	assert_int_equal(chmod(path(1, "valid.key"), 0600), 0);

	/* A directory is no key. */
	assert_int_equal(tls_server_new(path(0, "valid.pem"), dir, NULL, &ts,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
}

static void
test_handshake_verify_ok(void **state)
{
	struct outcome	 o;
	char		 sum[128];

	handshake(TLS_LEVEL_VERIFY, "valid", HOST, NULL, 0, &o);
	assert_int_equal(o.rc, 0);
	assert_memory_equal(o.echo, "EHLO x\r\n", 8);
	assert_true(o.info.verified);
	assert_false(o.info.dane);
	assert_string_equal(o.info.protocol, "TLSv1.3");
	assert_true(o.info.cipher[0] != '\0');
	assert_true(o.info.bits >= 128);
	assert_true(o.info.has_cert);
	assert_string_equal(o.info.subject, "CN=" HOST);
	assert_string_equal(o.info.issuer, "CN=mxfb unit CA");
	assert_true(o.info.expiry_days >= 29 && o.info.expiry_days <= 30);
	assert_string_equal(o.info.verify_error, "");
	tls_info_summary(&o.info, sum, sizeof(sum));
	assert_true(strncmp(sum, "TLS1.3:TLS_", 11) == 0);
}

static void
test_handshake_wrong_name(void **state)
{
	struct outcome	 o;

	handshake(TLS_LEVEL_VERIFY, "wrong", HOST, NULL, 0, &o);
	assert_int_equal(o.rc, -1);
	assert_non_null(strstr(o.err, "hostname mismatch"));
	assert_non_null(strstr(o.err, HOST));
	/* What was seen is still reported (for probe). */
	assert_true(o.seen.has_cert);
	assert_string_equal(o.seen.subject, "CN=other.example.test");
	assert_false(o.seen.verified);

	/* may and encrypt deliver anyway, and say it was not verified. */
	handshake(TLS_LEVEL_MAY, "wrong", HOST, NULL, 0, &o);
	assert_int_equal(o.rc, 0);
	assert_false(o.info.verified);
	assert_string_equal(o.info.verify_error, "hostname mismatch");
	handshake(TLS_LEVEL_ENCRYPT, "wrong", HOST, NULL, 0, &o);
	assert_int_equal(o.rc, 0);
	assert_false(o.info.verified);
}

static void
test_handshake_expired(void **state)
{
	struct outcome	 o;

	handshake(TLS_LEVEL_VERIFY, "expired", HOST, NULL, 0, &o);
	assert_int_equal(o.rc, -1);
	assert_non_null(strstr(o.err, "certificate has expired"));
	assert_true(o.seen.expiry_days < 0);

	handshake(TLS_LEVEL_MAY, "expired", HOST, NULL, 0, &o);
	assert_int_equal(o.rc, 0);
	assert_false(o.info.verified);
	assert_true(o.info.expiry_days < 0);
}

static void
test_handshake_untrusted_ca(void **state)
{
	struct tls_client	*tc;
	char			 err[512];

	/* The CA file must hold certificates. */
	assert_int_equal(tls_client_new(TLS_LEVEL_VERIFY, NULL,
	    path(0, "valid.ext"), &tc, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "tls-ca-file"));
	assert_int_equal(tls_client_new(TLS_LEVEL_NONE, NULL, NULL, &tc, err,
	    sizeof(err)), -1);
	assert_int_equal(tls_client_new(TLS_LEVEL_MAY, NULL, NULL, &tc, err,
	    sizeof(err)), 0);
	assert_int_equal(tls_client_level(tc), TLS_LEVEL_MAY);
	tls_client_free(tc);
}

static void
test_handshake_dane(void **state)
{
	struct tlsa_record	 r[2];
	unsigned char		 ee[32], ta[32], bad[32], old[32];
	struct outcome		 o;

	digest(path(0, "valid.pem"), 1, ee);
	digest(path(1, "ca.pem"), 0, ta);
	digest(path(2, "expired.pem"), 1, old);
	memset(bad, 0x5a, sizeof(bad));

	/* DANE-EE(3) SPKI(1) SHA-256(1): names are not checked (7672 3.1.1). */
	memset(r, 0, sizeof(r));
	r[0].usage = 3;
	r[0].selector = 1;
	r[0].mtype = 1;
	r[0].data = ee;
	r[0].len = sizeof(ee);
	handshake(TLS_LEVEL_DANE, "valid", "unrelated.example.test", r, 1, &o);
	assert_int_equal(o.rc, 0);
	assert_true(o.info.verified);
	assert_true(o.info.dane);

	/* ... nor the expiry date: the key is what was published. */
	r[0].data = old;
	handshake(TLS_LEVEL_DANE, "expired", HOST, r, 1, &o);
	assert_int_equal(o.rc, 0);
	assert_true(o.info.dane);

	/* DANE-TA(2) Cert(0) SHA-256(1) of the CA: names are checked. */
	r[0].usage = 2;
	r[0].selector = 0;
	r[0].data = ta;
	handshake(TLS_LEVEL_DANE, "valid", HOST, r, 1, &o);
	assert_int_equal(o.rc, 0);
	assert_true(o.info.dane);
	handshake(TLS_LEVEL_DANE, "wrong", HOST, r, 1, &o);
	assert_int_equal(o.rc, -1);
	assert_non_null(strstr(o.err, "TLSA"));

	/* A record that matches nothing: no delivery. */
	r[0].usage = 3;
	r[0].selector = 1;
	r[0].data = bad;
	handshake(TLS_LEVEL_DANE, "valid", HOST, r, 1, &o);
	assert_int_equal(o.rc, -1);
	assert_non_null(strstr(o.err, "no TLSA record"));

	/* One matching among non-matching ones is enough. */
	r[1] = r[0];
	r[1].data = ee;
	handshake(TLS_LEVEL_DANE, "valid", HOST, r, 2, &o);
	assert_int_equal(o.rc, 0);
	assert_true(o.info.dane);

	/* Only PKIX-EE(1) records: unusable in SMTP, encryption only. */
	r[0].usage = 1;
	handshake(TLS_LEVEL_DANE, "wrong", HOST, r, 1, &o);
	assert_int_equal(o.rc, 0);
	assert_false(o.info.dane);
	assert_false(o.info.verified);

	/* No records at all under dane: opportunistic. */
	handshake(TLS_LEVEL_DANE, "expired", HOST, NULL, 0, &o);
	assert_int_equal(o.rc, 0);
	assert_false(o.info.verified);
}

static void
test_server_timeout(void **state)
{
	struct tls_server	*ts;
	struct tls_conn		*c;
	char			 err[512];
	int			 sv[2];

	assert_int_equal(tls_server_new(path(0, "valid.chain.pem"),
	    path(1, "valid.key"), NULL, &ts, err, sizeof(err)), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* A client that never speaks. */
	assert_int_equal(tls_server_accept(ts, sv[0], sv[0], 1, &c, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "timed out"));
	/* A client that speaks plaintext. */
	assert_int_equal(write(sv[1], "EHLO plain\r\n", 12), 12);
	assert_int_equal(tls_server_accept(ts, sv[0], sv[0], 1, &c, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "TLS handshake"));
	close(sv[0]);
	close(sv[1]);
	tls_server_free(ts);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_server_load),
		cmocka_unit_test(test_key_permissions),
		cmocka_unit_test(test_handshake_verify_ok),
		cmocka_unit_test(test_handshake_wrong_name),
		cmocka_unit_test(test_handshake_expired),
		cmocka_unit_test(test_handshake_untrusted_ca),
		cmocka_unit_test(test_handshake_dane),
		cmocka_unit_test(test_server_timeout),
	};

	return (cmocka_run_group_tests(tests, group_setup, group_teardown));
}
