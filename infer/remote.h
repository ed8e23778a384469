/* The remote engine: a model served elsewhere by an OpenAI-compatible server
 * (ponder serve, vLLM, SGLang, llama-server, Ollama), driven with the same
 * requests and answering with the same events as a local model (engine.h).
 *
 * remote_open() checks the server with GET {url}/v1/models and fills a
 * model_info (arch "remote", name = the model, backend "remote", device =
 * "host:port").  remote_generate() POSTs {url}/v1/chat/completions with
 * "stream": true and turns the server-sent events into PHASE, TOKEN, DONE
 * (and ERROR) events through an emit callback, measuring time to first token
 * and tokens/s here; it returns when the reply ends, fails, or *stop is set
 * (checked every 50 ms, also while the server sends nothing).  A server that
 * answers with one application/json reply instead of a stream is read too.
 * Token counts are the server's usage when it sends one, else one token per
 * delta; time to first token runs from the request to the first text.
 * The reasoning comes from `reasoning_content` (or `reasoning`) deltas, or
 * from <think> tags inside `content` (split with infer/reason.c), or is the
 * content before a lone </think>: vLLM and SGLang without a reasoning parser
 * send R1's reasoning as plain content, its <think> being at the end of the
 * prompt their template made (enum remote_think).  Sampler
 * fields go out as temperature/top_p/top_k/min_p/repeat_penalty/seed/
 * max_tokens, the thinking budget as the extension fields think_budget,
 * think_mode ("soft"/"hard") and think ("off").  The API key goes out as
 * "Authorization: Bearer KEY" and is never part of a message.
 *
 * The parsing layers are exposed for tests: struct sse (bytes to event
 * data, lines split anywhere, LF/CRLF/CR, comments and keep-alives skipped)
 * and struct remote_stream (event data or an HTTP error body to engine
 * events).  Errors: one line, POSIX codes (ECONNREFUSED, ETIMEDOUT, EACCES
 * for 401/403, ENOENT for an unknown model, EPROTO for a malformed reply,
 * EIO otherwise).  No global mutable state besides libcurl's own init. */
#ifndef PONDER_REMOTE_H
#define PONDER_REMOTE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infer/engine.h"

typedef void (*remote_emit_fn)(void *ctx, const struct engine_event *ev);

/* One span of text as TOKEN events for request and token: pieces of at most
 * ENGINE_TEXT_MAX bytes, cut at UTF-8 character boundaries; the first piece
 * carries *first, which is then cleared.  The local engine uses it too. */
void remote_emit_span(const struct reason_span *sp, uint64_t request, int32_t token, bool *first,
                      remote_emit_fn emit, void *ctx);

/* ---- server-sent events ---- */

#define SSE_LINE_MAX (1u << 20)   /* a longer line is an error (E2BIG) */

struct sse {
    char *line;             /* the current line, not yet ended */
    size_t len, cap;
    char *data;             /* the current event's data lines, joined with \n */
    size_t dlen, dcap;
    bool has_data;
    bool after_cr;          /* the last byte was CR: a following LF belongs to it */
};

/* Called with each event's data (NUL-terminated, len bytes); a non-zero
 * return stops sse_push, which returns it. */
typedef int (*sse_data_fn)(void *ctx, const char *data, size_t len);

void sse_init(struct sse *s);
void sse_free(struct sse *s);
/* 0, fn's non-zero return, ENOMEM or E2BIG. */
int sse_push(struct sse *s, const char *buf, size_t len, sse_data_fn fn, void *ctx);
/* At the end of the stream: an event whose blank line never came is still
 * delivered (servers that close right after the last data line). */
int sse_finish(struct sse *s, sse_data_fn fn, void *ctx);

/* ---- one streamed reply ---- */

#define REMOTE_BODY_MAX 16384      /* bytes of an error body kept */
#define REMOTE_REPLY_MAX (8u << 20) /* a non-streamed JSON reply; text held back */

/* Content that neither a reasoning field nor a <think> marks is reasoning
 * until a </think> ends it, when the server is one that sends R1's
 * reasoning that way.  What a server does is learnt from its replies:
 *   UNKNOWN     (its first replies) such text is held back, counted as
 *               thinking (TOKEN events of length 0), until a </think> shows
 *               it was reasoning (then it comes out as reasoning, and the
 *               answer streams after it), or the reply ends without one:
 *               it was the answer, and comes out as the answer then.
 *   LONE_CLOSE  a reply had reasoning ended by a lone </think>: such text
 *               streams as reasoning at once; without a </think> it stays
 *               reasoning (a reply cut off while thinking).
 *   PLAIN       a reply had a reasoning field, or ended by itself with text
 *               and no </think>: content is the answer (a leading <think>
 *               still opens reasoning). */
enum remote_think {
    REMOTE_THINK_UNKNOWN,
    REMOTE_THINK_LONE_CLOSE,
    REMOTE_THINK_PLAIN
};

struct remote_stream {
    uint64_t request;
    remote_emit_fn emit;
    void *ctx;
    struct sse sse;
    struct reason rs;               /* <think> tags inside content */
    enum remote_think think;        /* in: what the server was seen to do (set before the
                                       first feed); out: updated by remote_stream_end */
    bool content_seen;              /* the splitter was set for the first content */
    bool reasoning_field;           /* a reasoning_content / reasoning delta came */
    bool holding;                   /* untagged reasoning is held back (UNKNOWN) */
    bool held_as_answer;            /* the held text turned out to be the answer */
    char *hold;                     /* the text held back */
    size_t hold_len, hold_cap, hold_lead;   /* hold_lead: its leading whitespace */
    int http_status;                /* 0 until known; >= 400: the body is an error */
    bool json_reply;                /* application/json: a server that does not stream */
    char *body;                     /* the error body, or the JSON reply */
    size_t body_len, body_cap;
    enum engine_phase phase;
    bool phase_sent;
    bool done;                      /* [DONE] seen */
    bool finished;                  /* a finish_reason seen */
    enum engine_stop stop;
    bool failed;
    char error[400];
    int32_t n_deltas;
    int reasoning_deltas, answer_deltas;
    bool has_usage;
    int usage_prompt, usage_completion, usage_reasoning;
    bool first_event;               /* no event posted yet for this delta */
    double t0, t_first, t_switch;   /* ms: request sent, first text, answer began */
    double (*clock)(void);          /* now in ms (tests replace it) */
};

/* Posts PHASE(reading) and starts the clock (t0). */
void remote_stream_init(struct remote_stream *st, uint64_t request, remote_emit_fn emit,
                        void *ctx);
void remote_stream_free(struct remote_stream *st);
/* Response bytes (after the headers; http_status and json_reply set before
 * the first call).
 * 0, or an errno once the stream is unusable (st->error says why). */
int remote_stream_feed(struct remote_stream *st, const char *buf, size_t len);
/* Ends the reply: flushes held text, posts ERROR when the reply failed (an
 * HTTP error body, an error event, a cut-off stream, or transport_error when
 * not NULL), and fills *done with DONE (stop reason and stats; the caller
 * completes the backend/device/sampler fields). */
void remote_stream_end(struct remote_stream *st, const char *transport_error, bool user_stop,
                       struct engine_event *done);

/* ---- the connection ---- */

struct remote;

struct remote_timeouts {
    long connect_ms;                /* default 10 s */
    long models_ms;                 /* the whole GET /v1/models; default 30 s */
    long idle_ms;                   /* no byte (keep-alives count) for this long ends a
                                       reply with an ERROR; default 10 min */
};

/* Copies r; checks the server and the model (r->model NULL: the first the
 * server lists).  to may be NULL for the defaults. */
int remote_open(const struct engine_remote *r, const struct remote_timeouts *to,
                struct remote **out, char *err, size_t errlen);
void remote_free(struct remote *rm);   /* NULL is a no-op */
/* LOADED's model info; its strings live as long as rm. */
const struct model_info *remote_info(const struct remote *rm);
/* Streams one reply as events (PHASE, TOKEN, ERROR when it fails, then
 * exactly one DONE). */
void remote_generate(struct remote *rm, uint64_t request, const struct chat_msg *msgs, size_t n,
                     const struct engine_generate_params *gp, const atomic_bool *stop,
                     remote_emit_fn emit, void *ctx);

/* ---- helpers for the interface and the store ---- */

/* The name a remote model goes by in the transcript and the store:
 * "NAME@HOST:PORT" from a LOADED model_info. */
void remote_display_name(const struct model_info *in, char *buf, size_t cap);
/* A store fingerprint (32 hex digits) for a remote model: its display name
 * hashed, prefixed so it can never equal a file's. */
void remote_fingerprint(const char *display_name, char out[33]);
/* Reads an API key: the file's first line, trimmed.  0, or an errno (ENOENT,
 * EACCES, EINVAL for an empty file or a key with control characters). */
int remote_read_key(const char *path, char *buf, size_t cap, char *err, size_t errlen);
/* "host:port" of a URL (the default port from the scheme): 0 or EINVAL. */
int remote_url_host(const char *url, char *buf, size_t cap);

#endif
