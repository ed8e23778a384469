#version 450
/* Element-wise operations over n floats (OP_ADD: d += a; OP_SWIGLU:
 * d = silu(a) * b; OP_F16: d (as halves, two per uint) = a), one
 * invocation per element (per pair for OP_F16), grid-strided.
 * u: 0 n, 1 a_off, 2 b_off, 3 d_off (uints for OP_F16) */
#include "common.glsl"

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
#ifdef OP_F16
layout(std430, binding = 2) writeonly buffer D { uint d[]; };
#else
layout(std430, binding = 2) buffer D { float d[]; };
#endif

void main()
{
    uint n = pc.u[0], step = gl_NumWorkGroups.x * 256;
    for (uint i = gl_GlobalInvocationID.x; i < n; i += step) {
#if defined(OP_ADD)
        d[pc.u[3] + i] += a[pc.u[1] + i];
#elif defined(OP_SWIGLU)
        float g = a[pc.u[1] + i];
        d[pc.u[3] + i] = g / (1.0 + exp(-g)) * b[pc.u[2] + i];
#elif defined(OP_F16)
        d[pc.u[3] + i] = packHalf2x16(vec2(a[pc.u[1] + 2 * i], a[pc.u[1] + 2 * i + 1]));
#endif
    }
}
