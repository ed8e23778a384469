/* Shared command-line handling: option parsing, usage errors, error lines,
 * and loading the model a command names. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/cli.h"
#include "infer/engine.h"
#include "infer/model.h"

int cli_online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 512 ? 512 : (int)n;
}

void cli_defaults(struct cli_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_threads = cli_online_cpus();
    o->kv_type = KV_TYPE_F16;
    o->max_isa = CPU_ISA_COUNT;
    o->backend = MODEL_BACKEND_AUTO;
    o->device = -1;
    o->n_gpu_layers = -1;
    const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (cache && cache[0] == '/')
        snprintf(o->cache_dir, sizeof o->cache_dir, "%s/ponder", cache);
    else if (home && home[0] == '/')
        snprintf(o->cache_dir, sizeof o->cache_dir, "%s/.cache/ponder", home);
    o->temp = 0.6f;
    o->top_p = 0.95f;
    o->min_p = 0.0f;
    o->repeat_penalty = 1.0f;
    o->repeat_last_n = 64;
    o->max_tokens = -1;
    config_load(&o->config, stderr);
    cli_apply_config(o, &o->config);
}

void cli_apply_config(struct cli_opts *o, const struct config *c)
{
    if (c->has_ctx)
        o->n_ctx = c->ctx;
    if (c->has_threads)
        o->n_threads = c->threads;
    if (c->has_backend)
        o->backend = c->backend;
    if (c->has_temp)
        o->temp = c->temp;
    if (c->has_top_p)
        o->top_p = c->top_p;
    if (c->has_top_k)
        o->top_k = c->top_k;
    if (c->has_min_p)
        o->min_p = c->min_p;
}

int cli_usage_error(const struct cmd *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, "ponder %s: %s (see 'ponder %s --help')\n", cmd->name, msg, cmd->name);
    else
        fprintf(stderr, "ponder: %s (see 'ponder --help')\n", msg);
    return EXIT_USAGE;
}

int cli_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ponder: %s\n", msg);
    return 1;
}

int cli_bad_option(const struct cmd *cmd, int argc, char **argv)
{
    const char *arg = optind - 1 < argc && optind > 0 ? argv[optind - 1] : "?";
    if (optopt && optopt < 256 && optopt != '?')
        return cli_usage_error(cmd, "option '-%c' is unknown or needs a value", optopt);
    return cli_usage_error(cmd, "option '%s' is unknown or needs a value", arg);
}

int cli_parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return EINVAL;
    *out = v;
    return 0;
}

int cli_parse_float(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return EINVAL;
    *out = v;
    return 0;
}

int cli_common(const struct cmd *cmd, int c, const char *arg, struct cli_opts *o)
{
    long l;
    double d;
    switch (c) {
    case OPT_HELP:
        return -1;
    case OPT_MODEL:
        o->model = arg;
        return 0;
    case OPT_CTX:
        if (cli_parse_int(arg, 16, 1L << 24, &l))
            return cli_usage_error(cmd, "--ctx wants a number of tokens from 16, not '%s'", arg);
        o->n_ctx = (int)l;
        return 0;
    case OPT_THREADS:
        if (cli_parse_int(arg, 1, 512, &l))
            return cli_usage_error(cmd, "--threads wants a number from 1 to 512, not '%s'", arg);
        o->n_threads = (int)l;
        return 0;
    case OPT_BATCH:
        if (cli_parse_int(arg, 1, 8192, &l))
            return cli_usage_error(cmd, "--batch wants a number from 1 to 8192, not '%s'", arg);
        o->n_batch = (int)l;
        return 0;
    case OPT_BACKEND:
        if (!strcmp(arg, "auto"))
            o->backend = MODEL_BACKEND_AUTO;
        else if (!strcmp(arg, "cpu"))
            o->backend = MODEL_BACKEND_CPU;
        else if (!strcmp(arg, "vulkan"))
            o->backend = MODEL_BACKEND_VULKAN;
        else
            return cli_usage_error(cmd, "--backend is auto, cpu or vulkan, not '%s'", arg);
        return 0;
    case OPT_DEVICE:
    case OPT_NGL:
        if (cli_parse_int(arg, 0, 100000, &l))
            return cli_usage_error(cmd, "--%s wants a number, not '%s'",
                                   c == OPT_DEVICE ? "device" : "ngl", arg);
        if (c == OPT_DEVICE)
            o->device = (int)l;
        else
            o->n_gpu_layers = (int)l;
        return 0;
    case OPT_DB:
        o->db = arg;
        return 0;
    case OPT_KV_TYPE:
        if (!strcmp(arg, "f16"))
            o->kv_type = KV_TYPE_F16;
        else if (!strcmp(arg, "f32"))
            o->kv_type = KV_TYPE_F32;
        else
            return cli_usage_error(cmd, "--kv-type is f16 or f32, not '%s'", arg);
        o->kv_type_set = true;
        return 0;
    case OPT_CPU:
        if (!strcmp(arg, "portable"))
            o->max_isa = CPU_ISA_PORTABLE;
        else if (!strcmp(arg, "avx2"))
            o->max_isa = CPU_ISA_AVX2;
        else if (!strcmp(arg, "avx512") || !strcmp(arg, "best"))
            o->max_isa = CPU_ISA_COUNT;
        else
            return cli_usage_error(cmd, "--cpu is portable, avx2, avx512 or best, not '%s'", arg);
        return 0;
    case OPT_VERBOSE:
        o->verbose = true;
        return 0;
    case OPT_MMAP:
        o->mmap_only = true;
        return 0;
    case OPT_TEMP:
        if (cli_parse_float(arg, 0, 100, &d))
            return cli_usage_error(cmd, "--temp wants a number from 0 to 100, not '%s'", arg);
        o->temp = (float)d;
        return 0;
    case OPT_TOP_K:
        if (cli_parse_int(arg, 0, INT_MAX, &l))
            return cli_usage_error(cmd, "--top-k wants a number >= 0, not '%s'", arg);
        o->top_k = (int)l;
        return 0;
    case OPT_TOP_P:
    case OPT_MIN_P:
        if (cli_parse_float(arg, 0, 1, &d))
            return cli_usage_error(cmd, "--%s wants a number from 0 to 1, not '%s'",
                                   c == OPT_TOP_P ? "top-p" : "min-p", arg);
        if (c == OPT_TOP_P)
            o->top_p = (float)d;
        else
            o->min_p = (float)d;
        return 0;
    case OPT_REPEAT:
        if (cli_parse_float(arg, 0.01, 100, &d))
            return cli_usage_error(cmd, "--repeat-penalty wants a number from 0.01, not '%s'", arg);
        o->repeat_penalty = (float)d;
        return 0;
    case OPT_SEED: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(arg, &end, 10);
        if (errno || end == arg || *end || arg[0] == '-')
            return cli_usage_error(cmd, "--seed wants a non-negative number, not '%s'", arg);
        o->seed = v;
        o->seed_set = true;
        return 0;
    }
    case OPT_MAXTOK:
        if (cli_parse_int(arg, 0, INT_MAX, &l))
            return cli_usage_error(cmd, "--max-tokens wants a number >= 0, not '%s'", arg);
        o->max_tokens = (int)l;
        return 0;
    case OPT_SYSTEM:
        o->system = arg;
        return 0;
    case OPT_THINK_BUDGET:
        if (cli_parse_int(arg, 0, 1L << 24, &l))
            return cli_usage_error(cmd, "--think-budget wants a number of tokens >= 0, not '%s'",
                                   arg);
        o->think_budget = (int)l;
        return 0;
    case OPT_THINK_MODE:
        if (!strcmp(arg, "soft"))
            o->think_mode = ENGINE_THINK_SOFT;
        else if (!strcmp(arg, "hard"))
            o->think_mode = ENGINE_THINK_HARD;
        else
            return cli_usage_error(cmd, "--think-mode is soft or hard, not '%s'", arg);
        return 0;
    case OPT_THINK:
        if (strcmp(arg, "on") && strcmp(arg, "off"))
            return cli_usage_error(cmd, "--think is on or off, not '%s'", arg);
        o->think_off = !strcmp(arg, "off");
        return 0;
    case OPT_FOLD:
    case OPT_NO_FOLD:
        o->fold = c == OPT_FOLD;
        o->fold_set = true;
        return 0;
    case OPT_PLACEMENT:
        if (!strcmp(arg, "auto"))
            o->placement = PLAN_AUTO;
        else if (!strcmp(arg, "layers"))
            o->placement = PLAN_LAYERS;
        else if (!strcmp(arg, "experts-cpu"))
            o->placement = PLAN_EXPERTS_CPU;
        else
            return cli_usage_error(cmd, "--placement is auto, layers or experts-cpu, not '%s'",
                                   arg);
        return 0;
    case OPT_REMOTE:
        if (strncmp(arg, "http://", 7) && strncmp(arg, "https://", 8))
            return cli_usage_error(cmd, "--remote wants an http:// or https:// URL, not '%s'", arg);
        o->remote = arg;
        return 0;
    case OPT_API_KEY_FILE:
        o->api_key_file = arg;
        return 0;
    default:
        return 1;
    }
}

const char *cli_resolve_model(const char *name, char *buf, size_t cap)
{
    struct stat st;
    if (stat(name, &st) == 0 || strchr(name, '/'))
        return name;
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    char dir[3072];
    if (xdg && *xdg)
        snprintf(dir, sizeof dir, "%s/ponder/models", xdg);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.local/share/ponder/models", home);
    else
        return name;
    snprintf(buf, cap, "%s/%s", dir, name);
    if (stat(buf, &st) == 0)
        return buf;
    snprintf(buf, cap, "%s/%s.gguf", dir, name);
    if (stat(buf, &st) == 0)
        return buf;
    return name;
}

const char *cli_find_model(const struct cli_opts *o, const char *name, char *buf, size_t cap)
{
    struct stat st;
    if (stat(name, &st) == 0)
        return name;
    const char *r = cli_resolve_model(name, buf, cap);
    if (r != name || strchr(name, '/'))
        return r;
    const char *cur = o->config.model_dirs;
    char dir[CONFIG_STR_MAX];
    while (config_next_dir(&cur, dir, sizeof dir)) {
        static const char *const ext[] = {"", ".gguf"};
        for (int i = 0; i < 2; i++) {
            int n = snprintf(buf, cap, "%s/%s%s", dir, name, ext[i]);
            if (n > 0 && (size_t)n < cap && stat(buf, &st) == 0)
                return buf;
        }
    }
    return name;
}

const char *cli_demo_model(char *buf, size_t cap)
{
    static const char *const rel[] = {"share/models/ponder-demo.gguf",
                                      "../share/ponder/models/ponder-demo.gguf"};
    char exe[3072];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = 0;
    struct stat st;
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        /* the build tree keeps the binary in build/ and a copy at the top */
        const char *dirs[] = {exe, NULL};
        char up[4096];
        snprintf(up, sizeof up, "%s/..", exe);
        dirs[1] = up;
        for (size_t d = 0; d < 2; d++) {
            snprintf(buf, cap, "%s/%s", dirs[d], rel[i]);
            if (stat(buf, &st) == 0 && S_ISREG(st.st_mode))
                return buf;
        }
    }
#ifdef PONDER_SOURCE_SHARE
    /* a binary built outside the source tree (BUILD=/elsewhere) */
    snprintf(buf, cap, "%s/models/ponder-demo.gguf", PONDER_SOURCE_SHARE);
    if (stat(buf, &st) == 0 && S_ISREG(st.st_mode))
        return buf;
#endif
    return NULL;
}

void cli_model_params(const struct cli_opts *o, enum kv_type default_kv, struct model_params *p)
{
    memset(p, 0, sizeof *p);
    p->n_ctx = o->n_ctx;
    p->n_threads = o->n_threads;
    p->n_batch = o->n_batch;
    p->kv_type = o->kv_type_set ? o->kv_type : default_kv;
    p->max_isa = o->max_isa;
    p->mmap_only = o->mmap_only;
    p->backend = (enum model_backend)o->backend;
    p->device = o->device;
    p->n_gpu_layers = o->n_gpu_layers;
    p->cache_dir = o->cache_dir[0] ? o->cache_dir : NULL;
    p->placement = (enum plan_placement)o->placement;
    /* --ngl 0 keeps every layer on the CPU */
    if (o->n_gpu_layers == 0)
        p->backend = MODEL_BACKEND_CPU;
}

void cli_print_plan(const struct model_info *in, const char *file)
{
    fprintf(stderr,
            "model: %s (%s, %s), %.2f GB, %lld parameters\n"
            "plan: %d of %d layers on %s (%s)%s%s, %d on the CPU (%s), %d threads; KV cache %s, "
            "%d tokens, %.1f MB (%.1f KB per token)\n",
            in->name[0] ? in->name : file, in->arch, in->ftype, (double)in->file_size / 1e9,
            (long long)in->n_params, in->n_gpu_layers, in->n_layer,
            in->n_gpu_layers ? in->backend : "vulkan", in->n_gpu_layers ? in->device : "none",
            in->output_on_gpu ? " with the output" : "",
            in->experts_on_cpu ? ", their routed experts in RAM on the CPU" : "",
            in->n_layer - in->n_gpu_layers, in->cpu_device, in->n_threads,
            in->kv_type == KV_TYPE_F16 ? "f16" : "f32", in->n_ctx, (double)in->kv_bytes / 1e6,
            (double)in->kv_bytes_per_token / 1e3);
    if (in->n_gpu_layers)
        fprintf(stderr, "device memory: %.2f GB planned of a %.2f GB budget\n",
                (double)in->gpu_bytes / 1e9, (double)in->gpu_budget / 1e9);
    if (in->gpu_note[0])
        fprintf(stderr, "note: %s\n", in->gpu_note);
}

int cli_load_model(const struct cli_opts *o, enum kv_type default_kv, struct model **out)
{
    char path[4096], err[512] = "";
    const char *file = cli_find_model(o, o->model, path, sizeof path);
    struct model_params p;
    cli_model_params(o, default_kv, &p);
    int rc = model_load(file, &p, out, err, sizeof err);
    if (rc)
        return cli_error("%s", err[0] ? err : strerror(rc));
    if (o->verbose)
        cli_print_plan(model_info(*out), file);
    return 0;
}
