/* cpu_matmul(): activations to the vec_dot_type, then kernel calls on tiles of
 * weight rows x tokens handed out to the pool's threads from an atomic
 * counter; cpu_get_rows(): the embedding lookup. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

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

struct mm_job {
    cpu_gemm_fn gemm;
    cpu_quantize_fn quantize;
    const unsigned char *w;
    size_t w_stride;
    const float *x;
    unsigned char *xq;        /* n_tok rows of x_stride bytes */
    size_t x_stride;
    float *y;
    int64_t n_in, n_out, n_tok;
    int64_t rows, cols;       /* tile shape */
    int64_t n_rchunks;        /* row chunks per column tile */
    int64_t n_tiles;
    atomic_int_fast64_t next; /* next tile to hand out */
};

static void mm_quantize_worker(void *arg, int ith, int nth)
{
    struct mm_job *j = arg;
    int64_t t0 = j->n_tok * ith / nth, t1 = j->n_tok * (ith + 1) / nth;
    for (int64_t t = t0; t < t1; t++)
        j->quantize(j->x + t * j->n_in, j->xq + (size_t)t * j->x_stride, j->n_in);
}

static void mm_tile(const struct mm_job *j, int64_t tile)
{
    int64_t ct = tile / j->n_rchunks, rc = tile % j->n_rchunks;
    int64_t r0 = rc * j->rows, c0 = ct * j->cols;
    int64_t nr = j->n_out - r0 < j->rows ? j->n_out - r0 : j->rows;
    int64_t nc = j->n_tok - c0 < j->cols ? j->n_tok - c0 : j->cols;
    j->gemm(j->n_in, (int)nr, (int)nc, j->w + (size_t)r0 * j->w_stride, j->w_stride,
            j->xq + (size_t)c0 * j->x_stride, j->x_stride,
            j->y + (size_t)c0 * (size_t)j->n_out + (size_t)r0, (size_t)j->n_out);
}

/* Each thread starts with tile ith, then takes the next free one. */
static void mm_gemm_worker(void *arg, int ith, int nth)
{
    (void)nth;
    struct mm_job *j = arg;
    for (int64_t t = ith; t < j->n_tiles;
         t = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed))
        mm_tile(j, t);
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

static void mm_plan(struct mm_job *j, int nth)
{
    if (j->n_tok == 1) {
        j->cols = 1;
    } else {
        int64_t fit = (int64_t)(MM_X_TILE_BYTES / j->x_stride);
        int64_t max = clamp64(fit, MM_COLS_MIN, MM_COLS_MAX);
        j->cols = j->n_tok <= max ? j->n_tok : even_split(j->n_tok, max, 4);
    }
    int64_t n_ctiles = (j->n_tok + j->cols - 1) / j->cols;
    /* Rows: in multiples of 16 (the kernels' register tiles; AVX-512
     * decodes weights for prompts in groups of 16 rows), as many as 64 while
     * every thread still gets MM_CHUNKS_PER_THREAD tiles or more. */
    int64_t rows = MM_ROWS_MAX;
    while (rows > MM_ROWS_MIN &&
           n_ctiles * ((j->n_out + rows - 1) / rows) < (int64_t)nth * MM_CHUNKS_PER_THREAD)
        rows /= 2;
    j->rows = j->n_out <= rows ? j->n_out : even_split(j->n_out, rows, 16);
    j->n_rchunks = (j->n_out + j->rows - 1) / j->rows;
    j->n_tiles = n_ctiles * j->n_rchunks;
}

int cpu_matmul(struct pool *p, const struct cpu_kernels *k, enum quant_type wtype,
               const void *w, int64_t n_in, int64_t n_out, const float *x, int64_t n_tok,
               float *y, struct cpu_scratch *s, char *err, size_t errlen)
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
    size_t w_stride = quant_row_bytes(wtype, n_in);
    size_t x_stride = quant_row_bytes(vdt, n_in);
    if (!w_stride || !x_stride)
        return err_set(err, errlen, EINVAL, "matmul: %lld values do not fill %s / %s blocks",
                    (long long)n_in, tr->name, quant_type_name(vdt));
    cpu_gemm_fn gemm = k->gemm[wtype];
    cpu_quantize_fn quantize = (int)vdt < QUANT_TYPE_COUNT ? k->quantize[vdt] : NULL;
    if (!gemm || (vdt != QUANT_TYPE_F32 && !quantize))
        return err_set(err, errlen, ENOTSUP, "matmul: no %s kernel for %s weights",
                    k->isa_name ? k->isa_name : "cpu", tr->name);
    size_t w_bytes, xq_bytes, y_len, x_len;
    if (ckd_mul_size(&w_bytes, (size_t)n_out, w_stride) ||
        ckd_mul_size(&xq_bytes, (size_t)n_tok, x_stride) ||
        ckd_mul_size(&y_len, (size_t)n_tok, (size_t)n_out) ||
        ckd_mul_size(&y_len, y_len, sizeof(float)) ||
        ckd_mul_size(&x_len, (size_t)n_tok, (size_t)n_in) ||
        ckd_mul_size(&x_len, x_len, sizeof(float)))
        return err_set(err, errlen, EINVAL, "matmul: %lld x %lld weight, %lld tokens: too large",
                    (long long)n_out, (long long)n_in, (long long)n_tok);
    if (n_out == 0 || n_tok == 0)
        return 0;

    struct mm_job j = {
        .gemm = gemm,
        .quantize = quantize,
        .w = w,
        .w_stride = w_stride,
        .x = x,
        .x_stride = x_stride,
        .y = y,
        .n_in = n_in,
        .n_out = n_out,
        .n_tok = n_tok,
    };
    int nth = p ? pool_threads(p) : 1;
    size_t work;
    if (ckd_mul_size(&work, w_bytes, (size_t)n_tok))
        work = SIZE_MAX;
    if (work < MM_SERIAL_BYTES)
        nth = 1;

    if (vdt == QUANT_TYPE_F32) {
        j.xq = (unsigned char *)(uintptr_t)x;   /* F32 activations are used in place */
    } else {
        if (scratch_reserve(s, xq_bytes))
            return err_set(err, errlen, ENOMEM, "matmul: out of memory for %zu bytes of %s",
                        xq_bytes, quant_type_name(vdt));
        j.xq = s->buf;
        if (nth > 1 && n_tok >= 2 * nth && (size_t)n_tok * (size_t)n_in >= MM_QUANT_PAR_FLOATS)
            pool_run(p, mm_quantize_worker, &j);
        else
            mm_quantize_worker(&j, 0, 1);
    }

    mm_plan(&j, nth);
    atomic_init(&j.next, nth);
    if (nth > 1)
        pool_run(p, mm_gemm_worker, &j);
    else
        mm_gemm_worker(&j, 0, 1);
    return 0;
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
