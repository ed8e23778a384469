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

/* The weights at both ends, the same in every arch: token_embd (its rows
 * give hp.n_vocab), output_norm and output (token_embd when absent: tied
 * embeddings).  0, or EBADMSG with the tensor named. */
int dense_bind_ends(struct model *m, char *err, size_t errlen);

/* Layers l0 .. l1-1 of m on backend be, whose KV cache holds them from kv0;
 * x is the residual stream (n_embd x n), updated in place. */
typedef int dense_layers_fn(struct model *m, struct backend *be, struct btensor *x, int l0, int l1,
                            int kv0, int n, int pos0, char *err, size_t errlen);

/* The forward pass around an architecture's layers, shared by every arch:
 * embedding rows on the device backend, the first n_gpu_layers layers there,
 * one crossing of the residual stream to the host, the rest on the CPU, then
 * the output norm and head into logits (all n rows when all, else the last;
 * NULL: no logits, only the KV cache is filled).  0 or EIO / ENOMEM. */
int dense_run(struct model *m, dense_layers_fn *run, const int32_t *ids, int n, int pos0,
              float *logits, bool all, char *err, size_t errlen);

#endif
