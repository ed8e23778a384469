/* The transcript of the chat screen: entries, safe text, folding, and the
 * layout of it all into wrapped lines (no curses here). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "ui/transcript.h"

#define TR_TAIL_LINES 3     /* reasoning lines kept visible while folded and thinking */
#define TR_REASON_INDENT 2

void tr_init(struct transcript *t, bool fold_default)
{
    memset(t, 0, sizeof *t);
    t->fold_default = fold_default;
}

static void entry_free(struct tr_entry *e)
{
    free(e->text.s);
    free(e->reasoning.s);
}

void tr_clear(struct transcript *t)
{
    for (size_t i = 0; i < t->n; i++)
        entry_free(&t->e[i]);
    t->n = 0;
}

void tr_free(struct transcript *t)
{
    tr_clear(t);
    free(t->e);
    t->e = NULL;
    t->cap = 0;
}

void tr_lines_free(struct tr_lines *l)
{
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int text_reserve(struct tr_text *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more + 1) {
        if (cap > ((size_t)1 << 40))
            return ENOMEM;
        cap *= 2;
    }
    char *s = realloc(b->s, cap);
    if (!s)
        return ENOMEM;
    b->s = s;
    b->cap = cap;
    return 0;
}

static int text_put(struct tr_text *b, const char *s, size_t len)
{
    if (text_reserve(b, len))
        return ENOMEM;
    memcpy(b->s + b->len, s, len);
    b->len += len;
    b->s[b->len] = 0;
    return 0;
}

/* Decodes one UTF-8 character of s[0..len): its length (>= 1), *cp the code
 * point, or -1 in *cp when the bytes are not valid UTF-8 (length 1 then). */
static size_t utf8_next(const char *s, size_t len, long *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned c = u[0];
    size_t n;
    long v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        *cp = -1;
        return 1;
    }
    if (n > len) {
        *cp = -1;
        return 1;
    }
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80) {
            *cp = -1;
            return 1;
        }
        v = (v << 6) | (u[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = -1;
        return 1;
    }
    *cp = v;
    return n;
}

static int char_width(long cp)
{
    int w = wcwidth((wchar_t)cp);
    return w < 0 ? 1 : w;
}

int tr_text_add_safe(struct tr_text *b, const char *s, size_t len)
{
    static const char repl[] = "\xEF\xBF\xBD";   /* U+FFFD */
    if (text_reserve(b, len))
        return ENOMEM;
    for (size_t i = 0; i < len;) {
        long cp;
        size_t n = utf8_next(s + i, len - i, &cp);
        int rc = 0;
        if (cp == '\n') {
            rc = text_put(b, "\n", 1);
        } else if (cp == '\t') {
            rc = text_put(b, "    ", 4);
        } else if (cp == '\r') {
            rc = 0;     /* a CR would move the cursor; the LF after it breaks the line */
        } else if (cp >= 0 && (cp < 0x20 || cp == 0x7F)) {
            char v[2] = {'^', cp == 0x7F ? '?' : (char)(cp + '@')};
            rc = text_put(b, v, 2);
        } else if (cp < 0 || (cp >= 0x80 && cp < 0xA0) || wcwidth((wchar_t)cp) < 0) {
            rc = text_put(b, repl, 3);
        } else {
            rc = text_put(b, s + i, n);
        }
        if (rc)
            return rc;
        i += n;
    }
    return 0;
}

int tr_width(const char *s, size_t len)
{
    int w = 0;
    for (size_t i = 0; i < len;) {
        long cp;
        i += utf8_next(s + i, len - i, &cp);
        w += cp < 0 ? 1 : char_width(cp);
    }
    return w;
}

const char *tr_count(long long n, char *buf, size_t cap)
{
    char digits[32];
    int nd = snprintf(digits, sizeof digits, "%lld", n < 0 ? -n : n);
    size_t o = 0;
    if (n < 0 && o + 1 < cap)
        buf[o++] = '-';
    for (int i = 0; i < nd && o + 1 < cap; i++) {
        if (i && (nd - i) % 3 == 0 && o + 1 < cap)
            buf[o++] = ',';
        if (o + 1 < cap)
            buf[o++] = digits[i];
    }
    buf[o] = 0;
    return buf;
}

static struct tr_entry *add_entry(struct transcript *t, enum tr_kind kind)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct tr_entry *e = realloc(t->e, cap * sizeof *e);
        if (!e)
            return NULL;
        t->e = e;
        t->cap = cap;
    }
    struct tr_entry *e = &t->e[t->n++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    return e;
}

int tr_add_user(struct transcript *t, const char *text, size_t len)
{
    struct tr_entry *e = add_entry(t, TR_KIND_USER);
    return !e || tr_text_add_safe(&e->text, text, len) ? ENOMEM : 0;
}

int tr_add_note(struct transcript *t, const char *text)
{
    struct tr_entry *e = add_entry(t, TR_KIND_NOTE);
    return !e || tr_text_add_safe(&e->text, text, strlen(text)) ? ENOMEM : 0;
}

int tr_add_reply(struct transcript *t, const char *model, const char *reasoning,
                 const char *answer, bool interrupted)
{
    struct tr_entry *e = add_entry(t, TR_KIND_REPLY);
    if (!e)
        return ENOMEM;
    snprintf(e->model, sizeof e->model, "%s", model ? model : "");
    e->folded = true;
    e->interrupted = interrupted;
    if (reasoning && tr_text_add_safe(&e->reasoning, reasoning, strlen(reasoning)))
        return ENOMEM;
    if (answer && tr_text_add_safe(&e->text, answer, strlen(answer)))
        return ENOMEM;
    if (interrupted)
        snprintf(e->footer, sizeof e->footer, "interrupted");
    return 0;
}

struct tr_entry *tr_streaming(struct transcript *t)
{
    if (t->n && t->e[t->n - 1].kind == TR_KIND_REPLY && t->e[t->n - 1].streaming)
        return &t->e[t->n - 1];
    return NULL;
}

int tr_reply_begin(struct transcript *t, const char *model)
{
    struct tr_entry *e = add_entry(t, TR_KIND_REPLY);
    if (!e)
        return ENOMEM;
    snprintf(e->model, sizeof e->model, "%s", model ? model : "");
    e->streaming = true;
    return 0;
}

int tr_reply_append(struct transcript *t, enum reason_kind kind, const char *text, size_t len,
                    bool count, double now_ms)
{
    struct tr_entry *e = tr_streaming(t);
    if (!e)
        return 0;
    if (kind == REASON_KIND_REASONING) {
        if (!e->thinking && !e->reasoning.len && !e->think_tokens) {
            e->thinking = true;
            e->think_start_ms = now_ms;
        }
        if (count)
            e->think_tokens++;
        return tr_text_add_safe(&e->reasoning, text, len);
    }
    if (e->thinking) {
        e->thinking = false;
        e->think_ms = now_ms - e->think_start_ms;
        if (t->fold_default)
            e->folded = true;
    }
    if (count)
        e->answer_tokens++;
    return tr_text_add_safe(&e->text, text, len);
}

void tr_reply_end(struct transcript *t, enum engine_stop stop, const struct engine_stats *st,
                  double now_ms)
{
    struct tr_entry *e = tr_streaming(t);
    if (!e)
        return;
    if (e->thinking) {
        e->thinking = false;
        e->think_ms = now_ms - e->think_start_ms;
    }
    e->streaming = false;
    e->interrupted = stop == ENGINE_STOP_USER;
    if (st) {
        if (st->reasoning_tokens || st->reasoning_ms > 0) {
            e->think_ms = st->reasoning_ms;
            e->think_tokens = st->reasoning_tokens;
        }
        e->answer_tokens = st->answer_tokens;
        e->budget_reached = st->budget_reached;
        snprintf(e->footer, sizeof e->footer,
                 "read %.1f s · think %.1f s · answer %.1f s · %.1f t/s · first token %.2f s%s",
                 st->prompt_ms / 1000, st->reasoning_ms / 1000, st->answer_ms / 1000, st->gen_tps,
                 st->first_token_ms / 1000,
                 stop == ENGINE_STOP_USER      ? " · interrupted"
                 : stop == ENGINE_STOP_LENGTH  ? " · stopped at the token limit"
                 : stop == ENGINE_STOP_CONTEXT ? " · the context is full"
                 : stop == ENGINE_STOP_ERROR   ? " · error"
                                               : "");
    } else if (e->interrupted) {
        snprintf(e->footer, sizeof e->footer, "interrupted");
    }
}

void tr_toggle_fold(struct transcript *t, size_t entry)
{
    if (entry < t->n && t->e[entry].kind == TR_KIND_REPLY)
        t->e[entry].folded = !t->e[entry].folded;
}

void tr_toggle_all(struct transcript *t)
{
    bool all_folded = true;
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].kind == TR_KIND_REPLY && t->e[i].reasoning.len && !t->e[i].folded)
            all_folded = false;
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].kind == TR_KIND_REPLY)
            t->e[i].folded = !all_folded;
}

static struct tr_line *push_line(struct tr_lines *out, size_t entry, enum tr_style style)
{
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 256;
        struct tr_line *v = realloc(out->v, cap * sizeof *v);
        if (!v)
            return NULL;
        out->v = v;
        out->cap = cap;
    }
    struct tr_line *l = &out->v[out->n++];
    l->entry = entry;
    l->style = style;
    l->text = "";
    l->len = 0;
    l->indent = 0;
    l->buf[0] = 0;
    return l;
}

static int push_fmt(struct tr_lines *out, size_t entry, enum tr_style style, const char *text)
{
    struct tr_line *l = push_line(out, entry, style);
    if (!l)
        return ENOMEM;
    snprintf(l->buf, sizeof l->buf, "%s", text);
    l->text = l->buf;
    l->len = strlen(l->buf);
    return 0;
}

/* Wraps s[0..len) to width - indent columns, breaking after spaces where it
 * can, before any character where it must. */
static int wrap(struct tr_lines *out, size_t entry, enum tr_style style, const char *s,
                size_t len, int width, int indent)
{
    int avail = width - indent;
    if (avail < 1)
        avail = 1;
    while (len && (s[len - 1] == '\n' || s[len - 1] == ' '))
        len--;
    for (size_t i = 0;;) {
        size_t para_end = i;
        while (para_end < len && s[para_end] != '\n')
            para_end++;
        size_t start = i;
        do {
            size_t p = start, brk = 0, brk_next = 0;
            int w = 0;
            while (p < para_end) {
                long cp;
                size_t n = utf8_next(s + p, para_end - p, &cp);
                int cw = cp < 0 ? 1 : char_width(cp);
                if (w + cw > avail && p > start) {
                    if (cw == 2)        /* a line may break before a wide character */
                        brk = brk_next = p;
                    break;
                }
                w += cw;
                p += n;
                if (cp == ' ' || cw == 2) {     /* and after one */
                    brk = p;
                    brk_next = p;
                }
            }
            size_t end = p, next = p;
            if (p < para_end && brk > start) {
                end = brk;
                next = brk_next;
            }
            while (end > start && s[end - 1] == ' ')
                end--;
            while (next < para_end && s[next] == ' ' && p < para_end)
                next++;
            struct tr_line *l = push_line(out, entry, style);
            if (!l)
                return ENOMEM;
            l->text = s + start;
            l->len = end - start;
            l->indent = indent;
            start = next;
        } while (start < para_end);
        if (para_end >= len)
            return 0;
        i = para_end + 1;
    }
}

static int layout_reply(const struct tr_entry *e, size_t idx, int width, double now_ms,
                        struct tr_lines *out)
{
    char head[160], cnt[32];
    if (push_fmt(out, idx, TR_STYLE_MODEL_HEAD, e->model[0] ? e->model : "model"))
        return ENOMEM;
    bool has_reasoning = e->reasoning.len > 0 || e->thinking;
    if (has_reasoning) {
        if (e->thinking) {
            double ms = now_ms - e->think_start_ms;
            snprintf(head, sizeof head, "%s Thinking… %.1f s · %s tokens", e->folded ? "▸" : "▾",
                     ms / 1000, tr_count(e->think_tokens, cnt, sizeof cnt));
        } else {
            snprintf(head, sizeof head, "%s Thought for %.1f s (%s tokens%s)",
                     e->folded ? "▸" : "▾", e->think_ms / 1000,
                     tr_count(e->think_tokens, cnt, sizeof cnt),
                     e->budget_reached ? ", budget reached" : "");
        }
        if (push_fmt(out, idx, TR_STYLE_THINK_HEAD, head))
            return ENOMEM;
        if (!e->folded || e->thinking) {
            size_t first = out->n;
            if (wrap(out, idx, TR_STYLE_THINK, e->reasoning.s ? e->reasoning.s : "",
                     e->reasoning.len, width, TR_REASON_INDENT))
                return ENOMEM;
            if (e->folded && out->n - first > TR_TAIL_LINES) {
                size_t drop = out->n - first - TR_TAIL_LINES;
                memmove(&out->v[first], &out->v[first + drop], TR_TAIL_LINES * sizeof *out->v);
                out->n -= drop;   /* wrapped lines point into the entry, never into buf */
            }
        }
    }
    if (e->text.len || !has_reasoning)
        if (wrap(out, idx, TR_STYLE_ANSWER, e->text.s ? e->text.s : "", e->text.len, width, 0))
            return ENOMEM;
    if (e->footer[0] && push_fmt(out, idx, TR_STYLE_FOOTER, e->footer))
        return ENOMEM;
    return 0;
}

int tr_layout(const struct transcript *t, int width, double now_ms, struct tr_lines *out)
{
    out->n = 0;
    if (width < 8)
        width = 8;
    for (size_t i = 0; i < t->n; i++) {
        const struct tr_entry *e = &t->e[i];
        if (i && !push_line(out, i, TR_STYLE_BLANK))
            return ENOMEM;
        int rc = 0;
        switch (e->kind) {
        case TR_KIND_USER:
            rc = push_fmt(out, i, TR_STYLE_USER_HEAD, "You");
            if (!rc)
                rc = wrap(out, i, TR_STYLE_USER, e->text.s ? e->text.s : "", e->text.len, width, 0);
            break;
        case TR_KIND_NOTE:
            rc = wrap(out, i, TR_STYLE_NOTE, e->text.s ? e->text.s : "", e->text.len, width, 0);
            break;
        case TR_KIND_REPLY: rc = layout_reply(e, i, width, now_ms, out); break;
        }
        if (rc)
            return rc;
    }
    return 0;
}
