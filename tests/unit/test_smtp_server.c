/*
 * test_smtp_server.c - the SMTP protocol engine (core/smtp_server.c)
 * driven through an in-memory smtp_server_io: command parsing, replies and
 * their batching, ESMTP parameters, the DATA reader (dot-unstuffing,
 * smuggling defence, size and loop limits), the hook contract, the
 * time limits against slow clients (a fake that reads slowly) and the
 * key sessions are counted by per client.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/log.h"
#include "core/smtp_server.h"
#include "core/util.h"

struct fake {
	const char	*in;
	size_t		 inlen, inpos;
	size_t		 chunk;		/* bytes per read, 0 = all */
	int		 timeout_at_end;
	unsigned	 delay_ms;	/* before each read returns */
	int		 timeout;	/* smtp_params: 0 = 300 */
	uint64_t	 min_data_rate;	/* smtp_params */
	char		 out[65536];
	size_t		 outlen;
	int		 writes;
	/* storage */
	char		*stored;
	size_t		 storedlen;
	int		 begun, commits, aborts;
	int		 write_fail;	/* errno to fail data_write with */
	int		 commit_fail;
	struct smtp_txn	 last;		/* copy of envelope facts */
	char		 last_rcpt_orcpt[600];
	int		 last_notify;
	char		 last_envid[200];
	char		 etrn_domain[DOMAIN_NAME_SIZE];
	int		 reject_rcpt;	/* refuse rcpt "bad@..." */
};

static ssize_t
fake_read(void *ctx, void *buf, size_t len, int timeout)
{
	struct fake	*f = ctx;
	size_t		 n = f->inlen - f->inpos;

	if (n == 0) {
		if (f->timeout_at_end) {
			errno = ETIMEDOUT;
			return (-1);
		}
		return (0);
	}
	if (f->chunk > 0 && n > f->chunk)
		n = f->chunk;
	if (n > len)
		n = len;
	if (f->delay_ms > 0)
		usleep(f->delay_ms * 1000);
	memcpy(buf, f->in + f->inpos, n);
	f->inpos += n;
	return ((ssize_t)n);
}

static int
fake_write(void *ctx, const void *buf, size_t len, int timeout)
{
	struct fake	*f = ctx;

	assert_true(f->outlen + len < sizeof(f->out));
	memcpy(f->out + f->outlen, buf, len);
	f->outlen += len;
	f->out[f->outlen] = '\0';
	f->writes++;
	return (0);
}

static int
h_rcpt(void *ctx, const struct smtp_txn *txn, const struct address *a,
    char *reply, size_t size)
{
	struct fake	*f = ctx;

	if (f->reject_rcpt && strncmp(a->addr, "bad@", 4) == 0) {
		snprintf(reply, size, "550 5.7.1 <%s>: Relay access denied",
		    a->addr);
		return (-1);
	}
	return (0);
}

static int
h_begin(void *ctx, struct smtp_txn *txn, char *reply, size_t size)
{
	struct fake	*f = ctx;

	f->begun++;
	free(f->stored);
	f->stored = NULL;
	f->storedlen = 0;
	strlcpy(txn->id, "TESTID", sizeof(txn->id));
	return (0);
}

static int
h_write(void *ctx, const void *buf, size_t len)
{
	struct fake	*f = ctx;

	if (f->write_fail) {
		errno = f->write_fail;
		return (-1);
	}
	f->stored = xreallocarray(f->stored, f->storedlen + len + 1, 1);
	memcpy(f->stored + f->storedlen, buf, len);
	f->storedlen += len;
	f->stored[f->storedlen] = '\0';
	return (0);
}

static int
h_commit(void *ctx, struct smtp_txn *txn, char *reply, size_t size)
{
	struct fake	*f = ctx;

	if (f->commit_fail) {
		strlcpy(reply, "451 4.3.0 Error: queue file write error", size);
		return (-1);
	}
	f->commits++;
	f->last.smtputf8 = txn->smtputf8;
	f->last.eightbit = txn->eightbit;
	f->last.ret = txn->ret;
	f->last.nrcpts = txn->nrcpts;
	f->last.size = txn->size;
	strlcpy(f->last_envid, txn->envid ? txn->envid : "", 200);
	if (txn->nrcpts > 0) {
		strlcpy(f->last_rcpt_orcpt, txn->rcpts[0].orcpt ?
		    txn->rcpts[0].orcpt : "", sizeof(f->last_rcpt_orcpt));
		f->last_notify = txn->rcpts[0].notify;
	}
	return (0);
}

static void
h_abort(void *ctx)
{
	struct fake	*f = ctx;

	f->aborts++;
}

static int
h_etrn(void *ctx, const char *domain, char *reply, size_t size)
{
	struct fake	*f = ctx;

	strlcpy(f->etrn_domain, domain, sizeof(f->etrn_domain));
	snprintf(reply, size, "250 2.0.0 Queuing for node %s started", domain);
	return (0);
}

static int
run(struct fake *f, const char *input, uint64_t max_size)
{
	struct smtp_params	 p;
	struct smtp_server_io		 io;
	struct smtp_hooks	 h;

	f->in = input;
	f->inlen = strlen(input);
	f->inpos = 0;
	memset(&p, 0, sizeof(p));
	p.hostname = "backup.example.test";
	p.client_addr = "192.0.2.1";
	p.client_name = "unknown";
	p.max_size = max_size;
	p.max_recipients = 3;
	p.timeout = f->timeout > 0 ? f->timeout : 300;
	p.min_data_rate = f->min_data_rate;
	p.soft_error_limit = 10;
	p.hard_error_limit = 20;
	p.error_sleep = 0;
	io.ctx = f;
	io.read = fake_read;
	io.write = fake_write;
	memset(&h, 0, sizeof(h));
	h.ctx = f;
	h.rcpt = h_rcpt;
	h.data_begin = h_begin;
	h.data_write = h_write;
	h.data_commit = h_commit;
	h.data_abort = h_abort;
	h.etrn = h_etrn;
	return (smtp_session(&p, &io, &h));
}

/* AUTH: "a@b.test" with "pw" is the one account. */
static int
h_auth(void *ctx, const char *mech, const char *authcid, const char *pw,
    int bad_format, char *reply, size_t size)
{
	struct fake	*f = ctx;

	strlcpy(f->etrn_domain, mech, sizeof(f->etrn_domain));
	if (!bad_format && strcmp(authcid, "a@b.test") == 0 &&
	    strcmp(pw, "pw") == 0)
		return (0);
	strlcpy(reply, "535 5.7.8 Error: authentication failed", size);
	return (-1);
}

/* A submission session (params->submission), TLS up from the start or not. */
static int
run_submission(struct fake *f, const char *input, int tls)
{
	struct smtp_params	 p;
	struct smtp_server_io	 io;
	struct smtp_hooks	 h;

	f->in = input;
	f->inlen = strlen(input);
	f->inpos = 0;
	memset(&p, 0, sizeof(p));
	p.hostname = "backup.example.test";
	p.client_addr = "192.0.2.1";
	p.client_name = "unknown";
	p.max_recipients = 3;
	p.timeout = 300;
	p.soft_error_limit = 10;
	p.hard_error_limit = 20;
	p.submission = 1;
	p.tls_desc = tls ? "TLSv1.3:TLS_AES_256_GCM_SHA384:256" : NULL;
	io.ctx = f;
	io.read = fake_read;
	io.write = fake_write;
	memset(&h, 0, sizeof(h));
	h.ctx = f;
	h.rcpt = h_rcpt;
	h.data_begin = h_begin;
	h.data_write = h_write;
	h.data_commit = h_commit;
	h.data_abort = h_abort;
	h.auth = h_auth;
	return (smtp_session(&p, &io, &h));
}

static struct fake *
fake_new(void)
{
	return (xcalloc(1, sizeof(struct fake)));
}

static void
fake_free(struct fake *f)
{
	free(f->stored);
	free(f);
}

/* Number of reply lines starting with code. */
static int
count_replies(const struct fake *f, const char *code)
{
	const char	*p = f->out;
	int		 n = 0;
	size_t		 cl = strlen(code);

	while (*p != '\0') {
		if (strncmp(p, code, cl) == 0)
			n++;
		if ((p = strstr(p, "\r\n")) == NULL)
			break;
		p += 2;
	}
	return (n);
}

static const char *
body_after_received(const struct fake *f)
{
	const char	*p;

	assert_non_null(f->stored);
	assert_int_equal(strncmp(f->stored, "Received: from ", 15), 0);
	/* The Received header ends at the first line not starting with TAB. */
	p = f->stored;
	for (;;) {
		p = strstr(p, "\r\n");
		assert_non_null(p);
		p += 2;
		if (*p != '\t')
			return (p);
	}
}

#define EHLO	"EHLO client.test\r\n"
#define TXN	"MAIL FROM:<s@a.test>\r\nRCPT TO:<r@example.test>\r\nDATA\r\n"

static void
test_command_parse(void **state)
{
	struct smtp_command	 c;

	smtp_command_parse("mail FROM:<a@b>", &c);
	assert_int_equal(c.verb, SMTP_MAIL);
	assert_string_equal(c.arg, "FROM:<a@b>");
	smtp_command_parse("EhLo   host", &c);
	assert_int_equal(c.verb, SMTP_EHLO);
	assert_string_equal(c.arg, "host");
	smtp_command_parse("QUIT", &c);
	assert_int_equal(c.verb, SMTP_QUIT);
	assert_string_equal(c.arg, "");
	smtp_command_parse("MAILX FROM:<a@b>", &c);
	assert_int_equal(c.verb, SMTP_UNKNOWN);
	smtp_command_parse("MAIL:", &c);
	assert_int_equal(c.verb, SMTP_UNKNOWN);
	smtp_command_parse("", &c);
	assert_int_equal(c.verb, SMTP_UNKNOWN);
	smtp_command_parse("starttls", &c);
	assert_int_equal(c.verb, SMTP_STARTTLS);
}

static void
test_line_check(void **state)
{
	char	 r[SMTP_REPLY_MAX], longline[600];

	assert_int_equal(smtp_line_check("NOOP\r\n", 6, r, sizeof(r)), 0);
	assert_int_equal(smtp_line_check("NOOP\n", 5, r, sizeof(r)), -1);
	assert_non_null(strstr(r, "bare <LF>"));
	assert_int_equal(smtp_line_check("NO\rOP\r\n", 7, r, sizeof(r)), -1);
	assert_non_null(strstr(r, "bare <CR>"));
	assert_int_equal(smtp_line_check("NO\0OP\r\n", 7, r, sizeof(r)), -1);
	assert_non_null(strstr(r, "NUL"));
	memset(longline, 'a', 510);
	memcpy(longline + 510, "\r\n", 2);
	assert_int_equal(smtp_line_check(longline, 512, r, sizeof(r)), 0);
	memset(longline, 'a', 511);
	memcpy(longline + 511, "\r\n", 2);
	assert_int_equal(smtp_line_check(longline, 513, r, sizeof(r)), -1);
	assert_non_null(strstr(r, "too long"));
}

static void
test_xtext(void **state)
{
	assert_true(smtp_xtext_valid("abc", 100));
	assert_true(smtp_xtext_valid("a+2Bb+3D", 100));
	assert_false(smtp_xtext_valid("a+2b", 100));	/* lower-case hex */
	assert_false(smtp_xtext_valid("a+2", 100));
	assert_false(smtp_xtext_valid("a=b", 100));
	assert_false(smtp_xtext_valid("a b", 100));
	assert_false(smtp_xtext_valid("", 100));
	assert_false(smtp_xtext_valid("abcd", 3));
}

static void
test_basic_transaction(void **state)
{
	struct fake	*f = fake_new();
	const char	*body;

	assert_int_equal(run(f, EHLO TXN "Subject: x\r\n\r\n..leading dot\r\n"
	    "line\r\n.\r\nQUIT\r\n", 0), 0);
	assert_non_null(strstr(f->out, "220 backup.example.test ESMTP\r\n"));
	assert_non_null(strstr(f->out, "250-PIPELINING\r\n"));
	assert_non_null(strstr(f->out, "250-SIZE\r\n"));
	assert_non_null(strstr(f->out, "250-ENHANCEDSTATUSCODES\r\n"));
	assert_non_null(strstr(f->out, "250-8BITMIME\r\n"));
	assert_non_null(strstr(f->out, "250-DSN\r\n"));
	assert_non_null(strstr(f->out, "250-ETRN\r\n"));
	assert_non_null(strstr(f->out, "250 SMTPUTF8\r\n"));
	assert_non_null(strstr(f->out, "354 "));
	assert_non_null(strstr(f->out, "250 2.0.0 Ok: queued as TESTID\r\n"));
	assert_non_null(strstr(f->out, "221 2.0.0 Bye\r\n"));
	assert_int_equal(f->commits, 1);
	assert_int_equal(f->aborts, 0);
	body = body_after_received(f);
	assert_string_equal(body, "Subject: x\r\n\r\n.leading dot\r\nline\r\n");
	assert_non_null(strstr(f->stored, "\tby backup.example.test (mxfb) "
	    "with ESMTP id TESTID\r\n\tfor <r@example.test>;\r\n\t"));
	assert_non_null(strstr(f->stored, "from client.test (unknown "
	    "[192.0.2.1])\r\n"));
	assert_int_equal(f->last.size, f->storedlen);
	fake_free(f);
}

static void
test_helo_received_smtp(void **state)
{
	struct fake	*f = fake_new();

	run(f, "HELO c \t\r\nMAIL FROM:<> \r\nRCPT TO:<a@example.test>\r\n"
	    "RCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\n", 0);
	assert_int_equal(f->commits, 1);
	assert_non_null(strstr(f->stored, "with SMTP id TESTID;\r\n\t"));
	assert_null(strstr(f->stored, "for <"));
	fake_free(f);
}

static void
test_pipelining_batches(void **state)
{
	struct fake	*f = fake_new();

	/* The whole session in one read: replies in order, few writes. */
	run(f, EHLO TXN "hello\r\n.\r\n" TXN "again\r\n.\r\nQUIT\r\n", 0);
	assert_int_equal(f->commits, 2);
	assert_int_equal(count_replies(f, "250 2.1.0"), 2);
	assert_int_equal(count_replies(f, "250 2.1.5"), 2);
	assert_int_equal(count_replies(f, "354"), 2);
	assert_int_equal(count_replies(f, "250 2.0.0 Ok: queued"), 2);
	/* Greeting, then everything else at once. */
	assert_int_equal(f->writes, 2);
	assert_non_null(strstr(f->out, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 "));
	fake_free(f);

	/* One byte per read: same replies, same order. */
	f = fake_new();
	f->chunk = 1;
	run(f, EHLO TXN "hello\r\n.\r\nQUIT\r\n", 0);
	assert_int_equal(f->commits, 1);
	assert_int_equal(count_replies(f, "250 2.0.0 Ok: queued"), 1);
	assert_non_null(strstr(f->out, "221 2.0.0"));
	fake_free(f);
}

static void
test_sequence_errors(void **state)
{
	struct fake	*f = fake_new();

	run(f, "MAIL FROM:<a@b.test>\r\n" EHLO "RCPT TO:<r@example.test>\r\n"
	    "DATA\r\nMAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\n"
	    "DATA\r\nDATA x\r\nRSET x\r\nRSET\r\nNOOP\r\nVRFY\r\n"
	    "VRFY user\r\nEXPN list\r\nHELP\r\nFOO\r\nSTARTTLS\r\nAUTH PLAIN\r\n"
	    "BDAT 10\r\nHELO\r\nETRN\r\nQUIT\r\n", 0);
	assert_non_null(strstr(f->out, "503 5.5.1 Error: send HELO/EHLO first"));
	assert_non_null(strstr(f->out, "503 5.5.1 Error: need MAIL command"));
	assert_non_null(strstr(f->out, "503 5.5.1 Error: need RCPT command"));
	assert_non_null(strstr(f->out, "503 5.5.1 Error: nested MAIL command"));
	assert_non_null(strstr(f->out, "554 5.5.1 Error: no valid recipients"));
	assert_non_null(strstr(f->out, "501 5.5.4 Syntax: DATA"));
	assert_non_null(strstr(f->out, "501 5.5.4 Syntax: RSET"));
	assert_non_null(strstr(f->out, "501 5.5.4 Syntax: VRFY"));
	assert_non_null(strstr(f->out, "252 2.0.0"));
	assert_non_null(strstr(f->out, "502 5.5.1"));
	assert_non_null(strstr(f->out, "214 2.0.0"));
	assert_non_null(strstr(f->out, "500 5.5.2 Error: command not recognized"));
	assert_non_null(strstr(f->out, "503 5.5.1 Error: authentication"));
	assert_non_null(strstr(f->out, "501 5.5.4 Syntax: HELO hostname"));
	assert_non_null(strstr(f->out, "501 5.5.4 Syntax: ETRN domain"));
	assert_non_null(strstr(f->out, "221 2.0.0 Bye"));
	assert_int_equal(f->begun, 0);
	fake_free(f);
}

static void
test_command_line_defects(void **state)
{
	struct fake	*f = fake_new();
	char		 input[2048];

	memset(input, 0, sizeof(input));
	strlcpy(input, EHLO "NOOP\nNOOP\rX\r\nNOOP ", sizeof(input));
	memset(input + strlen(input), 'a', 600);
	strlcat(input, "\r\nNOOP\r\nQUIT\r\n", sizeof(input));
	run(f, input, 0);
	assert_non_null(strstr(f->out, "500 5.5.2 Error: bare <LF> received"));
	assert_non_null(strstr(f->out, "500 5.5.2 Error: bare <CR> received"));
	assert_non_null(strstr(f->out, "500 5.5.2 Error: line too long"));
	assert_int_equal(count_replies(f, "250 2.0.0 Ok"), 1);
	assert_non_null(strstr(f->out, "221 2.0.0"));
	fake_free(f);
}

static void
test_smuggling(void **state)
{
	static const char *variants[] = {
		"\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r.\n", "\r\n.\r",
		"\n.\r", "\r.\r\n",
	};
	char		 input[1024];
	struct fake	*f;
	size_t		 i;

	for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		f = fake_new();
		snprintf(input, sizeof(input), EHLO TXN "Subject: a\r\n\r\nbody"
		    "%sMAIL FROM:<evil@x.test>\r\nRCPT TO:<v@example.test>\r\n"
		    "DATA\r\nsmuggled\r\n.\r\nQUIT\r\n", variants[i]);
		run(f, input, 0);
		/* One DATA, read to the real CRLF.CRLF, refused. */
		assert_int_equal(f->commits, 0);
		assert_int_equal(f->begun, 1);
		assert_int_equal(f->aborts, 1);
		assert_int_equal(count_replies(f, "550 5.5.2"), 1);
		assert_int_equal(count_replies(f, "250 2.1.0"), 1);
		assert_int_equal(count_replies(f, "354"), 1);
		assert_non_null(strstr(f->out, "221 2.0.0"));
		fake_free(f);
	}
	/* NUL in DATA */
	f = fake_new();
	input[0] = '\0';
	memcpy(input, EHLO TXN "a\0b\r\n.\r\nQUIT\r\n",
	    sizeof(EHLO TXN "a\0b\r\n.\r\nQUIT\r\n"));
	f->in = input;
	{
		struct smtp_params p;
		struct smtp_server_io io;
		struct smtp_hooks h;

		/* run() uses strlen: build this one by hand. */
		memset(&p, 0, sizeof(p));
		p.hostname = "h";
		p.client_addr = "192.0.2.1";
		p.client_name = "unknown";
		p.max_recipients = 10;
		p.timeout = 10;
		f->inlen = sizeof(EHLO TXN "a\0b\r\n.\r\nQUIT\r\n") - 1;
		io.ctx = f;
		io.read = fake_read;
		io.write = fake_write;
		memset(&h, 0, sizeof(h));
		h.ctx = f;
		h.data_begin = h_begin;
		h.data_write = h_write;
		h.data_commit = h_commit;
		h.data_abort = h_abort;
		smtp_session(&p, &io, &h);
	}
	assert_int_equal(f->commits, 0);
	assert_int_equal(f->aborts, 1);
	assert_non_null(strstr(f->out, "550 5.6.0"));
	fake_free(f);
}

static void
test_size_limits(void **state)
{
	struct fake	*f = fake_new();
	char		 input[4096];
	size_t		 n;

	run(f, EHLO "MAIL FROM:<a@b.test> SIZE=1001\r\nMAIL FROM:<a@b.test> "
	    "SIZE=1000\r\nQUIT\r\n", 1000);
	assert_non_null(strstr(f->out, "250-SIZE 1000\r\n"));
	assert_non_null(strstr(f->out, "552 5.3.4"));
	assert_int_equal(count_replies(f, "250 2.1.0"), 1);
	fake_free(f);

	/* Oversize DATA: read to the end, 552, nothing committed. */
	f = fake_new();
	n = strlcpy(input, EHLO TXN, sizeof(input));
	memset(input + n, 'x', 1500);
	input[n + 1500] = '\0';
	strlcat(input, "\r\n.\r\nNOOP\r\nQUIT\r\n", sizeof(input));
	run(f, input, 1000);
	assert_non_null(strstr(f->out, "552 5.3.4 Message size exceeds"));
	assert_int_equal(f->commits, 0);
	assert_int_equal(f->aborts, 1);
	assert_non_null(strstr(f->out, "250 2.0.0 Ok\r\n221"));
	fake_free(f);
}

static void
test_received_loop(void **state)
{
	struct fake	*f;
	char		*input;
	size_t		 size = 200 * 40, i;
	int		 hops[] = { 100, 101 };

	for (i = 0; i < 2; i++) {
		int j;

		f = fake_new();
		input = xmalloc(size);
		strlcpy(input, EHLO TXN, size);
		for (j = 0; j < hops[i]; j++)
			strlcat(input, "Received: from x by y; date\r\n", size);
		strlcat(input, "\r\nReceived: in the body\r\n.\r\nQUIT\r\n",
		    size);
		run(f, input, 0);
		if (hops[i] == 100)
			assert_int_equal(f->commits, 1);
		else {
			assert_int_equal(f->commits, 0);
			assert_non_null(strstr(f->out, "554 5.4.6"));
		}
		free(input);
		fake_free(f);
	}
}

static void
test_storage_failures(void **state)
{
	struct fake	*f = fake_new();

	f->write_fail = ENOSPC;
	run(f, EHLO TXN "x\r\n.\r\nQUIT\r\n", 0);
	assert_non_null(strstr(f->out, "452 4.3.1 Insufficient system storage"));
	assert_int_equal(f->commits, 0);
	assert_int_equal(f->aborts, 1);
	fake_free(f);

	f = fake_new();
	f->write_fail = EIO;
	run(f, EHLO TXN "x\r\n.\r\nQUIT\r\n", 0);
	assert_non_null(strstr(f->out, "451 4.3.0"));
	fake_free(f);

	f = fake_new();
	f->commit_fail = 1;
	run(f, EHLO TXN "x\r\n.\r\nQUIT\r\n", 0);
	assert_non_null(strstr(f->out, "451 4.3.0"));
	assert_null(strstr(f->out, "queued as"));
	fake_free(f);
}

static void
test_disconnect_and_timeout(void **state)
{
	struct fake	*f = fake_new();

	assert_int_equal(run(f, EHLO TXN "partial message\r\n", 0), -1);
	assert_int_equal(f->commits, 0);
	assert_int_equal(f->aborts, 1);
	fake_free(f);

	f = fake_new();
	f->timeout_at_end = 1;
	assert_int_equal(run(f, EHLO "NOOP\r\n", 0), -1);
	assert_non_null(strstr(f->out, "421 4.4.2 backup.example.test Error: "
	    "timeout exceeded\r\n"));
	fake_free(f);
}

static void
test_error_limit(void **state)
{
	struct fake	*f = fake_new();
	char		 input[4096];
	int		 i;

	strlcpy(input, EHLO, sizeof(input));
	for (i = 0; i < 25; i++)
		strlcat(input, "BOGUS\r\n", sizeof(input));
	strlcat(input, "NOOP\r\n", sizeof(input));
	assert_int_equal(run(f, input, 0), -1);
	assert_int_equal(count_replies(f, "500 5.5.2"), 20);
	assert_non_null(strstr(f->out, "421 4.7.0 backup.example.test Error: "
	    "too many errors\r\n"));
	assert_null(strstr(f->out, "250 2.0.0 Ok"));
	fake_free(f);
}

static void
test_params(void **state)
{
	struct fake	*f = fake_new();

	run(f, EHLO "MAIL FROM:<a@b.test> BODY=8BITMIME SMTPUTF8 RET=HDRS "
	    "ENVID=QQ+2B1\r\n"
	    "RCPT TO:<r@example.test> NOTIFY=FAILURE,DELAY "
	    "ORCPT=rfc822;r+40example.test\r\nDATA\r\nx\r\n.\r\nQUIT\r\n", 0);
	assert_int_equal(f->commits, 1);
	assert_true(f->last.eightbit);
	assert_true(f->last.smtputf8);
	assert_int_equal(f->last.ret, RET_HDRS);
	assert_string_equal(f->last_envid, "QQ+2B1");
	assert_string_equal(f->last_rcpt_orcpt, "rfc822;r+40example.test");
	assert_int_equal(f->last_notify,
	    NOTIFY_FAILURE | NOTIFY_DELAY);
	assert_non_null(strstr(f->stored, "with UTF8SMTP id"));
	fake_free(f);

	f = fake_new();
	run(f, EHLO
	    "MAIL FROM:<a@b.test> BODY=BINARYMIME\r\n"
	    "MAIL FROM:<a@b.test> RET=ALL\r\n"
	    "MAIL FROM:<a@b.test> ENVID=a+zz\r\n"
	    "MAIL FROM:<a@b.test> SIZE=12x\r\n"
	    "MAIL FROM:<a@b.test> FOO=bar\r\n"
	    "MAIL FROM:<a@b.test> RET=FULL RET=FULL\r\n"
	    "MAIL FROM:<j\xc3\xb6@b.test>\r\n"
	    "MAIL FROM:a@b.test\r\n"
	    "MAIL TO:<a@b.test>\r\n"
	    "MAIL FROM:<a@b.test>\r\n"
	    "RCPT TO:<r@example.test> NOTIFY=NEVER,FAILURE\r\n"
	    "RCPT TO:<r@example.test> NOTIFY=SOMETIMES\r\n"
	    "RCPT TO:<r@example.test> ORCPT=rfc822\r\n"
	    "RCPT TO:<r@example.test> ORCPT=rfc822;a=b\r\n"
	    "RCPT TO:<r\xc3\xb6@example.test>\r\n"
	    "RCPT TO:<>\r\n"
	    "RCPT TO:r@example.test\r\n"
	    "RCPT TO:<r@example.test> NOTIFY=NEVER\r\n"
	    "QUIT\r\n", 0);
	/* RET twice is bad syntax (501), not an unknown parameter (555). */
	assert_int_equal(count_replies(f, "555 5.5.4"), 2);
	assert_int_equal(count_replies(f, "501 5.5.4"), 9);
	assert_int_equal(count_replies(f, "553 5.6.7"), 2);
	assert_int_equal(count_replies(f, "501 5.1.7"), 1);
	assert_int_equal(count_replies(f, "501 5.1.3"), 2);
	assert_int_equal(count_replies(f, "250 2.1.0"), 1);
	assert_int_equal(count_replies(f, "250 2.1.5"), 1);
	fake_free(f);

	/*
	 * A known parameter twice, or without the value it needs, is a
	 * syntax error (501); only an unknown one is 555 (RFC 5321
	 * 4.1.1.11).
	 */
	f = fake_new();
	run(f, EHLO
	    "MAIL FROM:<a@b.test> ENVID=x ENVID=y\r\n"
	    "MAIL FROM:<a@b.test> SIZE\r\n"
	    "MAIL FROM:<a@b.test> SIZE=1 SIZE=2\r\n"
	    "MAIL FROM:<a@b.test> SMTPUTF8=yes\r\n"
	    "MAIL FROM:<a@b.test> AUTH=<>\r\n"
	    "MAIL FROM:<a@b.test>\r\n"
	    "RCPT TO:<r@example.test> NOTIFY=NEVER NOTIFY=NEVER\r\n"
	    "RCPT TO:<r@example.test> ORCPT=rfc822;a ORCPT=rfc822;b\r\n"
	    "RCPT TO:<r@example.test> ORCPT\r\n"
	    "RCPT TO:<r@example.test> XFOO=1\r\n"
	    "QUIT\r\n", 0);
	assert_int_equal(count_replies(f, "501 5.5.4 Bad ENVID"), 1);
	assert_int_equal(count_replies(f, "501 5.5.4 Bad SIZE"), 2);
	assert_int_equal(count_replies(f, "501 5.5.4 Bad SMTPUTF8"), 1);
	assert_int_equal(count_replies(f, "501 5.5.4 Bad NOTIFY"), 1);
	assert_int_equal(count_replies(f, "501 5.5.4 Bad ORCPT"), 2);
	assert_int_equal(count_replies(f, "555 5.5.4"), 2);
	assert_int_equal(count_replies(f, "250 2.1.0"), 1);
	fake_free(f);

	/* ESMTP parameters need EHLO. */
	f = fake_new();
	run(f, "HELO c\r\nMAIL FROM:<a@b.test> BODY=8BITMIME\r\nQUIT\r\n", 0);
	assert_non_null(strstr(f->out, "555 5.5.4"));
	fake_free(f);
}

static void
test_recipients_and_etrn(void **state)
{
	struct fake	*f = fake_new();

	f->reject_rcpt = 1;
	run(f, EHLO "ETRN example.test\r\nETRN @example.test\r\nETRN #q\r\n"
	    "ETRN bad..domain\r\nMAIL FROM:<a@b.test>\r\nETRN example.test\r\n"
	    "RCPT TO:<bad@example.test>\r\nRCPT TO:<a@example.test>\r\n"
	    "RCPT TO:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
	    "RCPT TO:<c@example.test>\r\nRCPT TO:<d@example.test>\r\n"
	    "DATA\r\nx\r\n.\r\nQUIT\r\n", 0);
	assert_int_equal(count_replies(f, "250 2.0.0 Queuing for node "
	    "example.test"), 2);
	assert_non_null(strstr(f->out, "458 4.1.0"));
	assert_non_null(strstr(f->out, "501 5.1.2"));
	assert_non_null(strstr(f->out, "503 5.5.1 Error: MAIL transaction"));
	assert_non_null(strstr(f->out, "550 5.7.1 <bad@example.test>"));
	/* a, a again (deduplicated), b, c: 4 OKs; d exceeds 3. */
	assert_int_equal(count_replies(f, "250 2.1.5"), 4);
	assert_non_null(strstr(f->out, "452 4.5.3"));
	assert_int_equal(f->commits, 1);
	assert_int_equal(f->last.nrcpts, 3);
	fake_free(f);
}

/*
 * RFC 1869 extensions lengthen MAIL and RCPT lines: a 500-octet ORCPT
 * after a long address (RFC 3461) and a MAIL with every parameter fit;
 * other commands keep the 512-octet limit.
 */
static void
test_extended_line_lengths(void **state)
{
	struct fake	*f = fake_new();
	char		 input[8192], orcpt[501], envid[101], local[65];
	char		 noop[601];

	memset(orcpt, 'o', 500);
	memcpy(orcpt, "rfc822;", 7);
	orcpt[500] = '\0';
	memset(envid, 'e', 100);
	envid[100] = '\0';
	memset(local, 'l', 64);
	local[64] = '\0';
	memset(noop, 'n', 600);
	noop[600] = '\0';
	snprintf(input, sizeof(input), EHLO
	    "MAIL FROM:<%s@sender.example.test> SIZE=100000 BODY=8BITMIME "
	    "RET=HDRS ENVID=%s SMTPUTF8\r\n"
	    "RCPT TO:<%s@example.test> NOTIFY=SUCCESS,FAILURE,DELAY "
	    "ORCPT=%s\r\n"
	    "NOOP %s\r\n"
	    "DATA\r\nx\r\n.\r\nQUIT\r\n", local, envid, local, orcpt, noop);
	run(f, input, 0);
	assert_int_equal(count_replies(f, "250 2.1.0"), 1);
	assert_int_equal(count_replies(f, "250 2.1.5"), 1);
	assert_int_equal(count_replies(f, "500 5.5.2 Error: line too long"),
	    1);
	assert_int_equal(f->commits, 1);
	assert_string_equal(f->last_rcpt_orcpt, orcpt);
	assert_string_equal(f->last_envid, envid);
	fake_free(f);

	/* Beyond the extended limit: refused like any overlong line. */
	f = fake_new();
	snprintf(input, sizeof(input), EHLO "MAIL FROM:<a@b.test>\r\n"
	    "RCPT TO:<r@example.test> ORCPT=%s%s%s\r\nQUIT\r\n", orcpt, orcpt,
	    orcpt);
	run(f, input, 0);
	assert_int_equal(count_replies(f, "500 5.5.2 Error: line too long"),
	    1);
	fake_free(f);

	/* RFC 1870 size-value is 1*20DIGIT: too big, not bad syntax. */
	f = fake_new();
	run(f, EHLO "MAIL FROM:<a@b.test> SIZE=99999999999999999999\r\n"
	    "MAIL FROM:<a@b.test> SIZE=999999999999999999999\r\nQUIT\r\n",
	    1000);
	assert_int_equal(count_replies(f, "552 5.3.4"), 1);
	assert_int_equal(count_replies(f, "501 5.5.4 Bad SIZE"), 1);
	fake_free(f);
}

/*
 * A client that sends more recipients than max_recipients gets 452 for
 * the excess and goes on with DATA (RFC 5321 4.5.3.1.10): those 452s
 * are not errors that end the session.
 */
static void
test_recipient_overshoot(void **state)
{
	struct fake	*f = fake_new();
	char		 input[8192], line[64];
	int		 i;

	strlcpy(input, EHLO "MAIL FROM:<a@b.test>\r\n", sizeof(input));
	for (i = 0; i < 40; i++) {
		snprintf(line, sizeof(line), "RCPT TO:<r%d@example.test>\r\n",
		    i);
		strlcat(input, line, sizeof(input));
	}
	strlcat(input, "DATA\r\nx\r\n.\r\nQUIT\r\n", sizeof(input));
	assert_int_equal(run(f, input, 0), 0);
	assert_int_equal(count_replies(f, "452 4.5.3"), 37);
	assert_null(strstr(f->out, "421 "));
	assert_int_equal(f->commits, 1);
	assert_int_equal(f->last.nrcpts, 3);
	fake_free(f);
}

/* The "TLS" stream: the same fake, fed from a second script. */
static const char *after_tls;
static int	 handshake_ok;

static int
h_starttls(void *ctx, struct smtp_server_io *io, char *desc, size_t size)
{
	struct fake	*f = io->ctx;

	if (!handshake_ok)
		return (-1);
	/* Everything the client sent in clear is gone from our side. */
	f->in = after_tls;
	f->inlen = strlen(after_tls);
	f->inpos = 0;
	strlcpy(desc, "TLSv1.3:TEST_CIPHER:256", size);
	return (0);
}

static int
run_tls(struct fake *f, const char *clear, const char *tls, int required)
{
	struct smtp_params	 p;
	struct smtp_server_io		 io;
	struct smtp_hooks	 h;

	f->in = clear;
	f->inlen = strlen(clear);
	f->inpos = 0;
	after_tls = tls;
	memset(&p, 0, sizeof(p));
	p.hostname = "backup.example.test";
	p.client_addr = "192.0.2.1";
	p.client_name = "unknown";
	p.max_recipients = 10;
	p.timeout = 300;
	p.tls_required = required;
	io.ctx = f;
	io.read = fake_read;
	io.write = fake_write;
	memset(&h, 0, sizeof(h));
	h.ctx = f;
	h.data_begin = h_begin;
	h.data_write = h_write;
	h.data_commit = h_commit;
	h.data_abort = h_abort;
	h.starttls = h_starttls;
	return (smtp_session(&p, &io, &h));
}

static void
test_starttls(void **state)
{
	struct fake	*f = fake_new();
	const char	*tlspart;

	handshake_ok = 1;
	/* Plaintext pipelined after STARTTLS must be discarded. */
	run_tls(f, EHLO "MAIL FROM:<early@b.test>\r\nSTARTTLS\r\n", "", 1);
	assert_non_null(strstr(f->out, "250-STARTTLS\r\n"));
	assert_non_null(strstr(f->out, "530 5.7.0"));
	fake_free(f);

	f = fake_new();
	run_tls(f, EHLO "STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n"
	    "RCPT TO:<r@example.test>\r\n",
	    "MAIL FROM:<a@b.test>\r\n" EHLO "STARTTLS\r\n" TXN
	    "x\r\n.\r\nQUIT\r\n", 1);
	assert_non_null(strstr(f->out, "220 2.0.0 Ready to start TLS\r\n"));
	tlspart = strstr(f->out, "220 2.0.0 Ready");
	/* After TLS: EHLO again first, no STARTTLS offered any more. */
	assert_non_null(strstr(tlspart, "503 5.5.1 Error: send HELO/EHLO"));
	assert_null(strstr(tlspart, "250-STARTTLS"));
	assert_non_null(strstr(tlspart, "554 5.5.1 Error: TLS already active"));
	/* The pipelined MAIL/RCPT in clear got no reply at all. */
	assert_int_equal(count_replies(f, "250 2.1.0"), 1);
	assert_int_equal(count_replies(f, "250 2.1.5"), 1);
	assert_int_equal(f->commits, 1);
	assert_non_null(strstr(f->stored, "with ESMTPS (TLSv1.3:TEST_CIPHER:256)"
	    " id TESTID"));
	fake_free(f);

	/* A failed handshake ends the session. */
	f = fake_new();
	handshake_ok = 0;
	assert_int_equal(run_tls(f, EHLO "STARTTLS\r\nNOOP\r\n", "", 0), -1);
	assert_null(strstr(f->out, "250 2.0.0 Ok"));
	fake_free(f);

	/* Without the hook: not offered, not implemented. */
	f = fake_new();
	run(f, EHLO "STARTTLS\r\nQUIT\r\n", 0);
	assert_null(strstr(f->out, "STARTTLS"));
	assert_non_null(strstr(f->out, "502 5.5.1"));
	fake_free(f);
}

static double
seconds_since(const struct timespec *t0)
{
	struct timespec	 t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return ((double)(t.tv_sec - t0->tv_sec) +
	    (double)(t.tv_nsec - t0->tv_nsec) / 1e9);
}

/*
 * timeout 1s: "NOOP" a byte every 0.1s arrives in time; "EHLO ..." the
 * same way would take 1.8s and is cut off at the line's deadline, though
 * no read waited anywhere near a second.
 */
static void
test_line_deadline(void **state)
{
	struct fake	*f = fake_new();
	struct timespec	 t0;
	double		 took;

	f->chunk = 1;
	f->delay_ms = 100;
	f->timeout = 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(run(f, "NOOP\r\nEHLO client.test\r\nQUIT\r\n", 0),
	    -1);
	took = seconds_since(&t0);
	assert_non_null(strstr(f->out, "250 2.0.0 Ok\r\n"));
	assert_null(strstr(f->out, "250-backup.example.test"));
	assert_non_null(strstr(f->out, "421 4.4.2 backup.example.test Error: "
	    "timeout exceeded\r\n"));
	assert_true(took > 1.4 && took < 4);
	fake_free(f);
}

/*
 * min-data-rate 1000, timeout 1s: a message at 100 bytes/s is cut off
 * a little over a second after DATA (the grace), aborted, never
 * committed; commands at that pace were fine.
 */
static void
test_min_data_rate(void **state)
{
	struct fake	*f = fake_new();
	char		 in[2048];
	size_t		 i;

	f->chunk = 10;
	f->delay_ms = 100;
	f->timeout = 1;
	f->min_data_rate = 1000;
	strlcpy(in, EHLO TXN "Subject: slow\r\n\r\n", sizeof(in));
	for (i = 0; i < 20; i++)
		strlcat(in, "0123456789012345678\r\n", sizeof(in));
	strlcat(in, ".\r\nQUIT\r\n", sizeof(in));
	assert_int_equal(run(f, in, 0), -1);
	assert_non_null(strstr(f->out, "354 "));
	assert_non_null(strstr(f->out, "421 4.4.2 backup.example.test Error: "
	    "timeout exceeded (data too slow)\r\n"));
	assert_int_equal(f->begun, 1);
	assert_int_equal(f->aborts, 1);
	assert_int_equal(f->commits, 0);
	assert_true(f->inpos < f->inlen);
	fake_free(f);
}

static uint64_t
key_of(const char *text)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr),
		    1);
		sin6->sin6_family = AF_INET6;
	}
	return (smtp_client_key((struct sockaddr *)&ss));
}

/* IPv4 by address, IPv6 by /64, the two never mixed. */
static void
test_client_key(void **state)
{
	struct sockaddr		 sa;
	const char *const	 all[] = { "192.0.2.1", "192.0.2.2", "0.0.0.0",
	    "255.255.255.255", "::1", "2001:db8::1", "2001:db8:0:1::1",
	    "fe80::1", "ff00::c000:201" };
	size_t			 i, j;

	assert_true(key_of("192.0.2.1") == key_of("::ffff:192.0.2.1"));
	assert_true(key_of("2001:db8:1:2::1") ==
	    key_of("2001:db8:1:2:ffff:ffff:ffff:ffff"));
	assert_true(key_of("::1") == key_of("::"));
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		assert_true(key_of(all[i]) != SMTP_CLIENT_NONE);
		/* Multicast (never a client) may meet IPv4: not compared. */
		for (j = 0; j < i && strncmp(all[i], "ff", 2) != 0; j++)
			assert_true(key_of(all[i]) != key_of(all[j]));
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	assert_true(smtp_client_key(&sa) == SMTP_CLIENT_NONE);
	assert_true(smtp_client_key(NULL) == SMTP_CLIENT_NONE);
}

static int
quiet_logs(void **state)
{
	log_init("test_smtp_server", 1);
	return (0);
}

/*
 * Submission: AUTH offered only under TLS; pipelined PLAIN with an
 * initial response, then a message whose Received says ESMTPSA and names
 * the account; LOGIN through both challenges; before TLS 538 and 530.
 */
static void
test_submission_auth(void **state)
{
	struct fake	*f = fake_new();

	/* AGFAYi50ZXN0AHB3: "\0a@b.test\0pw" */
	run_submission(f, "EHLO c.test\r\nAUTH PLAIN AGFAYi50ZXN0AHB3\r\n"
	    "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n"
	    "Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n", 1);
	assert_non_null(strstr(f->out, "250-AUTH PLAIN LOGIN\r\n"));
	assert_null(strstr(f->out, "STARTTLS"));
	assert_non_null(strstr(f->out, "235 2.7.0 Authentication successful"));
	assert_int_equal(f->commits, 1);
	assert_non_null(strstr(f->stored, "\t(Authenticated sender: "
	    "a@b.test)\r\n\tby backup.example.test (mxfb) with ESMTPSA "
	    "(TLSv1.3"));
	fake_free(f);

	f = fake_new();
	/* YUBiLnRlc3Q= "a@b.test", cHc= "pw"; then a second AUTH: 503 */
	run_submission(f, "EHLO c.test\r\nAUTH LOGIN\r\nYUBiLnRlc3Q=\r\n"
	    "cHc=\r\nAUTH LOGIN\r\nQUIT\r\n", 1);
	assert_non_null(strstr(f->out, "334 VXNlcm5hbWU6\r\n334 "
	    "UGFzc3dvcmQ6\r\n235 2.7.0"));
	assert_non_null(strstr(f->out, "503 5.5.1 Error: already "
	    "authenticated"));
	assert_string_equal(f->etrn_domain, "LOGIN");
	fake_free(f);

	f = fake_new();
	run_submission(f, "EHLO c.test\r\nAUTH PLAIN\r\n*\r\n"
	    "AUTH PLAIN AGFAYi50ZXN0AHB4\r\nMAIL FROM:<a@b.test>\r\n"
	    "AUTH LOGIN =\r\ncHc=\r\nQUIT\r\n", 1);
	assert_non_null(strstr(f->out, "334 \r\n501 5.0.0"));
	assert_non_null(strstr(f->out, "535 5.7.8"));
	assert_non_null(strstr(f->out, "530 5.7.0 Authentication required"));
	/* LOGIN's "=": an empty user name, asked for the password anyway */
	assert_non_null(strstr(f->out, "334 UGFzc3dvcmQ6\r\n535 5.7.8"));
	fake_free(f);

	f = fake_new();
	run_submission(f, "EHLO c.test\r\nAUTH PLAIN AGFAYi50ZXN0AHB3\r\n"
	    "MAIL FROM:<a@b.test>\r\nQUIT\r\n", 0);
	assert_null(strstr(f->out, "AUTH"));
	assert_non_null(strstr(f->out, "538 5.7.11"));
	assert_non_null(strstr(f->out, "530 5.7.0 Must issue a STARTTLS"));
	fake_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_submission_auth),
		cmocka_unit_test(test_command_parse),
		cmocka_unit_test(test_line_check),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_basic_transaction),
		cmocka_unit_test(test_helo_received_smtp),
		cmocka_unit_test(test_pipelining_batches),
		cmocka_unit_test(test_sequence_errors),
		cmocka_unit_test(test_command_line_defects),
		cmocka_unit_test(test_smuggling),
		cmocka_unit_test(test_size_limits),
		cmocka_unit_test(test_received_loop),
		cmocka_unit_test(test_storage_failures),
		cmocka_unit_test(test_disconnect_and_timeout),
		cmocka_unit_test(test_error_limit),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_recipients_and_etrn),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_extended_line_lengths),
		cmocka_unit_test(test_recipient_overshoot),
		cmocka_unit_test(test_line_deadline),
		cmocka_unit_test(test_min_data_rate),
		cmocka_unit_test(test_client_key),
	};

	return (cmocka_run_group_tests(tests, quiet_logs, NULL));
}
