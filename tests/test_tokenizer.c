/* Tokenizer: every reference case of the three R1 vocabularies, round trips
 * through the pieces, the streaming detokenizer, character classes against
 * the reference table, and the load errors of malformed vocabularies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infer/gguf.h"
#include "infer/tokenizer.h"
#include "infer/unicode.h"
#include "tests/fixture.h"
#include "tests/fx_gguf.h"

struct vocab {
    const char *name;       /* also the case file's stem */
    struct gguf *g;
    struct tokenizer *t;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int vocab_setup(void **state, const char *name)
{
    struct vocab *v = calloc(1, sizeof *v);
    char rel[64], err[256];
    snprintf(rel, sizeof rel, "vocab-%s.gguf", name);
    v->name = name;
    int rc = gguf_open(fx_path(rel), &v->g, err, sizeof err);
    if (rc) {
        fprintf(stderr, "%s\n", err);
        free(v);
        return -1;
    }
    double t0 = now_ms();
    rc = tokenizer_load(v->g, &v->t, err, sizeof err);
    if (rc) {
        fprintf(stderr, "%s\n", err);
        gguf_close(v->g);
        free(v);
        return -1;
    }
    printf("%s: tokenizer loaded in %.1f ms\n", name, now_ms() - t0);
    *state = v;
    return 0;
}

static int setup_qwen(void **state) { return vocab_setup(state, "r1-qwen"); }
static int setup_llama(void **state) { return vocab_setup(state, "r1-llama"); }
static int setup_r1(void **state) { return vocab_setup(state, "r1"); }

static int vocab_teardown(void **state)
{
    struct vocab *v = *state;
    tokenizer_free(v->t);
    gguf_close(v->g);
    free(v);
    return 0;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    printf("    %s [", label);
    for (size_t i = 0; i < n && i < 40; i++)
        printf("%s%d", i ? ", " : "", ids[i]);
    printf("%s]\n", n > 40 ? ", ..." : "");
}

/* ---- the reference cases ----------------------------------------------------- */

static void cases_match_llama_cpp(void **state)
{
    struct vocab *v = *state;
    char rel[64], err[256];
    snprintf(rel, sizeof rel, "tokenizer/%s.jsonl", v->name);
    json_t *cases = fx_load_jsonl(fx_path(rel));
    assert_non_null(cases);

    size_t passed = 0, failed = 0, idx;
    double ms = 0;
    json_t *c;
    json_array_foreach(cases, idx, c) {
        json_t *jt = json_object_get(c, "text"), *ji = json_object_get(c, "ids");
        const char *text = json_string_value(jt);
        size_t len = json_string_length(jt);
        bool parse_special = json_is_true(json_object_get(c, "parse_special"));
        bool add_bos = json_is_true(json_object_get(c, "add_bos"));
        assert_non_null(text);
        assert_non_null(ji);

        struct tokens got = { 0 };
        double t0 = now_ms();
        int rc = tokenizer_encode(v->t, text, len, add_bos, parse_special, &got, err, sizeof err);
        ms += now_ms() - t0;
        assert_int_equal(rc, 0);

        bool same = got.n == json_array_size(ji);
        for (size_t i = 0; same && i < got.n; i++)
            same = got.ids[i] == json_integer_value(json_array_get(ji, i));
        if (same) {
            passed++;
        } else {
            if (failed < 5) {
                printf("  %s line %zu (parse_special %d, add_bos %d): '%.*s%s'\n", v->name, idx + 1,
                       parse_special, add_bos, (int)(len > 80 ? 80 : len), text, len > 80 ? "..." : "");
                int32_t *want = malloc((json_array_size(ji) + 1) * sizeof *want);
                for (size_t i = 0; i < json_array_size(ji); i++)
                    want[i] = (int32_t)json_integer_value(json_array_get(ji, i));
                print_ids("expected", want, json_array_size(ji));
                print_ids("got     ", got.ids, got.n);
                free(want);
            }
            failed++;
        }
        tokens_free(&got);
    }
    printf("%s.jsonl: %zu passed, %zu failed (%.1f ms encoding)\n", v->name, passed, failed, ms);
    json_decref(cases);
    if (failed)
        fail_msg("%s: %zu of %zu cases differ from llama.cpp", v->name, failed, passed + failed);
}

/* encode (no BOS, added tokens other than USER_DEFINED as text) -> pieces ->
 * the text again: byte-level BPE loses nothing. */
static void pieces_give_back_the_text(void **state)
{
    struct vocab *v = *state;
    char rel[64], err[256];
    snprintf(rel, sizeof rel, "tokenizer/%s.jsonl", v->name);
    json_t *cases = fx_load_jsonl(fx_path(rel));
    assert_non_null(cases);

    size_t idx, n = 0;
    json_t *c;
    char *buf = NULL;
    size_t cap = 0;
    json_array_foreach(cases, idx, c) {
        if (json_is_true(json_object_get(c, "parse_special")))
            continue;
        json_t *jt = json_object_get(c, "text");
        const char *text = json_string_value(jt);
        size_t len = json_string_length(jt);
        struct tokens tk = { 0 };
        assert_int_equal(tokenizer_encode(v->t, text, len, false, false, &tk, err, sizeof err), 0);
        size_t o = 0;
        for (size_t i = 0; i < tk.n; i++) {
            int k = tokenizer_piece(v->t, tk.ids[i], false, NULL, 0);
            assert_true(k >= 0);
            if (o + (size_t)k > cap) {
                cap = 2 * (o + (size_t)k);
                buf = realloc(buf, cap);
            }
            assert_int_equal(tokenizer_piece(v->t, tk.ids[i], false, buf + o, (size_t)k), k);
            o += (size_t)k;
        }
        if (o != len || memcmp(buf, text, len) != 0)
            fail_msg("%s line %zu: '%.*s' comes back as '%.*s'", v->name, idx + 1, (int)len, text, (int)o, buf);
        tokens_free(&tk);
        n++;
    }
    printf("%s: %zu texts round-trip\n", v->name, n);
    free(buf);
    json_decref(cases);
}

static bool contains(const char *hay, size_t n, const char *needle, size_t k)
{
    for (size_t i = 0; i + k <= n; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, k) == 0)
            return true;
    return false;
}

/* The plain rule (chat message text): equal to llama.cpp on every case whose
 * text holds no added-token string; where one does, it comes out as ordinary
 * tokens and the pieces give the text back. */
static void plain_rule_matches_no_added_token(void **state)
{
    struct vocab *v = *state;
    char rel[64], err[256];
    snprintf(rel, sizeof rel, "tokenizer/%s.jsonl", v->name);
    json_t *cases = fx_load_jsonl(fx_path(rel));
    assert_non_null(cases);

    size_t idx, n_same = 0, n_added = 0, n_spec = 0;
    int32_t *spec = malloc((size_t)tokenizer_n_vocab(v->t) * sizeof *spec);
    assert_non_null(spec);
    for (int32_t id = 0; id < tokenizer_n_vocab(v->t); id++)
        if (tokenizer_attr(v->t, id) == TOKEN_ATTR_CONTROL || tokenizer_attr(v->t, id) == TOKEN_ATTR_USER_DEFINED)
            spec[n_spec++] = id;
    json_t *c;
    char *buf = NULL;
    json_array_foreach(cases, idx, c) {
        json_t *jt = json_object_get(c, "text"), *ji = json_object_get(c, "ids");
        const char *text = json_string_value(jt);
        size_t len = json_string_length(jt);
        bool add_bos = json_is_true(json_object_get(c, "add_bos"));
        bool has_added = false;
        for (size_t i = 0; i < n_spec && !has_added; i++) {
            char piece[128];
            int k = tokenizer_piece(v->t, spec[i], true, piece, sizeof piece);
            has_added = k > 0 && k <= (int)sizeof piece && contains(text, len, piece, (size_t)k);
        }
        struct tokens tk = { 0 };
        assert_int_equal(tokenizer_encode_plain(v->t, text, len, &tk, err, sizeof err), 0);
        if (!has_added) {
            size_t skip = add_bos ? 1 : 0;
            bool same = tk.n + skip == json_array_size(ji);
            for (size_t i = 0; same && i < tk.n; i++)
                same = tk.ids[i] == json_integer_value(json_array_get(ji, i + skip));
            if (!same)
                fail_msg("%s line %zu: plain rule differs on '%.*s'", v->name, idx + 1, (int)len, text);
            n_same++;
            tokens_free(&tk);
            continue;
        }
        size_t o = 0;
        buf = realloc(buf, 4 * len + 64);
        for (size_t i = 0; i < tk.n; i++) {
            enum token_attr a = tokenizer_attr(v->t, tk.ids[i]);
            if (a != TOKEN_ATTR_NORMAL)
                fail_msg("%s line %zu: plain rule gave added token %d", v->name, idx + 1, tk.ids[i]);
            o += (size_t)tokenizer_piece(v->t, tk.ids[i], false, buf + o, 4 * len + 64 - o);
        }
        if (o != len || memcmp(buf, text, len) != 0)
            fail_msg("%s line %zu: plain pieces do not give the text back", v->name, idx + 1);
        n_added++;
        tokens_free(&tk);
    }
    printf("%s: plain rule equal on %zu lines, %zu lines with added-token text stay ordinary\n", v->name, n_same,
           n_added);
    free(buf);
    free(spec);
    json_decref(cases);
}

/* ---- vocabulary facts (README 1.1) -------------------------------------------- */

struct vocab_facts {
    const char *name, *pre;
    int32_t n_vocab, bos, eos;
    int32_t eog[4];
    size_t n_eog;
};

static const struct vocab_facts facts[] = {
    { "r1-qwen", "deepseek-r1-qwen", 151936, 151646, 151643, { 151643, 151662, 151663, 151664 }, 4 },
    { "r1-llama", "llama-bpe", 128256, 128000, 128001, { 128001, 128008, 128009 }, 3 },
    { "r1", "deepseek-v3", 129280, 0, 1, { 1 }, 1 },
};

static void vocabulary_facts_match_readme(void **state)
{
    struct vocab *v = *state;
    const struct vocab_facts *f = NULL;
    for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++)
        if (strcmp(facts[i].name, v->name) == 0)
            f = &facts[i];
    assert_non_null(f);
    assert_string_equal(tokenizer_pre_name(v->t), f->pre);
    assert_int_equal(tokenizer_n_vocab(v->t), f->n_vocab);
    assert_int_equal(tokenizer_bos(v->t), f->bos);
    assert_int_equal(tokenizer_eos(v->t), f->eos);
    assert_true(tokenizer_add_bos(v->t));
    size_t n_eog = 0;
    for (int32_t id = -2; id < f->n_vocab + 2; id++) {
        if (!tokenizer_is_eog(v->t, id))
            continue;
        bool listed = false;
        for (size_t i = 0; i < f->n_eog; i++)
            listed |= f->eog[i] == id;
        if (!listed)
            fail_msg("%s: %d is end-of-generation but should not be", v->name, id);
        n_eog++;
    }
    assert_int_equal(n_eog, f->n_eog);

    int32_t think = tokenizer_find(v->t, "<think>", 7);
    assert_true(think >= 0);
    assert_int_equal(tokenizer_attr(v->t, think), TOKEN_ATTR_USER_DEFINED);
    assert_int_equal(tokenizer_attr(v->t, f->bos), TOKEN_ATTR_CONTROL);
    assert_int_equal(tokenizer_find(v->t, "no such token, surely", 21), -1);
}

/* What each kind of token gives back. */
static void pieces_follow_the_token_type(void **state)
{
    struct vocab *v = *state;
    char buf[64];
    /* "Ġ" (U+0120) stands for a space, "Ċ" (U+010A) for a newline */
    int32_t sp = tokenizer_find(v->t, "\xc4\xa0", 2), nl = tokenizer_find(v->t, "\xc4\x8a", 2);
    assert_true(sp >= 0 && nl >= 0);
    assert_int_equal(tokenizer_piece(v->t, sp, false, buf, sizeof buf), 1);
    assert_int_equal(buf[0], ' ');
    assert_int_equal(tokenizer_piece(v->t, nl, false, buf, sizeof buf), 1);
    assert_int_equal(buf[0], '\n');

    int32_t bos = tokenizer_bos(v->t);
    const char *bos_text = "<\xef\xbd\x9c" "begin\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>";
    assert_int_equal(tokenizer_piece(v->t, bos, false, buf, sizeof buf), 0);
    assert_int_equal(tokenizer_piece(v->t, bos, true, buf, sizeof buf), (int)strlen(bos_text));
    assert_memory_equal(buf, bos_text, strlen(bos_text));
    /* a short buffer gets what fits, the return value says how much is needed */
    memset(buf, 0, sizeof buf);
    assert_int_equal(tokenizer_piece(v->t, bos, true, buf, 3), (int)strlen(bos_text));
    assert_memory_equal(buf, bos_text, 3);
    assert_int_equal(buf[3], 0);

    int32_t think = tokenizer_find(v->t, "</think>", 8);
    assert_int_equal(tokenizer_piece(v->t, think, false, buf, sizeof buf), 8);
    assert_memory_equal(buf, "</think>", 8);

    assert_int_equal(tokenizer_piece(v->t, -1, true, buf, sizeof buf), -1);
    assert_int_equal(tokenizer_piece(v->t, tokenizer_n_vocab(v->t), true, buf, sizeof buf), -1);
    /* the last id is a [PAD] (UNUSED) in r1-qwen and r1, CONTROL in r1-llama */
    int32_t last = tokenizer_n_vocab(v->t) - 1;
    if (tokenizer_attr(v->t, last) == TOKEN_ATTR_UNUSED)
        assert_int_equal(tokenizer_piece(v->t, last, true, buf, sizeof buf), 0);
}

/* Encoding appends; BOS only when asked; empty text gives nothing. */
static void encode_appends_and_adds_bos(void **state)
{
    struct vocab *v = *state;
    struct tokens tk = { 0 };
    char err[128];
    assert_int_equal(tokenizer_encode(v->t, "", 0, false, true, &tk, err, sizeof err), 0);
    assert_int_equal(tk.n, 0);
    assert_int_equal(tokenizer_encode(v->t, "", 0, true, true, &tk, err, sizeof err), 0);
    assert_int_equal(tk.n, 1);
    assert_int_equal(tk.ids[0], tokenizer_bos(v->t));
    assert_int_equal(tokenizer_encode(v->t, "Hello", 5, true, true, &tk, err, sizeof err), 0);
    assert_true(tk.n >= 3);
    assert_int_equal(tk.ids[1], tokenizer_bos(v->t));
    tokens_free(&tk);
    assert_null(tk.ids);
    assert_int_equal(tk.n, 0);
    assert_int_equal(tk.cap, 0);
}

/* Invalid UTF-8 in the input is read as U+FFFD (as llama.cpp does), so it
 * encodes like the text with U+FFFD written out. */
static void invalid_input_bytes_encode_as_replacement(void **state)
{
    struct vocab *v = *state;
    struct tokens a = { 0 }, b = { 0 };
    char err[128];
    /* a cut-short sequence is one U+FFFD per byte: llama.cpp moves on by one byte */
    const char *bad = "a\xff" "b\xe4\xb8", *good = "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd";
    assert_int_equal(tokenizer_encode(v->t, bad, strlen(bad), false, false, &a, err, sizeof err), 0);
    assert_int_equal(tokenizer_encode(v->t, good, strlen(good), false, false, &b, err, sizeof err), 0);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.ids, b.ids, a.n * sizeof *a.ids);
    tokens_free(&a);
    tokens_free(&b);
}

/* ---- character classes ------------------------------------------------------------ */

/* unicode_flags() against the Unicode 15.1 table in tools/plain_bpe.py, for
 * every code point. */
static void classes_match_reference_table(void **state)
{
    (void)state;
    size_t len;
    char *py = fx_read_file(fx_path("tools/plain_bpe.py"), &len);
    assert_non_null(py);
    char *p = strstr(py, "_RANGES = \"\"\"");
    assert_non_null(p);
    p += strlen("_RANGES = \"\"\"");
    char *end = strstr(p, "\"\"\"");
    assert_non_null(end);
    *end = 0;

    uint32_t start[4096];
    unsigned flag[4096];
    size_t n = 0;
    for (char *tok = strtok(p, " \n"); tok; tok = strtok(NULL, " \n")) {
        assert_true(n < 4096);
        char *colon;
        start[n] = (uint32_t)strtoul(tok, &colon, 16);
        assert_int_equal(*colon, ':');
        flag[n++] = (unsigned)strtoul(colon + 1, NULL, 16);
    }
    assert_true(n > 1000);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t last = i + 1 < n ? start[i + 1] : 0x110000;
        for (uint32_t c = start[i]; c < last; c++) {
            unsigned got = unicode_flags(c) & UNICODE_CLASS_MASK;
            if (got != flag[i] && bad++ < 5)
                printf("  U+%04X: class %#x, reference %#x\n", c, got, flag[i]);
        }
    }
    free(py);
    if (bad)
        fail_msg("%zu code points differ from the reference classes", bad);
    assert_int_equal(unicode_flags(0x110000), UNICODE_UNDEFINED);
}

static void white_space_is_the_unicode_property(void **state)
{
    (void)state;
    static const uint32_t space[] = { 0x9, 0xA, 0xB, 0xC, 0xD, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2005,
                                      0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000 };
    static const uint32_t not_space[] = { 0x0, 0x8, 0xE, 0x1C, 0x1D, 0x1E, 0x1F, 0x21, 0x84, 0x86, 0x180E,
                                          0x200B, 0x200D, 0x2060, 0xFEFF, 0x3001, 0x10FFFF };
    for (size_t i = 0; i < sizeof space / sizeof space[0]; i++)
        if (!unicode_is_space(space[i]) || !(unicode_flags(space[i]) & UNICODE_SPACE))
            fail_msg("U+%04X should be white space", space[i]);
    for (size_t i = 0; i < sizeof not_space / sizeof not_space[0]; i++)
        if (unicode_is_space(not_space[i]) || (unicode_flags(not_space[i]) & UNICODE_SPACE))
            fail_msg("U+%04X should not be white space", not_space[i]);
}

static void decode_is_lax_like_llama_cpp(void **state)
{
    (void)state;
    static const struct {
        const char *name, *s;
        size_t len, used;
        uint32_t cp;
    } rows[] = {
        { "ascii", "A", 1, 1, 0x41 },
        { "two bytes", "\xc3\xa9", 2, 2, 0xE9 },
        { "three bytes", "\xe4\xb8\xad", 3, 3, 0x4E2D },
        { "four bytes", "\xf0\x9f\x98\x80", 4, 4, 0x1F600 },
        { "overlong accepted", "\xc0\x80", 2, 2, 0 },
        { "surrogate accepted", "\xed\xa0\x80", 3, 3, 0xD800 },
        { "lone continuation", "\x80", 1, 1, 0xFFFD },
        { "cut short", "\xe4\xb8", 2, 1, 0xFFFD },
        { "bad continuation", "\xe4\x41\x41", 3, 1, 0xFFFD },
        { "past U+10FFFF", "\xf4\x90\x80\x80", 4, 1, 0xFFFD },
        { "F5 lead", "\xf5\x80\x80\x80", 4, 1, 0xFFFD },
        { "FF", "\xff", 1, 1, 0xFFFD },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t used = 0;
        uint32_t cp = unicode_decode(rows[i].s, rows[i].len, &used);
        if (cp != rows[i].cp || used != rows[i].used)
            fail_msg("case %s: got U+%04X (%zu bytes), want U+%04X (%zu)", rows[i].name, cp, used, rows[i].cp,
                     rows[i].used);
    }
    char buf[4];
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp += (cp < 0x800 ? 1 : 61)) {
        size_t n = unicode_encode(cp, buf), used;
        assert_int_equal(unicode_decode(buf, n, &used), cp);
        assert_int_equal(used, n);
    }
}

/* ---- streaming detokenizer ----------------------------------------------------------- */

/* Feeds text cut at every split point (in two and in single bytes) and checks
 * the output never ends inside a character and adds up to want. */
static void detok_check(const char *name, const char *in, size_t len, const char *want, size_t want_len)
{
    char out[256];
    for (size_t cut = 0; cut <= len; cut++) {
        struct detok d;
        detok_init(&d);
        size_t o = detok_push(&d, in, cut, out);
        size_t o2 = detok_push(&d, in + cut, len - cut, out + o);
        /* every chunk the detokenizer gives is whole UTF-8 */
        for (size_t i = 0; i < o;) {
            size_t used;
            uint32_t cp = unicode_decode(out + i, o - i, &used);
            if (cp == 0xFFFD && memcmp(out + i, "\xef\xbf\xbd", 3) != 0)
                fail_msg("case %s, cut %zu: first chunk ends inside a character", name, cut);
            i += used;
        }
        o += o2;
        o += detok_flush(&d, out + o);
        if (o != want_len || memcmp(out, want, want_len) != 0)
            fail_msg("case %s, cut %zu: got '%.*s' (%zu bytes), want '%s'", name, cut, (int)o, out, o, want);
    }
    struct detok d;
    detok_init(&d);
    size_t o = 0;
    for (size_t i = 0; i < len; i++)
        o += detok_push(&d, in + i, 1, out + o);
    o += detok_flush(&d, out + o);
    if (o != want_len || memcmp(out, want, want_len) != 0)
        fail_msg("case %s, byte by byte: got '%.*s', want '%s'", name, (int)o, out, want);
}

static void detok_never_splits_a_character(void **state)
{
    (void)state;
    static const struct {
        const char *name, *in, *want;
    } rows[] = {
        { "ascii", "hello", "hello" },
        { "latin", "caf\xc3\xa9!", "caf\xc3\xa9!" },
        { "cjk", "\xe4\xb8\xad\xe6\x96\x87", "\xe4\xb8\xad\xe6\x96\x87" },
        { "emoji", "a\xf0\x9f\x98\x80z", "a\xf0\x9f\x98\x80z" },
        { "zwj family", "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9", "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9" },
        { "max code point", "\xf4\x8f\xbf\xbd", "\xf4\x8f\xbf\xbd" },
        { "lone continuation", "a\x80" "b", "a\xef\xbf\xbd" "b" },
        { "ff byte", "\xff", "\xef\xbf\xbd" },
        { "overlong", "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" },
        { "e0 overlong", "\xe0\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
        { "surrogate", "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
        { "past max", "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
        { "cut by ascii", "\xe4\xb8" "a", "\xef\xbf\xbd" "a" },
        { "cut by lead", "\xe4\xb8\xe4\xb8\xad", "\xef\xbf\xbd\xe4\xb8\xad" },
        { "unfinished at end", "ok\xf0\x9f\x98", "ok\xef\xbf\xbd" },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        detok_check(rows[i].name, rows[i].in, strlen(rows[i].in), rows[i].want, strlen(rows[i].want));
}

/* Output can be three times the input (every byte invalid): DETOK_OUT_MAX. */
static void detok_output_fits_its_bound(void **state)
{
    (void)state;
    char in[64], out[DETOK_OUT_MAX(64) + 16];
    memset(in, 0xff, sizeof in);
    memset(out, 0x55, sizeof out);
    struct detok d;
    detok_init(&d);
    detok_push(&d, "\xf0\x9f\x98", 3, out);
    size_t o = detok_push(&d, in, sizeof in, out);
    assert_int_equal(o, 3 + 3 * sizeof in);
    assert_true(o <= DETOK_OUT_MAX(sizeof in));
    for (size_t i = DETOK_OUT_MAX(sizeof in); i < sizeof out; i++)
        assert_int_equal((unsigned char)out[i], 0x55);
}

/* A pieces stream from the tokenizer: pieces of multi-byte characters that
 * byte-level BPE splits across tokens come out whole. */
static void detok_joins_token_pieces(void **state)
{
    struct vocab *v = *state;
    const char *text = "\xe4\xbd\xa0\xe5\xa5\xbd\xf0\x9f\x98\x80\xf0\x9f\xa4\x94 \xf0\x9f\x87\xaf\xf0\x9f\x87\xb5 "
                       "\xf0\x9d\x94\x84\xf0\xa0\x80\x80 ok";
    struct tokens tk = { 0 };
    char err[128], piece[256], out[4096];
    assert_int_equal(tokenizer_encode(v->t, text, strlen(text), false, false, &tk, err, sizeof err), 0);
    struct detok d;
    detok_init(&d);
    size_t o = 0;
    for (size_t i = 0; i < tk.n; i++) {
        int k = tokenizer_piece(v->t, tk.ids[i], false, piece, sizeof piece);
        assert_true(k >= 0 && k < (int)sizeof piece);
        size_t before = o;
        o += detok_push(&d, piece, (size_t)k, out + o);
        for (size_t j = before; j < o;) {
            size_t used;
            unicode_decode(out + j, o - j, &used);
            j += used;
            assert_true(j <= o);
        }
    }
    o += detok_flush(&d, out + o);
    assert_int_equal(o, strlen(text));
    assert_memory_equal(out, text, o);
    tokens_free(&tk);
}

/* ---- a small vocabulary built with the GGUF writer --------------------------------- */

enum mini_variant {
    MINI_OK,
    MINI_LLAMA_BPE,
    MINI_MODEL_LLAMA,
    MINI_PRE_UNKNOWN,
    MINI_PRE_MISSING,
    MINI_TYPES_SHORT,
    MINI_TYPES_FLOAT,
    MINI_TYPE_OUT_OF_RANGE,
    MINI_NO_TOKENS,
    MINI_NO_MERGES,
    MINI_MERGE_NO_SPACE,
    MINI_MERGE_LEADING_SPACE,
    MINI_MERGE_PART_UNKNOWN,
    MINI_BOS_OUT_OF_RANGE,
    MINI_EOS_NEGATIVE,
    MINI_PAD_OUT_OF_RANGE,
    MINI_BOS_STRING,
    MINI_BYTE_TOKEN_BAD,
    MINI_BYTE_TOKEN_SHORT,
};

/* ids: 0 a, 1 b, 2 c, 3 Ġ (space), 4 ab, 5 abc, 6 Ġab, 7 <s>, 8 </s>,
 * 9 <think>, 10 <|endoftext|>, 11 <0x41>, 12 [PAD], 13 <s><s>, 14 1, 15 2, 16 12 */
static const char *const mini_tokens[] = { "a", "b", "c", "\xc4\xa0", "ab", "abc", "\xc4\xa0" "ab", "<s>", "</s>",
                                           "<think>", "<|endoftext|>", "<0x41>", "[PAD]", "<s><s>", "1", "2", "12" };
static const int32_t mini_types[] = { 1, 1, 1, 1, 1, 1, 1, 3, 3, 4, 3, 6, 5, 3, 1, 1, 1 };
/* "b c" merges into "bc", which is not a token */
static const char *const mini_merges[] = { "a b", "ab c", "\xc4\xa0 ab", "b c", "1 2" };
#define MINI_N 17
#define MINI_N_MERGES 5

static uint8_t *test_mini_buf;   /* the bytes behind the last mini_open() */

static struct gguf *mini_open(enum mini_variant v)
{
    struct fx_gguf *w = fx_gguf_new(3);
    const char *tokens[MINI_N];
    int32_t types[MINI_N];
    const char *merges[MINI_N_MERGES];
    memcpy(tokens, mini_tokens, sizeof tokens);
    memcpy(types, mini_types, sizeof types);
    memcpy(merges, mini_merges, sizeof merges);
    size_t n_types = MINI_N;

    switch (v) {
    case MINI_TYPES_SHORT: n_types = MINI_N - 1; break;
    case MINI_TYPE_OUT_OF_RANGE: types[2] = 9; break;
    case MINI_MERGE_NO_SPACE: merges[1] = "abc"; break;
    case MINI_MERGE_LEADING_SPACE: merges[1] = " ab"; break;
    case MINI_MERGE_PART_UNKNOWN: merges[2] = "ab zz"; break;
    case MINI_BYTE_TOKEN_BAD: tokens[11] = "<0xG1>"; break;
    case MINI_BYTE_TOKEN_SHORT: tokens[11] = "<0x4>"; break;
    default: break;
    }
    fx_gguf_kv_str(w, "general.architecture", "qwen2");
    fx_gguf_kv_str(w, "tokenizer.ggml.model", v == MINI_MODEL_LLAMA ? "llama" : "gpt2");
    if (v != MINI_PRE_MISSING)
        fx_gguf_kv_str(w, "tokenizer.ggml.pre", v == MINI_PRE_UNKNOWN ? "gpt-5" : v == MINI_LLAMA_BPE ? "llama-bpe" : "qwen2");
    if (v != MINI_NO_TOKENS)
        fx_gguf_kv_arr_str(w, "tokenizer.ggml.tokens", tokens, MINI_N);
    if (v == MINI_TYPES_FLOAT) {
        float f[MINI_N] = { 0 };
        fx_gguf_kv_arr_f32(w, "tokenizer.ggml.token_type", f, MINI_N);
    } else {
        fx_gguf_kv_arr_i32(w, "tokenizer.ggml.token_type", types, n_types);
    }
    if (v != MINI_NO_MERGES)
        fx_gguf_kv_arr_str(w, "tokenizer.ggml.merges", merges, MINI_N_MERGES);
    if (v == MINI_BOS_STRING)
        fx_gguf_kv_str(w, "tokenizer.ggml.bos_token_id", "7");
    else
        fx_gguf_kv_u32(w, "tokenizer.ggml.bos_token_id", v == MINI_BOS_OUT_OF_RANGE ? 99 : 7);
    if (v == MINI_EOS_NEGATIVE)
        fx_gguf_kv_i32(w, "tokenizer.ggml.eos_token_id", -1);
    else
        fx_gguf_kv_u32(w, "tokenizer.ggml.eos_token_id", 8);
    fx_gguf_kv_u32(w, "tokenizer.ggml.padding_token_id", v == MINI_PAD_OUT_OF_RANGE ? MINI_N : 8);
    fx_gguf_kv_bool(w, "tokenizer.ggml.add_bos_token", false);

    uint8_t *buf;
    size_t len;
    assert_int_equal(fx_gguf_bytes(w, &buf, &len), 0);
    fx_gguf_free(w);
    struct gguf *g;
    char err[256];
    /* the reader keeps pointers into buf: it is freed with the handle's owner below */
    if (gguf_open_memory(buf, len, "mini.gguf", &g, err, sizeof err))
        fail_msg("mini vocabulary (variant %d) does not open: %s", (int)v, err);
    test_mini_buf = buf;
    return g;
}

static void mini_close(struct gguf *g)
{
    gguf_close(g);
    free(test_mini_buf);
    test_mini_buf = NULL;
}

static void load_rejects_malformed_vocabularies(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum mini_variant v;
        int rc;
        const char *msg;    /* must appear in the error line */
    } rows[] = {
        { "model llama", MINI_MODEL_LLAMA, ENOTSUP, "'llama'" },
        { "unknown pre-tokenizer", MINI_PRE_UNKNOWN, ENOTSUP, "unknown pre-tokenizer 'gpt-5'" },
        { "no pre-tokenizer", MINI_PRE_MISSING, ENOTSUP, "tokenizer.ggml.pre" },
        { "token_type shorter", MINI_TYPES_SHORT, EBADMSG, "17 entries but tokenizer.ggml.token_type has 16" },
        { "token_type floats", MINI_TYPES_FLOAT, EBADMSG, "token_type" },
        { "token type 9", MINI_TYPE_OUT_OF_RANGE, EBADMSG, "token 2 has type 9" },
        { "no tokens", MINI_NO_TOKENS, EBADMSG, "tokenizer.ggml.tokens" },
        { "no merges", MINI_NO_MERGES, EBADMSG, "tokenizer.ggml.merges" },
        { "merge without space", MINI_MERGE_NO_SPACE, EBADMSG, "merge 1 'abc' is not 'left right'" },
        { "merge with leading space", MINI_MERGE_LEADING_SPACE, EBADMSG, "merge 1 ' ab' is not 'left right'" },
        { "merge part not a token", MINI_MERGE_PART_UNKNOWN, EBADMSG, "'zz' is not a token" },
        { "bos out of range", MINI_BOS_OUT_OF_RANGE, EBADMSG, "special token id 99 out of range (n_vocab 17)" },
        { "eos negative", MINI_EOS_NEGATIVE, EBADMSG, "special token id -1 out of range (n_vocab 17)" },
        { "pad = n_vocab", MINI_PAD_OUT_OF_RANGE, EBADMSG, "special token id 17 out of range (n_vocab 17)" },
        { "bos a string", MINI_BOS_STRING, EBADMSG, "bos_token_id" },
        { "byte token not hex", MINI_BYTE_TOKEN_BAD, EBADMSG, "malformed byte token" },
        { "byte token one digit", MINI_BYTE_TOKEN_SHORT, EBADMSG, "malformed byte token" },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct gguf *g = mini_open(rows[i].v);
        struct tokenizer *t = (struct tokenizer *)&t;   /* must come back NULL */
        char err[256] = "";
        int rc = tokenizer_load(g, &t, err, sizeof err);
        if (rc != rows[i].rc)
            fail_msg("case %s: got %d (%s), want %d", rows[i].name, rc, err, rows[i].rc);
        if (!strstr(err, rows[i].msg))
            fail_msg("case %s: error '%s' does not say '%s'", rows[i].name, err, rows[i].msg);
        assert_null(t);
        mini_close(g);
    }
}

static void mini_vocabulary_encodes_and_decodes(void **state)
{
    (void)state;
    static const struct {
        const char *name, *text;
        bool parse_special, llama_bpe;
        int32_t ids[8];
        size_t n;
    } rows[] = {
        { "merges by rank", "abc ab", true, false, { 5, 6 }, 2 },
        { "ignore_merges", "abc ab", true, true, { 5, 6 }, 2 },
        { "non-token merge falls back to bytes", "bc", true, false, { 1, 2 }, 2 },
        { "control parsed", "ab<s>c", true, false, { 4, 7, 2 }, 3 },
        { "user-defined without parse_special", "ab<think>c", false, false, { 4, 9, 2 }, 3 },
        { "control at both ends", "</s>abc<s>", true, false, { 8, 5, 7 }, 3 },
        { "adjacent added tokens", "<think><s></s>", true, false, { 9, 7, 8 }, 3 },
        { "longest added token first", "<s><s><s>", true, false, { 13, 7 }, 2 },
        { "qwen2 splits digits one by one", "12", true, false, { 14, 15 }, 2 },
        { "llama-bpe keeps up to three", "12", true, true, { 16 }, 1 },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct gguf *g = mini_open(rows[i].llama_bpe ? MINI_LLAMA_BPE : MINI_OK);
        struct tokenizer *t;
        char err[256];
        assert_int_equal(tokenizer_load(g, &t, err, sizeof err), 0);
        mini_close(g);  /* the tokenizer keeps copies */
        struct tokens tk = { 0 };
        assert_int_equal(tokenizer_encode(t, rows[i].text, strlen(rows[i].text), false, rows[i].parse_special, &tk,
                                          err, sizeof err), 0);
        bool same = tk.n == rows[i].n;
        for (size_t j = 0; same && j < tk.n; j++)
            same = tk.ids[j] == rows[i].ids[j];
        if (!same) {
            print_ids("expected", rows[i].ids, rows[i].n);
            print_ids("got     ", tk.ids, tk.n);
            fail_msg("case %s: '%s' encodes differently", rows[i].name, rows[i].text);
        }
        tokens_free(&tk);
        tokenizer_free(t);
    }

    struct gguf *g = mini_open(MINI_OK);
    struct tokenizer *t;
    char err[256], buf[16];
    assert_int_equal(tokenizer_load(g, &t, err, sizeof err), 0);
    mini_close(g);
    assert_string_equal(tokenizer_pre_name(t), "qwen2");
    assert_false(tokenizer_add_bos(t));
    assert_int_equal(tokenizer_bos(t), 7);
    assert_int_equal(tokenizer_eos(t), 8);
    /* EOS, and <|endoftext|> by its text */
    for (int32_t id = 0; id < MINI_N; id++)
        assert_int_equal(tokenizer_is_eog(t, id), id == 8 || id == 10);
    assert_int_equal(tokenizer_piece(t, 6, false, buf, sizeof buf), 3);
    assert_memory_equal(buf, " ab", 3);
    assert_int_equal(tokenizer_piece(t, 11, false, buf, sizeof buf), 1);    /* <0x41> */
    assert_int_equal(buf[0], 'A');
    assert_int_equal(tokenizer_attr(t, 11), TOKEN_ATTR_BYTE);
    assert_int_equal(tokenizer_piece(t, 12, true, buf, sizeof buf), 0);     /* UNUSED */
    assert_int_equal(tokenizer_piece(t, 7, false, buf, sizeof buf), 0);     /* CONTROL */
    assert_int_equal(tokenizer_piece(t, 7, true, buf, sizeof buf), 3);
    assert_int_equal(tokenizer_piece(t, 9, false, buf, sizeof buf), 7);     /* USER_DEFINED */
    assert_int_equal(tokenizer_attr(t, MINI_N), TOKEN_ATTR_UNDEFINED);
    assert_int_equal(tokenizer_find(t, "abc", 3), 5);
    tokenizer_free(t);
    tokenizer_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(cases_match_llama_cpp, setup_qwen, vocab_teardown),
        cmocka_unit_test_setup_teardown(cases_match_llama_cpp, setup_llama, vocab_teardown),
        cmocka_unit_test_setup_teardown(cases_match_llama_cpp, setup_r1, vocab_teardown),
        cmocka_unit_test_setup_teardown(pieces_give_back_the_text, setup_qwen, vocab_teardown),
        cmocka_unit_test_setup_teardown(pieces_give_back_the_text, setup_llama, vocab_teardown),
        cmocka_unit_test_setup_teardown(pieces_give_back_the_text, setup_r1, vocab_teardown),
        cmocka_unit_test_setup_teardown(plain_rule_matches_no_added_token, setup_qwen, vocab_teardown),
        cmocka_unit_test_setup_teardown(plain_rule_matches_no_added_token, setup_llama, vocab_teardown),
        cmocka_unit_test_setup_teardown(plain_rule_matches_no_added_token, setup_r1, vocab_teardown),
        cmocka_unit_test_setup_teardown(vocabulary_facts_match_readme, setup_qwen, vocab_teardown),
        cmocka_unit_test_setup_teardown(vocabulary_facts_match_readme, setup_llama, vocab_teardown),
        cmocka_unit_test_setup_teardown(vocabulary_facts_match_readme, setup_r1, vocab_teardown),
        cmocka_unit_test_setup_teardown(pieces_follow_the_token_type, setup_qwen, vocab_teardown),
        cmocka_unit_test_setup_teardown(pieces_follow_the_token_type, setup_r1, vocab_teardown),
        cmocka_unit_test_setup_teardown(encode_appends_and_adds_bos, setup_llama, vocab_teardown),
        cmocka_unit_test_setup_teardown(invalid_input_bytes_encode_as_replacement, setup_qwen, vocab_teardown),
        cmocka_unit_test_setup_teardown(detok_joins_token_pieces, setup_r1, vocab_teardown),
        cmocka_unit_test(classes_match_reference_table),
        cmocka_unit_test(white_space_is_the_unicode_property),
        cmocka_unit_test(decode_is_lax_like_llama_cpp),
        cmocka_unit_test(detok_never_splits_a_character),
        cmocka_unit_test(detok_output_fits_its_bound),
        cmocka_unit_test(load_rejects_malformed_vocabularies),
        cmocka_unit_test(mini_vocabulary_encodes_and_decodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
