/* Conformance of the forward pass: every qwen2 and llama test model, every
 * prompt, against llama.cpp's reference logits (testdata README 3.4, 3.7). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infer/gguf.h"
#include "infer/model.h"
#include "tests/fixture.h"
#include "tests/fx_gguf.h"
#include "tests/fx_model.h"

static void check_model(const char *name, enum cpu_isa isa)
{
    char msg[512] = "";
    struct model_params p = {.n_ctx = 2048, .n_threads = 2, .kv_type = KV_TYPE_F32, .max_isa = isa};
    if (fx_model_check(name, &p, msg, sizeof msg))
        fail_msg("%s (%s kernels)", msg, isa == CPU_ISA_PORTABLE ? "portable" : "selected");
}

#define MODEL_TEST(id, file)                                                             \
    static void test_##id##_matches_llama_cpp(void **state)                             \
    {                                                                                    \
        (void)state;                                                                     \
        check_model(file, CPU_ISA_COUNT);                                                \
    }

MODEL_TEST(tq_f32, "tq-f32")
MODEL_TEST(tq_f16, "tq-f16")
MODEL_TEST(tq_bf16, "tq-bf16")
MODEL_TEST(tq_q8_0, "tq-q8_0")
MODEL_TEST(tq_q4_0, "tq-q4_0")
MODEL_TEST(tq_q4_1, "tq-q4_1")
MODEL_TEST(tq_q5_0, "tq-q5_0")
MODEL_TEST(tq_q5_1, "tq-q5_1")
MODEL_TEST(tq_q2_k, "tq-q2_k")
MODEL_TEST(tq_q3_k_m, "tq-q3_k_m")
MODEL_TEST(tq_q4_k_m, "tq-q4_k_m")
MODEL_TEST(tq_q5_k_m, "tq-q5_k_m")
MODEL_TEST(tq_q6_k, "tq-q6_k")
MODEL_TEST(tl_f32, "tl-f32")
MODEL_TEST(tl_f16, "tl-f16")
MODEL_TEST(tl_q8_0, "tl-q8_0")
MODEL_TEST(tl_q4_k_m, "tl-q4_k_m")

static void test_portable_and_avx2_kernels_match_llama_cpp_too(void **state)
{
    (void)state;
    check_model("tq-q4_k_m", CPU_ISA_PORTABLE);
    check_model("tl-f32", CPU_ISA_PORTABLE);
    if (cpu_detect() >= CPU_ISA_AVX2) {
        check_model("tq-q8_0", CPU_ISA_AVX2);
        check_model("tl-q4_k_m", CPU_ISA_AVX2);
        check_model("tq-f16", CPU_ISA_AVX2);
    }
}

static void test_prefix_reuse_gives_the_same_logits(void **state)
{
    (void)state;
    struct model_params p = {.n_ctx = 256, .n_threads = 2, .kv_type = KV_TYPE_F32,
                             .max_isa = CPU_ISA_COUNT};
    struct model *m = NULL;
    char err[512];
    assert_int_equal(model_load(fx_path("models/tq-f32.gguf"), &p, &m, err, sizeof err), 0);
    int n_vocab = model_info(m)->n_vocab;
    int32_t a[12] = {451, 54, 12, 99, 7, 300, 41, 42, 43, 44, 45, 46};
    int32_t b[12] = {451, 54, 12, 99, 7, 300, 41, 42, 100, 101, 102, 103};
    float *fresh = malloc((size_t)n_vocab * sizeof(float)), *reused = malloc((size_t)n_vocab * sizeof(float));
    assert_int_equal(model_decode(m, b, 12, fresh, false, err, sizeof err), 0);
    model_clear(m);
    assert_int_equal(model_decode(m, a, 12, NULL, false, err, sizeof err), 0);
    int kept = model_keep_prefix(m, b, 12);
    assert_int_equal(kept, 8);
    assert_int_equal(model_decode(m, b + kept, 12 - kept, reused, false, err, sizeof err), 0);
    for (int i = 0; i < n_vocab; i++)
        assert_close(reused[i], fresh[i], 1e-4);
    /* the whole prompt cached: the last token is evaluated again */
    assert_int_equal(model_keep_prefix(m, b, 12), 11);
    free(fresh);
    free(reused);
    model_free(m);
}

static void test_context_overflow_is_an_error_not_a_crash(void **state)
{
    (void)state;
    struct model_params p = {.n_ctx = 16, .n_threads = 1, .kv_type = KV_TYPE_F16,
                             .max_isa = CPU_ISA_COUNT};
    struct model *m = NULL;
    char err[512];
    assert_int_equal(model_load(fx_path("models/tl-q8_0.gguf"), &p, &m, err, sizeof err), 0);
    int32_t ids[20] = {0};
    assert_int_equal(model_decode(m, ids, 20, NULL, false, err, sizeof err), ENOSPC);
    assert_non_null(strstr(err, "context"));
    int32_t bad = 100000;
    assert_int_equal(model_decode(m, &bad, 1, NULL, false, err, sizeof err), EINVAL);
    model_free(m);
}

/* deepseek2 loads (its conformance is in test_deepseek2.c); a missing file
 * is ENOENT. */
static void test_deepseek2_loads_and_a_missing_file_is_enoent(void **state)
{
    (void)state;
    struct model_params p = {.n_threads = 1, .n_ctx = 64, .max_isa = CPU_ISA_COUNT};
    struct model *m = NULL;
    char err[512];
    assert_int_equal(model_load(fx_path("models/td-f32.gguf"), &p, &m, err, sizeof err), 0);
    assert_string_equal(model_info(m)->arch, "deepseek2");
    model_free(m);
    m = NULL;
    assert_int_equal(model_load("/nonexistent/model.gguf", &p, &m, err, sizeof err), ENOENT);
}


/* ---- malformed models: a copy of tq-f32 with one thing changed ---- */

struct edit {
    const char *name;
    const char *drop_key;       /* leave this key out */
    const char *str_key;        /* write this key as a string instead */
    const char *u32_key;        /* write this key with u32_val */
    uint32_t u32_val;
    const char *drop_tensor;    /* leave this tensor out */
    const char *tensor;         /* give this tensor ... */
    int64_t ne1;                /* ... this many rows (0: unchanged) */
    uint32_t type;              /* ... or this type (0: unchanged) */
    int want;                   /* the error */
    const char *mentions;       /* the message names this */
};

static void check_edit(const struct edit *e)
{
    char err[512];
    struct gguf *g = NULL;
    assert_int_equal(gguf_open(fx_path("models/tq-f32.gguf"), &g, err, sizeof err), 0);
    struct fx_gguf *w = fx_gguf_new(3);
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const char *key = gguf_kv_key(g, i);
        if (e->drop_key && !strcmp(key, e->drop_key))
            continue;
        if (e->str_key && !strcmp(key, e->str_key))
            assert_int_equal(fx_gguf_kv_str(w, key, "twenty"), 0);
        else if (e->u32_key && !strcmp(key, e->u32_key))
            assert_int_equal(fx_gguf_kv_u32(w, key, e->u32_val), 0);
        else
            assert_int_equal(fx_model_copy_kv(w, key, gguf_kv_value(g, i)), 0);
    }
    if (e->u32_key && !gguf_find(g, e->u32_key))
        assert_int_equal(fx_gguf_kv_u32(w, e->u32_key, e->u32_val), 0);
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor(g, i);
        if (e->drop_tensor && !strcmp(t->name, e->drop_tensor))
            continue;
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        const void *data = t->data;
        enum quant_type type = t->type;
        if (e->tensor && !strcmp(t->name, e->tensor)) {
            if (e->ne1)
                ne[1] = e->ne1;
            if (e->type)
                type = (enum quant_type)e->type;
            data = NULL;   /* zeros of the new size */
        }
        assert_int_equal(fx_gguf_tensor(w, t->name, type, t->n_dims, ne, data), 0);
    }
    char path[] = "/tmp/ponder-test-model-XXXXXX";
    assert_int_equal(fx_model_write_temp(w, path), 0);
    gguf_close(g);

    struct model_params p = {.n_threads = 1, .max_isa = CPU_ISA_COUNT};
    struct model *m = NULL;
    err[0] = 0;
    int rc = model_load(path, &p, &m, err, sizeof err);
    unlink(path);
    model_free(m);
    if (rc != e->want)
        fail_msg("case %s: got %d (%s), want %d", e->name, rc, err, e->want);
    if (!strstr(err, e->mentions))
        fail_msg("case %s: message '%s' does not mention '%s'", e->name, err, e->mentions);
}

static void test_malformed_models_get_one_clear_error(void **state)
{
    (void)state;
    static const struct edit cases[] = {
        {.name = "missing tensor", .drop_tensor = "blk.1.ffn_down.weight", .want = EBADMSG,
         .mentions = "missing tensor 'blk.1.ffn_down.weight'"},
        {.name = "missing bias", .drop_tensor = "blk.0.attn_k.bias", .want = EBADMSG,
         .mentions = "blk.0.attn_k.bias"},
        {.name = "shape disagrees", .tensor = "blk.0.attn_q.weight", .ne1 = 128, .want = EBADMSG,
         .mentions = "blk.0.attn_q.weight' has shape [256, 128], expected [256, 256]"},
        {.name = "wrong type for a known key", .str_key = "qwen2.block_count", .want = EBADMSG,
         .mentions = "qwen2.block_count"},
        {.name = "missing hyperparameter", .drop_key = "qwen2.embedding_length", .want = EBADMSG,
         .mentions = "qwen2.embedding_length"},
        {.name = "missing architecture", .drop_key = "general.architecture", .want = EBADMSG,
         .mentions = "general.architecture"},
        {.name = "heads do not divide", .u32_key = "qwen2.attention.head_count_kv", .u32_val = 3,
         .want = EBADMSG, .mentions = "heads"},
        {.name = "layer count out of range", .u32_key = "qwen2.block_count", .u32_val = 0,
         .want = EBADMSG, .mentions = "qwen2.block_count"},
        {.name = "more layers than tensors", .u32_key = "qwen2.block_count", .u32_val = 3,
         .want = EBADMSG, .mentions = "missing tensor 'blk.2."},
        {.name = "unsupported weight type", .tensor = "blk.0.ffn_up.weight", .type = 20 /* IQ4_NL */,
         .want = ENOTSUP, .mentions = "blk.0.ffn_up.weight"},
        {.name = "vocabulary and output disagree", .tensor = "output.weight", .ne1 = 400,
         .want = EBADMSG, .mentions = "output.weight"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_edit(&cases[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tq_f32_matches_llama_cpp),
        cmocka_unit_test(test_tq_f16_matches_llama_cpp),
        cmocka_unit_test(test_tq_bf16_matches_llama_cpp),
        cmocka_unit_test(test_tq_q8_0_matches_llama_cpp),
        cmocka_unit_test(test_tq_q4_0_matches_llama_cpp),
        cmocka_unit_test(test_tq_q4_1_matches_llama_cpp),
        cmocka_unit_test(test_tq_q5_0_matches_llama_cpp),
        cmocka_unit_test(test_tq_q5_1_matches_llama_cpp),
        cmocka_unit_test(test_tq_q2_k_matches_llama_cpp),
        cmocka_unit_test(test_tq_q3_k_m_matches_llama_cpp),
        cmocka_unit_test(test_tq_q4_k_m_matches_llama_cpp),
        cmocka_unit_test(test_tq_q5_k_m_matches_llama_cpp),
        cmocka_unit_test(test_tq_q6_k_matches_llama_cpp),
        cmocka_unit_test(test_tl_f32_matches_llama_cpp),
        cmocka_unit_test(test_tl_f16_matches_llama_cpp),
        cmocka_unit_test(test_tl_q8_0_matches_llama_cpp),
        cmocka_unit_test(test_tl_q4_k_m_matches_llama_cpp),
        cmocka_unit_test(test_portable_and_avx2_kernels_match_llama_cpp_too),
        cmocka_unit_test(test_prefix_reuse_gives_the_same_logits),
        cmocka_unit_test(test_context_overflow_is_an_error_not_a_crash),
        cmocka_unit_test(test_deepseek2_loads_and_a_missing_file_is_enoent),
        cmocka_unit_test(test_malformed_models_get_one_clear_error),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
