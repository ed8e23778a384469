/* Tests for the reasoning splitter: tags whole or split at every byte, no
 * tag, text after </think>, a second <think>, leading whitespace, flush. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "infer/reason.h"
#include "tests/fixture.h"

/* The spans received, rendered as a transcript: adjacent spans of the same
 * kind and leading flag merged, each run written "r:" / "a:" (with "~" for
 * leading whitespace) then its text, runs separated by "|". */
struct collect {
    char out[1024];
    size_t n;
    int last;   /* -1, or kind * 2 + leading of the last run */
    int empty;  /* spans of length 0 received */
};

static void collect_init(struct collect *c)
{
    c->n = 0;
    c->out[0] = 0;
    c->last = -1;
    c->empty = 0;
}

static void put(struct collect *c, const char *s, size_t len)
{
    assert_true(c->n + len < sizeof c->out);
    memcpy(c->out + c->n, s, len);
    c->n += len;
    c->out[c->n] = 0;
}

static void on_span(void *ctx, const struct reason_span *sp)
{
    struct collect *c = ctx;
    if (sp->len == 0) {
        c->empty++;
        return;
    }
    int cat = (int)sp->kind * 2 + sp->leading;
    if (cat != c->last) {
        if (c->last >= 0)
            put(c, "|", 1);
        put(c, sp->kind == REASON_KIND_REASONING ? "r" : "a", 1);
        if (sp->leading)
            put(c, "~", 1);
        put(c, ":", 1);
        c->last = cat;
    }
    put(c, sp->text, sp->len);
}

/* How a case's splitter starts: reason_init(r, false), reason_init(r, true),
 * reason_init_unopened(r). */
enum { OPEN = 0, IN_REASONING = 1, UNOPENED = 2 };

static const struct {
    const char *name;
    int start;
    const char *input;
    const char *want;
} cases[] = {
    { "r1 reply", true, "Okay, 2+2.\n</think>\n\nIt is **4**.",
      "r:Okay, 2+2.\n|a~:\n\n|a:It is **4**." },
    { "no tag, reasoning", true, "thinking and never stopping",
      "r:thinking and never stopping" },
    { "no tag, answer", false, "Just an answer < with > brackets",
      "a:Just an answer < with > brackets" },
    { "opens and closes", false, "<think>\nhm\n</think>\n\nYes.",
      "r~:\n|r:hm\n|a~:\n\n|a:Yes." },
    { "whitespace before open", false, " \n<think>x</think>A", "a~: \n|r:x|a:A" },
    { "second think stays answer", true, "a</think>b<think>c</think>d",
      "r:a|a:b<think>c</think>d" },
    { "open after answer text is text", false, "Sure: <think>x</think>",
      "a:Sure: <think>x</think>" },
    { "close without open is answer", false, "x</think>y", "a:x</think>y" },
    { "empty reasoning", true, "</think>\n\nDone", "a~:\n\n|a:Done" },
    { "empty answer", true, "why\n</think>", "r:why\n" },
    { "near miss close", true, "</thinking></thin></think>ok",
      "r:</thinking></thin>|a:ok" },
    { "near miss open", false, "<thinking>", "a:<thinking>" },
    { "doubled angle", true, "<</think>x", "r:<|a:x" },
    { "angle then open", false, " <<think>", "a~: |a:<<think>" },
    { "partial close at end", true, "abc</thi", "r:abc</thi" },
    { "partial open at end", false, "\n<thin", "a~:\n|a:<thin" },
    { "lone angle at end", true, "a <", "r:a <" },
    { "utf-8 around tags", true, "думаю…</think>答案：四", "r:думаю…|a:答案：四" },
    { "only tags", false, "<think></think>", "" },
    { "nothing", true, "", "" },
    /* unopened: the <think> may have been in the prompt */
    { "unopened lone close", UNOPENED, "Okay, 2+2.\n</think>\n\nIt is 4.",
      "r:Okay, 2+2.\n|a~:\n\n|a:It is 4." },
    { "unopened opens", UNOPENED, "<think>\nhm\n</think>\n\nYes.", "r~:\n|r:hm\n|a~:\n\n|a:Yes." },
    { "unopened whitespace before open", UNOPENED, " \n<think>x</think>A", "r~: \n|r:x|a:A" },
    { "unopened closes at once", UNOPENED, "\n</think>\n\nHi", "r~:\n|a~:\n\n|a:Hi" },
    { "unopened never closes", UNOPENED, "just text", "r:just text" },
    { "unopened near miss open", UNOPENED, "<thinking>x</think>y", "r:<thinking>x|a:y" },
    { "unopened other close tag", UNOPENED, "</b></think>a", "r:</b>|a:a" },
    { "unopened doubled angle", UNOPENED, "<</think>x", "r:<|a:x" },
    { "unopened later think is text", UNOPENED, "a<think>b</think>c", "r:a<think>b|a:c" },
    { "unopened partial open at end", UNOPENED, "<thi", "r:<thi" },
    { "unopened partial close at end", UNOPENED, "a</thi", "r:a</thi" },
    { "unopened angle slash at end", UNOPENED, "</", "r:</" },
    { "unopened second close is answer", UNOPENED, "a</think>b</think>", "r:a|a:b</think>" },
};

static void run_pieces(int start, const char *input, const size_t *cuts, int n_cuts,
                       struct collect *c)
{
    struct reason r;
    if (start == UNOPENED)
        reason_init_unopened(&r);
    else
        reason_init(&r, start == IN_REASONING);
    collect_init(c);
    size_t len = strlen(input), at = 0;
    for (int i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        reason_push(&r, input + at, end - at, on_span, c);
        at = end;
    }
    reason_flush(&r, on_span, c);
}

static void check(size_t k, const char *how, const struct collect *c)
{
    if (strcmp(c->out, cases[k].want) != 0)
        fail_msg("case %s (%s): got '%s', want '%s'", cases[k].name, how, c->out,
                 cases[k].want);
    if (c->empty)
        fail_msg("case %s (%s): %d empty spans", cases[k].name, how, c->empty);
}

static void test_whole_input_as_one_piece(void **state)
{
    (void)state;
    struct collect c;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        run_pieces(cases[k].start, cases[k].input, NULL, 0, &c);
        check(k, "one piece", &c);
    }
}

static void test_split_at_every_byte_position(void **state)
{
    (void)state;
    struct collect c;
    char how[64];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t len = strlen(cases[k].input);
        for (size_t i = 0; i <= len; i++) {
            size_t cuts[1] = { i };
            run_pieces(cases[k].start, cases[k].input, cuts, 1, &c);
            snprintf(how, sizeof how, "cut at %zu", i);
            check(k, how, &c);
        }
    }
}

static void test_split_at_every_pair_of_positions(void **state)
{
    (void)state;
    struct collect c;
    char how[64];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t len = strlen(cases[k].input);
        for (size_t i = 0; i <= len; i++)
            for (size_t j = i; j <= len; j++) {
                size_t cuts[2] = { i, j };
                run_pieces(cases[k].start, cases[k].input, cuts, 2, &c);
                snprintf(how, sizeof how, "cuts at %zu, %zu", i, j);
                check(k, how, &c);
            }
    }
}

static void test_one_byte_per_piece(void **state)
{
    (void)state;
    struct collect c;
    size_t cuts[128];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t len = strlen(cases[k].input);
        assert_true(len < 128);
        for (size_t i = 0; i < len; i++)
            cuts[i] = i + 1;
        run_pieces(cases[k].start, cases[k].input, cuts, (int)len, &c);
        check(k, "byte by byte", &c);
    }
}

/* Tokens as a model emits them: the tag as one token, or as "</", "think", ">". */
static void test_tags_as_whole_and_split_tokens(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool starts;
        const char *pieces[10];
        const char *want;
    } tok_cases[] = {
        { "whole tags", false, { "<think>", "\n", "Hmm", "</think>", "\n\n", "Yes." },
          "r~:\n|r:Hmm|a~:\n\n|a:Yes." },
        { "split close", true, { "Hmm", ".\n", "</", "think", ">", "\n\n", "Yes" },
          "r:Hmm.\n|a~:\n\n|a:Yes" },
        { "close glued to text", true, { "done.</", "think>\n\nA" }, "r:done.|a~:\n\n|a:A" },
        { "false start", true, { "a </", "b", "</think>", "c" }, "r:a </b|a:c" },
        /* a thinking budget: the engine feeds "</think>" and "\n\n" wherever
         * the reasoning is, even after a tag the model had begun */
        { "budget cut mid-word", true, { "Add the r", "</think>", "\n\n", "85" },
          "r:Add the r|a~:\n\n|a:85" },
        { "budget cut after a partial close", true, { "So", " </", "</think>", "\n\n", "4" },
          "r:So </|a~:\n\n|a:4" },
        { "budget cut after a partial close glued", true, { "So </thi", "</think>", "\n\n" },
          "r:So </thi|a~:\n\n" },
        /* thinking off: the prompt closed the block, the reply is answer */
        { "thinking off", false, { "\n\n", "47", " + 38" }, "a~:\n\n|a:47 + 38" },
    };
    struct collect c;
    for (size_t k = 0; k < sizeof tok_cases / sizeof tok_cases[0]; k++) {
        struct reason r;
        reason_init(&r, tok_cases[k].starts);
        collect_init(&c);
        for (int i = 0; i < 10 && tok_cases[k].pieces[i]; i++)
            reason_push(&r, tok_cases[k].pieces[i], strlen(tok_cases[k].pieces[i]), on_span, &c);
        reason_flush(&r, on_span, &c);
        if (strcmp(c.out, tok_cases[k].want) != 0)
            fail_msg("case %s: got '%s', want '%s'", tok_cases[k].name, c.out, tok_cases[k].want);
    }
}

static void test_kind_now_follows_the_tags(void **state)
{
    (void)state;
    struct reason r;
    struct collect c;
    collect_init(&c);
    reason_init(&r, false);
    assert_int_equal(reason_kind_now(&r), REASON_KIND_ANSWER);
    reason_push(&r, "<think>", 7, on_span, &c);
    assert_int_equal(reason_kind_now(&r), REASON_KIND_REASONING);
    reason_push(&r, "x</thi", 6, on_span, &c);
    assert_int_equal(reason_kind_now(&r), REASON_KIND_REASONING);
    reason_push(&r, "nk>", 3, on_span, &c);
    assert_int_equal(reason_kind_now(&r), REASON_KIND_ANSWER);
    reason_init(&r, true);
    assert_int_equal(reason_kind_now(&r), REASON_KIND_REASONING);
}

static void test_unopened_says_whether_a_think_opened_the_reasoning(void **state)
{
    (void)state;
    struct reason r;
    struct collect c;
    collect_init(&c);
    reason_init_unopened(&r);
    assert_int_equal(reason_kind_now(&r), REASON_KIND_REASONING);
    reason_push(&r, "\n", 1, on_span, &c);
    assert_false(r.untagged);               /* only whitespace: not yet known */
    reason_push(&r, "<", 1, on_span, &c);
    reason_push(&r, "/think>", 7, on_span, &c);
    assert_true(r.untagged);
    assert_int_equal(reason_kind_now(&r), REASON_KIND_ANSWER);
    reason_init_unopened(&r);
    reason_push(&r, "<think>", 7, on_span, &c);
    assert_int_equal(reason_kind_now(&r), REASON_KIND_REASONING);
    reason_push(&r, "x</think>", 9, on_span, &c);
    assert_false(r.untagged);
    reason_init_unopened(&r);
    reason_push(&r, "Ok", 2, on_span, &c);
    assert_true(r.untagged);
    assert_int_equal(reason_kind_now(&r), REASON_KIND_REASONING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_input_as_one_piece),
        cmocka_unit_test(test_split_at_every_byte_position),
        cmocka_unit_test(test_split_at_every_pair_of_positions),
        cmocka_unit_test(test_one_byte_per_piece),
        cmocka_unit_test(test_tags_as_whole_and_split_tokens),
        cmocka_unit_test(test_kind_now_follows_the_tags),
        cmocka_unit_test(test_unopened_says_whether_a_think_opened_the_reasoning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
