/* Token sampler: turns one position's logits into a token id.  The chain, in
 * order: repetition penalty (llama.cpp semantics: for each distinct id among
 * the last repeat_last_n accepted tokens, a positive logit is divided by the
 * penalty and a negative one multiplied), then greedy when temperature is 0,
 * else temperature, top-k, top-p, min-p (the Hugging Face order, which is what
 * DeepSeek's recommended "temperature 0.6, top-p 0.95" means), then one draw
 * from the kept tokens with a seeded xoshiro256** generator: the same seed,
 * parameters and logits give the same ids (on one build and libm).  Greedy ties go to
 * the lower id.  All scratch is allocated by sampler_init; sampler_sample never
 * allocates.  A sampler is used by one thread at a time.
 *
 * Usage: sampler_params_default(&p); p.seed = ...; sampler_init(&p, n_vocab,
 * &s, err, sizeof err); sampler_accept() each prompt token; then per step
 * id = sampler_sample(s, logits, n_vocab) (which accepts id itself). */
#ifndef PONDER_SAMPLER_H
#define PONDER_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

struct sampler;

struct sampler_params {
    float temperature;      /* 0 = greedy; default 0.6 */
    int32_t top_k;          /* keep the k most likely; 0 = off (default) */
    float top_p;            /* keep the smallest set with mass >= top_p; 1 = off; default 0.95 */
    float min_p;            /* keep p >= min_p * p_max; 0 = off (default) */
    float repeat_penalty;   /* 1 = off (default) */
    int32_t repeat_last_n;  /* how many accepted tokens the penalty looks at; default 64 */
    uint64_t seed;          /* used as is: the caller picks a random one and records it */
};

void sampler_params_default(struct sampler_params *p);

/* 0, or EINVAL (a parameter out of range: temperature < 0 or not finite,
 * top_k < 0, top_p or min_p outside [0, 1], repeat_penalty <= 0,
 * repeat_last_n outside [0, 1 << 20], n_vocab < 1), ENOMEM. */
int sampler_init(const struct sampler_params *p, int32_t n_vocab, struct sampler **out,
                 char *err, size_t errlen);
void sampler_free(struct sampler *s);   /* NULL is a no-op */

/* Forgets the accepted tokens and restarts the generator from the seed. */
void sampler_reset(struct sampler *s);

/* Records id in the repetition window (prompt tokens; sampled ones are
 * recorded by sampler_sample).  Ids outside the vocabulary are ignored. */
void sampler_accept(struct sampler *s, int32_t id);

/* Picks a token from logits[0..n_vocab) and accepts it.  logits is modified
 * in place (the repetition penalty).  Returns -1 only when n_vocab is not
 * between 1 and the n_vocab given to sampler_init.  NaN logits count as
 * -infinity; when every logit is -infinity the result is id 0. */
int32_t sampler_sample(struct sampler *s, float *logits, int32_t n_vocab);

#endif
