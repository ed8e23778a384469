/* Text helpers for output: control bytes made visible. */
#ifndef PONDER_TEXT_H
#define PONDER_TEXT_H

#include <stddef.h>

/* Writes s[0..len) to out (NUL-terminated, cut to cap at a character) with \n, \t, \r, \\
 * other control bytes and invalid UTF-8 escaped (\xNN); valid UTF-8 passes. */
void text_escape(const char *s, size_t len, char *out, size_t cap);

#endif
