/* Tests of the quant types: the traits table, f16/bf16 conversion, hand-built
 * blocks of every type dequantized to values worked out by hand, exact Q8
 * activation bytes, quantize round trips and reference dot products within
 * named bounds, and the portable gemm kernels. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer/cpu/cpu.h"
#include "infer/gguf.h"
#include "infer/quant.h"
#include "tests/fixture.h"

/* ---- helpers ------------------------------------------------------------- */

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* xorshift64*: deterministic across platforms. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static float rng_uniform(uint64_t *s)   /* (0, 1) */
{
    return ((float)(rng_next(s) >> 40) + 0.5f) / 16777216.0f;
}

static float rng_gauss(uint64_t *s)
{
    float u = rng_uniform(s), v = rng_uniform(s);
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static void *xcalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    assert_non_null(p);
    return p;
}

static const enum quant_type all_types[] = {
    QUANT_TYPE_F32,  QUANT_TYPE_F16,  QUANT_TYPE_BF16, QUANT_TYPE_Q4_0, QUANT_TYPE_Q4_1,
    QUANT_TYPE_Q5_0, QUANT_TYPE_Q5_1, QUANT_TYPE_Q8_0, QUANT_TYPE_Q8_1, QUANT_TYPE_Q2_K,
    QUANT_TYPE_Q3_K, QUANT_TYPE_Q4_K, QUANT_TYPE_Q5_K, QUANT_TYPE_Q6_K, QUANT_TYPE_Q8_K,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* ---- traits table --------------------------------------------------------- */

static void test_traits_table_rows_match_ggml(void **state)
{
    (void)state;
    static const struct {
        enum quant_type t;
        const char *name;
        int block_size;
        size_t block_bytes;
        enum quant_type vdt;
    } rows[] = {
        { QUANT_TYPE_F32, "F32", 1, 4, QUANT_TYPE_F32 },
        { QUANT_TYPE_F16, "F16", 1, 2, QUANT_TYPE_F32 },
        { QUANT_TYPE_BF16, "BF16", 1, 2, QUANT_TYPE_F32 },
        { QUANT_TYPE_Q4_0, "Q4_0", 32, 18, QUANT_TYPE_Q8_0 },
        { QUANT_TYPE_Q4_1, "Q4_1", 32, 20, QUANT_TYPE_Q8_1 },
        { QUANT_TYPE_Q5_0, "Q5_0", 32, 22, QUANT_TYPE_Q8_0 },
        { QUANT_TYPE_Q5_1, "Q5_1", 32, 24, QUANT_TYPE_Q8_1 },
        { QUANT_TYPE_Q8_0, "Q8_0", 32, 34, QUANT_TYPE_Q8_0 },
        { QUANT_TYPE_Q8_1, "Q8_1", 32, 36, QUANT_TYPE_Q8_1 },
        { QUANT_TYPE_Q2_K, "Q2_K", 256, 84, QUANT_TYPE_Q8_K },
        { QUANT_TYPE_Q3_K, "Q3_K", 256, 110, QUANT_TYPE_Q8_K },
        { QUANT_TYPE_Q4_K, "Q4_K", 256, 144, QUANT_TYPE_Q8_K },
        { QUANT_TYPE_Q5_K, "Q5_K", 256, 176, QUANT_TYPE_Q8_K },
        { QUANT_TYPE_Q6_K, "Q6_K", 256, 210, QUANT_TYPE_Q8_K },
        { QUANT_TYPE_Q8_K, "Q8_K", 256, 292, QUANT_TYPE_Q8_K },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct quant_traits *tr = quant_traits(rows[i].t);
        if (!tr)
            fail_msg("case %s: no traits", rows[i].name);
        if (strcmp(tr->name, rows[i].name) != 0 || strcmp(quant_type_name(rows[i].t), rows[i].name))
            fail_msg("case %s: name %s", rows[i].name, tr->name);
        if (tr->block_size != rows[i].block_size || tr->block_bytes != rows[i].block_bytes)
            fail_msg("case %s: block %d/%zu", rows[i].name, tr->block_size, tr->block_bytes);
        if (tr->vec_dot_type != rows[i].vdt)
            fail_msg("case %s: vec_dot_type %d", rows[i].name, (int)tr->vec_dot_type);
        if (!tr->dequantize || !tr->quantize || !tr->dot)
            fail_msg("case %s: missing function", rows[i].name);
        /* the activation format is itself a supported type with a quantizer */
        const struct quant_traits *v = quant_traits(tr->vec_dot_type);
        if (!v || !v->quantize || v->block_size != tr->block_size)
            fail_msg("case %s: bad vec_dot_type row", rows[i].name);
    }
}

static void test_traits_unknown_types_are_rejected(void **state)
{
    (void)state;
    static const int bad[] = { -1, 4, 5, 16, 17, 29, 31, 39, QUANT_TYPE_COUNT, 1000 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum quant_type t = (enum quant_type)bad[i];
        if (quant_traits(t) != NULL)
            fail_msg("case %d: has traits", bad[i]);
        if (strcmp(quant_type_name(t), "?") != 0)
            fail_msg("case %d: name %s", bad[i], quant_type_name(t));
        if (quant_row_bytes(t, 256) != 0)
            fail_msg("case %d: row bytes", bad[i]);
    }
}

static void test_row_bytes_needs_whole_blocks(void **state)
{
    (void)state;
    static const struct {
        enum quant_type t;
        int64_t n;
        size_t want;
    } rows[] = {
        { QUANT_TYPE_F32, 1, 4 },        { QUANT_TYPE_F32, 7, 28 },
        { QUANT_TYPE_F16, 3, 6 },        { QUANT_TYPE_BF16, 5, 10 },
        { QUANT_TYPE_Q4_0, 31, 0 },      { QUANT_TYPE_Q4_0, 32, 18 },
        { QUANT_TYPE_Q4_0, 33, 0 },      { QUANT_TYPE_Q4_0, 64, 36 },
        { QUANT_TYPE_Q8_0, 4096, 4352 }, { QUANT_TYPE_Q4_K, 255, 0 },
        { QUANT_TYPE_Q4_K, 256, 144 },   { QUANT_TYPE_Q4_K, 257, 0 },
        { QUANT_TYPE_Q6_K, 512, 420 },   { QUANT_TYPE_Q2_K, 128, 0 },
        { QUANT_TYPE_Q4_0, 0, 0 },       { QUANT_TYPE_Q4_0, -32, 0 },
        { QUANT_TYPE_F32, INT64_MAX, 0 },/* overflows size_t */
        { QUANT_TYPE_F32, -1, 0 },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t got = quant_row_bytes(rows[i].t, rows[i].n);
        if (got != rows[i].want)
            fail_msg("case %zu (%s, n=%lld): got %zu want %zu", i, quant_type_name(rows[i].t),
                     (long long)rows[i].n, got, rows[i].want);
    }
}

/* ---- f16 / bf16 ------------------------------------------------------------ */

static void test_f16_from_f32_rounds_to_nearest_even(void **state)
{
    (void)state;
    static const struct {
        uint32_t f;   /* float bits */
        uint16_t h;
        const char *why;
    } rows[] = {
        { 0x3f800000, 0x3c00, "1" },
        { 0xc0000000, 0xc000, "-2" },
        { 0x00000000, 0x0000, "+0" },
        { 0x80000000, 0x8000, "-0" },
        { 0x3dcccccd, 0x2e66, "0.1" },
        { 0x3f801000, 0x3c00, "1 + 2^-11: tie, even stays" },
        { 0x3f801001, 0x3c01, "just above the tie" },
        { 0x3f803000, 0x3c02, "1 + 3*2^-11: tie, rounds up to even" },
        { 0x477fe000, 0x7bff, "65504, the largest half" },
        { 0x477fefff, 0x7bff, "just below 65520" },
        { 0x477ff000, 0x7c00, "65520: tie between 65504 (odd) and 2^16: inf" },
        { 0x7f7fffff, 0x7c00, "FLT_MAX overflows" },
        { 0x7f800000, 0x7c00, "inf" },
        { 0xff800000, 0xfc00, "-inf" },
        { 0x38800000, 0x0400, "2^-14, the smallest normal" },
        { 0x387fe000, 0x0400, "2^-14 - 2^-25: tie between 0x3ff (odd) and 0x400" },
        { 0x387fc000, 0x03ff, "2^-14 - 2^-24 = 0x3ff exactly" },
        { 0x387f8000, 0x03fe, "2^-14 - 2^-23 = 0x3fe exactly" },
        { 0x33800000, 0x0001, "2^-24, the smallest subnormal" },
        { 0x33000000, 0x0000, "2^-25: tie between 0 and 2^-24: 0" },
        { 0x33000001, 0x0001, "just above 2^-25" },
        { 0x33c00000, 0x0002, "3*2^-25: tie between 1 and 2: 2" },
        { 0x34200000, 0x0002, "5*2^-25: tie between 2 and 3: 2" },
        { 0x34400000, 0x0003, "3*2^-24 exactly" },
        { 0xb3c00000, 0x8002, "-3*2^-25: tie, negative" },
        { 0x00000001, 0x0000, "f32 subnormal flushes to +0 by rounding" },
        { 0x80400000, 0x8000, "negative f32 subnormal" },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint16_t got = quant_f32_to_f16(u2f(rows[i].f));
        if (got != rows[i].h)
            fail_msg("case %s: 0x%08x -> 0x%04x, want 0x%04x", rows[i].why, rows[i].f, got, rows[i].h);
    }
    /* NaN stays NaN, quiet, sign kept */
    uint16_t n1 = quant_f32_to_f16(u2f(0x7fc00000)), n2 = quant_f32_to_f16(u2f(0xff800001));
    assert_int_equal(n1 & 0x7c00, 0x7c00);
    assert_true((n1 & 0x3ff) != 0 && (n1 & 0x200));
    assert_int_equal(n2 & 0xfc00, 0xfc00);
    assert_true((n2 & 0x3ff) != 0);
}

static void test_f16_to_f32_is_exact(void **state)
{
    (void)state;
    static const struct {
        uint16_t h;
        float f;
    } rows[] = {
        { 0x3c00, 1.0f },           { 0xc000, -2.0f },         { 0x3555, 0.333251953125f },
        { 0x7bff, 65504.0f },       { 0x0400, 6.103515625e-05f }, /* 2^-14 */
        { 0x0001, 5.9604644775390625e-08f }, /* 2^-24 */
        { 0x03ff, 6.097555160522461e-05f },  /* 1023 * 2^-24 */
        { 0x8001, -5.9604644775390625e-08f },
        { 0x0000, 0.0f },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        float got = quant_f16_to_f32(rows[i].h);
        if (f2u(got) != f2u(rows[i].f))
            fail_msg("case 0x%04x: %.9g want %.9g", rows[i].h, got, rows[i].f);
    }
    assert_int_equal(f2u(quant_f16_to_f32(0x8000)), 0x80000000u);
    assert_true(isinf(quant_f16_to_f32(0x7c00)) && quant_f16_to_f32(0x7c00) > 0);
    assert_true(isinf(quant_f16_to_f32(0xfc00)) && quant_f16_to_f32(0xfc00) < 0);
    assert_true(isnan(quant_f16_to_f32(0x7e00)));
    assert_true(isnan(quant_f16_to_f32(0x7c01)));
}

static void test_f16_round_trip_every_value(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = quant_f16_to_f32((uint16_t)h);
        uint16_t back = quant_f32_to_f16(f);
        int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (is_nan) {
            if (!isnan(f) || (back & 0x7c00) != 0x7c00 || !(back & 0x3ff) || (back & 0x8000) != (h & 0x8000))
                fail_msg("NaN 0x%04x -> 0x%04x", h, back);
        } else if (back != h) {
            fail_msg("0x%04x -> %.9g -> 0x%04x", h, f, back);
        }
    }
}

/* Every f32 between two neighbouring halves rounds to the nearer one, and a
 * tie to the even one: checked against exact double arithmetic on a stride
 * of bit patterns over the whole finite range of f16. */
static void test_f16_rounding_matches_exact_arithmetic(void **state)
{
    (void)state;
    for (uint64_t u = 0; u <= 0x477fffffu; u += 997) {
        float f = u2f((uint32_t)u);
        uint16_t h = quant_f32_to_f16(f);
        double got = h == 0x7c00 ? INFINITY : quant_f16_to_f32(h);
        /* the two candidates: h and its neighbour on the other side of f */
        double lo = got, hi = got;
        if (got > f)
            lo = h == 0 ? 0 : quant_f16_to_f32((uint16_t)(h - 1));
        else if (got < f)
            hi = quant_f16_to_f32((uint16_t)(h + 1));
        if (isinf(got))
            lo = 65504.0, hi = 65536.0;   /* inf stands for 2^16 when rounding */
        double err = fabs((isinf(got) ? 65536.0 : got) - (double)f);
        double other = fabs((got > f ? lo : hi) - (double)f);
        if (err > other || (err == other && err != 0 && (h & 1)))
            fail_msg("0x%08x (%.9g) -> 0x%04x (%.9g)", (uint32_t)u, f, h, got);
    }
}

static void test_bf16_rounds_to_nearest_even(void **state)
{
    (void)state;
    static const struct {
        uint32_t f;
        uint16_t b;
        const char *why;
    } rows[] = {
        { 0x3f800000, 0x3f80, "1" },
        { 0x3f808000, 0x3f80, "1 + 2^-8: tie, even stays" },
        { 0x3f818000, 0x3f82, "1 + 3*2^-8: tie, rounds up to even" },
        { 0x3f808001, 0x3f81, "just above the tie" },
        { 0xbf80ffff, 0xbf81, "-(1 + 2^-7 - 2^-23): nearest" },
        { 0x7f7fffff, 0x7f80, "FLT_MAX rounds to inf" },
        { 0x7f800000, 0x7f80, "inf" },
        { 0xff800000, 0xff80, "-inf" },
        { 0x00008000, 0x0000, "subnormal tie to 0" },
        { 0x00018000, 0x0002, "subnormal tie to 2" },
        { 0x00008001, 0x0001, "subnormal above the tie" },
        { 0x80000000, 0x8000, "-0" },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint16_t got = quant_f32_to_bf16(u2f(rows[i].f));
        if (got != rows[i].b)
            fail_msg("case %s: 0x%08x -> 0x%04x, want 0x%04x", rows[i].why, rows[i].f, got, rows[i].b);
    }
    /* a NaN whose payload sits in the low 16 bits must not become inf */
    uint16_t n = quant_f32_to_bf16(u2f(0x7f800001));
    assert_int_equal(n & 0x7f80, 0x7f80);
    assert_true((n & 0x7f) != 0);
    for (uint32_t b = 0; b < 0x10000; b++) {
        float f = quant_bf16_to_f32((uint16_t)b);
        assert_int_equal(f2u(f), b << 16);
        int is_nan = (b & 0x7f80) == 0x7f80 && (b & 0x7f);
        if (!is_nan && quant_f32_to_bf16(f) != b)
            fail_msg("0x%04x does not round-trip", b);
    }
}

/* ---- hand-built blocks ------------------------------------------------------ */

struct point {
    int v;        /* index into the dequantized row */
    float want;
};

static void check_points(const char *name, enum quant_type t, const void *blk, int n,
                         const struct point *p, size_t np)
{
    float *y = xcalloc((size_t)n * sizeof(float));
    quant_traits(t)->dequantize(blk, y, n);
    for (size_t i = 0; i < np; i++)
        if (y[p[i].v] != p[i].want)
            fail_msg("case %s: x[%d] = %.9g, want %.9g", name, p[i].v, y[p[i].v], p[i].want);
    free(y);
}

static void test_dequantize_float_types_by_hand(void **state)
{
    (void)state;
    float f[3] = { 1.5f, -2.0f, 1e-30f };
    static const struct point pf[] = { { 0, 1.5f }, { 1, -2.0f }, { 2, 1e-30f } };
    check_points("F32", QUANT_TYPE_F32, f, 3, pf, 3);

    /* 0x3c00 = 1, 0xc000 = -2, 0x3800 = 0.5, 0x0001 = 2^-24 */
    uint16_t h[4] = { 0x3c00, 0xc000, 0x3800, 0x0001 };
    static const struct point ph[] = { { 0, 1 }, { 1, -2 }, { 2, 0.5f }, { 3, 5.9604644775390625e-08f } };
    check_points("F16", QUANT_TYPE_F16, h, 4, ph, 4);

    /* bf16 is the top half of the f32: 0x3f80 = 1, 0xc000 = -2, 0x3f00 = 0.5, 0x4049 = 3.140625 */
    uint16_t b[4] = { 0x3f80, 0xc000, 0x3f00, 0x4049 };
    static const struct point pb[] = { { 0, 1 }, { 1, -2 }, { 2, 0.5f }, { 3, 3.140625f } };
    check_points("BF16", QUANT_TYPE_BF16, b, 4, pb, 4);
}

static void test_dequantize_q4_q5_by_hand(void **state)
{
    (void)state;
    /* Q4_0: d = 0.5 (0x3800), byte j = j | (15-j) << 4:
     * x[j] = (j - 8) * 0.5, x[j+16] = (15 - j - 8) * 0.5 */
    struct block_q4_0 q40 = { .d = 0x3800 };
    for (int j = 0; j < 16; j++)
        q40.qs[j] = (uint8_t)(j | (15 - j) << 4);
    static const struct point p40[] = {
        { 0, -4.0f }, { 1, -3.5f }, { 8, 0.0f }, { 15, 3.5f },   /* (15-8)*0.5 */
        { 16, 3.5f }, { 17, 3.0f }, { 31, -4.0f },               /* (0-8)*0.5 */
    };
    check_points("Q4_0", QUANT_TYPE_Q4_0, &q40, 32, p40, sizeof p40 / sizeof p40[0]);

    /* Q4_1: d = 0.5, m = -1 (0xbc00): x = q*0.5 - 1 */
    struct block_q4_1 q41 = { .d = 0x3800, .m = 0xbc00 };
    memcpy(q41.qs, q40.qs, 16);
    static const struct point p41[] = {
        { 0, -1.0f }, { 3, 0.5f }, { 15, 6.5f }, { 16, 6.5f }, { 20, 4.5f }, /* (15-4)*.5-1 */
        { 31, -1.0f },
    };
    check_points("Q4_1", QUANT_TYPE_Q4_1, &q41, 32, p41, sizeof p41 / sizeof p41[0]);

    /* Q5_0: d = 0.25 (0x3400), same nibbles, qh = 0x80000001: fifth bit of x[0]
     * (bit 0) and x[31] (bit 31).  x = (q - 16) * 0.25 */
    struct block_q5_0 q50 = { .d = 0x3400, .qh = { 0x01, 0x00, 0x00, 0x80 } };
    memcpy(q50.qs, q40.qs, 16);
    static const struct point p50[] = {
        { 0, 0.0f },     /* 0 + 16 */
        { 1, -3.75f },   /* (1 - 16) * 0.25 */
        { 15, -0.25f },  /* 15 */
        { 16, -0.25f },  /* high nibble of byte 0 = 15, bit 16 clear */
        { 30, -3.75f },  /* high nibble of byte 14 = 1 */
        { 31, 0.0f },    /* high nibble of byte 15 = 0, bit 31 set: 16 */
    };
    check_points("Q5_0", QUANT_TYPE_Q5_0, &q50, 32, p50, sizeof p50 / sizeof p50[0]);

    /* Q5_1: d = 0.5, m = -4 (0xc400), qh = 0x00018000: bits 15 and 16. x = q*0.5 - 4 */
    struct block_q5_1 q51 = { .d = 0x3800, .m = 0xc400, .qh = { 0x00, 0x80, 0x01, 0x00 } };
    memcpy(q51.qs, q40.qs, 16);
    static const struct point p51[] = {
        { 0, -4.0f },    /* 0 */
        { 14, 3.0f },    /* 14*0.5 - 4 */
        { 15, 11.5f },   /* 15 + 16 = 31: 15.5 - 4 */
        { 16, 11.5f },   /* 15 + 16 */
        { 17, 3.0f },    /* 14 */
        { 31, -4.0f },
    };
    check_points("Q5_1", QUANT_TYPE_Q5_1, &q51, 32, p51, sizeof p51 / sizeof p51[0]);
}

static void test_dequantize_q8_by_hand(void **state)
{
    (void)state;
    /* Q8_0: d = 0.25, q = j - 16 */
    struct block_q8_0 q80 = { .d = 0x3400 };
    for (int j = 0; j < 32; j++)
        q80.qs[j] = (int8_t)(j - 16);
    static const struct point p80[] = { { 0, -4.0f }, { 16, 0.0f }, { 31, 3.75f } };
    check_points("Q8_0", QUANT_TYPE_Q8_0, &q80, 32, p80, 3);

    /* Q8_1: d = 2 (0x4000), s is not used by dequantize */
    struct block_q8_1 q81 = { .d = 0x4000, .s = 0x7bff };
    for (int j = 0; j < 32; j++)
        q81.qs[j] = (int8_t)(j - 16);
    static const struct point p81[] = { { 0, -32.0f }, { 17, 2.0f }, { 31, 30.0f } };
    check_points("Q8_1", QUANT_TYPE_Q8_1, &q81, 32, p81, 3);

    /* Q8_K: float d = 0.125, q = j - 128 */
    struct block_q8_k *q8k = xcalloc(sizeof *q8k);
    q8k->d = 0.125f;
    for (int j = 0; j < 256; j++)
        q8k->qs[j] = (int8_t)(j - 128);
    static const struct point p8k[] = { { 0, -16.0f }, { 129, 0.125f }, { 255, 15.875f } };
    check_points("Q8_K", QUANT_TYPE_Q8_K, q8k, 256, p8k, 3);
    free(q8k);
}

static void test_dequantize_q2_k_by_hand(void **state)
{
    (void)state;
    /* d = 1, dmin = 0.5; scale j = j, min j = 1 (scales[j] = j | 1 << 4);
     * qs[i] = i.  Value v: byte 32*(v/128) + v%32, bits 2*((v%128)/32).
     * x = 1 * (v/16) * q - 0.5 * 1 */
    struct block_q2_k b = { .d = 0x3c00, .dmin = 0x3800 };
    for (int j = 0; j < 16; j++)
        b.scales[j] = (uint8_t)(j | 1 << 4);
    for (int i = 0; i < 64; i++)
        b.qs[i] = (uint8_t)i;
    static const struct point p[] = {
        { 0, -0.5f },     /* q = 0 */
        { 5, -0.5f },     /* sub-block 0: scale 0 */
        { 21, 0.5f },     /* byte 21 = 0b010101, bits 0: 1; scale 1: 1 - 0.5 */
        { 37, 1.5f },     /* byte 5 = 0b101, bits 2: 1; scale 2: 2 - 0.5 */
        { 71, -0.5f },    /* byte 7 = 0b111, bits 4: 0 */
        { 191, 32.5f },   /* byte 63 = 0b111111, bits 2: 3; scale 11: 33 - 0.5 */
        { 133, 7.5f },    /* byte 37 = 0b100101, bits 0: 1; scale 8: 8 - 0.5 */
        { 197, 23.5f },   /* byte 37, bits 4: 2; scale 12: 24 - 0.5 */
        { 255, -0.5f },   /* byte 63, bits 6: 0 */
        { 223, 38.5f },   /* byte 63, bits 4: 3; scale 13: 39 - 0.5 */
    };
    check_points("Q2_K", QUANT_TYPE_Q2_K, &b, 256, p, sizeof p / sizeof p[0]);
}

static void test_dequantize_q3_k_by_hand(void **state)
{
    (void)state;
    /* d = 0.5.  Stored 6-bit scales u_j = 24 + j, so scale_j = u_j - 32 = j - 8.
     * u_0..7 = 24..31 (low nibble 8+j, top bits 1), u_8..15 = 32..39 (low j-8,
     * top bits 2).  Bytes 0..7: lo(u_j) | lo(u_j+8) << 4 = (8+j) | j << 4;
     * bytes 8..11: byte 8+k holds the top bits of u_k, u_4+k, u_8+k, u_12+k at
     * bits 0, 2, 4, 6: 1 | 1<<2 | 2<<4 | 2<<6 = 0xa5.
     * qs all 0xe4 (0b11100100): the 2 low bits of v are (v%128)/32.
     * hmask: only bit 0 of byte 3 (v = 3) and bit 7 of byte 7 (v = 231) set;
     * a clear bit subtracts 4.  x = 0.5 * scale * q */
    struct block_q3_k b = { .d = 0x3800 };
    static const uint8_t scales[12] = { 8, 25, 42, 59, 76, 93, 110, 127, 0xa5, 0xa5, 0xa5, 0xa5 };
    memcpy(b.scales, scales, 12);
    memset(b.qs, 0xe4, sizeof b.qs);
    b.hmask[3] = 0x01;
    b.hmask[7] = 0x80;
    static const struct point p[] = {
        { 0, 16.0f },     /* scale -8, q = 0 - 4: 0.5 * -8 * -4 */
        { 3, 0.0f },      /* high bit set: q = 0 */
        { 40, 9.0f },     /* scale -6, q = 1 - 4 = -3 */
        { 100, 1.0f },    /* scale -2, q = 3 - 4 */
        { 128, 0.0f },    /* scale 0 */
        { 231, 9.0f },    /* scale 6, low bits 3, high bit set: q = 3 */
        { 255, -3.5f },   /* scale 7, q = 3 - 4 */
        { 199, -4.0f },   /* scale 4, low bits 2, hmask[7] bit 6 clear: q = -2 */
    };
    check_points("Q3_K", QUANT_TYPE_Q3_K, &b, 256, p, sizeof p / sizeof p[0]);
}

/* Q4_K/Q5_K scales: sc = {1,2,3,4,33,34,35,63}, m = {0,1,2,3,16,17,18,40}.
 * bytes 0..3: sc[j] | (sc[j+4] >> 4) << 6  = 1|2<<6, 2|2<<6, 3|2<<6, 4|3<<6
 * bytes 4..7: m[j] | (m[j+4] >> 4) << 6    = 0|1<<6, 1|1<<6, 2|1<<6, 3|2<<6
 * bytes 8..11: (sc[j+4] & 15) | (m[j+4] & 15) << 4 = 1|0, 2|1<<4, 3|2<<4, 15|8<<4 */
static const uint8_t k4_scales[12] = { 129, 130, 131, 196, 64, 65, 66, 131, 1, 18, 35, 143 };

static void test_dequantize_q4_k_by_hand(void **state)
{
    (void)state;
    /* d = 1, dmin = 0.5, qs[i] = i.  Value v: byte 32*(v/64) + v%32, low
     * nibble when v%64 < 32.  x = sc[v/32] * q - 0.5 * m[v/32] */
    struct block_q4_k b = { .d = 0x3c00, .dmin = 0x3800 };
    memcpy(b.scales, k4_scales, 12);
    for (int i = 0; i < 128; i++)
        b.qs[i] = (uint8_t)i;
    static const struct point p[] = {
        { 0, 0.0f },      /* q 0, m 0 */
        { 37, -0.5f },    /* byte 5 high nibble 0; m 1 */
        { 70, 17.0f },    /* byte 38 = 0x26 low 6; 3*6 - 0.5*2 */
        { 130, 58.0f },   /* byte 66 = 0x42 low 2; 33*2 - 8 */
        { 160, 127.5f },  /* byte 64 = 0x40 high 4; 34*4 - 8.5 */
        { 200, 271.0f },  /* byte 104 = 0x68 low 8; 35*8 - 9 */
        { 255, 421.0f },  /* byte 127 = 0x7f high 7; 63*7 - 20 */
    };
    check_points("Q4_K", QUANT_TYPE_Q4_K, &b, 256, p, sizeof p / sizeof p[0]);
}

static void test_dequantize_q5_k_by_hand(void **state)
{
    (void)state;
    /* As Q4_K plus the fifth bit: qh[v%32] bit v/32.  Set for v = 37
     * (qh[5] bit 1), 200 (qh[8] bit 6), 255 (qh[31] bit 7). */
    struct block_q5_k b = { .d = 0x3c00, .dmin = 0x3800 };
    memcpy(b.scales, k4_scales, 12);
    for (int i = 0; i < 128; i++)
        b.qs[i] = (uint8_t)i;
    b.qh[5] = 0x02;
    b.qh[8] = 0x40;
    b.qh[31] = 0x80;
    static const struct point p[] = {
        { 0, 0.0f },
        { 37, 31.5f },    /* q 16: 2*16 - 0.5 */
        { 70, 17.0f },    /* unchanged */
        { 200, 831.0f },  /* q 24: 35*24 - 9 */
        { 255, 1429.0f }, /* q 23: 63*23 - 20 */
        { 5, 5.0f },      /* byte 5 low 5, sc 1, m 0; qh[5] bit 0 clear */
    };
    check_points("Q5_K", QUANT_TYPE_Q5_K, &b, 256, p, sizeof p / sizeof p[0]);
}

static void test_dequantize_q6_k_by_hand(void **state)
{
    (void)state;
    /* d = 0.25, scales[j] = j - 8, ql[i] = i, qh all 0x1b (0b00011011: the
     * top two bits are 3, 2, 1, 0 for quarter k = (v%128)/32 = 0..3).
     * Value v: g = v/128, l = v%32; low nibble in ql[64g + l + 32*(k&1)]
     * (low half for k < 2); x = 0.25 * scale[v/16] * (q - 32) */
    struct block_q6_k b = { .d = 0x3400 };
    for (int i = 0; i < 128; i++)
        b.ql[i] = (uint8_t)i;
    memset(b.qh, 0x1b, sizeof b.qh);
    for (int j = 0; j < 16; j++)
        b.scales[j] = (int8_t)(j - 8);
    static const struct point p[] = {
        { 0, -32.0f },    /* ql[0] low 0, top 3: q 48 -> 16; scale -8 */
        { 33, -1.5f },    /* ql[33] = 0x21 low 1, top 2: 33 -> 1; scale -6 */
        { 70, 16.0f },    /* ql[6] high 0, top 1: 16 -> -16; scale -4 */
        { 127, 7.25f },   /* ql[63] = 0x3f high 3, top 0: 3 -> -29; scale -1 */
        { 200, -12.0f },  /* ql[72] = 0x48 high 4, top 1: 20 -> -12; scale 4 */
        { 255, -43.75f }, /* ql[127] = 0x7f high 7, top 0: 7 -> -25; scale 7 */
    };
    check_points("Q6_K", QUANT_TYPE_Q6_K, &b, 256, p, sizeof p / sizeof p[0]);
}

/* ---- exact Q8 activation bytes -------------------------------------------- */

static void test_q8_0_quantize_exact_bytes(void **state)
{
    (void)state;
    float x[32];
    struct block_q8_0 b;
    struct block_q8_1 b1;
    const struct quant_traits *t0 = quant_traits(QUANT_TYPE_Q8_0), *t1 = quant_traits(QUANT_TYPE_Q8_1);

    /* all zeros: d = 0, q = 0, s = 0 */
    memset(x, 0, sizeof x);
    memset(&b, 0x55, sizeof b);
    memset(&b1, 0x55, sizeof b1);
    t0->quantize(x, &b, 32);
    t1->quantize(x, &b1, 32);
    assert_int_equal(b.d, 0);
    assert_int_equal(b1.d, 0);
    assert_int_equal(b1.s, 0);
    for (int j = 0; j < 32; j++) {
        assert_int_equal(b.qs[j], 0);
        assert_int_equal(b1.qs[j], 0);
    }

    /* x = j - 16: amax 16 (negative), d = 16/127 = 0.12598 -> f16 0x3008
     * (1.00787 * 2^-3: mantissa 0.00787*1024 = 8.06 -> 8); multiplier
     * 127/16 = 7.9375 exactly: -16 -> -127, 1 -> 7.9375 -> 8, 2 -> 15.875 -> 16,
     * 15 -> 119.0625 -> 119.  The pairs cancel in the sum but -127: s = f16(d * -127)
     * = -16 (0xcc00). */
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16);
    t0->quantize(x, &b, 32);
    t1->quantize(x, &b1, 32);
    assert_int_equal(b.d, 0x3008);
    assert_int_equal(b.qs[0], -127);
    assert_int_equal(b.qs[17], 8);
    assert_int_equal(b.qs[18], 16);
    assert_int_equal(b.qs[31], 119);
    assert_int_equal(b.qs[1], -119);
    assert_int_equal(b.qs[16], 0);
    assert_int_equal(b1.d, 0x3008);
    assert_memory_equal(b1.qs, b.qs, 32);
    assert_int_equal(b1.s, 0xcc00);

    /* ties: amax 127 makes the multiplier exactly 1, d = 1 (0x3c00); llama.cpp's
     * x86 quantizer (_mm256_round_ps, nearest) rounds ties to even:
     * 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0, -1.5 -> -2, -2.5 -> -2, 126.5 -> 126 */
    static const float tie_x[8] = { -127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f };
    static const int8_t tie_q[8] = { -127, 0, 2, 2, 0, -2, -2, 126 };
    memset(x, 0, sizeof x);
    memcpy(x, tie_x, sizeof tie_x);
    t0->quantize(x, &b, 32);
    t1->quantize(x, &b1, 32);
    assert_int_equal(b.d, 0x3c00);
    for (int j = 0; j < 8; j++)
        if (b.qs[j] != tie_q[j] || b1.qs[j] != tie_q[j])
            fail_msg("tie case x = %g: q %d / %d, want %d", tie_x[j], b.qs[j], b1.qs[j], tie_q[j]);
    /* sum = -127 + 0 + 2 + 2 + 0 - 2 - 2 + 126 = -1: s = f16(-1) */
    assert_int_equal(b1.s, 0xbc00);

    /* amax 1: d = 1/127 = 0.0078740 -> f16 0x2008 (1.00787 * 2^-7) */
    memset(x, 0, sizeof x);
    x[5] = 1.0f;
    x[6] = -0.5f;   /* 63.5: a tie, to even 64 */
    t0->quantize(x, &b, 32);
    assert_int_equal(b.d, 0x2008);
    assert_int_equal(b.qs[5], 127);
    assert_int_equal(b.qs[6], -64);
}

static void test_q8_k_quantize_exact_bytes(void **state)
{
    (void)state;
    float *x = xcalloc(256 * sizeof(float));
    struct block_q8_k *b = xcalloc(sizeof *b);
    const struct quant_traits *t = quant_traits(QUANT_TYPE_Q8_K);

    /* all zeros: everything 0 */
    memset(b, 0x55, sizeof *b);
    t->quantize(x, b, 256);
    assert_true(b->d == 0.0f);
    for (int j = 0; j < 256; j++)
        assert_int_equal(b->qs[j], 0);
    for (int j = 0; j < 16; j++)
        assert_int_equal(b->bsums[j], 0);

    /* the largest magnitude is -127 at x[0], first of a tie with +127 at x[5]:
     * max = -127, iscale = -127/max = 1, d = 1/iscale = 1.  Ties go to even:
     * 2.5 -> 2, -2.5 -> -2, 0.5 -> 0, 1.5 -> 2.  bsums[0] = -127+2-2+0+2+127 = 2 */
    static const float xs[6] = { -127.0f, 2.5f, -2.5f, 0.5f, 1.5f, 127.0f };
    static const int8_t qa[6] = { -127, 2, -2, 0, 2, 127 };
    memcpy(x, xs, sizeof xs);
    x[100] = 3.25f;   /* -> 3, in bsums[6] */
    t->quantize(x, b, 256);
    assert_true(b->d == 1.0f);
    for (int j = 0; j < 6; j++)
        if (b->qs[j] != qa[j])
            fail_msg("case first-max: q[%d] = %d, want %d", j, b->qs[j], qa[j]);
    assert_int_equal(b->qs[100], 3);
    assert_int_equal(b->bsums[0], 2);
    assert_int_equal(b->bsums[6], 3);
    assert_int_equal(b->bsums[1], 0);

    /* swapped: +127 first, so max = 127, iscale = -1, d = -1 and every q flips */
    x[0] = 127.0f;
    x[5] = -127.0f;
    t->quantize(x, b, 256);
    assert_true(b->d == -1.0f);
    assert_int_equal(b->qs[0], -127);
    assert_int_equal(b->qs[5], 127);
    assert_int_equal(b->qs[1], -2);
    assert_int_equal(b->qs[100], -3);
    assert_int_equal(b->bsums[6], -3);

    /* x = j - 128: max = -128 at j = 0, iscale = 127/128 = 0.9921875 exactly,
     * d = 1/iscale = 128/127 rounded to float;
     * j = 255: 127 * 0.9921875 = 126.0078 -> 126; j = 192: 64 - 0.5 = 63.5 -> 64 (even) */
    for (int j = 0; j < 256; j++)
        x[j] = (float)(j - 128);
    t->quantize(x, b, 256);
    assert_true(b->d == (float)(128.0 / 127.0));
    assert_int_equal(b->qs[0], -127);
    assert_int_equal(b->qs[255], 126);
    assert_int_equal(b->qs[192], 64);
    assert_int_equal(b->qs[64], -64);
    assert_int_equal(b->qs[128], 0);
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int l = 0; l < 16; l++)
            s += b->qs[16 * g + l];
        assert_int_equal(b->bsums[g], s);
    }
    free(x);
    free(b);
}

/* ---- round trips and dot products on random data -------------------------- */

/* Bounds (about 1.25x the worst measured over 12 rows, one with 8x outliers)
 * on rms(dequant(quant(x)) - x) / rms(x) for Gaussian rows (the
 * round-to-nearest quantizers; ggml's searched scales do somewhat better),
 * and on |dot - dequant(w).dequant(x)| / sum |w_i x_i|. */
static const struct {
    enum quant_type t;
    double max_rel_rmse;
    double max_dot_rel;
} bounds[] = {
    { QUANT_TYPE_F32, 0, 1e-6 },
    { QUANT_TYPE_F16, 3e-4, 1e-6 },
    { QUANT_TYPE_BF16, 2.5e-3, 1e-6 },
    { QUANT_TYPE_Q4_0, 0.19, 1e-6 },
    { QUANT_TYPE_Q4_1, 0.125, 1e-3 },   /* s = f16(d * sum q) is rounded */
    { QUANT_TYPE_Q5_0, 0.095, 1e-6 },
    { QUANT_TYPE_Q5_1, 0.065, 1e-3 },
    { QUANT_TYPE_Q8_0, 0.0125, 1e-6 },
    { QUANT_TYPE_Q8_1, 0.0125, 1e-6 },
    { QUANT_TYPE_Q2_K, 0.47, 1e-6 },
    { QUANT_TYPE_Q3_K, 0.26, 1e-6 },
    { QUANT_TYPE_Q4_K, 0.13, 1e-6 },
    { QUANT_TYPE_Q5_K, 0.065, 1e-6 },
    { QUANT_TYPE_Q6_K, 0.035, 1e-6 },
    { QUANT_TYPE_Q8_K, 0.028, 1e-6 },
};

static void test_quantize_round_trip_and_dot_within_bounds(void **state)
{
    (void)state;
    static const int sizes[] = { 256, 512, 4096 };
    const int rows = 4;
    uint64_t seed = 0x5eed1234abcdULL;
    for (size_t bi = 0; bi < sizeof bounds / sizeof bounds[0]; bi++) {
        const struct quant_traits *tr = quant_traits(bounds[bi].t);
        const struct quant_traits *vt = quant_traits(tr->vec_dot_type);
        double worst_rmse = 0, worst_dot = 0;
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            int n = sizes[si];
            float *x = xcalloc((size_t)n * sizeof(float)), *a = xcalloc((size_t)n * sizeof(float));
            float *y = xcalloc((size_t)n * sizeof(float)), *yb = xcalloc((size_t)n * sizeof(float));
            void *w = xcalloc(quant_row_bytes(bounds[bi].t, n));
            void *xq = xcalloc(quant_row_bytes(tr->vec_dot_type, n));
            for (int r = 0; r < rows; r++) {
                float scale = r == 0 ? 1.0f : r == 1 ? 0.02f : r == 2 ? 30.0f : 1.0f;
                for (int i = 0; i < n; i++) {
                    x[i] = rng_gauss(&seed) * scale;
                    y[i] = rng_gauss(&seed);
                }
                if (r == 3)   /* outliers and a shifted block, as real weights have */
                    for (int i = 0; i < n; i += 97)
                        x[i] *= 8;
                tr->quantize(x, w, n);
                tr->dequantize(w, a, n);
                double e = 0, s = 0;
                for (int i = 0; i < n; i++) {
                    e += ((double)a[i] - x[i]) * ((double)a[i] - x[i]);
                    s += (double)x[i] * x[i];
                }
                double rel = sqrt(e / s);
                if (rel > worst_rmse)
                    worst_rmse = rel;

                vt->quantize(y, xq, n);
                vt->dequantize(xq, yb, n);
                double ref = 0, mag = 0;
                for (int i = 0; i < n; i++) {
                    ref += (double)a[i] * yb[i];
                    mag += fabs((double)a[i] * yb[i]);
                }
                double d = fabs(tr->dot(n, w, xq) - ref) / mag;
                if (d > worst_dot)
                    worst_dot = d;
            }
            free(x);
            free(a);
            free(y);
            free(yb);
            free(w);
            free(xq);
        }
        if (worst_rmse > bounds[bi].max_rel_rmse)
            fail_msg("case %s: relative rmse %.5g > %.5g", tr->name, worst_rmse, bounds[bi].max_rel_rmse);
        if (worst_dot > bounds[bi].max_dot_rel)
            fail_msg("case %s: dot error %.5g > %.5g", tr->name, worst_dot, bounds[bi].max_dot_rel);
        if (getenv("QUANT_TEST_VERBOSE"))
            print_message("%-5s rmse %.5f dot %.3g\n", tr->name, worst_rmse, worst_dot);
    }
}

/* Quantizing zeros, and a row that is constant, must give finite values
 * (no 0/0 in the scale fits). */
static void test_quantize_degenerate_rows_stay_finite(void **state)
{
    (void)state;
    const int n = 512;
    float *x = xcalloc(n * sizeof(float)), *a = xcalloc(n * sizeof(float));
    for (size_t k = 0; k < N_TYPES; k++) {
        const struct quant_traits *tr = quant_traits(all_types[k]);
        void *w = xcalloc(quant_row_bytes(all_types[k], n));
        for (int c = 0; c < 3; c++) {
            for (int i = 0; i < n; i++)
                x[i] = c == 0 ? 0.0f : c == 1 ? 2.5f : -1.0f;
            tr->quantize(x, w, n);
            tr->dequantize(w, a, n);
            for (int i = 0; i < n; i++) {
                if (!isfinite(a[i]))
                    fail_msg("case %s/%d: x[%d] = %g", tr->name, c, i, a[i]);
                if (c == 0 && a[i] != 0)
                    fail_msg("case %s zeros: x[%d] = %g", tr->name, i, a[i]);
                if (c > 0 && fabsf(a[i] - x[i]) > 0.35f * fabsf(x[i]))
                    fail_msg("case %s/%d: x[%d] = %g, want ~%g", tr->name, c, i, a[i], x[i]);
            }
        }
        free(w);
    }
    free(x);
    free(a);
}

/* NaN, inf and huge inputs (bad activations) must not reach a float-to-int
 * conversion of an unrepresentable value: run under
 * -fsanitize=float-cast-overflow this fails without the clamping. */
static void test_quantize_nonfinite_input_is_defined(void **state)
{
    (void)state;
    const int n = 256;
    float *x = xcalloc(n * sizeof(float)), *a = xcalloc(n * sizeof(float));
    uint64_t seed = 7;
    for (size_t k = 0; k < N_TYPES; k++) {
        const struct quant_traits *tr = quant_traits(all_types[k]);
        void *w = xcalloc(quant_row_bytes(all_types[k], n));
        for (int c = 0; c < 3; c++) {
            for (int i = 0; i < n; i++)
                x[i] = rng_gauss(&seed);
            x[3] = c == 0 ? NAN : c == 1 ? INFINITY : 3e38f;
            x[40] = c == 1 ? -INFINITY : -3e38f;
            tr->quantize(x, w, n);
            tr->dequantize(w, a, n);
        }
        free(w);
    }
    free(x);
    free(a);
}

/* ---- files made by llama.cpp ----------------------------------------------
 * The reference models were quantized by llama-quantize from the F32 files
 * next to them: dequantizing every tensor must land near the F32 original
 * (a wrong bit layout lands at rmse ~1), within bounds about 1.25x the worst
 * measured.  Where ggml's quantizer has no scale search (F16, BF16, Q4_0,
 * Q4_1, Q5_0, Q5_1) quantizing the F32 twin must give the file's bytes;
 * Q8_0 must agree but for ties. */
static const struct {
    enum quant_type t;
    double max_rel_rmse;
} file_bounds[] = {
    { QUANT_TYPE_F16, 3e-4 },  { QUANT_TYPE_BF16, 2.2e-3 }, { QUANT_TYPE_Q8_0, 7e-3 },
    { QUANT_TYPE_Q6_K, 0.023 }, { QUANT_TYPE_Q5_K, 0.046 }, { QUANT_TYPE_Q5_0, 0.054 },
    { QUANT_TYPE_Q5_1, 0.048 }, { QUANT_TYPE_Q4_K, 0.09 },  { QUANT_TYPE_Q4_0, 0.11 },
    { QUANT_TYPE_Q4_1, 0.1 },   { QUANT_TYPE_Q3_K, 0.19 },  { QUANT_TYPE_Q2_K, 0.37 },
};

static double file_bound(enum quant_type t)
{
    for (size_t i = 0; i < sizeof file_bounds / sizeof file_bounds[0]; i++)
        if (file_bounds[i].t == t)
            return file_bounds[i].max_rel_rmse;
    return -1;
}

/* Q8_0 weights: llama-quantize's scalar quantizer (q = roundf(x * (1/d)))
 * and ours (the x86 activation path, rint(x * (127/amax))) agree on d always
 * and on q except where x*id sits on a half (a tie, or one ulp off it). */
static void check_q8_0_against_file(const char *name, const float *x, const struct block_q8_0 *o,
                                    int64_t n, int *checked)
{
    struct block_q8_0 mine;
    for (int64_t k = 0; k < n / 32; k++) {
        quant_traits(QUANT_TYPE_Q8_0)->quantize(x + 32 * k, &mine, 32);
        if (mine.d != o[k].d)
            fail_msg("case %s block %lld: d 0x%04x, file 0x%04x", name, (long long)k, mine.d, o[k].d);
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[32 * k + j]));
        for (int j = 0; j < 32; j++) {
            if (mine.qs[j] == o[k].qs[j])
                continue;
            float v = fabsf(x[32 * k + j] * (127.0f / amax));
            if (abs(mine.qs[j] - o[k].qs[j]) != 1 || fabsf(v - floorf(v) - 0.5f) > 1e-5f)
                fail_msg("case %s block %lld: q[%d] %d, file %d (x*id %.9g)", name, (long long)k, j,
                         mine.qs[j], o[k].qs[j], v);
        }
    }
    (*checked)++;
}

static int exact_as_llama(enum quant_type t)
{
    return t == QUANT_TYPE_F16 || t == QUANT_TYPE_BF16 || t == QUANT_TYPE_Q4_0 ||
           t == QUANT_TYPE_Q4_1 || t == QUANT_TYPE_Q5_0 || t == QUANT_TYPE_Q5_1;
}

static void test_llama_quantized_files_agree(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        { "tq-f16", "tq-f32" },     { "tq-bf16", "tq-f32" },    { "tq-q8_0", "tq-f32" },
        { "tq-q4_0", "tq-f32" },    { "tq-q4_1", "tq-f32" },    { "tq-q5_0", "tq-f32" },
        { "tq-q5_1", "tq-f32" },    { "tq-q2_k", "tq-f32" },    { "tq-q3_k_m", "tq-f32" },
        { "tq-q4_k_m", "tq-f32" },  { "tq-q5_k_m", "tq-f32" },  { "tq-q6_k", "tq-f32" },
        { "tl-f16", "tl-f32" },     { "tl-q8_0", "tl-f32" },    { "tl-q4_k_m", "tl-f32" },
        { "td-q8_0", "td-f32" },
    };
    char path[2][512], err[256];
    int seen[QUANT_TYPE_COUNT] = { 0 }, q8_checked = 0, exact_checked = 0;
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        struct gguf *g[2] = { NULL, NULL };
        for (int k = 0; k < 2; k++) {
            snprintf(path[k], sizeof path[k], "models/%s.gguf", pairs[p][k]);
            snprintf(path[k], sizeof path[k], "%s", fx_path(path[k]));
            if (gguf_open(path[k], &g[k], err, sizeof err) != 0) {
                gguf_close(g[0]);
                print_message("skipped: %s\n", err);
                skip();
            }
        }
        for (int64_t i = 0; i < gguf_n_tensors(g[0]); i++) {
            const struct gguf_tensor *t = gguf_tensor(g[0], i);
            const struct gguf_tensor *r = gguf_find_tensor(g[1], t->name);
            if (t->type == QUANT_TYPE_F32)
                continue;
            double bound = file_bound(t->type);
            if (!r || r->type != QUANT_TYPE_F32 || r->n_elements != t->n_elements || bound < 0)
                fail_msg("case %s %s: no F32 twin or no bound", pairs[p][0], t->name);
            float *a = xcalloc((size_t)t->n_elements * sizeof(float));
            quant_traits(t->type)->dequantize(t->data, a, t->n_elements);
            const float *x = r->data;
            double e = 0, s = 0;
            for (int64_t j = 0; j < t->n_elements; j++) {
                e += ((double)a[j] - x[j]) * ((double)a[j] - x[j]);
                s += (double)x[j] * x[j];
            }
            if (sqrt(e / s) > bound)
                fail_msg("case %s %s (%s): rmse %.5g > %.5g", pairs[p][0], t->name,
                         quant_type_name(t->type), sqrt(e / s), bound);
            if (t->type == QUANT_TYPE_Q8_0)
                check_q8_0_against_file(t->name, x, t->data, t->n_elements, &q8_checked);
            if (exact_as_llama(t->type)) {
                /* ggml's scalar quantizers for these have no search: ours
                 * must reproduce llama-quantize byte for byte */
                unsigned char *mine = xcalloc(t->size);
                quant_traits(t->type)->quantize(x, mine, t->n_elements);
                if (memcmp(mine, t->data, t->size) != 0)
                    fail_msg("case %s %s (%s): quantize differs from llama-quantize", pairs[p][0],
                             t->name, quant_type_name(t->type));
                free(mine);
                exact_checked++;
            }
            seen[t->type]++;
            free(a);
        }
        gguf_close(g[0]);
        gguf_close(g[1]);
    }
    /* every weight type llama.cpp wrote must have been met at least once */
    for (size_t i = 0; i < sizeof file_bounds / sizeof file_bounds[0]; i++)
        if (!seen[file_bounds[i].t])
            fail_msg("case %s: no tensor of this type in the files", quant_type_name(file_bounds[i].t));
    assert_true(q8_checked > 0);
    assert_true(exact_checked > 0);
}

/* ---- portable kernels ---------------------------------------------------- */

static void test_cpu_ref_gemm_matches_dot_layout(void **state)
{
    (void)state;
    struct cpu_kernels k;
    memset(&k, 0, sizeof k);
    cpu_ref_fill(&k);
    assert_int_equal(k.isa, CPU_ISA_PORTABLE);
    assert_string_equal(k.isa_name, "portable");
    assert_non_null(k.quantize[QUANT_TYPE_F32]);
    assert_non_null(k.quantize[QUANT_TYPE_Q8_0]);
    assert_non_null(k.quantize[QUANT_TYPE_Q8_1]);
    assert_non_null(k.quantize[QUANT_TYPE_Q8_K]);

    const int n = 512, nr = 3, nc = 2;
    const size_t ldy = 5;
    uint64_t seed = 42;
    float *src = xcalloc((size_t)n * sizeof(float));
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        enum quant_type t = all_types[ti];
        const struct quant_traits *tr = quant_traits(t);
        if (!k.gemm[t])
            fail_msg("case %s: no gemm", tr->name);
        size_t wrb = quant_row_bytes(t, n), xrb = quant_row_bytes(tr->vec_dot_type, n);
        size_t ws = wrb + 16, xs = xrb + 8;   /* strides with padding */
        unsigned char *w = xcalloc(ws * nr), *x = xcalloc(xs * nc);
        for (int r = 0; r < nr; r++) {
            for (int i = 0; i < n; i++)
                src[i] = rng_gauss(&seed);
            tr->quantize(src, w + r * ws, n);
        }
        for (int c = 0; c < nc; c++) {
            for (int i = 0; i < n; i++)
                src[i] = rng_gauss(&seed);
            k.quantize[tr->vec_dot_type](src, x + c * xs, n);
        }
        float y[10];
        for (int i = 0; i < 10; i++)
            y[i] = -999.0f;
        k.gemm[t](n, nr, nc, w, ws, x, xs, y, ldy);
        for (int c = 0; c < nc; c++)
            for (size_t r = 0; r < ldy; r++) {
                float got = y[c * ldy + r];
                if ((int)r >= nr) {
                    if (got != -999.0f)
                        fail_msg("case %s: wrote padding y[%zu]", tr->name, c * ldy + r);
                    continue;
                }
                float want = tr->dot(n, w + r * ws, x + c * xs);
                if (got != want)
                    fail_msg("case %s: y[%d][%zu] = %g, want %g", tr->name, c, r, got, want);
            }
        free(w);
        free(x);
    }
    /* the F32 "quantizer" is a copy */
    float in[4] = { 1, -2, 3.5f, 1e-30f }, out[4];
    k.quantize[QUANT_TYPE_F32](in, out, 4);
    assert_memory_equal(in, out, sizeof in);
    free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traits_table_rows_match_ggml),
        cmocka_unit_test(test_traits_unknown_types_are_rejected),
        cmocka_unit_test(test_row_bytes_needs_whole_blocks),
        cmocka_unit_test(test_f16_from_f32_rounds_to_nearest_even),
        cmocka_unit_test(test_f16_to_f32_is_exact),
        cmocka_unit_test(test_f16_round_trip_every_value),
        cmocka_unit_test(test_f16_rounding_matches_exact_arithmetic),
        cmocka_unit_test(test_bf16_rounds_to_nearest_even),
        cmocka_unit_test(test_dequantize_float_types_by_hand),
        cmocka_unit_test(test_dequantize_q4_q5_by_hand),
        cmocka_unit_test(test_dequantize_q8_by_hand),
        cmocka_unit_test(test_dequantize_q2_k_by_hand),
        cmocka_unit_test(test_dequantize_q3_k_by_hand),
        cmocka_unit_test(test_dequantize_q4_k_by_hand),
        cmocka_unit_test(test_dequantize_q5_k_by_hand),
        cmocka_unit_test(test_dequantize_q6_k_by_hand),
        cmocka_unit_test(test_q8_0_quantize_exact_bytes),
        cmocka_unit_test(test_q8_k_quantize_exact_bytes),
        cmocka_unit_test(test_quantize_round_trip_and_dot_within_bounds),
        cmocka_unit_test(test_quantize_degenerate_rows_stay_finite),
        cmocka_unit_test(test_quantize_nonfinite_input_is_defined),
        cmocka_unit_test(test_llama_quantized_files_agree),
        cmocka_unit_test(test_cpu_ref_gemm_matches_dot_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
