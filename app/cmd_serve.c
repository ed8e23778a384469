/* ponder serve: the OpenAI-compatible local API on one model (app/serve.c);
 * this file reads the options, the API key and the store, then runs it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/cli.h"
#include "app/serve.h"
#include "history/store.h"

enum {
    OPT_HOST = OPT_CMD_BASE, OPT_PORT, OPT_QUEUE, OPT_MAX_CONN, OPT_MAX_BODY,
};

static int serve_exec(int argc, char **argv);

const struct cmd cmd_serve = {
    .name = "serve",
    .summary = "an OpenAI-compatible API on a local model",
    .usage =
        "usage: ponder serve [-m MODEL] [--host 127.0.0.1] [--port 11435]\n"
        "                    [--api-key-file F] [--queue N] [--max-connections N]\n"
        "                    [--max-body BYTES] [--db PATH] [common options]\n\n"
        "Serves one model (-m, else default_model of the config, else the demo model)\n"
        "over HTTP: GET /v1/models, POST /v1/chat/completions, POST /v1/completions\n"
        "(\"stream\": true for server-sent events), GET /health.  The reasoning comes\n"
        "apart from the answer in reasoning_content; usage counts prompt, reasoning\n"
        "and answer tokens.  Requests wait in a queue of --queue N (8) behind the\n"
        "running one; past it they get 429.  A client that disconnects stops its\n"
        "generation.  Each request is kept in the history store as a conversation\n"
        "(--db PATH) with its run (driver \"api\"), so 'ponder stats' counts it.\n"
        "Only loopback addresses unless --api-key-file F names a file holding the key\n"
        "clients send as 'Authorization: Bearer KEY'.  --port 0 picks a free port.\n\n"
        "options: -c/--ctx N, -t/--threads N, -n/--max-tokens N (the default for\n"
        "  requests without max_tokens), --backend, --ngl, -v (a line per request),\n"
        "  --max-connections N (64), --max-body BYTES (1048576)\n"
        "sampling defaults: --temp T (0.6), --top-k K, --top-p P (0.95), --min-p P,\n"
        "  --repeat-penalty R, --seed N, --think-budget N, --think-mode soft|hard,\n"
        "  --think on|off\n",
    .exec = serve_exec,
};

static volatile sig_atomic_t quit;

static void on_signal(int sig)
{
    (void)sig;
    quit = 1;
}

/* The key: the file's first line without surrounding blanks. */
static int read_key(const char *path, char *key, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return cli_error("%s: %s", path, strerror(errno));
    char line[1024];
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char *s = line, *e;
    if (got) {
        while (*s == ' ' || *s == '\t')
            s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
            *--e = 0;
    }
    if (!got || !*s)
        return cli_error("%s: the API key file is empty", path);
    if (strlen(s) < 8)
        return cli_error("%s: the API key is shorter than 8 characters", path);
    snprintf(key, cap, "%s", s);
    return 0;
}

static int serve_exec(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONG_OPTIONS,
        {"host", required_argument, 0, OPT_HOST},
        {"port", required_argument, 0, OPT_PORT},
        {"queue", required_argument, 0, OPT_QUEUE},
        {"max-connections", required_argument, 0, OPT_MAX_CONN},
        {"max-body", required_argument, 0, OPT_MAX_BODY},
        {0, 0, 0, 0},
    };
    struct cli_opts o;
    cli_defaults(&o);
    const char *host = "127.0.0.1";
    long port = 11435, queue = 8, max_conn = 64, max_body = 1 << 20;
    int c, rc;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_HOST: host = optarg; break;
        case OPT_PORT:
            if (cli_parse_int(optarg, 0, 65535, &port))
                return cli_usage_error(&cmd_serve, "--port wants 0 to 65535, not '%s'", optarg);
            break;
        case OPT_QUEUE:
            if (cli_parse_int(optarg, 0, 4096, &queue))
                return cli_usage_error(&cmd_serve, "--queue wants 0 to 4096, not '%s'", optarg);
            break;
        case OPT_MAX_CONN:
            if (cli_parse_int(optarg, 1, 4096, &max_conn))
                return cli_usage_error(&cmd_serve, "--max-connections wants 1 to 4096, not '%s'",
                                       optarg);
            break;
        case OPT_MAX_BODY:
            if (cli_parse_int(optarg, 1024, 1L << 30, &max_body))
                return cli_usage_error(&cmd_serve, "--max-body wants 1024 to 1073741824, not '%s'",
                                       optarg);
            break;
        case '?': return cli_bad_option(&cmd_serve, argc, argv);
        default:
            rc = cli_common(&cmd_serve, c, optarg, &o);
            if (rc < 0) {
                fputs(cmd_serve.usage, stdout);
                return 0;
            }
            if (rc)
                return rc;
        }
    }
    if (optind < argc)
        return cli_usage_error(&cmd_serve, "unexpected argument '%s'", argv[optind]);
    if (o.remote)
        return cli_usage_error(&cmd_serve, "serve runs a local model; --remote is for run and chat");
    if (!serve_host_is_loopback(host) && !o.api_key_file)
        return cli_usage_error(&cmd_serve,
                               "--host %s is reachable from other machines: give --api-key-file F",
                               host);

    char key[1024];
    if (o.api_key_file && read_key(o.api_key_file, key, sizeof key))
        return 1;

    char path[4096], demo[4096];
    const char *model = o.model ? o.model : o.config.default_model[0] ? o.config.default_model : NULL;
    const char *file = model ? cli_find_model(&o, model, path, sizeof path)
                             : cli_demo_model(demo, sizeof demo);
    if (!file)
        return cli_usage_error(&cmd_serve, "which model? give -m MODEL (no demo model was found)");
    char id[256];
    const char *base = strrchr(file, '/');
    snprintf(id, sizeof id, "%s", base ? base + 1 : file);
    size_t il = strlen(id);
    if (il > 5 && !strcmp(id + il - 5, ".gguf"))
        id[il - 5] = 0;

    char dbpath[4096], err[512] = "";
    const char *db = o.db;
    if (!db) {
        if (store_default_path(getenv("XDG_DATA_HOME"), getenv("HOME"), dbpath, sizeof dbpath,
                               err, sizeof err))
            return cli_error("%s", err);
        db = dbpath;
    }
    struct store *store = NULL;
    if (store_open(db, STORE_CREATE, &store, err, sizeof err))
        return cli_error("%s", err);

    struct serve_config cfg = {
        .host = host,
        .port = (int)port,
        .api_key = o.api_key_file ? key : NULL,
        .model_path = file,
        .model_id = id,
        .queue_max = (int)queue,
        .max_connections = (int)max_conn,
        .max_body = (size_t)max_body,
        .store = store,
        .verbose = o.verbose,
        .quit = &quit,
    };
    cli_model_params(&o, KV_TYPE_F16, &cfg.mp);
    struct engine_generate_params *gp = &cfg.defaults;
    sampler_params_default(&gp->sampler);
    gp->sampler.temperature = o.temp;
    gp->sampler.top_k = o.top_k;
    gp->sampler.top_p = o.top_p;
    gp->sampler.min_p = o.min_p;
    gp->sampler.repeat_penalty = o.repeat_penalty;
    gp->sampler.repeat_last_n = o.repeat_last_n;
    gp->sampler.seed = o.seed_set ? (o.seed ? o.seed : 1) : 0;
    gp->max_tokens = o.max_tokens;
    gp->think_budget = o.think_budget;
    gp->think_mode = (enum engine_think_mode)o.think_mode;
    gp->think_off = o.think_off;

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = serve_run(&cfg, err, sizeof err);
    store_close(store);
    explicit_bzero(key, sizeof key);
    if (rc)
        return cli_error("%s", err);
    return 0;
}
