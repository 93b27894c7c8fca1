/*
 * test_smtp_client.c - unit tests of core/smtp_client.c and core/backoff.c:
 * the reply parser (single and multi-line, enhanced codes, malformed
 * lines), EHLO keyword parsing, the back-off schedule, and whole
 * transactions against a scripted server in a child process on loopback
 * (pipelined MAIL/RCPT/DATA with DSN parameters and dot-stuffing; HELO
 * fallback without PIPELINING; SIZE and SMTPUTF8 refusals; a server that
 * hangs up after DATA; refused MAIL, RCPT, DATA and RSET both lock-step
 * and pipelined).  It includes core/smtp_server.h too: the server's and
 * the client's types are named apart, so one file can use both.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/backoff.h"
#include "core/mail/envelope.h"
#include "core/smtp_client.h"
#include "core/smtp_server.h"	/* both in one file: no type clash */

static int
add(struct smtp_reply *r, const char *line)
{
	return (smtp_reply_add_line(r, line, strlen(line)));
}

static void
test_reply_single(void **state)
{
	struct smtp_reply	 r;
	char			 s[256];

	smtp_reply_init(&r);
	assert_int_equal(add(&r, "250 2.1.0 Sender OK"), 1);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.dsn, "2.1.0");
	assert_string_equal(r.text, "2.1.0 Sender OK");
	smtp_reply_string(&r, s, sizeof(s));
	assert_string_equal(s, "250 2.1.0 Sender OK");

	smtp_reply_init(&r);
	assert_int_equal(add(&r, "354"), 1);
	assert_int_equal(r.code, 354);
	assert_string_equal(r.dsn, "");

	/* A code class that does not match the enhanced code: no dsn. */
	smtp_reply_init(&r);
	assert_int_equal(add(&r, "550 4.1.1 odd"), 1);
	assert_string_equal(r.dsn, "");
	smtp_reply_init(&r);
	assert_int_equal(add(&r, "451 4.3.0 try later"), 1);
	assert_string_equal(r.dsn, "4.3.0");
	smtp_reply_init(&r);
	assert_int_equal(add(&r, "550 5.1.10x no"), 1);
	assert_string_equal(r.dsn, "");
}

static void
test_reply_multiline(void **state)
{
	struct smtp_reply	 r;
	char			 s[256];

	smtp_reply_init(&r);
	assert_int_equal(add(&r, "250-mx.example.test hello"), 0);
	assert_int_equal(add(&r, "250-PIPELINING"), 0);
	assert_int_equal(add(&r, "250 SIZE 1000"), 1);
	assert_int_equal(r.nlines, 3);
	assert_string_equal(r.text, "mx.example.test hello\nPIPELINING\n"
	    "SIZE 1000");
	smtp_reply_string(&r, s, sizeof(s));
	assert_string_equal(s, "250 mx.example.test hello PIPELINING SIZE 1000");

	/* A new line after completion starts a new reply. */
	assert_int_equal(add(&r, "221 bye"), 1);
	assert_int_equal(r.code, 221);
	assert_int_equal(r.nlines, 1);
}

static void
test_reply_malformed(void **state)
{
	struct smtp_reply	 r;

	smtp_reply_init(&r);
	assert_int_equal(add(&r, ""), -1);
	assert_int_equal(add(&r, "25"), -1);
	assert_int_equal(add(&r, "abc def"), -1);
	assert_int_equal(add(&r, "150 no"), -1);
	assert_int_equal(add(&r, "650 no"), -1);
	assert_int_equal(add(&r, "250xno"), -1);
	assert_int_equal(add(&r, "2a0 no"), -1);
	assert_int_equal(add(&r, "250-first"), 0);
	assert_int_equal(add(&r, "251 other code"), -1);
}

static void
test_reply_long(void **state)
{
	struct smtp_reply	 r;
	char			 line[3000];
	int			 i;

	memset(line, 'x', sizeof(line));
	memcpy(line, "250-", 4);
	smtp_reply_init(&r);
	for (i = 0; i < 5; i++)
		assert_int_equal(smtp_reply_add_line(&r, line, sizeof(line)),
		    0);
	assert_true(r.len < sizeof(r.text));
	assert_int_equal(strlen(r.text), r.len);
	assert_int_equal(add(&r, "250 end"), 1);
}

static void
test_ehlo_parse(void **state)
{
	struct smtp_reply	 r;
	struct smtp_ext		 e;

	smtp_reply_init(&r);
	add(&r, "250-mx.example.test");
	add(&r, "250-pipelining");
	add(&r, "250-SIZE 10240000");
	add(&r, "250-8BITMIME");
	add(&r, "250-SMTPUTF8");
	add(&r, "250-ENHANCEDSTATUSCODES");
	add(&r, "250-STARTTLS");
	add(&r, "250 DSN");
	smtp_ehlo_parse(&r, &e);
	assert_true(e.esmtp && e.pipelining && e.size && e.eightbitmime &&
	    e.smtputf8 && e.enhancedstatuscodes && e.starttls && e.dsn);
	assert_int_equal(e.maxsize, 10240000);
	assert_string_equal(e.keywords, "pipelining SIZE=10240000 8BITMIME "
	    "SMTPUTF8 ENHANCEDSTATUSCODES STARTTLS DSN");

	smtp_reply_init(&r);
	add(&r, "250 only.a.greeting");
	smtp_ehlo_parse(&r, &e);
	assert_true(e.esmtp);
	assert_false(e.pipelining || e.size || e.dsn || e.smtputf8);
	assert_string_equal(e.keywords, "");

	smtp_reply_init(&r);
	add(&r, "250-x");
	add(&r, "250 SIZE");
	smtp_ehlo_parse(&r, &e);
	assert_true(e.size);
	assert_int_equal(e.maxsize, 0);
}

static void
test_backoff(void **state)
{
	assert_int_equal(backoff_delay(1, 300, 3600), 300);
	assert_int_equal(backoff_delay(2, 300, 3600), 600);
	assert_int_equal(backoff_delay(3, 300, 3600), 1200);
	assert_int_equal(backoff_delay(4, 300, 3600), 2400);
	assert_int_equal(backoff_delay(5, 300, 3600), 3600);
	assert_int_equal(backoff_delay(6, 300, 3600), 3600);
	assert_int_equal(backoff_delay(1000000, 300, 3600), 3600);
	assert_int_equal(backoff_delay(0, 300, 3600), 300);
	assert_int_equal(backoff_delay(-5, 300, 3600), 300);
	/* max below min, zero min, huge max: still sane */
	assert_int_equal(backoff_delay(3, 600, 60), 600);
	assert_int_equal(backoff_delay(1, 0, 60), 1);
	assert_int_equal(backoff_delay(70, 1, INT64_MAX), INT64_MAX);
	assert_true(backoff_delay(62, 1, INT64_MAX) > 0);
}

/*
 * A scripted SMTP server in a child: for every line read it answers with
 * the next reply of the script whose trigger (a prefix of the command)
 * matches; lines between DATA's 354 and the dot are collected.  The child
 * writes everything it received to a file the parent then checks.
 */
struct step {
	const char	*trigger;	/* prefix of the client line; NULL: banner */
	const char	*reply;		/* NULL: hang up */
};

static int
server_start(const struct step *script, const char *logpath,
    struct sockaddr_in *sin, pid_t *pidp)
{
	socklen_t	 len = sizeof(*sin);
	int		 lfd;
	pid_t		 pid;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd == -1)
		return (-1);
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(0x7f000001);
	if (bind(lfd, (struct sockaddr *)sin, sizeof(*sin)) == -1 ||
	    listen(lfd, 1) == -1 ||
	    getsockname(lfd, (struct sockaddr *)sin, &len) == -1)
		return (-1);
	if ((pid = fork()) == -1)
		return (-1);
	if (pid == 0) {
		FILE	*in, *out, *log;
		char	 line[4096];
		int	 fd, indata = 0;
		size_t	 i = 0;

		alarm(10);
		if ((fd = accept(lfd, NULL, NULL)) == -1)
			_exit(1);
		in = fdopen(fd, "r");
		out = fdopen(dup(fd), "w");
		log = fopen(logpath, "w");
		if (in == NULL || out == NULL || log == NULL)
			_exit(1);
		setvbuf(out, NULL, _IONBF, 0);
		if (script[0].trigger == NULL) {
			fprintf(out, "%s\r\n", script[0].reply);
			i = 1;
		}
		while (fgets(line, sizeof(line), in) != NULL) {
			fputs(line, log);
			fflush(log);
			if (indata) {
				if (strcmp(line, ".\r\n") != 0)
					continue;
				indata = 0;
			}
			if (script[i].trigger == NULL)
				_exit(0);
			if (strncmp(line, script[i].trigger,
			    strlen(script[i].trigger)) != 0) {
				fprintf(log, "UNEXPECTED (wanted %s)\n",
				    script[i].trigger);
				_exit(2);
			}
			if (script[i].reply == NULL)
				_exit(0);
			fprintf(out, "%s\r\n", script[i].reply);
			if (strncmp(script[i].reply, "354", 3) == 0)
				indata = 1;
			i++;
		}
		_exit(0);
	}
	close(lfd);
	*pidp = pid;
	return (0);
}

static char *
slurp(const char *path)
{
	static char	 buf[65536];
	FILE		*f;
	size_t		 n;

	assert_non_null(f = fopen(path, "r"));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return (buf);
}

static const struct smtp_timeouts tmo = { 2, 2, 2, 2 };

static struct smtp_conn *
connect_to(const struct sockaddr_in *sin)
{
	struct smtp_conn	*c;
	char			 why[512];

	assert_int_equal(smtp_connect("mx.test", (const struct sockaddr *)sin,
	    sizeof(*sin), &tmo, &c, why, sizeof(why)), 0);
	return (c);
}

static void
test_pipelined_transaction(void **state)
{
	static const struct step script[] = {
		{ NULL, "220 mx.test ESMTP" },
		{ "EHLO", "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 100000"
		    "\r\n250-8BITMIME\r\n250 DSN" },
		{ "MAIL FROM:<s@x.test> SIZE=", "250 2.1.0 ok" },
		{ "RCPT TO:<a@example.test>", "250 2.1.5 ok" },
		{ "RCPT TO:<b@example.test>", "451 4.3.0 later" },
		{ "RCPT TO:<c@example.test>", "550 5.1.1 unknown" },
		{ "DATA", "354 go" },
		{ ".", "250 2.0.0 queued" },
		{ "RSET", "250 2.0.0 ok" },
		{ "MAIL FROM:<>", "250 ok" },
		{ "RCPT TO:<a@example.test>", "250 ok" },
		{ "DATA", "354 go" },
		{ ".", "554 5.6.0 no thanks" },
		{ "QUIT", "221 bye" },
		{ NULL, NULL }
	};
	static const unsigned char body[] = "Subject: t\r\n\r\n.dot line\r\n"
	    "..two\r\nend without crlf";
	struct smtp_client_rcpt	 rc[3] = {
		{ "a@example.test", "rfc822;a@example.test",
		    NOTIFY_SUCCESS | NOTIFY_FAILURE },
		{ "b@example.test", NULL, NOTIFY_NEVER },
		{ "c@example.test", NULL, 0 },
	};
	struct smtp_message	 m = { "s@x.test", "ENV1", RET_HDRS, 0, 1,
	    body, sizeof(body) - 1, rc, 3 };
	struct smtp_result	 res[3];
	struct sockaddr_in	 sin;
	struct smtp_conn	*c;
	pid_t			 pid;
	int			 status;
	char			*log;
	char			 path[] = "/tmp/mxfb-test-smtp-XXXXXX";

	assert_int_not_equal(mkstemp(path), -1);
	assert_int_equal(server_start(script, path, &sin, &pid), 0);
	c = connect_to(&sin);
	assert_int_equal(smtp_greet(c, "backup.test", NULL), 0);
	assert_true(smtp_conn_ext(c)->pipelining);
	assert_int_equal(smtp_deliver(c, &m, res), 0);
	assert_int_equal(res[0].code, 250);
	assert_string_equal(res[0].dsn, "2.0.0");
	assert_string_equal(res[0].stage, "end of DATA");
	assert_int_equal(res[1].code, 451);
	assert_string_equal(res[1].reply, "451 4.3.0 later");
	assert_string_equal(res[1].stage, "RCPT TO");
	assert_int_equal(res[2].code, 550);
	assert_string_equal(res[2].dsn, "5.1.1");

	m.sender = "";
	m.nrcpts = 1;
	m.envid = NULL;
	m.ret = 0;
	assert_int_equal(smtp_deliver(c, &m, res), 0);
	assert_int_equal(res[0].code, 554);
	assert_string_equal(res[0].dsn, "5.6.0");
	smtp_quit(c);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	log = slurp(path);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_non_null(strstr(log, "MAIL FROM:<s@x.test> SIZE=48 "
	    "BODY=8BITMIME RET=HDRS ENVID=ENV1\r\n"));
	assert_non_null(strstr(log, "RCPT TO:<a@example.test> NOTIFY=SUCCESS,"
	    "FAILURE ORCPT=rfc822;a@example.test\r\n"));
	assert_non_null(strstr(log, "RCPT TO:<b@example.test> NOTIFY=NEVER\r\n"));
	assert_non_null(strstr(log, "\r\n..dot line\r\n...two\r\n"
	    "end without crlf\r\n.\r\n"));
	assert_non_null(strstr(log, "MAIL FROM:<> SIZE=48 BODY=8BITMIME\r\n"));
	unlink(path);
}

static void
test_helo_fallback_no_extensions(void **state)
{
	static const struct step script[] = {
		{ NULL, "220 old.test SMTP" },
		{ "EHLO", "502 5.5.1 what?" },
		{ "HELO backup.test", "250 old.test" },
		{ "MAIL FROM:<s@x.test>\r\n", "250 ok" },
		{ "RCPT TO:<a@example.test>\r\n", "550 no" },
		{ "RSET", "250 ok" },
		{ "MAIL FROM:<s@x.test>\r\n", "250 ok" },
		{ "RCPT TO:<a@example.test>\r\n", "250 ok" },
		{ "DATA", "354 go" },
		{ ".", NULL },		/* hangs up after the dot */
		{ NULL, NULL }
	};
	static const unsigned char body[] = "Subject: t\r\n\r\nhi\r\n";
	struct smtp_client_rcpt	 rc[1] = { { "a@example.test",
	    "rfc822;a@example.test", NOTIFY_FAILURE } };
	struct smtp_message	 m = { "s@x.test", "ENV1", RET_FULL, 0, 1,
	    body, sizeof(body) - 1, rc, 1 };
	struct smtp_result	 res[1];
	struct sockaddr_in	 sin;
	struct smtp_conn	*c;
	pid_t			 pid;
	int			 status;
	char			 path[] = "/tmp/mxfb-test-smtp-XXXXXX";

	assert_int_not_equal(mkstemp(path), -1);
	assert_int_equal(server_start(script, path, &sin, &pid), 0);
	c = connect_to(&sin);
	assert_int_equal(smtp_greet(c, "backup.test", NULL), 0);
	assert_false(smtp_conn_ext(c)->esmtp);
	assert_int_equal(smtp_deliver(c, &m, res), 0);
	assert_int_equal(res[0].code, 550);
	assert_string_equal(res[0].dsn, "5.0.0");
	/* Second message: lost after the dot, so no outcome. */
	assert_int_equal(smtp_deliver(c, &m, res), -1);
	assert_int_equal(res[0].code, 0);
	assert_non_null(strstr(smtp_conn_error(c), "lost connection with "
	    "mx.test[127.0.0.1]:"));
	assert_non_null(strstr(smtp_conn_error(c), "while sending end of data"));
	/* SMTPUTF8 needed but not offered: refused without sending. */
	m.smtputf8 = 1;
	assert_int_equal(smtp_deliver(c, &m, res), -1);
	smtp_close(c);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_null(strstr(slurp(path), "UNEXPECTED"));
	unlink(path);
}

static void
test_size_and_utf8_refused_locally(void **state)
{
	static const struct step script[] = {
		{ NULL, "220 mx.test ESMTP" },
		{ "EHLO", "250-mx.test\r\n250 SIZE 10" },
		{ "QUIT", "221 bye" },
		{ NULL, NULL }
	};
	static const unsigned char body[] = "Subject: big\r\n\r\nmore than ten\r\n";
	struct smtp_client_rcpt	 rc[2] = { { "a@example.test", NULL, 0 },
	    { "b@example.test", NULL, 0 } };
	struct smtp_message	 m = { "s@x.test", NULL, 0, 0, 0,
	    body, sizeof(body) - 1, rc, 2 };
	struct smtp_result	 res[2];
	struct sockaddr_in	 sin;
	struct smtp_conn	*c;
	pid_t			 pid;
	int			 status;
	char			 path[] = "/tmp/mxfb-test-smtp-XXXXXX";

	assert_int_not_equal(mkstemp(path), -1);
	assert_int_equal(server_start(script, path, &sin, &pid), 0);
	c = connect_to(&sin);
	assert_int_equal(smtp_greet(c, "backup.test", NULL), 0);
	assert_int_equal(smtp_deliver(c, &m, res), 0);
	assert_int_equal(res[0].code, 552);
	assert_string_equal(res[1].dsn, "5.3.4");
	assert_false(res[1].from_peer);
	m.len = 5;
	m.smtputf8 = 1;
	assert_int_equal(smtp_deliver(c, &m, res), 0);
	assert_string_equal(res[0].dsn, "5.6.7");
	smtp_quit(c);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_null(strstr(slurp(path), "MAIL"));
	unlink(path);
}

static void
test_421_ends_the_connection(void **state)
{
	static const struct step script[] = {
		{ NULL, "220 mx.test ESMTP" },
		{ "EHLO", "250 mx.test" },
		{ "MAIL FROM:<s@x.test>", "250 ok" },
		{ "RCPT TO:<a@example.test>", "421 4.3.2 shutting down" },
		{ NULL, NULL }
	};
	static const unsigned char body[] = "Subject: t\r\n\r\nhi\r\n";
	struct smtp_client_rcpt	 rc[1] = { { "a@example.test", NULL, 0 } };
	struct smtp_message	 m = { "s@x.test", NULL, 0, 0, 0,
	    body, sizeof(body) - 1, rc, 1 };
	struct smtp_result	 res[1];
	struct sockaddr_in	 sin;
	struct smtp_conn	*c;
	pid_t			 pid;
	char			 path[] = "/tmp/mxfb-test-smtp-XXXXXX";

	assert_int_not_equal(mkstemp(path), -1);
	assert_int_equal(server_start(script, path, &sin, &pid), 0);
	c = connect_to(&sin);
	assert_int_equal(smtp_greet(c, "backup.test", NULL), 0);
	assert_int_equal(smtp_deliver(c, &m, res), -1);
	assert_int_equal(res[0].code, 421);
	assert_string_equal(res[0].dsn, "4.3.2");
	assert_non_null(strstr(smtp_conn_error(c), "421 4.3.2 shutting down"));
	smtp_close(c);
	waitpid(pid, NULL, 0);
	unlink(path);
}

/*
 * Lock-step (no PIPELINING): a refused MAIL sends no RCPT, refused
 * recipients send no DATA, a refused DATA answers the accepted
 * recipients only, a refused RSET ends the connection.
 */
static void
test_lockstep_refusals(void **state)
{
	static const struct step script[] = {
		{ NULL, "220 old.test ESMTP" },
		{ "EHLO", "250 old.test" },
		{ "MAIL FROM:<s@x.test>\r\n", "550 5.7.1 sender refused" },
		{ "RSET", "250 ok" },
		{ "MAIL FROM:<s@x.test>\r\n", "250 ok" },
		{ "RCPT TO:<a@example.test>\r\n", "550 5.1.1 no" },
		{ "RCPT TO:<b@example.test>\r\n", "451 4.3.0 later" },
		{ "RSET", "250 ok" },
		{ "MAIL FROM:<s@x.test>\r\n", "250 ok" },
		{ "RCPT TO:<a@example.test>\r\n", "250 ok" },
		{ "RCPT TO:<b@example.test>\r\n", "550 5.1.1 no" },
		{ "DATA", "554 5.3.0 no data today" },
		{ "RSET", "550 5.5.1 no reset" },
		{ NULL, NULL }
	};
	static const unsigned char body[] = "Subject: t\r\n\r\nhi\r\n";
	struct smtp_client_rcpt	 rc[2] = { { "a@example.test", NULL, 0 },
	    { "b@example.test", NULL, 0 } };
	struct smtp_message	 m = { "s@x.test", NULL, 0, 0, 0,
	    body, sizeof(body) - 1, rc, 2 };
	struct smtp_result	 res[2];
	struct sockaddr_in	 sin;
	struct smtp_conn	*c;
	pid_t			 pid;
	int			 status;
	char			 path[] = "/tmp/mxfb-test-smtp-XXXXXX";

	assert_int_not_equal(mkstemp(path), -1);
	assert_int_equal(server_start(script, path, &sin, &pid), 0);
	c = connect_to(&sin);
	assert_int_equal(smtp_greet(c, "backup.test", NULL), 0);
	assert_false(smtp_conn_ext(c)->pipelining);
	assert_int_equal(smtp_deliver(c, &m, res), 0);
	assert_int_equal(res[0].code, 550);
	assert_string_equal(res[0].dsn, "5.7.1");
	assert_string_equal(res[0].stage, "MAIL FROM");
	assert_int_equal(res[1].code, 550);
	assert_string_equal(res[1].stage, "MAIL FROM");
	assert_true(res[1].from_peer);

	assert_int_equal(smtp_deliver(c, &m, res), 0);
	assert_int_equal(res[0].code, 550);
	assert_string_equal(res[0].stage, "RCPT TO");
	assert_int_equal(res[1].code, 451);
	assert_string_equal(res[1].reply, "451 4.3.0 later");

	assert_int_equal(smtp_deliver(c, &m, res), 0);
	assert_int_equal(res[0].code, 554);
	assert_string_equal(res[0].dsn, "5.3.0");
	assert_string_equal(res[0].stage, "DATA");
	assert_int_equal(res[1].code, 550);
	assert_string_equal(res[1].stage, "RCPT TO");

	assert_int_equal(smtp_deliver(c, &m, res), -1);
	assert_int_equal(res[0].code, 0);
	assert_int_equal(res[1].code, 0);
	assert_non_null(strstr(smtp_conn_error(c), "said: 550 5.5.1 no reset "
	    "(in reply to RSET command)"));
	smtp_close(c);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_null(strstr(slurp(path), "UNEXPECTED"));
	unlink(path);
}

/*
 * PIPELINING: everything goes in one write and the replies are matched in
 * order.  A refused MAIL answers every recipient (a server that says 354
 * anyway gets an empty message); a recipient line too long is answered
 * locally and not sent; a refused DATA answers the accepted recipients; a
 * 421 to RSET ends the connection with no outcome.
 */
static void
test_pipelined_refusals(void **state)
{
	static const struct step script[] = {
		{ NULL, "220 mx.test ESMTP" },
		{ "EHLO", "250-mx.test\r\n250 PIPELINING" },
		{ "MAIL FROM:<s@x.test>\r\n", "550 5.7.1 sender refused" },
		{ "RCPT TO:<a@example.test>\r\n", "503 5.5.1 no MAIL" },
		{ "RCPT TO:<b@example.test>\r\n", "503 5.5.1 no MAIL" },
		{ "DATA", "354 go anyway" },
		{ ".", "250 ok" },
		{ "RSET", "250 ok" },
		{ "MAIL FROM:<s@x.test>\r\n", "250 ok" },
		{ "RCPT TO:<a@example.test>\r\n", "550 5.1.1 no" },
		{ "RCPT TO:<b@example.test>\r\n", "550 5.1.1 no" },
		{ "DATA", "503 5.5.1 no valid recipients" },
		{ "RSET", "250 ok" },
		{ "MAIL FROM:<s@x.test>\r\n", "250 ok" },
		{ "RCPT TO:<a@example.test>\r\n", "250 ok" },
		{ "RCPT TO:<b@example.test>\r\n", "452 4.2.2 full" },
		{ "DATA", "451 4.3.0 try later" },
		{ "RSET", "421 4.3.2 closing" },
		{ "MAIL", NULL },
		{ NULL, NULL }
	};
	static const unsigned char body[] = "Subject: t\r\n\r\nhi\r\n";
	static char		 longaddr[2100];
	struct smtp_client_rcpt	 rc[3] = { { "a@example.test", NULL, 0 },
	    { "b@example.test", NULL, 0 }, { longaddr, NULL, 0 } };
	struct smtp_message	 m = { "s@x.test", NULL, 0, 0, 0,
	    body, sizeof(body) - 1, rc, 2 };
	struct smtp_result	 res[3];
	struct sockaddr_in	 sin;
	struct smtp_conn	*c;
	pid_t			 pid;
	int			 status;
	char			*log;
	char			 path[] = "/tmp/mxfb-test-smtp-XXXXXX";

	memset(longaddr, 'x', sizeof(longaddr) - 1);
	assert_int_not_equal(mkstemp(path), -1);
	assert_int_equal(server_start(script, path, &sin, &pid), 0);
	c = connect_to(&sin);
	assert_int_equal(smtp_greet(c, "backup.test", NULL), 0);
	assert_true(smtp_conn_ext(c)->pipelining);
	assert_int_equal(smtp_deliver(c, &m, res), 0);
	assert_int_equal(res[0].code, 550);
	assert_string_equal(res[0].dsn, "5.7.1");
	assert_string_equal(res[0].stage, "MAIL FROM");
	assert_int_equal(res[1].code, 550);
	assert_string_equal(res[1].stage, "MAIL FROM");

	m.nrcpts = 3;
	assert_int_equal(smtp_deliver(c, &m, res), 0);
	assert_int_equal(res[0].code, 550);
	assert_string_equal(res[0].stage, "RCPT TO");
	assert_int_equal(res[1].code, 550);
	assert_int_equal(res[2].code, 550);
	assert_string_equal(res[2].dsn, "5.1.3");
	assert_false(res[2].from_peer);

	m.nrcpts = 2;
	assert_int_equal(smtp_deliver(c, &m, res), 0);
	assert_int_equal(res[0].code, 451);
	assert_string_equal(res[0].stage, "DATA");
	assert_int_equal(res[1].code, 452);
	assert_string_equal(res[1].stage, "RCPT TO");

	assert_int_equal(smtp_deliver(c, &m, res), -1);
	assert_int_equal(res[0].code, 0);
	assert_int_equal(res[1].code, 0);
	assert_non_null(strstr(smtp_conn_error(c), "said: 421 4.3.2 closing "
	    "(in reply to RSET command)"));
	smtp_close(c);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	log = slurp(path);
	assert_null(strstr(log, "UNEXPECTED"));
	assert_null(strstr(log, "xxxx"));
	assert_non_null(strstr(log, "DATA\r\n.\r\nRSET\r\n"));
	unlink(path);
}

static void
test_starttls_refused_and_injection(void **state)
{
	static const struct step script[] = {
		{ NULL, "220 mx.test ESMTP" },
		{ "EHLO", "250-mx.test\r\n250 STARTTLS" },
		{ "STARTTLS", "454 4.7.0 TLS not available" },
		{ "STARTTLS", "220 2.0.0 go ahead\r\n250 injected" },
		{ NULL, NULL }
	};
	struct sockaddr_in	 sin;
	struct smtp_conn	*c;
	pid_t			 pid;
	int			 refused;
	char			 path[] = "/tmp/mxfb-test-smtp-XXXXXX";

	assert_int_not_equal(mkstemp(path), -1);
	assert_int_equal(server_start(script, path, &sin, &pid), 0);
	c = connect_to(&sin);
	assert_int_equal(smtp_greet(c, "backup.test", NULL), 0);
	assert_true(smtp_conn_ext(c)->starttls);
	assert_int_equal(smtp_starttls(c, &refused), -1);
	assert_true(refused);
	assert_non_null(strstr(smtp_conn_error(c), "454 4.7.0"));
	/* Plaintext pipelined after the 220: refused, connection dead. */
	assert_int_equal(smtp_starttls(c, &refused), -1);
	assert_false(refused);
	assert_non_null(strstr(smtp_conn_error(c), "plaintext"));
	smtp_close(c);
	waitpid(pid, NULL, 0);
	unlink(path);
}

static void
test_connect_refused_and_silent(void **state)
{
	static const struct step script[] = {
		{ NULL, NULL }
	};
	struct sockaddr_in	 sin;
	struct smtp_conn	*c;
	char			 why[512];
	socklen_t		 len = sizeof(sin);
	int			 fd;
	pid_t			 pid;
	char			 path[] = "/tmp/mxfb-test-smtp-XXXXXX";
	struct smtp_timeouts	 t = { 1, 1, 1, 1 };

	/* A port nobody listens on. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0x7f000001);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	assert_int_equal(smtp_connect("down.test", (struct sockaddr *)&sin,
	    sizeof(sin), &t, &c, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "connect to down.test[127.0.0.1]:"));
	assert_non_null(strstr(why, "Connection refused"));

	/* A server that accepts and says nothing: greeting times out. */
	(void)script;
	assert_int_not_equal(mkstemp(path), -1);
	{
		static const struct step silent[] = {
			{ "NEVER", "250 x" }, { NULL, NULL } };
		assert_int_equal(server_start(silent, path, &sin, &pid), 0);
	}
	assert_int_equal(smtp_connect("slow.test", (struct sockaddr *)&sin,
	    sizeof(sin), &t, &c, why, sizeof(why)), 0);
	assert_int_equal(smtp_greet(c, "backup.test", NULL), -1);
	assert_non_null(strstr(smtp_conn_error(c), "timed out while "
	    "receiving the initial server greeting"));
	smtp_close(c);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	unlink(path);
}

/*
 * smtp_conn_set_deadline caps every wait: a silent server with 10 s step
 * timeouts is given up on at the deadline, 300 ms away.
 */
static void
test_deadline_caps_steps(void **state)
{
	static const struct step silent[] = {
		{ "NEVER", "250 x" }, { NULL, NULL } };
	struct smtp_timeouts	 t = { 10, 10, 10, 10 };
	struct sockaddr_in	 sin;
	struct smtp_conn	*c;
	char			 why[512];
	char			 path[] = "/tmp/mxfb-test-smtp-XXXXXX";
	int64_t			 t0;
	pid_t			 pid;

	assert_int_not_equal(mkstemp(path), -1);
	assert_int_equal(server_start(silent, path, &sin, &pid), 0);
	assert_int_equal(smtp_connect("slow.test", (struct sockaddr *)&sin,
	    sizeof(sin), &t, &c, why, sizeof(why)), 0);
	t0 = now_ms();
	smtp_conn_set_deadline(c, t0 + 300);
	assert_int_equal(smtp_greet(c, "backup.test", NULL), -1);
	assert_true(now_ms() - t0 < 2000);
	assert_true(now_ms() - t0 >= 250);
	assert_non_null(strstr(smtp_conn_error(c), "timed out"));
	smtp_close(c);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	unlink(path);
}

/* The server's recipient and the client's, side by side. */
static void
test_server_and_client_types(void **state)
{
	struct smtp_server_rcpt	 in = { "a@example.test", NULL,
	    NOTIFY_FAILURE };
	struct smtp_client_rcpt	 out = { in.addr, in.orcpt, in.notify };
	struct smtp_server_io	 sio;
	struct smtp_client_io	 cio;

	memset(&sio, 0, sizeof(sio));
	memset(&cio, 0, sizeof(cio));
	assert_string_equal(out.addr, "a@example.test");
	assert_int_equal(out.notify, NOTIFY_FAILURE);
	assert_null(sio.read);
	assert_null(cio.read);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_single),
		cmocka_unit_test(test_reply_multiline),
		cmocka_unit_test(test_reply_malformed),
		cmocka_unit_test(test_reply_long),
		cmocka_unit_test(test_ehlo_parse),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_pipelined_transaction),
		cmocka_unit_test(test_helo_fallback_no_extensions),
		cmocka_unit_test(test_size_and_utf8_refused_locally),
		cmocka_unit_test(test_421_ends_the_connection),
		cmocka_unit_test(test_lockstep_refusals),
		cmocka_unit_test(test_pipelined_refusals),
		cmocka_unit_test(test_starttls_refused_and_injection),
		cmocka_unit_test(test_connect_refused_and_silent),
		cmocka_unit_test(test_deadline_caps_steps),
		cmocka_unit_test(test_server_and_client_types),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
