/* ponder run: one reply to one prompt, streamed.  The answer goes to stdout,
 * the reasoning to stderr (or inline, or nowhere). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/cli.h"
#include "history/store.h"
#include "infer/engine.h"
#include "infer/remote.h"
#include "infer/tokenizer.h"

enum { OPT_PROMPT = 'p', OPT_FILE = 'f', OPT_RAW = OPT_CMD_BASE, OPT_REASONING, OPT_PRINT_IDS };
enum reasoning_out { REASONING_STDERR, REASONING_SHOW, REASONING_HIDE };

static int run_exec(int argc, char **argv);

const struct cmd cmd_run = {
    .name = "run",
    .summary = "one reply to a prompt (-p TEXT, -f FILE or stdin)",
    .usage =
        "usage: ponder run -m MODEL [-p TEXT | -f FILE] [--raw] [--reasoning stderr|show|hide]\n"
        "                  [--print-ids] [--system TEXT] [-n N] [--think-budget N]\n"
        "                  [--think-mode soft|hard] [--think on|off] [--db PATH]\n"
        "                  [sampling options]\n\n"
        "Answers one prompt (from -p, -f or standard input).  The prompt is wrapped in\n"
        "the model's chat format unless --raw (then it is fed as is, BOS as the model\n"
        "says).  The answer goes to stdout; the reasoning goes to stderr (default),\n"
        "inline (show) or nowhere (hide).  --print-ids prints the generated token ids\n"
        "instead of text.  Without -m, default_model of the config file is used.\n\n"
        "--think-budget N ends the reasoning after about N tokens: soft (default) makes\n"
        "</think> more likely from 80 % of N on, so the model stops at a natural point\n"
        "(within N + 64 tokens); hard closes it at exactly N.  --think off answers\n"
        "directly (an empty reasoning block).  --db PATH records the prompt, the reply\n"
        "and its run in the history store at PATH (created when missing).\n\n"
        "--remote URL asks a model served by an OpenAI-compatible server (ponder serve,\n"
        "vLLM, SGLang, llama-server, Ollama) instead of a file: -m then names the\n"
        "server's model (default: the first it lists), --api-key-file F holds its key.\n\n"
        "options: -c/--ctx N, -t/--threads N, -n/--max-tokens N, --kv-type f16|f32,\n"
        "  --cpu portable|avx2|avx512, -v (memory plan, timings, whether the budget\n"
        "  was reached)\n"
        "sampling: --temp T (0.6; 0 = greedy), --top-k K (0 = off), --top-p P (0.95),\n"
        "  --min-p P (0), --repeat-penalty R (1.0), --seed N\n",
    .exec = run_exec,
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
        if (n + 1 == cap) {
            char *bigger = cap > ((size_t)1 << 30) ? NULL : realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    if (buf) {
        if (ferror(f)) {
            free(buf);
            return NULL;
        }
        buf[n] = 0;
        *len = n;
    }
    return buf;
}

struct run_out {
    enum reasoning_out reasoning;
    bool in_reasoning;      /* the last span written was reasoning (for "show") */
    bool any_reasoning;
    bool answer_started;
};

static void emit(void *ctx, const struct reason_span *sp)
{
    struct run_out *o = ctx;
    if (sp->leading)
        return;     /* whitespace that opens a part is not shown */
    if (sp->kind == REASON_KIND_REASONING) {
        o->any_reasoning = true;
        if (o->reasoning == REASONING_STDERR) {
            fwrite(sp->text, 1, sp->len, stderr);
        } else if (o->reasoning == REASONING_SHOW) {
            if (!o->in_reasoning)
                fputs("<think>\n", stdout);
            o->in_reasoning = true;
            fwrite(sp->text, 1, sp->len, stdout);
            fflush(stdout);
        }
        return;
    }
    if (o->in_reasoning && o->reasoning == REASONING_SHOW)
        fputs("\n</think>\n\n", stdout);
    else if (o->any_reasoning && o->reasoning == REASONING_STDERR && !o->answer_started)
        fputc('\n', stderr);
    o->in_reasoning = false;
    o->answer_started = true;
    fwrite(sp->text, 1, sp->len, stdout);
    fflush(stdout);
}

/* Waits for an event of `type` (true) or an ERROR (false), both left in ev. */
static bool wait_for(struct engine *eng, enum engine_event_type type, struct engine_event *ev)
{
    for (;;) {
        struct pollfd pfd = {.fd = engine_fd(eng), .events = POLLIN};
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
            snprintf(ev->u.error, sizeof ev->u.error, "poll: %s", strerror(errno));
            return false;
        }
        while (engine_next(eng, ev)) {
            if (ev->type == type)
                return true;
            if (ev->type == ENGINE_EVENT_ERROR)
                return false;
        }
    }
}

/* --db: the conversation recorded in the history store as it streams. */
struct run_store {
    struct store *s;
    int64_t conv, reply, model_id;
    bool failed;            /* a write failed: reported once, at the end */
    char err[512];
};

/* Opens the store, records the model and the prompt, and begins the reply. */
static int run_store_begin(struct run_store *rs, const char *path, const char *model_file,
                           const struct model_info *info, const char *system, const char *prompt)
{
    char *err = rs->err, fp[STORE_FINGERPRINT_SIZE];
    size_t errlen = sizeof rs->err;
    /* a remote model is stored as "NAME@HOST:PORT" (infer/remote.h) */
    char rname[256];
    bool remote = !strcmp(info->arch, "remote");
    if (remote) {
        remote_display_name(info, rname, sizeof rname);
        remote_fingerprint(rname, fp);
    }
    if (store_open(path, STORE_CREATE, &rs->s, err, errlen) ||
        (!remote && store_model_fingerprint(model_file, fp, err, errlen)))
        return 1;
    const char *base = strrchr(model_file, '/');
    struct store_model m = {
        .path = model_file,
        .name = remote ? rname : info->name[0] ? info->name : base ? base + 1 : model_file,
        .arch = info->arch,
        .n_params = info->n_params,
        .weight_type = info->ftype,
        .file_size = (int64_t)info->file_size,
        .fingerprint = fp,
    };
    if (store_model_use(rs->s, &m, &rs->model_id, err, errlen) ||
        store_conv_create(rs->s, NULL, &rs->conv, err, errlen) ||
        (system && store_message_add(rs->s, rs->conv, STORE_ROLE_SYSTEM, system, NULL, 0, NULL,
                                     err, errlen)) ||
        store_message_add(rs->s, rs->conv, STORE_ROLE_USER, prompt, NULL, 0, NULL, err, errlen) ||
        store_reply_begin(rs->s, rs->conv, rs->model_id, &rs->reply, err, errlen))
        return 1;
    return 0;
}

static void run_store_piece(struct run_store *rs, enum reason_kind kind, const char *text,
                            size_t len)
{
    if (!rs->s || rs->failed || !len)
        return;
    if (store_reply_append(rs->s, rs->reply,
                           kind == REASON_KIND_REASONING ? STORE_PART_REASONING
                                                         : STORE_PART_ANSWER,
                           text, len, rs->err, sizeof rs->err))
        rs->failed = true;
}

static void run_store_finish(struct run_store *rs, const struct engine_event *done,
                             const char *error)
{
    if (!rs->s || rs->failed)
        return;
    const struct engine_stats *st = &done->u.done.stats;
    enum engine_stop stop = done->u.done.stop;
    struct store_run run = {
        .model_id = rs->model_id, .backend = st->backend, .device = st->device,
        .driver = "run", .n_ctx = st->n_ctx, .n_threads = st->threads,
        .n_gpu_layers = st->layers_on_device, .prompt_tokens = st->prompt_tokens,
        .reasoning_tokens = st->reasoning_tokens, .answer_tokens = st->answer_tokens,
        .load_ms = st->load_ms, .prompt_ms = st->prompt_ms, .ttft_ms = st->first_token_ms,
        .reasoning_ms = st->reasoning_ms, .answer_ms = st->answer_ms,
        .prompt_tps = st->prompt_tps, .gen_tps = st->gen_tps,
        .stop_reason = engine_stop_name(stop), .temp = st->sampler.temperature,
        .top_k = st->sampler.top_k, .top_p = st->sampler.top_p, .min_p = st->sampler.min_p,
        .repeat_penalty = st->sampler.repeat_penalty, .seed = st->sampler.seed,
        .think_budget = st->think_budget,
        .think_mode = st->think_budget <= 0                 ? ""
                      : st->think_mode == ENGINE_THINK_HARD ? "hard"
                                                            : "soft",
        .think_off = st->think_off, .budget_reached = st->budget_reached,
    };
    enum store_status status = error || stop == ENGINE_STOP_ERROR ? STORE_STATUS_ERROR
                               : stop == ENGINE_STOP_USER         ? STORE_STATUS_INTERRUPTED
                                                                  : STORE_STATUS_COMPLETE;
    if (store_reply_finish(rs->s, rs->reply, status, error, &run, rs->err, sizeof rs->err))
        rs->failed = true;
}

static int run_exec(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONG_OPTIONS,
        {"prompt", required_argument, 0, OPT_PROMPT},
        {"file", required_argument, 0, OPT_FILE},
        {"raw", no_argument, 0, OPT_RAW},
        {"reasoning", required_argument, 0, OPT_REASONING},
        {"print-ids", no_argument, 0, OPT_PRINT_IDS},
        {0, 0, 0, 0},
    };
    struct cli_opts o;
    cli_defaults(&o);
    const char *prompt_arg = NULL, *file = NULL;
    bool raw = false, print_ids = false;
    struct run_out out = {.reasoning = REASONING_STDERR};
    int c, rc;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "p:f:", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_PROMPT: prompt_arg = optarg; break;
        case OPT_FILE: file = optarg; break;
        case OPT_RAW: raw = true; break;
        case OPT_PRINT_IDS: print_ids = true; break;
        case OPT_REASONING:
            if (!strcmp(optarg, "stderr"))
                out.reasoning = REASONING_STDERR;
            else if (!strcmp(optarg, "show"))
                out.reasoning = REASONING_SHOW;
            else if (!strcmp(optarg, "hide"))
                out.reasoning = REASONING_HIDE;
            else
                return cli_usage_error(&cmd_run, "--reasoning is stderr, show or hide, not '%s'",
                                       optarg);
            break;
        case '?': return cli_bad_option(&cmd_run, argc, argv);
        default:
            rc = cli_common(&cmd_run, c, optarg, &o);
            if (rc < 0) {
                fputs(cmd_run.usage, stdout);
                return 0;
            }
            if (rc)
                return rc;
        }
    }
    if (optind < argc)
        return cli_usage_error(&cmd_run, "unexpected argument '%s' (the prompt goes after -p)",
                               argv[optind]);
    if (!o.model && o.config.default_model[0] && !o.remote)
        o.model = o.config.default_model;
    if (!o.model && !o.remote)     /* --remote: -m names the server's model (default: its first) */
        return cli_usage_error(&cmd_run,
                               "which model? give -m MODEL (or default_model in the config)");
    if (prompt_arg && file)
        return cli_usage_error(&cmd_run, "give -p TEXT or -f FILE, not both");

    char *prompt = NULL;
    size_t prompt_len = 0;
    if (prompt_arg) {
        prompt = strdup(prompt_arg);
        prompt_len = prompt ? strlen(prompt) : 0;
    } else {
        FILE *f = file ? fopen(file, "rb") : stdin;
        if (!f)
            return cli_error("%s: %s", file, strerror(errno));
        prompt = read_all(f, &prompt_len);
        int e = errno;
        if (file)
            fclose(f);
        if (!prompt)
            return cli_error("reading %s: %s", file ? file : "standard input", strerror(e));
    }
    if (!prompt)
        return cli_error("out of memory");

    char path[4096];
    const char *model_file = o.remote ? o.remote : cli_find_model(&o, o.model, path, sizeof path);
    struct model_params mp;
    cli_model_params(&o, KV_TYPE_F16, &mp);
    struct engine *eng = NULL;
    struct run_store rst = {0};
    struct tokens gen = {0};
    char err[512] = "";
    int status = 1;
    if ((rc = engine_open(&eng, err, sizeof err))) {
        cli_error("%s", err);
        goto out;
    }
    struct sigaction sa = {.sa_handler = on_sigint};
    sigaction(SIGINT, &sa, NULL);

    struct engine_event ev;
    if (o.remote) {
        char key[1024] = "";
        if (o.api_key_file && remote_read_key(o.api_key_file, key, sizeof key, err, sizeof err)) {
            cli_error("%s", err);
            goto out;
        }
        struct engine_remote er = {o.remote, key[0] ? key : NULL, o.model};
        bool queued = engine_load_remote(eng, &er) != 0;
        memset(key, 0, sizeof key);
        if (!queued) {
            cli_error("out of memory");
            goto out;
        }
    } else {
        engine_load(eng, model_file, &mp);
    }
    if (!wait_for(eng, ENGINE_EVENT_LOADED, &ev)) {
        cli_error("%s", ev.u.error);
        goto out;
    }
    if (o.verbose && !o.remote)
        cli_print_plan(&ev.u.loaded, model_file);
    if (o.db && run_store_begin(&rst, o.db, model_file, &ev.u.loaded, raw ? NULL : o.system,
                                prompt)) {
        cli_error("%s", rst.err);
        goto out;
    }

    struct chat_msg msgs[2];
    size_t n_msgs = 0;
    if (o.system && !raw)
        msgs[n_msgs++] = (struct chat_msg){CHAT_ROLE_SYSTEM, o.system};
    msgs[n_msgs++] = (struct chat_msg){CHAT_ROLE_USER, prompt};
    struct engine_generate_params gp = {.max_tokens = o.max_tokens, .raw = raw};
    sampler_params_default(&gp.sampler);
    gp.sampler.temperature = o.temp;
    gp.sampler.top_k = o.top_k;
    gp.sampler.top_p = o.top_p;
    gp.sampler.min_p = o.min_p;
    gp.sampler.repeat_penalty = o.repeat_penalty;
    gp.sampler.repeat_last_n = o.repeat_last_n;
    gp.sampler.seed = o.seed_set ? o.seed : 0;
    if (o.seed_set && o.seed == 0)
        gp.sampler.seed = 1;  /* 0 asks the engine for a random seed */
    gp.think_budget = o.think_budget;
    gp.think_mode = o.think_mode == ENGINE_THINK_HARD ? ENGINE_THINK_HARD : ENGINE_THINK_SOFT;
    gp.think_off = o.think_off;
    if (!engine_generate(eng, msgs, n_msgs, &gp)) {
        cli_error("out of memory");
        goto out;
    }
    bool failed = false, stopping = false;
    char error[sizeof ev.u.error] = "";
    for (;;) {
        if (interrupted && !stopping) {
            engine_stop(eng);
            stopping = true;
        }
        struct pollfd pfd = {.fd = engine_fd(eng), .events = POLLIN};
        if (poll(&pfd, 1, 200) < 0 && errno != EINTR)
            break;
        bool finished = false;
        while (engine_next(eng, &ev)) {
            if (ev.type == ENGINE_EVENT_TOKEN) {
                if (print_ids && ev.u.token.first && tokens_push(&gen, ev.u.token.id))
                    failed = true;
                run_store_piece(&rst, ev.u.token.kind, ev.u.token.text, ev.u.token.len);
                if (!print_ids && ev.u.token.len) {
                    struct reason_span sp = {ev.u.token.kind, ev.u.token.text, ev.u.token.len,
                                             ev.u.token.leading};
                    emit(&out, &sp);
                }
            } else if (ev.type == ENGINE_EVENT_ERROR) {
                cli_error("%s", ev.u.error);
                snprintf(error, sizeof error, "%s", ev.u.error);
                failed = true;
            } else if (ev.type == ENGINE_EVENT_DONE) {
                run_store_finish(&rst, &ev, error[0] ? error : NULL);
                finished = true;
                break;
            }
        }
        if (finished)
            break;
    }
    if (print_ids) {
        for (size_t i = 0; i < gen.n; i++)
            printf("%s%d", i ? " " : "", gen.ids[i]);
        putchar('\n');
    } else {
        if (out.in_reasoning && out.reasoning == REASONING_SHOW)
            fputs("\n</think>", stdout);
        putchar('\n');
    }
    if (fflush(stdout)) {
        cli_error("writing the output: %s", strerror(errno));
        goto out;
    }
    if (rst.failed) {
        cli_error("recording the run in %s: %s", o.db, rst.err);
        goto out;
    }
    if (failed)
        goto out;
    const struct engine_stats *st = &ev.u.done.stats;
    if (o.verbose)
        fprintf(stderr,
                "prompt: %d tokens in %.0f ms (%.1f t/s); first token after %.0f ms; "
                "reasoning %d tokens in %.0f ms, answer %d tokens in %.0f ms (%.1f t/s); "
                "stop: %s; seed %llu\n",
                st->prompt_tokens, st->prompt_ms, st->prompt_tps, st->first_token_ms,
                st->reasoning_tokens, st->reasoning_ms, st->answer_tokens, st->answer_ms,
                st->gen_tps, engine_stop_name(ev.u.done.stop),
                (unsigned long long)st->sampler.seed);
    if (o.verbose && st->think_budget > 0)
        fprintf(stderr, "thinking budget: %d tokens (%s), %s after %d reasoning tokens\n",
                st->think_budget, st->think_mode == ENGINE_THINK_HARD ? "hard" : "soft",
                st->budget_reached ? "reached" : "not reached", st->reasoning_tokens);
    if (o.verbose && st->think_off)
        fprintf(stderr, "thinking: off\n");
    if (o.verbose && rst.s)
        fprintf(stderr, "recorded as conversation %lld in %s\n", (long long)rst.conv, o.db);
    status = interrupted ? 130 : 0;
out:
    engine_close(eng);
    store_close(rst.s);
    tokens_free(&gen);
    free(prompt);
    return status;
}
