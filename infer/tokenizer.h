/* Byte-level BPE tokenizer read from a GGUF file (tokenizer.ggml.model
 * "gpt2"), with the pre-tokenizers of the R1 families (deepseek-r1-qwen and
 * qwen2, llama-bpe, deepseek-v3), control and user-defined tokens, and a
 * streaming detokenizer that never emits half a UTF-8 character.
 *
 * Encoding follows llama.cpp's llama_tokenize(): added tokens (CONTROL only
 * when parse_special, USER_DEFINED always) cut the text first, then each
 * remaining fragment is pre-tokenized and merged by rank.  The tokenizer
 * copies what it needs from the GGUF; it does not keep the handle. */
#ifndef PONDER_TOKENIZER_H
#define PONDER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gguf;
struct tokenizer;

/* tokenizer.ggml.token_type values */
enum token_attr {
    TOKEN_ATTR_UNDEFINED = 0,
    TOKEN_ATTR_NORMAL = 1,
    TOKEN_ATTR_UNKNOWN = 2,
    TOKEN_ATTR_CONTROL = 3,
    TOKEN_ATTR_USER_DEFINED = 4,
    TOKEN_ATTR_UNUSED = 5,
    TOKEN_ATTR_BYTE = 6
};

/* A growable list of token ids. */
struct tokens {
    int32_t *ids;
    size_t n, cap;
};
int tokens_push(struct tokens *t, int32_t id);     /* 0 or ENOMEM */
void tokens_free(struct tokens *t);                /* leaves it empty and reusable */

/* 0, or EBADMSG (token arrays of unequal length, special id out of range,
 * malformed merge or <0xNN> byte token, ...), ENOTSUP (tokenizer model or
 * pre-tokenizer ponder does not know), ENOMEM. */
int tokenizer_load(const struct gguf *g, struct tokenizer **out, char *err, size_t errlen);
void tokenizer_free(struct tokenizer *t);   /* NULL is a no-op */

int32_t tokenizer_n_vocab(const struct tokenizer *t);
int32_t tokenizer_bos(const struct tokenizer *t);      /* -1 when none */
int32_t tokenizer_eos(const struct tokenizer *t);
bool tokenizer_add_bos(const struct tokenizer *t);     /* tokenizer.ggml.add_bos_token */
bool tokenizer_is_eog(const struct tokenizer *t, int32_t id);  /* end of generation */
enum token_attr tokenizer_attr(const struct tokenizer *t, int32_t id);
const char *tokenizer_pre_name(const struct tokenizer *t);
/* The id whose text is exactly s (stored text, e.g. "<think>"), or -1. */
int32_t tokenizer_find(const struct tokenizer *t, const char *s, size_t len);

/* Appends the ids of text to out.  add_bos puts BOS first (when the vocabulary
 * has one).  0 or ENOMEM. */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, bool add_bos,
                     bool parse_special, struct tokens *out, char *err, size_t errlen);
/* The plain rule (chat message text): no added token is matched at all, not
 * even USER_DEFINED ones such as <think>; no BOS.  0 or ENOMEM. */
int tokenizer_encode_plain(const struct tokenizer *t, const char *text, size_t len,
                           struct tokens *out, char *err, size_t errlen);

/* The bytes token id stands for (byte-level code points decoded to bytes).
 * CONTROL (and UNKNOWN) tokens give their text only when `special`,
 * otherwise nothing; USER_DEFINED tokens always give their text; <0xNN>
 * BYTE tokens that byte; UNUSED and UNDEFINED tokens nothing.  Returns the number of bytes
 * (which may exceed cap: then only cap were written), or -1 for a bad id. */
int tokenizer_piece(const struct tokenizer *t, int32_t id, bool special, char *buf, size_t cap);

/* Streaming detokenizer: feed pieces, get text cut at UTF-8 character
 * boundaries.  An invalid sequence (each maximal ill-formed subpart) comes
 * out as U+FFFD. */
struct detok {
    char pending[8];
    int n_pending;
};
/* Room detok_push() needs for a piece of len bytes: every byte may be
 * invalid and become the 3 bytes of U+FFFD, after a pending one. */
#define DETOK_OUT_MAX(len) (3 * (size_t)(len) + 8)
void detok_init(struct detok *d);
/* Appends the completed characters of piece (after what was pending) to out,
 * which must have room for DETOK_OUT_MAX(len) bytes; returns the bytes
 * written. */
size_t detok_push(struct detok *d, const char *piece, size_t len, char *out);
/* What is left at the end (an incomplete sequence becomes U+FFFD); out has
 * room for 8 bytes. */
size_t detok_flush(struct detok *d, char *out);

#endif
