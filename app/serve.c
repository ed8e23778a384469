/* ponder serve: the HTTP side (libmicrohttpd handlers, a thread per
 * connection), the bounded request queue, and the dispatcher that starts one
 * generation at a time and turns engine events into responses and runs. */
#define _GNU_SOURCE     /* POLLRDHUP, memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "app/serve.h"
#include "app/serve_req.h"
#include "history/store.h"

/* ---- small buffers ---- */

struct sbuf {
    char *p;
    size_t len, cap;
};

static int sbuf_add(struct sbuf *b, const char *s, size_t n)
{
    if (n > SIZE_MAX - b->len - 1)
        return ENOMEM;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

static void sbuf_drop(struct sbuf *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
    b->p[b->len] = 0;
}

static void sbuf_free(struct sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Copies s into b with every invalid UTF-8 sequence replaced by U+FFFD, so
 * what is sent is always valid JSON text. */
static int utf8_clean(struct sbuf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = k && i + k <= n;
        for (size_t j = 1; ok && j < k; j++)
            ok = (u[i + j] & 0xc0) == 0x80;
        if (ok && k > 1) {
            unsigned cp = c & (0x7f >> k);
            for (size_t j = 1; j < k; j++)
                cp = cp << 6 | (u[i + j] & 0x3f);
            static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
            ok = cp >= min[k] && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
        }
        int rc = ok ? sbuf_add(b, s + i, k) : sbuf_add(b, "\xef\xbf\xbd", 3);
        if (rc)
            return rc;
        i += ok ? k : 1;
    }
    return 0;
}

/* ---- state ---- */

enum serve_state { SERVE_LOADING, SERVE_READY, SERVE_FAILED };
enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct serve;

/* One request.  Fields above "dispatcher only" are shared under s->lock. */
struct job {
    struct serve *s;
    int refs;
    struct serve_req req;
    char id[64];
    long long created;
    int conn_fd;
    pthread_cond_t cond;
    enum job_state state;
    bool started, cancelled;
    int status;                 /* an error before the reply started: its HTTP status */
    char error[512];
    struct sbuf sse;            /* streaming: bytes not yet handed to MHD */
    struct sbuf answer, reasoning;
    enum engine_stop stop;
    struct engine_stats stats;
    bool has_stats, stop_hit;
    struct job *next;
    /* dispatcher only */
    uint64_t engine_req;
    bool stopping;
    struct sbuf pend;           /* answer held back: it may begin a stop sequence */
    int64_t conv, reply;
    struct sbuf store_pend;
    enum store_part store_part;
};

struct serve {
    const struct serve_config *c;
    pthread_mutex_t lock;
    enum serve_state state;
    bool quitting;
    struct job *head, *tail;
    int n_queued;
    int n_jobs;                 /* alive: queued, running, or still being sent */
    struct job *cur;
    int wake[2];
    struct model_info info;
    int n_ctx;
    int64_t model_id;
    uint64_t load_req;
    unsigned long long seq;
    long long model_created;
    bool store_warned;
    struct engine *eng;
    struct MHD_Daemon *d;
    char load_error[512];
};

static void wake(struct serve *s)
{
    ssize_t n = write(s->wake[1], "x", 1);
    (void)n;    /* a full pipe already wakes the dispatcher */
}

static void job_unref(struct job *j)
{
    struct serve *s = j->s;
    pthread_mutex_lock(&s->lock);
    bool last = --j->refs == 0;
    if (last)
        s->n_jobs--;
    pthread_mutex_unlock(&s->lock);
    if (!last)
        return;
    serve_req_free(&j->req);
    pthread_cond_destroy(&j->cond);
    sbuf_free(&j->sse);
    sbuf_free(&j->answer);
    sbuf_free(&j->reasoning);
    sbuf_free(&j->pend);
    sbuf_free(&j->store_pend);
    free(j);
}

/* True when the peer closed or reset the connection. */
static bool client_gone(int fd)
{
    if (fd < 0)
        return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static void deadline(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_nsec += ms * 1000000L;
    ts->tv_sec += ts->tv_nsec / 1000000000L;
    ts->tv_nsec %= 1000000000L;
}

/* ---- JSON responses ---- */

static enum MHD_Result send_json_conv(struct MHD_Connection *conn, unsigned status, json_t *body,
                                      const char *allow, const char *conv)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return MHD_NO;
    size_t n = strlen(text);
    struct MHD_Response *r = MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (allow)
        MHD_add_response_header(r, "Allow", allow);
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    if (conv && conv[0])
        MHD_add_response_header(r, "X-Ponder-Conversation", conv);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *body,
                                 const char *allow)
{
    return send_json_conv(conn, status, body, allow, NULL);
}

static json_t *error_body(const char *type, const char *code, const char *param, const char *msg)
{
    return json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", msg, "type", type,
                     "param", param && *param ? param : NULL, "code", code);
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                  const char *param, const char *allow, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                  const char *param, const char *allow, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "not_found_error"
                       : status == 429 ? "rate_limit_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    return send_json(conn, status, error_body(type, code, param, msg), allow);
}

static json_t *usage_json(const struct job *j)
{
    const struct engine_stats *st = &j->stats;
    int prompt = st->prompt_tokens + st->prompt_cached;
    int completion = st->reasoning_tokens + st->answer_tokens;
    return json_pack("{s:i, s:i, s:i, s:{s:i}, s:{s:i}}", "prompt_tokens", prompt,
                     "completion_tokens", completion, "total_tokens", prompt + completion,
                     "completion_tokens_details", "reasoning_tokens", st->reasoning_tokens,
                     "prompt_tokens_details", "cached_tokens", st->prompt_cached);
}

static const char *finish_reason(const struct job *j)
{
    if (j->stop_hit)
        return "stop";
    switch (j->stop) {
    case ENGINE_STOP_LENGTH:
    case ENGINE_STOP_CONTEXT: return "length";
    case ENGINE_STOP_ERROR: return "error";
    default: return "stop";
    }
}

/* ---- SSE (dispatcher, s->lock held) ---- */

static void sse_event(struct job *j, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text)
        return;
    if (sbuf_add(&j->sse, "data: ", 6) || sbuf_add(&j->sse, text, strlen(text)) ||
        sbuf_add(&j->sse, "\n\n", 2))
        j->cancelled = true;   /* out of memory: end this stream */
    free(text);
}

/* One chunk: a delta of kind ("content", "reasoning_content", "role") or the
 * finish (finish set, usage may be set). */
static json_t *chunk(struct job *j, const char *key, const char *text, size_t len,
                     const char *finish)
{
    bool chat = j->req.kind == SERVE_REQ_CHAT;
    json_t *choice = json_pack("{s:i, s:n, s:s?}", "index", 0, "logprobs", "finish_reason", finish);
    json_t *val = key ? (!strcmp(key, "role") ? json_string("assistant") : json_stringn(text, len))
                      : NULL;
    if (chat) {
        json_t *delta = json_object();
        if (val)
            json_object_set_new(delta, key, val);
        json_object_set_new(choice, "delta", delta);
    } else {
        bool reasoning = key && !strcmp(key, "reasoning_content");
        json_object_set_new(choice, "text", !reasoning && val ? val : json_string(""));
        if (reasoning && val)
            json_object_set_new(choice, "reasoning_content", val);
    }
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:[o]}", "id", j->id, "object",
                     chat ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)j->created, "model", j->s->c->model_id, "system_fingerprint",
                     "ponder", "choices", choice);
}

/* ---- the dispatcher ---- */

static void store_warn(struct serve *s, const char *err)
{
    if (!s->store_warned)
        fprintf(stderr, "ponder: history: %s (requests are still served)\n", err);
    s->store_warned = true;
}

static void store_flush(struct serve *s, struct job *j)
{
    if (!j->store_pend.len)
        return;
    char err[512];
    if (j->reply && store_reply_append(s->c->store, j->reply, j->store_part, j->store_pend.p,
                                       j->store_pend.len, err, sizeof err)) {
        store_warn(s, err);
        j->reply = 0;
    }
    j->store_pend.len = 0;
}

static void store_text(struct serve *s, struct job *j, enum store_part part, const char *t,
                       size_t n)
{
    if (!j->reply)
        return;
    if (j->store_pend.len && part != j->store_part)
        store_flush(s, j);
    j->store_part = part;
    if (sbuf_add(&j->store_pend, t, n))
        store_flush(s, j);
    else if (j->store_pend.len >= 2048)
        store_flush(s, j);
}

/* Text the client may see now (answer or reasoning). */
static void release(struct serve *s, struct job *j, bool reasoning, const char *t, size_t n)
{
    if (!n)
        return;
    pthread_mutex_lock(&s->lock);
    if (sbuf_add(reasoning ? &j->reasoning : &j->answer, t, n))
        j->cancelled = true;
    if (j->req.stream)
        sse_event(j, chunk(j, reasoning ? "reasoning_content" : "content", t, n, NULL));
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&s->lock);
    store_text(s, j, reasoning ? STORE_PART_REASONING : STORE_PART_ANSWER, t, n);
}

static void stop_now(struct serve *s, struct job *j)
{
    if (!j->stopping)
        engine_stop(s->eng);
    j->stopping = true;
}

/* Answer text: held back while it may be the start of a stop sequence, cut at
 * the first stop sequence (which ends the generation). */
static void answer_push(struct serve *s, struct job *j, const char *t, size_t n)
{
    if (j->stop_hit)
        return;
    if (!j->req.n_stop) {
        release(s, j, false, t, n);
        return;
    }
    if (sbuf_add(&j->pend, t, n)) {
        stop_now(s, j);
        return;
    }
    size_t cut = SIZE_MAX;
    for (size_t k = 0; k < j->req.n_stop; k++) {
        const char *hit = memmem(j->pend.p, j->pend.len, j->req.stop[k], strlen(j->req.stop[k]));
        if (hit && (size_t)(hit - j->pend.p) < cut)
            cut = (size_t)(hit - j->pend.p);
    }
    if (cut != SIZE_MAX) {
        release(s, j, false, j->pend.p, cut);
        j->pend.len = 0;
        pthread_mutex_lock(&s->lock);
        j->stop_hit = true;
        pthread_mutex_unlock(&s->lock);
        stop_now(s, j);
        return;
    }
    size_t hold = 0;
    for (size_t k = 0; k < j->req.n_stop; k++) {
        size_t sl = strlen(j->req.stop[k]);
        for (size_t h = sl - 1; h > hold; h--)
            if (h <= j->pend.len && !memcmp(j->pend.p + j->pend.len - h, j->req.stop[k], h)) {
                hold = h;
                break;
            }
    }
    release(s, j, false, j->pend.p, j->pend.len - hold);
    sbuf_drop(&j->pend, j->pend.len - hold);
}

static void job_start(struct serve *s, struct job *j)
{
    const struct serve_config *c = s->c;
    char err[512];
    if (c->store) {
        int rc = store_conv_create(c->store, NULL, &j->conv, err, sizeof err);
        for (size_t i = 0; !rc && i < j->req.n_msgs; i++) {
            const struct chat_msg *m = &j->req.msgs[i];
            enum store_role role = m->role == CHAT_ROLE_SYSTEM ? STORE_ROLE_SYSTEM
                                   : m->role == CHAT_ROLE_USER ? STORE_ROLE_USER
                                                               : STORE_ROLE_ASSISTANT;
            rc = store_message_add(c->store, j->conv, role, m->content, NULL,
                                   role == STORE_ROLE_ASSISTANT ? s->model_id : 0, NULL, err,
                                   sizeof err);
        }
        if (!rc)
            rc = store_reply_begin(c->store, j->conv, s->model_id, &j->reply, err, sizeof err);
        if (rc) {
            store_warn(s, err);
            j->reply = 0;
        }
    }
    struct engine_generate_params gp = c->defaults;
    const struct serve_req *r = &j->req;
    if (r->has_temperature)
        gp.sampler.temperature = r->temperature;
    if (r->has_top_p)
        gp.sampler.top_p = r->top_p;
    if (r->has_top_k)
        gp.sampler.top_k = r->top_k;
    if (r->has_min_p)
        gp.sampler.min_p = r->min_p;
    if (r->has_repeat_penalty)
        gp.sampler.repeat_penalty = r->repeat_penalty;
    if (r->has_seed)
        gp.sampler.seed = r->seed ? r->seed : 1;   /* 0 asks the engine for a random one */
    if (r->max_tokens > 0)
        gp.max_tokens = r->max_tokens;
    if (r->think_budget > 0) {
        gp.think_budget = r->think_budget;
        gp.think_mode = (enum engine_think_mode)r->think_mode;
    }
    if (r->think_off)
        gp.think_off = true;
    gp.raw = r->kind == SERVE_REQ_COMPLETION;
    j->engine_req = engine_generate(s->eng, r->msgs, r->n_msgs, &gp);
}

static void job_finish(struct serve *s, struct job *j, const struct engine_event *done)
{
    if (!j->stop_hit && j->pend.len)
        release(s, j, false, j->pend.p, j->pend.len);
    j->pend.len = 0;
    store_flush(s, j);
    if (j->reply) {
        const struct engine_stats *st = &done->u.done.stats;
        struct store_run run = {
            .model_id = s->model_id,
            .backend = st->backend,
            .device = st->device,
            .driver = "api",
            .n_ctx = st->n_ctx,
            .n_threads = st->threads,
            .n_gpu_layers = st->layers_on_device,
            .prompt_tokens = st->prompt_tokens,
            .reasoning_tokens = st->reasoning_tokens,
            .answer_tokens = st->answer_tokens,
            .load_ms = st->load_ms,
            .prompt_ms = st->prompt_ms,
            .ttft_ms = st->first_token_ms,
            .reasoning_ms = st->reasoning_ms,
            .answer_ms = st->answer_ms,
            .prompt_tps = st->prompt_tps,
            .gen_tps = st->gen_tps,
            .stop_reason = j->stop_hit ? "stop" : engine_stop_name(done->u.done.stop),
            .temp = st->sampler.temperature,
            .top_p = st->sampler.top_p,
            .min_p = st->sampler.min_p,
            .repeat_penalty = st->sampler.repeat_penalty,
            .top_k = st->sampler.top_k,
            .seed = st->sampler.seed,
            .think_budget = st->think_budget,
            .think_mode = st->think_budget <= 0                  ? ""
                          : st->think_mode == ENGINE_THINK_HARD ? "hard"
                                                                : "soft",
            .think_off = st->think_off,
            .budget_reached = st->budget_reached,
        };
        bool err_stop = j->error[0] || done->u.done.stop == ENGINE_STOP_ERROR;
        enum store_status status = err_stop ? STORE_STATUS_ERROR
                                   : done->u.done.stop == ENGINE_STOP_USER && !j->stop_hit
                                       ? STORE_STATUS_INTERRUPTED
                                       : STORE_STATUS_COMPLETE;
        char err[512];
        if (store_reply_finish(s->c->store, j->reply, status, j->error[0] ? j->error : NULL, &run,
                               err, sizeof err))
            store_warn(s, err);
    }
    pthread_mutex_lock(&s->lock);
    j->stop = done->u.done.stop;
    j->stats = done->u.done.stats;
    j->has_stats = true;
    if (j->req.stream && j->started) {
        if (j->error[0] && j->stop == ENGINE_STOP_ERROR)
            sse_event(j, error_body("server_error", "generation_failed", NULL, j->error));
        json_t *last = chunk(j, NULL, NULL, 0, finish_reason(j));
        if (last)
            json_object_set_new(last, "usage", usage_json(j));
        sse_event(j, last);
        if (j->req.include_usage) {
            json_t *u = chunk(j, NULL, NULL, 0, NULL);
            if (u) {
                json_object_set_new(u, "choices", json_array());
                json_object_set_new(u, "usage", usage_json(j));
            }
            sse_event(j, u);
        }
        sbuf_add(&j->sse, "data: [DONE]\n\n", 14);
    }
    if (!j->started && !j->status)
        j->status = strstr(j->error, "context holds") || strstr(j->error, "no tokens") ? 400 : 500;
    else if (!j->req.stream && j->error[0] && !j->status)
        j->status = 500;    /* failed during the reply: no partial 200 */
    j->state = JOB_DONE;
    pthread_cond_broadcast(&j->cond);
    if (s->cur == j)
        s->cur = NULL;
    pthread_mutex_unlock(&s->lock);
    if (s->c->verbose)
        fprintf(stderr, "ponder serve: %s: %s, %d+%d tokens, %s\n", j->id,
                j->error[0] ? j->error : "done", j->stats.reasoning_tokens,
                j->stats.answer_tokens, engine_stop_name(j->stop));
    job_unref(j);
}

/* Ends a job that never reached the engine. */
static void job_fail(struct serve *s, struct job *j, int status, const char *msg)
{
    pthread_mutex_lock(&s->lock);
    snprintf(j->error, sizeof j->error, "%s", msg);
    j->status = status;
    j->state = JOB_DONE;
    pthread_cond_broadcast(&j->cond);
    if (s->cur == j)
        s->cur = NULL;
    pthread_mutex_unlock(&s->lock);
    job_unref(j);
}

static void on_event(struct serve *s, const struct engine_event *ev)
{
    struct job *j = s->cur;
    if (ev->request == s->load_req) {
        if (ev->type == ENGINE_EVENT_LOADED) {
            pthread_mutex_lock(&s->lock);
            s->info = ev->u.loaded;
            s->n_ctx = ev->u.loaded.n_ctx;
            s->state = SERVE_READY;
            pthread_mutex_unlock(&s->lock);
            fprintf(stderr, "ponder serve: %s loaded (%s, %s, context %d)\n", s->c->model_id,
                    ev->u.loaded.arch, ev->u.loaded.backend, ev->u.loaded.n_ctx);
            char fp[STORE_FINGERPRINT_SIZE], err[512];
            if (s->c->store && !store_model_fingerprint(s->c->model_path, fp, err, sizeof err)) {
                struct store_model m = {
                    .path = s->c->model_path,
                    .name = ev->u.loaded.name[0] ? ev->u.loaded.name : s->c->model_id,
                    .arch = ev->u.loaded.arch,
                    .n_params = ev->u.loaded.n_params,
                    .weight_type = ev->u.loaded.ftype,
                    .file_size = (int64_t)ev->u.loaded.file_size,
                    .fingerprint = fp,
                };
                if (store_model_use(s->c->store, &m, &s->model_id, err, sizeof err))
                    store_warn(s, err);
            }
        } else if (ev->type == ENGINE_EVENT_ERROR) {
            pthread_mutex_lock(&s->lock);
            s->state = SERVE_FAILED;
            snprintf(s->load_error, sizeof s->load_error, "%s", ev->u.error);
            pthread_mutex_unlock(&s->lock);
        }
        return;
    }
    if (!j || ev->request != j->engine_req)
        return;
    switch (ev->type) {
    case ENGINE_EVENT_PHASE:
        if (ev->u.phase == ENGINE_PHASE_READING) {
            pthread_mutex_lock(&s->lock);
            j->started = true;
            if (j->req.stream)
                sse_event(j, j->req.kind == SERVE_REQ_CHAT ? chunk(j, "role", NULL, 0, NULL)
                                                           : NULL);
            pthread_cond_broadcast(&j->cond);
            pthread_mutex_unlock(&s->lock);
        }
        break;
    case ENGINE_EVENT_TOKEN: {
        /* a chat reply does not open with the "\n\n" R1 writes after </think>;
           a raw completion keeps every byte */
        if (!ev->u.token.len || (ev->u.token.leading && j->req.kind == SERVE_REQ_CHAT))
            break;
        struct sbuf t = {0};
        if (utf8_clean(&t, ev->u.token.text, ev->u.token.len)) {
            stop_now(s, j);
            break;
        }
        if (ev->u.token.kind == REASON_KIND_REASONING)
            release(s, j, true, t.p, t.len);
        else
            answer_push(s, j, t.p, t.len);
        sbuf_free(&t);
        break;
    }
    case ENGINE_EVENT_ERROR:
        pthread_mutex_lock(&s->lock);
        snprintf(j->error, sizeof j->error, "%s", ev->u.error);
        pthread_mutex_unlock(&s->lock);
        break;
    case ENGINE_EVENT_DONE: job_finish(s, j, ev); break;
    default: break;
    }
}

/* Starts the next queued job when the engine is free. */
static void dispatch(struct serve *s)
{
    for (;;) {
        pthread_mutex_lock(&s->lock);
        struct job *j = NULL;
        if (!s->cur && s->state == SERVE_READY && s->head) {
            j = s->head;
            s->head = j->next;
            if (!s->head)
                s->tail = NULL;
            s->n_queued--;
            j->next = NULL;
            if (!j->cancelled) {
                s->cur = j;
                j->state = JOB_RUNNING;
            }
        }
        pthread_mutex_unlock(&s->lock);
        if (!j)
            return;
        if (s->cur != j) {
            job_fail(s, j, 499, "the client went away");
            continue;
        }
        job_start(s, j);
        if (!j->engine_req) {
            job_fail(s, j, 500, "out of memory");
            continue;
        }
        return;
    }
}

/* ---- HTTP ---- */

enum route { ROUTE_HEALTH, ROUTE_MODELS, ROUTE_CHAT, ROUTE_COMPLETIONS };

static const struct {
    const char *path;
    enum route route;
    const char *allow;
} routes[] = {
    {"/health", ROUTE_HEALTH, "GET, HEAD"},
    {"/v1/models", ROUTE_MODELS, "GET, HEAD"},
    {"/v1/chat/completions", ROUTE_CHAT, "POST"},
    {"/v1/completions", ROUTE_COMPLETIONS, "POST"},
};

struct conn_state {
    enum route route;
    struct sbuf body;
    bool too_big;
};

static enum MHD_Result get_health(struct serve *s, struct MHD_Connection *conn)
{
    pthread_mutex_lock(&s->lock);
    enum serve_state st = s->state;
    int queued = s->n_queued, running = s->cur != NULL;
    pthread_mutex_unlock(&s->lock);
    if (st != SERVE_READY)
        return send_json(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                         json_pack("{s:s, s:s}", "status",
                                   st == SERVE_LOADING ? "loading" : "failed", "model",
                                   s->c->model_id),
                         NULL);
    return send_json(conn, MHD_HTTP_OK,
                     json_pack("{s:s, s:s, s:i, s:i}", "status", "ok", "model", s->c->model_id,
                               "running", running, "queued", queued),
                     NULL);
}

static bool model_matches(const struct serve *s, const char *name);

/* The model as /v1/models lists it.  Once it is loaded, its context in
 * tokens goes out under the names other servers use (vLLM's max_model_len,
 * and context_length), so clients (ponder --remote) can size requests;
 * while it loads the context is not known yet and is left out. */
static json_t *model_object(struct serve *s)
{
    pthread_mutex_lock(&s->lock);
    int n_ctx = s->state == SERVE_READY ? s->n_ctx : 0;
    pthread_mutex_unlock(&s->lock);
    json_t *m = json_pack("{s:s, s:s, s:I, s:s}", "id", s->c->model_id, "object", "model",
                          "created", (json_int_t)s->model_created, "owned_by", "ponder");
    if (m && n_ctx > 0 &&
        (json_object_set_new(m, "max_model_len", json_integer(n_ctx)) ||
         json_object_set_new(m, "context_length", json_integer(n_ctx)))) {
        json_decref(m);
        m = NULL;
    }
    return m;
}

/* GET /v1/models/ID: the model, or 404. */
static enum MHD_Result get_model(struct serve *s, struct MHD_Connection *conn, const char *id)
{
    if (!*id || !model_matches(s, id))
        return send_error(conn, 404, "model_not_found", "model", NULL,
                          "the model '%s' does not exist; this server has '%s'", id,
                          s->c->model_id);
    return send_json(conn, MHD_HTTP_OK, model_object(s), NULL);
}

static enum MHD_Result get_models(struct serve *s, struct MHD_Connection *conn)
{
    json_t *m = model_object(s);
    return send_json(conn, MHD_HTTP_OK,
                     m ? json_pack("{s:s, s:[o]}", "object", "list", "data", m) : NULL, NULL);
}

/* Takes a job whose client left out of the queue at once, so it holds no
 * place there (s->lock held; the caller keeps its own reference). */
static void queue_remove(struct serve *s, struct job *j)
{
    for (struct job **p = &s->head, *prev = NULL; *p; prev = *p, p = &(*p)->next) {
        if (*p != j)
            continue;
        *p = j->next;
        if (s->tail == j)
            s->tail = prev;
        j->next = NULL;
        s->n_queued--;
        j->refs--;      /* the dispatcher's */
        j->state = JOB_DONE;
        return;
    }
}

/* Waits until the job starts (until_started) or ends; false when the client
 * hung up first (the job is then cancelled). */
static bool wait_job(struct serve *s, struct job *j, bool until_started)
{
    bool ok = true;
    pthread_mutex_lock(&s->lock);
    while (j->state != JOB_DONE && !(until_started && j->started)) {
        struct timespec ts;
        deadline(&ts, 200);
        pthread_cond_timedwait(&j->cond, &s->lock, &ts);
        if (j->state != JOB_DONE && client_gone(j->conn_fd)) {
            j->cancelled = true;
            ok = false;
            if (j->state == JOB_QUEUED)
                queue_remove(s, j);
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (!ok)
        wake(s);
    return ok;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct job *j = cls;
    struct serve *s = j->s;
    (void)pos;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (j->sse.len) {
            size_t n = j->sse.len < max ? j->sse.len : max;
            memcpy(buf, j->sse.p, n);
            sbuf_drop(&j->sse, n);
            pthread_mutex_unlock(&s->lock);
            return (ssize_t)n;
        }
        if (j->state == JOB_DONE) {
            pthread_mutex_unlock(&s->lock);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        struct timespec ts;
        deadline(&ts, 200);
        pthread_cond_timedwait(&j->cond, &s->lock, &ts);
        if (j->state != JOB_DONE && (j->cancelled || client_gone(j->conn_fd))) {
            j->cancelled = true;
            pthread_mutex_unlock(&s->lock);
            wake(s);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void stream_free(void *cls)
{
    struct job *j = cls;
    struct serve *s = j->s;
    pthread_mutex_lock(&s->lock);
    bool cancel = j->state != JOB_DONE;
    if (cancel)
        j->cancelled = true;
    pthread_mutex_unlock(&s->lock);
    if (cancel)
        wake(s);
    job_unref(j);
}

static bool model_matches(const struct serve *s, const char *name)
{
    if (!name || !*name || !strcmp(name, s->c->model_id))
        return true;
    if (s->info.name[0] && !strcmp(name, s->info.name))
        return true;
    const char *base = strrchr(s->c->model_path, '/');
    base = base ? base + 1 : s->c->model_path;
    return !strcmp(name, base);
}

static enum MHD_Result reply_json(struct MHD_Connection *conn, struct job *j, const char *conv)
{
    bool chat = j->req.kind == SERVE_REQ_CHAT;
    json_t *choice;
    if (chat)
        choice = json_pack("{s:i, s:{s:s, s:s%, s:s%}, s:n, s:s}", "index", 0, "message", "role",
                           "assistant", "content", j->answer.p ? j->answer.p : "", j->answer.len,
                           "reasoning_content", j->reasoning.p ? j->reasoning.p : "",
                           j->reasoning.len, "logprobs", "finish_reason", finish_reason(j));
    else
        choice = json_pack("{s:i, s:s%, s:s%, s:n, s:s}", "index", 0, "text",
                           j->answer.p ? j->answer.p : "", j->answer.len, "reasoning_content",
                           j->reasoning.p ? j->reasoning.p : "", j->reasoning.len, "logprobs",
                           "finish_reason", finish_reason(j));
    json_t *body = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[o], s:o}", "id", j->id, "object",
                             chat ? "chat.completion" : "text_completion", "created",
                             (json_int_t)j->created, "model", j->s->c->model_id,
                             "system_fingerprint", "ponder", "choices", choice, "usage",
                             usage_json(j));
    return send_json_conv(conn, MHD_HTTP_OK, body, NULL, conv);
}

static enum MHD_Result post_generate(struct serve *s, struct MHD_Connection *conn,
                                     struct conn_state *cs)
{
    pthread_mutex_lock(&s->lock);
    enum serve_state st = s->state;
    int n_ctx = s->n_ctx;
    pthread_mutex_unlock(&s->lock);
    if (st != SERVE_READY)
        return send_error(conn, 503, st == SERVE_LOADING ? "model_loading" : "model_failed", NULL,
                          NULL, st == SERVE_LOADING ? "the model is loading; try again shortly"
                                                    : "the model failed to load");
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return send_error(conn, 500, "out_of_memory", NULL, NULL, "out of memory");
    j->s = s;
    j->refs = 1;
    pthread_cond_init(&j->cond, NULL);
    pthread_mutex_lock(&s->lock);
    s->n_jobs++;
    pthread_mutex_unlock(&s->lock);
    char param[64], msg[512];
    int rc = serve_req_parse(cs->route == ROUTE_CHAT ? SERVE_REQ_CHAT : SERVE_REQ_COMPLETION,
                             cs->body.p ? cs->body.p : "", cs->body.len, n_ctx, &j->req, param,
                             sizeof param, msg, sizeof msg);
    enum MHD_Result res;
    if (rc) {
        res = rc == ENOMEM ? send_error(conn, 500, "out_of_memory", NULL, NULL, "%s", msg)
                           : send_error(conn, 400, rc == EBADMSG ? "invalid_json" : "invalid_value",
                                        param, NULL, "%s", msg);
        job_unref(j);
        return res;
    }
    if (!model_matches(s, j->req.model)) {
        res = send_error(conn, 404, "model_not_found", "model", NULL,
                         "the model '%s' does not exist; this server has '%s'", j->req.model,
                         s->c->model_id);
        job_unref(j);
        return res;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->conn_fd = ci ? ci->connect_fd : -1;
    j->created = (long long)time(NULL);
    pthread_mutex_lock(&s->lock);
    unsigned long long seq = ++s->seq;
    snprintf(j->id, sizeof j->id, "%s-%llx%llx",
             j->req.kind == SERVE_REQ_CHAT ? "chatcmpl" : "cmpl", (unsigned long long)j->created,
             seq);
    /* --queue N: N may wait behind the running one */
    bool full = s->n_queued + (s->cur != NULL) > s->c->queue_max, quitting = s->quitting;
    if (!full && !quitting) {
        j->refs++;   /* the dispatcher's */
        if (s->tail)
            s->tail->next = j;
        else
            s->head = j;
        s->tail = j;
        s->n_queued++;
    }
    pthread_mutex_unlock(&s->lock);
    if (full || quitting) {
        res = quitting ? send_error(conn, 503, "shutting_down", NULL, NULL, "the server is stopping")
                       : send_error(conn, 429, "queue_full", NULL, NULL,
                                    "%d requests are already waiting; try again later",
                                    s->c->queue_max);
        job_unref(j);
        return res;
    }
    wake(s);
    if (!wait_job(s, j, j->req.stream)) {
        job_unref(j);
        return MHD_NO;
    }
    pthread_mutex_lock(&s->lock);
    bool started = j->started;
    int status = j->status;
    char conv[32] = "";
    if (j->conv)
        snprintf(conv, sizeof conv, "%lld", (long long)j->conv);
    pthread_mutex_unlock(&s->lock);
    if (!started || (status && !j->req.stream)) {
        res = send_error(conn, status ? (unsigned)status : 500,
                         status == 400   ? "context_length_exceeded"
                         : status == 503 ? "shutting_down"
                                         : "generation_failed",
                         NULL,
                         NULL, "%s", j->error[0] ? j->error : "the generation failed");
        job_unref(j);
        return res;
    }
    if (!j->req.stream) {
        res = reply_json(conn, j, conv);
        job_unref(j);
        return res;
    }
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, j, stream_free);
    if (!r) {
        stream_free(j);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    if (conv[0])
        MHD_add_response_header(r, "X-Ponder-Conversation", conv);
    res = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return res;
}

static bool authorized(struct serve *s, struct MHD_Connection *conn)
{
    if (!s->c->api_key)
        return true;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7))
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    return serve_key_equal(s->c->api_key, h, strlen(h));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    struct serve *s = cls;
    struct conn_state *cs = *con_cls;
    (void)version;
    if (!cs) {
        size_t i, n = sizeof routes / sizeof routes[0];
        for (i = 0; i < n; i++)
            if (!strcmp(url, routes[i].path))
                break;
        if (i == n && !strncmp(url, "/v1/models/", 11)) {
            if (strcmp(method, "GET") && strcmp(method, "HEAD"))
                return send_error(conn, 405, "method_not_allowed", NULL, "GET, HEAD",
                                  "/v1/models/ID takes GET, not %s", method);
            if (!authorized(s, conn))
                return send_error(conn, 401, "invalid_api_key", NULL, NULL,
                                  "a valid API key is needed (Authorization: Bearer KEY)");
            return get_model(s, conn, url + 11);
        }
        if (i == n)
            return send_error(conn, 404, "not_found", NULL, NULL, "no such path: %s", url);
        bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
        bool want_post = routes[i].route == ROUTE_CHAT || routes[i].route == ROUTE_COMPLETIONS;
        if (want_post ? strcmp(method, "POST") : !get)
            return send_error(conn, 405, "method_not_allowed", NULL, routes[i].allow,
                              "%s takes %s, not %s", routes[i].path, routes[i].allow, method);
        if (routes[i].route != ROUTE_HEALTH && !authorized(s, conn))
            return send_error(conn, 401, "invalid_api_key", NULL, NULL,
                              "a valid API key is needed (Authorization: Bearer KEY)");
        if (routes[i].route == ROUTE_HEALTH)
            return get_health(s, conn);
        if (routes[i].route == ROUTE_MODELS)
            return get_models(s, conn);
        /* A body over the limit gets 413.  Answering before it is read would
         * make the kernel reset the connection under a client still sending,
         * which then never sees the answer: a body up to 16 times the limit
         * is read and dropped first, unless the client waits for
         * "100 Continue" (then it sends nothing). */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");
        bool too_big = false;
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            too_big = errno || end == cl || v > s->c->max_body;
            if (too_big && (expect || errno || end == cl || v / 16 > s->c->max_body))
                return send_error(conn, 413, "request_too_large", NULL, NULL,
                                  "the body is larger than %zu bytes", s->c->max_body);
        }
        if (!(cs = calloc(1, sizeof *cs)))
            return MHD_NO;
        cs->route = routes[i].route;
        cs->too_big = too_big;
        *con_cls = cs;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cs->too_big && (*upload_size > s->c->max_body - cs->body.len ||
                             sbuf_add(&cs->body, upload, *upload_size))) {
            cs->too_big = true;
            sbuf_free(&cs->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (cs->too_big)
        return send_error(conn, 413, "request_too_large", NULL, NULL,
                          "the body is larger than %zu bytes", s->c->max_body);
    return post_generate(s, conn, cs);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct conn_state *cs = *con_cls;
    if (cs) {
        sbuf_free(&cs->body);
        free(cs);
    }
    *con_cls = NULL;
}

/* ---- setup ---- */

bool serve_host_is_loopback(const char *host)
{
    if (!strcmp(host, "localhost"))
        return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

bool serve_key_equal(const char *expected, const char *given, size_t given_len)
{
    size_t n = strlen(expected);
    volatile unsigned char diff = (unsigned char)(n != given_len);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)expected[i] ^ (unsigned char)(i < given_len ? given[i] : 0);
    return diff == 0;
}

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

static int start_http(struct serve *s, char *err, size_t errlen)
{
    const struct serve_config *c = s->c;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL;
    const char *host = strcmp(c->host, "localhost") ? c->host : "127.0.0.1";
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)c->port);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)c->port);
        flags |= MHD_USE_IPv6;
    } else {
        return fail(err, errlen, EINVAL, "--host wants a numeric address, not '%s'", c->host);
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)c->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)c->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)32768, MHD_OPTION_END);
    if (!d)
        return fail(err, errlen, EADDRINUSE, "cannot listen on %s port %d (in use?)", c->host,
                    c->port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int port = di ? di->port : c->port;
    fprintf(stderr, "ponder serve: listening on http://%s%s%s:%d (model %s)\n",
            flags & MHD_USE_IPv6 ? "[" : "", host, flags & MHD_USE_IPv6 ? "]" : "", port,
            c->model_id);
    s->d = d;
    return 0;
}

static void pump(struct serve *s, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = engine_fd(s->eng), .events = POLLIN},
                          {.fd = s->wake[0], .events = POLLIN}};
    if (poll(p, 2, timeout_ms) > 0 && (p[1].revents & POLLIN)) {
        char buf[256];
        while (read(s->wake[0], buf, sizeof buf) > 0)
            ;
    }
    struct engine_event ev;
    while (engine_next(s->eng, &ev))
        on_event(s, &ev);
}

int serve_run(const struct serve_config *c, char *err, size_t errlen)
{
    struct serve sv, *s = &sv;
    memset(s, 0, sizeof *s);
    s->c = c;
    s->wake[0] = s->wake[1] = -1;
    pthread_mutex_init(&s->lock, NULL);
    int rc = 0;
    if (pipe(s->wake) || fcntl(s->wake[0], F_SETFL, O_NONBLOCK) ||
        fcntl(s->wake[1], F_SETFL, O_NONBLOCK)) {
        rc = fail(err, errlen, errno, "pipe: %s", strerror(errno));
        goto out;
    }
    struct stat st;
    s->model_created = stat(c->model_path, &st) ? (long long)time(NULL) : (long long)st.st_mtime;
    if ((rc = engine_open(&s->eng, err, errlen)))
        goto out;
    if (!(s->load_req = engine_load(s->eng, c->model_path, &c->mp))) {
        rc = fail(err, errlen, ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = start_http(s, err, errlen)))
        goto out;
    while (!*c->quit) {
        dispatch(s);
        pthread_mutex_lock(&s->lock);
        struct job *cancel = s->cur && s->cur->cancelled ? s->cur : NULL;
        bool failed = s->state == SERVE_FAILED;
        pthread_mutex_unlock(&s->lock);
        if (cancel)
            stop_now(s, cancel);
        if (failed) {
            rc = fail(err, errlen, EIO, "%s", s->load_error);
            break;
        }
        pump(s, 250);
    }
    /* stop: refuse what waits, end what runs, then close the connections */
    pthread_mutex_lock(&s->lock);
    s->quitting = true;
    struct job *q = s->head;
    s->head = s->tail = NULL;
    s->n_queued = 0;
    pthread_mutex_unlock(&s->lock);
    while (q) {
        struct job *next = q->next;
        job_fail(s, q, 503, "the server is stopping");
        q = next;
    }
    for (int i = 0; i < 40 && s->cur; i++) {
        stop_now(s, s->cur);
        pump(s, 250);
    }
    /* let the connections send what is left (a stream's last chunk, [DONE]) */
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&s->lock);
        int alive = s->n_jobs;
        pthread_mutex_unlock(&s->lock);
        if (!alive)
            break;
        pump(s, 20);
    }
    if (s->d)
        MHD_stop_daemon(s->d);
out:
    engine_close(s->eng);
    if (s->wake[0] >= 0)
        close(s->wake[0]);
    if (s->wake[1] >= 0)
        close(s->wake[1]);
    pthread_mutex_destroy(&s->lock);
    return rc;
}
