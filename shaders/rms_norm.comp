#version 450
/* dst[t] = x[t] / sqrt(mean(x[t]^2) + eps) * g: one workgroup per row.
 * u: 0 n, 1 x_off, 2 d_off, 3 g_off; f: 0 eps */
#include "common.glsl"

layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) buffer D { float d[]; };
layout(std430, binding = 2) readonly buffer G { float g[]; };

shared float part[64];

void main()
{
    uint n = pc.u[0], t = gl_WorkGroupID.x, lid = gl_LocalInvocationID.x;
    uint xo = pc.u[1] + t * n, dof = pc.u[2] + t * n;
    float s = 0.0;
    for (uint i = lid; i < n; i += 64)
        s += x[xo + i] * x[xo + i];
    part[lid] = s;
    barrier();
    [[unroll]] for (uint w = 32; w > 0; w >>= 1) {
        if (lid < w)
            part[lid] += part[lid + w];
        barrier();
    }
    float scale = 1.0 / sqrt(part[0] / float(n) + pc.f[0]);
    for (uint i = lid; i < n; i += 64)
        d[dof + i] = x[xo + i] * scale * g[pc.u[3] + i];
}
