/* Byte-level BPE tokenizer: the vocabulary from GGUF metadata, added tokens
 * cut first, then hand-written matchers for the pre-tokenizer regexes of the
 * R1 families and merges by rank, as llama.cpp's llama_tokenize() does; token
 * pieces and a streaming detokenizer that never emits half a character. */
#include "infer/err.h"
#include "infer/tokenizer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/ckd.h"
#include "infer/gguf.h"
#include "infer/unicode.h"

enum pre_kind {
    PRE_LLAMA3,     /* llama-bpe: \p{N}{1,3}, whole-piece lookup (ignore_merges) */
    PRE_QWEN2,      /* deepseek-r1-qwen, qwen2: the same regex with \p{N} */
    PRE_DEEPSEEK3   /* deepseek-v3: digits, CJK runs, then its main regex */
};

static const struct {
    const char *name;
    enum pre_kind kind;
} pre_names[] = {
    { "llama-bpe", PRE_LLAMA3 },
    { "llama3", PRE_LLAMA3 },
    { "llama-v3", PRE_LLAMA3 },
    { "falcon3", PRE_LLAMA3 },
    { "deepseek-r1-qwen", PRE_QWEN2 },
    { "qwen2", PRE_QWEN2 },
    { "megrez", PRE_QWEN2 },
    { "deepseek-v3", PRE_DEEPSEEK3 },
};

/* Token texts llama.cpp recognises as end-of-generation (or as EOT / FIM
 * pad, repo and separator tokens, which it also adds to the EOG set), and the
 * other FIM tokens, all of which it forces to CONTROL. */
static const struct {
    const char *text;
    bool eog;
} special_texts[] = {
    { "<|eot_id|>", true }, { "<|im_end|>", true }, { "<|end|>", true },
    { "<|return|>", true }, { "<|call|>", true }, { "<end_of_turn>", true },
    { "<|endoftext|>", true }, { "<|eom_id|>", true }, { "<EOT>", true },
    { "_<EOT>", true }, { "<|end_of_text|>", true }, { "<end_of_utterance>", true },
    { "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", true },
    { "<|fim_pad|>", true }, { "<fim-pad>", true }, { "<fim_pad>", true }, { "<PAD>", true },
    { "<|fim_repo|>", true }, { "<|repo_name|>", true }, { "<fim-repo>", true },
    { "<REPO>", true }, { "<reponame>", true },
    { "<|file_sep|>", true },
    { "<|fim_prefix|>", false }, { "<fim-prefix>", false }, { "<fim_prefix>", false },
    { "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", false }, { "<PRE>", false },
    { "<|fim_suffix|>", false }, { "<fim-suffix>", false }, { "<fim_suffix>", false },
    { "<\xef\xbd\x9c" "fim\xe2\x96\x81" "hole\xef\xbd\x9c>", false }, { "<SUF>", false },
    { "<|fim_middle|>", false }, { "<fim-middle>", false }, { "<fim_middle>", false },
    { "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", false }, { "<MID>", false },
};

/* Open-addressing map from a token's text to its id (-1: empty slot), with
 * the upper half of the text's hash beside it so that most probes that miss
 * never touch the text. */
struct strmap_slot {
    int32_t id;
    uint32_t tag;
};

struct strmap {
    struct strmap_slot *slot;
    size_t mask;
};

/* Map from a pair of token ids to the merge's rank and the id of the merged
 * text (-1 when that text is not a token: llama.cpp still merges it). */
struct merge {
    uint64_t key;   /* left << 32 | right; UINT64_MAX empty */
    int32_t rank, result;
};

struct mergemap {
    struct merge *slot;
    size_t mask;
};

/* How many table lookups ahead loading fetches (the tables outgrow the caches). */
#define PREFETCH_AHEAD 8

/* One merge on its way through load_merges(). */
struct merge_job {
    const char *s;          /* "left right" in the GGUF */
    size_t nl, nr;
    uint64_t hl, hr, hc;    /* hashes of left, right, and left + right */
    uint64_t key;
};

/* Added-token lengths, longest first, each with the set of first bytes of
 * the added tokens of that length (to skip hash lookups that cannot hit). */
struct speclen {
    size_t len;
    uint8_t first[32];
};

struct tokenizer {
    int32_t n_vocab;
    char *text;             /* stored token texts, back to back */
    uint32_t *text_off;     /* [n_vocab + 1] */
    uint8_t *attr;          /* enum token_attr */
    uint8_t *eog;           /* one bit per id */
    size_t max_text_len;
    struct strmap tokens;   /* every token; a later duplicate text wins, as in llama.cpp */
    struct strmap specials; /* CONTROL, USER_DEFINED, UNKNOWN; the first of duplicates wins */
    struct mergemap merges;
    struct speclen *spec_len;
    size_t n_spec_len;
    uint8_t spec_first[32]; /* first bytes of every added token */
    int32_t byte_tok[256];  /* the token of each byte's byte-level character, or -1 */
    char byte_char[256][2]; /* each byte's byte-level character in UTF-8 */
    uint8_t byte_char_len[256];
    int32_t bos, eos, eot, eom, pad;
    bool add_bos, ignore_merges;
    enum pre_kind pre;
    const char *pre_name;
};


/* ---- token lists ---------------------------------------------------------- */

int tokens_push(struct tokens *t, int32_t id)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap : 16, bytes;
        if (t->cap && ckd_mul_size(&cap, t->cap, 2))
            return ENOMEM;
        if (ckd_mul_size(&bytes, cap, sizeof *t->ids))
            return ENOMEM;
        int32_t *ids = realloc(t->ids, bytes);
        if (!ids)
            return ENOMEM;
        t->ids = ids;
        t->cap = cap;
    }
    t->ids[t->n++] = id;
    return 0;
}

void tokens_free(struct tokens *t)
{
    free(t->ids);
    t->ids = NULL;
    t->n = t->cap = 0;
}

/* ---- hashing ------------------------------------------------------------ */

#define HASH_SEED 0xcbf29ce484222325ull

/* FNV-1a, continuable: hash_more(b, m, hash_more(a, n, HASH_SEED)) hashes
 * a then b; hash_done() mixes the high bits into the low ones (the slot). */
static uint64_t hash_more(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t hash_done(uint64_t h)
{
    return h ^ (h >> 29);
}

static uint64_t hash_bytes(const void *p, size_t n)
{
    return hash_done(hash_more(p, n, HASH_SEED));
}

static const char *tok_text(const struct tokenizer *t, int32_t id, size_t *len)
{
    *len = t->text_off[id + 1] - t->text_off[id];
    return t->text + t->text_off[id];
}

static int map_init(struct strmap *m, size_t n)
{
    size_t cap = 16, bytes;
    while (cap < n + n / 2) {   /* load factor at most 2/3 */
        if (ckd_mul_size(&cap, cap, 2))
            return ENOMEM;
    }
    if (ckd_mul_size(&bytes, cap, sizeof *m->slot))
        return ENOMEM;
    m->slot = malloc(bytes);
    if (!m->slot)
        return ENOMEM;
    memset(m->slot, 0xff, bytes);   /* id -1 */
    m->mask = cap - 1;
    return 0;
}

/* The slot holding the text a then b (hash h), or the empty slot where it
 * would go. */
static size_t map_probe(const struct tokenizer *t, const struct strmap *m, const char *a, size_t na,
                        const char *b, size_t nb, uint64_t h)
{
    size_t i = (size_t)h & m->mask;
    uint32_t tag = (uint32_t)(h >> 32);
    for (;;) {
        const struct strmap_slot *sl = &m->slot[i];
        if (sl->id < 0)
            return i;
        if (sl->tag == tag) {
            size_t n;
            const char *x = tok_text(t, sl->id, &n);
            if (n == na + nb && memcmp(x, a, na) == 0 && (!nb || memcmp(x + na, b, nb) == 0))
                return i;
        }
        i = (i + 1) & m->mask;
    }
}

static int32_t map_find(const struct tokenizer *t, const struct strmap *m, const char *s, size_t len)
{
    return m->slot[map_probe(t, m, s, len, NULL, 0, hash_bytes(s, len))].id;
}

static void map_put_hashed(const struct tokenizer *t, struct strmap *m, int32_t id, bool replace, uint64_t h)
{
    size_t len;
    const char *s = tok_text(t, id, &len);
    struct strmap_slot *sl = &m->slot[map_probe(t, m, s, len, NULL, 0, h)];
    if (sl->id < 0 || replace)
        *sl = (struct strmap_slot){ id, (uint32_t)(h >> 32) };
}

static void map_put(const struct tokenizer *t, struct strmap *m, int32_t id, bool replace)
{
    size_t len;
    const char *s = tok_text(t, id, &len);
    map_put_hashed(t, m, id, replace, hash_bytes(s, len));
}

static size_t merge_slot_start(const struct mergemap *m, uint64_t key)
{
    uint64_t h = (key ^ (key >> 31)) * 0x9e3779b97f4a7c15ull;     /* both ids reach the low bits */
    return (size_t)(h ^ (h >> 32)) & m->mask;
}

static size_t merge_slot(const struct mergemap *m, uint64_t key)
{
    size_t i = merge_slot_start(m, key);
    while (m->slot[i].key != UINT64_MAX && m->slot[i].key != key)
        i = (i + 1) & m->mask;
    return i;
}

/* ---- byte-level alphabet ---------------------------------------------------- */

/* GPT-2's bytes_to_unicode(): printable bytes stand for themselves, the 68
 * others become U+0100.. in byte order. */
static uint32_t byte_to_cp(unsigned b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)
        return b;
    if (b <= 0x20)
        return 0x100 + b;
    if (b <= 0xA0)
        return 0x100 + 33 + (b - 0x7F);
    return 0x100 + 33 + 34;     /* 0xAD */
}

/* The inverse: the byte code point cp stands for, or -1. */
static int cp_to_byte(uint32_t cp)
{
    if (cp < 0x100)
        return byte_to_cp(cp) == cp ? (int)cp : -1;
    if (cp <= 0x120)
        return (int)(cp - 0x100);
    if (cp <= 0x120 + 34)
        return (int)(0x7F + cp - 0x121);
    return cp == 0x143 ? 0xAD : -1;
}

/* ---- loading ------------------------------------------------------------ */

void tokenizer_free(struct tokenizer *t)
{
    if (!t)
        return;
    free(t->text);
    free(t->text_off);
    free(t->attr);
    free(t->eog);
    free(t->tokens.slot);
    free(t->specials.slot);
    free(t->merges.slot);
    free(t->spec_len);
    free(t);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies the token texts and types and builds the text -> id map. */
static int load_tokens(struct tokenizer *t, const struct gguf *g, char *err, size_t errlen)
{
    const char *path = gguf_path(g);
    const struct gguf_value *tv, *yv = NULL;
    int rc = gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tv, err, errlen);
    if (rc)
        return rc == ENOENT ? EBADMSG : rc;
    uint64_t n = tv->v.arr.n;
    if (n == 0 || n >= INT32_MAX)
        return err_set(err, errlen, EBADMSG, "%s: tokenizer.ggml.tokens has %llu entries", path,
                    (unsigned long long)n);
    rc = gguf_get_arr(g, "tokenizer.ggml.token_type", GGUF_TYPE_COUNT, &yv, err, errlen);
    if (rc == ENOENT)
        yv = NULL;      /* llama.cpp: every token NORMAL */
    else if (rc)
        return rc;
    else if (yv->v.arr.n != n)
        return err_set(err, errlen, EBADMSG,
                    "%s: tokenizer.ggml.tokens has %llu entries but tokenizer.ggml.token_type has %llu",
                    path, (unsigned long long)n, (unsigned long long)yv->v.arr.n);
    else if (yv->v.arr.type == GGUF_TYPE_STRING || yv->v.arr.type == GGUF_TYPE_FLOAT32 ||
             yv->v.arr.type == GGUF_TYPE_FLOAT64 || yv->v.arr.type == GGUF_TYPE_BOOL)
        return err_set(err, errlen, EBADMSG, "%s: tokenizer.ggml.token_type is an array of %s, not integers",
                    path, gguf_type_name(yv->v.arr.type));

    t->n_vocab = (int32_t)n;
    const struct gguf_str *strs = tv->v.arr.data;
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (strs[i].len > SIZE_MAX || ckd_add_size(&total, total, (size_t)strs[i].len))
            return err_set(err, errlen, EBADMSG, "%s: token texts too large", path);
        if (strs[i].len > t->max_text_len)
            t->max_text_len = (size_t)strs[i].len;
    }
    if (t->max_text_len > INT32_MAX)
        return err_set(err, errlen, EBADMSG, "%s: a token text of %zu bytes", path, t->max_text_len);
    if (total > UINT32_MAX)
        return err_set(err, errlen, EBADMSG, "%s: token texts take %zu bytes", path, total);
    t->text = malloc(total ? total : 1);
    t->text_off = malloc((n + 1) * sizeof *t->text_off);
    t->attr = malloc(n);
    t->eog = calloc(n / 8 + 1, 1);
    if (!t->text || !t->text_off || !t->attr || !t->eog)
        return err_set(err, errlen, ENOMEM, "%s: out of memory for %llu tokens", path, (unsigned long long)n);

    size_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        t->text_off[i] = (uint32_t)off;
        memcpy(t->text + off, strs[i].ptr, (size_t)strs[i].len);
        off += (size_t)strs[i].len;
        int64_t ty = yv ? gguf_arr_int(yv, i) : TOKEN_ATTR_NORMAL;
        if (ty < TOKEN_ATTR_UNDEFINED || ty > TOKEN_ATTR_BYTE)
            return err_set(err, errlen, EBADMSG, "%s: token %llu has type %lld (not 0..6)", path,
                        (unsigned long long)i, (long long)ty);
        t->attr[i] = (uint8_t)ty;
    }
    t->text_off[n] = (uint32_t)off;

    /* Insert while the slots of the tokens a few ahead are being fetched:
     * the table is far bigger than the caches. */
    rc = map_init(&t->tokens, (size_t)n);
    if (rc)
        return err_set(err, errlen, ENOMEM, "%s: out of memory for the token map", path);
    uint64_t h[PREFETCH_AHEAD];
    for (int32_t i = 0; i < t->n_vocab + PREFETCH_AHEAD; i++) {
        if (i >= PREFETCH_AHEAD)
            map_put_hashed(t, &t->tokens, i - PREFETCH_AHEAD, true, h[i % PREFETCH_AHEAD]);
        if (i < t->n_vocab) {
            h[i % PREFETCH_AHEAD] = hash_bytes(t->text + t->text_off[i], t->text_off[i + 1] - t->text_off[i]);
            __builtin_prefetch(&t->tokens.slot[h[i % PREFETCH_AHEAD] & t->tokens.mask]);
        }
    }
    return 0;
}

/* <0xNN> byte tokens must say which byte they stand for. */
static int check_byte_tokens(const struct tokenizer *t, const struct gguf *g, char *err, size_t errlen)
{
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (t->attr[id] != TOKEN_ATTR_BYTE)
            continue;
        size_t len;
        const char *s = tok_text(t, id, &len);
        if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>' || hexval(s[3]) < 0 || hexval(s[4]) < 0)
            return err_set(err, errlen, EBADMSG, "%s: malformed byte token %d '%.*s' (want <0xNN>)", gguf_path(g),
                        id, (int)(len > 32 ? 32 : len), s);
    }
    return 0;
}

static int load_merges(struct tokenizer *t, const struct gguf *g, char *err, size_t errlen)
{
    const char *path = gguf_path(g);
    const struct gguf_value *mv;
    int rc = gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &mv, err, errlen);
    if (rc)
        return rc == ENOENT ? EBADMSG : rc;
    uint64_t n = mv->v.arr.n;
    if (n >= INT32_MAX)
        return err_set(err, errlen, EBADMSG, "%s: %llu merges", path, (unsigned long long)n);
    size_t cap = 16, bytes;
    while (cap < (size_t)n + (size_t)n / 2)
        cap *= 2;
    struct mergemap *m = &t->merges;
    m->slot = ckd_mul_size(&bytes, cap, sizeof *m->slot) ? NULL : malloc(bytes);
    if (!m->slot)
        return err_set(err, errlen, ENOMEM, "%s: out of memory for %llu merges", path, (unsigned long long)n);
    memset(m->slot, 0xff, bytes);   /* key UINT64_MAX: empty */
    m->mask = cap - 1;
    /* GPT-2 style vocabularies list merge results in merge order: try the
     * token after the last result before looking the merged text up. */
    int32_t guess = 0;
    const struct gguf_str *strs = mv->v.arr.data;
    struct merge_job ring[2 * PREFETCH_AHEAD];

    /* Three stages PREFETCH_AHEAD merges apart, each fetching what the next
     * needs: split and hash (fetch the token slots), find the ids (fetch the
     * merge slot), insert. */
    for (uint64_t i = 0; i < n + 2 * PREFETCH_AHEAD; i++) {
        if (i >= 2 * PREFETCH_AHEAD) {
            uint64_t k = i - 2 * PREFETCH_AHEAD;
            const struct merge_job *jb = &ring[k % (2 * PREFETCH_AHEAD)];
            size_t slot = merge_slot(m, jb->key);
            if (m->slot[slot].key == jb->key)
                continue;   /* a repeated pair keeps its first rank */
            size_t lg = 0;
            const char *gs = guess < t->n_vocab ? tok_text(t, guess, &lg) : NULL;
            int32_t result;
            if (gs && lg == jb->nl + jb->nr && memcmp(gs, jb->s, jb->nl) == 0 &&
                memcmp(gs + jb->nl, jb->s + jb->nl + 1, jb->nr) == 0)
                result = guess;
            else
                result = t->tokens.slot[map_probe(t, &t->tokens, jb->s, jb->nl, jb->s + jb->nl + 1, jb->nr,
                                                  jb->hc)].id;
            if (result >= 0)
                guess = result + 1;
            m->slot[slot] = (struct merge){ jb->key, (int32_t)k, result };
        }
        if (i >= PREFETCH_AHEAD && i - PREFETCH_AHEAD < n) {
            uint64_t k = i - PREFETCH_AHEAD;
            struct merge_job *jb = &ring[k % (2 * PREFETCH_AHEAD)];
            const char *rs = jb->s + jb->nl + 1;
            int32_t l = t->tokens.slot[map_probe(t, &t->tokens, jb->s, jb->nl, NULL, 0, jb->hl)].id;
            int32_t r = t->tokens.slot[map_probe(t, &t->tokens, rs, jb->nr, NULL, 0, jb->hr)].id;
            if (l < 0 || r < 0) {
                size_t nbad = l < 0 ? jb->nl : jb->nr;
                return err_set(err, errlen, EBADMSG, "%s: merge %llu '%.*s': '%.*s' is not a token", path,
                            (unsigned long long)k, (int)(jb->nl + 1 + jb->nr > 64 ? 64 : jb->nl + 1 + jb->nr),
                            jb->s, (int)(nbad > 64 ? 64 : nbad), l < 0 ? jb->s : rs);
            }
            jb->key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
            __builtin_prefetch(&m->slot[merge_slot_start(m, jb->key)]);
        }
        if (i < n) {
            struct merge_job *jb = &ring[i % (2 * PREFETCH_AHEAD)];
            const char *s = strs[i].ptr;
            size_t len = (size_t)strs[i].len;
            const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
            if (!sp)
                return err_set(err, errlen, EBADMSG, "%s: merge %llu '%.*s' is not 'left right'", path,
                            (unsigned long long)i, (int)(len > 64 ? 64 : len), s);
            jb->s = s;
            jb->nl = (size_t)(sp - s);
            jb->nr = len - jb->nl - 1;
            uint64_t hl = hash_more(s, jb->nl, HASH_SEED);
            jb->hl = hash_done(hl);
            jb->hr = hash_bytes(sp + 1, jb->nr);
            jb->hc = hash_done(hash_more(sp + 1, jb->nr, hl));
            __builtin_prefetch(&t->tokens.slot[jb->hl & t->tokens.mask]);
            __builtin_prefetch(&t->tokens.slot[jb->hr & t->tokens.mask]);
        }
    }
    return 0;
}

static int get_special_id(const struct tokenizer *t, const struct gguf *g, const char *key, int32_t *id,
                          char *err, size_t errlen)
{
    int64_t v;
    int rc = gguf_get_int(g, key, &v, err, errlen);
    if (rc == ENOENT)
        return 0;
    if (rc)
        return rc;
    if (v < 0 || v >= t->n_vocab)
        return err_set(err, errlen, EBADMSG, "%s: %s: special token id %lld out of range (n_vocab %d)",
                    gguf_path(g), key, (long long)v, t->n_vocab);
    *id = (int32_t)v;
    return 0;
}

static int cmp_len_desc(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int build_specials(struct tokenizer *t, char *err, size_t errlen)
{
    size_t n_spec = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        uint8_t a = t->attr[id];
        if ((a == TOKEN_ATTR_CONTROL || a == TOKEN_ATTR_USER_DEFINED || a == TOKEN_ATTR_UNKNOWN) &&
            t->text_off[id + 1] > t->text_off[id])
            n_spec++;
    }
    int rc = map_init(&t->specials, n_spec);
    if (rc)
        return err_set(err, errlen, rc, "out of memory for added tokens");
    size_t *lens = malloc((n_spec ? n_spec : 1) * sizeof *lens), n_lens = 0;
    if (!lens)
        return err_set(err, errlen, ENOMEM, "out of memory for added tokens");
    for (int32_t id = 0; id < t->n_vocab; id++) {
        uint8_t a = t->attr[id];
        size_t len;
        const char *s = tok_text(t, id, &len);
        if ((a != TOKEN_ATTR_CONTROL && a != TOKEN_ATTR_USER_DEFINED && a != TOKEN_ATTR_UNKNOWN) || !len)
            continue;
        map_put(t, &t->specials, id, false);
        lens[n_lens++] = len;
        t->spec_first[(unsigned char)s[0] >> 3] |= (uint8_t)(1u << ((unsigned char)s[0] & 7));
    }
    qsort(lens, n_lens, sizeof *lens, cmp_len_desc);
    size_t n_distinct = 0;
    for (size_t i = 0; i < n_lens; i++)
        if (i == 0 || lens[i] != lens[i - 1])
            lens[n_distinct++] = lens[i];
    t->spec_len = calloc(n_distinct ? n_distinct : 1, sizeof *t->spec_len);
    if (!t->spec_len) {
        free(lens);
        return err_set(err, errlen, ENOMEM, "out of memory for added tokens");
    }
    for (size_t i = 0; i < n_distinct; i++)
        t->spec_len[i].len = lens[i];
    t->n_spec_len = n_distinct;
    free(lens);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        uint8_t a = t->attr[id];
        size_t len;
        const char *s = tok_text(t, id, &len);
        if ((a != TOKEN_ATTR_CONTROL && a != TOKEN_ATTR_USER_DEFINED && a != TOKEN_ATTR_UNKNOWN) || !len)
            continue;
        for (size_t i = 0; i < n_distinct; i++)
            if (t->spec_len[i].len == len)
                t->spec_len[i].first[(unsigned char)s[0] >> 3] |= (uint8_t)(1u << ((unsigned char)s[0] & 7));
    }
    return 0;
}

static void set_eog(struct tokenizer *t, int32_t id)
{
    if (id >= 0)
        t->eog[id >> 3] |= (uint8_t)(1u << (id & 7));
}

int tokenizer_load(const struct gguf *g, struct tokenizer **out, char *err, size_t errlen)
{
    const char *path = gguf_path(g);
    struct gguf_str s;
    int rc;

    *out = NULL;
    rc = gguf_get_str(g, "tokenizer.ggml.model", &s, err, errlen);
    if (rc)
        return rc == ENOENT ? EBADMSG : rc;
    if (s.len != 4 || memcmp(s.ptr, "gpt2", 4) != 0)
        return err_set(err, errlen, ENOTSUP, "%s: tokenizer model '%.*s' is not supported (only gpt2)", path,
                    (int)(s.len > 64 ? 64 : s.len), s.ptr);
    rc = gguf_get_str(g, "tokenizer.ggml.pre", &s, err, errlen);
    if (rc == ENOENT)
        return err_set(err, errlen, ENOTSUP, "%s: no tokenizer.ggml.pre (pre-tokenizer unknown)", path);
    if (rc)
        return rc;
    size_t k = 0;
    while (k < sizeof pre_names / sizeof pre_names[0] &&
           !(strlen(pre_names[k].name) == s.len && memcmp(pre_names[k].name, s.ptr, s.len) == 0))
        k++;
    if (k == sizeof pre_names / sizeof pre_names[0])
        return err_set(err, errlen, ENOTSUP, "%s: unknown pre-tokenizer '%.*s'", path,
                    (int)(s.len > 64 ? 64 : s.len), s.ptr);

    struct tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return err_set(err, errlen, ENOMEM, "out of memory");
    t->pre = pre_names[k].kind;
    t->pre_name = pre_names[k].name;
    t->ignore_merges = t->pre == PRE_LLAMA3;
    t->add_bos = t->pre == PRE_LLAMA3;
    t->bos = t->eos = t->eot = t->eom = t->pad = -1;

    if ((rc = load_tokens(t, g, err, errlen)) || (rc = check_byte_tokens(t, g, err, errlen)) ||
        (rc = load_merges(t, g, err, errlen)))
        goto out;
    if ((rc = get_special_id(t, g, "tokenizer.ggml.bos_token_id", &t->bos, err, errlen)) ||
        (rc = get_special_id(t, g, "tokenizer.ggml.eos_token_id", &t->eos, err, errlen)) ||
        (rc = get_special_id(t, g, "tokenizer.ggml.padding_token_id", &t->pad, err, errlen)) ||
        (rc = get_special_id(t, g, "tokenizer.ggml.eot_token_id", &t->eot, err, errlen)) ||
        (rc = get_special_id(t, g, "tokenizer.ggml.eom_token_id", &t->eom, err, errlen)))
        goto out;
    bool b;
    rc = gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, err, errlen);
    if (rc == 0)
        t->add_bos = b;
    else if (rc != ENOENT)
        goto out;

    /* End of generation, found by text as llama.cpp does; such tokens (and
     * the FIM ones) are treated as CONTROL whatever the file says. */
    for (size_t i = 0; i < sizeof special_texts / sizeof special_texts[0]; i++) {
        int32_t id = map_find(t, &t->tokens, special_texts[i].text, strlen(special_texts[i].text));
        if (id < 0)
            continue;
        t->attr[id] = TOKEN_ATTR_CONTROL;
        if (special_texts[i].eog)
            set_eog(t, id);
    }
    set_eog(t, t->eos);
    set_eog(t, t->eot);
    set_eog(t, t->eom);

    if ((rc = build_specials(t, err, errlen)))
        goto out;
    for (unsigned b8 = 0; b8 < 256; b8++) {
        char c[4];
        size_t n = unicode_encode(byte_to_cp(b8), c);
        memcpy(t->byte_char[b8], c, n);
        t->byte_char_len[b8] = (uint8_t)n;
        t->byte_tok[b8] = map_find(t, &t->tokens, c, n);
    }
    rc = 0;
out:
    if (rc) {
        tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* ---- accessors ------------------------------------------------------------ */

int32_t tokenizer_n_vocab(const struct tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_bos(const struct tokenizer *t) { return t->bos; }
int32_t tokenizer_eos(const struct tokenizer *t) { return t->eos; }
bool tokenizer_add_bos(const struct tokenizer *t) { return t->add_bos; }
const char *tokenizer_pre_name(const struct tokenizer *t) { return t->pre_name; }

bool tokenizer_is_eog(const struct tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->eog[id >> 3] >> (id & 7) & 1);
}

enum token_attr tokenizer_attr(const struct tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab ? (enum token_attr)t->attr[id] : TOKEN_ATTR_UNDEFINED;
}

int32_t tokenizer_find(const struct tokenizer *t, const char *s, size_t len)
{
    return map_find(t, &t->tokens, s, len);
}

int tokenizer_piece(const struct tokenizer *t, int32_t id, bool special, char *buf, size_t cap)
{
    if (id < 0 || id >= t->n_vocab)
        return -1;
    uint8_t a = t->attr[id];
    if (!special && (a == TOKEN_ATTR_CONTROL || a == TOKEN_ATTR_UNKNOWN))
        return 0;
    size_t len, n = 0;
    const char *s = tok_text(t, id, &len);
    switch ((enum token_attr)a) {
    case TOKEN_ATTR_NORMAL:     /* byte-level text: each code point one byte */
        for (size_t i = 0; i < len;) {
            size_t used;
            int b = cp_to_byte(unicode_decode(s + i, len - i, &used));
            if (b >= 0) {
                if (n < cap)
                    buf[n] = (char)b;
                n++;
            } else {            /* not of the byte alphabet: keep it as written */
                for (size_t j = 0; j < used; j++, n++)
                    if (n < cap)
                        buf[n] = s[i + j];
            }
            i += used;
        }
        return (int)n;
    case TOKEN_ATTR_CONTROL:
    case TOKEN_ATTR_USER_DEFINED:
    case TOKEN_ATTR_UNKNOWN:
        if (len && cap)
            memcpy(buf, s, len < cap ? len : cap);
        return (int)len;
    case TOKEN_ATTR_BYTE:
        if (cap)
            buf[0] = (char)(hexval(s[3]) << 4 | hexval(s[4]));
        return 1;
    case TOKEN_ATTR_UNDEFINED:
    case TOKEN_ATTR_UNUSED:
        break;
    }
    return 0;
}

/* ---- encoding: pre-tokenizers ------------------------------------------------ */

/* Each splitter takes the ends of the pieces so far (the first starts at 0)
 * and writes the ends of the pieces it cuts them into; every piece is
 * searched on its own, as llama.cpp's unicode_regex_split() does, and text
 * between two matches is a piece too. */

#define IS_CRLF(c) ((c) == '\r' || (c) == '\n')

static bool ascii_alpha(uint32_t c)
{
    return c < 0x80 && (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

/* \s*[\r\n]+ | \s+(?!\S) | \s+ at pos (fl[pos] is white space): the end. */
static uint32_t match_space(const uint32_t *cp, const uint16_t *fl, uint32_t pos, uint32_t end)
{
    uint32_t w = pos, last_rn = 0;
    while (w < end && (fl[w] & UNICODE_SPACE)) {
        if (IS_CRLF(cp[w]))
            last_rn = w + 1;
        w++;
    }
    if (last_rn)
        return last_rn;         /* \s* backs off to the last CR/LF */
    if (w - pos > 1 && w < end)
        return w - 1;           /* (?!\S): leave one space for the next word */
    return w;
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxdig}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * llama-bpe (maxdig 3) and qwen2 (maxdig 1).  Every code point starts a match. */
static size_t split_gpt(const uint32_t *cp, const uint16_t *fl, const uint32_t *in, size_t n_in, uint32_t *out,
                        uint32_t maxdig)
{
    size_t n_out = 0;
    uint32_t start = 0;
    for (size_t k = 0; k < n_in; start = in[k++]) {
        uint32_t end = in[k];
        for (uint32_t pos = start; pos < end;) {
            uint32_t c = cp[pos], e;
            unsigned f = fl[pos];
            if (c == '\'' && pos + 1 < end) {
                uint32_t c1 = cp[pos + 1] | 0x20, c2 = pos + 2 < end ? cp[pos + 2] | 0x20 : 0;
                if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                    e = pos + 2;
                    goto emit;
                }
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                    e = pos + 3;
                    goto emit;
                }
            }
            if ((f & UNICODE_LETTER) ||
                (!IS_CRLF(c) && !(f & UNICODE_NUMBER) && pos + 1 < end && (fl[pos + 1] & UNICODE_LETTER))) {
                e = pos + 1;
                while (e < end && (fl[e] & UNICODE_LETTER))
                    e++;
                goto emit;
            }
            if (f & UNICODE_NUMBER) {
                e = pos + 1;
                while (e < end && e - pos < maxdig && (fl[e] & UNICODE_NUMBER))
                    e++;
                goto emit;
            }
            e = pos + (c == ' ');
            if (e < end && !(fl[e] & (UNICODE_SPACE | UNICODE_LETTER | UNICODE_NUMBER))) {
                e++;
                while (e < end && !(fl[e] & (UNICODE_SPACE | UNICODE_LETTER | UNICODE_NUMBER)))
                    e++;
                while (e < end && IS_CRLF(cp[e]))
                    e++;
                goto emit;
            }
            e = match_space(cp, fl, pos, end);   /* only white space is left */
            if (e == pos)
                e = pos + 1;
        emit:
            out[n_out++] = e;
            pos = e;
        }
    }
    return n_out;
}

/* deepseek-v3 stages 1 and 2: runs of \p{N} cut every 3, runs of
 * [\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]. */
static bool is_v3_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x3040 && c <= 0x30FF);
}

static size_t split_runs(const uint32_t *cp, const uint16_t *fl, const uint32_t *in, size_t n_in, uint32_t *out,
                         bool digits)
{
    size_t n_out = 0;
    uint32_t start = 0;
    for (size_t k = 0; k < n_in; start = in[k++]) {
        uint32_t end = in[k], gap = start;
        for (uint32_t pos = start; pos < end;) {
            if (digits ? !(fl[pos] & UNICODE_NUMBER) : !is_v3_cjk(cp[pos])) {
                pos++;
                continue;
            }
            uint32_t e = pos + 1;
            while (e < end && (digits ? (fl[e] & UNICODE_NUMBER) && e - pos < 3 : is_v3_cjk(cp[e])))
                e++;
            if (gap < pos)
                out[n_out++] = pos;
            out[n_out++] = e;
            pos = gap = e;
        }
        if (gap < end)
            out[n_out++] = end;
    }
    return n_out;
}

/* \p{P} or \p{S} as llama.cpp's regex sees them: ASCII '~' is neither. */
static bool v3_ps(const uint32_t *cp, const uint16_t *fl, uint32_t i)
{
    return (fl[i] & (UNICODE_PUNCT | UNICODE_SYMBOL)) && cp[i] != '~';
}

/* deepseek-v3 stage 3:
 * [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
 *  ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * Code points no alternative matches (digits, '~' alone, controls) stay
 * together as the text between matches. */
static size_t split_v3(const uint32_t *cp, const uint16_t *fl, const uint32_t *in, size_t n_in, uint32_t *out)
{
    size_t n_out = 0;
    uint32_t start = 0;
    for (size_t k = 0; k < n_in; start = in[k++]) {
        uint32_t end = in[k], gap = start;
        for (uint32_t pos = start; pos < end;) {
            uint32_t c = cp[pos], e;
            unsigned f = fl[pos];
            if (c > 0x20 && c < 0x7F && !ascii_alpha(c) && !(c >= '0' && c <= '9') && pos + 1 < end &&
                ascii_alpha(cp[pos + 1])) {
                e = pos + 2;
                while (e < end && ascii_alpha(cp[e]))
                    e++;
                goto emit;
            }
            if ((f & (UNICODE_LETTER | UNICODE_MARK)) ||
                (!IS_CRLF(c) && !(f & UNICODE_LETTER) && !v3_ps(cp, fl, pos) && pos + 1 < end &&
                 (fl[pos + 1] & (UNICODE_LETTER | UNICODE_MARK)))) {
                e = pos + 1;
                while (e < end && (fl[e] & (UNICODE_LETTER | UNICODE_MARK)))
                    e++;
                goto emit;
            }
            e = pos + (c == ' ');
            if (e < end && v3_ps(cp, fl, e)) {
                e++;
                while (e < end && v3_ps(cp, fl, e))
                    e++;
                while (e < end && IS_CRLF(cp[e]))
                    e++;
                goto emit;
            }
            if (f & UNICODE_SPACE) {
                e = match_space(cp, fl, pos, end);
                goto emit;
            }
            pos++;      /* no match here */
            continue;
        emit:
            if (gap < pos)
                out[n_out++] = pos;
            out[n_out++] = e;
            pos = gap = e;
        }
        if (gap < end)
            out[n_out++] = end;
    }
    return n_out;
}

/* ---- encoding: BPE -------------------------------------------------------------- */

struct sym {
    int32_t id;         /* -1: not a token (falls back to single bytes) */
    uint32_t len;       /* bytes; 0 once merged into its left neighbour */
    int32_t prev, next; /* -1 at the ends */
};

struct bigram {
    int32_t rank, result;
    uint32_t left, right, len;   /* len: the two symbols' lengths then */
};

/* Scratch for one tokenizer_encode() call. */
struct enc {
    const struct tokenizer *t;
    struct tokens *out;
    uint32_t *cp;           /* code points of a fragment */
    uint16_t *fl;           /* their unicode_flags() */
    uint32_t *ends[2];      /* piece ends, alternating between splitter stages */
    char *bytes;            /* a piece in UTF-8, then in byte-level text */
    size_t bytes_cap;
    struct sym *sym;
    struct bigram *heap;
    size_t sym_cap, n_heap;
};

static bool bigram_less(const struct bigram *a, const struct bigram *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(struct enc *e, struct bigram b)
{
    size_t i = e->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_less(&b, &e->heap[parent]))
            break;
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = b;
}

static struct bigram heap_pop(struct enc *e)
{
    struct bigram top = e->heap[0], last = e->heap[--e->n_heap];
    size_t i = 0, n = e->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && bigram_less(&e->heap[c + 1], &e->heap[c]))
            c++;
        if (!bigram_less(&e->heap[c], &last))
            break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n)
        e->heap[i] = last;
    return top;
}

static void try_pair(struct enc *e, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return;
    const struct sym *sl = &e->sym[l], *sr = &e->sym[r];
    if (sl->id < 0 || sr->id < 0)
        return;
    const struct mergemap *m = &e->t->merges;
    uint64_t key = (uint64_t)(uint32_t)sl->id << 32 | (uint32_t)sr->id;
    const struct merge *mg = &m->slot[merge_slot(m, key)];
    if (mg->key != key)
        return;
    heap_push(e, (struct bigram){ mg->rank, mg->result, (uint32_t)l, (uint32_t)r, sl->len + sr->len });
}

/* A symbol that is not a token: each byte of its byte-level text on its own
 * (llama.cpp's fallback; no id in these vocabularies takes this path). */
static int emit_bytes(struct enc *e, const char *s, size_t n)
{
    const struct tokenizer *t = e->t;
    for (size_t i = 0; i < n; i++) {
        unsigned b = (unsigned char)s[i];
        for (unsigned j = 0; j < t->byte_char_len[b]; j++) {
            int32_t id = map_find(t, &t->tokens, &t->byte_char[b][j], 1);
            if (id >= 0 && tokens_push(e->out, id))
                return ENOMEM;
        }
    }
    return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t bytes;
    if (ckd_mul_size(&bytes, need, elem))
        return ENOMEM;
    void *q = realloc(*p, bytes);
    if (!q)
        return ENOMEM;
    *p = q;
    *cap = need;
    return 0;
}

static int bpe_piece(struct enc *e, const char *s, size_t n)
{
    const struct tokenizer *t = e->t;

    if (t->ignore_merges && n <= t->max_text_len) {
        /* the whole piece, if it is a token, is not merged (llama-bpe) */
        char *bl = e->bytes + n;    /* room for 2n after the piece */
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned b = (unsigned char)s[i];
            memcpy(bl + m, t->byte_char[b], t->byte_char_len[b]);
            m += t->byte_char_len[b];
        }
        int32_t id = map_find(t, &t->tokens, bl, m);
        if (id >= 0)
            return tokens_push(e->out, id);
    }
    if (n == 1) {
        int32_t id = t->byte_tok[(unsigned char)s[0]];
        return id >= 0 ? tokens_push(e->out, id) : emit_bytes(e, s, 1);
    }
    if (n > e->sym_cap) {   /* a merge pushes at most two pairs: 3n bigrams in all */
        size_t cap = e->sym_cap, hcap = 3 * e->sym_cap;
        if (grow((void **)&e->sym, &cap, n, sizeof *e->sym) ||
            grow((void **)&e->heap, &hcap, 3 * n, sizeof *e->heap))
            return ENOMEM;
        e->sym_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        e->sym[i] = (struct sym){ t->byte_tok[(unsigned char)s[i]], 1, (int32_t)i - 1,
                                  i + 1 < n ? (int32_t)i + 1 : -1 };
    e->n_heap = 0;
    for (size_t i = 1; i < n; i++)
        try_pair(e, (int32_t)i - 1, (int32_t)i);
    while (e->n_heap) {
        struct bigram b = heap_pop(e);
        struct sym *l = &e->sym[b.left], *r = &e->sym[b.right];
        if (!l->len || !r->len || l->len + r->len != b.len)
            continue;   /* stale: one side has merged since */
        l->id = b.result;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            e->sym[r->next].prev = (int32_t)b.left;
        try_pair(e, l->prev, (int32_t)b.left);
        try_pair(e, (int32_t)b.left, l->next);
    }
    for (int32_t i = 0; i >= 0; i = e->sym[i].next) {
        int rc = e->sym[i].id >= 0 ? tokens_push(e->out, e->sym[i].id)
                                   : emit_bytes(e, s + i, e->sym[i].len);
        if (rc)
            return ENOMEM;
    }
    return 0;
}

/* Pre-tokenize one raw fragment (no added tokens in it) and merge each piece. */
static int encode_fragment(struct enc *e, const char *text, size_t len)
{
    const struct tokenizer *t = e->t;
    uint32_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t used;
        uint32_t c = unicode_decode(text + i, len - i, &used);
        e->cp[n] = c;
        e->fl[n] = (uint16_t)unicode_flags(c);
        n++;
        i += used;
    }
    uint32_t *in = e->ends[0], *out = e->ends[1];
    size_t n_in = 1;
    in[0] = n;
    switch (t->pre) {
    case PRE_LLAMA3:
    case PRE_QWEN2:
        n_in = split_gpt(e->cp, e->fl, in, n_in, out, t->pre == PRE_LLAMA3 ? 3 : 1);
        in = out;
        break;
    case PRE_DEEPSEEK3:
        n_in = split_runs(e->cp, e->fl, in, n_in, out, true);
        n_in = split_runs(e->cp, e->fl, out, n_in, in, false);
        n_in = split_v3(e->cp, e->fl, in, n_in, out);
        in = out;
        break;
    }
    uint32_t start = 0;
    for (size_t k = 0; k < n_in; start = in[k++]) {
        /* the piece as UTF-8 (invalid input bytes are U+FFFD by now), with
         * room behind it for its byte-level form */
        size_t need = (size_t)(in[k] - start) * 4 * 3;
        if (grow((void **)&e->bytes, &e->bytes_cap, need, 1))
            return ENOMEM;
        size_t m = 0;
        for (uint32_t i = start; i < in[k]; i++)
            m += unicode_encode(e->cp[i], e->bytes + m);
        if (bpe_piece(e, e->bytes, m))
            return ENOMEM;
    }
    return 0;
}

/* ---- encoding: added tokens ------------------------------------------------------ */

struct match {
    size_t pos, len;
    int32_t id;
};

/* llama.cpp's order: longest added token first (ties by id), each one's
 * occurrences left to right. */
static int cmp_match(const void *a, const void *b)
{
    const struct match *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int cmp_match_pos(const void *a, const void *b)
{
    const struct match *x = a, *y = b;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static bool bit(const uint8_t *set, unsigned char c)
{
    return set[c >> 3] >> (c & 7) & 1;
}

/* Every occurrence of an added token that the partition may use (CONTROL and
 * UNKNOWN only when parse_special). */
static int find_matches(const struct tokenizer *t, const char *text, size_t len, bool parse_special,
                        struct match **out, size_t *n_out)
{
    struct match *m = NULL;
    size_t n = 0, cap = 0;
    for (size_t p = 0; p < len; p++) {
        unsigned char c = (unsigned char)text[p];
        if (!bit(t->spec_first, c))
            continue;
        for (size_t k = 0; k < t->n_spec_len; k++) {
            size_t l = t->spec_len[k].len;
            if (l > len - p || !bit(t->spec_len[k].first, c))
                continue;
            int32_t id = map_find(t, &t->specials, text + p, l);
            if (id < 0 || (!parse_special && t->attr[id] != TOKEN_ATTR_USER_DEFINED))
                continue;
            if (n == cap && grow((void **)&m, &cap, cap ? 2 * cap : 16, sizeof *m)) {
                free(m);
                return ENOMEM;
            }
            m[n++] = (struct match){ p, l, id };
        }
    }
    *out = m;
    *n_out = n;
    return 0;
}

/* added: cut at added tokens first (CONTROL ones only when parse_special). */
static int encode(const struct tokenizer *t, const char *text, size_t len, bool add_bos, bool added,
                  bool parse_special, struct tokens *out, char *err, size_t errlen)
{
    struct enc e = { .t = t, .out = out };
    struct match *m = NULL;
    uint8_t *taken = NULL;
    size_t n_m = 0;
    int rc = ENOMEM;

    if (add_bos && t->bos >= 0 && tokens_push(out, t->bos))
        goto oom;
    if (len == 0) {
        rc = 0;
        goto out;
    }
    if (len > INT32_MAX / 16) {    /* keeps every index an int32 and every buffer size a size_t */
        rc = err_set(err, errlen, ENOMEM, "text of %zu bytes is too long to tokenize", len);
        goto out;
    }
    e.cp = malloc(len * sizeof *e.cp);
    e.fl = malloc(len * sizeof *e.fl);
    e.ends[0] = malloc(len * sizeof *e.ends[0]);
    e.ends[1] = malloc(len * sizeof *e.ends[1]);
    if (!e.cp || !e.fl || !e.ends[0] || !e.ends[1] ||
        (added && find_matches(t, text, len, parse_special, &m, &n_m)))
        goto oom;

    size_t n_kept = 0;
    if (n_m) {
        qsort(m, n_m, sizeof *m, cmp_match);
        taken = calloc(len, 1);
        if (!taken)
            goto oom;
        for (size_t i = 0; i < n_m; i++) {
            size_t j = 0;
            while (j < m[i].len && !taken[m[i].pos + j])
                j++;
            if (j < m[i].len)
                continue;   /* overlaps a token already cut out */
            memset(taken + m[i].pos, 1, m[i].len);
            m[n_kept++] = m[i];
        }
        qsort(m, n_kept, sizeof *m, cmp_match_pos);
    }
    size_t cur = 0;
    for (size_t i = 0; i < n_kept; i++) {
        if (m[i].pos > cur && encode_fragment(&e, text + cur, m[i].pos - cur))
            goto oom;
        if (tokens_push(out, m[i].id))
            goto oom;
        cur = m[i].pos + m[i].len;
    }
    if (cur < len && encode_fragment(&e, text + cur, len - cur))
        goto oom;
    rc = 0;
    goto out;
oom:
    rc = err_set(err, errlen, ENOMEM, "out of memory tokenizing %zu bytes", len);
out:
    free(m);
    free(taken);
    free(e.cp);
    free(e.fl);
    free(e.ends[0]);
    free(e.ends[1]);
    free(e.bytes);
    free(e.sym);
    free(e.heap);
    return rc;
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, bool add_bos, bool parse_special,
                     struct tokens *out, char *err, size_t errlen)
{
    return encode(t, text, len, add_bos, true, parse_special, out, err, errlen);
}

int tokenizer_encode_plain(const struct tokenizer *t, const char *text, size_t len, struct tokens *out, char *err,
                           size_t errlen)
{
    return encode(t, text, len, false, false, false, out, err, errlen);
}

/* ---- streaming detokenizer ------------------------------------------------------ */

static const char replacement[3] = { (char)0xEF, (char)0xBF, (char)0xBD };

/* Bytes in the sequence lead byte c starts; 0 when c starts none. */
static int utf8_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF)
        return 3;
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    return 0;
}

void detok_init(struct detok *d)
{
    d->n_pending = 0;
}

size_t detok_push(struct detok *d, const char *piece, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)piece[i];
        if (d->n_pending) {
            unsigned char lead = (unsigned char)d->pending[0], lo = 0x80, hi = 0xBF;
            if (d->n_pending == 1) {    /* no overlong forms, surrogates or > U+10FFFF */
                if (lead == 0xE0)
                    lo = 0xA0;
                else if (lead == 0xED)
                    hi = 0x9F;
                else if (lead == 0xF0)
                    lo = 0x90;
                else if (lead == 0xF4)
                    hi = 0x8F;
            }
            if (c >= lo && c <= hi) {
                d->pending[d->n_pending++] = (char)c;
                if (d->n_pending == utf8_len(lead)) {
                    memcpy(out + o, d->pending, (size_t)d->n_pending);
                    o += (size_t)d->n_pending;
                    d->n_pending = 0;
                }
                continue;
            }
            /* the sequence broke off: one U+FFFD for it, then look at c afresh */
            memcpy(out + o, replacement, 3);
            o += 3;
            d->n_pending = 0;
        }
        int n = utf8_len(c);
        if (n == 1) {
            out[o++] = (char)c;
        } else if (n == 0) {
            memcpy(out + o, replacement, 3);
            o += 3;
        } else {
            d->pending[0] = (char)c;
            d->n_pending = 1;
        }
    }
    return o;
}

size_t detok_flush(struct detok *d, char *out)
{
    if (!d->n_pending)
        return 0;
    d->n_pending = 0;
    memcpy(out, replacement, 3);
    return 3;
}
