/*
 * starttls.c - the client side of STARTTLS at a tls-outbound level.
 *
 * Guarantees: the level is applied here and only here (flush and probe
 * share it); the TLSA lookup of RFC 7672 happens before STARTTLS, and
 * its failure defers rather than falling back (2.2: "MUST NOT deliver");
 * plaintext the server sent after its 220 to STARTTLS ends the
 * connection (smtp_starttls) and the EHLO is repeated under TLS
 * (smtp_tls_started), so nothing learnt in clear is trusted afterwards.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/smtp_client.h"
#include "core/starttls.h"
#include "core/tls.h"
#include "core/tlsa.h"

static struct tls_client *context(const struct config *,
		    struct starttls_contexts *, enum tls_level, char *,
		    size_t);

void
starttls_contexts_free(struct starttls_contexts *sc)
{
	size_t	 i;

	for (i = 0; i < sizeof(sc->level) / sizeof(sc->level[0]); i++) {
		tls_client_free(sc->level[i]);
		sc->level[i] = NULL;
	}
}

static struct tls_client *
context(const struct config *c, struct starttls_contexts *sc,
    enum tls_level level, char *why, size_t whysize)
{
	char	 err[512];

	if (sc->level[level] == NULL && tls_client_new(level, c->tls_ciphers,
	    c->tls_ca_file, &sc->level[level], err, sizeof(err)) == -1) {
		(void)snprintf(why, whysize, "TLS setup failed: %s", err);
		return (NULL);
	}
	return (sc->level[level]);
}

enum starttls_outcome
starttls_client(struct smtp_conn *conn, const struct config *c,
    struct starttls_contexts *sc, enum tls_level level, const char *host,
    int port, const char *helo, int timeout, struct starttls_report *rep,
    char *why, size_t whysize)
{
	struct tlsa_record	*tlsa = NULL;
	struct tls_client	*tc;
	struct tls_conn		*tconn;
	struct smtp_client_io		 io;
	enum tlsa_status	 ts;
	enum starttls_outcome	 rc = STARTTLS_FAIL;
	size_t			 ntlsa = 0;
	char			 err[512];
	struct in6_addr		 a6;
	int			 required, refused, literal;

	memset(rep, 0, sizeof(*rep));
	if (whysize > 0)
		why[0] = '\0';
	rep->level = level;
	rep->offered = smtp_conn_ext(conn)->starttls;
	if (level == TLS_LEVEL_NONE)
		return (STARTTLS_OK);
	literal = inet_pton(AF_INET, host, &a6) == 1 ||
	    inet_pton(AF_INET6, host, &a6) == 1;
	if (level == TLS_LEVEL_DANE && literal) {
		(void)snprintf(rep->dane, sizeof(rep->dane), "no TLSA "
		    "records for an address literal");
		rep->level = TLS_LEVEL_MAY;
	} else if (level == TLS_LEVEL_DANE) {
		ts = tlsa_lookup(c, host, port, &tlsa, &ntlsa, err,
		    sizeof(err));
		if (ts == TLSA_TEMP) {
			(void)snprintf(why, whysize, "TLSA lookup for %s "
			    "failed: %s", host, err);
			return (STARTTLS_FAIL);
		}
		if (ts == TLSA_NONE) {
			/* RFC 7672 2.2: no secure TLSA, opportunistic. */
			(void)strlcpy(rep->dane, err, sizeof(rep->dane));
			rep->level = TLS_LEVEL_MAY;
		} else
			(void)snprintf(rep->dane, sizeof(rep->dane),
			    "%zu DNSSEC-validated TLSA record%s for "
			    "_%d._tcp.%s", ntlsa, ntlsa == 1 ? "" : "s", port,
			    host);
	}
	required = rep->level >= TLS_LEVEL_ENCRYPT;
	if (!rep->offered) {
		if (!required)
			return (STARTTLS_OK);
		(void)snprintf(why, whysize, "TLS is required (tls-outbound "
		    "%s) but %s offers no STARTTLS", tls_level_name(level),
		    smtp_conn_relay(conn));
		goto done;
	}
	if ((tc = context(c, sc, level, why, whysize)) == NULL)
		goto done;
	if (smtp_starttls(conn, &refused) == -1) {
		(void)strlcpy(why, smtp_conn_error(conn), whysize);
		/* A refusal (454) leaves may's plaintext session usable. */
		rc = refused && !required ? STARTTLS_OK : STARTTLS_FAIL;
		goto done;
	}
	if (tls_client_connect(tc, smtp_conn_fd(conn), host, host, tlsa,
	    rep->level == TLS_LEVEL_DANE ? ntlsa : 0, timeout,
	    &rep->info, &tconn, err, sizeof(err)) == -1) {
		rep->handshake = rep->info.protocol[0] != '\0';
		(void)snprintf(why, whysize, "TLS with %s failed: %s",
		    smtp_conn_relay(conn), err);
		rc = required ? STARTTLS_FAIL : STARTTLS_RETRY_PLAIN;
		goto done;
	}
	rep->handshake = 1;
	rep->info = *tls_conn_info(tconn);
	memset(&io, 0, sizeof(io));
	io.read = tls_read;
	io.write = tls_write;
	io.pending = tls_pending;
	io.close = tls_close;
	io.ctx = tconn;
	/* From here on smtp_close() frees tconn. */
	rep->active = 1;
	if (smtp_tls_started(conn, &io, helo) == -1) {
		(void)strlcpy(why, smtp_conn_error(conn), whysize);
		goto done;
	}
	rc = STARTTLS_OK;
done:
	tlsa_free(tlsa, ntlsa);
	return (rc);
}

void
starttls_describe(const struct starttls_report *rep, const char *relay,
    char *buf, size_t size)
{
	const struct tls_info	*ti = &rep->info;

	(void)snprintf(buf, size, "%s TLS connection established to %s: %s "
	    "with cipher %s (%d bits)%s%s", ti->verified ? (ti->dane ?
	    "Verified (DANE)" : "Verified") : "Untrusted", relay,
	    ti->protocol, ti->cipher, ti->bits, ti->verified ? "" : ": ",
	    ti->verified ? "" : ti->verify_error);
}
