/* ponder fit: which R1 model fits this machine and how fast it runs, for
 * every published model and quantization (app/advisor.h); --check MODEL
 * measures one file and prints predicted against measured. */
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

enum { OPT_JSON = OPT_CMD_BASE, OPT_CHECK, OPT_NO_RECORD };

static int fit_exec(int argc, char **argv);

const struct cmd cmd_fit = {
    .name = "fit",
    .summary = "which R1 model fits here, and how fast it runs",
    .usage =
        "usage: ponder fit [--ctx N] [--json] [--backend cpu|auto] [-t N] [--db PATH]\n"
        "       ponder fit --check MODEL [-n 32] [-p 128] [--no-record]\n\n"
        "For every DeepSeek R1 model people download (R1-Distill-Qwen 1.5B, 7B, 14B,\n"
        "32B, R1-Distill-Llama 8B, 70B and the 671B R1) at each quantization: the file\n"
        "size by llama-quantize's type rules, the memory needed at --ctx tokens\n"
        "(default 4096: weights + f16 KV cache + scratch), where it runs on this\n"
        "machine (all on the device / N of M layers / experts in RAM / CPU only / does\n"
        "not fit), and the predicted generation (tg) and prompt (pp) speed.  Speeds\n"
        "come from this machine's memory read bandwidth (and the Vulkan device's),\n"
        "the bytes each token reads, and an efficiency calibrated from the\n"
        "measurements kept in the history store; 'm' marks a speed measured here,\n"
        "'*' a model whose file is on disk (models folder and model_dirs).\n\n"
        "--check MODEL runs a short bench of that file (-p prompt tokens, -n generated\n"
        "tokens, 5 times, with a bandwidth probe either side of each generation test:\n"
        "medians) and prints predicted against measured; the measurement is\n"
        "kept for later estimates unless --no-record.\n",
    .exec = fit_exec,
};

static const char *human_bytes(uint64_t b, char *buf, size_t cap)
{
    double gb = (double)b / 1e9;
    if (gb >= 100)
        snprintf(buf, cap, "%.0f GB", gb);
    else if (gb >= 1)
        snprintf(buf, cap, "%.2f GB", gb);
    else
        snprintf(buf, cap, "%.0f MB", (double)b / 1e6);
    return buf;
}

static const char *speed(double tps, char *buf, size_t cap)
{
    if (tps <= 0)
        snprintf(buf, cap, "-");
    else if (tps >= 100)
        snprintf(buf, cap, "%.0f", tps);
    else if (tps >= 10)
        snprintf(buf, cap, "%.1f", tps);
    else
        snprintf(buf, cap, "%.2f", tps);
    return buf;
}

static struct store *open_store(const struct cli_opts *o)
{
    char err[512] = "";
    struct store *s;
    if (advisor_open_store(o->db, &s, err, sizeof err))
        fprintf(stderr, "ponder: %s; measured speeds are not used\n", err);
    return s;
}

/* The machine lines (stderr in --json mode is not used: JSON carries them). */
static void print_machine(const struct advisor_machine *mc, int n_ctx)
{
    char b1[32], b2[32];
    printf("This machine: %d threads (%s), %s of RAM (%s usable), memory read %.1f GB/s\n",
           mc->n_threads, mc->isa, human_bytes(mc->host_bytes, b1, sizeof b1),
           human_bytes(mc->host_budget, b2, sizeof b2), mc->host_gbs);
    if (mc->device[0])
        printf("Device: %s, %s budget, %s\n", mc->device,
               human_bytes(mc->device_budget, b1, sizeof b1),
               mc->device_gbs > 0 ? "" : mc->device_note);
    else
        printf("Device: none (%s)\n", mc->device_note);
    if (mc->device_gbs > 0)
        printf("Device memory: %.1f GB/s (copy probe)\n", mc->device_gbs);
    printf("Prediction: tg = 1 / (bytes per token / (bandwidth x %.0f %%) + kernel time per "
           "byte (Q4_K: %.0f GB/s))", mc->cpu_eff * 100, mc->cpu_stream_gbs[QUANT_TYPE_Q4_K]);
    if (mc->device_gbs > 0)
        printf(", x %.0f %% (device)", mc->device_eff * 100);
    printf(",\n            %s;\n            pp = FLOPs per token / %.0f GFLOP/s (CPU kernels) x %.0f %%.  "
           "Context %d tokens.\n\n",
           mc->eff_source, mc->cpu_gflops, mc->pp_eff * 100, n_ctx);
}

/* The file estimates of the models on disk, to mark the table's rows. */
struct disk {
    char **paths;
    size_t n;
    struct advisor_estimate *e;
};

static void disk_load(struct disk *d, const struct cli_opts *o, const struct advisor_machine *mc,
                      int n_ctx)
{
    memset(d, 0, sizeof *d);
    if (advisor_find_models(o->config.model_dirs, &d->paths, &d->n) || !d->n)
        return;
    d->e = calloc(d->n, sizeof *d->e);
    if (!d->e)
        return;
    for (size_t i = 0; i < d->n; i++) {
        char err[256];
        if (advisor_file_estimate(d->paths[i], n_ctx, mc, NULL, &d->e[i], err, sizeof err))
            d->e[i].n_layer = -1;
    }
}

static void disk_free(struct disk *d)
{
    advisor_models_free(d->paths, d->n);
    free(d->e);
}

/* The first file of this shape and type on disk, or NULL. */
static const char *disk_match(const struct disk *d, const struct advisor_shape *s,
                              const char *quant)
{
    for (size_t i = 0; d->e && i < d->n; i++)
        if (d->e[i].n_layer == s->n_layer && d->e[i].n_embd == s->n_embd &&
            !strcmp(d->e[i].arch, s->arch) && !strcmp(d->e[i].type, quant))
            return d->paths[i];
    return NULL;
}

static json_t *machine_json(const struct advisor_machine *mc)
{
    return json_pack("{s:i, s:s, s:I, s:I, s:f, s:f, s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:s}",
                     "threads", mc->n_threads, "isa", mc->isa, "ram_bytes",
                     (json_int_t)mc->host_bytes, "ram_budget_bytes", (json_int_t)mc->host_budget,
                     "membw_gbs", mc->host_gbs, "cpu_gflops", mc->cpu_gflops, "device",
                     mc->device, "device_note", mc->device_note, "device_budget_bytes",
                     (json_int_t)mc->device_budget, "device_membw_gbs", mc->device_gbs,
                     "cpu_efficiency", mc->cpu_eff, "device_efficiency", mc->device_eff,
                     "pp_efficiency", mc->pp_eff, "efficiency_source", mc->eff_source);
}

static json_t *estimate_json(const struct advisor_estimate *e)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:f, s:I, s:I, s:i, s:s, s:b, s:i, s:i, s:b, "
                     "s:b, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:b}",
                     "model", e->name, "arch", e->arch, "quant", e->type, "params",
                     (json_int_t)e->n_params, "file_bytes", (json_int_t)e->file_bytes, "file_gb",
                     (double)e->file_bytes / 1e9, "mem_bytes", (json_int_t)e->mem_bytes,
                     "kv_bytes_per_token", (json_int_t)e->kv_bytes_per_token, "ctx", e->n_ctx,
                     "where", e->plan.where, "fits", e->plan.fits, "n_layer", e->plan.n_layer,
                     "n_gpu_layers", e->plan.n_gpu_layers, "output_on_gpu",
                     e->plan.output_on_gpu, "experts_on_cpu", e->plan.experts_on_cpu,
                     "gpu_bytes", (json_int_t)e->plan.gpu_bytes, "host_bytes",
                     (json_int_t)e->plan.host_bytes, "gpu_token_bytes",
                     (json_int_t)e->plan.gpu_token_bytes, "host_token_bytes",
                     (json_int_t)e->plan.host_token_bytes, "tg_tps", e->tg_tps, "pp_tps",
                     e->pp_tps, "tg_predicted", e->tg_pred, "pp_predicted", e->pp_pred,
                     "measured", e->measured);
}

static int fit_table(const struct cli_opts *o, int n_ctx, bool json, unsigned flags)
{
    struct store *store = open_store(o);
    struct advisor_machine mc;
    char err[512] = "";
    int status = 1;
    if (advisor_machine_probe(&mc, flags, o->n_threads, store, err, sizeof err)) {
        if (store)
            store_close(store);
        return cli_error("measuring this machine: %s", err);
    }
    struct disk d;
    disk_load(&d, o, &mc, n_ctx);
    json_t *rows = json ? json_array() : NULL;
    if (!json) {
        print_machine(&mc, n_ctx);
        printf("%-22s %-7s %8s %9s  %-31s %8s %8s\n", "MODEL", "QUANT", "FILE", "MEMORY", "WHERE",
               "TG t/s", "PP t/s");
    }
    for (int i = 0; i < advisor_n_shapes(); i++) {
        const struct advisor_shape *s = advisor_shape(i);
        for (const char *const *q = s->quants; *q; q++) {
            struct advisor_estimate e;
            if (advisor_shape_estimate(s, *q, n_ctx, &mc, store, &e, err, sizeof err)) {
                cli_error("%s", err);
                goto out;
            }
            const char *disk = disk_match(&d, s, *q);
            if (json) {
                json_t *r = estimate_json(&e);
                json_object_set_new(r, "on_disk", disk ? json_string(disk) : json_null());
                json_array_append_new(rows, r);
                continue;
            }
            char f[32], m[32], tg[32], pp[32], tgm[40], ppm[40];
            snprintf(tgm, sizeof tgm, "%s%s", speed(e.tg_tps, tg, sizeof tg),
                     e.measured ? " m" : "  ");
            snprintf(ppm, sizeof ppm, "%s%s", speed(e.pp_tps, pp, sizeof pp),
                     e.measured ? " m" : "  ");
            printf("%-22s %-7s %8s %9s  %-31s %8s %8s%s\n", q == s->quants ? s->name : "", *q,
                   human_bytes(e.file_bytes, f, sizeof f), human_bytes(e.mem_bytes, m, sizeof m),
                   e.plan.where, tgm, ppm, disk ? "  *" : "");
        }
    }
    if (json) {
        json_t *top = json_pack("{s:o, s:i, s:o}", "machine", machine_json(&mc), "ctx", n_ctx,
                                "models", rows);
        rows = NULL;
        char *s = json_dumps(top, JSON_INDENT(1));
        json_decref(top);
        if (!s) {
            cli_error("out of memory");
            goto out;
        }
        puts(s);
        free(s);
    } else {
        printf("\nm: measured here (ponder fit --check)   *: the file is on disk\n");
    }
    status = 0;
out:
    json_decref(rows);
    disk_free(&d);
    if (store)
        store_close(store);
    return status;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int fit_check(struct cli_opts *o, long n_pp, long n_tg, bool json, bool record,
                     unsigned flags)
{
    char path[4096], err[512] = "";
    const char *file = cli_find_model(o, o->model, path, sizeof path);
    struct store *store = record ? open_store(o) : NULL;
    struct advisor_machine mc;
    struct model *m = NULL;
    int32_t *ids = NULL;
    int status = 1;
    /* the prediction from a fresh calibration would just repeat an older
     * measurement of this file, so --check predicts from the rules alone
     * unless earlier measurements of other files calibrated them */
    if (advisor_machine_probe(&mc, flags, o->n_threads, store, err, sizeof err)) {
        cli_error("measuring this machine: %s", err);
        goto out;
    }
    if (o->n_ctx == 0)
        o->n_ctx = (int)(n_pp > n_tg ? n_pp : n_tg) + 16;
    struct advisor_estimate e;
    if (advisor_file_estimate(file, o->n_ctx, &mc, NULL, &e, err, sizeof err)) {
        cli_error("%s", err);
        goto out;
    }
    if (cli_load_model(o, KV_TYPE_F16, &m))
        goto out;
    const struct model_info *in = model_info(m);
    long n_ids = n_pp > n_tg ? n_pp : n_tg;
    ids = malloc((size_t)(n_ids + 1) * sizeof *ids);
    if (!ids) {
        cli_error("out of memory");
        goto out;
    }
    srand(1234);
    for (long i = 0; i <= n_ids; i++)
        ids[i] = rand() % in->n_vocab;
    if (model_decode(m, ids, 1, NULL, false, err, sizeof err)) {    /* warm up */
        cli_error("%s", err);
        goto out;
    }
    /* the machine is shared with whatever else runs: the bandwidth is
     * probed just before and just after each generation test (their mean is
     * that repetition's), and the medians are compared */
    enum { REPS = 5 };
    double tgs[REPS] = {0}, pps[REPS] = {0}, bws[REPS] = {0}, before, after;
    for (int r = 0; r < REPS; r++) {
        if (n_pp > 0 && advisor_bench_once(m, ids, (int)n_pp, true, &pps[r], err, sizeof err)) {
            cli_error("%s", err);
            goto out;
        }
        if (membw_read(mc.n_threads, (size_t)256 << 20, 3, &before, err, sizeof err)) {
            cli_error("measuring the memory bandwidth: %s", err);
            goto out;
        }
        if (n_tg > 0 && advisor_bench_once(m, ids, (int)n_tg, false, &tgs[r], err, sizeof err)) {
            cli_error("%s", err);
            goto out;
        }
        if (membw_read(mc.n_threads, (size_t)256 << 20, 3, &after, err, sizeof err)) {
            cli_error("measuring the memory bandwidth: %s", err);
            goto out;
        }
        bws[r] = (before + after) / 2;
    }
    double tg = median(tgs, REPS), pp = median(pps, REPS);
    mc.host_gbs = median(bws, REPS);
    e.tg_pred = advisor_estimate_tg(&e, &mc);
    double tg_err = tg > 0 ? (e.tg_pred - tg) / tg * 100 : 0;
    double pp_err = pp > 0 ? (e.pp_pred - pp) / pp * 100 : 0;
    if (json) {
        json_t *r = estimate_json(&e);
        json_object_set_new(r, "file", json_string(file));
        json_object_set_new(r, "tg_measured", json_real(tg));
        json_object_set_new(r, "pp_measured", json_real(pp));
        json_object_set_new(r, "tg_error_pct", json_real(tg_err));
        json_object_set_new(r, "pp_error_pct", json_real(pp_err));
        json_object_set_new(r, "backend", json_string(in->backend));
        json_object_set_new(r, "machine", machine_json(&mc));
        char *s = json_dumps(r, JSON_INDENT(1));
        json_decref(r);
        if (s)
            puts(s);
        free(s);
    } else {
        char b[32];
        printf("%s: %s %s, %s, %s here (%s, %d threads)\n", file, e.arch, e.type,
               human_bytes(e.file_bytes, b, sizeof b), e.plan.where, in->backend, in->n_threads);
        printf("memory read %.1f GB/s, %.2f GB read per token, efficiency %.0f %% (%s)\n",
               mc.host_gbs, (double)(e.plan.host_token_bytes + e.plan.gpu_token_bytes) / 1e9,
               mc.cpu_eff * 100, mc.eff_source);
        printf("%-10s %10s %10s %8s\n", "TEST", "PREDICTED", "MEASURED", "ERROR");
        if (n_tg > 0)
            printf("tg%-8ld %10.2f %10.2f %+7.0f %%\n", n_tg, e.tg_pred, tg, tg_err);
        if (n_pp > 0)
            printf("pp%-8ld %10.2f %10.2f %+7.0f %%\n", n_pp, e.pp_pred, pp, pp_err);
    }
    if (store && advisor_record(store, file, &e, &mc, tg, pp, err, sizeof err))
        fprintf(stderr, "ponder: keeping the measurement: %s\n", err);
    status = 0;
out:
    free(ids);
    model_free(m);
    if (store)
        store_close(store);
    return status;
}

static int fit_exec(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONG_OPTIONS,
        {"json", no_argument, 0, OPT_JSON},
        {"check", required_argument, 0, OPT_CHECK},
        {"no-record", no_argument, 0, OPT_NO_RECORD},
        {"n-prompt", required_argument, 0, 'p'},
        {0, 0, 0, 0},
    };
    struct cli_opts o;
    cli_defaults(&o);
    bool json = false, record = true, ctx_given = false;
    long n_pp = 128, n_tg = 32;
    const char *check = NULL;
    int c, rc;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "p:", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: json = true; break;
        case OPT_CHECK: check = optarg; break;
        case OPT_NO_RECORD: record = false; break;
        case 'p':
            if (cli_parse_int(optarg, 0, 1 << 16, &n_pp))
                return cli_usage_error(&cmd_fit, "-p wants a number of tokens, not '%s'", optarg);
            break;
        case 'n':
            if (cli_parse_int(optarg, 0, 1 << 16, &n_tg))
                return cli_usage_error(&cmd_fit, "-n wants a number of tokens, not '%s'", optarg);
            break;
        case '?': return cli_bad_option(&cmd_fit, argc, argv);
        default:
            if (c == OPT_CTX)
                ctx_given = true;
            rc = cli_common(&cmd_fit, c, optarg, &o);
            if (rc < 0) {
                fputs(cmd_fit.usage, stdout);
                return 0;
            }
            if (rc)
                return rc;
        }
    }
    if (optind < argc)
        return cli_usage_error(&cmd_fit, "unexpected argument '%s'", argv[optind]);
    unsigned flags = o.backend == MODEL_BACKEND_CPU ? ADVISOR_PROBE_NO_DEVICE : 0;
    if (check) {
        if (n_pp == 0 && n_tg == 0)
            return cli_usage_error(&cmd_fit, "-p and -n are both 0: nothing to measure");
        o.model = check;
        if (!ctx_given)
            o.n_ctx = 0;
        return fit_check(&o, n_pp, n_tg, json, record, flags);
    }
    int n_ctx = ctx_given && o.n_ctx > 0 ? o.n_ctx : 4096;
    return fit_table(&o, n_ctx, json, flags);
}
