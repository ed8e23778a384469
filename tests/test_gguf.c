/* Tests of the GGUF reader: round trips through the test writer, every kind
 * of malformed file (table-driven), truncated prefixes, a fixed-seed mutation
 * fuzz, the typed getters and the real files of the reference data. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "infer/gguf.h"
#include "tests/fixture.h"
#include "tests/fx_gguf.h"

/* Opens a private heap copy of exactly len bytes, so that AddressSanitizer
 * sees any read past the end. */
static int open_copy(const uint8_t *bytes, size_t len, struct gguf **g, uint8_t **copy, char *err, size_t errlen)
{
    *copy = malloc(len ? len : 1);
    assert_non_null(*copy);
    if (len)
        memcpy(*copy, bytes, len);
    return gguf_open_memory(*copy, len, "t.gguf", g, err, errlen);
}

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static const char *const small_strs[] = { "alpha", "", "g\xc3\xa9", "<\xef\xbd\x9cUser\xef\xbd\x9c>" };
static const int32_t small_i32[] = { -7, 0, 1, 2147483647, -2147483647 - 1 };
static const float small_f32[] = { 1.5f, -0.25f, 1e-6f };
static const uint8_t small_bools[] = { 1, 0, 1 };
static const uint16_t small_u16[] = { 65535, 1 };

static float f32_data[2][16];   /* tensor "a": F32 [16, 2], 128 bytes */
static uint8_t q8_data[2 * 34]; /* tensor "b": Q8_0 [32, 2], 68 bytes */

/* A valid file with a kv of every scalar type, arrays of several element
 * types (strings among them) and three tensors; the last tensor is 128 bytes,
 * a multiple of the alignment, so the file ends with the last data byte. */
static struct fx_gguf *small_writer(void)
{
    struct fx_gguf *w = fx_gguf_new(3);
    assert_non_null(w);
    int8_t i8 = -5;
    uint16_t u16 = 65000;
    int16_t i16 = -30000;
    int64_t i64 = -5000000000LL;
    double f64 = 3.25;
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 16; c++)
            f32_data[r][c] = (float)(r * 16 + c) * 0.5f;
    for (size_t i = 0; i < sizeof q8_data; i++)
        q8_data[i] = (uint8_t)(i * 7);
    int rc = 0;
    rc |= fx_gguf_kv_str(w, "general.architecture", "qwen2");
    rc |= fx_gguf_kv_u8(w, "t.u8", 200);
    rc |= fx_gguf_kv_raw(w, "t.i8", GGUF_TYPE_INT8, &i8, 1);
    rc |= fx_gguf_kv_raw(w, "t.u16", GGUF_TYPE_UINT16, &u16, 2);
    rc |= fx_gguf_kv_raw(w, "t.i16", GGUF_TYPE_INT16, &i16, 2);
    rc |= fx_gguf_kv_u32(w, "t.u32", 4000000000u);
    rc |= fx_gguf_kv_i32(w, "t.i32", -123456);
    rc |= fx_gguf_kv_f32(w, "t.f32", 0.125f);
    rc |= fx_gguf_kv_bool(w, "t.bool", true);
    rc |= fx_gguf_kv_u64(w, "t.u64", 18446744073709551615ull);
    rc |= fx_gguf_kv_raw(w, "t.i64", GGUF_TYPE_INT64, &i64, 8);
    rc |= fx_gguf_kv_raw(w, "t.f64", GGUF_TYPE_FLOAT64, &f64, 8);
    rc |= fx_gguf_kv_arr_str(w, "t.arr_str", small_strs, 4);
    rc |= fx_gguf_kv_arr_i32(w, "t.arr_i32", small_i32, 5);
    rc |= fx_gguf_kv_arr_f32(w, "t.arr_f32", small_f32, 3);
    rc |= fx_gguf_kv_arr_raw(w, "t.arr_bool", GGUF_TYPE_BOOL, small_bools, 3);
    rc |= fx_gguf_kv_arr_raw(w, "t.arr_u16", GGUF_TYPE_UINT16, small_u16, 2);
    rc |= fx_gguf_kv_arr_str(w, "t.arr_empty", NULL, 0);
    int64_t ne_b[] = { 32, 2 }, ne_c[] = { 256 }, ne_a[] = { 16, 2 };
    rc |= fx_gguf_tensor(w, "b", QUANT_TYPE_Q8_0, 2, ne_b, q8_data);
    rc |= fx_gguf_tensor(w, "c.q4_k", QUANT_TYPE_Q4_K, 1, ne_c, NULL);
    rc |= fx_gguf_tensor(w, "a", QUANT_TYPE_F32, 2, ne_a, f32_data);
    assert_int_equal(rc, 0);
    return w;
}

static void small_bytes(uint8_t **bytes, size_t *len)
{
    struct fx_gguf *w = small_writer();
    assert_int_equal(fx_gguf_bytes(w, bytes, len), 0);
    fx_gguf_free(w);
}

static void check_small(const struct gguf *g)
{
    char err[256];
    int64_t i;
    uint32_t u;
    double f;
    bool b;
    struct gguf_str s;
    const struct gguf_value *v;

    assert_int_equal(gguf_version(g), 3);
    assert_int_equal(gguf_alignment(g), 32);
    assert_int_equal(gguf_n_kv(g), 18);
    assert_string_equal(gguf_kv_key(g, 0), "general.architecture");
    assert_string_equal(gguf_kv_key(g, 17), "t.arr_empty");
    assert_null(gguf_kv_key(g, 18));
    assert_null(gguf_kv_value(g, -1));
    assert_int_equal(gguf_get_str(g, "general.architecture", &s, err, sizeof err), 0);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.ptr, "qwen2", 5);

    static const struct {
        const char *key;
        enum gguf_type type;
        int64_t value;
    } ints[] = {
        { "t.u8", GGUF_TYPE_UINT8, 200 },          { "t.i8", GGUF_TYPE_INT8, -5 },
        { "t.u16", GGUF_TYPE_UINT16, 65000 },      { "t.i16", GGUF_TYPE_INT16, -30000 },
        { "t.u32", GGUF_TYPE_UINT32, 4000000000 }, { "t.i32", GGUF_TYPE_INT32, -123456 },
        { "t.i64", GGUF_TYPE_INT64, -5000000000LL },
    };
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        v = gguf_find(g, ints[k].key);
        assert_non_null(v);
        if (v->type != ints[k].type)
            fail_msg("case %s: type %d", ints[k].key, v->type);
        if (gguf_get_int(g, ints[k].key, &i, err, sizeof err) != 0 || i != ints[k].value)
            fail_msg("case %s: got %lld", ints[k].key, (long long)i);
    }
    v = gguf_find(g, "t.u64");
    assert_int_equal(v->type, GGUF_TYPE_UINT64);
    assert_true(v->v.u == 18446744073709551615ull);
    assert_int_equal(gguf_get_uint32(g, "t.u32", &u, err, sizeof err), 0);
    assert_int_equal(u, 4000000000u);
    assert_int_equal(gguf_get_float(g, "t.f32", &f, err, sizeof err), 0);
    assert_true(f == 0.125);
    assert_int_equal(gguf_get_float(g, "t.f64", &f, err, sizeof err), 0);
    assert_true(f == 3.25);
    assert_int_equal(gguf_get_bool(g, "t.bool", &b, err, sizeof err), 0);
    assert_true(b);

    assert_int_equal(gguf_get_arr(g, "t.arr_str", GGUF_TYPE_STRING, &v, err, sizeof err), 0);
    assert_int_equal(v->v.arr.n, 4);
    const struct gguf_str *ss = v->v.arr.data;
    for (int k = 0; k < 4; k++) {
        assert_int_equal(ss[k].len, strlen(small_strs[k]));
        assert_memory_equal(ss[k].ptr, small_strs[k], ss[k].len);
    }
    assert_int_equal(gguf_get_arr(g, "t.arr_i32", GGUF_TYPE_INT32, &v, err, sizeof err), 0);
    assert_int_equal(v->v.arr.n, 5);
    for (int k = 0; k < 5; k++)
        assert_int_equal(gguf_arr_int(v, (uint64_t)k), small_i32[k]);
    assert_int_equal(gguf_get_arr(g, "t.arr_f32", GGUF_TYPE_FLOAT32, &v, err, sizeof err), 0);
    for (int k = 0; k < 3; k++)
        assert_true(gguf_arr_float(v, (uint64_t)k) == (double)small_f32[k]);
    assert_int_equal(gguf_get_arr(g, "t.arr_bool", GGUF_TYPE_BOOL, &v, err, sizeof err), 0);
    for (int k = 0; k < 3; k++)
        assert_int_equal(gguf_arr_int(v, (uint64_t)k), small_bools[k]);
    assert_int_equal(gguf_get_arr(g, "t.arr_u16", GGUF_TYPE_COUNT, &v, err, sizeof err), 0);
    assert_int_equal(gguf_arr_int(v, 0), 65535);
    assert_int_equal(gguf_get_arr(g, "t.arr_empty", GGUF_TYPE_STRING, &v, err, sizeof err), 0);
    assert_int_equal(v->v.arr.n, 0);

    assert_int_equal(gguf_n_tensors(g), 3);
    static const struct {
        const char *name;
        enum quant_type type;
        int n_dims;
        int64_t ne0, ne1;
        size_t size;
        uint64_t offset;
    } ts[] = {
        { "b", QUANT_TYPE_Q8_0, 2, 32, 2, 68, 0 },
        { "c.q4_k", QUANT_TYPE_Q4_K, 1, 256, 1, 144, 96 },
        { "a", QUANT_TYPE_F32, 2, 16, 2, 128, 256 },
    };
    for (int k = 0; k < 3; k++) {
        const struct gguf_tensor *t = gguf_tensor(g, k);
        assert_non_null(t);
        assert_ptr_equal(gguf_find_tensor(g, ts[k].name), t);
        assert_string_equal(t->name, ts[k].name);
        assert_int_equal(t->type, ts[k].type);
        assert_int_equal(t->n_dims, ts[k].n_dims);
        assert_int_equal(t->ne[0], ts[k].ne0);
        assert_int_equal(t->ne[1], ts[k].ne1);
        assert_int_equal(t->ne[2], 1);
        assert_int_equal(t->ne[3], 1);
        assert_int_equal(t->n_elements, ts[k].ne0 * ts[k].ne1);
        assert_int_equal(t->size, ts[k].size);
        assert_int_equal(t->offset, ts[k].offset);
    }
    assert_memory_equal(gguf_find_tensor(g, "a")->data, f32_data, sizeof f32_data);
    assert_memory_equal(gguf_find_tensor(g, "b")->data, q8_data, sizeof q8_data);
    static const uint8_t zeros[144];
    assert_memory_equal(gguf_find_tensor(g, "c.q4_k")->data, zeros, 144);
    assert_null(gguf_find_tensor(g, "c"));
    assert_null(gguf_find_tensor(g, "c.q4_k.x"));
    assert_null(gguf_tensor(g, 3));
    assert_null(gguf_find(g, "t.u"));
    assert_null(gguf_find(g, ""));
}

static void test_round_trip_in_memory_gives_every_key_value_and_tensor(void **state)
{
    (void)state;
    uint8_t *bytes, *copy;
    size_t len;
    struct gguf *g;
    char err[256];
    small_bytes(&bytes, &len);
    int rc = open_copy(bytes, len, &g, &copy, err, sizeof err);
    if (rc)
        fail_msg("open: %s", err);
    assert_int_equal(gguf_file_size(g), len);
    assert_string_equal(gguf_path(g), "t.gguf");
    check_small(g);
    gguf_close(g);
    free(copy);
    free(bytes);
}

static void test_round_trip_through_a_file_and_the_stream_writer(void **state)
{
    (void)state;
    struct fx_gguf *w = small_writer();
    uint8_t *bytes;
    size_t len;
    assert_int_equal(fx_gguf_bytes(w, &bytes, &len), 0);

    char path[] = "/tmp/ponder-gguf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(fx_gguf_write_file(w, path), 0);
    struct gguf *g;
    char err[256];
    int rc = gguf_open(path, &g, err, sizeof err);
    if (rc)
        fail_msg("open: %s", err);
    check_small(g);
    gguf_close(g);
    size_t flen;
    char *file = fx_read_file(path, &flen);
    assert_non_null(file);
    assert_int_equal(flen, len);
    assert_memory_equal(file, bytes, len);
    free(file);

    /* Streaming, as the benchmark-model generator does it. */
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fx_gguf_write_header(w, f), 0);
    const void *data[] = { q8_data, NULL, f32_data };
    static const uint8_t zeros[256];
    for (int k = 0; k < 3; k++) {
        size_t n = fx_gguf_tensor_size(w, k);
        assert_int_equal(fwrite(data[k] ? data[k] : zeros, 1, n, f), n);
        assert_int_equal(fx_gguf_write_pad(w, f, (size_t)ftell(f)), 0);
    }
    assert_int_equal(fclose(f), 0);
    file = fx_read_file(path, &flen);
    assert_non_null(file);
    assert_int_equal(flen, len);
    assert_memory_equal(file, bytes, len);
    free(file);
    unlink(path);
    free(bytes);
    fx_gguf_free(w);
}

static void test_file_without_tensors_or_keys_is_valid(void **state)
{
    (void)state;
    for (int keys = 0; keys < 2; keys++) {
        struct fx_gguf *w = fx_gguf_new(2);
        if (keys)
            assert_int_equal(fx_gguf_kv_str(w, "general.architecture", "llama"), 0);
        uint8_t *bytes, *copy;
        size_t len;
        assert_int_equal(fx_gguf_bytes(w, &bytes, &len), 0);
        struct gguf *g;
        char err[256];
        int rc = open_copy(bytes, len, &g, &copy, err, sizeof err);
        if (rc)
            fail_msg("keys %d: %s", keys, err);
        assert_int_equal(gguf_version(g), 2);
        assert_int_equal(gguf_n_tensors(g), 0);
        assert_int_equal(gguf_n_kv(g), keys);
        assert_null(gguf_find_tensor(g, "x"));
        assert_null(gguf_tensor(g, 0));
        assert_true((gguf_find(g, "general.architecture") != NULL) == keys);
        gguf_close(g);
        free(copy);
        free(bytes);
        fx_gguf_free(w);
    }
}

static void test_alignment_key_sets_the_data_alignment(void **state)
{
    (void)state;
    static const uint32_t aligns[] = { 1, 8, 64, 4096 };
    for (size_t k = 0; k < sizeof aligns / sizeof aligns[0]; k++) {
        struct fx_gguf *w = fx_gguf_new(3);
        fx_gguf_set_alignment(w, aligns[k]);
        int64_t ne1[] = { 3 }, ne2[] = { 32 };
        assert_int_equal(fx_gguf_tensor(w, "x", QUANT_TYPE_F16, 1, ne1, NULL), 0);
        assert_int_equal(fx_gguf_tensor(w, "y", QUANT_TYPE_Q4_0, 1, ne2, NULL), 0);
        uint8_t *bytes, *copy;
        size_t len;
        assert_int_equal(fx_gguf_bytes(w, &bytes, &len), 0);
        struct gguf *g;
        char err[256];
        int rc = open_copy(bytes, len, &g, &copy, err, sizeof err);
        if (rc)
            fail_msg("alignment %u: %s", aligns[k], err);
        assert_int_equal(gguf_alignment(g), aligns[k]);
        const struct gguf_tensor *y = gguf_find_tensor(g, "y");
        assert_int_equal(y->offset % aligns[k], 0);
        assert_int_equal(y->offset, aligns[k] >= 8 ? aligns[k] : 6);
        assert_int_equal(((const uint8_t *)y->data - copy) % aligns[k], 0);
        gguf_close(g);
        free(copy);
        free(bytes);
        fx_gguf_free(w);
    }
}

static void test_writer_refuses_tensors_it_cannot_size(void **state)
{
    (void)state;
    struct fx_gguf *w = fx_gguf_new(3);
    static const struct {
        const char *name;
        enum quant_type type;
        int n_dims;
        int64_t ne[4];
        int rc;
    } cases[] = {
        { "row of 32 in Q4_K", QUANT_TYPE_Q4_K, 1, { 32 }, EINVAL },
        { "n_dims 0", QUANT_TYPE_F32, 0, { 1 }, EINVAL },
        { "n_dims 5", QUANT_TYPE_F32, 5, { 1, 1, 1, 1 }, EINVAL },
        { "zero dimension", QUANT_TYPE_F32, 2, { 4, 0 }, EINVAL },
        { "type 4", (enum quant_type)4, 1, { 32 }, EINVAL },
        { "bytes overflow", QUANT_TYPE_F32, 3, { 1LL << 40, 1LL << 20, 1LL << 10 }, EOVERFLOW },
        { "4-D Q8_0", QUANT_TYPE_Q8_0, 4, { 64, 3, 2, 2 }, 0 },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int rc = fx_gguf_tensor(w, cases[k].name, cases[k].type, cases[k].n_dims, cases[k].ne, NULL);
        if (rc != cases[k].rc)
            fail_msg("case %s: got %d", cases[k].name, rc);
    }
    assert_int_equal(fx_gguf_tensor_size(w, 0), 2 * 34 * 3 * 2 * 2);
    assert_int_equal(fx_gguf_tensor_size(w, 1), 0);
    fx_gguf_free(w);
}

/* ---- malformed files ---------------------------------------------------- */

static uint64_t u64max = 18446744073709551615ull;

static void add_raw_tensor(struct fx_gguf *w, const char *name, uint32_t type, uint32_t n_dims, uint64_t ne0,
                           uint64_t ne1, uint64_t offset)
{
    uint64_t ne[5] = { ne0, ne1, 1, 1, 1 };
    assert_int_equal(fx_gguf_tensor_raw(w, name, type, n_dims, ne, offset), 0);
}

static void b_none(struct fx_gguf *w) { (void)w; }
static void b_str_len_max(struct fx_gguf *w) { assert_int_equal(fx_gguf_kv_raw(w, "tokenizer.ggml.model", GGUF_TYPE_STRING, &u64max, 8), 0); }
static void b_value_truncated(struct fx_gguf *w) { assert_int_equal(fx_gguf_kv_u64(w, "last.u64", 7), 0); }
static void b_arr_huge(struct fx_gguf *w)
{
    uint8_t v[12];
    put_le(v, GGUF_TYPE_INT32, 4);
    put_le(v + 4, 1ull << 62, 8);
    assert_int_equal(fx_gguf_kv_raw(w, "tokenizer.ggml.token_type", GGUF_TYPE_ARRAY, v, 12), 0);
}
static void b_arr_str_huge(struct fx_gguf *w)
{
    uint8_t v[12];
    put_le(v, GGUF_TYPE_STRING, 4);
    put_le(v + 4, 1ull << 61, 8);
    assert_int_equal(fx_gguf_kv_raw(w, "tokenizer.ggml.tokens", GGUF_TYPE_ARRAY, v, 12), 0);
}
static void b_arr_str_elem_huge(struct fx_gguf *w)
{
    uint8_t v[12 + 9 + 8];
    put_le(v, GGUF_TYPE_STRING, 4);
    put_le(v + 4, 2, 8);
    put_le(v + 12, 1, 8);
    v[20] = 'x';
    put_le(v + 21, u64max, 8);
    assert_int_equal(fx_gguf_kv_raw(w, "tokenizer.ggml.merges", GGUF_TYPE_ARRAY, v, sizeof v), 0);
}
static void b_dup_key(struct fx_gguf *w) { assert_int_equal(fx_gguf_kv_u32(w, "general.architecture", 1), 0); }
static void b_arr_of_arr(struct fx_gguf *w)
{
    uint8_t v[12 + 12];
    put_le(v, GGUF_TYPE_ARRAY, 4);
    put_le(v + 4, 1, 8);
    put_le(v + 12, GGUF_TYPE_UINT8, 4);
    put_le(v + 16, 0, 8);
    assert_int_equal(fx_gguf_kv_raw(w, "nested.arr", GGUF_TYPE_ARRAY, v, sizeof v), 0);
}
static void b_bad_value_type(struct fx_gguf *w) { assert_int_equal(fx_gguf_kv_raw(w, "odd.type", 13, "\0\0\0\0", 4), 0); }
static void b_bad_elem_type(struct fx_gguf *w)
{
    uint8_t v[12];
    put_le(v, 99, 4);
    put_le(v + 4, 0, 8);
    assert_int_equal(fx_gguf_kv_raw(w, "odd.elems", GGUF_TYPE_ARRAY, v, 12), 0);
}
static void b_bad_bool(struct fx_gguf *w) { assert_int_equal(fx_gguf_kv_raw(w, "odd.bool", GGUF_TYPE_BOOL, "\2", 1), 0); }
static void b_bad_bool_arr(struct fx_gguf *w)
{
    static const uint8_t v[] = { 0, 1, 7 };
    assert_int_equal(fx_gguf_kv_arr_raw(w, "odd.bools", GGUF_TYPE_BOOL, v, 3), 0);
}
static void b_align_str(struct fx_gguf *w) { assert_int_equal(fx_gguf_kv_str(w, "general.alignment", "32"), 0); }
static void b_align_u64(struct fx_gguf *w) { assert_int_equal(fx_gguf_kv_u64(w, "general.alignment", 32), 0); }
static void b_align_0(struct fx_gguf *w) { fx_gguf_set_alignment(w, 0); }
static void b_align_48(struct fx_gguf *w) { fx_gguf_set_alignment(w, 48); }
static void b_ndims_0(struct fx_gguf *w) { add_raw_tensor(w, "blk.0.attn_q.weight", 0, 0, 0, 0, 128); }
static void b_ndims_5(struct fx_gguf *w) { add_raw_tensor(w, "blk.0.attn_q.weight", 0, 5, 1, 1, 128); }
static void b_dim_negative(struct fx_gguf *w) { add_raw_tensor(w, "blk.0.attn_k.weight", 0, 2, 32, (uint64_t)-32, 128); }
static void b_dim_zero(struct fx_gguf *w) { add_raw_tensor(w, "blk.0.attn_k.weight", 0, 2, 32, 0, 128); }
static void b_dim_overflow(struct fx_gguf *w) { add_raw_tensor(w, "blk.0.ffn_up.weight", 0, 2, 1ull << 32, 1ull << 32, 128); }
static void b_bytes_overflow(struct fx_gguf *w) { add_raw_tensor(w, "blk.0.ffn_up.weight", 0, 2, 1ull << 40, 1ull << 22, 128); }
static void b_type_unknown(struct fx_gguf *w) { add_raw_tensor(w, "output.weight", 40, 1, 32, 1, 128); }
static void b_type_huge(struct fx_gguf *w) { add_raw_tensor(w, "output.weight", 0xffffffffu, 1, 32, 1, 128); }
static void b_type_removed(struct fx_gguf *w) { add_raw_tensor(w, "output.weight", 31, 1, 32, 1, 128); }
static void b_row_len(struct fx_gguf *w) { add_raw_tensor(w, "token_embd.weight", QUANT_TYPE_Q4_K, 2, 32, 4, 128); }
static void b_row_len_q8(struct fx_gguf *w) { add_raw_tensor(w, "token_embd.weight", QUANT_TYPE_Q8_0, 1, 33, 1, 128); }
static void b_unaligned(struct fx_gguf *w) { add_raw_tensor(w, "blk.1.attn_v.weight", 0, 1, 4, 1, 36); }
static void b_overlap(struct fx_gguf *w) { add_raw_tensor(w, "blk.1.attn_v.weight", 0, 1, 8, 1, 64); }
static void b_past_end(struct fx_gguf *w) { add_raw_tensor(w, "blk.1.attn_v.weight", 0, 1, 8, 1, 4096); }
static void b_offset_huge(struct fx_gguf *w) { add_raw_tensor(w, "blk.1.attn_v.weight", 0, 1, 8, 1, u64max - 31); }
static void b_dup_tensor(struct fx_gguf *w)
{
    int64_t ne[] = { 8 };
    assert_int_equal(fx_gguf_tensor(w, "a.weight", QUANT_TYPE_F32, 1, ne, NULL), 0);
}
static void b_nul_key(struct fx_gguf *w) { assert_int_equal(fx_gguf_kv_u8(w, "nul#key", 1), 0); }

static void p_none(uint8_t *b, size_t *len) { (void)b, (void)len; }
static void p_len3(uint8_t *b, size_t *len) { (void)b, *len = 3; }
static void p_len10(uint8_t *b, size_t *len) { (void)b, *len = 10; }
static void p_len20(uint8_t *b, size_t *len) { (void)b, *len = 20; }
static void p_len_minus1(uint8_t *b, size_t *len) { (void)b, *len -= 1; }
static void p_magic(uint8_t *b, size_t *len) { (void)len, b[0] = 'g'; }
static void p_version1(uint8_t *b, size_t *len) { (void)len, put_le(b + FX_GGUF_OFF_VERSION, 1, 4); }
static void p_version4(uint8_t *b, size_t *len) { (void)len, put_le(b + FX_GGUF_OFF_VERSION, 4, 4); }
static void p_version_be(uint8_t *b, size_t *len) { (void)len, put_le(b + FX_GGUF_OFF_VERSION, 3u << 24, 4); }
static void p_kv_huge(uint8_t *b, size_t *len) { (void)len, put_le(b + FX_GGUF_OFF_N_KV, 1ull << 60, 8); }
static void p_kv_max(uint8_t *b, size_t *len) { (void)len, put_le(b + FX_GGUF_OFF_N_KV, u64max, 8); }
static void p_tensors_huge(uint8_t *b, size_t *len) { (void)len, put_le(b + FX_GGUF_OFF_N_TENSORS, 1ull << 60, 8); }
static void p_key_len_max(uint8_t *b, size_t *len) { (void)len, put_le(b + FX_GGUF_OFF_FIRST_KV, u64max, 8); }
/* Ends the file 3 bytes into the value of "last.u64". */
static void p_cut_value(uint8_t *b, size_t *len)
{
    for (size_t i = 0; i + 8 <= *len; i++)
        if (memcmp(b + i, "last.u64", 8) == 0) {
            *len = i + 8 + 4 + 3;
            return;
        }
    fail_msg("last.u64 not found");
}
static void p_nul_key(uint8_t *b, size_t *len)
{
    for (size_t i = 0; i + 7 <= *len; i++)
        if (memcmp(b + i, "nul#key", 7) == 0)
            b[i + 3] = 0;
}

struct bad_case {
    const char *name;
    void (*build)(struct fx_gguf *w);
    void (*patch)(uint8_t *b, size_t *len);
    int rc;
    const char *needles[3];  /* each must appear in the message */
};

static const struct bad_case bad_cases[] = {
    { "file too short", b_none, p_len3, EBADMSG, { "t.gguf: header", "too short" } },
    { "truncated header", b_none, p_len10, EBADMSG, { "t.gguf: header: tensor count runs past end of file" } },
    { "truncated kv count", b_none, p_len20, EBADMSG, { "kv count runs past end of file" } },
    { "truncated tensor data", b_none, p_len_minus1, EBADMSG, { "tensor 'a.weight'", "runs past end of file" } },
    { "bad magic", b_none, p_magic, EBADMSG, { "t.gguf", "bad magic", "not a GGUF file" } },
    { "version 1", b_none, p_version1, ENOTSUP, { "t.gguf", "unsupported GGUF version 1" } },
    { "version 4", b_none, p_version4, ENOTSUP, { "unsupported GGUF version 4" } },
    { "big-endian version", b_none, p_version_be, ENOTSUP, { "unsupported GGUF version 50331648", "big-endian" } },
    { "huge kv count", b_none, p_kv_huge, EBADMSG, { "kv count 1152921504606846976 is more than" } },
    { "kv count 2^64-1", b_none, p_kv_max, EBADMSG, { "kv count 18446744073709551615" } },
    { "huge tensor count", b_none, p_tensors_huge, EBADMSG, { "tensor count 1152921504606846976 is more than" } },
    { "key length 2^64-1", b_none, p_key_len_max, EBADMSG,
      { "t.gguf: key #0: key length 18446744073709551615 runs past end of file" } },
    { "string length 2^64-1", b_str_len_max, p_none, EBADMSG,
      { "t.gguf: key 'tokenizer.ggml.model': string length 18446744073709551615 runs past end of file" } },
    { "scalar value truncated", b_value_truncated, p_cut_value, EBADMSG, { "key 'last.u64'", "runs past end" } },
    { "huge numeric array", b_arr_huge, p_none, EBADMSG,
      { "key 'tokenizer.ggml.token_type': array of 4611686018427387904 int32 elements runs past end" } },
    { "huge string array", b_arr_str_huge, p_none, EBADMSG,
      { "key 'tokenizer.ggml.tokens': array of 2305843009213693952 strings runs past end" } },
    { "string array element too long", b_arr_str_elem_huge, p_none, EBADMSG,
      { "key 'tokenizer.ggml.merges': string 1 of 2: length 18446744073709551615 runs past end" } },
    { "duplicate key", b_dup_key, p_none, EBADMSG, { "key 'general.architecture': duplicate key" } },
    { "key with a NUL byte", b_nul_key, p_nul_key, EBADMSG, { "key #", "NUL" } },
    { "array of arrays", b_arr_of_arr, p_none, EBADMSG, { "key 'nested.arr'", "arrays of arrays" } },
    { "unknown value type", b_bad_value_type, p_none, EBADMSG, { "key 'odd.type'", "unknown value type 13" } },
    { "unknown array element type", b_bad_elem_type, p_none, EBADMSG, { "key 'odd.elems'", "element type 99" } },
    { "bool value 2", b_bad_bool, p_none, EBADMSG, { "key 'odd.bool'", "bool value 2" } },
    { "bool array element 7", b_bad_bool_arr, p_none, EBADMSG, { "key 'odd.bools'", "bool element 2 is 7" } },
    { "alignment of type string", b_align_str, p_none, EBADMSG,
      { "key 'general.alignment': has type string, expected uint32" } },
    { "alignment of type uint64", b_align_u64, p_none, EBADMSG, { "key 'general.alignment'", "uint64" } },
    { "alignment 0", b_align_0, p_none, EBADMSG, { "key 'general.alignment'", "alignment 0 is not a power of two" } },
    { "alignment 48", b_align_48, p_none, EBADMSG, { "key 'general.alignment'", "alignment 48 is not" } },
    { "n_dims 0", b_ndims_0, p_none, EBADMSG, { "tensor 'blk.0.attn_q.weight': n_dims 0 is not in 1..4" } },
    { "n_dims 5", b_ndims_5, p_none, EBADMSG, { "tensor 'blk.0.attn_q.weight': n_dims 5 is not in 1..4" } },
    { "negative dimension", b_dim_negative, p_none, EBADMSG, { "tensor 'blk.0.attn_k.weight': dimension 1 is negative (-32)" } },
    { "zero dimension", b_dim_zero, p_none, EBADMSG, { "tensor 'blk.0.attn_k.weight': dimension 1 is 0" } },
    { "element count overflow", b_dim_overflow, p_none, EBADMSG, { "tensor 'blk.0.ffn_up.weight': element count overflows" } },
    { "byte size overflow", b_bytes_overflow, p_none, EBADMSG, { "tensor 'blk.0.ffn_up.weight': byte size", "overflows" } },
    { "unknown tensor type 40", b_type_unknown, p_none, EBADMSG, { "tensor 'output.weight': unknown tensor type 40" } },
    { "unknown tensor type 2^32-1", b_type_huge, p_none, EBADMSG, { "tensor 'output.weight': unknown tensor type 4294967295" } },
    { "removed tensor type", b_type_removed, p_none, ENOTSUP, { "tensor 'output.weight'", "Q4_0_4_4", "no longer supported" } },
    { "row not a multiple of 256", b_row_len, p_none, EBADMSG,
      { "tensor 'token_embd.weight': row length 32 is not a multiple of the block size 256 of Q4_K" } },
    { "row not a multiple of 32", b_row_len_q8, p_none, EBADMSG, { "tensor 'token_embd.weight': row length 33", "Q8_0" } },
    { "unaligned offset", b_unaligned, p_none, EBADMSG, { "tensor 'blk.1.attn_v.weight': offset 36 is not aligned to 32" } },
    { "overlapping tensors", b_overlap, p_none, EBADMSG, { "tensor 'a.weight'", "overlaps tensor 'blk.1.attn_v.weight' at offset 64" } },
    { "offset past the end", b_past_end, p_none, EBADMSG, { "tensor 'blk.1.attn_v.weight': data (offset 4096", "runs past end of file" } },
    { "offset near 2^64", b_offset_huge, p_none, EBADMSG, { "tensor 'blk.1.attn_v.weight'", "runs past end of file" } },
    { "duplicate tensor name", b_dup_tensor, p_none, EBADMSG, { "tensor 'a.weight': duplicate tensor name" } },
};

static void test_malformed_files_are_rejected_with_a_message_naming_the_culprit(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof bad_cases / sizeof bad_cases[0]; k++) {
        const struct bad_case *c = &bad_cases[k];
        struct fx_gguf *w = fx_gguf_new(3);
        assert_int_equal(fx_gguf_kv_str(w, "general.architecture", "qwen2"), 0);
        c->build(w);
        int64_t ne[] = { 32 };
        assert_int_equal(fx_gguf_tensor(w, "a.weight", QUANT_TYPE_F32, 1, ne, NULL), 0);
        uint8_t *bytes, *copy;
        size_t len;
        assert_int_equal(fx_gguf_bytes(w, &bytes, &len), 0);
        c->patch(bytes, &len);
        struct gguf *g = (struct gguf *)1;
        char err[512] = "";
        int rc = open_copy(bytes, len, &g, &copy, err, sizeof err);
        if (rc != c->rc)
            fail_msg("case %s: got %d (%s), expected %d", c->name, rc, err, c->rc);
        if (g != NULL)
            fail_msg("case %s: handle not NULL on error", c->name);
        if (strchr(err, '\n'))
            fail_msg("case %s: message has a newline: %s", c->name, err);
        for (int n = 0; n < 3 && c->needles[n]; n++)
            if (!strstr(err, c->needles[n]))
                fail_msg("case %s: message \"%s\" lacks \"%s\"", c->name, err, c->needles[n]);
        free(copy);
        free(bytes);
        fx_gguf_free(w);
    }
}

static void test_every_truncated_prefix_is_ebadmsg(void **state)
{
    (void)state;
    uint8_t *bytes;
    size_t len;
    small_bytes(&bytes, &len);
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy;
        struct gguf *g;
        char err[512] = "";
        int rc = open_copy(bytes, n, &g, &copy, err, sizeof err);
        if (rc != EBADMSG)
            fail_msg("case prefix %zu of %zu: got %d (%s)", n, len, rc, err);
        if (strncmp(err, "t.gguf: ", 8) != 0)
            fail_msg("case prefix %zu: message \"%s\"", n, err);
        free(copy);
    }
    free(bytes);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Walks everything an opened handle offers, so a bad pointer would show. */
static void exercise(const struct gguf *g)
{
    char err[256];
    uint64_t sum = 0;
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const char *key = gguf_kv_key(g, i);
        const struct gguf_value *v = gguf_kv_value(g, i);
        assert_non_null(gguf_find(g, key));
        int64_t x;
        double f;
        if (gguf_get_int(g, key, &x, err, sizeof err) == 0)
            sum += (uint64_t)x;
        if (gguf_get_float(g, key, &f, err, sizeof err) == 0)
            sum += (uint64_t)(f == f);
        if (v->type == GGUF_TYPE_STRING && v->v.s.len)
            sum += (uint8_t)v->v.s.ptr[v->v.s.len - 1];
        if (v->type == GGUF_TYPE_ARRAY) {
            for (uint64_t j = 0; j < v->v.arr.n; j++) {
                if (v->v.arr.type == GGUF_TYPE_STRING) {
                    const struct gguf_str *s = &((const struct gguf_str *)v->v.arr.data)[j];
                    if (s->len)
                        sum += (uint8_t)s->ptr[s->len - 1];
                } else {
                    sum += (uint64_t)gguf_arr_int(v, j) + (uint64_t)(gguf_arr_float(v, j) == 0);
                }
            }
        }
    }
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor(g, i);
        assert_ptr_equal(gguf_find_tensor(g, t->name), t);
        const uint8_t *d = t->data;
        sum += d[0] + d[t->size - 1];
    }
    (void)sum;
}

static void test_mutation_fuzz_never_crashes(void **state)
{
    (void)state;
    uint8_t *bytes;
    size_t len;
    small_bytes(&bytes, &len);
    static const uint64_t special[] = { 0, 1, 31, 32, 33, 255, 0x7fffffffffffffffull, 0x8000000000000000ull,
                                        0xffffffffffffffffull, 0xffffffffull, 0x100000000ull, 4, 9, 12, 13 };
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int opened = 0, refused = 0;
    uint8_t *m = malloc(len);
    assert_non_null(m);
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(m, bytes, len);
        size_t n = len;
        int muts = 1 + (int)(rng_next(&seed) % 4);
        for (int k = 0; k < muts; k++) {
            size_t at = (size_t)(rng_next(&seed) % n);
            switch (rng_next(&seed) % 5) {
            case 0: m[at] ^= (uint8_t)(1u << (rng_next(&seed) % 8)); break;
            case 1: m[at] = (uint8_t)rng_next(&seed); break;
            case 2:
                if (n - at >= 8)
                    put_le(m + at, special[rng_next(&seed) % (sizeof special / sizeof special[0])], 8);
                break;
            case 3:
                if (n - at >= 4)
                    put_le(m + at, special[rng_next(&seed) % (sizeof special / sizeof special[0])], 4);
                break;
            default: n = at + 1; break;
            }
        }
        uint8_t *copy;
        struct gguf *g;
        char err[512] = "";
        int rc = open_copy(m, n, &g, &copy, err, sizeof err);
        if (rc == 0) {
            opened++;
            exercise(g);
            gguf_close(g);
        } else {
            refused++;
            if ((rc != EBADMSG && rc != ENOTSUP) || strncmp(err, "t.gguf: ", 8) != 0)
                fail_msg("case iteration %d: got %d (%s)", iter, rc, err);
        }
        free(copy);
    }
    /* Both outcomes must occur, or the mutations tested nothing. */
    assert_true(opened > 100);
    assert_true(refused > 100);
    free(m);
    free(bytes);
}

static void test_typed_getters_check_presence_type_and_range(void **state)
{
    (void)state;
    struct fx_gguf *w = fx_gguf_new(3);
    static const uint64_t big[] = { 1 };
    uint64_t too_big = 9223372036854775808ull;
    assert_int_equal(fx_gguf_kv_str(w, "general.architecture", "qwen2"), 0);
    assert_int_equal(fx_gguf_kv_i32(w, "neg", -1), 0);
    assert_int_equal(fx_gguf_kv_u64(w, "big", 4294967296ull), 0);
    assert_int_equal(fx_gguf_kv_u64(w, "max32", 4294967295ull), 0);
    assert_int_equal(fx_gguf_kv_raw(w, "huge", GGUF_TYPE_UINT64, &too_big, 8), 0);
    assert_int_equal(fx_gguf_kv_f32(w, "eps", 1e-6f), 0);
    assert_int_equal(fx_gguf_kv_arr_raw(w, "ids", GGUF_TYPE_UINT64, big, 1), 0);
    uint8_t *bytes, *copy;
    size_t len;
    assert_int_equal(fx_gguf_bytes(w, &bytes, &len), 0);
    struct gguf *g;
    char err[256];
    assert_int_equal(open_copy(bytes, len, &g, &copy, err, sizeof err), 0);

    enum getter { INT, U32, FLOAT, BOOL, STR, ARR_ANY, ARR_I32 };
    static const struct {
        const char *name;
        enum getter get;
        const char *key;
        int rc;
        const char *needle;
    } cases[] = {
        { "int of a string", INT, "general.architecture", EBADMSG,
          "t.gguf: key 'general.architecture' has type string, expected an integer" },
        { "uint32 of a string", U32, "general.architecture", EBADMSG, "has type string, expected an integer" },
        { "float of a string", FLOAT, "general.architecture", EBADMSG, "has type string, expected float32 or float64" },
        { "bool of an int", BOOL, "neg", EBADMSG, "key 'neg' has type int32, expected bool" },
        { "string of a float", STR, "eps", EBADMSG, "key 'eps' has type float32, expected string" },
        { "array of a string", ARR_ANY, "general.architecture", EBADMSG, "has type string, expected array" },
        { "int32 array of uint64s", ARR_I32, "ids", EBADMSG, "key 'ids' has type array of uint64, expected array of int32" },
        { "int of an array", INT, "ids", EBADMSG, "key 'ids' has type array of uint64, expected an integer" },
        { "float of an int", FLOAT, "neg", EBADMSG, "key 'neg' has type int32" },
        { "uint32 of -1", U32, "neg", EBADMSG, "key 'neg': value -1 is out of range for uint32" },
        { "uint32 of 2^32", U32, "big", EBADMSG, "key 'big': value 4294967296 is out of range for uint32" },
        { "uint32 of 2^32-1", U32, "max32", 0, NULL },
        { "int of 2^63", INT, "huge", EBADMSG, "key 'huge': value 9223372036854775808 is out of range for int64" },
        { "int of -1", INT, "neg", 0, NULL },
        { "missing int", INT, "qwen2.block_count", ENOENT, "t.gguf: key 'qwen2.block_count' not found" },
        { "missing uint32", U32, "nope", ENOENT, "key 'nope' not found" },
        { "missing float", FLOAT, "nope", ENOENT, "key 'nope' not found" },
        { "missing bool", BOOL, "nope", ENOENT, "key 'nope' not found" },
        { "missing string", STR, "nope", ENOENT, "key 'nope' not found" },
        { "missing array", ARR_ANY, "nope", ENOENT, "key 'nope' not found" },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int64_t i = 0;
        uint32_t u = 0;
        double f;
        bool b;
        struct gguf_str s;
        const struct gguf_value *v;
        int rc = -1;
        err[0] = 0;
        switch (cases[k].get) {
        case INT: rc = gguf_get_int(g, cases[k].key, &i, err, sizeof err); break;
        case U32: rc = gguf_get_uint32(g, cases[k].key, &u, err, sizeof err); break;
        case FLOAT: rc = gguf_get_float(g, cases[k].key, &f, err, sizeof err); break;
        case BOOL: rc = gguf_get_bool(g, cases[k].key, &b, err, sizeof err); break;
        case STR: rc = gguf_get_str(g, cases[k].key, &s, err, sizeof err); break;
        case ARR_ANY: rc = gguf_get_arr(g, cases[k].key, GGUF_TYPE_COUNT, &v, err, sizeof err); break;
        case ARR_I32: rc = gguf_get_arr(g, cases[k].key, GGUF_TYPE_INT32, &v, err, sizeof err); break;
        }
        if (rc != cases[k].rc)
            fail_msg("case %s: got %d (%s)", cases[k].name, rc, err);
        if (cases[k].needle && !strstr(err, cases[k].needle))
            fail_msg("case %s: message \"%s\" lacks \"%s\"", cases[k].name, err, cases[k].needle);
        if (rc == 0 && cases[k].get == U32)
            assert_int_equal(u, 4294967295u);
        if (rc == 0 && cases[k].get == INT)
            assert_int_equal(i, -1);
    }
    double eps;
    assert_int_equal(gguf_get_float(g, "eps", &eps, err, sizeof err), 0);
    assert_true(eps == (double)1e-6f);
    gguf_close(g);
    free(copy);
    free(bytes);
    fx_gguf_free(w);
}

static void test_tensor_type_table_matches_the_block_layouts(void **state)
{
    (void)state;
    static const struct {
        uint32_t type;
        int64_t block_size;
        size_t block_bytes;
        const char *name;
    } cases[] = {
        { QUANT_TYPE_F32, 1, 4, "F32" },
        { QUANT_TYPE_F16, 1, 2, "F16" },
        { QUANT_TYPE_BF16, 1, 2, "BF16" },
        { QUANT_TYPE_Q4_0, QK4_0, sizeof(struct block_q4_0), "Q4_0" },
        { QUANT_TYPE_Q4_1, QK4_1, sizeof(struct block_q4_1), "Q4_1" },
        { QUANT_TYPE_Q5_0, QK5_0, sizeof(struct block_q5_0), "Q5_0" },
        { QUANT_TYPE_Q5_1, QK5_1, sizeof(struct block_q5_1), "Q5_1" },
        { QUANT_TYPE_Q8_0, QK8_0, sizeof(struct block_q8_0), "Q8_0" },
        { QUANT_TYPE_Q8_1, QK8_1, sizeof(struct block_q8_1), "Q8_1" },
        { QUANT_TYPE_Q2_K, QK_K, sizeof(struct block_q2_k), "Q2_K" },
        { QUANT_TYPE_Q3_K, QK_K, sizeof(struct block_q3_k), "Q3_K" },
        { QUANT_TYPE_Q4_K, QK_K, sizeof(struct block_q4_k), "Q4_K" },
        { QUANT_TYPE_Q5_K, QK_K, sizeof(struct block_q5_k), "Q5_K" },
        { QUANT_TYPE_Q6_K, QK_K, sizeof(struct block_q6_k), "Q6_K" },
        { QUANT_TYPE_Q8_K, QK_K, sizeof(struct block_q8_k), "Q8_K" },
        { 16, 256, 66, "IQ2_XXS" },
        { 20, 32, 18, "IQ4_NL" },
        { 23, 256, 136, "IQ4_XS" },
        { 24, 1, 1, "I8" },
        { 28, 1, 8, "F64" },
        { 29, 256, 56, "IQ1_M" },
        { 35, 256, 66, "TQ2_0" },
        { 39, 32, 17, "MXFP4" },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int64_t bs = 0;
        size_t bb = 0;
        if (!gguf_tensor_type_size(cases[k].type, &bs, &bb) || bs != cases[k].block_size ||
            bb != cases[k].block_bytes)
            fail_msg("case %s: got %lld values in %zu bytes", cases[k].name, (long long)bs, bb);
        assert_string_equal(gguf_tensor_type_name(cases[k].type), cases[k].name);
    }
    static const uint32_t not_types[] = { 4, 5, 31, 32, 33, 36, 37, 38, 40, 1000, 0xffffffffu };
    for (size_t k = 0; k < sizeof not_types / sizeof not_types[0]; k++)
        if (gguf_tensor_type_size(not_types[k], NULL, NULL))
            fail_msg("case type %u: accepted", not_types[k]);
    assert_string_equal(gguf_tensor_type_name(40), "?");
    assert_string_equal(gguf_type_name(GGUF_TYPE_FLOAT64), "float64");
    assert_string_equal(gguf_type_name(GGUF_TYPE_COUNT), "?");
}

static void test_open_reports_missing_files_directories_and_empty_files(void **state)
{
    (void)state;
    struct gguf *g;
    char err[512];
    assert_int_equal(gguf_open("/nonexistent/dir/model.gguf", &g, err, sizeof err), ENOENT);
    assert_null(g);
    assert_non_null(strstr(err, "/nonexistent/dir/model.gguf"));
    assert_int_equal(gguf_open("/tmp", &g, err, sizeof err), EISDIR);
    assert_non_null(strstr(err, "/tmp"));
    char *empty = fx_write_temp("", 0);
    assert_non_null(empty);
    assert_int_equal(gguf_open(empty, &g, err, sizeof err), EBADMSG);
    assert_non_null(strstr(err, empty));
    unlink(empty);
    free(empty);
    /* NULL buffer and a zero-length error buffer are tolerated. */
    assert_int_equal(gguf_open_memory(NULL, 0, NULL, &g, NULL, 0), EBADMSG);
    gguf_close(NULL);
}

struct real_file {
    const char *path;
    const char *arch;
    int64_t n_tensors;
    uint64_t n_tokens, n_merges;
    uint32_t bos;
    const char *embd;       /* token_embd.weight: type and shape */
    enum quant_type embd_type;
    int64_t embd_ne0, embd_ne1;
    enum quant_type output_type;
};

static const struct real_file real_files[] = {
    { "vocab-r1-qwen.gguf", "qwen2", 0, 151936, 151387, 151646, NULL, 0, 0, 0, 0 },
    { "vocab-r1-llama.gguf", "llama", 0, 128256, 280147, 128000, NULL, 0, 0, 0, 0 },
    { "vocab-r1.gguf", "deepseek2", 0, 129280, 127741, 0, NULL, 0, 0, 0, 0 },
    { "models/tq-f32.gguf", "qwen2", 27, 455, 0, 0, "e", QUANT_TYPE_F32, 256, 455, QUANT_TYPE_F32 },
    { "models/tq-f16.gguf", "qwen2", 27, 455, 0, 0, "e", QUANT_TYPE_F16, 256, 455, QUANT_TYPE_F16 },
    { "models/tq-bf16.gguf", "qwen2", 27, 455, 0, 0, "e", QUANT_TYPE_BF16, 256, 455, QUANT_TYPE_BF16 },
    { "models/tq-q8_0.gguf", "qwen2", 27, 455, 0, 0, "e", QUANT_TYPE_Q8_0, 256, 455, QUANT_TYPE_Q8_0 },
    { "models/tq-q4_0.gguf", "qwen2", 27, 455, 0, 0, "e", QUANT_TYPE_Q4_0, 256, 455, QUANT_TYPE_Q6_K },
    { "models/tq-q4_1.gguf", "qwen2", 27, 455, 0, 0, "e", QUANT_TYPE_Q4_1, 256, 455, QUANT_TYPE_Q6_K },
    { "models/tq-q5_0.gguf", "qwen2", 27, 455, 0, 0, "e", QUANT_TYPE_Q5_0, 256, 455, QUANT_TYPE_Q6_K },
    { "models/tq-q5_1.gguf", "qwen2", 27, 455, 0, 0, "e", QUANT_TYPE_Q5_1, 256, 455, QUANT_TYPE_Q6_K },
    { "models/tq-q2_k.gguf", "qwen2", 27, 455, 0, 0, "e", QUANT_TYPE_Q2_K, 256, 455, QUANT_TYPE_Q6_K },
    { "models/tq-q3_k_m.gguf", "qwen2", 27, 455, 0, 0, "e", QUANT_TYPE_Q3_K, 256, 455, QUANT_TYPE_Q6_K },
    { "models/tq-q4_k_m.gguf", "qwen2", 27, 455, 0, 0, "e", QUANT_TYPE_Q4_K, 256, 455, QUANT_TYPE_Q6_K },
    { "models/tq-q5_k_m.gguf", "qwen2", 27, 455, 0, 0, "e", QUANT_TYPE_Q5_K, 256, 455, QUANT_TYPE_Q6_K },
    { "models/tq-q6_k.gguf", "qwen2", 27, 455, 0, 0, "e", QUANT_TYPE_Q6_K, 256, 455, QUANT_TYPE_Q6_K },
    { "models/tl-f32.gguf", "llama", 22, 455, 0, 0, "e", QUANT_TYPE_F32, 256, 455, QUANT_TYPE_F32 },
    { "models/tl-f16.gguf", "llama", 22, 455, 0, 0, "e", QUANT_TYPE_F16, 256, 455, QUANT_TYPE_F16 },
    { "models/tl-q8_0.gguf", "llama", 22, 455, 0, 0, "e", QUANT_TYPE_Q8_0, 256, 455, QUANT_TYPE_Q8_0 },
    { "models/tl-q4_k_m.gguf", "llama", 22, 455, 0, 0, "e", QUANT_TYPE_Q4_K, 256, 455, QUANT_TYPE_Q6_K },
    { "models/td-f32.gguf", "deepseek2", 49, 465, 0, 0, "e", QUANT_TYPE_F32, 256, 465, QUANT_TYPE_F32 },
    { "models/td-q8_0.gguf", "deepseek2", 49, 465, 0, 0, "e", QUANT_TYPE_Q8_0, 256, 465, QUANT_TYPE_Q8_0 },
    { "models/td-lite-f32.gguf", "deepseek2", 377, 465, 0, 0, "e", QUANT_TYPE_F32, 32, 465, QUANT_TYPE_F32 },
};

static void test_every_real_file_opens_with_the_expected_counts(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof real_files / sizeof real_files[0]; k++) {
        const struct real_file *c = &real_files[k];
        struct gguf *g;
        char err[512];
        int rc = gguf_open(fx_path(c->path), &g, err, sizeof err);
        if (rc)
            fail_msg("case %s: %s", c->path, err);
        struct gguf_str arch;
        const struct gguf_value *tokens, *types, *merges;
        if (gguf_get_str(g, "general.architecture", &arch, err, sizeof err) || arch.len != strlen(c->arch) ||
            memcmp(arch.ptr, c->arch, arch.len) != 0)
            fail_msg("case %s: architecture (%s)", c->path, err);
        if (gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, err, sizeof err) ||
            tokens->v.arr.n != c->n_tokens)
            fail_msg("case %s: tokens (%s)", c->path, err);
        if (gguf_get_arr(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &types, err, sizeof err) ||
            types->v.arr.n != c->n_tokens)
            fail_msg("case %s: token types (%s)", c->path, err);
        if (c->n_merges && (gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &merges, err, sizeof err) ||
                            merges->v.arr.n != c->n_merges))
            fail_msg("case %s: merges (%s)", c->path, err);
        uint32_t bos;
        if (c->n_merges && (gguf_get_uint32(g, "tokenizer.ggml.bos_token_id", &bos, err, sizeof err) || bos != c->bos))
            fail_msg("case %s: bos (%s)", c->path, err);
        static const char bos_text[] = "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>";
        const struct gguf_str *bt = &((const struct gguf_str *)tokens->v.arr.data)[c->bos];
        if (c->n_merges && (bt->len != strlen(bos_text) || memcmp(bt->ptr, bos_text, bt->len) != 0))
            fail_msg("case %s: BOS token text '%.*s'", c->path, (int)bt->len, bt->ptr);
        exercise(g);
        if (gguf_n_tensors(g) != c->n_tensors)
            fail_msg("case %s: %lld tensors", c->path, (long long)gguf_n_tensors(g));
        if (c->embd) {
            const struct gguf_tensor *e = gguf_find_tensor(g, "token_embd.weight");
            const struct gguf_tensor *o = gguf_find_tensor(g, "output.weight");
            if (!e || !o || e->type != c->embd_type || e->ne[0] != c->embd_ne0 || e->ne[1] != c->embd_ne1 ||
                e->n_dims != 2 || o->type != c->output_type)
                fail_msg("case %s: token_embd/output", c->path);
            /* One data blob: every tensor's data minus its offset is the same address. */
            const uint8_t *blob = NULL;
            for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
                const struct gguf_tensor *t = gguf_tensor(g, i);
                const uint8_t *d = (const uint8_t *)t->data - t->offset;
                if (blob && d != blob)
                    fail_msg("case %s: tensor '%s' has another data start", c->path, t->name);
                blob = d;
                if (gguf_find_tensor(g, t->name) != t)
                    fail_msg("case %s: tensor '%s' not found by name", c->path, t->name);
            }
        }
        gguf_close(g);
    }
}

/* Reading the file into memory gives the same directory and bytes as mapping it. */
static void test_read_into_memory_equals_the_mapping(void **state)
{
    (void)state;
    char err[256];
    struct gguf *mapped = NULL, *read = NULL;
    const char *path = fx_path("models/tq-q4_k_m.gguf");
    assert_int_equal(gguf_open(path, &mapped, err, sizeof err), 0);
    assert_int_equal(gguf_open_flags(path, GGUF_OPEN_READ, &read, err, sizeof err), 0);
    assert_int_equal(gguf_n_kv(read), gguf_n_kv(mapped));
    assert_int_equal(gguf_n_tensors(read), gguf_n_tensors(mapped));
    for (int64_t i = 0; i < gguf_n_tensors(read); i++) {
        const struct gguf_tensor *a = gguf_tensor(mapped, i), *b = gguf_tensor(read, i);
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->size, b->size);
        assert_true(a->data != b->data);
        assert_memory_equal(a->data, b->data, a->size);
    }
    gguf_close(read);
    gguf_close(mapped);
    assert_int_equal(gguf_open_flags("/nonexistent.gguf", GGUF_OPEN_READ, &read, err, sizeof err),
                     ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_in_memory_gives_every_key_value_and_tensor),
        cmocka_unit_test(test_round_trip_through_a_file_and_the_stream_writer),
        cmocka_unit_test(test_file_without_tensors_or_keys_is_valid),
        cmocka_unit_test(test_alignment_key_sets_the_data_alignment),
        cmocka_unit_test(test_writer_refuses_tensors_it_cannot_size),
        cmocka_unit_test(test_malformed_files_are_rejected_with_a_message_naming_the_culprit),
        cmocka_unit_test(test_every_truncated_prefix_is_ebadmsg),
        cmocka_unit_test(test_mutation_fuzz_never_crashes),
        cmocka_unit_test(test_typed_getters_check_presence_type_and_range),
        cmocka_unit_test(test_tensor_type_table_matches_the_block_layouts),
        cmocka_unit_test(test_open_reports_missing_files_directories_and_empty_files),
        cmocka_unit_test(test_every_real_file_opens_with_the_expected_counts),
        cmocka_unit_test(test_read_into_memory_equals_the_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
