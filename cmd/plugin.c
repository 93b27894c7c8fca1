/*
 * plugin.c - the monitoring-plugin output of probe and check (see
 * plugin.h): the first line's words, its summary and perfdata escaped
 * so that no text from DNS or a peer can end the summary or break a
 * perfdata label.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/plugin.h"
#include "core/log.h"

/* The three memory streams: 0, or -1 (reported). */
int
plugin_open(struct plugin_out *po)
{
	FILE	**f[3] = { &po->summary, &po->perf, &po->detail };
	size_t	 i;

	memset(po, 0, sizeof(*po));
	for (i = 0; i < 3; i++) {
		if ((*f[i] = open_memstream(&po->buf[i], &po->len[i])) ==
		    NULL) {
			log_cmd_error("open_memstream");
			while (i-- > 0)
				(void)fclose(*f[i]);
			for (i = 0; i < 3; i++)
				free(po->buf[i]);
			return (-1);
		}
	}
	return (0);
}

/*
 * "MXFB STATUS - SUMMARY | PERFDATA", then the detail lines, unless
 * quiet; frees the streams.  0, or -1 when they or stdout failed.
 */
int
plugin_print(struct plugin_out *po, int state, int quiet)
{
	static const char *const words[] = {
		"OK", "WARNING", "CRITICAL", "UNKNOWN"
	};
	FILE	*f[3] = { po->summary, po->perf, po->detail };
	size_t	 i;
	int	 rc = 0;

	for (i = 0; i < 3; i++)
		if (fclose(f[i]) == EOF)
			rc = -1;
	if (!quiet && rc == 0) {
		printf("MXFB %s - %s", words[state], po->buf[0]);
		if (po->len[1] > 0)
			printf(" |%s", po->buf[1]);
		putchar('\n');
		if (po->len[2] > 0 && fwrite(po->buf[2], 1, po->len[2],
		    stdout) != po->len[2])
			rc = -1;
	}
	for (i = 0; i < 3; i++)
		free(po->buf[i]);
	return (rc);
}

/* One clause of the summary, "; " between clauses. */
void
plugin_summary(struct plugin_out *po, const char *fmt, ...)
{
	va_list	 ap;

	if (po->nsummary++ > 0)
		fputs("; ", po->summary);
	va_start(ap, fmt);
	(void)vfprintf(po->summary, fmt, ap);
	va_end(ap);
}

/* Text from DNS or a peer for the first line: escaped, no '|'. */
void
plugin_safe(char *buf, size_t size, const char *text)
{
	char	*p;

	log_safe(buf, size, text);
	for (p = buf; *p != '\0'; p++)
		if (*p == '|')
			*p = '/';
}

/*
 * " 'DOMAIN HOST WHAT'=" per the guidelines: quoted, a quote doubled, no
 * '=' (made '_'); host may be NULL.
 */
void
perf_label(FILE *f, const char *domain, const char *host, const char *what)
{
	char		 raw[600], safe[600];
	const char	*p;

	(void)snprintf(raw, sizeof(raw), "%s%s%s %s", domain,
	    host != NULL ? " " : "", host != NULL ? host : "", what);
	plugin_safe(safe, sizeof(safe), raw);
	fputs(" '", f);
	for (p = safe; *p != '\0'; p++) {
		if (*p == '\'')
			fputs("''", f);
		else
			fputc(*p == '=' ? '_' : *p, f);
	}
	fputs("'=", f);
}

/* A latency in seconds ("0.003s"), U when not reached (ms < 0). */
void
perf_seconds(FILE *f, const char *domain, const char *host, const char *what,
    int64_t ms)
{
	perf_label(f, domain, host, what);
	if (ms < 0)
		fputc('U', f);
	else
		fprintf(f, "%lld.%03llds", (long long)(ms / 1000),
		    (long long)(ms % 1000));
}

int
plugin_worse(int a, int b)
{
	if (a == PLUGIN_CRITICAL || b == PLUGIN_CRITICAL)
		return (PLUGIN_CRITICAL);
	if (a == PLUGIN_UNKNOWN || b == PLUGIN_UNKNOWN)
		return (PLUGIN_UNKNOWN);
	if (a == PLUGIN_WARNING || b == PLUGIN_WARNING)
		return (PLUGIN_WARNING);
	return (PLUGIN_OK);
}
