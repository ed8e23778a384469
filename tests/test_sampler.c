/* Tests for the sampler: greedy, seeds, the drawn distribution, top-k,
 * top-p, min-p, the repetition penalty and parameter checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "infer/sampler.h"
#include "tests/fixture.h"

static struct sampler *make(const struct sampler_params *p, int32_t n_vocab)
{
    struct sampler *s = NULL;
    char err[256] = "";
    int rc = sampler_init(p, n_vocab, &s, err, sizeof err);
    if (rc != 0)
        fail_msg("sampler_init: %d %s", rc, err);
    return s;
}

static struct sampler_params params(float temp, int32_t top_k, float top_p, float min_p,
                                    uint64_t seed)
{
    struct sampler_params p;
    sampler_params_default(&p);
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = seed;
    return p;
}

/* Draws n times from a copy of logits; counts[id]++ per draw. */
static void draw_counts(struct sampler *s, const float *logits, int32_t n_vocab, int n,
                        long *counts)
{
    float *buf = malloc((size_t)n_vocab * sizeof *buf);
    assert_non_null(buf);
    for (int i = 0; i < n; i++) {
        memcpy(buf, logits, (size_t)n_vocab * sizeof *buf);
        int32_t id = sampler_sample(s, buf, n_vocab);
        assert_true(id >= 0 && id < n_vocab);
        counts[id]++;
    }
    free(buf);
}

static void test_defaults_are_r1_recommendation(void **state)
{
    (void)state;
    struct sampler_params p;
    sampler_params_default(&p);
    assert_close(p.temperature, 0.6, 1e-7);
    assert_close(p.top_p, 0.95, 1e-7);
    assert_int_equal(p.top_k, 0);
    assert_close(p.min_p, 0.0, 0);
    assert_close(p.repeat_penalty, 1.0, 0);
}

static void test_greedy_picks_highest_and_ties_go_to_lower_id(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        float logits[6];
        int32_t want;
    } cases[] = {
        { "max first", { 5, 1, 2, 3, 4, 0 }, 0 },
        { "max last", { 0, 1, 2, 3, 4, 5 }, 5 },
        { "tie low id wins", { 0, 7, 3, 7, 7, 1 }, 1 },
        { "all equal", { 2, 2, 2, 2, 2, 2 }, 0 },
        { "negative", { -5, -1, -3, -1.5f, -9, -2 }, 1 },
        { "nan never wins", { NAN, 1, NAN, 0, -1, 0.5f }, 1 },
        { "all -inf", { -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY }, 0 },
    };
    struct sampler_params p = params(0.0f, 0, 0.95f, 0.0f, 1);
    struct sampler *s = make(&p, 6);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float l[6];
        memcpy(l, cases[i].logits, sizeof l);
        int32_t got = sampler_sample(s, l, 6);
        if (got != cases[i].want)
            fail_msg("case %s: got %d, want %d", cases[i].name, got, cases[i].want);
    }
    sampler_free(s);
}

static void test_tiny_temperature_is_greedy(void **state)
{
    (void)state;
    static const float temps[] = { 1e-30f, 1e-40f, 1.4e-45f };
    for (size_t t = 0; t < sizeof temps / sizeof temps[0]; t++) {
        struct sampler_params p = params(temps[t], 0, 0.95f, 0.0f, 5);
        struct sampler *s = make(&p, 4);
        for (int i = 0; i < 100; i++) {
            float l[4] = { 1.0f, 3.0f, 3.0f - 1e-6f, -2.0f };
            int32_t id = sampler_sample(s, l, 4);
            if (id != 1)
                fail_msg("temperature %g: drew %d", (double)temps[t], id);
        }
        sampler_free(s);
    }
}

static void test_same_seed_same_draws_other_seed_differs(void **state)
{
    (void)state;
    enum { V = 50, N = 500 };
    float logits[V], l[V];
    for (int i = 0; i < V; i++)
        logits[i] = (float)((i * 37) % 11) * 0.3f;
    struct sampler_params p = params(1.0f, 0, 1.0f, 0.0f, 42);
    struct sampler *a = make(&p, V), *b = make(&p, V);
    p.seed = 43;
    struct sampler *c = make(&p, V);
    int32_t first[N];
    int same_as_c = 0;
    for (int i = 0; i < N; i++) {
        memcpy(l, logits, sizeof l);
        int32_t x = sampler_sample(a, l, V);
        memcpy(l, logits, sizeof l);
        int32_t y = sampler_sample(b, l, V);
        memcpy(l, logits, sizeof l);
        int32_t z = sampler_sample(c, l, V);
        assert_int_equal(x, y);
        same_as_c += x == z;
        first[i] = x;
    }
    assert_true(same_as_c < N / 2);
    /* sampler_reset replays the same sequence */
    sampler_reset(a);
    for (int i = 0; i < N; i++) {
        memcpy(l, logits, sizeof l);
        assert_int_equal(sampler_sample(a, l, V), first[i]);
    }
    sampler_free(a);
    sampler_free(b);
    sampler_free(c);
}

/* Pearson's chi-square of counts against probabilities. */
static double chi_square(const long *counts, const double *prob, int k, long n)
{
    double chi = 0.0;
    for (int i = 0; i < k; i++) {
        double e = prob[i] * (double)n;
        chi += (counts[i] - e) * (counts[i] - e) / e;
    }
    return chi;
}

static void test_draws_follow_softmax_of_logits_over_temperature(void **state)
{
    (void)state;
    static const float logits[5] = { 1.0f, 2.0f, 3.0f, 0.0f, -1.0f };
    static const float temps[] = { 1.0f, 0.6f, 2.0f };
    enum { N = 200000 };
    for (size_t t = 0; t < sizeof temps / sizeof temps[0]; t++) {
        struct sampler_params p = params(temps[t], 0, 1.0f, 0.0f, 1234 + t);
        struct sampler *s = make(&p, 5);
        long counts[5] = { 0 };
        draw_counts(s, logits, 5, N, counts);
        double prob[5], z = 0.0;
        for (int i = 0; i < 5; i++)
            z += prob[i] = exp(logits[i] / temps[t]);
        for (int i = 0; i < 5; i++)
            prob[i] /= z;
        /* 4 degrees of freedom: P(chi2 > 18.47) = 0.001 */
        double chi = chi_square(counts, prob, 5, N);
        if (chi > 18.47)
            fail_msg("temperature %g: chi-square %g > 18.47", (double)temps[t], chi);
        sampler_free(s);
    }
}

static void test_top_k_1_equals_greedy(void **state)
{
    (void)state;
    enum { V = 1000 };
    float logits[V], l[V];
    struct sampler_params pk = params(1.5f, 1, 1.0f, 0.0f, 7), pg = params(0, 0, 1, 0, 7);
    struct sampler *k1 = make(&pk, V), *g = make(&pg, V);
    unsigned x = 12345;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < V; i++) {
            x = x * 1103515245u + 12345u;
            logits[i] = (float)((x >> 16) % 64) / 8.0f;   /* many ties */
        }
        memcpy(l, logits, sizeof l);
        int32_t a = sampler_sample(k1, l, V);
        memcpy(l, logits, sizeof l);
        int32_t b = sampler_sample(g, l, V);
        if (a != b)
            fail_msg("round %d: top-k 1 gave %d, greedy %d", round, a, b);
    }
    sampler_free(k1);
    sampler_free(g);
}

static void test_top_k_keeps_only_k_best(void **state)
{
    (void)state;
    static const float logits[8] = { 0.5f, 3.0f, 1.0f, 2.9f, 2.8f, 0.0f, 2.8f, 1.5f };
    static const struct {
        int32_t k;
        unsigned allowed;   /* bit i: id i may be drawn */
    } cases[] = {
        { 1, 1u << 1 },
        { 2, 1u << 1 | 1u << 3 },
        { 3, 1u << 1 | 1u << 3 | 1u << 4 },   /* 4 and 6 tie: lower id */
        { 4, 1u << 1 | 1u << 3 | 1u << 4 | 1u << 6 },
        { 8, 0xff },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct sampler_params p = params(3.0f, cases[c].k, 1.0f, 0.0f, 99);
        struct sampler *s = make(&p, 8);
        long counts[8] = { 0 };
        draw_counts(s, logits, 8, 20000, counts);
        for (int i = 0; i < 8; i++) {
            bool allowed = cases[c].allowed >> i & 1;
            if (allowed != (counts[i] > 0))
                fail_msg("k %d: id %d drawn %ld times", (int)cases[c].k, i, counts[i]);
        }
        sampler_free(s);
    }
}

static void test_top_p_and_min_p_exclude_the_tail(void **state)
{
    (void)state;
    static const double probs[5] = { 0.45, 0.3, 0.15, 0.07, 0.03 };
    static const struct {
        const char *name;
        int32_t top_k;
        float top_p, min_p;
        unsigned allowed;
    } cases[] = {
        { "top-p 0.4 keeps the top", 0, 0.4f, 0.0f, 0x01 },
        { "top-p 0.7 keeps 2", 0, 0.7f, 0.0f, 0x03 },
        { "top-p 0.8 keeps 3", 0, 0.8f, 0.0f, 0x07 },
        { "top-p 0.95 keeps 4", 0, 0.95f, 0.0f, 0x0f },
        { "top-p 1 keeps all", 0, 1.0f, 0.0f, 0x1f },
        { "top-p 0 keeps the top", 0, 0.0f, 0.0f, 0x01 },
        { "min-p 0.1: p >= 0.045", 0, 1.0f, 0.1f, 0x0f },
        { "min-p 0.5: p >= 0.225", 0, 1.0f, 0.5f, 0x03 },
        { "min-p 1: only the top", 0, 1.0f, 1.0f, 0x01 },
        { "top-p and min-p intersect", 0, 0.95f, 0.2f, 0x07 },
        /* top-k 3 renormalises to 0.5, 0.33, 0.17: top-p 0.8 keeps 2 */
        { "top-k then top-p", 3, 0.8f, 0.0f, 0x03 },
        { "top-k then min-p", 3, 1.0f, 0.3f, 0x07 },
    };
    float logits[5];
    for (int i = 0; i < 5; i++)
        logits[i] = (float)log(probs[i]);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct sampler_params p =
            params(1.0f, cases[c].top_k, cases[c].top_p, cases[c].min_p, 5 + c);
        struct sampler *s = make(&p, 5);
        long counts[5] = { 0 };
        draw_counts(s, logits, 5, 20000, counts);
        for (int i = 0; i < 5; i++) {
            bool allowed = cases[c].allowed >> i & 1;
            if (allowed != (counts[i] > 0))
                fail_msg("case %s: id %d drawn %ld times", cases[c].name, i, counts[i]);
        }
        sampler_free(s);
    }
}

static void test_top_p_renormalises_what_it_keeps(void **state)
{
    (void)state;
    static const float logits[4] = { 2.0f, 1.0f, 0.0f, -1.0f };
    double w[4], z = 0;
    for (int i = 0; i < 4; i++)
        w[i] = exp(logits[i]);
    double full = w[0] + w[1] + w[2] + w[3];
    (void)full;   /* w0/full = 0.64, (w0+w1)/full = 0.88: top-p 0.85 keeps 2 */
    z = w[0] + w[1];
    double prob[2] = { w[0] / z, w[1] / z };
    enum { N = 100000 };
    struct sampler_params p = params(1.0f, 0, 0.85f, 0.0f, 2024);
    struct sampler *s = make(&p, 4);
    long counts[4] = { 0 };
    draw_counts(s, logits, 4, N, counts);
    assert_int_equal(counts[2] + counts[3], 0);
    double chi = chi_square(counts, prob, 2, N);   /* 1 dof: 10.83 at 0.001 */
    if (chi > 10.83)
        fail_msg("chi-square %g > 10.83", chi);
    sampler_free(s);
}

/* A large vocabulary where the tail holds most of the mass, so the first
 * threshold is not enough: the nucleus must still be exact. */
static void test_top_p_exact_when_tail_is_heavy(void **state)
{
    (void)state;
    enum { V = 151936 };
    float *logits = malloc(V * sizeof *logits);
    assert_non_null(logits);
    /* id 0 weight 1, every other weight 2e-5 (below the 1e-4 first try):
     * tail mass ~3.04, so top-p 0.95 needs the top and most of the tail,
     * the tail in id order (equal weights: lower id first). */
    logits[0] = 0.0f;
    for (int i = 1; i < V; i++)
        logits[i] = logf(2e-5f);
    const float top_p = 0.95f;
    double w_tail = exp((double)logits[1]);
    double z = 1.0 + (V - 1) * w_tail, want = top_p * z, cum = 1.0;
    int32_t last = 0;
    while (cum < want)
        cum += w_tail, last++;
    struct sampler_params p = params(1.0f, 0, top_p, 0.0f, 77);
    struct sampler *s = make(&p, V);
    long *counts = calloc(V, sizeof *counts);
    assert_non_null(counts);
    draw_counts(s, logits, V, 2000, counts);
    int32_t max_id = 0;
    for (int32_t i = 0; i < V; i++)
        if (counts[i])
            max_id = i;
    /* the cut is exact up to float summation: allow a few ids */
    if (max_id > last + 2 || max_id < last - 2000)
        fail_msg("highest id drawn %d, nucleus ends at %d", max_id, last);
    assert_true(counts[0] > 2000 / 5);   /* weight 1 of ~2.9 kept */
    free(counts);
    sampler_free(s);
    free(logits);
}

struct ranked {
    double w;
    int32_t id;
};

static int cmp_ranked(const void *pa, const void *pb)
{
    const struct ranked *a = pa, *b = pb;
    if (a->w != b->w)
        return a->w > b->w ? -1 : 1;
    return a->id < b->id ? -1 : 1;
}

/* Random peaked and flat vocabularies: every drawn id lies in the nucleus
 * found by sorting, and the nucleus's top tokens do get drawn. */
static void test_top_p_matches_sorted_nucleus_on_random_logits(void **state)
{
    (void)state;
    enum { V = 20000, DRAWS = 3000 };
    static const struct {
        const char *name;
        float scale, temp, top_p;
    } cases[] = {
        { "peaked", 4.0f, 0.6f, 0.95f },
        { "flat", 0.3f, 1.0f, 0.9f },
        { "middling", 1.5f, 0.8f, 0.5f },
    };
    float *logits = malloc(V * sizeof *logits);
    struct ranked *r = malloc(V * sizeof *r);
    bool *in = malloc(V * sizeof *in);
    long *counts = malloc(V * sizeof *counts);
    assert_true(logits && r && in && counts);
    unsigned x = 99;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int i = 0; i < V; i++) {
            double g = 0;   /* sum of uniforms: roughly normal */
            for (int j = 0; j < 4; j++) {
                x = x * 1103515245u + 12345u;
                g += (double)((x >> 8) & 0xffff) / 65536.0 - 0.5;
            }
            logits[i] = (float)(g * cases[c].scale * 3.0);
        }
        float m = logits[0];
        for (int i = 1; i < V; i++)
            m = logits[i] > m ? logits[i] : m;
        double z = 0;
        for (int i = 0; i < V; i++) {
            r[i].w = expf((logits[i] - m) * (float)(1.0 / cases[c].temp));
            r[i].id = i;
            z += r[i].w;
        }
        qsort(r, V, sizeof *r, cmp_ranked);
        memset(in, 0, V * sizeof *in);
        double cum = 0;
        int k = 0;
        while (k < V && cum < cases[c].top_p * z)
            cum += r[k].w, in[r[k].id] = true, k++;
        /* allow the next id too: float sums may round the cut either way */
        if (k < V)
            in[r[k].id] = true;
        struct sampler_params p = params(cases[c].temp, 0, cases[c].top_p, 0.0f, 3 + c);
        struct sampler *s = make(&p, V);
        memset(counts, 0, V * sizeof *counts);
        draw_counts(s, logits, V, DRAWS, counts);
        for (int i = 0; i < V; i++)
            if (counts[i] && !in[i])
                fail_msg("case %s: id %d drawn %ld times, outside the nucleus of %d",
                         cases[c].name, i, counts[i], k);
        if (counts[r[0].id] == 0)
            fail_msg("case %s: the top token was never drawn", cases[c].name);
        sampler_free(s);
    }
    free(logits);
    free(r);
    free(in);
    free(counts);
}

static void test_repetition_penalty_divides_positive_multiplies_negative(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int32_t last_n;
        float penalty;
        int32_t accepted[6];
        int n_accepted;
        float in[5], want[5];
    } cases[] = {
        { "each distinct id once", 64, 2.0f, { 0, 1, 0, 0 }, 4,
          { 2.0f, -2.0f, 1.0f, 0.5f, 0.0f }, { 1.0f, -4.0f, 1.0f, 0.5f, 0.0f } },
        { "zero is multiplied (stays 0)", 64, 1.5f, { 4, 3 }, 2,
          { 2.0f, -2.0f, 1.0f, 3.0f, 0.0f }, { 2.0f, -2.0f, 1.0f, 2.0f, 0.0f } },
        { "window keeps the last n", 2, 2.0f, { 0, 1, 2 }, 3,
          { 2.0f, -2.0f, 1.0f, 0.5f, 0.0f }, { 2.0f, -4.0f, 0.5f, 0.5f, 0.0f } },
        { "penalty below 1 rewards", 64, 0.5f, { 0, 1 }, 2,
          { 2.0f, -2.0f, 1.0f, 0.5f, 0.0f }, { 4.0f, -1.0f, 1.0f, 0.5f, 0.0f } },
        { "penalty 1 changes nothing", 64, 1.0f, { 0, 1, 2 }, 3,
          { 2.0f, -2.0f, 1.0f, 0.5f, 0.0f }, { 2.0f, -2.0f, 1.0f, 0.5f, 0.0f } },
        { "out of range ids ignored", 64, 2.0f, { -1, 5, 100, 2 }, 4,
          { 2.0f, -2.0f, 1.0f, 0.5f, 0.0f }, { 2.0f, -2.0f, 0.5f, 0.5f, 0.0f } },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct sampler_params p = params(0.0f, 0, 1.0f, 0.0f, 1);
        p.repeat_penalty = cases[c].penalty;
        p.repeat_last_n = cases[c].last_n;
        struct sampler *s = make(&p, 5);
        for (int i = 0; i < cases[c].n_accepted; i++)
            sampler_accept(s, cases[c].accepted[i]);
        float l[5];
        memcpy(l, cases[c].in, sizeof l);
        int32_t id = sampler_sample(s, l, 5);
        for (int i = 0; i < 5; i++)
            if (l[i] != cases[c].want[i])
                fail_msg("case %s: logit %d = %g, want %g", cases[c].name, i, (double)l[i],
                         (double)cases[c].want[i]);
        int32_t want_id = 0;
        for (int i = 1; i < 5; i++)
            if (cases[c].want[i] > cases[c].want[want_id])
                want_id = i;
        if (id != want_id)
            fail_msg("case %s: sampled %d, want %d", cases[c].name, id, want_id);
        sampler_free(s);
    }
}

static void test_sampled_tokens_enter_the_window(void **state)
{
    (void)state;
    struct sampler_params p = params(0.0f, 0, 1.0f, 0.0f, 1);
    p.repeat_penalty = 4.0f;
    struct sampler *s = make(&p, 3);
    /* greedy picks 0, whose logit is then divided: next time 1 wins */
    float l[3] = { 3.0f, 2.0f, 1.0f };
    assert_int_equal(sampler_sample(s, l, 3), 0);
    float l2[3] = { 3.0f, 2.0f, 1.0f };
    assert_int_equal(sampler_sample(s, l2, 3), 1);
    assert_close(l2[0], 0.75, 0);
    sampler_reset(s);   /* forgets the window */
    float l3[3] = { 3.0f, 2.0f, 1.0f };
    assert_int_equal(sampler_sample(s, l3, 3), 0);
    sampler_free(s);
}

static void test_bad_parameters_are_rejected(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        float temp, top_p, min_p, penalty;
        int32_t top_k, last_n, n_vocab;
    } cases[] = {
        { "negative temperature", -0.1f, 0.95f, 0, 1, 0, 64, 10 },
        { "nan temperature", NAN, 0.95f, 0, 1, 0, 64, 10 },
        { "infinite temperature", INFINITY, 0.95f, 0, 1, 0, 64, 10 },
        { "top-p above 1", 0.6f, 1.01f, 0, 1, 0, 64, 10 },
        { "negative top-p", 0.6f, -0.5f, 0, 1, 0, 64, 10 },
        { "min-p above 1", 0.6f, 0.95f, 1.5f, 1, 0, 64, 10 },
        { "zero penalty", 0.6f, 0.95f, 0, 0, 0, 64, 10 },
        { "negative top-k", 0.6f, 0.95f, 0, 1, -1, 64, 10 },
        { "negative window", 0.6f, 0.95f, 0, 1, 0, -1, 10 },
        { "huge window", 0.6f, 0.95f, 0, 1, 0, (1 << 20) + 1, 10 },
        { "empty vocabulary", 0.6f, 0.95f, 0, 1, 0, 64, 0 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct sampler_params p = params(cases[c].temp, cases[c].top_k, cases[c].top_p,
                                         cases[c].min_p, 1);
        p.repeat_penalty = cases[c].penalty;
        p.repeat_last_n = cases[c].last_n;
        struct sampler *s = (struct sampler *)&p;   /* must be reset to NULL */
        char err[256] = "";
        int rc = sampler_init(&p, cases[c].n_vocab, &s, err, sizeof err);
        if (rc != EINVAL || s != NULL || err[0] == 0)
            fail_msg("case %s: rc %d, err '%s'", cases[c].name, rc, err);
    }
}

static void test_vocab_larger_than_init_is_refused(void **state)
{
    (void)state;
    struct sampler_params p = params(0.6f, 0, 0.95f, 0, 1);
    struct sampler *s = make(&p, 4);
    float l[5] = { 0, 1, 2, 3, 4 };
    assert_int_equal(sampler_sample(s, l, 5), -1);
    assert_int_equal(sampler_sample(s, l, 0), -1);
    assert_true(sampler_sample(s, l, 3) >= 0);
    sampler_free(s);
    sampler_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_r1_recommendation),
        cmocka_unit_test(test_greedy_picks_highest_and_ties_go_to_lower_id),
        cmocka_unit_test(test_tiny_temperature_is_greedy),
        cmocka_unit_test(test_same_seed_same_draws_other_seed_differs),
        cmocka_unit_test(test_draws_follow_softmax_of_logits_over_temperature),
        cmocka_unit_test(test_top_k_1_equals_greedy),
        cmocka_unit_test(test_top_k_keeps_only_k_best),
        cmocka_unit_test(test_top_p_and_min_p_exclude_the_tail),
        cmocka_unit_test(test_top_p_renormalises_what_it_keeps),
        cmocka_unit_test(test_top_p_exact_when_tail_is_heavy),
        cmocka_unit_test(test_top_p_matches_sorted_nucleus_on_random_logits),
        cmocka_unit_test(test_repetition_penalty_divides_positive_multiplies_negative),
        cmocka_unit_test(test_sampled_tokens_enter_the_window),
        cmocka_unit_test(test_bad_parameters_are_rejected),
        cmocka_unit_test(test_vocab_larger_than_init_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
