/*
 * tls.c - TLS contexts, handshakes and I/O over OpenSSL's libssl.
 *
 * Guarantees: only TLS 1.2 and 1.3, no compression, no renegotiation;
 * every handshake, read and write has a deadline (fds are switched to
 * O_NONBLOCK and polled); a key file that group or others may access is
 * refused before OpenSSL reads it (checked on the opened descriptor, so
 * a rename between check and read cannot swap it); a passphrase-
 * protected key is an error, never a prompt.  The client always
 * verifies what it can and records the outcome; whether a failed check
 * ends the connection is decided here by the level, in one place
 * (tls_client_connect), so that no caller can silently downgrade.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/tls.h"
#include "core/util.h"

/* A deadline even for a caller that gave no timeout (0 or less). */
#define TLS_TIMEOUT_DEFAULT	300

struct tls_server {
	SSL_CTX		*ctx;
};

struct tls_client {
	SSL_CTX		*ctx;
	enum tls_level	 level;
};

struct tls_conn {
	SSL		*ssl;
	int		 rfd;
	int		 wfd;
	int		 timeout;	/* seconds, for tls_read/tls_write */
	struct tls_info	 info;
};

static const char *const level_names[] = {
	"none", "may", "encrypt", "verify", "dane"
};

static int	 set_nonblock(int);
static void	 ssl_error(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static SSL_CTX	*ctx_new(int, const char *, char *, size_t);
static int	 load_key(SSL_CTX *, const char *, char *, size_t);
static int	 no_passphrase(char *, int, int, void *);
static int	 verify_record(int, X509_STORE_CTX *);
static struct tls_conn *conn_new(SSL *, int, int, int, char *, size_t);
static int	 drive(struct tls_conn *, int (*)(SSL *), int64_t, char *,
		    size_t, const char *);
static void	 fill_info(struct tls_conn *);
static ssize_t	 transfer(struct tls_conn *, int, void *, size_t);
static void	 name_string(const X509_NAME *, char *, size_t);

int
tls_level_parse(const char *s, enum tls_level *level)
{
	size_t	 i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*level = (enum tls_level)i;
			return (0);
		}
	}
	return (-1);
}

const char *
tls_level_name(enum tls_level level)
{
	if ((size_t)level >= sizeof(level_names) / sizeof(level_names[0]))
		return ("unknown");
	return (level_names[level]);
}

int
tls_ciphers_check(const char *ciphers, char *err, size_t errsize)
{
	SSL_CTX	*ctx;

	if ((ctx = ctx_new(0, ciphers, err, errsize)) == NULL)
		return (-1);
	SSL_CTX_free(ctx);
	return (0);
}

static int
set_nonblock(int fd)
{
	int	 fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1)
		return (-1);
	if ((fl & O_NONBLOCK) == 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return (-1);
	return (0);
}

/* "what: the deepest OpenSSL reason" (the queue is emptied). */
static void
ssl_error(char *err, size_t errsize, const char *fmt, ...)
{
	char		 what[512], reason[256];
	unsigned long	 e, last = 0;
	va_list		 ap;

	va_start(ap, fmt);
	(void)vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0) {
		(void)snprintf(err, errsize, "%s", what);
		return;
	}
	if (ERR_reason_error_string(last) != NULL)
		(void)strlcpy(reason, ERR_reason_error_string(last),
		    sizeof(reason));
	else
		ERR_error_string_n(last, reason, sizeof(reason));
	(void)snprintf(err, errsize, "%s: %s", what, reason);
}

/* What both directions share. */
static SSL_CTX *
ctx_new(int server, const char *ciphers, char *err, size_t errsize)
{
	SSL_CTX	*ctx;

	ERR_clear_error();
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL) {
		ssl_error(err, errsize, "cannot create a TLS context");
		return (NULL);
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		ssl_error(err, errsize, "cannot require TLS 1.2");
		goto fail;
	}
	/*
	 * Without tls-ciphers the server offers the modern list; the client
	 * keeps OpenSSL's default (TLS 1.2+ still), since primaries are
	 * often older MTAs and may-level mail is better encrypted somehow.
	 */
	if ((ciphers == NULL || *ciphers == '\0') && server)
		ciphers = TLS_DEFAULT_CIPHERS;
	if (ciphers != NULL && *ciphers != '\0' &&
	    SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		ssl_error(err, errsize, "tls-ciphers \"%s\"", ciphers);
		goto fail;
	}
	(void)SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	(void)SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	(void)SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return (ctx);
fail:
	SSL_CTX_free(ctx);
	return (NULL);
}

static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return (0);
}

/* Refuse a key others may read; read it from the checked descriptor. */
static int
load_key(SSL_CTX *ctx, const char *path, char *err, size_t errsize)
{
	struct stat	 st;
	EVP_PKEY	*pkey;
	FILE		*f;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		(void)snprintf(err, errsize, "tls-key %s: %s", path,
		    strerror(errno));
		return (-1);
	}
	if (fstat(fd, &st) == -1) {
		(void)snprintf(err, errsize, "tls-key %s: %s", path,
		    strerror(errno));
		(void)close(fd);
		return (-1);
	}
	if (!S_ISREG(st.st_mode)) {
		(void)snprintf(err, errsize, "tls-key %s: not a regular file",
		    path);
		(void)close(fd);
		return (-1);
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		(void)snprintf(err, errsize, "tls-key %s: permissions %04o "
		    "are too open: group and others must have no access "
		    "(chmod 600)", path, (unsigned)(st.st_mode & 07777));
		(void)close(fd);
		return (-1);
	}
	if ((f = fdopen(fd, "r")) == NULL) {
		(void)snprintf(err, errsize, "tls-key %s: %s", path,
		    strerror(errno));
		(void)close(fd);
		return (-1);
	}
	ERR_clear_error();
	pkey = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
	(void)fclose(f);
	if (pkey == NULL) {
		ssl_error(err, errsize, "tls-key %s: no usable PEM private key "
		    "(a passphrase-protected key cannot be used)", path);
		return (-1);
	}
	/* The certificate is loaded first: a mismatch fails here. */
	if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1) {
		EVP_PKEY_free(pkey);
		ssl_error(err, errsize, "tls-key %s does not match the "
		    "certificate", path);
		return (-1);
	}
	EVP_PKEY_free(pkey);
	return (0);
}

int
tls_server_new(const char *cert, const char *key, const char *ciphers,
    struct tls_server **out, char *err, size_t errsize)
{
	struct tls_server	*ts;
	SSL_CTX			*ctx;
	int			 fd;

	*out = NULL;
	/* A clear message for the commonest mistake, before OpenSSL's. */
	if ((fd = open(cert, O_RDONLY | O_CLOEXEC)) == -1) {
		(void)snprintf(err, errsize, "tls-cert %s: %s", cert,
		    strerror(errno));
		return (-1);
	}
	(void)close(fd);
	if ((ctx = ctx_new(1, ciphers, err, errsize)) == NULL)
		return (-1);
	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		ssl_error(err, errsize, "tls-cert %s: no usable PEM "
		    "certificate", cert);
		goto fail;
	}
	if (load_key(ctx, key, err, errsize) == -1)
		goto fail;
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_error(err, errsize, "tls-key %s does not match tls-cert %s",
		    key, cert);
		goto fail;
	}
	/* One process per session: tickets could never be used. */
	(void)SSL_CTX_set_num_tickets(ctx, 0);
	(void)SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	(void)SSL_CTX_set_dh_auto(ctx, 1);
	ts = xcalloc(1, sizeof(*ts));
	ts->ctx = ctx;
	*out = ts;
	return (0);
fail:
	SSL_CTX_free(ctx);
	return (-1);
}

void
tls_server_free(struct tls_server *ts)
{
	if (ts == NULL)
		return;
	SSL_CTX_free(ts->ctx);
	free(ts);
}

/* Go on through every failure: the level decides afterwards. */
static int
verify_record(int ok, X509_STORE_CTX *store)
{
	return (1);
}

int
tls_client_new(enum tls_level level, const char *ciphers, const char *cafile,
    struct tls_client **out, char *err, size_t errsize)
{
	struct tls_client	*tc;
	SSL_CTX			*ctx;

	*out = NULL;
	if (level == TLS_LEVEL_NONE) {
		(void)snprintf(err, errsize, "no TLS at level none");
		return (-1);
	}
	if ((ctx = ctx_new(0, ciphers, err, errsize)) == NULL)
		return (-1);
	ERR_clear_error();
	if (cafile != NULL && *cafile != '\0') {
		if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
			ssl_error(err, errsize, "tls-ca-file %s: no usable PEM "
			    "certificates", cafile);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		ssl_error(err, errsize, "cannot load the system CA store");
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_record);
	if (level == TLS_LEVEL_DANE && SSL_CTX_dane_enable(ctx) <= 0) {
		ssl_error(err, errsize, "cannot enable DANE");
		goto fail;
	}
	tc = xcalloc(1, sizeof(*tc));
	tc->ctx = ctx;
	tc->level = level;
	*out = tc;
	return (0);
fail:
	SSL_CTX_free(ctx);
	return (-1);
}

void
tls_client_free(struct tls_client *tc)
{
	if (tc == NULL)
		return;
	SSL_CTX_free(tc->ctx);
	free(tc);
}

enum tls_level
tls_client_level(const struct tls_client *tc)
{
	return (tc->level);
}

/* Wrap ssl around the fds (a socket or pipe BIO each); frees ssl on error. */
static struct tls_conn *
conn_new(SSL *ssl, int rfd, int wfd, int timeout, char *err, size_t errsize)
{
	struct tls_conn	*c;
	struct stat	 st;
	BIO		*rbio, *wbio;
	int		 sock;

	if (set_nonblock(rfd) == -1 || set_nonblock(wfd) == -1) {
		(void)snprintf(err, errsize, "fcntl O_NONBLOCK: %s",
		    strerror(errno));
		SSL_free(ssl);
		return (NULL);
	}
	sock = fstat(rfd, &st) == 0 && S_ISSOCK(st.st_mode);
	rbio = sock ? BIO_new_socket(rfd, BIO_NOCLOSE) :
	    BIO_new_fd(rfd, BIO_NOCLOSE);
	if (rbio == NULL) {
		ssl_error(err, errsize, "cannot create a BIO");
		SSL_free(ssl);
		return (NULL);
	}
	if (wfd == rfd) {
		wbio = rbio;	/* SSL_set_bio() then takes one reference */
	} else {
		sock = fstat(wfd, &st) == 0 && S_ISSOCK(st.st_mode);
		wbio = sock ? BIO_new_socket(wfd, BIO_NOCLOSE) :
		    BIO_new_fd(wfd, BIO_NOCLOSE);
		if (wbio == NULL) {
			ssl_error(err, errsize, "cannot create a BIO");
			BIO_free(rbio);
			SSL_free(ssl);
			return (NULL);
		}
	}
	SSL_set_bio(ssl, rbio, wbio);
	c = xcalloc(1, sizeof(*c));
	c->ssl = ssl;
	c->rfd = rfd;
	c->wfd = wfd;
	c->timeout = timeout;
	return (c);
}

/*
 * Run op (a handshake or a shutdown) to its end before the deadline.
 * -1 with "what: reason" in err.
 */
static int
drive(struct tls_conn *c, int (*op)(SSL *), int64_t deadline, char *err,
    size_t errsize, const char *what)
{
	int	 r, e, w;

	for (;;) {
		ERR_clear_error();
		errno = 0;
		if ((r = op(c->ssl)) == 1)
			return (0);
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			w = wait_fd(c->rfd, POLLIN, deadline);
		else if (e == SSL_ERROR_WANT_WRITE)
			w = wait_fd(c->wfd, POLLOUT, deadline);
		else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
			(void)snprintf(err, errsize, "%s: %s", what, errno ?
			    strerror(errno) : "connection closed by peer");
			return (-1);
		} else if (e == SSL_ERROR_ZERO_RETURN) {
			(void)snprintf(err, errsize, "%s: connection closed "
			    "by peer", what);
			return (-1);
		} else {
			ssl_error(err, errsize, "%s", what);
			return (-1);
		}
		if (w == 0) {
			(void)snprintf(err, errsize, "%s: timed out", what);
			return (-1);
		}
		if (w == -1) {
			(void)snprintf(err, errsize, "%s: poll: %s", what,
			    strerror(errno));
			return (-1);
		}
	}
}

static void
name_string(const X509_NAME *name, char *buf, size_t size)
{
	BIO	*b;
	int	 n;

	buf[0] = '\0';
	if (name == NULL || (b = BIO_new(BIO_s_mem())) == NULL)
		return;
	if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_read(b, buf, (int)size - 1)) > 0)
		buf[n] = '\0';
	BIO_free(b);
}

static void
fill_info(struct tls_conn *c)
{
	struct tls_info	*ti = &c->info;
	const SSL_CIPHER *cipher;
	X509		*cert;
	long		 vr;
	int		 days, secs;

	memset(ti, 0, sizeof(*ti));
	(void)strlcpy(ti->protocol, SSL_get_version(c->ssl),
	    sizeof(ti->protocol));
	if ((cipher = SSL_get_current_cipher(c->ssl)) != NULL) {
		(void)strlcpy(ti->cipher, SSL_CIPHER_get_name(cipher),
		    sizeof(ti->cipher));
		ti->bits = SSL_CIPHER_get_bits(cipher, NULL);
	}
	if ((cert = SSL_get1_peer_certificate(c->ssl)) == NULL) {
		(void)strlcpy(ti->verify_error, "no peer certificate",
		    sizeof(ti->verify_error));
		return;
	}
	ti->has_cert = 1;
	name_string(X509_get_subject_name(cert), ti->subject,
	    sizeof(ti->subject));
	name_string(X509_get_issuer_name(cert), ti->issuer,
	    sizeof(ti->issuer));
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)) == 1)
		ti->expiry_days = days - ((secs < 0 && days <= 0) ? 1 : 0);
	X509_free(cert);
	vr = SSL_get_verify_result(c->ssl);
	if (vr == X509_V_OK) {
		ti->verified = 1;
		ti->dane = SSL_get0_dane_authority(c->ssl, NULL, NULL) >= 0;
	} else
		(void)strlcpy(ti->verify_error,
		    X509_verify_cert_error_string(vr),
		    sizeof(ti->verify_error));
}

int
tls_server_accept(struct tls_server *ts, int rfd, int wfd, int timeout,
    struct tls_conn **out, char *err, size_t errsize)
{
	struct tls_conn	*c;
	SSL		*ssl;
	int64_t		 deadline;

	*out = NULL;
	ERR_clear_error();
	if ((ssl = SSL_new(ts->ctx)) == NULL) {
		ssl_error(err, errsize, "cannot create a TLS session");
		return (-1);
	}
	if ((c = conn_new(ssl, rfd, wfd, timeout, err, errsize)) == NULL)
		return (-1);
	SSL_set_accept_state(c->ssl);
	deadline = timeout > 0 ? now_ms() + (int64_t)timeout * 1000 : -1;
	if (drive(c, SSL_do_handshake, deadline, err, errsize,
	    "TLS handshake") == -1) {
		SSL_free(c->ssl);
		free(c);
		return (-1);
	}
	fill_info(c);
	*out = c;
	return (0);
}

int
tls_client_connect(struct tls_client *tc, int fd, const char *host,
    const char *base, const struct tlsa_record *tlsa, size_t ntlsa,
    int timeout, struct tls_info *seen, struct tls_conn **out, char *err,
    size_t errsize)
{
	struct tls_conn	*c;
	SSL		*ssl;
	size_t		 i;
	int		 usable = 0, required;

	*out = NULL;
	if (seen != NULL)
		memset(seen, 0, sizeof(*seen));
	ERR_clear_error();
	if ((ssl = SSL_new(tc->ctx)) == NULL) {
		ssl_error(err, errsize, "cannot create a TLS session");
		return (-1);
	}
	if (SSL_set_tlsext_host_name(ssl, host) != 1) {
		ssl_error(err, errsize, "TLS server name %s", host);
		SSL_free(ssl);
		return (-1);
	}
	if (tc->level == TLS_LEVEL_DANE && ntlsa > 0) {
		if (SSL_dane_enable(ssl, base != NULL ? base : host) <= 0) {
			ssl_error(err, errsize, "DANE for %s", host);
			SSL_free(ssl);
			return (-1);
		}
		(void)SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
		for (i = 0; i < ntlsa; i++) {
			/* RFC 7672 3.1.3: PKIX-TA/EE are unusable in SMTP. */
			if (tlsa[i].usage != 2 && tlsa[i].usage != 3)
				continue;
			if (SSL_dane_tlsa_add(ssl, tlsa[i].usage,
			    tlsa[i].selector, tlsa[i].mtype, tlsa[i].data,
			    tlsa[i].len) > 0)
				usable++;
		}
		ERR_clear_error();	/* unusable records are no error */
		if (base != NULL && strcasecmp(base, host) != 0 &&
		    SSL_add1_host(ssl, host) != 1) {
			ssl_error(err, errsize, "DANE name %s", host);
			SSL_free(ssl);
			return (-1);
		}
	}
	if (usable == 0) {
		if (SSL_set1_host(ssl, host) != 1) {
			ssl_error(err, errsize, "TLS name check for %s", host);
			SSL_free(ssl);
			return (-1);
		}
		X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl),
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	}
	if ((c = conn_new(ssl, fd, fd, timeout, err, errsize)) == NULL)
		return (-1);
	SSL_set_connect_state(c->ssl);
	if (drive(c, SSL_do_handshake, now_ms() + (int64_t)(timeout > 0 ?
	    timeout : TLS_TIMEOUT_DEFAULT) * 1000, err, errsize,
	    "TLS handshake") == -1) {
		SSL_free(c->ssl);
		free(c);
		return (-1);
	}
	fill_info(c);
	if (seen != NULL)
		*seen = c->info;
	required = tc->level == TLS_LEVEL_VERIFY ||
	    (tc->level == TLS_LEVEL_DANE && usable > 0);
	if (required && !c->info.verified) {
		if (usable > 0)
			(void)snprintf(err, errsize, "no TLSA record "
			    "of %s matches the certificate of %s (%s)",
			    base != NULL ? base : host, host,
			    c->info.verify_error);
		else
			(void)snprintf(err, errsize, "certificate "
			    "verification failed for %s: %s", host,
			    c->info.verify_error);
		tls_conn_free(c);
		return (-1);
	}
	*out = c;
	return (0);
}

const struct tls_info *
tls_conn_info(const struct tls_conn *c)
{
	return (&c->info);
}

ssize_t
tls_read_timeout(void *ctx, void *buf, size_t len, int timeout)
{
	struct tls_conn	*c = ctx;
	int64_t		 deadline;
	int		 n, e, w;

	deadline = timeout > 0 ? now_ms() + (int64_t)timeout * 1000 : -1;
	if (len > INT32_MAX)
		len = INT32_MAX;
	for (;;) {
		ERR_clear_error();
		errno = 0;
		if ((n = SSL_read(c->ssl, buf, (int)len)) > 0)
			return (n);
		e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_ZERO_RETURN)
			return (0);
		if (e == SSL_ERROR_WANT_READ)
			w = wait_fd(c->rfd, POLLIN, deadline);
		else if (e == SSL_ERROR_WANT_WRITE)
			w = wait_fd(c->wfd, POLLOUT, deadline);
		else {
			if (e != SSL_ERROR_SYSCALL || errno == 0)
				errno = EPROTO;
			return (-1);
		}
		if (w == 0) {
			errno = ETIMEDOUT;
			return (-1);
		}
		if (w == -1)
			return (-1);
	}
}

int
tls_write_timeout(void *ctx, const void *buf, size_t len, int timeout)
{
	struct tls_conn	*c = ctx;
	const char	*p = buf;
	int64_t		 deadline;
	size_t		 chunk;
	int		 n, e, w;

	while (len > 0) {
		/* The timeout is per write, as for plain fds. */
		deadline = timeout > 0 ? now_ms() + (int64_t)timeout * 1000 :
		    -1;
		chunk = len > INT32_MAX ? INT32_MAX : len;
		ERR_clear_error();
		errno = 0;
		if ((n = SSL_write(c->ssl, p, (int)chunk)) > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_WRITE)
			w = wait_fd(c->wfd, POLLOUT, deadline);
		else if (e == SSL_ERROR_WANT_READ)
			w = wait_fd(c->rfd, POLLIN, deadline);
		else {
			if (e != SSL_ERROR_SYSCALL || errno == 0)
				errno = EPROTO;
			return (-1);
		}
		if (w == 0) {
			errno = ETIMEDOUT;
			return (-1);
		}
		if (w == -1)
			return (-1);
	}
	return (0);
}

/*
 * One SSL_read or SSL_write.  The caller polls only for the direction it
 * asked for (input for a read, output for a write); when TLS needs the
 * other one (a renegotiation, a key update), wait for it here.
 */
static ssize_t
transfer(struct tls_conn *c, int writing, void *buf, size_t len)
{
	int	 n, e, w, want_self, want_other, fd;
	short	 ev;

	if (len > INT32_MAX)
		len = INT32_MAX;
	want_self = writing ? SSL_ERROR_WANT_WRITE : SSL_ERROR_WANT_READ;
	want_other = writing ? SSL_ERROR_WANT_READ : SSL_ERROR_WANT_WRITE;
	fd = writing ? c->rfd : c->wfd;
	ev = writing ? POLLIN : POLLOUT;
	for (;;) {
		ERR_clear_error();
		errno = 0;
		n = writing ? SSL_write(c->ssl, buf, (int)len) :
		    SSL_read(c->ssl, buf, (int)len);
		if (n > 0)
			return (n);
		e = SSL_get_error(c->ssl, n);
		if (!writing && e == SSL_ERROR_ZERO_RETURN)
			return (0);
		if (e == want_self) {
			errno = EAGAIN;
			return (-1);
		}
		if (e != want_other) {
			if (e != SSL_ERROR_SYSCALL || errno == 0)
				errno = EPROTO;
			return (-1);
		}
		w = wait_fd(fd, ev, now_ms() +
		    (int64_t)(c->timeout > 0 ? c->timeout :
		    TLS_TIMEOUT_DEFAULT) * 1000);
		if (w == 0) {
			errno = ETIMEDOUT;
			return (-1);
		}
		if (w == -1)
			return (-1);
	}
}

ssize_t
tls_read(void *ctx, void *buf, size_t len)
{
	return (transfer(ctx, 0, buf, len));
}

ssize_t
tls_write(void *ctx, const void *buf, size_t len)
{
	return (transfer(ctx, 1, (void *)buf, len));
}

int
tls_pending(void *ctx)
{
	struct tls_conn	*c = ctx;

	return (SSL_pending(c->ssl));
}

void
tls_conn_free(struct tls_conn *c)
{
	if (c == NULL)
		return;
	ERR_clear_error();
	(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
	SSL_free(c->ssl);
	free(c);
}

void
tls_close(void *ctx)
{
	tls_conn_free(ctx);
}

void
tls_info_summary(const struct tls_info *ti, char *buf, size_t size)
{
	const char	*proto = ti->protocol;

	/* "TLSv1.3" is written "TLS1.3" in Received headers. */
	if (strncmp(proto, "TLSv", 4) == 0) {
		(void)snprintf(buf, size, "TLS%s:%s:%d", proto + 4, ti->cipher,
		    ti->bits);
		return;
	}
	(void)snprintf(buf, size, "%s:%s:%d", proto, ti->cipher, ti->bits);
}
