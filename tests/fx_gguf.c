/* A small GGUF writer for tests and tools: valid files in memory or on disk,
 * raw kvs and tensor infos for the malformed-file tests, and a streaming mode
 * for generated models too large to hold in memory. */
#include "tests/fx_gguf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "infer/ckd.h"

struct fx_kv {
    char *key;
    uint32_t type;
    uint8_t *val;       /* encoded value bytes */
    size_t len;
};

struct fx_tensor {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[8];
    size_t size;        /* data bytes; 0 for a raw info */
    uint8_t *data;      /* NULL: zeros */
    bool raw;
    uint64_t raw_offset;
};

struct fx_gguf {
    uint32_t version;
    uint32_t alignment;
    struct fx_kv *kv;
    size_t n_kv, cap_kv;
    struct fx_tensor *t;
    size_t n_t, cap_t;
};

/* A growable byte buffer; `failed` latches the first error. */
struct fx_buf {
    uint8_t *p;
    size_t len, cap;
    int failed;
};

static void buf_put(struct fx_buf *b, const void *src, size_t n)
{
    if (b->failed)
        return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (n > cap - b->len) {
            if (ckd_mul_size(&cap, cap, 2)) {
                b->failed = ENOMEM;
                return;
            }
        }
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->failed = ENOMEM;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void buf_le(struct fx_buf *b, uint64_t v, size_t n)
{
    uint8_t tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, tmp, n);
}

static void buf_str(struct fx_buf *b, const char *s, size_t n)
{
    buf_le(b, n, 8);
    buf_put(b, s, n);
}

static void buf_zeros(struct fx_buf *b, size_t n)
{
    static const uint8_t z[64];
    while (n > 0 && !b->failed) {
        size_t k = n < sizeof z ? n : sizeof z;
        buf_put(b, z, k);
        n -= k;
    }
}

struct fx_gguf *fx_gguf_new(uint32_t version)
{
    struct fx_gguf *w = calloc(1, sizeof *w);
    if (w) {
        w->version = version;
        w->alignment = GGUF_DEFAULT_ALIGNMENT;
    }
    return w;
}

void fx_gguf_free(struct fx_gguf *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

/* Appends a kv with encoded value bytes (duplicates allowed: tests need
 * them); with replace, a kv already holding the key is updated instead. */
static int add_kv_at(struct fx_gguf *w, const char *key, uint32_t type, struct fx_buf *val, bool replace)
{
    if (val->failed) {
        free(val->p);
        return val->failed;
    }
    for (size_t i = 0; replace && i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].val);
            w->kv[i].type = type;
            w->kv[i].val = val->p;
            w->kv[i].len = val->len;
            return 0;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 16;
        struct fx_kv *kv = realloc(w->kv, cap * sizeof *kv);
        if (!kv) {
            free(val->p);
            return ENOMEM;
        }
        w->kv = kv;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(val->p);
        return ENOMEM;
    }
    w->kv[w->n_kv++] = (struct fx_kv){ .key = k, .type = type, .val = val->p, .len = val->len };
    return 0;
}

static int add_kv(struct fx_gguf *w, const char *key, uint32_t type, struct fx_buf *val)
{
    return add_kv_at(w, key, type, val, false);
}

static int kv_scalar(struct fx_gguf *w, const char *key, enum gguf_type type, uint64_t bits, size_t n)
{
    struct fx_buf b = { 0 };
    buf_le(&b, bits, n);
    return add_kv(w, key, type, &b);
}

void fx_gguf_set_alignment(struct fx_gguf *w, uint32_t alignment)
{
    struct fx_buf b = { 0 };
    w->alignment = alignment;
    buf_le(&b, alignment, 4);
    (void)add_kv_at(w, "general.alignment", GGUF_TYPE_UINT32, &b, true);
}

int fx_gguf_kv_u8(struct fx_gguf *w, const char *key, uint8_t v) { return kv_scalar(w, key, GGUF_TYPE_UINT8, v, 1); }
int fx_gguf_kv_u32(struct fx_gguf *w, const char *key, uint32_t v) { return kv_scalar(w, key, GGUF_TYPE_UINT32, v, 4); }
int fx_gguf_kv_i32(struct fx_gguf *w, const char *key, int32_t v)
{
    return kv_scalar(w, key, GGUF_TYPE_INT32, (uint32_t)v, 4);
}
int fx_gguf_kv_u64(struct fx_gguf *w, const char *key, uint64_t v) { return kv_scalar(w, key, GGUF_TYPE_UINT64, v, 8); }
int fx_gguf_kv_bool(struct fx_gguf *w, const char *key, bool v) { return kv_scalar(w, key, GGUF_TYPE_BOOL, v, 1); }

int fx_gguf_kv_f32(struct fx_gguf *w, const char *key, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return kv_scalar(w, key, GGUF_TYPE_FLOAT32, bits, 4);
}

int fx_gguf_kv_str(struct fx_gguf *w, const char *key, const char *v)
{
    struct fx_buf b = { 0 };
    buf_str(&b, v, strlen(v));
    return add_kv(w, key, GGUF_TYPE_STRING, &b);
}

int fx_gguf_kv_arr_str(struct fx_gguf *w, const char *key, const char *const *v, size_t n)
{
    struct fx_buf b = { 0 };
    buf_le(&b, GGUF_TYPE_STRING, 4);
    buf_le(&b, n, 8);
    for (size_t i = 0; i < n; i++)
        buf_str(&b, v[i], strlen(v[i]));
    return add_kv(w, key, GGUF_TYPE_ARRAY, &b);
}

int fx_gguf_kv_arr_raw(struct fx_gguf *w, const char *key, enum gguf_type type, const void *elems, size_t n)
{
    static const size_t size[GGUF_TYPE_COUNT] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
    size_t bytes;
    if ((unsigned)type >= GGUF_TYPE_COUNT || size[type] == 0 || ckd_mul_size(&bytes, n, size[type]))
        return EINVAL;
    struct fx_buf b = { 0 };
    buf_le(&b, type, 4);
    buf_le(&b, n, 8);
    buf_put(&b, elems, bytes);
    return add_kv(w, key, GGUF_TYPE_ARRAY, &b);
}

int fx_gguf_kv_arr_i32(struct fx_gguf *w, const char *key, const int32_t *v, size_t n)
{
    return fx_gguf_kv_arr_raw(w, key, GGUF_TYPE_INT32, v, n);
}

int fx_gguf_kv_arr_f32(struct fx_gguf *w, const char *key, const float *v, size_t n)
{
    return fx_gguf_kv_arr_raw(w, key, GGUF_TYPE_FLOAT32, v, n);
}

int fx_gguf_kv_raw(struct fx_gguf *w, const char *key, uint32_t type, const void *value, size_t len)
{
    struct fx_buf b = { 0 };
    buf_put(&b, value, len);
    if (!b.failed && !b.p) {
        b.p = malloc(1);
        if (!b.p)
            return ENOMEM;
    }
    return add_kv(w, key, type, &b);
}

static int add_tensor(struct fx_gguf *w, struct fx_tensor *t)
{
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 16;
        struct fx_tensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt)
            return ENOMEM;
        w->t = nt;
        w->cap_t = cap;
    }
    t->name = strdup(t->name);
    if (!t->name)
        return ENOMEM;
    w->t[w->n_t++] = *t;
    return 0;
}

int fx_gguf_tensor(struct fx_gguf *w, const char *name, enum quant_type type, int n_dims, const int64_t *ne,
                   const void *data)
{
    int64_t bs;
    size_t bb;
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !gguf_tensor_type_size((uint32_t)type, &bs, &bb))
        return EINVAL;
    struct fx_tensor t = { .name = (char *)name, .type = (uint32_t)type, .n_dims = (uint32_t)n_dims };
    size_t size = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 1)
            return EINVAL;
        t.ne[d] = (uint64_t)ne[d];
    }
    if (ne[0] % bs != 0)
        return EINVAL;
    if (ckd_mul_size(&size, (size_t)(ne[0] / bs), bb))
        return EOVERFLOW;
    for (int d = 1; d < n_dims; d++)
        if (ckd_mul_size(&size, size, (size_t)ne[d]))
            return EOVERFLOW;
    t.size = size;
    if (data) {
        t.data = malloc(size);
        if (!t.data)
            return ENOMEM;
        memcpy(t.data, data, size);
    }
    int rc = add_tensor(w, &t);
    if (rc)
        free(t.data);
    return rc;
}

int fx_gguf_tensor_raw(struct fx_gguf *w, const char *name, uint32_t type, uint32_t n_dims, const uint64_t *ne,
                       uint64_t offset)
{
    struct fx_tensor t = { .name = (char *)name, .type = type, .n_dims = n_dims, .raw = true,
                           .raw_offset = offset };
    for (uint32_t d = 0; d < n_dims && d < 8; d++)
        t.ne[d] = ne[d];
    return add_tensor(w, &t);
}

size_t fx_gguf_tensor_size(const struct fx_gguf *w, int64_t i)
{
    return i >= 0 && (size_t)i < w->n_t ? w->t[i].size : 0;
}

static size_t pad_to(size_t n, size_t a)
{
    return a > 1 ? (a - n % a) % a : 0;
}

/* Header, kvs, tensor infos and the padding before the data. */
static int build_header(const struct fx_gguf *w, struct fx_buf *b)
{
    buf_put(b, "GGUF", 4);
    buf_le(b, w->version, 4);
    buf_le(b, w->n_t, 8);
    buf_le(b, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        buf_str(b, w->kv[i].key, strlen(w->kv[i].key));
        buf_le(b, w->kv[i].type, 4);
        buf_put(b, w->kv[i].val, w->kv[i].len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const struct fx_tensor *t = &w->t[i];
        buf_str(b, t->name, strlen(t->name));
        buf_le(b, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims && d < 8; d++)
            buf_le(b, t->ne[d], 8);
        buf_le(b, t->type, 4);
        if (t->raw) {
            buf_le(b, t->raw_offset, 8);
        } else {
            buf_le(b, off, 8);
            off += t->size + pad_to(t->size, w->alignment);
        }
    }
    buf_zeros(b, pad_to(b->len, w->alignment));
    return b->failed;
}

int fx_gguf_bytes(const struct fx_gguf *w, uint8_t **out, size_t *len)
{
    struct fx_buf b = { 0 };
    build_header(w, &b);
    for (size_t i = 0; i < w->n_t; i++) {
        const struct fx_tensor *t = &w->t[i];
        if (t->raw)
            continue;
        if (t->data)
            buf_put(&b, t->data, t->size);
        else
            buf_zeros(&b, t->size);
        buf_zeros(&b, pad_to(t->size, w->alignment));
    }
    if (!b.failed && !b.p)
        buf_put(&b, "", 0);
    if (b.failed) {
        free(b.p);
        return b.failed;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

int fx_gguf_write_header(const struct fx_gguf *w, FILE *f)
{
    struct fx_buf b = { 0 };
    int rc = build_header(w, &b);
    if (!rc && fwrite(b.p, 1, b.len, f) != b.len)
        rc = EIO;
    free(b.p);
    return rc;
}

int fx_gguf_write_pad(const struct fx_gguf *w, FILE *f, size_t bytes_written_so_far)
{
    static const uint8_t z[64];
    size_t n = pad_to(bytes_written_so_far, w->alignment);
    while (n > 0) {
        size_t k = n < sizeof z ? n : sizeof z;
        if (fwrite(z, 1, k, f) != k)
            return EIO;
        n -= k;
    }
    return 0;
}

int fx_gguf_write_file(const struct fx_gguf *w, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return errno;
    int rc = fx_gguf_write_header(w, f);
    for (size_t i = 0; i < w->n_t && !rc; i++) {
        const struct fx_tensor *t = &w->t[i];
        if (t->raw)
            continue;
        if (t->data) {
            if (fwrite(t->data, 1, t->size, f) != t->size)
                rc = EIO;
        } else {
            static const uint8_t z[4096];
            for (size_t left = t->size; left > 0 && !rc;) {
                size_t k = left < sizeof z ? left : sizeof z;
                if (fwrite(z, 1, k, f) != k)
                    rc = EIO;
                left -= k;
            }
        }
        if (!rc)
            rc = fx_gguf_write_pad(w, f, t->size);
    }
    if (fclose(f) != 0 && !rc)
        rc = EIO;
    return rc;
}
