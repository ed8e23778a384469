/* Tests for the remote engine: the SSE parser (lines split anywhere, CRLF/CR,
 * comments, multi-line data), the stream to events (reasoning_content vs
 * <think> in content, usage, errors, HTTP 401/500 bodies, cut-off streams),
 * URLs and key files, and whole requests against a tiny in-process server
 * (the model check, the Authorization header, the request body, stop). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "infer/remote.h"
#include "tests/fixture.h"

/* ---- SSE ---- */

struct events {
    char out[4096];
    size_t n;
    int count;
};

static int collect_data(void *ctx, const char *data, size_t len)
{
    struct events *e = ctx;
    assert_int_equal(strlen(data), len);
    int w = snprintf(e->out + e->n, sizeof e->out - e->n, "[%s]", data);
    assert_true(w > 0 && (size_t)w < sizeof e->out - e->n);
    e->n += (size_t)w;
    e->count++;
    return 0;
}

/* Feeds text in pieces of `step` bytes (0: whole) and returns the events. */
static void sse_run(const char *text, size_t step, struct events *ev)
{
    memset(ev, 0, sizeof *ev);
    struct sse s;
    sse_init(&s);
    size_t len = strlen(text);
    if (!step)
        step = len ? len : 1;
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        assert_int_equal(sse_push(&s, text + off, n, collect_data, ev), 0);
    }
    assert_int_equal(sse_finish(&s, collect_data, ev), 0);
    sse_free(&s);
}

static void test_sse_events_are_the_same_however_the_bytes_are_split(void **state)
{
    (void)state;
    static const char *const streams[] = {
        "data: one\n\ndata: two\n\n",
        "data: one\r\n\r\ndata: two\r\n\r\n",
        "data: one\r\rdata: two\r\r",
        ": keep-alive\n\ndata: one\n\n: ping\ndata: two\n\n",
        "event: message\nid: 7\nretry: 100\ndata: one\n\ndata:two\n\n",
    };
    for (size_t i = 0; i < sizeof streams / sizeof *streams; i++) {
        size_t len = strlen(streams[i]);
        for (size_t step = 0; step <= len; step++) {
            struct events ev;
            sse_run(streams[i], step, &ev);
            if (strcmp(ev.out, "[one][two]"))
                fail_msg("stream %zu in pieces of %zu: %s", i, step, ev.out);
        }
    }
}

static void test_sse_joins_data_lines_and_keeps_what_follows_the_space(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"data: a\ndata: b\n\n", "[a\nb]"},
        {"data:  two spaces\n\n", "[ two spaces]"},
        {"data\n\n", "[]"},                      /* a field with no colon: empty data */
        {"data: x: y\n\n", "[x: y]"},
        {"\n\n\ndata: a\n\n\n", "[a]"},            /* blank lines with no data send nothing */
        {": only a comment\n\n", ""},
        {"data: last, no blank line", "[last, no blank line]"},   /* at the end */
        {"data: é ✓\n\n", "[é ✓]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct events ev;
        sse_run(cases[i].in, 1, &ev);
        if (strcmp(ev.out, cases[i].want))
            fail_msg("case %zu: got '%s', want '%s'", i, ev.out, cases[i].want);
    }
}

static void test_sse_refuses_an_endless_line(void **state)
{
    (void)state;
    struct sse s;
    struct events ev = {0};
    sse_init(&s);
    char *big = malloc(SSE_LINE_MAX + 10);
    assert_non_null(big);
    memset(big, 'x', SSE_LINE_MAX + 10);
    assert_int_equal(sse_push(&s, big, SSE_LINE_MAX + 10, collect_data, &ev), E2BIG);
    sse_free(&s);
    free(big);
}

/* ---- the stream to events ---- */

/* Events rendered: "P:r" / "P:t" / "P:a" for phases, "r:" / "a:" runs of
 * token text ("~" marks leading whitespace), "E:msg", "D:stop". */
struct got {
    char out[8192];
    size_t n;
    int last;                 /* kind*2+leading of the last token run, -1 */
    int firsts, tokens;
    int firsts_at_text;       /* tokens begun when the first text came (0: none came) */
    struct engine_event done;
    bool done_seen, after_done;
    char error[512];
};

static void got_put(struct got *g, const char *s, size_t len)
{
    assert_true(g->n + len < sizeof g->out);
    memcpy(g->out + g->n, s, len);
    g->n += len;
    g->out[g->n] = 0;
}

static void got_emit(void *ctx, const struct engine_event *ev)
{
    struct got *g = ctx;
    if (g->done_seen)
        g->after_done = true;
    switch (ev->type) {
    case ENGINE_EVENT_PHASE: {
        static const char *const p[] = {"P:r|", "P:t|", "P:a|"};
        if (g->last >= 0)
            got_put(g, "|", 1);
        got_put(g, p[ev->u.phase], 4);
        g->last = -1;
        break;
    }
    case ENGINE_EVENT_TOKEN: {
        assert_true(ev->u.token.len <= ENGINE_TEXT_MAX);
        g->tokens++;
        if (ev->u.token.first)
            g->firsts++;
        if (!ev->u.token.len)
            break;
        if (!g->firsts_at_text)
            g->firsts_at_text = g->firsts;
        int k = (int)ev->u.token.kind * 2 + ev->u.token.leading;
        if (k != g->last) {
            if (g->last >= 0)
                got_put(g, "|", 1);
            got_put(g, ev->u.token.kind == REASON_KIND_REASONING ? "r:" : "a:", 2);
            if (ev->u.token.leading)
                got_put(g, "~", 1);
            g->last = k;
        }
        got_put(g, ev->u.token.text, ev->u.token.len);
        break;
    }
    case ENGINE_EVENT_ERROR:
        snprintf(g->error, sizeof g->error, "%s", ev->u.error);
        got_put(g, "|E", 2);
        g->last = -1;
        break;
    case ENGINE_EVENT_DONE:
        g->done = *ev;
        g->done_seen = true;
        break;
    default:
        fail_msg("unexpected event %d", ev->type);
    }
}

static double fake_now;
static double fake_clock(void) { return fake_now; }

/* What stream_run's stream starts knowing of the server (struct remote_think);
 * it gets what the stream learnt. */
static enum remote_think stream_think = REMOTE_THINK_UNKNOWN, stream_learnt;

/* Runs a whole response through a stream: status, body in pieces of step
 * bytes (each piece 10 ms after the last); g gets the events. */
static void stream_run(int status, const char *body, size_t step, const char *transport,
                       bool user_stop, struct got *g)
{
    memset(g, 0, sizeof *g);
    g->last = -1;
    struct remote_stream st;
    fake_now = 1000;
    remote_stream_init(&st, 42, got_emit, g);
    st.clock = fake_clock;
    st.t0 = fake_now;
    st.http_status = status;
    st.think = stream_think;
    size_t len = strlen(body);
    if (!step)
        step = len ? len : 1;
    for (size_t off = 0; off < len; off += step) {
        fake_now += 10;
        size_t n = len - off < step ? len - off : step;
        if (remote_stream_feed(&st, body + off, n))
            break;
    }
    fake_now += 10;
    struct engine_event done;
    remote_stream_end(&st, transport, user_stop, &done);
    stream_learnt = st.think;
    got_emit(g, &done);
    remote_stream_free(&st);
    assert_true(g->done_seen);
    assert_false(g->after_done);
    assert_int_equal(g->done.request, 42);
}

#define CHUNK(delta) "data: {\"choices\":[{\"index\":0,\"delta\":" delta "}]}\n\n"
#define FINISH(reason) "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"" reason "\"}]}\n\n"

static void test_reasoning_content_comes_out_as_reasoning_tokens(void **state)
{
    (void)state;
    static const char body[] =
        ": ping\n\n"
        CHUNK("{\"role\":\"assistant\"}")
        CHUNK("{\"reasoning_content\":\"\\nLet me\"}")
        CHUNK("{\"reasoning_content\":\" think.\"}")
        CHUNK("{\"content\":\"\\n\\n\"}")
        CHUNK("{\"content\":\"Four.\"}")
        FINISH("stop")
        "data: [DONE]\n\n";
    size_t len = strlen(body);
    for (size_t step = 0; step <= len; step += (step < 8 ? 1 : 7)) {
        struct got g;
        stream_run(200, body, step, NULL, false, &g);
        if (strcmp(g.out, "P:r|P:t|r:~\n|r:Let me think.|a:~\n\n|P:a|a:Four."))
            fail_msg("pieces of %zu: %s", step, g.out);
        assert_int_equal(g.done.u.done.stop, ENGINE_STOP_END);
        assert_int_equal(g.firsts, 4);      /* one per delta with text */
        assert_int_equal(g.done.u.done.stats.reasoning_tokens, 2);
        assert_int_equal(g.done.u.done.stats.answer_tokens, 2);
    }
}

static void test_reasoning_field_is_read_like_reasoning_content(void **state)
{
    (void)state;
    struct got g;
    stream_run(200,
               CHUNK("{\"reasoning\":\"hmm\"}") CHUNK("{\"content\":\"ok\"}") FINISH("stop")
                   "data: [DONE]\n\n",
               0, NULL, false, &g);
    assert_string_equal(g.out, "P:r|P:t|r:hmm|P:a|a:ok");
}

static void test_think_tags_in_content_are_split_even_across_deltas(void **state)
{
    (void)state;
    struct got g;
    stream_run(200,
               CHUNK("{\"content\":\"<th\"}") CHUNK("{\"content\":\"ink>\\nabc</thi\"}")
                   CHUNK("{\"content\":\"nk>\\n\\nThe answer\"}") CHUNK("{\"content\":\" is 4.\"}")
                       FINISH("stop") "data: [DONE]\n\n",
               3, NULL, false, &g);
    assert_string_equal(g.out, "P:r|P:t|r:~\n|r:abc|a:~\n\n|P:a|a:The answer is 4.");
    assert_int_equal(g.firsts, 4);
    assert_int_equal(g.done.u.done.stats.reasoning_tokens + g.done.u.done.stats.answer_tokens, 4);
    assert_int_equal(g.done.u.done.stop, ENGINE_STOP_END);

    /* tags as whole tokens (llama-server, vLLM without a reasoning parser): a
     * token counts as the kind in force before it, as the local engine counts */
    stream_run(200,
               CHUNK("{\"content\":\"<think>\"}") CHUNK("{\"content\":\"\\nabc\"}")
                   CHUNK("{\"content\":\"</think>\"}") CHUNK("{\"content\":\"\\n\\nok\"}")
                       FINISH("stop") "data: [DONE]\n\n",
               0, NULL, false, &g);
    assert_string_equal(g.out, "P:r|P:t|r:~\n|r:abc|a:~\n\n|P:a|a:ok");
    assert_int_equal(g.firsts, 4);
    /* content may open in reasoning (struct remote_think), so "<think>" counts too */
    assert_int_equal(g.done.u.done.stats.reasoning_tokens, 3);   /* "<think>", "\nabc", "</think>" */
    assert_int_equal(g.done.u.done.stats.answer_tokens, 1);      /* "\n\nok" */
}

static void test_a_reply_without_reasoning_is_all_answer(void **state)
{
    (void)state;
    struct got g;
    stream_run(200, CHUNK("{\"content\":\"Hi\"}") FINISH("length") "data: [DONE]\n\n", 0, NULL,
               false, &g);
    /* held as possible reasoning (thinking) until the end showed no </think> */
    assert_string_equal(g.out, "P:r|P:t|P:a|a:Hi");
    assert_int_equal(g.done.u.done.stop, ENGINE_STOP_LENGTH);
    assert_int_equal(g.done.u.done.stats.reasoning_tokens, 0);
    assert_int_equal(g.done.u.done.stats.answer_tokens, 1);
    assert_close(g.done.u.done.stats.reasoning_ms, 0, 0);
    /* a server known to send plain answers streams them as answer at once */
    stream_think = REMOTE_THINK_PLAIN;
    stream_run(200, CHUNK("{\"content\":\"Hi\"}") FINISH("length") "data: [DONE]\n\n", 0, NULL,
               false, &g);
    stream_think = REMOTE_THINK_UNKNOWN;
    assert_string_equal(g.out, "P:r|P:a|a:Hi");
}

/* vLLM or SGLang without a reasoning parser: R1's reasoning as plain
 * content, ended by a lone </think> (its <think> was in the prompt). */
#define LONE_CLOSE_BODY                                                                       \
    CHUNK("{\"role\":\"assistant\",\"content\":\"\"}")                                        \
    CHUNK("{\"content\":\"Okay, so\"}") CHUNK("{\"content\":\" 2+2.\\n\"}")                     \
    CHUNK("{\"content\":\"</think>\"}") CHUNK("{\"content\":\"\\n\\n\"}")                     \
    CHUNK("{\"content\":\"It is 4.\"}") FINISH("stop")                                         \
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":5,"             \
    "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n"                              \
    "data: [DONE]\n\n"

static void test_content_before_a_lone_close_is_reasoning(void **state)
{
    (void)state;
    static const char body[] = LONE_CLOSE_BODY;
    size_t len = strlen(body);
    for (size_t step = 0; step <= len; step += (step < 8 ? 1 : 5)) {
        struct got g;
        stream_run(200, body, step, NULL, false, &g);
        if (strcmp(g.out, "P:r|P:t|r:Okay, so 2+2.\n|a:~\n\n|P:a|a:It is 4."))
            fail_msg("pieces of %zu: %s", step, g.out);
        assert_int_equal(g.firsts, 5);
        /* held back until the </think>: the text came with that (3rd) token */
        assert_int_equal(g.firsts_at_text, 3);
        const struct engine_stats *s = &g.done.u.done.stats;
        /* the server counted no reasoning; the deltas before the </think> were */
        assert_int_equal(s->reasoning_tokens, 3);
        assert_int_equal(s->answer_tokens, 2);
        assert_int_equal(s->prompt_tokens, 9);
        assert_int_equal(g.done.u.done.stop, ENGINE_STOP_END);
        assert_int_equal(stream_learnt, REMOTE_THINK_LONE_CLOSE);
    }
    /* once the server is known to do this, the reasoning streams at once */
    struct got g;
    stream_think = REMOTE_THINK_LONE_CLOSE;
    stream_run(200, body, 0, NULL, false, &g);
    stream_think = REMOTE_THINK_UNKNOWN;
    assert_string_equal(g.out, "P:r|P:t|r:Okay, so 2+2.\n|a:~\n\n|P:a|a:It is 4.");
    assert_int_equal(g.firsts_at_text, 1);
    assert_int_equal(stream_learnt, REMOTE_THINK_LONE_CLOSE);
    /* a server known to send plain answers: the </think> is answer text */
    stream_think = REMOTE_THINK_PLAIN;
    stream_run(200, body, 0, NULL, false, &g);
    stream_think = REMOTE_THINK_UNKNOWN;
    assert_string_equal(g.out, "P:r|P:a|a:Okay, so 2+2.\n</think>\n\nIt is 4.");
}

static void test_text_held_as_reasoning_without_a_close_is_the_answer(void **state)
{
    (void)state;
    struct got g;
    /* a model that does not reason: its whole reply, once it ends */
    stream_run(200,
               CHUNK("{\"content\":\"\\nHello\"}") CHUNK("{\"content\":\" there.\"}")
                   FINISH("stop") "data: [DONE]\n\n",
               0, NULL, false, &g);
    assert_string_equal(g.out, "P:r|P:t|a:~\n|P:a|a:Hello there.");
    assert_int_equal(g.firsts, 2);
    assert_int_equal(g.firsts_at_text, 2);
    assert_int_equal(g.done.u.done.stats.reasoning_tokens, 0);
    assert_int_equal(g.done.u.done.stats.answer_tokens, 2);
    assert_int_equal(stream_learnt, REMOTE_THINK_PLAIN);    /* it ended by itself */
    /* cut by the token limit: the answer too, but nothing learnt */
    stream_run(200, CHUNK("{\"content\":\"Hello\"}") FINISH("length") "data: [DONE]\n\n", 0, NULL,
               false, &g);
    assert_string_equal(g.out, "P:r|P:t|P:a|a:Hello");
    assert_int_equal(stream_learnt, REMOTE_THINK_UNKNOWN);
    /* a known lone-</think> server: a reply cut off while thinking stays reasoning */
    stream_think = REMOTE_THINK_LONE_CLOSE;
    stream_run(200, CHUNK("{\"content\":\"Hmm, let\"}") FINISH("length") "data: [DONE]\n\n", 0,
               NULL, false, &g);
    stream_think = REMOTE_THINK_UNKNOWN;
    assert_string_equal(g.out, "P:r|P:t|r:Hmm, let");
    assert_int_equal(g.done.u.done.stats.reasoning_tokens, 1);
    assert_int_equal(stream_learnt, REMOTE_THINK_LONE_CLOSE);
    /* a </think> as the very last text: all reasoning */
    stream_run(200,
               CHUNK("{\"content\":\"abc</thi\"}") CHUNK("{\"content\":\"nk>\"}") FINISH("stop")
                   "data: [DONE]\n\n",
               0, NULL, false, &g);
    assert_string_equal(g.out, "P:r|P:t|r:abc");
    assert_int_equal(stream_learnt, REMOTE_THINK_LONE_CLOSE);
    /* an explicit <think> is never held: it streams as before */
    stream_run(200,
               CHUNK("{\"content\":\"<think>x\"}") CHUNK("{\"content\":\"y</think>z\"}")
                   FINISH("stop") "data: [DONE]\n\n",
               0, NULL, false, &g);
    assert_string_equal(g.out, "P:r|P:t|r:xy|P:a|a:z");
    assert_int_equal(g.firsts_at_text, 1);
    assert_int_equal(stream_learnt, REMOTE_THINK_UNKNOWN);
    /* whitespace held before a <think> keeps its place */
    stream_run(200,
               CHUNK("{\"content\":\"\\n\"}") CHUNK("{\"content\":\"<think>x\"}")
                   CHUNK("{\"content\":\"</think>z\"}") FINISH("stop") "data: [DONE]\n\n",
               0, NULL, false, &g);
    assert_string_equal(g.out, "P:r|P:t|r:~\n|r:x|P:a|a:z");
    stream_run(200,
               CHUNK("{\"content\":\"\\n\"}") CHUNK("{\"content\":\"<think>\"}") FINISH("length")
                   "data: [DONE]\n\n",
               0, NULL, false, &g);
    assert_string_equal(g.out, "P:r|P:t|r:~\n");
}

static void test_a_reasoning_field_makes_the_content_the_answer(void **state)
{
    (void)state;
    struct got g;
    /* whitespace content first, then a parser's reasoning field */
    stream_run(200,
               CHUNK("{\"content\":\"\\n\"}") CHUNK("{\"reasoning_content\":\"Sum.\"}")
                   CHUNK("{\"content\":\"</think>4\"}") FINISH("stop") "data: [DONE]\n\n",
               0, NULL, false, &g);
    assert_string_equal(g.out, "P:r|P:t|r:~\n|r:Sum.|P:a|a:</think>4");
    assert_int_equal(stream_learnt, REMOTE_THINK_PLAIN);
    /* the same server later: plain content streams as answer at once */
    stream_think = stream_learnt;
    stream_run(200, CHUNK("{\"content\":\"ok\"}") FINISH("stop") "data: [DONE]\n\n", 0, NULL,
               false, &g);
    stream_think = REMOTE_THINK_UNKNOWN;
    assert_string_equal(g.out, "P:r|P:a|a:ok");
}

static void test_long_deltas_are_cut_at_characters(void **state)
{
    (void)state;
    /* 40 two-byte characters: 80 bytes, more than one event holds */
    char body[1024] = "data: {\"choices\":[{\"delta\":{\"content\":\"";
    for (int i = 0; i < 40; i++)
        strcat(body, "é");
    strcat(body, "\"}}]}\n\n" FINISH("stop") "data: [DONE]\n\n");
    struct got g;
    stream_think = REMOTE_THINK_PLAIN;
    stream_run(200, body, 0, NULL, false, &g);
    stream_think = REMOTE_THINK_UNKNOWN;
    assert_int_equal(g.tokens, 2);
    assert_int_equal(g.firsts, 1);
    assert_int_equal(strlen(g.out), strlen("P:r|P:a|a:") + 80);
    /* held back first (a token of length 0), then the 80 bytes, cut the same */
    stream_run(200, body, 0, NULL, false, &g);
    assert_int_equal(g.tokens, 3);
    assert_int_equal(g.firsts, 1);
    assert_int_equal(strlen(g.out), strlen("P:r|P:t|P:a|a:") + 80);
}

static void test_usage_from_the_server_wins_over_counted_deltas(void **state)
{
    (void)state;
    struct got g;
    stream_run(200,
               CHUNK("{\"reasoning_content\":\"a b\"}") CHUNK("{\"content\":\"c d e\"}")
                   FINISH("stop")
               "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":9,"
               "\"completion_tokens_details\":{\"reasoning_tokens\":4}}}\n\n"
               "data: [DONE]\n\n",
               0, NULL, false, &g);
    const struct engine_stats *s = &g.done.u.done.stats;
    assert_int_equal(s->prompt_tokens, 12);
    assert_int_equal(s->reasoning_tokens, 4);
    assert_int_equal(s->answer_tokens, 5);
    assert_string_equal(s->backend, "remote");
}

static void test_stats_are_measured_on_the_client(void **state)
{
    (void)state;
    /* t0 = 1000; each piece arrives 10 ms later: first text at 1010 (piece 1),
     * answer at 1030 (piece 3), end at 1060 */
    static const char *const pieces =
        CHUNK("{\"reasoning_content\":\"x\"}") CHUNK("{\"reasoning_content\":\"y\"}")
            CHUNK("{\"content\":\"z\"}") CHUNK("{\"content\":\"w\"}") FINISH("stop")
                "data: [DONE]\n\n";
    /* feed each event as its own piece */
    struct got g;
    memset(&g, 0, sizeof g);
    g.last = -1;
    struct remote_stream st;
    fake_now = 1000;
    remote_stream_init(&st, 1, got_emit, &g);
    st.clock = fake_clock;
    st.t0 = fake_now;
    st.http_status = 200;
    const char *p = pieces;
    while (*p) {
        const char *end = strstr(p, "\n\n") + 2;
        fake_now += 10;
        assert_int_equal(remote_stream_feed(&st, p, (size_t)(end - p)), 0);
        p = end;
    }
    struct engine_event done;
    remote_stream_end(&st, NULL, false, &done);
    remote_stream_free(&st);
    const struct engine_stats *s = &done.u.done.stats;
    assert_close(s->first_token_ms, 10, 1e-9);
    assert_close(s->reasoning_ms, 20, 1e-9);
    assert_close(s->answer_ms, 30, 1e-9);
    /* 4 tokens: 3 after the first, in 50 ms */
    assert_close(s->gen_tps, 3 / 0.050, 1e-6);
}

static void test_errors_end_the_reply_with_one_clear_line(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *body, *transport;
        const char *want;       /* in the error line */
        const char *text;       /* the events before it */
    } cases[] = {
        {401, "{\"error\":{\"message\":\"Invalid API key\",\"type\":\"auth\"}}", NULL,
         "HTTP 401 from the server: Invalid API key (check the API key", "P:r|"},
        {500, "Internal Server Error\nstack trace...", NULL,
         "HTTP 500 from the server: Internal Server Error", "P:r|"},
        {503, "{\"detail\":\"loading\"}", NULL, "HTTP 503 from the server: loading", "P:r|"},
        {404, "", NULL, "HTTP 404 from the server", "P:r|"},
        {200, CHUNK("{\"content\":\"par\"}") "data: {not json}\n\n", NULL,
         "malformed event", "P:r|P:t|P:a|a:par"},
        {200, CHUNK("{\"content\":\"par\"}") "data: [1,2]\n\n", NULL, "not an object",
         "P:r|P:t|P:a|a:par"},
        /* the quote of a bad event is cut at 60 bytes, never inside a character */
        {200, "data: {\"x\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9\"\n\n", NULL,
         "{\"x\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "P:r|"},
        {200, CHUNK("{\"content\":\"par\"}") "data: {\"error\":{\"message\":\"overloaded\"}}\n\n",
         NULL, "the server reported an error: overloaded", "P:r|P:t|P:a|a:par"},
        {200, CHUNK("{\"content\":\"par\"}"), NULL, "closed the stream before the reply ended",
         "P:r|P:t|P:a|a:par"},
        {200, CHUNK("{\"content\":\"par\"}"), "cannot reach http://x: refused",
         "cannot reach http://x: refused", "P:r|P:t|P:a|a:par"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct got g;
        stream_run(cases[i].status, cases[i].body, 5, cases[i].transport, false, &g);
        if (!strstr(g.error, cases[i].want))
            fail_msg("case %zu: error '%s' lacks '%s'", i, g.error, cases[i].want);
        size_t el = strlen(g.error);
        if (el && ((unsigned char)g.error[el - 1] & 0x80) && ((unsigned char)g.error[el - 1] & 0x40))
            fail_msg("case %zu: error ends inside a character: %s", i, g.error);
        assert_null(strchr(g.error, '\n'));
        char want[256];
        snprintf(want, sizeof want, "%s|E", cases[i].text);
        if (strcmp(g.out, want))
            fail_msg("case %zu: events '%s', want '%s'", i, g.out, want);
        assert_int_equal(g.done.u.done.stop, ENGINE_STOP_ERROR);
    }
}

static void test_a_stopped_reply_is_no_error(void **state)
{
    (void)state;
    struct got g;
    stream_run(200, CHUNK("{\"content\":\"par\"}"), 0, "aborted by callback", true, &g);
    assert_string_equal(g.out, "P:r|P:t|P:a|a:par");
    assert_int_equal(g.done.u.done.stop, ENGINE_STOP_USER);
}

static void test_a_partial_tag_is_flushed_as_text_at_the_end(void **state)
{
    (void)state;
    struct got g;
    stream_run(200, CHUNK("{\"content\":\"a <thi\"}") FINISH("stop"), 0, NULL, false, &g);
    assert_string_equal(g.out, "P:r|P:t|P:a|a:a <thi");
    assert_int_equal(g.done.u.done.stop, ENGINE_STOP_END);   /* finish_reason, no [DONE]: fine */
}

static void test_a_server_that_does_not_stream_is_read_whole(void **state)
{
    (void)state;
    static const char body[] =
        "{\"id\":\"c\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"reasoning_content\":\"Sum.\","
        "\"content\":\"\\n\\nFive.\"},\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":6}}";
    struct got g;
    memset(&g, 0, sizeof g);
    g.last = -1;
    struct remote_stream st;
    remote_stream_init(&st, 5, got_emit, &g);
    st.http_status = 200;
    st.json_reply = true;
    for (size_t off = 0; off < sizeof body - 1; off += 9)
        assert_int_equal(remote_stream_feed(&st, body + off,
                                            sizeof body - 1 - off < 9 ? sizeof body - 1 - off : 9),
                         0);
    struct engine_event done;
    remote_stream_end(&st, NULL, false, &done);
    remote_stream_free(&st);
    assert_string_equal(g.out, "P:r|P:t|r:Sum.|a:~\n\n|P:a|a:Five.");
    assert_int_equal(done.u.done.stop, ENGINE_STOP_END);
    assert_int_equal(done.u.done.stats.prompt_tokens, 3);
}

/* Random damage to valid streams, fed in random pieces: never a crash (run
 * it under ASan/UBSan), always exactly one DONE last, every event well
 * formed, every error one line. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fuzz_emit(void *ctx, const struct engine_event *ev)
{
    struct got *g = ctx;
    assert_false(g->done_seen);
    if (ev->type == ENGINE_EVENT_TOKEN)
        assert_true(ev->u.token.len <= ENGINE_TEXT_MAX);
    if (ev->type == ENGINE_EVENT_ERROR) {
        assert_null(memchr(ev->u.error, '\n', strlen(ev->u.error)));
        assert_true(strlen(ev->u.error) > 0);
    }
    if (ev->type == ENGINE_EVENT_DONE)
        g->done_seen = true;
}

static void test_damaged_streams_never_crash_and_end_once(void **state)
{
    (void)state;
    static const char *const seeds[] = {
        CHUNK("{\"reasoning_content\":\"\\nLet me\"}") CHUNK("{\"content\":\"\\n\\nFour.\"}")
            FINISH("stop") "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,"
            "\"completion_tokens\":2,\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\n"
            "data: [DONE]\n\n",
        ": ka\r\n\r\n" CHUNK("{\"content\":\"<think>\\u00e9\\ud83d\\ude00 x</think>\\n\\ny\"}")
            "data: {\"error\":{\"message\":\"boom\\nline\"}}\n\n",
        "{\"choices\":[{\"message\":{\"content\":\"<think>a</think>b\"}}]}",
    };
    static const char noise[] = "\n\r:\"{}[]\\ \xff\xc3\xa9<>/data: [DONE]";
    uint64_t rs = 0x9e3779b97f4a7c15ull;
    char buf[2048];
    for (int iter = 0; iter < 4000; iter++) {
        const char *seed = seeds[rng_next(&rs) % 3];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int edits = (int)(rng_next(&rs) % 6);
        for (int k = 0; k < edits && n > 0; k++) {
            size_t at = rng_next(&rs) % n;
            switch (rng_next(&rs) % 4) {
            case 0: buf[at] = noise[rng_next(&rs) % (sizeof noise - 1)]; break;
            case 1: buf[at] = (char)rng_next(&rs); break;
            case 2:
                if (n + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = noise[rng_next(&rs) % (sizeof noise - 1)];
                    n++;
                }
                break;
            default: n = at; break;     /* cut short */
            }
        }
        struct got g;
        memset(&g, 0, sizeof g);
        struct remote_stream st;
        remote_stream_init(&st, 1, fuzz_emit, &g);
        uint64_t r = rng_next(&rs);
        st.http_status = r % 7 == 0 ? 500 : 200;
        st.json_reply = r % 5 == 0;
        for (size_t off = 0; off < n;) {
            size_t step = 1 + rng_next(&rs) % 40;
            if (step > n - off)
                step = n - off;
            if (remote_stream_feed(&st, buf + off, step))
                break;
            off += step;
        }
        struct engine_event done;
        remote_stream_end(&st, r % 11 == 0 ? "transport failed" : NULL, r % 13 == 0, &done);
        fuzz_emit(&g, &done);
        remote_stream_free(&st);
        assert_true(g.done_seen);
    }
}

/* ---- URLs and keys ---- */

static void test_url_host_names_host_and_port(void **state)
{
    (void)state;
    static const struct {
        const char *url, *want;
    } cases[] = {
        {"http://127.0.0.1:11435", "127.0.0.1:11435"},
        {"http://example.com/v1", "example.com:80"},
        {"https://example.com", "example.com:443"},
        {"http://user:secret@host:8000/x", "host:8000"},
        {"http://[::1]:8080/", "[::1]:8080"},
        {"http://[::1]/", "[::1]:80"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[64];
        assert_int_equal(remote_url_host(cases[i].url, buf, sizeof buf), 0);
        assert_string_equal(buf, cases[i].want);
    }
    char buf[64];
    assert_int_equal(remote_url_host("ftp://x", buf, sizeof buf), EINVAL);
    assert_int_equal(remote_url_host("http://", buf, sizeof buf), EINVAL);
}

static void test_key_file_gives_its_first_line_trimmed(void **state)
{
    (void)state;
    char key[128], err[256];
    char *p = fx_write_temp("  sk-test-123 \nsecond line\n", 27);
    assert_non_null(p);
    char path[4096];
    snprintf(path, sizeof path, "%s", p);
    free(p);
    assert_int_equal(remote_read_key(path, key, sizeof key, err, sizeof err), 0);
    assert_string_equal(key, "sk-test-123");
    unlink(path);
    p = fx_write_temp("\n", 1);
    assert_non_null(p);
    snprintf(path, sizeof path, "%s", p);
    free(p);
    assert_int_equal(remote_read_key(path, key, sizeof key, err, sizeof err), EINVAL);
    unlink(path);
    assert_int_equal(remote_read_key("/nonexistent/key", key, sizeof key, err, sizeof err),
                     ENOENT);
    assert_non_null(strstr(err, "/nonexistent/key"));
}

static void test_display_name_and_fingerprint(void **state)
{
    (void)state;
    struct model_info in = {.arch = "remote", .name = "r1-671b", .device = "gpu1:8000"};
    char name[128], fp1[33], fp2[33];
    remote_display_name(&in, name, sizeof name);
    assert_string_equal(name, "r1-671b@gpu1:8000");
    remote_fingerprint(name, fp1);
    remote_fingerprint("r1-671b@gpu2:8000", fp2);
    assert_int_equal(strlen(fp1), 32);
    assert_string_not_equal(fp1, fp2);
}

/* ---- whole requests against an in-process server ---- */

struct server {
    int fd, port;
    pthread_t thread;
    int mode;               /* 0 normal, 1 stall after the first chunk (keep-alives),
                               2 401 everywhere, 3 stall in silence, 4 reasoning as
                               content ended by a lone </think> */
    char last_request[8192];
    pthread_mutex_t lock;
    volatile bool quit;
};

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void serve_one(struct server *sv, int c)
{
    char req[8192];
    size_t n = 0;
    /* headers, then Content-Length bytes of body */
    for (;;) {
        ssize_t r = recv(c, req + n, sizeof req - 1 - n, 0);
        if (r <= 0)
            return;
        n += (size_t)r;
        req[n] = 0;
        char *end = strstr(req, "\r\n\r\n");
        if (!end)
            continue;
        const char *cl = strstr(req, "Content-Length:");
        size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0;
        if (n >= (size_t)(end + 4 - req) + want || n == sizeof req - 1)
            break;
    }
    pthread_mutex_lock(&sv->lock);
    snprintf(sv->last_request, sizeof sv->last_request, "%s", req);
    pthread_mutex_unlock(&sv->lock);
    if (sv->mode == 2) {
        /* one byte short of its Content-Length: the status still wins */
        static const char r401[] = "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                                   "Content-Length: 36\r\nConnection: close\r\n\r\n"
                                   "{\"error\":{\"message\":\"bad API key\"}}";
        send_all(c, r401, sizeof r401 - 1);
        return;
    }
    if (!strncmp(req, "GET /v1/models", 14)) {
        static const char body[] =
            "{\"object\":\"list\",\"data\":[{\"id\":\"demo\",\"object\":\"model\","
            "\"max_model_len\":2048},{\"id\":\"other\",\"object\":\"model\","
            "\"context_length\":4096},{\"id\":\"third\",\"object\":\"model\"}]}";
        char resp[512];
        int len = snprintf(resp, sizeof resp,
                           "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                           "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                           sizeof body - 1, body);
        send_all(c, resp, (size_t)len);
        return;
    }
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Connection: close\r\n\r\n";
    send_all(c, head, sizeof head - 1);
    if (sv->mode == 4) {
        static const char lone[] = CHUNK("{\"content\":\"Adding\"}")
            CHUNK("{\"content\":\" two.\\n\"}") CHUNK("{\"content\":\"</think>\"}")
            CHUNK("{\"content\":\"\\n\\n4\"}") FINISH("stop") "data: [DONE]\n\n";
        send_all(c, lone, sizeof lone - 1);
        return;
    }
    static const char c1[] = CHUNK("{\"reasoning_content\":\"Adding.\"}");
    send_all(c, c1, sizeof c1 - 1);
    if (sv->mode == 3) {
        for (int i = 0; i < 50 && !sv->quit; i++) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        return;
    }
    if (sv->mode == 1) {
        /* stall: keep-alives every 100 ms until the client goes away */
        for (int i = 0; i < 100 && !sv->quit; i++) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
            if (send(c, ": ping\n\n", 8, MSG_NOSIGNAL) < 0)
                return;
        }
        return;
    }
    static const char rest[] = CHUNK("{\"content\":\"\\n\\n4\"}") FINISH("stop")
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n"
        "data: [DONE]\n\n";
    send_all(c, rest, sizeof rest - 1);
}

static void *server_main(void *arg)
{
    struct server *sv = arg;
    while (!sv->quit) {
        int c = accept(sv->fd, NULL, NULL);
        if (c < 0)
            break;
        serve_one(sv, c);
        shutdown(c, SHUT_RDWR);
        close(c);
    }
    return NULL;
}

static void server_start(struct server *sv, int mode)
{
    memset(sv, 0, sizeof *sv);
    sv->mode = mode;
    pthread_mutex_init(&sv->lock, NULL);
    sv->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(sv->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(sv->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(sv->fd, 8), 0);
    socklen_t l = sizeof a;
    getsockname(sv->fd, (struct sockaddr *)&a, &l);
    sv->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&sv->thread, NULL, server_main, sv), 0);
}

static void server_stop(struct server *sv)
{
    sv->quit = true;
    shutdown(sv->fd, SHUT_RDWR);
    close(sv->fd);
    pthread_join(sv->thread, NULL);
    pthread_mutex_destroy(&sv->lock);
}

static void test_open_checks_the_server_and_the_model(void **state)
{
    (void)state;
    struct server sv;
    server_start(&sv, 0);
    char url[64], err[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/", sv.port);
    struct remote *rm = NULL;
    struct engine_remote r = {.url = url, .api_key = "sk-abc", .model = NULL};
    assert_int_equal(remote_open(&r, NULL, &rm, err, sizeof err), 0);
    const struct model_info *in = remote_info(rm);
    assert_string_equal(in->arch, "remote");
    assert_string_equal(in->name, "demo");       /* the first listed */
    assert_string_equal(in->backend, "remote");
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%d", sv.port);
    assert_string_equal(in->device, host);
    assert_int_equal(in->n_ctx, 2048);
    assert_non_null(strstr(sv.last_request, "GET /v1/models "));
    assert_non_null(strstr(sv.last_request, "Authorization: Bearer sk-abc\r\n"));
    remote_free(rm);

    /* the context under the other name servers use (ponder serve sends both) */
    r.model = "other";
    assert_int_equal(remote_open(&r, NULL, &rm, err, sizeof err), 0);
    assert_int_equal(remote_info(rm)->n_ctx, 4096);
    remote_free(rm);
    /* a server that does not say: 0, unknown */
    r.model = "third";
    assert_int_equal(remote_open(&r, NULL, &rm, err, sizeof err), 0);
    assert_int_equal(remote_info(rm)->n_ctx, 0);
    remote_free(rm);

    r.model = "missing";
    assert_int_equal(remote_open(&r, NULL, &rm, err, sizeof err), ENOENT);
    assert_null(rm);
    assert_non_null(strstr(err, "no model 'missing' (it has: demo, other, third)"));
    server_stop(&sv);
}

static void test_open_reports_refused_and_unauthorised(void **state)
{
    (void)state;
    char err[512];
    struct remote *rm = NULL;
    /* a port nothing listens on: bind one, then close it */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    struct engine_remote r = {.url = url};
    assert_int_equal(remote_open(&r, NULL, &rm, err, sizeof err), ECONNREFUSED);
    assert_non_null(strstr(err, "cannot reach http://127.0.0.1:"));

    r.url = "ftp://127.0.0.1";
    assert_int_equal(remote_open(&r, NULL, &rm, err, sizeof err), EINVAL);

    struct server sv;
    server_start(&sv, 2);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", sv.port);
    r.url = url;
    int rc = remote_open(&r, NULL, &rm, err, sizeof err);
    if (rc != EACCES)
        fail_msg("%d: %s", rc, err);
    assert_non_null(strstr(err, "HTTP 401"));
    assert_non_null(strstr(err, "bad API key"));
    server_stop(&sv);
}

static void test_generate_streams_a_reply_with_the_request_fields(void **state)
{
    (void)state;
    struct server sv;
    server_start(&sv, 0);
    char url[64], err[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", sv.port);
    struct remote *rm = NULL;
    struct engine_remote r = {.url = url, .api_key = "sk-abc", .model = "other"};
    assert_int_equal(remote_open(&r, NULL, &rm, err, sizeof err), 0);
    struct chat_msg msgs[] = {{CHAT_ROLE_SYSTEM, "Be brief."}, {CHAT_ROLE_USER, "2+2?"}};
    struct engine_generate_params gp = {.max_tokens = 64, .think_budget = 100,
                                        .think_mode = ENGINE_THINK_HARD};
    sampler_params_default(&gp.sampler);
    gp.sampler.seed = 5;
    atomic_bool stop;
    atomic_init(&stop, false);
    struct got g;
    memset(&g, 0, sizeof g);
    g.last = -1;
    remote_generate(rm, 9, msgs, 2, &gp, &stop, got_emit, &g);
    assert_true(g.done_seen);
    assert_string_equal(g.out, "P:r|P:t|r:Adding.|a:~\n\n|P:a|a:4");
    assert_int_equal(g.done.u.done.stop, ENGINE_STOP_END);
    assert_int_equal(g.done.u.done.stats.prompt_tokens, 7);
    assert_string_equal(g.done.u.done.stats.backend, "remote");
    assert_int_equal(g.done.u.done.stats.think_budget, 100);
    const char *q = sv.last_request;
    assert_non_null(strstr(q, "POST /v1/chat/completions "));
    assert_non_null(strstr(q, "Authorization: Bearer sk-abc\r\n"));
    const char *body = strstr(q, "\r\n\r\n") + 4;
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "other");
    assert_true(json_is_true(json_object_get(j, "stream")));
    assert_int_equal(json_integer_value(json_object_get(j, "max_tokens")), 64);
    assert_int_equal(json_integer_value(json_object_get(j, "seed")), 5);
    assert_int_equal(json_integer_value(json_object_get(j, "think_budget")), 100);
    assert_string_equal(json_string_value(json_object_get(j, "think_mode")), "hard");
    assert_close(json_real_value(json_object_get(j, "temperature")), 0.6, 1e-6);
    json_t *m = json_object_get(j, "messages");
    assert_int_equal(json_array_size(m), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "role")),
                        "system");
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 1), "content")),
                        "2+2?");
    assert_null(strstr(body, "sk-abc"));
    json_decref(j);

    /* the same connection object serves a second request */
    memset(&g, 0, sizeof g);
    g.last = -1;
    remote_generate(rm, 10, msgs, 2, &gp, &stop, got_emit, &g);
    assert_int_equal(g.done.u.done.stop, ENGINE_STOP_END);
    remote_free(rm);
    server_stop(&sv);
}

static void test_a_lone_close_server_streams_its_reasoning_once_known(void **state)
{
    (void)state;
    struct server sv;
    server_start(&sv, 4);
    char url[64], err[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", sv.port);
    struct remote *rm = NULL;
    struct engine_remote r = {.url = url};
    assert_int_equal(remote_open(&r, NULL, &rm, err, sizeof err), 0);
    struct chat_msg msg = {CHAT_ROLE_USER, "2+2?"};
    struct engine_generate_params gp = {.max_tokens = -1};
    sampler_params_default(&gp.sampler);
    for (int turn = 0; turn < 2; turn++) {
        struct got g;
        memset(&g, 0, sizeof g);
        g.last = -1;
        remote_generate(rm, 20 + (uint64_t)turn, &msg, 1, &gp, NULL, got_emit, &g);
        assert_string_equal(g.out, "P:r|P:t|r:Adding two.\n|a:~\n\n|P:a|a:4");
        assert_int_equal(g.done.u.done.stop, ENGINE_STOP_END);
        assert_int_equal(g.done.u.done.stats.reasoning_tokens, 3);
        /* the first reply is held until its </think> (3rd token); the
         * connection then knows, and the second streams from its first token */
        assert_int_equal(g.firsts_at_text, turn == 0 ? 3 : 1);
    }
    remote_free(rm);
    server_stop(&sv);
}

struct stopper {
    atomic_bool *stop;
    int ms;
};

static void *stop_later(void *arg)
{
    struct stopper *s = arg;
    struct timespec ts = {s->ms / 1000, (long)(s->ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store(s->stop, true);
    return NULL;
}

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* One "hi" generation (request 3) against a fake server in mode; stop_ms > 0:
 * the stop flag is set that long after the start.  Fills g; returns the
 * milliseconds remote_generate took. */
static double generate_against(int mode, const struct remote_timeouts *to, int stop_ms,
                               struct got *g)
{
    struct server sv;
    server_start(&sv, mode);
    char url[64], err[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", sv.port);
    struct remote *rm = NULL;
    struct engine_remote r = {.url = url};
    assert_int_equal(remote_open(&r, to, &rm, err, sizeof err), 0);
    struct chat_msg msg = {CHAT_ROLE_USER, "hi"};
    struct engine_generate_params gp = {.max_tokens = -1};
    sampler_params_default(&gp.sampler);
    atomic_bool stop;
    atomic_init(&stop, false);
    struct stopper sp = {&stop, stop_ms};
    pthread_t t;
    memset(&t, 0, sizeof t);
    if (stop_ms > 0)
        assert_int_equal(pthread_create(&t, NULL, stop_later, &sp), 0);
    memset(g, 0, sizeof *g);
    g->last = -1;
    double t0 = wall_ms();
    remote_generate(rm, 3, &msg, 1, &gp, stop_ms > 0 ? &stop : NULL, got_emit, g);
    double took = wall_ms() - t0;
    if (stop_ms > 0)
        pthread_join(t, NULL);
    remote_free(rm);
    server_stop(&sv);
    return took;
}

static void test_stop_cancels_a_stalled_transfer(void **state)
{
    (void)state;
    struct got g;
    double took = generate_against(1, NULL, 300, &g);
    assert_string_equal(g.out, "P:r|P:t|r:Adding.");
    assert_int_equal(g.done.u.done.stop, ENGINE_STOP_USER);
    assert_string_equal(g.error, "");
    if (took > 1300)
        fail_msg("the stop took %.0f ms after the 300 ms", took);
}

static void test_stop_is_quick_while_the_server_is_silent(void **state)
{
    (void)state;
    struct got g;
    double took = generate_against(3, NULL, 200, &g) - 200;
    assert_int_equal(g.done.u.done.stop, ENGINE_STOP_USER);
    if (took > 250)
        fail_msg("the stop took %.0f ms", took);
}

static void test_a_silent_server_times_out_with_one_line(void **state)
{
    (void)state;
    struct remote_timeouts to = {.idle_ms = 1000};
    struct got g;
    generate_against(3, &to, 0, &g);
    assert_int_equal(g.done.u.done.stop, ENGINE_STOP_ERROR);
    if (!strstr(g.error, "sent nothing for 1 s"))
        fail_msg("error: %s", g.error);
}

/* ---- through the engine thread (the glue in infer/engine.c) ---- */

/* Waits up to 10 s for the next event. */
static bool next_event(struct engine *e, struct engine_event *ev)
{
    for (int i = 0; i < 1000; i++) {
        if (engine_next(e, ev))
            return true;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void test_the_engine_sends_generate_requests_to_the_remote(void **state)
{
    (void)state;
    struct server sv;
    server_start(&sv, 0);
    char url[64], err[512], host[32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", sv.port);
    snprintf(host, sizeof host, "127.0.0.1:%d", sv.port);
    struct engine *e = NULL;
    assert_int_equal(engine_open(&e, err, sizeof err), 0);
    struct engine_remote r = {.url = url, .api_key = "k", .model = "demo"};
    uint64_t id = engine_load_remote(e, &r);
    assert_true(id > 0);
    struct engine_event ev;
    do
        assert_true(next_event(e, &ev));
    while (ev.type == ENGINE_EVENT_LOAD_PROGRESS);
    assert_int_equal(ev.type, ENGINE_EVENT_LOADED);
    assert_int_equal(ev.request, id);
    assert_string_equal(ev.u.loaded.arch, "remote");
    assert_string_equal(ev.u.loaded.name, "demo");
    assert_string_equal(ev.u.loaded.backend, "remote");
    assert_string_equal(ev.u.loaded.device, host);

    struct chat_msg msg = {CHAT_ROLE_USER, "2+2?"};
    struct engine_generate_params gp = {.max_tokens = 16};
    sampler_params_default(&gp.sampler);
    id = engine_generate(e, &msg, 1, &gp);
    struct got g;
    memset(&g, 0, sizeof g);
    g.last = -1;
    do {
        assert_true(next_event(e, &ev));
        assert_int_equal(ev.request, id);
        got_emit(&g, &ev);
    } while (ev.type != ENGINE_EVENT_DONE);
    assert_string_equal(g.out, "P:r|P:t|r:Adding.|a:~\n\n|P:a|a:4");
    assert_int_equal(ev.u.done.stop, ENGINE_STOP_END);
    assert_string_equal(ev.u.done.stats.device, host);

    /* a failed load: ERROR, and the remote is gone */
    r.model = "nope";
    id = engine_load_remote(e, &r);
    do
        assert_true(next_event(e, &ev));
    while (ev.type == ENGINE_EVENT_LOAD_PROGRESS);
    assert_int_equal(ev.type, ENGINE_EVENT_ERROR);
    assert_non_null(strstr(ev.u.error, "no model 'nope'"));
    id = engine_generate(e, &msg, 1, &gp);
    assert_true(next_event(e, &ev));
    assert_int_equal(ev.type, ENGINE_EVENT_ERROR);
    assert_true(next_event(e, &ev));
    assert_int_equal(ev.type, ENGINE_EVENT_DONE);

    /* remote, then a local file, then remote again: each load replaces the last */
    r.model = NULL;
    engine_load_remote(e, &r);
    do
        assert_true(next_event(e, &ev));
    while (ev.type == ENGINE_EVENT_LOAD_PROGRESS);
    assert_int_equal(ev.type, ENGINE_EVENT_LOADED);
    struct model_params mp = {0};
    mp.n_ctx = 64;
    mp.n_threads = 1;
    engine_load(e, "share/models/ponder-demo.gguf", &mp);
    do
        assert_true(next_event(e, &ev));
    while (ev.type == ENGINE_EVENT_LOAD_PROGRESS);
    if (ev.type == ENGINE_EVENT_LOADED) {
        assert_string_not_equal(ev.u.loaded.arch, "remote");
        gp.max_tokens = 3;
        gp.sampler.temperature = 0;
        id = engine_generate(e, &msg, 1, &gp);
        do
            assert_true(next_event(e, &ev));
        while (ev.type != ENGINE_EVENT_DONE && ev.type != ENGINE_EVENT_ERROR);
        assert_int_equal(ev.type, ENGINE_EVENT_DONE);
        assert_string_not_equal(ev.u.done.stats.backend, "remote");
    } else {
        print_message("(the demo model did not load: %s; the local step is skipped)\n",
                      ev.u.error);
    }
    engine_close(e);
    server_stop(&sv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_events_are_the_same_however_the_bytes_are_split),
        cmocka_unit_test(test_sse_joins_data_lines_and_keeps_what_follows_the_space),
        cmocka_unit_test(test_sse_refuses_an_endless_line),
        cmocka_unit_test(test_reasoning_content_comes_out_as_reasoning_tokens),
        cmocka_unit_test(test_reasoning_field_is_read_like_reasoning_content),
        cmocka_unit_test(test_think_tags_in_content_are_split_even_across_deltas),
        cmocka_unit_test(test_a_reply_without_reasoning_is_all_answer),
        cmocka_unit_test(test_content_before_a_lone_close_is_reasoning),
        cmocka_unit_test(test_text_held_as_reasoning_without_a_close_is_the_answer),
        cmocka_unit_test(test_a_reasoning_field_makes_the_content_the_answer),
        cmocka_unit_test(test_long_deltas_are_cut_at_characters),
        cmocka_unit_test(test_usage_from_the_server_wins_over_counted_deltas),
        cmocka_unit_test(test_stats_are_measured_on_the_client),
        cmocka_unit_test(test_errors_end_the_reply_with_one_clear_line),
        cmocka_unit_test(test_a_stopped_reply_is_no_error),
        cmocka_unit_test(test_a_partial_tag_is_flushed_as_text_at_the_end),
        cmocka_unit_test(test_a_server_that_does_not_stream_is_read_whole),
        cmocka_unit_test(test_damaged_streams_never_crash_and_end_once),
        cmocka_unit_test(test_url_host_names_host_and_port),
        cmocka_unit_test(test_key_file_gives_its_first_line_trimmed),
        cmocka_unit_test(test_display_name_and_fingerprint),
        cmocka_unit_test(test_open_checks_the_server_and_the_model),
        cmocka_unit_test(test_open_reports_refused_and_unauthorised),
        cmocka_unit_test(test_generate_streams_a_reply_with_the_request_fields),
        cmocka_unit_test(test_a_lone_close_server_streams_its_reasoning_once_known),
        cmocka_unit_test(test_stop_cancels_a_stalled_transfer),
        cmocka_unit_test(test_stop_is_quick_while_the_server_is_silent),
        cmocka_unit_test(test_a_silent_server_times_out_with_one_line),
        cmocka_unit_test(test_the_engine_sends_generate_requests_to_the_remote),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
