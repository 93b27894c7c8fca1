/*
 * tlsa.c - the TLSA lookup for DANE, through ldns.
 *
 * Guarantees: the query goes through core/dns.c's resolver: the same
 * servers, timeout and retries as every other lookup (resolver,
 * dns-timeout, dns-retry) and the same set-up before it; a record set
 * is only ever returned when the resolver marked the answer
 * authenticated (AD); a SERVFAIL, REFUSED or silent resolver is
 * TLSA_TEMP, never "no records" (RFC 7672 2.2: a failed TLSA lookup
 * must not turn into plaintext).
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/config.h"
#include "core/dns.h"
#include "core/tlsa.h"
#include "core/util.h"

#define TLSA_MAX_RECORDS	32

static int		 rdf_u8(const ldns_rdf *, unsigned char *);
static int		 record_matches(const struct tlsa_record *, X509 *);
static enum tlsa_status tlsa_records(ldns_pkt *, const char *,
		    struct tlsa_record **, size_t *, char *, size_t);

static int
rdf_u8(const ldns_rdf *rdf, unsigned char *v)
{
	if (rdf == NULL || ldns_rdf_size(rdf) != 1)
		return (-1);
	*v = ldns_rdf_data(rdf)[0];
	return (0);
}

enum tlsa_status
tlsa_lookup(const struct config *c, const char *host, int port,
    struct tlsa_record **records, size_t *n, char *err, size_t errsize)
{
	struct dns_resolver	*dr;
	struct lookup_error	 e;
	ldns_pkt		*pkt = NULL;
	ldns_pkt_rcode		 rcode;
	enum tlsa_status	 status;
	char			 name[300];

	*records = NULL;
	*n = 0;
	if (snprintf(name, sizeof(name), "_%d._tcp.%s.", port, host) >=
	    (int)sizeof(name)) {
		(void)snprintf(err, errsize, "TLSA name for %s too long", host);
		return (TLSA_TEMP);
	}
	if (dns_resolver_open(c, &dr, err, errsize) == -1)
		return (TLSA_TEMP);
	if (dns_query_secure(dr, name, LDNS_RR_TYPE_TLSA, &pkt, &e) !=
	    DNS_OK) {
		dns_resolver_close(dr);
		(void)strlcpy(err, e.text, errsize);
		return (TLSA_TEMP);
	}
	dns_resolver_close(dr);
	rcode = ldns_pkt_get_rcode(pkt);
	if (rcode != LDNS_RCODE_NOERROR && rcode != LDNS_RCODE_NXDOMAIN) {
		(void)snprintf(err, errsize, "DNS lookup of %s type=TLSA: "
		    "rcode %d", name, (int)rcode);
		status = TLSA_TEMP;
	} else if (!ldns_pkt_ad(pkt)) {
		(void)snprintf(err, errsize, "no DNSSEC-validated TLSA "
		    "records for %s (insecure answer)", name);
		status = TLSA_NONE;
	} else
		status = tlsa_records(pkt, name, records, n, err, errsize);
	ldns_pkt_free(pkt);
	return (status);
}

/* The usable records of a validated answer. */
static enum tlsa_status
tlsa_records(ldns_pkt *pkt, const char *name, struct tlsa_record **records,
    size_t *n, char *err, size_t errsize)
{
	ldns_rr_list		*list;
	ldns_rr			*rr;
	struct tlsa_record	*out;
	size_t			 i, count;

	list = ldns_pkt_rr_list_by_type(pkt, LDNS_RR_TYPE_TLSA,
	    LDNS_SECTION_ANSWER);
	count = list != NULL ? ldns_rr_list_rr_count(list) : 0;
	if (count > TLSA_MAX_RECORDS)
		count = TLSA_MAX_RECORDS;
	out = count > 0 ? xcalloc(count, sizeof(*out)) : NULL;
	for (i = 0; i < count; i++) {
		rr = ldns_rr_list_rr(list, i);
		if (ldns_rr_rd_count(rr) != 4 ||
		    rdf_u8(ldns_rr_rdf(rr, 0), &out[*n].usage) == -1 ||
		    rdf_u8(ldns_rr_rdf(rr, 1), &out[*n].selector) == -1 ||
		    rdf_u8(ldns_rr_rdf(rr, 2), &out[*n].mtype) == -1 ||
		    ldns_rdf_size(ldns_rr_rdf(rr, 3)) == 0)
			continue;	/* malformed: unusable, skipped */
		out[*n].len = ldns_rdf_size(ldns_rr_rdf(rr, 3));
		out[*n].data = xmalloc(out[*n].len);
		memcpy(out[*n].data, ldns_rdf_data(ldns_rr_rdf(rr, 3)),
		    out[*n].len);
		(*n)++;
	}
	if (list != NULL)
		ldns_rr_list_deep_free(list);
	if (*n == 0) {
		free(out);
		(void)snprintf(err, errsize, "no TLSA records for %s "
		    "(validated denial)", name);
		return (TLSA_NONE);
	}
	*records = out;
	return (TLSA_FOUND);
}

void
tlsa_free(struct tlsa_record *r, size_t n)
{
	size_t	 i;

	if (r == NULL)
		return;
	for (i = 0; i < n; i++)
		free(r[i].data);
	free(r);
}

enum tlsa_status
tlsa_lookup_any(struct dns_resolver *dr, const char *host, int port,
    struct tlsa_record **records, size_t *n, int *secure, char *err,
    size_t errsize)
{
	struct lookup_error	 e;
	ldns_pkt		*pkt = NULL;
	ldns_pkt_rcode		 rcode;
	enum tlsa_status	 status;
	char			 name[300];

	*records = NULL;
	*n = 0;
	*secure = 0;
	if (snprintf(name, sizeof(name), "_%d._tcp.%s.", port, host) >=
	    (int)sizeof(name)) {
		(void)snprintf(err, errsize, "TLSA name for %s too long", host);
		return (TLSA_TEMP);
	}
	if (dns_query_secure(dr, name, LDNS_RR_TYPE_TLSA, &pkt, &e) !=
	    DNS_OK) {
		(void)strlcpy(err, e.text, errsize);
		return (TLSA_TEMP);
	}
	rcode = ldns_pkt_get_rcode(pkt);
	if (rcode == LDNS_RCODE_NXDOMAIN) {
		(void)snprintf(err, errsize, "no TLSA records for %s", name);
		status = TLSA_NONE;
	} else if (rcode != LDNS_RCODE_NOERROR) {
		(void)snprintf(err, errsize, "DNS lookup of %s type=TLSA: "
		    "rcode %d", name, (int)rcode);
		status = TLSA_TEMP;
	} else {
		*secure = ldns_pkt_ad(pkt);
		status = tlsa_records(pkt, name, records, n, err, errsize);
	}
	ldns_pkt_free(pkt);
	return (status);
}

/* Does one record match this certificate (its usage already fits)? */
static int
record_matches(const struct tlsa_record *r, X509 *cert)
{
	unsigned char	*der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;
	const EVP_MD	*type;
	int		 len, ok = 0;

	len = r->selector == 0 ? i2d_X509(cert, &der) : r->selector == 1 ?
	    i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der) : -1;
	if (len <= 0)
		return (0);
	if (r->mtype == 0)
		ok = r->len == (size_t)len && memcmp(r->data, der, r->len) == 0;
	else if (r->mtype == 1 || r->mtype == 2) {
		type = r->mtype == 1 ? EVP_sha256() : EVP_sha512();
		ok = EVP_Digest(der, (size_t)len, md, &mdlen, type, NULL) == 1 &&
		    r->len == mdlen && memcmp(r->data, md, mdlen) == 0;
	}
	OPENSSL_free(der);
	return (ok);
}

int
tlsa_match_chain_file(const struct tlsa_record *records, size_t n,
    const char *path, char *err, size_t errsize)
{
	X509	*chain[TLSA_MAX_RECORDS];
	FILE	*f;
	size_t	 nc = 0, i, j;
	int	 matched = 0;

	if ((f = fopen(path, "r")) == NULL) {
		(void)snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return (-1);
	}
	while (nc < TLSA_MAX_RECORDS &&
	    (chain[nc] = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
		nc++;
	(void)fclose(f);
	ERR_clear_error();
	if (nc == 0) {
		(void)snprintf(err, errsize, "%s: no PEM certificate", path);
		return (-1);
	}
	for (i = 0; i < n; i++) {
		for (j = 0; j < nc; j++) {
			if ((records[i].usage == 3 && j == 0) ||
			    (records[i].usage == 2 && j > 0)) {
				if (record_matches(&records[i], chain[j])) {
					matched++;
					break;
				}
			}
		}
	}
	for (j = 0; j < nc; j++)
		X509_free(chain[j]);
	return (matched);
}

int
tlsa_spki_sha256_file(const char *path, char *hex, size_t hexsize, char *err,
    size_t errsize)
{
	unsigned char	*der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, i;
	X509		*cert;
	FILE		*f;
	int		 len, ok;

	if ((f = fopen(path, "r")) == NULL) {
		(void)snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return (-1);
	}
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	(void)fclose(f);
	ERR_clear_error();
	if (cert == NULL) {
		(void)snprintf(err, errsize, "%s: no PEM certificate", path);
		return (-1);
	}
	len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	ok = len > 0 && EVP_Digest(der, (size_t)len, md, &mdlen,
	    EVP_sha256(), NULL) == 1 && hexsize > (size_t)mdlen * 2;
	OPENSSL_free(der);
	X509_free(cert);
	if (!ok) {
		(void)snprintf(err, errsize, "%s: cannot hash its key", path);
		return (-1);
	}
	for (i = 0; i < mdlen; i++)
		(void)snprintf(hex + i * 2, 3, "%02x", md[i]);
	return (0);
}
