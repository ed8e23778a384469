/* A loaded model: the mapped GGUF, its tokenizer, the architecture's weights
 * bound to a backend, and one sequence's KV cache.  model_decode() runs the
 * forward pass over new tokens and returns logits; the cache keeps the token
 * ids it holds so that the longest shared prefix of the next prompt is reused
 * (model_keep_prefix()).
 *
 * Not thread-safe: one thread (the engine's) uses a model at a time. */
#ifndef PONDER_MODEL_H
#define PONDER_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "cpu/cpu.h"
#include "plan.h"

struct gguf;
struct tokenizer;
struct model;

/* Where the layers run.  CPU is 0 so that a zeroed model_params keeps
 * everything on the CPU; AUTO uses a Vulkan device when one opens and falls
 * back to the CPU otherwise; VULKAN without a device is an error (ENODEV). */
enum model_backend { MODEL_BACKEND_CPU = 0, MODEL_BACKEND_AUTO, MODEL_BACKEND_VULKAN };

struct model_params {
    int n_ctx;              /* 0: min(4096, the model's training context) */
    int n_threads;          /* >= 1 */
    int n_batch;            /* tokens per forward pass; 0: 512 */
    enum kv_type kv_type;
    enum cpu_isa max_isa;   /* CPU_ISA_COUNT: the best this CPU has */
    /* the device, used unless backend is MODEL_BACKEND_CPU */
    enum model_backend backend;
    int device;             /* Vulkan device index (ponder devices); -1: the default */
    int n_gpu_layers;       /* layers on the device, the first ones; < 0: as many as fit */
    bool gpu_validation;    /* Vulkan validation layer (tests) */
    int gpu_lose_after;     /* tests: the device acts lost after this many submissions */
    bool gpu_no_replay;     /* tests: record the device's commands afresh every pass */
    int gpu_int_dot;        /* tests and tools: 1 the int8 matrix path (vk_options.force_int_dot),
                               -1 the float path (no_int_dot), 0 the device's default */
    const char *cache_dir;  /* pipeline cache directory, or NULL */
    bool mmap_only;         /* map the file; default: read it into memory (huge pages)
                               when it takes at most half of the physical memory */
    enum plan_placement placement;  /* infer/plan.h; PLAN_AUTO = 0 */
    /* called from model_load as it goes: phase "reading" (the file into
     * memory) then "uploading" (weights to the device), each with its own
     * fraction 0..1; NULL: none */
    void (*progress)(void *ctx, float fraction, const char *phase);
    void *progress_ctx;
};

struct model_info {
    char arch[32];
    char name[128];
    char ftype[16];         /* "Q4_K_M", from general.file_type, or "?" */
    int64_t n_params;
    uint64_t file_size;
    uint64_t weight_bytes;  /* all tensors */
    uint64_t token_bytes;   /* bytes read per generated token (all but token_embd) */
    int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx_train;
    int n_ctx;              /* this instance's context */
    enum kv_type kv_type;
    uint64_t kv_bytes;      /* the whole cache */
    const char *backend;    /* "cpu", or "vulkan" when layers run on a device */
    const char *device;     /* "avx512", "avx2", "portable", or the GPU's name */
    int n_threads;
    /* the memory plan */
    int n_gpu_layers;       /* the first n_gpu_layers layers run on the device */
    bool output_on_gpu;     /* the output norm and matrix too (all layers there) */
    uint64_t gpu_bytes;     /* weights + KV cache planned on the device */
    uint64_t gpu_budget;    /* the device's memory budget, 0 when unknown */
    const char *cpu_device; /* the CPU kernels, for the layers left on the CPU */
    char gpu_note[160];     /* why AUTO stayed on the CPU, or "" */
    bool experts_on_cpu;    /* routed experts in host memory, run by the CPU; the rest on the device */
    uint64_t kv_bytes_per_token;    /* KV cache bytes of one token, all layers (deepseek2:
                                       kv_lora_rank + rope dims per layer) */
};

/* 0, or ENOENT (no such file), EBADMSG (malformed: the message names the key
 * or tensor), ENOTSUP (architecture or weight type ponder does not run),
 * ENOMEM. */
int model_load(const char *path, const struct model_params *p, struct model **out, char *err,
               size_t errlen);
void model_free(struct model *m);   /* NULL is a no-op */

const struct model_info *model_info(const struct model *m);
const struct tokenizer *model_tokenizer(const struct model *m);
const struct gguf *model_gguf(const struct model *m);

/* Evaluates ids[0..n) at positions model_n_past().. and appends them to the
 * cache.  logits (may be NULL) receives n_vocab floats for the last token, or
 * n * n_vocab for every token when `all`.  ENOSPC when the context is full. */
int model_decode(struct model *m, const int32_t *ids, int n, float *logits, bool all, char *err,
                 size_t errlen);
int model_n_past(const struct model *m);
/* Whether the model's device was lost (every later decode fails): the
 * engine then loads the model again on the CPU. */
bool model_device_lost(const struct model *m);
/* The device backend the model's layers run on, or NULL (CPU only): for
 * its statistics (vk_backend_stats). */
const struct backend *model_device(const struct model *m);
/* Keeps the longest cached prefix of ids[0..n) (at most n - 1 tokens, so the
 * last one is evaluated again for its logits) and drops the rest of the
 * cache; returns the number of tokens kept. */
int model_keep_prefix(struct model *m, const int32_t *ids, int n);
void model_clear(struct model *m);

#endif
