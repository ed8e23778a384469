/* llama (DeepSeek-R1-Distill-Llama): adjacent-pair rope with the llama3
 * frequency factors of rope_freqs.weight; no biases. */
#include "infer/arch/dense.h"

static int llama_load(struct model *m, char *err, size_t errlen)
{
    static const struct dense_variant v = {.rope_mode = ROPE_MODE_NORM, .rope_freqs = true};
    return dense_load(m, &v, err, errlen);
}

const struct arch arch_llama = {
    .name = "llama",
    .load = llama_load,
    .forward = dense_forward,
    .free = dense_free,
};
