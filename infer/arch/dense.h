/* The decoder-only transformer that qwen2 and llama share (RMSNorm, GQA
 * attention with RoPE, SwiGLU feed-forward), written once; the architecture
 * files say how they differ (q/k/v biases, rope pairing, rope_freqs). */
#ifndef PONDER_ARCH_DENSE_H
#define PONDER_ARCH_DENSE_H

#include "infer/model_impl.h"

struct dense_variant {
    bool qkv_bias;              /* qwen2: biases on q, k and v */
    enum rope_mode rope_mode;   /* qwen2 NEOX, llama NORM */
    bool rope_freqs;            /* llama3: rope_freqs.weight divides the angles */
};

int dense_load(struct model *m, const struct dense_variant *v, char *err, size_t errlen);
int dense_forward(struct model *m, const int32_t *ids, int n, int pos0, float *logits, bool all,
                  char *err, size_t errlen);
void dense_free(struct model *m);

#endif
