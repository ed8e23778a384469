/* The remote engine: OpenAI-compatible chat completions over libcurl, the
 * streamed server-sent events turned into the engine's PHASE/TOKEN/DONE
 * events, with the timing measured on this side. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "infer/ckd.h"
#include "infer/remote.h"

/* Error lines quote what servers send: control characters become spaces,
 * so a message stays one line. */
static void one_line(char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f)
            s[n] = ' ';
    /* a quote cut inside a UTF-8 character loses the partial character */
    size_t i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
        i--;
    if (i > 0) {
        unsigned char c = (unsigned char)s[i - 1];
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        if (n - (i - 1) < need)
            s[i - 1] = 0;
    }
}

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        one_line(err);
    }
    return code;
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Appends len bytes to a growing buffer kept NUL-terminated. */
static int buf_append(char **buf, size_t *n, size_t *cap, const char *s, size_t len)
{
    size_t need;
    if (ckd_add_size(&need, *n, len) || ckd_add_size(&need, need, 1))
        return ENOMEM;
    if (need > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < need)
            if (ckd_mul_size(&c, c, 2))
                return ENOMEM;
        char *b = realloc(*buf, c);
        if (!b)
            return ENOMEM;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *n, s, len);
    *n += len;
    (*buf)[*n] = 0;
    return 0;
}

/* ---- server-sent events ---- */

void sse_init(struct sse *s) { memset(s, 0, sizeof *s); }

void sse_free(struct sse *s)
{
    free(s->line);
    free(s->data);
    memset(s, 0, sizeof *s);
}

static int sse_dispatch(struct sse *s, sse_data_fn fn, void *ctx)
{
    if (!s->has_data)
        return 0;
    s->has_data = false;
    size_t n = s->dlen;
    s->dlen = 0;
    return fn(ctx, s->data ? s->data : "", n);
}

static int sse_line(struct sse *s, sse_data_fn fn, void *ctx)
{
    const char *l = s->line ? s->line : "";
    size_t n = s->len;
    s->len = 0;
    if (n == 0)
        return sse_dispatch(s, fn, ctx);
    if (l[0] == ':')
        return 0;   /* a comment: keep-alives */
    const char *colon = memchr(l, ':', n);
    size_t field = colon ? (size_t)(colon - l) : n;
    if (field != 4 || memcmp(l, "data", 4))
        return 0;   /* event, id, retry and unknown fields change nothing here */
    const char *v = colon ? colon + 1 : l + n;
    if (v < l + n && *v == ' ')
        v++;
    size_t vlen = (size_t)(l + n - v);
    if (s->has_data && buf_append(&s->data, &s->dlen, &s->dcap, "\n", 1))
        return ENOMEM;
    if (buf_append(&s->data, &s->dlen, &s->dcap, v, vlen))
        return ENOMEM;
    s->has_data = true;
    return 0;
}

int sse_push(struct sse *s, const char *buf, size_t len, sse_data_fn fn, void *ctx)
{
    for (size_t i = 0; i < len;) {
        char c = buf[i];
        if (s->after_cr) {
            s->after_cr = false;
            if (c == '\n') {
                i++;
                continue;
            }
        }
        if (c == '\r' || c == '\n') {
            s->after_cr = c == '\r';
            i++;
            int rc = sse_line(s, fn, ctx);
            if (rc)
                return rc;
            continue;
        }
        size_t j = i;
        while (j < len && buf[j] != '\r' && buf[j] != '\n')
            j++;
        if (s->len + (j - i) > SSE_LINE_MAX)
            return E2BIG;
        if (buf_append(&s->line, &s->len, &s->cap, buf + i, j - i))
            return ENOMEM;
        i = j;
    }
    return 0;
}

int sse_finish(struct sse *s, sse_data_fn fn, void *ctx)
{
    if (s->len) {
        int rc = sse_line(s, fn, ctx);
        if (rc)
            return rc;
    }
    return sse_dispatch(s, fn, ctx);
}

/* ---- one streamed reply ---- */

static void post_phase(struct remote_stream *st, enum engine_phase p)
{
    st->phase = p;
    struct engine_event ev = {.type = ENGINE_EVENT_PHASE, .request = st->request};
    ev.u.phase = p;
    st->emit(st->ctx, &ev);
}

void remote_stream_init(struct remote_stream *st, uint64_t request, remote_emit_fn emit,
                        void *ctx)
{
    memset(st, 0, sizeof *st);
    st->request = request;
    st->emit = emit;
    st->ctx = ctx;
    st->clock = mono_ms;
    sse_init(&st->sse);
    reason_init(&st->rs, false);
    st->stop = ENGINE_STOP_END;
    st->t0 = st->clock();
    post_phase(st, ENGINE_PHASE_READING);
}

void remote_stream_free(struct remote_stream *st)
{
    sse_free(&st->sse);
    free(st->body);
    st->body = NULL;
    free(st->hold);
    st->hold = NULL;
    st->hold_len = st->hold_cap = st->hold_lead = 0;
}

static int stream_fail(struct remote_stream *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int stream_fail(struct remote_stream *st, int code, const char *fmt, ...)
{
    if (!st->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->error, sizeof st->error, fmt, ap);
        va_end(ap);
        one_line(st->error);
        st->failed = true;
    }
    return code;
}

/* Length of the longest prefix of s (at most max bytes) that ends at a UTF-8
 * character boundary. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n ? n : max;
}

void remote_emit_span(const struct reason_span *sp, uint64_t request, int32_t token, bool *first,
                      remote_emit_fn emit, void *ctx)
{
    for (size_t off = 0; off < sp->len;) {
        size_t n = utf8_cut(sp->text + off, sp->len - off, ENGINE_TEXT_MAX);
        struct engine_event ev = {.type = ENGINE_EVENT_TOKEN, .request = request};
        ev.u.token.id = token;
        ev.u.token.first = *first;
        *first = false;
        ev.u.token.kind = sp->kind;
        ev.u.token.leading = sp->leading;
        ev.u.token.len = n;
        memcpy(ev.u.token.text, sp->text + off, n);
        emit(ctx, &ev);
        off += n;
    }
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static void on_span(void *ctx, const struct reason_span *sp);

/* Text of one part as spans of kind, its leading whitespace marked as the
 * splitter marks it. */
static void push_part(struct remote_stream *st, enum reason_kind kind, const char *s, size_t len)
{
    size_t ws = 0;
    if (!st->rs.started[kind])
        while (ws < len && is_ws(s[ws]))
            ws++;
    if (ws) {
        struct reason_span sp = {kind, s, ws, true};
        on_span(st, &sp);
    }
    if (ws < len) {
        st->rs.started[kind] = true;
        struct reason_span sp = {kind, s + ws, len - ws, false};
        on_span(st, &sp);
    }
}

/* Lets the held text out as kind: reasoning once a </think> came, the
 * answer when the reply ended without one. */
static void flush_hold(struct remote_stream *st, enum reason_kind kind)
{
    size_t n = st->hold_len, lead = st->hold_lead;
    st->holding = false;
    st->hold_len = st->hold_lead = 0;   /* on_span below must not hold again */
    if (!n)
        return;
    if (kind == REASON_KIND_REASONING) {
        struct reason_span a = {kind, st->hold, lead, true}, b = {kind, st->hold + lead, n - lead,
                                                                  false};
        if (lead)
            on_span(st, &a);
        if (n > lead)
            on_span(st, &b);
    } else {
        push_part(st, kind, st->hold, n);
    }
}

/* Reasoning that no <think> opened (the splitter unopened, or past it). */
static bool untagged_now(const struct reason *r)
{
    return r->state == REASON_STATE_UNOPENED || (r->state == REASON_STATE_REASONING && r->untagged);
}

static void on_span(void *ctx, const struct reason_span *sp)
{
    struct remote_stream *st = ctx;
    if (st->holding && sp->kind == REASON_KIND_REASONING && untagged_now(&st->rs)) {
        if (st->hold_len + sp->len > REMOTE_REPLY_MAX) {
            flush_hold(st, REASON_KIND_REASONING);   /* that long: reasoning, shown from here */
        } else {
            if (buf_append(&st->hold, &st->hold_len, &st->hold_cap, sp->text, sp->len)) {
                stream_fail(st, ENOMEM, "out of memory");
                return;
            }
            if (sp->leading)
                st->hold_lead += sp->len;
            if (st->phase == ENGINE_PHASE_READING)
                post_phase(st, ENGINE_PHASE_THINKING);
            return;
        }
    }
    if (st->hold_len)   /* what comes now shows it (an answer after </think>, a <think>) */
        flush_hold(st, REASON_KIND_REASONING);
    if (sp->kind == REASON_KIND_ANSWER && !sp->leading && st->phase != ENGINE_PHASE_ANSWERING) {
        st->t_switch = st->clock();
        post_phase(st, ENGINE_PHASE_ANSWERING);
    } else if (sp->kind == REASON_KIND_REASONING && st->phase == ENGINE_PHASE_READING) {
        post_phase(st, ENGINE_PHASE_THINKING);
    }
    remote_emit_span(sp, st->request, st->n_deltas, &st->first_event, st->emit, st->ctx);
}

static enum engine_stop stop_from_finish(const char *f)
{
    if (!strcmp(f, "length"))
        return ENGINE_STOP_LENGTH;
    return ENGINE_STOP_END;     /* "stop", "eos", "tool_calls", ... */
}

/* The message of an error object: {"error": {"message": M}}, {"error": M},
 * {"message": M} or {"detail": M}; NULL when none. */
static const char *error_message(json_t *root)
{
    json_t *e = json_object_get(root, "error");
    if (json_is_object(e)) {
        json_t *m = json_object_get(e, "message");
        if (json_is_string(m))
            return json_string_value(m);
        return "(no message)";
    }
    if (json_is_string(e))
        return json_string_value(e);
    if (e && !json_is_null(e))
        return "(no message)";
    return NULL;
}

static int json_int_field(json_t *o, const char *key, int *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        return 0;
    json_int_t x = json_integer_value(v);
    *out = x < 0 ? 0 : x > INT32_MAX ? INT32_MAX : (int)x;
    return 1;
}

static int on_object(struct remote_stream *st, json_t *root, const char *part);

static int on_data(void *ctx, const char *data, size_t len)
{
    struct remote_stream *st = ctx;
    while (len && isspace((unsigned char)*data))
        data++, len--;
    while (len && isspace((unsigned char)data[len - 1]))
        len--;
    if (len == 0)
        return 0;
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        st->done = true;
        return 0;
    }
    json_error_t jerr;
    json_t *root = json_loadb(data, len, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return stream_fail(st, EPROTO, "the server sent a malformed event (%s): %.60s",
                           root ? "not an object" : jerr.text, data);
    }
    int rc = on_object(st, root, "delta");
    json_decref(root);
    return rc;
}

/* A chunk (part = "delta") or a whole non-streamed reply (part = "message"). */
static int on_object(struct remote_stream *st, json_t *root, const char *part)
{
    const char *em = error_message(root);
    if (em)
        return stream_fail(st, EIO, "the server reported an error: %s", em);
    json_t *usage = json_object_get(root, "usage");
    if (json_is_object(usage)) {
        st->has_usage = true;
        json_int_field(usage, "prompt_tokens", &st->usage_prompt);
        json_int_field(usage, "completion_tokens", &st->usage_completion);
        json_t *det = json_object_get(usage, "completion_tokens_details");
        st->usage_reasoning = -1;
        if (!(json_is_object(det) && json_int_field(det, "reasoning_tokens", &st->usage_reasoning)))
            json_int_field(usage, "reasoning_tokens", &st->usage_reasoning);
    }
    json_t *choices = json_object_get(root, "choices");
    json_t *c0 = json_is_array(choices) ? json_array_get(choices, 0) : NULL;
    json_t *delta = json_is_object(c0) ? json_object_get(c0, part) : NULL;
    const char *rtext = NULL, *atext = NULL;
    size_t rlen = 0, alen = 0;
    if (json_is_object(delta)) {
        json_t *r = json_object_get(delta, "reasoning_content");
        if (!json_is_string(r))
            r = json_object_get(delta, "reasoning");
        if (json_is_string(r)) {
            rtext = json_string_value(r);
            rlen = json_string_length(r);
        }
        json_t *a = json_object_get(delta, "content");
        if (json_is_string(a)) {
            atext = json_string_value(a);
            alen = json_string_length(a);
        }
    }
    if (rlen && !st->reasoning_field) {
        /* a server with a reasoning parser: its content is the answer */
        st->reasoning_field = true;
        flush_hold(st, REASON_KIND_REASONING);
        if (!st->content_seen || st->rs.state == REASON_STATE_UNOPENED) {
            reason_init(&st->rs, false);
            st->content_seen = true;
        }
    }
    if (alen && !st->content_seen) {
        st->content_seen = true;
        if (st->think != REMOTE_THINK_PLAIN) {
            reason_init_unopened(&st->rs);
            st->holding = st->think == REMOTE_THINK_UNKNOWN;
        }
    }
    if (rlen || alen) {
        if (st->t_first == 0)
            st->t_first = st->clock();
        st->n_deltas++;
        st->first_event = true;
        if (rlen || reason_kind_now(&st->rs) == REASON_KIND_REASONING)
            st->reasoning_deltas++;
        else
            st->answer_deltas++;
        if (rlen)
            push_part(st, REASON_KIND_REASONING, rtext, rlen);
        if (alen)
            reason_push(&st->rs, atext, alen, on_span, st);
        if (st->hold_len && st->rs.state == REASON_STATE_ANSWER)
            flush_hold(st, REASON_KIND_REASONING);    /* a </think> ended the delta */
        if (st->first_event) {
            /* held back (a partial tag): the token still counts */
            struct engine_event ev = {.type = ENGINE_EVENT_TOKEN, .request = st->request};
            ev.u.token.id = st->n_deltas;
            ev.u.token.first = true;
            ev.u.token.kind = reason_kind_now(&st->rs);
            st->first_event = false;
            st->emit(st->ctx, &ev);
        }
    }
    json_t *fin = json_is_object(c0) ? json_object_get(c0, "finish_reason") : NULL;
    if (json_is_string(fin)) {
        st->finished = true;
        st->stop = stop_from_finish(json_string_value(fin));
    }
    return 0;
}

int remote_stream_feed(struct remote_stream *st, const char *buf, size_t len)
{
    if (st->failed)
        return EIO;
    if (st->http_status >= 400 || st->json_reply) {
        size_t max = st->http_status >= 400 ? REMOTE_BODY_MAX : REMOTE_REPLY_MAX;
        size_t n = len < max - st->body_len ? len : max - st->body_len;
        if (n < len && st->json_reply && st->http_status < 400)
            return stream_fail(st, E2BIG, "the server's reply is over %zu bytes", max);
        if (buf_append(&st->body, &st->body_len, &st->body_cap, buf, n))
            return stream_fail(st, ENOMEM, "out of memory");
        return 0;
    }
    int rc = sse_push(&st->sse, buf, len, on_data, st);
    if (rc && !st->failed) {
        if (rc == E2BIG)
            stream_fail(st, rc, "the server sent a line longer than %u bytes", SSE_LINE_MAX);
        else
            stream_fail(st, rc, "%s", strerror(rc));
    }
    return rc;
}

/* One line from an error body: its JSON message, or its first line. */
static void body_message(const char *body, size_t len, char *out, size_t cap)
{
    out[0] = 0;
    if (!body || !len)
        return;
    json_t *root = json_loadb(body, len, 0, NULL);
    const char *m = json_is_object(root) ? error_message(root) : NULL;
    if (!m && json_is_object(root)) {
        json_t *d = json_object_get(root, "message");
        if (!json_is_string(d))
            d = json_object_get(root, "detail");
        if (json_is_string(d))
            m = json_string_value(d);
    }
    if (m) {
        snprintf(out, cap, "%s", m);
    } else {
        while (len && isspace((unsigned char)*body))
            body++, len--;
        size_t n = 0;
        while (n < len && body[n] != '\n' && body[n] != '\r')
            n++;
        if (n > 200)
            n = 200;
        snprintf(out, cap, "%.*s", (int)n, body);
    }
    json_decref(root);
    one_line(out);
}

void remote_stream_end(struct remote_stream *st, const char *transport_error, bool user_stop,
                       struct engine_event *done)
{
    if (st->http_status < 400 && !st->failed && !user_stop && st->json_reply) {
        /* a server that does not stream: one JSON reply */
        json_error_t jerr;
        json_t *root = json_loadb(st->body ? st->body : "", st->body_len, 0, &jerr);
        if (!json_is_object(root))
            stream_fail(st, EPROTO, "the server sent a malformed reply (%s)",
                        root ? "not an object" : jerr.text);
        else if (!on_object(st, root, "message"))
            st->done = true;
        json_decref(root);
    } else if (st->http_status < 400 && !st->failed && !user_stop) {
        int rc = sse_finish(&st->sse, on_data, st);
        if (rc && !st->failed)
            stream_fail(st, rc, "%s", strerror(rc));
    }
    reason_flush(&st->rs, on_span, st);
    if (st->hold_len) {
        if (!untagged_now(&st->rs)) {
            flush_hold(st, REASON_KIND_REASONING);   /* a tag was the last text */
        } else {
            /* no </think>: the text was the answer after all */
            flush_hold(st, REASON_KIND_ANSWER);
            st->held_as_answer = true;
            st->answer_deltas += st->reasoning_deltas;
            st->reasoning_deltas = 0;
            st->t_switch = st->t_first;
        }
    }
    double t_end = st->clock();
    memset(done, 0, sizeof *done);
    done->type = ENGINE_EVENT_DONE;
    done->request = st->request;
    enum engine_stop stop = st->stop;
    if (st->http_status >= 400) {
        char msg[300];
        body_message(st->body, st->body_len, msg, sizeof msg);
        st->failed = false;
        stream_fail(st, EIO, "HTTP %d from the server%s%s%s", st->http_status,
                    msg[0] ? ": " : "", msg,
                    st->http_status == 401 || st->http_status == 403
                        ? " (check the API key: --api-key-file)" : "");
    } else if (st->failed) {
        /* the parse error stands */
    } else if (user_stop) {
        stop = ENGINE_STOP_USER;
    } else if (transport_error) {
        stream_fail(st, EIO, "%s", transport_error);
    } else if (!st->done && !st->finished) {
        stream_fail(st, EIO, "the server closed the stream before the reply ended");
    }
    if (st->failed && !(user_stop && st->http_status < 400)) {
        struct engine_event ev = {.type = ENGINE_EVENT_ERROR, .request = st->request};
        snprintf(ev.u.error, sizeof ev.u.error, "%s", st->error);
        st->emit(st->ctx, &ev);
        stop = ENGINE_STOP_ERROR;
    } else if (st->failed) {
        stop = ENGINE_STOP_USER;
    }
    done->u.done.stop = stop;

    /* what this server does with R1's reasoning, for its next replies */
    if (st->reasoning_field)
        st->think = REMOTE_THINK_PLAIN;
    else if (st->rs.untagged && st->rs.state == REASON_STATE_ANSWER)
        st->think = REMOTE_THINK_LONE_CLOSE;
    else if (st->held_as_answer && stop == ENGINE_STOP_END && (st->done || st->finished))
        st->think = REMOTE_THINK_PLAIN;

    struct engine_stats *s = &done->u.done.stats;
    s->reasoning_tokens = st->reasoning_deltas;
    s->answer_tokens = st->answer_deltas;
    if (st->has_usage) {
        s->prompt_tokens = st->usage_prompt;
        /* a server without a reasoning parser counts 0 reasoning tokens
         * where the reasoning was found here */
        if (st->usage_reasoning > 0 || (st->usage_reasoning == 0 && !st->reasoning_deltas))
            s->reasoning_tokens = st->usage_reasoning;
        if (st->usage_completion >= s->reasoning_tokens &&
            (st->usage_completion || !st->n_deltas))
            s->answer_tokens = st->usage_completion - s->reasoning_tokens;
    }
    if (st->t_first > 0) {
        s->first_token_ms = st->t_first - st->t0;
        s->prompt_ms = s->first_token_ms;
        if (s->prompt_ms > 0)
            s->prompt_tps = s->prompt_tokens / (s->prompt_ms / 1e3);
        if (st->t_switch > 0) {
            s->reasoning_ms = st->reasoning_deltas ? st->t_switch - st->t_first : 0;
            s->answer_ms = t_end - st->t_switch;
        } else if (st->reasoning_deltas) {
            s->reasoning_ms = t_end - st->t_first;
        } else {
            s->answer_ms = t_end - st->t_first;
        }
        /* the first token's time is the prompt's: the rate counts the ones after it */
        int n = s->reasoning_tokens + s->answer_tokens;
        if (n > 1 && t_end > st->t_first)
            s->gen_tps = (n - 1) / ((t_end - st->t_first) / 1e3);
    }
    snprintf(s->backend, sizeof s->backend, "remote");
}

/* ---- URLs and keys ---- */

int remote_url_host(const char *url, char *buf, size_t cap)
{
    const char *p;
    const char *port = NULL;
    if (!strncmp(url, "http://", 7))
        p = url + 7, port = "80";
    else if (!strncmp(url, "https://", 8))
        p = url + 8, port = "443";
    else
        return EINVAL;
    const char *at = NULL;
    size_t n = strcspn(p, "/?#");
    for (size_t i = 0; i < n; i++)
        if (p[i] == '@')
            at = p + i;     /* user:password@ is never shown */
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    if (n == 0)
        return EINVAL;
    /* a port is there unless the last ':' is inside [v6] brackets */
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++)
        if (p[i] == ':')
            colon = p + i;
        else if (p[i] == ']')
            colon = NULL;
    if (colon)
        snprintf(buf, cap, "%.*s", (int)n, p);
    else
        snprintf(buf, cap, "%.*s:%s", (int)n, p, port);
    return 0;
}

int remote_read_key(const char *path, char *buf, size_t cap, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        return fail(err, errlen, e, "%s: %s", path, strerror(e));
    }
    char line[4096];
    int rc = 0;
    if (!fgets(line, sizeof line, f)) {
        rc = ferror(f) ? EIO : EINVAL;
        fclose(f);
        return fail(err, errlen, rc, "%s: %s", path, rc == EIO ? strerror(EIO) : "the file is empty");
    }
    fclose(f);
    char *s = line;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    while (*s && isspace((unsigned char)*s))
        s++, n--;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            rc = EINVAL;
    if (!n || rc) {
        memset(line, 0, sizeof line);
        return fail(err, errlen, EINVAL, "%s: %s", path,
                    n ? "the key has control characters" : "the first line is empty");
    }
    if (n >= cap) {
        memset(line, 0, sizeof line);
        return fail(err, errlen, EINVAL, "%s: the key is longer than %zu bytes", path, cap - 1);
    }
    memcpy(buf, s, n + 1);
    memset(line, 0, sizeof line);
    return 0;
}

void remote_display_name(const struct model_info *in, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s@%s", in->name, in->device ? in->device : "?");
}

void remote_fingerprint(const char *display_name, char out[33])
{
    /* FNV-1a, two lanes, over "remote:" and the name: a file's fingerprint
     * hashes its size and bytes, so the two never meet in practice */
    uint64_t h[2] = {0xcbf29ce484222325ull, 0x84222325cbf29ce4ull};
    static const char prefix[] = "remote:";
    for (int lane = 0; lane < 2; lane++) {
        for (const char *p = prefix; *p; p++)
            h[lane] = (h[lane] ^ (unsigned char)*p) * 0x100000001b3ull;
        for (const char *p = display_name; *p; p++)
            h[lane] = (h[lane] ^ (unsigned char)*p) * 0x100000001b3ull;
    }
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h[0], (unsigned long long)h[1]);
}

/* ---- the connection ---- */

struct remote {
    char *base;                 /* the URL without a trailing "/" or "/v1" */
    char *key;                  /* NULL: none */
    char host[64];
    struct remote_timeouts to;
    struct model_info info;
    CURL *curl;
    enum remote_think think;    /* what its replies showed so far */
};

struct body {
    char *p;
    size_t n, cap, max;
};

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct body *b = ud;
    size_t len = size * nmemb;
    if (b->n + len > b->max)
        return 0;
    if (buf_append(&b->p, &b->n, &b->cap, ptr, len))
        return 0;
    return len;
}

static struct curl_slist *headers(const struct remote *rm, bool json)
{
    struct curl_slist *h = NULL, *t;
    if (json) {
        if (!(t = curl_slist_append(h, "Content-Type: application/json")))
            goto oom;
        h = t;
        if (!(t = curl_slist_append(h, "Accept: text/event-stream")))
            goto oom;
        h = t;
    }
    if (rm->key) {
        size_t n = strlen(rm->key) + 32;
        char *line = malloc(n);
        if (!line)
            goto oom;
        snprintf(line, n, "Authorization: Bearer %s", rm->key);
        t = curl_slist_append(h, line);
        memset(line, 0, n);
        free(line);
        if (!t)
            goto oom;
        h = t;
    }
    if (!h && !(h = curl_slist_append(NULL, "Expect:")))
        return NULL;
    return h;
oom:
    curl_slist_free_all(h);
    return NULL;
}

/* One line for a failed transfer. */
static int transfer_error(const struct remote *rm, CURLcode res, const char *ebuf, char *err,
                          size_t errlen)
{
    const char *detail = ebuf[0] ? ebuf : curl_easy_strerror(res);
    switch (res) {
    case CURLE_COULDNT_CONNECT:
        return fail(err, errlen, ECONNREFUSED, "cannot reach %s: %s", rm->base, detail);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return fail(err, errlen, EHOSTUNREACH, "cannot reach %s: %s", rm->base, detail);
    case CURLE_OPERATION_TIMEDOUT:
        return fail(err, errlen, ETIMEDOUT, "%s did not answer in time: %s", rm->host, detail);
    default:
        return fail(err, errlen, EIO, "talking to %s failed: %s", rm->host, detail);
    }
}

static void setup(struct remote *rm, const char *url, char *ebuf)
{
    curl_easy_reset(rm->curl);
    curl_easy_setopt(rm->curl, CURLOPT_URL, url);
    curl_easy_setopt(rm->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(rm->curl, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(rm->curl, CURLOPT_CONNECTTIMEOUT_MS, rm->to.connect_ms);
    curl_easy_setopt(rm->curl, CURLOPT_USERAGENT, "ponder");
    curl_easy_setopt(rm->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    ebuf[0] = 0;
}

/* The model list: finds want (NULL: the first); fills rm->info's name and
 * context. */
static int pick_model(struct remote *rm, const char *body, size_t len, const char *want,
                      char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    json_t *data = json_is_object(root) ? json_object_get(root, "data") : NULL;
    int rc = 0;
    if (!json_is_array(data)) {
        rc = fail(err, errlen, EPROTO, "%s answered GET /v1/models without a model list",
                  rm->host);
        goto out;
    }
    json_t *found = NULL;
    char names[200] = "";
    size_t i;
    json_t *m;
    json_array_foreach(data, i, m) {
        json_t *id = json_is_object(m) ? json_object_get(m, "id") : NULL;
        if (!json_is_string(id))
            continue;
        const char *s = json_string_value(id);
        if (!found && (!want || !strcmp(s, want)))
            found = m;
        size_t l = strlen(names);
        if (l + 4 < sizeof names)
            snprintf(names + l, sizeof names - l, "%s%s", l ? ", " : "", s);
    }
    if (!found) {
        rc = want ? fail(err, errlen, ENOENT, "%s has no model '%s' (it has: %s)", rm->host, want,
                         names[0] ? names : "none")
                  : fail(err, errlen, ENOENT, "%s lists no models", rm->host);
        goto out;
    }
    snprintf(rm->info.name, sizeof rm->info.name, "%s",
             json_string_value(json_object_get(found, "id")));
    /* the context, where the server says: vLLM max_model_len, llama-server
     * meta.n_ctx_train, ponder serve / others context_length */
    int ctx = 0;
    if (!json_int_field(found, "max_model_len", &ctx) &&
        !json_int_field(found, "context_length", &ctx)) {
        json_t *meta = json_object_get(found, "meta");
        if (json_is_object(meta) && !json_int_field(meta, "n_ctx", &ctx))
            json_int_field(meta, "n_ctx_train", &ctx);
    }
    rm->info.n_ctx = ctx;
    rm->info.n_ctx_train = ctx;
out:
    json_decref(root);
    return rc;
}

int remote_open(const struct engine_remote *r, const struct remote_timeouts *to,
                struct remote **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!r || !r->url || (strncmp(r->url, "http://", 7) && strncmp(r->url, "https://", 8)))
        return fail(err, errlen, EINVAL, "the remote URL must start with http:// or https://");
    if (curl_global_init(CURL_GLOBAL_DEFAULT))
        return fail(err, errlen, EIO, "cannot initialise libcurl");
    struct remote *rm = calloc(1, sizeof *rm);
    char ebuf[CURL_ERROR_SIZE];
    char *url = NULL;
    struct curl_slist *h = NULL;
    struct body b = {.max = 1u << 20};
    int rc = 0;
    if (!rm || !(rm->base = strdup(r->url)) || (r->api_key && !(rm->key = strdup(r->api_key)))) {
        rc = fail(err, errlen, ENOMEM, "out of memory");
        goto out;
    }
    size_t n = strlen(rm->base);
    while (n && rm->base[n - 1] == '/')
        rm->base[--n] = 0;
    if (n >= 3 && !strcmp(rm->base + n - 3, "/v1"))
        rm->base[n -= 3] = 0;
    if (remote_url_host(rm->base, rm->host, sizeof rm->host)) {
        rc = fail(err, errlen, EINVAL, "'%s' is not a URL with a host", r->url);
        goto out;
    }
    rm->to = (struct remote_timeouts){10000, 30000, 600000};
    if (to) {
        if (to->connect_ms > 0)
            rm->to.connect_ms = to->connect_ms;
        if (to->models_ms > 0)
            rm->to.models_ms = to->models_ms;
        if (to->idle_ms > 0)
            rm->to.idle_ms = to->idle_ms;
    }
    snprintf(rm->info.arch, sizeof rm->info.arch, "remote");
    snprintf(rm->info.ftype, sizeof rm->info.ftype, "?");
    rm->info.backend = "remote";
    rm->info.device = rm->host;
    rm->info.cpu_device = "";
    if (!(rm->curl = curl_easy_init()) || !(url = malloc(n + 16))) {
        rc = fail(err, errlen, ENOMEM, "out of memory");
        goto out;
    }
    snprintf(url, n + 16, "%s/v1/models", rm->base);
    if (!(h = headers(rm, false))) {
        rc = fail(err, errlen, ENOMEM, "out of memory");
        goto out;
    }
    setup(rm, url, ebuf);
    curl_easy_setopt(rm->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(rm->curl, CURLOPT_TIMEOUT_MS, rm->to.models_ms);
    curl_easy_setopt(rm->curl, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(rm->curl, CURLOPT_WRITEDATA, &b);
    CURLcode res = curl_easy_perform(rm->curl);
    if (res == CURLE_WRITE_ERROR) {
        rc = fail(err, errlen, EPROTO, "%s sent a model list over %zu bytes", rm->host, b.max);
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(rm->curl, CURLINFO_RESPONSE_CODE, &status);
    if (res != CURLE_OK && status < 400) {
        rc = transfer_error(rm, res, ebuf, err, errlen);
        goto out;
    }
    if (status >= 400) {     /* also when its body was cut short */
        char msg[300];
        body_message(b.p, b.n, msg, sizeof msg);
        bool auth = status == 401 || status == 403;
        rc = fail(err, errlen, auth ? EACCES : EIO, "HTTP %ld from %s%s%s%s", status, rm->host,
                  msg[0] ? ": " : "", msg, auth ? " (check the API key: --api-key-file)" : "");
        goto out;
    }
    rc = pick_model(rm, b.p ? b.p : "", b.n, r->model, err, errlen);
out:
    curl_slist_free_all(h);
    free(url);
    free(b.p);
    if (rc) {
        remote_free(rm);
        if (!rm)
            curl_global_cleanup();
        return rc;
    }
    *out = rm;
    return 0;
}

void remote_free(struct remote *rm)
{
    if (!rm)
        return;
    if (rm->curl)
        curl_easy_cleanup(rm->curl);
    if (rm->key) {
        memset(rm->key, 0, strlen(rm->key));
        free(rm->key);
    }
    free(rm->base);
    free(rm);
    curl_global_cleanup();
}

const struct model_info *remote_info(const struct remote *rm) { return &rm->info; }

/* ---- generation ---- */

struct xfer {
    struct remote_stream st;
    CURL *curl;
    const atomic_bool *stop;
    double last_byte;       /* ms: the last byte (keep-alives count), or the start */
    long idle_ms;
};

static size_t gen_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * nmemb;
    if (x->stop && atomic_load(x->stop))
        return 0;
    x->last_byte = mono_ms();
    if (!x->st.http_status) {
        long status = 0;
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
        x->st.http_status = status > 0 && status < 1000 ? (int)status : 200;
        char *ct = NULL;
        curl_easy_getinfo(x->curl, CURLINFO_CONTENT_TYPE, &ct);
        x->st.json_reply = ct && !strncasecmp(ct, "application/json", 16);
    }
    return remote_stream_feed(&x->st, ptr, len) ? 0 : len;
}

static int gen_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                        curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    struct xfer *x = ud;
    return x->stop && atomic_load(x->stop) ? 1 : 0;
}

/* curl_easy_perform, but looking at *stop every 50 ms even while the server
 * sends nothing (a long prompt on a slow server): a stop never waits for
 * the next byte.  No byte for idle_ms is a timeout (curl's low-speed check
 * averages over seconds, so a trickle before a silence hides it). */
static CURLcode perform(struct xfer *x)
{
    CURL *curl = x->curl;
    const atomic_bool *stop = x->stop;
    CURLM *m = curl_multi_init();
    if (!m)
        return curl_easy_perform(curl);
    CURLcode res = CURLE_OK;
    if (curl_multi_add_handle(m, curl) != CURLM_OK) {
        curl_multi_cleanup(m);
        return curl_easy_perform(curl);
    }
    int running = 1;
    while (running) {
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            res = CURLE_RECV_ERROR;
            break;
        }
        if (stop && atomic_load(stop)) {
            res = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        if (running && mono_ms() - x->last_byte > (double)x->idle_ms) {
            res = CURLE_OPERATION_TIMEDOUT;
            break;
        }
        if (running && curl_multi_poll(m, NULL, 0, 50, NULL) != CURLM_OK) {
            res = CURLE_RECV_ERROR;
            break;
        }
    }
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m, &left)))
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == curl)
            res = msg->data.result;
    curl_multi_remove_handle(m, curl);
    curl_multi_cleanup(m);
    return res;
}

static const char *role_name(enum chat_role r)
{
    switch (r) {
    case CHAT_ROLE_SYSTEM: return "system";
    case CHAT_ROLE_USER: return "user";
    case CHAT_ROLE_ASSISTANT: return "assistant";
    }
    return "user";
}

/* The request body; NULL when out of memory. */
static char *request_body(const struct remote *rm, const struct chat_msg *msgs, size_t n,
                          const struct engine_generate_params *gp)
{
    json_t *root = json_object(), *arr = json_array(), *so = json_object();
    char *out = NULL;
    if (!root || !arr || !so)
        goto out;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_pack("{s:s, s:s}", "role", role_name(msgs[i].role), "content",
                              msgs[i].content ? msgs[i].content : "");
        if (!m || json_array_append_new(arr, m))
            goto out;
    }
    const struct sampler_params *sp = &gp->sampler;
    int bad = json_object_set_new(root, "model", json_string(rm->info.name));
    bad |= json_object_set(root, "messages", arr);
    bad |= json_object_set_new(root, "stream", json_true());
    bad |= json_object_set_new(so, "include_usage", json_true());
    bad |= json_object_set(root, "stream_options", so);
    bad |= json_object_set_new(root, "temperature", json_real(sp->temperature));
    bad |= json_object_set_new(root, "top_p", json_real(sp->top_p));
    if (sp->top_k > 0)
        bad |= json_object_set_new(root, "top_k", json_integer(sp->top_k));
    if (sp->min_p > 0)
        bad |= json_object_set_new(root, "min_p", json_real(sp->min_p));
    if (sp->repeat_penalty != 1.0f && sp->repeat_penalty > 0)
        bad |= json_object_set_new(root, "repeat_penalty", json_real(sp->repeat_penalty));
    if (sp->seed)
        bad |= json_object_set_new(root, "seed", json_integer((json_int_t)(sp->seed & INT64_MAX)));
    if (gp->max_tokens >= 0)
        bad |= json_object_set_new(root, "max_tokens", json_integer(gp->max_tokens));
    if (gp->think_off) {
        bad |= json_object_set_new(root, "think", json_string("off"));
    } else if (gp->think_budget > 0) {
        bad |= json_object_set_new(root, "think_budget", json_integer(gp->think_budget));
        bad |= json_object_set_new(root, "think_mode",
                                   json_string(gp->think_mode == ENGINE_THINK_HARD ? "hard"
                                                                                    : "soft"));
    }
    if (!bad)
        out = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(7));
out:
    json_decref(arr);
    json_decref(so);
    json_decref(root);
    return out;
}

void remote_generate(struct remote *rm, uint64_t request, const struct chat_msg *msgs, size_t n,
                     const struct engine_generate_params *gp, const atomic_bool *stop,
                     remote_emit_fn emit, void *ctx)
{
    struct xfer x = {.curl = rm->curl, .stop = stop};
    char ebuf[CURL_ERROR_SIZE], terr[400] = "";
    char *body = NULL, *url = NULL;
    struct curl_slist *h = NULL;
    bool user_stop = false;
    remote_stream_init(&x.st, request, emit, ctx);
    x.st.think = rm->think;
    if (gp->raw) {
        stream_fail(&x.st, ENOTSUP, "--raw needs a local model (a remote server applies its own "
                                    "chat format)");
        goto end;
    }
    size_t ulen = strlen(rm->base) + 32;
    if (!(body = request_body(rm, msgs, n, gp)) || !(url = malloc(ulen)) ||
        !(h = headers(rm, true))) {
        stream_fail(&x.st, ENOMEM, "out of memory");
        goto end;
    }
    snprintf(url, ulen, "%s/v1/chat/completions", rm->base);
    setup(rm, url, ebuf);
    curl_easy_setopt(rm->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(rm->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(rm->curl, CURLOPT_WRITEFUNCTION, gen_write);
    curl_easy_setopt(rm->curl, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(rm->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(rm->curl, CURLOPT_XFERINFOFUNCTION, gen_progress);
    curl_easy_setopt(rm->curl, CURLOPT_XFERINFODATA, &x);
    /* no byte for idle_ms ends the reply (keep-alive comments count) */
    x.idle_ms = rm->to.idle_ms;
    x.st.t0 = x.st.clock();
    x.last_byte = mono_ms();
    CURLcode res = perform(&x);
    user_stop = stop && atomic_load(stop);
    if (res != CURLE_OK && !user_stop && !x.st.failed) {
        if (res == CURLE_OPERATION_TIMEDOUT)
            snprintf(terr, sizeof terr, "%s sent nothing for %ld s; the reply was cut off",
                     rm->host, (rm->to.idle_ms + 500) / 1000);
        else if ((res == CURLE_PARTIAL_FILE || res == CURLE_RECV_ERROR) && x.st.http_status)
            snprintf(terr, sizeof terr, "the server closed the stream before the reply ended "
                     "(%s)", ebuf[0] ? ebuf : curl_easy_strerror(res));
        else if (res == CURLE_GOT_NOTHING)
            snprintf(terr, sizeof terr, "%s closed the connection without an answer", rm->host);
        else
            transfer_error(rm, res, ebuf, terr, sizeof terr);
    }
    if (!x.st.http_status && res == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(rm->curl, CURLINFO_RESPONSE_CODE, &status);
        x.st.http_status = (int)status;
    }
end:;
    struct engine_event done;
    remote_stream_end(&x.st, terr[0] ? terr : NULL, user_stop, &done);
    rm->think = x.st.think;
    struct engine_stats *s = &done.u.done.stats;
    snprintf(s->device, sizeof s->device, "%s", rm->host);
    s->n_ctx = rm->info.n_ctx;
    s->sampler = gp->sampler;
    s->think_budget = gp->think_budget;
    s->think_mode = gp->think_mode;
    s->think_off = gp->think_off;
    /* the server does not say; a reasoning as long as the budget ran into it */
    s->budget_reached = gp->think_budget > 0 && !gp->think_off &&
                        s->reasoning_tokens >= gp->think_budget;
    emit(ctx, &done);
    remote_stream_free(&x.st);
    curl_slist_free_all(h);
    free(url);
    free(body);
}
