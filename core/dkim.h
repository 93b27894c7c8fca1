/*
 * dkim.h - DKIM signing (RFC 6376) of submitted mail: the `dkim DOMAIN
 * SELECTOR KEYFILE` keys, the choice of key for a message, the
 * DKIM-Signature field, and the TXT record to publish.
 *
 * Keys are read when the configuration is loaded, before a command
 * started as root becomes `user`: a key file may be readable by root
 * alone.  RSA keys (at least 1024 bits) sign rsa-sha256 through OpenSSL,
 * Ed25519 keys ed25519-sha256 (RFC 8463) through libsodium.  Signatures
 * are relaxed/relaxed; h= covers every present instance of the fields
 * in DKIM_SIGNED_FIELDS and From once more (oversigned), so that no
 * second From can be added to a signed message.
 *
 * The message is taken whole, as the spool stores it (CRLF line ends).
 * Nothing in it is trusted: NULs, bare CR or LF, endless folding, no
 * body, no blank line before the body are handled without harm (what
 * such a message's signature proves is another matter).
 */
#ifndef MXFB_DKIM_H
#define MXFB_DKIM_H

#include <sys/types.h>
#include <stddef.h>
#include <time.h>

/* The fields signed when present, in h= order (From always). */
#define DKIM_SIGNED_FIELDS	"from", "to", "cc", "subject", "date", \
	"message-id", "mime-version", "content-type", \
	"content-transfer-encoding", "reply-to", "in-reply-to", "references"

/* The smallest RSA key accepted (RFC 8301 3.2); 2048 is recommended. */
#define DKIM_RSA_MIN_BITS	1024
/* Signatures one message gets at most (one per key of its domain). */
#define DKIM_MAX_SIGNATURES	8

struct dkim_key;

/*
 * The values of one `dkim` line (DOMAIN SELECTOR KEYFILE, ac of them),
 * found on line `line`: checked, the key read, appended to *keys.  -1
 * with the reason in err (without file:line: the caller adds it): a bad
 * domain or selector, a key file that cannot be read, that others may
 * read or that group or others may write, that holds no RSA or Ed25519
 * private key, an RSA key under DKIM_RSA_MIN_BITS, a second line for
 * the same domain and selector.  One exception: a process not running
 * as root that is denied the key file (EACCES: the flush ETRN starts,
 * as `user`, where only root may read the key) keeps the line without
 * its key, and signing with it fails.
 */
int	 dkim_config_add(struct dkim_key ***keys, size_t *nkeys, char **av,
	    int ac, size_t line, char *err, size_t errsize);

/* One key, as dkim_config_add reads it; NULL with the reason in err. */
struct dkim_key *dkim_key_load(const char *domain, const char *selector,
	    const char *path, char *err, size_t errsize);
/* Both erase the private key before freeing. */
void	 dkim_key_free(struct dkim_key *);
void	 dkim_keys_free(struct dkim_key **, size_t);

const char *dkim_key_domain(const struct dkim_key *);	/* lower case */
const char *dkim_key_selector(const struct dkim_key *);
const char *dkim_key_algorithm(const struct dkim_key *); /* a= value */

/*
 * The TXT record to publish for the key, "v=DKIM1; k=rsa; p=BASE64"
 * (p= the DER SubjectPublicKeyInfo) or "v=DKIM1; k=ed25519; p=BASE64"
 * (the raw 32-byte public key, RFC 8463), malloc'd (NULL for a key that
 * could not be read); and its name,
 * SELECTOR._domainkey.DOMAIN (-1 if it does not fit in size).
 */
char	*dkim_dns_record(const struct dkim_key *);
int	 dkim_dns_name(const struct dkim_key *, char *, size_t);

/*
 * The domain of the message's author: the message has exactly one From
 * field holding exactly one address (no group, no list), whose domain is
 * a host name; it is stored in lower case without a trailing dot.  -1
 * when any of that is not so: such a message is not signed.
 */
int	 dkim_from_domain(const char *msg, size_t len, char *domain,
	    size_t size);

/*
 * The keys that sign msg: every configured key of its From domain, in
 * the configuration's order (two: a domain signing with both kinds), at
 * most max of them stored in out; returns how many were stored.
 */
size_t	 dkim_keys_for_message(struct dkim_key *const *keys, size_t nkeys,
	    const char *msg, size_t len, const struct dkim_key **out,
	    size_t max);

/*
 * The DKIM-Signature field for msg signed with key at time now (t=):
 * folded, ending in CRLF, to be prepended to the message; malloc'd into
 * *field.  -1 with the reason in err only when the signing itself fails
 * or the key could not be read (dkim_config_add's exception).
 */
int	 dkim_sign(const struct dkim_key *, const char *msg, size_t len,
	    time_t now, char **field, size_t *fieldlen, char *err,
	    size_t errsize);

/*
 * The one call for acceptance: the DKIM-Signature fields of every key
 * dkim_keys_for_message picks (the first DKIM_MAX_SIGNATURES), joined,
 * in *fields (NULL, length 0, when none applies).  -1 with the reason in err as dkim_sign.
 */
int	 dkim_sign_message(struct dkim_key *const *keys, size_t nkeys,
	    const char *msg, size_t len, time_t now, char **fields,
	    size_t *fieldslen, char *err, size_t errsize);

/*
 * RFC 6376 relaxed canonicalization, malloc'd (never NULL): of one
 * header field as it stands in the message (name, colon, value, its
 * folding, its final CRLF if it has one), "name:value\r\n"; and of a
 * body (3.4.4; an empty result for a body of blank lines only).
 */
char	*dkim_canon_header(const char *field, size_t len, size_t *outlen);
char	*dkim_canon_body(const char *body, size_t len, size_t *outlen);

#endif
