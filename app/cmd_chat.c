/* ponder chat (and ponder with no command): the chat interface on a terminal,
 * or line mode (a message per input line, replies on stdout) when stdin or
 * stdout is not one. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/advisor.h"
#include "app/cli.h"
#include "history/store.h"
#include "infer/engine.h"
#include "infer/gguf.h"
#include "infer/remote.h"
#include "ui/session.h"
#include "ui/ui.h"

enum {
    OPT_CONTINUE = 'c',
    OPT_CHAT_CTX = OPT_CMD_BASE, OPT_SCRIPT, OPT_NO_HISTORY, OPT_REASONING,
};

#define CHAT_MAX_MODELS 64

static int chat_exec(int argc, char **argv);

const struct cmd cmd_chat = {
    .name = "chat",
    .summary = "the chat interface (line mode when not on a terminal)",
    .usage =
        "usage: ponder [chat] [-m MODEL]... [-c|--continue] [--db PATH] [--no-history]\n"
        "                     [--fold|--no-fold] [--think-budget N] [--think-mode soft|hard]\n"
        "                     [--think on|off] [--remote URL [--api-key-file F]]\n"
        "                     [--system TEXT] [sampling options]\n\n"
        "Opens the chat interface: the reasoning streams apart from the answer and folds\n"
        "once the answer starts; F1 lists every key.  Each -m adds a model to the picker\n"
        "(F2), the first is loaded; without -m the models of $XDG_DATA_HOME/ponder/models\n"
        "and the config's model_dirs are listed and default_model (or the first) is\n"
        "loaded.  -c continues the last conversation.  When standard input or output\n"
        "is not a terminal (or TERM is dumb), each input line is a message and each\n"
        "answer is written to stdout (the reasoning to stderr, or\n"
        "--reasoning show|hide).  Conversations are kept in the history store\n"
        "(--db PATH; --no-history keeps nothing).  --fold / --no-fold override the\n"
        "config's fold_reasoning.  --think-budget N limits the reasoning of each reply\n"
        "(soft: nudged to end from 80 %; hard: cut at N), --think off answers directly;\n"
        "Ctrl-B and /set budget change it in the interface.  --remote URL chats with a\n"
        "model served by an OpenAI-compatible server (-m then names the server's model).\n\n"
        "options: --ctx N (the context; -c is --continue here), -t/--threads N,\n"
        "  -n/--max-tokens N, --kv-type f16|f32, --cpu portable|avx2|avx512\n"
        "sampling: --temp T (0.6), --top-k K, --top-p P (0.95), --min-p P,\n"
        "  --repeat-penalty R, --seed N\n",
    .exec = chat_exec,
};

struct chat_models {
    char *v[CHAT_MAX_MODELS];       /* a file, or "remote:URL" */
    char *label[CHAT_MAX_MODELS];   /* for the picker */
    char *name[CHAT_MAX_MODELS];    /* general.name, or the remote's model name */
    uint64_t size[CHAT_MAX_MODELS];
    struct engine_remote remote[CHAT_MAX_MODELS];
    char *key[CHAT_MAX_MODELS];     /* a remote's API key */
    bool is_remote[CHAT_MAX_MODELS];
    size_t n;
};

static void models_add(struct chat_models *m, const char *path)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->v[i], path))
            return;
    if (m->n < CHAT_MAX_MODELS && (m->v[m->n] = strdup(path)))
        m->n++;
}

/* Reads an API key file (its first line, trimmed); NULL after printing why. */
static char *read_key_file(const char *path)
{
    char key[4096], err[512];
    if (remote_read_key(path, key, sizeof key, err, sizeof err)) {
        cli_error("%s", err);
        return NULL;
    }
    return strdup(key);
}

/* A remote model: url, the server's model name (NULL: its first), a key
 * file (NULL: none).  Returns 1 after printing an error (the key file). */
static int models_add_remote(struct chat_models *m, const char *url, const char *name,
                             const char *keyfile)
{
    char path[1200];
    snprintf(path, sizeof path, "remote:%s%s%s", url, name ? "#" : "", name ? name : "");
    size_t before = m->n;
    models_add(m, path);
    if (m->n == before)
        return 0;
    size_t i = m->n - 1;
    m->is_remote[i] = true;
    m->name[i] = name ? strdup(name) : NULL;
    m->key[i] = NULL;
    if (keyfile && *keyfile && !(m->key[i] = read_key_file(keyfile))) {
        free(m->v[i]);
        free(m->name[i]);
        m->name[i] = NULL;
        m->n--;
        return 1;
    }
    /* the url after "remote:" and before "#NAME" */
    char *u = strdup(url);
    m->remote[i] = (struct engine_remote){.url = u, .api_key = m->key[i], .model = m->name[i]};
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.gguf files of dir, sorted, added to m. */
static void models_scan(struct chat_models *m, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char *found[CHAT_MAX_MODELS];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < CHAT_MAX_MODELS) {
        size_t len = strlen(de->d_name);
        if (len > 5 && !strcmp(de->d_name + len - 5, ".gguf")) {
            size_t cap = strlen(dir) + len + 2;
            if ((found[n] = malloc(cap)))
                snprintf(found[n++], cap, "%s/%s", dir, de->d_name);
        }
    }
    closedir(d);
    qsort(found, n, sizeof found[0], cmp_str);
    for (size_t i = 0; i < n; i++) {
        models_add(m, found[i]);
        free(found[i]);
    }
}

static void models_free(struct chat_models *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i]);
        free(m->label[i]);
        free(m->name[i]);
        free(m->key[i]);
        if (m->is_remote[i])
            free((char *)m->remote[i].url);
    }
    memset(m, 0, sizeof *m);
}

/* The base name of a path without ".gguf". */
static void stem(const char *path, char *buf, size_t cap)
{
    const char *b = strrchr(path, '/');
    snprintf(buf, cap, "%s", b ? b + 1 : path);
    size_t l = strlen(buf);
    if (l > 5 && !strcmp(buf + l - 5, ".gguf"))
        buf[l - 5] = 0;
}

/* The config's favourites ("a, b, c": file names with or without .gguf,
 * general.name or a remote's name) as indexes into m, in their order. */
static size_t models_favourites(const struct chat_models *m, const char *list, size_t *out)
{
    size_t n = 0;
    const char *cur = list;
    while (*cur && n < CHAT_MAX_MODELS) {
        size_t len = strcspn(cur, ",");
        char want[512];
        const char *s = cur, *e = cur + len;
        cur = *e ? e + 1 : e;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e == s || (size_t)(e - s) >= sizeof want)
            continue;
        memcpy(want, s, (size_t)(e - s));
        want[e - s] = 0;
        size_t wl = strlen(want);
        if (wl > 5 && !strcmp(want + wl - 5, ".gguf"))
            want[wl - 5] = 0;
        for (size_t i = 0; i < m->n; i++) {
            char st[512];
            stem(m->v[i], st, sizeof st);
            bool hit = (!m->is_remote[i] && !strcmp(st, want)) ||
                       (m->name[i] && !strcmp(m->name[i], want));
            bool dup = false;
            for (size_t k = 0; k < n; k++)
                dup |= out[k] == i;
            if (hit && !dup) {
                out[n++] = i;
                break;
            }
        }
    }
    return n;
}

struct speed_ctx {
    const char *name;
    double tps;
};

static int speed_fn(void *ctx, const struct store_stats *st)
{
    struct speed_ctx *c = ctx;
    if (!strcmp(st->model, c->name) && st->gen_tps_median > c->tps)
        c->tps = st->gen_tps_median;
    return 0;
}

/* Where a plan runs, as the picker's "fits" column says it. */
static void fits_text(const struct plan *p, char *buf, size_t cap)
{
    if (!p->fits)
        snprintf(buf, cap, "does not fit");
    else if (p->n_gpu_layers >= p->n_layer && p->n_layer > 0 && !p->experts_on_cpu)
        snprintf(buf, cap, "full");
    else if (p->experts_on_cpu)
        snprintf(buf, cap, "experts in RAM");
    else if (p->n_gpu_layers > 0)
        snprintf(buf, cap, "%d of %d layers", p->n_gpu_layers, p->n_layer);
    else
        snprintf(buf, cap, "CPU only");
}

/* The picker's line for each model: file, architecture, parameters, weight
 * type, size, where it runs at this context (the memory plan, from the
 * advisor; "?" when it cannot say), and its speed: predicted by the advisor
 * ("~"), measured here ("measured"), or the median of the runs the store
 * recorded. */
static void models_label(struct chat_models *m, struct store *store, const struct cli_opts *o)
{
    struct advisor_machine mc;
    char err[256];
    bool advisor = !advisor_machine_probe(&mc,
                                          ADVISOR_PROBE_QUICK |
                                              (o->backend == MODEL_BACKEND_CPU
                                                   ? ADVISOR_PROBE_NO_DEVICE : 0),
                                          o->n_threads, store, err, sizeof err);
    for (size_t i = 0; i < m->n; i++) {
        char line[512], name[128] = "", arch[32] = "?", params[32] = "?", wt[16] = "?";
        char speed[48] = "", fits[32] = "?";
        if (m->is_remote[i]) {
            snprintf(line, sizeof line, "%-28.28s %-9.9s %7s %-6.6s %13s  %-14s %s",
                     m->name[i] ? m->name[i] : "(first model)", "remote", "", "", "",
                     "remote", m->remote[i].url);
            m->label[i] = strdup(line);
            continue;
        }
        const char *base = strrchr(m->v[i], '/');
        base = base ? base + 1 : m->v[i];
        struct gguf *g = NULL;
        double mib = 0;
        if (gguf_open(m->v[i], &g, err, sizeof err) == 0) {
            struct gguf_str gs;
            if (!gguf_get_str(g, "general.architecture", &gs, err, sizeof err))
                snprintf(arch, sizeof arch, "%.*s", (int)(gs.len < 31 ? gs.len : 31), gs.ptr);
            if (!gguf_get_str(g, "general.name", &gs, err, sizeof err))
                snprintf(name, sizeof name, "%.*s", (int)(gs.len < 127 ? gs.len : 127), gs.ptr);
            int64_t n_params = 0;
            size_t best = 0, bytes[64] = {0};
            const char *best_type = "?";
            for (int64_t t = 0; t < gguf_n_tensors(g); t++) {
                const struct gguf_tensor *ti = gguf_tensor(g, t);
                n_params += ti->n_elements;
                unsigned k = (unsigned)ti->type % 64;
                bytes[k] += ti->size;
                if (bytes[k] > best) {
                    best = bytes[k];
                    best_type = gguf_tensor_type_name(ti->type);
                }
            }
            snprintf(wt, sizeof wt, "%s", best_type);
            if (n_params >= 1000000000)
                snprintf(params, sizeof params, "%.1fB", n_params / 1e9);
            else if (n_params >= 1000000)
                snprintf(params, sizeof params, "%.1fM", n_params / 1e6);
            else
                snprintf(params, sizeof params, "%.1fK", n_params / 1e3);
            m->size[i] = gguf_file_size(g);
            mib = m->size[i] / (1024.0 * 1024);
            gguf_close(g);
        }
        struct advisor_estimate est;
        if (advisor && !advisor_file_estimate(m->v[i], o->n_ctx, &mc, store, &est, err,
                                              sizeof err)) {
            fits_text(&est.plan, fits, sizeof fits);
            if (est.tg_tps > 0)
                snprintf(speed, sizeof speed, "%s%.1f t/s%s", est.measured ? "" : "~",
                         est.tg_tps, est.measured ? " measured" : "");
        }
        struct speed_ctx sc = {name, 0};
        if (!speed[0] && store && name[0] &&
            !store_stats(store, name, speed_fn, &sc, err, sizeof err) && sc.tps > 0)
            snprintf(speed, sizeof speed, "%.1f t/s here", sc.tps);
        snprintf(line, sizeof line, "%-28.28s %-9.9s %7s %-6.6s %9.1f MiB  %-14s %s", base, arch,
                 params, wt, mib, fits, speed);
        m->label[i] = strdup(line);
        if (name[0])
            m->name[i] = strdup(name);
    }
}

/* The sizes and names the switch estimate needs, for line mode too. */
static void models_sizes(struct chat_models *m)
{
    for (size_t i = 0; i < m->n; i++) {
        struct stat st;
        if (!m->is_remote[i] && !m->size[i] && stat(m->v[i], &st) == 0)
            m->size[i] = (uint64_t)st.st_size;
    }
}

/* $XDG_<kind>_HOME/ponder/<file> or ~/<fallback>/ponder/<file>; "" when
 * neither is set. */
static void xdg_path(const char *env, const char *fallback, const char *file, char *buf,
                     size_t cap)
{
    const char *x = getenv(env), *home = getenv("HOME");
    if (x && *x)
        snprintf(buf, cap, "%s/ponder%s%s", x, file ? "/" : "", file ? file : "");
    else if (home && *home)
        snprintf(buf, cap, "%s/%s/ponder%s%s", home, fallback, file ? "/" : "", file ? file : "");
    else
        buf[0] = 0;
}

static void mkdirs(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0700);
            *p = '/';
        }
    }
    mkdir(tmp, 0700);
}

static struct store *open_store(const struct cli_opts *o)
{
    char path[4096], err[512] = "";
    const char *p = o->db;
    if (!p) {
        if (store_default_path(getenv("XDG_DATA_HOME"), getenv("HOME"), path, sizeof path, err,
                               sizeof err)) {
            fprintf(stderr, "ponder: %s; the conversation will not be kept\n", err);
            return NULL;
        }
        p = path;
    }
    struct store *s = NULL;
    if (store_open(p, STORE_CREATE, &s, err, sizeof err)) {
        fprintf(stderr, "ponder: %s; the conversation will not be kept\n", err);
        return NULL;
    }
    return s;
}

static const char no_model_hint[] =
    "no model: give one with 'ponder chat -m FILE.gguf', or put .gguf files in "
    "~/.local/share/ponder/models ($XDG_DATA_HOME/ponder/models)";

static const char demo_notice[] =
    "This is ponder's small demo model: it adds, subtracts, multiplies and compares numbers. "
    "For a real R1 model, put downloaded GGUF files in ~/.local/share/ponder/models "
    "or run 'ponder chat -m FILE.gguf'.";

/* ---- line mode ---- */

static volatile sig_atomic_t line_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    line_interrupted = 1;
}

static bool wait_loaded(struct ui_source *src, char *err, size_t errlen, struct model_info *info)
{
    struct engine_event ev;
    for (;;) {
        struct pollfd pfd = {.fd = src->fd(src->ctx), .events = POLLIN};
        if (poll(&pfd, 1, 200) < 0 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            return false;
        }
        if (line_interrupted) {
            snprintf(err, errlen, "interrupted");
            return false;
        }
        while (src->next(src->ctx, &ev)) {
            if (ev.type == ENGINE_EVENT_LOADED) {
                *info = ev.u.loaded;
                return true;
            }
            if (ev.type == ENGINE_EVENT_ERROR) {
                snprintf(err, errlen, "%s", ev.u.error);
                return false;
            }
        }
    }
}

struct line_opts {
    int reasoning;      /* 0 stderr, 1 show, 2 hide */
};

/* Streams one reply; 0, or 1 after printing an error. */
static int line_reply(struct ui_source *src, struct session *ses,
                      const struct engine_generate_params *gp, const struct line_opts *lo)
{
    const struct chat_msg *msgs;
    size_t n;
    if (session_chat(ses, &msgs, &n) || !src->generate(src->ctx, msgs, n, gp))
        return cli_error("out of memory");
    session_reply_begin(ses);
    bool in_reasoning = false, any_reasoning = false, stopping = false, failed = false;
    char error[512] = "";
    struct engine_event ev;
    for (;;) {
        if (line_interrupted && !stopping) {
            src->stop(src->ctx);
            stopping = true;
        }
        struct pollfd pfd = {.fd = src->fd(src->ctx), .events = POLLIN};
        if (poll(&pfd, 1, 200) < 0 && errno != EINTR)
            return cli_error("poll: %s", strerror(errno));
        bool done = false;
        while (!done && src->next(src->ctx, &ev)) {
            if (ev.type == ENGINE_EVENT_TOKEN && ev.u.token.len) {
                session_reply_piece(ses, ev.u.token.kind, ev.u.token.text, ev.u.token.len);
                if (ev.u.token.leading)
                    continue;
                if (ev.u.token.kind == REASON_KIND_REASONING) {
                    any_reasoning = true;
                    if (lo->reasoning == 0) {
                        fwrite(ev.u.token.text, 1, ev.u.token.len, stderr);
                    } else if (lo->reasoning == 1) {
                        if (!in_reasoning)
                            fputs("<think>\n", stdout);
                        in_reasoning = true;
                        fwrite(ev.u.token.text, 1, ev.u.token.len, stdout);
                    }
                } else {
                    if (in_reasoning)
                        fputs("\n</think>\n\n", stdout);
                    else if (any_reasoning && lo->reasoning == 0)
                        fputc('\n', stderr);
                    in_reasoning = false;
                    any_reasoning = false;
                    fwrite(ev.u.token.text, 1, ev.u.token.len, stdout);
                }
                fflush(stdout);
            } else if (ev.type == ENGINE_EVENT_ERROR) {
                snprintf(error, sizeof error, "%s", ev.u.error);
                failed = true;
            } else if (ev.type == ENGINE_EVENT_DONE) {
                done = true;
            }
        }
        if (done)
            break;
    }
    if (in_reasoning)
        fputs("\n</think>", stdout);
    fputs("\n\n", stdout);
    fflush(stdout);
    session_reply_end(ses, ev.u.done.stop, failed ? NULL : &ev.u.done.stats,
                      failed ? error : NULL);
    if (failed)
        return cli_error("%s", error);
    return 0;
}

static int line_mode(struct ui_source *src, struct session *ses, const char *model_file,
                     const struct engine_remote *remote, const struct model_params *mp,
                     const struct engine_generate_params *gp, const struct line_opts *lo)
{
    struct sigaction sa = {.sa_handler = on_sigint};
    sigaction(SIGINT, &sa, NULL);
    if (!model_file)
        return cli_error("%s", no_model_hint);
    char err[512];
    struct model_info info;
    if (!(remote ? src->load_remote(src->ctx, remote) : src->load(src->ctx, model_file, mp)))
        return cli_error("out of memory");
    if (!wait_loaded(src, err, sizeof err, &info))
        return cli_error("%s", err);
    session_set_model(ses, model_file, &info);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int status = 0;
    while (!line_interrupted && (len = getline(&line, &cap, stdin)) >= 0) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (!len)
            continue;
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit"))
            break;
        if (!strcmp(line, "/new")) {
            session_new(ses);
            continue;
        }
        if (session_user(ses, line)) {
            status = cli_error("out of memory");
            break;
        }
        if ((status = line_reply(src, ses, gp, lo)))
            break;
    }
    free(line);
    if (ses->store_err[0])
        fprintf(stderr, "ponder: %s\n", ses->store_err);
    if (line_interrupted && !status)
        status = 130;
    return status;
}

static int chat_exec(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"ctx", required_argument, 0, OPT_CHAT_CTX},   /* before the common --ctx: -c is --continue */
        CLI_COMMON_LONG_OPTIONS,
        {"continue", no_argument, 0, OPT_CONTINUE},
        {"script", required_argument, 0, OPT_SCRIPT},
        {"no-history", no_argument, 0, OPT_NO_HISTORY},
        {"reasoning", required_argument, 0, OPT_REASONING},
        {0, 0, 0, 0},
    };
    struct cli_opts o;
    cli_defaults(&o);
    static struct chat_models models;   /* large; chat_exec runs once */
    const char *given[CHAT_MAX_MODELS];
    size_t n_given = 0;
    memset(&models, 0, sizeof models);
    const char *script = NULL;
    bool resume = false, no_history = false;
    bool fold = !o.config.has_fold_reasoning || o.config.fold_reasoning;
    struct line_opts lo = {0};
    int c, rc, status = 1;
    char path[4096];
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:t:n:vhc", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_CONTINUE: resume = true; break;
        case OPT_SCRIPT: script = optarg; break;
        case OPT_NO_HISTORY: no_history = true; break;
        case OPT_MODEL:
            if (n_given < CHAT_MAX_MODELS)
                given[n_given++] = optarg;
            break;
        case OPT_REASONING:
            if (!strcmp(optarg, "stderr"))
                lo.reasoning = 0;
            else if (!strcmp(optarg, "show"))
                lo.reasoning = 1;
            else if (!strcmp(optarg, "hide"))
                lo.reasoning = 2;
            else {
                models_free(&models);
                return cli_usage_error(&cmd_chat,
                                       "--reasoning is stderr, show or hide, not '%s'", optarg);
            }
            break;
        case '?': models_free(&models); return cli_bad_option(&cmd_chat, argc, argv);
        default:
            rc = cli_common(&cmd_chat, c == OPT_CHAT_CTX ? OPT_CTX : c, optarg, &o);
            if (rc < 0) {
                models_free(&models);
                fputs(cmd_chat.usage, stdout);
                return 0;
            }
            if (rc) {
                models_free(&models);
                return rc;
            }
        }
    }
    if (optind < argc) {
        models_free(&models);
        return cli_usage_error(&cmd_chat, "unexpected argument '%s'", argv[optind]);
    }
    if (o.fold_set)
        fold = o.fold;
    char dir[4096];
    if (o.remote) {
        /* --remote URL: -m names the server's model (none: its first) */
        if (models_add_remote(&models, o.remote, n_given ? given[0] : NULL, o.api_key_file))
            goto out_early;
        n_given = 0;
    }
    for (size_t i = 0; i < n_given; i++)
        models_add(&models, cli_find_model(&o, given[i], path, sizeof path));
    if (!models.n && o.config.default_model[0])     /* the config's default comes first */
        models_add(&models, cli_find_model(&o, o.config.default_model, path, sizeof path));
    xdg_path("XDG_DATA_HOME", ".local/share", "models", dir, sizeof dir);
    if (dir[0])
        models_scan(&models, dir);
    for (const char *cur = o.config.model_dirs; config_next_dir(&cur, dir, sizeof dir);)
        models_scan(&models, dir);
    for (int i = 0; i < o.config.n_remotes; i++) {
        const struct config_remote *r = &o.config.remotes[i];
        if (models_add_remote(&models, r->url, r->name, r->keyfile[0] ? r->keyfile : NULL))
            fprintf(stderr, "ponder: the remote model %s is left out\n", r->name);
    }
    const char *notice = NULL;
    if (models.n == 0) {
        char demo[4096];
        if (cli_demo_model(demo, sizeof demo)) {
            models_add(&models, demo);
            notice = demo_notice;
        }
    }
    const char *model_file = models.n ? models.v[0] : NULL;
    models_sizes(&models);

    struct model_params mp;
    cli_model_params(&o, KV_TYPE_F16, &mp);
    struct engine_generate_params gp = {.max_tokens = o.max_tokens};
    sampler_params_default(&gp.sampler);
    gp.sampler.temperature = o.temp;
    gp.sampler.top_k = o.top_k;
    gp.sampler.top_p = o.top_p;
    gp.sampler.min_p = o.min_p;
    gp.sampler.repeat_penalty = o.repeat_penalty;
    gp.sampler.repeat_last_n = o.repeat_last_n;
    gp.sampler.seed = o.seed_set ? (o.seed ? o.seed : 1) : 0;
    gp.think_budget = o.think_budget;
    gp.think_mode = o.think_mode ? ENGINE_THINK_HARD : ENGINE_THINK_SOFT;
    gp.think_off = o.think_off;

    struct store *store = no_history ? NULL : open_store(&o);
    if (!script && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
        models_label(&models, store, &o);     /* only the screen's picker shows them */
    struct engine *eng = NULL;
    struct ui_source src = {0};
    struct session ses;
    session_init(&ses, store);
    ses.driver = "line";
    char err[512] = "";
    if (script) {
        if (ui_script_open(script, &src, err, sizeof err)) {
            cli_error("%s", err);
            goto out;
        }
    } else {
        if (engine_open(&eng, err, sizeof err)) {
            cli_error("%s", err);
            goto out;
        }
        ui_source_engine(&src, eng);
    }
    int64_t resume_id = resume ? session_latest(store) : 0;
    if (resume && !resume_id)
        fprintf(stderr, "ponder: no conversation to continue; starting a new one\n");

    const char *term = getenv("TERM");
    bool dumb = !term || !*term || !strcmp(term, "dumb");
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO) || dumb) {
        if (session_set_system(&ses, o.system)) {
            cli_error("out of memory");
            goto out;
        }
        if (resume_id && session_open(&ses, resume_id, err, sizeof err)) {
            cli_error("%s", err);
            goto out;
        }
        if (notice)
            fprintf(stderr, "ponder: %s\n", notice);
        status = line_mode(&src, &ses, model_file, models.n && models.is_remote[0] ?
                           &models.remote[0] : NULL, &mp, &gp, &lo);
        goto out;
    }

    char hist[4096];
    xdg_path("XDG_STATE_HOME", ".local/state", NULL, hist, sizeof hist);
    if (hist[0]) {
        mkdirs(hist);
        size_t l = strlen(hist);
        snprintf(hist + l, sizeof hist - l, "/input_history");
    }
    const char *nc = getenv("NO_COLOR");
    static struct ui_model ums[CHAT_MAX_MODELS];
    static size_t favs[CHAT_MAX_MODELS];
    for (size_t i = 0; i < models.n; i++)
        ums[i] = (struct ui_model){
            .path = models.v[i], .label = models.label[i], .name = models.name[i],
            .file_size = models.size[i],
            .remote = models.is_remote[i] ? &models.remote[i] : NULL,
        };
    size_t n_favs = models_favourites(&models, o.config.favourites, favs);
    struct ui_config cfg = {
        .src = &src,
        .store = store,
        .models = ums,
        .n_models = models.n,
        .first = models.n ? 0 : -1,
        .favourites = favs,
        .n_favourites = n_favs,
        .fits_title = "columns: file, arch, params, type, size, fits here, generation speed",
        .mouse = !o.config.has_mouse || o.config.mouse,
        .mp = mp,
        .gp = gp,
        .system = o.system,
        .input_history = hist[0] ? hist : NULL,
        .editor = getenv("VISUAL") && *getenv("VISUAL") ? getenv("VISUAL") : getenv("EDITOR"),
        .no_model_hint = no_model_hint,
        .notice = notice,
        .color = !(nc && *nc),
        .fold_reasoning = fold,
        .resume = resume_id,
    };
    if (ui_run(&cfg, err, sizeof err)) {
        cli_error("%s", err);
        goto out;
    }
    status = 0;
out:
    session_free(&ses);
    if (script)
        ui_script_close(&src);
    engine_close(eng);
    store_close(store);
out_early:
    models_free(&models);
    return status;
}
