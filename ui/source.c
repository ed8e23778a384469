/* Sources of engine events for the interface: the engine thread itself, and
 * a script played back on a timer (exact content for tests and demos). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "ui/ui.h"

static int eng_fd(void *ctx) { return engine_fd(ctx); }
static bool eng_next(void *ctx, struct engine_event *ev) { return engine_next(ctx, ev); }
static uint64_t eng_load(void *ctx, const char *path, const struct model_params *p)
{
    return engine_load(ctx, path, p);
}
static uint64_t eng_generate(void *ctx, const struct chat_msg *msgs, size_t n,
                             const struct engine_generate_params *gp)
{
    return engine_generate(ctx, msgs, n, gp);
}
static void eng_stop(void *ctx) { engine_stop(ctx); }
static uint64_t eng_load_remote(void *ctx, const struct engine_remote *r)
{
    return engine_load_remote(ctx, r);
}

void ui_source_engine(struct ui_source *src, struct engine *e)
{
    *src = (struct ui_source){
        .ctx = e, .fd = eng_fd, .next = eng_next, .load = eng_load,
        .generate = eng_generate, .stop = eng_stop, .load_remote = eng_load_remote,
    };
}

/* ---- the script ---- */

enum step_kind { STEP_DELAY, STEP_THINK, STEP_ANSWER, STEP_END };

struct step {
    enum step_kind kind;
    int ms;
    char text[ENGINE_TEXT_MAX];
    size_t len;
};

struct script {
    int tfd;
    struct step *steps;
    size_t n, pos;
    uint64_t request;
    int delay_ms;
    int load_ms;                /* < 0: the delay */
    bool remote;
    struct engine_generate_params gp;   /* of the reply playing */
    bool budget_reached;
    enum { SC_IDLE, SC_LOADING, SC_READING, SC_PLAYING, SC_DONE_END, SC_DONE_USER } state;
    bool stop;
    double due_ms, start_ms, first_ms, think_end_ms;
    int n_think, n_answer, n_prompt;
    char model[128];
    bool phase_think, phase_answer;
};

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void arm(struct script *s, double at_ms)
{
    s->due_ms = at_ms;
    double d = at_ms - mono_ms();
    if (d < 0.001)
        d = 0.001;
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(d / 1000);
    its.it_value.tv_nsec = (long)((d - its.it_value.tv_sec * 1000.0) * 1e6);
    if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
        its.it_value.tv_nsec = 1000;
    timerfd_settime(s->tfd, 0, &its, NULL);
}

static size_t unescape(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; in[i] && n < cap; i++) {
        char c = in[i];
        if (c == '\\' && in[i + 1]) {
            char e = in[++i];
            if (e == 'n')
                c = '\n';
            else if (e == 't')
                c = '\t';
            else if (e == 'x' && in[i + 1] && in[i + 2]) {
                char hex[3] = {in[i + 1], in[i + 2], 0};
                c = (char)strtol(hex, NULL, 16);
                i += 2;
            } else
                c = e;
        }
        out[n++] = c;
    }
    return n;
}

static int sc_fd(void *ctx) { return ((struct script *)ctx)->tfd; }

static uint64_t sc_load(void *ctx, const char *path, const struct model_params *p)
{
    (void)p;
    struct script *s = ctx;
    const char *base = strrchr(path, '/');
    snprintf(s->model, sizeof s->model, "%s", base ? base + 1 : path);
    char *dot = strstr(s->model, ".gguf");
    if (dot)
        *dot = 0;
    s->remote = false;
    s->state = SC_LOADING;
    arm(s, mono_ms() + (s->load_ms >= 0 ? s->load_ms : s->delay_ms));
    return ++s->request;
}

static uint64_t sc_load_remote(void *ctx, const struct engine_remote *r)
{
    struct script *s = ctx;
    snprintf(s->model, sizeof s->model, "%s", r->model ? r->model : "remote");
    s->remote = true;
    s->state = SC_LOADING;
    arm(s, mono_ms() + (s->load_ms >= 0 ? s->load_ms : s->delay_ms));
    return ++s->request;
}

static uint64_t sc_generate(void *ctx, const struct chat_msg *msgs, size_t n,
                            const struct engine_generate_params *gp)
{
    struct script *s = ctx;
    s->gp = *gp;
    s->budget_reached = false;
    s->n_prompt = 0;
    for (size_t i = 0; i < n; i++)
        s->n_prompt += (int)(strlen(msgs[i].content) / 4) + 4;
    s->state = SC_READING;
    s->stop = false;
    s->n_think = s->n_answer = 0;
    s->phase_think = s->phase_answer = false;
    s->start_ms = mono_ms();
    s->first_ms = s->think_end_ms = 0;
    arm(s, s->start_ms + s->delay_ms);
    return ++s->request;
}

static void sc_stop(void *ctx)
{
    struct script *s = ctx;
    if (s->state == SC_READING || s->state == SC_PLAYING) {
        s->stop = true;
        arm(s, mono_ms());
    }
}

static void done_event(struct script *s, struct engine_event *ev, enum engine_stop stop)
{
    double now = mono_ms();
    ev->type = ENGINE_EVENT_DONE;
    ev->u.done.stop = stop;
    struct engine_stats *st = &ev->u.done.stats;
    memset(st, 0, sizeof *st);
    st->prompt_tokens = s->n_prompt;
    st->reasoning_tokens = s->n_think;
    st->answer_tokens = s->n_answer;
    st->prompt_ms = s->delay_ms;
    st->first_token_ms = s->first_ms ? s->first_ms - s->start_ms : 0;
    double think_end = s->think_end_ms ? s->think_end_ms : now;
    st->reasoning_ms = s->n_think && s->first_ms ? think_end - s->first_ms : 0;
    st->answer_ms = s->n_answer ? now - (s->think_end_ms ? s->think_end_ms : s->first_ms) : 0;
    double gen_ms = s->first_ms ? now - s->first_ms : 0;
    st->prompt_tps = st->prompt_ms > 0 ? s->n_prompt * 1000.0 / st->prompt_ms : 0;
    st->gen_tps = gen_ms > 0 ? (s->n_think + s->n_answer) * 1000.0 / gen_ms : 0;
    snprintf(st->backend, sizeof st->backend, "script");
    snprintf(st->device, sizeof st->device, "script");
    st->threads = 1;
    st->n_ctx = 4096;
    st->sampler = s->gp.sampler;
    st->think_budget = s->gp.think_budget;
    st->think_mode = s->gp.think_mode;
    st->think_off = s->gp.think_off;
    st->budget_reached = s->budget_reached;
    s->state = SC_IDLE;
}

static bool sc_next(void *ctx, struct engine_event *ev)
{
    struct script *s = ctx;
    uint64_t ticks;
    while (read(s->tfd, &ticks, sizeof ticks) > 0) {
    }
    if (s->state == SC_IDLE || mono_ms() + 0.5 < s->due_ms)
        return false;
    memset(ev, 0, sizeof *ev);
    ev->request = s->request;
    if (s->state == SC_LOADING) {
        ev->type = ENGINE_EVENT_LOADED;
        struct model_info *in = &ev->u.loaded;
        snprintf(in->arch, sizeof in->arch, "%s", s->remote ? "remote" : "qwen2");
        snprintf(in->name, sizeof in->name, "%s", s->model);
        snprintf(in->ftype, sizeof in->ftype, "%s", s->remote ? "remote" : "Q8_0");
        in->n_ctx = 4096;
        in->backend = s->remote ? "remote" : "script";
        in->device = "script";
        in->n_threads = 1;
        s->state = SC_IDLE;
        return true;
    }
    if (s->stop) {
        /* skip to the end of this reply */
        while (s->pos < s->n && s->steps[s->pos].kind != STEP_END)
            s->pos++;
        if (s->pos < s->n)
            s->pos++;
        done_event(s, ev, ENGINE_STOP_USER);
        return true;
    }
    if (s->state == SC_READING) {
        ev->type = ENGINE_EVENT_PHASE;
        ev->u.phase = ENGINE_PHASE_READING;
        s->state = SC_PLAYING;
        arm(s, mono_ms() + s->delay_ms);
        return true;
    }
    for (;;) {
        while (s->pos < s->n && s->steps[s->pos].kind == STEP_DELAY)
            s->delay_ms = s->steps[s->pos++].ms;
        /* the thinking budget: think steps past it (all, with think off) are skipped */
        if (s->pos < s->n && s->steps[s->pos].kind == STEP_THINK &&
            (s->gp.think_off || (s->gp.think_budget > 0 && s->n_think >= s->gp.think_budget))) {
            s->budget_reached = !s->gp.think_off;
            s->pos++;
            continue;
        }
        break;
    }
    if (s->pos >= s->n) {
        static const char eos[] = "(end of script)";
        if (!s->n_answer) {
            ev->type = ENGINE_EVENT_TOKEN;
            ev->u.token.kind = REASON_KIND_ANSWER;
            ev->u.token.first = true;
            ev->u.token.len = sizeof eos - 1;
            memcpy(ev->u.token.text, eos, sizeof eos);
            s->n_answer++;
            if (!s->first_ms)
                s->first_ms = mono_ms();
            arm(s, mono_ms());
            return true;
        }
        done_event(s, ev, ENGINE_STOP_END);
        return true;
    }
    const struct step *st = &s->steps[s->pos];
    if (st->kind == STEP_END) {
        s->pos++;
        done_event(s, ev, ENGINE_STOP_END);
        return true;
    }
    bool think = st->kind == STEP_THINK;
    if ((think && !s->phase_think) || (!think && !s->phase_answer)) {
        ev->type = ENGINE_EVENT_PHASE;
        ev->u.phase = think ? ENGINE_PHASE_THINKING : ENGINE_PHASE_ANSWERING;
        if (think)
            s->phase_think = true;
        else {
            s->phase_answer = true;
            if (s->n_think && !s->think_end_ms)
                s->think_end_ms = mono_ms();
        }
        arm(s, mono_ms());
        return true;
    }
    ev->type = ENGINE_EVENT_TOKEN;
    ev->u.token.kind = think ? REASON_KIND_REASONING : REASON_KIND_ANSWER;
    ev->u.token.first = true;
    ev->u.token.id = (int32_t)s->pos;
    ev->u.token.len = st->len;
    memcpy(ev->u.token.text, st->text, st->len);
    if (!s->first_ms)
        s->first_ms = mono_ms();
    if (think)
        s->n_think++;
    else
        s->n_answer++;
    s->pos++;
    arm(s, mono_ms() + s->delay_ms);
    return true;
}

static int script_add(struct script *s, const struct step *st, size_t *cap)
{
    if (s->n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        struct step *v = realloc(s->steps, c * sizeof *v);
        if (!v)
            return ENOMEM;
        s->steps = v;
        *cap = c;
    }
    s->steps[s->n++] = *st;
    return 0;
}

int ui_script_open(const char *path, struct ui_source *src, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return e;
    }
    struct script *s = calloc(1, sizeof *s);
    int rc = 0;
    size_t cap = 0;
    char line[1024];
    int lineno = 0;
    if (!s) {
        rc = ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    s->delay_ms = 20;
    s->load_ms = -1;
    s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (s->tfd < 0) {
        rc = errno;
        snprintf(err, errlen, "timerfd: %s", strerror(rc));
        goto out;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\n")] = 0;
        struct step st = {0};
        if (!line[0] || line[0] == '#')
            continue;
        if (!strncmp(line, "delay ", 6)) {
            st.kind = STEP_DELAY;
            st.ms = atoi(line + 6);
        } else if (!strncmp(line, "loadms ", 7)) {
            s->load_ms = atoi(line + 7);
            continue;
        } else if (!strncmp(line, "think ", 6)) {
            st.kind = STEP_THINK;
            st.len = unescape(line + 6, st.text, sizeof st.text);
        } else if (!strncmp(line, "answer ", 7)) {
            st.kind = STEP_ANSWER;
            st.len = unescape(line + 7, st.text, sizeof st.text);
        } else if (!strcmp(line, "end")) {
            st.kind = STEP_END;
        } else {
            rc = EINVAL;
            snprintf(err, errlen, "%s:%d: unknown line (delay, loadms, think, answer, end)", path,
                     lineno);
            goto out;
        }
        if ((rc = script_add(s, &st, &cap))) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
out:
    fclose(f);
    if (rc) {
        if (s) {
            if (s->tfd >= 0)
                close(s->tfd);
            free(s->steps);
            free(s);
        }
        return rc;
    }
    *src = (struct ui_source){
        .ctx = s, .fd = sc_fd, .next = sc_next, .load = sc_load,
        .generate = sc_generate, .stop = sc_stop, .load_remote = sc_load_remote,
    };
    return 0;
}

void ui_script_close(struct ui_source *src)
{
    struct script *s = src ? src->ctx : NULL;
    if (!s)
        return;
    close(s->tfd);
    free(s->steps);
    free(s);
    src->ctx = NULL;
}
