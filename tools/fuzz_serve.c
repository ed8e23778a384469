/* Fuzzes ponder serve's request parser (app/serve_req.c).
 *
 * libFuzzer: clang -fsanitize=fuzzer,address,undefined -DPONDER_LIBFUZZER -I.
 *   tools/fuzz_serve.c app/serve_req.c -ljansson
 * Standalone (the default build, and `make` puts it in build/tools/): runs a
 * seeded corpus of valid requests, malformed JSON, huge numbers, deep nesting
 * and invalid UTF-8, then -n N inputs (default 100000, seed -s SEED): half
 * random mutations of the corpus, half generated requests with the real
 * field names and values of random type (some of those mutated too); checks the parser's contract on every input and prints one line:
 * "fuzz_serve: N inputs (A accepted, B rejected), 0 contract failures". */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/serve_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long n_ok, n_rejected, n_broken;

/* Parses data as both kinds of request and checks what the header promises. */
static void check_one(const uint8_t *data, size_t size)
{
    for (int kind = 0; kind < 2; kind++) {
        struct serve_req r;
        char param[64], err[512];
        err[0] = 0;
        int rc = serve_req_parse((enum serve_req_kind)kind, (const char *)data, size, 160, &r,
                                 param, sizeof param, err, sizeof err);
        bool good = true;
        if (rc == 0) {
            n_ok++;
            good = r.n_msgs >= 1 && r.msgs && r.n_stop <= SERVE_REQ_MAX_STOP &&
                   (r.max_tokens == -1 || (r.max_tokens >= 1 && r.max_tokens <= 160)) &&
                   r.temperature >= 0 && r.temperature <= 2;
            for (size_t i = 0; good && i < r.n_msgs; i++)
                good = r.msgs[i].content != NULL;
            for (size_t i = 0; good && i < r.n_stop; i++)
                good = r.stop[i] && r.stop[i][0];
        } else {
            n_rejected++;
            good = (rc == EBADMSG || rc == EINVAL || rc == ENOMEM) && err[0] &&
                   memchr(err, 0, sizeof err) && r.n_msgs == 0 && !r.msgs;
        }
        if (!good) {
            n_broken++;
            if (n_broken <= 5)
                fprintf(stderr, "fuzz_serve: contract broken (rc %d: %s) on %zu bytes\n", rc,
                        err, size);
        }
        serve_req_free(&r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_one(data, size);
    return 0;
}

#ifndef PONDER_LIBFUZZER

static const char *const corpus[] = {
    "{\"model\":\"ponder-demo\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
    "{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\","
    "\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}],"
    "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"temperature\":0.6,"
    "\"top_p\":0.95,\"max_tokens\":24,\"seed\":42,\"stop\":[\"\\n\",\"=\"],"
    "\"think_budget\":16,\"think_mode\":\"hard\",\"think\":\"off\"}",
    "{\"prompt\":\"Calculate 1 + 31.\",\"max_tokens\":8,\"stop\":\"x\",\"n\":1}",
    "{\"prompt\":[\"one\"],\"top_k\":40,\"min_p\":0.05,\"repeat_penalty\":1.1}",
    "{\"messages\":[{\"role\":\"assistant\",\"content\":null},{\"role\":\"user\","
    "\"content\":\"x\"}],\"max_completion_tokens\":5}",
    "",
    "{",
    "}",
    "[]",
    "null",
    "\"string\"",
    "{\"messages\":",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"messages\":[]}",
    "{\"max_tokens\":1e999,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
    "{\"max_tokens\":99999999999999999999999999,\"messages\":[]}",
    "{\"temperature\":-1e308,\"seed\":-1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
    "{\"temperature\":1e-400,\"seed\":9223372036854775807,\"messages\":[{\"role\":\"user\","
    "\"content\":\"x\"}]}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"\\u0000\"}]}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}]}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\xc0\xaf\"}]}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80 \xf4\x90\x80\x80\"}]}",
    "{\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
    "{\"stop\":[\"\"],\"prompt\":\"p\"}",
    "{\"stop\":[1],\"prompt\":\"p\"}",
    "{\"think\":7,\"think_mode\":\"medium\",\"prompt\":\"p\"}",
    "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
    "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
    "\xef\xbb\xbf{\"prompt\":\"bom\"}",
};

/* xorshift64*: the same seed gives the same run. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void nested(char *buf, size_t n, char open, char close)
{
    for (size_t i = 0; i < n / 2; i++)
        buf[i] = open;
    for (size_t i = n / 2; i < n; i++)
        buf[i] = close;
}

static void generated(void)
{
    static const size_t depths[] = {10, 1000, 4000, 100000};
    for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++) {
        size_t n = depths[d] * 2;
        char *buf = malloc(n + 64);
        if (!buf)
            return;
        nested(buf, n, '[', ']');
        check_one((const uint8_t *)buf, n);
        int k = snprintf(buf, 64, "{\"messages\":");
        nested(buf + k, n, '[', ']');
        check_one((const uint8_t *)buf, (size_t)k + n);
        for (size_t i = 0; i + 2 <= n; i += 2)
            memcpy(buf + i, "{\"", 2);
        check_one((const uint8_t *)buf, n);   /* unterminated nested keys */
        free(buf);
    }
    /* a long string and a long number */
    size_t n = 1 << 20;
    char *s = malloc(n + 128);
    if (s) {
        int k = snprintf(s, 128, "{\"prompt\":\"");
        memset(s + k, 'a', n);
        memcpy(s + k + n, "\"}", 2);
        check_one((const uint8_t *)s, (size_t)k + n + 2);
        k = snprintf(s, 128, "{\"prompt\":\"p\",\"max_tokens\":");
        memset(s + k, '9', n);
        memcpy(s + k + n, "}", 1);
        check_one((const uint8_t *)s, (size_t)k + n + 1);
        free(s);
    }
}

static const char *const splices[] = {
    "{", "}", "[", "]", "\"", ",", ":", "null", "true", "1e999", "-0", "18446744073709551616",
    "\\u", "\\ud83d\\ude00", "\xff", "\xc3", "\xe2\x82", "\"messages\"", "\"role\"",
    "\"content\"", "\"stop\"", "\"max_tokens\"", "\"prompt\"", "\"user\"", "0.5",
};

static size_t mutate(uint64_t *seed, uint8_t *buf, size_t len, size_t cap)
{
    int n = 1 + (int)(rnd(seed) % 4);
    for (int m = 0; m < n; m++) {
        size_t at = len ? rnd(seed) % (len + 1) : 0;
        switch (rnd(seed) % 5) {
        case 0:   /* flip a bit */
            if (len && at < len)
                buf[at] ^= (uint8_t)(1u << (rnd(seed) % 8));
            break;
        case 1:   /* a random byte */
            if (len < cap) {
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = (uint8_t)rnd(seed);
                len++;
            }
            break;
        case 2: { /* delete a run */
            size_t k = len - at < 8 ? len - at : 1 + rnd(seed) % 8;
            memmove(buf + at, buf + at + k, len - at - k);
            len -= k;
            break;
        }
        default: { /* splice a token */
            const char *t = splices[rnd(seed) % (sizeof splices / sizeof splices[0])];
            size_t k = strlen(t);
            if (len + k <= cap) {
                memmove(buf + at + k, buf + at, len - at);
                memcpy(buf + at, t, k);
                len += k;
            }
            break;
        }
        }
    }
    return len;
}

/* ---- structured inputs: valid JSON objects with the request's field names
 * and values of random type and size, so the field checks are reached ---- */

struct gen {
    char *p;
    size_t len, cap;
    uint64_t *seed;
};

static void put(struct gen *g, const char *s)
{
    size_t n = strlen(s);
    if (g->len + n < g->cap) {
        memcpy(g->p + g->len, s, n);
        g->len += n;
    }
}

static const char *const keys[] = {
    "model", "messages", "prompt", "stream", "stream_options", "include_usage", "temperature",
    "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens", "max_completion_tokens", "seed",
    "stop", "n", "think_budget", "think_mode", "think", "role", "content", "type", "text",
};
static const char *const scalars[] = {
    "0", "1", "-1", "2", "0.5", "1e308", "-1e308", "1e-320", "9223372036854775807",
    "-9223372036854775808", "160", "161", "true", "false", "null", "\"\"", "\"user\"",
    "\"system\"", "\"assistant\"", "\"developer\"", "\"tool\"", "\"text\"", "\"soft\"",
    "\"hard\"", "\"off\"", "\"on\"", "\"ponder-demo\"", "\"\\u00e9\\ud83d\\ude00\"",
    "\"a\\nb\"", "\"\xc3\xa9\"",
};

static void gen_value(struct gen *g, int depth)
{
    uint64_t r = rnd(g->seed) % 10;
    if (depth > 4 || r < 5) {
        put(g, scalars[rnd(g->seed) % (sizeof scalars / sizeof scalars[0])]);
    } else if (r < 8) {
        put(g, "[");
        int n = (int)(rnd(g->seed) % 6);
        for (int i = 0; i < n; i++) {
            if (i)
                put(g, ",");
            gen_value(g, depth + 1);
        }
        put(g, "]");
    } else {
        put(g, "{");
        int n = (int)(rnd(g->seed) % 4);
        for (int i = 0; i < n; i++) {
            if (i)
                put(g, ",");
            put(g, "\"");
            put(g, keys[rnd(g->seed) % (sizeof keys / sizeof keys[0])]);
            put(g, "\":");
            gen_value(g, depth + 1);
        }
        put(g, "}");
    }
}

/* A request: usually one valid message list or prompt, then random fields. */
static size_t gen_request(uint64_t *seed, char *buf, size_t cap)
{
    struct gen g = {buf, 0, cap, seed};
    put(&g, "{");
    switch (rnd(seed) % 3) {
    case 0: put(&g, "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"); break;
    case 1: put(&g, "\"prompt\":\"hi\""); break;
    default: put(&g, "\"n\":1"); break;
    }
    int n = (int)(rnd(seed) % 5);
    for (int i = 0; i < n; i++) {
        put(&g, ",\"");
        put(&g, keys[rnd(seed) % (sizeof keys / sizeof keys[0])]);
        put(&g, "\":");
        gen_value(&g, 0);
    }
    put(&g, "}");
    return g.len;
}

int main(int argc, char **argv)
{
    long iterations = 100000;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc)
            iterations = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10) | 1;
        else {
            fprintf(stderr, "usage: fuzz_serve [-n ITERATIONS] [-s SEED]\n");
            return 2;
        }
    }
    size_t nc = sizeof corpus / sizeof corpus[0];
    for (size_t i = 0; i < nc; i++)
        check_one((const uint8_t *)corpus[i], strlen(corpus[i]));
    generated();
    enum { CAP = 4096 };
    uint8_t buf[CAP];
    for (long it = 0; it < iterations; it++) {
        size_t len;
        if (it % 2) {
            len = gen_request(&seed, (char *)buf, CAP);
        } else {
            const char *c = corpus[rnd(&seed) % nc];
            len = strlen(c);
            memcpy(buf, c, len);
        }
        if (rnd(&seed) % 4 == 0 || !(it % 2))
            len = mutate(&seed, buf, len, CAP);
        check_one(buf, len);
    }
    printf("fuzz_serve: %lu inputs (%lu accepted, %lu rejected), %lu contract failures\n",
           n_ok + n_rejected, n_ok, n_rejected, n_broken);
    return n_broken ? 1 : 0;
}

#endif
