/* The backend interface: the operations a forward pass is made of, on
 * activation tensors that live where the backend computes (host memory for
 * the CPU, device buffers for Vulkan).  An architecture describes its forward
 * pass once, as calls on this interface; infer/cpu/ implements it today.
 *
 * Activations are float32 matrices of ne1 rows (tokens) of ne0 values.  They
 * come from a per-pass arena: backend_reset() releases them all.  Weights are
 * bound once (struct weight, pointing into the mapped GGUF).  Operations
 * return 0 or an errno with one line in the backend's error buffer
 * (backend_error()). */
#ifndef PONDER_BACKEND_H
#define PONDER_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quant.h"

struct gguf_tensor;

/* A weight matrix (n_out rows of n_in values) or vector (n_out = 1). */
struct weight {
    const struct gguf_tensor *t;    /* NULL when absent (optional tensors) */
    enum quant_type type;
    int64_t n_in, n_out;
    const void *data;               /* host copy, in the mapping */
    size_t row_bytes;
};

/* An activation matrix: ne1 rows of ne0 float32 values. */
struct btensor {
    int64_t ne0, ne1;
    float *data;                    /* host pointer on the CPU backend */
};

enum rope_mode {
    ROPE_MODE_NORM = 0,   /* adjacent pairs (x[2i], x[2i+1]): llama, deepseek2 */
    ROPE_MODE_NEOX = 2    /* halves (x[i], x[i + n_rot/2]): qwen2 */
};

struct rope_params {
    enum rope_mode mode;
    int n_rot;                      /* dims rotated at the start of each head */
    float freq_base;
    float freq_scale;               /* 1 / scaling factor (1 = none) */
    const float *freq_factors;      /* n_rot/2 divisors (llama3 rope_freqs) or NULL */
    /* YaRN (deepseek2); ext_factor 0 turns it off */
    float ext_factor, attn_factor, beta_fast, beta_slow;
    int n_ctx_orig;
};

enum kv_type { KV_TYPE_F16 = 0, KV_TYPE_F32 = 1 };

/* The shape of the KV cache: per layer, n_ctx rows of k_width and v_width. */
struct kv_shape {
    int n_layer;
    int n_ctx;
    int64_t k_width, v_width;
    enum kv_type type;
};

struct backend;

struct backend_ops {
    const char *name;
    void (*free)(struct backend *b);
    int (*kv_init)(struct backend *b, const struct kv_shape *s);
    struct btensor *(*alloc)(struct backend *b, int64_t ne0, int64_t ne1);
    void (*reset)(struct backend *b);
    /* dst[i] = row ids[i] of w */
    int (*get_rows)(struct backend *b, struct btensor *dst, const struct weight *w,
                    const int32_t *ids, int64_t n);
    /* dst = src / rms(src) * g, per row; dst may be src */
    int (*rms_norm)(struct backend *b, struct btensor *dst, const struct btensor *src,
                    const struct weight *g, float eps);
    /* dst[t] = W . src[t] (+ bias when bias->t is set) */
    int (*matmul)(struct backend *b, struct btensor *dst, const struct weight *w,
                  const struct weight *bias, const struct btensor *src);
    /* rotates the first n_rot dims of each head of x, row t at position pos[t] */
    int (*rope)(struct backend *b, struct btensor *x, int head_dim, const struct rope_params *p,
                const int32_t *pos);
    /* writes k, v rows into the cache of layer at positions pos0.. */
    int (*kv_store)(struct backend *b, int layer, const struct btensor *k,
                    const struct btensor *v, int pos0);
    /* causal attention of q rows (positions pos0..) over the layer's cache
     * 0..pos: n_head query heads of head_dim, sharing n_head_kv KV heads;
     * v_dim values per head (dst row = n_head * v_dim) */
    int (*attention)(struct backend *b, struct btensor *dst, const struct btensor *q, int layer,
                     int n_head, int n_head_kv, int head_dim, int v_dim, int pos0, float scale);
    /* dst = silu(gate) * up */
    int (*swiglu)(struct backend *b, struct btensor *dst, const struct btensor *gate,
                  const struct btensor *up);
    /* dst += src */
    int (*add)(struct backend *b, struct btensor *dst, const struct btensor *src);
    /* copies rows row0 .. row0+n-1 of src to host memory */
    int (*read)(struct backend *b, const struct btensor *src, int64_t row0, int64_t n, float *out);
    /* a view of rows row0.. of src (no copy) */
    struct btensor *(*rows)(struct backend *b, const struct btensor *src, int64_t row0, int64_t n);
    const char *(*error)(const struct backend *b);
    const char *(*device_name)(const struct backend *b);
    /* waits until every operation issued so far has completed (a device
     * backend records work and runs it later); NULL when the backend
     * computes synchronously, as the CPU backend does */
    int (*sync)(struct backend *b);
};

struct backend {
    const struct backend_ops *ops;
};

#endif
