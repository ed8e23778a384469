/* Weight and activation number formats: the block layouts of the GGUF types
 * (bit-compatible with ggml), and one traits row per type with its block
 * size, bytes per block, the activation format its dot products take, and the
 * portable reference code (dequantize, quantize, dot).  The reference code is
 * the specification the SIMD kernels in cpu/ and the shaders are tested
 * against; it is never removed.
 *
 * Enum values are the GGUF tensor type ids.  Weights stay quantized in memory:
 * callers dequantize a row or a block at a time, never a whole tensor. */
#ifndef PONDER_QUANT_H
#define PONDER_QUANT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

enum quant_type {
    QUANT_TYPE_F32 = 0,
    QUANT_TYPE_F16 = 1,
    QUANT_TYPE_Q4_0 = 2,
    QUANT_TYPE_Q4_1 = 3,
    QUANT_TYPE_Q5_0 = 6,
    QUANT_TYPE_Q5_1 = 7,
    QUANT_TYPE_Q8_0 = 8,
    QUANT_TYPE_Q8_1 = 9,
    QUANT_TYPE_Q2_K = 10,
    QUANT_TYPE_Q3_K = 11,
    QUANT_TYPE_Q4_K = 12,
    QUANT_TYPE_Q5_K = 13,
    QUANT_TYPE_Q6_K = 14,
    QUANT_TYPE_Q8_K = 15,
    QUANT_TYPE_BF16 = 30,
    QUANT_TYPE_COUNT = 40   /* bound for tables indexed by type */
};

typedef uint16_t quant_f16;    /* IEEE half, raw bits */
typedef uint16_t quant_bf16;   /* bfloat16, raw bits */

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

struct block_q4_0 {
    quant_f16 d;              /* scale */
    uint8_t qs[QK4_0 / 2];    /* x[j] = (low nibble - 8)*d, x[j+16] = (high nibble - 8)*d */
};
static_assert(sizeof(struct block_q4_0) == 2 + QK4_0 / 2, "q4_0 block size");

struct block_q4_1 {
    quant_f16 d, m;           /* x = q*d + m */
    uint8_t qs[QK4_1 / 2];
};
static_assert(sizeof(struct block_q4_1) == 4 + QK4_1 / 2, "q4_1 block size");

struct block_q5_0 {
    quant_f16 d;
    uint8_t qh[4];            /* fifth bits: bit j of the u32 for x[j], bit j+16 for x[j+16] */
    uint8_t qs[QK5_0 / 2];    /* x = (q - 16)*d */
};
static_assert(sizeof(struct block_q5_0) == 2 + 4 + QK5_0 / 2, "q5_0 block size");

struct block_q5_1 {
    quant_f16 d, m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];    /* x = q*d + m */
};
static_assert(sizeof(struct block_q5_1) == 4 + 4 + QK5_1 / 2, "q5_1 block size");

struct block_q8_0 {
    quant_f16 d;
    int8_t qs[QK8_0];         /* x = q*d */
};
static_assert(sizeof(struct block_q8_0) == 2 + QK8_0, "q8_0 block size");

struct block_q8_1 {
    quant_f16 d;
    quant_f16 s;              /* d * sum(qs) */
    int8_t qs[QK8_1];
};
static_assert(sizeof(struct block_q8_1) == 4 + QK8_1, "q8_1 block size");

/* K-quants: super-blocks of 256 values in sub-blocks of 16 or 32. */
struct block_q2_k {
    uint8_t scales[QK_K / 16];  /* low 4 bits scale, high 4 bits min, per 16 values */
    uint8_t qs[QK_K / 4];       /* 2-bit quants */
    quant_f16 d;                /* super-block scale for the scales */
    quant_f16 dmin;             /* super-block scale for the mins */
};
static_assert(sizeof(struct block_q2_k) == 2 * 2 + QK_K / 16 + QK_K / 4, "q2_k block size");

struct block_q3_k {
    uint8_t hmask[QK_K / 8];    /* high bit */
    uint8_t qs[QK_K / 4];       /* low 2 bits */
    uint8_t scales[12];         /* 16 scales of 6 bits */
    quant_f16 d;
};
static_assert(sizeof(struct block_q3_k) == 2 + QK_K / 4 + QK_K / 8 + 12, "q3_k block size");

struct block_q4_k {
    quant_f16 d;
    quant_f16 dmin;
    uint8_t scales[K_SCALE_SIZE];  /* 8 scales and 8 mins of 6 bits */
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(struct block_q4_k) == 2 * 2 + K_SCALE_SIZE + QK_K / 2, "q4_k block size");

struct block_q5_k {
    quant_f16 d;
    quant_f16 dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(struct block_q5_k) == 2 * 2 + K_SCALE_SIZE + QK_K / 2 + QK_K / 8, "q5_k block size");

struct block_q6_k {
    uint8_t ql[QK_K / 2];       /* low 4 bits */
    uint8_t qh[QK_K / 4];       /* high 2 bits */
    int8_t scales[QK_K / 16];   /* 8-bit scales */
    quant_f16 d;
};
static_assert(sizeof(struct block_q6_k) == 2 + QK_K / 16 + 3 * QK_K / 4, "q6_k block size");

/* Activation format of the K-quant dot products. */
struct block_q8_k {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];   /* sums of qs in groups of 16 */
};
static_assert(sizeof(struct block_q8_k) == 4 + QK_K + QK_K / 16 * 2, "q8_k block size");

/* dequantize: n values (a multiple of block_size) from blocks to floats.
 * quantize: n floats to blocks; NULL where ponder has no quantizer.  The
 * activation formats are bit-exact with llama.cpp's CPU backend on x86:
 * Q8_0/Q8_1 d = f16(amax/127), q = x*(127/amax) rounded to nearest even
 * (its AVX path; ggml's scalar _ref uses roundf and 1/d, which differs only
 * at exact ties); Q8_K as quantize_row_q8_K_ref.  The weight types use a
 * plain round-to-nearest fit (no scale search).
 * dot: sum over n values of w (this type) times x (vec_dot_type), the
 * portable reference. */
struct quant_traits {
    const char *name;           /* "Q4_K", as llama.cpp prints it */
    int block_size;             /* values per block */
    size_t block_bytes;
    enum quant_type vec_dot_type;
    void (*dequantize)(const void *src, float *dst, int64_t n);
    void (*quantize)(const float *src, void *dst, int64_t n);
    float (*dot)(int64_t n, const void *w, const void *x);
};

/* NULL for a type ponder does not support. */
const struct quant_traits *quant_traits(enum quant_type t);
const char *quant_type_name(enum quant_type t);   /* "?" when unknown */
/* Bytes of a row of n values; 0 when the type is unsupported or n is not a
 * multiple of its block size. */
size_t quant_row_bytes(enum quant_type t, int64_t n);

float quant_f16_to_f32(quant_f16 h);
quant_f16 quant_f32_to_f16(float f);   /* round to nearest even */
float quant_bf16_to_f32(quant_bf16 h);
quant_bf16 quant_f32_to_bf16(float f); /* round to nearest even */

#endif
