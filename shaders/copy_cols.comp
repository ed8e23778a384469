#version 450
/* Strided column copy (backend.h copy_cols): for every row t < n_tok,
 * group g < n_group and i < width,
 *   d[d_off + t*d_ne0 + g*d_stride + i] = s[s_off + t*s_ne0 + g*s_stride + i].
 * One invocation per (g, i) in x, one row per y (rows beyond 65535 in z).
 * u: 0 width, 1 n_group, 2 n_tok, 3 s_off, 4 s_stride, 5 s_ne0, 6 d_off,
 *    7 d_stride, 8 d_ne0 */
#include "common.glsl"

layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer S { float s[]; };
layout(std430, binding = 1) writeonly buffer D { float d[]; };

void main()
{
    uint width = pc.u[0], id = gl_GlobalInvocationID.x;
    uint t = gl_WorkGroupID.z * 65535u + gl_WorkGroupID.y;
    if (id >= width * pc.u[1] || t >= pc.u[2])
        return;
    uint g = id / width, i = id % width;
    d[pc.u[6] + t * pc.u[8] + g * pc.u[7] + i] = s[pc.u[3] + t * pc.u[5] + g * pc.u[4] + i];
}
