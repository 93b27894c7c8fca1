/*
 * test_text_out.c - Prometheus label values (cmd/text_out.c prom_label):
 * backslash, double quote and LF escaped as the text exposition format
 * asks, valid UTF-8 as it is, other controls, DEL and bytes that are not
 * UTF-8 as U+FFFD, so that every value is one line of valid UTF-8.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmd/text_out.h"

static void	 label_is(const char *, const char *);

/* prom_label(in) printed exactly want. */
static void
label_is(const char *in, const char *want)
{
	char	*buf = NULL;
	size_t	 len = 0;
	FILE	*f;

	assert_non_null(f = open_memstream(&buf, &len));
	prom_label(f, in);
	assert_int_equal(fclose(f), 0);
	assert_string_equal(buf, want);
	free(buf);
}

static void
test_prom_label(void **state)
{
	(void)state;
	label_is("example.test", "\"example.test\"");
	label_is("", "\"\"");
	label_is("a\\b\"c\nd", "\"a\\\\b\\\"c\\nd\"");
	label_is("j\xc3\xb6rg.test", "\"j\xc3\xb6rg.test\"");
	label_is("a\rb\tc\x1b\x7f", "\"a\xef\xbf\xbd" "b\xef\xbf\xbd"
	    "c\xef\xbf\xbd\xef\xbf\xbd\"");
	/* Not UTF-8: a lone continuation, a truncated sequence, overlong. */
	label_is("\x80x\xc3", "\"\xef\xbf\xbdx\xef\xbf\xbd\"");
	label_is("\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\"");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prom_label),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
