/*
 * address.h - RFC 5321 mail paths and the rules about which of them a
 * backup MX may accept.  Pure functions over bounded strings: no I/O
 * except rcptlist_load(), no DNS, no configuration.
 *
 * Guarantees: a parsed address has a local part of at most 64 octets, a
 * domain of at most 255 and a path of at most 256 (RFC 5321 4.5.3.1);
 * it contains no control characters, and bytes >= 0x80 only when the
 * caller allowed UTF-8 (SMTPUTF8) and they form valid UTF-8.
 */
#ifndef MXFB_ADDRESS_H
#define MXFB_ADDRESS_H

#include <stddef.h>

#include "core/util.h"	/* DOMAIN_NAME_MAX, DOMAIN_NAME_SIZE */

#define ADDRESS_LOCAL_MAX	64
#define ADDRESS_PATH_MAX	256

struct address {
	int	 null;		/* the null path <> */
	int	 route;		/* had a source route <@a,@b:...> */
	int	 quoted;	/* local part was a quoted-string */
	int	 literal;	/* domain is an address literal [...] */
	int	 utf8;		/* contains bytes >= 0x80 */
	char	 local[ADDRESS_LOCAL_MAX + 1];	/* as written (quotes kept) */
	char	 local_plain[ADDRESS_LOCAL_MAX + 1]; /* quotes removed */
	char	 domain[DOMAIN_NAME_SIZE];	/* trailing dot removed */
	char	 addr[ADDRESS_PATH_MAX + 1];	/* local@domain, "" if null */
};

enum address_error {
	ADDRESS_OK = 0,
	ADDRESS_SYNTAX,		/* 501 5.1.3 / 5.1.7 */
	ADDRESS_TOO_LONG,	/* 501 5.1.3 (or 553) */
	ADDRESS_NEED_UTF8	/* 553 5.6.7: UTF-8 without SMTPUTF8 */
};

/*
 * Parse "<path>" at the start of s.  With allow_null, "<>" is accepted.
 * allow_utf8 permits UTF-8 in local part and domain (SMTPUTF8).  On
 * success *end points just after the '>'.
 */
enum address_error address_parse_path(const char *s, int allow_null,
	    int allow_utf8, struct address *, const char **end);

/* Human text for an error ("Bad recipient address syntax", ...). */
const char *address_error_text(enum address_error);

/*
 * The open-relay tricks a recipient must not use: a source route, '%'
 * or '!' in the local part (also inside quotes), '@' hidden in a quoted
 * local part, an address literal as domain.  Returns NULL when the
 * address is clean, or a short reason.
 */
const char *address_relay_trick(const struct address *);

/*
 * Does domain equal relay (case-insensitive, one trailing dot on
 * either ignored)?  Subdomains do not match.
 */
int	 address_domain_match(const char *domain, const char *relay);

/*
 * The domain of an address as flush groups recipients: the text after
 * the last '@', lower-cased, one trailing dot dropped, cut to size.
 * Returns -1 with buf "" when addr has no '@'.
 */
int	 address_domain_of(const char *addr, char *buf, size_t size);

/*
 * A domain an operator typed (flush -d, probe's arguments) as the
 * commands use it: one trailing dot dropped, lower-cased, cut to size.
 * Returns -1 with buf "" when nothing is left or it holds a '/' (the
 * spool names lock and note files after it).
 */
int	 address_domain_typed(const char *typed, char *buf, size_t size);

/*
 * The outage mailbox's names for addr (local@domain): the local part
 * without +tag, both lower-cased, as Dovecot's %Lu finds them.  -1 when
 * the local part is unsafe as a path component ('/', a leading '.',
 * blanks or control characters, quotes, over 64 octets) or the domain
 * is not a plain domain name.
 */
int	 address_mailbox_name(const char *addr, char *local, size_t lsize,
	    char *domain, size_t dsize);

/* A syntactically valid domain name (no literal, ASCII only)? */
int	 address_domain_valid(const char *);

/* Well-formed UTF-8 of len bytes (no overlongs, no surrogates)? */
int	 utf8_valid(const unsigned char *, size_t);

/*
 * Recipient lists: `user@domain` or `@domain` lines, '#' comments and
 * blank lines ignored.  Matching is case-insensitive in both parts, and
 * user+tag@domain matches user@domain.
 */
struct rcptlist;
/* Load from a file; NULL with errno set (and err filled) on failure. */
struct rcptlist *rcptlist_load(const char *path, char *err, size_t errsize);
/* Build from a NUL-terminated text (tests, fuzzing); never fails. */
struct rcptlist *rcptlist_parse(const char *text, size_t len);
int	 rcptlist_match(const struct rcptlist *, const char *local,
	    const char *domain);
/* How it matched: a `user@domain` line, or only an `@domain` line. */
enum rcptlist_how { RCPTLIST_NONE, RCPTLIST_USER, RCPTLIST_DOMAIN };
enum rcptlist_how rcptlist_match_how(const struct rcptlist *,
	    const char *local, const char *domain);
/*
 * Does addr get a copy in the outage mailbox?  Only when a `user@domain`
 * line names it (+tag aside; an `@domain` line is not enough) and its
 * mailbox name is safe (address_mailbox_name).  rl NULL: no.
 */
int	 mailbox_eligible(const struct rcptlist *, const char *addr);
size_t	 rcptlist_count(const struct rcptlist *);
void	 rcptlist_free(struct rcptlist *);

#endif
