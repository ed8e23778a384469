/* ponder models: the model files found here, each with its shape, size, KV
 * cache per token, where it runs on this machine and how fast (the same
 * prediction as `ponder fit` and the picker, app/advisor.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "app/advisor.h"
#include "app/cli.h"
#include "history/store.h"
#include "infer/model.h"

enum { OPT_JSON = OPT_CMD_BASE };

static int models_exec(int argc, char **argv);

const struct cmd cmd_models = {
    .name = "models",
    .summary = "the models found here, and how each fits and runs",
    .usage = "usage: ponder models [--json] [--ctx N] [--backend cpu|auto] [-t N] [--db PATH]\n\n"
             "Lists the *.gguf files in $XDG_DATA_HOME/ponder/models and the config's\n"
             "model_dirs, and the bundled demo model: architecture, parameters, weight\n"
             "type, file size, KV cache bytes per token, where each runs on this machine at\n"
             "--ctx tokens (default 4096) and its predicted generation and prompt speed\n"
             "(marked 'm' when measured here: ponder fit --check).\n",
    .exec = models_exec,
};

static void params_str(uint64_t n, char *buf, size_t cap)
{
    if (n >= 1000000000)
        snprintf(buf, cap, "%.1fB", (double)n / 1e9);
    else if (n >= 1000000)
        snprintf(buf, cap, "%.1fM", (double)n / 1e6);
    else
        snprintf(buf, cap, "%.1fK", (double)n / 1e3);
}

static int models_exec(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONG_OPTIONS,
        {"json", no_argument, 0, OPT_JSON},
        {0, 0, 0, 0},
    };
    struct cli_opts o;
    cli_defaults(&o);
    bool json = false, ctx_given = false;
    int c, rc;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: json = true; break;
        case '?': return cli_bad_option(&cmd_models, argc, argv);
        default:
            if (c == OPT_CTX)
                ctx_given = true;
            rc = cli_common(&cmd_models, c, optarg, &o);
            if (rc < 0) {
                fputs(cmd_models.usage, stdout);
                return 0;
            }
            if (rc)
                return rc;
        }
    }
    if (optind < argc)
        return cli_usage_error(&cmd_models, "unexpected argument '%s'", argv[optind]);
    int n_ctx = ctx_given && o.n_ctx > 0 ? o.n_ctx : 4096;
    char **paths = NULL;
    size_t n = 0;
    if (advisor_find_models(o.config.model_dirs, &paths, &n))
        return cli_error("out of memory");
    char demo[4096];
    const char *demo_path = cli_demo_model(demo, sizeof demo);
    struct store *store;
    char err[512] = "";
    if (advisor_open_store(o.db, &store, err, sizeof err))
        err[0] = 0;     /* no store: predictions only, as stated */
    struct advisor_machine mc;
    int status = 1;
    json_t *rows = json ? json_array() : NULL;
    unsigned flags = ADVISOR_PROBE_QUICK |
                     (o.backend == MODEL_BACKEND_CPU ? ADVISOR_PROBE_NO_DEVICE : 0);
    if (advisor_machine_probe(&mc, flags, o.n_threads, store, err, sizeof err)) {
        cli_error("measuring this machine: %s", err);
        goto out;
    }
    if (!json)
        printf("%-30s %-9s %7s %-7s %9s %9s  %-29s %8s %8s\n", "FILE", "ARCH", "PARAMS", "TYPE",
               "SIZE", "KV/TOKEN", "WHERE (ctx)", "TG t/s", "PP t/s");
    for (size_t i = 0; i <= n; i++) {
        const char *path = i < n ? paths[i] : demo_path;
        if (!path)
            continue;
        bool dup = false;
        for (size_t j = 0; i == n && j < n; j++)
            dup |= !strcmp(paths[j], path);
        if (dup)
            continue;
        struct advisor_estimate e;
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (advisor_file_estimate(path, n_ctx, &mc, store, &e, err, sizeof err)) {
            if (json) {
                json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "file", base, "path",
                                                      path, "error", err));
            } else {
                printf("%-30.30s %s\n", base, err);
            }
            continue;
        }
        if (json) {
            json_array_append_new(
                rows,
                json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:i, s:s, s:i, s:b, s:f, "
                          "s:f, s:b, s:b}",
                          "file", base, "path", path, "name", e.name, "arch", e.arch, "type",
                          e.type, "params", (json_int_t)e.n_params, "size_bytes",
                          (json_int_t)e.file_bytes, "kv_bytes_per_token",
                          (json_int_t)e.kv_bytes_per_token, "ctx", n_ctx, "where", e.plan.where,
                          "n_gpu_layers", e.plan.n_gpu_layers, "fits", e.plan.fits, "tg_tps",
                          e.tg_tps, "pp_tps", e.pp_tps, "measured", e.measured, "demo",
                          i == n));
            continue;
        }
        char params[32], size[32], kv[32], tg[32], pp[32];
        params_str(e.n_params, params, sizeof params);
        if (e.file_bytes >= 1000000000)
            snprintf(size, sizeof size, "%.2f GB", (double)e.file_bytes / 1e9);
        else
            snprintf(size, sizeof size, "%.1f MB", (double)e.file_bytes / 1e6);
        if (e.kv_bytes_per_token >= 1024 * 1024)
            snprintf(kv, sizeof kv, "%.1f MiB", (double)e.kv_bytes_per_token / (1 << 20));
        else
            snprintf(kv, sizeof kv, "%.0f KiB", (double)e.kv_bytes_per_token / 1024);
        snprintf(tg, sizeof tg, "%.1f%s", e.tg_tps, e.measured ? " m" : "  ");
        snprintf(pp, sizeof pp, "%.1f%s", e.pp_tps, e.measured ? " m" : "  ");
        printf("%-30.30s %-9.9s %7s %-7.7s %9s %9s  %-29.29s %8s %8s\n", base, e.arch, params,
               e.type, size, kv, e.plan.where, e.plan.fits ? tg : "-", e.plan.fits ? pp : "-");
    }
    if (json) {
        char *s = json_dumps(rows, JSON_INDENT(1));
        if (!s) {
            cli_error("out of memory");
            goto out;
        }
        puts(s);
        free(s);
    } else if (n == 0) {
        printf("\n(no models in the models folder or model_dirs%s)\n",
               demo_path ? "; the demo model is bundled" : "");
    }
    status = 0;
out:
    json_decref(rows);
    advisor_models_free(paths, n);
    if (store)
        store_close(store);
    return status;
}
