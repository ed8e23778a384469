/* CPU matrix kernels: for every weight type, a kernel that multiplies rows of
 * quantized weights with columns of activations already converted to the
 * type's vec_dot_type (quant.h), chosen once at start from the CPU's features.
 * cpu_ref.c is the portable specification; cpu_avx2.c and cpu_avx512.c are
 * the fast paths, tested against it.
 *
 * A kernel computes, for r < nr and c < nc,
 *     y[c*ldy + r] = sum_i W[r][i] * X[c][i]       (i < n)
 * where row r of W starts at w + r*w_stride and column c of X (n values in the
 * vec_dot_type) at x + c*x_stride.  n is a multiple of the type's block size.
 * Kernels are pure: no allocation, no threads (the caller splits the work). */
#ifndef PONDER_CPU_H
#define PONDER_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "../quant.h"

typedef void (*cpu_gemm_fn)(int64_t n, int nr, int nc, const void *w, size_t w_stride,
                            const void *x, size_t x_stride, float *y, size_t ldy);

/* Converts n floats to a vec_dot_type row (F32: copy). */
typedef void (*cpu_quantize_fn)(const float *src, void *dst, int64_t n);

enum cpu_isa {
    CPU_ISA_PORTABLE = 0,
    CPU_ISA_AVX2,       /* AVX2 + FMA + F16C */
    CPU_ISA_AVX512,     /* AVX-512 F/BW/VL/DQ + VNNI */
    CPU_ISA_COUNT
};

struct cpu_kernels {
    enum cpu_isa isa;
    const char *isa_name;                      /* "avx512", "avx2", "portable" */
    cpu_gemm_fn gemm[QUANT_TYPE_COUNT];        /* NULL: type unsupported */
    cpu_quantize_fn quantize[QUANT_TYPE_COUNT];/* indexed by vec_dot_type */
};

/* Fills k with the best kernels this CPU runs, capped at `max` (CPU_ISA_COUNT
 * for no cap; tests pass CPU_ISA_PORTABLE to get the reference).  Every type
 * without a fast kernel falls back to the one below it. */
void cpu_select(struct cpu_kernels *k, enum cpu_isa max);
enum cpu_isa cpu_detect(void);

/* Per-ISA tables, each filling only what it implements. */
void cpu_ref_fill(struct cpu_kernels *k);
void cpu_avx2_fill(struct cpu_kernels *k);
void cpu_avx512_fill(struct cpu_kernels *k);

#endif
