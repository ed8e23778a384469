/* Inside infer/: the model's private layout, shared by model.c and the
 * architectures in arch/.  Nothing outside infer/ includes this. */
#ifndef PONDER_MODEL_IMPL_H
#define PONDER_MODEL_IMPL_H

#include "backend.h"
#include "model.h"

struct model;

/* What one architecture provides: read its hyperparameters and bind its
 * tensors (load), and run the forward pass over a batch that fits the
 * context (forward: tokens ids[0..n) at positions pos0..; writes the logits
 * of the last token, or of all when `all`). */
struct arch {
    const char *name;
    int (*load)(struct model *m, char *err, size_t errlen);
    int (*forward)(struct model *m, const int32_t *ids, int n, int pos0, float *logits, bool all,
                   char *err, size_t errlen);
    void (*free)(struct model *m);
    /* optional: the weights of layer l the architecture prepared at load
     * (views it owns); up to max into out, returns how many */
    int (*prepared)(const struct model *m, int l, const struct weight **out, int max);
};

extern const struct arch arch_qwen2;
extern const struct arch arch_llama;
extern const struct arch arch_deepseek2;

struct hparams {
    int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx_train;
    float eps;
    struct rope_params rope;
    /* the KV cache row of one layer and token; 0: n_head_kv * head_dim each */
    int64_t kv_k_width, kv_v_width;
    bool kv_v_in_k;
    int n_expert, n_expert_used;    /* 0 for dense models */
};

struct model {
    struct gguf *g;
    struct tokenizer *tok;
    const struct arch *arch;
    struct hparams hp;
    struct model_info info;
    struct backend *be;     /* the CPU backend (weights are checked against it) */
    struct backend *gpu;    /* the device backend, or NULL */
    int n_gpu_layers;       /* layers 0 .. n_gpu_layers-1 run on gpu */
    bool experts_on_cpu;    /* the routed experts of device layers run on be */
    void *layers;           /* the architecture's per-layer weights */
    struct weight tok_embd, output_norm, output;
    int n_ctx, n_batch, n_past;
    int32_t *cache_ids;     /* n_ctx: the tokens in the KV cache */
    int32_t *pos;           /* n_batch positions, scratch */
};

/* Binds tensor `name` with shape [n_in] (n_out 0: a vector) or [n_in, n_out].
 * A missing tensor is EBADMSG unless !required (then w->t is NULL); a shape
 * that disagrees with the hyperparameters is EBADMSG; a weight type the
 * backend cannot multiply is ENOTSUP. */
int model_bind(struct model *m, const char *name, int64_t n_in, int64_t n_out, bool required,
               struct weight *w, char *err, size_t errlen);
/* Binds a mixture-of-experts tensor [n_in, n_out, n_exp] (w->n_exp,
 * w->exp_bytes set); errors as model_bind. */
int model_bind_experts(struct model *m, const char *name, int64_t n_in, int64_t n_out,
                       int64_t n_exp, bool required, struct weight *w, char *err, size_t errlen);
/* Reads an integer / float hyperparameter "<arch>.<key>"; dflt < 0 means required. */
int model_hparam_int(struct model *m, const char *key, int64_t dflt, int64_t lo, int64_t hi, int *out,
                     char *err, size_t errlen);
int model_hparam_float(struct model *m, const char *key, double dflt, bool required, float *out,
                       char *err, size_t errlen);

#endif
