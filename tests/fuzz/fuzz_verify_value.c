/*
 * fuzz_verify_value.c - libFuzzer target for the recipient database's
 * value decoder (spool/verify_db.c), which reads whatever bytes the
 * database file holds.  Checks: anything but exactly a valid encoding is
 * refused; what is accepted has a known verdict and source, since <=
 * expires, and encodes back to the same bytes.  The key function gets
 * the same bytes as an address, and the submission counters' value
 * decoder the same bytes as a value.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool/verify_db.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct verify_entry	 e;
	unsigned char		 again[VERIFY_VALUE_SIZE];
	char			 addr[512], key[ADDRESS_PATH_MAX + 1];
	unsigned char		 cagain[VERIFY_COUNT_SIZE];
	unsigned		 count;
	int64_t			 expires;
	size_t			 n;

	memset(&e, 0, sizeof(e));
	if (verify_value_decode(data, size, &e) == 0) {
		if (size != VERIFY_VALUE_SIZE ||
		    (e.verdict != VERIFY_VALID &&
		    e.verdict != VERIFY_INVALID) ||
		    e.source < VERIFY_SOURCE_FILE ||
		    e.source > VERIFY_SOURCE_DELIVERY ||
		    e.since < 0 || e.expires < e.since)
			abort();
		verify_value_encode(&e, again);
		if (memcmp(again, data, sizeof(again)) != 0)
			abort();
	}
	n = size < sizeof(addr) - 1 ? size : sizeof(addr) - 1;
	memcpy(addr, data, n);
	addr[n] = '\0';
	if (verify_db_key(addr, key, sizeof(key)) == 0 &&
	    (strlen(key) != strlen(addr) || strchr(key, '@') == NULL))
		abort();
	/* The same bytes as a submission counter (verify_db_count). */
	if (verify_count_decode(data, size, &count, &expires) == 0) {
		if (size != VERIFY_COUNT_SIZE || expires < 0)
			abort();
		verify_count_encode(count, expires, cagain);
		if (memcmp(cagain, data, sizeof(cagain)) != 0)
			abort();
	}
	return (0);
}
