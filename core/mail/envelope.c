/*
 * envelope.c - the mail model's envelope in memory and as text
 * (spool/INTERNALS, section 3): the trailer of every message file ("V1")
 * and the state file ("S1").  No file is touched here.
 *
 * Guarantees: encode then decode gives back every field; values are
 * %XX-escaped so that no byte of a value can end or split a line;
 * envelope_decode accepts only what envelope_encode can produce (one
 * canonical form) and fails cleanly, freeing what it built, on anything
 * else: it reads files that may be torn and it is fuzzed.
 */
#include <sys/types.h>

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mail/envelope.h"
#include "core/util.h"

enum field_type {
	F_STR,		/* char *, escaped */
	F_ID,		/* queue ID */
	F_TIME,		/* time_t >= 0 */
	F_INT,		/* int >= 0 */
	F_BOOL,		/* int 0 or 1 */
	F_FLAG,		/* int 0 or 1, written only when 1 (absent: 0) */
	F_U64,		/* uint64_t */
	F_NOTIFY,	/* NOTIFY_* bits */
	F_RET,		/* enum dsn_ret, "full" or "hdrs" */
	F_STATE,	/* enum rcpt_state by name */
	F_SUM		/* 32 bytes as 64 hex digits */
};

enum field_scope { S_ENV, S_RCPT };

struct field {
	const char	*name;
	enum field_scope scope;
	enum field_type	 type;
	size_t		 off;
	int		 mutable;	/* kept in the state file */
	int		 mandatory;	/* in a V1 envelope */
};

#define E(n, t, m, mut, man)	{ n, S_ENV, t, offsetof(struct envelope, m), \
				    mut, man }
#define R(n, t, m, mut)		{ n, S_RCPT, t, \
				    offsetof(struct recipient, m), mut, 0 }

/* In encoding order; envelope keys precede every recipient. */
static const struct field fields[] = {
	E("id",			F_ID,	id,		0, 1),
	E("arrival",		F_TIME,	arrival,	0, 1),
	E("sender",		F_STR,	sender,		0, 1),
	E("client-addr",	F_STR,	client_addr,	0, 0),
	E("client-name",	F_STR,	client_name,	0, 0),
	E("envid",		F_STR,	envid,		0, 0),
	E("ret",		F_RET,	ret,		0, 0),
	E("smtputf8",		F_BOOL,	smtputf8,	0, 0),
	E("8bitmime",		F_BOOL,	eightbit,	0, 0),
	E("verified",		F_BOOL,	verified,	0, 0),
	E("about",		F_STR,	about,		0, 0),
	E("checksum",		F_SUM,	checksum,	0, 1),
	E("size",		F_U64,	size,		0, 1),
	E("next-retry",		F_TIME,	next_retry,	1, 0),
	E("warned",		F_BOOL,	warned,		1, 0),
	R("orcpt",		F_STR,	orcpt,		0),
	R("notify",		F_NOTIFY, notify,	0),
	R("mailbox",		F_FLAG,	mailbox,	0),
	R("state",		F_STATE, state,		1),
	R("attempts",		F_INT,	attempts,	1),
	R("last-attempt",	F_TIME,	last_attempt,	1),
	R("last-error",		F_STR,	last_error,	1),
	R("remote-mta",		F_STR,	remote_mta,	1),
	R("status",		F_STR,	status,		1),
	R("reported",		F_BOOL,	reported,	1),
	R("relayed",		F_FLAG,	relayed,	1),
};
#define NFIELDS	(sizeof(fields) / sizeof(fields[0]))

static const char *state_names[] = {
	"queued", "deferred", "delivered", "failed"
};

struct buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

static void	 buf_grow(struct buf *, size_t);
static void	 buf_add(struct buf *, const void *, size_t);
static void	 buf_str(struct buf *, const char *);
static void	 buf_escaped(struct buf *, const char *);
static void	 buf_u64(struct buf *, uint64_t);
static void	 encode_field(struct buf *, const struct field *, const void *);
static int	 encode(const struct envelope *, int, char **, size_t *);
static int	 hexval(int);
static char	*unescape(const char *, size_t);
static int	 parse_u64(const char *, size_t, uint64_t, uint64_t *);
static int	 decode_field(const struct field *, void *, const char *,
		    size_t);
static int	 decode(const char *, size_t, int, struct envelope *);
static void	 recipient_free(struct recipient *);

const char *
rcpt_state_name(enum rcpt_state s)
{
	if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
		return ("unknown");
	return (state_names[s]);
}

int
rcpt_report_owed(const struct recipient *r)
{
	if (r->reported)
		return (0);
	return (r->state == RCPT_FAILED ||
	    (r->state == RCPT_DELIVERED && r->relayed));
}

int
rcpt_finished(const struct recipient *r)
{
	return ((r->state == RCPT_DELIVERED || r->state == RCPT_FAILED) &&
	    !rcpt_report_owed(r));
}

int
rcpt_pending(const struct recipient *r)
{
	return (r->state == RCPT_QUEUED || r->state == RCPT_DEFERRED);
}

int
envelope_finished(const struct envelope *env)
{
	size_t	 i;

	for (i = 0; i < env->nrcpts; i++)
		if (!rcpt_finished(&env->rcpts[i]))
			return (0);
	return (1);
}

struct recipient *
envelope_add_recipient(struct envelope *env, const char *addr)
{
	struct recipient	*r;

	env->rcpts = xreallocarray(env->rcpts, env->nrcpts + 1,
	    sizeof(*env->rcpts));
	r = &env->rcpts[env->nrcpts++];
	memset(r, 0, sizeof(*r));
	r->addr = xstrdup(addr);
	r->state = RCPT_QUEUED;
	return (r);
}

static void
recipient_free(struct recipient *r)
{
	free(r->addr);
	free(r->orcpt);
	free(r->last_error);
	free(r->remote_mta);
	free(r->status);
}

void
envelope_free(struct envelope *env)
{
	size_t	 i;

	if (env == NULL)
		return;
	for (i = 0; i < env->nrcpts; i++)
		recipient_free(&env->rcpts[i]);
	free(env->rcpts);
	free(env->sender);
	free(env->client_addr);
	free(env->client_name);
	free(env->envid);
	free(env->about);
	memset(env, 0, sizeof(*env));
}

/* Encoding. */

static void
buf_grow(struct buf *b, size_t more)
{
	size_t	 cap;

	if (b->len + more <= b->cap)
		return;
	cap = b->cap ? b->cap : 512;
	while (cap < b->len + more)
		cap *= 2;
	b->p = xreallocarray(b->p, cap, 1);
	b->cap = cap;
}

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	buf_grow(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void
buf_escaped(struct buf *b, const char *s)
{
	static const char	 hex[] = "0123456789ABCDEF";
	const unsigned char	*p;
	char			 esc[3];

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p <= 0x20 || *p == 0x7f || *p == '%') {
			esc[0] = '%';
			esc[1] = hex[*p >> 4];
			esc[2] = hex[*p & 15];
			buf_add(b, esc, 3);
		} else
			buf_add(b, p, 1);
	}
}

static void
buf_u64(struct buf *b, uint64_t v)
{
	char	 tmp[24];
	int	 i = sizeof(tmp);

	do {
		tmp[--i] = '0' + (char)(v % 10);
		v /= 10;
	} while (v != 0);
	buf_add(b, tmp + i, sizeof(tmp) - (size_t)i);
}

static void
encode_field(struct buf *b, const struct field *f, const void *base)
{
	const char	*p = (const char *)base + f->off;
	const char	*s;
	int64_t		 t;
	int		 v, i;

	switch (f->type) {
	case F_STR:
		memcpy(&s, p, sizeof(s));
		if (s == NULL)
			return;
		buf_str(b, f->name);
		buf_add(b, " ", 1);
		buf_escaped(b, s);
		break;
	case F_ID:
		buf_str(b, f->name);
		buf_add(b, " ", 1);
		buf_escaped(b, p);
		break;
	case F_TIME:
		t = (int64_t)*(const time_t *)(const void *)p;
		buf_str(b, f->name);
		buf_add(b, " ", 1);
		buf_u64(b, t < 0 ? 0 : (uint64_t)t);
		break;
	case F_INT:
	case F_BOOL:
	case F_FLAG:
	case F_NOTIFY:
		memcpy(&v, p, sizeof(v));
		if (f->type == F_BOOL || f->type == F_FLAG)
			v = v != 0;
		if (f->type == F_FLAG && v == 0)
			return;
		buf_str(b, f->name);
		buf_add(b, " ", 1);
		buf_u64(b, v < 0 ? 0 : (uint64_t)v);
		break;
	case F_U64:
		buf_str(b, f->name);
		buf_add(b, " ", 1);
		buf_u64(b, *(const uint64_t *)(const void *)p);
		break;
	case F_RET:
		memcpy(&v, p, sizeof(v));
		if (v == RET_UNSET)
			return;
		buf_str(b, f->name);
		buf_str(b, v == RET_HDRS ? " hdrs" : " full");
		break;
	case F_STATE:
		memcpy(&v, p, sizeof(v));
		buf_str(b, f->name);
		buf_add(b, " ", 1);
		buf_str(b, rcpt_state_name((enum rcpt_state)v));
		break;
	case F_SUM:
		buf_str(b, f->name);
		buf_add(b, " ", 1);
		for (i = 0; i < 32; i++) {
			static const char hex[] = "0123456789abcdef";
			unsigned char c = (unsigned char)p[i];

			buf_add(b, &hex[c >> 4], 1);
			buf_add(b, &hex[c & 15], 1);
		}
		break;
	}
	buf_add(b, "\n", 1);
}

static int
encode(const struct envelope *env, int state_only, char **out, size_t *outlen)
{
	struct buf	 b;
	size_t		 i, r;

	memset(&b, 0, sizeof(b));
	for (r = 0; r < env->nrcpts; r++) {
		if (env->rcpts[r].addr == NULL ||
		    env->rcpts[r].addr[0] == '\0' ||
		    (unsigned)env->rcpts[r].state > RCPT_FAILED) {
			errno = EINVAL;
			return (-1);
		}
	}
	if (!state_only && (env->sender == NULL || env->nrcpts == 0)) {
		errno = EINVAL;
		return (-1);
	}
	buf_str(&b, state_only ? "S1\n" : "V1\n");
	for (i = 0; i < NFIELDS; i++)
		if (fields[i].scope == S_ENV &&
		    (!state_only || fields[i].mutable))
			encode_field(&b, &fields[i], env);
	for (r = 0; r < env->nrcpts; r++) {
		buf_str(&b, "rcpt ");
		buf_escaped(&b, env->rcpts[r].addr);
		buf_add(&b, "\n", 1);
		for (i = 0; i < NFIELDS; i++)
			if (fields[i].scope == S_RCPT &&
			    (!state_only || fields[i].mutable))
				encode_field(&b, &fields[i], &env->rcpts[r]);
	}
	buf_str(&b, "end\n");
	*out = b.p;
	*outlen = b.len;
	return (0);
}

int
envelope_encode(const struct envelope *env, char **out, size_t *outlen)
{
	return (encode(env, 0, out, outlen));
}

int
envelope_state_encode(const struct envelope *env, char **out, size_t *outlen)
{
	return (encode(env, 1, out, outlen));
}

/* Decoding. */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);
	return (-1);
}

/* The value of a line, unescaped and NUL-terminated, or NULL if bad. */
static char *
unescape(const char *s, size_t len)
{
	char	*out, *o;
	size_t	 i;
	int	 hi, lo;

	o = out = xmalloc(len + 1);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c == 0x7f)
			goto bad;
		if (c != '%') {
			*o++ = (char)c;
			continue;
		}
		if (len - i < 3 ||
		    (hi = hexval((unsigned char)s[i + 1])) == -1 ||
		    (lo = hexval((unsigned char)s[i + 2])) == -1)
			goto bad;
		c = (unsigned char)(hi << 4 | lo);
		/* Only what the encoder escapes, so there is one form. */
		if (c == 0 || (c > 0x20 && c != 0x7f && c != '%'))
			goto bad;
		*o++ = (char)c;
		i += 2;
	}
	*o = '\0';
	return (out);
bad:
	free(out);
	return (NULL);
}

/* Canonical decimal: digits only, no leading zero, at most max. */
static int
parse_u64(const char *s, size_t len, uint64_t max, uint64_t *res)
{
	uint64_t	 v = 0;
	size_t		 i;

	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return (-1);
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (-1);
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return (-1);
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return (-1);
	*res = v;
	return (0);
}

static int
decode_field(const struct field *f, void *base, const char *v, size_t vlen)
{
	char		*p = (char *)base + f->off;
	char		*s;
	uint64_t	 n;
	time_t		 t;
	int		 iv, i, hi, lo;
	size_t		 k;

	switch (f->type) {
	case F_STR:
		if ((s = unescape(v, vlen)) == NULL)
			return (-1);
		memcpy(p, &s, sizeof(s));
		return (0);
	case F_ID:
		if (vlen != QUEUE_ID_LEN)
			return (-1);
		memcpy(p, v, QUEUE_ID_LEN);
		p[QUEUE_ID_LEN] = '\0';
		return (queue_id_valid(p) ? 0 : -1);
	case F_TIME:
		if (parse_u64(v, vlen, INT64_MAX, &n) == -1)
			return (-1);
		t = (time_t)n;
		memcpy(p, &t, sizeof(t));
		return (0);
	case F_INT:
	case F_BOOL:
	case F_FLAG:
	case F_NOTIFY:
		if (parse_u64(v, vlen, f->type == F_BOOL ||
		    f->type == F_FLAG ? 1 :
		    f->type == F_NOTIFY ? 15 : INT32_MAX, &n) == -1)
			return (-1);
		iv = (int)n;
		memcpy(p, &iv, sizeof(iv));
		return (0);
	case F_U64:
		if (parse_u64(v, vlen, UINT64_MAX, &n) == -1)
			return (-1);
		memcpy(p, &n, sizeof(n));
		return (0);
	case F_RET:
		if (vlen == 4 && memcmp(v, "full", 4) == 0)
			iv = RET_FULL;
		else if (vlen == 4 && memcmp(v, "hdrs", 4) == 0)
			iv = RET_HDRS;
		else
			return (-1);
		memcpy(p, &iv, sizeof(iv));
		return (0);
	case F_STATE:
		for (k = 0; k < sizeof(state_names) / sizeof(state_names[0]);
		    k++)
			if (strlen(state_names[k]) == vlen &&
			    memcmp(state_names[k], v, vlen) == 0)
				break;
		if (k == sizeof(state_names) / sizeof(state_names[0]))
			return (-1);
		iv = (int)k;
		memcpy(p, &iv, sizeof(iv));
		return (0);
	case F_SUM:
		if (vlen != 64)
			return (-1);
		for (i = 0; i < 32; i++) {
			hi = v[2 * i];
			lo = v[2 * i + 1];
			hi = hi >= 'a' && hi <= 'f' ? hi - 'a' + 10 :
			    hi >= '0' && hi <= '9' ? hi - '0' : -1;
			lo = lo >= 'a' && lo <= 'f' ? lo - 'a' + 10 :
			    lo >= '0' && lo <= '9' ? lo - '0' : -1;
			if (hi == -1 || lo == -1)
				return (-1);
			p[i] = (char)(hi << 4 | lo);
		}
		return (0);
	}
	return (-1);
}

/*
 * One parser for both forms.  state_only: "S1" and only mutable keys.
 * On failure env is freed and zeroed, errno EBADMSG.
 */
static int
decode(const char *buf, size_t len, int state_only, struct envelope *env)
{
	const char		*line, *nl, *sp, *val;
	const struct field	*f;
	struct recipient	*r = NULL;
	uint32_t		 seen_env = 0, seen_rcpt = 0;
	size_t			 pos, llen, klen, vlen, i;
	char			*addr;
	int			 ended = 0;

	memset(env, 0, sizeof(*env));
	if (len < 3 || memcmp(buf, state_only ? "S1\n" : "V1\n", 3) != 0)
		goto bad;
	for (pos = 3; pos < len; pos += llen + 1) {
		line = buf + pos;
		if (ended ||
		    (nl = memchr(line, '\n', len - pos)) == NULL)
			goto bad;
		llen = (size_t)(nl - line);
		if (llen == 3 && memcmp(line, "end", 3) == 0) {
			ended = 1;
			continue;
		}
		if ((sp = memchr(line, ' ', llen)) == NULL)
			goto bad;
		klen = (size_t)(sp - line);
		val = sp + 1;
		vlen = llen - klen - 1;

		if (klen == 4 && memcmp(line, "rcpt", 4) == 0) {
			if ((addr = unescape(val, vlen)) == NULL)
				goto bad;
			if (addr[0] == '\0' || env->nrcpts >= 1000000) {
				free(addr);
				goto bad;
			}
			r = envelope_add_recipient(env, addr);
			free(addr);
			seen_rcpt = 0;
			continue;
		}
		for (i = 0; i < NFIELDS; i++)
			if (strlen(fields[i].name) == klen &&
			    memcmp(fields[i].name, line, klen) == 0)
				break;
		if (i == NFIELDS)
			goto bad;
		f = &fields[i];
		if (state_only && !f->mutable)
			goto bad;
		if (f->scope == S_ENV) {
			if (r != NULL || (seen_env & (1U << i)))
				goto bad;
			seen_env |= 1U << i;
			if (decode_field(f, env, val, vlen) == -1)
				goto bad;
		} else {
			if (r == NULL || (seen_rcpt & (1U << i)))
				goto bad;
			seen_rcpt |= 1U << i;
			if (decode_field(f, r, val, vlen) == -1)
				goto bad;
		}
	}
	if (!ended)
		goto bad;
	if (!state_only) {
		for (i = 0; i < NFIELDS; i++)
			if (fields[i].mandatory && !(seen_env & (1U << i)))
				goto bad;
		if (env->nrcpts == 0)
			goto bad;
	}
	return (0);
bad:
	envelope_free(env);
	errno = EBADMSG;
	return (-1);
}

int
envelope_decode(const char *buf, size_t len, struct envelope *env)
{
	return (decode(buf, len, 0, env));
}

int
envelope_state_merge(struct envelope *env, const char *buf, size_t len)
{
	struct envelope		 st;
	struct recipient	*a, *b;
	size_t			 i;

	if (decode(buf, len, 1, &st) == -1)
		return (-1);
	if (st.nrcpts != env->nrcpts)
		goto bad;
	for (i = 0; i < env->nrcpts; i++)
		if (strcmp(st.rcpts[i].addr, env->rcpts[i].addr) != 0)
			goto bad;
	env->next_retry = st.next_retry;
	env->warned = st.warned;
	for (i = 0; i < env->nrcpts; i++) {
		a = &env->rcpts[i];
		b = &st.rcpts[i];
		a->state = b->state;
		a->attempts = b->attempts;
		a->last_attempt = b->last_attempt;
		a->reported = b->reported;
		a->relayed = b->relayed;
		free(a->last_error);
		free(a->remote_mta);
		free(a->status);
		a->last_error = b->last_error;
		a->remote_mta = b->remote_mta;
		a->status = b->status;
		b->last_error = b->remote_mta = b->status = NULL;
	}
	envelope_free(&st);
	return (0);
bad:
	envelope_free(&st);
	errno = EBADMSG;
	return (-1);
}
