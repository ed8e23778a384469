/* qwen2 (DeepSeek-R1-Distill-Qwen): biases on q, k, v and NEOX rope. */
#include "infer/arch/dense.h"

static int qwen2_load(struct model *m, char *err, size_t errlen)
{
    static const struct dense_variant v = {.qkv_bias = true, .rope_mode = ROPE_MODE_NEOX};
    return dense_load(m, &v, err, errlen);
}

const struct arch arch_qwen2 = {
    .name = "qwen2",
    .load = qwen2_load,
    .forward = dense_forward,
    .free = dense_free,
};
