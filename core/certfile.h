/*
 * certfile.h - what `mxfb check` needs to know of our own certificate
 * (tls-cert): the names it covers and when it expires.
 */
#ifndef MXFB_CERTFILE_H
#define MXFB_CERTFILE_H

#include <stddef.h>

struct cert_facts {
	int	 covers;		/* its names match the host asked */
	long	 expiry_days;		/* whole days left; < 0: expired */
	char	 not_after[64];		/* "2027-01-02 15:04:05 UTC" */
	char	 names[512];		/* "a.example, *.b.example", cut */
};

/*
 * The first certificate of a PEM file against host: the subject
 * alternative DNS names (else the CN) as a sender checks them (RFC
 * 6125: a wildcard only as the whole leftmost label).  0, or -1 with
 * err when the file cannot be read or holds no certificate.
 */
int	 certfile_facts(const char *path, const char *host,
	    struct cert_facts *, char *err, size_t errsize);

#endif
