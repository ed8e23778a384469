/* AVX2 + FMA + F16C kernels for every weight type and the activation
 * quantizers, for CPUs without AVX-512 (Haswell, Zen 1-3).  No AVX-512 or VNNI
 * instruction may appear here: this file is compiled with -mavx2 -mfma -mf16c. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "cpu.h"

/* nc == 1 (token generation) is memory bound: each row is streamed once,
 * accumulated in vector registers and reduced once.  nc > 1 (prompt) is
 * compute bound: tiles of RM rows x RN columns, where one unpacked weight
 * block serves RN columns and one activation block RM rows.  Tile loops run
 * over constant bounds after inlining, so the accumulators stay in registers
 * (TILE_MAX x TILE_MAXC bounds the arrays; the drivers pick the shapes). */
#define AI static inline __attribute__((always_inline))
#define TILE_MAX 4
#define TILE_MAXC 16

AI float hsum_ps(__m256 v)
{
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

AI float f16_to_f32(quant_f16 h)
{
    return _cvtsh_ss(h);
}

AI float bf16_to_f32(quant_bf16 h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Byte i of the result is 0xff when bit i of bits is set, else 0. */
AI __m256i bits_to_bytes(uint32_t bits)
{
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i sel = _mm256_set1_epi64x(0x8040201008040201LL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, sel), sel);
}

/* 16 packed nibbles: low nibbles in bytes 0-15, high nibbles in 16-31. */
AI __m256i nibbles(const uint8_t *qs)
{
    __m128i b = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

/* ---- F32, F16, BF16 weights with F32 activations ---------------------- */

enum fkind { FK_F32, FK_F16, FK_BF16 };

AI __m256 f_load8(enum fkind k, const void *row, int64_t i)
{
    if (k == FK_F32)
        return _mm256_loadu_ps((const float *)row + i);
    if (k == FK_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)));
    __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}

AI float f_load1(enum fkind k, const void *row, int64_t i)
{
    if (k == FK_F32) {
        float f;
        memcpy(&f, (const float *)row + i, sizeof f);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const uint16_t *)row + i, sizeof h);
    return k == FK_F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

AI void f_tile(enum fkind k, const int RM, const int RN, int64_t n, const uint8_t *w, size_t ws,
               const uint8_t *x, size_t xs, float *y, size_t ldy)
{
    __m256 acc[TILE_MAX][TILE_MAXC];
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 16
        for (int c = 0; c < RN; c++)
            acc[r][c] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 wv[TILE_MAX];
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++)
            wv[r] = f_load8(k, w + r * ws, i);
#pragma GCC unroll 16
        for (int c = 0; c < RN; c++) {
            __m256 xv = _mm256_loadu_ps((const float *)(x + c * xs) + i);
#pragma GCC unroll 4
            for (int r = 0; r < RM; r++)
                acc[r][c] = _mm256_fmadd_ps(wv[r], xv, acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 16
        for (int c = 0; c < RN; c++) {
            float s = hsum_ps(acc[r][c]);
            for (int64_t j = i; j < n; j++)
                s += f_load1(k, w + r * ws, j) * ((const float *)(x + c * xs))[j];
            y[c * ldy + r] = s;
        }
}

/* nc == 1 (ROW): one row after another, so the weights are read as one
 * sequential stream; interleaving several rows' streams cut the DRAM
 * bandwidth the prefetchers reach to a third on Zen 4.  nc > 1 (TILE): row
 * tiles outermost so a tile's weights stay in L1 while every column tile
 * passes over them. */
#define GEMM_DRIVER(TILE, ROW, KIND, MR, NC)                                                \
    do {                                                                                   \
        const uint8_t *w8 = w, *x8 = x;                                                    \
        if (nc == 1) {                                                                     \
            for (int r = 0; r < nr; r++)                                                   \
                ROW(KIND, n, w8 + r * w_stride, x8, y + r);                                \
            return;                                                                        \
        }                                                                                  \
        for (int r = 0; r < nr; r += MR) {                                                 \
            const uint8_t *wr = w8 + r * w_stride;                                         \
            int c = 0;                                                                     \
            if (r + MR <= nr) {                                                            \
                for (; c + NC <= nc; c += NC)                                              \
                    TILE(KIND, MR, NC, n, wr, w_stride, x8 + c * x_stride, x_stride,       \
                         y + c * ldy + r, ldy);                                            \
                for (; NC > 4 && c + 4 <= nc; c += 4)                                      \
                    TILE(KIND, MR, 4, n, wr, w_stride, x8 + c * x_stride, x_stride,        \
                         y + c * ldy + r, ldy);                                            \
                for (; c < nc; c++)                                                        \
                    TILE(KIND, MR, 1, n, wr, w_stride, x8 + c * x_stride, x_stride,        \
                         y + c * ldy + r, ldy);                                            \
            } else {                                                                       \
                for (int rr = r; rr < nr; rr++) {                                          \
                    const uint8_t *w1 = w8 + rr * w_stride;                                \
                    for (c = 0; c + NC <= nc; c += NC)                                     \
                        TILE(KIND, 1, NC, n, w1, w_stride, x8 + c * x_stride, x_stride,    \
                             y + c * ldy + rr, ldy);                                       \
                    for (; NC > 4 && c + 4 <= nc; c += 4)                                  \
                        TILE(KIND, 1, 4, n, w1, w_stride, x8 + c * x_stride, x_stride,     \
                             y + c * ldy + rr, ldy);                                       \
                    for (; c < nc; c++)                                                    \
                        TILE(KIND, 1, 1, n, w1, w_stride, x8 + c * x_stride, x_stride,     \
                             y + c * ldy + rr, ldy);                                       \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* One row times one column with four accumulators. */
AI void f_row(enum fkind k, int64_t n, const uint8_t *w, const uint8_t *x, float *y)
{
    const float *xf = (const float *)x;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            acc[u] = _mm256_fmadd_ps(f_load8(k, w, i + 8 * u), _mm256_loadu_ps(xf + i + 8 * u),
                                     acc[u]);
    for (; i + 8 <= n; i += 8)
        acc[0] = _mm256_fmadd_ps(f_load8(k, w, i), _mm256_loadu_ps(xf + i), acc[0]);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++)
        s += f_load1(k, w, i) * xf[i];
    *y = s;
}

/* 3 x 4 float tiles ran twice as fast as 2 x 4 (F16 and F32, 64 columns,
 * Zen 4); for K-quants 1 row x 16 columns beat 2 x 4 by 25-45%. */
static void gemm_f32(int64_t n, int nr, int nc, const void *w, size_t w_stride, const void *x,
                     size_t x_stride, float *y, size_t ldy)
{
    GEMM_DRIVER(f_tile, f_row, FK_F32, 3, 4);
}

static void gemm_f16(int64_t n, int nr, int nc, const void *w, size_t w_stride, const void *x,
                     size_t x_stride, float *y, size_t ldy)
{
    GEMM_DRIVER(f_tile, f_row, FK_F16, 3, 4);
}

static void gemm_bf16(int64_t n, int nr, int nc, const void *w, size_t w_stride, const void *x,
                      size_t x_stride, float *y, size_t ldy)
{
    GEMM_DRIVER(f_tile, f_row, FK_BF16, 3, 4);
}

/* ---- 32-value blocks: Q4_0, Q5_0, Q8_0 (x Q8_0), Q4_1, Q5_1 (x Q8_1) ---- */

enum bkind { BK_Q4_0, BK_Q5_0, BK_Q8_0, BK_Q4_1, BK_Q5_1 };

AI size_t b_wbytes(enum bkind k)
{
    switch (k) {
    case BK_Q4_0: return sizeof(struct block_q4_0);
    case BK_Q5_0: return sizeof(struct block_q5_0);
    case BK_Q8_0: return sizeof(struct block_q8_0);
    case BK_Q4_1: return sizeof(struct block_q4_1);
    default: return sizeof(struct block_q5_1);
    }
}

AI int b_has_min(enum bkind k)
{
    return k == BK_Q4_1 || k == BK_Q5_1;
}

/* Unpacks one weight block.  Signed types: *a = |w|, *s = w (the sign trick
 * turns w*x into |w| * sign(x, w), which maddubs takes as unsigned x signed).
 * Types with a min: *a = q (unsigned), *m = the block's min. */
AI void b_unpack(enum bkind k, const uint8_t *p, __m256i *a, __m256i *s, float *d, float *m)
{
    __m256i q;
    switch (k) {
    case BK_Q4_0: {
        const struct block_q4_0 *b = (const void *)p;
        *d = f16_to_f32(b->d);
        q = _mm256_sub_epi8(nibbles(b->qs), _mm256_set1_epi8(8));
        break;
    }
    case BK_Q5_0: {
        const struct block_q5_0 *b = (const void *)p;
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        *d = f16_to_f32(b->d);
        q = _mm256_or_si256(nibbles(b->qs),
                            _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10)));
        q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
        break;
    }
    case BK_Q8_0: {
        const struct block_q8_0 *b = (const void *)p;
        *d = f16_to_f32(b->d);
        q = _mm256_loadu_si256((const __m256i *)b->qs);
        break;
    }
    case BK_Q4_1: {
        const struct block_q4_1 *b = (const void *)p;
        *d = f16_to_f32(b->d);
        *m = f16_to_f32(b->m);
        *a = nibbles(b->qs);
        return;
    }
    default: {
        const struct block_q5_1 *b = (const void *)p;
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        *d = f16_to_f32(b->d);
        *m = f16_to_f32(b->m);
        *a = _mm256_or_si256(nibbles(b->qs),
                             _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10)));
        return;
    }
    }
    *a = _mm256_abs_epi8(q);
    *s = q;
}

AI void b_tile(enum bkind k, const int RM, const int RN, int64_t n, const uint8_t *w, size_t ws,
               const uint8_t *x, size_t xs, float *y, size_t ldy)
{
    const int64_t nb = n / 32;
    const size_t wb = b_wbytes(k);
    const int hm = b_has_min(k);
    const size_t xb = hm ? sizeof(struct block_q8_1) : sizeof(struct block_q8_0);
    const size_t xq = hm ? offsetof(struct block_q8_1, qs) : offsetof(struct block_q8_0, qs);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[TILE_MAX][TILE_MAXC];
    float msum[TILE_MAX][TILE_MAXC];
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 16
        for (int c = 0; c < RN; c++) {
            acc[r][c] = _mm256_setzero_ps();
            msum[r][c] = 0.0f;
        }
    for (int64_t ib = 0; ib < nb; ib++) {
        __m256i a[TILE_MAX], s[TILE_MAX];
        float d[TILE_MAX], m[TILE_MAX];
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++) {
            s[r] = _mm256_setzero_si256();
            m[r] = 0.0f;
            b_unpack(k, w + r * ws + (size_t)ib * wb, &a[r], &s[r], &d[r], &m[r]);
        }
#pragma GCC unroll 16
        for (int c = 0; c < RN; c++) {
            const uint8_t *xp = x + c * xs + (size_t)ib * xb;
            const __m256i xv = _mm256_loadu_si256((const __m256i *)(xp + xq));
            quant_f16 dxh;
            memcpy(&dxh, xp, 2);
            const float dx = f16_to_f32(dxh);
            float sx = 0.0f;
            if (hm) {
                quant_f16 sxh;
                memcpy(&sxh, xp + 2, 2);
                sx = f16_to_f32(sxh);
            }
#pragma GCC unroll 4
            for (int r = 0; r < RM; r++) {
                __m256i p16 = hm ? _mm256_maddubs_epi16(a[r], xv)
                                 : _mm256_maddubs_epi16(a[r], _mm256_sign_epi8(xv, s[r]));
                __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
                acc[r][c] = _mm256_fmadd_ps(p, _mm256_set1_ps(d[r] * dx), acc[r][c]);
                if (hm)
                    msum[r][c] += m[r] * sx;
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 16
        for (int c = 0; c < RN; c++)
            y[c * ldy + r] = hsum_ps(acc[r][c]) + msum[r][c];
}

/* nc > 1: RM rows x 4G columns.  The four int32 dot vectors of a row and a
 * group of 4 columns are reduced with horizontal adds into one vector (lanes
 * 0-3: columns 0-3 over the low half of the block, lanes 4-7: the high
 * half), so one convert and one FMA against a vector of d_w * d_x serve four
 * column blocks.  4 rows x 8 columns ran 18% faster than 2 x 4 tiles with
 * one FMA per block pair (Q8_0, 64 columns, Zen 4). */
AI void b_tile4(enum bkind k, const int RM, const int G, int64_t n, const uint8_t *w, size_t ws,
                const uint8_t *x, size_t xs, float *y, size_t ldy)
{
    const int64_t nb = n / 32;
    const size_t wb = b_wbytes(k);
    const int hm = b_has_min(k);
    const size_t xb = hm ? sizeof(struct block_q8_1) : sizeof(struct block_q8_0);
    const size_t xq = hm ? offsetof(struct block_q8_1, qs) : offsetof(struct block_q8_0, qs);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[TILE_MAX][2];
    __m128 macc[TILE_MAX][2];
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 2
        for (int g = 0; g < G; g++) {
            acc[r][g] = _mm256_setzero_ps();
            macc[r][g] = _mm_setzero_ps();
        }
    for (int64_t ib = 0; ib < nb; ib++) {
        __m256 dx8[2];
        __m128 sx4[2];
#pragma GCC unroll 2
        for (int g = 0; g < G; g++) {
            quant_f16 dh[4], sh[4] = {0, 0, 0, 0};
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                const uint8_t *xp = x + (4 * g + c) * xs + (size_t)ib * xb;
                memcpy(&dh[c], xp, 2);
                if (hm)
                    memcpy(&sh[c], xp + 2, 2);
            }
            const __m128 dx4 = _mm_cvtph_ps(_mm_setr_epi16((short)dh[0], (short)dh[1], (short)dh[2],
                                                           (short)dh[3], 0, 0, 0, 0));
            dx8[g] = _mm256_set_m128(dx4, dx4);
            sx4[g] = _mm_cvtph_ps(_mm_setr_epi16((short)sh[0], (short)sh[1], (short)sh[2],
                                                 (short)sh[3], 0, 0, 0, 0));
        }
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++) {
            __m256i a, sg = _mm256_setzero_si256();
            float d, m = 0.0f;
            b_unpack(k, w + r * ws + (size_t)ib * wb, &a, &sg, &d, &m);
            const __m256 dv = _mm256_set1_ps(d);
#pragma GCC unroll 2
            for (int g = 0; g < G; g++) {
                __m256i p[4];
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++) {
                    const __m256i xv = _mm256_loadu_si256(
                        (const __m256i *)(x + (4 * g + c) * xs + (size_t)ib * xb + xq));
                    p[c] = _mm256_madd_epi16(hm ? _mm256_maddubs_epi16(a, xv)
                                                : _mm256_maddubs_epi16(a, _mm256_sign_epi8(xv, sg)),
                                             ones);
                }
                const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]),
                                                    _mm256_hadd_epi32(p[2], p[3]));
                acc[r][g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h), _mm256_mul_ps(dv, dx8[g]),
                                            acc[r][g]);
                if (hm)
                    macc[r][g] = _mm_fmadd_ps(_mm_set1_ps(m), sx4[g], macc[r][g]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 2
        for (int g = 0; g < G; g++) {
            const __m128 v = _mm_add_ps(_mm_add_ps(_mm256_castps256_ps128(acc[r][g]),
                                                   _mm256_extractf128_ps(acc[r][g], 1)),
                                        macc[r][g]);
            float o[4];
            _mm_storeu_ps(o, v);
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++)
                y[(4 * g + c) * ldy + r] = o[c];
        }
}

#define B_TILE(KIND, RM, RN, n, w, ws, x, xs, y, ldy)                                       \
    do {                                                                                   \
        if ((RN) % 4 == 0)                                                                 \
            b_tile4(KIND, RM, (RN) / 4, n, w, ws, x, xs, y, ldy);                          \
        else                                                                               \
            b_tile(KIND, RM, RN, n, w, ws, x, xs, y, ldy);                                 \
    } while (0)

/* nc == 1: one row, two accumulators to hide the FMA latency. */
AI void b_row(enum bkind k, int64_t n, const uint8_t *w, const uint8_t *x, float *y)
{
    const int64_t nb = n / 32;
    const size_t wb = b_wbytes(k);
    const int hm = b_has_min(k);
    const size_t xb = hm ? sizeof(struct block_q8_1) : sizeof(struct block_q8_0);
    const size_t xq = hm ? offsetof(struct block_q8_1, qs) : offsetof(struct block_q8_0, qs);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    float msum = 0.0f;
    int64_t ib = 0;
    for (; ib + 2 <= nb; ib += 2) {
#pragma GCC unroll 2
        for (int u = 0; u < 2; u++) {
            __m256i a, s = _mm256_setzero_si256();
            float d, m = 0.0f;
            b_unpack(k, w + (size_t)(ib + u) * wb, &a, &s, &d, &m);
            const uint8_t *xp = x + (size_t)(ib + u) * xb;
            const __m256i xv = _mm256_loadu_si256((const __m256i *)(xp + xq));
            quant_f16 h[2];
            memcpy(h, xp, hm ? 4 : 2);
            __m256i p16 = hm ? _mm256_maddubs_epi16(a, xv)
                             : _mm256_maddubs_epi16(a, _mm256_sign_epi8(xv, s));
            __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
            acc[u] = _mm256_fmadd_ps(p, _mm256_set1_ps(d * f16_to_f32(h[0])), acc[u]);
            if (hm)
                msum += m * f16_to_f32(h[1]);
        }
    }
    float tail = 0.0f;
    if (ib < nb)
        b_tile(k, 1, 1, 32, w + (size_t)ib * wb, 0, x + (size_t)ib * xb, 0, &tail, 1);
    *y = hsum_ps(_mm256_add_ps(acc[0], acc[1])) + msum + tail;
}

#define DEF_B_GEMM(NAME, KIND)                                                              \
    static void NAME(int64_t n, int nr, int nc, const void *w, size_t w_stride, const void *x, \
                     size_t x_stride, float *y, size_t ldy)                                 \
    {                                                                                       \
        GEMM_DRIVER(B_TILE, b_row, KIND, 4, 8);                                                 \
    }

DEF_B_GEMM(gemm_q4_0, BK_Q4_0)
DEF_B_GEMM(gemm_q5_0, BK_Q5_0)
DEF_B_GEMM(gemm_q8_0, BK_Q8_0)
DEF_B_GEMM(gemm_q4_1, BK_Q4_1)
DEF_B_GEMM(gemm_q5_1, BK_Q5_1)

/* ---- K-quants with Q8_K activations ----------------------------------- *
 * Every K-quant super-block is unpacked to 256 unsigned quants q (8 vectors
 * of 32), one int16 scale per 16 values and one int16 "min" per 16 values,
 * so that its dot product with a Q8_K block is
 *     dx * (d * sum_j sc_j * sum_{i in j} q_i x_i  -  dm * sum_j mc_j * bsum_j)
 * Q2_K, Q4_K, Q5_K: mc = the mins, dm = dmin.  Q3_K and Q6_K store q - 4 and
 * q - 32 with signed scales: mc = 4*sc or 32*sc and dm = d. */

enum kkind { KK_Q2_K, KK_Q3_K, KK_Q4_K, KK_Q5_K, KK_Q6_K };

struct kunpack {
    __m256i q[8];    /* quants of values 32k..32k+31 */
    __m256i sv[8];   /* int16: scale of 32k..32k+15 in the low lane, 32k+16.. in the high */
    __m256i mc;      /* int16 x 16 */
    float d, dm;
};

AI size_t k_wbytes(enum kkind k)
{
    switch (k) {
    case KK_Q2_K: return sizeof(struct block_q2_k);
    case KK_Q3_K: return sizeof(struct block_q3_k);
    case KK_Q4_K: return sizeof(struct block_q4_k);
    case KK_Q5_K: return sizeof(struct block_q5_k);
    default: return sizeof(struct block_q6_k);
    }
}

/* Scale vectors from 16 int16 scales, one per 16 values: chunk k (values
 * 32k..32k+31) takes scale 2k in its low lane and 2k+1 in its high lane. */
AI void k_scales16(struct kunpack *u, __m256i s16)
{
    const __m256i lo = _mm256_permute2x128_si256(s16, s16, 0x00);
    const __m256i hi = _mm256_permute2x128_si256(s16, s16, 0x11);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        const int b = 4 * (k & 3);
        const __m256i pick = _mm256_set_m128i(_mm_set1_epi16((short)(((b + 3) << 8) | (b + 2))),
                                              _mm_set1_epi16((short)(((b + 1) << 8) | b)));
        u->sv[k] = _mm256_shuffle_epi8(k < 4 ? lo : hi, pick);
    }
}

/* Q4_K / Q5_K: 8 scales and 8 mins of 6 bits in 12 bytes, one per 32 values:
 *   j < 4:  sc = q[j] & 63,                        m = q[j+4] & 63
 *   j >= 4: sc = q[j+4] & 15 | (q[j-4] >> 6) << 4,  m = q[j+4] >> 4 | (q[j] >> 6) << 4
 * unpacked with shuffles into bytes 0-7 (scales) and 8-15 (mins).  The
 * 16-byte load reads 4 bytes of the block's next field (qs or qh). */
AI void k_scales_4k(struct kunpack *u, const uint8_t *scales)
{
    const __m128i q = _mm_loadu_si128((const __m128i *)scales);
    const __m128i a = _mm_shuffle_epi8(q, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7,
                                                        8, 9, 10, 11));
    const __m128i b = _mm_shuffle_epi8(q, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1,
                                                        4, 5, 6, 7));
    const __m128i sel = _mm_blendv_epi8(a, _mm_srli_epi16(a, 4),
                                        _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                      -1, -1, -1, -1));
    const __m128i low = _mm_and_si128(sel, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15,
                                                         63, 63, 63, 63, 15, 15, 15, 15));
    const __m128i top = _mm_and_si128(_mm_srli_epi16(b, 2),
                                      _mm_setr_epi8(0, 0, 0, 0, 0x30, 0x30, 0x30, 0x30,
                                                    0, 0, 0, 0, 0x30, 0x30, 0x30, 0x30));
    const __m128i v = _mm_or_si128(low, top);
    const __m128i mdup = _mm_shuffle_epi8(v, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
                                                           14, 14, 15, 15));
    u->mc = _mm256_cvtepu8_epi16(mdup);
    const __m256i vv = _mm256_broadcastsi128_si256(v);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++)   /* int16 scale k, zero-extended, in every lane */
        u->sv[k] = _mm256_shuffle_epi8(vv, _mm256_set1_epi16((short)(0x8000 | k)));
}

AI void k_unpack(enum kkind k, const uint8_t *p, struct kunpack *u)
{
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    switch (k) {
    case KK_Q2_K: {
        const struct block_q2_k *b = (const void *)p;
        u->d = f16_to_f32(b->d);
        u->dm = f16_to_f32(b->dmin);
        const __m128i sc = _mm_loadu_si128((const __m128i *)b->scales);
        k_scales16(u, _mm256_cvtepu8_epi16(_mm_and_si128(sc, _mm_set1_epi8(0x0f))));
        u->mc = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(0x0f)));
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * h));
            u->q[4 * h + 0] = _mm256_and_si256(qv, m3);
            u->q[4 * h + 1] = _mm256_and_si256(_mm256_srli_epi16(qv, 2), m3);
            u->q[4 * h + 2] = _mm256_and_si256(_mm256_srli_epi16(qv, 4), m3);
            u->q[4 * h + 3] = _mm256_and_si256(_mm256_srli_epi16(qv, 6), m3);
        }
        break;
    }
    case KK_Q3_K: {
        const struct block_q3_k *b = (const void *)p;
        uint32_t a[4];
        memcpy(a, b->scales, 12);
        const uint32_t t = a[2];
        a[2] = ((a[0] >> 4) & 0x0f0f0f0fu) | (((t >> 4) & 0x03030303u) << 4);
        a[3] = ((a[1] >> 4) & 0x0f0f0f0fu) | (((t >> 6) & 0x03030303u) << 4);
        a[0] = (a[0] & 0x0f0f0f0fu) | (((t >> 0) & 0x03030303u) << 4);
        a[1] = (a[1] & 0x0f0f0f0fu) | (((t >> 2) & 0x03030303u) << 4);
        const __m128i av = _mm_setr_epi32((int)a[0], (int)a[1], (int)a[2], (int)a[3]);
        const __m256i s16 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(av), _mm256_set1_epi16(32));
        k_scales16(u, s16);
        u->mc = _mm256_slli_epi16(s16, 2);
        u->d = f16_to_f32(b->d);
        u->dm = u->d;
        const __m256i hmv = _mm256_loadu_si256((const __m256i *)b->hmask);
        const __m256i one = _mm256_set1_epi8(1);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * h));
            const __m256i hv = h ? _mm256_srli_epi16(hmv, 4) : hmv;
            /* q = low 2 bits + 4 * high bit, in 0..7; the value is q - 4 */
            u->q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(qv, m3),
                                              _mm256_slli_epi16(_mm256_and_si256(hv, one), 2));
            u->q[4 * h + 1] = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(qv, 2), m3),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 1), one), 2));
            u->q[4 * h + 2] = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(qv, 4), m3),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 2), one), 2));
            u->q[4 * h + 3] = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(qv, 6), m3),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 3), one), 2));
        }
        break;
    }
    case KK_Q4_K: {
        const struct block_q4_k *b = (const void *)p;
        u->d = f16_to_f32(b->d);
        u->dm = f16_to_f32(b->dmin);
        k_scales_4k(u, b->scales);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * i));
            u->q[2 * i] = _mm256_and_si256(qv, m4);
            u->q[2 * i + 1] = _mm256_and_si256(_mm256_srli_epi16(qv, 4), m4);
        }
        break;
    }
    case KK_Q5_K: {
        const struct block_q5_k *b = (const void *)p;
        u->d = f16_to_f32(b->d);
        u->dm = f16_to_f32(b->dmin);
        k_scales_4k(u, b->scales);
        const __m256i hv = _mm256_loadu_si256((const __m256i *)b->qh);
        const __m256i b16 = _mm256_set1_epi8(0x10);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * i));
            /* bit g of qh[l] is the fifth bit of value 32g + l */
            const __m256i h0 = _mm256_srl_epi16(hv, _mm_cvtsi32_si128(2 * i));
            u->q[2 * i] = _mm256_or_si256(_mm256_and_si256(qv, m4),
                                          _mm256_and_si256(_mm256_slli_epi16(h0, 4), b16));
            u->q[2 * i + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qv, 4), m4),
                                              _mm256_and_si256(_mm256_slli_epi16(h0, 3), b16));
        }
        break;
    }
    default: {
        const struct block_q6_k *b = (const void *)p;
        u->d = f16_to_f32(b->d);
        u->dm = u->d;
        const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        k_scales16(u, s16);
        u->mc = _mm256_slli_epi16(s16, 5);
        const __m256i b30 = _mm256_set1_epi8(0x30);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
            const __m256i hv = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
            u->q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                              _mm256_and_si256(_mm256_slli_epi16(hv, 4), b30));
            u->q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                              _mm256_and_si256(_mm256_slli_epi16(hv, 2), b30));
            u->q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                              _mm256_and_si256(hv, b30));
            u->q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                              _mm256_and_si256(_mm256_srli_epi16(hv, 2), b30));
        }
        break;
    }
    }
}

AI void k_tile(enum kkind k, const int RM, const int RN, int64_t n, const uint8_t *w, size_t ws,
               const uint8_t *x, size_t xs, float *y, size_t ldy)
{
    const int64_t nb = n / QK_K;
    const size_t wb = k_wbytes(k);
    const int same_scale = k == KK_Q3_K || k == KK_Q6_K;
    __m256 acc[TILE_MAX][TILE_MAXC];
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 16
        for (int c = 0; c < RN; c++)
            acc[r][c] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        struct kunpack u[TILE_MAX];
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++)
            k_unpack(k, w + r * ws + (size_t)ib * wb, &u[r]);
#pragma GCC unroll 16
        for (int c = 0; c < RN; c++) {
            const struct block_q8_k *xb =
                (const struct block_q8_k *)(x + c * xs) + ib;
            const __m256i bs = _mm256_loadu_si256((const __m256i *)xb->bsums);
#pragma GCC unroll 4
            for (int r = 0; r < RM; r++) {
                __m256i s = _mm256_setzero_si256();
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) {
                    const __m256i xv = _mm256_loadu_si256((const __m256i *)(xb->qs + 32 * j));
                    s = _mm256_add_epi32(
                        s, _mm256_madd_epi16(_mm256_maddubs_epi16(u[r].q[j], xv), u[r].sv[j]));
                }
                const __m256i corr = _mm256_madd_epi16(u[r].mc, bs);
                if (same_scale) {
                    s = _mm256_sub_epi32(s, corr);
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s),
                                                _mm256_set1_ps(u[r].d * xb->d), acc[r][c]);
                } else {
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s),
                                                _mm256_set1_ps(u[r].d * xb->d), acc[r][c]);
                    acc[r][c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(corr),
                                                 _mm256_set1_ps(u[r].dm * xb->d), acc[r][c]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 16
        for (int c = 0; c < RN; c++)
            y[c * ldy + r] = hsum_ps(acc[r][c]);
}

AI void k_row(enum kkind k, int64_t n, const uint8_t *w, const uint8_t *x, float *y)
{
    k_tile(k, 1, 1, n, w, 0, x, 0, y, 1);
}

#define DEF_K_GEMM(NAME, KIND)                                                              \
    static void NAME(int64_t n, int nr, int nc, const void *w, size_t w_stride, const void *x, \
                     size_t x_stride, float *y, size_t ldy)                                 \
    {                                                                                       \
        GEMM_DRIVER(k_tile, k_row, KIND, 1, 16);                                                 \
    }

DEF_K_GEMM(gemm_q2_k, KK_Q2_K)
DEF_K_GEMM(gemm_q3_k, KK_Q3_K)
DEF_K_GEMM(gemm_q4_k, KK_Q4_K)
DEF_K_GEMM(gemm_q5_k, KK_Q5_K)
DEF_K_GEMM(gemm_q6_k, KK_Q6_K)

/* ---- activation quantizers: byte for byte what quant.c writes ---------- */

AI float hmax_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

AI __m256 abs_ps(__m256 v)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

/* As quant.c's int_range(): NaN to 0, the rest clamped to +-2^30, so that
 * NaN and inf inputs convert to what the reference writes. */
AI __m256 int_range_ps(__m256 v)
{
    const __m256 lim = _mm256_set1_ps(1073741824.0f);
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
    return _mm256_max_ps(_mm256_min_ps(v, lim), _mm256_sub_ps(_mm256_setzero_ps(), lim));
}

/* 32 int32 in four vectors to 32 int8 in order, saturating (the reference
 * clamps to [-128, 127]). */
AI __m256i pack32(__m256i i0, __m256i i1, __m256i i2, __m256i i3)
{
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* One 32-block of Q8_0/Q8_1: d = amax/127, q = rint(x * (127/amax)); the
 * max ignores NaN as fmaxf does (max_ps returns its second operand then). */
AI float q8_block32(const float *x, int8_t *q, int32_t *sum)
{
    __m256 v[4];
    __m256 am = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        v[j] = _mm256_loadu_ps(x + 8 * j);
        am = _mm256_max_ps(abs_ps(v[j]), am);
    }
    const float amax = hmax_ps(am);
    const float d = amax / 127.0f;
    const __m256 id = _mm256_set1_ps(amax != 0 ? 127.0f / amax : 0.0f);
    __m256i i[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
        i[j] = _mm256_cvtps_epi32(int_range_ps(_mm256_mul_ps(v[j], id)));   /* ties to even */
    const __m256i p = pack32(i[0], i[1], i[2], i[3]);
    _mm256_storeu_si256((__m256i *)q, p);
    if (sum) {
        __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), p),
                                      _mm256_set1_epi16(1));
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
        *sum = _mm_cvtsi128_si32(t);
    }
    return d;
}

static void quantize_q8_0(const float *src, void *dst, int64_t n)
{
    struct block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0)
        b[i].d = _cvtss_sh(q8_block32(src, b[i].qs, NULL), _MM_FROUND_TO_NEAREST_INT);
}

static void quantize_q8_1(const float *src, void *dst, int64_t n)
{
    struct block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        int32_t sum;
        const float d = q8_block32(src, b[i].qs, &sum);
        b[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        b[i].s = _cvtss_sh(d * (float)sum, _MM_FROUND_TO_NEAREST_INT);
    }
}

/* Q8_K: the first element of largest magnitude maps to -127, q = rint(x *
 * -127/max) capped at 127 and stored as its low byte, as the reference's
 * (int8_t) cast does; bsums are sums of 16 quants. */
static void quantize_q8_k(const float *src, void *dst, int64_t n)
{
    struct block_q8_k *b = dst;
    const __m256i low = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                         0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        __m256 am = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8)
            am = _mm256_max_ps(abs_ps(_mm256_loadu_ps(src + j)), am);
        const float amax = hmax_ps(am);
        if (amax == 0) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        float max = 0;
        const __m256 amv = _mm256_set1_ps(amax);
        for (int j = 0; j < QK_K; j += 8) {
            int mask = _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(src + j)), amv, _CMP_EQ_OQ));
            if (mask) {
                max = src[j + __builtin_ctz((unsigned)mask)];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 is = _mm256_set1_ps(iscale);
        for (int j = 0; j < QK_K; j += 8) {
            __m256i v = _mm256_cvtps_epi32(int_range_ps(_mm256_mul_ps(_mm256_loadu_ps(src + j), is)));
            v = _mm256_shuffle_epi8(_mm256_min_epi32(v, _mm256_set1_epi32(127)), low);
            uint32_t lo = (uint32_t)_mm256_cvtsi256_si32(v);
            uint32_t hi = (uint32_t)_mm_cvtsi128_si32(_mm256_extracti128_si256(v, 1));
            memcpy(b[i].qs + j, &lo, 4);
            memcpy(b[i].qs + j + 4, &hi, 4);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            const __m128i q = _mm_loadu_si128((const __m128i *)(b[i].qs + 16 * g));
            __m128i s = _mm_madd_epi16(_mm_maddubs_epi16(_mm_set1_epi8(1), q), _mm_set1_epi16(1));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
            b[i].bsums[g] = (int16_t)_mm_cvtsi128_si32(s);
        }
        b[i].d = 1 / iscale;
    }
}

/* ---- table ------------------------------------------------------------ */

void cpu_avx2_fill(struct cpu_kernels *k)
{
    k->isa = CPU_ISA_AVX2;
    k->isa_name = "avx2";
    k->gemm[QUANT_TYPE_F32] = gemm_f32;
    k->gemm[QUANT_TYPE_F16] = gemm_f16;
    k->gemm[QUANT_TYPE_BF16] = gemm_bf16;
    k->gemm[QUANT_TYPE_Q4_0] = gemm_q4_0;
    k->gemm[QUANT_TYPE_Q5_0] = gemm_q5_0;
    k->gemm[QUANT_TYPE_Q8_0] = gemm_q8_0;
    k->gemm[QUANT_TYPE_Q4_1] = gemm_q4_1;
    k->gemm[QUANT_TYPE_Q5_1] = gemm_q5_1;
    k->gemm[QUANT_TYPE_Q2_K] = gemm_q2_k;
    k->gemm[QUANT_TYPE_Q3_K] = gemm_q3_k;
    k->gemm[QUANT_TYPE_Q4_K] = gemm_q4_k;
    k->gemm[QUANT_TYPE_Q5_K] = gemm_q5_k;
    k->gemm[QUANT_TYPE_Q6_K] = gemm_q6_k;
    k->quantize[QUANT_TYPE_Q8_0] = quantize_q8_0;
    k->quantize[QUANT_TYPE_Q8_1] = quantize_q8_1;
    k->quantize[QUANT_TYPE_Q8_K] = quantize_q8_k;
}
