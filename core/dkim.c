/*
 * dkim.c - DKIM signing (RFC 6376, RFC 8463): keys, canonicalization,
 * the DKIM-Signature field, the From domain, the TXT record.
 *
 * Guarantees: a key is only ever used as loaded by dkim_key_load (file
 * checked on the open descriptor, type and size checked); the message
 * is read as bytes with explicit lengths, never as a C string, so NULs,
 * bare CR or LF and unterminated lines cannot run past its end; every
 * buffer grows as needed (the message's size is receive's max-size
 * business, not ours); private keys are erased before their memory is
 * freed.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "core/config.h"
#include "core/dkim.h"
#include "core/log.h"
#include "core/util.h"

#define DKIM_FOLD_COLUMN	76	/* fold h= and b= before this */
#define DKIM_B64_CHUNK		64	/* b= characters per folded line */

struct dkim_key {
	char		 domain[DOMAIN_NAME_SIZE];	/* lower case */
	char		 selector[DOMAIN_NAME_SIZE];	/* lower case */
	size_t		 line;		/* of its `dkim` line, 0: none */
	int		 denied;	/* the key file: EACCES */
	char		*unread;	/* why the key could not be read
					   (not root, EACCES), else NULL */
	int		 ed25519;	/* else RSA */
	EVP_PKEY	*rsa;
	unsigned char	 ed_sk[crypto_sign_SECRETKEYBYTES];
	unsigned char	 ed_pk[crypto_sign_PUBLICKEYBYTES];
};

/* A growing byte buffer; p is NUL-terminated for convenience. */
struct buf {
	char	*p;
	size_t	 len, cap;
};

/* One header field: its bytes from the name to its final CRLF. */
struct field {
	const char	*p;
	size_t		 len;
	size_t		 namelen;	/* without trailing WSP; 0: no colon */
};

struct message {
	struct field	*fields;
	size_t		 nfields, cap;
	const char	*body;
	size_t		 bodylen;
};

/* Where canonical body bytes go: a buffer, or SHA-256. */
struct sink {
	void	(*add)(void *, const char *, size_t);
	void	*arg;
};

static const char *const signed_fields[] = { DKIM_SIGNED_FIELDS };
#define NSIGNED	(sizeof(signed_fields) / sizeof(signed_fields[0]))

static void	 buf_add(struct buf *, const void *, size_t);
static void	 buf_adds(struct buf *, const char *);
static void	 buf_sink(void *, const char *, size_t);
static void	 sha256_sink(void *, const char *, size_t);
static int	 is_wsp(int);
static size_t	 crlf_find(const char *, size_t, size_t);
static void	 message_parse(const char *, size_t, struct message *);
static int	 field_is(const struct field *, const char *);
static void	 canon_header_into(const char *, size_t, struct buf *);
static void	 canon_body_feed(const char *, size_t, const struct sink *);
static int	 skip_quoted(const char *, size_t, size_t *);
static int	 skip_comment(const char *, size_t, size_t *);
static int	 mailbox_spec(const char *, size_t, struct buf *);
static int	 spec_domain(const struct buf *, char *, size_t);
static void	 base64_add(struct buf *, const unsigned char *, size_t);
static void	 signature_head(const struct dkim_key *,
		    const struct message *, time_t, const char *,
		    struct buf *);
static void	 signed_headers(const struct message *, struct buf *);
static int	 sign_data(const struct dkim_key *, const char *, size_t,
		    unsigned char **, size_t *, char *, size_t);
static FILE	*key_open(struct dkim_key *, const char *, char *, size_t);
static int	 key_read(struct dkim_key *, const char *, char *, size_t);
static struct dkim_key *key_new(const char *, const char *, char *,
		    size_t);
static int	 name_check(const char *, char *, size_t);
static int	 no_passphrase(char *, int, int, void *);

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	size_t	 cap;

	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1) {
			if (cap > SIZE_MAX / 2) {
				cap = b->len + n + 1;
				break;
			}
			cap *= 2;
		}
		b->p = xreallocarray(b->p, cap, 1);
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void
buf_sink(void *arg, const char *p, size_t n)
{
	buf_add(arg, p, n);
}

static void
sha256_sink(void *arg, const char *p, size_t n)
{
	(void)crypto_hash_sha256_update(arg, (const unsigned char *)p, n);
}

static int
is_wsp(int c)
{
	return (c == ' ' || c == '\t');
}

/* The offset of the next CRLF at or after from, else len. */
static size_t
crlf_find(const char *p, size_t len, size_t from)
{
	const char	*q;
	size_t		 i = from, at;

	while (i < len && (q = memchr(p + i, '\n', len - i)) != NULL) {
		at = (size_t)(q - p);
		if (at > from && p[at - 1] == '\r')
			return (at - 1);
		i = at + 1;
	}
	return (len);
}

/*
 * Header fields up to the first empty line; the body after it (none
 * without one).  A line that starts with WSP continues the field before
 * it (and is dropped when there is none); a line without a colon is a
 * field with no name, which nothing matches.
 */
static void
message_parse(const char *msg, size_t len, struct message *m)
{
	struct field	*f;
	const char	*colon;
	size_t		 pos = 0, end, next;

	memset(m, 0, sizeof(*m));
	m->body = msg + len;
	while (pos < len) {
		end = crlf_find(msg, len, pos);
		next = end < len ? end + 2 : len;
		if (end == pos) {
			m->body = msg + next;
			m->bodylen = len - next;
			return;
		}
		if (is_wsp((unsigned char)msg[pos])) {
			if (m->nfields > 0)
				m->fields[m->nfields - 1].len =
				    (size_t)(msg + next -
				    m->fields[m->nfields - 1].p);
			pos = next;
			continue;
		}
		if (m->nfields == m->cap) {
			m->cap = m->cap ? m->cap * 2 : 32;
			m->fields = xreallocarray(m->fields, m->cap,
			    sizeof(*m->fields));
		}
		f = &m->fields[m->nfields++];
		f->p = msg + pos;
		f->len = next - pos;
		f->namelen = 0;
		if ((colon = memchr(msg + pos, ':', end - pos)) != NULL) {
			f->namelen = (size_t)(colon - f->p);
			while (f->namelen > 0 && is_wsp((unsigned char)
			    f->p[f->namelen - 1]))
				f->namelen--;
		}
		pos = next;
	}
}

static int
field_is(const struct field *f, const char *name)
{
	size_t	 n = strlen(name);

	return (f->namelen == n && strncasecmp(f->p, name, n) == 0);
}

/*
 * RFC 6376 3.4.2: name lower-cased, WSP around the colon removed,
 * CRLFs removed (unfolding), WSP runs made one SP, trailing WSP
 * removed; then CRLF.
 */
static void
canon_header_into(const char *f, size_t len, struct buf *out)
{
	const char	*colon, *v;
	size_t		 namelen = 0, i, vlen, run;
	int		 space = 0, any = 0;
	char		 c;

	if ((colon = memchr(f, ':', len)) != NULL) {
		namelen = (size_t)(colon - f);
		while (namelen > 0 && is_wsp((unsigned char)f[namelen - 1]))
			namelen--;
		for (i = 0; i < namelen; i++) {
			if (f[i] == '\r' && i + 1 < namelen &&
			    f[i + 1] == '\n') {
				i++;
				continue;
			}
			c = f[i];
			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			buf_add(out, &c, 1);
		}
		buf_add(out, ":", 1);
		v = colon + 1;
	} else
		v = f;
	vlen = len - (size_t)(v - f);
	for (i = 0; i < vlen; ) {
		if (v[i] == '\r' && i + 1 < vlen && v[i + 1] == '\n') {
			i += 2;
			continue;
		}
		if (is_wsp((unsigned char)v[i])) {
			space = 1;
			i++;
			continue;
		}
		for (run = i; run < vlen && !is_wsp((unsigned char)v[run]) &&
		    !(v[run] == '\r' && run + 1 < vlen && v[run + 1] == '\n');
		    run++)
			;
		if (space && any)
			buf_add(out, " ", 1);
		buf_add(out, v + i, run - i);
		space = 0;
		any = 1;
		i = run;
	}
	buf_add(out, "\r\n", 2);
}

/*
 * RFC 6376 3.4.4: WSP at line ends removed, WSP runs made one SP,
 * empty lines at the end removed, a missing final CRLF added.  Empty
 * lines are held back until a line with content follows them.
 */
static void
canon_body_feed(const char *b, size_t len, const struct sink *s)
{
	size_t	 i = 0, run, held = 0;
	int	 content = 0, space = 0;

	while (i < len) {
		if (b[i] == '\r' && i + 1 < len && b[i + 1] == '\n') {
			if (content)
				s->add(s->arg, "\r\n", 2);
			else
				held++;
			content = space = 0;
			i += 2;
			continue;
		}
		if (is_wsp((unsigned char)b[i])) {
			space = 1;
			i++;
			continue;
		}
		for (run = i; run < len && !is_wsp((unsigned char)b[run]) &&
		    !(b[run] == '\r' && run + 1 < len && b[run + 1] == '\n');
		    run++)
			;
		for (; !content && held > 0; held--)
			s->add(s->arg, "\r\n", 2);
		if (space)
			s->add(s->arg, " ", 1);
		s->add(s->arg, b + i, run - i);
		content = 1;
		space = 0;
		i = run;
	}
	if (content)
		s->add(s->arg, "\r\n", 2);
}

char *
dkim_canon_header(const char *field, size_t len, size_t *outlen)
{
	struct buf	 b;

	memset(&b, 0, sizeof(b));
	canon_header_into(field, len, &b);
	*outlen = b.len;
	return (b.p);
}

char *
dkim_canon_body(const char *body, size_t len, size_t *outlen)
{
	struct buf	 b;
	struct sink	 s = { buf_sink, &b };

	memset(&b, 0, sizeof(b));
	buf_add(&b, "", 0);
	canon_body_feed(body, len, &s);
	*outlen = b.len;
	return (b.p);
}

/* Past a quoted string starting at *i ('"'); -1 if it never ends. */
static int
skip_quoted(const char *v, size_t len, size_t *i)
{
	for ((*i)++; *i < len; (*i)++) {
		if (v[*i] == '\\')
			(*i)++;
		else if (v[*i] == '"')
			return (0);
	}
	return (-1);
}

/* Past a (possibly nested) comment starting at *i ('('). */
static int
skip_comment(const char *v, size_t len, size_t *i)
{
	size_t	 depth = 0;

	for (; *i < len; (*i)++) {
		if (v[*i] == '\\')
			(*i)++;
		else if (v[*i] == '(')
			depth++;
		else if (v[*i] == ')' && --depth == 0)
			return (0);
	}
	return (-1);
}

/*
 * The addr-spec of a From value holding one mailbox: the <...> part if
 * there is one (what precedes it is a display name), else the value;
 * comments, WSP and CRLF left out.  -1 for a list, a group, text after
 * <...>, or an unterminated quote, comment or angle bracket.
 */
static int
mailbox_spec(const char *v, size_t len, struct buf *spec)
{
	struct buf	 bare, angle;
	size_t		 i, start;
	int		 state = 0, rc = -1;	/* 1: in <>, 2: after <> */
	struct buf	*to;

	memset(&bare, 0, sizeof(bare));
	memset(&angle, 0, sizeof(angle));
	for (i = 0; i < len; i++) {
		to = state == 1 ? &angle : &bare;
		switch (v[i]) {
		case ' ': case '\t': case '\r': case '\n':
			continue;
		case '(':
			if (skip_comment(v, len, &i) == -1)
				goto done;
			continue;
		case '"':
			start = i;
			if (state == 2 || skip_quoted(v, len, &i) == -1)
				goto done;
			buf_add(to, v + start, i - start + 1);
			continue;
		case '<':
			if (state != 0)
				goto done;
			state = 1;
			continue;
		case '>':
			if (state != 1)
				goto done;
			state = 2;
			continue;
		case ',': case ';': case ':': case '\\':
			if (state != 1)
				goto done;
			break;
		default:
			if (state == 2)
				goto done;
			break;
		}
		buf_add(to, v + i, 1);
	}
	if (state == 1)
		goto done;
	to = state == 2 ? &angle : &bare;
	buf_add(spec, to->p, to->len);
	rc = 0;
done:
	free(bare.p);
	free(angle.p);
	return (rc);
}

/* The domain after the one '@' outside quotes: a host name. */
static int
spec_domain(const struct buf *spec, char *domain, size_t size)
{
	size_t	 i, at = 0, n = 0, dlen;

	for (i = 0; i < spec->len; i++) {
		if (spec->p[i] == '"') {
			if (skip_quoted(spec->p, spec->len, &i) == -1)
				return (-1);
		} else if (spec->p[i] == '@') {
			at = i;
			n++;
		}
	}
	if (n != 1 || at == 0)
		return (-1);
	dlen = spec->len - at - 1;
	if (dlen == 0 || dlen >= size ||
	    memchr(spec->p + at + 1, '\0', dlen) != NULL)
		return (-1);
	memcpy(domain, spec->p + at + 1, dlen);
	domain[dlen] = '\0';
	if (!hostname_valid(domain))
		return (-1);
	if (domain[dlen - 1] == '.')
		domain[dlen - 1] = '\0';
	(void)ascii_lower(domain);
	return (0);
}

int
dkim_from_domain(const char *msg, size_t len, char *domain, size_t size)
{
	struct message		 m;
	struct buf		 spec;
	const struct field	*from = NULL;
	const char		*v;
	size_t			 i;
	int			 rc = -1;

	message_parse(msg, len, &m);
	memset(&spec, 0, sizeof(spec));
	for (i = 0; i < m.nfields; i++) {
		if (!field_is(&m.fields[i], "from"))
			continue;
		if (from != NULL)
			goto done;
		from = &m.fields[i];
	}
	if (from == NULL)
		goto done;
	v = (const char *)memchr(from->p, ':', from->len) + 1;
	if (mailbox_spec(v, from->len - (size_t)(v - from->p), &spec) == -1)
		goto done;
	rc = spec_domain(&spec, domain, size);
done:
	free(spec.p);
	free(m.fields);
	return (rc);
}

size_t
dkim_keys_for_message(struct dkim_key *const *keys, size_t nkeys,
    const char *msg, size_t len, const struct dkim_key **out, size_t max)
{
	char	 domain[DOMAIN_NAME_SIZE];
	size_t	 i, n = 0;

	if (nkeys == 0 ||
	    dkim_from_domain(msg, len, domain, sizeof(domain)) == -1)
		return (0);
	for (i = 0; i < nkeys && n < max; i++)
		if (strcmp(keys[i]->domain, domain) == 0)
			out[n++] = keys[i];
	return (n);
}

static void
base64_add(struct buf *b, const unsigned char *p, size_t n)
{
	size_t	 size = sodium_base64_ENCODED_LEN(n,
	    sodium_base64_VARIANT_ORIGINAL);
	char	*s = xmalloc(size);

	(void)sodium_bin2base64(s, size, p, n, sodium_base64_VARIANT_ORIGINAL);
	buf_adds(b, s);
	free(s);
}

/*
 * The field up to "b=": v, a, c, d, s, t, h (every present instance of
 * the signed fields, From once more), bh; folded between tags and
 * between h= names.
 */
static void
signature_head(const struct dkim_key *key, const struct message *m,
    time_t now, const char *bh, struct buf *out)
{
	char	 t[64];
	size_t	 i, j, count, col;
	int	 first = 1;

	buf_adds(out, "DKIM-Signature: v=1; a=");
	buf_adds(out, dkim_key_algorithm(key));
	buf_adds(out, "; c=relaxed/relaxed; d=");
	buf_adds(out, key->domain);
	buf_adds(out, "; s=");
	buf_adds(out, key->selector);
	(void)snprintf(t, sizeof(t), ";\r\n\tt=%lld; h=", (long long)now);
	buf_adds(out, t);
	col = 8 + strlen(t) - 4;
	for (i = 0; i < NSIGNED; i++) {
		for (count = 0, j = 0; j < m->nfields; j++)
			count += field_is(&m->fields[j], signed_fields[i]);
		if (i == 0)
			count++;	/* From, oversigned */
		for (; count > 0; count--) {
			if (!first) {
				buf_add(out, ":", 1);
				col++;
			}
			if (col + strlen(signed_fields[i]) + 1 >
			    DKIM_FOLD_COLUMN) {
				buf_adds(out, "\r\n\t");
				col = 8;
			}
			buf_adds(out, signed_fields[i]);
			col += strlen(signed_fields[i]);
			first = 0;
		}
	}
	buf_adds(out, ";\r\n\tbh=");
	buf_adds(out, bh);
	buf_adds(out, ";\r\n\tb=");
}

/*
 * The signed fields in h= order, canonical: for each name, its
 * instances from the last up (RFC 6376 5.4.2); the oversigned From
 * adds nothing.
 */
static void
signed_headers(const struct message *m, struct buf *out)
{
	size_t	 i, j;

	for (i = 0; i < NSIGNED; i++)
		for (j = m->nfields; j > 0; j--)
			if (field_is(&m->fields[j - 1], signed_fields[i]))
				canon_header_into(m->fields[j - 1].p,
				    m->fields[j - 1].len, out);
}

static int
sign_data(const struct dkim_key *key, const char *data, size_t len,
    unsigned char **sig, size_t *siglen, char *err, size_t errsize)
{
	unsigned char	 digest[crypto_hash_sha256_BYTES];
	EVP_MD_CTX	*ctx;
	const char	*why = NULL;
	unsigned long	 e;

	if (key->ed25519) {
		/* RFC 8463 3: Ed25519 over the SHA-256 of the data. */
		(void)crypto_hash_sha256(digest, (const unsigned char *)data,
		    len);
		*sig = xmalloc(crypto_sign_BYTES);
		*siglen = crypto_sign_BYTES;
		(void)crypto_sign_detached(*sig, NULL, digest, sizeof(digest),
		    key->ed_sk);
		return (0);
	}
	*sig = NULL;
	ERR_clear_error();
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		goto fail;
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key->rsa) != 1 ||
	    EVP_DigestSign(ctx, NULL, siglen, (const unsigned char *)data,
	    len) != 1)
		goto fail;
	*sig = xmalloc(*siglen);
	if (EVP_DigestSign(ctx, *sig, siglen, (const unsigned char *)data,
	    len) != 1)
		goto fail;
	EVP_MD_CTX_free(ctx);
	return (0);
fail:
	if ((e = ERR_peek_last_error()) != 0)
		why = ERR_reason_error_string(e);
	(void)snprintf(err, errsize, "dkim: signing for %s with selector %s: "
	    "%s", key->domain, key->selector, why != NULL ? why :
	    "OpenSSL failed");
	EVP_MD_CTX_free(ctx);
	free(*sig);
	*sig = NULL;
	return (-1);
}

int
dkim_sign(const struct dkim_key *key, const char *msg, size_t len,
    time_t now, char **field, size_t *fieldlen, char *err, size_t errsize)
{
	crypto_hash_sha256_state st;
	struct sink	 s = { sha256_sink, &st };
	struct message	 m;
	struct buf	 bh, head, data, canon;
	unsigned char	 digest[crypto_hash_sha256_BYTES], *sig;
	size_t		 siglen, i, n;
	int		 rc = -1;

	if (key->unread != NULL) {
		(void)snprintf(err, errsize, "dkim %s %s: %s (not started as "
		    "root)", key->domain, key->selector, key->unread);
		return (-1);
	}
	memset(&bh, 0, sizeof(bh));
	memset(&head, 0, sizeof(head));
	memset(&data, 0, sizeof(data));
	memset(&canon, 0, sizeof(canon));
	message_parse(msg, len, &m);
	(void)crypto_hash_sha256_init(&st);
	canon_body_feed(m.body, m.bodylen, &s);
	(void)crypto_hash_sha256_final(&st, digest);
	base64_add(&bh, digest, sizeof(digest));
	signature_head(key, &m, now, bh.p, &head);
	signed_headers(&m, &data);
	/* The field itself, b= empty, canonical, without its CRLF. */
	canon_header_into(head.p, head.len, &canon);
	buf_add(&data, canon.p, canon.len - 2);
	if (sign_data(key, data.p, data.len, &sig, &siglen, err,
	    errsize) == -1)
		goto done;
	canon.len = 0;
	base64_add(&canon, sig, siglen);
	free(sig);
	for (i = 0; i < canon.len; i += n) {
		n = canon.len - i < DKIM_B64_CHUNK ? canon.len - i :
		    DKIM_B64_CHUNK;
		if (i > 0)
			buf_adds(&head, "\r\n\t");
		buf_add(&head, canon.p + i, n);
	}
	buf_adds(&head, "\r\n");
	*field = head.p;
	*fieldlen = head.len;
	head.p = NULL;
	rc = 0;
done:
	free(m.fields);
	free(bh.p);
	free(head.p);
	free(data.p);
	free(canon.p);
	return (rc);
}

int
dkim_sign_message(struct dkim_key *const *keys, size_t nkeys,
    const char *msg, size_t len, time_t now, char **fields,
    size_t *fieldslen, char *err, size_t errsize)
{
	const struct dkim_key	*use[DKIM_MAX_SIGNATURES];
	struct buf		 all;
	char			*one;
	size_t			 n, i, onelen;

	*fields = NULL;
	*fieldslen = 0;
	n = dkim_keys_for_message(keys, nkeys, msg, len, use,
	    sizeof(use) / sizeof(use[0]));
	memset(&all, 0, sizeof(all));
	for (i = 0; i < n; i++) {
		if (dkim_sign(use[i], msg, len, now, &one, &onelen, err,
		    errsize) == -1) {
			free(all.p);
			return (-1);
		}
		buf_add(&all, one, onelen);
		free(one);
	}
	*fields = all.p;
	*fieldslen = all.len;
	return (0);
}

const char *
dkim_key_domain(const struct dkim_key *k)
{
	return (k->domain);
}

const char *
dkim_key_selector(const struct dkim_key *k)
{
	return (k->selector);
}

const char *
dkim_key_algorithm(const struct dkim_key *k)
{
	return (k->ed25519 ? "ed25519-sha256" : "rsa-sha256");
}

char *
dkim_dns_record(const struct dkim_key *k)
{
	struct buf	 b;
	unsigned char	*der = NULL;
	int		 n;

	memset(&b, 0, sizeof(b));
	if (k->ed25519) {
		buf_adds(&b, "v=DKIM1; k=ed25519; p=");
		base64_add(&b, k->ed_pk, sizeof(k->ed_pk));
		return (b.p);
	}
	if ((n = i2d_PUBKEY(k->rsa, &der)) <= 0)
		return (NULL);
	buf_adds(&b, "v=DKIM1; k=rsa; p=");
	base64_add(&b, der, (size_t)n);
	OPENSSL_free(der);
	return (b.p);
}

int
dkim_dns_name(const struct dkim_key *k, char *buf, size_t size)
{
	if (bsnprintf(buf, size, "%s._domainkey.%s", k->selector,
	    k->domain) == -1)
		return (-1);
	return (0);
}

static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return (0);
}

/* The key file, refused unless a regular file only its owner writes
 * and others cannot read. */
static FILE *
key_open(struct dkim_key *k, const char *path, char *err, size_t errsize)
{
	struct stat	 st;
	FILE		*f;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		k->denied = errno == EACCES;
		(void)snprintf(err, errsize, "key %s: %s", path,
		    strerror(errno));
		return (NULL);
	}
	if (fstat(fd, &st) == -1) {
		(void)snprintf(err, errsize, "key %s: %s", path,
		    strerror(errno));
		(void)close(fd);
		return (NULL);
	}
	if (!S_ISREG(st.st_mode)) {
		(void)snprintf(err, errsize, "key %s: not a regular file",
		    path);
		(void)close(fd);
		return (NULL);
	}
	if ((st.st_mode & (S_IRWXO | S_IWGRP)) != 0) {
		(void)snprintf(err, errsize, "key %s: permissions %04o are "
		    "too open: others must have no access and only the "
		    "owner may write (chmod 600)", path,
		    (unsigned)(st.st_mode & 07777));
		(void)close(fd);
		return (NULL);
	}
	if ((f = fdopen(fd, "r")) == NULL) {
		(void)snprintf(err, errsize, "key %s: %s", path,
		    strerror(errno));
		(void)close(fd);
	}
	return (f);
}

static int
key_read(struct dkim_key *k, const char *path, char *err, size_t errsize)
{
	unsigned char	 seed[crypto_sign_SEEDBYTES];
	EVP_PKEY	*pkey;
	FILE		*f;
	size_t		 n = sizeof(seed);
	int		 bits;

	if ((f = key_open(k, path, err, errsize)) == NULL)
		return (-1);
	ERR_clear_error();
	pkey = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
	(void)fclose(f);
	if (pkey == NULL) {
		(void)snprintf(err, errsize, "key %s: no usable PEM private "
		    "key (a passphrase-protected key cannot be used)", path);
		return (-1);
	}
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		if ((bits = EVP_PKEY_get_bits(pkey)) < DKIM_RSA_MIN_BITS) {
			(void)snprintf(err, errsize, "key %s: RSA key of %d "
			    "bits, fewer than %d (2048 recommended)", path,
			    bits, DKIM_RSA_MIN_BITS);
			break;
		}
		k->rsa = pkey;
		return (0);
	case EVP_PKEY_ED25519:
		if (EVP_PKEY_get_raw_private_key(pkey, seed, &n) != 1 ||
		    n != sizeof(seed) ||
		    crypto_sign_seed_keypair(k->ed_pk, k->ed_sk, seed) != 0) {
			(void)snprintf(err, errsize, "key %s: unusable "
			    "Ed25519 key", path);
			explicit_bzero(seed, sizeof(seed));
			break;
		}
		explicit_bzero(seed, sizeof(seed));
		k->ed25519 = 1;
		EVP_PKEY_free(pkey);
		return (0);
	default:
		(void)snprintf(err, errsize, "key %s: neither an RSA nor an "
		    "Ed25519 private key", path);
		break;
	}
	EVP_PKEY_free(pkey);
	return (-1);
}

/* A domain or selector: a host name (selector: no final dot). */
static int
name_check(const char *s, char *out, size_t size)
{
	size_t	 len = strlen(s);

	if (!hostname_valid(s) || len >= size)
		return (-1);
	(void)strlcpy(out, s, size);
	if (out[len - 1] == '.')
		out[len - 1] = '\0';
	(void)ascii_lower(out);
	return (0);
}

/* A key without its key material: the names checked. */
static struct dkim_key *
key_new(const char *domain, const char *selector, char *err,
    size_t errsize)
{
	struct dkim_key	*k;
	char		 name[DOMAIN_NAME_SIZE];

	k = xcalloc(1, sizeof(*k));
	if (name_check(domain, k->domain, sizeof(k->domain)) == -1) {
		(void)snprintf(err, errsize, "invalid domain");
		goto fail;
	}
	if (name_check(selector, k->selector, sizeof(k->selector)) == -1 ||
	    selector[strlen(selector) - 1] == '.') {
		(void)snprintf(err, errsize, "invalid selector (DNS labels: "
		    "letters, digits, hyphens, dots)");
		goto fail;
	}
	if (dkim_dns_name(k, name, sizeof(name)) == -1 ||
	    strlen(name) > 253) {
		(void)snprintf(err, errsize, "SELECTOR._domainkey.DOMAIN is "
		    "longer than 253 characters");
		goto fail;
	}
	return (k);
fail:
	dkim_key_free(k);
	return (NULL);
}

struct dkim_key *
dkim_key_load(const char *domain, const char *selector, const char *path,
    char *err, size_t errsize)
{
	struct dkim_key	*k;

	if (sodium_init() == -1) {
		(void)snprintf(err, errsize, "libsodium cannot start");
		return (NULL);
	}
	if ((k = key_new(domain, selector, err, errsize)) == NULL)
		return (NULL);
	if (key_read(k, path, err, errsize) == -1) {
		dkim_key_free(k);
		return (NULL);
	}
	return (k);
}

void
dkim_key_free(struct dkim_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->rsa);
	free(k->unread);
	freezero(k, sizeof(*k));
}

void
dkim_keys_free(struct dkim_key **keys, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		dkim_key_free(keys[i]);
	free(keys);
}

int
dkim_config_add(struct dkim_key ***keys, size_t *nkeys, char **av, int ac,
    size_t line, char *err, size_t errsize)
{
	struct dkim_key	*k;
	char		 why[1400], dom[DOMAIN_NAME_SIZE], sel[DOMAIN_NAME_SIZE];
	char		 safe[2][128];
	size_t		 i;

	if (ac != 3) {
		(void)snprintf(err, errsize, "dkim: expected DOMAIN SELECTOR "
		    "KEYFILE");
		return (-1);
	}
	(void)log_safe(safe[0], sizeof(safe[0]), av[0]);
	(void)log_safe(safe[1], sizeof(safe[1]), av[1]);
	if (name_check(av[0], dom, sizeof(dom)) == 0 &&
	    name_check(av[1], sel, sizeof(sel)) == 0) {
		for (i = 0; i < *nkeys; i++) {
			if (strcmp((*keys)[i]->domain, dom) == 0 &&
			    strcmp((*keys)[i]->selector, sel) == 0) {
				(void)snprintf(err, errsize, "dkim: duplicate "
				    "domain %s selector %s (first on line "
				    "%zu)", dom, sel, (*keys)[i]->line);
				return (-1);
			}
		}
	}
	if (sodium_init() == -1) {
		(void)snprintf(err, errsize, "dkim: libsodium cannot start");
		return (-1);
	}
	if ((k = key_new(av[0], av[1], why, sizeof(why))) == NULL) {
		(void)snprintf(err, errsize, "dkim %s %s: %s", safe[0],
		    safe[1], why);
		return (-1);
	}
	/*
	 * Not root, a key we may not read: only root reads it, before the
	 * switch (the flush that ETRN starts runs as `user`); signing with
	 * it is what fails.  Every other fault is the configuration's.
	 */
	if (key_read(k, av[2], why, sizeof(why)) == -1) {
		if (!k->denied || geteuid() == 0) {
			(void)snprintf(err, errsize, "dkim %s %s: %s",
			    safe[0], safe[1], why);
			dkim_key_free(k);
			return (-1);
		}
		k->unread = xstrdup(why);
	}
	k->line = line;
	*keys = xreallocarray(*keys, *nkeys + 1, sizeof(**keys));
	(*keys)[(*nkeys)++] = k;
	return (0);
}
