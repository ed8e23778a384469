/* The portable kernels: one dot product per output through the quant traits'
 * reference code.  Slow and plain on purpose: this is the specification the
 * AVX2 and AVX-512 kernels are tested against. */
#include <string.h>

#include "infer/cpu/cpu.h"

static void ref_gemm(const struct quant_traits *tr, int64_t n, int nr, int nc, const void *w,
                     size_t w_stride, const void *x, size_t x_stride, float *y, size_t ldy)
{
    const unsigned char *wb = w, *xb = x;
    for (int c = 0; c < nc; c++)
        for (int r = 0; r < nr; r++)
            y[(size_t)c * ldy + (size_t)r] =
                tr->dot(n, wb + (size_t)r * w_stride, xb + (size_t)c * x_stride);
}

/* cpu_gemm_fn carries no type, so each type gets a named wrapper. */
#define REF_GEMM(T)                                                                         \
    static void ref_gemm_##T(int64_t n, int nr, int nc, const void *w, size_t w_stride,     \
                             const void *x, size_t x_stride, float *y, size_t ldy)         \
    {                                                                                       \
        ref_gemm(quant_traits(QUANT_TYPE_##T), n, nr, nc, w, w_stride, x, x_stride, y, ldy); \
    }

REF_GEMM(F32)
REF_GEMM(F16)
REF_GEMM(BF16)
REF_GEMM(Q4_0)
REF_GEMM(Q4_1)
REF_GEMM(Q5_0)
REF_GEMM(Q5_1)
REF_GEMM(Q8_0)
REF_GEMM(Q8_1)
REF_GEMM(Q2_K)
REF_GEMM(Q3_K)
REF_GEMM(Q4_K)
REF_GEMM(Q5_K)
REF_GEMM(Q6_K)
REF_GEMM(Q8_K)

static void ref_copy_f32(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void cpu_ref_fill(struct cpu_kernels *k)
{
    k->isa = CPU_ISA_PORTABLE;
    k->isa_name = "portable";
    k->gemm[QUANT_TYPE_F32] = ref_gemm_F32;
    k->gemm[QUANT_TYPE_F16] = ref_gemm_F16;
    k->gemm[QUANT_TYPE_BF16] = ref_gemm_BF16;
    k->gemm[QUANT_TYPE_Q4_0] = ref_gemm_Q4_0;
    k->gemm[QUANT_TYPE_Q4_1] = ref_gemm_Q4_1;
    k->gemm[QUANT_TYPE_Q5_0] = ref_gemm_Q5_0;
    k->gemm[QUANT_TYPE_Q5_1] = ref_gemm_Q5_1;
    k->gemm[QUANT_TYPE_Q8_0] = ref_gemm_Q8_0;
    k->gemm[QUANT_TYPE_Q8_1] = ref_gemm_Q8_1;
    k->gemm[QUANT_TYPE_Q2_K] = ref_gemm_Q2_K;
    k->gemm[QUANT_TYPE_Q3_K] = ref_gemm_Q3_K;
    k->gemm[QUANT_TYPE_Q4_K] = ref_gemm_Q4_K;
    k->gemm[QUANT_TYPE_Q5_K] = ref_gemm_Q5_K;
    k->gemm[QUANT_TYPE_Q6_K] = ref_gemm_Q6_K;
    k->gemm[QUANT_TYPE_Q8_K] = ref_gemm_Q8_K;

    k->quantize[QUANT_TYPE_F32] = ref_copy_f32;
    k->quantize[QUANT_TYPE_Q8_0] = quant_traits(QUANT_TYPE_Q8_0)->quantize;
    k->quantize[QUANT_TYPE_Q8_1] = quant_traits(QUANT_TYPE_Q8_1)->quantize;
    k->quantize[QUANT_TYPE_Q8_K] = quant_traits(QUANT_TYPE_Q8_K)->quantize;
}
