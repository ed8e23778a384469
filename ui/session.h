/* A chat session: the conversation as the engine needs it (the messages, the
 * answers without their reasoning) and as the history store keeps it.  The
 * user's message is stored before generation starts, the reply is appended as
 * it streams (answer and reasoning apart) and completed with its run stats.
 * The store is optional (NULL: nothing is kept); a store error never stops
 * the chat: it is reported once in session->store_err and storing stops.
 * One thread only (the one that owns the store). */
#ifndef PONDER_UI_SESSION_H
#define PONDER_UI_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "history/store.h"
#include "infer/engine.h"

struct session_msg {
    enum chat_role role;
    char *text;             /* the answer for assistant messages */
    char *reasoning;        /* assistant messages, may be NULL */
    char *model;            /* the model that wrote it, may be NULL */
    bool interrupted;
    double think_ms;        /* from the stored run, 0 when unknown */
    int think_tokens;
    bool budget_reached;    /* the thinking budget ended the reasoning */
    char footer[160];       /* the run's timings, "" when unknown */
};

struct session {
    struct store *store;            /* borrowed, may be NULL */
    int64_t conv;                   /* 0 until the first message is stored */
    int64_t model_id;               /* the model in the store, 0 when unknown */
    int64_t reply_id;               /* the streaming reply in the store, 0 when none */
    char model_name[128];
    const char *driver;             /* stored with each run: "tui", "line"; may be NULL */
    char *system;                   /* the system prompt, may be NULL */
    struct session_msg *msgs;
    size_t n, cap;
    struct chat_msg *chat;          /* built by session_chat() */
    /* the streaming reply */
    bool replying;
    char *reply_answer, *reply_reasoning;
    size_t answer_len, reasoning_len;
    char store_err[600];            /* the first store error, "" when none */
};

void session_init(struct session *s, struct store *store);
void session_free(struct session *s);
/* Starts a new conversation (the messages are dropped; the store keeps them). */
void session_new(struct session *s);
/* 0 or ENOMEM. */
int session_set_system(struct session *s, const char *text);
/* Records the model in use (path and loaded info) in the store. */
void session_set_model(struct session *s, const char *path, const struct model_info *info);

/* Adds the user's message (stored before generation starts). 0 or ENOMEM. */
int session_user(struct session *s, const char *text);
/* The conversation for engine_generate(): *n messages, valid until the next
 * session call.  0 or ENOMEM. */
int session_chat(struct session *s, const struct chat_msg **msgs, size_t *n);
/* The reply: begin, each piece as it streams, then end with the engine's
 * DONE (stats may be NULL after an error). 0 or ENOMEM. */
int session_reply_begin(struct session *s);
int session_reply_piece(struct session *s, enum reason_kind kind, const char *text, size_t len);
int session_reply_end(struct session *s, enum engine_stop stop, const struct engine_stats *st,
                      const char *error);

/* Loads conversation id from the store into the session (it continues it).
 * 0, or a store error with one line in err. */
int session_open(struct session *s, int64_t id, char *err, size_t errlen);
/* The most recently updated conversation, 0 when there is none. */
int64_t session_latest(struct store *store);

#endif
