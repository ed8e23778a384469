/* Code point classes for the pre-tokenizers, and the lax UTF-8 decoding
 * llama.cpp applies to tokenizer input.
 *
 * unicode_flags() gives one class bit (the Unicode 15.1 general category,
 * grouped as llama.cpp groups it: L, N, P, S, M, Z separators, C other
 * (Cc Cf Cs Co), Cn undefined) plus UNICODE_SPACE when the code point has the
 * White_Space property (U+0009..U+000D, U+0020, U+0085, U+00A0, U+1680,
 * U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000; not U+001C..U+001F).
 * Categories come from utf8proc, with the characters Unicode 15.1 added over
 * utf8proc's 15.0 patched in.  Pure functions, no state. */
#ifndef PONDER_UNICODE_H
#define PONDER_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum unicode_flag {
    UNICODE_UNDEFINED = 0x01,   /* Cn, and anything past U+10FFFF */
    UNICODE_NUMBER = 0x02,      /* Nd Nl No */
    UNICODE_LETTER = 0x04,      /* Lu Ll Lt Lm Lo */
    UNICODE_SEPARATOR = 0x08,   /* Zs Zl Zp */
    UNICODE_MARK = 0x10,        /* Mn Mc Me */
    UNICODE_PUNCT = 0x20,       /* Pc Pd Ps Pe Pi Pf Po */
    UNICODE_SYMBOL = 0x40,      /* Sm Sc Sk So */
    UNICODE_CONTROL = 0x80,     /* Cc Cf Cs Co */
    UNICODE_CLASS_MASK = 0xff,
    UNICODE_SPACE = 0x100       /* White_Space, added to the class bit */
};

unsigned unicode_flags(uint32_t cp);
bool unicode_is_space(uint32_t cp);

/* Decodes one code point from s[0..len) (len >= 1) the way llama.cpp's
 * unicode_cpt_from_utf8() does: the lead byte gives the length, continuation
 * bytes must be 10xxxxxx, overlong forms and surrogates are accepted.  A lead
 * byte that starts nothing valid (including F5..FF, which would decode past
 * U+10FFFF), or a sequence cut short, gives U+FFFD and consumes one byte.
 * *used gets the bytes consumed (1..4). */
uint32_t unicode_decode(const char *s, size_t len, size_t *used);

/* Writes cp (<= 0x10FFFF) as 1..4 UTF-8 bytes; returns the count. */
size_t unicode_encode(uint32_t cp, char out[4]);

#endif
