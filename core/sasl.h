/*
 * sasl.h - the SASL mechanisms of SMTP AUTH (RFC 4954) that submission
 * offers: PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login), as
 * pure decoders of what the client sent.  They know nothing of accounts
 * or of the session: the engine (smtp_server.c) runs the exchange, the
 * caller checks the credentials.
 *
 * Guarantees: every field is bounded, NUL-free and NUL-terminated; the
 * base64 must be strict RFC 4648 (padding, no blanks, no other
 * characters) and the decoded text at most SASL_RESPONSE_MAX octets; a
 * PLAIN authzid is accepted only empty or equal to the authcid (we do not
 * let one account act for another).  Decoded secrets live only in the
 * caller's struct, which sasl_creds_clear wipes.
 */
#ifndef MXFB_SASL_H
#define MXFB_SASL_H

#include <stddef.h>

/*
 * RFC 4954 4: a server must take response lines of 12288 octets; longer
 * ones (CRLF included) are refused.  Decoded, that is at most 9216.
 */
#define SASL_LINE_MAX		12288
#define SASL_RESPONSE_MAX	9216
#define SASL_ID_MAX		320	/* authcid/authzid: an address */
#define SASL_PASSWORD_MAX	1024

enum sasl_mech {
	SASL_NONE = 0,
	SASL_PLAIN,
	SASL_LOGIN
};

enum sasl_result {
	SASL_OK = 0,
	SASL_BAD_BASE64 = -1,	/* 501 5.5.2: cannot decode */
	SASL_BAD_FORMAT = -2,	/* 535 5.7.8: not PLAIN's three fields,
				   an empty or overlong field, a NUL */
	SASL_BAD_AUTHZID = -3	/* 535 5.7.8: acting for another */
};

struct sasl_creds {
	char	 authcid[SASL_ID_MAX + 1];
	char	 password[SASL_PASSWORD_MAX + 1];
};

/* "PLAIN" or "LOGIN", any case; SASL_NONE for anything else. */
enum sasl_mech	 sasl_mech_parse(const char *, size_t len);
const char	*sasl_mech_name(enum sasl_mech);

/*
 * Strict base64 of len characters into out (size octets at most);
 * "=" alone (RFC 4954's empty initial response) is the empty string.
 * SASL_OK with *outlen set, or SASL_BAD_BASE64.
 */
enum sasl_result sasl_base64_decode(const char *in, size_t len,
	    unsigned char *out, size_t size, size_t *outlen);

/* A PLAIN response (base64 of authzid NUL authcid NUL password). */
enum sasl_result sasl_plain_decode(const char *b64, size_t len,
	    struct sasl_creds *);

/*
 * One LOGIN response (base64 of the user name or of the password) into
 * out (size octets with the NUL): no NUL inside, not empty.
 */
enum sasl_result sasl_login_decode(const char *b64, size_t len, char *out,
	    size_t size);

/* Wipe the credentials (and anything else that held a secret). */
void		 sasl_creds_clear(struct sasl_creds *);
void		 sasl_wipe(void *, size_t);

#endif
