#version 450
/* dst[t][row0 + r] = W[r] . x[t] (+ bias) for one or two tokens with the
 * dot products on packed int8 (SPV_KHR_integer_dot_product): x was
 * quantized by quant_x.comp to int8 blocks of 32 with a scale and a sum.
 * Weight formats and their interleaving (u[7] = G) as in matmul.comp:
 * W_Q8 (Q8_0), W_Q6 (Q6_K: int8 quants, a scale per 16), W_Q4 (Q4_0,
 * Q4_1, Q4_K: nibbles, a scale a and offset b per 32, value a*q - b; the
 * x quants are in Q4 order, see quant_x.comp).
 * One invocation per weight row; workgroup y = token, z = head.
 * u: 0 n_in, 1 n_rows, 2 n_tok, 3 row0, 4 x quant word offset, 5 d_off,
 *    6 d_stride, 7 G, 8 has_bias, 9 scale_off, 10 x scale word offset,
 *    11 x blocks per token, 12 w_row0, 13 x_head (blocks), 14 d_head,
 *    15 rows per head (as in matmul.comp). */
#include "common.glsl"
#extension GL_EXT_spirv_intrinsics : require

layout(local_size_x = 64) in;

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

void main()
{
    uint r = gl_GlobalInvocationID.x;
    if (r >= pc.u[1])
        return;
    uint n_in = pc.u[0], t = gl_WorkGroupID.y, head = gl_WorkGroupID.z;
    uint wr = pc.u[12] + head * pc.u[15] + r;
    uint d0 = pc.u[5] + head * pc.u[14];
    uint G = pc.u[7];
#ifdef W_Q4
    uint ub = (wr / G) * G * (n_in / 8u) + wr % G;
#else
    uint ub = (wr / G) * G * (n_in / 4u) + wr % G;
#endif
    uint xblk0 = t * pc.u[11] + head * pc.u[13];
    float acc = 0.0;
    uint nb = n_in / 32;
    for (uint kb = 0; kb < nb; kb++) {
        uint xblk = xblk0 + kb, xo = pc.u[4] + xblk * 8, xso = pc.u[10] + xblk * 2;
        float xd = uintBitsToFloat(xq[xso]);
#if defined(W_Q8)
        float s = uintBitsToFloat(wq[pc.u[9] + wr * nb + kb]);
        int is = 0;
        [[unroll]] for (uint q = 0; q < 8; q++)
            is += DOT(wq[ub + (kb * 8 + q) * G], xq[xo + q]);
        acc += s * xd * float(is);
#elif defined(W_Q6)
        uint so = pc.u[9] + (wr * nb + kb) * 2;
        float s0 = uintBitsToFloat(wq[so]), s1 = uintBitsToFloat(wq[so + 1]);
        int i0 = 0, i1 = 0;
        [[unroll]] for (uint q = 0; q < 4; q++) {
            i0 += DOT(wq[ub + (kb * 8 + q) * G], xq[xo + q]);
            i1 += DOT(wq[ub + (kb * 8 + q + 4) * G], xq[xo + q + 4]);
        }
        acc += xd * (s0 * float(i0) + s1 * float(i1));
#elif defined(W_Q4)
        uint so = pc.u[9] + (wr * nb + kb) * 2;
        float s = uintBitsToFloat(wq[so]), mb = uintBitsToFloat(wq[so + 1]);
        int is = 0;
        [[unroll]] for (uint q = 0; q < 4; q++) {
            uint u = wq[ub + (kb * 4 + q) * G];
            is += DOT(u & 0x0F0F0F0Fu, xq[xo + 2 * q]) + DOT((u >> 4) & 0x0F0F0F0Fu, xq[xo + 2 * q + 1]);
        }
        acc += s * xd * float(is) - mb * uintBitsToFloat(xq[xso + 1]);
#endif
    }
    float b = pc.u[8] != 0 ? bias[pc.u[3] + r] : 0.0;
    d[d0 + t * pc.u[6] + pc.u[3] + r] = acc + b;
}
