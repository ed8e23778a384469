/* The deepseek2 architecture on the CPU: the backend operations it adds
 * (write, copy_cols, matmul_heads, moe, rope dim_off, a KV cache whose values
 * are its keys) against naive references, conformance of td-f32, td-q8_0 and
 * td-lite-f32 with llama.cpp (testdata README 2.3, 3.7), the latent KV cache,
 * and malformed deepseek2 files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infer/cpu/backend_cpu.h"
#include "infer/gguf.h"
#include "infer/model.h"
#include "infer/model_impl.h"
#include "infer/plan.h"   /* the backend of a loaded model (white box) */
#include "infer/quant.h"
#include "infer/rope.h"
#include "tests/fixture.h"
#include "tests/fx_gguf.h"
#include "tests/fx_model.h"

/* ---- helpers ---- */

static uint32_t rng_state = 12345;   /* fx_frand()'s sequence for this file */

static struct backend *cpu(void)
{
    struct backend *b = NULL;
    char err[256];
    assert_int_equal(cpu_backend_create(3, CPU_ISA_COUNT, &b, err, sizeof err), 0);
    return b;
}

static struct btensor *tensor(struct backend *b, int64_t ne0, int64_t ne1)
{
    struct btensor *t = b->ops->alloc(b, ne0, ne1);
    assert_non_null(t);
    fx_fill(t->data, (size_t)(ne0 * ne1), &rng_state);
    return t;
}

/* A weight of the given type holding n_exp * n_out rows of n_in random
 * values, and their dequantized floats (what a naive reference multiplies). */
struct test_weight {
    struct weight w;
    void *data;
    float *f;
};

static void make_weight(struct test_weight *tw, enum quant_type type, int64_t n_in, int64_t n_out,
                        int64_t n_exp)
{
    int64_t rows = n_out * (n_exp ? n_exp : 1);
    const struct quant_traits *tr = quant_traits(type);
    assert_non_null(tr);
    size_t rb = quant_row_bytes(type, n_in);
    assert_true(rb > 0);
    tw->data = malloc(rb * (size_t)rows);
    tw->f = malloc((size_t)(n_in * rows) * sizeof(float));
    float *tmp = malloc((size_t)n_in * sizeof(float));
    assert_true(tw->data && tw->f && tmp);
    for (int64_t r = 0; r < rows; r++) {
        fx_fill(tmp, (size_t)n_in, &rng_state);
        unsigned char *dst = (unsigned char *)tw->data + (size_t)r * rb;
        if (type == QUANT_TYPE_F32)
            memcpy(dst, tmp, (size_t)n_in * sizeof(float));
        else
            tr->quantize(tmp, dst, n_in);
        if (type == QUANT_TYPE_F32)
            memcpy(tw->f + r * n_in, tmp, (size_t)n_in * sizeof(float));
        else
            tr->dequantize(dst, tw->f + r * n_in, n_in);
    }
    free(tmp);
    tw->w = (struct weight){.type = type, .n_in = n_in, .n_out = n_out, .data = tw->data,
                            .row_bytes = rb, .n_exp = n_exp,
                            .exp_bytes = n_exp ? rb * (size_t)n_out : 0};
}

static void free_weight(struct test_weight *tw)
{
    free(tw->data);
    free(tw->f);
}

static double dotd(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* Tolerance of a product of n terms of size ~1 for a weight type: the
 * activations are rounded to the type's vec_dot_type. */
static double type_tol(enum quant_type t, int64_t n)
{
    double unit = t == QUANT_TYPE_F32 ? 1e-5 : t == QUANT_TYPE_F16 ? 2e-3 : 2e-2;
    return unit * sqrt((double)n) + 1e-5;
}

/* ---- operations ---- */

static void test_write_then_read_gives_the_same_rows(void **state)
{
    (void)state;
    struct backend *b = cpu();
    struct btensor *t = tensor(b, 7, 5);
    float in[14], out[14];
    fx_fill(in, 14, &rng_state);
    assert_int_equal(b->ops->write(b, t, 2, 2, in), 0);
    assert_int_equal(b->ops->read(b, t, 2, 2, out), 0);
    assert_memory_equal(in, out, sizeof in);
    assert_int_not_equal(b->ops->write(b, t, 4, 2, in), 0);
    b->ops->free(b);
}

static void test_copy_cols_moves_strided_groups(void **state)
{
    (void)state;
    struct backend *b = cpu();
    int64_t n = 3;
    struct btensor *src = tensor(b, 5 * 7, n), *dst = tensor(b, 4 * 9 + 2, n);
    float *before = malloc((size_t)(dst->ne0 * n) * sizeof(float));
    memcpy(before, dst->data, (size_t)(dst->ne0 * n) * sizeof(float));
    assert_int_equal(b->ops->copy_cols(b, dst, 2, 9, src, 3, 7, 4, 4), 0);
    for (int64_t t = 0; t < n; t++)
        for (int64_t c = 0; c < dst->ne0; c++) {
            int64_t g = (c - 2) / 9, i = (c - 2) % 9;
            float want = before[t * dst->ne0 + c];
            if (c >= 2 && g < 4 && i < 4)
                want = src->data[t * src->ne0 + 3 + g * 7 + i];
            assert_true(dst->data[t * dst->ne0 + c] == want);
        }
    /* out of range */
    assert_int_not_equal(b->ops->copy_cols(b, dst, 2, 9, src, 4, 7, 4, 5), 0);
    free(before);
    b->ops->free(b);
}

static void check_matmul_heads(enum quant_type type, int64_t n_in, int r, int n_head, int n_tok)
{
    struct backend *b = cpu();
    struct test_weight tw;
    make_weight(&tw, type, n_in, (int64_t)r * n_head, 0);
    int64_t ss = n_in + 3, ds = r + 5;
    struct btensor *src = tensor(b, ss * n_head, n_tok), *dst = tensor(b, ds * n_head, n_tok);
    assert_int_equal(b->ops->matmul_heads(b, dst, ds, &tw.w, n_head, src, ss), 0);
    for (int t = 0; t < n_tok; t++)
        for (int j = 0; j < n_head; j++)
            for (int o = 0; o < r; o++) {
                double want = dotd(tw.f + ((int64_t)j * r + o) * n_in,
                                   src->data + t * src->ne0 + j * ss, n_in);
                double got = dst->data[t * dst->ne0 + j * ds + o];
                if (fabs(got - want) > type_tol(type, n_in))
                    fail_msg("%s head %d row %d token %d: %g, want %g", quant_type_name(type), j,
                             o, t, got, want);
            }
    free_weight(&tw);
    b->ops->free(b);
}

static void test_matmul_heads_matches_a_naive_product(void **state)
{
    (void)state;
    check_matmul_heads(QUANT_TYPE_F32, 13, 5, 3, 4);
    check_matmul_heads(QUANT_TYPE_F16, 29, 7, 4, 1);
    check_matmul_heads(QUANT_TYPE_Q8_0, 64, 3, 5, 3);
    check_matmul_heads(QUANT_TYPE_Q4_K, 256, 2, 3, 2);
}

static void check_moe(enum quant_type type, int64_t n_embd, int64_t ff, int n_exp, int n_used,
                      int n_tok)
{
    struct backend *b = cpu();
    struct test_weight g, u, dn;
    make_weight(&g, type, n_embd, ff, n_exp);
    make_weight(&u, type, n_embd, ff, n_exp);
    make_weight(&dn, type, ff, n_embd, n_exp);
    struct btensor *src = tensor(b, n_embd, n_tok), *dst = tensor(b, n_embd, n_tok);
    size_t pairs = (size_t)n_tok * (size_t)n_used;
    int32_t *ex = malloc(pairs * sizeof *ex);
    float *w = malloc(pairs * sizeof *w), *want = malloc((size_t)(n_embd * n_tok) * sizeof(float));
    float *hg = malloc((size_t)ff * sizeof(float));
    for (int t = 0; t < n_tok; t++)
        for (int k = 0; k < n_used; k++) {
            int e;
            bool dup;
            do {   /* distinct experts per token, skewed towards the low ids */
                e = (int)((fx_frand(&rng_state) + 1.0f) * (fx_frand(&rng_state) + 1.0f) * 0.25f *
                          (float)n_exp) % n_exp;
                dup = false;
                for (int k2 = 0; k2 < k; k2++)
                    dup |= ex[t * n_used + k2] == e;
            } while (dup);
            ex[t * n_used + k] = e;
            w[t * n_used + k] = fx_frand(&rng_state);
        }
    memcpy(want, dst->data, (size_t)(n_embd * n_tok) * sizeof(float));
    for (int t = 0; t < n_tok; t++)
        for (int k = 0; k < n_used; k++) {
            int e = ex[t * n_used + k];
            const float *x = src->data + t * n_embd;
            for (int64_t i = 0; i < ff; i++) {
                double a = dotd(g.f + ((int64_t)e * ff + i) * n_embd, x, n_embd);
                double c = dotd(u.f + ((int64_t)e * ff + i) * n_embd, x, n_embd);
                hg[i] = (float)(a / (1 + exp(-a)) * c);
            }
            for (int64_t o = 0; o < n_embd; o++)
                want[t * n_embd + o] +=
                    w[t * n_used + k] * (float)dotd(dn.f + ((int64_t)e * n_embd + o) * ff, hg, ff);
        }
    assert_int_equal(b->ops->moe(b, dst, &g.w, &u.w, &dn.w, src, ex, w, n_used), 0);
    double tol = type_tol(type, n_embd) * sqrt((double)ff) * n_used;
    for (int64_t i = 0; i < n_embd * n_tok; i++)
        if (fabs(dst->data[i] - want[i]) > tol)
            fail_msg("%s moe element %lld: %g, want %g", quant_type_name(type), (long long)i,
                     dst->data[i], want[i]);
    /* an expert id out of range is refused */
    ex[0] = n_exp;
    assert_int_not_equal(b->ops->moe(b, dst, &g.w, &u.w, &dn.w, src, ex, w, n_used), 0);
    free(ex);
    free(w);
    free(want);
    free(hg);
    free_weight(&g);
    free_weight(&u);
    free_weight(&dn);
    b->ops->free(b);
}

static void test_moe_matches_a_naive_mixture(void **state)
{
    (void)state;
    check_moe(QUANT_TYPE_F32, 19, 11, 5, 2, 7);
    check_moe(QUANT_TYPE_F32, 8, 3, 4, 3, 1);
    check_moe(QUANT_TYPE_Q8_0, 64, 32, 6, 2, 9);
    check_moe(QUANT_TYPE_Q4_K, 256, 256, 4, 2, 3);
}

/* A weight in memory no one may read: moe must read only chosen experts. */
static void test_moe_reads_only_the_chosen_experts(void **state)
{
    (void)state;
    struct backend *b = cpu();
    int64_t n_embd = 32, ff = 32;   /* one expert: 32 * 32 * 4 = 4096 bytes */
    struct test_weight g, u, dn;
    make_weight(&g, QUANT_TYPE_F32, n_embd, ff, 4);
    make_weight(&u, QUANT_TYPE_F32, n_embd, ff, 4);
    make_weight(&dn, QUANT_TYPE_F32, ff, n_embd, 4);
    /* experts 0 and 2 are poisoned with NaN; only 1 and 3 are chosen */
    struct test_weight *all[3] = {&g, &u, &dn};
    for (int i = 0; i < 3; i++)
        for (int e = 0; e < 4; e += 2)
            for (int64_t k = 0; k < n_embd * ff; k++)
                ((float *)all[i]->data)[e * n_embd * ff + k] = NAN;
    struct btensor *src = tensor(b, n_embd, 3), *dst = tensor(b, n_embd, 3);
    int32_t ex[6] = {1, 3, 3, 1, 3, 1};
    float w[6] = {0.5f, 0.25f, 1, 2, 0.1f, 0.2f};
    assert_int_equal(b->ops->moe(b, dst, &g.w, &u.w, &dn.w, src, ex, w, 2), 0);
    for (int64_t i = 0; i < n_embd * 3; i++)
        assert_false(isnan(dst->data[i]));
    free_weight(&g);
    free_weight(&u);
    free_weight(&dn);
    b->ops->free(b);
}

static void test_rope_with_dim_off_rotates_only_the_rope_part(void **state)
{
    (void)state;
    struct backend *b = cpu();
    int head = 12, off = 6, n_rot = 4, n_head = 3, n = 3;
    struct btensor *x = tensor(b, head * n_head, n);
    float *before = malloc((size_t)(head * n_head * n) * sizeof(float));
    memcpy(before, x->data, (size_t)(head * n_head * n) * sizeof(float));
    struct rope_params p = {.mode = ROPE_MODE_NORM, .n_rot = n_rot, .freq_base = 10000,
                            .freq_scale = 1, .attn_factor = 1, .dim_off = off};
    int32_t pos[3] = {5, 6, 7};
    assert_int_equal(b->ops->rope(b, x, head, &p, pos), 0);
    float cs[3 * 2 * 2];
    rope_cos_sin(&p, 5, 3, cs);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < n_head; h++)
            for (int i = 0; i < head; i++) {
                const float *v = before + t * head * n_head + h * head;
                float want = v[i];
                if (i >= off && i < off + n_rot) {
                    int pr = (i - off) / 2;
                    float c = cs[(t * 2 + pr) * 2], s = cs[(t * 2 + pr) * 2 + 1];
                    float a = v[off + 2 * pr], bb = v[off + 2 * pr + 1];
                    want = (i - off) % 2 ? a * s + bb * c : a * c - bb * s;
                }
                assert_close(x->data[t * head * n_head + h * head + i], want, 1e-6);
            }
    p.dim_off = 9;   /* 9 + 4 > 12 */
    assert_int_not_equal(b->ops->rope(b, x, head, &p, pos), 0);
    free(before);
    b->ops->free(b);
}

/* v_in_k: the value of a position is the first v_width entries of its key
 * row; attention over it equals attention with those values stored apart. */
static void check_v_in_k(enum kv_type type)
{
    struct backend *b = cpu(), *ref = cpu();
    int kw = 20, vw = 14, n_head = 3, n_ctx = 16;
    struct kv_shape s = {.n_layer = 2, .n_ctx = n_ctx, .k_width = kw, .v_width = vw, .type = type,
                         .v_in_k = true};
    struct kv_shape rs = s;
    rs.v_in_k = false;
    assert_int_equal(b->ops->kv_init(b, &s), 0);
    assert_int_equal(ref->ops->kv_init(ref, &rs), 0);
    size_t el = type == KV_TYPE_F16 ? 2 : 4;
    assert_int_equal(cpu_backend_kv_bytes(b), 2 * (uint64_t)n_ctx * (uint64_t)kw * el);
    assert_int_equal(cpu_backend_kv_bytes(ref), 2 * (uint64_t)n_ctx * (uint64_t)(kw + vw) * el);
    int chunks[2][2] = {{0, 5}, {5, 1}};
    for (int ci = 0; ci < 2; ci++) {
        int pos0 = chunks[ci][0], n = chunks[ci][1];
        b->ops->reset(b);
        ref->ops->reset(ref);
        struct btensor *k = tensor(b, kw, n), *q = tensor(b, (int64_t)kw * n_head, n);
        struct btensor *rk = ref->ops->alloc(ref, kw, n), *rv = ref->ops->alloc(ref, vw, n);
        struct btensor *rq = ref->ops->alloc(ref, (int64_t)kw * n_head, n);
        memcpy(rk->data, k->data, (size_t)(kw * n) * sizeof(float));
        memcpy(rq->data, q->data, (size_t)(kw * n_head * n) * sizeof(float));
        for (int t = 0; t < n; t++)
            memcpy(rv->data + t * vw, k->data + t * kw, (size_t)vw * sizeof(float));
        assert_int_equal(b->ops->kv_store(b, 1, k, NULL, pos0), 0);
        assert_int_not_equal(b->ops->kv_store(b, 1, k, k, pos0), 0);
        assert_int_equal(ref->ops->kv_store(ref, 1, rk, rv, pos0), 0);
        struct btensor *o = b->ops->alloc(b, (int64_t)vw * n_head, n);
        struct btensor *ro = ref->ops->alloc(ref, (int64_t)vw * n_head, n);
        assert_int_equal(b->ops->attention(b, o, q, 1, n_head, 1, kw, vw, pos0, 0.3f), 0);
        assert_int_equal(ref->ops->attention(ref, ro, rq, 1, n_head, 1, kw, vw, pos0, 0.3f), 0);
        for (int64_t i = 0; i < vw * n_head * n; i++)
            assert_close(o->data[i], ro->data[i], 1e-6);
    }
    b->ops->free(b);
    ref->ops->free(ref);
}

static void test_kv_cache_with_values_in_keys_matches_a_separate_cache(void **state)
{
    (void)state;
    check_v_in_k(KV_TYPE_F32);
    check_v_in_k(KV_TYPE_F16);
}

/* ---- models ---- */

static void check_model(const char *name, enum cpu_isa isa, int n_batch)
{
    char msg[512] = "";
    struct model_params p = {.n_ctx = 2048, .n_threads = 2, .kv_type = KV_TYPE_F32, .max_isa = isa,
                             .n_batch = n_batch};
    if (fx_model_check(name, &p, msg, sizeof msg))
        fail_msg("%s", msg);
}

static void test_td_f32_matches_llama_cpp(void **state)
{
    (void)state;
    check_model("td-f32", CPU_ISA_COUNT, 0);
}

static void test_td_q8_0_matches_llama_cpp(void **state)
{
    (void)state;
    check_model("td-q8_0", CPU_ISA_COUNT, 0);
}

static void test_td_lite_f32_without_yarn_matches_llama_cpp(void **state)
{
    (void)state;
    check_model("td-lite-f32", CPU_ISA_COUNT, 0);
}

static void test_td_f32_with_small_batches_and_portable_kernels_matches_too(void **state)
{
    (void)state;
    check_model("td-f32", CPU_ISA_PORTABLE, 37);
}

/* The cache of a deepseek2 model holds the latent: kv_lora_rank + rope
 * dims per token and layer, in model_info and in the backend's allocation. */
static void test_kv_cache_holds_the_latent(void **state)
{
    (void)state;
    const enum kv_type types[] = {KV_TYPE_F32, KV_TYPE_F16};
    const struct {
        const char *file;
        int n_layer, kv_lora, dr;
    } models[] = {{"models/td-f32.gguf", 3, 64, 16}, {"models/td-lite-f32.gguf", 27, 32, 16}};
    for (size_t mi = 0; mi < 2; mi++)
        for (size_t ti = 0; ti < 2; ti++) {
            char err[512] = "";
            struct model_params p = {.n_ctx = 100, .n_threads = 1, .kv_type = types[ti],
                                     .max_isa = CPU_ISA_COUNT};
            struct model *m = NULL;
            if (model_load(fx_path(models[mi].file), &p, &m, err, sizeof err))
                fail_msg("%s", err);
            uint64_t el = types[ti] == KV_TYPE_F16 ? 2 : 4;
            uint64_t want = (uint64_t)models[mi].n_layer * (uint64_t)(models[mi].kv_lora + models[mi].dr) * el;
            const struct model_info *in = model_info(m);
            assert_int_equal(in->kv_bytes_per_token, want);
            assert_int_equal(in->kv_bytes, want * 100);
            assert_int_equal(cpu_backend_kv_bytes(m->be), want * 100);
            model_free(m);
        }
}

/* Placement on a Vulkan device (lavapipe in CI): the routed experts on the
 * CPU and everything else on the device, and the plain layer split, give
 * the all-CPU logits. */
static void check_placement(const char *name, enum plan_placement placement, int ngl,
                            bool want_experts_cpu, int want_ngl)
{
    char rel[256], err[512] = "";
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    struct model_params p = {.n_ctx = 256, .n_threads = 2, .kv_type = KV_TYPE_F32,
                             .max_isa = CPU_ISA_COUNT};
    struct model *cpu_m = NULL, *gpu_m = NULL;
    if (model_load(fx_path(rel), &p, &cpu_m, err, sizeof err))
        fail_msg("%s", err);
    p.backend = MODEL_BACKEND_VULKAN;
    p.device = -1;
    p.n_gpu_layers = ngl;
    p.placement = placement;
    int rc = model_load(fx_path(rel), &p, &gpu_m, err, sizeof err);
    if (rc == ENODEV) {
        model_free(cpu_m);
        printf("  no Vulkan device: %s\n", err);
        skip();
    }
    if (rc)
        fail_msg("%s: %s", name, err);
    const struct model_info *in = model_info(gpu_m);
    printf("  %s placement %d: %d layers on %s, experts on cpu %d, output on gpu %d\n", name,
           placement, in->n_gpu_layers, in->device, in->experts_on_cpu, in->output_on_gpu);
    assert_int_equal(in->experts_on_cpu, want_experts_cpu);
    assert_int_equal(in->n_gpu_layers, want_ngl);
    int n_vocab = in->n_vocab;
    float *a = malloc((size_t)n_vocab * 2 * sizeof(float)), *b = a + n_vocab;
    int32_t ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = (i * 37 + 11) % n_vocab;
    double worst = 0;
    for (int step = 0; step < 3; step++) {   /* a prompt, then two single tokens */
        int n = step ? 1 : 37;
        const int32_t *t = step ? ids + 36 + step : ids;
        if (model_decode(cpu_m, t, n, a, false, err, sizeof err) ||
            model_decode(gpu_m, t, n, b, false, err, sizeof err))
            fail_msg("%s", err);
        for (int i = 0; i < n_vocab; i++)
            worst = fmax(worst, fabs(a[i] - b[i]));
    }
    printf("  max |cpu - placed| %.3g\n", worst);
    free(a);
    model_free(cpu_m);
    model_free(gpu_m);
    assert_true(worst < 2e-3);
}

static void test_experts_on_the_cpu_rest_on_the_device_gives_the_cpu_logits(void **state)
{
    (void)state;
    check_placement("td-f32", PLAN_EXPERTS_CPU, -1, true, 3);
}

static void test_a_layer_split_of_deepseek2_gives_the_cpu_logits(void **state)
{
    (void)state;
    check_placement("td-f32", PLAN_LAYERS, 2, false, 2);
}

/* The memory plan of the real R1 shape (61 layers, 3 dense, 256 experts of
 * which 8 are used, kv_lora 512 + 64 rope dims), from the shape alone: the
 * cache holds 576 values per token and layer; a 24 GB device that cannot
 * hold the experts gets everything else, the experts staying in RAM. */
static void test_the_plan_of_the_r1_shape_keeps_the_latent_and_the_experts_in_ram(void **state)
{
    (void)state;
    enum { L = 61 };
    uint64_t layer[L], experts[L];
    /* Q4_K_M-ish byte counts: ~0.2 GB of attention and shared expert per
     * layer, 58 x ~6.4 GB of routed experts */
    for (int i = 0; i < L; i++) {
        layer[i] = i < 3 ? 400000000u : 200000000u;
        experts[i] = i < 3 ? 0 : 6400000000u;
    }
    struct plan_model pm = {.n_layer = L, .layer_bytes = layer, .expert_bytes = experts,
                            .n_expert = 256, .n_expert_used = 8,
                            .kv_bytes_per_token = (512 + 64) * 2, .embd_bytes = 926000000,
                            .embd_row_bytes = 7168 * 2, .output_bytes = 926000000,
                            .scratch_bytes = 500000000};
    struct plan_request rq = {.n_ctx = 4096, .device_budget = 24000000000u, .n_gpu_layers = -1,
                              .placement = PLAN_AUTO};
    struct plan pl;
    assert_int_equal(plan_make(&pm, &rq, &pl), 0);
    printf("  R1 shape: KV cache %.1f KB per token, %.1f MB at 4096 tokens; %s, "
           "%.1f GB on the device, %.1f GB in RAM; a token reads %.2f GB (device) + %.2f GB (RAM)\n",
           (double)L * 576 * 2 / 1e3, (double)pl.kv_bytes / 1e6, pl.where, (double)pl.gpu_bytes / 1e9,
           (double)pl.host_bytes / 1e9, (double)pl.gpu_token_bytes / 1e9,
           (double)pl.host_token_bytes / 1e9);
    assert_int_equal(pl.kv_bytes, (uint64_t)L * 576 * 2 * 4096);
    assert_true(pl.experts_on_cpu);
    assert_int_equal(pl.n_gpu_layers, L);
    /* a plain split when asked for */
    rq.placement = PLAN_LAYERS;
    assert_int_equal(plan_make(&pm, &rq, &pl), 0);
    assert_false(pl.experts_on_cpu);
    assert_true(pl.n_gpu_layers < L);
}

/* ---- malformed files: td-lite-f32 copied with one change ---- */

struct mutation {
    const char *drop_key;           /* leave this key out */
    const char *set_key;            /* write this key as UINT32 set_val */
    uint32_t set_val;
    const char *tensor;             /* give this tensor ne[2] = ne2 */
    int64_t ne2;
    const char *add_key[2];         /* add these UINT32 keys */
    uint32_t add_val[2];
};

static int load_mutated(const struct mutation *mu, struct model **keep, char *err, size_t errlen)
{
    struct gguf *g = NULL;
    assert_int_equal(gguf_open(fx_path("models/td-lite-f32.gguf"), &g, err, errlen), 0);
    struct fx_gguf *w = fx_gguf_new(3);
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const char *key = gguf_kv_key(g, i);
        if (mu->drop_key && !strcmp(key, mu->drop_key))
            continue;
        if (mu->set_key && !strcmp(key, mu->set_key))
            fx_gguf_kv_u32(w, key, mu->set_val);
        else
            assert_int_equal(fx_model_copy_kv(w, key, gguf_kv_value(g, i)), 0);
    }
    for (int k = 0; k < 2; k++)
        if (mu->add_key[k])
            fx_gguf_kv_u32(w, mu->add_key[k], mu->add_val[k]);
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor(g, i);
        int64_t ne[GGUF_MAX_DIMS];
        memcpy(ne, t->ne, sizeof ne);
        if (mu->tensor && !strcmp(t->name, mu->tensor))
            ne[2] = mu->ne2;   /* fewer experts: a prefix of the data */
        assert_int_equal(fx_gguf_tensor(w, t->name, t->type, t->n_dims, ne, t->data), 0);
    }
    char path[] = "/tmp/ponder_ds2_XXXXXX";
    assert_int_equal(fx_model_write_temp(w, path), 0);
    gguf_close(g);
    struct model_params p = {.n_ctx = 64, .n_threads = 1, .kv_type = KV_TYPE_F32,
                             .max_isa = CPU_ISA_COUNT};
    struct model *m = NULL;
    int rc = model_load(path, &p, &m, err, errlen);
    if (keep)
        *keep = m;
    else
        model_free(m);
    unlink(path);
    return rc;
}

static void test_malformed_deepseek2_files_give_one_clear_error(void **state)
{
    (void)state;
    const struct {
        struct mutation mu;
        const char *says;
    } cases[] = {
        {{.drop_key = "deepseek2.attention.kv_lora_rank"},
         "missing key 'deepseek2.attention.kv_lora_rank'"},
        {{.drop_key = "deepseek2.expert_count"}, "missing key 'deepseek2.expert_count'"},
        {{.tensor = "blk.3.ffn_up_exps.weight", .ne2 = 3},
         "tensor 'blk.3.ffn_up_exps.weight' has shape [32, 16, 3], expected [32, 16, 4]"},
        {{.set_key = "deepseek2.expert_used_count", .set_val = 5},
         "'deepseek2.expert_used_count' = 5 is out of range [1, 4]"},
        {{.set_key = "deepseek2.rope.dimension_count", .set_val = 15}, "rope.dimension_count 15"},
        {{.drop_key = NULL, .tensor = NULL}, NULL},   /* the unchanged copy loads */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        int rc = load_mutated(&cases[i].mu, NULL, err, sizeof err);
        if (!cases[i].says) {
            if (rc)
                fail_msg("the unchanged copy: %s", err);
            continue;
        }
        if (rc != EBADMSG || !strstr(err, cases[i].says) || strchr(err, '\n'))
            fail_msg("case %zu: rc %d, '%s' (want EBADMSG and '%s')", i, rc, err, cases[i].says);
    }
}

/* Group-limited routing (expert_group_count / expert_group_used_count, keys
 * the test models lack): keeping every group, or groups of one expert each
 * with as many groups as experts used, routes as without groups; keeping one
 * group of two changes the routing. */
static void test_group_limited_routing_keeps_only_the_best_groups(void **state)
{
    (void)state;
    const struct {
        uint32_t groups, used;
        bool same;
    } cases[] = {{2, 2, true}, {4, 2, true}, {2, 1, false}};
    int32_t ids[24];
    for (int i = 0; i < 24; i++)
        ids[i] = (i * 53 + 7) % 448;
    char err[512] = "";
    struct mutation none = {0};
    struct model *ref = NULL;
    if (load_mutated(&none, &ref, err, sizeof err))
        fail_msg("%s", err);
    int nv = model_info(ref)->n_vocab;
    float *a = malloc((size_t)nv * 24 * sizeof(float)), *b = malloc((size_t)nv * 24 * sizeof(float));
    assert_int_equal(model_decode(ref, ids, 24, a, true, err, sizeof err), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mutation mu = {.add_key = {"deepseek2.expert_group_count",
                                          "deepseek2.expert_group_used_count"},
                              .add_val = {cases[i].groups, cases[i].used}};
        struct model *m = NULL;
        if (load_mutated(&mu, &m, err, sizeof err))
            fail_msg("%u groups: %s", cases[i].groups, err);
        assert_int_equal(model_decode(m, ids, 24, b, true, err, sizeof err), 0);
        double diff = 0;
        for (size_t k = 0; k < (size_t)nv * 24; k++)
            diff = fmax(diff, fabs(a[k] - b[k]));
        model_free(m);
        if (cases[i].same ? diff > 1e-5 : diff < 1e-3)
            fail_msg("%u groups, %u kept: logits differ by %g", cases[i].groups, cases[i].used,
                     diff);
    }
    free(a);
    free(b);
    model_free(ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_then_read_gives_the_same_rows),
        cmocka_unit_test(test_copy_cols_moves_strided_groups),
        cmocka_unit_test(test_matmul_heads_matches_a_naive_product),
        cmocka_unit_test(test_moe_matches_a_naive_mixture),
        cmocka_unit_test(test_moe_reads_only_the_chosen_experts),
        cmocka_unit_test(test_rope_with_dim_off_rotates_only_the_rope_part),
        cmocka_unit_test(test_kv_cache_with_values_in_keys_matches_a_separate_cache),
        cmocka_unit_test(test_td_f32_matches_llama_cpp),
        cmocka_unit_test(test_td_q8_0_matches_llama_cpp),
        cmocka_unit_test(test_td_lite_f32_without_yarn_matches_llama_cpp),
        cmocka_unit_test(test_td_f32_with_small_batches_and_portable_kernels_matches_too),
        cmocka_unit_test(test_kv_cache_holds_the_latent),
        cmocka_unit_test(test_the_plan_of_the_r1_shape_keeps_the_latent_and_the_experts_in_ram),
        cmocka_unit_test(test_experts_on_the_cpu_rest_on_the_device_gives_the_cpu_logits),
        cmocka_unit_test(test_a_layer_split_of_deepseek2_gives_the_cpu_logits),
        cmocka_unit_test(test_malformed_deepseek2_files_give_one_clear_error),
        cmocka_unit_test(test_group_limited_routing_keeps_only_the_best_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
