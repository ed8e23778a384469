/* vkpath: times a model on the Vulkan backend with the float and the int8
 * (integer dot-product) matrix paths, alternating A and B in the same
 * minutes: per round each path loads the model, evaluates a prompt of P
 * tokens and generates N more one at a time.  Prints prompt and generation
 * tokens/s per round and the medians.
 *   vkpath MODEL [-p P] [-n N] [-r ROUNDS] [--device D]
 * model_params.gpu_int_dot picks the path (vk_options.force_int_dot and
 * no_int_dot). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infer/model.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One load, prompt and generation; 0 or an errno with the message in err. */
static int run(const char *path, int device, bool int8, int n_p, int n_g, double *pp, double *tg,
               char *err, size_t errlen)
{
    struct model_params p = {.n_ctx = n_p + n_g + 16, .n_threads = 2, .kv_type = KV_TYPE_F16,
                             .max_isa = CPU_ISA_COUNT, .backend = MODEL_BACKEND_VULKAN,
                             .device = device, .n_gpu_layers = -1, .mmap_only = true,
                             .gpu_int_dot = int8 ? 1 : -1};
    struct model *m = NULL;
    int rc = model_load(path, &p, &m, err, errlen);
    if (rc)
        return rc;
    int n_vocab = model_info(m)->n_vocab;
    int32_t *ids = malloc((size_t)(n_p > 1 ? n_p : 1) * sizeof *ids);
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    if (!ids || !logits) {
        rc = ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < n_p; i++)
        ids[i] = (int32_t)((1000 + i * 7919) % n_vocab);
    int32_t warm = 1;   /* pipelines and first-use uploads outside the timing */
    if ((rc = model_decode(m, &warm, 1, logits, false, err, errlen)))
        goto out;
    model_clear(m);
    double t0 = now();
    if ((rc = model_decode(m, ids, n_p, logits, false, err, errlen)))
        goto out;
    double t1 = now();
    for (int i = 0; i < n_g; i++) {
        int32_t next = (int32_t)((17 + i * 31) % n_vocab);
        if ((rc = model_decode(m, &next, 1, logits, false, err, errlen)))
            goto out;
    }
    double t2 = now();
    *pp = n_p / (t1 - t0);
    *tg = n_g / (t2 - t1);
out:
    free(ids);
    free(logits);
    model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int n_p = 64, n_g = 16, rounds = 3, device = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-p") && i + 1 < argc)
            n_p = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc)
            n_g = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--device") && i + 1 < argc)
            device = atoi(argv[++i]);
        else if (!path && argv[i][0] != '-')
            path = argv[i];
        else
            path = NULL, i = argc;
    }
    if (!path || n_p < 1 || n_g < 1 || rounds < 1 || rounds > 64) {
        fprintf(stderr, "usage: vkpath MODEL [-p P] [-n N] [-r ROUNDS] [--device D]\n");
        return 2;
    }
    double pp[2][64], tg[2][64];
    char err[512];
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < 2; k++) {
            int path_k = (r % 2) ^ k;   /* ABBA: each path goes first every other round */
            if (run(path, device, path_k == 1, n_p, n_g, &pp[path_k][r], &tg[path_k][r], err,
                    sizeof err)) {
                fprintf(stderr, "vkpath: %s\n", err);
                return 1;
            }
            printf("round %d %-5s pp%d %.3f t/s  tg%d %.3f t/s\n", r + 1,
                   path_k ? "int8" : "float", n_p, pp[path_k][r], n_g, tg[path_k][r]);
            fflush(stdout);
        }
    }
    double ratio_tg[64], ratio_pp[64];
    for (int r = 0; r < rounds; r++) {
        ratio_tg[r] = tg[1][r] / tg[0][r];
        ratio_pp[r] = pp[1][r] / pp[0][r];
    }
    printf("median: float pp %.3f tg %.3f | int8 pp %.3f tg %.3f | int8/float per round: pp %.2f "
           "tg %.2f\n", median(pp[0], rounds), median(tg[0], rounds), median(pp[1], rounds),
           median(tg[1], rounds), median(ratio_pp, rounds), median(ratio_tg, rounds));
    return 0;
}
