/* Tests for the chat format: every reference conversation renders to the
 * exact text and ids of the three R1 vocabularies; detection; bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infer/chat.h"
#include "infer/gguf.h"
#include "infer/tokenizer.h"
#include "tests/fixture.h"
#include "tests/fx_gguf.h"

struct vocab {
    const char *name;       /* r1-qwen, ... */
    struct gguf *g;
    struct tokenizer *t;
    struct gguf_str tmpl;
};

static const char *const vocab_names[] = { "r1-qwen", "r1-llama", "r1" };

static int open_vocab(struct vocab *v, const char *name)
{
    char rel[64], err[256] = "";
    snprintf(rel, sizeof rel, "vocab-%s.gguf", name);
    v->name = name;
    v->g = NULL;
    v->t = NULL;
    int rc = gguf_open(fx_path(rel), &v->g, err, sizeof err);
    if (!rc)
        rc = tokenizer_load(v->g, &v->t, err, sizeof err);
    if (!rc)
        rc = gguf_get_str(v->g, "tokenizer.chat_template", &v->tmpl, err, sizeof err);
    if (rc)
        print_error("%s: %s\n", rel, err);
    return rc;
}

static void close_vocab(struct vocab *v)
{
    tokenizer_free(v->t);
    gguf_close(v->g);
}

static enum chat_role role_of(const char *s)
{
    if (strcmp(s, "system") == 0)
        return CHAT_ROLE_SYSTEM;
    if (strcmp(s, "user") == 0)
        return CHAT_ROLE_USER;
    assert_string_equal(s, "assistant");
    return CHAT_ROLE_ASSISTANT;
}

static void test_templates_are_recognised_as_r1(void **state)
{
    (void)state;
    for (size_t k = 0; k < 3; k++) {
        struct vocab v;
        assert_int_equal(open_vocab(&v, vocab_names[k]), 0);
        enum chat_format f = (enum chat_format)-1;
        char err[256] = "";
        int rc = chat_detect(v.tmpl.ptr, (size_t)v.tmpl.len, &f, err, sizeof err);
        if (rc != 0 || f != CHAT_FORMAT_DEEPSEEK_R1)
            fail_msg("vocab %s: rc %d (%s), format %d", v.name, rc, err, (int)f);
        assert_string_equal(chat_format_name(f), "deepseek-r1");
        assert_true(chat_prompt_opens_reasoning(f));
        close_vocab(&v);
    }
}

static void test_unknown_or_missing_template_is_enotsup(void **state)
{
    (void)state;
    static const struct {
        const char *name, *tmpl;
    } cases[] = {
        { "chatml", "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
                    "{% endfor %}" },
        { "llama3", "<|start_header_id|>user<|end_header_id|>\n\n{{ content }}<|eot_id|>" },
        { "user only", "{{ '<｜User｜>' + message['content'] }}" },
        { "ascii bars", "<|User|>{{ c }}<|Assistant|>" },
        { "empty", "" },
        { "missing", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum chat_format f;
        char err[256] = "";
        size_t len = cases[i].tmpl ? strlen(cases[i].tmpl) : 0;
        int rc = chat_detect(cases[i].tmpl, len, &f, err, sizeof err);
        if (rc != ENOTSUP || err[0] == 0)
            fail_msg("case %s: rc %d, err '%s'", cases[i].name, rc, err);
    }
    /* the markers must be inside the len bytes given */
    const char *t = "<｜User｜>x<｜Assistant｜>";
    enum chat_format f;
    assert_int_equal(chat_detect(t, strlen(t), &f, NULL, 0), 0);
    assert_int_equal(chat_detect(t, strlen(t) - 1, &f, NULL, 0), ENOTSUP);
}

/* Renders every conversation with every vocabulary to exactly the reference's
 * text and ids (message text tokenized by the plain rule). */
static void test_conversations_render_to_reference_text_and_ids(void **state)
{
    (void)state;
    json_t *convs = fx_load_jsonl(fx_path("chat/conversations.jsonl"));
    assert_non_null(convs);
    assert_int_equal(json_array_size(convs), 19);
    for (size_t k = 0; k < 3; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "chat/%s.jsonl", vocab_names[k]);
        json_t *refs = fx_load_jsonl(fx_path(rel));
        assert_non_null(refs);
        assert_int_equal(json_array_size(refs), json_array_size(convs));
        struct vocab v;
        assert_int_equal(open_vocab(&v, vocab_names[k]), 0);
        for (size_t c = 0; c < json_array_size(convs); c++) {
            json_t *conv = json_array_get(convs, c), *ref = json_array_get(refs, c);
            const char *name = json_string_value(json_object_get(conv, "name"));
            assert_string_equal(name, json_string_value(json_object_get(ref, "name")));
            json_t *jm = json_object_get(conv, "messages");
            size_t n = json_array_size(jm);
            struct chat_msg *msgs = calloc(n ? n : 1, sizeof *msgs);
            assert_non_null(msgs);
            for (size_t i = 0; i < n; i++) {
                json_t *m = json_array_get(jm, i);
                msgs[i].role = role_of(json_string_value(json_object_get(m, "role")));
                msgs[i].content = json_string_value(json_object_get(m, "content"));
            }
            bool gen = json_is_true(json_object_get(conv, "add_generation_prompt"));
            struct tokens ids = { 0 };
            char *text = NULL, err[256] = "";
            int rc = chat_render(CHAT_FORMAT_DEEPSEEK_R1, v.t, msgs, n, gen, &ids, &text, err,
                                 sizeof err);
            if (rc)
                fail_msg("%s/%s: rc %d: %s", v.name, name, rc, err);
            const char *want_text = json_string_value(json_object_get(ref, "text"));
            if (strcmp(text, want_text) != 0)
                fail_msg("%s/%s: text\n got '%s'\nwant '%s'", v.name, name, text, want_text);
            json_t *want = json_object_get(ref, "ids");
            size_t first = 0;
            while (first < ids.n && first < json_array_size(want) &&
                   json_integer_value(json_array_get(want, first)) == ids.ids[first])
                first++;
            bool same = first == ids.n && first == json_array_size(want);
            if (!same) {
                fail_msg("%s/%s: %zu ids, want %zu; first difference at %zu", v.name, name,
                         ids.n, json_array_size(want), first);
            }
            free(text);
            tokens_free(&ids);
            free(msgs);
        }
        close_vocab(&v);
        json_decref(refs);
    }
    json_decref(convs);
}

static void test_render_appends_and_text_is_optional(void **state)
{
    (void)state;
    struct vocab v;
    assert_int_equal(open_vocab(&v, "r1-qwen"), 0);
    struct chat_msg m[] = { { CHAT_ROLE_USER, "Hi" } };
    struct tokens ids = { 0 };
    assert_int_equal(tokens_push(&ids, 7), 0);
    assert_int_equal(chat_render(CHAT_FORMAT_DEEPSEEK_R1, v.t, m, 1, true, &ids, NULL, NULL, 0), 0);
    /* 7, then the reference ids of "Hi" with a generation prompt */
    static const int32_t want[] = { 7, 151646, 151644, 13048, 151645, 151648, 198 };
    assert_int_equal(ids.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < ids.n; i++)
        assert_int_equal(ids.ids[i], want[i]);
    tokens_free(&ids);
    /* no messages: BOS, and the generation prompt */
    char *text = NULL;
    assert_int_equal(chat_render(CHAT_FORMAT_DEEPSEEK_R1, v.t, NULL, 0, false, &ids, &text,
                                 NULL, 0), 0);
    assert_string_equal(text, "<｜begin▁of▁sentence｜>");
    assert_int_equal(ids.n, 1);
    free(text);
    tokens_free(&ids);
    close_vocab(&v);
}

/* Thinking off: the prompt ends with the empty reasoning block R1 writes,
 * "<｜Assistant｜><think>\n\n</think>\n\n", with the ids the tokenizer gives
 * that text read with special tokens, in every vocabulary. */
static void test_think_off_ends_the_prompt_with_an_empty_think_block(void **state)
{
    (void)state;
    static const char tail[] = "<｜Assistant｜><think>\n\n</think>\n\n";
    for (size_t k = 0; k < 3; k++) {
        struct vocab v;
        assert_int_equal(open_vocab(&v, vocab_names[k]), 0);
        struct chat_msg m[] = { { CHAT_ROLE_USER, "Hi" } };
        struct tokens on = { 0 }, off = { 0 }, want = { 0 };
        char *text_on = NULL, *text_off = NULL, err[256] = "";
        assert_int_equal(chat_render_gen(CHAT_FORMAT_DEEPSEEK_R1, v.t, m, 1, CHAT_GEN_THINK, &on,
                                         &text_on, err, sizeof err), 0);
        assert_int_equal(chat_render_gen(CHAT_FORMAT_DEEPSEEK_R1, v.t, m, 1, CHAT_GEN_THINK_OFF,
                                         &off, &text_off, err, sizeof err), 0);
        size_t n = strlen(text_off), nt = strlen(tail);
        if (n < nt || strcmp(text_off + n - nt, tail) != 0)
            fail_msg("vocab %s: text '%s' does not end with the empty block", v.name, text_off);
        assert_int_equal(tokenizer_encode(v.t, tail, nt, false, true, &want, err, sizeof err), 0);
        /* the same prefix as with thinking on, up to the assistant tag */
        size_t common = on.n - 3;   /* on ends with Assistant, <think>, "\n" */
        if (off.n != common + want.n)
            fail_msg("vocab %s: %zu ids, want %zu", v.name, off.n, common + want.n);
        for (size_t i = 0; i < common; i++)
            assert_int_equal(off.ids[i], on.ids[i]);
        for (size_t i = 0; i < want.n; i++)
            if (off.ids[common + i] != want.ids[i])
                fail_msg("vocab %s: id %zu of the tail is %d, want %d", v.name, i,
                         off.ids[common + i], want.ids[i]);
        free(text_on);
        free(text_off);
        tokens_free(&on);
        tokens_free(&off);
        tokens_free(&want);
        close_vocab(&v);
    }
}

static void test_kept_part_of_replies(void **state)
{
    (void)state;
    static const struct {
        const char *name, *reply, *want;
    } cases[] = {
        { "no think", "Hi!", "Hi!" },
        { "think block", "<think>\nx\n</think>\n\nAnswer", "\n\nAnswer" },
        { "two close tags", "a</think>b</think>c", "c" },
        { "close at end", "all reasoning</think>", "" },
        { "open only", "<think>unclosed", "<think>unclosed" },
        { "partial close", "a</think b", "a</think b" },
    };
    struct vocab v;
    assert_int_equal(open_vocab(&v, "r1-qwen"), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct chat_msg m[] = { { CHAT_ROLE_USER, "q" }, { CHAT_ROLE_ASSISTANT, cases[i].reply } };
        struct tokens ids = { 0 };
        char *text = NULL, want[256];
        snprintf(want, sizeof want,
                 "<｜begin▁of▁sentence｜><｜User｜>q<｜Assistant｜>%s<｜end▁of▁sentence｜>",
                 cases[i].want);
        assert_int_equal(chat_render(CHAT_FORMAT_DEEPSEEK_R1, v.t, m, 2, false, &ids, &text,
                                     NULL, 0), 0);
        if (strcmp(text, want) != 0)
            fail_msg("case %s: got '%s', want '%s'", cases[i].name, text, want);
        free(text);
        tokens_free(&ids);
    }
    close_vocab(&v);
}

static void test_bad_messages_are_einval_and_leave_ids(void **state)
{
    (void)state;
    struct vocab v;
    assert_int_equal(open_vocab(&v, "r1-qwen"), 0);
    struct chat_msg bad_role[] = { { CHAT_ROLE_USER, "a" }, { (enum chat_role)9, "b" } };
    struct chat_msg no_content[] = { { CHAT_ROLE_USER, "a" }, { CHAT_ROLE_ASSISTANT, NULL } };
    const struct chat_msg *cases[] = { bad_role, no_content };
    for (size_t i = 0; i < 2; i++) {
        struct tokens ids = { 0 };
        assert_int_equal(tokens_push(&ids, 1), 0);
        char *text = (char *)"x", err[256] = "";
        int rc = chat_render(CHAT_FORMAT_DEEPSEEK_R1, v.t, cases[i], 2, true, &ids, &text, err,
                             sizeof err);
        if (rc != EINVAL || ids.n != 1 || text != NULL || err[0] == 0)
            fail_msg("case %zu: rc %d, %zu ids, err '%s'", i, rc, ids.n, err);
        tokens_free(&ids);
    }
    close_vocab(&v);
}

/* A tiny vocabulary with BOS and EOS but no <｜User｜>: the format cannot be
 * rendered with it. */
static void test_vocabulary_without_r1_tokens_is_enotsup(void **state)
{
    (void)state;
    static const char *const toks[] = { "a", "b", "ab", "<｜begin▁of▁sentence｜>",
                                        "<｜end▁of▁sentence｜>" };
    static const int32_t types[] = { 1, 1, 1, 3, 3 };
    static const char *const merges[] = { "a b" };
    struct fx_gguf *w = fx_gguf_new(3);
    assert_non_null(w);
    assert_int_equal(fx_gguf_kv_str(w, "general.architecture", "qwen2"), 0);
    assert_int_equal(fx_gguf_kv_str(w, "tokenizer.ggml.model", "gpt2"), 0);
    assert_int_equal(fx_gguf_kv_str(w, "tokenizer.ggml.pre", "qwen2"), 0);
    assert_int_equal(fx_gguf_kv_arr_str(w, "tokenizer.ggml.tokens", toks, 5), 0);
    assert_int_equal(fx_gguf_kv_arr_i32(w, "tokenizer.ggml.token_type", types, 5), 0);
    assert_int_equal(fx_gguf_kv_arr_str(w, "tokenizer.ggml.merges", merges, 1), 0);
    assert_int_equal(fx_gguf_kv_u32(w, "tokenizer.ggml.bos_token_id", 3), 0);
    assert_int_equal(fx_gguf_kv_u32(w, "tokenizer.ggml.eos_token_id", 4), 0);
    char *path = NULL;
    const char *tmp = getenv("TMPDIR");
    char buf[512];
    snprintf(buf, sizeof buf, "%s/ponder-test-chat-%ld.gguf", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    path = buf;
    assert_int_equal(fx_gguf_write_file(w, path), 0);
    fx_gguf_free(w);
    struct gguf *g = NULL;
    struct tokenizer *t = NULL;
    char err[256] = "";
    int rc = gguf_open(path, &g, err, sizeof err);
    if (!rc)
        rc = tokenizer_load(g, &t, err, sizeof err);
    if (rc)
        fail_msg("tiny vocabulary: %s", err);
    struct chat_msg m[] = { { CHAT_ROLE_USER, "ab" } };
    struct tokens ids = { 0 };
    char *text = NULL;
    err[0] = 0;
    rc = chat_render(CHAT_FORMAT_DEEPSEEK_R1, t, m, 1, true, &ids, &text, err, sizeof err);
    assert_int_equal(rc, ENOTSUP);
    assert_non_null(strstr(err, "<｜User｜>"));
    assert_int_equal(ids.n, 0);
    assert_null(text);
    tokenizer_free(t);
    gguf_close(g);
    remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_templates_are_recognised_as_r1),
        cmocka_unit_test(test_unknown_or_missing_template_is_enotsup),
        cmocka_unit_test(test_conversations_render_to_reference_text_and_ids),
        cmocka_unit_test(test_render_appends_and_text_is_optional),
        cmocka_unit_test(test_think_off_ends_the_prompt_with_an_empty_think_block),
        cmocka_unit_test(test_kept_part_of_replies),
        cmocka_unit_test(test_bad_messages_are_einval_and_leave_ids),
        cmocka_unit_test(test_vocabulary_without_r1_tokens_is_enotsup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
