/*
 * plugin.h - the monitoring-plugin output that probe and check share
 * (Monitoring Plugins development guidelines): the first line
 * "MXFB OK|WARNING|CRITICAL|UNKNOWN - SUMMARY | PERFDATA", then the
 * detail lines, built in memory streams and printed at the end.
 */
#ifndef MXFB_PLUGIN_H
#define MXFB_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses and the words of the first line. */
#define PLUGIN_OK	0
#define PLUGIN_WARNING	1
#define PLUGIN_CRITICAL	2
#define PLUGIN_UNKNOWN	3

struct plugin_out {
	FILE		*summary;	/* "D: ...; D: ..." */
	FILE		*perf;		/* " 'label'=value..." */
	FILE		*detail;	/* the detail lines */
	char		*buf[3];
	size_t		 len[3];
	int		 nsummary;
};

/* The three memory streams: 0, or -1 (reported). */
int	 plugin_open(struct plugin_out *);
/*
 * "MXFB STATE - SUMMARY | PERFDATA" (state: PLUGIN_*), then the detail
 * lines, unless quiet; frees the streams.  0, or -1 when they or
 * stdout failed.
 */
int	 plugin_print(struct plugin_out *, int state, int quiet);
/* One clause of the summary, "; " between clauses. */
void	 plugin_summary(struct plugin_out *, const char *, ...)
	    __attribute__((__format__(__printf__, 2, 3)));
/* Text from DNS or a peer for the first line: escaped, no '|'. */
void	 plugin_safe(char *, size_t, const char *);
/*
 * " 'DOMAIN HOST WHAT'=" per the guidelines: quoted, a quote doubled,
 * no '=' (made '_'); host may be NULL.
 */
void	 perf_label(FILE *, const char *domain, const char *host,
	    const char *what);
/* A latency in seconds ("0.003s"), U when not reached (ms < 0). */
void	 perf_seconds(FILE *, const char *domain, const char *host,
	    const char *what, int64_t ms);
/* Critical beats unknown beats warning beats OK. */
int	 plugin_worse(int, int);

#endif
