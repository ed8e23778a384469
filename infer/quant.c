/* The quant traits table and the portable reference code for every GGUF type
 * ponder reads: f16/bf16 conversion, dequantize, quantize and dot products
 * against the activation formats, written from ggml's block layouts. */
#include <math.h>
#include <string.h>

#include "infer/ckd.h"
#include "infer/quant.h"

/* ---- scalar conversions ------------------------------------------------ */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float quant_f16_to_f32(quant_f16 h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;

    if (exp == 0x1f)   /* inf, NaN (payload kept, quiet bit included) */
        return bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        if (mant == 0)
            return bits_f32(sign);
        /* subnormal: mant * 2^-24, normalise so bit 10 is the implicit one */
        int e = 1;
        while (!(mant & 0x400)) {
            mant <<= 1;
            e--;
        }
        mant &= 0x3ff;
        return bits_f32(sign | ((uint32_t)(e + 112) << 23) | (mant << 13));
    }
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

quant_f16 quant_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffff;

    if (ax > 0x7f800000u)   /* NaN: keep the top payload bits, force quiet */
        return (quant_f16)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
    if (ax >= 0x477ff000u)  /* >= 65520 (the tie above 65504) rounds to inf */
        return (quant_f16)(sign | 0x7c00);
    if (ax < 0x38800000u) { /* below 2^-14: a half subnormal or zero */
        uint32_t e = ax >> 23;
        if (e == 0)
            return (quant_f16)sign;          /* f32 subnormal: far below 2^-25 */
        uint32_t m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;            /* value / 2^-24 = m >> shift */
        if (shift > 24)
            return (quant_f16)sign;          /* < 2^-25: rounds to zero */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1)))
            r++;
        return (quant_f16)(sign | r);        /* r == 0x400 is the smallest normal */
    }
    uint32_t r = (ax - 0x38000000u) >> 13;   /* rebias 127 -> 15 */
    uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1)))
        r++;                                 /* a carry moves into the exponent */
    return (quant_f16)(sign | r);
}

float quant_bf16_to_f32(quant_bf16 h)
{
    return bits_f32((uint32_t)h << 16);
}

quant_bf16 quant_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000u)
        return (quant_bf16)((x >> 16) | 0x40);   /* NaN stays NaN, quiet */
    return (quant_bf16)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

#define F16(h) quant_f16_to_f32(h)

/* Float to int without undefined behaviour on NaN, inf or huge values (which
 * only bad input produces): NaN gives 0, the rest is clamped to +-2^30. */
static float int_range(float v)
{
    if (isnan(v))
        return 0;
    return v > 1073741824.0f ? 1073741824.0f : v < -1073741824.0f ? -1073741824.0f : v;
}

/* Round to nearest, ties to even, in the default floating-point environment:
 * what ggml's nearest_int() and _mm256_round_ps(_MM_ROUND_NEAREST) do. */
static int nearest_int(float v)
{
    return (int)rintf(int_range(v));
}

/* Truncation toward zero, as ggml's (int8_t)(x*id + 8.5f) casts do. */
static int trunc_int(float v)
{
    return (int)int_range(v);
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---- F32, F16, BF16 ---------------------------------------------------- */

static void deq_f32(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void enc_f32(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static float dot_f32(int64_t n, const void *w, const void *x)
{
    const float *a = w, *b = x;
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return (float)s;
}

static void deq_f16(const void *src, float *dst, int64_t n)
{
    const quant_f16 *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = F16(h[i]);
}

static void enc_f16(const float *src, void *dst, int64_t n)
{
    quant_f16 *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = quant_f32_to_f16(src[i]);
}

static float dot_f16(int64_t n, const void *w, const void *x)
{
    const quant_f16 *a = w;
    const float *b = x;
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)F16(a[i]) * b[i];
    return (float)s;
}

static void deq_bf16(const void *src, float *dst, int64_t n)
{
    const quant_bf16 *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = quant_bf16_to_f32(h[i]);
}

static void enc_bf16(const float *src, void *dst, int64_t n)
{
    quant_bf16 *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = quant_f32_to_bf16(src[i]);
}

static float dot_bf16(int64_t n, const void *w, const void *x)
{
    const quant_bf16 *a = w;
    const float *b = x;
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)quant_bf16_to_f32(a[i]) * b[i];
    return (float)s;
}

/* ---- Q4_0, Q4_1, Q5_0, Q5_1 -------------------------------------------- */

/* The value of largest magnitude, with its sign (the first one on a tie). */
static float signed_absmax(const float *x, int n)
{
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void deq_q4_0(const void *src, float *dst, int64_t n)
{
    const struct block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        float d = F16(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[j] = ((b[i].qs[j] & 0xf) - 8) * d;
            dst[j + QK4_0 / 2] = ((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

/* Round to nearest with the largest-magnitude value at -8 (ggml's scheme). */
static void enc_q4_0(const float *src, void *dst, int64_t n)
{
    struct block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / QK4_0; i++, src += QK4_0) {
        float d = signed_absmax(src, QK4_0) / -8;
        float id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = quant_f32_to_f16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            int q0 = clampi(trunc_int(src[j] * id + 8.5f), 0, 15);
            int q1 = clampi(trunc_int(src[j + QK4_0 / 2] * id + 8.5f), 0, 15);
            b[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

static float dot_q4_0(int64_t n, const void *w, const void *x)
{
    const struct block_q4_0 *a = w;
    const struct block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        int32_t sum = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            sum += ((a[i].qs[j] & 0xf) - 8) * b[i].qs[j];
            sum += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + QK4_0 / 2];
        }
        s += (float)sum * (F16(a[i].d) * F16(b[i].d));
    }
    return s;
}

static void deq_q4_1(const void *src, float *dst, int64_t n)
{
    const struct block_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1) {
        float d = F16(b[i].d), m = F16(b[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            dst[j] = (b[i].qs[j] & 0xf) * d + m;
            dst[j + QK4_1 / 2] = (b[i].qs[j] >> 4) * d + m;
        }
    }
}

static void block_minmax(const float *x, int n, float *mn, float *mx)
{
    *mn = x[0];
    *mx = x[0];
    for (int j = 1; j < n; j++) {
        if (x[j] < *mn)
            *mn = x[j];
        if (x[j] > *mx)
            *mx = x[j];
    }
}

static void enc_q4_1(const float *src, void *dst, int64_t n)
{
    struct block_q4_1 *b = dst;
    for (int64_t i = 0; i < n / QK4_1; i++, src += QK4_1) {
        float mn, mx;
        block_minmax(src, QK4_1, &mn, &mx);
        float d = (mx - mn) / 15;
        float id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = quant_f32_to_f16(d);
        b[i].m = quant_f32_to_f16(mn);
        for (int j = 0; j < QK4_1 / 2; j++) {
            int q0 = clampi(trunc_int((src[j] - mn) * id + 0.5f), 0, 15);
            int q1 = clampi(trunc_int((src[j + QK4_1 / 2] - mn) * id + 0.5f), 0, 15);
            b[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

static float dot_q4_1(int64_t n, const void *w, const void *x)
{
    const struct block_q4_1 *a = w;
    const struct block_q8_1 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        int32_t sum = 0;
        for (int j = 0; j < QK4_1 / 2; j++) {
            sum += (a[i].qs[j] & 0xf) * b[i].qs[j];
            sum += (a[i].qs[j] >> 4) * b[i].qs[j + QK4_1 / 2];
        }
        s += (float)sum * (F16(a[i].d) * F16(b[i].d)) + F16(a[i].m) * F16(b[i].s);
    }
    return s;
}

static uint32_t load_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void store_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* The 5-bit values of a Q5_0/Q5_1 block: nibble j plus bit j of qh. */
static void q5_unpack(const uint8_t *qs, const uint8_t qh4[4], int q[32])
{
    uint32_t qh = load_u32(qh4);
    for (int j = 0; j < 16; j++) {
        q[j] = (qs[j] & 0xf) | (int)((qh >> j) & 1) << 4;
        q[j + 16] = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
    }
}

static void q5_pack(const int q[32], uint8_t *qs, uint8_t qh4[4])
{
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0xf) | (q[j + 16] & 0xf) << 4);
        qh |= (uint32_t)(q[j] >> 4 & 1) << j;
        qh |= (uint32_t)(q[j + 16] >> 4 & 1) << (j + 16);
    }
    store_u32(qh4, qh);
}

static void deq_q5_0(const void *src, float *dst, int64_t n)
{
    const struct block_q5_0 *b = src;
    int q[32];
    for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
        float d = F16(b[i].d);
        q5_unpack(b[i].qs, b[i].qh, q);
        for (int j = 0; j < QK5_0; j++)
            dst[j] = (q[j] - 16) * d;
    }
}

static void enc_q5_0(const float *src, void *dst, int64_t n)
{
    struct block_q5_0 *b = dst;
    int q[32];
    for (int64_t i = 0; i < n / QK5_0; i++, src += QK5_0) {
        float d = signed_absmax(src, QK5_0) / -16;
        float id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = quant_f32_to_f16(d);
        for (int j = 0; j < QK5_0; j++)
            q[j] = clampi(trunc_int(src[j] * id + 16.5f), 0, 31);
        q5_pack(q, b[i].qs, b[i].qh);
    }
}

static float dot_q5_0(int64_t n, const void *w, const void *x)
{
    const struct block_q5_0 *a = w;
    const struct block_q8_0 *b = x;
    int q[32];
    float s = 0;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        q5_unpack(a[i].qs, a[i].qh, q);
        int32_t sum = 0;
        for (int j = 0; j < QK5_0; j++)
            sum += (q[j] - 16) * b[i].qs[j];
        s += (float)sum * (F16(a[i].d) * F16(b[i].d));
    }
    return s;
}

static void deq_q5_1(const void *src, float *dst, int64_t n)
{
    const struct block_q5_1 *b = src;
    int q[32];
    for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
        float d = F16(b[i].d), m = F16(b[i].m);
        q5_unpack(b[i].qs, b[i].qh, q);
        for (int j = 0; j < QK5_1; j++)
            dst[j] = q[j] * d + m;
    }
}

static void enc_q5_1(const float *src, void *dst, int64_t n)
{
    struct block_q5_1 *b = dst;
    int q[32];
    for (int64_t i = 0; i < n / QK5_1; i++, src += QK5_1) {
        float mn, mx;
        block_minmax(src, QK5_1, &mn, &mx);
        float d = (mx - mn) / 31;
        float id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = quant_f32_to_f16(d);
        b[i].m = quant_f32_to_f16(mn);
        for (int j = 0; j < QK5_1; j++)
            q[j] = clampi(trunc_int((src[j] - mn) * id + 0.5f), 0, 31);
        q5_pack(q, b[i].qs, b[i].qh);
    }
}

static float dot_q5_1(int64_t n, const void *w, const void *x)
{
    const struct block_q5_1 *a = w;
    const struct block_q8_1 *b = x;
    int q[32];
    float s = 0;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        q5_unpack(a[i].qs, a[i].qh, q);
        int32_t sum = 0;
        for (int j = 0; j < QK5_1; j++)
            sum += q[j] * b[i].qs[j];
        s += (float)sum * (F16(a[i].d) * F16(b[i].d)) + F16(a[i].m) * F16(b[i].s);
    }
    return s;
}

/* ---- Q8_0, Q8_1: the activation formats of the 32-blocks -----------------
 * As llama.cpp's CPU backend makes them on x86 (the path that produced the
 * reference data): d = amax/127 stored as f16, q = x * (127/amax) rounded to
 * nearest with ties to even.  ggml's scalar quantize_row_q8_0_ref multiplies
 * by 1/d and uses roundf instead; the two differ only at exact ties and in
 * the last bit of the multiplier. */

static float q8_block(const float *x, int8_t *q, int32_t *sum)
{
    float amax = 0;
    for (int j = 0; j < 32; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f;
    float id = amax != 0 ? 127.0f / amax : 0.0f;
    int32_t s = 0;
    for (int j = 0; j < 32; j++) {
        int v = clampi(nearest_int(x[j] * id), -128, 127);
        q[j] = (int8_t)v;
        s += v;
    }
    *sum = s;
    return d;
}

static void deq_q8_0(const void *src, float *dst, int64_t n)
{
    const struct block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        float d = F16(b[i].d);
        for (int j = 0; j < QK8_0; j++)
            dst[j] = b[i].qs[j] * d;
    }
}

static void enc_q8_0(const float *src, void *dst, int64_t n)
{
    struct block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        int32_t sum;
        b[i].d = quant_f32_to_f16(q8_block(src, b[i].qs, &sum));
    }
}

static float dot_q8_0(int64_t n, const void *w, const void *x)
{
    const struct block_q8_0 *a = w;
    const struct block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int32_t sum = 0;
        for (int j = 0; j < QK8_0; j++)
            sum += a[i].qs[j] * b[i].qs[j];
        s += (float)sum * (F16(a[i].d) * F16(b[i].d));
    }
    return s;
}

static void deq_q8_1(const void *src, float *dst, int64_t n)
{
    const struct block_q8_1 *b = src;
    for (int64_t i = 0; i < n / QK8_1; i++, dst += QK8_1) {
        float d = F16(b[i].d);
        for (int j = 0; j < QK8_1; j++)
            dst[j] = b[i].qs[j] * d;
    }
}

static void enc_q8_1(const float *src, void *dst, int64_t n)
{
    struct block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        int32_t sum;
        float d = q8_block(src, b[i].qs, &sum);
        b[i].d = quant_f32_to_f16(d);
        b[i].s = quant_f32_to_f16(d * (float)sum);   /* the unrounded d, as ggml */
    }
}

static float dot_q8_1(int64_t n, const void *w, const void *x)
{
    const struct block_q8_1 *a = w;
    const struct block_q8_1 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int32_t sum = 0;
        for (int j = 0; j < QK8_1; j++)
            sum += a[i].qs[j] * b[i].qs[j];
        s += (float)sum * (F16(a[i].d) * F16(b[i].d));
    }
    return s;
}

/* ---- Q8_K: the activation format of the K-quants -------------------------
 * ggml's quantize_row_q8_K_ref: the element of largest magnitude (the first
 * one on a tie) maps to -127, iscale = -127/max, q = nearest (ties to even),
 * at most 127, d = 1/iscale as a float; bsums are the sums of 16 quants. */

static void deq_q8_k(const void *src, float *dst, int64_t n)
{
    const struct block_q8_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K)
        for (int j = 0; j < QK_K; j++)
            dst[j] = b[i].d * b[i].qs[j];
}

static void enc_q8_k(const float *src, void *dst, int64_t n)
{
    struct block_q8_k *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float max = signed_absmax(src, QK_K);
        if (max == 0) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            int v = nearest_int(iscale * src[j]);
            b[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += b[i].qs[j * 16 + l];
            b[i].bsums[j] = (int16_t)sum;
        }
        b[i].d = 1 / iscale;
    }
}

static float dot_q8_k(int64_t n, const void *w, const void *x)
{
    const struct block_q8_k *a = w;
    const struct block_q8_k *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t sum = 0;
        for (int j = 0; j < QK_K; j++)
            sum += a[i].qs[j] * b[i].qs[j];
        s += (float)sum * (a[i].d * b[i].d);
    }
    return s;
}

/* ---- K-quant helpers ----------------------------------------------------- */

/* Value v of a super-block sits, for the 2-bit fields of Q2_K/Q3_K, in
 * qs[32*(v/128) + v%32] at bit 2*((v%128)/32); Q3_K's high bit and Q5_K's
 * fifth bit in byte v%32 at bit v/32; Q4_K/Q5_K nibbles 64 values per 32
 * bytes, low nibbles first.  The unpackers write the integer values of a
 * whole super-block; dequantize and dot both read them. */
static void k2_unpack(const uint8_t *qs, int8_t q[QK_K])
{
    for (int g = 0; g < 2; g++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++)
                q[128 * g + 32 * k + l] = (int8_t)(qs[32 * g + l] >> (2 * k) & 3);
}

static void k2_set(uint8_t *qs, int v, int q)
{
    qs[32 * (v / 128) + v % 32] |= (uint8_t)((q & 3) << (2 * ((v % 128) / 32)));
}

/* Adds `add` to value v wherever bit v/32 of bits[v%32] is `when`. */
static void kbit_add(const uint8_t bits[32], int when, int add, int8_t q[QK_K])
{
    for (int k = 0; k < 8; k++)
        for (int l = 0; l < 32; l++)
            if ((bits[l] >> k & 1) == when)
                q[32 * k + l] = (int8_t)(q[32 * k + l] + add);
}

static void k4_unpack(const uint8_t *qs, int8_t q[QK_K])
{
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (int8_t)(qs[32 * c + l] & 0xf);
            q[64 * c + 32 + l] = (int8_t)(qs[32 * c + l] >> 4);
        }
}

static void k4_set(uint8_t *qs, int v, int q)
{
    qs[32 * (v / 64) + v % 32] |= (uint8_t)((v % 64) < 32 ? (q & 0xf) : (q & 0xf) << 4);
}

/* Q4_K/Q5_K: 8 scales and 8 mins of 6 bits in 12 bytes (ggml's
 * get_scale_min_k4): j < 4 in the low 6 bits of bytes j and j+4; j >= 4 as a
 * nibble of byte j+4 plus the top 2 bits of bytes j-4 and j. */
static void k4_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

static void k4_pack_scales(const int sc[8], const int m[8], uint8_t s[12])
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)((m[j] & 63) | (m[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 0xf) | (m[j + 4] & 0xf) << 4);
    }
}

/* Q3_K: 16 scales of 6 bits (stored +32): the low nibbles in bytes 0..7
 * (j < 8 low nibble of byte j, j >= 8 high nibble of byte j-8), the top
 * two bits in byte 8 + j%4 at bit 2*(j/4). */
static int k3_scale(const uint8_t *s, int j)
{
    int lo = j < 8 ? (s[j] & 0xf) : (s[j - 8] >> 4);
    int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | hi << 4) - 32;
}

static void k3_pack_scales(const int sc[16], uint8_t s[12])
{
    memset(s, 0, 12);
    for (int j = 0; j < 16; j++) {
        int u = sc[j] + 32;
        s[j % 8] |= (uint8_t)(j < 8 ? (u & 0xf) : (u & 0xf) << 4);
        s[8 + j % 4] |= (uint8_t)(((u >> 4) & 3) << (2 * (j / 4)));
    }
}

/* Q6_K: value v, r = v%128, quarter k = r/32, l = r%32: low nibble in
 * ql[64*(v/128) + l + 32*(k&1)], the low half for k < 2 and the high half
 * above; top two bits in qh[32*(v/128) + l] at bit 2k.  Unpacked as q - 32. */
static void k6_unpack(const uint8_t *ql, const uint8_t *qh, int8_t q[QK_K])
{
    for (int g = 0; g < 2; g++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                uint8_t lb = ql[64 * g + l + 32 * (k & 1)];
                int lo = k < 2 ? (lb & 0xf) : (lb >> 4);
                int hi = qh[32 * g + l] >> (2 * k) & 3;
                q[128 * g + 32 * k + l] = (int8_t)((lo | hi << 4) - 32);
            }
}

static void k6_set(uint8_t *ql, uint8_t *qh, int v, int q)
{
    int g = v / 128, r = v % 128, l = r % 32, k = r / 32;
    ql[64 * g + l + 32 * (k & 1)] |= (uint8_t)(k < 2 ? (q & 0xf) : (q & 0xf) << 4);
    qh[32 * g + l] |= (uint8_t)(((q >> 4) & 3) << (2 * k));
}

/* Affine sub-block fit for the quantizers with mins: x ~ q*scale - min with
 * q in [0, qmax], min >= 0 (ggml clamps the block minimum at zero). */
static void fit_affine(const float *x, int n, int qmax, float *scale, float *min)
{
    float mn, mx;
    block_minmax(x, n, &mn, &mx);
    if (mn > 0)
        mn = 0;
    *scale = (mx - mn) / (float)qmax;
    *min = -mn;
}

/* ---- Q2_K ---------------------------------------------------------------- */

static void deq_q2_k(const void *src, float *dst, int64_t n)
{
    const struct block_q2_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        float d = F16(b[i].d), dmin = F16(b[i].dmin);
        int8_t q[QK_K];
        k2_unpack(b[i].qs, q);
        for (int v = 0; v < QK_K; v++) {
            uint8_t sc = b[i].scales[v / 16];
            dst[v] = d * (sc & 0xf) * q[v] - dmin * (sc >> 4);
        }
    }
}

static void enc_q2_k(const float *src, void *dst, int64_t n)
{
    struct block_q2_k *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float scale[16], min[16], max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            fit_affine(src + 16 * j, 16, 3, &scale[j], &min[j]);
            max_scale = fmaxf(max_scale, scale[j]);
            max_min = fmaxf(max_min, min[j]);
        }
        memset(&b[i], 0, sizeof b[i]);
        b[i].d = quant_f32_to_f16(max_scale / 15);
        b[i].dmin = quant_f32_to_f16(max_min / 15);
        float d = F16(b[i].d), dmin = F16(b[i].dmin);
        for (int j = 0; j < 16; j++) {
            int ls = d > 0 ? clampi(nearest_int(scale[j] / d), 0, 15) : 0;
            int lm = dmin > 0 ? clampi(nearest_int(min[j] / dmin), 0, 15) : 0;
            b[i].scales[j] = (uint8_t)(ls | lm << 4);
            float dl = d * ls, ml = dmin * lm;
            for (int l = 0; l < 16; l++) {
                int v = 16 * j + l;
                int q = dl > 0 ? clampi(nearest_int((src[v] + ml) / dl), 0, 3) : 0;
                k2_set(b[i].qs, v, q);
            }
        }
    }
}

static float dot_q2_k(int64_t n, const void *w, const void *x)
{
    const struct block_q2_k *a = w;
    const struct block_q8_k *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t isum = 0, msum = 0;
        int8_t q[QK_K];
        k2_unpack(a[i].qs, q);
        for (int j = 0; j < 16; j++) {
            int32_t sub = 0;
            for (int l = 0; l < 16; l++)
                sub += q[16 * j + l] * b[i].qs[16 * j + l];
            isum += (a[i].scales[j] & 0xf) * sub;
            msum += (a[i].scales[j] >> 4) * b[i].bsums[j];
        }
        s += b[i].d * F16(a[i].d) * (float)isum - b[i].d * F16(a[i].dmin) * (float)msum;
    }
    return s;
}

/* ---- Q3_K ---------------------------------------------------------------- */

/* Q3_K values: the 2 low bits, minus 4 where the hmask bit is clear. */
static void q3k_unpack(const struct block_q3_k *b, int8_t q[QK_K])
{
    k2_unpack(b->qs, q);
    kbit_add(b->hmask, 0, -4, q);
}

static void deq_q3_k(const void *src, float *dst, int64_t n)
{
    const struct block_q3_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        float d = F16(b[i].d);
        int8_t q[QK_K];
        q3k_unpack(&b[i], q);
        for (int v = 0; v < QK_K; v++)
            dst[v] = d * k3_scale(b[i].scales, v / 16) * q[v];
    }
}

static void enc_q3_k(const float *src, void *dst, int64_t n)
{
    struct block_q3_k *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float scale[16];
        for (int j = 0; j < 16; j++)
            scale[j] = signed_absmax(src + 16 * j, 16) / -4;   /* the extreme at -4 */
        float d = signed_absmax(scale, 16) / -32;
        memset(&b[i], 0, sizeof b[i]);
        b[i].d = quant_f32_to_f16(d);
        float df = F16(b[i].d);
        int ls[16];
        for (int j = 0; j < 16; j++)
            ls[j] = df != 0 ? clampi(nearest_int(scale[j] / df), -32, 31) : 0;
        k3_pack_scales(ls, b[i].scales);
        for (int v = 0; v < QK_K; v++) {
            float dl = df * ls[v / 16];
            int q = dl != 0 ? clampi(nearest_int(src[v] / dl), -4, 3) : 0;
            q += 4;
            k2_set(b[i].qs, v, q);
            if (q & 4)
                b[i].hmask[v % 32] |= (uint8_t)(1u << (v / 32));
        }
    }
}

static float dot_q3_k(int64_t n, const void *w, const void *x)
{
    const struct block_q3_k *a = w;
    const struct block_q8_k *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t isum = 0;
        int8_t q[QK_K];
        q3k_unpack(&a[i], q);
        for (int j = 0; j < 16; j++) {
            int32_t sub = 0;
            for (int l = 0; l < 16; l++)
                sub += q[16 * j + l] * b[i].qs[16 * j + l];
            isum += k3_scale(a[i].scales, j) * sub;
        }
        s += F16(a[i].d) * b[i].d * (float)isum;
    }
    return s;
}

/* ---- Q4_K, Q5_K ------------------------------------------------------------ */

static void deq_q4_k(const void *src, float *dst, int64_t n)
{
    const struct block_q4_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        float d = F16(b[i].d), dmin = F16(b[i].dmin);
        int8_t q[QK_K];
        k4_unpack(b[i].qs, q);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            k4_scale_min(b[i].scales, j, &sc, &m);
            for (int l = 0; l < 32; l++)
                dst[32 * j + l] = d * sc * q[32 * j + l] - dmin * m;
        }
    }
}

/* Q4_K and Q5_K share the scale fit: 8 sub-blocks of 32, scales and mins of
 * 6 bits, values of 4 or 5 bits (qmax 15 or 31) written into q[256]. */
static void enc_k45(const float *src, int qmax, quant_f16 *dp, quant_f16 *dminp,
                      uint8_t scales[12], int q[QK_K])
{
    float scale[8], min[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        fit_affine(src + 32 * j, 32, qmax, &scale[j], &min[j]);
        max_scale = fmaxf(max_scale, scale[j]);
        max_min = fmaxf(max_min, min[j]);
    }
    *dp = quant_f32_to_f16(max_scale / 63);
    *dminp = quant_f32_to_f16(max_min / 63);
    float d = F16(*dp), dmin = F16(*dminp);
    int ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = d > 0 ? clampi(nearest_int(scale[j] / d), 0, 63) : 0;
        lm[j] = dmin > 0 ? clampi(nearest_int(min[j] / dmin), 0, 63) : 0;
        float dl = d * ls[j], ml = dmin * lm[j];
        for (int l = 0; l < 32; l++) {
            int v = 32 * j + l;
            q[v] = dl > 0 ? clampi(nearest_int((src[v] + ml) / dl), 0, qmax) : 0;
        }
    }
    k4_pack_scales(ls, lm, scales);
}

static void enc_q4_k(const float *src, void *dst, int64_t n)
{
    struct block_q4_k *b = dst;
    int q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        memset(&b[i], 0, sizeof b[i]);
        enc_k45(src, 15, &b[i].d, &b[i].dmin, b[i].scales, q);
        for (int v = 0; v < QK_K; v++)
            k4_set(b[i].qs, v, q[v]);
    }
}

/* Sum over 8 sub-blocks of min * (sum of the activations), from bsums. */
static int32_t k4_minsum(const uint8_t *scales, const struct block_q8_k *b)
{
    int32_t msum = 0;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        k4_scale_min(scales, j, &sc, &m);
        msum += m * (b->bsums[2 * j] + b->bsums[2 * j + 1]);
    }
    return msum;
}

static float dot_q4_k(int64_t n, const void *w, const void *x)
{
    const struct block_q4_k *a = w;
    const struct block_q8_k *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t isum = 0;
        int8_t q[QK_K];
        k4_unpack(a[i].qs, q);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            k4_scale_min(a[i].scales, j, &sc, &m);
            int32_t sub = 0;
            for (int l = 0; l < 32; l++)
                sub += q[32 * j + l] * b[i].qs[32 * j + l];
            isum += sc * sub;
        }
        int32_t msum = k4_minsum(a[i].scales, &b[i]);
        s += b[i].d * F16(a[i].d) * (float)isum - b[i].d * F16(a[i].dmin) * (float)msum;
    }
    return s;
}

/* Q5_K values: the nibbles plus 16 where the qh bit is set. */
static void q5k_unpack(const struct block_q5_k *b, int8_t q[QK_K])
{
    k4_unpack(b->qs, q);
    kbit_add(b->qh, 1, 16, q);
}

static void deq_q5_k(const void *src, float *dst, int64_t n)
{
    const struct block_q5_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        float d = F16(b[i].d), dmin = F16(b[i].dmin);
        int8_t q[QK_K];
        q5k_unpack(&b[i], q);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            k4_scale_min(b[i].scales, j, &sc, &m);
            for (int l = 0; l < 32; l++)
                dst[32 * j + l] = d * sc * q[32 * j + l] - dmin * m;
        }
    }
}

static void enc_q5_k(const float *src, void *dst, int64_t n)
{
    struct block_q5_k *b = dst;
    int q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        memset(&b[i], 0, sizeof b[i]);
        enc_k45(src, 31, &b[i].d, &b[i].dmin, b[i].scales, q);
        for (int v = 0; v < QK_K; v++) {
            k4_set(b[i].qs, v, q[v]);
            if (q[v] & 16)
                b[i].qh[v % 32] |= (uint8_t)(1u << (v / 32));
        }
    }
}

static float dot_q5_k(int64_t n, const void *w, const void *x)
{
    const struct block_q5_k *a = w;
    const struct block_q8_k *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t isum = 0;
        int8_t q[QK_K];
        q5k_unpack(&a[i], q);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            k4_scale_min(a[i].scales, j, &sc, &m);
            int32_t sub = 0;
            for (int l = 0; l < 32; l++)
                sub += q[32 * j + l] * b[i].qs[32 * j + l];
            isum += sc * sub;
        }
        int32_t msum = k4_minsum(a[i].scales, &b[i]);
        s += b[i].d * F16(a[i].d) * (float)isum - b[i].d * F16(a[i].dmin) * (float)msum;
    }
    return s;
}

/* ---- Q6_K ---------------------------------------------------------------- */

static void deq_q6_k(const void *src, float *dst, int64_t n)
{
    const struct block_q6_k *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        float d = F16(b[i].d);
        int8_t q[QK_K];
        k6_unpack(b[i].ql, b[i].qh, q);
        for (int v = 0; v < QK_K; v++)
            dst[v] = d * b[i].scales[v / 16] * q[v];
    }
}

static void enc_q6_k(const float *src, void *dst, int64_t n)
{
    struct block_q6_k *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float scale[16];
        for (int j = 0; j < 16; j++)
            scale[j] = signed_absmax(src + 16 * j, 16) / -32;   /* the extreme at -32 */
        float d = signed_absmax(scale, 16) / -128;
        memset(&b[i], 0, sizeof b[i]);
        b[i].d = quant_f32_to_f16(d);
        float df = F16(b[i].d);
        for (int j = 0; j < 16; j++) {
            int ls = df != 0 ? clampi(nearest_int(scale[j] / df), -128, 127) : 0;
            b[i].scales[j] = (int8_t)ls;
            float dl = df * ls;
            for (int l = 0; l < 16; l++) {
                int v = 16 * j + l;
                int q = dl != 0 ? clampi(nearest_int(src[v] / dl), -32, 31) : 0;
                k6_set(b[i].ql, b[i].qh, v, q + 32);
            }
        }
    }
}

static float dot_q6_k(int64_t n, const void *w, const void *x)
{
    const struct block_q6_k *a = w;
    const struct block_q8_k *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t isum = 0;
        int8_t q[QK_K];
        k6_unpack(a[i].ql, a[i].qh, q);
        for (int j = 0; j < 16; j++) {
            int32_t sub = 0;
            for (int l = 0; l < 16; l++)
                sub += q[16 * j + l] * b[i].qs[16 * j + l];
            isum += a[i].scales[j] * sub;
        }
        s += F16(a[i].d) * b[i].d * (float)isum;
    }
    return s;
}

/* ---- the table ------------------------------------------------------------ */

#define ROW(T, nm, bs, blk, vdt, sfx)                                              \
    [QUANT_TYPE_##T] = { .name = nm, .block_size = bs, .block_bytes = blk,        \
                         .vec_dot_type = QUANT_TYPE_##vdt, .dequantize = deq_##sfx, \
                         .quantize = enc_##sfx, .dot = dot_##sfx }

static const struct quant_traits quant_table[QUANT_TYPE_COUNT] = {
    ROW(F32, "F32", 1, sizeof(float), F32, f32),
    ROW(F16, "F16", 1, sizeof(quant_f16), F32, f16),
    ROW(BF16, "BF16", 1, sizeof(quant_bf16), F32, bf16),
    ROW(Q4_0, "Q4_0", QK4_0, sizeof(struct block_q4_0), Q8_0, q4_0),
    ROW(Q4_1, "Q4_1", QK4_1, sizeof(struct block_q4_1), Q8_1, q4_1),
    ROW(Q5_0, "Q5_0", QK5_0, sizeof(struct block_q5_0), Q8_0, q5_0),
    ROW(Q5_1, "Q5_1", QK5_1, sizeof(struct block_q5_1), Q8_1, q5_1),
    ROW(Q8_0, "Q8_0", QK8_0, sizeof(struct block_q8_0), Q8_0, q8_0),
    ROW(Q8_1, "Q8_1", QK8_1, sizeof(struct block_q8_1), Q8_1, q8_1),
    ROW(Q2_K, "Q2_K", QK_K, sizeof(struct block_q2_k), Q8_K, q2_k),
    ROW(Q3_K, "Q3_K", QK_K, sizeof(struct block_q3_k), Q8_K, q3_k),
    ROW(Q4_K, "Q4_K", QK_K, sizeof(struct block_q4_k), Q8_K, q4_k),
    ROW(Q5_K, "Q5_K", QK_K, sizeof(struct block_q5_k), Q8_K, q5_k),
    ROW(Q6_K, "Q6_K", QK_K, sizeof(struct block_q6_k), Q8_K, q6_k),
    ROW(Q8_K, "Q8_K", QK_K, sizeof(struct block_q8_k), Q8_K, q8_k),
};

const struct quant_traits *quant_traits(enum quant_type t)
{
    if ((int)t < 0 || (int)t >= QUANT_TYPE_COUNT || !quant_table[t].name)
        return NULL;
    return &quant_table[t];
}

const char *quant_type_name(enum quant_type t)
{
    const struct quant_traits *tr = quant_traits(t);
    return tr ? tr->name : "?";
}

size_t quant_row_bytes(enum quant_type t, int64_t n)
{
    const struct quant_traits *tr = quant_traits(t);
    size_t bytes;
    if (!tr || n < 0 || n % tr->block_size != 0)
        return 0;
    if ((uint64_t)n > SIZE_MAX ||
        ckd_mul_size(&bytes, (size_t)(n / tr->block_size), tr->block_bytes))
        return 0;
    return bytes;
}
