/* Model fixtures shared by the forward-pass tests (test_model, test_deepseek2):
 * a test model checked against llama.cpp's reference, and a GGUF key copied
 * into a writer (to build a test model with one change).  No cmocka here (the
 * tools link the fixtures too): failures come back as a code and one line. */
#ifndef PONDER_FX_MODEL_H
#define PONDER_FX_MODEL_H

#include <stddef.h>

#include "infer/gguf.h"
#include "infer/model.h"
#include "tests/fx_gguf.h"

/* Loads models/<name>.gguf of the test data with p, runs every reference
 * prompt (fx_check_reference) and prints one line with the worst difference.
 * 0 when it loads and all hold; else non-zero with one line in msg. */
int fx_model_check(const char *name, const struct model_params *p, char *msg, size_t cap);

/* Writes key with the value v (any scalar, string or array type) into w.
 * 0, the writer's error, or EINVAL for a type it does not copy. */
int fx_model_copy_kv(struct fx_gguf *w, const char *key, const struct gguf_value *v);

/* Writes w into a new file named from the mkstemp() template path (whose
 * XXXXXX it fills in), then frees w.  0 or an errno; the caller unlinks. */
int fx_model_write_temp(struct fx_gguf *w, char *path);

#endif
