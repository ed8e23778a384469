/* The Vulkan backend's public face: list the devices with their limits and
 * optional features (`ponder devices`), and create a backend (backend.h) on
 * one of them.  Nothing here needs vulkan.h; only infer/vulkan/ includes it.
 *
 * Errors are POSIX codes with one line in err: ENODEV (no Vulkan loader
 * answer, no device, or no such device index), ENOMEM (host or device
 * memory), EIO (the driver failed or the device was lost: every later
 * operation of that backend fails with EIO "the device was lost"). */
#ifndef PONDER_VK_H
#define PONDER_VK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infer/backend.h"

#define VK_DESC_MAX_HEAPS 8

struct vk_device_desc {
    int index;
    char name[256];
    char type[16];              /* "discrete", "integrated", "virtual", "cpu", "other" */
    char driver[128];           /* driver name and info, e.g. "llvmpipe Mesa 22.3.6" */
    uint32_t api_version;       /* VK_MAKE_API_VERSION packing */
    uint32_t vendor_id, device_id;
    int n_heaps;
    uint64_t heap_size[VK_DESC_MAX_HEAPS];
    uint64_t heap_budget[VK_DESC_MAX_HEAPS];    /* 0 when VK_EXT_memory_budget is absent */
    bool heap_device_local[VK_DESC_MAX_HEAPS];
    uint32_t subgroup_size;
    bool subgroup_arith, subgroup_shuffle;
    bool storage16, storage8, float16, int8, int_dot, coopmat, memory_budget;
    uint64_t max_storage_range, max_alloc;
    uint32_t max_shared, max_push;
    uint64_t device_local_bytes;    /* the largest device-local heap */
};

/* Fills up to max descriptions; *n is the number of devices present.
 * ENODEV when the loader finds no instance or no device. */
int vk_list_devices(struct vk_device_desc *out, int max, int *n, char *err, size_t errlen);
/* The device the backend picks by default: the discrete GPU with the most
 * memory, else integrated, else virtual, else software. -1 when none. */
int vk_default_device(const struct vk_device_desc *d, int n);

struct vk_options {
    int device;                 /* index from vk_list_devices, -1 = default */
    bool validation;            /* enable VK_LAYER_KHRONOS_validation when installed */
    const char *cache_dir;      /* pipeline cache directory, NULL = none */
    bool no_shuffle;            /* use the matmul without subgroup shuffles (tests) */
    bool no_int_dot;            /* never use the integer dot-product matrix-vector path
                                   (tests: the float path on a device that has it) */
    bool force_int_dot;         /* use it also on a software device, where it is the
                                   slower path and off by default (tests) */
    uint64_t mem_limit;         /* device memory the backend may allocate, 0 = what the
                                   device gives (tests provoke out-of-memory with it) */
    uint64_t lose_after;        /* tests: after this many submissions the device acts
                                   lost (VK_ERROR_DEVICE_LOST), 0 = never */
    uint64_t weight_range;      /* the largest buffer one piece of a weight may take,
                                   0 = the device's limit (tests split small weights) */
    bool no_replay;             /* record every submission's commands afresh instead of
                                   submitting the previous pass's again (tests compare) */
};

/* Called while weights are uploaded: bytes of device weight data uploaded
 * so far by this backend (vk_weight_bytes units), at least once per weight
 * and once per staging-buffer load of a large one.  A model that knows its
 * total (the sum of vk_weight_bytes over the weights it uploads) can turn it
 * into a load-progress fraction. */
typedef void (*vk_progress_fn)(void *ctx, uint64_t uploaded);
/* Whether the device was lost: every later operation fails with EIO. */
bool vk_backend_lost(const struct backend *b);
void vk_backend_set_progress(struct backend *b, vk_progress_fn fn, void *ctx);
/* What the backend has done so far: command-buffer submissions, compute
 * dispatches issued, host time spent issuing dispatches and copies
 * (descriptor sets, parameters, comparing with or recording commands) and
 * time spent submitting and waiting for the device; replays: submissions of
 * a command buffer recorded for an earlier pass, unchanged; recorded:
 * dispatches and copies written into command buffers (issued operations
 * that matched the recorded ones are not); barriers: operations issued
 * with a barrier before them, because they read or write what an earlier
 * one of the same submission wrote, or write what it read. */
struct vk_stats {
    uint64_t submits, dispatches;
    uint64_t record_ns, wait_ns;
    uint64_t replays, recorded;
    uint64_t barriers;          /* barriers before issued operations (a data dependency) */
};
void vk_backend_stats(const struct backend *b, struct vk_stats *out);
/* Device memory the backend holds now (weights, KV cache, scratch). */
uint64_t vk_backend_device_bytes(const struct backend *b);

/* Bytes a weight of n values of type t takes on the device (the layout the
 * backend uploads it in). */
uint64_t vk_weight_bytes(enum quant_type t, int64_t n, bool vector);
/* Bytes of device memory the backend uses besides weights and KV cache
 * (staging, activations of a batch of `tokens` rows of `floats_per_token`
 * floats). */
uint64_t vk_scratch_bytes(int64_t tokens, int64_t floats_per_token);
/* Uploads w now (weights are otherwise uploaded on first use); a stack of
 * experts (n_exp > 0) is uploaded as one weight per expert, the way moe
 * uses them.  A weight is known by its host address and shape, so a view
 * of a tensor's first rows is a weight of its own. */
int vk_backend_upload(struct backend *b, const struct weight *w, char *err, size_t errlen);
/* Forgets every uploaded weight (their device memory is freed): weights
 * are known by their host address, so a caller that frees or reuses that
 * memory must call this first. */
void vk_backend_drop_weights(struct backend *b);
/* The device memory budget: what VK_EXT_memory_budget reports for the
 * largest device-local heap, or 80 % of its size. */
uint64_t vk_device_budget(const struct vk_device_desc *d);

int vk_backend_create(const struct vk_options *o, struct backend **out, char *err, size_t errlen);
bool vk_backend_is(const struct backend *b);
/* The device the backend runs on (lives as long as the backend). */
const struct vk_device_desc *vk_backend_desc(const struct backend *b);
/* Validation-layer warnings and errors reported so far; the first message
 * goes into msg when it is not NULL. */
unsigned vk_backend_validation_messages(const struct backend *b, char *msg, size_t msglen);
/* Whether the products of Q8_0, Q6_K and the Q4 types run on int8
 * activations (rounded as llama.cpp's CPU backend rounds them for the
 * weight type) with the integer dot product: the device has
 * VK_KHR_shader_integer_dot_product, no_int_dot was not asked, and
 * vk_int_dot_default says so or force_int_dot was asked. */
bool vk_backend_int_dot(const struct backend *b);
/* Whether the int8 path is the default on device d: a GPU (type not
 * "cpu") with the integer dot product; software devices, where it is the
 * slower path, keep the float one. */
bool vk_int_dot_default(const struct vk_device_desc *d);
/* Whether the validation layer is active on this backend. */
bool vk_backend_validating(const struct backend *b);

#endif
