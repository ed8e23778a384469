/* The request parser of ponder serve: the JSON body of a POST to
 * /v1/chat/completions or /v1/completions, turned into a validated struct
 * serve_req.  Pure (no I/O, no globals, no engine), so it can be fuzzed.
 *
 * serve_req_parse() returns 0, EBADMSG (not JSON: malformed, invalid UTF-8,
 * nesting deeper than jansson's limit, a number too big to represent, not an
 * object), EINVAL (a field of the wrong type or out of range: its name goes
 * to param), or ENOMEM; err gets one line either way.  Unknown fields are
 * ignored, as OpenAI-compatible servers do, so clients that send
 * frequency_penalty or user keep working.  On success every string in *out
 * is a private copy; free with serve_req_free() (also after a failure, and
 * on a zeroed struct).
 *
 * Fields: model (string), messages (chat: an array of {role, content} with
 * role system/developer/user/assistant and content a string or an array of
 * {type:"text", text} parts), prompt (completions: a string, or an array of
 * exactly one string), stream, stream_options.include_usage, temperature
 * [0, 2], top_p [0, 1], max_tokens / max_completion_tokens [1, limit], seed
 * (an integer >= 0), stop (a string or an array of at most SERVE_REQ_MAX_STOP
 * non-empty strings), n (only 1), and the extensions top_k, min_p,
 * repeat_penalty, think_budget (>= 0), think_mode ("soft" | "hard") and think
 * ("on" | "off", or a boolean). */
#ifndef PONDER_SERVE_REQ_H
#define PONDER_SERVE_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infer/chat.h"

enum serve_req_kind { SERVE_REQ_CHAT, SERVE_REQ_COMPLETION };

#define SERVE_REQ_MAX_STOP 4
#define SERVE_REQ_STOP_LEN 64       /* bytes per stop string */
#define SERVE_REQ_MAX_MESSAGES 1024

struct serve_req {
    enum serve_req_kind kind;
    char *model;                    /* NULL when absent */
    struct chat_msg *msgs;          /* chat: the messages; completion: one user
                                       message holding the prompt */
    size_t n_msgs;
    bool stream, include_usage;
    bool has_temperature, has_top_p, has_top_k, has_min_p, has_repeat_penalty;
    float temperature, top_p, min_p, repeat_penalty;
    int top_k;
    int max_tokens;                 /* -1 when absent */
    bool has_seed;
    uint64_t seed;
    char *stop[SERVE_REQ_MAX_STOP];
    size_t n_stop;
    int think_budget;               /* 0: none */
    int think_mode;                 /* 0 soft, 1 hard (enum engine_think_mode) */
    bool think_off;
};

int serve_req_parse(enum serve_req_kind kind, const char *body, size_t len, int max_tokens_limit,
                    struct serve_req *out, char *param, size_t paramlen, char *err,
                    size_t errlen);
void serve_req_free(struct serve_req *r);

#endif
