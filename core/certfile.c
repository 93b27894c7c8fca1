/*
 * certfile.c - facts about our own certificate file for `mxfb check`.
 *
 * Guarantees: reads the file with OpenSSL's PEM reader only (no key is
 * read), matches names with X509_check_host as a verifying sender does,
 * and never keeps a certificate beyond the call.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/certfile.h"
#include "core/util.h"

static void	 cert_names(X509 *, char *, size_t);

/* The DNS names of the certificate, ", " apart, cut to fit. */
static void
cert_names(X509 *cert, char *buf, size_t size)
{
	GENERAL_NAMES		*gens;
	const GENERAL_NAME	*g;
	const unsigned char	*d;
	char			 one[300];
	int			 i, len;

	buf[0] = '\0';
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS)
			continue;
		d = ASN1_STRING_get0_data(g->d.dNSName);
		len = ASN1_STRING_length(g->d.dNSName);
		if (len <= 0 || len >= (int)sizeof(one) - 1)
			continue;
		memcpy(one, d, (size_t)len);
		one[len] = '\0';
		if (buf[0] != '\0')
			(void)strlcat(buf, ", ", size);
		(void)strlcat(buf, one, size);
	}
	GENERAL_NAMES_free(gens);
	if (buf[0] == '\0' && X509_NAME_get_text_by_NID(
	    X509_get_subject_name(cert), NID_commonName, one,
	    sizeof(one)) > 0)
		(void)strlcpy(buf, one, size);
}

int
certfile_facts(const char *path, const char *host, struct cert_facts *f,
    char *err, size_t errsize)
{
	FILE		*fp;
	X509		*cert;
	struct tm	 tm;
	int		 days, secs;

	memset(f, 0, sizeof(*f));
	if ((fp = fopen(path, "r")) == NULL) {
		(void)snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return (-1);
	}
	cert = PEM_read_X509(fp, NULL, NULL, NULL);
	(void)fclose(fp);
	ERR_clear_error();
	if (cert == NULL) {
		(void)snprintf(err, errsize, "%s: no PEM certificate", path);
		return (-1);
	}
	f->covers = X509_check_host(cert, host, 0,
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1;
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)) == 1)
		f->expiry_days = days - ((secs < 0 && days <= 0) ? 1 : 0);
	if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1)
		(void)strftime(f->not_after, sizeof(f->not_after),
		    "%Y-%m-%d %H:%M:%S UTC", &tm);
	cert_names(cert, f->names, sizeof(f->names));
	X509_free(cert);
	return (0);
}
