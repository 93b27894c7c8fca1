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

struct dns_resolver;

/*
 * For `mxfb check`: the TLSA RRset of _port._tcp.host through dr,
 * validated or not (*secure: the resolver set AD).  TLSA_NONE when
 * there are none (or the name does not exist); as tlsa_lookup else.
 */
enum tlsa_status tlsa_lookup_any(struct dns_resolver *, const char *host,
	    int port, struct tlsa_record **, size_t *n, int *secure,
	    char *err, size_t errsize);

/*
 * How many of the records match the certificate chain in a PEM file
 * (the leaf first, as tls-cert holds it): DANE-EE(3) the leaf, DANE-TA
 * (2) a certificate after it; selector 0 the whole certificate, 1 its
 * public key (SPKI); matching type 0 exact, 1 SHA-256, 2 SHA-512.  The
 * PKIX usages (0, 1) never match (RFC 7672 3.1.3).  -1 with err when
 * the file holds no certificate.
 */
int	 tlsa_match_chain_file(const struct tlsa_record *, size_t,
	    const char *path, char *err, size_t errsize);

/*
 * The "3 1 1" record data of the first certificate in a PEM file: the
 * SHA-256 of its public key (SPKI) in lower-case hex (65 bytes with
 * the NUL).  0, or -1 with err.
 */
int	 tlsa_spki_sha256_file(const char *path, char *hex, size_t hexsize,
	    char *err, size_t errsize);

#endif
