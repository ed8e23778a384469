/* The CPU backend: backend.h's operations on host memory, threaded with the
 * pool, matrix products through cpu_mm_batch() and the selected kernels;
 * products of one input wait and run together (one join for q, k and v). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/cpu/backend_cpu.h"
#include "infer/cpu/matmul.h"
#include "infer/cpu/pool.h"
#include "infer/gguf.h"
#include "infer/rope.h"

#define ARENA_MAX_TENSORS 256

struct arena_block {
    struct arena_block *next;
    size_t size, used;          /* bytes */
    unsigned char *data;
};

typedef float (*dot_fn)(const float *a, const float *b, int n);
typedef void (*axpy_fn)(float a, const float *x, float *y, int n);
typedef float (*dot16_fn)(const float *a, const quant_f16 *b, int n);
typedef void (*axpy16_fn)(float a, const quant_f16 *x, float *y, int n);

/* Below this many floats add runs on the caller: a token's residual add
 * (1536 floats) takes less time than waking the other threads. */
#define ADD_SERIAL_FLOATS 65536

struct cpu_backend {
    struct backend base;
    struct pool *pool;
    struct cpu_kernels kernels;
    struct cpu_scratch scratch;
    char err[256];

    /* Matrix products of one input that have not run yet: matmul() queues
     * them while they share their input, every other operation runs them
     * first (mm_flush), as one cpu_mm_batch(): one join for a layer's q, k
     * and v, and gate and up run with the swiglu that follows them. */
    struct cpu_mm pend[CPU_MM_BATCH_MAX];
    struct weight pend_bias[CPU_MM_BATCH_MAX];   /* .t NULL: no bias */
    int n_pend;
    const float *pend_x;
    int64_t pend_n_in, pend_n_tok;

    /* activation arena: blocks of floats, and the tensor headers */
    struct arena_block *blocks;
    size_t arena_total;
    struct btensor tensors[ARENA_MAX_TENSORS];
    int n_tensors;

    /* KV cache */
    struct kv_shape kv;
    uint64_t kv_bytes;          /* allocated for the cache */
    void **k_cache, **v_cache;  /* per layer: n_ctx rows of k_width / v_width */
    float *att_scratch;         /* per thread: n_ctx scores */
    size_t att_stride;
    dot_fn dot;                 /* attention loops for this CPU */
    axpy_fn axpy;
    dot16_fn dot16;             /* the same over an F16 cache */
    axpy16_fn axpy16;

    /* rope table cache: cos/sin for positions rope_pos0.. */
    float *rope_cs;
    size_t rope_cap;
    int rope_pos0, rope_n, rope_valid;
    struct rope_params rope_key;

    /* grow-only scratch of copy_cols / matmul_heads / moe */
    float *tmp;
    size_t tmp_cap;             /* floats */
    int32_t *moe_rows;          /* n_tok * n_used entries: (token, slot) grouped by expert */
    size_t moe_cap;
};

static struct cpu_backend *cb(struct backend *b) { return (struct cpu_backend *)b; }

static int fail(struct cpu_backend *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return code;
}

static bool overlaps(const float *a, size_t na, const float *b, size_t nb)
{
    return a < b + nb && b < a + na;
}

static void add_bias(float *y, const struct weight *bias, int64_t n_out, int64_t n_tok);

/* Runs the queued products (flags: CPU_MM_SWIGLU or 0); 0 or their error. */
static int mm_flush(struct cpu_backend *c, unsigned flags)
{
    int n = c->n_pend;
    if (!n)
        return 0;
    c->n_pend = 0;
    int rc = cpu_mm_batch(c->pool, &c->kernels, c->pend, n, flags, c->pend_n_in, c->pend_x,
                          c->pend_n_tok, &c->scratch, c->err, sizeof c->err);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++)
        if (c->pend_bias[i].t)
            add_bias(c->pend[i].y, &c->pend_bias[i], c->pend[i].n_out, c->pend_n_tok);
    return 0;
}

#define FLUSH(c)                                                                     \
    do {                                                                             \
        int frc_ = mm_flush((c), 0);                                                 \
        if (frc_)                                                                    \
            return frc_;                                                             \
    } while (0)

/* ---- arena ---- */

static void *arena_get(struct cpu_backend *c, size_t bytes)
{
    bytes = (bytes + 63) & ~(size_t)63;
    struct arena_block *blk = c->blocks;
    if (blk && blk->size - blk->used >= bytes) {
        void *p = blk->data + blk->used;
        blk->used += bytes;
        return p;
    }
    size_t size = bytes > (size_t)(16 << 20) ? bytes : (size_t)(16 << 20);
    struct arena_block *nb = malloc(sizeof *nb);
    if (!nb)
        return NULL;
    nb->data = aligned_alloc(64, size);
    if (!nb->data) {
        free(nb);
        return NULL;
    }
    nb->size = size;
    nb->used = bytes;
    nb->next = c->blocks;
    c->blocks = nb;
    c->arena_total += size;
    return nb->data;
}

static void arena_free_blocks(struct arena_block *b)
{
    while (b) {
        struct arena_block *next = b->next;
        free(b->data);
        free(b);
        b = next;
    }
}

static void cpu_reset(struct backend *b)
{
    struct cpu_backend *c = cb(b);
    /* a pass ends with read() or sync(), which ran the queue; a caller
     * that skipped both gets its products run here, before the arena goes */
    (void)mm_flush(c, 0);
    c->n_tensors = 0;
    if (c->blocks && c->blocks->next) {
        /* several blocks: replace them by one that holds the whole pass */
        size_t total = c->arena_total;
        arena_free_blocks(c->blocks);
        c->blocks = NULL;
        c->arena_total = 0;
        struct arena_block *nb = malloc(sizeof *nb);
        if (nb && (nb->data = aligned_alloc(64, total))) {
            nb->size = total;
            nb->used = 0;
            nb->next = NULL;
            c->blocks = nb;
            c->arena_total = total;
        } else {
            free(nb);
        }
    } else if (c->blocks) {
        c->blocks->used = 0;
    }
}

static struct btensor *cpu_alloc(struct backend *b, int64_t ne0, int64_t ne1)
{
    struct cpu_backend *c = cb(b);
    if (c->n_tensors >= ARENA_MAX_TENSORS || ne0 <= 0 || ne1 <= 0)
        return NULL;
    float *data = arena_get(c, (size_t)ne0 * (size_t)ne1 * sizeof(float));
    if (!data)
        return NULL;
    struct btensor *t = &c->tensors[c->n_tensors++];
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->data = data;
    return t;
}

static struct btensor *cpu_rows(struct backend *b, const struct btensor *src, int64_t row0, int64_t n)
{
    struct cpu_backend *c = cb(b);
    if (c->n_tensors >= ARENA_MAX_TENSORS || row0 < 0 || n <= 0 || row0 + n > src->ne1)
        return NULL;
    struct btensor *t = &c->tensors[c->n_tensors++];
    t->ne0 = src->ne0;
    t->ne1 = n;
    t->data = src->data + row0 * src->ne0;
    return t;
}

/* ---- simple row operations ---- */

static int cpu_get_rows_op(struct backend *b, struct btensor *dst, const struct weight *w,
                           const int32_t *ids, int64_t n)
{
    struct cpu_backend *c = cb(b);
    FLUSH(c);
    if (dst->ne0 != w->n_in || dst->ne1 < n)
        return fail(c, EINVAL, "get_rows: shape mismatch");
    return cpu_get_rows(w->type, w->data, w->n_in, w->n_out, ids, n, dst->data, c->err,
                        sizeof c->err);
}

static float weight_f32(const struct weight *w, int64_t i)
{
    /* 1-D tensors are F32 in every R1 file; F16 is accepted too */
    if (w->type == QUANT_TYPE_F16)
        return quant_f16_to_f32(((const quant_f16 *)w->data)[i]);
    return ((const float *)w->data)[i];
}

static int cpu_rms_norm(struct backend *b, struct btensor *dst, const struct btensor *src,
                        const struct weight *g, float eps)
{
    struct cpu_backend *c = cb(b);
    FLUSH(c);
    int64_t n = src->ne0;
    if (dst->ne0 != n || dst->ne1 < src->ne1 || g->n_in != n)
        return fail(c, EINVAL, "rms_norm: shape mismatch");
    const float *gw = g->type == QUANT_TYPE_F32 ? g->data : NULL;
    for (int64_t t = 0; t < src->ne1; t++) {
        const float *x = src->data + t * n;
        float *y = dst->data + t * n;
        double sum = 0;
        for (int64_t i = 0; i < n; i++)
            sum += (double)x[i] * x[i];
        float scale = 1.0f / sqrtf((float)(sum / (double)n) + eps);
        if (gw) {
            for (int64_t i = 0; i < n; i++)
                y[i] = x[i] * scale * gw[i];
        } else {
            for (int64_t i = 0; i < n; i++)
                y[i] = x[i] * scale * weight_f32(g, i);
        }
    }
    return 0;
}

static void add_bias(float *y, const struct weight *bias, int64_t n_out, int64_t n_tok)
{
    for (int64_t t = 0; t < n_tok; t++, y += n_out)
        for (int64_t i = 0; i < n_out; i++)
            y[i] += weight_f32(bias, i);
}

/* Queues the product (mm_flush runs it): behind the queued ones when it has
 * their input and writes none of the memory they read or write. */
static int cpu_matmul_op(struct backend *b, struct btensor *dst, const struct weight *w,
                         const struct weight *bias, const struct btensor *src)
{
    struct cpu_backend *c = cb(b);
    if (src->ne0 != w->n_in || dst->ne0 != w->n_out || dst->ne1 < src->ne1)
        return fail(c, EINVAL, "matmul: shape mismatch (%lld x %lld weight, %lld input)",
                    (long long)w->n_out, (long long)w->n_in, (long long)src->ne0);
    int rc = cpu_matmul_check(&c->kernels, w->type, w->n_in, w->n_out, src->ne1, c->err,
                              sizeof c->err);
    if (rc)
        return rc;
    int64_t n_tok = src->ne1;
    size_t ny = (size_t)n_tok * (size_t)w->n_out;
    bool join = c->n_pend > 0 && c->n_pend < CPU_MM_BATCH_MAX && c->pend_x == src->data &&
                c->pend_n_in == w->n_in && c->pend_n_tok == n_tok &&
                !overlaps(dst->data, ny, src->data, (size_t)n_tok * (size_t)w->n_in);
    for (int i = 0; join && i < c->n_pend; i++)
        join = !overlaps(dst->data, ny, c->pend[i].y, (size_t)n_tok * (size_t)c->pend[i].n_out);
    if (!join)
        FLUSH(c);
    if (!c->n_pend) {
        c->pend_x = src->data;
        c->pend_n_in = w->n_in;
        c->pend_n_tok = n_tok;
    }
    c->pend[c->n_pend] = (struct cpu_mm){w->type, w->data, w->n_out, dst->data};
    c->pend_bias[c->n_pend] = bias && bias->t ? *bias : (struct weight){0};
    c->n_pend++;
    return 0;
}

/* Element-wise jobs split over the pool: dst = silu(a) * b, or dst += a. */
struct ew_job {
    float *dst;
    const float *a, *b;
    int64_t n;
    bool swiglu;
};

static void ew_worker(void *arg, int ith, int nth)
{
    struct ew_job *j = arg;
    int64_t lo = j->n * ith / nth, hi = j->n * (ith + 1) / nth;
    if (j->swiglu) {
        for (int64_t i = lo; i < hi; i++)
            j->dst[i] = cpu_swiglu1(j->a[i], j->b[i]);
    } else {
        for (int64_t i = lo; i < hi; i++)
            j->dst[i] += j->a[i];
    }
}

static int cpu_swiglu(struct backend *b, struct btensor *dst, const struct btensor *gate,
                      const struct btensor *up)
{
    struct cpu_backend *c = cb(b);
    if (gate->ne0 != up->ne0 || gate->ne1 != up->ne1 || dst->ne0 != gate->ne0)
        return fail(c, EINVAL, "swiglu: shape mismatch");
    /* gate and up still queued: they run with the swiglu, tile by tile */
    if (c->n_pend == 2 && dst->data == gate->data && c->pend[0].y == gate->data &&
        c->pend[1].y == up->data && !c->pend_bias[0].t && !c->pend_bias[1].t &&
        c->pend[0].n_out == gate->ne0 && c->pend[1].n_out == up->ne0 &&
        c->pend_n_tok == gate->ne1)
        return mm_flush(c, CPU_MM_SWIGLU);
    FLUSH(c);
    struct ew_job j = {dst->data, gate->data, up->data, gate->ne0 * gate->ne1, true};
    pool_run(c->pool, ew_worker, &j);
    return 0;
}

static int cpu_add(struct backend *b, struct btensor *dst, const struct btensor *src)
{
    struct cpu_backend *c = cb(b);
    FLUSH(c);
    if (dst->ne0 != src->ne0 || dst->ne1 != src->ne1)
        return fail(c, EINVAL, "add: shape mismatch");
    struct ew_job j = {dst->data, src->data, NULL, dst->ne0 * dst->ne1, false};
    if (j.n < ADD_SERIAL_FLOATS)
        ew_worker(&j, 0, 1);
    else
        pool_run(c->pool, ew_worker, &j);
    return 0;
}

static int cpu_write(struct backend *b, struct btensor *dst, int64_t row0, int64_t n, const float *in)
{
    struct cpu_backend *c = cb(b);
    FLUSH(c);
    if (row0 < 0 || n < 0 || row0 + n > dst->ne1)
        return fail(c, EINVAL, "write: rows out of range");
    memcpy(dst->data + row0 * dst->ne0, in, (size_t)(n * dst->ne0) * sizeof(float));
    return 0;
}

static int cpu_copy_cols(struct backend *b, struct btensor *dst, int64_t dst_off, int64_t dst_stride,
                         const struct btensor *src, int64_t src_off, int64_t src_stride,
                         int64_t width, int64_t n_group)
{
    struct cpu_backend *c = cb(b);
    FLUSH(c);
    if (width < 0 || n_group < 0 || dst_off < 0 || src_off < 0 || src->ne1 > dst->ne1 ||
        (n_group > 0 && (dst_off + (n_group - 1) * dst_stride + width > dst->ne0 ||
                         src_off + (n_group - 1) * src_stride + width > src->ne0)))
        return fail(c, EINVAL, "copy_cols: columns out of range");
    for (int64_t t = 0; t < src->ne1; t++) {
        const float *s = src->data + t * src->ne0 + src_off;
        float *d = dst->data + t * dst->ne0 + dst_off;
        for (int64_t g = 0; g < n_group; g++)
            memmove(d + g * dst_stride, s + g * src_stride, (size_t)width * sizeof(float));
    }
    return 0;
}

/* c->tmp holding at least n floats. */
static float *tmp_get(struct cpu_backend *c, size_t n)
{
    if (n > c->tmp_cap) {
        free(c->tmp);
        c->tmp = aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
        c->tmp_cap = c->tmp ? n : 0;
        if (!c->tmp)
            return NULL;
    }
    return c->tmp;
}

static int cpu_matmul_heads(struct backend *b, struct btensor *dst, int64_t dst_stride,
                            const struct weight *w, int n_head, const struct btensor *src,
                            int64_t src_stride)
{
    struct cpu_backend *c = cb(b);
    FLUSH(c);
    if (n_head <= 0 || w->n_out % n_head)
        return fail(c, EINVAL, "matmul_heads: %lld rows do not split into %d heads",
                    (long long)w->n_out, n_head);
    int64_t r = w->n_out / n_head, n = src->ne1;
    if ((n_head - 1) * src_stride + w->n_in > src->ne0 ||
        (n_head - 1) * dst_stride + r > dst->ne0 || dst->ne1 < n)
        return fail(c, EINVAL, "matmul_heads: shape mismatch");
    float *x = tmp_get(c, (size_t)(n * (w->n_in + r)));
    if (!x)
        return fail(c, ENOMEM, "out of memory for matmul_heads");
    float *y = x + n * w->n_in;
    for (int j = 0; j < n_head; j++) {
        for (int64_t t = 0; t < n; t++)
            memcpy(x + t * w->n_in, src->data + t * src->ne0 + j * src_stride,
                   (size_t)w->n_in * sizeof(float));
        const unsigned char *wj = (const unsigned char *)w->data + (size_t)(j * r) * w->row_bytes;
        int rc = cpu_matmul(c->pool, &c->kernels, w->type, wj, w->n_in, r, x, n, y, &c->scratch,
                            c->err, sizeof c->err);
        if (rc)
            return rc;
        for (int64_t t = 0; t < n; t++)
            memcpy(dst->data + t * dst->ne0 + j * dst_stride, y + t * r, (size_t)r * sizeof(float));
    }
    return 0;
}

/* Routed experts: the (token, slot) pairs are sorted by expert, and each
 * chosen expert runs once over its tokens, gathered into one matrix. */
static int cpu_moe(struct backend *b, struct btensor *dst, const struct weight *gate,
                   const struct weight *up, const struct weight *down, const struct btensor *src,
                   const int32_t *experts, const float *weights, int n_used)
{
    struct cpu_backend *c = cb(b);
    FLUSH(c);
    int64_t n = src->ne1, n_in = gate->n_in, ff = gate->n_out, n_exp = gate->n_exp;
    if (n_used <= 0 || n_exp <= 0 || up->n_exp != n_exp || down->n_exp != n_exp ||
        up->n_in != n_in || up->n_out != ff || down->n_in != ff || down->n_out != n_in ||
        src->ne0 != n_in || dst->ne0 != n_in || dst->ne1 < n)
        return fail(c, EINVAL, "moe: shape mismatch");
    size_t pairs = (size_t)n * (size_t)n_used;
    for (size_t i = 0; i < pairs; i++)
        if (experts[i] < 0 || experts[i] >= n_exp)
            return fail(c, EINVAL, "moe: expert %d out of range [0, %lld)", experts[i],
                        (long long)n_exp);
    if (pairs > c->moe_cap) {
        int32_t *r = realloc(c->moe_rows, pairs * sizeof *r);
        if (!r)
            return fail(c, ENOMEM, "out of memory for moe");
        c->moe_rows = r;
        c->moe_cap = pairs;
    }
    /* counting sort by expert: stable, so each expert's tokens stay in order */
    int64_t rows_max = 0;
    size_t k = 0;
    for (int64_t e = 0; e < n_exp; e++) {
        size_t k0 = k;
        for (size_t i = 0; i < pairs; i++)
            if (experts[i] == e)
                c->moe_rows[k++] = (int32_t)i;
        if ((int64_t)(k - k0) > rows_max)
            rows_max = (int64_t)(k - k0);
    }
    size_t need = (size_t)rows_max * (size_t)(2 * n_in + 2 * ff);
    float *x = tmp_get(c, need);
    if (!x)
        return fail(c, ENOMEM, "out of memory for moe");
    float *g = x + rows_max * n_in, *u = g + rows_max * ff, *y = u + rows_max * ff;
    k = 0;
    while (k < pairs) {
        int32_t e = experts[c->moe_rows[k]];
        size_t k1 = k;
        while (k1 < pairs && experts[c->moe_rows[k1]] == e)
            k1++;
        int64_t m = (int64_t)(k1 - k);
        for (int64_t i = 0; i < m; i++) {
            int64_t t = c->moe_rows[k + (size_t)i] / n_used;
            memcpy(x + i * n_in, src->data + t * src->ne0, (size_t)n_in * sizeof(float));
        }
        const unsigned char *wg = (const unsigned char *)gate->data + (size_t)e * gate->exp_bytes;
        const unsigned char *wu = (const unsigned char *)up->data + (size_t)e * up->exp_bytes;
        const unsigned char *wd = (const unsigned char *)down->data + (size_t)e * down->exp_bytes;
        /* gate and up in one job, with the swiglu */
        const struct cpu_mm gu[2] = {{gate->type, wg, ff, g}, {up->type, wu, ff, u}};
        int rc = cpu_mm_batch(c->pool, &c->kernels, gu, 2, CPU_MM_SWIGLU, n_in, x, m,
                              &c->scratch, c->err, sizeof c->err);
        if (rc)
            return rc;
        if ((rc = cpu_matmul(c->pool, &c->kernels, down->type, wd, ff, n_in, g, m, y, &c->scratch,
                             c->err, sizeof c->err)))
            return rc;
        for (int64_t i = 0; i < m; i++) {
            int32_t pi = c->moe_rows[k + (size_t)i];
            float cw = weights[pi], *d = dst->data + (pi / n_used) * dst->ne0;
            c->axpy(cw, y + i * n_in, d, (int)n_in);
        }
        k = k1;
    }
    return 0;
}

static int cpu_read(struct backend *b, const struct btensor *src, int64_t row0, int64_t n, float *out)
{
    struct cpu_backend *c = cb(b);
    FLUSH(c);
    if (row0 < 0 || n < 0 || row0 + n > src->ne1)
        return fail(c, EINVAL, "read: rows out of range");
    memcpy(out, src->data + row0 * src->ne0, (size_t)(n * src->ne0) * sizeof(float));
    return 0;
}

/* ---- RoPE ---- */

/* cos/sin of every rotated pair for positions pos0 .. pos0+n-1 (rope.h),
 * kept while the positions and parameters stay the same. */
static int rope_table(struct cpu_backend *c, const struct rope_params *p, int pos0, int n)
{
    struct rope_params key = *p;
    key.dim_off = 0;   /* the angles do not depend on where the dims sit */
    if (c->rope_valid && c->rope_pos0 == pos0 && c->rope_n == n &&
        !memcmp(&c->rope_key, &key, sizeof key))
        return 0;
    int half = p->n_rot / 2;
    size_t need = (size_t)n * (size_t)half * 2;
    if (need > c->rope_cap) {
        float *t = realloc(c->rope_cs, need * sizeof(float));
        if (!t)
            return fail(c, ENOMEM, "out of memory for the rope table");
        c->rope_cs = t;
        c->rope_cap = need;
    }
    rope_cos_sin(p, pos0, n, c->rope_cs);
    c->rope_valid = 1;
    c->rope_pos0 = pos0;
    c->rope_n = n;
    c->rope_key = key;
    return 0;
}

static int cpu_rope(struct backend *b, struct btensor *x, int head_dim, const struct rope_params *p,
                    const int32_t *pos)
{
    struct cpu_backend *c = cb(b);
    FLUSH(c);
    if (head_dim <= 0 || x->ne0 % head_dim || p->dim_off < 0 || p->n_rot % 2 ||
        p->n_rot + p->dim_off > head_dim)
        return fail(c, EINVAL, "rope: bad head size");
    int64_t n = x->ne1;
    for (int64_t t = 1; t < n; t++)
        if (pos[t] != pos[0] + t)
            return fail(c, EINVAL, "rope: positions must be consecutive");
    int rc = rope_table(c, p, pos[0], (int)n);
    if (rc)
        return rc;
    int half = p->n_rot / 2;
    int64_t n_head = x->ne0 / head_dim;
    for (int64_t t = 0; t < n; t++) {
        const float *cs = c->rope_cs + (size_t)t * (size_t)half * 2;
        for (int64_t h = 0; h < n_head; h++) {
            float *v = x->data + t * x->ne0 + h * head_dim + p->dim_off;
            for (int i = 0; i < half; i++) {
                int i0 = p->mode == ROPE_MODE_NEOX ? i : 2 * i;
                int i1 = p->mode == ROPE_MODE_NEOX ? i + half : 2 * i + 1;
                float a = v[i0], bb = v[i1];
                v[i0] = a * cs[2 * i] - bb * cs[2 * i + 1];
                v[i1] = a * cs[2 * i + 1] + bb * cs[2 * i];
            }
        }
    }
    return 0;
}

/* ---- KV cache and attention ---- */

static void kv_free(struct cpu_backend *c)
{
    for (int l = 0; c->k_cache && l < c->kv.n_layer; l++) {
        free(c->k_cache[l]);
        if (c->v_cache)
            free(c->v_cache[l]);
    }
    free(c->k_cache);
    free(c->v_cache);
    free(c->att_scratch);
    c->k_cache = c->v_cache = NULL;
    c->att_scratch = NULL;
}

static int cpu_kv_init(struct backend *b, const struct kv_shape *s)
{
    struct cpu_backend *c = cb(b);
    FLUSH(c);
    kv_free(c);
    c->kv = *s;
    size_t el = s->type == KV_TYPE_F16 ? 2 : 4;
    if (s->n_layer < 0 || s->n_ctx <= 0 || s->k_width <= 0 || s->v_width <= 0 ||
        (s->v_in_k && s->v_width > s->k_width)) {
        c->kv.n_layer = 0;
        return fail(c, EINVAL, "kv_init: bad cache shape");
    }
    c->kv_bytes = 0;
    c->k_cache = calloc((size_t)s->n_layer, sizeof(void *));
    c->v_cache = calloc((size_t)s->n_layer, sizeof(void *));
    if (!c->k_cache || !c->v_cache)
        goto oom;
    for (int l = 0; l < s->n_layer; l++) {
        c->k_cache[l] = malloc((size_t)s->n_ctx * (size_t)s->k_width * el);
        if (!c->k_cache[l])
            goto oom;
        c->kv_bytes += (uint64_t)s->n_ctx * (uint64_t)s->k_width * el;
        if (s->v_in_k)
            continue;
        c->v_cache[l] = malloc((size_t)s->n_ctx * (size_t)s->v_width * el);
        if (!c->v_cache[l])
            goto oom;
        c->kv_bytes += (uint64_t)s->n_ctx * (uint64_t)s->v_width * el;
    }
    c->att_stride = (size_t)s->n_ctx + 16;
    c->att_scratch = malloc(c->att_stride * (size_t)pool_threads(c->pool) * sizeof(float));
    if (!c->att_scratch)
        goto oom;
    return 0;
oom:
    kv_free(c);
    c->kv.n_layer = 0;
    c->kv_bytes = 0;
    return fail(c, ENOMEM, "out of memory for a KV cache of %d tokens", s->n_ctx);
}

static int cpu_kv_store(struct backend *b, int layer, const struct btensor *k,
                        const struct btensor *v, int pos0)
{
    struct cpu_backend *c = cb(b);
    FLUSH(c);
    if (layer < 0 || layer >= c->kv.n_layer || k->ne0 != c->kv.k_width ||
        (c->kv.v_in_k ? v != NULL : !v || v->ne0 != c->kv.v_width || k->ne1 != v->ne1))
        return fail(c, EINVAL, "kv_store: shape mismatch");
    if (pos0 < 0 || pos0 + k->ne1 > c->kv.n_ctx)
        return fail(c, ENOSPC, "the context is full (%d tokens)", c->kv.n_ctx);
    size_t nk = (size_t)(k->ne0 * k->ne1), nv = v ? (size_t)(v->ne0 * v->ne1) : 0;
    if (c->kv.type == KV_TYPE_F32) {
        memcpy((float *)c->k_cache[layer] + (size_t)pos0 * (size_t)k->ne0, k->data, nk * 4);
        if (v)
            memcpy((float *)c->v_cache[layer] + (size_t)pos0 * (size_t)v->ne0, v->data, nv * 4);
    } else {
        quant_f16 *kd = (quant_f16 *)c->k_cache[layer] + (size_t)pos0 * (size_t)k->ne0;
        for (size_t i = 0; i < nk; i++)
            kd[i] = quant_f32_to_f16(k->data[i]);
        if (v) {
            quant_f16 *vd = (quant_f16 *)c->v_cache[layer] + (size_t)pos0 * (size_t)v->ne0;
            for (size_t i = 0; i < nv; i++)
                vd[i] = quant_f32_to_f16(v->data[i]);
        }
    }
    return 0;
}

struct att_job {
    struct cpu_backend *c;
    struct btensor *dst;
    const struct btensor *q;
    const void *k, *v;          /* the layer's cache rows, F32 or F16 */
    bool f16;
    int n_head, n_head_kv, head_dim, v_dim, pos0;
    float scale;
    atomic_int_fast64_t next;   /* next (token, head) task to hand out */
};

/* The attention loops: a dot product and y += a*x over one head's values,
 * over F32 or F16 keys and values (widened as they are loaded: the same
 * products and sums in the same order, so F16 gives what F32 copies of the
 * same values would).  Each has an AVX-512 and an AVX2 version chosen once
 * by cpu_select()'s ISA; the plain loops are the reference. */
static float dot_plain(const float *a, const float *b, int n)
{
    float s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += a[i + j] * b[i + j];
    for (; i < n; i++)
        s[0] += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static void axpy_plain(float a, const float *x, float *y, int n)
{
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

static float dot16_plain(const float *a, const quant_f16 *b, int n)
{
    float s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += a[i + j] * quant_f16_to_f32(b[i + j]);
    for (; i < n; i++)
        s[0] += a[i] * quant_f16_to_f32(b[i]);
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static void axpy16_plain(float a, const quant_f16 *x, float *y, int n)
{
    for (int i = 0; i < n; i++)
        y[i] += a * quant_f16_to_f32(x[i]);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx512f"))) static float dot_avx512(const float *a, const float *b, int n)
{
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    }
    for (; i + 16 <= n; i += 16)
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

__attribute__((target("avx512f"))) static void axpy_avx512(float a, const float *x, float *y, int n)
{
    __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

__attribute__((target("avx512f"))) static float dot16_avx512(const float *a, const quant_f16 *b, int n)
{
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i),
                               _mm512_cvtph_ps(_mm256_loadu_si256((const void *)(b + i))), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16),
                               _mm512_cvtph_ps(_mm256_loadu_si256((const void *)(b + i + 16))), acc1);
    }
    for (; i + 16 <= n; i += 16)
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i),
                               _mm512_cvtph_ps(_mm256_loadu_si256((const void *)(b + i))), acc0);
    float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for (; i < n; i++)
        s += a[i] * quant_f16_to_f32(b[i]);
    return s;
}

__attribute__((target("avx512f"))) static void axpy16_avx512(float a, const quant_f16 *x, float *y, int n)
{
    __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_cvtph_ps(_mm256_loadu_si256((const void *)(x + i))),
                                                _mm512_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * quant_f16_to_f32(x[i]);
}

/* The sum of v's eight lanes, in the order the dot kernels below always used. */
__attribute__((target("avx2,fma"))) static inline float hsum_avx2(__m256 v)
{
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b, int n)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    float s = hsum_avx2(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

__attribute__((target("avx2,fma"))) static void axpy_avx2(float a, const float *x, float *y, int n)
{
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

__attribute__((target("avx2,fma,f16c"))) static float dot16_avx2(const float *a, const quant_f16 *b, int n)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i),
                               _mm256_cvtph_ps(_mm_loadu_si128((const void *)(b + i))), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8),
                               _mm256_cvtph_ps(_mm_loadu_si128((const void *)(b + i + 8))), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i),
                               _mm256_cvtph_ps(_mm_loadu_si128((const void *)(b + i))), acc0);
    float s = hsum_avx2(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        s += a[i] * quant_f16_to_f32(b[i]);
    return s;
}

__attribute__((target("avx2,fma,f16c"))) static void axpy16_avx2(float a, const quant_f16 *x, float *y, int n)
{
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_cvtph_ps(_mm_loadu_si128((const void *)(x + i))),
                                                _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * quant_f16_to_f32(x[i]);
}
#endif

static void att_worker(void *arg, int ith, int nth)
{
    struct att_job *j = arg;
    struct cpu_backend *c = j->c;
    int64_t n_tok = j->q->ne1;
    int64_t total = n_tok * j->n_head;
    int group = j->n_head / j->n_head_kv;
    float *scores = c->att_scratch + (size_t)ith * c->att_stride;
    int64_t kw = c->kv.k_width, vw = c->kv.v_in_k ? kw : c->kv.v_width;
    (void)nth;   /* pool_run_any: tasks from the counter, to whichever threads come */
    for (int64_t task = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed); task < total;
         task = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) {
        int64_t t = task / j->n_head;
        int h = (int)(task % j->n_head);
        int g = h / group;
        int pos = j->pos0 + (int)t;
        const float *q = j->q->data + t * j->q->ne0 + (int64_t)h * j->head_dim;
        const float *k = (const float *)j->k + (int64_t)g * j->head_dim;
        const quant_f16 *k16 = (const quant_f16 *)j->k + (int64_t)g * j->head_dim;
        float mx = -INFINITY;
        for (int s = 0; s <= pos; s++) {
            float d = (j->f16 ? c->dot16(q, k16 + s * kw, j->head_dim)
                              : c->dot(q, k + s * kw, j->head_dim)) * j->scale;
            scores[s] = d;
            if (d > mx)
                mx = d;
        }
        double sum = 0;
        for (int s = 0; s <= pos; s++) {
            scores[s] = expf(scores[s] - mx);
            sum += scores[s];
        }
        float inv = (float)(1.0 / sum);
        float *out = j->dst->data + t * j->dst->ne0 + (int64_t)h * j->v_dim;
        memset(out, 0, (size_t)j->v_dim * sizeof(float));
        if (j->f16) {
            const quant_f16 *v = (const quant_f16 *)j->v + (int64_t)g * j->v_dim;
            for (int s = 0; s <= pos; s++)
                c->axpy16(scores[s] * inv, v + s * vw, out, j->v_dim);
        } else {
            const float *v = (const float *)j->v + (int64_t)g * j->v_dim;
            for (int s = 0; s <= pos; s++)
                c->axpy(scores[s] * inv, v + s * vw, out, j->v_dim);
        }
    }
}

static int cpu_attention(struct backend *b, struct btensor *dst, const struct btensor *q, int layer,
                         int n_head, int n_head_kv, int head_dim, int v_dim, int pos0, float scale)
{
    struct cpu_backend *c = cb(b);
    FLUSH(c);
    if (layer < 0 || layer >= c->kv.n_layer || n_head_kv <= 0 || n_head % n_head_kv ||
        q->ne0 != (int64_t)n_head * head_dim || dst->ne0 != (int64_t)n_head * v_dim ||
        (int64_t)n_head_kv * head_dim > c->kv.k_width || (int64_t)n_head_kv * v_dim > c->kv.v_width ||
        (c->kv.v_in_k && n_head_kv != 1))
        return fail(c, EINVAL, "attention: shape mismatch");
    if (pos0 < 0 || pos0 + q->ne1 > c->kv.n_ctx)
        return fail(c, ENOSPC, "the context is full (%d tokens)", c->kv.n_ctx);
    struct att_job j = {c, dst, q, c->k_cache[layer],
                        c->kv.v_in_k ? c->k_cache[layer] : c->v_cache[layer],
                        c->kv.type == KV_TYPE_F16, n_head, n_head_kv, head_dim, v_dim, pos0, scale, 0};
    atomic_init(&j.next, 0);
    pool_run_any(c->pool, att_worker, &j);
    return 0;
}

/* Runs the queued products: their results are in host memory after it. */
static int cpu_sync(struct backend *b)
{
    return mm_flush(cb(b), 0);
}

static const char *cpu_error(const struct backend *b) { return ((const struct cpu_backend *)b)->err; }
static const char *cpu_device_name(const struct backend *b)
{
    return ((const struct cpu_backend *)b)->kernels.isa_name;
}

static void cpu_free(struct backend *b)
{
    struct cpu_backend *c = cb(b);
    if (!c)
        return;
    c->n_pend = 0;   /* queued products die with the arena */
    kv_free(c);
    free(c->rope_cs);
    free(c->tmp);
    free(c->moe_rows);
    arena_free_blocks(c->blocks);
    cpu_scratch_free(&c->scratch);
    pool_free(c->pool);
    free(c);
}

static const struct backend_ops cpu_ops = {
    .name = "cpu",
    .free = cpu_free,
    .kv_init = cpu_kv_init,
    .alloc = cpu_alloc,
    .reset = cpu_reset,
    .get_rows = cpu_get_rows_op,
    .rms_norm = cpu_rms_norm,
    .matmul = cpu_matmul_op,
    .rope = cpu_rope,
    .kv_store = cpu_kv_store,
    .attention = cpu_attention,
    .swiglu = cpu_swiglu,
    .add = cpu_add,
    .read = cpu_read,
    .write = cpu_write,
    .copy_cols = cpu_copy_cols,
    .matmul_heads = cpu_matmul_heads,
    .moe = cpu_moe,
    .rows = cpu_rows,
    .error = cpu_error,
    .device_name = cpu_device_name,
    .sync = cpu_sync,
};

int cpu_backend_create(int n_threads, enum cpu_isa max, struct backend **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    struct cpu_backend *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return ENOMEM;
    }
    c->base.ops = &cpu_ops;
    cpu_select(&c->kernels, max);
    c->dot = dot_plain;
    c->axpy = axpy_plain;
    c->dot16 = dot16_plain;
    c->axpy16 = axpy16_plain;
#if defined(__x86_64__) && defined(__GNUC__)
    if (c->kernels.isa == CPU_ISA_AVX512) {
        c->dot = dot_avx512;
        c->axpy = axpy_avx512;
        c->dot16 = dot16_avx512;
        c->axpy16 = axpy16_avx512;
    } else if (c->kernels.isa == CPU_ISA_AVX2) {
        c->dot = dot_avx2;
        c->axpy = axpy_avx2;
        c->dot16 = dot16_avx2;
        c->axpy16 = axpy16_avx2;
    }
#endif
    cpu_scratch_init(&c->scratch);
    int rc = pool_create(n_threads < 1 ? 1 : n_threads, &c->pool);
    if (rc) {
        snprintf(err, errlen, "cannot start %d threads: %s", n_threads, strerror(rc));
        cpu_free(&c->base);
        return rc;
    }
    *out = &c->base;
    return 0;
}

const struct cpu_kernels *cpu_backend_kernels(const struct backend *b)
{
    return &((const struct cpu_backend *)b)->kernels;
}

uint64_t cpu_backend_kv_bytes(const struct backend *b)
{
    return ((const struct cpu_backend *)b)->kv_bytes;
}

int cpu_backend_threads(const struct backend *b)
{
    return pool_threads(((const struct cpu_backend *)b)->pool);
}
