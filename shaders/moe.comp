#version 450
/* The routed experts' row moves (infer/vulkan/backend_vk.c vk_moe groups a
 * batch by expert on the host; the expert matmuls run on the grouped rows).
 * GATHER:  d[d_off + i*ne0 + c] = x[x_off + idx[i]*ne0 + c], i < n_rows
 * COMBINE: d[d_off + t*ne0 + c] += sum over k < n_used of
 *            coef[t*n_used + k] * x[x_off + idx[t*n_used + k]*ne0 + c]
 *          (each token sums its own experts' rows: no two invocations
 *          write one element, so no atomics)
 * idx (uint) and coef (float bits) are words of the staging buffer.
 * One invocation per column c in x, one row per y.
 * u: 0 ne0, 1 n_rows (tokens for COMBINE), 2 x_off, 3 d_off, 4 idx_off,
 *    5 coef_off, 6 n_used */
#include "common.glsl"

layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) buffer D { float d[]; };
layout(std430, binding = 2) readonly buffer I { uint w[]; };

void main()
{
    uint ne0 = pc.u[0], c = gl_GlobalInvocationID.x, i = gl_WorkGroupID.z * 65535u + gl_WorkGroupID.y;
    if (c >= ne0 || i >= pc.u[1])
        return;
#ifdef GATHER
    d[pc.u[3] + i * ne0 + c] = x[pc.u[2] + w[pc.u[4] + i] * ne0 + c];
#else
    uint n_used = pc.u[6];
    float acc = d[pc.u[3] + i * ne0 + c];
    for (uint k = 0; k < n_used; k++) {
        uint j = i * n_used + k;
        acc += uintBitsToFloat(w[pc.u[5] + j]) * x[pc.u[2] + w[pc.u[4] + j] * ne0 + c];
    }
    d[pc.u[3] + i * ne0 + c] = acc;
#endif
}
