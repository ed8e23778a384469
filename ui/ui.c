/* The chat screen: one poll() loop over the keyboard and the engine's event
 * fd, readline in callback mode for the input line, actions that set dirty
 * flags, and one redraw per loop turn. */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <curses.h>
#include <readline/history.h>
#include <readline/readline.h>

#include "ui/keymap.h"
#include "ui/session.h"
#include "ui/switch.h"
#include "ui/transcript.h"
#include "ui/ui.h"

enum ui_mode { UI_MODE_CHAT, UI_MODE_HELP, UI_MODE_MODELS, UI_MODE_HISTORY, UI_MODE_STATS };

enum {
    UI_PAIR_USER = 1, UI_PAIR_MODEL, UI_PAIR_THINK, UI_PAIR_NOTE, UI_PAIR_BAR,
};

#define UI_LIST_MAX 200
#define UI_WHEEL_LINES 3

struct ui_conv_row {
    int64_t id;
    bool pinned;
    double value;           /* stats: the median generation speed */
    char text[400];
};

struct ui {
    const struct ui_config *cfg;
    SCREEN *screen;
    struct ui_source *src;
    struct session ses;
    struct transcript tr;
    struct tr_lines lines;
    enum ui_mode mode;
    bool quit, color;
    int rows, cols;
    int scroll;                 /* lines above the bottom of the transcript */
    size_t last_total;
    /* the model */
    char *model_path;           /* loaded or loading */
    char *loading_path;
    long cur_model, loading_model;  /* indexes into cfg->models, -1: none or another file */
    double load_start_ms;
    bool switching;             /* the load replaces a loaded model */
    struct switch_cost cost;    /* estimated for that switch */
    bool reread_pending;        /* the next DONE gives the real re-read time */
    int conv_tokens;            /* the conversation as a model reads it (no reasoning) */
    bool mouse;                 /* wheel events are on */
    bool loaded, loading;
    float load_frac;
    char load_phase[32];
    char fallback_device[64];   /* info.device after the engine fell back to the CPU */        /* "reading", "uploading", ... */
    struct model_info info;
    int ctx_used;
    /* the reply */
    bool generating, stopping;
    enum engine_phase phase;
    double gen_start_ms;
    int gen_tokens;
    double tps;
    char gen_error[512];
    struct engine_generate_params gp;
    /* the input: bytes for readline, the line it accepted */
    unsigned char rlq[256];
    size_t rlq_head, rlq_n;
    char *accepted;
    bool got_eof;
    bool ctrl_x;
    char hint[256];             /* replaces the key hints until the next key */
    /* lists (picker, history, stats) */
    int sel;
    int help_top;               /* the help's first line shown */
    struct ui_conv_row *rows_v;
    size_t n_rows;
    char query[128];
    int64_t undo_id;
};

/* readline's callbacks take no context: the one running interface. */
static struct ui *ui_current;
/* the terminal as it was, for the signal handler */
static struct termios ui_saved_tio;
static volatile sig_atomic_t ui_tio_saved;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- terminal restore on fatal signals (async-signal-safe only) ---- */

static void on_fatal(int sig)
{
    static const char reset[] = "\033[?2004l\033[0m\033[?25h\033[?1049l\r\n";
    ssize_t w = write(STDOUT_FILENO, reset, sizeof reset - 1);
    (void)w;
    if (ui_tio_saved)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &ui_saved_tio);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void signals_install(bool on)
{
    static const int sigs[] = {SIGTERM, SIGHUP, SIGINT, SIGQUIT, SIGSEGV, SIGBUS, SIGFPE,
                               SIGABRT, SIGILL};
    struct sigaction sa = {.sa_handler = on ? on_fatal : SIG_DFL};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
}

/* ---- readline in callback mode ---- */

static int rl_getc_cb(FILE *f)
{
    (void)f;
    struct ui *u = ui_current;
    if (!u || !u->rlq_n)
        return EOF;
    int c = u->rlq[u->rlq_head];
    u->rlq_head = (u->rlq_head + 1) % sizeof u->rlq;
    u->rlq_n--;
    return c;
}

static int rl_avail_cb(void)
{
    return ui_current && ui_current->rlq_n > 0;
}

static void rl_redisplay_cb(void) {}
static void rl_prep_cb(int meta) { (void)meta; }
static void rl_deprep_cb(void) {}

static void rl_line_cb(char *line)
{
    struct ui *u = ui_current;
    if (!line) {
        u->got_eof = true;
        return;
    }
    free(u->accepted);
    u->accepted = line;
}

static void rl_feed(struct ui *u, const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (u->rlq_n == sizeof u->rlq)
            break;
        u->rlq[(u->rlq_head + u->rlq_n) % sizeof u->rlq] = b[i];
        u->rlq_n++;
    }
    while (u->rlq_n)
        rl_callback_read_char();
}

static void rl_feed_str(struct ui *u, const char *s)
{
    rl_feed(u, (const unsigned char *)s, strlen(s));
}

static char *complete_gen(const char *text, int state)
{
    static size_t i;
    if (!state)
        i = 0;
    size_t len = strlen(text);
    while (i < ui_n_commands) {
        const char *name = ui_commands[i++].name;
        if (!strchr(name, ' ') && !strncmp(name, text, len))    /* "/set budget" is /set's */
            return strdup(name);
    }
    return NULL;
}

static char **complete_cb(const char *text, int start, int end)
{
    (void)end;
    rl_attempted_completion_over = 1;
    if (start == 0 && text[0] == '/')
        return rl_completion_matches(text, complete_gen);
    return NULL;
}

/* ---- helpers ---- */

static void set_hint(struct ui *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_hint(struct ui *u, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->hint, sizeof u->hint, fmt, ap);
    va_end(ap);
}

static void note(struct ui *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct ui *u, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    tr_add_note(&u->tr, buf);
    u->scroll = 0;
}

static const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

/* The picker entry idx, or (idx < 0) the file at path. */
static void model_entry(const struct ui *u, long idx, const char *path, struct ui_model *out)
{
    if (idx >= 0) {
        *out = u->cfg->models[idx];
        return;
    }
    struct stat st;
    *out = (struct ui_model){.path = path};
    if (path && stat(path, &st) == 0)
        out->file_size = (uint64_t)st.st_size;
}

/* Loads picker entry idx, or (idx < 0) the file at path; when a model is
 * loaded, first says what the switch will cost. */
static void load_model(struct ui *u, long idx, const char *path)
{
    if (u->generating) {
        set_hint(u, "wait for the reply (or stop it with Esc) before switching models");
        return;
    }
    struct ui_model m;
    model_entry(u, idx, path, &m);
    if (m.remote && !u->src->load_remote) {
        set_hint(u, "remote models are not available here");
        return;
    }
    char *copy = strdup(m.path ? m.path : "");
    if (!copy)
        return;
    free(u->loading_path);
    u->loading_path = copy;
    u->loading_model = idx;
    u->switching = u->loaded;
    u->reread_pending = false;
    if (u->switching) {
        char line[256];
        switch_estimate(u->cfg->store, &m, u->conv_tokens, u->cfg->disk_mb_s, &u->cost);
        note(u, "%s · to %s", switch_text(&u->cost, line, sizeof line),
             m.remote && m.remote->model ? m.remote->model : base_name(copy));
    }
    u->loading = true;
    u->load_frac = 0;
    u->load_phase[0] = 0;
    u->load_start_ms = now_ms();
    uint64_t id = m.remote ? u->src->load_remote(u->src->ctx, m.remote)
                           : u->src->load(u->src->ctx, copy, &u->cfg->mp);
    if (!id) {
        u->loading = false;
        note(u, "out of memory");
    }
}

/* Rebuilds the transcript from the session (after opening a conversation). */
static void transcript_from_session(struct ui *u)
{
    tr_clear(&u->tr);
    for (size_t i = 0; i < u->ses.n; i++) {
        const struct session_msg *m = &u->ses.msgs[i];
        if (m->role == CHAT_ROLE_USER)
            tr_add_user(&u->tr, m->text, strlen(m->text));
        else if (m->role == CHAT_ROLE_ASSISTANT &&
                 !tr_add_reply(&u->tr, m->model, m->reasoning, m->text, m->interrupted)) {
            struct tr_entry *e = &u->tr.e[u->tr.n - 1];
            e->think_ms = m->think_ms;
            e->think_tokens = m->think_tokens;
            e->budget_reached = m->budget_reached;
            if (m->footer[0])
                snprintf(e->footer, sizeof e->footer, "%s", m->footer);
        }
    }
    u->scroll = 0;
    /* what a model would read again: roughly 4 bytes a token */
    u->conv_tokens = 0;
    for (size_t i = 0; i < u->ses.n; i++)
        u->conv_tokens += (int)(strlen(u->ses.msgs[i].text) / 4) + 4;
}

static void send_message(struct ui *u, const char *text)
{
    if (!u->loaded) {
        note(u, "%s", u->loading ? "the model is still loading; send again when it is ready"
                                 : u->cfg->no_model_hint);
        return;
    }
    const struct chat_msg *msgs;
    size_t n;
    if (tr_add_user(&u->tr, text, strlen(text)) || session_user(&u->ses, text) ||
        session_chat(&u->ses, &msgs, &n)) {
        note(u, "out of memory");
        return;
    }
    if (!u->src->generate(u->src->ctx, msgs, n, &u->gp)) {
        note(u, "out of memory");
        return;
    }
    tr_reply_begin(&u->tr, u->ses.model_name);
    session_reply_begin(&u->ses);
    u->generating = true;
    u->stopping = false;
    u->gen_error[0] = 0;
    u->phase = ENGINE_PHASE_READING;
    u->gen_start_ms = now_ms();
    u->gen_tokens = 0;
    u->tps = 0;
    u->scroll = 0;
}

static void new_chat(struct ui *u)
{
    if (u->generating) {
        set_hint(u, "stop the reply (Esc) before starting a new conversation");
        return;
    }
    session_new(&u->ses);
    tr_clear(&u->tr);
    u->ctx_used = 0;
    u->conv_tokens = 0;
    note(u, "a new conversation");
}

/* ---- lists: models, history, stats ---- */

static void rows_clear(struct ui *u)
{
    free(u->rows_v);
    u->rows_v = NULL;
    u->n_rows = 0;
}

static struct ui_conv_row *rows_add(struct ui *u)
{
    if (u->n_rows >= UI_LIST_MAX)
        return NULL;
    struct ui_conv_row *v = realloc(u->rows_v, (u->n_rows + 1) * sizeof *v);
    if (!v)
        return NULL;
    u->rows_v = v;
    memset(&v[u->n_rows], 0, sizeof *v);
    return &v[u->n_rows++];
}

static int conv_row_fn(void *ctx, const struct store_conv_info *c)
{
    struct ui *u = ctx;
    struct ui_conv_row *r = rows_add(u);
    if (!r)
        return 1;
    char date[32];
    time_t t = (time_t)(c->updated / 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm) || !strftime(date, sizeof date, "%Y-%m-%d %H:%M", &tm))
        snprintf(date, sizeof date, "?");
    r->id = c->id;
    r->pinned = c->pinned;
    snprintf(r->text, sizeof r->text, "%s%-32.32s  %s  %3d msgs  %.1f t/s  %s",
             c->pinned ? "* " : "", c->title[0] ? c->title : "(untitled)", date, c->n_messages,
             c->median_gen_tps, c->models);
    return 0;
}

static int hit_row_fn(void *ctx, const struct store_hit *h)
{
    struct ui *u = ctx;
    for (size_t i = 0; i < u->n_rows; i++)
        if (u->rows_v[i].id == h->conv_id)
            return 0;
    struct ui_conv_row *r = rows_add(u);
    if (!r)
        return 1;
    r->id = h->conv_id;
    char snip[160];
    size_t k = 0;
    for (const char *p = h->snippet; *p && k + 1 < sizeof snip; p++)
        if (*p != STORE_MARK_ON[0] && *p != STORE_MARK_OFF[0])
            snip[k++] = *p == '\n' ? ' ' : *p;
    snip[k] = 0;
    snprintf(r->text, sizeof r->text, "%-28.28s  %s%s", h->title[0] ? h->title : "(untitled)",
             h->in_reasoning ? "[reasoning] " : "", snip);
    return 0;
}

static void history_refresh(struct ui *u)
{
    rows_clear(u);
    if (!u->cfg->store)
        return;
    char err[512];
    int rc = u->query[0] ? store_search(u->cfg->store, u->query, STORE_SEARCH_ALL, 100,
                                        hit_row_fn, u, err, sizeof err)
                         : store_conv_list(u->cfg->store, UI_LIST_MAX, conv_row_fn, u, err,
                                           sizeof err);
    if (rc && rc != 1)
        set_hint(u, "%s", err);
    if (u->sel >= (int)u->n_rows)
        u->sel = u->n_rows ? (int)u->n_rows - 1 : 0;
}

static int stats_row_fn(void *ctx, const struct store_stats *st)
{
    struct ui *u = ctx;
    struct ui_conv_row *r = rows_add(u);
    if (!r)
        return 1;
    r->value = st->gen_tps_median;
    snprintf(r->text, sizeof r->text,
             "%-28.28s %-6.6s %-8.8s %4lld runs  gen %6.1f (p95 %6.1f) t/s  prompt %7.1f t/s  "
             "ttft %5.0f ms ",
             st->model, st->backend, st->device, (long long)st->n_runs, st->gen_tps_median,
             st->gen_tps_p95, st->prompt_tps_median, st->ttft_ms_median);
    return 0;
}

/* Appends to each stats row a bar of its generation speed, the fastest full. */
static void stats_bars(struct ui *u)
{
    double max = 0;
    for (size_t i = 0; i < u->n_rows; i++)
        if (u->rows_v[i].value > max)
            max = u->rows_v[i].value;
    for (size_t i = 0; i < u->n_rows && max > 0; i++) {
        int n = (int)(u->rows_v[i].value / max * 20 + 0.5);
        size_t l = strlen(u->rows_v[i].text);
        for (int k = 0; k < n && l + 4 < sizeof u->rows_v[i].text; k++, l += 3)
            memcpy(u->rows_v[i].text + l, "█", 3);
        u->rows_v[i].text[l] = 0;
    }
}

static void open_mode(struct ui *u, enum ui_mode m)
{
    u->mode = m;
    u->sel = 0;
    u->help_top = 0;
    u->query[0] = 0;
    rows_clear(u);
    if (m == UI_MODE_HISTORY)
        history_refresh(u);
    if (m == UI_MODE_STATS && u->cfg->store) {
        char err[512];
        if (store_stats(u->cfg->store, NULL, stats_row_fn, u, err, sizeof err))
            set_hint(u, "%s", err);
        stats_bars(u);
    }
    if (m == UI_MODE_MODELS && u->cur_model >= 0)
        u->sel = (int)u->cur_model;
}

static void open_conversation(struct ui *u, int64_t id)
{
    if (u->generating) {
        set_hint(u, "stop the reply (Esc) before opening another conversation");
        return;
    }
    char err[512];
    if (session_open(&u->ses, id, err, sizeof err)) {
        set_hint(u, "%s", err);
        return;
    }
    transcript_from_session(u);
    note(u, "continuing this conversation with %s",
         u->ses.model_name[0] ? u->ses.model_name : "no model");
}

/* The models Alt-1..9 and Ctrl-N/Ctrl-P go through: the favourites, or all. */
static size_t cycle_n(const struct ui *u)
{
    return u->cfg->n_favourites ? u->cfg->n_favourites : u->cfg->n_models;
}

static long cycle_at(const struct ui *u, size_t k)
{
    return u->cfg->n_favourites ? (long)u->cfg->favourites[k] : (long)k;
}

static void cycle_model(struct ui *u, int dir)
{
    size_t n = cycle_n(u);
    if (!n) {
        set_hint(u, "no models to switch to");
        return;
    }
    long cur = u->loading ? u->loading_model : u->cur_model;
    size_t next = dir > 0 ? 0 : n - 1;
    for (size_t k = 0; k < n; k++)
        if (cycle_at(u, k) == cur && cur >= 0)
            next = (k + n + (size_t)(dir > 0 ? 1 : n - 1)) % n;
    long idx = cycle_at(u, next);
    if (idx >= 0 && (size_t)idx < u->cfg->n_models)
        load_model(u, idx, NULL);
}

/* Alt-1 .. Alt-9: favourite (or model) k. */
static void pick_model(struct ui *u, size_t k)
{
    long idx = k < cycle_n(u) ? cycle_at(u, k) : -1;
    if (idx >= 0 && (size_t)idx < u->cfg->n_models)
        load_model(u, idx, NULL);
    else
        set_hint(u, "there is no %s %zu (F2 lists the models)",
                 u->cfg->n_favourites ? "favourite" : "model", k + 1);
}

/* The thinking budget as the status line shows it: "off", "∞", "1,024",
 * "1,024 hard". */
static const char *budget_text(const struct engine_generate_params *gp, char *buf, size_t cap)
{
    char n[32];
    if (gp->think_off)
        snprintf(buf, cap, "off");
    else if (gp->think_budget <= 0)
        snprintf(buf, cap, "∞");
    else
        snprintf(buf, cap, "%s%s", tr_count(gp->think_budget, n, sizeof n),
                 gp->think_mode == ENGINE_THINK_HARD ? " hard" : "");
    return buf;
}

/* Ctrl-B: off -> 256 -> 1024 -> 4096 -> unlimited -> off. */
static void cycle_budget(struct ui *u)
{
    static const int steps[] = {256, 1024, 4096};
    struct engine_generate_params *gp = &u->gp;
    if (gp->think_off) {
        gp->think_off = false;
        gp->think_budget = steps[0];
    } else if (gp->think_budget <= 0) {
        gp->think_off = true;
    } else {
        int next = 0;
        for (size_t i = 0; i < sizeof steps / sizeof steps[0] && !next; i++)
            if (gp->think_budget < steps[i])
                next = steps[i];
        gp->think_budget = next;    /* past 4096: unlimited */
    }
    char b[32];
    set_hint(u, "thinking budget from the next turn: %s%s", budget_text(gp, b, sizeof b),
             gp->think_off ? " (answers directly)" : gp->think_budget > 0 ? " tokens" : "");
}

static void export_conv(struct ui *u, const char *file)
{
    if (!u->cfg->store || !u->ses.conv) {
        set_hint(u, "nothing to export yet");
        return;
    }
    char name[512];
    if (!file || !*file) {
        snprintf(name, sizeof name, "ponder-%lld.md", (long long)u->ses.conv);
        file = name;
    }
    FILE *f = fopen(file, "w");
    if (!f) {
        set_hint(u, "%s: %s", file, strerror(errno));
        return;
    }
    char err[512];
    int rc = store_export(u->cfg->store, u->ses.conv, STORE_EXPORT_MARKDOWN,
                          STORE_EXPORT_REASONING, f, err, sizeof err);
    if (fclose(f) && !rc)
        snprintf(err, sizeof err, "%.300s: %s", file, strerror(errno)), rc = EIO;
    if (rc)
        set_hint(u, "%s", err);
    else
        note(u, "exported to %s", file);
}

/* /set KEY VALUE: sampling and the thinking budget. */
static void set_command(struct ui *u, const char *arg)
{
    static const char usage[] = "usage: /set temp|top_p|top_k|min_p VALUE, /set budget N|off, "
                                "/set think on|off, /set budget-mode soft|hard";
    char key[32], val[64], *end;
    if (sscanf(arg, "%31s %63s", key, val) != 2) {
        set_hint(u, "%s", usage);
        return;
    }
    struct engine_generate_params *gp = &u->gp;
    struct sampler_params *sp = &gp->sampler;
    char b[32];
    if (!strcmp(key, "think")) {
        if (strcmp(val, "on") && strcmp(val, "off")) {
            set_hint(u, "/set think: on or off, not '%s'", val);
            return;
        }
        gp->think_off = !strcmp(val, "off");
        note(u, "thinking %s", gp->think_off ? "off: the model answers directly" : "on");
        return;
    }
    if (!strcmp(key, "budget-mode") || !strcmp(key, "budget_mode")) {
        if (strcmp(val, "soft") && strcmp(val, "hard")) {
            set_hint(u, "/set budget-mode: soft or hard, not '%s'", val);
            return;
        }
        gp->think_mode = !strcmp(val, "hard") ? ENGINE_THINK_HARD : ENGINE_THINK_SOFT;
        note(u, "budget mode %s", val);
        return;
    }
    if (!strcmp(key, "budget")) {
        errno = 0;
        long n = strtol(val, &end, 10);
        if (!strcmp(val, "off") || !strcmp(val, "unlimited") || !strcmp(val, "none"))
            n = 0;
        else if (errno || end == val || *end || n < 0 || n > 1000000) {
            set_hint(u, "/set budget: a number of tokens (0 or off: unlimited), not '%s'", val);
            return;
        }
        gp->think_budget = (int)n;
        gp->think_off = false;
        note(u, "thinking budget %s", budget_text(gp, b, sizeof b));
        return;
    }
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end) {
        set_hint(u, "%s", usage);
        return;
    }
    if (!strcmp(key, "temp") && v >= 0 && v <= 100)
        sp->temperature = (float)v;
    else if (!strcmp(key, "top_p") && v >= 0 && v <= 1)
        sp->top_p = (float)v;
    else if (!strcmp(key, "min_p") && v >= 0 && v <= 1)
        sp->min_p = (float)v;
    else if (!strcmp(key, "top_k") && v >= 0 && v <= 1e9)
        sp->top_k = (int32_t)v;
    else {
        set_hint(u, "/set: %s is temp (0-100), top_p, min_p (0-1), top_k (>= 0), budget, "
                 "budget-mode or think", key);
        return;
    }
    note(u, "%s = %g", key, v);
}

/* A slash command typed on the input line. */
static void run_command(struct ui *u, const char *line)
{
    char cmd[32] = "";
    const char *arg = line;
    size_t k = 0;
    while (*arg && *arg != ' ' && k + 1 < sizeof cmd)
        cmd[k++] = *arg++;
    cmd[k] = 0;
    while (*arg == ' ')
        arg++;
    if (!strcmp(cmd, "/quit") || !strcmp(cmd, "/exit")) {
        u->quit = true;
    } else if (!strcmp(cmd, "/new")) {
        new_chat(u);
    } else if (!strcmp(cmd, "/help")) {
        open_mode(u, UI_MODE_HELP);
    } else if (!strcmp(cmd, "/history")) {
        open_mode(u, UI_MODE_HISTORY);
    } else if (!strcmp(cmd, "/stats")) {
        open_mode(u, UI_MODE_STATS);
    } else if (!strcmp(cmd, "/model")) {
        if (!*arg) {
            open_mode(u, UI_MODE_MODELS);
            return;
        }
        for (size_t i = 0; i < u->cfg->n_models; i++) {
            const struct ui_model *m = &u->cfg->models[i];
            if ((m->path && strstr(base_name(m->path), arg)) ||
                (m->name && strstr(m->name, arg))) {
                load_model(u, (long)i, NULL);
                return;
            }
        }
        struct stat st;
        if (stat(arg, &st) == 0)
            load_model(u, -1, arg);
        else
            set_hint(u, "no model matches '%s' (F2 lists them)", arg);
    } else if (!strcmp(cmd, "/system")) {
        if (session_set_system(&u->ses, arg))
            set_hint(u, "out of memory");
        else
            note(u, *arg ? "system prompt: %s" : "system prompt cleared%s", arg);
    } else if (!strcmp(cmd, "/set")) {
        set_command(u, arg);
    } else if (!strcmp(cmd, "/rename")) {
        char err[512];
        if (!u->cfg->store || !u->ses.conv)
            set_hint(u, "nothing to rename yet: send a message first");
        else if (store_conv_rename(u->cfg->store, u->ses.conv, arg, err, sizeof err))
            set_hint(u, "%s", err);
        else
            note(u, "renamed to %s", arg);
    } else if (!strcmp(cmd, "/export")) {
        export_conv(u, arg);
    } else {
        set_hint(u, "unknown command %s (/help lists them)", cmd);
    }
}

static void accept_line(struct ui *u, char *line)
{
    size_t len = strlen(line);
    while (len && (line[len - 1] == ' ' || line[len - 1] == '\n'))
        line[--len] = 0;
    const char *p = line;
    while (*p == ' ' || *p == '\n')
        p++;
    if (!*p)
        return;
    add_history(line);
    if (p[0] == '/')
        run_command(u, p);
    else
        send_message(u, p);
}

/* ---- engine events ---- */

static void on_event(struct ui *u, struct engine_event *ev)
{
    switch (ev->type) {
    case ENGINE_EVENT_LOAD_PROGRESS:
        u->load_frac = ev->u.progress.fraction;
        snprintf(u->load_phase, sizeof u->load_phase, "%s", ev->u.progress.phase);
        break;
    case ENGINE_EVENT_LOADED: {
        bool switched = u->loaded && u->switching;
        double load_ms = now_ms() - u->load_start_ms;
        u->info = ev->u.loaded;
        u->loaded = true;
        u->loading = false;
        free(u->model_path);
        u->model_path = u->loading_path;
        u->loading_path = NULL;
        u->cur_model = u->loading_model;
        struct ui_model m;
        model_entry(u, u->cur_model, u->model_path, &m);
        switch_record_load(u->cfg->store, &m, load_ms);
        session_set_model(&u->ses, u->model_path ? u->model_path : "", &u->info);
        char ctxs[48] = "";
        if (u->info.n_ctx > 0)
            snprintf(ctxs, sizeof ctxs, ", context %d", u->info.n_ctx);
        note(u, "%s %s (%s, %s, %s/%s%s)", switched ? "switched to" : "loaded",
             u->ses.model_name, u->info.arch, u->info.ftype,
             u->info.backend ? u->info.backend : "?", u->info.device ? u->info.device : "?",
             ctxs);
        if (switched) {
            char a[32], b[32];
            note(u, "switch: loaded in %s (estimated %s)%s", switch_secs(load_ms, a, sizeof a),
                 switch_secs(u->cost.load_ms, b, sizeof b),
                 u->conv_tokens ? "; the next reply reads the conversation again" : "");
            u->reread_pending = u->conv_tokens > 0;
        }
        u->switching = false;
        u->ctx_used = 0;
        break;
    }
    case ENGINE_EVENT_UNLOADED: u->loaded = false; break;
    case ENGINE_EVENT_PHASE: u->phase = ev->u.phase; break;
    case ENGINE_EVENT_TOKEN:
        if (ev->u.token.first) {
            u->gen_tokens++;
            u->ctx_used++;
        }
        if (ev->u.token.len) {
            session_reply_piece(&u->ses, ev->u.token.kind, ev->u.token.text, ev->u.token.len);
            if (!ev->u.token.leading)
                tr_reply_append(&u->tr, ev->u.token.kind, ev->u.token.text, ev->u.token.len,
                                ev->u.token.first, now_ms());
            else if (ev->u.token.first)
                tr_reply_append(&u->tr, ev->u.token.kind, "", 0, true, now_ms());
        } else if (ev->u.token.first) {
            tr_reply_append(&u->tr, ev->u.token.kind, "", 0, true, now_ms());
        }
        break;
    case ENGINE_EVENT_DONE: {
        const struct engine_stats *st = &ev->u.done.stats;
        tr_reply_end(&u->tr, ev->u.done.stop, st, now_ms());
        session_reply_end(&u->ses, ev->u.done.stop, u->gen_error[0] ? NULL : st,
                          u->gen_error[0] ? u->gen_error : NULL);
        u->generating = false;
        if (st->fell_back) {    /* the device is gone: info's device name went with it */
            snprintf(u->fallback_device, sizeof u->fallback_device, "%s", st->device);
            u->info.device = u->fallback_device;
            u->info.n_gpu_layers = 0;
            if (!strcmp(st->backend, "cpu")) {
                u->info.backend = "cpu";
                note(u, "the device was lost: the model runs on the CPU now (%s)", st->device);
            } else {
                u->info.backend = "none";
                u->loaded = false;
                note(u, "the device was lost and the model could not be loaded on the CPU: "
                        "F2 picks a model");
            }
        }
        u->tps = st->gen_tps;
        u->ctx_used = st->prompt_cached + st->prompt_tokens + st->reasoning_tokens +
                      st->answer_tokens;
        if (!u->gen_error[0])
            u->conv_tokens = st->prompt_cached + st->prompt_tokens + st->answer_tokens;
        if (u->reread_pending && !u->gen_error[0]) {
            char a[32], b[32], n[32];
            note(u, "switch: re-read %s tokens in %s (estimated %s)",
                 tr_count(st->prompt_cached + st->prompt_tokens, n, sizeof n),
                 switch_secs(st->prompt_ms, a, sizeof a),
                 switch_secs(u->cost.reread_ms, b, sizeof b));
            u->reread_pending = false;
        }
        if (u->ses.store_err[0]) {
            set_hint(u, "%s", u->ses.store_err);
            u->ses.store_err[0] = 0;
        }
        break;
    }
    case ENGINE_EVENT_ERROR:
        if (u->generating) {
            snprintf(u->gen_error, sizeof u->gen_error, "%s", ev->u.error);
            note(u, "error: %s", ev->u.error);
        } else if (u->loading) {
            u->loading = false;
            note(u, "could not load %s: %s", u->loading_path ? base_name(u->loading_path) : "",
                 ev->u.error);
        } else {
            note(u, "error: %s", ev->u.error);
        }
        break;
    }
}

/* ---- drawing ---- */

static attr_t style_attr(const struct ui *u, enum tr_style s)
{
    attr_t a = A_NORMAL;
    short pair = 0;
    switch (s) {
    case TR_STYLE_USER_HEAD: a = A_BOLD, pair = UI_PAIR_USER; break;
    case TR_STYLE_MODEL_HEAD: a = A_BOLD, pair = UI_PAIR_MODEL; break;
    case TR_STYLE_THINK_HEAD: a = A_DIM | A_ITALIC, pair = UI_PAIR_THINK; break;
    case TR_STYLE_THINK: a = A_DIM, pair = UI_PAIR_THINK; break;
    case TR_STYLE_FOOTER: a = A_DIM; break;
    case TR_STYLE_NOTE: a = A_BOLD, pair = UI_PAIR_NOTE; break;
    default: break;
    }
    if (u->color && pair)
        a |= COLOR_PAIR(pair);
    return a;
}

/* Draws s[0..len) at the cursor, at most max columns. */
static void put_clipped(const char *s, size_t len, int max)
{
    size_t i = 0;
    int w = 0;
    while (i < len) {
        size_t n = 1;
        while (i + n < len && ((unsigned char)s[i + n] & 0xC0) == 0x80)
            n++;
        int cw = tr_width(s + i, n);
        if (w + cw > max)
            break;
        addnstr(s + i, (int)n);
        w += cw;
        i += n;
    }
}

static void draw_str(int y, int x, const char *s, int max)
{
    move(y, x);
    put_clipped(s, strlen(s), max);
}

static int input_lines(struct ui *u, int width, int *cur_y, int *cur_x)
{
    const char *b = rl_line_buffer ? rl_line_buffer : "";
    int y = 0, x = 2;
    *cur_y = 0, *cur_x = 2;
    size_t len = strlen(b);
    for (size_t i = 0; i <= len; i++) {
        if ((int)i == rl_point)
            *cur_y = y, *cur_x = x;
        if (i == len)
            break;
        size_t n = 1;
        while (i + n < len && ((unsigned char)b[i + n] & 0xC0) == 0x80)
            n++;
        if (b[i] == '\n') {
            y++, x = 2;
            continue;
        }
        int cw = tr_width(b + i, n);
        if (x + cw > width) {
            y++, x = 2;
        }
        x += cw;
        i += n - 1;
    }
    (void)u;
    return y + 1;
}

static void draw_input(struct ui *u, int top, int h, int first)
{
    const char *b = rl_line_buffer ? rl_line_buffer : "";
    size_t len = strlen(b);
    int y = 0, x = 2;
    for (int r = 0; r < h; r++) {
        move(top + r, 0);
        clrtoeol();
    }
    if (first == 0)
        mvaddstr(top, 0, u->generating ? "… " : "› ");
    for (size_t i = 0; i < len; i++) {
        size_t n = 1;
        while (i + n < len && ((unsigned char)b[i + n] & 0xC0) == 0x80)
            n++;
        if (b[i] == '\n') {
            y++, x = 2;
            continue;
        }
        int cw = tr_width(b + i, n);
        if (x + cw > u->cols)
            y++, x = 2;
        if (y >= first && y < first + h) {
            char safe[16];
            if ((unsigned char)b[i] < 0x20) {
                safe[0] = '^', safe[1] = (char)(b[i] + '@'), n = 1, cw = 2;
                mvaddnstr(top + y - first, x, safe, 2);
            } else {
                mvaddnstr(top + y - first, x, b + i, (int)n);
            }
        }
        x += cw;
        i += n - 1;
    }
}

static void draw_status(struct ui *u, int y)
{
    char s[512], bar[64], cnt[32];
    attr_t a = u->color ? COLOR_PAIR(UI_PAIR_BAR) : A_REVERSE;
    attron(a);
    move(y, 0);
    for (int i = 0; i < u->cols; i++)
        addch(' ');
    if (u->loading) {
        int fill = (int)(u->load_frac * 10);
        size_t k = 0;
        for (int i = 0; i < 10; i++) {
            memcpy(bar + k, i < fill ? "█" : "░", 3);
            k += 3;
        }
        bar[k] = 0;
        const struct ui_model *lm = u->loading_model >= 0 ? &u->cfg->models[u->loading_model]
                                                          : NULL;
        snprintf(s, sizeof s, " loading %s %s %3.0f%% %s · the screen stays live",
                 lm && lm->remote && lm->remote->model ? lm->remote->model
                 : u->loading_path                     ? base_name(u->loading_path)
                                                       : "",
                 bar, u->load_frac * 100, u->load_phase);
    } else if (!u->loaded) {
        snprintf(s, sizeof s, " no model · F2 picks one");
    } else {
        int n_ctx = u->info.n_ctx > 0 ? u->info.n_ctx : 1;
        int fill = (int)((long long)u->ctx_used * 10 / n_ctx);
        if (fill > 10)
            fill = 10;
        size_t k = 0;
        for (int i = 0; i < 10; i++) {
            const char *c = i < fill ? "█" : "░";
            memcpy(bar + k, c, 3);
            k += 3;
        }
        bar[k] = 0;
        const char *phase = !u->generating                          ? "ready"
                            : u->stopping                           ? "stopping"
                            : u->phase == ENGINE_PHASE_READING      ? "reading"
                            : u->phase == ENGINE_PHASE_THINKING     ? "thinking"
                                                                    : "answering";
        double tps = u->tps;
        if (u->generating && u->gen_tokens > 1) {
            double ms = now_ms() - u->gen_start_ms;
            tps = ms > 0 ? u->gen_tokens * 1000.0 / ms : 0;
        }
        char bud[32], ctx[128];
        if (u->info.n_ctx > 0)
            snprintf(ctx, sizeof ctx, "%s %s/%d", bar, tr_count(u->ctx_used, cnt, sizeof cnt),
                     u->info.n_ctx);
        else    /* a remote server that does not say its context */
            snprintf(ctx, sizeof ctx, "%s", tr_count(u->ctx_used, cnt, sizeof cnt));
        snprintf(s, sizeof s, " %s · %s · %s/%s · ctx %s · %.1f t/s · think %s · %s",
                 u->ses.model_name, u->info.ftype, u->info.backend ? u->info.backend : "?",
                 u->info.device ? u->info.device : "?", ctx, tps,
                 budget_text(&u->gp, bud, sizeof bud), phase);
    }
    draw_str(y, 0, s, u->cols);
    attroff(a);
}

static void draw_hints(struct ui *u, int y)
{
    move(y, 0);
    clrtoeol();
    const char *h = u->hint[0] ? u->hint
                    : u->generating
                        ? "Esc stop · Ctrl-O fold · PgUp/PgDn scroll · F1 help"
                        : "Enter send · Alt-Enter newline · F1 help · F2 models · F3 history · "
                          "F4 stats · Ctrl-D quit";
    attron(A_DIM);
    draw_str(y, 0, h, u->cols);
    attroff(A_DIM);
}

static void draw_transcript(struct ui *u, int h)
{
    if (tr_layout(&u->tr, u->cols - 1, now_ms(), &u->lines))
        return;
    size_t total = u->lines.n;
    if (u->scroll > 0 && total > u->last_total)
        u->scroll += (int)(total - u->last_total);   /* keep the view where the reader is */
    u->last_total = total;
    int max_scroll = total > (size_t)h ? (int)(total - (size_t)h) : 0;
    if (u->scroll > max_scroll)
        u->scroll = max_scroll;
    if (u->scroll < 0)
        u->scroll = 0;
    size_t first = total > (size_t)h ? total - (size_t)h - (size_t)u->scroll : 0;
    for (int r = 0; r < h; r++) {
        move(r, 0);
        clrtoeol();
        size_t i = first + (size_t)r;
        if (i >= total)
            continue;
        const struct tr_line *l = &u->lines.v[i];
        attr_t a = style_attr(u, l->style);
        attron(a);
        if (l->style == TR_STYLE_THINK)
            mvaddstr(r, 0, "│");
        move(r, l->indent);
        put_clipped(l->text, l->len, u->cols - 1 - l->indent);
        attroff(a);
    }
    if (u->scroll > 0) {
        char s[64];
        snprintf(s, sizeof s, " ↓ %d more ", u->scroll);
        attron(A_REVERSE);
        draw_str(h - 1, u->cols - 14 > 0 ? u->cols - 14 : 0, s, 14);
        attroff(A_REVERSE);
    }
}

static void draw_box(struct ui *u, const char *title, int *top, int *left, int *h, int *w)
{
    *w = u->cols - 4 > 100 ? 100 : u->cols - 4;
    *h = u->rows - 4;
    if (*w < 10)
        *w = u->cols;
    if (*h < 3)
        *h = u->rows;
    *top = (u->rows - *h) / 2;
    *left = (u->cols - *w) / 2;
    for (int r = 0; r < *h; r++) {
        move(*top + r, *left);
        for (int c = 0; c < *w; c++)
            addch(' ');
    }
    attron(A_BOLD | A_REVERSE);
    move(*top, *left);
    for (int c = 0; c < *w; c++)
        addch(' ');
    draw_str(*top, *left + 1, title, *w - 2);
    attroff(A_BOLD | A_REVERSE);
}

/* Line k of the help (keys, a blank line, commands) into s; false past the end. */
static bool help_line(size_t k, char *s, size_t cap)
{
    for (size_t i = 0; i < ui_n_bindings; i++) {
        if (!ui_bindings[i].keys)
            continue;
        if (k-- == 0) {
            snprintf(s, cap, "%-20s %s", ui_bindings[i].keys, ui_bindings[i].help);
            return true;
        }
    }
    if (k-- == 0) {
        s[0] = 0;
        return true;
    }
    if (k < ui_n_commands) {
        char name[64];
        snprintf(name, sizeof name, "%s %s", ui_commands[k].name, ui_commands[k].args);
        snprintf(s, cap, "%-20s %s", name, ui_commands[k].help);
        return true;
    }
    return false;
}

static int help_lines(void)
{
    char s[256];
    int n = 0;
    while (help_line((size_t)n, s, sizeof s))
        n++;
    return n;
}

static void draw_help(struct ui *u)
{
    int top, left, h, w;
    int n = help_lines();
    bool scrolls = n > u->rows - 5;
    int max_top = n - (u->rows - 5) > 0 ? n - (u->rows - 5) : 0;
    if (u->help_top > max_top)
        u->help_top = max_top;
    draw_box(u, scrolls ? "Keys · Up/Down, PgUp/PgDn scroll · any other key closes"
                        : "Keys (any key closes)", &top, &left, &h, &w);
    char s[256];
    for (int r = 1; r < h && help_line((size_t)(u->help_top + r - 1), s, sizeof s); r++)
        draw_str(top + r, left + 1, s, w - 2);
    if (scrolls && u->help_top < max_top && h > 2) {
        attron(A_REVERSE);
        draw_str(top + h - 1, left + w - 10 > left ? left + w - 10 : left, " ↓ more ", 9);
        attroff(A_REVERSE);
    }
}

static void draw_list(struct ui *u)
{
    int top, left, h, w;
    char title[256];
    size_t n = 0;
    if (u->mode == UI_MODE_MODELS) {
        snprintf(title, sizeof title, "Models · Enter loads · Esc closes%s%s",
                 u->cfg->fits_title ? " · " : "", u->cfg->fits_title ? u->cfg->fits_title : "");
        n = u->cfg->n_models;
    } else if (u->mode == UI_MODE_HISTORY) {
        snprintf(title, sizeof title, "History · Enter opens · type to search%s%s · Del deletes, "
                 "Ctrl-U undoes · Ctrl-T pins · Ctrl-E exports · Esc closes",
                 u->query[0] ? ": " : "", u->query);
        n = u->n_rows;
    } else {
        snprintf(title, sizeof title, "Statistics (median, p95) · Esc closes");
        n = u->n_rows;
    }
    draw_box(u, title, &top, &left, &h, &w);
    if (!n) {
        draw_str(top + 2, left + 2,
                 u->mode == UI_MODE_MODELS ? "no models found (-m FILE, or ~/.local/share/ponder/models)"
                 : !u->cfg->store          ? "no history store"
                 : u->mode == UI_MODE_HISTORY ? (u->query[0] ? "nothing found" : "no conversations yet")
                                              : "no runs recorded yet",
                 w - 4);
        return;
    }
    int vis = u->mode == UI_MODE_MODELS ? h - 3 : h - 2;
    int first = u->sel >= vis ? u->sel - vis + 1 : 0;
    for (int r = 0; r < vis && first + r < (int)n; r++) {
        int i = first + r;
        char s[512];
        if (u->mode == UI_MODE_MODELS) {
            const struct ui_model *m = &u->cfg->models[i];
            const char *p = m->path ? m->path : "";
            double gib = m->file_size / (1024.0 * 1024 * 1024);
            bool cur = u->loaded && i == u->cur_model;
            if (m->label)
                snprintf(s, sizeof s, "%s %s%s", cur ? "●" : " ", m->label,
                         cur ? "  (loaded)" : "");
            else
                snprintf(s, sizeof s, "%s %-40s %8.2f GiB%s", cur ? "●" : " ", base_name(p), gib,
                         cur ? "  (loaded)" : "");
        } else {
            snprintf(s, sizeof s, "%s", u->rows_v[i].text);
        }
        if (i == u->sel)
            attron(A_REVERSE);
        draw_str(top + 1 + r, left + 1, s, w - 2);
        if (i == u->sel)
            attroff(A_REVERSE);
    }
    /* before a switch: what it costs */
    if (u->mode == UI_MODE_MODELS && u->loaded && u->sel != u->cur_model && h > 3) {
        char line[256];
        struct switch_cost c;
        switch_estimate(u->cfg->store, &u->cfg->models[u->sel], u->conv_tokens,
                        u->cfg->disk_mb_s, &c);
        attron(A_BOLD);
        draw_str(top + h - 1, left + 1, switch_text(&c, line, sizeof line), w - 2);
        attroff(A_BOLD);
    }
}

static void redraw(struct ui *u)
{
    getmaxyx(stdscr, u->rows, u->cols);
    int cy, cx;
    int in_h = input_lines(u, u->cols, &cy, &cx);
    int max_in = u->rows / 3 > 1 ? u->rows / 3 : 1;
    int shown = in_h < max_in ? in_h : max_in;
    int first = cy >= shown ? cy - shown + 1 : 0;
    int tr_h = u->rows - shown - 2;
    if (tr_h < 1)
        tr_h = 1;
    draw_transcript(u, tr_h);
    draw_status(u, tr_h);
    draw_input(u, tr_h + 1, shown, first);
    draw_hints(u, u->rows - 1);
    if (u->mode == UI_MODE_HELP)
        draw_help(u);
    else if (u->mode != UI_MODE_CHAT)
        draw_list(u);
    if (u->mode == UI_MODE_CHAT) {
        curs_set(1);
        move(tr_h + 1 + cy - first, cx < u->cols ? cx : u->cols - 1);
    } else {
        curs_set(0);
    }
    refresh();
}

/* ---- keys ---- */

static void edit_in_editor(struct ui *u)
{
    const char *ed = u->cfg->editor && *u->cfg->editor ? u->cfg->editor : "vi";
    char path[] = "/tmp/ponder-msg-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        set_hint(u, "editor: %s", strerror(errno));
        return;
    }
    const char *b = rl_line_buffer ? rl_line_buffer : "";
    ssize_t w = write(fd, b, strlen(b));
    close(fd);
    if (w < 0) {
        unlink(path);
        return;
    }
    def_prog_mode();
    endwin();
    pid_t pid = fork();
    if (pid == 0) {
        execlp(ed, ed, path, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (pid > 0)
        waitpid(pid, &st, 0);
    reset_prog_mode();
    FILE *f = fopen(path, "r");
    if (f) {
        char buf[65536];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        while (n && buf[n - 1] == '\n')
            buf[--n] = 0;
        rl_replace_line(buf, 0);
        rl_point = rl_end;
    }
    unlink(path);
    clearok(stdscr, TRUE);
}

static void do_action(struct ui *u, enum ui_action a)
{
    int page = u->rows - 4 > 1 ? u->rows - 4 : 1;
    switch (a) {
    case UI_ACT_NONE: break;
    case UI_ACT_HELP: open_mode(u, UI_MODE_HELP); break;
    case UI_ACT_MODELS: open_mode(u, UI_MODE_MODELS); break;
    case UI_ACT_HISTORY: open_mode(u, UI_MODE_HISTORY); break;
    case UI_ACT_STATS: open_mode(u, UI_MODE_STATS); break;
    case UI_ACT_STOP:
        if (u->generating) {
            u->src->stop(u->src->ctx);
            u->stopping = true;
        } else if (rl_end > 0) {
            rl_replace_line("", 0);
            rl_point = 0;
        } else {
            set_hint(u, "to quit: Ctrl-D on an empty line, or /quit");
        }
        break;
    case UI_ACT_QUIT:
        if (u->generating)
            set_hint(u, "a reply is streaming: Esc stops it, then Ctrl-D quits");
        else
            u->quit = true;
        break;
    case UI_ACT_PAGE_UP: u->scroll += page; break;
    case UI_ACT_PAGE_DOWN: u->scroll = u->scroll > page ? u->scroll - page : 0; break;
    case UI_ACT_NEWLINE: rl_insert_text("\n"); break;
    case UI_ACT_FOLD: {
        /* the reply nearest the bottom of the view */
        size_t total = u->lines.n;
        size_t last = total > (size_t)u->scroll ? total - 1 - (size_t)u->scroll : 0;
        for (size_t i = last + 1; i-- > 0 && total;) {
            const struct tr_line *l = &u->lines.v[i];
            if (l->entry < u->tr.n && u->tr.e[l->entry].kind == TR_KIND_REPLY &&
                (u->tr.e[l->entry].reasoning.len || u->tr.e[l->entry].thinking)) {
                tr_toggle_fold(&u->tr, l->entry);
                break;
            }
        }
        break;
    }
    case UI_ACT_FOLD_ALL: tr_toggle_all(&u->tr); break;
    case UI_ACT_NEXT_MODEL: cycle_model(u, 1); break;
    case UI_ACT_PREV_MODEL: cycle_model(u, -1); break;
    case UI_ACT_NEW_CHAT: new_chat(u); break;
    case UI_ACT_REDRAW: clearok(stdscr, TRUE); break;
    case UI_ACT_EDITOR: edit_in_editor(u); break;
    case UI_ACT_BUDGET: cycle_budget(u); break;
    }
}

/* A key while a list (models, history, stats) or the help is open. */
static void list_key(struct ui *u, int key, bool fn)
{
    int n = u->mode == UI_MODE_MODELS ? (int)u->cfg->n_models : (int)u->n_rows;
    if (u->mode == UI_MODE_HELP && fn &&
        (key == KEY_UP || key == KEY_DOWN || key == KEY_PPAGE || key == KEY_NPAGE)) {
        int page = u->rows - 6 > 1 ? u->rows - 6 : 1;
        u->help_top += key == KEY_UP ? -1 : key == KEY_DOWN ? 1 : key == KEY_PPAGE ? -page : page;
        if (u->help_top < 0)
            u->help_top = 0;    /* draw_help() keeps it below the end */
        return;
    }
    if (u->mode == UI_MODE_HELP || (!fn && key == 27) || (fn && key == KEY_F(1))) {
        u->mode = UI_MODE_CHAT;
        return;
    }
    if (fn && (key == KEY_F(2) || key == KEY_F(3) || key == KEY_F(4))) {
        enum ui_mode m = key == KEY_F(2) ? UI_MODE_MODELS : key == KEY_F(3) ? UI_MODE_HISTORY
                                                                              : UI_MODE_STATS;
        if (m == u->mode)
            u->mode = UI_MODE_CHAT;
        else
            open_mode(u, m);
        return;
    }
    if (fn && key == KEY_UP && u->sel > 0)
        u->sel--;
    else if (fn && key == KEY_DOWN && u->sel + 1 < n)
        u->sel++;
    else if (fn && key == KEY_PPAGE)
        u->sel = u->sel > 10 ? u->sel - 10 : 0;
    else if (fn && key == KEY_NPAGE)
        u->sel = u->sel + 10 < n ? u->sel + 10 : (n ? n - 1 : 0);
    else if (!fn && (key == '\r' || key == '\n') && n) {
        if (u->mode == UI_MODE_MODELS) {
            u->mode = UI_MODE_CHAT;
            load_model(u, u->sel, NULL);
        } else if (u->mode == UI_MODE_HISTORY) {
            u->mode = UI_MODE_CHAT;
            open_conversation(u, u->rows_v[u->sel].id);
        }
    } else if (u->mode == UI_MODE_HISTORY) {
        char err[512];
        if (fn && key == KEY_DC && n) {
            int64_t id = u->rows_v[u->sel].id;
            if (store_conv_delete(u->cfg->store, id, err, sizeof err)) {
                set_hint(u, "%s", err);
            } else {
                u->undo_id = id;
                set_hint(u, "deleted; Ctrl-U undoes");
                if (id == u->ses.conv)
                    new_chat(u);
            }
            history_refresh(u);
        } else if (!fn && key == UI_CTRL('t') && n) {
            struct ui_conv_row *r = &u->rows_v[u->sel];
            if (store_conv_pin(u->cfg->store, r->id, !r->pinned, err, sizeof err))
                set_hint(u, "%s", err);
            history_refresh(u);
        } else if (!fn && key == UI_CTRL('e') && n) {
            int64_t keep = u->ses.conv;
            u->ses.conv = u->rows_v[u->sel].id;
            export_conv(u, NULL);
            u->ses.conv = keep;
        } else if (!fn && key == UI_CTRL('u') && u->undo_id) {
            if (store_conv_undelete(u->cfg->store, u->undo_id, err, sizeof err))
                set_hint(u, "%s", err);
            u->undo_id = 0;
            history_refresh(u);
        } else if ((!fn && (key == 127 || key == 8)) || (fn && key == KEY_BACKSPACE)) {
            size_t l = strlen(u->query);
            while (l && ((unsigned char)u->query[l - 1] & 0xC0) == 0x80)
                l--;
            if (l)
                u->query[l - 1] = 0;
            u->sel = 0;
            history_refresh(u);
        } else if (!fn && key >= 0x20 && key != 127) {
            char mb[8];
            wchar_t wc = (wchar_t)key;
            mbstate_t ms;
            memset(&ms, 0, sizeof ms);
            size_t k = wcrtomb(mb, wc, &ms);
            size_t l = strlen(u->query);
            if (k != (size_t)-1 && l + k + 1 < sizeof u->query) {
                memcpy(u->query + l, mb, k);
                u->query[l + k] = 0;
            }
            u->sel = 0;
            history_refresh(u);
        }
    }
}

static void feed_wchar(struct ui *u, wint_t wc)
{
    char mb[8];
    mbstate_t ms;
    memset(&ms, 0, sizeof ms);
    size_t k = wcrtomb(mb, (wchar_t)wc, &ms);
    if (k != (size_t)-1)
        rl_feed(u, (const unsigned char *)mb, k);
}

/* Reads a bracketed paste after ESC [ 200 ~ up to ESC [ 201 ~ into the line. */
static void paste(struct ui *u)
{
    char buf[65536];
    size_t n = 0;
    static const char end[] = "\033[201~";
    wint_t wc;
    timeout(200);
    for (;;) {
        int rc = get_wch(&wc);
        if (rc == ERR)
            break;
        if (rc == KEY_CODE_YES)
            continue;
        char mb[8];
        mbstate_t ms;
        memset(&ms, 0, sizeof ms);
        size_t k = wcrtomb(mb, (wchar_t)(wc == '\r' ? '\n' : wc), &ms);
        if (k == (size_t)-1 || n + k >= sizeof buf - 1)
            continue;
        memcpy(buf + n, mb, k);
        n += k;
        buf[n] = 0;
        if (n >= sizeof end - 1 && !memcmp(buf + n - (sizeof end - 1), end, sizeof end - 1)) {
            n -= sizeof end - 1;
            break;
        }
    }
    nodelay(stdscr, TRUE);
    buf[n] = 0;
    rl_insert_text(buf);
    u->scroll = 0;
}

static void on_key(struct ui *u, int rc, wint_t wc)
{
    bool fn = rc == KEY_CODE_YES;
    int key = (int)wc;
    if (fn && key == KEY_RESIZE) {
        clearok(stdscr, TRUE);
        return;
    }
    if (fn && key == KEY_MOUSE) {
        MEVENT me;
        if (getmouse(&me) != OK)
            return;
        int dir = me.bstate & BUTTON4_PRESSED ? 1 : me.bstate & BUTTON5_PRESSED ? -1 : 0;
        if (u->mode == UI_MODE_CHAT) {
            u->scroll += dir * UI_WHEEL_LINES;
            if (u->scroll < 0)
                u->scroll = 0;
        } else if (dir) {
            list_key(u, dir > 0 ? KEY_UP : KEY_DOWN, true);
        }
        return;
    }
    if (!fn && key == 27) {
        /* Esc alone stops; Esc + key is Alt-key; Esc [ 200 ~ starts a paste */
        wint_t w2;
        int rc2 = get_wch(&w2);
        if (rc2 == ERR) {
            if (u->mode != UI_MODE_CHAT)
                u->mode = UI_MODE_CHAT;
            else
                do_action(u, UI_ACT_STOP);
            return;
        }
        if (rc2 == OK && w2 == '[') {
            wint_t s[4];
            int k = 0;
            while (k < 4 && get_wch(&s[k]) == OK) {
                k++;
                if (s[k - 1] == '~' || k == 4)
                    break;
            }
            if (k == 4 && s[0] == '2' && s[1] == '0' && s[2] == '0' && s[3] == '~') {
                paste(u);
                return;
            }
            unsigned char seq[8] = {27, '['};
            size_t m = 2;
            for (int i = 0; i < k; i++)
                seq[m++] = (unsigned char)s[i];
            if (u->mode == UI_MODE_CHAT)
                rl_feed(u, seq, m);
            return;
        }
        if (rc2 == OK && w2 >= '1' && w2 <= '9') {
            u->mode = UI_MODE_CHAT;
            pick_model(u, (size_t)(w2 - '1'));
            return;
        }
        if (rc2 == OK) {
            int alt = w2 == '\n' ? UI_ALT('\r') : UI_ALT((int)w2);
            enum ui_action a = ui_key_action(alt);
            if (a != UI_ACT_NONE) {
                if (u->mode != UI_MODE_CHAT)
                    u->mode = UI_MODE_CHAT;
                do_action(u, a);
                return;
            }
            if (u->mode == UI_MODE_CHAT) {
                unsigned char e = 27;
                rl_feed(u, &e, 1);
                feed_wchar(u, w2);
            }
        }
        return;
    }
    if (u->mode != UI_MODE_CHAT) {
        list_key(u, key, fn);
        return;
    }
    if (u->ctrl_x) {
        u->ctrl_x = false;
        if (!fn && key == UI_CTRL('e')) {
            do_action(u, UI_ACT_EDITOR);
            return;
        }
        unsigned char x = UI_CTRL('x');
        rl_feed(u, &x, 1);
    }
    if (fn) {
        enum ui_action a = ui_key_action(key);
        if (a != UI_ACT_NONE) {
            do_action(u, a);
            return;
        }
        static const struct { int key; const char *seq; } fkeys[] = {
            {KEY_UP, "\033[A"}, {KEY_DOWN, "\033[B"}, {KEY_RIGHT, "\033[C"},
            {KEY_LEFT, "\033[D"}, {KEY_HOME, "\033[H"}, {KEY_END, "\033[F"},
            {KEY_DC, "\033[3~"}, {KEY_BACKSPACE, "\177"},
        };
        for (size_t i = 0; i < sizeof fkeys / sizeof fkeys[0]; i++)
            if (fkeys[i].key == key)
                rl_feed_str(u, fkeys[i].seq);
        return;
    }
    if (key == UI_CTRL('x')) {
        u->ctrl_x = true;
        return;
    }
    if (key == UI_CTRL('d') && rl_end > 0) {
        rl_feed_str(u, "\004");
        return;
    }
    if (key == '?' && rl_end == 0) {
        do_action(u, UI_ACT_HELP);
        return;
    }
    if (key == '\r' || key == KEY_ENTER) {
        if (u->generating) {
            set_hint(u, "a reply is streaming: wait, or press Esc to stop it");
            return;
        }
        rl_feed_str(u, "\r");
        return;
    }
    enum ui_action a = ui_key_action(key);
    if (a != UI_ACT_NONE) {
        do_action(u, a);
        return;
    }
    feed_wchar(u, wc);
}

/* ---- setup and the loop ---- */

static int screen_init(struct ui *u, char *err, size_t errlen)
{
    setlocale(LC_ALL, "");
    if (tcgetattr(STDIN_FILENO, &ui_saved_tio) == 0)
        ui_tio_saved = 1;
    signals_install(true);
    /* newterm, not initscr: initscr exits the process when TERM is unknown */
    u->screen = newterm(NULL, stdout, stdin);
    if (!u->screen) {
        signals_install(false);
        snprintf(err, errlen, "cannot drive this terminal (TERM unknown?); pipe into ponder "
                 "chat for line mode");
        return ENOTSUP;
    }
    set_term(u->screen);
    raw();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    u->color = u->cfg->color && has_colors();
    if (u->color) {
        start_color();
        use_default_colors();
        init_pair(UI_PAIR_USER, COLOR_CYAN, -1);
        init_pair(UI_PAIR_MODEL, COLOR_GREEN, -1);
        init_pair(UI_PAIR_THINK, COLOR_BLUE, -1);
        init_pair(UI_PAIR_NOTE, COLOR_YELLOW, -1);
        init_pair(UI_PAIR_BAR, COLOR_BLACK, COLOR_CYAN);
    }
    /* the wheel, when the terminal reports mouse events (kmous) */
    const char *kmous = tigetstr("kmous");
    if (u->cfg->mouse && kmous && kmous != (char *)-1 && *kmous) {
        mouseinterval(0);
        u->mouse = mousemask(BUTTON4_PRESSED | BUTTON5_PRESSED, NULL) != 0;
    }
    fputs("\033[?2004h", stdout);   /* bracketed paste */
    fflush(stdout);
    return 0;
}

static void screen_end(struct ui *u)
{
    fputs("\033[?2004l", stdout);
    fflush(stdout);
    endwin();
    delscreen(u->screen);
    u->screen = NULL;
    signals_install(false);
}

static void readline_init(struct ui *u)
{
    rl_change_environment = 0;
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;
    rl_getc_function = rl_getc_cb;
    rl_input_available_hook = rl_avail_cb;
    rl_redisplay_function = rl_redisplay_cb;
    rl_prep_term_function = rl_prep_cb;
    rl_deprep_term_function = rl_deprep_cb;
    rl_attempted_completion_function = complete_cb;
    rl_completion_display_matches_hook = NULL;
    rl_outstream = fopen("/dev/null", "w");
    rl_readline_name = "ponder";
    using_history();
    if (u->cfg->input_history)
        read_history(u->cfg->input_history);
    rl_callback_handler_install("", rl_line_cb);
}

static void readline_end(struct ui *u)
{
    rl_callback_handler_remove();
    if (u->cfg->input_history) {
        stifle_history(1000);
        write_history(u->cfg->input_history);
    }
    if (rl_outstream) {
        fclose(rl_outstream);
        rl_outstream = NULL;
    }
}

int ui_run(const struct ui_config *c, char *err, size_t errlen)
{
    struct ui *u = calloc(1, sizeof *u);
    if (!u)
        return snprintf(err, errlen, "out of memory"), ENOMEM;
    u->cfg = c;
    u->src = c->src;
    u->gp = c->gp;
    u->cur_model = u->loading_model = -1;
    session_init(&u->ses, c->store);
    u->ses.driver = "tui";
    session_set_system(&u->ses, c->system);
    tr_init(&u->tr, c->fold_reasoning);
    ui_current = u;
    int rc = screen_init(u, err, errlen);
    if (rc) {
        ui_current = NULL;
        session_free(&u->ses);
        free(u);
        return rc;
    }
    readline_init(u);
    if (c->resume)
        open_conversation(u, c->resume);
    if (c->notice)
        note(u, "%s", c->notice);
    if (c->first >= 0 && (size_t)c->first < c->n_models)
        load_model(u, c->first, NULL);
    else
        note(u, "%s", c->no_model_hint);

    while (!u->quit) {
        redraw(u);
        struct pollfd pfd[2] = {
            {.fd = STDIN_FILENO, .events = POLLIN},
            {.fd = u->src->fd(u->src->ctx), .events = POLLIN},
        };
        int timeout = u->generating || u->loading ? 100 : 1000;
        int n = poll(pfd, 2, timeout);
        if (n < 0 && errno != EINTR)
            break;
        wint_t wc;
        int krc;
        bool any_key = false;
        while ((krc = get_wch(&wc)) != ERR) {
            if (!any_key)
                u->hint[0] = 0;
            any_key = true;
            on_key(u, krc, wc);
            if (u->accepted) {
                char *line = u->accepted;
                u->accepted = NULL;
                accept_line(u, line);
                free(line);
            }
            if (u->got_eof) {
                u->got_eof = false;
                do_action(u, UI_ACT_QUIT);
            }
        }
        struct engine_event ev;
        while (u->src->next(u->src->ctx, &ev))
            on_event(u, &ev);
    }
    readline_end(u);
    screen_end(u);
    ui_current = NULL;
    if (u->generating) {
        /* stop, and wait (a little) for DONE so the reply is stored as interrupted */
        u->src->stop(u->src->ctx);
        double until = now_ms() + 3000;
        while (u->generating && now_ms() < until) {
            struct pollfd p = {.fd = u->src->fd(u->src->ctx), .events = POLLIN};
            poll(&p, 1, 100);
            struct engine_event ev;
            while (u->generating && u->src->next(u->src->ctx, &ev))
                on_event(u, &ev);
        }
    }
    tr_free(&u->tr);
    tr_lines_free(&u->lines);
    session_free(&u->ses);
    rows_clear(u);
    free(u->accepted);
    free(u->model_path);
    free(u->loading_path);
    free(u);
    return 0;
}
