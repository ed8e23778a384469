#version 450
/* Causal attention of one query row and head per workgroup over the
 * layer's cache rows 0..pos: scores go to a scratch row (so any context
 * length works), then softmax, then the weighted sum of V rows.
 * K and V are F32 or, with KV_F16, halves two per uint.  V may be bound to
 * the K buffer (a cache with v_in_k: the value row is the start of the
 * key row, v_width = the key row's stride).
 * u: 0 n_head, 1 group (query heads per KV head), 2 head_dim, 3 v_dim,
 *    4 pos0 (position of query row 0), 5 q_off, 6 d_off, 7 k_width,
 *    8 v_width (floats per V row), 9 sc_stride (floats per scratch row), 10 t0 (first row of
 *    this dispatch); f: 0 scale.
 * SPLIT (long contexts, few query rows): workgroup z takes positions
 * z*u[11] .. of the row and writes its partial result (max score, sum of
 * exponentials, unnormalised V sum: v_dim + 2 floats) to P at u[12] +
 * ((tl*n_head + h)*u[13] + z)*(v_dim + 2); COMBINE then merges the u[13]
 * partials of each (row, head) into d (one workgroup each, no K/V read). */
#include "common.glsl"

layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer Q { float q[]; };
#ifdef KV_F16
layout(std430, binding = 1) readonly buffer K { uint k[]; };
layout(std430, binding = 2) readonly buffer V { uint v[]; };
#else
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
#endif
layout(std430, binding = 3) buffer S { float sc[]; };
layout(std430, binding = 4) writeonly buffer D { float d[]; };
layout(std430, binding = 5) buffer P { float part_out[]; };

shared float part[64];

float reduce_max(float x, uint lid)
{
    part[lid] = x;
    barrier();
    [[unroll]] for (uint w = 32; w > 0; w >>= 1) {
        if (lid < w)
            part[lid] = max(part[lid], part[lid + w]);
        barrier();
    }
    float r = part[0];
    barrier();
    return r;
}

float reduce_sum(float x, uint lid)
{
    part[lid] = x;
    barrier();
    [[unroll]] for (uint w = 32; w > 0; w >>= 1) {
        if (lid < w)
            part[lid] += part[lid + w];
        barrier();
    }
    float r = part[0];
    barrier();
    return r;
}

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
    for (uint i = lid; i < vd; i += 64) {
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
void main()
{
    uint n_head = pc.u[0], hd = pc.u[2], vd = pc.u[3];
    uint h = gl_WorkGroupID.x, tl = gl_WorkGroupID.y, t = pc.u[10] + tl;
    uint g = h / pc.u[1], lid = gl_LocalInvocationID.x;
    uint n = pc.u[4] + t + 1;
    uint qo = pc.u[5] + t * n_head * hd + h * hd;
    uint so = (tl * n_head + h) * pc.u[9];
#ifdef SPLIT
    uint s0 = gl_WorkGroupID.z * pc.u[11];
    n = min(n, s0 + pc.u[11]);
#else
    const uint s0 = 0;
#endif
    float mx = -1.0 / 0.0;
    for (uint s = s0 + lid; s < n; s += 64) {
        float a = 0.0;
#ifdef KV_F16
        uint ko = (s * pc.u[7] + g * hd) / 2;
        for (uint i = 0; i < hd; i += 2) {
            vec2 kk = unpackHalf2x16(k[ko + i / 2]);
            a += q[qo + i] * kk.x + q[qo + i + 1] * kk.y;
        }
#else
        uint ko = s * pc.u[7] + g * hd;
        for (uint i = 0; i < hd; i++)
            a += q[qo + i] * k[ko + i];
#endif
        a *= pc.f[0];
        sc[so + s] = a;
        mx = max(mx, a);
    }
    mx = reduce_max(mx, lid);
    float sum = 0.0;
    for (uint s = s0 + lid; s < n; s += 64) {
        float e = exp(sc[so + s] - mx);
        sc[so + s] = e;
        sum += e;
    }
    sum = reduce_sum(sum, lid);
    memoryBarrierBuffer();
    barrier();
#ifdef SPLIT
    float inv = 1.0;
    uint pb = pc.u[12] + ((tl * n_head + h) * pc.u[13] + gl_WorkGroupID.z) * (vd + 2);
    if (lid == 0) {
        part_out[pb] = mx;      /* -inf: no position in this split */
        part_out[pb + 1] = sum;
    }
#else
    float inv = 1.0 / sum;
#endif
    for (uint i = lid; i < vd; i += 64) {
        float o = 0.0;
#ifdef KV_F16
        uint vo = g * vd + i;
        for (uint s = s0; s < n; s++) {
            uint e = s * pc.u[8] + vo;
            vec2 vv = unpackHalf2x16(v[e / 2]);
            o += sc[so + s] * inv * ((e & 1u) != 0 ? vv.y : vv.x);
        }
#else
        for (uint s = s0; s < n; s++)
            o += sc[so + s] * inv * v[s * pc.u[8] + g * vd + i];
#endif
#ifdef SPLIT
        part_out[pb + 2 + i] = o;
#else
        d[pc.u[6] + t * n_head * vd + h * vd + i] = o;
#endif
    }
}
#endif
