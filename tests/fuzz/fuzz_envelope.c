/*
 * fuzz_envelope.c - libFuzzer target for the envelope text decoder: any
 * input must be either refused (EBADMSG, nothing allocated) or decoded
 * into an envelope whose encoding decodes again and encodes to the same
 * bytes (encoding is a fixed point), and the state decoder must survive
 * it too.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mail/envelope.h"

int	 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope	 env, copy;
	char		*buf, *buf2;
	size_t		 len, len2;

	if (envelope_decode((const char *)data, size, &env) == -1) {
		if (errno != EBADMSG || env.rcpts != NULL || env.sender != NULL)
			abort();
	} else {
		if (envelope_encode(&env, &buf, &len) == -1)
			abort();
		if (envelope_decode(buf, len, &copy) == -1)
			abort();
		if (envelope_encode(&copy, &buf2, &len2) == -1)
			abort();
		if (len != len2 || memcmp(buf, buf2, len) != 0)
			abort();
		envelope_free(&copy);
		free(buf);
		free(buf2);
		/* The same text as a state file is refused ("V1", not "S1"). */
		if (envelope_state_encode(&env, &buf, &len) == -1)
			abort();
		if (envelope_decode(buf, len, &copy) != -1)
			abort();
		if (envelope_state_merge(&env, buf, len) == -1)
			abort();
		free(buf);
		envelope_free(&env);
	}

	/* As a state file for a small fixed envelope. */
	memset(&env, 0, sizeof(env));
	(void)envelope_add_recipient(&env, "x@y");
	(void)envelope_add_recipient(&env, "z@y");
	(void)envelope_state_merge(&env, (const char *)data, size);
	envelope_free(&env);
	return (0);
}
