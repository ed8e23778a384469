/* Rotary position embedding angles for every backend. */
#include <math.h>

#include "infer/rope.h"

static float yarn_corr_dim(int n_rot, int n_ctx_orig, float n_turns, float base)
{
    return (float)n_rot * logf((float)n_ctx_orig / (n_turns * 2.0f * (float)M_PI)) /
           (2.0f * logf(base));
}

void rope_cos_sin(const struct rope_params *p, int pos0, int n, float *out)
{
    int half = p->n_rot / 2;
    float theta_scale = powf(p->freq_base, -2.0f / (float)p->n_rot);
    float corr0 = 0, corr1 = 0;
    if (p->ext_factor != 0.0f) {
        float start = floorf(yarn_corr_dim(p->n_rot, p->n_ctx_orig, p->beta_fast, p->freq_base));
        float end = ceilf(yarn_corr_dim(p->n_rot, p->n_ctx_orig, p->beta_slow, p->freq_base));
        corr0 = start > 0 ? start : 0;
        corr1 = end < (float)(p->n_rot - 1) ? end : (float)(p->n_rot - 1);
    }
    for (int t = 0; t < n; t++) {
        float theta_base = (float)(pos0 + t);
        float *cs = out + (size_t)t * (size_t)half * 2;
        for (int i = 0; i < half; i++) {
            float ff = p->freq_factors ? p->freq_factors[i] : 1.0f;
            float theta_extrap = theta_base / ff;
            float theta = p->freq_scale * theta_extrap;
            float mscale = p->attn_factor;
            if (p->ext_factor != 0.0f) {
                float y = ((float)i - corr0) / fmaxf(0.001f, corr1 - corr0);
                float ramp = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * p->ext_factor;
                theta = theta * (1.0f - ramp) + theta_extrap * ramp;
                mscale *= 1.0f + 0.1f * logf(1.0f / p->freq_scale);
            }
            cs[2 * i] = cosf(theta) * mscale;
            cs[2 * i + 1] = sinf(theta) * mscale;
            theta_base *= theta_scale;
        }
    }
}
