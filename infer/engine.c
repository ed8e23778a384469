/* The engine thread: requests in a mutex + condvar queue, events in a second
 * queue with a byte on a pipe per event, so a UI can poll() for them.  The
 * worker owns the model; no lock is held across a forward pass. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "infer/engine.h"
#include "infer/gguf.h"
#include "infer/remote.h"
#include "infer/tokenizer.h"

enum request_type { REQUEST_LOAD, REQUEST_GENERATE, REQUEST_UNLOAD, REQUEST_LOAD_REMOTE };

struct request {
    struct request *next;
    enum request_type type;
    uint64_t id;
    char *path;                         /* load */
    struct model_params params;
    struct chat_msg *msgs;              /* generate: contents owned */
    size_t n_msgs;
    struct engine_generate_params gp;
    char *remote[3];                    /* load_remote: url, api key, model (or NULL) */
    /* allocated with the request, so the events that end it (DONE, and the
     * ERROR before it; LOADED or ERROR; UNLOADED) are delivered even when
     * memory runs out: a UI waiting for them never waits forever */
    struct event_node *spare[2];
};

struct event_node {
    struct event_node *next;
    struct engine_event ev;
};

struct engine {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct request *req_head, *req_tail;
    struct event_node *ev_head, *ev_tail;
    uint64_t next_id;
    bool quit;
    atomic_bool stop;
    int pipe_r, pipe_w;

    /* worker-owned */
    struct model *model;
    double load_ms;
    float *logits;
    struct remote *remote;              /* instead of model: infer/remote.c */
    char remote_device[64];             /* LOADED's device for a remote; lives until close */
    char *model_path;                   /* the loaded model's file and parameters, to load */
    struct model_params model_params;   /* it again on the CPU when its device is lost */
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void request_free(struct request *r)
{
    if (!r)
        return;
    free(r->spare[0]);
    free(r->spare[1]);
    free(r->path);
    for (int i = 0; i < 3; i++) {
        if (r->remote[i])
            memset(r->remote[i], 0, strlen(r->remote[i]));   /* the key */
        free(r->remote[i]);
    }
    for (size_t i = 0; i < r->n_msgs; i++)
        free((char *)r->msgs[i].content);
    free(r->msgs);
    free(r);
}

/* ---- events ---- */

/* Queues ev in node n (taken over) and wakes the reader. */
static void post_node(struct engine *e, struct event_node *n, const struct engine_event *ev)
{
    n->next = NULL;
    n->ev = *ev;
    pthread_mutex_lock(&e->lock);
    if (e->ev_tail)
        e->ev_tail->next = n;
    else
        e->ev_head = n;
    e->ev_tail = n;
    pthread_mutex_unlock(&e->lock);
    char b = 1;
    ssize_t w;
    do
        w = write(e->pipe_w, &b, 1);
    while (w < 0 && errno == EINTR);
    /* EAGAIN: the pipe is full of wake-ups already; the queue still holds the event */
}

/* A progress, phase or token event: lost when memory runs out (the UI keeps
 * working; the request still ends with its final event). */
static void post(struct engine *e, const struct engine_event *ev)
{
    struct event_node *n = malloc(sizeof *n);
    if (n)
        post_node(e, n, ev);
}

/* An event that ends (or reports the failure of) request r: in one of the
 * nodes allocated with it, so it cannot be lost. */
static void post_final(struct engine *e, struct request *r, const struct engine_event *ev)
{
    for (int i = 0; i < 2; i++) {
        if (r->spare[i]) {
            struct event_node *n = r->spare[i];
            r->spare[i] = NULL;
            post_node(e, n, ev);
            return;
        }
    }
    post(e, ev);    /* not reached: a request posts at most two final events */
}

/* The ERROR that ends (or comes just before the DONE of) request r. */
static void post_fail(struct engine *e, struct request *r, const char *msg)
{
    struct engine_event ev = {.type = ENGINE_EVENT_ERROR, .request = r->id};
    snprintf(ev.u.error, sizeof ev.u.error, "%s", msg);
    post_final(e, r, &ev);
}

bool engine_next(struct engine *e, struct engine_event *ev)
{
    char buf[64];
    while (read(e->pipe_r, buf, sizeof buf) > 0)
        ;
    pthread_mutex_lock(&e->lock);
    struct event_node *n = e->ev_head;
    if (n) {
        e->ev_head = n->next;
        if (!e->ev_head)
            e->ev_tail = NULL;
    }
    bool more = e->ev_head != NULL;
    pthread_mutex_unlock(&e->lock);
    if (more) {
        char b = 1;
        if (write(e->pipe_w, &b, 1) < 0) {
            /* full: readable anyway */
        }
    }
    if (!n)
        return false;
    *ev = n->ev;
    free(n);
    return true;
}

/* ---- load ---- */

/* model_load's progress as LOAD_PROGRESS events, at most one per percent
 * or phase change. */
struct load_report {
    struct engine *e;
    uint64_t request;
    char phase[32];
    int percent;
};

static void load_report(void *ctx, float fraction, const char *phase)
{
    struct load_report *lr = ctx;
    int percent = (int)(fraction * 100.0f);
    if (!strcmp(lr->phase, phase) && percent == lr->percent)
        return;
    snprintf(lr->phase, sizeof lr->phase, "%s", phase);
    lr->percent = percent;
    struct engine_event ev = {.type = ENGINE_EVENT_LOAD_PROGRESS, .request = lr->request};
    ev.u.progress.fraction = fraction;
    snprintf(ev.u.progress.phase, sizeof ev.u.progress.phase, "%s", phase);
    post(lr->e, &ev);
}

/* The start of a load, local or remote: LOAD_PROGRESS(phase), and what was
 * loaded before is dropped. */
static void load_begin(struct engine *e, const struct request *r, const char *phase)
{
    struct engine_event ev = {.type = ENGINE_EVENT_LOAD_PROGRESS, .request = r->id};
    snprintf(ev.u.progress.phase, sizeof ev.u.progress.phase, "%s", phase);
    post(e, &ev);
    remote_free(e->remote);
    e->remote = NULL;
    model_free(e->model);
    e->model = NULL;
    free(e->logits);
    e->logits = NULL;
}

/* The end of a successful load: LOAD_PROGRESS(1, "ready"), then LOADED. */
static void load_done(struct engine *e, struct request *r, const struct model_info *in)
{
    struct engine_event ev = {.type = ENGINE_EVENT_LOAD_PROGRESS, .request = r->id};
    ev.u.progress.fraction = 1.0f;
    snprintf(ev.u.progress.phase, sizeof ev.u.progress.phase, "ready");
    post(e, &ev);
    struct engine_event done = {.type = ENGINE_EVENT_LOADED, .request = r->id};
    done.u.loaded = *in;
    post_final(e, r, &done);
}

static void do_load(struct engine *e, struct request *r)
{
    load_begin(e, r, "opening");
    char err[512] = "";
    double t0 = now_ms();
    struct load_report lr = {.e = e, .request = r->id, .percent = -1};
    struct model_params mp = r->params;
    mp.progress = load_report;
    mp.progress_ctx = &lr;
    int rc = model_load(r->path, &mp, &e->model, err, sizeof err);
    if (!rc && !(e->logits = malloc((size_t)model_info(e->model)->n_vocab * sizeof(float)))) {
        model_free(e->model);
        e->model = NULL;
        rc = ENOMEM;
        snprintf(err, sizeof err, "out of memory");
    }
    if (rc) {
        post_fail(e, r, err[0] ? err : strerror(rc));
        return;
    }
    e->load_ms = now_ms() - t0;
    free(e->model_path);
    e->model_path = strdup(r->path);    /* NULL: no fallback to the CPU */
    e->model_params = r->params;
    e->model_params.cache_dir = NULL;   /* the caller's; the CPU needs none */
    load_done(e, r, model_info(e->model));
}

/* The device was lost during a generation (its ERROR said so): the model
 * is loaded again on the CPU, so that the next request runs there.  The
 * DONE that follows tells the interface: stats.fell_back, with backend
 * "cpu", or "none" when the model could not be loaded again (then no model
 * is loaded). */
static void fall_back_to_cpu(struct engine *e, struct engine_stats *st)
{
    model_free(e->model);
    e->model = NULL;
    st->fell_back = true;
    snprintf(st->backend, sizeof st->backend, "none");
    st->device[0] = 0;
    if (!e->model_path)
        return;
    struct model_params p = e->model_params;
    p.backend = MODEL_BACKEND_CPU;
    p.n_gpu_layers = 0;
    char err[512] = "";
    double t0 = now_ms();
    if (model_load(e->model_path, &p, &e->model, err, sizeof err)) {
        e->model = NULL;
        return;
    }
    e->load_ms = now_ms() - t0;
    const struct model_info *in = model_info(e->model);
    snprintf(st->backend, sizeof st->backend, "%s", in->backend);
    snprintf(st->device, sizeof st->device, "%s", in->device);
}

/* ---- generate ---- */

struct gen {
    struct engine *e;
    uint64_t id;
    int32_t token;
    bool first;             /* no event was posted yet for this token */
    enum engine_phase phase;
    double t_switch;        /* when the answer began */
};

static void post_phase(struct gen *g, enum engine_phase p)
{
    g->phase = p;
    struct engine_event ev = {.type = ENGINE_EVENT_PHASE, .request = g->id};
    ev.u.phase = p;
    post(g->e, &ev);
}

static void post_to(void *ctx, const struct engine_event *ev)
{
    post(ctx, ev);
}

static void on_span(void *ctx, const struct reason_span *sp)
{
    struct gen *g = ctx;
    if (sp->kind == REASON_KIND_ANSWER && g->phase != ENGINE_PHASE_ANSWERING && !sp->leading) {
        g->t_switch = now_ms();
        post_phase(g, ENGINE_PHASE_ANSWERING);
    }
    remote_emit_span(sp, g->id, g->token, &g->first, post_to, g->e);
}

static uint64_t pick_seed(void)
{
    uint64_t s = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &s, sizeof s) != (ssize_t)sizeof s)
            s = 0;
        close(fd);
    }
    if (!s) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
    }
    return s;
}

/* Renders the request into prompt ids; sets *reasoning when the prompt opens
 * a think block.  Raw prompts are fed as they are (think_off does not apply). */
static int render(struct engine *e, struct request *r, struct tokens *ids, bool *reasoning,
                  char *err, size_t errlen)
{
    const struct tokenizer *tok = model_tokenizer(e->model);
    *reasoning = false;
    if (r->gp.raw) {
        const char *text = r->n_msgs ? r->msgs[r->n_msgs - 1].content : "";
        return tokenizer_encode(tok, text, strlen(text), tokenizer_add_bos(tok), true, ids, err,
                                errlen);
    }
    enum chat_format fmt = CHAT_FORMAT_DEEPSEEK_R1;
    struct gguf_str tmpl;
    char ignored[256];
    /* a model without a recognised template is run in the R1 format */
    if (gguf_get_str(model_gguf(e->model), "tokenizer.chat_template", &tmpl, ignored,
                     sizeof ignored) == 0)
        (void)chat_detect(tmpl.ptr, (size_t)tmpl.len, &fmt, ignored, sizeof ignored);
    *reasoning = chat_prompt_opens_reasoning(fmt) && !r->gp.think_off;
    return chat_render_gen(fmt, tok, r->msgs, r->n_msgs,
                           r->gp.think_off ? CHAT_GEN_THINK_OFF : CHAT_GEN_THINK, ids, NULL, err,
                           errlen);
}

/* The thinking budget of one generation (N reasoning tokens).
 *
 * HARD: when the reasoning holds N tokens, the engine feeds "</think>\n\n"
 * (tokenized with special tokens, the ids the model itself would write)
 * instead of sampling; the splitter sees the tag, the answer follows.
 *
 * SOFT: from 80 % of N (start = N - N/5 reasoning tokens) the logit of
 * </think> gets a bias that grows by BUDGET_SOFT_BIAS / (N - start) per
 * reasoning token: +BUDGET_SOFT_BIAS (8 logits, about e^8 = 3000 times the
 * odds) at N, and on at the same rate after it.  A model that is near a
 * natural boundary (the end of a sentence, where </think> is already
 * plausible) takes it there.  Guarantee: a reasoning still open after
 * N + BUDGET_SOFT_GRACE (64) tokens is closed as in HARD mode, so a soft
 * budget ends the reasoning within N + 64 tokens. */
#define BUDGET_SOFT_BIAS 8.0f
#define BUDGET_SOFT_GRACE 64

struct budget {
    int limit;              /* N; 0: no budget */
    bool hard;
    int start;              /* soft: the reasoning count from which </think> is pushed */
    float step;             /* soft: bias added per reasoning token from start */
    int32_t think_end;      /* the </think> id; -1 when the vocabulary has none */
    struct tokens close;    /* "</think>\n\n" as ids */
    size_t next;            /* the next id of close to feed */
    bool forcing, forced;   /* feeding close now / did */
    bool pushed;            /* soft: the bias was applied */
};

static int budget_init(struct budget *b, const struct engine_generate_params *gp,
                       const struct tokenizer *tok, char *err, size_t errlen)
{
    static const char close[] = "</think>\n\n";
    memset(b, 0, sizeof *b);
    b->think_end = -1;
    if (gp->think_budget <= 0)
        return 0;
    b->limit = gp->think_budget;
    b->hard = gp->think_mode == ENGINE_THINK_HARD;
    b->start = b->limit - b->limit / 5;
    b->step = BUDGET_SOFT_BIAS / (float)(b->limit - b->start > 0 ? b->limit - b->start : 1);
    b->think_end = tokenizer_find(tok, "</think>", 8);
    return tokenizer_encode(tok, close, sizeof close - 1, false, true, &b->close, err, errlen);
}

/* The forced id for this step, or -1 to sample.  n: reasoning tokens so far. */
static int32_t budget_force(struct budget *b, bool in_reasoning, int n)
{
    if (b->forcing) {
        int32_t id = b->close.ids[b->next++];
        if (b->next == b->close.n)
            b->forcing = false;
        return id;
    }
    if (!b->limit || b->forced || !in_reasoning || b->close.n == 0)
        return -1;
    if (n < (b->hard ? b->limit : b->limit + BUDGET_SOFT_GRACE))
        return -1;
    b->forced = b->forcing = true;
    b->next = 0;
    return budget_force(b, in_reasoning, n);
}

/* Soft mode: raises the logit of </think> (n: reasoning tokens so far). */
static void budget_bias(struct budget *b, bool in_reasoning, int n, float *logits)
{
    if (!b->limit || b->hard || b->think_end < 0 || !in_reasoning || n < b->start)
        return;
    logits[b->think_end] += b->step * (float)(n - b->start + 1);
    b->pushed = true;
}

static void do_generate(struct engine *e, struct request *r)
{
    struct engine_event done = {.type = ENGINE_EVENT_DONE, .request = r->id};
    struct engine_stats *st = &done.u.done.stats;
    done.u.done.stop = ENGINE_STOP_ERROR;
    char err[512] = "";
    struct tokens ids = {0};
    struct sampler *smp = NULL;
    struct budget bud;
    memset(&bud, 0, sizeof bud);
    struct gen g = {.e = e, .id = r->id};
    st->think_budget = r->gp.think_budget > 0 ? r->gp.think_budget : 0;
    st->think_mode = r->gp.think_mode;
    st->think_off = r->gp.think_off && !r->gp.raw;
    if (!e->model) {
        post_fail(e, r, "no model is loaded");
        goto out;
    }
    const struct model_info *in = model_info(e->model);
    const struct tokenizer *tok = model_tokenizer(e->model);
    bool reasoning;
    int rc = render(e, r, &ids, &reasoning, err, sizeof err);
    if (!rc && ids.n == 0)
        rc = EINVAL, snprintf(err, sizeof err, "the prompt gives no tokens");
    if (!rc && ids.n >= (size_t)in->n_ctx)
        rc = ENOSPC, snprintf(err, sizeof err,
                              "the conversation has %zu tokens; the context holds %d", ids.n,
                              in->n_ctx);
    struct sampler_params sp = r->gp.sampler;
    if (!sp.seed)
        sp.seed = pick_seed();
    if (!rc)
        rc = sampler_init(&sp, in->n_vocab, &smp, err, sizeof err);
    if (!rc)
        rc = budget_init(&bud, &r->gp, tok, err, sizeof err);
    if (rc) {
        post_fail(e, r, err);
        goto out;
    }
    for (size_t i = 0; i < ids.n; i++)
        sampler_accept(smp, ids.ids[i]);
    snprintf(st->backend, sizeof st->backend, "%s", in->backend);
    snprintf(st->device, sizeof st->device, "%s", in->device);
    st->threads = in->n_threads;
    st->n_ctx = in->n_ctx;
    st->layers_on_device = 0;
    st->sampler = sp;
    st->load_ms = e->load_ms;
    e->load_ms = 0;     /* counted once, in the first run after a load */

    post_phase(&g, ENGINE_PHASE_READING);
    double t0 = now_ms();
    int kept = model_keep_prefix(e->model, ids.ids, (int)ids.n);
    st->prompt_cached = kept;
    st->prompt_tokens = (int)ids.n - kept;
    for (int done_n = kept; done_n < (int)ids.n;) {
        int chunk = (int)ids.n - done_n < 512 ? (int)ids.n - done_n : 512;
        bool last = done_n + chunk == (int)ids.n;
        rc = model_decode(e->model, ids.ids + done_n, chunk, last ? e->logits : NULL, false, err,
                          sizeof err);
        if (rc) {
            post_fail(e, r, err);
            model_clear(e->model);
            goto out;
        }
        done_n += chunk;
        if (!last && atomic_load(&e->stop)) {
            done.u.done.stop = ENGINE_STOP_USER;
            goto out;
        }
    }
    double t1 = now_ms();
    st->prompt_ms = t1 - t0;
    st->prompt_tps = st->prompt_tokens / (st->prompt_ms > 0 ? st->prompt_ms / 1e3 : 1e-9);

    struct reason rs;
    reason_init(&rs, reasoning);
    struct detok dt;
    detok_init(&dt);
    post_phase(&g, reasoning ? ENGINE_PHASE_THINKING : ENGINE_PHASE_ANSWERING);
    g.t_switch = reasoning ? 0 : t1;
    int max = r->gp.max_tokens >= 0 ? r->gp.max_tokens : in->n_ctx;
    enum engine_stop stop = ENGINE_STOP_LENGTH;
    bool closed = false;        /* this reply's reasoning ended at a </think> */
    for (int i = 0; i < max; i++) {
        if (atomic_load(&e->stop)) {
            stop = ENGINE_STOP_USER;
            break;
        }
        bool was_reasoning = reason_kind_now(&rs) == REASON_KIND_REASONING;
        int32_t id = budget_force(&bud, was_reasoning, st->reasoning_tokens);
        if (id >= 0) {
            sampler_accept(smp, id);
        } else {
            budget_bias(&bud, was_reasoning, st->reasoning_tokens, e->logits);
            id = sampler_sample(smp, e->logits, in->n_vocab);   /* accepts id */
        }
        if (i == 0)
            st->first_token_ms = now_ms() - t0;
        if (tokenizer_is_eog(tok, id)) {
            stop = ENGINE_STOP_END;
            break;
        }
        char piece[256], text[DETOK_OUT_MAX(256)];
        int len = tokenizer_piece(tok, id, false, piece, sizeof piece);
        if (len > (int)sizeof piece)
            len = sizeof piece;
        g.token = id;
        g.first = true;
        if (len > 0) {
            size_t n = detok_push(&dt, piece, (size_t)len, text);
            if (n)
                reason_push(&rs, text, n, on_span, &g);
        }
        /* a reasoning token is one written inside the think block; the one
         * that closes it (</think>) and all after it are answer tokens */
        if (was_reasoning && reason_kind_now(&rs) == REASON_KIND_REASONING) {
            st->reasoning_tokens++;
        } else {
            st->answer_tokens++;
            if (was_reasoning) {
                closed = true;
                if (g.phase != ENGINE_PHASE_ANSWERING) {
                    g.t_switch = now_ms();
                    post_phase(&g, ENGINE_PHASE_ANSWERING);
                }
            }
        }
        if (g.first) {
            struct engine_event ev = {.type = ENGINE_EVENT_TOKEN, .request = r->id};
            ev.u.token.id = id;
            ev.u.token.first = true;
            ev.u.token.kind = reason_kind_now(&rs);
            post(e, &ev);
        }
        if (model_n_past(e->model) >= in->n_ctx) {
            stop = ENGINE_STOP_CONTEXT;
            break;
        }
        if (i + 1 == max)
            break;
        rc = model_decode(e->model, &id, 1, e->logits, false, err, sizeof err);
        if (rc) {
            post_fail(e, r, err);
            stop = ENGINE_STOP_ERROR;
            break;
        }
    }
    char tail[16];
    size_t n = detok_flush(&dt, tail);
    if (n)
        reason_push(&rs, tail, n, on_span, &g);
    reason_flush(&rs, on_span, &g);
    st->budget_reached = bud.forced || (bud.pushed && closed);
    double t2 = now_ms();
    if (g.phase == ENGINE_PHASE_ANSWERING && g.t_switch > 0) {
        st->reasoning_ms = g.t_switch - t1;
        st->answer_ms = t2 - g.t_switch;
    } else {
        st->reasoning_ms = t2 - t1;
    }
    int gen_n = st->reasoning_tokens + st->answer_tokens;
    st->gen_tps = gen_n / ((t2 - t1) > 0 ? (t2 - t1) / 1e3 : 1e-9);
    done.u.done.stop = stop;
out:
    if (e->model && model_device_lost(e->model))
        fall_back_to_cpu(e, &done.u.done.stats);
    tokens_free(&bud.close);
    sampler_free(smp);
    tokens_free(&ids);
    post_final(e, r, &done);
}

/* ---- a remote engine (infer/remote.c) ---- */

struct remote_post {
    struct engine *e;
    struct request *r;
};

static void remote_emit(void *ctx, const struct engine_event *ev)
{
    struct remote_post *rp = ctx;
    if (ev->type == ENGINE_EVENT_DONE || ev->type == ENGINE_EVENT_ERROR)
        post_final(rp->e, rp->r, ev);
    else
        post(rp->e, ev);
}

static void do_load_remote(struct engine *e, struct request *r)
{
    load_begin(e, r, "connecting");
    char err[512] = "";
    struct engine_remote rq = {r->remote[0], r->remote[1], r->remote[2]};
    double t0 = now_ms();
    int rc = remote_open(&rq, NULL, &e->remote, err, sizeof err);
    if (rc) {
        post_fail(e, r, err[0] ? err : strerror(rc));
        return;
    }
    e->load_ms = now_ms() - t0;
    struct model_info in = *remote_info(e->remote);
    snprintf(e->remote_device, sizeof e->remote_device, "%s", in.device);
    in.device = e->remote_device;
    load_done(e, r, &in);
}

static void do_generate_remote(struct engine *e, struct request *r)
{
    struct remote_post rp = {e, r};
    remote_generate(e->remote, r->id, r->msgs, r->n_msgs, &r->gp, &e->stop, remote_emit, &rp);
}

/* ---- the worker ---- */

static void *worker(void *arg)
{
    struct engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->lock);
        while (!e->quit && !e->req_head)
            pthread_cond_wait(&e->wake, &e->lock);
        if (e->quit) {
            pthread_mutex_unlock(&e->lock);
            break;
        }
        struct request *r = e->req_head;
        e->req_head = r->next;
        if (!e->req_head)
            e->req_tail = NULL;
        pthread_mutex_unlock(&e->lock);

        switch (r->type) {
        case REQUEST_LOAD:
            do_load(e, r);
            break;
        case REQUEST_LOAD_REMOTE:
            do_load_remote(e, r);
            break;
        case REQUEST_GENERATE:
            atomic_store(&e->stop, false);
            if (e->remote)
                do_generate_remote(e, r);
            else
                do_generate(e, r);
            break;
        case REQUEST_UNLOAD: {
            remote_free(e->remote);
            e->remote = NULL;
            model_free(e->model);
            e->model = NULL;
            struct engine_event ev = {.type = ENGINE_EVENT_UNLOADED, .request = r->id};
            post_final(e, r, &ev);
            break;
        }
        }
        request_free(r);
    }
    return NULL;
}

/* Takes r over: queues it, or frees it when its final events' nodes cannot
 * be allocated (0). */
static uint64_t enqueue(struct engine *e, struct request *r)
{
    for (int i = 0; i < 2; i++) {
        if (!(r->spare[i] = malloc(sizeof *r->spare[i]))) {
            request_free(r);
            return 0;
        }
    }
    pthread_mutex_lock(&e->lock);
    r->id = ++e->next_id;
    if (e->req_tail)
        e->req_tail->next = r;
    else
        e->req_head = r;
    e->req_tail = r;
    uint64_t id = r->id;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
    return id;
}

uint64_t engine_load(struct engine *e, const char *path, const struct model_params *p)
{
    struct request *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return 0;
    }
    r->type = REQUEST_LOAD;
    r->params = *p;
    return enqueue(e, r);
}

uint64_t engine_generate(struct engine *e, const struct chat_msg *msgs, size_t n,
                         const struct engine_generate_params *gp)
{
    struct request *r = calloc(1, sizeof *r);
    if (!r)
        return 0;
    r->type = REQUEST_GENERATE;
    r->gp = *gp;
    r->msgs = calloc(n ? n : 1, sizeof *r->msgs);
    if (!r->msgs) {
        free(r);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        r->msgs[i].role = msgs[i].role;
        r->msgs[i].content = strdup(msgs[i].content ? msgs[i].content : "");
        r->n_msgs = i + 1;
        if (!r->msgs[i].content) {
            request_free(r);
            return 0;
        }
    }
    return enqueue(e, r);
}

uint64_t engine_unload(struct engine *e)
{
    struct request *r = calloc(1, sizeof *r);
    if (!r)
        return 0;
    r->type = REQUEST_UNLOAD;
    return enqueue(e, r);
}

uint64_t engine_load_remote(struct engine *e, const struct engine_remote *rq)
{
    struct request *r = calloc(1, sizeof *r);
    if (!r)
        return 0;
    r->type = REQUEST_LOAD_REMOTE;
    const char *src[3] = {rq->url ? rq->url : "", rq->api_key, rq->model};
    for (int i = 0; i < 3; i++) {
        if (src[i] && !(r->remote[i] = strdup(src[i]))) {
            request_free(r);
            return 0;
        }
    }
    return enqueue(e, r);
}

void engine_stop(struct engine *e)
{
    atomic_store(&e->stop, true);
}

int engine_fd(const struct engine *e) { return e->pipe_r; }

int engine_open(struct engine **out, char *err, size_t errlen)
{
    *out = NULL;
    struct engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return ENOMEM;
    }
    int fds[2];
    if (pipe(fds)) {
        int rc = errno;
        snprintf(err, errlen, "cannot create the engine's pipe: %s", strerror(rc));
        free(e);
        return rc;
    }
    e->pipe_r = fds[0];
    e->pipe_w = fds[1];
    fcntl(e->pipe_r, F_SETFL, fcntl(e->pipe_r, F_GETFL) | O_NONBLOCK);
    fcntl(e->pipe_w, F_SETFL, fcntl(e->pipe_w, F_GETFL) | O_NONBLOCK);
    fcntl(e->pipe_r, F_SETFD, FD_CLOEXEC);
    fcntl(e->pipe_w, F_SETFD, FD_CLOEXEC);
    atomic_init(&e->stop, false);
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    int rc = pthread_create(&e->thread, NULL, worker, e);
    if (rc) {
        snprintf(err, errlen, "cannot start the engine thread: %s", strerror(rc));
        close(e->pipe_r);
        close(e->pipe_w);
        pthread_mutex_destroy(&e->lock);
        pthread_cond_destroy(&e->wake);
        free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    atomic_store(&e->stop, true);
    pthread_mutex_lock(&e->lock);
    e->quit = true;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->thread, NULL);
    while (e->req_head) {
        struct request *r = e->req_head;
        e->req_head = r->next;
        request_free(r);
    }
    while (e->ev_head) {
        struct event_node *n = e->ev_head;
        e->ev_head = n->next;
        free(n);
    }
    remote_free(e->remote);
    model_free(e->model);
    free(e->model_path);
    free(e->logits);
    close(e->pipe_r);
    close(e->pipe_w);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->wake);
    free(e);
}

const char *engine_stop_name(enum engine_stop s)
{
    switch (s) {
    case ENGINE_STOP_END: return "end";
    case ENGINE_STOP_LENGTH: return "length";
    case ENGINE_STOP_CONTEXT: return "context";
    case ENGINE_STOP_USER: return "interrupted";
    case ENGINE_STOP_ERROR: return "error";
    }
    return "?";
}
