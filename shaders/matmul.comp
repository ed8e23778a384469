#version 450
/* dst[t][row0 + r] = W[r] . x[t] (+ bias[row0 + r]) for the rows r of one
 * weight chunk.  One invocation per weight row and NT tokens: each weight
 * element is read once per NT tokens and dequantized in registers.  No
 * shared memory, no barriers: this suits lavapipe, where an invocation is a
 * SIMD lane and workgroup barriers are costly.
 * Weight formats (W_*), each a run of quants, then (at word u[9]) scales:
 * F32 rows; F16 rows (pairs in uints); Q8: int8 quants, one float scale
 * per 32; Q6: int8 quants, a float scale per 16 (Q6_K); Q4: nibbles
 * (value i of a 32-block at bits 4*(i%8) of word i/8), per 32 a float
 * scale a and offset b, value = a*q - b (Q4_0, Q4_1, Q4_K).
 * u: 0 n_in, 1 n_rows (this chunk), 2 n_tok, 3 row0, 4 x_off, 5 d_off,
 *    6 d_stride, 7 b_off, 8 has_bias, 9 scale_off (Q8), 10 t0 */
#include "common.glsl"

layout(local_size_x = 64) in;

#ifndef NT
#define NT 8
#endif

#if defined(W_F32)
layout(std430, binding = 0) readonly buffer W { vec4 w4[]; };
#elif defined(W_F16)
layout(std430, binding = 0) readonly buffer W { uvec2 w2[]; };
#else
layout(std430, binding = 0) readonly buffer W { uint wq[]; };
#endif
layout(std430, binding = 1) readonly buffer X { vec4 x4[]; };
layout(std430, binding = 2) writeonly buffer D { float d[]; };
layout(std430, binding = 3) readonly buffer B { float bias[]; };

vec4 i8x4(uint v)
{
    ivec4 q = ivec4(bitfieldExtract(int(v), 0, 8), bitfieldExtract(int(v), 8, 8),
                    bitfieldExtract(int(v), 16, 8), bitfieldExtract(int(v), 24, 8));
    return vec4(q);
}

void main()
{
    uint r = gl_GlobalInvocationID.x;
    uint n_in = pc.u[0], n_tok = pc.u[2];
    if (r >= pc.u[1])
        return;
    uint t0 = pc.u[10] + gl_WorkGroupID.y * NT;
    uint xb[NT];
    float acc[NT];
    [[unroll]] for (uint j = 0; j < NT; j++) {
        xb[j] = (pc.u[4] + min(t0 + j, n_tok - 1) * n_in) / 4;
        acc[j] = 0.0;
    }
    uint nb = n_in / 32;
    for (uint kb = 0; kb < nb; kb++) {
        vec4 wv[8];
        float s = 1.0, s1 = 1.0, mb = 0.0;
#if defined(W_F32)
        uint wb = (r * n_in) / 4 + kb * 8;
        [[unroll]] for (uint q = 0; q < 8; q++)
            wv[q] = w4[wb + q];
#elif defined(W_F16)
        uint wb = (r * n_in) / 4 + kb * 8;
        [[unroll]] for (uint q = 0; q < 8; q++) {
            uvec2 h = w2[wb + q];
            wv[q] = vec4(unpackHalf2x16(h.x), unpackHalf2x16(h.y));
        }
#elif defined(W_Q8)
        uint wb = (r * n_in) / 4 + kb * 8;
        [[unroll]] for (uint q = 0; q < 8; q++)
            wv[q] = i8x4(wq[wb + q]);
        s = uintBitsToFloat(wq[pc.u[9] + r * nb + kb]);
#elif defined(W_Q6)
        uint wb = (r * n_in) / 4 + kb * 8;
        [[unroll]] for (uint q = 0; q < 8; q++)
            wv[q] = i8x4(wq[wb + q]);
        uint so = pc.u[9] + (r * nb + kb) * 2;
        s = uintBitsToFloat(wq[so]);
        s1 = uintBitsToFloat(wq[so + 1]);
#elif defined(W_Q4)
        uint wb = (r * n_in) / 8 + kb * 4;
        [[unroll]] for (uint q = 0; q < 8; q++) {
            uint u = wq[wb + q / 2] >> (16 * (q % 2));
            wv[q] = vec4(float(u & 15u), float((u >> 4) & 15u), float((u >> 8) & 15u),
                         float((u >> 12) & 15u));
        }
        uint so = pc.u[9] + (r * nb + kb) * 2;
        s = uintBitsToFloat(wq[so]);
        mb = uintBitsToFloat(wq[so + 1]);
#endif
        [[unroll]] for (uint j = 0; j < NT; j++) {
            uint xo = xb[j] + kb * 8;
#if defined(W_Q6)
            float a = 0.0, a1 = 0.0;
            [[unroll]] for (uint q = 0; q < 4; q++) {
                a += dot(wv[q], x4[xo + q]);
                a1 += dot(wv[q + 4], x4[xo + q + 4]);
            }
            acc[j] += s * a + s1 * a1;
#elif defined(W_Q4)
            float a = 0.0, xs = 0.0;
            [[unroll]] for (uint q = 0; q < 8; q++) {
                vec4 xv = x4[xo + q];
                a += dot(wv[q], xv);
                xs += dot(xv, vec4(1.0));
            }
            acc[j] += s * a - mb * xs;
#else
            float a = 0.0;
            [[unroll]] for (uint q = 0; q < 8; q++)
                a += dot(wv[q], x4[xo + q]);
            acc[j] += s * a;
#endif
        }
    }
    float b = pc.u[8] != 0 ? bias[pc.u[7] + pc.u[3] + r] : 0.0;
    [[unroll]] for (uint j = 0; j < NT; j++)
        if (t0 + j < n_tok)
            d[pc.u[5] + (t0 + j) * pc.u[6] + pc.u[3] + r] = acc[j] + b;
}
