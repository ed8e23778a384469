/* The CPU backend's matrix multiply and embedding lookup.  cpu_matmul()
 * converts the activations to the weight type's vec_dot_type (quant.h), then
 * splits the output into tiles of weight rows x tokens that the pool's
 * threads take from a shared counter, and runs the selected kernel
 * (cpu.h) on each.  Weights are read in place (mmapped, quantized).  The
 * quantized activations live in a grow-only scratch buffer the caller owns:
 * once it has grown to the largest call, cpu_matmul() allocates nothing.
 * Neither function prints; errors are a POSIX code plus one line in err. */
#ifndef PONDER_CPU_MATMUL_H
#define PONDER_CPU_MATMUL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "infer/cpu/cpu.h"
#include "infer/quant.h"

struct pool;

/* Grow-only buffer (64-byte aligned) for the quantized activations.  One per
 * caller thread: cpu_matmul() calls sharing one scratch must not overlap. */
struct cpu_scratch {
    void *buf;
    size_t cap;
};

void cpu_scratch_init(struct cpu_scratch *s);
void cpu_scratch_free(struct cpu_scratch *s);   /* then empty again; NULL is a no-op */

/* y[t*n_out + o] = sum_i W[o][i] * x[t*n_in + i]  for t < n_tok, o < n_out.
 * W is n_out rows of n_in values of wtype, row stride quant_row_bytes(wtype,
 * n_in); x is n_tok rows of n_in floats; y is n_tok rows of n_out floats and
 * must not overlap x.  p NULL runs on the caller alone.
 * 0, or EINVAL (bad shape: n_in not a positive multiple of the block size,
 * negative counts, sizes that overflow), ENOTSUP (no kernel or activation
 * quantizer for wtype in k), ENOMEM (scratch growth). */
int cpu_matmul(struct pool *p, const struct cpu_kernels *k, enum quant_type wtype,
               const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok,
               float *y, struct cpu_scratch *s, char *err, size_t errlen);

/* The checks cpu_matmul() makes before it touches anything: 0, or its EINVAL
 * and ENOTSUP with the same line. */
int cpu_matmul_check(const struct cpu_kernels *k, enum quant_type wtype, int64_t n_in,
                     int64_t n_out, int64_t n_tok, char *err, size_t errlen);

/* Products in one batch: as many as a layer has on one input (q, k, v). */
#define CPU_MM_BATCH_MAX 4

/* One product of a batch: y (n_tok rows of n_out floats) = W x. */
struct cpu_mm {
    enum quant_type wtype;
    const void *w;
    int64_t n_out;
    float *y;
};

/* cpu_mm_batch() flag: after products 0 and 1 (same n_out), y0 = silu(y0) * y1
 * element by element, as backend.h's swiglu. */
#define CPU_MM_SWIGLU 1u

/* Several products of the same x in one pool job: x is converted once per
 * vec_dot_type, and the threads take the tiles of all products from one
 * counter, so the batch costs one join where separate calls cost one each.
 * Every y is bit for bit what cpu_matmul() writes for its product (the same
 * tiles and kernels), and with CPU_MM_SWIGLU y0 is then what the backend's
 * swiglu makes of y0 and y1 (done tile by tile where both products have the
 * same tiles).  The ys must not overlap x or each other.  n_ops is 1 ..
 * CPU_MM_BATCH_MAX.  Errors as cpu_matmul(), nothing written on EINVAL and
 * ENOTSUP. */
int cpu_mm_batch(struct pool *p, const struct cpu_kernels *k, const struct cpu_mm *ops,
                 int n_ops, unsigned flags, int64_t n_in, const float *x, int64_t n_tok,
                 struct cpu_scratch *s, char *err, size_t errlen);

/* silu(g) * u as every swiglu of the CPU backend computes it. */
static inline float cpu_swiglu1(float g, float u)
{
    return g / (1.0f + expf(-g)) * u;
}

/* Embedding lookup: out[i*n_in + j] = row ids[i] of W (n_rows rows of n_in
 * values of type), dequantized, for i < n.  0, or EINVAL (an id outside
 * [0, n_rows), bad shape), ENOTSUP (type without a dequantizer). */
int cpu_get_rows(enum quant_type type, const void *w, int64_t n_in, int64_t n_rows,
                 const int32_t *ids, int64_t n, float *out, char *err, size_t errlen);

#endif
