/* Embeds the SPIR-V that shaders/shaders.mk made with glslc -mfmt=c (each
 * .h is a brace-enclosed list of words). */
#include "infer/vulkan/shaders.h"

static const uint32_t spv_matmul_f32_1[] =
#include "matmul_f32_1.h"
    ;
static const uint32_t spv_matmul_f32_8[] =
#include "matmul_f32_8.h"
    ;
static const uint32_t spv_matmul_f16_1[] =
#include "matmul_f16_1.h"
    ;
static const uint32_t spv_matmul_f16_8[] =
#include "matmul_f16_8.h"
    ;
static const uint32_t spv_matmul_q8_1[] =
#include "matmul_q8_1.h"
    ;
static const uint32_t spv_matmul_q8_8[] =
#include "matmul_q8_8.h"
    ;
static const uint32_t spv_matmul_q6_1[] =
#include "matmul_q6_1.h"
    ;
static const uint32_t spv_matmul_q6_8[] =
#include "matmul_q6_8.h"
    ;
static const uint32_t spv_matmul_q4_1[] =
#include "matmul_q4_1.h"
    ;
static const uint32_t spv_matmul_q4_8[] =
#include "matmul_q4_8.h"
    ;
static const uint32_t spv_matmul_f32_1s[] =
#include "matmul_f32_1s.h"
    ;
static const uint32_t spv_matmul_f32_8s[] =
#include "matmul_f32_8s.h"
    ;
static const uint32_t spv_matmul_f16_1s[] =
#include "matmul_f16_1s.h"
    ;
static const uint32_t spv_matmul_f16_8s[] =
#include "matmul_f16_8s.h"
    ;
static const uint32_t spv_matmul_q8_1s[] =
#include "matmul_q8_1s.h"
    ;
static const uint32_t spv_matmul_q8_8s[] =
#include "matmul_q8_8s.h"
    ;
static const uint32_t spv_matmul_q6_1s[] =
#include "matmul_q6_1s.h"
    ;
static const uint32_t spv_matmul_q6_8s[] =
#include "matmul_q6_8s.h"
    ;
static const uint32_t spv_matmul_q4_1s[] =
#include "matmul_q4_1s.h"
    ;
static const uint32_t spv_matmul_q4_8s[] =
#include "matmul_q4_8s.h"
    ;
static const uint32_t spv_rms_norm[] =
#include "rms_norm.h"
    ;
static const uint32_t spv_rope[] =
#include "rope.h"
    ;
static const uint32_t spv_add[] =
#include "add.h"
    ;
static const uint32_t spv_swiglu[] =
#include "swiglu.h"
    ;
static const uint32_t spv_to_f16[] =
#include "to_f16.h"
    ;
static const uint32_t spv_attention_f32[] =
#include "attention_f32.h"
    ;
static const uint32_t spv_attention_f16[] =
#include "attention_f16.h"
    ;

static const uint32_t spv_copy_cols[] =
#include "copy_cols.h"
    ;
static const uint32_t spv_moe_gather[] =
#include "moe_gather.h"
    ;
static const uint32_t spv_moe_combine[] =
#include "moe_combine.h"
    ;
static const uint32_t spv_attention_f32_wide[] =
#include "attention_f32_wide.h"
    ;
static const uint32_t spv_attention_f16_wide[] =
#include "attention_f16_wide.h"
    ;
static const uint32_t spv_attention_combine[] =
#include "attention_combine.h"
    ;
static const uint32_t spv_quant_x[] =
#include "quant_x.h"
    ;
static const uint32_t spv_matmul_int_q8[] =
#include "matmul_int_q8.h"
    ;
static const uint32_t spv_matmul_int_q6[] =
#include "matmul_int_q6.h"
    ;
static const uint32_t spv_matmul_int_q4[] =
#include "matmul_int_q4.h"
    ;
static const uint32_t spv_matmul_int_q8_8[] =
#include "matmul_int_q8_8.h"
    ;
static const uint32_t spv_matmul_int_q6_8[] =
#include "matmul_int_q6_8.h"
    ;
static const uint32_t spv_matmul_int_q4_8[] =
#include "matmul_int_q4_8.h"
    ;

#define SPV(id, arr) [id] = {#arr, arr, sizeof arr}
static const struct vk_spirv table[VK_SHADER_COUNT] = {
    SPV(VK_SHADER_MATMUL_F32_1, spv_matmul_f32_1), SPV(VK_SHADER_MATMUL_F32_8, spv_matmul_f32_8),
    SPV(VK_SHADER_MATMUL_F16_1, spv_matmul_f16_1), SPV(VK_SHADER_MATMUL_F16_8, spv_matmul_f16_8),
    SPV(VK_SHADER_MATMUL_Q8_1, spv_matmul_q8_1),   SPV(VK_SHADER_MATMUL_Q8_8, spv_matmul_q8_8),
    SPV(VK_SHADER_MATMUL_Q6_1, spv_matmul_q6_1),   SPV(VK_SHADER_MATMUL_Q6_8, spv_matmul_q6_8),
    SPV(VK_SHADER_MATMUL_Q4_1, spv_matmul_q4_1),   SPV(VK_SHADER_MATMUL_Q4_8, spv_matmul_q4_8),
    SPV(VK_SHADER_MATMUL_F32_1S, spv_matmul_f32_1s),
    SPV(VK_SHADER_MATMUL_F32_8S, spv_matmul_f32_8s),
    SPV(VK_SHADER_MATMUL_F16_1S, spv_matmul_f16_1s),
    SPV(VK_SHADER_MATMUL_F16_8S, spv_matmul_f16_8s),
    SPV(VK_SHADER_MATMUL_Q8_1S, spv_matmul_q8_1s),
    SPV(VK_SHADER_MATMUL_Q8_8S, spv_matmul_q8_8s),
    SPV(VK_SHADER_MATMUL_Q6_1S, spv_matmul_q6_1s),
    SPV(VK_SHADER_MATMUL_Q6_8S, spv_matmul_q6_8s),
    SPV(VK_SHADER_MATMUL_Q4_1S, spv_matmul_q4_1s),
    SPV(VK_SHADER_MATMUL_Q4_8S, spv_matmul_q4_8s),
    SPV(VK_SHADER_RMS_NORM, spv_rms_norm),         SPV(VK_SHADER_ROPE, spv_rope),
    SPV(VK_SHADER_ADD, spv_add),                   SPV(VK_SHADER_SWIGLU, spv_swiglu),
    SPV(VK_SHADER_TO_F16, spv_to_f16),             SPV(VK_SHADER_ATTENTION_F32, spv_attention_f32),
    SPV(VK_SHADER_ATTENTION_F16, spv_attention_f16),
    SPV(VK_SHADER_COPY_COLS, spv_copy_cols),       SPV(VK_SHADER_MOE_GATHER, spv_moe_gather),
    SPV(VK_SHADER_MOE_COMBINE, spv_moe_combine),
    SPV(VK_SHADER_ATTENTION_F32_WIDE, spv_attention_f32_wide),
    SPV(VK_SHADER_ATTENTION_F16_WIDE, spv_attention_f16_wide),
    SPV(VK_SHADER_ATTENTION_COMBINE, spv_attention_combine),
    SPV(VK_SHADER_QUANT_X, spv_quant_x),
    SPV(VK_SHADER_MATMUL_INT_Q8, spv_matmul_int_q8),
    SPV(VK_SHADER_MATMUL_INT_Q6, spv_matmul_int_q6),
    SPV(VK_SHADER_MATMUL_INT_Q4, spv_matmul_int_q4),
    SPV(VK_SHADER_MATMUL_INT_Q8_8, spv_matmul_int_q8_8),
    SPV(VK_SHADER_MATMUL_INT_Q6_8, spv_matmul_int_q6_8),
    SPV(VK_SHADER_MATMUL_INT_Q4_8, spv_matmul_int_q4_8),
};

const struct vk_spirv *vk_shader_spirv(enum vk_shader s)
{
    return (unsigned)s < VK_SHADER_COUNT ? &table[s] : 0;
}
