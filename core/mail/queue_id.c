/*
 * queue_id.c - queue IDs: 17 characters of a 32-symbol alphabet, arrival
 * time first (7 symbols of seconds, 4 of microseconds), then 30 random
 * bits from libsodium.
 *
 * Guarantees: the alphabet is in ASCII order, so comparing IDs as bytes
 * compares arrival times; IDs made by one process are strictly
 * increasing; IDs made by different processes or hosts collide only if
 * they share the microsecond and 30 random bits.  queue_id_valid()
 * accepts exactly that shape, so a valid ID is always a safe file name.
 * queue_id_derive() gives a report the same ID every time it is made.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/mail/queue_id.h"
#include "core/util.h"

#define ID_SEC_LEN	7
#define ID_USEC_LEN	4
#define ID_RAND_LEN	6
#define ID_TIME_LEN	(ID_SEC_LEN + ID_USEC_LEN)

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static int	 symbol_value(int);
static void	 put_base32(char *, int, uint64_t);

/*
 * The last time stamp handed out, so that two IDs made in the same
 * microsecond by this process still sort in creation order.  The only
 * mutable static in the model; it only ever moves forward.
 */
static time_t	 last_sec;
static long	 last_usec;

static int
symbol_value(int c)
{
	const char	*p;

	if (c == '\0' || (p = strchr(alphabet, c)) == NULL)
		return (-1);
	return ((int)(p - alphabet));
}

static void
put_base32(char *dst, int width, uint64_t v)
{
	int	 i;

	for (i = width - 1; i >= 0; i--) {
		dst[i] = alphabet[v & 31];
		v >>= 5;
	}
}

int
queue_id_new(char id[QUEUE_ID_SIZE])
{
	unsigned char	 rnd[ID_RAND_LEN];
	time_t		 sec;
	long		 usec;
	int		 i;

	if (sodium_init() == -1) {
		errno = EIO;
		return (-1);
	}
	now_tv(&sec, &usec);
	if (sec < last_sec || (sec == last_sec && usec <= last_usec)) {
		sec = last_sec;
		usec = last_usec + 1;
		if (usec >= 1000000) {
			sec++;
			usec = 0;
		}
	}
	last_sec = sec;
	last_usec = usec;

	put_base32(id, ID_SEC_LEN, (uint64_t)sec);
	put_base32(id + ID_SEC_LEN, ID_USEC_LEN, (uint64_t)usec);
	randombytes_buf(rnd, sizeof(rnd));
	for (i = 0; i < ID_RAND_LEN; i++)
		id[ID_SEC_LEN + ID_USEC_LEN + i] = alphabet[rnd[i] & 31];
	id[QUEUE_ID_LEN] = '\0';
	return (0);
}

int
queue_id_valid(const char *id)
{
	int	 i;

	if (id == NULL)
		return (0);
	for (i = 0; i < QUEUE_ID_LEN; i++)
		if (symbol_value((unsigned char)id[i]) == -1)
			return (0);
	return (id[QUEUE_ID_LEN] == '\0');
}

time_t
queue_id_time(const char *id)
{
	uint64_t	 v = 0;
	int		 i, s;

	for (i = 0; i < ID_SEC_LEN; i++) {
		if ((s = symbol_value((unsigned char)id[i])) == -1)
			return (0);
		v = (v << 5) | (uint64_t)s;
	}
	return ((time_t)v);
}

/*
 * Bit for bit what cmd/bounce.c's derive_id computed: DSN IDs made by
 * earlier versions are in spools, and a rerun must find them.  An input
 * too long for the buffer (never a valid orig) hashes as empty.
 */
void
queue_id_derive(const char *orig, int tag, unsigned gen,
    char out[QUEUE_ID_SIZE])
{
	unsigned char	 h[8];
	char		 in[64];
	uint64_t	 v = 0;
	int		 i, n;

	n = snprintf(in, sizeof(in), "mxfb-dsn %s %c %u", orig, tag, gen);
	if (n < 0 || (size_t)n >= sizeof(in))
		n = 0;
	crypto_generichash(h, sizeof(h), (const unsigned char *)in,
	    (unsigned long long)n, NULL, 0);
	for (i = 0; i < 8; i++)
		v = (v << 8) | h[i];
	memcpy(out, orig, ID_TIME_LEN);
	put_base32(out + ID_TIME_LEN, QUEUE_ID_LEN - ID_TIME_LEN, v);
	out[QUEUE_ID_LEN] = '\0';
}
