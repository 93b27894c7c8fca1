/*
 * status_hosts.c - the next-hop host view: what flush last learnt about
 * each host it delivers to (spool_host_walk), as a table for people and
 * as JSON objects for programs.  The notes' text is printable ASCII
 * (spool/hostnote.c checks it), printed through text_str and
 * json_string all the same.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/status_hosts.h"
#include "cmd/text_out.h"
#include "core/util.h"
#include "spool/spool.h"

#define HOST_WIDTH	30

struct host_list {
	struct host_note	*v;
	size_t			 n;
};

static int	 collect(void *, const struct host_note *);
static int	 by_key(const void *, const void *);
static void	 when(time_t, char *, size_t);
static void	 split_key(const char *, char *, size_t, int *);
static void	 print_json(FILE *, const struct host_note *);
static void	 print_text(FILE *, const struct host_note *);

static int
collect(void *arg, const struct host_note *n)
{
	struct host_list	*l = arg;

	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = *n;
	return (0);
}

static int
by_key(const void *a, const void *b)
{
	return (strcmp(((const struct host_note *)a)->key,
	    ((const struct host_note *)b)->key));
}

static void
when(time_t t, char *buf, size_t size)
{
	struct tm	 tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, size, "%a %b %e %H:%M:%S", &tm) == 0)
		(void)bsnprintf(buf, size, "%lld", (long long)t);
}

/* "127.0.0.2_25" -> "127.0.0.2", 25. */
static void
split_key(const char *key, char *addr, size_t size, int *port)
{
	const char	*us = strrchr(key, '_');

	(void)strlcpy(addr, key, size);
	*port = 0;
	if (us == NULL || (size_t)(us - key) >= size)
		return;
	addr[us - key] = '\0';
	*port = atoi(us + 1);
}

void
status_host_describe(const struct host_note *n, char *buf, size_t size)
{
	char	 since[64], retry[64];

	when(n->since, since, sizeof(since));
	if (n->up) {
		(void)snprintf(buf, size, "up since %s", since);
		return;
	}
	when(n->retry, retry, sizeof(retry));
	(void)snprintf(buf, size, "down since %s, next try %s (%s)", since,
	    retry, n->reason[0] ? n->reason : "no reason noted");
}

static void
print_json(FILE *f, const struct host_note *n)
{
	char	 addr[HOST_KEY_SIZE];
	int	 port;

	split_key(n->key, addr, sizeof(addr), &port);
	fputs("{\"host\":", f);
	json_string(f, addr);
	fprintf(f, ",\"port\":%d,\"mx\":", port);
	if (n->host[0] != '\0')
		json_string(f, n->host);
	else
		fputs("null", f);
	fprintf(f, ",\"state\":\"%s\",\"since\":%lld,\"checked\":%lld,"
	    "\"failures\":%u,\"next_try\":", n->up ? "up" : "down",
	    (long long)n->since, (long long)n->time, n->failures);
	if (n->up)
		fputs("null,\"reason\":null}\n", f);
	else {
		fprintf(f, "%lld,\"reason\":", (long long)n->retry);
		json_string(f, n->reason);
		fputs("}\n", f);
	}
}

static void
print_text(FILE *f, const struct host_note *n)
{
	char	 addr[HOST_KEY_SIZE], name[HOST_KEY_SIZE + 8], line[512];
	size_t	 width;
	int	 port;

	split_key(n->key, addr, sizeof(addr), &port);
	(void)snprintf(name, sizeof(name), strchr(addr, ':') != NULL ?
	    "[%s]:%d" : "%s:%d", addr, port);
	width = text_str(f, name);
	if (n->host[0] != '\0') {
		fputs(" (", f);
		width += 3 + text_str(f, n->host);
		fputc(')', f);
	}
	status_host_describe(n, line, sizeof(line));
	fprintf(f, "%*s  ", width < HOST_WIDTH ? (int)(HOST_WIDTH - width) :
	    0, "");
	text_str(f, line);
	fputc('\n', f);
}

int
status_hosts_print(FILE *f, struct spool *sp, int json, int separate)
{
	struct host_list	 l;
	size_t			 i;
	int			 r;

	memset(&l, 0, sizeof(l));
	r = spool_host_walk(sp, collect, &l);
	if (l.n > 0)
		qsort(l.v, l.n, sizeof(*l.v), by_key);
	if (l.n > 0 && !json)
		fprintf(f, "%s%-*s  %s\n", separate ? "\n" : "", HOST_WIDTH,
		    "Next-hop host",
		    "State (flush)");
	for (i = 0; i < l.n; i++) {
		if (json)
			print_json(f, &l.v[i]);
		else
			print_text(f, &l.v[i]);
	}
	free(l.v);
	return (r == -1 ? -1 : 0);
}
