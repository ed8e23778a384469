/* The history store's exports: a conversation as Markdown (reasoning in a
 * collapsible <details> block, or left out) or as JSON. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "history/store_int.h"

/* "2026-11-28T19:00:00Z" (sep 'T', zone "Z") or "2026-11-28 19:00 UTC". */
static void fmt_time(char *out, size_t cap, int64_t ms, bool iso)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, cap, "?");
        return;
    }
    strftime(out, cap, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M UTC", &tm);
}

/* text without its trailing newlines and blanks */
static size_t trimmed(const char *t)
{
    size_t n = strlen(t);
    while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    return n;
}

static int md_body(struct store_buf *b, const char *text)
{
    /* without its leading blank lines (R1 writes "\n\n" after </think>) */
    for (const char *p = text; *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'; p++)
        if (*p == '\n')
            text = p + 1;
    size_t n = trimmed(text);
    int rc = store_buf_add(b, text, n);
    return rc ? rc : store_buf_str(b, "\n\n");
}

static int export_md(const struct store_conv *c, unsigned flags, struct store_buf *b)
{
    char when[64];
    fmt_time(when, sizeof when, c->created, false);
    int rc = store_buf_printf(b, "# %s\n\n*Conversation %lld, started %s, %zu message%s.*\n\n",
                        c->title[0] ? c->title : "Untitled conversation", (long long)c->id, when,
                        c->n, c->n == 1 ? "" : "s");
    for (size_t i = 0; !rc && i < c->n; i++) {
        const struct store_message *m = &c->msgs[i];
        if (m->role == STORE_ROLE_ASSISTANT && m->model_name[0])
            rc = store_buf_printf(b, "## Assistant (%s)\n\n", m->model_name);
        else
            rc = store_buf_printf(b, "## %s\n\n", m->role == STORE_ROLE_SYSTEM ? "System"
                                             : m->role == STORE_ROLE_USER ? "User"
                                                                          : "Assistant");
        if (!rc && (flags & STORE_EXPORT_REASONING) && trimmed(m->reasoning) > 0) {
            rc = store_buf_str(b, "<details>\n<summary>Reasoning</summary>\n\n");
            if (!rc)
                rc = md_body(b, m->reasoning);
            if (!rc)
                rc = store_buf_str(b, "</details>\n\n");
        }
        if (!rc && trimmed(m->answer) > 0)
            rc = md_body(b, m->answer);
        if (!rc && m->status == STORE_STATUS_INTERRUPTED)
            rc = store_buf_str(b, "*(interrupted)*\n\n");
        if (!rc && m->status == STORE_STATUS_STREAMING)
            rc = store_buf_str(b, "*(still being written)*\n\n");
        if (!rc && m->status == STORE_STATUS_ERROR)
            rc = store_buf_printf(b, "*(error: %s)*\n\n", m->error);
        if (!rc && m->has_run) {
            const struct store_run *r = &m->run;
            rc = store_buf_printf(b, "*%lld tokens at %.1f tokens/s, %s on %s",
                            (long long)(r->reasoning_tokens + r->answer_tokens), r->gen_tps,
                            r->backend[0] ? r->backend : "?", r->device[0] ? r->device : "?");
            if (!rc && r->think_budget > 0)
                rc = store_buf_printf(b, "; %lld reasoning tokens, budget %d (%s), %s",
                                      (long long)r->reasoning_tokens, r->think_budget,
                                      r->think_mode && r->think_mode[0] ? r->think_mode : "soft",
                                      r->budget_reached ? "reached" : "not reached");
            if (!rc && r->think_off)
                rc = store_buf_str(b, "; thinking off");
            if (!rc)
                rc = store_buf_str(b, "*\n\n");
        }
    }
    if (!rc && b->n >= 2)
        b->p[--b->n] = 0;  /* one newline at the end, not two */
    return rc;
}

/* ---- JSON ---- */

/* The length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    size_t n = p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC2 && p[0] < 0xE0 ? 2 : 0;
    if (!n || (p[0] >= 0xF0 && n != 4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    uint32_t cp = n == 2 ? (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F)
                : n == 3 ? (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F)
                         : (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 |
                               (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return n;
}

/* A JSON string; invalid UTF-8 becomes U+FFFD. */
static int json_str(struct store_buf *b, const char *s)
{
    int rc = store_buf_str(b, "\"");
    const unsigned char *p = (const unsigned char *)s;
    while (!rc && *p) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            rc = store_buf_add(b, e, 2);
            p++;
        } else if (*p < 0x20) {
            const char *e = *p == '\n' ? "\\n" : *p == '\t' ? "\\t" : *p == '\r' ? "\\r"
                          : *p == '\b' ? "\\b" : *p == '\f' ? "\\f" : NULL;
            rc = e ? store_buf_str(b, e) : store_buf_printf(b, "\\u%04x", *p);
            p++;
        } else {
            size_t n = utf8_len(p);
            if (n) {
                rc = store_buf_add(b, (const char *)p, n);
                p += n;
            } else {
                rc = store_buf_str(b, "\\ufffd");
                p++;
            }
        }
    }
    return rc ? rc : store_buf_str(b, "\"");
}

/* The shortest decimal that reads back as the same double (as_float: as the
 * same float, for settings that were floats), or null when not finite. */
static int json_num(struct store_buf *b, double v, bool as_float)
{
    if (!isfinite(v))
        return store_buf_str(b, "null");
    char s[40];
    /* plain digits for everyday magnitudes: 180, not 1.8e+02 */
    bool plain = fabs(v) >= 1e-5 && fabs(v) < 1e15;
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        double back = strtod(s, NULL);
        if ((as_float ? (float)back == (float)v : back == v) && (!plain || !strchr(s, 'e')))
            break;
    }
    return store_buf_str(b, s);
}

static int json_key(struct store_buf *b, int indent, const char *key, bool first)
{
    int rc = store_buf_printf(b, "%s\n%*s", first ? "" : ",", indent, "");
    if (!rc)
        rc = json_str(b, key);
    return rc ? rc : store_buf_str(b, ": ");
}

static int json_kv_str(struct store_buf *b, int indent, const char *key, const char *v, bool first)
{
    int rc = json_key(b, indent, key, first);
    return rc ? rc : json_str(b, v);
}

static int json_kv_int(struct store_buf *b, int indent, const char *key, long long v)
{
    int rc = json_key(b, indent, key, false);
    return rc ? rc : store_buf_printf(b, "%lld", v);
}

static int json_kv_num(struct store_buf *b, int indent, const char *key, double v, bool as_float)
{
    int rc = json_key(b, indent, key, false);
    return rc ? rc : json_num(b, v, as_float);
}

static int json_run(struct store_buf *b, const struct store_run *r)
{
    const int in = 8;
    int rc = store_buf_str(b, "{");
    if (!rc) rc = json_kv_str(b, in, "backend", r->backend, true);
    if (!rc) rc = json_kv_str(b, in, "device", r->device, false);
    if (!rc) rc = json_kv_str(b, in, "driver", r->driver, false);
    if (!rc) rc = json_kv_int(b, in, "n_ctx", r->n_ctx);
    if (!rc) rc = json_kv_int(b, in, "n_threads", r->n_threads);
    if (!rc) rc = json_kv_int(b, in, "n_gpu_layers", r->n_gpu_layers);
    if (!rc) rc = json_kv_int(b, in, "prompt_tokens", (long long)r->prompt_tokens);
    if (!rc) rc = json_kv_int(b, in, "reasoning_tokens", (long long)r->reasoning_tokens);
    if (!rc) rc = json_kv_int(b, in, "answer_tokens", (long long)r->answer_tokens);
    if (!rc) rc = json_kv_num(b, in, "load_ms", r->load_ms, false);
    if (!rc) rc = json_kv_num(b, in, "prompt_ms", r->prompt_ms, false);
    if (!rc) rc = json_kv_num(b, in, "ttft_ms", r->ttft_ms, false);
    if (!rc) rc = json_kv_num(b, in, "reasoning_ms", r->reasoning_ms, false);
    if (!rc) rc = json_kv_num(b, in, "answer_ms", r->answer_ms, false);
    if (!rc) rc = json_kv_num(b, in, "prompt_tps", r->prompt_tps, false);
    if (!rc) rc = json_kv_num(b, in, "gen_tps", r->gen_tps, false);
    if (!rc) rc = json_kv_str(b, in, "stop_reason", r->stop_reason, false);
    if (!rc) rc = json_kv_num(b, in, "temp", r->temp, true);
    if (!rc) rc = json_kv_int(b, in, "top_k", r->top_k);
    if (!rc) rc = json_kv_num(b, in, "top_p", r->top_p, true);
    if (!rc) rc = json_kv_num(b, in, "min_p", r->min_p, true);
    if (!rc) rc = json_kv_num(b, in, "repeat_penalty", r->repeat_penalty, true);
    if (!rc) rc = json_key(b, in, "seed", false);
    if (!rc) rc = store_buf_printf(b, "%llu", (unsigned long long)r->seed);
    if (!rc) rc = json_kv_int(b, in, "think_budget", r->think_budget);
    if (!rc) rc = json_kv_str(b, in, "think_mode", r->think_mode ? r->think_mode : "", false);
    if (!rc) rc = json_key(b, in, "think_off", false);
    if (!rc) rc = store_buf_str(b, r->think_off ? "true" : "false");
    if (!rc) rc = json_key(b, in, "budget_reached", false);
    if (!rc) rc = store_buf_str(b, r->budget_reached ? "true" : "false");
    if (!rc) rc = store_buf_str(b, "\n      }");
    return rc;
}

static int export_json(const struct store_conv *c, unsigned flags, struct store_buf *b)
{
    char t[64];
    int rc = store_buf_str(b, "{");
    if (!rc) rc = json_key(b, 2, "id", true);
    if (!rc) rc = store_buf_printf(b, "%lld", (long long)c->id);
    if (!rc) rc = json_kv_str(b, 2, "title", c->title, false);
    fmt_time(t, sizeof t, c->created, true);
    if (!rc) rc = json_kv_str(b, 2, "created", t, false);
    fmt_time(t, sizeof t, c->updated, true);
    if (!rc) rc = json_kv_str(b, 2, "updated", t, false);
    if (!rc) rc = json_key(b, 2, "pinned", false);
    if (!rc) rc = store_buf_str(b, c->pinned ? "true" : "false");
    if (!rc) rc = json_key(b, 2, "messages", false);
    if (!rc) rc = store_buf_str(b, c->n ? "[" : "[]");
    for (size_t i = 0; !rc && i < c->n; i++) {
        const struct store_message *m = &c->msgs[i];
        rc = store_buf_str(b, i ? ",\n    {" : "\n    {");
        if (!rc) rc = json_kv_str(b, 6, "role", store_role_name(m->role), true);
        if (!rc) rc = json_kv_str(b, 6, "status", store_status_name(m->status), false);
        fmt_time(t, sizeof t, m->created, true);
        if (!rc) rc = json_kv_str(b, 6, "created", t, false);
        if (!rc) rc = json_key(b, 6, "model", false);
        if (!rc) rc = m->model_name[0] ? json_str(b, m->model_name) : store_buf_str(b, "null");
        if (!rc)
            rc = json_kv_str(b, 6, "reasoning",
                             flags & STORE_EXPORT_REASONING ? m->reasoning : "", false);
        if (!rc) rc = json_kv_str(b, 6, "answer", m->answer, false);
        if (!rc) rc = json_kv_str(b, 6, "error", m->error, false);
        if (!rc) rc = json_key(b, 6, "run", false);
        if (!rc) rc = m->has_run ? json_run(b, &m->run) : store_buf_str(b, "null");
        if (!rc) rc = store_buf_str(b, "\n    }");
    }
    if (!rc && c->n)
        rc = store_buf_str(b, "\n  ]");
    if (!rc)
        rc = store_buf_str(b, "\n}\n");
    return rc;
}

int store_export(struct store *s, int64_t conv, enum store_export_format fmt, unsigned flags,
                 FILE *f, char *err, size_t errlen)
{
    if (fmt != STORE_EXPORT_MARKDOWN && fmt != STORE_EXPORT_JSON)
        return store_fail(err, errlen, EINVAL, "export as Markdown or JSON");
    struct store_conv *c = NULL;
    struct store_buf b = {0};
    int rc = store_conv_load(s, conv, &c, err, errlen);
    if (rc)
        return rc;
    rc = fmt == STORE_EXPORT_MARKDOWN ? export_md(c, flags, &b) : export_json(c, flags, &b);
    if (rc)
        rc = store_fail(err, errlen, rc, "out of memory");
    else if (b.n && (fwrite(b.p, 1, b.n, f) != b.n || fflush(f) != 0))
        rc = store_fail(err, errlen, errno ? errno : EIO, "writing the export: %s",
                        strerror(errno ? errno : EIO));
    store_buf_free(&b);
    store_conv_free(c);
    return rc;
}
