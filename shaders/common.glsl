/* Shared by every ponder compute shader: the push constants all pipelines
 * use (mirrored by struct vk_push in infer/vulkan/push.h, 80 bytes) and the
 * six storage-buffer bindings of the one descriptor-set layout. */
#ifndef PONDER_COMMON_GLSL
#define PONDER_COMMON_GLSL

#extension GL_EXT_control_flow_attributes : enable

/* u[] are operation-specific counts and offsets (in 4-byte words); f[] are
 * float parameters.  Each shader names its fields in a comment. */
layout(push_constant) uniform Push {
    uint u[16];
    float f[4];
} pc;

#endif
