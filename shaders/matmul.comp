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
 * The quants of G = u[7] consecutive rows are interleaved (unit k of row r
 * at unit (r/G)*G*units_per_row + k*G + r%G, a unit being what one load
 * takes: vec4, uvec2 of halves, or a word), so neighbouring lanes read
 * neighbouring memory; G = 1 is plain rows.
 * u: 0 n_in, 1 n_rows (this dispatch), 2 n_tok, 3 row0 (dst column and bias
 *    index of row 0), 4 x_off, 5 d_off, 6 d_stride, 7 G, 8 has_bias,
 *    9 scale_off, 10 t0, 11 x_stride (floats per x row), 12 w_row0 (first
 *    weight row of the chunk this dispatch reads; matmul_heads and the
 *    experts pick a head's rows with it), 13 x_head, 14 d_head, 15 rows per
 *    head: workgroup z = head j reads weight rows from j*u[15], x from
 *    x_off + j*x_head and writes from d_off + j*d_head (matmul_heads).
 * F32 and F16 rows need only a multiple of 4 values: a tail after the last
 * whole 32 is read without shuffles. */
#include "common.glsl"
#ifdef SHUFFLE_X
#extension GL_KHR_shader_subgroup_shuffle : require
#endif

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

/* No local arrays and no loops over them: llvmpipe (lavapipe) keeps a
 * dynamically indexed local array in memory, one lane at a time, which
 * made this shader ten times slower.  Everything below is unrolled by the
 * preprocessor instead. */
#if NT == 8
#define TOKENS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#else
#define TOKENS(X) X(0)
#endif
#define DECL(j) float acc##j = 0.0; uint xb##j = (x0 + min(t0 + j, n_tok - 1) * pc.u[11]) / 4;
#ifdef SHUFFLE_X
/* each lane of a group of 8 loads one of the block's 8 x vectors; the
 * others get it by shuffle, instead of every lane loading all 8 */
#define XL(j) vec4 xl##j = x4[xb##j + kb * 8 + (lane & 7u)];
#define ACC(j) acc##j += dot(w, subgroupShuffle(xl##j, (lane & ~7u) | q));
#else
#define XL(j)
#define ACC(j) acc##j += dot(w, x4[xb##j + k4]);
#endif
#define ACC_DIRECT(j) acc##j += dot(w, x4[xb##j + k4]);
#define STORE(j) if (t0 + j < n_tok) d[d0 + (t0 + j) * pc.u[6] + pc.u[3] + r] = acc##j + b;

void main()
{
    uint r = min(gl_GlobalInvocationID.x, pc.u[1] - 1);  /* every lane takes part in shuffles */
    uint n_in = pc.u[0], n_tok = pc.u[2];
    uint head = gl_WorkGroupID.z;
    uint wr = pc.u[12] + head * pc.u[15] + r;               /* the weight row in the chunk */
    uint x0 = pc.u[4] + head * pc.u[13], d0 = pc.u[5] + head * pc.u[14];
    uint G = pc.u[7];
#ifdef W_Q4
    uint ub = (wr / G) * G * (n_in / 8u) + wr % G;
#else
    uint ub = (wr / G) * G * (n_in / 4u) + wr % G;
#endif
#ifdef SHUFFLE_X
    uint lane = gl_SubgroupInvocationID;
#endif
    uint t0 = pc.u[10] + gl_WorkGroupID.y * NT;
    TOKENS(DECL)
    uint nb = n_in / 32;
    for (uint kb = 0; kb < nb; kb++) {
#if defined(W_Q8)
        float s = uintBitsToFloat(wq[pc.u[9] + wr * nb + kb]);
#elif defined(W_Q6)
        uint so = pc.u[9] + (wr * nb + kb) * 2;
        float s0 = uintBitsToFloat(wq[so]), s1 = uintBitsToFloat(wq[so + 1]);
#elif defined(W_Q4)
        uint so = pc.u[9] + (wr * nb + kb) * 2;
        float s = uintBitsToFloat(wq[so]), mb = uintBitsToFloat(wq[so + 1]);
#endif
        TOKENS(XL)
        [[unroll]] for (uint q = 0; q < 8; q++) {
            uint k4 = kb * 8 + q;
#if defined(W_F32)
            vec4 w = w4[ub + k4 * G];
#elif defined(W_F16)
            uvec2 h = w2[ub + k4 * G];
            vec4 w = vec4(unpackHalf2x16(h.x), unpackHalf2x16(h.y));
#elif defined(W_Q8)
            vec4 w = s * i8x4(wq[ub + k4 * G]);
#elif defined(W_Q6)
            vec4 w = (q < 4 ? s0 : s1) * i8x4(wq[ub + k4 * G]);
#elif defined(W_Q4)
            uint u = wq[ub + (kb * 4 + q / 2) * G] >> (16 * (q % 2));
            vec4 w = s * vec4(float(u & 15u), float((u >> 4) & 15u), float((u >> 8) & 15u),
                              float((u >> 12) & 15u)) - mb;
#endif
            TOKENS(ACC)
        }
    }
#if defined(W_F32) || defined(W_F16)
    for (uint k4 = nb * 8; k4 < n_in / 4; k4++) {
#if defined(W_F32)
        vec4 w = w4[ub + k4 * G];
#else
        uvec2 h = w2[ub + k4 * G];
        vec4 w = vec4(unpackHalf2x16(h.x), unpackHalf2x16(h.y));
#endif
        TOKENS(ACC_DIRECT)
    }
#endif
    float b = pc.u[8] != 0 ? bias[pc.u[3] + r] : 0.0;
    if (gl_GlobalInvocationID.x >= pc.u[1])
        return;
    TOKENS(STORE)
}
