/*
 * tlsa.h - TLSA records (RFC 6698) for DANE SMTP (RFC 7672), looked up
 * through the configured resolver with ldns.
 *
 * Trust: like Postfix and Exim, mxfb does not validate DNSSEC itself; it
 * asks with the DO bit and believes the AD bit of the configured
 * resolver, which must therefore be a validating resolver reached over
 * a trusted path (on this host: `resolver 127.0.0.1`).  An answer
 * without AD is insecure and, as RFC 7672 2.2 says, treated as if there
 * were no TLSA records at all.
 */
#ifndef MXFB_TLSA_H
#define MXFB_TLSA_H

#include <stddef.h>

#include "core/tls.h"

struct config;

enum tlsa_status {
	TLSA_FOUND,		/* a secure, non-empty TLSA RRset */
	TLSA_NONE,		/* secure denial, or an insecure answer */
	TLSA_TEMP		/* lookup failed: do not use this host now */
};

/*
 * The TLSA RRset of _port._tcp.host.  TLSA_FOUND fills *records (free
 * with tlsa_free()) and *n; the other outcomes leave them NULL and 0,
 * TLSA_TEMP with the reason in err, TLSA_NONE with why in err.
 */
enum tlsa_status tlsa_lookup(const struct config *, const char *host,
	    int port, struct tlsa_record **records, size_t *n, char *err,
	    size_t errsize);
void	 tlsa_free(struct tlsa_record *, size_t);

#endif
