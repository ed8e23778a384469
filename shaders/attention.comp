#version 450
/* Causal attention over the layer's cache rows 0..pos, flash style: one
 * workgroup per (query row, KV head, block of up to HB query heads sharing
 * that KV head, chunk of values) reads each K and V row of its range once
 * for all the heads of its block.  Positions go in tiles of T (one per
 * invocation: a row of K dotted with every head's query); an online
 * softmax keeps per head the running max and sum and rescales the value
 * accumulators (registers: each invocation owns VPT value dims of every
 * head), so no scores scratch is needed and any context length works.
 * The queries wait in shared memory in chunks of QC dims (every chunk is
 * reloaded per tile when the head is longer than QC), so the shared
 * memory (HB * (QC + T) floats, 11 KiB) is below Vulkan's 16 KiB minimum.
 * K and V are F32 or, with KV_F16, halves two per uint (even widths and
 * head dims).  V may be bound to the K buffer (a cache with v_in_k: the
 * value row is the start of the key row, v_width = the key row's stride).
 * u: 0 n_head, 1 group (query heads per KV head), 2 head_dim, 3 v_dim,
 *    4 pos0 (position of query row 0), 5 q_off, 6 d_off, 7 k_width,
 *    8 v_width (floats per V row), 9 head blocks per KV head, 10 t0 (first
 *    row of this dispatch), 11 split length, 12 partials offset, 13 splits,
 *    14 value chunks (of T * VPT dims) per head block; f: 0 scale.
 * Workgroup x = (KV head * blocks + block) * chunks + chunk, y = row,
 * z = split.  With u[13] > 1 (long contexts, few query rows) workgroup z
 * takes positions z*u[11] .. of the row and writes its partial result
 * (max score, sum of exponentials, unnormalised V sum: v_dim + 2 floats)
 * to P at u[12] + ((tl*n_head + h)*u[13] + z)*(v_dim + 2); COMBINE then
 * merges the u[13] partials of each (row, head) into d (one workgroup
 * each, no K/V read). */
#include "common.glsl"

#define T 64
#define HB 8
#define QC 288
#ifndef VPT
#define VPT 2
#endif

layout(local_size_x = T) in;

layout(std430, binding = 0) readonly buffer Q { float q[]; };
#ifdef KV_F16
layout(std430, binding = 1) readonly buffer K { uint k[]; };
layout(std430, binding = 2) readonly buffer V { uint v[]; };
#else
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
#endif
layout(std430, binding = 4) writeonly buffer D { float d[]; };
layout(std430, binding = 5) buffer P { float part_out[]; };

#ifdef COMBINE
void main()
{
    uint n_head = pc.u[0], vd = pc.u[3], ns = pc.u[13];
    uint h = gl_WorkGroupID.x, tl = gl_WorkGroupID.y, t = pc.u[10] + tl;
    uint lid = gl_LocalInvocationID.x;
    uint base = pc.u[12] + (tl * n_head + h) * ns * (vd + 2);
    float m = -1.0 / 0.0;
    for (uint z = 0; z < ns; z++)
        m = max(m, part_out[base + z * (vd + 2)]);
    float l = 0.0;
    for (uint z = 0; z < ns; z++) {
        float mz = part_out[base + z * (vd + 2)];
        if (mz > -1.0 / 0.0)
            l += part_out[base + z * (vd + 2) + 1] * exp(mz - m);
    }
    uint dof = pc.u[6] + t * n_head * vd + h * vd;
    for (uint i = lid; i < vd; i += T) {
        float o = 0.0;
        for (uint z = 0; z < ns; z++) {
            float mz = part_out[base + z * (vd + 2)];
            if (mz > -1.0 / 0.0)
                o += part_out[base + z * (vd + 2) + 2 + i] * exp(mz - m);
        }
        d[dof + i] = o / l;
    }
}
#else
shared float qs[HB * QC];
shared float ps[HB * T];            /* scores, then probabilities, of a tile */
shared float mrun[HB], lrun[HB], alph[HB];

void main()
{
    uint n_head = pc.u[0], grp = pc.u[1], hd = pc.u[2], vd = pc.u[3];
    uint kw = pc.u[7], vw = pc.u[8], ns = pc.u[13];
    uint lid = gl_LocalInvocationID.x;
    uint x = gl_WorkGroupID.x;
    uint vc = x % pc.u[14];
    x /= pc.u[14];
    uint blk = x % pc.u[9], g = x / pc.u[9];
    uint nh = min(uint(HB), grp - blk * HB);    /* heads in this block */
    uint h0 = g * grp + blk * HB;               /* its first query head */
    uint tl = gl_WorkGroupID.y, t = pc.u[10] + tl;
    uint s_beg = 0, s_end = pc.u[4] + t + 1;
    if (ns > 1) {
        s_beg = gl_WorkGroupID.z * pc.u[11];
        s_end = min(s_end, s_beg + pc.u[11]);
    }
    uint qo = pc.u[5] + t * n_head * hd + h0 * hd;
    uint v0 = vc * (T * VPT);
    float scale = pc.f[0];
    bool once = hd <= QC;       /* the whole query block stays in qs */

    if (once)
        for (uint e = lid; e < nh * hd; e += T)
            qs[(e / hd) * QC + e % hd] = q[qo + e];
    if (lid < HB) {
        mrun[lid] = -1.0 / 0.0;
        lrun[lid] = 0.0;
        alph[lid] = 1.0;
    }
    barrier();

    float o[VPT * HB];
    [[unroll]] for (uint e = 0; e < VPT * HB; e++)
        o[e] = 0.0;

    for (uint s0 = s_beg; s0 < s_end; s0 += T) {
        uint s = s0 + lid;
        bool live = s < s_end;
        float a[HB];
        [[unroll]] for (uint j = 0; j < HB; j++)
            a[j] = 0.0;
        for (uint c0 = 0; c0 < hd; c0 += QC) {
            uint cn = min(uint(QC), hd - c0);
            if (!once) {
                barrier();
                for (uint e = lid; e < nh * cn; e += T)
                    qs[(e / cn) * QC + e % cn] = q[qo + (e / cn) * hd + c0 + e % cn];
                barrier();
            }
            if (live) {
                uint ko = s * kw + g * hd + c0;
#ifdef KV_F16
                for (uint i = 0; i < cn; i += 2) {
                    vec2 kk = unpackHalf2x16(k[(ko + i) / 2]);
                    [[unroll]] for (uint j = 0; j < HB; j++)
                        if (j < nh)
                            a[j] += qs[j * QC + i] * kk.x + qs[j * QC + i + 1] * kk.y;
                }
#else
                for (uint i = 0; i < cn; i++) {
                    float kk = k[ko + i];
                    [[unroll]] for (uint j = 0; j < HB; j++)
                        if (j < nh)
                            a[j] += qs[j * QC + i] * kk;
                }
#endif
            }
        }
        barrier();      /* the previous tile's value pass is done with ps and alph */
        [[unroll]] for (uint j = 0; j < HB; j++)
            if (j < nh)
                ps[j * T + lid] = live ? a[j] * scale : -1.0 / 0.0;
        barrier();
        if (lid < nh) {
            /* every tile has a live position: the new max is finite */
            float mx = mrun[lid];
            for (uint i = 0; i < T; i++)
                mx = max(mx, ps[lid * T + i]);
            alph[lid] = exp(mrun[lid] - mx);
            mrun[lid] = mx;
        }
        barrier();
        [[unroll]] for (uint j = 0; j < HB; j++)
            if (j < nh)
                ps[j * T + lid] = live ? exp(a[j] * scale - mrun[j]) : 0.0;
        barrier();
        if (lid < nh) {
            float sum = 0.0;
            for (uint i = 0; i < T; i++)
                sum += ps[lid * T + i];
            lrun[lid] = lrun[lid] * alph[lid] + sum;
        }
        [[unroll]] for (uint j = 0; j < HB; j++)
            if (j < nh) {
                float al = alph[j];
                [[unroll]] for (uint r = 0; r < VPT; r++)
                    o[r * HB + j] *= al;
            }
        uint nt = min(uint(T), s_end - s0);
        for (uint ss = 0; ss < nt; ss++) {
            uint vo = (s0 + ss) * vw + g * vd;
            [[unroll]] for (uint r = 0; r < VPT / 2; r++) {
                uint i = v0 + 2 * (lid + T * r);
                if (i < vd) {
#ifdef KV_F16
                    vec2 vv = unpackHalf2x16(v[(vo + i) / 2]);
#else
                    vec2 vv = vec2(v[vo + i], i + 1 < vd ? v[vo + i + 1] : 0.0);
#endif
                    [[unroll]] for (uint j = 0; j < HB; j++)
                        if (j < nh) {
                            float p = ps[j * T + ss];
                            o[2 * r * HB + j] += p * vv.x;
                            o[(2 * r + 1) * HB + j] += p * vv.y;
                        }
                }
            }
        }
    }
    barrier();      /* lrun of the last tile */

    uint pz = gl_WorkGroupID.z;
    [[unroll]] for (uint j = 0; j < HB; j++)
        if (j < nh) {
            uint h = h0 + j;
            uint pb = pc.u[12] + ((tl * n_head + h) * ns + pz) * (vd + 2);
            uint dof = pc.u[6] + t * n_head * vd + h * vd;
            float inv = 1.0 / lrun[j];
            [[unroll]] for (uint r = 0; r < VPT; r++) {
                uint i = v0 + 2 * (lid + T * (r / 2)) + (r & 1u);
                if (i < vd) {
                    if (ns > 1)
                        part_out[pb + 2 + i] = o[r * HB + j];
                    else
                        d[dof + i] = o[r * HB + j] * inv;
                }
            }
            if (ns > 1 && vc == 0 && lid == 0) {
                part_out[pb] = mrun[j];     /* -inf: no position in this split */
                part_out[pb + 1] = lrun[j];
            }
        }
}
#endif
