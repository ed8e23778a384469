/* AVX-512 VNNI kernels: gemm for every weight type as register tiles (generation)
 * and as transposed 16-row blocks (prompts), and the Q8_0/Q8_1/Q8_K activation
 * quantizers.  The prompt kernels stage up to 56 KiB on the stack. */
#include <immintrin.h>
#include <string.h>

#include "cpu.h"

#define AI static inline __attribute__((always_inline))

/* Tile shapes: MR x NR for the matrix part, MV x 1 for columns left over
 * (and for nc = 1, where the weights stream once and more rows in flight
 * keep more loads outstanding). */
#define LEG_MR 2
#define LEG_NR 4
#define KQ_MR 2
#define KQ_NR 4
#define FP_MR 4
#define FP_NR 4
#define MV 4

AI float f16f(quant_f16 h) { return _cvtsh_ss(h); }

AI quant_f16 ld16(const uint8_t *p)
{
    quant_f16 h;
    memcpy(&h, p, sizeof h);
    return h;
}

AI float ldf(const uint8_t *p)
{
    float f;
    memcpy(&f, p, sizeof f);
    return f;
}

/* [a x8, b x8] as floats, from two f16. */
AI __m512 halves_f16(quant_f16 a, quant_f16 b)
{
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)a)),
                                        _mm_set1_epi16((short)b), 1);
    return _mm512_cvtph_ps(v);
}

/* ---- 32-blocks: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 against Q8_0 / Q8_1 --------------
 * Two blocks per zmm.  Weights are unpacked to unsigned bytes u = q + off
 * (off 8, 16, 128 for Q4_0, Q5_0, Q8_0; 0 for Q4_1/Q5_1, whose q is already
 * unsigned), so vpdpbusd(u, x) = dot(q, x) + off * sum(x); the correction
 * off * sum(x) depends only on the column and is computed once per column
 * block, then used as the accumulator vpdpbusd starts from. */

enum leg { LEG_Q4_0, LEG_Q4_1, LEG_Q5_0, LEG_Q5_1, LEG_Q8_0 };

AI size_t leg_bytes(enum leg t)
{
    switch (t) {
    case LEG_Q4_0: return sizeof(struct block_q4_0);
    case LEG_Q4_1: return sizeof(struct block_q4_1);
    case LEG_Q5_0: return sizeof(struct block_q5_0);
    case LEG_Q5_1: return sizeof(struct block_q5_1);
    default: return sizeof(struct block_q8_0);
    }
}

AI int leg_off(enum leg t)
{
    return t == LEG_Q4_0 ? 8 : t == LEG_Q5_0 ? 16 : t == LEG_Q8_0 ? 128 : 0;
}

AI int leg_has_m(enum leg t) { return t == LEG_Q4_1 || t == LEG_Q5_1; }

/* 16 bytes of nibbles per block -> 32 values (low nibbles, then high). */
AI __m512i nib2(const uint8_t *q0, const uint8_t *q1)
{
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const void *)q0)),
                                        _mm_loadu_si128((const void *)q1), 1);
    __m512i z = _mm512_shuffle_i64x2(_mm512_castsi256_si512(v), _mm512_castsi256_si512(v),
                                     _MM_SHUFFLE(1, 1, 0, 0));
    /* 128-bit lanes 1 and 3 take the high nibbles */
    return _mm512_and_si512(_mm512_mask_srli_epi16(z, 0xff00ff00u, z, 4), _mm512_set1_epi8(0x0f));
}

AI uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The unsigned weights of blocks b0 and b1 (b1 == b0 for a lone last block;
 * its column half is zero then). */
AI __m512i leg_unpack(enum leg t, const uint8_t *b0, const uint8_t *b1)
{
    switch (t) {
    case LEG_Q4_0: return nib2(b0 + 2, b1 + 2);
    case LEG_Q4_1: return nib2(b0 + 4, b1 + 4);
    case LEG_Q5_0:
    case LEG_Q5_1: {
        size_t o = t == LEG_Q5_0 ? 2 : 4;
        __m512i q = nib2(b0 + o + 4, b1 + o + 4);
        __mmask64 h = (__mmask64)ld32(b0 + o) | (__mmask64)ld32(b1 + o) << 32;
        return _mm512_mask_add_epi8(q, h, q, _mm512_set1_epi8(16));
    }
    default: {
        __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const void *)(b0 + 2))),
                                       _mm256_loadu_si256((const void *)(b1 + 2)), 1);
        return _mm512_xor_si512(q, _mm512_set1_epi8((char)0x80));
    }
    }
}

AI void leg_tile(enum leg t, int MR, int NR, int64_t nb, const uint8_t *w, size_t ws,
                 const uint8_t *x, size_t xs, float *y, size_t ldy)
{
    const size_t wb = leg_bytes(t);
    const int hm = leg_has_m(t);
    const size_t xb = hm ? sizeof(struct block_q8_1) : sizeof(struct block_q8_0);
    const size_t xq = hm ? 4 : 2;
    const int off = leg_off(t);
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++)
            acc[r][c] = _mm512_setzero_ps();

    for (int64_t b = 0; b < nb; b += 2) {
        const int one = b + 1 == nb;
        __m512i xv[4], xc[4];
        __m512 dx[4], sx[4];
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) {
            const uint8_t *p = x + c * xs + b * xb;
            if (one) {
                xv[c] = _mm512_zextsi256_si512(_mm256_loadu_si256((const void *)(p + xq)));
                dx[c] = halves_f16(ld16(p), 0);
                if (hm)
                    sx[c] = halves_f16(ld16(p + 2), 0);
            } else {
                xv[c] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const void *)(p + xq))),
                                           _mm256_loadu_si256((const void *)(p + xb + xq)), 1);
                dx[c] = halves_f16(ld16(p), ld16(p + xb));
                if (hm)
                    sx[c] = halves_f16(ld16(p + 2), ld16(p + xb + 2));
            }
            if (off)
                xc[c] = _mm512_sub_epi32(_mm512_setzero_si512(),
                                         _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                                             _mm512_set1_epi8((char)off), xv[c]));
            else
                xc[c] = _mm512_setzero_si512();
        }
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            const uint8_t *p0 = w + r * ws + b * wb;
            const uint8_t *p1 = one ? p0 : p0 + wb;
            __m512i u = leg_unpack(t, p0, p1);
            __m512 dw = halves_f16(ld16(p0), one ? 0 : ld16(p1));
            __m512 mw = _mm512_setzero_ps();
            if (hm) {
                /* m once per block: lane 0 and lane 8 */
                mw = _mm512_maskz_mov_ps(0x0101, halves_f16(ld16(p0 + 2), one ? 0 : ld16(p1 + 2)));
            }
#pragma GCC unroll 4
            for (int c = 0; c < NR; c++) {
                __m512i s = _mm512_dpbusd_epi32(xc[c], u, xv[c]);
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, dx[c]), acc[r][c]);
                if (hm)
                    acc[r][c] = _mm512_fmadd_ps(mw, sx[c], acc[r][c]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++)
            y[c * ldy + r] = _mm512_reduce_add_ps(acc[r][c]);
}

/* ---- 32-blocks with many columns: 16 rows per vector ----------------------
 * For prompts, 16 rows at a time: two blocks of 16 rows are decoded to
 * signed bytes and transposed (16 x 16 dwords) so that lane i of vector j
 * holds bytes 4j..4j+3 of row i; then a column costs 8 vpdpbusd (its 4 bytes
 * broadcast), one convert and one fma per block for all 16 rows, where the
 * tiles above spend that on one row.  vpdpbusd multiplies u8 by s8: the
 * activations are staged as x + 128, which adds 128 * sum(w) per row and
 * block; the sums start from minus that. */
#define PP_MIN_COLS 4
#define PP_COLS 64   /* columns per pass */
#define PP_KB 16     /* blocks per pass (activation staging: 32 KiB) */
#define PP_RG 4      /* groups of 16 rows per pass */

/* 16 x 16 dwords: r[j] lane i = old r[i] lane j. */
AI void tr16(__m512i r[16])
{
    __m512i t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            t[8 * i + q] = _mm512_shuffle_i32x4(r[8 * i + q], r[8 * i + 4 + q], 0x88);
            t[8 * i + 4 + q] = _mm512_shuffle_i32x4(r[8 * i + q], r[8 * i + 4 + q], 0xdd);
        }
#pragma GCC unroll 8
    for (int m = 0; m < 8; m++) {
        r[m] = _mm512_shuffle_i32x4(t[m], t[8 + m], 0x88);
        r[8 + m] = _mm512_shuffle_i32x4(t[m], t[8 + m], 0xdd);
    }
}

/* One block of the repacked weights against the staged columns. */
AI void leg_pp_block(int hm, const __m512i W[8], __m512i corr, __m512 dw, __m512 mw, int ncc,
                     uint8_t (*xu)[PP_KB][32], float (*dxf)[PP_KB], float (*sxf)[PP_KB],
                     int b, float (*acc)[16])
{
    for (int c = 0; c < ncc; c++) {
        __m512i s = corr;
        const uint8_t *xp = xu[c][b];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            s = _mm512_dpbusd_epi32(s, _mm512_set1_epi32((int)ld32(xp + 4 * j)), W[j]);
        __m512 a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(dxf[c][b])),
                                   _mm512_load_ps(acc[c]));
        if (hm)
            a = _mm512_fmadd_ps(mw, _mm512_set1_ps(sxf[c][b]), a);
        _mm512_store_ps(acc[c], a);
    }
}

/* minus 128 * (sum of the 32 signed weights of each row) */
AI __m512i leg_pp_corr(const __m512i W[8])
{
    __m512i corr = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++)
        corr = _mm512_dpbusd_epi32(corr, _mm512_set1_epi8((char)0x80), W[j]);
    return _mm512_sub_epi32(_mm512_setzero_si512(), corr);
}

AI void leg_pp(enum leg t, int64_t nb, int nr, int nc, const uint8_t *w, size_t ws, const uint8_t *x,
               size_t xs, float *y, size_t ldy)
{
    _Alignas(64) uint8_t xu[PP_COLS][PP_KB][32];
    _Alignas(64) float dxf[PP_COLS][PP_KB];
    _Alignas(64) float sxf[PP_COLS][PP_KB];
    _Alignas(64) float acc[PP_RG][PP_COLS][16];
    const int hm = leg_has_m(t);
    const size_t wb = leg_bytes(t);
    const size_t xb = hm ? sizeof(struct block_q8_1) : sizeof(struct block_q8_0), xq = hm ? 4 : 2;
    for (int r0 = 0; r0 < nr; r0 += PP_RG * 16) {
        int nrg = (nr - r0) / 16 < PP_RG ? (nr - r0) / 16 : PP_RG;
        for (int c0 = 0; c0 < nc; c0 += PP_COLS) {
            int ncc = nc - c0 < PP_COLS ? nc - c0 : PP_COLS;
            for (int g = 0; g < nrg; g++)
                for (int c = 0; c < ncc; c++)
                    _mm512_store_ps(acc[g][c], _mm512_setzero_ps());
            for (int64_t b0 = 0; b0 < nb; b0 += PP_KB) {
                int nkb = nb - b0 < PP_KB ? (int)(nb - b0) : PP_KB;
                for (int c = 0; c < ncc; c++) {
                    const uint8_t *p = x + (size_t)(c0 + c) * xs + (size_t)b0 * xb;
                    for (int b = 0; b < nkb; b++, p += xb) {
                        dxf[c][b] = f16f(ld16(p));
                        if (hm)
                            sxf[c][b] = f16f(ld16(p + 2));
                        _mm256_store_si256((void *)xu[c][b],
                                           _mm256_xor_si256(_mm256_loadu_si256((const void *)(p + xq)),
                                                            _mm256_set1_epi8((char)0x80)));
                    }
                }
                for (int g = 0; g < nrg; g++) {
                    const uint8_t *wg = w + (size_t)(r0 + 16 * g) * ws + (size_t)b0 * wb;
                    /* two blocks of 16 rows: decode to signed bytes, transpose */
                    const __m512i off = _mm512_set1_epi8((char)leg_off(t));
                    for (int b = 0; b < nkb; b += 2, wg += 2 * wb) {
                        const int one = b + 1 == nkb;
                        __m512i R[16];
                        _Alignas(64) float d0[16], d1[16], m0[16], m1[16];
                        for (int i = 0; i < 16; i++) {
                            const uint8_t *p0 = wg + (size_t)i * ws, *p1 = one ? p0 : p0 + wb;
                            R[i] = _mm512_sub_epi8(leg_unpack(t, p0, p1), off);
                            d0[i] = f16f(ld16(p0));
                            d1[i] = f16f(ld16(p1));
                            if (hm) {
                                m0[i] = f16f(ld16(p0 + 2));
                                m1[i] = f16f(ld16(p1 + 2));
                            }
                        }
                        tr16(R);
                        leg_pp_block(hm, R, leg_pp_corr(R), _mm512_load_ps(d0),
                                     hm ? _mm512_load_ps(m0) : _mm512_setzero_ps(), ncc, xu,
                                     dxf, sxf, b, acc[g]);
                        if (!one)
                            leg_pp_block(hm, R + 8, leg_pp_corr(R + 8), _mm512_load_ps(d1),
                                         hm ? _mm512_load_ps(m1) : _mm512_setzero_ps(),
                                         ncc, xu, dxf, sxf, b + 1, acc[g]);
                    }
                }
            }
            for (int g = 0; g < nrg; g++)
                for (int c = 0; c < ncc; c++)
                    _mm512_storeu_ps(y + (size_t)(c0 + c) * ldy + r0 + 16 * g, _mm512_load_ps(acc[g][c]));
        }
    }
}

/* ---- K-quants against Q8_K ------------------------------------------------
 * Every K-quant is decoded, per super-block, to 256 unsigned bytes q (in value
 * order), 16 signed scales s[i] and 16 signed mins m[i] (one per 16 values),
 * and two floats d, dmin, such that
 *     dot = d*dx * sum_i s[i]*dot(q_i, x_i)  -  dmin*dx * sum_i m[i]*bsum_i.
 * (Q3_K and Q6_K have signed quants u - 4 and u - 32: their offset becomes
 * the min term with m = s and dmin = 4d or 32d.)  q . x goes through
 * vpmaddubsw (pairs, never saturating for q < 64, |x| <= 127) and vpdpwssd
 * with the scale, accumulating int32 over the super-block. */

enum kq { KQ_Q2_K, KQ_Q3_K, KQ_Q4_K, KQ_Q5_K, KQ_Q6_K };

AI size_t kq_bytes(enum kq t)
{
    switch (t) {
    case KQ_Q2_K: return sizeof(struct block_q2_k);
    case KQ_Q3_K: return sizeof(struct block_q3_k);
    case KQ_Q4_K: return sizeof(struct block_q4_k);
    case KQ_Q5_K: return sizeof(struct block_q5_k);
    default: return sizeof(struct block_q6_k);
    }
}

struct kq_head {
    __m256i s, m;    /* 16 x int16 */
    float d, dmin;
};

/* 6-bit scales and mins of Q4_K/Q5_K: bytes 0..7 scales, 8..15 mins. */
AI __m128i k4_scales(const uint8_t *sc)
{
    uint32_t u[4];
    memcpy(u, sc, 12);
    const uint32_t k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;
    u[3] = ((u[2] >> 4) & k2) | (((u[1] >> 6) & k3) << 4);
    uint32_t a = u[1] & k1;
    u[1] = (u[2] & k2) | (((u[0] >> 6) & k3) << 4);
    u[2] = a;
    u[0] &= k1;
    /* from registers: a 16-byte load of four 4-byte stores stalls store forwarding */
    return _mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]);
}

AI struct kq_head kq_head(enum kq t, const uint8_t *b)
{
    struct kq_head h;
    switch (t) {
    case KQ_Q2_K: {
        __m128i s = _mm_loadu_si128((const void *)b);
        h.s = _mm256_cvtepu8_epi16(_mm_and_si128(s, _mm_set1_epi8(0x0f)));
        h.m = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), _mm_set1_epi8(0x0f)));
        h.d = f16f(ld16(b + 80));
        h.dmin = f16f(ld16(b + 82));
        break;
    }
    case KQ_Q3_K: {
        uint32_t a[4];
        memcpy(a, b + 96, 12);
        const uint32_t k1 = 0x03030303, k2 = 0x0f0f0f0f;
        uint32_t tmp = a[2];
        a[2] = ((a[0] >> 4) & k2) | (((tmp >> 4) & k1) << 4);
        a[3] = ((a[1] >> 4) & k2) | (((tmp >> 6) & k1) << 4);
        a[0] = (a[0] & k2) | (((tmp >> 0) & k1) << 4);
        a[1] = (a[1] & k2) | (((tmp >> 2) & k1) << 4);
        __m128i s = _mm_sub_epi8(_mm_set_epi32((int)a[3], (int)a[2], (int)a[1], (int)a[0]), _mm_set1_epi8(32));
        h.s = _mm256_cvtepi8_epi16(s);
        h.m = h.s;
        h.d = f16f(ld16(b + 108));
        h.dmin = 4 * h.d;
        break;
    }
    case KQ_Q4_K:
    case KQ_Q5_K: {
        __m128i sm = k4_scales(b + 4);
        const __m128i dup = _mm_set_epi8(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
        h.s = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, dup));
        h.m = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_srli_si128(sm, 8), dup));
        h.d = f16f(ld16(b));
        h.dmin = f16f(ld16(b + 2));
        break;
    }
    default:
        h.s = _mm256_cvtepi8_epi16(_mm_loadu_si128((const void *)(b + 192)));
        h.m = h.s;
        h.d = f16f(ld16(b + 208));
        h.dmin = 32 * h.d;
        break;
    }
    return h;
}

AI __m512i bcast256(const uint8_t *p)
{
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const void *)p));
}

/* [a x32 bytes, b x32 bytes] */
AI __m512i bytes2(int a, int b)
{
    return _mm512_inserti64x4(_mm512_set1_epi8((char)a), _mm256_set1_epi8((char)b), 1);
}

/* Values 64k .. 64k+63 of the super-block as unsigned bytes. */
AI __m512i kq_quants(enum kq t, const uint8_t *b, int k)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(3);
    switch (t) {
    case KQ_Q2_K:
    case KQ_Q3_K: {
        /* half h = k/2 holds 32 bytes of qs; shifts 2*j for the four 32-value runs */
        const int h = k / 2, j0 = 2 * (k % 2);
        const uint8_t *qs = b + (t == KQ_Q2_K ? 16 : 32) + 32 * h;
        __m512i sh = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * j0)),
                                        _mm256_set1_epi16((short)(2 * j0 + 2)), 1);
        __m512i q = _mm512_and_si512(_mm512_srlv_epi16(bcast256(qs), sh), m2);
        if (t == KQ_Q3_K) {
            __mmask64 hb = _mm512_test_epi8_mask(bcast256(b), bytes2(1 << (4 * h + j0), 1 << (4 * h + j0 + 1)));
            q = _mm512_mask_add_epi8(q, hb, q, _mm512_set1_epi8(4));
        }
        return q;
    }
    case KQ_Q4_K:
    case KQ_Q5_K: {
        const uint8_t *qs = b + (t == KQ_Q4_K ? 16 : 48) + 32 * k;
        __m512i sh = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
        __m512i q = _mm512_and_si512(_mm512_srlv_epi16(bcast256(qs), sh), m4);
        if (t == KQ_Q5_K) {
            __mmask64 hb = _mm512_test_epi8_mask(bcast256(b + 16), bytes2(1 << (2 * k), 1 << (2 * k + 1)));
            q = _mm512_mask_add_epi8(q, hb, q, _mm512_set1_epi8(16));
        }
        return q;
    }
    default: {
        const int h = k / 2, hi = k % 2;
        __m512i l = _mm512_loadu_si512((const void *)(b + 64 * h));
        l = hi ? _mm512_and_si512(_mm512_srli_epi16(l, 4), m4) : _mm512_and_si512(l, m4);
        __m512i sh = _mm512_inserti64x4(_mm512_set1_epi16((short)(hi ? 4 : 0)),
                                        _mm256_set1_epi16((short)(hi ? 6 : 2)), 1);
        __m512i qh = _mm512_and_si512(_mm512_srlv_epi16(bcast256(b + 128 + 32 * h), sh), m2);
        return _mm512_or_si512(l, _mm512_slli_epi16(qh, 4));
    }
    }
}

AI void kq_tile(enum kq t, int MR, int NR, int64_t nb, const uint8_t *w, size_t ws,
                const uint8_t *x, size_t xs, float *y, size_t ldy)
{
    const size_t wb = kq_bytes(t), xb = sizeof(struct block_q8_k);
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++)
            acc[r][c] = _mm512_setzero_ps();

    for (int64_t b = 0; b < nb; b++) {
        struct kq_head hd[4];
        __m512i is[4][4];
        float dx[4];
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            hd[r] = kq_head(t, w + r * ws + b * wb);
        }
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++)
            dx[c] = ldf(x + c * xs + b * xb);
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
            for (int c = 0; c < NR; c++)
                is[r][c] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            /* scale of 16-group 4k + t/8 for int16 lane t */
            const __m512i idx = _mm512_add_epi16(
                _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16,
                                                   15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 3),
                _mm512_set1_epi16((short)(4 * k)));
            __m512i q[4], sv[4];
#pragma GCC unroll 4
            for (int r = 0; r < MR; r++) {
                q[r] = kq_quants(t, w + r * ws + b * wb, k);
                sv[r] = _mm512_permutexvar_epi16(idx, _mm512_castsi256_si512(hd[r].s));
            }
#pragma GCC unroll 4
            for (int c = 0; c < NR; c++) {
                __m512i xv = _mm512_loadu_si512((const void *)(x + c * xs + b * xb + 4 + 64 * k));
#pragma GCC unroll 4
                for (int r = 0; r < MR; r++)
                    is[r][c] = _mm512_dpwssd_epi32(is[r][c], _mm512_maddubs_epi16(q[r], xv), sv[r]);
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) {
            __m256i bs = _mm256_loadu_si256((const void *)(x + c * xs + b * xb + 4 + QK_K));
#pragma GCC unroll 4
            for (int r = 0; r < MR; r++) {
                __m512 mm = _mm512_cvtepi32_ps(_mm512_zextsi256_si512(_mm256_madd_epi16(hd[r].m, bs)));
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[r][c]), _mm512_set1_ps(hd[r].d * dx[c]),
                                            acc[r][c]);
                acc[r][c] = _mm512_fmadd_ps(mm, _mm512_set1_ps(-hd[r].dmin * dx[c]), acc[r][c]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++)
            y[c * ldy + r] = _mm512_reduce_add_ps(acc[r][c]);
}

/* ---- K-quants with many columns: 16 rows per vector ------------------------
 * As q8_0_pp: per super-block, each 64-value chunk of 16 rows is decoded
 * (kq_quants) and transposed so that lane r of vector j holds bytes
 * 4j..4j+3 of row r; a column then costs 16 vpdpbusd (q is unsigned, x
 * signed: no offset), 4 converts and 4 fmas with the per-row scales d*s[i]
 * of the chunk's four 16-groups, for 16 rows.  The min term is 8 vpdpwssd of
 * the rows' (m[2i], m[2i+1]) pairs with the column's bsums pairs. */
#define KPP_MIN_COLS 6

AI void kq_pp(enum kq t, int64_t nb, int nr, int nc, const uint8_t *w, size_t ws, const uint8_t *x,
              size_t xs, float *y, size_t ldy)
{
    const size_t wb = kq_bytes(t), xb = sizeof(struct block_q8_k);
    _Alignas(64) float acc[PP_COLS][16];
    _Alignas(64) float scf[16][16];     /* [group][row] d * s */
    _Alignas(64) int32_t mp[8][16];     /* [group pair][row] (m[2i], m[2i+1]) as int16 pair */
    _Alignas(64) float dmin[16];
    for (int r0 = 0; r0 < nr; r0 += 16) {
        const uint8_t *wr = w + (size_t)r0 * ws;
        for (int c0 = 0; c0 < nc; c0 += PP_COLS) {
            int ncc = nc - c0 < PP_COLS ? nc - c0 : PP_COLS;
            for (int c = 0; c < ncc; c++)
                _mm512_store_ps(acc[c], _mm512_setzero_ps());
            for (int64_t b = 0; b < nb; b++) {
                __m512i S[16], M[16];
                float d[16];
                for (int i = 0; i < 16; i++) {
                    struct kq_head h = kq_head(t, wr + (size_t)i * ws + (size_t)b * wb);
                    S[i] = _mm512_cvtepi16_epi32(h.s);
                    M[i] = _mm512_cvtepi16_epi32(h.m);
                    d[i] = h.d;
                    dmin[i] = h.dmin;
                }
                tr16(S);
                tr16(M);
                __m512 dv = _mm512_loadu_ps(d);
                for (int g = 0; g < 16; g++)
                    _mm512_store_ps(scf[g], _mm512_mul_ps(_mm512_cvtepi32_ps(S[g]), dv));
                for (int g = 0; g < 8; g++)
                    _mm512_store_si512((void *)mp[g],
                                       _mm512_or_si512(_mm512_and_si512(M[2 * g], _mm512_set1_epi32(0xffff)),
                                                       _mm512_slli_epi32(M[2 * g + 1], 16)));
                for (int k = 0; k < 4; k++) {
                    __m512i W[16];
                    for (int i = 0; i < 16; i++)
                        W[i] = kq_quants(t, wr + (size_t)i * ws + (size_t)b * wb, k);
                    tr16(W);
                    const __m512 f0 = _mm512_load_ps(scf[4 * k]), f1 = _mm512_load_ps(scf[4 * k + 1]),
                                 f2 = _mm512_load_ps(scf[4 * k + 2]), f3 = _mm512_load_ps(scf[4 * k + 3]);
                    for (int c = 0; c < ncc; c++) {
                        const uint8_t *xp = x + (size_t)(c0 + c) * xs + (size_t)b * xb;
                        const uint8_t *q = xp + 4 + 64 * k;
                        __m512i s[4];
#pragma GCC unroll 4
                        for (int g = 0; g < 4; g++) {
                            s[g] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), W[4 * g],
                                                       _mm512_set1_epi32((int)ld32(q + 16 * g)));
#pragma GCC unroll 3
                            for (int jj = 1; jj < 4; jj++)
                                s[g] = _mm512_dpbusd_epi32(s[g], W[4 * g + jj],
                                                           _mm512_set1_epi32((int)ld32(q + 16 * g + 4 * jj)));
                        }
                        __m512 u = _mm512_mul_ps(_mm512_cvtepi32_ps(s[0]), f0);
                        u = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[1]), f1, u);
                        u = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[2]), f2, u);
                        u = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[3]), f3, u);
                        _mm512_store_ps(acc[c], _mm512_fmadd_ps(u, _mm512_set1_ps(ldf(xp)), _mm512_load_ps(acc[c])));
                    }
                }
                const __m512 dm = _mm512_load_ps(dmin);
                for (int c = 0; c < ncc; c++) {
                    const uint8_t *xp = x + (size_t)(c0 + c) * xs + (size_t)b * xb;
                    __m512i mi = _mm512_setzero_si512();
#pragma GCC unroll 8
                    for (int g = 0; g < 8; g++)
                        mi = _mm512_dpwssd_epi32(mi, _mm512_load_si512((const void *)mp[g]),
                                                 _mm512_set1_epi32((int)ld32(xp + 4 + QK_K + 4 * g)));
                    _mm512_store_ps(acc[c], _mm512_fmadd_ps(_mm512_cvtepi32_ps(mi),
                                                            _mm512_mul_ps(dm, _mm512_set1_ps(-ldf(xp))),
                                                            _mm512_load_ps(acc[c])));
                }
            }
            for (int c = 0; c < ncc; c++)
                _mm512_storeu_ps(y + (size_t)(c0 + c) * ldy + r0, _mm512_load_ps(acc[c]));
        }
    }
}

/* ---- F32 / F16 / BF16 weights against F32 ---------------------------------- */

enum fp { FP_F32, FP_F16, FP_BF16 };

AI __m512 fp_load(enum fp t, const uint8_t *w, int64_t i, __mmask16 m)
{
    switch (t) {
    case FP_F32: return _mm512_maskz_loadu_ps(m, w + 4 * i);
    case FP_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + 2 * i));
    default:
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, w + 2 * i)), 16));
    }
}

AI void fp_tile(enum fp t, int MR, int NR, int64_t n, const uint8_t *w, size_t ws,
                const uint8_t *x, size_t xs, float *y, size_t ldy)
{
    if (MR == 1 && NR == 1) {
        /* one row: four sums, so the adds do not wait on each other */
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const float *xf = (const float *)(const void *)x;
        int64_t i = 0;
        for (; i + 64 <= n; i += 64) {
            a0 = _mm512_fmadd_ps(fp_load(t, w, i, 0xffff), _mm512_loadu_ps(xf + i), a0);
            a1 = _mm512_fmadd_ps(fp_load(t, w, i + 16, 0xffff), _mm512_loadu_ps(xf + i + 16), a1);
            a2 = _mm512_fmadd_ps(fp_load(t, w, i + 32, 0xffff), _mm512_loadu_ps(xf + i + 32), a2);
            a3 = _mm512_fmadd_ps(fp_load(t, w, i + 48, 0xffff), _mm512_loadu_ps(xf + i + 48), a3);
        }
        for (; i < n; i += 16) {
            __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
            a0 = _mm512_fmadd_ps(fp_load(t, w, i, m), _mm512_maskz_loadu_ps(m, xf + i), a0);
        }
        y[0] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
        return;
    }
    __m512 acc[8][8];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int c = 0; c < NR; c++)
            acc[r][c] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 wv[8];
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++)
            wv[r] = fp_load(t, w + r * ws, i, m);
#pragma GCC unroll 8
        for (int c = 0; c < NR; c++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + c * xs + 4 * i);
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++)
                acc[r][c] = _mm512_fmadd_ps(wv[r], xv, acc[r][c]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int c = 0; c < NR; c++)
            y[c * ldy + r] = _mm512_reduce_add_ps(acc[r][c]);
}

/* ---- drivers: full tiles, then the rows and columns left over ----------
 * One column (generation) goes row after row: the weights then stream from
 * memory as one sequential run, which the prefetchers follow at about twice
 * the rate they reach for four interleaved rows (measured here, Q8_0 and
 * Q4_K, 235 MB of weights: 12 -> 25 GB/s; software prefetch did not help). */

#define TILES(tile, T, MR_, NR_, cnt)                                                          \
    do {                                                                                        \
        const uint8_t *W = w, *X = x;                                                           \
        int c = 0;                                                                              \
        if (nc == 1) {                                                                          \
            for (int r = 0; r < nr; r++)                                                        \
                tile(T, 1, 1, cnt, W + r * ws, ws, X, xs, y + r, ldy);                          \
            break;                                                                              \
        }                                                                                       \
        for (; c + NR_ <= nc; c += NR_) {                                                       \
            int r = 0;                                                                          \
            for (; r + MR_ <= nr; r += MR_)                                                     \
                tile(T, MR_, NR_, cnt, W + r * ws, ws, X + c * xs, xs, y + c * ldy + r, ldy);   \
            for (; r < nr; r++)                                                                 \
                tile(T, 1, NR_, cnt, W + r * ws, ws, X + c * xs, xs, y + c * ldy + r, ldy);     \
        }                                                                                       \
        for (; c < nc; c++) {                                                                   \
            int r = 0;                                                                          \
            for (; r + MV <= nr; r += MV)                                                       \
                tile(T, MV, 1, cnt, W + r * ws, ws, X + c * xs, xs, y + c * ldy + r, ldy);      \
            for (; r < nr; r++)                                                                 \
                tile(T, 1, 1, cnt, W + r * ws, ws, X + c * xs, xs, y + c * ldy + r, ldy);       \
        }                                                                                       \
    } while (0)

#define GEMM_FN(name, tile, T, MR_, NR_, bs)                                                   \
    static void name(int64_t n, int nr, int nc, const void *w, size_t ws, const void *x,       \
                     size_t xs, float *y, size_t ldy)                                           \
    {                                                                                           \
        TILES(tile, T, MR_, NR_, n / (bs));                                                     \
    }

static void gemm_q4_0(int64_t n, int nr, int nc, const void *w, size_t ws, const void *x, size_t xs,
                      float *y, size_t ldy)
{
    if (nc >= PP_MIN_COLS && nr >= 16) {
        int nr16 = nr / 16 * 16;
        leg_pp(LEG_Q4_0, n / QK4_0, nr16, nc, w, ws, x, xs, y, ldy);
        w = (const uint8_t *)w + (size_t)nr16 * ws;
        y += nr16;
        nr -= nr16;
    }
    TILES(leg_tile, LEG_Q4_0, LEG_MR, LEG_NR, n / QK4_0);
}
static void gemm_q4_1(int64_t n, int nr, int nc, const void *w, size_t ws, const void *x, size_t xs,
                      float *y, size_t ldy)
{
    if (nc >= PP_MIN_COLS && nr >= 16) {
        int nr16 = nr / 16 * 16;
        leg_pp(LEG_Q4_1, n / QK4_1, nr16, nc, w, ws, x, xs, y, ldy);
        w = (const uint8_t *)w + (size_t)nr16 * ws;
        y += nr16;
        nr -= nr16;
    }
    TILES(leg_tile, LEG_Q4_1, LEG_MR, LEG_NR, n / QK4_1);
}
static void gemm_q5_0(int64_t n, int nr, int nc, const void *w, size_t ws, const void *x, size_t xs,
                      float *y, size_t ldy)
{
    if (nc >= PP_MIN_COLS && nr >= 16) {
        int nr16 = nr / 16 * 16;
        leg_pp(LEG_Q5_0, n / QK5_0, nr16, nc, w, ws, x, xs, y, ldy);
        w = (const uint8_t *)w + (size_t)nr16 * ws;
        y += nr16;
        nr -= nr16;
    }
    TILES(leg_tile, LEG_Q5_0, LEG_MR, LEG_NR, n / QK5_0);
}
static void gemm_q5_1(int64_t n, int nr, int nc, const void *w, size_t ws, const void *x, size_t xs,
                      float *y, size_t ldy)
{
    if (nc >= PP_MIN_COLS && nr >= 16) {
        int nr16 = nr / 16 * 16;
        leg_pp(LEG_Q5_1, n / QK5_1, nr16, nc, w, ws, x, xs, y, ldy);
        w = (const uint8_t *)w + (size_t)nr16 * ws;
        y += nr16;
        nr -= nr16;
    }
    TILES(leg_tile, LEG_Q5_1, LEG_MR, LEG_NR, n / QK5_1);
}
static void gemm_q8_0(int64_t n, int nr, int nc, const void *w, size_t ws, const void *x, size_t xs,
                      float *y, size_t ldy)
{
    if (nc >= PP_MIN_COLS && nr >= 16) {
        int nr16 = nr / 16 * 16;
        leg_pp(LEG_Q8_0, n / QK8_0, nr16, nc, w, ws, x, xs, y, ldy);
        w = (const uint8_t *)w + (size_t)nr16 * ws;
        y += nr16;
        nr -= nr16;
    }
    TILES(leg_tile, LEG_Q8_0, LEG_MR, LEG_NR, n / QK8_0);
}
static void gemm_q2_k(int64_t n, int nr, int nc, const void *w, size_t ws, const void *x, size_t xs,
                      float *y, size_t ldy)
{
    if (nc >= KPP_MIN_COLS && nr >= 16) {
        int nr16 = nr / 16 * 16;
        kq_pp(KQ_Q2_K, n / QK_K, nr16, nc, w, ws, x, xs, y, ldy);
        w = (const uint8_t *)w + (size_t)nr16 * ws;
        y += nr16;
        nr -= nr16;
    }
    TILES(kq_tile, KQ_Q2_K, KQ_MR, KQ_NR, n / QK_K);
}
static void gemm_q3_k(int64_t n, int nr, int nc, const void *w, size_t ws, const void *x, size_t xs,
                      float *y, size_t ldy)
{
    if (nc >= KPP_MIN_COLS && nr >= 16) {
        int nr16 = nr / 16 * 16;
        kq_pp(KQ_Q3_K, n / QK_K, nr16, nc, w, ws, x, xs, y, ldy);
        w = (const uint8_t *)w + (size_t)nr16 * ws;
        y += nr16;
        nr -= nr16;
    }
    TILES(kq_tile, KQ_Q3_K, KQ_MR, KQ_NR, n / QK_K);
}
static void gemm_q4_k(int64_t n, int nr, int nc, const void *w, size_t ws, const void *x, size_t xs,
                      float *y, size_t ldy)
{
    if (nc >= KPP_MIN_COLS && nr >= 16) {
        int nr16 = nr / 16 * 16;
        kq_pp(KQ_Q4_K, n / QK_K, nr16, nc, w, ws, x, xs, y, ldy);
        w = (const uint8_t *)w + (size_t)nr16 * ws;
        y += nr16;
        nr -= nr16;
    }
    TILES(kq_tile, KQ_Q4_K, KQ_MR, KQ_NR, n / QK_K);
}
static void gemm_q5_k(int64_t n, int nr, int nc, const void *w, size_t ws, const void *x, size_t xs,
                      float *y, size_t ldy)
{
    if (nc >= KPP_MIN_COLS && nr >= 16) {
        int nr16 = nr / 16 * 16;
        kq_pp(KQ_Q5_K, n / QK_K, nr16, nc, w, ws, x, xs, y, ldy);
        w = (const uint8_t *)w + (size_t)nr16 * ws;
        y += nr16;
        nr -= nr16;
    }
    TILES(kq_tile, KQ_Q5_K, KQ_MR, KQ_NR, n / QK_K);
}
static void gemm_q6_k(int64_t n, int nr, int nc, const void *w, size_t ws, const void *x, size_t xs,
                      float *y, size_t ldy)
{
    if (nc >= KPP_MIN_COLS && nr >= 16) {
        int nr16 = nr / 16 * 16;
        kq_pp(KQ_Q6_K, n / QK_K, nr16, nc, w, ws, x, xs, y, ldy);
        w = (const uint8_t *)w + (size_t)nr16 * ws;
        y += nr16;
        nr -= nr16;
    }
    TILES(kq_tile, KQ_Q6_K, KQ_MR, KQ_NR, n / QK_K);
}
GEMM_FN(gemm_f32, fp_tile, FP_F32, FP_MR, FP_NR, 1)
GEMM_FN(gemm_f16, fp_tile, FP_F16, FP_MR, FP_NR, 1)
GEMM_FN(gemm_bf16, fp_tile, FP_BF16, FP_MR, FP_NR, 1)

/* ---- activation quantizers ---------------------------------------------------
 * Byte for byte the reference's (quant.c): Q8_0/Q8_1 take d = amax/127,
 * q = nearest-even(x * (127/amax)); Q8_K takes the signed value of largest
 * magnitude (the first on a tie), iscale = -127/max, q = nearest-even, <= 127. */

AI __m512 absps(__m512 v) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff))); }

/* 32 floats -> 32 int8 at q; returns d, *sum = sum of q. */
AI float q8_block(const float *x, int8_t *q, int *sum)
{
    __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(absps(a), absps(b)));
    float d = amax / 127.0f;
    float id = amax != 0 ? 127.0f / amax : 0.0f;
    __m512 vid = _mm512_set1_ps(id);
    __m512i ia = _mm512_cvt_roundps_epi32(_mm512_mul_ps(a, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512i ib = _mm512_cvt_roundps_epi32(_mm512_mul_ps(b, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    /* saturating narrow = the reference's clamp to [-128, 127] */
    _mm_storeu_si128((void *)q, _mm512_cvtsepi32_epi8(ia));
    _mm_storeu_si128((void *)(q + 16), _mm512_cvtsepi32_epi8(ib));
    if (sum) {
        __m512i s = _mm512_add_epi32(_mm512_max_epi32(_mm512_min_epi32(ia, _mm512_set1_epi32(127)), _mm512_set1_epi32(-128)),
                                     _mm512_max_epi32(_mm512_min_epi32(ib, _mm512_set1_epi32(127)), _mm512_set1_epi32(-128)));
        *sum = _mm512_reduce_add_epi32(s);
    }
    return d;
}

AI quant_f16 f32_f16(float f) { return (quant_f16)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

static void quantize_q8_0(const float *src, void *dst, int64_t n)
{
    struct block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0)
        b[i].d = f32_f16(q8_block(src, b[i].qs, NULL));
}

static void quantize_q8_1(const float *src, void *dst, int64_t n)
{
    struct block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, src += QK8_1) {
        int sum;
        float d = q8_block(src, b[i].qs, &sum);
        b[i].d = f32_f16(d);
        b[i].s = f32_f16(d * (float)sum);
    }
}

static void quantize_q8_k(const float *src, void *dst, int64_t n)
{
    struct block_q8_k *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        __m512 am = _mm512_setzero_ps();
        for (int j = 0; j < QK_K; j += 16)
            am = _mm512_max_ps(am, absps(_mm512_loadu_ps(src + j)));
        float amax = _mm512_reduce_max_ps(am);
        if (!(amax > 0)) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        float max = 0;
        __m512 va = _mm512_set1_ps(amax);
        for (int j = 0; j < QK_K; j += 16) {
            __mmask16 e = _mm512_cmp_ps_mask(absps(_mm512_loadu_ps(src + j)), va, _CMP_EQ_OQ);
            if (e) {
                max = src[j + __builtin_ctz(e)];
                break;
            }
        }
        float iscale = -127.0f / max;
        __m512 vs = _mm512_set1_ps(iscale);
        for (int j = 0; j < QK_K; j += 16) {
            __m512i v = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(src + j), vs),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            v = _mm512_min_epi32(v, _mm512_set1_epi32(127));
            _mm_storeu_si128((void *)(b[i].qs + j), _mm512_cvtsepi32_epi8(v));
            b[i].bsums[j / 16] = (int16_t)_mm512_reduce_add_epi32(v);
        }
        b[i].d = 1 / iscale;
    }
}

void cpu_avx512_fill(struct cpu_kernels *k)
{
    k->isa = CPU_ISA_AVX512;
    k->isa_name = "avx512";
    k->gemm[QUANT_TYPE_F32] = gemm_f32;
    k->gemm[QUANT_TYPE_F16] = gemm_f16;
    k->gemm[QUANT_TYPE_BF16] = gemm_bf16;
    k->gemm[QUANT_TYPE_Q4_0] = gemm_q4_0;
    k->gemm[QUANT_TYPE_Q4_1] = gemm_q4_1;
    k->gemm[QUANT_TYPE_Q5_0] = gemm_q5_0;
    k->gemm[QUANT_TYPE_Q5_1] = gemm_q5_1;
    k->gemm[QUANT_TYPE_Q8_0] = gemm_q8_0;
    k->gemm[QUANT_TYPE_Q2_K] = gemm_q2_k;
    k->gemm[QUANT_TYPE_Q3_K] = gemm_q3_k;
    k->gemm[QUANT_TYPE_Q4_K] = gemm_q4_k;
    k->gemm[QUANT_TYPE_Q5_K] = gemm_q5_k;
    k->gemm[QUANT_TYPE_Q6_K] = gemm_q6_k;
    k->quantize[QUANT_TYPE_Q8_0] = quantize_q8_0;
    k->quantize[QUANT_TYPE_Q8_1] = quantize_q8_1;
    k->quantize[QUANT_TYPE_Q8_K] = quantize_q8_k;
}
