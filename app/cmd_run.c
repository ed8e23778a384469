/* ponder run: one reply to one prompt, streamed.  The answer goes to stdout,
 * the reasoning to stderr (or inline, or nowhere). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/cli.h"
#include "infer/chat.h"
#include "infer/gguf.h"
#include "infer/model.h"
#include "infer/reason.h"
#include "infer/sampler.h"
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
        "instead of text.\n\n"
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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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

static uint64_t random_seed(void)
{
    uint64_t s = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &s, sizeof s) != (ssize_t)sizeof s)
            s = 0;
        close(fd);
    }
    return s ? s : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
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
    if (!o.model)
        return cli_usage_error(&cmd_run, "which model? give -m MODEL");
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

    struct model *m = NULL;
    struct sampler *smp = NULL;
    struct tokens ids = {0}, gen = {0};
    float *logits = NULL;
    char err[512] = "";
    int status = 1;
    if (cli_load_model(&o, KV_TYPE_F16, &m))
        goto out;
    const struct tokenizer *tok = model_tokenizer(m);
    const struct model_info *in = model_info(m);
    bool starts_in_reasoning = false;
    if (raw) {
        rc = tokenizer_encode(tok, prompt, prompt_len, tokenizer_add_bos(tok), true, &ids, err,
                              sizeof err);
    } else {
        struct chat_msg msgs[2];
        size_t n_msgs = 0;
        if (o.system)
            msgs[n_msgs++] = (struct chat_msg){CHAT_ROLE_SYSTEM, o.system};
        msgs[n_msgs++] = (struct chat_msg){CHAT_ROLE_USER, prompt};
        enum chat_format fmt = CHAT_FORMAT_DEEPSEEK_R1;
        struct gguf_str tmpl = {0};
        if (gguf_get_str(model_gguf(m), "tokenizer.chat_template", &tmpl, err, sizeof err) == 0 &&
            chat_detect(tmpl.ptr, (size_t)tmpl.len, &fmt, err, sizeof err))
            fprintf(stderr, "ponder: warning: %s; using the DeepSeek-R1 format\n", err);
        rc = chat_render(fmt, tok, msgs, n_msgs, true, &ids, NULL, err, sizeof err);
        starts_in_reasoning = chat_prompt_opens_reasoning(fmt);
    }
    if (rc) {
        cli_error("%s", err);
        goto out;
    }
    if (ids.n == 0) {
        cli_error("the prompt gives no tokens");
        goto out;
    }
    if (ids.n >= (size_t)in->n_ctx) {
        cli_error("the prompt has %zu tokens; the context holds %d (use --ctx)", ids.n, in->n_ctx);
        goto out;
    }
    struct sampler_params sp;
    sampler_params_default(&sp);
    sp.temperature = o.temp;
    sp.top_k = o.top_k;
    sp.top_p = o.top_p;
    sp.min_p = o.min_p;
    sp.repeat_penalty = o.repeat_penalty;
    sp.repeat_last_n = o.repeat_last_n;
    sp.seed = o.seed_set ? o.seed : random_seed();
    if ((rc = sampler_init(&sp, in->n_vocab, &smp, err, sizeof err))) {
        cli_error("%s", err);
        goto out;
    }
    logits = malloc((size_t)in->n_vocab * sizeof(float));
    if (!logits) {
        cli_error("out of memory");
        goto out;
    }
    struct sigaction sa = {.sa_handler = on_sigint};
    sigaction(SIGINT, &sa, NULL);

    double t0 = now_s();
    if ((rc = model_decode(m, ids.ids, (int)ids.n, logits, false, err, sizeof err))) {
        cli_error("%s", err);
        goto out;
    }
    double t_prompt = now_s() - t0, t_first = 0;
    int max = o.max_tokens >= 0 ? o.max_tokens : in->n_ctx - (int)ids.n;
    if (max > in->n_ctx - (int)ids.n)
        max = in->n_ctx - (int)ids.n;
    struct reason rs;
    reason_init(&rs, starts_in_reasoning);
    struct detok dt;
    detok_init(&dt);
    const char *stop = "length";
    double t1 = now_s();
    for (int i = 0; i < max; i++) {
        if (interrupted) {
            stop = "interrupted";
            break;
        }
        int32_t id = sampler_sample(smp, logits, in->n_vocab);
        sampler_accept(smp, id);
        if (i == 0)
            t_first = now_s() - t0;
        if (tokenizer_is_eog(tok, id)) {
            stop = "end";
            break;
        }
        if (tokens_push(&gen, id)) {
            cli_error("out of memory");
            goto out;
        }
        if (!print_ids) {
            char piece[256], text[256 + 8];
            int len = tokenizer_piece(tok, id, false, piece, sizeof piece);
            if (len > (int)sizeof piece)
                len = sizeof piece;
            if (len > 0) {
                size_t n = detok_push(&dt, piece, (size_t)len, text);
                reason_push(&rs, text, n, emit, &out);
            }
        }
        if (i + 1 == max)
            break;
        if ((rc = model_decode(m, &id, 1, logits, false, err, sizeof err))) {
            cli_error("%s", err);
            goto out;
        }
    }
    double t_gen = now_s() - t1;
    if (print_ids) {
        for (size_t i = 0; i < gen.n; i++)
            printf("%s%d", i ? " " : "", gen.ids[i]);
        putchar('\n');
    } else {
        char text[16];
        size_t n = detok_flush(&dt, text);
        if (n)
            reason_push(&rs, text, n, emit, &out);
        reason_flush(&rs, emit, &out);
        if (out.in_reasoning && out.reasoning == REASONING_SHOW)
            fputs("\n</think>\n", stdout);
        putchar('\n');
    }
    if (fflush(stdout)) {
        cli_error("writing the output: %s", strerror(errno));
        goto out;
    }
    if (o.verbose)
        fprintf(stderr,
                "\nprompt: %zu tokens in %.2f s (%.1f t/s); first token after %.2f s; "
                "generated %zu tokens in %.2f s (%.1f t/s); stop: %s; seed %llu\n",
                ids.n, t_prompt, (double)ids.n / (t_prompt > 0 ? t_prompt : 1e-9), t_first, gen.n,
                t_gen, (double)gen.n / (t_gen > 0 ? t_gen : 1e-9), stop,
                (unsigned long long)sp.seed);
    status = interrupted ? 130 : 0;
out:
    free(logits);
    sampler_free(smp);
    tokens_free(&ids);
    tokens_free(&gen);
    model_free(m);
    free(prompt);
    return status;
}
