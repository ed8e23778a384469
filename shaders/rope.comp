#version 450
/* Rotates n_rot dims of each head, starting at dim_off, in place.  The cos/sin table
 * (cs: per token, per pair, cos then sin, mscale folded in) is made on the
 * host exactly as the CPU backend makes it, so both rotate identically.
 * One invocation per (token, head, pair).
 * u: 0 half (n_rot / 2), 1 head_dim, 2 n_head, 3 ne0, 4 x_off, 5 neox,
 *    6 cs_off, 7 n_tok, 8 dim_off */
#include "common.glsl"

layout(local_size_x = 64) in;

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer CS { float cs[]; };

void main()
{
    uint half_ = pc.u[0], n_head = pc.u[2];
    uint id = gl_GlobalInvocationID.x;
    uint i = id % half_, h = (id / half_) % n_head, t = id / (half_ * n_head);
    if (t >= pc.u[7])
        return;
    uint base = pc.u[4] + t * pc.u[3] + h * pc.u[1] + pc.u[8];
    uint i0 = pc.u[5] != 0 ? i : 2 * i;
    uint i1 = pc.u[5] != 0 ? i + half_ : 2 * i + 1;
    float c = cs[pc.u[6] + (t * half_ + i) * 2], s = cs[pc.u[6] + (t * half_ + i) * 2 + 1];
    float a = x[base + i0], b = x[base + i1];
    x[base + i0] = a * c - b * s;
    x[base + i1] = a * s + b * c;
}
