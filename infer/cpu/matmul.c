/* cpu_matmul() and cpu_mm_batch(): activations to the vec_dot_type, then
 * kernel calls on tiles of weight rows x tokens (of every product of a batch)
 * handed out to the pool's threads from an atomic counter; cpu_get_rows():
 * the embedding lookup. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/err.h"
#include "infer/ckd.h"
#include "infer/cpu/matmul.h"
#include "infer/cpu/pool.h"

/* Tile sizes.  Rows: 16..64 per chunk (multiples of 16), several chunks per
 * thread so that threads finish together even when one is slowed down.
 * Columns (tokens): up to 64, fewer when the quantized activation tile would
 * outgrow MM_X_TILE_BYTES (about an L2; the 1.5B's widest, ffn_down's 8960
 * Q8_0 values x 64 tokens, is 610 KB).  64 x 64 is what the AVX-512 prompt
 * kernels decode weights for at once: narrower tiles decode the same weights
 * more often (measured on ffn_down, 8960 in x 1536 out, Q8_0, 512 tokens:
 * 27-column tiles ran at 55-65% of the speed of 64-column ones).  Tiles are
 * numbered column tile first, so all threads work in one activation tile at
 * a time and each weight chunk is read from memory once per column tile. */
#define MM_ROWS_MIN 16
#define MM_ROWS_MAX 64
#define MM_CHUNKS_PER_THREAD 4
#define MM_COLS_MIN 8
#define MM_COLS_MAX 64
#define MM_X_TILE_BYTES (1024 * 1024)
/* Below this many weight bytes x tokens the whole product runs on the
 * caller: waking the pool would cost more than it saves. */
#define MM_SERIAL_BYTES (32 * 1024)
/* Quantize the activations on the pool only above this many floats. */
#define MM_QUANT_PAR_FLOATS 32768


void cpu_scratch_init(struct cpu_scratch *s)
{
    s->buf = NULL;
    s->cap = 0;
}

void cpu_scratch_free(struct cpu_scratch *s)
{
    if (!s)
        return;
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}

/* Makes s->buf hold at least n bytes; 0 or ENOMEM (s unchanged then). */
static int scratch_reserve(struct cpu_scratch *s, size_t n)
{
    if (n <= s->cap)
        return 0;
    size_t cap;
    if (ckd_add_size(&cap, n, 4095))
        return ENOMEM;
    cap &= ~(size_t)4095;   /* aligned_alloc wants a multiple of the alignment */
    void *b = aligned_alloc(64, cap);
    if (!b)
        return ENOMEM;
    free(s->buf);
    s->buf = b;
    s->cap = cap;
    return 0;
}

/* One product of a batch, planned as cpu_matmul() plans it alone. */
struct mm_prod {
    cpu_gemm_fn gemm;
    const unsigned char *w;
    size_t w_stride;
    const unsigned char *xq;  /* n_tok rows of x_stride bytes */
    size_t x_stride;
    float *y;
    int64_t n_out;
    int64_t rows, cols;       /* tile shape */
    int64_t n_rchunks;        /* row chunks per column tile */
    int64_t n_tiles;
};

struct mm_job {
    struct mm_prod prod[CPU_MM_BATCH_MAX];
    int n_prod;
    int64_t first[CPU_MM_BATCH_MAX + 1]; /* tile number where product i starts */
    int64_t n_in, n_tok;
    bool swiglu;              /* product 0's tiles do product 1's too, then swiglu */
    atomic_int_fast64_t next; /* next tile to hand out */
};

struct mm_qjob {
    cpu_quantize_fn quantize;
    const float *x;
    unsigned char *xq;
    size_t x_stride;
    int64_t n_in, n_tok;
};

static void mm_quantize_worker(void *arg, int ith, int nth)
{
    struct mm_qjob *j = arg;
    int64_t t0 = j->n_tok * ith / nth, t1 = j->n_tok * (ith + 1) / nth;
    for (int64_t t = t0; t < t1; t++)
        j->quantize(j->x + t * j->n_in, j->xq + (size_t)t * j->x_stride, j->n_in);
}

/* Rows r0.., columns c0.. of tile number `tile` of product pr, and its size. */
static void mm_tile_span(const struct mm_prod *pr, int64_t n_tok, int64_t tile, int64_t *r0,
                         int64_t *nr, int64_t *c0, int64_t *nc)
{
    int64_t ct = tile / pr->n_rchunks, rc = tile % pr->n_rchunks;
    *r0 = rc * pr->rows;
    *c0 = ct * pr->cols;
    *nr = pr->n_out - *r0 < pr->rows ? pr->n_out - *r0 : pr->rows;
    *nc = n_tok - *c0 < pr->cols ? n_tok - *c0 : pr->cols;
}

static void mm_tile(const struct mm_prod *pr, int64_t n_in, int64_t n_tok, int64_t tile)
{
    int64_t r0, nr, c0, nc;
    mm_tile_span(pr, n_tok, tile, &r0, &nr, &c0, &nc);
    pr->gemm(n_in, (int)nr, (int)nc, pr->w + (size_t)r0 * pr->w_stride, pr->w_stride,
             pr->xq + (size_t)c0 * pr->x_stride, pr->x_stride,
             pr->y + (size_t)c0 * (size_t)pr->n_out + (size_t)r0, (size_t)pr->n_out);
}

static void mm_run_tile(const struct mm_job *j, int64_t t)
{
    int i = 0;
    while (t >= j->first[i + 1])
        i++;
    const struct mm_prod *pr = &j->prod[i];
    t -= j->first[i];
    mm_tile(pr, j->n_in, j->n_tok, t);
    if (i || !j->swiglu)
        return;
    /* the same rows of product 1 (same plan), then swiglu while they are in cache */
    const struct mm_prod *up = &j->prod[1];
    mm_tile(up, j->n_in, j->n_tok, t);
    int64_t r0, nr, c0, nc;
    mm_tile_span(pr, j->n_tok, t, &r0, &nr, &c0, &nc);
    for (int64_t c = c0; c < c0 + nc; c++) {
        float *g = pr->y + (size_t)c * (size_t)pr->n_out + (size_t)r0;
        const float *u = up->y + (size_t)c * (size_t)up->n_out + (size_t)r0;
        for (int64_t r = 0; r < nr; r++)
            g[r] = cpu_swiglu1(g[r], u[r]);
    }
}

/* Threads take the next free tile until none is left (pool_run_any: a
 * worker that comes late finds none, and the caller alone can do them all). */
static void mm_gemm_worker(void *arg, int ith, int nth)
{
    (void)ith;
    (void)nth;
    struct mm_job *j = arg;
    int64_t n_tiles = j->first[j->n_prod];
    for (int64_t t = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed); t < n_tiles;
         t = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed))
        mm_run_tile(j, t);
}

struct mm_ew {
    float *g;
    const float *u;
    int64_t n;
};

static void mm_swiglu_worker(void *arg, int ith, int nth)
{
    struct mm_ew *e = arg;
    int64_t lo = e->n * ith / nth, hi = e->n * (ith + 1) / nth;
    for (int64_t i = lo; i < hi; i++)
        e->g[i] = cpu_swiglu1(e->g[i], e->u[i]);
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Splits n into the fewest parts of at most max, then evens them out and
 * rounds up to a multiple of align (keeping the count). */
static int64_t even_split(int64_t n, int64_t max, int64_t align)
{
    int64_t parts = (n + max - 1) / max;
    int64_t size = (n + parts - 1) / parts;
    size = (size + align - 1) / align * align;
    return size < max ? size : max;
}

static void mm_plan(struct mm_prod *j, int64_t n_tok, int nth)
{
    if (n_tok == 1) {
        j->cols = 1;
    } else {
        int64_t fit = (int64_t)(MM_X_TILE_BYTES / j->x_stride);
        int64_t max = clamp64(fit, MM_COLS_MIN, MM_COLS_MAX);
        j->cols = n_tok <= max ? n_tok : even_split(n_tok, max, 4);
    }
    int64_t n_ctiles = (n_tok + j->cols - 1) / j->cols;
    /* Rows: in multiples of 16 (the kernels' register tiles; AVX-512
     * decodes weights for prompts in groups of 16 rows), as many as 64 while
     * every thread still gets MM_CHUNKS_PER_THREAD tiles or more. */
    int64_t rows = MM_ROWS_MAX;
    while (rows > MM_ROWS_MIN &&
           n_ctiles * ((j->n_out + rows - 1) / rows) < (int64_t)nth * MM_CHUNKS_PER_THREAD)
        rows /= 2;
    j->rows = j->n_out <= rows ? j->n_out : even_split(j->n_out, rows, 16);
    j->n_rchunks = j->n_out ? (j->n_out + j->rows - 1) / j->rows : 0;
    j->n_tiles = j->n_out ? n_ctiles * j->n_rchunks : 0;
}

/* The shape and kernel checks; the strides on success. */
static int mm_check(const struct cpu_kernels *k, enum quant_type wtype, int64_t n_in,
                    int64_t n_out, int64_t n_tok, size_t *w_stride, size_t *x_stride,
                    char *err, size_t errlen)
{
    const struct quant_traits *tr = quant_traits(wtype);
    if (!tr || (int)wtype < 0 || (int)wtype >= QUANT_TYPE_COUNT)
        return err_set(err, errlen, ENOTSUP, "matmul: unsupported weight type %d", (int)wtype);
    if (n_in <= 0 || n_in % tr->block_size || n_out < 0 || n_tok < 0)
        return err_set(err, errlen, EINVAL,
                    "matmul: bad shape: %s weight %lld x %lld, %lld tokens (block size %d)",
                    tr->name, (long long)n_out, (long long)n_in, (long long)n_tok,
                    tr->block_size);
    enum quant_type vdt = tr->vec_dot_type;
    *w_stride = quant_row_bytes(wtype, n_in);
    *x_stride = quant_row_bytes(vdt, n_in);
    if (!*w_stride || !*x_stride)
        return err_set(err, errlen, EINVAL, "matmul: %lld values do not fill %s / %s blocks",
                    (long long)n_in, tr->name, quant_type_name(vdt));
    cpu_gemm_fn gemm = k->gemm[wtype];
    cpu_quantize_fn quantize = (int)vdt < QUANT_TYPE_COUNT ? k->quantize[vdt] : NULL;
    if (!gemm || (vdt != QUANT_TYPE_F32 && !quantize))
        return err_set(err, errlen, ENOTSUP, "matmul: no %s kernel for %s weights",
                    k->isa_name ? k->isa_name : "cpu", tr->name);
    size_t w_bytes, xq_bytes, y_len, x_len;
    if (ckd_mul_size(&w_bytes, (size_t)n_out, *w_stride) ||
        ckd_mul_size(&xq_bytes, (size_t)n_tok, *x_stride) ||
        ckd_mul_size(&y_len, (size_t)n_tok, (size_t)n_out) ||
        ckd_mul_size(&y_len, y_len, sizeof(float)) ||
        ckd_mul_size(&x_len, (size_t)n_tok, (size_t)n_in) ||
        ckd_mul_size(&x_len, x_len, sizeof(float)))
        return err_set(err, errlen, EINVAL, "matmul: %lld x %lld weight, %lld tokens: too large",
                    (long long)n_out, (long long)n_in, (long long)n_tok);
    return 0;
}

int cpu_matmul_check(const struct cpu_kernels *k, enum quant_type wtype, int64_t n_in,
                     int64_t n_out, int64_t n_tok, char *err, size_t errlen)
{
    size_t ws, xs;
    return mm_check(k, wtype, n_in, n_out, n_tok, &ws, &xs, err, errlen);
}

int cpu_mm_batch(struct pool *p, const struct cpu_kernels *k, const struct cpu_mm *ops,
                 int n_ops, unsigned flags, int64_t n_in, const float *x, int64_t n_tok,
                 struct cpu_scratch *s, char *err, size_t errlen)
{
    bool swiglu = flags & CPU_MM_SWIGLU;
    if (n_ops < 1 || n_ops > CPU_MM_BATCH_MAX || (flags & ~CPU_MM_SWIGLU) ||
        (swiglu && (n_ops < 2 || ops[0].n_out != ops[1].n_out)))
        return err_set(err, errlen, EINVAL, "matmul: bad batch of %d products (flags %u)",
                       n_ops, flags);
    struct mm_job j;
    memset(&j, 0, sizeof j);
    j.n_prod = n_ops;
    j.n_in = n_in;
    j.n_tok = n_tok;
    /* activation buffers: one per distinct vec_dot_type, in the scratch */
    size_t xq_off[CPU_MM_BATCH_MAX], xq_total = 0;
    int nth_pool = p ? pool_threads(p) : 1, nth_job = 1;
    for (int i = 0; i < n_ops; i++) {
        struct mm_prod *pr = &j.prod[i];
        int rc = mm_check(k, ops[i].wtype, n_in, ops[i].n_out, n_tok, &pr->w_stride,
                          &pr->x_stride, err, errlen);
        if (rc)
            return rc;
        enum quant_type vdt = quant_traits(ops[i].wtype)->vec_dot_type;
        pr->gemm = k->gemm[ops[i].wtype];
        pr->w = ops[i].w;
        pr->y = ops[i].y;
        pr->n_out = ops[i].n_out;
        xq_off[i] = SIZE_MAX;
        if (vdt == QUANT_TYPE_F32)
            continue;
        for (int e = 0; e < i; e++)
            if (xq_off[e] != SIZE_MAX && quant_traits(ops[e].wtype)->vec_dot_type == vdt)
                xq_off[i] = xq_off[e];
        if (xq_off[i] == SIZE_MAX) {
            size_t bytes = (size_t)n_tok * pr->x_stride;   /* checked by mm_check */
            xq_off[i] = xq_total;
            if (ckd_add_size(&xq_total, xq_total, (bytes + 63) & ~(size_t)63))
                return err_set(err, errlen, EINVAL, "matmul: batch too large");
        }
    }
    bool any = false;
    for (int i = 0; i < n_ops; i++)
        any |= ops[i].n_out > 0;
    if (n_tok == 0 || !any)
        return 0;
    if (xq_total && scratch_reserve(s, xq_total))
        return err_set(err, errlen, ENOMEM, "matmul: out of memory for %zu bytes of activations",
                       xq_total);
    for (int i = 0; i < n_ops; i++) {
        struct mm_prod *pr = &j.prod[i];
        enum quant_type vdt = quant_traits(ops[i].wtype)->vec_dot_type;
        if (vdt == QUANT_TYPE_F32) {
            pr->xq = (const unsigned char *)x;   /* F32 activations are used in place */
        } else {
            unsigned char *xq = (unsigned char *)s->buf + xq_off[i];
            pr->xq = xq;
            bool done = false;
            for (int e = 0; e < i; e++)
                done |= j.prod[e].xq == xq;
            if (!done) {
                struct mm_qjob q = {k->quantize[vdt], x, xq, pr->x_stride, n_in, n_tok};
                if (nth_pool > 1 && n_tok >= 2 * nth_pool &&
                    (size_t)n_tok * (size_t)n_in >= MM_QUANT_PAR_FLOATS)
                    pool_run(p, mm_quantize_worker, &q);
                else
                    mm_quantize_worker(&q, 0, 1);
            }
        }
        /* the plan cpu_matmul() would make for this product alone */
        size_t work;
        if (ckd_mul_size(&work, (size_t)pr->n_out * pr->w_stride, (size_t)n_tok))
            work = SIZE_MAX;
        int nth = work < MM_SERIAL_BYTES ? 1 : nth_pool;
        if (nth > nth_job)
            nth_job = nth;
        mm_plan(pr, n_tok, nth);
    }
    /* fused swiglu needs both products cut into the same tiles */
    j.swiglu = swiglu && j.prod[0].rows == j.prod[1].rows && j.prod[0].cols == j.prod[1].cols;
    for (int i = 0; i < n_ops; i++)
        j.first[i + 1] = j.first[i] + (j.swiglu && i == 1 ? 0 : j.prod[i].n_tiles);
    atomic_init(&j.next, 0);
    if (nth_job > 1)
        pool_run_any(p, mm_gemm_worker, &j);
    else
        mm_gemm_worker(&j, 0, 1);
    if (swiglu && !j.swiglu) {
        struct mm_ew e = {ops[0].y, ops[1].y, n_tok * ops[0].n_out};
        if (nth_pool > 1 && e.n >= MM_QUANT_PAR_FLOATS)
            pool_run(p, mm_swiglu_worker, &e);
        else
            mm_swiglu_worker(&e, 0, 1);
    }
    return 0;
}

int cpu_matmul(struct pool *p, const struct cpu_kernels *k, enum quant_type wtype,
               const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok,
               float *y, struct cpu_scratch *s, char *err, size_t errlen)
{
    struct cpu_mm op = {wtype, w, n_out, y};
    return cpu_mm_batch(p, k, &op, 1, 0, n_in, x, n_tok, s, err, errlen);
}

int cpu_get_rows(enum quant_type type, const void *w, int64_t n_in, int64_t n_rows,
                 const int32_t *ids, int64_t n, float *out, char *err, size_t errlen)
{
    const struct quant_traits *tr = quant_traits(type);
    if (!tr || !tr->dequantize)
        return err_set(err, errlen, ENOTSUP, "get_rows: cannot dequantize type %s",
                    quant_type_name(type));
    size_t row_bytes = n_in > 0 ? quant_row_bytes(type, n_in) : 0;
    size_t total;
    if (!row_bytes || n_rows < 0 || n < 0 ||
        ckd_mul_size(&total, (size_t)n_rows, row_bytes) ||
        ckd_mul_size(&total, (size_t)n, (size_t)n_in))
        return err_set(err, errlen, EINVAL, "get_rows: bad shape: %s %lld x %lld, %lld ids",
                    tr->name, (long long)n_rows, (long long)n_in, (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= n_rows)
            return err_set(err, errlen, EINVAL, "get_rows: id %ld outside [0, %lld)",
                        (long)ids[i], (long long)n_rows);
    const unsigned char *wb = w;
    for (int64_t i = 0; i < n; i++)
        tr->dequantize(wb + (size_t)ids[i] * row_bytes, out + (size_t)i * (size_t)n_in, n_in);
    return 0;
}
