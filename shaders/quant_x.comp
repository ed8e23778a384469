#version 450
/* Quantizes activation rows to int8 blocks of 32 for the integer matmul
 * (matmul_int.comp), rounded as llama.cpp's CPU backend rounds them for
 * the weight type (and as infer/quant.c does: the reference logits come
 * from there), chosen by u[7]:
 *   0 Q8_0 (Q8_0, Q4_0 weights): per 32, d = amax/127 stored as float16,
 *     q = roundEven(x * (127/amax)); the sum word is d * sum(q);
 *   1 Q8_1 (Q4_1): the same quants; the sum word is float16(d * sum(q))
 *     with the unrounded d, as ggml's block_q8_1.s;
 *   3 Q8_0 for Q4_0: the sum word is sum(q) itself, an int (matmul_int.comp
 *     takes (q - 8) . x in integers, as the reference does);
 *   2 Q8_K (Q4_K, Q6_K): per 256, the value of largest magnitude (the
 *     first on a tie) maps to -127: iscale = -127/max, q = min(127,
 *     roundEven(iscale * x)), d = 1/iscale as a float, written to each of
 *     the superblock's eight 32-blocks; the sum word is d * sum(q) of the 32.
 * One invocation per block of 32 (Q8_K: each reads its superblock for the
 * max).  With u[6] != 0 (Q4 weights) the eight values of each word pair
 * are stored evens first (x0 x2 x4 x6 | x1 x3 x5 x7), the order of a Q4
 * word's low and high nibbles.
 * u: 0 values per row (a multiple of 32; of 256 for Q8_K), 1 n_tok,
 *    2 x_off, 3 x_stride (floats), 4 quant word offset, 5 scale word
 *    offset (a pair per block: d, sum), 6 Q4 order, 7 format. */
#include "common.glsl"

layout(local_size_x = 64) in;

layout(std430, binding = 1) readonly buffer X { vec4 x4[]; };
layout(std430, binding = 2) writeonly buffer Q { uint q[]; };

uint pack4(vec4 v)
{
    ivec4 i = ivec4(v) & 255;
    return uint(i.x | (i.y << 8) | (i.z << 16) | (i.w << 24));
}

void main()
{
    uint nb = pc.u[0] / 32, blk = gl_GlobalInvocationID.x, t = gl_WorkGroupID.y;
    if (blk >= nb)
        return;
    uint fmt = pc.u[7];
    uint row = (pc.u[2] + t * pc.u[3]) / 4, xb = row + blk * 8;
    vec4 v[8];
    float amax = 0.0;
    [[unroll]] for (uint i = 0; i < 8; i++) {
        v[i] = x4[xb + i];
        vec4 a = abs(v[i]);
        amax = max(amax, max(max(a.x, a.y), max(a.z, a.w)));
    }
    float d, id;
    if (fmt == 2u) {
        /* the signed value of largest magnitude in the superblock, the
         * first one on a tie */
        uint s0 = row + blk / 8u * 64u;
        float mx = 0.0, am = 0.0;
        for (uint i = 0; i < 64u; i++) {
            vec4 w = x4[s0 + i];
            [[unroll]] for (uint k = 0; k < 4u; k++) {
                if (abs(w[k]) > am) {
                    am = abs(w[k]);
                    mx = w[k];
                }
            }
        }
        id = am != 0.0 ? -127.0 / mx : 0.0;
        d = am != 0.0 ? 1.0 / id : 0.0;
    } else {
        d = amax / 127.0;
        id = amax != 0.0 ? 127.0 / amax : 0.0;
    }
    uint o = pc.u[4] + (t * nb + blk) * 8;
    vec4 qs = vec4(0.0);
    [[unroll]] for (uint i = 0; i < 8; i += 2) {
        vec4 a = min(roundEven(v[i] * id), vec4(127.0)), b = min(roundEven(v[i + 1] * id), vec4(127.0));
        qs += a + b;
        if (pc.u[6] != 0) {
            q[o + i] = pack4(vec4(a.x, a.z, b.x, b.z));
            q[o + i + 1] = pack4(vec4(a.y, a.w, b.y, b.w));
        } else {
            q[o + i] = pack4(a);
            q[o + i + 1] = pack4(b);
        }
    }
    float sum = qs.x + qs.y + qs.z + qs.w;
    float dh = unpackHalf2x16(packHalf2x16(vec2(d, 0.0))).x;
    uint so = pc.u[5] + (t * nb + blk) * 2;
    q[so] = floatBitsToUint(fmt == 2u ? d : dh);
    q[so + 1] = fmt == 3u ? uint(int(sum))
                : floatBitsToUint(fmt == 0u ? dh * sum
                                  : fmt == 1u ? unpackHalf2x16(packHalf2x16(vec2(d * sum, 0.0))).x
                                              : d * sum);
}
