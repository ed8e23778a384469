/* The Vulkan backend: backend.h's operations recorded into command buffers
 * (submitted when the host needs a result) and replayed while later passes
 * issue the same work, with barriers only where data depends; weights
 * uploaded once to device memory in a shader-friendly layout. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "infer/rope.h"
#include "infer/ckd.h"
#include "infer/quant.h"
#include "infer/vulkan/push.h"
#include "infer/vulkan/shaders.h"
#include "infer/vulkan/vk_impl.h"

#define N_BINDINGS 6
/* the parameter buffer's binding (shaders/common.glsl): slots of struct
 * vk_push, one per dispatch since the last submission */
#define PARAM_BINDING N_BINDINGS
#define PARAM_SLOTS 4096
#define SETS_PER_POOL 256
#define MAX_SEGS 256            /* segments cached per pass (the rest share the last) */
/* Weight matrices are stored with the quants of WEIGHT_GROUP consecutive
 * rows interleaved (upload_chunk), so that the lanes of a SIMD group, one
 * row each, read neighbouring words: 1.4x the matrix-vector speed on
 * lavapipe (and coalesced loads on a GPU). */
#define WEIGHT_GROUP 8
#define TENSOR_CHUNK 256     /* tensor records come in chunks (pointers stay put) */
#define MAX_TENSOR_CHUNKS 64
#define ARENA_BLOCK ((VkDeviceSize)64 << 20)
#define STAGING_SIZE ((VkDeviceSize)64 << 20)
/* attention (shaders/attention.comp): one workgroup per query row, KV
 * head, block of up to ATT_HEADS query heads sharing it (HB there) and
 * chunk of ATT_VALUES values (ATT_VALUES_WIDE with the _WIDE variant, used
 * for value heads longer than ATT_VALUES).  It is split over the sequence
 * (slices of at least ATT_SPLIT_LEN positions, rounded to the shader's tile
 * of ATT_TILE, at most ATT_SPLIT_MAX slices) when fewer than
 * ATT_SPLIT_GROUPS workgroups would run otherwise. */
#define ATT_HEADS 8
#define ATT_TILE 64
#define ATT_VALUES 128
#define ATT_VALUES_WIDE 512
#define ATT_SPLIT_LEN 128
#define ATT_SPLIT_MAX 64
#define ATT_SPLIT_GROUPS 256

struct vk_buf {
    VkBuffer buf;
    VkDeviceMemory mem;
    VkDeviceSize size;
    void *map;                  /* host-visible memory stays mapped */
    bool device;                /* counted in mem_used */
};

/* Device layouts of a weight (shaders/matmul.comp): F32 rows, F16 rows,
 * Q8 (int8 quants, then a float scale per 32) for Q8_0, Q6 (int8 quants,
 * a float scale per 16) for Q6_K, Q4 (nibbles, then a float scale and
 * offset per 32) for Q4_0, Q4_1 and Q4_K; every other type is dequantized
 * to F16 at upload.  Vectors (norms, biases) are F32. */
enum wfmt { WFMT_F32, WFMT_F16, WFMT_Q8, WFMT_Q6, WFMT_Q4 };

static enum wfmt wfmt_of(enum quant_type t, bool vector)
{
    if (vector)
        return WFMT_F32;
    switch (t) {
    case QUANT_TYPE_F32: case QUANT_TYPE_BF16: return WFMT_F32;
    case QUANT_TYPE_Q8_0: return WFMT_Q8;
    case QUANT_TYPE_Q6_K: return WFMT_Q6;
    case QUANT_TYPE_Q4_0: case QUANT_TYPE_Q4_1: case QUANT_TYPE_Q4_K: return WFMT_Q4;
    default: return WFMT_F16;
    }
}

/* bytes per row of n values, and the word offset of the scales in a chunk
 * of rows */
static size_t wfmt_row_bytes(enum wfmt f, size_t n)
{
    switch (f) {
    case WFMT_F32: return n * 4;
    case WFMT_F16: return n * 2;
    case WFMT_Q8: return n + n / 32 * 4;
    case WFMT_Q6: return n + n / 16 * 4;
    case WFMT_Q4: return n / 2 + n / 32 * 8;
    }
    return 0;
}

static size_t wfmt_scale_off(enum wfmt f, size_t rows, size_t n)
{
    return f == WFMT_Q4 ? rows * n / 8 : rows * n / 4;
}

/* packs 32 nibbles q[0..32) into 4 words: value i at bits 4*(i%8) of word i/8 */
static void pack_nibbles(const uint8_t *q, uint32_t *w)
{
    for (int k = 0; k < 4; k++) {
        uint32_t v = 0;
        for (int j = 0; j < 8; j++)
            v |= (uint32_t)(q[8 * k + j] & 15) << (4 * j);
        w[k] = v;
    }
}

static void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* One row of a Q4-format type: nibbles to qw (n/8 words), (a, b) pairs to sb. */
static void row_q4(enum quant_type t, const void *src, int64_t n, uint32_t *qw, float *sb)
{
    uint8_t q[32];
    if (t == QUANT_TYPE_Q4_K) {
        const struct block_q4_k *bl = src;
        for (int64_t b = 0; b < n / QK_K; b++) {
            float d = quant_f16_to_f32(bl[b].d), dmin = quant_f16_to_f32(bl[b].dmin);
            for (int j = 0; j < 4; j++) {
                const uint8_t *qs = bl[b].qs + 32 * j;
                for (int h = 0; h < 2; h++) {
                    uint8_t sc, mn;
                    scale_min_k4(2 * j + h, bl[b].scales, &sc, &mn);
                    for (int l = 0; l < 32; l++)
                        q[l] = h ? qs[l] >> 4 : qs[l] & 15;
                    int64_t sbk = b * 8 + 2 * j + h;
                    pack_nibbles(q, qw + sbk * 4);
                    sb[2 * sbk] = d * sc;
                    sb[2 * sbk + 1] = dmin * mn;
                }
            }
        }
        return;
    }
    for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t *qs;
        float a, off;
        if (t == QUANT_TYPE_Q4_0) {
            const struct block_q4_0 *bl = (const struct block_q4_0 *)src + b;
            qs = bl->qs;
            a = quant_f16_to_f32(bl->d);
            off = 8 * a;
        } else {
            const struct block_q4_1 *bl = (const struct block_q4_1 *)src + b;
            qs = bl->qs;
            a = quant_f16_to_f32(bl->d);
            off = -quant_f16_to_f32(bl->m);
        }
        for (int l = 0; l < 16; l++) {
            q[l] = qs[l] & 15;
            q[l + 16] = qs[l] >> 4;
        }
        pack_nibbles(q, qw + b * 4);
        sb[2 * b] = a;
        sb[2 * b + 1] = off;
    }
}

/* One row of Q6_K: q - 32 as int8 to q8 (n bytes), a scale per 16 to sc. */
static void row_q6(const void *src, int64_t n, int8_t *q8, float *sc)
{
    const struct block_q6_k *bl = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        float d = quant_f16_to_f32(bl[b].d);
        int8_t *y = q8 + b * QK_K;
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = bl[b].ql + 64 * half, *qh = bl[b].qh + 32 * half;
            int8_t *yy = y + 128 * half;
            for (int l = 0; l < 32; l++) {
                yy[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                yy[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                yy[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                yy[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
        for (int g = 0; g < 16; g++)
            sc[b * 16 + g] = d * (float)bl[b].scales[g];
    }
}

struct wchunk {
    struct vk_buf b;
    int64_t row0, rows;
    uint32_t scale_off;         /* word offset of the scales (after the padded quants) */
};

struct vk_weight {
    const void *key;            /* the host data pointer */
    enum wfmt fmt;
    enum quant_type type;       /* the file's type (the int8 path rounds x for it) */
    int group;                  /* rows interleaved (WEIGHT_GROUP; 1 for vectors) */
    int64_t n_in, n_out;
    int n_chunks;
    struct wchunk *chunks;
};

struct vk_tensor {
    struct btensor t;           /* first: the arena hands out &t */
    int block;
    uint32_t off;               /* floats from the start of the block */
    VkBuffer buf;               /* the tensor's view of the block (view_get), or the block */
    uint32_t rel;               /* floats from the start of buf */
};

/* Bytes [off, end) of a piece of device memory (id: the arena block's
 * memory for the block and its views, which alias it; else the buffer)
 * that an operation reads, or writes (and may read). */
struct vk_range {
    uint64_t id;
    VkDeviceSize off, end;
    bool write;
};
#define RANGES_MAX 64           /* ranges tracked between two barriers */

/* A buffer over part of an arena block: the memory of one activation
 * tensor, so that descriptor sets (and the validation layer) see what each
 * dispatch touches. */
struct vk_view {
    int block;
    VkDeviceSize off, size;     /* bytes in the block */
    VkBuffer buf;               /* VK_NULL_HANDLE: a free table entry */
};
#define VIEWS_MAX 8192          /* more and vk_reset starts the views afresh */

struct vk_set {
    VkBuffer b[N_BINDINGS];
    VkDescriptorSet set;        /* VK_NULL_HANDLE: a free table entry */
    struct vk_range r[N_BINDINGS];  /* what each binding covers (write unset) */
};

struct vk_backend {
    struct backend base;
    struct vk_inst vi;
    struct vk_device_desc desc;
    char err[256];
    char cache_path[512];

    VkPhysicalDevice pd;
    VkDevice dev;
    VkQueue queue;
    VkPhysicalDeviceMemoryProperties mp;
    VkDeviceSize max_range, align;

    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkPipelineCache cache;
    VkPipeline pipes[VK_SHADER_COUNT];
    /* descriptor sets, one per tuple of bindings, made once (set_get)
     * and kept until one of the backend's buffers is freed (cache_drop) */
    struct vk_set *sets;
    size_t sets_cap, sets_n;
    VkDescriptorPool *dpools;
    int n_dpools;
    uint32_t dpool_left;
    struct vk_buf params;       /* PARAM_SLOTS parameter slots, host-visible */
    uint32_t slots_used;
    VkCommandPool cpool;
    VkCommandBuffer cmd;        /* the current segment's */
    VkFence fence;
    bool recording, lost;       /* recording: a segment is open (begin) until flush */
    /* recorded segments (flush) */
    struct vk_seg *segs;
    int n_segs, cur_seg;
    uint32_t pos;               /* operations issued into the current segment */
    bool rec;                   /* its command buffer is being recorded (else replayed so far) */
    bool restart;               /* vk_reset while a segment was open: the next one is the first */
    bool no_replay;             /* vk_options.no_replay */
    /* what the operations since the last barrier read and wrote (hazard) */
    struct vk_range seen[RANGES_MAX];
    int n_seen;
    bool bar_next;              /* a barrier before the next operation */
    /* views of the arena blocks, open addressing on (block, offset, size) */
    struct vk_view *views;
    size_t views_cap, views_n;
    VkDeviceSize view_align;    /* the alignment a view's memory needs, once known */
    bool shuffle;               /* matmul variants sharing x by subgroup shuffle */
    bool int_dot;               /* matrix-vector on int8 activations (mm_int) */

    struct vk_buf staging, dummy;
    VkDeviceSize staging_used;

    /* activation arena */
    struct vk_buf *blocks;
    int n_blocks, cur_block;
    VkDeviceSize cur_used;
    struct vk_tensor *tchunks[MAX_TENSOR_CHUNKS];
    int n_tensors;

    /* KV cache, one buffer per layer for K and for V */
    struct kv_shape kv;
    struct vk_buf *kc, *vc;

    /* uploaded weights, open addressing on the host data pointer (and
     * shape: a view of a tensor's first rows is a weight of its own) */
    struct vk_weight **wt;
    size_t wt_cap, wt_n;

    uint64_t lose_after;            /* tests: submissions before the device acts lost (0: never) */
    uint64_t mem_limit, mem_used;   /* device-local bytes allowed (0: no limit) and held */
    uint64_t weight_range;          /* vk_options.weight_range */
    vk_progress_fn progress;
    void *progress_ctx;
    uint64_t uploaded;
    struct vk_stats stats;

    float *host_rows;           /* scratch for dequantized rows */
    size_t host_rows_cap;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct vk_backend *vb(struct backend *b) { return (struct vk_backend *)b; }
static struct vk_tensor *vt(const struct btensor *t) { return (struct vk_tensor *)(uintptr_t)t; }

static int fail(struct vk_backend *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct vk_backend *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return code;
}

static int vkfail(struct vk_backend *c, VkResult r, const char *what)
{
    if (r == VK_ERROR_DEVICE_LOST) {
        c->lost = true;
        return fail(c, EIO, "vulkan: the device was lost (%s)", what);
    }
    int code = r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ? ENOMEM : EIO;
    return fail(c, code, "vulkan: %s: %s", what, vk_result_text(r));
}

/* ---- memory ---- */

static int find_type(const struct vk_backend *c, uint32_t bits, VkMemoryPropertyFlags want,
                     VkMemoryPropertyFlags avoid)
{
    for (uint32_t i = 0; i < c->mp.memoryTypeCount; i++)
        if ((bits & (1u << i)) && (c->mp.memoryTypes[i].propertyFlags & want) == want &&
            !(c->mp.memoryTypes[i].propertyFlags & avoid))
            return (int)i;
    return -1;
}

/* A storage buffer of size bytes, shaders' and transfers' (no memory bound). */
static VkResult storage_buffer(const struct vk_backend *c, VkDeviceSize size, VkBuffer *buf)
{
    VkBufferCreateInfo bi = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                 VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    return vkCreateBuffer(c->dev, &bi, NULL, buf);
}

/* host: a host-visible coherent buffer (mapped); else device-local.
 * near: host-visible memory that is also device-local when the device has
 * such a type (what shaders read often: the parameter slots). */
static int buf_create_in(struct vk_backend *c, struct vk_buf *b, VkDeviceSize size, bool host,
                         bool near)
{
    memset(b, 0, sizeof *b);
    if (!host && c->mem_limit && c->mem_used + size > c->mem_limit)
        return fail(c, ENOMEM, "vulkan: out of device memory (%llu MiB more than the %llu MiB "
                    "allowed)", (unsigned long long)((c->mem_used + size - c->mem_limit) >> 20),
                    (unsigned long long)(c->mem_limit >> 20));
    VkResult r = storage_buffer(c, size, &b->buf);
    if (r != VK_SUCCESS)
        return vkfail(c, r, "create buffer");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(c->dev, b->buf, &req);
    const VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                     VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    int t = near ? find_type(c, req.memoryTypeBits, hv | VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0)
          : host ? find_type(c, req.memoryTypeBits, hv | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0)
                 : find_type(c, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
    if (t < 0)
        t = find_type(c, req.memoryTypeBits, hv, 0);
    if (t < 0) {
        vkDestroyBuffer(c->dev, b->buf, NULL);
        b->buf = VK_NULL_HANDLE;
        return fail(c, ENOMEM, "vulkan: no memory type for a buffer of %llu bytes",
                    (unsigned long long)size);
    }
    VkMemoryAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .allocationSize = req.size,
        .memoryTypeIndex = (uint32_t)t,
    };
    r = vkAllocateMemory(c->dev, &ai, NULL, &b->mem);
    if (r == VK_SUCCESS)
        r = vkBindBufferMemory(c->dev, b->buf, b->mem, 0);
    if (r == VK_SUCCESS && (c->mp.memoryTypes[t].propertyFlags & hv) == hv)
        r = vkMapMemory(c->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map);
    if (r != VK_SUCCESS) {
        if (b->mem)
            vkFreeMemory(c->dev, b->mem, NULL);
        vkDestroyBuffer(c->dev, b->buf, NULL);
        memset(b, 0, sizeof *b);
        return vkfail(c, r, "allocate device memory");
    }
    b->size = size;
    b->device = !host;
    if (b->device)
        c->mem_used += size;
    return 0;
}

static int buf_create(struct vk_backend *c, struct vk_buf *b, VkDeviceSize size, bool host)
{
    return buf_create_in(c, b, size, host, false);
}

static void cache_drop(struct vk_backend *c);

static void buf_free(struct vk_backend *c, struct vk_buf *b)
{
    if (b->buf)     /* a freed handle may come back for another buffer */
        cache_drop(c);
    if (b->device)
        c->mem_used -= b->size;
    if (b->buf)
        vkDestroyBuffer(c->dev, b->buf, NULL);
    if (b->mem)
        vkFreeMemory(c->dev, b->mem, NULL);
    memset(b, 0, sizeof *b);
}

/* ---- recording, replay and submission ----
 *
 * The work between two submissions (flush) is a segment; a forward pass is
 * a list of segments (one for a dense model's token; deepseek2 submits at
 * every MoE layer, uploads and a full staging ring or parameter buffer
 * submit too).  Each segment keeps its command buffer and the log of the
 * operations recorded in it (struct vk_op: pipeline, descriptor set,
 * parameter slot, group counts, copy regions, barrier).  When a pass issues
 * the same operations as the previous pass, the segment is not recorded
 * again: each incoming operation is compared with the log, only its
 * parameters (the slot) and staging data are written, and flush submits the
 * cached command buffer.  At the first difference, the log's matching
 * prefix is recorded into the command buffer and recording goes on from
 * there (that becomes the new cache).  Everything that changes per token
 * (positions, the rope table, KV write offsets, attention lengths) is in
 * the parameters or the staging data, never in the recorded commands;
 * slots and staging offsets restart at every submission, so the same
 * sequence gets the same ones.  vk_reset (the start of a pass) goes back
 * to the first segment. */

enum { OP_DISPATCH = 1, OP_COPY = 2 };

/* One recorded operation; compared bytewise (made with memset), so every
 * field that changes what is recorded is in it. */
struct vk_op {
    VkDescriptorSet set;        /* dispatch */
    VkBuffer src, dst;          /* copy */
    VkDeviceSize so, dof, n;
    uint32_t kind, shader, slot, g[3];
    uint32_t bar;               /* a barrier before the operation */
};

struct vk_seg {
    VkCommandBuffer cmd;
    struct vk_op *ops;
    uint32_t n, cap;
    bool valid;                 /* cmd holds exactly ops[0..n), ended, and may run again */
};

/* The segment the next operations go into, with a command buffer. */
static int seg_cur(struct vk_backend *c, struct vk_seg **out)
{
    if (c->cur_seg >= c->n_segs) {
        struct vk_seg *ns = realloc(c->segs, (size_t)(c->cur_seg + 1) * sizeof *ns);
        if (!ns)
            return fail(c, ENOMEM, "out of memory");
        c->segs = ns;
        for (; c->n_segs <= c->cur_seg; c->n_segs++)
            memset(&c->segs[c->n_segs], 0, sizeof *ns);
    }
    struct vk_seg *sg = &c->segs[c->cur_seg];
    if (!sg->cmd) {
        VkCommandBufferAllocateInfo cai = {
            .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
            .commandPool = c->cpool,
            .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
            .commandBufferCount = 1,
        };
        VkResult r = vkAllocateCommandBuffers(c->dev, &cai, &sg->cmd);
        if (r != VK_SUCCESS) {
            sg->cmd = VK_NULL_HANDLE;
            return vkfail(c, r, "allocate command buffer");
        }
    }
    *out = sg;
    return 0;
}

static int begin(struct vk_backend *c)
{
    if (c->lost)
        return fail(c, EIO, "vulkan: the device was lost");
    if (c->recording)
        return 0;
    struct vk_seg *sg = NULL;
    int rc = seg_cur(c, &sg);
    if (rc)
        return rc;
    c->cmd = sg->cmd;
    c->pos = 0;
    c->rec = false;
    c->recording = true;
    c->bar_next = true;     /* after the work of earlier submissions */
    c->n_seen = 0;
    return 0;
}

static void barrier(struct vk_backend *c, VkPipelineStageFlags dst_stage, VkAccessFlags dst_access)
{
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = dst_access,
    };
    vkCmdPipelineBarrier(c->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         dst_stage, 0, 1, &mb, 0, NULL, 0, NULL);
}

static void op_record(struct vk_backend *c, const struct vk_op *op)
{
    if (op->bar)
        barrier(c, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                    VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT);
    if (op->kind == OP_COPY) {
        VkBufferCopy region = {op->so, op->dof, op->n};
        vkCmdCopyBuffer(c->cmd, op->src, op->dst, 1, &region);
    } else {
        vkCmdBindPipeline(c->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, c->pipes[op->shader]);
        vkCmdBindDescriptorSets(c->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, c->layout, 0, 1, &op->set,
                                0, NULL);
        vkCmdPushConstants(c->cmd, c->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof op->slot,
                           &op->slot);
        vkCmdDispatch(c->cmd, op->g[0], op->g[1], op->g[2]);
    }
    c->stats.recorded++;
}

/* Starts recording the current segment anew: its command buffer gets the
 * log's first pos operations (those that matched). */
static int seg_record(struct vk_backend *c, struct vk_seg *sg)
{
    sg->valid = false;
    VkResult r = vkResetCommandBuffer(sg->cmd, 0);
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    if (r == VK_SUCCESS)
        r = vkBeginCommandBuffer(sg->cmd, &bi);
    if (r != VK_SUCCESS)
        return vkfail(c, r, "begin command buffer");
    c->rec = true;
    sg->n = c->pos;
    for (uint32_t i = 0; i < sg->n; i++)
        op_record(c, &sg->ops[i]);
    return 0;
}

/* Issues op into the current segment: matched against the log, or
 * recorded. */
static int emit(struct vk_backend *c, const struct vk_op *op)
{
    struct vk_seg *sg = &c->segs[c->cur_seg];
    if (!c->rec) {
        if (!c->no_replay && sg->valid && c->pos < sg->n && !memcmp(&sg->ops[c->pos], op, sizeof *op)) {
            c->pos++;
            return 0;
        }
        int rc = seg_record(c, sg);
        if (rc)
            return rc;
    }
    if (sg->n == sg->cap) {
        uint32_t cap = sg->cap ? sg->cap * 2 : 256;
        struct vk_op *no = realloc(sg->ops, cap * sizeof *no);
        if (!no)
            return fail(c, ENOMEM, "out of memory");
        sg->ops = no;
        sg->cap = cap;
    }
    sg->ops[sg->n++] = *op;
    c->pos++;
    op_record(c, op);
    return 0;
}

/* Forgets every recorded segment (their command buffers name buffers and
 * descriptor sets that are going away). */
static void segs_drop(struct vk_backend *c)
{
    for (int i = 0; i < c->n_segs; i++)
        c->segs[i].valid = false;
}

/* Submits the current segment (replayed, or recorded now) and waits for
 * it; then the staging ring and the parameter slots are free again, and
 * the next segment begins. */
static int flush(struct vk_backend *c)
{
    if (!c->recording)
        return 0;
    c->recording = false;
    struct vk_seg *sg = &c->segs[c->cur_seg];
    int next = c->restart ? 0 : c->cur_seg + 1 < MAX_SEGS ? c->cur_seg + 1 : c->cur_seg;
    c->restart = false;
    c->cur_seg = next;
    VkResult r;
    if (!c->rec && (c->no_replay || !sg->valid || c->pos != sg->n)) {
        int rc = seg_record(c, sg);
        if (rc)
            return rc;
    }
    if (c->rec) {
        c->rec = false;
        barrier(c, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
        if ((r = vkEndCommandBuffer(sg->cmd)) != VK_SUCCESS)
            return vkfail(c, r, "end command buffer");
        sg->valid = true;
    } else {
        c->stats.replays++;
    }
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = 1,
        .pCommandBuffers = &sg->cmd,
    };
    uint64_t t0 = now_ns();
    r = vkQueueSubmit(c->queue, 1, &si, c->fence);
    if (r == VK_SUCCESS)
        r = vkWaitForFences(c->dev, 1, &c->fence, VK_TRUE, UINT64_MAX);
    c->stats.wait_ns += now_ns() - t0;
    c->stats.submits++;
    if (r == VK_SUCCESS && c->lose_after && c->stats.submits >= c->lose_after)
        r = VK_ERROR_DEVICE_LOST;   /* tests: the device goes away here */
    if (r != VK_SUCCESS) {
        sg->valid = false;
        return vkfail(c, r, "submit");
    }
    vkResetFences(c->dev, 1, &c->fence);
    c->slots_used = 0;
    c->staging_used = 0;
    return 0;
}

/* Space in the staging ring for bytes (aligned), flushing when full. */
static int staging_get(struct vk_backend *c, VkDeviceSize bytes, VkDeviceSize *off)
{
    bytes = (bytes + 255) & ~(VkDeviceSize)255;
    if (bytes > c->staging.size)
        return fail(c, ENOMEM, "vulkan: %llu bytes exceed the staging buffer",
                    (unsigned long long)bytes);
    if (c->staging_used + bytes > c->staging.size) {
        int rc = flush(c);
        if (rc)
            return rc;
    }
    *off = c->staging_used;
    c->staging_used += bytes;
    return begin(c);
}

/* ---- descriptor sets ---- */

/* Forgets every descriptor set (after submitting what was recorded with
 * them): called when a buffer is freed, since its handle may be reused. */
static void cache_drop(struct vk_backend *c)
{
    if (c->recording && !c->lost)
        flush(c);
    segs_drop(c);
    if (!c->sets_n)
        return;
    for (int i = 0; i < c->n_dpools; i++)
        vkDestroyDescriptorPool(c->dev, c->dpools[i], NULL);
    free(c->dpools);
    c->dpools = NULL;
    c->n_dpools = 0;
    c->dpool_left = 0;
    memset(c->sets, 0, c->sets_cap * sizeof *c->sets);
    c->sets_n = 0;
}

static size_t set_slot(const struct vk_set *t, size_t cap, const VkBuffer key[N_BINDINGS])
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < N_BINDINGS; i++)
        h = (h ^ (uint64_t)(uintptr_t)key[i]) * 0x100000001b3ull;
    size_t i = (size_t)(h ^ (h >> 29)) & (cap - 1);
    while (t[i].set && memcmp(t[i].b, key, sizeof t[i].b))
        i = (i + 1) & (cap - 1);
    return i;
}

static int set_grow(struct vk_backend *c)
{
    size_t cap = c->sets_cap ? c->sets_cap * 2 : 1024;
    struct vk_set *t = calloc(cap, sizeof *t);
    if (!t)
        return fail(c, ENOMEM, "out of memory");
    for (size_t i = 0; i < c->sets_cap; i++)
        if (c->sets[i].set)
            t[set_slot(t, cap, c->sets[i].b)] = c->sets[i];
    free(c->sets);
    c->sets = t;
    c->sets_cap = cap;
    return 0;
}

/* The memory buf covers: an arena block or a view of one (the block's
 * memory, offsets in the block), else the buffer itself. */
static struct vk_range buf_range(const struct vk_backend *c, VkBuffer buf)
{
    if (buf == c->staging.buf)
        return (struct vk_range){(uint64_t)(uintptr_t)buf, 0, c->staging.size, false};
    for (int i = 0; i < c->n_blocks; i++)
        if (c->blocks[i].buf == buf)
            return (struct vk_range){(uint64_t)(uintptr_t)c->blocks[i].mem, 0, c->blocks[i].size, false};
    for (size_t i = 0; i < c->views_cap; i++)
        if (c->views[i].buf == buf)
            return (struct vk_range){(uint64_t)(uintptr_t)c->blocks[c->views[i].block].mem,
                                     c->views[i].off, c->views[i].off + c->views[i].size, false};
    return (struct vk_range){(uint64_t)(uintptr_t)buf, 0, ~(VkDeviceSize)0, false};
}

/* The descriptor set binding bufs (VK_NULL_HANDLE: a dummy buffer) and the
 * parameter buffer: made on first use, then found in the table. */
static int set_get(struct vk_backend *c, const VkBuffer bufs[N_BINDINGS], struct vk_set **out)
{
    VkBuffer key[N_BINDINGS];
    for (int i = 0; i < N_BINDINGS; i++)
        key[i] = bufs[i] ? bufs[i] : c->dummy.buf;
    if (c->sets_n * 2 >= c->sets_cap) {
        int rc = set_grow(c);
        if (rc)
            return rc;
    }
    size_t slot = set_slot(c->sets, c->sets_cap, key);
    if (c->sets[slot].set) {
        *out = &c->sets[slot];
        return 0;
    }
    VkResult r;
    if (!c->dpool_left) {
        VkDescriptorPool *np = realloc(c->dpools, (size_t)(c->n_dpools + 1) * sizeof *np);
        if (!np)
            return fail(c, ENOMEM, "out of memory");
        c->dpools = np;
        VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                   SETS_PER_POOL * (N_BINDINGS + 1)};
        VkDescriptorPoolCreateInfo pci = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
            .maxSets = SETS_PER_POOL,
            .poolSizeCount = 1,
            .pPoolSizes = &ps,
        };
        if ((r = vkCreateDescriptorPool(c->dev, &pci, NULL, &c->dpools[c->n_dpools])) != VK_SUCCESS)
            return vkfail(c, r, "create descriptor pool");
        c->n_dpools++;
        c->dpool_left = SETS_PER_POOL;
    }
    VkDescriptorSetAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
        .descriptorPool = c->dpools[c->n_dpools - 1],
        .descriptorSetCount = 1,
        .pSetLayouts = &c->dsl,
    };
    VkDescriptorSet set;
    if ((r = vkAllocateDescriptorSets(c->dev, &ai, &set)) != VK_SUCCESS)
        return vkfail(c, r, "allocate descriptor set");
    c->dpool_left--;
    VkDescriptorBufferInfo info[N_BINDINGS + 1];
    VkWriteDescriptorSet w[N_BINDINGS + 1];
    for (int i = 0; i <= N_BINDINGS; i++) {
        info[i] = (VkDescriptorBufferInfo){i < N_BINDINGS ? key[i] : c->params.buf, 0, VK_WHOLE_SIZE};
        w[i] = (VkWriteDescriptorSet){
            .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
            .dstSet = set,
            .dstBinding = (uint32_t)i,
            .descriptorCount = 1,
            .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .pBufferInfo = &info[i],
        };
    }
    vkUpdateDescriptorSets(c->dev, N_BINDINGS + 1, w, 0, NULL);
    memcpy(c->sets[slot].b, key, sizeof key);
    c->sets[slot].set = set;
    for (int i = 0; i < N_BINDINGS; i++)
        c->sets[slot].r[i] = bufs[i] ? buf_range(c, key[i]) : (struct vk_range){0};
    c->sets_n++;
    *out = &c->sets[slot];
    return 0;
}

/* Whether an operation accessing rg[0..n) needs a barrier before it: it
 * reads or writes memory written since the last barrier, or writes memory
 * read since then, or it is the first of its submission (the work of the
 * earlier ones is behind a barrier too).  Notes its ranges; with rg NULL
 * (an operation whose ranges are not known) the barrier goes before and
 * after it. */
static uint32_t hazard(struct vk_backend *c, const struct vk_range *rg, int n)
{
    bool need = c->bar_next || !rg || c->n_seen + n > RANGES_MAX;
    for (int i = 0; i < n && !need; i++)
        for (int j = 0; j < c->n_seen && !need; j++) {
            const struct vk_range *e = &c->seen[j];
            need = e->id == rg[i].id && (e->write || rg[i].write) && rg[i].off < e->end &&
                   e->off < rg[i].end;
        }
    if (need) {
        c->n_seen = 0;
        c->stats.barriers++;
    }
    c->bar_next = !rg;
    for (int i = 0; rg && i < n; i++)
        c->seen[c->n_seen++] = rg[i];
    return need;
}

/* The bindings each shader writes (the rest it only reads), from the
 * buffer declarations of shaders/; a shader not listed writes them all. */
static uint32_t written(enum vk_shader s)
{
    if (s <= VK_SHADER_MATMUL_Q4_8S || (s >= VK_SHADER_MATMUL_INT_Q8 && s <= VK_SHADER_MATMUL_INT_Q4_8))
        return 1u << 2;
    switch (s) {
    case VK_SHADER_RMS_NORM: return 1u << 1;
    case VK_SHADER_ROPE: return 1u << 0;
    case VK_SHADER_ADD: case VK_SHADER_SWIGLU: case VK_SHADER_TO_F16: return 1u << 2;
    case VK_SHADER_COPY_COLS: return 1u << 1;
    case VK_SHADER_MOE_GATHER: case VK_SHADER_MOE_COMBINE: return 1u << 1;
    case VK_SHADER_QUANT_X: return 1u << 2;
    case VK_SHADER_ATTENTION_F32: case VK_SHADER_ATTENTION_F16:
    case VK_SHADER_ATTENTION_F32_WIDE: case VK_SHADER_ATTENTION_F16_WIDE:
    case VK_SHADER_ATTENTION_COMBINE:
        return 3u << 4;
    default: return (1u << N_BINDINGS) - 1;
    }
}

static int dispatch(struct vk_backend *c, enum vk_shader s, const VkBuffer bufs[N_BINDINGS],
                    const struct vk_push *p, uint32_t gx, uint32_t gy, uint32_t gz)
{
    if (gx == 0 || gy == 0 || gz == 0)
        return 0;
    if (c->slots_used == PARAM_SLOTS) {
        int rc = flush(c);
        if (rc)
            return rc;
    }
    int rc = begin(c);
    if (rc)
        return rc;
    uint64_t t0 = now_ns();
    struct vk_op op;
    memset(&op, 0, sizeof op);
    struct vk_set *set = NULL;
    if ((rc = set_get(c, bufs, &set)))
        return rc;
    op.set = set->set;
    struct vk_range rg[N_BINDINGS];
    int n_rg = 0;
    uint32_t wmask = written(s);
    for (int i = 0; i < N_BINDINGS; i++)
        if (bufs[i]) {
            rg[n_rg] = set->r[i];
            rg[n_rg++].write = (wmask >> i) & 1;
        }
    op.kind = OP_DISPATCH;
    op.shader = (uint32_t)s;
    op.slot = c->slots_used++;
    op.g[0] = gx;
    op.g[1] = gy;
    op.g[2] = gz;
    op.bar = hazard(c, rg, n_rg);
    memcpy((unsigned char *)c->params.map + (size_t)op.slot * sizeof *p, p, sizeof *p);
    rc = emit(c, &op);
    c->stats.dispatches++;
    c->stats.record_ns += now_ns() - t0;
    return rc;
}

/* A buffer copy (after begin or staging_get). */
static int copy(struct vk_backend *c, VkBuffer src, VkDeviceSize so, VkBuffer dst, VkDeviceSize dof,
                VkDeviceSize n)
{
    uint64_t t0 = now_ns();
    struct vk_op op;
    memset(&op, 0, sizeof op);
    op.kind = OP_COPY;
    op.src = src;
    op.dst = dst;
    op.so = so;
    op.dof = dof;
    op.n = n;
    struct vk_range rg[2] = {buf_range(c, src), buf_range(c, dst)};
    rg[0].off += so;
    rg[0].end = rg[0].off + n;
    rg[1].off += dof;
    rg[1].end = rg[1].off + n;
    rg[1].write = true;
    op.bar = hazard(c, rg, 2);
    int rc = emit(c, &op);
    c->stats.record_ns += now_ns() - t0;
    return rc;
}

static uint32_t groups(int64_t n, uint32_t per) { return (uint32_t)((n + per - 1) / per); }

/* ---- weights ---- */

static size_t wt_slot(const struct vk_backend *c, const void *key, int64_t n_in, int64_t n_out)
{
    size_t h = (size_t)((uintptr_t)key >> 4) * 0x9E3779B97F4A7C15ull;
    size_t i = h & (c->wt_cap - 1);
    while (c->wt[i] && (c->wt[i]->key != key || c->wt[i]->n_in != n_in || c->wt[i]->n_out != n_out))
        i = (i + 1) & (c->wt_cap - 1);
    return i;
}

static int wt_grow(struct vk_backend *c)
{
    size_t cap = c->wt_cap ? c->wt_cap * 2 : 256;
    struct vk_weight **old = c->wt;
    size_t old_cap = c->wt_cap;
    c->wt = calloc(cap, sizeof *c->wt);
    if (!c->wt) {
        c->wt = old;
        return fail(c, ENOMEM, "out of memory");
    }
    c->wt_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i])
            c->wt[wt_slot(c, old[i]->key, old[i]->n_in, old[i]->n_out)] = old[i];
    free(old);
    return 0;
}

static float *host_rows(struct vk_backend *c, size_t n)
{
    if (n > c->host_rows_cap) {
        float *p = realloc(c->host_rows, n * sizeof(float));
        if (!p)
            return NULL;
        c->host_rows = p;
        c->host_rows_cap = n;
    }
    return c->host_rows;
}

/* Writes rows [r0, r0+n) of w in format fmt to dst (chunk layout, chunk of
 * `rows` rows starting at chunk_row0). */
static int convert_rows(struct vk_backend *c, const struct weight *w, enum wfmt fmt, int64_t r0,
                        int64_t n, int64_t chunk_row0, int64_t chunk_rows, unsigned char *dst)
{
    const struct quant_traits *tr = quant_traits(w->type);
    int64_t k = w->n_in;
    float *tmp = host_rows(c, (size_t)k);
    if (!tr || !tmp)
        return fail(c, ENOMEM, "out of memory");
    for (int64_t r = r0; r < r0 + n; r++) {
        const unsigned char *src = (const unsigned char *)w->data + (size_t)r * w->row_bytes;
        int64_t lr = r - chunk_row0;
        if (fmt == WFMT_Q4) {
            uint32_t *qw = (uint32_t *)dst + (size_t)lr * (size_t)(k / 8);
            float *sb = (float *)dst + wfmt_scale_off(fmt, (size_t)chunk_rows, (size_t)k) +
                        (size_t)lr * (size_t)(k / 16);
            row_q4(w->type, src, k, qw, sb);
        } else if (fmt == WFMT_Q6) {
            float *sc = (float *)dst + wfmt_scale_off(fmt, (size_t)chunk_rows, (size_t)k) +
                        (size_t)lr * (size_t)(k / 16);
            row_q6(src, k, (int8_t *)dst + (size_t)lr * (size_t)k, sc);
        } else if (fmt == WFMT_Q8) {
            const struct block_q8_0 *bl = (const struct block_q8_0 *)src;
            int8_t *q = (int8_t *)dst + (size_t)lr * (size_t)k;
            float *sc = (float *)(dst + (size_t)chunk_rows * (size_t)k) + (size_t)lr * (size_t)(k / 32);
            for (int64_t b = 0; b < k / 32; b++) {
                memcpy(q + b * 32, bl[b].qs, 32);
                sc[b] = quant_f16_to_f32(bl[b].d);
            }
        } else if (fmt == WFMT_F16 && w->type == QUANT_TYPE_F16) {
            memcpy(dst + (size_t)lr * (size_t)k * 2, src, (size_t)k * 2);
        } else {
            tr->dequantize(src, tmp, k);
            if (fmt == WFMT_F32) {
                memcpy(dst + (size_t)lr * (size_t)k * 4, tmp, (size_t)k * 4);
            } else {
                quant_f16 *h = (quant_f16 *)(dst + (size_t)lr * (size_t)k * 2);
                for (int64_t i = 0; i < k; i++)
                    h[i] = quant_f32_to_f16(tmp[i]);
            }
        }
    }
    return 0;
}

static void uploaded(struct vk_backend *c, uint64_t bytes)
{
    c->uploaded += bytes;
    if (c->progress)
        c->progress(c->progress_ctx, c->uploaded);
}

/* Bytes of a row's quants (the part interleaved) and the unit a shader
 * lane loads at once (shaders/matmul.comp). */
static size_t wfmt_qbytes(enum wfmt f, size_t n)
{
    return f == WFMT_F32 ? n * 4 : f == WFMT_F16 ? n * 2 : f == WFMT_Q4 ? n / 2 : n;
}

static size_t wfmt_unit(enum wfmt f) { return f == WFMT_F32 ? 16 : f == WFMT_F16 ? 8 : 4; }

/* Converts a chunk's rows, interleaves their quants in groups of
 * WEIGHT_GROUP rows (unit k of row r at unit (r/G)*G*units + k*G + r%G;
 * padding rows are zero) with the scales after them, and writes the
 * result to the device. */
static int upload_chunk(struct vk_backend *c, const struct weight *w, struct vk_weight *vw,
                        struct wchunk *ch, size_t row_dev)
{
    size_t rows = (size_t)ch->rows, g = (size_t)vw->group;
    size_t qb = wfmt_qbytes(vw->fmt, (size_t)w->n_in), sb = row_dev - qb;
    size_t padded = (rows + g - 1) / g * g;
    VkDeviceSize bytes = (VkDeviceSize)(padded * qb + rows * sb);
    uint64_t logical = (uint64_t)rows * row_dev, reported = 0;
    ch->scale_off = (uint32_t)(padded * qb / 4);
    int rc = buf_create(c, &ch->b, bytes, false);
    if (rc)
        return rc;
    unsigned char *tmp = malloc(rows * row_dev);
    unsigned char *out = g > 1 ? calloc(1, (size_t)bytes) : tmp;
    if (!tmp || !out) {
        free(tmp);
        if (out != tmp)
            free(out);
        return fail(c, ENOMEM, "out of memory");
    }
    rc = convert_rows(c, w, vw->fmt, ch->row0, ch->rows, ch->row0, ch->rows, tmp);
    if (!rc && g > 1) {
        size_t u = wfmt_unit(vw->fmt), nu = qb / u;
        for (size_t r = 0; r < rows; r++)
            for (size_t k = 0; k < nu; k++)
                memcpy(out + ((r / g) * g * nu + k * g + r % g) * u, tmp + r * qb + k * u, u);
        memcpy(out + padded * qb, tmp + rows * qb, rows * sb);
    }
    if (!rc && ch->b.map) {     /* unified memory: write in place */
        memcpy(ch->b.map, out, (size_t)bytes);
        uploaded(c, logical);
    }
    for (VkDeviceSize done = 0; !rc && !ch->b.map && done < bytes;) {
        VkDeviceSize n = bytes - done < c->staging.size ? bytes - done : c->staging.size, off;
        if (!(rc = staging_get(c, n, &off))) {
            memcpy((unsigned char *)c->staging.map + off, out + done, (size_t)n);
            if (!(rc = copy(c, c->staging.buf, off, ch->b.buf, done, n)))
                rc = flush(c);
        }
        done += n;
        uint64_t now = logical * done / bytes;   /* progress in vk_weight_bytes units */
        if (!rc)
            uploaded(c, now - reported);
        reported = now;
    }
    if (out != tmp)
        free(out);
    free(tmp);
    return rc;
}

/* The device copy of w, uploaded on first use. */
static int weight_get(struct vk_backend *c, const struct weight *w, struct vk_weight **out)
{
    if (!w->data || w->n_in <= 0 || w->n_out <= 0)
        return fail(c, EINVAL, "vulkan: empty weight");
    if (c->wt_n * 2 >= c->wt_cap) {
        int rc = wt_grow(c);
        if (rc)
            return rc;
    }
    size_t slot = wt_slot(c, w->data, w->n_in, w->n_out);
    if (c->wt[slot]) {
        *out = c->wt[slot];
        return 0;
    }
    bool vector = w->n_out == 1;
    enum wfmt fmt = wfmt_of(w->type, vector);
    int64_t mult = fmt == WFMT_F32 || fmt == WFMT_F16 ? 4 : 32;
    if (!vector && w->n_in % mult)
        return fail(c, ENOTSUP, "vulkan: rows of %lld values (not a multiple of %lld)",
                    (long long)w->n_in, (long long)mult);
    size_t row_dev = wfmt_row_bytes(fmt, (size_t)w->n_in);
    VkDeviceSize limit = c->max_range;
    if (c->desc.max_alloc && c->desc.max_alloc < limit)
        limit = c->desc.max_alloc;
    if (c->weight_range && c->weight_range < limit)
        limit = c->weight_range;
    if (row_dev > limit)
        return fail(c, ENOTSUP, "vulkan: one row of %zu bytes exceeds the device's buffer range",
                    row_dev);
    int64_t group = vector ? 1 : WEIGHT_GROUP;
    int64_t per = (int64_t)(limit / row_dev) / group * group;
    if (per < 1)
        return fail(c, ENOTSUP, "vulkan: rows of %zu bytes exceed the device's buffer range", row_dev);
    int n_chunks = (int)((w->n_out + per - 1) / per);
    struct vk_weight *vw = malloc(sizeof *vw);
    if (!vw)
        return fail(c, ENOMEM, "out of memory");
    struct vk_weight nw = {.key = w->data, .fmt = fmt, .type = w->type, .group = (int)group,
                           .n_in = w->n_in, .n_out = w->n_out,
                           .n_chunks = n_chunks, .chunks = calloc((size_t)n_chunks, sizeof(struct wchunk))};
    if (!nw.chunks) {
        free(vw);
        return fail(c, ENOMEM, "out of memory");
    }
    int rc = 0;
    for (int i = 0; !rc && i < n_chunks; i++) {
        struct wchunk *ch = &nw.chunks[i];
        ch->row0 = (int64_t)i * per;
        ch->rows = w->n_out - ch->row0 < per ? w->n_out - ch->row0 : per;
        rc = upload_chunk(c, w, &nw, ch, row_dev);
    }
    if (rc) {
        for (int i = 0; i < n_chunks; i++)
            buf_free(c, &nw.chunks[i].b);
        free(nw.chunks);
        free(vw);
        return rc;
    }
    *vw = nw;
    c->wt[slot] = vw;
    c->wt_n++;
    *out = vw;
    return 0;
}

uint64_t vk_weight_bytes(enum quant_type t, int64_t n, bool vector)
{
    if (n <= 0)
        return 0;
    return wfmt_row_bytes(wfmt_of(t, vector), (size_t)n);
}

uint64_t vk_scratch_bytes(int64_t tokens, int64_t floats_per_token)
{
    return STAGING_SIZE + (uint64_t)tokens * (uint64_t)floats_per_token * 4 + ARENA_BLOCK;
}

uint64_t vk_device_budget(const struct vk_device_desc *d)
{
    uint64_t best = 0, budget = 0;
    for (int h = 0; h < d->n_heaps; h++)
        if (d->heap_device_local[h] && d->heap_size[h] >= best) {
            best = d->heap_size[h];
            budget = d->heap_budget[h];
        }
    return budget ? budget : best / 5 * 4;
}

int vk_backend_upload(struct backend *b, const struct weight *w, char *err, size_t errlen)
{
    struct vk_backend *c = vb(b);
    struct vk_weight *vw;
    int rc = 0;
    if (w->n_exp > 0) {     /* every expert, each a weight of its own */
        for (int64_t e = 0; !rc && e < w->n_exp; e++) {
            struct weight we = *w;
            we.data = (const unsigned char *)w->data + (size_t)e * w->exp_bytes;
            we.n_exp = 0;
            rc = weight_get(c, &we, &vw);
        }
    } else {
        rc = weight_get(c, w, &vw);
    }
    if (rc)
        snprintf(err, errlen, "%s", c->err);
    return rc;
}

void vk_backend_drop_weights(struct backend *b)
{
    struct vk_backend *c = vb(b);
    if (c->recording)
        flush(c);
    for (size_t i = 0; i < c->wt_cap; i++) {
        if (!c->wt[i])
            continue;
        for (int j = 0; j < c->wt[i]->n_chunks; j++)
            buf_free(c, &c->wt[i]->chunks[j].b);
        free(c->wt[i]->chunks);
        free(c->wt[i]);
    }
    free(c->wt);
    c->wt = NULL;
    c->wt_cap = c->wt_n = 0;
}

/* ---- arena ---- */

/* need bytes (a multiple of 256) of the activation arena: block and float
 * offset; NULL-free failure as an errno. */
static int arena_take(struct vk_backend *c, VkDeviceSize need, int *block, uint32_t *off)
{
    if (need > c->max_range)
        return fail(c, ENOMEM, "vulkan: an activation of %llu bytes exceeds the buffer range",
                    (unsigned long long)need);
    while (c->cur_block < c->n_blocks && c->cur_used + need > c->blocks[c->cur_block].size) {
        c->cur_block++;
        c->cur_used = 0;
    }
    if (c->cur_block == c->n_blocks) {
        struct vk_buf *nb = realloc(c->blocks, (size_t)(c->n_blocks + 1) * sizeof *nb);
        if (!nb)
            return fail(c, ENOMEM, "out of memory");
        c->blocks = nb;
        VkDeviceSize size = need > ARENA_BLOCK ? need : ARENA_BLOCK;
        if (size > c->max_range)
            size = c->max_range;
        int rc = buf_create(c, &c->blocks[c->n_blocks], size, false);
        if (rc)
            return rc;
        c->n_blocks++;
        c->cur_used = 0;
    }
    *block = c->cur_block;
    *off = (uint32_t)(c->cur_used / 4);
    c->cur_used += need;
    return 0;
}

static size_t view_slot(const struct vk_view *t, size_t cap, int block, VkDeviceSize off,
                        VkDeviceSize size)
{
    uint64_t h = ((uint64_t)block * 0x9E3779B97F4A7C15ull) ^ (off * 0xff51afd7ed558ccdull) ^ size;
    size_t i = (size_t)(h ^ (h >> 31)) & (cap - 1);
    while (t[i].buf && (t[i].block != block || t[i].off != off || t[i].size != size))
        i = (i + 1) & (cap - 1);
    return i;
}

static void views_free(struct vk_backend *c)
{
    for (size_t i = 0; i < c->views_cap; i++)
        if (c->views[i].buf)
            vkDestroyBuffer(c->dev, c->views[i].buf, NULL);
    free(c->views);
    c->views = NULL;
    c->views_cap = c->views_n = 0;
}

/* The buffer over bytes [off, off + size) of arena block `block`, made on
 * first use; VK_NULL_HANDLE when the memory cannot be bound there (the
 * caller then uses the block's buffer). */
static VkBuffer view_get(struct vk_backend *c, int block, VkDeviceSize off, VkDeviceSize size)
{
    if (c->views_n * 2 >= c->views_cap) {
        size_t cap = c->views_cap ? c->views_cap * 2 : 1024;
        struct vk_view *t = calloc(cap, sizeof *t);
        if (!t)
            return VK_NULL_HANDLE;
        for (size_t i = 0; i < c->views_cap; i++)
            if (c->views[i].buf)
                t[view_slot(t, cap, c->views[i].block, c->views[i].off, c->views[i].size)] = c->views[i];
        free(c->views);
        c->views = t;
        c->views_cap = cap;
    }
    size_t i = view_slot(c->views, c->views_cap, block, off, size);
    if (c->views[i].buf)
        return c->views[i].buf;
    if (c->view_align && off % c->view_align)
        return VK_NULL_HANDLE;
    VkBuffer buf;
    if (storage_buffer(c, size, &buf) != VK_SUCCESS)
        return VK_NULL_HANDLE;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(c->dev, buf, &req);
    c->view_align = req.alignment;
    if (off % req.alignment || off + req.size > c->blocks[block].size ||
        vkBindBufferMemory(c->dev, buf, c->blocks[block].mem, off) != VK_SUCCESS) {
        vkDestroyBuffer(c->dev, buf, NULL);
        return VK_NULL_HANDLE;
    }
    c->views[i] = (struct vk_view){block, off, size, buf};
    c->views_n++;
    return buf;
}

/* Where t's shaders find it: its own view of the block when one can be
 * made, else the block itself. */
static void tensor_bind(struct vk_backend *c, struct vk_tensor *t)
{
    VkDeviceSize bytes = (VkDeviceSize)t->t.ne0 * (VkDeviceSize)t->t.ne1 * 4;
    t->buf = view_get(c, t->block, (VkDeviceSize)t->off * 4, bytes);
    t->rel = 0;
    if (!t->buf) {
        t->buf = c->blocks[t->block].buf;
        t->rel = t->off;
    }
}

static struct vk_tensor *tensor_new(struct vk_backend *c)
{
    int ci = c->n_tensors / TENSOR_CHUNK;
    if (ci >= MAX_TENSOR_CHUNKS)
        return NULL;
    if (!c->tchunks[ci] && !(c->tchunks[ci] = calloc(TENSOR_CHUNK, sizeof(struct vk_tensor))))
        return NULL;
    return &c->tchunks[ci][c->n_tensors++ % TENSOR_CHUNK];
}

static struct btensor *vk_alloc(struct backend *b, int64_t ne0, int64_t ne1)
{
    struct vk_backend *c = vb(b);
    size_t bytes;
    if (ne0 <= 0 || ne1 <= 0 ||
        ckd_mul_size(&bytes, (size_t)ne0, (size_t)ne1) || ckd_mul_size(&bytes, bytes, 4))
        return NULL;
    VkDeviceSize need = ((VkDeviceSize)bytes + 255) & ~(VkDeviceSize)255;
    int block;
    uint32_t off;
    if (arena_take(c, need, &block, &off))
        return NULL;
    struct vk_tensor *t = tensor_new(c);
    if (!t)
        return NULL;
    t->t.ne0 = ne0;
    t->t.ne1 = ne1;
    t->t.data = NULL;
    t->block = block;
    t->off = off;
    tensor_bind(c, t);
    return &t->t;
}

static void vk_reset(struct backend *b)
{
    struct vk_backend *c = vb(b);
    c->n_tensors = 0;
    c->cur_block = 0;
    c->cur_used = 0;
    if (c->recording)       /* a pass starts: its segments from the first */
        c->restart = true;
    else
        c->cur_seg = 0;
    if (c->views_n > VIEWS_MAX) {   /* passes of many shapes: no tensor is alive now */
        cache_drop(c);
        views_free(c);
    }
}

static struct btensor *vk_rows(struct backend *b, const struct btensor *src, int64_t row0, int64_t n)
{
    struct vk_backend *c = vb(b);
    if (row0 < 0 || n <= 0 || row0 + n > src->ne1)
        return NULL;
    struct vk_tensor *t = tensor_new(c);
    if (!t)
        return NULL;
    *t = *vt(src);
    t->t.ne1 = n;
    t->off += (uint32_t)(row0 * src->ne0);
    VkBuffer own = view_get(c, t->block, (VkDeviceSize)t->off * 4,
                            (VkDeviceSize)n * (VkDeviceSize)src->ne0 * 4);
    if (own) {
        t->buf = own;
        t->rel = 0;
    } else {        /* not aligned for a view of its own: inside src's */
        t->rel += (uint32_t)(row0 * src->ne0);
    }
    return &t->t;
}

static VkBuffer tbuf(struct vk_backend *c, const struct btensor *t)
{
    (void)c;
    return vt(t)->buf;
}
static uint32_t toff(const struct btensor *t) { return vt(t)->rel; }

/* ---- operations ---- */

static int vk_get_rows(struct backend *b, struct btensor *dst, const struct weight *w,
                       const int32_t *ids, int64_t n)
{
    struct vk_backend *c = vb(b);
    const struct quant_traits *tr = quant_traits(w->type);
    if (dst->ne0 != w->n_in || dst->ne1 < n || !tr)
        return fail(c, EINVAL, "get_rows: shape mismatch");
    size_t row = (size_t)w->n_in * 4;
    int64_t per = (int64_t)(c->staging.size / row);
    for (int64_t i = 0; i < n; i += per) {
        int64_t m = n - i < per ? n - i : per;
        VkDeviceSize off;
        int rc = staging_get(c, (VkDeviceSize)m * row, &off);
        if (rc)
            return rc;
        for (int64_t j = 0; j < m; j++) {
            int32_t id = ids[i + j];
            if (id < 0 || id >= w->n_out)
                return fail(c, EINVAL, "get_rows: id %d out of range", id);
            tr->dequantize((const unsigned char *)w->data + (size_t)id * w->row_bytes,
                           (float *)((unsigned char *)c->staging.map + off) + (size_t)j * (size_t)w->n_in,
                           w->n_in);
        }
        if ((rc = copy(c, c->staging.buf, off, tbuf(c, dst),
                       ((VkDeviceSize)toff(dst) + (VkDeviceSize)i * (VkDeviceSize)w->n_in) * 4,
                       (VkDeviceSize)m * row)))
            return rc;
    }
    return 0;
}

static int vk_rms_norm(struct backend *b, struct btensor *dst, const struct btensor *src,
                       const struct weight *g, float eps)
{
    struct vk_backend *c = vb(b);
    if (dst->ne0 != src->ne0 || dst->ne1 < src->ne1 || g->n_in != src->ne0)
        return fail(c, EINVAL, "rms_norm: shape mismatch");
    struct vk_weight *vg;
    int rc = weight_get(c, g, &vg);
    if (rc)
        return rc;
    struct vk_push p = {.u = {(uint32_t)src->ne0, toff(src), toff(dst), 0}, .f = {eps}};
    VkBuffer bufs[N_BINDINGS] = {tbuf(c, src), tbuf(c, dst), vg->chunks[0].b.buf};
    return dispatch(c, VK_SHADER_RMS_NORM, bufs, &p, (uint32_t)src->ne1, 1, 1);
}

/* Where a matmul reads and writes: x rows of x_stride floats from x_off
 * (head j adds j*x_head), dst rows of d_stride floats from d_off (head j
 * adds j*d_head). */
struct mm_io {
    VkBuffer xb, db;
    uint32_t x_off, x_stride, d_off, d_stride;
    int64_t n_tok;
};

static const enum vk_shader mm_first[] = {
    [WFMT_F32] = VK_SHADER_MATMUL_F32_1, [WFMT_F16] = VK_SHADER_MATMUL_F16_1,
    [WFMT_Q8] = VK_SHADER_MATMUL_Q8_1,   [WFMT_Q6] = VK_SHADER_MATMUL_Q6_1,
    [WFMT_Q4] = VK_SHADER_MATMUL_Q4_1,
};

/* The integer dot-product path (shaders/matmul_int.comp) takes every
 * product, prompt and generation alike, of the formats whose device layout
 * holds small integers: Q8_0, Q6_K and the Q4 types.  x is quantized once
 * per product (shaders/quant_x.comp, in the activation arena) the way
 * llama.cpp's CPU backend rounds activations for the weight type: Q8_0
 * blocks for Q8_0 and Q4_0, Q8_1 for Q4_1, Q8_K superblocks of 256 for the
 * K-quants.  One rounding for every product of a pass matters: with the
 * prompt on the float tile and the generated tokens on int8 activations,
 * td-q8_0's step 12 of p1 re-routed an expert (a near tie in layer 2's
 * router) and its logits moved 3.5 from the CPU backend's; with the
 * prompt rounded too, p1 and p3 (17 and 75 prompt tokens) give the CPU
 * backend's logits bit for bit on lavapipe, and tq-q8_0, tq-q4_1 and
 * tq-q4_k_m its worst difference from the reference.  Every head's slice
 * must start on a block (of 256 for the K-quants). */
struct mm_xq {
    VkBuffer buf;
    uint32_t q_off, s_off, blocks;  /* words; blocks of 32 per token */
};

/* quant_x.comp's activation format for a weight type: 0 Q8_0, 1 Q8_1,
 * 2 Q8_K (blocks of 256), 3 Q8_0 with integer sums (Q4_0) */
static uint32_t mm_xfmt(enum quant_type t)
{
    switch (t) {
    case QUANT_TYPE_Q4_0: return 3;
    case QUANT_TYPE_Q4_1: return 1;
    case QUANT_TYPE_Q4_K: case QUANT_TYPE_Q6_K: return 2;
    default: return 0;
    }
}

static bool mm_int_fits(const struct vk_backend *c, const struct vk_weight *vw, uint32_t n_head,
                        uint32_t x_head)
{
    uint32_t blk = mm_xfmt(vw->type) == 2 ? 256 : 32;
    return c->int_dot && (vw->fmt == WFMT_Q8 || vw->fmt == WFMT_Q6 || vw->fmt == WFMT_Q4) &&
           vw->n_in % blk == 0 && (n_head <= 1 || x_head % blk == 0);
}

/* Quantizes the io's n_tok tokens of x: per token the span every head
 * reads, (n_head - 1) * x_head + n_in values. */
static int mm_quantize(struct vk_backend *c, const struct vk_weight *vw, const struct mm_io *io,
                       uint32_t n_head, uint32_t x_head, struct mm_xq *out)
{
    uint64_t span = (uint64_t)(n_head > 1 ? n_head - 1 : 0) * x_head + (uint64_t)vw->n_in;
    uint64_t n = (uint64_t)io->n_tok, words = n * (span / 4 + span / 32 * 2);
    if (words > UINT32_MAX / 8 || n > 65535)
        return fail(c, ENOTSUP, "vulkan: an activation of %llu x %llu values is too large",
                    (unsigned long long)n, (unsigned long long)span);
    int block;
    uint32_t off;
    int rc = arena_take(c, ((VkDeviceSize)words * 4 + 255) & ~(VkDeviceSize)255, &block, &off);
    if (rc)
        return rc;
    out->buf = c->blocks[block].buf;
    out->q_off = off;
    out->s_off = off + (uint32_t)(n * span / 4);
    out->blocks = (uint32_t)(span / 32);
    struct vk_push p = {.u = {(uint32_t)span, (uint32_t)n, io->x_off, io->x_stride, out->q_off,
                              out->s_off, vw->fmt == WFMT_Q4, mm_xfmt(vw->type)}};
    VkBuffer bufs[N_BINDINGS] = {VK_NULL_HANDLE, io->xb, out->buf};
    return dispatch(c, VK_SHADER_QUANT_X, bufs, &p, groups((int64_t)(span / 32), 64), (uint32_t)n, 1);
}

/* The int8 products of one chunk (p: its float-path push constants):
 * groups of eight tokens, and one or two left over one token an
 * invocation. */
static int mm_run_int(struct vk_backend *c, const struct vk_weight *vw, const struct mm_io *io,
                      const struct mm_xq *xq, const struct vk_push *p, VkBuffer *bufs,
                      uint32_t gx, uint32_t n_head, uint32_t x_head)
{
    static const enum vk_shader s1[] = {[WFMT_Q8] = VK_SHADER_MATMUL_INT_Q8,
                                        [WFMT_Q6] = VK_SHADER_MATMUL_INT_Q6,
                                        [WFMT_Q4] = VK_SHADER_MATMUL_INT_Q4};
    static const enum vk_shader s8[] = {[WFMT_Q8] = VK_SHADER_MATMUL_INT_Q8_8,
                                        [WFMT_Q6] = VK_SHADER_MATMUL_INT_Q6_8,
                                        [WFMT_Q4] = VK_SHADER_MATMUL_INT_Q4_8};
    int64_t n_tok = io->n_tok, rem = n_tok % 8, n8 = rem >= 3 ? n_tok : n_tok - rem;
    bufs[1] = xq->buf;
    struct vk_push q = *p;
    q.u[11] = xq->blocks;
    q.u[13] = x_head / 32;
    q.f[0] = vw->type == QUANT_TYPE_Q4_0;
    int rc = 0;
    for (int part = 0; !rc && part < 2; part++) {
        int64_t t0 = part ? n8 : 0, nt = part ? n_tok - n8 : n8;
        if (!nt)
            continue;
        q.u[2] = (uint32_t)nt;
        q.u[4] = xq->q_off + (uint32_t)t0 * xq->blocks * 8;
        q.u[5] = io->d_off + (uint32_t)t0 * io->d_stride;
        q.u[10] = xq->s_off + (uint32_t)t0 * xq->blocks * 2;
        rc = part ? dispatch(c, s1[vw->fmt], bufs, &q, gx, (uint32_t)nt, n_head)
                  : dispatch(c, s8[vw->fmt], bufs, &q, gx, (uint32_t)((nt + 7) / 8), n_head);
    }
    return rc;
}

/* dst[t, col0 + o] = W[row_a + o] . x[t] (+ bias) for o < row_b - row_a; with
 * n_head > 1 (row_a = 0, one chunk) the same for every head j at once: rows
 * j*row_b.., x and dst moved by the io's head strides. */
static int mm_run(struct vk_backend *c, const struct vk_weight *vw, const struct vk_weight *vbias,
                  const struct mm_io *io, int64_t row_a, int64_t row_b, uint32_t col0,
                  uint32_t n_head, uint32_t x_head, uint32_t d_head)
{
    if ((io->x_off | io->x_stride | x_head) % 4)
        return fail(c, ENOTSUP, "vulkan: matmul input not aligned to 4 floats (offset %u, stride %u)",
                    io->x_off + x_head, io->x_stride);
    enum vk_shader s1 = (enum vk_shader)(mm_first[vw->fmt] + (c->shuffle ? VK_SHADER_SHUFFLE : 0));
    enum vk_shader s8 = (enum vk_shader)(s1 + 1);
    int64_t n_tok = io->n_tok, full = n_tok / 8 * 8, rem = n_tok - full;
    struct mm_xq xq = {0};
    bool use_int = n_tok > 0 && mm_int_fits(c, vw, n_head, x_head);
    if (use_int) {
        int rc = mm_quantize(c, vw, io, n_head, x_head, &xq);
        if (rc)
            return rc;
    }
    for (int i = 0; i < vw->n_chunks; i++) {
        const struct wchunk *ch = &vw->chunks[i];
        int64_t a = row_a > ch->row0 ? row_a : ch->row0;
        int64_t e = row_b < ch->row0 + ch->rows ? row_b : ch->row0 + ch->rows;
        if (a >= e)
            continue;
        struct vk_push p = {.u = {(uint32_t)vw->n_in, (uint32_t)(e - a), (uint32_t)n_tok,
                                  col0 + (uint32_t)(a - row_a), io->x_off, io->d_off, io->d_stride,
                                  (uint32_t)vw->group,
                                  vbias != NULL, ch->scale_off, 0, io->x_stride,
                                  (uint32_t)(a - ch->row0), x_head, d_head, (uint32_t)row_b}};
        VkBuffer bufs[N_BINDINGS] = {ch->b.buf, io->xb, io->db,
                                     vbias ? vbias->chunks[0].b.buf : VK_NULL_HANDLE};
        uint32_t gx = groups(e - a, 64);
        int rc;
        if (use_int) {
            if ((rc = mm_run_int(c, vw, io, &xq, &p, bufs, gx, n_head, x_head)))
                return rc;
            continue;
        }
        if (full && (rc = dispatch(c, s8, bufs, &p, gx, (uint32_t)(full / 8), n_head)))
            return rc;
        p.u[10] = (uint32_t)full;
        if (rem && (rc = dispatch(c, rem >= 3 ? s8 : s1, bufs, &p, gx,
                                  rem >= 3 ? 1 : (uint32_t)rem, n_head)))
            return rc;
    }
    return 0;
}

static int vk_matmul(struct backend *b, struct btensor *dst, const struct weight *w,
                     const struct weight *bias, const struct btensor *src)
{
    struct vk_backend *c = vb(b);
    if (src->ne0 != w->n_in || dst->ne0 != w->n_out || dst->ne1 < src->ne1)
        return fail(c, EINVAL, "matmul: shape mismatch (%lld x %lld weight, %lld input)",
                    (long long)w->n_out, (long long)w->n_in, (long long)src->ne0);
    struct vk_weight *vw, *vbias = NULL;
    int rc = 0;
    if (bias && bias->t)
        rc = weight_get(c, bias, &vbias);
    if (!rc)
        rc = weight_get(c, w, &vw);
    if (rc)
        return rc;
    struct mm_io io = {tbuf(c, src), tbuf(c, dst), toff(src), (uint32_t)src->ne0, toff(dst),
                       (uint32_t)dst->ne0, src->ne1};
    return mm_run(c, vw, vbias, &io, 0, w->n_out, 0, 1, 0, 0);
}

static int vk_matmul_heads(struct backend *b, struct btensor *dst, int64_t dst_stride,
                           const struct weight *w, int n_head, const struct btensor *src,
                           int64_t src_stride)
{
    struct vk_backend *c = vb(b);
    if (n_head <= 0 || w->n_out % n_head || dst->ne1 < src->ne1 ||
        (n_head - 1) * src_stride + w->n_in > src->ne0 ||
        (n_head - 1) * dst_stride + w->n_out / n_head > dst->ne0)
        return fail(c, EINVAL, "matmul_heads: shape mismatch");
    struct vk_weight *vw;
    int rc = weight_get(c, w, &vw);
    if (rc)
        return rc;
    int64_t r = w->n_out / n_head;
    struct mm_io io = {tbuf(c, src), tbuf(c, dst), toff(src), (uint32_t)src->ne0, toff(dst),
                       (uint32_t)dst->ne0, src->ne1};
    if (vw->n_chunks == 1)      /* every head in one dispatch */
        return mm_run(c, vw, NULL, &io, 0, r, 0, (uint32_t)n_head, (uint32_t)src_stride,
                      (uint32_t)dst_stride);
    for (int j = 0; !rc && j < n_head; j++) {
        struct mm_io hj = io;
        hj.x_off += (uint32_t)(j * src_stride);
        hj.d_off += (uint32_t)(j * dst_stride);
        rc = mm_run(c, vw, NULL, &hj, j * r, (j + 1) * r, 0, 1, 0, 0);
    }
    return rc;
}

/* The expert views of a stacked weight: expert e's matrix as a weight. */
static struct weight expert_view(const struct weight *w, int64_t e)
{
    struct weight we = *w;
    we.data = (const unsigned char *)w->data + (size_t)e * w->exp_bytes;
    we.n_exp = 0;
    return we;
}

static int vk_moe(struct backend *b, struct btensor *dst, const struct weight *gate,
                  const struct weight *up, const struct weight *down, const struct btensor *src,
                  const int32_t *experts, const float *weights, int n_used)
{
    struct vk_backend *c = vb(b);
    int64_t n_tok = src->ne1, ne = src->ne0, ff = gate->n_out, n_exp = gate->n_exp;
    if (n_used <= 0 || n_exp <= 0 || up->n_exp != n_exp || down->n_exp != n_exp ||
        gate->n_in != ne || up->n_in != ne || up->n_out != ff || down->n_in != ff ||
        down->n_out != dst->ne0 || dst->ne1 < n_tok)
        return fail(c, EINVAL, "moe: shape mismatch");
    size_t m, words;
    if (ckd_mul_size(&m, (size_t)n_tok, (size_t)n_used) || ckd_mul_size(&words, m, 3))
        return fail(c, EINVAL, "moe: too many rows");
    /* group the (token, slot) pairs by expert: a counting sort */
    int64_t *start = calloc((size_t)n_exp + 1, sizeof *start);
    uint32_t *idx = malloc(words * sizeof *idx);
    if (!start || !idx) {
        free(start);
        free(idx);
        return fail(c, ENOMEM, "out of memory");
    }
    int rc = 0;
    for (size_t j = 0; j < m; j++) {
        if (experts[j] < 0 || experts[j] >= n_exp) {
            rc = fail(c, EINVAL, "moe: expert %d out of range", experts[j]);
            goto out;
        }
        start[experts[j] + 1]++;
    }
    for (int64_t e = 0; e < n_exp; e++)
        start[e + 1] += start[e];
    /* idx: [0, m) the source token of each grouped row, [m, 2m) the grouped
     * row of each (token, slot), [2m, 3m) its weight's bits */
    {
        int64_t *fill = malloc((size_t)n_exp * sizeof *fill);
        if (!fill) {
            rc = fail(c, ENOMEM, "out of memory");
            goto out;
        }
        memcpy(fill, start, (size_t)n_exp * sizeof *fill);
        for (size_t j = 0; j < m; j++) {
            int64_t pos = fill[experts[j]]++;
            idx[pos] = (uint32_t)(j / (size_t)n_used);
            idx[m + j] = (uint32_t)pos;
            memcpy(&idx[2 * m + j], &weights[j], 4);
        }
        free(fill);
    }
    /* upload the chosen experts first: an upload flushes the staging ring */
    for (int64_t e = 0; !rc && e < n_exp; e++) {
        if (start[e + 1] == start[e])
            continue;
        const struct weight *ws[3] = {gate, up, down};
        for (int k = 0; !rc && k < 3; k++) {
            struct weight we = expert_view(ws[k], e);
            struct vk_weight *vw;
            rc = weight_get(c, &we, &vw);
        }
    }
    if (rc)
        goto out;
    VkDeviceSize off;
    int bx, bg, bu, by;
    uint32_t ox, og, ou, oy;
    size_t fb = m * 4;
    if ((rc = arena_take(c, ((VkDeviceSize)(fb * (size_t)ne) + 255) & ~(VkDeviceSize)255, &bx, &ox)) ||
        (rc = arena_take(c, ((VkDeviceSize)(fb * (size_t)ff) + 255) & ~(VkDeviceSize)255, &bg, &og)) ||
        (rc = arena_take(c, ((VkDeviceSize)(fb * (size_t)ff) + 255) & ~(VkDeviceSize)255, &bu, &ou)) ||
        (rc = arena_take(c, ((VkDeviceSize)(fb * (size_t)dst->ne0) + 255) & ~(VkDeviceSize)255, &by,
                         &oy)) ||
        (rc = staging_get(c, (VkDeviceSize)words * 4, &off)))
        goto out;
    memcpy((unsigned char *)c->staging.map + off, idx, words * 4);
    uint32_t w0 = (uint32_t)(off / 4), gy = m < 65535 ? (uint32_t)m : 65535;
    struct vk_push p = {.u = {(uint32_t)ne, (uint32_t)m, toff(src), ox, w0}};
    VkBuffer gb[N_BINDINGS] = {tbuf(c, src), c->blocks[bx].buf, c->staging.buf};
    if ((rc = dispatch(c, VK_SHADER_MOE_GATHER, gb, &p, groups(ne, 64), gy, groups((int64_t)m, 65535))))
        goto out;
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t e = 0; e < n_exp; e++) {
            int64_t r0 = start[e], n = start[e + 1] - start[e];
            if (!n)
                continue;
            for (int k = pass ? 2 : 0; k < (pass ? 3 : 2); k++) {
                const struct weight *w = k == 0 ? gate : k == 1 ? up : down;
                struct weight we = expert_view(w, e);
                struct vk_weight *vw;
                if ((rc = weight_get(c, &we, &vw)))
                    goto out;
                struct mm_io io = {
                    .xb = c->blocks[pass ? bg : bx].buf,
                    .x_off = (pass ? og : ox) + (uint32_t)(r0 * w->n_in),
                    .x_stride = (uint32_t)w->n_in,
                    .db = c->blocks[k == 0 ? bg : k == 1 ? bu : by].buf,
                    .d_off = (k == 0 ? og : k == 1 ? ou : oy) + (uint32_t)(r0 * w->n_out),
                    .d_stride = (uint32_t)w->n_out,
                    .n_tok = n,
                };
                if ((rc = mm_run(c, vw, NULL, &io, 0, w->n_out, 0, 1, 0, 0)))
                    goto out;
            }
        }
        if (pass == 0) {    /* g = silu(g) * u over every grouped row */
            struct vk_push q = {.u = {(uint32_t)(m * (size_t)ff), og, ou, og}};
            VkBuffer eb[N_BINDINGS] = {c->blocks[bg].buf, c->blocks[bu].buf, c->blocks[bg].buf};
            uint32_t g = groups((int64_t)(m * (size_t)ff), 256);
            if ((rc = dispatch(c, VK_SHADER_SWIGLU, eb, &q, g < 65535 ? g : 65535, 1, 1)))
                goto out;
        }
    }
    struct vk_push q = {.u = {(uint32_t)dst->ne0, (uint32_t)n_tok, oy, toff(dst), w0 + (uint32_t)m,
                              w0 + 2 * (uint32_t)m, (uint32_t)n_used}};
    VkBuffer cb[N_BINDINGS] = {c->blocks[by].buf, tbuf(c, dst), c->staging.buf};
    rc = dispatch(c, VK_SHADER_MOE_COMBINE, cb, &q, groups(dst->ne0, 64),
                  n_tok < 65535 ? (uint32_t)n_tok : 65535, groups(n_tok, 65535));
out:
    free(start);
    free(idx);
    return rc;
}

/* Rows row0 .. row0+n-1 of t between host memory and the device, through
 * the staging ring: from host_in when it is set (a write, copied when the
 * recorded work runs), else into host_out (a read: each piece waits for
 * the device). */
static int transfer_rows(struct vk_backend *c, const struct btensor *t, int64_t row0, int64_t n,
                         float *host_out, const float *host_in)
{
    const char *what = host_in ? "write" : "read";
    if (row0 < 0 || n < 0 || row0 + n > t->ne1)
        return fail(c, EINVAL, "%s: rows out of range", what);
    size_t row = (size_t)t->ne0 * 4;
    int64_t per = (int64_t)(c->staging.size / row);
    if (per < 1)
        return fail(c, ENOTSUP, "%s: a row exceeds the staging buffer", what);
    for (int64_t i = 0; i < n; i += per) {
        int64_t m = n - i < per ? n - i : per;
        VkDeviceSize off, dev = ((VkDeviceSize)toff(t) + (VkDeviceSize)(row0 + i) *
                                                       (VkDeviceSize)t->ne0) * 4;
        size_t host = (size_t)i * (size_t)t->ne0, bytes = (size_t)m * row;
        int rc = staging_get(c, (VkDeviceSize)bytes, &off);
        if (rc)
            return rc;
        if (host_in) {
            memcpy((unsigned char *)c->staging.map + off, host_in + host, bytes);
            if ((rc = copy(c, c->staging.buf, off, tbuf(c, t), dev, bytes)))
                return rc;
            continue;
        }
        if ((rc = copy(c, tbuf(c, t), dev, c->staging.buf, off, bytes)) || (rc = flush(c)))
            return rc;
        memcpy(host_out + host, (unsigned char *)c->staging.map + off, bytes);
    }
    return 0;
}

static int vk_write(struct backend *b, struct btensor *dst, int64_t row0, int64_t n, const float *in)
{
    return transfer_rows(vb(b), dst, row0, n, NULL, in);
}

static int vk_copy_cols(struct backend *b, struct btensor *dst, int64_t dst_off, int64_t dst_stride,
                        const struct btensor *src, int64_t src_off, int64_t src_stride,
                        int64_t width, int64_t n_group)
{
    struct vk_backend *c = vb(b);
    int64_t n_tok = src->ne1;
    if (width <= 0 || n_group <= 0 || dst->ne1 < n_tok || dst_off < 0 || src_off < 0 ||
        dst_stride < 0 || src_stride < 0 ||
        dst_off + (n_group - 1) * dst_stride + width > dst->ne0 ||
        src_off + (n_group - 1) * src_stride + width > src->ne0)
        return fail(c, EINVAL, "copy_cols: columns out of range");
    struct vk_push p = {.u = {(uint32_t)width, (uint32_t)n_group, (uint32_t)n_tok,
                              toff(src) + (uint32_t)src_off, (uint32_t)src_stride, (uint32_t)src->ne0,
                              toff(dst) + (uint32_t)dst_off, (uint32_t)dst_stride, (uint32_t)dst->ne0}};
    VkBuffer bufs[N_BINDINGS] = {tbuf(c, src), tbuf(c, dst)};
    return dispatch(c, VK_SHADER_COPY_COLS, bufs, &p, groups(width * n_group, 64),
                    n_tok < 65535 ? (uint32_t)n_tok : 65535, groups(n_tok, 65535));
}

static int vk_rope(struct backend *b, struct btensor *x, int head_dim, const struct rope_params *p,
                   const int32_t *pos)
{
    struct vk_backend *c = vb(b);
    if (head_dim <= 0 || x->ne0 % head_dim || p->dim_off < 0 || p->n_rot + p->dim_off > head_dim ||
        p->n_rot % 2 || p->n_rot < 2)
        return fail(c, EINVAL, "rope: bad head size");
    int64_t n = x->ne1;
    for (int64_t t = 1; t < n; t++)
        if (pos[t] != pos[0] + t)
            return fail(c, EINVAL, "rope: positions must be consecutive");
    int half = p->n_rot / 2;
    VkDeviceSize off;
    int rc = staging_get(c, (VkDeviceSize)n * (VkDeviceSize)half * 8, &off);
    if (rc)
        return rc;
    rope_cos_sin(p, pos[0], (int)n, (float *)((unsigned char *)c->staging.map + off));
    int64_t n_head = x->ne0 / head_dim;
    struct vk_push pc = {.u = {(uint32_t)half, (uint32_t)head_dim, (uint32_t)n_head, (uint32_t)x->ne0,
                               toff(x), p->mode == ROPE_MODE_NEOX, (uint32_t)(off / 4), (uint32_t)n,
                               (uint32_t)p->dim_off}};
    VkBuffer bufs[N_BINDINGS] = {tbuf(c, x), c->staging.buf};
    return dispatch(c, VK_SHADER_ROPE, bufs, &pc, groups(n * n_head * half, 64), 1, 1);
}

static void kv_free(struct vk_backend *c)
{
    for (int l = 0; c->kc && l < c->kv.n_layer; l++) {
        buf_free(c, &c->kc[l]);
        buf_free(c, &c->vc[l]);
    }
    free(c->kc);
    free(c->vc);
    c->kc = c->vc = NULL;
    c->kv.n_layer = 0;
}

static int vk_kv_init(struct backend *b, const struct kv_shape *s)
{
    struct vk_backend *c = vb(b);
    int rc = flush(c);
    if (rc)
        return rc;
    kv_free(c);
    if (s->type == KV_TYPE_F16 && ((s->k_width | s->v_width) & 1))
        return fail(c, ENOTSUP, "vulkan: an F16 KV cache needs even widths");
    if (s->n_layer <= 0 || s->n_ctx <= 0 || s->k_width <= 0 || s->v_width <= 0 ||
        (s->v_in_k && s->v_width > s->k_width))
        return fail(c, EINVAL, "vulkan: bad KV cache shape");
    size_t el = s->type == KV_TYPE_F16 ? 2 : 4;
    c->kc = calloc((size_t)s->n_layer, sizeof *c->kc);
    c->vc = calloc((size_t)s->n_layer, sizeof *c->vc);
    if (!c->kc || !c->vc) {
        free(c->kc);
        free(c->vc);
        c->kc = c->vc = NULL;
        return fail(c, ENOMEM, "out of memory");
    }
    c->kv = *s;
    for (int l = 0; l < s->n_layer; l++) {
        size_t kb, vbytes;
        if (ckd_mul_size(&kb, (size_t)s->n_ctx, (size_t)s->k_width) || ckd_mul_size(&kb, kb, el) ||
            ckd_mul_size(&vbytes, (size_t)s->n_ctx, (size_t)s->v_width) ||
            ckd_mul_size(&vbytes, vbytes, el) || kb > c->max_range || vbytes > c->max_range) {
            kv_free(c);
            return fail(c, ENOMEM, "vulkan: a KV cache of %d tokens exceeds the buffer range",
                        s->n_ctx);
        }
        if ((rc = buf_create(c, &c->kc[l], kb, false)) ||
            (!s->v_in_k && (rc = buf_create(c, &c->vc[l], vbytes, false)))) {
            kv_free(c);
            return rc == ENOMEM ? fail(c, rc, "vulkan: out of device memory for a KV cache of %d "
                                       "tokens", s->n_ctx) : rc;
        }
    }
    return 0;
}

static int vk_kv_store(struct backend *b, int layer, const struct btensor *k, const struct btensor *v,
                       int pos0)
{
    struct vk_backend *c = vb(b);
    if (layer < 0 || layer >= c->kv.n_layer || k->ne0 != c->kv.k_width ||
        (!c->kv.v_in_k && (!v || v->ne0 != c->kv.v_width || k->ne1 != v->ne1)))
        return fail(c, EINVAL, "kv_store: shape mismatch");
    if (pos0 < 0 || pos0 + k->ne1 > c->kv.n_ctx)
        return fail(c, ENOSPC, "the context is full (%d tokens)", c->kv.n_ctx);
    int rc = begin(c);
    if (rc)
        return rc;
    const struct btensor *src[2] = {k, v};
    const struct vk_buf *dst[2] = {&c->kc[layer], &c->vc[layer]};
    for (int m = 0; m < (c->kv.v_in_k ? 1 : 2); m++) {
        uint64_t n = (uint64_t)src[m]->ne0 * (uint64_t)src[m]->ne1;
        uint64_t d0 = (uint64_t)pos0 * (uint64_t)src[m]->ne0;
        if (c->kv.type == KV_TYPE_F32) {    /* a copy whose offsets are parameters, not recorded */
            int64_t w = src[m]->ne0, rows = src[m]->ne1;
            struct vk_push p = {.u = {(uint32_t)w, 1, (uint32_t)rows, toff(src[m]), 0, (uint32_t)w,
                                      (uint32_t)d0, 0, (uint32_t)w}};
            VkBuffer bufs[N_BINDINGS] = {tbuf(c, src[m]), dst[m]->buf};
            if ((rc = dispatch(c, VK_SHADER_COPY_COLS, bufs, &p, groups(w, 64),
                               rows < 65535 ? (uint32_t)rows : 65535, groups(rows, 65535))))
                return rc;
            continue;
        }
        struct vk_push p = {.u = {(uint32_t)(n / 2), toff(src[m]), 0, (uint32_t)(d0 / 2)}};
        VkBuffer bufs[N_BINDINGS] = {tbuf(c, src[m]), VK_NULL_HANDLE, dst[m]->buf};
        uint32_t g = groups((int64_t)(n / 2), 256);
        if ((rc = dispatch(c, VK_SHADER_TO_F16, bufs, &p, g < 65535 ? g : 65535, 1, 1)))
            return rc;
    }
    return 0;
}

static int vk_attention(struct backend *b, struct btensor *dst, const struct btensor *q, int layer,
                        int n_head, int n_head_kv, int head_dim, int v_dim, int pos0, float scale)
{
    struct vk_backend *c = vb(b);
    bool f16 = c->kv.type == KV_TYPE_F16;
    if (layer < 0 || layer >= c->kv.n_layer || n_head_kv <= 0 || n_head % n_head_kv ||
        q->ne0 != (int64_t)n_head * head_dim || dst->ne0 != (int64_t)n_head * v_dim ||
        (int64_t)n_head_kv * head_dim > c->kv.k_width || (int64_t)n_head_kv * v_dim > c->kv.v_width ||
        (f16 && ((head_dim | v_dim) & 1)))
        return fail(c, EINVAL, "attention: shape mismatch");
    if (pos0 < 0 || pos0 + q->ne1 > c->kv.n_ctx)
        return fail(c, ENOSPC, "the context is full (%d tokens)", c->kv.n_ctx);
    uint32_t group = (uint32_t)(n_head / n_head_kv);
    uint32_t blocks = (group + ATT_HEADS - 1) / ATT_HEADS;
    bool wide = v_dim > ATT_VALUES;
    uint32_t chunk = wide ? ATT_VALUES_WIDE : ATT_VALUES;
    uint32_t chunks = ((uint32_t)v_dim + chunk - 1) / chunk;
    enum vk_shader sh = f16 ? (wide ? VK_SHADER_ATTENTION_F16_WIDE : VK_SHADER_ATTENTION_F16)
                            : (wide ? VK_SHADER_ATTENTION_F32_WIDE : VK_SHADER_ATTENTION_F32);
    uint32_t gx = (uint32_t)n_head_kv * blocks * chunks;
    for (int64_t t0 = 0; t0 < q->ne1; t0 += 65535) {
        int64_t m = q->ne1 - t0 < 65535 ? q->ne1 - t0 : 65535;
        struct vk_push p = {.u = {(uint32_t)n_head, group, (uint32_t)head_dim, (uint32_t)v_dim,
                                  (uint32_t)pos0, toff(q), toff(dst), (uint32_t)c->kv.k_width,
                                  (uint32_t)(c->kv.v_in_k ? c->kv.k_width : c->kv.v_width), blocks,
                                  (uint32_t)t0, 0, 0, 1, chunks},
                            .f = {scale}};
        VkBuffer bufs[N_BINDINGS] = {tbuf(c, q), c->kc[layer].buf,
                                     c->kv.v_in_k ? c->kc[layer].buf : c->vc[layer].buf,
                                     VK_NULL_HANDLE, tbuf(c, dst)};
        /* few workgroups over a long context: several per (row, head
         * block), each over a slice of the positions, then one pass
         * merging their partial results */
        int64_t n_max = pos0 + t0 + m, n_split = 1, work = (int64_t)gx * m;
        if (work < ATT_SPLIT_GROUPS && n_max > 2 * ATT_SPLIT_LEN) {
            n_split = (n_max + ATT_SPLIT_LEN - 1) / ATT_SPLIT_LEN;
            int64_t fill = (ATT_SPLIT_GROUPS + work - 1) / work;
            if (n_split > fill)
                n_split = fill;
            if (n_split > ATT_SPLIT_MAX)
                n_split = ATT_SPLIT_MAX;
        }
        int rc;
        if (n_split == 1) {
            rc = dispatch(c, sh, bufs, &p, gx, (uint32_t)m, 1);
        } else {
            int64_t len = (n_max + n_split - 1) / n_split;
            len = (len + ATT_TILE - 1) / ATT_TILE * ATT_TILE;
            n_split = (n_max + len - 1) / len;
            int block;
            uint32_t poff;
            VkDeviceSize bytes = (VkDeviceSize)m * (VkDeviceSize)n_head * (VkDeviceSize)n_split *
                                 (VkDeviceSize)(v_dim + 2) * 4;
            if ((rc = arena_take(c, (bytes + 255) & ~(VkDeviceSize)255, &block, &poff)))
                return rc;
            bufs[5] = c->blocks[block].buf;
            p.u[11] = (uint32_t)len;
            p.u[12] = poff;
            p.u[13] = (uint32_t)n_split;
            if (!(rc = dispatch(c, sh, bufs, &p, gx, (uint32_t)m, (uint32_t)n_split)))
                rc = dispatch(c, VK_SHADER_ATTENTION_COMBINE, bufs, &p, (uint32_t)n_head,
                              (uint32_t)m, 1);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int eltwise(struct vk_backend *c, enum vk_shader s, const struct btensor *dst,
                   const struct btensor *a, const struct btensor *bb)
{
    int64_t n = a->ne0 * a->ne1;
    struct vk_push p = {.u = {(uint32_t)n, toff(a), bb ? toff(bb) : 0, toff(dst)}};
    VkBuffer bufs[N_BINDINGS] = {tbuf(c, a), bb ? tbuf(c, bb) : VK_NULL_HANDLE, tbuf(c, dst)};
    uint32_t g = groups(n, 256);
    return dispatch(c, s, bufs, &p, g < 65535 ? g : 65535, 1, 1);
}

static int vk_swiglu(struct backend *b, struct btensor *dst, const struct btensor *gate,
                     const struct btensor *up)
{
    struct vk_backend *c = vb(b);
    if (gate->ne0 != up->ne0 || gate->ne1 != up->ne1 || dst->ne0 != gate->ne0)
        return fail(c, EINVAL, "swiglu: shape mismatch");
    return eltwise(c, VK_SHADER_SWIGLU, dst, gate, up);
}

static int vk_add(struct backend *b, struct btensor *dst, const struct btensor *src)
{
    struct vk_backend *c = vb(b);
    if (dst->ne0 != src->ne0 || dst->ne1 != src->ne1)
        return fail(c, EINVAL, "add: shape mismatch");
    return eltwise(c, VK_SHADER_ADD, dst, src, NULL);
}

static int vk_read(struct backend *b, const struct btensor *src, int64_t row0, int64_t n, float *out)
{
    return transfer_rows(vb(b), src, row0, n, out, NULL);
}

static int vk_sync(struct backend *b) { return flush(vb(b)); }

static const char *vk_error(const struct backend *b) { return ((const struct vk_backend *)b)->err; }
static const char *vk_device_name(const struct backend *b)
{
    return ((const struct vk_backend *)b)->desc.name;
}

/* ---- setup and teardown ---- */

static void save_cache(struct vk_backend *c)
{
    if (!c->cache || !c->cache_path[0])
        return;
    size_t n = 0;
    if (vkGetPipelineCacheData(c->dev, c->cache, &n, NULL) != VK_SUCCESS || n == 0)
        return;
    void *data = malloc(n);
    if (data && vkGetPipelineCacheData(c->dev, c->cache, &n, data) == VK_SUCCESS) {
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s.tmp", c->cache_path);
        FILE *f = fopen(tmp, "wb");
        if (f) {
            bool ok = fwrite(data, 1, n, f) == n;
            ok &= fclose(f) == 0;
            if (ok)
                rename(tmp, c->cache_path);
            else
                remove(tmp);
        }
    }
    free(data);
}

static void vk_free(struct backend *b)
{
    struct vk_backend *c = vb(b);
    if (!c)
        return;
    if (c->dev) {
        if (c->recording && !c->lost)
            flush(c);
        vkDeviceWaitIdle(c->dev);
        save_cache(c);
        kv_free(c);
        vk_backend_drop_weights(b);
        cache_drop(c);
        views_free(c);      /* before the memory they are bound to */
        for (int i = 0; i < c->n_blocks; i++)
            buf_free(c, &c->blocks[i]);
        buf_free(c, &c->staging);
        buf_free(c, &c->dummy);
        for (int i = 0; i < VK_SHADER_COUNT; i++)
            if (c->pipes[i])
                vkDestroyPipeline(c->dev, c->pipes[i], NULL);
        if (c->cache)
            vkDestroyPipelineCache(c->dev, c->cache, NULL);
        if (c->layout)
            vkDestroyPipelineLayout(c->dev, c->layout, NULL);
        if (c->dsl)
            vkDestroyDescriptorSetLayout(c->dev, c->dsl, NULL);
        cache_drop(c);
        buf_free(c, &c->params);
        if (c->fence)
            vkDestroyFence(c->dev, c->fence, NULL);
        if (c->cpool)
            vkDestroyCommandPool(c->dev, c->cpool, NULL);
        vkDestroyDevice(c->dev, NULL);
    }
    free(c->wt);
    free(c->sets);
    free(c->dpools);
    for (int i = 0; i < c->n_segs; i++)
        free(c->segs[i].ops);
    free(c->segs);
    for (int i = 0; i < MAX_TENSOR_CHUNKS; i++)
        free(c->tchunks[i]);
    free(c->blocks);
    free(c->host_rows);
    vk_inst_destroy(&c->vi);
    free(c);
}

static const struct backend_ops vk_ops = {
    .name = "vulkan",
    .free = vk_free,
    .kv_init = vk_kv_init,
    .alloc = vk_alloc,
    .reset = vk_reset,
    .get_rows = vk_get_rows,
    .rms_norm = vk_rms_norm,
    .matmul = vk_matmul,
    .rope = vk_rope,
    .kv_store = vk_kv_store,
    .attention = vk_attention,
    .swiglu = vk_swiglu,
    .add = vk_add,
    .read = vk_read,
    .write = vk_write,
    .copy_cols = vk_copy_cols,
    .matmul_heads = vk_matmul_heads,
    .moe = vk_moe,
    .rows = vk_rows,
    .error = vk_error,
    .device_name = vk_device_name,
    .sync = vk_sync,
};

static int load_cache(struct vk_backend *c, const char *dir)
{
    void *data = NULL;
    size_t n = 0;
    if (dir && dir[0]) {
        mkdir(dir, 0755);
        snprintf(c->cache_path, sizeof c->cache_path, "%s/pipelines-%04x-%04x.bin", dir,
                 c->desc.vendor_id, c->desc.device_id);
        FILE *f = fopen(c->cache_path, "rb");
        if (f) {
            if (fseek(f, 0, SEEK_END) == 0) {
                long len = ftell(f);
                if (len > 0 && len < (64L << 20) && fseek(f, 0, SEEK_SET) == 0 &&
                    (data = malloc((size_t)len)) && fread(data, 1, (size_t)len, f) == (size_t)len)
                    n = (size_t)len;
            }
            fclose(f);
        }
    }
    VkPipelineCacheCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
        .initialDataSize = n,
        .pInitialData = n ? data : NULL,
    };
    VkResult r = vkCreatePipelineCache(c->dev, &ci, NULL, &c->cache);
    if (r != VK_SUCCESS && n) {     /* a stale or foreign cache: start empty */
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        r = vkCreatePipelineCache(c->dev, &ci, NULL, &c->cache);
    }
    free(data);
    return r == VK_SUCCESS ? 0 : vkfail(c, r, "create pipeline cache");
}

static int make_pipelines(struct vk_backend *c)
{
    VkDescriptorSetLayoutBinding lb[N_BINDINGS + 1];
    for (int i = 0; i <= N_BINDINGS; i++)
        lb[i] = (VkDescriptorSetLayoutBinding){(uint32_t)i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1,
                                               VK_SHADER_STAGE_COMPUTE_BIT, NULL};
    VkDescriptorSetLayoutCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = N_BINDINGS + 1,
        .pBindings = lb,
    };
    VkResult r = vkCreateDescriptorSetLayout(c->dev, &dci, NULL, &c->dsl);
    if (r != VK_SUCCESS)
        return vkfail(c, r, "create descriptor set layout");
    VkPushConstantRange pr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(uint32_t)};   /* the slot */
    VkPipelineLayoutCreateInfo lci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &c->dsl,
        .pushConstantRangeCount = 1,
        .pPushConstantRanges = &pr,
    };
    if ((r = vkCreatePipelineLayout(c->dev, &lci, NULL, &c->layout)) != VK_SUCCESS)
        return vkfail(c, r, "create pipeline layout");
    for (int i = 0; i < VK_SHADER_COUNT; i++) {
        if (!c->shuffle && i >= VK_SHADER_MATMUL_F32_1S && i <= VK_SHADER_MATMUL_Q4_8S)
            continue;
        if (!c->int_dot && i >= VK_SHADER_QUANT_X && i <= VK_SHADER_MATMUL_INT_Q4_8)
            continue;
        const struct vk_spirv *sp = vk_shader_spirv((enum vk_shader)i);
        VkShaderModuleCreateInfo mci = {
            .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
            .codeSize = sp->size,
            .pCode = sp->code,
        };
        VkShaderModule mod;
        if ((r = vkCreateShaderModule(c->dev, &mci, NULL, &mod)) != VK_SUCCESS)
            return vkfail(c, r, sp->name);
        VkComputePipelineCreateInfo cci = {
            .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
            .stage = {
                .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = mod,
                .pName = "main",
            },
            .layout = c->layout,
        };
        r = vkCreateComputePipelines(c->dev, c->cache, 1, &cci, NULL, &c->pipes[i]);
        vkDestroyShaderModule(c->dev, mod, NULL);
        if (r != VK_SUCCESS)
            return vkfail(c, r, sp->name);
    }
    return 0;
}

static int open_device(struct vk_backend *c, const struct vk_options *o)
{
    uint32_t count = 0;
    VkResult r = vkEnumeratePhysicalDevices(c->vi.instance, &count, NULL);
    if (r != VK_SUCCESS || count == 0)
        return fail(c, ENODEV, "no Vulkan device found");
    VkPhysicalDevice *pds = calloc(count, sizeof *pds);
    struct vk_device_desc *descs = calloc(count, sizeof *descs);
    int rc = 0;
    if (!pds || !descs) {
        rc = fail(c, ENOMEM, "out of memory");
        goto out;
    }
    r = vkEnumeratePhysicalDevices(c->vi.instance, &count, pds);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        rc = vkfail(c, r, "list devices");
        goto out;
    }
    for (uint32_t i = 0; i < count; i++)
        vk_probe(pds[i], (int)i, &descs[i]);
    int pick = o->device >= 0 ? o->device : vk_default_device(descs, (int)count);
    if (pick < 0 || pick >= (int)count) {
        rc = fail(c, ENODEV, "no Vulkan device %d (there are %u: see ponder devices)", o->device, count);
        goto out;
    }
    c->pd = pds[pick];
    c->desc = descs[pick];
out:
    free(pds);
    free(descs);
    return rc;
}

/* The integer dot-product path is the default on GPUs (type not "cpu")
 * that have the feature; vk_options.force_int_dot turns it on elsewhere.
 *
 * Software devices keep the float path because it is faster there:
 * lavapipe (llvmpipe, LLVM 15, 2 cores shared with other work),
 * r1-qwen-1.5b Q8_0, build/tools/vkpath -p 16 -n 16, three rounds
 * alternating the paths: int8/float per round, median, 0.34 for the
 * prompt and 0.65 for generation (not profiled; the likely cost: llvmpipe
 * has no packed dot product to map OpSDot to, so each one unpacks both
 * words for every token, where the float tile decodes a weight once for
 * eight tokens).  On GPUs
 * the int8 path reads x as a quarter of the bytes and rounds it as the
 * reference does (every testdata model passes with it forced, td-q8_0
 * included).
 * llama.cpp's Vulkan backend (ggml_vk_should_use_mmvq) uses its integer
 * dot-product kernels on every vendor whose device has the feature:
 * always for two tokens or more; for one token it keeps its float kernels
 * where quantizing x did not pay in its measurements (k <= 4096 on NVIDIA,
 * k < 2048 on AMD and Intel, Q8_0 weights on NVIDIA from Turing and on AMD
 * RDNA, Q6_K (Q3_K too in later versions) except on Intel because of
 * their 2-byte block alignment).  Those are speed choices per product for
 * its own kernels;
 * here the choice is per backend, because one rounding for all products
 * of a pass is what makes the path agree with the reference (mm_run), and
 * Q6_K is repacked to word-aligned int8 here.  Not yet measured on a GPU. */
bool vk_int_dot_default(const struct vk_device_desc *d)
{
    return d->int_dot && strcmp(d->type, "cpu") != 0;
}

int vk_backend_create(const struct vk_options *o, struct backend **out, char *err, size_t errlen)
{
    *out = NULL;
    struct vk_backend *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return ENOMEM;
    }
    c->base.ops = &vk_ops;
    c->mem_limit = o->mem_limit;
    c->lose_after = o->lose_after;
    c->weight_range = o->weight_range;
    c->no_replay = o->no_replay;
    int rc = vk_inst_create(&c->vi, o->validation, err, errlen);
    if (rc) {
        free(c);
        return rc;
    }
    if ((rc = open_device(c, o)))
        goto out;
    vkGetPhysicalDeviceMemoryProperties(c->pd, &c->mp);
    c->max_range = c->desc.max_storage_range & ~(VkDeviceSize)255;
    /* groups of 8 lanes share x: needs shuffles and whole groups of 8 */
    c->shuffle = c->desc.subgroup_shuffle && c->desc.subgroup_size >= 8 &&
                 c->desc.subgroup_size % 8 == 0 && !o->no_shuffle;
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(c->pd, &nq, NULL);
    VkQueueFamilyProperties qf[16];
    if (nq > 16)
        nq = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(c->pd, &nq, qf);
    uint32_t fam = UINT32_MAX;
    for (uint32_t i = 0; i < nq && fam == UINT32_MAX; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT)
            fam = i;
    if (fam == UINT32_MAX) {
        rc = fail(c, ENODEV, "%s has no compute queue", c->desc.name);
        goto out;
    }
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = fam,
        .queueCount = 1,
        .pQueuePriorities = &prio,
    };
    const char *exts[2];
    uint32_t n_ext = 0;
    uint32_t n_avail = 0;
    bool dot_ext = false;
    vkEnumerateDeviceExtensionProperties(c->pd, NULL, &n_avail, NULL);
    VkExtensionProperties *avail = n_avail ? calloc(n_avail, sizeof *avail) : NULL;
    if (avail && vkEnumerateDeviceExtensionProperties(c->pd, NULL, &n_avail, avail) == VK_SUCCESS)
        for (uint32_t i = 0; i < n_avail; i++) {
            if (!strcmp(avail[i].extensionName, "VK_KHR_portability_subset"))
                exts[n_ext++] = "VK_KHR_portability_subset";
            dot_ext |= !strcmp(avail[i].extensionName, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
        }
    free(avail);
    /* the integer dot product: enabled only when the device has it */
    VkPhysicalDeviceShaderIntegerDotProductFeaturesKHR dotf = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES_KHR};
    if (dot_ext) {
        VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                        .pNext = &dotf};
        vkGetPhysicalDeviceFeatures2(c->pd, &f2);
        dotf.pNext = NULL;
    }
    c->int_dot = dot_ext && dotf.shaderIntegerDotProduct && !o->no_int_dot &&
                 (o->force_int_dot || vk_int_dot_default(&c->desc));
    if (c->int_dot)
        exts[n_ext++] = VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME;
    else
        dotf.shaderIntegerDotProduct = VK_FALSE;
    VkDeviceCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .pNext = c->int_dot ? &dotf : NULL,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &qci,
        .enabledExtensionCount = n_ext,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = vkCreateDevice(c->pd, &dci, NULL, &c->dev);
    if (r != VK_SUCCESS) {
        c->dev = VK_NULL_HANDLE;
        rc = vkfail(c, r, "create device");
        goto out;
    }
    vkGetDeviceQueue(c->dev, fam, 0, &c->queue);
    VkCommandPoolCreateInfo cpi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = fam,
    };
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if ((r = vkCreateCommandPool(c->dev, &cpi, NULL, &c->cpool)) != VK_SUCCESS ||
        (r = vkCreateFence(c->dev, &fci, NULL, &c->fence)) != VK_SUCCESS) {
        rc = vkfail(c, r, "create command pool");
        goto out;
    }
    VkDeviceSize st = STAGING_SIZE < c->max_range ? STAGING_SIZE : c->max_range;
    if ((rc = buf_create(c, &c->staging, st, true)) || (rc = buf_create(c, &c->dummy, 256, false)) ||
        (rc = buf_create_in(c, &c->params, PARAM_SLOTS * sizeof(struct vk_push), true, true)))
        goto out;
    if (!c->staging.map || !c->params.map) {
        rc = fail(c, ENOMEM, "vulkan: no host-visible memory for staging");
        goto out;
    }
    if ((rc = load_cache(c, o->cache_dir)) || (rc = make_pipelines(c)))
        goto out;
out:
    if (rc) {
        snprintf(err, errlen, "%s: %s", c->desc.name[0] ? c->desc.name : "vulkan", c->err);
        vk_free(&c->base);
        return rc;
    }
    *out = &c->base;
    return 0;
}

bool vk_backend_lost(const struct backend *b)
{
    return ((const struct vk_backend *)b)->lost;
}

void vk_backend_set_progress(struct backend *b, vk_progress_fn fn, void *ctx)
{
    vb(b)->progress = fn;
    vb(b)->progress_ctx = ctx;
}

void vk_backend_stats(const struct backend *b, struct vk_stats *out)
{
    *out = ((const struct vk_backend *)b)->stats;
}

uint64_t vk_backend_device_bytes(const struct backend *b)
{
    return ((const struct vk_backend *)b)->mem_used;
}

bool vk_backend_is(const struct backend *b) { return b && b->ops == &vk_ops; }

bool vk_backend_int_dot(const struct backend *b)
{
    return ((const struct vk_backend *)b)->int_dot;
}

const struct vk_device_desc *vk_backend_desc(const struct backend *b)
{
    return &((const struct vk_backend *)b)->desc;
}

unsigned vk_backend_validation_messages(const struct backend *b, char *msg, size_t msglen)
{
    struct vk_backend *c = (struct vk_backend *)(uintptr_t)b;
    unsigned n = atomic_load(&c->vi.n_messages);
    if (msg && msglen)
        snprintf(msg, msglen, "%s", n ? c->vi.first_message : "");
    return n;
}

bool vk_backend_validating(const struct backend *b)
{
    return ((const struct vk_backend *)b)->vi.validating;
}
