/* Code point classes (utf8proc general categories grouped as llama.cpp groups
 * them, White_Space) and llama.cpp's lax UTF-8 decoding, for the tokenizer. */
#include "infer/unicode.h"

#include <utf8proc.h>

/* Characters Unicode 15.1 assigned that utf8proc 2.8 (Unicode 15.0) calls Cn. */
static const struct {
    uint32_t first, last;
    unsigned flag;
} unicode_15_1_added[] = {
    { 0x2FFC, 0x2FFF, UNICODE_SYMBOL },     /* ideographic description characters */
    { 0x31EF, 0x31EF, UNICODE_SYMBOL },     /* CJK stroke HXG */
    { 0x2EBF0, 0x2EE5D, UNICODE_LETTER },   /* CJK Unified Ideographs Extension I */
};

bool unicode_is_space(uint32_t cp)
{
    if (cp <= 0x20)
        return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    if (cp < 0x85)
        return false;
    switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

static unsigned unicode_class(uint32_t cp)
{
    if (cp > 0x10FFFF)
        return UNICODE_UNDEFINED;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return UNICODE_LETTER;
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
        return UNICODE_MARK;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return UNICODE_NUMBER;
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return UNICODE_PUNCT;
    case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO:
        return UNICODE_SYMBOL;
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
        return UNICODE_SEPARATOR;
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
        return UNICODE_CONTROL;
    default:
        break;
    }
    for (size_t i = 0; i < sizeof unicode_15_1_added / sizeof unicode_15_1_added[0]; i++)
        if (cp >= unicode_15_1_added[i].first && cp <= unicode_15_1_added[i].last)
            return unicode_15_1_added[i].flag;
    return UNICODE_UNDEFINED;
}

unsigned unicode_flags(uint32_t cp)
{
    unsigned f;
    /* ASCII is by far the most common input: answer it without utf8proc. */
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
            f = UNICODE_LETTER;
        else if (cp >= '0' && cp <= '9')
            f = UNICODE_NUMBER;
        else
            f = unicode_class(cp);
    } else {
        f = unicode_class(cp);
    }
    return unicode_is_space(cp) ? f | UNICODE_SPACE : f;
}

uint32_t unicode_decode(const char *s, size_t len, size_t *used)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned c = u[0];
    size_t n;
    uint32_t cp;

    if (c < 0x80) {
        *used = 1;
        return c;
    }
    if ((c & 0xE0) == 0xC0) {
        n = 2;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        *used = 1;
        return 0xFFFD;
    }
    if (n > len) {
        *used = 1;
        return 0xFFFD;
    }
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80) {
            *used = 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (u[i] & 0x3F);
    }
    if (cp > 0x10FFFF) {
        *used = 1;
        return 0xFFFD;
    }
    *used = n;
    return cp;
}

size_t unicode_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}
