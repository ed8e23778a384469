/* The hardware advisor: which R1 model fits this machine and how fast it
 * runs (`ponder fit`, `ponder models`, the model picker).
 *
 * advisor_machine_probe() measures the machine once: host memory and its
 * read bandwidth (infer/cpu/membw.h), the Vulkan device's budget and
 * bandwidth (skipped for no device or a software one), and the efficiency
 * factors, calibrated from the runs the store recorded (NULL store: stated
 * defaults).  Then, with no file, advisor_shape_estimate() sizes a published
 * R1 shape at a quantization by llama-quantize's per-tensor type rules and
 * plans it at a context (infer/plan.h); advisor_file_estimate() does the same
 * from a GGUF file's own tensors.  Speeds: generation = bandwidth / bytes a
 * token reads, per place, times the efficiency; prompt = FLOPs per token over
 * the measured compute rate; a speed the store recorded for the same file
 * replaces the estimate (measured = true).
 *
 * Errors are POSIX codes with one line in err; nothing is printed.  Strings
 * in the structs are copies, valid as long as the struct. */
#ifndef PONDER_ADVISOR_H
#define PONDER_ADVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infer/plan.h"

struct store;

enum advisor_probe_flags {
    ADVISOR_PROBE_NO_DEVICE = 1,    /* plan for the CPU only (--backend cpu) */
    ADVISOR_PROBE_QUICK = 2,        /* smaller bandwidth probes (the picker) */
};

struct advisor_machine {
    int n_threads;
    uint64_t host_bytes;            /* physical memory */
    uint64_t host_budget;           /* what a model may use: 90 % of it */
    double host_gbs;                /* measured read bandwidth, GB/s */
    double cpu_gflops;              /* prompt-processing rate, GFLOP/s (estimate) */
    char device[128];               /* "" when no usable Vulkan device */
    char device_note[128];          /* why not, or "software device: skipped" */
    uint64_t device_budget;         /* 0: no device */
    double device_gbs;              /* 0: not measured */
    double device_gflops;
    double cpu_eff, device_eff;     /* fraction of the bandwidth bound reached */
    char eff_source[96];            /* "default", "3 runs recorded here", ... */
};

/* 0, or the error of the bandwidth probe. */
int advisor_machine_probe(struct advisor_machine *mc, unsigned flags, int n_threads,
                          struct store *store, char *err, size_t errlen);

/* The published R1 models and their quantizations. */
struct advisor_shape {
    const char *name;               /* "R1-Distill-Qwen-1.5B" */
    const char *arch;               /* "qwen2", "llama", "deepseek2" */
    int n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab;
    /* deepseek2 */
    int n_dense, q_lora, kv_lora, qk_nope, qk_rope, v_head, n_expert, n_expert_shared,
        n_expert_used, expert_ff;
    const char *const *quants;      /* NULL-terminated: "Q2_K", ..., "F16" */
};
int advisor_n_shapes(void);
const struct advisor_shape *advisor_shape(int i);

struct advisor_estimate {
    char name[128], arch[32], type[16];
    uint64_t n_params;
    uint64_t file_bytes;            /* the GGUF's size (tensors + metadata) */
    uint64_t mem_bytes;             /* weights + KV cache + scratch at n_ctx */
    uint64_t kv_bytes_per_token;    /* all layers */
    int n_ctx;
    struct plan plan;
    double tg_tps, pp_tps;          /* 0: does not fit */
    bool measured;                  /* tg_tps/pp_tps come from recorded runs */
    int64_t n_runs;                 /* recorded runs behind a measured figure */
};

/* shape at quant ("Q4_K_M"...); EINVAL for a quantization it lacks. */
int advisor_shape_estimate(const struct advisor_shape *s, const char *quant, int n_ctx,
                           const struct advisor_machine *mc, struct advisor_estimate *out,
                           char *err, size_t errlen);
/* A model file (header only is read); store may be NULL.  0, or gguf_open's
 * errors, ENOTSUP for an architecture the advisor does not know. */
int advisor_file_estimate(const char *path, int n_ctx, const struct advisor_machine *mc,
                          struct store *store, struct advisor_estimate *out, char *err,
                          size_t errlen);

/* The speed-prediction core, exposed for tests: tokens/s from a plan. */
double advisor_tg_tps(const struct plan *p, const struct advisor_machine *mc);

#endif
