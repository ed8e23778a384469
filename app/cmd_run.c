/* ponder run: one reply to one prompt, streamed.  The answer goes to stdout,
 * the reasoning to stderr (or inline, or nowhere). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/cli.h"
#include "infer/engine.h"
#include "infer/tokenizer.h"

enum { OPT_PROMPT = 'p', OPT_FILE = 'f', OPT_RAW = OPT_CMD_BASE, OPT_REASONING, OPT_PRINT_IDS };
enum reasoning_out { REASONING_STDERR, REASONING_SHOW, REASONING_HIDE };

static int run_exec(int argc, char **argv);

const struct cmd cmd_run = {
    .name = "run",
    .summary = "one reply to a prompt (-p TEXT, -f FILE or stdin)",
    .usage =
        "usage: ponder run -m MODEL [-p TEXT | -f FILE] [--raw] [--reasoning stderr|show|hide]\n"
        "                  [--print-ids] [--system TEXT] [-n N] [sampling options]\n\n"
        "Answers one prompt (from -p, -f or standard input).  The prompt is wrapped in\n"
        "the model's chat format unless --raw (then it is fed as is, BOS as the model\n"
        "says).  The answer goes to stdout; the reasoning goes to stderr (default),\n"
        "inline (show) or nowhere (hide).  --print-ids prints the generated token ids\n"
        "instead of text.  Without -m, default_model of the config file is used.\n\n"
        "options: -c/--ctx N, -t/--threads N, -n/--max-tokens N, --kv-type f16|f32,\n"
        "  --cpu portable|avx2|avx512, -v (memory plan and timings)\n"
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
    if (!o.model && o.config.default_model[0])
        o.model = o.config.default_model;
    if (!o.model)
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
    const char *model_file = cli_find_model(&o, o.model, path, sizeof path);
    struct model_params mp;
    cli_model_params(&o, KV_TYPE_F16, &mp);
    struct engine *eng = NULL;
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
    engine_load(eng, model_file, &mp);
    if (!wait_for(eng, ENGINE_EVENT_LOADED, &ev)) {
        cli_error("%s", ev.u.error);
        goto out;
    }
    if (o.verbose)
        cli_print_plan(&ev.u.loaded, model_file);

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
                if (!print_ids && ev.u.token.len) {
                    struct reason_span sp = {ev.u.token.kind, ev.u.token.text, ev.u.token.len,
                                             ev.u.token.leading};
                    emit(&out, &sp);
                }
            } else if (ev.type == ENGINE_EVENT_ERROR) {
                cli_error("%s", ev.u.error);
                failed = true;
            } else if (ev.type == ENGINE_EVENT_DONE) {
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
    status = interrupted ? 130 : 0;
out:
    engine_close(eng);
    tokens_free(&gen);
    free(prompt);
    return status;
}
