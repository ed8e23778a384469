/* The hardware advisor: which R1 model fits this machine and how fast it
 * runs (`ponder fit`, `ponder models`, the model picker).
 *
 * advisor_machine_probe() measures the machine once: host memory and its
 * read bandwidth (infer/cpu/membw.h), the CPU kernels' compute rate, the
 * Vulkan device's budget and bandwidth (skipped for no device or a software
 * one), and the efficiency factors, calibrated from the measurements the
 * store holds (advisor_record(), and the runs of the model files used
 * latest: advisor_calibrate(); NULL store: stated defaults).  Then, with no
 * file, advisor_shape_estimate() sizes a published R1 shape at a
 * quantization by llama-quantize's per-tensor type rules and plans it at a
 * context (infer/plan.h); advisor_file_estimate() does the same from a GGUF
 * file's own tensors.  Speeds: generation = 1 / (sum over places of bytes a
 * token reads there / (bandwidth x efficiency) + the CPU kernels' time for
 * its bytes, measured per weight type); prompt = FLOPs per token
 * over the compute rate; a speed measured here for the same file (or, for a
 * shape, a file of that shape and type) replaces the estimate (measured).
 *
 * Errors are POSIX codes with one line in err; nothing is printed.  Strings
 * in the structs are copies, valid as long as the struct. */
#ifndef PONDER_ADVISOR_H
#define PONDER_ADVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infer/plan.h"
#include "infer/quant.h"

struct store;
struct model;

enum advisor_probe_flags {
    ADVISOR_PROBE_NO_DEVICE = 1,    /* plan for the CPU only (--backend cpu) */
    ADVISOR_PROBE_QUICK = 2,        /* smaller probes (the picker) */
    ADVISOR_PROBE_NO_CALIBRATION = 4,   /* default efficiencies, no store */
};

#define ADVISOR_DEFAULT_CPU_EFF 0.90    /* of the bound below; measured here: 0.9-1.0 */
#define ADVISOR_DEFAULT_DEVICE_EFF 0.60
#define ADVISOR_DEFAULT_PP_EFF 0.65     /* of the kernels' in-cache rate; measured 0.5-0.9 */

struct advisor_machine {
    int n_threads;
    uint64_t host_bytes;            /* physical memory */
    uint64_t host_budget;           /* what a model may use: 90 % of it */
    double host_gbs;                /* measured read bandwidth, GB/s */
    char isa[16];                   /* the CPU kernels: "avx2", ... */
    double cpu_gflops;              /* kernels' rate over all threads (Q4_K), GFLOP/s */
    double cpu_gflops_type[QUANT_TYPE_COUNT];   /* per weight type; 0: use cpu_gflops */
    /* weight bytes per second the kernels consume in a matrix-vector product
     * from cache, all threads (the compute side of generation); 0: unknown */
    double cpu_stream_gbs[QUANT_TYPE_COUNT];
    char device[128];               /* "" when no usable Vulkan device */
    char device_note[160];          /* why not, or "software device: not used" */
    uint64_t device_budget;         /* 0: no device */
    double device_gbs;              /* measured; 0: not measured */
    double device_gflops;           /* estimate */
    double cpu_eff, device_eff, pp_eff;     /* fraction of the bound reached */
    char eff_source[96];            /* "default", "calibrated from 3 runs here" */
};

/* 0, or the error of the bandwidth probe (n_threads < 1: online cores). */
int advisor_machine_probe(struct advisor_machine *mc, unsigned flags, int n_threads,
                          struct store *store, char *err, size_t errlen);
/* The efficiencies (cpu_eff, device_eff, pp_eff) and eff_source of mc from
 * the store: the medians of the fractions of the bound reached by the
 * measurements advisor_record() kept, and by the replies (chat, run, serve)
 * of the model files used latest, by each file's fingerprint (median of its
 * recent runs, history/store.h store_model_speed()), where the file is still
 * there unchanged.  Files and measurements reading under 64 MiB a token do
 * not count.  What nothing calibrates keeps its value; the probe calls it. */
void advisor_calibrate(struct advisor_machine *mc, struct store *store);

/* The published R1 models and their quantizations. */
struct advisor_shape {
    const char *name;               /* "R1-Distill-Qwen-1.5B" */
    const char *arch;               /* "qwen2", "llama", "deepseek2" */
    int n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab;
    /* deepseek2 (0 for the dense shapes) */
    int n_dense, q_lora, kv_lora, qk_nope, qk_rope, v_head, n_expert, n_expert_shared,
        n_expert_used, expert_ff;
    const char *const *quants;      /* NULL-terminated: "Q2_K", ..., "F16" */
};
int advisor_n_shapes(void);
const struct advisor_shape *advisor_shape(int i);   /* NULL past the end */

struct advisor_estimate {
    char name[128], arch[32], type[16];
    uint64_t n_params;
    uint64_t file_bytes;            /* the GGUF's size (tensors + metadata) */
    uint64_t mem_bytes;             /* weights + KV cache + scratch at n_ctx */
    uint64_t kv_bytes_per_token;    /* all layers, f16 cache */
    int n_ctx;
    int n_layer, n_embd;
    double flops_per_token;         /* 2 x the weights a token multiplies */
    double host_compute_s_per_byte; /* kernel time per weight byte on the CPU (0: none) */
    struct plan plan;
    double tg_tps, pp_tps;          /* predicted, 0: does not fit */
    double tg_pred, pp_pred;        /* the prediction even when measured replaces it */
    bool measured;                  /* tg_tps/pp_tps come from measurements here */
};

/* shape at quant ("Q4_K_M"...); EINVAL for a quantization it lacks.
 * store may be NULL (no measured speeds). */
int advisor_shape_estimate(const struct advisor_shape *s, const char *quant, int n_ctx,
                           const struct advisor_machine *mc, struct store *store,
                           struct advisor_estimate *out, char *err, size_t errlen);
/* A model file (its header only is read); store may be NULL.  0, or
 * gguf_open's errors, ENOTSUP for an architecture the advisor does not know. */
int advisor_file_estimate(const char *path, int n_ctx, const struct advisor_machine *mc,
                          struct store *store, struct advisor_estimate *out, char *err,
                          size_t errlen);

/* Generation tokens/s of a plan on mc from bandwidth alone (0: does not
 * fit): 1 / sum over places of token bytes / (bandwidth x efficiency). */
double advisor_tg_tps(const struct plan *p, const struct advisor_machine *mc);
/* The prediction: as advisor_tg_tps, plus on the CPU the kernels' time for
 * the same bytes (host_token_bytes x host_compute_s_per_byte), the two
 * times combined as (tm^1.5 + tc^1.5)^(1/1.5) (they overlap in part): with
 * few cores, decoding K-quants costs about as much as reading them. */
double advisor_estimate_tg(const struct advisor_estimate *e, const struct advisor_machine *mc);

/* The model files here: *.gguf in $XDG_DATA_HOME/ponder/models (or
 * ~/.local/share/ponder/models) and in each of the colon-separated
 * model_dirs (may be NULL), sorted, without duplicates.  *paths is
 * malloc'd, each path too: free with advisor_models_free().  0 or ENOMEM. */
int advisor_find_models(const char *model_dirs, char ***paths, size_t *n);
void advisor_models_free(char **paths, size_t n);

/* One bench repetition (what `ponder bench` times): pp feeds n ids in one
 * batch, tg decodes n ids one at a time; from an empty cache. */
int advisor_bench_once(struct model *m, const int32_t *ids, int n, bool pp, double *tps,
                       char *err, size_t errlen);

/* Records a measurement of the file at path (its estimate e, measured tg
 * and pp tokens/s, 0 = not measured) in the store, for later estimates and
 * the efficiency calibration (the median fraction of the bandwidth bound
 * reached; models reading under 64 MiB a token, which measure call
 * overhead, do not calibrate).  Keeps the last 64, in the store's settings. */
int advisor_record(struct store *store, const char *path, const struct advisor_estimate *e,
                   const struct advisor_machine *mc, double tg_tps, double pp_tps, char *err,
                   size_t errlen);

/* Opens (creating it if need be) the store that holds the measurements: db,
 * or the default history store when db is NULL.  0 and *out, or the store's
 * error (*out NULL); the caller closes it with store_close(). */
int advisor_open_store(const char *db, struct store **out, char *err, size_t errlen);

#endif
