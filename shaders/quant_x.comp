#version 450
/* Quantizes activation rows to int8 blocks for the integer matmul
 * (matmul_int.comp) the way llama.cpp's CPU path rounds them for Q8_0
 * weights: per block of 32 values d = max|x| / 127, quants
 * roundEven(x / d) packed four to a word, the scale kept as float16 as in
 * llama.cpp's Q8_0 blocks, and d * sum(q): the sum of the rounded block,
 * for the Q4 offset term (so the product is exact for the rounded x).
 * One invocation per block.  With u[6] != 0 (Q4 weights) the eight values
 * of each word pair are stored evens first (x0 x2 x4 x6 | x1 x3 x5 x7), the
 * order of a Q4 word's low and high nibbles.
 * u: 0 values per row (a multiple of 32), 1 n_tok, 2 x_off, 3 x_stride
 *    (floats), 4 quant word offset, 5 scale word offset (a pair per
 *    block: d, sum), 6 Q4 order. */
#include "common.glsl"

layout(local_size_x = 64) in;

layout(std430, binding = 1) readonly buffer X { vec4 x4[]; };
layout(std430, binding = 2) writeonly buffer Q { uint q[]; };

uint pack4(vec4 v)
{
    ivec4 i = ivec4(roundEven(v)) & 255;
    return uint(i.x | (i.y << 8) | (i.z << 16) | (i.w << 24));
}

void main()
{
    uint nb = pc.u[0] / 32, blk = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (blk >= nb)
        return;
    uint xb = (pc.u[2] + t * pc.u[3]) / 4 + blk * 8;
    vec4 v[8];
    float amax = 0.0;
    [[unroll]] for (uint i = 0; i < 8; i++) {
        v[i] = x4[xb + i];
        vec4 a = abs(v[i]);
        amax = max(amax, max(max(a.x, a.y), max(a.z, a.w)));
    }
    float d = amax / 127.0, id = d != 0.0 ? 1.0 / d : 0.0;
    uint o = pc.u[4] + (t * nb + blk) * 8;
    vec4 qs = vec4(0.0);
    [[unroll]] for (uint i = 0; i < 8; i += 2) {
        vec4 a = roundEven(v[i] * id), b = roundEven(v[i + 1] * id);
        qs += a + b;
        if (pc.u[6] != 0) {
            q[o + i] = pack4(vec4(a.x, a.z, b.x, b.z));
            q[o + i + 1] = pack4(vec4(a.y, a.w, b.y, b.w));
        } else {
            q[o + i] = pack4(a);
            q[o + i + 1] = pack4(b);
        }
    }
    uint so = pc.u[5] + (t * nb + blk) * 2;
    d = unpackHalf2x16(packHalf2x16(vec2(d, 0.0))).x;
    q[so] = floatBitsToUint(d);
    q[so + 1] = floatBitsToUint(d * (qs.x + qs.y + qs.z + qs.w));
}
