/* ponder bench: prompt processing and generation speed, like llama-bench,
 * beside the memory read bandwidth measured in the same run. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "app/advisor.h"
#include "app/cli.h"
#include "history/store.h"
#include "infer/cpu/membw.h"
#include "infer/model.h"
#include "infer/vulkan/vk.h"

enum { OPT_PP = 'p', OPT_REPS = 'r', OPT_JSON = OPT_CMD_BASE, OPT_NO_MEMBW, OPT_RECORD };

static int bench_exec(int argc, char **argv);

const struct cmd cmd_bench = {
    .name = "bench",
    .summary = "prompt and generation speed, beside the memory bandwidth",
    .usage = "usage: ponder bench -m MODEL [-p 512] [-n 128] [-r 3] [--json] [--no-membw]\n"
             "       [--record [--db PATH]]\n\n"
             "Times prompt processing of -p tokens and generation of -n tokens, -r times\n"
             "each, from an empty cache, and prints mean and standard deviation in\n"
             "tokens/s with the model, its type and size, the backend, the kernels and the\n"
             "threads.  It also measures this machine's memory read bandwidth with the same\n"
             "threads and prints the generation bound it implies (bandwidth / bytes read per\n"
             "token) and the fraction of it reached.  -p 0 or -n 0 skips a test.  --json\n"
             "prints one object per test with every sample.  --record keeps the result\n"
             "(a CPU run with the bandwidth measured) in the history store, where ponder fit\n"
             "and ponder models use it as measured and to calibrate their predictions.\n",
    .exec = bench_exec,
};

static void stats(const double *v, int n, double *mean, double *sd)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++)
        q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* --record: the measurement as `ponder fit --check` keeps it (CPU runs
 * only: the bound of a split run needs the device's bandwidth too). */
static void bench_record(const struct cli_opts *o, const struct model_info *in, double bw,
                         double tg, double pp)
{
    if (strcmp(in->backend, "cpu") || bw <= 0) {
        fprintf(stderr, "ponder: --record keeps CPU runs with the bandwidth measured only\n");
        return;
    }
    char path[4096], dbp[4096], err[512] = "";
    const char *file = cli_find_model(o, o->model, path, sizeof path);
    const char *db = o->db;
    if (!db && store_default_path(getenv("XDG_DATA_HOME"), getenv("HOME"), dbp, sizeof dbp, err,
                                  sizeof err)) {
        fprintf(stderr, "ponder: --record: %s\n", err);
        return;
    }
    struct store *s = NULL;
    if (store_open(db ? db : dbp, STORE_CREATE, &s, err, sizeof err)) {
        fprintf(stderr, "ponder: --record: %s\n", err);
        return;
    }
    struct advisor_machine mc = {.n_threads = in->n_threads, .host_gbs = bw, .cpu_eff = 1,
                                 .pp_eff = 1};
    struct advisor_estimate e;
    if (advisor_file_estimate(file, 4096, &mc, NULL, &e, err, sizeof err) ||
        advisor_record(s, file, &e, &mc, tg, pp, err, sizeof err))
        fprintf(stderr, "ponder: --record: %s\n", err);
    store_close(s);
}

static int bench_exec(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONG_OPTIONS,
        {"n-prompt", required_argument, 0, OPT_PP},
        {"n-gen", required_argument, 0, 'n'},
        {"reps", required_argument, 0, OPT_REPS},
        {"json", no_argument, 0, OPT_JSON},
        {"no-membw", no_argument, 0, OPT_NO_MEMBW},
        {"record", no_argument, 0, OPT_RECORD},
        {0, 0, 0, 0},
    };
    struct cli_opts o;
    cli_defaults(&o);
    long n_pp = 512, n_tg = 128, reps = 3;
    bool json = false, membw = true, record = false;
    double means[2] = {0, 0};   /* pp, tg */
    int c, rc;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "p:r:", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_PP:
            if (cli_parse_int(optarg, 0, 1 << 20, &n_pp))
                return cli_usage_error(&cmd_bench, "-p wants a number of tokens, not '%s'", optarg);
            break;
        case 'n':
            if (cli_parse_int(optarg, 0, 1 << 20, &n_tg))
                return cli_usage_error(&cmd_bench, "-n wants a number of tokens, not '%s'", optarg);
            break;
        case OPT_REPS:
            if (cli_parse_int(optarg, 1, 1000, &reps))
                return cli_usage_error(&cmd_bench, "-r wants a number from 1, not '%s'", optarg);
            break;
        case OPT_JSON: json = true; break;
        case OPT_NO_MEMBW: membw = false; break;
        case OPT_RECORD: record = true; break;
        case '?': return cli_bad_option(&cmd_bench, argc, argv);
        default:
            rc = cli_common(&cmd_bench, c, optarg, &o);
            if (rc < 0) {
                fputs(cmd_bench.usage, stdout);
                return 0;
            }
            if (rc)
                return rc;
        }
    }
    if (optind < argc)
        return cli_usage_error(&cmd_bench, "unexpected argument '%s'", argv[optind]);
    if (!o.model)
        return cli_usage_error(&cmd_bench, "which model? give -m MODEL");
    if (n_pp == 0 && n_tg == 0)
        return cli_usage_error(&cmd_bench, "-p and -n are both 0: nothing to measure");
    if (o.n_ctx == 0)
        o.n_ctx = (int)(n_pp > n_tg + 1 ? n_pp : n_tg + 1) + 16;

    struct model *m = NULL;
    int32_t *ids = NULL;
    double *samples = NULL;
    json_t *out = json ? json_array() : NULL;
    int status = 1;
    char err[512] = "";
    if (cli_load_model(&o, KV_TYPE_F16, &m))
        goto out;
    const struct model_info *in = model_info(m);
    long n_ids = n_pp > n_tg ? n_pp : n_tg;
    ids = malloc((size_t)(n_ids + 1) * sizeof *ids);
    samples = malloc((size_t)reps * sizeof *samples);
    if (!ids || !samples) {
        cli_error("out of memory");
        goto out;
    }
    srand(1234);
    for (long i = 0; i <= n_ids; i++)
        ids[i] = rand() % in->n_vocab;

    double bw = 0;
    if (membw && (rc = membw_read(in->n_threads, 0, 3, &bw, err, sizeof err))) {
        cli_error("measuring the memory bandwidth: %s", err);
        goto out;
    }
    double bound = bw > 0 ? bw * 1e9 / (double)in->token_bytes : 0;
    if (!json) {
        printf("model: %s (%s, %s), %.2f GiB, %.2f B parameters, %.2f GB read per token\n",
               in->name[0] ? in->name : o.model, in->arch, in->ftype,
               (double)in->file_size / (1 << 30), (double)in->n_params / 1e9,
               (double)in->token_bytes / 1e9);
        printf("backend: %s (%s), %d threads", in->backend, in->device, in->n_threads);
        if (bw > 0)
            printf("; memory read bandwidth %.1f GB/s -> generation bound %.1f t/s", bw, bound);
        printf("\n\n| %-10s | %-8s | %8s | %-7s | %7s | %-6s | %16s |\n", "model", "type", "size",
               "backend", "threads", "test", "t/s");
        printf("|------------|----------|----------|---------|---------|--------|------------------|\n");
    }
    /* warm up: page the weights in, size the arena */
    if ((rc = model_decode(m, ids, 1, NULL, false, err, sizeof err))) {
        cli_error("%s", err);
        goto out;
    }
    for (int test = 0; test < 2; test++) {
        bool pp = test == 0;
        long n = pp ? n_pp : n_tg;
        if (n == 0)
            continue;
        const struct backend *dev = model_device(m);
        struct vk_stats vs0 = {0}, vs1 = {0};
        if (dev && vk_backend_is(dev))
            vk_backend_stats(dev, &vs0);
        for (long r = 0; r < reps; r++)
            if ((rc = advisor_bench_once(m, ids, (int)n, pp, &samples[r], err, sizeof err))) {
                cli_error("%s", err);
                goto out;
            }
        if (o.verbose && dev && vk_backend_is(dev)) {  /* the device's work per pass */
            vk_backend_stats(dev, &vs1);
            double passes = (double)(pp ? reps : reps * n);
            fprintf(stderr, "%s%ld vulkan, per pass: %.1f dispatches issued in %.3f ms, %.1f "
                    "operations recorded, %.1f barriers, %.1f submissions (%.1f replayed), %.2f ms "
                    "waiting for the device\n", pp ? "pp" : "tg", n,
                    (double)(vs1.dispatches - vs0.dispatches) / passes,
                    (double)(vs1.record_ns - vs0.record_ns) / passes / 1e6,
                    (double)(vs1.recorded - vs0.recorded) / passes,
                    (double)(vs1.barriers - vs0.barriers) / passes,
                    (double)(vs1.submits - vs0.submits) / passes,
                    (double)(vs1.replays - vs0.replays) / passes,
                    (double)(vs1.wait_ns - vs0.wait_ns) / passes / 1e6);
        }
        double mean, sd;
        stats(samples, (int)reps, &mean, &sd);
        means[pp ? 0 : 1] = mean;
        char name[32];
        snprintf(name, sizeof name, "%s%ld", pp ? "pp" : "tg", n);
        if (json) {
            json_t *s = json_array();
            for (long r = 0; r < reps; r++)
                json_array_append_new(s, json_real(samples[r]));
            json_t *obj = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:i, s:s, s:I, "
                                    "s:f, s:f, s:o}",
                                    "model", in->name, "arch", in->arch, "type", in->ftype,
                                    "size_bytes", (json_int_t)in->file_size, "params",
                                    (json_int_t)in->n_params, "bytes_per_token",
                                    (json_int_t)in->token_bytes, "backend", in->backend,
                                    "device", in->device, "threads", in->n_threads, "test",
                                    name, "n_tokens", (json_int_t)n, "tps_mean", mean, "tps_sd",
                                    sd, "samples", s);
            if (bw > 0) {
                json_object_set_new(obj, "membw_gbs", json_real(bw));
                if (!pp)
                    json_object_set_new(obj, "bound_fraction", json_real(mean / bound));
            }
            json_array_append_new(out, obj);
        } else {
            char tps[48];
            snprintf(tps, sizeof tps, "%.2f ± %.2f", mean, sd);
            printf("| %-10.10s | %-8s | %5.2f GiB | %-7s | %7d | %-6s | %16s |\n", in->arch,
                   in->ftype, (double)in->file_size / (1 << 30), in->backend, in->n_threads, name,
                   tps);
            if (!pp && bw > 0)
                printf("\n%s: %.0f %% of the bandwidth bound (%.1f t/s at %.1f GB/s)\n", name,
                       100.0 * mean / bound, bound, bw);
        }
        fflush(stdout);
    }
    if (json) {
        char *s = json_dumps(out, JSON_INDENT(1));
        if (s)
            puts(s);
        free(s);
    }
    if (record)
        bench_record(&o, in, bw, means[1], means[0]);
    status = 0;
out:
    json_decref(out);
    free(samples);
    free(ids);
    model_free(m);
    return status;
}
