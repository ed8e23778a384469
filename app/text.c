/* Text helpers for output. */
#include <stdio.h>

#include "app/text.h"

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0)
        len = 2, min = 0x80, cp = s[0] & 0x1f;
    else if ((s[0] & 0xf0) == 0xe0)
        len = 3, min = 0x800, cp = s[0] & 0x0f;
    else if ((s[0] & 0xf8) == 0xf0)
        len = 4, min = 0x10000, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void text_escape(const char *s, size_t len, char *out, size_t cap)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    if (cap == 0)
        return;
    for (size_t i = 0; i < len;) {
        unsigned char ch = u[i];
        char tmp[8];
        const char *rep = NULL;
        size_t n = utf8_len(u + i, len - i);
        if (ch == '\n')
            rep = "\\n";
        else if (ch == '\t')
            rep = "\\t";
        else if (ch == '\r')
            rep = "\\r";
        else if (ch == '\\')
            rep = "\\\\";
        else if (ch < 0x20 || ch == 0x7f || n == 0) {
            snprintf(tmp, sizeof tmp, "\\x%02x", ch);
            rep = tmp;
        }
        if (rep) {
            size_t r = 0;
            while (rep[r])
                r++;
            if (o + r >= cap)
                break;
            for (size_t k = 0; k < r; k++)
                out[o++] = rep[k];
            i++;
        } else {
            if (o + n >= cap)
                break;
            for (size_t k = 0; k < n; k++)
                out[o++] = s[i + k];
            i += n;
        }
    }
    out[o] = 0;
}
