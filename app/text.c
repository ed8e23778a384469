/* Text helpers for output. */
#include <stdio.h>

#include "app/text.h"

void text_escape(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        char tmp[8];
        const char *rep = NULL;
        if (ch == '\n')
            rep = "\\n";
        else if (ch == '\t')
            rep = "\\t";
        else if (ch == '\r')
            rep = "\\r";
        else if (ch == '\\')
            rep = "\\\\";
        else if (ch < 0x20 || ch == 0x7f) {
            snprintf(tmp, sizeof tmp, "\\x%02x", ch);
            rep = tmp;
        }
        if (rep) {
            for (const char *p = rep; *p; p++)
                if (o + 1 < cap)
                    out[o++] = *p;
        } else if (o + 1 < cap) {
            out[o++] = (char)ch;
        }
    }
    out[o] = 0;
}
