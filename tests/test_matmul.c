/* Tests of the CPU matmul driver and the embedding lookup: cpu_matmul()
 * against a naive double loop over dequantized weights, for several types,
 * odd shapes, 1 and 2 threads, portable and best kernels; cpu_mm_batch()
 * against separate cpu_matmul() calls. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer/cpu/cpu.h"
#include "infer/cpu/matmul.h"
#include "infer/cpu/pool.h"
#include "infer/quant.h"
#include "tests/fixture.h"

/* Tolerance of cpu_matmul() against the reference, relative to
 * sum_i |w_i * x_i| of the output: the reference feeds the kernels'
 * activations (x round-tripped through the vec_dot_type) to a double loop,
 * so what is left is float rounding in the kernels (measured: under 1e-7)
 * and, for Q8_1 activations, the block sum s stored as fp16 (3e-4). */
#define MM_REL_TOL 1e-5
#define MM_REL_TOL_Q8_1 2e-3
#define MM_ABS_TOL 1e-5

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Uniform in [-1, 1). */
static float rng_float(uint64_t *s)
{
    return (float)((double)(rng_next(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

struct mm_data {
    enum quant_type type;
    int64_t n_in, n_out, n_tok;
    void *w;          /* quantized weights */
    float *wf;        /* the same, dequantized: n_out x n_in */
    float *x;         /* n_tok x n_in */
    float *xr;        /* x through the vec_dot_type and back */
    double *want;     /* n_tok x n_out */
    double *scale;    /* sum |w x| per output */
};

static void mm_data_free(struct mm_data *d)
{
    free(d->w);
    free(d->wf);
    free(d->x);
    free(d->xr);
    free(d->want);
    free(d->scale);
    memset(d, 0, sizeof *d);
}

static void mm_data_make(struct mm_data *d, enum quant_type type, int64_t n_in, int64_t n_out,
                         int64_t n_tok, uint64_t seed)
{
    const struct quant_traits *tr = quant_traits(type);
    assert_non_null(tr);
    const struct quant_traits *vt = quant_traits(tr->vec_dot_type);
    assert_non_null(vt);
    size_t rb = quant_row_bytes(type, n_in);
    size_t vb = quant_row_bytes(tr->vec_dot_type, n_in);
    assert_true(rb > 0 && vb > 0);
    memset(d, 0, sizeof *d);
    d->type = type;
    d->n_in = n_in;
    d->n_out = n_out;
    d->n_tok = n_tok;
    d->w = malloc(rb * (size_t)(n_out ? n_out : 1));
    d->wf = malloc(sizeof(float) * (size_t)(n_in * (n_out ? n_out : 1)));
    d->x = malloc(sizeof(float) * (size_t)(n_in * (n_tok ? n_tok : 1)));
    d->xr = malloc(sizeof(float) * (size_t)(n_in * (n_tok ? n_tok : 1)));
    d->want = malloc(sizeof(double) * (size_t)(n_out * n_tok + 1));
    d->scale = malloc(sizeof(double) * (size_t)(n_out * n_tok + 1));
    void *xq = malloc(vb);
    float *row = malloc(sizeof(float) * (size_t)n_in);
    assert_true(d->w && d->wf && d->x && d->xr && d->want && d->scale && xq && row);

    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t o = 0; o < n_out; o++) {
        /* rows of different magnitudes, so a row mix-up cannot hide */
        float mag = 0.25f + (float)(o % 5);
        for (int64_t i = 0; i < n_in; i++)
            row[i] = mag * rng_float(&s);
        tr->quantize(row, (unsigned char *)d->w + (size_t)o * rb, n_in);
        tr->dequantize((unsigned char *)d->w + (size_t)o * rb, d->wf + o * n_in, n_in);
    }
    for (int64_t t = 0; t < n_tok; t++) {
        float mag = 0.5f + (float)(t % 3);
        for (int64_t i = 0; i < n_in; i++)
            d->x[t * n_in + i] = mag * rng_float(&s);
        vt->quantize(d->x + t * n_in, xq, n_in);
        vt->dequantize(xq, d->xr + t * n_in, n_in);
    }
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t o = 0; o < n_out; o++) {
            double acc = 0, sc = 0;
            for (int64_t i = 0; i < n_in; i++) {
                double p = (double)d->wf[o * n_in + i] * d->xr[t * n_in + i];
                acc += p;
                sc += fabs(p);
            }
            d->want[t * n_out + o] = acc;
            d->scale[t * n_out + o] = sc;
        }
    free(xq);
    free(row);
}

/* Runs cpu_matmul on d and compares; y gets guard values on both sides so
 * writes outside the n_tok x n_out result are caught. */
static void mm_check(const struct mm_data *d, struct pool *p, const struct cpu_kernels *k,
                     struct cpu_scratch *s, const char *what)
{
    enum { GUARD = 64 };
    size_t len = (size_t)(d->n_tok * d->n_out);
    float *buf = malloc(sizeof(float) * (len + 2 * GUARD));
    assert_non_null(buf);
    for (size_t i = 0; i < len + 2 * GUARD; i++)
        buf[i] = 12345.0f;
    float *y = buf + GUARD;
    char err[256] = "";
    int rc = cpu_matmul(p, k, d->type, d->w, d->n_in, d->n_out, d->x, d->n_tok, y, s, err,
                        sizeof err);
    if (rc)
        fail_msg("%s: cpu_matmul returned %d: %s", what, rc, err);
    for (size_t i = 0; i < GUARD; i++)
        if (buf[i] != 12345.0f || buf[GUARD + len + i] != 12345.0f)
            fail_msg("%s: wrote outside y", what);
    for (int64_t t = 0; t < d->n_tok; t++)
        for (int64_t o = 0; o < d->n_out; o++) {
            size_t i = (size_t)(t * d->n_out + o);
            double rel = quant_traits(d->type)->vec_dot_type == QUANT_TYPE_Q8_1 ? MM_REL_TOL_Q8_1
                                                                                 : MM_REL_TOL;
            double tol = rel * d->scale[i] + MM_ABS_TOL;
            if (!(fabs(y[i] - d->want[i]) <= tol))
                fail_msg("%s: y[tok %lld][row %lld] = %.6g, want %.6g (tol %.3g)", what,
                         (long long)t, (long long)o, (double)y[i], d->want[i], tol);
        }
    free(buf);
}

static const enum quant_type mm_types[] = {
    QUANT_TYPE_F32,  QUANT_TYPE_F16,  QUANT_TYPE_BF16, QUANT_TYPE_Q8_0, QUANT_TYPE_Q4_0,
    QUANT_TYPE_Q4_1, QUANT_TYPE_Q5_0, QUANT_TYPE_Q4_K, QUANT_TYPE_Q6_K,
};
static const int64_t mm_n_out[] = { 1, 7, 100, 300 };
static const int64_t mm_n_tok[] = { 1, 2, 17, 70 };

/* Every type x shape x thread count x ISA (portable up to the best here). */
static void test_matmul_matches_naive_loop(void **state)
{
    (void)state;
    /* every ISA this CPU runs: portable, AVX2, AVX-512 */
    struct cpu_kernels ks[CPU_ISA_COUNT];
    int n_isa = (int)cpu_detect() + 1;
    for (int i = 0; i < n_isa; i++)
        cpu_select(&ks[i], (enum cpu_isa)i);
    struct pool *pools[2];
    assert_int_equal(pool_create(1, &pools[0]), 0);
    assert_int_equal(pool_create(2, &pools[1]), 0);
    struct cpu_scratch s;
    cpu_scratch_init(&s);
    uint64_t seed = 1;
    for (size_t ti = 0; ti < sizeof mm_types / sizeof *mm_types; ti++) {
        enum quant_type type = mm_types[ti];
        const struct quant_traits *tr = quant_traits(type);
        assert_non_null(tr);
        int64_t n_in = tr->block_size == QK_K ? 512 : 96;
        for (size_t oi = 0; oi < sizeof mm_n_out / sizeof *mm_n_out; oi++)
            for (size_t ni = 0; ni < sizeof mm_n_tok / sizeof *mm_n_tok; ni++) {
                struct mm_data d;
                mm_data_make(&d, type, n_in, mm_n_out[oi], mm_n_tok[ni], seed++);
                for (int ki = 0; ki < n_isa; ki++)
                    for (int pi = 0; pi < 2; pi++) {
                        char what[128];
                        snprintf(what, sizeof what, "%s %lld x %lld, %lld tok, %s, %d thr",
                                 tr->name, (long long)d.n_out, (long long)n_in,
                                 (long long)d.n_tok, ks[ki].isa_name, pi + 1);
                        mm_check(&d, pools[pi], &ks[ki], &s, what);
                    }
                mm_data_free(&d);
            }
    }
    cpu_scratch_free(&s);
    pool_free(pools[0]);
    pool_free(pools[1]);
}

/* Shapes that force several column tiles narrower than 64 (a wide n_in) and
 * many row chunks, as in the 1.5B's ffn_down during a prompt; NULL pool. */
static void test_matmul_tiles_wide_rows_and_many_tokens(void **state)
{
    (void)state;
    static const struct {
        enum quant_type type;
        int64_t n_in, n_out, n_tok;
    } cases[] = {
        { QUANT_TYPE_Q8_0, 4608, 37, 70 },
        { QUANT_TYPE_Q4_K, 4608, 45, 67 },
        { QUANT_TYPE_F32, 2048, 130, 150 },
        { QUANT_TYPE_Q8_0, 64, 1000, 3 },
    };
    struct cpu_kernels k;
    cpu_select(&k, CPU_ISA_COUNT);
    struct pool *p;
    assert_int_equal(pool_create(2, &p), 0);
    struct cpu_scratch s;
    cpu_scratch_init(&s);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct mm_data d;
        mm_data_make(&d, cases[i].type, cases[i].n_in, cases[i].n_out, cases[i].n_tok, 100 + i);
        char what[128];
        snprintf(what, sizeof what, "%s %lld x %lld, %lld tok", quant_type_name(d.type),
                 (long long)d.n_out, (long long)d.n_in, (long long)d.n_tok);
        mm_check(&d, p, &k, &s, what);
        mm_check(&d, NULL, &k, &s, what);
        mm_data_free(&d);
    }
    cpu_scratch_free(&s);
    pool_free(p);
}

/* Once grown to the largest call, the scratch is reused as it is. */
static void test_matmul_scratch_grows_once(void **state)
{
    (void)state;
    struct cpu_kernels k;
    cpu_select(&k, CPU_ISA_COUNT);
    struct cpu_scratch s;
    cpu_scratch_init(&s);
    assert_null(s.buf);
    struct mm_data big, small;
    mm_data_make(&big, QUANT_TYPE_Q8_0, 256, 16, 20, 7);
    mm_data_make(&small, QUANT_TYPE_Q8_0, 256, 16, 3, 8);
    mm_check(&big, NULL, &k, &s, "big");
    void *buf = s.buf;
    size_t cap = s.cap;
    assert_non_null(buf);
    assert_true(cap >= 20 * quant_row_bytes(QUANT_TYPE_Q8_0, 256));
    assert_int_equal((uintptr_t)buf % 64, 0);
    for (int i = 0; i < 5; i++) {
        mm_check(&small, NULL, &k, &s, "small");
        mm_check(&big, NULL, &k, &s, "big again");
        assert_ptr_equal(s.buf, buf);
        assert_int_equal(s.cap, cap);
    }
    mm_data_free(&big);
    mm_data_free(&small);
    cpu_scratch_free(&s);
    assert_null(s.buf);
    cpu_scratch_free(&s);
    cpu_scratch_free(NULL);
}

static void test_matmul_empty_shapes_touch_nothing(void **state)
{
    (void)state;
    struct cpu_kernels k;
    cpu_select(&k, CPU_ISA_COUNT);
    struct cpu_scratch s;
    cpu_scratch_init(&s);
    float w[64] = { 0 }, x[64] = { 0 }, y[4] = { 7, 7, 7, 7 };
    char err[128];
    assert_int_equal(cpu_matmul(NULL, &k, QUANT_TYPE_F32, w, 64, 0, x, 1, y, &s, err, sizeof err),
                     0);
    assert_int_equal(cpu_matmul(NULL, &k, QUANT_TYPE_F32, w, 64, 1, x, 0, y, &s, err, sizeof err),
                     0);
    for (int i = 0; i < 4; i++)
        assert_true(y[i] == 7);
    cpu_scratch_free(&s);
}

static void test_matmul_rejects_bad_arguments(void **state)
{
    (void)state;
    struct cpu_kernels k, none;
    cpu_select(&k, CPU_ISA_COUNT);
    memset(&none, 0, sizeof none);
    none.isa_name = "none";
    struct cpu_scratch s;
    cpu_scratch_init(&s);
    static unsigned char w[4096];
    static float x[512], y[512];
    const struct {
        const char *name;
        const struct cpu_kernels *k;
        enum quant_type type;
        int64_t n_in, n_out, n_tok;
        int want;
    } cases[] = {
        { "n_in not a multiple of 32", &k, QUANT_TYPE_Q8_0, 48, 2, 1, EINVAL },
        { "n_in not a multiple of 256", &k, QUANT_TYPE_Q4_K, 288, 2, 1, EINVAL },
        { "n_in zero", &k, QUANT_TYPE_F32, 0, 2, 1, EINVAL },
        { "n_in negative", &k, QUANT_TYPE_F32, -32, 2, 1, EINVAL },
        { "n_out negative", &k, QUANT_TYPE_F32, 32, -1, 1, EINVAL },
        { "n_tok negative", &k, QUANT_TYPE_F32, 32, 2, -1, EINVAL },
        { "overflowing size", &k, QUANT_TYPE_F32, 32, INT64_MAX / 8, 1, EINVAL },
        { "unknown type 4", &k, (enum quant_type)4, 32, 2, 1, ENOTSUP },
        { "type past the table", &k, (enum quant_type)99, 32, 2, 1, ENOTSUP },
        { "no kernel", &none, QUANT_TYPE_Q8_0, 32, 2, 1, ENOTSUP },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[256] = "";
        int rc = cpu_matmul(NULL, cases[i].k, cases[i].type, w, cases[i].n_in, cases[i].n_out, x,
                            cases[i].n_tok, y, &s, err, sizeof err);
        if (rc != cases[i].want)
            fail_msg("case %s: got %d (%s), want %d", cases[i].name, rc, err, cases[i].want);
        if (!err[0])
            fail_msg("case %s: no message", cases[i].name);
    }
    cpu_scratch_free(&s);
}

/* A batch gives each product bit for bit what cpu_matmul() gives it alone,
 * and with CPU_MM_SWIGLU y0 = silu(y0) * y1 of those: products of mixed types
 * and activation formats (Q8_0, Q8_1, Q8_K, F32), one and several tokens, 1
 * and 2 threads; the last case has an F32 and a Q4_0 product of the same
 * rows that are cut into different tiles (one runs serially), so the swiglu
 * runs after the products rather than tile by tile. */
static void test_mm_batch_matches_separate_calls(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int n_ops;
        enum quant_type type[3];
        int64_t n_in, n_out[3];
    } cases[] = {
        { "q k v (Q8_0)", 3, { QUANT_TYPE_Q8_0, QUANT_TYPE_Q8_0, QUANT_TYPE_Q8_0 }, 256, { 96, 32, 32 } },
        { "q k v (Q4_K, Q4_K, Q6_K)", 3, { QUANT_TYPE_Q4_K, QUANT_TYPE_Q4_K, QUANT_TYPE_Q6_K }, 512, { 160, 48, 48 } },
        { "gate up (Q4_K)", 2, { QUANT_TYPE_Q4_K, QUANT_TYPE_Q4_K }, 512, { 300, 300 } },
        { "Q4_0, Q4_1, F32", 3, { QUANT_TYPE_Q4_0, QUANT_TYPE_Q4_1, QUANT_TYPE_F32 }, 96, { 100, 100, 7 } },
        { "F32 and Q4_0 in different tiles", 2, { QUANT_TYPE_F32, QUANT_TYPE_Q4_0 }, 64, { 200, 200 } },
    };
    static const int64_t toks[] = { 1, 3, 70 };
    struct cpu_kernels k;
    cpu_select(&k, CPU_ISA_COUNT);
    struct pool *pools[2];
    assert_int_equal(pool_create(1, &pools[0]), 0);
    assert_int_equal(pool_create(2, &pools[1]), 0);
    struct cpu_scratch s;
    cpu_scratch_init(&s);
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++)
        for (size_t ti = 0; ti < sizeof toks / sizeof *toks; ti++) {
            int64_t n_tok = toks[ti], n_in = cases[ci].n_in;
            struct mm_data d[3];
            float *want[3], *got[3];
            struct cpu_mm ops[3];
            for (int i = 0; i < cases[ci].n_ops; i++) {
                /* d[i].x is the same for all: the seed makes the weights differ */
                mm_data_make(&d[i], cases[ci].type[i], n_in, cases[ci].n_out[i], n_tok,
                             1000 + 10 * ci + (uint64_t)i);
                if (i)
                    memcpy(d[i].x, d[0].x, sizeof(float) * (size_t)(n_in * n_tok));
                size_t len = (size_t)(n_tok * cases[ci].n_out[i]);
                want[i] = malloc(sizeof(float) * len);
                got[i] = malloc(sizeof(float) * len);
                assert_true(want[i] && got[i]);
                ops[i] = (struct cpu_mm){ d[i].type, d[i].w, d[i].n_out, got[i] };
            }
            for (int pi = 0; pi < 2; pi++)
                for (unsigned flags = 0; flags <= CPU_MM_SWIGLU; flags++) {
                    char err[256] = "";
                    for (int i = 0; i < cases[ci].n_ops; i++)
                        assert_int_equal(cpu_matmul(pools[pi], &k, d[i].type, d[i].w, n_in,
                                                    d[i].n_out, d[0].x, n_tok, want[i], &s, err,
                                                    sizeof err), 0);
                    if (flags & CPU_MM_SWIGLU) {
                        if (d[0].n_out != d[1].n_out)
                            continue;
                        for (int64_t e = 0; e < n_tok * d[0].n_out; e++)
                            want[0][e] = cpu_swiglu1(want[0][e], want[1][e]);
                    }
                    int rc = cpu_mm_batch(pools[pi], &k, ops, cases[ci].n_ops, flags, n_in,
                                          d[0].x, n_tok, &s, err, sizeof err);
                    if (rc)
                        fail_msg("case %s: cpu_mm_batch returned %d: %s", cases[ci].name, rc, err);
                    for (int i = 0; i < cases[ci].n_ops; i++)
                        if (memcmp(got[i], want[i], sizeof(float) * (size_t)(n_tok * d[i].n_out)))
                            fail_msg("case %s, %lld tok, %d thr, flags %u: product %d differs",
                                     cases[ci].name, (long long)n_tok, pi + 1, flags, i);
                }
            for (int i = 0; i < cases[ci].n_ops; i++) {
                free(want[i]);
                free(got[i]);
                mm_data_free(&d[i]);
            }
        }
    cpu_scratch_free(&s);
    pool_free(pools[0]);
    pool_free(pools[1]);
}

static void test_mm_batch_rejects_bad_batches(void **state)
{
    (void)state;
    struct cpu_kernels k;
    cpu_select(&k, CPU_ISA_COUNT);
    struct cpu_scratch s;
    cpu_scratch_init(&s);
    static unsigned char w[4096];
    static float x[64], y[4][64];
    struct cpu_mm ops[CPU_MM_BATCH_MAX + 1];
    for (int i = 0; i <= CPU_MM_BATCH_MAX; i++)
        ops[i] = (struct cpu_mm){ QUANT_TYPE_Q8_0, w, 2, y[i % 4] };
    struct cpu_mm odd[2] = { { QUANT_TYPE_Q8_0, w, 2, y[0] }, { QUANT_TYPE_Q8_0, w, 3, y[1] } };
    struct cpu_mm bad[2] = { { QUANT_TYPE_Q8_0, w, 2, y[0] }, { QUANT_TYPE_Q4_K, w, 2, y[1] } };
    const struct {
        const char *name;
        const struct cpu_mm *ops;
        int n;
        unsigned flags;
        int want;
    } cases[] = {
        { "no products", ops, 0, 0, EINVAL },
        { "too many products", ops, CPU_MM_BATCH_MAX + 1, 0, EINVAL },
        { "swiglu of one product", ops, 1, CPU_MM_SWIGLU, EINVAL },
        { "swiglu of different widths", odd, 2, CPU_MM_SWIGLU, EINVAL },
        { "unknown flag", ops, 2, 2, EINVAL },
        { "a product with a bad shape", bad, 2, 0, EINVAL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[256] = "";
        y[0][0] = 7;
        int rc = cpu_mm_batch(NULL, &k, cases[i].ops, cases[i].n, cases[i].flags, 64, x, 1, &s,
                              err, sizeof err);
        if (rc != cases[i].want)
            fail_msg("case %s: got %d (%s), want %d", cases[i].name, rc, err, cases[i].want);
        if (!err[0])
            fail_msg("case %s: no message", cases[i].name);
        if (y[0][0] != 7)
            fail_msg("case %s: wrote y", cases[i].name);
    }
    cpu_scratch_free(&s);
}

static void test_get_rows_dequantizes_the_named_rows(void **state)
{
    (void)state;
    static const enum quant_type types[] = { QUANT_TYPE_F32, QUANT_TYPE_F16, QUANT_TYPE_Q8_0,
                                             QUANT_TYPE_Q4_K, QUANT_TYPE_Q6_K };
    static const int32_t ids[] = { 5, 0, 9, 5, 3 };
    const int64_t n_rows = 10, n = sizeof ids / sizeof *ids;
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        const struct quant_traits *tr = quant_traits(types[ti]);
        int64_t n_in = tr->block_size == QK_K ? 256 : 64;
        struct mm_data d;
        mm_data_make(&d, types[ti], n_in, n_rows, 1, 50 + ti);
        float *out = malloc(sizeof(float) * (size_t)(n * n_in));
        assert_non_null(out);
        char err[128];
        assert_int_equal(cpu_get_rows(types[ti], d.w, n_in, n_rows, ids, n, out, err, sizeof err),
                         0);
        for (int64_t i = 0; i < n; i++)
            if (memcmp(out + i * n_in, d.wf + ids[i] * n_in, sizeof(float) * (size_t)n_in))
                fail_msg("%s: row %lld (id %d) differs", tr->name, (long long)i, ids[i]);
        free(out);
        mm_data_free(&d);
    }
}

static void test_get_rows_rejects_ids_out_of_range(void **state)
{
    (void)state;
    static float w[4 * 32], out[3 * 32];
    static const struct {
        const char *name;
        int32_t id;
        int want;
    } cases[] = {
        { "minus one", -1, EINVAL },
        { "n_rows", 4, EINVAL },
        { "large", INT32_MAX, EINVAL },
        { "last row", 3, 0 },
        { "first row", 0, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int32_t ids[3] = { 1, cases[i].id, 2 };
        char err[128] = "";
        int rc = cpu_get_rows(QUANT_TYPE_F32, w, 32, 4, ids, 3, out, err, sizeof err);
        if (rc != cases[i].want)
            fail_msg("case %s: got %d (%s), want %d", cases[i].name, rc, err, cases[i].want);
        if (rc && !strstr(err, "outside"))
            fail_msg("case %s: message '%s'", cases[i].name, err);
    }
    char err[128];
    int32_t id0 = 0;
    assert_int_equal(cpu_get_rows(QUANT_TYPE_Q8_0, w, 48, 2, &id0, 1, out, err, sizeof err),
                     EINVAL);
    assert_int_equal(cpu_get_rows((enum quant_type)5, w, 32, 2, &id0, 1, out, err, sizeof err),
                     ENOTSUP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_matches_naive_loop),
        cmocka_unit_test(test_matmul_tiles_wide_rows_and_many_tokens),
        cmocka_unit_test(test_matmul_scratch_grows_once),
        cmocka_unit_test(test_matmul_empty_shapes_touch_nothing),
        cmocka_unit_test(test_matmul_rejects_bad_arguments),
        cmocka_unit_test(test_mm_batch_matches_separate_calls),
        cmocka_unit_test(test_mm_batch_rejects_bad_batches),
        cmocka_unit_test(test_get_rows_dequantizes_the_named_rows),
        cmocka_unit_test(test_get_rows_rejects_ids_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
