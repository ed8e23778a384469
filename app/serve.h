/* ponder serve: an OpenAI-compatible HTTP API on one loaded model.
 *
 * serve_run() starts libmicrohttpd (a thread per connection), opens the engine
 * and loads the model, then runs the dispatcher on the calling thread until
 * *quit becomes non-zero.  Threads: the connection threads parse and check
 * requests (serve_req.h), put them in a bounded queue and wait on the job's
 * condition variable; the dispatcher (the caller) owns the engine's event
 * queue and the store, starts one generation at a time, turns engine events
 * into the job's text and SSE bytes, and records each finished or stopped
 * generation as a run (a conversation per request, driver "api").  A
 * connection thread that sees its client hang up marks its job cancelled and
 * the dispatcher calls engine_stop().  No lock is held across engine calls
 * or while writing to a socket.
 *
 * Returns 0 after a clean stop, or an errno with one line in err (the address
 * cannot be bound, the model does not load).  Progress lines ("listening on
 * ...", and with verbose one line a request) go to stderr. */
#ifndef PONDER_SERVE_H
#define PONDER_SERVE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "infer/engine.h"
#include "infer/model.h"

struct store;

struct serve_config {
    const char *host;           /* an IPv4/IPv6 address or "localhost" */
    int port;                   /* 0: any free port (printed) */
    const char *api_key;        /* NULL: no key (loopback only; checked by the caller) */
    const char *model_path;
    const char *model_id;       /* the name clients use ("ponder-demo") */
    struct model_params mp;
    struct engine_generate_params defaults;   /* sampler and limits a request may override */
    int queue_max;              /* requests waiting beyond the running one (429 past it) */
    int max_connections;
    size_t max_body;            /* bytes (413 past it) */
    struct store *store;        /* NULL: nothing recorded */
    bool verbose;
    volatile sig_atomic_t *quit;
};

int serve_run(const struct serve_config *c, char *err, size_t errlen);

/* True when host names a loopback address (127.0.0.0/8, ::1, localhost). */
bool serve_host_is_loopback(const char *host);

/* Compares a presented key with the expected one in time that depends only
 * on the expected key's length. */
bool serve_key_equal(const char *expected, const char *given, size_t given_len);

#endif
