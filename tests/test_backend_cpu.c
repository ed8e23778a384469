/* The CPU backend's own behaviour: matrix products that wait in its queue
 * (matmul() calls on one input run together when another operation comes)
 * give what cpu_matmul() gives at once, in every order of reads and writes
 * a caller can make; attention over an F16 cache gives what an F32 cache of
 * the same values gives, with every kernel set this CPU runs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/cpu/backend_cpu.h"
#include "infer/cpu/matmul.h"
#include "infer/cpu/pool.h"
#include "infer/gguf.h"
#include "infer/quant.h"
#include "tests/fixture.h"

#define N_THREADS 2

static uint32_t rng_state = 777;   /* fx_frand()'s sequence for this file */

static const struct gguf_tensor present;   /* weight.t set: the tensor exists */

struct test_weight {
    struct weight w;
    void *data;
};

static void make_weight(struct test_weight *tw, enum quant_type type, int64_t n_in, int64_t n_out)
{
    size_t rb = quant_row_bytes(type, n_in);
    assert_true(rb > 0);
    tw->data = malloc(rb * (size_t)n_out);
    float *row = malloc((size_t)n_in * sizeof(float));
    assert_true(tw->data && row);
    for (int64_t r = 0; r < n_out; r++) {
        fx_fill(row, (size_t)n_in, &rng_state);
        unsigned char *dst = (unsigned char *)tw->data + (size_t)r * rb;
        if (type == QUANT_TYPE_F32)
            memcpy(dst, row, (size_t)n_in * sizeof(float));
        else
            quant_traits(type)->quantize(row, dst, n_in);
    }
    free(row);
    tw->w = (struct weight){.t = &present, .type = type, .n_in = n_in, .n_out = n_out,
                            .data = tw->data, .row_bytes = rb};
}

static struct btensor *put(struct backend *b, const float *v, int64_t ne0, int64_t ne1)
{
    struct btensor *t = b->ops->alloc(b, ne0, ne1);
    assert_non_null(t);
    assert_int_equal(b->ops->write(b, t, 0, ne1, v), 0);
    return t;
}

/* want = W x (+ bias) for n_tok rows of x, as cpu_matmul() on the backend's
 * kernels and thread count computes it. */
static void direct(struct pool *p, const struct cpu_kernels *k, const struct weight *w,
                   const struct weight *bias, const float *x, int64_t n_tok, float *want)
{
    struct cpu_scratch s;
    cpu_scratch_init(&s);
    char err[256];
    assert_int_equal(cpu_matmul(p, k, w->type, w->data, w->n_in, w->n_out, x, n_tok, want, &s,
                                err, sizeof err), 0);
    cpu_scratch_free(&s);
    if (bias)
        for (int64_t t = 0; t < n_tok; t++)
            for (int64_t o = 0; o < w->n_out; o++)
                want[t * w->n_out + o] += ((const float *)bias->data)[o];
}

static void expect_rows(struct backend *b, const struct btensor *t, const float *want,
                        const char *what)
{
    size_t n = (size_t)(t->ne0 * t->ne1);
    float *got = malloc(n * sizeof(float));
    assert_non_null(got);
    assert_int_equal(b->ops->read(b, t, 0, t->ne1, got), 0);
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)))
            fail_msg("%s: element %zu is %.9g, want %.9g", what, i, (double)got[i],
                     (double)want[i]);
    free(got);
}

/* A layer's products as dense.c issues them: q, k, v on one input (biases on
 * q and k), gate and up then swiglu, down on the swiglu's output; then a
 * product that overwrites the queued one's output, and one that overwrites
 * the queued one's input. */
static void test_queued_products_give_what_direct_products_give(void **state)
{
    (void)state;
    const int64_t n_embd = 256, n_ff = 512, n_kv = 64;
    static const int64_t toks[] = { 1, 5 };
    struct backend *b;
    char err[256];
    assert_int_equal(cpu_backend_create(N_THREADS, CPU_ISA_COUNT, &b, err, sizeof err), 0);
    const struct cpu_kernels *k = cpu_backend_kernels(b);
    struct pool *p;
    assert_int_equal(pool_create(N_THREADS, &p), 0);
    struct test_weight wq, wk, wv, bq, bk, wg, wu, wd;
    make_weight(&wq, QUANT_TYPE_Q8_0, n_embd, n_embd);
    make_weight(&wk, QUANT_TYPE_Q4_K, n_embd, n_kv);
    make_weight(&wv, QUANT_TYPE_Q6_K, n_embd, n_kv);
    make_weight(&bq, QUANT_TYPE_F32, n_embd, 1);
    make_weight(&bk, QUANT_TYPE_F32, n_kv, 1);
    make_weight(&wg, QUANT_TYPE_Q4_K, n_embd, n_ff);
    make_weight(&wu, QUANT_TYPE_Q4_K, n_embd, n_ff);
    make_weight(&wd, QUANT_TYPE_Q8_0, n_ff, n_embd);
    bq.w.n_in = n_embd;
    bk.w.n_in = n_kv;
    for (size_t ti = 0; ti < sizeof toks / sizeof *toks; ti++) {
        int64_t n = toks[ti];
        float *x = malloc((size_t)(n * n_embd) * sizeof(float));
        float *wq_ = malloc((size_t)(n * n_embd) * sizeof(float));
        float *wk_ = malloc((size_t)(n * n_kv) * sizeof(float));
        float *wv_ = malloc((size_t)(n * n_kv) * sizeof(float));
        float *wg_ = malloc((size_t)(n * n_ff) * sizeof(float));
        float *wu_ = malloc((size_t)(n * n_ff) * sizeof(float));
        float *wd_ = malloc((size_t)(n * n_embd) * sizeof(float));
        assert_true(x && wq_ && wk_ && wv_ && wg_ && wu_ && wd_);
        fx_fill(x, (size_t)(n * n_embd), &rng_state);
        direct(p, k, &wq.w, &bq.w, x, n, wq_);
        direct(p, k, &wk.w, &bk.w, x, n, wk_);
        direct(p, k, &wv.w, NULL, x, n, wv_);
        direct(p, k, &wg.w, NULL, x, n, wg_);
        direct(p, k, &wu.w, NULL, x, n, wu_);
        for (int64_t i = 0; i < n * n_ff; i++)
            wg_[i] = cpu_swiglu1(wg_[i], wu_[i]);
        direct(p, k, &wd.w, NULL, wg_, n, wd_);

        b->ops->reset(b);
        struct btensor *xt = put(b, x, n_embd, n);
        struct btensor *q = b->ops->alloc(b, n_embd, n), *kk = b->ops->alloc(b, n_kv, n);
        struct btensor *v = b->ops->alloc(b, n_kv, n), *g = b->ops->alloc(b, n_ff, n);
        struct btensor *u = b->ops->alloc(b, n_ff, n), *d = b->ops->alloc(b, n_embd, n);
        assert_true(q && kk && v && g && u && d);
        assert_int_equal(b->ops->matmul(b, q, &wq.w, &bq.w, xt), 0);
        assert_int_equal(b->ops->matmul(b, kk, &wk.w, &bk.w, xt), 0);
        assert_int_equal(b->ops->matmul(b, v, &wv.w, NULL, xt), 0);
        expect_rows(b, q, wq_, "q");
        expect_rows(b, kk, wk_, "k");
        expect_rows(b, v, wv_, "v");
        assert_int_equal(b->ops->matmul(b, g, &wg.w, NULL, xt), 0);
        assert_int_equal(b->ops->matmul(b, u, &wu.w, NULL, xt), 0);
        assert_int_equal(b->ops->swiglu(b, g, g, u), 0);
        assert_int_equal(b->ops->matmul(b, d, &wd.w, NULL, g), 0);
        expect_rows(b, g, wg_, "swiglu(gate, up)");
        expect_rows(b, d, wd_, "down");

        /* the second product writes the first one's output: the last wins */
        assert_int_equal(b->ops->matmul(b, kk, &wv.w, NULL, xt), 0);
        assert_int_equal(b->ops->matmul(b, kk, &wk.w, &bk.w, xt), 0);
        expect_rows(b, kk, wk_, "k written twice");
        /* the second product writes the first one's input (the first reads
         * x as it was), then sync() leaves the results in host memory */
        struct btensor *x2 = put(b, x, n_embd, n);
        assert_int_equal(b->ops->matmul(b, kk, &wv.w, NULL, x2), 0);
        assert_int_equal(b->ops->matmul(b, x2, &wd.w, NULL, g), 0);
        assert_non_null(b->ops->sync);
        assert_int_equal(b->ops->sync(b), 0);
        if (memcmp(kk->data, wv_, (size_t)(n * n_kv) * sizeof(float)))
            fail_msg("%lld tokens: v of the overwritten input differs", (long long)n);
        if (memcmp(x2->data, wd_, (size_t)(n * n_embd) * sizeof(float)))
            fail_msg("%lld tokens: the product written over the input differs", (long long)n);
        free(x);
        free(wq_);
        free(wk_);
        free(wv_);
        free(wg_);
        free(wu_);
        free(wd_);
    }
    struct test_weight *all[] = { &wq, &wk, &wv, &bq, &bk, &wg, &wu, &wd };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]->data);
    pool_free(p);
    b->ops->free(b);
}

/* Keys and values that F16 holds exactly: the F16 cache must attend bit for
 * bit as the F32 one (head_dim 40 leaves a tail past the vector loops). */
static void test_f16_cache_attends_as_f32_copies_of_its_values(void **state)
{
    (void)state;
    static const int head_dims[] = { 32, 40 };
    const int n_head = 4, n_head_kv = 2, n_pos = 9, n_ctx = 16;
    int n_isa = (int)cpu_detect() + 1;
    for (int isa = 0; isa < n_isa; isa++)
        for (size_t hi = 0; hi < sizeof head_dims / sizeof *head_dims; hi++) {
            int hd = head_dims[hi];
            int64_t kw = (int64_t)n_head_kv * hd;
            float *kv = malloc((size_t)(2 * n_pos * kw) * sizeof(float));
            float *q = malloc((size_t)(n_head * hd) * sizeof(float));
            float *out[2];
            assert_true(kv && q);
            for (int64_t i = 0; i < 2 * n_pos * kw; i++)
                kv[i] = (float)((int)(fx_frand(&rng_state) * 128)) / 64.0f;   /* exact in F16 */
            fx_fill(q, (size_t)(n_head * hd), &rng_state);
            for (int f = 0; f < 2; f++) {
                struct backend *b;
                char err[256];
                assert_int_equal(cpu_backend_create(N_THREADS, (enum cpu_isa)isa, &b, err,
                                                    sizeof err), 0);
                struct kv_shape s = {.n_layer = 1, .n_ctx = n_ctx, .k_width = kw, .v_width = kw,
                                     .type = f ? KV_TYPE_F32 : KV_TYPE_F16};
                assert_int_equal(b->ops->kv_init(b, &s), 0);
                b->ops->reset(b);
                struct btensor *kt = put(b, kv, kw, n_pos), *vt = put(b, kv + n_pos * kw, kw, n_pos);
                assert_int_equal(b->ops->kv_store(b, 0, kt, vt, 0), 0);
                struct btensor *qt = put(b, q, (int64_t)n_head * hd, 1);
                struct btensor *dst = b->ops->alloc(b, (int64_t)n_head * hd, 1);
                assert_non_null(dst);
                assert_int_equal(b->ops->attention(b, dst, qt, 0, n_head, n_head_kv, hd, hd,
                                                   n_pos - 1, 1.0f / sqrtf((float)hd)), 0);
                out[f] = malloc((size_t)(n_head * hd) * sizeof(float));
                assert_non_null(out[f]);
                assert_int_equal(b->ops->read(b, dst, 0, 1, out[f]), 0);
                b->ops->free(b);
            }
            for (int i = 0; i < n_head * hd; i++)
                if (memcmp(&out[0][i], &out[1][i], sizeof(float)))
                    fail_msg("isa %d, head_dim %d: output %d is %.9g with F16, %.9g with F32",
                             isa, hd, i, (double)out[0][i], (double)out[1][i]);
            free(out[0]);
            free(out[1]);
            free(kv);
            free(q);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queued_products_give_what_direct_products_give),
        cmocka_unit_test(test_f16_cache_attends_as_f32_copies_of_its_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
