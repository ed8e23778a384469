/* Text helpers for output: control bytes made visible. */
#ifndef PONDER_TEXT_H
#define PONDER_TEXT_H

#include <stddef.h>

/* Writes s[0..len) to out (NUL-terminated, cut to cap) with \n, \t, \r, \\
 * and other control bytes escaped (\xNN); UTF-8 passes through. */
void text_escape(const char *s, size_t len, char *out, size_t cap);

#endif
