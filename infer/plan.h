/* The memory plan: where each part of a model runs, from what it needs and
 * what the machine has.  Pure arithmetic on byte counts, so that the same
 * rules serve model_load() (counts from the file's tensors) and `ponder fit`
 * / `ponder models` / the picker (counts from a published shape, no file).
 *
 * A model is described per layer: the bytes of its weights that stay with
 * the layer (attention, norms, dense or shared-expert FFN) and those of its
 * routed experts (0 for a dense layer), in the device's layout; the KV cache
 * bytes per token of one layer; the output head; and the bytes a generated
 * token reads (for a mixture of experts: only the experts it uses).
 *
 * Rules (the order model_load applies them): the token embedding stays in
 * host memory (one row is read per token).  With no device, everything runs
 * on the CPU.  Otherwise layers go to the device from the first, each with
 * its KV cache, while they fit the budget after the scratch; the output head
 * goes last, only when every layer is there.  When not every layer fits and
 * the model has routed experts, the "experts in RAM" placement is tried
 * first: every layer's attention, shared experts and KV cache on the device,
 * the routed experts in host memory, run by the CPU.  n_gpu_layers >= 0
 * forces a plain layer split of that many layers; placement PLAN_LAYERS or
 * PLAN_EXPERTS_CPU forces a kind.  What stays on the host must fit the host
 * budget (else fits = false). */
#ifndef PONDER_PLAN_H
#define PONDER_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum plan_placement {
    PLAN_AUTO = 0,          /* the rules above */
    PLAN_LAYERS,            /* a plain layer split only */
    PLAN_EXPERTS_CPU        /* routed experts in host memory, the rest on the device */
};

struct plan_model {
    int n_layer;
    const uint64_t *layer_bytes;    /* n_layer: weights kept with the layer */
    const uint64_t *expert_bytes;   /* n_layer: routed experts (NULL: none) */
    int n_expert, n_expert_used;    /* 0, 0 for dense models */
    uint64_t kv_bytes_per_token;    /* one layer, at the cache's element size */
    uint64_t embd_bytes;            /* token embedding (host) */
    uint64_t embd_row_bytes;        /* read per token */
    uint64_t output_bytes;          /* output norm + matrix */
    uint64_t scratch_bytes;         /* activations of one batch, staging */
};

struct plan_request {
    int n_ctx;
    uint64_t device_budget;         /* 0: no device */
    uint64_t host_budget;           /* 0: unlimited */
    int n_gpu_layers;               /* < 0: as many as fit */
    enum plan_placement placement;
};

struct plan {
    int n_layer;
    int n_gpu_layers;               /* layers 0 .. n_gpu_layers-1 on the device */
    bool output_on_gpu;
    bool experts_on_cpu;            /* the routed experts of device layers stay in RAM */
    bool fits;                      /* the host part fits the host budget */
    uint64_t gpu_bytes;             /* weights + KV cache + scratch on the device */
    uint64_t host_bytes;            /* weights + KV cache + scratch in host memory */
    uint64_t kv_bytes;              /* the whole cache at n_ctx */
    uint64_t gpu_token_bytes;       /* weight bytes one generated token reads on the device */
    uint64_t host_token_bytes;      /* ... and in host memory */
    char where[48];                 /* "all on the device", "20 of 28 layers on the device",
                                       "experts in RAM", "CPU only", "does not fit" */
};

/* 0, or EINVAL (a model with no layers). */
int plan_make(const struct plan_model *m, const struct plan_request *r, struct plan *out);

#endif
