/* Shared by every ponder compute shader: the parameters every pipeline
 * reads (mirrored by struct vk_push in infer/vulkan/push.h, 80 bytes) and
 * the bindings of the one descriptor-set layout: six storage buffers for
 * the operation (0-5) and the parameter buffer (6).
 *
 * The parameters of a dispatch live in slot `slot` of the parameter
 * buffer, the only push constant, so that a recorded command buffer can be
 * submitted again with new parameters (infer/vulkan/backend_vk.c).  `pc`
 * holds the slot's parameters, and shaders read pc.u[i] and pc.f[i] as
 * before.
 *
 * The host places barriers from what each dispatch may touch: every bound
 * buffer, written when the shader declares it writable.  written() in
 * backend_vk.c lists those bindings per shader; change it with them. */
#ifndef PONDER_COMMON_GLSL
#define PONDER_COMMON_GLSL

#extension GL_EXT_control_flow_attributes : enable

/* u[] are operation-specific counts and offsets (in 4-byte words); f[] are
 * float parameters.  Each shader names its fields in a comment. */
struct PonderParams {
    uint u[16];
    float f[4];
};

layout(push_constant) uniform PonderSlot {
    uint slot;
} ponder_slot;

layout(std430, binding = 6) readonly restrict buffer PonderParamBuf {
    PonderParams ponder_params[];
};

/* A private copy made as main() starts: a storage buffer may alias the
 * buffers a shader writes, so reads of it could not be kept in registers
 * across those writes. */
PonderParams pc = ponder_params[ponder_slot.slot];

#endif
