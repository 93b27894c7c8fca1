/*
 * mtasts.h - MTA-STS (RFC 8461) as `mxfb check` needs it: the TXT
 * record at _mta-sts.DOMAIN, the policy file, the HTTP response that
 * carries it, the match of an `mx:` pattern against a host name (pure
 * parsers of outside input, unit-tested and fuzzed), and the fetch of
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt (mtasts_fetch.c).
 */
#ifndef MXFB_MTASTS_H
#define MXFB_MTASTS_H

#include <stddef.h>

#include "core/util.h"

struct dns_resolver;

/* RFC 8461 3.3 lets senders stop at 64 KiB; so do we. */
#define MTASTS_POLICY_MAX	65536
/* The HTTP status line and headers in front of it. */
#define MTASTS_HEADER_MAX	8192
/* mx patterns kept from one policy (more is an error). */
#define MTASTS_MX_MAX		64
/* RFC 8461 3.2: max_age is at most 31557600 seconds (a year). */
#define MTASTS_MAX_AGE_MAX	31557600L
/* The id of a TXT record: 1 to 32 letters and digits. */
#define MTASTS_ID_SIZE		33

enum mtasts_mode {
	MTASTS_MODE_NONE,
	MTASTS_MODE_TESTING,
	MTASTS_MODE_ENFORCE
};

struct mtasts_policy {
	enum mtasts_mode mode;
	long		 max_age;
	size_t		 nmx;
	/* lower case; "*.example.com" for a wildcard */
	char		 mx[MTASTS_MX_MAX][DOMAIN_NAME_SIZE];
};

/*
 * One TXT record's text (its strings joined): 0 when it is a valid
 * "v=STSv1; id=..." record (RFC 8461 3.1), id set; 1 when it does not
 * start with "v=STSv1" (another record, senders discard it); -1 when
 * it does but is not valid, why set.
 */
int	 mtasts_txt_parse(const char *, size_t, char *id, size_t idsize,
	    char *why, size_t);

/*
 * The policy file's text (RFC 8461 3.2: "key: value" lines, LF or
 * CRLF): 0 with *p filled when it has exactly one version (STSv1),
 * mode and max_age and, unless mode is none, one to MTASTS_MX_MAX
 * valid mx patterns; unknown keys are ignored.  -1 with why otherwise.
 */
int	 mtasts_policy_parse(const char *, size_t, struct mtasts_policy *,
	    char *why, size_t);

/*
 * The HTTP/1.x response as received: 0 with *body, *bodylen pointing
 * into buf when the status is 200, the media type text/plain, the body
 * no longer than MTASTS_POLICY_MAX and as long as a Content-Length
 * says; -1 with why (a redirect is named and not followed, RFC 8461
 * 3.3).
 */
int	 mtasts_http_parse(const char *buf, size_t len, const char **body,
	    size_t *bodylen, char *why, size_t);

/*
 * Does an mx pattern match host (RFC 8461 3.4)?  Case-insensitive, a
 * final dot ignored; "*.example.com" matches exactly one more label
 * ("mx.example.com", not "example.com" nor "a.mx.example.com").
 */
int	 mtasts_mx_match(const char *pattern, const char *host);

const char *mtasts_mode_name(enum mtasts_mode);

/*
 * GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt: the name's
 * addresses through the resolver (port 443), TLS 1.2+ with the
 * certificate verified against cafile (NULL or "": the system store)
 * and the name mta-sts.DOMAIN, HTTP/1.0 without redirects, at most
 * MTASTS_POLICY_MAX bytes, everything within timeout seconds.  0 with
 * the policy's text in *body (free it; NUL-terminated, *len bytes), or
 * -1 with why.
 */
int	 mtasts_fetch(struct dns_resolver *, const char *domain,
	    const char *cafile, const char *ciphers, int timeout,
	    char **body, size_t *len, char *why, size_t);

#endif
