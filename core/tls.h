/*
 * tls.h - TLS for both directions of SMTP, hiding OpenSSL (libssl).
 *
 * Server side (STARTTLS in receive): a context from tls-cert and
 * tls-key, loaded once at start; a refused key file (group or others may
 * read it), a bad certificate, a key that does not match: a
 * configuration error with the file's name, never a plaintext fallback.
 * Client side (flush, probe): a context per tls-outbound level.  Both
 * speak TLS 1.2 and 1.3 only, with a modern cipher list unless
 * tls-ciphers says otherwise.
 *
 * The client always asks for and checks the peer's certificate (chain
 * to tls-ca-file or the system store, the MX host name; TLSA records
 * under dane) but only the verify and dane levels refuse a connection
 * that fails the check: may and encrypt merely report it.  The check's
 * outcome is in struct tls_info for probe and the logs.
 *
 * A struct tls_conn sits on a connected fd (or an inetd fd pair) it does
 * not own: tls_conn_free() neither closes the fds nor restores their
 * O_NONBLOCK flag, which the handshake sets.
 */
#ifndef MXFB_TLS_H
#define MXFB_TLS_H

#include <sys/types.h>
#include <stddef.h>

/* tls-outbound levels, weakest first (order matters: compared). */
enum tls_level {
	TLS_LEVEL_NONE,		/* never STARTTLS */
	TLS_LEVEL_MAY,		/* STARTTLS when offered, else plaintext */
	TLS_LEVEL_ENCRYPT,	/* STARTTLS or defer; no authentication */
	TLS_LEVEL_VERIFY,	/* chain to a trusted CA and the MX name */
	TLS_LEVEL_DANE		/* RFC 7672: TLSA records, else may */
};

/* "may" -> TLS_LEVEL_MAY; -1 for an unknown word. */
int	 tls_level_parse(const char *, enum tls_level *);
const char *tls_level_name(enum tls_level);

/*
 * The server's default cipher list for TLS 1.2 (TLS 1.3 suites are
 * OpenSSL's); the client's default is OpenSSL's.  tls-ciphers replaces
 * both.
 */
#define TLS_DEFAULT_CIPHERS \
	"ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!MD5"

/* Can OpenSSL use this tls-ciphers list?  -1 with the reason in err. */
int	 tls_ciphers_check(const char *, char *err, size_t);

/* Certificates whose expiry is this close make probe warn. */
#define TLS_EXPIRY_WARN_DAYS	14

/* What a finished handshake negotiated and what the peer presented. */
struct tls_info {
	char	 protocol[16];		/* "TLSv1.3" */
	char	 cipher[64];		/* "TLS_AES_256_GCM_SHA384" */
	int	 bits;			/* symmetric key bits */
	int	 has_cert;		/* the peer sent a certificate */
	char	 subject[256];		/* RFC 2253 one line, or "" */
	char	 issuer[256];
	long	 expiry_days;		/* whole days left; < 0: expired */
	int	 verified;		/* chain and name (or TLSA) matched */
	int	 dane;			/* verified by a TLSA record */
	char	 verify_error[128];	/* why not verified, or "" */
};

struct tls_server;
struct tls_client;
struct tls_conn;

/* One TLSA record (RFC 6698) as found in DNS. */
struct tlsa_record {
	unsigned char	 usage;		/* 2 DANE-TA, 3 DANE-EE (0, 1 unused) */
	unsigned char	 selector;	/* 0 cert, 1 SPKI */
	unsigned char	 mtype;		/* 0 full, 1 SHA-256, 2 SHA-512 */
	unsigned char	*data;
	size_t		 len;
};

/*
 * The server context.  The key file must be a regular file that neither
 * group nor others may access (as ssh insists for its keys).  ciphers
 * NULL or "": TLS_DEFAULT_CIPHERS.  -1 with a message in err.
 */
int	 tls_server_new(const char *cert, const char *key,
	    const char *ciphers, struct tls_server **, char *err, size_t);
void	 tls_server_free(struct tls_server *);

/*
 * Server handshake on rfd/wfd (the same fd twice for a socket), within
 * timeout seconds.  -1 with the reason in err; nothing was then read
 * beyond the handshake's own records.
 */
int	 tls_server_accept(struct tls_server *, int rfd, int wfd,
	    int timeout, struct tls_conn **, char *err, size_t);

/*
 * A client context for a level above none.  cafile NULL or "": the
 * system's default store.  -1 with a message in err.
 */
int	 tls_client_new(enum tls_level, const char *ciphers,
	    const char *cafile, struct tls_client **, char *err, size_t);
void	 tls_client_free(struct tls_client *);
enum tls_level tls_client_level(const struct tls_client *);

/*
 * Client handshake on a connected fd after the peer's 220 to STARTTLS:
 * SNI and the name check use host (the MX name).  Under dane, the
 * records (may be none) are the secure TLSA RRset of base; records that
 * OpenSSL cannot use are ignored, and with none usable the connection
 * is only encrypted (RFC 7672 2.2).  A level's failed authentication
 * is an error: -1 with the reason in err, the connection then useless.
 * seen (may be NULL) gets what the handshake found whenever it finished,
 * even when authentication then failed (for probe).
 */
int	 tls_client_connect(struct tls_client *, int fd, const char *host,
	    const char *base, const struct tlsa_record *, size_t ntlsa,
	    int timeout, struct tls_info *seen, struct tls_conn **,
	    char *err, size_t);

/* The negotiated session, for logs, Received and probe. */
const struct tls_info *tls_conn_info(const struct tls_conn *);

/*
 * I/O in the shape of core/smtp_server.h's struct smtp_server_io: read waits
 * at most timeout seconds (>0 bytes, 0 at the peer's close_notify or
 * end of file, -1 with errno ETIMEDOUT or another error); write sends
 * everything or returns -1.
 */
ssize_t	 tls_read_timeout(void *conn, void *, size_t, int timeout);
int	 tls_write_timeout(void *conn, const void *, size_t, int timeout);

/*
 * I/O in the shape of core/smtp_client.h's struct smtp_client_io: like read(2)
 * and write(2) on a nonblocking fd (-1 with EAGAIN: poll the fd, then
 * call again); pending tells how many decrypted bytes wait already.
 */
ssize_t	 tls_read(void *conn, void *, size_t);
ssize_t	 tls_write(void *conn, const void *, size_t);
int	 tls_pending(void *conn);

/* Send close_notify (best effort, without waiting) and free. */
void	 tls_conn_free(struct tls_conn *);
/* The same for an I/O struct's void * context. */
void	 tls_close(void *conn);

/* "TLSv1.3:TLS_AES_256_GCM_SHA384:256" as in Received headers. */
void	 tls_info_summary(const struct tls_info *, char *, size_t);

#endif
