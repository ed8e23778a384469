/* A small GGUF writer for tests and tools: builds valid files (to be broken
 * on purpose by the malformed-file tests) and streams large generated models
 * to disk without holding their data in memory.
 *
 *   struct fx_gguf *w = fx_gguf_new(3);
 *   fx_gguf_kv_str(w, "general.architecture", "qwen2");
 *   fx_gguf_tensor(w, "token_embd.weight", QUANT_TYPE_F32, 2, ne, data);   // data may be NULL
 *   fx_gguf_write_file(w, path)             // whole file; NULL data -> zero bytes
 *   -- or, streaming: fx_gguf_write_header(w, f), then for each tensor in order
 *      fwrite its fx_gguf_tensor_size() bytes and fx_gguf_write_pad(w, f).
 *
 * Keys and tensors are written in the order they were added (a key added twice
 * is written twice; fx_gguf_set_alignment replaces its own key).  Every function
 * that can fail returns 0 or an errno. */
#ifndef PONDER_FX_GGUF_H
#define PONDER_FX_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "infer/gguf.h"

struct fx_gguf;

struct fx_gguf *fx_gguf_new(uint32_t version);
void fx_gguf_free(struct fx_gguf *w);
void fx_gguf_set_alignment(struct fx_gguf *w, uint32_t alignment);  /* also writes general.alignment */

int fx_gguf_kv_u8(struct fx_gguf *w, const char *key, uint8_t v);
int fx_gguf_kv_u32(struct fx_gguf *w, const char *key, uint32_t v);
int fx_gguf_kv_i32(struct fx_gguf *w, const char *key, int32_t v);
int fx_gguf_kv_u64(struct fx_gguf *w, const char *key, uint64_t v);
int fx_gguf_kv_f32(struct fx_gguf *w, const char *key, float v);
int fx_gguf_kv_bool(struct fx_gguf *w, const char *key, bool v);
int fx_gguf_kv_str(struct fx_gguf *w, const char *key, const char *v);
int fx_gguf_kv_arr_str(struct fx_gguf *w, const char *key, const char *const *v, size_t n);
int fx_gguf_kv_arr_i32(struct fx_gguf *w, const char *key, const int32_t *v, size_t n);
int fx_gguf_kv_arr_f32(struct fx_gguf *w, const char *key, const float *v, size_t n);
/* Any element type, raw little-endian element bytes (not for strings). */
int fx_gguf_kv_arr_raw(struct fx_gguf *w, const char *key, enum gguf_type type,
                       const void *elems, size_t n);

/* Adds a tensor; its bytes are quant_row_bytes(type, ne[0]) * ne[1] * ne[2] * ne[3].
 * data (that many bytes) is copied when not NULL. */
int fx_gguf_tensor(struct fx_gguf *w, const char *name, enum quant_type type, int n_dims,
                   const int64_t *ne, const void *data);
size_t fx_gguf_tensor_size(const struct fx_gguf *w, int64_t i);

/* For the malformed-file tests.  A kv with any type id followed by the value
 * bytes exactly as given (e.g. a forged array: element type, count, elements);
 * a tensor info written exactly as given (n_dims, the first min(n_dims, 8)
 * entries of ne, type, offset) that adds no data to the file. */
int fx_gguf_kv_raw(struct fx_gguf *w, const char *key, uint32_t type, const void *value, size_t len);
int fx_gguf_tensor_raw(struct fx_gguf *w, const char *name, uint32_t type, uint32_t n_dims,
                       const uint64_t *ne, uint64_t offset);
/* Byte offsets of the header fields, to patch a valid file. */
#define FX_GGUF_OFF_VERSION 4
#define FX_GGUF_OFF_N_TENSORS 8
#define FX_GGUF_OFF_N_KV 16
#define FX_GGUF_OFF_FIRST_KV 24

/* The whole file in memory (malloc'd, caller frees) / on disk. */
int fx_gguf_bytes(const struct fx_gguf *w, uint8_t **out, size_t *len);
int fx_gguf_write_file(const struct fx_gguf *w, const char *path);
/* Streaming: header, tensor infos and padding; then the caller writes each
 * tensor's bytes in order, each followed by fx_gguf_write_pad(). */
int fx_gguf_write_header(const struct fx_gguf *w, FILE *f);
/* Pads to the alignment; bytes_written_so_far may be the file's length or
 * just the tensor's size (the data blob and every tensor start aligned). */
int fx_gguf_write_pad(const struct fx_gguf *w, FILE *f, size_t bytes_written_so_far);

#endif
