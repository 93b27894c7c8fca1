/*
 * fuzz_spf.c - libFuzzer target for the SPF record parser and macro
 * expander (core/spf.c), the parts of `mxfb check` that read SPF
 * records from DNS.  The input is checked as a record, expanded as a
 * macro-string for an IPv4 and an IPv6 client, and evaluated as the
 * only TXT record of every name (so includes and redirects loop back
 * to it).  Checks: an expansion fits SPF_EXPAND_MAX and its buffer; a
 * record that is no v=spf1 record is none; one the parser refuses is
 * permerror; nothing reads past the input.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/spf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
static enum dns_status	 lookup(void *, const char *, enum spf_type,
			    struct spf_rrset *);

static const char	*record;
static size_t		 recordlen;

/* Every name has the input as TXT, 127.0.0.1, ::1, an MX and a PTR. */
static enum dns_status
lookup(void *arg, const char *name, enum spf_type t, struct spf_rrset *set)
{
	struct spf_rr	*r = &set->rr[0];

	(void)arg;
	if (strlen(name) > 253)
		abort();
	set->n = 1;
	switch (t) {
	case SPF_TXT:
		if ((r->text = malloc(recordlen + 1)) == NULL)
			abort();
		memcpy(r->text, record, recordlen);
		r->text[recordlen] = '\0';
		r->len = recordlen;
		break;
	case SPF_A:
		r->addr[0] = 127;
		r->addr[3] = 1;
		break;
	case SPF_AAAA:
		r->addr[15] = 1;
		break;
	case SPF_MX:
	case SPF_PTR:
		if ((r->text = strdup("mx.fuzz.test")) == NULL)
			abort();
		r->len = strlen(r->text);
		break;
	}
	return (DNS_OK);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char		*s = (const char *)data;
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	char			 out[SPF_EXPAND_MAX + 1], why[256];
	int			 ok, spf;
	enum spf_result		 r;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0x7f000001);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr.s6_addr[15] = 1;
	if (spf_expand(s, size, (struct sockaddr *)&sin,
	    "postmaster@fuzz.test", "fuzz.test", "backup.fuzz.test", size & 1,
	    out, sizeof(out), why, sizeof(why)) == 0 &&
	    strlen(out) > SPF_EXPAND_MAX)
		abort();
	if (spf_expand(s, size, (struct sockaddr *)&sin6,
	    "postmaster@fuzz.test", "fuzz.test", "backup.fuzz.test", 0,
	    out, 64, why, sizeof(why)) == 0 && strlen(out) >= 64)
		abort();
	ok = spf_record_check(s, size, why, sizeof(why)) == 0;
	spf = size >= 6 && strncasecmp(s, "v=spf1", 6) == 0 &&
	    (size == 6 || s[6] == ' ');
	record = s;
	recordlen = size;
	r = spf_check_host(lookup, NULL, (struct sockaddr *)&sin, "fuzz.test",
	    "postmaster@fuzz.test", "backup.fuzz.test", why, sizeof(why));
	if ((!spf && r != SPF_NONE) || (spf && !ok && r != SPF_PERMERROR) ||
	    r > SPF_PERMERROR || strlen(why) >= sizeof(why))
		abort();
	r = spf_check_host(lookup, NULL, (struct sockaddr *)&sin6,
	    "fuzz.test", "postmaster@fuzz.test", "backup.fuzz.test", why,
	    sizeof(why));
	if (r > SPF_PERMERROR)
		abort();
	return (0);
}
