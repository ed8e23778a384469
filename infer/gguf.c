/* GGUF reader: maps the file, validates the header, the metadata and the
 * tensor directory against the bytes that remain, and answers lookups by key
 * and tensor name through two small hash indexes. */
#include "infer/err.h"
#include "infer/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "infer/ckd.h"

/* Every ggml tensor type id: values per block and bytes per block.  Ids ggml
 * removed keep their name with block_size 0 (ENOTSUP); ids past the table or
 * without a name are unknown (EBADMSG). */
struct tensor_type {
    const char *name;
    int64_t block_size;
    size_t block_bytes;
};

static const struct tensor_type tensor_types[] = {
    [0] = { "F32", 1, 4 },
    [1] = { "F16", 1, 2 },
    [2] = { "Q4_0", 32, 18 },
    [3] = { "Q4_1", 32, 20 },
    [4] = { "Q4_2", 0, 0 },          /* removed from ggml */
    [5] = { "Q4_3", 0, 0 },          /* removed from ggml */
    [6] = { "Q5_0", 32, 22 },
    [7] = { "Q5_1", 32, 24 },
    [8] = { "Q8_0", 32, 34 },
    [9] = { "Q8_1", 32, 36 },
    [10] = { "Q2_K", 256, 84 },
    [11] = { "Q3_K", 256, 110 },
    [12] = { "Q4_K", 256, 144 },
    [13] = { "Q5_K", 256, 176 },
    [14] = { "Q6_K", 256, 210 },
    [15] = { "Q8_K", 256, 292 },
    [16] = { "IQ2_XXS", 256, 66 },
    [17] = { "IQ2_XS", 256, 74 },
    [18] = { "IQ3_XXS", 256, 98 },
    [19] = { "IQ1_S", 256, 50 },
    [20] = { "IQ4_NL", 32, 18 },
    [21] = { "IQ3_S", 256, 110 },
    [22] = { "IQ2_S", 256, 82 },
    [23] = { "IQ4_XS", 256, 136 },
    [24] = { "I8", 1, 1 },
    [25] = { "I16", 1, 2 },
    [26] = { "I32", 1, 4 },
    [27] = { "I64", 1, 8 },
    [28] = { "F64", 1, 8 },
    [29] = { "IQ1_M", 256, 56 },
    [30] = { "BF16", 1, 2 },
    [31] = { "Q4_0_4_4", 0, 0 },     /* removed: repacked at load time now */
    [32] = { "Q4_0_4_8", 0, 0 },
    [33] = { "Q4_0_8_8", 0, 0 },
    [34] = { "TQ1_0", 256, 54 },
    [35] = { "TQ2_0", 256, 66 },
    [36] = { "IQ4_NL_4_4", 0, 0 },
    [37] = { "IQ4_NL_4_8", 0, 0 },
    [38] = { "IQ4_NL_8_8", 0, 0 },
    [39] = { "MXFP4", 32, 17 },
};
#define N_TENSOR_TYPES (sizeof tensor_types / sizeof tensor_types[0])

static const char *const value_type_names[GGUF_TYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64",
};

/* Bytes of one scalar of each type; 0 for STRING and ARRAY. */
static const size_t value_type_size[GGUF_TYPE_COUNT] = {
    1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8,
};

struct gguf_kv {
    struct gguf_str key;        /* raw, in the mapping */
    const char *name;           /* NUL-terminated copy */
    struct gguf_value val;
};

struct gguf_ent {               /* a tensor and its raw name in the mapping */
    struct gguf_tensor t;
    struct gguf_str raw;
};

/* Open addressing over item indexes (slot = index + 1, 0 = empty). */
struct gguf_index {
    uint32_t *slot;
    size_t mask;
};

struct gguf {
    char *path;
    const uint8_t *base;
    size_t size;
    void *map;                  /* NULL for gguf_open_memory */
    uint32_t version;
    size_t alignment;
    size_t data_start;
    int64_t n_kv;
    struct gguf_kv *kv;
    int64_t n_tensors;
    struct gguf_ent *ent;
    char *names;                /* pool of the NUL-terminated keys and names */
    struct gguf_index kv_ix, t_ix;
};

/* Parse state: the read position and what is being read, for messages. */
struct rd {
    struct gguf *g;
    size_t pos;
    char *err;
    size_t errlen;
    char ctx[160];
};

#define MAX_ITEMS ((uint64_t)INT32_MAX)
/* Smallest encodings: a kv is a key length, a type and a 1-byte value; a
 * tensor info is a name length, n_dims, one dimension, a type and an offset. */
#define MIN_KV_BYTES 13u
#define MIN_TENSOR_BYTES 32u


static int rd_fail(struct rd *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int rd_fail(struct rd *r, int code, const char *fmt, ...)
{
    if (r->err && r->errlen > 0) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(r->err, r->errlen, "%s: %s: %s", r->g->path, r->ctx, msg);
    }
    return code;
}

/* A name from the file, fit for a message: at most 96 bytes, control bytes as '?'. */
static void printable(char *dst, size_t cap, const char *src, uint64_t len)
{
    size_t n = len < cap - 4 ? (size_t)len : cap - 4;
    if (n > 96)
        n = 96;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (n < len)
        memcpy(dst + n, "...", 3), n += 3;
    dst[n] = 0;
}

static void set_ctx(struct rd *r, const char *what, const char *name, uint64_t len)
{
    char buf[104];
    printable(buf, sizeof buf, name, len);
    snprintf(r->ctx, sizeof r->ctx, "%s '%s'", what, buf);
}

static size_t rd_left(const struct rd *r) { return r->g->size - r->pos; }

static uint64_t load_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Reads an n-byte little-endian integer; false (and an error) when truncated. */
static int rd_uint(struct rd *r, size_t n, uint64_t *v, const char *what)
{
    *v = 0;
    if (rd_left(r) < n)
        return rd_fail(r, EBADMSG, "%s runs past end of file (offset %zu, file is %zu bytes)", what,
                       r->pos, r->g->size);
    *v = load_le(r->g->base + r->pos, n);
    r->pos += n;
    return 0;
}

static int rd_u32(struct rd *r, uint32_t *v, const char *what)
{
    uint64_t x;
    int rc = rd_uint(r, 4, &x, what);
    *v = (uint32_t)x;
    return rc;
}

static int rd_str(struct rd *r, struct gguf_str *s, const char *what)
{
    uint64_t len;
    int rc = rd_uint(r, 8, &len, what);
    if (rc)
        return rc;
    if (len > rd_left(r))
        return rd_fail(r, EBADMSG, "%s %" PRIu64 " runs past end of file (offset %zu, file is %zu bytes)",
                       what, len, r->pos, r->g->size);
    s->ptr = (const char *)r->g->base + r->pos;
    s->len = len;
    r->pos += (size_t)len;
    return 0;
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static int index_init(struct gguf_index *ix, int64_t n)
{
    size_t cap = 8;
    while (cap < (size_t)n * 2)
        cap *= 2;
    ix->slot = calloc(cap, sizeof *ix->slot);
    ix->mask = cap - 1;
    return ix->slot ? 0 : ENOMEM;
}

/* The slot holding the item named (p, n), or the empty slot where it would go. */
static size_t index_probe(const struct gguf_index *ix, const struct gguf_str *names, size_t stride,
                          const char *p, size_t n)
{
    size_t i = (size_t)hash_bytes(p, n) & ix->mask;
    for (;;) {
        uint32_t s = ix->slot[i];
        if (s == 0)
            return i;
        const struct gguf_str *k = (const struct gguf_str *)((const char *)names + (size_t)(s - 1) * stride);
        if (k->len == n && memcmp(k->ptr, p, n) == 0)
            return i;
        i = (i + 1) & ix->mask;
    }
}

static int parse_string_array(struct rd *r, struct gguf_value *v, uint64_t n)
{
    if (n > rd_left(r) / 8)
        return rd_fail(r, EBADMSG, "array of %" PRIu64 " strings runs past end of file (offset %zu, file is %zu bytes)",
                       n, r->pos, r->g->size);
    struct gguf_str *s = NULL;
    if (n > 0) {
        s = malloc((size_t)n * sizeof *s);
        if (!s)
            return rd_fail(r, ENOMEM, "out of memory for %" PRIu64 " strings", n);
    }
    const uint8_t *base = r->g->base;
    size_t size = r->g->size, pos = r->pos;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = 0;
        if (size - pos >= 8)
            len = load_le(base + pos, 8);
        if (size - pos < 8 || len > size - pos - 8) {
            /* rd_str says what exactly is wrong */
            char what[64];
            snprintf(what, sizeof what, "string %" PRIu64 " of %" PRIu64 ": length", i, n);
            r->pos = pos;
            int rc = rd_str(r, &s[i], what);
            free(s);
            return rc ? rc : rd_fail(r, EBADMSG, "bad string %" PRIu64, i);
        }
        s[i].ptr = (const char *)base + pos + 8;
        s[i].len = len;
        pos += 8 + (size_t)len;
    }
    r->pos = pos;
    v->v.arr.data = s;
    return 0;
}

static int parse_value(struct rd *r, uint32_t type, struct gguf_value *v)
{
    int rc;
    if (type >= GGUF_TYPE_COUNT)
        return rd_fail(r, EBADMSG, "unknown value type %" PRIu32, type);
    v->type = (enum gguf_type)type;
    if (type == GGUF_TYPE_STRING)
        return rd_str(r, &v->v.s, "string length");
    if (type == GGUF_TYPE_ARRAY) {
        uint32_t et;
        uint64_t n;
        if ((rc = rd_u32(r, &et, "array element type")) || (rc = rd_uint(r, 8, &n, "array length")))
            return rc;
        if (et == GGUF_TYPE_ARRAY)
            return rd_fail(r, EBADMSG, "arrays of arrays are not supported");
        if (et >= GGUF_TYPE_COUNT)
            return rd_fail(r, EBADMSG, "unknown array element type %" PRIu32, et);
        v->v.arr.type = (enum gguf_type)et;
        v->v.arr.n = n;
        v->v.arr.data = NULL;
        if (et == GGUF_TYPE_STRING)
            return parse_string_array(r, v, n);
        uint64_t bytes;
        if (ckd_mul_u64(&bytes, n, value_type_size[et]) || bytes > rd_left(r))
            return rd_fail(r, EBADMSG, "array of %" PRIu64 " %s elements runs past end of file "
                           "(offset %zu, file is %zu bytes)", n, value_type_names[et], r->pos, r->g->size);
        const uint8_t *p = r->g->base + r->pos;
        if (et == GGUF_TYPE_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (p[i] > 1)
                    return rd_fail(r, EBADMSG, "bool element %" PRIu64 " is %u, not 0 or 1", i, p[i]);
        v->v.arr.data = p;
        r->pos += (size_t)bytes;
        return 0;
    }
    size_t sz = value_type_size[type];
    uint64_t x;
    if ((rc = rd_uint(r, sz, &x, "value")))
        return rc;
    switch (v->type) {
    case GGUF_TYPE_INT8: v->v.i = (int8_t)(uint8_t)x; break;
    case GGUF_TYPE_INT16: v->v.i = (int16_t)(uint16_t)x; break;
    case GGUF_TYPE_INT32: v->v.i = (int32_t)(uint32_t)x; break;
    case GGUF_TYPE_INT64: v->v.i = (int64_t)x; break;
    case GGUF_TYPE_FLOAT32: {
        uint32_t b = (uint32_t)x;
        float f;
        memcpy(&f, &b, sizeof f);
        v->v.f = f;
        break;
    }
    case GGUF_TYPE_FLOAT64: memcpy(&v->v.f, &x, sizeof v->v.f); break;
    case GGUF_TYPE_BOOL:
        if (x > 1)
            return rd_fail(r, EBADMSG, "bool value %" PRIu64 " is not 0 or 1", x);
        v->v.u = x;
        break;
    default: v->v.u = x; break;
    }
    return 0;
}

static void free_value(struct gguf_value *v)
{
    if (v->type == GGUF_TYPE_ARRAY && v->v.arr.type == GGUF_TYPE_STRING)
        free((void *)v->v.arr.data);
}

static int parse_kvs(struct rd *r, uint64_t n_kv)
{
    struct gguf *g = r->g;
    int rc;
    for (uint64_t i = 0; i < n_kv; i++) {
        struct gguf_kv *kv = &g->kv[i];
        snprintf(r->ctx, sizeof r->ctx, "key #%" PRIu64, i);
        if ((rc = rd_str(r, &kv->key, "key length")))
            return rc;
        if (memchr(kv->key.ptr, 0, (size_t)kv->key.len))
            return rd_fail(r, EBADMSG, "key contains a NUL byte");
        set_ctx(r, "key", kv->key.ptr, kv->key.len);
        size_t s = index_probe(&g->kv_ix, &g->kv[0].key, sizeof *kv, kv->key.ptr, (size_t)kv->key.len);
        if (g->kv_ix.slot[s])
            return rd_fail(r, EBADMSG, "duplicate key");
        uint32_t type;
        if ((rc = rd_u32(r, &type, "value type")))
            return rc;
        kv->val.type = GGUF_TYPE_UINT8;     /* nothing to free if parse_value fails */
        if ((rc = parse_value(r, type, &kv->val)))
            return rc;
        g->n_kv = (int64_t)i + 1;
        g->kv_ix.slot[s] = (uint32_t)i + 1;
        if (kv->key.len == 17 && memcmp(kv->key.ptr, "general.alignment", 17) == 0) {
            if (kv->val.type != GGUF_TYPE_UINT32)
                return rd_fail(r, EBADMSG, "has type %s, expected uint32", value_type_names[kv->val.type]);
            uint64_t a = kv->val.v.u;
            if (a == 0 || (a & (a - 1)) != 0)
                return rd_fail(r, EBADMSG, "alignment %" PRIu64 " is not a power of two", a);
            g->alignment = (size_t)a;
        }
    }
    return 0;
}

static int parse_tensor(struct rd *r, int64_t i)
{
    struct gguf *g = r->g;
    struct gguf_ent *e = &g->ent[i];
    struct gguf_tensor *t = &e->t;
    int rc;
    snprintf(r->ctx, sizeof r->ctx, "tensor #%" PRId64, i);
    if ((rc = rd_str(r, &e->raw, "name length")))
        return rc;
    if (memchr(e->raw.ptr, 0, (size_t)e->raw.len))
        return rd_fail(r, EBADMSG, "name contains a NUL byte");
    set_ctx(r, "tensor", e->raw.ptr, e->raw.len);
    uint32_t n_dims;
    if ((rc = rd_u32(r, &n_dims, "n_dims")))
        return rc;
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return rd_fail(r, EBADMSG, "n_dims %" PRIu32 " is not in 1..%d", n_dims, GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    int64_t n_el = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t x = 1;
        if ((uint32_t)d < n_dims && (rc = rd_uint(r, 8, &x, "dimension")))
            return rc;
        if (x > (uint64_t)INT64_MAX)
            return rd_fail(r, EBADMSG, "dimension %d is negative (%" PRId64 ")", d, (int64_t)x);
        if (x == 0)
            return rd_fail(r, EBADMSG, "dimension %d is 0", d);
        t->ne[d] = (int64_t)x;
        if (ckd_mul_i64(&n_el, n_el, t->ne[d]))
            return rd_fail(r, EBADMSG, "element count overflows at dimension %d", d);
    }
    t->n_elements = n_el;
    uint32_t type;
    if ((rc = rd_u32(r, &type, "type")))
        return rc;
    if (type >= N_TENSOR_TYPES || !tensor_types[type].name)
        return rd_fail(r, EBADMSG, "unknown tensor type %" PRIu32, type);
    const struct tensor_type *tt = &tensor_types[type];
    if (tt->block_size == 0)
        return rd_fail(r, ENOTSUP, "tensor type %" PRIu32 " (%s) is no longer supported", type, tt->name);
    t->type = (enum quant_type)type;
    if (t->ne[0] % tt->block_size != 0)
        return rd_fail(r, EBADMSG, "row length %" PRId64 " is not a multiple of the block size %" PRId64 " of %s",
                       t->ne[0], tt->block_size, tt->name);
    size_t row_bytes, size;
    if (ckd_mul_size(&row_bytes, (size_t)(t->ne[0] / tt->block_size), tt->block_bytes) ||
        ckd_mul_size(&size, row_bytes, (size_t)(n_el / t->ne[0])))
        return rd_fail(r, EBADMSG, "byte size of %" PRId64 " %s elements overflows", n_el, tt->name);
    t->size = size;
    if ((rc = rd_uint(r, 8, &t->offset, "offset")))
        return rc;
    if (t->offset % g->alignment != 0)
        return rd_fail(r, EBADMSG, "offset %" PRIu64 " is not aligned to %zu", t->offset, g->alignment);
    size_t s = index_probe(&g->t_ix, &g->ent[0].raw, sizeof *e, e->raw.ptr, (size_t)e->raw.len);
    if (g->t_ix.slot[s])
        return rd_fail(r, EBADMSG, "duplicate tensor name");
    g->t_ix.slot[s] = (uint32_t)i + 1;
    return 0;
}

static int cmp_offset(const void *a, const void *b)
{
    const struct gguf_ent *x = *(const struct gguf_ent *const *)a, *y = *(const struct gguf_ent *const *)b;
    return x->t.offset < y->t.offset ? -1 : x->t.offset > y->t.offset;
}

/* Tensor data within the file and no two tensors sharing a byte. */
static int check_data(struct rd *r)
{
    struct gguf *g = r->g;
    size_t start;
    if (ckd_add_size(&start, r->pos, g->alignment - 1))
        return rd_fail(r, EBADMSG, "data offset overflows");
    start &= ~(g->alignment - 1);
    g->data_start = start;
    if (g->n_tensors == 0)
        return 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        struct gguf_ent *e = &g->ent[i];
        uint64_t end;
        set_ctx(r, "tensor", e->raw.ptr, e->raw.len);
        if (ckd_add_u64(&end, start, e->t.offset) || ckd_add_u64(&end, end, e->t.size) || end > g->size)
            return rd_fail(r, EBADMSG, "data (offset %" PRIu64 ", %zu bytes) runs past end of file "
                           "(data starts at %zu, file is %zu bytes)", e->t.offset, e->t.size, start, g->size);
        e->t.data = g->base + start + e->t.offset;
    }
    struct gguf_ent **by = malloc((size_t)g->n_tensors * sizeof *by);
    if (!by)
        return rd_fail(r, ENOMEM, "out of memory");
    for (int64_t i = 0; i < g->n_tensors; i++)
        by[i] = &g->ent[i];
    qsort(by, (size_t)g->n_tensors, sizeof *by, cmp_offset);
    int rc = 0;
    for (int64_t i = 1; i < g->n_tensors; i++) {
        const struct gguf_ent *a = by[i - 1], *b = by[i];
        if (a->t.offset + a->t.size > b->t.offset) {
            char other[104];
            printable(other, sizeof other, b->raw.ptr, b->raw.len);
            set_ctx(r, "tensor", a->raw.ptr, a->raw.len);
            rc = rd_fail(r, EBADMSG, "data (offset %" PRIu64 ", %zu bytes) overlaps tensor '%s' at offset %" PRIu64,
                         a->t.offset, a->t.size, other, b->t.offset);
            break;
        }
    }
    free(by);
    return rc;
}

/* NUL-terminated copies of every key and tensor name, in one block. */
static int copy_names(struct rd *r)
{
    struct gguf *g = r->g;
    size_t total = 1, at = 0;
    for (int64_t i = 0; i < g->n_kv; i++)
        if (ckd_add_size(&total, total, (size_t)g->kv[i].key.len + 1))
            return rd_fail(r, ENOMEM, "names too long");
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (ckd_add_size(&total, total, (size_t)g->ent[i].raw.len + 1))
            return rd_fail(r, ENOMEM, "names too long");
    g->names = malloc(total);
    if (!g->names)
        return rd_fail(r, ENOMEM, "out of memory for %zu bytes of names", total);
    for (int64_t i = 0; i < g->n_kv; i++) {
        memcpy(g->names + at, g->kv[i].key.ptr, (size_t)g->kv[i].key.len);
        g->kv[i].name = g->names + at;
        at += (size_t)g->kv[i].key.len;
        g->names[at++] = 0;
    }
    for (int64_t i = 0; i < g->n_tensors; i++) {
        memcpy(g->names + at, g->ent[i].raw.ptr, (size_t)g->ent[i].raw.len);
        g->ent[i].t.name = g->names + at;
        at += (size_t)g->ent[i].raw.len;
        g->names[at++] = 0;
    }
    return 0;
}

static int parse(struct gguf *g, char *err, size_t errlen)
{
    struct rd r = { .g = g, .err = err, .errlen = errlen };
    int rc;
    snprintf(r.ctx, sizeof r.ctx, "header");
    if (g->size < 4)
        return rd_fail(&r, EBADMSG, "file of %zu bytes is too short for a GGUF header", g->size);
    if (memcmp(g->base, "GGUF", 4) != 0)
        return rd_fail(&r, EBADMSG, "bad magic %02x %02x %02x %02x: not a GGUF file", g->base[0], g->base[1],
                       g->base[2], g->base[3]);
    r.pos = 4;
    uint64_t n_tensors, n_kv;
    if ((rc = rd_u32(&r, &g->version, "version")))
        return rc;
    if (g->version != 2 && g->version != 3)
        return rd_fail(&r, ENOTSUP, "unsupported GGUF version %" PRIu32 "%s", g->version,
                       g->version > 0xffff ? " (big-endian file?)" : "");
    if ((rc = rd_uint(&r, 8, &n_tensors, "tensor count")) || (rc = rd_uint(&r, 8, &n_kv, "kv count")))
        return rc;
    if (n_kv > rd_left(&r) / MIN_KV_BYTES || n_kv > MAX_ITEMS)
        return rd_fail(&r, EBADMSG, "kv count %" PRIu64 " is more than the %zu bytes left can hold", n_kv,
                       rd_left(&r));
    if (n_tensors > rd_left(&r) / MIN_TENSOR_BYTES || n_tensors > MAX_ITEMS)
        return rd_fail(&r, EBADMSG, "tensor count %" PRIu64 " is more than the %zu bytes left can hold",
                       n_tensors, rd_left(&r));
    g->kv = calloc((size_t)n_kv + 1, sizeof *g->kv);
    g->ent = calloc((size_t)n_tensors + 1, sizeof *g->ent);
    if (!g->kv || !g->ent || index_init(&g->kv_ix, (int64_t)n_kv) || index_init(&g->t_ix, (int64_t)n_tensors))
        return rd_fail(&r, ENOMEM, "out of memory for %" PRIu64 " keys and %" PRIu64 " tensors", n_kv, n_tensors);
    if ((rc = parse_kvs(&r, n_kv)))
        return rc;
    for (uint64_t i = 0; i < n_tensors; i++) {
        if ((rc = parse_tensor(&r, (int64_t)i)))
            return rc;
        g->n_tensors = (int64_t)i + 1;
    }
    if ((rc = check_data(&r)))
        return rc;
    return copy_names(&r);
}

void gguf_close(struct gguf *g)
{
    if (!g)
        return;
    for (int64_t i = 0; g->kv && i < g->n_kv; i++)
        free_value(&g->kv[i].val);
    free(g->kv);
    free(g->ent);
    free(g->names);
    free(g->kv_ix.slot);
    free(g->t_ix.slot);
    if (g->map)
        munmap(g->map, g->size);
    free(g->path);
    free(g);
}

static struct gguf *gguf_alloc(const char *name)
{
    struct gguf *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->path = strdup(name ? name : "<memory>");
    if (!g->path) {
        free(g);
        return NULL;
    }
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    return g;
}

int gguf_open_memory(const void *buf, size_t size, const char *name, struct gguf **out, char *err,
                     size_t errlen)
{
    static const uint8_t empty[1];
    *out = NULL;
    struct gguf *g = gguf_alloc(name);
    if (!g)
        return err_set(err, errlen, ENOMEM, "%s: out of memory", name ? name : "<memory>");
    g->base = buf ? buf : empty;
    g->size = buf ? size : 0;
    int rc = parse(g, err, errlen);
    if (rc) {
        gguf_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

/* The whole file read into anonymous memory that the kernel may back with
 * huge pages: a token streams every weight once, and with 4 KiB file pages
 * the TLB misses and prefetch stops at page ends cost a third of the
 * bandwidth (measured: 17.7 vs 25.1 tokens/s for the 1.5B Q8_0 model). */
static void *read_into_memory(int fd, size_t size, const char *path, gguf_progress_fn progress,
                              void *ctx, int *rc, char *err, size_t errlen)
{
    const size_t chunk = (size_t)64 << 20;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        *rc = ENOMEM;
        err_set(err, errlen, ENOMEM, "%s: cannot allocate %zu bytes for the weights", path, size);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    madvise(p, size, MADV_HUGEPAGE);
#endif
    for (size_t done = 0; done < size;) {
        size_t want = size - done < chunk ? size - done : chunk;
        ssize_t r = pread(fd, (char *)p + done, want, (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            *rc = EIO;
            err_set(err, errlen, EIO, "%s: read failed at byte %zu: %s", path, done,
                    r < 0 ? strerror(errno) : "the file shrank");
            munmap(p, size);
            return NULL;
        }
        done += (size_t)r;
        if (progress)
            progress(ctx, done, size);
    }
    mprotect(p, size, PROT_READ);
    return p;
}

int gguf_open(const char *path, struct gguf **out, char *err, size_t errlen)
{
    return gguf_open_flags(path, 0, out, err, errlen);
}

int gguf_open_flags(const char *path, unsigned flags, struct gguf **out, char *err, size_t errlen)
{
    return gguf_open_progress(path, flags, NULL, NULL, out, err, errlen);
}

int gguf_open_progress(const char *path, unsigned flags, gguf_progress_fn progress, void *ctx,
                       struct gguf **out, char *err, size_t errlen)
{
    static const uint8_t empty[1];
    struct gguf *g = NULL;
    struct stat st;
    int rc = 0;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno;
        err_set(err, errlen, rc, "%s: %s", path, strerror(rc));
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        rc = errno;
        err_set(err, errlen, rc, "%s: %s", path, strerror(rc));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = err_set(err, errlen, EISDIR, "%s: is a directory", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = err_set(err, errlen, EBADMSG, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        rc = err_set(err, errlen, ENOTSUP, "%s: file too large to map", path);
        goto out;
    }
    g = gguf_alloc(path);
    if (!g) {
        rc = err_set(err, errlen, ENOMEM, "%s: out of memory", path);
        goto out;
    }
    g->size = (size_t)st.st_size;
    g->base = empty;
    if (g->size > 0) {
        void *p;
        if (flags & GGUF_OPEN_READ) {
            p = read_into_memory(fd, g->size, path, progress, ctx, &rc, err, errlen);
            if (!p)
                goto out;
        } else {
            p = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                rc = errno == ENOMEM ? ENOMEM : EIO;
                err_set(err, errlen, rc, "%s: cannot map %zu bytes: %s", path, g->size,
                        strerror(errno));
                goto out;
            }
        }
        g->map = p;
        g->base = p;
    }
    rc = parse(g, err, errlen);
out:
    if (fd >= 0)
        close(fd);
    if (rc) {
        gguf_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

const char *gguf_path(const struct gguf *g) { return g->path; }
uint32_t gguf_version(const struct gguf *g) { return g->version; }
size_t gguf_file_size(const struct gguf *g) { return g->size; }
size_t gguf_alignment(const struct gguf *g) { return g->alignment; }
int64_t gguf_n_kv(const struct gguf *g) { return g->n_kv; }
int64_t gguf_n_tensors(const struct gguf *g) { return g->n_tensors; }

const char *gguf_kv_key(const struct gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_kv ? g->kv[i].name : NULL;
}

const struct gguf_value *gguf_kv_value(const struct gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_kv ? &g->kv[i].val : NULL;
}

const struct gguf_value *gguf_find(const struct gguf *g, const char *key)
{
    if (!key || g->n_kv == 0)
        return NULL;
    size_t s = index_probe(&g->kv_ix, &g->kv[0].key, sizeof g->kv[0], key, strlen(key));
    uint32_t k = g->kv_ix.slot[s];
    return k ? &g->kv[k - 1].val : NULL;
}

const struct gguf_tensor *gguf_tensor(const struct gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_tensors ? &g->ent[i].t : NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name)
{
    if (!name || g->n_tensors == 0)
        return NULL;
    size_t s = index_probe(&g->t_ix, &g->ent[0].raw, sizeof g->ent[0], name, strlen(name));
    uint32_t k = g->t_ix.slot[s];
    return k ? &g->ent[k - 1].t : NULL;
}

const char *gguf_type_name(enum gguf_type t)
{
    return (unsigned)t < GGUF_TYPE_COUNT ? value_type_names[t] : "?";
}

bool gguf_tensor_type_size(uint32_t type, int64_t *block_size, size_t *block_bytes)
{
    if (type >= N_TENSOR_TYPES || tensor_types[type].block_size == 0)
        return false;
    if (block_size)
        *block_size = tensor_types[type].block_size;
    if (block_bytes)
        *block_bytes = tensor_types[type].block_bytes;
    return true;
}

const char *gguf_tensor_type_name(uint32_t type)
{
    return type < N_TENSOR_TYPES && tensor_types[type].name ? tensor_types[type].name : "?";
}

static bool is_int_type(enum gguf_type t)
{
    return t <= GGUF_TYPE_INT32 || t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_INT64;
}

static bool is_signed_type(enum gguf_type t)
{
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}

/* The value of key, or NULL with ENOENT written. */
static const struct gguf_value *lookup(const struct gguf *g, const char *key, int *rc, char *err, size_t errlen)
{
    const struct gguf_value *v = gguf_find(g, key);
    *rc = v ? 0 : err_set(err, errlen, ENOENT, "%s: key '%s' not found", g->path, key);
    return v;
}

static int wrong_type(const struct gguf *g, const char *key, const char *expected, const struct gguf_value *v,
                      char *err, size_t errlen)
{
    if (v->type == GGUF_TYPE_ARRAY)
        return err_set(err, errlen, EBADMSG, "%s: key '%s' has type array of %s, expected %s", g->path, key,
                    gguf_type_name(v->v.arr.type), expected);
    return err_set(err, errlen, EBADMSG, "%s: key '%s' has type %s, expected %s", g->path, key,
                gguf_type_name(v->type), expected);
}

int gguf_get_int(const struct gguf *g, const char *key, int64_t *out, char *err, size_t errlen)
{
    int rc;
    const struct gguf_value *v = lookup(g, key, &rc, err, errlen);
    if (!v)
        return rc;
    if (!is_int_type(v->type))
        return wrong_type(g, key, "an integer", v, err, errlen);
    if (v->type == GGUF_TYPE_UINT64 && v->v.u > (uint64_t)INT64_MAX)
        return err_set(err, errlen, EBADMSG, "%s: key '%s': value %" PRIu64 " is out of range for int64", g->path,
                    key, v->v.u);
    *out = is_signed_type(v->type) ? v->v.i : (int64_t)v->v.u;
    return 0;
}

int gguf_get_uint32(const struct gguf *g, const char *key, uint32_t *out, char *err, size_t errlen)
{
    int rc;
    const struct gguf_value *v = lookup(g, key, &rc, err, errlen);
    if (!v)
        return rc;
    if (!is_int_type(v->type))
        return wrong_type(g, key, "an integer", v, err, errlen);
    if (is_signed_type(v->type)) {
        if (v->v.i < 0 || v->v.i > (int64_t)UINT32_MAX)
            return err_set(err, errlen, EBADMSG, "%s: key '%s': value %" PRId64 " is out of range for uint32",
                        g->path, key, v->v.i);
        *out = (uint32_t)v->v.i;
    } else {
        if (v->v.u > UINT32_MAX)
            return err_set(err, errlen, EBADMSG, "%s: key '%s': value %" PRIu64 " is out of range for uint32",
                        g->path, key, v->v.u);
        *out = (uint32_t)v->v.u;
    }
    return 0;
}

int gguf_get_float(const struct gguf *g, const char *key, double *out, char *err, size_t errlen)
{
    int rc;
    const struct gguf_value *v = lookup(g, key, &rc, err, errlen);
    if (!v)
        return rc;
    if (v->type != GGUF_TYPE_FLOAT32 && v->type != GGUF_TYPE_FLOAT64)
        return wrong_type(g, key, "float32 or float64", v, err, errlen);
    *out = v->v.f;
    return 0;
}

int gguf_get_bool(const struct gguf *g, const char *key, bool *out, char *err, size_t errlen)
{
    int rc;
    const struct gguf_value *v = lookup(g, key, &rc, err, errlen);
    if (!v)
        return rc;
    if (v->type != GGUF_TYPE_BOOL)
        return wrong_type(g, key, "bool", v, err, errlen);
    *out = v->v.u != 0;
    return 0;
}

int gguf_get_str(const struct gguf *g, const char *key, struct gguf_str *out, char *err, size_t errlen)
{
    int rc;
    const struct gguf_value *v = lookup(g, key, &rc, err, errlen);
    if (!v)
        return rc;
    if (v->type != GGUF_TYPE_STRING)
        return wrong_type(g, key, "string", v, err, errlen);
    *out = v->v.s;
    return 0;
}

int gguf_get_arr(const struct gguf *g, const char *key, enum gguf_type type, const struct gguf_value **out,
                 char *err, size_t errlen)
{
    int rc;
    const struct gguf_value *v = lookup(g, key, &rc, err, errlen);
    if (!v)
        return rc;
    if (v->type != GGUF_TYPE_ARRAY)
        return wrong_type(g, key, "array", v, err, errlen);
    if (type != GGUF_TYPE_COUNT && v->v.arr.type != type) {
        char expected[32];
        snprintf(expected, sizeof expected, "array of %s", gguf_type_name(type));
        return wrong_type(g, key, expected, v, err, errlen);
    }
    *out = v;
    return 0;
}

int64_t gguf_arr_int(const struct gguf_value *a, uint64_t i)
{
    enum gguf_type t = a->v.arr.type;
    if (t >= GGUF_TYPE_COUNT || i >= a->v.arr.n || !is_int_type(t))
        return t == GGUF_TYPE_BOOL && i < a->v.arr.n ? ((const uint8_t *)a->v.arr.data)[i] : 0;
    size_t sz = value_type_size[t];
    uint64_t x = load_le((const uint8_t *)a->v.arr.data + i * sz, sz);
    switch (t) {
    case GGUF_TYPE_INT8: return (int8_t)(uint8_t)x;
    case GGUF_TYPE_INT16: return (int16_t)(uint16_t)x;
    case GGUF_TYPE_INT32: return (int32_t)(uint32_t)x;
    default: return (int64_t)x;
    }
}

double gguf_arr_float(const struct gguf_value *a, uint64_t i)
{
    enum gguf_type t = a->v.arr.type;
    if (i >= a->v.arr.n)
        return 0;
    const uint8_t *p = a->v.arr.data;
    if (t == GGUF_TYPE_FLOAT32) {
        uint32_t b = (uint32_t)load_le(p + i * 4, 4);
        float f;
        memcpy(&f, &b, sizeof f);
        return f;
    }
    if (t == GGUF_TYPE_FLOAT64) {
        uint64_t b = load_le(p + i * 8, 8);
        double d;
        memcpy(&d, &b, sizeof d);
        return d;
    }
    return (double)gguf_arr_int(a, i);
}
