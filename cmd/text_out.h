/*
 * text_out.h - safe display of untrusted text (see text_out.c).
 */
#ifndef MXFB_TEXT_OUT_H
#define MXFB_TEXT_OUT_H

#include <stddef.h>
#include <stdio.h>

/*
 * Valid UTF-8 passes; a backslash is doubled, TAB is \t, other C0
 * controls, DEL and bytes that are not UTF-8 are \xHH, C1 and bidi
 * controls \uHHHH.  Returns the width written in characters.
 */
size_t	 text_put(FILE *, const unsigned char *, size_t);
/* The same for a string; NULL prints nothing. */
size_t	 text_str(FILE *, const char *);
/* A quoted JSON string; bytes that are not UTF-8 become U+FFFD. */
void	 json_string(FILE *, const char *);
/*
 * A quoted Prometheus label value (text exposition 0.0.4): backslash,
 * double quote and LF escaped (\\, \", \n), other controls and bytes
 * that are not UTF-8 become U+FFFD.
 */
void	 prom_label(FILE *, const char *);

#endif
