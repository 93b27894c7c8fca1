/*
 * inject.c - queue a message read from stdin, as if it had been received
 * by SMTP, for any recipient domain.  For administrators moving mail
 * between hosts, re-queueing a message saved with `status -b`, and for
 * tests.
 *
 * Guarantees: the queue ID is printed (and the message logged) only
 * after the spool writer's commit returned, that is once message and
 * envelope are on stable storage; on any failure nothing is left in the
 * queue.  Line ends are stored as CRLF: a bare LF becomes CRLF, an
 * existing CRLF is kept; a bare CR or a NUL byte is refused (exit 65)
 * because the stored message must be safe to relay as SMTP DATA.
 */
#include <sys/types.h>

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "core/config.h"
#include "core/log.h"
#include "core/mail/address.h"
#include "core/util.h"
#include "spool/spool.h"

#define INJECT_USAGE	"mxfb inject [-C file] [-f sender] recipient ..."
#define ADDRESS_MAX	254	/* RFC 5321 path minus the angle brackets */
#define CHUNK_SIZE	65536

/* What the input scan found, and the state carried between chunks. */
struct body_state {
	int		 pending_cr;	/* last chunk ended in CR */
	int		 eightbit;	/* a byte >= 0x80 was seen */
	int		 at_line_start;	/* nothing written since last LF */
	const char	*error;		/* why the data was refused */
};

static int	 address_valid(const char *, int *);
static int	 default_sender(char *, size_t);
static int	 write_chunk(struct spool_writer *, struct body_state *,
		    const unsigned char *, size_t);
static int	 spool_exit_code(int);
static int	 check_addresses(const char *, char *, size_t, char **, int,
		    int *);
static int	 copy_input(struct spool_writer *, struct body_state *);
static void	 fill_envelope(struct envelope *, const char *, const char *,
		    char **, int, int, int);
static int	 inject_message(struct spool *, const char *, char **, int,
		    int);
static char	*unbracket(char *);

/*
 * A deliberately simple address check: exactly one '@' with something
 * on both sides, no white space, no angle brackets, no control
 * characters, valid UTF-8 (non-ASCII marks the message SMTPUTF8).
 */
static int
address_valid(const char *addr, int *utf8)
{
	const unsigned char *p;
	const char	*at;
	size_t		 len;

	len = strlen(addr);
	if (len == 0 || len > ADDRESS_MAX)
		return (0);
	if ((at = strchr(addr, '@')) == NULL || at == addr ||
	    at[1] == '\0' || strchr(at + 1, '@') != NULL)
		return (0);
	for (p = (const unsigned char *)addr; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == ' ' || *p == '<' ||
		    *p == '>')
			return (0);
		if (*p >= 0x80)
			*utf8 = 1;
	}
	if (!utf8_valid((const unsigned char *)addr, len))
		return (0);
	return (1);
}

/* The invoking user at our hostname: "root@backup.example.org". */
static int
default_sender(char *buf, size_t size)
{
	struct passwd	*pw;
	const char	*user;

	if ((pw = getpwuid((uid_t)cmd_caller_uid())) != NULL)
		user = pw->pw_name;
	else if ((user = getenv("LOGNAME")) == NULL || *user == '\0')
		user = "nobody";
	return (bsnprintf(buf, size, "%s@%s", user, cfg->hostname));
}

/*
 * Copy one chunk of input into the spool, turning bare LF into CRLF.
 * A CR at the end of a chunk is held back until the next byte shows
 * whether it starts a CRLF.  Returns -1 with errno set on a spool error,
 * -2 with st->error set when the data is refused.
 */
static int
write_chunk(struct spool_writer *w, struct body_state *st,
    const unsigned char *buf, size_t len)
{
	static const unsigned char crlf[2] = { '\r', '\n' };
	size_t		 i, start = 0;

	if (st->pending_cr && len > 0) {
		if (buf[0] != '\n') {
			st->error = "bare CR in message";
			return (-2);
		}
		st->pending_cr = 0;
		if (spool_writer_write(w, crlf, 2) == -1)
			return (-1);
		st->at_line_start = 1;
		start = i = 1;
	} else
		i = 0;

	for (; i < len; i++) {
		switch (buf[i]) {
		case '\0':
			st->error = "NUL byte in message";
			return (-2);
		case '\r':
			if (i + 1 == len) {
				/* Decided by the next chunk. */
				if (i > start &&
				    spool_writer_write(w, buf + start,
				    i - start) == -1)
					return (-1);
				st->pending_cr = 1;
				return (0);
			}
			if (buf[i + 1] != '\n') {
				st->error = "bare CR in message";
				return (-2);
			}
			i++;		/* the LF of CRLF */
			st->at_line_start = 1;
			break;
		case '\n':
			/* Bare LF: write what precedes, then CRLF. */
			if (i > start && spool_writer_write(w, buf + start,
			    i - start) == -1)
				return (-1);
			if (spool_writer_write(w, crlf, 2) == -1)
				return (-1);
			start = i + 1;
			st->at_line_start = 1;
			break;
		default:
			if (buf[i] >= 0x80)
				st->eightbit = 1;
			st->at_line_start = 0;
			break;
		}
	}
	if (len > start && spool_writer_write(w, buf + start,
	    len - start) == -1)
		return (-1);
	return (0);
}

static int
spool_exit_code(int error)
{
	if (error == ENOSPC || error == EDQUOT)
		return (EXIT_TEMPFAIL);
	return (EXIT_IOERR);
}

/* "<addr>" -> "addr" (in place); anything else is returned as it is. */
static char *
unbracket(char *s)
{
	size_t	 len = strlen(s);

	if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
		s[len - 1] = '\0';
		return (s + 1);
	}
	return (s);
}

/*
 * The sender (-f, "" for the null sender, or the caller at our
 * hostname) and the recipients are checked before anything is created.
 * Returns 0 with the sender in buf, or the exit code.
 */
static int
check_addresses(const char *sender_arg, char *sender, size_t size,
    char **rcpts, int nrcpts, int *utf8)
{
	char	 safe[ADDRESS_MAX * 4 + 1];
	int	 i;

	if (sender_arg == NULL) {
		if (default_sender(sender, size) == -1 ||
		    !address_valid(sender, utf8)) {
			log_cmd_errorx("cannot make a sender address from "
			    "the user name and hostname; use -f");
			return (EXIT_DATAERR);
		}
	} else if (strcmp(sender_arg, "") == 0)
		sender[0] = '\0';
	else if (!address_valid(sender_arg, utf8)) {
		log_safe(safe, sizeof(safe), sender_arg);
		log_cmd_errorx("bad sender address: \"%s\"", safe);
		return (EXIT_DATAERR);
	} else
		(void)strlcpy(sender, sender_arg, size);
	for (i = 0; i < nrcpts; i++) {
		if (!address_valid(rcpts[i], utf8)) {
			log_safe(safe, sizeof(safe), rcpts[i]);
			log_cmd_errorx("bad recipient address: \"%s\"", safe);
			return (EXIT_DATAERR);
		}
	}
	if ((unsigned)nrcpts > cfg->max_recipients) {
		log_cmd_errorx("too many recipients (max-recipients %u)",
		    cfg->max_recipients);
		return (EXIT_DATAERR);
	}
	return (0);
}

/*
 * Standard input into the spool, up to max-size, ending in a line end.
 * Returns 0; -1 with errno set on a spool error; -2 with st->error set
 * when the data is refused; -3 when standard input could not be read
 * (logged).
 */
static int
copy_input(struct spool_writer *w, struct body_state *st)
{
	static unsigned char buf[CHUNK_SIZE];
	uint64_t	 total = 0;
	ssize_t		 n;
	int		 r;

	for (;;) {
		n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_cmd_error("read standard input");
			return (-3);
		}
		if (n == 0)
			break;
		if ((r = write_chunk(w, st, buf, (size_t)n)) != 0)
			return (r);
		total += (uint64_t)n;
		if (cfg->max_size > 0 && total > cfg->max_size) {
			st->error = "message larger than max-size";
			return (-2);
		}
	}
	if (st->pending_cr) {
		st->error = "bare CR in message";
		return (-2);
	}
	/* A last line without its line end gets one. */
	if (!st->at_line_start && spool_writer_write(w, "\r\n", 2) == -1)
		return (-1);
	return (0);
}

/* The envelope of a local message; a recipient named twice is one. */
static void
fill_envelope(struct envelope *env, const char *id, const char *sender,
    char **rcpts, int nrcpts, int utf8, int eightbit)
{
	int	 i, j, dup;

	(void)strlcpy(env->id, id, sizeof(env->id));
	env->arrival = time(NULL);
	env->sender = xstrdup(sender);
	env->client_addr = xstrdup("local");
	env->ret = RET_UNSET;
	env->smtputf8 = utf8;
	env->eightbit = eightbit;
	for (i = 0; i < nrcpts; i++) {
		for (dup = 0, j = 0; j < i; j++)
			if (strcasecmp(rcpts[i], rcpts[j]) == 0)
				dup = 1;
		if (!dup)
			(void)envelope_add_recipient(env, rcpts[i]);
	}
}

/*
 * Write, commit, log and print one message; on any failure the writer
 * is aborted, so nothing is left in the queue.  Returns the exit code.
 */
static int
inject_message(struct spool *sp, const char *sender, char **rcpts,
    int nrcpts, int utf8)
{
	struct body_state st;
	struct envelope	 env;
	struct spool_writer *w;
	char		 id[QUEUE_ID_SIZE], date[64];
	char		 safe[ADDRESS_MAX * 4 + 1];
	char		*header = NULL;
	int		 r, rc, save_errno;

	memset(&env, 0, sizeof(env));
	memset(&st, 0, sizeof(st));
	st.at_line_start = 1;
	if (spool_writer_begin(sp, &w, id) == -1) {
		save_errno = errno;
		log_cmd_error("spool %s: cannot create a message", cfg->spool);
		return (save_errno == ENOSPC || save_errno == EDQUOT ?
		    EXIT_TEMPFAIL : EXIT_CANTCREAT);
	}
	rfc5322_date(time(NULL), date, sizeof(date));
	if (xasprintf(&header, "Received: by %s (mxfb inject, uid %lu)\r\n"
	    "\tid %s; %s\r\n", cfg->hostname, cmd_caller_uid(), id,
	    date) == -1 || spool_writer_write(w, header, strlen(header)) == -1)
		r = -1;
	else
		r = copy_input(w, &st);
	if (r == 0) {
		fill_envelope(&env, id, sender, rcpts, nrcpts, utf8,
		    st.eightbit);
		if (spool_writer_commit(w, &env) == -1) {
			w = NULL;	/* commit failure aborted the writer */
			r = -1;
		}
	}

	switch (r) {
	case 0:
		log_info("%s: client=local, from=<%s>, size=%llu, nrcpt=%zu, "
		    "uid=%lu", id, log_safe(safe, sizeof(safe), sender),
		    (unsigned long long)env.size, env.nrcpts,
		    cmd_caller_uid());
		rc = 0;
		if (printf("%s\n", id) < 0 || fflush(stdout) == EOF) {
			log_cmd_error("standard output");
			rc = EXIT_IOERR;
		}
		break;
	case -1:
		save_errno = errno;
		log_cmd_error("spool %s: cannot write message", cfg->spool);
		rc = spool_exit_code(save_errno);
		break;
	case -2:
		log_cmd_errorx("%s", st.error);
		rc = EXIT_DATAERR;
		break;
	default:
		rc = EXIT_IOERR;	/* standard input, logged */
		break;
	}
	if (r != 0 && w != NULL)
		spool_writer_abort(w);
	envelope_free(&env);
	free(header);
	return (rc);
}

int
cmd_inject(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help",	no_argument,	NULL, 'h' },
		{ NULL,		0,		NULL, 0 }
	};
	struct spool	*sp;
	char		 sender[ADDRESS_MAX + 1];
	char		*sender_arg = NULL;
	int		 ch, i, rc, utf8 = 0;

	while ((ch = getopt_long(argc, argv, "C:f:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			cmd_set_config_file(optarg);
			break;
		case 'f':
			sender_arg = optarg;
			break;
		case 'h':
			cmd_usage(INJECT_USAGE, 1);
		default:
			cmd_usage(INJECT_USAGE, 0);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		cmd_usage(INJECT_USAGE, 0);

	cmd_load_config();
	/* Root makes a missing spool for the user, then is the user. */
	cmd_become_user(1);

	/* As sendmail does, "<a@b>" is the address a@b. */
	if (sender_arg != NULL)
		sender_arg = unbracket(sender_arg);
	for (i = 0; i < argc; i++)
		argv[i] = unbracket(argv[i]);

	/* Addresses first: nothing is created for a command that fails. */
	if ((rc = check_addresses(sender_arg, sender, sizeof(sender), argv,
	    argc, &utf8)) != 0)
		return (rc);
	sp = cmd_open_spool(1);
	rc = inject_message(sp, sender, argv, argc, utf8);
	spool_close(sp);
	return (rc);
}
