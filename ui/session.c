/* A chat session: the messages the engine is given, kept in step with the
 * history store (user message first, reply streamed, run stats at the end). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/remote.h"
#include "ui/session.h"

void session_init(struct session *s, struct store *store)
{
    memset(s, 0, sizeof *s);
    s->store = store;
}

static void msg_free(struct session_msg *m)
{
    free(m->text);
    free(m->reasoning);
    free(m->model);
}

static void reply_reset(struct session *s)
{
    free(s->reply_answer);
    free(s->reply_reasoning);
    s->reply_answer = s->reply_reasoning = NULL;
    s->answer_len = s->reasoning_len = 0;
    s->replying = false;
    s->reply_id = 0;
}

void session_new(struct session *s)
{
    for (size_t i = 0; i < s->n; i++)
        msg_free(&s->msgs[i]);
    s->n = 0;
    s->conv = 0;
    reply_reset(s);
}

void session_free(struct session *s)
{
    session_new(s);
    free(s->msgs);
    free(s->chat);
    free(s->system);
    memset(s, 0, sizeof *s);
}

/* Remembers the first store error and stops storing. */
static void store_failed(struct session *s, const char *err)
{
    if (!s->store_err[0])
        snprintf(s->store_err, sizeof s->store_err, "history: %s", err);
    s->store = NULL;
}

int session_set_system(struct session *s, const char *text)
{
    char *copy = NULL;
    if (text && *text && !(copy = strdup(text)))
        return ENOMEM;
    free(s->system);
    s->system = copy;
    return 0;
}

void session_set_model(struct session *s, const char *path, const struct model_info *info)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(s->model_name, sizeof s->model_name, "%s",
             info && info->name[0] ? info->name : base);
    /* a remote model goes by "NAME@HOST:PORT", as ponder run --remote stores it */
    if (info && !strcmp(info->arch, "remote"))
        remote_display_name(info, s->model_name, sizeof s->model_name);
    s->model_id = 0;
    if (!s->store)
        return;
    char fp[STORE_FINGERPRINT_SIZE], err[512];
    if (info && !strcmp(info->arch, "remote"))
        remote_fingerprint(s->model_name, fp);
    else if (store_model_fingerprint(path, fp, err, sizeof err))
        return;     /* not a file we can read (a scripted source): replies without a model */
    struct store_model m = {
        .path = path,
        .name = s->model_name,
        .arch = info ? info->arch : "",
        .n_params = info ? info->n_params : 0,
        .weight_type = info ? info->ftype : "",
        .file_size = info ? (int64_t)info->file_size : 0,
        .fingerprint = fp,
    };
    if (store_model_use(s->store, &m, &s->model_id, err, sizeof err))
        store_failed(s, err);
}

static int push_msg(struct session *s, enum chat_role role, const char *text,
                    const char *reasoning, const char *model, bool interrupted)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct session_msg *m = realloc(s->msgs, cap * sizeof *m);
        if (!m)
            return ENOMEM;
        s->msgs = m;
        s->cap = cap;
    }
    struct session_msg *m = &s->msgs[s->n];
    memset(m, 0, sizeof *m);
    m->role = role;
    m->interrupted = interrupted;
    m->text = strdup(text ? text : "");
    m->reasoning = reasoning && *reasoning ? strdup(reasoning) : NULL;
    m->model = model && *model ? strdup(model) : NULL;
    if (!m->text || (reasoning && *reasoning && !m->reasoning) || (model && *model && !m->model)) {
        msg_free(m);
        return ENOMEM;
    }
    s->n++;
    return 0;
}

int session_user(struct session *s, const char *text)
{
    if (push_msg(s, CHAT_ROLE_USER, text, NULL, NULL, false))
        return ENOMEM;
    if (!s->store)
        return 0;
    char err[512];
    if (!s->conv && store_conv_create(s->store, NULL, &s->conv, err, sizeof err)) {
        store_failed(s, err);
        return 0;
    }
    if (s->conv && s->n == 1 && s->system &&
        store_message_add(s->store, s->conv, STORE_ROLE_SYSTEM, s->system, NULL, 0, NULL, err,
                          sizeof err)) {
        store_failed(s, err);
        return 0;
    }
    if (store_message_add(s->store, s->conv, STORE_ROLE_USER, text, NULL, 0, NULL, err,
                          sizeof err))
        store_failed(s, err);
    return 0;
}

int session_chat(struct session *s, const struct chat_msg **msgs, size_t *n)
{
    struct chat_msg *c = realloc(s->chat, (s->n + 1) * sizeof *c);
    if (!c)
        return ENOMEM;
    s->chat = c;
    size_t k = 0;
    if (s->system)
        c[k++] = (struct chat_msg){CHAT_ROLE_SYSTEM, s->system};
    for (size_t i = 0; i < s->n; i++)
        c[k++] = (struct chat_msg){s->msgs[i].role, s->msgs[i].text};
    *msgs = c;
    *n = k;
    return 0;
}

int session_reply_begin(struct session *s)
{
    reply_reset(s);
    s->replying = true;
    if (s->store && s->conv) {
        char err[512];
        if (store_reply_begin(s->store, s->conv, s->model_id, &s->reply_id, err, sizeof err))
            store_failed(s, err);
    }
    return 0;
}

static int grow_append(char **buf, size_t *len, const char *text, size_t n)
{
    char *b = realloc(*buf, *len + n + 1);
    if (!b)
        return ENOMEM;
    memcpy(b + *len, text, n);
    *len += n;
    b[*len] = 0;
    *buf = b;
    return 0;
}

int session_reply_piece(struct session *s, enum reason_kind kind, const char *text, size_t len)
{
    if (!s->replying || !len)
        return 0;
    int rc = kind == REASON_KIND_REASONING
                 ? grow_append(&s->reply_reasoning, &s->reasoning_len, text, len)
                 : grow_append(&s->reply_answer, &s->answer_len, text, len);
    if (rc)
        return rc;
    if (s->store && s->reply_id) {
        char err[512];
        if (store_reply_append(s->store, s->reply_id,
                               kind == REASON_KIND_REASONING ? STORE_PART_REASONING
                                                             : STORE_PART_ANSWER,
                               text, len, err, sizeof err))
            store_failed(s, err);
    }
    return 0;
}

int session_reply_end(struct session *s, enum engine_stop stop, const struct engine_stats *st,
                      const char *error)
{
    if (!s->replying)
        return 0;
    bool interrupted = stop == ENGINE_STOP_USER;
    if (s->store && s->reply_id) {
        char err[512];
        struct store_run run = {0};
        if (st) {
            run.model_id = s->model_id;
            run.backend = st->backend;
            run.device = st->device;
            run.driver = s->driver;
            run.n_ctx = st->n_ctx;
            run.n_threads = st->threads;
            run.n_gpu_layers = st->layers_on_device;
            run.prompt_tokens = st->prompt_tokens;
            run.reasoning_tokens = st->reasoning_tokens;
            run.answer_tokens = st->answer_tokens;
            run.load_ms = st->load_ms;
            run.prompt_ms = st->prompt_ms;
            run.ttft_ms = st->first_token_ms;
            run.reasoning_ms = st->reasoning_ms;
            run.answer_ms = st->answer_ms;
            run.prompt_tps = st->prompt_tps;
            run.gen_tps = st->gen_tps;
            run.stop_reason = engine_stop_name(stop);
            run.temp = st->sampler.temperature;
            run.top_p = st->sampler.top_p;
            run.min_p = st->sampler.min_p;
            run.repeat_penalty = st->sampler.repeat_penalty;
            run.top_k = st->sampler.top_k;
            run.seed = st->sampler.seed;
            run.think_budget = st->think_budget;
            run.think_mode = st->think_budget <= 0 ? ""
                             : st->think_mode == ENGINE_THINK_HARD ? "hard" : "soft";
            run.think_off = st->think_off;
            run.budget_reached = st->budget_reached;
        }
        enum store_status status = error || stop == ENGINE_STOP_ERROR ? STORE_STATUS_ERROR
                                   : interrupted                      ? STORE_STATUS_INTERRUPTED
                                                                      : STORE_STATUS_COMPLETE;
        if (store_reply_finish(s->store, s->reply_id, status, error, st ? &run : NULL, err,
                               sizeof err))
            store_failed(s, err);
    }
    int rc = push_msg(s, CHAT_ROLE_ASSISTANT, s->reply_answer ? s->reply_answer : "",
                      s->reply_reasoning, s->model_name, interrupted);
    reply_reset(s);
    return rc;
}

int session_open(struct session *s, int64_t id, char *err, size_t errlen)
{
    if (!s->store)
        return snprintf(err, errlen, "no history store"), ENOENT;
    struct store_conv *c = NULL;
    int rc = store_conv_load(s->store, id, &c, err, errlen);
    if (rc)
        return rc;
    session_new(s);
    s->conv = id;
    for (size_t i = 0; i < c->n && !rc; i++) {
        const struct store_message *m = &c->msgs[i];
        if (m->role == STORE_ROLE_SYSTEM) {
            rc = session_set_system(s, m->answer);
            continue;
        }
        rc = push_msg(s, m->role == STORE_ROLE_USER ? CHAT_ROLE_USER : CHAT_ROLE_ASSISTANT,
                      m->answer, m->reasoning, m->model_name,
                      m->status == STORE_STATUS_INTERRUPTED);
        if (!rc && m->has_run) {
            struct session_msg *sm = &s->msgs[s->n - 1];
            sm->think_ms = m->run.reasoning_ms;
            sm->think_tokens = (int)m->run.reasoning_tokens;
            sm->budget_reached = m->run.budget_reached;
            snprintf(sm->footer, sizeof sm->footer,
                     "read %.1f s · think %.1f s · answer %.1f s · %.1f t/s · first token %.2f s%s",
                     m->run.prompt_ms / 1000, m->run.reasoning_ms / 1000,
                     m->run.answer_ms / 1000, m->run.gen_tps, m->run.ttft_ms / 1000,
                     sm->interrupted ? " · interrupted" : "");
        }
    }
    store_conv_free(c);
    if (rc)
        snprintf(err, errlen, "out of memory");
    return rc;
}

struct latest_ctx {
    int64_t id, updated;
};

static int latest_fn(void *ctx, const struct store_conv_info *c)
{
    struct latest_ctx *l = ctx;
    if (!l->id || c->updated > l->updated) {
        l->id = c->id;
        l->updated = c->updated;
    }
    return 0;
}

int64_t session_latest(struct store *store)
{
    struct latest_ctx l = {0, 0};
    char err[256];
    if (store && store_conv_list(store, 0, latest_fn, &l, err, sizeof err))
        return 0;
    return l.id;
}
