/* The command line: the command table, the options every command shares,
 * and the one place errors are printed.  Usage errors exit 2 with one line
 * pointing at --help; runtime errors exit 1 with "ponder: <what>". */
#ifndef PONDER_CLI_H
#define PONDER_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "app/config.h"
#include "infer/backend.h"
#include "infer/cpu/cpu.h"

#define EXIT_USAGE 2

struct cmd {
    const char *name;
    const char *summary;
    const char *usage;      /* the --help text */
    int (*exec)(int argc, char **argv);
};

extern const struct cmd cmd_run, cmd_eval, cmd_bench, cmd_tokenize, cmd_history, cmd_stats,
    cmd_chat, cmd_devices, cmd_models, cmd_fit, cmd_serve;

/* Options shared by the commands that load a model, and sampling. */
struct cli_opts {
    const char *model;
    int n_ctx;
    int n_threads;
    int n_batch;
    enum kv_type kv_type;
    bool kv_type_set;
    enum cpu_isa max_isa;
    bool verbose;
    bool mmap_only;         /* --mmap: map the model file instead of reading it */
    /* where layers run: --backend (0 cpu, 1 auto, 2 vulkan: enum
     * model_backend), --device (-1 default), --ngl (-1 all that fit) */
    int backend;
    int device;
    int n_gpu_layers;
    char cache_dir[1024];   /* $XDG_CACHE_HOME/ponder, "" when unknown */
    /* sampling */
    float temp, top_p, min_p, repeat_penalty;
    int top_k, repeat_last_n;
    uint64_t seed;
    bool seed_set;
    int max_tokens;
    const char *system;
    const char *db;         /* --db PATH: the history store */
    /* reasoning: --think-budget N (0 none), --think-mode soft|hard (0 soft,
     * 1 hard: enum engine_think_mode), --think on|off, --fold / --no-fold
     * (fold_set: given on the command line, overriding fold_reasoning) */
    int think_budget;
    int think_mode;
    bool think_off;
    bool fold, fold_set;
    /* --placement auto|layers|experts-cpu (enum plan_placement) */
    int placement;
    /* --remote URL: a model served by an OpenAI-compatible server;
     * --api-key-file F: its key (read by the command) */
    const char *remote;
    const char *api_key_file;
    /* the config file as cli_defaults() read it: default_model, model_dirs,
     * favourites and fold_reasoning are the commands' to use */
    struct config config;
};

/* Long options every model command accepts; cli_common() handles them. */
enum {
    OPT_MODEL = 'm', OPT_CTX = 'c', OPT_THREADS = 't', OPT_MAXTOK = 'n', OPT_VERBOSE = 'v',
    OPT_HELP = 'h',
    OPT_BACKEND = 256, OPT_DEVICE, OPT_NGL, OPT_KV_TYPE, OPT_DB, OPT_CPU, OPT_BATCH,
    OPT_TEMP, OPT_TOP_K, OPT_TOP_P, OPT_MIN_P, OPT_REPEAT, OPT_SEED, OPT_SYSTEM, OPT_MMAP,
    OPT_THINK_BUDGET, OPT_THINK_MODE, OPT_THINK, OPT_FOLD, OPT_NO_FOLD, OPT_PLACEMENT,
    OPT_REMOTE, OPT_API_KEY_FILE,
    OPT_CMD_BASE = 400     /* commands number their own options from here */
};

#define CLI_COMMON_LONG_OPTIONS                                   \
    {"model", required_argument, 0, OPT_MODEL},                   \
    {"ctx", required_argument, 0, OPT_CTX},                       \
    {"threads", required_argument, 0, OPT_THREADS},               \
    {"batch", required_argument, 0, OPT_BATCH},                   \
    {"mmap", no_argument, 0, OPT_MMAP},                           \
    {"backend", required_argument, 0, OPT_BACKEND},               \
    {"device", required_argument, 0, OPT_DEVICE},                 \
    {"ngl", required_argument, 0, OPT_NGL},                       \
    {"kv-type", required_argument, 0, OPT_KV_TYPE},               \
    {"db", required_argument, 0, OPT_DB},                         \
    {"cpu", required_argument, 0, OPT_CPU},                       \
    {"verbose", no_argument, 0, OPT_VERBOSE},                     \
    {"help", no_argument, 0, OPT_HELP},                           \
    {"temp", required_argument, 0, OPT_TEMP},                     \
    {"top-k", required_argument, 0, OPT_TOP_K},                   \
    {"top-p", required_argument, 0, OPT_TOP_P},                   \
    {"min-p", required_argument, 0, OPT_MIN_P},                   \
    {"repeat-penalty", required_argument, 0, OPT_REPEAT},         \
    {"seed", required_argument, 0, OPT_SEED},                     \
    {"max-tokens", required_argument, 0, OPT_MAXTOK},             \
    {"system", required_argument, 0, OPT_SYSTEM},                 \
    {"think-budget", required_argument, 0, OPT_THINK_BUDGET},     \
    {"think-mode", required_argument, 0, OPT_THINK_MODE},         \
    {"think", required_argument, 0, OPT_THINK},                   \
    {"fold", no_argument, 0, OPT_FOLD},                           \
    {"no-fold", no_argument, 0, OPT_NO_FOLD},                     \
    {"placement", required_argument, 0, OPT_PLACEMENT},           \
    {"remote", required_argument, 0, OPT_REMOTE},                 \
    {"api-key-file", required_argument, 0, OPT_API_KEY_FILE}
#define CLI_COMMON_SHORT "m:c:t:n:vh"

/* The defaults, then the config file's ctx, threads, backend and sampling
 * (its warnings go to stderr); options parsed afterwards override them. */
void cli_defaults(struct cli_opts *o);
/* Applies c's ctx, threads, backend, temp, top_p, top_k and min_p to o. */
void cli_apply_config(struct cli_opts *o, const struct config *c);
/* Handles one common option.  0 when handled, 1 when it is not a common
 * option, EXIT_USAGE after printing the usage error, -1 for --help (the
 * caller prints its usage and exits 0). */
int cli_common(const struct cmd *cmd, int c, const char *arg, struct cli_opts *o);
/* Prints "ponder CMD: <what> (see 'ponder CMD --help')" and returns EXIT_USAGE. */
int cli_usage_error(const struct cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "ponder: <what>" and returns 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The getopt error for argv[optind-1] (unknown option, missing argument). */
int cli_bad_option(const struct cmd *cmd, int argc, char **argv);

/* Strict number parsing: 0 on success. */
int cli_parse_int(const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *s, double lo, double hi, double *out);

struct model;
struct model_params;
struct model_info;
/* A model path as given, or NAME / NAME.gguf in $XDG_DATA_HOME/ponder/models
 * (the result is name or buf). */
const char *cli_resolve_model(const char *name, char *buf, size_t cap);
/* cli_resolve_model, then NAME / NAME.gguf in the config's model_dirs. */
const char *cli_find_model(const struct cli_opts *o, const char *name, char *buf, size_t cap);
/* The bundled demo model (share/models/ponder-demo.gguf beside the binary in
 * a build tree, or PREFIX/share/ponder/models when installed): buf, or NULL. */
const char *cli_demo_model(char *buf, size_t cap);
void cli_model_params(const struct cli_opts *o, enum kv_type default_kv, struct model_params *p);
/* The memory plan, for -v, on stderr. */
void cli_print_plan(const struct model_info *in, const char *file);
/* Loads o->model with o's settings; prints the error and returns 1 on failure. */
int cli_load_model(const struct cli_opts *o, enum kv_type default_kv, struct model **out);
/* The number of online CPUs. */
int cli_online_cpus(void);

#endif
