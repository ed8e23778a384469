/* GGUF reader: maps a model file, validates every count, length, type,
 * dimension, alignment and offset against the bytes that remain, and gives
 * typed access to the metadata and the tensor directory.
 *
 * Layout (little-endian): magic "GGUF", u32 version (2 or 3), u64 n_tensors,
 * u64 n_kv; n_kv pairs of (string key, u32 type, value); n_tensors infos of
 * (string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset); padding to
 * general.alignment (default 32); the tensor data blob.  A string is a u64
 * length then that many bytes (no NUL); an array is u32 element type, u64
 * count, then the elements.
 *
 * Tensors: n_dims 1..4, every dimension >= 1 (0 is rejected), rows a whole
 * number of blocks, offsets aligned, data inside the file, no two tensors
 * overlapping; a tensor type id ggml has removed (Q4_0_4_4, ...) is ENOTSUP,
 * an unknown id EBADMSG.  Duplicate keys or tensor names and arrays of
 * arrays are EBADMSG.
 *
 * Everything returned points into the mapping and lives until gguf_close().
 * Functions that can fail return 0 or a POSIX error number (EBADMSG for a
 * malformed file, ENOENT missing, ENOTSUP unsupported, ENOMEM, EIO) and write
 * one line naming the file, key or tensor into err. */
#ifndef PONDER_GGUF_H
#define PONDER_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quant.h"

enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
};

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

/* A string inside the file: not NUL-terminated. */
struct gguf_str {
    const char *ptr;
    uint64_t len;
};

/* One metadata value. Scalars are decoded; arrays are views. */
struct gguf_value {
    enum gguf_type type;
    union {
        uint64_t u;         /* UINT8..UINT64, BOOL (0 or 1) */
        int64_t i;          /* INT8..INT64 */
        double f;           /* FLOAT32, FLOAT64 */
        struct gguf_str s;  /* STRING */
        struct {
            enum gguf_type type;    /* element type, never ARRAY */
            uint64_t n;
            const void *data;       /* numeric: raw little-endian elements, maybe unaligned;
                                       STRING: const struct gguf_str[n] */
        } arr;
    } v;
};

struct gguf_tensor {
    const char *name;           /* NUL-terminated */
    int n_dims;                 /* 1..4 */
    int64_t ne[GGUF_MAX_DIMS];  /* ne[0] contiguous; unused dims are 1; every ne >= 1
                                   (a 0 dimension is rejected as EBADMSG) */
    enum quant_type type;
    uint64_t offset;            /* from the start of the data blob */
    const void *data;           /* in the mapping, aligned */
    size_t size;                /* bytes */
    int64_t n_elements;
};

struct gguf;

int gguf_open(const char *path, struct gguf **out, char *err, size_t errlen);
/* GGUF_OPEN_READ: read the file into anonymous memory (huge pages where the
 * kernel gives them) instead of mapping it; faster to stream, but the whole
 * file is resident.  Flags 0: gguf_open(). */
#define GGUF_OPEN_READ 1u
int gguf_open_flags(const char *path, unsigned flags, struct gguf **out, char *err, size_t errlen);
/* gguf_open_flags, calling progress(ctx, bytes read, file size) as a
 * GGUF_OPEN_READ read goes (every 64 MiB and at the end); progress may be NULL. */
typedef void (*gguf_progress_fn)(void *ctx, uint64_t done, uint64_t total);
int gguf_open_progress(const char *path, unsigned flags, gguf_progress_fn progress, void *ctx,
                       struct gguf **out, char *err, size_t errlen);
/* The same over a caller's buffer, which must outlive the handle (tests, fuzzing). */
int gguf_open_memory(const void *buf, size_t size, const char *name, struct gguf **out,
                     char *err, size_t errlen);
void gguf_close(struct gguf *g);    /* NULL is a no-op */

const char *gguf_path(const struct gguf *g);
uint32_t gguf_version(const struct gguf *g);
size_t gguf_file_size(const struct gguf *g);
size_t gguf_alignment(const struct gguf *g);

int64_t gguf_n_kv(const struct gguf *g);
const char *gguf_kv_key(const struct gguf *g, int64_t i);          /* NUL-terminated */
const struct gguf_value *gguf_kv_value(const struct gguf *g, int64_t i);
/* NULL when absent. */
const struct gguf_value *gguf_find(const struct gguf *g, const char *key);

/* Typed getters for keys whose type matters to the caller. ENOENT when the key
 * is absent (err still written, so a required key can pass it up), EBADMSG
 * when present with the wrong type or a value out of range. get_int accepts
 * every integer type; get_float FLOAT32/FLOAT64; get_uint32 checks the range. */
int gguf_get_int(const struct gguf *g, const char *key, int64_t *out, char *err, size_t errlen);
int gguf_get_uint32(const struct gguf *g, const char *key, uint32_t *out, char *err, size_t errlen);
int gguf_get_float(const struct gguf *g, const char *key, double *out, char *err, size_t errlen);
int gguf_get_bool(const struct gguf *g, const char *key, bool *out, char *err, size_t errlen);
int gguf_get_str(const struct gguf *g, const char *key, struct gguf_str *out, char *err, size_t errlen);
/* An array of element type `type` (GGUF_TYPE_COUNT accepts any). */
int gguf_get_arr(const struct gguf *g, const char *key, enum gguf_type type,
                 const struct gguf_value **out, char *err, size_t errlen);

int64_t gguf_n_tensors(const struct gguf *g);
const struct gguf_tensor *gguf_tensor(const struct gguf *g, int64_t i);
const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name);

/* Read element i of a numeric array as int64 / double (caller checked the type). */
int64_t gguf_arr_int(const struct gguf_value *a, uint64_t i);
double gguf_arr_float(const struct gguf_value *a, uint64_t i);

const char *gguf_type_name(enum gguf_type t);

/* Values per block and bytes per block of a GGUF tensor type id, for every
 * type ggml defines (IQ*, TQ*, I8..F64, MXFP4 too), whether or not ponder
 * computes with it; false for unknown ids and ids ggml removed. */
bool gguf_tensor_type_size(uint32_t type, int64_t *block_size, size_t *block_bytes);
const char *gguf_tensor_type_name(uint32_t type);   /* "Q4_K"; "?" when unknown */

#endif
