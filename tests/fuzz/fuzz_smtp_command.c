/*
 * fuzz_smtp_command.c - libFuzzer target for the SMTP server engine: the
 * input is everything a client sends in one session, fed in chunks whose
 * size comes from the first byte.  Hooks accept everything and count
 * bytes; the engine must never crash, leak or report a message as
 * committed without a data_begin, and every data_begin must be followed
 * by exactly one commit or abort.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "core/log.h"
#include "core/smtp_server.h"
#include "core/util.h"

int	 LLVMFuzzerInitialize(int *, char ***);
int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct feed {
	const uint8_t	*data;
	size_t		 size, pos, chunk;
	int		 open;		/* data_begin without end */
	int		 begins, ends;
};

static ssize_t
feed_read(void *ctx, void *buf, size_t len, int timeout)
{
	struct feed	*f = ctx;
	size_t		 n = f->size - f->pos;

	if (n == 0)
		return (0);
	if (n > f->chunk)
		n = f->chunk;
	if (n > len)
		n = len;
	memcpy(buf, f->data + f->pos, n);
	f->pos += n;
	return ((ssize_t)n);
}

static int
feed_write(void *ctx, const void *buf, size_t len, int timeout)
{
	return (0);
}

static int
h_begin(void *ctx, struct smtp_txn *txn, char *reply, size_t size)
{
	struct feed	*f = ctx;

	if (f->open)
		abort();
	f->open = 1;
	f->begins++;
	strlcpy(txn->id, "FUZZ", sizeof(txn->id));
	return (0);
}

static int
h_write(void *ctx, const void *buf, size_t len)
{
	struct feed	*f = ctx;

	if (!f->open)
		abort();
	return (0);
}

static int
h_commit(void *ctx, struct smtp_txn *txn, char *reply, size_t size)
{
	struct feed	*f = ctx;

	if (!f->open || txn->nrcpts == 0 || txn->sender == NULL)
		abort();
	f->open = 0;
	f->ends++;
	return (0);
}

static void
h_abort(void *ctx)
{
	struct feed	*f = ctx;

	if (!f->open)
		abort();
	f->open = 0;
	f->ends++;
}

static int
h_etrn(void *ctx, const char *domain, char *reply, size_t size)
{
	strlcpy(reply, "250 2.0.0 Queuing started", size);
	return (0);
}

/* A "handshake" that keeps the stream: the rest of the input is "TLS". */
static int
h_starttls(void *ctx, struct smtp_server_io *io, char *desc, size_t size)
{
	strlcpy(desc, "TLSv1.3:FUZZ:256", size);
	return (0);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz", 0);	/* syslog: keep stderr for the fuzzer */
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_params	 p;
	struct smtp_server_io		 io;
	struct smtp_hooks	 h;
	struct feed		 f;

	if (size < 1)
		return (0);
	memset(&f, 0, sizeof(f));
	f.data = data + 1;
	f.size = size - 1;
	f.chunk = data[0] == 0 ? 1 : data[0];
	memset(&p, 0, sizeof(p));
	p.hostname = "backup.example.test";
	p.client_addr = "192.0.2.1";
	p.client_name = "unknown";
	p.max_size = 4096;
	p.max_recipients = 5;
	p.timeout = 1;
	p.soft_error_limit = 10;
	p.hard_error_limit = 20;
	p.error_sleep = 0;
	io.ctx = &f;
	io.read = feed_read;
	io.write = feed_write;
	memset(&h, 0, sizeof(h));
	h.ctx = &f;
	h.data_begin = h_begin;
	h.data_write = h_write;
	h.data_commit = h_commit;
	h.data_abort = h_abort;
	h.etrn = h_etrn;
	h.starttls = h_starttls;
	p.tls_required = data[0] & 1;
	smtp_session(&p, &io, &h);
	if (f.open || f.begins != f.ends)
		abort();
	return (0);
}
