/* CPU kernels: every fast ISA this CPU runs (avx2, avx512) against the
 * portable gemm, for every weight type, block count and tile remainder, and
 * the fast activation quantizers byte for byte against the reference. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/cpu/cpu.h"
#include "tests/fixture.h"

/* Relative to sum_i |w_i * x_i| of the dequantized operands: the int-dot
 * types add exact integer block sums with float scales, so only the order
 * of the float additions differs; F32/F16/BF16 accumulate n float products. */
#define TOL_INT_DOT 1e-5
#define TOL_FLOAT_DOT 1e-4

static const enum quant_type weight_types[] = {
    QUANT_TYPE_F32,  QUANT_TYPE_F16,  QUANT_TYPE_BF16, QUANT_TYPE_Q4_0, QUANT_TYPE_Q4_1,
    QUANT_TYPE_Q5_0, QUANT_TYPE_Q5_1, QUANT_TYPE_Q8_0, QUANT_TYPE_Q2_K, QUANT_TYPE_Q3_K,
    QUANT_TYPE_Q4_K, QUANT_TYPE_Q5_K, QUANT_TYPE_Q6_K,
};
#define N_TYPES (sizeof weight_types / sizeof weight_types[0])

/* 17, 35, 70: one, two and five groups of 16 rows plus a remainder, past
 * the 64 rows of one pass; 65 columns: past one 64-column pass. */
static const int row_counts[] = { 1, 2, 3, 5, 8, 17, 35, 70 };
static const int col_counts[] = { 1, 2, 3, 4, 5, 8, 9, 16, 33, 65 };
#define MAX_ROWS 70
#define MAX_COLS 65
/* Padding after each row and column, so a kernel that ignores the stride
 * reads the wrong data; sentinels between outputs catch stray writes. */
#ifndef PAD
#define PAD 64
#endif
#define LDY_EXTRA 3
#define SENTINEL -12345.0f

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

static float rng_unit(struct rng *r) /* [0, 1) */
{
    return (float)(rng_next(r) >> 40) / (float)(1 << 24);
}

/* Roughly normal values whose magnitude changes every 32, so block scales
 * differ (2^-3 .. 2^3). */
static void rng_floats(struct rng *r, float *v, int64_t n)
{
    float scale = 1;
    for (int64_t i = 0; i < n; i++) {
        if (i % 32 == 0)
            scale = ldexpf(1.0f, (int)(rng_next(r) % 7) - 3);
        v[i] = (rng_unit(r) + rng_unit(r) + rng_unit(r) + rng_unit(r) - 2.0f) * scale;
    }
}

static int isa_skip(const struct cpu_kernels *k, enum cpu_isa isa)
{
    if (k->isa != isa) {
        print_message("isa %d not supported on this CPU: skipped\n", (int)isa);
        return 1;
    }
    return 0;
}

/* Quantizes nrow rows of n random floats into a buffer of rows `stride`
 * bytes apart (padding bytes random).  Returns the dequantized rows too. */
static void *make_rows(struct rng *r, enum quant_type t, int64_t n, int nrow, size_t stride,
                       float *deq, cpu_quantize_fn quantize)
{
    const struct quant_traits *tr = quant_traits(t);
    unsigned char *buf = malloc(stride * (size_t)nrow);
    float *f = malloc((size_t)n * sizeof *f);
    assert_non_null(buf);
    assert_non_null(f);
    for (size_t i = 0; i < stride * (size_t)nrow; i++)
        buf[i] = (unsigned char)rng_next(r);
    for (int i = 0; i < nrow; i++) {
        rng_floats(r, f, n);
        (quantize ? quantize : tr->quantize)(f, buf + (size_t)i * stride, n);
        tr->dequantize(buf + (size_t)i * stride, deq + (size_t)i * n, n);
    }
    free(f);
    return buf;
}

static void check_gemm_type(const struct cpu_kernels *fast, const struct cpu_kernels *ref,
                            enum quant_type t, int64_t n, struct rng *r)
{
    const struct quant_traits *tr = quant_traits(t);
    const size_t ws = quant_row_bytes(t, n) + PAD, xs = quant_row_bytes(tr->vec_dot_type, n) + PAD;
    float *wd = malloc((size_t)MAX_ROWS * n * sizeof *wd);
    float *xd = malloc((size_t)MAX_COLS * n * sizeof *xd);
    assert_non_null(wd);
    assert_non_null(xd);
    void *w = make_rows(r, t, n, MAX_ROWS, ws, wd, NULL);
    void *x = make_rows(r, tr->vec_dot_type, n, MAX_COLS, xs, xd, ref->quantize[tr->vec_dot_type]);
    const double tol = t == QUANT_TYPE_F32 || t == QUANT_TYPE_F16 || t == QUANT_TYPE_BF16
                           ? TOL_FLOAT_DOT : TOL_INT_DOT;
    /* The portable result once for all rows and columns (each output is one
     * dot product), and the bound sum |w*x| for each. */
    float *yr = malloc(sizeof(float) * MAX_ROWS * MAX_COLS);
    float *yf = malloc(sizeof(float) * (MAX_ROWS + LDY_EXTRA) * MAX_COLS);
    double *mag = malloc(sizeof(double) * MAX_ROWS * MAX_COLS);
    assert_non_null(yr);
    assert_non_null(yf);
    assert_non_null(mag);
    ref->gemm[t](n, MAX_ROWS, MAX_COLS, w, ws, x, xs, yr, MAX_ROWS);
    for (int c = 0; c < MAX_COLS; c++)
        for (int i = 0; i < MAX_ROWS; i++) {
            double m = 0;
            for (int64_t j = 0; j < n; j++)
                m += fabs((double)wd[i * n + j] * xd[(size_t)c * n + j]);
            mag[c * MAX_ROWS + i] = m;
        }

    for (size_t ir = 0; ir < sizeof row_counts / sizeof row_counts[0]; ir++) {
        for (size_t ic = 0; ic < sizeof col_counts / sizeof col_counts[0]; ic++) {
            int nr = row_counts[ir], nc = col_counts[ic];
            size_t ldy = (size_t)nr + LDY_EXTRA;
            for (size_t i = 0; i < (MAX_ROWS + LDY_EXTRA) * MAX_COLS; i++)
                yf[i] = SENTINEL;
            fast->gemm[t](n, nr, nc, w, ws, x, xs, yf, ldy);
            for (int c = 0; c < nc; c++) {
                for (size_t i = 0; i < ldy; i++) {
                    float got = yf[(size_t)c * ldy + i];
                    if (i >= (size_t)nr) {
                        if (got != SENTINEL)
                            fail_msg("case %s %s n=%lld nr=%d nc=%d: wrote y[%d][%zu] past nr",
                                     fast->isa_name, tr->name, (long long)n, nr, nc, c, i);
                        continue;
                    }
                    float want = yr[c * MAX_ROWS + i];
                    double m = mag[c * MAX_ROWS + i];
                    if (!(fabs((double)got - want) <= tol * m + 1e-30))
                        fail_msg("case %s %s n=%lld nr=%d nc=%d row %zu col %d: got %.9g, portable %.9g "
                                 "(|diff| %g > %g * %g)",
                                 fast->isa_name, tr->name, (long long)n, nr, nc, i, c, got, want,
                                 fabs((double)got - want), tol, m);
                }
            }
        }
    }
    free(yr);
    free(yf);
    free(mag);
    free(w);
    free(x);
    free(wd);
    free(xd);
}

static void gemm_matches_portable(void **state)
{
    enum cpu_isa isa = (enum cpu_isa)(intptr_t)*state;
    struct cpu_kernels fast, ref;
    cpu_select(&fast, isa);
    cpu_select(&ref, CPU_ISA_PORTABLE);
    if (isa_skip(&fast, isa))
        return;
    print_message("gemm: testing isa %s against %s\n", fast.isa_name, ref.isa_name);
    struct rng r = { 0x9e3779b97f4a7c15ull };
    for (size_t i = 0; i < N_TYPES; i++) {
        enum quant_type t = weight_types[i];
        const struct quant_traits *tr = quant_traits(t);
        assert_non_null(tr);
        if (!ref.gemm[t])
            fail_msg("case %s: no portable gemm", tr->name);
        if (!fast.gemm[t])
            fail_msg("case %s: no gemm in %s (not even the fallback)", tr->name, fast.isa_name);
        const int64_t bs = tr->block_size;
        const int64_t sizes[] = { bs, 2 * bs, 4096, 1536, 8960, bs == 1 ? 37 : 3 * bs };
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            check_gemm_type(&fast, &ref, t, sizes[s], &r);
    }
}

/* Inputs that stress the quantizers: random blocks, an all-zero block,
 * exact ties after scaling (x = k + 0.5 with amax 127), equal magnitudes of
 * both signs (Q8_K takes the first), tiny and huge scales. */
static void fill_quant_input(struct rng *r, float *v, int64_t n, int pattern)
{
    rng_floats(r, v, n);
    switch (pattern) {
    case 0:
        break;
    case 1:
        for (int64_t i = 0; i < 256 && i < n; i++)
            v[i] = 0;
        break;
    case 2:
        for (int64_t i = 0; i < n; i++)
            v[i] = i % 32 == 0 ? 127.0f : (float)((int)(rng_next(r) % 253) - 126) + 0.5f;
        break;
    case 3:
        for (int64_t i = 0; i < n; i++)
            v[i] = (i % 7 == 3) ? 3.0f : (i % 7 == 5) ? -3.0f : v[i] * 0.5f;
        break;
    default:
        for (int64_t i = 0; i < n; i++)
            v[i] *= (i / 256) % 2 ? 1e-6f : 1e5f;
        break;
    }
}

static void quantizers_match_reference(void **state)
{
    enum cpu_isa isa = (enum cpu_isa)(intptr_t)*state;
    struct cpu_kernels fast, ref;
    cpu_select(&fast, isa);
    cpu_select(&ref, CPU_ISA_PORTABLE);
    if (isa_skip(&fast, isa))
        return;
    print_message("quantize: testing isa %s against the reference\n", fast.isa_name);
    static const enum quant_type act[] = { QUANT_TYPE_F32, QUANT_TYPE_Q8_0, QUANT_TYPE_Q8_1, QUANT_TYPE_Q8_K };
    const int64_t n = 8960;
    float *v = malloc((size_t)n * sizeof *v);
    assert_non_null(v);
    struct rng r = { 12345 };
    for (size_t a = 0; a < sizeof act / sizeof act[0]; a++) {
        const struct quant_traits *tr = quant_traits(act[a]);
        if (!fast.quantize[act[a]])
            fail_msg("case %s: no quantizer in %s", tr->name, fast.isa_name);
        size_t bytes = quant_row_bytes(act[a], n);
        unsigned char *qf = calloc(1, bytes), *qr = calloc(1, bytes);
        assert_non_null(qf);
        assert_non_null(qr);
        for (int pattern = 0; pattern < 5; pattern++) {
            fill_quant_input(&r, v, n, pattern);
            memset(qf, 0xa5, bytes);
            memset(qr, 0xa5, bytes);
            fast.quantize[act[a]](v, qf, n);
            tr->quantize(v, qr, n);
            for (size_t i = 0; i < bytes; i++)
                if (qf[i] != qr[i])
                    fail_msg("case %s %s pattern %d: byte %zu (block %zu) is %u, reference %u",
                             fast.isa_name, tr->name, pattern, i, i / tr->block_bytes, qf[i], qr[i]);
        }
        free(qf);
        free(qr);
    }
    free(v);
}

static void select_respects_cap(void **state)
{
    (void)state;
    enum cpu_isa have = cpu_detect();
    for (int cap = 0; cap < CPU_ISA_COUNT; cap++) {
        struct cpu_kernels k;
        cpu_select(&k, (enum cpu_isa)cap);
        enum cpu_isa want = have < (enum cpu_isa)cap ? have : (enum cpu_isa)cap;
        if (k.isa > want)
            fail_msg("case cap %d: got isa %s above the cap/CPU (%d)", cap, k.isa_name, (int)want);
        assert_non_null(k.isa_name);
        for (size_t i = 0; i < N_TYPES; i++)
            if (!k.gemm[weight_types[i]])
                fail_msg("case cap %d %s: no gemm", cap, quant_type_name(weight_types[i]));
    }
    struct cpu_kernels k;
    cpu_select(&k, CPU_ISA_PORTABLE);
    assert_int_equal(k.isa, CPU_ISA_PORTABLE);
    assert_string_equal(k.isa_name, "portable");
    cpu_select(&k, CPU_ISA_COUNT);
    print_message("cpu_detect: this CPU runs %s\n", k.isa_name);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(select_respects_cap),
        cmocka_unit_test_prestate(gemm_matches_portable, (void *)(intptr_t)CPU_ISA_AVX2),
        cmocka_unit_test_prestate(gemm_matches_portable, (void *)(intptr_t)CPU_ISA_AVX512),
        cmocka_unit_test_prestate(quantizers_match_reference, (void *)(intptr_t)CPU_ISA_AVX2),
        cmocka_unit_test_prestate(quantizers_match_reference, (void *)(intptr_t)CPU_ISA_AVX512),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
