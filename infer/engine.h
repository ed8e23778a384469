/* The engine: a worker thread that owns the model and its backends, taking
 * requests (load, generate, stop, unload) and answering with events.
 *
 * engine_open() starts the thread; engine_fd() is readable whenever events
 * are queued, so a UI polls it together with the keyboard, then pops events
 * with engine_next() until it returns false.  Requests are non-blocking and
 * may come from any thread; they copy what they are given.  Events come in
 * order, and each is a copy the receiver owns:
 *
 *   LOAD_PROGRESS(fraction, phase)  LOADED(model info)  UNLOADED
 *   PHASE(reading | thinking | answering)
 *   TOKEN(id, text, kind)           text cut at UTF-8 characters; one token
 *                                   may give several TOKEN events when a
 *                                   </think> boundary falls inside it
 *   DONE(stop reason, run stats)    ERROR(message)
 *
 * A generation ends with exactly one DONE (also when stopped, or after an
 * ERROR during it).  engine_stop() takes effect within one token.  The KV
 * cache keeps the last conversation, so the next request reuses its longest
 * shared prefix. */
#ifndef PONDER_ENGINE_H
#define PONDER_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat.h"
#include "model.h"
#include "reason.h"
#include "sampler.h"

struct engine;

enum engine_event_type {
    ENGINE_EVENT_LOAD_PROGRESS,
    ENGINE_EVENT_LOADED,
    ENGINE_EVENT_UNLOADED,
    ENGINE_EVENT_PHASE,
    ENGINE_EVENT_TOKEN,
    ENGINE_EVENT_DONE,
    ENGINE_EVENT_ERROR
};

enum engine_phase {
    ENGINE_PHASE_READING,     /* the prompt */
    ENGINE_PHASE_THINKING,
    ENGINE_PHASE_ANSWERING
};

enum engine_stop {
    ENGINE_STOP_END,          /* the model ended its reply */
    ENGINE_STOP_LENGTH,       /* max_tokens reached */
    ENGINE_STOP_CONTEXT,      /* the context is full */
    ENGINE_STOP_USER,         /* engine_stop() */
    ENGINE_STOP_ERROR
};

/* How a reasoning budget ends the thinking: SOFT raises the logit of
 * </think> step by step from 80 % of the budget, so the model closes its
 * reasoning at a natural boundary; HARD inserts "</think>\n\n" when the
 * budget is reached and the answer begins. */
enum engine_think_mode { ENGINE_THINK_SOFT = 0, ENGINE_THINK_HARD };

struct engine_stats {
    int prompt_tokens;        /* fed this turn (after prefix reuse: prompt_cached were not) */
    int prompt_cached;
    int reasoning_tokens, answer_tokens;
    double load_ms, prompt_ms, first_token_ms, reasoning_ms, answer_ms;
    double prompt_tps, gen_tps;
    char backend[16], device[64];
    int threads, layers_on_device, n_ctx;
    struct sampler_params sampler;   /* with the seed actually used */
    int think_budget;                /* as requested (<= 0: none) */
    enum engine_think_mode think_mode;
    bool think_off;
    bool budget_reached;             /* the budget ended (soft: pushed) the reasoning */
    bool fell_back;                  /* the device was lost during this run (its ERROR says
                                        so): the model was loaded again on the CPU, where
                                        the next request runs (backend "cpu"), or could not
                                        be (backend "none": no model is loaded) */
};

#define ENGINE_TEXT_MAX 64

struct engine_event {
    enum engine_event_type type;
    uint64_t request;                    /* the id the request returned */
    union {
        struct {
            float fraction;
            char phase[32];
        } progress;
        struct model_info loaded;        /* device/backend strings are static */
        enum engine_phase phase;
        struct {
            int32_t id;
            bool first;                  /* the first event of this token: every
                                            generated token gives one, with len 0
                                            when its text is held back or empty */
            enum reason_kind kind;
            bool leading;                /* whitespace that opens a part */
            size_t len;
            char text[ENGINE_TEXT_MAX];
        } token;
        struct {
            enum engine_stop stop;
            struct engine_stats stats;
        } done;
        char error[512];
    } u;
};


struct engine_generate_params {
    struct sampler_params sampler;   /* seed 0: the engine picks one (reported in DONE) */
    int max_tokens;                  /* < 0: until the context is full */
    bool raw;                        /* the last user message is fed as is (no chat format) */
    int think_budget;                /* reasoning tokens this turn; <= 0: unlimited */
    enum engine_think_mode think_mode;
    bool think_off;                  /* the reply starts with an empty reasoning block
                                        ("<think>\n\n</think>\n\n"): answer directly */
};

/* 0, or an errno with one line in err. */
int engine_open(struct engine **out, char *err, size_t errlen);
/* Stops any generation, joins the thread, frees the model; NULL is a no-op. */
void engine_close(struct engine *e);
int engine_fd(const struct engine *e);
/* Pops the next event into ev; false when none is queued. */
bool engine_next(struct engine *e, struct engine_event *ev);

/* Requests: each returns a request id (> 0), or 0 when out of memory. */
uint64_t engine_load(struct engine *e, const char *path, const struct model_params *p);
uint64_t engine_generate(struct engine *e, const struct chat_msg *msgs, size_t n,
                         const struct engine_generate_params *gp);
uint64_t engine_unload(struct engine *e);

/* A model served elsewhere by an OpenAI-compatible server (infer/remote.c):
 * after this load, generate requests go to url's /v1/chat/completions with
 * the same events as a local model (LOADED carries arch "remote", the model
 * name, backend "remote" and the host as device; stats are measured here). */
struct engine_remote {
    const char *url;                 /* e.g. http://127.0.0.1:11435 */
    const char *api_key;             /* NULL: none */
    const char *model;               /* the server's model name; NULL: its first */
};
uint64_t engine_load_remote(struct engine *e, const struct engine_remote *r);
/* Stops the generation in progress (if any) within one token. */
void engine_stop(struct engine *e);

const char *engine_stop_name(enum engine_stop s);   /* "end", "length", ... */

#endif
