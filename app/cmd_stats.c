/* ponder stats: the speed of past runs from the history store, one row per
 * model, backend and device: median and p95 of prompt and generation
 * tokens/s and of the time to the first token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/cli.h"
#include "history/store.h"

static int stats_exec(int argc, char **argv);

const struct cmd cmd_stats = {
    .name = "stats",
    .summary = "speed of past runs per model and device",
    .usage = "usage: ponder stats [--model NAME] [--db PATH]\n\n"
             "One row per model, backend and device from the history store: the number of\n"
             "runs, and the median and 95th percentile of prompt processing and generation\n"
             "speed (tokens/s) and of the time to the first token (ms).  --model keeps the\n"
             "models whose name contains NAME (any case).\n",
    .exec = stats_exec,
};

struct stats_ctx {
    int n;
};

static int print_row(void *ctx, const struct store_stats *st)
{
    struct stats_ctx *x = ctx;
    if (x->n++ == 0)
        printf("%-32s %-8s %-24s %5s  %17s  %17s  %17s\n", "MODEL", "BACKEND", "DEVICE", "RUNS",
               "PROMPT t/s MED/95", "GEN t/s MED/95", "TTFT ms MED/95");
    char pp[32], tg[32], ttft[32];
    snprintf(pp, sizeof pp, "%.1f/%.1f", st->prompt_tps_median, st->prompt_tps_p95);
    snprintf(tg, sizeof tg, "%.1f/%.1f", st->gen_tps_median, st->gen_tps_p95);
    snprintf(ttft, sizeof ttft, "%.0f/%.0f", st->ttft_ms_median, st->ttft_ms_p95);
    printf("%-32s %-8s %-24s %5lld  %17s  %17s  %17s\n", st->model, st->backend[0] ? st->backend : "-",
           st->device[0] ? st->device : "-", (long long)st->n_runs, pp, tg, ttft);
    return 0;
}

static int stats_exec(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONG_OPTIONS,
        {0, 0, 0, 0},
    };
    struct cli_opts o;
    cli_defaults(&o);
    int c, rc;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, longopts, NULL)) != -1) {
        if (c == '?')
            return cli_bad_option(&cmd_stats, argc, argv);
        rc = cli_common(&cmd_stats, c, optarg, &o);
        if (rc < 0) {
            fputs(cmd_stats.usage, stdout);
            return 0;
        }
        if (rc)
            return rc;
    }
    if (optind < argc)
        return cli_usage_error(&cmd_stats, "unexpected argument '%s'", argv[optind]);

    char path[4096], err[512] = "";
    unsigned flags = 0;
    const char *p = o.db;
    if (!p) {
        if (store_default_path(getenv("XDG_DATA_HOME"), getenv("HOME"), path, sizeof path, err,
                               sizeof err))
            return cli_error("%s", err);
        p = path;
        flags = STORE_CREATE;
    }
    struct store *s = NULL;
    if (store_open(p, flags, &s, err, sizeof err))
        return cli_error("%s", err);
    struct stats_ctx x = {0};
    int status = 0;
    if (store_stats(s, o.model, print_row, &x, err, sizeof err))
        status = cli_error("%s", err);
    else if (x.n == 0)
        fprintf(stderr, o.model ? "ponder: no runs of a model matching '%s'\n"
                                : "ponder: no runs recorded yet%s\n",
                o.model ? o.model : "");
    store_close(s);
    return status;
}
