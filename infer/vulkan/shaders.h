/* The SPIR-V of every shader variant, compiled by glslc at build time
 * (shaders/shaders.mk) and embedded here. */
#ifndef PONDER_VK_SHADERS_H
#define PONDER_VK_SHADERS_H

#include <stddef.h>
#include <stdint.h>

enum vk_shader {
    VK_SHADER_MATMUL_F32_1, VK_SHADER_MATMUL_F32_8,
    VK_SHADER_MATMUL_F16_1, VK_SHADER_MATMUL_F16_8,
    VK_SHADER_MATMUL_Q8_1, VK_SHADER_MATMUL_Q8_8,
    VK_SHADER_MATMUL_Q6_1, VK_SHADER_MATMUL_Q6_8,
    VK_SHADER_MATMUL_Q4_1, VK_SHADER_MATMUL_Q4_8,
    /* the same ten with x shared through subgroup shuffles (VK_SHADER_SHUFFLE
     * after the plain one); only built when the device has them */
    VK_SHADER_MATMUL_F32_1S, VK_SHADER_MATMUL_F32_8S,
    VK_SHADER_MATMUL_F16_1S, VK_SHADER_MATMUL_F16_8S,
    VK_SHADER_MATMUL_Q8_1S, VK_SHADER_MATMUL_Q8_8S,
    VK_SHADER_MATMUL_Q6_1S, VK_SHADER_MATMUL_Q6_8S,
    VK_SHADER_MATMUL_Q4_1S, VK_SHADER_MATMUL_Q4_8S,
    VK_SHADER_RMS_NORM, VK_SHADER_ROPE, VK_SHADER_ADD, VK_SHADER_SWIGLU, VK_SHADER_TO_F16,
    VK_SHADER_ATTENTION_F32, VK_SHADER_ATTENTION_F16,
    VK_SHADER_COPY_COLS, VK_SHADER_MOE_GATHER, VK_SHADER_MOE_COMBINE,
    /* attention with 512 value dims a workgroup (128 without _WIDE) */
    VK_SHADER_ATTENTION_F32_WIDE, VK_SHADER_ATTENTION_F16_WIDE, VK_SHADER_ATTENTION_COMBINE,
    /* the integer dot-product path: activations to int8 blocks, then Q8,
     * Q6 and Q4 weights, one token and eight tokens an invocation; only
     * built when the device has VK_KHR_shader_integer_dot_product */
    VK_SHADER_QUANT_X, VK_SHADER_MATMUL_INT_Q8, VK_SHADER_MATMUL_INT_Q6, VK_SHADER_MATMUL_INT_Q4,
    VK_SHADER_MATMUL_INT_Q8_8, VK_SHADER_MATMUL_INT_Q6_8, VK_SHADER_MATMUL_INT_Q4_8,
    VK_SHADER_COUNT
};
#define VK_SHADER_SHUFFLE (VK_SHADER_MATMUL_F32_1S - VK_SHADER_MATMUL_F32_1)

struct vk_spirv {
    const char *name;
    const uint32_t *code;
    size_t size;            /* bytes */
};

const struct vk_spirv *vk_shader_spirv(enum vk_shader s);

#endif
