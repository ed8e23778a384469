#version 450
/* dst[t][row0 + r] = W[r] . x[t] (+ bias) with the dot products on packed
 * int8 (SPV_KHR_integer_dot_product): x was quantized by quant_x.comp to
 * int8 blocks of 32 with a scale and a sum, rounded as the reference
 * rounds activations for the weight type.
 * Weight formats and their interleaving (u[7] = G) as in matmul.comp:
 * W_Q8 (Q8_0), W_Q6 (Q6_K: int8 quants, a scale per 16), W_Q4 (Q4_0,
 * Q4_1, Q4_K: nibbles, a scale a and offset b per 32, value a*q - b; the
 * x quants are in Q4 order, see quant_x.comp).
 * One invocation per weight row and NT tokens (1 or 8: each weight word is
 * read once per NT tokens, as in matmul.comp); workgroup y = the group of
 * NT tokens from u[2]'s first, z = head.
 * u: 0 n_in, 1 n_rows, 2 n_tok, 3 row0, 4 x quant word offset, 5 d_off,
 *    6 d_stride, 7 G, 8 has_bias, 9 scale_off, 10 x scale word offset,
 *    11 x blocks per token, 12 w_row0, 13 x_head (blocks), 14 d_head,
 *    15 rows per head (as in matmul.comp).  Token t of this dispatch reads
 *    x token t and writes dst row t from d_off.
 * f: 0 (W_Q4) nonzero for Q4_0: b = 8a, and x's sum word is the integer
 *    sum of its quants, so the block's dot is a * d * ((q - 8) . x) in
 *    integers, as the reference computes it. */
#include "common.glsl"
#extension GL_EXT_spirv_intrinsics : require

layout(local_size_x = 64) in;

#ifndef NT
#define NT 1
#endif

layout(std430, binding = 0) readonly buffer W { uint wq[]; };
layout(std430, binding = 1) readonly buffer XQ { uint xq[]; };
layout(std430, binding = 2) writeonly buffer D { float d[]; };
layout(std430, binding = 3) readonly buffer B { float bias[]; };

/* OpSDot (4450) on 4x8-bit packed vectors (format 0); capabilities
 * DotProduct (6019) and DotProductInput4x8BitPacked (6018).  The glslc of
 * Debian 12 predates GL_EXT_integer_dot_product's dotPacked4x8EXT. */
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018],
                  id = 4450)
int sdot4x8(uint a, uint b, spirv_literal int packed_format);
#define DOT(a, b) sdot4x8(a, b, 0)

/* No local arrays (see matmul.comp): the tokens are unrolled by the
 * preprocessor. */
#if NT == 8
#define TOKENS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#else
#define TOKENS(X) X(0)
#endif
#define DECL(j) float acc##j = 0.0; \
    uint xblk##j = min(t0 + j, n_tok - 1) * pc.u[11] + head * pc.u[13];
#define XW(j, q) xq[pc.u[4] + (xblk##j + kb) * 8 + (q)]
#define XD(j) uintBitsToFloat(xq[pc.u[10] + (xblk##j + kb) * 2])
#define XS(j) uintBitsToFloat(xq[pc.u[10] + (xblk##j + kb) * 2 + 1])
#define XI(j) int(xq[pc.u[10] + (xblk##j + kb) * 2 + 1])
#if defined(W_Q8)
#define ACC(j) { int is = 0; \
    [[unroll]] for (uint q = 0; q < 8; q++) is += DOT(w[q], XW(j, q)); \
    acc##j += s * XD(j) * float(is); }
#elif defined(W_Q6)
#define ACC(j) { int i0 = 0, i1 = 0; \
    [[unroll]] for (uint q = 0; q < 4; q++) { i0 += DOT(w[q], XW(j, q)); i1 += DOT(w[q + 4], XW(j, q + 4)); } \
    acc##j += XD(j) * (s0 * float(i0) + s1 * float(i1)); }
#elif defined(W_Q4)
#define ACC(j) { int is = 0; \
    [[unroll]] for (uint q = 0; q < 4; q++) is += DOT(w[2 * q], XW(j, 2 * q)) + DOT(w[2 * q + 1], XW(j, 2 * q + 1)); \
    if (q4_0) acc##j += s * XD(j) * float(is - 8 * XI(j)); \
    else acc##j += s * XD(j) * float(is) - mb * XS(j); }
#endif
#define STORE(j) if (t0 + j < n_tok) d[d0 + (t0 + j) * pc.u[6] + pc.u[3] + r] = acc##j + b;

void main()
{
    uint r = gl_GlobalInvocationID.x;
    if (r >= pc.u[1])
        return;
    uint n_in = pc.u[0], n_tok = pc.u[2], t0 = gl_WorkGroupID.y * NT, head = gl_WorkGroupID.z;
    uint wr = pc.u[12] + head * pc.u[15] + r;
    uint d0 = pc.u[5] + head * pc.u[14];
    uint G = pc.u[7];
#ifdef W_Q4
    uint ub = (wr / G) * G * (n_in / 8u) + wr % G;
#else
    uint ub = (wr / G) * G * (n_in / 4u) + wr % G;
#endif
    TOKENS(DECL)
#ifdef W_Q4
    bool q4_0 = pc.f[0] != 0.0;
#endif
    uint nb = n_in / 32;
    for (uint kb = 0; kb < nb; kb++) {
        /* the block's weight words, low and high nibbles apart for Q4 */
        uint w[8];
#if defined(W_Q8) || defined(W_Q6)
        [[unroll]] for (uint q = 0; q < 8; q++)
            w[q] = wq[ub + (kb * 8 + q) * G];
#else
        [[unroll]] for (uint q = 0; q < 4; q++) {
            uint u = wq[ub + (kb * 4 + q) * G];
            w[2 * q] = u & 0x0F0F0F0Fu;
            w[2 * q + 1] = (u >> 4) & 0x0F0F0F0Fu;
        }
#endif
#if defined(W_Q8)
        float s = uintBitsToFloat(wq[pc.u[9] + wr * nb + kb]);
#elif defined(W_Q6)
        uint so = pc.u[9] + (wr * nb + kb) * 2;
        float s0 = uintBitsToFloat(wq[so]), s1 = uintBitsToFloat(wq[so + 1]);
#else
        uint so = pc.u[9] + (wr * nb + kb) * 2;
        float s = uintBitsToFloat(wq[so]), mb = uintBitsToFloat(wq[so + 1]);
#endif
        TOKENS(ACC)
    }
    float b = pc.u[8] != 0 ? bias[pc.u[3] + r] : 0.0;
    TOKENS(STORE)
}
