/* Token sampling: repetition penalty, greedy, temperature, top-k, top-p,
 * min-p and a seeded draw, over scratch allocated once per sampler. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/err.h"
#include "infer/ckd.h"
#include "infer/sampler.h"

#define SAMPLER_MAX_LAST_N (1 << 20)

struct cand {
    float v;      /* the logit, then the unnormalised probability */
    int32_t id;
};

struct sampler {
    struct sampler_params p;
    int32_t n_vocab;
    struct cand *cand;      /* (n_vocab) */
    float *w;               /* (n_vocab) unnormalised probabilities */
    uint32_t *stamp;        /* (n_vocab) penalty dedup marks, NULL when no penalty */
    uint32_t stamp_gen;
    int32_t *hist;          /* (repeat_last_n) ring of accepted ids, NULL when no penalty */
    int32_t n_hist, hist_pos;
    uint64_t rng[4];        /* xoshiro256** state */
};


void sampler_params_default(struct sampler_params *p)
{
    p->temperature = 0.6f;
    p->top_k = 0;
    p->top_p = 0.95f;
    p->min_p = 0.0f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = 0;
}

/* splitmix64 spreads one seed over the four words of xoshiro's state. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4]) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

void sampler_reset(struct sampler *s)
{
    uint64_t x = s->p.seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
    s->n_hist = 0;
    s->hist_pos = 0;
}

int sampler_init(const struct sampler_params *p, int32_t n_vocab, struct sampler **out,
                 char *err, size_t errlen)
{
    *out = NULL;
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return err_set(err, errlen, EINVAL, "temperature %g: must be 0 (greedy) or more",
                    (double)p->temperature);
    if (p->top_k < 0)
        return err_set(err, errlen, EINVAL, "top-k %d: must be 0 (off) or more", (int)p->top_k);
    if (!(p->top_p >= 0.0f && p->top_p <= 1.0f))
        return err_set(err, errlen, EINVAL, "top-p %g: must be between 0 and 1", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return err_set(err, errlen, EINVAL, "min-p %g: must be between 0 and 1", (double)p->min_p);
    if (!(p->repeat_penalty > 0.0f) || !isfinite(p->repeat_penalty))
        return err_set(err, errlen, EINVAL, "repeat penalty %g: must be more than 0",
                    (double)p->repeat_penalty);
    if (p->repeat_last_n < 0 || p->repeat_last_n > SAMPLER_MAX_LAST_N)
        return err_set(err, errlen, EINVAL, "repeat window %d: must be between 0 and %d",
                    (int)p->repeat_last_n, SAMPLER_MAX_LAST_N);
    if (n_vocab < 1)
        return err_set(err, errlen, EINVAL, "vocabulary of %d tokens", (int)n_vocab);

    struct sampler *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(err, errlen, ENOMEM, "out of memory for the sampler");
    s->p = *p;
    s->n_vocab = n_vocab;
    size_t bytes;
    int rc = ENOMEM;
    if (ckd_mul_size(&bytes, (size_t)n_vocab, sizeof *s->cand) || !(s->cand = malloc(bytes)) ||
        ckd_mul_size(&bytes, (size_t)n_vocab, sizeof *s->w) || !(s->w = malloc(bytes)))
        goto out;
    if (p->repeat_penalty != 1.0f && p->repeat_last_n > 0) {
        if (ckd_mul_size(&bytes, (size_t)n_vocab, sizeof *s->stamp) ||
            !(s->stamp = calloc(1, bytes)) ||
            !(s->hist = malloc((size_t)p->repeat_last_n * sizeof *s->hist)))
            goto out;
    }
    sampler_reset(s);
    *out = s;
    return 0;
out:
    sampler_free(s);
    return err_set(err, errlen, rc, "out of memory for a sampler over %d tokens", (int)n_vocab);
}

void sampler_free(struct sampler *s)
{
    if (!s)
        return;
    free(s->cand);
    free(s->w);
    free(s->stamp);
    free(s->hist);
    free(s);
}

void sampler_accept(struct sampler *s, int32_t id)
{
    if (!s->hist || id < 0 || id >= s->n_vocab)
        return;
    s->hist[s->hist_pos] = id;
    s->hist_pos = (s->hist_pos + 1) % s->p.repeat_last_n;
    if (s->n_hist < s->p.repeat_last_n)
        s->n_hist++;
}

static void apply_penalty(struct sampler *s, float *logits, int32_t n_vocab)
{
    if (!s->hist || s->n_hist == 0)
        return;
    if (++s->stamp_gen == 0) {   /* wrapped: old marks could collide */
        memset(s->stamp, 0, (size_t)s->n_vocab * sizeof *s->stamp);
        s->stamp_gen = 1;
    }
    float pen = s->p.repeat_penalty;
    for (int32_t i = 0; i < s->n_hist; i++) {
        int32_t id = s->hist[i];
        if (id >= n_vocab || s->stamp[id] == s->stamp_gen)
            continue;
        s->stamp[id] = s->stamp_gen;
        if (logits[id] > 0.0f)
            logits[id] /= pen;
        else
            logits[id] *= pen;
    }
}

/* The highest logit, ties to the lower id; NaN never wins. */
static int32_t argmax(const float *logits, int32_t n)
{
    int32_t best = 0;
    float bv = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (logits[i] > bv) {
            bv = logits[i];
            best = i;
        }
    return best;
}

/* The order candidates are ranked in: higher value first, then lower id. */
static bool ranks_before(const struct cand *a, const struct cand *b)
{
    return a->v > b->v || (a->v == b->v && a->id < b->id);
}

static int cmp_cand(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    return ranks_before(a, b) ? -1 : ranks_before(b, a) ? 1 : 0;
}

/* A heap whose root ranks last of its k entries. */
static void heap_sift_down(struct cand *h, int32_t k, int32_t i)
{
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, worst = i;
        if (l < k && ranks_before(&h[worst], &h[l]))
            worst = l;
        if (r < k && ranks_before(&h[worst], &h[r]))
            worst = r;
        if (worst == i)
            return;
        struct cand t = h[i];
        h[i] = h[worst];
        h[worst] = t;
        i = worst;
    }
}

static float clean(float x) { return isnan(x) ? -INFINITY : x; }

/* The k best logits into s->cand[0..k), best first. */
static void select_top_k(struct sampler *s, const float *logits, int32_t n_vocab, int32_t k)
{
    struct cand *h = s->cand;
    for (int32_t i = 0; i < k; i++)
        h[i] = (struct cand){ clean(logits[i]), i };
    for (int32_t i = k / 2 - 1; i >= 0; i--)
        heap_sift_down(h, k, i);
    for (int32_t i = k; i < n_vocab; i++) {
        struct cand c = { clean(logits[i]), i };
        if (ranks_before(&c, &h[0])) {
            h[0] = c;
            heap_sift_down(h, k, 0);
        }
    }
    qsort(h, (size_t)k, sizeof *h, cmp_cand);
}

/* One draw from c[0..n) weighted by v. */
static int32_t draw(struct sampler *s, const struct cand *c, int32_t n)
{
    double z = 0.0;
    for (int32_t i = 0; i < n; i++)
        z += c[i].v;
    double target = rng_uniform(s->rng) * z, cum = 0.0;
    int32_t last = c[0].id;
    for (int32_t i = 0; i < n; i++) {
        if (c[i].v <= 0.0f)
            continue;
        cum += c[i].v;
        last = c[i].id;
        if (cum > target)
            return c[i].id;
    }
    return last;   /* rounding left target at the very top */
}

/* Of c[0..n), sorted best first, the length of the shortest prefix whose
 * mass reaches top_p of z (at least 1). */
static int32_t nucleus(const struct cand *c, int32_t n, double z, float top_p)
{
    double want = (double)top_p * z, cum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        cum += c[i].v;
        if (cum >= want)
            return i + 1;
    }
    return n;
}

static void swap_cand(struct cand *a, struct cand *b)
{
    struct cand t = *a;
    *a = *b;
    *b = t;
}

/* Rearranges c[0..n) so that c[0..k) are its k best-ranked entries, for the
 * smallest k whose mass reaches want (at least 1; n when rounding leaves the
 * total short), and returns k.  Quickselect: O(n) expected, no sorting of
 * the rest, the same arrangement for the same input. */
static int32_t nucleus_select(struct cand *c, int32_t n, double want)
{
    int32_t lo = 0, hi = n;
    double acc = 0.0;   /* the mass of c[0..lo), which all rank before c[lo..hi) */
    if (want <= 0.0) {
        for (int32_t i = 1; i < n; i++)
            if (ranks_before(&c[i], &c[0]))
                swap_cand(&c[i], &c[0]);
        return 1;
    }
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2, last = hi - 1;
        /* median of three to c[last] */
        if (ranks_before(&c[mid], &c[lo]))
            swap_cand(&c[mid], &c[lo]);
        if (ranks_before(&c[last], &c[lo]))
            swap_cand(&c[last], &c[lo]);
        if (ranks_before(&c[mid], &c[last]))
            swap_cand(&c[mid], &c[last]);
        struct cand piv = c[last];
        int32_t store = lo;
        double upper = 0.0;
        for (int32_t i = lo; i < last; i++)
            if (ranks_before(&c[i], &piv)) {
                swap_cand(&c[i], &c[store]);
                upper += c[store].v;
                store++;
            }
        swap_cand(&c[store], &c[last]);
        if (store > lo && acc + upper >= want) {
            hi = store;
            continue;
        }
        acc += upper + piv.v;
        if (acc >= want)
            return store + 1;
        lo = store + 1;
    }
    return lo > 0 ? lo : 1;
}

int32_t sampler_sample(struct sampler *s, float *logits, int32_t n_vocab)
{
    if (n_vocab < 1 || n_vocab > s->n_vocab)
        return -1;
    apply_penalty(s, logits, n_vocab);

    int32_t best = argmax(logits, n_vocab);
    float m = logits[best];
    const struct sampler_params *p = &s->p;
    double inv_t = p->temperature > 0.0f ? 1.0 / (double)p->temperature : INFINITY;
    if (!(inv_t <= FLT_MAX) || !isfinite(m)) {   /* greedy, or a temperature that rounds to it */
        sampler_accept(s, best);
        return best;
    }
    struct cand *c = s->cand;
    int32_t n = 0;
    float min_w = p->min_p;   /* the top token has weight 1 */

    if (p->top_k > 0 && p->top_k < n_vocab) {
        n = p->top_k;
        select_top_k(s, logits, n_vocab, n);
        double z = 0.0;
        for (int32_t i = 0; i < n; i++) {
            c[i].v = expf((c[i].v - m) * (float)inv_t);
            z += c[i].v;
        }
        if (p->top_p < 1.0f)
            n = nucleus(c, n, z, p->top_p);
        while (n > 1 && c[n - 1].v < min_w)
            n--;
    } else if (p->top_p < 1.0f) {
        /* Only the tokens above a threshold are candidates.  When their mass
         * reaches top_p the nucleus lies among them; a threshold of
         * (1 - top_p) / n_vocab (relative to the top weight, 1 <= z) leaves
         * out at most 1 - top_p of the mass, so the second try always does,
         * and the last (everything with weight) covers rounding. */
        float it = (float)inv_t, *w = s->w;
        double z = 0.0;
        for (int32_t i = 0; i < n_vocab; i++)
            z += w[i] = expf((clean(logits[i]) - m) * it);
        const float tries[3] = { 1e-4f, (1.0f - p->top_p) / (float)n_vocab, 0.0f };
        for (int t = 0; t < 3; t++) {
            float thr = tries[t] > min_w ? tries[t] : min_w;
            double mass = 0.0;
            n = 0;
            for (int32_t i = 0; i < n_vocab; i++)
                if (w[i] > 0.0f && w[i] >= thr) {
                    c[n++] = (struct cand){ w[i], i };
                    mass += w[i];
                }
            if (mass >= (double)p->top_p * z || tries[t] <= min_w)
                break;
        }
        if (n == 0)
            c[n++] = (struct cand){ 1.0f, best };
        n = nucleus_select(c, n, (double)p->top_p * z);
    } else {
        for (int32_t i = 0; i < n_vocab; i++) {
            float w = expf((clean(logits[i]) - m) * (float)inv_t);
            if (w > 0.0f && w >= min_w)
                c[n++] = (struct cand){ w, i };
        }
        if (n == 0)
            c[n++] = (struct cand){ 1.0f, best };
    }
    int32_t id = draw(s, c, n);
    sampler_accept(s, id);
    return id;
}
