/* The transcript: what the chat screen shows, as data, and its layout.
 *
 * A transcript is a list of entries: user messages, replies (the reasoning
 * kept apart from the answer, folded or not, with the model that wrote it and
 * a footer of timings once done) and notes (a model switch, an error).  Text
 * is stored made safe to draw: control bytes become visible (^X), tabs become
 * spaces and invalid UTF-8 becomes U+FFFD, so model output never reaches the
 * terminal raw.  tr_layout() wraps everything to a width (display widths from
 * wcwidth(), so the caller sets a UTF-8 locale) into lines the screen draws;
 * it is pure computation, so the tests check folding and wrapping without a
 * terminal.  Times are milliseconds on any monotonic clock the caller picks.
 * Every function that allocates returns 0 or ENOMEM. */
#ifndef PONDER_UI_TRANSCRIPT_H
#define PONDER_UI_TRANSCRIPT_H

#include <stdbool.h>
#include <stddef.h>

#include "infer/engine.h"

enum tr_kind { TR_KIND_USER, TR_KIND_REPLY, TR_KIND_NOTE };

enum tr_style {
    TR_STYLE_BLANK,
    TR_STYLE_USER_HEAD,     /* "You" */
    TR_STYLE_USER,
    TR_STYLE_MODEL_HEAD,    /* the model that wrote the reply */
    TR_STYLE_THINK_HEAD,    /* "Thinking… 12.3 s · 412 tokens" / "▸ Thought for ..." */
    TR_STYLE_THINK,         /* reasoning text (dimmed) */
    TR_STYLE_ANSWER,
    TR_STYLE_FOOTER,        /* timings after the reply */
    TR_STYLE_NOTE,
};

/* A growing byte string. */
struct tr_text {
    char *s;
    size_t len, cap;
};

struct tr_entry {
    enum tr_kind kind;
    struct tr_text text;        /* user text, note, or the answer */
    struct tr_text reasoning;
    char model[128];
    bool folded;                /* the reasoning shows as one line */
    bool thinking;              /* the reasoning is still streaming */
    bool streaming;             /* the reply is not done */
    bool interrupted;
    bool budget_reached;        /* the thinking budget ended the reasoning */
    double think_start_ms, think_ms;
    int think_tokens, answer_tokens;
    char footer[200];
};

struct transcript {
    struct tr_entry *e;
    size_t n, cap;
    bool fold_default;          /* new replies fold their reasoning once the answer starts */
};

/* One screen line: text[0..len) (pointing into an entry, or into buf). */
struct tr_line {
    size_t entry;
    enum tr_style style;
    const char *text;
    size_t len;
    int indent;                 /* columns left blank before the text */
    char buf[256];
};

struct tr_lines {
    struct tr_line *v;
    size_t n, cap;
};

void tr_init(struct transcript *t, bool fold_default);
void tr_free(struct transcript *t);
void tr_clear(struct transcript *t);
void tr_lines_free(struct tr_lines *l);

int tr_add_user(struct transcript *t, const char *text, size_t len);
int tr_add_note(struct transcript *t, const char *text);
/* A finished reply (a past conversation): reasoning may be NULL. */
int tr_add_reply(struct transcript *t, const char *model, const char *reasoning,
                 const char *answer, bool interrupted);
/* Starts a streaming reply written by model. */
int tr_reply_begin(struct transcript *t, const char *model);
/* Adds a piece of the streaming reply; the first answer piece ends the
 * thinking (and folds it when fold_default).  count: the piece starts a token. */
int tr_reply_append(struct transcript *t, enum reason_kind kind, const char *text, size_t len,
                    bool count, double now_ms);
/* Ends the streaming reply with the engine's numbers (st may be NULL). */
void tr_reply_end(struct transcript *t, enum engine_stop stop, const struct engine_stats *st,
                  double now_ms);
/* The streaming reply, or NULL. */
struct tr_entry *tr_streaming(struct transcript *t);

void tr_toggle_fold(struct transcript *t, size_t entry);
/* Folds every reasoning trace, or unfolds all when all are folded. */
void tr_toggle_all(struct transcript *t);

/* Lays the transcript out at width columns (>= 8) into out (reused). */
int tr_layout(const struct transcript *t, int width, double now_ms, struct tr_lines *out);

/* Appends text to b made safe to draw (see above); 0 or ENOMEM. */
int tr_text_add_safe(struct tr_text *b, const char *s, size_t len);
/* The display width of UTF-8 text (already made safe). */
int tr_width(const char *s, size_t len);
/* n with thousands separators: 1210 -> "1,210". */
const char *tr_count(long long n, char *buf, size_t cap);

#endif
