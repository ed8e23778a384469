/* The transcript of the chat screen: safe text, display widths, wrapping of
 * words and wide characters, and the folding of reasoning traces. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "tests/fixture.h"
#include "ui/transcript.h"

static int setup_locale(void **state)
{
    (void)state;
    if (!setlocale(LC_ALL, "C.UTF-8") && !setlocale(LC_ALL, "en_US.UTF-8"))
        return -1;
    return 0;
}

/* The lines of style st joined with '|'. */
static const char *lines_of(const struct tr_lines *l, enum tr_style st, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].style != st)
            continue;
        o += (size_t)snprintf(buf + o, cap - o, "%s%.*s", o ? "|" : "", (int)l->v[i].len,
                              l->v[i].text);
        if (o >= cap)
            break;
    }
    return buf;
}

static bool has_style(const struct tr_lines *l, enum tr_style st, const char *text)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].style == st && (!text || (l->v[i].len >= strlen(text) &&
                                              strstr(l->v[i].text, text))))
            return true;
    return false;
}

static void test_safe_text_makes_control_bytes_visible(void **state)
{
    (void)state;
    static const struct {
        const char *name, *in, *out;
    } cases[] = {
        {"plain", "abc", "abc"},
        {"escape", "a\x1b[2Jb", "a^[[2Jb"},
        {"bell and del", "\a\x7f", "^G^?"},
        {"tab", "a\tb", "a    b"},
        {"crlf", "a\r\nb", "a\nb"},
        {"invalid utf8", "a\xff" "b", "a\xEF\xBF\xBD" "b"},
        {"truncated utf8", "a\xE4\xB8", "a\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"c1 control", "a\xC2\x9B" "b", "a\xEF\xBF\xBD" "b"},
        {"cjk and emoji", "世界🙂", "世界🙂"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tr_text t = {0};
        assert_int_equal(tr_text_add_safe(&t, cases[i].in, strlen(cases[i].in)), 0);
        if (strcmp(t.s, cases[i].out))
            fail_msg("case %s: got '%s'", cases[i].name, t.s);
        free(t.s);
    }
}

static void test_width_counts_wide_characters_twice(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int w;
    } cases[] = {{"abc", 3}, {"世界", 4}, {"🙂", 2}, {"e\xCC\x81", 1}, {"", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (tr_width(cases[i].s, strlen(cases[i].s)) != cases[i].w)
            fail_msg("case '%s': width %d, want %d", cases[i].s,
                     tr_width(cases[i].s, strlen(cases[i].s)), cases[i].w);
}

static void test_count_has_thousands_separators(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(tr_count(0, b, sizeof b), "0");
    assert_string_equal(tr_count(999, b, sizeof b), "999");
    assert_string_equal(tr_count(1210, b, sizeof b), "1,210");
    assert_string_equal(tr_count(1234567, b, sizeof b), "1,234,567");
}

static void test_wrap_breaks_at_spaces_and_wide_characters(void **state)
{
    (void)state;
    static const struct {
        const char *name, *text;
        int width;
        const char *want;
    } cases[] = {
        {"fits", "hello world", 20, "hello world"},
        {"at a space", "hello world again", 12, "hello world|again"},
        {"exact width", "abcdefgh", 8, "abcdefgh"},
        {"one over", "abcdefghi", 8, "abcdefgh|i"},
        {"long word", "abcdefghijklmnopqrst", 8, "abcdefgh|ijklmnop|qrst"},
        {"newlines", "a\n\nb", 8, "a||b"},
        {"trailing newline", "a\n", 8, "a"},
        {"cjk", "日本語の文章です", 8, "日本語の|文章です"},
        {"cjk odd width", "日本語の文章", 9, "日本語の|文章"},
        {"emoji", "😀😀😀😀😀", 8, "😀😀😀😀|😀"},
        {"mixed", "ab 日本語", 8, "ab 日本|語"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct transcript t;
        struct tr_lines l = {0};
        char buf[256];
        tr_init(&t, true);
        assert_int_equal(tr_add_note(&t, cases[i].text), 0);
        assert_int_equal(tr_layout(&t, cases[i].width, 0, &l), 0);
        lines_of(&l, TR_STYLE_NOTE, buf, sizeof buf);
        if (strcmp(buf, cases[i].want))
            fail_msg("case %s: got '%s', want '%s'", cases[i].name, buf, cases[i].want);
        for (size_t k = 0; k < l.n; k++)
            if (l.v[k].indent + tr_width(l.v[k].text, l.v[k].len) > cases[i].width)
                fail_msg("case %s: line %zu is wider than %d", cases[i].name, k,
                         cases[i].width);
        tr_lines_free(&l);
        tr_free(&t);
    }
}

static void stream(struct transcript *t, enum reason_kind k, const char *s, double now)
{
    assert_int_equal(tr_reply_append(t, k, s, strlen(s), true, now), 0);
}

static void test_reasoning_folds_when_the_answer_starts(void **state)
{
    (void)state;
    struct transcript t;
    struct tr_lines l = {0};
    char buf[512];
    tr_init(&t, true);
    assert_int_equal(tr_add_user(&t, "hi", 2), 0);
    assert_int_equal(tr_reply_begin(&t, "r1"), 0);
    stream(&t, REASON_KIND_REASONING, "step one\n", 1000);
    stream(&t, REASON_KIND_REASONING, "step two", 2000);
    assert_int_equal(tr_layout(&t, 40, 13300, &l), 0);
    assert_true(has_style(&l, TR_STYLE_THINK_HEAD, "Thinking… 12.3 s · 2 tokens"));
    assert_string_equal(lines_of(&l, TR_STYLE_THINK, buf, sizeof buf), "step one|step two");

    stream(&t, REASON_KIND_ANSWER, "The answer.", 35200);
    assert_int_equal(tr_layout(&t, 40, 36000, &l), 0);
    assert_true(has_style(&l, TR_STYLE_THINK_HEAD, "▸ Thought for 34.2 s (2 tokens)"));
    assert_false(has_style(&l, TR_STYLE_THINK, NULL));
    assert_string_equal(lines_of(&l, TR_STYLE_ANSWER, buf, sizeof buf), "The answer.");

    tr_toggle_fold(&t, 1);
    assert_int_equal(tr_layout(&t, 40, 36000, &l), 0);
    assert_true(has_style(&l, TR_STYLE_THINK_HEAD, "▾ Thought for"));
    assert_string_equal(lines_of(&l, TR_STYLE_THINK, buf, sizeof buf), "step one|step two");

    struct engine_stats st = {.reasoning_tokens = 1210, .reasoning_ms = 34200, .gen_tps = 20};
    tr_reply_end(&t, ENGINE_STOP_END, &st, 40000);
    tr_toggle_fold(&t, 1);
    assert_int_equal(tr_layout(&t, 60, 40000, &l), 0);
    assert_true(has_style(&l, TR_STYLE_THINK_HEAD, "▸ Thought for 34.2 s (1,210 tokens)"));
    assert_true(has_style(&l, TR_STYLE_FOOTER, "20.0 t/s"));
    tr_lines_free(&l);
    tr_free(&t);
}

static void test_folded_line_says_when_the_budget_ended_the_reasoning(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool reached;
        const char *want;
    } cases[] = {
        {"reached", true, "▸ Thought for 8.1 s (1,024 tokens, budget reached)"},
        {"not reached", false, "▸ Thought for 8.1 s (1,024 tokens)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct transcript t;
        struct tr_lines l = {0};
        tr_init(&t, true);
        assert_int_equal(tr_reply_begin(&t, "r1"), 0);
        stream(&t, REASON_KIND_REASONING, "hm", 0);
        stream(&t, REASON_KIND_ANSWER, "ok", 8100);
        struct engine_stats st = {.reasoning_tokens = 1024, .reasoning_ms = 8100,
                                  .think_budget = 1024, .budget_reached = cases[i].reached};
        tr_reply_end(&t, ENGINE_STOP_END, &st, 9000);
        assert_int_equal(tr_layout(&t, 80, 9000, &l), 0);
        if (!has_style(&l, TR_STYLE_THINK_HEAD, cases[i].want) ||
            (!cases[i].reached && has_style(&l, TR_STYLE_THINK_HEAD, "budget")))
            fail_msg("case %s: no line '%s'", cases[i].name, cases[i].want);
        tr_lines_free(&l);
        tr_free(&t);
    }
}

static void test_folded_while_thinking_keeps_a_live_tail(void **state)
{
    (void)state;
    struct transcript t;
    struct tr_lines l = {0};
    char buf[512];
    tr_init(&t, true);
    assert_int_equal(tr_reply_begin(&t, "r1"), 0);
    stream(&t, REASON_KIND_REASONING, "one\ntwo\nthree\nfour\nfive", 0);
    tr_toggle_fold(&t, 0);
    assert_int_equal(tr_layout(&t, 40, 100, &l), 0);
    assert_string_equal(lines_of(&l, TR_STYLE_THINK, buf, sizeof buf), "three|four|five");
    tr_lines_free(&l);
    tr_free(&t);
}

static void test_no_fold_default_keeps_reasoning_open(void **state)
{
    (void)state;
    struct transcript t;
    struct tr_lines l = {0};
    tr_init(&t, false);
    assert_int_equal(tr_reply_begin(&t, "r1"), 0);
    stream(&t, REASON_KIND_REASONING, "why", 0);
    stream(&t, REASON_KIND_ANSWER, "because", 10);
    assert_int_equal(tr_layout(&t, 40, 100, &l), 0);
    assert_true(has_style(&l, TR_STYLE_THINK, "why"));
    tr_lines_free(&l);
    tr_free(&t);
}

static void test_toggle_all_folds_then_unfolds_every_trace(void **state)
{
    (void)state;
    struct transcript t;
    tr_init(&t, true);
    assert_int_equal(tr_add_reply(&t, "a", "r1", "x", false), 0);
    assert_int_equal(tr_add_reply(&t, "b", "r2", "y", false), 0);
    assert_true(t.e[0].folded && t.e[1].folded);
    tr_toggle_all(&t);
    assert_false(t.e[0].folded || t.e[1].folded);
    tr_toggle_fold(&t, 0);
    tr_toggle_all(&t);     /* one open: all fold */
    assert_true(t.e[0].folded && t.e[1].folded);
    tr_free(&t);
}

static void test_interrupted_reply_is_marked(void **state)
{
    (void)state;
    struct transcript t;
    struct tr_lines l = {0};
    tr_init(&t, true);
    assert_int_equal(tr_reply_begin(&t, "r1"), 0);
    stream(&t, REASON_KIND_ANSWER, "partial", 0);
    struct engine_stats st = {.answer_tokens = 1};
    tr_reply_end(&t, ENGINE_STOP_USER, &st, 10);
    assert_null(tr_streaming(&t));
    assert_int_equal(tr_layout(&t, 80, 100, &l), 0);
    assert_true(has_style(&l, TR_STYLE_ANSWER, "partial"));
    assert_true(has_style(&l, TR_STYLE_FOOTER, "interrupted"));
    tr_lines_free(&l);
    tr_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safe_text_makes_control_bytes_visible),
        cmocka_unit_test(test_width_counts_wide_characters_twice),
        cmocka_unit_test(test_count_has_thousands_separators),
        cmocka_unit_test(test_wrap_breaks_at_spaces_and_wide_characters),
        cmocka_unit_test(test_reasoning_folds_when_the_answer_starts),
        cmocka_unit_test(test_folded_line_says_when_the_budget_ended_the_reasoning),
        cmocka_unit_test(test_folded_while_thinking_keeps_a_live_tail),
        cmocka_unit_test(test_no_fold_default_keeps_reasoning_open),
        cmocka_unit_test(test_toggle_all_folds_then_unfolds_every_trace),
        cmocka_unit_test(test_interrupted_reply_is_marked),
    };
    return cmocka_run_group_tests(tests, setup_locale, NULL);
}
