/* The Vulkan backend on whatever device the loader finds (lavapipe in CI):
 * each operation against an exact host reference or the CPU backend, every
 * weight type, odd sizes; whole-model conformance against llama.cpp's
 * logits; the CPU/GPU layer split; zero validation messages.  Every test
 * skips with a message when there is no Vulkan device. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "infer/cpu/backend_cpu.h"
#include "infer/engine.h"
#include "infer/gguf.h"
#include "infer/model.h"
#include "infer/quant.h"
#include "infer/vulkan/vk.h"
#include "tests/fx_conformance.h"
#include "tests/fixture.h"

static bool have_device(void)
{
    struct vk_device_desc d[8];
    int n = 0;
    char err[256];
    if (vk_list_devices(d, 8, &n, err, sizeof err) || n == 0) {
        printf("  skipped: no Vulkan device (%s)\n", err);
        return false;
    }
    return true;
}

#define NEED_DEVICE()            \
    do {                         \
        if (!have_device()) {    \
            skip();              \
            return;              \
        }                        \
    } while (0)

/* The float paths: the tests that compare with an exact dot at 1e-5 turn
 * the integer dot-product path off (it rounds the activations to int8;
 * test_int_dot_matmul_* cover it). */
static struct backend *open_vk_with(bool no_shuffle)
{
    struct vk_options o = {.device = -1, .validation = true, .no_shuffle = no_shuffle,
                           .no_int_dot = true};
    struct backend *b = NULL;
    char err[256];
    int rc = vk_backend_create(&o, &b, err, sizeof err);
    if (rc)
        fail_msg("vk_backend_create: %s", err);
    return b;
}

static struct backend *open_vk(void) { return open_vk_with(false); }

static void close_vk(struct backend *b)
{
    static bool told;
    if (!told) {
        printf("  validation layer: %s\n", vk_backend_validating(b) ? "on" : "not installed");
        told = true;
    }
    char msg[512];
    unsigned n = vk_backend_validation_messages(b, msg, sizeof msg);
    b->ops->free(b);
    if (n)
        fail_msg("%u validation messages, the first: %s", n, msg);
}

/* Deterministic values in [-1, 1). */
static float rnd(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void fill(float *v, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        v[i] = rnd(&seed);
}

static double norm_err(const float *got, const double *want, size_t n)
{
    double e = 0, w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = got[i] - want[i];
        e += d * d;
        w += want[i] * want[i];
        if (got[i] != got[i])
            return INFINITY;
    }
    return sqrt(e / (w > 0 ? w : 1));
}

/* Upload host floats into a fresh device tensor through the CPU-side path
 * the backend has: get_rows of an F32 weight whose rows are the values. */
static struct btensor *put(struct backend *b, const float *v, int64_t ne0, int64_t ne1)
{
    struct weight w = {.type = QUANT_TYPE_F32, .n_in = ne0, .n_out = ne1, .data = v,
                       .row_bytes = (size_t)ne0 * 4};
    struct btensor *t = b->ops->alloc(b, ne0, ne1);
    assert_non_null(t);
    int32_t *ids = malloc((size_t)ne1 * sizeof *ids);
    for (int64_t i = 0; i < ne1; i++)
        ids[i] = (int32_t)i;
    int rc = b->ops->get_rows(b, t, &w, ids, ne1);
    free(ids);
    if (rc)
        fail_msg("get_rows: %s", b->ops->error(b));
    return t;
}

static float *get(struct backend *b, const struct btensor *t)
{
    float *out = malloc((size_t)(t->ne0 * t->ne1) * sizeof(float));
    if (b->ops->read(b, t, 0, t->ne1, out))
        fail_msg("read: %s", b->ops->error(b));
    return out;
}

/* ---- matmul, every weight type ---- */

struct mm_case {
    enum quant_type type;
    double tol;         /* normalised error vs an exact dot of the dequantized weights */
    double floor;       /* an error at least this large (the int8 path was taken), 0: any */
    bool rounded;       /* compare with the reference's dot instead (infer/quant.c): x
                           rounded to the weight type's activation format first */
};

static const struct mm_case mm_cases[] = {
    /* native layouts: only the summation order differs */
    {QUANT_TYPE_F32, 1e-5, 0, false},  {QUANT_TYPE_F16, 1e-5, 0, false},
    {QUANT_TYPE_BF16, 1e-5, 0, false}, {QUANT_TYPE_Q8_0, 1e-5, 0, false},
    {QUANT_TYPE_Q4_0, 1e-5, 0, false}, {QUANT_TYPE_Q4_1, 1e-5, 0, false},
    {QUANT_TYPE_Q4_K, 1e-5, 0, false}, {QUANT_TYPE_Q6_K, 1e-5, 0, false},
    /* dequantized to F16 at upload: one F16 rounding per weight */
    {QUANT_TYPE_Q5_0, 1e-3, 0, false}, {QUANT_TYPE_Q5_1, 1e-3, 0, false},
    {QUANT_TYPE_Q2_K, 1e-3, 0, false}, {QUANT_TYPE_Q3_K, 1e-3, 0, false},
    {QUANT_TYPE_Q5_K, 1e-3, 0, false},
};

static void check_matmul(struct backend *b, const struct mm_case *c, int64_t n_in, int64_t n_out,
                         int64_t n_tok, bool with_bias)
{
    const struct quant_traits *tr = quant_traits(c->type);
    assert_non_null(tr);
    if (!tr->quantize || n_in % tr->block_size)
        return;
    uint32_t s = 12345u + (uint32_t)(n_in * 7 + n_out * 3 + n_tok);
    size_t rb = quant_row_bytes(c->type, n_in);
    float *wf = malloc((size_t)(n_in * n_out) * sizeof(float));
    float *deq = malloc((size_t)n_in * sizeof(float));
    unsigned char *wq = malloc(rb * (size_t)n_out);
    float *x = malloc((size_t)(n_in * n_tok) * sizeof(float));
    float *bias = malloc((size_t)n_out * sizeof(float));
    double *want = malloc((size_t)(n_out * n_tok) * sizeof(double));
    for (int64_t i = 0; i < n_in * n_out; i++)
        wf[i] = rnd(&s);
    for (int64_t i = 0; i < n_in * n_tok; i++)
        x[i] = rnd(&s);
    for (int64_t i = 0; i < n_out; i++)
        bias[i] = rnd(&s);
    for (int64_t r = 0; r < n_out; r++)
        tr->quantize(wf + r * n_in, wq + (size_t)r * rb, n_in);
    const struct quant_traits *at = quant_traits(tr->vec_dot_type);
    unsigned char *xq = malloc(quant_row_bytes(tr->vec_dot_type, n_in) + 4);
    for (int64_t r = 0; r < n_out; r++) {
        tr->dequantize(wq + (size_t)r * rb, deq, n_in);
        for (int64_t t = 0; t < n_tok; t++) {
            double a = with_bias ? bias[r] : 0;
            if (c->rounded) {
                at->quantize(x + t * n_in, xq, n_in);
                a += tr->dot(n_in, wq + (size_t)r * rb, xq);
            } else {
                for (int64_t i = 0; i < n_in; i++)
                    a += (double)deq[i] * x[t * n_in + i];
            }
            want[t * n_out + r] = a;
        }
    }
    free(xq);
    struct weight w = {.type = c->type, .n_in = n_in, .n_out = n_out, .data = wq, .row_bytes = rb};
    struct weight bw = {.type = QUANT_TYPE_F32, .n_in = n_out, .n_out = 1, .data = bias,
                        .row_bytes = (size_t)n_out * 4};
    static const struct gguf_tensor present;    /* bias->t set: the bias exists */
    bw.t = with_bias ? &present : NULL;
    b->ops->reset(b);
    struct btensor *xt = put(b, x, n_in, n_tok);
    struct btensor *dt = b->ops->alloc(b, n_out, n_tok);
    assert_non_null(dt);
    if (b->ops->matmul(b, dt, &w, &bw, xt))
        fail_msg("matmul %s: %s", tr->name, b->ops->error(b));
    float *got = get(b, dt);
    vk_backend_drop_weights(b);     /* wq and bias are freed below */
    double e = norm_err(got, want, (size_t)(n_out * n_tok));
    if (!(e <= c->tol) || e < c->floor)
        fail_msg("matmul %s %lldx%lld, %lld tokens%s: normalised error %g not in [%g, %g]",
                 tr->name, (long long)n_out, (long long)n_in, (long long)n_tok,
                 with_bias ? ", bias" : "", e, c->floor, c->tol);
    free(got);
    free(wf);
    free(deq);
    free(wq);
    free(x);
    free(bias);
    free(want);
}

static void test_matmul_matches_an_exact_dot_for_every_type(void **state)
{
    (void)state;
    NEED_DEVICE();
    static const int64_t shapes[][3] = {
        /* n_in, n_out, n_tok: rows on both sides of the 64-row workgroup,
         * token counts on both sides of the 8-token tile */
        {256, 1, 1}, {256, 63, 1}, {256, 65, 2}, {512, 33, 3}, {256, 64, 8},
        {256, 31, 9}, {768, 17, 17}, {32, 5, 4},
    };
    for (int plain = 0; plain < 2; plain++) {   /* with and without subgroup shuffles */
        struct backend *b = open_vk_with(plain);
        for (size_t c = 0; c < sizeof mm_cases / sizeof mm_cases[0]; c++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                check_matmul(b, &mm_cases[c], shapes[s][0], shapes[s][1], shapes[s][2], s % 2 == 1);
        close_vk(b);
    }
}

/* ---- the other operations, against the CPU backend ---- */

struct pair {
    struct backend *vk, *cpu;
};

static void cmp_tensors(struct pair *p, const struct btensor *a, const struct btensor *c,
                        double tol, const char *what)
{
    float *ga = get(p->vk, a), *gc = get(p->cpu, c);
    size_t n = (size_t)(a->ne0 * a->ne1);
    double *want = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        want[i] = gc[i];
    double e = norm_err(ga, want, n);
    if (!(e <= tol))
        fail_msg("%s: normalised error %g > %g", what, e, tol);
    free(ga);
    free(gc);
    free(want);
}

static struct pair open_pair(void)
{
    struct pair p = {open_vk(), NULL};
    char err[256];
    if (cpu_backend_create(1, CPU_ISA_PORTABLE, &p.cpu, err, sizeof err))
        fail_msg("cpu backend: %s", err);
    return p;
}

static void close_pair(struct pair *p)
{
    p->cpu->ops->free(p->cpu);
    close_vk(p->vk);
}

static void test_norm_rope_swiglu_add_match_the_cpu(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct pair p = open_pair();
    static const int64_t shapes[][2] = {{128, 1}, {256, 3}, {64, 9}, {1536, 2}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int64_t ne0 = shapes[si][0], ne1 = shapes[si][1];
        uint32_t s = 99u + (uint32_t)si;
        float *x = malloc((size_t)(ne0 * ne1) * sizeof(float));
        float *y = malloc((size_t)(ne0 * ne1) * sizeof(float));
        float *g = malloc((size_t)ne0 * sizeof(float));
        for (int64_t i = 0; i < ne0 * ne1; i++) {
            x[i] = rnd(&s) * 3;
            y[i] = rnd(&s) * 3;
        }
        for (int64_t i = 0; i < ne0; i++)
            g[i] = rnd(&s);
        struct weight gw = {.type = QUANT_TYPE_F32, .n_in = ne0, .n_out = 1, .data = g,
                            .row_bytes = (size_t)ne0 * 4};
        struct backend *bs[2] = {p.vk, p.cpu};
        struct btensor *xs[2], *ys[2], *ds[2];
        for (int k = 0; k < 2; k++) {
            bs[k]->ops->reset(bs[k]);
            xs[k] = put(bs[k], x, ne0, ne1);
            ys[k] = put(bs[k], y, ne0, ne1);
            ds[k] = bs[k]->ops->alloc(bs[k], ne0, ne1);
            assert_int_equal(bs[k]->ops->rms_norm(bs[k], ds[k], xs[k], &gw, 1e-6f), 0);
        }
        cmp_tensors(&p, ds[0], ds[1], 1e-6, "rms_norm");
        for (int k = 0; k < 2; k++)
            assert_int_equal(bs[k]->ops->swiglu(bs[k], ds[k], xs[k], ys[k]), 0);
        cmp_tensors(&p, ds[0], ds[1], 1e-6, "swiglu");
        for (int k = 0; k < 2; k++)
            assert_int_equal(bs[k]->ops->add(bs[k], ds[k], ys[k]), 0);
        cmp_tensors(&p, ds[0], ds[1], 1e-6, "add");
        /* rope, both modes, with frequency factors and YaRN on the last shape */
        float ff[32];
        for (int i = 0; i < 32; i++)
            ff[i] = 1.0f + (float)i / 8;
        for (int mode = 0; mode < 2; mode++) {
            struct rope_params rp = {.mode = mode ? ROPE_MODE_NEOX : ROPE_MODE_NORM,
                                     .n_rot = 64, .freq_base = 10000, .freq_scale = 1,
                                     .attn_factor = 1};
            if (si == 3) {
                rp.freq_factors = ff;
                rp.ext_factor = 1;
                rp.freq_scale = 0.25f;
                rp.beta_fast = 32;
                rp.beta_slow = 1;
                rp.n_ctx_orig = 4096;
            }
            int32_t pos[16];
            for (int i = 0; i < 16; i++)
                pos[i] = 5 + i;
            for (int k = 0; k < 2; k++)
                assert_int_equal(bs[k]->ops->rope(bs[k], xs[k], 64, &rp, pos), 0);
            cmp_tensors(&p, xs[0], xs[1], 1e-6, mode ? "rope neox" : "rope norm");
        }
        vk_backend_drop_weights(p.vk);
        free(x);
        free(y);
        free(g);
    }
    close_pair(&p);
}

static void check_attention(struct pair *p, enum kv_type type, int n_head, int n_head_kv,
                            int head_dim, int n_prompt, int n_more)
{
    struct kv_shape ks = {.n_layer = 2, .n_ctx = 64, .k_width = (int64_t)n_head_kv * head_dim,
                          .v_width = (int64_t)n_head_kv * head_dim, .type = type};
    struct backend *bs[2] = {p->vk, p->cpu};
    for (int k = 0; k < 2; k++)
        assert_int_equal(bs[k]->ops->kv_init(bs[k], &ks), 0);
    uint32_t s = 7u + (uint32_t)(n_head * 31 + head_dim);
    int pos0 = 0;
    for (int step = 0; step <= n_more; step++) {
        int n = step == 0 ? n_prompt : 1;
        int64_t qw = (int64_t)n_head * head_dim;
        float *q = malloc((size_t)(qw * n) * sizeof(float));
        float *kv = malloc((size_t)(ks.k_width * n) * sizeof(float));
        float *vv = malloc((size_t)(ks.v_width * n) * sizeof(float));
        for (int64_t i = 0; i < qw * n; i++)
            q[i] = rnd(&s) * 2;
        for (int64_t i = 0; i < ks.k_width * n; i++) {
            kv[i] = rnd(&s) * 2;
            vv[i] = rnd(&s);
        }
        struct btensor *d[2];
        for (int k = 0; k < 2; k++) {
            bs[k]->ops->reset(bs[k]);
            struct btensor *qt = put(bs[k], q, qw, n), *kt = put(bs[k], kv, ks.k_width, n),
                           *vt = put(bs[k], vv, ks.v_width, n);
            d[k] = bs[k]->ops->alloc(bs[k], qw, n);
            assert_int_equal(bs[k]->ops->kv_store(bs[k], 1, kt, vt, pos0), 0);
            if (bs[k]->ops->attention(bs[k], d[k], qt, 1, n_head, n_head_kv, head_dim, head_dim, pos0,
                                      1.0f / sqrtf((float)head_dim)))
                fail_msg("attention: %s", bs[k]->ops->error(bs[k]));
        }
        char what[96];
        snprintf(what, sizeof what, "attention %s %d/%d heads of %d, step %d",
                 type == KV_TYPE_F16 ? "f16" : "f32", n_head, n_head_kv, head_dim, step);
        cmp_tensors(p, d[0], d[1], 1e-5, what);
        pos0 += n;
        free(q);
        free(kv);
        free(vv);
    }
}

static void test_attention_matches_the_cpu(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct pair p = open_pair();
    check_attention(&p, KV_TYPE_F32, 4, 2, 64, 7, 3);
    check_attention(&p, KV_TYPE_F16, 4, 2, 64, 9, 2);
    check_attention(&p, KV_TYPE_F32, 3, 1, 32, 1, 4);
    check_attention(&p, KV_TYPE_F16, 6, 6, 128, 40, 1);
    close_pair(&p);
}

/* A long context: n_long cached positions, then queries of 1 and 3 rows
 * (few workgroups: the backend splits the positions over several). */
static void check_attention_long(struct pair *p, enum kv_type type, int n_long)
{
    enum { NH = 4, NKV = 2, HD = 64 };
    struct kv_shape ks = {.n_layer = 1, .n_ctx = 4096, .k_width = NKV * HD, .v_width = NKV * HD,
                          .type = type};
    struct backend *bs[2] = {p->vk, p->cpu};
    for (int k = 0; k < 2; k++)
        assert_int_equal(bs[k]->ops->kv_init(bs[k], &ks), 0);
    float *kv = malloc((size_t)n_long * NKV * HD * sizeof(float));
    float *vv = malloc((size_t)n_long * NKV * HD * sizeof(float));
    fill(kv, (size_t)n_long * NKV * HD, 41);
    fill(vv, (size_t)n_long * NKV * HD, 42);
    for (int k = 0; k < 2; k++) {
        bs[k]->ops->reset(bs[k]);
        struct btensor *kt = put(bs[k], kv, NKV * HD, n_long), *vt = put(bs[k], vv, NKV * HD, n_long);
        assert_int_equal(bs[k]->ops->kv_store(bs[k], 0, kt, vt, 0), 0);
    }
    int pos0 = n_long;
    for (int step = 0; step < 2; step++) {
        int n = step ? 3 : 1;
        float q[3 * NH * HD], kn[3 * NKV * HD], vn[3 * NKV * HD];
        fill(q, (size_t)n * NH * HD, 50u + (uint32_t)step);
        for (int i = 0; i < n * NH * HD; i++)
            q[i] *= 3;  /* peaked softmax: a few positions matter */
        fill(kn, (size_t)n * NKV * HD, 60u + (uint32_t)step);
        fill(vn, (size_t)n * NKV * HD, 70u + (uint32_t)step);
        struct btensor *d[2];
        for (int k = 0; k < 2; k++) {
            bs[k]->ops->reset(bs[k]);
            struct btensor *qt = put(bs[k], q, NH * HD, n), *kt = put(bs[k], kn, NKV * HD, n),
                           *vt = put(bs[k], vn, NKV * HD, n);
            d[k] = bs[k]->ops->alloc(bs[k], NH * HD, n);
            assert_int_equal(bs[k]->ops->kv_store(bs[k], 0, kt, vt, pos0), 0);
            if (bs[k]->ops->attention(bs[k], d[k], qt, 0, NH, NKV, HD, HD, pos0, 0.125f))
                fail_msg("attention: %s", bs[k]->ops->error(bs[k]));
        }
        char what[96];
        snprintf(what, sizeof what, "attention %s over %d positions, %d rows",
                 type == KV_TYPE_F16 ? "f16" : "f32", pos0 + n, n);
        cmp_tensors(p, d[0], d[1], 1e-5, what);
        pos0 += n;
    }
    free(kv);
    free(vv);
}

static void test_attention_over_a_long_context_matches_the_cpu(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct pair p = open_pair();
    check_attention_long(&p, KV_TYPE_F32, 3000);
    check_attention_long(&p, KV_TYPE_F16, 2049);
    close_pair(&p);
}

static void test_get_rows_of_every_type_matches_the_cpu(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct pair p = open_pair();
    for (size_t c = 0; c < sizeof mm_cases / sizeof mm_cases[0]; c++) {
        const struct quant_traits *tr = quant_traits(mm_cases[c].type);
        if (!tr->quantize)
            continue;
        int64_t n_in = 256, n_out = 9;
        size_t rb = quant_row_bytes(mm_cases[c].type, n_in);
        unsigned char *wq = malloc(rb * (size_t)n_out);
        float *row = malloc((size_t)n_in * sizeof(float));
        uint32_t s = 3;
        for (int64_t r = 0; r < n_out; r++) {
            for (int64_t i = 0; i < n_in; i++)
                row[i] = rnd(&s);
            tr->quantize(row, wq + (size_t)r * rb, n_in);
        }
        struct weight w = {.type = mm_cases[c].type, .n_in = n_in, .n_out = n_out, .data = wq,
                           .row_bytes = rb};
        int32_t ids[4] = {8, 0, 3, 3};
        struct btensor *d[2];
        struct backend *bs[2] = {p.vk, p.cpu};
        for (int k = 0; k < 2; k++) {
            bs[k]->ops->reset(bs[k]);
            d[k] = bs[k]->ops->alloc(bs[k], n_in, 4);
            assert_int_equal(bs[k]->ops->get_rows(bs[k], d[k], &w, ids, 4), 0);
        }
        cmp_tensors(&p, d[0], d[1], 0, tr->name);
        free(wq);
        free(row);
    }
    close_pair(&p);
}

/* ---- deepseek2's operations ---- */

static void test_write_and_copy_cols_move_exact_values(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct backend *b = open_vk();
    enum { NE0 = 37, NE1 = 5, DNE0 = 29 };
    float x[NE0 * NE1], rows[3 * NE0];
    fill(x, NE0 * NE1, 1);
    fill(rows, 3 * NE0, 2);
    b->ops->reset(b);
    struct btensor *t = put(b, x, NE0, NE1);
    assert_int_equal(b->ops->write(b, t, 1, 3, rows), 0);
    memcpy(x + NE0, rows, sizeof rows);
    float *got = get(b, t);
    assert_memory_equal(got, x, sizeof x);
    free(got);
    /* 3 groups of 5 columns from offset 2, stride 11, to offset 1, stride 9 */
    struct btensor *d = b->ops->alloc(b, DNE0, NE1);
    float zero[DNE0 * NE1] = {0};
    assert_int_equal(b->ops->write(b, d, 0, NE1, zero), 0);
    struct vk_stats st0, st1;
    vk_backend_stats(b, &st0);
    assert_int_equal(b->ops->copy_cols(b, d, 1, 9, t, 2, 11, 5, 3), 0);
    vk_backend_stats(b, &st1);
    assert_int_equal(st1.dispatches, st0.dispatches + 1);  /* one pass, recorded, not yet run */
    assert_int_equal(st1.submits, st0.submits);
    float want[DNE0 * NE1] = {0};
    for (int r = 0; r < NE1; r++)
        for (int g = 0; g < 3; g++)
            for (int i = 0; i < 5; i++)
                want[r * DNE0 + 1 + g * 9 + i] = x[r * NE0 + 2 + g * 11 + i];
    got = get(b, d);
    assert_memory_equal(got, want, sizeof want);
    free(got);
    /* out of range is an error, not a write past the row */
    assert_int_equal(b->ops->copy_cols(b, d, 20, 9, t, 2, 11, 5, 3), EINVAL);
    assert_int_equal(b->ops->write(b, t, 4, 2, rows), EINVAL);
    close_vk(b);
}

/* n_out rows of n_in random values quantized to type (the dequantized
 * rows to deq); NULL when the type cannot hold rows of n_in */
static unsigned char *make_weight(enum quant_type type, int64_t n_in, int64_t n_out, uint32_t seed,
                                  float *deq, size_t *row_bytes)
{
    const struct quant_traits *tr = quant_traits(type);
    if (!tr->quantize || n_in % tr->block_size)
        return NULL;
    size_t rb = quant_row_bytes(type, n_in);
    unsigned char *wq = malloc(rb * (size_t)n_out);
    float *row = malloc((size_t)n_in * sizeof(float));
    for (int64_t r = 0; r < n_out; r++) {
        fill(row, (size_t)n_in, seed + (uint32_t)r * 7919u);
        tr->quantize(row, wq + (size_t)r * rb, n_in);
        tr->dequantize(wq + (size_t)r * rb, deq + r * n_in, n_in);
    }
    free(row);
    *row_bytes = rb;
    return wq;
}

/* heads read x at a stride of n_in + pad */
static void check_matmul_heads(struct backend *b, const struct mm_case *c, int64_t n_in, int n_head,
                               int64_t r, int64_t n_tok, int64_t pad)
{
    int64_t n_out = r * n_head, src_stride = n_in + pad, dst_stride = r + 3;
    int64_t sne0 = src_stride * n_head, dne0 = dst_stride * n_head;
    float *deq = malloc((size_t)(n_in * n_out) * sizeof(float));
    size_t rb;
    unsigned char *wq = make_weight(c->type, n_in, n_out, 5u + (uint32_t)n_in, deq, &rb);
    if (!wq) {
        free(deq);
        return;
    }
    float *x = malloc((size_t)(sne0 * n_tok) * sizeof(float));
    fill(x, (size_t)(sne0 * n_tok), 77);
    double *want = calloc((size_t)(dne0 * n_tok), sizeof(double));
    float *zero = calloc((size_t)(dne0 * n_tok), sizeof(float));
    for (int64_t t = 0; t < n_tok; t++)
        for (int j = 0; j < n_head; j++)
            for (int64_t o = 0; o < r; o++) {
                double a = 0;
                for (int64_t i = 0; i < n_in; i++)
                    a += (double)deq[(j * r + o) * n_in + i] * x[t * sne0 + j * src_stride + i];
                want[t * dne0 + j * dst_stride + o] = a;
            }
    struct weight w = {.type = c->type, .n_in = n_in, .n_out = n_out, .data = wq, .row_bytes = rb};
    b->ops->reset(b);
    struct btensor *xt = put(b, x, sne0, n_tok), *dt = b->ops->alloc(b, dne0, n_tok);
    assert_int_equal(b->ops->write(b, dt, 0, n_tok, zero), 0);
    if (b->ops->matmul_heads(b, dt, dst_stride, &w, n_head, xt, src_stride))
        fail_msg("matmul_heads %s: %s", quant_traits(c->type)->name, b->ops->error(b));
    float *got = get(b, dt);
    vk_backend_drop_weights(b);
    double e = norm_err(got, want, (size_t)(dne0 * n_tok));
    if (!(e <= c->tol) || e < c->floor)
        fail_msg("matmul_heads %s, %d heads of %lldx%lld, %lld tokens: normalised error %g not "
                 "in [%g, %g]", quant_traits(c->type)->name, n_head, (long long)r,
                 (long long)n_in, (long long)n_tok, e, c->floor, c->tol);
    free(got);
    free(deq);
    free(wq);
    free(x);
    free(want);
    free(zero);
}

static void test_matmul_heads_matches_per_head_dots_for_every_type(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct backend *b = open_vk();
    for (size_t c = 0; c < sizeof mm_cases / sizeof mm_cases[0]; c++) {
        check_matmul_heads(b, &mm_cases[c], 256, 3, 5, 1, 4);
        check_matmul_heads(b, &mm_cases[c], 64, 4, 33, 9, 4);
    }
    /* F32 rows of 20: a multiple of 4, not of 32 */
    check_matmul_heads(b, &mm_cases[0], 20, 2, 7, 3, 4);
    close_vk(b);
}

/* The expected moe output: dst + sum over k of c * down_e (silu(gate_e x) * up_e x). */
static void moe_reference(const float *g, const float *u, const float *dn, int64_t ne, int64_t ff,
                          int64_t n_tok, const float *x, const int32_t *ex, const float *cw,
                          int n_used, const float *dst0, double *want)
{
    double *h = malloc((size_t)ff * sizeof(double));
    for (int64_t t = 0; t < n_tok; t++) {
        for (int64_t o = 0; o < ne; o++)
            want[t * ne + o] = dst0[t * ne + o];
        for (int k = 0; k < n_used; k++) {
            int64_t e = ex[t * n_used + k];
            for (int64_t f = 0; f < ff; f++) {
                double a = 0, bb = 0;
                for (int64_t i = 0; i < ne; i++) {
                    a += (double)g[(e * ff + f) * ne + i] * x[t * ne + i];
                    bb += (double)u[(e * ff + f) * ne + i] * x[t * ne + i];
                }
                h[f] = a / (1 + exp(-a)) * bb;
            }
            for (int64_t o = 0; o < ne; o++) {
                double a = 0;
                for (int64_t f = 0; f < ff; f++)
                    a += (double)dn[(e * ne + o) * ff + f] * h[f];
                want[t * ne + o] += cw[t * n_used + k] * a;
            }
        }
    }
    free(h);
}

static void check_moe(struct backend *b, const struct mm_case *c, int64_t ne, int64_t ff,
                      int n_exp, int n_used, int64_t n_tok)
{
    float *g = malloc((size_t)(n_exp * ff * ne) * sizeof(float));
    float *u = malloc((size_t)(n_exp * ff * ne) * sizeof(float));
    float *dn = malloc((size_t)(n_exp * ne * ff) * sizeof(float));
    size_t rg, rd;
    unsigned char *gq = make_weight(c->type, ne, ff * n_exp, 11, g, &rg);
    unsigned char *uq = make_weight(c->type, ne, ff * n_exp, 12, u, &rg);
    unsigned char *dq = make_weight(c->type, ff, ne * n_exp, 13, dn, &rd);
    if (!gq || !uq || !dq) {
        free(gq), free(uq), free(dq), free(g), free(u), free(dn);
        return;
    }
    struct weight wg = {.type = c->type, .n_in = ne, .n_out = ff, .data = gq, .row_bytes = rg,
                        .n_exp = n_exp, .exp_bytes = rg * (size_t)ff};
    struct weight wu = wg;
    wu.data = uq;
    struct weight wd = {.type = c->type, .n_in = ff, .n_out = ne, .data = dq, .row_bytes = rd,
                        .n_exp = n_exp, .exp_bytes = rd * (size_t)ne};
    float *x = malloc((size_t)(ne * n_tok) * sizeof(float));
    float *d0 = malloc((size_t)(ne * n_tok) * sizeof(float));
    fill(x, (size_t)(ne * n_tok), 21);
    fill(d0, (size_t)(ne * n_tok), 22);
    int32_t *ex = malloc((size_t)(n_tok * n_used) * sizeof *ex);
    float *cw = malloc((size_t)(n_tok * n_used) * sizeof *cw);
    uint32_t s = 5;
    for (int64_t t = 0; t < n_tok; t++)
        for (int k = 0; k < n_used; k++) {   /* distinct experts per token */
            ex[t * n_used + k] = (int32_t)((t * 3 + k * 2 + (t % 2)) % n_exp);
            cw[t * n_used + k] = 0.5f + rnd(&s) / 4;
        }
    double *want = malloc((size_t)(ne * n_tok) * sizeof(double));
    moe_reference(g, u, dn, ne, ff, n_tok, x, ex, cw, n_used, d0, want);
    b->ops->reset(b);
    struct btensor *xt = put(b, x, ne, n_tok), *dt = put(b, d0, ne, n_tok);
    if (b->ops->moe(b, dt, &wg, &wu, &wd, xt, ex, cw, n_used))
        fail_msg("moe %s: %s", quant_traits(c->type)->name, b->ops->error(b));
    float *got = get(b, dt);
    vk_backend_drop_weights(b);
    double e = norm_err(got, want, (size_t)(ne * n_tok));
    if (!(e <= c->tol))
        fail_msg("moe %s, %d experts of %lldx%lld, %d used, %lld tokens: normalised error %g > %g",
                 quant_traits(c->type)->name, n_exp, (long long)ff, (long long)ne, n_used,
                 (long long)n_tok, e, c->tol);
    free(got), free(x), free(d0), free(ex), free(cw), free(want);
    free(gq), free(uq), free(dq), free(g), free(u), free(dn);
}

static void test_moe_matches_a_host_reference_for_every_type(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct backend *b = open_vk();
    for (size_t c = 0; c < sizeof mm_cases / sizeof mm_cases[0]; c++) {
        check_moe(b, &mm_cases[c], 256, 256, 5, 2, 1);
        check_moe(b, &mm_cases[c], 64, 32, 6, 3, 7);
    }
    check_moe(b, &mm_cases[0], 32, 16, 4, 2, 11);  /* td-lite's shape: rows of 16 */
    close_vk(b);
}

/* For one token only the chosen experts' memory may be read: every other
 * expert lies in pages that fault when touched. */
static void test_moe_for_one_token_reads_only_the_chosen_experts(void **state)
{
    (void)state;
    NEED_DEVICE();
    enum { NE = 64, FF = 16, NEXP = 64, PAGE = NE * FF * 4 };   /* one expert = 4096 bytes */
    long ps = sysconf(_SC_PAGESIZE);
    if (ps != PAGE) {
        printf("  skipped: page size %ld\n", ps);
        skip();
        return;
    }
    int32_t ex[2] = {41, 7};
    float cw[2] = {0.7f, 0.4f};
    unsigned char *stack[3];
    float *host[3];
    for (int k = 0; k < 3; k++) {
        stack[k] = mmap(NULL, (size_t)PAGE * NEXP, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(stack[k] != MAP_FAILED);
        host[k] = calloc((size_t)NEXP * NE * FF, sizeof(float));
        for (int j = 0; j < 2; j++) {
            float *e = (float *)(stack[k] + (size_t)ex[j] * PAGE);
            assert_int_equal(mprotect(e, PAGE, PROT_READ | PROT_WRITE), 0);
            fill(e, NE * FF, 100u + (uint32_t)(k * 2 + j));
            memcpy(host[k] + (size_t)ex[j] * NE * FF, e, PAGE);
        }
    }
    struct weight wg = {.type = QUANT_TYPE_F32, .n_in = NE, .n_out = FF, .data = stack[0],
                        .row_bytes = NE * 4, .n_exp = NEXP, .exp_bytes = PAGE};
    struct weight wu = wg, wd = {.type = QUANT_TYPE_F32, .n_in = FF, .n_out = NE, .data = stack[2],
                                 .row_bytes = FF * 4, .n_exp = NEXP, .exp_bytes = PAGE};
    wu.data = stack[1];
    float x[NE], d0[NE] = {0};
    fill(x, NE, 9);
    double want[NE];
    moe_reference(host[0], host[1], host[2], NE, FF, 1, x, ex, cw, 2, d0, want);
    struct backend *b = open_vk();
    b->ops->reset(b);
    struct btensor *xt = put(b, x, NE, 1), *dt = put(b, d0, NE, 1);
    if (b->ops->moe(b, dt, &wg, &wu, &wd, xt, ex, cw, 2))
        fail_msg("moe: %s", b->ops->error(b));
    float *got = get(b, dt);
    assert_true(norm_err(got, want, NE) <= 1e-5);
    free(got);
    vk_backend_drop_weights(b);
    close_vk(b);
    for (int k = 0; k < 3; k++) {
        munmap(stack[k], (size_t)PAGE * NEXP);
        free(host[k]);
    }
}

/* rope with dim_off equals the CPU's rope on the rotated columns alone */
static void test_rope_with_dim_off_rotates_only_the_columns_after_it(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct pair p = open_pair();
    enum { HD = 48, OFF = 32, NROT = 16, NH = 3, NT = 5 };
    float x[NT * NH * HD], xr[NT * NH * NROT];
    fill(x, NT * NH * HD, 31);
    for (int t = 0; t < NT; t++)
        for (int h = 0; h < NH; h++)
            memcpy(xr + (t * NH + h) * NROT, x + (t * NH + h) * HD + OFF, NROT * sizeof(float));
    int32_t pos[NT];
    for (int t = 0; t < NT; t++)
        pos[t] = 3 + t;
    for (int yarn = 0; yarn < 2; yarn++) {
        struct rope_params rp = {.mode = ROPE_MODE_NORM, .n_rot = NROT, .freq_base = 10000,
                                 .freq_scale = 1, .attn_factor = 1, .dim_off = OFF};
        if (yarn) {
            rp.ext_factor = 1;
            rp.freq_scale = 1.0f / 40;
            rp.beta_fast = 32;
            rp.beta_slow = 1;
            rp.n_ctx_orig = 4096;
        }
        p.vk->ops->reset(p.vk);
        p.cpu->ops->reset(p.cpu);
        struct btensor *v = put(p.vk, x, NH * HD, NT), *cr = put(p.cpu, xr, NH * NROT, NT);
        assert_int_equal(p.vk->ops->rope(p.vk, v, HD, &rp, pos), 0);
        rp.dim_off = 0;
        assert_int_equal(p.cpu->ops->rope(p.cpu, cr, NROT, &rp, pos), 0);
        float *got = get(p.vk, v), *ref = get(p.cpu, cr);
        for (int t = 0; t < NT; t++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < HD; i++) {
                    float w = i < OFF ? x[(t * NH + h) * HD + i] : ref[(t * NH + h) * NROT + i - OFF];
                    assert_close(got[(t * NH + h) * HD + i], w, 1e-6);
                }
        free(got);
        free(ref);
    }
    close_pair(&p);
}

/* A cache with v_in_k (values = the start of each key row, no V buffer)
 * attends like a plain cache given those values explicitly. */
static void check_attention_v_in_k(struct pair *p, enum kv_type type, int n_head, int kw, int vw,
                                   int n_prompt, int n_more)
{
    struct kv_shape ks = {.n_layer = 2, .n_ctx = 64, .k_width = kw, .v_width = vw, .type = type,
                          .v_in_k = true};
    struct kv_shape kc = ks;
    kc.v_in_k = false;
    assert_int_equal(p->vk->ops->kv_init(p->vk, &ks), 0);
    assert_int_equal(p->cpu->ops->kv_init(p->cpu, &kc), 0);
    uint32_t s = 17;
    int pos0 = 0;
    for (int step = 0; step <= n_more; step++) {
        int n = step == 0 ? n_prompt : 1;
        float *q = malloc((size_t)(n_head * kw * n) * sizeof(float));
        float *k = malloc((size_t)(kw * n) * sizeof(float));
        float *v = malloc((size_t)(vw * n) * sizeof(float));
        for (int i = 0; i < n_head * kw * n; i++)
            q[i] = rnd(&s);
        for (int i = 0; i < kw * n; i++)
            k[i] = rnd(&s);
        for (int t = 0; t < n; t++)
            memcpy(v + t * vw, k + t * kw, (size_t)vw * sizeof(float));
        struct btensor *d[2];
        struct backend *bs[2] = {p->vk, p->cpu};
        for (int j = 0; j < 2; j++) {
            bs[j]->ops->reset(bs[j]);
            struct btensor *qt = put(bs[j], q, n_head * kw, n), *kt = put(bs[j], k, kw, n);
            struct btensor *vt = j ? put(bs[j], v, vw, n) : NULL;
            d[j] = bs[j]->ops->alloc(bs[j], (int64_t)n_head * vw, n);
            if (bs[j]->ops->kv_store(bs[j], 1, kt, vt, pos0) ||
                bs[j]->ops->attention(bs[j], d[j], qt, 1, n_head, 1, kw, vw, pos0, 0.27f))
                fail_msg("%s: %s", j ? "cpu" : "vulkan", bs[j]->ops->error(bs[j]));
        }
        char what[96];
        snprintf(what, sizeof what, "attention v_in_k %s, %d heads, key %d, value %d, step %d",
                 type == KV_TYPE_F16 ? "f16" : "f32", n_head, kw, vw, step);
        cmp_tensors(p, d[0], d[1], 1e-5, what);
        pos0 += n;
        free(q);
        free(k);
        free(v);
    }
}

static void test_attention_over_a_latent_cache_with_v_in_k_matches_the_cpu(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct pair p = open_pair();
    check_attention_v_in_k(&p, KV_TYPE_F32, 4, 80, 64, 7, 2);
    check_attention_v_in_k(&p, KV_TYPE_F16, 3, 48, 32, 5, 1);
    close_pair(&p);
}

/* ---- attention: one read of the cache per KV head block ---- */

struct att_case {
    enum kv_type type;
    int n_head, n_head_kv, head_dim, v_dim;
    bool v_in_k;        /* values = the first v_dim entries of the key row (n_head_kv 1) */
    int n_ctx, n_fill;  /* cache size, positions stored before the query rows */
    int n_rows;         /* query rows, at positions n_fill.. */
};

/* Fills n_fill cached positions, stores n_rows more and attends with them
 * on both backends; the device result must match the CPU's within 1e-5. */
static void check_attention_case(struct pair *p, const struct att_case *ac)
{
    int64_t kw = (int64_t)ac->n_head_kv * ac->head_dim, vw = (int64_t)ac->n_head_kv * ac->v_dim;
    if (ac->v_in_k)
        vw = ac->v_dim;
    struct kv_shape ks = {.n_layer = 1, .n_ctx = ac->n_ctx, .k_width = kw, .v_width = vw,
                          .type = ac->type, .v_in_k = ac->v_in_k};
    struct backend *bs[2] = {p->vk, p->cpu};
    int64_t qw = (int64_t)ac->n_head * ac->head_dim, dw = (int64_t)ac->n_head * ac->v_dim;
    int n_all = ac->n_fill + ac->n_rows;
    float *k = malloc((size_t)(kw * n_all) * sizeof(float));
    float *v = malloc((size_t)(vw * n_all) * sizeof(float));
    float *q = malloc((size_t)(qw * ac->n_rows) * sizeof(float));
    uint32_t seed = 3u + (uint32_t)(ac->n_head * 7 + ac->head_dim * 5 + ac->n_fill + ac->n_rows);
    fill(k, (size_t)(kw * n_all), seed);
    fill(v, (size_t)(vw * n_all), seed + 1);
    fill(q, (size_t)(qw * ac->n_rows), seed + 2);
    for (int64_t i = 0; i < qw * ac->n_rows; i++)
        q[i] *= 3;  /* peaked softmax: a few positions matter */
    struct btensor *d[2];
    for (int j = 0; j < 2; j++) {
        assert_int_equal(bs[j]->ops->kv_init(bs[j], &ks), 0);
        int step[2] = {ac->n_fill, ac->n_rows};
        int pos = 0;
        for (int part = 0; part < 2; part++) {
            if (!step[part])
                continue;
            bs[j]->ops->reset(bs[j]);
            struct btensor *kt = put(bs[j], k + pos * kw, kw, step[part]);
            struct btensor *vt = ac->v_in_k ? NULL : put(bs[j], v + pos * vw, vw, step[part]);
            if (bs[j]->ops->kv_store(bs[j], 0, kt, vt, pos))
                fail_msg("kv_store: %s", bs[j]->ops->error(bs[j]));
            pos += step[part];
        }
        struct btensor *qt = put(bs[j], q, qw, ac->n_rows);
        d[j] = bs[j]->ops->alloc(bs[j], dw, ac->n_rows);
        assert_non_null(d[j]);
        if (bs[j]->ops->attention(bs[j], d[j], qt, 0, ac->n_head, ac->n_head_kv, ac->head_dim,
                                  ac->v_dim, ac->n_fill, 1.0f / sqrtf((float)ac->head_dim)))
            fail_msg("%s attention: %s", j ? "cpu" : "vulkan", bs[j]->ops->error(bs[j]));
    }
    char what[160];
    snprintf(what, sizeof what, "attention %s %d/%d heads, key %d, value %d%s, %d rows after %d",
             ac->type == KV_TYPE_F16 ? "f16" : "f32", ac->n_head, ac->n_head_kv, ac->head_dim,
             ac->v_dim, ac->v_in_k ? " (v_in_k)" : "", ac->n_rows, ac->n_fill);
    cmp_tensors(p, d[0], d[1], 1e-5, what);
    vk_backend_drop_weights(p->vk);     /* k, v and q are freed below */
    free(k);
    free(v);
    free(q);
}

/* Every case of cases[0..n) on one Vulkan/CPU pair. */
static void check_attention_cases(const struct att_case *cases, size_t n)
{
    struct pair p = open_pair();
    for (size_t i = 0; i < n; i++)
        check_attention_case(&p, &cases[i]);
    close_pair(&p);
}

static void test_attention_with_every_gqa_group_matches_the_cpu(void **state)
{
    (void)state;
    NEED_DEVICE();
    static const struct att_case cases[] = {
        /* group 1 and 2, many odd rows and one */
        {KV_TYPE_F32, 4, 4, 64, 64, false, 256, 0, 37},
        {KV_TYPE_F16, 4, 4, 64, 64, false, 256, 101, 1},
        {KV_TYPE_F32, 8, 4, 128, 128, false, 256, 3, 70},
        {KV_TYPE_F16, 8, 4, 128, 128, false, 256, 65, 1},
        /* group 6: the 1.5B's 12 heads over 2 */
        {KV_TYPE_F32, 12, 2, 128, 128, false, 256, 0, 23},
        {KV_TYPE_F16, 12, 2, 128, 128, false, 256, 40, 129},
        {KV_TYPE_F16, 12, 2, 128, 128, false, 256, 199, 1},
        /* group 11: a block of 8 heads and one of 3 */
        {KV_TYPE_F32, 22, 2, 32, 32, false, 256, 17, 5},
    };
    check_attention_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_attention_of_128_heads_over_a_latent_cache_matches_the_cpu(void **state)
{
    (void)state;
    NEED_DEVICE();
    static const struct att_case cases[] = {
        /* MLA's shape with small dims: 128 heads on one latent row */
        {KV_TYPE_F32, 128, 1, 80, 64, true, 256, 0, 9},
        {KV_TYPE_F16, 128, 1, 80, 64, true, 1024, 500, 1},
        {KV_TYPE_F16, 128, 1, 80, 64, true, 1024, 0, 130},
        /* values longer than 128 (the wide variant) and than 512 (two
         * value chunks), keys longer than the shader's query chunk */
        {KV_TYPE_F32, 128, 1, 176, 160, true, 256, 31, 3},
        {KV_TYPE_F16, 16, 1, 576, 512, true, 1024, 700, 1},
        {KV_TYPE_F32, 16, 1, 576, 512, true, 256, 0, 21},
        {KV_TYPE_F32, 6, 2, 600, 520, false, 256, 45, 2},
    };
    check_attention_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_attention_past_the_split_threshold_matches_the_cpu(void **state)
{
    (void)state;
    NEED_DEVICE();
    static const struct att_case cases[] = {
        {KV_TYPE_F32, 12, 2, 128, 128, false, 4096, 3000, 1},
        {KV_TYPE_F16, 12, 2, 128, 128, false, 4096, 2999, 3},
        {KV_TYPE_F16, 4, 4, 64, 64, false, 4096, 3001, 2},
        {KV_TYPE_F16, 128, 1, 80, 64, true, 4096, 3000, 1},
        {KV_TYPE_F32, 16, 1, 576, 512, true, 4096, 2500, 2},
        {KV_TYPE_F32, 6, 2, 600, 520, false, 4096, 2000, 1},
    };
    check_attention_cases(cases, sizeof cases / sizeof cases[0]);
}

/* 128 heads over a cache of 65536 positions: n_head x n_ctx floats (8.4 M)
 * is more than the 8 M-float scores scratch the device path once needed. */
static void test_attention_of_many_heads_over_a_large_cache_needs_no_scratch(void **state)
{
    (void)state;
    NEED_DEVICE();
    static const struct att_case c = {KV_TYPE_F16, 128, 1, 80, 64, true, 65536, 1500, 2};
    check_attention_cases(&c, 1);
}

/* Weights split over several buffers (a small piece limit stands in for
 * lavapipe's 128 MiB binding range): matmul, matmul_heads with heads
 * straddling two pieces, and the experts. */
static void test_weights_split_over_several_buffers_give_the_same_results(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct vk_options o = {.device = -1, .validation = true, .weight_range = 8192,
                           .no_int_dot = true};
    struct backend *b = NULL;
    char err[256];
    if (vk_backend_create(&o, &b, err, sizeof err))
        fail_msg("vk_backend_create: %s", err);
    static const struct mm_case cases[] = {
        {QUANT_TYPE_F32, 1e-5, 0, false}, {QUANT_TYPE_Q8_0, 1e-5, 0, false},
        {QUANT_TYPE_Q4_K, 1e-5, 0, false}, {QUANT_TYPE_Q6_K, 1e-5, 0, false}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        check_matmul(b, &cases[c], 256, 77, 3, true);  /* pieces of 8 to 40 rows */
        check_matmul_heads(b, &cases[c], 256, 3, 11, 2, 4);
        check_moe(b, &cases[c], 256, 256, 3, 2, 5);
    }
    close_vk(b);
}

/* ---- the integer dot-product path ---- */

/* Every product (prompt and generation) of Q8_0, Q6_K and the Q4 types
 * runs on int8 activations when the path is on, rounded as llama.cpp's CPU
 * backend rounds them for the weight type.  Tolerance against an exact
 * dot: each activation moves by up to half a step of max|x|/127 over its
 * block (32, or 256 for the K-quants), an error of about 0.4 % of the
 * values' RMS here; measured on lavapipe the normalised error of these
 * products is 1e-3 to 1.8e-2 (3 outputs, where one small dot weighs
 * much), so 3e-2 bounds it, and at least 1e-4 shows the int8 path was
 * taken (the float path is within 1e-6).  The same holds with the weights
 * split over several buffers, for heads whose x slices start on a block,
 * and for the experts. */
static const struct mm_case int_cases[] = {
    {QUANT_TYPE_Q8_0, 3e-2, 1e-4, false}, {QUANT_TYPE_Q4_0, 3e-2, 1e-4, false},
    {QUANT_TYPE_Q4_1, 3e-2, 1e-4, false}, {QUANT_TYPE_Q4_K, 3e-2, 1e-4, false},
    {QUANT_TYPE_Q6_K, 3e-2, 1e-4, false},
};

static struct backend *open_vk_int(uint64_t weight_range)
{
    struct vk_options o = {.device = -1, .validation = true, .weight_range = weight_range,
                           .force_int_dot = true};
    struct backend *b = NULL;
    char err[256];
    if (vk_backend_create(&o, &b, err, sizeof err))
        fail_msg("vk_backend_create: %s", err);
    if (!vk_backend_int_dot(b)) {
        printf("  skipped: %s has no integer dot product\n", vk_backend_desc(b)->name);
        close_vk(b);
        return NULL;
    }
    return b;
}

static void test_int_dot_matmul_matches_an_exact_dot_within_the_activation_rounding(void **state)
{
    (void)state;
    NEED_DEVICE();
    static const int64_t shapes[][3] = {
        /* n_in, n_out, n_tok (n_out > 1: one row is a vector, kept in F32) */
        {256, 3, 1}, {256, 63, 1}, {512, 65, 2}, {768, 33, 1}, {256, 17, 9}, {32, 5, 10},
        {2816, 7, 1}, {512, 9, 20},
    };
    for (int split = 0; split < 2; split++) {
        struct backend *b = open_vk_int(split ? 8192 : 0);
        if (!b) {
            skip();
            return;
        }
        for (size_t c = 0; c < sizeof int_cases / sizeof int_cases[0]; c++) {
            bool k = quant_traits(int_cases[c].type)->block_size == 256;
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                if (!split || shapes[s][0] <= 768)     /* 8 rows must fit 8 KiB pieces */
                    check_matmul(b, &int_cases[c], shapes[s][0], shapes[s][1], shapes[s][2],
                                 s % 2 == 1);
            /* heads on a block: 32 values, 256 for the K-quants */
            check_matmul_heads(b, &int_cases[c], 256, 3, 5, 1, k ? 256 : 32);
            check_matmul_heads(b, &int_cases[c], 256, 2, 4, 11, 256);
            check_matmul_heads(b, &int_cases[c], 64, 4, 33, 2, 64);
            struct mm_case loose = int_cases[c];
            loose.floor = 0;    /* moe: the sum of two rounded products */
            check_moe(b, &loose, 256, 256, 5, 2, 1);
            check_moe(b, &loose, 256, 32, 6, 3, 7);
            check_moe(b, &loose, 64, 32, 6, 3, 2);
        }
        close_vk(b);
    }
}

/* The int8 products are the reference's (infer/quant.c: the dot of the
 * weight with x rounded to Q8_0 for Q8_0 and Q4_0 weights, Q8_1 for Q4_1,
 * Q8_K superblocks of 256 for Q4_K and Q6_K) up to the float order of the
 * sums: measured on lavapipe within 4.5e-7 normalised, so 1e-5 bounds it,
 * while the rounding itself moves these products by 1.9e-3 to 1.5e-2 (the
 * test above): x unrounded or rounded in other blocks fails.  One token,
 * two, tiles of eight and what is left after them, with the weights in
 * one buffer and in pieces. */
static void test_int_dot_matmul_rounds_x_as_the_reference_does_for_each_type(void **state)
{
    (void)state;
    NEED_DEVICE();
    static const int64_t shapes[][3] = {
        {256, 5, 1}, {512, 65, 2}, {768, 33, 3}, {256, 17, 9}, {512, 9, 17}, {2816, 7, 1},
    };
    for (int split = 0; split < 2; split++) {
        struct backend *b = open_vk_int(split ? 8192 : 0);
        if (!b) {
            skip();
            return;
        }
        for (size_t c = 0; c < sizeof int_cases / sizeof int_cases[0]; c++) {
            struct mm_case exact = {int_cases[c].type, 1e-5, 0, true};
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                if (!split || shapes[s][0] <= 768)
                    check_matmul(b, &exact, shapes[s][0], shapes[s][1], shapes[s][2], s % 2 == 0);
        }
        close_vk(b);
    }
}

/* Heads whose x slices do not start on a block (of 32; of 256 for the
 * K-quants) keep the float path: exact to 1e-5 with the int8 path on. */
static void test_int_dot_leaves_unaligned_heads_on_the_float_path(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct backend *b = open_vk_int(0);
    if (!b) {
        skip();
        return;
    }
    static const struct mm_case exact[] = {{QUANT_TYPE_Q8_0, 1e-5, 0, false},
                                           {QUANT_TYPE_Q4_K, 1e-5, 0, false},
                                           {QUANT_TYPE_Q6_K, 1e-5, 0, false}};
    check_matmul_heads(b, &exact[0], 256, 3, 5, 1, 4);
    check_matmul_heads(b, &exact[1], 256, 3, 5, 1, 32);
    check_matmul_heads(b, &exact[2], 256, 2, 4, 9, 64);
    close_vk(b);
}

/* The default is vk_int_dot_default's (the float path on lavapipe);
 * force_int_dot turns the int8 path on where the device has it, and
 * no_int_dot wins over it. */
static void test_int_dot_is_the_device_default_and_on_when_forced(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct vk_options o = {.device = -1, .validation = true};
    struct backend *b = NULL;
    char err[256];
    if (vk_backend_create(&o, &b, err, sizeof err))
        fail_msg("vk_backend_create: %s", err);
    const struct vk_device_desc *d = vk_backend_desc(b);
    assert_int_equal(vk_backend_int_dot(b), vk_int_dot_default(d));
    if (!strcmp(d->type, "cpu"))
        assert_false(vk_backend_int_dot(b));
    bool has = d->int_dot;
    close_vk(b);
    o.force_int_dot = true;
    if (vk_backend_create(&o, &b, err, sizeof err))
        fail_msg("vk_backend_create: %s", err);
    assert_int_equal(vk_backend_int_dot(b), has);
    close_vk(b);
    o.no_int_dot = true;
    o.force_int_dot = true;
    if (vk_backend_create(&o, &b, err, sizeof err))
        fail_msg("vk_backend_create: %s", err);
    assert_false(vk_backend_int_dot(b));
    close_vk(b);
}

/* The choice on described devices (no device needed): GPUs of every type
 * with the integer dot product take the int8 path, software devices and
 * devices without the feature the float path. */
static void test_int_dot_default_is_on_for_gpus_with_the_feature_only(void **state)
{
    (void)state;
    static const struct {
        const char *type;
        uint32_t vendor;
        bool int_dot, want;
    } cases[] = {
        {"discrete", 0x10de, true, true},   /* NVIDIA */
        {"discrete", 0x1002, true, true},   /* AMD */
        {"integrated", 0x8086, true, true}, /* Intel */
        {"integrated", 0x106b, true, true}, /* Apple (MoltenVK) */
        {"virtual", 0x1af4, true, true},
        {"discrete", 0x10de, false, false},
        {"cpu", 0x10005, true, false},      /* lavapipe */
        {"cpu", 0x10005, false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct vk_device_desc d = {.vendor_id = cases[i].vendor, .int_dot = cases[i].int_dot};
        snprintf(d.type, sizeof d.type, "%s", cases[i].type);
        snprintf(d.name, sizeof d.name, "described %zu", i);
        if (vk_int_dot_default(&d) != cases[i].want)
            fail_msg("%s device of vendor %#x, integer dot product %s: default %d, want %d",
                     cases[i].type, cases[i].vendor, cases[i].int_dot ? "yes" : "no",
                     !cases[i].want, cases[i].want);
    }
}

/* ---- faults and progress ---- */

static void test_out_of_device_memory_is_a_clean_error(void **state)
{
    (void)state;
    NEED_DEVICE();
    /* room for the first 64 MiB activation block and 1 MiB more */
    struct vk_options o = {.device = -1, .validation = true, .mem_limit = (65u << 20)};
    struct backend *b = NULL;
    char err[256];
    if (vk_backend_create(&o, &b, err, sizeof err))
        fail_msg("vk_backend_create: %s", err);
    b->ops->reset(b);
    float x[256];
    fill(x, 256, 4);
    struct btensor *xt = put(b, x, 256, 1), *dt = b->ops->alloc(b, 4096, 1);
    assert_non_null(dt);
    /* a 4 MiB weight does not fit */
    float *big = calloc(256 * 4096, sizeof(float));
    struct weight w = {.type = QUANT_TYPE_F32, .n_in = 256, .n_out = 4096, .data = big,
                       .row_bytes = 1024};
    assert_int_equal(b->ops->matmul(b, dt, &w, NULL, xt), ENOMEM);
    assert_non_null(strstr(b->ops->error(b), "out of device memory"));
    struct kv_shape ks = {.n_layer = 4, .n_ctx = 4096, .k_width = 256, .v_width = 256};
    assert_int_equal(b->ops->kv_init(b, &ks), ENOMEM);
    assert_non_null(strstr(b->ops->error(b), "out of device memory"));
    /* the backend still works with what fits */
    struct weight small = w;
    small.n_out = 64;
    struct btensor *st = b->ops->alloc(b, 64, 1);
    assert_int_equal(b->ops->matmul(b, st, &small, NULL, xt), 0);
    float *got = get(b, st);
    for (int i = 0; i < 64; i++)
        assert_true(got[i] == 0.0f);
    free(got);
    vk_backend_drop_weights(b);
    free(big);
    close_vk(b);
}

struct progress_log {
    uint64_t last;
    int calls;
    bool backwards;
};

static void on_progress(void *ctx, uint64_t uploaded)
{
    struct progress_log *l = ctx;
    if (uploaded < l->last)
        l->backwards = true;
    l->last = uploaded;
    l->calls++;
}

static void test_weight_upload_reports_progress_up_to_the_weight_bytes(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct backend *b = open_vk();
    struct progress_log log = {0};
    vk_backend_set_progress(b, on_progress, &log);
    int64_t n_in = 256, n_out = 700;
    float *deq = malloc((size_t)(n_in * n_out) * sizeof(float));
    size_t rb;
    unsigned char *wq = make_weight(QUANT_TYPE_Q8_0, n_in, n_out, 3, deq, &rb);
    struct weight w = {.type = QUANT_TYPE_Q8_0, .n_in = n_in, .n_out = n_out, .data = wq,
                       .row_bytes = rb};
    char err[256];
    uint64_t before = vk_backend_device_bytes(b);
    assert_int_equal(vk_backend_upload(b, &w, err, sizeof err), 0);
    uint64_t want = vk_weight_bytes(QUANT_TYPE_Q8_0, n_in, false) * (uint64_t)n_out;
    assert_true(log.calls >= 1);
    assert_false(log.backwards);
    assert_int_equal(log.last, want);
    assert_true(vk_backend_device_bytes(b) >= before + want);
    vk_backend_drop_weights(b);
    assert_int_equal(vk_backend_device_bytes(b), before);
    free(wq);
    free(deq);
    close_vk(b);
}

/* ---- whole models ---- */

static struct model *load_placed(const char *name, int ngl, enum model_backend be, enum kv_type kv,
                                 enum plan_placement placement)
{
    char rel[256], err[512] = "";
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    struct model_params p = {.n_ctx = 2048, .n_threads = 2, .kv_type = kv,
                             .max_isa = CPU_ISA_COUNT, .backend = be, .device = -1,
                             .n_gpu_layers = ngl, .gpu_validation = true, .placement = placement};
    struct model *m = NULL;
    if (model_load(fx_path(rel), &p, &m, err, sizeof err))
        fail_msg("%s: %s", name, err);
    return m;
}

static struct model *load(const char *name, int ngl, enum model_backend be, enum kv_type kv)
{
    return load_placed(name, ngl, be, kv, PLAN_AUTO);
}

struct load_seen {
    float upload_last;
    int uploads;
    bool out_of_order;
};

static void record_load(void *ctx, float fraction, const char *phase)
{
    struct load_seen *ls = ctx;
    if (strcmp(phase, "uploading"))
        return;
    if (fraction < ls->upload_last)
        ls->out_of_order = true;
    ls->upload_last = fraction;
    ls->uploads++;
}

/* model_load turns the backend's upload progress into a fraction of the
 * weights it puts on the device, rising to 1 (the engine forwards it as
 * LOAD_PROGRESS "uploading"). */
static void test_model_load_reports_the_upload_as_a_fraction(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct load_seen ls = {.upload_last = 0.0f};
    struct model_params p = {.n_ctx = 256, .n_threads = 2, .kv_type = KV_TYPE_F32,
                             .max_isa = CPU_ISA_COUNT, .backend = MODEL_BACKEND_VULKAN,
                             .device = -1, .n_gpu_layers = -1, .gpu_validation = true,
                             .progress = record_load, .progress_ctx = &ls};
    struct model *m = NULL;
    char err[512] = "";
    if (model_load(fx_path("models/tq-q4_k_m.gguf"), &p, &m, err, sizeof err))
        fail_msg("%s", err);
    assert_true(ls.uploads >= 2);
    assert_false(ls.out_of_order);
    assert_float_equal(ls.upload_last, 1.0f, 1e-6);
    model_free(m);
}

static void wait_event(struct engine *e, struct engine_event *ev)
{
    for (int waited = 0; waited < 1200; waited++) {
        if (engine_next(e, ev))
            return;
        struct pollfd pfd = {.fd = engine_fd(e), .events = POLLIN};
        poll(&pfd, 1, 100);
    }
    fail_msg("no engine event within 120 s");
}

/* Generates up to n tokens; returns DONE's stats and whether an ERROR came. */
static bool generate_on(struct engine *e, int n, struct engine_stats *st, char *error,
                        size_t errlen)
{
    struct chat_msg msg = {.role = CHAT_ROLE_USER, .content = "one two three"};
    struct engine_generate_params gp = {.max_tokens = n, .raw = true};
    sampler_params_default(&gp.sampler);
    gp.sampler.temperature = 0;
    uint64_t id = engine_generate(e, &msg, 1, &gp);
    assert_true(id > 0);
    bool failed = false;
    struct engine_event ev;
    for (;;) {
        wait_event(e, &ev);
        if (ev.request != id)
            continue;
        if (ev.type == ENGINE_EVENT_ERROR) {
            failed = true;
            snprintf(error, errlen, "%s", ev.u.error);
        }
        if (ev.type == ENGINE_EVENT_DONE) {
            *st = ev.u.done.stats;
            return failed;
        }
    }
}

/* A device lost in the middle of a reply: one ERROR that says so, the DONE
 * that ends the reply, and the engine has the model on the CPU again, where
 * the next reply runs. */
static void test_a_lost_device_falls_back_to_the_cpu(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct engine *e = NULL;
    char err[512] = "";
    assert_int_equal(engine_open(&e, err, sizeof err), 0);
    struct model_params p = {.n_ctx = 128, .n_threads = 2, .kv_type = KV_TYPE_F32,
                             .max_isa = CPU_ISA_COUNT, .backend = MODEL_BACKEND_VULKAN,
                             .device = -1, .n_gpu_layers = -1, .gpu_lose_after = 4};
    uint64_t id = engine_load(e, fx_path("models/tq-f32.gguf"), &p);
    struct engine_event ev;
    do
        wait_event(e, &ev);
    while (ev.type == ENGINE_EVENT_LOAD_PROGRESS);
    assert_int_equal(ev.request, id);
    assert_int_equal(ev.type, ENGINE_EVENT_LOADED);
    assert_string_equal(ev.u.loaded.backend, "vulkan");

    struct engine_stats st;
    assert_true(generate_on(e, 16, &st, err, sizeof err));
    assert_non_null(strstr(err, "device was lost"));
    assert_true(st.fell_back);
    assert_string_equal(st.backend, "cpu");

    assert_false(generate_on(e, 4, &st, err, sizeof err));
    assert_false(st.fell_back);
    assert_string_equal(st.backend, "cpu");
    assert_int_equal(st.answer_tokens + st.reasoning_tokens, 4);
    engine_close(e);
}

static void check_model_on(const char *name, bool force_int_dot)
{
    char rel[256], msg[512] = "";
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    struct model_params p = {.n_ctx = 2048, .n_threads = 2, .kv_type = KV_TYPE_F32,
                             .max_isa = CPU_ISA_COUNT, .backend = MODEL_BACKEND_VULKAN,
                             .device = -1, .n_gpu_layers = -1, .gpu_validation = true,
                             .gpu_int_dot = force_int_dot ? 1 : 0};
    struct model *m = NULL;
    if (model_load(fx_path(rel), &p, &m, msg, sizeof msg))
        fail_msg("%s: %s", name, msg);
    const struct model_info *in = model_info(m);
    assert_string_equal(in->backend, "vulkan");
    assert_int_equal(in->n_gpu_layers, in->n_layer);
    struct fx_conformance c;
    int rc = fx_check_reference(m, name, &c, msg, sizeof msg);
    printf("  %-12s vulkan (%s, %s path) max |diff| %.3g (tolerance %g), top-1 checked at %d "
           "steps\n", name, in->device, force_int_dot ? "int8 forced" : "default", c.worst, c.tolerance,
           c.top1_checked);
    model_free(m);
    if (rc)
        fail_msg("%s", msg);
}

static void check_model(const char *name) { check_model_on(name, false); }

#define MODEL_TEST(id, file)                                      \
    static void test_##id##_on_the_device_matches_llama_cpp(void **state) \
    {                                                             \
        (void)state;                                              \
        NEED_DEVICE();                                            \
        check_model(file);                                        \
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
MODEL_TEST(td_f32, "td-f32")
MODEL_TEST(td_q8_0, "td-q8_0")
MODEL_TEST(td_lite_f32, "td-lite-f32")

/* The same with the int8 path forced (lavapipe's default is the float
 * path): every quantized file.  The F32, F16 and BF16 files are left out:
 * their weights upload as F32 or F16 and the int8 path takes none of
 * their products. */
#define MODEL_TEST_INT(id, file)                                             \
    static void test_##id##_with_int8_products_matches_llama_cpp(void **state) \
    {                                                                        \
        (void)state;                                                         \
        NEED_DEVICE();                                                       \
        check_model_on(file, true);                                          \
    }

MODEL_TEST_INT(tq_q8_0, "tq-q8_0")
MODEL_TEST_INT(tq_q4_0, "tq-q4_0")
MODEL_TEST_INT(tq_q4_1, "tq-q4_1")
MODEL_TEST_INT(tq_q5_0, "tq-q5_0")
MODEL_TEST_INT(tq_q5_1, "tq-q5_1")
MODEL_TEST_INT(tq_q2_k, "tq-q2_k")
MODEL_TEST_INT(tq_q3_k_m, "tq-q3_k_m")
MODEL_TEST_INT(tq_q4_k_m, "tq-q4_k_m")
MODEL_TEST_INT(tq_q5_k_m, "tq-q5_k_m")
MODEL_TEST_INT(tq_q6_k, "tq-q6_k")
MODEL_TEST_INT(tl_q8_0, "tl-q8_0")
MODEL_TEST_INT(tl_q4_k_m, "tl-q4_k_m")
MODEL_TEST_INT(td_q8_0, "td-q8_0")

static void test_a_layer_split_equals_all_gpu_and_all_cpu(void **state)
{
    (void)state;
    NEED_DEVICE();
    int32_t ids[10] = {1, 451, 54, 12, 99, 7, 300, 41, 42, 43};
    float *lg[3];
    int n_vocab = 0;
    for (int v = 0; v < 3; v++) {   /* all on the device, 1 layer on it, all on the CPU */
        struct model *m = load("tq-f32", v == 0 ? -1 : v == 1 ? 1 : 0,
                               v == 2 ? MODEL_BACKEND_CPU : MODEL_BACKEND_VULKAN, KV_TYPE_F32);
        const struct model_info *in = model_info(m);
        if (v == 1) {
            assert_true(in->n_layer >= 2);
            assert_int_equal(in->n_gpu_layers, 1);
            assert_false(in->output_on_gpu);
        }
        n_vocab = in->n_vocab;
        lg[v] = malloc((size_t)n_vocab * 2 * sizeof(float));
        char err[256];
        /* a prompt then one more token: the split also holds across calls */
        if (model_decode(m, ids, 9, lg[v], false, err, sizeof err) ||
            model_decode(m, ids + 9, 1, lg[v] + n_vocab, false, err, sizeof err))
            fail_msg("variant %d: %s", v, err);
        model_free(m);
    }
    for (int i = 0; i < 2 * n_vocab; i++) {
        assert_close(lg[1][i], lg[0][i], 1e-3);
        assert_close(lg[1][i], lg[2][i], 1e-3);
    }
    for (int v = 0; v < 3; v++)
        free(lg[v]);
}

/* deepseek2 with its routed experts in host memory run by the CPU and
 * everything else on the device, and with a plain layer split, gives the
 * logits of the all-CPU run (a prompt, then one more token). */
static void test_experts_on_the_cpu_and_the_rest_on_the_device_equal_all_cpu(void **state)
{
    (void)state;
    NEED_DEVICE();
    int32_t ids[10] = {1, 45, 54, 12, 99, 7, 300, 41, 42, 43};
    float *lg[3];
    int n_vocab = 0;
    for (int v = 0; v < 3; v++) {   /* experts on the CPU, 1 layer on the device, all CPU */
        struct model *m = load_placed("td-f32", v == 1 ? 1 : -1,
                                      v == 2 ? MODEL_BACKEND_CPU : MODEL_BACKEND_VULKAN,
                                      KV_TYPE_F32, v == 0 ? PLAN_EXPERTS_CPU : PLAN_LAYERS);
        const struct model_info *in = model_info(m);
        if (v == 0) {
            assert_true(in->experts_on_cpu);
            assert_int_equal(in->n_gpu_layers, in->n_layer);
            assert_string_equal(in->backend, "vulkan");
        }
        if (v == 1) {
            assert_false(in->experts_on_cpu);
            assert_int_equal(in->n_gpu_layers, 1);
        }
        n_vocab = in->n_vocab;
        lg[v] = malloc((size_t)n_vocab * 2 * sizeof(float));
        char err[256];
        if (model_decode(m, ids, 9, lg[v], false, err, sizeof err) ||
            model_decode(m, ids + 9, 1, lg[v] + n_vocab, false, err, sizeof err))
            fail_msg("variant %d: %s", v, err);
        model_free(m);
    }
    for (int i = 0; i < 2 * n_vocab; i++) {
        assert_close(lg[0][i], lg[2][i], 1e-3);
        assert_close(lg[1][i], lg[2][i], 1e-3);
    }
    for (int v = 0; v < 3; v++)
        free(lg[v]);
}

static void test_devices_are_listed_with_their_limits(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct vk_device_desc d[8];
    int n = 0;
    char err[256];
    assert_int_equal(vk_list_devices(d, 8, &n, err, sizeof err), 0);
    int def = vk_default_device(d, n < 8 ? n : 8);
    assert_true(def >= 0 && def < n);
    for (int i = 0; i < n && i < 8; i++) {
        assert_true(d[i].name[0] != 0);
        assert_true(d[i].max_storage_range >= 1u << 27 || d[i].max_storage_range >= 1u << 16);
        assert_true(d[i].n_heaps >= 1);
        assert_true(d[i].device_local_bytes > 0);
    }
    struct vk_options o = {.device = n};  /* one past the last */
    struct backend *b = NULL;
    assert_int_equal(vk_backend_create(&o, &b, err, sizeof err), ENODEV);
    assert_null(b);
    assert_non_null(strstr(err, "no Vulkan device"));
}

static void test_vulkan_backend_without_a_device_is_a_clear_error(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct model_params p = {.n_threads = 1, .max_isa = CPU_ISA_COUNT,
                             .backend = MODEL_BACKEND_VULKAN, .device = 99, .n_gpu_layers = -1};
    struct model *m = NULL;
    char err[512];
    assert_int_equal(model_load(fx_path("models/tq-f32.gguf"), &p, &m, err, sizeof err), ENODEV);
    assert_non_null(strstr(err, "vulkan"));
    /* auto falls back to the CPU and says why */
    p.backend = MODEL_BACKEND_AUTO;
    assert_int_equal(model_load(fx_path("models/tq-f32.gguf"), &p, &m, err, sizeof err), 0);
    assert_string_equal(model_info(m)->backend, "cpu");
    assert_true(model_info(m)->gpu_note[0] != 0);
    model_free(m);
}


/* ---- recorded command buffers replayed ---- */

static struct model *load_replay(const char *name, bool no_replay)
{
    char rel[256], err[512] = "";
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    struct model_params p = {.n_ctx = 1024, .n_threads = 2, .kv_type = KV_TYPE_F32,
                             .max_isa = CPU_ISA_COUNT, .backend = MODEL_BACKEND_VULKAN,
                             .device = -1, .n_gpu_layers = -1, .gpu_validation = true,
                             .gpu_no_replay = no_replay};
    struct model *m = NULL;
    if (model_load(fx_path(rel), &p, &m, err, sizeof err))
        fail_msg("%s: %s", name, err);
    assert_non_null(model_device(m));
    return m;
}

static void model_stats(const struct model *m, struct vk_stats *st)
{
    vk_backend_stats(model_device(m), st);
}

static void expect_no_validation_messages(const struct model *m)
{
    char msg[512];
    unsigned n = vk_backend_validation_messages(model_device(m), msg, sizeof msg);
    if (n)
        fail_msg("%u validation messages, the first: %s", n, msg);
}

/* Teacher-forced ids: a prompt of n_prompt tokens in one pass, then one
 * token a pass up to n_total, then the cache cleared and a short prompt
 * and two tokens again; the logits of the instance that replays its
 * command buffers equal, bit for bit, those of the one that records every
 * pass afresh.  Returns the replaying instance's stats. */
static void check_replay_equals_fresh(const char *name, int n_prompt, int n_total,
                                      struct vk_stats *out)
{
    struct model *m[2] = {load_replay(name, false), load_replay(name, true)};
    int n_vocab = model_info(m[0])->n_vocab;
    float *lg[2] = {malloc((size_t)n_vocab * sizeof(float)), malloc((size_t)n_vocab * sizeof(float))};
    int32_t *ids = malloc((size_t)n_total * sizeof *ids);
    assert_non_null(lg[0]);
    assert_non_null(lg[1]);
    assert_non_null(ids);
    for (int i = 0; i < n_total; i++)
        ids[i] = (int32_t)((i * 7919 + 13) % n_vocab);
    char err[256];
    int steps = 0;
    for (int round = 0; round < 2; round++) {
        int np = round ? 5 : n_prompt, nt = round ? 8 : n_total;
        for (int v = 0; v < 2; v++)
            model_clear(m[v]);
        for (int pos = 0; pos < nt; pos += pos ? 1 : np) {
            int n = pos ? 1 : np;
            for (int v = 0; v < 2; v++)
                if (model_decode(m[v], ids + pos, n, lg[v], false, err, sizeof err))
                    fail_msg("%s %s at %d: %s", name, v ? "fresh" : "replayed", pos, err);
            if (memcmp(lg[0], lg[1], (size_t)n_vocab * sizeof(float)))
                fail_msg("%s: replayed logits differ from fresh ones at position %d", name, pos);
            steps++;
        }
    }
    struct vk_stats st[2];
    for (int v = 0; v < 2; v++) {
        model_stats(m[v], &st[v]);
        expect_no_validation_messages(m[v]);
    }
    /* the fresh instance never replays; the replaying one mostly does */
    assert_int_equal(st[1].replays, 0);
    assert_true(st[0].replays > 0);
    assert_true(st[0].recorded < st[1].recorded);
    printf("  %-8s %d passes: replayed %llu of %llu submissions, recorded %llu operations "
           "(fresh: %llu)\n", name, steps, (unsigned long long)st[0].replays,
           (unsigned long long)st[0].submits, (unsigned long long)st[0].recorded,
           (unsigned long long)st[1].recorded);
    *out = st[0];
    for (int v = 0; v < 2; v++) {
        model_free(m[v]);
        free(lg[v]);
    }
    free(ids);
}

/* A dense model across the attention's change of split (512 positions and
 * more split over the sequence, one more slice every 256). */
static void test_replayed_passes_equal_fresh_ones_for_a_dense_model(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct vk_stats st;
    check_replay_equals_fresh("tq-q8_0", 500, 780, &st);
}

/* deepseek2: a pass is many segments (a submission at every MoE layer)
 * and the chosen experts change the recorded work from token to token. */
static void test_replayed_passes_equal_fresh_ones_for_deepseek2(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct vk_stats st;
    check_replay_equals_fresh("td-q8_0", 20, 60, &st);
    check_replay_equals_fresh("td-f32", 20, 60, &st);
}

/* Token generation on a dense model records nothing once its passes are
 * recorded: every later token is one submission of the recorded command
 * buffer; a pass of another shape records again. */
static void test_generation_replays_and_a_changed_pass_records_again(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct model *m = load_replay("tq-q8_0", false);
    int n_vocab = model_info(m)->n_vocab;
    float *lg = malloc((size_t)n_vocab * sizeof(float));
    assert_non_null(lg);
    int32_t ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = (int32_t)((i * 31 + 7) % n_vocab);
    char err[256];
    assert_int_equal(model_decode(m, ids, 8, lg, false, err, sizeof err), 0);
    for (int i = 8; i < 11; i++)    /* the first tokens record their pass */
        assert_int_equal(model_decode(m, ids + i, 1, lg, false, err, sizeof err), 0);
    struct vk_stats a, b;
    model_stats(m, &a);
    for (int i = 11; i < 31; i++)
        assert_int_equal(model_decode(m, ids + i, 1, lg, false, err, sizeof err), 0);
    model_stats(m, &b);
    assert_int_equal(b.recorded, a.recorded);
    assert_int_equal(b.submits - a.submits, 20);
    assert_int_equal(b.replays - a.replays, 20);
    assert_true(b.dispatches - a.dispatches >= 20 * 10);
    /* two tokens in one pass: other group counts, recorded */
    assert_int_equal(model_decode(m, ids + 31, 2, lg, false, err, sizeof err), 0);
    model_stats(m, &a);
    assert_true(a.recorded > b.recorded);
    assert_int_equal(a.replays, b.replays);
    /* and one token again: that differs from the two-token pass, recorded */
    assert_int_equal(model_decode(m, ids + 33, 1, lg, false, err, sizeof err), 0);
    model_stats(m, &b);
    assert_true(b.recorded > a.recorded);
    assert_int_equal(model_decode(m, ids + 34, 1, lg, false, err, sizeof err), 0);
    model_stats(m, &a);
    assert_int_equal(a.recorded, b.recorded);
    assert_int_equal(a.replays, b.replays + 1);
    expect_no_validation_messages(m);
    model_free(m);
    free(lg);
}

/* One attention step on a backend, the cache re-made between passes: a
 * pass replayed after kv_init (whose new buffers may reuse the old
 * handles) reads the new cache, and gives what a fresh backend gives. */
static void attention_pass(struct backend *b, const float *q, const float *k, int pos, float *out)
{
    enum { HD = 8, NH = 2 };
    b->ops->reset(b);
    struct btensor *tq = put(b, q, HD * NH, 1), *tk = put(b, k, HD * NH, 1);
    struct btensor *d = b->ops->alloc(b, HD * NH, 1);
    assert_non_null(d);
    assert_int_equal(b->ops->kv_store(b, 0, tk, tk, pos), 0);
    assert_int_equal(b->ops->attention(b, d, tq, 0, NH, NH, HD, HD, pos, 0.35f), 0);
    assert_int_equal(b->ops->read(b, d, 0, 1, out), 0);
}

static void test_replay_after_the_kv_cache_is_made_again_reads_the_new_cache(void **state)
{
    (void)state;
    NEED_DEVICE();
    struct kv_shape ks = {.n_layer = 1, .n_ctx = 16, .k_width = 16, .v_width = 16,
                          .type = KV_TYPE_F32};
    float q[16], k[4][16], got[16], want[16];
    fill(q, 16, 3);
    for (int i = 0; i < 4; i++)
        fill(k[i], 16, 10 + (uint32_t)i);
    struct backend *b = open_vk();
    assert_int_equal(b->ops->kv_init(b, &ks), 0);
    attention_pass(b, q, k[0], 0, got);
    attention_pass(b, q, k[1], 0, got);  /* the same pass: replayed */
    struct vk_stats st0, st1;
    vk_backend_stats(b, &st0);
    assert_int_equal(b->ops->kv_init(b, &ks), 0);
    attention_pass(b, q, k[2], 0, got);
    attention_pass(b, q, k[3], 1, got);
    vk_backend_stats(b, &st1);
    assert_true(st1.recorded > st0.recorded);   /* the cache's buffers changed: recorded */

    struct vk_options o = {.device = -1, .validation = true, .no_int_dot = true, .no_replay = true};
    struct backend *f = NULL;
    char err[256];
    assert_int_equal(vk_backend_create(&o, &f, err, sizeof err), 0);
    assert_int_equal(f->ops->kv_init(f, &ks), 0);
    attention_pass(f, q, k[2], 0, want);
    attention_pass(f, q, k[3], 1, want);
    assert_memory_equal(got, want, sizeof got);
    vk_backend_stats(f, &st0);
    assert_int_equal(st0.replays, 0);
    close_vk(f);
    close_vk(b);
}


/* The layer's synchronization validation (vulkan-validationlayers
 * 1.3.239) leaves 50 KB of its own objects behind when the instance goes:
 * LeakSanitizer builds do not count what is allocated while it runs. */
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#define LEAKS_IGNORED_FROM_HERE() __lsan_disable()
#define LEAKS_COUNTED_FROM_HERE() __lsan_enable()
#else
#define LEAKS_IGNORED_FROM_HERE() ((void)0)
#define LEAKS_COUNTED_FROM_HERE() ((void)0)
#endif

/* Barriers only where the data needs them, checked by the validation
 * layer's synchronization validation over whole passes (a prompt, tokens
 * replayed, the attention's split change, a cleared cache): no hazard, no
 * other message; and fewer barriers than dispatches.  (The layer reads
 * VK_LAYER_ENABLES when the instance is made.) */
static void test_whole_passes_have_no_synchronization_hazard(void **state)
{
    (void)state;
    NEED_DEVICE();
    setenv("VK_LAYER_ENABLES", "VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT", 1);
    LEAKS_IGNORED_FROM_HERE();
    const char *names[] = {"tq-q8_0", "td-q8_0"};
    for (int k = 0; k < 2; k++) {
        struct model *m = load_replay(names[k], false);
        if (!vk_backend_validating(model_device(m))) {
            printf("  skipped: no validation layer\n");
            model_free(m);
            break;
        }
        int n_vocab = model_info(m)->n_vocab;
        float *lg = malloc((size_t)n_vocab * sizeof(float));
        assert_non_null(lg);
        int32_t ids[600];
        for (int i = 0; i < 600; i++)
            ids[i] = (int32_t)((i * 131 + 5) % n_vocab);
        char err[256];
        int n0 = k ? 6 : 508, n1 = k ? 10 : 516;
        assert_int_equal(model_decode(m, ids, n0, lg, false, err, sizeof err), 0);
        for (int i = n0; i < n1; i++)
            assert_int_equal(model_decode(m, ids + i, 1, lg, false, err, sizeof err), 0);
        model_clear(m);
        assert_int_equal(model_decode(m, ids, 3, lg, false, err, sizeof err), 0);
        assert_int_equal(model_decode(m, ids + 3, 1, lg, false, err, sizeof err), 0);
        struct vk_stats st;
        model_stats(m, &st);
        printf("  %-8s %llu dispatches, %llu barriers\n", names[k],
               (unsigned long long)st.dispatches, (unsigned long long)st.barriers);
        if (k == 0)     /* deepseek2 submits at every layer: a barrier starts each */
            assert_true(st.barriers < st.dispatches);
        expect_no_validation_messages(m);
        model_free(m);
        free(lg);
    }
    unsetenv("VK_LAYER_ENABLES");
    LEAKS_COUNTED_FROM_HERE();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_devices_are_listed_with_their_limits),
        cmocka_unit_test(test_matmul_matches_an_exact_dot_for_every_type),
        cmocka_unit_test(test_norm_rope_swiglu_add_match_the_cpu),
        cmocka_unit_test(test_attention_matches_the_cpu),
        cmocka_unit_test(test_attention_over_a_long_context_matches_the_cpu),
        cmocka_unit_test(test_get_rows_of_every_type_matches_the_cpu),
        cmocka_unit_test(test_write_and_copy_cols_move_exact_values),
        cmocka_unit_test(test_matmul_heads_matches_per_head_dots_for_every_type),
        cmocka_unit_test(test_moe_matches_a_host_reference_for_every_type),
        cmocka_unit_test(test_moe_for_one_token_reads_only_the_chosen_experts),
        cmocka_unit_test(test_rope_with_dim_off_rotates_only_the_columns_after_it),
        cmocka_unit_test(test_attention_over_a_latent_cache_with_v_in_k_matches_the_cpu),
        cmocka_unit_test(test_attention_with_every_gqa_group_matches_the_cpu),
        cmocka_unit_test(test_attention_of_128_heads_over_a_latent_cache_matches_the_cpu),
        cmocka_unit_test(test_attention_past_the_split_threshold_matches_the_cpu),
        cmocka_unit_test(test_attention_of_many_heads_over_a_large_cache_needs_no_scratch),
        cmocka_unit_test(test_weights_split_over_several_buffers_give_the_same_results),
        cmocka_unit_test(test_int_dot_matmul_matches_an_exact_dot_within_the_activation_rounding),
        cmocka_unit_test(test_int_dot_matmul_rounds_x_as_the_reference_does_for_each_type),
        cmocka_unit_test(test_int_dot_leaves_unaligned_heads_on_the_float_path),
        cmocka_unit_test(test_int_dot_is_the_device_default_and_on_when_forced),
        cmocka_unit_test(test_int_dot_default_is_on_for_gpus_with_the_feature_only),
        cmocka_unit_test(test_out_of_device_memory_is_a_clean_error),
        cmocka_unit_test(test_weight_upload_reports_progress_up_to_the_weight_bytes),
        cmocka_unit_test(test_model_load_reports_the_upload_as_a_fraction),
        cmocka_unit_test(test_a_lost_device_falls_back_to_the_cpu),
        cmocka_unit_test(test_tq_f32_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tq_f16_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tq_bf16_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tq_q8_0_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tq_q4_0_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tq_q4_1_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tq_q5_0_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tq_q5_1_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tq_q2_k_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tq_q3_k_m_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tq_q4_k_m_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tq_q5_k_m_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tq_q6_k_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tl_f32_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tl_f16_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tl_q8_0_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tl_q4_k_m_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_td_f32_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_td_q8_0_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_td_lite_f32_on_the_device_matches_llama_cpp),
        cmocka_unit_test(test_tq_q8_0_with_int8_products_matches_llama_cpp),
        cmocka_unit_test(test_tq_q4_0_with_int8_products_matches_llama_cpp),
        cmocka_unit_test(test_tq_q4_1_with_int8_products_matches_llama_cpp),
        cmocka_unit_test(test_tq_q5_0_with_int8_products_matches_llama_cpp),
        cmocka_unit_test(test_tq_q5_1_with_int8_products_matches_llama_cpp),
        cmocka_unit_test(test_tq_q2_k_with_int8_products_matches_llama_cpp),
        cmocka_unit_test(test_tq_q3_k_m_with_int8_products_matches_llama_cpp),
        cmocka_unit_test(test_tq_q4_k_m_with_int8_products_matches_llama_cpp),
        cmocka_unit_test(test_tq_q5_k_m_with_int8_products_matches_llama_cpp),
        cmocka_unit_test(test_tq_q6_k_with_int8_products_matches_llama_cpp),
        cmocka_unit_test(test_tl_q8_0_with_int8_products_matches_llama_cpp),
        cmocka_unit_test(test_tl_q4_k_m_with_int8_products_matches_llama_cpp),
        cmocka_unit_test(test_td_q8_0_with_int8_products_matches_llama_cpp),
        cmocka_unit_test(test_a_layer_split_equals_all_gpu_and_all_cpu),
        cmocka_unit_test(test_experts_on_the_cpu_and_the_rest_on_the_device_equal_all_cpu),
        cmocka_unit_test(test_vulkan_backend_without_a_device_is_a_clear_error),
        cmocka_unit_test(test_replayed_passes_equal_fresh_ones_for_a_dense_model),
        cmocka_unit_test(test_replayed_passes_equal_fresh_ones_for_deepseek2),
        cmocka_unit_test(test_generation_replays_and_a_changed_pass_records_again),
        cmocka_unit_test(test_replay_after_the_kv_cache_is_made_again_reads_the_new_cache),
        cmocka_unit_test(test_whole_passes_have_no_synchronization_hazard),
    };
    /* PONDER_TEST_FILTER=pattern runs only the matching tests (while iterating) */
    if (getenv("PONDER_TEST_FILTER"))
        cmocka_set_test_filter(getenv("PONDER_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
