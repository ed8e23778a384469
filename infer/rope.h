/* Rotary position embedding angles, formed once for every backend the way
 * ggml forms them (theta = p * theta_scale^i in float, divided by the
 * frequency factor, blended by YaRN when ext_factor is set), so that the CPU
 * and the device rotate by the same numbers. */
#ifndef PONDER_ROPE_H
#define PONDER_ROPE_H

#include "backend.h"

/* out: for t < n, i < n_rot/2: out[(t*(n_rot/2) + i)*2] = cos, [.. + 1] = sin
 * (magnitude scaled as ggml scales it) of position pos0 + t, pair i. */
void rope_cos_sin(const struct rope_params *p, int pos0, int n, float *out);

#endif
