/*
 * probe.h - one primary host probed as `mxfb probe` does it (connect,
 * banner, EHLO, STARTTLS at a level, QUIT), for probe and check.
 */
#ifndef MXFB_PROBE_H
#define MXFB_PROBE_H

#include <stdint.h>
#include <time.h>

#include "core/tls.h"

struct mx_target;
struct primary_obs;
struct spool;
struct starttls_contexts;

struct probe_result {
	int		 up;
	int		 starttls;	/* the EHLO offered STARTTLS */
	int		 handshake;	/* a TLS handshake finished */
	int		 verified;	/* and the certificate checked out */
	int		 expiring;	/* within TLS_EXPIRY_WARN_DAYS */
	char		 relay[400];	/* HOST[IP]:PORT of the last try */
	char		 text[1024];	/* banner when up, else the reason */
	/* " starttls=yes tls=... subject=... expires=Nd verify=..." */
	char		 tls[700];
	int64_t		 ms;		/* the last try, in all */
	int64_t		 connect_ms;	/* -1: not reached */
	int64_t		 greeting_ms;	/* connected to EHLO answered */
	/* probe only: " flush-host=up|down(next try T)", flush's view */
	char		 view[128];
};

/*
 * Probe one host (each of its addresses until one is up) at the
 * tls-outbound level given, each wait capped by cap seconds.  Returns
 * r->up; when up, *obs is the observation, else obs gets the reason.
 * The texts in r are raw (from the peer): escape them to show them.
 * With notes (probe; check passes NULL and writes nothing), each address
 * tried is recorded in flush's host note (spool/INTERNALS 13) and
 * r->view tells the note as it was before.
 */
int	 probe_host_run(const struct mx_target *, const char *domain,
	    enum tls_level, time_t cap, struct starttls_contexts *,
	    struct spool *notes, struct probe_result *r,
	    struct primary_obs *obs);

#endif
