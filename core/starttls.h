/*
 * starttls.h - STARTTLS on an SMTP client connection, at a tls-outbound
 * level (RFC 3207, RFC 7435 opportunistic TLS, RFC 7672 DANE).
 *
 * The one place that decides, after EHLO, whether a connection to a
 * primary may carry mail: under none it stays plaintext; under may it
 * gets TLS when offered and stays plaintext otherwise; encrypt, verify
 * and dane with usable TLSA records never go on without TLS, and verify
 * and dane never without the authentication they ask for.  A failure is
 * a reason to defer, never a downgrade.
 */
#ifndef MXFB_STARTTLS_H
#define MXFB_STARTTLS_H

#include <stddef.h>

#include "core/tls.h"

struct config;
struct smtp_conn;

/* Client contexts made on first use, one per level; zero to start. */
struct starttls_contexts {
	struct tls_client	*level[TLS_LEVEL_DANE + 1];
};
void	 starttls_contexts_free(struct starttls_contexts *);

/* What happened, for logs and probe. */
struct starttls_report {
	enum tls_level	 level;		/* in effect (dane may become may) */
	int		 offered;	/* EHLO listed STARTTLS */
	int		 handshake;	/* a handshake finished: info is set */
	int		 active;	/* the connection now runs over TLS */
	struct tls_info	 info;
	char		 dane[256];	/* what the TLSA lookup found, or "" */
};

enum starttls_outcome {
	STARTTLS_OK,		/* use the connection (TLS or plaintext) */
	STARTTLS_RETRY_PLAIN,	/* may: handshake failed; reconnect and
				   go on without STARTTLS */
	STARTTLS_FAIL		/* defer; the connection is useless */
};

/*
 * After smtp_greet(): STARTTLS at level on conn to the MX host (port
 * for the TLSA name; an address as host has no TLSA records), a
 * handshake of at most timeout seconds, then EHLO helo again.  why gets the reason for STARTTLS_FAIL and
 * STARTTLS_RETRY_PLAIN, and for a may-level STARTTLS_OK that stayed in
 * plaintext after the server refused STARTTLS ("" otherwise).
 */
enum starttls_outcome starttls_client(struct smtp_conn *,
	    const struct config *, struct starttls_contexts *, enum tls_level,
	    const char *host, int port, const char *helo, int timeout,
	    struct starttls_report *, char *why, size_t);

/* "Verified TLS connection ... TLSv1.3 with cipher X (256 bits)". */
void	 starttls_describe(const struct starttls_report *, const char *relay,
	    char *, size_t);

#endif
