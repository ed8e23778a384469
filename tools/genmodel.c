/* genmodel: writes a random-weight GGUF of any R1-Distill shape (qwen2, llama),
 * or of a deepseek2 preset (DeepSeek-V2-Lite's shape, the td test model's),
 * in any weight type, for benchmarks.  Blocks are generated directly (never
 * quantized from floats) by worker threads and streamed to disk in order; the
 * tokenizer is copied from a real vocabulary file, so the model loads and
 * tokenizes like the real one.
 *
 * Which tensor gets which type (llama.cpp c392e509 llama_tensor_get_type for
 * a model with one expert; f32, f16 and bf16 apply no rule):
 *   1-D tensors (norms, biases, rope_freqs): F32.
 *   output.weight: Q8_0 if ne0 % 256 != 0, else Q6_K unless the base is Q8_0.
 *   token_embd, attn_q, attn_k, ffn_gate, ffn_up: the base type.
 *   attn_v:      q2_k: Q4_K if n_head/n_head_kv >= 4 else Q3_K;
 *                q3_k_m: Q5_K in layers 0 and 1, else Q4_K;
 *                q4_k_m, q5_k_m: Q6_K where use_more_bits(layer) (below).
 *                Then 80-layer models (llama.cpp's "70B"): Q3_K/Q4_K -> Q5_K.
 *   ffn_down:    q2_k: Q3_K; q3_k_m: Q5_K where layer < n_layer/16 else Q4_K;
 *                q4_k_m, q5_k_m: Q6_K where use_more_bits(layer).
 *   attn_output: q2_k: Q3_K; q3_k_m: Q4_K.
 *   use_more_bits(i) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2.
 *   A row length the type's block does not divide falls back as llama.cpp
 *   does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then F16); where llama.cpp
 *   would fail or pick IQ4_NL (which ponder lacks), genmodel refuses the shape.
 * llama.cpp counts layers in file order; here that is layer order.
 * deepseek2 (a mixture of experts): ffn_gate_inp and exp_probs_b stay F32;
 * ffn_down_exps and ffn_down_shexp follow the ffn_down rule with the layer
 * taken from the name (llama.cpp's layer_info for n_expert > 1); attn_q_a,
 * attn_q_b, attn_kv_a_mqa, attn_kv_b and the expert gate/up get the base
 * type; a row length the K-quant block does not divide (V2-Lite's expert
 * width 1408) falls back as above. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "infer/ckd.h"
#include "infer/clock.h"
#include "infer/err.h"
#include "infer/gguf.h"
#include "infer/quant.h"
#include "tests/fx_gguf.h"

#define GEN_CHUNK_BYTES ((size_t)4 << 20)  /* rows generated per job, at most */
#define GEN_MAX_THREADS 64
#define GEN_NORM_TABLE 4096                /* N(0,1) samples drawn by 12-bit index */
#define GEN_JITTER 16                      /* block scales vary by +-20 % */
#define GEN_BIAS_SIGMA 0.02

/* ---- shapes and weight types ---- */

struct shape {
    const char *preset;
    const char *arch;      /* "qwen2" or "llama" */
    const char *name;      /* general.name */
    int64_t n_embd, n_layer, n_head, n_head_kv, n_ff;
    int64_t n_vocab;       /* 0: the vocabulary's token count */
    int64_t n_ctx;
    double rope_base, eps;
    const char *vocab;     /* under the test data folder */
    /* deepseek2 only (presets) */
    int64_t q_lora, kv_lora, qk_nope, qk_rope, v_head;
    int64_t n_expert, n_expert_used, n_shared, expert_ff, n_dense;
    int gating;            /* 1 softmax, 2 sigmoid */
    double w_scale;
    bool w_norm;
    double yarn_factor;    /* 0: no rope scaling */
    int64_t yarn_orig_ctx;
    double yarn_log_mul;
};

static const struct shape presets[] = {
    { .preset = "r1-qwen-1.5b", .arch = "qwen2", .name = "DeepSeek R1 Distill Qwen 1.5B",
      .n_embd = 1536, .n_layer = 28, .n_head = 12, .n_head_kv = 2, .n_ff = 8960,
      .n_vocab = 151936, .n_ctx = 131072, .rope_base = 10000, .eps = 1e-6,
      .vocab = "vocab-r1-qwen.gguf" },
    { .preset = "r1-qwen-7b", .arch = "qwen2", .name = "DeepSeek R1 Distill Qwen 7B",
      .n_embd = 3584, .n_layer = 28, .n_head = 28, .n_head_kv = 4, .n_ff = 18944,
      .n_vocab = 152064, .n_ctx = 131072, .rope_base = 10000, .eps = 1e-6,
      .vocab = "vocab-r1-qwen.gguf" },
    { .preset = "r1-qwen-14b", .arch = "qwen2", .name = "DeepSeek R1 Distill Qwen 14B",
      .n_embd = 5120, .n_layer = 48, .n_head = 40, .n_head_kv = 8, .n_ff = 13824,
      .n_vocab = 152064, .n_ctx = 131072, .rope_base = 1000000, .eps = 1e-5,
      .vocab = "vocab-r1-qwen.gguf" },
    { .preset = "r1-qwen-32b", .arch = "qwen2", .name = "DeepSeek R1 Distill Qwen 32B",
      .n_embd = 5120, .n_layer = 64, .n_head = 40, .n_head_kv = 8, .n_ff = 27648,
      .n_vocab = 152064, .n_ctx = 131072, .rope_base = 1000000, .eps = 1e-5,
      .vocab = "vocab-r1-qwen.gguf" },
    { .preset = "r1-llama-8b", .arch = "llama", .name = "DeepSeek R1 Distill Llama 8B",
      .n_embd = 4096, .n_layer = 32, .n_head = 32, .n_head_kv = 8, .n_ff = 14336,
      .n_vocab = 128256, .n_ctx = 131072, .rope_base = 500000, .eps = 1e-5,
      .vocab = "vocab-r1-llama.gguf" },
    { .preset = "r1-llama-70b", .arch = "llama", .name = "DeepSeek R1 Distill Llama 70B",
      .n_embd = 8192, .n_layer = 80, .n_head = 64, .n_head_kv = 8, .n_ff = 28672,
      .n_vocab = 128256, .n_ctx = 131072, .rope_base = 500000, .eps = 1e-5,
      .vocab = "vocab-r1-llama.gguf" },
    /* the shapes of the test data's tq-* and tl-* models, with their mini vocabularies */
    { .preset = "tiny-qwen", .arch = "qwen2", .name = "tiny qwen2",
      .n_embd = 256, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 512,
      .n_vocab = 0, .n_ctx = 4096, .rope_base = 10000, .eps = 1e-6,
      .vocab = "models/tq-f32.gguf" },
    { .preset = "tiny-llama", .arch = "llama", .name = "tiny llama",
      .n_embd = 256, .n_layer = 2, .n_head = 4, .n_head_kv = 1, .n_ff = 768,
      .n_vocab = 0, .n_ctx = 131072, .rope_base = 500000, .eps = 1e-5,
      .vocab = "models/tl-f32.gguf" },
    /* DeepSeek-V2-Lite (15.7B, 2.4B active), without its YaRN scaling; with
     * R1's tokenizer (129280 tokens, not V2's 102400: 0.1 GB more of
     * embedding and output) */
    { .preset = "v2-lite", .arch = "deepseek2", .name = "DeepSeek V2 Lite", .n_embd = 2048,
      .n_layer = 27, .n_head = 16, .n_head_kv = 16, .n_ff = 10944, .n_vocab = 0,
      .n_ctx = 163840, .rope_base = 10000, .eps = 1e-6, .vocab = "vocab-r1.gguf",
      .q_lora = 0, .kv_lora = 512, .qk_nope = 128, .qk_rope = 64, .v_head = 128,
      .n_expert = 64, .n_expert_used = 6, .n_shared = 2, .expert_ff = 1408, .n_dense = 1,
      .gating = 1, .w_scale = 1.0, .w_norm = false },
    /* the shape of the test data's td-* models (R1's layout: q-lora, sigmoid, YaRN) */
    { .preset = "tiny-deepseek2", .arch = "deepseek2", .name = "tiny deepseek2", .n_embd = 256,
      .n_layer = 3, .n_head = 4, .n_head_kv = 4, .n_ff = 512, .n_vocab = 0, .n_ctx = 163840,
      .rope_base = 10000, .eps = 1e-6, .vocab = "models/td-f32.gguf", .q_lora = 128,
      .kv_lora = 64, .qk_nope = 32, .qk_rope = 16, .v_head = 32, .n_expert = 8,
      .n_expert_used = 2, .n_shared = 1, .expert_ff = 32, .n_dense = 1, .gating = 2,
      .w_scale = 2.5, .w_norm = true, .yarn_factor = 40, .yarn_orig_ctx = 4096,
      .yarn_log_mul = 0.1 },
};

enum mix { MIX_F32, MIX_F16, MIX_BF16, MIX_Q8_0, MIX_Q4_0, MIX_Q4_1, MIX_Q5_0, MIX_Q5_1,
           MIX_Q6_K, MIX_Q2_K, MIX_Q3_K_M, MIX_Q4_K_M, MIX_Q5_K_M };

static const struct {
    const char *name;
    enum mix mix;
    enum quant_type base;
    uint32_t file_type;    /* llama_ftype */
} mixes[] = {
    { "f32", MIX_F32, QUANT_TYPE_F32, 0 },        { "f16", MIX_F16, QUANT_TYPE_F16, 1 },
    { "bf16", MIX_BF16, QUANT_TYPE_BF16, 32 },    { "q8_0", MIX_Q8_0, QUANT_TYPE_Q8_0, 7 },
    { "q4_0", MIX_Q4_0, QUANT_TYPE_Q4_0, 2 },     { "q4_1", MIX_Q4_1, QUANT_TYPE_Q4_1, 3 },
    { "q5_0", MIX_Q5_0, QUANT_TYPE_Q5_0, 8 },     { "q5_1", MIX_Q5_1, QUANT_TYPE_Q5_1, 9 },
    { "q6_k", MIX_Q6_K, QUANT_TYPE_Q6_K, 18 },    { "q2_k", MIX_Q2_K, QUANT_TYPE_Q2_K, 10 },
    { "q3_k_m", MIX_Q3_K_M, QUANT_TYPE_Q3_K, 12 }, { "q4_k_m", MIX_Q4_K_M, QUANT_TYPE_Q4_K, 15 },
    { "q5_k_m", MIX_Q5_K_M, QUANT_TYPE_Q5_K, 17 },
};
#define N_MIXES (sizeof mixes / sizeof mixes[0])

enum role { ROLE_TOKEN_EMBD, ROLE_OUTPUT, ROLE_ATTN_Q, ROLE_ATTN_K, ROLE_ATTN_V, ROLE_ATTN_OUT,
            ROLE_FFN_GATE, ROLE_FFN_UP, ROLE_FFN_DOWN, ROLE_OTHER };

/* How a tensor's values are made. */
enum fill { FILL_RANDOM, FILL_ONES, FILL_BIAS, FILL_ROPE_FREQS };

struct gen_tensor {
    char name[64];
    enum quant_type type;
    enum fill fill;
    int n_dims;
    int64_t ne[3];         /* ne[2]: experts (1 for a matrix) */
    size_t row_bytes, size;
    double sigma;
};

/* A worker's lookup tables for the tensor it is generating. */
struct gen_tables {
    int64_t tensor;                  /* built for; -1 none */
    float tab32[GEN_NORM_TABLE];     /* sigma * N(0,1) */
    uint16_t tab16[GEN_NORM_TABLE];  /* the same as f16 or bf16 bits */
    quant_f16 d[GEN_JITTER], m[GEN_JITTER];
};

/* One job: rows [row0, row0 + n_rows) of a tensor. */
struct gen_job {
    int64_t tensor, row0, n_rows;
    size_t bytes;
    bool last;             /* last job of its tensor: padding follows */
};

static int use_more_bits(int64_t i, int64_t n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static int64_t block_size(enum quant_type t)
{
    return quant_traits(t)->block_size;
}

/* The type llama-quantize gives a matrix (see the top of the file); 0, or
 * EINVAL with a message when no type fits the row length. */
static int matrix_type(enum mix mix, enum quant_type base, enum role role, int64_t layer,
                       const struct shape *s, int64_t ne0, enum quant_type *out, char *err,
                       size_t errlen)
{
    enum quant_type t = base;
    bool quantized = mix != MIX_F32 && mix != MIX_F16 && mix != MIX_BF16;
    if (quantized) {
        int64_t n = s->n_layer;
        switch (role) {
        case ROLE_OUTPUT:
            if (ne0 % QK_K != 0)
                t = QUANT_TYPE_Q8_0;
            else if (t != QUANT_TYPE_Q8_0)
                t = QUANT_TYPE_Q6_K;
            break;
        case ROLE_ATTN_V:
            if (mix == MIX_Q2_K)
                t = s->n_head / s->n_head_kv >= 4 ? QUANT_TYPE_Q4_K : QUANT_TYPE_Q3_K;
            else if (mix == MIX_Q3_K_M)
                t = layer < 2 ? QUANT_TYPE_Q5_K : QUANT_TYPE_Q4_K;
            else if ((mix == MIX_Q4_K_M || mix == MIX_Q5_K_M) && use_more_bits(layer, n))
                t = QUANT_TYPE_Q6_K;
            if (n == 80 && (t == QUANT_TYPE_Q3_K || t == QUANT_TYPE_Q4_K))
                t = QUANT_TYPE_Q5_K;
            break;
        case ROLE_FFN_DOWN:
            if (mix == MIX_Q2_K)
                t = QUANT_TYPE_Q3_K;
            else if (mix == MIX_Q3_K_M)
                t = layer < n / 16 ? QUANT_TYPE_Q5_K : QUANT_TYPE_Q4_K;
            else if ((mix == MIX_Q4_K_M || mix == MIX_Q5_K_M) && use_more_bits(layer, n))
                t = QUANT_TYPE_Q6_K;
            break;
        case ROLE_ATTN_OUT:
            if (mix == MIX_Q2_K)
                t = QUANT_TYPE_Q3_K;
            else if (mix == MIX_Q3_K_M)
                t = QUANT_TYPE_Q4_K;
            break;
        default:
            break;
        }
    }
    if (ne0 % block_size(t) != 0) {
        enum quant_type fb;
        switch (t) {
        case QUANT_TYPE_Q4_K: fb = QUANT_TYPE_Q5_0; break;
        case QUANT_TYPE_Q5_K: fb = QUANT_TYPE_Q5_1; break;
        case QUANT_TYPE_Q6_K: fb = QUANT_TYPE_Q8_0; break;
        default:
            snprintf(err, errlen, "row length %lld is not a multiple of %lld, which %s needs",
                     (long long)ne0, (long long)block_size(t), quant_type_name(t));
            return EINVAL;
        }
        t = ne0 % block_size(fb) == 0 ? fb : QUANT_TYPE_F16;
    }
    *out = t;
    return 0;
}

/* ---- random numbers ---- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void rng_bytes(uint64_t *s, uint8_t *dst, size_t n)
{
    for (; n >= 8; n -= 8, dst += 8) {
        uint64_t r = rng_next(s);
        memcpy(dst, &r, 8);
    }
    if (n) {
        uint64_t r = rng_next(s);
        memcpy(dst, &r, n);
    }
}

/* A uniform double in (0, 1). */
static double rng_unit(uint64_t *s)
{
    return ((double)(rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static uint64_t job_seed(uint64_t seed, int64_t tensor, int64_t row0)
{
    uint64_t s = seed ^ ((uint64_t)tensor * 0xd1b54a32d192ed03u) ^
                 ((uint64_t)row0 * 0x8cb92ba72f3d8dd7u);
    rng_next(&s);
    return s;
}

/* ---- block generators: values ~ sigma * N(0,1) in effect ---- */

/* RMS of the integer factors each layout multiplies d by, for uniform random
 * bits (e.g. Q8_0: bytes -128..127, RMS 73.9; Q4_0: q - 8 in -8..7, 4.64). */
#define RMS_I8 73.9
#define RMS_U4 4.610   /* q - 7.5, q in 0..15 */
#define RMS_S4 4.637   /* q - 8 */
#define RMS_U5 9.233   /* q - 15.5, q in 0..31 */
#define RMS_S5 9.247   /* q - 16 */
#define RMS_U2 1.118   /* q - 1.5, q in 0..3 */
#define RMS_S3 2.345   /* q in -4..3 */
#define RMS_S6 18.49   /* q - 32, q in 0..63, also Q3_K's scale - 32 */
#define RMS_SC4 11.73  /* Q2_K scales drawn from 8..15 */
#define RMS_SC6 48.39  /* Q4_K/Q5_K scales drawn from 32..63 */

/* d = sigma / (rms of what multiplies d); m = offset * d (the min that
 * centres the values), both jittered per block.  Without a min, d takes both
 * signs (as ggml's quantizers give it), which cancels the -0.5 mean of
 * integer ranges like -8..7. */
static void make_scales(const struct gen_tensor *t, struct gen_tables *tb, double rms,
                        double offset, uint64_t *s)
{
    for (int i = 0; i < GEN_JITTER; i++) {
        double d = t->sigma / rms * (0.8 + 0.4 * rng_unit(s));
        if (offset == 0 && i % 2)
            d = -d;
        tb->d[i] = quant_f32_to_f16((float)d);
        tb->m[i] = quant_f32_to_f16((float)(offset * quant_f16_to_f32(tb->d[i])));
    }
}

/* Depends on the tensor and the seed only, so any worker builds the same. */
static void tables_build(const struct gen_tensor *t, struct gen_tables *tb, const float *norm,
                         uint64_t seed, int64_t idx)
{
    uint64_t s = job_seed(seed, idx, -1);
    tb->tensor = idx;
    if (t->type == QUANT_TYPE_F32 || t->type == QUANT_TYPE_F16 || t->type == QUANT_TYPE_BF16) {
        for (int i = 0; i < GEN_NORM_TABLE; i++) {
            float v = (float)(t->sigma * norm[i]);
            tb->tab32[i] = v;
            tb->tab16[i] = t->type == QUANT_TYPE_BF16 ? quant_f32_to_bf16(v) : quant_f32_to_f16(v);
        }
    }
    switch (t->type) {
    case QUANT_TYPE_Q8_0: make_scales(t, tb, RMS_I8, 0, &s); break;
    case QUANT_TYPE_Q4_0: make_scales(t, tb, RMS_S4, 0, &s); break;
    case QUANT_TYPE_Q4_1: make_scales(t, tb, RMS_U4, -7.5, &s); break;
    case QUANT_TYPE_Q5_0: make_scales(t, tb, RMS_S5, 0, &s); break;
    case QUANT_TYPE_Q5_1: make_scales(t, tb, RMS_U5, -15.5, &s); break;
    case QUANT_TYPE_Q2_K: make_scales(t, tb, RMS_SC4 * RMS_U2, 1.5, &s); break;
    case QUANT_TYPE_Q3_K: make_scales(t, tb, RMS_S6 * RMS_S3, 0, &s); break;
    case QUANT_TYPE_Q4_K: make_scales(t, tb, RMS_SC6 * RMS_U4, 7.5, &s); break;
    case QUANT_TYPE_Q5_K: make_scales(t, tb, RMS_SC6 * RMS_U5, 15.5, &s); break;
    case QUANT_TYPE_Q6_K: make_scales(t, tb, RMS_I8 * RMS_S6, 0, &s); break;
    default: break;
    }
}

/* Q4_K/Q5_K: 8 scales drawn from 32..63 and mins equal to them, so with
 * dmin = offset * d every sub-block is centred on zero. */
static void k4_scales(uint64_t r, uint8_t out[K_SCALE_SIZE])
{
    int sc[8];
    for (int j = 0; j < 8; j++)
        sc[j] = 32 + (int)((r >> (5 * j)) & 31);
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)((sc[j] & 63) | (sc[j + 4] >> 4) << 6);
        out[j + 4] = (uint8_t)((sc[j] & 63) | (sc[j + 4] >> 4) << 6);
        out[j + 8] = (uint8_t)((sc[j + 4] & 0xf) | (sc[j + 4] & 0xf) << 4);
    }
}

static void fill_blocks(const struct gen_tensor *t, const struct gen_tables *tb, uint8_t *dst,
                        int64_t n_blocks, uint64_t *s)
{
    switch (t->type) {
    case QUANT_TYPE_F32: {
        float v[4];
        for (int64_t i = 0; i < n_blocks; i += 4) {
            uint64_t r = rng_next(s);
            int k = n_blocks - i < 4 ? (int)(n_blocks - i) : 4;
            for (int j = 0; j < k; j++)
                v[j] = tb->tab32[(r >> (12 * j)) & (GEN_NORM_TABLE - 1)];
            memcpy(dst + 4 * i, v, 4 * (size_t)k);
        }
        break;
    }
    case QUANT_TYPE_F16:
    case QUANT_TYPE_BF16: {
        uint16_t v[5];
        for (int64_t i = 0; i < n_blocks; i += 5) {
            uint64_t r = rng_next(s);
            int k = n_blocks - i < 5 ? (int)(n_blocks - i) : 5;
            for (int j = 0; j < k; j++)
                v[j] = tb->tab16[(r >> (12 * j)) & (GEN_NORM_TABLE - 1)];
            memcpy(dst + 2 * i, v, 2 * (size_t)k);
        }
        break;
    }
    case QUANT_TYPE_Q8_0:
        for (struct block_q8_0 *b = (void *)dst, *e = b + n_blocks; b < e; b++) {
            b->d = tb->d[rng_next(s) & (GEN_JITTER - 1)];
            rng_bytes(s, (uint8_t *)b->qs, sizeof b->qs);
        }
        break;
    case QUANT_TYPE_Q4_0:
        for (struct block_q4_0 *b = (void *)dst, *e = b + n_blocks; b < e; b++) {
            b->d = tb->d[rng_next(s) & (GEN_JITTER - 1)];
            rng_bytes(s, b->qs, sizeof b->qs);
        }
        break;
    case QUANT_TYPE_Q4_1:
        for (struct block_q4_1 *b = (void *)dst, *e = b + n_blocks; b < e; b++) {
            int j = (int)(rng_next(s) & (GEN_JITTER - 1));
            b->d = tb->d[j];
            b->m = tb->m[j];
            rng_bytes(s, b->qs, sizeof b->qs);
        }
        break;
    case QUANT_TYPE_Q5_0:
        for (struct block_q5_0 *b = (void *)dst, *e = b + n_blocks; b < e; b++) {
            uint64_t r = rng_next(s);
            b->d = tb->d[r & (GEN_JITTER - 1)];
            memcpy(b->qh, (const uint8_t *)&r + 4, 4);
            rng_bytes(s, b->qs, sizeof b->qs);
        }
        break;
    case QUANT_TYPE_Q5_1:
        for (struct block_q5_1 *b = (void *)dst, *e = b + n_blocks; b < e; b++) {
            uint64_t r = rng_next(s);
            int j = (int)(r & (GEN_JITTER - 1));
            b->d = tb->d[j];
            b->m = tb->m[j];
            memcpy(b->qh, (const uint8_t *)&r + 4, 4);
            rng_bytes(s, b->qs, sizeof b->qs);
        }
        break;
    case QUANT_TYPE_Q2_K:
        for (struct block_q2_k *b = (void *)dst, *e = b + n_blocks; b < e; b++) {
            uint64_t r = rng_next(s);
            int j = (int)(r & (GEN_JITTER - 1));
            b->d = tb->d[j];
            b->dmin = tb->m[j];
            for (int k = 0; k < QK_K / 16; k++) {
                unsigned sc = 8 + (unsigned)((r >> (4 + 3 * k)) & 7);
                b->scales[k] = (uint8_t)(sc | sc << 4);
            }
            rng_bytes(s, b->qs, sizeof b->qs);
        }
        break;
    case QUANT_TYPE_Q3_K:
        for (struct block_q3_k *b = (void *)dst, *e = b + n_blocks; b < e; b++) {
            b->d = tb->d[rng_next(s) & (GEN_JITTER - 1)];
            rng_bytes(s, b->hmask, sizeof b->hmask);
            rng_bytes(s, b->qs, sizeof b->qs);
            rng_bytes(s, b->scales, sizeof b->scales);
        }
        break;
    case QUANT_TYPE_Q4_K:
        for (struct block_q4_k *b = (void *)dst, *e = b + n_blocks; b < e; b++) {
            uint64_t r = rng_next(s);
            int j = (int)(r >> 60);
            b->d = tb->d[j];
            b->dmin = tb->m[j];
            k4_scales(r, b->scales);
            rng_bytes(s, b->qs, sizeof b->qs);
        }
        break;
    case QUANT_TYPE_Q5_K:
        for (struct block_q5_k *b = (void *)dst, *e = b + n_blocks; b < e; b++) {
            uint64_t r = rng_next(s);
            int j = (int)(r >> 60);
            b->d = tb->d[j];
            b->dmin = tb->m[j];
            k4_scales(r, b->scales);
            rng_bytes(s, b->qh, sizeof b->qh);
            rng_bytes(s, b->qs, sizeof b->qs);
        }
        break;
    case QUANT_TYPE_Q6_K:
        for (struct block_q6_k *b = (void *)dst, *e = b + n_blocks; b < e; b++) {
            b->d = tb->d[rng_next(s) & (GEN_JITTER - 1)];
            rng_bytes(s, b->ql, sizeof b->ql);
            rng_bytes(s, b->qh, sizeof b->qh);
            rng_bytes(s, (uint8_t *)b->scales, sizeof b->scales);
        }
        break;
    default:
        break;  /* matrix_type() returns only the types above */
    }
}

/* llama3 rope scaling as convert_hf_to_gguf.py computes it for R1-Distill-Llama
 * (factor 8, low_freq_factor 1, high_freq_factor 4, original context 8192). */
static float rope_freq(int64_t i, int64_t n_rot, double base)
{
    const double factor = 8, lo = 1, hi = 4, orig = 8192;
    double freq = pow(base, -2.0 * (double)i / (double)n_rot);
    double wavelen = 2 * M_PI / freq;
    if (wavelen < orig / hi)
        return 1.0f;
    if (wavelen > orig / lo)
        return (float)factor;
    double smooth = (orig / wavelen - lo) / (hi - lo);
    return (float)(1 / ((1 - smooth) / factor + smooth));
}

static void gen_job_run(const struct gen_tensor *t, const struct gen_tables *tb,
                        const struct gen_job *j, uint64_t seed, const struct shape *shape,
                        uint8_t *dst)
{
    uint64_t s = job_seed(seed, j->tensor, j->row0);
    switch (t->fill) {
    case FILL_RANDOM:
        fill_blocks(t, tb, dst, j->n_rows * (t->ne[0] / block_size(t->type)), &s);
        break;
    case FILL_ONES:
        for (int64_t i = 0; i < t->ne[0]; i++) {
            float one = 1.0f;
            memcpy(dst + 4 * i, &one, 4);
        }
        break;
    case FILL_BIAS:
        for (int64_t i = 0; i < t->ne[0]; i++) {
            double u1 = rng_unit(&s), u2 = rng_unit(&s);
            float v = (float)(GEN_BIAS_SIGMA * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
            memcpy(dst + 4 * i, &v, 4);
        }
        break;
    case FILL_ROPE_FREQS:
        for (int64_t i = 0; i < t->ne[0]; i++) {
            float v = rope_freq(i, 2 * t->ne[0], shape->rope_base);
            memcpy(dst + 4 * i, &v, 4);
        }
        break;
    }
}

/* ---- the pipeline: workers fill a ring of buffers, the main thread writes ---- */

struct pipe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const struct gen_tensor *tensors;
    const float *norm;
    const struct gen_job *jobs;
    int64_t n_jobs;
    const struct shape *shape;
    uint64_t seed;
    uint8_t **slot;        /* n_slots buffers of GEN_CHUNK_BYTES at most */
    int n_slots;
    int64_t next;          /* next job to claim */
    int64_t written;       /* jobs written so far */
    bool *ready;           /* per job */
    bool stop;
};

struct worker {
    struct pipe *p;
    struct gen_tables tb;
};

static void *pipe_worker(void *arg)
{
    struct worker *w = arg;
    struct pipe *p = w->p;
    struct gen_tables *tb = &w->tb;
    tb->tensor = -1;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->next < p->n_jobs && p->next >= p->written + p->n_slots)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop || p->next >= p->n_jobs)
            break;
        int64_t k = p->next++;
        const struct gen_job *j = &p->jobs[k];
        const struct gen_tensor *t = &p->tensors[j->tensor];
        pthread_mutex_unlock(&p->mu);
        if (tb->tensor != j->tensor && t->fill == FILL_RANDOM)
            tables_build(t, tb, p->norm, p->seed, j->tensor);
        gen_job_run(t, tb, j, p->seed, p->shape, p->slot[k % p->n_slots]);
        pthread_mutex_lock(&p->mu);
        p->ready[k] = true;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- options ---- */

struct opts {
    struct shape shape;
    const char *type;
    const char *out;
    const char *vocab;
    const char *name;      /* --name, written as given */
    uint64_t seed;
    int threads;
    bool quiet;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: genmodel --preset NAME [options] -o FILE\n"
            "       genmodel --arch qwen2|llama --n-embd N --n-layer N --n-head N [--n-head-kv N]\n"
            "                --n-ff N [--n-vocab N] [options] -o FILE\n"
            "Writes a GGUF model with random weights of the given shape and type.\n"
            "  --preset NAME     r1-qwen-1.5b r1-qwen-7b r1-qwen-14b r1-qwen-32b r1-llama-8b\n"
            "                    r1-llama-70b tiny-qwen tiny-llama, and the deepseek2 shapes\n"
            "                    v2-lite (DeepSeek-V2-Lite) and tiny-deepseek2 (the td test\n"
            "                    model's) (options below override it)\n"
            "  --type T          f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q6_k q2_k q3_k_m q4_k_m\n"
            "                    q5_k_m (default q8_0; the k_m mixes follow llama-quantize)\n"
            "  --n-ctx N         context_length key (default 131072)\n"
            "  --rope-base X     rope.freq_base; --eps X: layer_norm_rms_epsilon\n"
            "  --vocab FILE      GGUF whose tokenizer.* keys are copied (default: the test\n"
            "                    data's vocab-r1-qwen.gguf or vocab-r1-llama.gguf, found\n"
            "                    through PONDER_TESTDATA, default ../shared/testdata)\n"
            "  --name TEXT       general.name\n"
            "  --seed N          random seed (default 1); same seed, same file\n"
            "  --threads N       generator threads (default: online CPUs, at most 8)\n"
            "  -q, --quiet       no summary line\n"
            "  -o, --output FILE the model to write (replaced only when complete)\n"
            "Exit status: 0 written, 1 runtime error (file, disk), 2 bad options.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("genmodel: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see genmodel --help)\n", stderr);
    return 2;
}

static int parse_int(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return usage_error("%s: '%s' is not a whole number in %lld..%lld", opt, s,
                           (long long)lo, (long long)hi);
    *out = v;
    return 0;
}

static int parse_double(const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || !isfinite(v))
        return usage_error("%s: '%s' is not a positive number", opt, s);
    *out = v;
    return 0;
}

enum { OPT_PRESET = 256, OPT_ARCH, OPT_EMBD, OPT_LAYER, OPT_HEAD, OPT_HEAD_KV, OPT_FF, OPT_VOCAB_N,
       OPT_CTX, OPT_ROPE, OPT_EPS, OPT_VOCAB, OPT_NAME, OPT_SEED, OPT_THREADS, OPT_TYPE };

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        { "preset", required_argument, NULL, OPT_PRESET },
        { "arch", required_argument, NULL, OPT_ARCH },
        { "n-embd", required_argument, NULL, OPT_EMBD },
        { "n-layer", required_argument, NULL, OPT_LAYER },
        { "n-head", required_argument, NULL, OPT_HEAD },
        { "n-head-kv", required_argument, NULL, OPT_HEAD_KV },
        { "n-ff", required_argument, NULL, OPT_FF },
        { "n-vocab", required_argument, NULL, OPT_VOCAB_N },
        { "n-ctx", required_argument, NULL, OPT_CTX },
        { "rope-base", required_argument, NULL, OPT_ROPE },
        { "eps", required_argument, NULL, OPT_EPS },
        { "vocab", required_argument, NULL, OPT_VOCAB },
        { "name", required_argument, NULL, OPT_NAME },
        { "seed", required_argument, NULL, OPT_SEED },
        { "threads", required_argument, NULL, OPT_THREADS },
        { "type", required_argument, NULL, OPT_TYPE },
        { "output", required_argument, NULL, 'o' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    /* set by options, applied over the preset afterwards */
    struct shape set = { 0 };
    double set_rope = 0, set_eps = 0;
    const char *preset = NULL;
    int64_t v;
    int c, rc;

    memset(o, 0, sizeof *o);
    o->type = "q8_0";
    o->seed = 1;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    /* the disk is the limit long before 8 threads are */
    o->threads = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:qh", longopts, NULL)) != -1) {
        const char *name = optind > 1 && optind <= argc ? argv[optind - 1] : "option";
        rc = 0;
        switch (c) {
        case OPT_PRESET: preset = optarg; break;
        case OPT_ARCH: set.arch = optarg; break;
        case OPT_EMBD: rc = parse_int("--n-embd", optarg, 1, 1 << 20, &set.n_embd); break;
        case OPT_LAYER: rc = parse_int("--n-layer", optarg, 1, 4096, &set.n_layer); break;
        case OPT_HEAD: rc = parse_int("--n-head", optarg, 1, 1 << 16, &set.n_head); break;
        case OPT_HEAD_KV: rc = parse_int("--n-head-kv", optarg, 1, 1 << 16, &set.n_head_kv); break;
        case OPT_FF: rc = parse_int("--n-ff", optarg, 1, 1 << 22, &set.n_ff); break;
        case OPT_VOCAB_N: rc = parse_int("--n-vocab", optarg, 1, 1 << 24, &set.n_vocab); break;
        case OPT_CTX: rc = parse_int("--n-ctx", optarg, 1, UINT32_MAX, &set.n_ctx); break;
        case OPT_ROPE: rc = parse_double("--rope-base", optarg, &set_rope); break;
        case OPT_EPS: rc = parse_double("--eps", optarg, &set_eps); break;
        case OPT_VOCAB: o->vocab = optarg; break;
        case OPT_NAME: o->name = optarg; break;
        case OPT_SEED:
            rc = parse_int("--seed", optarg, 0, INT64_MAX, &v);
            o->seed = (uint64_t)v;
            break;
        case OPT_THREADS:
            rc = parse_int("--threads", optarg, 1, GEN_MAX_THREADS, &v);
            o->threads = (int)v;
            break;
        case OPT_TYPE: o->type = optarg; break;
        case 'o': o->out = optarg; break;
        case 'q': o->quiet = true; break;
        case 'h': usage(stdout); return -1;
        case ':': return usage_error("%s needs a value", name);
        default: return usage_error("unknown option '%s'", name);
        }
        if (rc)
            return rc;
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);

    if (preset) {
        size_t i;
        for (i = 0; i < sizeof presets / sizeof presets[0]; i++)
            if (strcmp(presets[i].preset, preset) == 0)
                break;
        if (i == sizeof presets / sizeof presets[0])
            return usage_error("unknown preset '%s'", preset);
        o->shape = presets[i];
    } else {
        if (!set.arch)
            return usage_error("give --preset or --arch");
        o->shape.n_ctx = 131072;
        o->shape.rope_base = strcmp(set.arch, "llama") == 0 ? 500000 : 10000;
        o->shape.eps = strcmp(set.arch, "llama") == 0 ? 1e-5 : 1e-6;
    }
#define OVERRIDE(f) if (set.f) o->shape.f = set.f
    OVERRIDE(arch);
    OVERRIDE(n_embd);
    OVERRIDE(n_layer);
    OVERRIDE(n_head);
    OVERRIDE(n_head_kv);
    OVERRIDE(n_ff);
    OVERRIDE(n_vocab);
    OVERRIDE(n_ctx);
#undef OVERRIDE
    if (set_rope > 0)
        o->shape.rope_base = set_rope;
    if (set_eps > 0)
        o->shape.eps = set_eps;

    struct shape *s = &o->shape;
    bool ds2 = strcmp(s->arch, "deepseek2") == 0;
    if (ds2 && !s->kv_lora)
        return usage_error("deepseek2 models are made from a preset (v2-lite, tiny-deepseek2)");
    if (!ds2 && strcmp(s->arch, "qwen2") != 0 && strcmp(s->arch, "llama") != 0)
        return usage_error("--arch: '%s' is not qwen2, llama or deepseek2", s->arch);
    if (!s->n_embd || !s->n_layer || !s->n_head || !s->n_ff)
        return usage_error("--n-embd, --n-layer, --n-head and --n-ff are needed without --preset");
    if (!s->n_head_kv)
        s->n_head_kv = s->n_head;
    if (!ds2 && (s->n_embd % s->n_head != 0 || (s->n_embd / s->n_head) % 2 != 0))
        return usage_error("--n-embd %lld is not an even head size times --n-head %lld",
                           (long long)s->n_embd, (long long)s->n_head);
    if (ds2 && s->n_head_kv != s->n_head)
        return usage_error("deepseek2 has as many KV heads as heads (--n-head-kv %lld)",
                           (long long)s->n_head_kv);
    if (s->n_head % s->n_head_kv != 0)
        return usage_error("--n-head %lld is not a multiple of --n-head-kv %lld",
                           (long long)s->n_head, (long long)s->n_head_kv);
    if (!o->out)
        return usage_error("give the output file with -o");
    if (!o->vocab && !s->vocab)
        return usage_error("give the tokenizer with --vocab FILE");
    return 0;
}

/* ---- metadata ---- */

/* A growable byte string for the raw value of a copied key. */
struct bytes {
    uint8_t *p;
    size_t len, cap;
    bool failed;
};

static void bytes_put(struct bytes *b, const void *src, size_t n)
{
    if (b->failed || n == 0)
        return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 1024;
        while (n > cap - b->len)
            if (ckd_mul_size(&cap, cap, 2)) {
                b->failed = true;
                return;
            }
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void bytes_le(struct bytes *b, uint64_t v, int n)
{
    uint8_t x[8];
    for (int i = 0; i < n; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    bytes_put(b, x, (size_t)n);
}

static void bytes_str(struct bytes *b, const char *p, uint64_t len)
{
    bytes_le(b, len, 8);
    bytes_put(b, p, (size_t)len);
}

static int gguf_scalar_size(enum gguf_type t)
{
    static const int size[GGUF_TYPE_COUNT] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
    return (unsigned)t < GGUF_TYPE_COUNT ? size[t] : 0;
}

/* Copies every tokenizer.* key of the vocabulary, padding the per-token
 * arrays from n_tokens to n_vocab the way the converter pads: "[PADid]",
 * type 5 (UNUSED), score 0. */
static int copy_tokenizer(struct fx_gguf *w, const struct gguf *v, uint64_t n_tokens,
                          uint64_t n_vocab, char *err, size_t errlen)
{
    for (int64_t i = 0; i < gguf_n_kv(v); i++) {
        const char *key = gguf_kv_key(v, i);
        const struct gguf_value *val = gguf_kv_value(v, i);
        struct bytes b = { 0 };
        int rc;
        if (strncmp(key, "tokenizer.", 10) != 0)
            continue;
        bool per_token = strcmp(key, "tokenizer.ggml.tokens") == 0 ||
                         strcmp(key, "tokenizer.ggml.token_type") == 0 ||
                         strcmp(key, "tokenizer.ggml.scores") == 0;
        switch (val->type) {
        case GGUF_TYPE_STRING:
            bytes_str(&b, val->v.s.ptr, val->v.s.len);
            break;
        case GGUF_TYPE_ARRAY: {
            enum gguf_type et = val->v.arr.type;
            uint64_t n = val->v.arr.n, pad = per_token && n == n_tokens ? n_vocab - n : 0;
            bytes_le(&b, et, 4);
            bytes_le(&b, n + pad, 8);
            if (et == GGUF_TYPE_STRING) {
                const struct gguf_str *s = val->v.arr.data;
                for (uint64_t k = 0; k < n; k++)
                    bytes_str(&b, s[k].ptr, s[k].len);
                for (uint64_t k = 0; k < pad; k++) {
                    char name[32];
                    int len = snprintf(name, sizeof name, "[PAD%llu]",
                                       (unsigned long long)(n + k));
                    bytes_str(&b, name, (uint64_t)len);
                }
            } else {
                size_t es = (size_t)gguf_scalar_size(et), total;
                if (ckd_mul_size(&total, es, (size_t)n))
                    return err_set(err, errlen, EOVERFLOW, "%s: %s is too long", gguf_path(v), key);
                bytes_put(&b, val->v.arr.data, total);
                for (uint64_t k = 0; k < pad; k++) {
                    if (et == GGUF_TYPE_FLOAT32)
                        bytes_le(&b, 0, 4);
                    else
                        bytes_le(&b, 5, (int)es);  /* token type UNUSED */
                }
            }
            break;
        }
        default: {
            /* numeric and bool scalars: the decoded value, re-encoded */
            uint64_t bits = val->v.u;
            if (val->type == GGUF_TYPE_FLOAT32) {
                float f = (float)val->v.f;
                uint32_t u;
                memcpy(&u, &f, 4);
                bits = u;
            } else if (val->type == GGUF_TYPE_FLOAT64) {
                memcpy(&bits, &val->v.f, 8);
            } else if (val->type == GGUF_TYPE_INT8 || val->type == GGUF_TYPE_INT16 ||
                       val->type == GGUF_TYPE_INT32 || val->type == GGUF_TYPE_INT64) {
                bits = (uint64_t)val->v.i;
            }
            bytes_le(&b, bits, gguf_scalar_size(val->type));
            break;
        }
        }
        if (b.failed) {
            free(b.p);
            return err_set(err, errlen, ENOMEM, "out of memory copying %s", key);
        }
        rc = fx_gguf_kv_raw(w, key, (uint32_t)val->type, b.p ? b.p : (const void *)"", b.len);
        free(b.p);
        if (rc)
            return err_set(err, errlen, rc, "cannot add key %s: %s", key, strerror(rc));
    }
    return 0;
}

static void size_label(uint64_t n_params, char *buf, size_t len)
{
    if (n_params >= 1000000000u)
        snprintf(buf, len, "%.1fB", (double)n_params / 1e9);
    else if (n_params >= 1000000u)
        snprintf(buf, len, "%.0fM", (double)n_params / 1e6);
    else
        snprintf(buf, len, "%.0fK", (double)n_params / 1e3);
}

/* ---- the tensor list ---- */

struct plan {
    struct gen_tensor *t;
    int64_t n;
    uint64_t n_params, data_bytes;
    struct gen_job *jobs;
    int64_t n_jobs;
};

static int plan_add(struct plan *p, int64_t cap, enum fill fill, enum quant_type type,
                    int64_t ne0, int64_t ne1, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static int plan_add(struct plan *p, int64_t cap, enum fill fill, enum quant_type type,
                    int64_t ne0, int64_t ne1, const char *fmt, ...)
{
    if (p->n >= cap)
        return EOVERFLOW;
    struct gen_tensor *t = &p->t[p->n];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->fill = fill;
    t->type = type;
    t->n_dims = ne1 > 0 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1 > 0 ? ne1 : 1;
    t->ne[2] = 1;
    t->sigma = fill == FILL_RANDOM ? 1 / sqrt((double)ne0) : 0;
    t->row_bytes = quant_row_bytes(type, ne0);
    uint64_t elems;
    if (t->row_bytes == 0 || ckd_mul_size(&t->size, t->row_bytes, (size_t)t->ne[1]) ||
        ckd_mul_u64(&elems, (uint64_t)ne0, (uint64_t)t->ne[1]) ||
        ckd_add_u64(&p->n_params, p->n_params, elems))
        return EOVERFLOW;
    p->n++;
    return 0;
}

static int plan_matrix(struct plan *p, int64_t cap, const struct opts *o, enum mix mix,
                       enum quant_type base, enum role role, int64_t layer, int64_t ne0,
                       int64_t ne1, const char *name, char *err, size_t errlen)
{
    enum quant_type t;
    int rc = matrix_type(mix, base, role, layer, &o->shape, ne0, &t, err, errlen);
    if (rc) {
        char why[200];
        snprintf(why, sizeof why, "%s", err);
        return err_set(err, errlen, EINVAL, "%s with --type %s: %s", name, o->type, why);
    }
    if ((rc = plan_add(p, cap, FILL_RANDOM, t, ne0, ne1, "%s", name)))
        return err_set(err, errlen, rc, "the model is too large");
    return 0;
}

static int64_t tensor_rows(const struct gen_tensor *t)
{
    return t->ne[1] * t->ne[2];
}

/* Makes the tensor added last a stack of n_exp experts. */
static int make_experts(struct plan *p, int64_t n_exp)
{
    struct gen_tensor *t = &p->t[p->n - 1];
    uint64_t elems;
    t->n_dims = 3;
    t->ne[2] = n_exp;
    if (ckd_mul_size(&t->size, t->size, (size_t)n_exp) ||
        ckd_mul_u64(&elems, (uint64_t)t->ne[0] * (uint64_t)t->ne[1], (uint64_t)(n_exp - 1)) ||
        ckd_add_u64(&p->n_params, p->n_params, elems))
        return EOVERFLOW;
    return 0;
}

/* The jobs of every tensor: rows in runs of at most GEN_CHUNK_BYTES. */
static int plan_jobs(struct plan *p, char *err, size_t errlen)
{
    int64_t n_jobs = 0;
    for (int64_t i = 0; i < p->n; i++) {
        int64_t rows = (int64_t)(GEN_CHUNK_BYTES / p->t[i].row_bytes);
        rows = rows < 1 ? 1 : rows;
        n_jobs += (tensor_rows(&p->t[i]) + rows - 1) / rows;
        if (ckd_add_u64(&p->data_bytes, p->data_bytes, p->t[i].size))
            return err_set(err, errlen, EOVERFLOW, "the model is too large");
    }
    p->jobs = calloc((size_t)n_jobs, sizeof *p->jobs);
    if (!p->jobs)
        return err_set(err, errlen, ENOMEM, "out of memory");
    for (int64_t i = 0; i < p->n; i++) {
        const struct gen_tensor *t = &p->t[i];
        int64_t rows = (int64_t)(GEN_CHUNK_BYTES / t->row_bytes);
        rows = rows < 1 ? 1 : rows;
        int64_t all = tensor_rows(t);
        for (int64_t r = 0; r < all; r += rows) {
            struct gen_job *j = &p->jobs[p->n_jobs++];
            j->tensor = i;
            j->row0 = r;
            j->n_rows = all - r < rows ? all - r : rows;
            j->bytes = (size_t)j->n_rows * t->row_bytes;
            j->last = r + rows >= all;
        }
    }
    return 0;
}

static int build_plan_ds2(struct plan *p, const struct opts *o, enum mix mix,
                          enum quant_type base, char *err, size_t errlen);

/* A matrix, and an f32 tensor (ne1 0: a vector), of the plan in build_plan
 * and build_plan_ds2, whose p, cap, o, mix, base, name, rc, err and errlen
 * they use. */
#define MAT(role, layer, ne0, ne1, ...)                                                     \
    do {                                                                                    \
        snprintf(name, sizeof name, __VA_ARGS__);                                           \
        if ((rc = plan_matrix(p, cap, o, mix, base, role, layer, ne0, ne1, name, err,       \
                              errlen)))                                                     \
            return rc;                                                                      \
    } while (0)
#define F32(fill, ne0, ne1, ...)                                                            \
    do {                                                                                    \
        if ((rc = plan_add(p, cap, fill, QUANT_TYPE_F32, ne0, ne1, __VA_ARGS__)))            \
            goto overflow;                                                                  \
    } while (0)

static int build_plan(struct plan *p, const struct opts *o, enum mix mix, enum quant_type base,
                      char *err, size_t errlen)
{
    if (strcmp(o->shape.arch, "deepseek2") == 0)
        return build_plan_ds2(p, o, mix, base, err, errlen);
    const struct shape *s = &o->shape;
    bool llama = strcmp(s->arch, "llama") == 0, qwen2 = !llama;
    int64_t head = s->n_embd / s->n_head, kv = head * s->n_head_kv;
    int64_t cap = 4 + 14 * s->n_layer;
    char name[64];
    int rc = 0;

    p->t = calloc((size_t)cap, sizeof *p->t);
    if (!p->t)
        return err_set(err, errlen, ENOMEM, "out of memory");
    if (llama)
        F32(FILL_ROPE_FREQS, head / 2, 0, "rope_freqs.weight");
    MAT(ROLE_TOKEN_EMBD, -1, s->n_embd, s->n_vocab, "token_embd.weight");
    for (int64_t l = 0; l < s->n_layer; l++) {
        F32(FILL_ONES, s->n_embd, 0, "blk.%lld.attn_norm.weight", (long long)l);
        MAT(ROLE_ATTN_Q, l, s->n_embd, s->n_embd, "blk.%lld.attn_q.weight", (long long)l);
        if (qwen2)
            F32(FILL_BIAS, s->n_embd, 0, "blk.%lld.attn_q.bias", (long long)l);
        MAT(ROLE_ATTN_K, l, s->n_embd, kv, "blk.%lld.attn_k.weight", (long long)l);
        if (qwen2)
            F32(FILL_BIAS, kv, 0, "blk.%lld.attn_k.bias", (long long)l);
        MAT(ROLE_ATTN_V, l, s->n_embd, kv, "blk.%lld.attn_v.weight", (long long)l);
        if (qwen2)
            F32(FILL_BIAS, kv, 0, "blk.%lld.attn_v.bias", (long long)l);
        MAT(ROLE_ATTN_OUT, l, s->n_embd, s->n_embd, "blk.%lld.attn_output.weight", (long long)l);
        F32(FILL_ONES, s->n_embd, 0, "blk.%lld.ffn_norm.weight", (long long)l);
        MAT(ROLE_FFN_GATE, l, s->n_embd, s->n_ff, "blk.%lld.ffn_gate.weight", (long long)l);
        MAT(ROLE_FFN_UP, l, s->n_embd, s->n_ff, "blk.%lld.ffn_up.weight", (long long)l);
        MAT(ROLE_FFN_DOWN, l, s->n_ff, s->n_embd, "blk.%lld.ffn_down.weight", (long long)l);
    }
    F32(FILL_ONES, s->n_embd, 0, "output_norm.weight");
    MAT(ROLE_OUTPUT, -1, s->n_embd, s->n_vocab, "output.weight");

    return plan_jobs(p, err, errlen);
overflow:
    return err_set(err, errlen, EOVERFLOW, "the model is too large");
}

/* deepseek2: the tensors of README 2.3, in the converter's order per layer. */
static int build_plan_ds2(struct plan *p, const struct opts *o, enum mix mix,
                          enum quant_type base, char *err, size_t errlen)
{
    const struct shape *s = &o->shape;
    int64_t E = s->n_embd, H = s->n_head, dk = s->qk_nope + s->qk_rope;
    int64_t sh = s->expert_ff * s->n_shared;
    int64_t cap = 4 + 24 * s->n_layer;
    char name[64];
    int rc = 0;

    p->t = calloc((size_t)cap, sizeof *p->t);
    if (!p->t)
        return err_set(err, errlen, ENOMEM, "out of memory");
#define EXP(role, layer, ne0, ne1, ...)                                                     \
    do {                                                                                    \
        MAT(role, layer, ne0, ne1, __VA_ARGS__);                                            \
        if (make_experts(p, s->n_expert))                                                   \
            goto overflow;                                                                  \
    } while (0)
    MAT(ROLE_TOKEN_EMBD, -1, E, s->n_vocab, "token_embd.weight");
    for (int64_t l = 0; l < s->n_layer; l++) {
        long long L = (long long)l;
        F32(FILL_ONES, E, 0, "blk.%lld.attn_norm.weight", L);
        if (s->q_lora) {
            MAT(ROLE_OTHER, l, E, s->q_lora, "blk.%lld.attn_q_a.weight", L);
            F32(FILL_ONES, s->q_lora, 0, "blk.%lld.attn_q_a_norm.weight", L);
            MAT(ROLE_OTHER, l, s->q_lora, H * dk, "blk.%lld.attn_q_b.weight", L);
        } else {
            MAT(ROLE_ATTN_Q, l, E, H * dk, "blk.%lld.attn_q.weight", L);
        }
        MAT(ROLE_OTHER, l, E, s->kv_lora + s->qk_rope, "blk.%lld.attn_kv_a_mqa.weight", L);
        F32(FILL_ONES, s->kv_lora, 0, "blk.%lld.attn_kv_a_norm.weight", L);
        MAT(ROLE_OTHER, l, s->kv_lora, H * (s->qk_nope + s->v_head), "blk.%lld.attn_kv_b.weight", L);
        MAT(ROLE_ATTN_OUT, l, H * s->v_head, E, "blk.%lld.attn_output.weight", L);
        F32(FILL_ONES, E, 0, "blk.%lld.ffn_norm.weight", L);
        if (l < s->n_dense) {
            MAT(ROLE_FFN_GATE, l, E, s->n_ff, "blk.%lld.ffn_gate.weight", L);
            MAT(ROLE_FFN_UP, l, E, s->n_ff, "blk.%lld.ffn_up.weight", L);
            MAT(ROLE_FFN_DOWN, l, s->n_ff, E, "blk.%lld.ffn_down.weight", L);
            continue;
        }
        F32(FILL_RANDOM, E, s->n_expert, "blk.%lld.ffn_gate_inp.weight", L);
        if (s->gating == 2)
            F32(FILL_BIAS, s->n_expert, 0, "blk.%lld.exp_probs_b.bias", L);
        EXP(ROLE_FFN_GATE, l, E, s->expert_ff, "blk.%lld.ffn_gate_exps.weight", L);
        EXP(ROLE_FFN_UP, l, E, s->expert_ff, "blk.%lld.ffn_up_exps.weight", L);
        EXP(ROLE_FFN_DOWN, l, s->expert_ff, E, "blk.%lld.ffn_down_exps.weight", L);
        if (sh) {
            MAT(ROLE_FFN_GATE, l, E, sh, "blk.%lld.ffn_gate_shexp.weight", L);
            MAT(ROLE_FFN_UP, l, E, sh, "blk.%lld.ffn_up_shexp.weight", L);
            MAT(ROLE_FFN_DOWN, l, sh, E, "blk.%lld.ffn_down_shexp.weight", L);
        }
    }
    F32(FILL_ONES, E, 0, "output_norm.weight");
    MAT(ROLE_OUTPUT, -1, E, s->n_vocab, "output.weight");
#undef EXP
#undef MAT
#undef F32
    return plan_jobs(p, err, errlen);
overflow:
    return err_set(err, errlen, EOVERFLOW, "the model is too large");
}

/* ---- writing ---- */

/* The output: a temporary file beside the target, renamed over it when
 * complete, so a failed or interrupted run never leaves a truncated model.
 * A target that exists and is not a regular file (/dev/null) is written in place. */
struct out {
    FILE *f;
    char tmp[PATH_MAX];
    bool in_place;
};

static int out_open(struct out *o, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        o->in_place = true;
        o->f = fopen(path, "wb");
        if (!o->f)
            return err_set(err, errlen, errno, "%s: %s", path, strerror(errno));
        return 0;
    }
    if (snprintf(o->tmp, sizeof o->tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof o->tmp)
        return err_set(err, errlen, ENAMETOOLONG, "%s: name too long", path);
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        int e = errno;
        o->tmp[0] = 0;
        return err_set(err, errlen, e, "%s: %s", path, strerror(e));
    }
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || !(o->f = fdopen(fd, "wb"))) {
        int e = errno;
        close(fd);
        return err_set(err, errlen, e, "%s: %s", o->tmp, strerror(e));
    }
    return 0;
}

/* Closes; on success renames the temporary file to path, on failure removes it. */
static int out_close(struct out *o, const char *path, bool ok, char *err, size_t errlen)
{
    int rc = 0;
    if (o->f) {
        errno = 0;
        if (fclose(o->f) != 0 && ok) {
            int e = errno ? errno : EIO;
            rc = err_set(err, errlen, e, "%s: %s", path, strerror(e));
        }
        o->f = NULL;
    }
    if (o->tmp[0]) {
        if (ok && !rc && rename(o->tmp, path) != 0) {
            int e = errno;
            rc = err_set(err, errlen, e, "%s: %s", path, strerror(e));
        }
        if (!ok || rc)
            unlink(o->tmp);
        o->tmp[0] = 0;
    }
    return rc;
}

static int write_err(const char *path, char *err, size_t errlen, int rc)
{
    int e = errno ? errno : rc;
    return err_set(err, errlen, e, "%s: write failed: %s", path, strerror(e));
}

/* Runs the pipeline: threads generate, this thread writes in order. */
static int write_tensors(const struct plan *pl, const struct fx_gguf *w, const struct opts *o,
                         const float *norm, FILE *f, char *err, size_t errlen)
{
    struct pipe p = { 0 };
    pthread_t th[GEN_MAX_THREADS];
    struct worker *workers = NULL;
    int n_started = 0, rc = 0;

    p.tensors = pl->t;
    p.norm = norm;
    p.jobs = pl->jobs;
    p.n_jobs = pl->n_jobs;
    p.shape = &o->shape;
    p.seed = o->seed;
    p.n_slots = 2 * o->threads + 1;
    p.ready = calloc((size_t)pl->n_jobs + 1, sizeof *p.ready);
    p.slot = calloc((size_t)p.n_slots, sizeof *p.slot);
    workers = calloc((size_t)o->threads, sizeof *workers);
    if (!p.ready || !p.slot || !workers) {
        rc = err_set(err, errlen, ENOMEM, "out of memory");
        goto out_free;
    }
    for (int i = 0; i < p.n_slots; i++)
        if (!(p.slot[i] = malloc(GEN_CHUNK_BYTES))) {
            rc = err_set(err, errlen, ENOMEM, "out of memory for buffers");
            goto out_free;
        }
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    for (int i = 0; i < o->threads && !rc; i++) {
        workers[i].p = &p;
        int e = pthread_create(&th[i], NULL, pipe_worker, &workers[i]);
        if (e)
            rc = err_set(err, errlen, e, "cannot start thread: %s", strerror(e));
        else
            n_started++;
    }

    for (int64_t k = 0; k < pl->n_jobs && !rc; k++) {
        const struct gen_job *j = &pl->jobs[k];
        pthread_mutex_lock(&p.mu);
        while (!p.ready[k])
            pthread_cond_wait(&p.cv, &p.mu);
        pthread_mutex_unlock(&p.mu);
        errno = 0;
        if (fwrite(p.slot[k % p.n_slots], 1, j->bytes, f) != j->bytes) {
            rc = write_err(o->out, err, errlen, EIO);
            break;
        }
        errno = 0;
        if (j->last && fx_gguf_write_pad(w, f, pl->t[j->tensor].size) != 0) {
            rc = write_err(o->out, err, errlen, EIO);
            break;
        }
        pthread_mutex_lock(&p.mu);
        p.written = k + 1;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
    }

    pthread_mutex_lock(&p.mu);
    p.stop = true;
    pthread_cond_broadcast(&p.cv);
    pthread_mutex_unlock(&p.mu);
    for (int i = 0; i < n_started; i++)
        pthread_join(th[i], NULL);
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
out_free:
    for (int i = 0; p.slot && i < p.n_slots; i++)
        free(p.slot[i]);
    free(p.slot);
    free(p.ready);
    free(workers);
    return rc;
}

/* N(0,1) by 12-bit index: the quantiles at (i + 0.5) / 4096, so the table is
 * symmetric (mean exactly 0, no bias shared by every matrix), rescaled to
 * variance 1. */
static void norm_table(float *norm)
{
    double sum2 = 0;
    for (int i = 0; i < GEN_NORM_TABLE / 2; i++) {
        double p = (i + 0.5) / GEN_NORM_TABLE, lo = -10, hi = 0;
        for (int it = 0; it < 60; it++) {   /* Phi(x) = erfc(-x / sqrt 2) / 2 = p */
            double mid = (lo + hi) / 2;
            if (0.5 * erfc(-mid / M_SQRT2) < p)
                lo = mid;
            else
                hi = mid;
        }
        norm[i] = (float)lo;
        norm[GEN_NORM_TABLE - 1 - i] = (float)-lo;
        sum2 += 2 * lo * lo;
    }
    double scale = 1 / sqrt(sum2 / GEN_NORM_TABLE);
    for (int i = 0; i < GEN_NORM_TABLE; i++)
        norm[i] = (float)(norm[i] * scale);
}

/* The metadata keys, in the order convert_hf_to_gguf.py writes them. */
static int add_keys(struct fx_gguf *w, const struct opts *o, uint32_t file_type,
                    uint64_t n_params, const struct gguf *vocab, uint64_t n_tokens, char *err,
                    size_t errlen)
{
    const struct shape *s = &o->shape;
    char key[96], label[32], name[256];
    int rc = 0;
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", s->arch, suffix), key)
    size_label(n_params, label, sizeof label);
    if (o->name)
        snprintf(name, sizeof name, "%s", o->name);
    else if (s->preset)
        snprintf(name, sizeof name, "%s (random weights)", s->name);
    else
        snprintf(name, sizeof name, "random-weight %s", s->arch);
    rc = rc ? rc : fx_gguf_kv_str(w, "general.architecture", s->arch);
    rc = rc ? rc : fx_gguf_kv_str(w, "general.type", "model");
    rc = rc ? rc : fx_gguf_kv_str(w, "general.name", name);
    rc = rc ? rc : fx_gguf_kv_str(w, "general.size_label", label);
    rc = rc ? rc : fx_gguf_kv_u32(w, KEY("block_count"), (uint32_t)s->n_layer);
    rc = rc ? rc : fx_gguf_kv_u32(w, KEY("context_length"), (uint32_t)s->n_ctx);
    rc = rc ? rc : fx_gguf_kv_u32(w, KEY("embedding_length"), (uint32_t)s->n_embd);
    rc = rc ? rc : fx_gguf_kv_u32(w, KEY("feed_forward_length"), (uint32_t)s->n_ff);
    rc = rc ? rc : fx_gguf_kv_u32(w, KEY("attention.head_count"), (uint32_t)s->n_head);
    rc = rc ? rc : fx_gguf_kv_u32(w, KEY("attention.head_count_kv"), (uint32_t)s->n_head_kv);
    rc = rc ? rc : fx_gguf_kv_f32(w, KEY("rope.freq_base"), (float)s->rope_base);
    rc = rc ? rc : fx_gguf_kv_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)s->eps);
    rc = rc ? rc : fx_gguf_kv_u32(w, "general.file_type", file_type);
    if (strcmp(s->arch, "deepseek2") == 0) {
        rc = rc ? rc : fx_gguf_kv_u32(w, KEY("vocab_size"), (uint32_t)s->n_vocab);
        rc = rc ? rc : fx_gguf_kv_u32(w, KEY("leading_dense_block_count"), (uint32_t)s->n_dense);
        if (s->q_lora)
            rc = rc ? rc : fx_gguf_kv_u32(w, KEY("attention.q_lora_rank"), (uint32_t)s->q_lora);
        rc = rc ? rc : fx_gguf_kv_u32(w, KEY("attention.kv_lora_rank"), (uint32_t)s->kv_lora);
        rc = rc ? rc : fx_gguf_kv_u32(w, KEY("attention.key_length"),
                                      (uint32_t)(s->qk_nope + s->qk_rope));
        rc = rc ? rc : fx_gguf_kv_u32(w, KEY("attention.value_length"), (uint32_t)s->v_head);
        rc = rc ? rc : fx_gguf_kv_u32(w, KEY("expert_feed_forward_length"),
                                      (uint32_t)s->expert_ff);
        rc = rc ? rc : fx_gguf_kv_u32(w, KEY("expert_count"), (uint32_t)s->n_expert);
        rc = rc ? rc : fx_gguf_kv_u32(w, KEY("expert_shared_count"), (uint32_t)s->n_shared);
        rc = rc ? rc : fx_gguf_kv_f32(w, KEY("expert_weights_scale"), (float)s->w_scale);
        rc = rc ? rc : fx_gguf_kv_bool(w, KEY("expert_weights_norm"), s->w_norm);
        rc = rc ? rc : fx_gguf_kv_u32(w, KEY("expert_gating_func"), (uint32_t)s->gating);
        rc = rc ? rc : fx_gguf_kv_u32(w, KEY("rope.dimension_count"), (uint32_t)s->qk_rope);
        if (s->yarn_factor > 0) {
            rc = rc ? rc : fx_gguf_kv_str(w, KEY("rope.scaling.type"), "yarn");
            rc = rc ? rc : fx_gguf_kv_f32(w, KEY("rope.scaling.factor"), (float)s->yarn_factor);
            rc = rc ? rc : fx_gguf_kv_u32(w, KEY("rope.scaling.original_context_length"),
                                          (uint32_t)s->yarn_orig_ctx);
        }
        rc = rc ? rc : fx_gguf_kv_f32(w, KEY("rope.scaling.yarn_log_multiplier"),
                                      (float)s->yarn_log_mul);
        rc = rc ? rc : fx_gguf_kv_u32(w, KEY("expert_used_count"), (uint32_t)s->n_expert_used);
    }
    if (strcmp(s->arch, "llama") == 0) {
        rc = rc ? rc : fx_gguf_kv_u32(w, KEY("vocab_size"), (uint32_t)s->n_vocab);
        rc = rc ? rc : fx_gguf_kv_u32(w, KEY("rope.dimension_count"),
                                      (uint32_t)(s->n_embd / s->n_head));
    }
#undef KEY
    if (rc)
        return err_set(err, errlen, rc, "cannot add metadata: %s", strerror(rc));
    if ((rc = copy_tokenizer(w, vocab, n_tokens, (uint64_t)s->n_vocab, err, errlen)))
        return rc;
    if ((rc = fx_gguf_kv_u32(w, "general.quantization_version", 2)))
        return err_set(err, errlen, rc, "cannot add metadata: %s", strerror(rc));
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct plan pl = { 0 };
    struct gguf *vocab = NULL;
    struct fx_gguf *w = NULL;
    struct out out = { 0 };
    float *norm = NULL;
    char err[512] = "", vocab_path[PATH_MAX];
    int status = 1, rc;
    size_t m;

    rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    for (m = 0; m < N_MIXES; m++)
        if (strcasecmp(mixes[m].name, o.type) == 0)
            break;
    if (m == N_MIXES)
        return usage_error("--type: unknown type '%s'", o.type);

    if (o.vocab) {
        snprintf(vocab_path, sizeof vocab_path, "%s", o.vocab);
    } else {
        const char *dir = getenv("PONDER_TESTDATA");
        snprintf(vocab_path, sizeof vocab_path, "%s/%s", dir && *dir ? dir : "../shared/testdata",
                 o.shape.vocab);
    }
    if ((rc = gguf_open(vocab_path, &vocab, err, sizeof err)))
        goto out;
    const struct gguf_value *tokens;
    if ((rc = gguf_get_arr(vocab, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, err,
                           sizeof err)))
        goto out;
    uint64_t n_tokens = tokens->v.arr.n;
    if (o.shape.n_vocab == 0)
        o.shape.n_vocab = (int64_t)n_tokens;
    if ((uint64_t)o.shape.n_vocab < n_tokens) {
        status = usage_error("--n-vocab %lld is smaller than the %llu tokens of %s",
                             (long long)o.shape.n_vocab, (unsigned long long)n_tokens, vocab_path);
        goto out;
    }

    double t0 = clock_now_s();
    if ((rc = build_plan(&pl, &o, mixes[m].mix, mixes[m].base, err, sizeof err))) {
        if (rc == EINVAL) {
            status = usage_error("%s", err);
            err[0] = 0;
        }
        goto out;
    }
    w = fx_gguf_new(3);
    norm = malloc(GEN_NORM_TABLE * sizeof *norm);
    if (!w || !norm) {
        rc = err_set(err, sizeof err, ENOMEM, "out of memory");
        goto out;
    }
    norm_table(norm);
    if ((rc = add_keys(w, &o, mixes[m].file_type, pl.n_params, vocab, n_tokens, err,
                       sizeof err)))
        goto out;
    for (int64_t i = 0; i < pl.n; i++) {
        const struct gen_tensor *t = &pl.t[i];
        if ((rc = fx_gguf_tensor(w, t->name, t->type, t->n_dims, t->ne, NULL))) {
            err_set(err, sizeof err, rc, "cannot add tensor %s: %s", t->name, strerror(rc));
            goto out;
        }
    }

    if ((rc = out_open(&out, o.out, err, sizeof err)))
        goto out;
    errno = 0;
    if (fx_gguf_write_header(w, out.f) != 0) {
        rc = write_err(o.out, err, sizeof err, EIO);
        goto out;
    }
    if ((rc = write_tensors(&pl, w, &o, norm, out.f, err, sizeof err)))
        goto out;
    errno = 0;
    if (fflush(out.f) != 0) {
        rc = write_err(o.out, err, sizeof err, EIO);
        goto out;
    }
    if ((rc = out_close(&out, o.out, true, err, sizeof err)))
        goto out;

    if (!o.quiet) {
        struct stat st;
        int counts[QUANT_TYPE_COUNT] = { 0 };
        for (int64_t i = 0; i < pl.n; i++)
            counts[pl.t[i].type]++;
        printf("%s: %s %s, %lld bytes, %lld tensors (", o.out,
               o.shape.preset ? o.shape.preset : o.shape.arch, mixes[m].name,
               stat(o.out, &st) == 0 ? (long long)st.st_size : -1LL, (long long)pl.n);
        for (int t = 0, first = 1; t < QUANT_TYPE_COUNT; t++)
            if (counts[t]) {
                printf("%s%d %s", first ? "" : ", ", counts[t], quant_type_name((enum quant_type)t));
                first = 0;
            }
        printf("), %.1f s\n", clock_now_s() - t0);
    }
    status = 0;
out:
    if (out.f || out.tmp[0])
        out_close(&out, o.out, false, err, sizeof err);
    if (err[0])
        fprintf(stderr, "genmodel: %s\n", err);
    free(norm);
    fx_gguf_free(w);
    free(pl.t);
    free(pl.jobs);
    gguf_close(vocab);
    return status;
}
