/* The reference comparison shared by the CPU and Vulkan conformance suites. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "infer/model.h"
#include "tests/fixture.h"
#include "tests/fx_conformance.h"

double fx_tolerance(const char *ftype)
{
    if (!strcmp(ftype, "F32"))
        return 1e-3;
    if (!strcmp(ftype, "F16"))
        return 2e-2;
    if (!strcmp(ftype, "BF16"))
        return 0.1;
    return 0.5;
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

int fx_check_reference(struct model *m, const char *name, struct fx_conformance *out, char *msg,
                       size_t cap)
{
    char rel[256], err[512];
    snprintf(rel, sizeof rel, "models/%s.ref.json", name);
    memset(out, 0, sizeof *out);
    json_t *ref = fx_load_json(fx_path(rel));
    if (!ref) {
        snprintf(msg, cap, "%s: cannot read the reference", name);
        return 1;
    }
    out->tolerance = fx_tolerance(json_string_value(json_object_get(ref, "ftype")));
    double tol = out->tolerance;
    int n_vocab = model_info(m)->n_vocab, rc = 0;
    float *logits = malloc((size_t)n_vocab * sizeof(float));
    json_t *prompts = json_object_get(ref, "prompts");
    if (n_vocab != json_integer_value(json_object_get(ref, "n_vocab")) || !logits) {
        snprintf(msg, cap, "%s: n_vocab %d differs from the reference", name, n_vocab);
        rc = 1;
    }
    for (size_t pi = 0; !rc && pi < json_array_size(prompts); pi++) {
        json_t *pr = json_array_get(prompts, pi);
        const char *pname = json_string_value(json_object_get(pr, "name"));
        json_t *jids = json_object_get(pr, "prompt_ids"), *last = json_object_get(pr, "last_logits");
        json_t *gen = json_object_get(pr, "gen_ids"), *steps = json_object_get(pr, "steps");
        size_t n = json_array_size(jids);
        int32_t *ids = malloc(n * sizeof *ids);
        for (size_t i = 0; ids && i < n; i++)
            ids[i] = (int32_t)json_integer_value(json_array_get(jids, i));
        model_clear(m);
        if (!ids || model_decode(m, ids, (int)n, logits, false, err, sizeof err)) {
            snprintf(msg, cap, "%s %s: %s", name, pname, ids ? err : "out of memory");
            free(ids);
            rc = 1;
            break;
        }
        free(ids);
        double diff = 0;
        for (int i = 0; i < n_vocab; i++) {
            double d = fabs(logits[i] - json_number_value(json_array_get(last, (size_t)i)));
            if (d > diff || d != d)
                diff = d;
        }
        if (diff > out->worst)
            out->worst = diff;
        if (!(diff <= tol)) {
            snprintf(msg, cap, "%s %s: last-position logits differ by %g > %g", name, pname, diff,
                     tol);
            rc = 1;
            break;
        }
        /* steps[i] describes the logits that chose gen_ids[i] */
        for (size_t s = 0; !rc && s < json_array_size(steps); s++) {
            json_t *st = json_array_get(steps, s);
            if (s > 0) {
                int32_t prev = (int32_t)json_integer_value(json_array_get(gen, s - 1));
                if (model_decode(m, &prev, 1, logits, false, err, sizeof err)) {
                    snprintf(msg, cap, "%s %s step %zu: %s", name, pname, s, err);
                    rc = 1;
                    break;
                }
            }
            out->steps++;
            if (json_number_value(json_object_get(st, "gap")) > 2 * tol) {
                out->top1_checked++;
                int got = argmax(logits, n_vocab);
                int want = (int)json_integer_value(json_object_get(st, "top1"));
                if (got != want) {
                    snprintf(msg, cap, "%s %s step %zu: top-1 %d, reference %d", name, pname, s,
                             got, want);
                    rc = 1;
                }
            }
        }
    }
    free(logits);
    json_decref(ref);
    return rc;
}
