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

/* A weight matrix (n_out rows of n_in values) or vector (n_out = 1); or,
 * when n_exp > 0, a stack of n_exp such matrices (a mixture-of-experts
 * tensor [n_in, n_out, n_exp]), expert e starting exp_bytes after expert 0.
 *
 * A weight may be a view: data pointing at a row inside a tensor's data
 * (n_out of its rows), or at memory the architecture prepared at load time
 * (t is then the tensor it was made from).  Backends that keep their own
 * copy of a weight (Vulkan) know it by its data pointer. */
struct weight {
    const struct gguf_tensor *t;    /* NULL when absent (optional tensors) */
    enum quant_type type;
    int64_t n_in, n_out;
    const void *data;               /* host copy, in the mapping */
    size_t row_bytes;
    int64_t n_exp;                  /* 0: a plain matrix or vector */
    size_t exp_bytes;               /* bytes from one expert to the next */
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
    int dim_off;                    /* the rotated dims start here in each head (0; deepseek2
                                       keeps them after the head's no-rope part) */
    /* YaRN (deepseek2); ext_factor 0 turns it off */
    float ext_factor, attn_factor, beta_fast, beta_slow;
    int n_ctx_orig;
};

enum kv_type { KV_TYPE_F16 = 0, KV_TYPE_F32 = 1 };

/* The shape of the KV cache: per layer, n_ctx rows of k_width and v_width.
 * With v_in_k the cache holds no values of its own: the value row of a
 * position is the first v_width entries of its key row (deepseek2's MLA
 * caches the latent c_kv followed by the rope key, and attends over the
 * latent as both key and value); kv_store() is then given v = NULL. */
struct kv_shape {
    int n_layer;
    int n_ctx;
    int64_t k_width, v_width;
    enum kv_type type;
    bool v_in_k;
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
    /* copies n rows of host memory into rows row0 .. row0+n-1 of dst */
    int (*write)(struct backend *b, struct btensor *dst, int64_t row0, int64_t n, const float *in);
    /* strided column copy, for every row t and group g < n_group:
     *   dst[t, dst_off + g*dst_stride + i] = src[t, src_off + g*src_stride + i], i < width
     * (splits a head's parts apart and puts them together again) */
    int (*copy_cols)(struct backend *b, struct btensor *dst, int64_t dst_off, int64_t dst_stride,
                     const struct btensor *src, int64_t src_off, int64_t src_stride,
                     int64_t width, int64_t n_group);
    /* one matrix per head: w holds n_head blocks of w->n_out / n_head rows;
     * for every row t and head j, with r = w->n_out / n_head:
     *   dst[t, j*dst_stride + o] = W[j*r + o] . src[t, j*src_stride .. + w->n_in], o < r
     * (deepseek2's absorbed attention: q_nope into the latent, the latent
     * output back to each head's values) */
    int (*matmul_heads)(struct backend *b, struct btensor *dst, int64_t dst_stride,
                        const struct weight *w, int n_head, const struct btensor *src,
                        int64_t src_stride);
    /* routed experts, accumulated into dst: for every row t and k < n_used,
     * with e = experts[t*n_used + k] and c = weights[t*n_used + k],
     *   dst[t] += c * down_e . (silu(gate_e . src[t]) * (up_e . src[t]))
     * gate/up/down have n_exp > 0; only the chosen experts' weights are read
     * (a batch is grouped by expert).  experts and weights are host arrays. */
    int (*moe)(struct backend *b, struct btensor *dst, const struct weight *gate,
               const struct weight *up, const struct weight *down, const struct btensor *src,
               const int32_t *experts, const float *weights, int n_used);
    /* a view of rows row0.. of src (no copy) */
    struct btensor *(*rows)(struct backend *b, const struct btensor *src, int64_t row0, int64_t n);
    const char *(*error)(const struct backend *b);
    const char *(*device_name)(const struct backend *b);
    /* waits until every operation issued so far has completed: a device
     * backend records work and runs it later, the CPU backend queues
     * products that share an input and runs them as one job; a caller that
     * reads a tensor's memory other than through read() calls it first.
     * NULL when the backend computes every operation as it is called */
    int (*sync)(struct backend *b);
};

struct backend {
    const struct backend_ops *ops;
};

#endif
